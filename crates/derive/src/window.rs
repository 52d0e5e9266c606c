//! Sliding windows with bounded memory: a window of width `W` is a ring of [`BUCKETS`]
//! buckets of `W / BUCKETS` each, whatever the rate of the input. A bucket keeps the sum,
//! count, minimum and maximum of the values recorded in it (or, for time in state, the
//! seconds spent in the state); buckets older than `W` are dropped as time moves on.
//! Memory per window: `BUCKETS` × 40 bytes, about 2.4 KiB, per asset and call site.
//! The window's resolution is one bucket: a value leaves the window up to `W / BUCKETS`
//! late.

use std::time::Duration;

/// Buckets per window.
pub const BUCKETS: usize = 60;

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Which period of `width / BUCKETS` the bucket holds (time / bucket width); -1: empty.
    period: i64,
    sum: f64,
    count: u32,
    /// Values recorded while their quality was uncertain.
    uncertain: u32,
    min: f64,
    max: f64,
}

/// What a window holds now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    pub sum: f64,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    /// Some values in the window were uncertain.
    pub uncertain: bool,
}

#[derive(Debug, Clone)]
pub struct Window {
    bucket_nanos: i64,
    buckets: Box<[Bucket; BUCKETS]>,
}

impl Window {
    pub fn new(width: Duration) -> Window {
        let nanos = i64::try_from(width.as_nanos()).unwrap_or(i64::MAX);
        Window {
            bucket_nanos: (nanos / BUCKETS as i64).max(1),
            buckets: Box::new(
                [Bucket {
                    period: -1,
                    ..Bucket::default()
                }; BUCKETS],
            ),
        }
    }

    fn bucket(&mut self, now_nanos: i64) -> &mut Bucket {
        let period = now_nanos.div_euclid(self.bucket_nanos);
        let b = &mut self.buckets[period.rem_euclid(BUCKETS as i64) as usize];
        if b.period != period {
            *b = Bucket {
                period,
                sum: 0.0,
                count: 0,
                uncertain: 0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
            };
        }
        b
    }

    /// Records `value` at `now` (unix nanoseconds).
    pub fn record(&mut self, now_nanos: i64, value: f64, uncertain: bool) {
        let b = self.bucket(now_nanos);
        b.sum += value;
        b.count = b.count.saturating_add(1);
        b.uncertain = b.uncertain.saturating_add(u32::from(uncertain));
        b.min = b.min.min(value);
        b.max = b.max.max(value);
    }

    /// Adds `seconds` to the bucket of `now` (time in state).
    pub fn add_time(&mut self, now_nanos: i64, seconds: f64) {
        let b = self.bucket(now_nanos);
        b.sum += seconds;
        b.count = b.count.saturating_add(1);
    }

    /// The buckets within the window ending at `now`.
    pub fn summary(&self, now_nanos: i64) -> Summary {
        let current = now_nanos.div_euclid(self.bucket_nanos);
        let mut s = Summary {
            sum: 0.0,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            uncertain: false,
        };
        for b in self.buckets.iter() {
            if b.period < 0 || b.period > current || current - b.period >= BUCKETS as i64 || b.count == 0 {
                continue;
            }
            s.sum += b.sum;
            s.count += u64::from(b.count);
            s.min = s.min.min(b.min);
            s.max = s.max.max(b.max);
            s.uncertain |= b.uncertain > 0;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn values_leave_the_window_after_its_width() {
        let mut w = Window::new(Duration::from_secs(60));
        w.record(0, 10.0, false);
        w.record(30 * S, 20.0, false);
        let s = w.summary(30 * S);
        assert_eq!((s.count, s.sum, s.min, s.max), (2, 30.0, 10.0, 20.0));
        // 61 s later the first value is out, the second still in.
        let s = w.summary(61 * S);
        assert_eq!((s.count, s.sum), (1, 20.0));
        let s = w.summary(200 * S);
        assert_eq!(s.count, 0);
    }

    #[test]
    fn memory_stays_bounded_whatever_the_rate() {
        let mut w = Window::new(Duration::from_secs(10));
        for i in 0..1_000_000i64 {
            w.record(i * 1_000_000, 1.0, false); // one value per millisecond for 1000 s
        }
        // Only the last 10 s (10 000 values) count, held in 60 buckets.
        let s = w.summary(999_999 * 1_000_000);
        assert!((9_800..=10_000).contains(&s.count), "{}", s.count);
        assert_eq!(
            std::mem::size_of_val(&*w.buckets),
            BUCKETS * std::mem::size_of::<Bucket>()
        );
    }

    #[test]
    fn uncertain_values_mark_the_summary() {
        let mut w = Window::new(Duration::from_secs(60));
        w.record(0, 1.0, true);
        assert!(w.summary(0).uncertain);
        assert!(!w.summary(120 * S).uncertain);
    }
}
