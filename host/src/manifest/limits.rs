//! The numeric limits of the manifest's settings, defined once: the manifest's validation and
//! the Python package (`SchedulerConfig`, `Scheduler.add`) check the same ranges and describe
//! them the same way.

use std::fmt;

/// A number a limit can bound.
pub trait Bounded: PartialOrd + Copy + fmt::Display {
    /// False for NaN and infinities.
    fn finite(self) -> bool;

    /// The value as a message shows it.
    fn show(self) -> String {
        self.to_string()
    }
}

impl Bounded for f64 {
    fn finite(self) -> bool {
        self.is_finite()
    }

    /// `1e-300` rather than three hundred zeros.
    fn show(self) -> String {
        let magnitude = self.abs();
        if magnitude != 0.0 && self.is_finite() && !(1e-4..1e16).contains(&magnitude) {
            format!("{self:e}")
        } else {
            self.to_string()
        }
    }
}

impl Bounded for i64 {
    fn finite(self) -> bool {
        true
    }
}

/// The accepted range of one setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit<T> {
    /// The setting's key.
    pub key: &'static str,
    /// The smallest value (or the bound values must exceed, see `min_inclusive`).
    pub min: T,
    /// Whether `min` itself is accepted.
    pub min_inclusive: bool,
    /// The largest value accepted, if any.
    pub max: Option<T>,
    /// The unit written after the range (`Hz`, `ms`, `bytes`), or empty.
    pub unit: &'static str,
}

impl<T: Bounded> Limit<T> {
    /// Whether `v` is accepted.
    pub fn contains(&self, v: T) -> bool {
        let above = if self.min_inclusive {
            v >= self.min
        } else {
            v > self.min
        };
        v.finite() && above && self.max.is_none_or(|max| v <= max)
    }

    /// `10 to 60000 ms`, `> 0 and ≤ 100000 Hz`, `> 0`.
    pub fn describe(&self) -> String {
        let unit = if self.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", self.unit)
        };
        match (self.min_inclusive, self.max) {
            (true, Some(max)) => format!("{} to {max}{unit}", self.min),
            (false, Some(max)) => format!("> {} and ≤ {max}{unit}", self.min),
            (true, None) => format!("≥ {}{unit}", self.min),
            (false, None) => format!("> {}{unit}", self.min),
        }
    }

    /// `v` if accepted, else the error saying what is.
    pub fn check(&self, v: T) -> Result<T, LimitError> {
        if self.contains(v) {
            Ok(v)
        } else {
            Err(LimitError {
                key: self.key,
                range: self.describe(),
                got: v.show(),
            })
        }
    }
}

/// A value outside its setting's range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}` must be {range} (got {got})")]
pub struct LimitError {
    /// The setting.
    pub key: &'static str,
    /// What is accepted ([`Limit::describe`]).
    pub range: String,
    /// The value given.
    pub got: String,
}

/// The scheduler's tick rate: a period from 10 µs to 1000 s, so that no clock arithmetic on it
/// can overflow (a rate of 1e-19 Hz once passed `horus check` and panicked the scheduler).
pub const TICK_RATE_HZ: Limit<f64> = Limit {
    key: "tick_rate",
    min: 0.001,
    min_inclusive: true,
    max: Some(100_000.0),
    unit: "Hz",
};

/// A node's own rate: the tick rate's range (and at most the scheduler's, checked separately).
pub const RATE_HZ: Limit<f64> = TICK_RATE_HZ.named("rate_hz");

/// A node's tick deadline.
pub const DEADLINE_MS: Limit<f64> = Limit {
    key: "deadline_ms",
    min: 0.0,
    min_inclusive: false,
    max: Some(3_600_000.0),
    unit: "ms",
};

/// A node's or the scheduler's watchdog timeout.
pub const WATCHDOG_MS: Limit<i64> = Limit {
    key: "watchdog_ms",
    min: 10,
    min_inclusive: true,
    max: Some(60_000),
    unit: "ms",
};

/// How long an input-triggered node waits for input before it ticks anyway.
pub const TIMEOUT_MS: Limit<i64> = Limit {
    key: "timeout_ms",
    min: 1,
    min_inclusive: true,
    max: Some(3_600_000),
    unit: "ms",
};

/// Consecutive failures that open a circuit breaker (more than `u32::MAX` means never, and is
/// held as `u32::MAX`).
pub const MAX_FAILURES: Limit<i64> = Limit {
    key: "max_failures",
    min: 1,
    min_inclusive: true,
    max: None,
    unit: "",
};

/// Restart delays.
pub const BACKOFF_MS: Limit<i64> = Limit {
    key: "restart_backoff_ms",
    min: 1,
    min_inclusive: true,
    max: Some(3_600_000),
    unit: "ms",
};

/// A connection's largest message.
pub const MAX_SIZE: Limit<i64> = Limit {
    key: "max_size",
    min: 1,
    min_inclusive: true,
    max: Some(super::MAX_MAX_SIZE as i64),
    unit: "bytes",
};

impl<T: Copy> Limit<T> {
    /// The same range under another key (`watchdog_timeout_ms` has `watchdog_ms`'s range).
    pub const fn named(self, key: &'static str) -> Limit<T> {
        Limit { key, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_or_exclusive_as_declared() {
        assert!(WATCHDOG_MS.contains(10) && WATCHDOG_MS.contains(60_000));
        assert!(!WATCHDOG_MS.contains(9) && !WATCHDOG_MS.contains(60_001));
        assert!(!TICK_RATE_HZ.contains(0.0) && TICK_RATE_HZ.contains(100_000.0));
        assert!(TICK_RATE_HZ.contains(0.001) && !TICK_RATE_HZ.contains(0.000_999));
        assert!(!TICK_RATE_HZ.contains(f64::NAN) && !RATE_HZ.contains(f64::INFINITY));
        assert!(!RATE_HZ.contains(1e-300) && !RATE_HZ.contains(100_000.1));
        assert!(!DEADLINE_MS.contains(0.0) && DEADLINE_MS.contains(3_600_000.0));
    }

    /// Issue #13 (6): every rate the limits accept has a period that `Duration` holds and that
    /// an `Instant` a century from now can be advanced by.
    #[test]
    fn accepted_rates_have_periods_the_clock_can_add() {
        let later = std::time::Instant::now() + std::time::Duration::from_secs(100 * 365 * 86_400);
        for rate in [0.001, 0.0011, 1.0, 99_999.9, 100_000.0] {
            assert!(RATE_HZ.contains(rate));
            let period = std::time::Duration::try_from_secs_f64(1.0 / rate).expect("a period");
            assert!(later.checked_add(period).is_some());
        }
    }

    #[test]
    fn errors_say_the_range() {
        assert_eq!(
            TICK_RATE_HZ.check(0.0).unwrap_err().to_string(),
            "`tick_rate` must be 0.001 to 100000 Hz (got 0)"
        );
        assert_eq!(
            RATE_HZ.check(1e-300).unwrap_err().to_string(),
            "`rate_hz` must be 0.001 to 100000 Hz (got 1e-300)"
        );
        assert_eq!(
            WATCHDOG_MS
                .named("watchdog_timeout_ms")
                .check(5)
                .unwrap_err()
                .to_string(),
            "`watchdog_timeout_ms` must be 10 to 60000 ms (got 5)"
        );
        assert_eq!(
            RATE_HZ.check(-1.0).unwrap_err().to_string(),
            "`rate_hz` must be 0.001 to 100000 Hz (got -1)"
        );
    }
}
