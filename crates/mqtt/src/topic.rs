//! MQTT topic names and filters: validation and matching (MQTT 3.1.1 §4.7, 5.0 §4.7).

/// Checks a topic filter: non-empty, `#` only as the whole last level, `+` only as a whole
/// level, no NUL, at most 65535 bytes.
pub fn validate_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("a topic filter cannot be empty".into());
    }
    if filter.len() > 65535 || filter.contains('\0') {
        return Err("a topic filter must be under 64 KiB and contain no NUL".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!("`#` must be the whole last level of `{filter}`"));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("`+` must be a whole level of `{filter}`"));
        }
    }
    Ok(())
}

/// Checks a topic name (what is published to): a filter without wildcards.
pub fn validate_topic(topic: &str) -> Result<(), String> {
    if topic.contains(['+', '#']) {
        return Err(format!("`{topic}` contains a wildcard (`+` or `#`)"));
    }
    validate_filter(topic)
}

/// Whether `topic` matches `filter`. Wildcards at the first level do not match topics that
/// start with `$` (e.g. `$SYS`), as the specification requires.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_levels_as_the_specification_says() {
        assert!(matches("a/+/c", "a/b/c"));
        assert!(!matches("a/+/c", "a/b/d"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("#", "a/b"));
        assert!(!matches("#", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(matches("+/+", "/x"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
    }

    #[test]
    fn malformed_filters_are_refused() {
        assert!(validate_filter("a/#/b").is_err());
        assert!(validate_filter("a/b#").is_err());
        assert!(validate_filter("a/b+/c").is_err());
        assert!(validate_filter("").is_err());
        assert!(validate_filter("a/+/#").is_ok());
        assert!(validate_topic("a/+").is_err());
        assert!(validate_topic("a/b").is_ok());
    }
}
