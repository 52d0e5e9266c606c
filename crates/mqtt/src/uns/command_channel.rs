//! The production command topic of a running `mqtt` sink: its messages go to one worker
//! task that runs them in arrival order on the engine's command path, and the worker's
//! replies wait here for the broker. [`crate::commands`] reads and answers the messages,
//! without I/O.
//!
//! Commands run as the sink's identity (role operator, method `connection`), never as the
//! message's `by`, and each one that was read is recorded in the audit trail when the
//! engine offers one.

use std::collections::VecDeque;

use std::sync::Arc;

use backplane_production::{CommandFailed, ProductionHandle};
use backplane_security::{AuditEvent, AuditTrail, Identity, Outcome};
use bytes::Bytes;
use serde_json::Value;

use crate::commands::{Reply, Request};

/// Commands read from the command topic and not yet run; more are refused as busy.
const COMMAND_QUEUE: usize = 256;

/// Replies waiting for the broker connection; more are dropped (and logged).
const REPLIES_MAX: usize = 1024;

/// The command topic of a running sink: the queue of the worker that runs the commands in
/// arrival order, and the replies it made, waiting to be published.
pub(super) struct CommandChannel {
    pub(super) topic: String,
    pub(super) reply_topic: String,
    queue: tokio::sync::mpsc::Sender<Bytes>,
    pub(super) replies: Option<tokio::sync::mpsc::UnboundedReceiver<Bytes>>,
    pub(super) waiting: VecDeque<Bytes>,
}

impl CommandChannel {
    /// Starts the worker, running commands as `identity` and recording them in `audit`.
    /// `accepted` and `refused` count its outcomes.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        sink: &str,
        topic: String,
        path: ProductionHandle,
        identity: Identity,
        audit: Option<Arc<AuditTrail>>,
        accepted: impl Fn() + Send + Sync + 'static,
        refused: impl Fn() + Send + Sync + 'static,
    ) -> CommandChannel {
        let (queue, commands) = tokio::sync::mpsc::channel(COMMAND_QUEUE);
        let (reply_tx, replies) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(run_commands(
            Worker {
                sink: sink.to_owned(),
                topic: topic.clone(),
                identity,
                audit,
            },
            path,
            commands,
            reply_tx,
            accepted,
            refused,
        ));
        CommandChannel {
            reply_topic: format!("{topic}/reply"),
            topic,
            queue,
            replies: Some(replies),
            waiting: VecDeque::new(),
        }
    }

    /// A message on the command topic: queued for the worker, or refused at once (a
    /// replayed retained message, a full queue). Empty messages (how MQTT clears a
    /// retained message) are ignored.
    pub(super) fn receive(&mut self, sink: &str, payload: Bytes, retain: bool, refused: &dyn Fn()) {
        if payload.is_empty() {
            return;
        }
        let why = if retain {
            "a retained message is never run as a command (it would run again at every reconnect): publish commands with retain off, and clear the retained message with an empty one"
                .to_owned()
        } else {
            match self.queue.try_send(payload.clone()) {
                Ok(()) => return,
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                    format!(
                        "{COMMAND_QUEUE} commands are waiting to run; the command was not run: send it again later"
                    )
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                    "the gateway is not running commands now; the command was not run".to_owned()
                }
            }
        };
        refused();
        let (request_id, command) = crate::commands::envelope_of(&payload);
        tracing::warn!(sink = %sink, request_id = ?request_id, command = ?command, error = %why, "mqtt: command refused");
        let reply = Reply::unavailable(request_id.as_deref(), command.as_deref(), why).to_bytes();
        self.reply(sink, reply.into());
    }

    pub(super) fn reply(&mut self, sink: &str, reply: Bytes) {
        if self.waiting.len() >= REPLIES_MAX {
            tracing::warn!(sink = %sink, "mqtt: {REPLIES_MAX} command replies are waiting for the broker; dropping one");
            return;
        }
        self.waiting.push_back(reply);
    }
}

/// Who the commands of one sink run as, and where they are recorded.
struct Worker {
    sink: String,
    topic: String,
    identity: Identity,
    audit: Option<Arc<AuditTrail>>,
}

impl Worker {
    /// Records one command in the audit trail, if there is one. A trail that cannot be
    /// written is logged: the command has already run or been refused.
    fn record(
        &self,
        command: Option<&str>,
        json: Option<&Value>,
        claimed_by: Option<&str>,
        outcome: Outcome,
    ) {
        let Some(audit) = &self.audit else { return };
        let mut new = json.cloned();
        if let (Some(Value::Object(object)), Some(claimed)) = (new.as_mut(), claimed_by) {
            object.insert("claimed_by".into(), Value::String(claimed.to_owned()));
        }
        let event = AuditEvent {
            who: Some(self.identity.clone()),
            from: format!("mqtt sink {}", self.sink),
            action: format!("command.{}", command.unwrap_or("unknown")),
            target: json.and_then(target_of).unwrap_or_else(|| self.topic.clone()),
            old: None,
            new,
            outcome,
        };
        if let Err(e) = audit.0.record(event) {
            tracing::error!(sink = %self.sink, error = %e, "mqtt: a command could not be recorded in the audit trail");
        }
    }
}

/// What a command is about, from its arguments: the work order or lot (`id`), the lot
/// produced, the downtime, the operator, the asset.
fn target_of(json: &Value) -> Option<String> {
    ["id", "produced", "downtime", "operator", "asset"]
        .into_iter()
        .find_map(|key| match json.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
}

/// Runs the commands of one sink's command topic, one after another in arrival order, and
/// sends back each reply.
async fn run_commands(
    worker: Worker,
    path: ProductionHandle,
    mut commands: tokio::sync::mpsc::Receiver<Bytes>,
    replies: tokio::sync::mpsc::UnboundedSender<Bytes>,
    accepted: impl Fn() + Send + Sync + 'static,
    refused: impl Fn() + Send + Sync + 'static,
) {
    let sink = &worker.sink;
    let by = worker.identity.name.as_str();
    while let Some(payload) = commands.recv().await {
        let reply = match crate::commands::parse(&payload) {
            Err(rejected) => {
                refused();
                tracing::warn!(sink = %sink, request_id = ?rejected.request_id, command = ?rejected.command, error = %rejected.refusal.message(), "mqtt: command refused");
                worker.record(
                    rejected.command.as_deref(),
                    None,
                    None,
                    Outcome::Refused(rejected.refusal.message()),
                );
                rejected.reply().attributed(by, None).to_bytes()
            }
            Ok(Request {
                request_id,
                claimed_by,
                command,
                json,
            }) => {
                let name = command.name();
                let claimed = claimed_by.as_deref();
                match path.execute(command, Some(by.to_owned())).await {
                    Ok(result) => {
                        accepted();
                        tracing::info!(sink = %sink, request_id = ?request_id, command = name, by = %by, claimed_by = ?claimed, "mqtt: command carried out");
                        worker.record(Some(name), Some(&json), claimed, Outcome::Done);
                        Reply::ok(request_id.as_deref(), name, &result)
                            .attributed(by, claimed)
                            .to_bytes()
                    }
                    Err(CommandFailed::Refused(refusal)) => {
                        refused();
                        tracing::warn!(sink = %sink, request_id = ?request_id, command = name, by = %by, claimed_by = ?claimed, error = %refusal.message(), "mqtt: command refused");
                        worker.record(
                            Some(name),
                            Some(&json),
                            claimed,
                            Outcome::Refused(refusal.message()),
                        );
                        Reply::refused(request_id.as_deref(), Some(name), &refusal)
                            .attributed(by, claimed)
                            .to_bytes()
                    }
                    Err(CommandFailed::Stopped) => {
                        refused();
                        tracing::warn!(sink = %sink, request_id = ?request_id, command = name, "mqtt: command not run: the engine is stopping");
                        let why = "the gateway is shutting down; the command was not run";
                        worker.record(Some(name), Some(&json), claimed, Outcome::Failed(why.to_owned()));
                        Reply::unavailable(request_id.as_deref(), Some(name), why.to_owned())
                            .attributed(by, claimed)
                            .to_bytes()
                    }
                }
            }
        };
        if replies.send(reply.into()).is_err() {
            return;
        }
    }
}
