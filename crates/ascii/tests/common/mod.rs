//! The ASCII device (tests/peers/ascii_device.py: a SICS scale and a line sender, written
//! with pyserial at 9600 baud or over a TCP socket) as a child process driven through its
//! stdin, and the lab probe on an engine with the `ascii` kind.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use backplane_ascii::AsciiKind;
use backplane_engine::{Engine, EngineHandle};
use backplane_model::{Quality, Value};
use backplane_testkit::peers;
#[allow(unused_imports)] // not every test binary uses every helper
pub use backplane_testkit::probe::{eventually, good, latest};

/// The device process; killed on drop.
pub struct Device {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    pub port: u16,
}

impl Device {
    /// A device on the serial port at `path` (9600 8N1); waits until it opened it.
    pub fn serial(path: &Path) -> Device {
        let path = path.to_str().unwrap();
        let mut device = Device::spawn(&["serial", path]);
        let first = device.next_line();
        assert_eq!(
            first,
            format!("SERIAL {path}"),
            "unexpected first line from the device"
        );
        device
    }

    /// A device listening on 127.0.0.1:`port` (0: any free port).
    pub fn tcp(port: u16) -> Device {
        let mut device = Device::spawn(&["tcp", &port.to_string()]);
        let first = device.next_line();
        device.port = first
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the device: {first}"));
        device
    }

    fn spawn(args: &[&str]) -> Device {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/ascii_device.py");
        let mut child = Command::new(peers::python())
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the ASCII device");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Device {
            child,
            stdin,
            lines,
            port: 0,
        }
    }

    fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(e) => {
                let _ = self.child.kill();
                panic!("the ASCII device printed nothing within 30 s ({e})");
            }
        }
    }

    /// Runs one command and returns what it printed before its "OK".
    pub fn command(&mut self, text: &str) -> Vec<String> {
        writeln!(self.stdin, "{text}").unwrap();
        self.stdin.flush().unwrap();
        let mut printed = Vec::new();
        loop {
            let line = self.next_line();
            if line == "OK" {
                return printed;
            }
            printed.push(line);
        }
    }

    /// Sends `bytes` as they are (paced at 9600 baud on a serial port).
    pub fn send(&mut self, bytes: &[u8]) {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.command(&format!("RAW {hex}"));
    }

    /// What the scale answers to `S`.
    pub fn weight(&mut self, status: &str, value: &str, unit: &str) {
        self.command(&format!("WEIGHT {status} {value} {unit}"));
    }

    /// The `S` commands the scale answered so far.
    pub fn polls(&mut self) -> u64 {
        let printed = self.command("POLLS");
        printed
            .iter()
            .find_map(|l| l.strip_prefix("POLLS ")?.parse().ok())
            .expect("the device prints POLLS n")
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An engine with the `ascii` kind; the source reconnects itself, so the supervisor's
/// backoff hardly matters.
pub fn start_engine(config: &str, dir: &Path) -> Engine {
    let mut registry = backplane_engine::builtins();
    registry.add_source("ascii", AsciiKind);
    backplane_testkit::probe::start_engine(config, dir, &registry)
}

/// Samples as [`record`] keeps them: value and quality, in order.
pub type Recorded = Arc<Mutex<Vec<(Option<Value>, Quality)>>>;

/// Every sample of the probe's `attribute` the pipeline delivers from now on, in order.
pub fn record(handle: &EngineHandle, attribute: &str) -> Recorded {
    let tag = handle
        .topology()
        .tag_by_path(&format!("acme/lab/area/line/probe/{attribute}"))
        .unwrap_or_else(|| panic!("no attribute {attribute}"))
        .id;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    let mut batches = handle.subscribe();
    tokio::spawn(async move {
        while let Ok(batch) = batches.recv().await {
            for s in batch.samples.iter().filter(|s| s.tag == tag) {
                out.lock().unwrap().push((s.value.clone(), s.quality));
            }
        }
    });
    seen
}

/// The source's counter `event` (`backplane_component_events_total`).
pub fn counter(handle: &EngineHandle, source: &str, event: &str) -> u64 {
    let series = format!(
        "backplane_component_events_total{{component=\"source\",name=\"{source}\",event=\"{event}\"}}"
    );
    backplane_testkit::engine::metric(&handle.metrics_text(), &series).unwrap_or(0.0) as u64
}

/// `text` with its XOR checksum as `*HH` (the covered bytes: all of `text`).
pub fn with_xor(text: &str) -> String {
    let x = text.bytes().fold(0u8, |a, b| a ^ b);
    format!("{text}*{x:02X}")
}
