//! A private nats-server with JetStream on a free port, for tests that kill and restart
//! it (`kill -9`, then the same store directory again). Never the shared server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use backplane_testkit::net::{free_port, wait_for_port};

pub struct PrivateNats {
    pub port: u16,
    pub store: PathBuf,
    child: Option<Child>,
}

impl PrivateNats {
    /// Starts `nats-server -js -sd <store>` on a free port of 127.0.0.1.
    pub fn start(store: &Path) -> PrivateNats {
        let mut server = PrivateNats {
            port: free_port(),
            store: store.to_path_buf(),
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port and store directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into()))
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed (apt-get install nats-server)");
        self.child = Some(child);
        assert!(
            wait_for_port(self.port, Duration::from_secs(10)),
            "nats-server listens on {}",
            self.port
        );
    }

    /// `kill -9`: no goodbye, no flush.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
    }
}
