//! MQTT topic names and filters: validation and matching (MQTT 3.1.1 §4.7, 5.0 §4.7).

/// Why a topic name or filter is malformed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// An empty topic or filter.
    #[error("a topic filter cannot be empty")]
    Empty,
    /// Over 65535 bytes, or a NUL character.
    #[error("a topic filter must be under 64 KiB and contain no NUL")]
    TooLongOrNul,
    /// `#` somewhere other than as the whole last level.
    #[error("`#` must be the whole last level of `{filter}`")]
    MisplacedHash { filter: String },
    /// `+` sharing a level with other characters.
    #[error("`+` must be a whole level of `{filter}`")]
    MisplacedPlus { filter: String },
    /// A wildcard in a topic name, where only filters may have them.
    #[error("`{topic}` contains a wildcard (`+` or `#`)")]
    Wildcard { topic: String },
}

/// Checks a topic filter: non-empty, `#` only as the whole last level, `+` only as a whole
/// level, no NUL, at most 65535 bytes.
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    if filter.len() > 65535 || filter.contains('\0') {
        return Err(TopicError::TooLongOrNul);
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(TopicError::MisplacedHash {
                filter: filter.to_owned(),
            });
        }
        if level.contains('+') && *level != "+" {
            return Err(TopicError::MisplacedPlus {
                filter: filter.to_owned(),
            });
        }
    }
    Ok(())
}

/// Checks a topic name (what is published to): a filter without wildcards.
pub fn validate_topic(topic: &str) -> Result<(), TopicError> {
    if topic.contains(['+', '#']) {
        return Err(TopicError::Wildcard {
            topic: topic.to_owned(),
        });
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
