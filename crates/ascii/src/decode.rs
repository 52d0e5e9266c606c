//! One frame → readings: the checksum, the first pattern that matches, each bound capture
//! read as its type, and the quality from the quality capture. Pure.

use std::fmt::Write as _;
use std::sync::Arc;

use backplane_connector::RawReading;
use backplane_model::{BadReason, DataType, Quality, ScalarType, UncertainReason, Value};
use regex::bytes::Regex;

use crate::checksum::{Checksum, ChecksumError};
use crate::config::{AsciiSettings, QualityRule};

/// How many bytes of a line an error message shows.
pub const EXCERPT: usize = 64;

/// One address of the source: a capture read as a type.
#[derive(Clone, Debug)]
pub struct Target {
    pub address: u32,
    pub capture: Arc<str>,
    pub ty: ScalarType,
    /// The capture's group index in each pattern (`None`: that pattern lacks it).
    slots: Vec<Option<usize>>,
}

/// Why a line gave no readings.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("bad checksum: {0}")]
    Checksum(#[from] ChecksumError),
    #[error("matches no pattern")]
    NoMatch,
}

/// A capture of a matched line whose text is not a value of its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureError {
    pub capture: Arc<str>,
    pub ty: ScalarType,
    /// The capture's text (at most [`EXCERPT`] bytes, escaped).
    pub text: String,
}

/// What a matched line gave.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// Index of the pattern that matched.
    pub pattern: usize,
    pub readings: Vec<RawReading>,
    /// Captures that did not parse; their addresses got a bad (`type_mismatch`) reading.
    pub bad_captures: Vec<CaptureError>,
}

#[derive(Clone, Debug)]
struct QualitySlot {
    rule: QualityRule,
    slots: Vec<Option<usize>>,
}

/// Decodes the frames of one source.
#[derive(Clone, Debug)]
pub struct LineDecoder {
    patterns: Vec<Regex>,
    checksum: Option<Checksum>,
    quality: Option<QualitySlot>,
    targets: Vec<Target>,
}

fn slots(patterns: &[Regex], capture: &str) -> Vec<Option<usize>> {
    patterns
        .iter()
        .map(|p| p.capture_names().position(|n| n == Some(capture)))
        .collect()
}

impl LineDecoder {
    /// `addresses`: each address's capture name and type, indexed as the source's
    /// readings are. Captures no pattern has are the caller's to refuse (check_address).
    pub fn new(settings: &AsciiSettings, addresses: &[(Arc<str>, ScalarType)]) -> LineDecoder {
        let patterns = settings.patterns.clone();
        let targets = addresses
            .iter()
            .enumerate()
            .map(|(i, (capture, ty))| Target {
                address: i as u32,
                capture: capture.clone(),
                ty: *ty,
                slots: slots(&patterns, capture),
            })
            .collect();
        let quality = settings.quality.as_ref().map(|rule| QualitySlot {
            rule: rule.clone(),
            slots: slots(&patterns, &rule.capture),
        });
        LineDecoder {
            patterns,
            checksum: settings.checksum.clone(),
            quality,
            targets,
        }
    }

    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Decodes one frame.
    pub fn decode(&self, frame: &[u8]) -> Result<Decoded, LineError> {
        let body = match &self.checksum {
            Some(c) => c.verify(frame)?,
            None => frame,
        };
        let (pattern, caps) = self
            .patterns
            .iter()
            .enumerate()
            .find_map(|(i, p)| p.captures(body).map(|c| (i, c)))
            .ok_or(LineError::NoMatch)?;
        let quality = match &self.quality {
            Some(q) => match q.slots.get(pattern).copied().flatten() {
                Some(slot) => {
                    let flag = caps.get(slot).map(|m| m.as_bytes()).unwrap_or_default();
                    let flag = String::from_utf8_lossy(flag);
                    let flag = flag.trim();
                    if q.rule.good.iter().any(|g| g == flag) {
                        Quality::Good
                    } else if q.rule.uncertain.iter().any(|u| u == flag) {
                        Quality::Uncertain(UncertainReason::SensorNotAccurate)
                    } else {
                        Quality::Bad(BadReason::DeviceFailure)
                    }
                }
                // This pattern's lines carry no flag.
                None => Quality::Good,
            },
            None => Quality::Good,
        };
        let mut readings = Vec::new();
        let mut bad_captures = Vec::new();
        for t in &self.targets {
            let Some(m) = t
                .slots
                .get(pattern)
                .copied()
                .flatten()
                .and_then(|slot| caps.get(slot))
            else {
                continue;
            };
            match parse(m.as_bytes(), t.ty) {
                Some(value) => readings.push(RawReading {
                    address: t.address,
                    value: Some(value),
                    quality,
                    source_time: None,
                }),
                None => {
                    bad_captures.push(CaptureError {
                        capture: t.capture.clone(),
                        ty: t.ty,
                        text: excerpt(m.as_bytes()),
                    });
                    readings.push(RawReading {
                        address: t.address,
                        value: None,
                        quality: Quality::Bad(BadReason::TypeMismatch),
                        source_time: None,
                    });
                }
            }
        }
        Ok(Decoded {
            pattern,
            readings,
            bad_captures,
        })
    }
}

/// A capture's text as a value of `ty`: numbers, booleans and timestamps with surrounding
/// blanks trimmed (scales pad their weights), strings as they are. `None` if it is not one.
pub fn parse(bytes: &[u8], ty: ScalarType) -> Option<Value> {
    let text = std::str::from_utf8(bytes).ok()?;
    if ty == ScalarType::String {
        return Some(Value::String(text.into()));
    }
    Value::String(text.trim().into())
        .convert(DataType::Scalar(ty))
        .ok()
}

/// `bytes` for a log line: printable ASCII as is, the rest escaped (`\r`, `\x02`), cut
/// after [`EXCERPT`] bytes with the full length said.
pub fn excerpt(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(EXCERPT) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7E => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02X}");
            }
        }
    }
    if bytes.len() > EXCERPT {
        let _ = write!(out, "… ({} bytes)", bytes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn settings(extra: &str) -> AsciiSettings {
        let text = format!(
            "url = \"tcp://h:1\"\npatterns = ['^S (?P<stability>[SD]) +(?P<weight>\\S+) (?P<unit>\\S+)$', '^C (?P<count>\\S+)$']\n{extra}"
        );
        let (s, errors) = backplane_testkit::settings::parse(&text, crate::config::parse_settings);
        assert!(errors.is_empty(), "{errors:?}");
        s.unwrap()
    }

    fn decoder(extra: &str) -> LineDecoder {
        LineDecoder::new(
            &settings(extra),
            &[
                ("weight".into(), ScalarType::Float),
                ("unit".into(), ScalarType::String),
                ("count".into(), ScalarType::UInt),
            ],
        )
    }

    fn values(d: &Decoded) -> Vec<(u32, Option<Value>, Quality)> {
        d.readings
            .iter()
            .map(|r| (r.address, r.value.clone(), r.quality))
            .collect()
    }

    #[test]
    fn captures_become_typed_readings_of_their_addresses() {
        let d = decoder("").decode(b"S S     12.34 kg").unwrap();
        assert_eq!(d.pattern, 0);
        assert_eq!(
            values(&d),
            vec![
                (0, Some(Value::Float(12.34)), Quality::Good),
                (1, Some(Value::String("kg".into())), Quality::Good),
            ]
        );
        let d = decoder("").decode(b"C 17").unwrap();
        assert_eq!(values(&d), vec![(2, Some(Value::UInt(17)), Quality::Good)]);
        assert_eq!(decoder("").decode(b"hello"), Err(LineError::NoMatch));
    }

    #[test]
    fn the_quality_capture_makes_unstable_weights_uncertain_and_unknown_flags_bad() {
        let d = decoder("[quality]\ncapture = \"stability\"\ngood = [\"S\"]\nuncertain = [\"D\"]\n");
        let q = |line: &[u8]| d.decode(line).unwrap().readings[0].quality;
        assert_eq!(q(b"S S 1.0 g"), Quality::Good);
        assert_eq!(
            q(b"S D 1.0 g"),
            Quality::Uncertain(UncertainReason::SensorNotAccurate)
        );
        // The other pattern has no flag: its values are as good as the line.
        assert_eq!(q(b"C 3"), Quality::Good);
        let strict = decoder("[quality]\ncapture = \"stability\"\ngood = [\"S\"]\n");
        assert_eq!(
            strict.decode(b"S D 1.0 g").unwrap().readings[0].quality,
            Quality::Bad(BadReason::DeviceFailure)
        );
    }

    #[test]
    fn an_unparseable_capture_turns_its_address_bad_and_keeps_the_others() {
        let d = decoder("").decode(b"S S 12,5 kg").unwrap();
        assert_eq!(
            values(&d),
            vec![
                (0, None, Quality::Bad(BadReason::TypeMismatch)),
                (1, Some(Value::String("kg".into())), Quality::Good),
            ]
        );
        assert_eq!(
            d.bad_captures,
            vec![CaptureError {
                capture: "weight".into(),
                ty: ScalarType::Float,
                text: "12,5".into()
            }]
        );
    }

    #[test]
    fn the_checksum_is_checked_before_matching_and_stripped() {
        let d = decoder("[checksum]\nalgorithm = \"xor\"\nseparator = \"*\"\n");
        let body = b"C 42";
        let x = body.iter().fold(0u8, |a, b| a ^ b);
        let line = format!("C 42*{x:02X}");
        assert_eq!(
            values(&d.decode(line.as_bytes()).unwrap()),
            vec![(2, Some(Value::UInt(42)), Quality::Good)]
        );
        assert!(matches!(d.decode(b"C 42*00"), Err(LineError::Checksum(_))));
    }

    #[test]
    fn excerpts_escape_control_bytes_and_cut_long_lines() {
        assert_eq!(excerpt(b"\x02S\r\n\xFF"), "\\x02S\\r\\n\\xFF");
        let long = vec![b'a'; 100];
        assert_eq!(excerpt(&long), format!("{}… (100 bytes)", "a".repeat(64)));
    }
}
