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
}

/// `[scheduler]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScheduler {
    /// One of the five presets.
    pub preset: Option<Spanned<String>>,
    /// An explicit rate in Hz.
    pub tick_rate: Option<Spanned<f64>>,
}

/// One `[[node]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// Unique instance name.
    pub name: Spanned<String>,
    /// Path to the plugin library, relative to the manifest's folder.
    pub plugin: Spanned<String>,
    /// Node type inside the plugin; optional when the plugin offers exactly one.
    #[serde(rename = "type")]
    pub node_type: Option<Spanned<String>>,
    /// Lower runs first within a cycle.
    pub priority: Option<Spanned<i64>>,
    /// Optional own rate, slower than the scheduler's.
    pub rate_hz: Option<Spanned<f64>>,
    /// `inline` (more levels arrive with process supervision).
    pub isolation: Option<Spanned<String>>,
    /// Whether the node's own log lines are shown.
    pub logging: Option<Spanned<bool>>,
    /// Free-form table handed to the node.
    pub config: Option<Spanned<toml::Table>>,
}

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
pub const TOP_KEYS: &[&str] = &["scheduler", "node", "connect"];
/// Keys of `[scheduler]`.
pub const SCHEDULER_KEYS: &[&str] = &["preset", "tick_rate"];
/// Keys of `[[node]]`.
pub const NODE_KEYS: &[&str] = &[
    "name",
    "plugin",
    "type",
    "priority",
    "rate_hz",
    "isolation",
    "logging",
    "config",
];
/// Keys of `[[connect]]`.
pub const CONNECT_KEYS: &[&str] = &["from", "to", "topic", "qos", "max_size"];
