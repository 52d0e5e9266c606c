//! The memory point: what the gateway holds for N tags before any data arrives, with the
//! device and the broker unreachable (their ports have nothing listening).

use std::time::{Duration, Instant};

use crate::broker::free_port;
use crate::config::{self, Payload, Peers, Sink, Source};
use crate::procstat;
use crate::rig::{self, Workdir};
use crate::throughput::Settings;

/// Resident memory of a gateway with `tags` tags and no data, bytes.
#[derive(Debug, Clone, Copy)]
pub struct Footprint {
    pub tags: u32,
    /// Mean `VmRSS` over the sampling after the settle time.
    pub rss: f64,
    /// The peak over its life, start-up (reading the configuration) included: `VmHWM`, or
    /// the largest RSS sampled if the kernel has not updated that yet.
    pub peak: f64,
}

/// Starts the gateway on `tags` unreachable tags, waits `settle`, then samples its RSS.
pub fn run(settings: &Settings, tags: u32, settle: Duration) -> Result<Footprint, String> {
    let workdir = Workdir::new(settings.dir.as_deref(), settings.keep)?;
    let peers = Peers {
        device: free_port()?,
        broker: free_port()?,
    };
    let text = config::gateway(
        tags,
        settings.period,
        Source::Modbus,
        Sink::Uns {
            qos: 0,
            payload: Payload::Sample,
        },
        peers,
        settings.tuning,
        &workdir.path().join("data"),
    );
    let config_path = workdir.path().join("gateway.toml");
    std::fs::write(&config_path, text).map_err(|e| format!("writing the configuration: {e}"))?;
    let (mut gateway, _api) = rig::start_gateway(&settings.bin, &config_path, &workdir, None)?;
    std::thread::sleep(settle);
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        gateway.check_running()?;
        let m = procstat::memory(gateway.pid()).ok_or("the gateway is gone")?;
        samples.push(m.rss as f64);
        std::thread::sleep(Duration::from_millis(250));
    }
    // The kernel updates VmHWM lazily, so it can lag the RSS seen.
    let sampled = samples.iter().copied().fold(0.0, f64::max);
    let peak = procstat::memory(gateway.pid())
        .map_or(0.0, |m| m.peak as f64)
        .max(sampled);
    rig::stop(&mut gateway);
    Ok(Footprint {
        tags,
        rss: samples.iter().sum::<f64>() / samples.len().max(1) as f64,
        peak,
    })
}
