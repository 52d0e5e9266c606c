//! Loopback ports for peers and brokers a test starts itself.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A loopback port free a moment ago, for servers that cannot report the port they bound
/// to (asyncua, Mosquitto) or to point a client at nothing.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
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
