//! What the sink publishes for one delivery, without I/O: subject, headers (message id,
//! gateway, seq) and JSON payload of every message, in order. Subjects are computed once
//! per tag; the serialization buffer is reused.

use std::sync::Arc;

use async_nats::Subject;
use async_nats::header::{self, HeaderMap, HeaderName, HeaderValue};
use backplane_connector::payload::{EventPayload, SamplePayload};
use backplane_connector::{Definitions, Delivery, Topology};
use bytes::Bytes;
use serde::Deserialize;

use crate::sink_config::PayloadForm;
use crate::subjects;

pub const GATEWAY_HEADER: HeaderName = HeaderName::from_static("Backplane-Gateway");
pub const SEQ_HEADER: HeaderName = HeaderName::from_static("Backplane-Seq");

/// One message to publish.
#[derive(Debug)]
pub struct Outgoing {
    pub subject: Subject,
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// Builds the messages of deliveries for one sink.
#[derive(Debug)]
pub struct Messages {
    topology: Arc<Topology>,
    prefix: String,
    /// `<gateway>.<sink>.`: the message id is this and the seq.
    id_prefix: String,
    gateway: HeaderValue,
    form: PayloadForm,
    events: bool,
    /// By tag index.
    sample_subjects: Vec<Subject>,
    /// By asset index (`payload = "batch"`).
    batch_subjects: Vec<Subject>,
    buf: Vec<u8>,
    /// Batch form: samples of the delivery by asset, reused.
    by_asset: Vec<Vec<usize>>,
    touched: Vec<usize>,
}

#[derive(Deserialize)]
struct EventName<'a> {
    #[serde(borrow)]
    event: &'a str,
}

impl Messages {
    pub fn new(
        topology: Arc<Topology>,
        prefix: &str,
        gateway: &str,
        sink: &str,
        form: PayloadForm,
        events: bool,
    ) -> Messages {
        let sample_subjects = topology
            .tags
            .iter()
            .map(|t| Subject::from(subjects::sample_subject(prefix, &t.path)))
            .collect();
        let batch_subjects = topology
            .assets
            .iter()
            .map(|a| Subject::from(subjects::batch_subject(prefix, a.path.as_str())))
            .collect();
        let assets = topology.assets.len();
        Messages {
            topology,
            prefix: prefix.to_owned(),
            id_prefix: format!("{gateway}.{sink}."),
            gateway: HeaderValue::from(gateway),
            form,
            events,
            sample_subjects,
            batch_subjects,
            buf: Vec::with_capacity(1024),
            by_asset: vec![Vec::new(); assets],
            touched: Vec::new(),
        }
    }

    fn headers(&self, seq: Option<(u64, u64)>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(GATEWAY_HEADER, self.gateway.clone());
        if let Some((first, last)) = seq {
            let seq = if first == last {
                first.to_string()
            } else {
                format!("{first}-{last}")
            };
            headers.insert(header::NATS_MESSAGE_ID, format!("{}{seq}", self.id_prefix));
            headers.insert(SEQ_HEADER, seq);
        }
        headers
    }

    /// Every message of `delivery`, in order (samples, then events), into `out`.
    pub fn build(&mut self, delivery: &Delivery, out: &mut Vec<Outgoing>) {
        let topology = self.topology.clone();
        let batch = &delivery.batch;
        match self.form {
            PayloadForm::Sample => {
                for (i, sample) in batch.samples.iter().enumerate() {
                    let Some(payload) = SamplePayload::new(&topology, sample) else {
                        continue;
                    };
                    let seq = delivery.sample_seq(i);
                    self.buf.clear();
                    if serde_json::to_writer(&mut self.buf, &payload.with_seq(seq, delivery.replay)).is_err()
                    {
                        continue;
                    }
                    let Some(subject) = self.sample_subjects.get(sample.tag.index()).cloned() else {
                        continue;
                    };
                    out.push(Outgoing {
                        subject,
                        headers: self.headers(seq.map(|s| (s, s))),
                        payload: Bytes::copy_from_slice(&self.buf),
                    });
                }
            }
            PayloadForm::Batch => {
                for (i, sample) in batch.samples.iter().enumerate() {
                    if let Some(tag) = topology.tag(sample.tag)
                        && let Some(list) = self.by_asset.get_mut(tag.asset)
                    {
                        if list.is_empty() {
                            self.touched.push(tag.asset);
                        }
                        list.push(i);
                    }
                }
                let touched = std::mem::take(&mut self.touched);
                for &asset in &touched {
                    let list = std::mem::take(&mut self.by_asset[asset]);
                    self.buf.clear();
                    self.buf.push(b'[');
                    let mut first_seq = None;
                    let mut last_seq = None;
                    for (n, &i) in list.iter().enumerate() {
                        let Some(payload) = SamplePayload::new(&topology, &batch.samples[i]) else {
                            continue;
                        };
                        let seq = delivery.sample_seq(i);
                        first_seq = first_seq.or(seq);
                        last_seq = seq.or(last_seq);
                        if n > 0 {
                            self.buf.push(b',');
                        }
                        let _ = serde_json::to_writer(&mut self.buf, &payload.with_seq(seq, delivery.replay));
                    }
                    self.buf.push(b']');
                    let mut list = list;
                    list.clear();
                    self.by_asset[asset] = list;
                    let Some(subject) = self.batch_subjects.get(asset).cloned() else {
                        continue;
                    };
                    out.push(Outgoing {
                        subject,
                        headers: self.headers(first_seq.zip(last_seq)),
                        payload: Bytes::copy_from_slice(&self.buf),
                    });
                }
                self.touched = touched;
                self.touched.clear();
            }
        }
        if self.events {
            for (j, event) in batch.events.iter().enumerate() {
                let seq = delivery.event_seq(j);
                self.buf.clear();
                if serde_json::to_writer(
                    &mut self.buf,
                    &EventPayload::new(event).with_seq(seq, delivery.replay),
                )
                .is_err()
                {
                    continue;
                }
                let name = serde_json::from_slice::<EventName<'_>>(&self.buf)
                    .map(|n| n.event.to_owned())
                    .unwrap_or_else(|_| "event".to_owned());
                out.push(Outgoing {
                    subject: Subject::from(subjects::event_subject(
                        &self.prefix,
                        event.asset.as_str(),
                        &name,
                    )),
                    headers: self.headers(seq.map(|s| (s, s))),
                    payload: Bytes::copy_from_slice(&self.buf),
                });
            }
        }
    }

    /// This gateway's definitions message (message id `<gateway>.definitions.<version>`).
    pub fn definitions(&self, gateway: &str) -> Option<Outgoing> {
        let defs = Definitions::of(&self.topology, gateway);
        let payload = serde_json::to_vec(&defs).ok()?;
        let mut headers = HeaderMap::new();
        headers.insert(GATEWAY_HEADER, self.gateway.clone());
        headers.insert(
            header::NATS_MESSAGE_ID,
            format!("{gateway}.definitions.{}", defs.config_version),
        );
        Some(Outgoing {
            subject: Subject::from(subjects::definitions_subject(
                &self.prefix,
                &defs.enterprise,
                &defs.site,
            )),
            headers,
            payload: Bytes::from(payload),
        })
    }
}
