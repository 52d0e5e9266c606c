//! Bytes from the device → one batch of readings per good line, every bad one counted
//! and logged through the [`Throttle`]. No I/O besides the log; time is passed in.

use std::time::Instant;

use backplane_connector::RawReading;
use prometheus_client::metrics::counter::Counter;

use crate::decode::{LineDecoder, excerpt};
use crate::errors::{ErrorKind, LOG_INTERVAL, Throttle};
use crate::frame::{Framed, Framer};

/// What one chunk of bytes gave.
#[derive(Debug, Default)]
pub struct Fed {
    /// The readings of each line that matched, in order.
    pub lines: Vec<Vec<RawReading>>,
    /// Whether any frame (good or bad) completed: the device answered.
    pub answered: bool,
}

/// The framer and decoder of one source, with its error counters.
#[derive(Debug)]
pub struct Lines {
    source: String,
    framer: Framer,
    decoder: LineDecoder,
    throttle: Throttle,
    counters: Vec<Counter>,
    good: Counter,
    framed: Vec<Framed>,
}

impl Lines {
    /// `counter(name)` gives the counter of each event (`lines`, and each
    /// [`ErrorKind::counter`]).
    pub fn new(
        source: &str,
        framer: Framer,
        decoder: LineDecoder,
        counter: impl Fn(&str) -> Counter,
    ) -> Lines {
        Lines {
            source: source.to_owned(),
            framer,
            decoder,
            throttle: Throttle::new(LOG_INTERVAL),
            counters: ErrorKind::ALL.iter().map(|k| counter(k.counter())).collect(),
            good: counter("lines"),
            framed: Vec::new(),
        }
    }

    pub fn decoder(&self) -> &LineDecoder {
        &self.decoder
    }

    /// Forgets a partial line (a new connection starts afresh).
    pub fn reset(&mut self) {
        self.framer.reset();
    }

    /// Counts an error of `kind` and logs `message` unless its class was logged recently.
    pub fn report(&mut self, kind: ErrorKind, now: Instant, message: impl FnOnce() -> String) {
        if let Some(c) = self.counters.get(kind as usize) {
            c.inc();
        }
        if let Some(left_out) = self.throttle.admit(kind, now) {
            let message = message();
            let counter = kind.counter();
            if left_out > 0 {
                tracing::warn!(source = %self.source, "ascii: {message} (counted in {counter}; {left_out} more since the last one logged)");
            } else {
                tracing::warn!(source = %self.source, "ascii: {message} (counted in {counter})");
            }
        }
    }

    /// Feeds bytes as they were read.
    pub fn feed(&mut self, data: &[u8], now: Instant) -> Fed {
        let mut framed = std::mem::take(&mut self.framed);
        self.framer.feed(data, &mut framed);
        let mut fed = Fed::default();
        for f in framed.drain(..) {
            match f {
                Framed::Frame(line) => {
                    fed.answered = true;
                    match self.decoder.decode(&line) {
                        Ok(decoded) => {
                            self.good.inc();
                            for bad in &decoded.bad_captures {
                                self.report(ErrorKind::Capture, now, || {
                                    format!(
                                        "capture `{}` = \"{}\" is not a {} in line \"{}\"; that value turns bad (type_mismatch)",
                                        bad.capture,
                                        bad.text,
                                        bad.ty.name(),
                                        excerpt(&line)
                                    )
                                });
                            }
                            if !decoded.readings.is_empty() {
                                fed.lines.push(decoded.readings);
                            }
                        }
                        Err(e) => {
                            let kind = match e {
                                crate::decode::LineError::Checksum(_) => ErrorKind::Checksum,
                                crate::decode::LineError::NoMatch => ErrorKind::NoMatch,
                            };
                            self.report(kind, now, || format!("line \"{}\" dropped: {e}", excerpt(&line)));
                        }
                    }
                }
                Framed::TooLong { head, max_line } => {
                    fed.answered = true;
                    self.report(ErrorKind::TooLong, now, || {
                        format!(
                            "line starting \"{}\" is longer than max_line = {max_line} bytes; dropped up to its terminator",
                            excerpt(&head)
                        )
                    });
                }
                Framed::Unterminated { head } => {
                    fed.answered = true;
                    self.report(ErrorKind::Framing, now, || {
                        format!(
                            "frame \"{}\" has no ETX before the next STX; dropped",
                            excerpt(&head)
                        )
                    });
                }
                Framed::Outside { bytes } => {
                    self.report(ErrorKind::Framing, now, || {
                        format!("{bytes} bytes outside STX/ETX frames dropped")
                    });
                }
            }
        }
        self.framed = framed;
        fed
    }
}

/// For the fuzz target: any bytes through every framing, a checksum and a pattern, in
/// chunks split at the first byte's value. No input may panic or buffer past max_line.
pub fn fuzz(data: &[u8]) {
    use crate::checksum::{Algorithm, Checksum, Encoding};
    use crate::frame::Framing;
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let framing = match first % 7 {
        0 => Framing::Line,
        1 => Framing::Cr,
        2 => Framing::Lf,
        3 => Framing::CrLf,
        4 => Framing::Byte(0x03),
        5 => Framing::StxEtx,
        _ => Framing::Byte(first),
    };
    let max_line = usize::from(first % 32) + 1;
    // Compiled once: compiling per input would be most of the fuzzer's time.
    static PATTERN: std::sync::OnceLock<Option<regex::bytes::Regex>> = std::sync::OnceLock::new();
    let Some(pattern) = PATTERN
        .get_or_init(|| regex::bytes::Regex::new(r"^(?P<flag>[SD])? *(?P<value>[-+0-9.]+)(?P<rest>.*)$").ok())
        .clone()
    else {
        return;
    };
    let checksum = (first & 0x80 != 0).then(|| Checksum {
        algorithm: [Algorithm::Xor, Algorithm::Sum, Algorithm::Lrc][usize::from(first % 3)],
        encoding: if first & 0x40 != 0 {
            Encoding::Hex
        } else {
            Encoding::Byte
        },
        skip: usize::from(first % 3),
        separator: if first & 0x20 != 0 {
            b"*".to_vec()
        } else {
            Vec::new()
        },
    });
    let settings = crate::config::AsciiSettings {
        endpoint: crate::config::Endpoint::Tcp {
            host: "fuzz".into(),
            port: 1,
        },
        framing,
        max_line,
        patterns: vec![pattern],
        checksum,
        quality: Some(crate::config::QualityRule {
            capture: "flag".into(),
            good: vec!["S".into()],
            uncertain: vec!["D".into()],
        }),
        poll: None,
        connect_timeout: std::time::Duration::from_secs(1),
        reconnect_min: std::time::Duration::from_secs(1),
        reconnect_max: std::time::Duration::from_secs(1),
    };
    use backplane_model::ScalarType;
    let decoder = LineDecoder::new(
        &settings,
        &[
            ("value".into(), ScalarType::Float),
            ("value".into(), ScalarType::Int),
            ("rest".into(), ScalarType::Bool),
            ("rest".into(), ScalarType::String),
        ],
    );
    let mut lines = Lines::new("fuzz", Framer::new(framing, max_line), decoder, |_| {
        Counter::default()
    });
    let now = Instant::now();
    let step = usize::from(first % 13) + 1;
    for chunk in rest.chunks(step) {
        let _ = lines.feed(chunk, now);
        assert!(lines.framer.buffered() <= max_line);
    }
}
