//! Per-node statistics: what the final table, `--stats-json` and (later) live introspection
//! show. Field names of [`NodeStats`] are the JSON keys: the original HORUS names first, ours
//! after.

use crate::io::TopicStats;
use serde::Serialize;
use std::time::Duration;

/// A snapshot of one node's statistics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStats {
    /// Instance name.
    pub name: String,
    /// Ticks run (successful or not).
    pub total_ticks: u64,
    /// Ticks that returned an error or panicked.
    pub total_failures: u64,
    /// Failures since the last successful tick.
    pub consecutive_failures: u64,
    /// Scheduling priority (lower first).
    pub priority: i64,
    /// Target tick rate of this node in Hz.
    pub tick_rate: f64,
    /// Whether the node's log lines are shown.
    pub logging_enabled: bool,
    /// Shortest tick, µs (0 before the first tick).
    pub tick_duration_min_us: f64,
    /// Mean tick, µs.
    pub tick_duration_avg_us: f64,
    /// Longest tick, µs.
    pub tick_duration_max_us: f64,
    /// Measured ticks per second over the run.
    pub actual_rate_hz: f64,
    /// The most recent failure message, if any.
    pub last_error: Option<String>,
    /// Messages the node published (all outputs).
    pub messages_sent: u64,
    /// Messages the node took (all inputs).
    pub messages_received: u64,
    /// Messages overwritten in the node's input queues before it read them.
    pub dropped: u64,
    /// Node type in its plugin.
    pub node_type: String,
    /// The plugin file.
    pub plugin: String,
    /// Isolation level.
    pub isolation: &'static str,
    /// One entry per connected port: its topic and counters.
    pub topics: Vec<TopicStats>,
}

/// Running tick-duration accumulator (no allocation, no sorting on the hot path).
#[derive(Debug, Clone, Copy, Default)]
pub struct TickTimes {
    count: u64,
    min: Duration,
    max: Duration,
    sum: Duration,
}

impl TickTimes {
    /// Records one tick.
    #[inline]
    pub fn record(&mut self, d: Duration) {
        if self.count == 0 || d < self.min {
            self.min = d;
        }
        if d > self.max {
            self.max = d;
        }
        self.sum += d;
        self.count += 1;
    }

    /// (min, avg, max) in µs.
    pub fn micros(&self) -> (f64, f64, f64) {
        if self.count == 0 {
            return (0.0, 0.0, 0.0);
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        (us(self.min), us(self.sum) / self.count as f64, us(self.max))
    }
}

/// Renders the final stats table.
pub fn table(stats: &[NodeStats]) -> String {
    use std::fmt::Write;
    let width = stats.iter().map(|s| s.name.len()).max().unwrap_or(4).max(4);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:>4}  {:>8}  {:>8}  {:>9}  {:>8}  {:>6}  {:>9}  {:>9}  {:>9}  {:>8}  {:>8}  {:>7}",
        "node",
        "prio",
        "rate Hz",
        "actual",
        "ticks",
        "failures",
        "consec",
        "min µs",
        "avg µs",
        "max µs",
        "sent",
        "recv",
        "dropped"
    );
    for s in stats {
        let _ = writeln!(
            out,
            "{:<width$}  {:>4}  {:>8.1}  {:>8.1}  {:>9}  {:>8}  {:>6}  {:>9.2}  {:>9.2}  {:>9.2}  {:>8}  {:>8}  {:>7}",
            s.name,
            s.priority,
            s.tick_rate,
            s.actual_rate_hz,
            s.total_ticks,
            s.total_failures,
            s.consecutive_failures,
            s.tick_duration_min_us,
            s.tick_duration_avg_us,
            s.tick_duration_max_us,
            s.messages_sent,
            s.messages_received,
            s.dropped,
        );
    }
    for s in stats.iter().filter(|s| s.last_error.is_some()) {
        let _ = writeln!(
            out,
            "last error of `{}`: {}",
            s.name,
            s.last_error.as_deref().unwrap_or_default()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_times_min_avg_max() {
        let mut t = TickTimes::default();
        assert_eq!(t.micros(), (0.0, 0.0, 0.0));
        for us in [3, 1, 2] {
            t.record(Duration::from_micros(us));
        }
        assert_eq!(t.micros(), (1.0, 2.0, 3.0));
    }
}
