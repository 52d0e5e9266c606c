//! The production command topic of a running `mqtt` sink: its messages go to one worker
//! task that runs them in arrival order on the engine's command path, and the worker's
//! replies wait here for the broker. [`crate::commands`] reads and answers the messages,
//! without I/O.

use std::collections::VecDeque;

use backplane_production::{CommandFailed, ProductionHandle};
use bytes::Bytes;

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
    /// Starts the worker. `accepted` and `refused` count its outcomes.
    pub(super) fn start(
        sink: &str,
        topic: String,
        path: ProductionHandle,
        accepted: impl Fn() + Send + Sync + 'static,
        refused: impl Fn() + Send + Sync + 'static,
    ) -> CommandChannel {
        let (queue, commands) = tokio::sync::mpsc::channel(COMMAND_QUEUE);
        let (reply_tx, replies) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(run_commands(
            sink.to_owned(),
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

/// Runs the commands of one sink's command topic, one after another in arrival order, and
/// sends back each reply.
async fn run_commands(
    sink: String,
    path: ProductionHandle,
    mut commands: tokio::sync::mpsc::Receiver<Bytes>,
    replies: tokio::sync::mpsc::UnboundedSender<Bytes>,
    accepted: impl Fn() + Send + Sync + 'static,
    refused: impl Fn() + Send + Sync + 'static,
) {
    while let Some(payload) = commands.recv().await {
        let reply = match crate::commands::parse(&payload) {
            Err(rejected) => {
                refused();
                tracing::warn!(sink = %sink, request_id = ?rejected.request_id, command = ?rejected.command, error = %rejected.refusal.message(), "mqtt: command refused");
                rejected.reply().to_bytes()
            }
            Ok(Request {
                request_id,
                by,
                command,
            }) => {
                let name = command.name();
                match path.execute(command, Some(by.clone())).await {
                    Ok(result) => {
                        accepted();
                        tracing::info!(sink = %sink, request_id = ?request_id, command = name, by = %by, "mqtt: command carried out");
                        Reply::ok(request_id.as_deref(), name, &result).to_bytes()
                    }
                    Err(CommandFailed::Refused(refusal)) => {
                        refused();
                        tracing::warn!(sink = %sink, request_id = ?request_id, command = name, by = %by, error = %refusal.message(), "mqtt: command refused");
                        Reply::refused(request_id.as_deref(), Some(name), &refusal).to_bytes()
                    }
                    Err(CommandFailed::Stopped) => {
                        refused();
                        tracing::warn!(sink = %sink, request_id = ?request_id, command = name, "mqtt: command not run: the engine is stopping");
                        Reply::unavailable(
                            request_id.as_deref(),
                            Some(name),
                            "the gateway is shutting down; the command was not run".to_owned(),
                        )
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
