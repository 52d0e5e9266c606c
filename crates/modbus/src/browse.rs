//! Discovery: scan an address range of an unknown device and show every answering
//! address in the ways its value could be meant (u16, i16, and 32-bit u32/i32/f32 in the
//! four word orders), then emit TOML for the addresses an engineer picks.
//!
//! The range is read in protocol-sized chunks; a chunk that raises an exception (or gets
//! no answer) is halved until the failing addresses are isolated, so one hole in a map
//! costs a few extra requests, not one request per register.

use std::fmt::{self, Write as _};
use std::io;
use std::time::Duration;

use backplane_connector::hooks::{self, Decoding, OptionSpec, Options, Signal};
use backplane_model::{Value, WordOrder};

use crate::address::{Address, Area, StringOrder};
use crate::client::{CallError, Connection};
use crate::config::Endpoint;
use crate::frame::{Data, MAX_READ_BITS, MAX_READ_REGISTERS, Request};
use crate::source::{exception_name, preview};

/// What to scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrowseOptions {
    pub endpoint: Endpoint,
    pub unit: u8,
    pub area: Area,
    /// First and last protocol address, inclusive.
    pub first: u16,
    pub last: u16,
    /// How addresses are printed and emitted (0 or 1).
    pub address_base: u16,
    pub timeout: Duration,
    pub retries: u32,
    /// Largest read; the protocol's limit when `None`.
    pub max_count: Option<u16>,
    /// Addresses (in the `address_base` convention) to emit TOML for.
    pub emit: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    #[error("{0}")]
    Options(String),
    #[error("cannot connect to {endpoint}: {source}")]
    Connect { endpoint: String, source: io::Error },
    #[error("connection to {endpoint} lost: {source}")]
    Lost { endpoint: String, source: io::Error },
    #[error(
        "unit {unit} at {endpoint} does not answer (3 reads without any answer); check the unit id and the line settings"
    )]
    NoAnswer { endpoint: String, unit: u8 },
}

/// One answering address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    Word(u16),
    Bit(bool),
}

/// What a scan found.
#[derive(Clone, Debug, PartialEq)]
pub struct BrowseReport {
    pub options: BrowseOptions,
    /// Answering addresses (protocol addresses), ascending.
    pub values: Vec<(u16, Cell)>,
    /// Ranges that raised an exception or got no answer: (first, last, why).
    pub refused: Vec<(u16, u16, String)>,
    pub requests: usize,
}

/// Scans the range; see the module docs.
pub async fn browse(options: BrowseOptions) -> Result<BrowseReport, BrowseError> {
    if options.first > options.last {
        return Err(BrowseError::Options(
            "the range's first address is after its last".into(),
        ));
    }
    let endpoint = options.endpoint.to_string();
    let inter_frame = match &options.endpoint {
        Endpoint::Rtu(line) => crate::config::silent_interval(line),
        _ => Duration::ZERO,
    };
    let mut conn = Connection::open(&options.endpoint, options.timeout, inter_frame)
        .await
        .map_err(|source| BrowseError::Connect {
            endpoint: endpoint.clone(),
            source,
        })?;
    let limit = if options.area.is_bits() {
        MAX_READ_BITS
    } else {
        MAX_READ_REGISTERS
    };
    let chunk = options.max_count.unwrap_or(limit).clamp(1, limit);
    let mut work: Vec<(u16, u16)> = Vec::new();
    let mut start = u32::from(options.first);
    while start <= u32::from(options.last) {
        let count = (u32::from(options.last) - start + 1).min(u32::from(chunk));
        work.push((start as u16, count as u16));
        start += count;
    }
    work.reverse();
    let mut report = BrowseReport {
        options: options.clone(),
        values: Vec::new(),
        refused: Vec::new(),
        requests: 0,
    };
    let mut silent = 0;
    while let Some((start, count)) = work.pop() {
        let request = Request::Read {
            area: options.area,
            start,
            count,
        };
        report.requests += 1;
        let why = match conn
            .call_with_retries(options.unit, &request, options.retries)
            .await
        {
            Ok(Ok(data)) => {
                silent = 0;
                match data {
                    Data::Registers(words) => report.values.extend(
                        words
                            .into_iter()
                            .enumerate()
                            .map(|(i, w)| (start + i as u16, Cell::Word(w))),
                    ),
                    Data::Bits(bits) => report.values.extend(
                        bits.into_iter()
                            .enumerate()
                            .map(|(i, b)| (start + i as u16, Cell::Bit(b))),
                    ),
                    Data::Written => {}
                }
                continue;
            }
            Ok(Err(exception)) => {
                silent = 0;
                exception_name(exception)
            }
            Err(CallError::Timeout(t)) => {
                silent += 1;
                if silent >= 3 && report.values.is_empty() {
                    return Err(BrowseError::NoAnswer {
                        endpoint,
                        unit: options.unit,
                    });
                }
                format!("no answer within {t:?}")
            }
            Err(CallError::Frame(e)) => e.to_string(),
            Err(CallError::Io(source)) => return Err(BrowseError::Lost { endpoint, source }),
        };
        // Halve until the refusing addresses are isolated (timeouts stop at 8: each costs
        // a whole timeout).
        let floor = if why.starts_with("no answer") { 8 } else { 1 };
        if count > floor {
            let half = count / 2;
            work.push((start + half, count - half));
            work.push((start, half));
        } else {
            let last = start + (count - 1);
            match report.refused.last_mut() {
                Some((_, end, previous)) if u32::from(*end) + 1 == u32::from(start) && *previous == why => {
                    *end = last
                }
                _ => report.refused.push((start, last, why)),
            }
        }
    }
    Ok(report)
}

/// How likely a reading is the one meant: a float with few significant digits in a
/// plausible range (e.g. 23.5) beats the raw register, which beats everything else; a
/// 32-bit reading of two registers that are both zero or that is negative counts for nothing.
fn plausible(d: &Decoding) -> u8 {
    if d.label.starts_with("f32") {
        return u8::from(hooks::plausible_float(&d.value)) * 3;
    }
    match d.label.as_str() {
        "u16" => 2,
        _ => 1,
    }
}

impl BrowseReport {
    fn label(&self, address: u16) -> String {
        format!(
            "{}:{}",
            self.options.area.prefix(),
            u32::from(address) + u32::from(self.options.address_base)
        )
    }

    fn word(&self, address: u16) -> Option<u16> {
        let i = self.values.binary_search_by_key(&address, |(a, _)| *a).ok()?;
        match self.values.get(i)?.1 {
            Cell::Word(w) => Some(w),
            Cell::Bit(_) => None,
        }
    }

    /// TOML for a source reading this device.
    pub fn source_toml(&self) -> String {
        let o = &self.options;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# From `backplane browse` of {} unit {}.",
            o.endpoint, o.unit
        );
        let _ = writeln!(out, "[[sources]]");
        let _ = writeln!(out, "name = \"device\"   # choose a name");
        let _ = writeln!(out, "kind = \"modbus\"");
        let _ = writeln!(out, "url = \"{}\"", o.endpoint);
        let _ = writeln!(out, "unit = {}", o.unit);
        let _ = writeln!(out, "address_base = {}", o.address_base);
        let _ = writeln!(out, "period = \"1s\"");
        out
    }

    /// Every answering address as a signal: a bit as a bool; a register raw (`u16`), as
    /// `i16`, and with the next register as `u32`, `i32` and `f32` in the four word
    /// orders. The most plausible reading comes first (see [`plausible`]).
    pub fn signals(&self) -> Vec<Signal> {
        let o = &self.options;
        let prefix = o.area.prefix();
        self.values
            .iter()
            .map(|(address, cell)| {
                let label = self.label(*address);
                let name = format!("{prefix}_{}", u32::from(*address) + u32::from(o.address_base));
                let decoding = |label: &str, suffix: &str, t: &str, value: String| Decoding {
                    label: label.to_owned(),
                    attribute_type: Some(t.to_owned()),
                    value,
                    binding: format!(
                        "bindings.{name} = {{ address = \"{}{suffix}\" }}",
                        self.label(*address)
                    ),
                };
                let decodings = match cell {
                    Cell::Bit(b) => vec![decoding("bool", "", "bool", b.to_string())],
                    Cell::Word(w) => {
                        let mut all = vec![
                            decoding("u16", "", "uint", w.to_string()),
                            decoding("i16", ":i16", "int", (*w as i16).to_string()),
                        ];
                        if let Some(next) = address.checked_add(1).and_then(|a| self.word(a)) {
                            for order in [WordOrder::ABCD, WordOrder::CDAB, WordOrder::BADC, WordOrder::DCBA]
                            {
                                let bits = order.assemble(&[*w, next]) as u32;
                                let name = format!("{order:?}");
                                all.push(decoding(
                                    &format!("u32 {name}"),
                                    &format!(":u32:{name}"),
                                    "uint",
                                    bits.to_string(),
                                ));
                                all.push(decoding(
                                    &format!("i32 {name}"),
                                    &format!(":i32:{name}"),
                                    "int",
                                    (bits as i32).to_string(),
                                ));
                                all.push(decoding(
                                    &format!("f32 {name}"),
                                    &format!(":f32:{name}"),
                                    "float",
                                    hooks::float_text(f32::from_bits(bits)),
                                ));
                            }
                        }
                        // A stable sort: among equally plausible readings the raw one leads.
                        all.sort_by_key(|d| std::cmp::Reverse(plausible(d)));
                        all
                    }
                };
                Signal {
                    address: label,
                    name,
                    description: format!("{} {}", o.area.name(), self.label(*address)),
                    decodings,
                }
            })
            .collect()
    }

    /// TOML for a source reading this device and one binding per address in
    /// `options.emit`, each with its value now as a comment.
    pub fn toml(&self) -> Result<String, BrowseError> {
        let o = &self.options;
        let mut out = self.source_toml();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "# In the asset that reads it: source = \"device\", then rename the attributes."
        );
        for text in &o.emit {
            let address = Address::parse(text)
                .map_err(|e| BrowseError::Options(format!("--emit-toml {text}: {}", e.message)))?;
            let start = address
                .protocol_start(o.address_base)
                .map_err(|e| BrowseError::Options(format!("--emit-toml {text}: {}", e.message)))?;
            let name: String = text
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            let now = if address.area == o.area {
                let words: Option<Vec<u16>> = (0..address.count())
                    .map(|i| self.word(start.wrapping_add(i)))
                    .collect();
                let bit = self.values.iter().find(|(a, _)| *a == start).map(|(_, c)| *c);
                match (words, bit) {
                    (_, Some(Cell::Bit(b))) => Some(Value::Bool(b)),
                    (Some(words), _) => preview(
                        &address,
                        start,
                        (WordOrder::ABCD, StringOrder::AB),
                        &Data::Registers(words),
                        start,
                    ),
                    _ => None,
                }
            } else {
                None
            };
            let comment = now.map_or_else(|| "not scanned".to_owned(), |v| format!("now {v}"));
            let _ = writeln!(
                out,
                "bindings.{name} = {{ address = \"{address}\" }}   # {comment}"
            );
        }
        Ok(out)
    }
}

impl fmt::Display for BrowseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "{} unit {}: {}s {}..={} (address_base = {}): {} answered, {} requests",
            o.endpoint,
            o.unit,
            o.area.name(),
            self.label(o.first),
            self.label(o.last),
            o.address_base,
            self.values.len(),
            self.requests
        )?;
        for (first, last, why) in &self.refused {
            writeln!(
                f,
                "  refused {}..={}: {why}",
                self.label(*first),
                self.label(*last)
            )?;
        }
        if o.area.is_bits() {
            for (address, cell) in &self.values {
                if let Cell::Bit(b) = cell {
                    writeln!(f, "{:<10} {b}", self.label(*address))?;
                }
            }
            return Ok(());
        }
        write!(f, "{:<10} {:>6} {:>6} {:>6}", "address", "hex", "u16", "i16")?;
        for order in ["ABCD", "CDAB", "BADC", "DCBA"] {
            write!(f, " | {order} {:>10} {:>11} {:>12}", "u32", "i32", "f32")?;
        }
        writeln!(f)?;
        for (address, cell) in &self.values {
            let Cell::Word(w) = cell else { continue };
            write!(
                f,
                "{:<10} 0x{w:04X} {w:>6} {:>6}",
                self.label(*address),
                *w as i16
            )?;
            if let Some(next) = address.checked_add(1).and_then(|a| self.word(a)) {
                for order in [WordOrder::ABCD, WordOrder::CDAB, WordOrder::BADC, WordOrder::DCBA] {
                    let bits = order.assemble(&[*w, next]) as u32;
                    write!(
                        f,
                        " |      {bits:>10} {:>11} {:>12}",
                        bits as i32,
                        hooks::float_text(f32::from_bits(bits))
                    )?;
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// The options of `backplane browse modbus://...`, as the binary shows and parses them.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec::value("unit", "ID", "Unit id (slave id) to scan").default("1"),
    OptionSpec::value(
        "range",
        "AREA:FIRST-LAST",
        "Area and inclusive range: hr:0-999, ir:0-99, coil:0-63, di:0-63",
    )
    .default("hr:0-99"),
    OptionSpec::value(
        "address-base",
        "0|1",
        "Whether the range and printed addresses count from 0 (as on the wire) or 1 (as in most vendor manuals)",
    )
    .default("0"),
    OptionSpec::value("timeout", "DURATION", "How long to wait for each answer").default("1s"),
    OptionSpec::value("retries", "N", "Further attempts after a timeout").default("1"),
    OptionSpec::value("max-count", "N", "Largest read, for devices that refuse full-size ones"),
    OptionSpec::value(
        "emit-toml",
        "ADDRESSES",
        "Also print a TOML source and bindings for these addresses, e.g. hr:100,hr:102:u32:CDAB,hr:106:i16",
    )
    .repeated(),
];

/// What `backplane browse` was asked for (see [`OPTIONS`]).
#[derive(Debug, Clone)]
pub struct BrowseArgs {
    /// The device: modbus://HOST:PORT (= tcp://), rtu+tcp://HOST:PORT, or
    /// rtu:///dev/ttyUSB0?baud=19200&parity=E&data_bits=8&stop_bits=1
    pub url: String,
    pub unit: u8,
    pub range: String,
    pub address_base: u16,
    pub timeout: Duration,
    pub retries: u32,
    pub max_count: Option<u16>,
    pub emit_toml: Vec<String>,
}

impl BrowseArgs {
    /// Reads the command-line options (names as in [`OPTIONS`]); defaults where absent.
    pub fn from_options(url: &str, o: &Options) -> Result<BrowseArgs, BrowseError> {
        let address_base: u16 = o.parse_or("address-base", 0).map_err(BrowseError::Options)?;
        if address_base > 1 {
            return Err(BrowseError::Options(format!(
                "--address-base {address_base}: 0 or 1"
            )));
        }
        let timeout = o
            .duration_or("timeout", Duration::from_secs(1))
            .map_err(BrowseError::Options)?;
        let max_count = match o.get("max-count") {
            None => None,
            Some(_) => Some(o.parse_or("max-count", 0u16).map_err(BrowseError::Options)?),
        };
        Ok(BrowseArgs {
            url: url.to_owned(),
            unit: o.parse_or("unit", 1).map_err(BrowseError::Options)?,
            range: o.get("range").unwrap_or("hr:0-99").to_owned(),
            address_base,
            timeout,
            retries: o.parse_or("retries", 1).map_err(BrowseError::Options)?,
            max_count,
            emit_toml: o.list("emit-toml"),
        })
    }

    /// Checks the arguments and turns them into [`BrowseOptions`].
    pub fn options(&self) -> Result<BrowseOptions, BrowseError> {
        let endpoint =
            Endpoint::parse(&self.url).map_err(|(m, h)| BrowseError::Options(format!("{m} ({h})")))?;
        let bad_range = || {
            BrowseError::Options(format!(
                "--range {}: write AREA:FIRST-LAST, e.g. hr:0-999 (areas: hr, ir, coil, di)",
                self.range
            ))
        };
        let (area, span) = self.range.split_once(':').ok_or_else(bad_range)?;
        let area = Area::parse(area).ok_or_else(bad_range)?;
        let (first, last) = span.split_once('-').unwrap_or((span, span));
        let (first, last): (u32, u32) = (
            first.parse().map_err(|_| bad_range())?,
            last.parse().map_err(|_| bad_range())?,
        );
        let base = u32::from(self.address_base);
        if first < base || last < first || last - base > 65_535 {
            return Err(BrowseError::Options(format!(
                "--range {}: addresses run from {base} to {} with --address-base {base}, first before last",
                self.range,
                65_535 + base
            )));
        }
        for text in &self.emit_toml {
            Address::parse(text).map_err(|e| {
                BrowseError::Options(format!(
                    "--emit-toml {text}: {}{}",
                    e.message,
                    e.hint.map(|h| format!(" ({h})")).unwrap_or_default()
                ))
            })?;
        }
        Ok(BrowseOptions {
            endpoint,
            unit: self.unit,
            area,
            first: (first - base) as u16,
            last: (last - base) as u16,
            address_base: self.address_base,
            timeout: self.timeout,
            retries: self.retries,
            max_count: self.max_count,
            emit: self.emit_toml.clone(),
        })
    }

    /// Scans and returns what to print (the table, then the TOML if asked for), the
    /// source's TOML and every answering address as a signal.
    pub async fn run(&self) -> Result<hooks::BrowseReport, BrowseError> {
        let report = browse(self.options()?).await?;
        let mut out = report.to_string();
        if !self.emit_toml.is_empty() {
            out.push('\n');
            out.push_str(&report.toml()?);
        }
        Ok(hooks::BrowseReport {
            text: out,
            source: report.source_toml(),
            signals: report.signals(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn args(url: &str, pairs: &[(&str, &str)]) -> Result<BrowseArgs, BrowseError> {
        let mut o = Options::default();
        for (name, value) in pairs {
            o.push(name, *value);
        }
        BrowseArgs::from_options(url, &o)
    }

    #[test]
    fn arguments_parse_like_the_documented_command_line() {
        let cli = args(
            "modbus://127.0.0.1:5020",
            &[
                ("unit", "3"),
                ("range", "hr:1-1000"),
                ("address-base", "1"),
                ("emit-toml", "hr:101,hr:103:u32:CDAB"),
            ],
        )
        .unwrap();
        let o = cli.options().unwrap();
        assert_eq!(
            (o.unit, o.area, o.first, o.last),
            (3, Area::HoldingRegister, 0, 999)
        );
        assert_eq!(o.emit, ["hr:101", "hr:103:u32:CDAB"]);
        let bad = |range: &str| {
            args("tcp://h", &[("range", range), ("address-base", "1")])
                .unwrap()
                .options()
                .unwrap_err()
                .to_string()
        };
        assert!(bad("hr:0-10").contains("addresses run from 1"));
        assert!(bad("holding:1-10").contains("AREA:FIRST-LAST"));
        assert!(args("tcp://h", &[("address-base", "2")]).is_err());
        assert!(
            args("tcp://h", &[("unit", "x")])
                .unwrap_err()
                .to_string()
                .contains("--unit")
        );
    }

    fn report(values: Vec<(u16, Cell)>) -> BrowseReport {
        let options = args(
            "tcp://127.0.0.1:5020",
            &[("range", "hr:1-10"), ("address-base", "1")],
        )
        .unwrap()
        .options()
        .unwrap();
        BrowseReport {
            options,
            values,
            refused: Vec::new(),
            requests: 1,
        }
    }

    #[test]
    fn each_register_is_a_signal_with_bindings_that_parse_and_a_plausible_float_first() {
        // 23.5 as f32 is 0x41BC_0000: words 0x41BC, 0x0000 in ABCD order.
        let report = report(vec![
            (0, Cell::Word(0x41BC)),
            (1, Cell::Word(0)),
            (5, Cell::Word(7)),
        ]);
        let signals = report.signals();
        assert_eq!(signals.len(), 3);
        let first = &signals[0];
        assert_eq!((first.address.as_str(), first.name.as_str()), ("hr:1", "hr_1"));
        assert_eq!(first.decodings.len(), 14, "u16, i16 and 3 types in 4 orders");
        assert_eq!(first.decodings[0].label, "f32 ABCD");
        assert_eq!(first.decodings[0].value, "23.5");
        assert_eq!(
            first.decodings[0].binding,
            r#"bindings.hr_1 = { address = "hr:1:f32:ABCD" }"#
        );
        // Every binding's address is one the source accepts.
        for d in signals.iter().flat_map(|s| &s.decodings) {
            let address = d.binding.split('"').nth(1).unwrap();
            Address::parse(address).unwrap_or_else(|e| panic!("{address}: {}", e.message));
        }
        // A register without a neighbour has its 16-bit readings only, raw first.
        let lone = &signals[2];
        assert_eq!(
            lone.decodings
                .iter()
                .map(|d| d.label.as_str())
                .collect::<Vec<_>>(),
            ["u16", "i16"]
        );
        assert!(report.source_toml().contains("url = \"tcp://127.0.0.1:5020\""));
    }
}
