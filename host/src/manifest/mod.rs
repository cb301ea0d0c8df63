//! The manifest: a TOML file declaring the scheduler, the nodes and their connections.
//!
//! Staged types: [`raw::RawManifest`] (as parsed, with spans) becomes a [`Manifest`] (validated,
//! defaults filled, paths resolved) in [`validate`]. Checks that need the plugins themselves (the
//! file is a plugin, the node type and ports exist, message types match) belong to
//! [`crate::graph`], which turns a `Manifest` into the runtime graph. The reference for users is
//! `docs/manifest.md`.

pub mod hubs;
pub mod raw;
pub mod validate;

use crate::diag::Location;
use std::fmt;
use std::path::PathBuf;

pub use validate::{load, parse};

/// The scheduler presets of the original HORUS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// 100 Hz.
    Standard,
    /// 200 Hz.
    HighPerformance,
    /// 500 Hz.
    LowLatency,
    /// 30 Hz.
    PowerSaving,
    /// 1000 Hz.
    Realtime,
}

impl Preset {
    /// Every preset, in documentation order.
    pub const ALL: [Preset; 5] = [
        Preset::Standard,
        Preset::HighPerformance,
        Preset::LowLatency,
        Preset::PowerSaving,
        Preset::Realtime,
    ];

    /// The manifest spelling.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Standard => "standard",
            Preset::HighPerformance => "high_performance",
            Preset::LowLatency => "low_latency",
            Preset::PowerSaving => "power_saving",
            Preset::Realtime => "realtime",
        }
    }

    /// The preset's tick rate in Hz.
    pub fn tick_rate(self) -> f64 {
        match self {
            Preset::Standard => 100.0,
            Preset::HighPerformance => 200.0,
            Preset::LowLatency => 500.0,
            Preset::PowerSaving => 30.0,
            Preset::Realtime => 1000.0,
        }
    }

    /// Parses the manifest spelling.
    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Delivery policy of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Qos {
    /// Keep the newest N unread messages; a full queue overwrites its oldest and counts a drop.
    KeepLast(usize),
    /// Keep up to N unread messages; a full queue refuses the send (back-pressure), nothing is
    /// lost silently.
    Reliable(usize),
}

impl Qos {
    /// `keep_last(16)`.
    pub const DEFAULT: Qos = Qos::KeepLast(16);
    /// Capacity of `reliable` without an explicit size.
    pub const DEFAULT_RELIABLE_DEPTH: usize = 1024;
    /// The largest queue depth accepted.
    pub const MAX_DEPTH: usize = 1 << 20;

    /// The queue depth.
    pub fn depth(self) -> usize {
        match self {
            Qos::KeepLast(n) | Qos::Reliable(n) => n,
        }
    }

    /// Parses `keep_last(N)`, `reliable` or `reliable(N)`.
    pub fn parse(text: &str) -> Result<Qos, String> {
        let text = text.trim();
        let (kind, arg) = match text.find('(') {
            Some(open) if text.ends_with(')') => (&text[..open], Some(&text[open + 1..text.len() - 1])),
            Some(_) => return Err(format!("`{text}` is missing its closing `)`")),
            None => (text, None),
        };
        let depth = match arg {
            None => None,
            Some(a) => match a.trim().parse::<usize>() {
                Ok(n) if (1..=Qos::MAX_DEPTH).contains(&n) => Some(n),
                _ => {
                    return Err(format!(
                        "queue depth `{a}` must be a whole number from 1 to {}",
                        Qos::MAX_DEPTH
                    ))
                }
            },
        };
        match (kind.trim(), depth) {
            ("keep_last", Some(n)) => Ok(Qos::KeepLast(n)),
            ("keep_last", None) => Err("`keep_last` needs a depth, e.g. `keep_last(4)`".into()),
            ("reliable", n) => Ok(Qos::Reliable(n.unwrap_or(Qos::DEFAULT_RELIABLE_DEPTH))),
            (other, _) => Err(format!("unknown QoS `{other}`")),
        }
    }
}

impl fmt::Display for Qos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Qos::KeepLast(n) => write!(f, "keep_last({n})"),
            Qos::Reliable(n) => write!(f, "reliable({n})"),
        }
    }
}

/// Where a node's calls run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A direct call on the scheduler thread.
    Inline,
    /// On a worker thread of its own: a hung tick is abandoned, the others keep their rate.
    Thread,
    /// In a child worker process: a crash or a hang kills only that process.
    Process,
}

impl Isolation {
    /// The manifest spelling.
    pub fn name(self) -> &'static str {
        match self {
            Isolation::Inline => "inline",
            Isolation::Thread => "thread",
            Isolation::Process => "process",
        }
    }
}

/// Supervision settings of the scheduler (circuit breaker, restarts, deadlines, watchdog).
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisionSpec {
    /// Open a node's breaker after `max_failures` consecutive failures.
    pub circuit_breaker: bool,
    /// Consecutive failures that open the breaker (≥ 1).
    pub max_failures: u32,
    /// Restart a node whose breaker opened.
    pub auto_restart: bool,
    /// First restart delay; doubles per consecutive trip.
    pub restart_backoff: std::time::Duration,
    /// Cap of the restart delay.
    pub restart_backoff_max: std::time::Duration,
    /// Count ticks longer than their node's `deadline_ms`.
    pub deadline_monitoring: bool,
    /// Watch every node (a node's own `watchdog_ms` enables it for that node regardless).
    pub watchdog_enabled: bool,
    /// Default watchdog timeout.
    pub watchdog_timeout: std::time::Duration,
}

impl Default for SupervisionSpec {
    fn default() -> Self {
        SupervisionSpec {
            circuit_breaker: true,
            max_failures: 5,
            auto_restart: true,
            restart_backoff: std::time::Duration::from_millis(500),
            restart_backoff_max: std::time::Duration::from_secs(30),
            deadline_monitoring: true,
            watchdog_enabled: false,
            watchdog_timeout: std::time::Duration::from_millis(1000),
        }
    }
}

/// The range of watchdog timeouts accepted, in ms.
pub const WATCHDOG_RANGE_MS: std::ops::RangeInclusive<i64> = 10..=60_000;

/// The validated scheduler settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerSpec {
    /// Cycles per second.
    pub tick_rate: f64,
    /// The preset it came from, if any.
    pub preset: Option<Preset>,
    /// Supervision.
    pub supervision: SupervisionSpec,
}

impl Default for SchedulerSpec {
    fn default() -> Self {
        SchedulerSpec {
            tick_rate: Preset::Standard.tick_rate(),
            preset: Some(Preset::Standard),
            supervision: SupervisionSpec::default(),
        }
    }
}

/// A validated `[[node]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// Unique instance name.
    pub name: String,
    /// Absolute (or manifest-relative resolved) path of the plugin file.
    pub plugin: PathBuf,
    /// Where `plugin =` is written.
    pub plugin_at: Location,
    /// The node type asked for, if given.
    pub node_type: Option<String>,
    /// Where `type =` is written (or the node's table when absent).
    pub type_at: Location,
    /// Lower runs first; ties keep manifest order.
    pub priority: i64,
    /// Own rate, if slower than the scheduler's.
    pub rate_hz: Option<f64>,
    /// Tick deadline.
    pub deadline: Option<std::time::Duration>,
    /// Watchdog timeout set on this node (enables its watchdog).
    pub watchdog: Option<std::time::Duration>,
    /// Where the node's calls run.
    pub isolation: Isolation,
    /// Whether the node's log lines are shown.
    pub logging: bool,
    /// The node's `config` table.
    pub config: toml::Table,
    /// Where the node's table starts.
    pub at: Location,
    /// A Python node (`python =`): `plugin` is then the Python loader, found at graph build.
    pub python: Option<PythonSpec>,
}

/// A Python node's file, class and environment.
#[derive(Debug, Clone, PartialEq)]
pub struct PythonSpec {
    /// The node's file (resolved against the manifest's folder).
    pub file: PathBuf,
    /// The `horus.Node` subclass to instantiate.
    pub class: String,
    /// The virtual environment, if given (resolved against the manifest's folder).
    pub venv: Option<PathBuf>,
}

/// One side of a connection: `node.port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Node instance name.
    pub node: String,
    /// Port name.
    pub port: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.node, self.port)
    }
}

/// A validated `[[connect]]`: an output to an input (`from` + `to`), an output to a named topic
/// (`from` + `topic`), or a named topic to an input (`topic` + `to`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectSpec {
    /// The publishing side, if in this manifest.
    pub from: Option<Endpoint>,
    /// Where `from` (or the table) is written.
    pub from_at: Location,
    /// The receiving side, if in this manifest.
    pub to: Option<Endpoint>,
    /// Where `to` (or the table) is written.
    pub to_at: Location,
    /// A named topic shared with other processes on this machine.
    pub topic: Option<String>,
    /// Where `topic` is written.
    pub topic_at: Location,
    /// Delivery policy (for the receiving side).
    pub qos: Qos,
    /// Largest message, for types without a fixed size.
    pub max_size: Option<u32>,
}

impl ConnectSpec {
    /// `from -> to`, for messages.
    pub fn describe(&self) -> String {
        let side = |e: &Option<Endpoint>| e.as_ref().map(Endpoint::to_string);
        let topic = self.topic.as_ref().map(|t| format!("topic `{t}`"));
        match (side(&self.from), side(&self.to)) {
            (Some(f), Some(t)) => format!(
                "{f} -> {t}{}",
                topic.map(|t| format!(" via {t}")).unwrap_or_default()
            ),
            (Some(f), None) => format!("{f} -> {}", topic.unwrap_or_default()),
            (None, Some(t)) => format!("{} -> {t}", topic.unwrap_or_default()),
            (None, None) => topic.unwrap_or_default(),
        }
    }
}

/// Largest message on a topic whose type has no fixed size, unless `max_size` says otherwise.
pub const DEFAULT_MAX_SIZE: u32 = 64 * 1024;
/// The largest `max_size` accepted (slots are preallocated: capacity × max_size bytes).
pub const MAX_MAX_SIZE: u32 = 64 * 1024 * 1024;

/// A validated manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The file it was read from, as given.
    pub path: PathBuf,
    /// Scheduler settings.
    pub scheduler: SchedulerSpec,
    /// Nodes, in manifest order.
    pub nodes: Vec<NodeSpec>,
    /// Connections, in manifest order.
    pub connections: Vec<ConnectSpec>,
    /// `[hub.<name>]` tables, by name.
    pub hubs: Vec<HubDecl>,
}

/// One `[hub.<name>]` of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct HubDecl {
    /// Its settings.
    pub spec: hubs::HubSpec,
    /// Where its table is written.
    pub at: Location,
}

/// The tcp hub a topic travels over: the hub named like the topic, or like its first part
/// (`sensor_hub/imu` is under `sensor_hub`).
pub fn network_hub<'a>(hubs: &'a [HubDecl], topic: &str) -> Option<&'a hubs::HubSpec> {
    let first = topic.split('/').next().unwrap_or(topic);
    hubs.iter()
        .map(|h| &h.spec)
        .find(|h| h.mode == hubs::HubMode::Tcp && h.name == first)
}
