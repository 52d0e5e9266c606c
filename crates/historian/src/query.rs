//! Queries: which series ([`Selector`]), which points (range, [`ContextFilter`]), and what
//! of them: raw points, the latest point, aggregates over fixed intervals, events.
//!
//! Semantics, shared by the API and export:
//! - Time is gateway time; ranges are half-open `[from, to)`.
//! - Points at the same instant are all kept, in arrival order.
//! - A context filter keeps points whose stamped context has every given field equal to
//!   the given value ("hold temperatures during batch B-77": `batch = B-77`).
//! - Aggregates use *usable* points: a value present and quality not bad. NaN counts but is
//!   skipped by min, max, mean and the time-weighted mean.
//! - Time-weighted values (`twa`, `durations`) hold each usable value from its point until
//!   the next point of the series (whatever its quality or context), at most until `to` or
//!   now; the value held into `from` from before it counts.
//! - Buckets start at `from` and are `every` long; the last one ends at `to`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use backplane_model::{Context, ContextField, Timestamp, Value};

use crate::error::{Result, StoreError};
use crate::point::{ContextId, Point, SeriesId, SeriesInfo, StoredEvent};
use crate::store::Store;

/// At most this many buckets over all selected series in one aggregate query: a trend
/// needs a few thousand; a million (every=1ms over 16 min) made one answer 158 MB.
pub const MAX_BUCKETS: usize = 50_000;

/// Which series a query reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// Tags by path (`asset/attribute`).
    Tags(Vec<String>),
    /// Every series of assets at or below `prefix` (on segment boundaries), optionally
    /// only one attribute.
    Asset {
        prefix: String,
        attribute: Option<String>,
    },
    /// Every instance of a model, optionally only one attribute: "speed of every Filler".
    Model {
        model: String,
        attribute: Option<String>,
    },
    All,
}

/// True when `path` is `prefix` or lies below it, on segment boundaries.
pub fn under_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// Context fields that must all match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContextFilter {
    pub fields: Vec<(ContextField, String)>,
}

impl ContextFilter {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn with(mut self, field: ContextField, value: &str) -> ContextFilter {
        self.fields.push((field, value.to_owned()));
        self
    }

    pub fn matches(&self, context: &Context) -> bool {
        self.fields
            .iter()
            .all(|(f, v)| context.get(*f).is_some_and(|c| **c == **v))
    }
}

/// The points of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesPoints {
    pub series: Arc<SeriesInfo>,
    pub points: Vec<Point>,
    /// More points matched than the limit allowed; the earliest are returned.
    pub truncated: bool,
}

/// What is stored of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesSummary {
    pub series: Arc<SeriesInfo>,
    pub points: u64,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
}

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Function {
    Min,
    Max,
    Mean,
    /// Time-weighted mean (sample and hold).
    Twa,
    Count,
    First,
    Last,
    /// Seconds per distinct value, for bool, int, uint and string (state) series.
    Durations,
}

impl Function {
    pub const ALL: [Function; 8] = [
        Function::Min,
        Function::Max,
        Function::Mean,
        Function::Twa,
        Function::Count,
        Function::First,
        Function::Last,
        Function::Durations,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Function::Min => "min",
            Function::Max => "max",
            Function::Mean => "mean",
            Function::Twa => "twa",
            Function::Count => "count",
            Function::First => "first",
            Function::Last => "last",
            Function::Durations => "durations",
        }
    }

    pub fn parse(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// An aggregate query over fixed intervals.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateQuery {
    pub from: Timestamp,
    pub to: Timestamp,
    pub every: Duration,
    pub context: ContextFilter,
}

/// One interval of one series. Fields that do not apply (no usable point, a mean of
/// strings) are `None` / empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bucket {
    pub start: Timestamp,
    pub end: Timestamp,
    /// Usable points in the interval.
    pub count: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub twa: Option<f64>,
    pub first: Option<(Timestamp, Value)>,
    pub last: Option<(Timestamp, Value)>,
    /// Seconds each value was held, for state-like series (sorted by value).
    pub durations: Vec<(String, f64)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SeriesBuckets {
    pub series: Arc<SeriesInfo>,
    pub buckets: Vec<Bucket>,
}

/// An events query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventQuery {
    pub from: Timestamp,
    pub to: Timestamp,
    /// Events of assets at or below this path.
    pub asset: Option<String>,
    /// Only these kinds (e.g. `context_changed`); empty for all.
    pub kinds: Vec<String>,
    pub context: ContextFilter,
    pub limit: usize,
}

/// Points of one series in a range, sorted by time, and the last point before it.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub prior: Option<Point>,
    pub points: Vec<Point>,
}

/// Orders candidates for "the latest point": later time, then later arrival.
type Rank = (i64, u64, u64, u64);

fn better(candidate: Rank, best: &Option<(Rank, Point)>) -> bool {
    best.as_ref().is_none_or(|(r, _)| candidate >= *r)
}

const HEAD_RANK: u64 = u64::MAX;

impl Store {
    /// The points in `[from, to)` of chunk `ci` of segment `si`; `None` if the segment's
    /// file is gone (deleted by retention or a merge after the caller's snapshot).
    fn read_chunk(
        &self,
        segments: &[Arc<crate::segment::Segment>],
        si: usize,
        ci: usize,
        from: i64,
        to: i64,
    ) -> Result<Option<Vec<Point>>> {
        let Some(segment) = segments.get(si) else {
            return Ok(None);
        };
        let Some(meta) = segment.chunks.get(ci) else {
            return Ok(None);
        };
        let Some(file) = self.segment_file(segment)? else {
            return Ok(None);
        };
        segment.read_chunk_range(&file, meta, from, to).map(Some)
    }

    /// The series a selector names, in catalog order (registration order, which is model
    /// order within an asset).
    pub fn select(&self, selector: &Selector) -> Vec<Arc<SeriesInfo>> {
        let catalog = self.catalog.read();
        catalog
            .series()
            .iter()
            .filter(|s| match selector {
                Selector::Tags(paths) => paths.iter().any(|p| *p == *s.path),
                Selector::Asset { prefix, attribute } => {
                    under_prefix(&s.asset, prefix) && attribute.as_ref().is_none_or(|a| *a == *s.attribute)
                }
                Selector::Model { model, attribute } => {
                    *model == *s.model && attribute.as_ref().is_none_or(|a| *a == *s.attribute)
                }
                Selector::All => true,
            })
            .cloned()
            .collect()
    }

    /// Every distinct model name stored, with the attributes stored for it.
    pub fn models(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in self.catalog.read().series() {
            let attrs = out.entry(s.model.to_string()).or_default();
            if !attrs.iter().any(|a| *a == *s.attribute) {
                attrs.push(s.attribute.to_string());
            }
        }
        out
    }

    /// The context ids a filter admits; `None` when it admits all.
    pub(crate) fn matching_contexts(&self, filter: &ContextFilter) -> Option<HashSet<ContextId>> {
        if filter.is_empty() {
            return None;
        }
        let catalog = self.catalog.read();
        Some(
            catalog
                .contexts()
                .iter()
                .enumerate()
                .filter(|(_, c)| filter.matches(c))
                .map(|(i, _)| i as ContextId)
                .collect(),
        )
    }

    /// Reads one series in `[from, to)`, keeping points whose context is in `contexts`
    /// (all when `None`); with `prior`, also the last point before `from` (any context).
    pub(crate) fn scan(
        &self,
        series: SeriesId,
        from: i64,
        to: i64,
        contexts: Option<&HashSet<ContextId>>,
        prior: bool,
    ) -> Result<Scan> {
        let admits = |c: ContextId| contexts.is_none_or(|set| set.contains(&c));
        let mut best_prior: Option<(Rank, Point)> = None;
        let (snapshot, head_points) = {
            let head = self.head.read();
            let snapshot = self.snapshot.read().clone();
            let mut points = Vec::new();
            let datas = head
                .frozen
                .iter()
                .map(|f| &f.data)
                .chain(std::iter::once(&head.active));
            for (di, data) in datas.enumerate() {
                let Some(list) = data.series.get(series as usize) else {
                    continue;
                };
                for (pi, p) in list.iter().enumerate() {
                    let t = p.time.unix_nanos();
                    if t >= from && t < to {
                        if admits(p.context) {
                            points.push(p.clone());
                        }
                    } else if prior && t < from {
                        let rank = (t, HEAD_RANK, di as u64, pi as u64);
                        if better(rank, &best_prior) {
                            best_prior = Some((rank, p.clone()));
                        }
                    }
                }
            }
            (snapshot, points)
        };

        let mut out = Vec::new();
        let refs = snapshot.by_series.get(&series).map(Vec::as_slice).unwrap_or(&[]);
        // The chunk ending last before `from` holds the prior point, unless a chunk that
        // overlaps `from` has a later one.
        let mut prior_chunk: Option<(i64, u64, usize, usize)> = None;
        let mut wanted = Vec::new();
        for &(si, ci) in refs {
            let (si, ci) = (si as usize, ci as usize);
            let Some(segment) = snapshot.segments.get(si) else {
                continue;
            };
            let Some(meta) = segment.chunks.get(ci) else {
                continue;
            };
            if meta.max_t < from {
                if prior && prior_chunk.is_none_or(|(t, seq, _, _)| (meta.max_t, segment.seq) >= (t, seq)) {
                    prior_chunk = Some((meta.max_t, segment.seq, si, ci));
                }
                continue;
            }
            if meta.min_t >= to {
                continue;
            }
            let needs_prior = prior && meta.min_t < from;
            if let (Some(set), Some(ids), false) = (contexts, &meta.contexts, needs_prior)
                && !ids.iter().any(|id| set.contains(id))
            {
                continue;
            }
            wanted.push((si, ci, needs_prior));
        }
        let capacity: usize = wanted
            .iter()
            .filter_map(|&(si, ci, _)| snapshot.segments.get(si)?.chunks.get(ci))
            .map(|c| c.count as usize)
            .sum();
        out.reserve(capacity + head_points.len());
        for (si, ci, needs_prior) in wanted {
            let seq = snapshot.segments.get(si).map_or(0, |s| s.seq);
            // Without a prior point to find, only the points in range are built.
            let (lo, hi) = if needs_prior {
                (i64::MIN, i64::MAX)
            } else {
                (from, to)
            };
            let Some(points) = self.read_chunk(&snapshot.segments, si, ci, lo, hi)? else {
                continue;
            };
            for (pi, p) in points.into_iter().enumerate() {
                let t = p.time.unix_nanos();
                if t >= from && t < to {
                    if admits(p.context) {
                        out.push(p);
                    }
                } else if needs_prior && t < from {
                    let rank = (t, seq, ci as u64, pi as u64);
                    if better(rank, &best_prior) {
                        best_prior = Some((rank, p));
                    }
                }
            }
        }
        if let Some((t, seq, si, ci)) = prior_chunk
            && best_prior
                .as_ref()
                .is_none_or(|((bt, bseq, _, _), _)| (t, seq) >= (*bt, *bseq))
            && let Some(points) = self.read_chunk(&snapshot.segments, si, ci, i64::MIN, from)?
        {
            for (pi, p) in points.into_iter().enumerate() {
                let rank = (p.time.unix_nanos(), seq, ci as u64, pi as u64);
                if p.time.unix_nanos() < from && better(rank, &best_prior) {
                    best_prior = Some((rank, p));
                }
            }
        }
        out.extend(head_points);
        // Stable: equal times keep arrival order (segments by sequence, then the head).
        out.sort_by_key(|p| p.time);
        Ok(Scan {
            prior: best_prior.map(|(_, p)| p),
            points: out,
        })
    }

    /// Raw points of each series in `[from, to)` matching `filter`, at most `limit` per
    /// series (the earliest).
    pub fn raw(
        &self,
        series: &[Arc<SeriesInfo>],
        from: Timestamp,
        to: Timestamp,
        filter: &ContextFilter,
        limit: usize,
    ) -> Result<Vec<SeriesPoints>> {
        let contexts = self.matching_contexts(filter);
        let mut out = Vec::with_capacity(series.len());
        for s in series {
            let mut points = if contexts.as_ref().is_some_and(HashSet::is_empty) {
                Vec::new()
            } else {
                self.scan(s.id, from.unix_nanos(), to.unix_nanos(), contexts.as_ref(), false)?
                    .points
            };
            let truncated = points.len() > limit;
            points.truncate(limit);
            out.push(SeriesPoints {
                series: s.clone(),
                points,
                truncated,
            });
        }
        Ok(out)
    }

    /// The latest point at or before `at` of each series, among those matching `filter`.
    pub fn latest(
        &self,
        series: &[Arc<SeriesInfo>],
        at: Timestamp,
        filter: &ContextFilter,
    ) -> Result<Vec<(Arc<SeriesInfo>, Option<Point>)>> {
        let contexts = self.matching_contexts(filter);
        let admits = |c: ContextId| contexts.as_ref().is_none_or(|set| set.contains(&c));
        let at = at.unix_nanos();
        let mut out = Vec::with_capacity(series.len());
        for s in series {
            let mut best: Option<(Rank, Point)> = None;
            let snapshot = {
                let head = self.head.read();
                let snapshot = self.snapshot.read().clone();
                let datas = head
                    .frozen
                    .iter()
                    .map(|f| &f.data)
                    .chain(std::iter::once(&head.active));
                for (di, data) in datas.enumerate() {
                    for (pi, p) in data.series.get(s.id as usize).into_iter().flatten().enumerate() {
                        let rank = (p.time.unix_nanos(), HEAD_RANK, di as u64, pi as u64);
                        if rank.0 <= at && admits(p.context) && better(rank, &best) {
                            best = Some((rank, p.clone()));
                        }
                    }
                }
                snapshot
            };
            let mut candidates: Vec<(i64, u64, usize, usize)> = snapshot
                .by_series
                .get(&s.id)
                .into_iter()
                .flatten()
                .filter_map(|&(si, ci)| {
                    let segment = snapshot.segments.get(si as usize)?;
                    let meta = segment.chunks.get(ci as usize)?;
                    let excluded = match (&contexts, &meta.contexts) {
                        (Some(set), Some(ids)) => !ids.iter().any(|id| set.contains(id)),
                        _ => false,
                    };
                    (meta.min_t <= at && !excluded).then_some((
                        meta.max_t,
                        segment.seq,
                        si as usize,
                        ci as usize,
                    ))
                })
                .collect();
            candidates.sort_by_key(|c| std::cmp::Reverse((c.0, c.1)));
            for (max_t, seq, si, ci) in candidates {
                if best.as_ref().is_some_and(|((t, _, _, _), _)| max_t < *t) {
                    break;
                }
                let Some(points) =
                    self.read_chunk(&snapshot.segments, si, ci, i64::MIN, at.saturating_add(1))?
                else {
                    continue;
                };
                for (pi, p) in points.into_iter().enumerate() {
                    let rank = (p.time.unix_nanos(), seq, ci as u64, pi as u64);
                    // Ranks put head points after stored ones at the same instant.
                    if rank.0 <= at && admits(p.context) && better(rank, &best) {
                        best = Some((rank, p));
                    }
                }
            }
            out.push((s.clone(), best.map(|(_, p)| p)));
        }
        Ok(out)
    }

    /// Point counts and time range of each series.
    pub fn summary(&self, series: &[Arc<SeriesInfo>]) -> Vec<SeriesSummary> {
        let head = self.head.read();
        let snapshot = self.snapshot.read().clone();
        series
            .iter()
            .map(|s| {
                let mut points = 0u64;
                let mut range: Option<(i64, i64)> = None;
                let mut widen = |lo: i64, hi: i64| {
                    range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
                };
                for &(si, ci) in snapshot.by_series.get(&s.id).into_iter().flatten() {
                    if let Some(c) = snapshot
                        .segments
                        .get(si as usize)
                        .and_then(|g| g.chunks.get(ci as usize))
                    {
                        points += u64::from(c.count);
                        widen(c.min_t, c.max_t);
                    }
                }
                let datas = head
                    .frozen
                    .iter()
                    .map(|f| &f.data)
                    .chain(std::iter::once(&head.active));
                for data in datas {
                    for p in data.series.get(s.id as usize).into_iter().flatten() {
                        points += 1;
                        widen(p.time.unix_nanos(), p.time.unix_nanos());
                    }
                }
                SeriesSummary {
                    series: s.clone(),
                    points,
                    first: range.map(|r| Timestamp::from_unix_nanos(r.0)),
                    last: range.map(|r| Timestamp::from_unix_nanos(r.1)),
                }
            })
            .collect()
    }

    /// Aggregates each series over fixed intervals; see the module documentation.
    pub fn aggregate(&self, series: &[Arc<SeriesInfo>], q: &AggregateQuery) -> Result<Vec<SeriesBuckets>> {
        let from = q.from.unix_nanos();
        let to = q.to.unix_nanos();
        let every = i64::try_from(q.every.as_nanos()).unwrap_or(i64::MAX);
        if every <= 0 {
            return Err(StoreError::Invalid(
                "the interval must be longer than zero".into(),
            ));
        }
        if to <= from {
            return Ok(series
                .iter()
                .map(|s| SeriesBuckets {
                    series: s.clone(),
                    buckets: Vec::new(),
                })
                .collect());
        }
        let n = usize::try_from(((to - from) as u64).div_ceil(every as u64)).unwrap_or(usize::MAX);
        if n.saturating_mul(series.len().max(1)) > MAX_BUCKETS {
            return Err(StoreError::Invalid(format!(
                "{n} intervals × {} series is more than {MAX_BUCKETS} buckets; use a longer interval or a shorter range",
                series.len()
            )));
        }
        let contexts = self.matching_contexts(&q.context);
        let hold_end = to.min(Timestamp::now().unix_nanos()).max(from);
        let mut out = Vec::with_capacity(series.len());
        for s in series {
            let scan = self.scan(s.id, from, to, None, true)?;
            let included = |p: &Point| contexts.as_ref().is_none_or(|set| set.contains(&p.context));
            let states = matches!(&*s.data_type, "bool" | "int" | "uint" | "string");
            let mut acc: Vec<Acc> = (0..n).map(|_| Acc::default()).collect();
            for p in scan.points.iter().filter(|p| included(p)) {
                let i = ((p.time.unix_nanos() - from) / every) as usize;
                if let (Some(a), Some(v)) = (acc.get_mut(i), p.usable()) {
                    a.add(p.time, v);
                }
            }
            // Sample and hold: each point's value until the next point.
            let held: Vec<&Point> = scan.prior.iter().chain(scan.points.iter()).collect();
            for (k, p) in held.iter().enumerate() {
                let end = held
                    .get(k + 1)
                    .map_or(hold_end, |next| next.time.unix_nanos())
                    .min(hold_end);
                let start = p.time.unix_nanos().max(from);
                if end <= start || !included(p) {
                    continue;
                }
                let Some(v) = p.usable() else {
                    continue;
                };
                let number = v.as_f64().filter(|x| !x.is_nan());
                let state = if states { state_label(v) } else { None };
                let mut t = start;
                while t < end {
                    let i = ((t - from) / every) as usize;
                    let bucket_end = from.saturating_add((i as i64 + 1).saturating_mul(every)).min(to);
                    let seg_end = end.min(bucket_end);
                    let secs = (seg_end - t) as f64 / 1e9;
                    if let Some(a) = acc.get_mut(i) {
                        if let Some(x) = number {
                            a.weighted += x * secs;
                            a.covered += secs;
                        }
                        if let Some(label) = &state {
                            *a.durations.entry(label.clone()).or_default() += secs;
                        }
                    }
                    if seg_end <= t {
                        break;
                    }
                    t = seg_end;
                }
            }
            let buckets = acc
                .into_iter()
                .enumerate()
                .map(|(i, a)| {
                    let start = from.saturating_add((i as i64).saturating_mul(every));
                    let end = start.saturating_add(every).min(to);
                    a.finish(Timestamp::from_unix_nanos(start), Timestamp::from_unix_nanos(end))
                })
                .collect();
            out.push(SeriesBuckets {
                series: s.clone(),
                buckets,
            });
        }
        Ok(out)
    }

    /// Events in `[from, to)` by asset prefix, kind and context, sorted by time; the bool
    /// says whether more matched than `limit`.
    pub fn events(&self, q: &EventQuery) -> Result<(Vec<StoredEvent>, bool)> {
        let contexts = self.matching_contexts(&q.context);
        let (from, to) = (q.from.unix_nanos(), q.to.unix_nanos());
        let keep = |e: &StoredEvent| {
            let t = e.time.unix_nanos();
            t >= from
                && t < to
                && q.asset.as_deref().is_none_or(|p| under_prefix(&e.asset, p))
                && (q.kinds.is_empty() || q.kinds.iter().any(|k| **k == *e.kind))
                && contexts.as_ref().is_none_or(|set| set.contains(&e.context))
        };
        let (snapshot, mut out) = {
            let head = self.head.read();
            let snapshot = self.snapshot.read().clone();
            let head_events: Vec<StoredEvent> = head
                .frozen
                .iter()
                .map(|f| &f.data)
                .chain(std::iter::once(&head.active))
                .flat_map(|d| d.events.iter())
                .filter(|e| keep(e))
                .cloned()
                .collect();
            (snapshot, head_events)
        };
        let mut stored = Vec::new();
        for segment in &snapshot.segments {
            let Some(meta) = &segment.events else {
                continue;
            };
            if meta.max_t < from || meta.min_t >= to {
                continue;
            }
            let Some(file) = self.segment_file(segment)? else {
                continue;
            };
            stored.extend(segment.read_events(&file)?.into_iter().filter(|e| keep(e)));
        }
        stored.append(&mut out);
        stored.sort_by_key(|e| e.time);
        let truncated = stored.len() > q.limit;
        stored.truncate(q.limit);
        Ok((stored, truncated))
    }
}

/// The label a state-like value is counted under in `durations`.
fn state_label(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::UInt(u) => Some(u.to_string()),
        Value::String(s) => Some(s.to_string()),
        _ => None,
    }
}

#[derive(Default)]
struct Acc {
    count: u64,
    numbers: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    first: Option<(Timestamp, Value)>,
    last: Option<(Timestamp, Value)>,
    weighted: f64,
    covered: f64,
    durations: BTreeMap<String, f64>,
}

impl Acc {
    fn add(&mut self, t: Timestamp, v: &Value) {
        self.count += 1;
        if let Some(x) = v.as_f64().filter(|x| !x.is_nan()) {
            self.numbers += 1;
            self.sum += x;
            self.min = Some(self.min.map_or(x, |m| m.min(x)));
            self.max = Some(self.max.map_or(x, |m| m.max(x)));
        }
        if self.first.is_none() {
            self.first = Some((t, v.clone()));
        }
        self.last = Some((t, v.clone()));
    }

    fn finish(self, start: Timestamp, end: Timestamp) -> Bucket {
        Bucket {
            start,
            end,
            count: self.count,
            min: self.min,
            max: self.max,
            mean: (self.numbers > 0).then(|| self.sum / self.numbers as f64),
            twa: (self.covered > 0.0).then(|| self.weighted / self.covered),
            first: self.first,
            last: self.last,
            durations: self.durations.into_iter().collect(),
        }
    }
}
