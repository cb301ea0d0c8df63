//! The development loop of hot reload: a node's `build =` command, run when its sources change.
//!
//! Owns the build plan (which command, run where, for which nodes, on a change of which files:
//! [`plan`], with the crate folders of a `cargo build` command found through `cargo metadata`)
//! and the `horus-build` thread ([`Builder`]): it debounces source changes, runs one build at a
//! time (`sh -c` in the manifest's folder, in a process group of its own), streams the build's
//! output to the log, and on a failure hands every node of the command a refused reload (the
//! old code keeps running; the failure is counted like any other).
//!
//! It does not own reloading: a build that succeeds replaces the plugin file, and the plugin
//! watcher ([`super::watch`]) picks that up exactly as it does a build run in another terminal,
//! so there is one path to a reload and no double reload.

use super::prepare::Prepared;
use super::sources::{Change, SourceRule, SourceWatcher};
use crate::diag::{Code, Diagnostic, Diagnostics};
use crate::manifest::{Manifest, NodeCode, PluginRef};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long sources must stay unchanged before a build starts (an editor's save, a `git
/// checkout`, a formatter touch several files within a few ms).
pub const QUIET: Duration = Duration::from_millis(150);

/// How many of a failed build's last output lines its WARN line repeats.
const TAIL_LINES: usize = 20;

/// One build command and what it is for. Nodes with the same command share one job: it builds
/// once for all of them.
#[derive(Debug, Clone)]
pub struct BuildJob {
    /// The shell command.
    pub command: String,
    /// Where it runs: the manifest's folder.
    pub dir: PathBuf,
    /// The nodes it rebuilds, each with its plugin file.
    pub nodes: Vec<(String, PathBuf)>,
    /// The sources whose change runs it.
    pub rules: Vec<SourceRule>,
}

impl BuildJob {
    /// The nodes' names, for log lines: `filter` or `filter, imu`.
    pub fn label(&self) -> String {
        let names: Vec<&str> = self.nodes.iter().map(|(n, _)| n.as_str()).collect();
        names.join(", ")
    }
}

/// The build jobs of `manifest`'s plugin nodes with `build =`. A node without `watch` watches
/// the folders of the crates its `cargo build` command builds; when those cannot be found the
/// node gets an H0031 error (its build would never run). `plugin_files` is each plugin node's
/// file as the graph found it (a plugin named by name or type has no path in the manifest).
pub fn plan(
    manifest: &Manifest,
    plugin_files: &HashMap<String, PathBuf>,
) -> Result<Vec<BuildJob>, Diagnostics> {
    let mut jobs: Vec<BuildJob> = Vec::new();
    let mut diags = Diagnostics::default();
    let mut metadata = MetadataCache::default();
    for node in &manifest.nodes {
        let NodeCode::Plugin(code) = &node.code else {
            continue;
        };
        let Some(build) = &code.build else { continue };
        let file = match (&code.plugin.value, plugin_files.get(&node.name)) {
            (_, Some(file)) => file,
            (PluginRef::File(file), None) => file,
            (_, None) => continue,
        };
        let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.clone());
        // Absolute, without symlinks: the paths of file events start with it.
        let dir = std::fs::canonicalize(&build.dir).unwrap_or_else(|_| build.dir.clone());
        let rules = match &build.watch {
            Some(globs) => globs
                .iter()
                .filter_map(|g| SourceRule::glob(&dir, &g.value).ok())
                .collect(),
            None => match crate_folders(&build.command.value, &dir, &mut metadata) {
                Ok(folders) => folders.iter().map(|f| SourceRule::tree(f)).collect(),
                Err(why) => {
                    diags.push(
                        Diagnostic::new(
                            Code::H0031,
                            &manifest.path,
                            format!("cannot tell which files `build` reads: {why}"),
                        )
                        .at(build.command.at)
                        .node(node.name.clone())
                        .key("build")
                        .hint("name them with `watch`, globs relative to this manifest's folder, e.g. `watch = [\"src/**\", \"Cargo.toml\"]`"),
                    );
                    continue;
                }
            },
        };
        match jobs.iter_mut().find(|j| j.command == build.command.value) {
            Some(job) => {
                job.nodes.push((node.name.clone(), file));
                job.rules.extend(rules);
            }
            None => jobs.push(BuildJob {
                command: build.command.value.clone(),
                dir,
                nodes: vec![(node.name.clone(), file)],
                rules,
            }),
        }
    }
    diags.into_result(jobs)
}

/// What a `cargo build` command builds, as far as its arguments say.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CargoTarget {
    /// `-p NAME` (one or more).
    Packages(Vec<String>),
    /// `--workspace` / `--all`: every member.
    Workspace,
    /// No package named: the package of the folder it runs in (or of `--manifest-path`), or the
    /// workspace's default members.
    Here,
}

/// The `cargo build` in `command` (any `&&`/`;`-separated part of it), with its
/// `--manifest-path`; `None` when there is none.
fn cargo_build(command: &str) -> Option<(CargoTarget, Option<String>)> {
    let words: Vec<String> = command
        .split_whitespace()
        .map(|w| w.trim_matches(['\'', '"']).to_owned())
        .collect();
    for part in words.split(|w| matches!(w.as_str(), "&&" | "||" | ";" | "|")) {
        // Leading `VAR=value` assignments, then `cargo` (by any path), a `+toolchain`, the
        // subcommand.
        let mut rest = part
            .iter()
            .skip_while(|w| w.contains('=') && !w.starts_with('-'))
            .peekable();
        let Some(program) = rest.next() else { continue };
        if Path::new(program).file_name().is_none_or(|n| n != "cargo") {
            continue;
        }
        rest.next_if(|w| w.starts_with('+'));
        if !rest
            .next()
            .is_some_and(|sub| matches!(sub.as_str(), "build" | "b" | "rustc"))
        {
            continue;
        }
        let mut packages = Vec::new();
        let mut workspace = false;
        let mut manifest_path = None;
        while let Some(w) = rest.next() {
            match w.as_str() {
                "-p" | "--package" => packages.extend(rest.next().cloned()),
                "--manifest-path" => manifest_path = rest.next().cloned(),
                "--workspace" | "--all" => workspace = true,
                w => {
                    if let Some(p) = w.strip_prefix("--package=") {
                        packages.push(p.to_owned());
                    } else if let Some(m) = w.strip_prefix("--manifest-path=") {
                        manifest_path = Some(m.to_owned());
                    } else if let Some(p) = w
                        .strip_prefix("-p")
                        .filter(|p| !p.is_empty() && !w.starts_with("--"))
                    {
                        packages.push(p.to_owned());
                    }
                }
            }
        }
        let target = if workspace {
            CargoTarget::Workspace
        } else if packages.is_empty() {
            CargoTarget::Here
        } else {
            CargoTarget::Packages(packages)
        };
        return Some((target, manifest_path));
    }
    None
}

/// What `cargo metadata --no-deps` says about one workspace.
#[derive(Debug, Clone, serde::Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    workspace_root: PathBuf,
    #[serde(default)]
    workspace_default_members: Option<Vec<String>>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct Package {
    name: String,
    id: String,
    manifest_path: PathBuf,
}

/// `cargo metadata` run at most once per folder and `--manifest-path` while planning.
#[derive(Debug, Default)]
struct MetadataCache(HashMap<(PathBuf, Option<String>), Result<Metadata, String>>);

impl MetadataCache {
    fn get(&mut self, dir: &Path, manifest_path: Option<&str>) -> Result<Metadata, String> {
        let key = (dir.to_path_buf(), manifest_path.map(str::to_owned));
        self.0
            .entry(key)
            .or_insert_with(|| cargo_metadata(dir, manifest_path))
            .clone()
    }
}

fn cargo_metadata(dir: &Path, manifest_path: Option<&str>) -> Result<Metadata, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(dir)
        .stdin(Stdio::null());
    if let Some(m) = manifest_path {
        cmd.args(["--manifest-path", m]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("`cargo metadata` cannot be run in {}: {e}", dir.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
        return Err(format!(
            "`cargo metadata` in {} failed ({}): {}",
            dir.display(),
            out.status,
            first.trim()
        ));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("`cargo metadata` printed something unexpected: {e}"))
}

/// The folders of the crates that `command` builds; `Err` says why they are unknown.
fn crate_folders(command: &str, dir: &Path, cache: &mut MetadataCache) -> Result<Vec<PathBuf>, String> {
    let (target, manifest_path) =
        cargo_build(command).ok_or_else(|| format!("`{command}` is not a `cargo build` command"))?;
    let meta = cache.get(dir, manifest_path.as_deref())?;
    let folder = |p: &Package| normalize_abs(p.manifest_path.parent().unwrap_or(Path::new("/")));
    let folders: Vec<PathBuf> = match target {
        CargoTarget::Packages(names) => {
            let mut found = Vec::new();
            for name in names {
                let Some(p) = meta.packages.iter().find(|p| p.name == name) else {
                    let mut known: Vec<&str> = meta.packages.iter().map(|p| p.name.as_str()).collect();
                    known.sort_unstable();
                    return Err(format!(
                        "no package `{name}` in the workspace at {} (its packages: {})",
                        meta.workspace_root.display(),
                        known.join(", ")
                    ));
                };
                found.push(folder(p));
            }
            found
        }
        CargoTarget::Workspace => meta.packages.iter().map(folder).collect(),
        CargoTarget::Here => {
            let here = match &manifest_path {
                Some(m) => normalize_abs(&dir.join(m)).parent().map(Path::to_path_buf),
                None => Some(normalize_abs(dir)),
            };
            // The package whose folder is the closest one around `here`.
            let own = meta
                .packages
                .iter()
                .filter(|p| here.as_ref().is_some_and(|h| h.starts_with(folder(p))))
                .max_by_key(|p| folder(p).components().count());
            match (own, &meta.workspace_default_members) {
                (Some(p), _) => vec![folder(p)],
                (None, Some(ids)) => meta
                    .packages
                    .iter()
                    .filter(|p| ids.contains(&p.id))
                    .map(folder)
                    .collect(),
                (None, None) => meta.packages.iter().map(folder).collect(),
            }
        }
    };
    if folders.is_empty() {
        return Err(format!(
            "`{command}` builds no package of the workspace at {}",
            meta.workspace_root.display()
        ));
    }
    Ok(folders)
}

fn normalize_abs(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| super::sources::normalize(path))
}

/// The `horus-build` thread of a run with `--watch` and `build =` nodes. Dropping it stops the
/// thread and kills a running build (its whole process group).
pub struct Builder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder").finish_non_exhaustive()
    }
}

/// Why the builder could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildStartError {
    /// The source folders cannot be watched.
    #[error("cannot watch the sources of `build` commands: {0}")]
    Watch(#[from] notify::Error),
    /// The thread could not be spawned.
    #[error("cannot start the build thread: {0}")]
    Spawn(std::io::Error),
}

impl Builder {
    /// Watches the sources of `jobs` and runs each job's build when they change. A failed
    /// build is sent to `prepared` as a refused reload of each of its nodes.
    pub fn start(jobs: Vec<BuildJob>, prepared: Sender<Prepared>) -> Result<Builder, BuildStartError> {
        let rules = jobs.iter().flat_map(|j| j.rules.iter().cloned()).collect();
        let (sources, changes) = SourceWatcher::start(rules)?;
        for job in &jobs {
            tracing::info!(
                node = %job.label(),
                "build on a source change: `{}` (watching {})",
                job.command,
                job.rules
                    .iter()
                    .map(|r| r.root.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("horus-build".into())
            .spawn(move || {
                // A build competes for the CPU with the running nodes: never ahead of them.
                let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
                Loop {
                    jobs,
                    dirty: HashMap::new(),
                    running: None,
                    sources,
                    prepared,
                }
                .run(&changes, &stopping);
            })
            .map_err(BuildStartError::Spawn)?;
        Ok(Builder {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            // It sees `stop` within one poll (20 ms), kills a running build and waits for it.
            let _ = thread.join();
        }
    }
}

/// A build in progress.
struct Running {
    job: usize,
    child: Child,
    started: Instant,
    /// The last lines of its output (both streams, in order).
    tail: Arc<Mutex<VecDeque<String>>>,
    reader: std::thread::JoinHandle<()>,
}

/// The `horus-build` thread's state.
struct Loop {
    jobs: Vec<BuildJob>,
    /// Jobs whose sources changed, with the time of the last change.
    dirty: HashMap<usize, Instant>,
    running: Option<Running>,
    sources: SourceWatcher,
    prepared: Sender<Prepared>,
}

impl Loop {
    fn run(mut self, changes: &std::sync::mpsc::Receiver<Change>, stop: &AtomicBool) {
        loop {
            if stop.load(Ordering::Acquire) {
                if let Some(running) = self.running.take() {
                    kill(running, &self.jobs);
                }
                return;
            }
            match changes.recv_timeout(Duration::from_millis(20)) {
                Ok(change) => self.changed(change),
                Err(RecvTimeoutError::Timeout) => {}
                // The watcher is gone (it lives as long as this loop: not expected).
                Err(RecvTimeoutError::Disconnected) => return,
            }
            while let Ok(change) = changes.try_recv() {
                self.changed(change);
            }
            self.poll_running();
            if self.running.is_none() {
                let due = self
                    .dirty
                    .iter()
                    .filter(|(_, at)| at.elapsed() >= QUIET)
                    .map(|(job, _)| *job)
                    .min();
                if let Some(job) = due {
                    self.dirty.remove(&job);
                    self.start(job);
                }
            }
        }
    }

    /// Marks the jobs whose sources `change` is; a change during a job's build queues exactly
    /// one more build of it.
    fn changed(&mut self, change: Change) {
        if change.new_folder {
            self.sources.folder_created(&change.path);
        }
        for (index, job) in self.jobs.iter().enumerate() {
            if job.rules.iter().any(|r| r.matches(&change.path)) {
                tracing::debug!(node = %job.label(), file = %change.path.display(), "build: a source changed");
                self.dirty.insert(index, Instant::now());
            }
        }
    }

    fn start(&mut self, index: usize) {
        let job = &self.jobs[index];
        let label = job.label();
        tracing::info!(node = %label, "building {label}: {}", job.command);
        match spawn(job, &label) {
            Ok((child, tail, reader)) => {
                self.running = Some(Running {
                    job: index,
                    child,
                    started: Instant::now(),
                    tail,
                    reader,
                });
            }
            Err(e) => {
                let why = format!("build failed: `{}` cannot be started: {e}", job.command);
                tracing::warn!(node = %label, "{why}");
                self.failed(index, &why);
            }
        }
    }

    fn poll_running(&mut self) {
        let Some(running) = &mut self.running else { return };
        let status = match running.child.try_wait() {
            Ok(None) => return,
            Ok(Some(status)) => status,
            Err(e) => {
                tracing::warn!("build: cannot wait for the build process: {e}");
                return;
            }
        };
        let Some(running) = self.running.take() else {
            return;
        };
        let secs = running.started.elapsed().as_secs_f64();
        // The output ends with the process (or very soon after, when it left a child behind).
        join_within(running.reader, Duration::from_secs(1));
        let tail: Vec<String> = running
            .tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        let job = &self.jobs[running.job];
        let label = job.label();
        if status.success() {
            tracing::info!(node = %label, "build of {label} finished in {secs:.2} s");
            return;
        }
        let summary = summary(&tail);
        let why = format!("build failed ({}): {summary}", describe(status));
        let tail = tail.join("\n  ");
        tracing::warn!(
            node = %label,
            "build of {label} failed ({}) after {secs:.2} s; the old code keeps running: `{}`\n  {tail}",
            describe(status),
            job.command
        );
        self.failed(running.job, &why);
    }

    /// Hands every node of job `index` a refused reload: counted and logged by the scheduler.
    fn failed(&mut self, index: usize, why: &str) {
        let job = &self.jobs[index];
        let mut by_file: Vec<(&PathBuf, Vec<String>)> = Vec::new();
        for (node, file) in &job.nodes {
            match by_file.iter_mut().find(|(f, _)| *f == file) {
                Some((_, nodes)) => nodes.push(node.clone()),
                None => by_file.push((file, vec![node.clone()])),
            }
        }
        for (file, nodes) in by_file {
            let prepared = Prepared {
                file: file.clone(),
                nodes: nodes.into_iter().map(|n| (n, Err(why.to_owned()))).collect(),
            };
            let _ = self.prepared.send(prepared);
        }
    }
}

/// Starts `job`'s command: `sh -c` in its folder, in a new process group (so that stopping
/// kills the compiler too, and Ctrl-C in the terminal reaches only the host), stdout and stderr
/// into one pipe read by a thread that logs every line and keeps the last ones.
#[allow(clippy::type_complexity)]
fn spawn(
    job: &BuildJob,
    label: &str,
) -> std::io::Result<(Child, Arc<Mutex<VecDeque<String>>>, std::thread::JoinHandle<()>)> {
    use std::os::unix::process::CommandExt;
    let (reader, writer) = std::io::pipe()?;
    let child = Command::new("sh")
        .arg("-c")
        .arg(&job.command)
        .current_dir(&job.dir)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .spawn()?;
    let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
    let lines = tail.clone();
    let label = label.to_owned();
    let thread = std::thread::Builder::new()
        .name("horus-build-log".into())
        .spawn(move || {
            let mut reader = BufReader::new(reader);
            let mut buf = Vec::new();
            while reader.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                buf.clear();
                tracing::info!("{label} | {line}");
                let mut tail = lines.lock().unwrap_or_else(|p| p.into_inner());
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
    match thread {
        Ok(thread) => Ok((child, tail, thread)),
        Err(e) => {
            let mut child = child;
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_child(&child),
                rustix::process::Signal::KILL,
            );
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Stops a running build at the end of the run: its whole process group is killed.
fn kill(mut running: Running, jobs: &[BuildJob]) {
    let label = jobs[running.job].label();
    tracing::info!(node = %label, "build of {label} stopped: the run ends");
    let _ = rustix::process::kill_process_group(
        rustix::process::Pid::from_child(&running.child),
        rustix::process::Signal::KILL,
    );
    let _ = running.child.wait();
    join_within(running.reader, Duration::from_millis(200));
}

/// Joins `thread` if it ends within `limit`; else leaves it (a reader still blocked on a pipe
/// that an escaped grandchild holds open).
fn join_within(thread: std::thread::JoinHandle<()>, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !thread.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if thread.is_finished() {
        let _ = thread.join();
    }
}

/// `exit status 101`, `killed by SIGKILL`.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => status.to_string(),
    }
}

/// The line of a failed build's output that says most: the first `error` line (a compiler's
/// first error), else the last line.
fn summary(tail: &[String]) -> String {
    tail.iter()
        .find(|l| l.trim_start().starts_with("error"))
        .or_else(|| tail.iter().rev().find(|l| !l.trim().is_empty()))
        .map_or_else(|| "(no output)".to_owned(), |l| l.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cargo_build_in_a_command_is_found() {
        let p = |names: &[&str]| CargoTarget::Packages(names.iter().map(|n| n.to_string()).collect());
        assert_eq!(
            cargo_build("cargo build -p my-node"),
            Some((p(&["my-node"]), None))
        );
        assert_eq!(
            cargo_build("cargo +nightly b --release --package=a -pb --package 'c'"),
            Some((p(&["a", "b", "c"]), None))
        );
        assert_eq!(
            cargo_build("cd .. && RUSTFLAGS=-g cargo build --manifest-path nodes/x/Cargo.toml"),
            Some((CargoTarget::Here, Some("nodes/x/Cargo.toml".into())))
        );
        assert_eq!(
            cargo_build("/usr/bin/cargo build --workspace"),
            Some((CargoTarget::Workspace, None))
        );
        assert_eq!(cargo_build("cargo test -p a"), None);
        assert_eq!(cargo_build("make plugin"), None);
    }

    #[test]
    fn a_failed_build_is_summed_up_by_its_first_error() {
        let tail: Vec<String> = [
            "   Compiling x v0.1.0",
            "error[E0308]: mismatched types",
            "  --> src/lib.rs:3:5",
            "error: could not compile `x`",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(summary(&tail), "error[E0308]: mismatched types");
        assert_eq!(
            summary(&["make: *** [all] Error 2".to_owned(), String::new()]),
            "make: *** [all] Error 2"
        );
        assert_eq!(summary(&[]), "(no output)");
    }

    /// The workspace of this repository, found from this crate's folder.
    #[test]
    fn cargo_packages_are_found_in_the_workspace() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut cache = MetadataCache::default();
        let folders = crate_folders(
            "cargo build -p reload-counter",
            &root.join("manifests"),
            &mut cache,
        )
        .unwrap();
        assert_eq!(
            folders,
            [root.join("plugins/reload-counter").canonicalize().unwrap()]
        );
        // In a crate's folder, without `-p`: that crate.
        let folders = crate_folders("cargo build", &root.join("plugins/imu-sim/src"), &mut cache).unwrap();
        assert_eq!(folders, [root.join("plugins/imu-sim").canonicalize().unwrap()]);
        let err =
            crate_folders("cargo build -p no-such-node", &root.join("manifests"), &mut cache).unwrap_err();
        assert!(
            err.contains("no package `no-such-node`") && err.contains("reload-counter"),
            "{err}"
        );
        let err = crate_folders("make", root, &mut cache).unwrap_err();
        assert!(err.contains("not a `cargo build` command"), "{err}");
    }
}
