//! The pymodbus server (tests/peers/modbus_server.py) as a child process, shared by the
//! tests that talk to it, over TCP or on one end of a serial line
//! (`backplane_testkit::pty`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use backplane_testkit::peers;

pub mod probe;

/// A pymodbus server process; killed on drop.
pub struct Peer {
    child: Child,
    pub port: u16,
}

impl Peer {
    /// Starts the server on `port` (0: any free port) and waits until it listens.
    pub fn start(port: u16) -> Peer {
        Peer::start_framed(port, "tcp")
    }

    /// `framing`: `tcp` (MBAP) or `rtu` (RTU frames with CRC over the TCP socket).
    pub fn start_framed(port: u16, framing: &str) -> Peer {
        let port = port.to_string();
        let mut args = vec![port.as_str()];
        if framing == "rtu" {
            args.push("rtu");
        }
        let (child, line) = spawn(&args);
        let mut peer = Peer { child, port: 0 };
        peer.port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line}"));
        peer
    }

    /// Serves RTU on the serial port at `path` (19200 8N2) and waits until it has opened it.
    pub fn start_serial(path: &Path) -> Peer {
        let path = path.to_str().expect("a UTF-8 path");
        let (child, line) = spawn(&["serial", path]);
        assert_eq!(
            line,
            format!("SERIAL {path}"),
            "unexpected first line from the server"
        );
        Peer { child, port: 0 }
    }

    /// Freezes the server (SIGSTOP): connections stay open, but nothing is answered.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen server answer again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} the pymodbus server");
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the script with `args` and returns it with the first line it prints.
fn spawn(args: &[&str]) -> (Child, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/modbus_server.py");
    let mut child = Command::new(peers::python())
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the pymodbus server");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    let Ok(line) = line else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the pymodbus server printed nothing within 30 s");
    };
    (child, line)
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}
