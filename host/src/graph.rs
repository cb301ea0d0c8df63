//! The runtime graph: a validated [`Manifest`] with its plugins loaded, node types resolved,
//! connections checked against the ports the plugins declare, and topics built.
//!
//! Owns every check that needs the plugins (`horus check` runs exactly this, without creating a
//! node). It does not create node objects or run anything: that is the scheduler's job.

use crate::diag::{suggest, Code, Diagnostic, Diagnostics};
use crate::ffi::{LoadError, PluginLibrary, PortInfo};
use crate::io::{NodeIo, PortBinding};
use crate::manifest::{Endpoint, Manifest, NodeSpec};
use crate::topic::{Publisher, Subscriber, TopicBuilder, TopicInfo};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// A node ready to be created: its spec, its plugin and type, and its port bindings.
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
    /// Host-side state with ports bound to topics.
    pub io: NodeIo,
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

        for spec in &manifest.nodes {
            let key = std::fs::canonicalize(&spec.plugin).unwrap_or_else(|_| spec.plugin.clone());
            let lib = by_path
                .entry(key)
                .or_insert_with(|| match PluginLibrary::open(&spec.plugin) {
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
        let mut topics: HashMap<(usize, usize), TopicBuilder> = HashMap::new();
        let mut inputs: HashMap<(usize, usize), Subscriber> = HashMap::new();
        let node_index: HashMap<&str, usize> = manifest
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        for c in &manifest.connections {
            let from = endpoint_port(
                &manifest,
                &node_index,
                &resolved,
                &c.from,
                true,
                c.from_at,
                "from",
                &mut diags,
            );
            let to = endpoint_port(
                &manifest,
                &node_index,
                &resolved,
                &c.to,
                false,
                c.to_at,
                "to",
                &mut diags,
            );
            let (Some((fi, fp, fport)), Some((ti, tp, tport))) = (from, to) else {
                continue;
            };
            if fport.type_hash != tport.type_hash {
                diags.push(
                    Diagnostic::new(
                        Code::H0022,
                        &manifest.path,
                        format!(
                            "`{}` sends `{}` but `{}` expects `{}`",
                            c.from, fport.type_name, c.to, tport.type_name
                        ),
                    )
                    .at(c.to_at)
                    .key("connect.to")
                    .hint("connect ports that carry the same message type"),
                );
                continue;
            }
            if inputs.contains_key(&(ti, tp)) {
                diags.push(
                    Diagnostic::new(
                        Code::H0023,
                        &manifest.path,
                        format!("input `{}` is connected twice", c.to),
                    )
                    .at(c.to_at)
                    .key("connect.to")
                    .hint("an input has one source; remove one of the [[connect]] entries"),
                );
                continue;
            }
            let topic = topics.entry((fi, fp)).or_insert_with(|| {
                TopicBuilder::new(TopicInfo {
                    name: c.from.to_string(),
                    type_name: fport.type_name.clone(),
                    type_hash: fport.type_hash,
                })
            });
            inputs.insert((ti, tp), topic.subscribe(c.qos));
        }
        if !diags.is_empty() {
            return Err(diags.sorted());
        }

        let mut publishers: HashMap<(usize, usize), Publisher> =
            topics.into_iter().map(|(k, t)| (k, t.publisher())).collect();
        let epoch = Instant::now();
        let mut nodes = Vec::new();
        for (i, (spec, res)) in manifest.nodes.iter().zip(resolved).enumerate() {
            let (plugin, type_index) = res.expect("every node resolved when there are no diagnostics");
            let node_type = &plugin.info().node_types[type_index];
            let bindings = node_type
                .ports
                .iter()
                .enumerate()
                .map(|(p, port)| {
                    if port.output {
                        publishers.remove(&(i, p)).map_or(
                            PortBinding::Unconnected {
                                output: true,
                                sent: 0,
                            },
                            PortBinding::Output,
                        )
                    } else {
                        inputs.remove(&(i, p)).map_or(
                            PortBinding::Unconnected {
                                output: false,
                                sent: 0,
                            },
                            PortBinding::Input,
                        )
                    }
                })
                .collect();
            let io = NodeIo::new(
                spec.name.clone(),
                spec.logging,
                spec.config.clone(),
                bindings,
                epoch,
            );
            nodes.push(GraphNode {
                spec: spec.clone(),
                type_name: node_type.name.clone(),
                plugin,
                type_index,
                io,
            });
        }
        Ok(Graph {
            manifest,
            plugins,
            nodes,
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
