//! The manifest: a TOML file declaring the scheduler, the nodes and their connections.
//!
//! Staged types: [`raw::RawManifest`] (as parsed, with spans) becomes a [`Manifest`] (validated,
//! defaults filled, paths resolved) in [`validate`]. Checks that need the plugins themselves (the
//! file is a plugin, the node type and ports exist, message types match) belong to
//! [`crate::graph`], which turns a `Manifest` into the runtime graph. The reference for users is
//! `docs/manifest.md`.

pub mod hubs;
pub mod limits;
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
    pub fn parse(text: &str) -> Result<Qos, QosError> {
        let text = text.trim();
        let (kind, arg) = match text.find('(') {
            Some(open) if text.ends_with(')') => (&text[..open], Some(&text[open + 1..text.len() - 1])),
            Some(_) => return Err(QosError::Unclosed(text.to_owned())),
            None => (text, None),
        };
        let depth = match arg {
            None => None,
            Some(a) => match a.trim().parse::<usize>() {
                Ok(n) if (1..=Qos::MAX_DEPTH).contains(&n) => Some(n),
                _ => return Err(QosError::Depth(a.to_owned())),
            },
        };
        match (kind.trim(), depth) {
            ("keep_last", Some(n)) => Ok(Qos::KeepLast(n)),
            ("keep_last", None) => Err(QosError::KeepLastWithoutDepth),
            ("reliable", n) => Ok(Qos::Reliable(n.unwrap_or(Qos::DEFAULT_RELIABLE_DEPTH))),
            (other, _) => Err(QosError::Unknown(other.to_owned())),
        }
    }
}

/// Why a QoS text does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QosError {
    /// `reliable(8` and the like.
    #[error("`{0}` is missing its closing `)`")]
    Unclosed(String),
    /// A depth that is not a whole number in range.
    #[error("queue depth `{0}` must be a whole number from 1 to {max}", max = Qos::MAX_DEPTH)]
    Depth(String),
    /// `keep_last` alone.
    #[error("`keep_last` needs a depth, e.g. `keep_last(4)`")]
    KeepLastWithoutDepth,
    /// Neither `keep_last` nor `reliable`.
    #[error("unknown QoS `{0}`")]
    Unknown(String),
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

/// What makes a node tick (`trigger =`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Trigger {
    /// Every cycle of the scheduler, or every `rate_hz` (today's behaviour).
    #[default]
    Rate,
    /// As soon as any input has a message.
    Input,
    /// As soon as one of these inputs has a message (port names, as written).
    Ports(Vec<String>),
}

impl Trigger {
    /// True for [`Trigger::Input`] and [`Trigger::Ports`].
    pub fn is_input(&self) -> bool {
        !matches!(self, Trigger::Rate)
    }

    /// The manifest spelling: `rate`, `input`, or `["a", "b"]`.
    pub fn describe(&self) -> String {
        match self {
            Trigger::Rate => "rate".into(),
            Trigger::Input => "input".into(),
            Trigger::Ports(ports) => {
                let quoted: Vec<String> = ports.iter().map(|p| format!("\"{p}\"")).collect();
                format!("[{}]", quoted.join(", "))
            }
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

/// The validated scheduler settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerSpec {
    /// Cycles per second.
    pub tick_rate: f64,
    /// The preset it came from, if any.
    pub preset: Option<Preset>,
    /// Supervision.
    pub supervision: SupervisionSpec,
    /// Reload nodes whose plugin file changes (`hot_reload = true`, or `horus run --watch`).
    pub hot_reload: bool,
}

impl Default for SchedulerSpec {
    fn default() -> Self {
        SchedulerSpec {
            tick_rate: Preset::Standard.tick_rate(),
            preset: Some(Preset::Standard),
            supervision: SupervisionSpec::default(),
            hot_reload: false,
        }
    }
}

/// A validated `[[node]]`: what the manifest says, as written (the graph reads it, nothing
/// rewrites it).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    /// Unique instance name.
    pub name: String,
    /// Where the node's code comes from.
    pub code: NodeCode,
    /// Lower runs first; ties keep manifest order.
    pub priority: i64,
    /// Own rate, if slower than the scheduler's; for an input-triggered node, the most it may
    /// tick.
    pub rate_hz: Option<f64>,
    /// What makes the node tick.
    pub trigger: Trigger,
    /// Where `trigger =`'s value is written (`None` when absent).
    pub trigger_at: Option<Location>,
    /// An input-triggered node ticks anyway after this long without input.
    pub timeout: Option<std::time::Duration>,
    /// Tick deadline.
    pub deadline: Option<std::time::Duration>,
    /// Watchdog timeout set on this node (enables its watchdog).
    pub watchdog: Option<std::time::Duration>,
    /// Where the node's calls run.
    pub isolation: Isolation,
    /// Whether the node's log lines are shown.
    pub logging: bool,
    /// The node's `config` table, exactly as written.
    pub config: toml::Table,
    /// Where the `config` table and each of its keys are written (for config schema errors).
    pub config_at: ConfigLocations,
    /// Where the node's table starts.
    pub at: Location,
}

/// Where a node's `config` is written: the table, and each of its top-level keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigLocations {
    /// The `config` value (`{` of an inline table, or the first key of a `[node.config]`
    /// table); `None` when the node has no `config`.
    pub table: Option<Location>,
    /// Each key, in the order written, with the location of the key and of its value.
    pub keys: Vec<ConfigKeyAt>,
}

/// One key of a node's `config`, located.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigKeyAt {
    /// The key.
    pub name: String,
    /// Where the key is written.
    pub key: Location,
    /// Where its value is written.
    pub value: Location,
}

impl ConfigLocations {
    /// Where key `name` is written, if it is.
    pub fn key(&self, name: &str) -> Option<&ConfigKeyAt> {
        self.keys.iter().find(|k| k.name == name)
    }
}

/// Where a node's code comes from: a node type of a Rust plugin, or a class in a Python file.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeCode {
    /// `plugin = ...` with an optional `type = ...`, or `type = ...` alone.
    Plugin(PluginCode),
    /// `python = ...` with `class = ...` (and an optional `venv = ...`).
    Python(PythonSpec),
}

impl NodeCode {
    /// Where the code is named in the manifest (`plugin =`, `type =` of a type-only node, or
    /// `python =`).
    pub fn at(&self) -> Location {
        match self {
            NodeCode::Plugin(p) => p.plugin.at,
            NodeCode::Python(py) => py.file.at,
        }
    }
}

/// A node type of a Rust plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginCode {
    /// The plugin library, located at `plugin =` (or at `type =` for [`PluginRef::OfType`]).
    pub plugin: Located<PluginRef>,
    /// The node type asked for (`type =`); `None` when the plugin must offer exactly one.
    pub node_type: Option<Located<String>>,
    /// How to rebuild the plugin when its sources change (`build =`, `watch =`), if given.
    pub build: Option<BuildSpec>,
}

/// A plugin node's development loop: under `--watch`, a change of its sources runs `command`,
/// and the plugin file it rebuilds is then reloaded like any new build
/// ([`crate::reload::build`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BuildSpec {
    /// The shell command (`sh -c`), run in [`BuildSpec::dir`].
    pub command: Located<String>,
    /// Globs of the sources (`watch =`), relative to [`BuildSpec::dir`], each checked to parse;
    /// `None`: the crate folders named by a `cargo build` command.
    pub watch: Option<Vec<Located<String>>>,
    /// The manifest's folder: where the command runs and the globs start.
    pub dir: PathBuf,
}

/// How a manifest names a plugin library. Only [`PluginRef::File`] is a location; the other two
/// are found on the plugin search path ([`crate::plugins`]) by the graph's first step.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginRef {
    /// A file path (the value contains `/` or ends in `.so`), resolved against the manifest's
    /// folder.
    File(PathBuf),
    /// A plugin name (`plugin = "imu-sim"`): `libimu_sim.so` in the first folder of the search
    /// path that has it.
    Name(String),
    /// No `plugin` key: the plugin on the search path that offers the node's `type` (the first
    /// folder where one does). Located at the `type` value.
    OfType(String),
}

impl fmt::Display for PluginRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginRef::File(path) => write!(f, "{}", path.display()),
            PluginRef::Name(name) => write!(f, "`{name}`"),
            PluginRef::OfType(node_type) => write!(f, "offering `{node_type}`"),
        }
    }
}

/// A Python node's file, class and environment.
#[derive(Debug, Clone, PartialEq)]
pub struct PythonSpec {
    /// The node's file (resolved against the manifest's folder); located at `python =`.
    pub file: Located<PathBuf>,
    /// The `horus.Node` subclass to instantiate.
    pub class: String,
    /// Where `class =`'s value is written.
    pub class_at: Location,
    /// The virtual environment, if given (resolved against the manifest's folder).
    pub venv: Option<PathBuf>,
}

/// A value with the place in the manifest where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Where it is written.
    pub at: Location,
}

impl<T> Located<T> {
    /// `value`, written at `at`.
    pub fn new(value: T, at: Location) -> Located<T> {
        Located { value, at }
    }
}

/// One side of a connection: `node.port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// A validated `[[connect]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectSpec {
    /// What it joins.
    pub route: Route,
    /// Delivery policy (for the receiving side; on [`Route::Publish`], how many messages the
    /// topic holds for readers in other processes).
    pub qos: Qos,
    /// Largest message, for types without a fixed size.
    pub max_size: Option<u32>,
    /// Where the `[[connect]]` table starts.
    pub at: Location,
}

/// The three shapes of a connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// `from` + `to`: an output to an input of this manifest.
    Nodes {
        /// The output.
        from: Located<Endpoint>,
        /// The input.
        to: Located<Endpoint>,
    },
    /// `from` + `topic`: an output published on a named topic.
    Publish {
        /// The output.
        from: Located<Endpoint>,
        /// The topic.
        topic: Located<String>,
    },
    /// `topic` + `to`: an input subscribed to a named topic.
    Subscribe {
        /// The topic.
        topic: Located<String>,
        /// The input.
        to: Located<Endpoint>,
    },
}

impl ConnectSpec {
    /// The output, if this manifest has it.
    pub fn from(&self) -> Option<&Located<Endpoint>> {
        match &self.route {
            Route::Nodes { from, .. } | Route::Publish { from, .. } => Some(from),
            Route::Subscribe { .. } => None,
        }
    }

    /// The input, if this manifest has it.
    pub fn to(&self) -> Option<&Located<Endpoint>> {
        match &self.route {
            Route::Nodes { to, .. } | Route::Subscribe { to, .. } => Some(to),
            Route::Publish { .. } => None,
        }
    }

    /// The named topic, if any.
    pub fn topic(&self) -> Option<&Located<String>> {
        match &self.route {
            Route::Publish { topic, .. } | Route::Subscribe { topic, .. } => Some(topic),
            Route::Nodes { .. } => None,
        }
    }

    /// `from -> to`, for messages.
    pub fn describe(&self) -> String {
        match &self.route {
            Route::Nodes { from, to } => format!("{} -> {}", from.value, to.value),
            Route::Publish { from, topic } => format!("{} -> topic `{}`", from.value, topic.value),
            Route::Subscribe { topic, to } => format!("topic `{}` -> {}", topic.value, to.value),
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
    /// `[plugins] path`: folders searched first for plugins named by name or by type, resolved
    /// against the manifest's folder; each located at its entry.
    pub plugin_path: Vec<Located<PathBuf>>,
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
