//! Shared by the integration tests: the asyncua peer (a process killed on drop), the
//! engine started from TOML text, and waiting without timing assertions; what other crates'
//! tests need too comes from backplane-testkit.

#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use backplane_engine::{Engine, EngineHandle, Registry};
use backplane_opcua::OpcUaKind;
use backplane_testkit::engine as support;
use backplane_testkit::peers::python;

/// The asyncua server of tests/peers/opcua_server.py; killed on drop.
pub struct Peer {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    pub port: u16,
    pub args: Vec<String>,
}

impl Peer {
    /// Starts the server with `args` (besides `--port`) and waits until it accepts
    /// connections (asyncua takes several seconds).
    pub fn start(port: u16, args: &[String]) -> Peer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/opcua_server.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg("--port")
            .arg(port.to_string())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the asyncua server");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let peer = Peer {
            child,
            stdin,
            lines,
            port,
            args: args.to_vec(),
        };
        let line = peer
            .lines
            .recv_timeout(Duration::from_secs(90))
            .expect("the asyncua server prints READY");
        assert!(line.starts_with("READY"), "unexpected first line: {line}");
        peer
    }

    /// Counters kept by the server script.
    pub fn stats(&mut self) -> serde_json::Value {
        writeln!(self.stdin, "stats").unwrap();
        self.stdin.flush().unwrap();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(10))
                .expect("the server answers stats");
            if let Some(json) = line.strip_prefix("STATS ") {
                return serde_json::from_str(json).unwrap();
            }
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn registry() -> Registry {
    let mut registry = backplane_engine::builtins();
    registry.add_source("opcua", OpcUaKind);
    registry
}

/// Starts an engine on `config` with `dir` as data directory and a short restart backoff.
pub fn start_engine(config: &str, dir: &Path) -> Engine {
    let options = support::backoff(Duration::from_millis(200), Duration::from_millis(1000));
    support::start_with(config, dir, &registry(), options)
}

/// Polls every 50 ms for up to `secs`; the bound is a safety net, not a timing assertion.
pub async fn eventually<T>(what: &str, secs: u64, check: impl FnMut() -> Option<T>) -> T {
    support::eventually_every(what, Duration::from_secs(secs), Duration::from_millis(50), check).await
}

/// The health entry of source `name`: (state, last error).
pub fn source_health(handle: &EngineHandle, name: &str) -> (String, Option<String>) {
    let report = handle.health();
    let c = report
        .components
        .iter()
        .find(|c| c.name == name)
        .expect("the source is in health");
    (format!("{:?}", c.state), c.last_error.clone())
}
