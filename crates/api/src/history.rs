//! `/api/v1/history/...`: queries against the embedded historian — stored series, raw
//! points, the latest point, aggregates over fixed intervals, and events — selected by tag,
//! asset prefix or model attribute and filtered by production context.
//!
//! Query parameters are checked strictly: an unknown name is a 400 naming it, because a
//! misspelt filter (`bach=B-77`) silently ignored would return every batch's data.
//!
//! Every historian sink's store is queried by the sink's name: `historian=NAME` on every
//! endpoint, optional while the gateway has one historian. With several and none named
//! the answer is a 400 listing their names (a guess would mix up two histories); an unknown
//! name is a 404 listing them.
//!
//! Without a historian the endpoints answer 404 `historian_not_configured`: the history
//! does not exist on this gateway, and a 503 would tell clients to retry when only a
//! configuration change helps.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use backplane_historian::export::{parse_every, parse_time};
use backplane_historian::{
    AggregateQuery, Bucket, ContextFilter, ContextId, EventQuery, Function, Point, Selector, SeriesInfo,
    Store, StoreError,
};
use backplane_model::context::MAX_CONTEXT_VALUE_LEN;
use backplane_model::{AssetPath, Context, ContextField, Quality, Timestamp, Value};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::error::ApiError;
use crate::{AppState, json_response};

const DEFAULT_RAW_LIMIT: usize = 10_000;
const MAX_RAW_LIMIT: usize = 100_000;
const DEFAULT_EVENT_LIMIT: usize = 1_000;
const MAX_EVENT_LIMIT: usize = 100_000;
/// The range when `from` is absent: the hour before `to`.
const DEFAULT_SPAN_NANOS: i64 = 3_600_000_000_000;

const SELECTOR: [&str; 4] = ["tag", "asset", "model", "attribute"];
/// Which historian sink to query; every endpoint takes it.
const HISTORIAN: [&str; 1] = ["historian"];
const CONTEXT: [&str; 7] = [
    "work_order",
    "product",
    "batch",
    "lot",
    "shift",
    "operator",
    "machine_state",
];

fn not_configured() -> ApiError {
    ApiError::not_found(
        "no historian is configured on this gateway: add a `[[sinks]]` entry with `kind = \"historian\"` (see docs/historian.md)",
    )
    .with_code("historian_not_configured")
}

pub(crate) fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_parameter", message).with_field(field)
}

pub(crate) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid(message) => invalid("every", message),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "historian_error",
            format!("the historian could not answer: {other}"),
        ),
    }
}

/// An RFC 3339 time a `Timestamp` cannot hold, as the end of its range on that side.
fn beyond_range(text: &str) -> Option<Timestamp> {
    let dt = time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339).ok()?;
    Some(Timestamp::from_unix_nanos(if dt.unix_timestamp_nanos() < 0 {
        i64::MIN
    } else {
        i64::MAX
    }))
}

/// The items of a comma-separated query value, each trimmed of spaces and tabs only: the
/// OpenAPI patterns say `[ \t]`, and trimming what Rust calls whitespace (U+0085, U+3000…)
/// would accept values the document rejects.
pub(crate) fn list_items(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(|item| item.trim_matches([' ', '\t']))
        .filter(|item| !item.is_empty())
}

/// The query string as name/value pairs, every name checked against `allowed`.
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub(crate) fn parse(raw: Option<String>, allowed: &[&[&str]]) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).map_err(|e| {
                ApiError::bad_request("invalid_query", format!("the query string does not decode: {e}"))
            })?;
        let names: Vec<&str> = allowed.iter().flat_map(|a| a.iter().copied()).collect();
        for (name, _) in &pairs {
            if !names.contains(&name.as_str()) {
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    format!(
                        "`{name}` is not a parameter of this endpoint; its parameters are: {}",
                        names.join(", ")
                    ),
                )
                .with_field(name.clone()));
            }
            if name != "tag" && pairs.iter().filter(|(n, _)| n == name).count() > 1 {
                return Err(invalid(name, format!("`{name}` is given more than once")));
            }
        }
        Ok(Params { pairs })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A time parameter: RFC 3339, `now` or `now-<duration>`. An RFC 3339 time beyond the
    /// years a `Timestamp` holds (1678 to 2262) is the nearest end of that range: nothing
    /// can be stored before or after it, so the answer is the same.
    pub(crate) fn time(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        self.get(name)
            .map(|text| {
                parse_time(text)
                    .or_else(|e| beyond_range(text).ok_or(e))
                    .map_err(|e| invalid(name, e))
            })
            .transpose()
    }

    /// `from` and `to`: `to` defaults to now, `from` to an hour before `to`.
    fn range(&self) -> Result<(Timestamp, Timestamp), ApiError> {
        self.range_spanning(DEFAULT_SPAN_NANOS)
    }

    /// `from` and `to`: `to` defaults to now, `from` to a day before `to`.
    pub(crate) fn range_or_day(&self) -> Result<(Timestamp, Timestamp), ApiError> {
        self.range_spanning(24 * DEFAULT_SPAN_NANOS)
    }

    fn range_spanning(&self, default_span: i64) -> Result<(Timestamp, Timestamp), ApiError> {
        let to = self.time("to")?.unwrap_or_else(Timestamp::now);
        let from = self.time("from")?.unwrap_or_else(|| to.add_nanos(-default_span));
        if from >= to {
            return Err(invalid(
                "from",
                format!("`from` ({from}) must be before `to` ({to})"),
            ));
        }
        Ok((from, to))
    }

    pub(crate) fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(invalid(
                    "limit",
                    format!("`limit` must be a whole number from 1 to {max}"),
                )),
            },
        }
    }

    fn context(&self) -> Result<ContextFilter, ApiError> {
        let mut filter = ContextFilter::default();
        for field in ContextField::ALL {
            let Some(value) = self.get(field.name()) else {
                continue;
            };
            if value.is_empty() || value.chars().count() > MAX_CONTEXT_VALUE_LEN {
                return Err(invalid(
                    field.name(),
                    format!(
                        "`{}` must be 1 to {MAX_CONTEXT_VALUE_LEN} characters",
                        field.name()
                    ),
                ));
            }
            filter = filter.with(field, value);
        }
        Ok(filter)
    }

    /// The series named by `tag`, `asset` or `model` (+ `attribute`); `None` when none of
    /// them is given.
    fn selector(&self, store: &Store) -> Result<Option<Selector>, ApiError> {
        let given: Vec<&str> = ["tag", "asset", "model"]
            .into_iter()
            .filter(|n| self.get(n).is_some())
            .collect();
        if given.len() > 1 {
            return Err(invalid(
                given[1],
                format!(
                    "choose one of `tag`, `asset` and `model`, not `{}` and `{}`",
                    given[0], given[1]
                ),
            ));
        }
        let attribute = self.get("attribute").map(str::to_owned);
        match given.first().copied() {
            None if attribute.is_some() => {
                Err(invalid("attribute", "`attribute` goes with `model` or `asset`"))
            }
            None => Ok(None),
            Some("tag") => {
                if attribute.is_some() {
                    return Err(invalid(
                        "attribute",
                        "`attribute` goes with `model` or `asset`, not `tag`",
                    ));
                }
                let tags: Vec<String> = self
                    .pairs
                    .iter()
                    .filter(|(n, _)| n == "tag")
                    .flat_map(|(_, v)| v.split(','))
                    .map(|t| t.trim().trim_end_matches('/').to_owned())
                    .filter(|t| !t.is_empty())
                    .collect();
                if tags.is_empty() {
                    return Err(invalid("tag", "`tag` is empty; give `asset/attribute` paths"));
                }
                for tag in &tags {
                    if store.select(&Selector::Tags(vec![tag.clone()])).is_empty() {
                        return Err(unknown_tag(store, tag));
                    }
                }
                Ok(Some(Selector::Tags(tags)))
            }
            Some("asset") => {
                let prefix = self.get("asset").unwrap_or_default().trim_end_matches('/');
                let path = AssetPath::parse(prefix).map_err(|e| {
                    ApiError::bad_request("invalid_prefix", format!("`{prefix}` is not an asset path: {e}"))
                        .with_field("asset")
                })?;
                let selector = Selector::Asset {
                    prefix: path.to_string(),
                    attribute,
                };
                if store.select(&selector).is_empty() {
                    return Err(ApiError::not_found(format!(
                        "nothing is stored for asset `{path}`{}",
                        self.get("attribute")
                            .map(|a| format!(" with attribute `{a}`"))
                            .unwrap_or_default()
                    ))
                    .with_field("asset"));
                }
                Ok(Some(selector))
            }
            Some(_) => {
                let model = self.get("model").unwrap_or_default().to_owned();
                let models = store.models();
                let Some(attributes) = models.get(&model) else {
                    let names: Vec<&str> = models.keys().map(String::as_str).collect();
                    return Err(ApiError::not_found(format!(
                        "no stored model `{model}`; stored models: {}",
                        if names.is_empty() {
                            "none".to_owned()
                        } else {
                            names.join(", ")
                        }
                    ))
                    .with_field("model"));
                };
                if let Some(a) = &attribute
                    && !attributes.contains(a)
                {
                    return Err(ApiError::not_found(format!(
                        "model `{model}` has no stored attribute `{a}`; its attributes are: {}",
                        attributes.join(", ")
                    ))
                    .with_field("attribute"));
                }
                Ok(Some(Selector::Model { model, attribute }))
            }
        }
    }

    fn required_selector(&self, store: &Store) -> Result<Selector, ApiError> {
        self.selector(store)?.ok_or_else(|| {
            ApiError::bad_request(
                "missing_parameter",
                "say which series: `tag=asset/attribute`, `asset=PREFIX` or `model=NAME` (with `attribute=`)",
            )
            .with_field("tag")
        })
    }
}

/// Says which half of `asset/attribute` is unknown.
fn unknown_tag(store: &Store, tag: &str) -> ApiError {
    let message = match tag.rsplit_once('/') {
        Some((asset, attribute)) => {
            let stored = store.select(&Selector::Asset {
                prefix: asset.to_owned(),
                attribute: None,
            });
            let here: Vec<&str> = stored
                .iter()
                .filter(|s| *s.asset == *asset)
                .map(|s| &*s.attribute)
                .collect();
            if here.is_empty() {
                format!("nothing is stored for tag `{tag}`: no asset `{asset}` in the historian")
            } else {
                format!(
                    "nothing is stored for tag `{tag}`: asset `{asset}` has no attribute `{attribute}`; its attributes are: {}",
                    here.join(", ")
                )
            }
        }
        None => format!("`{tag}` is not a tag path (`asset/attribute`)"),
    };
    ApiError::not_found(message).with_field("tag")
}

/// The store the request names (`historian=NAME`, or the only one) and the request's
/// parameters, checked against `allowed` and `historian`.
pub(crate) fn store(
    state: &AppState,
    raw: Option<String>,
    allowed: &[&[&str]],
) -> Result<(Arc<Store>, Params), ApiError> {
    // No historian at all says so before anything about the parameters.
    if state.histories.is_empty() {
        return Err(not_configured());
    }
    let mut allowed = allowed.to_vec();
    allowed.push(&HISTORIAN);
    let params = Params::parse(raw, &allowed)?;
    let names = || {
        state
            .histories
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let store = match (params.get("historian"), &*state.histories) {
        (None, [(_, store)]) => store.clone(),
        (None, _) => {
            return Err(ApiError::bad_request(
                "missing_parameter",
                format!(
                    "this gateway has several historians ({}); say which with `historian=NAME`",
                    names()
                ),
            )
            .with_field("historian"));
        }
        (Some(name), histories) => histories
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, store)| store.clone())
            .ok_or_else(|| {
                ApiError::not_found(format!("no historian `{name}`; the historians are: {}", names()))
                    .with_field("historian")
            })?,
    };
    Ok((store, params))
}

/// Runs a store query off the async threads (it reads files).
/// Runs a historian query on the blocking pool, at most `HEAVY_QUERIES` at once: a queue of
/// clients waits up to `HEAVY_WAIT`, then gets `503 busy` rather than piling up memory.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = tokio::time::timeout(HEAVY_WAIT, state.heavy.clone().acquire_owned())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!(
                    "{} history queries are already running (the limit); retry in a few seconds",
                    crate::HEAVY_QUERIES
                ),
            )
        })?;
    tokio::task::spawn_blocking(move || {
        let result = f();
        drop(permit);
        result
    })
    .await
    .map_err(|e| ApiError::internal(format!("history query failed: {e}")))?
}

/// How long a history query waits for one of the `HEAVY_QUERIES` slots.
const HEAVY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Context objects by id, looked up once per response.
struct Contexts<'s> {
    store: &'s Store,
    seen: HashMap<ContextId, Arc<Context>>,
}

impl Contexts<'_> {
    fn get(&mut self, id: ContextId) -> Arc<Context> {
        self.seen
            .entry(id)
            .or_insert_with(|| self.store.context(id).unwrap_or_default())
            .clone()
    }
}

#[derive(Serialize)]
struct PointView {
    time: Timestamp,
    value: Option<Value>,
    quality: Quality,
    #[serde(skip_serializing_if = "Option::is_none")]
    quality_reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_time: Option<Timestamp>,
    context: Arc<Context>,
}

fn point_view(p: Point, contexts: &mut Contexts<'_>) -> PointView {
    PointView {
        time: p.time,
        value: p.value,
        quality: p.quality,
        quality_reason: p.quality.reason(),
        source_time: p.source_time,
        context: contexts.get(p.context),
    }
}

// ── GET /api/v1/history/series ────────────────────────────────────────────────────────

#[derive(Serialize)]
struct SeriesView {
    #[serde(flatten)]
    series: Arc<SeriesInfo>,
    points: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last: Option<Timestamp>,
}

pub(crate) async fn series(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (store, params) = store(&state, raw, &[&SELECTOR])?;
    let selector = params.selector(&store)?.unwrap_or(Selector::All);
    let views = blocking(&state, move || {
        let selected = store.select(&selector);
        Ok(store
            .summary(&selected)
            .into_iter()
            .map(|s| SeriesView {
                series: s.series,
                points: s.points,
                first: s.first,
                last: s.last,
            })
            .collect::<Vec<_>>())
    })
    .await?;
    #[derive(Serialize)]
    struct List {
        series: Vec<SeriesView>,
    }
    json_response(&List { series: views })
}

// ── GET /api/v1/history/raw ───────────────────────────────────────────────────────────

#[derive(Serialize)]
struct RawSeries {
    #[serde(flatten)]
    series: Arc<SeriesInfo>,
    truncated: bool,
    points: Vec<PointView>,
}

#[derive(Serialize)]
struct RawView {
    from: Timestamp,
    to: Timestamp,
    series: Vec<RawSeries>,
    /// The configuration versions in force during `[from, to]`, oldest first: a point's is
    /// the one whose `[from, until)` holds its `time`. Left out on a hub, whose stored
    /// points were read under their sites' configurations.
    #[serde(skip_serializing_if = "Option::is_none")]
    config_versions: Option<Vec<crate::versions::ActivationView>>,
}

pub(crate) async fn raw(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (store, params) = store(&state, raw, &[&SELECTOR, &CONTEXT, &["from", "to", "limit"]])?;
    let selector = params.required_selector(&store)?;
    let (from, to) = params.range()?;
    let filter = params.context()?;
    let limit = params.limit(DEFAULT_RAW_LIMIT, MAX_RAW_LIMIT)?;
    // A hub's points were read under its sites' configurations, not its own.
    let archive =
        (!state.engine.topology().plan.namespace.is_hub()).then(|| crate::versions::archive(&state));
    let view = blocking(&state, move || {
        let config_versions = archive
            .map(|archive| crate::versions::in_force(&archive, from, to))
            .transpose()?;
        let selected = store.select(&selector);
        let result = store
            .raw(&selected, from, to, &filter, limit)
            .map_err(store_error)?;
        let mut contexts = Contexts {
            store: &store,
            seen: HashMap::new(),
        };
        let series = result
            .into_iter()
            .map(|s| RawSeries {
                series: s.series,
                truncated: s.truncated,
                points: s
                    .points
                    .into_iter()
                    .map(|p| point_view(p, &mut contexts))
                    .collect(),
            })
            .collect();
        Ok(RawView {
            from,
            to,
            series,
            config_versions,
        })
    })
    .await?;
    json_response(&view)
}

// ── GET /api/v1/history/latest ────────────────────────────────────────────────────────

#[derive(Serialize)]
struct LatestSeries {
    #[serde(flatten)]
    series: Arc<SeriesInfo>,
    point: Option<PointView>,
}

#[derive(Serialize)]
struct LatestView {
    at: Timestamp,
    series: Vec<LatestSeries>,
}

pub(crate) async fn latest(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (store, params) = store(&state, raw, &[&SELECTOR, &CONTEXT, &["at"]])?;
    let selector = params.required_selector(&store)?;
    let at = params.time("at")?.unwrap_or_else(Timestamp::now);
    let filter = params.context()?;
    let view = blocking(&state, move || {
        let selected = store.select(&selector);
        let result = store.latest(&selected, at, &filter).map_err(store_error)?;
        let mut contexts = Contexts {
            store: &store,
            seen: HashMap::new(),
        };
        let series = result
            .into_iter()
            .map(|(series, point)| LatestSeries {
                series,
                point: point.map(|p| point_view(p, &mut contexts)),
            })
            .collect();
        Ok(LatestView { at, series })
    })
    .await?;
    json_response(&view)
}

// ── GET /api/v1/history/aggregate ─────────────────────────────────────────────────────

fn numeric(data_type: &str) -> bool {
    matches!(data_type, "float" | "int" | "uint" | "bool")
}

fn state_like(data_type: &str) -> bool {
    matches!(data_type, "bool" | "int" | "uint" | "string")
}

/// One bucket with the requested functions that apply to the series' type.
struct BucketView<'a> {
    bucket: &'a Bucket,
    functions: &'a [Function],
    data_type: &'a str,
}

#[derive(Serialize)]
struct Sampled<'a> {
    time: Timestamp,
    value: &'a Value,
}

impl Serialize for BucketView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let b = self.bucket;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("start", &b.start)?;
        map.serialize_entry("end", &b.end)?;
        let finite = |x: Option<f64>| x.map(Value::Float);
        for f in self.functions {
            match f {
                Function::Count => map.serialize_entry("count", &b.count)?,
                Function::Min if numeric(self.data_type) => map.serialize_entry("min", &finite(b.min))?,
                Function::Max if numeric(self.data_type) => map.serialize_entry("max", &finite(b.max))?,
                Function::Mean if numeric(self.data_type) => map.serialize_entry("mean", &finite(b.mean))?,
                Function::Twa if numeric(self.data_type) => map.serialize_entry("twa", &finite(b.twa))?,
                Function::First => map.serialize_entry(
                    "first",
                    &b.first
                        .as_ref()
                        .map(|(time, value)| Sampled { time: *time, value }),
                )?,
                Function::Last => map.serialize_entry(
                    "last",
                    &b.last
                        .as_ref()
                        .map(|(time, value)| Sampled { time: *time, value }),
                )?,
                Function::Durations if state_like(self.data_type) => {
                    let durations: serde_json::Map<String, serde_json::Value> = b
                        .durations
                        .iter()
                        .map(|(k, secs)| (k.clone(), serde_json::json!(secs)))
                        .collect();
                    map.serialize_entry("durations", &durations)?;
                }
                _ => {}
            }
        }
        map.end()
    }
}

struct AggregateSeries {
    series: Arc<SeriesInfo>,
    buckets: Vec<Bucket>,
}

struct AggregateView {
    from: Timestamp,
    to: Timestamp,
    every: String,
    functions: Vec<Function>,
    series: Vec<AggregateSeries>,
}

impl Serialize for AggregateView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct One<'a> {
            #[serde(flatten)]
            series: &'a SeriesInfo,
            buckets: Vec<BucketView<'a>>,
        }
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("from", &self.from)?;
        map.serialize_entry("to", &self.to)?;
        map.serialize_entry("every", &self.every)?;
        map.serialize_entry(
            "functions",
            &self.functions.iter().map(|f| f.name()).collect::<Vec<_>>(),
        )?;
        let series: Vec<One<'_>> = self
            .series
            .iter()
            .map(|s| One {
                series: &s.series,
                buckets: s
                    .buckets
                    .iter()
                    .map(|bucket| BucketView {
                        bucket,
                        functions: &self.functions,
                        data_type: &s.series.data_type,
                    })
                    .collect(),
            })
            .collect();
        map.serialize_entry("series", &series)?;
        map.end()
    }
}

pub(crate) async fn aggregate(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (store, params) = store(
        &state,
        raw,
        &[&SELECTOR, &CONTEXT, &["from", "to", "every", "fn"]],
    )?;
    let selector = params.required_selector(&store)?;
    let (from, to) = params.range()?;
    let context = params.context()?;
    let every_text = params.get("every").unwrap_or("1m").to_owned();
    let every = parse_every(&every_text).map_err(|e| invalid("every", e))?;
    let mut functions = Vec::new();
    for name in params.get("fn").unwrap_or("mean").split(',').map(str::trim) {
        let f = Function::parse(name).ok_or_else(|| {
            let all: Vec<&str> = Function::ALL.iter().map(|f| f.name()).collect();
            invalid(
                "fn",
                format!(
                    "`{name}` is not an aggregate; use one or more of: {}",
                    all.join(", ")
                ),
            )
        })?;
        if !functions.contains(&f) {
            functions.push(f);
        }
    }
    let view = blocking(&state, move || {
        let selected = store.select(&selector);
        let q = AggregateQuery {
            from,
            to,
            every,
            context,
        };
        let result = store.aggregate(&selected, &q).map_err(store_error)?;
        Ok(AggregateView {
            from,
            to,
            every: every_text,
            functions,
            series: result
                .into_iter()
                .map(|s| AggregateSeries {
                    series: s.series,
                    buckets: s.buckets,
                })
                .collect(),
        })
    })
    .await?;
    json_response(&view)
}

// ── GET /api/v1/history/events ────────────────────────────────────────────────────────

/// A stored event in the payload form of docs/payloads.md.
struct EventView {
    asset: Arc<str>,
    time: Timestamp,
    body: serde_json::Map<String, serde_json::Value>,
    context: Arc<Context>,
}

impl Serialize for EventView {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("kind", "event")?;
        map.serialize_entry("asset", &*self.asset)?;
        map.serialize_entry("time", &self.time)?;
        if let Some(event) = self.body.get("event") {
            map.serialize_entry("event", event)?;
        }
        for (k, v) in &self.body {
            if !matches!(k.as_str(), "kind" | "asset" | "time" | "context" | "event") {
                map.serialize_entry(k, v)?;
            }
        }
        map.serialize_entry("context", &*self.context)?;
        map.end()
    }
}

#[derive(Serialize)]
struct EventsView {
    from: Timestamp,
    to: Timestamp,
    truncated: bool,
    events: Vec<EventView>,
}

pub(crate) async fn events(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (store, params) = store(
        &state,
        raw,
        &[&CONTEXT, &["asset", "kind", "from", "to", "limit"]],
    )?;
    let (from, to) = params.range()?;
    let context = params.context()?;
    let limit = params.limit(DEFAULT_EVENT_LIMIT, MAX_EVENT_LIMIT)?;
    let asset = match params.get("asset") {
        None => None,
        Some(prefix) => {
            let prefix = prefix.trim_end_matches('/');
            let path = AssetPath::parse(prefix).map_err(|e| {
                ApiError::bad_request("invalid_prefix", format!("`{prefix}` is not an asset path: {e}"))
                    .with_field("asset")
            })?;
            Some(path.to_string())
        }
    };
    let kinds: Vec<String> = params
        .get("kind")
        .map(|k| {
            k.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let view = blocking(&state, move || {
        let q = EventQuery {
            from,
            to,
            asset,
            kinds,
            context,
            limit,
        };
        let (events, truncated) = store.events(&q).map_err(store_error)?;
        let mut contexts = Contexts {
            store: &store,
            seen: HashMap::new(),
        };
        let events = events
            .into_iter()
            .map(|e| EventView {
                asset: e.asset,
                time: e.time,
                body: match serde_json::from_str::<serde_json::Value>(&e.body) {
                    Ok(serde_json::Value::Object(map)) => map,
                    _ => serde_json::Map::from_iter([("event".to_owned(), serde_json::json!(&*e.kind))]),
                },
                context: contexts.get(e.context),
            })
            .collect();
        Ok(EventsView {
            from,
            to,
            truncated,
            events,
        })
    })
    .await?;
    json_response(&view)
}
