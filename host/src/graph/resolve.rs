//! Step 2 of the graph: which node type of its plugin each node runs. Pure: it reads the node
//! types a plugin offers as [`TypeDesc`]s, so it is tested without any plugin file.

use crate::diag::{suggest, Code, Diagnostic, Diagnostics};
use crate::ffi::{ConfigKeyInfo, PluginInfo, PortInfo};
use crate::manifest::{Manifest, NodeCode, NodeSpec};
use crate::python;

/// What planning knows of a node type: its name and its ports, in port order.
#[derive(Debug, Clone, Copy)]
pub struct TypeDesc<'a> {
    /// The type's name.
    pub name: &'a str,
    /// Its ports; the index is the port number.
    pub ports: &'a [PortInfo],
    /// The config keys it declares; `None`: no schema, its nodes' `config` is not checked.
    pub config: Option<&'a [ConfigKeyInfo]>,
}

/// The node types a loaded plugin offers.
pub fn offered(info: &PluginInfo) -> Vec<TypeDesc<'_>> {
    info.node_types
        .iter()
        .map(|t| TypeDesc {
            name: &t.name,
            ports: &t.ports,
            config: t.config.as_deref(),
        })
        .collect()
}

/// For each node of `manifest`, the index of its type among `offered[node]` (the types of its
/// plugin; `None` when the plugin did not load, which was reported). Reports a type the plugin
/// does not offer, and a missing `type` where the plugin offers several.
pub fn resolve_types(
    manifest: &Manifest,
    offered: &[Option<Vec<TypeDesc<'_>>>],
) -> (Vec<Option<usize>>, Diagnostics) {
    let mut diags = Diagnostics::default();
    let resolved = manifest
        .nodes
        .iter()
        .zip(offered)
        .map(|(spec, types)| {
            let types = types.as_deref()?;
            resolve(manifest, spec, types).map_err(|d| diags.push(*d)).ok()
        })
        .collect();
    (resolved, diags)
}

fn resolve(manifest: &Manifest, spec: &NodeSpec, types: &[TypeDesc<'_>]) -> Result<usize, Box<Diagnostic>> {
    let names: Vec<&str> = types.iter().map(|t| t.name).collect();
    let find = |name: &str| types.iter().position(|t| t.name == name);
    let code = match &spec.code {
        NodeCode::Plugin(code) => code,
        // The loader's one node type runs every Python node.
        NodeCode::Python(_) => {
            return find(python::NODE_TYPE).ok_or_else(|| {
                Box::new(
                    Diagnostic::new(
                        Code::H0025,
                        &manifest.path,
                        format!("the Python loader has no node type `{}`", python::NODE_TYPE),
                    )
                    .at(spec.code.at())
                    .node(spec.name.clone())
                    .key("python")
                    .hint(python::HINT),
                )
            })
        }
    };
    let plugin = &code.plugin.value;
    match &code.node_type {
        Some(asked) => find(&asked.value).ok_or_else(|| -> Box<Diagnostic> {
            let hint = match suggest(&asked.value, names.iter().copied()) {
                Some(s) => format!("did you mean `{s}`? the plugin offers: {}", names.join(", ")),
                None => format!("the plugin offers: {}", names.join(", ")),
            };
            Box::new(
                Diagnostic::new(
                    Code::H0015,
                    &manifest.path,
                    format!("plugin {plugin} has no node type `{}`", asked.value),
                )
                .at(asked.at)
                .node(spec.name.clone())
                .key("type")
                .hint(hint),
            )
        }),
        None if names.len() == 1 => Ok(0),
        None => Err(Box::new(
            Diagnostic::new(
                Code::H0015,
                &manifest.path,
                format!("plugin {plugin} offers {} node types; say which", names.len()),
            )
            .at(spec.at)
            .node(spec.name.clone())
            .key("type")
            .hint(format!(
                "add `type = \"{}\"` (offered: {})",
                names.first().copied().unwrap_or_default(),
                names.join(", ")
            )),
        )),
    }
}
