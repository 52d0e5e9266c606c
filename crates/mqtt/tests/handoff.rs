//! The UNS sink lets the connection write what it handed over before it takes more input:
//! on one runtime thread, the connection task woken by the sink waits in the sink's
//! next-task slot until the sink pauses, and a sink whose input is always ready would
//! otherwise take delivery after delivery (up to its in-flight window) before the first
//! byte reaches the socket (docs/performance.md, "Let the connection write before taking
//! more").
//!
//! QoS 0: a record is acknowledged once its messages are written to the socket, so the
//! acks counted when the sink takes each delivery show how far the writes had come.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::time::Duration;

use backplane_testkit::sink::SinkHarness;
use common::{SHARED_PORT, registry, unique};

const DELIVERIES: u64 = 60;

/// A plan of one asset of one tag and a UNS sink (QoS 0) on the shared broker.
fn config(prefix: &str) -> String {
    format!(
        r#"
[gateway]
name = "handoff-gw"

[namespace]
enterprise = "acme"
site = "plant"

[models.Tank.attributes]
level = {{ type = "float" }}

[[assets]]
path = "area"
level = "area"

[[assets]]
path = "area/tank-1"
model = "Tank"
source = "sim"
bindings.level = {{ address = "l" }}

[[sources]]
name = "sim"
kind = "simulator"
period = "1s"
signals.l = {{ signal = "constant", value = 1 }}

[[sinks]]
name = "uns"
kind = "mqtt"
broker = "mqtt://127.0.0.1:{SHARED_PORT}"
topic_prefix = "{prefix}"
client_id = "{prefix}"
qos = 0
"#
    )
}

// One thread: which task runs when is then the scheduler's order, not a race.
#[tokio::test(flavor = "current_thread")]
async fn the_connection_writes_each_delivery_before_the_uns_sink_takes_much_more() {
    let h = SinkHarness::new(&config(&unique("handoff")), registry());
    // Every delivery ready before the sink starts, one message each: the window (256)
    // never makes the sink wait, so only the sink itself can let the writer run.
    for r in 1..=DELIVERIES {
        h.feed.push(h.delivery(r, r, r as f64, false));
    }
    h.feed.close();
    tokio::time::timeout(Duration::from_secs(20), h.sink().run(h.io.clone()))
        .await
        .expect("the sink drains and stops")
        .expect("the sink stops cleanly");
    assert_eq!(
        h.feed.acked(),
        (1..=DELIVERIES).collect::<Vec<_>>(),
        "every record acknowledged once"
    );
    let taken = h.feed.acks_when_taken();
    assert_eq!(taken.len() as u64, DELIVERIES);
    // Taking delivery k, the records of all but the last two taken are written.
    let behind: Vec<(usize, usize)> = taken
        .iter()
        .enumerate()
        .filter(|&(k, &acks)| acks + 2 < k)
        .map(|(k, &acks)| (k, acks))
        .collect();
    assert!(
        behind.is_empty(),
        "the sink took deliveries before the writes of those before them, {} times; the first \
         (delivery, records written by then): {:?}",
        behind.len(),
        &behind[..behind.len().min(10)]
    );
}
