//! Embeds every file under `assets/` into the crate: `$OUT_DIR/assets.rs` holds one
//! `(path, bytes, etag)` row per file, sorted by path, so the binary serves the UI with no
//! files beside it. Cargo re-runs this when anything under `assets/` changes.

// A build script fails the build by panicking, with the message saying what was missing.
#![allow(clippy::expect_used)]

#[path = "src/fnv.rs"]
mod fnv;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let root =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("assets");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut out = String::from("static ASSETS: &[(&str, &[u8], &str)] = &[\n");
    for (name, path) in &files {
        let bytes = fs::read(path).expect("asset readable");
        writeln!(
            out,
            "    ({name:?}, include_bytes!({:?}), \"\\\"{:016x}\\\"\"),",
            path.display(),
            fnv::fnv1a(&bytes)
        )
        .expect("writing to a String");
    }
    out.push_str("];\n");
    let dest = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("assets.rs");
    fs::write(dest, out).expect("OUT_DIR writable");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    for entry in fs::read_dir(dir).expect("assets directory readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let name = path
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .replace('\\', "/");
            // Editor leftovers are not part of the UI.
            if !name.starts_with('.') && !name.ends_with('~') && !name.contains("/.") {
                files.push((name, path));
            }
        }
    }
}
