//! The `ascii` source's configuration keys, read through the config crate's [`Table`] so
//! every key is checked and every error has a position. See docs/connectors/ascii.md.

use std::fmt;
use std::time::Duration;

use backplane_config::Table;
use regex::bytes::{Regex, RegexBuilder};

use crate::checksum::{Algorithm, Checksum, Encoding};
use crate::frame::Framing;
use backplane_serial::{Parity, SerialLine};

/// The longest `max_line` accepted.
pub const MAX_LINE_LIMIT: usize = 65_536;
/// The compiled size a pattern may reach (the regex crate's own bound on memory).
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Where the device is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Serial(SerialLine),
    /// A raw TCP client connection (a device with an Ethernet port, or a serial device
    /// server in raw / transparent mode).
    Tcp {
        host: String,
        port: u16,
    },
}

impl Endpoint {
    /// `serial:///dev/ttyUSB0?baud=9600&...` or `tcp://HOST:PORT`.
    pub fn parse(url: &str) -> Result<Endpoint, (String, String)> {
        let hint = || "serial:///dev/ttyUSB0?baud=9600 or tcp://HOST:PORT".to_owned();
        if let Some(rest) = url.strip_prefix("serial://") {
            // What most scales and barcode readers ship with: 9600 8N1.
            let default = SerialLine::new("", 9600, Parity::None);
            return SerialLine::parse("serial", rest, &default).map(Endpoint::Serial);
        }
        let Some(rest) = url.strip_prefix("tcp://") else {
            return Err((format!("unknown scheme in `{url}`"), hint()));
        };
        let rest = rest.trim_end_matches('/');
        let Some((host, port)) = rest.rsplit_once(':').filter(|(_, p)| !p.contains(']')) else {
            return Err((format!("`{url}` has no port"), hint()));
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| (format!("port `{port}` in `{url}` is not 1 to 65535"), hint()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err((format!("`{url}` has no host"), hint()));
        }
        Ok(Endpoint::Tcp {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Serial(line) => f.write_str(&line.url("serial")),
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

/// The quality a line's values get from one of its captures (e.g. a scale's stability flag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QualityRule {
    pub capture: String,
    /// Capture texts (trimmed) that make the values good.
    pub good: Vec<String>,
    /// Capture texts that make them uncertain (`sensor_not_accurate`).
    pub uncertain: Vec<String>,
}

/// A command sent to the device every `period`, for devices that answer rather than send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Poll {
    pub command: Vec<u8>,
    pub period: Duration,
    /// How long to wait for an answer before the values turn bad (`timeout`).
    pub timeout: Duration,
}

/// Everything an `ascii` source reads from its `[[sources]]` table.
#[derive(Clone, Debug)]
pub struct AsciiSettings {
    pub endpoint: Endpoint,
    pub framing: Framing,
    pub max_line: usize,
    /// Tried in order; the first that matches a line decodes it.
    pub patterns: Vec<Regex>,
    pub checksum: Option<Checksum>,
    pub quality: Option<QualityRule>,
    pub poll: Option<Poll>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl AsciiSettings {
    /// Whether any pattern has a capture group called `name`.
    pub fn has_capture(&self, name: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| p.capture_names().any(|n| n == Some(name)))
    }

    /// Every named capture group, in pattern order, for hints.
    pub fn capture_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .patterns
            .iter()
            .flat_map(|p| p.capture_names().flatten())
            .collect();
        names.dedup();
        names
    }
}

fn compile(table: &Table<'_>, key: &str, text: &str) -> Option<Regex> {
    match RegexBuilder::new(text).size_limit(PATTERN_SIZE_LIMIT).build() {
        Ok(r) if r.capture_names().flatten().next().is_none() => {
            table.error(
                key,
                format!("pattern `{text}` has no named capture group"),
                Some("name the parts to read: (?P<weight>[-+0-9.]+)".into()),
            );
            None
        }
        Ok(r) => Some(r),
        Err(e) => {
            table.error(key, format!("pattern `{text}`: {e}"), None);
            None
        }
    }
}

fn strings(table: &mut Table<'_>, key: &str) -> Option<Vec<String>> {
    let item = table.optional_item(key)?;
    let Some(items) = item.as_array() else {
        item.error(
            format!("expected an array of strings, found {}", item.type_name()),
            None,
        );
        return None;
    };
    let mut out = Vec::new();
    for i in items {
        match i.as_str() {
            Some(s) => out.push(s.to_owned()),
            None => {
                i.error(format!("expected a string, found {}", i.type_name()), None);
                return None;
            }
        }
    }
    Some(out)
}

/// Reads the keys of one `[[sources]]` table of kind `ascii`.
pub fn parse_settings(table: &mut Table<'_>) -> Option<AsciiSettings> {
    let mut ok = true;
    let endpoint = table.required_parsed("url", Endpoint::parse);
    let framing = match table.optional_str("framing") {
        None => Framing::Line,
        Some(text) => Framing::parse(text).unwrap_or_else(|| {
            table.error(
                "framing",
                format!("unknown framing `{text}`"),
                Some(
                    "one of: line (CR, LF or CRLF), cr, lf, crlf, etx, stx-etx, or a byte as \"0x1E\"".into(),
                ),
            );
            ok = false;
            Framing::Line
        }),
    };
    let max_line = match table.optional_u64("max_line") {
        None => 1024,
        Some(n) if (1..=MAX_LINE_LIMIT as u64).contains(&n) => n as usize,
        Some(n) => {
            table.error(
                "max_line",
                format!("max_line = {n} is outside 1..={MAX_LINE_LIMIT}"),
                None,
            );
            ok = false;
            1024
        }
    };
    let mut patterns = Vec::new();
    match (table.has("pattern"), table.has("patterns")) {
        (true, true) => {
            table.error("patterns", "give `pattern` or `patterns`, not both", None);
            ok = false;
        }
        (false, false) => {
            table.error(
                "pattern",
                "an ascii source needs a `pattern` (or `patterns`) with named capture groups",
                Some(
                    r#"e.g. pattern = '^S (?P<stability>[SD]) +(?P<weight>[-0-9.]+) (?P<unit>\S+)$'"#.into(),
                ),
            );
            ok = false;
        }
        (true, false) => match table.optional_str("pattern") {
            Some(text) => match compile(table, "pattern", text) {
                Some(r) => patterns.push(r),
                None => ok = false,
            },
            None => ok = false,
        },
        (false, true) => match strings(table, "patterns") {
            Some(list) if !list.is_empty() => {
                for text in list {
                    match compile(table, "patterns", &text) {
                        Some(r) => patterns.push(r),
                        None => ok = false,
                    }
                }
            }
            Some(_) => {
                table.error("patterns", "`patterns` is empty", None);
                ok = false;
            }
            None => ok = false,
        },
    }
    let checksum = table.optional_table("checksum").and_then(|mut t| {
        let algorithm = t.required_str("algorithm").and_then(|a| {
            Algorithm::parse(a).or_else(|| {
                t.error(
                    "algorithm",
                    format!("unknown checksum algorithm `{a}`"),
                    Some("xor, sum or lrc".into()),
                );
                None
            })
        });
        let encoding = match t.optional_str("encoding") {
            None | Some("hex") => Some(Encoding::Hex),
            Some("byte") => Some(Encoding::Byte),
            Some(other) => {
                t.error(
                    "encoding",
                    format!("unknown checksum encoding `{other}`"),
                    Some("hex (two hex digits) or byte (one raw byte)".into()),
                );
                None
            }
        };
        let skip = t.optional_u64("skip").unwrap_or(0).min(MAX_LINE_LIMIT as u64) as usize;
        let separator = t.optional_str("separator").unwrap_or("").as_bytes().to_vec();
        t.finish();
        let parsed = algorithm.zip(encoding).map(|(algorithm, encoding)| Checksum {
            algorithm,
            encoding,
            skip,
            separator,
        });
        if parsed.is_none() {
            ok = false;
        }
        parsed
    });
    let quality = table.optional_table("quality").and_then(|mut t| {
        let capture = t.required_str("capture").map(str::to_owned);
        let good = strings(&mut t, "good").unwrap_or_default();
        let uncertain = strings(&mut t, "uncertain").unwrap_or_default();
        if good.is_empty() && uncertain.is_empty() {
            t.error(
                "good",
                "a quality rule needs `good` (and usually `uncertain`) values",
                Some(r#"e.g. good = ["S"], uncertain = ["D"] for a SICS scale's stability flag"#.into()),
            );
            ok = false;
        }
        t.finish();
        let capture = capture?;
        if !patterns.is_empty()
            && !patterns
                .iter()
                .any(|p| p.capture_names().any(|n| n == Some(&capture)))
        {
            table.error(
                "quality",
                format!("no pattern has a capture group `{capture}`"),
                Some(format!("add (?P<{capture}>...) to the pattern")),
            );
            ok = false;
        }
        Some(QualityRule {
            capture,
            good,
            uncertain,
        })
    });
    let mut at_least = |table: &mut Table<'_>, key: &str, default: Duration, min: Duration| {
        let d = table.optional_duration(key).unwrap_or(default);
        if d < min {
            table.error(key, format!("`{key}` must be at least {min:?}"), None);
            ok = false;
        }
        d
    };
    let connect_timeout = at_least(
        table,
        "connect_timeout",
        Duration::from_secs(5),
        Duration::from_millis(10),
    );
    let reconnect_min = at_least(
        table,
        "reconnect_min",
        Duration::from_millis(500),
        Duration::from_millis(10),
    );
    let reconnect_max = at_least(table, "reconnect_max", Duration::from_secs(30), reconnect_min);
    let mut empty_command = false;
    let poll = table.optional_table("poll").and_then(|mut t| {
        let command = t.required_str("command").map(|c| c.as_bytes().to_vec());
        let period = at_least(
            &mut t,
            "period",
            Duration::from_secs(1),
            Duration::from_millis(10),
        );
        let timeout = at_least(
            &mut t,
            "timeout",
            Duration::from_secs(1),
            Duration::from_millis(10),
        );
        if command.as_ref().is_some_and(Vec::is_empty) {
            t.error(
                "command",
                "the poll command is empty",
                Some(r#"e.g. command = "S\r\n""#.into()),
            );
            empty_command = true;
        }
        t.finish();
        Some(Poll {
            command: command?,
            period,
            timeout,
        })
    });
    if empty_command {
        ok = false;
    }
    let endpoint = endpoint?;
    ok.then_some(AsciiSettings {
        endpoint,
        framing,
        max_line,
        patterns,
        checksum,
        quality,
        poll,
        connect_timeout,
        reconnect_min,
        reconnect_max,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(text: &str) -> (Option<AsciiSettings>, Vec<String>) {
        backplane_testkit::settings::parse(text, parse_settings)
    }

    #[test]
    fn a_minimal_tcp_source_takes_documented_defaults() {
        let (s, errors) = parse("url = \"tcp://10.0.0.7:4001\"\npattern = '^(?P<code>\\d+)$'\n");
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        assert_eq!(s.endpoint.to_string(), "tcp://10.0.0.7:4001");
        assert_eq!((s.framing, s.max_line), (Framing::Line, 1024));
        assert!(s.checksum.is_none() && s.quality.is_none() && s.poll.is_none());
        assert_eq!(
            (s.connect_timeout, s.reconnect_min, s.reconnect_max),
            (
                Duration::from_secs(5),
                Duration::from_millis(500),
                Duration::from_secs(30)
            )
        );
        assert!(s.has_capture("code") && !s.has_capture("weight"));
    }

    #[test]
    fn a_polled_scale_with_checksum_and_quality_parses() {
        let (s, errors) = parse(
            r#"url = "serial:///dev/ttyUSB0?baud=9600"
framing = "crlf"
max_line = 64
pattern = '^S (?P<stability>[SD]) +(?P<weight>[-0-9.]+) (?P<unit>\S+)$'
[checksum]
algorithm = "xor"
skip = 1
separator = "*"
[quality]
capture = "stability"
good = ["S"]
uncertain = ["D"]
[poll]
command = "S\r\n"
period = "200ms"
timeout = "150ms"
"#,
        );
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        assert!(matches!(s.endpoint, Endpoint::Serial(ref l) if l.baud == 9600));
        assert_eq!(s.framing, Framing::CrLf);
        let poll = s.poll.unwrap();
        assert_eq!(poll.command, b"S\r\n");
        assert_eq!(
            (poll.period, poll.timeout),
            (Duration::from_millis(200), Duration::from_millis(150))
        );
        assert_eq!(s.quality.unwrap().uncertain, vec!["D".to_owned()]);
        assert_eq!(s.checksum.unwrap().separator, b"*");
    }

    #[test]
    fn wrong_values_are_reported_with_hints() {
        let (s, errors) = parse(
            "url = \"udp://h:1\"\nframing = \"tab\"\nmax_line = 0\npattern = '^(\\d+)$'\n\
             [checksum]\nalgorithm = \"crc\"\n[quality]\ncapture = \"flag\"\n[poll]\ncommand = \"\"\nperiod = \"1ms\"\n",
        );
        assert!(s.is_none());
        let all = errors.join("\n");
        for needle in [
            "unknown scheme",
            "unknown framing `tab`",
            "max_line = 0",
            "no named capture group",
            "unknown checksum algorithm `crc`",
            "needs `good`",
            "command is empty",
            "`period` must be at least",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        let (_, errors) = parse("url = \"tcp://h:1\"\n");
        assert!(errors[0].contains("needs a `pattern`"), "{errors:?}");
        let (_, errors) = parse("url = \"tcp://h:1\"\npattern = '(?P<a>x'\n");
        assert!(errors[0].contains("pattern `(?P<a>x`"), "{errors:?}");
        let (_, errors) =
            parse("url = \"tcp://h:1\"\npattern = '(?P<a>x)'\n[quality]\ncapture = \"b\"\ngood = [\"S\"]\n");
        assert!(
            errors[0].contains("no pattern has a capture group `b`"),
            "{errors:?}"
        );
    }

    #[test]
    fn endpoints_parse_and_print_back() {
        for url in ["tcp://scale:4001", "tcp://[::1]:7000"] {
            assert_eq!(Endpoint::parse(url).unwrap().to_string(), url);
        }
        assert!(Endpoint::parse("tcp://h").is_err());
        assert!(Endpoint::parse("tcp://:80").is_err());
        assert!(Endpoint::parse("tcp://h:0").is_err());
    }
}
