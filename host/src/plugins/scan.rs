//! What the plugins on the search path offer: finding the plugin of a node type
//! ([`Scanner::find_by_type`]), and the list of every plugin and every refused file
//! ([`Scanner::scan`], what a `horus plugins` lists).
//!
//! Knowing a library's node types means reading its descriptor, which runs its code. So a file
//! is first looked at without loading it ([`super::elf`]): not ELF, not a shared library, no
//! `horus_plugin_entry` symbol, or a Python extension (the Python loader, which must never be
//! loaded as an ordinary plugin) — each refused at once, with its reason. The rest are opened by
//! a child process (`horus __inspect <file>`, which prints the descriptor), several at a time,
//! so that a library that crashes or hangs when loaded is a refused file, not a dead host; only
//! without a `horus` program to run (the library used from other code) are they opened in this
//! process. Each file is looked at once per [`Scanner`], and only when a node names a type
//! alone (or for a listing): nothing is opened for nodes that name their plugin.
//!
//! A refused file is never an error of the run: it is just not a candidate.

use super::elf::{self, Symbols};
use super::search::{so_files, SearchPath};
use crate::diag::suggest;
use crate::ffi::{PluginInfo, PluginLibrary};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a plugin offers, as read from its descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The plugin's name (its crate's).
    pub name: String,
    /// The plugin's version.
    pub version: String,
    /// Its node types.
    pub types: Vec<String>,
}

/// What looking at one file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A node plugin this host can load.
    Plugin(Described),
    /// Not a candidate, and why.
    Refused(String),
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

/// Looks at the files of a search path, each once.
#[derive(Debug, Default)]
pub struct Scanner {
    program: Option<PathBuf>,
    timeout: Option<Duration>,
    seen: HashMap<PathBuf, Verdict>,
}

/// How many children inspect at once.
const PARALLEL: usize = 8;

impl Scanner {
    /// A scanner that opens candidates in child processes of `program` (the `horus` binary) or,
    /// without one, in this process.
    pub fn new(program: Option<&Path>) -> Scanner {
        Scanner {
            program: program.map(Path::to_path_buf),
            timeout: None,
            seen: HashMap::new(),
        }
    }

    /// Gives each child at most `timeout` (else [`crate::graph::INSPECT_TIMEOUT`] or
    /// `HORUS_INSPECT_TIMEOUT_MS`).
    pub fn with_timeout(mut self, timeout: Duration) -> Scanner {
        self.timeout = Some(timeout);
        self
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
                let offers = matches!(self.verdict(file), Some(Verdict::Plugin(d)) if d.types.iter().any(|t| t == name));
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
        let types: Vec<&str> = scan
            .found
            .iter()
            .flat_map(|l| l.plugin.types.iter().map(String::as_str))
            .collect();
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
                    Some(Verdict::Refused(reason)) => scan.refused.push(Refused { file, reason }),
                    None => {}
                }
            }
        }
        scan
    }

    /// What was found about `file`, once it has been looked at.
    pub fn verdict(&self, file: &Path) -> Option<&Verdict> {
        self.seen.get(&key(file))
    }

    /// Looks at every file of `files` not seen yet: the quick checks, then the loader for what
    /// is left, in parallel children.
    fn look_at(&mut self, files: &[PathBuf]) {
        let mut to_open = Vec::new();
        for file in files {
            let k = key(file);
            if self.seen.contains_key(&k) || to_open.iter().any(|(kk, _)| *kk == k) {
                continue;
            }
            match quick_check(file) {
                Some(reason) => {
                    self.seen.insert(k, Verdict::Refused(reason));
                }
                None => to_open.push((k, file.clone())),
            }
        }
        let timeout = self.timeout.unwrap_or_else(crate::graph::inspect_timeout);
        for batch in to_open.chunks(PARALLEL) {
            let verdicts: Vec<Verdict> = match &self.program {
                Some(program) => {
                    let children: Vec<_> = batch.iter().map(|(_, f)| spawn(program, f)).collect();
                    let deadline = Instant::now() + timeout;
                    children
                        .into_iter()
                        .zip(batch)
                        .map(|(child, (_, f))| match child {
                            Ok(child) => collect(child, deadline, timeout),
                            // Cannot start a child: open it here, as without a program.
                            Err(_) => open_here(f),
                        })
                        .collect()
                }
                None => batch.iter().map(|(_, f)| open_here(f)).collect(),
            };
            for ((k, _), verdict) in batch.iter().zip(verdicts) {
                self.seen.insert(k.clone(), verdict);
            }
        }
    }
}

/// A file by what it is, so a symlink and its target are looked at once.
fn key(file: &Path) -> PathBuf {
    std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf())
}

/// The reason `file` is certainly not a node plugin, found without loading it; `None` when
/// only loading it can tell.
pub fn quick_check(file: &Path) -> Option<String> {
    match elf::symbols(file) {
        Err(e) => Some(format!("cannot read it: {e}")),
        Ok(Symbols::NotElf) => Some("not a shared library (no ELF header)".to_owned()),
        Ok(Symbols::NotSharedObject) => Some("an ELF file, but not a shared library".to_owned()),
        Ok(Symbols::Read {
            python_extension: true,
            ..
        }) => Some(
            "a Python extension module (such as the Python loader, which runs `python =` nodes), not a node plugin"
                .to_owned(),
        ),
        Ok(Symbols::Read { entry: false, .. }) => {
            Some("a shared library without the `horus_plugin_entry` symbol: not a HORUS plugin".to_owned())
        }
        Ok(Symbols::Read { entry: true, .. } | Symbols::Unknown) => None,
    }
}

fn open_here(file: &Path) -> Verdict {
    match PluginLibrary::open(file) {
        Ok(lib) => Verdict::Plugin(described(lib.info())),
        Err(e) => Verdict::Refused(e.to_string()),
    }
}

fn described(info: &PluginInfo) -> Described {
    Described {
        name: info.name.clone(),
        version: info.version.clone(),
        types: info.node_types.iter().map(|t| t.name.clone()).collect(),
    }
}

/// The descriptor as `horus __inspect` prints it: `plugin\t<name>\t<version>`, then
/// `type\t<name>` per node type.
pub fn descriptor_lines(info: &PluginInfo) -> String {
    let mut out = format!("plugin\t{}\t{}\n", info.name, info.version);
    for t in &info.node_types {
        out.push_str(&format!("type\t{}\n", t.name));
    }
    out
}

fn parse_descriptor(text: &str) -> Option<Described> {
    let mut lines = text.lines();
    let mut head = lines.next()?.split('\t');
    if head.next()? != "plugin" {
        return None;
    }
    let name = head.next()?.to_owned();
    let version = head.next().unwrap_or_default().to_owned();
    let types = lines
        .filter_map(|l| l.strip_prefix("type\t").map(str::to_owned))
        .collect();
    Some(Described { name, version, types })
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

fn collect(mut child: Child, deadline: Instant, timeout: Duration) -> Verdict {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    // The outputs are a few lines, far below a pipe's buffer: reading them after the exit
    // cannot block the child.
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Verdict::Refused(format!(
                    "loading it did not finish within {:.1} s (its initialisers or its entry point hang)",
                    timeout.as_secs_f64()
                ));
            }
            Err(e) => return Verdict::Refused(format!("cannot wait for the process inspecting it: {e}")),
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
        return Verdict::Refused(format!(
            "loading it killed the process that inspected it: signal {signal}{}",
            crate::worker::signal_name(signal)
        ));
    }
    match (status.success(), parse_descriptor(&out)) {
        (true, Some(d)) => Verdict::Plugin(d),
        (true, None) => Verdict::Refused("the inspecting process printed no descriptor".to_owned()),
        (false, _) => Verdict::Refused(match err.trim() {
            "" => format!("refused by the loader ({status})"),
            why => why.lines().last().unwrap_or(why).to_owned(),
        }),
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
    fn descriptor_lines_round_trip() {
        let text = "plugin\timu-sim\t0.1.0\ntype\tImuSim\ntype\tOther\n";
        assert_eq!(
            parse_descriptor(text),
            Some(Described {
                name: "imu-sim".into(),
                version: "0.1.0".into(),
                types: vec!["ImuSim".into(), "Other".into()],
            })
        );
        assert_eq!(parse_descriptor(""), None);
        assert_eq!(parse_descriptor("garbage"), None);
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
}
