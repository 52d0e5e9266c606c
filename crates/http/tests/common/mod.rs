//! Python's standard-library HTTP server (tests/peers/json_server.py) serving a JSON file
//! the test rewrites, as a child process; the engine with the `http` kind; helpers.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use backplane_engine::{ComponentHealth, Engine, EngineHandle, Registry};
use backplane_testkit::engine as support;

pub const WAIT: Duration = Duration::from_secs(20);

/// The registry of these tests: the engine's built-ins and `http`.
pub fn registry() -> Registry {
    let mut registry = backplane_engine::builtins();
    registry.add_source("http", backplane_http::HttpKind);
    registry
}

pub fn start(config: &str, data_dir: &Path) -> Engine {
    support::start(config, data_dir, &registry())
}

/// The JSON server; killed on drop.
pub struct JsonServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    require: Option<String>,
}

impl JsonServer {
    /// Serves `dir/doc.json` on a free port; `require` is a header (`"Name: value"`) the
    /// server insists on.
    pub fn start(dir: &Path, require: Option<&str>) -> JsonServer {
        let mut server = JsonServer {
            child: None,
            port: 0,
            dir: dir.to_path_buf(),
            require: require.map(str::to_owned),
        };
        server.launch(0);
        server
    }

    fn launch(&mut self, port: u16) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/json_server.py");
        let mut command = Command::new("python3");
        command.arg(script).arg(port.to_string()).arg(&self.dir);
        if let Some(require) = &self.require {
            command.arg("--require").arg(require);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 json_server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"));
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/doc", self.port)
    }

    /// Replaces the served document.
    pub fn serve(&self, body: &str) {
        let tmp = self.dir.join("doc.json.tmp");
        std::fs::write(&tmp, body).unwrap();
        std::fs::rename(&tmp, self.dir.join("doc.json")).unwrap();
    }

    /// Kills the server (the port is closed).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (fresh counts).
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            // The port may be in TIME_WAIT for a moment; the script reuses the address.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut again = JsonServer {
                    child: None,
                    port: 0,
                    dir: self.dir.clone(),
                    require: self.require.clone(),
                };
                again.launch(port);
                again.child.take()
            }));
            if let Ok(child) = result {
                self.child = child;
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "cannot listen on {port} again"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's counts by status (`"200"`, `"304"`, `"401"`) and the last
    /// Authorization header it saw.
    pub async fn stats(&self) -> serde_json::Value {
        reqwest::get(format!("http://127.0.0.1:{}/stats", self.port))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn count(&self, status: &str) -> u64 {
        self.stats().await[status].as_u64().unwrap_or(0)
    }
}

impl Drop for JsonServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Source `name`'s health.
pub fn health(handle: &EngineHandle, name: &str) -> ComponentHealth {
    handle
        .health()
        .components
        .into_iter()
        .find(|c| c.component == "source" && c.name == name)
        .expect("the source in health")
}

/// The value of `backplane_component_events_total` for source `name`'s `event`.
pub fn events(handle: &EngineHandle, name: &str, event: &str) -> u64 {
    let series =
        format!("backplane_component_events_total{{component=\"source\",name=\"{name}\",event=\"{event}\"}}");
    support::metric(&handle.metrics_text(), &series).unwrap_or(0.0) as u64
}

/// The samples of `path` the jsonl sink wrote to `samples.jsonl`, in order.
pub fn written(data_dir: &Path, path: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(data_dir.join("samples.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|j| j["kind"] == "sample" && j["path"] == path)
        .collect()
}
