//! Store-and-forward settings: `[gateway.buffer]` and a network sink's `buffer` table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use backplane_config::{Fsync, Overflow, SinkBuffer};
use common::{errors, load, one_error, with_base};

#[test]
fn network_sinks_get_the_default_buffer_and_local_sinks_none() {
    let plan = load(&with_base(
        "[[sinks]]\nname = \"uns\"\nkind = \"network\"\n\n[[sinks]]\nname = \"file\"\nkind = \"jsonl\"\npath = \"x.jsonl\"\n",
    ))
    .unwrap();
    assert_eq!(plan.sinks[0].buffer, Some(SinkBuffer::default()));
    assert_eq!(plan.sinks[1].buffer, None);
    assert_eq!(
        plan.gateway.buffer.fsync,
        Fsync::Every(Duration::from_millis(100))
    );
    assert_eq!(plan.gateway.buffer.segment_bytes, 64 * 1024 * 1024);
    let default = SinkBuffer::default();
    assert_eq!(default.quota_bytes, 1024 * 1024 * 1024);
    assert_eq!(default.overflow, Overflow::DropOldest);
}

#[test]
fn reads_quota_overflow_live_lag_and_the_log_settings() {
    let text = format!(
        "[gateway]\nname = \"gw\"\n[gateway.buffer]\nfsync = \"always\"\nsegment_size = \"8MiB\"\n\n{}",
        with_base(
            "[[sinks]]\nname = \"uns\"\nkind = \"network\"\nbuffer = { quota = \"2GiB\", overflow = \"block\", live_lag = \"5s\" }\n"
        )
    );
    let plan = load(&text).unwrap();
    assert_eq!(plan.gateway.buffer.fsync, Fsync::Always);
    assert_eq!(plan.gateway.buffer.segment_bytes, 8 * 1024 * 1024);
    assert_eq!(
        plan.sinks[0].buffer,
        Some(SinkBuffer {
            quota_bytes: 2 * 1024 * 1024 * 1024,
            overflow: Overflow::Block,
            live_lag: Duration::from_secs(5),
        })
    );
}

#[test]
fn rejects_a_buffer_on_a_local_sink() {
    let d = one_error(&with_base(
        "[[sinks]]\nname = \"file\"\nkind = \"jsonl\"\npath = \"x.jsonl\"\nbuffer = { quota = \"1GiB\" }\n",
    ));
    assert_eq!(d.key, "sinks[0].buffer");
    assert!(d.message.contains("no store-and-forward buffer"), "{}", d.message);
}

#[test]
fn names_every_bad_buffer_key() {
    let all = errors(&format!(
        "[gateway.buffer]\nfsync = \"0s\"\nsegment_size = \"10 parsecs\"\n\n{}",
        with_base(
            "[[sinks]]\nname = \"uns\"\nkind = \"network\"\nbuffer = { quota = \"1kB\", overflow = \"spill\", live_lag = \"0s\", colour = \"red\" }\n"
        )
    ));
    let keys: Vec<&str> = all.iter().map(|d| d.key.as_str()).collect();
    for key in [
        "gateway.buffer.fsync",
        "gateway.buffer.segment_size",
        "sinks[0].buffer.quota",
        "sinks[0].buffer.overflow",
        "sinks[0].buffer.live_lag",
        "sinks[0].buffer.colour",
    ] {
        assert!(keys.contains(&key), "no diagnostic for {key}: {keys:?}");
    }
}
