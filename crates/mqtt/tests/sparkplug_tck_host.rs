//! Sparkplug B 3.0 conformance of our host application (the `sparkplug` source): one test
//! per normative statement that binds a host application, or that a host relies on when it
//! reads edge nodes, named after its TCK assertion id (`tck-id-…`, dashes as underscores).
//! The I/O-free [`Host`] and [`HostState`] are fed crafted messages; the statements about
//! MQTT packets (CONNECT and will, SUBSCRIBE, the STATE birth and death, the rebirth NCMD)
//! run the source against a broker that records every packet. `docs/connectors/sparkplug.md`
//! lists them, and those that do not apply, with why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::sync::OnceLock;

use backplane_model::{BadReason, Quality, Timestamp, UncertainReason, Value};
use backplane_mqtt::sparkplug::codec::encode_payload;
use backplane_mqtt::sparkplug::decode_payload;
use backplane_mqtt::sparkplug::edge::{BDSEQ_METRIC, REBIRTH_METRIC};
use backplane_mqtt::sparkplug::host::{Host, HostOutput, MetricAddress, rebirth_request};
use backplane_mqtt::sparkplug::proto::payload::{Metric, PropertySet, PropertyValue, metric, property_value};
use backplane_mqtt::sparkplug::proto::{DataType as SpType, Payload};
use backplane_mqtt::sparkplug::state::{HostState, parse_state};
use common::broker::{Connect, Packet, Published, RecordingBroker};
use serde_json::Value as Json;

const GROUP: &str = "wire";
const HOST_ID: &str = "tck-host";
const NOW: i64 = 1_700_000_000_000;

fn now() -> Timestamp {
    Timestamp::from_unix_millis(NOW)
}

// ---- The host state machine, fed crafted messages -----------------------------------------

/// Addresses 0 and 1 are metrics of device `d1`, 2 a node metric of `n1`.
fn host() -> Host {
    let addresses =
        ["g/n1/d1:level", "g/n1/d1:Inputs/temp", "g/n1:running"].map(|a| MetricAddress::parse(a).unwrap());
    Host::new(&addresses, 1 << 20)
}

fn payload(seq: Option<u64>, timestamp: Option<u64>, metrics: Vec<Metric>) -> Vec<u8> {
    encode_payload(&Payload {
        timestamp,
        seq,
        metrics,
        ..Payload::default()
    })
}

fn named(name: &str, alias: u64, datatype: SpType, value: metric::Value) -> Metric {
    Metric {
        name: Some(name.into()),
        alias: Some(alias),
        timestamp: Some(NOW as u64),
        datatype: Some(datatype as u32),
        value: Some(value),
        ..Metric::default()
    }
}

/// A data metric: alias only, no name, no datatype.
fn by_alias(alias: u64, value: metric::Value) -> Metric {
    Metric {
        alias: Some(alias),
        timestamp: Some(NOW as u64),
        value: Some(value),
        ..Metric::default()
    }
}

fn bd_seq(bd: u64) -> Metric {
    Metric {
        name: Some(BDSEQ_METRIC.into()),
        timestamp: Some(NOW as u64),
        datatype: Some(SpType::Int64 as u32),
        value: Some(metric::Value::LongValue(bd)),
        ..Metric::default()
    }
}

fn nbirth(bd: u64) -> Vec<u8> {
    payload(
        Some(0),
        Some(NOW as u64),
        vec![
            bd_seq(bd),
            Metric {
                name: Some(REBIRTH_METRIC.into()),
                timestamp: Some(NOW as u64),
                datatype: Some(SpType::Boolean as u32),
                value: Some(metric::Value::BooleanValue(false)),
                ..Metric::default()
            },
            named("running", 1, SpType::Boolean, metric::Value::BooleanValue(true)),
        ],
    )
}

fn dbirth(seq: u64) -> Vec<u8> {
    payload(
        Some(seq),
        Some(NOW as u64),
        vec![
            named("level", 20, SpType::Double, metric::Value::DoubleValue(1.5)),
            named("Inputs/temp", 21, SpType::Float, metric::Value::FloatValue(20.0)),
        ],
    )
}

/// A host that has seen node `g/n1` (bdSeq 4) and its device `d1` born; the next seq is 2.
fn born() -> Host {
    let mut h = host();
    h.on_message("spBv1.0/g/NBIRTH/n1", &nbirth(4), now());
    h.on_message("spBv1.0/g/DBIRTH/n1/d1", &dbirth(1), now());
    h
}

fn ddata(seq: u64, metrics: Vec<Metric>) -> Vec<u8> {
    payload(Some(seq), Some(NOW as u64), metrics)
}

fn asks_rebirth(out: &HostOutput) -> bool {
    out.rebirth == Some(("g".into(), "n1".into()))
}

fn reading(out: &HostOutput, address: u32) -> &backplane_connector::RawReading {
    out.readings
        .iter()
        .find(|r| r.address == address)
        .unwrap_or_else(|| panic!("no reading for {address}: {out:?}"))
}

fn with_quality(code: u32) -> Metric {
    Metric {
        properties: Some(PropertySet {
            keys: vec!["Quality".into()],
            values: vec![PropertyValue {
                r#type: Some(SpType::Int32 as u32),
                is_null: None,
                value: Some(property_value::Value::IntValue(code)),
            }],
        }),
        ..by_alias(20, metric::Value::DoubleValue(1.0))
    }
}

/// Every message after the births is the previous seq + 1 (255 → 0); a gap asks the node
/// for one rebirth.
#[test]
fn tck_id_payloads_sequence_num_incrementing() {
    let mut h = born();
    for i in 2..=600u64 {
        let out = h.on_message("spBv1.0/g/DDATA/n1/d1", &ddata(i % 256, vec![]), now());
        assert!(!asks_rebirth(&out), "seq {i}: {out:?}");
    }
    let out = h.on_message("spBv1.0/g/DDATA/n1/d1", &ddata(5, vec![]), now());
    assert!(asks_rebirth(&out), "a gap");
    let out = h.on_message("spBv1.0/g/DDATA/n1/d1", &ddata(9, vec![]), now());
    assert!(!asks_rebirth(&out), "asked once until the next NBIRTH");
}

#[test]
fn tck_id_payloads_ndata_seq_inc() {
    let mut h = born();
    assert!(!asks_rebirth(&h.on_message(
        "spBv1.0/g/NDATA/n1",
        &ddata(2, vec![]),
        now()
    )));
    assert!(asks_rebirth(&h.on_message(
        "spBv1.0/g/NDATA/n1",
        &ddata(4, vec![]),
        now()
    )));
}

#[test]
fn tck_id_payloads_ddata_seq_inc() {
    let mut h = born();
    assert!(asks_rebirth(&h.on_message(
        "spBv1.0/g/DDATA/n1/d1",
        &ddata(3, vec![]),
        now()
    )));
}

/// A death whose bdSeq is not the birth's belongs to an older session and is ignored.
#[test]
fn tck_id_payloads_ndeath_bdseq() {
    let mut h = born();
    let out = h.on_message(
        "spBv1.0/g/NDEATH/n1",
        &payload(None, None, vec![bd_seq(3)]),
        now(),
    );
    assert!(out.readings.is_empty(), "{out:?}");
    let out = h.on_message(
        "spBv1.0/g/NDEATH/n1",
        &payload(None, None, vec![bd_seq(4)]),
        now(),
    );
    assert_eq!(out.readings.len(), 3);
}

/// Data from a node not seen born asks for a rebirth and yields nothing.
#[test]
fn tck_id_message_flow_device_birth_publish_nbirth_wait() {
    let mut h = host();
    let out = h.on_message("spBv1.0/g/DBIRTH/n1/d1", &dbirth(1), now());
    assert!(asks_rebirth(&out) && out.readings.is_empty(), "{out:?}");
}

/// Data from a device before its DBIRTH asks for a rebirth and yields nothing.
#[test]
fn tck_id_payloads_dbirth_order() {
    let mut h = host();
    h.on_message("spBv1.0/g/NBIRTH/n1", &nbirth(4), now());
    let out = h.on_message(
        "spBv1.0/g/DDATA/n1/d1",
        &ddata(1, vec![by_alias(20, metric::Value::DoubleValue(2.0))]),
        now(),
    );
    assert!(asks_rebirth(&out) && out.readings.is_empty(), "{out:?}");
}

#[test]
fn tck_id_payloads_ddata_order() {
    tck_id_payloads_dbirth_order();
}

#[test]
fn tck_id_payloads_ndata_order() {
    let mut h = host();
    let out = h.on_message(
        "spBv1.0/g/NDATA/n1",
        &ddata(1, vec![by_alias(1, metric::Value::BooleanValue(false))]),
        now(),
    );
    assert!(asks_rebirth(&out) && out.readings.is_empty(), "{out:?}");
}

/// Data metrics named by alias only resolve through the birth.
#[test]
fn tck_id_payloads_alias_data_cmd_requirement() {
    let mut h = born();
    let out = h.on_message(
        "spBv1.0/g/DDATA/n1/d1",
        &ddata(2, vec![by_alias(21, metric::Value::FloatValue(21.5))]),
        now(),
    );
    assert_eq!(reading(&out, 1).value, Some(Value::Float(21.5)));
    // An alias no birth gave asks for a rebirth.
    let out = h.on_message(
        "spBv1.0/g/DDATA/n1/d1",
        &ddata(3, vec![by_alias(99, metric::Value::FloatValue(1.0))]),
        now(),
    );
    assert!(asks_rebirth(&out), "{out:?}");
}

/// Data metrics without a datatype are decoded with the birth's.
#[test]
fn tck_id_payloads_metric_datatype_not_req() {
    let mut h = born();
    let out = h.on_message(
        "spBv1.0/g/DDATA/n1/d1",
        &ddata(2, vec![by_alias(20, metric::Value::DoubleValue(3.25))]),
        now(),
    );
    assert_eq!(reading(&out, 0).value, Some(Value::Float(3.25)));
    assert!(reading(&out, 0).quality.is_good());
}

#[test]
fn tck_id_topics_ndata_payload() {
    let mut h = born();
    let out = h.on_message(
        "spBv1.0/g/NDATA/n1",
        &ddata(2, vec![by_alias(1, metric::Value::BooleanValue(false))]),
        now(),
    );
    assert_eq!(reading(&out, 2).value, Some(Value::Bool(false)));
}

/// Metric timestamps become the readings' source times.
#[test]
fn tck_id_payloads_name_birth_data_requirement() {
    let mut h = born();
    let mut m = by_alias(20, metric::Value::DoubleValue(3.0));
    m.timestamp = Some(1_600_000_000_000);
    let out = h.on_message("spBv1.0/g/DDATA/n1/d1", &ddata(2, vec![m]), now());
    assert_eq!(
        reading(&out, 0).source_time,
        Some(Timestamp::from_unix_millis(1_600_000_000_000))
    );
}

/// Quality codes 0, 192 and 500 read bad, good and uncertain (stale, last usable value).
#[test]
fn tck_id_payloads_propertyset_quality_value_value() {
    let mut h = born();
    let cases = [
        (0, Quality::Bad(BadReason::Unspecified)),
        (192, Quality::Good),
        (500, Quality::Uncertain(UncertainReason::LastUsableValue)),
    ];
    for (i, (code, want)) in cases.into_iter().enumerate() {
        let out = h.on_message(
            "spBv1.0/g/DDATA/n1/d1",
            &ddata(2 + i as u64, vec![with_quality(code)]),
            now(),
        );
        assert_eq!(reading(&out, 0).quality, want, "code {code}");
    }
}

fn ndeath_at_old_time() -> HostOutput {
    let mut h = born();
    // A will carries the time of the CONNECT, long before the death.
    h.on_message(
        "spBv1.0/g/NDEATH/n1",
        &payload(None, Some(1_000), vec![bd_seq(4)]),
        now(),
    )
}

/// After an NDEATH every metric of the node is bad, at the host's time.
#[test]
fn tck_id_operational_behavior_edge_node_termination_host_action_ndeath_node_offline() {
    let out = ndeath_at_old_time();
    let r = reading(&out, 2);
    assert_eq!(r.quality, Quality::Bad(BadReason::CommFailure));
    assert_eq!(r.source_time, Some(now()));
}

#[test]
fn tck_id_operational_behavior_edge_node_termination_host_action_ndeath_node_tags_stale() {
    tck_id_operational_behavior_edge_node_termination_host_action_ndeath_node_offline();
}

#[test]
fn tck_id_operational_behavior_edge_node_termination_host_action_ndeath_devices_offline() {
    let out = ndeath_at_old_time();
    for a in [0, 1] {
        let r = reading(&out, a);
        assert_eq!(r.quality, Quality::Bad(BadReason::CommFailure));
        assert_eq!(r.source_time, Some(now()), "the host's time, not the will's");
    }
}

#[test]
fn tck_id_operational_behavior_edge_node_termination_host_action_ndeath_devices_tags_stale() {
    tck_id_operational_behavior_edge_node_termination_host_action_ndeath_devices_offline();
}

/// After a DDEATH the device's metrics (only) are bad, at the DDEATH's time.
#[test]
fn tck_id_operational_behavior_edge_node_termination_host_action_ddeath_devices_offline() {
    let mut h = born();
    let out = h.on_message(
        "spBv1.0/g/DDEATH/n1/d1",
        &payload(Some(2), Some(1_234), vec![]),
        now(),
    );
    assert_eq!(out.readings.len(), 2, "{out:?}");
    for a in [0, 1] {
        let r = reading(&out, a);
        assert_eq!(r.quality, Quality::Bad(BadReason::CommFailure));
        assert_eq!(r.source_time, Some(Timestamp::from_unix_millis(1_234)));
    }
}

#[test]
fn tck_id_operational_behavior_edge_node_termination_host_action_ddeath_devices_tags_stale() {
    tck_id_operational_behavior_edge_node_termination_host_action_ddeath_devices_offline();
}

// ---- The rebirth request (the one command the host sends) ---------------------------------

fn rebirth_payload() -> Payload {
    decode_payload(&rebirth_request(now()), 1 << 20).unwrap()
}

#[test]
fn tck_id_operational_behavior_data_commands_ncmd_rebirth_verb() {
    let (topic, _, _, _) = host_wire().ncmd();
    assert_eq!(topic, format!("spBv1.0/{GROUP}/NCMD/n1"));
}

#[test]
fn tck_id_operational_behavior_data_commands_ncmd_rebirth_name() {
    let p = rebirth_payload();
    assert_eq!(p.metrics.len(), 1);
    assert_eq!(p.metrics[0].name.as_deref(), Some(REBIRTH_METRIC));
    assert_eq!(
        p.metrics[0].alias, None,
        "Node Control/Rebirth never has an alias"
    );
}

#[test]
fn tck_id_operational_behavior_data_commands_ncmd_rebirth_value() {
    assert_eq!(
        rebirth_payload().metrics[0].value,
        Some(metric::Value::BooleanValue(true))
    );
}

#[test]
fn tck_id_operational_behavior_data_commands_ncmd_verb() {
    tck_id_operational_behavior_data_commands_ncmd_rebirth_verb();
}

/// The metric written is one every NBIRTH has.
#[test]
fn tck_id_operational_behavior_data_commands_ncmd_metric_name() {
    tck_id_operational_behavior_data_commands_ncmd_rebirth_name();
}

/// A Boolean `true`, the rebirth metric's type.
#[test]
fn tck_id_operational_behavior_data_commands_ncmd_metric_value() {
    let m = &rebirth_payload().metrics[0];
    assert_eq!(m.datatype, Some(SpType::Boolean as u32));
    assert!(matches!(m.value, Some(metric::Value::BooleanValue(true))));
}

#[test]
fn tck_id_topics_ncmd_topic() {
    tck_id_operational_behavior_data_commands_ncmd_rebirth_verb();
}

#[test]
fn tck_id_topics_ncmd_mqtt() {
    let (_, qos, retain, _) = host_wire().ncmd();
    assert_eq!((qos, retain), (0, false));
}

#[test]
fn tck_id_topics_ncmd_timestamp() {
    let (_, _, _, bytes) = host_wire().ncmd();
    let p = decode_payload(bytes, 1 << 20).unwrap();
    let t = p.timestamp.unwrap() as i64;
    let wire = host_wire();
    assert!(t >= wire.started_ms && t <= wire.ended_ms, "{t} not in the run");
}

#[test]
fn tck_id_topics_ncmd_payload() {
    let (_, _, _, bytes) = host_wire().ncmd();
    let p = decode_payload(bytes, 1 << 20).unwrap();
    assert_eq!(p.metrics.len(), 1);
    assert_eq!(p.metrics[0].name.as_deref(), Some(REBIRTH_METRIC));
}

#[test]
fn tck_id_payloads_ncmd_timestamp() {
    tck_id_topics_ncmd_timestamp();
}

#[test]
fn tck_id_payloads_ncmd_seq() {
    let (_, _, _, bytes) = host_wire().ncmd();
    assert_eq!(decode_payload(bytes, 1 << 20).unwrap().seq, None);
}

#[test]
fn tck_id_payloads_ncmd_qos() {
    assert_eq!(host_wire().ncmd().1, 0);
}

#[test]
fn tck_id_payloads_ncmd_retain() {
    assert!(!host_wire().ncmd().2);
}

// ---- The host's own STATE -------------------------------------------------------------------

fn state_json(bytes: &[u8]) -> Json {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(bytes)))
}

/// `{"online": <online>, "timestamp": <ms>}` and nothing else; returns the timestamp.
fn assert_state(bytes: &[u8], online: bool) -> i64 {
    let json = state_json(bytes);
    let object = json.as_object().unwrap();
    assert_eq!(object.len(), 2, "{json}");
    assert_eq!(object["online"], Json::Bool(online));
    object["timestamp"].as_i64().unwrap()
}

fn state_topic() -> String {
    format!("spBv1.0/STATE/{HOST_ID}")
}

#[test]
fn tck_id_intro_sparkplug_host_state() {
    let wire = host_wire();
    assert_state(wire.birth().3, true);
    assert_state(&wire.connect.will.as_ref().unwrap().payload, false);
    assert_state(wire.death().3, false);
}

#[test]
fn tck_id_components_ph_state() {
    tck_id_intro_sparkplug_host_state();
}

#[test]
fn tck_id_conformance_primary_host() {
    tck_id_intro_sparkplug_host_state();
}

/// The STATE birth is the first message the host publishes in a session.
#[test]
fn tck_id_principles_birth_certificates_order() {
    let wire = host_wire();
    let first = wire.publishes()[0];
    assert_eq!(first.0, state_topic());
    assert_state(first.3, true);
}

#[test]
fn tck_id_host_topic_phid_birth_message() {
    tck_id_principles_birth_certificates_order();
}

#[test]
fn tck_id_host_topic_phid_birth_qos() {
    assert_eq!(host_wire().birth().1, 1);
}

#[test]
fn tck_id_host_topic_phid_birth_retain() {
    assert!(host_wire().birth().2);
}

#[test]
fn tck_id_host_topic_phid_birth_topic() {
    assert_eq!(host_wire().birth().0, state_topic());
}

/// The host subscribes to its own STATE and the namespace right after connecting.
#[test]
fn tck_id_host_topic_phid_birth_sub_required() {
    let wire = host_wire();
    let Some(Packet::Subscribe { filters }) = wire.packets.first() else {
        panic!("not a SUBSCRIBE first: {:#?}", wire.packets)
    };
    let filters: Vec<&str> = filters.iter().map(|(f, _)| f.as_str()).collect();
    assert!(filters.contains(&state_topic().as_str()), "{filters:?}");
    assert!(
        filters.contains(&format!("spBv1.0/{GROUP}/#").as_str()),
        "{filters:?}"
    );
}

/// The birth follows the subscription at once.
#[test]
fn tck_id_host_topic_phid_birth_required() {
    let wire = host_wire();
    assert!(matches!(wire.packets[0], Packet::Subscribe { .. }));
    assert!(matches!(&wire.packets[1], Packet::Publish { topic, .. } if *topic == state_topic()));
}

#[test]
fn tck_id_host_topic_phid_birth_payload() {
    assert_state(host_wire().birth().3, true);
}

/// The birth's timestamp is the will's.
#[test]
fn tck_id_host_topic_phid_birth_payload_timestamp() {
    let wire = host_wire();
    assert_eq!(
        assert_state(wire.birth().3, true),
        assert_state(&wire.connect.will.as_ref().unwrap().payload, false)
    );
}

#[test]
fn tck_id_host_topic_phid_death_qos() {
    assert_eq!(host_wire().connect.will.as_ref().unwrap().qos, 1);
    assert_eq!(host_wire().death().1, 1);
}

#[test]
fn tck_id_host_topic_phid_death_retain() {
    assert!(host_wire().connect.will.as_ref().unwrap().retain);
    assert!(host_wire().death().2);
}

#[test]
fn tck_id_host_topic_phid_death_topic() {
    assert_eq!(host_wire().connect.will.as_ref().unwrap().topic, state_topic());
    assert_eq!(host_wire().death().0, state_topic());
}

#[test]
fn tck_id_host_topic_phid_death_required() {
    assert!(host_wire().connect.will.is_some());
    assert!(host_wire_5().connect.will.is_some());
}

#[test]
fn tck_id_host_topic_phid_death_payload() {
    assert_state(&host_wire().connect.will.as_ref().unwrap().payload, false);
}

/// The will's timestamp is the time of the CONNECT.
#[test]
fn tck_id_host_topic_phid_death_payload_timestamp_connect() {
    let wire = host_wire();
    let t = assert_state(&wire.connect.will.as_ref().unwrap().payload, false);
    assert!(
        t >= wire.started_ms && t <= wire.connected_ms,
        "{t} not between the start and the CONNECT"
    );
}

/// An orderly stop publishes the death, at the time it stops, then DISCONNECT.
#[test]
fn tck_id_host_topic_phid_death_payload_timestamp_disconnect_clean() {
    let wire = host_wire();
    let t = assert_state(wire.death().3, false);
    assert!(
        t >= wire.stopping_ms && t <= wire.ended_ms,
        "{t} not the time of the stop"
    );
    let death = wire.position(|p| matches!(p, Packet::Publish { topic, payload, .. } if *topic == state_topic() && parse_state(payload).is_some_and(|s| !s.online)));
    let disconnect = wire.position(|p| matches!(p, Packet::Disconnect { .. }));
    assert_eq!(disconnect, death.map(|d| d + 1), "{:#?}", wire.packets);
}

#[test]
fn tck_id_message_flow_phid_sparkplug_clean_session_311() {
    let c = &host_wire().connect;
    assert_eq!(c.level, 4);
    assert!(c.clean);
}

#[test]
fn tck_id_message_flow_phid_sparkplug_clean_session_50() {
    let c = &host_wire_5().connect;
    assert_eq!(c.level, 5);
    assert!(c.clean);
    assert_eq!(c.session_expiry.unwrap_or(0), 0);
}

#[test]
fn tck_id_message_flow_phid_sparkplug_subscription() {
    tck_id_host_topic_phid_birth_sub_required();
    tck_id_host_topic_phid_birth_required();
}

#[test]
fn tck_id_message_flow_phid_sparkplug_state_publish() {
    tck_id_host_topic_phid_birth_required();
}

#[test]
fn tck_id_message_flow_phid_sparkplug_state_publish_payload() {
    assert_state(host_wire().birth().3, true);
}

#[test]
fn tck_id_message_flow_phid_sparkplug_state_publish_payload_timestamp() {
    tck_id_host_topic_phid_birth_payload_timestamp();
}

/// An `online: false` delivered on its own STATE topic is answered with the birth again,
/// with the will's timestamp.
#[test]
fn tck_id_message_flow_hid_sparkplug_state_message_delivered() {
    let wire = host_wire();
    let births: Vec<_> = wire
        .publishes()
        .into_iter()
        .filter(|p| p.0 == state_topic() && parse_state(p.3).is_some_and(|s| s.online))
        .collect();
    assert_eq!(
        births.len(),
        2,
        "the birth, and again after the offline: {:#?}",
        wire.packets
    );
    assert_eq!(births[1], births[0]);
    let s = HostState::new(HOST_ID, now());
    assert_eq!(
        s.on_own_state(br#"{"online": false, "timestamp": 1}"#),
        Some(s.birth())
    );
    assert_eq!(s.on_own_state(&s.birth().payload), None);
}

#[test]
fn tck_id_operational_behavior_host_application_connect_will() {
    tck_id_host_topic_phid_death_required();
}

#[test]
fn tck_id_operational_behavior_host_application_connect_will_topic() {
    assert_eq!(host_wire().connect.will.as_ref().unwrap().topic, state_topic());
}

#[test]
fn tck_id_operational_behavior_host_application_connect_will_payload() {
    tck_id_host_topic_phid_death_payload();
}

#[test]
fn tck_id_operational_behavior_host_application_connect_will_qos() {
    assert_eq!(host_wire().connect.will.as_ref().unwrap().qos, 1);
}

#[test]
fn tck_id_operational_behavior_host_application_connect_will_retained() {
    assert!(host_wire().connect.will.as_ref().unwrap().retain);
}

#[test]
fn tck_id_operational_behavior_host_application_connect_birth() {
    tck_id_host_topic_phid_birth_required();
}

#[test]
fn tck_id_operational_behavior_host_application_connect_birth_topic() {
    tck_id_host_topic_phid_birth_topic();
}

#[test]
fn tck_id_operational_behavior_host_application_connect_birth_payload() {
    tck_id_host_topic_phid_birth_payload();
    tck_id_host_topic_phid_birth_payload_timestamp();
}

#[test]
fn tck_id_operational_behavior_host_application_connect_birth_qos() {
    tck_id_host_topic_phid_birth_qos();
}

#[test]
fn tck_id_operational_behavior_host_application_connect_birth_retained() {
    tck_id_host_topic_phid_birth_retain();
}

#[test]
fn tck_id_operational_behavior_host_application_death_topic() {
    assert_eq!(host_wire().death().0, state_topic());
}

#[test]
fn tck_id_operational_behavior_host_application_death_payload() {
    assert_state(host_wire().death().3, false);
}

#[test]
fn tck_id_operational_behavior_host_application_death_qos() {
    assert_eq!(host_wire().death().1, 1);
}

#[test]
fn tck_id_operational_behavior_host_application_death_retained() {
    assert!(host_wire().death().2);
}

#[test]
fn tck_id_operational_behavior_host_application_disconnect_intentional() {
    tck_id_host_topic_phid_death_payload_timestamp_disconnect_clean();
}

#[test]
fn tck_id_operational_behavior_host_application_termination() {
    tck_id_host_topic_phid_death_payload_timestamp_disconnect_clean();
}

#[test]
fn tck_id_payloads_state_will_message() {
    tck_id_operational_behavior_host_application_connect_will_topic();
}

#[test]
fn tck_id_payloads_state_will_message_qos() {
    tck_id_operational_behavior_host_application_connect_will_qos();
}

#[test]
fn tck_id_payloads_state_will_message_retain() {
    tck_id_operational_behavior_host_application_connect_will_retained();
}

#[test]
fn tck_id_payloads_state_will_message_payload() {
    tck_id_host_topic_phid_death_payload();
}

#[test]
fn tck_id_payloads_state_subscribe() {
    tck_id_host_topic_phid_birth_sub_required();
}

#[test]
fn tck_id_payloads_state_birth() {
    tck_id_host_topic_phid_birth_required();
    tck_id_host_topic_phid_birth_qos();
    tck_id_host_topic_phid_birth_retain();
}

#[test]
fn tck_id_payloads_state_birth_payload() {
    tck_id_host_topic_phid_birth_payload_timestamp();
}

/// Every session starts with the STATE birth (one broker per source: each new session is a
/// new run of the source).
#[test]
fn tck_id_operational_behavior_primary_application_state_with_multiple_servers_state() {
    tck_id_principles_birth_certificates_order();
}

// ---- The source on the wire ---------------------------------------------------------------

/// What the source sent to a recording broker in its session.
struct HostWire {
    connect: Connect,
    packets: Vec<Packet>,
    /// Wall-clock bounds (ms since the epoch): before the engine started, when the CONNECT
    /// arrived, when the stop began, when the connection had ended.
    started_ms: i64,
    connected_ms: i64,
    stopping_ms: i64,
    ended_ms: i64,
}

impl HostWire {
    fn publishes(&self) -> Vec<Published<'_>> {
        self.packets.iter().filter_map(Packet::as_publish).collect()
    }

    fn birth(&self) -> Published<'_> {
        self.publishes()[0]
    }

    fn death(&self) -> Published<'_> {
        *self
            .publishes()
            .iter()
            .rfind(|p| p.0 == state_topic())
            .filter(|p| parse_state(p.3).is_some_and(|s| !s.online))
            .unwrap_or_else(|| panic!("no STATE death: {:#?}", self.packets))
    }

    fn ncmd(&self) -> Published<'_> {
        *self
            .publishes()
            .iter()
            .find(|p| p.0.contains("/NCMD/"))
            .unwrap_or_else(|| panic!("no NCMD: {:#?}", self.packets))
    }

    fn position(&self, pred: impl Fn(&Packet) -> bool) -> Option<usize> {
        self.packets.iter().position(pred)
    }
}

fn source_config(port: u16, protocol: &str) -> String {
    format!(
        r#"
[gateway]
name = "tck-host-gw"
[namespace]
enterprise = "acme"
site = "plant"
[models.Tank.attributes]
level = {{ type = "float" }}
running = {{ type = "bool" }}
[[assets]]
path = "area"
level = "area"
[[assets]]
path = "area/tank-1"
model = "Tank"
source = "scada"
bindings.level = {{ address = "{GROUP}/n1/d1:level" }}
bindings.running = {{ address = "{GROUP}/n1:running" }}
[[sources]]
name = "scada"
kind = "sparkplug"
broker = "mqtt://127.0.0.1:{port}"
protocol = "{protocol}"
host_id = "{HOST_ID}"
"#
    )
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Runs the source against a recording broker: its STATE birth, an `online: false` on its
/// own STATE topic, data from a node it never saw born (which it answers with a rebirth
/// request), an orderly stop.
fn run_source(protocol: &str) -> HostWire {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut broker = RecordingBroker::start();
        let dir = tempfile::tempdir().unwrap();
        let started_ms = wall_ms();
        let engine = common::start(&source_config(broker.port, protocol), dir.path());
        broker
            .wait_for("the CONNECT", |p| matches!(p, Packet::Connect(_)))
            .await;
        let connected_ms = wall_ms();
        broker.wait_publish(&state_topic()).await;
        // Handled in order: any answer to the offline comes before the rebirth request.
        broker.publish_to_client(&state_topic(), br#"{"online": false, "timestamp": 1}"#, false);
        broker.publish_to_client(
            &format!("spBv1.0/{GROUP}/DDATA/n1/d1"),
            &payload(Some(5), Some(NOW as u64), vec![]),
            false,
        );
        broker.wait_publish(&format!("spBv1.0/{GROUP}/NCMD/n1")).await;
        let stopping_ms = wall_ms();
        engine.shutdown().await;
        broker
            .wait_for("the end of the connection", |p| *p == Packet::Closed)
            .await;
        let ended_ms = wall_ms();
        let mine: Vec<Packet> = broker
            .seen
            .iter()
            .filter(|(c, _)| *c == 0)
            .map(|(_, p)| p.clone())
            .collect();
        let Some((Packet::Connect(connect), packets)) = mine.split_first() else {
            panic!("no CONNECT first: {mine:#?}")
        };
        HostWire {
            connect: connect.clone(),
            packets: packets.to_vec(),
            started_ms,
            connected_ms,
            stopping_ms,
            ended_ms,
        }
    })
}

fn host_wire() -> &'static HostWire {
    static WIRE: OnceLock<HostWire> = OnceLock::new();
    WIRE.get_or_init(|| run_source("3.1.1"))
}

fn host_wire_5() -> &'static HostWire {
    static WIRE: OnceLock<HostWire> = OnceLock::new();
    WIRE.get_or_init(|| run_source("5"))
}
