//! One throughput point: device → source → pipeline → buffer → sink → broker → subscriber,
//! measured over a fixed window after a warm-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::child::Proc;
use crate::config::{Peers, Sink, Source, Tuning};
use crate::http;
use crate::procstat;
use crate::rig::{self, Subscriber, Workdir};
use crate::subscriber::Counts;

/// How a run measures, the same for every point.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bin: PathBuf,
    pub period: Duration,
    /// The Modbus source's `in_flight` and the gateway's `workers`.
    pub tuning: Tuning,
    pub warmup: Duration,
    pub window: Duration,
    pub dir: Option<PathBuf>,
    pub keep: bool,
    /// Run the gateway under callgrind, instrumented during the window only, and write
    /// the profile of each run to this directory.
    pub callgrind: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub tags: u32,
    pub source: Source,
    pub sink: Sink,
}

impl Point {
    /// `1000 tags, QoS 0, sample` for Modbus → UNS (the name the earlier figures have), the
    /// source and sink named otherwise: `1000 tags, opcua → sparkplug DDATA`.
    pub fn label(&self) -> String {
        let (tags, source) = (self.tags, self.source.name());
        match self.sink {
            Sink::Uns { qos, payload } if self.source == Source::Modbus => {
                format!("{tags} tags, QoS {qos}, {}", payload.name())
            }
            Sink::Uns { qos, payload } => {
                format!("{tags} tags, {source} → uns, QoS {qos}, {}", payload.name())
            }
            Sink::Sparkplug => format!("{tags} tags, {source} → sparkplug DDATA"),
        }
    }
}

/// What one run of a point measured. Rates are per second of the window; CPU shares are
/// of one core.
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    pub point: Point,
    pub window: f64,
    pub expected: f64,
    /// Samples the subscriber received per second (replays included).
    pub received: f64,
    pub messages: f64,
    /// Samples the broker confirmed to the gateway per second (written to the socket at QoS 0).
    pub acked: f64,
    pub gateway_cpu: f64,
    /// Gateway CPU-seconds per million samples received.
    pub cpu_per_million: f64,
    pub rss_mean: f64,
    /// The gateway's peak over its whole life, start-up included (`VmHWM`, or the largest
    /// RSS sampled if that is higher).
    pub rss_peak: f64,
    pub broker_cpu: f64,
    pub broker_rss_peak: f64,
    pub subscriber_cpu: f64,
    pub device_cpu: f64,
    /// Sparkplug: messages whose `seq` did not follow the last one, over the window.
    pub seq_gaps: f64,
    /// The sink's backlog at the end of the window, and its growth over the window.
    pub backlog: f64,
    pub backlog_growth: f64,
    pub replaying: bool,
    pub replayed: f64,
    pub dropped: f64,
    /// Sampled delay from `gateway_time` to the subscriber, milliseconds.
    pub delay_p50: f64,
    pub delay_p99: f64,
    /// Under callgrind: the gateway's instructions in the window per sample received.
    pub instructions_per_sample: Option<f64>,
    /// The gateway's own delay from a sample's reading (the device's answer) to the
    /// socket write of its message, milliseconds, from its `device_to_socket` histogram
    /// (UNS sink only).
    pub socket_p50: Option<f64>,
    pub socket_p99: Option<f64>,
    /// Share of the gateway's CPU time spent in the kernel (system time).
    pub kernel_share: f64,
}

struct Snapshot {
    at: Instant,
    gateway: f64,
    gateway_kernel: f64,
    /// The sink's `device_to_socket` histogram buckets.
    socket: Vec<(f64, f64)>,
    broker: f64,
    subscriber: f64,
    device: f64,
    counts: Counts,
    acked: f64,
    backlog: f64,
}

struct Running {
    device: Proc,
    broker: Proc,
    subscriber: Subscriber,
    gateway: Proc,
    api: SocketAddr,
    profiled: bool,
    /// The sink's name, as `/metrics` and health label it.
    sink: &'static str,
}

impl Running {
    /// The figures now; `mark` starts the subscriber's delays afresh.
    fn snapshot(&mut self, mark: bool) -> Result<Snapshot, String> {
        let cpu = |p: &Proc| procstat::cpu_seconds(p.pid()).ok_or_else(|| format!("{} is gone", p.name));
        let metrics = http::get(self.api, "/metrics")?;
        let label = format!("name=\"{}\"", self.sink);
        let (user, kernel) = procstat::cpu_split(self.gateway.pid())
            .ok_or_else(|| format!("{} is gone", self.gateway.name))?;
        Ok(Snapshot {
            at: Instant::now(),
            gateway: user + kernel,
            gateway_kernel: kernel,
            socket: http::buckets(
                &metrics,
                "backplane_component_delay_seconds",
                &format!("{label},what=\"device_to_socket\""),
            ),
            broker: cpu(&self.broker)?,
            subscriber: cpu(&self.subscriber.proc)?,
            device: cpu(&self.device)?,
            counts: if mark {
                self.subscriber.mark()?
            } else {
                self.subscriber.snap()?
            },
            acked: http::metric(&metrics, "backplane_buffer_acked_total", &label),
            backlog: http::metric(&metrics, "backplane_buffer_backlog_samples", &label),
        })
    }

    fn stop(&mut self) {
        if self.profiled {
            rig::stop_profiled(&mut self.gateway);
        } else {
            rig::stop(&mut self.gateway);
        }
        self.subscriber.stop();
        rig::stop(&mut self.broker);
        rig::stop(&mut self.device);
    }
}

/// Runs `point` once and returns its figures.
pub fn run(settings: &Settings, point: Point) -> Result<Figures, String> {
    let workdir = Workdir::new(settings.dir.as_deref(), settings.keep)?;
    let (device, device_port) = rig::start_device(&workdir, point.source, point.tags, settings.period)?;
    let (broker, broker_port) = crate::broker::start(workdir.path())?;
    let subscriber = Subscriber::start(&workdir, broker_port, point.sink)?;
    let text = crate::config::gateway(
        point.tags,
        settings.period,
        point.source,
        point.sink,
        Peers {
            device: device_port,
            broker: broker_port,
        },
        settings.tuning,
        &workdir.path().join("data"),
    );
    let config_path = workdir.path().join("gateway.toml");
    std::fs::write(&config_path, text).map_err(|e| format!("writing the configuration: {e}"))?;
    let profile = settings
        .callgrind
        .as_ref()
        .map(|dir| dir.join(format!("callgrind.out.{}", profile_name(point))));
    let (gateway, api) = rig::start_gateway(&settings.bin, &config_path, &workdir, profile.as_deref())?;
    let mut running = Running {
        device,
        broker,
        subscriber,
        gateway,
        api,
        profiled: profile.is_some(),
        sink: point.sink.name(),
    };
    let figures = measure(settings, point, &mut running);
    running.stop();
    let mut figures = figures?;
    if let Some(profile) = profile {
        let text = std::fs::read_to_string(&profile)
            .map_err(|e| format!("callgrind profile {}: {e}", profile.display()))?;
        let total = crate::callgrind::total_instructions(&text)
            .ok_or_else(|| format!("no totals in {}", profile.display()))?;
        let samples = figures.received * figures.window;
        figures.instructions_per_sample = (samples > 0.0).then(|| total as f64 / samples);
        println!("callgrind profile of the window: {}", profile.display());
    }
    Ok(figures)
}

/// `10000-modbus-qos0-sample-<time>`, `10000-opcua-sparkplug-<time>`: one file per run.
fn profile_name(point: Point) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let sink = match point.sink {
        Sink::Uns { qos, payload } => format!("qos{qos}-{}", payload.name()),
        Sink::Sparkplug => "sparkplug".to_owned(),
    };
    format!("{}-{}-{sink}-{now}", point.tags, point.source.name())
}

fn measure(settings: &Settings, point: Point, running: &mut Running) -> Result<Figures, String> {
    // The first sample at the subscriber, then the warm-up (start-up snapshot, caches).
    let deadline = Instant::now() + Duration::from_secs(120) + settings.period * 2;
    while running.subscriber.snap()?.samples == 0 {
        running.gateway.check_running()?;
        if Instant::now() > deadline {
            return Err("no sample reached the subscriber within 2 minutes (--keep keeps the logs)".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(settings.warmup);

    running.subscriber.quiet_moment(settings.period)?;
    if running.profiled {
        crate::callgrind::instrument(running.gateway.pid(), true)?;
    }
    let before = running.snapshot(true)?;
    let cycles = (settings.window.as_secs_f64() / settings.period.as_secs_f64())
        .round()
        .max(1.0);
    let end = before.at + settings.period.mul_f64(cycles);
    let mut rss = Vec::new();
    let mut broker_peak = 0u64;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(250).min(end.saturating_duration_since(Instant::now())));
        let memory = procstat::memory(running.gateway.pid()).ok_or("the gateway is gone")?;
        rss.push(memory.rss as f64);
        if let Some(m) = procstat::memory(running.broker.pid()) {
            broker_peak = broker_peak.max(m.rss);
        }
    }
    let after = running.snapshot(false)?;
    if running.profiled {
        crate::callgrind::instrument(running.gateway.pid(), false)?;
    }
    // The kernel updates VmHWM lazily (at unmaps and exit), so it can lag the RSS seen.
    let sampled = rss.iter().copied().fold(0.0, f64::max);
    let peak = procstat::memory(running.gateway.pid())
        .map_or(0.0, |m| m.peak as f64)
        .max(sampled);
    let health = http::get(running.api, "/api/v1/health")?;
    let buffer = serde_json::from_str::<serde_json::Value>(&health)
        .ok()
        .and_then(|h| {
            h.get("buffers")?
                .as_array()?
                .iter()
                .find(|b| b.get("sink").and_then(|s| s.as_str()) == Some(point.sink.name()))
                .cloned()
        })
        .unwrap_or_default();

    let dt = after.at.duration_since(before.at).as_secs_f64();
    let samples = (after.counts.samples - before.counts.samples) as f64;
    let gateway_cpu = after.gateway - before.gateway;
    let share = |a: f64, b: f64| (b - a) / dt;
    Ok(Figures {
        point,
        window: dt,
        expected: f64::from(point.tags) / settings.period.as_secs_f64(),
        received: samples / dt,
        messages: (after.counts.messages - before.counts.messages) as f64 / dt,
        acked: share(before.acked, after.acked),
        gateway_cpu: gateway_cpu / dt,
        cpu_per_million: if samples > 0.0 {
            gateway_cpu / samples * 1e6
        } else {
            f64::NAN
        },
        rss_mean: rss.iter().sum::<f64>() / rss.len().max(1) as f64,
        rss_peak: peak,
        broker_cpu: share(before.broker, after.broker),
        broker_rss_peak: broker_peak as f64,
        subscriber_cpu: share(before.subscriber, after.subscriber),
        device_cpu: share(before.device, after.device),
        backlog: after.backlog,
        backlog_growth: after.backlog - before.backlog,
        replaying: buffer.get("replaying").and_then(|r| r.as_bool()).unwrap_or(false),
        replayed: (after.counts.replayed - before.counts.replayed) as f64,
        seq_gaps: (after.counts.gaps - before.counts.gaps) as f64,
        dropped: buffer.get("dropped").and_then(|d| d.as_f64()).unwrap_or(0.0),
        delay_p50: after.counts.delays.p50 as f64 / 1000.0,
        delay_p99: after.counts.delays.p99 as f64 / 1000.0,
        instructions_per_sample: None,
        socket_p50: http::quantile(&before.socket, &after.socket, 0.5).map(|s| s * 1000.0),
        socket_p99: http::quantile(&before.socket, &after.socket, 0.99).map(|s| s * 1000.0),
        kernel_share: if gateway_cpu > 0.0 {
            (after.gateway_kernel - before.gateway_kernel) / gateway_cpu
        } else {
            f64::NAN
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Payload;

    #[test]
    fn a_point_names_its_source_and_sink_unless_it_is_modbus_to_uns() {
        let uns = Sink::Uns {
            qos: 1,
            payload: Payload::Instance,
        };
        let point = |source, sink| Point {
            tags: 1000,
            source,
            sink,
        };
        assert_eq!(point(Source::Modbus, uns).label(), "1000 tags, QoS 1, instance");
        assert_eq!(
            point(Source::Opcua, uns).label(),
            "1000 tags, opcua → uns, QoS 1, instance"
        );
        assert_eq!(
            point(Source::Modbus, Sink::Sparkplug).label(),
            "1000 tags, modbus → sparkplug DDATA"
        );
        assert_eq!(
            point(Source::OpcuaPoll, Sink::Sparkplug).label(),
            "1000 tags, opcua-poll → sparkplug DDATA"
        );
    }
}
