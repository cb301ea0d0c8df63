//! Per-node statistics: what the final table, `--stats-json` and `horus stats` show. Field
//! names of [`NodeStats`] are the JSON keys: the original HORUS names first, ours after.

use super::CircuitState;
use crate::io::TopicStats;
use crate::manifest::Isolation;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A snapshot of one node's statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// 99th percentile tick, µs (within 12.5 %).
    pub tick_duration_p99_us: f64,
    /// Measured ticks per second over the run.
    pub actual_rate_hz: f64,
    /// The most recent failure message, if any.
    pub last_error: Option<String>,
    /// `closed`, `open`, `half_open` or `failed` in JSON.
    pub circuit_state: CircuitState,
    /// Restarts by the circuit breaker.
    pub restarts: u64,
    /// The node's quarantined worker threads still alive (stuck in the plugin); the node is
    /// failed when this reaches the quarantine cap. 0 for inline and process nodes.
    #[serde(default)]
    pub quarantined_threads: u64,
    /// Which build of its code the node runs: 1 at start, one more per hot reload.
    #[serde(default = "first_generation")]
    pub generation: u64,
    /// Hot reloads that swapped new code in.
    #[serde(default)]
    pub reloads: u64,
    /// Hot reloads refused or rolled back (the node kept its code).
    #[serde(default)]
    pub reload_failures: u64,
    /// Why the last failed hot reload failed.
    #[serde(default)]
    pub last_reload_error: Option<String>,
    /// Replaced library copies that stayed mapped after their unload (pinned by a thread-local
    /// destructor of a thread that lives on).
    #[serde(default)]
    pub pinned_libraries: u64,
    /// The node's deadline in ms, if it has one.
    pub deadline_ms: Option<f64>,
    /// Ticks longer than the deadline.
    pub deadline_misses: u64,
    /// Whether the watchdog watches this node.
    pub watchdog_enabled: bool,
    /// The watchdog timeout in ms (0 when not watched).
    pub watchdog_timeout_ms: u64,
    /// Whether a tick ever ran longer than the watchdog timeout.
    pub watchdog_expired: bool,
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
    /// Isolation level: `inline`, `thread` or `process` in JSON.
    #[serde(with = "isolation_name")]
    pub isolation: Isolation,
    /// One entry per connected port: its topic and counters.
    pub topics: Vec<TopicStats>,
    /// What makes the node tick: `"rate"`, `"input"`, or the list of its trigger ports.
    #[serde(default)]
    pub trigger: TriggerStat,
    /// Ticks of an input-triggered node caused by input (not by its `timeout_ms`).
    #[serde(default)]
    pub wakeups: u64,
    /// Mean time from when the scheduler found a trigger input pending to the tick's start, µs.
    #[serde(default)]
    pub input_latency_avg_us: f64,
    /// 99th percentile of that time, µs (within 12.5 %).
    #[serde(default)]
    pub input_latency_p99_us: f64,
    /// Input-caused ticks that ended more than `deadline_ms` after the scheduler found their
    /// input pending (`deadline_misses` counts tick durations only).
    #[serde(default)]
    pub input_deadline_misses: u64,
}

/// A node's trigger as the stats show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TriggerStat {
    /// `"rate"` or `"input"`.
    Kind(String),
    /// The trigger ports.
    Ports(Vec<String>),
}

impl Default for TriggerStat {
    fn default() -> Self {
        TriggerStat::Kind("rate".into())
    }
}

impl TriggerStat {
    /// The stats' view of `trigger`.
    pub fn of(trigger: &crate::manifest::Trigger) -> TriggerStat {
        match trigger {
            crate::manifest::Trigger::Rate => TriggerStat::Kind("rate".into()),
            crate::manifest::Trigger::Input => TriggerStat::Kind("input".into()),
            crate::manifest::Trigger::Ports(ports) => TriggerStat::Ports(ports.clone()),
        }
    }
}

impl NodeStats {
    /// The stats of a node that has not ticked yet: every counter and time 0, a closed
    /// circuit, no watchdog, no deadline, not connected.
    pub fn before_first_tick(
        name: String,
        node_type: String,
        plugin: String,
        isolation: Isolation,
    ) -> NodeStats {
        NodeStats {
            name,
            total_ticks: 0,
            total_failures: 0,
            consecutive_failures: 0,
            priority: 0,
            tick_rate: 0.0,
            logging_enabled: true,
            tick_duration_min_us: 0.0,
            tick_duration_avg_us: 0.0,
            tick_duration_max_us: 0.0,
            tick_duration_p99_us: 0.0,
            actual_rate_hz: 0.0,
            last_error: None,
            circuit_state: CircuitState::Closed,
            restarts: 0,
            quarantined_threads: 0,
            generation: 1,
            reloads: 0,
            reload_failures: 0,
            last_reload_error: None,
            pinned_libraries: 0,
            deadline_ms: None,
            deadline_misses: 0,
            watchdog_enabled: false,
            watchdog_timeout_ms: 0,
            watchdog_expired: false,
            messages_sent: 0,
            messages_received: 0,
            dropped: 0,
            node_type,
            plugin,
            isolation,
            topics: Vec::new(),
            trigger: TriggerStat::default(),
            wakeups: 0,
            input_latency_avg_us: 0.0,
            input_latency_p99_us: 0.0,
            input_deadline_misses: 0,
        }
    }
}

fn first_generation() -> u64 {
    1
}

/// [`Isolation`] as its manifest spelling ([`Isolation::name`]); the manifest type itself
/// carries no serde.
mod isolation_name {
    use crate::manifest::Isolation;
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(isolation: &Isolation, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(isolation.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Isolation, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        [Isolation::Inline, Isolation::Thread, Isolation::Process]
            .into_iter()
            .find(|i| i.name() == name)
            .ok_or_else(|| de::Error::unknown_variant(&name, &["inline", "thread", "process"]))
    }
}

const BUCKETS: usize = 16 + 60 * 8;

/// Log-linear bucket of a duration in ns: exact below 16 ns, then 8 buckets per power of two
/// (at most 12.5 % wide).
fn bucket(ns: u64) -> usize {
    if ns < 16 {
        return ns as usize;
    }
    let e = 63 - ns.leading_zeros() as usize;
    let sub = ((ns >> (e - 3)) & 7) as usize;
    (16 + (e - 4) * 8 + sub).min(BUCKETS - 1)
}

/// The largest duration (ns) that falls in bucket `i`.
fn bucket_upper(i: usize) -> u64 {
    if i < 16 {
        return i as u64;
    }
    let e = (i - 16) / 8 + 4;
    let sub = ((i - 16) % 8) as u64;
    let upper = ((8 + u128::from(sub)) << (e - 3)) + (1u128 << (e - 3)) - 1;
    upper.min(u128::from(u64::MAX)) as u64
}

/// Running tick-duration accumulator: min, max, mean and a log-linear histogram for
/// percentiles (no allocation, no sorting on the hot path).
#[derive(Debug, Clone)]
pub struct TickTimes {
    count: u64,
    min: Duration,
    max: Duration,
    sum: Duration,
    histogram: Box<[u32; BUCKETS]>,
}

impl Default for TickTimes {
    fn default() -> Self {
        TickTimes {
            count: 0,
            min: Duration::ZERO,
            max: Duration::ZERO,
            sum: Duration::ZERO,
            histogram: Box::new([0; BUCKETS]),
        }
    }
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
        let b = &mut self.histogram[bucket(d.as_nanos().min(u64::MAX as u128) as u64)];
        *b = b.saturating_add(1);
    }

    /// The `q` quantile (0..=1) in µs, from the histogram (within 12.5 %, never below the
    /// true value's bucket); 0 before the first tick.
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, n) in self.histogram.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= rank {
                let ns = bucket_upper(i).min(self.max.as_nanos() as u64);
                return ns as f64 / 1000.0;
            }
        }
        self.max.as_secs_f64() * 1e6
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
        "{:<width$}  {:>4}  {:>7}  {:>7}  {:>8}  {:>8}  {:>6}  {:>9}  {:>8}  {:>8}  {:>9}  {:>9}  {:>8}  {:>8}  {:>7}",
        "node",
        "prio",
        "rate Hz",
        "actual",
        "ticks",
        "failures",
        "consec",
        "circuit",
        "restarts",
        "dl miss",
        "avg µs",
        "p99 µs",
        "sent",
        "recv",
        "dropped"
    );
    for s in stats {
        let circuit = if s.watchdog_expired {
            format!("{}!", s.circuit_state.name())
        } else {
            s.circuit_state.name().to_owned()
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:>4}  {:>7.1}  {:>7.1}  {:>8}  {:>8}  {:>6}  {:>9}  {:>8}  {:>8}  {:>9.2}  {:>9.2}  {:>8}  {:>8}  {:>7}",
            s.name,
            s.priority,
            s.tick_rate,
            s.actual_rate_hz,
            s.total_ticks,
            s.total_failures,
            s.consecutive_failures,
            circuit,
            s.restarts,
            s.deadline_misses,
            s.tick_duration_avg_us,
            s.tick_duration_p99_us,
            s.messages_sent,
            s.messages_received,
            s.dropped,
        );
    }
    for s in stats.iter().filter(|s| s.watchdog_expired) {
        let _ = writeln!(
            out,
            "watchdog expired for `{}` (a tick ran longer than {} ms)",
            s.name, s.watchdog_timeout_ms
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

    /// The JSON spellings `--stats-json` and `horus stats` have always used.
    #[test]
    fn circuit_state_and_isolation_serialize_as_before() {
        for (state, text) in [
            (CircuitState::Closed, "closed"),
            (CircuitState::Open, "open"),
            (CircuitState::HalfOpen, "half_open"),
            (CircuitState::Failed, "failed"),
        ] {
            assert_eq!(serde_json::to_string(&state).unwrap(), format!("\"{text}\""));
            assert_eq!(state.name(), text);
            let back: CircuitState = serde_json::from_str(&format!("\"{text}\"")).unwrap();
            assert_eq!(back, state);
        }
        for (isolation, text) in [
            (Isolation::Inline, "inline"),
            (Isolation::Thread, "thread"),
            (Isolation::Process, "process"),
        ] {
            let stats = NodeStats {
                isolation,
                ..sample()
            };
            let value = serde_json::to_value(&stats).unwrap();
            assert_eq!(value["isolation"], text);
            assert_eq!(value["circuit_state"], "half_open");
            let back: NodeStats = serde_json::from_value(value).unwrap();
            assert_eq!(back, stats);
        }
        // Stats written before `quarantined_threads` existed still read (as 0).
        let mut value = serde_json::to_value(sample()).unwrap();
        value.as_object_mut().unwrap().remove("quarantined_threads");
        assert_eq!(serde_json::from_value::<NodeStats>(value).unwrap(), sample());
        let mut value = serde_json::to_value(sample()).unwrap();
        value["isolation"] = "elsewhere".into();
        assert!(serde_json::from_value::<NodeStats>(value).is_err());
        // The trigger is a word or the list of ports; stats without it read as `rate`.
        let ports = NodeStats {
            trigger: TriggerStat::Ports(vec!["imu".into(), "odom".into()]),
            wakeups: 3,
            input_deadline_misses: 2,
            ..sample()
        };
        let value = serde_json::to_value(&ports).unwrap();
        assert_eq!(value["trigger"], serde_json::json!(["imu", "odom"]));
        assert_eq!(value["input_deadline_misses"], 2);
        assert_eq!(serde_json::from_value::<NodeStats>(value).unwrap(), ports);
        assert_eq!(serde_json::to_value(sample()).unwrap()["trigger"], "rate");
        let mut value = serde_json::to_value(sample()).unwrap();
        value.as_object_mut().unwrap().remove("trigger");
        assert_eq!(serde_json::from_value::<NodeStats>(value).unwrap(), sample());
    }

    fn sample() -> NodeStats {
        NodeStats {
            tick_rate: 100.0,
            circuit_state: CircuitState::HalfOpen,
            ..NodeStats::before_first_tick("n".into(), "T".into(), "p.so".into(), Isolation::Inline)
        }
    }

    #[test]
    fn buckets_cover_every_duration_in_order() {
        let mut last = 0;
        for ns in (0..100_000u64).chain([1 << 40, u64::MAX]) {
            let b = bucket(ns);
            assert!(b >= last, "monotonic at {ns}");
            assert!(bucket_upper(b) >= ns, "{ns} fits its bucket {b}");
            last = b;
        }
    }

    #[test]
    fn p99_is_close() {
        let mut t = TickTimes::default();
        for us in 1..=1000u64 {
            t.record(Duration::from_micros(us));
        }
        let p99 = t.quantile_us(0.99);
        assert!((990.0..=1000.0 * 1.125).contains(&p99), "{p99}");
        assert!(t.quantile_us(0.5) >= 500.0 && t.quantile_us(0.5) <= 563.0);
    }

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
