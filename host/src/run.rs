//! The two things the CLI does: `check` a manifest and `run` it. Owns the order of the stages
//! (manifest → graph → scheduler → report), signal handling and the stats file; each stage's
//! logic lives in its own module.

use crate::diag::Diagnostics;
use crate::graph::{BindError, BoundGraph, Graph, Inspector};
use crate::manifest;
use crate::scheduler::{self, NodeStats, RunError, RunReport, StatsBoard, StopHandle};
use crate::topic::TopicScope;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why `check` or `run` failed. [`HostError::exit_code`] maps it to the CLI's exit codes.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The manifest or a plugin is wrong (exit code 2).
    #[error("{0}")]
    BadInput(Diagnostics),
    /// The stats file cannot be created (exit code 2).
    #[error("cannot create the stats file {path}: {source}")]
    StatsFileCreate {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The stats could not be written at the end of the run (exit code 1).
    #[error("cannot write the stats file {path}: {source}")]
    StatsFileWrite {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A port could not be attached to its topic (exit code 2 when the topic conflicts with
    /// this manifest, 1 for system failures).
    #[error(transparent)]
    Bind(#[from] BindError),
    /// Signal handlers could not be installed (exit code 1).
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// Hot reload could not start watching (exit code 1).
    #[error(transparent)]
    Reload(#[from] crate::reload::ReloadStartError),
    /// The run failed (exit code 1).
    #[error(transparent)]
    Run(#[from] RunError),
    /// The recording (`--record`) could not be made or finished (exit code 1).
    #[error("--record: {0}")]
    Record(#[from] crate::record::RecordError),
}

impl HostError {
    /// 2 for bad input, 1 for runtime failures.
    pub fn exit_code(&self) -> i32 {
        match self {
            HostError::BadInput(_) | HostError::StatsFileCreate { .. } => 2,
            HostError::Bind(e) if e.is_bad_input() => 2,
            HostError::Bind(_) => 1,
            HostError::StatsFileWrite { .. }
            | HostError::Signals(_)
            | HostError::Reload(_)
            | HostError::Run(_)
            | HostError::Record(_) => 1,
        }
    }
}

/// What `horus run` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The manifest.
    pub manifest: PathBuf,
    /// Stop after this long (else on SIGINT/SIGTERM).
    pub duration: Option<Duration>,
    /// Write the final stats as JSON here.
    pub stats_json: Option<PathBuf>,
    /// The `horus` binary, to open the plugins of `process` nodes in a child process first (a
    /// crashing library is then a diagnostic, not a crash of the host).
    pub inspector: Option<PathBuf>,
    /// Hot reload (`--watch`): reload a node when its plugin file changes. Also on with the
    /// manifest's `[scheduler] hot_reload = true`.
    pub watch: bool,
    /// Record the host's topics and ticks into an MCAP file (`--record`).
    pub record: Option<crate::record::HostRecordArgs>,
}

/// Runs every check on the manifest at `path` (files, plugins, ABI, node types, connections)
/// without creating a node. Plugins are loaded and unloaded again.
pub fn check(path: &Path) -> Result<Graph, HostError> {
    check_with(path, None)
}

/// [`check`], with every plugin opened by a child process first when `inspector` (the `horus`
/// binary) is given, as `horus check` does: a library that crashes or hangs when it is loaded is
/// then diagnostic H0030, not a crash of `horus check`.
pub fn check_with(path: &Path, inspector: Option<&Path>) -> Result<Graph, HostError> {
    check_resident(path, inspector, &crate::graph::Resident::default())
}

/// [`check_with`] in a running host: the plugin files of `resident` that are unchanged are
/// neither inspected nor opened again (`horus apply`, and a manifest saved under `--watch`).
pub fn check_resident(
    path: &Path,
    inspector: Option<&Path>,
    resident: &crate::graph::Resident,
) -> Result<Graph, HostError> {
    let manifest = manifest::load(path).map_err(HostError::BadInput)?;
    let inspector = inspector.map(|program| Inspector {
        program: program.to_path_buf(),
        all: true,
        resident: resident.clone(),
    });
    let graph = Graph::build_with(manifest, inspector.as_ref()).map_err(HostError::BadInput)?;
    // The sources of each `build =` (used by `--watch`) must be known.
    crate::reload::build::plan(&graph.manifest, &plugin_files(&graph)).map_err(HostError::BadInput)?;
    Ok(graph)
}

/// One line per node for `horus check`.
pub fn describe(graph: &Graph) -> String {
    use std::fmt::Write;
    let m = &graph.manifest;
    let mut out = format!(
        "{}: ok — {}, {}, {}, {} Hz{}\n",
        m.path.display(),
        count(graph.nodes.len(), "node"),
        count(m.connections.len(), "connection"),
        count(graph.plugins.len(), "plugin"),
        m.scheduler.tick_rate,
        m.scheduler
            .preset
            .map(|p| format!(" ({})", p.name()))
            .unwrap_or_default(),
    );
    for n in &graph.nodes {
        let info = n.plugin.info();
        let _ = writeln!(
            out,
            "  {:<16} {} from {} {} (priority {}{}) {}",
            n.spec.name,
            n.type_name,
            info.name,
            info.version,
            n.spec.priority,
            n.spec.rate_hz.map(|r| format!(", {r} Hz")).unwrap_or_default(),
            info.path.display(),
        );
    }
    for c in &m.connections {
        let _ = writeln!(out, "  {} [{}]", c.describe(), c.qos);
    }
    out
}

/// Bytes of shared memory the graph's topics commit when it runs (each topic once, at the
/// largest size any of its endpoints would create it with).
pub fn shm_needed(graph: &Graph) -> u64 {
    use crate::topic::PortPlan;
    let mut topics = std::collections::HashMap::new();
    for plan in graph.nodes.iter().flat_map(|n| &n.ports) {
        let (PortPlan::Output { topic, spec } | PortPlan::Input { topic, spec, .. }) = plan else {
            continue;
        };
        let size = crate::shm::layout::segment_size(spec.slot_size, spec.capacity.max(2).next_power_of_two());
        let entry = topics.entry(topic).or_insert(0u64);
        *entry = (*entry).max(size);
    }
    topics.values().sum()
}

/// For `horus check`: a warning line (H0029) when the graph's topics need more shared memory
/// than /dev/shm has free, which `horus run` would refuse.
pub fn shm_warning(graph: &Graph) -> Option<String> {
    let needed = shm_needed(graph);
    let free = crate::shm::shm_free()?;
    (needed > free).then(|| {
        format!(
            "{}: warning[H0029]: the topics of this manifest need {} of shared memory, but /dev/shm has {} \
             free; `horus run` will refuse the topic that does not fit: make queues (`qos`) or `max_size` \
             smaller, or /dev/shm larger\n  see: docs/errors/H0029.md",
            graph.manifest.path.display(),
            crate::shm::mib(needed),
            crate::shm::mib(free)
        )
    })
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Runs the manifest until `--duration` elapses or SIGINT/SIGTERM arrives, then shuts every node
/// down, unloads the plugins and returns the report (also written to `--stats-json`). A second
/// SIGINT/SIGTERM during shutdown exits at once with code 130.
pub fn run(opts: &RunOptions) -> Result<RunReport, HostError> {
    let manifest = manifest::load(&opts.manifest).map_err(HostError::BadInput)?;
    let inspector = opts.inspector.as_ref().map(|program| Inspector {
        program: program.clone(),
        all: false,
        resident: Default::default(),
    });
    let graph = Graph::build_with(manifest, inspector.as_ref()).map_err(HostError::BadInput)?;
    let watched = (opts.watch || graph.manifest.scheduler.hot_reload).then(|| watched_nodes(&graph));
    let builds = match watched {
        Some(_) => {
            crate::reload::build::plan(&graph.manifest, &plugin_files(&graph)).map_err(HostError::BadInput)?
        }
        None => Vec::new(),
    };
    let stats_file = match &opts.stats_json {
        Some(path) => Some((
            path,
            File::create(path).map_err(|source| HostError::StatsFileCreate {
                path: path.clone(),
                source,
            })?,
        )),
        None => None,
    };
    let stop = StopHandle::new();
    let signals = SignalGuard::install(stop.clone())?;
    let scope = TopicScope::new();
    let recording = match &opts.record {
        Some(args) => Some(crate::record::HostRecorder::create(args, scope.namespace())?),
        None => None,
    };
    crate::shm::reclaim_orphans(scope.namespace());
    let manifest_path = graph.manifest.path.clone();
    // Live apply (`horus apply`, and the manifest itself under `--watch`): planned on the
    // control and `horus-apply` threads, swapped in by the scheduler thread.
    let (apply_tx, apply_rx) = std::sync::mpsc::channel();
    let apply_epoch = std::sync::Arc::new(std::sync::OnceLock::new());
    let applier: crate::control::SharedApplier = std::sync::Arc::new(std::sync::Mutex::new(
        crate::apply::Applier::new(&graph, &opts.manifest, opts.inspector.clone(), apply_tx)
            .running_in(scope.clone(), apply_epoch.clone()),
    ));
    let BoundGraph {
        manifest,
        plugins,
        nodes,
        net,
    } = graph
        .bind(&scope)
        .map_err(|e| match e.diagnostic(&manifest_path) {
            Some(d) => HostError::BadInput(d.into()),
            None => HostError::Bind(e),
        })?;
    #[cfg(feature = "network")]
    let bridges = crate::net::bridge::Bridges::start(&manifest.hubs, &net, &scope).map_err(|e| {
        crate::shm::remove_private(scope.namespace(), scope.instance());
        HostError::BadInput(e.diagnostic(&manifest).into())
    })?;
    // Shared with live apply, which opens and closes hubs and topic bridges.
    #[cfg(feature = "network")]
    let bridges: crate::apply::SharedBridges = std::sync::Arc::new(std::sync::Mutex::new(bridges));
    #[cfg(feature = "network")]
    applier
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .bridging(bridges.clone());
    #[cfg(not(feature = "network"))]
    debug_assert!(
        net.is_empty(),
        "tcp hubs are refused by validation without the network feature"
    );
    // Started once the topics exist, before the first tick.
    let (recorder, ticks) = match recording.map(|r| r.start(&scope)).transpose() {
        Ok(Some((recorder, ticks))) => (Some(recorder), Some(ticks)),
        Ok(None) => (None, None),
        Err(e) => {
            crate::shm::remove_private(scope.namespace(), scope.instance());
            return Err(e.into());
        }
    };
    let board = StatsBoard::default();
    // Live stats for `horus stats`; a host that cannot serve them still runs.
    #[cfg(feature = "network")]
    let hubs = Some(bridges.lock().unwrap_or_else(|p| p.into_inner()).probe());
    #[cfg(not(feature = "network"))]
    let hubs = None;
    let control = match crate::control::ControlServer::start(
        scope.namespace(),
        &opts.manifest,
        board.clone(),
        hubs,
        Some(applier.clone()),
    ) {
        Ok(server) => Some(server),
        Err(e) => {
            tracing::warn!("live stats unavailable (horus stats will not see this host): {e}");
            None
        }
    };
    // A library a hot reload or a live apply is done with is unloaded by the `horus-unload`
    // thread when its last node lets go of it, so this function keeps no reference of its own to
    // the plugins it loaded.
    let (reaper, unloader) = crate::reload::Reaper::start()
        .map_err(|e| HostError::Reload(crate::reload::ReloadStartError::Spawn(e)))?;
    drop(plugins);
    let (reloader, reloads) = match watched {
        Some(watched) => {
            let (reloader, reloads) = crate::reload::Reloader::start_with(watched, builds, reaper.clone())
                .map_err(HostError::Reload)?;
            tracing::info!("hot reload on: a node reloads when its plugin or Python file changes");
            applier
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .watching(reloader.updates(), opts.watch);
            (Some(reloader), Some(reloads))
        }
        None => (None, None),
    };
    let manifest_watch = match reloader.is_some() {
        true => Some(ManifestWatch::start(applier).map_err(HostError::Reload)?),
        false => None,
    };
    let apply_link = scheduler::ApplyLink {
        ops: apply_rx,
        epoch: apply_epoch,
        reaper: Some(reaper),
    };
    let result = scheduler::run_with_applies(
        &manifest.scheduler,
        nodes,
        &stop,
        opts.duration,
        &board,
        &scope,
        reloads,
        Some(apply_link),
        ticks,
    );
    // The scheduler has stopped: what the topics still hold is written, then the file ends.
    let recorded = recorder.map(|r| {
        let done = r.finish();
        if let (Ok(summary), Some(args)) = (&done, &opts.record) {
            if summary.dropped > 0 {
                tracing::warn!("{} (the writer fell behind)", summary.line(&args.output));
            } else {
                tracing::info!("{}", summary.line(&args.output));
            }
        }
        done
    });
    drop(manifest_watch);
    drop(reloader);
    drop(signals);
    drop(control);
    #[cfg(feature = "network")]
    {
        // The hubs open now (an apply may have added or closed some), then every bridge
        // stopped, whoever else still holds them.
        let mut bridges = bridges.lock().unwrap_or_else(|p| p.into_inner());
        for hub in bridges.status() {
            tracing::info!("{}", hub.line());
        }
        bridges.close();
    }
    let write_stats = |nodes: &[NodeStats]| -> Result<(), HostError> {
        if let Some((path, file)) = &stats_file {
            let mut file: &File = file;
            serde_json::to_writer_pretty(&mut file, nodes)
                .map_err(std::io::Error::from)
                .and_then(|()| file.write_all(b"\n"))
                .map_err(|source| HostError::StatsFileWrite {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
        Ok(())
    };
    match result {
        Ok(report) => {
            // The scheduler has dropped its nodes: what they retired is unloaded now.
            drop(unloader);
            crate::shm::remove_private(scope.namespace(), scope.instance());
            write_stats(&report.nodes)?;
            if let Some(Err(e)) = recorded {
                return Err(e.into());
            }
            Ok(report)
        }
        Err(RunError::Hung {
            node,
            phase,
            secs,
            stats,
        }) => {
            // A thread is still executing plugin code: its library is never unloaded (the
            // nodes that hold it are never dropped), nor anything retiring.
            std::mem::forget(unloader);
            write_stats(&stats)?;
            eprint!("{}", scheduler::table(&stats));
            Err(HostError::Run(RunError::Hung {
                node,
                phase,
                secs,
                stats,
            }))
        }
        Err(e) => {
            drop(unloader);
            Err(e.into())
        }
    }
}

/// For `horus run --fail-on-node-error`: one line per node that ended the run with its circuit
/// not closed (see [`RunReport::unhealthy_nodes`]), with its last error; empty when every
/// node is healthy.
pub fn unhealthy_lines(report: &RunReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for n in report.unhealthy_nodes() {
        let _ = write!(
            out,
            "horus: --fail-on-node-error: node `{}` ended with its circuit {} ({} failures",
            n.name,
            n.circuit_state.name(),
            n.total_failures
        );
        let _ = match &n.last_error {
            Some(e) => writeln!(out, ", last: {e})"),
            None => writeln!(out, ")"),
        };
    }
    out
}

/// Each plugin node's file, as the graph found it (by path, by name or by node type).
pub(crate) fn plugin_files(graph: &Graph) -> std::collections::HashMap<String, PathBuf> {
    graph
        .nodes
        .iter()
        .filter(|n| matches!(n.spec.code, crate::manifest::NodeCode::Plugin(_)))
        .map(|n| (n.spec.name.clone(), n.plugin.info().path.clone()))
        .collect()
}

/// The nodes hot reload watches: every node of a Rust plugin, by its plugin file (the one the
/// search path resolved a name or a type to, not the name), and every Python node, by its `.py`
/// file.
pub(crate) fn watched_nodes(graph: &Graph) -> Vec<crate::reload::prepare::Watched> {
    graph
        .nodes
        .iter()
        .filter_map(|n| {
            let (file, python) = match (&n.spec.code, &n.python) {
                (crate::manifest::NodeCode::Plugin(_), _) => (n.plugin.info().path.clone(), None),
                (crate::manifest::NodeCode::Python(_), Some(source)) => {
                    let crate::python::PythonSource::File { file, program, .. } = source else {
                        return None;
                    };
                    let watch = crate::reload::python::PythonWatch {
                        loader: n.plugin.clone(),
                        source: source.clone(),
                        program: program.clone(),
                    };
                    (file.clone(), Some(watch))
                }
                (crate::manifest::NodeCode::Python(_), None) => return None,
            };
            Some(crate::reload::prepare::Watched {
                node: n.spec.name.clone(),
                file: std::fs::canonicalize(&file).unwrap_or(file),
                node_type: n.type_name.clone(),
                ports: n.plugin.info().node_types[n.type_index].ports.clone(),
                python,
                config: n.spec.config.clone(),
            })
        })
        .collect()
}

/// The `horus-apply` thread of a run with `--watch`: applies the manifest each time a new
/// version of the file is complete (an editor's write + rename included). Dropping it stops
/// the thread.
struct ManifestWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ManifestWatch {
    fn start(
        applier: crate::control::SharedApplier,
    ) -> Result<ManifestWatch, crate::reload::ReloadStartError> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let file = applier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .path()
            .to_path_buf();
        let (watcher, changes) = crate::reload::watch::Watcher::start(&[file], crate::reload::DEBOUNCE)?;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("horus-apply".into())
            .spawn(move || {
                // Validating a manifest (parsing, opening changed plugins, planning) takes
                // milliseconds of CPU: at the lowest priority, as the reload thread, it never
                // preempts the scheduler thread (`./scripts/bench.sh apply`).
                let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
                let _watcher = watcher;
                while !stopping.load(Ordering::Acquire) {
                    match changes.recv_timeout(Duration::from_millis(50)) {
                        Ok(file) => {
                            tracing::info!(file = %file.display(), "the manifest changed: applying it");
                            let mut applier = applier.lock().unwrap_or_else(|p| p.into_inner());
                            let outcome = applier.apply(&file, false);
                            crate::apply::log(&outcome);
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .map_err(crate::reload::ReloadStartError::Spawn)?;
        Ok(ManifestWatch {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ManifestWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// SIGINT/SIGTERM handling for the duration of a run: the first signal stops the scheduler, a
/// second one exits at once. Dropping the guard restores nothing but ends the listener thread.
struct SignalGuard {
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SignalGuard {
    fn install(stop: StopHandle) -> Result<SignalGuard, HostError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals =
            signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(HostError::Signals)?;
        let handle = signals.handle();
        let thread = std::thread::Builder::new()
            .name("horus-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if stop.is_stopped() {
                        eprintln!("horus: second signal ({signal}) during shutdown, exiting now");
                        std::process::exit(130);
                    }
                    tracing::info!(signal, "stop requested, shutting down (send again to force)");
                    stop.stop();
                }
            })
            .map_err(HostError::Signals)?;
        Ok(SignalGuard {
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
