//! Hot reload on the scheduler thread: swapping a node's new code in at a tick boundary, and
//! its accounting (generation, reloads, failures, pinned library copies). The new build was
//! opened and checked off this thread ([`crate::reload::prepare`]); here only the node's own
//! swap runs, through its executor ([`super::exec::Exec::begin_reload`]):
//!
//! - `inline`: `save_state` of the old code, `create`, `restore_state` and `init` of the new,
//!   here and now;
//! - `thread`: the old code's worker saves the state and hands the topic endpoints over; a new
//!   worker thread brings the new code up on them while the node is skipped;
//! - `process`: the worker process keeps its endpoints and cursors and swaps its own copy of
//!   the new build in, while the node is skipped.
//!
//! After the new code's first tick either the old code is shut down and destroyed (commit) or
//! the old code runs again (rollback). A build that arrives during a swap waits for it to end.
//! The libraries a swap is done with go to the [`Reaper`], which unloads them off this thread
//! (after the `thread` node's old worker has ended).

use super::exec::SwapStatus;
use super::running::RunningNode;
use crate::reload::prepare::{NewCode, Prepared};
use crate::reload::{Reaper, ReloadLink};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a live apply's swap names as its origin in the log lines of hot reload.
const APPLY_ORIGIN: &str = "the manifest (live apply)";

/// A node's hot-reload counters and its swap in progress.
#[derive(Debug, Default)]
pub(super) struct ReloadStats {
    /// Reloads swapped in (generation = 1 + reloads).
    pub(super) reloads: u64,
    /// Reloads refused or rolled back.
    pub(super) failures: u64,
    /// Why the last one failed.
    pub(super) last_error: Option<String>,
    /// Where replaced libraries go to be unloaded off this thread, with the pinned counts.
    reaper: Option<Reaper>,
    /// The swap in progress.
    swap: Option<Swap>,
    /// A newer build that came during a swap (or while the node was busy), with its file.
    queued: Option<(NewCode, String)>,
}

/// A swap in progress.
#[derive(Debug)]
struct Swap {
    /// The file of the new build.
    file: String,
    /// The new code.
    code: NewCode,
    /// False while the new code is still coming up on its worker; true once it waits for its
    /// first tick.
    ticking: bool,
    /// When the swap started on this thread, and how long its part here took.
    started: Instant,
    on_thread: Duration,
}

/// Applies `prepared` (a new build of one file) to the nodes that use it, in this cycle.
pub(super) fn apply(nodes: &mut [RunningNode], prepared: Prepared, link: &ReloadLink) {
    let file = prepared.file.display().to_string();
    for (name, outcome) in prepared.nodes {
        let Some(node) = nodes.iter_mut().find(|n| n.setup.name == name) else {
            continue;
        };
        node.reload.reaper = Some(link.reaper.clone());
        // The watcher knows the files of the start; a live apply may have moved the node to
        // other code since.
        if !node.runs_file(&prepared.file) {
            if let Ok(code) = outcome {
                node.unload(code.plugin, None);
            }
            tracing::info!(
                node = %name,
                "hot reload: not reloaded from {file}: a live apply replaced the node's code since"
            );
            continue;
        }
        match outcome {
            Ok(mut code) => {
                // A manifest's Python node runs the class the last apply gave it, from this new
                // file (imported afresh). A `horus.Scheduler` node's new code is its class's.
                if let (
                    Some(crate::python::PythonSource::File { class: new, .. }),
                    Some(crate::python::PythonSource::File { class, .. }),
                ) = (&mut code.python, &node.setup.python)
                {
                    new.clone_from(class);
                }
                node.offer(code, file.clone())
            }
            Err(why) => node.reload_failed(&file, &why),
        }
    }
}

/// Moves on the swaps handed off to workers, and starts the builds that waited; once per
/// cycle, cheap when nothing is under way.
pub(super) fn progress(nodes: &mut [RunningNode]) {
    for node in nodes {
        if node.moving.is_some() {
            node.poll_move();
            continue;
        }
        let waiting = node.reload.swap.as_ref().is_some_and(|s| !s.ticking);
        if waiting {
            let status = node.exec.poll_reload();
            node.swap_went(status);
        } else if node.reload.swap.is_none() && node.reload.queued.is_some() {
            if let Some((code, file)) = node.reload.queued.take() {
                node.begin(code, file);
            }
        }
    }
}

impl ReloadStats {
    /// True while swapped-in code waits for its first tick.
    pub(super) fn pending(&self) -> bool {
        self.swap.as_ref().is_some_and(|s| s.ticking)
    }

    /// Replaced copies of `node`'s library that stayed mapped.
    pub(super) fn pinned(&self, node: &str) -> u64 {
        self.reaper.as_ref().map_or(0, |r| r.pinned(node))
    }
}

impl RunningNode {
    /// True when the node's code comes from `file` (canonical): its plugin file, or a Python
    /// node's `.py` file.
    fn runs_file(&self, file: &std::path::Path) -> bool {
        let own = match &self.setup.python {
            Some(crate::python::PythonSource::File { file, .. }) => file.clone(),
            Some(_) => return true,
            None => self.setup.plugin.info().path.clone(),
        };
        std::fs::canonicalize(&own).unwrap_or(own) == file
    }

    /// A new build for this node: swapped in now, or after the swap in progress.
    fn offer(&mut self, code: NewCode, file: String) {
        if self.reload.swap.is_some() {
            self.queue(code, file);
        } else {
            self.begin(code, file);
        }
    }

    /// Keeps `code` for when the node is free (a newer build replaces an older one waiting).
    fn queue(&mut self, code: NewCode, file: String) {
        if let Some((older, _)) = self.reload.queued.replace((code, file)) {
            self.unload(older.plugin, None);
        }
    }

    /// Starts swapping `code` in.
    fn begin(&mut self, code: NewCode, file: String) {
        if self.restarting() || self.moving.is_some() {
            self.queue(code, file);
            return;
        }
        let started = Instant::now();
        let status = self.exec.begin_reload(&code);
        self.reload.swap = Some(Swap {
            file,
            code,
            ticking: false,
            started,
            on_thread: started.elapsed(),
        });
        self.swap_went(status);
    }

    /// Where the swap in progress is.
    fn swap_went(&mut self, status: SwapStatus) {
        match status {
            SwapStatus::Ready => {
                if let Some(swap) = self.reload.swap.as_mut() {
                    swap.ticking = true;
                }
            }
            SwapStatus::Pending => {}
            SwapStatus::NotIdle => {
                if let Some(swap) = self.reload.swap.take() {
                    self.queue(swap.code, swap.file);
                }
            }
            SwapStatus::Failed(why, thread) => {
                if let Some(swap) = self.reload.swap.take() {
                    if swap.file == APPLY_ORIGIN {
                        self.apply_reverted();
                    }
                    self.reload_failed(&swap.file, &why);
                    self.unload(swap.code.plugin, thread);
                }
            }
        }
    }

    /// After the first tick of newly swapped-in code: keep it (the old code is shut down and
    /// destroyed, its library unloaded if nothing else uses it) or, if the tick failed, swap the
    /// old code back.
    pub(super) fn after_reload_tick(&mut self, error: Option<&str>) {
        let Some(swap) = self.reload.swap.take_if(|s| s.ticking) else {
            return;
        };
        match error {
            None => {
                let retiring = Instant::now();
                let thread = self.exec.commit_reload();
                self.reload.reloads += 1;
                // Restarts build the new code from now on (and the stats name it).
                let same_file = swap.code.plugin.info().path == self.setup.plugin.info().path;
                let old = std::mem::replace(&mut self.setup.plugin, swap.code.plugin);
                self.setup.type_index = swap.code.type_index;
                if let Some(python) = swap.code.python {
                    self.setup.python = Some(python);
                } else if !same_file {
                    self.setup.origin = self.setup.plugin.info().path.display().to_string();
                }
                if !same_file {
                    tracing::info!(
                        node = %self.setup.name,
                        node_type = %self.setup.type_name(),
                        generation = self.reload.reloads + 1,
                        "apply: the node runs the code of {} (state handed over)",
                        self.setup.plugin.info().path.display()
                    );
                }
                if let Some(config) = swap.code.config {
                    self.setup.config = config;
                    tracing::info!(
                        node = %self.setup.name,
                        generation = self.reload.reloads + 1,
                        "apply: the node runs with its new config (state handed over)"
                    );
                }
                self.unload(old, thread);
                // What ran on the scheduler thread: the swap (inline: save, create, restore,
                // init; on a worker: the handoff) and retiring the old code after its first tick.
                tracing::info!(
                    node = %self.setup.name,
                    generation = self.reload.reloads + 1,
                    swap_us = swap.on_thread.as_micros() as u64,
                    retire_us = retiring.elapsed().as_micros() as u64,
                    total_ms = swap.started.elapsed().as_millis() as u64,
                    "hot reload: running the new code from {}",
                    swap.file
                );
            }
            Some(why) => {
                if swap.file == APPLY_ORIGIN {
                    self.apply_reverted();
                }
                let thread = self.exec.rollback_reload();
                self.reload_failed(
                    &swap.file,
                    &format!("the new code's first tick failed, the old code runs again: {why}"),
                );
                self.unload(swap.code.plugin, thread);
            }
        }
    }

    /// A live apply's swap ([`NewCode`]: other code, or the same code made again with a new
    /// config): started now, or queued behind the node's running tick (a worker that is busy).
    /// Code from the running plugin file and node type (a `config` or Python change) runs
    /// from the library the node already has. Libraries the swap is done with go to `reaper`
    /// (hot reload's, with `--watch`) unless the node has one. An error when it cannot start
    /// (a swap or restart under way) or failed at once (an inline node's `create`,
    /// `restore_state` or `init`): the node runs on as it was.
    pub(super) fn begin_apply(&mut self, mut code: NewCode, reaper: Option<&Reaper>) -> Result<(), String> {
        if self.reload.swap.is_some() || self.reload.queued.is_some() || self.restarting() {
            return Err(format!(
                "node `{}` is in a hot reload or a restart; apply again once it is done",
                self.setup.name
            ));
        }
        if self.reload.reaper.is_none() {
            self.reload.reaper = reaper.cloned();
        }
        let running = &self.setup.plugin;
        if !Arc::ptr_eq(&code.plugin, running)
            && code.plugin.info().path == running.info().path
            && code.plugin.info().node_types[code.type_index].name == self.setup.type_name()
        {
            // The check opened the file again (it changed on disk since the node loaded it):
            // a new build is hot reload's to swap in, not the apply's.
            let fresh = std::mem::replace(&mut code.plugin, running.clone());
            code.type_index = self.setup.type_index;
            self.unload(fresh, None);
        }
        let failures = self.reload.failures;
        self.begin(code, APPLY_ORIGIN.into());
        if self.reload.failures > failures {
            return Err(format!(
                "node `{}`: {}",
                self.setup.name,
                self.reload.last_error.clone().unwrap_or_default()
            ));
        }
        Ok(())
    }

    /// True while a swap or a move is under way, or a swap waits.
    pub(super) fn swapping(&self) -> bool {
        self.reload.swap.is_some() || self.reload.queued.is_some() || self.moving.is_some()
    }

    /// Undoes a swap [`RunningNode::begin_apply`] started, before its first tick (another node
    /// of the same apply failed): the old code runs on with its old config; not counted as a
    /// failed reload.
    pub(super) fn cancel_apply(&mut self) {
        if let Some(swap) = self.reload.swap.take() {
            let thread = self.exec.rollback_reload();
            self.unload(swap.code.plugin, thread);
        }
        if let Some((code, _)) = self.reload.queued.take() {
            self.unload(code.plugin, None);
        }
    }

    pub(super) fn reload_failed(&mut self, file: &str, why: &str) {
        // One line: a Python traceback stays in the failed tick's own log line.
        let why = why.lines().next().unwrap_or_default();
        self.reload.failures += 1;
        tracing::warn!(node = %self.setup.name, "hot reload from {file} rolled back: {why}");
        self.reload.last_error = Some(why.to_owned());
    }

    /// Hands a library a swap is done with to the run's `horus-unload` thread
    /// ([`crate::reload::Reaper`]), which unloads it (about a millisecond of `dlclose` and a
    /// look at `/proc/self/maps`, kept off this thread) once `thread`, the worker that ran it,
    /// has ended, and counts it if it stays pinned. A scheduler without one (the Python
    /// package's, which swaps nothing) joins the thread and releases the library here.
    fn unload(&mut self, plugin: Arc<crate::ffi::PluginLibrary>, thread: Option<JoinHandle<()>>) {
        match &self.reload.reaper {
            Some(reaper) => reaper.retire(&self.setup.name, plugin, thread),
            None => {
                if let Some(thread) = thread {
                    let _ = thread.join();
                }
                drop(plugin);
            }
        }
    }
}
