//! The runtime graph: a validated [`Manifest`] with its plugins loaded, node types resolved,
//! connections checked against the ports the plugins declare, and topics built.
//!
//! Owns every check that needs the plugins (`horus check` runs exactly this, without creating a
//! node). It does not create node objects or run anything: that is the scheduler's job.

use crate::diag::{suggest, Code, Diagnostic, Diagnostics};
use crate::ffi::{LoadError, PluginLibrary, PortInfo};
use crate::io::NodeIo;
use crate::manifest::{Endpoint, Manifest, NodeSpec, Qos, DEFAULT_MAX_SIZE};
use crate::shm::ShmError;
use crate::topic::{named_capacity, NetTopic, PlanSpec, PortPlan, TopicName, TopicScope};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// A node ready to be bound and created: its spec, its plugin and type, and what each of its
/// ports will be bound to.
#[derive(Debug)]
pub struct GraphNode {
    /// The manifest's declaration.
    pub spec: NodeSpec,
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

/// A node whose ports are attached to their topics: ready for the scheduler.
#[derive(Debug)]
pub struct BoundNode {
    /// The node.
    pub node: GraphNode,
    /// Its host-side state with live topic endpoints.
    pub io: NodeIo,
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
            ShmError::TypeMismatch { .. } | ShmError::SlotTooSmall { .. } | ShmError::BadHeader { .. }
        )
    }
}

/// One output's topic while connections are collected.
struct OutTopic {
    name: TopicName,
    type_name: String,
    type_hash: u64,
    slot_size: u32,
    max_depth: u32,
    subscribers: usize,
    /// The QoS of its publishing connection (`from` + `topic`).
    publish_qos: Qos,
}

/// Where an input's messages come from.
enum Source {
    Output(usize, usize),
    Named(String),
}

fn depth_of(qos: Qos) -> u32 {
    u32::try_from(qos.depth()).unwrap_or(u32::MAX)
}

fn slot_size(port: &PortInfo, max_size: Option<u32>) -> u32 {
    match port.max_size {
        0 => max_size.unwrap_or(DEFAULT_MAX_SIZE),
        n => u32::try_from(n).unwrap_or(u32::MAX),
    }
}

/// Opens a node's plugin: a private copy of a Rust plugin, or the resident Python loader.
fn open_plugin(
    spec: &crate::manifest::NodeSpec,
    loaders: &HashMap<Option<PathBuf>, Result<crate::python::Loader, String>>,
) -> Result<PluginLibrary, LoadError> {
    match &spec.python {
        None => PluginLibrary::open(&spec.plugin),
        Some(py) => {
            let loader = loaders
                .get(&py.venv)
                .and_then(|l| l.as_ref().ok())
                .expect("python nodes without a loader were skipped");
            PluginLibrary::open_resident(&loader.extension, std::slice::from_ref(&loader.libpython))
        }
    }
}

/// A manifest made runnable.
#[derive(Debug)]
pub struct Graph {
    /// The validated manifest.
    pub manifest: Manifest,
    /// Every plugin, loaded once each.
    pub plugins: Vec<Arc<PluginLibrary>>,
    /// Nodes in manifest order.
    pub nodes: Vec<GraphNode>,
    /// Topics that travel over network hubs.
    pub net: Vec<NetTopic>,
}

fn load_diagnostic(e: &LoadError, manifest: &Manifest, spec: &NodeSpec) -> Diagnostic {
    let (code, hint) = match e {
        LoadError::NotFound { .. } => (
            Code::H0010,
            "build the plugin first (`cargo build --workspace`) or fix the path; it is relative to the manifest's folder"
                .to_owned(),
        ),
        LoadError::NotALibrary { reason, .. } if reason.contains("ELF header") || reason.contains("regular file") => {
            (Code::H0011, "point `plugin` at the built library (a `.so` from a `crate-type = [\"cdylib\"]` crate)".into())
        }
        LoadError::NotALibrary { .. } => (
            Code::H0011,
            "the dynamic loader refused it for the reason above: rebuild the plugin for this machine \
             (`cargo build`), and make sure the libraries it links are installed"
                .into(),
        ),
        LoadError::NoEntrySymbol { .. } => (
            Code::H0012,
            "a HORUS plugin calls `horus_plugin_api::export_plugin!(YourNode)` once; see docs/plugins.md".into(),
        ),
        LoadError::AbiVersion { found, expected, .. } => (
            Code::H0013,
            format!(
                "rebuild the plugin against horus-plugin-api with ABI v{expected} (it has v{found}), \
                 or run it with a host of that version"
            ),
        ),
        LoadError::LayoutHash { .. } => (
            Code::H0014,
            "rebuild the plugin against the same horus-plugin-api version as this host".into(),
        ),
        LoadError::BadDescriptor { .. } => (Code::H0016, "rebuild the plugin with `export_plugin!`".into()),
        LoadError::Copy { .. } => (
            Code::H0017,
            "check that the plugin file is readable and that the temp dir (TMPDIR) is writable and not full".into(),
        ),
    };
    Diagnostic::new(code, &manifest.path, e.to_string())
        .at(spec.plugin_at)
        .node(spec.name.clone())
        .key("plugin")
        .hint(hint)
}

impl Graph {
    /// Loads and checks everything `manifest` names. Reports every problem found.
    pub fn build(manifest: Manifest) -> Result<Graph, Diagnostics> {
        let mut diags = Diagnostics::default();
        let mut by_path: HashMap<PathBuf, Option<Arc<PluginLibrary>>> = HashMap::new();
        let mut plugins = Vec::new();
        // (node spec index, plugin, type index)
        let mut resolved: Vec<Option<(Arc<PluginLibrary>, usize)>> = Vec::new();

        let mut manifest = manifest;
        let mut loaders: HashMap<Option<PathBuf>, Result<crate::python::Loader, String>> = HashMap::new();
        for spec in &mut manifest.nodes {
            let Some(py) = &spec.python else { continue };
            let loader = loaders.entry(py.venv.clone()).or_insert_with(|| {
                crate::python::Loader::find(py.venv.as_deref()).map_err(|e| e.to_string())
            });
            match loader {
                Ok(loader) => {
                    spec.plugin = loader.extension.clone();
                    spec.node_type = Some(crate::python::NODE_TYPE.into());
                    spec.config
                        .insert("python".into(), py.file.display().to_string().into());
                    spec.config.insert("class".into(), py.class.clone().into());
                    spec.config
                        .insert("program".into(), loader.executable.display().to_string().into());
                }
                Err(e) => diags.push(
                    Diagnostic::new(Code::H0025, &manifest.path, e.clone())
                        .at(spec.plugin_at)
                        .node(spec.name.clone())
                        .key("python")
                        .hint(crate::python::HINT),
                ),
            }
        }
        for spec in &manifest.nodes {
            if spec.python.is_some() && spec.plugin.as_os_str().is_empty() {
                resolved.push(None);
                continue;
            }
            let key = std::fs::canonicalize(&spec.plugin).unwrap_or_else(|_| spec.plugin.clone());
            let lib = by_path
                .entry(key)
                .or_insert_with(|| match open_plugin(spec, &loaders) {
                    Ok(lib) => {
                        let lib = Arc::new(lib);
                        plugins.push(lib.clone());
                        Some(lib)
                    }
                    Err(e) => {
                        diags.push(load_diagnostic(&e, &manifest, spec));
                        None
                    }
                })
                .clone();
            let Some(lib) = lib else {
                resolved.push(None);
                continue;
            };
            resolved.push(resolve_type(&lib, &manifest, spec, &mut diags).map(|i| (lib.clone(), i)));
        }

        // Connections: both ends must exist, directions must match, and types must agree.
        let mut outputs: HashMap<(usize, usize), OutTopic> = HashMap::new();
        let mut inputs: HashMap<(usize, usize), (Source, Qos, u32)> = HashMap::new();
        let node_index: HashMap<&str, usize> = manifest
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        for c in &manifest.connections {
            let mut port = |end: &Option<Endpoint>, output: bool, at, key| match end {
                None => Some(None),
                Some(e) => {
                    endpoint_port(&manifest, &node_index, &resolved, e, output, at, key, &mut diags).map(Some)
                }
            };
            let (Some(from), Some(to)) = (
                port(&c.from, true, c.from_at, "from"),
                port(&c.to, false, c.to_at, "to"),
            ) else {
                continue;
            };
            if let (Some((_, _, fport)), Some((_, _, tport))) = (from, to) {
                if fport.type_hash != tport.type_hash {
                    diags.push(
                        Diagnostic::new(
                            Code::H0022,
                            &manifest.path,
                            format!(
                                "`{}` sends `{}` but `{}` expects `{}`",
                                c.from.as_ref().map(Endpoint::to_string).unwrap_or_default(),
                                fport.type_name,
                                c.to.as_ref().map(Endpoint::to_string).unwrap_or_default(),
                                tport.type_name
                            ),
                        )
                        .at(c.to_at)
                        .key("connect.to")
                        .hint("connect ports that carry the same message type"),
                    );
                    continue;
                }
            }
            if let Some((ti, tp, _)) = to {
                if inputs.contains_key(&(ti, tp)) {
                    diags.push(
                        Diagnostic::new(
                            Code::H0023,
                            &manifest.path,
                            format!("input `{}` is connected twice", c.to.as_ref().expect("has to")),
                        )
                        .at(c.to_at)
                        .key("connect.to")
                        .hint("an input has one source; remove one of the [[connect]] entries"),
                    );
                    continue;
                }
            }
            if let Some((fi, fp, fport)) = from {
                let out = outputs.entry((fi, fp)).or_insert_with(|| OutTopic {
                    name: TopicName::Local(c.from.as_ref().expect("has from").to_string()),
                    type_name: fport.type_name.clone(),
                    type_hash: fport.type_hash,
                    slot_size: slot_size(fport, c.max_size),
                    max_depth: 0,
                    subscribers: 0,
                    publish_qos: Qos::DEFAULT,
                });
                if let Some(topic) = &c.topic {
                    match &out.name {
                        TopicName::Named(existing) if existing != topic => {
                            diags.push(
                                Diagnostic::new(
                                    Code::H0024,
                                    &manifest.path,
                                    format!(
                                        "output `{}` is already published as topic `{existing}`",
                                        c.from.as_ref().expect("has from")
                                    ),
                                )
                                .at(c.topic_at)
                                .key("connect.topic")
                                .hint("an output publishes on one topic; subscribe the other readers to that one"),
                            );
                            continue;
                        }
                        _ => out.name = TopicName::Named(topic.clone()),
                    }
                    out.publish_qos = c.qos;
                }
                // A subscriber's depth, or on a publishing connection (`from` + `topic`) how
                // many messages the topic holds for readers in other processes.
                out.max_depth = out.max_depth.max(depth_of(c.qos));
                if to.is_some() {
                    out.subscribers += 1;
                }
            }
            if let Some((ti, tp, tport)) = to {
                let source = match from {
                    Some((fi, fp, _)) => Source::Output(fi, fp),
                    None => Source::Named(c.topic.clone().expect("topic + to")),
                };
                inputs.insert((ti, tp), (source, c.qos, slot_size(tport, c.max_size)));
            }
        }
        if !diags.is_empty() {
            return Err(diags.sorted());
        }

        // Topics under a network hub: outputs publish on a private ring the bridge reads, and
        // inputs read a private ring per topic the bridge writes.
        let mut net = Vec::new();
        let mut net_outputs: Vec<_> = outputs.iter_mut().collect();
        net_outputs.sort_by_key(|(k, _)| **k);
        for (_, out) in net_outputs {
            let TopicName::Named(topic) = &out.name else {
                continue;
            };
            let Some(hub) = crate::manifest::network_hub(&manifest.hubs, topic) else {
                continue;
            };
            let (hub, key) = (hub.name.clone(), topic.clone());
            out.name = TopicName::Local(format!("net.out/{key}"));
            net.push(NetTopic {
                hub,
                key,
                local: out.name.clone(),
                spec: out_spec(out),
                outbound: true,
                qos: out.publish_qos,
            });
        }
        let mut net_inputs: Vec<_> = inputs.iter().collect();
        net_inputs.sort_by_key(|(k, _)| **k);
        for ((ni, pi), (source, qos, slot)) in net_inputs {
            let Source::Named(topic) = source else { continue };
            let Some(hub) = crate::manifest::network_hub(&manifest.hubs, topic) else {
                continue;
            };
            let depth = depth_of(*qos).max(2);
            if let Some(t) = net.iter_mut().find(|t| !t.outbound && &t.key == topic) {
                t.spec.capacity = t.spec.capacity.max(depth);
                t.spec.slot_size = t.spec.slot_size.max(*slot);
                if depth_of(*qos) >= depth_of(t.qos) {
                    t.qos = *qos;
                }
                continue;
            }
            let (lib, ti) = resolved[*ni].as_ref().expect("resolved");
            let port = &lib.info().node_types[*ti].ports[*pi];
            net.push(NetTopic {
                hub: hub.name.clone(),
                key: topic.clone(),
                local: TopicName::Local(format!("net.in/{topic}")),
                spec: PlanSpec {
                    type_name: port.type_name.clone(),
                    type_hash: port.type_hash,
                    slot_size: *slot,
                    capacity: depth,
                    single_producer: true,
                },
                outbound: false,
                qos: *qos,
            });
        }

        let mut nodes = Vec::new();
        for (i, (spec, res)) in manifest.nodes.iter().zip(resolved).enumerate() {
            let (plugin, type_index) = res.expect("every node resolved when there are no diagnostics");
            let node_type = &plugin.info().node_types[type_index];
            let ports = (0..node_type.ports.len())
                .map(|p| {
                    if let Some(out) = outputs.get(&(i, p)) {
                        return PortPlan::Output {
                            topic: out.name.clone(),
                            spec: out_spec(out),
                        };
                    }
                    match inputs.get(&(i, p)) {
                        Some((Source::Output(fi, fp), qos, _)) => {
                            let out = &outputs[&(*fi, *fp)];
                            PortPlan::Input {
                                topic: out.name.clone(),
                                spec: out_spec(out),
                                qos: *qos,
                            }
                        }
                        Some((Source::Named(topic), qos, _))
                            if crate::manifest::network_hub(&manifest.hubs, topic).is_some() =>
                        {
                            let t = net
                                .iter()
                                .find(|t| !t.outbound && &t.key == topic)
                                .expect("planned above");
                            PortPlan::Input {
                                topic: t.local.clone(),
                                spec: t.spec.clone(),
                                qos: *qos,
                            }
                        }
                        Some((Source::Named(topic), qos, slot)) => {
                            let port = &node_type.ports[p];
                            PortPlan::Input {
                                topic: TopicName::Named(topic.clone()),
                                spec: PlanSpec {
                                    type_name: port.type_name.clone(),
                                    type_hash: port.type_hash,
                                    slot_size: *slot,
                                    capacity: named_capacity(*slot, depth_of(*qos)),
                                    single_producer: false,
                                },
                                qos: *qos,
                            }
                        }
                        None => PortPlan::Unconnected {
                            output: node_type.ports[p].output,
                        },
                    }
                })
                .collect();
            nodes.push(GraphNode {
                spec: spec.clone(),
                type_name: node_type.name.clone(),
                port_names: node_type.ports.iter().map(|p| p.name.clone()).collect(),
                plugin,
                type_index,
                ports,
            });
        }
        Ok(Graph {
            manifest,
            plugins,
            nodes,
            net,
        })
    }
}

/// The topic an output creates: a private topic is a Link when it has one subscriber, sized for
/// its deepest subscriber; a named topic is shared, sized by [`named_capacity`].
fn out_spec(out: &OutTopic) -> PlanSpec {
    let named = matches!(out.name, TopicName::Named(_));
    PlanSpec {
        type_name: out.type_name.clone(),
        type_hash: out.type_hash,
        slot_size: out.slot_size,
        capacity: if named {
            named_capacity(out.slot_size, out.max_depth)
        } else {
            out.max_depth.max(2)
        },
        single_producer: !named,
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
            bound.push(BoundNode { node, io });
        }
        Ok(BoundGraph {
            manifest: self.manifest,
            plugins: self.plugins,
            nodes: bound,
            net: self.net,
        })
    }
}

fn resolve_type(
    lib: &PluginLibrary,
    manifest: &Manifest,
    spec: &NodeSpec,
    diags: &mut Diagnostics,
) -> Option<usize> {
    let types: Vec<&str> = lib.info().node_types.iter().map(|t| t.name.as_str()).collect();
    match &spec.node_type {
        Some(name) => match lib.node_type(name) {
            Some((i, _)) => Some(i),
            None => {
                let hint = match suggest(name, types.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`? the plugin offers: {}", types.join(", ")),
                    None => format!("the plugin offers: {}", types.join(", ")),
                };
                diags.push(
                    Diagnostic::new(
                        Code::H0015,
                        &manifest.path,
                        format!("plugin {} has no node type `{name}`", spec.plugin.display()),
                    )
                    .at(spec.type_at)
                    .node(spec.name.clone())
                    .key("type")
                    .hint(hint),
                );
                None
            }
        },
        None if types.len() == 1 => Some(0),
        None => {
            diags.push(
                Diagnostic::new(
                    Code::H0015,
                    &manifest.path,
                    format!(
                        "plugin {} offers {} node types; say which",
                        spec.plugin.display(),
                        types.len()
                    ),
                )
                .at(spec.type_at)
                .node(spec.name.clone())
                .key("type")
                .hint(format!(
                    "add `type = \"{}\"` (offered: {})",
                    types[0],
                    types.join(", ")
                )),
            );
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn endpoint_port<'a>(
    manifest: &Manifest,
    node_index: &HashMap<&str, usize>,
    resolved: &'a [Option<(Arc<PluginLibrary>, usize)>],
    end: &Endpoint,
    output: bool,
    at: crate::diag::Location,
    key: &str,
    diags: &mut Diagnostics,
) -> Option<(usize, usize, &'a PortInfo)> {
    let Some(&ni) = node_index.get(end.node.as_str()) else {
        let names: Vec<&str> = manifest.nodes.iter().map(|n| n.name.as_str()).collect();
        let hint = match suggest(&end.node, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if names.is_empty() => "the manifest declares no nodes; add a [[node]] table".to_owned(),
            None => format!("declared nodes: {}", names.join(", ")),
        };
        diags.push(
            Diagnostic::new(
                Code::H0020,
                &manifest.path,
                format!("`{key}` names unknown node `{}`", end.node),
            )
            .at(at)
            .key(format!("connect.{key}"))
            .hint(hint),
        );
        return None;
    };
    // A node whose plugin failed to load was already reported.
    let (lib, ti) = resolved[ni].as_ref()?;
    let node_type = &lib.info().node_types[*ti];
    let found = node_type
        .ports
        .iter()
        .enumerate()
        .find(|(_, p)| p.output == output && p.name == end.port);
    if let Some((pi, port)) = found {
        return Some((ni, pi, port));
    }
    let (want, other) = if output {
        ("output", "input")
    } else {
        ("input", "output")
    };
    let candidates: Vec<&str> = node_type
        .ports
        .iter()
        .filter(|p| p.output == output)
        .map(|p| p.name.as_str())
        .collect();
    let wrong_direction = node_type
        .ports
        .iter()
        .any(|p| p.output != output && p.name == end.port);
    let hint = if wrong_direction {
        format!(
            "`{}` is an {other} of `{}`; `{key}` must name an {want}",
            end.port, node_type.name
        )
    } else {
        match suggest(&end.port, candidates.iter().copied()) {
            Some(s) => format!("did you mean `{}.{s}`?", end.node),
            None if candidates.is_empty() => format!("node type `{}` has no {want}s", node_type.name),
            None => format!("{want}s of `{}`: {}", node_type.name, candidates.join(", ")),
        }
    };
    diags.push(
        Diagnostic::new(
            Code::H0021,
            &manifest.path,
            format!(
                "node `{}` (type `{}`) has no {want} `{}`",
                end.node, node_type.name, end.port
            ),
        )
        .at(at)
        .key(format!("connect.{key}"))
        .hint(hint),
    );
    None
}
