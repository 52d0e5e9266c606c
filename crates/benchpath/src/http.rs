//! The two things the benchmark asks the gateway's API: `/metrics` counters and the
//! buffers in `/api/v1/health`. Plain HTTP/1.0 on loopback (the answer ends with the
//! connection, never chunked), so no HTTP client library is needed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The body of `GET path`, or an error naming what failed.
pub fn get(api: SocketAddr, path: &str) -> Result<String, String> {
    let mut stream =
        TcpStream::connect_timeout(&api, Duration::from_secs(5)).map_err(|e| format!("GET {path}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {api}\r\n\r\n").map_err(|e| format!("GET {path}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("GET {path}: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: no HTTP answer"))?;
    let status = head.split(' ').nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("GET {path}: status {status}"));
    }
    Ok(body.to_owned())
}

/// The sum of a metric's samples whose labels contain `label` (all, when empty), from
/// the OpenMetrics text. `name` is the full sample name, e.g. `backplane_buffer_acked_total`.
pub fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let (metric, labels) = key.split_once('{').unwrap_or((key, ""));
            (metric == name && labels.contains(label)).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// A histogram's cumulative buckets (`le`, count) whose labels contain `label`, in the
/// text's order (ascending `le`, `+Inf` last). `name` without `_bucket`.
pub fn buckets(text: &str, name: &str, label: &str) -> Vec<(f64, f64)> {
    let bucket = format!("{name}_bucket");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let (metric, labels) = key.split_once('{')?;
            if metric != bucket || !labels.contains(label) {
                return None;
            }
            let le = labels.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, value.parse().ok()?))
        })
        .collect()
}

/// The `q` quantile (0–1) of what a histogram counted between two readings of its
/// buckets ([`buckets`]), interpolated linearly inside the bucket it falls in, as
/// Prometheus' `histogram_quantile` does; `None` if nothing was counted. A quantile in
/// the `+Inf` bucket is the largest finite bound.
pub fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let counts: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let old = before.iter().find(|(l, _)| l == le).map_or(0.0, |(_, n)| *n);
            (*le, n - old)
        })
        .collect();
    let total = counts.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for (le, n) in &counts {
        if *n >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let share = if *n > lower.1 {
                (rank - lower.1) / (n - lower.1)
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * share);
        }
        lower = (*le, *n);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets_counted_between_two_readings() {
        let text = |a: u32, b: u32, c: u32| {
            format!(
                "backplane_component_delay_seconds_bucket{{le=\"0.001\",component=\"sink\",name=\"uns\",what=\"x\"}} {a}\n\
                 backplane_component_delay_seconds_bucket{{le=\"0.002\",component=\"sink\",name=\"uns\",what=\"x\"}} {b}\n\
                 backplane_component_delay_seconds_bucket{{le=\"+Inf\",component=\"sink\",name=\"uns\",what=\"x\"}} {c}\n"
            )
        };
        let name = "backplane_component_delay_seconds";
        let before = buckets(&text(100, 100, 100), name, "name=\"uns\"");
        // 100 more: 50 under 1 ms, 49 between 1 and 2 ms, 1 beyond.
        let after = buckets(&text(150, 199, 200), name, "name=\"uns\"");
        assert_eq!(after.len(), 3);
        assert_eq!(quantile(&before, &after, 0.5), Some(0.001));
        let p75 = quantile(&before, &after, 0.75).unwrap();
        assert!((p75 - (0.001 + 0.001 * 25.0 / 49.0)).abs() < 1e-9, "{p75}");
        assert_eq!(
            quantile(&before, &after, 1.0),
            Some(0.002),
            "beyond the last bound"
        );
        assert_eq!(quantile(&after, &after, 0.5), None, "nothing counted");
        assert!(buckets(&text(1, 2, 3), name, "name=\"other\"").is_empty());
    }

    #[test]
    fn a_metric_is_summed_over_the_samples_with_the_label() {
        let text = "# TYPE backplane_buffer_acked counter\n\
                    backplane_buffer_acked_total{name=\"uns\"} 1200\n\
                    backplane_buffer_acked_total{name=\"other\"} 7\n\
                    backplane_buffer_acked_total_more{name=\"uns\"} 99\n\
                    backplane_pipeline_samples_total 3000\n# EOF\n";
        assert_eq!(
            metric(text, "backplane_buffer_acked_total", "name=\"uns\""),
            1200.0
        );
        assert_eq!(metric(text, "backplane_buffer_acked_total", ""), 1207.0);
        assert_eq!(metric(text, "backplane_pipeline_samples_total", ""), 3000.0);
        assert_eq!(metric(text, "backplane_missing_total", ""), 0.0);
    }
}
