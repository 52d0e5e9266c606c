//! Backplane's web UI: plain HTML, CSS and JavaScript modules under `assets/`, written here
//! and embedded in the binary at build time (`build.rs`), so an air-gapped plant gets the
//! whole UI from the gateway and nothing from anywhere else. There is no build step: the
//! files are served as they are written.
//!
//! The API server serves them (`backplane_api`'s `ui.rs`): `/` is `index.html`, every other
//! file is under `/ui/`. For working on the UI, [`Ui::from_dir`] serves a directory instead
//! (the gateway does so when `BACKPLANE_UI_DIR` is set), so a change shows on reload
//! without rebuilding.

use std::borrow::Cow;
use std::path::PathBuf;

mod fnv;

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// One file of the UI, ready to serve.
#[derive(Clone, Debug)]
pub struct Asset {
    pub bytes: Cow<'static, [u8]>,
    pub content_type: &'static str,
    /// A strong ETag (quoted), from the content.
    pub etag: Cow<'static, str>,
}

/// Where the UI's files come from.
#[derive(Clone, Debug, Default)]
pub enum Ui {
    /// The files built into the binary.
    #[default]
    Embedded,
    /// A directory read on every request (UI development).
    Dir(PathBuf),
}

impl Ui {
    pub fn from_dir(dir: impl Into<PathBuf>) -> Ui {
        Ui::Dir(dir.into())
    }

    /// The file at `path` (relative, `/`-separated, e.g. `pages/plant.js`). Paths with
    /// anything but letters, digits, `-`, `_`, `.` and `/`, or with a segment that is empty
    /// or starts with `.`, are never looked up, so nothing outside the UI can be named.
    pub fn get(&self, path: &str) -> Option<Asset> {
        if !valid(path) {
            return None;
        }
        let content_type = content_type(path);
        match self {
            Ui::Embedded => ASSETS
                .binary_search_by(|(name, _, _)| (*name).cmp(path))
                .ok()
                .map(|i| Asset {
                    bytes: Cow::Borrowed(ASSETS[i].1),
                    content_type,
                    etag: Cow::Borrowed(ASSETS[i].2),
                }),
            Ui::Dir(dir) => {
                let bytes = std::fs::read(dir.join(path)).ok()?;
                let etag = format!("\"{:016x}\"", fnv::fnv1a(&bytes));
                Some(Asset {
                    bytes: Cow::Owned(bytes),
                    content_type,
                    etag: Cow::Owned(etag),
                })
            }
        }
    }
}

/// Every embedded file: path and size in bytes (for the size budget and `docs/ui.md`).
pub fn embedded() -> impl Iterator<Item = (&'static str, usize)> {
    ASSETS.iter().map(|(name, bytes, _)| (*name, bytes.len()))
}

fn valid(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 200
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && !segment.starts_with('.'))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("json" | "webmanifest") => "application/json",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget of issue 14: everything the browser may load, together.
    const BUDGET_BYTES: usize = 250 * 1024;

    #[test]
    fn the_index_and_the_app_module_are_embedded() {
        let index = Ui::Embedded.get("index.html").expect("index.html");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        assert!(String::from_utf8_lossy(&index.bytes).contains("/ui/app.js"));
        assert!(Ui::Embedded.get("app.js").is_some());
    }

    #[test]
    fn paths_outside_the_ui_are_never_looked_up() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        std::fs::write(dir.join("secret"), "x").unwrap();
        let ui = Ui::from_dir(dir.join("ui"));
        std::fs::create_dir_all(dir.join("ui")).unwrap();
        std::fs::write(dir.join("ui/app.js"), "ok").unwrap();
        assert!(ui.get("app.js").is_some());
        for bad in [
            "../secret",
            "./app.js",
            "/app.js",
            "a//b",
            ".hidden",
            "app.js\0",
            "%2e%2e/secret",
            "",
        ] {
            assert!(ui.get(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn all_ui_files_together_stay_within_250_kb() {
        let total: usize = embedded().map(|(_, size)| size).sum();
        assert!(
            total <= BUDGET_BYTES,
            "the UI is {total} bytes, over its budget of {BUDGET_BYTES}: {:?}",
            embedded().collect::<Vec<_>>()
        );
    }

    #[test]
    fn embedded_paths_are_sorted_for_the_lookup() {
        let names: Vec<&str> = embedded().map(|(name, _)| name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }
}
