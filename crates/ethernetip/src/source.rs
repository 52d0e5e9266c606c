//! The `ethernetip` source: Logix tags read in Multiple Service Packets over one session,
//! writes with read-back, and the failure rules of docs/connectors/ethernetip.md.
//!
//! [`Poller`] does one poll cycle and returns readings; it knows nothing of the engine's
//! I/O, so the benchmark drives exactly the code the source runs.
//!
//! Failure rules:
//! - a tag the controller answers with an error status (no such tag, element out of
//!   range, ...) is bad on its own (`config_error` for path and size errors,
//!   `device_failure` otherwise); the other tags of its packet keep their values;
//! - a packet without an answer (after `retries`) turns its tags `timeout`; a cycle
//!   without any answer, a lost connection, or a reply that breaks the framing (wrong
//!   session, encapsulation error, a cut-off frame) ends `run` with an error: the engine
//!   turns every value of the source bad (`comm_failure`) and reconnects with backoff;
//! - a controller that refuses Multiple Service Packets gets one Read Tag per tag from
//!   then on; a packet whose reply outgrew the connection is read tag by tag at once and
//!   the packets are planned again with the sizes learnt.

use std::io;
use std::sync::Arc;

use backplane_connector::{
    ComponentError, RawReading, Source, SourceIo, WriteOutcome, WriteRequest, write_target,
};
use backplane_model::{BadReason, Quality, Timestamp, Value};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::address::TagPath;
use crate::cip::{self, Reply};
use crate::client::{CallError, Connection};
use crate::config::EnipSettings;
use crate::plan::{self, Footprint, Limits, Packet};
use crate::types::{self, CipType};

#[derive(Clone, Debug)]
struct Tag {
    text: Arc<str>,
    path: TagPath,
    epath: Vec<u8>,
    read: Vec<u8>,
    /// Learnt from the first good reply.
    ty: Option<CipType>,
    /// Expected reply bytes (estimated until known).
    reply: usize,
    last_error: Option<String>,
}

impl Tag {
    fn footprint(&self) -> Footprint {
        Footprint {
            request: self.read.len(),
            reply: self.reply,
        }
    }
}

/// One controller's poll plan and state.
#[derive(Debug)]
pub struct Poller {
    source: String,
    settings: Arc<EnipSettings>,
    tags: Vec<Tag>,
    packets: Vec<Packet>,
    limits: Option<Limits>,
    /// The controller refused a Multiple Service Packet: one read per packet.
    single: bool,
    /// Replies skipped as answers to earlier requests, over all sessions.
    pub stale_replies: u64,
}

/// The quality a CIP error status gives a tag.
pub fn status_quality(status: u8, extended: &[u16]) -> Quality {
    Quality::Bad(match status {
        cip::PATH_SEGMENT_ERROR
        | cip::PATH_UNKNOWN
        | cip::PARTIAL_TRANSFER
        | cip::SERVICE_NOT_SUPPORTED
        | cip::OBJECT_DOES_NOT_EXIST
        | 0x26 => BadReason::ConfigError,
        cip::GENERAL_ERROR if extended.iter().any(|e| matches!(e, 0x2104 | 0x2105 | 0x2107)) => {
            BadReason::ConfigError
        }
        cip::CONNECTION_FAILURE | 0x07 => BadReason::CommFailure,
        _ => BadReason::DeviceFailure,
    })
}

/// How one tag's reply turned out.
enum Outcome {
    Value(Value, CipType, usize),
    Bad(Quality, String),
}

fn outcome(tag: &Tag, bytes: &[u8]) -> Outcome {
    let reply = match cip::decode_reply(bytes) {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Bad(
                Quality::Bad(BadReason::DeviceFailure),
                format!("malformed reply: {e}"),
            );
        }
    };
    tag_outcome(tag, &reply, bytes.len())
}

fn tag_outcome(tag: &Tag, reply: &Reply<'_>, len: usize) -> Outcome {
    if reply.service != cip::READ_TAG {
        return Outcome::Bad(
            Quality::Bad(BadReason::DeviceFailure),
            format!(
                "answer to service 0x{:02X} in place of Read Tag: {}",
                reply.service,
                reply.describe()
            ),
        );
    }
    if !reply.ok() {
        let mut text = reply.describe();
        if reply.status == cip::PARTIAL_TRANSFER {
            text.push_str("; read fewer elements per address");
        }
        return Outcome::Bad(status_quality(reply.status, &reply.extended), text);
    }
    match cip::read_tag_data(reply.data)
        .and_then(|(ty, data)| types::decode(ty, data, usize::from(tag.path.count)).map(|v| (v, ty)))
    {
        Ok((value, ty)) => Outcome::Value(value, ty, len),
        Err(e) => Outcome::Bad(Quality::Bad(BadReason::TypeMismatch), e.to_string()),
    }
}

impl Poller {
    /// Parses `addresses` (the source's addresses; a reading's `address` indexes them).
    pub fn new(source: &str, settings: Arc<EnipSettings>, addresses: &[Arc<str>]) -> Result<Poller, String> {
        let mut tags = Vec::with_capacity(addresses.len());
        for text in addresses {
            let path = TagPath::parse(text).map_err(|e| format!("address `{text}`: {}", e.message))?;
            let epath = path.epath();
            tags.push(Tag {
                read: cip::read_tag(&epath, path.count),
                reply: plan::reply_estimate(None, path.count),
                text: text.clone(),
                path,
                epath,
                ty: None,
                last_error: None,
            });
        }
        Ok(Poller {
            source: source.to_owned(),
            single: settings.max_services <= 1,
            settings,
            tags,
            packets: Vec::new(),
            limits: None,
            stale_replies: 0,
        })
    }

    /// The type tag `index` was last read as.
    pub fn type_of(&self, index: usize) -> Option<CipType> {
        self.tags.get(index).and_then(|t| t.ty)
    }

    /// Why tag `index` is bad, if it is.
    pub fn error_of(&self, index: usize) -> Option<&str> {
        self.tags.get(index).and_then(|t| t.last_error.as_deref())
    }

    pub fn settings(&self) -> &EnipSettings {
        &self.settings
    }

    /// The limits a session of `size` bytes (with `overhead` bytes of wrapping) gives.
    fn limits_for(&self, size: u16, overhead: usize) -> Limits {
        Limits {
            max_request: usize::from(size).saturating_sub(overhead),
            max_reply: usize::from(size),
            max_services: if self.single {
                1
            } else {
                self.settings.max_services
            },
        }
    }

    fn replan(&mut self, limits: Limits) {
        let footprints: Vec<Footprint> = self.tags.iter().map(Tag::footprint).collect();
        self.packets = plan::plan_packets(&footprints, limits);
        self.limits = Some(limits);
    }

    /// Packets the next cycle over `conn` sends.
    pub fn packets(&mut self, conn: &Connection) -> usize {
        let limits = self.limits_for(conn.size(), conn.request_overhead());
        if self.limits != Some(limits) {
            self.replan(limits);
        }
        self.packets.len()
    }

    /// The plan before connecting, at the configured connection size.
    pub fn planned(&self) -> usize {
        let limits = self.limits_for(self.settings.connection_size, 0);
        let footprints: Vec<Footprint> = self.tags.iter().map(Tag::footprint).collect();
        plan::plan_packets(&footprints, limits).len()
    }

    /// Opens a session.
    pub async fn connect(&self) -> Result<Connection, CallError> {
        let conn = Connection::open(&self.settings).await?;
        if let Some(why) = &conn.refused {
            tracing::warn!(source = %self.source, "{why}; reading with unconnected messages");
        }
        Ok(conn)
    }

    /// Runs one poll cycle over `conn`. `Err` means the session is lost (or nothing
    /// answered at all): reconnect.
    pub async fn poll(&mut self, conn: &mut Connection) -> io::Result<Vec<RawReading>> {
        self.packets(conn);
        let mut readings = Vec::with_capacity(self.tags.len());
        let mut answered = 0usize;
        let mut replan = false;
        let packets = self.packets.clone();
        for packet in &packets {
            let members = &packet.members;
            let message = match members.as_slice() {
                [one] => self.tags.get(*one).map(|t| t.read.clone()).unwrap_or_default(),
                many => cip::multiple(
                    &many
                        .iter()
                        .filter_map(|&m| self.tags.get(m).map(|t| t.read.as_slice()))
                        .collect::<Vec<_>>(),
                ),
            };
            let result = conn.call_with_retries(&message, self.settings.retries).await;
            let bytes = match result {
                Ok(bytes) => bytes,
                Err(e) if e.is_fatal() => {
                    self.stale_replies += conn.stale;
                    return Err(e.into_io());
                }
                Err(e) => {
                    let quality = match e {
                        CallError::Refused(_) => {
                            answered += 1;
                            Quality::Bad(BadReason::DeviceFailure)
                        }
                        _ => Quality::Bad(BadReason::Timeout),
                    };
                    let text = e.to_string();
                    for &m in members {
                        self.bad(m, quality, text.clone(), &mut readings);
                    }
                    continue;
                }
            };
            answered += 1;
            if let [one] = members.as_slice() {
                replan |= self.settle(*one, outcome_of(&self.tags, *one, &bytes), &mut readings);
                continue;
            }
            let parts = match cip::decode_reply(&bytes) {
                Ok(r) if r.ok() || r.status == cip::EMBEDDED_SERVICE_ERROR => {
                    match cip::split_multiple(r.data) {
                        Ok(parts) if parts.len() == members.len() => Ok(parts),
                        Ok(parts) => Err(format!(
                            "Multiple Service Packet reply holds {} replies for {} requests",
                            parts.len(),
                            members.len()
                        )),
                        Err(e) => Err(format!("malformed Multiple Service Packet reply: {e}")),
                    }
                }
                Ok(r)
                    if matches!(
                        r.status,
                        cip::SERVICE_NOT_SUPPORTED | cip::REPLY_TOO_LARGE | cip::PARTIAL_TRANSFER | 0x1B
                    ) =>
                {
                    // Read these one by one now, and plan again.
                    if r.status == cip::SERVICE_NOT_SUPPORTED {
                        tracing::warn!(source = %self.source, "the controller refuses Multiple Service Packets ({}); one read per tag from now on", r.describe());
                        self.single = true;
                    } else {
                        tracing::info!(source = %self.source, "a packet's reply outgrew the connection ({}); reading its {} tags one by one", r.describe(), members.len());
                    }
                    replan = true;
                    for &m in members {
                        let Some(read) = self.tags.get(m).map(|t| t.read.clone()) else {
                            continue;
                        };
                        match conn.call_with_retries(&read, self.settings.retries).await {
                            Ok(bytes) => {
                                self.settle(m, outcome_of(&self.tags, m, &bytes), &mut readings);
                            }
                            Err(e) if e.is_fatal() => return Err(e.into_io()),
                            Err(e) => {
                                let quality = match e {
                                    CallError::Refused(_) => Quality::Bad(BadReason::DeviceFailure),
                                    _ => Quality::Bad(BadReason::Timeout),
                                };
                                self.bad(m, quality, e.to_string(), &mut readings)
                            }
                        }
                    }
                    continue;
                }
                Ok(r) => Err(r.describe()),
                Err(e) => Err(format!("malformed reply: {e}")),
            };
            match parts {
                Ok(parts) => {
                    for (&m, part) in members.iter().zip(parts) {
                        replan |= self.settle(m, outcome_of(&self.tags, m, part), &mut readings);
                    }
                }
                Err(text) => {
                    for &m in members {
                        self.bad(
                            m,
                            Quality::Bad(BadReason::DeviceFailure),
                            text.clone(),
                            &mut readings,
                        );
                    }
                }
            }
        }
        self.stale_replies += std::mem::take(&mut conn.stale);
        if replan {
            let limits = self.limits_for(conn.size(), conn.request_overhead());
            self.replan(limits);
        }
        if !packets.is_empty() && answered == 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no answer to any of {} packets within {:?} (retries = {}); reconnecting",
                    packets.len(),
                    self.settings.timeout,
                    self.settings.retries
                ),
            ));
        }
        Ok(readings)
    }

    /// Records one tag's outcome; `true` when its reply outgrew the planned size.
    fn settle(&mut self, index: usize, outcome: Outcome, readings: &mut Vec<RawReading>) -> bool {
        match outcome {
            Outcome::Value(value, ty, len) => {
                let Some(tag) = self.tags.get_mut(index) else {
                    return false;
                };
                if let Some(last) = tag.last_error.take() {
                    tracing::info!(source = %self.source, tag = %tag.text, "answers again after: {last}");
                }
                let grew = len > tag.reply;
                tag.ty = Some(ty);
                tag.reply = len;
                readings.push(RawReading {
                    address: index as u32,
                    value: Some(value),
                    quality: Quality::Good,
                    source_time: None,
                });
                grew
            }
            Outcome::Bad(quality, text) => {
                self.bad(index, quality, text, readings);
                false
            }
        }
    }

    fn bad(&mut self, index: usize, quality: Quality, text: String, readings: &mut Vec<RawReading>) {
        if let Some(tag) = self.tags.get_mut(index) {
            if tag.last_error.as_ref() != Some(&text) {
                tracing::warn!(source = %self.source, tag = %tag.text, "{text}");
            }
            tag.last_error = Some(text);
        }
        readings.push(RawReading {
            address: index as u32,
            value: None,
            quality,
            source_time: None,
        });
    }

    /// Carries out one write request and returns the value read back. `Err` with an
    /// `io::Error` inside means the session is lost.
    pub async fn write(
        &mut self,
        conn: &mut Connection,
        address: u32,
        value: &Value,
    ) -> WriteOutcome<io::Error> {
        let refuse = |m: String| Err((m, None));
        let tag = match write_target(
            "ethernetip",
            &self.source,
            &self.tags,
            address,
            self.settings.writes,
        ) {
            Ok(tag) => tag.clone(),
            Err(m) => return refuse(m),
        };
        let retries = self.settings.retries;
        let lost = |what: &str, e: CallError| {
            let text = format!("{what} {}: {e}", tag.text);
            if e.is_fatal() {
                Err((text, Some(e.into_io())))
            } else {
                Err((text, None))
            }
        };
        // The type comes from a read: Write Tag must name it.
        let ty = match tag.ty {
            Some(ty) => ty,
            None => {
                let bytes = match conn.call_with_retries(&tag.read, retries).await {
                    Ok(b) => b,
                    Err(e) => return lost("reading the type of", e),
                };
                match outcome(&tag, &bytes) {
                    Outcome::Value(_, ty, _) => ty,
                    Outcome::Bad(_, text) => {
                        return refuse(format!("cannot read the type of {}: {text}", tag.text));
                    }
                }
            }
        };
        let data = match types::encode(ty, value, usize::from(tag.path.count)) {
            Ok(d) => d,
            Err(e) => return refuse(format!("cannot write {value} to {}: {e}", tag.text)),
        };
        let request = cip::write_tag(&tag.epath, ty, tag.path.count, &data);
        let bytes = match conn.call_with_retries(&request, retries).await {
            Ok(b) => b,
            Err(e) => return lost("write to", e),
        };
        match cip::decode_reply(&bytes) {
            Ok(r) if r.ok() && r.service == cip::WRITE_TAG => {}
            Ok(r) => return refuse(format!("{} refused the write: {}", tag.text, r.describe())),
            Err(e) => return refuse(format!("write to {}: malformed reply: {e}", tag.text)),
        }
        tracing::info!(source = %self.source, address = %tag.text, %value, "wrote to the controller");
        let bytes = match conn.call_with_retries(&tag.read, retries).await {
            Ok(b) => b,
            Err(e) if e.is_fatal() => return lost("read-back of", e),
            Err(e) => {
                tracing::warn!(source = %self.source, address = %tag.text, "read-back after write: {e}");
                return Ok((None, Vec::new()));
            }
        };
        let mut readings = Vec::new();
        let outcome = outcome(&tag, &bytes);
        let read_back = match &outcome {
            Outcome::Value(v, ..) => Some(v.clone()),
            Outcome::Bad(..) => None,
        };
        self.settle(address as usize, outcome, &mut readings);
        Ok((read_back, readings))
    }
}

fn outcome_of(tags: &[Tag], index: usize, bytes: &[u8]) -> Outcome {
    match tags.get(index) {
        Some(tag) => outcome(tag, bytes),
        None => Outcome::Bad(Quality::Bad(BadReason::Unspecified), "no such tag".into()),
    }
}

/// A running `ethernetip` source.
#[derive(Debug)]
pub struct EnipSource {
    pub(crate) poller: Poller,
}

impl EnipSource {
    async fn run_inner(mut self, io: SourceIo) -> Result<(), ComponentError> {
        let poller = &mut self.poller;
        let name = poller.source.clone();
        let endpoint = poller.settings.endpoint.to_string();
        let fail =
            |what: &str, e: io::Error| ComponentError::io_because(format!("{what} {endpoint}: {e}"), e);
        let mut conn = tokio::select! {
            () = io.cancelled() => return Ok(()),
            conn = poller.connect() => conn.map_err(|e| {
                let e = e.into_io();
                ComponentError::connect_because(format!("connect to {endpoint}: {e}"), e)
            })?,
        };
        let packets = poller.packets(&conn);
        tracing::info!(
            source = %name, %endpoint,
            "{} tags in {packets} packets per cycle ({:?}, {} bytes per packet)",
            poller.tags.len(), conn.mode(), conn.size()
        );
        let cycles = io.status.counter("poll_cycles");
        let requests = io.status.counter("poll_requests");
        let stale = io.status.counter("stale_replies");
        let period = poller.settings.period;
        let mut due = Instant::now();
        let result = loop {
            tokio::select! {
                biased;
                () = io.cancelled() => break Ok(()),
                Some(write) = io.next_write() => {
                    let WriteRequest { address, value, reply, .. } = write;
                    let outcome = poller.write(&mut conn, address, &value).await;
                    match io.finish_write(reply, outcome, |e| fail("writing to", e)).await {
                        Ok(true) => {}
                        Ok(false) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                }
                () = tokio::time::sleep_until(due) => {
                    let planned = poller.packets(&conn) as u64;
                    let before = poller.stale_replies;
                    let readings = tokio::select! {
                        () = io.cancelled() => break Ok(()),
                        r = poller.poll(&mut conn) => r,
                    };
                    stale.inc_by(poller.stale_replies - before);
                    let readings = match readings {
                        Ok(r) => r,
                        Err(e) => return Err(fail("polling", e)),
                    };
                    cycles.inc();
                    requests.inc_by(planned);
                    if !readings.is_empty() && !io.emit(Timestamp::now(), readings).await {
                        break Ok(());
                    }
                    // Skip missed ticks rather than bursting to catch up.
                    let now = Instant::now();
                    due += period;
                    while due <= now {
                        due += period;
                    }
                }
            }
        };
        conn.close().await;
        result
    }
}

impl Source for EnipSource {
    fn run(self: Box<Self>, io: SourceIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        self.run_inner(io).boxed()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn statuses_map_to_qualities() {
        assert_eq!(status_quality(0x05, &[]), Quality::Bad(BadReason::ConfigError));
        assert_eq!(
            status_quality(0xFF, &[0x2105]),
            Quality::Bad(BadReason::ConfigError)
        );
        assert_eq!(
            status_quality(0xFF, &[0x1234]),
            Quality::Bad(BadReason::DeviceFailure)
        );
        assert_eq!(status_quality(0x10, &[]), Quality::Bad(BadReason::DeviceFailure));
        assert_eq!(
            status_quality(0x01, &[0x0204]),
            Quality::Bad(BadReason::CommFailure)
        );
    }

    #[test]
    fn a_reply_of_another_service_or_type_is_bad_not_a_panic() {
        let tag = Tag {
            text: Arc::from("X"),
            path: TagPath::parse("X").unwrap(),
            epath: vec![],
            read: vec![],
            ty: None,
            reply: 10,
            last_error: None,
        };
        let wrong = cip::encode_reply(cip::WRITE_TAG, 0, &[], &[]);
        assert!(matches!(outcome(&tag, &wrong), Outcome::Bad(..)));
        let unknown_type = cip::encode_reply(cip::READ_TAG, 0, &[], &[0x99, 0x00, 1]);
        assert!(matches!(
            outcome(&tag, &unknown_type),
            Outcome::Bad(Quality::Bad(BadReason::TypeMismatch), _)
        ));
        let mut good = 0xCAu16.to_le_bytes().to_vec();
        good.extend_from_slice(&2.5f32.to_le_bytes());
        let good = cip::encode_reply(cip::READ_TAG, 0, &[], &good);
        assert!(matches!(
            outcome(&tag, &good),
            Outcome::Value(Value::Float(2.5), CipType::Real, 10)
        ));
    }
}
