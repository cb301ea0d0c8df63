//! A rate limit for one kind of log line: at most one line per interval, with a count of the
//! lines held back in between.
//!
//! Owns only the decision and the count; the caller writes the line (and decides whether to
//! mention the count). Used for a node's tick failures and deadline misses, which can happen on
//! every tick (see [`super::running`]).

use std::time::{Duration, Instant};

/// At most one log line per `interval`.
#[derive(Debug, Clone)]
pub(super) struct LogThrottle {
    interval: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl LogThrottle {
    /// A throttle that lets the first line through.
    pub(super) const fn new(interval: Duration) -> LogThrottle {
        LogThrottle {
            interval,
            last: None,
            held_back: 0,
        }
    }

    /// Whether a line may be logged at `now`. `Some(n)`: log it; `n` lines were held back since
    /// the last one logged (the interval starts again). `None`: hold it back (it is counted).
    pub(super) fn admit(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|t| now.duration_since(t) < self.interval) {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let second = Duration::from_secs(1);
        let mut t = LogThrottle::new(second);
        let t0 = Instant::now();
        assert_eq!(t.admit(t0), Some(0), "the first line goes through");
        assert_eq!(t.admit(t0), None);
        assert_eq!(t.admit(t0 + second / 2), None);
        assert_eq!(
            t.admit(t0 + second),
            Some(2),
            "after the interval, with the count"
        );
        assert_eq!(t.admit(t0 + second + second / 2), None);
        assert_eq!(t.admit(t0 + second * 3), Some(1));
        assert_eq!(t.admit(t0 + second * 5), Some(0), "the count starts again");
    }
}
