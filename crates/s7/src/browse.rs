//! Discovery: read a byte range of a DB (or of M, I, Q) and show every even offset in the
//! ways its bytes could be meant (INT, WORD, and with the next two bytes DINT, DWORD, REAL;
//! an S7 STRING where the bytes look like one), then emit TOML for the addresses an
//! engineer picks. S7 has no symbol table on the wire (classic PUT/GET), so offsets come
//! from the DB's declaration in TIA Portal; browse helps check them against live values.
//!
//! The range is read in chunks as large as the PDU allows; a chunk the CPU refuses is
//! halved until the refused bytes are isolated; the first byte out of range is the area's
//! end, so a DB's end costs a few extra reads (a binary search), not one per byte.

use std::fmt::{self, Write as _};
use std::io;
use std::time::Duration;

use backplane_connector::hooks::{self, Decoding, OptionSpec, Options, Signal};
use backplane_model::Value;

use crate::address::{Address, Area, Type};
use crate::client::{CallError, Connection};
use crate::codec;
use crate::config::{Endpoint, S7Settings, tsap};
use crate::frame::{self, ItemAnswer, ItemSpec, Refusal};
use crate::plan::Limits;

#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    #[error("{0}")]
    Options(String),
    #[error("cannot connect to {endpoint}: {source}")]
    Connect { endpoint: String, source: io::Error },
    #[error("connection to {endpoint} lost: {source}")]
    Lost { endpoint: String, source: io::Error },
}

/// What a scan found.
#[derive(Clone, Debug, PartialEq)]
pub struct BrowseReport {
    pub settings: S7Settings,
    pub area: Area,
    pub first: u32,
    pub last: u32,
    /// Answering bytes by offset, ascending.
    pub bytes: Vec<(u32, u8)>,
    /// Ranges refused or unanswered: (first, last, why).
    pub refused: Vec<(u32, u32, String)>,
    pub requests: usize,
    pub pdu: u16,
    pub emit: Vec<String>,
}

/// Scans `first..=last` of `area`.
pub async fn browse(
    settings: S7Settings,
    area: Area,
    first: u32,
    last: u32,
    emit: Vec<String>,
) -> Result<BrowseReport, BrowseError> {
    let endpoint = settings.endpoint.to_string();
    let mut conn = Connection::open(&settings)
        .await
        .map_err(|source| BrowseError::Connect {
            endpoint: endpoint.clone(),
            source,
        })?;
    let pdu = conn.pdu();
    let chunk = Limits {
        pdu,
        max_gap: 0,
        max_items: 1,
    }
    .max_item_bytes()
    .max(1) as u32;
    let mut work: Vec<(u32, u32)> = Vec::new();
    let mut start = first;
    while start <= last {
        let count = (last - start + 1).min(chunk);
        work.push((start, count));
        start += count;
    }
    work.reverse();
    let mut report = BrowseReport {
        settings,
        area,
        first,
        last,
        bytes: Vec::new(),
        refused: Vec::new(),
        requests: 0,
        pdu,
        emit,
    };
    while let Some((start, count)) = work.pop() {
        let spec = ItemSpec {
            area,
            start,
            count: count as u16,
            bit: None,
        };
        report.requests += 1;
        let reference = conn.take_ref();
        let mut past_end = false;
        let why = match conn
            .call(reference, frame::read_request(reference, &[spec]))
            .await
        {
            Ok(bytes) => match frame::parse_pdu(&bytes).and_then(|p| frame::read_answer(&p, &[spec])) {
                Ok(Ok(answers)) => match answers.first() {
                    Some(ItemAnswer::Data(d)) => {
                        report
                            .bytes
                            .extend(d.iter().enumerate().map(|(i, b)| (start + i as u32, *b)));
                        continue;
                    }
                    Some(ItemAnswer::Refused(code)) => {
                        past_end = *code == 0x05;
                        Refusal::Item(*code).to_string()
                    }
                    Some(ItemAnswer::WrongLength { got, want }) => {
                        format!("{got} bytes answered, {want} asked for")
                    }
                    None => "no item in the answer".into(),
                },
                Ok(Err(refusal)) => refusal.to_string(),
                Err(e) => e.to_string(),
            },
            Err(CallError::Io(source)) => return Err(BrowseError::Lost { endpoint, source }),
            Err(e) => e.to_string(),
        };
        if count > 1 && !why.starts_with("no answer") {
            let half = count / 2;
            work.push((start + half, count - half));
            work.push((start, half));
            continue;
        }
        // Work runs lowest offset first, so the first byte out of range is the area's end:
        // everything after it is out of range too.
        let end = if past_end {
            work.clear();
            last
        } else {
            start + count - 1
        };
        match report.refused.last_mut() {
            Some((_, e, previous)) if *e + 1 == start && *previous == why => *e = end,
            _ => report.refused.push((start, end, why)),
        }
    }
    Ok(report)
}

/// How likely a reading is the one meant: a text in S7 STRING form beats a REAL with few
/// significant digits in a plausible range, which beats an INT, which beats the rest.
fn plausible(d: &Decoding) -> u8 {
    if d.label.starts_with("string") {
        return 4;
    }
    if d.label == "real" {
        return u8::from(hooks::plausible_float(&d.value)) * 3;
    }
    match d.label.as_str() {
        "int" => 2,
        _ => 1,
    }
}

impl BrowseReport {
    fn byte(&self, offset: u32) -> Option<u8> {
        let i = self.bytes.binary_search_by_key(&offset, |(o, _)| *o).ok()?;
        self.bytes.get(i).map(|(_, b)| *b)
    }

    fn run(&self, offset: u32, len: u32) -> Option<Vec<u8>> {
        (offset..offset + len).map(|o| self.byte(o)).collect()
    }

    fn address(&self, offset: u32, ty: Type) -> Address {
        Address {
            area: self.area,
            start: offset,
            ty,
        }
    }

    /// TOML for a source reading this CPU.
    pub fn source_toml(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# From `backplane browse` of {} (PDU {}).",
            s.endpoint, self.pdu
        );
        let _ = writeln!(out, "[[sources]]");
        let _ = writeln!(out, "name = \"plc\"   # choose a name");
        let _ = writeln!(out, "kind = \"s7\"");
        let _ = writeln!(out, "url = \"{}\"", s.endpoint);
        let _ = writeln!(
            out,
            "remote_tsap = \"{:02X}.{:02X}\"",
            s.remote_tsap >> 8,
            s.remote_tsap & 0xFF
        );
        let _ = writeln!(out, "period = \"1s\"");
        out
    }

    /// The S7 STRING at `offset`, if the bytes look like one (max ≥ actual, printable).
    fn string_at(&self, offset: u32) -> Option<(u8, String)> {
        let max = self.byte(offset)?;
        let actual = self.byte(offset + 1)?;
        if max == 0 || actual == 0 || actual > max {
            return None;
        }
        let text = self.run(offset + 2, u32::from(actual))?;
        text.iter()
            .all(|b| (0x20..0x7F).contains(b))
            .then(|| (max, text.iter().map(|b| char::from(*b)).collect()))
    }

    /// Every even offset as a signal with its candidate decodings, the most plausible first.
    pub fn signals(&self) -> Vec<Signal> {
        let mut out = Vec::new();
        let start = self.first + self.first % 2;
        for offset in (start..=self.last).step_by(2) {
            let Some(word) = self.run(offset, 2) else { continue };
            let name = format!("{}_{offset}", self.area_prefix().to_ascii_lowercase());
            let candidate = |label: &str, t: &str, ty: Type, value: String| Decoding {
                label: label.to_owned(),
                attribute_type: Some(t.to_owned()),
                value,
                binding: format!(
                    "bindings.{name} = {{ address = \"{}\" }}",
                    self.address(offset, ty)
                ),
            };
            let w = u16::from_be_bytes([
                word.first().copied().unwrap_or(0),
                word.get(1).copied().unwrap_or(0),
            ]);
            let mut all = vec![
                candidate("int", "int", Type::Int, (w as i16).to_string()),
                candidate("word", "uint", Type::Word, w.to_string()),
            ];
            if let Some(d) = self.run(offset, 4) {
                let bits = u32::from_be_bytes([
                    d.first().copied().unwrap_or(0),
                    d.get(1).copied().unwrap_or(0),
                    d.get(2).copied().unwrap_or(0),
                    d.get(3).copied().unwrap_or(0),
                ]);
                all.push(candidate(
                    "real",
                    "float",
                    Type::Real,
                    hooks::float_text(f32::from_bits(bits)),
                ));
                all.push(candidate("dint", "int", Type::DInt, (bits as i32).to_string()));
                all.push(candidate("dword", "uint", Type::DWord, bits.to_string()));
            }
            if let Some((max, text)) = self.string_at(offset) {
                all.push(candidate(
                    &format!("string[{max}]"),
                    "string",
                    Type::String(max),
                    format!("{text:?}"),
                ));
            }
            all.sort_by_key(|d| std::cmp::Reverse(plausible(d)));
            out.push(Signal {
                address: self.address(offset, Type::Word).to_string(),
                name,
                description: format!("{} byte {offset}", self.area.name()),
                decodings: all,
            });
        }
        out
    }

    fn area_prefix(&self) -> String {
        match self.area {
            Area::Db(n) => format!("DB{n}"),
            Area::Marker => "M".into(),
            Area::Input => "I".into(),
            Area::Output => "Q".into(),
            Area::Timer => "T".into(),
            Area::Counter => "C".into(),
        }
    }

    /// TOML for a source and one binding per address in `emit`, each with its value now.
    pub fn toml(&self) -> Result<String, BrowseError> {
        let mut out = self.source_toml();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "# In the asset that reads it: source = \"plc\", then rename the attributes."
        );
        for text in &self.emit {
            let address = Address::parse(text)
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
            let now = (address.area == self.area)
                .then(|| self.run(address.start, address.ty.size()))
                .flatten()
                .and_then(|bytes| codec::decode(address.ty, &bytes).ok());
            let comment = now.map_or_else(|| "not scanned".to_owned(), |v: Value| format!("now {v}"));
            let name = name.trim_matches('_');
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
        writeln!(
            f,
            "{} {} bytes {}..={} (PDU {}): {} bytes answered, {} requests",
            self.settings.endpoint,
            self.area.name(),
            self.first,
            self.last,
            self.pdu,
            self.bytes.len(),
            self.requests
        )?;
        for (first, last, why) in &self.refused {
            writeln!(f, "  refused bytes {first}..={last}: {why}")?;
        }
        writeln!(
            f,
            "{:<14} {:<11} {:>6} {:>6} | {:>11} {:>10} {:>12}",
            "address", "hex", "int", "word", "dint", "dword", "real"
        )?;
        let start = self.first + self.first % 2;
        for offset in (start..=self.last).step_by(2) {
            let Some(word) = self.run(offset, 2) else { continue };
            let w = u16::from_be_bytes([
                word.first().copied().unwrap_or(0),
                word.get(1).copied().unwrap_or(0),
            ]);
            let four = self.run(offset, 4);
            let hex: String = four
                .as_deref()
                .unwrap_or(&word)
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect();
            write!(
                f,
                "{:<14} {hex:<11} {:>6} {w:>6}",
                self.address(offset, Type::Word).to_string(),
                w as i16
            )?;
            if let Some(d) = four {
                let bits = u32::from_be_bytes([
                    d.first().copied().unwrap_or(0),
                    d.get(1).copied().unwrap_or(0),
                    d.get(2).copied().unwrap_or(0),
                    d.get(3).copied().unwrap_or(0),
                ]);
                write!(
                    f,
                    " | {:>11} {bits:>10} {:>12}",
                    bits as i32,
                    hooks::float_text(f32::from_bits(bits))
                )?;
            }
            if let Some((max, text)) = self.string_at(offset) {
                write!(f, "   string[{max}] {text:?}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// The options of `backplane browse s7://...`.
pub const OPTIONS: &[OptionSpec] = &[
    OptionSpec::value(
        "range",
        "AREA:FIRST-LAST",
        "Area and inclusive byte range: DB10:0-99, M:0-63, I:0-7, Q:0-7",
    )
    .default("DB1:0-63"),
    OptionSpec::value("rack", "N", "The CPU's rack").default("0"),
    OptionSpec::value("slot", "N", "The CPU's slot (S7-300: 2, S7-1200/1500: 1)").default("1"),
    OptionSpec::value(
        "remote-tsap",
        "XX.YY",
        "The called TSAP instead of rack and slot (e.g. LOGO!: 20.00)",
    ),
    OptionSpec::value("pdu-size", "N", "The PDU size to ask for (240 to 960)").default("480"),
    OptionSpec::value("timeout", "DURATION", "How long to wait for each answer").default("1s"),
    OptionSpec::value(
        "emit-toml",
        "ADDRESSES",
        "Also print a TOML source and bindings for these addresses, e.g. DB1.DBW0:int,DB1.DBD2:real",
    )
    .repeated(),
];

/// What `backplane browse` was asked for (see [`OPTIONS`]).
#[derive(Debug, Clone)]
pub struct BrowseArgs {
    pub url: String,
    pub range: String,
    pub rack: u16,
    pub slot: u16,
    pub remote_tsap: Option<String>,
    pub pdu_size: u16,
    pub timeout: Duration,
    pub emit_toml: Vec<String>,
}

impl BrowseArgs {
    pub fn from_options(url: &str, o: &Options) -> Result<BrowseArgs, BrowseError> {
        Ok(BrowseArgs {
            url: url.to_owned(),
            range: o.get("range").unwrap_or("DB1:0-63").to_owned(),
            rack: o.parse_or("rack", 0).map_err(BrowseError::Options)?,
            slot: o.parse_or("slot", 1).map_err(BrowseError::Options)?,
            remote_tsap: o.get("remote-tsap").map(str::to_owned),
            pdu_size: o.parse_or("pdu-size", 480).map_err(BrowseError::Options)?,
            timeout: o
                .duration_or("timeout", Duration::from_secs(1))
                .map_err(BrowseError::Options)?,
            emit_toml: o.list("emit-toml"),
        })
    }

    /// The settings, area and range to scan.
    pub fn options(&self) -> Result<(S7Settings, Area, u32, u32), BrowseError> {
        let endpoint =
            Endpoint::parse(&self.url).map_err(|(m, h)| BrowseError::Options(format!("{m} ({h})")))?;
        let bad_range = || {
            BrowseError::Options(format!(
                "--range {}: write AREA:FIRST-LAST in bytes, e.g. DB10:0-99 (areas: DBn, M, I, Q)",
                self.range
            ))
        };
        let (area, span) = self.range.split_once(':').ok_or_else(bad_range)?;
        let upper = area.to_ascii_uppercase();
        let area = match upper.as_str() {
            "M" => Area::Marker,
            "I" | "E" => Area::Input,
            "Q" | "A" => Area::Output,
            db => Area::Db(
                db.strip_prefix("DB")
                    .and_then(|n| n.parse::<u16>().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(bad_range)?,
            ),
        };
        let (first, last) = span.split_once('-').unwrap_or((span, span));
        let (first, last): (u32, u32) = (
            first.parse().map_err(|_| bad_range())?,
            last.parse().map_err(|_| bad_range())?,
        );
        if last < first || last > crate::address::MAX_OFFSET || last - first >= 65_536 {
            return Err(BrowseError::Options(format!(
                "--range {}: the first byte comes before the last, at most 65536 bytes",
                self.range
            )));
        }
        if !(frame::MIN_PDU..=frame::MAX_PDU).contains(&self.pdu_size) {
            return Err(BrowseError::Options(format!(
                "--pdu-size {}: 240 to 960",
                self.pdu_size
            )));
        }
        let remote_tsap = match &self.remote_tsap {
            None => tsap(self.rack, self.slot),
            Some(t) => {
                let hex: String = t.trim_start_matches("0x").chars().filter(|c| *c != '.').collect();
                u16::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .ok_or_else(|| {
                        BrowseError::Options(format!("--remote-tsap {t}: four hex digits, e.g. 03.01"))
                    })?
            }
        };
        for text in &self.emit_toml {
            Address::parse(text)
                .map_err(|e| BrowseError::Options(format!("--emit-toml {text}: {}", e.message)))?;
        }
        let settings = S7Settings {
            endpoint,
            local_tsap: 0x0100,
            remote_tsap,
            pdu_size: self.pdu_size,
            period: Duration::from_secs(1),
            timeout: self.timeout,
            max_gap: 0,
            writes: false,
        };
        Ok((settings, area, first, last))
    }

    /// Scans and returns what to print, the source's TOML and every even offset as a signal.
    pub async fn run(&self) -> Result<hooks::BrowseReport, BrowseError> {
        let (settings, area, first, last) = self.options()?;
        let report = browse(settings, area, first, last, self.emit_toml.clone()).await?;
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

    fn report(bytes: &[u8]) -> BrowseReport {
        let mut o = Options::default();
        o.push("range", "DB10:0-15");
        let (settings, area, first, last) = BrowseArgs::from_options("s7://127.0.0.1:1102", &o)
            .unwrap()
            .options()
            .unwrap();
        BrowseReport {
            settings,
            area,
            first,
            last,
            bytes: bytes.iter().enumerate().map(|(i, b)| (i as u32, *b)).collect(),
            refused: Vec::new(),
            requests: 1,
            pdu: 480,
            emit: vec!["DB10.DBD0:real".into(), "DB10.DBB4:string[6]".into()],
        }
    }

    #[test]
    fn offsets_become_signals_with_parseable_bindings_and_plausible_ones_first() {
        // 23.5 as REAL, then a STRING[6] "AB".
        let report = report(&[0x41, 0xBC, 0, 0, 6, 2, b'A', b'B', 0, 0, 0, 0]);
        let signals = report.signals();
        assert_eq!(signals.len(), 6);
        assert_eq!(signals[0].decodings[0].label, "real");
        assert_eq!(signals[0].decodings[0].value, "23.5");
        assert_eq!(
            signals[0].decodings[0].binding,
            r#"bindings.db10_0 = { address = "DB10.DBD0:real" }"#
        );
        assert_eq!(signals[2].decodings[0].label, "string[6]");
        for d in signals.iter().flat_map(|s| &s.decodings) {
            let address = d.binding.split('"').nth(1).unwrap();
            Address::parse(address).unwrap();
        }
        let toml = report.toml().unwrap();
        assert!(toml.contains("kind = \"s7\""), "{toml}");
        assert!(toml.contains("# now 23.5"), "{toml}");
        assert!(toml.contains("# now \"AB\""), "{toml}");
        assert!(report.to_string().contains("string[6] \"AB\""));
    }

    #[test]
    fn ranges_parse_like_the_documented_command_line() {
        let args = |pairs: &[(&str, &str)]| {
            let mut o = Options::default();
            for (k, v) in pairs {
                o.push(k, *v);
            }
            BrowseArgs::from_options("s7://plc", &o).unwrap().options()
        };
        let (s, area, first, last) = args(&[("range", "db7:10-20"), ("slot", "2")]).unwrap();
        assert_eq!(
            (area, first, last, s.remote_tsap, s.endpoint.port),
            (Area::Db(7), 10, 20, 0x0102, 102)
        );
        assert_eq!(args(&[("range", "M:0-3")]).unwrap().1, Area::Marker);
        assert!(args(&[("range", "X:0-3")]).is_err());
        assert!(args(&[("range", "DB1:9-3")]).is_err());
        assert!(args(&[("remote-tsap", "zz")]).is_err());
    }
}
