//! Step 1 of the graph: open every plugin a manifest names, each file once. The only step that
//! touches the system (files, `dlopen`, the Python interpreter); every later step is a pure
//! function of what this one returns.

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::ffi::{LoadError, NotALibraryKind, PluginLibrary};
use crate::manifest::{Manifest, NodeCode, NodeSpec, PluginRef};
use crate::python::{self, Loader};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The plugins of a manifest, opened.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Every plugin, once each, in the order first named.
    pub plugins: Vec<Arc<PluginLibrary>>,
    /// Per node (manifest order): its plugin, or `None` when it could not be opened (reported).
    pub per_node: Vec<Option<Arc<PluginLibrary>>>,
    /// Per node: the Python loader of a Python node's environment.
    pub loaders: Vec<Option<Loader>>,
}

/// Opens the plugins of `manifest`: each Rust plugin file once (from a private copy), and the
/// Python loader of each environment that Python nodes name. Reports every file that fails.
pub fn load_plugins(manifest: &Manifest) -> (Loaded, Diagnostics) {
    let mut diags = Diagnostics::default();
    let mut loaded = Loaded::default();
    let mut by_path: HashMap<PathBuf, Option<Arc<PluginLibrary>>> = HashMap::new();
    let mut by_venv: HashMap<Option<PathBuf>, Result<Loader, python::LoaderError>> = HashMap::new();
    for spec in &manifest.nodes {
        let (file, loader) = match &spec.code {
            NodeCode::Plugin(code) => {
                let PluginRef::File(path) = &code.plugin.value;
                (path.clone(), None)
            }
            NodeCode::Python(py) => {
                let found = by_venv
                    .entry(py.venv.clone())
                    .or_insert_with(|| Loader::find(py.venv.as_deref()));
                match found {
                    Ok(loader) => (loader.extension.clone(), Some(loader.clone())),
                    Err(e) => {
                        diags.push(
                            Diagnostic::new(Code::H0025, &manifest.path, e.to_string())
                                .at(spec.code.at())
                                .node(spec.name.clone())
                                .key("python")
                                .hint(python::HINT),
                        );
                        loaded.per_node.push(None);
                        loaded.loaders.push(None);
                        continue;
                    }
                }
            }
        };
        let key = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
        let lib = by_path
            .entry(key)
            .or_insert_with(|| match open(&file, loader.as_ref()) {
                Ok(lib) => {
                    let lib = Arc::new(lib);
                    loaded.plugins.push(lib.clone());
                    Some(lib)
                }
                Err(e) => {
                    diags.push(load_diagnostic(&e, manifest, spec));
                    None
                }
            })
            .clone();
        loaded.per_node.push(lib);
        loaded.loaders.push(loader);
    }
    (loaded, diags)
}

/// A private copy of a Rust plugin, or the resident Python loader.
fn open(file: &Path, loader: Option<&Loader>) -> Result<PluginLibrary, LoadError> {
    match loader {
        None => PluginLibrary::open(file),
        Some(loader) => PluginLibrary::open_resident(file, std::slice::from_ref(&loader.libpython)),
    }
}

fn load_diagnostic(e: &LoadError, manifest: &Manifest, spec: &NodeSpec) -> Diagnostic {
    let (code, hint) = match e {
        LoadError::NotFound { .. } => (
            Code::H0010,
            "build the plugin first (`cargo build --workspace`) or fix the path; it is relative to the manifest's folder"
                .to_owned(),
        ),
        LoadError::NotALibrary {
            kind: NotALibraryKind::NotRegularFile | NotALibraryKind::NoElfHeader,
            ..
        } => (Code::H0011, "point `plugin` at the built library (a `.so` from a `crate-type = [\"cdylib\"]` crate)".into()),
        LoadError::NotALibrary {
            kind: NotALibraryKind::Refused(_),
            ..
        } => (
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
        LoadError::Read { .. } => (
            Code::H0017,
            "check that the user running horus may read the plugin file (`ls -l` shows its mode and owner)".into(),
        ),
        LoadError::Copy { .. } => (
            Code::H0017,
            "check that the plugin file is readable and that the temp dir (TMPDIR) is writable and not full".into(),
        ),
    };
    Diagnostic::new(code, &manifest.path, e.to_string())
        .at(spec.code.at())
        .node(spec.name.clone())
        .key("plugin")
        .hint(hint)
}
