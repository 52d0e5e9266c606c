//! The unified namespace on NATS subjects (`docs/connectors/nats.md`, "Subjects"):
//!
//! - samples: `<prefix>.<enterprise>.<site>.<area>...<equipment>.<attribute>`
//! - events: `<prefix>.<asset path tokens>._events.<event name>`
//! - batches (`payload = "batch"`): `<prefix>.<asset path tokens>._batch`
//! - definitions: `<prefix>.<enterprise>.<site>._definitions`
//!
//! Asset path segments are slugs (`[a-z0-9-]`) and attribute names `[a-z0-9_]`, so both
//! are valid subject tokens as they are; the prefix is validated here.

/// Why a subject prefix or filter is not valid.
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("the prefix cannot be empty".into());
    }
    for token in prefix.split('.') {
        if token.is_empty() {
            return Err("empty token (`..`, or a leading or trailing `.`)".into());
        }
        if token == "*" || token == ">" {
            return Err("a prefix cannot hold wildcards".into());
        }
        if let Some(c) = token.chars().find(|c| !valid_char(*c)) {
            return Err(format!("`{c}` is not allowed in a subject token"));
        }
    }
    if prefix.starts_with('$') {
        return Err("subjects starting with `$` are reserved for the server".into());
    }
    Ok(())
}

/// A stream's or consumer's subject filter (wildcards allowed: `*` a token, `>` the rest).
pub fn validate_filter(filter: &str) -> Result<(), String> {
    let tokens: Vec<&str> = filter.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err("empty token".into());
        }
        if *token == ">" && i + 1 != tokens.len() {
            return Err("`>` must be the last token".into());
        }
        if *token != "*"
            && *token != ">"
            && let Some(c) = token.chars().find(|c| !valid_char(*c) || *c == '*' || *c == '>')
        {
            return Err(format!("`{c}` is not allowed in a subject token"));
        }
    }
    Ok(())
}

fn valid_char(c: char) -> bool {
    !c.is_whitespace() && !c.is_control() && c != '.'
}

/// Whether every subject that `subject` stands for (a literal subject, or a filter with
/// wildcards, e.g. a stream's subjects) matches `filter`.
pub fn filter_covers(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(t)) if t != ">" => {}
            (Some(a), Some(b)) if a == b && a != "*" && a != ">" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// `asset/path` → `prefix.asset.path`.
pub fn asset_subject(prefix: &str, asset_path: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1 + asset_path.len());
    out.push_str(prefix);
    out.push('.');
    for c in asset_path.chars() {
        out.push(if c == '/' { '.' } else { c });
    }
    out
}

/// A tag's subject: `prefix.asset.path.attribute` from its path `asset/path/attribute`.
pub fn sample_subject(prefix: &str, tag_path: &str) -> String {
    asset_subject(prefix, tag_path)
}

pub fn event_subject(prefix: &str, asset_path: &str, event: &str) -> String {
    format!("{}._events.{event}", asset_subject(prefix, asset_path))
}

pub fn batch_subject(prefix: &str, asset_path: &str) -> String {
    format!("{}._batch", asset_subject(prefix, asset_path))
}

pub fn definitions_subject(prefix: &str, enterprise: &str, site: &str) -> String {
    format!("{prefix}.{enterprise}.{site}._definitions")
}

/// What a subject under `prefix` names, for the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A sample of the tag at this path (`asset/.../attribute`).
    Sample(String),
    Event {
        asset: String,
        name: &'a str,
    },
    Batch {
        asset: String,
    },
    Definitions,
}

/// Reads a subject back; `None` if it is not under `prefix` or not one of ours.
pub fn parse<'a>(prefix: &str, subject: &'a str) -> Option<Parsed<'a>> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let tokens: Vec<&str> = rest.split('.').collect();
    let join = |t: &[&str]| t.join("/");
    match tokens.as_slice() {
        [_, _, "_definitions"] => Some(Parsed::Definitions),
        [asset @ .., "_events", name] if asset.len() >= 2 => Some(Parsed::Event {
            asset: join(asset),
            name,
        }),
        [asset @ .., "_batch"] if asset.len() >= 2 => Some(Parsed::Batch { asset: join(asset) }),
        all if all.len() >= 3 && !all.iter().any(|t| t.starts_with('_')) => Some(Parsed::Sample(join(all))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_mirror_the_namespace_and_read_back() {
        let s = sample_subject("uns", "acme/plant-a/packaging/filler/good_count");
        assert_eq!(s, "uns.acme.plant-a.packaging.filler.good_count");
        assert_eq!(
            parse("uns", &s),
            Some(Parsed::Sample("acme/plant-a/packaging/filler/good_count".into()))
        );
        let e = event_subject("uns", "acme/plant-a/packaging/filler", "state_changed");
        assert_eq!(e, "uns.acme.plant-a.packaging.filler._events.state_changed");
        assert_eq!(
            parse("uns", &e),
            Some(Parsed::Event {
                asset: "acme/plant-a/packaging/filler".into(),
                name: "state_changed"
            })
        );
        let d = definitions_subject("uns", "acme", "plant-a");
        assert_eq!(parse("uns", &d), Some(Parsed::Definitions));
        let b = batch_subject("a.b", "acme/plant-a/filler");
        assert_eq!(
            parse("a.b", &b),
            Some(Parsed::Batch {
                asset: "acme/plant-a/filler".into()
            })
        );
        assert_eq!(parse("uns", "other.acme.x.y"), None);
        assert_eq!(parse("uns", "unsx.acme.x.y"), None);
        assert_eq!(parse("uns", "uns.acme._x.y"), None);
    }

    #[test]
    fn prefixes_and_filters_are_validated() {
        assert!(validate_prefix("uns").is_ok());
        assert!(validate_prefix("acme.uns").is_ok());
        for bad in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b", "$JS"] {
            assert!(validate_prefix(bad).is_err(), "{bad}");
        }
        assert!(validate_filter("uns.>").is_ok());
        assert!(validate_filter("uns.*.*._definitions").is_ok());
        assert!(validate_filter("uns.>.x").is_err());
        assert!(filter_covers("uns.>", "uns.x"));
        assert!(!filter_covers("uns.>", "uns"));
        assert!(filter_covers("uns.*.b", "uns.a.b"));
        assert!(!filter_covers("other.>", "uns.x"));
        // Filters over filters (a consumer's over a stream's subjects).
        assert!(filter_covers("uns.>", "uns.>"));
        assert!(filter_covers(">", "uns.>"));
        assert!(filter_covers("uns.*", "uns.*"));
        assert!(filter_covers("uns.>", "uns.*.b"));
        assert!(!filter_covers("uns.*", "uns.>"));
        assert!(!filter_covers("uns.a", "uns.*"));
        assert!(!filter_covers("uns.acme.>", "uns.>"));
    }
}
