//! Step 1 of the graph: open every plugin a manifest names, each file once. The only step that
//! touches the system (files, `dlopen`, the Python interpreter); every later step is a pure
//! function of what this one returns.
//!
//! A loader can check a plugin's header before it follows the descriptor, but not that the
//! descriptor's pointers are sane: a broken library (a C plugin returning a bogus pointer) would
//! crash the process that reads it. So with an [`Inspector`], a plugin is first opened by a child
//! process (`horus __inspect <file>`, see [`inspect_plugin`]) and only loaded here if the child
//! survived; a crash or a hang of the child is diagnostic H0030. `horus check` inspects every
//! plugin, `horus run` those of `process` nodes (the ones meant to be kept at arm's length).

use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::ffi::{LoadError, NotALibraryKind, PluginLibrary};
use crate::manifest::Isolation;
use crate::manifest::{Manifest, NodeCode, NodeSpec, PluginCode, PluginRef};
use crate::plugins::{scan, SearchPath, TypeError};
use crate::python::{self, Loader};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which plugins a child process opens before this one does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspector {
    /// The `horus` binary (its hidden `__inspect` command).
    pub program: PathBuf,
    /// Every plugin (`horus check`), or only those of `process` nodes (`horus run`).
    pub all: bool,
    /// Libraries this process already runs: a file among them that is unchanged is taken as
    /// it is, neither inspected nor opened again (a manifest applied to a running host).
    pub resident: Resident,
}

/// Plugin libraries a running host has loaded, each with its file's canonical path and stamp
/// when loaded; held weakly (a library the host has let go of, e.g. replaced by a hot reload,
/// is not kept mapped for this).
#[derive(Debug, Clone, Default)]
pub struct Resident(Vec<(PathBuf, crate::plugins::Stamp, std::sync::Weak<PluginLibrary>)>);

impl PartialEq for Resident {
    fn eq(&self, other: &Resident) -> bool {
        let files = |r: &Resident| r.0.iter().map(|(p, s, _)| (p.clone(), *s)).collect::<Vec<_>>();
        files(self) == files(other)
    }
}

impl Eq for Resident {}

impl Resident {
    /// Adds `libs` (just loaded: their files' stamps are taken now); forgets the libraries
    /// nobody uses any more.
    pub fn remember<'a>(&mut self, libs: impl IntoIterator<Item = &'a Arc<PluginLibrary>>) {
        self.0.retain(|(_, _, lib)| lib.strong_count() > 0);
        for lib in libs {
            let path = &lib.info().path;
            let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            if self
                .0
                .iter()
                .any(|(p, _, l)| *p == key && l.ptr_eq(&Arc::downgrade(lib)))
            {
                continue;
            }
            if let Some(stamp) = crate::plugins::Stamp::of(&key) {
                self.0.push((key, stamp, Arc::downgrade(lib)));
            }
        }
    }

    /// The loaded library of file `key` (canonical), if the host still has it and the file is
    /// unchanged since.
    fn get(&self, key: &Path) -> Option<Arc<PluginLibrary>> {
        let now = crate::plugins::Stamp::of(key)?;
        self.0
            .iter()
            .rev()
            .filter(|(p, s, _)| p == key && *s == now)
            .find_map(|(_, _, lib)| lib.upgrade())
    }
}

/// How long an inspection may take before the library counts as hung, unless
/// `HORUS_INSPECT_TIMEOUT_MS` says otherwise (a very large library on a slow disk).
pub const INSPECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one inspecting child may take: [`INSPECT_TIMEOUT`] or `HORUS_INSPECT_TIMEOUT_MS`.
pub fn inspect_timeout() -> Duration {
    std::env::var("HORUS_INSPECT_TIMEOUT_MS")
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .map_or(INSPECT_TIMEOUT, |ms| Duration::from_millis(ms.clamp(10, 600_000)))
}

/// The child side of an inspection (`horus __inspect <file>`): opens `file` as a plugin, which
/// reads and copies its whole descriptor, prints what it offers — or why it is refused — as one
/// JSON line on stdout (a [`scan::Verdict`], for [`crate::plugins::scan`]), and the load error
/// on stderr too. Returns
/// the exit code: 0 when it opened, 1 when it is refused (the parent then loads it itself and
/// reports why). A crash kills this process, which is the point.
pub fn inspect_plugin(file: &Path) -> u8 {
    use std::io::Write;
    let verdict = scan::open_here(file);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(scan::verdict_line(&verdict).as_bytes());
    let _ = out.flush();
    match verdict {
        scan::Verdict::Plugin(_) => 0,
        scan::Verdict::Refused(r) => {
            eprintln!("{}", r.reason);
            1
        }
    }
}

/// Opens `file` in a child process first: `Err` with the diagnostic's message when the child
/// crashed or hung; `Ok` otherwise (also when it could not be started, which is logged).
fn inspect(inspector: &Inspector, file: &Path) -> Result<(), String> {
    tracing::debug!(plugin = %file.display(), "inspecting the plugin in a child process");
    let child = Command::new(&inspector.program)
        .arg("__inspect")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            tracing::debug!(plugin = %file.display(), "cannot inspect the plugin in a child process: {e}");
            return Ok(());
        }
    };
    let started = Instant::now();
    let timeout = inspect_timeout();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return crashed(status).map_or(Ok(()), Err),
            Ok(None) if started.elapsed() < timeout => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "loading it did not finish within {:.1} s (its initialisers or its entry point hang)",
                    timeout.as_secs_f64()
                ));
            }
            Err(e) => {
                tracing::debug!(plugin = %file.display(), "cannot wait for the inspecting process: {e}");
                return Ok(());
            }
        }
    }
}

/// The message for a child that died of a signal.
fn crashed(status: ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    let signal = status.signal()?;
    Some(format!(
        "loading it killed the process that inspected it: signal {signal}{}",
        crate::worker::signal_name(signal)
    ))
}

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
/// Python loader of each environment that Python nodes name. A plugin named by name or found by
/// its node type is first located on the search path ([`crate::plugins`]; the files of the path
/// are opened only for type-only nodes, by the inspector's child processes when there is one).
/// Reports every file that fails.
pub fn load_plugins(manifest: &Manifest, inspector: Option<&Inspector>) -> (Loaded, Diagnostics) {
    let mut diags = Diagnostics::default();
    let search = SearchPath::from_manifest(manifest);
    let mut scanner = scan::Scanner::new(inspector.map(|i| i.program.as_path()));
    // Type-only nodes take what earlier runs found from the registry cache (read only when a
    // node needs it: names and paths cost a file lookup, no more).
    let type_only = manifest.nodes.iter().any(|n| {
        matches!(&n.code, NodeCode::Plugin(PluginCode { plugin, .. }) if matches!(plugin.value, PluginRef::OfType(_)))
    });
    if type_only {
        if let Some(cache) = crate::plugins::Registry::open_default() {
            scanner = scanner.with_cache(cache);
        }
    }
    let mut loaded = Loaded::default();
    let mut by_path: HashMap<PathBuf, Option<Arc<PluginLibrary>>> = HashMap::new();
    let mut by_venv: HashMap<Option<PathBuf>, Result<Loader, python::LoaderError>> = HashMap::new();
    // Files a child already opened (true) or failed on (false, reported once).
    let mut inspected_files: HashMap<PathBuf, bool> = HashMap::new();
    for spec in &manifest.nodes {
        let (file, loader) = match &spec.code {
            NodeCode::Plugin(code) => match locate(manifest, spec, code, &search, &mut scanner) {
                Ok(path) => (path, None),
                Err(d) => {
                    diags.push(*d);
                    loaded.per_node.push(None);
                    loaded.loaders.push(None);
                    continue;
                }
            },
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
        // A library the running host already has, its file unchanged: taken as it is.
        if loader.is_none() && !by_path.contains_key(&key) {
            if let Some(lib) = inspector.and_then(|i| i.resident.get(&key)) {
                inspected_files.insert(key.clone(), true);
                loaded.plugins.push(lib.clone());
                by_path.insert(key.clone(), Some(lib));
            }
        }
        let inspected =
            inspector.filter(|i| loader.is_none() && (i.all || spec.isolation == Isolation::Process));
        // A file the scan of the search path opened in a child already passed.
        if matches!(scanner.verdict(&file), Some(scan::Verdict::Plugin(_))) {
            inspected_files.insert(key.clone(), true);
        }
        if let Some(inspector) = inspected {
            if !inspected_files.contains_key(&key) {
                let verdict = inspect(inspector, &file);
                inspected_files.insert(key.clone(), verdict.is_ok());
                if let Err(why) = verdict {
                    diags.push(
                        Diagnostic::new(
                            Code::H0030,
                            &manifest.path,
                            format!("plugin {}: {why}", file.display()),
                        )
                        .at(spec.code.at())
                        .node(spec.name.clone())
                        .key("plugin")
                        .hint(CRASH_HINT),
                    );
                    by_path.insert(key.clone(), None);
                }
            }
        }
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

/// The file of a plugin node: its path, or the plugin its name or its type finds on `search`.
fn locate(
    manifest: &Manifest,
    spec: &NodeSpec,
    code: &PluginCode,
    search: &SearchPath,
    scanner: &mut scan::Scanner,
) -> Result<PathBuf, Box<Diagnostic>> {
    let diag = |code_: Code, key: &str, message: String, hint: String| {
        Box::new(
            Diagnostic::new(code_, &manifest.path, message)
                .at(code.plugin.at)
                .node(spec.name.clone())
                .key(key)
                .hint(hint),
        )
    };
    match &code.plugin.value {
        PluginRef::File(path) => Ok(path.clone()),
        PluginRef::Name(name) => match search.find_by_name(name) {
            Ok(found) => {
                for later in &found.shadowed {
                    tracing::debug!(node = %spec.name, plugin = %found.file.display(), "shadows {}", later.display());
                }
                Ok(found.file)
            }
            Err(e) => {
                let did_you_mean = e
                    .suggestion
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                Err(diag(
                    Code::H0032,
                    "plugin",
                    format!(
                        "no plugin `{name}` ({}) in the plugin search path: {}",
                        e.file_name,
                        search.describe()
                    ),
                    format!(
                        "{did_you_mean}build the plugin, or add its folder to `[plugins] path` or {}, or give \
                         the path of its .so (see docs/plugins.md)",
                        crate::plugins::search::ENV
                    ),
                ))
            }
        },
        PluginRef::OfType(node_type) => match scanner.find_by_type(search, node_type) {
            Ok(file) => Ok(file),
            Err(TypeError::NotFound { suggestion, refused }) => {
                let did_you_mean = suggestion
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                let refused = match refused.len() {
                    0 => String::new(),
                    n => format!(
                        "; {n} file{} of the path {} refused: {}{}",
                        if n == 1 { "" } else { "s" },
                        if n == 1 { "was" } else { "were" },
                        refused
                            .iter()
                            .take(3)
                            .map(|r| format!("{} ({})", r.file.display(), r.reason))
                            .collect::<Vec<_>>()
                            .join("; "),
                        if n > 3 {
                            format!("; and {} more", n - 3)
                        } else {
                            String::new()
                        }
                    ),
                };
                Err(diag(
                    Code::H0033,
                    "type",
                    format!(
                        "no plugin in the plugin search path offers node type `{node_type}`: {}{refused}",
                        search.describe()
                    ),
                    format!(
                        "{did_you_mean}build the plugin that offers it, or add its folder to `[plugins] path` \
                         or {}, or name it with `plugin = \"<name or path>\"` (see docs/plugins.md)",
                        crate::plugins::search::ENV
                    ),
                ))
            }
            Err(TypeError::Ambiguous { folder, files }) => {
                let names: Vec<String> = files
                    .iter()
                    .map(|f| f.file_name().unwrap_or_default().to_string_lossy().into_owned())
                    .collect();
                let example = names
                    .first()
                    .and_then(|n| crate::plugins::search::name_of(n))
                    .unwrap_or_else(|| files.first().map(|f| f.display().to_string()).unwrap_or_default());
                Err(diag(
                    Code::H0034,
                    "type",
                    format!(
                        "node type `{node_type}` is offered by {} plugins in {}: {}",
                        files.len(),
                        folder.display(),
                        names.join(", ")
                    ),
                    format!(
                        "name the one to use, e.g. `plugin = \"{example}\"` next to `type = \"{node_type}\"`, \
                         or remove the other file from the folder"
                    ),
                ))
            }
        },
    }
}

const CRASH_HINT: &str = "the library's `horus_plugin_entry` or the descriptor it returns is broken \
     (or its initialisers crash): rebuild the plugin with `export_plugin!` against horus-plugin-api; \
     see docs/plugins.md";

/// A private copy of a Rust plugin, or the resident Python loader.
fn open(file: &Path, loader: Option<&Loader>) -> Result<PluginLibrary, LoadError> {
    match loader {
        None => PluginLibrary::open(file),
        Some(loader) => PluginLibrary::open_resident(file, std::slice::from_ref(&loader.libpython)),
    }
}

/// The hint of H0010 (a `plugin` path that names no file). The plugin is most often one the
/// user has not built yet, and usually not one of this workspace: the hint says to build the
/// plugin's own crate, and offers the name form, which the search path resolves for a debug and a
/// release build alike (`horus plugins` shows what it finds).
pub(crate) fn not_found_hint(path: &Path) -> String {
    let release = path.components().any(|c| c.as_os_str() == "release");
    let build = if release {
        "`cargo build --release`"
    } else {
        "`cargo build`"
    };
    let by_name = match path
        .file_name()
        .and_then(|f| crate::plugins::search::name_of(&f.to_string_lossy()))
    {
        Some(name) => format!(
            "; or name the plugin instead of its file (`plugin = \"{name}\"`) to find it on the plugin \
             search path"
        ),
        None => "; or name the plugin instead of its file to find it on the plugin search path".to_owned(),
    };
    format!(
        "build the plugin's crate first ({build} in the crate's folder) or fix the path, which is relative \
         to the manifest's folder{by_name}; `horus plugins` lists the plugins found there (docs/plugins.md)"
    )
}

fn load_diagnostic(e: &LoadError, manifest: &Manifest, spec: &NodeSpec) -> Diagnostic {
    let (code, hint) = match e {
        LoadError::NotFound { path } => (Code::H0010, not_found_hint(path)),
        LoadError::NotALibrary {
            kind: NotALibraryKind::NotRegularFile | NotALibraryKind::NoElfHeader,
            ..
        } => (
            Code::H0011,
            "point `plugin` at the built library (a `.so` from a `crate-type = [\"cdylib\"]` crate)".into(),
        ),
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
            "a HORUS plugin calls `horus_plugin_api::export_plugin!(YourNode)` once; see docs/plugins.md"
                .into(),
        ),
        LoadError::AbiVersion { found, expected, .. } if found < expected => (
            Code::H0013,
            format!(
                "rebuild the plugin against the current horus-plugin-api (ABI v{expected}; `cargo build` \
                 in the plugin's crate after updating its horus-plugin-api dependency){}",
                if *found < 2 {
                    ": ABI v2 added the config schema node types declare"
                } else {
                    ""
                }
            ),
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
            "check that the user running horus may read the plugin file (`ls -l` shows its mode and owner)"
                .into(),
        ),
        LoadError::Copy { .. } => (
            Code::H0017,
            "check that the plugin file is readable and that the temp dir (TMPDIR) is writable and not full"
                .into(),
        ),
    };
    Diagnostic::new(code, &manifest.path, e.to_string())
        .at(spec.code.at())
        .node(spec.name.clone())
        .key("plugin")
        .hint(hint)
}
