//! The source's error classes, their counters and a log throttle: every error is counted,
//! but each class is logged at most once per [`LOG_INTERVAL`], with the number left out.
//! Time is passed in.

use std::time::{Duration, Instant};

/// At most one log line per error class in this time.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What went wrong with a line or a poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A line longer than `max_line`.
    TooLong,
    /// STX/ETX: bytes outside frames, or a frame cut by the next STX.
    Framing,
    Checksum,
    NoMatch,
    /// A capture that is not a value of its type.
    Capture,
    /// No answer to a poll command in time.
    PollTimeout,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::TooLong,
        ErrorKind::Framing,
        ErrorKind::Checksum,
        ErrorKind::NoMatch,
        ErrorKind::Capture,
        ErrorKind::PollTimeout,
    ];

    /// The counter's `event` label in `backplane_component_events_total`.
    pub fn counter(self) -> &'static str {
        match self {
            ErrorKind::TooLong => "lines_too_long",
            ErrorKind::Framing => "framing_errors",
            ErrorKind::Checksum => "checksum_errors",
            ErrorKind::NoMatch => "lines_unmatched",
            ErrorKind::Capture => "captures_unparseable",
            ErrorKind::PollTimeout => "poll_timeouts",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// When each class was last logged and how many were left out since.
#[derive(Debug, Clone)]
pub struct Throttle {
    interval: Duration,
    last: [Option<Instant>; 6],
    suppressed: [u64; 6],
}

impl Throttle {
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            last: [None; 6],
            suppressed: [0; 6],
        }
    }

    /// `Some(n)` if an error of `kind` at `now` is to be logged (`n` of its kind were left
    /// out since the last one logged); `None` if it is only counted.
    pub fn admit(&mut self, kind: ErrorKind, now: Instant) -> Option<u64> {
        let i = kind.index();
        let (Some(last), Some(suppressed)) = (self.last.get_mut(i), self.suppressed.get_mut(i)) else {
            return None;
        };
        match last {
            Some(t) if now.saturating_duration_since(*t) < self.interval => {
                *suppressed += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_class_is_logged_once_per_interval_with_the_count_left_out() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(t.admit(ErrorKind::NoMatch, start), Some(0));
        for i in 1..=5 {
            assert_eq!(t.admit(ErrorKind::NoMatch, start + Duration::from_secs(i)), None);
        }
        // Another class has its own budget.
        assert_eq!(t.admit(ErrorKind::Checksum, start), Some(0));
        assert_eq!(
            t.admit(ErrorKind::NoMatch, start + Duration::from_secs(10)),
            Some(5)
        );
        assert_eq!(
            t.admit(ErrorKind::NoMatch, start + Duration::from_secs(25)),
            Some(0)
        );
        let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.counter()).collect();
        assert_eq!(names.len(), 6);
    }
}
