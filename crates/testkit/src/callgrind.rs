//! Benchmarks that run under `valgrind --tool=callgrind` count only their window: they
//! zero the counters at its start and dump them at its end.

use std::process::Command;

/// Runs `callgrind_control ARG PID` on this process when the environment variable `switch`
/// is set (the benchmark runs under callgrind); otherwise does nothing.
pub fn control(switch: &str, arg: &str) {
    if std::env::var_os(switch).is_some() {
        let done = Command::new("callgrind_control")
            .args([arg, &std::process::id().to_string()])
            .output()
            .unwrap();
        assert!(done.status.success(), "callgrind_control {arg}: {done:?}");
    }
}
