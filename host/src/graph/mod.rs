//! The runtime graph: a validated [`Manifest`] with its plugins loaded, node types resolved,
//! connections checked against the ports the plugins declare, and topics built.
//!
//! Owns every check that needs the plugins (`horus check` runs exactly this, without creating a
//! node). It does not create node objects or run anything: that is the scheduler's job.

pub mod config;
mod connect;
mod load;
mod network;
mod ports;
mod resolve;
#[cfg(test)]
mod tests;

pub use connect::{check_connections, Input, Output, PortId, Source, Wiring};
pub use load::{inspect_plugin, inspect_timeout, load_plugins, Inspector, Loaded, Resident, INSPECT_TIMEOUT};
pub use network::{plan_network, NetPlan};
pub use ports::plan_ports;
pub use resolve::{resolve_types, TypeDesc};

use crate::diag::{suggest, Code, Diagnostic, Diagnostics};
use crate::ffi::PluginLibrary;
use crate::io::NodeIo;
use crate::manifest::{Manifest, NodeCode, NodeSpec, Trigger};
use crate::python::PythonSource;
use crate::scheduler::{BoundNode, NodeSetup};
use crate::shm::ShmError;
use crate::topic::{NetTopic, PortPlan, TopicScope};
use std::sync::Arc;
use std::time::Instant;

/// A node ready to be bound and created: its spec, its plugin and type, and what each of its
/// ports will be bound to.
#[derive(Debug)]
pub struct GraphNode {
    /// The manifest's declaration, as written.
    pub spec: NodeSpec,
    /// A Python node's source (its file, class and interpreter), for the loader.
    pub python: Option<PythonSource>,
    /// The plugin the node type lives in.
    pub plugin: Arc<PluginLibrary>,
    /// Index of the node type in the plugin.
    pub type_index: usize,
    /// The node type's name.
    pub type_name: String,
    /// One plan per port of the node type, in port order.
    pub ports: Vec<PortPlan>,
    /// Port names, in port order.
    pub port_names: Vec<String>,
}

/// A port could not be attached to its topic when the run started.
#[derive(Debug, thiserror::Error)]
#[error("node `{node}`, port `{port}`: {source}")]
pub struct BindError {
    /// The node.
    pub node: String,
    /// The port.
    pub port: String,
    /// Why.
    #[source]
    pub source: Box<ShmError>,
}

/// A graph whose ports are attached: what the scheduler runs.
#[derive(Debug)]
pub struct BoundGraph {
    /// The validated manifest.
    pub manifest: Manifest,
    /// Every plugin, loaded once each; drop them only after the scheduler thread is joined.
    pub plugins: Vec<Arc<PluginLibrary>>,
    /// Nodes with live topic endpoints.
    pub nodes: Vec<BoundNode>,
    /// Topics that travel over network hubs.
    pub net: Vec<NetTopic>,
}

impl BindError {
    /// True when the cause is the user's input (a topic of another type or size, a foreign or
    /// corrupt segment), false for system failures.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            *self.source,
            ShmError::TypeMismatch { .. }
                | ShmError::SlotTooSmall { .. }
                | ShmError::BadHeader { .. }
                | ShmError::ProducerTaken { .. }
                | ShmError::NoSpace { .. }
        )
    }

    /// The error as a diagnostic of the manifest at `path`, when it has a stable code: a second
    /// producer on a Link (H0028), a topic that does not fit in /dev/shm (H0029).
    pub fn diagnostic(&self, path: &std::path::Path) -> Option<crate::diag::Diagnostic> {
        use crate::diag::{Code, Diagnostic};
        match *self.source {
            ShmError::ProducerTaken { .. } => Some(Diagnostic::new(Code::H0028, path, self.to_string()).hint(
                "a Link has exactly one producer: stop the other process that publishes on it, or use a named \
                 topic (multi-producer) for several publishers",
            )),
            ShmError::NoSpace { .. } => Some(
                Diagnostic::new(
                    Code::H0029,
                    path,
                    format!("port `{}`: {}", self.port, self.source),
                )
                .node(&self.node)
                .hint(
                    "every topic's memory is committed when the run starts: make the topic's queue \
                         (`qos`) or `max_size` smaller, or /dev/shm larger",
                ),
            ),
            _ => None,
        }
    }
}

/// A manifest made runnable.
#[derive(Debug)]
pub struct Graph {
    /// The validated manifest, as written.
    pub manifest: Manifest,
    /// Every plugin, loaded once each.
    pub plugins: Vec<Arc<PluginLibrary>>,
    /// Nodes in manifest order.
    pub nodes: Vec<GraphNode>,
    /// Topics that travel over network hubs.
    pub net: Vec<NetTopic>,
}

impl Graph {
    /// Loads and checks everything `manifest` names; reports every problem found. The steps:
    /// [`load_plugins`] (the only one that touches the system), then the pure ones:
    /// [`resolve_types`], [`check_connections`], [`plan_network`], [`plan_ports`].
    pub fn build(manifest: Manifest) -> Result<Graph, Diagnostics> {
        Graph::build_with(manifest, None)
    }

    /// [`Graph::build`], opening plugins in a child process first as `inspector` says (see
    /// [`load`]).
    pub fn build_with(manifest: Manifest, inspector: Option<&Inspector>) -> Result<Graph, Diagnostics> {
        let (loaded, mut diags) = load_plugins(&manifest, inspector);
        if inspector.is_some() {
            diags.append(check_python_nodes(&manifest, &loaded));
        }
        let offered: Vec<Option<Vec<TypeDesc<'_>>>> = loaded
            .per_node
            .iter()
            .map(|lib| lib.as_deref().map(|lib| resolve::offered(lib.info())))
            .collect();
        let (indices, resolve_diags) = resolve_types(&manifest, &offered);
        diags.append(resolve_diags);
        let types: Vec<Option<TypeDesc<'_>>> = indices
            .iter()
            .zip(&offered)
            .map(|(i, types)| Some(types.as_ref()?[(*i)?]))
            .collect();
        diags.append(check_configs(&manifest, &types));
        diags.append(check_triggers(&manifest, &types));
        let wiring = match check_connections(&manifest, &types) {
            Ok(wiring) => wiring,
            Err(more) => {
                diags.append(more);
                return Err(diags.sorted());
            }
        };
        if !diags.is_empty() {
            return Err(diags.sorted());
        }
        let net = plan_network(&manifest.hubs, &wiring, &types);
        let mut nodes = Vec::with_capacity(manifest.nodes.len());
        for (ni, spec) in manifest.nodes.iter().enumerate() {
            let (Some(plugin), Some(type_index), Some(node_type)) =
                (loaded.per_node[ni].clone(), indices[ni], types[ni])
            else {
                unreachable!("every node resolved when there are no diagnostics");
            };
            nodes.push(GraphNode {
                python: python_source(spec, loaded.loaders[ni].as_ref()),
                spec: spec.clone(),
                type_name: node_type.name.to_owned(),
                port_names: node_type.ports.iter().map(|p| p.name.clone()).collect(),
                ports: plan_ports(ni, node_type, &wiring, &net),
                plugin,
                type_index,
            });
        }
        drop(offered);
        Ok(Graph {
            manifest,
            plugins: loaded.plugins,
            nodes,
            net: net.topics,
        })
    }
}

/// Each plugin node's `config` against the schema its node type declares ([`config`]). Python
/// nodes are checked from their class's `CONFIG` (see `crate::pycheck`).
pub fn check_configs(manifest: &Manifest, types: &[Option<TypeDesc<'_>>]) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for (spec, ty) in manifest.nodes.iter().zip(types) {
        let (Some(ty), NodeCode::Plugin(_)) = (ty, &spec.code) else {
            continue;
        };
        if let Some(keys) = ty.config {
            let schema = config::Schema {
                type_name: ty.name,
                keys,
            };
            diags.append(config::check_node_config(&manifest.path, spec, schema));
        }
    }
    diags
}

/// Each input-triggered node's `trigger` against the inputs its node type declares (H0046): a
/// listed port must be an input, and `trigger = "input"` needs the type to have one.
pub fn check_triggers(manifest: &Manifest, types: &[Option<TypeDesc<'_>>]) -> Diagnostics {
    let mut diags = Diagnostics::default();
    for (spec, ty) in manifest.nodes.iter().zip(types) {
        let (Some(ty), Some(at)) = (ty, spec.trigger_at) else {
            continue;
        };
        if matches!(spec.code, crate::manifest::NodeCode::Python(_)) {
            // A Python node declares no ports: its trigger names the topics it reads.
            continue;
        }
        let inputs: Vec<&str> = ty
            .ports
            .iter()
            .filter(|p| !p.output)
            .map(|p| p.name.as_str())
            .collect();
        let listing = if inputs.is_empty() {
            format!(
                "node type `{}` has no inputs: it can only tick by rate (remove `trigger`)",
                ty.name
            )
        } else {
            format!("inputs of `{}`: {}", ty.name, inputs.join(", "))
        };
        let unknown: Vec<&str> = match &spec.trigger {
            Trigger::Rate => continue,
            Trigger::Input if inputs.is_empty() => {
                diags.push(
                    Diagnostic::new(
                        Code::H0046,
                        &manifest.path,
                        format!(
                            "node `{}` is input-triggered but its type has no inputs",
                            spec.name
                        ),
                    )
                    .at(at)
                    .node(spec.name.clone())
                    .key("trigger")
                    .hint(listing),
                );
                continue;
            }
            Trigger::Input => continue,
            Trigger::Ports(ports) => ports
                .iter()
                .map(String::as_str)
                .filter(|p| !inputs.contains(p))
                .collect(),
        };
        for port in unknown {
            let output = ty.ports.iter().any(|p| p.output && p.name == port);
            let hint = match suggest(port, inputs.iter().copied()) {
                _ if output => format!("`{port}` is an output; {listing}"),
                Some(s) => format!("did you mean `{s}`? {listing}"),
                None => listing.clone(),
            };
            diags.push(
                Diagnostic::new(
                    Code::H0046,
                    &manifest.path,
                    format!(
                        "`trigger` names `{port}`, which is not an input of node type `{}`",
                        ty.name
                    ),
                )
                .at(at)
                .node(spec.name.clone())
                .key("trigger")
                .hint(hint),
            );
        }
    }
    diags
}

/// Each Python node's file imported by its own interpreter in a child process: the file imports,
/// its `class` is a `horus.Node`, and its `config` fits the class's `CONFIG`
/// ([`crate::pycheck`]). Run when plugins are inspected in child processes (`horus check` and
/// `horus run` from the CLI); the nodes of one environment are checked in parallel.
pub fn check_python_nodes(manifest: &Manifest, loaded: &Loaded) -> Diagnostics {
    let timeout = inspect_timeout();
    let jobs: Vec<_> = manifest
        .nodes
        .iter()
        .zip(&loaded.loaders)
        .filter_map(|(spec, loader)| match (&spec.code, loader) {
            (NodeCode::Python(py), Some(loader)) => Some((spec, py, loader.executable.clone())),
            _ => None,
        })
        .collect();
    let answers: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(_, py, program)| s.spawn(move || crate::pycheck::inspect(program, py, timeout)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| crate::pycheck::Answer::Failed("the check panicked".into()))
            })
            .collect()
    });
    let mut diags = Diagnostics::default();
    for ((spec, py, _), answer) in jobs.iter().zip(answers) {
        diags.append(crate::pycheck::diagnostics(&manifest.path, spec, py, answer));
    }
    diags
}

/// What the Python loader runs for a Python node.
fn python_source(spec: &NodeSpec, loader: Option<&crate::python::Loader>) -> Option<PythonSource> {
    let (NodeCode::Python(py), Some(loader)) = (&spec.code, loader) else {
        return None;
    };
    Some(PythonSource::File {
        file: py.file.value.clone(),
        class: py.class.clone(),
        program: loader.executable.clone(),
        fresh: false,
    })
}

impl GraphNode {
    /// What the scheduler runs: the node without its manifest locations.
    pub fn setup(self) -> NodeSetup {
        let spec = self.spec;
        NodeSetup {
            origin: self.plugin.info().path.display().to_string(),
            name: spec.name,
            plugin: self.plugin,
            type_index: self.type_index,
            python: self.python,
            config: spec.config,
            ports: self.ports,
            port_names: self.port_names,
            priority: spec.priority,
            rate_hz: spec.rate_hz,
            trigger: spec.trigger,
            timeout: spec.timeout,
            deadline: spec.deadline,
            watchdog: spec.watchdog,
            isolation: spec.isolation,
            logging: spec.logging,
        }
    }
}

impl Graph {
    /// Attaches every port to its topic (creating the segments) and makes each node's
    /// host-side state. Subscribers attach before anything is sent, so nothing is missed.
    pub fn bind(self, scope: &TopicScope) -> Result<BoundGraph, BindError> {
        let epoch = Instant::now();
        let mut bound = Vec::with_capacity(self.nodes.len());
        for node in self.nodes {
            let bindings = scope.bind(&node.ports).map_err(|(port, source)| BindError {
                node: node.spec.name.clone(),
                port: node.port_names[port].clone(),
                source: Box::new(source),
            })?;
            let io = NodeIo::new(
                node.spec.name.clone(),
                node.spec.logging,
                node.spec.config.clone(),
                node.port_names.clone(),
                bindings,
                epoch,
            );
            bound.push(BoundNode {
                setup: node.setup(),
                io,
            });
        }
        Ok(BoundGraph {
            manifest: self.manifest,
            plugins: self.plugins,
            nodes: bound,
            net: self.net,
        })
    }
}
