//! The consumer: subscribes to the namespace and counts messages, the samples in them and
//! the replayed ones, and samples the delay from a value's `gateway_time` to its arrival.
//! For Sparkplug B it counts the metrics of DDATA messages (births carry no new values),
//! the `is_historical` ones as replayed, gaps in `seq`, and takes the delay from the first
//! metric's timestamp (source time, else gateway time; milliseconds).
//!
//! It runs as its own process (the benchmark binary's `subscribe` subcommand) so its CPU
//! is measured apart from the gateway's. It speaks on stdin/stdout: `subscribed` once the
//! broker confirmed the subscription, then one `snap ...` line (see [`Counts`]) for each
//! line read from stdin: the delays measured since the last `mark` line (a `mark` line
//! starts a new set of delays after answering).

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Delays of one per-sample message in this many are measured (parsing every timestamp
/// would make the subscriber a bottleneck sooner); of every instance message (few).
const LATENCY_EVERY: u64 = 8;
/// At most this many delays are kept between two snapshots.
const LATENCY_CAP: usize = 2_000_000;

/// What the subscriber reads: the UNS JSON of the `mqtt` sink or the `sparkplug` sink's
/// protobuf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Uns,
    Sparkplug,
}

#[derive(Debug, Default)]
struct Shared {
    messages: AtomicU64,
    samples: AtomicU64,
    replayed: AtomicU64,
    /// Sparkplug messages whose `seq` was not the last one's + 1 (mod 256).
    gaps: AtomicU64,
    /// Microseconds from `gateway_time` to arrival, since the last snapshot.
    delays: Mutex<Vec<u64>>,
}

/// Runs until stdin or the connection closes.
pub fn run(port: u16, topic: &str, format: Format) -> Result<(), String> {
    let shared = Arc::new(Shared::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    {
        let shared = shared.clone();
        std::thread::spawn(move || report(&shared));
    }
    runtime.block_on(receive(port, topic.to_owned(), format, shared))
}

async fn receive(port: u16, topic: String, format: Format, shared: Arc<Shared>) -> Result<(), String> {
    let mut options = MqttOptions::new(
        format!("bench-path-sub-{}", std::process::id()),
        "127.0.0.1",
        port,
    );
    options.set_keep_alive(Duration::from_secs(30));
    options.set_clean_session(true);
    // An instance message of 125 attributes is about 20 KB, above rumqttc's 10 KiB default.
    options.set_max_packet_size(16 << 20, 16 << 20);
    let (client, mut events) = AsyncClient::new(options, 16);
    // QoS 0 whatever the gateway publishes with: the QoS measured is the gateway's leg to
    // the broker; a QoS 1 subscription would add the broker's own window to this leg.
    client
        .subscribe(topic, QoS::AtMostOnce)
        .await
        .map_err(|e| format!("subscribe: {e}"))?;
    let mut seen: u64 = 0;
    let mut last_seq: Option<u64> = None;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::SubAck(_))) => say("subscribed"),
            Ok(Event::Incoming(Packet::Publish(publish))) if format == Format::Sparkplug => {
                sparkplug_message(&publish.topic, &publish.payload, &mut last_seq, &shared);
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                seen += 1;
                let payload = &publish.payload[..];
                let instance = publish.topic.ends_with("/_instance");
                let samples = if instance {
                    count(payload, b"\"quality\":")
                } else {
                    1
                };
                shared.messages.fetch_add(1, Ordering::Relaxed);
                shared.samples.fetch_add(samples, Ordering::Relaxed);
                if find(payload, b"\"replay\":true").is_some() {
                    shared.replayed.fetch_add(samples, Ordering::Relaxed);
                }
                if (instance || seen.is_multiple_of(LATENCY_EVERY))
                    && let Some(delay) = delay_micros(payload)
                    && let Ok(mut delays) = shared.delays.lock()
                    && delays.len() < LATENCY_CAP
                {
                    delays.push(delay);
                }
            }
            Ok(_) => {}
            Err(e) => return Err(format!("connection to the broker: {e}")),
        }
    }
}

/// One Sparkplug message: every one with a `seq` is checked for gaps; DDATA are counted.
fn sparkplug_message(topic: &str, payload: &[u8], last_seq: &mut Option<u64>, shared: &Shared) {
    let Some(summary) = crate::sparkplug::summarize(payload) else {
        eprintln!("subscriber: {topic}: not a protobuf payload");
        return;
    };
    if let Some(seq) = summary.seq {
        // An NBIRTH starts again at 0; anything else follows the last message.
        let birth = topic.contains("/NBIRTH/");
        if !birth && last_seq.is_some_and(|last| seq != (last + 1) % 256) {
            shared.gaps.fetch_add(1, Ordering::Relaxed);
        }
        *last_seq = Some(seq);
    }
    if !topic.contains("/DDATA/") {
        return;
    }
    shared.messages.fetch_add(1, Ordering::Relaxed);
    shared.samples.fetch_add(summary.metrics, Ordering::Relaxed);
    shared.replayed.fetch_add(summary.historical, Ordering::Relaxed);
    if let Some(at) = summary.first_metric_timestamp.or(summary.timestamp) {
        let now = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000;
        if let Ok(delay) = u64::try_from(now - i128::from(at) * 1_000)
            && let Ok(mut delays) = shared.delays.lock()
            && delays.len() < LATENCY_CAP
        {
            delays.push(delay);
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Answers each line on stdin with the counts so far; returns when stdin closes.
fn report(shared: &Shared) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else {
            break;
        };
        let delays = shared
            .delays
            .lock()
            .map(|mut d| {
                if line == "mark" {
                    std::mem::take(&mut *d)
                } else {
                    d.clone()
                }
            })
            .unwrap_or_default();
        let counts = Counts {
            messages: shared.messages.load(Ordering::Relaxed),
            samples: shared.samples.load(Ordering::Relaxed),
            replayed: shared.replayed.load(Ordering::Relaxed),
            gaps: shared.gaps.load(Ordering::Relaxed),
            delays: Delays::of(delays),
        };
        say(&counts.to_line());
    }
    // The benchmark closed our stdin: it is done with us.
    std::process::exit(0);
}

/// What the subscriber has seen since it started; the delays since the last mark.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Counts {
    pub messages: u64,
    pub samples: u64,
    pub replayed: u64,
    pub gaps: u64,
    pub delays: Delays,
}

/// Percentiles of the sampled delays, microseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Delays {
    pub measured: u64,
    pub p50: u64,
    pub p99: u64,
    pub max: u64,
}

impl Delays {
    fn of(mut delays: Vec<u64>) -> Delays {
        if delays.is_empty() {
            return Delays::default();
        }
        delays.sort_unstable();
        let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
        Delays {
            measured: delays.len() as u64,
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

impl Counts {
    pub fn to_line(self) -> String {
        format!(
            "snap {} {} {} {} {} {} {} {}",
            self.messages,
            self.samples,
            self.replayed,
            self.gaps,
            self.delays.measured,
            self.delays.p50,
            self.delays.p99,
            self.delays.max
        )
    }

    pub fn parse(line: &str) -> Option<Counts> {
        let mut fields = line
            .strip_prefix("snap ")?
            .split(' ')
            .map(|f| f.parse::<u64>().ok());
        let mut next = || fields.next().flatten();
        Some(Counts {
            messages: next()?,
            samples: next()?,
            replayed: next()?,
            gaps: next()?,
            delays: Delays {
                measured: next()?,
                p50: next()?,
                p99: next()?,
                max: next()?,
            },
        })
    }
}

/// Microseconds from the payload's first `gateway_time` (a sample's, or an instance's
/// newest) to now; none when absent, unreadable or in the future (clock steps).
fn delay_micros(payload: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"gateway_time\":\"";
    let start = find(payload, KEY)? + KEY.len();
    let end = start + payload[start..].iter().position(|&b| b == b'"')?;
    let text = std::str::from_utf8(&payload[start..end]).ok()?;
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    let delay = OffsetDateTime::now_utc() - at;
    u64::try_from(delay.whole_microseconds()).ok()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn count(haystack: &[u8], needle: &[u8]) -> u64 {
    let mut n = 0;
    let mut rest = haystack;
    while let Some(at) = find(rest, needle) {
        n += 1;
        rest = &rest[at + needle.len()..];
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_counts_one_sample_per_attribute() {
        let payload = br#"{"kind":"instance","asset":"a","model":"M","gateway_time":"2026-01-01T00:00:00Z","context":{},"attributes":{"r000":{"value":1,"type":"uint","quality":"good","gateway_time":"2026-01-01T00:00:00Z"},"r001":{"value":2,"type":"uint","quality":"good","gateway_time":"2026-01-01T00:00:00Z"}}}"#;
        assert_eq!(count(payload, b"\"quality\":"), 2);
        assert_eq!(count(b"{}", b"\"quality\":"), 0);
    }

    #[test]
    fn the_delay_is_read_from_the_gateway_time() {
        let then = OffsetDateTime::now_utc() - time::Duration::milliseconds(1500);
        let payload = format!(
            r#"{{"kind":"sample","value":1,"quality":"good","gateway_time":"{}","context":{{}}}}"#,
            then.format(&Rfc3339).unwrap()
        );
        let delay = delay_micros(payload.as_bytes()).unwrap();
        assert!((1_500_000..60_000_000).contains(&delay), "{delay}");
        assert_eq!(delay_micros(br#"{"gateway_time":"not a time"}"#), None);
        assert_eq!(delay_micros(br#"{"gateway_time":"2026-01-01T00:00:00Z"#), None);
    }

    #[test]
    fn counts_survive_their_line() {
        let counts = Counts {
            messages: 10,
            samples: 1250,
            replayed: 3,
            gaps: 2,
            delays: Delays::of(vec![5, 1, 9, 7, 3]),
        };
        assert_eq!(counts.delays.p50, 5);
        assert_eq!(counts.delays.max, 9);
        assert_eq!(Counts::parse(&counts.to_line()), Some(counts));
        assert_eq!(Counts::parse("subscribed"), None);
        assert_eq!(Counts::parse("snap 1 2"), None);
    }

    #[test]
    fn sparkplug_ddata_metrics_are_counted_and_a_missing_seq_is_a_gap() {
        use crate::sparkplug::tests::{metric, payload};
        let shared = Shared::default();
        let mut last = None;
        let now_ms = u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap();
        let ddata = |seq, historical| {
            payload(
                &[
                    metric(16, now_ms - 250, historical),
                    metric(17, now_ms, historical),
                ],
                seq,
            )
        };
        let node = "spBv1.0/bench/NBIRTH/gateway";
        let device = "spBv1.0/bench/DBIRTH/gateway/area.b00000";
        let data = "spBv1.0/bench/DDATA/gateway/area.b00000";
        sparkplug_message(node, &payload(&[], 0), &mut last, &shared);
        sparkplug_message(
            device,
            &payload(&[metric(16, now_ms, false)], 1),
            &mut last,
            &shared,
        );
        sparkplug_message(data, &ddata(2, false), &mut last, &shared);
        // seq 3 lost.
        sparkplug_message(data, &ddata(4, true), &mut last, &shared);
        sparkplug_message(data, b"\xff", &mut last, &shared);
        assert_eq!(shared.messages.load(Ordering::Relaxed), 2, "births are not data");
        assert_eq!(shared.samples.load(Ordering::Relaxed), 4);
        assert_eq!(shared.replayed.load(Ordering::Relaxed), 2);
        assert_eq!(shared.gaps.load(Ordering::Relaxed), 1);
        let delays = shared.delays.lock().unwrap().clone();
        assert_eq!(delays.len(), 2);
        assert!(
            delays.iter().all(|d| (250_000..60_000_000).contains(d)),
            "{delays:?}"
        );
        // A rebirth starts seq again at 0 without a gap.
        sparkplug_message(node, &payload(&[], 0), &mut last, &shared);
        sparkplug_message(data, &ddata(1, false), &mut last, &shared);
        assert_eq!(shared.gaps.load(Ordering::Relaxed), 1);
    }
}
