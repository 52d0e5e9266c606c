//! What cpppo cannot show: a controller that refuses Forward Open (the source falls back to
//! unconnected messages, or fails clearly when told to stay connected), a tag list (Get
//! Instance Attribute List on the Symbol object) for `browse`, and Logix STRING and UDT
//! member paths. Against our palletizer simulator, which implements those services.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::sync::Arc;

use backplane_connector::Options;
use backplane_ethernetip::client::{CallError, Mode};
use backplane_ethernetip::{EnipSettings, Poller, SimOptions, spawn_with};
use backplane_model::Value;

fn settings(port: u16, messaging: &str) -> Arc<EnipSettings> {
    common::settings(&format!(
        "url = \"enip://127.0.0.1:{port}\"\ntimeout = \"1s\"\nmessaging = \"{messaging}\"\n"
    ))
}

fn addresses() -> Vec<Arc<str>> {
    [
        "Palletizer.Recipe",
        "Palletizer.LayersPerPallet",
        "Palletizer.Lane[2].Cases",
        "Bench[5]{3}",
    ]
    .into_iter()
    .map(Arc::from)
    .collect()
}

#[tokio::test]
async fn a_refused_forward_open_falls_back_to_unconnected_messages() {
    let refusing = SimOptions {
        refuse_forward_open: true,
        ..SimOptions::default()
    };
    let (address, task) = spawn_with("127.0.0.1:0".parse().unwrap(), refusing)
        .await
        .unwrap();
    let mut poller = Poller::new("p", settings(address.port(), "auto"), &addresses()).unwrap();
    let mut conn = poller.connect().await.unwrap();
    assert_eq!(conn.mode(), Mode::Unconnected);
    let why = conn.refused.clone().unwrap();
    assert!(
        why.contains("Large Forward Open refused") && why.contains("out of connections"),
        "{why}"
    );
    assert_eq!(conn.size(), 504);
    let readings = poller.poll(&mut conn).await.unwrap();
    assert_eq!(
        poller.packets(&conn),
        1,
        "one Multiple Service Packet inside an Unconnected Send"
    );
    let values: Vec<Option<Value>> = readings.iter().map(|r| r.value.clone()).collect();
    assert_eq!(values[0], Some(Value::String("MILK-1L-6x4".into())));
    assert_eq!(values[1], Some(Value::Int(5)));
    assert!(matches!(values[2], Some(Value::Int(_))));
    assert!(matches!(&values[3], Some(Value::Array(a)) if a.len() == 3));

    // Told to stay connected, it says why it cannot.
    let strict = Poller::new("p", settings(address.port(), "connected"), &addresses()).unwrap();
    match strict.connect().await {
        Err(CallError::Protocol(m)) => {
            assert!(m.contains("opens no connection") && m.contains("0x0113"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    task.abort();
}

#[tokio::test]
async fn a_controller_without_multiple_service_packets_gets_one_read_per_tag() {
    let options = SimOptions {
        refuse_multiple_service: true,
        ..SimOptions::default()
    };
    let (address, task) = spawn_with("127.0.0.1:0".parse().unwrap(), options).await.unwrap();
    let mut poller = Poller::new("p", settings(address.port(), "auto"), &addresses()).unwrap();
    let mut conn = poller.connect().await.unwrap();
    assert_eq!(poller.packets(&conn), 1);
    for _ in 0..2 {
        let readings = poller.poll(&mut conn).await.unwrap();
        assert_eq!(readings.len(), 4);
        assert!(readings.iter().all(|r| r.quality.is_good()), "{readings:?}");
    }
    assert_eq!(poller.packets(&conn), 4);
    task.abort();
}

#[tokio::test]
async fn connected_sessions_write_strings_and_read_them_back() {
    let (address, task) = spawn_with("127.0.0.1:0".parse().unwrap(), SimOptions::default())
        .await
        .unwrap();
    let settings = common::settings(&format!("url = \"enip://{address}\"\nwrites = true\n"));
    let mut poller = Poller::new("p", settings, &addresses()).unwrap();
    let mut conn = poller.connect().await.unwrap();
    assert!(matches!(conn.mode(), Mode::Connected { large: true, .. }));
    let (back, _) = poller
        .write(&mut conn, 0, &Value::String("MILK-2L-4x3".into()))
        .await
        .unwrap();
    assert_eq!(back, Some(Value::String("MILK-2L-4x3".into())));
    let err = poller.write(&mut conn, 2, &Value::Int(1)).await.unwrap_err();
    assert!(err.0.contains("privilege violation"), "{}", err.0);
    let err = poller.write(&mut conn, 1, &Value::Int(40_000)).await.unwrap_err();
    assert!(err.0.contains("does not fit INT"), "{}", err.0);
    conn.close().await;
    task.abort();
}

#[tokio::test]
async fn browse_lists_the_controllers_tags_with_types_and_emits_bindings() {
    let (address, task) = spawn_with("127.0.0.1:0".parse().unwrap(), SimOptions::default())
        .await
        .unwrap();
    let mut options = Options::default();
    options.push("tag", "Palletizer.State,Palletizer.Recipe");
    let report = backplane_ethernetip::browse::browse(&format!("enip://{address}"), &options)
        .await
        .unwrap();
    let text = &report.text;
    assert!(
        text.contains("3 tags in the controller's tag list (and 1 system tags, not shown)"),
        "{text}"
    );
    assert!(text.contains("Bench") && text.contains("DINT[10000]"), "{text}");
    assert!(
        text.contains("Palletizer") && text.contains("structure (template 0xF01)"),
        "{text}"
    );
    assert!(
        !text.contains("__SystemClock"),
        "system tags are left out: {text}"
    );
    let recipe = report
        .signals
        .iter()
        .find(|s| s.address == "Palletizer.Recipe")
        .unwrap();
    assert_eq!(recipe.decodings[0].label, "STRING");
    assert_eq!(recipe.decodings[0].attribute_type.as_deref(), Some("string"));
    assert!(
        text.contains("bindings.palletizer_state = { address = \"Palletizer.State\" }"),
        "{text}"
    );
    assert!(text.contains("palletizer_state = { type = \"int\" }"), "{text}");
    assert!(report.source.contains("kind = \"ethernetip\""));
    task.abort();
}
