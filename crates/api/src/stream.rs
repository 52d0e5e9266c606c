//! Live changes over WebSocket and Server-Sent Events.
//!
//! Both subscribe to the engine's broadcast of routed batches when the request arrives
//! (before a WebSocket upgrade completes, so nothing routed in between is missed), keep the
//! samples whose asset and the events whose asset lie under `?prefix=`, and send each as
//! one JSON record in the payload form of `docs/payloads.md`.
//!
//! A subscriber that falls more than the engine's stream queue behind loses the oldest
//! batches; it is told with a `{"kind": "lagged", "missed_batches": n}` record and the loss
//! is counted in `backplane_stream_lagged_total`. The stream goes on: a dashboard prefers a
//! gap it knows about to a disconnect.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use backplane_engine::payload::{EventPayload, SamplePayload};
use backplane_engine::{Batch, EngineHandle, Topology};
use backplane_model::AssetPath;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::assets::{PrefixQuery, prefix_param, resolve_prefix};
use crate::error::ApiError;
use crate::{AppState, StreamShutdown};

/// How often an idle SSE stream sends a comment, so proxies keep it open and clients notice
/// a dead connection.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// One record to send: its SSE event name and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub kind: &'static str,
    pub json: String,
}

#[derive(Serialize)]
struct Lagged {
    kind: &'static str,
    missed_batches: u64,
}

/// Which assets a subscriber follows, decided once per subscription.
#[derive(Debug)]
pub(crate) struct Filter {
    topology: Arc<Topology>,
    prefix: Option<AssetPath>,
    /// By asset index: under the prefix or not.
    in_scope: Vec<bool>,
}

impl Filter {
    pub fn new(topology: Arc<Topology>, prefix: Option<AssetPath>) -> Filter {
        let in_scope = topology
            .assets
            .iter()
            .map(|a| prefix.as_ref().is_none_or(|p| a.path.starts_with(p)))
            .collect();
        Filter {
            topology,
            prefix,
            in_scope,
        }
    }

    /// The records of `batch` under the prefix: samples first, then events.
    pub fn records(&self, batch: &Batch) -> Vec<Record> {
        let samples = batch.samples.iter().filter_map(|sample| {
            let tag = self.topology.tag(sample.tag)?;
            if !self.in_scope.get(tag.asset).copied().unwrap_or(false) {
                return None;
            }
            record("sample", &SamplePayload::new(&self.topology, sample)?)
        });
        let events = batch
            .events
            .iter()
            // An event on an ancestor (e.g. a work order set on the line) changes the context
            // of everything under the prefix too.
            .filter(|e| {
                self.prefix
                    .as_ref()
                    .is_none_or(|p| e.asset.starts_with(p) || p.starts_with(&e.asset))
            })
            .filter_map(|e| record("event", &EventPayload::new(e)));
        samples.chain(events).collect()
    }
}

fn record(kind: &'static str, payload: &impl Serialize) -> Option<Record> {
    match serde_json::to_string(payload) {
        Ok(json) => Some(Record { kind, json }),
        Err(e) => {
            tracing::warn!(error = %e, "stream record could not be serialized; skipped");
            None
        }
    }
}

fn lagged_record(engine: &EngineHandle, missed: u64) -> Record {
    engine.note_stream_lag(missed);
    tracing::debug!(missed, "live-stream subscriber lagged");
    let json = serde_json::to_string(&Lagged {
        kind: "lagged",
        missed_batches: missed,
    })
    .unwrap_or_else(|_| format!("{{\"kind\":\"lagged\",\"missed_batches\":{missed}}}"));
    Record { kind: "lagged", json }
}

/// A subscription: what the engine broadcasts, filtered, until shutdown.
struct Subscription {
    engine: EngineHandle,
    rx: broadcast::Receiver<Arc<Batch>>,
    filter: Filter,
    shutdown: CancellationToken,
}

impl Subscription {
    fn new(
        state: &AppState,
        prefix: Option<AssetPath>,
        shutdown: Option<Extension<StreamShutdown>>,
    ) -> Subscription {
        Subscription {
            engine: state.engine.clone(),
            rx: state.engine.subscribe(),
            filter: Filter::new(state.engine.topology().clone(), prefix),
            // Without `serve` (e.g. a router embedded elsewhere) streams end only when the
            // client leaves.
            shutdown: shutdown.map_or_else(CancellationToken::new, |Extension(s)| s.0),
        }
    }

    /// The next non-empty group of records; `None` at shutdown.
    async fn next(&mut self) -> Option<Vec<Record>> {
        loop {
            let received = tokio::select! {
                () = self.shutdown.cancelled() => return None,
                // A reload stopped this engine: end, the client reconnects to the next one.
                () = self.engine.stopped() => return None,
                received = self.rx.recv() => received,
            };
            match received {
                Ok(batch) => {
                    let records = self.filter.records(&batch);
                    if !records.is_empty() {
                        return Some(records);
                    }
                }
                Err(RecvError::Lagged(missed)) => return Some(vec![lagged_record(&self.engine, missed)]),
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

fn subscription(
    state: &AppState,
    query: Result<Query<PrefixQuery>, QueryRejection>,
    shutdown: Option<Extension<StreamShutdown>>,
) -> Result<Subscription, ApiError> {
    let prefix = prefix_param(query)?;
    let prefix = resolve_prefix(state.engine.topology(), prefix.as_deref())?;
    Ok(Subscription::new(state, prefix, shutdown))
}

/// `GET /api/v1/stream/sse?prefix=`: `event: sample|event|lagged`, `data: <json>`.
pub(crate) async fn sse(
    State(state): State<AppState>,
    query: Result<Query<PrefixQuery>, QueryRejection>,
    shutdown: Option<Extension<StreamShutdown>>,
) -> Result<Response, ApiError> {
    let subscription = subscription(&state, query, shutdown)?;
    let stream = futures::stream::unfold(
        subscription,
        |mut s| async move { s.next().await.map(|r| (r, s)) },
    )
    .flat_map(futures::stream::iter)
    .map(|r| Ok::<_, Infallible>(SseEvent::default().event(r.kind).data(r.json)));
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(SSE_KEEP_ALIVE))
        .into_response())
}

/// `GET /api/v1/stream/ws?prefix=`: one text message per record.
pub(crate) async fn websocket(
    State(state): State<AppState>,
    query: Result<Query<PrefixQuery>, QueryRejection>,
    shutdown: Option<Extension<StreamShutdown>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // The prefix first: a wrong one is a 400 whether or not the handshake is right.
    let subscription = subscription(&state, query, shutdown)?;
    // Any request that is not a WebSocket handshake is a 426 naming the protocol (RFC 9110
    // 15.5.22), whatever part of the handshake is missing.
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(r) => {
            let mut response = ApiError::new(
                StatusCode::UPGRADE_REQUIRED,
                "websocket_required",
                format!("{}; use a WebSocket client", r.body_text()),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            return Ok(response);
        }
    };
    Ok(upgrade.on_upgrade(move |socket| run_websocket(socket, subscription)))
}

async fn run_websocket(mut socket: WebSocket, mut subscription: Subscription) {
    loop {
        tokio::select! {
            records = subscription.next() => {
                let Some(records) = records else {
                    // Shutdown: say goodbye properly so clients reconnect rather than report an error.
                    let frame = CloseFrame { code: close_code::AWAY, reason: "server shutting down".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    return;
                };
                for r in records {
                    if socket.send(Message::Text(r.json.into())).await.is_err() {
                        return;
                    }
                }
            }
            incoming = socket.recv() => match incoming {
                // Reading keeps ping/pong and the close handshake going; clients send nothing else.
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use backplane_engine::{Engine, EngineOptions};

    use super::*;

    const CONFIG: &str = r#"
[namespace]
enterprise = "acme"
site = "plant-a"

[models.Gauge.attributes]
level = { type = "float" }

[[assets]]
path = "tank"
model = "Gauge"
source = "plc"
bindings.level = { address = "l" }

[[sources]]
name = "plc"
kind = "simulator"
period = "10ms"
[sources.signals]
"l" = { signal = "ramp", from = 0, to = 100, period = "1s" }
"#;

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_how_much_it_missed_and_the_stream_goes_on() {
        let registry = backplane_engine::builtins();
        let mut plan =
            backplane_config::load_str(CONFIG, Path::new("test.toml"), &registry.catalog()).unwrap();
        // The engine saves its production state there at shutdown.
        let data = tempfile::tempdir().unwrap();
        plan.gateway.data_dir = data.path().to_path_buf();
        let engine = Engine::start(
            plan,
            &registry,
            EngineOptions {
                stream_queue: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let state = AppState {
            engine: engine.handle(),
            auth: Arc::new(crate::auth::Auth::new(
                None,
                crate::users::Users::default(),
                crate::SessionSettings::default(),
                crate::RateLimit::default(),
                None,
            )),
            max_body_bytes: 1024,
            histories: Arc::from([]),
            production: None,
            heavy: Arc::new(tokio::sync::Semaphore::new(1)),
            ui: Arc::new(backplane_ui::Ui::Embedded),
            discovering: Arc::new(tokio::sync::Semaphore::new(1)),
            reload: None,
        };
        let mut subscription = Subscription::new(&state, None, None);
        // Not reading while the source ticks: the one-batch queue overflows.
        while subscription.rx.len() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let first = subscription.next().await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].kind, "lagged");
        let record: serde_json::Value = serde_json::from_str(&first[0].json).unwrap();
        assert_eq!(record["kind"], "lagged");
        let missed = record["missed_batches"].as_u64().unwrap();
        assert!(missed >= 1);
        let counted = state
            .engine
            .metrics_text()
            .lines()
            .find(|l| l.starts_with("backplane_stream_lagged_total"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
        assert_eq!(counted, Some(missed));
        // The stream continues with samples.
        let next = subscription.next().await.unwrap();
        assert_eq!(next[0].kind, "sample");
        engine.shutdown().await;
    }

    #[tokio::test]
    async fn records_keep_only_assets_under_the_prefix_on_segment_boundaries() {
        let config = CONFIG.replace("path = \"tank\"", "path = \"tank-10\"");
        let registry = backplane_engine::builtins();
        let mut plan =
            backplane_config::load_str(&config, Path::new("test.toml"), &registry.catalog()).unwrap();
        let data = tempfile::tempdir().unwrap();
        plan.gateway.data_dir = data.path().to_path_buf();
        let engine = Engine::start(plan, &registry, EngineOptions::default()).unwrap();
        let handle = engine.handle();
        let mut rx = handle.subscribe();
        let batch = rx.recv().await.unwrap();
        let topology = handle.topology().clone();
        let prefix = |p: &str| Some(AssetPath::parse(p).unwrap());
        assert_eq!(
            Filter::new(topology.clone(), prefix("acme/plant-a/tank-10"))
                .records(&batch)
                .len(),
            1
        );
        assert_eq!(
            Filter::new(topology.clone(), prefix("acme/plant-a"))
                .records(&batch)
                .len(),
            1
        );
        assert!(
            Filter::new(topology.clone(), prefix("acme/plant-a/tank-1"))
                .records(&batch)
                .is_empty()
        );
        engine.shutdown().await;
    }
}
