//! The scheduler: creates the nodes of a [`Graph`], ticks them in priority order at the tick
//! rate (each node at its own `rate_hz` if set), keeps their statistics, and shuts them down.
//!
//! # Threads
//! Every call into a plugin runs on one scheduler thread that the host spawns for the run and
//! joins before the plugins are unloaded. This is not an accident of structure: glibc keeps a
//! library mapped while any thread on which its code registered thread-local destructors is
//! alive (Rust's std does so on the first panic, for example), so only a retired thread lets
//! `dlclose` really unmap a plugin. `inline` isolation means "on this thread"; `thread` and
//! `process` isolation will plug in at [`RunningNode::tick`].
//!
//! Owns: rate keeping, priority order, failure counting, tick timing. Does not own: loading
//! (see [`crate::graph`]), delivery (see [`crate::topic`]), signals (see [`crate::run`]).

mod stats;
mod stop;

pub use stats::{table, NodeStats, TickTimes};
pub use stop::StopHandle;

use crate::ffi::{CallError, CallErrorKind, NodeInstance};
use crate::graph::BoundNode;
use crate::manifest::{NodeSpec, SchedulerSpec};
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

/// Only log a node's failures this often; the rest are counted and summarised.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(1);
/// A node with its own rate ticks when its due time is at most this far ahead, so scheduler
/// jitter does not push it to the next cycle.
const DUE_SLACK: Duration = Duration::from_micros(200);

struct RunningNode {
    spec: NodeSpec,
    type_name: String,
    instance: NodeInstance,
    period: Option<Duration>,
    next_due: Instant,
    ticks: u64,
    failures: u64,
    consecutive: u64,
    last_error: Option<String>,
    times: TickTimes,
    last_failure_log: Option<Instant>,
    unlogged_failures: u64,
}

impl RunningNode {
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

    #[inline]
    fn tick(&mut self) {
        let started = Instant::now();
        let result = self.instance.tick();
        self.times.record(started.elapsed());
        self.ticks += 1;
        match result {
            Ok(()) => self.consecutive = 0,
            Err(e) => self.fail(e),
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

    fn stats(&self, tick_rate: f64, elapsed: Duration) -> NodeStats {
        let (min, avg, max) = self.times.micros();
        let (sent, received, dropped) = self.instance.io().message_totals();
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
            actual_rate_hz: if secs > 0.0 { self.ticks as f64 / secs } else { 0.0 },
            last_error: self.last_error.clone(),
            messages_sent: sent,
            messages_received: received,
            dropped,
            node_type: self.type_name.clone(),
            plugin: self.spec.plugin.display().to_string(),
            isolation: self.spec.isolation.name(),
            topics: self.instance.io().topic_stats(),
        }
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

/// Runs `nodes` on a new scheduler thread until `stop` or `duration`, and returns the report.
/// The thread is joined before this returns, so the caller may unload the plugins afterwards.
pub fn run(
    spec: &SchedulerSpec,
    nodes: Vec<BoundNode>,
    stop: &StopHandle,
    duration: Option<Duration>,
) -> Result<RunReport, RunError> {
    let tick_rate = spec.tick_rate;
    let stop = stop.clone();
    let thread = std::thread::Builder::new()
        .name("horus-sched".into())
        .spawn(move || run_on_this_thread(tick_rate, nodes, &stop, duration))
        .map_err(RunError::Spawn)?;
    match thread.join() {
        Ok(result) => result,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(RunError::Panicked(msg))
        }
    }
}

fn start_nodes(nodes: Vec<BoundNode>, epoch: Instant) -> Result<Vec<RunningNode>, RunError> {
    let mut order: Vec<(usize, BoundNode)> = nodes.into_iter().enumerate().collect();
    order.sort_by_key(|(i, n)| (n.node.spec.priority, *i));
    let mut running: Vec<RunningNode> = Vec::with_capacity(order.len());
    for (_, BoundNode { node, mut io }) in order {
        io.set_epoch(epoch);
        let name = node.spec.name.clone();
        let instance = match NodeInstance::create(node.plugin, node.type_index, io) {
            Ok(instance) => instance,
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
        let period = node.spec.rate_hz.map(|hz| Duration::from_secs_f64(1.0 / hz));
        running.push(RunningNode {
            spec: node.spec,
            type_name: node.type_name,
            instance,
            period,
            next_due: epoch,
            ticks: 0,
            failures: 0,
            consecutive: 0,
            last_error: None,
            times: TickTimes::default(),
            last_failure_log: None,
            unlogged_failures: 0,
        });
        let last = running.last_mut().expect("just pushed");
        if let Err(error) = last.instance.init() {
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
        if let Err(e) = node.instance.shutdown() {
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
    let pending = |nodes: &[RunningNode]| {
        nodes
            .iter()
            .map(|n| n.instance.io().pending_input())
            .sum::<usize>()
    };
    let mut left = pending(nodes);
    for _ in 0..MAX_DRAIN_PASSES {
        if left == 0 {
            return;
        }
        for node in nodes.iter_mut() {
            if node.instance.io().pending_input() > 0 {
                node.tick();
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
    tick_rate: f64,
    nodes: Vec<BoundNode>,
    stop: &StopHandle,
    duration: Option<Duration>,
) -> Result<RunReport, RunError> {
    let epoch = Instant::now();
    let mut nodes = start_nodes(nodes, epoch)?;
    let period = Duration::from_secs_f64(1.0 / tick_rate);
    let spin = spin_margin(period);
    let start = Instant::now();
    let end = duration.map(|d| start + d);
    for node in &mut nodes {
        node.next_due = start;
    }
    tracing::info!(nodes = nodes.len(), tick_rate, "scheduler running");

    let mut cycles = 0u64;
    let mut overruns = 0u64;
    let mut next = start;
    loop {
        if stop.is_stopped() {
            break;
        }
        let now = Instant::now();
        if end.is_some_and(|end| now >= end) {
            break;
        }
        for node in &mut nodes {
            if node.due(now) {
                node.tick();
            }
        }
        cycles += 1;
        next += period;
        let now = Instant::now();
        if now > next + period {
            overruns += 1;
            next = now;
        }
        let wake = end.map_or(next, |end| next.min(end));
        if stop.sleep_until(wake, spin) {
            break;
        }
    }
    let elapsed = start.elapsed();

    drain(&mut nodes);
    shutdown_all(&mut nodes);
    let stats = nodes.iter().map(|n| n.stats(tick_rate, elapsed)).collect();
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
