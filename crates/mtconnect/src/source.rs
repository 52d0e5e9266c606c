//! The `mtconnect` source: `probe` once (and again after an agent restart), `current`
//! to start (or re-sync), then `sample` from the cursor, streamed where the agent offers
//! it, polled every `interval` where not.
//!
//! Failure rules (docs/connectors/mtconnect.md, "Errors"):
//! - the agent cannot be reached, or the connection breaks mid-stream: `run` ends with an
//!   error; the supervisor turns the source's values bad and builds a new instance after
//!   a backoff, which resumes at the cursor kept by the kind (no gap while the agent
//!   still holds it);
//! - an answer that cannot be read (malformed XML, larger than `max_body`, an HTML error
//!   page) or an `MTConnectError` document: counted, logged at most once per 10 s per
//!   kind of problem, health shows the source degraded, and the source goes on (see
//!   [`crate::sequence`] for what happens to the cursor); it never stops for bad input.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backplane_connector::{ComponentError, Source, SourceIo};
use backplane_model::sample::Alarm;
use backplane_model::{AssetPath, Context, Event, EventKind, Timestamp};
use futures::FutureExt;
use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;
use tokio::time::Instant;

use crate::client::{Answer, Client, FetchError, Opened};
use crate::config::MtConnectSettings;
use crate::document::{self, Devices, Document};
use crate::observe::Decoder;
use crate::sequence::{Cursor, Request, Tracker};
use crate::throttle::Throttle;

/// A source's cursor, kept by the kind across the instances the supervisor builds.
pub type SharedCursor = Arc<Mutex<Option<Cursor>>>;

/// Where a condition's alarms go: the assets its address feeds, with their context.
pub type AlarmTargets = Vec<Vec<(AssetPath, Arc<Context>)>>;

/// A running `mtconnect` source.
#[derive(Debug)]
pub struct MtConnectSource {
    pub(crate) name: String,
    pub(crate) settings: Arc<MtConnectSettings>,
    pub(crate) addresses: Vec<Arc<str>>,
    /// Kept by the kind across instances of this source.
    pub(crate) cursor: SharedCursor,
    /// The cursor file (`<data_dir>/mtconnect/<source>.cursor`): where a gateway restart
    /// resumes. `None`: the cursor lives in memory only.
    pub(crate) state: Option<PathBuf>,
    pub(crate) alarm_targets: AlarmTargets,
}

/// The source's counters (`backplane_component_events_total{event=...}`).
#[derive(Debug)]
struct Counters {
    documents: Counter,
    observations: Counter,
    gap: Counter,
    doubles: Counter,
    malformed: Counter,
    too_large: Counter,
    agent_errors: Counter,
    out_of_range: Counter,
    restarts: Counter,
    rejected: Counter,
    skipped: Counter,
    not_saved: Counter,
}

impl Counters {
    fn new(io: &SourceIo) -> Counters {
        let c = |name: &str| io.status.counter(name);
        Counters {
            documents: c("documents"),
            observations: c("observations"),
            gap: c("sequence_gap"),
            doubles: c("observations_doubled"),
            malformed: c("errors_malformed"),
            too_large: c("errors_too_large"),
            agent_errors: c("agent_errors"),
            out_of_range: c("out_of_range"),
            restarts: c("agent_restarts"),
            rejected: c("observations_rejected"),
            skipped: c("sequences_skipped"),
            not_saved: c("cursor_not_saved"),
        }
    }
}

/// What the loop does after an answer.
enum Step {
    /// Ask again at once (the tracker says what).
    Next,
    /// Wait `interval` before asking again.
    Wait,
}

struct Session<'a> {
    source: &'a MtConnectSource,
    io: &'a SourceIo,
    client: Client,
    tracker: Tracker,
    decoder: Decoder,
    counters: Counters,
    throttle: Throttle,
    /// Whether the agent streams (`false` once it answered a stream request with one document).
    streaming: bool,
    /// The cursor last written to the cursor file.
    saved: Option<Cursor>,
}

impl MtConnectSource {
    /// A source `name` reading `addresses`, starting without a cursor and sending alarm
    /// events nowhere (the kind builds it with its assets): for tests and tools.
    pub fn new(name: &str, settings: MtConnectSettings, addresses: Vec<Arc<str>>) -> MtConnectSource {
        MtConnectSource {
            name: name.to_owned(),
            settings: Arc::new(settings),
            alarm_targets: vec![Vec::new(); addresses.len()],
            addresses,
            cursor: Arc::default(),
            state: None,
        }
    }

    /// Keeps the cursor in `path` too, so a new process resumes there (what the kind
    /// does with `<data_dir>/mtconnect/<source>.cursor`).
    pub fn persist_to(mut self, path: PathBuf) -> MtConnectSource {
        self.state = Some(path);
        self
    }

    /// Sends every alarm of address `address` to `asset`.
    pub fn alarms_to(mut self, address: usize, asset: AssetPath) -> MtConnectSource {
        if let Some(t) = self.alarm_targets.get_mut(address) {
            t.push((asset, Arc::new(Context::default())));
        }
        self
    }

    /// The cursor shared with later instances.
    pub fn cursor(&self) -> SharedCursor {
        self.cursor.clone()
    }

    /// Resumes at `cursor` (what the kind does for a rebuilt instance).
    pub fn with_cursor(mut self, cursor: SharedCursor) -> MtConnectSource {
        self.cursor = cursor;
        self
    }

    fn fail_connect(&self, what: String) -> ComponentError {
        ComponentError::connect(format!("mtconnect source `{}`: {what}", self.name))
    }

    /// Reads the device model.
    async fn probe(&self, client: &Client) -> Result<Devices, ComponentError> {
        let url = self.settings.endpoint("probe");
        let answer = client
            .get(&url, &[])
            .await
            .map_err(|e| self.fail_connect(e.to_string()))?;
        match document::parse(&answer.body) {
            Ok(Document::Devices(d)) => Ok(d),
            Ok(Document::Error(e)) => Err(self.fail_connect(format!("{url} answered {e}"))),
            Ok(_) => Err(ComponentError::protocol(format!(
                "{url}: not an MTConnectDevices document"
            ))),
            Err(e) => Err(ComponentError::protocol(format!(
                "{url} (HTTP {}): unreadable device model: {e}",
                answer.status
            ))),
        }
    }

    /// The cursor of the cursor file, when it belongs to this agent. A file that cannot be
    /// read is logged and left for the next save to replace: the source then starts with
    /// `current` (a gap it cannot count), rather than not at all.
    fn saved_cursor(&self) -> Option<Cursor> {
        let path = self.state.as_ref()?;
        let agent = self.settings.endpoint("sample");
        match crate::resume::load(path, &agent) {
            Ok(crate::resume::Loaded::Cursor(c)) => Some(c),
            Ok(crate::resume::Loaded::None) => None,
            Ok(crate::resume::Loaded::OtherAgent(other)) => {
                tracing::info!(source = %self.name, "the saved cursor is for {other}, not {agent}: starting with current");
                None
            }
            Err(e) => {
                tracing::warn!(source = %self.name, "cannot resume at the saved cursor: {e}; starting with current");
                None
            }
        }
    }

    async fn run_inner(self, io: SourceIo) -> Result<(), ComponentError> {
        let client = Client::new(&self.settings).map_err(ComponentError::config)?;
        let model = tokio::select! {
            () = io.cancelled() => return Ok(()),
            m = self.probe(&client) => m?,
        };
        let decoder = Decoder::resolve(&self.name, &self.addresses, &model);
        for (_, why) in &decoder.unknown {
            tracing::warn!(source = %self.name, "{why}; it stays bad");
        }
        let unknown = decoder.unknown_readings();
        if !unknown.is_empty() && !io.emit(Timestamp::now(), unknown).await {
            return Ok(());
        }
        let kept = self.cursor.lock().ok().and_then(|c| *c);
        let saved = match kept {
            Some(_) => None,
            None => self.saved_cursor(),
        };
        let resume = kept.or(saved);
        tracing::info!(
            source = %self.name,
            url = %self.settings.url,
            devices = model.devices.len(),
            resume = ?resume.map(|c| c.next),
            "connected to the MTConnect agent"
        );
        let mut session = Session {
            source: &self,
            io: &io,
            client,
            tracker: Tracker::new(resume, self.settings.count),
            decoder,
            counters: Counters::new(&io),
            throttle: Throttle::new(Duration::from_secs(10)),
            streaming: self.settings.streaming,
            saved,
        };
        tokio::select! {
            r = session.run() => r,
            () = refuse_writes(&io, &self.name) => Ok(()),
        }
    }
}

/// MTConnect has no writes: every write request is answered with a refusal at once.
async fn refuse_writes(io: &SourceIo, name: &str) {
    while let Some(write) = io.next_write().await {
        let _ = write.reply.send(Err(ComponentError::config(format!(
            "mtconnect source `{name}` is read-only: MTConnect agents take no writes"
        ))));
    }
}

impl Session<'_> {
    async fn run(&mut self) -> Result<(), ComponentError> {
        loop {
            let step = match self.tracker.next_request() {
                Request::Current => {
                    let url = self.source.settings.endpoint("current");
                    let answer = tokio::select! {
                        () = self.io.cancelled() => return Ok(()),
                        a = self.client.get(&url, &[]) => a,
                    };
                    self.answer("current", answer, true).await?
                }
                Request::Sample { from, count } if self.streaming => self.stream(from, count).await?,
                Request::Sample { from, count } => {
                    let url = self.source.settings.endpoint("sample");
                    let query = [("from", from.to_string()), ("count", count.to_string())];
                    let answer = tokio::select! {
                        () = self.io.cancelled() => return Ok(()),
                        a = self.client.get(&url, &query) => a,
                    };
                    match self.answer("sample", answer, false).await? {
                        // Polling: the agent had what it had; ask again after `interval`.
                        Step::Next if self.tracker.next_request() == (Request::Sample { from, count }) => {
                            Step::Wait
                        }
                        step => step,
                    }
                }
            };
            if let Some(cursor) = self.tracker.cursor()
                && let Ok(mut kept) = self.source.cursor.lock()
            {
                *kept = Some(cursor);
            }
            if self.io.is_cancelled() {
                return Ok(());
            }
            if let Step::Wait = step {
                tokio::select! {
                    () = self.io.cancelled() => return Ok(()),
                    () = tokio::time::sleep(self.source.settings.interval) => {}
                }
            }
        }
    }

    /// One streaming `sample`: parts until the stream ends or an answer needs a new request.
    async fn stream(&mut self, from: u64, count: u32) -> Result<Step, ComponentError> {
        let settings = &self.source.settings;
        let url = settings.endpoint("sample");
        let query = [
            ("from", from.to_string()),
            ("count", count.to_string()),
            ("interval", settings.interval.as_millis().to_string()),
            ("heartbeat", settings.heartbeat.as_millis().to_string()),
        ];
        let silence = settings.heartbeat * 2 + settings.timeout;
        let opened = tokio::select! {
            () = self.io.cancelled() => return Ok(Step::Next),
            o = self.client.stream(&url, &query, silence) => o,
        };
        let mut stream = match opened {
            Ok(Opened::Stream(s)) => s,
            Ok(Opened::Answer(answer)) => {
                // An agent that does not stream answers one document: poll from now on.
                let was_streams = matches!(document::parse(&answer.body), Ok(Document::Streams(_)));
                if was_streams {
                    tracing::info!(source = %self.source.name, "the agent does not stream; polling every {:?}", settings.interval);
                    self.streaming = false;
                }
                return self.answer("sample", Ok(answer), false).await;
            }
            Err(e) => return self.answer("sample", Err(e), false).await,
        };
        loop {
            let part = tokio::select! {
                () = self.io.cancelled() => return Ok(Step::Next),
                p = stream.next_part() => p,
            };
            let before = self.tracker.next_request();
            let step = match part {
                Ok(Some(body)) => {
                    self.answer("sample stream", Ok(Answer { status: 200, body }), false)
                        .await?
                }
                // The agent ended the stream (e.g. `count` reached): ask again.
                Ok(None) => return Ok(Step::Next),
                Err(e) => return self.answer("sample stream", Err(e), false).await,
            };
            // A part that moved the cursor somewhere a stream cannot follow (a re-sync,
            // a restart, a smaller count): open a new request.
            let after = self.tracker.next_request();
            let followed = matches!(
                (before, after),
                (Request::Sample { count: a, .. }, Request::Sample { count: b, .. }) if a == b
            );
            if !followed || matches!(step, Step::Wait) {
                return Ok(step);
            }
        }
    }

    /// Handles one answer (or why there is none). `Err` only when the source must restart.
    async fn answer(
        &mut self,
        request: &'static str,
        answer: Result<Answer, FetchError>,
        current: bool,
    ) -> Result<Step, ComponentError> {
        let name = &self.source.name;
        let answer = match answer {
            Ok(a) => a,
            Err(FetchError::Transport(e)) => {
                return Err(ComponentError::io(format!("mtconnect source `{name}`: {e}")));
            }
            Err(FetchError::TooLarge { limit }) => {
                self.counters.too_large.inc();
                let skipped = self.tracker.on_unreadable();
                self.problem(
                    "too_large",
                    format!("{request}: the answer is larger than max_body ({limit} bytes); asking for fewer observations"),
                    skipped,
                );
                return Ok(if current { Step::Wait } else { Step::Next });
            }
            Err(FetchError::NotADocument(e)) => {
                self.counters.malformed.inc();
                let skipped = self.tracker.on_unreadable();
                self.problem("malformed", format!("{request}: {e}"), skipped);
                return Ok(Step::Wait);
            }
        };
        let document = match document::parse(&answer.body) {
            Ok(d) => d,
            Err(e) => {
                self.counters.malformed.inc();
                let skipped = if current {
                    None
                } else {
                    self.tracker.on_unreadable()
                };
                let from = match self.tracker.next_request() {
                    Request::Sample { from, .. } if !current => format!(" (from={from})"),
                    _ => String::new(),
                };
                self.problem(
                    "malformed",
                    format!(
                        "{request}{from} answered HTTP {} with an unreadable document: {e}",
                        answer.status
                    ),
                    skipped,
                );
                return Ok(if current { Step::Wait } else { Step::Next });
            }
        };
        self.counters.documents.inc();
        match document {
            Document::Streams(streams) => {
                if !streams.rejected.is_empty() {
                    self.counters.rejected.inc_by(streams.rejected.len() as u64);
                    self.problem(
                        "rejected",
                        format!("{request}: left out {}", streams.rejected.join("; ")),
                        None,
                    );
                }
                let accepted = if current {
                    self.tracker.on_current(streams)
                } else {
                    self.tracker.on_sample(streams)
                };
                if accepted.restarted {
                    self.restarted().await?;
                }
                if accepted.gap > 0 {
                    self.counters.gap.inc_by(accepted.gap);
                    self.problem(
                        "gap",
                        format!("{} sequences were not delivered one by one (agent buffer overrun or restart); gap so far: {}", accepted.gap, self.tracker.gap_total()),
                        None,
                    );
                }
                self.counters.doubles.inc_by(accepted.doubles);
                self.counters
                    .observations
                    .inc_by(accepted.observations.len() as u64);
                self.io.status.set_degraded(None);
                if !self.deliver(&accepted.observations, current).await {
                    return Ok(Step::Next);
                }
                self.save_cursor().await;
                Ok(Step::Next)
            }
            Document::Error(errors) => {
                self.counters.agent_errors.inc();
                if errors.out_of_range() && !current {
                    self.counters.out_of_range.inc();
                    let from = match self.tracker.next_request() {
                        Request::Sample { from, .. } => from,
                        Request::Current => 0,
                    };
                    if self.tracker.on_out_of_range(&errors.header) {
                        self.restarted().await?;
                        return Ok(Step::Next);
                    }
                    self.problem(
                        "out_of_range",
                        format!("sample from={from}: the agent no longer holds it ({errors}); re-syncing with current"),
                        None,
                    );
                    return Ok(Step::Next);
                }
                self.problem(
                    "agent_error",
                    format!("{request}: the agent answered {errors}"),
                    None,
                );
                Ok(Step::Wait)
            }
            Document::Devices(_) => {
                self.counters.agent_errors.inc();
                self.problem(
                    "agent_error",
                    format!("{request}: the agent answered a device model"),
                    None,
                );
                Ok(Step::Wait)
            }
        }
    }

    /// Writes the cursor to the cursor file once what lies below it left the pipeline's
    /// queue (`settled`: in every sink's queue, and appended to the store-and-forward log
    /// where there is one), so a restart neither misses nor repeats it.
    async fn save_cursor(&mut self) {
        let Some(path) = &self.source.state else {
            return;
        };
        let cursor = self.tracker.cursor();
        if cursor == self.saved || cursor.is_none() {
            return;
        }
        if !self.io.settled().await {
            return;
        }
        let Some(cursor) = cursor else {
            return;
        };
        let agent = self.source.settings.endpoint("sample");
        let path = path.clone();
        let written = tokio::task::spawn_blocking(move || crate::resume::save(&path, &agent, cursor))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match written {
            Ok(()) => self.saved = Some(cursor),
            Err(e) => {
                self.counters.not_saved.inc();
                let path = self
                    .source
                    .state
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                self.problem(
                    "not_saved",
                    format!("cannot save the cursor to {path}: {e}; a gateway restart would read again from the last saved one"),
                    None,
                );
            }
        }
    }

    /// The agent restarted: read its device model again (it may have changed).
    async fn restarted(&mut self) -> Result<(), ComponentError> {
        self.counters.restarts.inc();
        tracing::warn!(source = %self.source.name, "the agent restarted (new instanceId); reading its device model again and replaying its buffer");
        let model = self.source.probe(&self.client).await?;
        self.decoder = Decoder::resolve(&self.source.name, &self.source.addresses, &model);
        Ok(())
    }

    /// Logs a problem (rate-limited) and shows the source degraded.
    fn problem(&mut self, what: &'static str, message: String, skipped: Option<u64>) {
        let message = match skipped {
            Some(seq) => {
                self.counters.skipped.inc();
                self.counters.gap.inc();
                format!("{message}; sequence {seq} fails alone and is skipped (counted as a gap)")
            }
            None => message,
        };
        self.io.status.set_degraded(Some(format!(
            "mtconnect source `{}`: {message}",
            self.source.name
        )));
        if let Some(suppressed) = self.throttle.admit(what, Instant::now()) {
            if suppressed > 0 {
                tracing::warn!(source = %self.source.name, suppressed, "{message}");
            } else {
                tracing::warn!(source = %self.source.name, "{message}");
            }
        }
    }

    /// Emits the readings and alarm events of new observations. `false` once the engine stops.
    async fn deliver(&mut self, observations: &[document::Observation], snapshot: bool) -> bool {
        if observations.is_empty() {
            return true;
        }
        let decoded = self.decoder.decode(observations, snapshot);
        let now = Timestamp::now();
        if !decoded.readings.is_empty() && !self.io.emit(now, decoded.readings).await {
            return false;
        }
        let events: Vec<Event> = decoded
            .alarms
            .into_iter()
            .flat_map(|(address, time, alarm)| self.events(address, time.unwrap_or(now), alarm))
            .collect();
        events.is_empty() || self.io.emit_events(events).await
    }

    fn events(&self, address: u32, time: Timestamp, alarm: Alarm) -> Vec<Event> {
        let targets = self
            .source
            .alarm_targets
            .get(address as usize)
            .map(Vec::as_slice)
            .unwrap_or_default();
        targets
            .iter()
            .map(|(asset, context)| Event {
                asset: asset.clone(),
                time,
                kind: EventKind::Alarm(alarm.clone()),
                context: context.clone(),
            })
            .collect()
    }
}

impl Source for MtConnectSource {
    fn run(self: Box<Self>, io: SourceIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        self.run_inner(io).boxed()
    }
}
