//! A process the benchmark started: stopped with SIGTERM (then SIGKILL) when done, killed
//! when dropped, so an early error never leaves a broker or gateway behind; and, for an
//! interrupted run, what is still running and which directories to remove.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Pids of the processes started and not yet stopped, for [`kill_all`].
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Temporary directories not yet removed (and not kept), for [`kill_all`].
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Remove `dir` if the run is interrupted before it is removed normally.
pub fn remove_if_interrupted(dir: &Path) {
    if let Ok(mut dirs) = DIRS.lock() {
        dirs.push(dir.to_owned());
    }
}

/// `dir` was removed (or kept) normally.
pub fn removed(dir: &Path) {
    if let Ok(mut dirs) = DIRS.lock() {
        dirs.retain(|d| d != dir);
    }
}

fn forget(pid: u32) {
    if let Ok(mut live) = LIVE.lock() {
        live.retain(|p| *p != pid);
    }
}

/// SIGKILL to every process started and not yet stopped, then removes the directories:
/// on SIGINT/SIGTERM the benchmark exits without unwinding, so no `Drop` runs.
pub fn kill_all() {
    let pids = LIVE.lock().map(|l| l.clone()).unwrap_or_default();
    for pid in pids {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -KILL {pid}"))
            .status();
    }
    // The gateway may still be writing its log for a moment after the signal.
    std::thread::sleep(Duration::from_millis(200));
    for dir in DIRS.lock().map(|d| d.clone()).unwrap_or_default() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[derive(Debug)]
pub struct Proc {
    pub name: &'static str,
    child: Option<Child>,
    pid: u32,
}

impl Proc {
    pub fn spawn(name: &'static str, command: &mut Command) -> Result<Proc, String> {
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name} ({:?}): {e}", command.get_program()))?;
        let pid = child.id();
        if let Ok(mut live) = LIVE.lock() {
            live.push(pid);
        }
        Ok(Proc {
            name,
            child: Some(child),
            pid,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its stdout, once (when it was spawned with a pipe there).
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.as_mut()?.stdout.take()
    }

    /// Its stdin, once (when it was spawned with a pipe there).
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.as_mut()?.stdin.take()
    }

    /// An error if it has exited already (with its status), e.g. a gateway that refused
    /// its configuration.
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Err(format!("{} exited: {status}", self.name)),
            Some(Err(e)) => Err(format!("{}: {e}", self.name)),
            _ => Ok(()),
        }
    }

    /// SIGTERM, as a service manager stops it; SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        forget(self.pid);
        if let Ok(None) = child.try_wait() {
            // The shell's built-in `kill`: no procps or libc binding needed.
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!("kill -TERM {}", self.pid))
                .status();
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            forget(self.pid);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads lines from `stdout` until one starts with `prefix` and returns the rest of it;
/// an error at end of output. Lines before it are skipped.
pub fn wait_for_line(stdout: &mut BufReader<ChildStdout>, prefix: &str) -> Result<String, String> {
    let mut line = String::new();
    loop {
        line.clear();
        match stdout.read_line(&mut line) {
            Ok(0) => return Err(format!("output ended before a line starting with `{prefix}`")),
            Ok(_) => {
                if let Some(rest) = line.trim_end().strip_prefix(prefix) {
                    return Ok(rest.to_owned());
                }
            }
            Err(e) => return Err(format!("reading output: {e}")),
        }
    }
}
