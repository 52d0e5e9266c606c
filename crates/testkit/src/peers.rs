//! The third-party protocol peers' Python interpreter (pymodbus, asyncua, the Sparkplug
//! and schema helpers), shared by every crate's tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The workspace root (every crate sits at `crates/NAME`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `BACKPLANE_PYTHON`, else the venv `scripts/install-peers` creates once and prints.
/// Never skips: a test that needs a peer fails loudly when it cannot have one.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        if let Some(p) = std::env::var_os("BACKPLANE_PYTHON").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let out = Command::new("bash")
            .arg(workspace_root().join("scripts/install-peers"))
            .current_dir(workspace_root())
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/install-peers");
        assert!(out.status.success(), "scripts/install-peers failed");
        let text = String::from_utf8(out.stdout).expect("install-peers prints UTF-8");
        PathBuf::from(
            text.lines()
                .last()
                .expect("install-peers prints the python path")
                .trim(),
        )
    })
}
