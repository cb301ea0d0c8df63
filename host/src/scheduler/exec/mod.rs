//! Where a node's calls run: its isolation level, behind one executor contract ([`Executor`]).
//!
//! - `inline` ([`inline`]): a direct call on the scheduler thread ([`NodeInstance`] owned here).
//! - `thread` ([`ThreadExec`]): the node lives on a worker thread of its own; each call is a
//!   handoff over a channel. The scheduler waits for a tick at most `wait` (half a scheduler
//!   period, or the node's watchdog timeout if shorter); a tick still running then is collected
//!   on a later cycle and the node is skipped meanwhile, so the other nodes keep their rate. A
//!   worker whose tick outlives the watchdog is **quarantined**: abandoned (never joined, its
//!   plugin never unloaded, since the thread is still inside it), and a restart builds a fresh
//!   instance on a fresh worker with fresh topic endpoints.
//! - `process` ([`ProcessExec`]): the node runs in a child `horus __worker` process
//!   ([`crate::worker`]) that loads the plugin itself and attaches to the same topics; commands
//!   and replies cross a shared-memory command block ([`crate::shm::ctl`]). A crash (segfault,
//!   abort, exit) is seen within milliseconds (the host polls the child while it waits) and a
//!   hang is killed after the watchdog timeout; either way a fresh process replaces it after the
//!   breaker's backoff. The kernel kills workers whose host dies.
//!
//! A worker's restart (thread or process) is handed off too: the scheduler polls it and skips
//! the node until its replacement is ready, so a slow or hung `create`/`init` never holds up
//! the scheduler thread. An inline node restarts on the scheduler thread.
//!
//! [`Exec`] is the closed set of the three, dispatched with a `match` rather than a vtable so
//! the scheduler's per-tick path stays a direct call. The conformance suite that every executor
//! passes is `tests/e2e/executors.rs`.
//!
//! Owns the worker protocols. Does not own policy (breaker, deadlines, watchdog reporting for
//! inline nodes): see [`super`].

mod inline;
mod process;
mod thread;

pub use process::{ProcessExec, PROCESS_STOP_TIMEOUT};
pub use thread::ThreadExec;

use crate::ffi::{CallError, CallErrorKind, NodeInstance, PluginLibrary};
use crate::io::{NodeIo, TopicStats};
use crate::reload::prepare::NewCode;
use crate::shm::InputPeer;
use crate::topic::{PortPlan, TopicScope};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A node's message counters, as last seen.
#[derive(Debug, Clone, Default)]
pub struct IoSnapshot {
    /// (sent, received, dropped) over all ports.
    pub totals: (u64, u64, u64),
    /// Per-port topic counters.
    pub topics: Vec<TopicStats>,
    /// Messages waiting in the node's inputs.
    pub pending: usize,
    /// Each connected input's queues (its ring's, and any it still drains), by the port's name
    /// (a Python node's: the topic name it reads): what an input trigger watches.
    pub inputs: Vec<(String, InputPeer)>,
}

impl IoSnapshot {
    fn of(instance: &NodeInstance) -> IoSnapshot {
        let (totals, topics) = instance.io_counts();
        IoSnapshot::new(totals, topics, instance.io().pending_input())
    }

    /// A snapshot of `topics`, their input queues taken out of the counters into `inputs`.
    fn new(totals: (u64, u64, u64), mut topics: Vec<TopicStats>, pending: usize) -> IoSnapshot {
        let inputs = topics
            .iter_mut()
            .flat_map(|t| {
                let port = t.port.clone();
                std::mem::take(&mut t.watch)
                    .into_iter()
                    .map(move |q| (port.clone(), q))
            })
            .collect();
        IoSnapshot {
            totals,
            topics,
            pending,
            inputs,
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

/// What a restart has come to so far ([`Executor::begin_restart`], [`Executor::poll_restart`]).
#[derive(Debug)]
pub enum RestartStatus {
    /// The fresh instance is created and initialised: the next tick is the trial.
    Ready,
    /// The replacement is still coming up on its worker; poll again later.
    Pending,
    /// Its create or init failed (or its worker died).
    Failed(CallError),
}

/// How a hot reload's swap is going on an executor ([`Exec::begin_reload`]).
#[derive(Debug)]
pub enum SwapStatus {
    /// The new code is created, restored and initialised: its first tick is next.
    Ready,
    /// The new code is still coming up on its worker; poll again later.
    Pending,
    /// The node is in a tick or a restart: try again at a later tick boundary.
    NotIdle,
    /// The swap failed and the old code runs on, unchanged: why, and (a `thread` node) the
    /// ending worker thread that ran the new code, to join before its library is released.
    Failed(String, Option<std::thread::JoinHandle<()>>),
}

/// The executor contract: how the scheduler drives one node, wherever its calls run.
///
/// Lifecycle: the executor is built with the node already created (inline, thread) or ready to
/// create it (process, whose worker creates it during `init`); then `init` once, `tick` per
/// scheduled cycle, a restart whenever the breaker asks for one (`begin_restart`, then
/// `poll_restart` until it is no longer `Pending`; it runs `init` again), `shutdown` once at
/// the end, and dropping the executor destroys the node.
///
/// Every call runs on the scheduler thread. `init` and `shutdown` may block for as long as the
/// node takes (a process executor bounds them with timeouts); `tick` blocks at most the
/// executor's `wait` for a worker (an inline tick blocks as long as the node's tick); a
/// worker's restart never blocks on the node: `begin_restart` hands it off and returns
/// `Pending`, and the scheduler abandons (`quarantine`) a replacement that does not come up in
/// time (an inline restart runs to its end inside `begin_restart`). `hung`, `quarantine`,
/// `poll_restart`, `abandoned_threads`, `io_snapshot` and `pending_input` must be fast (a
/// worker asked for a snapshot answers between ticks, or the last one it published is used).
/// While a restart is pending, `tick` is `Busy`, `shutdown` refuses, and snapshots are the
/// last ones seen.
pub trait Executor {
    /// Runs the node's `init` (a process executor first starts its worker, which loads the
    /// plugin and creates the node; their error, if any, is this call's).
    fn init(&mut self) -> Result<(), CallError>;

    /// Hands one tick to the node, its clock standing at `at_ns` (since the scheduler's epoch:
    /// the tick's start as the scheduler took it) all through the tick
    /// ([`NodeInstance::tick_at`]). A failing tick is `Finished(Err(..))` (or `Late(Err(..))`
    /// when collected on a later call); a worker that died is an error of kind `Crashed`.
    fn tick(&mut self, at_ns: u64) -> TickOutcome;

    /// Runs the node's `shutdown`. A worker still in a tick is left alone (an error); an
    /// executor with no worker left has nothing to shut down (`Ok`).
    fn shutdown(&mut self) -> Result<(), CallError>;

    /// Starts a restart: destroys the node and builds a fresh instance, then runs its `init`,
    /// on the same worker, or on a new worker (with new topic endpoints) if the old one was
    /// quarantined or died. A worker's restart is handed off (`Pending`, or `Failed` if it
    /// cannot even start); an inline one runs here, to its end (`Ready` or `Failed`).
    fn begin_restart(&mut self) -> RestartStatus;

    /// How the restart begun by `begin_restart` is going; `Ready` when none is pending.
    fn poll_restart(&mut self) -> RestartStatus;

    /// True when a worker has been in one tick longer than `timeout` (`epoch` is the clock
    /// origin of the node's [`super::Health`]). Always false inline.
    fn hung(&self, timeout: Duration, epoch: Instant) -> bool;

    /// Abandons a worker hung in a tick, or in a restart that did not come up in time, so that
    /// the next restart replaces it. Returns false when the executor cannot abandon its node
    /// (inline: its calls run on the scheduler thread).
    fn quarantine(&mut self) -> bool;

    /// The worker threads this executor abandoned that are still alive (stuck in the plugin).
    /// Only the thread executor abandons threads; a process executor kills its workers.
    fn abandoned_threads(&mut self) -> usize {
        0
    }

    /// The node's message counters: live for inline nodes and idle workers, the last ones seen
    /// for a worker in a tick.
    fn io_snapshot(&mut self) -> IoSnapshot;

    /// Messages waiting in the node's inputs.
    fn pending_input(&mut self) -> usize {
        self.io_snapshot().pending
    }
}

/// How an executor a node moves to comes up (a live apply of its `isolation`).
#[derive(Debug)]
pub enum Start {
    /// Still creating, restoring or initialising.
    Pending,
    /// Ready for its first tick.
    Ready,
    /// It failed: why, and the node's endpoints if they came back.
    Failed(String, Option<Box<NodeIo>>),
}

/// How a `thread` node's worker hands its node over (a live apply of its `isolation`).
#[derive(Debug)]
pub enum Yielded {
    /// Still saving the state.
    Pending,
    /// The state and the endpoints.
    Done(Vec<u8>, Box<NodeIo>),
    /// Why it could not.
    Failed(String),
}

/// How to build a node's instance again from scratch (a quarantined worker keeps the old one).
#[derive(Debug, Clone)]
pub struct Rebuild {
    /// The plugin.
    pub plugin: Arc<PluginLibrary>,
    /// Node type index in the plugin.
    pub type_index: usize,
    /// A Python node's source, handed to the loader's create entry.
    pub python: Option<crate::python::PythonSource>,
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
    /// Creates the node's instance on `io`, on the calling thread. A Python source marked to
    /// import its file afresh (a node a live apply added) is imported so once: the instance
    /// recreates (restarts) from the module that import made.
    pub fn instance(&self, io: NodeIo) -> Result<NodeInstance, CallError> {
        let mut instance = NodeInstance::create_with_arg(
            self.plugin.clone(),
            self.type_index,
            io,
            self.python.as_ref().map(crate::python::PythonSource::encode),
        )?;
        if let Some(source) = self.python.as_ref().filter(|s| s.is_fresh()) {
            instance.set_recreate_arg(Some(source.settled().encode()));
        }
        Ok(instance)
    }

    /// This recipe once its fresh import (if any) was made: what later rebuilds use.
    pub fn settled(mut self) -> Rebuild {
        self.python = self.python.map(|s| s.settled());
        self
    }

    fn io(&self) -> Result<NodeIo, CallError> {
        // #13: the outputs take their Links over from the instance being replaced (abandoned
        // in a quarantine), whose publishers are still attached.
        let bindings = self
            .scope
            .bind_replacing(&self.ports)
            .map_err(|(port, e)| CallError {
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

/// A node's executor: inline, on a worker thread, or in a worker process.
pub enum Exec {
    /// On the scheduler thread.
    Inline(NodeInstance),
    /// On a worker thread of its own (boxed: it is the larger and colder variant).
    Thread(Box<ThreadExec>),
    /// In a worker process of its own.
    Process(Box<ProcessExec>),
}

/// Calls `$method` on whichever executor `$exec` holds. The inline arm names the trait: a
/// [`NodeInstance`] has inherent methods of the same names (its raw plugin calls).
macro_rules! on_executor {
    ($exec:expr, $method:ident($($arg:expr),*)) => {
        match $exec {
            Exec::Inline(e) => Executor::$method(e, $($arg),*),
            Exec::Thread(e) => e.$method($($arg),*),
            Exec::Process(e) => e.$method($($arg),*),
        }
    };
}

/// Says that a swap hands no state over (the old code saved none).
pub(super) fn no_state_carried(node: &str) {
    tracing::info!(
        node,
        "hot reload: no state was carried (the old code saved none: without \
         save_state/restore_state the new code starts from its own create and init)"
    );
}

impl Exec {
    /// Starts swapping `code` in at a tick boundary (see [`crate::scheduler`]'s hot reload):
    /// inline, here and now; on a worker, handed off ([`Exec::poll_reload`]).
    pub fn begin_reload(&mut self, code: &NewCode) -> SwapStatus {
        match self {
            Exec::Inline(i) => match i.reload_with_config(
                code.plugin.clone(),
                code.type_index,
                &code.ports,
                code.reload_arg(),
                code.config.clone(),
            ) {
                Ok(carried) => {
                    if carried == 0 {
                        no_state_carried(i.io().name());
                    }
                    SwapStatus::Ready
                }
                Err((step, e)) => {
                    SwapStatus::Failed(format!("`{}` of the new code failed: {e}", step.name()), None)
                }
            },
            Exec::Thread(t) => t.begin_reload(code),
            Exec::Process(p) => p.begin_reload(code),
        }
    }

    /// Shows or hides the node's non-error log lines from now on, in place (a live apply of
    /// `logging`): no swap, the node's object and counters untouched.
    pub fn set_logging(&mut self, on: bool) {
        match self {
            Exec::Inline(i) => i.io().set_logging(on),
            Exec::Thread(t) => t.set_logging(on),
            Exec::Process(p) => p.set_logging(on),
        }
    }

    /// How a handed-off swap is going.
    pub fn poll_reload(&mut self) -> SwapStatus {
        match self {
            Exec::Inline(_) => SwapStatus::Ready,
            Exec::Thread(t) => t.poll_reload(),
            Exec::Process(p) => p.poll_reload(),
        }
    }

    /// The new code's first tick succeeded: the old code is shut down and destroyed. Returns
    /// the worker thread that ran it (a `thread` node), to join before its library is released.
    pub fn commit_reload(&mut self) -> Option<std::thread::JoinHandle<()>> {
        match self {
            Exec::Inline(i) => {
                i.commit_reload();
                None
            }
            Exec::Thread(t) => t.commit_reload(),
            Exec::Process(p) => {
                p.commit_reload();
                None
            }
        }
    }

    /// The new code's first tick failed: it is destroyed and the old code runs again, as it
    /// was at the swap. Returns the worker thread that ran the new code, as above.
    pub fn rollback_reload(&mut self) -> Option<std::thread::JoinHandle<()>> {
        match self {
            Exec::Inline(i) => {
                i.rollback_reload();
                None
            }
            Exec::Thread(t) => t.rollback_reload(),
            Exec::Process(p) => {
                p.rollback_reload();
                None
            }
        }
    }
}

impl Executor for Exec {
    fn init(&mut self) -> Result<(), CallError> {
        on_executor!(self, init())
    }

    #[inline]
    fn tick(&mut self, at_ns: u64) -> TickOutcome {
        on_executor!(self, tick(at_ns))
    }

    fn shutdown(&mut self) -> Result<(), CallError> {
        on_executor!(self, shutdown())
    }

    fn begin_restart(&mut self) -> RestartStatus {
        on_executor!(self, begin_restart())
    }

    fn poll_restart(&mut self) -> RestartStatus {
        on_executor!(self, poll_restart())
    }

    fn abandoned_threads(&mut self) -> usize {
        on_executor!(self, abandoned_threads())
    }

    fn hung(&self, timeout: Duration, epoch: Instant) -> bool {
        on_executor!(self, hung(timeout, epoch))
    }

    fn quarantine(&mut self) -> bool {
        on_executor!(self, quarantine())
    }

    fn io_snapshot(&mut self) -> IoSnapshot {
        on_executor!(self, io_snapshot())
    }

    fn pending_input(&mut self) -> usize {
        on_executor!(self, pending_input())
    }
}
