//! Hot reload (issue 14): a rebuilt node's plugin or Python file is picked up by the running host.
//!
//! Owns noticing that a new version of a watched file is complete ([`watch`]) and preparing the
//! new build off the scheduler thread ([`prepare`]; a Python file: [`python`]), and the development loop that rebuilds a
//! node when its sources change ([`build`], [`sources`]). It does not own the swap itself: the
//! scheduler does that at a tick boundary.

pub mod build;
pub mod prepare;
pub mod python;
pub mod sources;
pub mod watch;

use crate::ffi::PluginLibrary;
use prepare::{Prepared, Watched};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The scheduler's side of hot reload: new builds to swap in, and where to send the replaced
/// ones, whose unloading (`dlclose`, about a millisecond, and the check that the copy is gone)
/// then happens off the scheduler thread.
#[derive(Debug)]
pub struct ReloadLink {
    /// New builds, prepared.
    pub prepared: Receiver<Prepared>,
    /// Where replaced libraries go.
    pub reaper: Reaper,
}

/// A library a hot reload is done with (replaced, or refused), to unload off the scheduler
/// thread; with, for a `thread` node, the ending worker thread that ran its code, joined first:
/// a thread-local destructor the library registered on that thread pins it until the thread
/// ends, and glibc never unmaps a library whose last reference went while it was pinned.
#[derive(Debug)]
pub struct Retired {
    /// The node.
    pub node: String,
    /// The library.
    pub plugin: Arc<PluginLibrary>,
    /// The worker thread that ran it, ending.
    pub thread: Option<std::thread::JoinHandle<()>>,
}

/// Where the scheduler sends replaced libraries to be unloaded by the `horus-reload` thread,
/// and the count, per node, of copies that stayed mapped (pinned).
#[derive(Debug, Clone)]
pub struct Reaper {
    /// Replaced libraries (`None`: only a wake-up, from [`Unloader`]'s drop).
    pub retired: Sender<Option<Retired>>,
    /// Per node: replaced copies that stayed mapped.
    pub pinned: Arc<Mutex<HashMap<String, u64>>>,
}

impl Reaper {
    /// Hands `plugin`, done with in `node`, over to be unloaded once `thread` (if any) has
    /// ended (dropped here if the reload thread is gone).
    pub fn retire(
        &self,
        node: &str,
        plugin: Arc<PluginLibrary>,
        thread: Option<std::thread::JoinHandle<()>>,
    ) {
        let _ = self.retired.send(Some(Retired {
            node: node.to_owned(),
            plugin,
            thread,
        }));
    }

    /// Replaced copies of `node`'s library that stayed mapped.
    pub fn pinned(&self, node: &str) -> u64 {
        self.pinned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
            .copied()
            .unwrap_or(0)
    }
}

/// The `horus-unload` thread: unloads the libraries a hot reload or a live apply is done with,
/// off the scheduler thread (at the lowest priority), once the worker thread that ran them has
/// ended ([`Retired`]). It runs for the whole run, with or without `--watch`. Dropping it
/// stops it; what is still retiring then gets half a second to end, and a library whose thread
/// has not ended is never released.
pub struct Unloader {
    stop: Arc<AtomicBool>,
    /// Wakes the idle thread to see `stop`.
    wake: Sender<Option<Retired>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Unloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unloader").finish_non_exhaustive()
    }
}

impl Reaper {
    /// Starts the `horus-unload` thread the returned reaper feeds.
    pub fn start() -> std::io::Result<(Reaper, Unloader)> {
        let (retired_tx, retired) = std::sync::mpsc::channel::<Option<Retired>>();
        let wake = retired_tx.clone();
        let pinned: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let pins = pinned.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("horus-unload".into())
            .spawn(move || {
                // `dlclose` and a look at /proc/self/maps take about a millisecond of CPU: at the
                // lowest priority they never preempt the scheduler thread.
                let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
                let mut ending: Vec<(Retired, std::time::Instant)> = Vec::new();
                while !stopping.load(Ordering::Acquire) {
                    // Idle, it sleeps on the channel (the drop wakes it); while a thread is
                    // ending, it looks again every few ms.
                    let got = match ending.is_empty() {
                        true => retired.recv().map_err(|_| RecvTimeoutError::Disconnected),
                        false => retired.recv_timeout(Duration::from_millis(5)),
                    };
                    match got {
                        Ok(r) => ending.extend(r.map(|r| (r, std::time::Instant::now()))),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                    ending.extend(
                        retired
                            .try_iter()
                            .flatten()
                            .map(|r| (r, std::time::Instant::now())),
                    );
                    reap(&mut ending, &pins);
                }
                // The run is over: what is still retiring gets a last chance to end.
                ending.extend(
                    retired
                        .try_iter()
                        .flatten()
                        .map(|r| (r, std::time::Instant::now())),
                );
                let deadline = std::time::Instant::now() + Duration::from_millis(500);
                while !ending.is_empty() && std::time::Instant::now() < deadline {
                    reap(&mut ending, &pins);
                    std::thread::sleep(Duration::from_millis(5));
                }
                // Never release a library under a thread that may still run its code.
                ending.into_iter().for_each(std::mem::forget);
            })?;
        let reaper = Reaper {
            retired: retired_tx,
            pinned,
        };
        let unloader = Unloader {
            stop,
            wake,
            thread: Some(thread),
        };
        Ok((reaper, unloader))
    }
}

impl Drop for Unloader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.wake.send(None);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What hot reload watches after a live apply changed the nodes ([`crate::apply`]): every
/// node it runs with its file (nodes added included, nodes removed gone), and the `build =`
/// jobs. Empty when `hot_reload` was turned off (in a host started without `--watch`).
#[derive(Debug, Default)]
pub struct WatchSet {
    /// The watched nodes.
    pub watched: Vec<Watched>,
    /// The build jobs.
    pub builds: Vec<build::BuildJob>,
}

/// How long file events settle before a change is looked at (a rebuild's few events come
/// within a few ms; the file is then checked complete and stable in [`watch`]).
pub const DEBOUNCE: Duration = Duration::from_millis(20);

/// The `horus-reload` thread of a run with `--watch`: watches the plugin files of the watched
/// nodes and sends each new build, prepared ([`prepare::prepare`]: loaded and checked), to the
/// scheduler, which swaps it in at a tick boundary. Dropping it stops the thread.
pub struct Reloader {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// New sets of watched nodes (a live apply added or removed some).
    updates: Sender<WatchSet>,
    /// The unloading thread, when this reloader started its own ([`Reloader::start`]).
    unloader: Option<Unloader>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

/// Why hot reload could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReloadStartError {
    /// The files cannot be watched.
    #[error("cannot watch the plugin files for hot reload: {0}")]
    Watch(#[from] watch::WatchError),
    /// The thread could not be spawned.
    #[error("cannot start the hot-reload thread: {0}")]
    Spawn(std::io::Error),
    /// The build thread of `build =` nodes could not start.
    #[error(transparent)]
    Build(#[from] build::BuildStartError),
}

impl Reloader {
    /// Where a live apply sends the nodes to watch from then on: the thread watches the
    /// new set of files (and runs the new set of builds) from its next turn.
    pub fn updates(&self) -> Sender<WatchSet> {
        self.updates.clone()
    }

    /// Starts watching, and running the `builds` on source changes, with an unloading thread of
    /// its own; the receiver goes to `scheduler::run`.
    pub fn start(
        watched: Vec<Watched>,
        builds: Vec<build::BuildJob>,
    ) -> Result<(Reloader, ReloadLink), ReloadStartError> {
        let (reaper, unloader) = Reaper::start().map_err(ReloadStartError::Spawn)?;
        let (mut reloader, link) = Reloader::start_with(watched, builds, reaper)?;
        reloader.unloader = Some(unloader);
        Ok((reloader, link))
    }

    /// [`Reloader::start`], the libraries it is done with going to `reaper` (the run's
    /// unloading thread).
    pub fn start_with(
        watched: Vec<Watched>,
        builds: Vec<build::BuildJob>,
        reaper: Reaper,
    ) -> Result<(Reloader, ReloadLink), ReloadStartError> {
        let files = files_of(&watched);
        let (watcher, changes) = watch::Watcher::start(&files, DEBOUNCE)?;
        let (updates, new_sets) = std::sync::mpsc::channel::<WatchSet>();
        let (tx, rx) = std::sync::mpsc::channel();
        // A failed build reaches the scheduler as a refused reload of its nodes.
        let builds_key = format!("{builds:?}");
        let builder = match builds.is_empty() {
            true => None,
            false => Some(build::Builder::start(builds, tx.clone())?),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("horus-reload".into())
            .spawn(move || {
                // Loading a build (copying it, relocating it) takes milliseconds of CPU: at the lowest priority they never preempt the scheduler
                // thread, whose tick intervals stay as they were (`./scripts/bench.sh reload`).
                let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19);
                let mut current = Current {
                    watched,
                    files,
                    watcher,
                    changes,
                    builds: builds_key,
                    builder,
                };
                while !stopping.load(Ordering::Acquire) {
                    while let Ok(set) = new_sets.try_recv() {
                        current.update(set, &tx);
                    }
                    match current.changes.recv_timeout(Duration::from_millis(20)) {
                        Ok(file) => {
                            tracing::info!(file = %file.display(), "hot reload: a new build is there, loading it");
                            if tx.send(prepare::prepare(&file, &current.watched)).is_err() {
                                break;
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .map_err(ReloadStartError::Spawn)?;
        Ok((
            Reloader {
                stop,
                thread: Some(thread),
                updates,
                unloader: None,
            },
            ReloadLink { prepared: rx, reaper },
        ))
    }
}

/// The watched files of `watched`, each once, sorted.
fn files_of(watched: &[Watched]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = watched.iter().map(|w| w.file.clone()).collect();
    files.sort();
    files.dedup();
    files
}

/// What the `horus-reload` thread watches now.
struct Current {
    watched: Vec<Watched>,
    files: Vec<PathBuf>,
    watcher: watch::Watcher,
    changes: Receiver<PathBuf>,
    /// The build jobs (as text: a new set that reads the same keeps the running builder).
    builds: String,
    /// The `horus-build` thread, when nodes have `build =`.
    builder: Option<build::Builder>,
}

impl Current {
    /// Watches the files of `set` from now on: a new watcher when the files differ (the old
    /// one stops; if the new one cannot start, the old set stays watched and it is logged), a
    /// new builder when the build jobs differ (the old one's running build is stopped).
    fn update(&mut self, set: WatchSet, prepared: &Sender<Prepared>) {
        let files = files_of(&set.watched);
        if files != self.files {
            match watch::Watcher::start(&files, DEBOUNCE) {
                Ok((watcher, changes)) => {
                    self.watcher = watcher;
                    self.changes = changes;
                    self.files = files;
                }
                Err(e) => {
                    tracing::warn!(
                        "hot reload: {e}; it keeps watching the files it watched before the apply"
                    );
                    return;
                }
            }
        }
        self.watched = set.watched;
        let key = format!("{:?}", set.builds);
        if key != self.builds {
            self.builder = None;
            self.builds = key;
            if !set.builds.is_empty() {
                match build::Builder::start(set.builds, prepared.clone()) {
                    Ok(builder) => self.builder = Some(builder),
                    Err(e) => {
                        tracing::warn!("hot reload: {e}; `build =` commands do not run until the next apply")
                    }
                }
            }
        }
        tracing::info!(
            files = self.files.len(),
            "hot reload: watching the files of the nodes the apply left running"
        );
    }
}

/// How long a retired worker thread may take to end (the old code's `shutdown` and `destroy`)
/// before its library is reported as pinned.
const THREAD_END_WAIT: Duration = Duration::from_secs(5);

/// Unloads the retired libraries whose worker thread (if any) has ended; a thread that does not
/// end in [`THREAD_END_WAIT`] keeps its library for good (never released under running code),
/// reported as pinned.
fn reap(ending: &mut Vec<(Retired, std::time::Instant)>, pins: &Mutex<HashMap<String, u64>>) {
    let mut i = 0;
    while i < ending.len() {
        let (r, since) = &mut ending[i];
        if let Some(t) = r.thread.take_if(|t| t.is_finished()) {
            let _ = t.join();
        }
        if r.thread.is_none() {
            let (r, _) = ending.swap_remove(i);
            unload(&r.node, r.plugin, pins);
            continue;
        }
        if since.elapsed() > THREAD_END_WAIT {
            let (r, _) = ending.swap_remove(i);
            tracing::warn!(
                node = %r.node,
                copy = %r.plugin.loaded_path().display(),
                "the replaced code's worker thread did not end (stuck in its shutdown or destroy): \
                 its library stays loaded"
            );
            *pins
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(r.node.clone())
                .or_default() += 1;
            std::mem::forget(r);
            continue;
        }
        i += 1;
    }
}

/// Drops a replaced library; when that was its last user and its copy is still mapped, a
/// thread-local destructor of a live thread pins it: reported once per copy and counted.
fn unload(node: &str, plugin: Arc<PluginLibrary>, pinned: &Mutex<HashMap<String, u64>>) {
    let last = Arc::strong_count(&plugin) == 1;
    let copy = plugin.loaded_path().to_path_buf();
    drop(plugin);
    if last && still_mapped(&copy) {
        *pinned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(node.to_owned())
            .or_default() += 1;
        tracing::warn!(
            node,
            copy = %copy.display(),
            "the replaced library stays mapped: a thread-local destructor (or a panic) on the \
             scheduler thread pins it"
        );
    }
}

/// Whether `/proc/self/maps` still maps the file at `copy` (a deleted private copy).
pub fn still_mapped(copy: &Path) -> bool {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    let copy = copy.to_string_lossy();
    maps.lines().any(|l| l.contains(&*copy))
}

impl Drop for Reloader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else {
            return;
        };
        // It notices `stop` within 100 ms, unless it is inside a library that hangs while it
        // loads: then it is left behind, so that the host can still exit.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while !thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if thread.is_finished() {
            let _ = thread.join();
        } else {
            tracing::warn!("the hot-reload thread is stuck loading a library; leaving it behind");
        }
    }
}
