//! The address syntax bindings use: an OPC UA node id in its standard string form
//! (OPC UA Part 6, 5.3.1.10), optionally preceded by Backplane's own options.
//!
//! ```text
//! [group=NAME;][field=NAME;](ns=N;|nsu=URI;)(i=NUMBER|s=STRING|g=GUID|b=BASE64)
//! ```
//!
//! Options come first because a string identifier (`s=...`) runs to the end of the text
//! and may contain any character, `;` and `@` included.

use std::fmt;
use std::str::FromStr;

use backplane_config::AddressError;
use opcua::types::{ByteString, Guid, Identifier, NodeId, UAString};

/// Which namespace a node id lives in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// `ns=N`: an index into the server's namespace array (0 when omitted).
    Index(u16),
    /// `nsu=URI`: resolved against the server's namespace array after connecting, so the
    /// address survives a server that renumbers its namespaces.
    Uri(String),
}

/// One parsed address.
#[derive(Clone, Debug, PartialEq)]
pub struct Address {
    pub namespace: Namespace,
    pub identifier: Identifier,
    /// A subscription or poll group of the source (`group=NAME;`); the default group when
    /// `None`.
    pub group: Option<String>,
    /// For a structure value: the field to deliver (`field=NAME;`, nested as `a.b`).
    pub field: Option<String>,
}

fn error(message: impl Into<String>, hint: impl Into<String>) -> AddressError {
    AddressError {
        message: message.into(),
        hint: Some(hint.into()),
    }
}

const TYPE_HINT: &str = "s= string, i= number, g= GUID, b= base64 ByteString";

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Address {
    /// Parses an address; errors say what is wrong and how to write it.
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        let original = text;
        let text = text.trim();
        if text.is_empty() {
            return Err(error(
                "empty address",
                "write a node id, e.g. ns=2;s=Filler2.Speed or i=2258",
            ));
        }
        if text.starts_with('/') || text.starts_with("Objects/") {
            return Err(error(
                format!("`{original}` looks like a browse path; addresses are node ids"),
                "find the node id with `backplane browse opc.tcp://HOST:PORT --node PATH`",
            ));
        }
        let mut rest = text;
        let mut namespace: Option<Namespace> = None;
        let mut group = None;
        let mut field = None;
        loop {
            if let Some(value) = identifier_part(rest) {
                let identifier = parse_identifier(rest, value)?;
                return Ok(Address {
                    namespace: namespace.unwrap_or(Namespace::Index(0)),
                    identifier,
                    group,
                    field,
                });
            }
            let Some((segment, tail)) = rest.split_once(';') else {
                return Err(missing_identifier(original, rest, namespace.is_some()));
            };
            let Some((key, value)) = segment.split_once('=') else {
                return Err(missing_identifier(original, rest, namespace.is_some()));
            };
            match key {
                "ns" | "nsu" if namespace.is_some() => {
                    return Err(error(
                        format!("`{original}` names its namespace twice"),
                        "give either ns=INDEX or nsu=URI, once",
                    ));
                }
                "ns" => {
                    let index = value.parse::<u16>().map_err(|_| {
                        error(
                            format!("namespace index `{value}` is not a number from 0 to 65535"),
                            "for a namespace URI write nsu=URI;s=..., e.g. nsu=urn:vendor:plc;s=Speed",
                        )
                    })?;
                    namespace = Some(Namespace::Index(index));
                }
                "nsu" => {
                    if value.is_empty() {
                        return Err(error(
                            "`nsu=` needs a namespace URI",
                            "e.g. nsu=urn:vendor:plc;s=Speed",
                        ));
                    }
                    namespace = Some(Namespace::Uri(value.to_owned()));
                }
                "group" => {
                    if !valid_name(value) {
                        return Err(error(
                            format!("invalid group name `{value}`"),
                            "lower-case letters, digits, `_` and `-`, e.g. group=fast;ns=2;s=Speed",
                        ));
                    }
                    if namespace.is_some() {
                        return Err(options_first(original));
                    }
                    group = Some(value.to_owned());
                }
                "field" => {
                    if value.is_empty() || value.split('.').any(str::is_empty) {
                        return Err(error(
                            format!("invalid field `{value}`"),
                            "name a field of the structure, e.g. field=Speed or field=Motor.Current",
                        ));
                    }
                    if namespace.is_some() {
                        return Err(options_first(original));
                    }
                    field = Some(value.to_owned());
                }
                other => {
                    let lower = other.to_ascii_lowercase();
                    let hint = if ["ns", "nsu", "i", "s", "g", "b"].contains(&lower.as_str()) {
                        format!("keys are lower case: `{lower}=`")
                    } else {
                        format!("a node id is ns=N;{TYPE_HINT}; options before it: group=NAME; field=NAME;")
                    };
                    return Err(error(format!("unknown part `{other}=` in `{original}`"), hint));
                }
            }
            rest = tail;
        }
    }

    /// The node id, with the namespace index `nsu=` resolves to (`None` while unresolved).
    pub fn node_id(&self, resolve: impl Fn(&str) -> Option<u16>) -> Option<NodeId> {
        let ns = match &self.namespace {
            Namespace::Index(i) => *i,
            Namespace::Uri(uri) => resolve(uri)?,
        };
        Some(NodeId::new(ns, self.identifier.clone()))
    }

    /// The node id part alone, in standard form (`ns=2;s=X`, `nsu=URI;i=5`).
    pub fn node_text(&self) -> String {
        let ns = match &self.namespace {
            Namespace::Index(0) => String::new(),
            Namespace::Index(i) => format!("ns={i};"),
            Namespace::Uri(u) => format!("nsu={u};"),
        };
        format!("{ns}{}", identifier_text(&self.identifier))
    }
}

/// `i=5`, `s=Name`, `g=...`, `b=...`.
pub fn identifier_text(identifier: &Identifier) -> String {
    match identifier {
        Identifier::Numeric(n) => format!("i={n}"),
        Identifier::String(s) => format!("s={}", s.as_ref()),
        Identifier::Guid(g) => format!("g={g}"),
        Identifier::ByteString(b) => format!("b={}", b.as_base64()),
    }
}

/// The standard text of a node id (`ns=2;s=X`; `i=85` in namespace 0).
pub fn node_id_text(node: &NodeId) -> String {
    if node.namespace == 0 {
        identifier_text(&node.identifier)
    } else {
        format!("ns={};{}", node.namespace, identifier_text(&node.identifier))
    }
}

fn options_first(original: &str) -> AddressError {
    error(
        format!("in `{original}`, options come before the node id"),
        "write e.g. group=fast;ns=2;s=Speed",
    )
}

/// The value of an identifier part if `text` starts with one (`i=`, `s=`, `g=`, `b=`).
fn identifier_part(text: &str) -> Option<&str> {
    ["i=", "s=", "g=", "b="].iter().find_map(|p| text.strip_prefix(p))
}

fn parse_identifier(text: &str, value: &str) -> Result<Identifier, AddressError> {
    let kind = text.as_bytes().first().copied().unwrap_or(b's');
    match kind {
        b'i' => value.parse::<u32>().map(Identifier::Numeric).map_err(|_| {
            error(
                format!("`i={value}`: a numeric identifier is a number from 0 to 4294967295"),
                format!("for a name use s=, e.g. s={value}"),
            )
        }),
        b'g' => Guid::from_str(value).map(Identifier::Guid).map_err(|_| {
            error(
                format!("`g={value}` is not a GUID"),
                "write g=09087e75-8e5e-499b-954f-f2a9603db28a",
            )
        }),
        b'b' => {
            let bytes = ByteString::from_base64(value).filter(|b| !b.is_null() && !b.is_empty());
            bytes.map(Identifier::ByteString).ok_or_else(|| {
                error(
                    format!("`b={value}` is not base64"),
                    "an opaque identifier is base64, e.g. b=M/RbKBsRVkePCePcx24oRA==",
                )
            })
        }
        _ => {
            if value.is_empty() {
                return Err(error("`s=` needs a name", "e.g. ns=2;s=Filler2.Speed"));
            }
            Ok(Identifier::String(UAString::from(value)))
        }
    }
}

fn missing_identifier(original: &str, rest: &str, has_namespace: bool) -> AddressError {
    let example = if has_namespace {
        format!(
            "did you mean `{}s={rest}`?",
            &original[..original.len() - rest.len()]
        )
    } else {
        format!("did you mean `ns=2;s={rest}`? (the namespace index is the server's)")
    };
    error(
        format!("`{original}` has no identifier type ({TYPE_HINT})"),
        example,
    )
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(g) = &self.group {
            write!(f, "group={g};")?;
        }
        if let Some(field) = &self.field {
            write!(f, "field={field};")?;
        }
        f.write_str(&self.node_text())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hint(text: &str) -> String {
        let e = Address::parse(text).unwrap_err();
        format!("{} | {}", e.message, e.hint.unwrap_or_default())
    }

    #[test]
    fn standard_node_ids_parse_and_print_back() {
        for text in [
            "ns=2;s=Filler2.Speed",
            "i=2258",
            "ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a",
            "nsu=urn:acme:plc;s=Line 2;Speed@x",
            "ns=1;b=M/RbKBsRVkePCePcx24oRA==",
            "group=fast;field=Motor.Current;ns=4;i=7",
        ] {
            assert_eq!(Address::parse(text).unwrap().to_string(), text);
        }
        let a = Address::parse("nsu=urn:acme:plc;s=Speed").unwrap();
        assert_eq!(a.namespace, Namespace::Uri("urn:acme:plc".into()));
        assert_eq!(a.node_id(|_| None), None);
        assert_eq!(a.node_id(|_| Some(5)), Some(NodeId::new(5, "Speed")));
        assert_eq!(
            Address::parse("i=2258").unwrap().node_id(|_| None),
            Some(NodeId::new(0, 2258u32))
        );
    }

    #[test]
    fn string_identifiers_keep_every_character() {
        let a = Address::parse("ns=2;s=a;b=c;group=x").unwrap();
        assert_eq!(a.identifier, Identifier::String("a;b=c;group=x".into()));
        assert_eq!(a.group, None);
    }

    #[test]
    fn mistakes_get_precise_hints() {
        assert!(hint("Filler2.Speed").contains("did you mean `ns=2;s=Filler2.Speed`?"));
        assert!(hint("ns=2;Filler2.Speed").contains("did you mean `ns=2;s=Filler2.Speed`?"));
        assert!(hint("ns=x;s=A").contains("nsu=URI"));
        assert!(hint("i=abc").contains("for a name use s="));
        assert!(hint("g=1234").contains("not a GUID"));
        assert!(hint("NS=2;s=A").contains("lower case: `ns=`"));
        assert!(hint("ns=2;nsu=u;s=A").contains("twice"));
        assert!(hint("ns=2;group=fast;s=A").contains("options come before"));
        assert!(hint("group=Fast;s=A").contains("lower-case"));
        assert!(hint("field=;s=A").contains("invalid field"));
        assert!(hint("/Objects/Filler2/Speed").contains("backplane browse"));
        assert!(hint("ns=2;s=").contains("needs a name"));
        assert!(hint("").contains("empty"));
        assert!(hint("b=!!!").contains("base64"));
    }
}
