//! What the sink publishes for one delivery, without I/O: subject, headers (message id,
//! gateway, seq) and JSON payload of every message, in order. Subjects are computed once
//! per tag, sample payloads by the shared [`SampleEncoder`]; a delivery's payloads share one
//! buffer.

use std::ops::Range;
use std::sync::Arc;

use async_nats::Subject;
use async_nats::header::{self, HeaderMap, HeaderName, HeaderValue};
use backplane_connector::payload::{EventPayload, SampleEncoder};
use backplane_connector::{Definitions, Delivery, Topology};
use bytes::{BufMut, Bytes, BytesMut};
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
    encoder: SampleEncoder,
    /// The payloads of the delivery being built, and each message's part of it.
    buf: BytesMut,
    ranges: Vec<Range<usize>>,
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
            .map(|t| Subject::from(subjects::sample_subject(prefix, &topology.path(t).to_string())))
            .collect();
        let batch_subjects = topology
            .assets
            .iter()
            .map(|a| Subject::from(subjects::batch_subject(prefix, a.path.as_str())))
            .collect();
        let assets = topology.assets.len();
        Messages {
            prefix: prefix.to_owned(),
            id_prefix: format!("{gateway}.{sink}."),
            gateway: HeaderValue::from(gateway),
            form,
            events,
            sample_subjects,
            batch_subjects,
            encoder: SampleEncoder::new(topology.clone()),
            buf: BytesMut::with_capacity(64 * 1024),
            ranges: Vec::new(),
            by_asset: vec![Vec::new(); assets],
            topology,
            touched: Vec::new(),
        }
    }

    fn headers(&self, seq: Option<(u64, u64)>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(GATEWAY_HEADER, self.gateway.clone());
        if let Some((first, last)) = seq {
            let mut numbers = itoa::Buffer::new();
            let mut seq = String::with_capacity(41);
            seq.push_str(numbers.format(first));
            if first != last {
                seq.push('-');
                seq.push_str(numbers.format(last));
            }
            let mut id = String::with_capacity(self.id_prefix.len() + seq.len());
            id.push_str(&self.id_prefix);
            id.push_str(&seq);
            headers.insert(header::NATS_MESSAGE_ID, id);
            headers.insert(SEQ_HEADER, seq);
        }
        headers
    }

    /// Every message of `delivery`, in order (samples, then events), into `out`. The
    /// payloads share one buffer per delivery.
    pub fn build(&mut self, delivery: &Delivery, out: &mut Vec<Outgoing>) {
        let topology = self.topology.clone();
        let batch = &delivery.batch;
        let first = out.len();
        // Where each message's payload lies in `buf`, in the order of `out[first..]`.
        self.ranges.clear();
        match self.form {
            PayloadForm::Sample => {
                for (i, sample) in batch.samples.iter().enumerate() {
                    let Some(subject) = self.sample_subjects.get(sample.tag.index()) else {
                        continue;
                    };
                    let seq = delivery.sample_seq(i);
                    let start = self.buf.len();
                    if !self.encoder.write(sample, seq, delivery.replay, &mut self.buf) {
                        continue;
                    }
                    self.ranges.push(start..self.buf.len());
                    out.push(Outgoing {
                        subject: subject.clone(),
                        headers: self.headers(seq.map(|s| (s, s))),
                        payload: Bytes::new(),
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
                    let mut list = std::mem::take(&mut self.by_asset[asset]);
                    let start = self.buf.len();
                    self.buf.put_u8(b'[');
                    let mut first_seq = None;
                    let mut last_seq = None;
                    for &i in &list {
                        let seq = delivery.sample_seq(i);
                        let before = self.buf.len();
                        if before > start + 1 {
                            self.buf.put_u8(b',');
                        }
                        if !self
                            .encoder
                            .write(&batch.samples[i], seq, delivery.replay, &mut self.buf)
                        {
                            self.buf.truncate(before);
                            continue;
                        }
                        first_seq = first_seq.or(seq);
                        last_seq = seq.or(last_seq);
                    }
                    self.buf.put_u8(b']');
                    list.clear();
                    self.by_asset[asset] = list;
                    let Some(subject) = self.batch_subjects.get(asset) else {
                        self.buf.truncate(start);
                        continue;
                    };
                    self.ranges.push(start..self.buf.len());
                    out.push(Outgoing {
                        subject: subject.clone(),
                        headers: self.headers(first_seq.zip(last_seq)),
                        payload: Bytes::new(),
                    });
                }
                self.touched = touched;
                self.touched.clear();
            }
        }
        if self.events {
            for (j, event) in batch.events.iter().enumerate() {
                let seq = delivery.event_seq(j);
                let start = self.buf.len();
                if serde_json::to_writer(
                    (&mut self.buf).writer(),
                    &EventPayload::new(event).with_seq(seq, delivery.replay),
                )
                .is_err()
                {
                    self.buf.truncate(start);
                    continue;
                }
                let name = serde_json::from_slice::<EventName<'_>>(&self.buf[start..])
                    .map(|n| n.event.to_owned())
                    .unwrap_or_else(|_| "event".to_owned());
                self.ranges.push(start..self.buf.len());
                out.push(Outgoing {
                    subject: Subject::from(subjects::event_subject(
                        &self.prefix,
                        event.asset.as_str(),
                        &name,
                    )),
                    headers: self.headers(seq.map(|s| (s, s))),
                    payload: Bytes::new(),
                });
            }
        }
        // The delivery's payloads share one allocation, each message a slice of it; once
        // they are all written out, the next deliveries reuse it.
        let payloads = self.buf.split().freeze();
        for (message, range) in out[first..].iter_mut().zip(self.ranges.drain(..)) {
            message.payload = payloads.slice(range);
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
