//! MTConnect response documents (XML, versions 1.x and 2.x) → plain data: the device
//! model of a `probe` ([`Devices`]), the observations of a `current` or `sample`
//! ([`Streams`]) and an agent's refusals ([`Errors`]). This is the part fed by the
//! network, and the one fuzzed (fuzz/fuzz_targets/mtconnect_document.rs).
//!
//! Namespaces and prefixes are ignored (elements are matched by local name), so the
//! 1.0 `urn:mtconnect.com`, the 1.1+ `urn:mtconnect.org` and unprefixed documents read
//! alike. The reader is quick-xml's streaming one: no DOM and no recursion; the element
//! stack is bounded by [`MAX_DEPTH`].
//!
//! A document that is not well-formed, or whose header lacks what the protocol needs
//! (`instanceId`, sequence numbers of a streams document), is a [`ParseError`] naming
//! the byte offset and line. One observation that is unusable (no `dataItemId`, a
//! sequence that is not a number) is left out and named in [`Streams::rejected`]; the
//! others of the document are kept.

use std::fmt;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

/// Elements nested deeper than this make the document an error (real documents nest
/// about 12 deep; this bounds the stack a hostile one can grow).
pub const MAX_DEPTH: usize = 64;

/// Why a document could not be read: where (byte offset and line) and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {offset} (line {line})")]
pub struct ParseError {
    pub offset: u64,
    pub line: u64,
    pub what: String,
}

/// The `Header` of any response document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub instance_id: u64,
    pub version: String,
    pub buffer_size: Option<u64>,
    pub first_sequence: Option<u64>,
    pub last_sequence: Option<u64>,
    pub next_sequence: Option<u64>,
}

/// One data item of the device model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataItem {
    pub id: String,
    pub name: Option<String>,
    /// `SAMPLE`, `EVENT` or `CONDITION`.
    pub category: String,
    /// e.g. `EXECUTION`, `ROTARY_VELOCITY`, `SYSTEM`.
    pub kind: String,
    pub sub_type: Option<String>,
    /// The units the agent reports in (`units`), e.g. `REVOLUTION/MINUTE`.
    pub units: Option<String>,
    pub native_units: Option<String>,
    /// The components above it, e.g. `Mill/Controller[controller]/Path[path]`.
    pub component: String,
}

/// One device of a probe.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub uuid: String,
    pub data_items: Vec<DataItem>,
}

/// An `MTConnectDevices` document (the answer to `probe`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Devices {
    pub header: Header,
    pub devices: Vec<Device>,
}

/// The three kinds of data item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    Sample,
    Event,
    Condition,
}

/// The state of a condition observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    Normal,
    Warning,
    Fault,
    Unavailable,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::Warning => "warning",
            Level::Fault => "fault",
            Level::Unavailable => "unavailable",
        }
    }

    fn from_element(name: &str) -> Option<Level> {
        Some(match name {
            "Normal" => Level::Normal,
            "Warning" => Level::Warning,
            "Fault" => Level::Fault,
            "Unavailable" => Level::Unavailable,
            _ => return None,
        })
    }
}

/// What a condition observation says besides its level.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Condition {
    /// The condition's type (`SYSTEM`, `TEMPERATURE`, ...).
    pub kind: String,
    pub native_code: Option<String>,
    pub native_severity: Option<String>,
    pub qualifier: Option<String>,
}

/// One observation of a `current` or `sample`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub data_item_id: String,
    pub name: Option<String>,
    pub sequence: u64,
    /// The agent's time stamp, as written (RFC 3339, usually UTC).
    pub timestamp: Option<String>,
    pub category: Category,
    /// The element's name: the data item's type in Pascal case (`Execution`), or the
    /// condition level (`Fault`).
    pub element: String,
    /// `None` when the value is `UNAVAILABLE` (or a condition is `Unavailable`).
    pub value: Option<String>,
    /// Conditions only: the level and what comes with it.
    pub level: Option<Level>,
    pub condition: Option<Condition>,
    /// The device stream it came in (the device's name).
    pub device: String,
}

/// An `MTConnectStreams` document (the answer to `current` and `sample`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Streams {
    pub header: Header,
    pub observations: Vec<Observation>,
    /// Observations left out, each with why and where.
    pub rejected: Vec<String>,
}

/// One error of an `MTConnectError` document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentError {
    /// e.g. `OUT_OF_RANGE`, `INVALID_REQUEST`, `NO_DEVICE`.
    pub code: String,
    pub message: String,
}

/// An `MTConnectError` document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Errors {
    pub header: Header,
    pub errors: Vec<AgentError>,
}

impl Errors {
    /// Whether the agent says the requested sequence is no longer (or not yet) in its
    /// buffer.
    pub fn out_of_range(&self) -> bool {
        self.errors.iter().any(|e| e.code == "OUT_OF_RANGE")
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.code, e.message)?;
        }
        Ok(())
    }
}

/// Any response document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Document {
    Devices(Devices),
    Streams(Streams),
    Error(Errors),
}

/// Reads a response document.
pub fn parse(bytes: &[u8]) -> Result<Document, ParseError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let offset = e.valid_up_to() as u64;
            return Err(error_at(bytes, offset, "the document is not UTF-8".into()));
        }
    };
    Parser::new(text).run()
}

fn error_at(bytes: &[u8], offset: u64, what: String) -> ParseError {
    let end = (offset as usize).min(bytes.len());
    let line = bytes
        .get(..end)
        .map_or(0, |b| b.iter().filter(|c| **c == b'\n').count()) as u64
        + 1;
    ParseError { offset, line, what }
}

/// What is being read inside the root element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Root {
    Devices,
    Streams,
    Error,
}

/// An element being read, with the text gathered so far.
#[derive(Debug)]
struct Open {
    name: String,
    /// Components: the label this element adds to the path.
    component: Option<String>,
}

/// An observation being read (between its start and end tag).
#[derive(Debug)]
struct Pending {
    observation: Option<Observation>,
    text: String,
    /// Data set / table entries: `key=value` pairs.
    entries: Vec<String>,
    entry_key: Option<String>,
    depth: usize,
}

struct Parser<'a> {
    text: &'a str,
    reader: Reader<&'a [u8]>,
    root: Option<Root>,
    stack: Vec<Open>,
    header: Header,
    header_seen: bool,
    devices: Vec<Device>,
    observations: Vec<Observation>,
    rejected: Vec<String>,
    errors: Vec<AgentError>,
    /// Inside a `Samples`/`Events`/`Condition` container: its category.
    category: Option<Category>,
    device_stream: String,
    pending: Option<Pending>,
    /// 2.x errors: the element text being collected (`ErrorCode`, `ErrorMessage`).
    error_text: Option<String>,
    /// 1.x errors: the `Error` element being read.
    error_open: Option<AgentError>,
}

fn local(name: &str) -> String {
    match name.rsplit_once(':') {
        Some((_, local)) => local.to_owned(),
        None => name.to_owned(),
    }
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        let mut reader = Reader::from_str(text);
        reader.config_mut().trim_text(false);
        Parser {
            text,
            reader,
            root: None,
            stack: Vec::new(),
            header: Header::default(),
            header_seen: false,
            devices: Vec::new(),
            observations: Vec::new(),
            rejected: Vec::new(),
            errors: Vec::new(),
            category: None,
            device_stream: String::new(),
            pending: None,
            error_text: None,
            error_open: None,
        }
    }

    fn fail(&self, what: impl Into<String>) -> ParseError {
        error_at(self.text.as_bytes(), self.reader.buffer_position(), what.into())
    }

    fn attributes(&self, e: &BytesStart<'_>) -> Result<Vec<(String, String)>, ParseError> {
        let mut out = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|err| {
                self.fail(format!("bad attribute in <{}>: {err}", local(e.name().as_ref())))
            })?;
            let value = a.normalized_value(XmlVersion::Implicit1_0).map_err(|err| {
                self.fail(format!(
                    "bad attribute value in <{}>: {err}",
                    local(e.name().as_ref())
                ))
            })?;
            out.push((local(a.key.as_ref()), value.into_owned()));
        }
        Ok(out)
    }

    fn run(mut self) -> Result<Document, ParseError> {
        loop {
            let event = match self.reader.read_event() {
                Ok(e) => e,
                Err(e) => {
                    let offset = self.reader.error_position();
                    return Err(error_at(
                        self.text.as_bytes(),
                        offset,
                        format!("malformed XML: {e}"),
                    ));
                }
            };
            match event {
                Event::Start(e) => {
                    self.start(&e, false)?;
                }
                Event::Empty(e) => {
                    self.start(&e, true)?;
                    self.end()?;
                }
                Event::End(_) => self.end()?,
                Event::Text(t) => {
                    let text = t.xml_content(XmlVersion::Implicit1_0);
                    self.text_content(&text);
                }
                Event::CData(t) => {
                    let text = t.xml_content(XmlVersion::Implicit1_0);
                    self.text_content(&text);
                }
                Event::GeneralRef(r) => {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => match quick_xml::escape::resolve_predefined_entity(&r) {
                            Some(s) => s.to_owned(),
                            None => return Err(self.fail(format!("unknown entity `&{};`", &*r))),
                        },
                        Err(e) => return Err(self.fail(format!("bad character reference: {e}"))),
                    };
                    self.text_content(&resolved);
                }
                Event::Eof => break,
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
            }
        }
        if !self.stack.is_empty() {
            return Err(self.fail("the document ends inside an element"));
        }
        let Some(root) = self.root else {
            return Err(self.fail("no MTConnect document (empty)"));
        };
        if !self.header_seen {
            return Err(self.fail("the document has no Header"));
        }
        Ok(match root {
            Root::Devices => Document::Devices(Devices {
                header: self.header,
                devices: self.devices,
            }),
            Root::Streams => {
                if self.header.next_sequence.is_none() {
                    return Err(self.fail("the streams Header has no nextSequence"));
                }
                Document::Streams(Streams {
                    header: self.header,
                    observations: self.observations,
                    rejected: self.rejected,
                })
            }
            Root::Error => Document::Error(Errors {
                header: self.header,
                errors: self.errors,
            }),
        })
    }

    fn text_content(&mut self, text: &str) {
        if let Some(p) = &mut self.pending {
            p.text.push_str(text);
        } else if let Some(t) = &mut self.error_text {
            t.push_str(text);
        } else if let Some(e) = &mut self.error_open {
            e.message.push_str(text);
        }
    }

    fn start(&mut self, e: &BytesStart<'_>, _empty: bool) -> Result<(), ParseError> {
        let name = local(e.name().as_ref());
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.fail(format!("elements nested deeper than {MAX_DEPTH}")));
        }
        let depth = self.stack.len();
        if depth == 0 {
            if self.root.is_some() {
                return Err(self.fail(format!("a second root element <{name}>")));
            }
            self.root = Some(match name.as_str() {
                "MTConnectDevices" => Root::Devices,
                "MTConnectStreams" => Root::Streams,
                "MTConnectError" => Root::Error,
                other => return Err(self.fail(format!("<{other}> is not an MTConnect response document"))),
            });
            self.stack.push(Open {
                name,
                component: None,
            });
            return Ok(());
        }
        // Inside an observation: data set entries, or markup we keep as text.
        if let Some(p) = &mut self.pending {
            if name == "Entry" || name == "Cell" {
                let attrs = self.attributes(e)?;
                if let Some(p) = &mut self.pending {
                    p.entry_key = attrs.into_iter().find(|(k, _)| k == "key").map(|(_, v)| v);
                    p.text.clear();
                }
            } else {
                p.text.clear();
            }
            self.stack.push(Open {
                name,
                component: None,
            });
            return Ok(());
        }
        let attrs = self.attributes(e)?;
        let get = |key: &str| attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let mut component = None;
        match (self.root, name.as_str()) {
            (_, "Header") if depth == 1 => {
                self.header_seen = true;
                self.header = self.read_header(&attrs)?;
            }
            (Some(Root::Devices), "Device" | "Agent") => {
                let id = get("id").unwrap_or_default();
                let dev_name = get("name").unwrap_or_else(|| id.clone());
                component = Some(dev_name.clone());
                self.devices.push(Device {
                    id,
                    name: dev_name,
                    uuid: get("uuid").unwrap_or_default(),
                    data_items: Vec::new(),
                });
            }
            (Some(Root::Devices), "DataItem") => {
                let path = self.component_path();
                let item = DataItem {
                    id: get("id").unwrap_or_default(),
                    name: get("name"),
                    category: get("category").unwrap_or_default(),
                    kind: get("type").unwrap_or_default(),
                    sub_type: get("subType"),
                    units: get("units"),
                    native_units: get("nativeUnits"),
                    component: path,
                };
                if item.id.is_empty() {
                    return Err(self.fail("a DataItem without id"));
                }
                match self.devices.last_mut() {
                    Some(d) => d.data_items.push(item),
                    None => return Err(self.fail("a DataItem outside any Device")),
                }
            }
            (Some(Root::Devices), _) => {
                // A component is any element with an id that holds DataItems/Components
                // (Controller, Path, Axes, Linear, ...), apart from the containers.
                let container = matches!(
                    name.as_str(),
                    "Devices"
                        | "Components"
                        | "DataItems"
                        | "Description"
                        | "Compositions"
                        | "References"
                        | "Configuration"
                        | "Source"
                        | "Constraints"
                        | "Definition"
                        | "Filters"
                );
                if !container && get("id").is_some() && !self.devices.is_empty() {
                    let label = match get("name") {
                        Some(n) => format!("{name}[{n}]"),
                        None => name.clone(),
                    };
                    component = Some(label);
                }
            }
            (Some(Root::Streams), "DeviceStream") => {
                self.device_stream = get("name").or_else(|| get("uuid")).unwrap_or_default();
            }
            (Some(Root::Streams), "Samples") => self.category = Some(Category::Sample),
            (Some(Root::Streams), "Events") => self.category = Some(Category::Event),
            (Some(Root::Streams), "Condition") => self.category = Some(Category::Condition),
            (Some(Root::Streams), _) if self.category.is_some() => {
                let observation = self.observation(&name, &attrs);
                self.pending = Some(Pending {
                    observation,
                    text: String::new(),
                    entries: Vec::new(),
                    entry_key: None,
                    depth,
                });
            }
            (Some(Root::Error), "Error") => {
                self.error_open = Some(AgentError {
                    code: get("errorCode").unwrap_or_default(),
                    message: String::new(),
                });
            }
            (Some(Root::Error), "ErrorCode" | "ErrorMessage") => self.error_text = Some(String::new()),
            _ => {}
        }
        self.stack.push(Open { name, component });
        Ok(())
    }

    fn end(&mut self) -> Result<(), ParseError> {
        let Some(open) = self.stack.pop() else {
            return Err(self.fail("an end tag without a start tag"));
        };
        let depth = self.stack.len();
        if let Some(p) = &mut self.pending {
            if p.depth < depth {
                if open.name == "Entry" || open.name == "Cell" {
                    let key = p.entry_key.take().unwrap_or_default();
                    let value = std::mem::take(&mut p.text);
                    p.entries.push(format!("{key}={}", value.trim()));
                }
                return Ok(());
            }
            if let Some(p) = self.pending.take() {
                self.finish_observation(p);
            }
            return Ok(());
        }
        match (self.root, open.name.as_str()) {
            (Some(Root::Streams), "Samples" | "Events" | "Condition") => self.category = None,
            (Some(Root::Error), "Error") => {
                if let Some(mut e) = self.error_open.take() {
                    e.message = e.message.trim().to_owned();
                    self.errors.push(e);
                }
            }
            (Some(Root::Error), "ErrorCode") => {
                let code = self.error_text.take().unwrap_or_default();
                self.errors.push(AgentError {
                    code: code.trim().to_owned(),
                    message: String::new(),
                });
            }
            (Some(Root::Error), "ErrorMessage") => {
                let message = self.error_text.take().unwrap_or_default();
                match self.errors.last_mut() {
                    Some(e) if e.message.is_empty() => e.message = message.trim().to_owned(),
                    _ => self.errors.push(AgentError {
                        code: String::new(),
                        message: message.trim().to_owned(),
                    }),
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn component_path(&self) -> String {
        let parts: Vec<&str> = self.stack.iter().filter_map(|o| o.component.as_deref()).collect();
        parts.join("/")
    }

    fn read_header(&self, attrs: &[(String, String)]) -> Result<Header, ParseError> {
        let get = |key: &str| attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let number = |key: &str| -> Result<Option<u64>, ParseError> {
            match get(key) {
                None | Some("") => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| self.fail(format!("Header {key}=\"{v}\" is not a whole number"))),
            }
        };
        let instance_id = number("instanceId")?.ok_or_else(|| self.fail("the Header has no instanceId"))?;
        Ok(Header {
            instance_id,
            version: get("version").unwrap_or_default().to_owned(),
            buffer_size: number("bufferSize")?,
            first_sequence: number("firstSequence")?,
            last_sequence: number("lastSequence")?,
            next_sequence: number("nextSequence")?,
        })
    }

    /// The observation an element starts, or `None` (recorded as rejected) if unusable.
    fn observation(&mut self, element: &str, attrs: &[(String, String)]) -> Option<Observation> {
        let get = |key: &str| attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let category = self.category?;
        let offset = self.reader.buffer_position();
        let Some(id) = get("dataItemId").filter(|s| !s.is_empty()) else {
            self.rejected
                .push(format!("<{element}> at byte {offset} has no dataItemId"));
            return None;
        };
        let sequence = match get("sequence").map(|s| s.trim().parse::<u64>()) {
            Some(Ok(s)) => s,
            Some(Err(_)) | None => {
                self.rejected.push(format!(
                    "<{element} dataItemId=\"{id}\"> at byte {offset} has no valid sequence"
                ));
                return None;
            }
        };
        let level = match category {
            Category::Condition => match Level::from_element(element) {
                Some(l) => Some(l),
                None => {
                    self.rejected.push(format!(
                        "<{element} dataItemId=\"{id}\"> at byte {offset}: not a condition level (Normal, Warning, Fault, Unavailable)"
                    ));
                    return None;
                }
            },
            _ => None,
        };
        let condition = level.map(|_| Condition {
            kind: get("type").unwrap_or_default(),
            native_code: get("nativeCode"),
            native_severity: get("nativeSeverity"),
            qualifier: get("qualifier"),
        });
        Some(Observation {
            data_item_id: id,
            name: get("name"),
            sequence,
            timestamp: get("timestamp"),
            category,
            element: element.to_owned(),
            value: None,
            level,
            condition,
            device: self.device_stream.clone(),
        })
    }

    fn finish_observation(&mut self, p: Pending) {
        let Some(mut o) = p.observation else { return };
        let text = if p.entries.is_empty() {
            p.text.trim().to_owned()
        } else {
            p.entries.join(" ")
        };
        o.value = match o.level {
            Some(Level::Unavailable) => None,
            Some(_) => Some(text),
            None if text == "UNAVAILABLE" => None,
            None => Some(text),
        };
        self.observations.push(o);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn streams(text: &str) -> Streams {
        match parse(text.as_bytes()).unwrap() {
            Document::Streams(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn observations_of_every_category_are_read_with_their_sequence() {
        let s = streams(
            r#"<?xml version="1.0"?>
<m:MTConnectStreams xmlns:m="urn:mtconnect.org:MTConnectStreams:2.0">
 <m:Header instanceId="7" version="2.0" firstSequence="1" lastSequence="9" nextSequence="10"/>
 <m:Streams><m:DeviceStream name="Mill" uuid="m1"><m:ComponentStream component="Path">
  <m:Samples><m:SpindleSpeed dataItemId="s" sequence="4" timestamp="2026-01-01T00:00:00Z">1200.5</m:SpindleSpeed></m:Samples>
  <m:Events><m:Execution dataItemId="e" sequence="5">UNAVAILABLE</m:Execution><m:Block dataItemId="b" sequence="6">G01 X1 &amp; Y2</m:Block></m:Events>
  <m:Condition><m:Fault dataItemId="c" sequence="7" type="SYSTEM" nativeCode="E12">Door &lt;open&gt;</m:Fault></m:Condition>
 </m:ComponentStream></m:DeviceStream></m:Streams></m:MTConnectStreams>"#,
        );
        assert_eq!(s.header.next_sequence, Some(10));
        assert_eq!(s.header.instance_id, 7);
        let v: Vec<(&str, u64, Option<&str>)> = s
            .observations
            .iter()
            .map(|o| (o.data_item_id.as_str(), o.sequence, o.value.as_deref()))
            .collect();
        assert_eq!(
            v,
            [
                ("s", 4, Some("1200.5")),
                ("e", 5, None),
                ("b", 6, Some("G01 X1 & Y2")),
                ("c", 7, Some("Door <open>"))
            ]
        );
        let c = &s.observations[3];
        assert_eq!(c.level, Some(Level::Fault));
        assert_eq!(c.condition.as_ref().unwrap().native_code.as_deref(), Some("E12"));
        assert_eq!(c.device, "Mill");
    }

    #[test]
    fn a_truncated_document_is_an_error_naming_the_offset_and_line() {
        let text = "<MTConnectStreams>\n<Header instanceId=\"1\" nextSequence=\"3\"/>\n<Streams><DeviceStream name=\"a\">";
        let e = parse(text.as_bytes()).unwrap_err();
        assert!(e.line >= 3, "{e}");
        assert!(e.to_string().contains("byte"), "{e}");
    }

    #[test]
    fn an_observation_without_sequence_is_left_out_and_the_rest_kept() {
        let s = streams(
            r#"<MTConnectStreams><Header instanceId="1" nextSequence="9"/><Streams><DeviceStream name="d"><ComponentStream>
<Events><Execution dataItemId="e" sequence="x">ACTIVE</Execution><PartCount dataItemId="p" sequence="8">12</PartCount></Events>
</ComponentStream></DeviceStream></Streams></MTConnectStreams>"#,
        );
        assert_eq!(s.observations.len(), 1);
        assert_eq!(s.rejected.len(), 1);
        assert!(s.rejected[0].contains("dataItemId=\"e\""), "{:?}", s.rejected);
    }

    #[test]
    fn data_sets_read_as_key_value_pairs() {
        let s = streams(
            r#"<MTConnectStreams><Header instanceId="1" nextSequence="9"/><Streams><DeviceStream name="d"><ComponentStream>
<Events><VariableDataSet dataItemId="v" sequence="3" count="2"><Entry key="a">1</Entry><Entry key="b">2</Entry></VariableDataSet></Events>
</ComponentStream></DeviceStream></Streams></MTConnectStreams>"#,
        );
        assert_eq!(s.observations[0].value.as_deref(), Some("a=1 b=2"));
    }

    #[test]
    fn errors_of_both_generations_are_read() {
        let v1 = r#"<MTConnectError><Header instanceId="1"/><Errors><Error errorCode="OUT_OF_RANGE">'from' must be greater than 100</Error></Errors></MTConnectError>"#;
        let v2 = r#"<MTConnectError><Header instanceId="1"/><Errors><OutOfRange><ErrorCode>OUT_OF_RANGE</ErrorCode><ErrorMessage>from too small</ErrorMessage></OutOfRange></Errors></MTConnectError>"#;
        for text in [v1, v2] {
            let Document::Error(e) = parse(text.as_bytes()).unwrap() else {
                panic!()
            };
            assert!(e.out_of_range(), "{e:?}");
            assert!(!e.errors[0].message.is_empty());
        }
    }

    #[test]
    fn hostile_documents_fail_cleanly() {
        let deep = "<MTConnectStreams>".to_owned() + &"<a>".repeat(200);
        assert!(parse(deep.as_bytes()).unwrap_err().what.contains("deeper"));
        assert!(parse(b"\xff\xfe").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"<html/>").unwrap_err().what.contains("not an MTConnect"));
        let no_next = r#"<MTConnectStreams><Header instanceId="1"/></MTConnectStreams>"#;
        assert!(
            parse(no_next.as_bytes())
                .unwrap_err()
                .what
                .contains("nextSequence")
        );
        let entity =
            r#"<MTConnectError><Header instanceId="1"/><Error errorCode="X">&xxe;</Error></MTConnectError>"#;
        assert!(parse(entity.as_bytes()).unwrap_err().what.contains("entity"));
    }
}
