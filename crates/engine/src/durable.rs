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

/// The format of records written by this version.
const FORMAT: u8 = 3;
/// The oldest format still read: a backlog left by an older version is delivered after an
/// upgrade (`durable/older.rs`).
const OLDEST_FORMAT: u8 = 1;

/// Flags of a sample in formats 2 and 3.
const HAS_SOURCE_TIME: u8 = 1;
const HAS_VALUE: u8 = 2;

mod older;

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
/// Layout (format 3): `format u8, contexts varint, context*, samples varint, [base time
/// i64 LE when samples > 0], sample*, events varint, event*`. A context is a presence mask
/// u8 of its seven fields, then each present one as a string. A sample is `asset index
/// varint, [asset path (string) when the index is new: one past the last], attribute name
/// (string), flags u8 (1 = source time, 2 = value), quality status code varint, [source
/// time i64 LE], gateway time minus the base time (zigzag varint), context index varint,
/// [value]`. An event is its JSON as a length-prefixed string. Strings, varints and values
/// are [`backplane_model::wire`]'s.
///
/// A tag is named by its asset's path and attribute name, not by its
/// [`TagId`](backplane_model::TagId), so a backlog outlives a renumbering. Each asset's path
/// is written once per record, and a poll's samples, which share their gateway time and
/// are mostly good, take a byte each for both: 6 bytes, the attribute's name and the value
/// (12–14 bytes a sample for the benchmark's registers, 33–35 in format 2).
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
    let base = batch.samples.first().map_or(0, |s| s.gateway_time.unix_nanos());
    if !batch.samples.is_empty() {
        out.extend_from_slice(&base.to_le_bytes());
    }
    let mut assets = AssetIndex::default();
    for sample in &batch.samples {
        let info = topology.tag(sample.tag);
        let attribute = info.map_or("", |t| t.attribute.name.as_str());
        // Room for the sample but its asset's path and value, so the pushes below never
        // grow the buffer: five varints, the flags, a time and the name.
        out.reserve(5 * 10 + 1 + 8 + attribute.len());
        let asset = info.map(|t| t.asset);
        let (index, new) = assets.index(asset);
        put_varint(out, index as u64);
        if new {
            // A tag the topology does not have (never from the pipeline): an empty path,
            // which no tag has, so it is skipped and counted on reading.
            let path = asset
                .and_then(|a| topology.assets.get(a))
                .map_or("", |a| a.path.as_str());
            put_str(out, path);
        }
        put_str(out, attribute);
        let mut flags = 0;
        if sample.source_time.is_some() {
            flags |= HAS_SOURCE_TIME;
        }
        if sample.value.is_some() {
            flags |= HAS_VALUE;
        }
        out.push(flags);
        put_varint(out, u64::from(sample.quality.to_status_code()));
        if let Some(t) = sample.source_time {
            out.extend_from_slice(&t.unix_nanos().to_le_bytes());
        }
        put_varint(
            out,
            wire::zigzag(sample.gateway_time.unix_nanos().wrapping_sub(base)),
        );
        put_varint(out, contexts.index(&sample.context) as u64);
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

/// The assets of a record's samples so far (`None`: a tag the topology does not have),
/// in the order first met.
#[derive(Default)]
struct AssetIndex {
    list: Vec<Option<usize>>,
    last: Option<(Option<usize>, usize)>,
}

impl AssetIndex {
    /// `asset`'s index, and whether it is new (its path is written after it).
    fn index(&mut self, asset: Option<usize>) -> (usize, bool) {
        if let Some((last, i)) = self.last
            && last == asset
        {
            return (i, false);
        }
        let (i, new) = match self.list.iter().position(|a| *a == asset) {
            Some(i) => (i, false),
            None => {
                self.list.push(asset);
                (self.list.len() - 1, true)
            }
        };
        self.last = Some((asset, i));
        (i, new)
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
    let mut base = 0;
    if format >= 3 && n > 0 {
        base = r.i64_le()?;
    }
    let mut samples = Vec::with_capacity(n);
    let mut seqs = Vec::with_capacity(n);
    let mut unknown_tags = 0;
    let mut previous: Option<TagId> = None;
    let mut scratch = String::new();
    let mut assets = Vec::new();
    for i in 0..n {
        let raw = match format {
            1 => older::format1_sample(&mut r)?,
            2 => older::format2_sample(&mut r)?,
            _ => read_sample(&mut r, &mut assets, base)?,
        };
        let context = usize::try_from(raw.context)
            .ok()
            .and_then(|i| contexts.get(i))
            .ok_or(wire::Error::Invalid("context index out of range"))?;
        let Some(tag) = resolve(topology, raw.path, previous, &mut scratch)? else {
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

/// A tag's name as stored: its whole path (formats 1 and 2) or its asset's path and its
/// attribute's name (format 3). Bytes: UTF-8 once [`resolve`] has found the tag.
#[derive(Clone, Copy)]
enum StoredPath<'a> {
    Joined(&'a [u8]),
    Parts { asset: &'a [u8], attribute: &'a [u8] },
}

/// The tag a stored path names, `None` if the topology has no such tag. A record's samples
/// mostly come from one poll of consecutive tags, so the tag after the previous one is
/// tried first, by comparing bytes: no UTF-8 check and no hashing when it is the one.
fn resolve(
    topology: &Topology,
    path: StoredPath<'_>,
    previous: Option<TagId>,
    scratch: &mut String,
) -> wire::Result<Option<TagId>> {
    let is = |tag: TagId| {
        topology.tag(tag).is_some_and(|t| {
            let p = topology.path(t);
            match path {
                StoredPath::Joined(joined) => p.is(joined),
                StoredPath::Parts { asset, attribute } => {
                    p.asset.as_bytes() == asset && p.attribute.as_bytes() == attribute
                }
            }
        })
    };
    if let Some(next) = previous.and_then(|p| p.0.checked_add(1)).map(TagId)
        && is(next)
    {
        return Ok(Some(next));
    }
    let utf8 = |b| std::str::from_utf8(b).map_err(|_| wire::Error::InvalidUtf8);
    let path = match path {
        StoredPath::Joined(joined) => utf8(joined)?,
        StoredPath::Parts { asset, attribute } => {
            scratch.clear();
            scratch.push_str(utf8(asset)?);
            scratch.push('/');
            scratch.push_str(utf8(attribute)?);
            scratch.as_str()
        }
    };
    Ok(topology.tag_by_path(path).map(|t| t.id))
}

/// One sample as stored, before its tag path and context index are resolved.
struct RawSample<'a> {
    path: StoredPath<'a>,
    value: Option<Value>,
    quality: Quality,
    source_time: Option<Timestamp>,
    gateway_time: Timestamp,
    context: u64,
}

/// A sample of format 3 (see [`encode`]).
#[inline]
fn read_sample<'a>(r: &mut Cursor<'a>, assets: &mut Vec<&'a [u8]>, base: i64) -> wire::Result<RawSample<'a>> {
    let index = r.varint()?;
    let asset = match usize::try_from(index).ok().and_then(|i| assets.get(i).copied()) {
        Some(asset) => asset,
        None if index == assets.len() as u64 => {
            // A new asset: its path follows.
            let path = r.blob()?;
            assets.push(path);
            path
        }
        None => return Err(wire::Error::Invalid("asset index out of range")),
    };
    let attribute = r.blob()?;
    let flags = r.u8()?;
    if flags & !(HAS_SOURCE_TIME | HAS_VALUE) != 0 {
        return Err(wire::Error::Invalid("unknown sample flags"));
    }
    let quality = match r.varint()? {
        // Good, by far the most common, without the table search.
        0 => Quality::Good,
        code => Quality::from_status_code(u32::try_from(code).map_err(|_| wire::Error::OutOfRange)?),
    };
    let source_time = if flags & HAS_SOURCE_TIME != 0 {
        Some(Timestamp::from_unix_nanos(r.i64_le()?))
    } else {
        None
    };
    let gateway_time = Timestamp::from_unix_nanos(base.wrapping_add(r.varint_i64()?));
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
        path: StoredPath::Parts { asset, attribute },
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

    #[test]
    fn every_combination_of_fields_and_many_contexts_round_trip() {
        let topology = topology(CONFIG);
        let mut batch = batch(&topology);
        // 200 contexts (indexes of two varint bytes), met again out of order; every
        // combination of source time, value and quality; gateway times on both sides of
        // the first one, as far apart as they go.
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
                gateway_time: Timestamp::from_unix_nanos(match i % 4 {
                    0 => i64::MAX - i as i64,
                    1 => i64::MIN + i as i64,
                    _ => i as i64 - 300,
                }),
                ..templates[i % templates.len()].clone()
            })
            .collect();
        let mut bytes = Vec::new();
        encode(&batch, &topology, &mut bytes);
        let decoded = decode(&bytes, 0, &topology).unwrap();
        assert_eq!(decoded.batch.samples, batch.samples);
        assert_eq!(decoded.unknown_tags, 0);
    }

    #[test]
    fn a_polls_sample_takes_its_attribute_name_and_a_few_bytes_beside_its_value() {
        let topology = topology(CONFIG);
        let level = topology.tag_by_path("acme/plant/area/tank-1/level").unwrap().id;
        let context = Arc::new(Context::default());
        let poll = |n: usize| Batch {
            samples: (0..n)
                .map(|i| Sample {
                    tag: level,
                    value: Some(Value::UInt(i as u64 % 100)),
                    quality: Quality::Good,
                    source_time: None,
                    gateway_time: Timestamp::from_unix_nanos(1_796_000_000_000_000_000),
                    context: context.clone(),
                })
                .collect(),
            events: Vec::new(),
        };
        let (mut one, mut many) = (Vec::new(), Vec::new());
        encode(&poll(1), &topology, &mut one);
        encode(&poll(126), &topology, &mut many);
        // Asset index, the attribute's length and name ("level"), flags, quality, time,
        // context, and the value (type and one byte): the asset's path and the time are
        // written once per record.
        assert_eq!((many.len() - one.len()) / 125, 1 + 1 + 5 + 1 + 1 + 1 + 1 + 2);
        assert_eq!(decode(&many, 0, &topology).unwrap().batch, poll(126));
    }

    #[test]
    fn samples_of_several_assets_in_any_order_keep_their_tags() {
        let config = CONFIG.replace(
            "[[sources]]",
            "[[assets]]\npath = \"area/tank-2\"\nmodel = \"Tank\"\n[[sources]]",
        );
        let topology = topology(&config);
        let template = batch(&topology).samples[0].clone();
        let tag = |path: &str| topology.tag_by_path(path).unwrap().id;
        let order = [
            "acme/plant/area/tank-1/level",
            "acme/plant/area/tank-2/name",
            "acme/plant/area/tank-1/name",
            "acme/plant/area/tank-2/level",
            "acme/plant/area/tank-1/level",
        ];
        let batch = Batch {
            samples: order
                .iter()
                .map(|path| Sample {
                    tag: tag(path),
                    ..template.clone()
                })
                .collect(),
            events: Vec::new(),
        };
        let mut bytes = Vec::new();
        encode(&batch, &topology, &mut bytes);
        let decoded = decode(&bytes, 0, &topology).unwrap();
        assert_eq!(decoded.batch, batch);
        assert_eq!(decoded.unknown_tags, 0);
        // Each asset's path is written once.
        let tank2 = b"acme/plant/area/tank-2";
        assert_eq!(bytes.windows(tank2.len()).filter(|w| w == tank2).count(), 1);
    }

    #[test]
    fn a_sample_of_a_tag_the_topology_lacks_is_written_as_unknown_and_skipped_on_reading() {
        let topology = topology(CONFIG);
        let mut batch = batch(&topology);
        batch.samples[1].tag = TagId(9_999);
        let mut bytes = Vec::new();
        encode(&batch, &topology, &mut bytes);
        let decoded = decode(&bytes, 0, &topology).unwrap();
        assert_eq!(decoded.unknown_tags, 1);
        assert_eq!(decoded.seqs, [0, 2, 3]);
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

    /// [`batch`] as the versions before format 3 wrote it (hex), taken from such a build.
    const FORMAT_2_RECORD: &[&str] = &[
        "02020504574f2d3103422d3700031c61636d652f706c616e742f617265612f74616e6b2d312f6c6576656c0300000000",
        "05000000000000000700000000000000000300000000004045401b61636d652f706c616e742f617265612f74616e6b2d",
        "312f6e616d6502000090400800000000000000000603040161010502091c61636d652f706c616e742f617265612f7461",
        "6e6b2d312f6c6576656c000000058009000000000000000101c3017b226173736574223a2261636d652f706c616e742f",
        "617265612f74616e6b2d31222c2274696d65223a22313937302d30312d30315430303a30303a30302e30303030303030",
        "315a222c226576656e74223a22636f6e746578745f6368616e676564222c226669656c64223a226261746368222c226f",
        "6c64223a6e756c6c2c226e6577223a22422d37222c226279223a22617069222c22636f6e74657874223a7b22776f726b",
        "5f6f72646572223a22574f2d31222c226261746368223a22422d37227d7d",
    ];

    fn unhex(parts: &[&str]) -> Vec<u8> {
        let hex: String = parts.concat();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Checks that a record an older version wrote (`hex`, in `format`) decodes to
    /// [`batch`], and that no truncation or byte flip of it panics; returns its bytes and
    /// what they decode to.
    fn an_older_record_decodes(hex: &[&str], format: u8) -> (Vec<u8>, Decoded) {
        let topology = topology(CONFIG);
        let batch = batch(&topology);
        let bytes = unhex(hex);
        assert_eq!(bytes[0], format);
        let decoded = decode(&bytes, 100, &topology).unwrap();
        assert_eq!(decoded.batch.samples, batch.samples);
        assert_eq!(decoded.batch.events, batch.events);
        assert_eq!(decoded.seqs, [100, 101, 102, 103]);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], 0, &topology).is_err(), "truncated to {len}");
        }
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x80;
            let _ = decode(&damaged, 0, &topology);
        }
        (bytes, decoded)
    }

    #[test]
    fn records_written_in_format_1_by_the_previous_version_still_decode() {
        let (bytes, decoded) = an_older_record_decodes(FORMAT_1_RECORD, 1);
        assert!(Arc::ptr_eq(
            &decoded.batch.samples[0].context,
            &decoded.batch.samples[1].context
        ));
        // This version writes format 3 only.
        let topology = topology(CONFIG);
        let mut written = Vec::new();
        encode(&batch(&topology), &topology, &mut written);
        assert_eq!(written[0], FORMAT);
        assert_ne!(written, bytes);
    }

    #[test]
    fn records_written_in_format_2_by_the_previous_version_still_decode() {
        let (bytes, _) = an_older_record_decodes(FORMAT_2_RECORD, 2);
        let topology = topology(CONFIG);
        let mut written = Vec::new();
        encode(&batch(&topology), &topology, &mut written);
        assert!(written.len() < bytes.len(), "format 3 is the smaller");
    }

    #[test]
    fn a_record_of_a_newer_format_is_refused_naming_both_versions() {
        let topology = topology(CONFIG);
        let mut bytes = Vec::new();
        encode(&batch(&topology), &topology, &mut bytes);
        for format in [0, 4, 255] {
            bytes[0] = format;
            let e = decode(&bytes, 0, &topology).unwrap_err();
            assert!(
                matches!(e, DecodeError::Format { found } if found == format),
                "{e:?}"
            );
            assert_eq!(
                e.to_string(),
                format!("buffer record in format {format}: this version reads formats 1 to 3")
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
