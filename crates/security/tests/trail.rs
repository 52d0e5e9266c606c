//! The audit trail on disk: durable, chained across reopen and rotation, damage detected.
#![allow(clippy::unwrap_used)] // test helpers

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use backplane_security::{
    AuditEvent, AuditLog, AuditRecorder, AuthMethod, Identity, Outcome, Query, Role, verify,
};

fn event(n: u32, who: &str, action: &str) -> AuditEvent {
    AuditEvent {
        who: Some(Identity::new(who, Role::Engineer, AuthMethod::Password)),
        from: "http 127.0.0.1:40000".into(),
        action: action.into(),
        target: format!("acme/plant-a/line-{n}/filler"),
        old: Some(serde_json::json!(n)),
        new: Some(serde_json::json!(n + 1)),
        outcome: Outcome::Done,
    }
}

fn only_file(dir: &Path) -> PathBuf {
    let mut files: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.remove(0)
}

#[test]
fn records_continue_the_chain_after_a_reopen_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    for n in 1..=3 {
        assert_eq!(log.record(event(n, "anna", "context.set")).unwrap(), u64::from(n));
    }
    drop(log);
    let log = AuditLog::open(dir.path()).unwrap();
    assert_eq!(log.record(event(4, "ben", "write")).unwrap(), 4);
    let v = verify(dir.path()).unwrap();
    assert!(v.intact(), "{:?}", v.breaks);
    assert_eq!(v.records, 4);
    assert_eq!(v.head, Some(log.head()));
}

#[cfg(unix)]
#[test]
fn the_trail_is_private_to_the_gateway_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let trail = dir.path().join("audit");
    let log = AuditLog::open(&trail).unwrap();
    log.record(event(1, "anna", "login")).unwrap();
    assert_eq!(fs::metadata(&trail).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(
        fs::metadata(only_file(&trail)).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_flipped_byte_anywhere_is_reported_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    for n in 1..=5 {
        log.record(event(n, "anna", "write")).unwrap();
    }
    drop(log);
    let path = only_file(dir.path());
    let clean = fs::read(&path).unwrap();
    let lines: Vec<usize> = clean
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i)
        .collect();
    // A byte inside the 3rd line's target, then one inside the last line's hash.
    for (at, line) in [(lines[1] + 60, 3), (lines[4] - 5, 5)] {
        let mut bad = clean.clone();
        bad[at] ^= 0x01;
        fs::write(&path, &bad).unwrap();
        let v = verify(dir.path()).unwrap();
        assert!(!v.intact());
        assert_eq!(v.breaks[0].1, line, "{:?}", v.breaks);
    }
}

#[test]
fn a_removed_record_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    for n in 1..=4 {
        log.record(event(n, "anna", "write")).unwrap();
    }
    drop(log);
    let path = only_file(dir.path());
    let text = fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, l)| l)
        .collect();
    fs::write(&path, kept.join("\n") + "\n").unwrap();
    let v = verify(dir.path()).unwrap();
    assert!(!v.intact());
    assert!(v.breaks[0].2.contains("does not follow"), "{:?}", v.breaks);
}

#[test]
fn a_torn_last_record_is_cut_off_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    log.record(event(1, "anna", "write")).unwrap();
    drop(log);
    // A crash in the middle of the second write: never acknowledged.
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(only_file(dir.path()))
        .unwrap();
    f.write_all(br#"{"seq":2,"at":"2026-12-04T10:00:00Z","who":nu"#)
        .unwrap();
    drop(f);
    let log = AuditLog::open(dir.path()).unwrap();
    assert_eq!(log.record(event(2, "anna", "write")).unwrap(), 2);
    let v = verify(dir.path()).unwrap();
    assert!(v.intact(), "{:?}", v.breaks);
    assert_eq!(v.records, 2);
}

#[test]
fn a_damaged_trail_keeps_recording_in_a_new_chain_and_verify_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    for n in 1..=3 {
        log.record(event(n, "anna", "write")).unwrap();
    }
    drop(log);
    let path = only_file(dir.path());
    let text = fs::read_to_string(&path).unwrap().replace("line-2", "line-9");
    fs::write(&path, text).unwrap();
    let log = AuditLog::open(dir.path()).unwrap();
    let seq = log.record(event(4, "anna", "write")).unwrap();
    assert!(seq > 3);
    let page = log
        .query(&Query {
            action: Some("audit.".into()),
            limit: 10,
            ..Query::default()
        })
        .unwrap();
    assert_eq!(page.records.len(), 1);
    let v = verify(dir.path()).unwrap();
    assert_eq!(v.files, 2);
    assert!(
        v.breaks.iter().any(|b| b.2.contains("was changed")),
        "{:?}",
        v.breaks
    );
    assert!(
        v.breaks.iter().any(|b| b.2.contains("restarted the chain")),
        "{:?}",
        v.breaks
    );
}

#[test]
fn rotation_chains_one_file_to_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open_rotating(dir.path(), 1000).unwrap();
    for n in 1..=20 {
        log.record(event(n, "anna", "write")).unwrap();
    }
    let v = verify(dir.path()).unwrap();
    assert!(v.files > 3, "{} files", v.files);
    assert!(v.intact(), "{:?}", v.breaks);
    assert_eq!(v.records, 20);
    // Deleting a middle file breaks the chain.
    let mut files: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    fs::remove_file(&files[1]).unwrap();
    assert!(!verify(dir.path()).unwrap().intact());
}

#[test]
fn queries_filter_and_page_with_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open_rotating(dir.path(), 2000).unwrap();
    for n in 1..=30 {
        let (who, action) = if n % 3 == 0 {
            ("ben", "login")
        } else {
            ("anna", "work_order.start")
        };
        log.record(event(n, who, action)).unwrap();
    }
    let q = Query {
        who: Some("anna".into()),
        action: Some("work_order.".into()),
        limit: 7,
        ..Query::default()
    };
    let first = log.query(&q).unwrap();
    assert_eq!(first.records.len(), 7);
    assert!(first.more);
    let mut seen = first.records.len();
    let mut after = first.last.unwrap();
    loop {
        let page = log.query(&Query { after, ..q.clone() }).unwrap();
        seen += page.records.len();
        match (page.more, page.last) {
            (true, Some(last)) => after = last,
            _ => break,
        }
    }
    assert_eq!(seen, 20);
    let ben = log
        .query(&Query {
            who: Some("ben".into()),
            limit: 100,
            ..Query::default()
        })
        .unwrap();
    assert_eq!(ben.records.len(), 10);
    let record: serde_json::Value = serde_json::from_slice(&ben.records[0]).unwrap();
    assert_eq!(record["seq"], 3);
    assert_eq!(record["who"]["name"], "ben");
    assert_eq!(record["outcome"]["result"], "done");
}
