//! A source kind `counter` that emits 0, 1, 2, … (`count` values, one reading per batch,
//! at address 0) as fast as the engine takes them, then idles: what arrives where shows
//! whether anything was lost or reordered on the way.

use std::future::Future;
use std::pin::Pin;

use backplane_config::Table;
use backplane_engine::{ComponentError, Kind, RawReading, Source, SourceContext, SourceIo, SourceKind};
use backplane_model::{Quality, Timestamp, Value};

/// A plan of one meter whose `count` attribute the source `counter` counts up to `count`
/// values, without sinks: a test appends its own `[[sinks]]` tables.
pub fn plan(count: u64) -> String {
    format!(
        r#"
[namespace]
enterprise = "acme"
site = "plant"
[models.Meter.attributes]
count = {{ type = "uint" }}
[[assets]]
path = "meter"
model = "Meter"
source = "counter"
bindings.count = {{ address = "n" }}
[[sources]]
name = "counter"
kind = "counter"
count = {count}
"#
    )
}

/// The kind; register it with `registry.add_source("counter", Counter)`.
#[derive(Clone, Copy, Debug)]
pub struct Counter;

/// Settings: `count` (default 1000).
#[derive(Clone, Copy, Debug)]
pub struct CounterSettings {
    pub count: u64,
}

impl Kind for Counter {
    type Settings = CounterSettings;
    fn describe(&self) -> &'static str {
        "counts 0, 1, 2, … as fast as it may (test)"
    }
    fn parse(&self, table: &mut Table<'_>) -> Option<CounterSettings> {
        Some(CounterSettings {
            count: table.optional_u64("count").unwrap_or(1000),
        })
    }
}

impl SourceKind for Counter {
    /// Reads its own settings and addresses only: a reload keeps it running when those stay.
    fn reads_asset_tree(&self) -> bool {
        false
    }

    fn build(&self, ctx: &SourceContext<'_, CounterSettings>) -> Result<Box<dyn Source>, ComponentError> {
        Ok(Box::new(Running(ctx.settings.count)))
    }
}

struct Running(u64);

type Run = Pin<Box<dyn Future<Output = Result<(), ComponentError>> + Send>>;

impl Source for Running {
    fn run(self: Box<Self>, io: SourceIo) -> Run {
        Box::pin(async move {
            for n in 0..self.0 {
                let reading = RawReading {
                    address: 0,
                    value: Some(Value::UInt(n)),
                    quality: Quality::Good,
                    source_time: None,
                };
                if !io.emit(Timestamp::now(), vec![reading]).await {
                    return Ok(());
                }
            }
            io.cancelled().await;
            Ok(())
        })
    }
}
