//! Shared support for the NATS tests: the shared JetStream server, reading a stream back,
//! a private nats-server the test can kill, and the sink harness.

#![allow(dead_code)]

pub mod cluster;
pub mod harness;
pub mod server;

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

pub const SHARED: &str = "nats://127.0.0.1:4222";

pub use backplane_testkit::names::unique;

/// A stream name and a subject prefix no other run uses.
pub fn names(what: &str) -> (String, String) {
    let id = unique(what).replace('-', "_");
    (id.to_uppercase(), id.to_lowercase())
}

pub async fn js(url: &str) -> jetstream::Context {
    let client = async_nats::connect(url).await.expect("connect to nats");
    jetstream::new(client)
}

/// One message as stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub seq: u64,
    pub subject: String,
    pub msg_id: Option<String>,
    pub gateway: Option<String>,
    pub json: serde_json::Value,
}

/// Every message of `stream` (up to `limit`), in stream order.
pub async fn read_all(js: &jetstream::Context, name: &str, limit: usize) -> Vec<Stored> {
    let stream = js.get_stream(name).await.expect("the stream exists");
    // A cluster that just lost a node may time out placing the consumer: try again.
    let mut tries = 0;
    let consumer = loop {
        let created = stream
            .create_consumer(consumer::pull::Config {
                ack_policy: consumer::AckPolicy::None,
                deliver_policy: consumer::DeliverPolicy::All,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await;
        match created {
            Ok(consumer) => break consumer,
            Err(e) if tries < 10 => {
                tries += 1;
                eprintln!("creating a consumer to read `{name}` back: {e}; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => panic!("an ephemeral consumer: {e}"),
        }
    };
    let mut info = stream.clone();
    let total = info.info().await.unwrap().state.messages as usize;
    let total = total.min(limit);
    let mut out = Vec::with_capacity(total);
    let mut messages = consumer.messages().await.unwrap();
    while out.len() < total {
        let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(10), messages.next()).await else {
            break;
        };
        let header = |n: &str| {
            m.headers
                .as_ref()
                .and_then(|h| h.get(n))
                .map(|v| v.as_str().to_owned())
        };
        out.push(Stored {
            seq: m.info().map(|i| i.stream_sequence).unwrap_or(0),
            subject: m.subject.to_string(),
            msg_id: header("Nats-Msg-Id"),
            gateway: header("Backplane-Gateway"),
            json: serde_json::from_slice(&m.payload).unwrap_or(serde_json::Value::Null),
        });
    }
    out
}

/// Deletes the stream when dropped (tests must not leave streams behind).
pub struct StreamGuard {
    pub url: String,
    pub name: String,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let url = self.url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(client) = async_nats::connect(&url).await {
                    let _ = jetstream::new(client).delete_stream(&name).await;
                }
            });
        })
        .join();
    }
}

pub async fn stream_config(js: &jetstream::Context, name: &str) -> stream::Config {
    js.get_stream(name)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone()
}

/// `backplane_component_events_total{...name="<sink>",event="<event>"}` from metrics text.
pub fn counter(metrics: &str, name: &str, event: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("backplane_component_events_total")
                && l.contains(&format!("name=\"{name}\""))
                && l.contains(&format!("event=\"{event}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
