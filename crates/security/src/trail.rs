//! The audit trail on disk: append-only, hash-chained JSON lines (`line.rs`), each one
//! synced to disk before [`AuditLog::record`] returns, so an acknowledged record survives
//! `kill -9` and power loss.
//!
//! Layout: `<dir>/audit-<first seq, 20 digits>.jsonl`; a new file is started once the
//! active one passes [`ROTATE_BYTES`], its first line chained to the last line of the one
//! before. Files are never deleted by the gateway: archiving them is the plant's decision.
//!
//! At open the active file is checked from its start. A torn last line (a crash in the
//! middle of a write, never acknowledged) is cut off. A line that does not verify is not
//! repaired and does not stop the gateway: a new file starts a new chain with a first
//! record `audit.chain_restarted` naming the damage, and `backplane audit verify` reports
//! both.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use backplane_model::Timestamp;

use crate::line::{self, GENESIS, MAX_LINE_BYTES};
use crate::{AuditEvent, AuditRecorder, AuditUnavailable, Outcome, create_private_dir, open_private};

/// Size at which a new file is started.
pub const ROTATE_BYTES: u64 = 64 * 1024 * 1024;

/// Most records one query returns.
pub const MAX_QUERY_RECORDS: usize = 1000;

#[derive(Debug)]
struct Active {
    file: File,
    path: PathBuf,
    size: u64,
    /// Sequence number of the last record written (0: none yet).
    seq: u64,
    /// Hash of the last record written ([`GENESIS`] before the first).
    prev: String,
}

/// The gateway's audit trail in a directory.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    rotate_bytes: u64,
    active: Mutex<Active>,
}

/// Which records a query wants; every given condition must hold.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Records with a sequence number above this (a cursor: the last one seen).
    pub after: u64,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Exact identity name.
    pub who: Option<String>,
    /// An action or the start of one (`work_order.` matches every work-order action).
    pub action: Option<String>,
    /// A target or the start of one (an asset path prefix).
    pub target: Option<String>,
    /// At most this many, capped at [`MAX_QUERY_RECORDS`].
    pub limit: usize,
}

/// The records a query found, as stored (each one a JSON object), oldest first.
#[derive(Debug, Default)]
pub struct Page {
    pub records: Vec<Vec<u8>>,
    /// Sequence number of the last record returned: pass it as `after` for the next page.
    pub last: Option<u64>,
    /// True when more records matched than were returned.
    pub more: bool,
}

pub(crate) fn file_name(first_seq: u64) -> String {
    format!("audit-{first_seq:020}.jsonl")
}

/// The trail's files in `dir`, in order.
pub fn trail_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    Ok(files(dir)?.into_iter().map(|(_, p)| p).collect())
}

/// The trail's files in order, with the sequence number each begins at.
pub(crate) fn files(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = name
            .strip_prefix("audit-")
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            found.push((seq, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Reads lines of at most [`MAX_LINE_BYTES`]; a longer one is returned cut, and fails its check.
pub(crate) fn next_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    buf.clear();
    let n = reader
        .by_ref()
        .take(MAX_LINE_BYTES as u64 + 1)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    let complete = buf.last() == Some(&b'\n');
    if complete {
        buf.pop();
    }
    Ok(Some(complete))
}

impl AuditLog {
    /// Opens (or creates) the trail in `dir`, directory mode 0700 and files 0600 on Unix.
    pub fn open(dir: &Path) -> Result<AuditLog, String> {
        AuditLog::open_rotating(dir, ROTATE_BYTES)
    }

    /// [`AuditLog::open`] with another file size at which a new file is started.
    pub fn open_rotating(dir: &Path, rotate_bytes: u64) -> Result<AuditLog, String> {
        create_private_dir(dir)
            .map_err(|e| format!("cannot create the audit directory {}: {e}", dir.display()))?;
        let existing = files(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let log = match existing.last() {
            None => AuditLog::start(dir, rotate_bytes, 1, GENESIS.to_owned())?,
            Some((first, path)) => match resume(path, *first)? {
                Ok(active) => AuditLog {
                    dir: dir.to_path_buf(),
                    rotate_bytes,
                    active: Mutex::new(active),
                },
                Err((damage, last_seq)) => {
                    tracing::error!(file = %path.display(), %damage, "the audit trail is damaged; starting a new chain (run `backplane audit verify`)");
                    let log = AuditLog::start(dir, rotate_bytes, last_seq + 1, GENESIS.to_owned())?;
                    log.record(AuditEvent {
                        who: None,
                        from: "gateway".into(),
                        action: "audit.chain_restarted".into(),
                        target: path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        old: None,
                        new: None,
                        outcome: Outcome::Failed(damage),
                    })
                    .map_err(|e| e.to_string())?;
                    log
                }
            },
        };
        Ok(log)
    }

    fn start(dir: &Path, rotate_bytes: u64, first_seq: u64, prev: String) -> Result<AuditLog, String> {
        let active = new_file(dir, first_seq, prev)?;
        Ok(AuditLog {
            dir: dir.to_path_buf(),
            rotate_bytes,
            active: Mutex::new(active),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sequence number and hash of the last record: publishing these elsewhere
    /// (a log line, a monitoring system) is what makes a rewritten trail detectable.
    pub fn head(&self) -> (u64, String) {
        match self.active.lock() {
            Ok(a) => (a.seq, a.prev.clone()),
            Err(_) => (0, GENESIS.to_owned()),
        }
    }

    /// Records matching `query`, oldest first.
    pub fn query(&self, query: &Query) -> Result<Page, String> {
        let limit = query.limit.clamp(1, MAX_QUERY_RECORDS);
        let all = files(&self.dir).map_err(|e| format!("cannot list {}: {e}", self.dir.display()))?;
        let mut page = Page::default();
        let mut buf = Vec::new();
        for (i, (_, path)) in all.iter().enumerate() {
            // Skip files that end before the cursor.
            if let Some((next_first, _)) = all.get(i + 1)
                && *next_first <= query.after + 1
            {
                continue;
            }
            let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let mut reader = BufReader::new(file);
            while let Some(complete) = next_line(&mut reader, &mut buf)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            {
                if !complete {
                    break;
                }
                let Ok(stored) = serde_json::from_slice::<line::Stored>(&buf) else {
                    continue;
                };
                if stored.seq <= query.after || !matches(query, &stored) {
                    continue;
                }
                if page.records.len() == limit {
                    page.more = true;
                    return Ok(page);
                }
                page.last = Some(stored.seq);
                page.records.push(buf.clone());
            }
        }
        Ok(page)
    }
}

fn matches(q: &Query, s: &line::Stored) -> bool {
    q.since.is_none_or(|t| s.at >= t)
        && q.until.is_none_or(|t| s.at < t)
        && q.who
            .as_deref()
            .is_none_or(|w| s.who.as_ref().is_some_and(|who| who.name == w))
        && q.action.as_deref().is_none_or(|a| s.action.starts_with(a))
        && q.target.as_deref().is_none_or(|t| s.target.starts_with(t))
}

impl AuditRecorder for AuditLog {
    fn record(&self, event: AuditEvent) -> Result<u64, AuditUnavailable> {
        let mut active = self
            .active
            .lock()
            .map_err(|_| AuditUnavailable("a writer panicked while holding the trail".into()))?;
        if active.size >= self.rotate_bytes {
            let next = new_file(&self.dir, active.seq + 1, active.prev.clone()).map_err(AuditUnavailable)?;
            *active = next;
        }
        let seq = active.seq + 1;
        let (mut line, hash) =
            line::encode(seq, Timestamp::now(), &event, &active.prev).map_err(AuditUnavailable)?;
        line.push(b'\n');
        let path = active.path.clone();
        let failed = |e: std::io::Error| AuditUnavailable(format!("{}: {e}", path.display()));
        active.file.write_all(&line).map_err(failed)?;
        active.file.sync_data().map_err(failed)?;
        active.size += line.len() as u64;
        active.seq = seq;
        active.prev = hash;
        Ok(seq)
    }
}

/// Reads the active file: Ok(position to append at) or Err((what is damaged, last good seq)).
#[allow(clippy::type_complexity)]
fn resume(path: &Path, first_seq: u64) -> Result<Result<Active, (String, u64)>, String> {
    let io = |e: std::io::Error| format!("cannot read the audit file {}: {e}", path.display());
    let file = File::open(path).map_err(io)?;
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let (mut seq, mut prev, mut good_len) = (first_seq - 1, None::<String>, 0u64);
    let mut line_no = 0;
    while let Some(complete) = next_line(&mut reader, &mut buf).map_err(io)? {
        line_no += 1;
        if !complete {
            tracing::warn!(file = %path.display(), bytes = buf.len(), "cutting off a torn last audit record (never acknowledged)");
            break;
        }
        // The first line's prev names the file before (or genesis); take it as given here,
        // `verify` checks it across files.
        let expected = match &prev {
            Some(p) => p.clone(),
            None => serde_json::from_slice::<line::Stored>(&buf)
                .map(|s| s.prev)
                .unwrap_or_default(),
        };
        match line::check(&buf, &expected) {
            Ok(stored) if stored.seq == seq + 1 => {
                seq = stored.seq;
                prev = Some(stored.hash);
                good_len += buf.len() as u64 + 1;
            }
            Ok(stored) => {
                let damage = format!(
                    "{} line {line_no}: record {} where {} was due",
                    path.display(),
                    stored.seq,
                    seq + 1
                );
                return Ok(Err((damage, highest_seq(&mut reader, seq.max(stored.seq)))));
            }
            Err(e) => {
                let damage = format!("{} line {line_no}: {e}", path.display());
                return Ok(Err((damage, highest_seq(&mut reader, seq + 1))));
            }
        }
    }
    let file = OpenOptions::new().append(true).open(path).map_err(io)?;
    file.set_len(good_len).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(Ok(Active {
        file,
        path: path.to_path_buf(),
        size: good_len,
        seq,
        prev: prev.unwrap_or_else(|| GENESIS.to_owned()),
    }))
}

/// The highest sequence number the rest of a damaged file claims, so a new chain never
/// reuses one.
fn highest_seq(reader: &mut impl BufRead, mut seq: u64) -> u64 {
    let mut buf = Vec::new();
    while let Ok(Some(_)) = next_line(reader, &mut buf) {
        if let Ok(stored) = serde_json::from_slice::<line::Stored>(&buf) {
            seq = seq.max(stored.seq);
        }
    }
    seq
}

fn new_file(dir: &Path, first_seq: u64, prev: String) -> Result<Active, String> {
    let path = dir.join(file_name(first_seq));
    let file = open_private(OpenOptions::new().create(true).append(true), &path)
        .map_err(|e| format!("cannot create the audit file {}: {e}", path.display()))?;
    // The new name must survive a crash too.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    Ok(Active {
        file,
        path,
        size,
        seq: first_seq - 1,
        prev,
    })
}
