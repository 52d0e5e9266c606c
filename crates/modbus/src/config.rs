//! The `modbus` source's configuration keys, read through the config crate's [`Table`]
//! so every key is checked and every error has a position. See docs/connectors/modbus.md.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use backplane_config::{AddressError, Table};
use backplane_model::WordOrder;
pub use backplane_serial::{FlowControl, Parity, SerialLine};

use crate::address::{Address, StringOrder, ValueKind};
use crate::frame::{MAX_READ_BITS, MAX_READ_REGISTERS};

/// The most requests `in_flight` lets one Modbus TCP connection have outstanding: more than
/// devices that take several at once are known to queue (typically 4 to 16).
pub const MAX_IN_FLIGHT: u16 = 32;

/// Where the device is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Modbus TCP (MBAP framing).
    Tcp { host: String, port: u16 },
    /// RTU frames over a TCP socket (serial device servers in "raw" / transparent mode).
    RtuOverTcp { host: String, port: u16 },
    /// RTU over a local serial port.
    Rtu(SerialLine),
}

/// 3.5 character times (11 bits each) of `line`, or the serial line guide's fixed 1.75 ms
/// above 19200 baud: the silence that ends an RTU frame.
pub fn silent_interval(line: &SerialLine) -> Duration {
    if line.baud > 19_200 {
        Duration::from_micros(1750)
    } else {
        Duration::from_micros(38_500_000 / u64::from(line.baud.max(1)))
    }
}

impl Endpoint {
    /// Parses `tcp://host:port`, `modbus://host:port` (the same), `rtu+tcp://host:port`,
    /// `rtu:///dev/ttyUSB0?baud=19200&parity=E&data_bits=8&stop_bits=1`, or a bare
    /// `host:port` (TCP). Errors are `(message, hint)`.
    pub fn parse(url: &str) -> Result<Endpoint, (String, String)> {
        let tcp_hint = "write tcp://HOST:PORT (e.g. tcp://192.168.1.10:502)".to_owned();
        if let Some(rest) = url.strip_prefix("rtu://") {
            // The Modbus serial line guide's default: 19200 8E1.
            let default = SerialLine::new("", 19_200, Parity::Even);
            return SerialLine::parse("rtu", rest, &default).map(Endpoint::Rtu);
        }
        let (rtu, rest) = if let Some(rest) = url.strip_prefix("rtu+tcp://") {
            (true, rest)
        } else if let Some(rest) = url
            .strip_prefix("tcp://")
            .or_else(|| url.strip_prefix("modbus://"))
        {
            (false, rest)
        } else if url.contains("://") {
            return Err((
                format!("unknown scheme in `{url}`"),
                "one of: tcp://HOST:PORT, rtu+tcp://HOST:PORT, rtu:///dev/ttyUSB0?baud=19200".to_owned(),
            ));
        } else {
            (false, url)
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            // `[::1]:502`, `host:502`
            Some((host, port)) if !host.is_empty() && !port.contains(']') => {
                let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    (
                        format!("port `{port}` in `{url}` is not 1 to 65535"),
                        tcp_hint.clone(),
                    )
                })?;
                (
                    host.trim_start_matches('[').trim_end_matches(']').to_owned(),
                    port,
                )
            }
            _ if !rest.is_empty() => (rest.trim_start_matches('[').trim_end_matches(']').to_owned(), 502),
            _ => return Err((format!("`{url}` has no host"), tcp_hint)),
        };
        Ok(if rtu {
            Endpoint::RtuOverTcp { host, port }
        } else {
            Endpoint::Tcp { host, port }
        })
    }

    pub fn is_serial(&self) -> bool {
        matches!(self, Endpoint::Rtu(_))
    }

    /// Whether the framing is RTU (serial or RTU over TCP).
    pub fn is_rtu(&self) -> bool {
        !matches!(self, Endpoint::Tcp { .. })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = |h: &str| {
            if h.contains(':') {
                format!("[{h}]")
            } else {
                h.to_owned()
            }
        };
        match self {
            Endpoint::Tcp { host: h, port } => write!(f, "tcp://{}:{port}", host(h)),
            Endpoint::RtuOverTcp { host: h, port } => write!(f, "rtu+tcp://{}:{port}", host(h)),
            Endpoint::Rtu(line) => f.write_str(&line.url("rtu")),
        }
    }
}

/// Everything a `modbus` source reads from its `[[sources]]` table.
#[derive(Clone, Debug, PartialEq)]
pub struct ModbusSettings {
    pub endpoint: Endpoint,
    /// Unit id of addresses without `unit=N;`.
    pub unit: u8,
    /// 0: offsets are protocol addresses; 1: offsets count from 1 like most manuals.
    pub address_base: u16,
    pub word_order: WordOrder,
    pub string_order: StringOrder,
    /// Period of the default poll group.
    pub period: Duration,
    /// Named poll groups and their periods.
    pub groups: BTreeMap<String, Duration>,
    pub timeout: Duration,
    /// Further attempts after a timeout or a malformed answer.
    pub retries: u32,
    /// Unread registers (or bits) a read may span to join two tags.
    pub max_gap: u16,
    pub max_registers: u16,
    pub max_bits: u16,
    /// Silence before each request; RTU only.
    pub inter_frame_delay: Duration,
    /// TCP connections to the device.
    pub concurrency: usize,
    /// Requests outstanding at once on each Modbus TCP connection (1: wait for each answer).
    pub in_flight: usize,
    pub writes: bool,
    /// Use FC 15 / 16 even for one coil / register (devices that lack FC 5 / 6).
    pub write_multiple: bool,
}

impl ModbusSettings {
    /// The unit an address reads.
    pub fn unit_of(&self, address: &Address) -> u8 {
        address.unit.unwrap_or(self.unit)
    }

    /// Checks an address against these settings (base, unit, group, sizes).
    pub fn check(&self, address: &Address) -> Result<(), AddressError> {
        address.protocol_start(self.address_base)?;
        let unit = self.unit_of(address);
        if self.endpoint.is_serial() && !(1..=247).contains(&unit) {
            return Err(AddressError {
                message: format!("unit {unit} cannot be polled on a serial line"),
                hint: Some("RTU unit ids are 1 to 247 (0 is broadcast and gets no answer)".into()),
            });
        }
        if let Some(group) = &address.group
            && !self.groups.contains_key(group)
        {
            let known: Vec<&str> = self.groups.keys().map(String::as_str).collect();
            return Err(AddressError {
                message: format!("no poll group `{group}` on this source"),
                hint: Some(if known.is_empty() {
                    format!("define it: [sources.poll.{group}] period = \"100ms\"")
                } else {
                    format!("defined groups: {}", known.join(", "))
                }),
            });
        }
        let limit = if address.area.is_bits() {
            self.max_bits
        } else {
            self.max_registers
        };
        if address.count() > limit {
            return Err(AddressError {
                message: format!(
                    "`{address}` needs {} registers, more than one request may read (max_registers = {limit})",
                    address.count()
                ),
                hint: Some("shorten the string or raise max_registers (up to 125)".into()),
            });
        }
        if let ValueKind::Ascii { .. } | ValueKind::Number(..) = address.kind
            && address.area.is_bits()
        {
            return Err(AddressError {
                message: format!("`{address}`: bits hold no numbers"),
                hint: None,
            });
        }
        Ok(())
    }
}

/// Reads the keys of one `[[sources]]` table of kind `modbus`.
pub fn parse_settings(table: &mut Table<'_>) -> Option<ModbusSettings> {
    let mut ok = true;
    let endpoint = table.required_parsed("url", Endpoint::parse);
    let unit = match table.optional_u64("unit") {
        None => 1,
        Some(u) if u <= 255 => u as u8,
        Some(u) => {
            table.error("unit", format!("unit id {u} is not 0 to 255"), None);
            ok = false;
            1
        }
    };
    let address_base = match table.optional_u64("address_base") {
        Some(b @ (0 | 1)) => b as u16,
        Some(b) => {
            table.error(
                "address_base",
                format!("address_base is 0 or 1, not {b}"),
                Some("1: hr:1 is the first holding register, as in most manuals; 0: hr:0 is".into()),
            );
            ok = false;
            0
        }
        None => {
            table.error(
                "address_base",
                "a modbus source must say whether its addresses count from 0 or from 1",
                Some(
                    "add address_base = 0 (hr:0 is the first register, as on the wire) or \
                     address_base = 1 (hr:1 is the first, as in most vendor manuals)"
                        .into(),
                ),
            );
            ok = false;
            0
        }
    };
    let word_order = match table.optional_str("word_order") {
        None => WordOrder::ABCD,
        Some(w) => WordOrder::parse(w).unwrap_or_else(|| {
            table.error(
                "word_order",
                format!("unknown word order `{w}`"),
                Some(
                    "one of: ABCD (big-endian), CDAB (word swap), BADC (byte swap), DCBA (little-endian)"
                        .into(),
                ),
            );
            ok = false;
            WordOrder::ABCD
        }),
    };
    if table.optional_item("byte_order").is_some() {
        table.error(
            "byte_order",
            "byte order is part of `word_order`",
            Some(
                "BADC swaps the bytes in each word, DCBA swaps bytes and words; for strings use string_byte_order"
                    .into(),
            ),
        );
        ok = false;
    }
    let string_order = match table.optional_str("string_byte_order") {
        None => StringOrder::AB,
        Some(o) => StringOrder::parse(o).unwrap_or_else(|| {
            table.error(
                "string_byte_order",
                format!("unknown string byte order `{o}`"),
                Some("AB (first character in the high byte) or BA".into()),
            );
            ok = false;
            StringOrder::AB
        }),
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
    let retries = match table.optional_u64("retries") {
        None => 1,
        Some(r) if r <= 10 => r as u32,
        Some(r) => {
            table.error("retries", format!("retries = {r}: at most 10"), None);
            ok = false;
            1
        }
    };
    let mut limited = |table: &mut Table<'_>, key: &str, default: u16, max: u16, min: u16| -> u16 {
        match table.optional_u64(key) {
            None => default,
            Some(v) if (u64::from(min)..=u64::from(max)).contains(&v) => v as u16,
            Some(v) => {
                table.error(key, format!("`{key}` = {v} is outside {min}..={max}"), None);
                ok = false;
                default
            }
        }
    };
    let max_gap = limited(table, "max_gap", 10, 2000, 0);
    let max_registers = limited(table, "max_registers", MAX_READ_REGISTERS, MAX_READ_REGISTERS, 1);
    let max_bits = limited(table, "max_bits", MAX_READ_BITS, MAX_READ_BITS, 1);
    let concurrency = limited(table, "concurrency", 1, 16, 1) as usize;
    let in_flight = limited(table, "in_flight", 1, MAX_IN_FLIGHT, 1) as usize;
    let inter_frame_delay = table.optional_duration("inter_frame_delay");
    let writes = table.optional_bool("writes").unwrap_or(false);
    let write_multiple = match table.optional_str("write_functions") {
        None | Some("single") => false,
        Some("multiple") => true,
        Some(other) => {
            table.error(
                "write_functions",
                format!("unknown write_functions `{other}`"),
                Some("\"single\" (FC 5/6 for one coil/register) or \"multiple\" (always FC 15/16)".into()),
            );
            ok = false;
            false
        }
    };
    let mut groups = BTreeMap::new();
    if let Some(mut poll) = table.optional_table("poll") {
        for (key, item) in poll.take_remaining() {
            let valid = !key.name.is_empty()
                && key
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
            if !valid {
                key.error(
                    format!("invalid poll group name `{}`", key.name),
                    Some("lower-case letters, digits, `_` and `-`".into()),
                );
                ok = false;
                continue;
            }
            let Some(mut group) = item.as_table() else {
                item.error(
                    format!("expected a table, found {}", item.type_name()),
                    Some(format!("[sources.poll.{}] period = \"100ms\"", key.name)),
                );
                ok = false;
                continue;
            };
            match group.required_duration("period") {
                Some(p) if p >= Duration::from_millis(10) => {
                    groups.insert(key.name.to_owned(), p);
                }
                Some(_) => {
                    group.error("period", "a poll period must be at least 10ms", None);
                    ok = false;
                }
                None => ok = false,
            }
            group.finish();
        }
        poll.finish();
    }
    let endpoint = endpoint?;
    if let Endpoint::Rtu(_) = endpoint
        && concurrency > 1
    {
        table.error(
            "concurrency",
            "a serial line carries one request at a time",
            Some("remove concurrency, or use several sources for several lines".into()),
        );
        ok = false;
    }
    if !matches!(endpoint, Endpoint::Tcp { .. }) && in_flight > 1 {
        table.error(
            "in_flight",
            "RTU frames carry no transaction id to match an answer to its request: one at a time",
            Some("remove in_flight (Modbus TCP only)".into()),
        );
        ok = false;
    }
    let inter_frame_delay = match (&endpoint, inter_frame_delay) {
        (_, Some(d)) if d > Duration::from_secs(1) => {
            table.error("inter_frame_delay", "inter_frame_delay is at most 1s", None);
            ok = false;
            d
        }
        (Endpoint::Tcp { .. }, Some(_)) => {
            table.error(
                "inter_frame_delay",
                "inter_frame_delay applies to RTU (rtu:// and rtu+tcp://) only",
                None,
            );
            ok = false;
            Duration::ZERO
        }
        (_, Some(d)) => d,
        (Endpoint::Rtu(line), None) => silent_interval(line),
        (_, None) => Duration::ZERO,
    };
    ok.then_some(ModbusSettings {
        endpoint,
        unit,
        address_base,
        word_order,
        string_order,
        period,
        groups,
        timeout,
        retries,
        max_gap,
        max_registers,
        max_bits,
        inter_frame_delay,
        concurrency,
        in_flight,
        writes,
        write_multiple,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(text: &str) -> (Option<ModbusSettings>, Vec<String>) {
        backplane_testkit::settings::parse(text, parse_settings)
    }

    #[test]
    fn minimal_tcp_source_takes_documented_defaults() {
        let (s, errors) = parse("url = \"tcp://10.0.0.5\"\naddress_base = 1\n");
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        assert_eq!(
            s.endpoint,
            Endpoint::Tcp {
                host: "10.0.0.5".into(),
                port: 502
            }
        );
        assert_eq!((s.unit, s.address_base, s.word_order), (1, 1, WordOrder::ABCD));
        assert_eq!(
            (s.max_registers, s.max_bits, s.max_gap, s.concurrency, s.in_flight),
            (125, 2000, 10, 1, 1)
        );
        assert_eq!(
            (s.timeout, s.retries, s.writes),
            (Duration::from_secs(1), 1, false)
        );
    }

    #[test]
    fn address_base_is_required_and_explained() {
        let (s, errors) = parse("url = \"tcp://h:502\"\n");
        assert!(s.is_none());
        assert!(
            errors[0].contains("address_base = 1 (hr:1 is the first"),
            "{errors:?}"
        );
    }

    #[test]
    fn serial_urls_carry_line_settings_and_a_silent_interval() {
        let (s, errors) = parse(
            "url = \"rtu:///dev/ttyUSB0?baud=9600&parity=N&stop_bits=2\"\naddress_base = 0\n[poll.fast]\nperiod = \"100ms\"\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let s = s.unwrap();
        let Endpoint::Rtu(line) = &s.endpoint else {
            panic!()
        };
        assert_eq!(
            (line.path.as_str(), line.baud, line.parity, line.stop_bits),
            ("/dev/ttyUSB0", 9600, Parity::None, 2)
        );
        // 3.5 characters of 11 bits at 9600 baud ≈ 4 ms.
        assert_eq!(s.inter_frame_delay, Duration::from_micros(4010));
        assert_eq!(s.groups.get("fast"), Some(&Duration::from_millis(100)));
    }

    #[test]
    fn wrong_keys_and_values_are_reported_with_hints() {
        let (s, errors) = parse(
            "url = \"udp://h\"\naddress_base = 2\nword_order = \"ABDC\"\nbyte_order = \"BA\"\nmax_registers = 200\n\
             inter_frame_delay = \"5ms\"\nconcurrency = 0\nwrite_functions = \"some\"\n[poll.fast]\nperiod = \"1ms\"\n",
        );
        assert!(s.is_none());
        let all = errors.join("\n");
        for needle in [
            "unknown scheme",
            "address_base is 0 or 1",
            "unknown word order `ABDC`",
            "byte order is part of `word_order`",
            "max_registers` = 200 is outside 1..=125",
            "concurrency` = 0",
            "unknown write_functions",
            "at least 10ms",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        let (_, errors) = parse("url = \"tcp://h\"\naddress_base = 0\ninter_frame_delay = \"5ms\"\n");
        assert!(errors[0].contains("RTU"), "{errors:?}");
    }

    #[test]
    fn several_requests_in_flight_only_on_modbus_tcp_and_within_bounds() {
        let (s, errors) = parse("url = \"tcp://h\"\naddress_base = 0\nin_flight = 8\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.unwrap().in_flight, 8);
        let (_, errors) = parse("url = \"tcp://h\"\naddress_base = 0\nin_flight = 33\n");
        assert!(
            errors[0].contains("in_flight` = 33 is outside 1..=32"),
            "{errors:?}"
        );
        let (s, errors) = parse("url = \"rtu+tcp://h:4001\"\naddress_base = 0\nin_flight = 2\n");
        assert!(s.is_none());
        assert!(errors[0].contains("no transaction id"), "{errors:?}");
    }

    #[test]
    fn endpoints_parse_and_print_back() {
        for url in ["tcp://plc:502", "rtu+tcp://10.0.0.9:4001", "tcp://[::1]:1502"] {
            assert_eq!(Endpoint::parse(url).unwrap().to_string(), url);
        }
        assert_eq!(
            Endpoint::parse("modbus://127.0.0.1:5020").unwrap(),
            Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 5020
            }
        );
        assert!(Endpoint::parse("tcp://h:0").is_err());
        assert!(Endpoint::parse("rtu://?baud=9600").is_err());
        assert!(Endpoint::parse("rtu:///dev/x?speed=1").is_err());
    }

    #[test]
    fn addresses_are_checked_against_the_source() {
        let (s, _) = parse("url = \"rtu:///dev/ttyS0\"\naddress_base = 1\nmax_registers = 20\n");
        let s = s.unwrap();
        let check = |a: &str| s.check(&Address::parse(a).unwrap()).map_err(|e| e.message);
        assert!(check("hr:1").is_ok());
        assert!(check("hr:0").unwrap_err().contains("address_base = 1"));
        assert!(check("unit=0;hr:1").unwrap_err().contains("serial line"));
        assert!(check("hr:1@fast").unwrap_err().contains("no poll group"));
        assert!(check("hr:1:str:21").unwrap_err().contains("max_registers = 20"));
    }
}
