//! The lab probe ([`crate::fixtures::LabProbe`], the asset `acme/lab/area/line/probe`) on
//! an engine with a protocol's kind: starting it, reading its values, writing through the
//! gate. Shared by the protocol crates' tests against their real peers.

use std::path::Path;
use std::time::Duration;

use backplane_engine::{Engine, EngineHandle, Latest, MachineWrite, Registry, WriteStatus};
use backplane_model::Value;
use backplane_security::{AuthMethod, Identity, Role};

use crate::engine as support;

/// Starts an engine on `config` with `registry`'s kinds; restarts after 100–500 ms, as
/// peers need a moment to come back.
pub fn start_engine(config: &str, dir: &Path, registry: &Registry) -> Engine {
    let options = support::backoff(Duration::from_millis(100), Duration::from_millis(500));
    support::start_with(config, dir, registry, options)
}

pub fn latest(handle: &EngineHandle, attribute: &str) -> Option<Latest> {
    support::latest(handle, &format!("acme/lab/area/line/probe/{attribute}"))
}

/// The value, when it is good.
pub fn good(handle: &EngineHandle, attribute: &str) -> Option<Value> {
    latest(handle, attribute)
        .filter(|l| l.sample.quality.is_good())
        .and_then(|l| l.sample.value)
}

/// Polls every 20 ms for up to 30 s; the bound is a safety net, not a timing assertion.
pub async fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    support::eventually_every(what, Duration::from_secs(30), Duration::from_millis(20), check).await
}

/// Writes through the engine's write gate as an engineer; the read-back, or why not.
pub async fn write(handle: &EngineHandle, attribute: &str, value: Value) -> Result<Option<Value>, String> {
    let report = handle
        .write(MachineWrite {
            tag: format!("acme/lab/area/line/probe/{attribute}"),
            value,
            dry_run: false,
            who: Identity::new("test", Role::Engineer, AuthMethod::Password),
            from: "test".into(),
        })
        .await;
    match report.status {
        WriteStatus::Done => Ok(report.read_back),
        WriteStatus::Refused { rule, reason } => Err(format!("{rule}: {reason}")),
        WriteStatus::Failed { reason, .. } => Err(reason),
        WriteStatus::DryRun => Err("dry run".into()),
    }
}

/// User + system CPU time of the calling thread, from /proc/thread-self/stat (Linux; clock
/// ticks of 10 ms, so measure over seconds). For benches that report CPU per value.
pub fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // After the command name (in parentheses) come state, ppid, ...: utime is the 12th
    // field from there, stime the 13th (proc(5): fields 14 and 15).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((field(11) + field(12)) * 10) // USER_HZ is 100 on Linux
}
