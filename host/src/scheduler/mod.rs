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
//! Owns: the cycle loop and rate keeping, priority order, start-up, drain and shutdown, the
//! stats board and the hung-run exit. One node's accounting (failures, deadlines, tick timing,
//! restarts) is [`running`]'s. Does not own: loading (see [`crate::graph`]), delivery (see
//! [`crate::topic`]), signals (see [`crate::run`]).

mod apply;
mod breaker;
mod exec;
mod moving;
mod reload;
mod running;
mod setup;
mod stats;
mod stop;
mod throttle;
mod trigger;
mod watchdog;

pub use apply::{ApplyLink, ApplyOp, NewExec, NewNode, NodeSettings, Rebind, Reverted};
pub use breaker::{Action, Breaker, CircuitState};
pub use exec::{Exec, Executor, IoSnapshot, ProcessExec, Rebuild, RestartStatus, ThreadExec, TickOutcome};
pub use moving::write_state;
pub use running::BenchNode;
pub use setup::{BoundNode, NodeSetup};
pub use stats::{table, NodeStats, TickTimes, TriggerStat};
pub use stop::StopHandle;
pub use watchdog::{Health, HealthRegistry, Watchdog};

use crate::ffi::CallError;

use crate::manifest::{Isolation, SchedulerSpec, SupervisionSpec};
use crate::reload::ReloadLink;
use crate::topic::TopicScope;
use running::RunningNode;
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
    /// A node's tick (or an inline node's restart) never returned, so the run could not stop:
    /// the host gives up on it.
    #[error(
        "node `{node}` is hung {phase} ({secs:.1} s); exiting without shutting the nodes down \
         (a call running on the scheduler thread cannot be interrupted)"
    )]
    Hung {
        /// The node stuck in its tick or restart.
        node: String,
        /// Where it is stuck: `in a tick` or `in a restart (create/init)`.
        phase: &'static str,
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

impl RunReport {
    /// The nodes that ended the run with their circuit not closed: `open` (given up on, or
    /// waiting for its restart), `half_open` (restarted, but no good tick since) or `failed`.
    /// `horus run --fail-on-node-error` exits 1 when there is any.
    pub fn unhealthy_nodes(&self) -> impl Iterator<Item = &NodeStats> {
        self.nodes
            .iter()
            .filter(|n| n.circuit_state != CircuitState::Closed)
    }
}

/// How often the scheduler publishes a stats snapshot for the host (and a hung run's report).
const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(100);

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
        .filter_map(|n| n.setup.watchdog)
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
        .filter(|n| n.setup.isolation == Isolation::Process)
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
    reloads: Option<ReloadLink>,
) -> Result<RunReport, RunError> {
    run_with_applies(spec, nodes, stop, duration, board, scope, reloads, None, None)
}

/// [`run`], also taking live applies of a changed manifest ([`ApplyLink`], see
/// [`crate::apply`]) at tick boundaries, and sending every node's ticks to `ticks` while the
/// host records (`horus run --record`).
#[expect(clippy::too_many_arguments, reason = "`run`'s arguments and two links more")]
pub fn run_with_applies(
    spec: &SchedulerSpec,
    nodes: Vec<BoundNode>,
    stop: &StopHandle,
    duration: Option<Duration>,
    board: &StatsBoard,
    scope: &TopicScope,
    reloads: Option<ReloadLink>,
    applies: Option<ApplyLink>,
    ticks: Option<crate::record::TickLog>,
) -> Result<RunReport, RunError> {
    let sup = spec.supervision.clone();
    let healths: Vec<Arc<Health>> = nodes
        .iter()
        .map(|n| {
            let timeout = n
                .setup
                .watchdog
                .or(sup.watchdog_enabled.then_some(sup.watchdog_timeout));
            Health::new(n.setup.name.clone(), timeout)
        })
        .collect();
    let grace = stop_grace(&sup, &nodes);
    let epoch = Instant::now();
    if let Some(link) = &applies {
        let _ = link.epoch.set(epoch);
    }
    // Nodes a live apply adds join the registry (and the ones it removes leave it), so the
    // watchdog and the hung-run report see them too.
    let registry: HealthRegistry = Arc::new(std::sync::Mutex::new(healths.clone()));
    let watchdog = Watchdog::start(registry.clone(), epoch, applies.is_some()).map_err(RunError::Spawn)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let scope = scope.clone();
    let running_since: Arc<std::sync::OnceLock<Instant>> = Arc::default();
    let running = running_since.clone();
    let thread = {
        let (stop, board, healths, tick_rate, registry) = (
            stop.clone(),
            board.clone(),
            healths.clone(),
            spec.tick_rate,
            registry.clone(),
        );
        std::thread::Builder::new()
            .name("horus-sched".into())
            .spawn(move || {
                let ctx = RunContext {
                    tick_rate,
                    supervision: sup,
                    healths,
                    registry,
                    epoch,
                    board,
                    scope,
                    running_since,
                    reloads,
                    applies,
                    ticks,
                };
                let _ = tx.send(run_on_this_thread(&ctx, nodes, &stop, duration));
            })
            .map_err(RunError::Spawn)?
    };
    let mut stopping_since: Option<Instant> = None;
    loop {
        // The report arrives the moment the scheduler ends. Until a stop is asked for, this
        // thread only has to notice that one was (the hung-run exit counts from it): it looks
        // four times a second, so an idle host's main thread hardly wakes; once stopping,
        // every 50 ms.
        let look = if stopping_since.is_some() {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(250)
        };
        match rx.recv_timeout(look) {
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
            let healths = registry.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let (node, phase, secs) = healths
                .iter()
                .filter_map(|h| {
                    h.in_tick_for(epoch)
                        .map(|d| (h.name.clone(), h.phase(), d.as_secs_f64()))
                })
                .max_by(|a, b| a.2.total_cmp(&b.2))
                .unwrap_or_else(|| {
                    (
                        "(none in a tick: a create, init, drain or shutdown)".into(),
                        "in a tick",
                        0.0,
                    )
                });
            let mut stats = board.lock().unwrap_or_else(|p| p.into_inner()).clone();
            for st in &mut stats {
                if let Some(h) = healths.iter().find(|h| h.name == st.name) {
                    st.watchdog_expired = h.expired.load(std::sync::atomic::Ordering::Relaxed);
                }
            }
            // The scheduler thread stays behind inside the plugin; the process is about to exit.
            drop(watchdog);
            return Err(RunError::Hung {
                node,
                phase,
                secs,
                stats,
            });
        }
    }
}

/// What the scheduler thread needs besides its nodes.
struct RunContext {
    tick_rate: f64,
    supervision: SupervisionSpec,
    /// Aligned with the nodes as given (manifest order).
    healths: Vec<Arc<Health>>,
    /// Every running node's health, for the watchdog: the nodes as given, and those applies add.
    registry: HealthRegistry,
    epoch: Instant,
    board: StatsBoard,
    scope: TopicScope,
    /// Set when every node is created and initialised and the first cycle starts; the host
    /// counts `--duration` from here.
    running_since: Arc<std::sync::OnceLock<Instant>>,
    /// New builds of watched plugin files, ready to swap in (hot reload).
    reloads: Option<ReloadLink>,
    /// Live applies of a changed manifest.
    applies: Option<ApplyLink>,
    /// Where the nodes' ticks go while the host records.
    ticks: Option<crate::record::TickLog>,
}

fn start_nodes(nodes: Vec<BoundNode>, ctx: &RunContext) -> Result<Vec<RunningNode>, RunError> {
    let epoch = ctx.epoch;
    let mut order: Vec<(usize, BoundNode)> = nodes.into_iter().enumerate().collect();
    order.sort_by_key(|(i, n)| (n.setup.priority, *i));
    let period = Duration::from_secs_f64(1.0 / ctx.tick_rate);
    let mut running: Vec<RunningNode> = Vec::with_capacity(order.len());
    for (index, BoundNode { setup, mut io }) in order {
        io.set_epoch(epoch);
        let name = setup.name.clone();
        let health = ctx.healths[index].clone();
        let rebuild = Rebuild {
            plugin: setup.plugin.clone(),
            type_index: setup.type_index,
            python: setup.python.clone(),
            name: name.clone(),
            logging: setup.logging,
            config: setup.config.clone(),
            ports: setup.ports.clone(),
            port_names: setup.port_names.clone(),
            scope: ctx.scope.clone(),
            epoch,
        };
        // Wait for a tick at most half a scheduler period (less if the watchdog is shorter):
        // a slow or hung worker then costs the others part of one cycle once, and is skipped
        // until its tick returns.
        let wait = health.timeout().map_or(period / 2, |t| t.min(period / 2));
        // A worker process's endpoints are its own: their watches come from its reports.
        let inputs = match setup.isolation {
            Isolation::Process => Vec::new(),
            _ => io.input_watches(),
        };
        let created = match setup.isolation {
            Isolation::Inline => rebuild.instance(io).map(Exec::Inline),
            Isolation::Thread => {
                exec::ThreadExec::start(rebuild, io, health.clone(), wait).map(|t| Exec::Thread(Box::new(t)))
            }
            Isolation::Process => {
                // The worker process attaches its own endpoints to the same topics; the host
                // holds the inputs until then.
                Ok(Exec::Process(Box::new(
                    exec::ProcessExec::new(&rebuild, health.clone(), wait).holding_inputs(io),
                )))
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
        let deadline = setup.deadline.filter(|_| ctx.supervision.deadline_monitoring);
        running.push(RunningNode::new(
            setup,
            exec,
            health,
            deadline,
            &ctx.supervision,
            epoch,
        ));
        let last = running.last_mut().expect("just pushed");
        last.tick_log = ctx.ticks.as_ref().map(|t| t.for_node(&name));
        last.inputs = inputs;
        last.refresh_trigger(epoch);
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
        if last.setup.isolation == Isolation::Process {
            // Its inputs are bound now: watch them before the first message.
            last.sync_inputs(epoch);
        }
        tracing::debug!(node = %name, node_type = %last.setup.type_name(), "node started");
    }
    Ok(running)
}

fn shutdown_all(nodes: &mut [RunningNode]) {
    for node in nodes.iter_mut() {
        node.health.enter(node.epoch.elapsed());
        let result = node.exec.shutdown();
        node.health.leave();
        if let Err(e) = result {
            tracing::warn!(node = %node.setup.name, "shutdown failed: {e}");
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
            if node.tickable() && node.exec.pending_input() > 0 {
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
    let mut live = apply::Live {
        tick_rate: ctx.tick_rate,
        supervision: ctx.supervision.clone(),
        healths: ctx.registry.clone(),
        ticks: ctx.ticks.clone(),
    };
    let mut tick_rate = ctx.tick_rate;
    // An apply waiting for its replacements to come up, and whether one changed the tick rate.
    let mut pending: Option<Box<apply::Pending>> = None;
    let mut rate_changed = false;
    let mut nodes = start_nodes(nodes, ctx)?;
    let mut period = Duration::from_secs_f64(1.0 / tick_rate);
    let mut spin = spin_margin(period);
    let start = Instant::now();
    // A duration the clock cannot add (centuries) is no end at all.
    let end = duration.and_then(|d| start.checked_add(d));
    let _ = ctx.running_since.set(start);
    for node in &mut nodes {
        node.next_due = start;
        if let Some(input) = &mut node.input {
            input.start_at(start);
        }
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
        // A tick boundary: swap in what hot reload prepared (every node of a file in this cycle).
        if let Some(link) = &ctx.reloads {
            while let Ok(prepared) = link.prepared.try_recv() {
                reload::apply(&mut nodes, prepared, link);
            }
        }
        // A tick boundary: a live apply of a changed manifest (one at a time: the next waits
        // while one's replacements come up on their workers).
        if let Some(link) = &ctx.applies {
            if pending.is_none() {
                if let Ok(op) = link.ops.try_recv() {
                    match apply::apply(&mut nodes, op, &mut live, link, ctx.epoch) {
                        apply::Applied::Waiting(p) => pending = Some(p),
                        apply::Applied::Done(rate) => rate_changed = rate,
                    }
                }
            }
        }
        if ctx.reloads.is_some() || ctx.applies.is_some() {
            reload::progress(&mut nodes);
        }
        if let (Some(p), Some(link)) = (pending.take(), &ctx.applies) {
            match apply::poll(&mut nodes, p, &mut live, link) {
                apply::Applied::Waiting(p) => pending = Some(p),
                apply::Applied::Done(rate) => rate_changed = rate,
            }
        }
        if std::mem::take(&mut rate_changed) {
            tick_rate = live.tick_rate;
            period = Duration::from_secs_f64(1.0 / tick_rate);
            spin = spin_margin(period);
            tracing::info!(tick_rate, "apply: the scheduler runs at its new tick rate");
        }
        // A rate cycle when its time came; a pass between two (an input woke the scheduler)
        // runs only input-triggered nodes. Without nodes that need rate cycles, there are none.
        let cycling = nodes.iter().any(RunningNode::needs_cycles);
        let rate_cycle = cycling && now >= next;
        for node in &mut nodes {
            node.look_at_inputs(now);
        }
        let mut t = now;
        for node in &mut nodes {
            if node.should_run(t, rate_cycle) {
                t = node.run_cycle(t);
            }
        }
        let now = t;
        if rate_cycle {
            cycles += 1;
            next += period;
            if now > next + period {
                overruns += 1;
                next = now;
            }
        } else if !cycling {
            // The first rate cycle once a node needs them (a restart, an apply) is at once.
            next = now;
        }
        if now >= next_snapshot {
            next_snapshot = now + SNAPSHOT_INTERVAL;
            publish(&ctx.board, &mut nodes, tick_rate, now.duration_since(start));
        }
        let triggered = nodes.iter().any(|n| n.input.is_some());
        if triggered {
            // Input still waiting (the cap holds it, or the tick read only part) is timed from
            // here.
            for node in &mut nodes {
                node.look_at_inputs(now);
            }
        }
        let cycling = cycling || nodes.iter().any(RunningNode::needs_cycles);
        // Without rate cycles, the next look is the earliest input timeout or rate cap, or the
        // next stats snapshot (which also picks up reloads and applies).
        let mut wake = if cycling { next } else { next_snapshot };
        if triggered {
            wake = nodes
                .iter()
                .filter_map(RunningNode::next_look)
                .fold(wake, Instant::min);
        }
        let wake = end.map_or(wake, |end| wake.min(end));
        if triggered && sleep_on_inputs(&nodes, stop, wake, spin) {
            continue;
        }
        if stop.sleep_until(wake, spin) {
            break;
        }
    }
    let elapsed = start.elapsed();

    // An apply still waiting for its replacements is undone; a move under way ends: the drain
    // and shutdown need one executor each.
    if let (Some(p), Some(link)) = (pending.take(), &ctx.applies) {
        apply::abandon(&mut nodes, *p, link.reaper.as_ref(), "the host is stopping");
    }
    for node in &mut nodes {
        node.settle_move();
    }
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

/// Sleeps until `wake` (less the spin margin) or a message on a trigger input of a node that
/// is waiting for one, whichever comes first; true when input (or a stop) woke it before that.
/// The futex words are the topics' own (see [`crate::shm::wait_for_input`]): a publisher in any
/// process wakes the scheduler, and nothing runs while nothing arrives.
fn sleep_on_inputs(nodes: &[RunningNode], stop: &StopHandle, wake: Instant, spin: Duration) -> bool {
    let watches: Vec<&crate::shm::InputWatch> = nodes
        .iter()
        .filter(|n| !n.needs_cycles())
        .filter_map(|n| n.input.as_deref())
        // Input already waiting (held by its `rate_hz` cap) is not waited for again.
        .filter(|i| !i.pending())
        .flat_map(|i| i.watches.iter())
        .collect();
    let (bell, seen) = stop.bell();
    if stop.is_stopped() {
        return true;
    }
    let coarse = wake.checked_sub(spin).unwrap_or(wake);
    !matches!(
        crate::shm::wait_for_input(&watches, bell, seen, coarse),
        crate::shm::WaitOutcome::Deadline
    )
}

fn publish(board: &StatsBoard, nodes: &mut [RunningNode], tick_rate: f64, elapsed: Duration) {
    let stats = nodes.iter_mut().map(|n| n.stats(tick_rate, elapsed)).collect();
    *board.lock().unwrap_or_else(|p| p.into_inner()) = stats;
}
