//! A tag's path, `asset/attribute`, made from its two parts where it is needed. The
//! topology keeps no string of it per tag: at 100 000 tags a copy of every path was an
//! allocation and 64 bytes a tag. Attribute names have no `/` (`validate_attribute_name`),
//! so a path splits back at its last `/`.

use std::fmt;

use bytes::BufMut;

/// The path of one tag, borrowed from its asset's path and its attribute's name.
#[derive(Clone, Copy, Debug)]
pub struct TagPath<'a> {
    pub asset: &'a str,
    pub attribute: &'a str,
}

impl<'a> TagPath<'a> {
    /// `path` split at its last `/`; `None` without one.
    pub fn split(path: &'a str) -> Option<TagPath<'a>> {
        let (asset, attribute) = path.rsplit_once('/')?;
        Some(TagPath { asset, attribute })
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.asset.len() + 1 + self.attribute.len()
    }

    /// Never: an asset path is never empty. For clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `path` (UTF-8 or not) spells this path.
    pub fn is(&self, path: &[u8]) -> bool {
        path.len() == self.len()
            && path.starts_with(self.asset.as_bytes())
            && path[self.asset.len()] == b'/'
            && path.ends_with(self.attribute.as_bytes())
    }

    /// Appends the path's bytes to `out`.
    pub fn put<B: BufMut>(&self, out: &mut B) {
        out.put_slice(self.asset.as_bytes());
        out.put_u8(b'/');
        out.put_slice(self.attribute.as_bytes());
    }

    /// Appends the path to `out`.
    pub fn push_to(&self, out: &mut String) {
        out.reserve(self.len());
        out.push_str(self.asset);
        out.push('/');
        out.push_str(self.attribute);
    }
}

impl fmt::Display for TagPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.asset, self.attribute)
    }
}

/// As the string it spells.
impl serde::Serialize for TagPath<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl PartialEq<str> for TagPath<'_> {
    fn eq(&self, other: &str) -> bool {
        self.is(other.as_bytes())
    }
}

impl PartialEq<&str> for TagPath<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.is(other.as_bytes())
    }
}

impl PartialEq for TagPath<'_> {
    fn eq(&self, other: &TagPath<'_>) -> bool {
        self.asset == other.asset && self.attribute == other.attribute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_its_asset_and_attribute_joined_and_splits_back_at_the_last_slash() {
        let p = TagPath {
            asset: "acme/plant/filler",
            attribute: "temp",
        };
        assert_eq!(p.to_string(), "acme/plant/filler/temp");
        assert_eq!(p.len(), "acme/plant/filler/temp".len());
        assert!(p == "acme/plant/filler/temp");
        assert!(p != "acme/plant/filler/tem");
        assert!(p != "acme/plant/fillerxtemp");
        assert!(p != "acme/plant/filler/temp/");
        let mut s = String::from(">");
        p.push_to(&mut s);
        assert_eq!(s, ">acme/plant/filler/temp");
        let mut b = Vec::new();
        p.put(&mut b);
        assert_eq!(b, b"acme/plant/filler/temp");
        assert_eq!(TagPath::split("acme/plant/filler/temp"), Some(p));
        assert_eq!(TagPath::split("temp"), None);
    }
}
