//! The drop folder on disk: the inbox, `done/` and `quarantine/` beside each other (same
//! file system, so a move is one rename), listing, bounded reads, and moves that are
//! synced to disk. Blocking; the source calls it off the async workers.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::settle::Listed;

/// Where a moved file went.
#[derive(Clone, Debug)]
pub struct Folder {
    pub inbox: PathBuf,
    pub done: PathBuf,
    pub quarantine: PathBuf,
}

/// A file's content and the size and time it had when read.
#[derive(Debug)]
pub struct Content {
    pub bytes: Vec<u8>,
    pub size: u64,
    pub modified: SystemTime,
}

impl Folder {
    /// The folder at `inbox`, its `done/` and `quarantine/` created if missing.
    pub fn create(inbox: PathBuf) -> io::Result<Folder> {
        let folder = Folder {
            done: inbox.join("done"),
            quarantine: inbox.join("quarantine"),
            inbox,
        };
        fs::create_dir_all(&folder.done)?;
        fs::create_dir_all(&folder.quarantine)?;
        Ok(folder)
    }

    /// The regular files of the inbox (not directories, not symlinks), with size and
    /// modification time. Names that are not UTF-8 are skipped.
    pub fn list(&self) -> io::Result<Vec<Listed>> {
        let mut files = Vec::new();
        for entry in fs::read_dir(&self.inbox)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // The entry's own type: a symlink is not followed out of the folder.
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.file_type().is_file() {
                continue;
            }
            files.push(Listed {
                name,
                size: meta.len(),
                modified: meta.modified()?,
            });
        }
        Ok(files)
    }

    /// Reads `name`, at most `max + 1` bytes (so an oversized file is seen as such without
    /// reading it all).
    pub fn read(&self, name: &str, max: u64) -> io::Result<Content> {
        let mut file = File::open(self.inbox.join(name))?;
        let meta = file.metadata()?;
        let mut bytes = Vec::with_capacity(meta.len().min(max.saturating_add(1)) as usize);
        (&mut file).take(max.saturating_add(1)).read_to_end(&mut bytes)?;
        Ok(Content {
            bytes,
            size: meta.len(),
            modified: meta.modified()?,
        })
    }

    /// Size and modification time of `name` now.
    pub fn stat(&self, name: &str) -> io::Result<(u64, SystemTime)> {
        let meta = fs::metadata(self.inbox.join(name))?;
        Ok((meta.len(), meta.modified()?))
    }

    /// Moves `name` to `done/` (under a free name) and syncs both directories.
    pub fn to_done(&self, name: &str) -> io::Result<PathBuf> {
        self.move_to(&self.done, name, None)
    }

    /// Writes `<target>.reason` with `reason`, then moves `name` to `quarantine/`.
    pub fn to_quarantine(&self, name: &str, reason: &str) -> io::Result<PathBuf> {
        self.move_to(&self.quarantine, name, Some(reason))
    }

    fn move_to(&self, dir: &Path, name: &str, reason: Option<&str>) -> io::Result<PathBuf> {
        let target = free_name(dir, name)?;
        if let Some(reason) = reason {
            let mut path = target.clone().into_os_string();
            path.push(".reason");
            write_synced(Path::new(&path), reason.as_bytes())?;
        }
        fs::rename(self.inbox.join(name), &target)?;
        sync_dir(dir)?;
        sync_dir(&self.inbox)?;
        Ok(target)
    }
}

/// `dir/name`, or `dir/stem-N.ext` with the first N not taken.
fn free_name(dir: &Path, name: &str) -> io::Result<PathBuf> {
    let taken = |p: &Path| {
        p.exists() || {
            let mut r = p.as_os_str().to_owned();
            r.push(".reason");
            Path::new(&r).exists()
        }
    };
    let first = dir.join(name);
    if !taken(&first) {
        return Ok(first);
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, format!(".{ext}")),
        _ => (name, String::new()),
    };
    for n in 1..10_000 {
        let candidate = dir.join(format!("{stem}-{n}{ext}"));
        if !taken(&candidate) {
            return Ok(candidate);
        }
    }
    Err(io::Error::other(format!(
        "{} already holds 10000 files named like {name}",
        dir.display()
    )))
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    io::Write::write_all(&mut file, bytes)?;
    file.sync_all()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn moves_never_overwrite_and_a_quarantined_file_has_its_reason_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let folder = Folder::create(dir.path().join("in")).unwrap();
        for _ in 0..2 {
            fs::write(folder.inbox.join("a.csv"), "x").unwrap();
            folder.to_done("a.csv").unwrap();
        }
        assert!(folder.done.join("a.csv").exists() && folder.done.join("a-1.csv").exists());
        fs::write(folder.inbox.join("b.csv"), "x").unwrap();
        let at = folder.to_quarantine("b.csv", "line 2, field `fat`: bad").unwrap();
        assert_eq!(at, folder.quarantine.join("b.csv"));
        assert_eq!(
            fs::read_to_string(folder.quarantine.join("b.csv.reason")).unwrap(),
            "line 2, field `fat`: bad"
        );
        let names: Vec<String> = folder.list().unwrap().into_iter().map(|l| l.name).collect();
        assert!(
            names.is_empty(),
            "done/ and quarantine/ are not listed: {names:?}"
        );
    }
}
