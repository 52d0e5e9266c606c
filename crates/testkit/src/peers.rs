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

/// Plant B's pymodbus filler (`examples/enterprise/plant_b_filler.py`) on a free port:
/// hr:0 status, hr:1-2 speed as f32 ABCD (21600 bottles/h while running), …; killed when
/// the returned process is dropped.
pub fn plant_b_filler() -> (crate::process::Running, u16) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(python())
        .arg(workspace_root().join("examples/enterprise/plant_b_filler.py"))
        .arg("0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the peers' python runs");
    let stdout = child.stdout.take().expect("stdout is piped");
    let running = crate::process::Running(child);
    // The script's first line says where it listens: `PORT <n>`.
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the filler says its port");
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("plant_b_filler.py printed {line:?}, not `PORT <n>`"));
    (running, port)
}
