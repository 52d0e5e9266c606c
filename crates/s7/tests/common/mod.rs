//! python-snap7's S7 server (tests/peers/s7_server.py) as a child process, driven through
//! its stdin, and helpers shared by the tests that talk to it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use backplane_s7::S7Settings;
use backplane_testkit::peers;

/// A python-snap7 server process; killed on drop.
pub struct Peer {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    pub port: u16,
}

impl Peer {
    /// Starts the server on any free port and waits until it listens.
    pub fn start() -> Peer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/s7_server.py");
        let mut child = Command::new(peers::python())
            .arg(script)
            .arg("0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the python-snap7 server");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut peer = Peer {
            child,
            stdin,
            lines,
            port: 0,
        };
        let line = peer.line();
        peer.port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line}"));
        peer
    }

    fn line(&mut self) -> String {
        match self.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = self.child.kill();
                panic!("the python-snap7 server printed nothing within 30 s");
            }
        }
    }

    /// Sends one command and returns the server's one-line answer.
    pub fn command(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        self.line()
    }

    /// Read requests the server has answered so far.
    pub fn reads(&mut self) -> u64 {
        let line = self.command("reads");
        line.strip_prefix("READS ").and_then(|n| n.parse().ok()).unwrap()
    }

    pub fn url(&self) -> String {
        format!("s7://127.0.0.1:{}", self.port)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Source settings from TOML keys (after `url`).
pub fn settings(url: &str, extra: &str) -> Arc<S7Settings> {
    let text = format!("url = \"{url}\"\n{extra}");
    let (settings, diagnostics) =
        backplane_config::reader::with_table(&text, Path::new("test.toml"), |mut t| {
            let s = backplane_s7::config::parse_settings(&mut t);
            t.finish();
            s
        });
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    Arc::new(settings.flatten().unwrap())
}

pub fn addresses(list: &[&str]) -> Vec<Arc<str>> {
    list.iter().map(|a| Arc::from(*a)).collect()
}
