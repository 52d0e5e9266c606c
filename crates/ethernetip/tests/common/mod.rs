//! cpppo's EtherNet/IP server (`python -m cpppo.server.enip`, Logix-style tags) as a child
//! process, cpppo's own client to set and check values independently of our code, the
//! engine with the `ethernetip` kind for the lab probe, and settings from TOML text.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use std::sync::Arc;

use backplane_engine::Engine;
use backplane_ethernetip::{EnipKind, EnipSettings};
use backplane_testkit::peers;
#[allow(unused_imports)] // not every test binary uses every helper
pub use backplane_testkit::probe::{eventually, good, latest, write};

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
    backplane_testkit::probe::start_engine(config, dir, &registry)
}

/// Settings from the text of a `[[sources]]` table's own keys.
pub fn settings(text: &str) -> Arc<EnipSettings> {
    let (settings, diagnostics) = backplane_config::reader::with_table(text, Path::new("t.toml"), |mut t| {
        backplane_ethernetip::config::parse_settings(&mut t)
    });
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    Arc::new(settings.flatten().unwrap())
}
