//! The downtime reason tree from `[downtime_reasons]`: codes are paths such as
//! `mechanical/jam`; each node says whether a downtime with that reason is planned.

use std::collections::HashMap;

use backplane_config::production::ReasonSpec;
use backplane_config::reader::edit_distance;

/// Reason lookups by code.
#[derive(Clone, Debug, Default)]
pub struct ReasonTree {
    reasons: Vec<ReasonSpec>,
    index: HashMap<String, usize>,
}

impl ReasonTree {
    pub fn new(reasons: &[ReasonSpec]) -> ReasonTree {
        ReasonTree {
            reasons: reasons.to_vec(),
            index: reasons
                .iter()
                .enumerate()
                .map(|(i, r)| (r.code.clone(), i))
                .collect(),
        }
    }

    pub fn get(&self, code: &str) -> Option<&ReasonSpec> {
        self.index.get(code).and_then(|&i| self.reasons.get(i))
    }

    /// Every reason, parents before children.
    pub fn all(&self) -> &[ReasonSpec] {
        &self.reasons
    }

    /// The direct children of `code` (the top level for `""`).
    pub fn children<'a>(&'a self, code: &'a str) -> impl Iterator<Item = &'a ReasonSpec> + 'a {
        self.reasons
            .iter()
            .filter(move |r| match r.code.rsplit_once('/') {
                Some((parent, _)) => parent == code,
                None => code.is_empty(),
            })
    }

    /// The closest code to `code`, for "did you mean" hints.
    pub(crate) fn closest(&self, code: &str) -> Option<&str> {
        self.reasons
            .iter()
            .map(|r| (edit_distance(code, &r.code), r.code.as_str()))
            .filter(|(d, _)| *d <= 3)
            .min_by_key(|(d, _)| *d)
            .map(|(_, c)| c)
            .or_else(|| {
                // `jam` for `mechanical/jam`.
                let leaf = code.rsplit('/').next().unwrap_or(code);
                self.reasons
                    .iter()
                    .find(|r| r.code.rsplit('/').next() == Some(leaf))
                    .map(|r| r.code.as_str())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str, planned: bool) -> ReasonSpec {
        ReasonSpec {
            code: code.into(),
            description: None,
            planned,
        }
    }

    #[test]
    fn lookups_and_children_follow_the_paths() {
        let tree = ReasonTree::new(&[
            reason("mechanical", false),
            reason("mechanical/jam", false),
            reason("mechanical/changeover", true),
            reason("material", false),
        ]);
        assert!(tree.get("mechanical/changeover").unwrap().planned);
        assert!(tree.get("jam").is_none());
        let top: Vec<&str> = tree.children("").map(|r| r.code.as_str()).collect();
        assert_eq!(top, ["mechanical", "material"]);
        assert_eq!(tree.children("mechanical").count(), 2);
        assert_eq!(tree.closest("mechanical/jamm"), Some("mechanical/jam"));
        assert_eq!(tree.closest("jam"), Some("mechanical/jam"));
    }
}
