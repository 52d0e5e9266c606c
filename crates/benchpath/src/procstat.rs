//! CPU time and resident memory of another process, read from /proc (Linux only).

use std::sync::OnceLock;

/// Clock ticks per second of the `utime`/`stime` fields (`getconf CLK_TCK`; 100 on every
/// Linux this runs on, asked once so an odd kernel does not skew every figure).
fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// User + system CPU seconds the process has used so far (all its threads).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_split(pid).map(|(user, system)| user + system)
}

/// User and system (kernel) CPU seconds the process has used so far, apart.
pub fn cpu_split(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields count from the last `)`.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the line; utime 14 and stime 15 (1-based).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime / ticks_per_second(), stime / ticks_per_second()))
}

/// CPU seconds all the process's threads have run so far, to the nanosecond (the first
/// field of each `/proc/PID/task/TID/schedstat`), where `utime` and `stime` count 10 ms
/// ticks: a process that runs a few milliseconds a second needs this. Threads that ended
/// are not counted.
pub fn run_seconds(pid: u32) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut nanos: u64 = 0;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        nanos += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(nanos as f64 / 1e9)
}

/// Resident set size now (`VmRSS`) and its peak over the process's life (`VmHWM`), bytes.
pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].split_whitespace().next()?.parse::<u64>().ok()
    };
    Some(Memory {
        rss: kib("VmRSS:")? * 1024,
        peak: kib("VmHWM:")? * 1024,
    })
}

/// Resident memory of a process, bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss: u64,
    pub peak: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_resident_memory() {
        let pid = std::process::id();
        // Burn 50 ms of CPU so the figure cannot stay at zero ticks. Counted in CPU, not
        // wall time: on a busy machine 50 ms of wall time held less than 50 ms of CPU.
        // The 10 s bound ends the loop if `run_seconds` never counts it (the test fails).
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while run_seconds(pid).is_none_or(|c| c < 0.05)
            && start.elapsed() < std::time::Duration::from_secs(10)
        {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            std::hint::black_box(x);
        }
        assert!(cpu_seconds(pid).is_some_and(|c| c > 0.0));
        assert!(
            run_seconds(pid).is_some_and(|c| c >= 0.05),
            "the 50 ms just burnt"
        );
        let m = memory(pid).expect("own /proc/self/status");
        assert!(m.rss > 0 && m.peak >= m.rss);
    }

    #[test]
    fn a_process_that_does_not_exist_has_no_figures() {
        // Above the kernel's pid_max (at most 2^22).
        assert!(cpu_seconds(u32::MAX).is_none());
        assert!(run_seconds(u32::MAX).is_none());
        assert!(memory(u32::MAX).is_none());
    }
}
