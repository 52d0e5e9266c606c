//! NATS sink publish throughput and edge-side CPU against a real nats-server: the sink's
//! own path (samples → payloads and message ids → JetStream publish → every publish ack →
//! log record acked), 100 assets × 10 attributes, deliveries of 1000 samples, for
//! `payload = "sample"` (one message per sample) and `payload = "batch"` (one message per
//! asset per delivery). Prints samples/s, messages/s and process CPU-seconds per million
//! samples: the edge's (user + system of this process, which is the sink and its NATS
//! client; building the deliveries is done before timing) and, when the server's process
//! can be found, nats-server's over the same interval, reported apart (it is not the
//! edge's cost, and a shared server also counts other clients' load).
//!
//!     cargo bench -p backplane-nats --bench nats_publish
//!
//! Server: nats://127.0.0.1:4222 (JetStream), or `BACKPLANE_BENCH_NATS_URL`. The bench
//! creates its own memory stream and deletes it afterwards. `BACKPLANE_BENCH_SAMPLES`
//! sets the number of samples per form (default 500000), `BACKPLANE_BENCH_FORMS` the forms
//! (default `sample,batch`), `BACKPLANE_BENCH_NATS_PID` the server's process id (default:
//! the `nats-server` process whose arguments hold the URL's port).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark binary: failing loudly is the point

#[path = "../tests/common/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

const ASSETS: usize = 100;
const ATTRIBUTES: usize = 10;

fn config(url: &str, stream: &str, prefix: &str, form: &str) -> String {
    let mut text = String::from(
        "[gateway]\nname = \"bench\"\n[namespace]\nenterprise = \"acme\"\nsite = \"plant\"\n[models.M.attributes]\n",
    );
    for a in 0..ATTRIBUTES {
        text.push_str(&format!("a{a} = {{ type = \"float\", unit = \"degC\" }}\n"));
    }
    text.push_str("[[assets]]\npath = \"area\"\nlevel = \"area\"\n");
    for i in 0..ASSETS {
        text.push_str(&format!("[[assets]]\npath = \"area/m-{i}\"\nmodel = \"M\"\n"));
    }
    text.push_str(&format!(
        "[[sinks]]\nname = \"js\"\nkind = \"nats\"\nurl = \"{url}\"\nprefix = \"{prefix}\"\npayload = \"{form}\"\nstream = {{ name = \"{stream}\", storage = \"memory\", max_bytes = \"2GiB\" }}\n"
    ));
    text
}

/// User + system CPU time of this process (Linux, 100 ticks per second).
fn cpu_time() -> Duration {
    process_cpu_time("self").unwrap_or_default()
}

/// User + system CPU time of a process by `/proc` entry (`self` or a pid).
fn process_cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Some(Duration::from_millis(ticks * 10))
}

/// The nats-server process serving `url`: `BACKPLANE_BENCH_NATS_PID`, else the only
/// `nats-server` whose arguments hold the URL's port.
fn server_pid(url: &str) -> Option<String> {
    if let Ok(pid) = std::env::var("BACKPLANE_BENCH_NATS_PID") {
        return Some(pid);
    }
    let port = url.rsplit_once(':')?.1.trim_end_matches('/').to_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_server = args.first().is_some_and(|a| a.ends_with(b"nats-server"));
        let serves_port = args
            .windows(2)
            .any(|w| matches!(w[0], b"-p" | b"--port") && w[1] == port.as_bytes());
        if is_server && serves_port {
            found.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    (found.len() == 1).then(|| found.remove(0))
}

async fn run(url: &str, form: &str, samples: usize, server: Option<&str>) {
    let id = std::process::id();
    let stream = format!("BENCH_{}_{id}", form.to_uppercase());
    let prefix = format!("bench{id}{form}");
    let h = harness::Harness::new(&config(url, &stream, &prefix, form));
    let per = ASSETS * ATTRIBUTES;
    let deliveries = samples / per;
    // Build the deliveries before timing: the engine's log would hand them over ready.
    let all: Vec<_> = (0..deliveries as u64)
        .map(|r| h.delivery(r + 1, r * per as u64 + 1, r as f64, false))
        .collect();
    let sink = h.sink();
    let feed = h.feed.clone();
    let task = tokio::spawn(sink.run(h.io.clone()));
    // Let it connect and create the stream.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu0 = cpu_time();
    let server0 = server.and_then(process_cpu_time);
    let t0 = Instant::now();
    for d in all {
        feed.push(d);
    }
    feed.close();
    task.await.unwrap().unwrap();
    let wall = t0.elapsed();
    let cpu = cpu_time() - cpu0;
    let server_cpu = server
        .and_then(process_cpu_time)
        .zip(server0)
        .map(|(t1, t0)| t1.saturating_sub(t0));
    assert_eq!(feed.acked().len(), deliveries, "every record acknowledged");
    let n = (deliveries * per) as f64;
    let messages = h.counters.get("messages_published") as f64;
    println!(
        "payload = {form:6}: {n:.0} samples in {:.2} s: {:.0} samples/s, {:.0} messages/s, {:.2} CPU-s per million samples (edge process)",
        wall.as_secs_f64(),
        n / wall.as_secs_f64(),
        messages / wall.as_secs_f64(),
        cpu.as_secs_f64() / (n / 1e6),
    );
    if let Some(server_cpu) = server_cpu {
        println!(
            "                 nats-server over the same interval: {:.2} CPU-s per million samples",
            server_cpu.as_secs_f64() / (n / 1e6)
        );
    }
    if let Ok(client) = async_nats::connect(url).await {
        let _ = async_nats::jetstream::new(client).delete_stream(&stream).await;
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let url = std::env::var("BACKPLANE_BENCH_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let samples: usize = std::env::var("BACKPLANE_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let forms = std::env::var("BACKPLANE_BENCH_FORMS").unwrap_or_else(|_| "sample,batch".into());
    let server = server_pid(&url);
    rt.block_on(async {
        for form in forms.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            run(&url, form, samples, server.as_deref()).await;
        }
    });
}
