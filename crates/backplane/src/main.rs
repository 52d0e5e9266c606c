//! The `backplane` binary: `run` a configuration, `check` one without connecting to
//! anything, run the `demo` plant on embedded defaults, or print shell `completions`.
//!
//! Layout: this file holds the CLI definition and the commands; [`serve`] starts an engine
//! and the HTTP API together and stops both on SIGINT/SIGTERM; the library side
//! (`lib.rs`) says which kinds this build registers.

mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use backplane::{DAIRY, DAIRY_FILLER_URL, kinds};
use backplane_config::{Diagnostic, Plan};
use backplane_engine::Registry;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

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

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SimulatedDevice {
    /// Filler line 1, vendor A, Modbus TCP (register map in docs/connectors/modbus.md).
    ModbusFiller,
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
    /// Scan a device to map its addresses, e.g.
    /// `backplane browse modbus://192.168.1.20:502 --unit 1 --range hr:0-999`.
    Browse(backplane_modbus::BrowseArgs),
    /// Run a simulated device, e.g. the vendor-A filler that examples/dairy.toml reads over
    /// Modbus TCP (`backplane demo` starts it by itself).
    Simulate {
        #[arg(value_enum)]
        device: SimulatedDevice,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:5020")]
        listen: SocketAddr,
    },
    /// Export a model's history as a wide, AI-ready table (CSV, or Parquet in builds with
    /// the `parquet` feature).
    Export(backplane_historian::ExportArgs),
    /// Print a shell completion script, e.g. `backplane completions bash > /etc/bash_completion.d/backplane`.
    Completions { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    let kinds = kinds();
    let registry = kinds.registry.clone();
    match cli.command {
        Command::Check { config } => check(&config, &registry),
        Command::Run { config, listen } => match load(&config, &registry) {
            Some(plan) => serve::run_blocking(|| async move { serve::run(plan, kinds, listen, None).await }),
            None => ExitCode::FAILURE,
        },
        Command::Demo { listen, data_dir } => serve::run_blocking(|| async move {
            // The vendor-A filler (line 1) is a real Modbus TCP device on a free loopback port.
            let (address, simulator) =
                backplane_modbus::spawn_filler_simulator(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .await
                    .map_err(|e| format!("cannot start the Modbus filler simulator: {e}"))?;
            let text = DAIRY.replace(DAIRY_FILLER_URL, &format!("tcp://{address}"));
            let origin = std::env::current_dir()
                .unwrap_or_default()
                .join("examples/dairy.toml");
            let mut plan = backplane_config::load_str(&text, &origin, &registry.catalog()).map_err(|d| {
                report(&d);
                "the embedded demo configuration is invalid".to_owned()
            })?;
            plan.gateway.data_dir = data_dir;
            tracing::info!(%address, "Modbus filler simulator (line 1, vendor A) started");
            let result = serve::run(plan, kinds, listen, Some(serve::demo_banner)).await;
            simulator.abort();
            result
        }),
        Command::Browse(args) => serve::run_blocking(|| async move {
            let report = args.run().await.map_err(|e| e.to_string())?;
            println!("{report}");
            Ok(())
        }),
        Command::Simulate {
            device: SimulatedDevice::ModbusFiller,
            listen,
        } => serve::run_blocking(|| async move {
            let (address, simulator) = backplane_modbus::spawn_filler_simulator(listen)
                .await
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            println!("Modbus filler simulator (vendor A) listening on tcp://{address}; Ctrl-C stops it");
            serve::shutdown_signal().await;
            simulator.abort();
            Ok(())
        }),
        Command::Export(args) => {
            let plan = match &args.config {
                Some(path) => match load(path, &registry) {
                    Some(plan) => Some(plan),
                    None => return ExitCode::FAILURE,
                },
                None => None,
            };
            match backplane_historian::export::run(&args, plan.as_ref()) {
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
    for summary in backplane_modbus::plan_summaries(&plan) {
        match summary {
            Ok(summary) => println!("  {summary}"),
            Err(e) => println!("  {e}"),
        }
    }
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
