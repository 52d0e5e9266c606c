//! [`Inbound`]: a route a source offers the API, so systems that cannot be polled can
//! push JSON documents to the gateway (`POST /api/v1/webhooks/{name}`).
//!
//! A kind opens one in [`Kind::prepare`](crate::Kind::prepare) under the source's name;
//! the API finds it in [`Services`](crate::Services) by that name, checks each posted
//! document against the route's [`InboundSchema`] (every bad field named, nothing
//! delivered when one is bad) and hands it to the running source through a bounded queue.
//! The queue outlives source instances (like the write queue): a source restarted by the
//! supervisor takes the next document from the same queue. A caller waits for the source
//! to take its document, at most [`Inbound::WAIT`]; a document whose caller gave up is
//! dropped, never delivered late.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Mutex, mpsc, oneshot};

/// One bad field of a posted document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InboundField {
    pub field: String,
    pub message: String,
}

/// Checks a posted document before it is delivered.
pub trait InboundSchema: Send + Sync + fmt::Debug + 'static {
    /// Every problem of `document` (a JSON object), each naming its field; empty when the
    /// document may be delivered.
    fn check(&self, document: &serde_json::Map<String, serde_json::Value>) -> Vec<InboundField>;
}

/// A document handed to the source, with where to answer.
#[derive(Debug)]
pub struct InboundPost {
    pub document: serde_json::Map<String, serde_json::Value>,
    /// Who posted it (the authenticated identity's name), for logs.
    pub by: String,
    /// The number of readings the source emitted from it, or why it could not take it.
    pub reply: oneshot::Sender<Result<usize, String>>,
}

/// Why a document was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// The body is not a JSON object; the message says where it failed.
    #[error("{0}")]
    NotJson(String),
    /// Fields that fail the route's schema, every one.
    #[error("{} field(s) fail the schema", .0.len())]
    Fields(Vec<InboundField>),
    /// The queue is full, or the source did not take the document within
    /// [`Inbound::WAIT`] (it is down or restarting).
    #[error("source `{0}` is not taking documents now; try again later")]
    Busy(String),
    /// The source refused the document (its own message).
    #[error("{0}")]
    Refused(String),
}

/// A source's inbound route.
pub struct Inbound {
    name: String,
    max_body_bytes: usize,
    schema: Arc<dyn InboundSchema>,
    tx: mpsc::Sender<InboundPost>,
    rx: Arc<Mutex<mpsc::Receiver<InboundPost>>>,
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbound")
            .field("name", &self.name)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl Inbound {
    /// Documents waiting for the source at most; more are refused as busy.
    pub const QUEUE: usize = 16;
    /// How long a caller waits for the source to take its document.
    pub const WAIT: Duration = Duration::from_secs(5);

    /// The route of source `name`: bodies up to `max_body_bytes`, checked by `schema`.
    pub fn new(name: &str, max_body_bytes: usize, schema: Arc<dyn InboundSchema>) -> Inbound {
        let (tx, rx) = mpsc::channel(Self::QUEUE);
        Inbound {
            name: name.to_owned(),
            max_body_bytes,
            schema,
            tx,
            rx: Arc::new(Mutex::new(rx)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The largest body this route takes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Parses and checks `body`, hands it to the source and waits for its answer: the
    /// number of readings emitted.
    pub async fn deliver(&self, body: &[u8], by: &str) -> Result<usize, InboundError> {
        let document = parse_object(body)?;
        let problems = self.schema.check(&document);
        if !problems.is_empty() {
            return Err(InboundError::Fields(problems));
        }
        let (reply, answer) = oneshot::channel();
        let post = InboundPost {
            document,
            by: by.to_owned(),
            reply,
        };
        let busy = || InboundError::Busy(self.name.clone());
        self.tx.try_send(post).map_err(|_| busy())?;
        match tokio::time::timeout(Self::WAIT, answer).await {
            Ok(Ok(Ok(readings))) => Ok(readings),
            Ok(Ok(Err(message))) => Err(InboundError::Refused(message)),
            // Timed out, or the source dropped the post without answering.
            Ok(Err(_)) | Err(_) => Err(busy()),
        }
    }

    /// For the source: the next document whose caller still waits. Pending while nobody
    /// posts; `None` never happens while the route exists (it holds a sender).
    pub async fn next(&self) -> Option<InboundPost> {
        let mut rx = self.rx.lock().await;
        loop {
            let post = rx.recv().await?;
            if post.reply.is_closed() {
                tracing::debug!(route = %self.name, "dropping a webhook document whose caller gave up");
                continue;
            }
            return Some(post);
        }
    }
}

/// The body as a JSON object, or where it is not one.
fn parse_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, InboundError> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(InboundError::NotJson("the body must be a JSON object".to_owned())),
        Err(e) => Err(InboundError::NotJson(format!("the body is not valid JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug)]
    struct NeedsA;

    impl InboundSchema for NeedsA {
        fn check(&self, document: &serde_json::Map<String, serde_json::Value>) -> Vec<InboundField> {
            if document.contains_key("a") {
                Vec::new()
            } else {
                vec![InboundField {
                    field: "a".into(),
                    message: "`a` is required".into(),
                }]
            }
        }
    }

    #[tokio::test]
    async fn a_document_reaches_the_source_and_the_caller_gets_its_answer() {
        let inbound = Arc::new(Inbound::new("lab", 1024, Arc::new(NeedsA)));
        let source = inbound.clone();
        tokio::spawn(async move {
            let post = source.next().await.unwrap();
            assert_eq!(post.by, "mes");
            post.reply.send(Ok(post.document.len())).unwrap();
        });
        assert_eq!(inbound.deliver(br#"{"a": 1, "b": 2}"#, "mes").await.unwrap(), 2);
    }

    #[tokio::test]
    async fn bad_bodies_and_fields_never_reach_the_source() {
        let inbound = Inbound::new("lab", 1024, Arc::new(NeedsA));
        assert!(matches!(
            inbound.deliver(b"[1]", "x").await,
            Err(InboundError::NotJson(_))
        ));
        assert!(matches!(
            inbound.deliver(b"{", "x").await,
            Err(InboundError::NotJson(_))
        ));
        match inbound.deliver(br#"{"b": 1}"#, "x").await {
            Err(InboundError::Fields(f)) => assert_eq!(f[0].field, "a"),
            other => panic!("{other:?}"),
        }
        assert!(inbound.rx.lock().await.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_document_whose_caller_gave_up_is_never_handed_to_the_source() {
        let inbound = Inbound::new("lab", 1024, Arc::new(NeedsA));
        let post = |n: i64| {
            let (reply, answer) = oneshot::channel();
            let mut document = serde_json::Map::new();
            document.insert("a".into(), n.into());
            (
                InboundPost {
                    document,
                    by: "x".into(),
                    reply,
                },
                answer,
            )
        };
        let (abandoned, answer) = post(1);
        drop(answer);
        let (live, _answer) = post(2);
        inbound.tx.try_send(abandoned).unwrap();
        inbound.tx.try_send(live).unwrap();
        assert_eq!(inbound.next().await.unwrap().document["a"], 2);
    }
}
