//! The `ethernetip` source's configuration keys, read through the config crate's
//! [`Table`] so every key is checked and every error has a position. See
//! docs/connectors/ethernetip.md.

use std::fmt;
use std::time::Duration;

use backplane_config::Table;

/// The registered EtherNet/IP TCP port.
pub const DEFAULT_PORT: u16 = 44818;
/// The largest connection a Large Forward Open asks for (Logix 5x80 controllers' limit).
pub const MAX_CONNECTION_SIZE: u16 = 4002;
/// A small Forward Open's limit, and what unconnected messages may carry.
pub const SMALL_CONNECTION_SIZE: u16 = 504;

/// Where the controller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    /// Parses `enip://host[:port]`, `ethernetip://host[:port]` or a bare `host[:port]`.
    /// Errors are `(message, hint)`.
    pub fn parse(url: &str) -> Result<Endpoint, (String, String)> {
        let hint = || "write enip://HOST or enip://HOST:PORT (e.g. enip://192.168.1.20)".to_owned();
        let rest = if let Some(rest) = url
            .strip_prefix("enip://")
            .or_else(|| url.strip_prefix("ethernetip://"))
        {
            rest
        } else if url.contains("://") {
            return Err((format!("unknown scheme in `{url}`"), hint()));
        } else {
            url
        };
        let rest = rest.trim_end_matches('/');
        match rest.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !port.contains(']') => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| (format!("port `{port}` in `{url}` is not 1 to 65535"), hint()))?;
                Ok(Endpoint {
                    host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
                    port,
                })
            }
            _ if !rest.is_empty() => Ok(Endpoint {
                host: rest.trim_start_matches('[').trim_end_matches(']').to_owned(),
                port: DEFAULT_PORT,
            }),
            _ => Err((format!("`{url}` has no host"), hint())),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "enip://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "enip://{}:{}", self.host, self.port)
        }
    }
}

/// How requests travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Messaging {
    /// Forward Open (large, then small); unconnected messages when the peer refuses both.
    Auto,
    /// Forward Open, or fail.
    Connected,
    /// Unconnected messages only (SendRRData).
    Unconnected,
}

/// Parses a route such as `1/0` (backplane, slot 0) or `1/0/2/192.168.1.5` into the
/// port segments of a CIP path. Errors are the message.
pub fn parse_route(route: &str) -> Result<Vec<u8>, String> {
    let parts: Vec<&str> = route
        .split(['/', ','])
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if !parts.len().is_multiple_of(2) {
        return Err(format!("route `{route}` is not port/link pairs (e.g. 1/0)"));
    }
    let mut out = Vec::new();
    for pair in parts.chunks_exact(2) {
        let (port, link) = match pair {
            [p, l] => (*p, *l),
            _ => continue,
        };
        let port = port
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=14).contains(p))
            .ok_or_else(|| format!("port `{port}` in route `{route}` is not 1 to 14"))?;
        match link.parse::<u8>() {
            Ok(slot) => out.extend_from_slice(&[port, slot]),
            Err(_) => {
                if link.parse::<std::net::Ipv4Addr>().is_err() {
                    return Err(format!(
                        "link `{link}` in route `{route}` is neither a slot nor an IPv4 address"
                    ));
                }
                out.push(0x10 | port);
                out.push(link.len() as u8);
                out.extend_from_slice(link.as_bytes());
                if link.len() % 2 == 1 {
                    out.push(0);
                }
            }
        }
    }
    Ok(out)
}

/// Everything an `ethernetip` source reads from its `[[sources]]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct EnipSettings {
    pub endpoint: Endpoint,
    /// Port segments to the controller (`route`), empty for a direct connection.
    pub route: Vec<u8>,
    /// The route as written, for messages.
    pub route_text: String,
    pub messaging: Messaging,
    /// The connection size a Forward Open asks for, and the packet limit of the planner.
    pub connection_size: u16,
    pub period: Duration,
    pub timeout: Duration,
    pub retries: u32,
    /// Services per Multiple Service Packet; 1 sends every read on its own.
    pub max_services: usize,
    pub writes: bool,
}

/// Reads the keys of one `[[sources]]` table of kind `ethernetip`.
pub fn parse_settings(table: &mut Table<'_>) -> Option<EnipSettings> {
    let mut ok = true;
    let endpoint = table.required_parsed("url", Endpoint::parse);
    let route_text = table.optional_str("route").unwrap_or("1/0").to_owned();
    let route = match parse_route(&route_text) {
        Ok(r) => r,
        Err(message) => {
            table.error(
                "route",
                message,
                Some("\"1/0\": backplane port 1, slot 0 (a CompactLogix or a ControlLogix CPU in slot 0); \"\" for none".into()),
            );
            ok = false;
            Vec::new()
        }
    };
    let messaging = match table.optional_str("messaging") {
        None | Some("auto") => Messaging::Auto,
        Some("connected") => Messaging::Connected,
        Some("unconnected") => Messaging::Unconnected,
        Some(other) => {
            table.error(
                "messaging",
                format!("unknown messaging `{other}`"),
                Some("\"auto\" (connected, unconnected if the controller refuses), \"connected\" or \"unconnected\"".into()),
            );
            ok = false;
            Messaging::Auto
        }
    };
    let connection_size = match table.optional_u64("connection_size") {
        None => MAX_CONNECTION_SIZE,
        Some(s) if (100..=u64::from(MAX_CONNECTION_SIZE)).contains(&s) => s as u16,
        Some(s) => {
            table.error(
                "connection_size",
                format!("connection_size = {s} is outside 100..={MAX_CONNECTION_SIZE}"),
                Some("504 for older controllers, 4002 for 5x80 controllers".into()),
            );
            ok = false;
            MAX_CONNECTION_SIZE
        }
    };
    let mut at_least = |table: &mut Table<'_>, key: &str, default: Duration| {
        let d = table.optional_duration(key).unwrap_or(default);
        if d < Duration::from_millis(10) {
            table.error(key, format!("`{key}` must be at least 10ms"), None);
            ok = false;
        }
        d
    };
    let period = at_least(table, "period", Duration::from_secs(1));
    let timeout = at_least(table, "timeout", Duration::from_secs(1));
    let retries = match table.optional_u64("retries") {
        None => 1,
        Some(r) if r <= 10 => r as u32,
        Some(r) => {
            table.error("retries", format!("retries = {r}: at most 10"), None);
            ok = false;
            1
        }
    };
    let max_services = match table.optional_u64("max_services") {
        None => 200,
        Some(n) if (1..=crate::cip::MAX_SERVICES as u64).contains(&n) => n as usize,
        Some(n) => {
            table.error(
                "max_services",
                format!("max_services = {n} is outside 1..={}", crate::cip::MAX_SERVICES),
                Some("1 for controllers without Multiple Service Packet support".into()),
            );
            ok = false;
            200
        }
    };
    let writes = table.optional_bool("writes").unwrap_or(false);
    let endpoint = endpoint?;
    ok.then_some(EnipSettings {
        endpoint,
        route,
        route_text,
        messaging,
        connection_size,
        period,
        timeout,
        retries,
        max_services,
        writes,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> (Option<EnipSettings>, Vec<String>) {
        backplane_testkit::settings::parse(text, parse_settings)
    }

    #[test]
    fn a_url_alone_takes_the_documented_defaults() {
        let (s, errors) = parse("url = \"enip://10.0.0.7\"\n");
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        assert_eq!(s.endpoint.to_string(), "enip://10.0.0.7:44818");
        assert_eq!(
            (s.route.clone(), s.messaging, s.connection_size),
            (vec![1, 0], Messaging::Auto, 4002)
        );
        assert_eq!(
            (s.period, s.timeout, s.retries, s.writes),
            (Duration::from_secs(1), Duration::from_secs(1), 1, false)
        );
    }

    #[test]
    fn wrong_values_are_reported_by_key() {
        let (s, errors) = parse(
            "url = \"http://x\"\nroute = \"1\"\nmessaging = \"udp\"\nconnection_size = 9000\nperiod = \"1ms\"\nmax_services = 0\n",
        );
        assert!(s.is_none());
        let all = errors.join("\n");
        for needle in [
            "unknown scheme",
            "port/link pairs",
            "unknown messaging",
            "9000 is outside",
            "at least 10ms",
            "max_services = 0",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }

    #[test]
    fn routes_become_port_segments() {
        assert_eq!(parse_route("").unwrap(), Vec::<u8>::new());
        assert_eq!(parse_route("1/3").unwrap(), vec![1, 3]);
        assert_eq!(
            parse_route("1/0/2/10.0.0.9").unwrap(),
            [&[1u8, 0, 0x12, 8][..], b"10.0.0.9"].concat()
        );
        assert!(parse_route("1/x").is_err());
        assert!(parse_route("20/0").is_err());
    }
}
