//! Printing: one line per run as it finishes, then Markdown tables with the range of each
//! figure over the repeats (the form docs/performance.md records).

use crate::config::Sink;
use crate::memory::Footprint;
use crate::throughput::{Figures, Point};

const MB: f64 = 1e6;

/// Below this share of the expected rate a leg counts as behind (windows hold whole poll
/// cycles, so a path that keeps up is within a fraction of a percent).
const KEEPS_UP: f64 = 0.98;

/// Whether the whole path keeps up and, if not, which leg is behind: the gateway's leg to
/// the broker (the broker confirmed less than is polled; the backlog grows), or the
/// broker's leg to the subscriber (the broker confirmed it all but passed on less: it
/// queues, and its RSS grows).
pub fn limit(f: &Figures) -> &'static str {
    if f.received >= KEEPS_UP * f.expected {
        "keeps up"
    } else if f.acked < KEEPS_UP * f.expected {
        "gateway → broker behind"
    } else {
        "broker → subscriber behind"
    }
}

/// One run's figures on one line.
pub fn run_line(f: &Figures, run: usize, runs: usize) -> String {
    format!(
        "{} (run {run}/{runs}, {:.1} s): {}: {:.0} of {:.0} samples/s received ({:.0} msg/s; broker confirmed {:.0}/s); \
         gateway {:.2} CPU-s per 1M samples ({:.1} % of a core), RSS mean {:.1} MB, peak {:.1} MB; \
         broker {:.1} % (RSS up to {:.1} MB), subscriber {:.1} %, device {:.1} %; \
         backlog {:.0} ({:+.0} over the window){}, replayed {:.0}, dropped {:.0}{}; \
         delay {}→subscriber p50 {:.1} ms, p99 {:.1} ms; device answer→socket write p50 {}, p99 {} ms; \
         gateway CPU {:.0} % in the kernel{}",
        f.point.label(),
        f.window,
        limit(f),
        f.received,
        f.expected,
        f.messages,
        f.acked,
        f.cpu_per_million,
        f.gateway_cpu * 100.0,
        f.rss_mean / MB,
        f.rss_peak / MB,
        f.broker_cpu * 100.0,
        f.broker_rss_peak / MB,
        f.subscriber_cpu * 100.0,
        f.device_cpu * 100.0,
        f.backlog,
        f.backlog_growth,
        if f.replaying { ", replaying" } else { "" },
        f.replayed,
        f.dropped,
        if f.point.sink == Sink::Sparkplug {
            format!(", seq gaps {:.0}", f.seq_gaps)
        } else {
            String::new()
        },
        if f.point.sink == Sink::Sparkplug {
            "metric timestamp"
        } else {
            "gateway_time"
        },
        f.delay_p50,
        f.delay_p99,
        opt_ms(f.socket_p50),
        opt_ms(f.socket_p99),
        f.kernel_share * 100.0,
        f.instructions_per_sample
            .map(|i| format!("; callgrind: {i:.0} gateway instructions per sample"))
            .unwrap_or_default(),
    )
}

/// Milliseconds with two decimals, `–` when not measured.
fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"))
}

/// `a` or `a–b` over the values, with `decimals` digits.
pub fn range(values: &[f64], decimals: usize) -> String {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return "–".to_owned();
    }
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (a, b) = (format!("{lo:.decimals$}"), format!("{hi:.decimals$}"));
    if a == b { a } else { format!("{a}–{b}") }
}

/// The throughput table: one row per point, ranges over its runs.
pub fn throughput_table(points: &[Point], runs: &[Figures]) -> String {
    let mut out = String::from(
        "| point | expected samples/s | received samples/s | gateway CPU-s per 1M samples | gateway CPU % | \
         gateway RSS mean / peak MB | broker CPU % | subscriber CPU % | device CPU % | backlog growth | \
         delay p50 / p99 ms | device answer → socket write p50 / p99 ms | gateway CPU in kernel % | runs |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for point in points {
        let of: Vec<&Figures> = runs.iter().filter(|f| f.point == *point).collect();
        if of.is_empty() {
            continue;
        }
        let col = |get: fn(&Figures) -> f64, scale: f64, decimals: usize| {
            range(&of.iter().map(|f| get(f) * scale).collect::<Vec<_>>(), decimals)
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} / {} | {} / {} | {} | {} |\n",
            point.label(),
            col(|f| f.expected, 1.0, 0),
            col(|f| f.received, 1.0, 0),
            col(|f| f.cpu_per_million, 1.0, 2),
            col(|f| f.gateway_cpu, 100.0, 1),
            col(|f| f.rss_mean, 1.0 / MB, 1),
            col(|f| f.rss_peak, 1.0 / MB, 1),
            col(|f| f.broker_cpu, 100.0, 1),
            col(|f| f.subscriber_cpu, 100.0, 1),
            col(|f| f.device_cpu, 100.0, 1),
            col(|f| f.backlog_growth, 1.0, 0),
            col(|f| f.delay_p50, 1.0, 1),
            col(|f| f.delay_p99, 1.0, 1),
            col(|f| f.socket_p50.unwrap_or(f64::NAN), 1.0, 2),
            col(|f| f.socket_p99.unwrap_or(f64::NAN), 1.0, 2),
            col(|f| f.kernel_share, 100.0, 0),
            limits(&of),
        ));
    }
    out
}

/// How many runs, and each distinct [`limit`] verdict with its count.
fn limits(of: &[&Figures]) -> String {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for f in of {
        match seen.iter_mut().find(|(l, _)| *l == limit(f)) {
            Some((_, n)) => *n += 1,
            None => seen.push((limit(f), 1)),
        }
    }
    let parts: Vec<String> = seen.iter().map(|(l, n)| format!("{n}× {l}")).collect();
    parts.join(", ")
}

/// The memory table; per tag is measured against the smallest point.
pub fn memory_table(runs: &[Footprint]) -> String {
    let mut tags: Vec<u32> = runs.iter().map(|f| f.tags).collect();
    tags.sort_unstable();
    tags.dedup();
    let mean = |t: u32, get: fn(&Footprint) -> f64| {
        let of: Vec<f64> = runs.iter().filter(|f| f.tags == t).map(get).collect();
        of.iter().sum::<f64>() / of.len().max(1) as f64
    };
    let base = tags.first().copied();
    let mut out = String::from(
        "| tags | RSS MB (before any data) | peak RSS MB (start-up) | RSS per tag above the smallest point |\n\
         |---|---|---|---|\n",
    );
    for &t in &tags {
        let of: Vec<&Footprint> = runs.iter().filter(|f| f.tags == t).collect();
        let per_tag = match base {
            Some(b) if t > b => {
                let bytes = (mean(t, |f| f.rss) - mean(b, |f| f.rss)) / f64::from(t - b);
                format!("{bytes:.0} B (vs {b} tags)")
            }
            _ => "base".to_owned(),
        };
        out.push_str(&format!(
            "| {t} | {} | {} | {per_tag} |\n",
            range(&of.iter().map(|f| f.rss / MB).collect::<Vec<_>>(), 1),
            range(&of.iter().map(|f| f.peak / MB).collect::<Vec<_>>(), 1),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_shows_one_value_when_the_runs_agree() {
        assert_eq!(range(&[5.61, 6.3], 1), "5.6–6.3");
        assert_eq!(range(&[5.61, 5.64], 1), "5.6");
        assert_eq!(range(&[f64::NAN, 2.0], 0), "2");
        assert_eq!(range(&[], 0), "–");
    }

    fn figures(expected: f64, acked: f64, received: f64) -> Figures {
        Figures {
            point: Point {
                tags: 1000,
                source: crate::config::Source::Modbus,
                sink: Sink::Uns {
                    qos: 1,
                    payload: crate::config::Payload::Sample,
                },
            },
            window: 30.0,
            expected,
            received,
            messages: received,
            acked,
            gateway_cpu: 0.1,
            cpu_per_million: 5.0,
            rss_mean: 20e6,
            rss_peak: 21e6,
            broker_cpu: 0.1,
            broker_rss_peak: 10e6,
            subscriber_cpu: 0.1,
            device_cpu: 0.0,
            backlog: 0.0,
            backlog_growth: 0.0,
            replaying: false,
            replayed: 0.0,
            seq_gaps: 0.0,
            dropped: 0.0,
            delay_p50: 1.0,
            delay_p99: 2.0,
            instructions_per_sample: None,
            socket_p50: None,
            socket_p99: None,
            kernel_share: 0.25,
        }
    }

    #[test]
    fn the_leg_that_is_behind_is_named() {
        // A window cut off a cycle's phase may count a little more than expected.
        assert_eq!(limit(&figures(100_000.0, 103_000.0, 100_600.0)), "keeps up");
        assert_eq!(limit(&figures(1000.0, 1000.0, 990.0)), "keeps up");
        assert_eq!(
            limit(&figures(100_000.0, 43_000.0, 42_000.0)),
            "gateway → broker behind"
        );
        assert_eq!(
            limit(&figures(100_000.0, 100_000.0, 60_000.0)),
            "broker → subscriber behind"
        );
        let table = throughput_table(
            &[figures(1.0, 1.0, 1.0).point],
            &[figures(1000.0, 1000.0, 1000.0), figures(1000.0, 500.0, 500.0)],
        );
        assert!(
            table.contains("| 1× keeps up, 1× gateway → broker behind |"),
            "{table}"
        );
    }

    #[test]
    fn memory_per_tag_is_the_slope_above_the_smallest_point() {
        let runs = [
            Footprint {
                tags: 125,
                rss: 10e6,
                peak: 11e6,
            },
            Footprint {
                tags: 10_125,
                rss: 40e6,
                peak: 50e6,
            },
            Footprint {
                tags: 10_125,
                rss: 42e6,
                peak: 50e6,
            },
        ];
        let table = memory_table(&runs);
        assert!(table.contains("| 125 | 10.0 | 11.0 | base |"), "{table}");
        assert!(
            table.contains("| 10125 | 40.0–42.0 | 50.0 | 3100 B (vs 125 tags) |"),
            "{table}"
        );
    }
}
