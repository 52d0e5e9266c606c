//! cpppo's EtherNet/IP server (`python -m cpppo.server.enip`, Logix-style tags) as a child
//! process, cpppo's own client to set and check values independently of our code, and the
//! engine with the `ethernetip` kind for the lab probe.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use backplane_engine::{Engine, EngineHandle, Latest, MachineWrite, WriteStatus};
use backplane_ethernetip::EnipKind;
use backplane_model::Value;
use backplane_security::{AuthMethod, Identity, Role};
use backplane_testkit::engine as support;
use backplane_testkit::peers;

/// A cpppo server; killed on drop.
pub struct Cpppo {
    child: Child,
    pub port: u16,
}

impl Cpppo {
    /// Serves `tags` (`Name=TYPE[N]`, cpppo's syntax) on `port` (0: any free port) and
    /// waits until it listens.
    pub fn start(port: u16, tags: &[&str]) -> Cpppo {
        let mut child = Command::new(peers::python())
            .args([
                "-m",
                "cpppo.server.enip",
                "--address",
                &format!("127.0.0.1:{port}"),
                "-A",
                "--no-udp",
            ])
            .args(tags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cpppo's EtherNet/IP server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // "Network TCP Server address = ('127.0.0.1', 40343)"
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cpppo printed nothing within 30 s");
        };
        let port = line
            .rsplit_once(", ")
            .and_then(|(_, p)| p.trim_end_matches(')').trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from cpppo: {line}"));
        Cpppo { child, port }
    }

    /// Runs cpppo's client with `operations` (`Tag=(TYPE)value` writes, `Tag` reads) and
    /// returns what it printed; panics unless every operation succeeded.
    pub fn client(&self, operations: &[&str]) -> String {
        let out = Command::new(peers::python())
            .args([
                "-m",
                "cpppo.server.enip.client",
                "--print",
                "--address",
                &format!("127.0.0.1:{}", self.port),
            ])
            .args(operations)
            .output()
            .expect("run cpppo's client");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "cpppo client {operations:?} failed:\n{text}"
        );
        text
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Cpppo {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Restarts after 100–500 ms: the peer needs a moment to come back.
pub fn start_engine(config: &str, dir: &Path) -> Engine {
    let mut registry = backplane_engine::builtins();
    registry.add_source("ethernetip", EnipKind);
    let options = support::backoff(Duration::from_millis(100), Duration::from_millis(500));
    support::start_with(config, dir, &registry, options)
}

pub fn latest(handle: &EngineHandle, attribute: &str) -> Option<Latest> {
    support::latest(handle, &format!("acme/lab/area/line/probe/{attribute}"))
}

/// The value, when it is good.
pub fn good(handle: &EngineHandle, attribute: &str) -> Option<Value> {
    latest(handle, attribute)
        .filter(|l| l.sample.quality.is_good())
        .and_then(|l| l.sample.value)
}

/// Polls every 20 ms for up to 30 s; the bound is a safety net, not a timing assertion.
pub async fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    support::eventually_every(what, Duration::from_secs(30), Duration::from_millis(20), check).await
}

/// Writes through the engine's write gate as an engineer; the read-back, or why not.
pub async fn write(handle: &EngineHandle, attribute: &str, value: Value) -> Result<Option<Value>, String> {
    let report = handle
        .write(MachineWrite {
            tag: format!("acme/lab/area/line/probe/{attribute}"),
            value,
            dry_run: false,
            who: Identity::new("test", Role::Engineer, AuthMethod::Password),
            from: "test".into(),
        })
        .await;
    match report.status {
        WriteStatus::Done => Ok(report.read_back),
        WriteStatus::Refused { rule, reason } => Err(format!("{rule}: {reason}")),
        WriteStatus::Failed { reason, .. } => Err(reason),
        WriteStatus::DryRun => Err("dry run".into()),
    }
}
