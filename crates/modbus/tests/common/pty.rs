//! A null-modem cable: two pseudo-terminals joined by `socat` (Debian package `socat`;
//! .ci/run installs it). Each end is a real tty device, opened with its termios settings
//! like a USB serial adapter. Never skipped: without socat the test fails and says why.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The two ends, `a` and `b`, as symlinks in a temporary directory; socat is killed and
/// the directory removed on drop.
pub struct NullModem {
    socat: Child,
    dir: tempfile::TempDir,
}

impl NullModem {
    pub fn new() -> NullModem {
        let dir = tempfile::tempdir().unwrap();
        let end = |name: &str| format!("pty,raw,echo=0,link={}", dir.path().join(name).display());
        let socat = Command::new("socat")
            .arg(end("a"))
            .arg(end("b"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run socat ({e}): install it with `apt-get install socat` (.ci/run does)")
            });
        let mut modem = NullModem { socat, dir };
        // socat creates the links once both ptys exist; the bound is a safety net.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(modem.a().exists() && modem.b().exists()) {
            if let Ok(Some(status)) = modem.socat.try_wait() {
                panic!("socat ended ({status}) before creating its ptys");
            }
            assert!(Instant::now() < deadline, "socat made no ptys within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        modem
    }

    /// The end our source opens.
    pub fn a(&self) -> PathBuf {
        self.dir.path().join("a")
    }

    /// The end the device (pymodbus) opens.
    pub fn b(&self) -> PathBuf {
        self.dir.path().join("b")
    }
}

impl Drop for NullModem {
    fn drop(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}
