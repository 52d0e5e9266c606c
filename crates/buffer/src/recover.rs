//! Opening a log: the steps [`Log::open`](crate::Log::open) runs, in this order, and
//! [`Recovery`], what they found.
//!
//! 1. [`validate`] the options and reader names; [`list_dir`] the directory.
//! 2. [`load_positions`]: every reader's saved position, or where a reader without one starts.
//! 3. [`scan_segments`]: check every record of every segment ([`recover_segment`]), cutting a
//!    torn tail and skipping damage, and resolve each saved position to a place in the log.
//! 4. [`open_writer`]: continue the sequence after the data and the positions, open the
//!    newest segment for appending, and build the in-memory [`State`].
//! 5. [`reconcile_readers`]: one slot per reader at its resolved position.
//! 6. [`forget_unconfigured`]: record the reader names, delete positions of readers no
//!    longer configured and stray temporary files.

use std::collections::{BTreeSet, VecDeque};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{BufferError, IoContext, Result};
use crate::options::{FsyncPolicy, LogOptions, ReaderOptions};
use crate::position::{self, Loaded, Manifest, PositionStore, sync_dir};
use crate::record::Header;
use crate::segment::{self, SegFile, segment_path};
use crate::state::{Active, Loc, ReaderShared, ReaderSlot, SegmentMeta, State};

/// What recovery found on open; the engine logs it and exports counters.
#[derive(Clone, Debug, Default)]
pub struct Recovery {
    /// Bytes cut from the end of the newest segment: a record whose write was interrupted
    /// (never acknowledged to the appender, so nothing acknowledged is lost).
    pub truncated_bytes: u64,
    /// Damaged regions inside the log (bad checksum, garbage length, a shortened older
    /// segment), each holding at least one lost record, and their bytes. Skipped, logged as
    /// errors, and reported again on every open until the segment is deleted.
    pub corrupted_records: u64,
    pub corrupted_bytes: u64,
    /// Reader names whose position file was damaged or missing and recovered conservatively
    /// (to the previous generation, or to the oldest retained data): duplicates, not gaps.
    pub damaged_positions: Vec<String>,
    /// Sequence numbers known to be missing: skipped over by damage, or between segments
    /// (also after a power loss that took data a reader had already acknowledged).
    pub lost_seqs: u64,
}

/// Refuses options that cannot work and reader names that are not unique short slugs;
/// warns about quotas too small for the segment size.
pub(crate) fn validate(options: &LogOptions, readers: &[(&str, ReaderOptions)]) -> Result<()> {
    if options.segment_bytes == 0 {
        return Err(BufferError::InvalidOptions(
            "segment_bytes must be at least 1".into(),
        ));
    }
    if options.fsync == FsyncPolicy::Interval(Duration::ZERO) {
        return Err(BufferError::InvalidOptions(
            "the fsync interval must be longer than zero (use FsyncPolicy::Always)".into(),
        ));
    }
    let mut seen = BTreeSet::new();
    for (name, reader) in readers {
        let reason = if name.is_empty() {
            Some("empty")
        } else if name.len() > 64 {
            Some("longer than 64 characters")
        } else if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            Some("only letters, digits, '-' and '_' are allowed")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(BufferError::InvalidReaderName {
                name: (*name).to_owned(),
                reason,
            });
        }
        if !seen.insert(*name) {
            return Err(BufferError::DuplicateReader {
                name: (*name).to_owned(),
            });
        }
        if reader.quota_bytes < options.segment_bytes.saturating_mul(2) {
            tracing::warn!(
                reader = name,
                quota_bytes = reader.quota_bytes,
                segment_bytes = options.segment_bytes,
                "quota below two segments: overflow drops or blocks in coarse steps"
            );
        }
    }
    Ok(())
}

/// Where a reader starts on open.
pub(crate) enum Start {
    New,
    Oldest,
    At(u64),
}

/// What the log directory holds.
pub(crate) struct Listing {
    /// Segments by first seq, ascending.
    segments: Vec<u64>,
    /// Readers with position files.
    position_names: BTreeSet<String>,
    /// Temporary files of an interrupted manifest write.
    stray: Vec<PathBuf>,
}

impl Listing {
    pub(crate) fn has_segments(&self) -> bool {
        !self.segments.is_empty()
    }
}

/// Lists the segments, position files and stray temporary files of `dir`.
pub(crate) fn list_dir(dir: &Path) -> Result<Listing> {
    let mut out = Listing {
        segments: Vec::new(),
        position_names: BTreeSet::new(),
        stray: Vec::new(),
    };
    for entry in fs::read_dir(dir).at("list log directory", dir)? {
        let entry = entry.at("list log directory", dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(seq) = segment::parse_segment_file_name(name) {
            out.segments.push(seq);
        } else if let Some(reader) = position::parse_pos_file_name(name) {
            out.position_names.insert(reader.to_owned());
        } else if position::is_manifest_tmp(name) {
            out.stray.push(entry.path());
        }
    }
    out.segments.sort_unstable();
    Ok(out)
}

/// Each reader's start (in the order given) and the store its position is written to.
pub(crate) struct Positions {
    starts: Vec<Start>,
    stores: Vec<PositionStore>,
}

/// Reads every reader's saved position. A damaged newest position file falls back to the
/// previous one; a reader whose files are both damaged, or missing although the log knew
/// it, restarts from the oldest data (duplicates rather than a gap); a reader never seen
/// before starts at the head.
pub(crate) fn load_positions(
    dir: &Path,
    readers: &[(&str, ReaderOptions)],
    manifest: &Manifest,
    listing: &Listing,
    recovery: &mut Recovery,
) -> Result<Positions> {
    let mut starts = Vec::with_capacity(readers.len());
    let mut stores = Vec::with_capacity(readers.len());
    for (name, _) in readers {
        let (start, store) = match position::load(dir, name)? {
            Loaded::Valid {
                seq,
                generation,
                slot,
                fell_back,
            } => {
                if fell_back {
                    tracing::warn!(
                        reader = name,
                        seq,
                        "newest position file damaged: using the previous one (some data is delivered again)"
                    );
                    recovery.damaged_positions.push((*name).to_owned());
                }
                (Start::At(seq), PositionStore::new(dir, name, generation, slot))
            }
            loaded => {
                let known = match manifest {
                    Manifest::Names(names) => names.iter().any(|n| n == name),
                    // No reliable list: a log with data must have known its readers.
                    Manifest::Missing | Manifest::Damaged => listing.has_segments(),
                };
                let start = if loaded == Loaded::Damaged || known {
                    tracing::error!(
                        reader = name,
                        "position files damaged or missing: the reader restarts from the oldest retained data (duplicates, no gap)"
                    );
                    recovery.damaged_positions.push((*name).to_owned());
                    Start::Oldest
                } else {
                    Start::New
                };
                (start, PositionStore::new(dir, name, 0, 1))
            }
        };
        starts.push(start);
        stores.push(store);
    }
    Ok(Positions { starts, stores })
}

/// Resolves saved positions while the segments are scanned in order: each goes to the first
/// record that ends past it.
struct Resolver {
    /// `(position, reader index)`, ascending by position.
    targets: Vec<(u64, usize)>,
    next: usize,
    resolved: Vec<Option<Loc>>,
}

impl Resolver {
    fn new(starts: &[Start]) -> Resolver {
        let mut targets: Vec<(u64, usize)> = starts
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Start::At(p) => Some((*p, i)),
                _ => None,
            })
            .collect();
        targets.sort_unstable();
        Resolver {
            targets,
            next: 0,
            resolved: vec![None; starts.len()],
        }
    }

    /// The valid record with header `h` at byte `off` of segment `seg` (at logical address
    /// `base`) was scanned.
    fn visit(&mut self, seg: u64, base: u64, off: u64, h: &Header) {
        let end = h.end_seq().unwrap_or(h.seq);
        while let Some(&(p, r)) = self.targets.get(self.next) {
            if p >= end {
                break;
            }
            if let Some(slot) = self.resolved.get_mut(r) {
                *slot = Some(Loc {
                    seq: h.seq,
                    seg,
                    base,
                    off,
                });
            }
            self.next += 1;
        }
    }
}

/// The segment index after the scan, and where each saved position resolved to (`None`:
/// past the data, or not saved).
pub(crate) struct ScannedLog {
    segments: VecDeque<SegmentMeta>,
    /// Logical address after the last segment.
    end: u64,
    resolved: Vec<Option<Loc>>,
}

/// Scans every segment in order ([`recover_segment`]), resolving the saved positions, and
/// counts sequence numbers missing between segments.
pub(crate) fn scan_segments(
    dir: &Path,
    listing: &Listing,
    positions: &Positions,
    recovery: &mut Recovery,
) -> Result<ScannedLog> {
    let mut resolver = Resolver::new(&positions.starts);
    let mut segments: VecDeque<SegmentMeta> = VecDeque::new();
    let mut base = 0u64;
    for (i, &first) in listing.segments.iter().enumerate() {
        let next_first = listing.segments.get(i + 1).copied();
        let meta = recover_segment(dir, first, base, next_first, &mut resolver, recovery)?;
        if let Some(prev) = segments.back()
            && first > prev.end_seq
        {
            tracing::warn!(
                from_seq = prev.end_seq,
                to_seq = first,
                "sequence numbers missing between segments"
            );
            recovery.lost_seqs += first - prev.end_seq;
        }
        base += meta.bytes;
        segments.push_back(meta);
    }
    Ok(ScannedLog {
        segments,
        end: base,
        resolved: resolver.resolved,
    })
}

/// Checks every record of segment `first` (at logical address `base`; `next_first` is the
/// next segment's first seq, `None` for the newest) and returns its index entry. Damaged
/// regions followed by valid records are skipped and counted; an invalid end is truncated
/// in the newest segment (a write cut by a crash) and counted as damage in an older one.
fn recover_segment(
    dir: &Path,
    first: u64,
    base: u64,
    next_first: Option<u64>,
    resolver: &mut Resolver,
    recovery: &mut Recovery,
) -> Result<SegmentMeta> {
    let path = segment_path(dir, first);
    let mut f = SegFile::open(path.clone(), first)?;
    let len = f.len()?;
    let mut visit = |off: u64, h: &Header| resolver.visit(first, base, off, h);
    let scanned = segment::scan(&mut f, len, first, next_first, &mut visit)?;
    for &(start, end) in &scanned.holes {
        tracing::error!(segment = %path.display(), offset = start, bytes = end - start, "corrupted record(s) skipped: checksum or length damaged");
        recovery.corrupted_records += 1;
        recovery.corrupted_bytes += end - start;
    }
    recovery.lost_seqs += scanned.hole_lost_seqs;
    if scanned.tail > 0 {
        if next_first.is_none() {
            tracing::warn!(segment = %path.display(), offset = scanned.valid_end, bytes = scanned.tail, "torn tail truncated (a write interrupted by a crash)");
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .at("open segment", &path)?;
            file.set_len(scanned.valid_end)
                .at("truncate torn tail of", &path)?;
            file.sync_all().at("fsync segment", &path)?;
            recovery.truncated_bytes += scanned.tail;
        } else {
            tracing::error!(segment = %path.display(), offset = scanned.valid_end, bytes = scanned.tail, "damaged end of an older segment skipped (shortened or overwritten)");
            recovery.corrupted_records += 1;
            recovery.corrupted_bytes += scanned.tail;
        }
    }
    Ok(SegmentMeta {
        first_seq: first,
        base,
        bytes: scanned.valid_end,
        end_seq: scanned.end_seq,
        holes: scanned.holes,
    })
}

/// Continues the sequence and opens the newest segment for appending: the state the
/// appender starts from, without readers yet, and where the saved positions resolved to.
///
/// The sequence never goes back: not below the data, nor below any reader's position
/// (after a power loss a position may be ahead of the data that survived). Without data,
/// or with a position ahead of it, a new empty segment starts at that number.
pub(crate) fn open_writer(
    dir: &Path,
    options: &LogOptions,
    scanned: ScannedLog,
    positions: &Positions,
    recovery: &mut Recovery,
) -> Result<(State, Vec<Option<Loc>>)> {
    let ScannedLog {
        mut segments,
        end,
        resolved,
    } = scanned;
    let data_end = segments.back().map_or(0, |s| s.end_seq);
    let max_position = positions
        .starts
        .iter()
        .filter_map(|s| match s {
            Start::At(p) => Some(*p),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let next_seq = data_end.max(max_position);
    if segments.is_empty() || next_seq > data_end {
        if !segments.is_empty() {
            tracing::warn!(
                data_end,
                next_seq,
                "a reader position is ahead of the data: the log continues after it"
            );
            recovery.lost_seqs += next_seq - data_end;
        }
        let path = segment_path(dir, next_seq);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .at("create segment", &path)?;
        sync_dir(dir)?;
        segments.push_back(SegmentMeta {
            first_seq: next_seq,
            base: end,
            bytes: 0,
            end_seq: next_seq,
            holes: Vec::new(),
        });
    }
    let active = open_active(dir, &segments)?;
    let state = State {
        dir: dir.to_owned(),
        segment_bytes: options.segment_bytes,
        segments,
        active,
        unsynced: Vec::new(),
        dir_dirty: false,
        next_seq,
        write_gen: 0,
        readers: Vec::with_capacity(positions.starts.len()),
        appended_records: 0,
        appended_seqs: 0,
        scratch: Vec::new(),
        appended: Default::default(),
    };
    Ok((state, resolved))
}

/// Opens the newest segment for appending, and makes durable what a killed predecessor
/// appended to it (still in the page cache only).
fn open_active(dir: &Path, segments: &VecDeque<SegmentMeta>) -> Result<Active> {
    let Some(last_first) = segments.back().map(|s| s.first_seq) else {
        return Err(BufferError::InvalidOptions("no segment after recovery".into()));
    };
    let path = segment_path(dir, last_first);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .at("open segment", &path)?;
    file.sync_data().at("fsync segment", &path)?;
    Ok(Active {
        file: Arc::new(file),
        path,
    })
}

/// Gives every reader its slot, in the order given: a saved position starts at the record it
/// resolved to (at the head when the data it pointed into is gone); a new reader starts at
/// the head and one that lost its position at the oldest data, both saved at once.
pub(crate) fn reconcile_readers(
    state: &mut State,
    dir: &Path,
    readers: &[(&str, ReaderOptions)],
    positions: Positions,
    resolved: Vec<Option<Loc>>,
) -> Result<()> {
    let head = state.head();
    let oldest = state.oldest();
    let mut wrote_new_positions = false;
    for (i, (((name, reader_options), start), mut store)) in readers
        .iter()
        .zip(positions.starts)
        .zip(positions.stores)
        .enumerate()
    {
        let (floor, persisted) = match start {
            Start::At(p) => (resolved.get(i).copied().flatten().unwrap_or(head), p),
            Start::New | Start::Oldest => {
                let floor = if matches!(start, Start::New) { head } else { oldest };
                // Persist at once: a new reader restarted before its first ack must not
                // come back as new and skip what was appended meanwhile.
                store.store_durable(floor.seq)?;
                wrote_new_positions = true;
                (floor, floor.seq)
            }
        };
        state.readers.push(ReaderSlot {
            shared: Arc::new(ReaderShared {
                name: (*name).to_owned(),
                ..ReaderShared::default()
            }),
            options: reader_options.clone(),
            floor,
            persisted_seq: persisted,
            store,
        });
    }
    if wrote_new_positions {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Saves the configured reader names (when they changed), deletes the position files of
/// readers no longer configured, and removes stray temporary files.
pub(crate) fn forget_unconfigured(
    dir: &Path,
    readers: &[(&str, ReaderOptions)],
    manifest: &Manifest,
    listing: &Listing,
) -> Result<()> {
    let names: Vec<&str> = readers.iter().map(|(n, _)| *n).collect();
    if *manifest != Manifest::Names(names.iter().map(|n| (*n).to_owned()).collect()) {
        position::store_manifest(dir, &names)?;
    }
    for gone in listing
        .position_names
        .iter()
        .filter(|n| !names.contains(&n.as_str()))
    {
        tracing::info!(reader = %gone, "reader no longer configured: its position is deleted");
        for slot in 0..2 {
            let path = position::pos_path(dir, gone, slot);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).at("delete position file", &path),
            }
        }
    }
    for stray in &listing.stray {
        let _ = fs::remove_file(stray);
    }
    Ok(())
}
