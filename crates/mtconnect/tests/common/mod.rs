//! Test support: a scripted agent that replays recorded documents (tests/fixtures) over
//! HTTP in the order a test gives, and a harness that runs a source and collects what it
//! emits and counts.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use backplane_connector::batch::PipelineInput;
use backplane_connector::{ComponentError, ComponentStatus, Report, Source, SourceIo};
use backplane_model::{Event, Quality, Value};
use backplane_mtconnect::MtConnectSettings;
use backplane_mtconnect::source::MtConnectSource;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A recorded document.
pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `doc` with the Header's attribute `name` set to `value`.
pub fn header_attr(doc: &str, name: &str, value: &str) -> String {
    let start = doc.find("<Header").unwrap();
    let end = start + doc[start..].find("/>").unwrap();
    let header = &doc[start..end];
    let key = format!(" {name}=\"");
    let new_header = match header.find(&key) {
        Some(i) => {
            let from = i + key.len();
            let to = from + header[from..].find('"').unwrap();
            format!("{}{value}{}", &header[..from], &header[to..])
        }
        None => format!("{header} {name}=\"{value}\""),
    };
    format!("{}{new_header}{}", &doc[..start], &doc[end..])
}

/// A streams document of `instance` with no observations and `next` as nextSequence.
pub fn empty_sample(instance: u64, first: u64, next: u64) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<MTConnectStreams xmlns="urn:mtconnect.org:MTConnectStreams:1.3"><Header creationTime="2026-11-30T08:12:43Z" sender="agent-host" instanceId="{instance}" version="1.3.0.18" bufferSize="131072" firstSequence="{first}" lastSequence="{}" nextSequence="{next}"/><Streams><DeviceStream name="VMC-3Axis" uuid="vmc-3axis-0001"/></Streams></MTConnectStreams>"#,
        next - 1
    )
}

#[derive(Debug, Default)]
struct Script {
    /// Answers per request (`probe`, `current`, `sample`), in order; the last one stays.
    answers: HashMap<String, VecDeque<(u16, Vec<u8>)>>,
    requests: Vec<String>,
    /// Each request's `Accept` header.
    accepts: Vec<String>,
}

/// An HTTP agent answering from a script.
#[derive(Debug)]
pub struct ScriptedAgent {
    pub url: String,
    script: Arc<Mutex<Script>>,
    task: JoinHandle<()>,
}

async fn answer(State(script): State<Arc<Mutex<Script>>>, uri: Uri, headers: header::HeaderMap) -> Response {
    let mut script = script.lock().unwrap();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    script.accepts.push(accept);
    let request = uri.path().rsplit('/').next().unwrap_or_default().to_owned();
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    script.requests.push(format!("{request}{query}"));
    let Some(queue) = script.answers.get_mut(&request) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let next = if queue.len() > 1 {
        queue.pop_front()
    } else {
        queue.front().cloned()
    };
    match next {
        Some((status, body)) => (
            StatusCode::from_u16(status).unwrap(),
            [(header::CONTENT_TYPE, "text/xml")],
            body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

impl ScriptedAgent {
    pub async fn start() -> ScriptedAgent {
        let script = Arc::new(Mutex::new(Script::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(answer).with_state(script.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ScriptedAgent { url, script, task }
    }

    /// Queues an answer to `request` (`probe`, `current` or `sample`).
    pub fn then(&self, request: &str, status: u16, body: impl Into<Vec<u8>>) -> &ScriptedAgent {
        self.script
            .lock()
            .unwrap()
            .answers
            .entry(request.to_owned())
            .or_default()
            .push_back((status, body.into()));
        self
    }

    /// Forgets the queued answers (and the requests received), for a new script: the
    /// same agent URL seen from a gateway that restarted.
    pub fn reset(&self) {
        let mut script = self.script.lock().unwrap();
        script.answers.clear();
        script.requests.clear();
    }

    /// The requests received, e.g. `sample?from=101&count=1000`.
    pub fn requests(&self) -> Vec<String> {
        self.script.lock().unwrap().requests.clone()
    }

    /// The `Accept` header of each request received.
    pub fn accepts(&self) -> Vec<String> {
        self.script.lock().unwrap().accepts.clone()
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for ScriptedAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counters and health a source reported.
#[derive(Debug, Default)]
pub struct Recorded {
    counters: Mutex<HashMap<String, Counter>>,
    degraded: Mutex<Vec<String>>,
}

impl Report for Recorded {
    fn set_degraded(&self, reason: Option<String>) {
        if let Some(r) = reason {
            self.degraded.lock().unwrap().push(r);
        }
    }
    fn counter(&self, event: &str) -> Counter {
        self.counters
            .lock()
            .unwrap()
            .entry(event.to_owned())
            .or_default()
            .clone()
    }
    fn delay(&self, _what: &str) -> Histogram {
        backplane_connector::delay_histogram()
    }
}

/// One reading as the tests compare it.
#[derive(Clone, Debug, PartialEq)]
pub struct Got {
    pub address: u32,
    pub value: Option<Value>,
    pub quality: Quality,
}

/// A source running against an agent.
#[derive(Debug)]
pub struct Running {
    rx: mpsc::Receiver<PipelineInput>,
    cancel: CancellationToken,
    pub task: JoinHandle<Result<(), ComponentError>>,
    recorded: Arc<Recorded>,
    pub readings: Vec<Got>,
    pub events: Vec<Event>,
    _writes: mpsc::Sender<backplane_connector::WriteRequest>,
}

/// Polling settings for `url` with a short interval.
pub fn settings(url: &str) -> MtConnectSettings {
    let mut s = MtConnectSettings::defaults(url);
    s.streaming = false;
    s.interval = Duration::from_millis(20);
    s.timeout = Duration::from_secs(2);
    s
}

pub fn addresses(list: &[&str]) -> Vec<Arc<str>> {
    list.iter().map(|a| Arc::from(*a)).collect()
}

pub fn run(source: MtConnectSource) -> Running {
    let (tx, rx) = mpsc::channel(1024);
    let (write_tx, write_rx) = mpsc::channel(4);
    let cancel = CancellationToken::new();
    let recorded = Arc::new(Recorded::default());
    let io = SourceIo::new(
        0,
        tx,
        cancel.clone(),
        write_rx,
        ComponentStatus::new(recorded.clone()),
    );
    let task = tokio::spawn(Box::new(source).run(io));
    Running {
        rx,
        cancel,
        task,
        recorded,
        readings: Vec::new(),
        events: Vec::new(),
        _writes: write_tx,
    }
}

impl Running {
    /// Collects until `done` holds for what was collected, at most `limit`.
    pub async fn until(&mut self, limit: Duration, done: impl Fn(&Running) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        while !done(self) {
            let input = tokio::time::timeout_at(deadline, self.rx.recv()).await;
            match input {
                Ok(Some(PipelineInput::Readings(batch))) => {
                    self.readings.extend(batch.readings.into_iter().map(|r| Got {
                        address: r.address,
                        value: r.value,
                        quality: r.quality,
                    }))
                }
                Ok(Some(PipelineInput::Events(events))) => self.events.extend(events),
                Ok(Some(_)) => {}
                Ok(None) => panic!("the source stopped: {:?}", self.task),
                Err(_) => panic!(
                    "timed out; readings {:?}\nevents {:?}\ncounters {:?}",
                    self.readings,
                    self.events,
                    self.counters()
                ),
            }
        }
    }

    /// Collects while waiting for `done` (which may look outside the source), at most `limit`.
    pub async fn wait(&mut self, limit: Duration, done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        while !done() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out; counters {:?}",
                self.counters()
            );
            self.drain(Duration::from_millis(20)).await;
        }
    }

    /// Collects whatever comes within `time`.
    pub async fn drain(&mut self, time: Duration) {
        let deadline = tokio::time::Instant::now() + time;
        while let Ok(Some(input)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            match input {
                PipelineInput::Readings(batch) => {
                    self.readings.extend(batch.readings.into_iter().map(|r| Got {
                        address: r.address,
                        value: r.value,
                        quality: r.quality,
                    }))
                }
                PipelineInput::Events(events) => self.events.extend(events),
                _ => {}
            }
        }
    }

    /// The values read from `address`, in order.
    pub fn values(&self, address: u32) -> Vec<Option<Value>> {
        self.readings
            .iter()
            .filter(|r| r.address == address)
            .map(|r| r.value.clone())
            .collect()
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.recorded.counter(name).get()
    }

    pub fn counters(&self) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self
            .recorded
            .counters
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.get()))
            .collect();
        all.sort();
        all
    }

    pub fn degraded(&self) -> Vec<String> {
        self.recorded.degraded.lock().unwrap().clone()
    }

    pub async fn stop(self) -> Result<(), ComponentError> {
        self.cancel.cancel();
        self.task.await.unwrap()
    }
}

pub fn text(s: &str) -> Option<Value> {
    Some(Value::String(s.into()))
}
