//! Moving a running node to another isolation level (a live apply of its `isolation`), with
//! its state and its place on its topics handed over, at a tick boundary:
//!
//! 1. the old executor saves the state and gives the endpoints up: an `inline` node here and
//!    now; a `thread` node's worker while the node is skipped ([`ThreadExec::begin_yield`]);
//!    a `process` node's worker into a state file ([`ProcessExec::save_to`]), its endpoints
//!    staying in that process;
//! 2. the new executor takes the node's place: the same endpoints (inline and thread), or —
//!    into or out of a worker process — new ones that take the outputs' Links over and read each
//!    input on from where the node stopped (the old endpoint's cursor); it creates the node,
//!    restores the state and initialises it (on a new worker thread or process while the node
//!    is skipped; `inline` here);
//! 3. after the new executor's first tick the old object is shut down and destroyed (commit,
//!    `generation` + 1) or, if any step failed, the new one is destroyed and the old one gets
//!    its endpoints back and runs on (rollback), as a failed hot reload does.
//!
//! Owns [`Move`] and its stages on [`RunningNode`]. Does not own the executors' mechanics
//! ([`super::exec`]) or deciding to move (see [`crate::apply`]).

use super::exec::{Exec, Executor, ProcessExec, Rebuild, RestartStatus, Start, ThreadExec, Yielded};
use super::running::RunningNode;
use crate::ffi::NodeInstance;
use crate::io::NodeIo;
use crate::manifest::Isolation;
use crate::reload::prepare::NewCode;
use crate::reload::Reaper;
use crate::topic::TopicScope;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long the host's stop waits for a move under way to come up before it rolls it back.
const SETTLE_WAIT: Duration = Duration::from_secs(2);

/// A node moving to another isolation level.
pub(super) struct Move {
    to: Isolation,
    /// The code it runs there (the running code, or a new plugin, type or config applied with
    /// the move).
    code: NewCode,
    scope: TopicScope,
    /// How long a worker may take for a tick.
    wait: Duration,
    stage: Stage,
    started: Instant,
    reaper: Option<Reaper>,
}

enum Stage {
    /// The old `thread` node's worker saves the state and hands the endpoints over.
    Yielding,
    /// The new executor is coming up.
    Starting(Parked),
    /// The new executor waits for its first tick.
    Ticking(Parked),
}

/// The old executor, parked, with what a rollback needs.
struct Parked {
    old: Exec,
    /// The node's endpoints, which the host keeps while a new worker process took their place
    /// (their outputs revoked): the old executor's again on a rollback.
    io: Option<NodeIo>,
}

/// A new executor made by [`RunningNode::make_new`]: it, whether it is ready for its first
/// tick, and the endpoints the host keeps meanwhile.
type Made = (Exec, bool, Option<NodeIo>);
/// Why a new executor could not be made, and the node's endpoints if they are still there.
type NotMade = (String, Option<NodeIo>);

/// Writes a node's saved state for a worker process to read: a new file, owner-only.
pub fn write_state(path: &Path, state: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(state)
}

/// A fresh path for a moving node's state file.
fn state_path(node: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::env::temp_dir().join(format!(
        "horus-move-{}-{}-{node}.state",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

impl RunningNode {
    /// Starts moving the node to isolation `to`, running `code` there. An error when it cannot
    /// start (busy, or a step that ran here failed): the node runs on as it was.
    pub(super) fn begin_move(
        &mut self,
        to: Isolation,
        code: NewCode,
        scope: TopicScope,
        wait: Duration,
        reaper: Option<Reaper>,
    ) -> Result<(), String> {
        let name = self.setup.name.clone();
        if to == self.setup.isolation {
            // It runs there already (a move of an earlier apply rolled back): only a new config
            // is left to apply.
            return match code.config {
                Some(_) => self.begin_apply(code, reaper.as_ref()),
                None => Ok(()),
            };
        }
        if self.swapping() || self.restarting() {
            return Err(format!(
                "node `{name}` is in a hot reload, a move or a restart; apply again once it is done"
            ));
        }
        let mv = Box::new(Move {
            to,
            code,
            scope,
            wait,
            stage: Stage::Yielding,
            started: Instant::now(),
            reaper,
        });
        let failed = |why: String| format!("node `{name}` cannot move to `{}`: {why}", to.name());
        match &mut self.exec {
            Exec::Inline(i) => {
                self.health.enter(self.epoch.elapsed());
                let saved = i.save_state();
                self.health.leave();
                let state = saved.map_err(|e| failed(format!("`save_state` failed: {e}")))?;
                let detached = i.io().detached();
                let io = i.replace_io(detached);
                self.start_new(mv, state, Some(io), None).map_err(failed)
            }
            Exec::Thread(t) => {
                t.begin_yield().map_err(failed)?;
                self.moving = Some(mv);
                Ok(())
            }
            Exec::Process(p) => {
                let pid = p.worker_pid();
                let path = state_path(&name);
                let saved = p.save_to(&path).and_then(|()| {
                    let state = std::fs::read(&path).map_err(|e| format!("cannot read the saved state: {e}"));
                    let _ = std::fs::remove_file(&path);
                    state
                });
                let state = saved.map_err(&failed)?;
                self.start_new(mv, state, None, pid).map_err(failed)
            }
        }
    }

    /// Undoes a move [`RunningNode::begin_move`] started, before its first tick (another node
    /// of the same apply failed): the old executor runs on with its endpoints; not counted as
    /// a failure. A `thread` node's hand-over under way is waited for (at most
    /// [`SETTLE_WAIT`]).
    pub(super) fn cancel_move(&mut self) {
        let Some(mut mv) = self.moving.take() else {
            return;
        };
        let (failures, last) = (self.reload.failures, self.reload.last_error.clone());
        match std::mem::replace(&mut mv.stage, Stage::Yielding) {
            Stage::Yielding => {
                let until = Instant::now() + SETTLE_WAIT;
                if let Exec::Thread(t) = &mut self.exec {
                    loop {
                        match t.poll_yield() {
                            Yielded::Pending if Instant::now() < until => {
                                std::thread::sleep(Duration::from_millis(1))
                            }
                            Yielded::Done(_, io) => {
                                if let Err(e) = t.resume(*io) {
                                    tracing::error!(node = %self.setup.name, "apply: the node could not get its ports back: {e}");
                                }
                                break;
                            }
                            _ => break,
                        }
                    }
                }
            }
            Stage::Starting(parked) | Stage::Ticking(parked) => {
                // Not a revert of an applied change: the apply itself fails.
                let reverts = self.reverts.take();
                self.roll_back(mv, parked, None, "cancelled");
                self.reverts = reverts;
            }
        }
        self.reload.failures = failures;
        self.reload.last_error = last;
    }

    /// True when the new executor waits for its first tick.
    pub(super) fn move_ticking(&self) -> bool {
        self.moving
            .as_ref()
            .is_some_and(|m| matches!(m.stage, Stage::Ticking(_)))
    }

    /// Moves a move on (once per cycle): the old worker's hand-over, then the new executor's
    /// start.
    pub(super) fn poll_move(&mut self) {
        let Some(mut mv) = self.moving.take() else {
            return;
        };
        match std::mem::replace(&mut mv.stage, Stage::Yielding) {
            Stage::Yielding => {
                let Exec::Thread(t) = &mut self.exec else {
                    return;
                };
                match t.poll_yield() {
                    Yielded::Pending => self.moving = Some(mv),
                    Yielded::Failed(why) => self.move_failed(mv.to, &why),
                    Yielded::Done(state, io) => {
                        let to = mv.to;
                        if let Err(why) = self.start_new(mv, state, Some(*io), None) {
                            self.move_failed(to, &why);
                        }
                    }
                }
            }
            Stage::Starting(parked) => {
                let status = match &mut self.exec {
                    Exec::Thread(t) => t.poll_start(),
                    Exec::Process(p) => match p.poll_restart() {
                        RestartStatus::Pending => Start::Pending,
                        RestartStatus::Ready => Start::Ready,
                        RestartStatus::Failed(e) => Start::Failed(e.to_string(), None),
                    },
                    Exec::Inline(_) => Start::Ready,
                };
                match status {
                    Start::Pending => {
                        mv.stage = Stage::Starting(parked);
                        self.moving = Some(mv);
                    }
                    Start::Ready => {
                        mv.stage = Stage::Ticking(parked);
                        self.moving = Some(mv);
                    }
                    Start::Failed(why, io) => self.roll_back(mv, parked, io.map(|io| *io), &why),
                }
            }
            ticking @ Stage::Ticking(_) => {
                mv.stage = ticking;
                self.moving = Some(mv);
            }
        }
    }

    /// After the new executor's first tick: keep it (the old object shut down and destroyed)
    /// or, if the tick failed, give the old one its endpoints back.
    pub(super) fn after_move_tick(&mut self, error: Option<&str>) {
        let Some(mut mv) = self.moving.take() else {
            return;
        };
        let Stage::Ticking(parked) = std::mem::replace(&mut mv.stage, Stage::Yielding) else {
            self.moving = Some(mv);
            return;
        };
        match error {
            None => self.commit_move(mv, parked),
            Some(why) => self.roll_back(
                mv,
                parked,
                None,
                &format!("the first tick in its new isolation failed: {why}"),
            ),
        }
    }

    /// Finishes a move still under way when the host stops: one whose new executor is up (or
    /// comes up within [`SETTLE_WAIT`]) is kept — its first tick never came, nothing failed —,
    /// others are rolled back.
    pub(super) fn settle_move(&mut self) {
        let until = Instant::now() + SETTLE_WAIT;
        while self
            .moving
            .as_ref()
            .is_some_and(|m| !matches!(m.stage, Stage::Ticking(_)))
            && Instant::now() < until
        {
            self.poll_move();
            std::thread::sleep(Duration::from_millis(2));
        }
        let Some(mut mv) = self.moving.take() else {
            return;
        };
        match std::mem::replace(&mut mv.stage, Stage::Yielding) {
            Stage::Ticking(parked) => self.commit_move(mv, parked),
            Stage::Starting(parked) => self.roll_back(mv, parked, None, "the host stopped before it came up"),
            // A `save_state` that did not return: the worker stays busy (detached at the end).
            Stage::Yielding => {}
        }
    }

    /// Brings the new executor up on the node's endpoints (`io`, or new ones taking over from
    /// the old worker process `old_pid`) and the saved `state`, and makes it current, the old
    /// one parked. On an error the old executor (still current) has its endpoints back.
    fn start_new(
        &mut self,
        mut mv: Box<Move>,
        state: Vec<u8>,
        io: Option<NodeIo>,
        old_pid: Option<u32>,
    ) -> Result<(), String> {
        let rebuild = self.rebuild_for(&mv);
        let io = match io {
            Some(io) => io,
            None => match taking_over(&rebuild, old_pid) {
                Ok(io) => io,
                Err(why) => {
                    self.give_back(None, &mv.scope);
                    return Err(why);
                }
            },
        };
        match self.make_new(&mv, rebuild, state, io) {
            Ok((new, ready, held)) => {
                let old = std::mem::replace(&mut self.exec, new);
                let parked = Parked { old, io: held };
                mv.stage = if ready {
                    Stage::Ticking(parked)
                } else {
                    Stage::Starting(parked)
                };
            }
            Err(failed) => {
                let (why, io) = *failed;
                self.give_back(io, &mv.scope);
                return Err(why);
            }
        }
        tracing::info!(node = %self.setup.name, from = self.setup.isolation.name(), to = mv.to.name(), "apply: moving the node (state handed over)");
        self.moving = Some(mv);
        // A worker that came up at once goes straight to its first tick.
        self.poll_move();
        Ok(())
    }

    /// The new executor on `io` with `state` restored: whether it is ready for its first tick
    /// (inline) or still coming up, and the endpoints the host keeps meanwhile (a worker
    /// process attaches its own); or why not, with the endpoints if they are still there.
    fn make_new(
        &self,
        mv: &Move,
        rebuild: Rebuild,
        state: Vec<u8>,
        mut io: NodeIo,
    ) -> Result<Made, Box<NotMade>> {
        if let Some(config) = &mv.code.config {
            io.replace_config(config.clone());
        }
        match mv.to {
            Isolation::Inline => {
                let arg = mv
                    .code
                    .reload_arg()
                    .map(|a| a.create)
                    .or_else(|| rebuild.python.as_ref().map(crate::python::PythonSource::encode));
                let created =
                    NodeInstance::create_keeping_io(rebuild.plugin.clone(), rebuild.type_index, io, arg);
                let mut instance = match created {
                    Ok(instance) => instance,
                    Err(failed) => {
                        let (e, io) = *failed;
                        return Err(Box::new((format!("`create` failed: {e}"), Some(io))));
                    }
                };
                if let Some(then) = mv.code.reload_arg().map(|a| a.then) {
                    instance.set_recreate_arg(Some(then));
                }
                self.health.enter(self.epoch.elapsed());
                let ready = instance
                    .restore_state(&state)
                    .map_err(|e| format!("`restore_state` failed: {e}"))
                    .and_then(|()| instance.init().map_err(|e| format!("`init` failed: {e}")));
                self.health.leave();
                match ready {
                    Ok(()) => Ok((Exec::Inline(instance), true, None)),
                    Err(why) => {
                        // Never started: destroyed without `shutdown`.
                        let detached = instance.io().detached();
                        let io = instance.replace_io(detached);
                        Err(Box::new((why, Some(io))))
                    }
                }
            }
            Isolation::Thread => {
                ThreadExec::start_moved(rebuild, &mv.code, io, state, self.health.clone(), mv.wait)
                    .map(|t| (Exec::Thread(Box::new(t)), false, None))
                    // The endpoints went down with the thread that could not start.
                    .map_err(|why| Box::new((why, None)))
            }
            Isolation::Process => {
                let path = state_path(&self.setup.name);
                if let Err(e) = write_state(&path, &state) {
                    return Err(Box::new((
                        format!("cannot write the state for the worker process: {e}"),
                        Some(io),
                    )));
                }
                let moved = crate::worker::MovedIn {
                    cursors: io.input_cursors(),
                    state_file: path.clone(),
                };
                let mut p = ProcessExec::new(&rebuild, self.health.clone(), mv.wait).moved_in(moved);
                match p.begin_restart() {
                    RestartStatus::Failed(e) => {
                        let _ = std::fs::remove_file(&path);
                        drop(p);
                        io.take_over_outputs();
                        Err(Box::new((
                            format!("the worker process did not start: {e}"),
                            Some(io),
                        )))
                    }
                    _ => Ok((Exec::Process(Box::new(p)), false, Some(io))),
                }
            }
        }
    }

    /// How the new executor builds the node (a restart builds it so from then on).
    fn rebuild_for(&self, mv: &Move) -> Rebuild {
        Rebuild {
            plugin: mv.code.plugin.clone(),
            type_index: mv.code.type_index,
            python: mv.code.python.clone().or_else(|| self.setup.python.clone()),
            name: self.setup.name.clone(),
            logging: self.setup.logging,
            config: mv
                .code
                .config
                .clone()
                .unwrap_or_else(|| self.setup.config.clone()),
            ports: self.setup.ports.clone(),
            port_names: self.setup.port_names.clone(),
            scope: mv.scope.clone(),
            epoch: self.epoch,
        }
    }

    /// The old executor, current again, takes the node's endpoints back: `io`, or (lost with a
    /// thread) new ones; a worker process takes its own outputs back.
    fn give_back(&mut self, io: Option<NodeIo>, scope: &TopicScope) {
        let name = self.setup.name.clone();
        let io = match (&self.exec, io) {
            (Exec::Process(_), io) => {
                // The host's endpoints that took its outputs over go first.
                drop(io);
                None
            }
            (_, Some(io)) => Some(io),
            (_, None) => {
                tracing::warn!(node = %name, "apply: the node's endpoints were lost with a worker thread; it gets new ones (messages queued for it are lost)");
                scope.bind_replacing(&self.setup.ports).ok().map(|bindings| {
                    NodeIo::new(
                        name.clone(),
                        self.setup.logging,
                        self.setup.config.clone(),
                        self.setup.port_names.clone(),
                        bindings,
                        self.epoch,
                    )
                })
            }
        };
        let result = match (&mut self.exec, io) {
            (Exec::Inline(i), Some(io)) => {
                drop(i.replace_io(io));
                Ok(())
            }
            (Exec::Thread(t), Some(io)) => t.resume(io),
            (Exec::Process(p), _) => p.retake(),
            (_, None) => Err("its endpoints could not be attached again".into()),
        };
        if let Err(e) = result {
            tracing::error!(node = %name, "apply: the node could not get its ports back after a failed move: {e}");
        }
    }

    /// Makes the parked old executor current again with the node's endpoints (`io`, else the
    /// new executor's, else those the host held) and destroys the new one.
    fn roll_back(&mut self, mv: Box<Move>, parked: Parked, io: Option<NodeIo>, why: &str) {
        let Parked { old, io: held } = parked;
        let new = std::mem::replace(&mut self.exec, old);
        let io = io.or_else(|| endpoints_of(new)).or_else(|| {
            held.map(|mut held| {
                held.take_over_outputs();
                held
            })
        });
        self.give_back(io, &mv.scope);
        self.move_failed(mv.to, &format!("rolled back: {why}"));
    }

    fn move_failed(&mut self, to: Isolation, why: &str) {
        self.apply_reverted();
        let why = why.lines().next().unwrap_or_default();
        self.reload.failures += 1;
        self.reload.last_error = Some(format!("move to `{}`: {why}", to.name()));
        tracing::warn!(node = %self.setup.name, "apply: the move to `{}` failed, the node runs on as it was: {why}", to.name());
    }

    fn commit_move(&mut self, mv: Box<Move>, parked: Parked) {
        let Parked { mut old, io } = parked;
        // What the node sent and received where it ran counts on: the endpoints it had there
        // (or the host's for it) go with the old executor.
        let (a, b, c) = match &io {
            Some(held) => held.message_totals(),
            None => old.io_snapshot().totals,
        };
        self.moved_counts = (
            self.moved_counts.0 + a,
            self.moved_counts.1 + b,
            self.moved_counts.2 + c,
        );
        let from = self.setup.isolation;
        let name = self.setup.name.clone();
        let old_plugin = self.setup.plugin.clone();
        let thread = match old {
            Exec::Inline(mut i) => {
                self.health.enter(self.epoch.elapsed());
                if let Err(e) = Executor::shutdown(&mut i) {
                    tracing::warn!(node = %name, "shutdown of the moved-out object failed: {e}");
                }
                self.health.leave();
                drop(i);
                None
            }
            Exec::Thread(t) => t.retire(),
            Exec::Process(mut p) => {
                if let Err(e) = p.shutdown() {
                    tracing::warn!(node = %name, "shutdown of the moved-out object failed: {e}");
                }
                drop(p);
                None
            }
        };
        // The endpoints the host held for a node now in a worker process.
        drop(io);
        let Move {
            to,
            code,
            reaper,
            started,
            ..
        } = *mv;
        self.setup.isolation = to;
        self.setup.plugin = code.plugin;
        self.setup.type_index = code.type_index;
        if let Some(config) = code.config {
            self.setup.config = config;
        }
        if code.python.is_some() {
            self.setup.python = code.python;
        }
        self.reload.reloads += 1;
        match reaper {
            Some(reaper) => reaper.retire(&name, old_plugin, thread),
            None => {
                if let Some(thread) = thread {
                    let _ = thread.join();
                }
            }
        }
        tracing::info!(
            node = %name,
            generation = self.reload.reloads + 1,
            total_ms = started.elapsed().as_millis() as u64,
            "apply: the node moved from `{}` to `{}` (state handed over)",
            from.name(),
            to.name()
        );
        // Its inputs are the new executor's endpoints now.
        self.sync_inputs(Instant::now());
    }
}

/// The endpoints of a new executor that is given up (a move rolled back): an inline object's,
/// a worker thread's (handed back, the thread ended and joined); a worker process's end with it
/// (`None`).
fn endpoints_of(new: Exec) -> Option<NodeIo> {
    match new {
        Exec::Inline(mut i) => {
            let detached = i.io().detached();
            Some(i.replace_io(detached))
        }
        Exec::Thread(t) => {
            let (io, thread) = t.surrender();
            if let Some(thread) = thread {
                let _ = thread.join();
            }
            io
        }
        Exec::Process(p) => {
            drop(p);
            None
        }
    }
}

/// Endpoints for a node moving out of worker process `old_pid`: its outputs take their Links
/// over from the worker's, each input reads on from where the worker stopped.
fn taking_over(rebuild: &Rebuild, old_pid: Option<u32>) -> Result<NodeIo, String> {
    let mut bindings = rebuild
        .scope
        .bind_replacing(&rebuild.ports)
        .map_err(|(port, e)| {
            format!(
                "cannot attach port `{}` to its topic: {e}",
                rebuild.port_names[port]
            )
        })?;
    if let Some(pid) = old_pid {
        for b in &mut bindings {
            if let crate::io::PortBinding::Input(sub) = b {
                if let Some(cursor) = sub.cursor_of(pid) {
                    sub.start_at(cursor);
                }
            }
        }
    }
    Ok(NodeIo::new(
        rebuild.name.clone(),
        rebuild.logging,
        rebuild.config.clone(),
        rebuild.port_names.clone(),
        bindings,
        rebuild.epoch,
    ))
}
