//! The manifest as parsed: serde types that mirror the TOML exactly, with spans, and no meaning
//! yet. `deny_unknown_fields` is a backstop: [`super::validate`] reports every unknown key first,
//! from the key lists below, and checks every value afterwards.

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    /// `[scheduler]`.
    #[serde(default)]
    pub scheduler: Option<Spanned<RawScheduler>>,
    /// `[[node]]` entries.
    #[serde(default, rename = "node")]
    pub nodes: Vec<Spanned<RawNode>>,
    /// `[[connect]]` entries.
    #[serde(default, rename = "connect")]
    pub connections: Vec<Spanned<RawConnect>>,
    /// `[hub.<name>]` tables.
    #[serde(default)]
    pub hub: std::collections::BTreeMap<String, Spanned<RawHub>>,
    /// `[plugins]`.
    #[serde(default)]
    pub plugins: Option<Spanned<RawPlugins>>,
}

/// `[plugins]`: where named plugins are looked for first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlugins {
    /// Folders searched before `HORUS_PLUGIN_PATH`, relative to the manifest's folder.
    pub path: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One `[hub.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHub {
    /// `local` or `tcp`.
    pub mode: Spanned<String>,
    /// `host:port` of a tcp hub.
    pub address: Option<Spanned<String>>,
}

/// `[scheduler]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScheduler {
    /// One of the five presets.
    pub preset: Option<Spanned<String>>,
    /// An explicit rate in Hz.
    pub tick_rate: Option<Spanned<f64>>,
    /// Stop ticking a node after `max_failures` consecutive failures.
    pub circuit_breaker: Option<Spanned<bool>>,
    /// Consecutive failures that open the breaker.
    pub max_failures: Option<Spanned<i64>>,
    /// Restart a node whose breaker opened, after a backoff.
    pub auto_restart: Option<Spanned<bool>>,
    /// First restart delay in ms.
    pub restart_backoff_ms: Option<Spanned<i64>>,
    /// Longest restart delay in ms.
    pub restart_backoff_max_ms: Option<Spanned<i64>>,
    /// Count ticks longer than their node's deadline.
    pub deadline_monitoring: Option<Spanned<bool>>,
    /// Watch every node for ticks that do not complete.
    pub watchdog_enabled: Option<Spanned<bool>>,
    /// Default watchdog timeout in ms.
    pub watchdog_timeout_ms: Option<Spanned<i64>>,
    /// Reload a node when its plugin file changes (as `horus run --watch`).
    pub hot_reload: Option<Spanned<bool>>,
}

/// One `[[node]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// Unique instance name.
    pub name: Spanned<String>,
    /// The plugin library: a name on the search path (`imu-sim`), or a path (contains `/` or
    /// ends in `.so`) relative to the manifest's folder.
    pub plugin: Option<Spanned<String>>,
    /// A Python node: path to its file, relative to the manifest's folder.
    pub python: Option<Spanned<String>>,
    /// The `horus.Node` subclass in the `python` file.
    pub class: Option<Spanned<String>>,
    /// The virtual environment (folder) the Python node runs in.
    pub venv: Option<Spanned<String>>,
    /// Node type inside the plugin; optional when the plugin offers exactly one. Alone (no
    /// `plugin`), the plugin on the search path that offers it.
    #[serde(rename = "type")]
    pub node_type: Option<Spanned<String>>,
    /// Lower runs first within a cycle.
    pub priority: Option<Spanned<i64>>,
    /// Optional own rate, slower than the scheduler's.
    pub rate_hz: Option<Spanned<f64>>,
    /// What makes the node tick: `"rate"` (default), `"input"`, or a list of input ports. Any
    /// TOML value: [`super::validate`] checks its shape and says what to write.
    pub trigger: Option<Spanned<toml::Value>>,
    /// An input-triggered node ticks anyway after this long without input.
    pub timeout_ms: Option<Spanned<i64>>,
    /// Tick deadline in ms.
    pub deadline_ms: Option<Spanned<f64>>,
    /// Watchdog timeout in ms for this node (enables its watchdog).
    pub watchdog_ms: Option<Spanned<i64>>,
    /// `inline` (more levels arrive with process supervision).
    pub isolation: Option<Spanned<String>>,
    /// Whether the node's own log lines are shown.
    pub logging: Option<Spanned<bool>>,
    /// The table handed to the node; each key and value spanned, so a schema error points at
    /// the key (`horus check` verifies it against the node type's declared config keys).
    pub config: Option<Spanned<RawConfig>>,
    /// A shell command that rebuilds the node's plugin (`--watch` runs it on a source change).
    pub build: Option<Spanned<String>>,
    /// Globs of the files whose change runs `build`, relative to the manifest's folder.
    pub watch: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A node's `config` table as parsed: every key and value with its span.
pub type RawConfig = std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>>;

/// One `[[connect]]`: two of `from`, `to` and `topic`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnect {
    /// `node.output`.
    pub from: Option<Spanned<String>>,
    /// `node.input`.
    pub to: Option<Spanned<String>>,
    /// A named topic shared with other processes.
    pub topic: Option<Spanned<String>>,
    /// `keep_last(N)` or `reliable` / `reliable(N)`.
    pub qos: Option<Spanned<String>>,
    /// Largest message in bytes, for message types without a fixed size.
    pub max_size: Option<Spanned<i64>>,
}

/// The keys each table accepts, for "did you mean" hints. Keep in sync with the structs above
/// (a unit test checks it).
pub const TOP_KEYS: &[&str] = &["scheduler", "node", "connect", "hub", "plugins"];
/// Keys of `[plugins]`.
pub const PLUGINS_KEYS: &[&str] = &["path"];
/// Keys of `[scheduler]`.
pub const SCHEDULER_KEYS: &[&str] = &[
    "preset",
    "tick_rate",
    "circuit_breaker",
    "max_failures",
    "auto_restart",
    "restart_backoff_ms",
    "restart_backoff_max_ms",
    "deadline_monitoring",
    "watchdog_enabled",
    "watchdog_timeout_ms",
    "hot_reload",
];
/// Keys of `[[node]]`.
pub const NODE_KEYS: &[&str] = &[
    "name",
    "plugin",
    "python",
    "class",
    "venv",
    "type",
    "priority",
    "rate_hz",
    "trigger",
    "timeout_ms",
    "deadline_ms",
    "watchdog_ms",
    "isolation",
    "logging",
    "config",
    "build",
    "watch",
];
/// Keys of `[[connect]]`.
pub const CONNECT_KEYS: &[&str] = &["from", "to", "topic", "qos", "max_size"];
/// Keys of `[hub.<name>]`.
pub const HUB_KEYS: &[&str] = &["mode", "address"];
