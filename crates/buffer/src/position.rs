//! Reader positions and the list of known readers.
//!
//! A reader's position (the sequence number below which it has acknowledged everything) lives
//! in two files, `{name}.pos0` and `{name}.pos1`, written alternately. Each holds a magic, a
//! generation counter, the position and a CRC32C. A write torn by a crash or power loss damages
//! at most the file being written; the other still holds the previous generation, which gives
//! duplicates, never a gap.
//!
//! `readers` lists the reader names the log has known, so that a reader whose position files
//! are both missing is told apart from a reader seen for the first time.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

const POS_MAGIC: [u8; 8] = *b"BPLPOS01";
const POS_LEN: usize = 28;
const MANIFEST_MAGIC: [u8; 8] = *b"BPLRDR01";
pub(crate) const MANIFEST_FILE: &str = "readers";
const MANIFEST_TMP: &str = "readers.tmp";

pub(crate) fn pos_path(dir: &Path, name: &str, slot: usize) -> PathBuf {
    dir.join(format!("{name}.pos{slot}"))
}

/// The reader name a position file belongs to, if the file name is one.
pub(crate) fn parse_pos_file_name(file: &str) -> Option<&str> {
    file.strip_suffix(".pos0").or_else(|| file.strip_suffix(".pos1"))
}

fn encode_pos(generation: u64, seq: u64) -> [u8; POS_LEN] {
    let mut b = [0u8; POS_LEN];
    b[0..8].copy_from_slice(&POS_MAGIC);
    b[8..16].copy_from_slice(&generation.to_le_bytes());
    b[16..24].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..24]);
    b[24..28].copy_from_slice(&crc.to_le_bytes());
    b
}

/// `(generation, seq)` when the bytes are a valid position file.
fn decode_pos(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() != POS_LEN || b[0..8] != POS_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(b[24..28].try_into().ok()?);
    if crc32c::crc32c(&b[0..24]) != crc {
        return None;
    }
    let generation = u64::from_le_bytes(b[8..16].try_into().ok()?);
    let seq = u64::from_le_bytes(b[16..24].try_into().ok()?);
    Some((generation, seq))
}

/// What the two position files of a reader hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loaded {
    /// Neither file exists.
    Missing,
    /// Both files exist or existed, and neither is valid.
    Damaged,
    /// The newest valid generation. `fell_back` when the other file is present but damaged
    /// (a torn write: the position may be one generation old).
    Valid {
        seq: u64,
        generation: u64,
        slot: usize,
        fell_back: bool,
    },
}

enum Slot {
    Absent,
    Bad,
    Good(u64, u64),
}

fn load_slot(path: &Path) -> Result<Slot> {
    match fs::read(path) {
        Ok(bytes) => Ok(decode_pos(&bytes).map_or(Slot::Bad, |(g, s)| Slot::Good(g, s))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Slot::Absent),
        Err(e) => Err(e).at("read position file", path),
    }
}

pub(crate) fn load(dir: &Path, name: &str) -> Result<Loaded> {
    let slots = [
        load_slot(&pos_path(dir, name, 0))?,
        load_slot(&pos_path(dir, name, 1))?,
    ];
    let mut best: Option<(u64, u64, usize)> = None;
    let mut bad = false;
    let mut present = false;
    for (i, s) in slots.iter().enumerate() {
        match *s {
            Slot::Absent => {}
            Slot::Bad => {
                bad = true;
                present = true;
            }
            Slot::Good(g, seq) => {
                present = true;
                if best.is_none_or(|(bg, _, _)| g > bg) {
                    best = Some((g, seq, i));
                }
            }
        }
    }
    Ok(match best {
        Some((generation, seq, slot)) => Loaded::Valid {
            seq,
            generation,
            slot,
            fell_back: bad,
        },
        None if present => Loaded::Damaged,
        None => Loaded::Missing,
    })
}

/// Writes a reader's position, alternating between its two files.
#[derive(Debug)]
pub(crate) struct PositionStore {
    paths: [PathBuf; 2],
    /// Each file once created (emptied) by this store, kept open: a position is then one
    /// positional write of the same length over the last, not a create, truncate, write and
    /// close (the reader's lock is held meanwhile, ten times a second while acks arrive).
    files: [Option<File>; 2],
    generation: u64,
    /// The file holding the newest generation; the next write goes to the other one.
    current: usize,
}

impl PositionStore {
    pub fn new(dir: &Path, name: &str, generation: u64, current: usize) -> PositionStore {
        PositionStore {
            paths: [pos_path(dir, name, 0), pos_path(dir, name, 1)],
            files: [None, None],
            generation,
            current,
        }
    }

    /// Writes `seq` as the next generation into the file not holding the newest one. Reaches
    /// the page cache only: that survives kill -9, and losing it to a power cut only makes the
    /// reader repeat data (positions never outrun what the reader acknowledged).
    pub fn store(&mut self, seq: u64) -> Result<()> {
        let generation = self.generation + 1;
        let slot = 1 - self.current;
        let path = &self.paths[slot];
        let file = match &mut self.files[slot] {
            Some(f) => f,
            // Created empty: whatever length it had, it is POS_LEN from the first write on.
            empty => empty.insert(File::create(path).at("create position file", path)?),
        };
        // Torn by a crash, this file fails its CRC and the other one holds the last position.
        if let Err(e) = file.write_all_at(&encode_pos(generation, seq), 0) {
            // Opened anew next time: the handle may be what failed.
            self.files[slot] = None;
            return Err(e).at("write position file", path);
        }
        self.generation = generation;
        self.current = slot;
        Ok(())
    }

    /// Like [`Self::store`], and fsyncs the file (for a reader's first position).
    pub fn store_durable(&mut self, seq: u64) -> Result<()> {
        self.store(seq)?;
        let path = &self.paths[self.current];
        match &self.files[self.current] {
            Some(f) => f.sync_all(),
            None => File::open(path).and_then(|f| f.sync_all()),
        }
        .at("fsync position file", path)
    }
}

/// The reader names the log has known, when the file is valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Manifest {
    Missing,
    Damaged,
    Names(Vec<String>),
}

pub(crate) fn load_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Manifest::Missing),
        Err(e) => return Err(e).at("read reader list", &path),
    };
    let parsed = (|| {
        let body = bytes.strip_prefix(&MANIFEST_MAGIC)?;
        let (names, crc) = body.split_at_checked(body.len().checked_sub(4)?)?;
        if crc32c::crc32c(names) != u32::from_le_bytes(crc.try_into().ok()?) {
            return None;
        }
        let text = std::str::from_utf8(names).ok()?;
        Some(text.lines().map(str::to_owned).collect::<Vec<_>>())
    })();
    Ok(parsed.map_or(Manifest::Damaged, Manifest::Names))
}

/// Replaces the reader list atomically (temporary file, fsync, rename, fsync the directory).
pub(crate) fn store_manifest(dir: &Path, names: &[&str]) -> Result<()> {
    let mut body = Vec::new();
    for name in names {
        body.extend_from_slice(name.as_bytes());
        body.push(b'\n');
    }
    let mut bytes = MANIFEST_MAGIC.to_vec();
    bytes.extend_from_slice(&body);
    bytes.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    let tmp = dir.join(MANIFEST_TMP);
    let mut f = File::create(&tmp).at("create reader list", &tmp)?;
    f.write_all(&bytes).at("write reader list", &tmp)?;
    f.sync_all().at("fsync reader list", &tmp)?;
    let path = dir.join(MANIFEST_FILE);
    fs::rename(&tmp, &path).at("rename reader list to", &path)?;
    sync_dir(dir)
}

/// Makes file creations, renames and removals in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .at("fsync directory", dir)
}

pub(crate) fn is_manifest_tmp(file: &str) -> bool {
    file == MANIFEST_TMP
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn positions_alternate_and_the_newest_generation_wins() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path(), "mqtt").unwrap(), Loaded::Missing);
        let mut store = PositionStore::new(dir.path(), "mqtt", 0, 1);
        store.store(10).unwrap();
        store.store(20).unwrap();
        store.store(30).unwrap();
        let Loaded::Valid { seq, generation, .. } = load(dir.path(), "mqtt").unwrap() else {
            panic!("expected a valid position");
        };
        assert_eq!((seq, generation), (30, 3));
    }

    #[test]
    fn files_longer_than_a_position_are_cut_to_it_by_the_first_write() {
        let dir = tempfile::tempdir().unwrap();
        for slot in 0..2 {
            std::fs::write(pos_path(dir.path(), "s", slot), [7u8; 100]).unwrap();
        }
        let mut store = PositionStore::new(dir.path(), "s", 0, 1);
        for seq in [10, 20, 30, 40] {
            store.store(seq).unwrap();
            let Loaded::Valid {
                seq: got, fell_back, ..
            } = load(dir.path(), "s").unwrap()
            else {
                panic!("expected a valid position after storing {seq}");
            };
            assert_eq!(got, seq);
            assert_eq!(
                fell_back,
                seq == 10,
                "the untouched file is still the old garbage"
            );
        }
        for slot in 0..2 {
            let len = std::fs::metadata(pos_path(dir.path(), "s", slot)).unwrap().len();
            assert_eq!(len, POS_LEN as u64);
        }
    }

    #[test]
    fn torn_newest_write_falls_back_to_the_previous_generation() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = PositionStore::new(dir.path(), "s", 0, 1);
        store.store(10).unwrap();
        store.store(20).unwrap();
        // Generation 2 went to slot 1; tear it.
        std::fs::write(pos_path(dir.path(), "s", 1), &encode_pos(2, 20)[..13]).unwrap();
        assert_eq!(
            load(dir.path(), "s").unwrap(),
            Loaded::Valid {
                seq: 10,
                generation: 1,
                slot: 0,
                fell_back: true
            }
        );
    }

    #[test]
    fn both_files_damaged_is_damaged_not_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(pos_path(dir.path(), "s", 0), b"garbage").unwrap();
        let mut flipped = encode_pos(4, 99);
        flipped[17] ^= 1;
        std::fs::write(pos_path(dir.path(), "s", 1), flipped).unwrap();
        assert_eq!(load(dir.path(), "s").unwrap(), Loaded::Damaged);
    }

    #[test]
    fn manifest_round_trips_and_detects_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_manifest(dir.path()).unwrap(), Manifest::Missing);
        store_manifest(dir.path(), &["a", "b-2"]).unwrap();
        assert_eq!(
            load_manifest(dir.path()).unwrap(),
            Manifest::Names(vec!["a".into(), "b-2".into()])
        );
        let path = dir.path().join(MANIFEST_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[9] ^= 0x20;
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(load_manifest(dir.path()).unwrap(), Manifest::Damaged);
    }
}
