//! Store-and-forward for network sinks: the pipeline's batches go into one shared
//! [`Log`](backplane_buffer::Log) and every buffered sink reads them back through its own
//! [`Reader`], acknowledging only what its destination confirmed.
//!
//! - [`encode`] / [`decode`]: a batch as one log record. Samples name their tag by path
//!   (not by [`TagId`](backplane_model::TagId)), so a backlog written under one
//!   configuration is still read correctly after the tags were renumbered by another;
//!   samples of tags that no longer exist are skipped and counted.
//! - [`LogWriter`]: the pipeline side (append; wait for space under `overflow = "block"`).
//! - [`BufferedInput`]: the sink side behind [`SinkIo`](crate::SinkIo).
//!
//! Sequence numbers: a record holding `n` samples and events covers `n` consecutive
//! sequence numbers of the log, samples first; each sample and event carries its own to
//! the sink (`seq` in `docs/payloads.md`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use backplane_buffer::scratch::{RECORD_KEEP, release_after};
use backplane_buffer::{AppendError, Log, Next, Reader, Record};
use backplane_model::wire::{self, Cursor, put_str, put_value, put_varint};
use backplane_model::{Context, Event, Quality, Sample, TagId, Timestamp, Value};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use backplane_connector::{Batch, Topology};

use crate::recent::RecentBatches;

/// The format of records written by this version: values in the [`wire`] encoding.
const FORMAT: u8 = 2;
/// The oldest format still read: 1 (values as a type byte 1–7 and fixed-width little-endian
/// numbers) was written before version 2; a backlog left by it is delivered after an upgrade.
const OLDEST_FORMAT: u8 = 1;

/// Flags of a sample in format 2.
const HAS_SOURCE_TIME: u8 = 1;
const HAS_VALUE: u8 = 2;

/// A record that cannot be read back as a batch.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Written by a version of Backplane whose record format this one does not know.
    #[error("buffer record in format {found}: this version reads formats {OLDEST_FORMAT} to {FORMAT}")]
    Format { found: u8 },
    /// Cut short, damaged, or not what the format allows.
    #[error("buffer record: {0}")]
    Wire(#[from] wire::Error),
}

/// Appends `batch` to `out` as one record body.
///
/// Layout: `format u8 (2), contexts varint, context*, samples varint, sample*, events
/// varint, event*`. A context is a presence mask u8 of its seven fields, then each present
/// one as a string; a sample is `tag path (string), flags u8 (1 = source time, 2 = value),
/// quality status code u32 LE, [source time i64 LE], gateway time i64 LE, context index
/// varint, [value]`; an event is its JSON as a length-prefixed string. Strings, varints and
/// values are [`backplane_model::wire`]'s.
pub fn encode(batch: &Batch, topology: &Topology, out: &mut Vec<u8>) {
    out.clear();
    out.push(FORMAT);
    // Contexts are shared by many samples (a poll's samples mostly by all): write each
    // distinct one once. `ContextIndex` finds a sample's without a search when it is the
    // previous sample's.
    let mut contexts = ContextIndex::default();
    for sample in &batch.samples {
        contexts.index(&sample.context);
    }
    put_varint(out, contexts.list.len() as u64);
    for context in &contexts.list {
        put_context(out, context);
    }
    put_varint(out, batch.samples.len() as u64);
    for sample in &batch.samples {
        put_path(out, topology, sample.tag);
        // The fixed part, gathered on the stack and appended at once: one capacity check
        // instead of one per field.
        let mut fixed = [0u8; 1 + 4 + 8 + 8 + 10];
        let mut n = 5;
        fixed[1..5].copy_from_slice(&sample.quality.to_status_code().to_le_bytes());
        if let Some(t) = sample.source_time {
            fixed[0] |= HAS_SOURCE_TIME;
            fixed[n..n + 8].copy_from_slice(&t.unix_nanos().to_le_bytes());
            n += 8;
        }
        if sample.value.is_some() {
            fixed[0] |= HAS_VALUE;
        }
        fixed[n..n + 8].copy_from_slice(&sample.gateway_time.unix_nanos().to_le_bytes());
        n += 8;
        let mut context = contexts.index(&sample.context) as u64;
        while context >= 0x80 {
            fixed[n] = (context as u8) | 0x80;
            context >>= 7;
            n += 1;
        }
        fixed[n] = context as u8;
        out.extend_from_slice(&fixed[..=n]);
        if let Some(value) = &sample.value {
            put_value(out, value);
        }
    }
    put_varint(out, batch.events.len() as u64);
    for event in &batch.events {
        // Events are rare beside samples; their JSON form is their stable form.
        let json = serde_json::to_vec(event).unwrap_or_default();
        wire::put_blob(out, &json);
    }
}

/// The distinct contexts of a batch in the order first met, by pointer.
#[derive(Default)]
struct ContextIndex<'a> {
    list: Vec<&'a Arc<Context>>,
    /// The last context asked for and its index.
    last: Option<(&'a Arc<Context>, usize)>,
}

impl<'a> ContextIndex<'a> {
    /// `context`'s index, added if new.
    fn index(&mut self, context: &'a Arc<Context>) -> usize {
        if let Some((last, i)) = self.last
            && Arc::ptr_eq(last, context)
        {
            return i;
        }
        let i = match self.list.iter().position(|c| Arc::ptr_eq(c, context)) {
            Some(i) => i,
            None => {
                self.list.push(context);
                self.list.len() - 1
            }
        };
        self.last = Some((context, i));
        i
    }
}

/// A decoded record: the batch, and the sequence number of each sample and event in it
/// (samples first). Samples of unknown tags are left out and counted in `unknown_tags`.
#[derive(Debug)]
pub struct Decoded {
    pub batch: Batch,
    pub seqs: Vec<u64>,
    pub unknown_tags: u64,
}

/// Reads a record written by [`encode`], or by a version that wrote an older format.
pub fn decode(bytes: &[u8], first_seq: u64, topology: &Topology) -> Result<Decoded, DecodeError> {
    let mut r = Cursor::new(bytes);
    let format = r.u8()?;
    if !(OLDEST_FORMAT..=FORMAT).contains(&format) {
        return Err(DecodeError::Format { found: format });
    }
    let n = r.count(usize::MAX, 1)?;
    let mut contexts = Vec::with_capacity(n);
    for _ in 0..n {
        contexts.push(Arc::new(read_context(&mut r)?));
    }
    let n = r.count(usize::MAX, 1)?;
    let mut samples = Vec::with_capacity(n);
    let mut seqs = Vec::with_capacity(n);
    let mut unknown_tags = 0;
    let mut previous: Option<TagId> = None;
    for i in 0..n {
        let raw = if format == FORMAT {
            read_sample(&mut r)?
        } else {
            format1::read_sample(&mut r)?
        };
        let context = usize::try_from(raw.context)
            .ok()
            .and_then(|i| contexts.get(i))
            .ok_or(wire::Error::Invalid("context index out of range"))?;
        let Some(tag) = resolve(topology, raw.path, previous)? else {
            unknown_tags += 1;
            continue;
        };
        previous = Some(tag);
        samples.push(Sample {
            tag,
            value: raw.value,
            quality: raw.quality,
            source_time: raw.source_time,
            gateway_time: raw.gateway_time,
            context: context.clone(),
        });
        seqs.push(first_seq + i as u64);
    }
    let sample_count = n as u64;
    let n = r.count(usize::MAX, 1)?;
    let mut events = Vec::with_capacity(n);
    for j in 0..n {
        let json = r.blob()?;
        let event: Event = serde_json::from_slice(json).map_err(|_| wire::Error::Invalid("bad event"))?;
        events.push(event);
        seqs.push(first_seq + sample_count + j as u64);
    }
    if !r.is_empty() {
        return Err(wire::Error::Invalid("trailing bytes").into());
    }
    Ok(Decoded {
        batch: Batch { samples, events },
        seqs,
        unknown_tags,
    })
}

/// Appends `tag`'s path as a blob (empty for a tag the topology does not have), from its
/// parts: the topology keeps no string of it.
fn put_path(out: &mut Vec<u8>, topology: &Topology, tag: TagId) {
    match topology.tag(tag) {
        Some(info) => {
            let path = topology.path(info);
            put_varint(out, path.len() as u64);
            path.put(out);
        }
        None => put_str(out, ""),
    }
}

/// The tag a stored path names, `None` if the topology has no such tag. A record's samples
/// mostly come from one poll of consecutive tags, so the tag after the previous one is
/// tried first, by comparing bytes: no UTF-8 check and no hashing when it is the one.
fn resolve(topology: &Topology, path: &[u8], previous: Option<TagId>) -> wire::Result<Option<TagId>> {
    if let Some(next) = previous.and_then(|p| p.0.checked_add(1)).map(TagId)
        && topology.tag(next).is_some_and(|t| topology.path(t).is(path))
    {
        return Ok(Some(next));
    }
    let path = std::str::from_utf8(path).map_err(|_| wire::Error::InvalidUtf8)?;
    Ok(topology.tag_by_path(path).map(|t| t.id))
}

/// One sample as stored, before its tag path and context index are resolved.
struct RawSample<'a> {
    /// The tag's path as stored: UTF-8 once [`resolve`] has found it.
    path: &'a [u8],
    value: Option<Value>,
    quality: Quality,
    source_time: Option<Timestamp>,
    gateway_time: Timestamp,
    context: u64,
}

#[inline]
fn read_sample<'a>(r: &mut Cursor<'a>) -> wire::Result<RawSample<'a>> {
    let path = r.blob()?;
    let flags = r.u8()?;
    if flags & !(HAS_SOURCE_TIME | HAS_VALUE) != 0 {
        return Err(wire::Error::Invalid("unknown sample flags"));
    }
    let quality = match r.u32_le()? {
        // Good, by far the most common, without the table search.
        0 => Quality::Good,
        code => Quality::from_status_code(code),
    };
    let source_time = if flags & HAS_SOURCE_TIME != 0 {
        Some(Timestamp::from_unix_nanos(r.i64_le()?))
    } else {
        None
    };
    let gateway_time = Timestamp::from_unix_nanos(r.i64_le()?);
    let context = match r.peek() {
        // One byte, the usual case (fewer than 128 contexts in the record).
        Some(b) if b < 0x80 => u64::from(r.u8()?),
        _ => r.varint()?,
    };
    let value = if flags & HAS_VALUE != 0 {
        Some(r.value()?)
    } else {
        None
    };
    Ok(RawSample {
        path,
        value,
        quality,
        source_time,
        gateway_time,
        context,
    })
}

fn put_context(out: &mut Vec<u8>, c: &Context) {
    let fields = context_fields(c);
    let mut mask = 0u8;
    for (i, f) in fields.iter().enumerate() {
        if f.is_some() {
            mask |= 1 << i;
        }
    }
    out.push(mask);
    for f in fields.into_iter().flatten() {
        put_str(out, f);
    }
}

fn context_fields(c: &Context) -> [Option<&Arc<str>>; 7] {
    [
        c.work_order.as_ref(),
        c.product.as_ref(),
        c.batch.as_ref(),
        c.lot.as_ref(),
        c.shift.as_ref(),
        c.operator.as_ref(),
        c.machine_state.as_ref(),
    ]
}

fn read_context(r: &mut Cursor<'_>) -> wire::Result<Context> {
    let mask = r.u8()?;
    let mut fields: [Option<Arc<str>>; 7] = Default::default();
    for (i, field) in fields.iter_mut().enumerate() {
        if mask & (1 << i) != 0 {
            *field = Some(Arc::from(r.str()?));
        }
    }
    let [work_order, product, batch, lot, shift, operator, machine_state] = fields;
    Ok(Context {
        work_order,
        product,
        batch,
        lot,
        shift,
        operator,
        machine_state,
    })
}

/// Reading format 1, which only differs in a sample's layout: `tag path, value (type byte 0
/// = none, 1 bool u8, 2 int i64 LE, 3 uint u64 LE, 4 float f64 LE, 5 string, 6 timestamp
/// i64 LE, 7 array: varint count then values), quality u32 LE, source time flag u8 and
/// [i64 LE], gateway time i64 LE, context index varint`.
mod format1 {
    use std::sync::Arc;

    use backplane_model::wire::{self, Cursor, Error, MAX_DEPTH};
    use backplane_model::{Quality, Timestamp, Value};

    use super::RawSample;

    pub(super) fn read_sample<'a>(r: &mut Cursor<'a>) -> wire::Result<RawSample<'a>> {
        let path = r.blob()?;
        let value = if r.peek() == Some(0) {
            r.u8()?;
            None
        } else {
            Some(value(r, 0)?)
        };
        let quality = Quality::from_status_code(r.u32_le()?);
        let source_time = match r.u8()? {
            0 => None,
            1 => Some(Timestamp::from_unix_nanos(r.i64_le()?)),
            _ => return Err(Error::Invalid("bad source time flag")),
        };
        let gateway_time = Timestamp::from_unix_nanos(r.i64_le()?);
        let context = r.varint()?;
        Ok(RawSample {
            path,
            value,
            quality,
            source_time,
            gateway_time,
            context,
        })
    }

    fn value(r: &mut Cursor<'_>, depth: usize) -> wire::Result<Value> {
        Ok(match r.u8()? {
            1 => Value::Bool(r.u8()? != 0),
            2 => Value::Int(r.i64_le()?),
            3 => Value::UInt(r.u64_le()?),
            4 => Value::Float(f64::from_bits(r.u64_le()?)),
            5 => Value::String(Arc::from(r.str()?)),
            6 => Value::Timestamp(Timestamp::from_unix_nanos(r.i64_le()?)),
            7 if depth < MAX_DEPTH => {
                let n = r.count(usize::MAX, 1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(value(r, depth + 1)?);
                }
                Value::Array(items.into())
            }
            7 => return Err(Error::TooDeep),
            tag => return Err(Error::UnknownValueType(tag)),
        })
    }
}

/// The pipeline's side of the log.
#[derive(Debug)]
pub(crate) struct LogWriter {
    pub(crate) log: Log,
    topology: Arc<Topology>,
    /// The latest appended batches, for the readers that keep up.
    recent: Arc<RecentBatches>,
    scratch: Vec<u8>,
    /// Batches that could not be written (disk full, I/O error): lost for buffered sinks.
    pub(crate) append_errors: Counter,
    last_warning: Option<Instant>,
}

const WARN_INTERVAL: Duration = Duration::from_secs(10);

impl LogWriter {
    /// The log, for the engine a reload starts (which writes with its own topology).
    pub(crate) fn into_log(self) -> Log {
        self.log
    }

    pub(crate) fn new(
        log: Log,
        topology: Arc<Topology>,
        recent: Arc<RecentBatches>,
        append_errors: Counter,
    ) -> LogWriter {
        LogWriter {
            log,
            topology,
            recent,
            scratch: Vec::with_capacity(RECORD_KEEP),
            append_errors,
            last_warning: None,
        }
    }

    /// Appends a batch for every buffered sink. Under `overflow = "block"` this waits for
    /// the full sink to catch up, which holds back the pipeline and so the sources.
    pub(crate) async fn append(&mut self, batch: &Arc<Batch>) {
        let count = batch.len();
        if count == 0 {
            return;
        }
        let Ok(count) = u32::try_from(count) else {
            // Batches are bounded by a source's read size, far below this.
            self.append_errors.inc();
            return;
        };
        encode(batch, &self.topology, &mut self.scratch);
        if let Some(seq) = self.write(count).await {
            self.recent.keep(seq, &self.topology, batch);
        }
        self.scratch.clear();
        release_after(&mut self.scratch, RECORD_KEEP);
    }

    /// Appends the encoded record in `scratch` of `count` samples; its first sequence
    /// number, `None` if it could not be written.
    async fn write(&mut self, count: u32) -> Option<u64> {
        loop {
            match self.log.append(count, &self.scratch) {
                Ok(seq) => return Some(seq),
                Err(AppendError::Full { reader }) => {
                    if self.should_warn() {
                        tracing::warn!(sink = %reader, "store-and-forward quota reached with overflow = \"block\": holding back the sources until the sink catches up");
                    }
                    self.log.space().await;
                }
                Err(AppendError::Buffer(e)) => {
                    self.append_errors.inc();
                    if self.should_warn() {
                        tracing::error!(error = %e, "cannot write to the store-and-forward log; data for buffered sinks is being lost (see backplane_buffer_append_errors_total)");
                    }
                    return None;
                }
            }
        }
    }

    fn should_warn(&mut self) -> bool {
        let now = Instant::now();
        let due = self
            .last_warning
            .is_none_or(|t| now.duration_since(t) >= WARN_INTERVAL);
        if due {
            self.last_warning = Some(now);
        }
        due
    }
}

/// What a sink asks of its reader between deliveries.
#[derive(Debug)]
pub(crate) enum ReaderCommand {
    Ack(u64),
    Rewind,
}

/// A buffered sink's input: its reader of the log, and the commands (acks, rewinds) the
/// sink sent since the last delivery. Acks go through a channel because the sink may ack
/// while a `next` of its own is pending in a `select!`.
#[derive(Debug)]
pub(crate) struct BufferedInput {
    pub(crate) reader: Reader,
    pub(crate) commands: mpsc::UnboundedReceiver<ReaderCommand>,
    pub(crate) topology: Arc<Topology>,
    /// The writer's latest batches: a record found there is not decoded.
    pub(crate) recent: Arc<RecentBatches>,
    /// Cancelled once the pipeline has stopped: nothing more will be appended.
    pub(crate) closed: CancellationToken,
    pub(crate) unreadable: Counter,
    pub(crate) unknown_tags: Counter,
}

/// One record handed to a buffered sink.
#[derive(Debug)]
pub(crate) struct Delivered {
    pub(crate) record: u64,
    pub(crate) batch: Arc<Batch>,
    /// The sequence number of each sample, then each event, of `batch`.
    pub(crate) seqs: Arc<[u64]>,
    pub(crate) replay: bool,
}

impl BufferedInput {
    pub(crate) fn apply(&mut self, command: ReaderCommand) {
        match command {
            ReaderCommand::Ack(seq) => self.reader.ack(seq),
            ReaderCommand::Rewind => self.reader.rewind(),
        }
    }

    pub(crate) fn apply_pending(&mut self) {
        while let Ok(command) = self.commands.try_recv() {
            self.apply(command);
        }
    }

    /// The next decodable record; `None` once the pipeline has stopped and nothing more
    /// is ready (the rest stays in the log for the next start).
    pub(crate) async fn next(&mut self) -> Option<Delivered> {
        loop {
            self.apply_pending();
            // A record whose batch the writer still keeps is taken from there: not read
            // from its file, not decoded.
            let (recent, topology) = (&self.recent, &self.topology);
            let take = |seq, count| recent.take(seq, count, topology);
            let next = if self.closed.is_cancelled() {
                match self.reader.try_next_or_take(take) {
                    Ok(Some(next)) => next,
                    Ok(None) => {
                        self.finish();
                        return None;
                    }
                    Err(e) => {
                        tracing::error!(reader = %self.reader.name(), error = %e, "store-and-forward: cannot read the log");
                        self.finish();
                        return None;
                    }
                }
            } else {
                let closed = self.closed.clone();
                tokio::select! {
                    next = self.reader.next_or_take(take) => match next {
                        Ok(next) => next,
                        Err(e) => {
                            // An I/O error reading our own files: wait a little rather than spin.
                            tracing::error!(reader = %self.reader.name(), error = %e, "store-and-forward: cannot read the log");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            continue;
                        }
                    },
                    Some(command) = self.commands.recv() => {
                        self.apply(command);
                        continue;
                    }
                    () = closed.cancelled() => continue,
                }
            };
            let record = match next {
                Next::Taken {
                    seq,
                    count,
                    replay,
                    item: batch,
                } => {
                    // Kept non-empty, and every sample's tag is the reader's: as decoded.
                    return Some(Delivered {
                        record: seq,
                        seqs: (seq..seq + u64::from(count)).collect(),
                        batch,
                        replay,
                    });
                }
                Next::Read(record) => record,
            };
            if let Some(delivered) = self.decode(record) {
                return Some(delivered);
            }
        }
    }

    fn decode(&mut self, record: Record) -> Option<Delivered> {
        match decode(&record.payload, record.seq, &self.topology) {
            Ok(decoded) => {
                if decoded.unknown_tags > 0 {
                    self.unknown_tags.inc_by(decoded.unknown_tags);
                    tracing::warn!(reader = %self.reader.name(), samples = decoded.unknown_tags, "store-and-forward: skipping buffered samples of tags the configuration no longer has");
                }
                if decoded.batch.is_empty() {
                    self.reader.ack(record.seq);
                    return None;
                }
                Some(Delivered {
                    record: record.seq,
                    batch: Arc::new(decoded.batch),
                    seqs: decoded.seqs.into(),
                    replay: record.replay,
                })
            }
            Err(e) => {
                // Checksummed, so written like this: by another version, or a bug. Skip it,
                // counted, rather than block the sink behind it forever.
                self.unreadable.inc_by(u64::from(record.count));
                tracing::error!(reader = %self.reader.name(), seq = record.seq, error = %e, "store-and-forward: skipping a record this version cannot read");
                self.reader.ack(record.seq);
                None
            }
        }
    }

    fn finish(&mut self) {
        self.apply_pending();
        if let Err(e) = self.reader.persist() {
            tracing::warn!(reader = %self.reader.name(), error = %e, "store-and-forward: cannot save the read position; some records will be sent again");
        }
    }
}

/// Also the fixture of `recent`'s tests: one tank of two bound attributes.
#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use backplane_model::{AssetPath, BadReason, ContextField, EventKind};

    pub(crate) const CONFIG: &str = r#"
[namespace]
enterprise = "acme"
site = "plant"
[models.Tank.attributes]
level = { type = "float", unit = "%" }
name = { type = "string" }
[[assets]]
path = "area"
level = "area"
[[assets]]
path = "area/tank-1"
model = "Tank"
source = "sim"
bindings.level = { address = "l" }
bindings.name = { address = "n" }
[[sources]]
name = "sim"
kind = "simulator"
signals.l = { signal = "constant", value = 1.0 }
signals.n = { signal = "constant", value = 1.0 }
"#;

    pub(crate) fn topology(config: &str) -> Topology {
        let registry = crate::builtins();
        let plan =
            backplane_config::load_str(config, std::path::Path::new("t.toml"), &registry.catalog()).unwrap();
        Topology::new(plan)
    }

    fn batch(topology: &Topology) -> Batch {
        let context = Arc::new(Context {
            work_order: Some("WO-1".into()),
            batch: Some("B-7".into()),
            ..Context::default()
        });
        let level = topology.tag_by_path("acme/plant/area/tank-1/level").unwrap().id;
        let name = topology.tag_by_path("acme/plant/area/tank-1/name").unwrap().id;
        Batch {
            samples: vec![
                Sample {
                    tag: level,
                    value: Some(Value::Float(42.5)),
                    quality: Quality::Good,
                    source_time: Some(Timestamp::from_unix_nanos(5)),
                    gateway_time: Timestamp::from_unix_nanos(7),
                    context: context.clone(),
                },
                Sample {
                    tag: name,
                    value: Some(Value::Array(
                        vec![Value::String("a".into()), Value::Int(-3), Value::UInt(9)].into(),
                    )),
                    quality: Quality::Uncertain(backplane_model::UncertainReason::LastUsableValue),
                    source_time: None,
                    gateway_time: Timestamp::from_unix_nanos(8),
                    context: context.clone(),
                },
                Sample {
                    tag: level,
                    value: None,
                    quality: Quality::Bad(BadReason::CommFailure),
                    source_time: None,
                    gateway_time: Timestamp::from_unix_nanos(9),
                    context: Arc::new(Context::default()),
                },
            ],
            events: vec![Event {
                asset: AssetPath::parse("acme/plant/area/tank-1").unwrap(),
                time: Timestamp::from_unix_nanos(10),
                kind: EventKind::ContextChanged {
                    field: ContextField::Batch,
                    old: None,
                    new: Some("B-7".into()),
                    by: Some("api".into()),
                },
                context: context.clone(),
            }],
        }
    }

    #[test]
    fn a_batch_survives_the_round_trip_with_one_sequence_number_per_record_item() {
        let topology = topology(CONFIG);
        let batch = batch(&topology);
        let mut bytes = Vec::new();
        encode(&batch, &topology, &mut bytes);
        let decoded = decode(&bytes, 100, &topology).unwrap();
        assert_eq!(decoded.batch.samples, batch.samples);
        assert_eq!(decoded.batch.events, batch.events);
        assert_eq!(decoded.seqs, [100, 101, 102, 103]);
        assert_eq!(decoded.unknown_tags, 0);
        // Samples sharing a context share it again after decoding.
        assert!(Arc::ptr_eq(
            &decoded.batch.samples[0].context,
            &decoded.batch.samples[1].context
        ));
    }

    #[tokio::test]
    async fn a_burst_is_stored_whole_and_its_room_given_back_at_once() {
        let topology = Arc::new(topology(CONFIG));
        let dir = tempfile::tempdir().unwrap();
        let options = backplane_buffer::ReaderOptions::default();
        let (log, mut readers, _) = Log::open(
            dir.path(),
            backplane_buffer::LogOptions::default(),
            &[("sink", options)],
        )
        .unwrap();
        let mut writer = LogWriter::new(log, topology.clone(), Arc::default(), Counter::default());
        // Every tag of a large source failing at once: a record of megabytes.
        let one = batch(&topology).samples.remove(0);
        let burst = Arc::new(Batch {
            samples: vec![one; 100_000],
            events: Vec::new(),
        });
        writer.append(&burst).await;
        assert!(
            writer.scratch.capacity() <= RECORD_KEEP,
            "kept {} bytes",
            writer.scratch.capacity()
        );
        let record = readers[0].try_next().unwrap().unwrap();
        assert!(record.payload.len() > 4 * RECORD_KEEP);
        let decoded = decode(&record.payload, record.seq, &topology).unwrap();
        assert_eq!(decoded.batch.samples, burst.samples);
        // A poll's batch afterwards is written as before.
        let small = Arc::new(batch(&topology));
        writer.append(&small).await;
        let record = readers[0].try_next().unwrap().unwrap();
        assert_eq!(
            decode(&record.payload, record.seq, &topology)
                .unwrap()
                .batch
                .samples,
            small.samples
        );
    }

    /// A buffered sink's input over `reader`, resolving tags with `topology`.
    fn input(reader: Reader, topology: &Arc<Topology>, recent: &Arc<RecentBatches>) -> BufferedInput {
        BufferedInput {
            reader,
            commands: mpsc::unbounded_channel().1,
            topology: topology.clone(),
            recent: recent.add_reader(),
            closed: CancellationToken::new(),
            unreadable: Counter::default(),
            unknown_tags: Counter::default(),
        }
    }

    #[tokio::test]
    async fn a_reader_that_keeps_up_takes_the_pipelines_batch_and_others_decode_the_record() {
        let topology = Arc::new(topology(CONFIG));
        let dir = tempfile::tempdir().unwrap();
        let options = backplane_buffer::ReaderOptions::default();
        let (log, readers, _) = Log::open(
            dir.path(),
            backplane_buffer::LogOptions::default(),
            &[("a", options.clone()), ("b", options)],
        )
        .unwrap();
        let mut readers = readers.into_iter();
        let recent = Arc::new(RecentBatches::default());
        let mut writer = LogWriter::new(log, topology.clone(), recent.clone(), Counter::default());
        let mut same = input(readers.next().unwrap(), &topology, &recent);
        // A sink kept across a reload: the same tags, another topology.
        let reloaded = Arc::new(self::topology(CONFIG));
        let mut other = input(readers.next().unwrap(), &reloaded, &recent);

        let first = Arc::new(batch(&topology));
        writer.append(&first).await;
        let taken = same.next().await.unwrap();
        assert!(Arc::ptr_eq(&taken.batch, &first), "not decoded: the batch itself");
        assert_eq!(&*taken.seqs, [0, 1, 2, 3]);
        let decoded = other.next().await.unwrap();
        assert!(!Arc::ptr_eq(&decoded.batch, &first));
        assert_eq!(decoded.batch.samples, first.samples);
        assert_eq!(decoded.batch.events, first.events);
        assert_eq!(decoded.seqs, taken.seqs);

        // Once pushed out of the recent batches, a record is decoded, with the same result.
        let second = Arc::new(batch(&topology));
        writer.append(&second).await;
        for _ in 0..crate::recent::RECORDS {
            writer.append(&Arc::new(batch(&topology))).await;
        }
        let late = same.next().await.unwrap();
        assert!(!Arc::ptr_eq(&late.batch, &second));
        assert_eq!(late.batch.samples, second.samples);
        assert_eq!(&*late.seqs, [4, 5, 6, 7]);
        assert!(!late.replay);
    }

    #[test]
    fn large_batches_of_many_samples_and_contexts_round_trip() {
        let topology = topology(CONFIG);
        let mut batch = batch(&topology);
        let template = batch.samples[0].clone();
        // Ten assets' contexts: the last sample refers to the tenth, with fewer bytes
        // after it than its index.
        let contexts: Vec<Arc<Context>> = (0..10)
            .map(|i| {
                Arc::new(Context {
                    lot: Some(format!("L{i}").into()),
                    ..Context::default()
                })
            })
            .collect();
        batch.events.clear();
        batch.samples = (0..300)
            .map(|i| Sample {
                context: contexts[(i % 10) as usize].clone(),
                value: Some(Value::Float(f64::from(i) * 0.37)),
                gateway_time: Timestamp::from_unix_nanos(1_764_000_000_000_000_000 + i64::from(i)),
                ..template.clone()
            })
            .collect();
        let mut bytes = Vec::new();
        encode(&batch, &topology, &mut bytes);
        let decoded = decode(&bytes, 0, &topology).unwrap();
        assert_eq!(decoded.batch.samples, batch.samples);
    }

    /// Format 2 as written field by field before the fixed part was gathered on the
    /// stack: the bytes must not have changed.
    fn encode_field_by_field(batch: &Batch, topology: &Topology) -> Vec<u8> {
        let mut out = vec![FORMAT];
        let mut contexts: Vec<&Arc<Context>> = Vec::new();
        let mut context_of = Vec::new();
        for sample in &batch.samples {
            let i = match contexts.iter().position(|c| Arc::ptr_eq(c, &sample.context)) {
                Some(i) => i,
                None => {
                    contexts.push(&sample.context);
                    contexts.len() - 1
                }
            };
            context_of.push(i);
        }
        put_varint(&mut out, contexts.len() as u64);
        for context in &contexts {
            put_context(&mut out, context);
        }
        put_varint(&mut out, batch.samples.len() as u64);
        for (sample, context) in batch.samples.iter().zip(context_of) {
            put_path(&mut out, topology, sample.tag);
            let mut flags = 0;
            if sample.source_time.is_some() {
                flags |= HAS_SOURCE_TIME;
            }
            if sample.value.is_some() {
                flags |= HAS_VALUE;
            }
            out.push(flags);
            out.extend_from_slice(&sample.quality.to_status_code().to_le_bytes());
            if let Some(t) = sample.source_time {
                out.extend_from_slice(&t.unix_nanos().to_le_bytes());
            }
            out.extend_from_slice(&sample.gateway_time.unix_nanos().to_le_bytes());
            put_varint(&mut out, context as u64);
            if let Some(value) = &sample.value {
                put_value(&mut out, value);
            }
        }
        put_varint(&mut out, batch.events.len() as u64);
        for event in &batch.events {
            wire::put_blob(&mut out, &serde_json::to_vec(event).unwrap());
        }
        out
    }

    #[test]
    fn records_are_written_byte_for_byte_as_before() {
        let topology = topology(CONFIG);
        let mut batch = batch(&topology);
        let mut bytes = Vec::new();
        encode(&batch, &topology, &mut bytes);
        assert_eq!(bytes, encode_field_by_field(&batch, &topology));
        // 200 contexts (indexes of two varint bytes), met again out of order; every
        // combination of source time, value and quality.
        let contexts: Vec<Arc<Context>> = (0..200)
            .map(|i| {
                Arc::new(Context {
                    shift: Some(format!("S{i}").into()),
                    ..Context::default()
                })
            })
            .collect();
        let templates = batch.samples.clone();
        batch.samples = (0..600usize)
            .map(|i| Sample {
                context: contexts[(i * 7) % 200].clone(),
                source_time: (i % 3 == 0).then_some(Timestamp::from_unix_nanos(-(i as i64))),
                gateway_time: Timestamp::from_unix_nanos(i64::MAX - i as i64),
                ..templates[i % templates.len()].clone()
            })
            .collect();
        encode(&batch, &topology, &mut bytes);
        assert_eq!(bytes, encode_field_by_field(&batch, &topology));
        assert_eq!(decode(&bytes, 0, &topology).unwrap().batch.samples, batch.samples);
    }

    #[test]
    fn samples_of_tags_removed_from_the_configuration_are_skipped_and_keep_their_numbers() {
        let old = topology(CONFIG);
        let mut bytes = Vec::new();
        encode(&batch(&old), &old, &mut bytes);
        let new = topology(
            &CONFIG
                .replace("name = { type = \"string\" }", "")
                .replace("bindings.name = { address = \"n\" }", ""),
        );
        let decoded = decode(&bytes, 0, &new).unwrap();
        assert_eq!(decoded.unknown_tags, 1);
        assert_eq!(decoded.batch.samples.len(), 2);
        // The level samples were the first and third: their numbers are kept.
        assert_eq!(decoded.seqs, [0, 2, 3]);
        let level = new.tag_by_path("acme/plant/area/tank-1/level").unwrap().id;
        assert!(decoded.batch.samples.iter().all(|s| s.tag == level));
    }

    #[test]
    fn samples_keep_their_tags_when_the_reading_configuration_numbers_them_otherwise() {
        // Written with level, name (consecutive ids); read with the attributes the other
        // way round and a second tank: the id after tank-1's level is tank-2's name.
        let old = topology(CONFIG);
        let old_batch = batch(&old);
        let mut bytes = Vec::new();
        encode(&old_batch, &old, &mut bytes);
        let renumbered = CONFIG
            .replace(
                "level = { type = \"float\", unit = \"%\" }\nname = { type = \"string\" }",
                "name = { type = \"string\" }\nlevel = { type = \"float\", unit = \"%\" }",
            )
            .replace(
                "[[sources]]",
                "[[assets]]\npath = \"area/tank-2\"\nmodel = \"Tank\"\n[[sources]]",
            );
        let new = topology(&renumbered);
        let decoded = decode(&bytes, 0, &new).unwrap();
        let paths = |t: &Topology, samples: &[Sample]| -> Vec<String> {
            samples
                .iter()
                .map(|s| t.path(t.tag(s.tag).unwrap()).to_string())
                .collect()
        };
        assert_ne!(
            old_batch.samples.iter().map(|s| s.tag).collect::<Vec<_>>(),
            decoded.batch.samples.iter().map(|s| s.tag).collect::<Vec<_>>(),
            "the ids differ between the two configurations"
        );
        assert_eq!(
            paths(&new, &decoded.batch.samples),
            paths(&old, &old_batch.samples)
        );
    }

    /// [`batch`] as the version before format 2 wrote it (hex), taken from that build.
    const FORMAT_1_RECORD: &[&str] = &[
        "01020504574f2d3103422d3700031c61636d652f706c616e742f617265612f74616e6b2d312f6c6576656c0400000000",
        "00404540000000000105000000000000000700000000000000001b61636d652f706c616e742f617265612f74616e6b2d",
        "312f6e616d65070305016102fdffffffffffffff03090000000000000000009040000800000000000000001c61636d65",
        "2f706c616e742f617265612f74616e6b2d312f6c6576656c00000005800009000000000000000101c3017b2261737365",
        "74223a2261636d652f706c616e742f617265612f74616e6b2d31222c2274696d65223a22313937302d30312d30315430",
        "303a30303a30302e30303030303030315a222c226576656e74223a22636f6e746578745f6368616e676564222c226669",
        "656c64223a226261746368222c226f6c64223a6e756c6c2c226e6577223a22422d37222c226279223a22617069222c22",
        "636f6e74657874223a7b22776f726b5f6f72646572223a22574f2d31222c226261746368223a22422d37227d7d",
    ];

    fn unhex(parts: &[&str]) -> Vec<u8> {
        let hex: String = parts.concat();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn records_written_in_format_1_by_the_previous_version_still_decode() {
        let topology = topology(CONFIG);
        let batch = batch(&topology);
        let bytes = unhex(FORMAT_1_RECORD);
        assert_eq!(bytes[0], 1);
        let decoded = decode(&bytes, 100, &topology).unwrap();
        assert_eq!(decoded.batch.samples, batch.samples);
        assert_eq!(decoded.batch.events, batch.events);
        assert_eq!(decoded.seqs, [100, 101, 102, 103]);
        assert!(Arc::ptr_eq(
            &decoded.batch.samples[0].context,
            &decoded.batch.samples[1].context
        ));
        // This version writes format 2 only.
        let mut written = Vec::new();
        encode(&batch, &topology, &mut written);
        assert_eq!(written[0], FORMAT);
        assert_ne!(written, bytes);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], 0, &topology).is_err(), "truncated to {len}");
        }
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x80;
            let _ = decode(&damaged, 0, &topology);
        }
    }

    #[test]
    fn a_record_of_a_newer_format_is_refused_naming_both_versions() {
        let topology = topology(CONFIG);
        let mut bytes = Vec::new();
        encode(&batch(&topology), &topology, &mut bytes);
        for format in [0, 3, 255] {
            bytes[0] = format;
            let e = decode(&bytes, 0, &topology).unwrap_err();
            assert!(
                matches!(e, DecodeError::Format { found } if found == format),
                "{e:?}"
            );
            assert_eq!(
                e.to_string(),
                format!("buffer record in format {format}: this version reads formats 1 to 2")
            );
        }
    }

    #[test]
    fn every_truncation_and_byte_flip_of_a_record_is_an_error_or_a_batch_never_a_panic() {
        let topology = topology(CONFIG);
        let mut bytes = Vec::new();
        encode(&batch(&topology), &topology, &mut bytes);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], 0, &topology).is_err(), "truncated to {len}");
        }
        for i in 0..bytes.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[i] ^= flip;
                let _ = decode(&damaged, 0, &topology);
            }
        }
    }
}
