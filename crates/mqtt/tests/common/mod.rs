//! Shared by the integration tests: engines started from TOML, a Mosquitto of our own on a
//! free port (killed on drop), a plain rumqttc observer, and the Python peers; what other
//! crates' tests need too comes from backplane-testkit.

#![allow(dead_code, unreachable_pub)] // each test file uses a different part

pub mod broker;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use backplane_engine::{Engine, Registry};
use backplane_testkit::engine as support;
pub use backplane_testkit::names::unique;
use backplane_testkit::net::{free_port, wait_for_port};
use bytes::Bytes;
use tokio::sync::mpsc;

pub fn registry() -> Registry {
    let mut registry = backplane_engine::builtins();
    backplane_mqtt::register(&mut registry);
    registry.add_stage(
        "production",
        std::sync::Arc::new(backplane_production::ProductionStageKind),
    );
    registry
}

/// Starts an engine on `config`, with its data in `data_dir`.
pub fn start(config: &str, data_dir: &Path) -> Engine {
    let options = support::backoff(Duration::from_millis(100), Duration::from_millis(500));
    support::start_with(config, data_dir, &registry(), options)
}

/// The shared Mosquitto of the development machines and CI.
pub const SHARED_PORT: u16 = 1883;

/// A Mosquitto of the test's own, for fault tests; killed when dropped.
pub struct Mosquitto {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// Keep sessions and queued messages across a graceful stop (SIGTERM).
    persistent: bool,
    /// More configuration lines, after the listener's (e.g. its TLS settings).
    extra: String,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Mosquitto::launch_new(false, String::new())
    }

    /// A broker whose listener also gets `extra` (configuration lines, e.g. TLS).
    pub fn start_with(extra: String) -> Mosquitto {
        Mosquitto::launch_new(false, extra)
    }

    /// A broker that saves sessions and queued QoS 1 messages when stopped gracefully, so
    /// a persistent subscriber misses nothing across [`Mosquitto::stop_gracefully`].
    pub fn start_persistent() -> Mosquitto {
        Mosquitto::launch_new(true, String::new())
    }

    fn launch_new(persistent: bool, extra: String) -> Mosquitto {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        if persistent {
            give_to_broker_user(dir.path());
        }
        let mut m = Mosquitto {
            child: None,
            port,
            dir,
            persistent,
            extra,
        };
        m.launch();
        m
    }

    fn launch(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        let persistence = if self.persistent {
            format!(
                "persistence true\npersistence_location {}/\nmax_queued_messages 0\nmax_queued_bytes 0\n",
                self.dir.path().display()
            )
        } else {
            "persistence false\n".to_owned()
        };
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\n{persistence}{}",
                self.port, self.extra
            ),
        )
        .unwrap();
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("mosquitto is not installed (apt-get install mosquitto)");
        // The port may linger briefly after a kill: retry until it listens.
        for _ in 0..50 {
            let child = Command::new(binary)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            self.child = Some(child);
            if wait_for_port(self.port, Duration::from_secs(3)) {
                return;
            }
            self.stop();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("mosquitto did not start on port {}", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, as a service manager stops it: a persistent broker saves its state.
    pub fn stop_gracefully(&mut self) {
        if let Some(mut c) = self.child.take() {
            // The shell's built-in `kill`: no procps needed.
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!("kill -TERM {}", c.id()))
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn launch_again(&mut self) {
        self.launch();
    }

    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Mosquitto started as root drops to the `mosquitto` user, which cannot write the test's
/// root-owned directory: a persistent broker would then lose its sessions and queued
/// messages at a stop, saying so only in its own log. Run as root, the directory is given
/// to that user (from /etc/passwd); otherwise the broker runs as the test's user already.
fn give_to_broker_user(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata(dir).unwrap().uid() != 0 {
        return;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let owner = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            ["mosquitto", _, uid, gid, ..] => Some((uid.parse().ok()?, gid.parse().ok()?)),
            _ => None,
        }
    });
    let (uid, gid) =
        owner.expect("run as root, the broker drops to the `mosquitto` user, which does not exist");
    std::os::unix::fs::chown(dir, Some(uid), Some(gid)).unwrap();
}

/// `mosquitto_pub` at QoS 1: returns once the broker has the message.
pub fn mosquitto_pub(port: u16, topic: &str, payload: &str, retain: bool) {
    let mut command = Command::new("mosquitto_pub");
    command.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-q",
        "1",
        "-t",
        topic,
        "-m",
        payload,
    ]);
    if retain {
        command.arg("-r");
    }
    let status = command.status().expect("mosquitto_pub is installed");
    assert!(status.success(), "mosquitto_pub to port {port} failed");
}

/// A source's counter `event` in the engine's metrics text (0 when never counted).
pub fn source_counter(metrics: &str, source: &str, event: &str) -> f64 {
    let series = format!(
        "backplane_component_events_total{{component=\"source\",name=\"{source}\",event=\"{event}\"}}"
    );
    backplane_testkit::engine::metric(metrics, &series).unwrap_or(0.0)
}

/// One message seen by an [`Observer`].
#[derive(Clone, Debug)]
pub struct Seen {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
}

impl Seen {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| panic!("{}: not JSON: {e}", self.topic))
    }
}

/// A plain rumqttc subscriber that keeps reconnecting and resubscribing.
pub struct Observer {
    rx: mpsc::UnboundedReceiver<Seen>,
    task: tokio::task::JoinHandle<()>,
    pub seen: Vec<Seen>,
}

impl Observer {
    pub async fn start(port: u16, filter: &str) -> Observer {
        let mut options = rumqttc::MqttOptions::new(unique("observer"), "127.0.0.1", port);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 100);
        let (tx, rx) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
        let filter = filter.to_owned();
        let task = tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        let _ = client.subscribe(filter.clone(), rumqttc::QoS::AtLeastOnce).await;
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        if let Some(s) = subscribed_tx.take() {
                            let _ = s.send(());
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let _ = tx.send(Seen {
                            topic: p.topic,
                            payload: p.payload,
                            retain: p.retain,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subscribed_rx)
            .await
            .expect("observer subscribed")
            .unwrap();
        Observer {
            rx,
            task,
            seen: Vec::new(),
        }
    }

    /// Waits (up to 15 s) for a message satisfying `pred` and returns it; everything seen
    /// meanwhile is kept in `seen`.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) => {
                    self.seen.push(m.clone());
                    if pred(&m) {
                        return m;
                    }
                }
                _ => {
                    let mut topics: Vec<&str> = self.seen.iter().map(|s| s.topic.as_str()).collect();
                    topics.sort_unstable();
                    topics.dedup();
                    panic!(
                        "gave up waiting for {what}; saw {} messages on {topics:?}",
                        self.seen.len()
                    )
                }
            }
        }
    }

    /// Collects for `d` more.
    pub async fn collect(&mut self, d: Duration) {
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            self.seen.push(m);
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The peers' Python (see backplane-testkit's `peers`).
pub fn python() -> PathBuf {
    backplane_testkit::peers::python().to_path_buf()
}

/// A Python helper script of this crate's tests.
pub fn peer_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

pub fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas")
}

/// Validates `(schema file, payload)` pairs with the `jsonschema` package; panics with every
/// violation.
pub fn validate_with_schemas(pairs: &[(&str, serde_json::Value)]) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payloads.jsonl");
    let text: String = pairs
        .iter()
        .map(|(schema, payload)| serde_json::json!({"schema": schema, "payload": payload}).to_string() + "\n")
        .collect();
    std::fs::write(&file, text).unwrap();
    let out = Command::new(python())
        .arg(peer_script("validate_schemas.py"))
        .arg(schemas_dir())
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "schema validation failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains(&format!("{} valid", pairs.len())), "{report}");
}

/// Removes retained messages a test left on a broker.
pub async fn clear_retained(port: u16, topics: impl IntoIterator<Item = String>) {
    let (client, mut eventloop) = rumqttc::AsyncClient::new(
        rumqttc::MqttOptions::new(unique("cleaner"), "127.0.0.1", port),
        1000,
    );
    let topics: Vec<String> = topics.into_iter().collect();
    let n = topics.len();
    tokio::spawn(async move {
        for t in topics {
            let _ = client
                .publish(t, rumqttc::QoS::AtLeastOnce, true, Vec::new())
                .await;
        }
    });
    let mut acked = 0;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while acked < n {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    })
    .await;
}

/// Reads the production state the engine's production stage last published.
#[allow(dead_code)] // not every test binary reads it
pub fn production_view<R>(
    engine: &backplane_engine::EngineHandle,
    read: impl FnOnce(&backplane_production::Production) -> R,
) -> R {
    let handle = engine
        .services()
        .get::<backplane_production::ProductionHandle>()
        .expect("the production stage runs");
    read(&handle.view())
}

/// Waits (up to `within`) until sink `name`'s `device_to_socket` histogram holds `at_least`
/// delays, and checks that they are seconds: not nanoseconds or milliseconds, a loopback
/// write within a minute of the reading, never negative. Returns the count seen and the
/// metrics text read last.
pub async fn recorded_delays(engine: &Engine, name: &str, at_least: f64, within: Duration) -> (f64, String) {
    let handle = engine.handle();
    let series = |part: &str| {
        format!(
            "backplane_component_delay_seconds_{part}{{component=\"sink\",name=\"{name}\",what=\"device_to_socket\"}}"
        )
    };
    let count = support::eventually("recorded delays", within, || {
        support::metric(&handle.metrics_text(), &series("count")).filter(|n| *n >= at_least)
    })
    .await;
    let text = handle.metrics_text();
    let sum = support::metric(&text, &series("sum")).unwrap();
    let count_now = support::metric(&text, &series("count")).unwrap();
    assert!(count_now >= count);
    let mean = sum / count_now;
    assert!((0.0..60.0).contains(&mean), "mean delay {mean} s");
    (count_now, text)
}
