//! The gateway under `valgrind --tool=callgrind` (`--callgrind FILE`): instruction counts
//! are repeatable on a noisy machine where CPU seconds are not. Instrumentation is off
//! through start-up and warm-up and on for the measured window only, so the profile is
//! the steady path and its total divided by the window's samples is instructions per sample.

use std::path::Path;
use std::process::{Command, Stdio};

/// `valgrind --tool=callgrind ... bin`, writing its profile to `out` when the gateway exits.
pub fn command(bin: &Path, out: &Path) -> Command {
    let mut command = Command::new("valgrind");
    command
        .arg("--tool=callgrind")
        .arg("--instr-atstart=no")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(bin);
    command
}

/// Turns instrumentation of the running gateway on or off (`callgrind_control -i`).
pub fn instrument(pid: u32, on: bool) -> Result<(), String> {
    let status = Command::new("callgrind_control")
        .arg("-i")
        .arg(if on { "on" } else { "off" })
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("callgrind_control: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("callgrind_control -i: {status}"))
    }
}

/// The total instructions (`Ir`) of a callgrind profile: its `totals:` line, else its
/// `summary:` line (which callgrind writes as 0 when instrumentation starts off).
pub fn total_instructions(profile: &str) -> Option<u64> {
    let line = |key: &str| {
        profile.lines().find_map(|line| {
            let rest = line.strip_prefix(key)?;
            rest.split_whitespace().next()?.parse().ok()
        })
    };
    line("totals:").or_else(|| line("summary:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_comes_from_the_totals_line() {
        let profile = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 0\nfl=(1) a.rs\nfn=(1) main\n3 5\n\ntotals: 123456789\n";
        assert_eq!(total_instructions(profile), Some(123_456_789));
        assert_eq!(total_instructions("events: Ir\nsummary: 42\n"), Some(42));
        assert_eq!(total_instructions("events: Ir\n"), None);
    }
}
