//! `/api/v1/production/...` and `/api/v1/forms/...`: work orders, lots and genealogy,
//! downtime reasons, machine states, OEE, operators and operator forms.
//!
//! Both go through the production stage's service,
//! [`ProductionHandle`](backplane_production::ProductionHandle); without the stage the
//! endpoints answer 404 `production_not_configured`. Every change is one
//! `backplane_production::Command` handed to
//! [`ProductionHandle::execute`](backplane_production::ProductionHandle::execute): the
//! pipeline runs it between two batches, so a work order started here is on every sample
//! read after it and on none before, and the events it makes go to every sink like any
//! other. The MQTT command topic uses the same vocabulary. Queries serialize from the
//! published copy of the production state
//! ([`ProductionHandle::view`](backplane_production::ProductionHandle::view)), so a
//! request never holds the lock the pipeline needs.
//!
//! Request bodies are read into typed structs that refuse unknown fields; an error names
//! the field at fault (`consumed[1].quantity`). A refused command keeps the production
//! core's own sentence and field, with its kind as the status: invalid 400, not found
//! 404, conflict 409. An operator entry with bad fields is a 400 that lists every one of
//! them in `errors`, beside the usual `error`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use backplane_engine::Topology;
use backplane_model::sample::{ConsumedLot, LotStatus, Oee, OeePeriod, WorkOrderStatus};
use backplane_model::{AssetPath, Timestamp};
use backplane_production::{
    Category, Command, CommandError, CommandFailed, ErrorKind, NewLot, NewWorkOrder, Production,
    ProductionHandle, Refusal, Trace, WorkOrder,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::actor::{Actor, outcome};
use crate::body::{parse_body, parse_body_nullable};
use crate::error::{ApiError, FieldProblem};
use crate::history::{Params, invalid};
use crate::{AppState, json_response};

/// Trace depth when `depth` is absent, and the most accepted.
const DEFAULT_TRACE_DEPTH: u32 = 10;
const MAX_TRACE_DEPTH: u32 = 100;
/// Entries listed when `limit` is absent, and the most (the core keeps the latest 1000).
const DEFAULT_ENTRY_LIMIT: usize = 100;
const MAX_ENTRY_LIMIT: usize = 1000;

const WORK_ORDER_ACTIONS: [&str; 5] = ["release", "start", "hold", "complete", "cancel"];

// ── Running commands ─────────────────────────────────────────────────────────────────

/// The production stage's handle, or 404 when this gateway runs without it.
fn handle(state: &AppState) -> Result<&ProductionHandle, ApiError> {
    state.production.as_deref().ok_or_else(|| {
        ApiError::not_found(
            "production is not running on this gateway: the `production` stage is not registered",
        )
        .with_code("production_not_configured")
    })
}

/// The production state after everything queued before this request (a published
/// copy: serializing it holds no lock the pipeline needs).
async fn view(state: &AppState) -> Result<Arc<Production>, ApiError> {
    Ok(handle(state)?.current().await)
}

/// Runs `read` over a copy of the production state.
fn with_view<T>(
    view: &Arc<Production>,
    read: impl FnOnce(&Production) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    read(view)
}

/// Runs `command` for `actor` in the pipeline; the object it created or changed, as JSON.
/// Audited with the request's body (`request`) as the new value.
async fn execute(state: &AppState, command: Command, actor: &Actor, body: &[u8]) -> Result<Value, ApiError> {
    let (action, target) = describe(&command);
    let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let result = match handle(state) {
        Ok(handle) => handle
            .execute(command, Some(actor.name()))
            .await
            .map_err(|e| match e {
                CommandFailed::Refused(refusal) => refused(refusal),
                CommandFailed::Stopped => ApiError::engine_stopped(),
            }),
        Err(e) => Err(e),
    };
    let new = serde_json::json!({"command": action, "target": target, "request": request});
    actor.record(state, action, &target, None, Some(new), outcome(&result));
    result
}

/// The audit action and target of a command.
fn describe(command: &Command) -> (&'static str, String) {
    match command {
        Command::CreateWorkOrder(new) => ("work_order.create", new.id.clone()),
        Command::ReleaseWorkOrder { id } => ("work_order.release", id.clone()),
        Command::StartWorkOrder { id } => ("work_order.start", id.clone()),
        Command::HoldWorkOrder { id } => ("work_order.hold", id.clone()),
        Command::CompleteWorkOrder { id } => ("work_order.complete", id.clone()),
        Command::CancelWorkOrder { id } => ("work_order.cancel", id.clone()),
        Command::SetWorkOrderStatus { id, .. } => ("work_order.status", id.clone()),
        Command::CreateLot(new) => ("lot.create", new.id.clone()),
        Command::SetLotStatus { id, .. } => ("lot.status", id.clone()),
        Command::RecordGenealogy { produced, .. } => ("genealogy.record", produced.clone()),
        Command::AssignReason { downtime, .. } => ("downtime.reason", downtime.to_string()),
        Command::SignIn { operator, .. } => ("operator.sign_in", operator.clone()),
        Command::SignOut { operator } => ("operator.sign_out", operator.clone()),
        Command::SubmitForm { form, asset, id, .. } => (
            "form.entry",
            match id {
                Some(id) => format!("{form} {asset} {id}"),
                None => format!("{form} {asset}"),
            },
        ),
    }
}

/// A refused command as an API error: the core's sentence and field, its kind as status.
fn refused(refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Command(e) => {
            let (status, code) = match e.kind {
                ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid_value"),
                ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            };
            let error = ApiError::new(status, code, e.message);
            match e.field {
                Some(field) => error.with_field(field),
                None => error,
            }
        }
        Refusal::Fields { errors } => {
            let message = match errors.as_slice() {
                [one] => format!("the entry was not recorded: {}: {}", one.field, one.message),
                many => format!(
                    "the entry was not recorded: {} problems, each listed in `errors`",
                    many.len()
                ),
            };
            let field = match errors.as_slice() {
                [one] => Some(one.field.clone()),
                _ => None,
            };
            let problems = errors
                .into_iter()
                .map(|e| FieldProblem {
                    field: e.field,
                    message: e.message,
                })
                .collect();
            let error = ApiError::bad_request("invalid_entry", message).with_errors(problems);
            match field {
                Some(field) => error.with_field(field),
                None => error,
            }
        }
    }
}

/// A status change the life cycle does not allow (the core names the field `status`) is
/// `invalid_transition`, reported on `field`.
fn transition(field: &'static str) -> impl Fn(ApiError) -> ApiError {
    move |e| {
        if e.code == "invalid_value" && e.field.as_deref() == Some("status") {
            e.with_code("invalid_transition").with_field(field)
        } else {
            e
        }
    }
}

fn created(value: &Value) -> Result<Response, ApiError> {
    let mut response = json_response(value)?;
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

// ── Reading requests ─────────────────────────────────────────────────────────────────

fn body_bytes(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| ApiError::from_body_rejection(&r, state.max_body_bytes))
}

/// An empty body, or `{}`: the action endpoints take nothing else.
fn no_body(body: &[u8]) -> Result<(), ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Empty {}
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    parse_body::<Empty>(body).map(|_| ())
}

fn path_one(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    path.map(|Path(p)| p)
        .map_err(|r| ApiError::from_path_rejection(&r))
}

/// An asset given in full (`acme/plant-a/packaging/line-1`) or below the site
/// (`packaging/line-1`), as commands take it.
fn resolve_asset(topology: &Topology, field: &str, text: &str) -> Result<AssetPath, ApiError> {
    let text = text.trim().trim_matches('/');
    let namespace = &topology.plan.namespace;
    let site = format!("{}/{}", namespace.enterprise, namespace.site);
    topology
        .asset(text)
        .or_else(|| topology.asset(&format!("{site}/{text}")))
        .map(|node| node.path.clone())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no asset `{text}`: give a configured asset's path, in full or below the site (`{site}`)"
            ))
            .with_field(field)
        })
}

/// `?asset=`: an asset and everything below it; absent or empty means every asset.
fn asset_param(state: &AppState, params: &Params) -> Result<Option<AssetPath>, ApiError> {
    match params.get("asset").filter(|a| !a.trim().is_empty()) {
        None => Ok(None),
        Some(text) => resolve_asset(state.engine.topology(), "asset", text).map(Some),
    }
}

fn below(asset: &AssetPath, filter: Option<&AssetPath>) -> bool {
    filter.is_none_or(|f| asset.starts_with(f))
}

/// A comma-separated list of names from `all`, e.g. `?status=released,running`.
fn names_param<T: Copy + PartialEq>(
    params: &Params,
    field: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<Option<Vec<T>>, ApiError> {
    let Some(text) = params.get(field) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for part in crate::history::list_items(text) {
        let Some(&value) = all.iter().find(|v| name(**v) == part) else {
            let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
            return Err(invalid(
                field,
                format!("`{part}` is not a {field}; use {}", names.join(", ")),
            ));
        };
        out.push(value);
    }
    Ok(Some(out))
}

fn number_param<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    params: &Params,
    field: &str,
    default: T,
    min: T,
    max: T,
) -> Result<T, ApiError> {
    match params.get(field) {
        None => Ok(default),
        Some(text) => match text.trim().parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(invalid(
                field,
                format!("`{field}` must be a whole number from {min} to {max}"),
            )),
        },
    }
}

// ── Work orders ──────────────────────────────────────────────────────────────────────

/// `GET /api/v1/production/work-orders[?status=&asset=]`.
pub(crate) async fn work_orders(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw, &[&["status", "asset"]])?;
    let status = names_param(&params, "status", &WorkOrderStatus::ALL, WorkOrderStatus::name)?;
    let asset = asset_param(&state, &params)?;
    with_view(&view(&state).await?, |p| {
        let orders: Vec<&WorkOrder> = p
            .work_orders()
            .filter(|o| status.as_ref().is_none_or(|s| s.contains(&o.status)))
            .filter(|o| below(&o.asset, asset.as_ref()))
            .collect();
        json_response(&orders)
    })
}

/// `POST /api/v1/production/work-orders`: creates one (status `created`).
pub(crate) async fn create_work_order(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(&state, body)?;
    let new: NewWorkOrder = parse_body(&body)?;
    created(&execute(&state, Command::CreateWorkOrder(new), &actor, &body).await?)
}

#[derive(Serialize)]
struct WorkOrderView<'a> {
    #[serde(flatten)]
    order: &'a WorkOrder,
    /// Per tracked asset it ran on.
    oee: Vec<AssetOee>,
}

#[derive(Serialize)]
struct AssetOee {
    asset: AssetPath,
    #[serde(flatten)]
    figures: Oee,
}

fn no_work_order(id: &str) -> ApiError {
    ApiError::not_found(format!("no work order `{id}`")).with_field("id")
}

/// `GET /api/v1/production/work-orders/{id}`: the order with its status history and its
/// OEE on every tracked asset it ran on.
pub(crate) async fn work_order(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_one(path)?;
    with_view(&view(&state).await?, |p| {
        let order = p.work_order(&id).ok_or_else(|| no_work_order(&id))?;
        let oee = p
            .work_order_oee(&id)
            .into_iter()
            .map(|(asset, figures)| AssetOee { asset, figures })
            .collect();
        json_response(&WorkOrderView { order, oee })
    })
}

/// `POST /api/v1/production/work-orders/{id}/{action}`: release, start, hold, complete or
/// cancel.
pub(crate) async fn work_order_action(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    actor: Actor,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Path((id, action)) = path.map_err(|r| ApiError::from_path_rejection(&r))?;
    let command = match action.as_str() {
        "release" => Command::ReleaseWorkOrder { id },
        "start" => Command::StartWorkOrder { id },
        "hold" => Command::HoldWorkOrder { id },
        "complete" => Command::CompleteWorkOrder { id },
        "cancel" => Command::CancelWorkOrder { id },
        other => {
            return Err(ApiError::not_found(format!(
                "work orders have no action `{other}`; the actions are {}",
                WORK_ORDER_ACTIONS.join(", ")
            ))
            .with_field("action"));
        }
    };
    let body = body_bytes(&state, body)?;
    no_body(&body)?;
    let order = execute(&state, command, &actor, &body)
        .await
        .map_err(transition("action"))?;
    json_response(&order)
}

// ── Lots and genealogy ───────────────────────────────────────────────────────────────

/// `GET /api/v1/production/lots[?status=&material=&asset=]`.
pub(crate) async fn lots(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw, &[&["status", "material", "asset"]])?;
    let status = names_param(&params, "status", &LotStatus::ALL, LotStatus::name)?;
    let material = params.get("material").map(str::to_owned);
    let asset = asset_param(&state, &params)?;
    with_view(&view(&state).await?, |p| {
        let lots: Vec<_> = p
            .lots()
            .filter(|l| status.as_ref().is_none_or(|s| s.contains(&l.status)))
            .filter(|l| material.as_deref().is_none_or(|m| &*l.material == m))
            .filter(|l| asset.is_none() || l.asset.as_ref().is_some_and(|a| below(a, asset.as_ref())))
            .collect();
        json_response(&lots)
    })
}

/// `POST /api/v1/production/lots`: creates one (default status `active`).
pub(crate) async fn create_lot(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(&state, body)?;
    let new: NewLot = parse_body(&body)?;
    created(&execute(&state, Command::CreateLot(new), &actor, &body).await?)
}

fn no_lot(id: &str) -> ApiError {
    ApiError::not_found(format!("no lot `{id}`")).with_field("id")
}

/// `GET /api/v1/production/lots/{id}`.
pub(crate) async fn lot(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_one(path)?;
    with_view(&view(&state).await?, |p| {
        json_response(p.lot(&id).ok_or_else(|| no_lot(&id))?)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LotStatusBody {
    status: LotStatus,
}

/// `POST /api/v1/production/lots/{id}/status` `{"status": "quarantined"}`.
pub(crate) async fn lot_status(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    actor: Actor,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = path_one(path)?;
    let body = body_bytes(&state, body)?;
    let LotStatusBody { status } = parse_body(&body)?;
    let lot = execute(&state, Command::SetLotStatus { id, status }, &actor, &body)
        .await
        .map_err(transition("status"))?;
    json_response(&lot)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenealogyBody {
    consumed: Vec<ConsumedBody>,
    produced: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumedBody {
    lot: String,
    #[serde(default)]
    quantity: Option<f64>,
    #[serde(default)]
    unit: Option<String>,
}

/// `POST /api/v1/production/genealogy`: the `consumed` lots went into `produced`.
pub(crate) async fn genealogy(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(&state, body)?;
    let GenealogyBody { consumed, produced } = parse_body(&body)?;
    let consumed = consumed
        .into_iter()
        .map(|c| ConsumedLot {
            lot: c.lot.into(),
            quantity: c.quantity,
            unit: c.unit.map(Into::into),
        })
        .collect();
    created(
        &execute(
            &state,
            Command::RecordGenealogy { consumed, produced },
            &actor,
            &body,
        )
        .await?,
    )
}

#[derive(Serialize)]
struct TraceView<'a> {
    lot: &'a str,
    depth: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    forward: Option<Trace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backward: Option<Trace>,
}

/// `GET /api/v1/production/lots/{id}/trace[?direction=forward|backward&depth=N]`: both
/// directions unless one is asked for.
pub(crate) async fn trace(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let id = path_one(path)?;
    let params = Params::parse(raw, &[&["direction", "depth"]])?;
    let (forward, backward) = match params.get("direction") {
        None | Some("both") => (true, true),
        Some("forward") => (true, false),
        Some("backward") => (false, true),
        Some(other) => {
            return Err(invalid(
                "direction",
                format!("`{other}` is not a direction; use forward, backward or both (the default)"),
            ));
        }
    };
    let depth = number_param(&params, "depth", DEFAULT_TRACE_DEPTH, 1, MAX_TRACE_DEPTH)?;
    with_view(&view(&state).await?, |p| {
        if p.lot(&id).is_none() {
            return Err(no_lot(&id));
        }
        let run = |wanted: bool, f: fn(&Production, &str, u32) -> Result<Trace, CommandError>| {
            wanted
                .then(|| f(p, &id, depth))
                .transpose()
                .map_err(|e| refused(Refusal::Command(e)).with_field("id"))
        };
        json_response(&TraceView {
            lot: &id,
            depth,
            forward: run(forward, Production::trace_forward)?,
            backward: run(backward, Production::trace_backward)?,
        })
    })
}

// ── Downtime and reasons ─────────────────────────────────────────────────────────────

/// `GET /api/v1/production/downtimes[?asset=&from=&to=]`: open and recent downtimes
/// overlapping `[from, to)`, by id.
pub(crate) async fn downtimes(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw, &[&["asset", "from", "to"]])?;
    let asset = asset_param(&state, &params)?;
    let from = params.time("from")?;
    let to = params.time("to")?;
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return Err(invalid(
            "from",
            format!("`from` ({from}) must be before `to` ({to})"),
        ));
    }
    with_view(&view(&state).await?, |p| {
        json_response(&p.downtimes(asset.as_ref(), from, to))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: String,
}

/// `POST /api/v1/production/downtimes/{id}/reason` `{"reason": "mechanical/jam"}`.
pub(crate) async fn assign_reason(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    actor: Actor,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = path_one(path)?;
    let Ok(downtime) = id.parse::<u64>() else {
        return Err(ApiError::not_found(format!(
            "no downtime `{id}`: downtime ids are whole numbers (see GET /api/v1/production/downtimes)"
        ))
        .with_field("id"));
    };
    let body = body_bytes(&state, body)?;
    let ReasonBody { reason } = parse_body(&body)?;
    json_response(&execute(&state, Command::AssignReason { downtime, reason }, &actor, &body).await?)
}

#[derive(Serialize)]
struct ReasonNode<'a> {
    code: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    planned: bool,
    reasons: Vec<ReasonNode<'a>>,
}

/// The reasons whose parent code is `parent` (`None`: the top level), with their children.
/// Recursion is as deep as the configured tree.
fn reason_nodes<'a>(p: &'a Production, parent: Option<&str>) -> Vec<ReasonNode<'a>> {
    p.reasons()
        .iter()
        .filter(|r| r.code.rsplit_once('/').map(|(up, _)| up) == parent)
        .map(|r| ReasonNode {
            code: &r.code,
            name: r.code.rsplit_once('/').map_or(r.code.as_str(), |(_, name)| name),
            description: r.description.as_deref(),
            planned: r.planned,
            reasons: reason_nodes(p, Some(&r.code)),
        })
        .collect()
}

/// `GET /api/v1/production/reasons`: the reason tree of `[downtime_reasons]`.
pub(crate) async fn reasons(State(state): State<AppState>) -> Result<Response, ApiError> {
    with_view(&view(&state).await?, |p| json_response(&reason_nodes(p, None)))
}

// ── States and OEE ───────────────────────────────────────────────────────────────────

#[derive(Serialize)]
struct StateEntry {
    asset: AssetPath,
    /// `null` until the first state is read.
    state: Option<Arc<str>>,
    since: Option<Timestamp>,
    code: Option<Arc<str>>,
    category: Option<Category>,
    /// The open downtime's id.
    downtime: Option<u64>,
    work_order: Option<Arc<str>>,
    ideal_rate_per_min: Option<f64>,
    accounted_to: Option<Timestamp>,
    /// Exact nanoseconds in each state since tracking began, up to `accounted_to`.
    durations_ns: std::collections::BTreeMap<String, i64>,
}

/// `GET /api/v1/production/states[?asset=]`: every tracked asset's state.
pub(crate) async fn states(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw, &[&["asset"]])?;
    let asset = asset_param(&state, &params)?;
    with_view(&view(&state).await?, |p| {
        let entries: Vec<StateEntry> = p
            .machines()
            .filter(|m| below(m, asset.as_ref()))
            .filter_map(|m| p.state(m))
            .map(|v| {
                let (state, since, code) = match v.state {
                    Some(s) => (Some(s.state), Some(s.since), s.code),
                    None => (None, None, None),
                };
                StateEntry {
                    asset: v.asset,
                    state,
                    since,
                    code,
                    category: v.category,
                    downtime: v.downtime,
                    work_order: v.work_order,
                    ideal_rate_per_min: v.ideal_rate_per_min,
                    accounted_to: v.accounted_to,
                    durations_ns: v.durations_ns,
                }
            })
            .collect();
        json_response(&entries)
    })
}

/// `GET /api/v1/production/oee[?asset=&period=hour|shift|work_order]`: per tracked asset
/// and kind of period, the open periods' figures so far and the recent closed ones.
pub(crate) async fn oee(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw, &[&["asset", "period"]])?;
    let asset = asset_param(&state, &params)?;
    let periods = names_param(&params, "period", &OeePeriod::ALL, OeePeriod::name)?
        .unwrap_or_else(|| OeePeriod::ALL.to_vec());
    with_view(&view(&state).await?, |p| {
        let reports: Vec<_> = p
            .machines()
            .filter(|m| below(m, asset.as_ref()))
            .flat_map(|m| periods.iter().filter_map(move |&period| p.oee(m, period)))
            .collect();
        json_response(&reports)
    })
}

// ── Operators ────────────────────────────────────────────────────────────────────────

/// `GET /api/v1/production/operators`: who is signed in where.
pub(crate) async fn operators(State(state): State<AppState>) -> Result<Response, ApiError> {
    with_view(&view(&state).await?, |p| json_response(p.operators()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    operator: String,
    #[serde(default)]
    name: Option<String>,
    asset: String,
}

/// `POST /api/v1/production/operators/sign-in`.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(&state, body)?;
    let SignInBody {
        operator,
        name,
        asset,
    } = parse_body_nullable(&body, &["name"])?;
    json_response(
        &execute(
            &state,
            Command::SignIn {
                operator,
                name,
                asset,
            },
            &actor,
            &body,
        )
        .await?,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignOutBody {
    operator: String,
}

/// `POST /api/v1/production/operators/sign-out`.
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body_bytes(&state, body)?;
    let SignOutBody { operator } = parse_body(&body)?;
    json_response(&execute(&state, Command::SignOut { operator }, &actor, &body).await?)
}

// ── Operator forms ───────────────────────────────────────────────────────────────────

fn no_form(p: &Production, name: &str) -> ApiError {
    let names: Vec<&str> = p.forms().iter().map(|f| f.name.as_str()).collect();
    let known = if names.is_empty() {
        "no forms are configured ([forms.NAME])".to_owned()
    } else {
        format!("the forms are {}", names.join(", "))
    };
    ApiError::not_found(format!("no form `{name}`; {known}")).with_field("name")
}

/// `GET /api/v1/forms`: every form, with what a user interface needs to render it.
pub(crate) async fn forms(State(state): State<AppState>) -> Result<Response, ApiError> {
    with_view(&view(&state).await?, |p| json_response(p.forms()))
}

/// `GET /api/v1/forms/{name}`.
pub(crate) async fn form(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = path_one(path)?;
    with_view(&view(&state).await?, |p| {
        json_response(p.form(&name).ok_or_else(|| no_form(p, &name))?)
    })
}

/// `GET /api/v1/forms/{name}/entries[?asset=&limit=]`: recent entries, newest first.
pub(crate) async fn entries(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let name = path_one(path)?;
    let params = Params::parse(raw, &[&["asset", "limit"]])?;
    let asset = asset_param(&state, &params)?;
    let limit = number_param(&params, "limit", DEFAULT_ENTRY_LIMIT, 1, MAX_ENTRY_LIMIT)?;
    with_view(&view(&state).await?, |p| {
        if p.form(&name).is_none() {
            return Err(no_form(p, &name));
        }
        // The core lists them oldest first.
        let matching: Vec<_> = p
            .entries()
            .filter(|e| *e.form == *name && below(&e.asset, asset.as_ref()))
            .collect();
        let list: Vec<_> = matching.into_iter().rev().take(limit).collect();
        json_response(&list)
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryBody {
    // Both default to empty so that a submission missing them is checked as a whole and
    // every problem reported at once (an empty asset is named like any bad field).
    #[serde(default)]
    asset: String,
    #[serde(default)]
    values: Map<String, Value>,
    /// The client's id for the entry: a retry with it is recognised.
    #[serde(default)]
    id: Option<String>,
    /// When the entry was made (RFC 3339), for one queued while the gateway was away.
    #[serde(default)]
    time: Option<String>,
}

/// `POST /api/v1/forms/{name}/entries` `{"asset": ..., "values": {...}, "id"?: ...,
/// "time"?: ...}`: 201 with the recorded entry, 200 with the entry recorded before when
/// `id` was (`"duplicate": true`), 409 when that id was recorded with other content, or
/// 400 naming every bad field (nothing recorded).
pub(crate) async fn submit_entry(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    actor: Actor,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let name = path_one(path)?;
    with_view(&view(&state).await?, |p| {
        p.form(&name).map(|_| ()).ok_or_else(|| no_form(p, &name))
    })?;
    let body = body_bytes(&state, body)?;
    let EntryBody {
        asset,
        values,
        id,
        time,
    } = parse_body(&body)?;
    let command = Command::SubmitForm {
        form: name,
        asset,
        values,
        id,
        time,
    };
    let answer = execute(&state, command, &actor, &body).await?;
    if answer.get("duplicate") == Some(&Value::Bool(true)) {
        json_response(&answer)
    } else {
        created(&answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_bodies_may_be_empty_or_an_empty_object_only() {
        assert!(no_body(b"").is_ok());
        assert!(no_body(b" \n").is_ok());
        assert!(no_body(b"{}").is_ok());
        let e = no_body(br#"{"status": "running"}"#).unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("unknown_field", Some("status")));
    }
}
