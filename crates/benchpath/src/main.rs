//! `bench-path`: the whole-process benchmark of the device → source → pipeline → buffer →
//! MQTT socket path (docs/performance.md). Entry point: `scripts/bench-path`.
//!
//! Each point starts its own device (Modbus or OPC UA), Mosquitto, counting subscriber and
//! `backplane run` on a generated configuration (an `mqtt` UNS sink or a `sparkplug` sink),
//! measures after a warm-up, and stops them all. The
//! device and the subscriber are this binary again (hidden subcommands), so /proc gives
//! each process's CPU and memory apart.

mod broker;
mod callgrind;
mod child;
mod config;
mod floor;
mod floor_point;
mod http;
mod memory;
mod modbus_server;
mod opcua_server;
mod procstat;
mod report;
mod rig;
mod sparkplug;
mod subscriber;
mod throughput;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use config::{Payload, Sink, SinkKind, Source};
use throughput::{Point, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "bench-path",
    about = "Whole-process benchmark: Modbus or OPC UA device → backplane run → MQTT broker → subscriber",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    helper: Option<Helper>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// One small point (1000 tags, QoS 0, per-sample, short warm-up and window; Modbus → UNS
    /// unless --source or --sink say otherwise), to check that the benchmark runs and
    /// prints; its figures mean little.
    #[arg(long)]
    quick: bool,
    /// What to run: throughput points, memory points (device and broker unreachable), both,
    /// or the floor: the Modbus → UNS points at QoS 0 with `floor-gateway` in the gateway's
    /// place, which does only the path's system calls (src/floor.rs).
    #[arg(long, value_enum, default_value_t = Run::All)]
    run: Run,
    /// Tag counts (multiples of 125 make whole blocks).
    #[arg(long, value_delimiter = ',', default_values_t = [1_000u32, 10_000, 100_000])]
    tags: Vec<u32>,
    /// The device and the gateway's source: Modbus TCP, OPC UA subscriptions, OPC UA polling.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Source::Modbus])]
    source: Vec<Source>,
    /// The sink: `mqtt` with UNS JSON, or `sparkplug` (DDATA, QoS 0; --qos and --payload do
    /// not apply to it).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [SinkKind::Uns])]
    sink: Vec<SinkKind>,
    /// MQTT QoS of the UNS sink.
    #[arg(long, value_delimiter = ',', default_values_t = [0u8, 1])]
    qos: Vec<u8>,
    /// UNS payload forms: one message per sample, or one per asset instance of 125 samples.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Payload::Sample, Payload::Instance])]
    payload: Vec<Payload>,
    /// Poll period of the one poll group (every tag is read and published once per period).
    #[arg(long, default_value = "1s", value_parser = duration)]
    period: Duration,
    /// Modbus requests outstanding at once on the gateway's one connection (the source's
    /// `in_flight`; the device takes any number).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=32))]
    in_flight: u16,
    /// The gateway's `[gateway] workers` (runtime threads); left out: one per CPU.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: Option<u16>,
    /// Seconds from the first sample at the subscriber to the start of the window.
    #[arg(long, default_value_t = 10.0)]
    warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 30.0)]
    window: f64,
    /// Memory points: seconds after start before sampling RSS.
    #[arg(long, default_value_t = 10.0)]
    settle: f64,
    /// Runs of every point; the tables show the range. Points are interleaved (all points,
    /// then all again), so a burst of load from elsewhere does not hit one point's runs only.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// The gateway binary (default: `backplane` beside this binary, i.e. the same build).
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Where the points' temporary directories go (the gateway's buffer is written there).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep each point's directory (configuration, logs) and print where.
    #[arg(long)]
    keep: bool,
    /// Run the gateway under `valgrind --tool=callgrind`, instrumented during the window
    /// only, and write each run's profile into this directory; prints instructions per
    /// sample. CPU figures are then valgrind's: lower the rate (--period) so it keeps up.
    #[arg(long)]
    callgrind: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Run {
    Throughput,
    Memory,
    All,
    Floor,
}

#[derive(Debug, Subcommand)]
enum Helper {
    /// The Modbus TCP device (prints `listening PORT`).
    #[command(hide = true)]
    ServeModbus,
    /// The OPC UA device: `tags` variables, each one higher every period (prints `listening PORT`).
    #[command(hide = true)]
    ServeOpcua {
        #[arg(long)]
        tags: u32,
        #[arg(long, value_parser = duration)]
        period: Duration,
        /// Where the server may write (its PKI directory, left empty).
        #[arg(long)]
        dir: PathBuf,
    },
    /// The floor in the gateway's place (prints `running` once connected).
    #[command(hide = true)]
    FloorGateway {
        #[arg(long)]
        device: u16,
        #[arg(long)]
        broker: u16,
        #[arg(long)]
        tags: u32,
        #[arg(long, value_enum)]
        payload: Payload,
        #[arg(long, value_parser = duration)]
        period: Duration,
        #[arg(long)]
        dir: PathBuf,
    },
    /// The counting subscriber (prints `subscribed`, then answers each stdin line).
    #[command(hide = true)]
    Subscribe {
        #[arg(long)]
        port: u16,
        #[arg(long)]
        topic: String,
        #[arg(long, value_enum, default_value_t = subscriber::Format::Uns)]
        format: subscriber::Format,
    },
}

/// `500ms`, `1s`, `2.5s`, `1m`.
fn duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|at| text.split_at(at))
        .ok_or_else(|| format!("{text:?}: give a unit (ms, s, m)"))?;
    let number: f64 = number.parse().map_err(|_| format!("{text:?}: not a number"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        _ => return Err(format!("{text:?}: the unit is ms, s or m")),
    };
    if !(0.01..=3600.0).contains(&seconds) {
        return Err(format!(
            "{text:?}: from 10ms to 1h (the gateway's least period is 10ms)"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.helper {
        Some(Helper::ServeModbus) => serve_modbus(),
        Some(Helper::ServeOpcua { tags, period, dir }) => serve_opcua(tags, period, &dir),
        Some(Helper::Subscribe { port, topic, format }) => subscriber::run(port, &topic, format),
        Some(Helper::FloorGateway {
            device,
            broker,
            tags,
            payload,
            period,
            dir,
        }) => floor::run(device, broker, tags, payload, period, &dir),
        None => {
            stop_children_on_signal();
            bench(cli.bench)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-path: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve_modbus() -> Result<(), String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    println!("listening {port}");
    // The benchmark holds our stdin: when it ends, however it ends, so do we.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    modbus_server::serve(listener)
}

fn serve_opcua(tags: u32, period: Duration, dir: &std::path::Path) -> Result<(), String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    opcua_server::serve(listener, tags, period, dir)
}

/// On SIGINT or SIGTERM: kill what the benchmark started (brokers, gateways), then exit.
fn stop_children_on_signal() {
    std::thread::spawn(|| {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        runtime.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) =
                (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
            else {
                return;
            };
            // The shell's convention: 128 + the signal's number.
            let code = tokio::select! {
                _ = int.recv() => 130,
                _ = term.recv() => 143,
            };
            eprintln!("bench-path: interrupted; stopping what it started");
            child::kill_all();
            std::process::exit(code);
        });
    });
}

fn bench(mut args: BenchArgs) -> Result<(), String> {
    if args.quick {
        args.tags = vec![1_000];
        args.qos = vec![0];
        args.payload = vec![Payload::Sample];
        args.warmup = 2.0;
        args.window = 5.0;
        args.settle = 2.0;
        args.repeat = 1;
        if args.run == Run::All {
            args.run = Run::Throughput;
        }
    }
    if args.tags.contains(&0) || args.qos.iter().any(|q| *q > 2) || args.repeat == 0 {
        return Err("tags must be at least 1, QoS 0 to 2, --repeat at least 1".into());
    }
    let bin = match args.bin {
        Some(bin) => bin,
        None => std::env::current_exe()
            .map_err(|e| format!("own executable: {e}"))?
            .with_file_name("backplane"),
    };
    // The floor runs in the gateway's place: it needs no gateway binary.
    if args.run != Run::Floor && !bin.is_file() {
        return Err(format!(
            "no gateway binary at {}: build it (scripts/bench-path does: cargo build --release -p backplane) or pass --bin",
            bin.display()
        ));
    }
    // Absolute, as valgrind and the report use it.
    let callgrind = match args.callgrind {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            Some(
                dir.canonicalize()
                    .map_err(|e| format!("{}: {e}", dir.display()))?,
            )
        }
        None => None,
    };
    let settings = Settings {
        bin,
        period: args.period,
        tuning: config::Tuning {
            in_flight: usize::from(args.in_flight),
            workers: args.workers.map(usize::from),
        },
        warmup: Duration::from_secs_f64(args.warmup.max(0.0)),
        window: Duration::from_secs_f64(args.window.max(1.0)),
        dir: args.dir,
        keep: args.keep,
        callgrind,
    };
    println!(
        "bench-path: gateway {}, poll period {:?}, {} Modbus request(s) in flight, {} runtime worker(s), warm-up {:?}, window {:?}, {} run(s) per point, {} CPUs",
        settings.bin.display(),
        settings.period,
        settings.tuning.in_flight,
        settings
            .tuning
            .workers
            .map_or("default".to_owned(), |n| n.to_string()),
        settings.warmup,
        settings.window,
        args.repeat,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );

    let mut points = Vec::new();
    for &tags in &args.tags {
        for &source in &args.source {
            for &kind in &args.sink {
                let sinks = match kind {
                    SinkKind::Uns => args
                        .qos
                        .iter()
                        .flat_map(|&qos| {
                            args.payload
                                .iter()
                                .map(move |&payload| Sink::Uns { qos, payload })
                        })
                        .collect(),
                    SinkKind::Sparkplug => vec![Sink::Sparkplug],
                };
                for sink in sinks {
                    let point = Point { tags, source, sink };
                    if !points.contains(&point) {
                        points.push(point);
                    }
                }
            }
        }
    }
    let mut figures = Vec::new();
    let mut footprints = Vec::new();
    let mut failures = 0;
    for run in 1..=args.repeat {
        if args.run == Run::Floor {
            for &tags in &args.tags {
                for &payload in &args.payload {
                    match floor_point::run(&settings, tags, payload) {
                        Ok(f) => println!("{}", f.line(run, args.repeat)),
                        Err(e) => {
                            failures += 1;
                            println!(
                                "floor, {tags} tags, {} (run {run}/{}): FAILED: {e}",
                                payload.name(),
                                args.repeat
                            );
                        }
                    }
                }
            }
            continue;
        }
        if args.run != Run::Memory {
            for &point in &points {
                match throughput::run(&settings, point) {
                    Ok(f) => {
                        println!("{}", report::run_line(&f, run, args.repeat));
                        figures.push(f);
                    }
                    Err(e) => {
                        failures += 1;
                        println!("{} (run {run}/{}): FAILED: {e}", point.label(), args.repeat);
                    }
                }
            }
        }
        if args.run != Run::Throughput {
            // The smallest point is the base that per-tag memory is measured against.
            let mut tags = args.tags.clone();
            tags.push(config::BLOCK);
            tags.sort_unstable();
            tags.dedup();
            for &t in &tags {
                match memory::run(&settings, t, Duration::from_secs_f64(args.settle.max(0.0))) {
                    Ok(f) => {
                        println!(
                            "memory, {t} tags, device and broker unreachable (run {run}/{}): RSS {:.1} MB, peak {:.1} MB",
                            args.repeat,
                            f.rss / 1e6,
                            f.peak / 1e6
                        );
                        footprints.push(f);
                    }
                    Err(e) => {
                        failures += 1;
                        println!("memory, {t} tags (run {run}/{}): FAILED: {e}", args.repeat);
                    }
                }
            }
        }
    }
    if !figures.is_empty() {
        println!("\n{}", report::throughput_table(&points, &figures));
    }
    if !footprints.is_empty() {
        println!("\n{}", report::memory_table(&footprints));
    }
    if failures > 0 {
        return Err(format!("{failures} run(s) failed"));
    }
    Ok(())
}
