//! Checks a whole trail (a directory of files, or one exported file): every line's own
//! hash, the chain from line to line and file to file, and sequence numbers without gaps.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::line::{self, GENESIS};
use crate::trail::{files, next_line};

/// What verification found.
#[derive(Debug, Default)]
pub struct Verification {
    pub records: u64,
    pub files: usize,
    /// Sequence number and hash of the last good record.
    pub head: Option<(u64, String)>,
    /// Every place the chain is broken: file, line number, what is wrong. Empty: intact.
    pub breaks: Vec<(PathBuf, u64, String)>,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.breaks.is_empty()
    }
}

/// Verifies the trail at `path`: a directory holding `audit-*.jsonl`, or one file.
pub fn verify(path: &Path) -> Result<Verification, String> {
    let paths: Vec<PathBuf> = if path.is_dir() {
        files(path)
            .map_err(|e| format!("cannot list {}: {e}", path.display()))?
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    if paths.is_empty() {
        return Err(format!("no audit files (audit-*.jsonl) in {}", path.display()));
    }
    let mut v = Verification {
        files: paths.len(),
        ..Verification::default()
    };
    let mut prev = GENESIS.to_owned();
    let mut seq = None::<u64>;
    let mut buf = Vec::new();
    for path in &paths {
        let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut reader = BufReader::new(file);
        let mut line_no = 0;
        while let Some(complete) =
            next_line(&mut reader, &mut buf).map_err(|e| format!("cannot read {}: {e}", path.display()))?
        {
            line_no += 1;
            if !complete {
                v.breaks
                    .push((path.clone(), line_no, "the last line is incomplete".into()));
                break;
            }
            // A chain restarted by the gateway after damage begins at genesis again; the
            // record saying so is reported, then the new chain is followed.
            let restarted = serde_json::from_slice::<line::Stored>(&buf)
                .is_ok_and(|s| s.action == "audit.chain_restarted" && s.prev == GENESIS);
            if restarted {
                v.breaks.push((
                    path.clone(),
                    line_no,
                    "the gateway restarted the chain here after damage".into(),
                ));
                prev = GENESIS.to_owned();
            }
            match line::check(&buf, &prev) {
                Ok(stored) => {
                    if let Some(s) = seq
                        && stored.seq != s + 1
                        && !restarted
                    {
                        v.breaks.push((
                            path.clone(),
                            line_no,
                            format!("record {} follows record {s}: records are missing", stored.seq),
                        ));
                    }
                    seq = Some(stored.seq);
                    v.records += 1;
                    v.head = Some((stored.seq, stored.hash.clone()));
                    prev = stored.hash;
                }
                Err(e) => {
                    v.breaks.push((path.clone(), line_no, e));
                    // Follow on from what this line claims, so one damaged line is one break.
                    if let Ok(stored) = serde_json::from_slice::<line::Stored>(&buf) {
                        seq = Some(stored.seq);
                        prev = stored.hash;
                    }
                }
            }
        }
    }
    Ok(v)
}
