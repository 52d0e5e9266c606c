//! The users file (`[api] users = "users.toml"`): people with Argon2id password hashes and
//! machine tokens stored as SHA-256 digests, each with a role.
//!
//! ```toml
//! [users.anna]
//! role = "operator"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."
//!
//! [tokens.mes]
//! role = "operator"
//! hash = "<sha256 hex of the token>"
//! ```
//!
//! The gateway only reads it; `backplane users` writes it (atomically, mode 0600). Neither
//! a password nor a token is ever stored: a stolen file gives an attacker a slow offline
//! guess per password and nothing for tokens (32 random bytes).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Role, hex};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

/// Shortest password accepted for a new user.
pub const MIN_PASSWORD_LEN: usize = 10;
/// Longest password accepted: Argon2 hashes all of it, so an outsider's megabyte password
/// costs nothing extra to refuse.
pub const MAX_PASSWORD_LEN: usize = 1024;
const MAX_NAME_LEN: usize = 64;

/// A user with a password.
#[derive(Clone, PartialEq, Eq)]
struct User {
    role: Role,
    /// PHC string (`$argon2id$...`).
    password: String,
}

/// A machine token; only its digest is kept.
#[derive(Clone, PartialEq, Eq)]
struct Token {
    role: Role,
    hash: [u8; 32],
}

/// The parsed users file. Empty when no file is configured.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Users {
    users: BTreeMap<String, User>,
    tokens: BTreeMap<String, Token>,
}

// Hand-written: hashes never end up in a log line.
impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("tokens", &self.tokens.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why the users file cannot be used; `Display` names the file and, for content errors,
/// the line.
#[derive(Debug)]
pub struct UsersError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for UsersError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for UsersError {}

/// A change the CLI asked for that cannot be made.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDe {
    #[serde(default)]
    users: BTreeMap<Spanned<String>, Spanned<UserDe>>,
    #[serde(default)]
    tokens: BTreeMap<Spanned<String>, Spanned<TokenDe>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserDe {
    role: Spanned<String>,
    password: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenDe {
    role: Spanned<String>,
    hash: Spanned<String>,
}

impl Users {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|e| UsersError {
            file: path.to_owned(),
            line: None,
            message: format!("cannot read the users file: {e}"),
        })?;
        Users::parse(&text, path)
    }

    /// Parses the file's text; `path` is only for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Users, UsersError> {
        let error = |offset: Option<usize>, message: String| UsersError {
            file: path.to_owned(),
            line: offset.map(|o| line_of(text, o)),
            message,
        };
        let file: FileDe = toml::from_str(text)
            .map_err(|e| error(e.span().map(|s| s.start), e.message().trim().to_owned()))?;
        let role = |r: &Spanned<String>| {
            r.get_ref()
                .parse::<Role>()
                .map_err(|e| error(Some(r.span().start), e.to_string()))
        };
        let mut users = Users::default();
        for (name, user) in file.users {
            check_name(name.get_ref()).map_err(|e| error(Some(name.span().start), e.0))?;
            let user = user.into_inner();
            let password = user.password.get_ref();
            match PasswordHash::new(password) {
                Ok(hash) if hash.algorithm.as_str() == "argon2id" => {}
                _ => {
                    return Err(error(
                        Some(user.password.span().start),
                        format!(
                            "the password of `{}` is not an Argon2id hash (`$argon2id$...`); set it with `backplane users passwd`",
                            name.get_ref()
                        ),
                    ));
                }
            }
            users.users.insert(
                name.get_ref().clone(),
                User {
                    role: role(&user.role)?,
                    password: password.clone(),
                },
            );
        }
        for (name, token) in file.tokens {
            check_name(name.get_ref()).map_err(|e| error(Some(name.span().start), e.0))?;
            let token = token.into_inner();
            let hash = parse_hex(token.hash.get_ref()).ok_or_else(|| {
                error(
                    Some(token.hash.span().start),
                    format!(
                        "the hash of token `{}` must be 64 hex digits (a SHA-256 digest)",
                        name.get_ref()
                    ),
                )
            })?;
            users.tokens.insert(
                name.get_ref().clone(),
                Token {
                    role: role(&token.role)?,
                    hash,
                },
            );
        }
        Ok(users)
    }

    /// Writes the file atomically (a temporary file renamed over it), readable by its owner
    /// only.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "users.toml".to_owned());
        let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let result = (|| {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&tmp)?;
            file.write_all(self.render().as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            // The rename is durable once the directory is.
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn render(&self) -> String {
        let mut out = String::from(
            "# Backplane API users and machine tokens; managed with `backplane users`.\n\
             # Passwords are Argon2id hashes, tokens SHA-256 digests: neither is stored.\n",
        );
        // Names are checked to be bare TOML keys; hashes are PHC strings or hex, which
        // never contain a quote or a backslash.
        for (name, user) in &self.users {
            out.push_str(&format!(
                "\n[users.{name}]\nrole = \"{}\"\npassword = \"{}\"\n",
                user.role, user.password
            ));
        }
        for (name, token) in &self.tokens {
            out.push_str(&format!(
                "\n[tokens.{name}]\nrole = \"{}\"\nhash = \"{}\"\n",
                token.role,
                hex(&token.hash)
            ));
        }
        out
    }

    /// No user and no token.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.tokens.is_empty()
    }

    /// Users and their roles, by name.
    pub fn users(&self) -> impl Iterator<Item = (&str, Role)> {
        self.users.iter().map(|(n, u)| (n.as_str(), u.role))
    }

    /// Tokens and their roles, by name.
    pub fn tokens(&self) -> impl Iterator<Item = (&str, Role)> {
        self.tokens.iter().map(|(n, t)| (n.as_str(), t.role))
    }

    pub fn add_user(&mut self, name: &str, role: Role, password: &str) -> Result<(), Refused> {
        check_name(name)?;
        if self.users.contains_key(name) {
            return Err(Refused(format!(
                "user `{name}` exists; change the password with `passwd` or the role with `role`"
            )));
        }
        let password = hash_password(password)?;
        self.users.insert(name.to_owned(), User { role, password });
        Ok(())
    }

    pub fn set_password(&mut self, name: &str, password: &str) -> Result<(), Refused> {
        let hash = hash_password(password)?;
        self.user_mut(name)?.password = hash;
        Ok(())
    }

    pub fn set_role(&mut self, name: &str, role: Role) -> Result<(), Refused> {
        self.user_mut(name)?.role = role;
        Ok(())
    }

    pub fn remove_user(&mut self, name: &str) -> Result<(), Refused> {
        self.users.remove(name).map(|_| ()).ok_or_else(|| no_user(name))
    }

    /// Creates a token named `name`; returns it, the only time it is ever shown.
    pub fn add_token(&mut self, name: &str, role: Role) -> Result<String, Refused> {
        check_name(name)?;
        if self.tokens.contains_key(name) {
            return Err(Refused(format!(
                "token `{name}` exists; remove it first with `token-remove`"
            )));
        }
        let token = random_token();
        self.tokens.insert(
            name.to_owned(),
            Token {
                role,
                hash: sha256(token.as_bytes()),
            },
        );
        Ok(token)
    }

    pub fn remove_token(&mut self, name: &str) -> Result<(), Refused> {
        self.tokens
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| Refused(format!("no token `{name}`")))
    }

    /// The user's role if `password` is theirs. Costly by design (Argon2id): callers bound
    /// how many run at once.
    pub fn verify_password(&self, name: &str, password: &str) -> Option<Role> {
        let user = self.users.get(name)?;
        if password.len() > MAX_PASSWORD_LEN {
            return None;
        }
        let hash = PasswordHash::new(&user.password).ok()?;
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .ok()
            .map(|()| user.role)
    }

    /// The token's name and role if `token` is one of the file's.
    pub fn token(&self, token: &str) -> Option<(&str, Role)> {
        let digest = sha256(token.as_bytes());
        // Every digest is compared in full, so timing tells nothing about which came close.
        let mut found = None;
        for (name, t) in &self.tokens {
            if constant_time_eq(&digest, &t.hash) && found.is_none() {
                found = Some((name.as_str(), t.role));
            }
        }
        found
    }

    fn user_mut(&mut self, name: &str) -> Result<&mut User, Refused> {
        self.users.get_mut(name).ok_or_else(|| no_user(name))
    }
}

fn no_user(name: &str) -> Refused {
    Refused(format!("no user `{name}`"))
}

/// User and token names: what may appear in an audit trail and a TOML key unquoted.
fn check_name(name: &str) -> Result<(), Refused> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Refused(format!(
            "`{name}` is not a valid name: use 1 to {MAX_NAME_LEN} letters, digits, `_`, `-` or `.`"
        )))
    }
}

fn hash_password(password: &str) -> Result<String, Refused> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(Refused(format!(
            "the password is {len} characters long; at least {MIN_PASSWORD_LEN} are needed"
        )));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Refused(format!(
            "the password is longer than {MAX_PASSWORD_LEN} bytes"
        )));
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Refused(format!("cannot make a salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Refused(format!("cannot hash the password: {e}")))
}

/// 32 random bytes as 64 hex digits.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn parse_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Compares without stopping at the first difference, so response timing does not tell an
/// attacker how many leading bytes of a guess were right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |before| before.matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_file_reads_back_and_verifies_passwords_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        let mut users = Users::default();
        users.add_user("anna", Role::Operator, "correct horse").unwrap();
        let token = users.add_token("mes", Role::Engineer).unwrap();
        users.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("correct horse") && !text.contains(&token),
            "{text}"
        );
        let read = Users::load(&path).unwrap();
        assert_eq!(read, users);
        assert_eq!(
            read.verify_password("anna", "correct horse"),
            Some(Role::Operator)
        );
        assert_eq!(read.verify_password("anna", "correct horsf"), None);
        assert_eq!(read.verify_password("bob", "correct horse"), None);
        assert_eq!(read.token(&token), Some(("mes", Role::Engineer)));
        assert_eq!(read.token("nope"), None);
    }

    #[test]
    fn short_passwords_and_odd_names_are_refused() {
        let mut users = Users::default();
        assert!(users.add_user("anna", Role::Viewer, "short").is_err());
        assert!(users.add_user("an na", Role::Viewer, "long enough pw").is_err());
        assert!(users.add_user("", Role::Viewer, "long enough pw").is_err());
        assert!(users.is_empty());
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let path = Path::new("/etc/backplane/users.toml");
        let text = "[users.anna]\nrole = \"operator\"\npassword = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA\"\n\n[tokens.mes]\nrole = \"boss\"\nhash = \"{}\"\n";
        let text = text.replace("{}", &"0".repeat(64));
        let e = Users::parse(&text, path).unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.to_string().starts_with("/etc/backplane/users.toml:6: "), "{e}");
        assert!(e.to_string().contains("boss"), "{e}");

        let e = Users::parse("[users.bob]\nrole = \"viewer\"\npassword = \"hunter2\"\n", path).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = Users::parse("[users.bob]\nrole = \"viewer\"\npasswrd = \"x\"\n", path).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = Users::parse("[users\n", path).unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
    }
}
