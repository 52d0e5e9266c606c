//! Stale values: a value its source has not read again within `stale_after` (by default
//! three of its poll periods) turns uncertain (`last_usable_value`) on every output, keeps
//! its value, and is good again with the next reading. Time is passed in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::Path;
use std::sync::Arc;

use backplane_engine::context::ContextStore;
use backplane_engine::metrics::Metrics;
use backplane_engine::{LatestValues, Pipeline, PipelineInput, RawBatch, RawReading, Topology};
use backplane_model::{BadReason, Quality, Sample, Timestamp, UncertainReason, Value};

const STALE: Quality = Quality::Uncertain(UncertainReason::LastUsableValue);

/// A plan whose source reads every second; `extra` goes into the source's table.
fn config(extra: &str) -> String {
    format!(
        r#"
[namespace]
enterprise = "acme"
site = "plant"
[models.Tank.attributes]
level = {{ type = "float", unit = "%", range = [0, 100] }}
temp = {{ type = "float", unit = "degC" }}
[[assets]]
path = "tank"
model = "Tank"
source = "plc"
bindings.level = {{ address = "lvl", scale = {{ raw = [0, 1000], eng = [0, 100] }}, deadband = {{ percent = 1 }} }}
bindings.temp = {{ address = "t" }}
[[sources]]
name = "plc"
kind = "simulator"
period = "1s"
{extra}
signals.lvl = {{ signal = "constant", value = 0 }}
signals.t = {{ signal = "constant", value = 0 }}
"#
    )
}

struct Fixture {
    topology: Arc<Topology>,
    cache: Arc<LatestValues>,
    metrics: Arc<Metrics>,
    pipeline: Pipeline,
}

fn fixture(extra: &str) -> Fixture {
    fixture_of(&config(extra))
}

fn fixture_of(text: &str) -> Fixture {
    let registry = backplane_engine::builtins();
    let plan = backplane_config::load_str(text, Path::new("t.toml"), &registry.catalog()).unwrap();
    let topology = Arc::new(Topology::new(plan));
    let contexts = Arc::new(ContextStore::new(&topology));
    let cache = Arc::new(LatestValues::new(topology.tags.len()));
    let sources: Vec<String> = topology.sources.iter().map(|s| s.name.clone()).collect();
    let metrics = Arc::new(Metrics::new(&sources, &[], "v"));
    let pipeline = Pipeline::new(topology.clone(), contexts, cache.clone(), metrics.clone());
    Fixture {
        topology,
        cache,
        metrics,
        pipeline,
    }
}

/// Seconds after an arbitrary start, as a timestamp.
fn at(seconds: f64) -> Timestamp {
    Timestamp::from_unix_nanos(1_800_000_000_000_000_000 + (seconds * 1e9) as i64)
}

impl Fixture {
    fn feed(&mut self, seconds: f64, readings: &[(&str, u64)]) -> Vec<Sample> {
        self.feed_from(0, seconds, readings)
    }

    fn feed_from(&mut self, source_index: u32, seconds: f64, readings: &[(&str, u64)]) -> Vec<Sample> {
        let source = &self.topology.sources[source_index as usize];
        let readings = readings
            .iter()
            .map(|(a, v)| RawReading {
                address: source.addresses.iter().position(|x| &**x == *a).unwrap() as u32,
                value: Some(Value::UInt(*v)),
                quality: Quality::Good,
                source_time: None,
            })
            .collect();
        let batch = RawBatch {
            source: source_index,
            gateway_time: at(seconds),
            readings,
        };
        self.samples(PipelineInput::Readings(batch))
    }

    fn age(&mut self, seconds: f64) -> Vec<Sample> {
        self.samples(PipelineInput::Age(at(seconds)))
    }

    fn samples(&mut self, input: PipelineInput) -> Vec<Sample> {
        self.pipeline
            .process(input)
            .map(|b| b.samples)
            .unwrap_or_default()
    }

    fn path(&self, sample: &Sample) -> String {
        self.topology
            .path(&self.topology.tags[sample.tag.index()])
            .to_string()
    }

    fn stale_counted(&self) -> u64 {
        self.metrics.sources[0].stale.get()
    }
}

#[test]
fn a_value_not_read_for_three_poll_periods_turns_stale_once_keeping_its_value() {
    let mut f = fixture("");
    f.feed(0.0, &[("lvl", 500), ("t", 20)]);
    assert!(f.age(2.9).is_empty(), "younger than 3 periods of 1 s");

    let stale = f.age(3.1);
    assert_eq!(stale.len(), 2, "both values: {stale:?}");
    for sample in &stale {
        assert_eq!(sample.quality, STALE, "{}", f.path(sample));
        assert_eq!(sample.gateway_time, at(3.1));
    }
    let level = stale.iter().find(|s| f.path(s).ends_with("/level")).unwrap();
    assert_eq!(level.value, Some(Value::Float(50.0)), "the last value is kept");
    let latest = f.cache.get(level.tag).unwrap();
    assert_eq!(latest.sample.quality, STALE);
    assert_eq!(
        latest.raw,
        Some(Value::UInt(500)),
        "lineage still explains the value"
    );
    let why = latest.error.unwrap();
    assert!(
        why.contains("not read again for 3.1 s") && why.contains("stale after 3.0 s"),
        "{why}"
    );
    assert_eq!(f.stale_counted(), 2);

    assert!(f.age(10.0).is_empty(), "a stale value is reported once");
    assert_eq!(f.stale_counted(), 2);
}

/// A reload's new pipeline takes over when each value was last read, not only the value:
/// a value the old pipeline read still turns stale in the new one, on the old reading's
/// clock (a source a reload keeps running does not report unchanged values again).
#[test]
fn a_value_taken_over_by_a_reload_turns_stale_on_its_last_readings_clock() {
    let mut before = fixture("");
    before.feed(0.0, &[("lvl", 500), ("t", 20)]);
    let mut after = fixture("");
    assert_eq!(after.pipeline.take_over(&before.pipeline), 2);
    assert!(after.age(2.9).is_empty(), "younger than 3 periods of 1 s");

    let stale = after.age(3.1);
    assert_eq!(stale.len(), 2, "both values: {stale:?}");
    let level = stale.iter().find(|s| after.path(s).ends_with("/level")).unwrap();
    assert_eq!(level.quality, STALE);
    assert_eq!(
        level.value,
        Some(Value::Float(50.0)),
        "the value taken over is kept"
    );
}

/// Two sources with their own age limits: each tag ages by its source's, not by the first
/// or the shortest (the pipeline keeps each distinct limit once, and a tag's index into them).
#[test]
fn each_tag_ages_by_its_own_sources_limit() {
    let text = config("stale_after = \"2s\"")
        + r#"
[[assets]]
path = "tank-b"
model = "Tank"
source = "slow"
bindings.level = { address = "lvl" }
bindings.temp = { address = "t" }
[[sources]]
name = "slow"
kind = "simulator"
period = "1s"
stale_after = "20s"
signals.lvl = { signal = "constant", value = 0 }
signals.t = { signal = "constant", value = 0 }
"#;
    let mut f = fixture_of(&text);
    assert_eq!(
        f.pipeline.shortest_stale_after(),
        Some(std::time::Duration::from_secs(2))
    );
    f.feed_from(0, 0.0, &[("lvl", 500), ("t", 20)]);
    f.feed_from(1, 0.0, &[("lvl", 500), ("t", 20)]);
    let mut first: Vec<String> = f.age(2.5).iter().map(|s| f.path(s)).collect();
    first.sort();
    assert_eq!(first, ["acme/plant/tank/level", "acme/plant/tank/temp"]);
    assert!(
        f.age(19.5).is_empty(),
        "the slow source's values are younger than 20 s"
    );
    let mut second: Vec<String> = f.age(20.5).iter().map(|s| f.path(s)).collect();
    second.sort();
    assert_eq!(second, ["acme/plant/tank-b/level", "acme/plant/tank-b/temp"]);
}

#[test]
fn the_next_reading_makes_a_stale_value_good_even_inside_its_deadband() {
    let mut f = fixture("");
    f.feed(0.0, &[("lvl", 500)]);
    f.age(3.5);
    let fresh = f.feed(4.0, &[("lvl", 500)]);
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].quality, Quality::Good);
    assert_eq!(fresh[0].value, Some(Value::Float(50.0)));
}

#[test]
fn readings_inside_the_deadband_keep_a_value_fresh() {
    let mut f = fixture("");
    f.feed(0.0, &[("lvl", 500)]);
    assert!(f.feed(2.0, &[("lvl", 503)]).is_empty(), "inside the deadband");
    assert!(
        f.age(4.0).is_empty(),
        "read 2 s ago, though last published 4 s ago"
    );
    assert_eq!(f.age(5.1).len(), 1);
}

#[test]
fn a_value_that_was_stale_and_read_again_ages_again() {
    let mut f = fixture("");
    f.feed(0.0, &[("lvl", 500)]);
    assert_eq!(f.age(3.1).len(), 1);
    f.feed(4.0, &[("lvl", 500)]);
    assert!(f.age(6.9).is_empty());
    let again = f.age(7.1);
    assert_eq!(again.len(), 1, "stale again three periods after its last reading");
    assert_eq!(again[0].quality, STALE);
}

#[test]
fn bad_values_stay_bad_and_never_read_values_stay_absent() {
    let mut f = fixture("");
    f.feed(0.0, &[("lvl", 500)]);
    let down = PipelineInput::SourceDown {
        source: 0,
        quality: Quality::Bad(BadReason::CommFailure),
        time: at(1.0),
    };
    f.samples(down);
    assert!(
        f.age(60.0).is_empty(),
        "bad says more than stale; `t` was never read"
    );
}

#[test]
fn stale_after_polls_and_stale_after_set_the_limit() {
    let mut f = fixture("stale_after_polls = 5");
    f.feed(0.0, &[("lvl", 500)]);
    assert!(f.age(4.9).is_empty());
    assert_eq!(f.age(5.1).len(), 1);

    let mut f = fixture("stale_after = \"1500ms\"");
    f.feed(0.0, &[("lvl", 500)]);
    assert!(f.age(1.4).is_empty());
    assert_eq!(f.age(1.6).len(), 1);
    assert_eq!(
        f.pipeline.shortest_stale_after(),
        Some(std::time::Duration::from_millis(1500))
    );
}

#[test]
fn stale_after_never_keeps_old_values_good() {
    let mut f = fixture("stale_after = \"never\"");
    f.feed(0.0, &[("lvl", 500)]);
    assert!(f.age(3600.0).is_empty());
    assert_eq!(f.pipeline.shortest_stale_after(), None, "no age clock is started");
}

#[test]
fn contradicting_or_out_of_range_age_settings_are_refused_with_the_key() {
    let registry = backplane_engine::builtins();
    for (extra, wanted) in [
        ("stale_after = \"2s\"\nstale_after_polls = 4", "not both"),
        ("stale_after_polls = 1", "2 to 1000"),
        ("stale_after = \"1ms\"", "at least 10ms"),
        ("stale_after = 3", "expected a duration"),
    ] {
        let err = backplane_config::load_str(&config(extra), Path::new("t.toml"), &registry.catalog())
            .unwrap_err()
            .iter()
            .map(|d| format!("{d:?}"))
            .collect::<String>();
        assert!(err.contains(wanted), "{extra}: {err}");
    }
}
