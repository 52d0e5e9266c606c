//! `/api/v1/benchmark/...`: every instance of a model compared side by side, across lines
//! and, on a hub, across sites: OEE with its three factors, speed, rejects and downtime by
//! reason, per asset, shift, day or work order.
//!
//! The figures come from the historian's closed-period `oee` events and closed `downtime`
//! events, as each gateway's production stage published them (on a hub: as the plants
//! published them, reason corrections included). A group's factors are recomputed from its
//! summed times and counts, never averaged from ratios: two shifts of 8 h and 1 h weigh
//! 8 : 1. The latest revision of a period wins.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use backplane_connector::Topology;
use backplane_historian::{ContextFilter, EventQuery, StoredEvent};
use backplane_model::sample::{Downtime, Oee, OeePeriod, ReasonAssignment};
use backplane_model::{Level, Timestamp};
use serde::Serialize;

use crate::error::ApiError;
use crate::history::{blocking, invalid, store};
use crate::{AppState, json_response};

/// Events read for one comparison; beyond this the answer says `truncated`.
const MAX_EVENTS: usize = 100_000;
const GROUPINGS: [&str; 4] = ["asset", "shift", "day", "work_order"];

/// How OEE rows are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum By {
    /// The whole range, per asset (from hourly periods).
    Asset,
    /// Per shift and date (from shift periods).
    Shift,
    /// Per UTC day (from hourly periods).
    Day,
    /// Per work order (from work-order periods).
    WorkOrder,
}

impl By {
    fn parse(text: Option<&str>) -> Result<By, ApiError> {
        match text.unwrap_or("asset") {
            "asset" => Ok(By::Asset),
            "shift" => Ok(By::Shift),
            "day" => Ok(By::Day),
            "work_order" => Ok(By::WorkOrder),
            other => Err(invalid(
                "by",
                format!("`by` is one of {}, not `{other}`", GROUPINGS.join(", ")),
            )),
        }
    }

    fn period(self) -> OeePeriod {
        match self {
            By::Asset | By::Day => OeePeriod::Hour,
            By::Shift => OeePeriod::Shift,
            By::WorkOrder => OeePeriod::WorkOrder,
        }
    }

    fn name(self) -> &'static str {
        match self {
            By::Asset => "asset",
            By::Shift => "shift",
            By::Day => "day",
            By::WorkOrder => "work_order",
        }
    }
}

/// One asset of the compared model, where it sits.
#[derive(Clone, Debug)]
pub(crate) struct Instance {
    pub asset: Arc<str>,
    pub site: String,
    /// The nearest ancestor at work-center level (line, process cell...), else the parent.
    pub line: Option<String>,
}

/// Every instance of `model` in the tree; `None` when no asset uses it.
pub(crate) fn instances(topology: &Topology, model: &str) -> Option<Vec<Instance>> {
    let found: Vec<Instance> = topology
        .assets
        .iter()
        .filter(|a| a.model.as_ref().is_some_and(|m| m.name == model))
        .map(|a| {
            let mut line = None;
            let mut up = a.parent;
            while let Some(p) = up {
                let node = &topology.assets[p];
                if matches!(node.level, Level::WorkCenter(_)) {
                    line = Some(node.path.as_str().to_owned());
                    break;
                }
                up = node.parent;
            }
            if line.is_none() {
                line = a.parent.map(|p| topology.assets[p].path.as_str().to_owned());
            }
            Instance {
                asset: a.path.as_str().into(),
                site: a.path.segments().nth(1).unwrap_or_default().to_owned(),
                line,
            }
        })
        .collect();
    (!found.is_empty()).then_some(found)
}

/// One compared group of one asset.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct OeeRow {
    pub site: String,
    pub line: Option<String>,
    pub asset: Arc<str>,
    /// The shift (`2026-12-03/A`), day (`2026-12-03`) or work order; absent by asset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// 1 = best OEE within the group (rows without OEE come last, unranked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<usize>,
    pub periods: usize,
    pub availability: Option<f64>,
    pub performance: Option<f64>,
    pub quality: Option<f64>,
    pub oee: Option<f64>,
    /// Pieces per minute of run time.
    pub speed_per_min: Option<f64>,
    pub planned_time_ms: u64,
    pub run_time_ms: u64,
    pub planned_stop_ms: u64,
    pub downtime_ms: u64,
    pub good: u64,
    pub reject: u64,
    pub total: u64,
    /// Rejects over total.
    pub reject_rate: Option<f64>,
    /// Periods without an ideal rate: performance and OEE leave them out.
    pub unrated_periods: usize,
}

#[derive(Default)]
struct Sums {
    periods: usize,
    unrated: usize,
    planned_ms: u64,
    run_ms: u64,
    planned_stop_ms: u64,
    downtime_ms: u64,
    good: u64,
    reject: u64,
    total: u64,
    /// Σ performance × run time: the ideal time for what was made, in ms.
    ideal_ms: f64,
    rated_run_ms: u64,
    rated_planned_ms: u64,
}

impl Sums {
    fn add(&mut self, oee: &Oee) {
        self.periods += 1;
        self.planned_ms += oee.planned_time_ms;
        self.run_ms += oee.run_time_ms;
        self.planned_stop_ms += oee.planned_stop_ms;
        self.downtime_ms += oee.downtime_ms;
        self.good += oee.good;
        self.reject += oee.reject;
        self.total += oee.total;
        match oee.performance {
            Some(p) if oee.ideal_rate_per_min.is_some() || oee.run_time_ms > 0 => {
                self.ideal_ms += p * oee.run_time_ms as f64;
                self.rated_run_ms += oee.run_time_ms;
                self.rated_planned_ms += oee.planned_time_ms;
            }
            _ if oee.run_time_ms == 0 => self.rated_planned_ms += oee.planned_time_ms,
            _ => self.unrated += 1,
        }
    }

    fn row(&self, instance: &Instance, group: Option<String>) -> OeeRow {
        let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
        let quality = ratio(self.good as f64, self.total as f64);
        let performance = ratio(self.ideal_ms, self.rated_run_ms as f64);
        let oee = if self.rated_planned_ms == 0 {
            None
        } else if self.total == 0 {
            Some(0.0)
        } else {
            ratio(
                self.ideal_ms * quality.unwrap_or(0.0),
                self.rated_planned_ms as f64,
            )
        };
        OeeRow {
            site: instance.site.clone(),
            line: instance.line.clone(),
            asset: instance.asset.clone(),
            group,
            rank: None,
            periods: self.periods,
            availability: ratio(self.run_ms as f64, self.planned_ms as f64),
            performance,
            quality,
            oee,
            speed_per_min: ratio(self.total as f64, self.run_ms as f64 / 60_000.0),
            planned_time_ms: self.planned_ms,
            run_time_ms: self.run_ms,
            planned_stop_ms: self.planned_stop_ms,
            downtime_ms: self.downtime_ms,
            good: self.good,
            reject: self.reject,
            total: self.total,
            reject_rate: ratio(self.reject as f64, self.total as f64),
            unrated_periods: self.unrated,
        }
    }
}

fn day(t: Timestamp) -> String {
    t.to_string().chars().take(10).collect()
}

/// The OEE comparison of `instances` from stored events (any kinds; others are skipped).
pub(crate) fn compare_oee(events: &[StoredEvent], instances: &[Instance], by: By) -> Vec<OeeRow> {
    let wanted: HashMap<&str, &Instance> = instances.iter().map(|i| (&*i.asset, i)).collect();
    // The latest revision of each period.
    let mut periods: BTreeMap<(&str, Timestamp), (Timestamp, Oee)> = BTreeMap::new();
    for event in events {
        if &*event.kind != "oee" || !wanted.contains_key(&*event.asset) {
            continue;
        }
        let Ok(oee) = serde_json::from_str::<Oee>(&event.body) else {
            continue;
        };
        if oee.period != by.period() {
            continue;
        }
        let key = (&*event.asset, oee.period_start);
        match periods.get(&key) {
            Some((time, _)) if *time > event.time => {}
            _ => {
                periods.insert(key, (event.time, oee));
            }
        }
    }
    let mut groups: BTreeMap<(Option<String>, &str), Sums> = BTreeMap::new();
    for ((asset, _), (_, oee)) in &periods {
        let group = match by {
            By::Asset => None,
            By::Day => Some(day(oee.period_start)),
            By::Shift => Some(format!(
                "{}/{}",
                day(oee.period_start),
                oee.shift.as_deref().unwrap_or("-")
            )),
            By::WorkOrder => Some(oee.work_order.as_deref().unwrap_or("-").to_owned()),
        };
        groups.entry((group, asset)).or_default().add(oee);
    }
    let mut rows: Vec<OeeRow> = groups
        .into_iter()
        .filter_map(|((group, asset), sums)| Some(sums.row(wanted.get(asset)?, group)))
        .collect();
    // Best first within each group; rows without OEE last.
    rows.sort_by(|a, b| {
        a.group.cmp(&b.group).then_with(|| {
            let (x, y) = (
                b.oee.unwrap_or(f64::NEG_INFINITY),
                a.oee.unwrap_or(f64::NEG_INFINITY),
            );
            x.total_cmp(&y).then_with(|| a.asset.cmp(&b.asset))
        })
    });
    let mut rank = 0;
    let mut last_group: Option<Option<String>> = None;
    for row in &mut rows {
        if last_group.as_ref() != Some(&row.group) {
            rank = 0;
            last_group = Some(row.group.clone());
        }
        if row.oee.is_some() {
            rank += 1;
            row.rank = Some(rank);
        }
    }
    rows
}

/// Downtime of one asset for one reason.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct DowntimeRow {
    pub site: String,
    pub line: Option<String>,
    pub asset: Arc<str>,
    /// `null`: no reason assigned.
    pub reason: Option<Arc<str>>,
    pub planned: bool,
    pub count: usize,
    pub duration_ms: u64,
}

/// Closed downtimes of `instances` by reason, with reasons assigned later applied.
pub(crate) fn compare_downtime(events: &[StoredEvent], instances: &[Instance]) -> Vec<DowntimeRow> {
    let wanted: HashMap<&str, &Instance> = instances.iter().map(|i| (&*i.asset, i)).collect();
    let mut downtimes: BTreeMap<(&str, u64), Downtime> = BTreeMap::new();
    let mut assigned: HashMap<(&str, u64), ReasonAssignment> = HashMap::new();
    for event in events {
        if !wanted.contains_key(&*event.asset) {
            continue;
        }
        match &*event.kind {
            "downtime" => {
                if let Ok(d) = serde_json::from_str::<Downtime>(&event.body)
                    && d.end.is_some()
                {
                    downtimes.insert((&*event.asset, d.id), d);
                }
            }
            "downtime_reason_assigned" => {
                if let Ok(a) = serde_json::from_str::<ReasonAssignment>(&event.body) {
                    assigned.insert((&*event.asset, a.id), a);
                }
            }
            _ => {}
        }
    }
    // (asset, reason, planned) → (count, duration).
    type Key<'e> = (&'e str, Option<Arc<str>>, bool);
    let mut groups: BTreeMap<Key<'_>, (usize, u64)> = BTreeMap::new();
    for ((asset, id), d) in &downtimes {
        let (reason, planned) = match assigned.get(&(*asset, *id)) {
            Some(a) => (Some(a.reason.clone()), a.planned),
            None => (d.reason.clone(), d.planned),
        };
        let entry = groups.entry((asset, reason, planned)).or_default();
        entry.0 += 1;
        entry.1 += d.duration_ms;
    }
    let mut rows: Vec<DowntimeRow> = groups
        .into_iter()
        .filter_map(|((asset, reason, planned), (count, duration_ms))| {
            let instance = wanted.get(asset)?;
            Some(DowntimeRow {
                site: instance.site.clone(),
                line: instance.line.clone(),
                asset: instance.asset.clone(),
                reason,
                planned,
                count,
                duration_ms,
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        b.duration_ms
            .cmp(&a.duration_ms)
            .then_with(|| a.asset.cmp(&b.asset))
    });
    rows
}

#[derive(Serialize)]
struct OeeAnswer {
    model: String,
    by: &'static str,
    from: Timestamp,
    to: Timestamp,
    sites: Vec<String>,
    instances: usize,
    truncated: bool,
    rows: Vec<OeeRow>,
}

#[derive(Serialize)]
struct DowntimeAnswer {
    model: String,
    from: Timestamp,
    to: Timestamp,
    sites: Vec<String>,
    instances: usize,
    truncated: bool,
    rows: Vec<DowntimeRow>,
}

/// The instances of the `model` parameter, optionally of one `site`.
fn selected(
    state: &AppState,
    model: Option<&str>,
    site: Option<&str>,
) -> Result<(String, Vec<Instance>), ApiError> {
    let topology = state.engine.topology();
    let Some(model) = model else {
        return Err(ApiError::bad_request(
            "missing_parameter",
            "`model` names the model to compare, e.g. `model=Filler`",
        )
        .with_field("model"));
    };
    let Some(mut found) = instances(topology, model) else {
        let models: Vec<&str> = topology.plan.models.iter().map(|m| m.name.as_str()).collect();
        return Err(ApiError::not_found(format!(
            "no asset is an instance of model `{model}`; the models are: {}",
            models.join(", ")
        ))
        .with_field("model"));
    };
    if let Some(site) = site {
        found.retain(|i| i.site == site);
        if found.is_empty() {
            return Err(
                ApiError::not_found(format!("no instance of `{model}` at site `{site}`")).with_field("site"),
            );
        }
    }
    Ok((model.to_owned(), found))
}

fn sites(instances: &[Instance]) -> Vec<String> {
    let mut sites: Vec<String> = instances.iter().map(|i| i.site.clone()).collect();
    sites.sort();
    sites.dedup();
    sites
}

fn query(state: &AppState, from: Timestamp, to: Timestamp, kinds: &[&str]) -> EventQuery {
    EventQuery {
        from,
        to,
        asset: Some(state.engine.topology().plan.namespace.enterprise.clone()),
        kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
        context: ContextFilter::default(),
        limit: MAX_EVENTS,
    }
}

/// `GET /api/v1/benchmark/oee?model=Filler&by=shift&from=...&to=...`
pub(crate) async fn oee(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (store, params) = store(&state, raw, &[&["model", "site", "by", "from", "to"]])?;
    let (from, to) = params.range_or_day()?;
    let by = By::parse(params.get("by"))?;
    let (model, found) = selected(&state, params.get("model"), params.get("site"))?;
    let q = query(&state, from, to, &["oee"]);
    let answer = blocking(&state, move || {
        let (events, truncated) = store.events(&q).map_err(crate::history::store_error)?;
        Ok(OeeAnswer {
            rows: compare_oee(&events, &found, by),
            sites: sites(&found),
            instances: found.len(),
            model,
            by: by.name(),
            from,
            to,
            truncated,
        })
    })
    .await?;
    json_response(&answer)
}

/// `GET /api/v1/benchmark/downtime?model=Filler&from=...&to=...`
pub(crate) async fn downtime(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (store, params) = store(&state, raw, &[&["model", "site", "from", "to"]])?;
    let (from, to) = params.range_or_day()?;
    let (model, found) = selected(&state, params.get("model"), params.get("site"))?;
    let q = query(&state, from, to, &["downtime", "downtime_reason_assigned"]);
    let answer = blocking(&state, move || {
        let (events, truncated) = store.events(&q).map_err(crate::history::store_error)?;
        Ok(DowntimeAnswer {
            rows: compare_downtime(&events, &found),
            sites: sites(&found),
            instances: found.len(),
            model,
            from,
            to,
            truncated,
        })
    })
    .await?;
    json_response(&answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(asset: &str) -> Instance {
        Instance {
            asset: asset.into(),
            site: asset.split('/').nth(1).unwrap().to_owned(),
            line: Some(asset.rsplit_once('/').unwrap().0.to_owned()),
        }
    }

    fn ts(s: &str) -> Timestamp {
        backplane_historian::export::parse_time(s).unwrap()
    }

    #[allow(clippy::too_many_arguments)]
    fn oee(
        asset: &str,
        period: &str,
        start: &str,
        shift: &str,
        planned_min: u64,
        run_min: u64,
        good: u64,
        reject: u64,
        perf: f64,
    ) -> StoredEvent {
        let body = serde_json::json!({
            "event": "oee", "period": period, "period_start": start, "period_end": start,
            "shift": shift, "work_order": "WO-1",
            "availability": run_min as f64 / planned_min as f64, "performance": perf,
            "quality": good as f64 / (good + reject) as f64, "oee": 0.0,
            "planned_time_ms": planned_min * 60_000, "run_time_ms": run_min * 60_000,
            "planned_stop_ms": 0, "downtime_ms": (planned_min - run_min) * 60_000,
            "good": good, "reject": reject, "total": good + reject, "ideal_rate_per_min": 100.0,
        });
        StoredEvent {
            time: ts(start),
            asset: asset.into(),
            kind: "oee".into(),
            body: body.to_string().into(),
            context: 0,
        }
    }

    const A: &str = "acme/plant-a/packaging/line-1/filler";
    const B: &str = "acme/plant-b/bottling/line-7/filler";

    #[test]
    fn oee_of_several_periods_is_recomputed_from_summed_times_and_counts_not_averaged() {
        // Shift 1: 480 planned, 400 run, perf 0.5, 900/1000 good. Shift 2: 60 planned, 60 run, perf 1.0, all good.
        let events = vec![
            oee(A, "shift", "2026-12-03T06:00:00Z", "A", 480, 400, 900, 100, 0.5),
            oee(A, "shift", "2026-12-03T14:00:00Z", "B", 60, 60, 500, 0, 1.0),
        ];
        let rows = compare_oee(&events, &[instance(A)], By::Asset);
        assert!(rows.is_empty(), "by asset reads hourly periods only");
        let rows = compare_oee(&events, &[instance(A)], By::Shift);
        let groups: Vec<_> = rows.iter().map(|r| r.group.as_deref().unwrap()).collect();
        assert_eq!(groups, ["2026-12-03/A", "2026-12-03/B"]);
        let mut sums = Sums::default();
        for e in &events {
            sums.add(&serde_json::from_str::<Oee>(&e.body).unwrap());
        }
        let row = sums.row(&instance(A), None);
        let availability = row.availability.unwrap();
        assert!((availability - 460.0 / 540.0).abs() < 1e-9, "{availability}");
        // Ideal time 0.5*400 + 1.0*60 = 260 min over 460 min run.
        assert!((row.performance.unwrap() - 260.0 / 460.0).abs() < 1e-9);
        assert!((row.quality.unwrap() - 1400.0 / 1500.0).abs() < 1e-9);
        let expected = 260.0 * (1400.0 / 1500.0) / 540.0;
        assert!((row.oee.unwrap() - expected).abs() < 1e-9, "{:?}", row.oee);
        assert!((row.speed_per_min.unwrap() - 1500.0 / 460.0).abs() < 1e-9);
    }

    #[test]
    fn instances_of_two_sites_are_ranked_side_by_side_per_group_and_revisions_replace_periods() {
        let mut revised = oee(A, "hour", "2026-12-03T06:00:00Z", "A", 60, 60, 100, 0, 1.0);
        revised.time = ts("2026-12-03T08:00:00Z");
        let events = vec![
            oee(A, "hour", "2026-12-03T06:00:00Z", "A", 60, 30, 100, 0, 1.0),
            oee(B, "hour", "2026-12-03T06:00:00Z", "A", 60, 45, 100, 0, 1.0),
            revised,
            oee(
                "acme/plant-b/other/x",
                "hour",
                "2026-12-03T06:00:00Z",
                "A",
                60,
                60,
                1,
                0,
                1.0,
            ),
        ];
        let rows = compare_oee(&events, &[instance(A), instance(B)], By::Day);
        assert_eq!(rows.len(), 2, "{rows:#?}");
        assert_eq!(
            rows[0].asset.as_ref(),
            A,
            "the revision (run 60 of 60) makes plant A best"
        );
        assert_eq!(rows[0].rank, Some(1));
        assert_eq!(rows[0].group.as_deref(), Some("2026-12-03"));
        assert_eq!(rows[0].run_time_ms, 3_600_000);
        assert_eq!(rows[1].site, "plant-b");
        assert_eq!(rows[1].rank, Some(2));
    }

    #[test]
    fn downtime_is_summed_by_reason_with_later_assignments_applied() {
        let event = |kind: &str, body: serde_json::Value| StoredEvent {
            time: ts("2026-12-03T06:00:00Z"),
            asset: A.into(),
            kind: kind.into(),
            body: body.to_string().into(),
            context: 0,
        };
        let closed = |id: u64, ms: u64| {
            event(
                "downtime",
                serde_json::json!({"event": "downtime", "id": id, "start": "2026-12-03T06:00:00Z",
                "end": "2026-12-03T06:10:00Z", "duration_ms": ms, "state": "stopped", "reason": null, "planned": false}),
            )
        };
        let events = vec![
            closed(1, 600_000),
            closed(2, 300_000),
            event(
                "downtime",
                serde_json::json!({"event": "downtime", "id": 3, "start": "2026-12-03T06:00:00Z",
                "end": null, "duration_ms": 0, "state": "stopped", "reason": null, "planned": false}),
            ),
            event(
                "downtime_reason_assigned",
                serde_json::json!({"event": "downtime_reason_assigned", "id": 1,
                "reason": "mechanical/jam", "planned": false}),
            ),
        ];
        let rows = compare_downtime(&events, &[instance(A)]);
        assert_eq!(rows.len(), 2, "{rows:#?}");
        assert_eq!(rows[0].reason.as_deref(), Some("mechanical/jam"));
        assert_eq!(rows[0].duration_ms, 600_000);
        assert_eq!(rows[1].reason, None);
        assert_eq!(rows[1].count, 1);
    }
}
