//! The `process` executor: a node in a child `horus __worker` process, driven through a
//! shared-memory command block; crashes and hangs end only that process (see [`super`]).
//!
//! Owns the host side of the worker protocol: spawning, the command/reply exchange with its
//! timeouts, watching the child for its exit, and killing it; a restart starts the fresh
//! process and hands its `init` over without waiting. The worker side is
//! [`crate::worker`]; the command block is [`crate::shm::ctl`].

use super::{Executor, IoSnapshot, Rebuild, RestartStatus, SwapStatus, TickOutcome};
use crate::ffi::{CallError, CallErrorKind};
use crate::io::PortBinding;
use crate::reload::prepare::NewCode;
use crate::scheduler::Health;
use crate::shm::ctl::{self, Ctl};
use crate::topic::{PortPlan, TopicScope};
use crate::worker::{ReloadJob, WorkerJob};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a worker process may take for `shutdown`, and then to exit: a stop that takes
/// longer is cut short (the worker is killed), so the host's stop grace covers every node.
pub const PROCESS_STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a worker may take to load its plugin, create and initialise its node at start-up
/// (a restart's replacement is timed by the scheduler, which polls it).
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A node in a child worker process.
pub struct ProcessExec {
    job: WorkerJob,
    /// The program run as `<program> __worker`; `None`: this process's own executable (the
    /// `horus` binary).
    program: Option<PathBuf>,
    child: Option<Child>,
    ctl: Option<Ctl>,
    generation: u64,
    /// The sequence number of a tick handed off and not yet answered.
    in_tick: Option<u32>,
    /// The sequence number of a restart's `init` handed off and not yet answered.
    restarting: Option<u32>,
    /// The sequence number of a hot reload's swap handed off and not yet answered.
    reloading: Option<u32>,
    /// The worker swapped new code in and keeps the old until commit or rollback.
    swapped: bool,
    /// A live apply's re-binding for a worker that was busy (`(port, its new plan, whether its
    /// topic moved to a new ring)`; a later apply's plan of a port replaces an earlier one):
    /// sent before its next tick.
    rebind: Vec<(String, PortPlan, bool)>,
    /// The holders of the new rings of the inputs in `rebind` whose topic moved (see
    /// [`crate::scheduler::Rebind::binding`]): dropped once the worker has attached its own
    /// subscribers (or a fresh worker binds the job's plans).
    holders: Vec<PortBinding>,
    /// The host's subscribers of the node's inputs, held from the graph's binding until the
    /// first worker has attached its own ([`ProcessExec::holding_inputs`]).
    starting: Vec<PortBinding>,
    /// The swap's new code (from `begin_reload` until commit or rollback): a commit makes it
    /// the job a restart's fresh worker runs.
    swapping: Option<ReloadJob>,
    /// A live apply's `logging`, not yet sent to a worker that was busy.
    logging: Option<bool>,
    wait: Duration,
    health: Arc<Health>,
    epoch: Instant,
    last: IoSnapshot,
}

fn crashed(message: String) -> CallError {
    CallError {
        kind: CallErrorKind::Crashed,
        message,
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.signal(), status.code()) {
        (Some(sig), _) => format!(
            "worker process killed by signal {sig}{}",
            crate::worker::signal_name(sig)
        ),
        (None, Some(code)) => format!("worker process exited with code {code}"),
        _ => "worker process ended".into(),
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

impl ProcessExec {
    /// A node to run in a worker process; the process starts with [`Executor::init`]. Waits at
    /// most `wait` for each tick.
    pub fn new(rebuild: &Rebuild, health: Arc<Health>, wait: Duration) -> ProcessExec {
        let since_epoch = rebuild.epoch.elapsed().as_nanos() as u64;
        let job = WorkerJob {
            host_pid: std::process::id(),
            ctl: String::new(),
            plugin: rebuild.plugin.info().path.clone(),
            node_type: rebuild.plugin.info().node_types[rebuild.type_index].name.clone(),
            python: rebuild.python.clone(),
            name: rebuild.name.clone(),
            logging: rebuild.logging,
            config: toml::to_string(&rebuild.config).unwrap_or_default(),
            ports: rebuild.ports.clone(),
            port_names: rebuild.port_names.clone(),
            namespace: rebuild.scope.namespace().to_owned(),
            instance: rebuild.scope.instance().to_owned(),
            epoch_monotonic_ns: crate::worker::monotonic_ns().saturating_sub(since_epoch),
            moved: None,
            start: Vec::new(),
        };
        ProcessExec {
            job,
            program: None,
            child: None,
            ctl: None,
            generation: 0,
            in_tick: None,
            restarting: None,
            reloading: None,
            swapped: false,
            rebind: Vec::new(),
            holders: Vec::new(),
            starting: Vec::new(),
            swapping: None,
            logging: None,
            wait,
            health,
            epoch: rebuild.epoch,
            last: IoSnapshot::default(),
        }
    }

    /// Runs workers as `<program> __worker` instead of this process's own executable: for a
    /// process that is not `horus` itself (a test), which points it at the `horus` binary.
    pub fn with_worker_program(mut self, program: PathBuf) -> ProcessExec {
        self.program = Some(program);
        self
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
        // A node moved in takes over once; a later restart starts it afresh.
        self.job.moved = None;
        let exe = match &self.program {
            Some(program) => program.clone(),
            None => std::env::current_exe().map_err(|e| CallError {
                kind: CallErrorKind::Error,
                message: format!("cannot find the horus binary: {e}"),
            })?,
        };
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
        // A fresh worker binds the job's plans, re-bound ones included.
        self.rebind.clear();
        self.holders.clear();
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
        reply_result(reply)
    }

    /// Kills and reaps the worker, if any, and forgets its entries in its topics: it dies
    /// without detaching, and a topic whose other endpoints are gone would stay in /dev/shm.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let scope = TopicScope::with(self.job.namespace.clone(), self.job.instance.clone());
            for segment in scope.port_segments(&self.job.ports) {
                if let Err(e) = crate::shm::forget_dead(&segment) {
                    tracing::warn!(node = %self.job.name, segment, "cannot clean up after a killed worker: {e}");
                }
            }
        }
        self.ctl = None;
        self.in_tick = None;
        self.restarting = None;
        self.reloading = None;
        self.swapped = false;
        self.swapping = None;
        self.health.leave();
    }

    /// The worker is in a tick, a restart or a hot reload (its swap, or the new code waiting for
    /// its commit): not free for a command of a hot reload or a live apply.
    fn busy(&self) -> bool {
        self.in_tick.is_some() || self.restarting.is_some() || self.reloading.is_some() || self.swapped
    }

    /// Starts a hot reload at a tick boundary: the worker keeps its topic endpoints and cursors,
    /// loads its own copy of the new build and swaps it in (state handed over), while the node
    /// is skipped; the scheduler thread only writes the command.
    pub fn begin_reload(&mut self, code: &NewCode) -> SwapStatus {
        if self.child.is_none() {
            return SwapStatus::Failed("the node's worker process is not running".into(), None);
        }
        if self.busy() {
            return SwapStatus::NotIdle;
        }
        let info = code.plugin.info();
        let job = ReloadJob {
            plugin: info.path.clone(),
            node_type: info.node_types[code.type_index].name.clone(),
            python: code.python.clone(),
            config: code
                .config
                .as_ref()
                .map(|c| toml::to_string(c).unwrap_or_default()),
        };
        let Some(ctl) = self.ctl.as_ref() else {
            return SwapStatus::Failed("the node's worker process is not running".into(), None);
        };
        let arg = serde_json::to_vec(&job).unwrap_or_default();
        if let Err(max) = ctl.set_arg(&arg) {
            return SwapStatus::Failed(
                format!(
                    "the reload command ({} bytes) exceeds the command block's {max}",
                    arg.len()
                ),
                None,
            );
        }
        self.reloading = Some(ctl.send(ctl::CMD_RELOAD));
        self.swapping = Some(job);
        self.poll_reload()
    }

    /// Keeps the inputs of `io` (the node's endpoints bound in the host) until the first
    /// worker has attached its own, which start where these stand: a publisher that sends
    /// while the worker process starts loses nothing (a reliable one waits for the holder).
    /// Without them the topic would have no subscriber for that time (and a topic of this
    /// host alone would even be removed and made again). The outputs are let go now: the
    /// worker takes their Links.
    pub fn holding_inputs(mut self, mut io: crate::io::NodeIo) -> ProcessExec {
        self.job.start = io.input_cursors();
        self.starting = io.take_inputs();
        self
    }

    /// A node moving here from another executor (a live apply of its `isolation`): the
    /// worker takes its endpoints' place and its state ([`crate::worker::MovedIn`]). Started
    /// with [`Executor::begin_restart`] (the process spawned, its `init` handed over).
    pub fn moved_in(mut self, moved: crate::worker::MovedIn) -> ProcessExec {
        self.job.moved = Some(moved);
        self
    }

    /// The worker process's pid, if it runs.
    pub fn worker_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A live apply moves the node out of this process: an idle worker saves its state into
    /// `path` (the node's object stays, parked, until it is shut down or takes its outputs
    /// back, [`ProcessExec::retake`]).
    pub fn save_to(&mut self, path: &std::path::Path) -> Result<(), String> {
        if self.child.is_none() {
            return Err("its worker process is not running".into());
        }
        if self.busy() {
            return Err("its worker process is busy (in a tick, a restart or a hot reload)".into());
        }
        let ctl = self.ctl.as_ref().ok_or("its worker process is not running")?;
        let arg = path.to_string_lossy();
        ctl.set_arg(arg.as_bytes())
            .map_err(|max| format!("the state file's path exceeds the command block's {max} bytes"))?;
        self.command(ctl::CMD_SAVE, PROCESS_STOP_TIMEOUT)
            .map_err(|e| format!("`save_state` of the running code failed: {e}"))
    }

    /// The move out failed: the worker takes its outputs' Links back and runs on.
    pub fn retake(&mut self) -> Result<(), String> {
        self.command(ctl::CMD_RETAKE, PROCESS_STOP_TIMEOUT)
            .map_err(|e| format!("the worker process could not take its outputs back: {e}"))
    }

    /// A live apply re-binds ports (`(port, its index, its new plan, whether its topic moved
    /// to a new ring)`): the job takes the new plans (a restart binds them), and an idle worker
    /// attaches the new endpoints now — an error (a topic it cannot attach) changes nothing —,
    /// a busy one before its next tick. `holders` keep the messages of the moved topics' new
    /// rings for the worker until it has attached its subscribers there.
    pub fn rebind(
        &mut self,
        ports: &[(String, usize, PortPlan, bool)],
        holders: Vec<PortBinding>,
    ) -> Result<(), String> {
        let mut merged = self.rebind.clone();
        for (port, _, plan, moved) in ports {
            merged.retain(|(p, _, _)| p != port);
            merged.push((port.clone(), plan.clone(), *moved));
        }
        let idle = self.child.is_some() && !self.busy();
        if idle {
            self.send_rebind(&merged)?;
            self.rebind.clear();
            // The worker's subscribers are attached: they keep the messages now.
            self.holders.clear();
        } else if self.child.is_some() {
            self.rebind = merged;
            self.holders.extend(holders);
        }
        for (_, index, plan, _) in ports {
            if let Some(p) = self.job.ports.get_mut(*index) {
                *p = plan.clone();
            }
        }
        Ok(())
    }

    /// Sends [`ctl::CMD_REBIND`] (JSON `[[port, PortPlan, moved], …]`) and waits for the
    /// worker's answer.
    fn send_rebind(&mut self, ports: &[(String, PortPlan, bool)]) -> Result<(), String> {
        let arg = serde_json::to_vec(ports).map_err(|e| e.to_string())?;
        let ctl = self
            .ctl
            .as_ref()
            .ok_or("the node's worker process is not running")?;
        ctl.set_arg(&arg).map_err(|max| {
            format!(
                "the rebind command ({} bytes) exceeds the command block's {max}",
                arg.len()
            )
        })?;
        self.command(ctl::CMD_REBIND, PROCESS_STOP_TIMEOUT)
            .map_err(|e| format!("the worker process could not re-bind its ports: {e}"))
    }

    /// How the worker's swap is going.
    pub fn poll_reload(&mut self) -> SwapStatus {
        let Some(seq) = self.reloading else {
            return SwapStatus::Ready;
        };
        let reply = self.ctl.as_ref().and_then(|c| c.wait_reply(seq, Duration::ZERO));
        if let Some(reply) = reply {
            self.reloading = None;
            return match reply_result(reply) {
                Ok(()) => {
                    self.swapped = true;
                    SwapStatus::Ready
                }
                Err(e) => {
                    self.swapping = None;
                    SwapStatus::Failed(e.message, None)
                }
            };
        }
        if let Some(how) = self.exited() {
            self.reloading = None;
            self.swapping = None;
            return SwapStatus::Failed(format!("the worker process died during the swap: {how}"), None);
        }
        SwapStatus::Pending
    }

    /// The new code ticked: the worker shuts the old code down, destroys it and unloads its
    /// copy of the library (in the worker process).
    pub fn commit_reload(&mut self) {
        // A restart's fresh worker runs the new code from now on.
        if let Some(new) = self.swapping.take() {
            self.job.plugin = new.plugin;
            self.job.node_type = new.node_type;
            if new.python.is_some() {
                self.job.python = new.python;
            }
            if let Some(config) = new.config {
                self.job.config = config;
            }
        }
        self.finish_reload(ctl::CMD_RELOAD_COMMIT);
    }

    /// The new code's first tick failed: the worker destroys it and runs the old code again.
    pub fn rollback_reload(&mut self) {
        self.swapping = None;
        self.finish_reload(ctl::CMD_RELOAD_ROLLBACK);
    }

    /// Shows or hides the node's non-error log lines from now on (a live apply): the worker is
    /// told at once when idle, else before its next tick; a restart's fresh worker starts so.
    pub fn set_logging(&mut self, on: bool) {
        self.job.logging = on;
        self.logging = Some(on);
        self.send_logging();
    }

    /// Sends a pending `logging` to an idle worker.
    fn send_logging(&mut self) {
        if self.in_tick.is_some() || self.restarting.is_some() || self.reloading.is_some() {
            return;
        }
        let (Some(on), Some(ctl)) = (self.logging, self.ctl.as_ref()) else {
            return;
        };
        if ctl.set_arg(&[on as u8]).is_err() {
            return;
        }
        self.logging = None;
        if let Err(e) = self.command(ctl::CMD_LOGGING, PROCESS_STOP_TIMEOUT) {
            tracing::warn!(node = %self.job.name, "the worker process did not take the new `logging`: {e}");
        }
    }

    fn finish_reload(&mut self, cmd: u32) {
        if !std::mem::take(&mut self.swapped) || self.child.is_none() {
            return;
        }
        if let Err(e) = self.command(cmd, PROCESS_STOP_TIMEOUT) {
            tracing::warn!(node = %self.job.name, "hot reload: the worker process failed to finish the swap: {e}");
        }
    }

    /// Finishes a hot reload still in progress at shutdown: the new code, if it came up, is
    /// kept (its first tick never came: nothing failed).
    fn settle_reload(&mut self) {
        if let Some(seq) = self.reloading {
            let reply = self
                .ctl
                .as_ref()
                .and_then(|c| c.wait_reply(seq, PROCESS_STOP_TIMEOUT));
            self.reloading = None;
            self.swapped = reply.is_some_and(|r| r.status == ctl::OK);
        }
        self.commit_reload();
    }

    /// Collects the reply of a tick handed off earlier (`seq`), if it has come.
    fn collect(&mut self, seq: u32) -> TickOutcome {
        let reply = self.ctl.as_ref().and_then(|c| c.wait_reply(seq, Duration::ZERO));
        if let Some(reply) = reply {
            self.in_tick = None;
            self.health.leave();
            let took = reply.duration;
            return TickOutcome::Late(reply_result(reply), took);
        }
        if let Some(how) = self.exited() {
            self.in_tick = None;
            self.health.leave();
            return TickOutcome::Late(Err(crashed(how)), Duration::ZERO);
        }
        TickOutcome::Busy
    }
}

impl Executor for ProcessExec {
    fn init(&mut self) -> Result<(), CallError> {
        if self.child.is_none() {
            self.spawn()?;
        }
        // The worker loads the plugin and creates the node first; its error, if any, is the
        // reply to this command.
        let result = self.command(ctl::CMD_INIT, WORKER_START_TIMEOUT);
        // Its subscribers are attached (or it failed): the holders have done their part, and
        // a restart's fresh worker starts afresh.
        self.starting.clear();
        self.job.start.clear();
        result
    }

    fn tick(&mut self, at_ns: u64) -> TickOutcome {
        if self.child.is_none() {
            return TickOutcome::Finished(Err(crashed("no worker process".into())), Duration::ZERO);
        }
        if self.restarting.is_some() || self.reloading.is_some() {
            return TickOutcome::Busy;
        }
        if let Some(seq) = self.in_tick {
            return self.collect(seq);
        }
        if !self.rebind.is_empty() {
            let ports = std::mem::take(&mut self.rebind);
            // Applied after the apply replied: a failure leaves the ports as they were.
            if let Err(e) = self.send_rebind(&ports) {
                tracing::error!(node = %self.job.name, "live apply: {e}; its ports stay as they were");
            }
            self.holders.clear();
        }
        if self.logging.is_some() {
            self.send_logging();
        }
        let Some(ctl) = self.ctl.as_ref() else {
            return TickOutcome::Finished(Err(crashed("no worker".into())), Duration::ZERO);
        };
        self.health.enter(self.epoch.elapsed());
        // The tick's time travels beside the command (8 bytes always fit the argument area).
        let _ = ctl.set_arg(&at_ns.to_le_bytes());
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
                return TickOutcome::Finished(reply_result(reply), took);
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

    fn shutdown(&mut self) -> Result<(), CallError> {
        self.settle_reload();
        match (self.child.is_some(), self.in_tick, self.restarting) {
            (true, None, None) => self.command(ctl::CMD_SHUTDOWN, PROCESS_STOP_TIMEOUT),
            (true, Some(_), _) => Err(CallError {
                kind: CallErrorKind::Error,
                message: "still in a tick at shutdown".into(),
            }),
            (true, None, Some(_)) => Err(CallError {
                kind: CallErrorKind::Error,
                message: "still restarting (create/init) at shutdown".into(),
            }),
            (false, _, _) => Ok(()),
        }
    }

    fn begin_restart(&mut self) -> RestartStatus {
        // A fresh process: nothing of the old one (crashed, hung or failing) is reused. Its
        // worker loads the plugin and creates the node before it answers the `init`.
        if let Err(e) = self.spawn() {
            return RestartStatus::Failed(e);
        }
        let Some(ctl) = self.ctl.as_ref() else {
            return RestartStatus::Failed(crashed("no worker process".into()));
        };
        self.restarting = Some(ctl.send(ctl::CMD_INIT));
        self.poll_restart()
    }

    fn poll_restart(&mut self) -> RestartStatus {
        let Some(seq) = self.restarting else {
            return RestartStatus::Ready;
        };
        let reply = self.ctl.as_ref().and_then(|c| c.wait_reply(seq, Duration::ZERO));
        if let Some(reply) = reply {
            self.restarting = None;
            return match reply_result(reply) {
                Ok(()) => RestartStatus::Ready,
                Err(e) => RestartStatus::Failed(e),
            };
        }
        if let Some(how) = self.exited() {
            self.restarting = None;
            return RestartStatus::Failed(crashed(how));
        }
        RestartStatus::Pending
    }

    fn hung(&self, timeout: Duration, epoch: Instant) -> bool {
        self.in_tick.is_some() && self.health.in_tick_for(epoch).is_some_and(|d| d > timeout)
    }

    fn quarantine(&mut self) -> bool {
        // A process can be stopped for real: kill it; the restart starts a new one.
        self.kill();
        true
    }

    fn io_snapshot(&mut self) -> IoSnapshot {
        // An idle worker publishes fresh counters on request (the drain needs the pending count
        // now, not as of its last tick); a busy one keeps the last it published.
        if self.child.is_some()
            && self.in_tick.is_none()
            && self.restarting.is_none()
            && self.reloading.is_none()
        {
            let _ = self.call(ctl::CMD_SNAPSHOT, Duration::from_secs(1));
        }
        if let Some(ctl) = &self.ctl {
            let (sent, received, dropped, pending) = ctl.counters();
            match ctl
                .topic_stats_json()
                .and_then(|json| serde_json::from_str(&json).ok())
            {
                Some(topics) => {
                    self.last = IoSnapshot::new((sent, received, dropped), topics, pending as usize)
                }
                None => {
                    self.last.totals = (sent, received, dropped);
                    self.last.pending = pending as usize;
                }
            }
        }
        self.last.clone()
    }
}

impl Drop for ProcessExec {
    fn drop(&mut self) {
        if self.child.is_some()
            && self.in_tick.is_none()
            && self.restarting.is_none()
            && self.reloading.is_none()
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
