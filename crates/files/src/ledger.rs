//! The ledger: SHA-256 digests of the files this source ingested, one line each in
//! `<data_dir>/files/<source>/ledger`, fsynced before the file is moved to `done/`. After
//! a crash between the ingest and the move, a file whose digest is here is only moved, not
//! ingested again. A torn last line (a crash while appending) is ignored when read: that
//! file had not been recorded, so it is ingested again (at least once, never lost).
//!
//! Bounded: the last [`KEEP`] digests are kept; when twice as many were written the file is
//! rewritten with the newest (to a temporary file, fsynced, renamed over the old one).

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Digests remembered.
pub const KEEP: usize = 10_000;

/// A file's content digest, hex.
pub fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(bytes);
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: File,
    known: HashSet<String>,
    /// Digests in the order written, with the name (for the file), oldest first.
    order: VecDeque<(String, String)>,
}

impl Ledger {
    /// Opens (or creates) the ledger in `dir`.
    pub fn open(dir: &Path) -> io::Result<Ledger> {
        fs::create_dir_all(dir)?;
        let path = dir.join("ledger");
        let text = match fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut order = VecDeque::new();
        // Only whole lines count: one without its newline was torn by a crash.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        for line in complete.lines() {
            let (digest, name) = line.split_once(' ').unwrap_or((line, ""));
            if digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                order.push_back((digest.to_owned(), name.to_owned()));
            }
        }
        let known = order.iter().map(|(d, _)| d.clone()).collect();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut ledger = Ledger {
            path,
            file,
            known,
            order,
        };
        if !text.is_empty() && !text.ends_with('\n') {
            // Drop the torn tail so the next line starts clean.
            ledger.rewrite()?;
        }
        Ok(ledger)
    }

    pub fn contains(&self, digest: &str) -> bool {
        self.known.contains(digest)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Records a file as ingested and syncs the ledger to disk. The digest counts as known
    /// from here even if writing fails (this process does not ingest the file again).
    pub fn record(&mut self, digest: &str, name: &str) -> io::Result<()> {
        let name: String = name
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        if self.known.insert(digest.to_owned()) {
            self.order.push_back((digest.to_owned(), name.clone()));
        }
        if self.order.len() >= 2 * KEEP {
            while self.order.len() > KEEP {
                if let Some((old, _)) = self.order.pop_front() {
                    self.known.remove(&old);
                }
            }
            return self.rewrite();
        }
        self.file.write_all(format!("{digest} {name}\n").as_bytes())?;
        self.file.sync_data()
    }

    fn rewrite(&mut self) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut out = File::create(&tmp)?;
        let mut text = String::new();
        for (digest, name) in &self.order {
            text.push_str(digest);
            text.push(' ');
            text.push_str(name);
            text.push('\n');
        }
        out.write_all(text.as_bytes())?;
        out.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn recorded_digests_survive_a_reopen_and_a_torn_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = digest(b"a");
        let b = digest(b"b");
        let mut ledger = Ledger::open(dir.path()).unwrap();
        ledger.record(&a, "a.csv").unwrap();
        drop(ledger);
        // A crash while appending b's line.
        let path = dir.path().join("ledger");
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str(&b[..20]);
        fs::write(&path, text).unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        assert!(ledger.contains(&a) && !ledger.contains(&b));
        ledger.record(&b, "b\ncsv").unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        assert!(ledger.contains(&a) && ledger.contains(&b));
        assert_eq!(ledger.len(), 2);
    }

    #[test]
    fn the_ledger_keeps_the_newest_digests_when_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        let digests: Vec<String> = (0..2 * KEEP).map(|i| digest(&i.to_le_bytes())).collect();
        for d in &digests {
            ledger.known.insert(d.clone());
            ledger.order.push_back((d.clone(), String::new()));
        }
        ledger.record(&digest(b"new"), "new").unwrap();
        let reopened = Ledger::open(dir.path()).unwrap();
        assert_eq!(reopened.len(), KEEP);
        assert!(reopened.contains(&digest(b"new")));
        assert!(!reopened.contains(&digests[0]));
        assert!(reopened.contains(&digests[2 * KEEP - 1]));
    }
}
