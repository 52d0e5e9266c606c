//! Past configuration versions, kept so that every stored and published sample can be tied
//! to the configuration it was read under.
//!
//! Layout under the gateway's data directory, `config-versions/`:
//! - `journal.tsv`: one line per activation, appended and fsynced before the engine for it
//!   starts: `UNIX_NANOS \t VERSION \t REASON \t ARCHIVED(0|1)`. A version is in force from
//!   its line's time until the next line's. Samples are stamped with the gateway's time when
//!   read, and an engine's sources have stopped before the next one's start, so the version
//!   in force at a sample's gateway time is the one it was read and transformed under
//!   (given a clock that does not step back across a reload).
//! - `VERSION/`: the files of that version as they were hashed (`0.toml` the main file,
//!   then includes in load order) and `files.tsv` (`INDEX \t PATH` as loaded). Written to a
//!   temporary directory first and renamed, so a version directory is complete or absent.
//!
//! Bounded: past [`MAX_ACTIVATIONS`] lines the journal is rewritten with the newest
//! [`KEEP_ACTIVATIONS`], and version directories no line names any more are removed.
//! A torn last line (a crash mid-append) is skipped when read.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use backplane_model::Timestamp;

use crate::plan::Plan;

/// The journal is compacted when it holds more activations than this...
pub const MAX_ACTIVATIONS: usize = 1_000;
/// ...down to this many, the newest.
pub const KEEP_ACTIVATIONS: usize = 500;

const JOURNAL: &str = "journal.tsv";
const MANIFEST: &str = "files.tsv";

/// One configuration version put in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activation {
    /// Hex SHA-256 over the version's files (`Plan::version`).
    pub version: String,
    /// When it was put in force (gateway clock).
    pub from: Timestamp,
    /// When the next activation replaced it; `None` for the newest (in force now, or until
    /// the process stopped).
    pub until: Option<Timestamp>,
    /// Why: `start`, `reload`, `reload-fallback` (the previous version started again).
    pub reason: String,
    /// Whether the version's files are kept (`false` when they could not be read back as
    /// hashed, e.g. the demo's built-in configuration, or a file changed since loaded).
    pub archived: bool,
}

/// One file of an archived version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedFile {
    /// The path it was loaded from.
    pub path: String,
    pub text: String,
}

/// The `config-versions/` directory of a data directory.
#[derive(Clone, Debug)]
pub struct Archive {
    dir: PathBuf,
}

impl Archive {
    pub fn new(data_dir: &Path) -> Archive {
        Archive {
            dir: data_dir.join("config-versions"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records that `plan` is put in force at `at`, keeping its files if they still read
    /// back as the version they were hashed to. Returns the activation written and, when its
    /// files were not kept, why.
    pub fn record(
        &self,
        plan: &Plan,
        at: Timestamp,
        reason: &str,
    ) -> io::Result<(Activation, Option<String>)> {
        fs::create_dir_all(&self.dir)?;
        let kept = match self.keep_files(plan) {
            Ok(true) => Ok(()),
            Ok(false) => {
                Err("its files no longer read back as loaded (changed, gone, or built in)".to_owned())
            }
            Err(e) => Err(format!("{e}")),
        };
        let archived = kept.is_ok();
        let reason: String = reason.chars().filter(|c| !c.is_control()).collect();
        let activation = Activation {
            version: plan.version.clone(),
            from: at,
            until: None,
            reason,
            archived,
        };
        let line = journal_line(&activation);
        let path = self.dir.join(JOURNAL);
        let mut journal = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        // A line torn by a crash is closed first, so this one is read whole.
        let torn = journal.metadata()?.len() > 0 && {
            let mut last = [0u8; 1];
            journal.seek(SeekFrom::End(-1))?;
            journal.read_exact(&mut last)?;
            last[0] != b'\n'
        };
        let line = if torn { format!("\n{line}") } else { line };
        journal.write_all(line.as_bytes())?;
        journal.sync_all()?;
        drop(journal);
        let mut all = self.activations()?;
        if all.len() > MAX_ACTIVATIONS {
            all.drain(..all.len() - KEEP_ACTIVATIONS);
            self.compact(&all)?;
        }
        Ok((activation, kept.err()))
    }

    /// Every recorded activation, oldest first, each with its end.
    pub fn activations(&self) -> io::Result<Vec<Activation>> {
        let text = match fs::read_to_string(self.dir.join(JOURNAL)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut all: Vec<Activation> = text.lines().filter_map(parse_line).collect();
        for i in 1..all.len() {
            let next = all[i].from;
            all[i - 1].until = Some(next);
        }
        Ok(all)
    }

    /// The activation in force at `at`, if any was recorded before it.
    pub fn at(&self, at: Timestamp) -> io::Result<Option<Activation>> {
        Ok(self.activations()?.into_iter().rev().find(|a| a.from <= at))
    }

    /// The activations in force at some time in `[from, to]`, oldest first.
    pub fn overlapping(&self, from: Timestamp, to: Timestamp) -> io::Result<Vec<Activation>> {
        Ok(self
            .activations()?
            .into_iter()
            .filter(|a| a.from <= to && a.until.is_none_or(|u| u > from))
            .collect())
    }

    /// The files of an archived version; `None` when it is not kept (or `version` is not a
    /// version name: only 64 lowercase hex digits are looked up).
    pub fn files(&self, version: &str) -> io::Result<Option<Vec<ArchivedFile>>> {
        if version.len() != 64 || !version.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Ok(None);
        }
        let dir = self.dir.join(version);
        let manifest = match fs::read_to_string(dir.join(MANIFEST)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut files = Vec::new();
        for line in manifest.lines() {
            let Some((index, path)) = line.split_once('\t') else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: bad line", MANIFEST),
                ));
            };
            let index: usize = index
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{MANIFEST}: bad index")))?;
            let text = fs::read_to_string(dir.join(format!("{index}.toml")))?;
            files.push(ArchivedFile {
                path: path.to_owned(),
                text,
            });
        }
        Ok(Some(files))
    }

    /// Copies the plan's files into `VERSION/` unless already there. `Ok(false)`: the files
    /// no longer hash to the version (changed or gone since loaded).
    fn keep_files(&self, plan: &Plan) -> io::Result<bool> {
        let target = self.dir.join(&plan.version);
        if target.join(MANIFEST).is_file() {
            return Ok(true);
        }
        if plan.files.is_empty() {
            return Ok(false);
        }
        let mut texts = Vec::with_capacity(plan.files.len());
        for path in &plan.files {
            match fs::read_to_string(path) {
                Ok(text) => texts.push(text),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        if crate::loader::version_of(texts.iter().map(String::as_str)) != plan.version {
            return Ok(false);
        }
        let tmp = self.dir.join(format!(".{}.tmp", plan.version));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        let mut manifest = String::new();
        for (i, (path, text)) in plan.files.iter().zip(&texts).enumerate() {
            write_synced(&tmp.join(format!("{i}.toml")), text.as_bytes())?;
            let shown: String = path
                .display()
                .to_string()
                .chars()
                .filter(|c| !c.is_control())
                .collect();
            manifest.push_str(&format!("{i}\t{shown}\n"));
        }
        write_synced(&tmp.join(MANIFEST), manifest.as_bytes())?;
        fs::rename(&tmp, &target)?;
        File::open(&self.dir)?.sync_all()?;
        Ok(true)
    }

    /// Rewrites the journal with `kept` and removes the version directories it no longer
    /// names.
    fn compact(&self, kept: &[Activation]) -> io::Result<()> {
        let mut text = String::new();
        for a in kept {
            text.push_str(&journal_line(a));
        }
        let tmp = self.dir.join(format!("{JOURNAL}.tmp"));
        write_synced(&tmp, text.as_bytes())?;
        fs::rename(&tmp, self.dir.join(JOURNAL))?;
        File::open(&self.dir)?.sync_all()?;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() == 64 && entry.path().is_dir() && !kept.iter().any(|a| a.version == name) {
                fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(())
    }
}

/// An activation as its journal line; [`parse_line`] reads it back.
fn journal_line(a: &Activation) -> String {
    format!(
        "{}\t{}\t{}\t{}\n",
        a.from.unix_nanos(),
        a.version,
        a.reason,
        u8::from(a.archived)
    )
}

fn parse_line(line: &str) -> Option<Activation> {
    let mut fields = line.split('\t');
    let from = Timestamp::from_unix_nanos(fields.next()?.parse().ok()?);
    let version = fields.next()?;
    let reason = fields.next()?;
    let archived = match fields.next()? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    if fields.next().is_some() || version.len() != 64 {
        return None;
    }
    Some(Activation {
        version: version.to_owned(),
        from,
        until: None,
        reason: reason.to_owned(),
        archived,
    })
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
