//! The cursor file: where a source resumes after a gateway restart.
//!
//! `<data_dir>/mtconnect/<source>.cursor` holds one JSON object, the agent's URL (and
//! device) and the cursor (`instanceId`, next sequence). It is written only after the
//! observations below the cursor were handed on ([`backplane_connector::SourceIo::settled`]),
//! and replaced atomically as the `sql` source's watermark is: a temporary file written and
//! fsynced, renamed over the old one, the directory fsynced. A crash leaves the old cursor
//! or the new one; the old one makes the restart read again what came after it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sequence::Cursor;

/// Where source `source` keeps its cursor.
pub fn path(data_dir: &Path, source: &str) -> PathBuf {
    data_dir.join("mtconnect").join(format!("{source}.cursor"))
}

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    /// The agent (and device) the cursor belongs to: `sample` endpoint URL.
    agent: String,
    instance_id: u64,
    next: u64,
}

/// What the file says for `agent` (the source's `sample` URL).
#[derive(Debug, PartialEq, Eq)]
pub enum Loaded {
    /// No file: the source never delivered anything.
    None,
    Cursor(Cursor),
    /// A cursor of another agent URL (the configuration changed): not this agent's buffer.
    OtherAgent(String),
}

/// Reads the cursor saved at `path`. Errors name the file: it cannot be read, or is not
/// a cursor file.
pub fn load(path: &Path, agent: &str) -> Result<Loaded, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let saved: Saved =
        serde_json::from_str(&text).map_err(|e| format!("{}: not a cursor file ({e})", path.display()))?;
    if saved.agent != agent {
        return Ok(Loaded::OtherAgent(saved.agent));
    }
    Ok(Loaded::Cursor(Cursor {
        instance_id: saved.instance_id,
        next: saved.next,
    }))
}

/// Replaces the file at `path` with `cursor` of `agent`, atomically and durably.
pub fn save(path: &Path, agent: &str, cursor: Cursor) -> std::io::Result<()> {
    let body = serde_json::to_string(&Saved {
        agent: agent.to_owned(),
        instance_id: cursor.instance_id,
        next: cursor.next,
    })
    .map_err(std::io::Error::other)?;
    backplane_connector::persist::write_atomic(path, format!("{body}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const AGENT: &str = "http://agent:5000/sample";

    #[test]
    fn a_saved_cursor_loads_back_for_its_agent_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "mill");
        assert_eq!(load(&p, AGENT).unwrap(), Loaded::None);
        let cursor = Cursor {
            instance_id: 1_764_490_000,
            next: 109,
        };
        save(&p, AGENT, cursor).unwrap();
        assert_eq!(load(&p, AGENT).unwrap(), Loaded::Cursor(cursor));
        assert_eq!(
            load(&p, "http://other:5000/sample").unwrap(),
            Loaded::OtherAgent(AGENT.into())
        );
        assert!(!p.with_extension("cursor.tmp").exists());
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path(), "mill");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "{\"agent\":").unwrap();
        let e = load(&p, AGENT).unwrap_err();
        assert!(
            e.contains("mill.cursor") && e.contains("not a cursor file"),
            "{e}"
        );
    }
}
