//! Names for what tests leave on shared services (topic prefixes, Sparkplug groups,
//! gateway and client ids), so parallel and repeated runs do not see each other.

use std::time::{SystemTime, UNIX_EPOCH};

/// `what` followed by this process's id and the current sub-second nanoseconds: a name no
/// other test run uses.
pub fn unique(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .subsec_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}
