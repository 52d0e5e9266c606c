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

#[cfg(test)]
mod tests {
    use super::*;

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
