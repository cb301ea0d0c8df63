//! One node as the scheduler runs it: its executor, its rate, and its accounting (tick count,
//! failures, deadline misses, tick times, restarts, the circuit breaker's decisions), and the
//! [`NodeStats`] snapshot of all that.
//!
//! A worker node's restart is handed off and polled once per due cycle (the node is skipped
//! meanwhile); a replacement that does not come up within the restart timeout (the node's
//! watchdog timeout, at least [`MIN_RESTART_TIMEOUT`]; [`DEFAULT_RESTART_TIMEOUT`] without one)
//! is abandoned like a hung tick. Each abandoned worker thread counts towards the quarantine cap:
//! after [`MAX_QUARANTINES`] quarantines without a successful tick in between, or with that
//! many abandoned threads of the node still stuck, the node is failed for good.
//!
//! Owns what happens to one node in one scheduled cycle. Does not own the cycle loop, start-up,
//! drain or shutdown order (see [`super`]), where calls run (see [`super::exec`]) or the
//! breaker's state machine (see [`super::breaker`]).

use super::reload::ReloadStats;
use super::setup::NodeSetup;
use super::throttle::LogThrottle;
use super::trigger::InputTrigger;
use super::{
    Action, Breaker, CircuitState, Exec, Executor, Health, NodeStats, RestartStatus, TickOutcome, TickTimes,
};
use crate::ffi::{CallError, CallErrorKind, NodeInstance};
use crate::manifest::{Isolation, SupervisionSpec, Trigger};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Only log a node's failures (and deadline misses) this often; the rest are counted and
/// summarised.
const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(1);
/// A node with its own rate ticks when its due time is at most this far ahead, so scheduler
/// jitter does not push it to the next cycle.
const DUE_SLACK: Duration = Duration::from_micros(200);
/// How long a worker node's replacement may take to come up (create + init) when the node has
/// no watchdog.
const DEFAULT_RESTART_TIMEOUT: Duration = Duration::from_secs(10);
/// The least a replacement gets, whatever the watchdog timeout: starting a worker process
/// (exec, plugin load, create) alone can take hundreds of ms on a busy machine.
const MIN_RESTART_TIMEOUT: Duration = Duration::from_secs(1);
/// The quarantine cap: a node that has had this many worker threads quarantined without a
/// successful tick in between, or has this many abandoned threads still stuck in it, is failed
/// (never restarted again), so a node that keeps hanging cannot grow the host's threads.
pub(super) const MAX_QUARANTINES: u32 = 3;

/// The schedule of a node with a period (its `rate_hz`, for a rate-triggered node the rate it
/// ticks at, for an input-triggered one the cap on its ticks): `None` when it is not due at
/// `now` (its due time `next_due` is more than [`DUE_SLACK`] ahead); else the due time after this
/// tick, one period on — or a period from `now` when it fell more than a period behind (a long
/// stall, or an input-triggered node without input), so it does not burst to catch up. Ticks
/// therefore stay at most `rate_hz` a second, whatever the scheduler's tick rate: an
/// input-triggered node ticks between rate cycles, so its cap may exceed the tick rate.
pub(super) fn next_due(next_due: Instant, period: Duration, now: Instant) -> Option<Instant> {
    if now + DUE_SLACK < next_due {
        return None;
    }
    let next = next_due + period;
    Some(if next + period < now { now + period } else { next })
}

/// A node the scheduler runs.
pub(super) struct RunningNode {
    pub(super) setup: NodeSetup,
    pub(super) exec: Exec,
    period: Option<Duration>,
    /// When a node with its own rate is next due.
    pub(super) next_due: Instant,
    ticks: u64,
    failures: u64,
    consecutive: u64,
    pub(super) last_error: Option<String>,
    times: TickTimes,
    failure_log: LogThrottle,
    pub(super) breaker: Breaker,
    restarts: u64,
    /// When the pending restart of a worker node began.
    restarting: Option<Instant>,
    restart_timeout: Duration,
    /// Worker threads quarantined since the last successful tick.
    quarantines_in_a_row: u32,
    deadline: Option<Duration>,
    deadline_misses: u64,
    /// Input-caused ticks that ended more than the deadline after their input was found
    /// waiting.
    input_deadline_misses: u64,
    /// How long the input of the input-caused tick under way had waited when it started (kept
    /// until a worker reports the tick's end); `None` for other ticks.
    input_wait: Option<Duration>,
    deadline_log: LogThrottle,
    pub(super) health: Arc<Health>,
    pub(super) epoch: Instant,
    /// Hot-reload counters and the swap waiting for its first tick.
    pub(super) reload: ReloadStats,
    /// A live apply moving the node to another isolation level.
    pub(super) moving: Option<Box<super::moving::Move>>,
    /// A live apply's replacement of this node is up and waits for the rest of the apply's
    /// replacements: the node does not tick (its first tick would commit it) until the apply
    /// is decided.
    pub(super) held: bool,
    /// The message counts (sent, received, dropped) of the executors a live apply moved the
    /// node out of: its totals go on.
    pub(super) moved_counts: (u64, u64, u64),
    /// Where to say that a change a live apply made to this node was rolled back (after the
    /// apply replied), so the applier knows the node runs as before.
    pub(super) reverts: Option<super::apply::Reverted>,
    /// An input-triggered node's trigger; `None`: it ticks by rate.
    pub(super) input: Option<Box<InputTrigger>>,
    /// A watch of each connected input, by port name, that a trigger picks its own from (kept
    /// for every node, so a live apply can make any node input-triggered). For a node whose
    /// endpoints live elsewhere — a `process` worker, a Python node's topics — they come from
    /// its executor's reports (see [`RunningNode::adopt_inputs`]).
    pub(super) inputs: Vec<(String, crate::shm::InputWatch)>,
    /// The node's input endpoints may have changed (it started, restarted, moved, was bound
    /// anew, or is a Python node that has not ticked yet): an input-triggered node asks its
    /// executor for them after its next tick.
    pub(super) inputs_stale: bool,
    /// Where the node's ticks go while the host records (`horus run --record`).
    pub(super) tick_log: Option<crate::record::TickLog>,
    /// A worker's tick still under way: its number and start, logged when it ends.
    late_tick: Option<(u64, Instant)>,
}

impl RunningNode {
    /// A node about to start: closed breaker, no ticks yet.
    pub(super) fn new(
        setup: NodeSetup,
        exec: Exec,
        health: Arc<Health>,
        deadline: Option<Duration>,
        supervision: &SupervisionSpec,
        epoch: Instant,
    ) -> RunningNode {
        RunningNode {
            period: setup.rate_hz.map(|hz| Duration::from_secs_f64(1.0 / hz)),
            setup,
            exec,
            next_due: epoch,
            ticks: 0,
            failures: 0,
            consecutive: 0,
            last_error: None,
            times: TickTimes::default(),
            failure_log: LogThrottle::new(FAILURE_LOG_INTERVAL),
            breaker: Breaker::new(supervision),
            restarts: 0,
            restarting: None,
            restart_timeout: health
                .timeout()
                .map_or(DEFAULT_RESTART_TIMEOUT, |t| t.max(MIN_RESTART_TIMEOUT)),
            quarantines_in_a_row: 0,
            deadline,
            deadline_misses: 0,
            input_deadline_misses: 0,
            input_wait: None,
            deadline_log: LogThrottle::new(FAILURE_LOG_INTERVAL),
            health,
            epoch,
            reload: ReloadStats::default(),
            moving: None,
            reverts: None,
            held: false,
            moved_counts: (0, 0, 0),
            input: None,
            inputs: Vec::new(),
            inputs_stale: true,
            tick_log: None,
            late_tick: None,
        }
    }

    /// Sets the node's trigger and `timeout_ms` (at start, and by a live apply), counting the
    /// timeout from `now`; an input-triggered node keeps its `wakeups` and latency figures.
    pub(super) fn set_trigger(&mut self, trigger: Trigger, timeout: Option<Duration>, now: Instant) {
        self.setup.trigger = trigger;
        self.setup.timeout = timeout;
        self.refresh_trigger(now);
        self.inputs_stale = true;
    }

    /// Builds the node's [`InputTrigger`] again from its trigger and its inputs' watches (its
    /// trigger changed, or its inputs were bound anew).
    pub(super) fn refresh_trigger(&mut self, now: Instant) {
        let old = self.input.take();
        if !self.setup.trigger.is_input() {
            return;
        }
        let ports = match &self.setup.trigger {
            Trigger::Ports(ports) => Some(ports),
            _ => None,
        };
        let watches = self
            .inputs
            .iter()
            .filter(|(name, _)| ports.is_none_or(|ports| ports.contains(name)))
            .filter_map(|(name, w)| {
                w.duplicate()
                    .map_err(|e| tracing::warn!(node = %self.setup.name, port = %name, "cannot watch the input for its trigger: {e}"))
                    .ok()
            })
            .collect();
        let mut input = InputTrigger::new(watches, self.setup.timeout, now);
        match old {
            Some(old) => input.carry_on(&old),
            // A Python node declares no ports: the topics it reads are known once it has read
            // them, so it ticks once at start (or when it becomes input-triggered).
            None if self.setup.python.is_some() => input.tick_once(),
            None => {}
        }
        self.input = Some(Box::new(input));
    }

    /// Asks the executor where the node's inputs are now and watches them
    /// ([`RunningNode::adopt_inputs`]); an input-triggered node's only.
    pub(super) fn sync_inputs(&mut self, now: Instant) {
        self.inputs_stale = false;
        if self.setup.trigger.is_input() {
            let io = self.exec.io_snapshot();
            self.adopt_inputs(&io.inputs, now);
        }
    }

    /// Watches the input queues an executor reported (`reported`, by port, or for a Python
    /// node by the topic name it reads), keeping the watches of unchanged ones: the source of
    /// an input trigger's watches for a `process` worker's endpoints and a Python node's topics,
    /// and a check of every other node's. A queue that cannot be watched (its subscriber just
    /// went) is tried again with the next report.
    pub(super) fn adopt_inputs(&mut self, reported: &[(String, crate::shm::InputPeer)], now: Instant) {
        if !self.setup.trigger.is_input() {
            return;
        }
        let same = |name: &str, peer: &crate::shm::InputPeer, (n, w): &(String, crate::shm::InputWatch)| {
            n == name && w.watched() == (peer.segment.as_str(), peer.peer)
        };
        if reported.len() == self.inputs.len()
            && reported
                .iter()
                .zip(&self.inputs)
                .all(|((name, peer), have)| same(name, peer, have))
        {
            return;
        }
        let mut old = std::mem::take(&mut self.inputs);
        for (name, peer) in reported {
            let watch = match old.iter().position(|have| same(name, peer, have)) {
                Some(i) => Ok(old.swap_remove(i).1),
                None => crate::shm::InputWatch::of_peer(peer, name),
            };
            match watch {
                Ok(w) => self.inputs.push((name.clone(), w)),
                Err(e) => {
                    tracing::debug!(node = %self.setup.name, input = %name, "cannot watch the input yet: {e}")
                }
            }
        }
        self.refresh_trigger(now);
    }

    /// Whether the node is due in this pass of the scheduler. A rate-triggered node is due on
    /// rate cycles (`rate_cycle`) at its own rate. An input-triggered node is due when a
    /// trigger input has a message or its `timeout_ms` passed, at most at its `rate_hz`; while
    /// its breaker is not closed, a restart or a live apply is under way, or a worker's tick is
    /// still in flight, it goes by rate cycles like the others, so that all that proceeds as
    /// for any node.
    pub(super) fn should_run(&mut self, now: Instant, rate_cycle: bool) -> bool {
        if self.input.is_none() || self.needs_cycles() {
            return rate_cycle && self.due(now);
        }
        let capped = self
            .period
            .is_some_and(|period| next_due(self.next_due, period, now).is_none());
        let Some(input) = self.input.as_mut() else {
            return false;
        };
        match input.due(now, capped) {
            None => false,
            Some(cause) => {
                self.input_wait = input.ticking(now, cause);
                if self.period.is_some() {
                    self.due(now);
                }
                true
            }
        }
    }

    /// Whether the node needs the scheduler's rate cycles: it ticks by rate, or its breaker,
    /// restart, live apply, hot reload or a worker's tick in flight is handled on them.
    pub(super) fn needs_cycles(&self) -> bool {
        self.input.is_none()
            || self.breaker.state() != CircuitState::Closed
            || self.restarting.is_some()
            || self.held
            || self.moving.is_some()
            || self.reload.pending()
            || self.health.in_tick()
    }

    /// The scheduler looks at an input-triggered node's trigger inputs (at a pass's start and
    /// end), so the wait of input held by priority order or the `rate_hz` cap is timed from
    /// when it was first found.
    pub(super) fn look_at_inputs(&mut self, now: Instant) {
        if let Some(input) = self.input.as_mut() {
            input.look(now);
        }
    }

    /// For an input-triggered node, the latest time the scheduler must look at it again if no
    /// more input arrives: its timeout; with input already waiting, the end of its `rate_hz`
    /// cap, or at once (a node that reads one message per tick has more to do).
    pub(super) fn next_look(&self) -> Option<Instant> {
        let input = self.input.as_ref()?;
        let waiting = input.pending().then(|| {
            if self.period.is_some() {
                self.next_due
            } else {
                self.epoch
            }
        });
        match (input.next_timeout(), waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A live apply's new `rate_hz` (`None`: every cycle); the next due time stays, so the
    /// new period counts from the node's last tick.
    pub(super) fn set_rate(&mut self, rate_hz: Option<f64>) {
        self.setup.rate_hz = rate_hz;
        self.period = rate_hz.map(|hz| Duration::from_secs_f64(1.0 / hz));
    }

    /// A live apply's deadline (already off when the scheduler does not monitor deadlines).
    pub(super) fn set_deadline(&mut self, deadline: Option<Duration>) {
        self.deadline = deadline;
    }

    /// A live apply's watchdog: the node's own `watchdog_ms` (`own`) or, without one, the
    /// scheduler's (`supervision`), set in place on its health record (the supervisor thread
    /// runs whenever applies can come) and its restart timeout. A worker keeps the tick wait
    /// it was started with (half a scheduler period, or the old timeout if shorter).
    pub(super) fn set_watchdog(&mut self, own: Option<Duration>, supervision: &SupervisionSpec) {
        self.setup.watchdog = own;
        let timeout = own.or(supervision
            .watchdog_enabled
            .then_some(supervision.watchdog_timeout));
        self.health.set_timeout(timeout);
        self.restart_timeout = timeout.map_or(DEFAULT_RESTART_TIMEOUT, |t| t.max(MIN_RESTART_TIMEOUT));
    }

    pub(super) fn due(&mut self, now: Instant) -> bool {
        let Some(period) = self.period else { return true };
        match next_due(self.next_due, period, now) {
            Some(next) => {
                self.next_due = next;
                true
            }
            None => false,
        }
    }

    /// One scheduled cycle of this node, starting at `now` (the end of the previous node's
    /// work, or the cycle's start): asks the breaker, restarts if it says so (or polls the
    /// restart under way), ticks. Returns when it finished, so the next node's tick starts from
    /// it: one clock read per tick.
    pub(super) fn run_cycle(&mut self, now: Instant) -> Instant {
        self.quarantine_if_hung();
        if self.held {
            return now;
        }
        // The common case needs no extra clock read: a closed breaker always ticks.
        if self.breaker.state() == CircuitState::Closed {
            return self.tick(now);
        }
        if let Some(since) = self.restarting {
            return self.poll_restart(now, since);
        }
        match self.breaker.before_tick(now) {
            Action::Skip => now,
            Action::Tick => self.tick(now),
            Action::Restart => self.begin_restart(now),
        }
    }

    /// Whether the node may tick now (the shutdown drain asks): not open or failed, and not
    /// waiting for its replacement.
    pub(super) fn tickable(&self) -> bool {
        matches!(
            self.breaker.state(),
            CircuitState::Closed | CircuitState::HalfOpen
        ) && self.restarting.is_none()
    }

    /// Re-creates and re-initialises the node (half-open): a worker's restart is handed off
    /// and polled on the next cycles; an inline one runs here.
    #[cold]
    fn begin_restart(&mut self, now: Instant) -> Instant {
        self.restarts += 1;
        // A tick abandoned with its worker never reports its end.
        self.input_wait = None;
        tracing::warn!(node = %self.setup.name, restarts = self.restarts, "circuit half-open: restarting the node");
        let inline = matches!(self.exec, Exec::Inline(_));
        if inline {
            // Nothing can abandon it: at least a hung run names the node and the restart.
            self.health
                .enter_restart(now.saturating_duration_since(self.epoch));
        }
        let status = self.exec.begin_restart();
        if inline {
            self.health.leave_restart();
        }
        self.restart_went(status, now)
    }

    /// Polls a worker's restart under way since `since`; abandons it past the restart timeout.
    #[cold]
    fn poll_restart(&mut self, now: Instant, since: Instant) -> Instant {
        let status = self.exec.poll_restart();
        if matches!(status, RestartStatus::Pending)
            && now.saturating_duration_since(since) > self.restart_timeout
        {
            self.abandon_restart();
            return now;
        }
        self.restart_went(status, now)
    }

    /// Acts on a restart's status: the trial tick when ready; a failure fails the trial.
    fn restart_went(&mut self, status: RestartStatus, now: Instant) -> Instant {
        match status {
            RestartStatus::Pending => {
                self.restarting.get_or_insert(now);
                now
            }
            RestartStatus::Ready => {
                self.restarting = None;
                self.inputs_stale = true;
                self.tick(Instant::now())
            }
            RestartStatus::Failed(mut e) => {
                self.restarting = None;
                e.message = format!("restart failed: {}", e.message);
                self.fail(e);
                self.outcome(false);
                Instant::now()
            }
        }
    }

    /// A replacement that did not come up in time is abandoned like a hung tick: its worker
    /// quarantined (a thread) or killed (a process), a failure, and the breaker opens again
    /// with the next backoff.
    #[cold]
    fn abandon_restart(&mut self) {
        self.restarting = None;
        self.exec.quarantine();
        let what = match self.setup.isolation {
            Isolation::Process => "worker process killed",
            _ => "worker thread quarantined (abandoned with its instance)",
        };
        let ms = self.restart_timeout.as_millis();
        tracing::error!(node = %self.setup.name, "restart did not finish within {ms} ms (create/init): {what}");
        self.fail(CallError {
            kind: CallErrorKind::Error,
            message: format!("restart did not finish within {ms} ms (create/init); {what}"),
        });
        if !self.count_quarantine() {
            self.outcome(false);
        }
    }

    /// Counts a quarantined worker thread against the cap; past it, fails the node for good
    /// (logged once: a failed node is never restarted, so never quarantined again). True if
    /// it did.
    fn count_quarantine(&mut self) -> bool {
        if self.setup.isolation != Isolation::Thread {
            return false;
        }
        self.quarantines_in_a_row += 1;
        let stuck = self.exec.abandoned_threads();
        if self.quarantines_in_a_row < MAX_QUARANTINES && stuck < MAX_QUARANTINES as usize {
            return false;
        }
        self.breaker.give_up();
        tracing::error!(
            node = %self.setup.name,
            "circuit failed: quarantine cap reached ({} quarantines without a successful tick in \
             between, {stuck} abandoned worker threads still stuck; the cap is {MAX_QUARANTINES} of \
             either): the node is no longer restarted",
            self.quarantines_in_a_row
        );
        true
    }

    /// Ticks so far.
    pub(super) fn total_ticks(&self) -> u64 {
        self.ticks
    }

    /// True while a restart's replacement is coming up on its worker.
    pub(super) fn restarting(&self) -> bool {
        self.restarting.is_some()
    }

    /// The node's clock at `t`: ns since the scheduler's `epoch`.
    #[inline]
    fn clock_at(t: Instant, epoch: Instant) -> u64 {
        t.saturating_duration_since(epoch).as_nanos() as u64
    }

    /// Ticks the node, which starts at `started` (its clock stands there all through the
    /// tick); returns when it ended.
    #[inline]
    pub(super) fn tick(&mut self, started: Instant) -> Instant {
        if let Exec::Inline(instance) = &mut self.exec {
            // One clock read per tick: the end, which also starts the next node's tick.
            self.health.enter(started.saturating_duration_since(self.epoch));
            let result = instance.tick_at(Self::clock_at(started, self.epoch));
            let ended = Instant::now();
            self.health.leave();
            self.ticks += 1;
            let next = match &self.tick_log {
                Some(log) => {
                    log.tick(
                        self.ticks,
                        started,
                        ended.saturating_duration_since(started),
                        self.epoch,
                    );
                    // The next node's tick starts after the log, not inside its time.
                    Instant::now()
                }
                None => ended,
            };
            if self.reload.pending() {
                self.after_reload_tick(result.as_ref().err().map(|e| e.message.as_str()));
            } else if self.move_ticking() {
                self.after_move_tick(result.as_ref().err().map(|e| e.message.as_str()));
            }
            self.finished(result, ended.saturating_duration_since(started));
            if self.inputs_stale {
                self.sync_inputs(ended);
                return Instant::now();
            }
            return next;
        }
        // Workers report their own tick start and end to the watchdog.
        match self.exec.tick(Self::clock_at(started, self.epoch)) {
            TickOutcome::Finished(result, took) => {
                self.ticks += 1;
                if let Some(log) = &self.tick_log {
                    log.tick(self.ticks, started, took, self.epoch);
                }
                self.after_worker_tick(&result);
                self.finished(result, took);
            }
            TickOutcome::Started => {
                self.ticks += 1;
                self.late_tick = Some((self.ticks, started));
            }
            TickOutcome::Late(result, took) => {
                if let (Some(log), Some((tick, at))) = (&self.tick_log, self.late_tick.take()) {
                    log.tick(tick, at, took, self.epoch);
                }
                self.after_worker_tick(&result);
                self.finished(result, took);
            }
            TickOutcome::Busy => return Instant::now(),
        }
        let now = Instant::now();
        if self.inputs_stale && !self.health.in_tick() {
            self.sync_inputs(now);
            return Instant::now();
        }
        now
    }

    /// A worker's tick ended: the first of newly swapped-in code decides its reload.
    fn after_worker_tick(&mut self, result: &Result<(), CallError>) {
        if self.reload.pending() {
            self.after_reload_tick(result.as_ref().err().map(|e| e.message.as_str()));
        } else if self.move_ticking() {
            self.after_move_tick(result.as_ref().err().map(|e| e.message.as_str()));
        }
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
        // An input-caused tick: also from when its input was found waiting to the tick's end.
        if let Some(waited) = self.input_wait.take().filter(|_| !crashed) {
            if self.deadline.is_some_and(|d| waited + took > d) {
                self.missed_input_deadline(waited + took);
            }
        }
        let ok = result.is_ok();
        match result {
            Ok(()) => {
                self.consecutive = 0;
                self.quarantines_in_a_row = 0;
            }
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
        let Some(timeout) = self.health.timeout() else {
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
        let what = match self.setup.isolation {
            Isolation::Process => "worker process killed",
            _ => "worker thread quarantined (abandoned with its instance)",
        };
        tracing::error!(node = %self.setup.name, "tick hung for more than {} ms: {what}", timeout.as_millis());
        self.fail(CallError {
            kind: CallErrorKind::Error,
            message: format!("tick hung for more than {} ms; {what}", timeout.as_millis()),
        });
        if !self.count_quarantine() && self.breaker.force_open(Instant::now()) {
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

    fn log_transition(&self, state: CircuitState) {
        match state {
            CircuitState::Closed => {
                tracing::info!(node = %self.setup.name, "circuit closed: the restarted node ticks again")
            }
            CircuitState::Open => match self.breaker.retry_at() {
                Some(_) => tracing::warn!(
                    node = %self.setup.name,
                    "circuit open after {} consecutive failures: restarting in {} ms",
                    self.consecutive,
                    self.breaker.current_backoff().as_millis()
                ),
                None => tracing::error!(
                    node = %self.setup.name,
                    "circuit open after {} consecutive failures: the node is no longer ticked (auto_restart is off)",
                    self.consecutive
                ),
            },
            // Half-open is logged as the restart begins; failed by the quarantine cap.
            CircuitState::HalfOpen | CircuitState::Failed => {}
        }
    }

    #[cold]
    fn missed_deadline(&mut self, took: Duration) {
        self.deadline_misses += 1;
        if self.deadline_log.admit(Instant::now()).is_some() {
            tracing::warn!(
                node = %self.setup.name,
                misses = self.deadline_misses,
                "deadline missed: the tick took {:.3} ms, deadline {:.3} ms",
                took.as_secs_f64() * 1e3,
                self.deadline.unwrap_or_default().as_secs_f64() * 1e3
            );
        }
    }

    #[cold]
    fn missed_input_deadline(&mut self, since_input: Duration) {
        self.input_deadline_misses += 1;
        if self.deadline_log.admit(Instant::now()).is_some() {
            tracing::warn!(
                node = %self.setup.name,
                misses = self.input_deadline_misses,
                "input deadline missed: the tick ended {:.3} ms after its input was found waiting, deadline {:.3} ms",
                since_input.as_secs_f64() * 1e3,
                self.deadline.unwrap_or_default().as_secs_f64() * 1e3
            );
        }
    }

    #[cold]
    fn fail(&mut self, e: CallError) {
        self.failures += 1;
        self.consecutive += 1;
        if let Some(more) = self.failure_log.admit(Instant::now()) {
            let what = if e.kind == CallErrorKind::Panic {
                "panicked"
            } else {
                "failed"
            };
            if more > 0 {
                tracing::warn!(node = %self.setup.name, total = self.failures, "tick {what}: {e} (and {more} more failures in the last second)");
            } else {
                tracing::warn!(node = %self.setup.name, total = self.failures, "tick {what}: {e}");
            }
        }
        self.last_error = Some(e.message);
    }

    pub(super) fn stats(&mut self, tick_rate: f64, elapsed: Duration) -> NodeStats {
        let (min, avg, max) = self.times.micros();
        let io = self.exec.io_snapshot();
        // Also the backstop of the inputs' watches: a Python node's topics that appeared since.
        self.adopt_inputs(&io.inputs, Instant::now());
        let (sent, received, dropped) = io.totals;
        let (sent, received, dropped) = (
            sent + self.moved_counts.0,
            received + self.moved_counts.1,
            dropped + self.moved_counts.2,
        );
        let secs = elapsed.as_secs_f64();
        NodeStats {
            name: self.setup.name.clone(),
            total_ticks: self.ticks,
            total_failures: self.failures,
            consecutive_failures: self.consecutive,
            priority: self.setup.priority,
            tick_rate: self.setup.rate_hz.unwrap_or(tick_rate),
            logging_enabled: self.setup.logging,
            tick_duration_min_us: min,
            tick_duration_avg_us: avg,
            tick_duration_max_us: max,
            tick_duration_p99_us: self.times.quantile_us(0.99),
            actual_rate_hz: if secs > 0.0 { self.ticks as f64 / secs } else { 0.0 },
            last_error: self.last_error.clone(),
            circuit_state: self.breaker.state(),
            restarts: self.restarts,
            quarantined_threads: self.exec.abandoned_threads() as u64,
            generation: 1 + self.reload.reloads,
            reloads: self.reload.reloads,
            reload_failures: self.reload.failures,
            last_reload_error: self.reload.last_error.clone(),
            pinned_libraries: self.reload.pinned(&self.setup.name),
            deadline_ms: self.deadline.map(|d| d.as_secs_f64() * 1e3),
            deadline_misses: self.deadline_misses,
            input_deadline_misses: self.input_deadline_misses,
            watchdog_enabled: self.health.timeout().is_some(),
            watchdog_timeout_ms: self.health.timeout().map_or(0, |t| t.as_millis() as u64),
            watchdog_expired: self.health.expired.load(std::sync::atomic::Ordering::Relaxed),
            messages_sent: sent,
            messages_received: received,
            dropped,
            node_type: self.setup.type_name().to_owned(),
            plugin: self.setup.origin.clone(),
            isolation: self.setup.isolation,
            topics: io.topics,
            trigger: super::stats::TriggerStat::of(&self.setup.trigger),
            wakeups: self.input.as_ref().map_or(0, |i| i.wakeups),
            input_latency_avg_us: self.input.as_ref().map_or(0.0, |i| i.latency.micros().1),
            input_latency_p99_us: self.input.as_ref().map_or(0.0, |i| i.latency.quantile_us(0.99)),
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
    pub fn new(instance: NodeInstance, setup: NodeSetup) -> BenchNode {
        let epoch = Instant::now();
        let health = Health::new(setup.name.clone(), Some(Duration::from_secs(1)));
        let node = RunningNode::new(
            setup,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Ticks of a node with `rate_hz`, offered a tick every `every` for `run` (input keeps
    /// arriving), as the scheduler asks [`next_due`].
    fn ticks_offered(rate_hz: f64, every: Duration, run: Duration) -> u64 {
        let period = Duration::from_secs_f64(1.0 / rate_hz);
        let start = Instant::now();
        let (mut due, mut ticks, mut t) = (start, 0, start);
        while t < start + run {
            if let Some(next) = next_due(due, period, t) {
                due = next;
                ticks += 1;
            }
            t += every;
        }
        ticks
    }

    #[test]
    fn the_cap_holds_an_input_triggered_node_to_its_rate_whatever_the_tick_rate() {
        let second = Duration::from_secs(1);
        // Input every 100 µs: far faster than a 500 Hz cap, and a cap faster than a 100 Hz
        // scheduler is not rounded down to it.
        let ticks = ticks_offered(500.0, Duration::from_micros(100), second);
        assert!((495..=501).contains(&ticks), "{ticks}");
        // A period shorter than the slack: the schedule runs ahead by the slack, no more.
        let ticks = ticks_offered(10_000.0, Duration::from_micros(10), second);
        assert!((9_990..=10_003).contains(&ticks), "{ticks}");
        // Input slower than the cap is never held back.
        let ticks = ticks_offered(1_000.0, Duration::from_millis(5), second);
        assert_eq!(ticks, 200);
    }

    #[test]
    fn a_node_idle_for_long_does_not_burst_to_catch_up() {
        let period = Duration::from_millis(10);
        let start = Instant::now();
        let mut due = next_due(start, period, start).unwrap();
        assert_eq!(due, start + period);
        assert_eq!(next_due(due, period, start + Duration::from_millis(5)), None);
        // Input again after a second of silence: one tick, then the next a period later.
        let later = start + Duration::from_secs(1);
        due = next_due(due, period, later).unwrap();
        assert_eq!(due, later + period);
        assert_eq!(next_due(due, period, later + Duration::from_millis(9)), None);
        // Within the slack of its due time it ticks (scheduler jitter does not cost a period).
        assert!(next_due(due, period, later + period - DUE_SLACK).is_some());
    }
}
