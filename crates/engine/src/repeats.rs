//! One log line per recurring failure, not one per retry: a device that is off for a
//! night fails every minute (the backoff's cap), and 500 identical warnings hide the one
//! line that matters. [`Repeats`] decides, for each failure of one component, whether it
//! is worth a line: the first, one whose message differs from the run's, and then a summary
//! with the count at most every [`SUMMARY_EVERY`]. When the component has run without
//! failing for a while, the caller ends the run ([`Repeats::recovered`]) and says how long
//! it failed. I/O-free; time is passed in.

use std::time::{Duration, Instant};

/// A run of the same failure is summarized at most this often.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(600);

/// What to log for one failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Say {
    /// The first failure, or one with another message than the run's: log it in full.
    Failure,
    /// The same failure again, `count` times in all since `for_` ago: log one summary.
    StillFailing { count: u64, for_: Duration },
    /// The same failure again, summarized recently: count it only.
    Nothing,
}

/// A run of failures that ended: how many and over how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    pub count: u64,
    pub over: Duration,
}

#[derive(Debug)]
struct Run {
    message: String,
    first: Instant,
    count: u64,
    said: Instant,
}

/// One component's current run of failures.
#[derive(Debug, Default)]
pub struct Repeats {
    run: Option<Run>,
}

impl Repeats {
    /// A failure with `message` at `now`.
    pub fn failed(&mut self, message: &str, now: Instant) -> Say {
        match &mut self.run {
            Some(run) if run.message == message => {
                run.count = run.count.saturating_add(1);
                if now.saturating_duration_since(run.said) >= SUMMARY_EVERY {
                    run.said = now;
                    Say::StillFailing {
                        count: run.count,
                        for_: now.saturating_duration_since(run.first),
                    }
                } else {
                    Say::Nothing
                }
            }
            _ => {
                self.run = Some(Run {
                    message: message.to_owned(),
                    first: now,
                    count: 1,
                    said: now,
                });
                Say::Failure
            }
        }
    }

    /// The component has run long enough to count as working again: ends the run, if any,
    /// returning it when it had more than one failure (a single one was logged in full).
    pub fn recovered(&mut self, now: Instant) -> Option<Ended> {
        let run = self.run.take()?;
        (run.count > 1).then(|| Ended {
            count: run.count,
            over: now.saturating_duration_since(run.first),
        })
    }

    /// Whether a run of failures is open.
    pub fn failing(&self) -> bool {
        self.run.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_failure_is_logged_once_then_summarized_with_its_count() {
        let t0 = Instant::now();
        let mut r = Repeats::default();
        assert_eq!(r.failed("connect refused", t0), Say::Failure);
        // A retry a minute for nine minutes: counted, not logged.
        for minute in 1..10 {
            assert_eq!(
                r.failed("connect refused", t0 + Duration::from_secs(60 * minute)),
                Say::Nothing
            );
        }
        assert_eq!(
            r.failed("connect refused", t0 + Duration::from_secs(600)),
            Say::StillFailing {
                count: 11,
                for_: Duration::from_secs(600)
            }
        );
        assert_eq!(
            r.failed("connect refused", t0 + Duration::from_secs(660)),
            Say::Nothing
        );
        assert_eq!(
            r.recovered(t0 + Duration::from_secs(720)),
            Some(Ended {
                count: 12,
                over: Duration::from_secs(720)
            })
        );
        assert!(!r.failing());
    }

    #[test]
    fn another_failure_is_logged_in_full_and_starts_a_new_count() {
        let t0 = Instant::now();
        let mut r = Repeats::default();
        assert_eq!(r.failed("connect refused", t0), Say::Failure);
        assert_eq!(
            r.failed("connect refused", t0 + Duration::from_secs(1)),
            Say::Nothing
        );
        assert_eq!(r.failed("timed out", t0 + Duration::from_secs(2)), Say::Failure);
        assert_eq!(
            r.recovered(t0 + Duration::from_secs(3)),
            None,
            "the new run had one failure, already logged in full"
        );
        assert_eq!(r.recovered(t0 + Duration::from_secs(4)), None);
        assert_eq!(r.failed("timed out", t0 + Duration::from_secs(5)), Say::Failure);
    }
}
