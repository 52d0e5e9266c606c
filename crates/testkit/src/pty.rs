//! A null-modem cable: two pseudo-terminals joined by `socat` (Debian package `socat`;
//! .ci/run installs it). Each end is a real tty device, opened with its termios settings
//! like a USB serial adapter. Never skipped: without socat the test fails and says why.
//! Shared by the serial tests of the modbus (RTU) and ascii crates.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The two ends, `a` and `b`, as symlinks in a temporary directory; socat is killed and
/// the directory removed on drop.
#[derive(Debug)]
pub struct NullModem {
    socat: Child,
    dir: tempfile::TempDir,
}

impl NullModem {
    pub fn new() -> NullModem {
        let dir = tempfile::tempdir().unwrap();
        let socat = spawn(dir.path());
        let mut modem = NullModem { socat, dir };
        modem.wait_for_links();
        modem
    }

    /// Pulls the cable and plugs in a new one at the same paths: both ends' ptys vanish
    /// (whoever has them open reads an error or end of file), and new ones appear.
    pub fn restart(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
        let _ = std::fs::remove_file(self.a());
        let _ = std::fs::remove_file(self.b());
        self.socat = spawn(self.dir.path());
        self.wait_for_links();
    }

    fn wait_for_links(&mut self) {
        // socat creates the links once both ptys exist; the bound is a safety net.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(self.a().exists() && self.b().exists()) {
            if let Ok(Some(status)) = self.socat.try_wait() {
                panic!("socat ended ({status}) before creating its ptys");
            }
            assert!(Instant::now() < deadline, "socat made no ptys within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The end our source opens.
    pub fn a(&self) -> PathBuf {
        self.dir.path().join("a")
    }

    /// The end the device (the Python peer) opens.
    pub fn b(&self) -> PathBuf {
        self.dir.path().join("b")
    }
}

impl Default for NullModem {
    fn default() -> NullModem {
        NullModem::new()
    }
}

fn spawn(dir: &Path) -> Child {
    let end = |name: &str| format!("pty,raw,echo=0,link={}", dir.join(name).display());
    Command::new("socat")
        .arg(end("a"))
        .arg(end("b"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run socat ({e}): install it with `apt-get install socat` (.ci/run does)")
        })
}

impl Drop for NullModem {
    fn drop(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}
