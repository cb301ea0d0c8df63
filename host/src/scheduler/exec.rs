//! Where a node's calls run: its isolation level.
//!
//! - `inline`: a direct call on the scheduler thread ([`NodeInstance`] owned here).
//! - `thread`: the node lives on a worker thread of its own; each call is a handoff over a
//!   channel. The scheduler waits for a tick at most `wait` (the node's watchdog timeout, or one
//!   scheduler period); a tick still running then is collected on a later cycle and the node is
//!   skipped meanwhile, so the other nodes keep their rate. A worker whose tick outlives the
//!   watchdog is **quarantined**: abandoned (never joined, its plugin never unloaded, since the
//!   thread is still inside it), and a restart builds a fresh instance on a fresh worker with
//!   fresh topic endpoints.
//!
//! Owns the worker protocol. Does not own policy (breaker, deadlines): see [`super`].

use crate::ffi::{CallError, CallErrorKind, NodeInstance, PluginLibrary};
use crate::io::{NodeIo, TopicStats};
use crate::topic::{PortPlan, TopicScope};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Health;

/// A node's message counters, as last seen.
#[derive(Debug, Clone, Default)]
pub struct IoSnapshot {
    /// (sent, received, dropped) over all ports.
    pub totals: (u64, u64, u64),
    /// Per-port topic counters.
    pub topics: Vec<TopicStats>,
    /// Messages waiting in the node's inputs.
    pub pending: usize,
}

impl IoSnapshot {
    fn of(io: &NodeIo) -> IoSnapshot {
        IoSnapshot {
            totals: io.message_totals(),
            topics: io.topic_stats(),
            pending: io.pending_input(),
        }
    }
}

/// What a tick handoff came to.
#[derive(Debug)]
pub enum TickOutcome {
    /// A tick ran and finished.
    Finished(Result<(), CallError>, Duration),
    /// A tick was handed to the worker and is still running.
    Started,
    /// A tick handed off on an earlier cycle finished; no new tick this cycle.
    Late(Result<(), CallError>, Duration),
    /// The worker is still in an earlier tick: the node is skipped.
    Busy,
}

/// How to build a node's instance again from scratch (a quarantined worker keeps the old one).
#[derive(Debug, Clone)]
pub struct Rebuild {
    /// The plugin.
    pub plugin: Arc<PluginLibrary>,
    /// Node type index in the plugin.
    pub type_index: usize,
    /// Node name.
    pub name: String,
    /// Whether its log lines are shown.
    pub logging: bool,
    /// Its config.
    pub config: toml::Table,
    /// Its ports' topics.
    pub ports: Vec<PortPlan>,
    /// Its ports' names.
    pub port_names: Vec<String>,
    /// Where topic names resolve.
    pub scope: TopicScope,
    /// The run's clock origin.
    pub epoch: Instant,
}

impl Rebuild {
    fn io(&self) -> Result<NodeIo, CallError> {
        let bindings = self.scope.bind(&self.ports).map_err(|(port, e)| CallError {
            kind: CallErrorKind::Error,
            message: format!("cannot attach port `{}` again: {e}", self.port_names[port]),
        })?;
        Ok(NodeIo::new(
            self.name.clone(),
            self.logging,
            self.config.clone(),
            self.port_names.clone(),
            bindings,
            self.epoch,
        ))
    }
}

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
        let (plugin, type_index, epoch) = (rebuild.plugin.clone(), rebuild.type_index, rebuild.epoch);
        let thread = std::thread::Builder::new()
            .name(format!("horus-node-{}", rebuild.name))
            .spawn(move || {
                let started = Instant::now();
                match NodeInstance::create(plugin, type_index, io) {
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

    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A node on its own worker thread.
pub struct ThreadExec {
    worker: Option<Worker>,
    rebuild: Rebuild,
    health: Arc<Health>,
    wait: Duration,
    last: IoSnapshot,
    quarantined: u64,
}

impl ThreadExec {
    /// Creates the node on a new worker thread.
    pub fn start(
        rebuild: Rebuild,
        io: NodeIo,
        health: Arc<Health>,
        wait: Duration,
    ) -> Result<ThreadExec, CallError> {
        let worker = Worker::spawn(&rebuild, io, health.clone())?;
        Ok(ThreadExec {
            worker: Some(worker),
            rebuild,
            health,
            wait,
            last: IoSnapshot::default(),
            quarantined: 0,
        })
    }
}

/// A node's executor: inline or on a worker thread.
pub enum Exec {
    /// On the scheduler thread.
    Inline(NodeInstance),
    /// On a worker thread of its own (boxed: it is the larger and colder variant).
    Thread(Box<ThreadExec>),
}

impl Exec {
    /// Runs `init`.
    pub fn init(&mut self) -> Result<(), CallError> {
        match self {
            Exec::Inline(i) => i.init(),
            Exec::Thread(t) => t.worker.as_mut().ok_or_else(gone)?.call(Cmd::Init),
        }
    }

    /// Runs `shutdown` (a worker still in a tick is left alone).
    pub fn shutdown(&mut self) -> Result<(), CallError> {
        match self {
            Exec::Inline(i) => i.shutdown(),
            Exec::Thread(t) => match t.worker.as_mut() {
                Some(w) if !w.in_tick => w.call(Cmd::Shutdown),
                Some(_) => Err(CallError {
                    kind: CallErrorKind::Error,
                    message: "still in a tick at shutdown".into(),
                }),
                None => Ok(()),
            },
        }
    }

    /// Destroys the node and builds a fresh one (then `init` runs it): on the same worker, or
    /// on a new worker with new topic endpoints if the old one was quarantined.
    pub fn restart(&mut self) -> Result<(), CallError> {
        match self {
            Exec::Inline(i) => i.recreate().and_then(|()| i.init()),
            Exec::Thread(t) => {
                match t.worker.as_mut() {
                    Some(w) => w.call(Cmd::Recreate)?,
                    None => {
                        let io = t.rebuild.io()?;
                        t.worker = Some(Worker::spawn(&t.rebuild, io, t.health.clone())?);
                    }
                }
                self.init()
            }
        }
    }

    /// Hands one tick to the node.
    #[inline]
    pub fn tick(&mut self) -> TickOutcome {
        match self {
            Exec::Inline(i) => {
                let started = Instant::now();
                let r = i.tick();
                TickOutcome::Finished(r, started.elapsed())
            }
            Exec::Thread(t) => {
                let Some(w) = t.worker.as_mut() else {
                    return TickOutcome::Finished(Err(gone()), Duration::ZERO);
                };
                if w.in_tick {
                    return match w.rx.try_recv() {
                        Ok(Reply::Done(r, d)) => {
                            w.in_tick = false;
                            TickOutcome::Late(r, d)
                        }
                        Ok(Reply::Snapshot(_)) | Err(TryRecvError::Empty) => TickOutcome::Busy,
                        Err(TryRecvError::Disconnected) => TickOutcome::Late(Err(gone()), Duration::ZERO),
                    };
                }
                if w.tx.send(Cmd::Tick).is_err() {
                    return TickOutcome::Finished(Err(gone()), Duration::ZERO);
                }
                match w.rx.recv_timeout(t.wait) {
                    Ok(Reply::Done(r, d)) => TickOutcome::Finished(r, d),
                    Ok(Reply::Snapshot(_)) | Err(RecvTimeoutError::Timeout) => {
                        w.in_tick = true;
                        TickOutcome::Started
                    }
                    Err(RecvTimeoutError::Disconnected) => TickOutcome::Finished(Err(gone()), Duration::ZERO),
                }
            }
        }
    }

    /// True for a node on a worker thread (it reports its own tick start to the watchdog).
    pub fn is_thread(&self) -> bool {
        matches!(self, Exec::Thread(_))
    }

    /// True when a worker has been in one tick longer than `timeout`.
    pub fn hung(&self, timeout: Duration, epoch: Instant) -> bool {
        match self {
            Exec::Inline(_) => false,
            Exec::Thread(t) => {
                t.worker.as_ref().is_some_and(|w| w.in_tick)
                    && t.health.in_tick_for(epoch).is_some_and(|d| d > timeout)
            }
        }
    }

    /// Abandons a hung worker: it keeps its instance (and its plugin loaded) for as long as
    /// it stays in the plugin. Returns false for inline nodes, which cannot be abandoned.
    pub fn quarantine(&mut self) -> bool {
        match self {
            Exec::Inline(_) => false,
            Exec::Thread(t) => {
                if let Some(mut w) = t.worker.take() {
                    // Dropping the channels tells the worker to exit if its tick ever returns;
                    // its JoinHandle is dropped: the thread is detached, never joined.
                    w.thread.take();
                }
                t.quarantined += 1;
                t.health.leave();
                true
            }
        }
    }

    /// The node's message counters: live for inline nodes and idle workers, the last ones
    /// seen for a worker in a tick.
    pub fn io_snapshot(&mut self) -> IoSnapshot {
        match self {
            Exec::Inline(i) => IoSnapshot::of(i.io()),
            Exec::Thread(t) => {
                if let Some(w) = t.worker.as_mut().filter(|w| !w.in_tick) {
                    if w.tx.send(Cmd::Snapshot).is_ok() {
                        if let Ok(Reply::Snapshot(s)) = w.rx.recv_timeout(Duration::from_secs(1)) {
                            t.last = s;
                        }
                    }
                }
                t.last.clone()
            }
        }
    }

    /// Messages waiting in the node's inputs.
    pub fn pending_input(&mut self) -> usize {
        match self {
            Exec::Inline(i) => i.io().pending_input(),
            Exec::Thread(_) => self.io_snapshot().pending,
        }
    }

    /// Workers abandoned so far.
    pub fn quarantined(&self) -> u64 {
        match self {
            Exec::Inline(_) => 0,
            Exec::Thread(t) => t.quarantined,
        }
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
