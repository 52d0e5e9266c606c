//! End to end from the demo configuration (examples/dairy.toml, periods sped up) with a
//! historian sink: samples and context events are stored, "all pasteurizer hold
//! temperatures during batch B-77" finds exactly that batch's readings, and the Filler
//! export has the documented columns and one row per filler per interval.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backplane_engine::{Engine, EngineHandle};
use backplane_historian::export::{self, ExportOptions, TableSpec};
use backplane_historian::{
    ContextFilter, EventQuery, ExportFormat, HistorianKind, Selector, SeriesInfo, Store,
};
use backplane_model::{ContextField, ContextPatch, Timestamp};
use backplane_testkit::dairy;
use backplane_testkit::engine as support;

const PASTEURIZER: &str = "acme-dairy/plant-a/processing/pasteurizer";
const LINE_1: &str = "acme-dairy/plant-a/packaging/line-1";

fn demo_config() -> String {
    // The demo with simulated devices, with its historian sink replaced by this one
    // (shorter flush interval).
    let mut text = dairy::simulated_without_history();
    text.push_str(
        r#"
[[sinks]]
name = "history"
kind = "historian"
path = "history"
flush_interval = "1s"
"#,
    );
    text
}

struct Demo {
    engine: Engine,
    handle: EngineHandle,
    store: Arc<Store>,
}

fn start(data_dir: &Path) -> Demo {
    let mut registry = backplane_engine::builtins();
    registry.add_sink("historian", HistorianKind::new());
    // Production sets the shift and the batch (the calendar, the batch-number rule).
    registry.add_stage("production", Arc::new(backplane_production::ProductionStageKind));
    let plan = support::plan(&demo_config(), data_dir, &registry);
    let services = registry.prepare(&plan).unwrap();
    let stores = services.all::<Store>();
    assert_eq!(stores.len(), 1);
    let store = stores[0].1.clone();
    let engine = Engine::start(plan, &registry, support::options()).unwrap();
    let handle = engine.handle();
    Demo {
        engine,
        handle,
        store,
    }
}

/// Up to 20 s; the bound only turns a hang into a failure.
async fn eventually<T>(what: &str, check: impl FnMut() -> Option<T>) -> T {
    support::eventually(what, Duration::from_secs(20), check).await
}

fn hold_temperatures(store: &Store) -> Vec<Arc<SeriesInfo>> {
    store.select(&Selector::Model {
        model: "Pasteurizer".into(),
        attribute: Some("hold_temperature".into()),
    })
}

fn count(store: &Store, series: &[Arc<SeriesInfo>], from: Timestamp, filter: &ContextFilter) -> usize {
    store
        .raw(
            series,
            from,
            Timestamp::now().add_nanos(1_000_000_000),
            filter,
            usize::MAX,
        )
        .unwrap()
        .iter()
        .map(|s| s.points.len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_temperatures_during_a_batch_are_found_by_its_context() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start(dir.path());
    assert!(Arc::ptr_eq(
        &demo.handle.services().named::<Store>("history").unwrap(),
        &demo.store
    ));
    let start = Timestamp::now();
    let series = hold_temperatures(&demo.store);
    assert_eq!(series.len(), 1);
    assert_eq!(
        &*series[0].path,
        "acme-dairy/plant-a/processing/pasteurizer/hold_temperature"
    );
    assert_eq!(series[0].unit.as_deref(), Some("degC"));
    let all = ContextFilter::default();
    eventually("hold temperatures before the batch", || {
        (count(&demo.store, &series, start, &all) >= 5).then_some(())
    })
    .await;

    let topology = demo.handle.topology().clone();
    let pasteurizer = topology.asset_index(PASTEURIZER).unwrap();
    let began = demo
        .handle
        .set_context(
            pasteurizer,
            &ContextPatch::default().set(ContextField::Batch, "B-77"),
            Some("test"),
        )
        .await
        .unwrap();
    let b77 = ContextFilter::default().with(ContextField::Batch, "B-77");
    eventually("hold temperatures during B-77", || {
        (count(&demo.store, &series, start, &b77) >= 10).then_some(())
    })
    .await;
    let ended = demo
        .handle
        .set_context(
            pasteurizer,
            &ContextPatch::default().set(ContextField::Batch, "B-78"),
            Some("test"),
        )
        .await
        .unwrap();
    let b78 = ContextFilter::default().with(ContextField::Batch, "B-78");
    eventually("hold temperatures after B-77", || {
        (count(&demo.store, &series, start, &b78) >= 5).then_some(())
    })
    .await;

    let during = demo
        .store
        .raw(&series, start, Timestamp::now(), &b77, usize::MAX)
        .unwrap()
        .remove(0)
        .points;
    let (from, to) = (began[0].time, ended[0].time);
    assert!(during.len() >= 10);
    // A reading taken just before a change but contextualized just after it carries the new
    // context (samples are stamped when the pipeline processes them): allow one tick.
    let tick = 200_000_000;
    for p in &during {
        assert!(
            p.time >= from.add_nanos(-tick) && p.time <= to.add_nanos(tick),
            "{:?} outside the batch [{from}, {to}]",
            p.time
        );
        let context = demo.store.context(p.context).unwrap();
        assert_eq!(context.batch.as_deref(), Some("B-77"));
        let t = p.value.as_ref().and_then(|v| v.as_f64()).unwrap();
        assert!((72.0..=73.1).contains(&t), "hold temperature {t}");
    }
    // Every reading between the two changes is one of the batch's, and none outside.
    let total_between = demo
        .store
        .raw(&series, from, to, &all, usize::MAX)
        .unwrap()
        .remove(0)
        .points
        .len();
    assert!(
        during.len() >= total_between.saturating_sub(1),
        "{} of {total_between}",
        during.len()
    );

    // The context changes themselves are stored events of the pasteurizer.
    let (events, _) = demo
        .store
        .events(&EventQuery {
            from: start,
            to: Timestamp::now().add_nanos(1_000_000_000),
            asset: Some("acme-dairy/plant-a/processing".into()),
            kinds: vec!["context_changed".into()],
            context: ContextFilter::default(),
            limit: 100,
        })
        .unwrap();
    // Besides the two the test made, the batch-number rule sets the batch (`by` production).
    let events: Vec<_> = events
        .into_iter()
        .filter(|e| !e.body.contains(r#""by":"production""#))
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(&*events[0].asset, PASTEURIZER);
    let body: serde_json::Value = serde_json::from_str(&events[0].body).unwrap();
    assert_eq!(body["field"], "batch");
    assert_eq!(body["new"], "B-77");
    assert_eq!(body["by"], "test");

    demo.engine.shutdown().await;
    // A clean stop flushed everything: a fresh open finds the batch in segment files.
    let stats = Store::open_read_only(&dir.path().join("history"))
        .unwrap()
        .stats();
    assert_eq!(stats.head_points, 0);
    assert!(stats.stored_points > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filler_export_has_one_row_per_filler_per_interval_with_quality_and_context() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start(dir.path());
    let topology = demo.handle.topology().clone();
    // Whole seconds, so the interval boundaries are easy to read in the output.
    let from =
        Timestamp::from_unix_nanos((Timestamp::now().unix_nanos() / 1_000_000_000 + 1) * 1_000_000_000);
    let line_1 = topology.asset_index(LINE_1).unwrap();
    demo.handle
        .set_context(
            line_1,
            &ContextPatch::default().set(ContextField::WorkOrder, "WO-1001"),
            None,
        )
        .await
        .unwrap();
    let to = from.add_nanos(2_000_000_000);
    let speeds = demo.store.select(&Selector::Model {
        model: "Filler".into(),
        attribute: Some("speed".into()),
    });
    assert_eq!(speeds.len(), 2);
    eventually("filler data past the end of the range", || {
        let latest = demo
            .store
            .latest(&speeds, Timestamp::now(), &ContextFilter::default())
            .unwrap();
        latest
            .iter()
            .all(|(_, p)| p.as_ref().is_some_and(|p| p.time >= to))
            .then_some(())
    })
    .await;
    demo.engine.shutdown().await;

    let output = dir.path().join("filler.csv");
    // What `backplane export --store DIR --model Filler --from .. --to .. --every 500ms
    // --format csv --output FILE --no-progress` asks for.
    let options = ExportOptions {
        store: Some(dir.path().join("history")),
        data_dir: None,
        sink: None,
        model: "Filler".into(),
        from,
        to,
        every: Duration::from_millis(500),
        format: ExportFormat::Csv,
        output: output.clone(),
        asset: None,
        work_order: None,
        batch: None,
        lot: None,
        product: None,
        progress: false,
    };
    let summary = export::run(&options, None).unwrap();
    let text = std::fs::read_to_string(&output).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "time,asset,state,state_quality,speed,speed_quality,good_count,good_count_quality,\
         reject_count,reject_count_quality,product_temperature,product_temperature_quality,\
         work_order,product,batch,lot,shift,operator,machine_state"
    );
    // 4 intervals of 500 ms × 2 fillers, ordered by time then asset.
    assert_eq!(summary.rows, 8);
    assert_eq!(lines.len(), 9);
    let rows: Vec<Vec<&str>> = lines[1..].iter().map(|l| l.split(',').collect()).collect();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), 19);
        assert_eq!(row[0], from.add_nanos((i / 2) as i64 * 500_000_000).to_rfc3339());
        let line = if i % 2 == 0 { "line-1" } else { "line-2" };
        assert_eq!(row[1], format!("acme-dairy/plant-a/packaging/{line}/filler"));
        assert!(
            ["stopped", "idle", "running", "fault"].contains(&row[2]),
            "state {}",
            row[2]
        );
        let speed: f64 = row[4].parse().unwrap();
        assert!((340.0..=450.0).contains(&speed), "speed {speed}");
        for quality in [row[3], row[5], row[7], row[9], row[11]] {
            assert_eq!(quality, "good");
        }
        let temperature: f64 = row[10].parse().unwrap();
        assert!((2.0..=7.0).contains(&temperature), "temperature {temperature}");
        let time = Timestamp::parse_rfc3339(row[0]).unwrap();
        assert_eq!(row[16], shift_at(time), "the calendar's shift at {}", row[0]);
        assert_eq!(row[12], if line == "line-1" { "WO-1001" } else { "" });
    }

    // A context option keeps only the rows of that work order: line 1's.
    let spec = TableSpec {
        context: ContextFilter::default().with(ContextField::WorkOrder, "WO-1001"),
        ..options.table()
    };
    let mut csv = Vec::new();
    let summary = export::write_table(
        &Store::open_read_only(&dir.path().join("history")).unwrap(),
        &spec,
        ExportFormat::Csv,
        &mut csv,
        Path::new("memory"),
        &mut |_, _, _| {},
    )
    .unwrap();
    assert_eq!(summary.rows, 4);
    let text = String::from_utf8(csv).unwrap();
    assert!(text.lines().skip(1).all(|l| l.contains("/line-1/filler,")));

    // Parquet is a clear error in a build without the feature.
    if !cfg!(feature = "parquet") {
        let mut args = options.clone();
        args.format = ExportFormat::Parquet;
        let err = export::run(&args, None).unwrap_err();
        assert!(err.to_string().contains("without Parquet support"), "{err}");
    }
    // An unknown model names the ones stored.
    let mut args = options.clone();
    args.model = "Filer".into();
    let err = export::run(&args, None).unwrap_err().to_string();
    assert!(err.contains("Filer") && err.contains("Filler"), "{err}");
}

/// The dairy calendar's shift at `time`: UTC+01:00, A 06–14, B 14–22, C 22–06.
fn shift_at(time: Timestamp) -> &'static str {
    let local_hour = (time.unix_nanos().div_euclid(3_600_000_000_000) + 1).rem_euclid(24);
    match local_hour {
        6..=13 => "A",
        14..=21 => "B",
        _ => "C",
    }
}
