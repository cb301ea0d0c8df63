//! The scheduler: creates the nodes of a [`Graph`], ticks them in priority order at the tick
//! rate (each node at its own `rate_hz` if set), keeps their statistics, and shuts them down.
//!
//! # Threads
//! Every call into an `inline` node's plugin runs on one scheduler thread that the host spawns
//! for the run and joins before the plugins are unloaded; a `thread` node's calls run on its own
//! worker thread, joined the same way (see [`exec`]); a `process` node runs in a child process.
//! This is not an accident of structure: glibc keeps a library mapped while any thread on which
//! its code registered thread-local destructors is alive (Rust's std does so on the first panic,
//! for example), so only a retired thread lets `dlclose` really unmap a plugin. The exception is
//! a quarantined worker stuck in a plugin: it is never joined, and that plugin stays loaded.
//!
//! Owns: rate keeping, priority order, failure counting, tick timing. Does not own: loading
//! (see [`crate::graph`]), delivery (see [`crate::topic`]), signals (see [`crate::run`]).

mod breaker;
mod exec;
mod stats;
mod stop;
mod watchdog;

pub use breaker::{Action, Breaker, CircuitState};
pub use exec::{Exec, Executor, IoSnapshot, ProcessExec, Rebuild, ThreadExec, TickOutcome};
pub use stats::{table, NodeStats, TickTimes};
pub use stop::StopHandle;
pub use watchdog::{Health, Watchdog};

use crate::ffi::{CallError, CallErrorKind, NodeInstance};
use crate::graph::BoundNode;
use crate::manifest::{Isolation, NodeSpec, SchedulerSpec, SupervisionSpec};
use crate::topic::TopicScope;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A node failed in `create` or `init`; the run did not start.
    #[error("node `{node}` failed to start ({phase}): {error}")]
    NodeStart {
        /// The node.
        node: String,
        /// `create` or `init`.
        phase: &'static str,
        /// The node's error or panic.
        error: CallError,
    },
    /// The scheduler thread could not be spawned.
    #[error("cannot spawn the scheduler thread: {0}")]
    Spawn(std::io::Error),
    /// The scheduler thread panicked (a host bug; plugins' panics are caught in the plugin).
    #[error("the scheduler thread panicked: {0}")]
    Panicked(String),
    /// A node's tick never returned, so the run could not stop: the host gives up on it.
    #[error(
        "node `{node}` is hung in a tick ({secs:.1} s); exiting without shutting the nodes down \
         (a tick running on the scheduler thread cannot be interrupted)"
    )]
    Hung {
        /// The node stuck in its tick.
        node: String,
        /// How long it has been in it.
        secs: f64,
        /// The last stats snapshot.
        stats: Vec<NodeStats>,
    },
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Per-node statistics, in scheduling order.
    pub nodes: Vec<NodeStats>,
    /// Wall time from the first cycle to the stop.
    pub elapsed: Duration,
    /// Scheduler cycles run.
    pub cycles: u64,
    /// Cycles that started more than one period late (the schedule was reset, not caught up).
    pub overruns: u64,
}

/// Only log a node's failures (and deadline misses) this often; the rest are counted and
/// summarised.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(1);
/// How often the scheduler publishes a stats snapshot for the host (and a hung run's report).
const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(100);
/// A node with its own rate ticks when its due time is at most this far ahead, so scheduler
/// jitter does not push it to the next cycle.
const DUE_SLACK: Duration = Duration::from_micros(200);

struct RunningNode {
    spec: NodeSpec,
    type_name: String,
    exec: Exec,
    period: Option<Duration>,
    next_due: Instant,
    ticks: u64,
    failures: u64,
    consecutive: u64,
    last_error: Option<String>,
    times: TickTimes,
    last_failure_log: Option<Instant>,
    unlogged_failures: u64,
    breaker: Breaker,
    restarts: u64,
    deadline: Option<Duration>,
    deadline_misses: u64,
    last_deadline_log: Option<Instant>,
    health: Arc<Health>,
    epoch: Instant,
}

impl RunningNode {
    /// A node about to start: closed breaker, no ticks yet.
    fn new(
        spec: NodeSpec,
        type_name: String,
        exec: Exec,
        health: Arc<Health>,
        deadline: Option<Duration>,
        supervision: &SupervisionSpec,
        epoch: Instant,
    ) -> RunningNode {
        RunningNode {
            period: spec.rate_hz.map(|hz| Duration::from_secs_f64(1.0 / hz)),
            spec,
            type_name,
            exec,
            next_due: epoch,
            ticks: 0,
            failures: 0,
            consecutive: 0,
            last_error: None,
            times: TickTimes::default(),
            last_failure_log: None,
            unlogged_failures: 0,
            breaker: Breaker::new(supervision),
            restarts: 0,
            deadline,
            deadline_misses: 0,
            last_deadline_log: None,
            health,
            epoch,
        }
    }

    fn due(&mut self, now: Instant) -> bool {
        let Some(period) = self.period else { return true };
        if now + DUE_SLACK < self.next_due {
            return false;
        }
        self.next_due += period;
        if self.next_due + period < now {
            // Fell more than a period behind (a long stall): restart the schedule instead of
            // bursting to catch up.
            self.next_due = now + period;
        }
        true
    }

    /// One scheduled cycle of this node, starting at `now` (the end of the previous node's
    /// work, or the cycle's start): asks the breaker, restarts if it says so, ticks. Returns
    /// when it finished, so the next node's tick starts from it: one clock read per tick.
    fn run_cycle(&mut self, now: Instant) -> Instant {
        self.quarantine_if_hung();
        // The common case needs no extra clock read: a closed breaker always ticks.
        if self.breaker.state() == CircuitState::Closed {
            return self.tick(now);
        }
        match self.breaker.before_tick(now) {
            Action::Skip => now,
            Action::Tick => self.tick(now),
            Action::Restart => {
                if self.restart() {
                    self.tick(Instant::now())
                } else {
                    Instant::now()
                }
            }
        }
    }

    /// Re-creates and re-initialises the node (half-open). A failure here fails the trial.
    #[cold]
    fn restart(&mut self) -> bool {
        self.restarts += 1;
        tracing::warn!(node = %self.spec.name, restarts = self.restarts, "circuit half-open: restarting the node");
        let result = self.exec.restart();
        match result {
            Ok(()) => true,
            Err(mut e) => {
                e.message = format!("restart failed: {}", e.message);
                self.fail(e);
                self.outcome(false);
                false
            }
        }
    }

    /// Ticks the node, which starts at `started`; returns when it ended.
    #[inline]
    fn tick(&mut self, started: Instant) -> Instant {
        if let Exec::Inline(instance) = &mut self.exec {
            // One clock read per tick: the end, which also starts the next node's tick.
            self.health.enter(started.saturating_duration_since(self.epoch));
            let result = instance.tick();
            let ended = Instant::now();
            self.health.leave();
            self.ticks += 1;
            self.finished(result, ended.saturating_duration_since(started));
            return ended;
        }
        // Workers report their own tick start and end to the watchdog.
        match self.exec.tick() {
            TickOutcome::Finished(result, took) => {
                self.ticks += 1;
                self.finished(result, took);
            }
            TickOutcome::Started => self.ticks += 1,
            TickOutcome::Late(result, took) => self.finished(result, took),
            TickOutcome::Busy => {}
        }
        Instant::now()
    }

    fn finished(&mut self, result: Result<(), CallError>, took: Duration) {
        let crashed = matches!(&result, Err(e) if e.kind == CallErrorKind::Crashed);
        if !crashed {
            // A crash has no duration of its own; recording 0 would skew min, mean and p99.
            self.times.record(took);
        }
        if self.deadline.is_some_and(|d| took > d) {
            self.missed_deadline(took);
        }
        let ok = result.is_ok();
        match result {
            Ok(()) => self.consecutive = 0,
            Err(e) => self.fail(e),
        }
        if crashed && self.breaker.force_open(Instant::now()) {
            // A dead process cannot tick again: restart it (after the backoff) right away.
            self.log_transition(CircuitState::Open);
            return;
        }
        self.outcome(ok);
    }

    /// A worker stuck in one tick past its watchdog timeout is abandoned and counted as a
    /// failure that opens the breaker (so `auto_restart` replaces it after the backoff).
    fn quarantine_if_hung(&mut self) {
        let Some(timeout) = self.health.timeout else {
            return;
        };
        if !self.exec.hung(timeout, self.epoch) || !self.exec.quarantine() {
            return;
        }
        // The supervisor thread may not have looked yet: this expiry is the watchdog's too.
        if !self
            .health
            .expired
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            self.health
                .expiries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let what = match self.spec.isolation {
            Isolation::Process => "worker process killed",
            _ => "worker thread quarantined (abandoned with its instance)",
        };
        tracing::error!(node = %self.spec.name, "tick hung for more than {} ms: {what}", timeout.as_millis());
        self.fail(CallError {
            kind: CallErrorKind::Error,
            message: format!("tick hung for more than {} ms; {what}", timeout.as_millis()),
        });
        if self.breaker.force_open(Instant::now()) {
            self.log_transition(CircuitState::Open);
        }
    }

    #[inline]
    fn outcome(&mut self, ok: bool) {
        // A success on a closed breaker changes nothing: skip the clock read.
        if ok && self.breaker.state() == CircuitState::Closed {
            return;
        }
        if let Some(state) = self.breaker.after_tick(ok, self.consecutive, Instant::now()) {
            self.log_transition(state);
        }
    }

    fn log_transition(&mut self, state: CircuitState) {
        {
            match state {
                CircuitState::Closed => {
                    tracing::info!(node = %self.spec.name, "circuit closed: the restarted node ticks again")
                }
                CircuitState::Open => match self.breaker.retry_at() {
                    Some(_) => tracing::warn!(
                        node = %self.spec.name,
                        "circuit open after {} consecutive failures: restarting in {} ms",
                        self.consecutive,
                        self.breaker.current_backoff().as_millis()
                    ),
                    None => tracing::error!(
                        node = %self.spec.name,
                        "circuit open after {} consecutive failures: the node is no longer ticked (auto_restart is off)",
                        self.consecutive
                    ),
                },
                CircuitState::HalfOpen => {}
            }
        }
    }

    #[cold]
    fn missed_deadline(&mut self, took: Duration) {
        self.deadline_misses += 1;
        let now = Instant::now();
        if self
            .last_deadline_log
            .is_none_or(|t| now.duration_since(t) >= FAILURE_LOG_INTERVAL)
        {
            self.last_deadline_log = Some(now);
            tracing::warn!(
                node = %self.spec.name,
                misses = self.deadline_misses,
                "deadline missed: the tick took {:.3} ms, deadline {:.3} ms",
                took.as_secs_f64() * 1e3,
                self.deadline.unwrap_or_default().as_secs_f64() * 1e3
            );
        }
    }

    #[cold]
    fn fail(&mut self, e: CallError) {
        self.failures += 1;
        self.consecutive += 1;
        let now = Instant::now();
        let quiet = self
            .last_failure_log
            .is_some_and(|t| now.duration_since(t) < FAILURE_LOG_INTERVAL);
        if quiet {
            self.unlogged_failures += 1;
        } else {
            let what = if e.kind == CallErrorKind::Panic {
                "panicked"
            } else {
                "failed"
            };
            let more = std::mem::take(&mut self.unlogged_failures);
            if more > 0 {
                tracing::warn!(node = %self.spec.name, total = self.failures, "tick {what}: {e} (and {more} more failures in the last second)");
            } else {
                tracing::warn!(node = %self.spec.name, total = self.failures, "tick {what}: {e}");
            }
            self.last_failure_log = Some(now);
        }
        self.last_error = Some(e.message);
    }

    fn stats(&mut self, tick_rate: f64, elapsed: Duration) -> NodeStats {
        let (min, avg, max) = self.times.micros();
        let io = self.exec.io_snapshot();
        let (sent, received, dropped) = io.totals;
        let secs = elapsed.as_secs_f64();
        NodeStats {
            name: self.spec.name.clone(),
            total_ticks: self.ticks,
            total_failures: self.failures,
            consecutive_failures: self.consecutive,
            priority: self.spec.priority,
            tick_rate: self.spec.rate_hz.unwrap_or(tick_rate),
            logging_enabled: self.spec.logging,
            tick_duration_min_us: min,
            tick_duration_avg_us: avg,
            tick_duration_max_us: max,
            tick_duration_p99_us: self.times.quantile_us(0.99),
            actual_rate_hz: if secs > 0.0 { self.ticks as f64 / secs } else { 0.0 },
            last_error: self.last_error.clone(),
            circuit_state: self.breaker.state().name().into(),
            restarts: self.restarts,
            deadline_ms: self.deadline.map(|d| d.as_secs_f64() * 1e3),
            deadline_misses: self.deadline_misses,
            watchdog_enabled: self.health.timeout.is_some(),
            watchdog_timeout_ms: self.health.timeout.map_or(0, |t| t.as_millis() as u64),
            watchdog_expired: self.health.expired.load(std::sync::atomic::Ordering::Relaxed),
            messages_sent: sent,
            messages_received: received,
            dropped,
            node_type: self.type_name.clone(),
            plugin: self.spec.plugin.display().to_string(),
            isolation: self.spec.isolation.name().into(),
            topics: io.topics,
        }
    }
}

/// One node driven by the scheduler's own per-cycle code (breaker, timing, deadline check,
/// watchdog record, failure accounting): what the benchmarks measure the scheduler's overhead
/// with. Not used by the runtime.
#[doc(hidden)]
pub struct BenchNode(RunningNode, Instant);

impl BenchNode {
    /// Wraps an inline node with a deadline and a watchdog record, as a supervised node has.
    pub fn new(instance: NodeInstance, spec: NodeSpec) -> BenchNode {
        let epoch = Instant::now();
        let health = Health::new(spec.name.clone(), Some(Duration::from_secs(1)));
        let node = RunningNode::new(
            spec,
            String::new(),
            Exec::Inline(instance),
            health,
            Some(Duration::from_secs(1)),
            &SupervisionSpec::default(),
            epoch,
        );
        BenchNode(node, epoch)
    }

    /// One scheduled cycle of the node, chained to the previous one as the scheduler chains
    /// the nodes of a cycle.
    #[inline]
    pub fn cycle(&mut self) {
        self.1 = self.0.run_cycle(self.1);
    }

    /// Ticks run so far.
    pub fn ticks(&self) -> u64 {
        self.0.ticks
    }
}

/// How long before each cycle's start the scheduler stops sleeping and spins. Spinning costs a
/// core, so only high rates (short periods) get it.
fn spin_margin(period: Duration) -> Duration {
    if period <= Duration::from_millis(5) {
        Duration::from_micros(100)
    } else {
        Duration::ZERO
    }
}

/// The latest stats of every node, refreshed by the scheduler thread every
/// [`SNAPSHOT_INTERVAL`] and at the end of the run.
pub type StatsBoard = Arc<Mutex<Vec<NodeStats>>>;

/// How long the host waits, after a stop was requested, for the scheduler to finish (drain,
/// shutdown, destroy) before it declares a node hung.
fn stop_grace(supervision: &SupervisionSpec, nodes: &[BoundNode]) -> Duration {
    let longest = nodes
        .iter()
        .filter_map(|n| n.node.spec.watchdog)
        .chain(
            supervision
                .watchdog_enabled
                .then_some(supervision.watchdog_timeout),
        )
        .max()
        .unwrap_or_default();
    // Each process node may take its shutdown and its exit, one after the other.
    let processes = nodes
        .iter()
        .filter(|n| n.node.spec.isolation == Isolation::Process)
        .count() as u32;
    (longest * 2).max(Duration::from_secs(5)) + exec::PROCESS_STOP_TIMEOUT * 3 * processes
}

/// Runs `nodes` on a new scheduler thread until `stop` or `duration`, and returns the report.
/// On success the thread has been joined, so the caller may unload the plugins afterwards. If a
/// node's tick never returns, the scheduler cannot stop: after a grace period this returns
/// [`RunError::Hung`] with the last stats, and the caller must not unload the plugins (the
/// thread is still inside one) but exit.
pub fn run(
    spec: &SchedulerSpec,
    nodes: Vec<BoundNode>,
    stop: &StopHandle,
    duration: Option<Duration>,
    board: &StatsBoard,
    scope: &TopicScope,
) -> Result<RunReport, RunError> {
    let sup = spec.supervision.clone();
    let healths: Vec<Arc<Health>> = nodes
        .iter()
        .map(|n| {
            let timeout = n
                .node
                .spec
                .watchdog
                .or(sup.watchdog_enabled.then_some(sup.watchdog_timeout));
            Health::new(n.node.spec.name.clone(), timeout)
        })
        .collect();
    let grace = stop_grace(&sup, &nodes);
    let epoch = Instant::now();
    let watchdog = Watchdog::start(healths.clone(), epoch).map_err(RunError::Spawn)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let scope = scope.clone();
    let running_since: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let running = running_since.clone();
    let thread = {
        let (stop, board, healths, tick_rate) =
            (stop.clone(), board.clone(), healths.clone(), spec.tick_rate);
        std::thread::Builder::new()
            .name("horus-sched".into())
            .spawn(move || {
                let ctx = RunContext {
                    tick_rate,
                    supervision: sup,
                    healths,
                    epoch,
                    board,
                    scope,
                    running_since,
                };
                let _ = tx.send(run_on_this_thread(&ctx, nodes, &stop, duration));
            })
            .map_err(RunError::Spawn)?
    };
    let mut stopping_since: Option<Instant> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(result) => {
                let _ = thread.join();
                drop(watchdog);
                return result;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let msg = match thread.join() {
                    Err(payload) => payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_default(),
                    Ok(()) => "it ended without a report".into(),
                };
                return Err(RunError::Panicked(msg));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        let ran_for = running.get().map(Instant::elapsed);
        if stopping_since.is_none()
            && (stop.is_stopped() || duration.zip(ran_for).is_some_and(|(d, r)| r >= d))
        {
            stopping_since = Some(now);
        }
        if stopping_since.is_some_and(|since| now.duration_since(since) > grace) {
            let (node, secs) = healths
                .iter()
                .filter_map(|h| h.in_tick_for(epoch).map(|d| (h.name.clone(), d.as_secs_f64())))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or_else(|| ("(none in a tick: a create, init, drain or shutdown)".into(), 0.0));
            let mut stats = board.lock().unwrap_or_else(|p| p.into_inner()).clone();
            for st in &mut stats {
                if let Some(h) = healths.iter().find(|h| h.name == st.name) {
                    st.watchdog_expired = h.expired.load(std::sync::atomic::Ordering::Relaxed);
                }
            }
            // The scheduler thread stays behind inside the plugin; the process is about to exit.
            drop(watchdog);
            return Err(RunError::Hung { node, secs, stats });
        }
    }
}

/// What the scheduler thread needs besides its nodes.
struct RunContext {
    tick_rate: f64,
    supervision: SupervisionSpec,
    /// Aligned with the nodes as given (manifest order).
    healths: Vec<Arc<Health>>,
    epoch: Instant,
    board: StatsBoard,
    scope: TopicScope,
    /// Set when every node is created and initialised and the first cycle starts; the host
    /// counts `--duration` from here.
    running_since: Arc<std::sync::OnceLock<Instant>>,
}

fn start_nodes(nodes: Vec<BoundNode>, ctx: &RunContext) -> Result<Vec<RunningNode>, RunError> {
    let epoch = ctx.epoch;
    let mut order: Vec<(usize, BoundNode)> = nodes.into_iter().enumerate().collect();
    order.sort_by_key(|(i, n)| (n.node.spec.priority, *i));
    let period = Duration::from_secs_f64(1.0 / ctx.tick_rate);
    let mut running: Vec<RunningNode> = Vec::with_capacity(order.len());
    for (index, BoundNode { node, mut io }) in order {
        io.set_epoch(epoch);
        let name = node.spec.name.clone();
        let health = ctx.healths[index].clone();
        let rebuild = Rebuild {
            plugin: node.plugin.clone(),
            type_index: node.type_index,
            name: name.clone(),
            logging: node.spec.logging,
            config: node.spec.config.clone(),
            ports: node.ports.clone(),
            port_names: node.port_names.clone(),
            scope: ctx.scope.clone(),
            epoch,
        };
        // Wait for a tick at most half a scheduler period (less if the watchdog is shorter):
        // a slow or hung worker then costs the others part of one cycle once, and is skipped
        // until its tick returns.
        let wait = health.timeout.map_or(period / 2, |t| t.min(period / 2));
        let created = match node.spec.isolation {
            Isolation::Inline => {
                NodeInstance::create(node.plugin.clone(), node.type_index, io).map(Exec::Inline)
            }
            Isolation::Thread => {
                exec::ThreadExec::start(rebuild, io, health.clone(), wait).map(|t| Exec::Thread(Box::new(t)))
            }
            Isolation::Process => {
                // The worker process attaches its own endpoints to the same topics.
                drop(io);
                Ok(Exec::Process(Box::new(exec::ProcessExec::new(
                    &rebuild,
                    health.clone(),
                    wait,
                ))))
            }
        };
        let exec = match created {
            Ok(exec) => exec,
            Err(error) => {
                // The nodes already started are shut down here and destroyed as `running` drops.
                shutdown_all(&mut running);
                return Err(RunError::NodeStart {
                    node: name,
                    phase: "create",
                    error,
                });
            }
        };
        let deadline = node.spec.deadline.filter(|_| ctx.supervision.deadline_monitoring);
        running.push(RunningNode::new(
            node.spec,
            node.type_name,
            exec,
            health,
            deadline,
            &ctx.supervision,
            epoch,
        ));
        let last = running.last_mut().expect("just pushed");
        last.health.enter(last.epoch.elapsed());
        let init = last.exec.init();
        last.health.leave();
        if let Err(error) = init {
            // The failed node never started: destroy it without `shutdown`, then stop the rest.
            drop(running.pop());
            shutdown_all(&mut running);
            return Err(RunError::NodeStart {
                node: name,
                phase: "init",
                error,
            });
        }
        tracing::debug!(node = %name, node_type = %last.type_name, "node started");
    }
    Ok(running)
}

fn shutdown_all(nodes: &mut [RunningNode]) {
    for node in nodes.iter_mut() {
        node.health.enter(node.epoch.elapsed());
        let result = node.exec.shutdown();
        node.health.leave();
        if let Err(e) = result {
            tracing::warn!(node = %node.spec.name, "shutdown failed: {e}");
            node.last_error = Some(e.message);
        }
    }
}

/// Most passes of the shutdown drain; a node that never empties its inputs cannot hold the
/// shutdown up longer than this.
const MAX_DRAIN_PASSES: usize = 64;

/// After the stop, nodes with unread input get more ticks — in priority order, so what a filter
/// forwards reaches a sink later in the same pass — until every input is empty, a pass makes no
/// progress, or `MAX_DRAIN_PASSES`. Sources (nodes without pending input) are not ticked, so
/// nothing new enters; everything a `reliable` topic accepted is delivered.
fn drain(nodes: &mut [RunningNode]) {
    let pending = |nodes: &mut [RunningNode]| nodes.iter_mut().map(|n| n.exec.pending_input()).sum::<usize>();
    let mut left = pending(nodes);
    for _ in 0..MAX_DRAIN_PASSES {
        if left == 0 {
            return;
        }
        for node in nodes.iter_mut() {
            if node.breaker.state() != CircuitState::Open && node.exec.pending_input() > 0 {
                node.tick(Instant::now());
            }
        }
        let now = pending(nodes);
        if now >= left {
            break;
        }
        left = now;
    }
    if left > 0 {
        tracing::warn!(
            messages = left,
            "shutdown drain gave up: messages left unread in input queues"
        );
    }
}

fn run_on_this_thread(
    ctx: &RunContext,
    nodes: Vec<BoundNode>,
    stop: &StopHandle,
    duration: Option<Duration>,
) -> Result<RunReport, RunError> {
    let tick_rate = ctx.tick_rate;
    let mut nodes = start_nodes(nodes, ctx)?;
    let period = Duration::from_secs_f64(1.0 / tick_rate);
    let spin = spin_margin(period);
    let start = Instant::now();
    let end = duration.map(|d| start + d);
    let _ = ctx.running_since.set(start);
    for node in &mut nodes {
        node.next_due = start;
    }
    tracing::info!(nodes = nodes.len(), tick_rate, "scheduler running");
    publish(&ctx.board, &mut nodes, tick_rate, Duration::ZERO);

    let mut cycles = 0u64;
    let mut overruns = 0u64;
    let mut next = start;
    let mut next_snapshot = start + SNAPSHOT_INTERVAL;
    loop {
        if stop.is_stopped() {
            break;
        }
        let now = Instant::now();
        if end.is_some_and(|end| now >= end) {
            break;
        }
        let mut t = now;
        for node in &mut nodes {
            if node.due(t) {
                t = node.run_cycle(t);
            }
        }
        cycles += 1;
        next += period;
        let now = t;
        if now > next + period {
            overruns += 1;
            next = now;
        }
        if now >= next_snapshot {
            next_snapshot = now + SNAPSHOT_INTERVAL;
            publish(&ctx.board, &mut nodes, tick_rate, now.duration_since(start));
        }
        let wake = end.map_or(next, |end| next.min(end));
        if stop.sleep_until(wake, spin) {
            break;
        }
    }
    let elapsed = start.elapsed();

    drain(&mut nodes);
    shutdown_all(&mut nodes);
    let stats: Vec<NodeStats> = nodes.iter_mut().map(|n| n.stats(tick_rate, elapsed)).collect();
    *ctx.board.lock().unwrap_or_else(|p| p.into_inner()) = stats.clone();
    // Dropping the instances runs every node's `destroy`, here on the scheduler thread.
    drop(nodes);
    tracing::info!(cycles, overruns, elapsed = ?elapsed, "scheduler stopped");
    Ok(RunReport {
        nodes: stats,
        elapsed,
        cycles,
        overruns,
    })
}

fn publish(board: &StatsBoard, nodes: &mut [RunningNode], tick_rate: f64, elapsed: Duration) {
    let stats = nodes.iter_mut().map(|n| n.stats(tick_rate, elapsed)).collect();
    *board.lock().unwrap_or_else(|p| p.into_inner()) = stats;
}
