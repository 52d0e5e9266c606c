//! The `backplane` binary: `run` a configuration, `check` one without connecting to
//! anything, run the `demo` plant on embedded defaults, or print shell `completions`.
//!
//! Layout: this file holds the CLI definition and the commands; [`serve`] starts an engine
//! and the HTTP API together and stops both on SIGINT/SIGTERM; the library side
//! (`lib.rs`) says which kinds this build registers.

mod demo;
mod serve;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use backplane::{DAIRY, DAIRY_FILLER_URL, DAIRY_OPCUA_URL, kinds};
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
    /// Filler line 1, vendor A, Modbus TCP (register map in docs/connectors/modbus.md);
    /// listens on 127.0.0.1:5020 by default.
    ModbusFiller,
    /// Filler line 2 (vendor B) and the pasteurizer, an OPC UA server with Basic256Sha256
    /// (address space in docs/connectors/opcua.md); listens on 127.0.0.1:4841 by default.
    OpcuaDairy,
}

/// `backplane browse opc.tcp://...` options.
#[derive(Parser, Debug)]
#[command(name = "backplane browse", about = "Browse an OPC UA server's address space")]
struct OpcUaBrowse {
    #[command(flatten)]
    args: backplane_opcua::BrowseArgs,
}

/// `backplane browse modbus://...` (and tcp://, rtu://, rtu+tcp://) options.
#[derive(Parser, Debug)]
#[command(name = "backplane browse", about = "Scan a Modbus device's addresses")]
struct ModbusBrowse {
    #[command(flatten)]
    args: backplane_modbus::BrowseArgs,
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
    /// Scan a device to map its addresses and print bindings to paste, e.g.
    /// `backplane browse modbus://192.168.1.20:502 --unit 1 --range hr:0-999` or
    /// `backplane browse opc.tcp://192.168.1.30:4840 --depth 3`;
    /// `backplane browse URL --help` lists the protocol's options.
    Browse {
        /// modbus://, tcp://, rtu://, rtu+tcp:// or opc.tcp://
        url: String,
        /// The protocol's options.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        options: Vec<String>,
    },
    /// Run a simulated device of the demo plant (`backplane demo` starts them by itself;
    /// `backplane run examples/dairy.toml` needs them running).
    Simulate {
        #[arg(value_enum)]
        device: SimulatedDevice,
        /// Where to listen (default: the address examples/dairy.toml expects).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// The gateway's data directory: the OPC UA simulator writes its certificate into
        /// the gateway's trust list there (examples/dairy.toml uses examples/data).
        #[arg(long, default_value = "examples/data")]
        data_dir: PathBuf,
    },
    /// Export a model's history as a wide, AI-ready table (CSV, or Parquet in builds with
    /// the `parquet` feature).
    Export(Box<backplane_historian::ExportArgs>),
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
            Some(plan) => {
                serve::run_blocking(|| async move { serve::run(plan, kinds, listen, None, None).await })
            }
            None => ExitCode::FAILURE,
        },
        Command::Demo { listen, data_dir } => serve::run_blocking(|| async move {
            // The devices are real protocol servers on free loopback ports: the vendor-A
            // filler (line 1) over Modbus TCP, and vendor B's OPC UA server (line 2, the
            // pasteurizer), whose certificate goes into the gateway's trust list.
            let (modbus, filler) =
                backplane_modbus::spawn_filler_simulator(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .await
                    .map_err(|e| format!("cannot start the Modbus filler simulator: {e}"))?;
            let pki = backplane_opcua::pki::default_pki_dir(&data_dir);
            let (opcua, opcua_server) =
                backplane_opcua::spawn_dairy_simulator(SocketAddr::from(([127, 0, 0, 1], 0)), &pki)
                    .await
                    .map_err(|e| format!("cannot start the OPC UA simulator: {e}"))?;
            let text = DAIRY
                .replace(DAIRY_FILLER_URL, &format!("tcp://{modbus}"))
                .replace(DAIRY_OPCUA_URL, &format!("opc.tcp://{opcua}"));
            let origin = std::env::current_dir()
                .unwrap_or_default()
                .join("examples/dairy.toml");
            let mut plan = backplane_config::load_str(&text, &origin, &registry.catalog()).map_err(|d| {
                report(&d);
                "the embedded demo configuration is invalid".to_owned()
            })?;
            plan.gateway.data_dir = data_dir;
            tracing::info!(%modbus, %opcua, "simulated devices started (Modbus filler, OPC UA line 2 and pasteurizer)");
            let result = serve::run(plan, kinds, listen, Some(serve::demo_banner), Some(demo::script)).await;
            filler.abort();
            opcua_server.stop();
            result
        }),
        Command::Browse { url, options } => {
            let argv = std::iter::once("backplane browse".to_owned())
                .chain(std::iter::once(url.clone()))
                .chain(options);
            if url.starts_with("opc.tcp://") {
                let args = OpcUaBrowse::parse_from(argv).args;
                serve::run_blocking(|| async move {
                    println!("{}", args.run().await.map_err(|e| e.to_string())?);
                    Ok(())
                })
            } else {
                let args = ModbusBrowse::parse_from(argv).args;
                serve::run_blocking(|| async move {
                    println!("{}", args.run().await.map_err(|e| e.to_string())?);
                    Ok(())
                })
            }
        }
        Command::Simulate {
            device,
            listen,
            data_dir,
        } => serve::run_blocking(|| async move {
            match device {
                SimulatedDevice::ModbusFiller => {
                    let listen = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5020)));
                    let (address, simulator) = backplane_modbus::spawn_filler_simulator(listen)
                        .await
                        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
                    println!(
                        "Modbus filler simulator (vendor A) listening on tcp://{address}; Ctrl-C stops it"
                    );
                    serve::shutdown_signal().await;
                    simulator.abort();
                }
                SimulatedDevice::OpcuaDairy => {
                    let listen = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4841)));
                    let pki = backplane_opcua::pki::default_pki_dir(&data_dir);
                    let (address, server) = backplane_opcua::spawn_dairy_simulator(listen, &pki).await?;
                    println!(
                        "OPC UA dairy simulator (line 2, pasteurizer) on opc.tcp://{address}; its certificate is trusted in {}; Ctrl-C stops it",
                        pki.display()
                    );
                    serve::shutdown_signal().await;
                    server.stop();
                }
            }
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
