//! Options of the log and of its readers.

use std::time::Duration;

/// When appended data is forced to the disk (fsync).
///
/// Whatever the policy, [`crate::Log::append`] hands the record to the operating system before
/// it returns, so a killed process (kill -9, panic, OOM kill) loses nothing that was appended.
/// The policy decides what a power loss or kernel crash may take:
/// - `Always`: nothing [`crate::Log::append`] returned for. Every append waits for an fsync
///   (concurrent appenders share one), so appends are bounded by the disk's fsync rate.
/// - `Interval(d)`: records appended during the last `d` before the power loss (plus the time one
///   fsync takes). A background thread fsyncs the active segment every `d` when it has new data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    Always,
    Interval(Duration),
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Interval(Duration::from_millis(100))
    }
}

/// What happens when a reader's backlog reaches its quota.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// The reader loses its oldest data, a whole segment at a time; the loss is counted in
    /// [`crate::ReaderStats::dropped_seqs`] and logged as a warning. The gateway keeps
    /// collecting and the newest data reaches the destination when it comes back.
    #[default]
    DropOldest,
    /// [`crate::Log::append`] refuses new data ([`crate::AppendError::Full`]) until the reader
    /// acknowledges enough; nothing is lost, the pressure goes back to the sources.
    Block,
}

/// Options of a [`crate::Log`].
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// A new segment file starts once the current one would grow past this many bytes. Disk is
    /// freed a whole segment at a time, so keep it well below the readers' quotas.
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: 64 << 20,
            fsync: FsyncPolicy::default(),
        }
    }
}

/// Options of one [`crate::Reader`].
#[derive(Clone, Debug)]
pub struct ReaderOptions {
    /// The most backlog (bytes of records appended and not yet acknowledged) the reader may
    /// hold on disk.
    pub quota_bytes: u64,
    pub overflow: Overflow,
    /// A record older than this at the live cursor sends the whole unread backlog to the replay
    /// lane and lets the live cursor jump to the newest data.
    pub live_lag: Duration,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            quota_bytes: 1 << 30,
            overflow: Overflow::default(),
            live_lag: Duration::from_secs(2),
        }
    }
}
