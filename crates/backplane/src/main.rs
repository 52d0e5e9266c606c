//! The `backplane` binary: `run` a configuration, `check` one without connecting to
//! anything, run the `demo` plant on embedded defaults, `browse` a device, `simulate` one,
//! `export` history, manage the API's `users`, `audit verify` the audit trail, or print
//! shell `completions`.
//!
//! Layout: this file holds the CLI definition and the small commands. It names no
//! protocol: what the build knows comes from the kind registry (`backplane::kinds`), and
//! the registry's hooks fill in the CLI (`browse` schemes and options, `simulate` devices,
//! the kinds listed in `--help`). [`serve`] starts an engine and the HTTP API together and
//! stops both on SIGINT/SIGTERM; [`demo`] runs the dairy plant; [`browse`], [`simulate`]
//! and [`export`] are those commands.

mod audit;
mod browse;
mod demo;
mod export;
mod reload;
mod serve;
mod simulate;
mod users;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use backplane_config::{Diagnostic, Plan};
use backplane_connector::kind::AnyKind;
use backplane_engine::Registry;
use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{FromArgMatches, Parser, Subcommand, ValueEnum};

/// jemalloc, not the C library's allocator: with the options built in from
/// `.cargo/config.toml` (one arena, freed pages returned within a second) the gateway holds
/// 5–11 MB less at 10 000 tags for the same CPU (docs/performance.md, "The allocator").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(name = "backplane", version, about = "Backplane: the industrial data backbone", long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Log filter: a level for Backplane's own lines (third-party libraries stay at `warn`
    /// unless named), or directives, e.g. `debug` or `info,backplane_engine=debug,opcua_client=info`.
    #[arg(long, global = true, env = "BACKPLANE_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway with a configuration file.
    Run {
        config: PathBuf,
        /// Override `[api] listen`, e.g. 127.0.0.1:9000 (port 0 picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate a configuration without connecting to anything; lists every error.
    Check { config: PathBuf },
    /// Show what changes from one configuration to another (sources, sinks, models,
    /// assets, bindings, production, writes) and whether a reload (SIGHUP to `run`)
    /// applies it.
    Plan {
        /// The configuration running now.
        old: PathBuf,
        /// The configuration to change to.
        new: PathBuf,
    },
    /// Run the simulated Acme Dairy plant (examples/dairy.toml) with no broker or database.
    Demo {
        /// Override the API address (default 127.0.0.1:8080; port 0 picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Where the demo writes its data (samples.jsonl).
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
    /// Scan a device to map its addresses and print bindings to paste; the URL's scheme
    /// picks the protocol (the schemes are listed below), and `backplane browse URL --help`
    /// lists the protocol's options.
    // `--help` after the URL is the protocol's (`browse::run`); alone, this command's
    // (`browse_help`).
    #[command(disable_help_flag = true)]
    Browse {
        /// The device's URL (the schemes are listed below).
        #[arg(allow_hyphen_values = true)]
        url: String,
        /// The protocol's options.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        options: Vec<String>,
    },
    /// Run a simulated device of the demo plant (`backplane demo` starts them by itself;
    /// `backplane run examples/dairy.toml` needs them running).
    Simulate {
        /// The simulated device (the simulators are listed below).
        device: String,
        /// Where to listen (default: the address examples/dairy.toml expects).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// The gateway's data directory, for simulators that write into it (e.g. their
        /// certificate into the gateway's trust list; examples/dairy.toml uses
        /// examples/data).
        #[arg(long, default_value = "examples/data")]
        data_dir: PathBuf,
    },
    /// Export a model's history as a wide, AI-ready table (CSV or Parquet).
    Export(Box<export::ExportArgs>),
    /// The audit trail: every machine write, change of context or production state, login
    /// and refusal, hash-chained (docs/security.md).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage the HTTP API's users and machine tokens (the `[api] users` file).
    Users(users::UsersArgs),
    /// Print a shell completion script, e.g. `backplane completions bash > /etc/bash_completion.d/backplane`.
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Check the trail's hash chain and sequence: exit 0 when intact, 1 when a record was
    /// changed, removed or inserted (each place is printed), 2 when it cannot be read.
    Verify {
        /// A trail directory or one exported file; or give the gateway's configuration.
        #[arg(required_unless_present = "config")]
        path: Option<PathBuf>,
        /// The gateway's configuration: verifies `<data_dir>/audit`.
        #[arg(long, conflicts_with = "path")]
        config: Option<PathBuf>,
    },
}

/// The command line, completed from the registry: the simulators `simulate` accepts and
/// the kinds, browse schemes and simulators listed after the help.
fn command(registry: &Registry) -> clap::Command {
    use clap::CommandFactory;
    let simulators = backplane::kinds::simulators(registry);
    let devices = PossibleValuesParser::new(simulators.iter().map(|s| {
        PossibleValue::new(s.name).help(format!("{}; listens on {} by default", s.about, s.default_listen))
    }));
    Cli::command()
        .after_help(backplane::kinds::overview(registry))
        .mut_subcommand("simulate", |c| c.mut_arg("device", |a| a.value_parser(devices)))
        .mut_subcommand("browse", |c| c.after_help(browse::schemes(registry)))
}

/// `backplane browse --help`: the command's own help, since `--help` after a URL is the
/// protocol's.
fn browse_help(registry: &Registry) -> ExitCode {
    let mut command = command(registry).bin_name("backplane");
    // Builds the subcommands' names (`backplane browse`) for their usage lines.
    command.build();
    let printed = command
        .find_subcommand_mut("browse")
        .map(|browse| browse.print_long_help());
    match printed {
        Some(Ok(())) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

fn main() -> ExitCode {
    let registry = backplane::registry();
    let matches = command(&registry).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(cli.log_format, &cli.log);
    match cli.command {
        Command::Check { config } => check(&config, &registry),
        Command::Plan { old, new } => plan(&old, &new, &registry),
        Command::Run { config, listen } => match load(&config, &registry) {
            Some(plan) => serve::run_blocking(plan.gateway.workers, || async move {
                serve::run(plan, &registry, Some(config), listen, None, None).await
            }),
            None => ExitCode::FAILURE,
        },
        Command::Demo { listen, data_dir } => {
            serve::run_blocking(None, || demo::run(registry, listen, data_dir))
        }
        Command::Browse { url, .. } if url == "--help" || url == "-h" => browse_help(&registry),
        Command::Browse { url, options } => browse::run(&registry, url, options),
        Command::Simulate {
            device,
            listen,
            data_dir,
        } => simulate::run(&registry, &device, listen, data_dir),
        Command::Audit(AuditCommand::Verify { path, config }) => match (path, config) {
            (Some(path), _) => audit::verify(&path),
            (None, Some(config)) => match load(&config, &registry) {
                Some(plan) => audit::verify(&audit::dir(&plan)),
                None => ExitCode::FAILURE,
            },
            (None, None) => ExitCode::FAILURE,
        },
        Command::Export(args) => {
            let plan = match &args.config {
                Some(path) => match load(path, &registry) {
                    Some(plan) => Some(plan),
                    None => return ExitCode::FAILURE,
                },
                None => None,
            };
            match backplane_historian::export::run(&args.options(), plan.as_ref()) {
                Ok(summary) => {
                    eprintln!(
                        "{} rows, {} assets written to {}",
                        summary.rows,
                        summary.assets,
                        args.output.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Users(args) => users::run(args),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut command(&registry),
                "backplane",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}

fn load(path: &Path, registry: &Registry) -> Option<Plan> {
    match backplane_config::load(path, &registry.catalog()) {
        Ok(plan) => Some(plan),
        Err(diagnostics) => {
            report(&diagnostics);
            None
        }
    }
}

fn report(diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        eprintln!("{d}\n");
    }
    let n = diagnostics.len();
    eprintln!("{n} error{}", if n == 1 { "" } else { "s" });
}

fn check(path: &Path, registry: &Registry) -> ExitCode {
    let Some(plan) = load(path, registry) else {
        return ExitCode::FAILURE;
    };
    // The users file is read at start like the configuration: check it with it.
    if let Some(users) = &plan.api.users
        && let Err(e) = backplane_api::users::Users::load(users)
    {
        eprintln!("error: [api] users: {e}");
        return ExitCode::FAILURE;
    }
    let tags: usize = plan
        .assets
        .iter()
        .filter_map(|a| a.model.as_ref())
        .map(|m| m.attributes.len())
        .sum();
    let bound: usize = plan.assets.iter().map(|a| a.bindings.len()).sum();
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    println!(
        "{}: ok — {}, {}, {} ({} bound), {}, {}; config version {}",
        path.display(),
        count(plan.models.len(), "model"),
        count(plan.assets.len(), "asset"),
        count(tags, "tag"),
        bound,
        count(plan.sources.len(), "source"),
        count(plan.sinks.len(), "sink"),
        &plan.version[..plan.version.len().min(12)],
    );
    // What each kind has to say about its enabled instances (e.g. a request plan).
    let sources = plan
        .sources
        .iter()
        .map(|s| (s, registry.source(&s.kind).map(|k| &**k as &dyn AnyKind)));
    let sinks = plan
        .sinks
        .iter()
        .map(|s| (s, registry.sink(&s.kind).map(|k| &**k as &dyn AnyKind)));
    for (spec, kind) in sources.chain(sinks).filter(|(spec, _)| spec.enabled) {
        for line in kind
            .map(|k| k.summarize(&plan, &spec.name, &spec.settings))
            .unwrap_or_default()
        {
            println!("  {line}");
        }
    }
    ExitCode::SUCCESS
}

fn plan(old: &Path, new: &Path, registry: &Registry) -> ExitCode {
    let Some(running) = load(old, registry) else {
        eprintln!("({} does not load: no plan)", old.display());
        return ExitCode::FAILURE;
    };
    match reload::decide(new, registry, &running) {
        reload::Decision::Unchanged => println!("{} → {}: no changes", old.display(), new.display()),
        reload::Decision::Invalid(errors) => {
            for e in &errors {
                eprintln!("{e}\n");
            }
            eprintln!(
                "{}: {} error{}; a reload refuses it",
                new.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            return ExitCode::FAILURE;
        }
        reload::Decision::Refused(changes) => {
            println!("{} → {}: a reload refuses this", old.display(), new.display());
            for line in reload::refusals(&changes) {
                println!("  {line}");
            }
            // The other changes, for the restart that applies them.
            for change in changes.iter().filter(|c| !c.part.needs_process_restart()) {
                println!("{change}");
            }
        }
        reload::Decision::Apply(new_plan, changes) => {
            println!(
                "{} → {}: {} change{}",
                old.display(),
                new.display(),
                changes.len(),
                if changes.len() == 1 { "" } else { "s" }
            );
            for change in &changes {
                println!("{change}");
            }
            println!(
                "A reload (SIGHUP) applies them in the same process: buffered data, context, the latest \
                 values and production state are kept, and the API keeps its listener and sessions. \
                 The sources and sinks:"
            );
            let old = backplane_connector::Topology::new(running);
            for line in reload::components(&old, *new_plan, registry) {
                println!("  {line}");
            }
        }
    }
    ExitCode::SUCCESS
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(log_directives(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_directives("info")));
    // Colour codes only for a person at a terminal, not in journald or a log file.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The log filter for `--log`: a bare level (`info`, `debug`) is Backplane's own level;
/// third-party libraries (the OPC UA stack, HTTP, MQTT internals) log at `warn` or less
/// unless a directive names them (`--log debug,opcua_client=debug`), so the gateway's own
/// lines are what a person reads first.
fn log_directives(filter: &str) -> String {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| match LEVELS.iter().position(|l| l.eq_ignore_ascii_case(d)) {
            Some(level) => {
                let others = LEVELS.get(level.min(2)).copied().unwrap_or("warn");
                format!("{others},backplane={d}")
            }
            None => d.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::log_directives;

    #[test]
    fn a_bare_level_is_backplanes_and_third_parties_stay_at_warn_unless_named() {
        assert_eq!(log_directives("info"), "warn,backplane=info");
        assert_eq!(log_directives("DEBUG"), "warn,backplane=DEBUG");
        // Quieter than warn applies to everyone.
        assert_eq!(log_directives("error"), "error,backplane=error");
        assert_eq!(
            log_directives("debug, opcua_client=debug"),
            "warn,backplane=debug,opcua_client=debug"
        );
        assert_eq!(log_directives("backplane_engine=trace"), "backplane_engine=trace");
    }
}
