//! A private Mosquitto on a free loopback port, configured so it never drops a message to
//! the counting subscriber (what it cannot send at once it queues, and its memory shows it).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::child::Proc;

/// A loopback port free a moment ago.
pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// Whether something accepts connections on loopback `port` within `timeout`.
pub fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn binary() -> Result<&'static str, String> {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| "mosquitto is not installed (apt-get install mosquitto)".to_owned())
}

/// Starts Mosquitto in `dir` (its configuration and log go there) and returns it with its port.
pub fn start(dir: &Path) -> Result<(Proc, u16), String> {
    let binary = binary()?;
    // A port can be taken between choosing and binding it: try a few.
    for _ in 0..10 {
        let port = free_port()?;
        let conf = dir.join("mosquitto.conf");
        // max_queued_messages 0: no limit, so QoS 0 messages to a subscriber that is behind
        // are queued rather than dropped (Mosquitto 2 drops them at the limit otherwise).
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_queued_messages 0\nlog_dest stderr\nlog_type error\nlog_type warning\n"
            ),
        )
        .map_err(|e| format!("writing {}: {e}", conf.display()))?;
        let log = std::fs::File::create(dir.join("mosquitto.log")).map_err(|e| e.to_string())?;
        let mut proc = Proc::spawn(
            "mosquitto",
            Command::new(binary)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(log),
        )?;
        if wait_for_port(port, Duration::from_secs(5)) && proc.check_running().is_ok() {
            return Ok((proc, port));
        }
        proc.stop(Duration::from_secs(1));
    }
    Err("mosquitto did not start (see mosquitto.log; --keep keeps it)".to_owned())
}
