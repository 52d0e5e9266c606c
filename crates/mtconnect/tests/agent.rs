//! The source against recorded agent documents (tests/fixtures, MTConnect 1.3 and 2.2
//! as the standard and its reference agent publish them), replayed over HTTP in scripted
//! order: sequence tracking, restarts, buffer overruns, conditions, and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use backplane_model::sample::Alarm;
use backplane_model::{AssetPath, BadReason, EventKind, Quality, Value};
use backplane_mtconnect::source::MtConnectSource;
use common::{ScriptedAgent, addresses, empty_sample, fixture, header_attr, run, settings, text};

const LIMIT: Duration = Duration::from_secs(10);
const V13: u64 = 1_764_490_000;

fn alarm(e: &backplane_model::Event) -> &Alarm {
    match &e.kind {
        EventKind::Alarm(a) => a,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_1x_agent_s_current_and_sample_arrive_in_sequence_order_with_conditions_as_alarms() {
    let agent = ScriptedAgent::start().await;
    agent
        .then("probe", 200, fixture("v1.3/probe.xml"))
        .then("current", 200, fixture("v1.3/current.xml"))
        .then("sample", 200, fixture("v1.3/sample.xml"))
        .then("sample", 200, empty_sample(V13, 1, 109));
    let list = [
        "Sspeed",
        "execution",
        "part_count",
        "system",
        "machine_state",
        "line",
        "Xact",
    ];
    let source = MtConnectSource::new("vmc", settings(&agent.url), addresses(&list))
        .alarms_to(3, AssetPath::parse("shop/cell/vmc").unwrap());
    let mut running = run(source);
    running
        .until(LIMIT, |r| r.events.len() >= 2 && r.values(4).len() >= 3)
        .await;

    assert_eq!(
        running.values(0),
        [Some(Value::Float(2500.0)), Some(Value::Float(2750.0))]
    );
    assert_eq!(
        running.values(1),
        [text("ACTIVE"), text("INTERRUPTED"), text("READY")]
    );
    assert_eq!(
        running.values(2),
        [text("41"), text("42")],
        "the name resolves to `pcount`"
    );
    assert_eq!(running.values(3), [text("normal"), text("fault"), text("normal")]);
    assert_eq!(
        running.values(4),
        [text("running"), text("down"), text("idle")],
        "execution, then the fault, then READY once the fault cleared"
    );
    let line: Vec<_> = running.readings.iter().filter(|r| r.address == 5).collect();
    assert_eq!(
        (line[0].value.clone(), line[0].quality),
        (None, Quality::Bad(BadReason::CommFailure))
    );
    assert_eq!(running.values(6).last().unwrap(), &Some(Value::Float(-11.25)));

    let raised = alarm(&running.events[0]);
    assert_eq!(
        (
            &*raised.severity,
            raised.active,
            raised.code.as_deref(),
            raised.message.as_deref()
        ),
        ("fault", true, Some("1021"), Some("Spindle overload"))
    );
    assert_eq!(running.events[0].asset.as_str(), "shop/cell/vmc");
    let cleared = alarm(&running.events[1]);
    assert_eq!(
        (&*cleared.severity, cleared.active, cleared.previous.as_deref()),
        ("normal", false, Some("fault"))
    );

    let requests = agent.requests();
    assert_eq!(requests[..3], ["probe", "current", "sample?from=101&count=1000"]);
    assert!(
        requests[3..].iter().all(|r| r == "sample?from=109&count=1000"),
        "{requests:?}"
    );
    assert_eq!(
        (
            running.counter("sequence_gap"),
            running.counter("observations_doubled")
        ),
        (0, 0)
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn every_request_asks_for_xml_so_an_agent_that_offers_json_answers_xml() {
    let agent = ScriptedAgent::start().await;
    agent
        .then("probe", 200, fixture("v2.0/probe.xml"))
        .then("current", 200, fixture("v2.0/current.xml"))
        .then("sample", 200, empty_sample(1_764_597_731, 1, 58));
    let source = MtConnectSource::new("mill", settings(&agent.url), addresses(&["p1_parts"]));
    let mut running = run(source);
    running.wait(LIMIT, || agent.requests().len() >= 3).await;
    let accepts = agent.accepts();
    assert!(
        accepts.iter().all(|a| a.starts_with("application/xml")),
        "{accepts:?}"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_2x_agent_reads_alike_and_unavailable_is_never_good() {
    let agent = ScriptedAgent::start().await;
    agent
        .then("probe", 200, fixture("v2.0/probe.xml"))
        .then("current", 200, fixture("v2.0/current.xml"))
        .then("sample", 200, fixture("v2.0/sample.xml"))
        .then("sample", 200, empty_sample(1_764_597_731, 1, 63));
    let list = [
        "spindle_speed",
        "c1_temp",
        "ctl_system",
        "machine_state",
        "p1_vars",
        "p1_parts",
    ];
    let source = MtConnectSource::new("mill", settings(&agent.url), addresses(&list))
        .alarms_to(2, AssetPath::parse("shop/cell/mill").unwrap());
    let mut running = run(source);
    running
        .until(LIMIT, |r| r.values(5).len() >= 2 && r.events.len() >= 2)
        .await;

    let temp: Vec<_> = running.readings.iter().filter(|r| r.address == 1).collect();
    assert_eq!(
        (temp[0].value.clone(), temp[0].quality),
        (Some(Value::Float(31.5)), Quality::Good)
    );
    assert_eq!(
        (temp[1].value.clone(), temp[1].quality),
        (None, Quality::Bad(BadReason::CommFailure))
    );
    assert_eq!(running.values(3), [text("running"), text("down")]);
    assert_eq!(running.values(4), [text("tool=T12 offset=0.02")]);
    assert_eq!(running.values(5), [text("7"), text("8")]);
    let warned = alarm(&running.events[0]);
    assert_eq!(
        (
            &*warned.severity,
            warned.previous.as_deref(),
            warned.code.as_deref()
        ),
        ("warning", None, Some("W300"))
    );
    let worse = alarm(&running.events[1]);
    assert_eq!(
        (&*worse.severity, worse.previous.as_deref()),
        ("fault", Some("warning"))
    );
    assert!(agent.requests().contains(&"sample?from=58&count=1000".to_owned()));
    running.stop().await.unwrap();
}

#[tokio::test]
async fn an_agent_restart_replays_the_new_instance_without_gaps_or_doubles() {
    let agent = ScriptedAgent::start().await;
    let b = 1_764_500_000u64;
    let b_probe = header_attr(&fixture("v1.3/probe.xml"), "instanceId", &b.to_string());
    // The restarted agent refuses the old cursor; its buffer holds sequences 1..=3.
    let refused = header_attr(
        &fixture("v1.3/error_out_of_range.xml"),
        "instanceId",
        &b.to_string(),
    );
    let replay = format!(
        r#"<MTConnectStreams><Header instanceId="{b}" version="1.3.0.18" bufferSize="131072" firstSequence="1" lastSequence="3" nextSequence="4"/><Streams><DeviceStream name="VMC-3Axis"><ComponentStream component="Path" componentId="path"><Events>
<PartCount dataItemId="pcount" sequence="2" timestamp="2026-11-30T09:00:00Z">0</PartCount>
<Availability dataItemId="avail" sequence="1" timestamp="2026-11-30T09:00:00Z">AVAILABLE</Availability>
<PartCount dataItemId="pcount" sequence="3" timestamp="2026-11-30T09:00:05Z">1</PartCount>
</Events></ComponentStream></DeviceStream></Streams></MTConnectStreams>"#
    );
    agent
        .then("probe", 200, fixture("v1.3/probe.xml"))
        .then("probe", 200, b_probe)
        .then("current", 200, fixture("v1.3/current.xml"))
        .then("sample", 200, fixture("v1.3/sample.xml"))
        .then("sample", 400, refused)
        .then("sample", 200, replay)
        .then("sample", 200, empty_sample(b, 1, 4));
    let source = MtConnectSource::new("vmc", settings(&agent.url), addresses(&["pcount"]));
    let mut running = run(source);
    running.until(LIMIT, |r| r.values(0).len() >= 4).await;
    running.drain(Duration::from_millis(300)).await;

    assert_eq!(running.values(0), [text("41"), text("42"), text("0"), text("1")]);
    let requests = agent.requests();
    let after_refusal: Vec<&String> = requests
        .iter()
        .skip_while(|r| *r != "sample?from=109&count=1000")
        .collect();
    assert_eq!(
        after_refusal[1], "probe",
        "the device model is read again: {requests:?}"
    );
    assert_eq!(after_refusal[2], "sample?from=1&count=1000", "{requests:?}");
    assert_eq!(running.counter("agent_restarts"), 1);
    assert_eq!(running.counter("sequence_gap"), 0);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_buffer_overrun_resyncs_with_current_and_counts_the_gap() {
    let agent = ScriptedAgent::start().await;
    let later = header_attr(
        &header_attr(&fixture("v1.3/current.xml"), "firstSequence", "900"),
        "nextSequence",
        "1000",
    )
    .replace(">41</PartCount>", ">77</PartCount>");
    agent
        .then("probe", 200, fixture("v1.3/probe.xml"))
        .then("current", 200, fixture("v1.3/current.xml"))
        .then("current", 200, later)
        .then("sample", 400, fixture("v1.3/error_out_of_range.xml"))
        .then("sample", 200, empty_sample(V13, 900, 1000));
    let source = MtConnectSource::new("vmc", settings(&agent.url), addresses(&["pcount"]));
    let mut running = run(source);
    running.until(LIMIT, |r| r.values(0).len() >= 2).await;
    running.wait(LIMIT, || agent.requests().len() >= 5).await;

    assert_eq!(running.values(0), [text("41"), text("77")]);
    assert_eq!(
        agent.requests()[..5],
        [
            "probe",
            "current",
            "sample?from=101&count=1000",
            "current",
            "sample?from=1000&count=1000"
        ]
    );
    assert_eq!(running.counter("out_of_range"), 1);
    assert_eq!(
        running.counter("sequence_gap"),
        1000 - 101,
        "every sequence not delivered one by one"
    );
    assert!(
        running
            .degraded()
            .iter()
            .any(|d| d.contains("from=101") && d.contains("OUT_OF_RANGE"))
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_xml_is_counted_named_and_the_good_data_around_it_kept() {
    let agent = ScriptedAgent::start().await;
    let good = fixture("v1.3/sample.xml");
    let broken = good[..good.len() / 2].to_owned();
    agent
        .then("probe", 200, fixture("v1.3/probe.xml"))
        .then("current", 200, fixture("v1.3/current.xml"))
        .then("sample", 200, broken)
        .then("sample", 200, good)
        .then("sample", 200, empty_sample(V13, 1, 109));
    let source = MtConnectSource::new("vmc", settings(&agent.url), addresses(&["pcount"]));
    let mut running = run(source);
    running.until(LIMIT, |r| r.values(0).len() >= 2).await;

    assert_eq!(running.values(0), [text("41"), text("42")]);
    assert_eq!(running.counter("errors_malformed"), 1);
    let degraded = running.degraded();
    assert!(
        degraded
            .iter()
            .any(|d| d.contains("sample (from=101)") && d.contains("at byte") && d.contains("line")),
        "{degraded:?}"
    );
    let requests = agent.requests();
    assert_eq!(
        requests[2..4],
        ["sample?from=101&count=1000", "sample?from=101&count=500"],
        "asked again, smaller"
    );
    assert!(!running.task.is_finished(), "bad input never stops the source");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn an_oversized_body_is_refused_at_max_body_and_the_source_goes_on() {
    let agent = ScriptedAgent::start().await;
    let good = fixture("v1.3/sample.xml");
    let huge = good.replace("<Streams>", &format!("<!-- {} --><Streams>", "x".repeat(20_000)));
    agent
        .then("probe", 200, fixture("v1.3/probe.xml"))
        .then("current", 200, fixture("v1.3/current.xml"))
        .then("sample", 200, huge)
        .then("sample", 200, good)
        .then("sample", 200, empty_sample(V13, 1, 109));
    let mut s = settings(&agent.url);
    s.max_body = 8192;
    let source = MtConnectSource::new("vmc", s, addresses(&["pcount"]));
    let mut running = run(source);
    running.until(LIMIT, |r| r.values(0).len() >= 2).await;

    assert_eq!(running.values(0), [text("41"), text("42")]);
    assert_eq!(running.counter("errors_too_large"), 1);
    assert!(
        running
            .degraded()
            .iter()
            .any(|d| d.contains("max_body (8192 bytes)")),
        "{:?}",
        running.degraded()
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn an_error_document_is_named_and_the_source_keeps_asking() {
    let agent = ScriptedAgent::start().await;
    agent
        .then("probe", 200, fixture("v2.0/probe.xml"))
        .then("current", 404, fixture("v2.0/error_no_device.xml"))
        .then("current", 200, fixture("v2.0/current.xml"))
        .then("sample", 200, empty_sample(1_764_597_731, 1, 58));
    let source = MtConnectSource::new("mill", settings(&agent.url), addresses(&["p1_parts"]));
    let mut running = run(source);
    running.until(LIMIT, |r| !r.values(0).is_empty()).await;
    assert_eq!(running.values(0), [text("7")]);
    assert_eq!(running.counter("agent_errors"), 1);
    assert!(
        running
            .degraded()
            .iter()
            .any(|d| d.contains("NO_DEVICE: Could not find the device 'Lathe-9'"))
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn an_agent_that_is_gone_fails_the_run_and_the_next_instance_resumes_at_the_cursor() {
    let agent = ScriptedAgent::start().await;
    agent
        .then("probe", 200, fixture("v1.3/probe.xml"))
        .then("current", 200, fixture("v1.3/current.xml"))
        .then("sample", 200, empty_sample(V13, 1, 101));
    let source = MtConnectSource::new("vmc", settings(&agent.url), addresses(&["pcount"]));
    let cursor = source.cursor();
    let mut running = run(source);
    running.wait(LIMIT, || agent.requests().len() >= 3).await;
    agent.stop();
    let result = tokio::time::timeout(LIMIT, running.task).await.unwrap().unwrap();
    let e = result.unwrap_err();
    assert_eq!(e.kind(), "io", "{e}");
    assert!(e.to_string().contains("GET"), "{e}");

    // The supervisor's next instance, against the agent back (same instance).
    let agent = ScriptedAgent::start().await;
    agent
        .then("probe", 200, fixture("v1.3/probe.xml"))
        .then("sample", 200, fixture("v1.3/sample.xml"))
        .then("sample", 200, empty_sample(V13, 1, 109));
    let source =
        MtConnectSource::new("vmc", settings(&agent.url), addresses(&["pcount"])).with_cursor(cursor);
    let mut running = run(source);
    running.until(LIMIT, |r| !r.values(0).is_empty()).await;
    assert_eq!(running.values(0), [text("42")], "no current, no double of 41");
    assert_eq!(agent.requests()[..2], ["probe", "sample?from=101&count=1000"]);
    running.stop().await.unwrap();
}
