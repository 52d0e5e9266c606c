//! The NATS kinds' registry and the sink harness of the shared test kit
//! ([`backplane_testkit::sink`]) with it.

#![allow(dead_code)]

use std::ops::Deref;

use backplane_connector::Registry;
use backplane_testkit::sink::SinkHarness;

pub fn registry() -> Registry {
    let mut registry = backplane_engine::builtins();
    backplane_nats::register(&mut registry);
    registry
}

/// A plan's first sink, run alone on a scripted feed, with the NATS kinds.
pub struct Harness(SinkHarness);

impl Harness {
    pub fn new(config: &str) -> Harness {
        Harness(SinkHarness::new(config, registry()))
    }
}

impl Deref for Harness {
    type Target = SinkHarness;
    fn deref(&self) -> &SinkHarness {
        &self.0
    }
}
