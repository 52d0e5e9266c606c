//! The `s7` source's configuration keys, read through the config crate's [`Table`] so every
//! key is checked and every error has a position. See docs/connectors/s7.md.

use std::fmt;
use std::time::Duration;

use backplane_config::Table;

use crate::frame::{MAX_PDU, MIN_PDU};

/// Where the CPU is: `s7://HOST[:PORT]` (port 102, ISO-on-TCP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `s7://host[:port]` (or a bare `host[:port]`). Errors are `(message, hint)`.
    pub fn parse(url: &str) -> Result<Endpoint, (String, String)> {
        let hint = || {
            "write s7://HOST or s7://HOST:PORT (e.g. s7://192.168.0.1; the port defaults to 102)".to_owned()
        };
        let rest = match url.split_once("://") {
            Some(("s7", rest)) => rest,
            Some(_) => return Err((format!("unknown scheme in `{url}`"), hint())),
            None => url,
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !port.contains(']') => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| (format!("port `{port}` in `{url}` is not 1 to 65535"), hint()))?;
                (host, port)
            }
            _ => (rest, 102),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err((format!("`{url}` has no host"), hint()));
        }
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "s7://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "s7://{}:{}", self.host, self.port)
        }
    }
}

/// Everything a `s7` source reads from its `[[sources]]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct S7Settings {
    pub endpoint: Endpoint,
    /// The calling (our) TSAP.
    pub local_tsap: u16,
    /// The called TSAP: from rack and slot (`0x0100 + rack * 32 + slot`) unless given.
    pub remote_tsap: u16,
    /// The PDU size asked for; the CPU may grant less.
    pub pdu_size: u16,
    pub period: Duration,
    pub timeout: Duration,
    /// Unread bytes a read may span to join two tags.
    pub max_gap: u32,
    pub writes: bool,
}

/// The TSAP of a PG connection to the CPU in `rack`, `slot` (as snap7 and TIA Portal compute it).
pub fn tsap(rack: u16, slot: u16) -> u16 {
    0x0100 + rack * 32 + slot
}

fn parse_tsap(text: &str) -> Option<u16> {
    // "03.01", "0x0301", "0301"
    let hex: String = text
        .trim_start_matches("0x")
        .chars()
        .filter(|c| *c != '.')
        .collect();
    (hex.len() == 4)
        .then(|| u16::from_str_radix(&hex, 16).ok())
        .flatten()
}

/// Reads the keys of one `[[sources]]` table of kind `s7`.
pub fn parse_settings(table: &mut Table<'_>) -> Option<S7Settings> {
    let mut ok = true;
    let endpoint = table
        .required_str("url")
        .and_then(|url| match Endpoint::parse(url) {
            Ok(e) => Some(e),
            Err((message, hint)) => {
                table.error("url", message, Some(hint));
                None
            }
        });
    let mut small = |table: &mut Table<'_>, key: &str, default: u16, max: u16| match table.optional_u64(key) {
        None => default,
        Some(v) if v <= u64::from(max) => v as u16,
        Some(v) => {
            table.error(key, format!("`{key}` = {v} is outside 0..={max}"), None);
            ok = false;
            default
        }
    };
    let rack = small(table, "rack", 0, 7);
    let slot = small(table, "slot", 1, 31);
    let mut tsap_key = |table: &mut Table<'_>, key: &str| {
        let text = table.optional_str(key)?;
        let parsed = parse_tsap(text);
        if parsed.is_none() {
            table.error(
                key,
                format!("`{text}` is not a TSAP"),
                Some("four hex digits, e.g. \"03.01\" or \"0x0301\"".into()),
            );
            ok = false;
        }
        parsed
    };
    let local_tsap = tsap_key(table, "local_tsap").unwrap_or(0x0100);
    let remote_tsap = tsap_key(table, "remote_tsap").unwrap_or_else(|| tsap(rack, slot));
    let pdu_size = match table.optional_u64("pdu_size") {
        None => 480,
        Some(p) if (u64::from(MIN_PDU)..=u64::from(MAX_PDU)).contains(&p) => p as u16,
        Some(p) => {
            table.error(
                "pdu_size",
                format!("pdu_size = {p} is outside {MIN_PDU}..={MAX_PDU}"),
                Some("S7-300: 240, S7-400/1200: 480, S7-1500: 960; the CPU grants at most its own".into()),
            );
            ok = false;
            480
        }
    };
    let mut duration_at_least = |table: &mut Table<'_>, key: &str, default: Duration, min: Duration| {
        let d = table.optional_duration(key).unwrap_or(default);
        if d < min {
            table.error(key, format!("`{key}` must be at least {min:?}"), None);
            ok = false;
        }
        d
    };
    let period = duration_at_least(table, "period", Duration::from_secs(1), Duration::from_millis(10));
    let timeout = duration_at_least(
        table,
        "timeout",
        Duration::from_secs(1),
        Duration::from_millis(10),
    );
    let max_gap = match table.optional_u64("max_gap") {
        None => 16,
        Some(g) if g <= 512 => g as u32,
        Some(g) => {
            table.error("max_gap", format!("max_gap = {g} is outside 0..=512"), None);
            ok = false;
            16
        }
    };
    let writes = table.optional_bool("writes").unwrap_or(false);
    let endpoint = endpoint?;
    ok.then_some(S7Settings {
        endpoint,
        local_tsap,
        remote_tsap,
        pdu_size,
        period,
        timeout,
        max_gap,
        writes,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(text: &str) -> (Option<S7Settings>, Vec<String>) {
        backplane_testkit::settings::parse(text, parse_settings)
    }

    #[test]
    fn minimal_source_takes_documented_defaults() {
        let (s, errors) = parse("url = \"s7://10.0.0.5\"\n");
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        assert_eq!(s.endpoint.to_string(), "s7://10.0.0.5:102");
        assert_eq!((s.local_tsap, s.remote_tsap, s.pdu_size), (0x0100, 0x0101, 480));
        assert_eq!(
            (s.period, s.timeout, s.max_gap, s.writes),
            (Duration::from_secs(1), Duration::from_secs(1), 16, false)
        );
    }

    #[test]
    fn rack_slot_and_tsaps_set_the_called_tsap() {
        let (s, _) = parse("url = \"s7://plc:1102\"\nrack = 0\nslot = 2\n");
        assert_eq!(s.unwrap().remote_tsap, 0x0102);
        let (s, _) = parse("url = \"plc\"\nremote_tsap = \"20.00\"\nlocal_tsap = \"0x1000\"\n");
        let s = s.unwrap();
        assert_eq!((s.local_tsap, s.remote_tsap), (0x1000, 0x2000));
    }

    #[test]
    fn wrong_values_are_reported_with_hints() {
        let (s, errors) =
            parse("url = \"tcp://h\"\nslot = 40\npdu_size = 100\nremote_tsap = \"x\"\nmax_gap = 9999\n");
        assert!(s.is_none());
        let all = errors.join("\n");
        for needle in [
            "unknown scheme",
            "`slot` = 40",
            "pdu_size = 100",
            "not a TSAP",
            "max_gap = 9999",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }
}
