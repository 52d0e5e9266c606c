//! Where the alarm state is kept between runs: `{data_dir}/alarms/state.json`, written
//! atomically (temporary file, fsync, rename). A state that cannot be read is set aside
//! (renamed `.unreadable`) and logged, never silently overwritten.

use std::path::{Path, PathBuf};

use crate::conditions::{Conditions, Snapshot};

pub fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("alarms").join("state.json")
}

/// Restores into `conditions` the states saved by the last run, if any.
pub fn restore(conditions: &mut Conditions, data_dir: &Path) {
    let path = state_path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "alarms: cannot read the saved state; starting with every alarm inactive");
            return;
        }
    };
    match serde_json::from_str::<Snapshot>(&text) {
        Ok(snapshot) => conditions.restore(snapshot),
        Err(e) => {
            let aside = path.with_extension("json.unreadable");
            let _ = std::fs::rename(&path, &aside);
            tracing::error!(path = %path.display(), kept_as = %aside.display(), error = %e, "alarms: the saved state is unreadable; starting with every alarm inactive");
        }
    }
}

/// Writes `snapshot` atomically.
pub fn save(snapshot: &Snapshot, data_dir: &Path) -> std::io::Result<()> {
    let json = serde_json::to_vec(snapshot).map_err(std::io::Error::other)?;
    backplane_connector::persist::write_atomic(&state_path(data_dir), &json)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use backplane_model::{AssetPath, LimitLevel, Limits};

    use super::*;
    use crate::conditions::State;

    fn conditions() -> Conditions {
        let limits = Limits {
            hihi: None,
            hi: Some(10.0),
            lo: None,
            lolo: None,
            deadband: 0.0,
            severity: [900, 700, 700, 900],
        };
        Conditions::new([(
            3,
            Arc::from("acme/tank/level"),
            AssetPath::parse("acme/tank").unwrap(),
            Arc::from("level"),
            limits,
        )])
    }

    #[test]
    fn a_saved_state_is_restored_and_an_unreadable_one_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut before = conditions();
        before.all[0].state = State {
            level: Some(LimitLevel::Hi),
            acked: false,
            since: None,
            value: Some(12.0),
        };
        save(&before.snapshot(), dir.path()).unwrap();
        let mut after = conditions();
        restore(&mut after, dir.path());
        assert_eq!(after, before);

        std::fs::write(state_path(dir.path()), "{not json").unwrap();
        let mut fresh = conditions();
        restore(&mut fresh, dir.path());
        assert_eq!(fresh, conditions());
        assert!(state_path(dir.path()).with_extension("json.unreadable").exists());
    }
}
