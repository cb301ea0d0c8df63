//! A live apply on the scheduler thread: the changes a plan ([`crate::apply`]) found that the
//! running nodes can take, applied at a tick boundary. Planning, validation and refusing what
//! cannot be applied happen off this thread; here only the swap runs:
//!
//! - a node's `priority`, `rate_hz`, `deadline_ms`, `logging` and `watchdog_ms`, the
//!   scheduler's breaker settings, `deadline_monitoring` and watchdog settings: set in place,
//!   the node's counters untouched;
//! - a node's code (another plugin file or node type, a Python file or class) or `config`:
//!   the node is replaced by its new code (the applier built it, [`ApplyOp::swaps`]), or made
//!   again from the same code with the new config, its state handed over, through hot
//!   reload's swap ([`super::reload`]: generation + 1, first-tick commit or rollback);
//! - a node's `isolation`: the node moves to another executor with its state and its place on
//!   its topics ([`super::moving`], [`ApplyOp::moves`]);
//! - running nodes' ports bound anew ([`Rebind`]);
//! - the scheduler's `tick_rate` (or preset): from the next cycle;
//! - a node added: a `thread` or `process` node arrives created and initialised on its worker
//!   (the applier did that off this thread, [`NewExec`]); an `inline` node is created and
//!   initialised here (its plugin calls belong on this thread), then it is scheduled from this
//!   cycle on, in priority order;
//! - a node removed: `shutdown` and destroyed here, its topic endpoints released with it, its
//!   library handed to the run's [`Reaper`] (unloaded off this thread when no node uses it).
//!
//! Every step that can fail comes first ([`begin`]) — the added inline nodes' `create` and
//! `init`, the re-bound ports, the replacements' start — and if one fails, what was started is
//! undone and nothing else changes. A replacement that comes up on a worker (a `thread` node's
//! new object, a node moving to a worker thread or process) makes the apply [`Pending`]: the
//! scheduler runs on, the replaced nodes held (not ticked), until every replacement is up —
//! then the rest is applied ([`finish`]: nodes removed, added nodes scheduled, settings set)
//! and the replaced nodes tick again — or one fails, and the whole apply is undone
//! ([`abandon`]). Only the new objects' first ticks come after the reply: one that fails rolls
//! that node alone back, as a failed hot reload does, and the applier hears of it
//! ([`Reverted`]).
//!
//! Owns the [`ApplyOp`] a plan becomes and its application. Does not own planning (see
//! [`crate::apply`]) or the swap itself (see [`super::reload`]).

use super::exec::{Exec, Executor, ProcessExec, Rebuild, ThreadExec};
use super::running::RunningNode;
use super::setup::NodeSetup;
use super::Health;
use crate::io::{NodeIo, PortBinding};
use crate::manifest::{Isolation, SupervisionSpec};
use crate::reload::prepare::NewCode;
use crate::reload::Reaper;
use crate::topic::{PortPlan, TopicScope};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How a node added by an apply reaches the scheduler thread.
pub enum NewExec {
    /// To be created and initialised on the scheduler thread, on its bound endpoints.
    Inline {
        /// How to make it.
        rebuild: Box<Rebuild>,
        /// Its endpoints, attached.
        io: Box<NodeIo>,
    },
    /// Created and initialised on its worker thread.
    Thread(Box<ThreadExec>),
    /// Created and initialised in its worker process.
    Process(Box<ProcessExec>),
}

/// A node an apply adds, ready to start.
pub struct NewNode {
    /// The node.
    pub setup: NodeSetup,
    /// A watch of each connected input, by port name (see [`crate::io::NodeIo::input_watches`]),
    /// taken before its endpoints went to its executor.
    pub inputs: Vec<(String, crate::shm::InputWatch)>,
    /// Its watchdog record.
    pub health: Arc<Health>,
    /// Where its calls run.
    pub exec: NewExec,
}

impl std::fmt::Debug for NewNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewNode")
            .field("name", &self.setup.name)
            .finish_non_exhaustive()
    }
}

impl NewNode {
    /// Undoes a node prepared but never started: a worker's node (initialised) is shut down and
    /// destroyed, its worker ended; an inline node's endpoints are released.
    pub fn discard(self) {
        match self.exec {
            NewExec::Inline { io, .. } => drop(io),
            NewExec::Thread(mut t) => {
                let _ = t.shutdown();
            }
            NewExec::Process(mut p) => {
                let _ = p.shutdown();
            }
        }
    }
}

/// A port of a running node bound anew by an apply ([`crate::apply::plan::PortRebind`]).
#[derive(Debug)]
pub struct Rebind {
    /// The node.
    pub node: String,
    /// The port.
    pub port: String,
    /// Its index among the node's ports.
    pub index: usize,
    /// Its new plan.
    pub plan: PortPlan,
    /// The endpoint, attached off the scheduler thread, for an `inline` or `thread` node; a
    /// `process` node's worker attaches its own, and for an input whose topic moved to a new
    /// ring this is a holder on that ring, attached off the scheduler thread too: with the
    /// same queue, it keeps what the publisher writes there until the worker, which may be
    /// busy, has attached its subscriber (which starts at the ring's first message).
    pub binding: Option<PortBinding>,
    /// Its topic moved to a new, larger ring ([`crate::apply::plan::TopicMove`]): an input
    /// drains the old ring first ([`NodeIo::rebind`]).
    pub moved: bool,
}

/// One node's settings after an apply (only for nodes whose settings changed).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSettings {
    /// The node.
    pub name: String,
    /// Its priority.
    pub priority: i64,
    /// Its own rate.
    pub rate_hz: Option<f64>,
    /// Its `deadline_ms`, as the manifest has it.
    pub deadline: Option<Duration>,
    /// Its own `watchdog_ms` (without it, the scheduler's watchdog settings apply).
    pub watchdog: Option<Duration>,
    /// Whether its log lines are shown.
    pub logging: bool,
    /// What makes it tick.
    pub trigger: crate::manifest::Trigger,
    /// Its `timeout_ms` (an input-triggered node).
    pub timeout: Option<Duration>,
}

/// What a plan asks of the scheduler thread, applied at one tick boundary.
#[derive(Debug)]
pub struct ApplyOp {
    /// Nodes whose priority, rate, deadline, watchdog or logging changed.
    pub settings: Vec<NodeSettings>,
    /// Nodes replaced with their state handed over, with their new code: another plugin or
    /// node type, a Python file or class, or the same code with a new `config`
    /// ([`NewCode::config`]).
    pub swaps: Vec<(String, NewCode)>,
    /// The new tick rate, when it changed.
    pub tick_rate: Option<f64>,
    /// The new supervision settings, when a breaker key or `deadline_monitoring` changed.
    pub supervision: Option<SupervisionSpec>,
    /// The scheduler's new `watchdog_enabled` and `watchdog_timeout_ms`, when one changed.
    pub watchdog: Option<(bool, Duration)>,
    /// Nodes added, ready to start (discarded if the apply fails).
    pub added: Vec<NewNode>,
    /// Nodes removed.
    pub removed: Vec<String>,
    /// Ports of running nodes bound anew.
    pub rebinds: Vec<Rebind>,
    /// Nodes moved to another isolation level, with the code they run there (their plugin,
    /// type, `config` or Python source changed too, or the running code).
    pub moves: Vec<(String, Isolation, NewCode)>,
    /// Where the host's topics resolve: to bind re-bound ports back if the apply fails.
    pub scope: Option<TopicScope>,
    /// Where nodes whose change rolls back later are named.
    pub reverted: Reverted,
    /// Where the outcome goes: `Ok` once every change is in place (config swaps started),
    /// or why nothing changed.
    pub reply: Sender<Result<(), String>>,
}

/// The nodes whose change by a live apply was rolled back after the apply replied (a swap's
/// or a move's first tick, a worker that did not come up): the applier reads them before its
/// next plan, so it compares the new manifest with what really runs.
pub type Reverted = Arc<std::sync::Mutex<Vec<String>>>;

/// The scheduler's side of live apply.
#[derive(Debug)]
pub struct ApplyLink {
    /// Applies planned off the scheduler thread.
    pub ops: Receiver<ApplyOp>,
    /// The run's clock origin, set when the scheduler starts: the applier makes added nodes
    /// on it.
    pub epoch: Arc<OnceLock<Instant>>,
    /// Where removed, replaced and moved nodes' libraries go to be unloaded off the scheduler
    /// thread (the run's `horus-unload` thread); without one they are released here.
    pub reaper: Option<Reaper>,
}

/// What the cycle loop keeps that an apply may change.
pub(super) struct Live {
    pub(super) tick_rate: f64,
    pub(super) supervision: SupervisionSpec,
    /// The watchdog's registry: added nodes join it, removed ones leave it.
    pub(super) healths: super::HealthRegistry,
    /// Where an added node's ticks go while the host records.
    pub(super) ticks: Option<crate::record::TickLog>,
}

/// Applies `op` at this tick boundary and replies. Returns true when the tick rate changed.
/// How long an apply may wait for its replacements to come up on their workers (a worker
/// thread or process creating, restoring and initialising a node) before it is abandoned: less
/// than the applier waits for the reply.
const PENDING_LIMIT: Duration = Duration::from_secs(8);

/// An apply whose fallible steps are under way on workers: its replacements (swaps and moves)
/// come up while the scheduler runs on; the rest of it is applied once all of them are up, or
/// all of it is undone if one fails.
pub(super) struct Pending {
    op: ApplyOp,
    added: Vec<RunningNode>,
    rebound: Vec<Unbind>,
    swapped: Vec<String>,
    moved: Vec<String>,
    since: Instant,
}

/// What [`begin`] started: the added nodes (not yet scheduled), how to put the re-bound ports
/// back, and the nodes whose replacements (swaps, moves) are coming up.
type Begun = (Vec<RunningNode>, Vec<Unbind>, Vec<String>, Vec<String>);

/// What became of an apply at this tick boundary.
pub(super) enum Applied {
    /// Done (applied or failed, replied); true when the tick rate changed.
    Done(bool),
    /// Waiting for replacements to come up on their workers.
    Waiting(Box<Pending>),
}

/// Starts `op` at this tick boundary: its fallible steps, then (once its replacements are up,
/// now or in a later cycle, see [`poll`]) the rest.
pub(super) fn apply(
    nodes: &mut Vec<RunningNode>,
    mut op: ApplyOp,
    live: &mut Live,
    link: &ApplyLink,
    epoch: Instant,
) -> Applied {
    match begin(nodes, &mut op, live, link.reaper.as_ref(), epoch) {
        Ok((added, rebound, swapped, moved)) => {
            for node in nodes.iter_mut() {
                if swapped.contains(&node.setup.name) || moved.contains(&node.setup.name) {
                    node.held = true;
                }
            }
            let pending = Box::new(Pending {
                op,
                added,
                rebound,
                swapped,
                moved,
                since: Instant::now(),
            });
            poll(nodes, pending, live, link)
        }
        Err(why) => {
            let _ = op.reply.send(Err(why));
            Applied::Done(false)
        }
    }
}

/// Where a node's replacement is.
enum Coming {
    Up,
    Waiting,
    Failed(String),
}

fn coming(node: &RunningNode, swapped: bool) -> Coming {
    let failed = || {
        Coming::Failed(format!(
            "node `{}`: {}",
            node.setup.name,
            node.reload
                .last_error
                .clone()
                .unwrap_or_else(|| "its replacement did not start".into())
        ))
    };
    if swapped {
        match (node.reload.pending(), node.swapping()) {
            (true, _) => Coming::Up,
            (false, true) => Coming::Waiting,
            (false, false) => failed(),
        }
    } else {
        match (node.move_ticking(), node.moving.is_some()) {
            (true, _) => Coming::Up,
            (false, true) => Coming::Waiting,
            (false, false) => failed(),
        }
    }
}

/// Moves a pending apply on (once per cycle): when every replacement is up, the rest of the apply
/// is applied and the replaced nodes tick again (their first tick commits or rolls back each
/// one); when one failed or [`PENDING_LIMIT`] passed, the whole apply is undone.
pub(super) fn poll(
    nodes: &mut Vec<RunningNode>,
    pending: Box<Pending>,
    live: &mut Live,
    link: &ApplyLink,
) -> Applied {
    let reaper = link.reaper.as_ref();
    let mut state = Coming::Up;
    let names = (pending.swapped.iter().map(|n| (n, true))).chain(pending.moved.iter().map(|n| (n, false)));
    for (name, swapped) in names {
        let Some(node) = nodes.iter().find(|n| &n.setup.name == name) else {
            continue;
        };
        match coming(node, swapped) {
            Coming::Up => {}
            Coming::Waiting => state = Coming::Waiting,
            Coming::Failed(why) => {
                state = Coming::Failed(why);
                break;
            }
        }
    }
    if matches!(state, Coming::Waiting) && pending.since.elapsed() > PENDING_LIMIT {
        state = Coming::Failed(format!(
            "a replacement did not come up on its worker within {} s",
            PENDING_LIMIT.as_secs()
        ));
    }
    match state {
        Coming::Waiting => Applied::Waiting(pending),
        Coming::Failed(why) => {
            abandon(nodes, *pending, reaper, &why);
            Applied::Done(false)
        }
        Coming::Up => {
            let Pending {
                mut op,
                added,
                swapped,
                moved,
                ..
            } = *pending;
            for node in nodes.iter_mut() {
                if swapped.contains(&node.setup.name) || moved.contains(&node.setup.name) {
                    node.held = false;
                    // A replacement that fails its first tick from now on rolls back alone;
                    // the applier hears of it.
                    node.reverts = Some(op.reverted.clone());
                }
            }
            finish(nodes, &mut op, added, live, reaper);
            let _ = op.reply.send(Ok(()));
            Applied::Done(op.tick_rate.is_some())
        }
    }
}

/// Undoes a pending apply: replacements cancelled, ports put back, added nodes shut down; the
/// reply says why.
pub(super) fn abandon(nodes: &mut [RunningNode], pending: Pending, reaper: Option<&Reaper>, why: &str) {
    let Pending {
        op,
        added,
        rebound,
        swapped,
        moved,
        ..
    } = pending;
    for node in nodes.iter_mut() {
        if moved.contains(&node.setup.name) {
            node.cancel_move();
        }
        if swapped.contains(&node.setup.name) {
            node.cancel_apply();
        }
        node.held = false;
    }
    unbind(nodes, rebound, op.scope.as_ref());
    added.into_iter().for_each(|n| retire(n, true, reaper));
    tracing::warn!("apply abandoned, nothing changed: {why}");
    let _ = op.reply.send(Err(why.to_owned()));
}

/// The fallible steps of `op`, in order — the added nodes' start, the re-bound ports (a worker
/// process attaches its own), the replacements' start (swaps, moves) —, undone together if one
/// fails. Returns the added nodes (not yet scheduled), how to put the ports back, and the nodes
/// whose replacements are coming up.
fn begin(
    nodes: &mut [RunningNode],
    op: &mut ApplyOp,
    live: &mut Live,
    reaper: Option<&Reaper>,
    epoch: Instant,
) -> Result<Begun, String> {
    let busy = |name: &str| {
        format!("node `{name}` is in a hot reload, a move or a restart; apply again once it is done")
    };
    let named = op
        .removed
        .iter()
        .chain(op.rebinds.iter().map(|r| &r.node))
        .chain(op.swaps.iter().map(|(n, _)| n))
        .chain(op.moves.iter().map(|(n, _, _)| n));
    for name in named {
        match nodes.iter().find(|n| &n.setup.name == name) {
            None => return Err(format!("node `{name}` is not running")),
            Some(n) if n.swapping() || n.restarting() => return Err(busy(name)),
            Some(_) => {}
        }
    }
    if !op.moves.is_empty() && op.scope.is_none() {
        return Err("this host cannot move nodes".into());
    }
    let mut added: Vec<RunningNode> = Vec::new();
    let mut pending = std::mem::take(&mut op.added).into_iter();
    while let Some(new) = pending.next() {
        match start(new, live, epoch) {
            Ok(node) => added.push(node),
            Err(why) => {
                pending.for_each(NewNode::discard);
                added.into_iter().for_each(|n| retire(n, true, reaper));
                return Err(why);
            }
        }
    }
    let discard = |added: Vec<RunningNode>| added.into_iter().for_each(|n| retire(n, true, reaper));
    let rebound = match rebind(nodes, std::mem::take(&mut op.rebinds), op.scope.as_ref()) {
        Ok(rebound) => rebound,
        Err(why) => {
            discard(added);
            return Err(why);
        }
    };
    let mut swapped: Vec<String> = Vec::new();
    let mut moved: Vec<String> = Vec::new();
    let undo_all = |nodes: &mut [RunningNode], swapped: &[String], moved: &[String]| {
        for node in nodes.iter_mut() {
            if moved.contains(&node.setup.name) {
                node.cancel_move();
            }
            if swapped.contains(&node.setup.name) {
                node.cancel_apply();
            }
        }
    };
    for (name, code) in std::mem::take(&mut op.swaps) {
        let Some(node) = nodes.iter_mut().find(|n| n.setup.name == name) else {
            continue;
        };
        if let Err(why) = node.begin_apply(code, reaper) {
            undo_all(nodes, &swapped, &moved);
            unbind(nodes, rebound, op.scope.as_ref());
            discard(added);
            return Err(why);
        }
        swapped.push(name);
    }
    let wait = Duration::from_secs_f64(0.5 / live.tick_rate);
    for (name, to, code) in std::mem::take(&mut op.moves) {
        let (Some(node), Some(scope)) = (nodes.iter_mut().find(|n| n.setup.name == name), op.scope.clone())
        else {
            continue;
        };
        let wait = node.health.timeout().map_or(wait, |t| t.min(wait));
        if let Err(why) = node.begin_move(to, code, scope, wait, reaper.cloned()) {
            undo_all(nodes, &swapped, &moved);
            unbind(nodes, rebound, op.scope.as_ref());
            discard(added);
            return Err(why);
        }
        moved.push(name);
    }
    Ok((added, rebound, swapped, moved))
}

/// Starts an added node: an inline one is created and initialised here; a worker's already is.
fn start(new: NewNode, live: &Live, epoch: Instant) -> Result<RunningNode, String> {
    let NewNode {
        setup,
        health,
        exec,
        inputs,
    } = new;
    let name = setup.name.clone();
    let inline = matches!(exec, NewExec::Inline { .. });
    let exec = match exec {
        NewExec::Inline { rebuild, io } => match rebuild.instance(*io) {
            Ok(instance) => Exec::Inline(instance),
            Err(e) => return Err(format!("node `{name}` failed to start (create): {e}")),
        },
        NewExec::Thread(t) => Exec::Thread(t),
        NewExec::Process(p) => Exec::Process(p),
    };
    let deadline = setup.deadline.filter(|_| live.supervision.deadline_monitoring);
    let mut node = RunningNode::new(setup, exec, health, deadline, &live.supervision, epoch);
    node.tick_log = live.ticks.as_ref().map(|t| t.for_node(&name));
    node.inputs = inputs;
    node.refresh_trigger(Instant::now());
    if node.setup.isolation == Isolation::Process {
        // Created and initialised on its worker already: watch its inputs now.
        node.sync_inputs(Instant::now());
    }
    if inline {
        node.health.enter(epoch.elapsed());
        let init = node.exec.init();
        node.health.leave();
        if let Err(e) = init {
            // Never started: destroyed without `shutdown`.
            return Err(format!("node `{name}` failed to start (init): {e}"));
        }
    }
    Ok(node)
}

impl RunningNode {
    /// Says that the change a live apply made to this node was rolled back.
    pub(super) fn apply_reverted(&self) {
        if let Some(reverts) = &self.reverts {
            reverts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(self.setup.name.clone());
        }
    }

    /// Binds ports of this node anew (see [`Rebind`]); a restart binds the new plans too.
    fn rebind(&mut self, ports: Vec<Rebind>) -> Result<(), String> {
        let plans: Vec<(String, usize, PortPlan, bool)> = ports
            .iter()
            .map(|r| (r.port.clone(), r.index, r.plan.clone(), r.moved))
            .collect();
        if let Exec::Process(p) = &mut self.exec {
            let holders = ports.into_iter().filter_map(|r| r.binding).collect();
            p.rebind(&plans, holders)?;
            // The worker's new endpoints (a busy worker binds them before its next tick).
            self.sync_inputs(Instant::now());
            self.inputs_stale = true;
        } else {
            // An input trigger watches the new endpoints (before they go to the executor); an
            // input whose topic moved to a new ring keeps the old ring's watch while it drains
            // it (the executor's reports say when that ends).
            for r in &ports {
                if !r.moved {
                    self.inputs.retain(|(name, _)| *name != r.port);
                }
                if let Some(w) = r
                    .binding
                    .as_ref()
                    .and_then(|b| crate::io::watch_input(&self.setup.name, &r.port, b))
                {
                    self.inputs.push((r.port.clone(), w));
                }
            }
            if self.input.is_some() {
                self.refresh_trigger(Instant::now());
            }
            self.inputs_stale = true;
            let bound = ports
                .into_iter()
                .map(|r| match r.binding {
                    Some(binding) => Ok((r.port, r.index, r.plan, binding, r.moved)),
                    None => Err(format!("port `{}` has no endpoint to bind", r.port)),
                })
                .collect::<Result<Vec<_>, String>>()?;
            match &mut self.exec {
                Exec::Inline(i) => {
                    for (port, _, _, binding, moved) in bound {
                        i.io_mut().rebind(&port, binding, moved);
                    }
                }
                Exec::Thread(t) => t.rebind(bound),
                Exec::Process(_) => {}
            }
        }
        for (_, index, plan, _) in plans {
            if let Some(p) = self.setup.ports.get_mut(index) {
                *p = plan;
            }
        }
        Ok(())
    }
}

/// Shuts `node` down (unless it never started) and destroys it — its endpoints released, a
/// worker ended — and hands its library to `reaper`.
fn retire(mut node: RunningNode, shutdown: bool, reaper: Option<&Reaper>) {
    if shutdown {
        node.health.enter(node.epoch.elapsed());
        let result = node.exec.shutdown();
        node.health.leave();
        if let Err(e) = result {
            tracing::warn!(node = %node.setup.name, "shutdown failed: {e}");
        }
    }
    let name = node.setup.name.clone();
    let plugin = node.setup.plugin.clone();
    drop(node);
    match reaper {
        Some(reaper) => reaper.retire(&name, plugin, None),
        None => drop(plugin),
    }
}

/// The rest of an apply, once every step that can fail has succeeded: nodes removed, added
/// nodes scheduled, settings set. Nothing here fails.
fn finish(
    nodes: &mut Vec<RunningNode>,
    op: &mut ApplyOp,
    added: Vec<RunningNode>,
    live: &mut Live,
    reaper: Option<&Reaper>,
) {
    for name in &op.removed {
        if let Some(i) = nodes.iter().position(|n| &n.setup.name == name) {
            let node = nodes.remove(i);
            live.healths
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|h| !Arc::ptr_eq(h, &node.health));
            tracing::info!(node = %name, ticks = node.total_ticks(), "apply: node removed (shut down and destroyed)");
            retire(node, true, reaper);
        }
    }
    let reorder_added = !added.is_empty();
    let now = Instant::now();
    for mut node in added {
        node.next_due = now;
        live.healths
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(node.health.clone());
        tracing::info!(node = %node.setup.name, node_type = %node.setup.type_name(), isolation = node.setup.isolation.name(), "apply: node added and started");
        nodes.push(node);
    }
    if let Some(sup) = &op.supervision {
        live.supervision = sup.clone();
        for node in nodes.iter_mut() {
            node.breaker.reconfigure(sup);
            node.set_deadline(node.setup.deadline.filter(|_| sup.deadline_monitoring));
        }
    }
    if let Some((enabled, timeout)) = op.watchdog {
        live.supervision.watchdog_enabled = enabled;
        live.supervision.watchdog_timeout = timeout;
        for node in nodes.iter_mut() {
            let own = node.setup.watchdog;
            node.set_watchdog(own, &live.supervision);
        }
    }
    let mut reorder = reorder_added;
    for s in &op.settings {
        let Some(node) = nodes.iter_mut().find(|n| n.setup.name == s.name) else {
            continue;
        };
        reorder |= node.setup.priority != s.priority;
        node.setup.priority = s.priority;
        node.set_rate(s.rate_hz);
        node.setup.deadline = s.deadline;
        node.set_deadline(s.deadline.filter(|_| live.supervision.deadline_monitoring));
        if node.setup.watchdog != s.watchdog {
            node.set_watchdog(s.watchdog, &live.supervision);
        }
        if node.setup.logging != s.logging {
            node.setup.logging = s.logging;
            node.exec.set_logging(s.logging);
        }
        if node.setup.trigger != s.trigger || node.setup.timeout != s.timeout {
            node.set_trigger(s.trigger.clone(), s.timeout, Instant::now());
        }
    }
    if reorder {
        // Stable: equal priorities keep the order they ran in.
        nodes.sort_by_key(|n| n.setup.priority);
    }
    if let Some(rate) = op.tick_rate {
        live.tick_rate = rate;
    }
}

/// What a port was bound to before an apply re-bound it: to put it back if the apply fails.
struct Unbind {
    node: String,
    port: String,
    index: usize,
    plan: PortPlan,
}

/// Re-binds the ports of `rebinds`: a `process` node's first, in its worker (now, if it is
/// idle: the one step that can fail, in which case those done are put back), then an inline
/// node's here and a `thread` node's on its worker before its next call; each node's inputs
/// before its outputs. Returns how to undo them.
///
/// A topic moved to a new ring loses nothing whatever the order its endpoints switch in:
/// every subscriber of the new ring was attached (or held for a worker) before its publisher
/// could write there, and each input drains the old ring before it reads the new one.
fn rebind(
    nodes: &mut [RunningNode],
    rebinds: Vec<Rebind>,
    scope: Option<&TopicScope>,
) -> Result<Vec<Unbind>, String> {
    let mut done: Vec<Unbind> = Vec::new();
    let mut by_node: Vec<(usize, Vec<Rebind>)> = Vec::new();
    for r in rebinds {
        let Some(i) = nodes.iter().position(|n| n.setup.name == r.node) else {
            continue;
        };
        match by_node.iter_mut().find(|(j, _)| *j == i) {
            Some((_, v)) => v.push(r),
            None => by_node.push((i, vec![r])),
        }
    }
    by_node.sort_by_key(|(i, _)| !matches!(nodes[*i].exec, Exec::Process(_)));
    for (_, ports) in &mut by_node {
        ports.sort_by_key(|r| matches!(r.plan, PortPlan::Output { .. }));
    }
    for (i, ports) in by_node {
        let node = &mut nodes[i];
        let undo: Vec<Unbind> = ports
            .iter()
            .filter_map(|r| {
                Some(Unbind {
                    node: r.node.clone(),
                    port: r.port.clone(),
                    index: r.index,
                    plan: node.setup.ports.get(r.index)?.clone(),
                })
            })
            .collect();
        if let Err(why) = node.rebind(ports) {
            unbind(nodes, done, scope);
            return Err(format!("node `{}`: {why}", nodes[i].setup.name));
        }
        done.extend(undo);
    }
    Ok(done)
}

/// Puts re-bound ports back as they were (an apply that failed after [`rebind`]); an input
/// goes back onto its old ring where it stopped reading. A topic moved to a new ring goes
/// back to its old one, which is still named and attached: its inputs drain it, and the
/// `process` nodes' endpoints are on it.
fn unbind(nodes: &mut [RunningNode], undo: Vec<Unbind>, scope: Option<&TopicScope>) {
    for u in undo.into_iter().rev() {
        let Some(node) = nodes.iter_mut().find(|n| n.setup.name == u.node) else {
            continue;
        };
        let binding = if matches!(node.exec, Exec::Process(_)) {
            None
        } else {
            let Some(scope) = scope else {
                tracing::error!(node = %u.node, port = %u.port, "apply: cannot bind the port back to its topic: no scope");
                continue;
            };
            match scope.bind(std::slice::from_ref(&u.plan)) {
                Ok(mut b) => b.pop(),
                Err((_, e)) => {
                    tracing::error!(node = %u.node, port = %u.port, "apply: cannot bind the port back to its topic: {e}");
                    continue;
                }
            }
        };
        let back = Rebind {
            node: u.node.clone(),
            port: u.port,
            index: u.index,
            plan: u.plan,
            binding,
            moved: false,
        };
        if let Err(e) = node.rebind(vec![back]) {
            tracing::error!(node = %u.node, "apply: cannot put a port back: {e}");
        }
    }
}
