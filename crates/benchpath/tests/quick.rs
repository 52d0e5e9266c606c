//! The benchmark runs and prints (CI's check of it): `--quick` (Modbus → UNS, then the
//! Sparkplug sink, then the OPC UA source, and the floor) against the debug gateway
//! beside this package's binary, which `cargo test --workspace` builds (alone: `cargo
//! build -p backplane` first, or set `BACKPLANE_BIN`). No figure is judged: timing has no
//! place in a test; only that samples went the whole way and the tables came out.

#![allow(clippy::unwrap_used, clippy::panic)] // test helpers: failing loudly is the point

use std::path::{Path, PathBuf};
use std::process::Command;

fn bench() -> (Command, PathBuf) {
    let exe = env!("CARGO_BIN_EXE_bench-path");
    let gateway = std::env::var_os("BACKPLANE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(exe).with_file_name("backplane"));
    assert!(
        gateway.is_file(),
        "no gateway binary at {}: `cargo build -p backplane` (cargo test --workspace builds it) or set BACKPLANE_BIN",
        gateway.display()
    );
    (Command::new(exe), gateway)
}

fn run(args: &[&str]) -> String {
    let (mut command, gateway) = bench();
    let out = command.args(args).arg("--bin").arg(gateway).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bench-path {args:?} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The run line of the point `label`, after checking that samples reached the subscriber
/// ("... N of 1000 samples/s received", N > 0: device → gateway → broker → subscriber) and
/// that the table has the point's row.
fn delivered<'a>(stdout: &'a str, label: &str) -> &'a str {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{label} (run 1/1")))
        .unwrap_or_else(|| panic!("no line for the point:\n{stdout}"));
    received_and_cpu(line);
    assert!(
        stdout.contains(&format!("| {label} | 1000 |")),
        "no table row:\n{stdout}"
    );
    line
}

/// "... N of 1000 samples/s ...", N > 0, and a CPU figure.
fn received_and_cpu(line: &str) {
    let received: f64 = line
        .split_once(" of 1000 samples/s")
        .and_then(|(before, _)| before.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no received figure in {line:?}"));
    assert!(received > 0.0, "nothing reached the subscriber: {line}");
    assert!(line.contains("CPU-s per 1M samples"), "{line}");
}

#[test]
fn the_quick_point_delivers_samples_and_prints_its_table() {
    let stdout = run(&["--quick"]);
    delivered(&stdout, "1000 tags, QoS 0, sample");
}

#[test]
fn the_quick_sparkplug_point_counts_the_metrics_of_ddata_in_sequence() {
    let stdout = run(&["--quick", "--sink", "sparkplug"]);
    let line = delivered(&stdout, "1000 tags, modbus → sparkplug DDATA");
    assert!(line.contains(", seq gaps 0;"), "{line}");
}

#[test]
fn the_quick_opcua_point_delivers_subscribed_values() {
    let stdout = run(&["--quick", "--source", "opcua"]);
    delivered(&stdout, "1000 tags, opcua → uns, QoS 0, sample");
}

#[test]
fn the_memory_point_prints_rss_per_tag() {
    let stdout = run(&["--quick", "--run", "memory"]);
    assert!(
        stdout.contains("memory, 125 tags, device and broker unreachable (run 1/1): RSS "),
        "{stdout}"
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| 1000 |"))
        .unwrap_or_else(|| panic!("no memory row for 1000 tags:\n{stdout}"));
    assert!(row.contains("B (vs 125 tags)"), "{row}");
}

#[test]
fn the_floor_point_delivers_samples_without_the_gateway() {
    let stdout = run(&["--quick", "--run", "floor"]);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("floor, 1000 tags, QoS 0, sample (run 1/1): "))
        .unwrap_or_else(|| panic!("no floor line:\n{stdout}"));
    received_and_cpu(line);
}
