//! The `thread` executor: a node on a worker thread of its own, each call a handoff over a
//! channel; a tick that outlives the watchdog gets the worker quarantined (see [`super`]).
//!
//! A restart is handed off as well: the worker (a fresh one if the old one was quarantined)
//! creates the node again and initialises it while the scheduler polls for the replies.
//!
//! Owns the worker thread's command loop and its lifetime (joined when idle, detached when
//! stuck, and the handles of abandoned workers, to count those still alive). Does not own the
//! decision to quarantine or restart (see `super::super::running`).

use super::{Executor, IoSnapshot, Rebuild, RestartStatus, Start, SwapStatus, TickOutcome, Yielded};
use crate::ffi::{CallError, CallErrorKind, NodeInstance};
use crate::io::{NodeIo, PortBinding};
use crate::reload::prepare::NewCode;
use crate::scheduler::Health;
use crate::topic::PortPlan;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

enum Cmd {
    Init,
    /// A tick, with the node's clock at this value (ns since the scheduler's epoch).
    Tick(u64),
    Recreate,
    Shutdown,
    Snapshot,
    /// Hot reload: save the state and hand the topic endpoints over; the node's object stays,
    /// parked, until `Resume` (the swap failed) or `Retire` (it succeeded).
    Yield,
    /// Take the endpoints back and carry on.
    Resume(Box<NodeIo>),
    /// Shut the parked object down, destroy it and end the thread.
    Retire,
    /// Hand the endpoints back, destroy the object (new code that failed its first tick) and end
    /// the thread.
    Surrender,
    /// A live apply: bind these ports to these endpoints (already attached; true: the topic
    /// moved to a new ring, the old one is drained first) before the next call. No reply: it
    /// is queued behind a tick in progress, and nothing in it can fail.
    Rebind(Vec<(String, PortBinding, bool)>),
}

enum Reply {
    Done(Result<(), CallError>, Duration),
    Snapshot(IoSnapshot),
    /// The state and the endpoints (`Yield`), or why `save_state` failed.
    Yielded(Result<(Vec<u8>, NodeIo), CallError>),
    /// The endpoints, handed back (`Surrender`).
    Io(NodeIo),
    /// A new generation's worker could not bring the new code up: why, and the endpoints.
    SwapFailed(String, NodeIo),
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
            Cmd::Yield => Reply::Yielded(instance.save_state().map(|state| {
                let detached = instance.io().detached();
                (state, instance.replace_io(detached))
            })),
            Cmd::Resume(mut io) => {
                io.arrange_ports(&instance.io().port_order());
                // A live apply's new config goes back with the endpoints: this code runs with
                // the config it was made with (its detached stand-in kept it).
                if io.config() != instance.io().config() {
                    io.replace_config(instance.io().config().clone());
                }
                instance.replace_io(*io);
                Reply::Done(Ok(()), Duration::ZERO)
            }
            Cmd::Retire => {
                if let Err(e) = instance.shutdown() {
                    tracing::warn!(
                        node = instance.io().name(),
                        "shutdown of the replaced code failed: {e}"
                    );
                }
                break;
            }
            Cmd::Surrender => {
                let detached = instance.io().detached();
                let _ = tx.send(Reply::Io(instance.replace_io(detached)));
                break;
            }
            Cmd::Tick(at_ns) => {
                let started = Instant::now();
                health.enter(started.duration_since(epoch));
                let r = instance.tick_at(at_ns);
                health.leave();
                Reply::Done(r, started.elapsed())
            }
            Cmd::Rebind(ports) => {
                for (port, binding, moved) in ports {
                    instance.io_mut().rebind(&port, binding, moved);
                }
                continue;
            }
            Cmd::Init => timed(|| instance.init()),
            Cmd::Recreate => timed(|| instance.recreate()),
            Cmd::Shutdown => timed(|| instance.shutdown()),
            Cmd::Snapshot => Reply::Snapshot(IoSnapshot::of(&instance)),
        };
        if tx.send(reply).is_err() {
            break;
        }
    }
    // The scheduler hung up (or retired this worker): `instance` drops here, on this thread
    // (the plugin's `destroy`).
}

/// What a hot reload's new worker thread starts from.
struct Handover {
    /// The new code.
    code: NewCode,
    /// Its create entry's argument (a Python node's source).
    arg: Option<Vec<u8>>,
    /// The node's endpoints, from the old code's worker.
    io: NodeIo,
    /// The old code's state.
    state: Vec<u8>,
}

/// The body of a hot reload's new worker thread: the new code is created on the node's
/// endpoints (`io`, in the new node type's port order), handed the old code's `state` and
/// initialised, then runs as the node's worker; if any step fails the endpoints go back.
fn new_generation(
    handover: Handover,
    health: Arc<Health>,
    epoch: Instant,
    rx: Receiver<Cmd>,
    tx: Sender<Reply>,
) {
    let Handover {
        code,
        arg,
        mut io,
        state,
    } = handover;
    let started = Instant::now();
    io.arrange_ports(&code.ports);
    let restarts_with = code.reload_arg().map(|arg| arg.then);
    let mut instance = match NodeInstance::create_keeping_io(code.plugin, code.type_index, io, arg) {
        Ok(mut instance) => {
            if restarts_with.is_some() {
                instance.set_recreate_arg(restarts_with);
            }
            instance
        }
        Err(failed) => {
            let (e, io) = *failed;
            let _ = tx.send(Reply::SwapFailed(
                format!("`create` of the new code failed: {e}"),
                io,
            ));
            return;
        }
    };
    let ready = instance
        .restore_state(&state)
        .map_err(|e| format!("`restore_state` of the new code failed: {e}"))
        .and_then(|()| {
            instance
                .init()
                .map_err(|e| format!("`init` of the new code failed: {e}"))
        });
    match ready {
        Ok(()) => {
            if tx.send(Reply::Done(Ok(()), started.elapsed())).is_ok() {
                worker_main(instance, health, epoch, rx, tx);
            }
        }
        Err(why) => {
            let detached = instance.io().detached();
            let io = instance.replace_io(detached);
            drop(instance);
            let _ = tx.send(Reply::SwapFailed(why, io));
        }
    }
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

    /// Starts the worker of a hot reload's new code (see [`new_generation`]); does not wait.
    fn launch_generation(
        rebuild: &Rebuild,
        code: &NewCode,
        io: NodeIo,
        state: Vec<u8>,
        health: Arc<Health>,
    ) -> std::io::Result<Worker> {
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let (reply_tx, reply_rx) = mpsc::channel();
        let handover = Handover {
            code: code.clone(),
            // A Python node's new code imports its file afresh (see `NewCode::reload_arg`).
            arg: match code.reload_arg() {
                Some(arg) => Some(arg.create),
                None => rebuild.python.as_ref().map(crate::python::PythonSource::encode),
            },
            io,
            state,
        };
        let epoch = rebuild.epoch;
        let thread = std::thread::Builder::new()
            .name(format!("horus-node-{}", rebuild.name))
            .spawn(move || new_generation(handover, health, epoch, cmd_rx, reply_tx))?;
        Ok(Worker {
            tx: cmd_tx,
            rx: reply_rx,
            thread: Some(thread),
            in_tick: false,
            restarting: None,
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
                // Replies to no command of a restart.
                Ok(_) => {}
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
            Ok(_) | Err(TryRecvError::Empty) => TickOutcome::Busy,
            Err(TryRecvError::Disconnected) => TickOutcome::Late(Err(gone()), Duration::ZERO),
        }
    }

    /// Hands a tick over and waits for it up to `wait`.
    fn hand_off(&mut self, wait: Duration, at_ns: u64) -> TickOutcome {
        if self.tx.send(Cmd::Tick(at_ns)).is_err() {
            return TickOutcome::Finished(Err(gone()), Duration::ZERO);
        }
        match self.rx.recv_timeout(wait) {
            Ok(Reply::Done(r, d)) => TickOutcome::Finished(r, d),
            Ok(_) | Err(RecvTimeoutError::Timeout) => {
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
    /// The current worker's input endpoints (port, segment, peer entry), released if it is
    /// quarantined.
    inputs: Vec<(String, (String, usize))>,
    rebuild: Rebuild,
    health: Arc<Health>,
    wait: Duration,
    last: IoSnapshot,
    /// A hot reload whose old code is saving its state and handing its endpoints over (the
    /// `Yield` sent to `worker`, its reply awaited).
    yielding: Option<NewCode>,
    /// A hot reload in progress: the new code's worker is `worker`.
    swap: Option<Swap>,
    /// A live apply moves the node to another executor: this worker saves its state and hands
    /// its endpoints over (`Yield` sent, its reply awaited).
    handing_over: bool,
    /// A node moved here from another executor: its new worker creates, restores and
    /// initialises it (the reply awaited).
    starting: bool,
    /// The node's `logging`, shared with its endpoints (kept across restarts and swaps).
    logging: Arc<AtomicBool>,
}

/// A hot reload of a `thread` node in progress. Each generation of code runs on a worker thread
/// of its own, so that the thread that ran the old code can end before its library is unloaded
/// (a thread-local destructor the library registered on it pins the library until then).
struct Swap {
    /// The old code's worker, its object parked without endpoints.
    parked: Worker,
    /// The new code.
    code: NewCode,
    /// The new code is still being created, restored and initialised.
    creating: bool,
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
        let logging = io.logging_flag();
        let worker = Worker::spawn(&rebuild, io, health.clone())?;
        Ok(ThreadExec {
            logging,
            worker: Some(worker),
            abandoned: Vec::new(),
            inputs,
            rebuild: rebuild.settled(),
            health,
            wait,
            last: IoSnapshot::default(),
            yielding: None,
            swap: None,
            handing_over: false,
            starting: false,
        })
    }

    /// A node moving here from another executor (a live apply of its `isolation`): a worker
    /// thread creates `code` on the node's endpoints `io`, restores `state` and initialises it,
    /// while the scheduler goes on ([`ThreadExec::poll_start`]). Gives `io` back if the thread
    /// cannot be spawned.
    pub fn start_moved(
        rebuild: Rebuild,
        code: &NewCode,
        io: NodeIo,
        state: Vec<u8>,
        health: Arc<Health>,
        wait: Duration,
    ) -> Result<ThreadExec, String> {
        let inputs = io.input_peers();
        let logging = io.logging_flag();
        let worker = Worker::launch_generation(&rebuild, code, io, state, health.clone())
            .map_err(|e| format!("cannot spawn a worker thread: {e}"))?;
        Ok(ThreadExec {
            logging,
            worker: Some(worker),
            abandoned: Vec::new(),
            inputs,
            rebuild,
            health,
            wait,
            last: IoSnapshot::default(),
            yielding: None,
            swap: None,
            handing_over: false,
            starting: true,
        })
    }

    /// How a moved-in node's start goes: ready for its first tick, or failed with the
    /// endpoints handed back (if they were not lost with the thread).
    pub fn poll_start(&mut self) -> Start {
        if !self.starting {
            return Start::Ready;
        }
        let Some(w) = self.worker.as_mut() else {
            self.starting = false;
            return Start::Failed("the node's worker thread is gone".into(), None);
        };
        match w.rx.try_recv() {
            Err(TryRecvError::Empty) => Start::Pending,
            Ok(Reply::Done(Ok(()), _)) => {
                self.starting = false;
                Start::Ready
            }
            Ok(Reply::SwapFailed(why, io)) => {
                self.starting = false;
                w.join();
                Start::Failed(why, Some(Box::new(io)))
            }
            Ok(_) | Err(TryRecvError::Disconnected) => {
                self.starting = false;
                Start::Failed("the new worker thread ended".into(), None)
            }
        }
    }

    /// A live apply moves the node to another executor: the worker saves the state and hands
    /// the endpoints over ([`ThreadExec::poll_yield`]); its object stays, parked, until
    /// [`ThreadExec::resume`] or [`ThreadExec::retire`].
    pub fn begin_yield(&mut self) -> Result<(), String> {
        if self.in_swap() || self.swap.is_some() {
            return Err("it is in a hot reload".into());
        }
        let w = self
            .worker
            .as_mut()
            .filter(|w| !w.busy())
            .ok_or("its worker thread is busy (in a tick or a restart) or gone")?;
        w.tx.send(Cmd::Yield)
            .map_err(|_| "its worker thread is gone".to_owned())?;
        self.handing_over = true;
        Ok(())
    }

    /// How the hand-over goes.
    pub fn poll_yield(&mut self) -> Yielded {
        if !self.handing_over {
            return Yielded::Failed("no hand-over under way".into());
        }
        let Some(w) = self.worker.as_mut() else {
            self.handing_over = false;
            return Yielded::Failed("its worker thread is gone".into());
        };
        match w.rx.try_recv() {
            Err(TryRecvError::Empty) => Yielded::Pending,
            Ok(Reply::Yielded(Ok((state, io)))) => {
                self.handing_over = false;
                Yielded::Done(state, Box::new(io))
            }
            Ok(Reply::Yielded(Err(e))) => {
                self.handing_over = false;
                Yielded::Failed(format!("`save_state` of the running code failed: {e}"))
            }
            Ok(_) | Err(TryRecvError::Disconnected) => {
                self.handing_over = false;
                Yielded::Failed("its worker thread is gone".into())
            }
        }
    }

    /// The parked object takes the endpoints back and runs on (a move that failed).
    pub fn resume(&mut self, io: NodeIo) -> Result<(), String> {
        let w = self.worker.as_mut().ok_or("its worker thread is gone")?;
        w.call(Cmd::Resume(Box::new(io))).map_err(|e| e.to_string())
    }

    /// The parked object is shut down and destroyed on its thread, which ends (a move that
    /// succeeded); returns that thread, to join before its library is released.
    pub fn retire(mut self) -> Option<std::thread::JoinHandle<()>> {
        let mut w = self.worker.take()?;
        let _ = w.tx.send(Cmd::Retire);
        w.thread.take()
    }

    /// The moved-in node's worker hands the endpoints back and ends, its object destroyed (a
    /// move whose first tick failed): the endpoints and the thread, to join.
    pub fn surrender(mut self) -> (Option<NodeIo>, Option<std::thread::JoinHandle<()>>) {
        let Some(mut w) = self.worker.take() else {
            return (None, None);
        };
        let io = w.tx.send(Cmd::Surrender).ok().and_then(|()| match w.rx.recv() {
            Ok(Reply::Io(io)) => Some(io),
            _ => None,
        });
        (io, w.thread.take())
    }

    /// A live apply re-binds ports (`(port, its index, its new plan, the endpoint attached for
    /// it, whether its topic moved to a new ring)`): the worker swaps the endpoints in before
    /// its next call (after the tick in progress, if any); a restart from now on binds the new
    /// plans. The caller made sure the node is neither in a swap nor restarting.
    pub fn rebind(&mut self, ports: Vec<(String, usize, PortPlan, PortBinding, bool)>) {
        let mut bindings = Vec::with_capacity(ports.len());
        for (port, index, plan, binding, moved) in ports {
            if let Some(p) = self.rebuild.ports.get_mut(index) {
                *p = plan;
            }
            // The quarantine's list of inputs to release follows the endpoints.
            self.inputs.retain(|(p, _)| *p != port);
            if let Some(peer) = binding.input_peer() {
                self.inputs.push((port.clone(), peer));
            }
            bindings.push((port, binding, moved));
        }
        if let Some(w) = self.worker.as_ref() {
            // A worker that is gone has nothing to re-bind: the next restart binds the plans.
            let _ = w.tx.send(Cmd::Rebind(bindings));
        }
    }

    /// Shows or hides the node's non-error log lines from now on (a live apply), whatever the
    /// worker is doing: the flag is shared with its endpoints.
    pub fn set_logging(&mut self, on: bool) {
        self.rebuild.logging = on;
        self.logging.store(on, Ordering::Relaxed);
    }

    /// The node's endpoints bound afresh, its logging still the shared flag.
    fn fresh_io(&self) -> Result<NodeIo, CallError> {
        let mut io = self.rebuild.io()?;
        io.share_logging(self.logging.clone());
        Ok(io)
    }

    /// Starts a hot reload at a tick boundary: the old code's worker saves its state and hands
    /// its endpoints over, then a new worker thread creates the new code on them, restores the
    /// state and initialises it; the node is skipped meanwhile, and the scheduler thread never
    /// waits for either (a `save_state` that hangs holds up this node only).
    pub fn begin_reload(&mut self, code: &NewCode) -> SwapStatus {
        if self.in_swap() || self.swap.is_some() {
            return SwapStatus::NotIdle;
        }
        let Some(old) = self.worker.as_mut().filter(|w| !w.busy()) else {
            return SwapStatus::NotIdle;
        };
        if old.tx.send(Cmd::Yield).is_err() {
            return SwapStatus::Failed("the node's worker thread is gone".into(), None);
        }
        self.yielding = Some(code.clone());
        self.poll_reload()
    }

    /// True while a swap's old code is yielding or its new code is coming up: the node is
    /// skipped and its worker is not asked for anything else.
    fn in_swap(&self) -> bool {
        self.yielding.is_some()
            || self.swap.as_ref().is_some_and(|s| s.creating)
            || self.handing_over
            || self.starting
    }

    /// The old code's state and endpoints have come (`Yield`): the new code's worker starts.
    fn launch_generation(&mut self, code: NewCode, state: Vec<u8>, mut io: NodeIo) -> SwapStatus {
        if state.is_empty() {
            super::no_state_carried(&self.rebuild.name);
        }
        // A live apply's new config: the new code is made with it.
        if let Some(config) = &code.config {
            io.replace_config(config.clone());
        }
        match Worker::launch_generation(&self.rebuild, &code, io, state, self.health.clone()) {
            Ok(new) => {
                let old = self.worker.replace(new).expect("the old code's worker yielded");
                self.swap = Some(Swap {
                    parked: old,
                    code,
                    creating: true,
                });
                self.poll_reload()
            }
            Err(e) => {
                // The endpoints went down with the closure: the old code gets fresh ones.
                let why = format!("cannot spawn the new code's worker thread: {e}");
                SwapStatus::Failed(self.resume_with_fresh_io(why), None)
            }
        }
    }

    /// How the swap is going: the old code's yield, then the new code's start.
    pub fn poll_reload(&mut self) -> SwapStatus {
        if let Some(code) = self.yielding.take() {
            let Some(old) = self.worker.as_mut() else {
                return SwapStatus::Failed("the node's worker thread is gone".into(), None);
            };
            return match old.rx.try_recv() {
                Err(TryRecvError::Empty) => {
                    self.yielding = Some(code);
                    SwapStatus::Pending
                }
                Ok(Reply::Yielded(Ok((state, io)))) => self.launch_generation(code, state, io),
                Ok(Reply::Yielded(Err(e))) => {
                    SwapStatus::Failed(format!("`save_state` of the running code failed: {e}"), None)
                }
                Ok(_) | Err(TryRecvError::Disconnected) => {
                    SwapStatus::Failed("the node's worker thread is gone".into(), None)
                }
            };
        }
        let Some(swap) = self.swap.as_mut().filter(|s| s.creating) else {
            return SwapStatus::Ready;
        };
        let Some(new) = self.worker.as_mut() else {
            return SwapStatus::Ready;
        };
        match new.rx.try_recv() {
            Ok(Reply::Done(Ok(()), _)) => {
                swap.creating = false;
                SwapStatus::Ready
            }
            Ok(Reply::SwapFailed(why, io)) => self.swap_back(Some(io), why),
            Err(TryRecvError::Empty) => SwapStatus::Pending,
            Ok(_) | Err(TryRecvError::Disconnected) => {
                self.swap_back(None, "the new code's worker thread ended".into())
            }
        }
    }

    /// The new code ticked: the old code's worker shuts it down, destroys it and ends; returns
    /// that thread, to join before the old library is released.
    pub fn commit_reload(&mut self) -> Option<std::thread::JoinHandle<()>> {
        let mut swap = self.swap.take()?;
        let _ = swap.parked.tx.send(Cmd::Retire);
        // A restart builds the new code from now on.
        if swap.code.python.is_some() {
            self.rebuild.python = swap.code.python.clone();
        }
        if let Some(config) = swap.code.config {
            self.rebuild.config = config;
        }
        self.rebuild.plugin = swap.code.plugin;
        self.rebuild.type_index = swap.code.type_index;
        swap.parked.thread.take()
    }

    /// The new code's first tick failed: its worker hands the endpoints back and ends (the
    /// thread returned), and the old code, as it was at the swap, runs on.
    pub fn rollback_reload(&mut self) -> Option<std::thread::JoinHandle<()>> {
        self.swap.as_ref()?;
        let io = self.worker.as_mut().and_then(|new| {
            new.tx.send(Cmd::Surrender).ok()?;
            match new.rx.recv() {
                Ok(Reply::Io(io)) => Some(io),
                _ => None,
            }
        });
        match self.swap_back(io, String::new()) {
            SwapStatus::Failed(_, retired) => retired,
            _ => None,
        }
    }

    /// Makes the parked old code's worker current again with `io` (or fresh endpoints if the
    /// new code's worker lost them); the new code's worker and library are retired.
    fn swap_back(&mut self, io: Option<NodeIo>, why: String) -> SwapStatus {
        let Some(swap) = self.swap.take() else {
            return SwapStatus::Failed(why, None);
        };
        let new = self.worker.replace(swap.parked);
        let retired = new.and_then(|mut w| w.thread.take());
        let why = match io {
            Some(io) => match self.worker.as_mut().map(|w| w.call(Cmd::Resume(Box::new(io)))) {
                Some(Ok(())) => why,
                _ => format!("{why}; the old code's worker thread is gone"),
            },
            None => self.resume_with_fresh_io(why),
        };
        SwapStatus::Failed(why, retired)
    }

    /// The old code carries on with endpoints bound afresh (its own went down with a worker).
    fn resume_with_fresh_io(&mut self, why: String) -> String {
        let resumed = self.fresh_io().and_then(|io| {
            self.worker
                .as_mut()
                .ok_or_else(gone)
                .and_then(|w| w.call(Cmd::Resume(Box::new(io))))
        });
        match resumed {
            Ok(()) => why,
            Err(e) => format!("{why}; the old code could not get its ports back: {e}"),
        }
    }

    /// Finishes a hot reload still in progress at shutdown: waits for the new code to come up
    /// and keeps it (its first tick never came: nothing failed), or swaps back.
    fn settle_reload(&mut self) {
        if let Some(code) = self.yielding.take() {
            // Not swapped yet: the old code takes its endpoints back and stays. A `save_state`
            // that does not return within the stop grace leaves the worker busy (detached).
            let yielded = self
                .worker
                .as_mut()
                .and_then(|w| w.rx.recv_timeout(Duration::from_secs(1)).ok());
            match (yielded, self.worker.as_mut()) {
                (Some(Reply::Yielded(Ok((_, io)))), Some(w)) => {
                    let _ = w.call(Cmd::Resume(Box::new(io)));
                }
                (Some(_), _) => {}
                (None, _) => {
                    self.yielding = Some(code);
                    return;
                }
            }
        }
        if self.swap.as_ref().is_some_and(|s| s.creating) {
            let reply = self.worker.as_mut().and_then(|w| w.rx.recv().ok());
            match reply {
                Some(Reply::Done(Ok(()), _)) => {
                    if let Some(s) = self.swap.as_mut() {
                        s.creating = false;
                    }
                }
                Some(Reply::SwapFailed(why, io)) => {
                    let _ = self.swap_back(Some(io), why);
                }
                _ => {
                    let _ = self.swap_back(None, String::new());
                }
            }
        }
        if let Some(t) = self.commit_reload() {
            let _ = t.join();
        }
    }
}

impl Executor for ThreadExec {
    fn init(&mut self) -> Result<(), CallError> {
        self.worker.as_mut().ok_or_else(gone)?.call(Cmd::Init)
    }

    fn tick(&mut self, at_ns: u64) -> TickOutcome {
        if self.in_swap() {
            return TickOutcome::Busy;
        }
        match self.worker.as_mut() {
            None => TickOutcome::Finished(Err(gone()), Duration::ZERO),
            Some(w) if w.restarting.is_some() => TickOutcome::Busy,
            Some(w) if w.in_tick => w.collect(),
            Some(w) => w.hand_off(self.wait, at_ns),
        }
    }

    fn shutdown(&mut self) -> Result<(), CallError> {
        self.settle_reload();
        if self.yielding.is_some() {
            return Err(CallError {
                kind: CallErrorKind::Error,
                message: "still in save_state for a hot reload at shutdown".into(),
            });
        }
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
                let launched = self.fresh_io().and_then(|io| {
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
        // A `save_state` that never returned: its worker is abandoned below like a hung tick's.
        self.yielding = None;
        if let Some(mut swap) = self.swap.take() {
            // The new code hung: the old code's parked worker ends too (a restart builds the
            // code the node last ran well, `rebuild`).
            let _ = swap.parked.tx.send(Cmd::Retire);
            self.abandoned.extend(swap.parked.thread.take());
        }
        if let Some(mut w) = self.worker.take() {
            // Dropping the channels tells the worker to exit if its tick (or create, or init)
            // ever returns; it is never joined, only asked whether it has ended.
            self.abandoned.extend(w.thread.take());
        }
        // The abandoned instance keeps its topic endpoints: a reliable input of it would fill
        // up and hold its publishers back for good. Let them stop waiting for it.
        for (_, (segment, peer)) in std::mem::take(&mut self.inputs) {
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
        if self.in_swap() {
            return self.last.clone();
        }
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
        if let Some(swap) = self.swap.take() {
            // The old code's parked worker destroys its object and ends on its closed channel.
            let Worker { tx, rx, thread, .. } = swap.parked;
            drop((tx, rx));
            if let Some(t) = thread {
                let _ = t.join();
            }
        }
        if let Some(mut w) = self.worker.take() {
            if w.busy() || self.yielding.is_some() || self.handing_over {
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
