//! The address syntax bindings use: a Logix tag path, optionally with an element count.
//!
//! ```text
//! Speed                      a controller-scoped tag
//! Program:MainProgram.Speed  a program-scoped tag
//! Count[3]                   element 3 of an array
//! Count[0]{10}               10 elements from element 0 (an array value)
//! Grid[2,1]                  an element of a two-dimensional array
//! Palletizer.Lane[3].Cases   a member of an element of a member of a UDT tag
//! ```
//!
//! A path becomes the request path (EPATH) of a Read Tag / Write Tag service: one ANSI
//! extended symbolic segment per name, one member (element) segment per index.

use std::fmt;

use backplane_config::AddressError;

/// Logix names are at most 40 characters.
pub const MAX_NAME: usize = 40;
/// Elements one address may read; larger arrays are read in parts (several addresses).
pub const MAX_COUNT: u16 = 1000;

/// One step of a tag path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    Name(String),
    Index(u32),
}

/// A parsed address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TagPath {
    pub segments: Vec<Segment>,
    /// Elements read (`{N}`), 1 without.
    pub count: u16,
}

fn error(message: String, hint: &str) -> AddressError {
    AddressError {
        message,
        hint: Some(hint.to_owned()),
    }
}

const HINT: &str = "write a Logix tag path, e.g. Speed, Count[3], Count[0]{10}, Palletizer.Lane[2].Cases or Program:Main.Speed";

fn valid_name(name: &str, first: bool) -> bool {
    let body = if first {
        // `Program:NAME` scopes a tag to a program.
        match name.split_once(':') {
            Some((scope, rest)) if scope.eq_ignore_ascii_case("program") => rest,
            Some(_) => return false,
            None => name,
        }
    } else {
        name
    };
    let mut chars = body.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_NAME + "Program:".len()
        && body.len() <= MAX_NAME
}

impl TagPath {
    pub fn parse(text: &str) -> Result<TagPath, AddressError> {
        let text = text.trim();
        let (path, count) = match text.strip_suffix('}').and_then(|t| t.rsplit_once('{')) {
            Some((path, n)) => {
                let count = n
                    .trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (1..=MAX_COUNT).contains(c))
                    .ok_or_else(|| {
                        error(
                            format!("element count `{{{n}}}` in `{text}` is not 1 to {MAX_COUNT}"),
                            "read larger arrays with several addresses, e.g. Data[0]{500} and Data[500]{500}",
                        )
                    })?;
                (path, count)
            }
            None => (text, 1),
        };
        if path.is_empty() {
            return Err(error("an empty tag path".into(), HINT));
        }
        let mut segments = Vec::new();
        let mut rest = path;
        let mut first = true;
        while !rest.is_empty() {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let (name, after) = rest.split_at(end);
            if !valid_name(name, first) {
                return Err(error(
                    format!("`{name}` in `{text}` is not a Logix tag or member name"),
                    HINT,
                ));
            }
            segments.push(Segment::Name(name.to_owned()));
            first = false;
            rest = after;
            while let Some(inner) = rest.strip_prefix('[') {
                let Some((indexes, after)) = inner.split_once(']') else {
                    return Err(error(format!("`[` without `]` in `{text}`"), HINT));
                };
                for index in indexes.split(',') {
                    let i = index
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| error(format!("`{index}` in `{text}` is not an array index"), HINT))?;
                    segments.push(Segment::Index(i));
                }
                rest = after;
            }
            if let Some(after) = rest.strip_prefix('.') {
                if after.is_empty() {
                    return Err(error(format!("`{text}` ends with `.`"), HINT));
                }
                rest = after;
            } else if !rest.is_empty() {
                return Err(error(format!("unexpected `{rest}` in `{text}`"), HINT));
            }
        }
        if count > 1 && !matches!(segments.last(), Some(Segment::Index(_))) {
            return Err(error(
                format!("`{text}` reads {count} elements but names no first element"),
                "give the first element: Count[0]{10}",
            ));
        }
        Ok(TagPath { segments, count })
    }

    /// The request path (EPATH) naming the tag or element.
    pub fn epath(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.epath_len());
        for segment in &self.segments {
            match segment {
                Segment::Name(name) => {
                    let bytes = name.as_bytes();
                    out.push(0x91);
                    out.push(bytes.len().min(255) as u8);
                    out.extend_from_slice(bytes.get(..255.min(bytes.len())).unwrap_or_default());
                    if bytes.len() % 2 == 1 {
                        out.push(0);
                    }
                }
                Segment::Index(i) => match *i {
                    i @ 0..=0xFF => out.extend_from_slice(&[0x28, i as u8]),
                    i @ 0x100..=0xFFFF => {
                        out.extend_from_slice(&[0x29, 0]);
                        out.extend_from_slice(&(i as u16).to_le_bytes());
                    }
                    i => {
                        out.extend_from_slice(&[0x2A, 0]);
                        out.extend_from_slice(&i.to_le_bytes());
                    }
                },
            }
        }
        out
    }

    /// Bytes of [`TagPath::epath`], without building it.
    pub fn epath_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Name(n) => 2 + n.len() + n.len() % 2,
                Segment::Index(0..=0xFF) => 2,
                Segment::Index(0x100..=0xFFFF) => 4,
                Segment::Index(_) => 6,
            })
            .sum()
    }

    /// A name for a model attribute: `Palletizer.Lane[3].Cases` → `palletizer_lane_3_cases`.
    pub fn attribute_name(&self) -> String {
        let mut out = String::new();
        for s in &self.segments {
            let part = match s {
                Segment::Name(n) => n.replace(':', "_").to_ascii_lowercase(),
                Segment::Index(i) => i.to_string(),
            };
            if !out.is_empty() {
                out.push('_');
            }
            out.push_str(&part);
        }
        out
    }
}

impl fmt::Display for TagPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut open = false;
        for (i, s) in self.segments.iter().enumerate() {
            match s {
                Segment::Name(n) => {
                    if open {
                        f.write_str("]")?;
                        open = false;
                    }
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(n)?;
                }
                Segment::Index(x) => {
                    f.write_str(if open { "," } else { "[" })?;
                    write!(f, "{x}")?;
                    open = true;
                }
            }
        }
        if open {
            f.write_str("]")?;
        }
        if self.count > 1 {
            write!(f, "{{{}}}", self.count)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_parse_print_back_and_encode_as_symbolic_and_member_segments() {
        for text in [
            "Speed",
            "Program:MainProgram.Speed",
            "Count[3]",
            "Count[0]{10}",
            "Grid[2,1]",
            "Palletizer.Lane[3].Cases",
        ] {
            assert_eq!(TagPath::parse(text).unwrap().to_string(), text);
        }
        let p = TagPath::parse("Ab.Lane[3].C").unwrap();
        assert_eq!(
            p.epath(),
            vec![
                0x91, 2, b'A', b'b', 0x91, 4, b'L', b'a', b'n', b'e', 0x28, 3, 0x91, 1, b'C', 0
            ]
        );
        assert_eq!(p.epath_len(), p.epath().len());
        let big = TagPath::parse("X[300]").unwrap();
        assert_eq!(big.epath(), vec![0x91, 1, b'X', 0, 0x29, 0, 0x2C, 0x01]);
        let huge = TagPath::parse("X[70000]").unwrap();
        assert_eq!(huge.epath_len(), 10);
        assert_eq!(p.attribute_name(), "ab_lane_3_c");
    }

    #[test]
    fn bad_paths_are_refused_with_the_reason() {
        for (text, needle) in [
            ("", "empty"),
            ("1abc", "not a Logix tag"),
            ("A..B", "not a Logix tag"),
            ("A[", "without `]`"),
            ("A[x]", "not an array index"),
            ("A{5}", "names no first element"),
            ("A[0]{0}", "not 1 to 1000"),
            ("A[0]{5000}", "not 1 to 1000"),
            ("Other:Main.X", "not a Logix tag"),
            ("A.", "ends with"),
            ("A[1]b", "unexpected"),
            ("A]b", "not a Logix tag"),
        ] {
            let e = TagPath::parse(text).unwrap_err();
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
        assert!(TagPath::parse(&"a".repeat(41)).is_err());
    }
}
