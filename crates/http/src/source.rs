//! The running `http` source: a poll loop over [`Poller`], or a loop taking documents
//! posted to its webhook route ([`Inbound`]). Both turn documents into readings with
//! [`extract`]; bad documents and bad fields are counted, named in health and logged at
//! most once a minute per kind of problem.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backplane_connector::{ComponentError, Inbound, InboundPost, Source, SourceIo};
use backplane_model::{BadReason, Timestamp};
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::config::{HttpSettings, Mode};
use crate::poll::{Answer, DocumentError, Poller};
use crate::select::{Extracted, Missing, Selector, all_bad, extract};

/// How often the same kind of problem is logged in full.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// One `http` source instance.
#[derive(Debug)]
pub struct HttpSource {
    pub name: String,
    pub settings: Arc<HttpSettings>,
    pub selectors: Vec<Selector>,
    /// The route, in webhook mode.
    pub inbound: Option<Arc<Inbound>>,
}

impl Source for HttpSource {
    fn run(self: Box<Self>, io: SourceIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        async move {
            let mut run = Running {
                name: self.name,
                selectors: self.selectors,
                settings: self.settings.clone(),
                logs: LogLimiter::default(),
                io,
            };
            match (&self.settings.mode, self.inbound) {
                (Mode::Poll(poll), _) => {
                    let poller = Poller::new(poll, self.settings.max_body_bytes)
                        .map_err(|e| ComponentError::config(format!("http source `{}`: {e}", run.name)))?;
                    run.poll(poller, poll.period).await
                }
                (Mode::Webhook(_), Some(inbound)) => run.webhook(&inbound).await,
                (Mode::Webhook(_), None) => Err(ComponentError::config(format!(
                    "http source `{}`: its webhook route was not opened (a registry bug)",
                    run.name
                ))),
            }
        }
        .boxed()
    }
}

struct Running {
    name: String,
    selectors: Vec<Selector>,
    settings: Arc<HttpSettings>,
    logs: LogLimiter,
    io: SourceIo,
}

impl Running {
    async fn poll(&mut self, mut poller: Poller, period: Duration) -> Result<(), ComponentError> {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let not_modified = self.io.status.counter("not_modified");
        loop {
            tokio::select! {
                () = self.io.cancelled() => return Ok(()),
                write = self.io.next_write() => {
                    if !self.refuse_write(write) {
                        return Ok(());
                    }
                    continue;
                }
                _ = ticker.tick() => {}
            }
            let answer = tokio::select! {
                () = self.io.cancelled() => return Ok(()),
                answer = poller.poll() => answer,
            };
            let open = match answer
                .map_err(|e| ComponentError::connect(format!("http source `{}`: {e}", self.name)))?
            {
                Answer::NotModified => {
                    not_modified.inc();
                    true
                }
                Answer::Document(document) => {
                    let extracted = self.extract(&document, Missing::Bad);
                    self.deliver(extracted).await.is_some()
                }
                Answer::Bad(error) => self.bad_document(&error).await,
            };
            if !open {
                return Ok(());
            }
        }
    }

    async fn webhook(&mut self, inbound: &Inbound) -> Result<(), ComponentError> {
        loop {
            tokio::select! {
                () = self.io.cancelled() => return Ok(()),
                write = self.io.next_write() => {
                    if !self.refuse_write(write) {
                        return Ok(());
                    }
                }
                post = inbound.next() => {
                    let Some(InboundPost { document, by, reply }) = post else { return Ok(()) };
                    let extracted = self.extract(&serde_json::Value::Object(document), Missing::Skip);
                    tracing::debug!(source = %self.name, %by, "webhook document");
                    match self.deliver(extracted).await {
                        Some(count) => {
                            let _ = reply.send(Ok(count));
                        }
                        None => {
                            let _ = reply.send(Err("the gateway is shutting down".to_owned()));
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    fn extract(&self, document: &serde_json::Value, missing: Missing) -> Extracted {
        extract(
            &self.selectors,
            self.settings.timestamp_path.as_ref(),
            self.settings.timestamp_unit,
            missing,
            document,
        )
    }

    /// Emits a document's readings, reporting its problems; the number emitted, `None`
    /// once the engine stops.
    async fn deliver(&mut self, extracted: Extracted) -> Option<usize> {
        let status = &self.io.status;
        status.counter("documents").inc();
        if let Some(time) = &extracted.invalid_time {
            status.counter("source_time_invalid").inc();
            if self.logs.allow("time") {
                tracing::warn!(source = %self.name, time = %time, "the document's time cannot be read; the gateway's time stands in");
            }
        }
        if extracted.problems.is_empty() {
            status.set_degraded(None);
        } else {
            status
                .counter("field_errors")
                .inc_by(extracted.problems.len() as u64);
            let message = extracted.problems.join("; ");
            if self.logs.allow("fields") {
                tracing::warn!(source = %self.name, problems = %message, "fields of the document are bad; the rest is delivered");
            }
            status.set_degraded(Some(message));
        }
        let count = extracted.readings.len();
        if count > 0 && !self.io.emit(Timestamp::now(), extracted.readings).await {
            return None;
        }
        Some(count)
    }

    /// A document that could not be read: every value bad (`out_of_range` when too large,
    /// `type_mismatch` when not JSON, `device_failure` for an HTTP error), the error counted,
    /// named in health and logged. Returns `false` once the engine stops.
    async fn bad_document(&mut self, error: &DocumentError) -> bool {
        let status = &self.io.status;
        status.counter(error.event()).inc();
        let message = format!("{}: {error}", self.settings_url());
        if self.logs.allow(error.event()) {
            tracing::warn!(source = %self.name, error = %message, "bad document; the source keeps polling");
        }
        status.set_degraded(Some(message));
        let reason = match error {
            DocumentError::TooLarge { .. } => BadReason::OutOfRange,
            DocumentError::Malformed { .. } => BadReason::TypeMismatch,
            DocumentError::Status { .. } => BadReason::DeviceFailure,
        };
        let readings = all_bad(self.selectors.len(), reason);
        readings.is_empty() || self.io.emit(Timestamp::now(), readings).await
    }

    fn settings_url(&self) -> String {
        match &self.settings.mode {
            Mode::Poll(p) => p.url.to_string(),
            Mode::Webhook(_) => format!("webhook `{}`", self.name),
        }
    }

    /// Answers a write with a refusal; `false` once the engine stops (no more writes).
    fn refuse_write(&self, write: Option<backplane_connector::WriteRequest>) -> bool {
        let Some(request) = write else { return false };
        let _ = request.reply.send(Err(ComponentError::config(format!(
            "http source `{}` is read-only",
            self.name
        ))));
        true
    }
}

/// Logs the same kind of problem in full at most every [`LOG_EVERY`]; it is always counted.
#[derive(Debug, Default)]
struct LogLimiter {
    last: HashMap<&'static str, Instant>,
}

impl LogLimiter {
    fn allow(&mut self, what: &'static str) -> bool {
        let now = Instant::now();
        match self.last.get(what) {
            Some(at) if now.duration_since(*at) < LOG_EVERY => false,
            _ => {
                self.last.insert(what, now);
                true
            }
        }
    }
}
