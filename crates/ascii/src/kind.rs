//! [`AsciiKind`], registered as `ascii`: reads the source's settings, checks that each
//! address names a capture of its patterns, resolves each capture's type and builds the
//! source.

use std::sync::Arc;
use std::time::Duration;

use backplane_config::{AddressError, Plan, Table};
use backplane_connector::{ComponentError, Kind, Source, SourceContext, SourceKind, Topology};
use backplane_model::{DataType, ScalarType};

use crate::address::Address;
use crate::config::AsciiSettings;
use crate::decode::LineDecoder;
use crate::source::AsciiSource;

/// The kind registered as `ascii`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsciiKind;

impl Kind for AsciiKind {
    type Settings = AsciiSettings;

    fn describe(&self) -> &'static str {
        "ASCII lines from scales, barcode readers and printers over a serial port or raw TCP, read by regular expressions"
    }

    fn parse(&self, table: &mut Table<'_>) -> Option<AsciiSettings> {
        crate::config::parse_settings(table)
    }

    fn check_address(&self, settings: &AsciiSettings, address: &str) -> Result<(), AddressError> {
        let parsed = Address::parse(address)?;
        if settings.has_capture(&parsed.capture) {
            return Ok(());
        }
        Err(AddressError {
            message: format!(
                "no pattern of this source has a capture group `{}`",
                parsed.capture
            ),
            hint: Some(format!(
                "its capture groups: {}",
                settings.capture_names().join(", ")
            )),
        })
    }

    fn reads_integers(&self, _settings: &AsciiSettings, address: &str) -> bool {
        Address::parse(address).is_ok_and(|a| matches!(a.ty, Some(ScalarType::Int | ScalarType::UInt)))
    }

    fn read_period(&self, settings: &AsciiSettings, _address: &str) -> Option<Duration> {
        // Polled devices answer every period; others send when they have something.
        settings.poll.as_ref().map(|p| p.period)
    }

    fn summarize(&self, _plan: &Plan, name: &str, settings: &AsciiSettings) -> Vec<String> {
        let mode = match &settings.poll {
            Some(p) => format!("polled every {:?} (reply timeout {:?})", p.period, p.timeout),
            None => "unsolicited lines".to_owned(),
        };
        vec![format!(
            "ascii source `{name}`: {}, framing {}, max_line {} bytes, {} pattern(s), {mode}",
            settings.endpoint,
            settings.framing,
            settings.max_line,
            settings.patterns.len()
        )]
    }
}

/// The type an address's capture is read as: its own `:type`, else the type of the first
/// attribute it feeds (arrays' element type), else string.
fn capture_type(
    topology: &Topology,
    source: &str,
    address: &str,
    explicit: Option<ScalarType>,
) -> ScalarType {
    if let Some(t) = explicit {
        return t;
    }
    topology
        .sources
        .iter()
        .find(|s| s.name == source)
        .and_then(|s| {
            let i = s.addresses.iter().position(|a| &**a == address)?;
            let tag = s.routes.get(i)?.first()?;
            topology.tag(*tag)
        })
        .map(|tag| match tag.attribute.data_type {
            DataType::Scalar(t) | DataType::Array(t) => t,
        })
        .unwrap_or(ScalarType::String)
}

impl SourceKind for AsciiKind {
    fn build(&self, ctx: &SourceContext<'_, AsciiSettings>) -> Result<Box<dyn Source>, ComponentError> {
        let mut targets = Vec::with_capacity(ctx.addresses.len());
        for text in ctx.addresses {
            let address = Address::parse(text)
                .map_err(|e| ComponentError::config(format!("ascii source `{}`: {}", ctx.name, e.message)))?;
            let ty = capture_type(ctx.topology, ctx.name, text, address.ty);
            targets.push((Arc::from(address.capture.as_str()), ty));
        }
        let decoder = LineDecoder::new(ctx.settings, &targets);
        Ok(Box::new(AsciiSource {
            name: ctx.name.to_owned(),
            settings: Arc::new(ctx.settings.clone()),
            decoder,
        }))
    }
}
