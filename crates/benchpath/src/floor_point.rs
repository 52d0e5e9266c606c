//! One floor point: the device, the broker and the subscriber of a throughput point, with
//! `floor-gateway` ([`crate::floor`]) in the gateway's place, measured the same way: its
//! CPU over whole poll periods after a warm-up, per million samples the subscriber received.

use std::time::{Duration, Instant};

use crate::config::{Payload, Sink, Source};
use crate::procstat;
use crate::rig::{self, Subscriber, Workdir};
use crate::throughput::Settings;

#[derive(Debug, Clone, Copy)]
pub struct FloorFigures {
    pub tags: u32,
    pub payload: Payload,
    pub expected: f64,
    /// Samples the subscriber received per second.
    pub received: f64,
    pub cpu_per_million: f64,
    pub kernel_share: f64,
    pub device_cpu: f64,
    pub broker_cpu: f64,
}

impl FloorFigures {
    pub fn line(&self, run: usize, runs: usize) -> String {
        format!(
            "floor, {} tags, QoS 0, {} (run {run}/{runs}): {:.0} of {:.0} samples/s, {:.2} CPU-s per 1M samples ({:.0} % in the kernel); device {:.1} %, broker {:.1} % of a core",
            self.tags,
            self.payload.name(),
            self.received,
            self.expected,
            self.cpu_per_million,
            self.kernel_share * 100.0,
            self.device_cpu * 100.0,
            self.broker_cpu * 100.0,
        )
    }
}

struct Snap {
    at: Instant,
    /// The floor's user and kernel seconds, in ticks.
    split: (f64, f64),
    /// The floor's CPU seconds, to the nanosecond.
    run: f64,
    device: f64,
    broker: f64,
    samples: u64,
}

pub fn run(settings: &Settings, tags: u32, payload: Payload) -> Result<FloorFigures, String> {
    let workdir = Workdir::new(settings.dir.as_deref(), settings.keep)?;
    let (mut device, device_port) = rig::start_device(&workdir, Source::Modbus, tags, settings.period)?;
    let (mut broker, broker_port) = crate::broker::start(workdir.path())?;
    let sink = Sink::Uns { qos: 0, payload };
    let mut subscriber = Subscriber::start(&workdir, broker_port, sink)?;
    let mut floor = rig::start_floor(&workdir, device_port, broker_port, tags, payload, settings.period)?;

    let deadline = Instant::now() + Duration::from_secs(30) + settings.period * 2;
    while subscriber.snap()?.samples == 0 {
        floor.check_running()?;
        if Instant::now() > deadline {
            return Err("no sample reached the subscriber within 30 s (--keep keeps the logs)".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(settings.warmup);
    subscriber.quiet_moment(settings.period)?;

    let snapshot = |subscriber: &mut Subscriber| -> Result<Snap, String> {
        let gone = || "the floor is gone".to_owned();
        Ok(Snap {
            at: Instant::now(),
            split: procstat::cpu_split(floor.pid()).ok_or_else(gone)?,
            run: procstat::run_seconds(floor.pid()).ok_or_else(gone)?,
            device: procstat::cpu_seconds(device.pid()).unwrap_or(0.0),
            broker: procstat::cpu_seconds(broker.pid()).unwrap_or(0.0),
            samples: subscriber.snap()?.samples,
        })
    };
    let before = snapshot(&mut subscriber)?;
    let cycles = (settings.window.as_secs_f64() / settings.period.as_secs_f64())
        .round()
        .max(1.0);
    std::thread::sleep(settings.period.mul_f64(cycles));
    let after = snapshot(&mut subscriber)?;
    floor.check_running()?;

    let seconds = (after.at - before.at).as_secs_f64();
    // The total from the scheduler's nanoseconds; only the split from 10 ms ticks.
    let run = after.run - before.run;
    let (user, kernel) = (after.split.0 - before.split.0, after.split.1 - before.split.1);
    let samples = after.samples.saturating_sub(before.samples) as f64;
    let figures = FloorFigures {
        tags,
        payload,
        expected: f64::from(tags) / settings.period.as_secs_f64(),
        received: samples / seconds,
        cpu_per_million: if samples > 0.0 {
            run / samples * 1e6
        } else {
            f64::NAN
        },
        kernel_share: if user + kernel > 0.0 {
            kernel / (user + kernel)
        } else {
            0.0
        },
        device_cpu: (after.device - before.device) / seconds,
        broker_cpu: (after.broker - before.broker) / seconds,
    };
    rig::stop(&mut floor);
    subscriber.stop();
    rig::stop(&mut broker);
    rig::stop(&mut device);
    Ok(figures)
}
