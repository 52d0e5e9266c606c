//! The `files` source through the engine, on real files in real directories: CSV and JSON
//! through a model, quarantine with reasons, the partial-file rules, restart and crash
//! recovery, limits. What the engine routed is read back from a `jsonl` sink's file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::time::Duration;

use backplane_engine::{Engine, Registry};
use backplane_files::FilesKind;
use backplane_testkit::engine::{eventually, metric, start};
use serde_json::Value as Json;

fn registry() -> Registry {
    let mut registry = backplane_engine::builtins();
    registry.add_source("files", FilesKind);
    registry
}

/// A plan with one `Silo` asset bound to source `lab` (the `[[sources]]` keys given) and
/// a `jsonl` sink writing `out.jsonl` in the data directory. Scans every 20 ms unless the
/// keys say otherwise.
fn plan(source_keys: &str, bindings: &str) -> String {
    let period = if source_keys.contains("period") {
        ""
    } else {
        "period = \"20ms\""
    };
    format!(
        r#"
[namespace]
enterprise = "acme"
site = "plant"

[models.Silo.attributes]
fat = {{ type = "float", unit = "%" }}
cells = {{ type = "uint" }}
passed = {{ type = "bool" }}

[[assets]]
path = "reception"
level = "area"

[[assets]]
path = "reception/silo-1"
model = "Silo"
source = "lab"
{bindings}

[[sources]]
name = "lab"
kind = "files"
path = "inbox"
{period}
{source_keys}

[[sinks]]
name = "out"
kind = "jsonl"
path = "out.jsonl"
"#
    )
}

const CSV_BINDINGS: &str = r#"bindings.fat = { address = "fat[silo=silo-1]" }
bindings.cells = { address = "cells:uint[silo=silo-1]" }"#;

/// Good samples the sink wrote for attribute `attribute`: (value as JSON, source time).
fn samples(dir: &Path, attribute: &str) -> Vec<(Json, String)> {
    let Ok(text) = std::fs::read_to_string(dir.join("out.jsonl")) else {
        return Vec::new();
    };
    text.lines()
        .map(|l| serde_json::from_str::<Json>(l).unwrap())
        .filter(|r| r["kind"] == "sample" && r["attribute"] == attribute && r["quality"] == "good")
        .map(|r| {
            (
                r["value"].clone(),
                r["source_time"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn floats(dir: &Path, attribute: &str) -> Vec<f64> {
    samples(dir, attribute)
        .iter()
        .map(|(v, _)| v.as_f64().unwrap())
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), text).unwrap();
}

async fn until_in(what: &str, dir: &Path, expected: &[&str]) {
    eventually(what, Duration::from_secs(20), || {
        let now = names(dir);
        expected.iter().all(|e| now.iter().any(|n| n == e)).then_some(())
    })
    .await;
}

/// The `.reason` of file `name`, once the file is in `quarantine/` (the reason is written
/// before the move).
async fn reason(inbox: &Path, name: &str) -> String {
    let quarantine = inbox.join("quarantine");
    eventually(&format!("{name} in quarantine/"), Duration::from_secs(20), || {
        quarantine.join(name).exists().then_some(())
    })
    .await;
    std::fs::read_to_string(quarantine.join(format!("{name}.reason"))).unwrap()
}

fn counter(engine: &Engine, event: &str) -> f64 {
    let series =
        format!("backplane_component_events_total{{component=\"source\",name=\"lab\",event=\"{event}\"}}");
    metric(&engine.handle().metrics_text(), &series).unwrap_or(0.0)
}

/// Waits for the source's counter `event` to reach `value` (it counts just after the move).
async fn until_counted(engine: &Engine, event: &str, value: f64) {
    eventually(&format!("{event} = {value}"), Duration::from_secs(10), || {
        (counter(engine, event) == value).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_json_files_flow_through_the_model_with_time_from_a_column_and_move_to_done() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    write(
        &inbox,
        "lab-1.csv",
        "sampled_at;silo;fat;cells\n05.12.2026 11:15:30;silo-1;3,92;182000\n05.12.2026 11:15:30;silo-2;4,05;210000\n05.12.2026 11:16:00;silo-1;3,95;\n",
    );
    let keys = "delimiter = \";\"\ndecimal = \",\"\ntime_column = \"sampled_at\"\ntime_format = \"%d.%m.%Y %H:%M:%S\"\ntimezone = \"Europe/Berlin\"\nsettle = \"0s\"";
    let engine = start(&plan(keys, CSV_BINDINGS), dir.path(), &registry());
    until_in("the CSV in done/", &inbox.join("done"), &["lab-1.csv"]).await;
    engine.shutdown().await;
    let fat = samples(dir.path(), "fat");
    assert_eq!(
        fat,
        [
            (Json::from(3.92), "2026-12-05T10:15:30Z".to_owned()),
            (Json::from(3.95), "2026-12-05T10:16:00Z".to_owned())
        ],
        "silo-1's rows only, Berlin local time to UTC"
    );
    assert_eq!(
        samples(dir.path(), "cells"),
        [(Json::from(182_000), "2026-12-05T10:15:30Z".to_owned())]
    );
    assert_eq!(names(&inbox), ["done", "quarantine"]);

    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    write(
        &inbox,
        "cmm-17.json",
        r#"{"report": {"part": "P-17", "rows": [
            {"at": "2026-12-05T09:00:00+01:00", "silo": "silo-1", "lab": {"fat": 3.8, "ok": true}},
            {"at": "2026-12-05T09:05:00+01:00", "silo": "silo-1", "lab": {"fat": "3.81", "ok": false}}
        ]}}"#,
    );
    let keys = "format = \"json\"\nrecords = \"report.rows\"\ntime_column = \"at\"\nsettle = \"0s\"";
    let bindings = "bindings.fat = { address = \"lab.fat[silo=silo-1]\" }\nbindings.passed = { address = \"lab.ok:bool\" }";
    let engine = start(&plan(keys, bindings), dir.path(), &registry());
    until_in("the JSON in done/", &inbox.join("done"), &["cmm-17.json"]).await;
    until_counted(&engine, "files_ingested", 1.0).await;
    until_counted(&engine, "records", 2.0).await;
    engine.shutdown().await;
    assert_eq!(
        samples(dir.path(), "fat"),
        [
            (Json::from(3.8), "2026-12-05T08:00:00Z".to_owned()),
            (Json::from(3.81), "2026-12-05T08:05:00Z".to_owned())
        ]
    );
    let passed: Vec<Json> = samples(dir.path(), "passed")
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    assert_eq!(passed, [Json::from(true), Json::from(false)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_csv_line_and_a_wrong_type_quarantine_their_files_whole_and_name_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    let header = "time,silo,fat,cells\n";
    write(
        &inbox,
        "a.csv",
        &format!("{header}2026-12-05T10:00:00Z,silo-1,3.1,100\n"),
    );
    // Line 3 cut short: its first line would be good, and must not be ingested either.
    write(
        &inbox,
        "b.csv",
        &format!("{header}2026-12-05T10:01:00Z,silo-1,9.1,100\n2026-12-05T10:02:00Z,silo-1\n"),
    );
    write(
        &inbox,
        "c.csv",
        &format!("{header}2026-12-05T10:03:00Z,silo-1,3.3,100\n"),
    );
    write(
        &inbox,
        "d.csv",
        &format!("{header}2026-12-05T10:04:00Z,silo-1,9.2,100\n2026-12-05T10:05:00Z,silo-1,9.3,many\n"),
    );
    let engine = start(
        &plan("time_column = \"time\"\nsettle = \"0s\"", CSV_BINDINGS),
        dir.path(),
        &registry(),
    );
    until_in(
        "the good files in done/",
        &inbox.join("done"),
        &["a.csv", "c.csv"],
    )
    .await;
    let b = reason(&inbox, "b.csv").await;
    let d = reason(&inbox, "d.csv").await;
    until_counted(&engine, "files_quarantined", 2.0).await;
    until_counted(&engine, "files_ingested", 2.0).await;
    engine.shutdown().await;
    assert!(
        b.starts_with("line 3, the record has 2 fields, the header 4"),
        "{b}"
    );
    assert!(
        d.starts_with("line 3, field `cells`: \"many\" is not an unsigned integer"),
        "{d}"
    );
    assert_eq!(floats(dir.path(), "fat"), [3.1, 3.3], "nothing of b.csv or d.csv");
    assert_eq!(names(&inbox), ["done", "quarantine"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_quarantined_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    write(
        &inbox,
        "bad.json",
        "[\n  {\"time\": \"2026-12-05T10:00:00Z\", \"fat\": 3.1},\n  {\"time\": \"2026-12-05T10:01:00Z\", \"fat\": 3.2,\n",
    );
    write(
        &inbox,
        "good.json",
        "[{\"time\": \"2026-12-05T10:02:00Z\", \"fat\": 3.3}]",
    );
    let keys = "format = \"json\"\ntime_column = \"time\"\nsettle = \"0s\"";
    let engine = start(
        &plan(keys, "bindings.fat = { address = \"fat\" }"),
        dir.path(),
        &registry(),
    );
    until_in("good.json in done/", &inbox.join("done"), &["good.json"]).await;
    let reason = reason(&inbox, "bad.json").await;
    engine.shutdown().await;
    assert!(
        reason.starts_with("line 4, not JSON at column 0: EOF"),
        "{reason}"
    );
    assert_eq!(floats(dir.path(), "fat"), [3.3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_still_being_written_is_not_read_until_its_size_and_time_settle() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    let engine = start(
        &plan("time_column = \"time\"\nsettle = \"1500ms\"", CSV_BINDINGS),
        dir.path(),
        &registry(),
    );
    // The instrument writes in place: first half a line ("3." reads as a number), then the rest.
    write(
        &inbox,
        "slow.csv",
        "time,silo,fat,cells\n2026-12-05T10:00:00Z,silo-1,3.",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(inbox.join("slow.csv"))
            .unwrap();
        f.write_all(b"5,100\n2026-12-05T10:01:00Z,silo-1,3.6,100\n")
            .unwrap();
    }
    until_in("slow.csv in done/", &inbox.join("done"), &["slow.csv"]).await;
    engine.shutdown().await;
    assert_eq!(floats(dir.path(), "fat"), [3.5, 3.6], "the whole file, read once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_file_is_never_read_and_is_read_once_renamed_into_place() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    let engine = start(
        &plan("time_column = \"time\"\nsettle = \"0s\"", CSV_BINDINGS),
        dir.path(),
        &registry(),
    );
    for name in ["r.csv.part", "r.csv.tmp", ".r.csv"] {
        write(
            &inbox,
            name,
            "time,silo,fat,cells\n2026-12-05T10:00:00Z,silo-1,9.9,100\n",
        );
    }
    write(
        &inbox,
        "marker.csv",
        "time,silo,fat,cells\n2026-12-05T10:00:00Z,silo-1,1.0,100\n",
    );
    until_in("marker.csv in done/", &inbox.join("done"), &["marker.csv"]).await;
    // Scans went past the partial names; another few to be sure they are left alone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(floats(dir.path(), "fat"), [1.0]);
    std::fs::write(
        inbox.join("r.csv.part"),
        "time,silo,fat,cells\n2026-12-05T10:01:00Z,silo-1,3.7,100\n",
    )
    .unwrap();
    std::fs::rename(inbox.join("r.csv.part"), inbox.join("r.csv")).unwrap();
    until_in("r.csv in done/", &inbox.join("done"), &["r.csv"]).await;
    engine.shutdown().await;
    assert_eq!(floats(dir.path(), "fat"), [1.0, 3.7]);
    assert_eq!(names(&inbox), [".r.csv", "done", "quarantine", "r.csv.tmp"]);
}

const FILES: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_mid_way_and_restarting_ingests_each_file_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    for i in 0..FILES {
        write(
            &inbox,
            &format!("f{i:02}.csv"),
            &format!("time,silo,fat,cells\n2026-12-05T10:{i:02}:00Z,silo-1,{i},100\n"),
        );
    }
    let config = plan(
        "time_column = \"time\"\nsettle = \"0s\"\nperiod = \"50ms\"\nmax_files_per_scan = 1",
        CSV_BINDINGS,
    );
    let engine = start(&config, dir.path(), &registry());
    eventually("a few files done", Duration::from_secs(20), || {
        (names(&inbox.join("done")).len() >= 5).then_some(())
    })
    .await;
    engine.shutdown().await;
    let done = names(&inbox.join("done")).len();
    assert!(done < FILES, "stopped mid-way ({done} done)");

    let engine = start(&config, dir.path(), &registry());
    eventually("every file done", Duration::from_secs(30), || {
        (names(&inbox.join("done")).len() == FILES).then_some(())
    })
    .await;
    engine.shutdown().await;
    let mut fat = floats(dir.path(), "fat");
    fat.sort_by(f64::total_cmp);
    let expected: Vec<f64> = (0..FILES).map(|i| i as f64).collect();
    assert_eq!(fat, expected, "each file exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_in_the_ledger_from_before_a_crash_is_moved_to_done_without_being_ingested_again() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    let ingested = "time,silo,fat,cells\n2026-12-05T10:00:00Z,silo-1,9.9,100\n";
    write(&inbox, "crashed.csv", ingested);
    // The state a crash after the ledger write and before the move leaves behind.
    let mut ledger = backplane_files::ledger::Ledger::open(&dir.path().join("files/lab")).unwrap();
    ledger
        .record(
            &backplane_files::ledger::digest(ingested.as_bytes()),
            "crashed.csv",
        )
        .unwrap();
    drop(ledger);
    write(
        &inbox,
        "next.csv",
        "time,silo,fat,cells\n2026-12-05T10:01:00Z,silo-1,3.2,100\n",
    );
    let engine = start(
        &plan("time_column = \"time\"\nsettle = \"0s\"", CSV_BINDINGS),
        dir.path(),
        &registry(),
    );
    until_in("both in done/", &inbox.join("done"), &["crashed.csv", "next.csv"]).await;
    until_counted(&engine, "files_repeated", 1.0).await;
    engine.shutdown().await;
    assert_eq!(floats(dir.path(), "fat"), [3.2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_file_is_quarantined_unread_and_says_which_limit() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    let mut big = String::from("time,silo,fat,cells\n");
    for i in 0..20 {
        big.push_str(&format!("2026-12-05T10:{i:02}:00Z,silo-1,9.9,100\n"));
    }
    write(&inbox, "big.csv", &big);
    write(
        &inbox,
        "small.csv",
        "time,silo,fat,cells\n2026-12-05T11:00:00Z,silo-1,3.4,100\n",
    );
    let keys = "time_column = \"time\"\nsettle = \"0s\"\nmax_file_bytes = 200";
    let engine = start(&plan(keys, CSV_BINDINGS), dir.path(), &registry());
    until_in("small.csv in done/", &inbox.join("done"), &["small.csv"]).await;
    let reason = reason(&inbox, "big.csv").await;
    engine.shutdown().await;
    assert!(
        reason.starts_with(&format!(
            "the file is {} bytes, more than max_file_bytes = 200",
            big.len()
        )),
        "{reason}"
    );
    assert_eq!(floats(dir.path(), "fat"), [3.4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_lab_analyser_drops_files_that_the_dairy_source_ingests_per_silo() {
    let dir = tempfile::tempdir().unwrap();
    // examples/dairy.toml's own `reception-lab` source table, renamed and with a short period.
    let dairy = include_str!("../../../examples/dairy.toml");
    let start_at = dairy.find("[[sources]]\nname = \"reception-lab\"").unwrap();
    let table = &dairy[start_at..];
    let table = &table[..table.find("\n\n").unwrap()];
    let keys: String = table
        .lines()
        .filter(|l| !l.starts_with("[[sources]]") && !l.starts_with("name") && !l.starts_with("kind"))
        .filter(|l| !l.starts_with("period") && !l.starts_with("settle") && !l.starts_with("path"))
        .map(|l| format!("{l}\n"))
        .collect();
    let config = plan(
        &format!("{keys}settle = \"0s\"").replace("path = \"inbox\"", ""),
        "bindings.fat = { address = \"fat_pct[silo=silo-1]\" }\nbindings.cells = { address = \"somatic_cells:uint[silo=silo-1]\" }",
    )
    .replace("path = \"inbox\"", &format!("path = \"{}\"", backplane_files::simulator::LAB_INBOX));
    let inbox = dir.path().join(backplane_files::simulator::LAB_INBOX);
    let analyser = backplane_files::spawn_lab_analyser(inbox.clone()).unwrap();
    let engine = start(&config, dir.path(), &registry());
    until_in(
        "the first lab file in done/",
        &inbox.join("done"),
        &["lab-000001.csv"],
    )
    .await;
    analyser.abort();
    engine.shutdown().await;
    let fat = samples(dir.path(), "fat");
    assert_eq!(fat.len(), 1, "{fat:?}");
    let (value, time) = &fat[0];
    assert!((3.0..=5.0).contains(&value.as_f64().unwrap()), "{value}");
    assert!(time.ends_with('Z'), "{time}");
    assert_eq!(samples(dir.path(), "cells").len(), 1);
}

/// An export as Python's `csv` module writes it (a third-party writer, as an instrument's
/// software would be): quoted fields holding the delimiter, a quote and a line break, CRLF
/// line ends, written as `.part` and renamed into place.
const PYTHON_EXPORT: &str = r#"
import csv, os, sys
inbox = sys.argv[1]
part = os.path.join(inbox, "export.csv.part")
with open(part, "w", newline="") as f:
    w = csv.writer(f, delimiter=";", quoting=csv.QUOTE_MINIMAL)
    w.writerow(["time", "silo", "fat", "cells", "note"])
    w.writerow(["2026-12-05T10:00:00Z", "silo-1", "3,71", "150000", 'tanker 7; "late"\nresampled'])
    w.writerow(["2026-12-05T10:05:00Z", "silo-1", "3,72", "151000", ""])
os.replace(part, os.path.join(inbox, "export.csv"))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_written_by_pythons_csv_module_with_quoted_delimiters_and_line_breaks_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let keys = "delimiter = \";\"\ndecimal = \",\"\ntime_column = \"time\"\nsettle = \"0s\"";
    let bindings = "bindings.fat = { address = \"fat[silo=silo-1]\" }\nbindings.cells = { address = \"cells:uint[silo=silo-1]\" }";
    let engine = start(&plan(keys, bindings), dir.path(), &registry());
    let status = std::process::Command::new(backplane_testkit::peers::python())
        .arg("-c")
        .arg(PYTHON_EXPORT)
        .arg(&inbox)
        .status()
        .unwrap();
    assert!(status.success());
    until_in("export.csv in done/", &inbox.join("done"), &["export.csv"]).await;
    engine.shutdown().await;
    assert_eq!(floats(dir.path(), "fat"), [3.71, 3.72]);
    let cells: Vec<Json> = samples(dir.path(), "cells").into_iter().map(|(v, _)| v).collect();
    assert_eq!(cells, [Json::from(150_000), Json::from(151_000)]);
}
