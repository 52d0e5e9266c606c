//! The `s7` source: one connection to the CPU, the reads planned for the PDU it granted,
//! writes with read-back, and the failure rules of docs/connectors/s7.md.
//!
//! [`Poller`] does one poll cycle and returns readings; it knows nothing of the engine's
//! I/O, so the benchmark drives exactly the code the source runs. [`S7Source`] wraps it in
//! the engine's [`Source`] loop.
//!
//! Failure rules:
//! - an item the CPU refuses (no such DB, address out of range / optimized DB, access
//!   denied) turns only the tags of that item bad (`config_error`; a hardware fault is
//!   `device_failure`), logged by name with the fix when it starts and when it clears;
//! - a refusal of a whole request (e.g. PUT/GET disabled) turns its tags bad likewise;
//! - a request without an answer turns its tags `timeout`; a malformed answer
//!   `comm_failure`; a cycle in which no request was answered, a lost connection, or a
//!   stream out of step ends `run` with an error: the engine's supervisor turns every
//!   value of the source bad and reconnects with capped exponential backoff.

use std::io;
use std::sync::Arc;

use backplane_config::AddressError;
use backplane_connector::{ComponentError, RawReading, Source, SourceIo, WriteOutcome, write_target};
use backplane_model::{BadReason, Quality, Timestamp, Value};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::time::Instant;

use crate::address::{Area, Type};
use crate::client::{CallError, Connection};
use crate::codec;
use crate::config::S7Settings;
use crate::frame::{self, ItemAnswer, ItemSpec, Refusal};
use crate::plan::{self, Limits, Plan, PlannedTag, PollSummary};

#[derive(Clone, Debug)]
struct Tag {
    text: Arc<str>,
    planned: PlannedTag,
}

/// One device's tags, plan and state.
#[derive(Debug)]
pub struct Poller {
    source: String,
    settings: Arc<S7Settings>,
    tags: Vec<Tag>,
    plan: Plan,
    /// The last error of each request, to log changes only.
    last_errors: Vec<Option<String>>,
    pdu: u16,
}

/// The quality a refusal gives the tags it affects.
pub fn refusal_quality(refusal: Refusal) -> Quality {
    Quality::Bad(if refusal.is_configuration() {
        BadReason::ConfigError
    } else {
        BadReason::DeviceFailure
    })
}

/// The bytes of `tag` within an item's data starting at unit `item_start`.
fn slice<'a>(tag: &PlannedTag, item_start: u32, data: &'a [u8]) -> Option<&'a [u8]> {
    let unit = tag.span.area.unit_bytes() as usize;
    let from = (tag.span.start.checked_sub(item_start)? as usize) * unit;
    data.get(from..from + tag.address.ty.size() as usize)
}

/// The value of `tag` in an item's data, or why there is none.
fn decode(tag: &PlannedTag, item_start: u32, data: &[u8]) -> Result<Value, String> {
    let bytes = slice(tag, item_start, data).ok_or("the answer does not cover the address")?;
    codec::decode(tag.address.ty, bytes).map_err(|e| e.to_string())
}

impl Poller {
    /// Parses `addresses` (the source's addresses; a reading's `address` indexes them) and
    /// plans for the PDU size the settings ask for until a CPU grants one.
    pub fn new(
        source: &str,
        settings: Arc<S7Settings>,
        addresses: &[Arc<str>],
    ) -> Result<Poller, AddressError> {
        let planned = plan::resolve(addresses)?;
        let tags = planned
            .into_iter()
            .map(|p| Tag {
                text: addresses
                    .get(p.index as usize)
                    .cloned()
                    .unwrap_or_else(|| Arc::from("")),
                planned: p,
            })
            .collect();
        let mut poller = Poller {
            source: source.to_owned(),
            pdu: settings.pdu_size,
            settings,
            tags,
            plan: Plan::default(),
            last_errors: Vec::new(),
        };
        poller.replan(poller.pdu);
        Ok(poller)
    }

    /// Plans the reads for `pdu` (the size a CPU granted).
    pub fn replan(&mut self, pdu: u16) {
        self.pdu = pdu;
        let spans: Vec<plan::Span> = self.tags.iter().map(|t| t.planned.span).collect();
        self.plan = plan::plan_reads(&spans, self.limits());
        self.last_errors = vec![None; self.plan.requests.len()];
        for &i in &self.plan.oversized {
            if let Some(t) = self.tags.get(i) {
                tracing::warn!(
                    source = %self.source,
                    address = %t.text,
                    "needs {} bytes, more than one read carries at PDU size {pdu}; it stays bad",
                    t.planned.address.ty.size()
                );
            }
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            pdu: self.pdu,
            max_gap: self.settings.max_gap,
            max_items: frame::MAX_ITEMS,
        }
    }

    /// Read requests per poll cycle.
    pub fn requests(&self) -> usize {
        self.plan.requests.len()
    }

    /// The variables of each request, for tests and `backplane check`.
    pub fn request_items(&self) -> Vec<Vec<ItemSpec>> {
        self.plan
            .requests
            .iter()
            .map(|r| r.items.iter().map(|i| i.spec).collect())
            .collect()
    }

    pub fn summary(&self) -> PollSummary {
        PollSummary {
            source: self.source.clone(),
            tags: self.tags.len(),
            requests: self.plan.requests.len(),
            pdu: self.pdu,
            period: self.settings.period,
            oversized: self.plan.oversized.len(),
        }
    }

    /// Connects and replans for the PDU size the CPU granted.
    pub async fn connect(&mut self) -> io::Result<Connection> {
        let conn = Connection::open(&self.settings).await?;
        if conn.pdu() != self.pdu {
            self.replan(conn.pdu());
        }
        Ok(conn)
    }

    fn bad(&self, members: impl Iterator<Item = usize>, quality: Quality, out: &mut Vec<RawReading>) {
        for m in members {
            if let Some(t) = self.tags.get(m) {
                out.push(RawReading {
                    address: t.planned.index,
                    value: None,
                    quality,
                    source_time: None,
                });
            }
        }
    }

    /// Runs one poll cycle and returns its readings. `Err` means the connection is lost
    /// (or nothing answered at all): reconnect.
    pub async fn poll(&mut self, conn: &mut Connection) -> io::Result<Vec<RawReading>> {
        let mut readings = Vec::with_capacity(self.tags.len());
        let mut answered = 0usize;
        for r in 0..self.plan.requests.len() {
            let Some(request) = self.plan.requests.get(r) else {
                continue;
            };
            let specs: Vec<ItemSpec> = request.items.iter().map(|i| i.spec).collect();
            let reference = conn.take_ref();
            let result = conn.call(reference, frame::read_request(reference, &specs)).await;
            let mut errors: Vec<String> = Vec::new();
            let frame_bytes = match result {
                Err(CallError::Io(e)) => return Err(e),
                Err(CallError::Timeout(t)) => {
                    errors.push(format!("no answer within {t:?}"));
                    let members = request.items.iter().flat_map(|i| i.members.iter().copied());
                    self.bad(members, Quality::Bad(BadReason::Timeout), &mut readings);
                    None
                }
                Err(CallError::Frame(e)) => {
                    answered += 1;
                    errors.push(format!("malformed answer: {e}"));
                    let members = request.items.iter().flat_map(|i| i.members.iter().copied());
                    self.bad(members, Quality::Bad(BadReason::CommFailure), &mut readings);
                    None
                }
                Ok(bytes) => {
                    answered += 1;
                    Some(bytes)
                }
            };
            if let Some(bytes) = frame_bytes {
                let decoded = frame::parse_pdu(&bytes).and_then(|pdu| frame::read_answer(&pdu, &specs));
                match decoded {
                    Err(e) => {
                        errors.push(format!("malformed answer: {e}"));
                        let members = request.items.iter().flat_map(|i| i.members.iter().copied());
                        self.bad(members, Quality::Bad(BadReason::CommFailure), &mut readings);
                    }
                    Ok(Err(refusal)) => {
                        errors.push(refusal.to_string());
                        let members = request.items.iter().flat_map(|i| i.members.iter().copied());
                        self.bad(members, refusal_quality(refusal), &mut readings);
                    }
                    Ok(Ok(answers)) => {
                        for (item, answer) in request.items.iter().zip(answers) {
                            let data = match answer {
                                ItemAnswer::Data(d) => d,
                                ItemAnswer::Refused(code) => {
                                    let refusal = Refusal::Item(code);
                                    errors.push(format!("{}: {refusal}", describe(&item.spec)));
                                    self.bad(
                                        item.members.iter().copied(),
                                        refusal_quality(refusal),
                                        &mut readings,
                                    );
                                    continue;
                                }
                                ItemAnswer::WrongLength { got, want } => {
                                    errors.push(format!(
                                        "{}: {got} bytes answered, {want} asked for",
                                        describe(&item.spec)
                                    ));
                                    self.bad(
                                        item.members.iter().copied(),
                                        Quality::Bad(BadReason::CommFailure),
                                        &mut readings,
                                    );
                                    continue;
                                }
                            };
                            for &m in &item.members {
                                let Some(tag) = self.tags.get(m) else { continue };
                                let (value, quality) = match decode(&tag.planned, item.spec.start, data) {
                                    Ok(v) => (Some(v), Quality::Good),
                                    Err(why) => {
                                        errors.push(format!("{}: {why}", tag.text));
                                        (None, Quality::Bad(BadReason::Unspecified))
                                    }
                                };
                                readings.push(RawReading {
                                    address: tag.planned.index,
                                    value,
                                    quality,
                                    source_time: None,
                                });
                            }
                        }
                    }
                }
            }
            self.log_change(r, errors);
        }
        self.bad(
            self.plan.oversized.clone().into_iter(),
            Quality::Bad(BadReason::ConfigError),
            &mut readings,
        );
        if !self.plan.requests.is_empty() && answered == 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no answer to any of {} requests within {:?}; reconnecting",
                    self.plan.requests.len(),
                    self.settings.timeout
                ),
            ));
        }
        Ok(readings)
    }

    fn log_change(&mut self, request: usize, errors: Vec<String>) {
        let now = (!errors.is_empty()).then(|| errors.join("; "));
        let Some(last) = self.last_errors.get_mut(request) else {
            return;
        };
        match (&now, &*last) {
            (Some(e), l) if l.as_ref() != Some(e) => {
                tracing::warn!(source = %self.source, "read request {}: {e}", request + 1)
            }
            (None, Some(l)) => {
                tracing::info!(source = %self.source, "read request {} answers again after: {l}", request + 1)
            }
            _ => {}
        }
        *last = now;
    }

    /// Carries out one write and returns the value read back. `Err` with an `io::Error`
    /// inside means the connection is lost.
    pub async fn write(
        &mut self,
        conn: &mut Connection,
        address: u32,
        value: &Value,
    ) -> WriteOutcome<io::Error> {
        let refuse = |m: String| Err((m, None));
        let tag = match write_target("s7", &self.source, &self.tags, address, self.settings.writes) {
            Ok(tag) => tag.clone(),
            Err(m) => return refuse(m),
        };
        let a = tag.planned.address;
        if matches!(a.area, Area::Timer | Area::Counter) {
            return refuse(format!("{}: timers and counters are read-only here", tag.text));
        }
        let data = match codec::encode(a.ty, value) {
            Ok(d) => d,
            Err(e) => return refuse(format!("cannot write {value} to {}: {e}", tag.text)),
        };
        let read_spec = ItemSpec {
            area: a.area,
            start: a.start,
            count: a.ty.size() as u16,
            bit: None,
        };
        let write_spec = ItemSpec {
            bit: match a.ty {
                Type::Bool(bit) => Some(bit),
                _ => None,
            },
            ..read_spec
        };
        let reference = conn.take_ref();
        let answer = match conn
            .call(reference, frame::write_request(reference, &write_spec, &data))
            .await
        {
            Ok(a) => a,
            Err(CallError::Io(e)) => {
                return Err((format!("write to {}: connection lost: {e}", tag.text), Some(e)));
            }
            Err(e) => return refuse(format!("write to {}: {e}", tag.text)),
        };
        match frame::parse_pdu(&answer).and_then(|pdu| frame::write_answer(&pdu)) {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => return refuse(format!("{} refused the write: {refusal}", tag.text)),
            Err(e) => return refuse(format!("write to {}: malformed answer: {e}", tag.text)),
        }
        tracing::info!(source = %self.source, address = %tag.text, %value, "wrote to the CPU");
        let reference = conn.take_ref();
        let read = conn
            .call(reference, frame::read_request(reference, &[read_spec]))
            .await;
        let bytes = match read {
            Ok(b) => b,
            Err(CallError::Io(e)) => {
                return Err((
                    format!("read-back of {}: connection lost: {e}", tag.text),
                    Some(e),
                ));
            }
            Err(e) => {
                tracing::warn!(source = %self.source, address = %tag.text, "read-back after write: {e}");
                return Ok((None, Vec::new()));
            }
        };
        let value = match frame::parse_pdu(&bytes).and_then(|pdu| frame::read_answer(&pdu, &[read_spec])) {
            Ok(Ok(answers)) => match answers.first() {
                Some(ItemAnswer::Data(d)) => decode(&tag.planned, a.start, d).ok(),
                _ => None,
            },
            _ => None,
        };
        let reading = RawReading {
            address,
            value: value.clone(),
            quality: if value.is_some() {
                Quality::Good
            } else {
                Quality::Bad(BadReason::Unspecified)
            },
            source_time: None,
        };
        Ok((value, vec![reading]))
    }
}

/// "DB10 bytes 0..=13", "timers 3..=4".
fn describe(spec: &ItemSpec) -> String {
    let end = spec.start + u32::from(spec.count.max(1)) - 1;
    match spec.area {
        Area::Timer | Area::Counter => format!("{} {}..={end}", spec.area.name(), spec.start),
        area => format!("{} bytes {}..={end}", area.name(), spec.start),
    }
}

/// A running `s7` source.
#[derive(Debug)]
pub struct S7Source {
    pub(crate) poller: Poller,
}

impl S7Source {
    async fn run_inner(mut self, io: SourceIo) -> Result<(), ComponentError> {
        let poller = &mut self.poller;
        let endpoint = poller.settings.endpoint.to_string();
        let fail =
            |what: &str, e: io::Error| ComponentError::io_because(format!("{what} {endpoint}: {e}"), e);
        let mut conn = tokio::select! {
            () = io.cancelled() => return Ok(()),
            conn = poller.connect() => conn.map_err(|e| ComponentError::connect_because(format!("connect to {endpoint}: {e}"), e))?,
        };
        tracing::info!(source = %poller.source, %endpoint, "{}", poller.summary());
        // requests / cycles = requests per poll cycle, as `backplane check` plans it.
        let cycles = io.status.counter("poll_cycles");
        let requests = io.status.counter("poll_requests");
        let period = poller.settings.period;
        let mut due = Instant::now();
        loop {
            tokio::select! {
                biased;
                () = io.cancelled() => return Ok(()),
                Some(write) = io.next_write() => {
                    let outcome = poller.write(&mut conn, write.address, &write.value).await;
                    if !io.finish_write(write.reply, outcome, |e| fail("writing to", e)).await? {
                        return Ok(());
                    }
                }
                () = tokio::time::sleep_until(due) => {
                    let planned = poller.requests() as u64;
                    let readings = tokio::select! {
                        () = io.cancelled() => return Ok(()),
                        r = poller.poll(&mut conn) => r.map_err(|e| fail("polling", e))?,
                    };
                    cycles.inc();
                    requests.inc_by(planned);
                    if !readings.is_empty() && !io.emit(Timestamp::now(), readings).await {
                        return Ok(());
                    }
                    // Skip missed ticks rather than bursting to catch up.
                    let now = Instant::now();
                    due += period;
                    while due <= now {
                        due += period;
                    }
                }
            }
        }
    }
}

impl Source for S7Source {
    fn run(self: Box<Self>, io: SourceIo) -> BoxFuture<'static, Result<(), ComponentError>> {
        self.run_inner(io).boxed()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::address::Address;

    fn tag(text: &str) -> PlannedTag {
        let address = Address::parse(text).unwrap();
        PlannedTag {
            index: 0,
            span: plan::Span::from(&address),
            address,
        }
    }

    #[test]
    fn tags_decode_from_their_offset_in_the_variable() {
        let data = [0u8, 0x41, 0xBC, 0x00, 0x00, 0b0000_0100, 0x00, 0x2A];
        assert_eq!(decode(&tag("DB1.DBD1:real"), 0, &data), Ok(Value::Float(23.5)));
        assert_eq!(decode(&tag("DB1.DBX5.2"), 0, &data), Ok(Value::Bool(true)));
        assert_eq!(decode(&tag("DB1.DBW6:int"), 0, &data), Ok(Value::Int(42)));
        assert_eq!(decode(&tag("DB1.DBW12:int"), 6, &data), Ok(Value::Int(42)));
        // Past the data: an error, not a panic.
        assert!(decode(&tag("DB1.DBD6:real"), 0, &data).is_err());
        assert!(decode(&tag("DB1.DBW0"), 4, &data).is_err());
    }

    #[test]
    fn refusals_map_to_qualities() {
        assert_eq!(
            refusal_quality(Refusal::Item(0x0A)),
            Quality::Bad(BadReason::ConfigError)
        );
        assert_eq!(
            refusal_quality(Refusal::Header(0x8104)),
            Quality::Bad(BadReason::ConfigError)
        );
        assert_eq!(
            refusal_quality(Refusal::Item(0x01)),
            Quality::Bad(BadReason::DeviceFailure)
        );
    }
}
