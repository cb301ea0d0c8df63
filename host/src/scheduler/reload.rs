//! Hot reload on the scheduler thread: swapping a node's new code in at a tick boundary, and
//! its accounting (generation, reloads, failures, pinned library copies). The new build was
//! opened and checked off this thread ([`crate::reload::prepare`]); here only the node's own
//! calls run: `save_state` of the old code, `create`, `restore_state` and `init` of the new, and
//! after the new code's first tick either the old code's `shutdown` and `destroy` (commit) or a
//! swap back to the old code (rollback).

use super::running::RunningNode;
use super::Exec;
use crate::ffi::PluginLibrary;
use crate::reload::prepare::{NewCode, Prepared};
use crate::reload::{Reaper, ReloadLink};
use std::sync::Arc;

/// A node's hot-reload counters.
#[derive(Debug, Clone, Default)]
pub(super) struct ReloadStats {
    /// Reloads swapped in (generation = 1 + reloads).
    pub(super) reloads: u64,
    /// Reloads refused or rolled back.
    pub(super) failures: u64,
    /// Why the last one failed.
    pub(super) last_error: Option<String>,
    /// Where replaced libraries go to be unloaded off this thread, with the pinned counts.
    reaper: Option<Reaper>,
    /// The file of a swap waiting for its first tick.
    pending: Option<String>,
    /// How long the last swap took on the scheduler thread.
    swap: std::time::Duration,
}

/// Applies `prepared` (a new build of one file) to the nodes that use it, in this cycle.
pub(super) fn apply(nodes: &mut [RunningNode], prepared: Prepared, link: &ReloadLink) {
    let file = prepared.file.display().to_string();
    for (name, outcome) in prepared.nodes {
        let Some(node) = nodes.iter_mut().find(|n| n.setup.name == name) else {
            continue;
        };
        node.reload.reaper = Some(link.reaper.clone());
        match outcome {
            Ok(code) => node.swap_in(code, &file),
            Err(why) => node.reload_failed(&file, &why),
        }
    }
}

impl ReloadStats {
    /// True while swapped-in code waits for its first tick.
    pub(super) fn pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Replaced copies of `node`'s library that stayed mapped.
    pub(super) fn pinned(&self, node: &str) -> u64 {
        self.reaper.as_ref().map_or(0, |r| r.pinned(node))
    }
}

impl RunningNode {
    /// Swaps `code` in (its first tick decides: see [`RunningNode::after_reload_tick`]).
    fn swap_in(&mut self, code: NewCode, file: &str) {
        let Exec::Inline(instance) = &mut self.exec else {
            let why = format!(
                "hot reload of `{}` nodes is not available yet; the node keeps its code (use \
                 isolation = \"inline\" to reload it)",
                self.setup.isolation.name()
            );
            self.reload_failed(file, &why);
            return;
        };
        let NewCode {
            plugin,
            type_index,
            ports,
        } = code;
        if self.reload.pending.take().is_some() {
            // Swapped in but not ticked yet (two builds in one cycle): `reload` keeps it as good.
            self.reload.reloads += 1;
        }
        let started = std::time::Instant::now();
        let swapped = instance.reload(plugin.clone(), type_index, &ports);
        self.reload.swap = started.elapsed();
        match swapped {
            Ok(()) => {
                // Restarts build the new code from now on.
                self.setup.plugin = plugin;
                self.setup.type_index = type_index;
                self.reload.pending = Some(file.to_owned());
            }
            Err((step, e)) => {
                let why = format!("`{}` of the new code failed: {e}", step.name());
                self.reload_failed(file, &why);
            }
        }
    }

    /// After the first tick of newly swapped-in code: keep it (the old code is shut down and
    /// destroyed, its library unloaded if nothing else uses it) or, if the tick failed, swap the
    /// old code back.
    pub(super) fn after_reload_tick(&mut self, error: Option<&str>) {
        let Some(file) = self.reload.pending.take() else {
            return;
        };
        let Exec::Inline(instance) = &mut self.exec else {
            return;
        };
        match error {
            None => {
                let started = std::time::Instant::now();
                let old = instance.commit_reload();
                self.reload.reloads += 1;
                if let Some(old) = old {
                    self.unload(old);
                }
                // What ran on the scheduler thread: the swap (save, create, restore, init) before
                // the new code's first tick, and retiring the old code after it.
                tracing::info!(
                    node = %self.setup.name,
                    generation = self.reload.reloads + 1,
                    swap_us = self.reload.swap.as_micros() as u64,
                    retire_us = started.elapsed().as_micros() as u64,
                    "hot reload: running the new code from {file}"
                );
            }
            Some(why) => {
                let new = instance.rollback_reload();
                let (plugin, type_index) = (instance.plugin().clone(), instance.type_index());
                self.setup.plugin = plugin;
                self.setup.type_index = type_index;
                self.reload_failed(
                    &file,
                    &format!("the new code's first tick failed, the old code runs again: {why}"),
                );
                if let Some(new) = new {
                    self.unload(new);
                }
            }
        }
    }

    fn reload_failed(&mut self, file: &str, why: &str) {
        self.reload.failures += 1;
        tracing::warn!(node = %self.setup.name, "hot reload from {file} rolled back: {why}");
        self.reload.last_error = Some(why.to_owned());
    }

    /// Hands a replaced library to the `horus-reload` thread, which unloads it (about a
    /// millisecond of `dlclose` and a look at `/proc/self/maps`, kept off this thread) and counts
    /// it if it stays pinned.
    fn unload(&mut self, plugin: Arc<PluginLibrary>) {
        if let Some(reaper) = &self.reload.reaper {
            reaper.retire(&self.setup.name, plugin);
        }
    }
}
