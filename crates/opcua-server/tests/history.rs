//! HistoryRead from asyncua against the demo plant's historian: raw values (across
//! continuation points) and the five processed aggregates, each compared with what the
//! historian itself answers for the same query.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use backplane_historian::{AggregateQuery, ContextFilter, Selector, Store};
use backplane_model::{Timestamp, Value};
use common::*;
use serde_json::{Value as Json, json};

fn millis(t: Timestamp) -> i64 {
    t.unix_nanos() / 1_000_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reads_answer_what_the_historian_answers() {
    // Seven values per answer: a raw read of a few seconds needs continuation points.
    let plant = Plant::start(&format!("{OPEN}\nlimits = {{ max_history_values = 7 }}")).await;
    let store = plant
        .engine
        .as_ref()
        .unwrap()
        .handle()
        .services()
        .named::<Store>("history")
        .unwrap();
    let tag = format!("{PASTEURIZER}/hold_temperature");
    // A closed range in the past, on whole milliseconds (what the client sends).
    let from = Timestamp::from_unix_millis(millis(Timestamp::now()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let to = Timestamp::from_unix_millis(millis(Timestamp::now()));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let series = store.select(&Selector::Tags(vec![tag.clone()]));
    // Values, and whether each is good.
    let stored = || -> Vec<(f64, bool)> {
        store
            .raw(&series, from, to, &ContextFilter::default(), usize::MAX)
            .unwrap()[0]
            .points
            .iter()
            .map(|p| match p.value {
                Some(Value::Float(x)) => (x, p.quality.is_good()),
                ref other => panic!("{other:?}"),
            })
            .collect()
    };
    let ns = namespace(&plant.url(), &Session::default()).await;
    let id = node(ns, &tag);
    let processed = |aggregate: &str| {
        json!({"op": "history_processed", "node": id, "start": millis(from), "end": millis(to),
               "interval_ms": 1000, "aggregate": aggregate})
    };
    // On a loaded machine a point of the range may reach the store late: compare with
    // the historian's answers from before and after the client's, once those agree.
    let (r, own) = loop {
        let before = stored();
        let r = asyncua(
            &plant.url(),
            &Session::default(),
            json!([
                {"op": "history_raw", "node": id, "start": millis(from), "end": millis(to), "max": 0},
                processed("Average"),
                processed("Minimum"),
                processed("Maximum"),
                processed("Count"),
                processed("TimeAverage"),
            ]),
        )
        .await
        .unwrap();
        if stored() == before {
            break (r, before);
        }
    };
    assert!(own.len() > 7, "the historian holds {} points", own.len());
    assert_eq!(r[0]["status"], "Good", "{}", r[0]);
    let raw: Vec<(f64, bool)> = r[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v[1].as_f64().unwrap(), v[2] == "Good"))
        .collect();
    assert_eq!(
        raw, own,
        "raw values and their status, read across continuation points"
    );

    let buckets = store
        .aggregate(
            &series,
            &AggregateQuery {
                from,
                to,
                every: Duration::from_secs(1),
                context: ContextFilter::default(),
            },
        )
        .unwrap()
        .remove(0)
        .buckets;
    let values = |i: usize| -> Vec<Json> {
        r[i]["values"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r[i]))
            .iter()
            .map(|v| v[1].clone())
            .collect()
    };
    let expect =
        |f: &dyn Fn(&backplane_historian::Bucket) -> Json| -> Vec<Json> { buckets.iter().map(f).collect() };
    let opt = |x: Option<f64>| x.map_or(Json::Null, |x| json!(x));
    assert_eq!(values(1), expect(&|b| opt(b.mean)), "Average");
    assert_eq!(values(2), expect(&|b| opt(b.min)), "Minimum");
    assert_eq!(values(3), expect(&|b| opt(b.max)), "Maximum");
    assert_eq!(values(4), expect(&|b| json!(b.count)), "Count");
    assert_eq!(values(5), expect(&|b| opt(b.twa)), "TimeAverage");
    plant.stop().await;
}
