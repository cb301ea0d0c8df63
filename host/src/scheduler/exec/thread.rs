//! The `thread` executor: a node on a worker thread of its own, each call a handoff over a
//! channel; a tick that outlives the watchdog gets the worker quarantined (see [`super`]).
//!
//! Owns the worker thread's command loop and its lifetime (joined when idle, detached when
//! stuck). Does not own the decision to quarantine or restart (see `super::super::running`).

use super::{Executor, IoSnapshot, Rebuild, TickOutcome};
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

/// A live worker thread with its node.
struct Worker {
    tx: Sender<Cmd>,
    rx: Receiver<Reply>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// A tick was handed off and its reply has not been collected.
    in_tick: bool,
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
    /// Starts a worker that creates the node; waits for `create` to finish.
    fn spawn(rebuild: &Rebuild, io: NodeIo, health: Arc<Health>) -> Result<Worker, CallError> {
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
        let mut worker = Worker {
            tx: cmd_tx,
            rx: reply_rx,
            thread: Some(thread),
            in_tick: false,
        };
        match worker.rx.recv() {
            Ok(Reply::Done(Ok(()), _)) => Ok(worker),
            Ok(Reply::Done(Err(e), _)) => {
                worker.join();
                Err(e)
            }
            _ => Err(gone()),
        }
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
            Some(w) if w.in_tick => w.collect(),
            Some(w) => w.hand_off(self.wait),
        }
    }

    fn shutdown(&mut self) -> Result<(), CallError> {
        match self.worker.as_mut() {
            Some(w) if !w.in_tick => w.call(Cmd::Shutdown),
            Some(_) => Err(CallError {
                kind: CallErrorKind::Error,
                message: "still in a tick at shutdown".into(),
            }),
            None => Ok(()),
        }
    }

    fn restart(&mut self) -> Result<(), CallError> {
        match self.worker.as_mut() {
            Some(w) => w.call(Cmd::Recreate)?,
            None => {
                let io = self.rebuild.io()?;
                self.inputs = io.input_peers();
                self.worker = Some(Worker::spawn(&self.rebuild, io, self.health.clone())?);
            }
        }
        self.init()
    }

    fn hung(&self, timeout: Duration, epoch: Instant) -> bool {
        self.worker.as_ref().is_some_and(|w| w.in_tick)
            && self.health.in_tick_for(epoch).is_some_and(|d| d > timeout)
    }

    fn quarantine(&mut self) -> bool {
        if let Some(mut w) = self.worker.take() {
            // Dropping the channels tells the worker to exit if its tick ever returns; its
            // JoinHandle is dropped: the thread is detached, never joined.
            w.thread.take();
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

    fn io_snapshot(&mut self) -> IoSnapshot {
        if let Some(w) = self.worker.as_mut().filter(|w| !w.in_tick) {
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
            if w.in_tick {
                // Still in a tick: cannot join without hanging the host; leave it detached.
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
