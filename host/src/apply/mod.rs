//! Applying a changed manifest to a running host (issue 16, first slice): `horus run --watch`
//! when the manifest file changes, and `horus apply <manifest>` over the control socket.
//!
//! Off the scheduler thread (the `horus-control` thread, or `horus-apply` for `--watch`), an
//! [`Applier`] validates the new manifest exactly as `horus check` does (any error: nothing
//! changes, the errors are `horus check`'s), computes the difference ([`plan`]), refuses what
//! this version cannot apply live ([`plan::Plan::incompatible`], [`plan::Plan::refusal`]:
//! nothing changes), builds the new code of each node it replaces (its plugin, node type,
//! Python source or config changed: a [`NewCode`] from the new graph), prepares the nodes it
//! adds (their plugin — the running copy when a running node uses the same file —,
//! their ports attached to the running host's topics, and a `thread` or `process` node created
//! and initialised on its worker; if one fails, those prepared are undone and nothing changes),
//! and hands the rest to the scheduler thread as one [`ApplyOp`], which swaps it in at a tick
//! boundary ([`crate::scheduler`]'s `apply`).
//!
//! Owns validation order, the running manifest's [`plan::Snapshot`] and the outcome of each
//! apply ([`Outcome`]). Does not own the difference's rules ([`plan`]), the swap (the
//! scheduler) or the socket ([`crate::control`]).

pub mod plan;

use crate::graph::GraphNode;
use crate::manifest::{Isolation, NodeSpec, SupervisionSpec};
use crate::reload::prepare::NewCode;
use crate::scheduler::{
    ApplyOp, Executor, Health, NewExec, NewNode, NodeSettings, ProcessExec, Rebind, Rebuild, ThreadExec,
};
use crate::topic::TopicScope;
use plan::{NodeChange, Snapshot};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long an apply waits for the scheduler thread to reach a tick boundary.
const SCHEDULER_WAIT: Duration = Duration::from_secs(10);

/// What became of one apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Applied; the summary.
    Applied(String),
    /// `--dry-run`: the plan, not applied.
    Planned(String),
    /// The manifest does not pass `horus check`: its diagnostics. Nothing changed.
    Invalid(String),
    /// A change this version cannot apply live (the summary, then why). Nothing changed.
    Refused(String),
    /// The scheduler could not apply it (a node's new config failed at once, the host is
    /// stopping). Nothing changed.
    Failed(String),
}

impl Outcome {
    /// `horus apply`'s exit code: 0 applied or planned, 2 invalid or refused, 1 failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Applied(_) | Outcome::Planned(_) => 0,
            Outcome::Invalid(_) | Outcome::Refused(_) => 2,
            Outcome::Failed(_) => 1,
        }
    }

    /// The text `horus apply` prints and the host logs.
    pub fn text(&self) -> &str {
        match self {
            Outcome::Applied(t)
            | Outcome::Planned(t)
            | Outcome::Invalid(t)
            | Outcome::Refused(t)
            | Outcome::Failed(t) => t,
        }
    }

    /// The protocol's name of the outcome.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Applied(_) => "applied",
            Outcome::Planned(_) => "planned",
            Outcome::Invalid(_) => "invalid",
            Outcome::Refused(_) => "refused",
            Outcome::Failed(_) => "failed",
        }
    }

    /// The outcome of its protocol name and text.
    pub fn from_kind(kind: &str, text: String) -> Outcome {
        match kind {
            "applied" => Outcome::Applied(text),
            "planned" => Outcome::Planned(text),
            "invalid" => Outcome::Invalid(text),
            "refused" => Outcome::Refused(text),
            _ => Outcome::Failed(text),
        }
    }
}

/// The host's side of live apply: what runs, and the way to the scheduler thread.
#[derive(Debug)]
pub struct Applier {
    /// The manifest's absolute path.
    path: PathBuf,
    running: Snapshot,
    /// The `horus` binary, to open plugins in a child first as `horus check` does.
    inspector: Option<PathBuf>,
    /// The libraries the host runs: unchanged files are not inspected or opened again.
    resident: crate::graph::Resident,
    ops: Sender<ApplyOp>,
    /// Where the running host's topics resolve, and its clock origin (set once the scheduler
    /// runs): what added nodes are made on. `None`: nodes cannot be added.
    runtime: Option<(TopicScope, Arc<OnceLock<Instant>>)>,
    /// Nodes whose applied change the scheduler rolled back later (see
    /// [`crate::scheduler::Reverted`]).
    reverted: crate::scheduler::Reverted,
    /// Each node changed by an apply, as it was before: what it runs again when that change
    /// rolls back.
    before: Vec<(NodeSpec, plan::Resolved)>,
    /// Hot reload's thread, when the host has one (`--watch`, or `hot_reload = true` at
    /// start): where the nodes to watch go after an apply changed them.
    watch: Option<WatchLink>,
    /// The host's network bridges (feature `network`): an apply opens and closes hubs and
    /// topic bridges with them ([`plan::NetChanges`]).
    #[cfg(feature = "network")]
    bridges: Option<SharedBridges>,
}

/// The host's network bridges, shared by the run (its end) and the applier.
#[cfg(feature = "network")]
pub type SharedBridges = Arc<std::sync::Mutex<crate::net::bridge::Bridges>>;

/// The applier's way to hot reload's thread ([`crate::reload::Reloader::updates`]).
#[derive(Debug)]
struct WatchLink {
    updates: Sender<crate::reload::WatchSet>,
    /// Started with `--watch`: plugin files are watched whatever `hot_reload` says.
    forced: bool,
}

impl Applier {
    /// The applier of a host running `graph` from the manifest at `path`.
    pub fn new(
        graph: &crate::graph::Graph,
        path: &Path,
        inspector: Option<PathBuf>,
        ops: Sender<ApplyOp>,
    ) -> Applier {
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut running = Snapshot::of(graph);
        // Read again from its absolute path, so its paths compare with a new version's.
        if let Ok(manifest) = crate::manifest::load(&path) {
            if manifest.nodes.len() == running.nodes.len() {
                running.manifest = manifest;
            }
        }
        let mut resident = crate::graph::Resident::default();
        resident.remember(&graph.plugins);
        Applier {
            path,
            running,
            inspector,
            resident,
            ops,
            runtime: None,
            reverted: Default::default(),
            before: Vec::new(),
            watch: None,
            #[cfg(feature = "network")]
            bridges: None,
        }
    }

    /// The applier of a host whose network bridges are `bridges`: an apply changes them.
    #[cfg(feature = "network")]
    pub fn bridging(&mut self, bridges: SharedBridges) {
        self.bridges = Some(bridges);
    }

    /// The applier of a host whose hot reload runs (`forced`: started with `--watch`): an
    /// apply that adds, removes or changes nodes, their `build`/`watch` keys or `hot_reload`
    /// sends the new set of nodes to watch to `updates`.
    pub fn watching(&mut self, updates: Sender<crate::reload::WatchSet>, forced: bool) {
        self.watch = Some(WatchLink { updates, forced });
    }

    /// The applier of a running host whose topics resolve in `scope` and whose scheduler sets
    /// `epoch` when it starts: it can add nodes.
    pub fn running_in(mut self, scope: TopicScope, epoch: Arc<OnceLock<Instant>>) -> Applier {
        self.runtime = Some((scope, epoch));
        self
    }

    /// The manifest it runs, absolute.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Validates the manifest at `path` (the host's own, as it is now on disk), plans and —
    /// unless `dry_run` — applies it.
    pub fn apply(&mut self, path: &Path, dry_run: bool) -> Outcome {
        let graph = match crate::run::check_resident(path, self.inspector.as_deref(), &self.resident) {
            Ok(graph) => graph,
            Err(e) => {
                return Outcome::Invalid(format!(
                    "{}\napply: the manifest is invalid; nothing changed",
                    e.to_string().trim_end()
                ))
            }
        };
        self.take_reverts();
        let mut new = Snapshot::of(&graph);
        // The interpreter a Python node started stays the process's one.
        new.interpreter = self.running.interpreter.clone().or(new.interpreter);
        self.resident.remember(&graph.plugins);
        let plan = plan::plan(&self.running, &new);
        let summary = plan.summary();
        if let Some(why) = plan.incompatible(&self.running, &new).or_else(|| plan.refusal()) {
            return Outcome::Refused(format!("{summary}\n{why}"));
        }
        if plan.hot_reload == Some(true) && self.watch.is_none() {
            return Outcome::Refused(format!(
                "{summary}\napply refused: turning `hot_reload` on in a host started without it or \
                 `--watch` is not supported: its hot-reload thread starts with the host; restart \
                 the host, or run it with `--watch`"
            ));
        }
        if dry_run {
            return Outcome::Planned(format!("{summary} (dry run: nothing applied)"));
        }
        if plan.is_empty() {
            return Outcome::Applied(summary);
        }
        // The network's part first: opening a hub is what most often fails (its address).
        let bridges = match self.stage_bridges(&plan) {
            Ok(staged) => staged,
            Err(BridgeFailure::Refused(why)) => return Outcome::Refused(format!("{summary}\n{why}")),
            Err(BridgeFailure::Failed(why)) => {
                return Outcome::Failed(format!("{summary}\napply failed, nothing changed: {why}"))
            }
        };
        let rebinds = match self.bind(&plan) {
            Ok(rebinds) => rebinds,
            Err(why) => return Outcome::Failed(format!("{summary}\napply failed, nothing changed: {why}")),
        };
        let watch_set = self.watch_set(&plan, &graph);
        // Added nodes bind the private topics by the names they run under (a topic moved now
        // or by an earlier apply).
        let mut graph = graph;
        for node in &mut graph.nodes {
            plan.rename(&mut node.ports);
        }
        let (swaps, moves) = swaps(&plan, &graph);
        // The plugins the check opened that no added or replaced node uses are released when
        // `graph` goes.
        let added = match self.prepare(&plan, graph) {
            Ok(added) => added,
            Err(why) => return Outcome::Failed(format!("{summary}\napply failed, nothing changed: {why}")),
        };
        let (reply, replied) = std::sync::mpsc::channel();
        let mut op = op(&plan, &new, reply);
        op.added = added;
        op.swaps = swaps;
        op.moves = moves;
        op.removed = plan.removed.clone();
        op.rebinds = rebinds;
        op.reverted = self.reverted.clone();
        op.scope = self.runtime.as_ref().map(|(scope, _)| scope.clone());
        if self.ops.send(op).is_err() {
            return Outcome::Failed("apply failed: the scheduler is not running; nothing changed".into());
        }
        match replied.recv_timeout(SCHEDULER_WAIT) {
            Ok(Ok(())) => {
                self.commit_bridges(bridges);
                for d in &plan.changed {
                    if let Some(i) = self.running.manifest.nodes.iter().position(|n| n.name == d.name) {
                        let was = (
                            self.running.manifest.nodes[i].clone(),
                            self.running.nodes[i].clone(),
                        );
                        self.before.retain(|(n, _)| n.name != d.name);
                        self.before.push(was);
                    }
                }
                self.running = plan.as_applied(new);
                if let (Some(link), Some(set)) = (&self.watch, watch_set) {
                    let _ = link.updates.send(set);
                }
                Outcome::Applied(summary)
            }
            Ok(Err(why)) => Outcome::Failed(format!("{summary}\napply failed, nothing changed: {why}")),
            Err(_) => Outcome::Failed(format!(
                "{summary}\napply failed: the scheduler did not reach a tick boundary within {} s \
                 (a hung inline node?)",
                SCHEDULER_WAIT.as_secs()
            )),
        }
    }
}

/// Why the bridges could not follow an apply (it is abandoned, nothing changed).
enum BridgeFailure {
    /// A change running bridges cannot make (exit 2).
    Refused(String),
    /// Opening a hub or a ring failed (exit 1).
    #[cfg_attr(
        not(feature = "network"),
        expect(dead_code, reason = "no bridges to open without the network feature")
    )]
    Failed(String),
}

/// An apply's new bridges, opened and waiting for the scheduler's answer; dropped uncommitted,
/// they are undone.
#[cfg(feature = "network")]
type StagedBridges = Option<crate::net::bridge::Staged>;
#[cfg(not(feature = "network"))]
type StagedBridges = Option<std::convert::Infallible>;

impl Applier {
    /// Opens the hubs and topic bridges `plan` adds, next to the running ones.
    #[cfg(feature = "network")]
    fn stage_bridges(&self, plan: &plan::Plan) -> Result<StagedBridges, BridgeFailure> {
        if plan.net.is_empty() {
            return Ok(None);
        }
        let Some(bridges) = &self.bridges else {
            return Err(BridgeFailure::Failed(
                "this host cannot change its network bridges".into(),
            ));
        };
        let bridges = bridges.lock().unwrap_or_else(|p| p.into_inner());
        match bridges.stage(&plan.net) {
            Ok(staged) => Ok(Some(staged)),
            Err(e @ crate::net::bridge::BridgeError::Live(_)) => {
                Err(BridgeFailure::Refused(format!("apply refused: {e}")))
            }
            Err(e) => Err(BridgeFailure::Failed(e.to_string())),
        }
    }

    /// Without the `network` feature no manifest has a tcp hub (validation refuses them).
    #[cfg(not(feature = "network"))]
    fn stage_bridges(&self, plan: &plan::Plan) -> Result<StagedBridges, BridgeFailure> {
        match plan.net.is_empty() {
            true => Ok(None),
            false => Err(BridgeFailure::Refused(
                "apply refused: tcp hubs need a horus built with the `network` feature".into(),
            )),
        }
    }

    /// Keeps the staged bridges and stops those the apply removed: the scheduler applied it.
    #[cfg(feature = "network")]
    fn commit_bridges(&self, staged: StagedBridges) {
        if let (Some(staged), Some(bridges)) = (staged, &self.bridges) {
            bridges.lock().unwrap_or_else(|p| p.into_inner()).commit(staged);
        }
    }

    #[cfg(not(feature = "network"))]
    fn commit_bridges(&self, _staged: StagedBridges) {}

    /// Puts back, in what it compares with, the nodes whose applied change rolled back since
    /// the last apply: they run as they were before it.
    fn take_reverts(&mut self) {
        let names = std::mem::take(&mut *self.reverted.lock().unwrap_or_else(|p| p.into_inner()));
        for name in names {
            let Some((spec, resolved)) = self.before.iter().find(|(n, _)| n.name == name).cloned() else {
                continue;
            };
            if let Some(i) = self.running.manifest.nodes.iter().position(|n| n.name == name) {
                tracing::info!(node = %name, "apply: the node's last applied change rolled back; it runs as before it");
                self.running.manifest.nodes[i] = spec;
                self.running.nodes[i] = resolved;
            }
        }
    }

    /// Attaches the endpoints of the running `inline` and `thread` nodes' ports that `plan`
    /// binds anew (a `process` node's worker attaches its own): all of them, or none and why.
    ///
    /// A topic moved to a new ring ([`plan::TopicMove`]) is made here, off the scheduler
    /// thread, by its first endpoint (nothing slow or fallible, such as reserving its memory,
    /// runs at the tick boundary); its subscribers are attached before its publisher, and
    /// for a `process` node's input a holder with the same queue, which keeps the messages for
    /// the worker's subscriber until the worker has attached it. A failure drops what was
    /// attached: the new ring goes with its endpoints.
    fn bind(&self, plan: &plan::Plan) -> Result<Vec<Rebind>, String> {
        if plan.rebinds.is_empty() {
            return Ok(Vec::new());
        }
        let Some((scope, _)) = &self.runtime else {
            return Err("this host cannot re-bind ports".into());
        };
        let isolation = |node: &str| {
            self.running
                .manifest
                .nodes
                .iter()
                .find(|n| n.name == node)
                .map(|n| n.isolation)
        };
        let mut ordered: Vec<&plan::PortRebind> = plan.rebinds.iter().collect();
        ordered.sort_by_key(|r| matches!(r.plan, crate::topic::PortPlan::Output { .. }));
        let mut out = Vec::with_capacity(ordered.len());
        for r in ordered {
            let process = isolation(&r.node) == Some(Isolation::Process);
            let input = matches!(r.plan, crate::topic::PortPlan::Input { .. });
            let binding = if process && !(r.moved && input) {
                None
            } else {
                let mut bound = scope.bind(std::slice::from_ref(&r.plan)).map_err(|(_, e)| {
                    format!(
                        "node `{}`, port `{}`: cannot attach it to its new topic: {e}",
                        r.node, r.port
                    )
                })?;
                bound.pop()
            };
            out.push(Rebind {
                node: r.node.clone(),
                port: r.port.clone(),
                index: r.index,
                plan: r.plan.clone(),
                binding,
                moved: r.moved,
            });
        }
        Ok(out)
    }

    /// What hot reload watches once `plan` is applied, when that differs from what it
    /// watches now (nodes added or removed, a node's plugin, type or Python file, `build`/`watch`
    /// keys, a `config` its new builds must accept, `hot_reload`); `None` when it does not or
    /// the host has no hot reload.
    fn watch_set(&self, plan: &plan::Plan, graph: &crate::graph::Graph) -> Option<crate::reload::WatchSet> {
        let link = self.watch.as_ref()?;
        let touched = !plan.added.is_empty()
            || !plan.removed.is_empty()
            || plan.hot_reload.is_some()
            || (plan.changed.iter().flat_map(|d| &d.changes)).any(|c| {
                matches!(
                    c,
                    NodeChange::Build
                        | NodeChange::Config
                        | NodeChange::Plugin
                        | NodeChange::Type(..)
                        | NodeChange::Python
                )
            });
        if !touched {
            return None;
        }
        if !(link.forced || graph.manifest.scheduler.hot_reload) {
            return Some(crate::reload::WatchSet::default());
        }
        let files = crate::run::plugin_files(graph);
        Some(crate::reload::WatchSet {
            watched: crate::run::watched_nodes(graph),
            // The check planned them already (an error there made the manifest invalid).
            builds: crate::reload::build::plan(&graph.manifest, &files).unwrap_or_default(),
        })
    }

    /// True when a running Python node's file is `file`.
    fn runs_file(&self, file: Option<&Path>) -> bool {
        let Some(file) = file else {
            return false;
        };
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let file = canonical(file);
        self.running.manifest.nodes.iter().any(|n| match &n.code {
            crate::manifest::NodeCode::Python(py) => canonical(&py.file.value) == file,
            crate::manifest::NodeCode::Plugin(_) => false,
        })
    }

    /// Makes the nodes `plan` adds, from `graph` (the new manifest's): ready to start, or none
    /// (those made undone) and why.
    fn prepare(&self, plan: &plan::Plan, graph: crate::graph::Graph) -> Result<Vec<NewNode>, String> {
        if plan.added.is_empty() {
            return Ok(Vec::new());
        }
        let Some((scope, epoch)) = &self.runtime else {
            return Err("this host cannot add nodes".into());
        };
        let Some(&epoch) = epoch.get() else {
            return Err("the scheduler has not started yet".into());
        };
        let spec = &graph.manifest.scheduler;
        let period = Duration::from_secs_f64(1.0 / spec.tick_rate);
        let supervision = spec.supervision.clone();
        let mut ready: Vec<NewNode> = Vec::new();
        for node in graph.nodes {
            if !plan.added.contains(&node.spec.name) {
                continue;
            }
            match self.prepare_one(node, scope, epoch, period, &supervision) {
                Ok(new) => ready.push(new),
                Err(why) => {
                    ready.into_iter().for_each(NewNode::discard);
                    return Err(why);
                }
            }
        }
        Ok(ready)
    }

    /// One added node (its plugin the running copy when its file is unchanged: the check took it
    /// from `resident`), its ports attached, and — on a
    /// worker — created and initialised.
    fn prepare_one(
        &self,
        node: GraphNode,
        scope: &TopicScope,
        epoch: Instant,
        period: Duration,
        supervision: &SupervisionSpec,
    ) -> Result<NewNode, String> {
        let name = node.spec.name.clone();
        let bindings = scope.bind(&node.ports).map_err(|(port, e)| {
            format!(
                "node `{name}`, port `{}`: cannot attach it to its topic: {e}",
                node.port_names[port]
            )
        })?;
        let io = crate::io::NodeIo::new(
            name.clone(),
            node.spec.logging,
            node.spec.config.clone(),
            node.port_names.clone(),
            bindings,
            epoch,
        );
        let setup = node.setup();
        let timeout = setup.watchdog.or(supervision
            .watchdog_enabled
            .then_some(supervision.watchdog_timeout));
        let health = Health::new(name.clone(), timeout);
        // A Python file no running node uses is imported afresh: the loader's module of it, if
        // any, is that of a node removed before (the file may have changed since).
        let python = match &setup.python {
            Some(source) if !self.runs_file(source.file()) => Some(source.fresh_import()),
            other => other.clone(),
        };
        let rebuild = Rebuild {
            plugin: setup.plugin.clone(),
            type_index: setup.type_index,
            python,
            name: name.clone(),
            logging: setup.logging,
            config: setup.config.clone(),
            ports: setup.ports.clone(),
            port_names: setup.port_names.clone(),
            scope: scope.clone(),
            epoch,
        };
        // As the scheduler waits for a worker's tick (see `scheduler::start_nodes`).
        let wait = health.timeout().map_or(period / 2, |t| t.min(period / 2));
        let failed =
            |phase: &str, e: crate::ffi::CallError| format!("node `{name}` failed to start ({phase}): {e}");
        // A worker process's endpoints are its own: their watches come from its reports.
        let inputs = match setup.isolation {
            Isolation::Process => Vec::new(),
            _ => io.input_watches(),
        };
        let exec = match setup.isolation {
            Isolation::Inline => NewExec::Inline {
                rebuild: Box::new(rebuild),
                io: Box::new(io),
            },
            Isolation::Thread => {
                let mut worker =
                    ThreadExec::start(rebuild, io, health.clone(), wait).map_err(|e| failed("create", e))?;
                // A node whose `init` failed never started: destroyed without `shutdown`.
                worker.init().map_err(|e| failed("init", e))?;
                NewExec::Thread(Box::new(worker))
            }
            Isolation::Process => {
                // The worker process attaches its own endpoints to the same topics; the host
                // holds the inputs until then.
                let mut worker = ProcessExec::new(&rebuild, health.clone(), wait).holding_inputs(io);
                worker.init().map_err(|e| failed("create/init", e))?;
                NewExec::Process(Box::new(worker))
            }
        };
        Ok(NewNode {
            setup,
            health,
            exec,
            inputs,
        })
    }
}

/// The new code of every node `plan` replaces (its plugin, node type, Python file or class, or
/// config changed), from `graph` (the new manifest's): the node type's library as the check
/// opened it (the running copy when the file is unchanged), the Python source, and the new
/// config when it changed (`None`: the running one stays). The ports were checked
/// ([`plan::Plan::incompatible`]). A node whose `isolation` changed is moved instead, with that
/// code: the second list.
fn swaps(plan: &plan::Plan, graph: &crate::graph::Graph) -> (Vec<(String, NewCode)>, Moves) {
    let mut swaps = Vec::new();
    let mut moves = Vec::new();
    for d in &plan.changed {
        let moved = d.changes.iter().any(|c| matches!(c, NodeChange::Isolation(..)));
        if !moved && !d.changes.iter().any(NodeChange::swaps) {
            continue;
        }
        let Some(node) = graph.nodes.iter().find(|n| n.spec.name == d.name) else {
            continue;
        };
        let python_changed = d.changes.contains(&NodeChange::Python);
        let code = NewCode {
            plugin: node.plugin.clone(),
            type_index: node.type_index,
            ports: node.plugin.info().node_types[node.type_index]
                .ports
                .iter()
                .map(|p| (p.name.clone(), p.output))
                .collect(),
            // A new file or class is imported afresh ([`NewCode::reload_arg`]); a config
            // change alone makes the node again from the module it runs.
            python: node.python.clone().filter(|_| python_changed),
            config: d
                .changes
                .contains(&NodeChange::Config)
                .then(|| node.spec.config.clone()),
        };
        if moved {
            // Its other changes go with it: the code it runs where it moves to.
            moves.push((d.name.clone(), d.isolation, code));
        } else {
            swaps.push((d.name.clone(), code));
        }
    }
    (swaps, moves)
}

/// The scheduler's part of a plan that passed [`plan::Plan::refusal`]: what is set in place.
/// Nodes moved to another isolation level, with the code they run there.
type Moves = Vec<(String, Isolation, NewCode)>;

fn op(plan: &plan::Plan, new: &Snapshot, reply: Sender<Result<(), String>>) -> ApplyOp {
    let spec = |name: &str| new.manifest.nodes.iter().find(|n| n.name == name);
    let mut settings = Vec::new();
    for d in &plan.changed {
        let Some(n) = spec(&d.name) else { continue };
        if d.changes.iter().any(|c| !c.swaps()) {
            settings.push(NodeSettings {
                name: n.name.clone(),
                priority: n.priority,
                rate_hz: n.rate_hz,
                deadline: n.deadline,
                watchdog: n.watchdog,
                logging: n.logging,
                trigger: n.trigger.clone(),
                timeout: n.timeout,
            });
        }
    }
    ApplyOp {
        settings,
        swaps: Vec::new(),
        tick_rate: plan.tick_rate,
        supervision: plan.supervision.clone(),
        watchdog: plan.watchdog,
        added: Vec::new(),
        removed: Vec::new(),
        rebinds: Vec::new(),
        moves: Vec::new(),
        scope: None,
        reverted: Default::default(),
        reply,
    }
}

/// Logs an apply's outcome on the host: the summary at INFO, a refused or invalid manifest at
/// WARN (the host recovered: nothing changed).
pub fn log(outcome: &Outcome) {
    match outcome {
        Outcome::Applied(t) | Outcome::Planned(t) => tracing::info!("{t}"),
        Outcome::Invalid(t) | Outcome::Refused(t) | Outcome::Failed(t) => tracing::warn!("{t}"),
    }
}

/// Why `horus apply` could not reach a host.
#[derive(Debug, thiserror::Error)]
pub enum ApplyClientError {
    /// No host of the namespace runs the manifest.
    #[error("no running horus host in namespace `{namespace}` runs {manifest} (start it with `horus run`)")]
    NoHost {
        /// The namespace.
        namespace: String,
        /// The manifest, absolute.
        manifest: String,
    },
    /// Several do.
    #[error("{count} horus hosts run {manifest} (pids {pids}); choose one with --pid")]
    Ambiguous {
        /// How many.
        count: usize,
        /// The manifest.
        manifest: String,
        /// Their pids.
        pids: String,
    },
    /// The manifest file is not there.
    #[error("cannot read {path}: {source}")]
    Manifest {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The socket or the protocol failed.
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
}

impl ApplyClientError {
    /// 1 when no host answers, 2 for an ambiguous choice or a missing file.
    pub fn exit_code(&self) -> u8 {
        match self {
            ApplyClientError::NoHost { .. } | ApplyClientError::Control(_) => 1,
            ApplyClientError::Ambiguous { .. } | ApplyClientError::Manifest { .. } => 2,
        }
    }
}

/// `horus apply <manifest> [--dry-run] [--pid PID]`: sends the manifest's absolute path to the
/// host of this namespace that runs it, and returns the host's outcome.
pub fn request(manifest: &Path, dry_run: bool, pid: Option<u32>) -> Result<Outcome, ApplyClientError> {
    let path = std::fs::canonicalize(manifest).map_err(|source| ApplyClientError::Manifest {
        path: manifest.to_path_buf(),
        source,
    })?;
    let namespace = crate::topic::TopicScope::new().namespace().to_owned();
    let socket = match pid {
        Some(pid) => crate::control::pick(&namespace, Some(pid))?,
        None => {
            let running: Vec<(u32, PathBuf)> = crate::control::hosts(&namespace)
                .into_iter()
                .filter(|(_, socket)| {
                    crate::control::query(socket).is_ok_and(|reply| reply.manifest_path == path)
                })
                .collect();
            match running.len() {
                0 => {
                    return Err(ApplyClientError::NoHost {
                        namespace,
                        manifest: path.display().to_string(),
                    })
                }
                1 => running.into_iter().next().expect("one").1,
                n => {
                    return Err(ApplyClientError::Ambiguous {
                        count: n,
                        manifest: path.display().to_string(),
                        pids: running
                            .iter()
                            .map(|(p, _)| p.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
            }
        }
    };
    let reply = crate::control::apply(&socket, &path, dry_run)?;
    Ok(Outcome::from_kind(&reply.outcome, reply.text))
}
