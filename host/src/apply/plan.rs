//! The difference between the running manifest and a new one, as plain data: a pure function
//! of two [`Snapshot`]s (a validated manifest with each node's resolved node type and plugin
//! file), unit-tested without any plugin. Which parts of a [`Plan`] can be applied live is
//! [`Plan::refusal`]'s answer; its one-line report is [`Plan::summary`].

use crate::manifest::hubs::{HubMode, HubSpec};
use crate::manifest::{
    ConnectSpec, Isolation, Manifest, NodeCode, NodeSpec, Qos, SchedulerSpec, SupervisionSpec, Trigger,
};
use crate::topic::{NetTopic, PortPlan, TopicName};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

/// A node as the plan compares it: its spec and what the graph resolved it to.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The node type the graph picked.
    pub type_name: String,
    /// The plugin file it found (the loader, for a Python node).
    pub plugin: PathBuf,
    /// What each of its ports is bound to (a running node whose ports would be bound
    /// differently is re-bound: [`PortRebind`]).
    pub ports: Vec<PortPlan>,
    /// Its ports' names, in the same order.
    pub port_names: Vec<String>,
    /// A Python node's interpreter (its environment's `python`, `sys.executable`).
    pub interpreter: Option<PathBuf>,
    /// Its node type's ports (a replacement must keep the running node's: see
    /// [`crate::reload::prepare::compatible`]).
    pub port_types: Vec<crate::ffi::PortInfo>,
}

/// A manifest as it runs (or would run): validated, every node resolved, in manifest order.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The manifest.
    pub manifest: Manifest,
    /// One per node of `manifest.nodes`.
    pub nodes: Vec<Resolved>,
    /// The topics that travel over network hubs.
    pub net: Vec<NetTopic>,
    /// The Python interpreter the process runs: started by its first Python node, it stays
    /// when they are all removed (one per process, never finalized). `None`: none yet.
    pub interpreter: Option<PathBuf>,
}

impl Snapshot {
    /// The snapshot of a built graph.
    pub fn of(graph: &crate::graph::Graph) -> Snapshot {
        let nodes: Vec<Resolved> = graph
            .nodes
            .iter()
            .map(|n| Resolved {
                type_name: n.type_name.clone(),
                // The running graph may have found it by a relative path, the new one by an
                // absolute one: the same file either way.
                plugin: std::fs::canonicalize(&n.plugin.info().path)
                    .unwrap_or_else(|_| n.plugin.info().path.clone()),
                ports: n.ports.clone(),
                port_names: n.port_names.clone(),
                port_types: n.plugin.info().node_types[n.type_index].ports.clone(),
                interpreter: match &n.python {
                    Some(crate::python::PythonSource::File { program, .. }) => Some(program.clone()),
                    _ => None,
                },
            })
            .collect();
        Snapshot {
            manifest: graph.manifest.clone(),
            interpreter: nodes.iter().find_map(|n| n.interpreter.clone()),
            nodes,
            net: graph.net.clone(),
        }
    }
}

/// One difference of one node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeChange {
    /// Its plugin (as written, or the file it resolves to).
    Plugin,
    /// Its node type.
    Type(String, String),
    /// Its Python file or class.
    Python,
    /// Its Python `venv`.
    Venv,
    /// Its isolation.
    Isolation(Isolation, Isolation),
    /// Its `config` table.
    Config,
    /// Its priority.
    Priority(i64, i64),
    /// Its `rate_hz`.
    RateHz(Option<f64>, Option<f64>),
    /// Its `deadline_ms`.
    Deadline(Option<std::time::Duration>, Option<std::time::Duration>),
    /// Its `watchdog_ms`.
    Watchdog(Option<std::time::Duration>, Option<std::time::Duration>),
    /// Its `logging`.
    Logging(bool, bool),
    /// Its `trigger`.
    Trigger(Trigger, Trigger),
    /// Its `timeout_ms`.
    Timeout(Option<std::time::Duration>, Option<std::time::Duration>),
    /// Its `build =` or `watch =`.
    Build,
}

impl NodeChange {
    /// Applied live by this version (in place, or by a swap with the state handed over).
    fn live(&self) -> bool {
        !matches!(self, NodeChange::Venv)
    }

    /// Applied by replacing the node (its code made again, its state handed over: hot
    /// reload's swap, generation + 1); the others are set in place.
    pub fn swaps(&self) -> bool {
        matches!(
            self,
            NodeChange::Plugin | NodeChange::Type(..) | NodeChange::Python | NodeChange::Config
        )
    }

    /// How the summary says it.
    fn describe(&self) -> String {
        let ms = |d: &Option<std::time::Duration>| match d {
            Some(d) => format!("{}", d.as_secs_f64() * 1e3),
            None => "none".into(),
        };
        let hz = |r: &Option<f64>| r.map_or_else(|| "none".into(), |r| format!("{r}"));
        match self {
            NodeChange::Plugin => "plugin".into(),
            NodeChange::Type(a, b) => format!("type {a} → {b}"),
            NodeChange::Python => "python".into(),
            NodeChange::Venv => "venv".into(),
            NodeChange::Isolation(a, b) => format!("isolation {} → {}", a.name(), b.name()),
            NodeChange::Config => "config".into(),
            NodeChange::Priority(a, b) => format!("priority {a} → {b}"),
            NodeChange::RateHz(a, b) => format!("rate_hz {} → {}", hz(a), hz(b)),
            NodeChange::Deadline(a, b) => format!("deadline_ms {} → {}", ms(a), ms(b)),
            NodeChange::Watchdog(a, b) => format!("watchdog_ms {} → {}", ms(a), ms(b)),
            NodeChange::Logging(a, b) => format!("logging {a} → {b}"),
            NodeChange::Trigger(a, b) => format!("trigger {} → {}", a.describe(), b.describe()),
            NodeChange::Timeout(a, b) => format!("timeout_ms {} → {}", ms(a), ms(b)),
            NodeChange::Build => "build/watch".into(),
        }
    }
}

/// A node present in both manifests whose declaration differs.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDiff {
    /// The node.
    pub name: String,
    /// What differs, in a fixed order.
    pub changes: Vec<NodeChange>,
    /// Its isolation in the new manifest.
    pub isolation: Isolation,
    /// A Python node.
    pub python: bool,
}

/// A port of a running node that an apply binds anew: connected, disconnected, moved to
/// another topic, or its queue's depth or `reliable` flag changed (on the same ring, its
/// endpoint reads on from where the old one stopped).
#[derive(Debug, Clone, PartialEq)]
pub struct PortRebind {
    /// The node.
    pub node: String,
    /// The port.
    pub port: String,
    /// Its index among the node type's ports.
    pub index: usize,
    /// What it is bound to from now on.
    pub plan: PortPlan,
    /// Its topic moved to a new, larger ring ([`TopicMove`]), and it stays an endpoint of it:
    /// an input drains the old ring before it reads the new one.
    pub moved: bool,
}

/// A private topic moved to a new, larger ring under a new name, because its ring would have
/// to grow: more slots (a deeper queue) or larger ones (`max_size`). Every endpoint of it, on
/// running nodes and added ones, is bound to the new ring; its inputs drain the old one
/// first.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMove {
    /// The name it ran under: `node.port`, or `node.port~k` if an earlier apply moved it.
    pub from: String,
    /// Its new name: `node.port~2`, then `~3`, and so on.
    pub to: String,
}

/// The name a private topic of a manifest (`node.port`) runs under after `moves` applies of
/// it: `~` cannot be part of a node's name (nor of a manifest's `node.port`), so
/// `node.port~2` is never another port's topic. Its shm name shows `~` as `_`, and the hash
/// of the full name keeps it apart from a port named `port_2`.
const MOVED_MARK: char = '~';

/// The manifest's name of a private topic that runs under `name` (`node.port~3` →
/// `node.port`). A network topic's ring (`net.in/…`, whose key may hold anything) is never
/// moved, and is its own base.
fn base(name: &str) -> &str {
    match name.rsplit_once(MOVED_MARK) {
        Some((base, k)) if !name.contains('/') && !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => name,
    }
}

/// The name a private topic running under `name` moves to: `node.port` → `node.port~2`,
/// `node.port~2` → `node.port~3`.
fn next_name(name: &str) -> String {
    let k: u64 = name[base(name).len()..]
        .strip_prefix(MOVED_MARK)
        .and_then(|k| k.parse().ok())
        .unwrap_or(1);
    format!("{}{MOVED_MARK}{}", base(name), k + 1)
}

/// `plan` (made from a manifest) with its private topic under the name it runs under.
fn under(plan: &PortPlan, names: &BTreeMap<String, String>) -> PortPlan {
    let mut plan = plan.clone();
    if let PortPlan::Output { topic, .. } | PortPlan::Input { topic, .. } = &mut plan {
        if let TopicName::Local(name) = topic {
            if let Some(running) = names.get(name.as_str()) {
                *name = running.clone();
            }
        }
    }
    plan
}

/// The private topics of `running`'s nodes, by their manifest's name (`node.port`): the name
/// each runs under.
fn running_names(running: &Snapshot) -> BTreeMap<String, String> {
    running
        .nodes
        .iter()
        .flat_map(|n| &n.ports)
        .filter_map(|p| match p {
            PortPlan::Output {
                topic: TopicName::Local(name),
                ..
            }
            | PortPlan::Input {
                topic: TopicName::Local(name),
                ..
            } => Some((base(name).to_owned(), name.clone())),
            _ => None,
        })
        .collect()
}

/// How a running port's binding compares with the one a new manifest asks for.
#[derive(Debug, Clone, PartialEq)]
enum Binding {
    /// The same: nothing to do. A topic whose ring is larger than the new manifest needs (a
    /// deeper subscriber went away) keeps it.
    Same,
    /// Bound anew.
    Rebind,
    /// The topic's ring would have to change (more slots, or larger ones), which its running
    /// endpoints cannot follow: why. A private topic moves to a new ring ([`TopicMove`]); a
    /// named one is refused.
    Grow(String),
}

/// The slots a ring made for `capacity` messages has (see `shm::Segment::attach`).
fn ring(capacity: u32) -> u32 {
    capacity.max(2).next_power_of_two()
}

/// Compares the binding a port runs with (`old`) and the one the new manifest gives it.
fn binding(old: &PortPlan, new: &PortPlan) -> Binding {
    use PortPlan::{Input, Output};
    let (os, ns) = match (old, new) {
        _ if old == new => return Binding::Same,
        (Output { topic: a, spec: os }, Output { topic: b, spec: ns }) if a == b => (os, ns),
        (
            Input {
                topic: a, spec: os, ..
            },
            Input {
                topic: b, spec: ns, ..
            },
        ) if a == b => (os, ns),
        _ => return Binding::Rebind,
    };
    if os.slot_size < ns.slot_size || os.type_hash != ns.type_hash {
        return Binding::Grow(format!(
            "its slots of {} bytes would have to hold {}",
            os.slot_size, ns.slot_size
        ));
    }
    if ring(ns.capacity) > ring(os.capacity) {
        return Binding::Grow(format!(
            "its ring of {} messages would have to hold {}",
            ring(os.capacity),
            ns.capacity
        ));
    }
    match (old, new) {
        (Input { qos: a, .. }, Input { qos: b, .. }) if a != b => Binding::Rebind,
        _ => Binding::Same,
    }
}

/// One difference of the scheduler's settings.
#[derive(Debug, Clone, PartialEq)]
pub enum SchedulerChange {
    /// `tick_rate` or `preset` (the rates).
    TickRate(f64, f64),
    /// `circuit_breaker`, `max_failures`, `auto_restart`, `restart_backoff_ms`,
    /// `restart_backoff_max_ms` or `deadline_monitoring`.
    Supervision,
    /// `watchdog_enabled` or `watchdog_timeout_ms`.
    Watchdog,
    /// `hot_reload`.
    HotReload,
}

/// The difference between two manifests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Nodes only the new manifest has.
    pub added: Vec<String>,
    /// Nodes only the running manifest has.
    pub removed: Vec<String>,
    /// Nodes of both whose declaration differs.
    pub changed: Vec<NodeDiff>,
    /// Connections only the new manifest has (`from -> to`).
    pub connections_added: Vec<String>,
    /// Connections only the running manifest has.
    pub connections_removed: Vec<String>,
    /// Connections of both whose `qos` or `max_size` differs.
    pub connections_changed: Vec<String>,
    /// Ports of running nodes (in both manifests) bound anew.
    pub rebinds: Vec<PortRebind>,
    /// Ports of running nodes that keep the binding they run with although the new manifest
    /// plans it a little differently (a ring larger than it needs now): what the running
    /// manifest is compared with from then on.
    pub kept: Vec<PortRebind>,
    /// Private topics moved to a new, larger ring.
    pub moved: Vec<TopicMove>,
    /// Every private topic that runs under another name than the manifest's once this plan
    /// is applied (`node.port` → `node.port~k`): moved now or by an earlier apply. Added nodes
    /// are bound by these names ([`Plan::rename`]).
    pub names: Vec<(String, String)>,
    /// Running ports whose topic's ring would have to change and cannot move (a named topic,
    /// whose ring other processes share, or a network topic's): `node.port`, the topic and
    /// why (refused).
    pub grown: Vec<String>,
    /// An added Python node whose interpreter is not the one the process runs (or not that of
    /// another added one): the node, its interpreter, the other one.
    pub interpreter_mismatch: Option<(String, PathBuf, PathBuf)>,
    /// The tcp hubs and network topics that differ: what the host's bridges open, close and
    /// hand over ([`NetChanges`]).
    pub net: NetChanges,
    /// The scheduler's settings that differ.
    pub scheduler: Vec<SchedulerChange>,
    /// The new tick rate, when it differs.
    pub tick_rate: Option<f64>,
    /// The new supervision settings, when a live one differs.
    pub supervision: Option<SupervisionSpec>,
    /// The new `hot_reload`, when it differs (whether the host can follow is the applier's
    /// question: it must have its hot-reload thread).
    pub hot_reload: Option<bool>,
    /// The new `watchdog_enabled` and `watchdog_timeout_ms`, when one differs.
    pub watchdog: Option<(bool, std::time::Duration)>,
    /// `[hub.<name>]` tables differ.
    pub hubs: bool,
    /// `[plugins] path` differs (applied as it is: every node is resolved against the new
    /// path by the check, and a node whose plugin resolves to another file is a
    /// [`NodeChange::Plugin`]).
    pub plugin_path: bool,
}

/// Computes what `new` changes of `running`.
pub fn plan(running: &Snapshot, new: &Snapshot) -> Plan {
    let mut plan = Plan::default();
    let find = |s: &Snapshot, name: &str| s.manifest.nodes.iter().position(|n| n.name == name);
    // The new manifest's private topics under the names they run under; those whose ring
    // would have to grow under a new one (every endpoint of such a topic is then bound anew).
    let mut names = running_names(running);
    let mut moved: Vec<String> = Vec::new();
    for (i, node) in new.manifest.nodes.iter().enumerate() {
        let Some(j) = find(running, &node.name) else {
            continue;
        };
        let (old, new) = (&running.nodes[j], &new.nodes[i]);
        for (port, new_plan) in new.port_names.iter().zip(&new.ports) {
            let Some(k) = old.port_names.iter().position(|p| p == port) else {
                continue;
            };
            // A network topic's ring (`net.…/…`) is the hub bridge's too: never moved.
            if let (
                Binding::Grow(_),
                PortPlan::Output {
                    topic: TopicName::Local(name),
                    ..
                }
                | PortPlan::Input {
                    topic: TopicName::Local(name),
                    ..
                },
            ) = (binding(&old.ports[k], &under(new_plan, &names)), &old.ports[k])
            {
                if !name.contains('/') && !moved.contains(name) {
                    moved.push(name.clone());
                }
            }
        }
    }
    for from in moved {
        let to = next_name(&from);
        names.insert(base(&from).to_owned(), to.clone());
        plan.moved.push(TopicMove { from, to });
    }
    plan.names = names.into_iter().filter(|(base, name)| base != name).collect();
    for (i, node) in new.manifest.nodes.iter().enumerate() {
        match find(running, &node.name) {
            None => plan.added.push(node.name.clone()),
            Some(j) => {
                let changes = node_changes(
                    (&running.manifest.nodes[j], &running.nodes[j]),
                    (node, &new.nodes[i]),
                );
                let new_ports = Resolved {
                    ports: new.nodes[i].ports.iter().map(|p| plan.renamed(p)).collect(),
                    ..new.nodes[i].clone()
                };
                ports(&node.name, &running.nodes[j], &new_ports, &mut plan);
                if !changes.is_empty() {
                    plan.changed.push(NodeDiff {
                        name: node.name.clone(),
                        changes,
                        isolation: node.isolation,
                        python: matches!(node.code, NodeCode::Python(_)),
                    });
                }
            }
        }
    }
    for node in &running.manifest.nodes {
        if find(new, &node.name).is_none() {
            plan.removed.push(node.name.clone());
        }
    }
    // One interpreter per process: every added Python node must run in the one there is (or
    // the one the first added Python node starts).
    let mut interpreter = running.interpreter.clone();
    for (spec, resolved) in new.manifest.nodes.iter().zip(&new.nodes) {
        let Some(program) = &resolved.interpreter else {
            continue;
        };
        if !plan.added.contains(&spec.name) {
            continue;
        }
        match &interpreter {
            None => interpreter = Some(program.clone()),
            Some(running) if running != program => {
                plan.interpreter_mismatch = Some((spec.name.clone(), program.clone(), running.clone()));
                break;
            }
            Some(_) => {}
        }
    }
    connections(
        &running.manifest.connections,
        &new.manifest.connections,
        &mut plan,
    );
    scheduler(&running.manifest.scheduler, &new.manifest.scheduler, &mut plan);
    plan.hubs = running.manifest.hubs != new.manifest.hubs;
    let tcp = |m: &Manifest| -> Vec<HubSpec> {
        (m.hubs.iter().map(|h| h.spec.clone()))
            .filter(|h| h.mode == HubMode::Tcp)
            .collect()
    };
    plan.net = net_changes(
        (&tcp(&running.manifest), &running.net),
        (&tcp(&new.manifest), &new.net),
    );
    let paths = |m: &Manifest| m.plugin_path.iter().map(|p| p.value.clone()).collect::<Vec<_>>();
    plan.plugin_path = paths(&running.manifest) != paths(&new.manifest);
    plan
}

/// What an apply changes of the host's tcp hubs and the topics that travel over them (feature
/// `network`: the bridges of `net::bridge` follow it). A hub is its session: one whose
/// `mode` and `address` stay keeps it, with every topic bridge that did not change; one that
/// is new, gone, or whose address changed is opened or closed with all its topics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetChanges {
    /// Tcp hubs to open: new ones, and those whose address changed (in new-manifest order).
    pub hubs_opened: Vec<HubSpec>,
    /// Tcp hubs to close: gone (or no longer tcp), or whose address changed.
    pub hubs_closed: Vec<String>,
    /// Tcp hubs whose session stays.
    pub hubs_kept: Vec<String>,
    /// Topics of kept hubs to bridge anew.
    pub topics_added: Vec<NetTopic>,
    /// Topics of kept hubs to stop bridging (an outbound one sends what its ring still holds).
    pub topics_removed: Vec<NetTopic>,
    /// Topics of kept hubs bridged in the same direction with another ring size, type or QoS:
    /// the new version (its bridge takes over from the running one, nothing lost or twice).
    pub topics_changed: Vec<NetTopic>,
    /// Every network topic of the new manifest (those of opened hubs included).
    pub topics: Vec<NetTopic>,
}

impl NetChanges {
    /// True when the bridges stay as they are.
    pub fn is_empty(&self) -> bool {
        self.hubs_opened.is_empty()
            && self.hubs_closed.is_empty()
            && self.topics_added.is_empty()
            && self.topics_removed.is_empty()
            && self.topics_changed.is_empty()
    }
}

/// A network topic's identity on its hub: one bridge per key and direction.
fn same_bridge(a: &NetTopic, b: &NetTopic) -> bool {
    a.hub == b.hub && a.key == b.key && a.outbound == b.outbound
}

/// The difference between the running tcp hubs and network topics and the new ones.
pub fn net_changes(running: (&[HubSpec], &[NetTopic]), new: (&[HubSpec], &[NetTopic])) -> NetChanges {
    let ((old_hubs, old_topics), (new_hubs, new_topics)) = (running, new);
    let mut c = NetChanges {
        topics: new_topics.to_vec(),
        ..NetChanges::default()
    };
    for hub in new_hubs {
        match old_hubs.iter().find(|h| h.name == hub.name) {
            Some(old) if old == hub => c.hubs_kept.push(hub.name.clone()),
            _ => c.hubs_opened.push(hub.clone()),
        }
    }
    for hub in old_hubs {
        if !c.hubs_kept.contains(&hub.name) {
            c.hubs_closed.push(hub.name.clone());
        }
    }
    let kept = |t: &NetTopic| c.hubs_kept.contains(&t.hub);
    let (mut added, mut changed, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    for t in new_topics.iter().filter(|t| kept(t)) {
        match old_topics.iter().find(|o| same_bridge(o, t)) {
            None => added.push(t.clone()),
            Some(o) if o != t => changed.push(t.clone()),
            Some(_) => {}
        }
    }
    for o in old_topics.iter().filter(|t| kept(t)) {
        if !new_topics.iter().any(|t| same_bridge(o, t)) {
            removed.push(o.clone());
        }
    }
    (c.topics_added, c.topics_changed, c.topics_removed) = (added, changed, removed);
    c
}

/// The ports of running node `name` bound differently by the new manifest (`new`, its
/// private topics renamed as they will run; matched by name: a port only one side has is
/// bound by the node type's change, not here).
fn ports(name: &str, old: &Resolved, new: &Resolved, plan: &mut Plan) {
    for (index, (port, new_plan)) in new.port_names.iter().zip(&new.ports).enumerate() {
        let Some(j) = old.port_names.iter().position(|p| p == port) else {
            continue;
        };
        let old_plan = &old.ports[j];
        let topic = |p: &PortPlan| match p {
            PortPlan::Output { topic, .. } | PortPlan::Input { topic, .. } => Some(topic.clone()),
            PortPlan::Unconnected { .. } => None,
        };
        let moved = plan.moved.iter().any(|m| {
            topic(old_plan) == Some(TopicName::Local(m.from.clone()))
                && topic(new_plan) == Some(TopicName::Local(m.to.clone()))
        });
        let rebind = || PortRebind {
            node: name.to_owned(),
            port: port.clone(),
            index,
            plan: new_plan.clone(),
            moved,
        };
        match binding(old_plan, new_plan) {
            Binding::Same if old_plan == new_plan => {}
            Binding::Same => plan.kept.push(PortRebind {
                plan: old_plan.clone(),
                ..rebind()
            }),
            Binding::Rebind => plan.rebinds.push(rebind()),
            Binding::Grow(why) => {
                let what = match topic(old_plan) {
                    Some(TopicName::Named(t)) => format!("named topic `{t}`"),
                    Some(TopicName::Local(t)) => format!("network topic ring `{t}`"),
                    None => "topic".into(),
                };
                plan.grown.push(format!("the {what} of `{name}.{port}`: {why}"));
            }
        }
    }
}

fn node_changes(old: (&NodeSpec, &Resolved), new: (&NodeSpec, &Resolved)) -> Vec<NodeChange> {
    let ((o, or), (n, nr)) = (old, new);
    let mut changes = Vec::new();
    match (&o.code, &n.code) {
        (NodeCode::Plugin(a), NodeCode::Plugin(b)) => {
            if a.plugin.value != b.plugin.value || or.plugin != nr.plugin {
                changes.push(NodeChange::Plugin);
            }
            if or.type_name != nr.type_name {
                changes.push(NodeChange::Type(or.type_name.clone(), nr.type_name.clone()));
            }
            let build = |c: &crate::manifest::PluginCode| {
                c.build.as_ref().map(|b| {
                    (
                        b.command.value.clone(),
                        b.watch
                            .as_ref()
                            .map(|w| w.iter().map(|g| g.value.clone()).collect::<Vec<_>>()),
                    )
                })
            };
            if build(a) != build(b) {
                changes.push(NodeChange::Build);
            }
        }
        (NodeCode::Python(a), NodeCode::Python(b)) => {
            if a.file.value != b.file.value || a.class != b.class {
                changes.push(NodeChange::Python);
            }
            if a.venv != b.venv {
                changes.push(NodeChange::Venv);
            }
        }
        _ => changes.push(NodeChange::Plugin),
    }
    if o.isolation != n.isolation {
        changes.push(NodeChange::Isolation(o.isolation, n.isolation));
    }
    if o.config != n.config {
        changes.push(NodeChange::Config);
    }
    if o.priority != n.priority {
        changes.push(NodeChange::Priority(o.priority, n.priority));
    }
    if o.rate_hz != n.rate_hz {
        changes.push(NodeChange::RateHz(o.rate_hz, n.rate_hz));
    }
    if o.deadline != n.deadline {
        changes.push(NodeChange::Deadline(o.deadline, n.deadline));
    }
    if o.watchdog != n.watchdog {
        changes.push(NodeChange::Watchdog(o.watchdog, n.watchdog));
    }
    if o.logging != n.logging {
        changes.push(NodeChange::Logging(o.logging, n.logging));
    }
    if o.trigger != n.trigger {
        changes.push(NodeChange::Trigger(o.trigger.clone(), n.trigger.clone()));
    }
    if o.timeout != n.timeout {
        changes.push(NodeChange::Timeout(o.timeout, n.timeout));
    }
    changes
}

/// A connection's identity (its route) and its delivery settings.
fn route(c: &ConnectSpec) -> (String, (Qos, Option<u32>)) {
    (c.describe(), (c.qos, c.max_size))
}

fn connections(old_specs: &[ConnectSpec], new_specs: &[ConnectSpec], plan: &mut Plan) {
    let old: Vec<_> = old_specs.iter().map(route).collect();
    let new: Vec<_> = new_specs.iter().map(route).collect();
    for (r, settings) in &new {
        match old.iter().find(|(o, _)| o == r) {
            None => plan.connections_added.push(r.clone()),
            Some((_, was)) if was != settings => plan.connections_changed.push(r.clone()),
            Some(_) => {}
        }
    }
    for (r, _) in &old {
        if !new.iter().any(|(n, _)| n == r) {
            plan.connections_removed.push(r.clone());
        }
    }
}

fn scheduler(old: &SchedulerSpec, new: &SchedulerSpec, plan: &mut Plan) {
    if old.tick_rate != new.tick_rate {
        plan.scheduler
            .push(SchedulerChange::TickRate(old.tick_rate, new.tick_rate));
        plan.tick_rate = Some(new.tick_rate);
    }
    let (a, b) = (&old.supervision, &new.supervision);
    let watchdog = |s: &SupervisionSpec| (s.watchdog_enabled, s.watchdog_timeout);
    if watchdog(a) != watchdog(b) {
        plan.scheduler.push(SchedulerChange::Watchdog);
        plan.watchdog = Some(watchdog(b));
    }
    let rest = |s: &SupervisionSpec| SupervisionSpec {
        watchdog_enabled: false,
        watchdog_timeout: Default::default(),
        ..s.clone()
    };
    if rest(a) != rest(b) {
        plan.scheduler.push(SchedulerChange::Supervision);
        plan.supervision = Some(b.clone());
    }
    if old.hot_reload != new.hot_reload {
        plan.scheduler.push(SchedulerChange::HotReload);
        plan.hot_reload = Some(new.hot_reload);
    }
}

/// The message of a refused apply.
fn refuse(what: &str) -> String {
    format!("apply refused: {what} is not supported yet; restart the host to apply this manifest")
}

impl Plan {
    /// True when the manifests do not differ.
    pub fn is_empty(&self) -> bool {
        !self.any()
    }

    /// Why this plan cannot be applied live, naming the first part that cannot (nothing is
    /// applied then); `None` when all of it can.
    pub fn refusal(&self) -> Option<String> {
        let first = |v: &[String]| v.first().cloned();
        if let Some((node, program, running)) = &self.interpreter_mismatch {
            return Some(format!(
                "apply refused: node `{node}` would run in the Python environment of `{}`, but this \
                 host already runs the interpreter of `{}` (one Python interpreter per process, \
                 never restarted); give it the `venv` of the running Python nodes, or restart the \
                 host to run this manifest",
                program.display(),
                running.display()
            ));
        }
        for d in &self.changed {
            if d.changes.contains(&NodeChange::Venv) {
                return Some(format!(
                    "apply refused: node `{}`: a Python node's `venv` cannot change live (a host \
                     process runs one Python interpreter, started with the first venv); restart the \
                     host to apply this manifest",
                    d.name
                ));
            }
            if let Some(c) = d.changes.iter().find(|c| !c.live()) {
                return Some(refuse(&format!(
                    "changing a node's {} live (node `{}`)",
                    kind(c),
                    d.name
                )));
            }
        }
        if let Some(topic) = first(&self.grown) {
            return Some(format!(
                "apply refused: {topic}; a named topic's ring is shared with other processes \
                 (and a network topic's with the hub's bridge), which cannot follow it to a new, \
                 larger ring as this host's own nodes do; restart the host (and the topic's other \
                 processes) to apply this manifest, or keep the queue depths and max_size of this \
                 topic's connections as they are"
            ));
        }
        None
    }

    /// Why a node this plan replaces with other code (another plugin file or node type) cannot
    /// take the running node's place on its topics: the new node type removed one of its
    /// ports, turned it around or changed its message type (hot reload's rule,
    /// [`crate::reload::prepare::compatible`]). Checked before [`Plan::refusal`], whose
    /// message for the same node (its ports bound differently) would say less.
    pub fn incompatible(&self, running: &Snapshot, new: &Snapshot) -> Option<String> {
        fn find<'a>(s: &'a Snapshot, name: &str) -> Option<&'a Resolved> {
            let i = s.manifest.nodes.iter().position(|n| n.name == name)?;
            s.nodes.get(i)
        }
        for d in &self.changed {
            let code = d
                .changes
                .iter()
                .any(|c| matches!(c, NodeChange::Plugin | NodeChange::Type(..)));
            let (Some(old), Some(now)) = (find(running, &d.name), find(new, &d.name)) else {
                continue;
            };
            if !code {
                continue;
            }
            if let Err(why) = crate::reload::prepare::compatible(&old.port_types, &now.port_types) {
                let why = why.replace("the new build", &format!("node type `{}`", now.type_name));
                return Some(format!(
                    "apply refused: node `{}`: node type `{}` of {} cannot replace the running `{}` \
                     on its topics: {why}; keep the node's ports, or restart the host to apply this \
                     manifest",
                    d.name,
                    now.type_name,
                    now.plugin.display(),
                    old.type_name
                ));
            }
        }
        None
    }

    /// The one-line report: `apply: +1 node, -0, ~2 changed (filter: config; imu: rate_hz
    /// 100 → 200), +1 connection`.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "apply: no changes".into();
        }
        let mut out = format!(
            "apply: +{} {}, -{}, ~{} changed",
            self.added.len(),
            if self.added.len() == 1 { "node" } else { "nodes" },
            self.removed.len(),
            self.changed.len()
        );
        if !self.changed.is_empty() {
            let nodes: Vec<String> = self
                .changed
                .iter()
                .map(|d| {
                    let what: Vec<String> = d.changes.iter().map(NodeChange::describe).collect();
                    format!("{}: {}", d.name, what.join(", "))
                })
                .collect();
            let _ = write!(out, " ({})", nodes.join("; "));
        }
        let count = |n: usize, sign: &str, what: &str| -> Option<String> {
            (n > 0).then(|| format!("{sign}{n} {what}{}", if n == 1 { "" } else { "s" }))
        };
        let more = [
            count(self.connections_added.len(), "+", "connection"),
            count(self.connections_removed.len(), "-", "connection"),
            count(self.connections_changed.len(), "~", "connection"),
        ];
        for m in more.into_iter().flatten() {
            let _ = write!(out, ", {m}");
        }
        for m in &self.moved {
            let _ = write!(out, ", topic `{}` moved to a larger ring", base(&m.from));
        }
        for c in &self.scheduler {
            let _ = match c {
                SchedulerChange::TickRate(a, b) => write!(out, ", scheduler: tick_rate {a} → {b}"),
                SchedulerChange::Supervision => write!(out, ", scheduler: breaker settings"),
                SchedulerChange::Watchdog => write!(out, ", scheduler: watchdog"),
                SchedulerChange::HotReload => write!(out, ", scheduler: hot_reload"),
            };
        }
        let n = &self.net;
        let hubs = [
            count(n.hubs_opened.len(), "+", "hub"),
            count(n.hubs_closed.len(), "-", "hub"),
        ];
        let topics = [
            count(n.topics_added.len(), "+", "network topic"),
            count(n.topics_removed.len(), "-", "network topic"),
            count(n.topics_changed.len(), "~", "network topic"),
        ];
        let hubs: Vec<String> = hubs.into_iter().chain(topics).flatten().collect();
        if !hubs.is_empty() {
            let _ = write!(out, ", {}", hubs.join(", "));
        } else if self.hubs {
            out.push_str(", hubs");
        }
        if self.plugin_path {
            out.push_str(", [plugins] path");
        }
        out
    }

    /// `plan` (made from the new manifest) with its private topic under the name it runs
    /// under once this plan is applied ([`Plan::names`]).
    pub fn renamed(&self, plan: &PortPlan) -> PortPlan {
        let mut plan = plan.clone();
        self.rename(std::slice::from_mut(&mut plan));
        plan
    }

    /// Renames the private topics of `ports` (planned from the new manifest: an added node's)
    /// as they run once this plan is applied ([`Plan::names`]).
    pub fn rename(&self, ports: &mut [PortPlan]) {
        for p in ports {
            if let PortPlan::Output {
                topic: TopicName::Local(name),
                ..
            }
            | PortPlan::Input {
                topic: TopicName::Local(name),
                ..
            } = p
            {
                if let Some((_, running)) = self.names.iter().find(|(base, _)| base == name) {
                    *name = running.clone();
                }
            }
        }
    }

    /// `new` as it runs once this plan is applied: its private topics under the names they
    /// run under ([`Plan::names`]), and the ports that kept their running binding
    /// ([`Plan::kept`]) as they run.
    pub fn as_applied(&self, mut new: Snapshot) -> Snapshot {
        for node in &mut new.nodes {
            self.rename(&mut node.ports);
        }
        for k in &self.kept {
            let Some(i) = new.manifest.nodes.iter().position(|n| n.name == k.node) else {
                continue;
            };
            if let Some(p) = new.nodes[i].ports.get_mut(k.index) {
                *p = k.plan.clone();
            }
        }
        new
    }

    fn any(&self) -> bool {
        !self.added.is_empty()
            || !self.removed.is_empty()
            || !self.changed.is_empty()
            || !self.connections_added.is_empty()
            || !self.connections_removed.is_empty()
            || !self.connections_changed.is_empty()
            || !self.scheduler.is_empty()
            || self.hubs
            || self.plugin_path
    }
}

/// What a refused node change is called in the message.
fn kind(c: &NodeChange) -> &'static str {
    match c {
        NodeChange::Plugin => "plugin",
        NodeChange::Type(..) => "node type",
        NodeChange::Python => "Python file or class",
        NodeChange::Venv => "venv",
        NodeChange::Isolation(..) => "isolation",
        NodeChange::Watchdog(..) => "watchdog_ms",
        NodeChange::Logging(..) => "logging",
        NodeChange::Trigger(..) => "trigger",
        NodeChange::Timeout(..) => "timeout_ms",
        NodeChange::Config
        | NodeChange::Priority(..)
        | NodeChange::RateHz(..)
        | NodeChange::Deadline(..)
        | NodeChange::Build => "settings",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A snapshot of `text`, every node resolved to node type `T` of `lib<plugin>.so` (or what
    /// `types` says for a node): no plugin is opened.
    fn snap(text: &str, types: &[(&str, &str)]) -> Snapshot {
        snap_in(text, types, Path::new("/base"))
    }

    /// [`snap`] of a manifest whose relative paths resolve in `base`.
    fn snap_in(text: &str, types: &[(&str, &str)], base: &Path) -> Snapshot {
        let manifest = crate::manifest::parse(text, Path::new("m.toml"), base).expect("valid manifest");
        let nodes = manifest
            .nodes
            .iter()
            .map(|n| Resolved {
                type_name: types
                    .iter()
                    .find(|(name, _)| *name == n.name)
                    .map_or("T", |(_, t)| t)
                    .into(),
                plugin: PathBuf::from("/base/libx.so"),
                ports: Vec::new(),
                port_names: Vec::new(),
                interpreter: match &n.code {
                    NodeCode::Python(py) => Some(
                        py.venv
                            .as_ref()
                            .map_or_else(|| PathBuf::from("/usr/bin/python3"), |v| v.join("bin/python")),
                    ),
                    NodeCode::Plugin(_) => None,
                },
                port_types: Vec::new(),
            })
            .collect::<Vec<Resolved>>();
        Snapshot {
            manifest,
            interpreter: nodes.iter().find_map(|n| n.interpreter.clone()),
            nodes,
            net: Vec::new(),
        }
    }

    const BASE: &str = r#"
[scheduler]
tick_rate = 400

[[node]]
name = "imu"
plugin = "libx.so"
rate_hz = 100

[[node]]
name = "filter"
plugin = "libx.so"
config = { alpha = 0.5 }

[[connect]]
from = "imu.out"
to = "filter.in"
"#;

    #[test]
    fn the_same_manifest_plans_nothing() {
        let p = plan(&snap(BASE, &[]), &snap(BASE, &[]));
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(p.summary(), "apply: no changes");
        assert_eq!(p.refusal(), None);
    }

    #[test]
    fn the_issue_summary_and_what_it_refuses() {
        let new = BASE
            .replace("rate_hz = 100", "rate_hz = 200")
            .replace("alpha = 0.5", "alpha = 0.9")
            + r#"
[[node]]
name = "sink"
plugin = "libx.so"

[[connect]]
from = "filter.out"
to = "sink.in"
"#;
        let p = plan(&snap(BASE, &[]), &snap(&new, &[]));
        assert_eq!(
            p.summary(),
            "apply: +1 node, -0, ~2 changed (imu: rate_hz 100 → 200; filter: config), +1 connection"
        );
        assert_eq!(p.added, vec!["sink".to_owned()]);
        assert_eq!(
            p.refusal(),
            None,
            "a node added with its own connection applies live"
        );
    }

    #[test]
    fn a_node_removed_with_its_connections_applies_live() {
        let new = BASE
            .replace(
                "[[node]]\nname = \"imu\"\nplugin = \"libx.so\"\nrate_hz = 100\n",
                "",
            )
            .replace("[[connect]]\nfrom = \"imu.out\"\nto = \"filter.in\"\n", "");
        let p = plan(&snap(BASE, &[]), &snap(&new, &[]));
        assert_eq!(p.removed, vec!["imu".to_owned()]);
        // A default priority is the node's place in the manifest: `filter` moved up.
        assert_eq!(
            p.summary(),
            "apply: +0 nodes, -1, ~1 changed (filter: priority 1 → 0), -1 connection"
        );
        assert_eq!(p.refusal(), None, "{p:?}");
    }

    /// A port plan on `topic` with a ring for `capacity` messages of 8 bytes.
    fn port(output: bool, topic: &str, capacity: u32, qos: Qos) -> PortPlan {
        let spec = crate::topic::PlanSpec {
            type_name: "u64".into(),
            type_hash: 7,
            slot_size: 8,
            capacity,
            single_producer: true,
        };
        let topic = crate::topic::TopicName::Local(topic.into());
        if output {
            PortPlan::Output { topic, spec }
        } else {
            PortPlan::Input { topic, spec, qos }
        }
    }

    /// `BASE` with `filter`'s one port `in` bound as `plan`.
    fn wired(text: &str, plan: PortPlan) -> Snapshot {
        let mut s = snap(text, &[]);
        s.nodes[1].ports = vec![plan];
        s.nodes[1].port_names = vec!["in".into()];
        s
    }

    #[test]
    fn running_nodes_are_rewired_port_by_port() {
        // A connection between two running nodes added, with a node added alongside: planned,
        // not refused (the running node's ports are bound anew, one by one).
        let new = BASE.to_owned()
            + "[[node]]\nname = \"sink\"\nplugin = \"libx.so\"\n\n\
               [[connect]]\nfrom = \"filter.out\"\ntopic = \"t\"\n";
        let p = plan(&snap(BASE, &[]), &snap(&new, &[]));
        assert_eq!(p.refusal(), None, "{p:?}");
        assert_eq!(p.connections_added, vec!["filter.out -> topic `t`".to_owned()]);
        let keep_last = Qos::KeepLast(4);
        let old = wired(BASE, port(false, "imu.out", 4, keep_last));
        // Disconnected.
        let p = plan(&old, &wired(BASE, PortPlan::Unconnected { output: false }));
        assert_eq!(p.rebinds.len(), 1, "{p:?}");
        assert_eq!(
            (
                p.rebinds[0].node.as_str(),
                p.rebinds[0].port.as_str(),
                p.rebinds[0].index
            ),
            ("filter", "in", 0)
        );
        // Its queue made reliable, the ring as large as it was: the same ring, re-bound.
        let p = plan(&old, &wired(BASE, port(false, "imu.out", 4, Qos::Reliable(4))));
        assert_eq!(p.rebinds.len(), 1, "{p:?}");
        assert_eq!(p.refusal(), None);
        // A ring larger than the new manifest needs is kept, and remembered as it runs.
        let p = plan(&old, &wired(BASE, port(false, "imu.out", 2, keep_last)));
        assert!(p.rebinds.is_empty() && p.refusal().is_none(), "{p:?}");
        assert_eq!(p.kept.len(), 1);
        let applied = p.as_applied(wired(BASE, port(false, "imu.out", 2, keep_last)));
        assert_eq!(applied.nodes[1].ports, old.nodes[1].ports);
        // A ring that would have to grow: the topic moves to a new one (see below).
        let p = plan(&old, &wired(BASE, port(false, "imu.out", 16, Qos::Reliable(16))));
        assert_eq!(p.refusal(), None, "{p:?}");
        assert_eq!(p.rebinds[0].plan, port(false, "imu.out~2", 16, Qos::Reliable(16)));
    }

    /// `BASE` (and a `sink` node, if `text` has one) with the topic `imu.out` under `name`:
    /// `imu.out` publishes it, `filter.in` and `sink.in` read it with `qos`, a ring for
    /// `capacity` messages.
    fn streamed(text: &str, name: &str, capacity: u32, qos: Qos) -> Snapshot {
        let mut s = snap(text, &[]);
        for (i, n) in s.manifest.nodes.iter().enumerate() {
            let (p, output) = if n.name == "imu" {
                ("out", true)
            } else {
                ("in", false)
            };
            s.nodes[i].ports = vec![port(output, name, capacity, qos)];
            s.nodes[i].port_names = vec![p.into()];
        }
        s
    }

    /// Issue #16: a private topic whose ring must grow moves to a new ring under a new name,
    /// every endpoint with it (running nodes re-bound, an added node bound to the new ring);
    /// the running snapshot keeps the new name, and a later manifest compares with it.
    #[test]
    fn a_private_topic_whose_ring_must_grow_moves_to_a_new_ring() {
        let with_sink = BASE.to_owned()
            + "[[node]]\nname = \"sink\"\nplugin = \"libx.so\"\n\n\
               [[connect]]\nfrom = \"imu.out\"\nto = \"sink.in\"\nqos = \"reliable(64)\"\n";
        let running = streamed(BASE, "imu.out", 4, Qos::Reliable(4));
        let new = streamed(&with_sink, "imu.out", 64, Qos::Reliable(64));
        let p = plan(&running, &new);
        assert_eq!(p.refusal(), None, "{p:?}");
        assert_eq!(
            p.moved,
            vec![TopicMove {
                from: "imu.out".into(),
                to: "imu.out~2".into()
            }]
        );
        let mut rebound: Vec<_> = p
            .rebinds
            .iter()
            .map(|r| (r.node.as_str(), r.port.as_str(), r.moved, r.plan.clone()))
            .collect();
        rebound.sort_by_key(|r| r.0);
        assert_eq!(
            rebound,
            vec![
                (
                    "filter",
                    "in",
                    true,
                    port(false, "imu.out~2", 64, Qos::Reliable(64))
                ),
                ("imu", "out", true, port(true, "imu.out~2", 64, Qos::Reliable(64))),
            ]
        );
        assert_eq!(p.added, vec!["sink".to_owned()]);
        let mut sink = new.nodes[2].ports.clone();
        p.rename(&mut sink);
        assert_eq!(
            sink,
            vec![port(false, "imu.out~2", 64, Qos::Reliable(64))],
            "the added node binds the new ring"
        );
        assert!(
            p.summary().contains("topic `imu.out` moved to a larger ring"),
            "{}",
            p.summary()
        );
        // Applied: the same manifest again plans nothing, one that keeps the ring keeps its name.
        let applied = p.as_applied(new.clone());
        assert_eq!(
            applied.nodes[0].ports,
            vec![port(true, "imu.out~2", 64, Qos::Reliable(64))]
        );
        let again = plan(&applied, &new);
        assert!(again.rebinds.is_empty() && again.moved.is_empty(), "{again:?}");
        let keep_last = plan(&applied, &streamed(&with_sink, "imu.out", 64, Qos::KeepLast(64)));
        assert_eq!(keep_last.refusal(), None);
        assert!(keep_last.moved.is_empty(), "{keep_last:?}");
        assert_eq!(keep_last.rebinds.len(), 2, "{keep_last:?}");
        assert!(keep_last
            .rebinds
            .iter()
            .all(|r| r.plan == port(false, "imu.out~2", 64, Qos::KeepLast(64)) && !r.moved));
        // Growing again: `~3`.
        let p = plan(
            &applied,
            &streamed(&with_sink, "imu.out", 256, Qos::Reliable(256)),
        );
        assert_eq!(p.moved[0].to, "imu.out~3");
        assert_eq!(p.rebinds.len(), 3, "{p:?}");
        assert!(p.rebinds.iter().all(|r| r.moved), "{p:?}");
        // A larger slot moves it too.
        let mut bigger = streamed(BASE, "imu.out", 4, Qos::Reliable(4));
        for n in &mut bigger.nodes {
            if let PortPlan::Output { spec, .. } | PortPlan::Input { spec, .. } = &mut n.ports[0] {
                spec.slot_size = 4096;
            }
        }
        assert_eq!(plan(&running, &bigger).moved.len(), 1);
        assert_eq!(
            (base("a.b~12"), base("a.b"), base("net.in/x~2")),
            ("a.b", "a.b", "net.in/x~2")
        );
        assert_eq!(
            (next_name("a.b"), next_name("a.b~9")),
            ("a.b~2".to_owned(), "a.b~10".to_owned())
        );
    }

    /// Issue #16: a named topic's ring is shared with other processes: one that must grow is
    /// refused, saying why and what to do.
    #[test]
    fn a_named_topic_whose_ring_must_grow_is_refused() {
        let named = |capacity: u32, qos: Qos| {
            let mut s = snap(BASE, &[]);
            s.nodes[1].ports = vec![PortPlan::Input {
                topic: TopicName::Named("robot/imu".into()),
                spec: crate::topic::PlanSpec {
                    type_name: "u64".into(),
                    type_hash: 7,
                    slot_size: 8,
                    capacity,
                    single_producer: false,
                },
                qos,
            }];
            s.nodes[1].port_names = vec!["in".into()];
            s
        };
        let p = plan(&named(64, Qos::Reliable(64)), &named(200, Qos::Reliable(200)));
        assert!(p.moved.is_empty() && p.rebinds.is_empty(), "{p:?}");
        let why = p.refusal().expect("refused");
        assert!(
            why.starts_with(
                "apply refused: the named topic `robot/imu` of `filter.in`: its ring of 64 messages would have to hold 200"
            ),
            "{why}"
        );
        assert!(
            why.contains("shared with other processes") && why.contains("restart the host"),
            "{why}"
        );
    }

    #[test]
    fn settings_and_config_apply_live() {
        let new = BASE
            .replace("rate_hz = 100", "rate_hz = 50\npriority = 3\ndeadline_ms = 5")
            .replace("alpha = 0.5", "alpha = 0.9")
            .replace("tick_rate = 400", "tick_rate = 200\nmax_failures = 9");
        let p = plan(&snap(BASE, &[]), &snap(&new, &[]));
        assert_eq!(p.refusal(), None, "{p:?}");
        assert_eq!(p.tick_rate, Some(200.0));
        assert_eq!(p.supervision.as_ref().map(|s| s.max_failures), Some(9));
        assert_eq!(
            p.changed[0].changes,
            vec![
                NodeChange::Priority(0, 3),
                NodeChange::RateHz(Some(100.0), Some(50.0)),
                NodeChange::Deadline(None, Some(std::time::Duration::from_millis(5))),
            ]
        );
        assert_eq!(p.changed[1].changes, vec![NodeChange::Config]);
        assert!(
            p.summary().contains("scheduler: tick_rate 400 → 200"),
            "{}",
            p.summary()
        );
    }

    #[test]
    fn an_isolation_change_is_a_move_with_its_config() {
        let new = BASE
            .replace("name = \"filter\"", "name = \"filter\"\nisolation = \"process\"")
            .replace("alpha = 0.5", "alpha = 0.9");
        let p = plan(&snap(BASE, &[]), &snap(&new, &[]));
        assert_eq!(p.refusal(), None, "{p:?}");
        assert_eq!(
            p.summary(),
            "apply: +0 nodes, -0, ~1 changed (filter: isolation inline → process, config)"
        );
    }

    #[test]
    fn a_preset_is_its_tick_rate() {
        let new = BASE.replace("tick_rate = 400", "preset = \"realtime\"");
        let p = plan(&snap(BASE, &[]), &snap(&new, &[]));
        assert_eq!(p.tick_rate, Some(1000.0));
        assert_eq!(p.refusal(), None);
    }

    #[test]
    fn locations_alone_are_no_change() {
        let new = format!("# a comment moves every line\n\n{BASE}");
        assert!(plan(&snap(BASE, &[]), &snap(&new, &[])).is_empty());
    }

    #[test]
    fn hub_tables_apply_live() {
        // A local hub: nothing for the bridges to do.
        let local = BASE.replacen(
            "tick_rate = 400",
            "tick_rate = 400\n\n[hub.h]\nmode = \"local\"",
            1,
        );
        let p = plan(&snap(BASE, &[]), &snap(&local, &[]));
        assert_eq!(p.refusal(), None, "{p:?}");
        assert!(p.hubs && p.net.is_empty(), "{p:?}");
        assert_eq!(p.summary(), "apply: +0 nodes, -0, ~0 changed, hubs");
        if !cfg!(feature = "network") {
            return; // Validation refuses tcp hubs (H0026).
        }
        // A tcp hub is opened, and closed again.
        let tcp = BASE.replacen(
            "tick_rate = 400",
            "tick_rate = 400\n\n[hub.h]\nmode = \"tcp\"\naddress = \"127.0.0.1:7447\"",
            1,
        );
        let p = plan(&snap(BASE, &[]), &snap(&tcp, &[]));
        assert_eq!(p.refusal(), None, "{p:?}");
        assert_eq!(p.net.hubs_opened, [hub("h", 7447)]);
        assert_eq!(p.summary(), "apply: +0 nodes, -0, ~0 changed, +1 hub");
        let p = plan(&snap(&tcp, &[]), &snap(BASE, &[]));
        assert_eq!(p.refusal(), None, "{p:?}");
        assert_eq!(p.net.hubs_closed, ["h"]);
        assert_eq!(p.summary(), "apply: +0 nodes, -0, ~0 changed, -1 hub");
    }

    fn hub(name: &str, port: u16) -> HubSpec {
        HubSpec {
            name: name.into(),
            mode: HubMode::Tcp,
            address: Some(format!("127.0.0.1:{port}")),
        }
    }

    fn net(hub: &str, key: &str, outbound: bool, capacity: u32) -> NetTopic {
        let dir = if outbound { "out" } else { "in" };
        NetTopic {
            hub: hub.into(),
            key: key.into(),
            local: crate::topic::TopicName::Local(format!("net.{dir}/{key}")),
            spec: crate::topic::PlanSpec {
                type_name: "bytes".into(),
                type_hash: 7,
                slot_size: 64,
                capacity,
                single_producer: true,
            },
            outbound,
            qos: Qos::KeepLast(capacity as usize),
        }
    }

    #[test]
    fn a_hub_keeps_its_session_while_its_address_stays() {
        let old = [hub("a", 1), hub("b", 2), hub("gone", 5)];
        let new = [hub("a", 1), hub("b", 3), hub("c", 4)];
        let c = net_changes((&old, &[]), (&new, &[]));
        assert_eq!(c.hubs_kept, ["a"]);
        assert_eq!(c.hubs_opened, [hub("b", 3), hub("c", 4)]);
        assert_eq!(c.hubs_closed, ["b", "gone"]);
        assert!(!c.is_empty());
        assert!(net_changes((&old, &[]), (&old, &[])).is_empty());
    }

    #[test]
    fn the_topics_of_a_kept_hub_change_one_by_one() {
        let hubs = [hub("a", 1), hub("b", 2)];
        let old = [
            net("a", "a/same", true, 4),
            net("a", "a/deeper", false, 4),
            net("a", "a/gone", true, 4),
            net("b", "b/x", true, 4),
        ];
        let new = [
            net("a", "a/same", true, 4),
            net("a", "a/deeper", false, 8),
            // Same key, the other direction: another bridge.
            net("a", "a/gone", false, 4),
            net("a", "a/new", true, 4),
            net("c", "c/y", true, 4),
        ];
        let new_hubs = [hub("a", 1), hub("c", 3)];
        let c = net_changes((&hubs, &old), (&new_hubs, &new));
        assert_eq!(c.hubs_kept, ["a"]);
        assert_eq!(c.hubs_closed, ["b"]);
        assert_eq!(c.hubs_opened, [hub("c", 3)]);
        let keys = |v: &[NetTopic]| v.iter().map(|t| (t.key.clone(), t.outbound)).collect::<Vec<_>>();
        assert_eq!(
            keys(&c.topics_added),
            [("a/gone".into(), false), ("a/new".into(), true)]
        );
        assert_eq!(keys(&c.topics_removed), [("a/gone".into(), true)]);
        assert_eq!(c.topics_changed, [net("a", "a/deeper", false, 8)]);
        // The topics of opened and closed hubs go with their hub.
        assert_eq!(c.topics, new);
    }

    #[test]
    fn a_process_nodes_config_applies_live_by_a_swap() {
        let base = BASE.replace("name = \"filter\"", "name = \"filter\"\nisolation = \"process\"");
        let p = plan(
            &snap(&base, &[]),
            &snap(&base.replace("alpha = 0.5", "alpha = 1.0"), &[]),
        );
        assert_eq!(p.refusal(), None, "{p:?}");
        assert_eq!(p.changed[0].changes, vec![NodeChange::Config]);
        assert!(p.changed[0].changes[0].swaps());
        let p = plan(
            &snap(&base, &[]),
            &snap(&base.replace("config =", "rate_hz = 10\nconfig ="), &[]),
        );
        assert_eq!(p.refusal(), None);
        assert!(!p.changed[0].changes[0].swaps());
    }

    #[test]
    fn a_plugin_change_applies_live_by_a_swap() {
        let new = BASE.replacen("plugin = \"libx.so\"\nconfig", "plugin = \"liby.so\"\nconfig", 1);
        let mut new = snap(&new, &[]);
        new.nodes[1].plugin = PathBuf::from("/base/liby.so");
        let p = plan(&snap(BASE, &[]), &new);
        assert_eq!(p.changed[0].name, "filter");
        assert_eq!(p.changed[0].changes, vec![NodeChange::Plugin]);
        assert!(p.changed[0].changes[0].swaps());
        assert_eq!(p.refusal(), None, "{p:?}");
        assert_eq!(p.summary(), "apply: +0 nodes, -0, ~1 changed (filter: plugin)");
    }

    #[test]
    fn logging_and_watchdogs_apply_live_in_place() {
        let new = BASE
            .replace(
                "rate_hz = 100",
                "rate_hz = 100\nwatchdog_ms = 500\nlogging = false",
            )
            .replace("tick_rate = 400", "tick_rate = 400\nwatchdog_enabled = true");
        let p = plan(&snap(BASE, &[]), &snap(&new, &[]));
        assert_eq!(p.refusal(), None, "{p:?}");
        assert_eq!(
            p.changed[0].changes,
            vec![
                NodeChange::Watchdog(None, Some(std::time::Duration::from_millis(500))),
                NodeChange::Logging(true, false),
            ]
        );
        assert!(p.changed[0].changes.iter().all(|c| !c.swaps()));
        assert_eq!(p.scheduler, vec![SchedulerChange::Watchdog]);
        assert!(matches!(p.watchdog, Some((true, _))), "{p:?}");
    }

    #[test]
    fn triggers_apply_live_in_place() {
        let new = BASE.replace(
            "config = { alpha",
            "trigger = [\"in\"]\ntimeout_ms = 50\nconfig = { alpha",
        );
        let p = plan(&snap(BASE, &[]), &snap(&new, &[]));
        assert_eq!(p.refusal(), None, "{p:?}");
        assert_eq!(
            p.changed[0].changes,
            vec![
                NodeChange::Trigger(Trigger::Rate, Trigger::Ports(vec!["in".into()])),
                NodeChange::Timeout(None, Some(std::time::Duration::from_millis(50))),
            ]
        );
        assert!(p.changed[0].changes.iter().all(|c| !c.swaps()));
        assert!(
            p.summary()
                .ends_with("(filter: trigger rate → [\"in\"], timeout_ms none → 50)"),
            "{}",
            p.summary()
        );
    }

    const PY: &str = r#"
[[node]]
name = "py"
python = "node.py"
class = "Node"
config = { gain = 1 }
"#;

    #[test]
    fn a_python_nodes_config_file_and_class_apply_live_but_not_its_venv() {
        let dir = tempfile::tempdir().unwrap();
        for file in ["node.py", "other.py", "venv/bin/python"] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        let snap = |text: &str| snap_in(text, &[], dir.path());
        let running = snap(PY);
        let p = plan(&running, &snap(&PY.replace("gain = 1", "gain = 2")));
        assert_eq!(p.changed[0].changes, vec![NodeChange::Config]);
        assert_eq!(p.refusal(), None, "{p:?}");
        let p = plan(
            &running,
            &snap(&PY.replace("node.py", "other.py").replace("\"Node\"", "\"Other\"")),
        );
        assert_eq!(p.changed[0].changes, vec![NodeChange::Python]);
        assert!(p.changed[0].changes[0].swaps());
        assert_eq!(p.refusal(), None, "{p:?}");
        let p = plan(
            &running,
            &snap(&PY.replace("class = \"Node\"", "class = \"Node\"\nvenv = \"venv\"")),
        );
        assert_eq!(p.changed[0].changes, vec![NodeChange::Venv]);
        let why = p.refusal().expect("refused");
        assert!(
            why.starts_with("apply refused: node `py`: a Python node's `venv` cannot change live (a host process runs one Python interpreter"),
            "{why}"
        );
        assert!(why.ends_with("restart the host to apply this manifest"), "{why}");
    }

    fn port_info(name: &str, output: bool) -> crate::ffi::PortInfo {
        crate::ffi::PortInfo {
            name: name.into(),
            type_name: "u64".into(),
            type_hash: 7,
            output,
            encoding: 0,
            max_size: 8,
        }
    }

    #[test]
    fn a_node_type_without_the_running_nodes_ports_is_refused_naming_the_port() {
        let mut running = snap(BASE, &[]);
        running.nodes[0].port_types = vec![port_info("out", true)];
        let mut new = snap(BASE, &[("imu", "Summer")]);
        new.nodes[0].port_types = vec![port_info("numbers", false)];
        let p = plan(&running, &new);
        let why = p.incompatible(&running, &new).expect("refused");
        assert_eq!(
            why,
            "apply refused: node `imu`: node type `Summer` of /base/libx.so cannot replace the running \
             `T` on its topics: node type `Summer` removed the output `out`; keep the node's ports, or \
             restart the host to apply this manifest"
        );
        // Ports added are fine.
        new.nodes[0].port_types = vec![port_info("numbers", false), port_info("out", true)];
        assert_eq!(plan(&running, &new).incompatible(&running, &new), None);
    }

    #[test]
    fn a_node_type_resolved_differently_is_a_type_change() {
        let p = plan(&snap(BASE, &[]), &snap(BASE, &[("imu", "Other")]));
        assert_eq!(
            p.changed[0].changes,
            vec![NodeChange::Type("T".into(), "Other".into())]
        );
        assert_eq!(p.refusal(), None, "a swap; its ports are checked by the applier");
        assert!(p.changed[0].changes[0].swaps());
    }

    /// A folder with the Python files and environments the Python tests name.
    fn python_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for f in ["one.py", "two.py", "smoother.py"] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        for v in ["venvs/a", "venvs/b"] {
            std::fs::create_dir_all(d.path().join(v).join("bin")).unwrap();
            std::fs::write(d.path().join(v).join("bin/python"), "").unwrap();
        }
        d
    }

    /// A Python node `name` (file `<name>.py`), in environment `venv` (none: `python3`).
    fn python_decl(name: &str, venv: Option<&str>) -> String {
        let venv = venv.map_or(String::new(), |v| format!("venv = \"{v}\"\n"));
        format!("\n[[node]]\nname = \"{name}\"\npython = \"{name}.py\"\nclass = \"N\"\n{venv}")
    }

    #[test]
    fn python_nodes_are_added_and_removed_live() {
        let d = python_dir();
        let snap = |text: &str| snap_in(text, &[], d.path());
        let with = BASE.to_owned() + &python_decl("smoother", None);
        let p = plan(&snap(BASE), &snap(&with));
        assert_eq!(p.added, vec!["smoother".to_owned()]);
        assert_eq!(p.refusal(), None, "{p:?}");
        let p = plan(&snap(&with), &snap(BASE));
        assert_eq!(p.removed, vec!["smoother".to_owned()]);
        assert_eq!(p.refusal(), None, "{p:?}");
    }

    #[test]
    fn a_python_node_of_another_environment_is_refused() {
        let d = python_dir();
        let snap = |text: &str| snap_in(text, &[], d.path());
        let one_a = BASE.to_owned() + &python_decl("one", Some("venvs/a"));
        // The host runs the interpreter of `venvs/a`; a node of `venvs/b` cannot join it.
        let new = one_a.clone() + &python_decl("two", Some("venvs/b"));
        let why = plan(&snap(&one_a), &snap(&new)).refusal().expect("refused");
        assert!(
            why.starts_with("apply refused: node `two` would run in the Python environment of `")
                && why.contains("venvs/b/bin/python`, but this host already runs the interpreter of `")
                && why.contains("venvs/a/bin/python`")
                && why.contains("one Python interpreter per process"),
            "{why}"
        );
        // The interpreter stays when its nodes are gone: a host that ran one has it for good.
        let mut emptied = snap(BASE);
        emptied.interpreter = Some(d.path().join("venvs/a/bin/python"));
        let two_b = BASE.to_owned() + &python_decl("two", Some("venvs/b"));
        let p = plan(&emptied, &snap(&two_b));
        assert!(p.refusal().expect("refused").contains("node `two`"), "{p:?}");
        let two_a = BASE.to_owned() + &python_decl("two", Some("venvs/a"));
        assert_eq!(
            plan(&emptied, &snap(&two_a)).refusal(),
            None,
            "the same environment joins it"
        );
        // A host without Python takes any one environment, not two at once.
        let why = plan(&snap(BASE), &snap(&new)).refusal().expect("refused");
        assert!(
            why.contains("node `two`") && why.contains("venvs/a/bin/python"),
            "{why}"
        );
        assert_eq!(plan(&snap(BASE), &snap(&two_b)).refusal(), None);
    }

    #[test]
    fn build_and_watch_keys_apply_live() {
        let base = BASE.replace(
            "rate_hz = 100",
            "rate_hz = 100\nbuild = \"make\"\nwatch = [\"src/**\"]",
        );
        let new = base.replace("src/**", "lib/**");
        let p = plan(&snap(&base, &[]), &snap(&new, &[]));
        assert_eq!(p.changed[0].changes, vec![NodeChange::Build]);
        assert_eq!(p.refusal(), None, "{p:?}");
        assert_eq!(p.summary(), "apply: +0 nodes, -0, ~1 changed (imu: build/watch)");
    }

    #[test]
    fn hot_reload_toggled_is_planned_for_the_applier() {
        let p = plan(
            &snap(BASE, &[]),
            &snap(
                &BASE.replace("tick_rate = 400", "tick_rate = 400\nhot_reload = true"),
                &[],
            ),
        );
        assert_eq!(p.hot_reload, Some(true));
        assert_eq!(p.refusal(), None, "the applier decides: {p:?}");
        assert!(p.summary().ends_with("scheduler: hot_reload"), "{}", p.summary());
    }

    #[test]
    fn a_plugin_path_that_resolves_the_same_files_changes_no_node() {
        let new = format!("[plugins]\npath = [\"/elsewhere\"]\n{BASE}");
        let p = plan(&snap(BASE, &[]), &snap(&new, &[]));
        assert!(p.plugin_path);
        assert!(p.changed.is_empty(), "{p:?}");
        assert_eq!(p.refusal(), None, "{p:?}");
        assert_eq!(p.summary(), "apply: +0 nodes, -0, ~0 changed, [plugins] path");
        // A node whose plugin the new path resolves to another file is a plugin change.
        let mut moved = snap(&new, &[]);
        moved.nodes[0].plugin = PathBuf::from("/elsewhere/libx.so");
        let p = plan(&snap(BASE, &[]), &moved);
        assert_eq!(p.changed[0].name, "imu");
        assert_eq!(p.changed[0].changes, vec![NodeChange::Plugin]);
    }
}
