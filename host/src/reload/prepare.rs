//! The part of a hot reload that runs off the scheduler thread: open the new build of a plugin
//! file (a private copy, header and ABI checks) and check, for every node that uses the file,
//! that its node type is still there with compatible ports. The scheduler thread then only swaps
//! ([`crate::ffi::NodeInstance::reload`]).

use crate::ffi::{PluginLibrary, PortInfo};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A node that runs code from a watched plugin file.
#[derive(Debug, Clone)]
pub struct Watched {
    /// The node's name.
    pub node: String,
    /// Its plugin file, as the manifest names it (resolved).
    pub file: PathBuf,
    /// Its node type's name.
    pub node_type: String,
    /// The ports its node type had when the run started.
    pub ports: Vec<PortInfo>,
    /// A Python node (`file` is its `.py`): see [`super::python`].
    pub python: Option<super::python::PythonWatch>,
    /// Its `config` as the running manifest has it, which a new build's schema must accept.
    pub config: toml::Table,
}

/// The new code for one node, ready to swap in.
#[derive(Debug, Clone)]
pub struct NewCode {
    /// The new build, loaded.
    pub plugin: Arc<PluginLibrary>,
    /// The node type's index in it.
    pub type_index: usize,
    /// Its ports in order: name and whether an output.
    pub ports: Vec<(String, bool)>,
    /// A Python node's source (restarts build it); the swap imports its file afresh.
    pub python: Option<crate::python::PythonSource>,
    /// The node's new `config`, when a live apply changed it (the same code, made again with
    /// it: [`crate::apply`]); `None` for a hot reload, which keeps the config.
    pub config: Option<toml::Table>,
}

impl NewCode {
    /// The create arguments of a Python node's new code: its source marked `fresh` (the swap
    /// imports the file again), then as it is (restarts build from that import).
    pub fn reload_arg(&self) -> Option<crate::ffi::ReloadArg> {
        self.python.as_ref().map(|source| crate::ffi::ReloadArg {
            create: source.fresh_import().encode(),
            then: source.encode(),
        })
    }
}

/// A new build of one plugin file, for every node that uses it: its new code, or why it cannot
/// be swapped in (the node keeps running its old code).
#[derive(Debug)]
pub struct Prepared {
    /// The file that changed.
    pub file: PathBuf,
    /// Per node (by name): the new code or the reason it is refused.
    pub nodes: Vec<(String, Result<NewCode, String>)>,
}

/// Opens the new build of `file` and prepares it for the `watched` nodes that use it.
pub fn prepare(file: &Path, watched: &[Watched]) -> Prepared {
    let users: Vec<&Watched> = watched.iter().filter(|w| w.file == file).collect();
    if users.iter().any(|w| w.python.is_some()) {
        return super::python::prepare(file, &users);
    }
    let opened = PluginLibrary::open(file).map(Arc::new);
    let nodes = users
        .iter()
        .map(|w| {
            let outcome = match &opened {
                Err(e) => Err(e.to_string()),
                Ok(plugin) => new_code(plugin, w),
            };
            (w.node.clone(), outcome)
        })
        .collect();
    Prepared {
        file: file.to_path_buf(),
        nodes,
    }
}

pub(super) fn new_code(plugin: &Arc<PluginLibrary>, w: &Watched) -> Result<NewCode, String> {
    let Some((type_index, node_type)) = plugin.node_type(&w.node_type) else {
        let offered: Vec<&str> = plugin.info().node_types.iter().map(|t| t.name.as_str()).collect();
        return Err(format!(
            "the new build has no node type `{}` (it offers: {})",
            w.node_type,
            offered.join(", ")
        ));
    };
    compatible(&w.ports, &node_type.ports)?;
    if let Some(keys) = &node_type.config {
        config_accepted(&w.node_type, keys, &w.config)?;
    }
    Ok(NewCode {
        plugin: plugin.clone(),
        type_index,
        ports: node_type
            .ports
            .iter()
            .map(|p| (p.name.clone(), p.output))
            .collect(),
        python: None,
        config: None,
    })
}

/// Whether a node type with ports `new` can replace one with ports `old` on the same topics:
/// every old port is still there, in the same direction, with the same message type. Ports may
/// be added (they are unconnected) and reordered.
pub fn compatible(old: &[PortInfo], new: &[PortInfo]) -> Result<(), String> {
    let dir = |output: bool| if output { "output" } else { "input" };
    for o in old {
        let Some(n) = new.iter().find(|n| n.name == o.name) else {
            return Err(format!(
                "the new build removed the {} `{}`",
                dir(o.output),
                o.name
            ));
        };
        if n.output != o.output {
            return Err(format!(
                "the new build made the {} `{}` an {}",
                dir(o.output),
                o.name,
                dir(n.output)
            ));
        }
        if n.type_hash != o.type_hash {
            return Err(format!(
                "the {} `{}` now carries `{}` (it carried `{}`)",
                dir(o.output),
                o.name,
                n.type_name,
                o.type_name
            ));
        }
    }
    Ok(())
}

/// Whether a new build whose node type declares `keys` accepts the running node's `config`:
/// the same check as `horus check` ([`crate::graph::config`]), its first problem as the reason.
pub fn config_accepted(
    node_type: &str,
    keys: &[crate::ffi::ConfigKeyInfo],
    config: &toml::Table,
) -> Result<(), String> {
    let spec = crate::manifest::NodeSpec {
        name: String::new(),
        code: crate::manifest::NodeCode::Plugin(crate::manifest::PluginCode {
            plugin: crate::manifest::Located::new(
                crate::manifest::PluginRef::Name(String::new()),
                Default::default(),
            ),
            node_type: None,
            build: None,
        }),
        priority: 0,
        rate_hz: None,
        trigger: Default::default(),
        trigger_at: None,
        timeout: None,
        deadline: None,
        watchdog: None,
        isolation: crate::manifest::Isolation::Inline,
        logging: true,
        config: config.clone(),
        config_at: Default::default(),
        at: Default::default(),
    };
    let schema = crate::graph::config::Schema {
        type_name: node_type,
        keys,
    };
    let diags = crate::graph::config::check_node_config(Path::new(""), &spec, schema);
    match diags.0.first() {
        None => Ok(()),
        Some(d) => Err(format!(
            "the new build's config schema refuses the node's config: {} [{}]",
            d.message, d.code
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_schema_that_refuses_the_running_config_is_a_reason() {
        use crate::ffi::{ConfigKeyInfo, ConfigKind};
        let keys = [ConfigKeyInfo {
            name: "step".into(),
            kind: ConfigKind::Int,
            required: true,
            default: None,
            doc: String::new(),
        }];
        let config: toml::Table = toml::from_str("step = 2").unwrap();
        config_accepted("Counter", &keys, &config).unwrap();
        let config: toml::Table = toml::from_str("stpe = 2").unwrap();
        let why = config_accepted("Counter", &keys, &config).unwrap_err();
        assert_eq!(
            why,
            "the new build's config schema refuses the node's config: unknown config key `stpe` for node \
             type `Counter` [H0040]"
        );
    }

    fn port(name: &str, output: bool, ty: &str) -> PortInfo {
        PortInfo {
            name: name.into(),
            type_name: ty.into(),
            type_hash: ty.len() as u64,
            output,
            encoding: 0,
            max_size: 8,
        }
    }

    #[test]
    fn ports_may_be_added_and_reordered_but_not_removed_or_changed() {
        let old = [port("count", true, "u64"), port("reset", false, "bool")];
        compatible(
            &old,
            &[
                port("reset", false, "bool"),
                port("extra", true, "f32"),
                port("count", true, "u64"),
            ],
        )
        .unwrap();
        assert_eq!(
            compatible(&old, &[port("count", true, "u64")]).unwrap_err(),
            "the new build removed the input `reset`"
        );
        assert_eq!(
            compatible(&old, &[port("count", true, "f64x"), port("reset", false, "bool")]).unwrap_err(),
            "the output `count` now carries `f64x` (it carried `u64`)"
        );
        assert_eq!(
            compatible(&old, &[port("count", false, "u64"), port("reset", false, "bool")]).unwrap_err(),
            "the new build made the output `count` an input"
        );
    }
}
