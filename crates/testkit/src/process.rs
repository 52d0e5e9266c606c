//! A `backplane` process a test starts: killed when the test ends, however it ends, and
//! read until it says where its API listens.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A child process, killed and reaped when dropped.
#[derive(Debug)]
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `command` (stdout read here, stderr dropped), waits for its first line,
/// `API listening on URL`, and returns the process, the URL and the `extra` lines that
/// follow it. The rest of stdout is drained so the gateway never blocks on a full pipe.
pub fn start_gateway(command: &mut Command, extra: usize) -> (Running, String, Vec<String>) {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let mut stdout = BufReader::new(running.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("API listening on ")
        .unwrap_or_else(|| panic!("no `API listening on` line: {line:?}"))
        .to_owned();
    let lines = (0..extra)
        .map(|_| {
            line.clear();
            stdout.read_line(&mut line).unwrap();
            line.trim().to_owned()
        })
        .collect();
    std::thread::spawn(move || for _ in stdout.lines() {});
    (running, base, lines)
}
