//! The `thread` executor: a node on a worker thread of its own, each call a handoff over a
//! channel; a tick that outlives the watchdog gets the worker quarantined (see [`super`]).
//!
//! A restart is handed off as well: the worker (a fresh one if the old one was quarantined)
//! creates the node again and initialises it while the scheduler polls for the replies.
//!
//! Owns the worker thread's command loop and its lifetime (joined when idle, detached when
//! stuck, and the handles of abandoned workers, to count those still alive). Does not own the
//! decision to quarantine or restart (see `super::super::running`).

use super::{Executor, IoSnapshot, Rebuild, RestartStatus, TickOutcome};
use crate::ffi::{CallError, CallErrorKind, NodeInstance};
use crate::io::NodeIo;
use crate::scheduler::Health;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

enum Cmd {
    Init,
    Tick,
    Recreate,
    Shutdown,
    Snapshot,
}

enum Reply {
    Done(Result<(), CallError>, Duration),
    Snapshot(IoSnapshot),
}

/// Where a handed-off restart is: the reply it waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// A fresh worker's `create` (the thread ends if it fails).
    Create,
    /// `recreate` on the same worker.
    Recreate,
    /// The fresh instance's `init`.
    Init,
}

/// A live worker thread with its node.
struct Worker {
    tx: Sender<Cmd>,
    rx: Receiver<Reply>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// A tick was handed off and its reply has not been collected.
    in_tick: bool,
    /// A restart was handed off and is not done.
    restarting: Option<Stage>,
}

fn worker_main(
    instance: NodeInstance,
    health: Arc<Health>,
    epoch: Instant,
    rx: Receiver<Cmd>,
    tx: Sender<Reply>,
) {
    let mut instance = instance;
    while let Ok(cmd) = rx.recv() {
        let reply = match cmd {
            Cmd::Tick => {
                let started = Instant::now();
                health.enter(started.duration_since(epoch));
                let r = instance.tick();
                health.leave();
                Reply::Done(r, started.elapsed())
            }
            Cmd::Init => timed(|| instance.init()),
            Cmd::Recreate => timed(|| instance.recreate()),
            Cmd::Shutdown => timed(|| instance.shutdown()),
            Cmd::Snapshot => Reply::Snapshot(IoSnapshot::of(instance.io())),
        };
        if tx.send(reply).is_err() {
            break;
        }
    }
    // The scheduler hung up: `instance` drops here, on this thread (the plugin's `destroy`).
}

fn timed(f: impl FnOnce() -> Result<(), CallError>) -> Reply {
    let started = Instant::now();
    let r = f();
    Reply::Done(r, started.elapsed())
}

fn gone() -> CallError {
    CallError {
        kind: CallErrorKind::Error,
        message: "the node's worker thread is gone".into(),
    }
}

impl Worker {
    /// Starts a worker that creates the node; does not wait: the reply to `create` is owed
    /// ([`Stage::Create`]).
    fn launch(rebuild: &Rebuild, io: NodeIo, health: Arc<Health>) -> Result<Worker, CallError> {
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let (reply_tx, reply_rx) = mpsc::channel();
        let (recipe, epoch) = (rebuild.clone(), rebuild.epoch);
        let thread = std::thread::Builder::new()
            .name(format!("horus-node-{}", rebuild.name))
            .spawn(move || {
                let started = Instant::now();
                match recipe.instance(io) {
                    Ok(instance) => {
                        if reply_tx.send(Reply::Done(Ok(()), started.elapsed())).is_ok() {
                            worker_main(instance, health, epoch, cmd_rx, reply_tx);
                        }
                    }
                    Err(e) => {
                        let _ = reply_tx.send(Reply::Done(Err(e), started.elapsed()));
                    }
                }
            })
            .map_err(|e| CallError {
                kind: CallErrorKind::Error,
                message: format!("cannot spawn a worker thread: {e}"),
            })?;
        Ok(Worker {
            tx: cmd_tx,
            rx: reply_rx,
            thread: Some(thread),
            in_tick: false,
            restarting: Some(Stage::Create),
        })
    }

    /// Starts a worker that creates the node; waits for `create` to finish.
    fn spawn(rebuild: &Rebuild, io: NodeIo, health: Arc<Health>) -> Result<Worker, CallError> {
        let mut worker = Worker::launch(rebuild, io, health)?;
        worker.restarting = None;
        match worker.rx.recv() {
            Ok(Reply::Done(Ok(()), _)) => Ok(worker),
            Ok(Reply::Done(Err(e), _)) => {
                worker.join();
                Err(e)
            }
            _ => Err(gone()),
        }
    }

    /// In a tick or a restart: not free for another command.
    fn busy(&self) -> bool {
        self.in_tick || self.restarting.is_some()
    }

    /// Advances a handed-off restart as far as the replies that have come allow: after the
    /// (re)create, hands the `init` over.
    fn poll_restart(&mut self) -> RestartStatus {
        while let Some(stage) = self.restarting {
            match self.rx.try_recv() {
                Ok(Reply::Done(Ok(()), _)) if stage == Stage::Init => self.restarting = None,
                Ok(Reply::Done(Ok(()), _)) => {
                    if self.tx.send(Cmd::Init).is_err() {
                        self.restarting = None;
                        return RestartStatus::Failed(gone());
                    }
                    self.restarting = Some(Stage::Init);
                }
                Ok(Reply::Done(Err(e), _)) => {
                    self.restarting = None;
                    if stage == Stage::Create {
                        // The thread ends right after its reply.
                        self.join();
                    }
                    return RestartStatus::Failed(e);
                }
                Ok(Reply::Snapshot(_)) => {}
                Err(TryRecvError::Empty) => return RestartStatus::Pending,
                Err(TryRecvError::Disconnected) => {
                    // The thread has ended (or is ending): joined, so the executor replaces
                    // this worker on the next restart instead of calling a dead one.
                    self.restarting = None;
                    self.join();
                    return RestartStatus::Failed(gone());
                }
            }
        }
        RestartStatus::Ready
    }

    /// Sends `cmd` and waits for its reply as long as it takes (not for ticks).
    fn call(&mut self, cmd: Cmd) -> Result<(), CallError> {
        self.tx.send(cmd).map_err(|_| gone())?;
        match self.rx.recv() {
            Ok(Reply::Done(r, _)) => r,
            _ => Err(gone()),
        }
    }

    /// Collects the reply of a tick handed off earlier, if it has come.
    fn collect(&mut self) -> TickOutcome {
        match self.rx.try_recv() {
            Ok(Reply::Done(r, d)) => {
                self.in_tick = false;
                TickOutcome::Late(r, d)
            }
            Ok(Reply::Snapshot(_)) | Err(TryRecvError::Empty) => TickOutcome::Busy,
            Err(TryRecvError::Disconnected) => TickOutcome::Late(Err(gone()), Duration::ZERO),
        }
    }

    /// Hands a tick over and waits for it up to `wait`.
    fn hand_off(&mut self, wait: Duration) -> TickOutcome {
        if self.tx.send(Cmd::Tick).is_err() {
            return TickOutcome::Finished(Err(gone()), Duration::ZERO);
        }
        match self.rx.recv_timeout(wait) {
            Ok(Reply::Done(r, d)) => TickOutcome::Finished(r, d),
            Ok(Reply::Snapshot(_)) | Err(RecvTimeoutError::Timeout) => {
                self.in_tick = true;
                TickOutcome::Started
            }
            Err(RecvTimeoutError::Disconnected) => TickOutcome::Finished(Err(gone()), Duration::ZERO),
        }
    }

    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A node on its own worker thread.
pub struct ThreadExec {
    worker: Option<Worker>,
    /// Quarantined workers, never joined: kept to count those still alive.
    abandoned: Vec<std::thread::JoinHandle<()>>,
    /// The current worker's input endpoints, released if it is quarantined.
    inputs: Vec<(String, usize)>,
    rebuild: Rebuild,
    health: Arc<Health>,
    wait: Duration,
    last: IoSnapshot,
}

impl ThreadExec {
    /// Creates the node on a new worker thread; waits at most `wait` for each tick.
    pub fn start(
        rebuild: Rebuild,
        io: NodeIo,
        health: Arc<Health>,
        wait: Duration,
    ) -> Result<ThreadExec, CallError> {
        let inputs = io.input_peers();
        let worker = Worker::spawn(&rebuild, io, health.clone())?;
        Ok(ThreadExec {
            worker: Some(worker),
            abandoned: Vec::new(),
            inputs,
            rebuild,
            health,
            wait,
            last: IoSnapshot::default(),
        })
    }
}

impl Executor for ThreadExec {
    fn init(&mut self) -> Result<(), CallError> {
        self.worker.as_mut().ok_or_else(gone)?.call(Cmd::Init)
    }

    fn tick(&mut self) -> TickOutcome {
        match self.worker.as_mut() {
            None => TickOutcome::Finished(Err(gone()), Duration::ZERO),
            Some(w) if w.restarting.is_some() => TickOutcome::Busy,
            Some(w) if w.in_tick => w.collect(),
            Some(w) => w.hand_off(self.wait),
        }
    }

    fn shutdown(&mut self) -> Result<(), CallError> {
        match self.worker.as_mut() {
            Some(w) if !w.busy() => w.call(Cmd::Shutdown),
            Some(w) => Err(CallError {
                kind: CallErrorKind::Error,
                message: if w.in_tick {
                    "still in a tick at shutdown".into()
                } else {
                    "still restarting (create/init) at shutdown".into()
                },
            }),
            None => Ok(()),
        }
    }

    fn begin_restart(&mut self) -> RestartStatus {
        match self.worker.as_mut() {
            Some(w) if w.busy() => {
                return RestartStatus::Failed(CallError {
                    kind: CallErrorKind::Error,
                    message: "the worker is busy (in a tick or a restart)".into(),
                })
            }
            Some(w) => {
                if w.tx.send(Cmd::Recreate).is_err() {
                    return RestartStatus::Failed(gone());
                }
                w.restarting = Some(Stage::Recreate);
            }
            None => {
                let launched = self.rebuild.io().and_then(|io| {
                    let inputs = io.input_peers();
                    Worker::launch(&self.rebuild, io, self.health.clone()).map(|w| (w, inputs))
                });
                match launched {
                    Ok((w, inputs)) => {
                        self.inputs = inputs;
                        self.worker = Some(w);
                    }
                    Err(e) => return RestartStatus::Failed(e),
                }
            }
        }
        self.poll_restart()
    }

    fn poll_restart(&mut self) -> RestartStatus {
        let Some(w) = self.worker.as_mut() else {
            return RestartStatus::Ready;
        };
        let status = w.poll_restart();
        if matches!(status, RestartStatus::Failed(_)) && w.thread.is_none() {
            // A worker whose thread ended (a fresh one whose `create` failed, say) is dropped:
            // the next restart launches another.
            self.worker = None;
        }
        status
    }

    fn hung(&self, timeout: Duration, epoch: Instant) -> bool {
        self.worker.as_ref().is_some_and(|w| w.in_tick)
            && self.health.in_tick_for(epoch).is_some_and(|d| d > timeout)
    }

    fn quarantine(&mut self) -> bool {
        if let Some(mut w) = self.worker.take() {
            // Dropping the channels tells the worker to exit if its tick (or create, or init)
            // ever returns; it is never joined, only asked whether it has ended.
            self.abandoned.extend(w.thread.take());
        }
        // The abandoned instance keeps its topic endpoints: a reliable input of it would fill
        // up and hold its publishers back for good. Let them stop waiting for it.
        for (segment, peer) in std::mem::take(&mut self.inputs) {
            if let Err(e) = crate::shm::release_peer(&segment, peer) {
                tracing::warn!(segment, "cannot release a quarantined input: {e}");
            }
        }
        // #13: fence its outputs too: if its tick ever returns, its sends fail and write
        // nothing; the replacement takes the Links over (`Rebuild::io`).
        for segment in self.rebuild.scope.output_links(&self.rebuild.ports) {
            match crate::shm::revoke_producer(&segment) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(segment, "cannot revoke a quarantined output: {e}"),
            }
        }
        self.health.leave();
        true
    }

    fn abandoned_threads(&mut self) -> usize {
        // A finished one has left the plugin; dropping its handle detaches nothing that runs.
        self.abandoned.retain(|t| !t.is_finished());
        self.abandoned.len()
    }

    fn io_snapshot(&mut self) -> IoSnapshot {
        if let Some(w) = self.worker.as_mut().filter(|w| !w.busy()) {
            if w.tx.send(Cmd::Snapshot).is_ok() {
                if let Ok(Reply::Snapshot(s)) = w.rx.recv_timeout(Duration::from_secs(1)) {
                    self.last = s;
                }
            }
        }
        self.last.clone()
    }
}

impl Drop for ThreadExec {
    fn drop(&mut self) {
        if let Some(mut w) = self.worker.take() {
            if w.busy() {
                // Still in a tick or a restart: cannot join without hanging the host; leave it
                // detached.
                w.thread.take();
                return;
            }
            // Closing the command channel ends the worker loop; it destroys the node and
            // exits, and is joined so the plugin can be unloaded afterwards.
            let Worker { tx, rx, thread, .. } = w;
            drop(tx);
            drop(rx);
            if let Some(t) = thread {
                let _ = t.join();
            }
        }
    }
}
