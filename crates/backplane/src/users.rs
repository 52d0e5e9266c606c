//! `backplane users --file users.toml ...`: manage the API's users and machine tokens
//! (`[api] users`). Passwords are read from stdin (`--password-stdin`, or whenever stdin is
//! not a terminal) or prompted without echo; tokens are printed once, at creation. Hashes
//! are never printed. The gateway reads the file at start: restart it after a change.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use backplane_api::users::{MIN_PASSWORD_LEN, Users};
use backplane_security::Role;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct UsersArgs {
    /// The users file (`[api] users`); created by the first `add` or `token-add`.
    #[arg(long)]
    file: PathBuf,
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Add a user with a password (at least 10 characters).
    Add {
        name: String,
        /// viewer, operator, engineer or admin.
        #[arg(long)]
        role: Role,
        /// Read the password from the first line of stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's password.
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's role.
    Role { name: String, role: Role },
    /// Remove a user.
    Remove { name: String },
    /// List users and tokens with their roles (never their hashes).
    List,
    /// Add a machine token; it is printed once and only its SHA-256 is stored.
    TokenAdd {
        name: String,
        #[arg(long)]
        role: Role,
    },
    /// Remove a machine token.
    TokenRemove { name: String },
}

pub fn run(args: UsersArgs) -> ExitCode {
    match execute(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn execute(args: UsersArgs) -> Result<(), String> {
    let path = args.file.as_path();
    let creates = matches!(args.action, Action::Add { .. } | Action::TokenAdd { .. });
    let mut users = if creates && !path.exists() {
        Users::default()
    } else {
        Users::load(path).map_err(|e| e.to_string())?
    };
    match args.action {
        Action::List => {
            print_list(&users);
            return Ok(());
        }
        Action::Add {
            name,
            role,
            password_stdin,
        } => {
            let password = password(&name, password_stdin)?;
            users.add_user(&name, role, &password).map_err(|e| e.0)?;
            save(&users, path)?;
            eprintln!("added user `{name}` ({role})");
        }
        Action::Passwd { name, password_stdin } => {
            // Fail before asking for a password the file has no user for.
            if !users.users().any(|(n, _)| n == name) {
                return Err(format!("no user `{name}` in {}", path.display()));
            }
            let password = password(&name, password_stdin)?;
            users.set_password(&name, &password).map_err(|e| e.0)?;
            save(&users, path)?;
            eprintln!("changed the password of `{name}`");
        }
        Action::Role { name, role } => {
            users.set_role(&name, role).map_err(|e| e.0)?;
            save(&users, path)?;
            eprintln!("`{name}` is now {role}");
        }
        Action::Remove { name } => {
            users.remove_user(&name).map_err(|e| e.0)?;
            save(&users, path)?;
            eprintln!("removed user `{name}`");
        }
        Action::TokenAdd { name, role } => {
            let token = users.add_token(&name, role).map_err(|e| e.0)?;
            save(&users, path)?;
            eprintln!("added token `{name}` ({role}); it is shown only now, store it safely:");
            println!("{token}");
        }
        Action::TokenRemove { name } => {
            users.remove_token(&name).map_err(|e| e.0)?;
            save(&users, path)?;
            eprintln!("removed token `{name}`");
        }
    }
    eprintln!("restart the gateway for the change to take effect");
    Ok(())
}

fn save(users: &Users, path: &Path) -> Result<(), String> {
    users
        .save(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn print_list(users: &Users) {
    println!("users:");
    for (name, role) in users.users() {
        println!("  {name:<24} {role}");
    }
    println!("tokens:");
    for (name, role) in users.tokens() {
        println!("  {name:<24} {role}");
    }
}

/// The new password: from stdin's first line when asked to or when stdin is not a
/// terminal, else prompted twice without echo.
fn password(name: &str, from_stdin: bool) -> Result<String, String> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        if password.is_empty() {
            return Err("no password on stdin".to_owned());
        }
        return Ok(password);
    }
    let first = rpassword::prompt_password(format!(
        "password for {name} (at least {MIN_PASSWORD_LEN} characters): "
    ))
    .map_err(|e| format!("cannot read the password: {e}"))?;
    let second =
        rpassword::prompt_password("again: ").map_err(|e| format!("cannot read the password: {e}"))?;
    if first != second {
        return Err("the two passwords differ".to_owned());
    }
    Ok(first)
}
