//! The `backplane` binary: `run` a configuration, `check` one without connecting to
//! anything, run the `demo` plant on embedded defaults, or print shell `completions`.
//!
//! Layout: this file holds the CLI definition and the commands; [`serve`] starts an engine
//! and the HTTP API together and stops both on SIGINT/SIGTERM.

mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use backplane_config::{Diagnostic, Plan};
use backplane_engine::Registry;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

/// The demo configuration, embedded so `backplane demo` works from any directory.
const DAIRY: &str = include_str!("../../../examples/dairy.toml");

#[derive(Parser, Debug)]
#[command(name = "backplane", version, about = "Backplane: the industrial data backbone", long_about = None)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Log filter, e.g. `info` or `backplane_engine=debug,info`.
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
    /// Run the simulated Acme Dairy plant (examples/dairy.toml) with no broker or database.
    Demo {
        /// Override the API address (default 127.0.0.1:8080; port 0 picks a free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Where the demo writes its data (samples.jsonl).
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
    /// Print a shell completion script, e.g. `backplane completions bash > /etc/bash_completion.d/backplane`.
    Completions { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    let registry = Registry::with_builtins();
    match cli.command {
        Command::Check { config } => check(&config, &registry),
        Command::Run { config, listen } => match load(&config, &registry) {
            Some(plan) => serve::run_blocking(plan, registry, listen, None),
            None => ExitCode::FAILURE,
        },
        Command::Demo { listen, data_dir } => {
            let origin = std::env::current_dir()
                .unwrap_or_default()
                .join("examples/dairy.toml");
            match backplane_config::load_str(DAIRY, &origin, &registry.catalog()) {
                Ok(mut plan) => {
                    plan.gateway.data_dir = data_dir;
                    serve::run_blocking(plan, registry, listen, Some(serve::demo_banner))
                }
                Err(diagnostics) => {
                    report(&diagnostics);
                    ExitCode::FAILURE
                }
            }
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "backplane", &mut std::io::stdout());
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
    let tags: usize = plan
        .assets
        .iter()
        .filter_map(|a| a.model.as_ref())
        .map(|m| m.attributes.len())
        .sum();
    let bound: usize = plan.assets.iter().map(|a| a.bindings.len()).sum();
    println!(
        "{}: ok — {} models, {} assets, {} tags ({} bound), {} sources, {} sinks; config version {}",
        path.display(),
        plan.models.len(),
        plan.assets.len(),
        tags,
        bound,
        plan.sources.len(),
        plan.sinks.len(),
        &plan.version[..plan.version.len().min(12)],
    );
    ExitCode::SUCCESS
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
