//! Which files of the inbox are complete: I/O-free, the listing and the time passed in.
//!
//! Two rules, both applied: names a writer uses while writing are never read (dotfiles,
//! `*.part`, `*.tmp`, `*~`: write under such a name, then rename into place), and a file is
//! read only once its size and modification time have stayed the same for the settle
//! time (a writer that writes in place).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// Whether `name` is one a writer uses while the file is incomplete.
pub fn is_partial_name(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".part") || name.ends_with(".tmp") || name.ends_with('~')
}

/// One regular file as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub size: u64,
    pub modified: SystemTime,
}

#[derive(Debug)]
struct Seen {
    size: u64,
    modified: SystemTime,
    since: Instant,
}

/// Remembers each file's size and modification time since they last changed.
#[derive(Debug, Default)]
pub struct Settle {
    seen: HashMap<String, Seen>,
}

impl Settle {
    /// Takes a listing made at `now`; returns the files that are complete, oldest
    /// modification first (then by name), at most `max`.
    pub fn ready(&mut self, listing: Vec<Listed>, now: Instant, settle: Duration, max: usize) -> Vec<Listed> {
        let mut current = HashMap::with_capacity(listing.len());
        let mut ready = Vec::new();
        for file in listing {
            if is_partial_name(&file.name) {
                continue;
            }
            let seen = match self.seen.remove(&file.name) {
                Some(s) if s.size == file.size && s.modified == file.modified => s,
                _ => Seen {
                    size: file.size,
                    modified: file.modified,
                    since: now,
                },
            };
            if now.saturating_duration_since(seen.since) >= settle {
                ready.push(file.clone());
            }
            current.insert(file.name, seen);
        }
        // Files gone from the listing are forgotten (the map stays as large as the inbox).
        self.seen = current;
        ready.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.name.cmp(&b.name)));
        ready.truncate(max);
        ready
    }

    /// `name` changed while it was read: it must settle again.
    pub fn changed(&mut self, name: &str) {
        self.seen.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64, secs: u64) -> Listed {
        Listed {
            name: name.into(),
            size,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    fn names(files: &[Listed]) -> Vec<&str> {
        files.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn a_file_is_ready_once_unchanged_for_the_settle_time_and_partial_names_never() {
        let mut s = Settle::default();
        let t0 = Instant::now();
        let settle = Duration::from_secs(2);
        let listing = |size| {
            vec![
                file("a.csv", size, 1),
                file("b.csv.part", 9, 0),
                file(".c.csv", 9, 0),
            ]
        };
        assert!(s.ready(listing(10), t0, settle, 10).is_empty());
        // Grew: the clock restarts.
        assert!(
            s.ready(listing(20), t0 + Duration::from_secs(2), settle, 10)
                .is_empty()
        );
        assert!(
            s.ready(listing(20), t0 + Duration::from_secs(3), settle, 10)
                .is_empty()
        );
        assert_eq!(
            names(&s.ready(listing(20), t0 + Duration::from_secs(4), settle, 10)),
            ["a.csv"]
        );
        s.changed("a.csv");
        assert!(
            s.ready(listing(20), t0 + Duration::from_secs(4), settle, 10)
                .is_empty()
        );
    }

    #[test]
    fn ready_files_come_oldest_first_and_at_most_max() {
        let mut s = Settle::default();
        let t0 = Instant::now();
        let listing = vec![file("c", 1, 3), file("a", 1, 5), file("b", 1, 3)];
        assert_eq!(names(&s.ready(listing, t0, Duration::ZERO, 2)), ["b", "c"]);
    }
}
