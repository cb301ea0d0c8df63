//! What the plugins on the search path offer: finding the plugin of a node type
//! ([`Scanner::find_by_type`]), and the list of every plugin and every refused file
//! ([`Scanner::scan`], what a `horus plugins` lists).
//!
//! Knowing a library's node types means reading its descriptor, which runs its code. So a file
//! is first looked at without loading it ([`super::elf`]): not ELF, not a shared library, no
//! `horus_plugin_entry` symbol, or a Python extension (the Python loader, which must never be
//! loaded as an ordinary plugin) — each refused at once, with its reason. The rest are opened by
//! a child process (`horus __inspect <file>`, which prints the descriptor as one JSON line), several
//! at a time, so that a library that crashes or hangs when loaded is a refused file, not a dead
//! host; only without a `horus` program to run (the library used from other code) are they
//! opened in this process. What a child found is kept in the registry cache
//! ([`super::cache::Registry`], when the scanner has one) under the file's identity, so the next
//! run opens only files that are new or changed. Each file is looked at once per [`Scanner`], and
//! only when a node names a type alone (or for a listing): nothing is opened for nodes that name
//! their plugin.
//!
//! A refused file is never an error of the run: it is just not a candidate.

use super::cache::Registry;
use super::elf::{self, Symbols};
use super::search::{so_files, SearchPath};
use crate::diag::{suggest, Code};
use crate::ffi::{LoadError, PluginInfo, PluginLibrary, PortInfo};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a plugin offers, as read from its descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Described {
    /// The plugin's name (its crate's).
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// The plugin ABI version it was built against (a plugin this host loads speaks the host's).
    pub abi_version: u32,
    /// Its node types, in the descriptor's order.
    pub types: Vec<NodeTypeDesc>,
}

impl Described {
    /// The node types' names.
    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.types.iter().map(|t| t.name.as_str())
    }

    /// Node type `name`, if the plugin offers it.
    pub fn node_type(&self, name: &str) -> Option<&NodeTypeDesc> {
        self.types.iter().find(|t| t.name == name)
    }
}

/// One node type of a plugin, as its descriptor declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTypeDesc {
    /// The type's name, as a manifest's `type` names it.
    pub name: String,
    /// Its ports, in declaration order.
    pub ports: Vec<PortDesc>,
    /// Its config keys, in declaration order; `None`: it declares no schema (its config is not
    /// checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Vec<ConfigKeyDesc>>,
}

/// One config key a node type declares.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigKeyDesc {
    /// The key.
    pub name: String,
    /// Its kind: bool, int, float, str, array or table.
    pub kind: String,
    /// The manifest must set it.
    pub required: bool,
    /// Its default, as a TOML value (`0.98`, `"base_link"`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// One line of documentation (may be empty).
    #[serde(default)]
    pub doc: String,
}

impl ConfigKeyDesc {
    fn of(key: &crate::ffi::ConfigKeyInfo) -> ConfigKeyDesc {
        ConfigKeyDesc {
            name: key.name.clone(),
            kind: key.kind.name().to_owned(),
            required: key.required,
            default: key.default.as_ref().map(toml::Value::to_string),
            doc: key.doc.clone(),
        }
    }
}

/// Which way a port carries messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The node receives on it (`to = "node.port"`).
    Input,
    /// The node sends on it (`from = "node.port"`).
    Output,
}

impl Direction {
    /// `input` or `output`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Input => "input",
            Direction::Output => "output",
        }
    }
}

/// One port of a node type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortDesc {
    /// The port's name (`node.<name>` in `[[connect]]`).
    pub name: String,
    /// Input or output.
    pub direction: Direction,
    /// The message type's name; both ends of a connection must have the same.
    pub message_type: String,
    /// The message type's hash.
    pub type_hash: u64,
    /// How messages are encoded: `pod` (plain data, copied as is), `postcard` (serde), `bytes`.
    pub encoding: String,
    /// The largest message in bytes, 0 when the type is unbounded.
    pub max_size: u64,
}

impl PortDesc {
    /// The slot size the host gives the port's topic unless the connection sets `max_size`:
    /// the type's exact size, else [`crate::manifest::DEFAULT_MAX_SIZE`].
    pub fn slot_size(&self) -> u64 {
        match self.max_size {
            0 => u64::from(crate::manifest::DEFAULT_MAX_SIZE),
            n => n,
        }
    }

    fn of(port: &PortInfo) -> PortDesc {
        use horus_plugin_api::abi;
        PortDesc {
            name: port.name.clone(),
            direction: if port.output {
                Direction::Output
            } else {
                Direction::Input
            },
            message_type: port.type_name.clone(),
            type_hash: port.type_hash,
            encoding: match port.encoding {
                abi::ENCODING_POD => "pod".to_owned(),
                abi::ENCODING_POSTCARD => "postcard".to_owned(),
                abi::ENCODING_BYTES => "bytes".to_owned(),
                other => format!("unknown ({other})"),
            },
            max_size: port.max_size,
        }
    }
}

/// What kind of file a refused one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// It cannot be read (permissions), or copied to be loaded.
    Unreadable,
    /// Not a shared library: no ELF header, an executable, or the dynamic loader refused it.
    NotALibrary,
    /// A shared library without the `horus_plugin_entry` symbol.
    NotAPlugin,
    /// A Python extension module (such as the Python loader).
    PythonExtension,
    /// Built against another plugin ABI version.
    AbiVersion,
    /// Built against another layout of the plugin ABI.
    AbiLayout,
    /// Its descriptor is malformed.
    BadDescriptor,
    /// Loading it killed the process that inspected it.
    Crashed,
    /// Loading it did not finish in time.
    Hung,
    /// The inspection failed otherwise (the child printed nothing usable).
    Failed,
}

impl RefusalKind {
    /// The kind as JSON writes it (`not_a_library`).
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::Unreadable => "unreadable",
            RefusalKind::NotALibrary => "not_a_library",
            RefusalKind::NotAPlugin => "not_a_plugin",
            RefusalKind::PythonExtension => "python_extension",
            RefusalKind::AbiVersion => "abi_version",
            RefusalKind::AbiLayout => "abi_layout",
            RefusalKind::BadDescriptor => "bad_descriptor",
            RefusalKind::Crashed => "crashed",
            RefusalKind::Hung => "hung",
            RefusalKind::Failed => "failed",
        }
    }

    /// The error code a manifest naming such a file gets, and `horus inspect` prints.
    pub fn code(self) -> Code {
        match self {
            RefusalKind::Unreadable => Code::H0017,
            RefusalKind::NotALibrary => Code::H0011,
            RefusalKind::NotAPlugin | RefusalKind::PythonExtension => Code::H0012,
            RefusalKind::AbiVersion => Code::H0013,
            RefusalKind::AbiLayout => Code::H0014,
            RefusalKind::BadDescriptor => Code::H0016,
            RefusalKind::Crashed | RefusalKind::Hung | RefusalKind::Failed => Code::H0030,
        }
    }

    fn of(e: &LoadError) -> RefusalKind {
        match e {
            LoadError::NotFound { .. } | LoadError::Read { .. } | LoadError::Copy { .. } => {
                RefusalKind::Unreadable
            }
            LoadError::NotALibrary { .. } => RefusalKind::NotALibrary,
            LoadError::NoEntrySymbol { .. } => RefusalKind::NotAPlugin,
            LoadError::AbiVersion { .. } => RefusalKind::AbiVersion,
            LoadError::LayoutHash { .. } => RefusalKind::AbiLayout,
            LoadError::BadDescriptor { .. } => RefusalKind::BadDescriptor,
        }
    }
}

/// Why a file is not a usable plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// What kind of file it is.
    pub kind: RefusalKind,
    /// Why, in words.
    pub reason: String,
}

impl Refusal {
    fn new(kind: RefusalKind, reason: impl Into<String>) -> Refusal {
        Refusal {
            kind,
            reason: reason.into(),
        }
    }
}

/// What looking at one file found. As JSON (`{"plugin": …}` or `{"refused": …}`) it is what a
/// `horus __inspect` child prints and what the registry cache keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A node plugin this host can load.
    Plugin(Described),
    /// Not a candidate, and why.
    Refused(Refusal),
}

/// One plugin on the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The file.
    pub file: PathBuf,
    /// What it offers.
    pub plugin: Described,
    /// The file of the same name in an earlier folder, which wins over this one.
    pub shadowed_by: Option<PathBuf>,
}

/// A file of the path that is not a usable plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The file.
    pub file: PathBuf,
    /// What kind of file it is.
    pub kind: RefusalKind,
    /// Why.
    pub reason: String,
}

/// Everything on the path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// The plugins, in search order.
    pub found: Vec<Listed>,
    /// The refused files, in search order.
    pub refused: Vec<Refused>,
}

/// Why a node type cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeError {
    /// No plugin on the path offers it.
    NotFound {
        /// The closest type offered on the path, if one is close enough to be a typo.
        suggestion: Option<String>,
        /// Files of the path that were refused (they might have been the one).
        refused: Vec<Refused>,
    },
    /// Two or more plugins of the first folder offering it do.
    Ambiguous {
        /// The folder.
        folder: PathBuf,
        /// The plugins offering it there.
        files: Vec<PathBuf>,
    },
}

/// How many files a scanner opened and how many it took from the registry cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanCounts {
    /// Files opened (by a child, or in this process): new or changed since the cache saw them.
    pub inspected: usize,
    /// Files whose verdict came from the registry cache.
    pub cached: usize,
}

/// Looks at the files of a search path, each once.
#[derive(Debug, Default)]
pub struct Scanner {
    program: Option<PathBuf>,
    timeout: Option<Duration>,
    seen: HashMap<PathBuf, Verdict>,
    cache: Option<Registry>,
    counts: ScanCounts,
}

/// How many children inspect at once.
const PARALLEL: usize = 8;

impl Scanner {
    /// A scanner that opens candidates in child processes of `program` (the `horus` binary) or,
    /// without one, in this process.
    pub fn new(program: Option<&Path>) -> Scanner {
        Scanner {
            program: program.map(Path::to_path_buf),
            ..Scanner::default()
        }
    }

    /// Gives each child at most `timeout` (else [`crate::graph::INSPECT_TIMEOUT`] or
    /// `HORUS_INSPECT_TIMEOUT_MS`).
    pub fn with_timeout(mut self, timeout: Duration) -> Scanner {
        self.timeout = Some(timeout);
        self
    }

    /// Keeps what children find in `cache`, and takes from it what it already knows about an
    /// unchanged file.
    pub fn with_cache(mut self, cache: Registry) -> Scanner {
        self.cache = Some(cache);
        self
    }

    /// The registry cache, if the scanner has one.
    pub fn cache(&self) -> Option<&Registry> {
        self.cache.as_ref()
    }

    /// How many files were opened and how many came from the cache so far.
    pub fn counts(&self) -> ScanCounts {
        self.counts
    }

    /// The plugin offering node type `name`: in the first folder of `path` where any plugin
    /// offers it, the one plugin there that does.
    pub fn find_by_type(&mut self, path: &SearchPath, name: &str) -> Result<PathBuf, TypeError> {
        for folder in path.folders() {
            let files = so_files(&folder.dir);
            self.look_at(&files);
            // One file per library: a symlink beside its target is not a second plugin.
            let mut offering: Vec<PathBuf> = Vec::new();
            let mut libraries: Vec<PathBuf> = Vec::new();
            for file in &files {
                let offers = matches!(self.verdict(file), Some(Verdict::Plugin(d)) if d.type_names().any(|t| t == name));
                let k = key(file);
                if offers && !libraries.contains(&k) {
                    libraries.push(k);
                    offering.push(file.clone());
                }
            }
            match offering.len() {
                0 => continue,
                1 => return Ok(offering.into_iter().next().unwrap_or_default()),
                _ => {
                    return Err(TypeError::Ambiguous {
                        folder: folder.dir.clone(),
                        files: offering,
                    })
                }
            }
        }
        let scan = self.scan(path);
        let types: Vec<&str> = scan.found.iter().flat_map(|l| l.plugin.type_names()).collect();
        Err(TypeError::NotFound {
            suggestion: suggest(name, types).map(str::to_owned),
            refused: scan.refused,
        })
    }

    /// Every plugin and every refused `.so` file of `path`, in search order.
    pub fn scan(&mut self, path: &SearchPath) -> Scan {
        let mut scan = Scan::default();
        let mut first_of_name: HashMap<std::ffi::OsString, PathBuf> = HashMap::new();
        for folder in path.folders() {
            let files = so_files(&folder.dir);
            self.look_at(&files);
            for file in files {
                let name = file.file_name().unwrap_or_default().to_owned();
                match self.verdict(&file).cloned() {
                    Some(Verdict::Plugin(plugin)) => {
                        let shadowed_by = first_of_name.get(&name).cloned();
                        first_of_name.entry(name).or_insert_with(|| file.clone());
                        scan.found.push(Listed {
                            file,
                            plugin,
                            shadowed_by,
                        });
                    }
                    Some(Verdict::Refused(r)) => scan.refused.push(Refused {
                        file,
                        kind: r.kind,
                        reason: r.reason,
                    }),
                    None => {}
                }
            }
        }
        scan
    }

    /// What `file` is (any file, on the path or not), looking at it first if needed.
    pub fn look_at_file(&mut self, file: &Path) -> Verdict {
        self.look_at(&[file.to_path_buf()]);
        self.verdict(file)
            .cloned()
            .unwrap_or_else(|| Verdict::Refused(Refusal::new(RefusalKind::Failed, "it was not looked at")))
    }

    /// What was found about `file`, once it has been looked at.
    pub fn verdict(&self, file: &Path) -> Option<&Verdict> {
        self.seen.get(&key(file))
    }

    /// Looks at every file of `files` not seen yet: the quick checks, then the registry cache,
    /// then the loader for what is left, in parallel children; what the loader found goes into
    /// the cache, which is saved once at the end.
    fn look_at(&mut self, files: &[PathBuf]) {
        let mut to_open = Vec::new();
        for file in files {
            let k = key(file);
            if self.seen.contains_key(&k) || to_open.iter().any(|(kk, _)| *kk == k) {
                continue;
            }
            if let Some(refusal) = quick_check(file) {
                self.seen.insert(k, Verdict::Refused(refusal));
                continue;
            }
            if let Some(verdict) = self.cache.as_ref().and_then(|c| c.get(&k)) {
                self.counts.cached += 1;
                self.seen.insert(k, verdict.clone());
                continue;
            }
            to_open.push((k, file.clone()));
        }
        if to_open.is_empty() {
            return;
        }
        let timeout = self.timeout.unwrap_or_else(crate::graph::inspect_timeout);
        for batch in to_open.chunks(PARALLEL) {
            let verdicts: Vec<(Verdict, bool)> = match &self.program {
                Some(program) => {
                    let children: Vec<_> = batch
                        .iter()
                        .map(|(_, f)| {
                            tracing::debug!(plugin = %f.display(), "inspecting the plugin in a child process");
                            spawn(program, f)
                        })
                        .collect();
                    let deadline = Instant::now() + timeout;
                    children
                        .into_iter()
                        .zip(batch)
                        .map(|(child, (_, f))| match child {
                            Ok(child) => collect(child, deadline, timeout),
                            // Cannot start a child: open it here, as without a program.
                            Err(_) => (open_here(f), true),
                        })
                        .collect()
                }
                None => batch.iter().map(|(_, f)| (open_here(f), true)).collect(),
            };
            self.counts.inspected += batch.len();
            for ((k, _), (verdict, lasting)) in batch.iter().zip(verdicts) {
                if lasting {
                    if let Some(cache) = &mut self.cache {
                        cache.insert(k, &verdict);
                    }
                }
                self.seen.insert(k.clone(), verdict);
            }
        }
        if let Some(cache) = &mut self.cache {
            cache.save();
        }
    }
}

/// A file by what it is, so a symlink and its target are looked at once.
fn key(file: &Path) -> PathBuf {
    std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf())
}

/// Why `file` is certainly not a node plugin, found without loading it; `None` when only
/// loading it can tell.
pub fn quick_check(file: &Path) -> Option<Refusal> {
    match elf::symbols(file) {
        Err(e) => Some(Refusal::new(RefusalKind::Unreadable, format!("cannot read it: {e}"))),
        Ok(Symbols::NotElf) => Some(Refusal::new(
            RefusalKind::NotALibrary,
            "not a shared library (no ELF header)",
        )),
        Ok(Symbols::NotSharedObject) => Some(Refusal::new(
            RefusalKind::NotALibrary,
            "an ELF file, but not a shared library",
        )),
        Ok(Symbols::Read {
            python_extension: true,
            ..
        }) => Some(Refusal::new(
            RefusalKind::PythonExtension,
            "a Python extension module (such as the Python loader, which runs `python =` nodes), not a node plugin",
        )),
        Ok(Symbols::Read { entry: false, .. }) => Some(Refusal::new(
            RefusalKind::NotAPlugin,
            "a shared library without the `horus_plugin_entry` symbol: not a HORUS plugin",
        )),
        Ok(Symbols::Read { entry: true, .. } | Symbols::Unknown) => None,
    }
}

/// Opens `file` in this process: what it offers, or why it is refused.
pub fn open_here(file: &Path) -> Verdict {
    match PluginLibrary::open(file) {
        Ok(lib) => Verdict::Plugin(described(lib.info())),
        Err(e) => Verdict::Refused(Refusal::new(RefusalKind::of(&e), e.to_string())),
    }
}

/// What a loaded plugin offers, from its (host-owned) descriptor.
pub fn described(info: &PluginInfo) -> Described {
    Described {
        name: info.name.clone(),
        version: info.version.clone(),
        // The loader refuses any other version before it reads the descriptor.
        abi_version: horus_plugin_api::abi::ABI_VERSION,
        types: info
            .node_types
            .iter()
            .map(|t| NodeTypeDesc {
                name: t.name.clone(),
                ports: t.ports.iter().map(PortDesc::of).collect(),
                config: t
                    .config
                    .as_ref()
                    .map(|keys| keys.iter().map(ConfigKeyDesc::of).collect()),
            })
            .collect(),
    }
}

/// The verdict as `horus __inspect` prints it: one JSON line.
pub fn verdict_line(verdict: &Verdict) -> String {
    let mut line = serde_json::to_string(verdict).unwrap_or_default();
    line.push('\n');
    line
}

fn parse_verdict(text: &str) -> Option<Verdict> {
    serde_json::from_str(text.lines().next()?).ok()
}

fn spawn(program: &Path, file: &Path) -> std::io::Result<Child> {
    Command::new(program)
        .arg("__inspect")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
}

/// The child's verdict, and whether it lasts (a property of the file, worth caching) rather
/// than of this attempt (a child that could not be waited for).
fn collect(mut child: Child, deadline: Instant, timeout: Duration) -> (Verdict, bool) {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    // The outputs are a few KiB at most, below a pipe's buffer: reading them after the exit
    // cannot block the child.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return (
                    Verdict::Refused(Refusal::new(
                        RefusalKind::Hung,
                        format!(
                            "loading it did not finish within {:.1} s (its initialisers or its entry point hang)",
                            timeout.as_secs_f64()
                        ),
                    )),
                    // Not cached: on a machine under load a good library can be slow to open,
                    // and a cached hang would hide it until the file changes.
                    false,
                );
            }
            Err(e) => {
                return (
                    Verdict::Refused(Refusal::new(
                        RefusalKind::Failed,
                        format!("cannot wait for the process inspecting it: {e}"),
                    )),
                    false,
                )
            }
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if let Some(signal) = status.signal() {
        return (
            Verdict::Refused(Refusal::new(
                RefusalKind::Crashed,
                format!(
                    "loading it killed the process that inspected it: signal {signal}{}",
                    crate::worker::signal_name(signal)
                ),
            )),
            true,
        );
    }
    match parse_verdict(&out) {
        Some(verdict) => (verdict, true),
        None => (
            Verdict::Refused(Refusal::new(
                RefusalKind::Failed,
                match err.trim() {
                    "" => format!("the inspecting process printed no descriptor ({status})"),
                    why => why.lines().last().unwrap_or(why).to_owned(),
                },
            )),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::search::Parts;

    fn built(name: &str) -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let path = exe.parent()?.parent()?.join(name);
        path.is_file().then_some(path)
    }

    fn only(dirs: &[&Path]) -> SearchPath {
        SearchPath::from_parts(Parts {
            manifest: dirs.iter().map(|d| d.to_path_buf()).collect(),
            ..Parts::default()
        })
    }

    #[test]
    fn the_child_line_round_trips_and_garbage_is_no_verdict() {
        let verdict = Verdict::Plugin(Described {
            name: "imu-sim".into(),
            version: "0.1.0".into(),
            abi_version: 1,
            types: vec![NodeTypeDesc {
                name: "ImuSim".into(),
                ports: vec![PortDesc {
                    name: "imu".into(),
                    direction: Direction::Output,
                    message_type: "Imu".into(),
                    type_hash: 7,
                    encoding: "pod".into(),
                    max_size: 80,
                }],
                config: Some(vec![ConfigKeyDesc {
                    name: "rate_hz".into(),
                    kind: "float".into(),
                    required: false,
                    default: Some("100.0".into()),
                    doc: "sample rate".into(),
                }]),
            }],
        });
        let line = verdict_line(&verdict);
        assert!(line.starts_with("{\"plugin\":"), "{line}");
        assert_eq!(parse_verdict(&line), Some(verdict));
        let refused = Verdict::Refused(Refusal::new(RefusalKind::AbiVersion, "v2"));
        assert!(verdict_line(&refused).contains("\"kind\":\"abi_version\""));
        assert_eq!(parse_verdict(&verdict_line(&refused)), Some(refused));
        assert_eq!(parse_verdict(""), None);
        assert_eq!(parse_verdict("plugin\timu-sim\t0.1.0"), None);
    }

    #[test]
    fn types_are_found_in_the_first_folder_and_junk_is_refused_not_fatal() {
        let (Some(hello), Some(imu)) = (built("libhello_counter.so"), built("libimu_sim.so")) else {
            eprintln!("skipped: build the workspace first");
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("libjunk.so"), b"not a library").unwrap();
        std::fs::copy(&imu, a.join("libimu_sim.so")).unwrap();
        std::fs::copy(&hello, b.join("libhello_counter.so")).unwrap();
        std::fs::copy(&imu, b.join("libimu_sim.so")).unwrap();
        let path = only(&[&a, &b]);
        let mut scanner = Scanner::new(None);
        assert_eq!(
            scanner.find_by_type(&path, "ImuSim").unwrap(),
            a.join("libimu_sim.so")
        );
        assert_eq!(
            scanner.find_by_type(&path, "Counter").unwrap(),
            b.join("libhello_counter.so")
        );
        match scanner.find_by_type(&path, "ImuSm").unwrap_err() {
            TypeError::NotFound { suggestion, refused } => {
                assert_eq!(suggestion.as_deref(), Some("ImuSim"));
                assert_eq!(refused.len(), 1, "{refused:?}");
                assert!(refused[0].reason.contains("no ELF header"), "{refused:?}");
            }
            other => panic!("{other:?}"),
        }
        let scan = scanner.scan(&path);
        assert_eq!(scan.found.len(), 3);
        assert_eq!(scan.found[2].file, b.join("libimu_sim.so"));
        assert_eq!(scan.found[2].shadowed_by, Some(a.join("libimu_sim.so")));
        // Two plugins of one folder offering the type: ambiguous, both named.
        std::fs::copy(&imu, a.join("libimu_copy.so")).unwrap();
        let mut scanner = Scanner::new(None);
        match scanner.find_by_type(&path, "ImuSim").unwrap_err() {
            TypeError::Ambiguous { folder, files } => {
                assert_eq!(folder, a);
                assert_eq!(files, vec![a.join("libimu_copy.so"), a.join("libimu_sim.so")]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_symlink_to_a_plugin_of_the_same_folder_is_not_a_second_plugin() {
        let Some(imu) = built("libimu_sim.so") else {
            eprintln!("skipped: build the workspace first");
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(&imu, tmp.path().join("libimu_sim-0.1.so")).unwrap();
        std::os::unix::fs::symlink("libimu_sim-0.1.so", tmp.path().join("libimu_sim.so")).unwrap();
        let mut scanner = Scanner::new(None);
        let found = scanner.find_by_type(&only(&[tmp.path()]), "ImuSim");
        assert!(found.is_ok(), "{found:?}");
    }

    #[test]
    fn a_second_scanner_takes_unchanged_files_from_the_cache() {
        let Some(imu) = built("libimu_sim.so") else {
            eprintln!("skipped: build the workspace first");
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("plugins");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&imu, dir.join("libimu_sim.so")).unwrap();
        std::fs::copy(&imu, dir.join("libimu_two.so")).unwrap();
        let cache = tmp.path().join("cache.json");
        let path = only(&[&dir]);
        let mut first = Scanner::new(None).with_cache(Registry::open(&cache));
        let scan = first.scan(&path);
        assert_eq!(
            first.counts(),
            ScanCounts {
                inspected: 2,
                cached: 0
            }
        );
        let mut second = Scanner::new(None).with_cache(Registry::open(&cache));
        assert_eq!(second.scan(&path), scan);
        assert_eq!(
            second.counts(),
            ScanCounts {
                inspected: 0,
                cached: 2
            }
        );
        // A rebuilt file (replaced) is opened again; the other still comes from the cache.
        std::fs::remove_file(dir.join("libimu_two.so")).unwrap();
        std::fs::copy(&imu, dir.join("libimu_two.so")).unwrap();
        let mut third = Scanner::new(None).with_cache(Registry::open(&cache));
        assert_eq!(third.scan(&path).found.len(), 2);
        assert_eq!(
            third.counts(),
            ScanCounts {
                inspected: 1,
                cached: 1
            }
        );
    }
}
