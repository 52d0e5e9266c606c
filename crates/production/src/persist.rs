//! Where the production state is kept between runs: `{data_dir}/production/state.json`,
//! written atomically (temporary file, fsync, rename). A state that cannot be read is set
//! aside (renamed `.unreadable`) and logged, never silently overwritten.

use std::path::{Path, PathBuf};

use backplane_config::Plan;

use crate::{Production, Snapshot};

/// The state file under a data directory.
pub fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("production").join("state.json")
}

/// The production state saved by the last run, or a fresh one.
pub fn restore(plan: &Plan, data_dir: &Path) -> Production {
    let path = state_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Production::new(plan),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "production: cannot read the saved state; starting empty");
            return Production::new(plan);
        }
    };
    let restored = serde_json::from_str(&text)
        .map_err(|e| e.to_string())
        .and_then(|snapshot| Production::restore(plan, snapshot).map_err(|e| e.to_string()));
    match restored {
        Ok(production) => production,
        Err(e) => {
            let aside = path.with_extension("json.unreadable");
            let _ = std::fs::rename(&path, &aside);
            tracing::error!(path = %path.display(), kept_as = %aside.display(), error = %e, "production: the saved state is unreadable; starting empty");
            Production::new(plan)
        }
    }
}

/// Writes `snapshot` atomically.
pub fn save(snapshot: &Snapshot, data_dir: &Path) -> std::io::Result<()> {
    let json = serde_json::to_vec(snapshot).map_err(std::io::Error::other)?;
    backplane_connector::persist::write_atomic(&state_path(data_dir), &json)
}
