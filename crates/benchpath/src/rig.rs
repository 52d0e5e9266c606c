//! The processes of one point: the device, the broker, the subscriber and the gateway,
//! each its own process so /proc separates their CPU and memory. Dropped, it kills them
//! all and removes its directory (unless kept).

use std::fs::File;
use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::child::{Proc, wait_for_line};
use crate::config::{Payload, Sink, Source};
use crate::subscriber::{Counts, Format};

const GRACE: Duration = Duration::from_secs(10);

/// The benchmark's own directory of one point: configuration, gateway data, logs.
#[derive(Debug)]
pub struct Workdir {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    keep: bool,
}

impl Workdir {
    pub fn new(parent: Option<&Path>, keep: bool) -> Result<Workdir, String> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("bench-path-");
        let dir = match parent {
            Some(p) => builder.tempdir_in(p),
            None => builder.tempdir(),
        }
        .map_err(|e| format!("temporary directory: {e}"))?;
        if !keep {
            crate::child::remove_if_interrupted(dir.path());
        }
        Ok(Workdir {
            path: dir.path().to_owned(),
            dir: Some(dir),
            keep,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn log(&self, name: &str) -> Result<File, String> {
        File::create(self.path.join(name)).map_err(|e| format!("{name}: {e}"))
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        crate::child::removed(&self.path);
        if self.keep
            && let Some(dir) = self.dir.take()
        {
            eprintln!("kept {}", dir.keep().display());
        }
    }
}

/// This binary again, as one of its helper subcommands.
fn helper(args: &[&str], log: File) -> Result<Command, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let mut command = Command::new(exe);
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log);
    Ok(command)
}

/// The device, listening on the port it reports: Modbus, or OPC UA with `tags` variables
/// changing every `period`.
pub fn start_device(
    workdir: &Workdir,
    source: Source,
    tags: u32,
    period: Duration,
) -> Result<(Proc, u16), String> {
    let (tags, period) = (tags.to_string(), format!("{}ms", period.as_millis()));
    let dir = workdir.path().display().to_string();
    let args: Vec<&str> = match source {
        Source::Modbus => vec!["serve-modbus"],
        Source::Opcua | Source::OpcuaPoll => {
            vec!["serve-opcua", "--tags", &tags, "--period", &period, "--dir", &dir]
        }
    };
    let mut proc = Proc::spawn("device", &mut helper(&args, workdir.log("device.log")?)?)?;
    let stdout = proc.take_stdout().ok_or("device: no stdout")?;
    let port = wait_for_line(&mut BufReader::new(stdout), "listening ")?;
    let port = port.parse().map_err(|_| format!("device: bad port {port:?}"))?;
    Ok((proc, port))
}

/// The floor in the gateway's place ([`crate::floor`]), connected once this returns.
pub fn start_floor(
    workdir: &Workdir,
    device: u16,
    broker: u16,
    tags: u32,
    payload: Payload,
    period: Duration,
) -> Result<Proc, String> {
    let (device, broker, tags) = (device.to_string(), broker.to_string(), tags.to_string());
    let period = format!("{}ms", period.as_millis());
    let dir = workdir.path().display().to_string();
    let args = [
        "floor-gateway",
        "--device",
        &device,
        "--broker",
        &broker,
        "--tags",
        &tags,
        "--payload",
        payload.name(),
        "--period",
        &period,
        "--dir",
        &dir,
    ];
    let mut proc = Proc::spawn("floor", &mut helper(&args, workdir.log("floor.log")?)?)?;
    let stdout = proc.take_stdout().ok_or("floor: no stdout")?;
    wait_for_line(&mut BufReader::new(stdout), "running")
        .map_err(|e| format!("floor (see floor.log): {e}"))?;
    Ok(proc)
}

/// The counting subscriber, subscribed once this returns.
#[derive(Debug)]
pub struct Subscriber {
    pub proc: Proc,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Subscriber {
    pub fn start(workdir: &Workdir, broker: u16, sink: Sink) -> Result<Subscriber, String> {
        let port = broker.to_string();
        let format = match sink.format() {
            Format::Uns => "uns",
            Format::Sparkplug => "sparkplug",
        };
        let mut command = helper(
            &[
                "subscribe",
                "--port",
                &port,
                "--topic",
                sink.topic_filter(),
                "--format",
                format,
            ],
            workdir.log("subscriber.log")?,
        )?;
        let mut proc = Proc::spawn("subscriber", &mut command)?;
        let stdin = proc.take_stdin();
        let mut stdout = BufReader::new(proc.take_stdout().ok_or("subscriber: no stdout")?);
        wait_for_line(&mut stdout, "subscribed")
            .map_err(|e| format!("subscriber (see subscriber.log): {e}"))?;
        Ok(Subscriber { proc, stdin, stdout })
    }

    /// What it has counted so far; the delays since the last [`Subscriber::mark`].
    pub fn snap(&mut self) -> Result<Counts, String> {
        self.ask("")
    }

    /// What it has counted so far, and a new set of delays from now on.
    pub fn mark(&mut self) -> Result<Counts, String> {
        self.ask("mark")
    }

    fn ask(&mut self, line: &str) -> Result<Counts, String> {
        let stdin = self.stdin.as_mut().ok_or("subscriber: stopped")?;
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("subscriber: {e}"))?;
        let line = wait_for_line(&mut self.stdout, "")?;
        Counts::parse(&line).ok_or_else(|| format!("subscriber: unreadable counts {line:?}"))
    }

    /// Waits for the end of a burst: samples arrived, then none for a quarter period (at
    /// most three periods: a saturated path is never quiet). A window started there lasts
    /// whole periods, so it ends at the same point of the cycle, well before the next
    /// burst: a cycle's samples come as a burst, and a window cut inside one would be off by
    /// up to a cycle's worth. (Quiet since any moment would do for a poll
    /// that keeps time to the millisecond, but OPC UA publishing intervals jitter by the
    /// server's timer, 100 ms in async-opcua, and a start just before a burst is then cut.)
    pub fn quiet_moment(&mut self, period: Duration) -> Result<(), String> {
        let quiet = (period / 4).clamp(Duration::from_millis(20), Duration::from_millis(250));
        let deadline = Instant::now() + period * 3;
        let mut last = self.snap()?.samples;
        let mut since = Instant::now();
        let mut burst = false;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
            let samples = self.snap()?.samples;
            if samples != last {
                last = samples;
                since = Instant::now();
                burst = true;
            } else if burst && since.elapsed() >= quiet {
                break;
            }
        }
        Ok(())
    }

    pub fn stop(&mut self) {
        // Closing its stdin ends it.
        self.stdin.take();
        self.proc.stop(GRACE);
    }
}

/// `backplane run` on `config`, with the API on a free loopback port; under callgrind
/// (writing its profile to the path given) when asked.
pub fn start_gateway(
    bin: &Path,
    config: &Path,
    workdir: &Workdir,
    callgrind: Option<&Path>,
) -> Result<(Proc, SocketAddr), String> {
    let mut command = match callgrind {
        Some(out) => crate::callgrind::command(bin, out),
        None => Command::new(bin),
    };
    let mut proc = Proc::spawn(
        "gateway",
        command
            .arg("run")
            .arg(config)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(workdir.log("gateway.log")?),
    )?;
    let mut stdout = BufReader::new(proc.take_stdout().ok_or("gateway: no stdout")?);
    let base = wait_for_line(&mut stdout, "API listening on http://").map_err(|e| {
        let log = std::fs::read_to_string(workdir.path().join("gateway.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        format!("gateway: {e}; its log ends: {}", tail.join(" | "))
    })?;
    let api: SocketAddr = base
        .trim_end_matches('/')
        .parse()
        .map_err(|_| format!("gateway: unreadable API address {base:?}"))?;
    // Drained, so the gateway never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    Ok((proc, api))
}

pub fn stop(proc: &mut Proc) {
    proc.stop(GRACE);
}

/// A gateway under callgrind writes its profile at exit, slowly: give it time.
pub fn stop_profiled(proc: &mut Proc) {
    proc.stop(GRACE * 12);
}
