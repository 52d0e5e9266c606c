//! Sparkplug B 3.0 conformance of our edge node (the `sparkplug` sink): one test per
//! normative statement of the specification that binds an edge node, named after its TCK
//! assertion id (`tck-id-…`, dashes as underscores, lower case). Most drive the I/O-free
//! [`EdgeNode`], built from a real topology, and decode what it publishes; the statements
//! about MQTT packets themselves (CONNECT flags and will, SUBSCRIBE QoS, NDEATH before the
//! end of the connection) run the sink against a broker that records every packet.
//! `docs/connectors/sparkplug.md` lists them, and those that do not apply, with why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use backplane_connector::Topology;
use backplane_model::{BadReason, Context, Quality, Sample, TagId, Timestamp, UncertainReason, Value};
use backplane_mqtt::settings::Qos;
use backplane_mqtt::sparkplug::codec::{self, Topic, encode_payload, validate_id};
use backplane_mqtt::sparkplug::edge::{
    self, BDSEQ_METRIC, EdgeConfig, EdgeNode, FIRST_DEVICE_ALIAS, Output, Publish, REBIRTH_METRIC,
};
use backplane_mqtt::sparkplug::proto::payload::{Metric, PropertySet, metric, property_value};
use backplane_mqtt::sparkplug::proto::{DataType as SpType, Payload};
use backplane_mqtt::sparkplug::{decode_payload, sink};
use common::broker::{Connect, Packet, Published, RecordingBroker};

const GROUP: &str = "plant-a";
const NODE: &str = "edge-1";
const BD_SEQ: u8 = 7;
/// The time the tests run at (ms since the epoch, UTC).
const NOW: i64 = 1_700_000_000_000;

const CONFIG: &str = r#"
[gateway]
name = "tck-gw"
[namespace]
enterprise = "acme"
site = "plant"
[models.Tank.attributes]
level = { type = "float", unit = "%", range = [0, 100] }
running = { type = "bool" }
count = { type = "uint" }
label = { type = "string" }
[models.Pump.attributes]
speed = { type = "int", unit = "rpm" }
profile = { type = "float[]" }
started = { type = "timestamp" }
[[assets]]
path = "area"
level = "area"
[[assets]]
path = "area/tank-1"
model = "Tank"
source = "sim"
bindings.level = { address = "l" }
[[assets]]
path = "area/tank-2"
model = "Tank"
source = "sim"
bindings.level = { address = "l" }
[[assets]]
path = "area/pump-1"
model = "Pump"
source = "sim"
bindings.speed = { address = "s" }
[[sources]]
name = "sim"
kind = "simulator"
period = "100ms"
signals.l = { signal = "ramp", from = 0, to = 100, period = "5s" }
signals.s = { signal = "counter", type = "int" }
"#;

fn topology() -> &'static Topology {
    static TOPOLOGY: OnceLock<Topology> = OnceLock::new();
    TOPOLOGY.get_or_init(|| {
        let plan = backplane_testkit::engine::plan(CONFIG, &std::env::temp_dir(), &common::registry());
        Topology::new(plan)
    })
}

fn tag(path: &str) -> TagId {
    topology()
        .tag_by_path(&format!("acme/plant/{path}"))
        .unwrap_or_else(|| panic!("no tag {path}"))
        .id
}

fn node_with(primary_host: Option<&str>, accept_commands: bool) -> EdgeNode {
    EdgeNode::new(
        EdgeConfig {
            group: GROUP.into(),
            node: NODE.into(),
            primary_host: primary_host.map(Into::into),
            hold_max: 16,
            accept_commands,
        },
        edge::devices(topology()),
    )
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms)
}

fn now() -> Timestamp {
    at(NOW)
}

fn sample(path: &str, value: Value, quality: Quality, ms: i64) -> Sample {
    Sample {
        tag: tag(path),
        value: Some(value),
        quality,
        source_time: Some(at(ms)),
        gateway_time: at(ms),
        context: Arc::new(Context::default()),
    }
}

fn good(path: &str, value: f64, ms: i64) -> Sample {
    sample(path, Value::Float(value), Quality::Good, ms)
}

/// One publish, decoded.
#[derive(Clone, Debug)]
struct Sent {
    topic: String,
    kind: String,
    device: Option<String>,
    payload: Payload,
    qos: Qos,
    retain: bool,
}

fn decode(p: &Publish) -> Sent {
    let levels: Vec<&str> = p.topic.split('/').collect();
    Sent {
        topic: p.topic.clone(),
        kind: levels[2].to_owned(),
        device: levels.get(4).map(|d| (*d).to_owned()),
        payload: decode_payload(&p.payload, 1 << 20).unwrap(),
        qos: p.qos,
        retain: p.retain,
    }
}

fn sent(out: &[Output]) -> Vec<Sent> {
    out.iter()
        .filter_map(|o| match o {
            Output::Publish(p) => Some(decode(p)),
            _ => None,
        })
        .collect()
}

fn of_kind<'a>(sent: &'a [Sent], kind: &str) -> Vec<&'a Sent> {
    sent.iter().filter(|s| s.kind == kind).collect()
}

/// A node in a new session (bdSeq 7), connected and born; returns it with its births.
fn born() -> (EdgeNode, Vec<Sent>) {
    let mut n = node_with(None, true);
    n.start_session(BD_SEQ);
    let births = sent(&n.on_connected(now()));
    (n, births)
}

/// What a node publishes in a session that has everything: births, data of every type
/// (one sample out of time order), unchanged data, a device whose source goes down and
/// comes back, uncertain and bad values, a rebirth request, more data.
fn session() -> Vec<Sent> {
    let (mut n, mut all) = born();
    let mut step = |out: Vec<Output>| all.extend(sent(&out));
    step(n.on_samples(
        &[
            good("area/tank-1/level", 12.5, NOW + 20),
            sample("area/tank-1/running", Value::Bool(true), Quality::Good, NOW + 10),
            sample("area/tank-1/count", Value::UInt(3), Quality::Good, NOW + 30),
            sample(
                "area/tank-1/label",
                Value::String("ok".into()),
                Quality::Good,
                NOW + 30,
            ),
            sample("area/pump-1/speed", Value::Int(-40), Quality::Good, NOW + 30),
            sample(
                "area/pump-1/profile",
                Value::Array(vec![Value::Float(1.0), Value::Float(2.5)].into()),
                Quality::Good,
                NOW + 30,
            ),
            sample(
                "area/pump-1/started",
                Value::Timestamp(at(NOW - 5_000)),
                Quality::Good,
                NOW + 30,
            ),
        ],
        now(),
    ));
    step(n.on_samples(&[good("area/tank-1/level", 12.5, NOW + 40)], now()));
    step(n.on_samples(
        &[
            good("area/tank-1/level", 13.0, NOW + 50),
            sample(
                "area/tank-1/count",
                Value::UInt(4),
                Quality::Uncertain(UncertainReason::LastUsableValue),
                NOW + 50,
            ),
            sample(
                "area/tank-1/label",
                Value::String("x".into()),
                Quality::Bad(BadReason::DeviceFailure),
                NOW + 50,
            ),
        ],
        now(),
    ));
    let down = Quality::Bad(BadReason::CommFailure);
    step(n.on_samples(
        &[sample("area/tank-2/level", Value::Float(1.0), down, NOW + 60)],
        now(),
    ));
    for attribute in ["running", "count", "label"] {
        let s = Sample {
            value: None,
            ..sample(
                &format!("area/tank-2/{attribute}"),
                Value::Bool(false),
                down,
                NOW + 60,
            )
        };
        step(n.on_samples(&[s], now()));
    }
    step(n.on_samples(&[good("area/tank-2/level", 2.0, NOW + 70)], now()));
    step(n.on_message(&ncmd_topic(), &command(vec![rebirth(true)]), now()));
    step(n.on_samples(&[good("area/tank-1/level", 14.0, NOW + 80)], now()));
    all
}

fn ncmd_topic() -> String {
    format!("spBv1.0/{GROUP}/NCMD/{NODE}")
}

fn dcmd_topic(device: &str) -> String {
    format!("spBv1.0/{GROUP}/DCMD/{NODE}/{device}")
}

fn rebirth(value: bool) -> Metric {
    Metric {
        name: Some(REBIRTH_METRIC.into()),
        datatype: Some(SpType::Boolean as u32),
        value: Some(metric::Value::BooleanValue(value)),
        ..Metric::default()
    }
}

fn command(metrics: Vec<Metric>) -> Vec<u8> {
    encode_payload(&Payload {
        timestamp: Some(NOW as u64),
        metrics,
        ..Payload::default()
    })
}

fn state(online: bool, ms: i64) -> Vec<u8> {
    format!(r#"{{"online": {online}, "timestamp": {ms}}}"#).into_bytes()
}

fn bd_seq_of(p: &Payload) -> Option<&Metric> {
    p.metrics.iter().find(|m| m.name.as_deref() == Some(BDSEQ_METRIC))
}

fn rebirth_of(p: &Payload) -> Option<&Metric> {
    p.metrics
        .iter()
        .find(|m| m.name.as_deref() == Some(REBIRTH_METRIC))
}

fn seqs(sent: &[Sent]) -> Vec<u64> {
    sent.iter()
        .filter(|s| s.kind != "NDEATH")
        .map(|s| s.payload.seq.expect("a seq"))
        .collect()
}

/// Every message after each NBIRTH is the previous seq + 1, wrapping after 255.
fn assert_seq_continuity(sent: &[Sent]) {
    for pair in sent.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.kind == "NBIRTH" {
            assert_eq!(b.payload.seq, Some(0));
            continue;
        }
        assert_eq!(
            b.payload.seq,
            Some((a.payload.seq.unwrap() + 1) % 256),
            "{} after {}",
            b.topic,
            a.topic
        );
    }
}

fn assert_qos0_not_retained(kind: &str) {
    let all = session();
    let of = of_kind(&all, kind);
    assert!(!of.is_empty(), "the session has a {kind}");
    for s in of {
        assert_eq!((s.qos, s.retain), (Qos::AtMostOnce, false), "{}", s.topic);
    }
}

fn assert_payload_timestamp(kind: &str) {
    let all = session();
    let of = of_kind(&all, kind);
    assert!(!of.is_empty(), "the session has a {kind}");
    for s in of {
        assert_eq!(
            s.payload.timestamp,
            Some(NOW as u64),
            "{}: the time it was published",
            s.topic
        );
    }
}

fn assert_has_seq_following(kind: &str) {
    let all = session();
    assert!(!of_kind(&all, kind).is_empty(), "the session has a {kind}");
    assert_seq_continuity(&all);
    for s in of_kind(&all, kind) {
        assert!(s.payload.seq.is_some_and(|q| q <= 255), "{}", s.topic);
    }
}

fn assert_device_topic(kind: &str) {
    let devices: HashSet<String> = edge::devices(topology()).into_iter().map(|d| d.id).collect();
    let all = session();
    let of = of_kind(&all, kind);
    assert!(!of.is_empty());
    for s in of {
        let device = s.device.as_deref().unwrap();
        assert_eq!(s.topic, format!("spBv1.0/{GROUP}/{kind}/{NODE}/{device}"));
        assert!(devices.contains(device));
    }
}

fn will_payload(n: &EdgeNode) -> Payload {
    decode_payload(&n.will().payload, 1 << 20).unwrap()
}

fn long(m: &Metric) -> u64 {
    match m.value {
        Some(metric::Value::LongValue(v)) => v,
        ref other => panic!("not a long: {other:?}"),
    }
}

fn births_metrics(all: &[Sent]) -> Vec<(&Sent, &Metric)> {
    all.iter()
        .filter(|s| s.kind.ends_with("BIRTH"))
        .flat_map(|s| s.payload.metrics.iter().map(move |m| (s, m)))
        .collect()
}

fn property_sets(all: &[Sent]) -> Vec<&PropertySet> {
    all.iter()
        .flat_map(|s| s.payload.metrics.iter())
        .filter_map(|m| m.properties.as_ref())
        .collect()
}

// ---- Introduction, principles, topic namespace ------------------------------------------

/// Data is published by exception: an unchanged value and quality make no message.
#[test]
fn tck_id_principles_rbe_recommended() {
    let (mut n, _) = born();
    assert_eq!(
        sent(&n.on_samples(&[good("area/tank-1/level", 1.0, NOW)], now())).len(),
        1
    );
    for i in 1..10 {
        assert!(
            n.on_samples(&[good("area/tank-1/level", 1.0, NOW + i)], now())
                .is_empty()
        );
    }
}

/// The NBIRTH is the first message of a session, even when data came first.
#[test]
fn tck_id_principles_birth_certificates_order() {
    let mut n = node_with(None, false);
    n.start_session(0);
    assert!(
        n.on_samples(&[good("area/tank-1/level", 1.0, NOW)], now())
            .is_empty()
    );
    let out = sent(&n.on_connected(now()));
    assert_eq!(out[0].kind, "NBIRTH");
    // The same after a STATE wait.
    let mut n = node_with(Some("scada"), false);
    n.start_session(0);
    assert!(n.on_connected(now()).is_empty());
    let out = sent(&n.on_message("spBv1.0/STATE/scada", &state(true, NOW), now()));
    assert_eq!(out[0].kind, "NBIRTH");
    assert_eq!(
        wire_311().publishes()[0].0,
        format!("spBv1.0/{GROUP}/NBIRTH/{NODE}")
    );
}

#[test]
fn tck_id_principles_persistence_clean_session_311() {
    let c = &wire_311().connect;
    assert_eq!(c.level, 4);
    assert!(c.clean, "Clean Session");
}

#[test]
fn tck_id_principles_persistence_clean_session_50() {
    let c = &wire_5().connect;
    assert_eq!(c.level, 5);
    assert!(c.clean, "Clean Start");
    assert_eq!(c.session_expiry.unwrap_or(0), 0, "Session Expiry Interval 0");
}

fn config_error(sink_keys: &str) -> String {
    let config = format!(
        "{CONFIG}\n[[sinks]]\nname = \"spb\"\nkind = \"sparkplug\"\nbroker = \"mqtt://127.0.0.1:1\"\n{sink_keys}\n"
    );
    match backplane_config::load_str(
        &config,
        std::path::Path::new("t.toml"),
        &common::registry().catalog(),
    ) {
        Ok(_) => panic!("{sink_keys}: accepted"),
        Err(d) => d.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"),
    }
}

/// Any UTF-8 id without the reserved characters is taken.
#[test]
fn tck_id_intro_group_id_string() {
    assert_eq!(validate_id("usine-été-2"), Ok(()));
    let mut n = EdgeNode::new(
        EdgeConfig {
            group: "usine-été".into(),
            node: NODE.into(),
            primary_host: None,
            hold_max: 0,
            accept_commands: false,
        },
        edge::devices(topology()),
    );
    n.start_session(0);
    assert_eq!(
        sent(&n.on_connected(now()))[0].topic,
        format!("spBv1.0/usine-été/NBIRTH/{NODE}")
    );
}

/// Characters that cannot be in an MQTT topic level are refused in a group id.
#[test]
fn tck_id_intro_group_id_chars() {
    for bad in ["a/b", "a+", "#", "a\0b", ""] {
        assert!(validate_id(bad).is_err(), "{bad:?}");
    }
    assert!(config_error("group_id = \"a+b\"").contains("group_id"));
}

#[test]
fn tck_id_intro_edge_node_id_string() {
    assert_eq!(validate_id("Kante-Ω"), Ok(()));
}

#[test]
fn tck_id_intro_edge_node_id_chars() {
    for bad in ["n/1", "n+", "n#", "n\0"] {
        assert!(validate_id(bad).is_err(), "{bad:?}");
    }
    assert!(config_error("edge_node_id = \"n/1\"").contains("edge_node_id"));
}

#[test]
fn tck_id_intro_device_id_string() {
    for d in edge::devices(topology()) {
        assert!(std::str::from_utf8(d.id.as_bytes()).is_ok());
        assert!(!d.id.is_empty());
    }
}

/// Device ids are made of asset slugs joined by `.`: never a reserved character.
#[test]
fn tck_id_intro_device_id_chars() {
    for d in edge::devices(topology()) {
        assert_eq!(validate_id(&d.id), Ok(()), "{}", d.id);
    }
}

/// Every topic is `spBv1.0/group/TYPE/node[/device]`.
#[test]
fn tck_id_topic_structure() {
    let all = session();
    let n = node_with(None, false);
    for topic in all.iter().map(|s| s.topic.clone()).chain([n.will().topic]) {
        match Topic::parse(&topic) {
            Some(Topic::Edge { group, node, .. }) => assert_eq!((group, node), (GROUP, NODE)),
            other => panic!("{topic}: {other:?}"),
        }
    }
}

#[test]
fn tck_id_topic_structure_namespace_a() {
    let mut n = node_with(Some("scada"), false);
    n.start_session(0);
    for topic in session()
        .iter()
        .map(|s| s.topic.clone())
        .chain(n.subscriptions())
        .chain([n.will().topic])
    {
        assert!(topic.starts_with("spBv1.0/"), "{topic}");
    }
}

#[test]
fn tck_id_topic_structure_namespace_valid_group_id() {
    assert!(config_error("group_id = \"plant/a\"").contains("group_id"));
    assert!(config_error("group_id = \"plant#\"").contains("group_id"));
}

#[test]
fn tck_id_topic_structure_namespace_valid_edge_node_id() {
    assert!(config_error("edge_node_id = \"edge+1\"").contains("edge_node_id"));
}

#[test]
fn tck_id_topic_structure_namespace_valid_device_id() {
    for d in edge::devices(topology()) {
        assert!(!d.id.contains(['+', '/', '#']), "{}", d.id);
    }
}

#[test]
fn tck_id_topic_structure_namespace_unique_device_id() {
    let devices = edge::devices(topology());
    let ids: HashSet<&str> = devices.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), devices.len());
    assert_eq!(ids.len(), 3, "{ids:?}");
}

#[test]
fn tck_id_topic_structure_namespace_device_id_associated_message_types() {
    let all = session();
    for kind in ["DBIRTH", "DDATA", "DDEATH"] {
        assert!(!of_kind(&all, kind).is_empty());
        for s in of_kind(&all, kind) {
            assert!(s.device.is_some(), "{}", s.topic);
        }
    }
    let n = node_with(None, false);
    assert!(
        n.subscriptions()
            .contains(&format!("spBv1.0/{GROUP}/DCMD/{NODE}/+"))
    );
}

#[test]
fn tck_id_topic_structure_namespace_device_id_non_associated_message_types() {
    let all = session();
    for s in of_kind(&all, "NBIRTH") {
        assert_eq!(s.topic, format!("spBv1.0/{GROUP}/NBIRTH/{NODE}"));
    }
    let n = node_with(Some("scada"), false);
    assert_eq!(n.will().topic, format!("spBv1.0/{GROUP}/NDEATH/{NODE}"));
    assert!(n.subscriptions().contains(&ncmd_topic()));
    assert!(n.subscriptions().contains(&"spBv1.0/STATE/scada".to_owned()));
}

/// Ids are slugs, lower case: no two can differ only in case.
#[test]
fn tck_id_case_sensitivity_sparkplug_ids() {
    let devices = edge::devices(topology());
    let lower: HashSet<String> = devices.iter().map(|d| d.id.to_lowercase()).collect();
    assert_eq!(lower.len(), devices.len());
    for d in &devices {
        assert_eq!(d.id, d.id.to_lowercase());
    }
}

/// Attribute names are lower case, so metric names of a device never differ only in case;
/// the two node metrics differ from each other.
#[test]
fn tck_id_case_sensitivity_metric_names() {
    let node: HashSet<String> = [BDSEQ_METRIC, REBIRTH_METRIC]
        .iter()
        .map(|m| m.to_lowercase())
        .collect();
    assert_eq!(node.len(), 2);
    for d in edge::devices(topology()) {
        let lower: HashSet<String> = d.metrics.iter().map(|m| m.name.to_lowercase()).collect();
        assert_eq!(lower.len(), d.metrics.len(), "{}", d.id);
    }
}

// ---- NBIRTH -------------------------------------------------------------------------------

#[test]
fn tck_id_topics_nbirth_topic() {
    let (_, births) = born();
    assert_eq!(births[0].topic, format!("spBv1.0/{GROUP}/NBIRTH/{NODE}"));
}

#[test]
fn tck_id_topics_nbirth_mqtt() {
    assert_qos0_not_retained("NBIRTH");
}

#[test]
fn tck_id_topics_nbirth_seq_num() {
    for s in of_kind(&session(), "NBIRTH") {
        assert_eq!(s.payload.seq, Some(0));
    }
}

#[test]
fn tck_id_topics_nbirth_timestamp() {
    assert_payload_timestamp("NBIRTH");
}

/// The NBIRTH names every node metric; no node metric is ever published otherwise.
#[test]
fn tck_id_topics_nbirth_metric_reqs() {
    let all = session();
    let (_, births) = born();
    let names: Vec<&str> = births[0]
        .payload
        .metrics
        .iter()
        .filter_map(|m| m.name.as_deref())
        .collect();
    assert_eq!(names, [BDSEQ_METRIC, REBIRTH_METRIC]);
    assert!(of_kind(&all, "NDATA").is_empty());
}

#[test]
fn tck_id_topics_nbirth_metrics() {
    let (_, births) = born();
    for m in &births[0].payload.metrics {
        assert!(
            m.name.is_some() && m.datatype.is_some() && m.value.is_some(),
            "{m:?}"
        );
    }
}

#[test]
fn tck_id_topics_nbirth_bdseq_included() {
    let (_, births) = born();
    assert_eq!(long(bd_seq_of(&births[0].payload).unwrap()), u64::from(BD_SEQ));
}

#[test]
fn tck_id_topics_nbirth_bdseq_matching() {
    let (n, births) = born();
    assert_eq!(
        long(bd_seq_of(&births[0].payload).unwrap()),
        long(bd_seq_of(&will_payload(&n)).unwrap())
    );
    // On the wire: the NBIRTH's bdSeq is that of the CONNECT's will.
    let wire = wire_311();
    let will = decode_payload(&wire.connect.will.as_ref().unwrap().payload, 1 << 20).unwrap();
    let nbirth = decode_payload(wire.publishes()[0].3, 1 << 20).unwrap();
    assert_eq!(long(bd_seq_of(&nbirth).unwrap()), long(bd_seq_of(&will).unwrap()));
}

/// bdSeq is 0 for a sink's first CONNECT, then +1 for every new one, 255 → 0.
#[test]
fn tck_id_topics_nbirth_bdseq_increment() {
    let dir = tempfile::tempdir().unwrap();
    let path = sink::bd_seq_path(dir.path(), "spb");
    let seen: Vec<u8> = (0..300).map(|_| sink::next_bd_seq(&path).unwrap()).collect();
    assert_eq!(seen[0], 0);
    for pair in seen.windows(2) {
        assert_eq!(pair[1], pair[0].wrapping_add(1));
    }
}

#[test]
fn tck_id_topics_nbirth_rebirth_metric() {
    let (_, births) = born();
    let r = rebirth_of(&births[0].payload).unwrap();
    assert_eq!(r.datatype, Some(SpType::Boolean as u32));
    assert_eq!(r.value, Some(metric::Value::BooleanValue(false)));
}

// ---- NDEATH -------------------------------------------------------------------------------

#[test]
fn tck_id_topics_ndeath_topic() {
    let n = node_with(None, false);
    assert_eq!(n.will().topic, format!("spBv1.0/{GROUP}/NDEATH/{NODE}"));
    assert_eq!(n.death(Some(now())).topic, n.will().topic);
}

#[test]
fn tck_id_topics_ndeath_payload() {
    let (n, _) = born();
    for p in [n.will(), n.death(Some(now()))] {
        let payload = decode_payload(&p.payload, 1 << 20).unwrap();
        assert_eq!(payload.metrics.len(), 1);
        assert_eq!(payload.metrics[0].name.as_deref(), Some(BDSEQ_METRIC));
    }
}

#[test]
fn tck_id_topics_ndeath_seq() {
    let (n, _) = born();
    for p in [n.will(), n.death(Some(now()))] {
        assert_eq!(decode_payload(&p.payload, 1 << 20).unwrap().seq, None);
    }
}

// ---- DBIRTH -------------------------------------------------------------------------------

#[test]
fn tck_id_topics_dbirth_topic() {
    assert_device_topic("DBIRTH");
}

#[test]
fn tck_id_topics_dbirth_mqtt() {
    assert_qos0_not_retained("DBIRTH");
}

#[test]
fn tck_id_topics_dbirth_seq() {
    assert_has_seq_following("DBIRTH");
}

#[test]
fn tck_id_topics_dbirth_timestamp() {
    assert_payload_timestamp("DBIRTH");
}

/// A DBIRTH names every metric of its device, and data never names another.
#[test]
fn tck_id_topics_dbirth_metric_reqs() {
    let all = session();
    let mut born_aliases: HashMap<String, HashSet<u64>> = HashMap::new();
    for d in edge::devices(topology()) {
        let dbirth = all
            .iter()
            .find(|s| s.kind == "DBIRTH" && s.device.as_deref() == Some(d.id.as_str()))
            .unwrap();
        let mut names: Vec<&str> = dbirth
            .payload
            .metrics
            .iter()
            .map(|m| m.name.as_deref().unwrap())
            .collect();
        names.sort_unstable();
        let mut want: Vec<&str> = d.metrics.iter().map(|m| m.name.as_str()).collect();
        want.sort_unstable();
        assert_eq!(names, want, "{}", d.id);
        born_aliases.insert(
            d.id.clone(),
            dbirth.payload.metrics.iter().filter_map(|m| m.alias).collect(),
        );
    }
    for s in of_kind(&all, "DDATA") {
        for m in &s.payload.metrics {
            assert!(born_aliases[s.device.as_deref().unwrap()].contains(&m.alias.unwrap()));
        }
    }
}

#[test]
fn tck_id_topics_dbirth_metrics() {
    for (s, m) in births_metrics(&session())
        .into_iter()
        .filter(|(s, _)| s.kind == "DBIRTH")
    {
        assert!(m.name.is_some() && m.datatype.is_some(), "{}: {m:?}", s.topic);
        assert!(m.value.is_some() || m.is_null == Some(true), "{}: {m:?}", s.topic);
    }
}

// ---- DDATA --------------------------------------------------------------------------------

#[test]
fn tck_id_topics_ddata_topic() {
    assert_device_topic("DDATA");
}

#[test]
fn tck_id_topics_ddata_mqtt() {
    assert_qos0_not_retained("DDATA");
}

#[test]
fn tck_id_topics_ddata_seq_num() {
    assert_has_seq_following("DDATA");
}

#[test]
fn tck_id_topics_ddata_timestamp() {
    assert_payload_timestamp("DDATA");
}

/// A DDATA carries the metrics that changed, and only those.
#[test]
fn tck_id_topics_ddata_payload() {
    let (mut n, _) = born();
    n.on_samples(
        &[
            good("area/tank-1/level", 1.0, NOW),
            good("area/tank-2/level", 1.0, NOW),
        ],
        now(),
    );
    let out = sent(&n.on_samples(
        &[
            good("area/tank-1/level", 2.0, NOW + 1),
            good("area/tank-2/level", 1.0, NOW + 1),
        ],
        now(),
    ));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].device.as_deref(), Some("area.tank-1"));
    assert_eq!(out[0].payload.metrics.len(), 1);
    assert_eq!(
        out[0].payload.metrics[0].value,
        Some(metric::Value::DoubleValue(2.0))
    );
}

// ---- DDEATH -------------------------------------------------------------------------------

#[test]
fn tck_id_topics_ddeath_topic() {
    assert_device_topic("DDEATH");
}

#[test]
fn tck_id_topics_ddeath_mqtt() {
    assert_qos0_not_retained("DDEATH");
}

#[test]
fn tck_id_topics_ddeath_seq_num() {
    assert_has_seq_following("DDEATH");
}

// ---- Commands the node receives ---------------------------------------------------------

#[test]
fn tck_id_topics_ncmd_topic() {
    assert!(node_with(None, false).subscriptions().contains(&ncmd_topic()));
}

#[test]
fn tck_id_topics_dcmd_topic() {
    let (mut n, _) = born();
    assert!(n.subscriptions().contains(&dcmd_topic("+")));
    let write = Metric {
        name: Some("level".into()),
        datatype: Some(SpType::Double as u32),
        value: Some(metric::Value::DoubleValue(5.0)),
        ..Metric::default()
    };
    let out = n.on_message(&dcmd_topic("area.tank-1"), &command(vec![write]), now());
    assert!(
        matches!(&out[..], [Output::Write { device, .. }] if device == "area.tank-1"),
        "{out:?}"
    );
}

// ---- Session establishment (§5.4, §5.6) ---------------------------------------------------

#[test]
fn tck_id_message_flow_edge_node_ncmd_subscribe() {
    assert!(node_with(None, false).subscriptions().contains(&ncmd_topic()));
    assert!(wire_311().subscribed(&ncmd_topic(), 1));
}

/// Nothing is published before the session is up.
#[test]
fn tck_id_message_flow_edge_node_birth_publish_connect() {
    let mut n = node_with(None, true);
    n.start_session(0);
    assert!(
        n.on_samples(&[good("area/tank-1/level", 1.0, NOW)], now())
            .is_empty()
    );
    assert!(
        !n.on_message(&ncmd_topic(), &command(vec![rebirth(true)]), now())
            .iter()
            .any(|o| matches!(o, Output::Publish(_)))
    );
    assert!(matches!(
        wire_311().packets.first(),
        Some(Packet::Subscribe { .. })
    ));
}

#[test]
fn tck_id_message_flow_edge_node_birth_publish_will_message() {
    assert!(wire_311().connect.will.is_some());
    assert!(wire_5().connect.will.is_some());
}

#[test]
fn tck_id_message_flow_edge_node_birth_publish_will_message_topic() {
    assert_eq!(
        wire_311().connect.will.as_ref().unwrap().topic,
        format!("spBv1.0/{GROUP}/NDEATH/{NODE}")
    );
}

#[test]
fn tck_id_message_flow_edge_node_birth_publish_will_message_payload() {
    let will = &wire_311().connect.will.as_ref().unwrap().payload;
    assert!(decode_payload(will, 1 << 20).is_ok());
}

/// The will's bdSeq: an Int64 metric, one more than the previous CONNECT's (255 → 0).
#[test]
fn tck_id_message_flow_edge_node_birth_publish_will_message_payload_bdseq() {
    let will = decode_payload(&wire_311().connect.will.as_ref().unwrap().payload, 1 << 20).unwrap();
    let m = bd_seq_of(&will).unwrap();
    assert_eq!(m.datatype, Some(SpType::Int64 as u32));
    assert_eq!(long(m), 0, "a sink's first CONNECT");
    let mut n = node_with(None, false);
    for bd in [254u8, 255, 0] {
        n.start_session(bd);
        assert_eq!(long(bd_seq_of(&will_payload(&n)).unwrap()), u64::from(bd));
    }
}

#[test]
fn tck_id_message_flow_edge_node_birth_publish_will_message_qos() {
    assert_eq!(wire_311().connect.will.as_ref().unwrap().qos, 1);
}

#[test]
fn tck_id_message_flow_edge_node_birth_publish_will_message_will_retained() {
    assert!(!wire_311().connect.will.as_ref().unwrap().retain);
}

/// With a primary host, nothing is born until its STATE says online.
#[test]
fn tck_id_message_flow_edge_node_birth_publish_phid_wait() {
    let mut n = node_with(Some("scada"), false);
    n.start_session(0);
    assert!(n.on_connected(now()).is_empty());
    assert!(
        n.on_samples(&[good("area/tank-1/level", 1.0, NOW)], now())
            .is_empty()
    );
    let out = sent(&n.on_message("spBv1.0/STATE/scada", &state(true, NOW), now()));
    assert_eq!(out[0].kind, "NBIRTH");
}

/// Only the configured host's STATE counts.
#[test]
fn tck_id_message_flow_edge_node_birth_publish_phid_wait_id() {
    let mut n = node_with(Some("scada"), false);
    n.start_session(0);
    n.on_connected(now());
    let out = n.on_message("spBv1.0/STATE/other", &state(true, NOW), now());
    assert!(out.iter().all(|o| !matches!(o, Output::Publish(_))), "{out:?}");
    assert!(!n.is_born());
}

#[test]
fn tck_id_message_flow_edge_node_birth_publish_phid_wait_online() {
    let mut n = node_with(Some("scada"), false);
    n.start_session(0);
    n.on_connected(now());
    assert!(
        n.on_message("spBv1.0/STATE/scada", &state(false, NOW), now())
            .is_empty()
    );
    assert!(
        n.on_message("spBv1.0/STATE/scada", br#"{"timestamp": 5}"#, now())
            .iter()
            .all(|o| matches!(o, Output::Ignored(_)))
    );
    assert!(!n.is_born());
    n.on_message("spBv1.0/STATE/scada", &state(true, NOW), now());
    assert!(n.is_born());
}

/// A STATE older than the last one seen is not the host's state; the first one is.
#[test]
fn tck_id_message_flow_edge_node_birth_publish_phid_wait_timestamp() {
    let mut n = node_with(Some("scada"), false);
    n.start_session(0);
    n.on_connected(now());
    // The first STATE counts whatever its time.
    assert!(
        n.on_message("spBv1.0/STATE/scada", &state(false, NOW - 10), now())
            .is_empty()
    );
    let stale = n.on_message("spBv1.0/STATE/scada", &state(true, NOW - 20), now());
    assert!(matches!(&stale[..], [Output::Ignored(_)]), "{stale:?}");
    assert!(!n.is_born());
    n.on_message("spBv1.0/STATE/scada", &state(true, NOW - 10), now());
    assert!(n.is_born(), "as recent as the last one: online");
}

#[test]
fn tck_id_message_flow_edge_node_birth_publish_nbirth_topic() {
    assert_eq!(born().1[0].topic, format!("spBv1.0/{GROUP}/NBIRTH/{NODE}"));
}

#[test]
fn tck_id_message_flow_edge_node_birth_publish_nbirth_payload() {
    let wire = wire_311();
    let (topic, _, _, payload) = wire.publishes()[0];
    assert!(topic.ends_with("/NBIRTH/edge-1"));
    assert!(decode_payload(payload, 1 << 20).is_ok());
}

#[test]
fn tck_id_message_flow_edge_node_birth_publish_nbirth_payload_bdseq() {
    let (n, births) = born();
    let m = bd_seq_of(&births[0].payload).unwrap();
    assert_eq!(m.datatype, Some(SpType::Int64 as u32));
    assert_eq!(long(m), long(bd_seq_of(&will_payload(&n)).unwrap()));
}

#[test]
fn tck_id_message_flow_edge_node_birth_publish_nbirth_qos() {
    assert_qos0_not_retained("NBIRTH");
    assert_eq!(wire_311().publishes()[0].1, 0);
}

#[test]
fn tck_id_message_flow_edge_node_birth_publish_nbirth_retained() {
    assert_qos0_not_retained("NBIRTH");
    assert!(!wire_311().publishes()[0].2);
}

#[test]
fn tck_id_message_flow_edge_node_birth_publish_nbirth_payload_seq() {
    assert!(born().1[0].payload.seq.is_some_and(|s| s <= 255));
}

/// The primary host going offline (a STATE at least as recent) ends the session.
#[test]
fn tck_id_message_flow_edge_node_birth_publish_phid_offline() {
    let mut n = node_with(Some("scada"), false);
    n.start_session(0);
    n.on_connected(now());
    n.on_message("spBv1.0/STATE/scada", &state(true, NOW), now());
    let out = n.on_message("spBv1.0/STATE/scada", &state(false, NOW), now());
    assert!(matches!(&out[..], [Output::EndSession(_)]), "{out:?}");
}

#[test]
fn tck_id_message_flow_device_dcmd_subscribe() {
    assert!(node_with(None, true).subscriptions().contains(&dcmd_topic("+")));
    assert!(wire_311().subscribed(&dcmd_topic("+"), 1));
}

/// No DBIRTH without an NBIRTH in the same session, even for a device coming back.
#[test]
fn tck_id_message_flow_device_birth_publish_nbirth_wait() {
    let (mut n, _) = born();
    let down = Quality::Bad(BadReason::CommFailure);
    for a in ["level", "running", "count", "label"] {
        n.on_samples(
            &[sample(&format!("area/tank-2/{a}"), Value::Bool(false), down, NOW)],
            now(),
        );
    }
    n.on_disconnected();
    n.start_session(BD_SEQ + 1);
    assert!(
        n.on_samples(&[good("area/tank-2/level", 3.0, NOW)], now())
            .is_empty()
    );
    let out = sent(&n.on_connected(now()));
    assert_eq!(out[0].kind, "NBIRTH");
    let all = session();
    let first_nbirth = all.iter().position(|s| s.kind == "NBIRTH").unwrap();
    let first_dbirth = all.iter().position(|s| s.kind == "DBIRTH").unwrap();
    assert!(first_nbirth < first_dbirth);
}

#[test]
fn tck_id_message_flow_device_birth_publish_dbirth_topic() {
    assert_device_topic("DBIRTH");
}

#[test]
fn tck_id_message_flow_device_birth_publish_dbirth_match_edge_node_topic() {
    let all = session();
    let nbirth = Topic::parse(&all[0].topic).unwrap();
    for s in of_kind(&all, "DBIRTH") {
        match (Topic::parse(&s.topic).unwrap(), &nbirth) {
            (
                Topic::Edge { group, node, .. },
                Topic::Edge {
                    group: g, node: n, ..
                },
            ) => {
                assert_eq!((group, node), (*g, *n))
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn tck_id_message_flow_device_birth_publish_dbirth_payload() {
    let wire = wire_311();
    let dbirth = wire
        .publishes()
        .into_iter()
        .find(|p| p.0.contains("/DBIRTH/"))
        .unwrap();
    assert!(decode_payload(dbirth.3, 1 << 20).is_ok());
}

#[test]
fn tck_id_message_flow_device_birth_publish_dbirth_qos() {
    assert_qos0_not_retained("DBIRTH");
    assert!(
        wire_311()
            .publishes()
            .iter()
            .filter(|p| p.0.contains("/DBIRTH/"))
            .all(|p| p.1 == 0)
    );
}

#[test]
fn tck_id_message_flow_device_birth_publish_dbirth_retained() {
    assert_qos0_not_retained("DBIRTH");
    assert!(
        wire_311()
            .publishes()
            .iter()
            .filter(|p| p.0.contains("/DBIRTH/"))
            .all(|p| !p.2)
    );
}

#[test]
fn tck_id_message_flow_device_birth_publish_dbirth_payload_seq() {
    assert_has_seq_following("DBIRTH");
}

// ---- Session termination (§5.5, §5.7) ------------------------------------------------------

/// An orderly stop publishes the NDEATH before the connection ends.
#[test]
fn tck_id_operational_behavior_edge_node_intentional_disconnect_ndeath() {
    for wire in [wire_311(), wire_5()] {
        let ndeath =
            wire.position(|p| matches!(p, Packet::Publish { topic, .. } if topic.contains("/NDEATH/")));
        let end = wire.position(|p| matches!(p, Packet::Disconnect { .. } | Packet::Closed));
        assert!(ndeath.unwrap() < end.unwrap(), "{:#?}", wire.packets);
    }
}

/// Under MQTT 3.1.1 a DISCONNECT follows the NDEATH.
#[test]
fn tck_id_operational_behavior_edge_node_intentional_disconnect_packet() {
    let wire = wire_311();
    let ndeath = wire.position(|p| matches!(p, Packet::Publish { topic, .. } if topic.contains("/NDEATH/")));
    let disconnect = wire.position(|p| matches!(p, Packet::Disconnect { .. }));
    assert_eq!(disconnect, ndeath.map(|i| i + 1), "{:#?}", wire.packets);
}

#[test]
fn tck_id_operational_behavior_edge_node_termination_host_offline() {
    let mut n = node_with(Some("scada"), false);
    n.start_session(0);
    n.on_connected(now());
    n.on_message("spBv1.0/STATE/scada", &state(true, NOW), now());
    let out = n.on_message("spBv1.0/STATE/scada", &state(false, NOW + 1), now());
    assert!(matches!(&out[..], [Output::EndSession(_)]), "{out:?}");
}

/// After ending the session for an offline host, the next session (next bdSeq) waits
/// for the host again, then is born.
#[test]
fn tck_id_operational_behavior_edge_node_termination_host_offline_reconnect() {
    let mut n = node_with(Some("scada"), false);
    n.start_session(3);
    n.on_connected(now());
    n.on_message("spBv1.0/STATE/scada", &state(true, NOW), now());
    n.on_message("spBv1.0/STATE/scada", &state(false, NOW), now());
    n.on_disconnected();
    n.start_session(4);
    assert!(n.on_connected(now()).is_empty());
    let out = sent(&n.on_message("spBv1.0/STATE/scada", &state(true, NOW + 5), now()));
    assert_eq!(long(bd_seq_of(&out[0].payload).unwrap()), 4);
}

/// An offline STATE older than the last online one does not end the session.
#[test]
fn tck_id_operational_behavior_edge_node_termination_host_offline_timestamp() {
    let mut n = node_with(Some("scada"), false);
    n.start_session(0);
    n.on_connected(now());
    n.on_message("spBv1.0/STATE/scada", &state(true, NOW), now());
    let out = n.on_message("spBv1.0/STATE/scada", &state(false, NOW - 1), now());
    assert!(matches!(&out[..], [Output::Ignored(_)]), "{out:?}");
    assert!(n.is_born());
}

/// A device whose source lost it gets a DDEATH.
#[test]
fn tck_id_operational_behavior_device_ddeath() {
    let all = session();
    let ddeath = of_kind(&all, "DDEATH");
    assert_eq!(ddeath.len(), 1);
    assert_eq!(ddeath[0].device.as_deref(), Some("area.tank-2"));
}

#[test]
fn tck_id_operational_behavior_edge_node_birth_sequence_wait() {
    let mut n = node_with(Some("scada"), false);
    n.start_session(0);
    assert!(n.on_connected(now()).is_empty());
    assert!(!n.is_born());
    assert!(!sent(&n.on_message("spBv1.0/STATE/scada", &state(true, NOW), now())).is_empty());
}

#[test]
fn tck_id_operational_behavior_primary_application_state_with_multiple_servers_state_subs() {
    assert!(
        node_with(Some("scada"), false)
            .subscriptions()
            .contains(&"spBv1.0/STATE/scada".to_owned())
    );
}

// ---- Data publish (§5.16) ----------------------------------------------------------------

#[test]
fn tck_id_operational_behavior_data_publish_nbirth() {
    tck_id_topics_nbirth_metric_reqs();
}

#[test]
fn tck_id_operational_behavior_data_publish_nbirth_values() {
    for m in &born().1[0].payload.metrics {
        assert!(m.value.is_some() && m.is_null != Some(true), "{m:?}");
    }
}

/// The node metrics never change within a session, so there is never an NDATA.
#[test]
fn tck_id_operational_behavior_data_publish_nbirth_change() {
    assert!(of_kind(&session(), "NDATA").is_empty());
}

fn assert_chronological(s: &Sent) {
    let times: Vec<u64> = s
        .payload
        .metrics
        .iter()
        .filter(|m| m.is_historical != Some(true))
        .map(|m| m.timestamp.unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{}: {times:?}", s.topic);
}

#[test]
fn tck_id_operational_behavior_data_publish_nbirth_order() {
    for s in of_kind(&session(), "NBIRTH") {
        assert_chronological(s);
    }
}

#[test]
fn tck_id_operational_behavior_data_publish_dbirth() {
    tck_id_topics_dbirth_metric_reqs();
}

/// A DBIRTH carries each metric's current value, or `is_null` and no value.
#[test]
fn tck_id_operational_behavior_data_publish_dbirth_values() {
    let (mut n, births) = born();
    for (_, m) in births_metrics(&births)
        .into_iter()
        .filter(|(s, _)| s.kind == "DBIRTH")
    {
        assert_eq!(
            (m.is_null, m.value.as_ref()),
            (Some(true), None),
            "never read: {m:?}"
        );
    }
    n.on_samples(&[good("area/tank-1/level", 7.5, NOW)], now());
    let out = sent(&n.on_message(&ncmd_topic(), &command(vec![rebirth(true)]), now()));
    let dbirth = out
        .iter()
        .find(|s| s.device.as_deref() == Some("area.tank-1"))
        .unwrap();
    let level = dbirth
        .payload
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some("level"))
        .unwrap();
    assert_eq!(
        (level.is_null, &level.value),
        (None, &Some(metric::Value::DoubleValue(7.5)))
    );
}

#[test]
fn tck_id_operational_behavior_data_publish_dbirth_change() {
    tck_id_principles_rbe_recommended();
}

/// Births and data list their (non-historical) metrics in time order, whatever order the
/// samples came in.
#[test]
fn tck_id_operational_behavior_data_publish_dbirth_order() {
    let all = session();
    for s in all.iter().filter(|s| s.kind == "DBIRTH" || s.kind == "DDATA") {
        assert_chronological(s);
    }
    let (mut n, _) = born();
    let out = sent(&n.on_samples(
        &[
            good("area/tank-1/level", 1.0, NOW + 5),
            sample("area/tank-1/running", Value::Bool(true), Quality::Good, NOW + 3),
        ],
        now(),
    ));
    let times: Vec<u64> = out[0]
        .payload
        .metrics
        .iter()
        .map(|m| m.timestamp.unwrap())
        .collect();
    assert_eq!(times, [(NOW + 3) as u64, (NOW + 5) as u64]);
}

// ---- Commands (§5.17) --------------------------------------------------------------------

#[test]
fn tck_id_operational_behavior_data_commands_rebirth_name() {
    assert!(rebirth_of(&born().1[0].payload).is_some());
}

#[test]
fn tck_id_operational_behavior_data_commands_rebirth_name_aliases() {
    assert_eq!(rebirth_of(&born().1[0].payload).unwrap().alias, None);
}

#[test]
fn tck_id_operational_behavior_data_commands_rebirth_datatype() {
    assert_eq!(
        rebirth_of(&born().1[0].payload).unwrap().datatype,
        Some(SpType::Boolean as u32)
    );
}

#[test]
fn tck_id_operational_behavior_data_commands_rebirth_value() {
    assert_eq!(
        rebirth_of(&born().1[0].payload).unwrap().value,
        Some(metric::Value::BooleanValue(false))
    );
}

/// A rebirth request is an NCMD: the same payload as a DCMD is no rebirth.
#[test]
fn tck_id_operational_behavior_data_commands_ncmd_rebirth_verb() {
    let (mut n, _) = born();
    let out = n.on_message(&dcmd_topic("area.tank-1"), &command(vec![rebirth(true)]), now());
    assert!(out.iter().all(|o| !matches!(o, Output::Publish(_))), "{out:?}");
    assert_eq!(
        sent(&n.on_message(&ncmd_topic(), &command(vec![rebirth(true)]), now()))[0].kind,
        "NBIRTH"
    );
}

/// Only a metric named `Node Control/Rebirth` asks (an alias does not: it has none).
#[test]
fn tck_id_operational_behavior_data_commands_ncmd_rebirth_name() {
    let (mut n, _) = born();
    let by_alias = Metric {
        name: None,
        alias: Some(0),
        ..rebirth(true)
    };
    for m in [
        by_alias,
        Metric {
            name: Some("Node Control/Reboot".into()),
            ..rebirth(true)
        },
    ] {
        let out = n.on_message(&ncmd_topic(), &command(vec![m]), now());
        assert!(matches!(&out[..], [Output::Ignored(_)]), "{out:?}");
    }
}

#[test]
fn tck_id_operational_behavior_data_commands_ncmd_rebirth_value() {
    let (mut n, _) = born();
    let out = n.on_message(&ncmd_topic(), &command(vec![rebirth(false)]), now());
    assert!(matches!(&out[..], [Output::Ignored(_)]), "{out:?}");
}

/// On a rebirth request the node publishes its births before any more data.
#[test]
fn tck_id_operational_behavior_data_commands_rebirth_action_1() {
    let (mut n, _) = born();
    n.on_samples(&[good("area/tank-1/level", 1.0, NOW)], now());
    let out = sent(&n.on_message(&ncmd_topic(), &command(vec![rebirth(true)]), now()));
    let kinds: Vec<&str> = out.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["NBIRTH", "DBIRTH", "DBIRTH", "DBIRTH"]);
}

#[test]
fn tck_id_operational_behavior_data_commands_rebirth_action_2() {
    let (mut n, first) = born();
    let again = sent(&n.on_message(&ncmd_topic(), &command(vec![rebirth(true)]), now()));
    let devices = |s: &[Sent]| s.iter().filter_map(|s| s.device.clone()).collect::<Vec<_>>();
    assert_eq!(devices(&again), devices(&first));
    assert_eq!(again[0].kind, "NBIRTH");
}

#[test]
fn tck_id_operational_behavior_data_commands_rebirth_action_3() {
    let (mut n, _) = born();
    let again = sent(&n.on_message(&ncmd_topic(), &command(vec![rebirth(true)]), now()));
    assert_eq!(long(bd_seq_of(&again[0].payload).unwrap()), u64::from(BD_SEQ));
    assert_eq!(long(bd_seq_of(&will_payload(&n)).unwrap()), u64::from(BD_SEQ));
}

/// Node-level commands come on the NCMD topic; a device write there is not taken.
#[test]
fn tck_id_operational_behavior_data_commands_ncmd_verb() {
    let (mut n, _) = born();
    let write = Metric {
        name: Some("level".into()),
        datatype: Some(SpType::Double as u32),
        value: Some(metric::Value::DoubleValue(1.0)),
        ..Metric::default()
    };
    let out = n.on_message(&ncmd_topic(), &command(vec![write]), now());
    assert!(matches!(&out[..], [Output::Ignored(_)]), "{out:?}");
}

/// An NCMD naming a metric the NBIRTH did not is ignored, not acted on.
#[test]
fn tck_id_operational_behavior_data_commands_ncmd_metric_name() {
    let (mut n, _) = born();
    let unknown = Metric {
        name: Some("Node Control/Next Server".into()),
        ..rebirth(true)
    };
    let out = n.on_message(&ncmd_topic(), &command(vec![unknown]), now());
    assert!(matches!(&out[..], [Output::Ignored(_)]), "{out:?}");
}

#[test]
fn tck_id_operational_behavior_data_commands_ncmd_metric_value() {
    let (mut n, _) = born();
    let wrong = Metric {
        value: Some(metric::Value::StringValue("true".into())),
        ..rebirth(true)
    };
    let out = n.on_message(&ncmd_topic(), &command(vec![wrong]), now());
    assert!(matches!(&out[..], [Output::Ignored(_)]), "{out:?}");
}

#[test]
fn tck_id_operational_behavior_data_commands_dcmd_verb() {
    tck_id_operational_behavior_data_commands_ncmd_verb();
    tck_id_topics_dcmd_topic();
}

#[test]
fn tck_id_operational_behavior_data_commands_dcmd_metric_name() {
    let (mut n, _) = born();
    let unknown = Metric {
        name: Some("volume".into()),
        value: Some(metric::Value::DoubleValue(1.0)),
        ..Metric::default()
    };
    let out = n.on_message(&dcmd_topic("area.tank-1"), &command(vec![unknown]), now());
    assert!(
        matches!(&out[..], [Output::Refused { reason, .. }] if reason.contains("no such metric")),
        "{out:?}"
    );
    // By the alias of its DBIRTH, without a name, it is taken.
    let alias = FIRST_DEVICE_ALIAS + u64::from(tag("area/tank-1/level").0);
    let by_alias = Metric {
        alias: Some(alias),
        value: Some(metric::Value::DoubleValue(2.0)),
        ..Metric::default()
    };
    let out = n.on_message(&dcmd_topic("area.tank-1"), &command(vec![by_alias]), now());
    assert!(
        matches!(&out[..], [Output::Write { value: Value::Float(v), .. }] if *v == 2.0),
        "{out:?}"
    );
}

#[test]
fn tck_id_operational_behavior_data_commands_dcmd_metric_value() {
    let (mut n, _) = born();
    let wrong = Metric {
        name: Some("level".into()),
        value: Some(metric::Value::StringValue("high".into())),
        ..Metric::default()
    };
    let out = n.on_message(&dcmd_topic("area.tank-1"), &command(vec![wrong]), now());
    assert!(matches!(&out[..], [Output::Refused { .. }]), "{out:?}");
}

// ---- Payloads (§6.4) ---------------------------------------------------------------------

#[test]
fn tck_id_payloads_timestamp_in_utc() {
    for s in session() {
        assert_eq!(
            s.payload.timestamp,
            Some(NOW as u64),
            "{}: ms since the epoch, UTC",
            s.topic
        );
    }
}

#[test]
fn tck_id_payloads_sequence_num_always_included() {
    let all = session();
    assert_eq!(seqs(&all).len(), all.len());
}

#[test]
fn tck_id_payloads_sequence_num_req_nbirth() {
    tck_id_topics_nbirth_seq_num();
}

#[test]
fn tck_id_payloads_sequence_num_incrementing() {
    let (mut n, births) = born();
    let mut all = births;
    for i in 0..600 {
        all.extend(sent(&n.on_samples(
            &[good("area/tank-1/level", f64::from(i), NOW + i64::from(i))],
            now(),
        )));
    }
    assert!(seqs(&all).contains(&255) && seqs(&all).iter().filter(|s| **s == 0).count() >= 3);
    assert_seq_continuity(&all);
}

/// Metrics without an alias have a name; births name every metric.
#[test]
fn tck_id_payloads_name_requirement() {
    for s in session() {
        for m in &s.payload.metrics {
            assert!(m.name.is_some() || m.alias.is_some(), "{}: {m:?}", s.topic);
        }
    }
    for (s, m) in births_metrics(&session()) {
        assert!(m.name.is_some(), "{}: {m:?}", s.topic);
    }
}

/// Aliases are unique across the node's metrics.
#[test]
fn tck_id_payloads_alias_uniqueness() {
    let (_, births) = born();
    let aliases: Vec<u64> = births_metrics(&births)
        .iter()
        .filter_map(|(_, m)| m.alias)
        .collect();
    let distinct: HashSet<u64> = aliases.iter().copied().collect();
    assert_eq!(distinct.len(), aliases.len());
    assert_eq!(aliases.len(), 11, "every device metric has one");
}

/// In births, a metric with an alias has its name too.
#[test]
fn tck_id_payloads_alias_birth_requirement() {
    for (s, m) in births_metrics(&session()) {
        if m.alias.is_some() {
            assert!(m.name.is_some(), "{}: {m:?}", s.topic);
        }
        if s.kind == "DBIRTH" {
            assert!(m.alias.is_some(), "{}: {m:?}", s.topic);
        }
    }
}

#[test]
fn tck_id_payloads_alias_data_cmd_requirement() {
    let all = session();
    for s in of_kind(&all, "DDATA") {
        for m in &s.payload.metrics {
            assert!(m.alias.is_some() && m.name.is_none(), "{}: {m:?}", s.topic);
        }
    }
}

/// Every metric of NBIRTH, DBIRTH and DDATA (replays included) has a timestamp.
#[test]
fn tck_id_payloads_name_birth_data_requirement() {
    let mut all = session();
    let mut n = node_with(Some("scada"), false);
    n.start_session(0);
    n.on_connected(now());
    n.on_samples(&[good("area/tank-1/level", 1.0, NOW - 100)], now());
    all.extend(sent(&n.on_message(
        "spBv1.0/STATE/scada",
        &state(true, NOW),
        now(),
    )));
    assert!(
        all.iter()
            .flat_map(|s| &s.payload.metrics)
            .any(|m| m.is_historical == Some(true))
    );
    for s in all.iter().filter(|s| s.kind != "DDEATH") {
        for m in &s.payload.metrics {
            assert!(m.timestamp.is_some(), "{}: {m:?}", s.topic);
        }
    }
}

/// Metric timestamps are the samples' times in ms since the epoch (UTC).
#[test]
fn tck_id_payloads_metric_timestamp_in_utc() {
    let (mut n, _) = born();
    let out = sent(&n.on_samples(&[good("area/tank-1/level", 1.0, 1_600_000_000_123)], now()));
    assert_eq!(out[0].payload.metrics[0].timestamp, Some(1_600_000_000_123));
}

#[test]
fn tck_id_payloads_metric_datatype_value_type() {
    for (s, m) in births_metrics(&session()) {
        let d = m.datatype.unwrap_or_else(|| panic!("{}: {m:?}", s.topic));
        assert!(i32::try_from(d).is_ok());
    }
}

/// Every datatype published is one of the specification's (never Unknown).
#[test]
fn tck_id_payloads_metric_datatype_value() {
    let mut seen = HashSet::new();
    for (_, m) in births_metrics(&session()) {
        let d = SpType::try_from(m.datatype.unwrap() as i32).unwrap();
        assert_ne!(d, SpType::Unknown);
        seen.insert(d);
    }
    for want in [
        SpType::Double,
        SpType::Boolean,
        SpType::UInt64,
        SpType::String,
        SpType::Int64,
        SpType::DoubleArray,
        SpType::DateTime,
    ] {
        assert!(seen.contains(&want), "{want:?} among {seen:?}");
    }
}

#[test]
fn tck_id_payloads_metric_datatype_req() {
    for (s, m) in births_metrics(&session()) {
        assert!(m.datatype.is_some(), "{}: {m:?}", s.topic);
    }
}

#[test]
fn tck_id_payloads_metric_datatype_not_req() {
    for s in of_kind(&session(), "DDATA") {
        for m in &s.payload.metrics {
            assert_eq!(m.datatype, None, "{}: {m:?}", s.topic);
        }
    }
}

#[test]
fn tck_id_payloads_propertyset_keys_array_size() {
    let all = session();
    let sets = property_sets(&all);
    assert!(sets.len() > 10);
    for p in sets {
        assert_eq!(p.keys.len(), p.values.len(), "{p:?}");
    }
}

#[test]
fn tck_id_payloads_propertyset_values_array_size() {
    tck_id_payloads_propertyset_keys_array_size();
}

#[test]
fn tck_id_payloads_metric_propertyvalue_type_type() {
    for p in property_sets(&session()) {
        for v in &p.values {
            assert!(v.r#type.is_some_and(|t| i32::try_from(t).is_ok()), "{v:?}");
        }
    }
}

/// Property types are basic Sparkplug types: String for the unit, Double for the range,
/// Int32 for the quality.
#[test]
fn tck_id_payloads_metric_propertyvalue_type_value() {
    for p in property_sets(&session()) {
        for (k, v) in p.keys.iter().zip(&p.values) {
            let t = SpType::try_from(v.r#type.unwrap() as i32).unwrap();
            let want = match k.as_str() {
                "engUnit" => SpType::String,
                "engLow" | "engHigh" => SpType::Double,
                "Quality" => SpType::Int32,
                other => panic!("unexpected property {other}"),
            };
            assert_eq!(t, want, "{k}");
        }
    }
}

#[test]
fn tck_id_payloads_metric_propertyvalue_type_req() {
    for s in session().iter().filter(|s| s.kind.ends_with("BIRTH")) {
        for m in &s.payload.metrics {
            for v in m.properties.iter().flat_map(|p| &p.values) {
                assert!(v.r#type.is_some(), "{}: {v:?}", s.topic);
            }
        }
    }
}

fn qualities(all: &[Sent]) -> Vec<(u32, property_value::Value)> {
    property_sets(all)
        .into_iter()
        .flat_map(|p| p.keys.iter().zip(&p.values))
        .filter(|(k, _)| k.as_str() == codec::QUALITY_PROPERTY)
        .map(|(_, v)| (v.r#type.unwrap(), v.value.clone().unwrap()))
        .collect()
}

#[test]
fn tck_id_payloads_propertyset_quality_value_type() {
    let all = session();
    let q = qualities(&all);
    assert!(!q.is_empty());
    for (t, v) in q {
        assert_eq!(t, 3, "Int32");
        assert!(matches!(v, property_value::Value::IntValue(_)));
    }
}

/// Quality codes are 0 (bad), 192 (good) or 500 (stale: an uncertain value), nothing else.
#[test]
fn tck_id_payloads_propertyset_quality_value_value() {
    let all = session();
    let mut codes: Vec<u32> = qualities(&all)
        .into_iter()
        .map(|(_, v)| match v {
            property_value::Value::IntValue(i) => i,
            other => panic!("{other:?}"),
        })
        .collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes, [0, 192, 500]);
    assert_eq!(
        codec::quality_code(Quality::Uncertain(UncertainReason::SensorNotAccurate)),
        500
    );
}

#[test]
fn tck_id_payloads_nbirth_timestamp() {
    assert_payload_timestamp("NBIRTH");
}

#[test]
fn tck_id_payloads_nbirth_seq() {
    tck_id_topics_nbirth_seq_num();
}

#[test]
fn tck_id_payloads_nbirth_bdseq() {
    tck_id_topics_nbirth_bdseq_included();
}

#[test]
fn tck_id_payloads_nbirth_bdseq_repeat() {
    tck_id_topics_nbirth_bdseq_matching();
}

#[test]
fn tck_id_payloads_nbirth_rebirth_req() {
    tck_id_topics_nbirth_rebirth_metric();
}

#[test]
fn tck_id_payloads_nbirth_qos() {
    assert_qos0_not_retained("NBIRTH");
}

#[test]
fn tck_id_payloads_nbirth_retain() {
    assert_qos0_not_retained("NBIRTH");
}

#[test]
fn tck_id_payloads_dbirth_timestamp() {
    assert_payload_timestamp("DBIRTH");
}

#[test]
fn tck_id_payloads_dbirth_seq() {
    assert_has_seq_following("DBIRTH");
}

#[test]
fn tck_id_payloads_dbirth_seq_inc() {
    assert_has_seq_following("DBIRTH");
}

/// All DBIRTHs follow the NBIRTH at once, before any data.
#[test]
fn tck_id_payloads_dbirth_order() {
    let all = session();
    let kinds: Vec<&str> = all.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds[..4], ["NBIRTH", "DBIRTH", "DBIRTH", "DBIRTH"]);
    let rebirth = all.iter().rposition(|s| s.kind == "NBIRTH").unwrap();
    assert_eq!(
        kinds[rebirth..rebirth + 4],
        ["NBIRTH", "DBIRTH", "DBIRTH", "DBIRTH"]
    );
}

#[test]
fn tck_id_payloads_dbirth_qos() {
    assert_qos0_not_retained("DBIRTH");
}

#[test]
fn tck_id_payloads_dbirth_retain() {
    assert_qos0_not_retained("DBIRTH");
}

#[test]
fn tck_id_payloads_ddata_timestamp() {
    assert_payload_timestamp("DDATA");
}

#[test]
fn tck_id_payloads_ddata_seq() {
    assert_has_seq_following("DDATA");
}

#[test]
fn tck_id_payloads_ddata_seq_inc() {
    assert_has_seq_following("DDATA");
}

/// No DDATA before every birth, including replayed data after a STATE wait.
#[test]
fn tck_id_payloads_ddata_order() {
    let mut n = node_with(Some("scada"), false);
    n.start_session(0);
    n.on_connected(now());
    n.on_samples(&[good("area/tank-1/level", 1.0, NOW - 100)], now());
    let out = sent(&n.on_message("spBv1.0/STATE/scada", &state(true, NOW), now()));
    let kinds: Vec<&str> = out.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["NBIRTH", "DBIRTH", "DBIRTH", "DBIRTH", "DDATA"]);
    tck_id_payloads_dbirth_order();
}

#[test]
fn tck_id_payloads_ddata_qos() {
    assert_qos0_not_retained("DDATA");
}

#[test]
fn tck_id_payloads_ddata_retain() {
    assert_qos0_not_retained("DDATA");
}

#[test]
fn tck_id_payloads_ndeath_seq() {
    tck_id_topics_ndeath_seq();
}

#[test]
fn tck_id_payloads_ndeath_will_message() {
    let will = wire_311().connect.will.as_ref().unwrap();
    assert!(will.topic.ends_with("/NDEATH/edge-1"));
}

#[test]
fn tck_id_payloads_ndeath_will_message_qos() {
    assert_eq!(node_with(None, false).will().qos, Qos::AtLeastOnce);
    assert_eq!(wire_311().connect.will.as_ref().unwrap().qos, 1);
    assert_eq!(wire_5().connect.will.as_ref().unwrap().qos, 1);
}

#[test]
fn tck_id_payloads_ndeath_will_message_retain() {
    assert!(!node_with(None, false).will().retain);
    assert!(!wire_311().connect.will.as_ref().unwrap().retain);
    assert!(!wire_5().connect.will.as_ref().unwrap().retain);
}

/// The will's and the explicit NDEATH's bdSeq are the NBIRTH's.
#[test]
fn tck_id_payloads_ndeath_bdseq() {
    let (n, births) = born();
    let birth = long(bd_seq_of(&births[0].payload).unwrap());
    let death = decode_payload(&n.death(Some(now())).payload, 1 << 20).unwrap();
    assert_eq!(long(bd_seq_of(&death).unwrap()), birth);
    assert_eq!(long(bd_seq_of(&will_payload(&n)).unwrap()), birth);
    let wire = wire_311();
    let ndeath = wire
        .publishes()
        .into_iter()
        .find(|p| p.0.contains("/NDEATH/"))
        .unwrap();
    let will = decode_payload(&wire.connect.will.as_ref().unwrap().payload, 1 << 20).unwrap();
    assert_eq!(
        long(bd_seq_of(&decode_payload(ndeath.3, 1 << 20).unwrap()).unwrap()),
        long(bd_seq_of(&will).unwrap())
    );
}

#[test]
fn tck_id_payloads_ndeath_will_message_publisher() {
    tck_id_operational_behavior_edge_node_intentional_disconnect_ndeath();
}

#[test]
fn tck_id_payloads_ndeath_will_message_publisher_disconnect_mqtt311() {
    tck_id_operational_behavior_edge_node_intentional_disconnect_packet();
}

/// Under MQTT 5 a DISCONNECT, if sent, carries "Disconnect with Will Message" (0x04).
#[test]
fn tck_id_payloads_ndeath_will_message_publisher_disconnect_mqtt50() {
    let wire = wire_5();
    assert!(
        wire.position(|p| matches!(p, Packet::Publish { topic, .. } if topic.contains("/NDEATH/")))
            .is_some()
    );
    for p in &wire.packets {
        if let Packet::Disconnect { reason } = p {
            assert_eq!(*reason, Some(0x04), "{:#?}", wire.packets);
        }
    }
}

#[test]
fn tck_id_payloads_ddeath_timestamp() {
    assert_payload_timestamp("DDEATH");
}

#[test]
fn tck_id_payloads_ddeath_seq() {
    assert_has_seq_following("DDEATH");
}

#[test]
fn tck_id_payloads_ddeath_seq_inc() {
    assert_has_seq_following("DDEATH");
}

#[test]
fn tck_id_payloads_ddeath_seq_number() {
    assert_has_seq_following("DDEATH");
}

// ---- The sink on the wire ----------------------------------------------------------------

/// What the sink sent to a recording broker in its first session: the CONNECT, then every
/// other packet of that connection in order.
struct Wire {
    connect: Connect,
    packets: Vec<Packet>,
}

impl Wire {
    fn publishes(&self) -> Vec<Published<'_>> {
        self.packets.iter().filter_map(Packet::as_publish).collect()
    }

    fn subscribed(&self, filter: &str, qos: u8) -> bool {
        self.packets.iter().any(|p| {
            matches!(p, Packet::Subscribe { filters } if filters.iter().any(|(f, q)| f == filter && *q == qos))
        })
    }

    fn position(&self, pred: impl Fn(&Packet) -> bool) -> Option<usize> {
        self.packets.iter().position(pred)
    }
}

fn sink_config(port: u16, protocol: &str) -> String {
    format!(
        "{CONFIG}
[[sinks]]
name = \"spb\"
kind = \"sparkplug\"
broker = \"mqtt://127.0.0.1:{port}\"
protocol = \"{protocol}\"
group_id = \"{GROUP}\"
edge_node_id = \"{NODE}\"
reconnect_min = \"100ms\"
reconnect_max = \"500ms\"
"
    )
}

/// Runs the sink against a recording broker: births, data, a rebirth request, an orderly
/// stop.
fn run_sink(protocol: &str) -> Wire {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut broker = RecordingBroker::start();
        let dir = tempfile::tempdir().unwrap();
        let engine = common::start(&sink_config(broker.port, protocol), dir.path());
        let nbirth = format!("spBv1.0/{GROUP}/NBIRTH/{NODE}");
        broker.wait_publish(&nbirth).await;
        broker
            .wait_for(
                "a DDATA",
                |p| matches!(p, Packet::Publish { topic, .. } if topic.contains("/DDATA/")),
            )
            .await;
        broker.publish_to_client(&ncmd_topic(), &command(vec![rebirth(true)]), false);
        broker.wait_publish(&nbirth).await;
        engine.shutdown().await;
        broker
            .wait_for("the end of the connection", |p| *p == Packet::Closed)
            .await;
        let mine: Vec<Packet> = broker
            .seen
            .iter()
            .filter(|(c, _)| *c == 0)
            .map(|(_, p)| p.clone())
            .collect();
        let Some((Packet::Connect(connect), packets)) = mine.split_first() else {
            panic!("no CONNECT first: {mine:#?}")
        };
        Wire {
            connect: connect.clone(),
            packets: packets.to_vec(),
        }
    })
}

fn wire_311() -> &'static Wire {
    static WIRE: OnceLock<Wire> = OnceLock::new();
    WIRE.get_or_init(|| run_sink("3.1.1"))
}

fn wire_5() -> &'static Wire {
    static WIRE: OnceLock<Wire> = OnceLock::new();
    WIRE.get_or_init(|| run_sink("5"))
}
