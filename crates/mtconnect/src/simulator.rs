//! An MTConnect agent playing the maintenance shop's CNC mill (`mtconnect-cnc`), for the
//! demo: HTTP on loopback serving `probe`, `current` and `sample` (with `from`, `count`,
//! and `interval`/`heartbeat` streaming as multipart/x-mixed-replace), MTConnect 2.0
//! documents, a bounded buffer with `OUT_OF_RANGE` for sequences it no longer holds.
//!
//! The machine runs a cycle: about 20 s `ACTIVE` in `AUTOMATIC` (spindle near 8000 rpm,
//! a part every 5 s), 4 s `READY` between parts programs; every 90 s the spindle
//! overloads for 10 s (the `system` condition at `FAULT` with native code `SP-OVL`,
//! execution `INTERRUPTED`), then clears.
//!
//! Conformance of the client is tested against recorded documents of the standard's
//! reference agent (tests/fixtures); this is the demo's machine.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use backplane_model::Timestamp;

/// Observations the agent keeps.
pub const BUFFER: usize = 4096;
const DEVICE: &str = "Mill";

/// (id, name, category, type, subType, units, component) of every data item.
const ITEMS: &[(&str, &str, &str, &str, &str, &str, &str)] = &[
    ("avail", "avail", "EVENT", "AVAILABILITY", "", "", "Device"),
    ("estop", "estop", "EVENT", "EMERGENCY_STOP", "", "", "Controller"),
    ("mode", "mode", "EVENT", "CONTROLLER_MODE", "", "", "Path"),
    ("exec", "execution", "EVENT", "EXECUTION", "", "", "Path"),
    ("program", "program", "EVENT", "PROGRAM", "", "", "Path"),
    ("pcount", "part_count", "EVENT", "PART_COUNT", "ALL", "", "Path"),
    (
        "Sspeed",
        "spindle_speed",
        "SAMPLE",
        "ROTARY_VELOCITY",
        "ACTUAL",
        "REVOLUTION/MINUTE",
        "Spindle",
    ),
    (
        "Sload",
        "spindle_load",
        "SAMPLE",
        "LOAD",
        "",
        "PERCENT",
        "Spindle",
    ),
    (
        "Xact",
        "x_position",
        "SAMPLE",
        "POSITION",
        "ACTUAL",
        "MILLIMETER",
        "X",
    ),
    ("system", "system", "CONDITION", "SYSTEM", "", "", "Controller"),
];

fn pascal(kind: &str) -> String {
    kind.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase(),
                None => String::new(),
            }
        })
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[derive(Clone, Debug)]
struct Obs {
    sequence: u64,
    item: usize,
    time: Timestamp,
    /// The value, or for the condition `LEVEL|code|text`.
    value: String,
}

#[derive(Debug)]
struct Agent {
    instance_id: u64,
    buffer: VecDeque<Obs>,
    next: u64,
    latest: Vec<Option<Obs>>,
    parts: u64,
}

impl Agent {
    fn new() -> Agent {
        let instance_id = Timestamp::now().unix_nanos().unsigned_abs() / 1_000_000_000;
        let mut agent = Agent {
            instance_id,
            buffer: VecDeque::new(),
            next: 1,
            latest: vec![None; ITEMS.len()],
            parts: 0,
        };
        for (i, item) in ITEMS.iter().enumerate() {
            let value = if item.2 == "CONDITION" {
                "Unavailable||"
            } else {
                "UNAVAILABLE"
            };
            agent.push(i, value.to_owned());
        }
        agent
    }

    fn push(&mut self, item: usize, value: String) {
        if self
            .latest
            .get(item)
            .and_then(|o| o.as_ref())
            .is_some_and(|o| o.value == value)
        {
            return;
        }
        let obs = Obs {
            sequence: self.next,
            item,
            time: Timestamp::now(),
            value,
        };
        self.next += 1;
        if let Some(slot) = self.latest.get_mut(item) {
            *slot = Some(obs.clone());
        }
        self.buffer.push_back(obs);
        while self.buffer.len() > BUFFER {
            self.buffer.pop_front();
        }
    }

    fn first(&self) -> u64 {
        self.buffer.front().map_or(self.next, |o| o.sequence)
    }

    fn set(&mut self, id: &str, value: impl Into<String>) {
        if let Some(i) = ITEMS.iter().position(|it| it.0 == id) {
            self.push(i, value.into());
        }
    }

    /// The machine at `t` seconds since start.
    fn step(&mut self, t: f64) {
        self.set("avail", "AVAILABLE");
        self.set("estop", "ARMED");
        self.set("mode", "AUTOMATIC");
        let fault = t % 90.0 >= 80.0;
        let active = !fault && t % 24.0 < 20.0;
        if fault {
            self.set("system", "Fault|SP-OVL|Spindle overload");
            self.set("exec", "INTERRUPTED");
        } else {
            self.set("system", "Normal||");
            self.set("exec", if active { "ACTIVE" } else { "READY" });
        }
        self.set("program", format!("O{}", 1000 + (t / 240.0) as u64 % 3));
        let wave = (t * 0.7).sin();
        if active {
            self.set("Sspeed", format!("{:.1}", 8000.0 + 150.0 * wave));
            self.set("Sload", format!("{:.1}", 42.0 + 8.0 * wave));
            self.set("Xact", format!("{:.3}", 120.0 * (t * 0.2).sin()));
            let parts = (t / 5.0) as u64;
            if parts > self.parts {
                self.parts = parts;
            }
        } else {
            self.set("Sspeed", "0");
            self.set("Sload", "0");
        }
        self.set("pcount", self.parts.to_string());
    }

    fn header(&self, extra: &str) -> String {
        format!(
            "<Header creationTime=\"{}\" sender=\"backplane-simulator\" instanceId=\"{}\" version=\"2.0.0.0\" bufferSize=\"{BUFFER}\" assetBufferSize=\"0\" assetCount=\"0\"{extra}/>",
            Timestamp::now().to_rfc3339(),
            self.instance_id
        )
    }

    fn probe(&self) -> String {
        let mut x = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<MTConnectDevices xmlns=\"urn:mtconnect.org:MTConnectDevices:2.0\">",
        );
        x.push_str(&self.header(""));
        let _ = write!(
            x,
            "<Devices><Device id=\"mill\" name=\"{DEVICE}\" uuid=\"backplane-sim-mill-1\"><Description manufacturer=\"Backplane\" model=\"Simulated 3-axis mill\"/>"
        );
        let items_of = |component: &str| {
            let mut s = String::from("<DataItems>");
            for (id, name, category, kind, sub, units, c) in ITEMS {
                if *c != component {
                    continue;
                }
                let _ = write!(
                    s,
                    "<DataItem id=\"{id}\" name=\"{name}\" category=\"{category}\" type=\"{kind}\""
                );
                if !sub.is_empty() {
                    let _ = write!(s, " subType=\"{sub}\"");
                }
                if !units.is_empty() {
                    let _ = write!(s, " units=\"{units}\" nativeUnits=\"{units}\"");
                }
                s.push_str("/>");
            }
            s.push_str("</DataItems>");
            s
        };
        x.push_str(&items_of("Device"));
        let _ = write!(
            x,
            "<Components><Axes id=\"axes\" name=\"base\"><Components><Linear id=\"x\" name=\"X\">{}</Linear><Rotary id=\"c\" name=\"C\"><Components><Spindle id=\"spindle\" name=\"spindle\">{}</Spindle></Components></Rotary></Components></Axes><Controller id=\"cont\" name=\"controller\">{}<Components><Path id=\"path\" name=\"path\">{}</Path></Components></Controller></Components>",
            items_of("X"),
            items_of("Spindle"),
            items_of("Controller"),
            items_of("Path")
        );
        x.push_str("</Device></Devices></MTConnectDevices>");
        x
    }

    fn streams<'a>(&self, observations: impl Iterator<Item = &'a Obs>, next: u64) -> String {
        let mut x = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<MTConnectStreams xmlns=\"urn:mtconnect.org:MTConnectStreams:2.0\">",
        );
        let last = self.next.saturating_sub(1);
        x.push_str(&self.header(&format!(
            " firstSequence=\"{}\" lastSequence=\"{last}\" nextSequence=\"{next}\"",
            self.first()
        )));
        let _ = write!(
            x,
            "<Streams><DeviceStream name=\"{DEVICE}\" uuid=\"backplane-sim-mill-1\">"
        );
        let observations: Vec<&Obs> = observations.collect();
        for component in ["Device", "Controller", "Path", "Spindle", "X"] {
            let mut samples = String::new();
            let mut events = String::new();
            let mut conditions = String::new();
            for o in observations
                .iter()
                .filter(|o| ITEMS.get(o.item).is_some_and(|i| i.6 == component))
            {
                let Some((id, name, category, kind, sub, _, _)) = ITEMS.get(o.item) else {
                    continue;
                };
                let time = o.time.to_rfc3339();
                let seq = o.sequence;
                if *category == "CONDITION" {
                    let mut parts = o.value.splitn(3, '|');
                    let level = parts.next().unwrap_or("Unavailable");
                    let code = parts.next().unwrap_or_default();
                    let text = parts.next().unwrap_or_default();
                    let native = if code.is_empty() {
                        String::new()
                    } else {
                        format!(" nativeCode=\"{code}\"")
                    };
                    let _ = write!(
                        conditions,
                        "<{level} dataItemId=\"{id}\" name=\"{name}\" sequence=\"{seq}\" timestamp=\"{time}\" type=\"{kind}\"{native}>{}</{level}>",
                        escape(text)
                    );
                    continue;
                }
                let element = pascal(kind);
                let sub = if sub.is_empty() {
                    String::new()
                } else {
                    format!(" subType=\"{sub}\"")
                };
                let target = if *category == "SAMPLE" {
                    &mut samples
                } else {
                    &mut events
                };
                let _ = write!(
                    target,
                    "<{element} dataItemId=\"{id}\" name=\"{name}\" sequence=\"{seq}\" timestamp=\"{time}\"{sub}>{}</{element}>",
                    escape(&o.value)
                );
            }
            if samples.is_empty() && events.is_empty() && conditions.is_empty() {
                continue;
            }
            let _ = write!(
                x,
                "<ComponentStream component=\"{component}\" componentId=\"{}\">",
                component.to_lowercase()
            );
            for (tag, body) in [
                ("Samples", samples),
                ("Events", events),
                ("Condition", conditions),
            ] {
                if !body.is_empty() {
                    let _ = write!(x, "<{tag}>{body}</{tag}>");
                }
            }
            x.push_str("</ComponentStream>");
        }
        x.push_str("</DeviceStream></Streams></MTConnectStreams>");
        x
    }

    fn current(&self) -> String {
        self.streams(self.latest.iter().flatten(), self.next)
    }

    /// A sample from `from`, or the `OUT_OF_RANGE` error. Returns (document, next).
    fn sample(&self, from: Option<u64>, count: usize) -> Result<(String, u64), String> {
        let from = from.unwrap_or_else(|| self.first());
        if from < self.first() || from > self.next {
            return Err(self.error(
                "OUT_OF_RANGE",
                &format!("'from' must be between {} and {}", self.first(), self.next),
            ));
        }
        let chosen: Vec<&Obs> = self
            .buffer
            .iter()
            .filter(|o| o.sequence >= from)
            .take(count)
            .collect();
        let next = chosen.last().map_or(from, |o| o.sequence + 1);
        Ok((self.streams(chosen.into_iter(), next), next))
    }

    fn error(&self, code: &str, message: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<MTConnectError xmlns=\"urn:mtconnect.org:MTConnectError:2.0\">{}<Errors><Error errorCode=\"{code}\">{}</Error></Errors></MTConnectError>",
            self.header(""),
            escape(message)
        )
    }
}

type Shared = Arc<Mutex<Agent>>;

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

fn with_agent<T>(agent: &Shared, f: impl FnOnce(&Agent) -> T) -> Option<T> {
    agent.lock().ok().map(|a| f(&a))
}

async fn probe(State(agent): State<Shared>) -> Response {
    match with_agent(&agent, Agent::probe) {
        Some(x) => xml(StatusCode::OK, x),
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn current(State(agent): State<Shared>) -> Response {
    match with_agent(&agent, Agent::current) {
        Some(x) => xml(StatusCode::OK, x),
        None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[derive(Debug, serde::Deserialize)]
struct SampleQuery {
    from: Option<u64>,
    count: Option<usize>,
    interval: Option<u64>,
    heartbeat: Option<u64>,
}

async fn sample(State(agent): State<Shared>, Query(q): Query<SampleQuery>) -> Response {
    let count = q.count.unwrap_or(100).clamp(1, BUFFER);
    let Some(interval) = q.interval else {
        return match with_agent(&agent, |a| a.sample(q.from, count)) {
            Some(Ok((x, _))) => xml(StatusCode::OK, x),
            Some(Err(e)) => xml(StatusCode::BAD_REQUEST, e),
            None => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
    };
    // Check the start before streaming, so a bad `from` is an ordinary error answer.
    let from = match with_agent(&agent, |a| a.sample(q.from, count)) {
        Some(Ok(_)) => q.from,
        Some(Err(e)) => return xml(StatusCode::BAD_REQUEST, e),
        None => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let interval = Duration::from_millis(interval.clamp(10, 60_000));
    let heartbeat = Duration::from_millis(q.heartbeat.unwrap_or(10_000).clamp(100, 60_000));
    let boundary = format!("{:x}", Timestamp::now().unix_nanos());
    let parts_boundary = boundary.clone();
    let stream = futures::stream::unfold(
        (agent, tokio::time::Instant::now(), true, from),
        move |(agent, mut last_sent, first, mut from)| {
            let boundary = parts_boundary.clone();
            async move {
                loop {
                    if !first {
                        tokio::time::sleep(interval).await;
                    }
                    let part = agent.lock().ok().map(|a| {
                        let next_from = from.unwrap_or_else(|| a.first());
                        let has_new = a.next > next_from;
                        (a.sample(Some(next_from), count), has_new)
                    });
                    let (answer, has_new) = part?;
                    let body = match answer {
                        // The stream fell behind the buffer: end it; the client asks again.
                        Err(_) => return None,
                        Ok((body, next)) => {
                            if !has_new && last_sent.elapsed() < heartbeat && !first {
                                continue;
                            }
                            from = Some(next);
                            body
                        }
                    };
                    last_sent = tokio::time::Instant::now();
                    let chunk = format!(
                        "--{boundary}\r\nContent-type: text/xml\r\nContent-length: {}\r\n\r\n{body}\r\n",
                        body.len()
                    );
                    return Some((Ok::<_, std::io::Error>(chunk), (agent, last_sent, false, from)));
                }
            }
        },
    );
    Response::builder()
        .header(
            header::CONTENT_TYPE,
            format!("multipart/x-mixed-replace;boundary={boundary}"),
        )
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Starts the simulated agent on `listen`; returns where it listens and its task.
pub async fn spawn_cnc_simulator(
    listen: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    let agent: Shared = Arc::new(Mutex::new(Agent::new()));
    let app = Router::new()
        .route("/probe", get(probe))
        .route("/current", get(current))
        .route("/sample", get(sample))
        .route(&format!("/{DEVICE}/probe"), get(probe))
        .route(&format!("/{DEVICE}/current"), get(current))
        .route(&format!("/{DEVICE}/sample"), get(sample))
        .with_state(agent.clone());
    let task = tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let machine = async {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let t = start.elapsed().as_secs_f64();
                if let Ok(mut a) = agent.lock() {
                    a.step(t);
                }
            }
        };
        tokio::select! {
            _ = axum::serve(listener, app) => {}
            () = machine => {}
        }
    });
    Ok((address, task))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::document::{self, Document};

    #[test]
    fn the_simulated_agent_serves_documents_the_parser_reads() {
        let mut a = Agent::new();
        for t in 0..100 {
            a.step(f64::from(t));
        }
        let Document::Devices(d) = document::parse(a.probe().as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(d.devices[0].data_items.len(), ITEMS.len());
        let Document::Streams(s) = document::parse(a.current().as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(s.observations.len(), ITEMS.len());
        let (x, next) = a.sample(Some(1), 5).unwrap();
        let Document::Streams(s) = document::parse(x.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!((s.observations.len(), s.header.next_sequence), (5, Some(next)));
        assert!(
            a.sample(Some(a.next + 1), 5)
                .unwrap_err()
                .contains("OUT_OF_RANGE")
        );
    }
}
