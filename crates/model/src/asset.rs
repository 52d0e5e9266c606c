//! The ISA-95 equipment hierarchy: levels, asset paths and name rules.
//!
//! An asset path is the chain of slugs from the enterprise down, joined with `/`:
//! `acme-dairy/plant-a/packaging/line-1/filler`. The same string is the asset's place in the
//! unified namespace, so names are restricted to lower-case slugs that are safe in MQTT
//! topics, URLs, file names and SQL identifiers alike.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// ISA-95 equipment levels (IEC 62264-1, role-based equipment hierarchy). Levels between
/// site and equipment may be skipped; a child is always at a deeper level than its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    Enterprise,
    Site,
    Area,
    /// Work-center level: production line, process cell, production unit or storage zone.
    WorkCenter(WorkCenter),
    /// Work-unit level: work cell, unit or storage unit.
    WorkUnit(WorkUnit),
    Equipment,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkCenter {
    Line,
    ProcessCell,
    ProductionUnit,
    StorageZone,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkUnit {
    Cell,
    Unit,
    StorageUnit,
}

const LEVEL_NAMES: [(Level, &str); 11] = [
    (Level::Enterprise, "enterprise"),
    (Level::Site, "site"),
    (Level::Area, "area"),
    (Level::WorkCenter(WorkCenter::Line), "line"),
    (Level::WorkCenter(WorkCenter::ProcessCell), "process-cell"),
    (Level::WorkCenter(WorkCenter::ProductionUnit), "production-unit"),
    (Level::WorkCenter(WorkCenter::StorageZone), "storage-zone"),
    (Level::WorkUnit(WorkUnit::Cell), "cell"),
    (Level::WorkUnit(WorkUnit::Unit), "unit"),
    (Level::WorkUnit(WorkUnit::StorageUnit), "storage-unit"),
    (Level::Equipment, "equipment"),
];

impl Level {
    pub fn parse(text: &str) -> Option<Level> {
        LEVEL_NAMES.iter().find(|(_, n)| *n == text).map(|(l, _)| *l)
    }

    pub fn name(self) -> &'static str {
        LEVEL_NAMES
            .iter()
            .find(|(l, _)| *l == self)
            .map_or("equipment", |(_, n)| n)
    }

    /// All spellings accepted in configuration, for hints.
    pub fn names() -> impl Iterator<Item = &'static str> {
        LEVEL_NAMES.iter().map(|(_, n)| *n)
    }

    /// Depth in the hierarchy: enterprise 0 ... equipment 5.
    pub fn rank(self) -> u8 {
        match self {
            Level::Enterprise => 0,
            Level::Site => 1,
            Level::Area => 2,
            Level::WorkCenter(_) => 3,
            Level::WorkUnit(_) => 4,
            Level::Equipment => 5,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Level {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// Why a name was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name is longer than {max} characters")]
    TooLong { max: usize },
    #[error(
        "`{name}` is not a slug: use lower-case letters, digits and `-`, starting and ending with a letter or digit"
    )]
    NotSlug { name: String },
    #[error(
        "`{name}` is not an attribute name: use lower-case letters, digits and `_`, starting with a letter"
    )]
    NotAttributeName { name: String },
}

pub const MAX_NAME_LEN: usize = 64;

/// Checks one path segment: `[a-z0-9]([a-z0-9-]*[a-z0-9])?`, at most 64 characters.
pub fn validate_slug(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { max: MAX_NAME_LEN });
    }
    let ok_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes = name.as_bytes();
    let inner_ok = bytes.iter().all(|&c| ok_char(c) || c == b'-');
    let ends_ok = bytes.first().is_some_and(|&c| ok_char(c)) && bytes.last().is_some_and(|&c| ok_char(c));
    if inner_ok && ends_ok {
        Ok(())
    } else {
        Err(NameError::NotSlug {
            name: name.to_owned(),
        })
    }
}

/// Checks an attribute name: `[a-z][a-z0-9_]*`, at most 64 characters. Attribute names use
/// `_` where asset names use `-`, so the last segment of a tag path is unambiguous.
pub fn validate_attribute_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { max: MAX_NAME_LEN });
    }
    let bytes = name.as_bytes();
    let ok = bytes.first().is_some_and(u8::is_ascii_lowercase)
        && bytes
            .iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    if ok {
        Ok(())
    } else {
        Err(NameError::NotAttributeName {
            name: name.to_owned(),
        })
    }
}

/// A validated asset path: slugs joined by `/`, from the enterprise down.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssetPath(Arc<str>);

impl AssetPath {
    /// Validates every segment of `path`.
    pub fn parse(path: &str) -> Result<AssetPath, NameError> {
        if path.is_empty() {
            return Err(NameError::Empty);
        }
        for segment in path.split('/') {
            validate_slug(segment)?;
        }
        Ok(AssetPath(path.into()))
    }

    /// `self/child`, validating the child segment.
    pub fn child(&self, segment: &str) -> Result<AssetPath, NameError> {
        validate_slug(segment)?;
        Ok(AssetPath(format!("{}/{segment}", self.0).into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    pub fn depth(&self) -> usize {
        self.segments().count()
    }

    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    pub fn parent(&self) -> Option<AssetPath> {
        self.0
            .rsplit_once('/')
            .map(|(parent, _)| AssetPath(parent.into()))
    }

    /// True if `self` is `other` or below it.
    pub fn starts_with(&self, other: &AssetPath) -> bool {
        self.is_under_prefix(other.as_str())
    }

    /// True if `self` equals `prefix` or lies below it, on segment boundaries
    /// (`line-1` does not match `line-10`).
    pub fn is_under_prefix(&self, prefix: &str) -> bool {
        let prefix = prefix.trim_end_matches('/');
        prefix.is_empty()
            || self.0.as_ref() == prefix
            || (self.0.starts_with(prefix) && self.0.as_bytes().get(prefix.len()) == Some(&b'/'))
    }
}

impl fmt::Display for AssetPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for AssetPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Validates like [`AssetPath::parse`]: a stored or received path is checked, not trusted.
impl<'de> Deserialize<'de> for AssetPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<AssetPath, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = AssetPath;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an asset path such as \"acme/plant-a/packaging\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<AssetPath, E> {
                AssetPath::parse(text).map_err(|e| E::custom(format!("invalid asset path `{text}`: {e}")))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deserializing_validates_the_path() {
        let p: AssetPath = serde_json::from_str("\"acme/plant-a\"").unwrap();
        assert_eq!(p.as_str(), "acme/plant-a");
        let err = serde_json::from_str::<AssetPath>("\"acme//Plant\"").unwrap_err();
        assert!(err.to_string().contains("invalid asset path"), "{err}");
    }

    #[test]
    fn slugs_accept_lowercase_digits_and_inner_hyphens() {
        assert!(validate_slug("line-1").is_ok());
        assert!(validate_slug("Line-1").is_err());
        assert!(validate_slug("-line").is_err());
        assert!(validate_slug("line_1").is_err());
        assert!(validate_slug("line/1").is_err());
        assert!(validate_slug(&"a".repeat(65)).is_err());
    }

    #[test]
    fn attribute_names_are_snake_case() {
        assert!(validate_attribute_name("good_count").is_ok());
        assert!(validate_attribute_name("good-count").is_err());
        assert!(validate_attribute_name("1count").is_err());
    }

    #[test]
    fn prefix_matching_respects_segment_boundaries() {
        let p = AssetPath::parse("acme/plant-a/packaging/line-10/filler").unwrap();
        assert!(p.is_under_prefix("acme/plant-a/packaging"));
        assert!(p.is_under_prefix("acme/plant-a/packaging/"));
        assert!(!p.is_under_prefix("acme/plant-a/packaging/line-1"));
        assert!(p.is_under_prefix(""));
    }

    #[test]
    fn parent_and_name_split_the_last_segment() {
        let p = AssetPath::parse("acme/plant-a/reception").unwrap();
        assert_eq!(p.name(), "reception");
        assert_eq!(p.parent().unwrap().as_str(), "acme/plant-a");
        assert_eq!(AssetPath::parse("acme").unwrap().parent(), None);
    }

    #[test]
    fn levels_rank_from_enterprise_to_equipment() {
        assert!(Level::parse("line").unwrap().rank() < Level::parse("cell").unwrap().rank());
        assert_eq!(Level::parse("process-cell").unwrap().rank(), 3);
        assert_eq!(Level::parse("shelf"), None);
    }
}
