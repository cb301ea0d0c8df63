//! A live apply on the scheduler thread: the changes a plan ([`crate::apply`]) found that the
//! running nodes can take, applied at a tick boundary. Planning, validation and refusing what
//! cannot be applied happen off this thread; here only the swap runs:
//!
//! - a node's `priority`, `rate_hz` and `deadline_ms`, the scheduler's breaker settings and
//!   `deadline_monitoring`: set in place, the node's counters untouched;
//! - a node's `config`: the node is made again from the same code with the new config, its state
//!   handed over, through hot reload's swap ([`super::reload`]: generation + 1, first-tick
//!   commit or rollback);
//! - the scheduler's `tick_rate` (or preset): from the next cycle.
//!
//! Config swaps start first: if one cannot start, those already started are undone and nothing
//! else changes. A swap that fails later (a worker's `create`, or the new object's first tick)
//! rolls back that node alone, as a failed hot reload does.
//!
//! Owns the [`ApplyOp`] a plan becomes and its application. Does not own planning (see
//! [`crate::apply`]) or the swap itself (see [`super::reload`]).

use super::running::RunningNode;
use crate::manifest::SupervisionSpec;
use crate::reload::prepare::NewCode;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

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
}

/// What a plan asks of the scheduler thread, applied at one tick boundary.
#[derive(Debug)]
pub struct ApplyOp {
    /// Nodes whose priority, rate or deadline changed.
    pub settings: Vec<NodeSettings>,
    /// Nodes whose `config` changed, with the new table.
    pub configs: Vec<(String, toml::Table)>,
    /// The new tick rate, when it changed.
    pub tick_rate: Option<f64>,
    /// The new supervision settings, when a breaker key or `deadline_monitoring` changed.
    pub supervision: Option<SupervisionSpec>,
    /// Where the outcome goes: `Ok` once every change is in place (config swaps started),
    /// or why nothing changed.
    pub reply: Sender<Result<(), String>>,
}

/// The scheduler's side of live apply.
#[derive(Debug)]
pub struct ApplyLink {
    /// Applies planned off the scheduler thread.
    pub ops: Receiver<ApplyOp>,
}

/// What the cycle loop keeps that an apply may change.
pub(super) struct Live {
    pub(super) tick_rate: f64,
    pub(super) supervision: SupervisionSpec,
}

/// Applies `op` at this tick boundary and replies. Returns true when the tick rate changed.
pub(super) fn apply(nodes: &mut [RunningNode], op: ApplyOp, live: &mut Live) -> bool {
    let outcome = apply_op(nodes, &op, live);
    let changed_rate = outcome.is_ok() && op.tick_rate.is_some();
    let _ = op.reply.send(outcome);
    changed_rate
}

fn apply_op(nodes: &mut [RunningNode], op: &ApplyOp, live: &mut Live) -> Result<(), String> {
    // Everything that can fail first: the config swaps, undone together if one cannot start.
    let mut started: Vec<usize> = Vec::new();
    for (name, config) in &op.configs {
        let Some(i) = nodes.iter().position(|n| &n.setup.name == name) else {
            undo(nodes, &started);
            return Err(format!("node `{name}` is not running"));
        };
        let node = &mut nodes[i];
        let code = NewCode {
            plugin: node.setup.plugin.clone(),
            type_index: node.setup.type_index,
            ports: node.setup.plugin.info().node_types[node.setup.type_index]
                .ports
                .iter()
                .map(|p| (p.name.clone(), p.output))
                .collect(),
            python: None,
            config: Some(config.clone()),
        };
        if let Err(why) = node.begin_apply(code) {
            undo(nodes, &started);
            return Err(why);
        }
        started.push(i);
    }
    if let Some(sup) = &op.supervision {
        live.supervision = sup.clone();
        for node in nodes.iter_mut() {
            node.breaker.reconfigure(sup);
            node.set_deadline(node.setup.deadline.filter(|_| sup.deadline_monitoring));
        }
    }
    let mut reorder = false;
    for s in &op.settings {
        let Some(node) = nodes.iter_mut().find(|n| n.setup.name == s.name) else {
            continue;
        };
        reorder |= node.setup.priority != s.priority;
        node.setup.priority = s.priority;
        node.set_rate(s.rate_hz);
        node.setup.deadline = s.deadline;
        node.set_deadline(s.deadline.filter(|_| live.supervision.deadline_monitoring));
    }
    if reorder {
        // Stable: equal priorities keep the order they ran in.
        nodes.sort_by_key(|n| n.setup.priority);
    }
    if let Some(rate) = op.tick_rate {
        live.tick_rate = rate;
    }
    Ok(())
}

fn undo(nodes: &mut [RunningNode], started: &[usize]) {
    for &i in started {
        nodes[i].cancel_apply();
    }
}
