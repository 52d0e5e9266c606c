//! The `sql` source against the local PostgreSQL and MariaDB: each behaviour once per
//! database, each test in a database of its own, read through a whole engine into a
//! jsonl sink.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use backplane_model::ContextField;
use common::{Conn, Peer, TestDb, config, counter, samples, seqs, start, wait_seqs};

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

async fn insert_rows(c: &mut Conn, from: i64, to: i64) {
    for i in from..=to {
        c.exec(&format!(
            "INSERT INTO results (temp, note) VALUES ({i}.5, 'r{i}')"
        ))
        .await;
    }
}

async fn rows_reach_the_model_in_order(peer: Peer) {
    let db = TestDb::create(peer, "rows").await;
    let mut c = db.conn().await;
    db.results_table(&mut c).await;
    insert_rows(&mut c, 1, 25).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = start(
        &config(
            &db.url(),
            "table = \"results\"\nwatermark = \"id\"\ntime = \"ts\"\nbatch = 7",
        ),
        dir.path(),
    );
    let got = wait_seqs(dir.path(), 25).await;
    assert_eq!(got, (1..=25).collect::<Vec<_>>());
    let temps: Vec<serde_json::Value> = samples(dir.path())
        .into_iter()
        .filter(|s| s["attribute"] == "temp")
        .collect();
    assert_eq!(temps[2]["value"], 3.5);
    assert_eq!(temps[2]["quality"], "good");
    assert!(temps[2]["source_time"].is_string(), "{}", temps[2]);
    // New rows later are read too.
    insert_rows(&mut c, 26, 30).await;
    assert_eq!(wait_seqs(dir.path(), 30).await, (1..=30).collect::<Vec<_>>());
    engine.shutdown().await;
    drop(c);
    db.drop().await;
}

async fn a_restarted_engine_reads_every_row_exactly_once(peer: Peer) {
    let db = TestDb::create(peer, "restart").await;
    let mut c = db.conn().await;
    db.results_table(&mut c).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&db.url(), "table = \"results\"\nwatermark = \"id\"\nbatch = 5");
    let writer = {
        let mut w = db.conn().await;
        tokio::spawn(async move {
            for i in 1..=150 {
                w.exec(&format!("INSERT INTO results (temp) VALUES ({i})")).await;
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            }
        })
    };
    for round in 0..3 {
        let engine = start(&cfg, dir.path());
        let seen = seqs(dir.path()).len();
        // Stop while rows are still coming (or after the last round's share).
        wait_seqs(dir.path(), seen + 20).await;
        engine.shutdown().await;
        assert!(round < 3);
    }
    writer.await.unwrap();
    let engine = start(&cfg, dir.path());
    let got = wait_seqs(dir.path(), 150).await;
    engine.shutdown().await;
    let again = seqs(dir.path());
    assert_eq!(got.len(), again.len(), "rows read after the end");
    assert_eq!(
        sorted(again.clone()),
        (1..=150).collect::<Vec<_>>(),
        "a gap or a double"
    );
    assert_eq!(again, sorted(again.clone()), "out of order");
    drop(c);
    db.drop().await;
}

async fn a_null_or_a_wrong_type_is_a_counted_bad_cell_and_the_rows_around_go_on(peer: Peer) {
    let db = TestDb::create(peer, "cells").await;
    let mut c = db.conn().await;
    db.results_table(&mut c).await;
    // The reading comes from the text column `note`: "12.5", "n/a", NULL, "13".
    c.exec("INSERT INTO results (note) VALUES ('12.5')").await;
    c.exec("INSERT INTO results (note) VALUES ('n/a')").await;
    c.exec("INSERT INTO results (note) VALUES (NULL)").await;
    c.exec("INSERT INTO results (note) VALUES ('13')").await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&db.url(), "table = \"results\"\nwatermark = \"id\"").replace(
        "bindings.temp = { address = \"temp\" }",
        "bindings.temp = { address = \"note\" }",
    );
    let engine = start(&cfg, dir.path());
    assert_eq!(wait_seqs(dir.path(), 4).await, [1, 2, 3, 4]);
    let temps: Vec<serde_json::Value> = samples(dir.path())
        .into_iter()
        .filter(|s| s["attribute"] == "temp" && s["quality_reason"] != "last_usable_value")
        .collect();
    assert_eq!(temps.len(), 4, "{temps:?}");
    assert_eq!(
        (temps[0]["value"].clone(), temps[0]["quality"].clone()),
        (12.5.into(), "good".into())
    );
    assert_eq!(temps[1]["quality"], "bad");
    assert_eq!(temps[1]["quality_reason"], "type_mismatch");
    assert_eq!(temps[2]["quality"], "bad");
    assert_eq!(
        (temps[3]["value"].clone(), temps[3]["quality"].clone()),
        (13.0.into(), "good".into())
    );
    assert_eq!(counter(&engine, "bad_cells"), 1.0);
    assert_eq!(counter(&engine, "null_cells"), 1.0);
    engine.shutdown().await;
    drop(c);
    db.drop().await;
}

async fn a_killed_session_reconnects_without_a_lost_or_doubled_row(peer: Peer) {
    let db = TestDb::create(peer, "kill").await;
    let mut c = db.conn().await;
    db.results_table(&mut c).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&db.url(), "table = \"results\"\nwatermark = \"id\"\nbatch = 3");
    let engine = start(&cfg, dir.path());
    let mut killer = db.conn().await;
    let mut kills = 0;
    for chunk in 0..6 {
        insert_rows(&mut c, chunk * 20 + 1, chunk * 20 + 20).await;
        wait_seqs(dir.path(), (chunk * 20 + 5) as usize).await;
        if db.kill_source_session(&mut killer, &mut c).await {
            kills += 1;
        }
    }
    wait_seqs(dir.path(), 120).await;
    assert!(kills >= 3, "only {kills} sessions killed");
    // Each killed session failed a poll and was replaced.
    backplane_testkit::engine::eventually("the source counted its failures", Duration::from_secs(10), || {
        (counter(&engine, "failures") >= f64::from(kills)).then_some(())
    })
    .await;
    engine.shutdown().await;
    let all = seqs(dir.path());
    assert_eq!(
        all,
        (1..=120).collect::<Vec<_>>(),
        "a gap, a double or out of order"
    );
    drop((c, killer));
    db.drop().await;
}

async fn rows_of_an_erp_table_set_the_line_context(peer: Peer) {
    let db = TestDb::create(peer, "ctx").await;
    let mut c = db.conn().await;
    c.exec("CREATE TABLE orders (id INT PRIMARY KEY, work_order VARCHAR(40), lot VARCHAR(40), temp DOUBLE PRECISION)")
        .await;
    c.exec(
        "INSERT INTO orders VALUES (1, 'WO-1', 'B-1', 1.0), (2, 'WO-1', 'B-1', 2.0), (3, 'WO-2', 'B-7', 3.0)",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &db.url(),
        "table = \"orders\"\nwatermark = \"id\"\ncontext_asset = \"line-1\"\ncontext = { work_order = \"work_order\", batch = \"lot\" }",
    );
    let engine = start(&cfg, dir.path());
    wait_seqs(dir.path(), 3).await;
    let handle = engine.handle();
    let line = handle.topology().asset_index("acme/plant/line-1").unwrap();
    let (own, _) = handle.context(line);
    assert_eq!(own.get(ContextField::WorkOrder).map(|s| &**s), Some("WO-2"));
    assert_eq!(own.get(ContextField::Batch).map(|s| &**s), Some("B-7"));
    // Each row's samples carry that row's context.
    let by_seq: Vec<(i64, String)> = samples(dir.path())
        .iter()
        .filter(|s| s["attribute"] == "seq" && s["quality"] == "good")
        .map(|s| {
            (
                s["value"].as_i64().unwrap(),
                s["context"]["work_order"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        by_seq,
        [(1, "WO-1".into()), (2, "WO-1".into()), (3, "WO-2".into())]
    );
    engine.shutdown().await;
    drop(c);
    db.drop().await;
}

async fn rows_sharing_a_time_across_a_batch_boundary_are_all_read(peer: Peer) {
    let db = TestDb::create(peer, "ties").await;
    let mut c = db.conn().await;
    db.results_table(&mut c).await;
    // Seven rows with one time, then two later ones; polls of 3 rows split the seven.
    for i in 1..=7 {
        c.exec(&format!(
            "INSERT INTO results (ts, temp) VALUES ('2026-01-01 10:00:00', {i})"
        ))
        .await;
    }
    c.exec("INSERT INTO results (ts, temp) VALUES ('2026-01-01 10:00:01', 8), ('2026-01-01 10:00:02', 9)")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &db.url(),
        "table = \"results\"\nwatermark = \"ts\"\ntiebreak = \"id\"\ntime = \"ts\"\nbatch = 3",
    );
    let engine = start(&cfg, dir.path());
    wait_seqs(dir.path(), 9).await;
    // One more row with the time already passed and a higher id: read as well.
    c.exec("INSERT INTO results (ts, temp) VALUES ('2026-01-01 10:00:02', 10)")
        .await;
    let got = wait_seqs(dir.path(), 10).await;
    engine.shutdown().await;
    assert_eq!(got, (1..=10).collect::<Vec<_>>());
    drop(c);
    db.drop().await;
}

/// Transaction A draws its row first but commits after B: a reader without `settle`
/// would pass B's key and never see A's row.
async fn a_settle_window_reads_a_row_committed_late(peer: Peer, settle: &str) -> Vec<i64> {
    let db = TestDb::create(peer, "settle").await;
    let mut c = db.conn().await;
    db.results_table(&mut c).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &db.url(),
        &format!(
            "table = \"results\"\nwatermark = \"ts\"\ntiebreak = \"id\"\ntime = \"ts\"\nsettle = \"{settle}\""
        ),
    );
    let engine = start(&cfg, dir.path());
    let mut a = db.conn().await;
    a.exec("BEGIN").await;
    a.exec("INSERT INTO results (temp) VALUES (1)").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.exec("INSERT INTO results (temp) VALUES (2)").await;
    // B's row is read at once without settle; A commits 400 ms later.
    tokio::time::sleep(Duration::from_millis(400)).await;
    a.exec("COMMIT").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.exec("INSERT INTO results (temp) VALUES (3)").await;
    let got = backplane_testkit::engine::eventually_every(
        "row 3",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            let s = seqs(dir.path());
            s.contains(&3).then_some(s)
        },
    )
    .await;
    engine.shutdown().await;
    drop((a, c));
    db.drop().await;
    got
}

async fn a_query_with_a_qualified_time_watermark_reads_only_its_rows(peer: Peer) {
    let db = TestDb::create(peer, "query").await;
    let mut c = db.conn().await;
    db.results_table(&mut c).await;
    // Rows 3 and 6 have no reading: the query leaves them out.
    for i in 1..=8 {
        let temp = if i % 3 == 0 {
            "NULL".to_owned()
        } else {
            format!("{i}")
        };
        c.exec(&format!(
            "INSERT INTO results (ts, temp) VALUES ('2026-01-01 10:00:0{}', {temp})",
            i / 4
        ))
        .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &db.url(),
        "query = \"SELECT r.id, r.ts, r.temp FROM results r WHERE r.temp IS NOT NULL AND {watermark}\"\nwatermark = \"r.ts\"\ntiebreak = \"r.id\"\ntime = \"r.ts\"\nbatch = 2",
    );
    let engine = start(&cfg, dir.path());
    let got = wait_seqs(dir.path(), 6).await;
    engine.shutdown().await;
    assert_eq!(got, [1, 2, 4, 5, 7, 8]);
    drop(c);
    db.drop().await;
}

macro_rules! per_peer {
    ($($name:ident,)*) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Peer::Postgres).await;
                }
            )*

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn with_settle_a_row_committed_late_is_read_in_order() {
                assert_eq!(super::a_settle_window_reads_a_row_committed_late(super::Peer::Postgres, "1s").await, [1, 2, 3]);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn without_settle_a_row_committed_late_is_skipped_as_documented() {
                assert_eq!(super::a_settle_window_reads_a_row_committed_late(super::Peer::Postgres, "0s").await, [2, 3]);
            }
        }
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Peer::MariaDb).await;
                }
            )*

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn with_settle_a_row_committed_late_is_read_in_order() {
                assert_eq!(super::a_settle_window_reads_a_row_committed_late(super::Peer::MariaDb, "1s").await, [1, 2, 3]);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn without_settle_a_row_committed_late_is_skipped_as_documented() {
                assert_eq!(super::a_settle_window_reads_a_row_committed_late(super::Peer::MariaDb, "0s").await, [2, 3]);
            }
        }
    };
}

per_peer! {
    rows_reach_the_model_in_order,
    a_restarted_engine_reads_every_row_exactly_once,
    a_null_or_a_wrong_type_is_a_counted_bad_cell_and_the_rows_around_go_on,
    a_killed_session_reconnects_without_a_lost_or_doubled_row,
    rows_of_an_erp_table_set_the_line_context,
    rows_sharing_a_time_across_a_batch_boundary_are_all_read,
    a_query_with_a_qualified_time_watermark_reads_only_its_rows,
}

#[test]
fn the_lims_example_loads_with_both_sources() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/lims.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plan = backplane_testkit::engine::plan(&text, dir.path(), &common::registry());
    let kinds: Vec<(&str, &str)> = plan
        .sources
        .iter()
        .map(|s| (s.name.as_str(), s.kind.as_str()))
        .collect();
    assert_eq!(kinds, [("lims", "sql"), ("erp", "sql")]);
}
