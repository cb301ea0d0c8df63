//! Where a node's calls run: its isolation level.
//!
//! - `inline`: a direct call on the scheduler thread ([`NodeInstance`] owned here).
//! - `thread`: the node lives on a worker thread of its own; each call is a handoff over a
//!   channel. The scheduler waits for a tick at most `wait` (half a scheduler period, or the
//!   node's watchdog timeout if shorter); a tick still running then is collected on a later
//!   cycle and the node is skipped meanwhile, so the other nodes keep their rate. A worker whose tick outlives the
//!   watchdog is **quarantined**: abandoned (never joined, its plugin never unloaded, since the
//!   thread is still inside it), and a restart builds a fresh instance on a fresh worker with
//!   fresh topic endpoints.
//!
//! - `process`: the node runs in a child `horus __worker` process ([`crate::worker`]) that
//!   loads the plugin itself and attaches to the same topics; commands and replies cross a
//!   shared-memory command block ([`crate::shm::ctl`]). A crash (segfault, abort, exit) is seen
//!   within milliseconds (the host polls the child while it waits) and a hang is killed after the
//!   watchdog timeout; either way a fresh process replaces it after the breaker's backoff. The
//!   kernel kills workers whose host dies.
//!
//! Owns the worker protocols. Does not own policy (breaker, deadlines): see [`super`].

use crate::ffi::{CallError, CallErrorKind, NodeInstance, PluginLibrary};
use crate::io::{NodeIo, TopicStats};
use crate::shm::ctl::{self, Ctl};
use crate::topic::{PortPlan, TopicScope};
use crate::worker::WorkerJob;
use std::process::{Child, Command, Stdio};
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
    /// The current worker's input endpoints, released if it is quarantined.
    inputs: Vec<(String, usize)>,
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
        let inputs = io.input_peers();
        let worker = Worker::spawn(&rebuild, io, health.clone())?;
        Ok(ThreadExec {
            worker: Some(worker),
            inputs,
            rebuild,
            health,
            wait,
            last: IoSnapshot::default(),
            quarantined: 0,
        })
    }
}

/// A node in a child worker process.
pub struct ProcessExec {
    job: WorkerJob,
    child: Option<Child>,
    ctl: Option<Ctl>,
    generation: u64,
    /// The sequence number of a tick handed off and not yet answered.
    in_tick: Option<u32>,
    wait: Duration,
    health: Arc<Health>,
    epoch: Instant,
    last: IoSnapshot,
}

/// How long a worker process may take for `shutdown`, and then to exit: a stop that takes
/// longer is cut short (the worker is killed), so the host's stop grace covers every node.
pub const PROCESS_STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a worker may take to load its plugin, create and initialise its node.
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(30);

fn crashed(message: String) -> CallError {
    CallError {
        kind: CallErrorKind::Crashed,
        message,
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.signal(), status.code()) {
        (Some(sig), _) => {
            let name = match sig {
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                7 => " (SIGBUS)",
                8 => " (SIGFPE)",
                4 => " (SIGILL)",
                _ => "",
            };
            format!("worker process killed by signal {sig}{name}")
        }
        (None, Some(code)) => format!("worker process exited with code {code}"),
        _ => "worker process ended".into(),
    }
}

impl ProcessExec {
    /// A node to run in a worker process; the process starts with [`Exec::init`].
    pub fn new(rebuild: &Rebuild, health: Arc<Health>, wait: Duration) -> ProcessExec {
        let since_epoch = rebuild.epoch.elapsed().as_nanos() as u64;
        let job = WorkerJob {
            host_pid: std::process::id(),
            ctl: String::new(),
            plugin: rebuild.plugin.info().path.clone(),
            node_type: rebuild.plugin.info().node_types[rebuild.type_index].name.clone(),
            name: rebuild.name.clone(),
            logging: rebuild.logging,
            config: toml::to_string(&rebuild.config).unwrap_or_default(),
            ports: rebuild.ports.clone(),
            port_names: rebuild.port_names.clone(),
            namespace: rebuild.scope.namespace().to_owned(),
            instance: rebuild.scope.instance().to_owned(),
            epoch_monotonic_ns: crate::worker::monotonic_ns().saturating_sub(since_epoch),
        };
        ProcessExec {
            job,
            child: None,
            ctl: None,
            generation: 0,
            in_tick: None,
            wait,
            health,
            epoch: rebuild.epoch,
            last: IoSnapshot::default(),
        }
    }

    /// Starts a fresh worker process (killing the previous one, if any).
    fn spawn(&mut self) -> Result<(), CallError> {
        self.kill();
        self.generation += 1;
        let ctl = Ctl::create(&self.job.name, self.generation).map_err(|e| CallError {
            kind: CallErrorKind::Error,
            message: format!("command block: {e}"),
        })?;
        self.job.ctl = ctl.name().to_owned();
        let job = serde_json::to_string(&self.job).map_err(|e| CallError {
            kind: CallErrorKind::Error,
            message: e.to_string(),
        })?;
        let exe = std::env::current_exe().map_err(|e| CallError {
            kind: CallErrorKind::Error,
            message: format!("cannot find the horus binary: {e}"),
        })?;
        let child = Command::new(exe)
            .arg("__worker")
            .env(crate::worker::JOB_ENV, job)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| CallError {
                kind: CallErrorKind::Error,
                message: format!("cannot start a worker process: {e}"),
            })?;
        self.child = Some(child);
        self.ctl = Some(ctl);
        self.in_tick = None;
        Ok(())
    }

    /// The child's exit, if it has ended (reaped).
    fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(describe_exit(status))
            }
            Ok(None) => None,
            Err(e) => Some(format!("worker process lost: {e}")),
        }
    }

    fn reply_result(reply: ctl::CtlReply) -> Result<(), CallError> {
        match reply.status {
            ctl::OK => Ok(()),
            ctl::PANIC => Err(CallError {
                kind: CallErrorKind::Panic,
                message: reply.error,
            }),
            _ => Err(CallError {
                kind: CallErrorKind::Error,
                message: reply.error,
            }),
        }
    }

    /// Sends `cmd` and waits up to `timeout` for the reply, watching the child.
    fn call(&mut self, cmd: u32, timeout: Duration) -> Result<ctl::CtlReply, CallError> {
        let Some(ctl) = self.ctl.as_ref() else {
            return Err(crashed("no worker process".into()));
        };
        let seq = ctl.send(cmd);
        let deadline = Instant::now() + timeout;
        loop {
            let ctl = self.ctl.as_ref().expect("checked");
            if let Some(reply) = ctl.wait_reply(seq, Duration::from_millis(2)) {
                return Ok(reply);
            }
            if let Some(how) = self.exited() {
                return Err(crashed(how));
            }
            if Instant::now() >= deadline {
                return Err(CallError {
                    kind: CallErrorKind::Error,
                    message: "the worker process did not answer".into(),
                });
            }
        }
    }

    fn command(&mut self, cmd: u32, timeout: Duration) -> Result<(), CallError> {
        let reply = self.call(cmd, timeout)?;
        Self::reply_result(reply)
    }

    /// Kills and reaps the worker, if any.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.ctl = None;
        self.in_tick = None;
        self.health.leave();
    }

    fn tick(&mut self) -> TickOutcome {
        if self.child.is_none() {
            return TickOutcome::Finished(Err(crashed("no worker process".into())), Duration::ZERO);
        }
        if let Some(seq) = self.in_tick {
            let reply = self.ctl.as_ref().and_then(|c| c.wait_reply(seq, Duration::ZERO));
            if let Some(reply) = reply {
                self.in_tick = None;
                self.health.leave();
                let took = reply.duration;
                return TickOutcome::Late(Self::reply_result(reply), took);
            }
            if let Some(how) = self.exited() {
                self.in_tick = None;
                self.health.leave();
                return TickOutcome::Late(Err(crashed(how)), Duration::ZERO);
            }
            return TickOutcome::Busy;
        }
        let Some(ctl) = self.ctl.as_ref() else {
            return TickOutcome::Finished(Err(crashed("no worker".into())), Duration::ZERO);
        };
        self.health.enter(self.epoch.elapsed());
        let seq = ctl.send(ctl::CMD_TICK);
        let deadline = Instant::now() + self.wait;
        loop {
            let ctl = self.ctl.as_ref().expect("checked");
            let left = deadline
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(2));
            if let Some(reply) = ctl.wait_reply(seq, left) {
                self.health.leave();
                let took = reply.duration;
                return TickOutcome::Finished(Self::reply_result(reply), took);
            }
            if let Some(how) = self.exited() {
                self.health.leave();
                return TickOutcome::Finished(Err(crashed(how)), Duration::ZERO);
            }
            if Instant::now() >= deadline {
                self.in_tick = Some(seq);
                return TickOutcome::Started;
            }
        }
    }

    fn snapshot(&mut self) -> IoSnapshot {
        // An idle worker publishes fresh counters on request (the drain needs the pending count
        // now, not as of its last tick); a busy one keeps the last it published.
        if self.child.is_some() && self.in_tick.is_none() {
            let _ = self.call(ctl::CMD_SNAPSHOT, Duration::from_secs(1));
        }
        if let Some(ctl) = &self.ctl {
            let (sent, received, dropped, pending) = ctl.counters();
            let topics = ctl
                .topic_stats_json()
                .and_then(|json| serde_json::from_str(&json).ok())
                .unwrap_or_else(|| std::mem::take(&mut self.last.topics));
            self.last = IoSnapshot {
                totals: (sent, received, dropped),
                topics,
                pending: pending as usize,
            };
        }
        self.last.clone()
    }
}

impl Drop for ProcessExec {
    fn drop(&mut self) {
        if self.child.is_some()
            && self.in_tick.is_none()
            && self.call(ctl::CMD_EXIT, PROCESS_STOP_TIMEOUT).is_ok()
        {
            if let Some(mut child) = self.child.take() {
                // It exits right after its reply; bounded wait, then kill.
                let deadline = Instant::now() + PROCESS_STOP_TIMEOUT;
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.kill();
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

impl Exec {
    /// Runs `init`.
    pub fn init(&mut self) -> Result<(), CallError> {
        match self {
            Exec::Inline(i) => i.init(),
            Exec::Thread(t) => t.worker.as_mut().ok_or_else(gone)?.call(Cmd::Init),
            Exec::Process(p) => {
                if p.child.is_none() {
                    p.spawn()?;
                }
                // The worker loads the plugin and creates the node first; its error, if any,
                // is the reply to this command.
                p.command(ctl::CMD_INIT, WORKER_START_TIMEOUT)
            }
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
            Exec::Process(p) => match (p.child.is_some(), p.in_tick) {
                (true, None) => p.command(ctl::CMD_SHUTDOWN, PROCESS_STOP_TIMEOUT),
                (true, Some(_)) => Err(CallError {
                    kind: CallErrorKind::Error,
                    message: "still in a tick at shutdown".into(),
                }),
                (false, _) => Ok(()),
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
                        t.inputs = io.input_peers();
                        t.worker = Some(Worker::spawn(&t.rebuild, io, t.health.clone())?);
                    }
                }
                self.init()
            }
            Exec::Process(p) => {
                // A fresh process: nothing of the old one (crashed, hung or failing) is reused.
                p.spawn()?;
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
            Exec::Process(p) => p.tick(),
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

    /// True for a node on a worker thread or process (its executor reports tick starts and
    /// ends to the watchdog itself).
    pub fn reports_health(&self) -> bool {
        matches!(self, Exec::Thread(_) | Exec::Process(_))
    }

    /// True when a worker has been in one tick longer than `timeout`.
    pub fn hung(&self, timeout: Duration, epoch: Instant) -> bool {
        match self {
            Exec::Inline(_) => false,
            Exec::Thread(t) => {
                t.worker.as_ref().is_some_and(|w| w.in_tick)
                    && t.health.in_tick_for(epoch).is_some_and(|d| d > timeout)
            }
            Exec::Process(p) => {
                p.in_tick.is_some() && p.health.in_tick_for(epoch).is_some_and(|d| d > timeout)
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
                // The abandoned instance keeps its topic endpoints: a reliable input of it would
                // fill up and hold its publishers back for good. Let them stop waiting for it.
                for (segment, peer) in std::mem::take(&mut t.inputs) {
                    if let Err(e) = crate::shm::release_peer(&segment, peer) {
                        tracing::warn!(segment, "cannot release a quarantined input: {e}");
                    }
                }
                t.quarantined += 1;
                t.health.leave();
                true
            }
            Exec::Process(p) => {
                // A process can be stopped for real: kill it; the restart starts a new one.
                p.kill();
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
            Exec::Process(p) => p.snapshot(),
        }
    }

    /// Messages waiting in the node's inputs.
    pub fn pending_input(&mut self) -> usize {
        match self {
            Exec::Inline(i) => i.io().pending_input(),
            Exec::Thread(_) | Exec::Process(_) => self.io_snapshot().pending,
        }
    }

    /// Workers abandoned so far.
    pub fn quarantined(&self) -> u64 {
        match self {
            Exec::Inline(_) | Exec::Process(_) => 0,
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
