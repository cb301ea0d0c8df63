//! What the scheduler takes: one [`NodeSetup`] per node, with its endpoints attached
//! ([`BoundNode`]). A manifest's graph makes them (`graph::Graph::bind`), and so does the Python
//! package for the nodes of a `horus.Scheduler`; neither has to invent manifest locations or
//! file paths for it.

use crate::ffi::PluginLibrary;
use crate::io::NodeIo;
use crate::manifest::{Isolation, Trigger};
use crate::python::PythonSource;
use crate::topic::PortPlan;
use std::sync::Arc;
use std::time::Duration;

/// How the scheduler makes, runs, supervises and reports one node.
#[derive(Debug, Clone)]
pub struct NodeSetup {
    /// Unique instance name.
    pub name: String,
    /// The plugin its node type lives in.
    pub plugin: Arc<PluginLibrary>,
    /// The node type's index in the plugin.
    pub type_index: usize,
    /// For a `PythonNode`: which Python object it runs (handed to the loader's own create
    /// entry, see [`crate::ffi::CreateWithArgFn`]).
    pub python: Option<PythonSource>,
    /// The node's config, as the user wrote it.
    pub config: toml::Table,
    /// What each port is bound to, in port order.
    pub ports: Vec<PortPlan>,
    /// Port names, in port order.
    pub port_names: Vec<String>,
    /// Lower runs first; ties keep the given order.
    pub priority: i64,
    /// Own rate, if slower than the scheduler's; for an input-triggered node, the most it may
    /// tick.
    pub rate_hz: Option<f64>,
    /// What makes the node tick.
    pub trigger: Trigger,
    /// An input-triggered node ticks anyway after this long without input.
    pub timeout: Option<Duration>,
    /// Tick deadline.
    pub deadline: Option<Duration>,
    /// Watchdog timeout set on this node (enables its watchdog).
    pub watchdog: Option<Duration>,
    /// Where the node's calls run.
    pub isolation: Isolation,
    /// Whether the node's log lines are shown.
    pub logging: bool,
    /// Where the node comes from, as the stats' `plugin` field shows it.
    pub origin: String,
}

impl NodeSetup {
    /// The node type's name.
    pub fn type_name(&self) -> &str {
        &self.plugin.info().node_types[self.type_index].name
    }
}

/// A node whose ports are attached to their topics: what [`super::run`] takes.
#[derive(Debug)]
pub struct BoundNode {
    /// The node.
    pub setup: NodeSetup,
    /// Its host-side state with live topic endpoints.
    pub io: NodeIo,
}
