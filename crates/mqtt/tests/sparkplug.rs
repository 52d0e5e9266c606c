//! Sparkplug B against a third-party implementation (pysparkplug, from PyPI) over the shared
//! Mosquitto: it decodes what our edge node publishes, and our host ingests what its edge
//! node publishes. Unique group ids keep runs apart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use backplane_model::{BadReason, Quality, Value};
use common::{SHARED_PORT, peer_script, python, start, unique};
use serde_json::Value as Json;

/// A Python peer whose stdout lines arrive on a channel; closing stdin asks it to finish.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    fn spawn(script: &str, args: &[&str]) -> Peer {
        let mut child = Command::new(python())
            .arg(peer_script(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Peer {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    let done = pred(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("{what}: gave up; saw {seen:?}"),
            }
        }
    }

    /// Closes stdin and returns every remaining line once the peer exits.
    fn finish(mut self) -> Vec<String> {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "peer exited with {status}");
        self.lines.try_iter().collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn edge_config(group: &str) -> String {
    format!(
        r#"
[gateway]
name = "spb-test-gw"
[namespace]
enterprise = "acme"
site = "plant"
[models.Tank.attributes]
level = {{ type = "float", unit = "%", range = [0, 100] }}
running = {{ type = "bool" }}
count = {{ type = "uint" }}
[[assets]]
path = "area"
level = "area"
[[assets]]
path = "area/tank-1"
model = "Tank"
source = "sim"
bindings.level = {{ address = "l" }}
bindings.running = {{ address = "r" }}
bindings.count = {{ address = "c" }}
[[sources]]
name = "sim"
kind = "simulator"
period = "100ms"
signals.l = {{ signal = "ramp", from = 0, to = 100, period = "5s" }}
signals.r = {{ signal = "sequence", values = [true, false], step = "300ms" }}
signals.c = {{ signal = "counter", type = "uint" }}
[[sinks]]
name = "spb"
kind = "sparkplug"
broker = "mqtt://127.0.0.1:{SHARED_PORT}"
group_id = "{group}"
edge_node_id = "edge-1"
"#
    )
}

fn records(lines: &[String]) -> Vec<Json> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<Json>(l).unwrap())
        .filter(|r| r.get("ready").is_none())
        .collect()
}

#[test]
fn a_third_party_decoder_reads_our_births_data_and_deaths_across_a_restart() {
    let group = unique("bp");
    let listener = Peer::spawn(
        "sparkplug_listen.py",
        &["127.0.0.1", &SHARED_PORT.to_string(), &group],
    );
    listener.wait_line("the listener to subscribe", |l| l.contains("ready"));
    let dir = tempfile::tempdir().unwrap();

    // Session 1 ends with an orderly stop (explicit NDEATH).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = start(&edge_config(&group), dir.path());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        engine.shutdown().await;
    });
    // Session 2, after a restart, dies like a killed process: the broker sends the will.
    let rt2 = tokio::runtime::Runtime::new().unwrap();
    let engine = rt2.block_on(async {
        let engine = start(&edge_config(&group), dir.path());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        engine
    });
    std::mem::forget(engine);
    rt2.shutdown_background();
    let mut lines = listener.wait_line("the will NDEATH", |l| {
        l.contains("NDEATH") && l.contains("\"bd_seq\": 1")
    });
    std::thread::sleep(Duration::from_millis(300));
    lines.extend(listener.finish());
    let records = records(&lines);

    let errors: Vec<&Json> = records.iter().filter(|r| r.get("error").is_some()).collect();
    assert!(errors.is_empty(), "pysparkplug could not decode: {errors:?}");

    // Split into sessions at each NBIRTH.
    let mut sessions: Vec<Vec<&Json>> = Vec::new();
    for r in &records {
        if r["type"] == "NBIRTH" {
            sessions.push(Vec::new());
        }
        if let Some(s) = sessions.last_mut() {
            s.push(r);
        }
    }
    assert_eq!(sessions.len(), 2, "one birth per session: {records:?}");

    for (i, session) in sessions.iter().enumerate() {
        let nbirth = session[0];
        let bd_seq = nbirth["bd_seq"].as_u64().unwrap();
        assert_eq!(
            bd_seq, i as u64,
            "bdSeq starts at 0 and increments across the restart"
        );
        let node_metrics: HashMap<&str, &Json> = nbirth["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["name"].as_str().unwrap(), m))
            .collect();
        assert_eq!(node_metrics["bdSeq"]["datatype"], 4, "bdSeq is Int64");
        assert_eq!(node_metrics["Node Control/Rebirth"]["datatype"], 11, "Boolean");
        assert_eq!(node_metrics["Node Control/Rebirth"]["value"], false);

        let dbirth = session.iter().find(|r| r["type"] == "DBIRTH").expect("a DBIRTH");
        assert_eq!(dbirth["device"], "area.tank-1");
        let birth_metrics: HashMap<&str, &Json> = dbirth["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["name"].as_str().unwrap(), m))
            .collect();
        let mut names: Vec<&str> = birth_metrics.keys().copied().collect();
        names.sort_unstable();
        assert_eq!(names, ["count", "level", "running"]);
        assert_eq!(birth_metrics["level"]["datatype"], 10, "Double");
        assert_eq!(birth_metrics["running"]["datatype"], 11, "Boolean");
        assert_eq!(birth_metrics["count"]["datatype"], 8, "UInt64");
        let aliases: HashMap<i64, &str> = birth_metrics
            .iter()
            .map(|(n, m)| (m["alias"].as_i64().expect("every metric has an alias"), *n))
            .collect();
        assert_eq!(aliases.len(), 3, "aliases are unique");

        let data: Vec<&&Json> = session.iter().filter(|r| r["type"] == "DDATA").collect();
        assert!(data.len() >= 3, "data was reported: {session:?}");
        for d in &data {
            for m in d["metrics"].as_array().unwrap() {
                // pysparkplug resolved the name from the alias through our DBIRTH.
                let alias = m["alias"].as_i64().unwrap();
                assert_eq!(Some(&m["name"].as_str().unwrap()), aliases.get(&alias));
            }
        }

        // seq: 0 on the NBIRTH, then +1 per message, wrapping at 256.
        let seqs: Vec<u64> = session
            .iter()
            .filter(|r| r["type"] != "NDEATH")
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs[0], 0);
        for pair in seqs.windows(2) {
            assert_eq!(pair[1], (pair[0] + 1) % 256, "seq continuity: {seqs:?}");
        }

        let ndeath = session.iter().find(|r| r["type"] == "NDEATH").expect("an NDEATH");
        assert_eq!(
            ndeath["bd_seq"].as_u64(),
            Some(bd_seq),
            "NDEATH carries the NBIRTH's bdSeq"
        );
        assert_eq!(ndeath["bd_seq_datatype"], 4);
    }
}

/// The edge node records, for one live DDATA in 8, the delay from its oldest sample's
/// reading (the gateway time) to its socket write, in seconds: `scripts/bench-path` reads
/// its percentiles for the Sparkplug points (docs/performance.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delay_from_reading_to_the_ddata_socket_write_is_recorded_in_seconds() {
    let group = unique("spb-delay");
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&edge_config(&group), dir.path());
    // A DDATA every 100 ms, one in 8 recorded: about one a second.
    common::recorded_delays(&engine, "spb", 5.0, Duration::from_secs(30)).await;
    engine.shutdown().await;
}

fn host_config(group: &str, host: &str) -> String {
    let a = |m: &str| format!("{group}/py-edge/tank-1:{m}");
    format!(
        r#"
[namespace]
enterprise = "acme"
site = "plant"
[models.Tank.attributes]
level = {{ type = "float", unit = "%" }}
running = {{ type = "bool" }}
count = {{ type = "int" }}
site_name = {{ type = "string" }}
[[assets]]
path = "area"
level = "area"
[[assets]]
path = "area/tank-1"
model = "Tank"
source = "scada"
bindings.level = {{ address = "{level}" }}
bindings.running = {{ address = "{running}" }}
bindings.count = {{ address = "{count}" }}
bindings.site_name = {{ address = "{group}/py-edge:Properties/site" }}
[[sources]]
name = "scada"
kind = "sparkplug"
broker = "mqtt://127.0.0.1:{SHARED_PORT}"
host_id = "{host}"
"#,
        level = a("Inputs/level"),
        running = a("running"),
        count = a("count"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_host_ingests_births_and_data_from_a_third_party_edge_node() {
    let group = unique("py");
    let host = unique("host");
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&host_config(&group, &host), dir.path());
    let handle = engine.handle();
    // The edge node waits for our STATE (online) before it is born, as a primary host's
    // edge nodes do, so nothing is published before we subscribed.
    let edge = Peer::spawn(
        "sparkplug_edge.py",
        &["127.0.0.1", &SHARED_PORT.to_string(), &group, "py-edge", &host],
    );
    let lines =
        tokio::task::block_in_place(|| edge.wait_line("the edge node's data", |l| l.contains("data sent")));
    assert!(
        !lines.iter().any(|l| l.contains("never came online")),
        "{lines:?}"
    );

    let latest = |attribute: &str| {
        let tag = handle
            .topology()
            .tag_by_path(&format!("acme/plant/area/tank-1/{attribute}"))
            .unwrap()
            .id;
        handle.latest(tag)
    };
    let mut ok = false;
    for _ in 0..200 {
        if latest("count").is_some_and(|l| l.sample.value == Some(Value::Int(3))) {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "count reached 3: {:?}", latest("count"));
    assert_eq!(latest("level").unwrap().sample.value, Some(Value::Float(41.5)));
    assert_eq!(latest("running").unwrap().sample.value, Some(Value::Bool(true)));
    assert_eq!(
        latest("site_name").unwrap().sample.value,
        Some(Value::String("dairy".into()))
    );
    assert!(latest("level").unwrap().sample.quality.is_good());
    assert!(
        latest("level").unwrap().sample.source_time.is_some(),
        "metric timestamps become source times"
    );

    // The edge node dies (its will: an NDEATH with its birth's bdSeq): values turn bad.
    // (pysparkplug's orderly disconnect sends an NDEATH with its *next* bdSeq, which a host
    // must ignore as stale; its will carries the right one.)
    tokio::task::block_in_place(|| {
        let mut edge = edge;
        let _ = edge.child.kill();
        let _ = edge.child.wait();
    });
    let mut bad = false;
    for _ in 0..300 {
        if latest("level").is_some_and(|l| l.sample.quality == Quality::Bad(BadReason::CommFailure)) {
            bad = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bad, "NDEATH turns values bad: {:?}", latest("level"));
    assert_eq!(
        latest("level").unwrap().sample.value,
        Some(Value::Float(41.5)),
        "last value kept"
    );
    engine.shutdown().await;
    common::clear_retained(SHARED_PORT, [format!("spBv1.0/STATE/{host}")]).await;
}
