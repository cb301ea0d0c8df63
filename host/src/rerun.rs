//! `horus replay in.mcap --manifest m.toml --node NAME [--check]`: one node of a manifest run
//! again over a recording, deterministically (issue 19, item 3), so that a recording becomes a
//! regression test for that node.
//!
//! The node is loaded as a host loads it — its plugin, node type and config as the manifest
//! says, a [`NodeInstance`] on the ffi path — in this process, on this thread, with its ports
//! bound to private topics of this process ([`TopicScope::bind`], the manifest's QoS), so its
//! code reads and sends exactly as in a live run. The run merges two recorded streams by log
//! time ([`schedule`]): the messages of the channels that feed the node's inputs
//! ([`PortChannel`]: a connection from output `a.b` is channel `a.b`, a named topic `t` is
//! channel `t`), and the node's ticks (channel [`TICKS_CHANNEL`]). Before each tick, every input
//! message logged before the tick's start is published into the node's input; the node's clock
//! is pinned at the tick's recorded `time_ns` ([`NodeIo::pin_clock`]); the node ticks; what it
//! published on each output is collected. `--check` compares those outputs, port by port and in
//! order, byte for byte, with the recorded messages of the output channels
//! ([`first_difference`]).
//!
//! Owns: which channel feeds or records which port, reading those channels and the node's ticks
//! out of the file, the merge, the run and the comparison. Does not own the recording's format
//! (`crate::record`), loading a manifest's nodes (`crate::graph`, `crate::ffi`) or showing
//! messages to people (`crate::topic_cli::describe`).

use crate::ffi::{CallError, NodeInstance};
use crate::graph::{Graph, Inspector};
use crate::io::NodeIo;
use crate::manifest::NodeCode;
pub use crate::record::TICKS_CHANNEL;
use crate::run::HostError;
use crate::shm::{self, Publisher, SendError, Subscriber};
use crate::topic::{PlanSpec, PortPlan, TopicName, TopicScope};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What `horus replay --node` was asked.
#[derive(Debug, Clone)]
pub struct RerunArgs {
    /// The MCAP file (made by `horus run --record`).
    pub input: PathBuf,
    /// The manifest the node is declared in.
    pub manifest: PathBuf,
    /// The node's name in the manifest.
    pub node: String,
    /// Compare the node's outputs with the recorded ones.
    pub check: bool,
    /// The `horus` binary, to open the plugins of `process` nodes in a child first, as
    /// `horus run` does.
    pub inspector: Option<PathBuf>,
}

/// A re-run that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RerunError {
    /// A wrong argument: an unknown node, a node the recording did not tick, a file without
    /// ticks, a Python node.
    #[error("{0}")]
    Usage(String),
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The manifest or a plugin is wrong (its diagnostics).
    #[error(transparent)]
    Manifest(#[from] HostError),
    /// A channel cannot feed the node.
    #[error("{path}: channel `{channel}`: {reason}")]
    Channel {
        /// The file.
        path: PathBuf,
        /// The channel.
        channel: String,
        /// Why, and what to do.
        reason: String,
    },
    /// The node failed to start.
    #[error("node `{node}`: {phase} failed: {error}")]
    Node {
        /// The node.
        node: String,
        /// `create` or `init`.
        phase: &'static str,
        /// The node's error.
        error: CallError,
    },
    /// A port could not be bound, fed or read.
    #[error("node `{node}`, port `{port}`: {reason}")]
    Port {
        /// The node.
        node: String,
        /// The port.
        port: String,
        /// Why.
        reason: String,
    },
    /// Ctrl-C (or SIGTERM) stopped the replay.
    #[error("interrupted after {done} of {ticks} ticks")]
    Interrupted {
        /// Ticks replayed.
        done: usize,
        /// Ticks recorded.
        ticks: usize,
    },
    /// Ctrl-C could not be caught.
    #[error(transparent)]
    Signals(#[from] crate::topic_cli::TopicError),
}

impl RerunError {
    /// 2 for what the user can fix in the arguments, the file or the manifest; 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RerunError::Usage(_) | RerunError::File { .. } | RerunError::Channel { .. } => 2,
            RerunError::Manifest(e) => u8::try_from(e.exit_code()).unwrap_or(1),
            _ => 1,
        }
    }
}

/// A recorded message: its publish time (Unix ns, MCAP `log_time`), its sequence number on its
/// ring, and the bytes it travelled as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded<'a> {
    /// MCAP `log_time`.
    pub log_time: u64,
    /// MCAP `sequence`.
    pub sequence: u32,
    /// The message's bytes.
    pub data: Cow<'a, [u8]>,
}

/// One recorded tick of the node (a [`TICKS_CHANNEL`] message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// The node's tick number, from 1.
    pub tick: u64,
    /// The tick's start, Unix ns (MCAP `log_time`).
    pub log_time: u64,
    /// The node's clock at the tick's start: ns since its scheduler started.
    pub time_ns: u64,
}

/// A [`TICKS_CHANNEL`] message's fields that a re-run uses.
#[derive(Debug, serde::Deserialize)]
struct TickRecord {
    node: String,
    tick: u64,
    time_ns: u64,
}

/// One step of a re-run, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Publish message `index` of input channel `input` into the ports it feeds.
    Feed {
        /// The input channel (index into the `inputs` given to [`schedule`]).
        input: usize,
        /// The message (index into that channel's messages).
        index: usize,
    },
    /// Tick the node: tick `0` of the `ticks` given to [`schedule`], and so on.
    Tick(usize),
}

/// The order of a re-run: before each tick, every input message whose `log_time` is earlier
/// than the tick's (strictly), in `log_time` order (ties: by channel, then as recorded); then
/// the tick. Ticks go in their recorded order. Returns the steps and the number of messages
/// logged after the last tick, which no tick would have read and which are not fed.
pub fn schedule(inputs: &[&[Recorded<'_>]], ticks: &[Tick]) -> (Vec<Step>, usize) {
    let mut messages: Vec<(u64, usize, usize)> = inputs
        .iter()
        .enumerate()
        .flat_map(|(c, msgs)| msgs.iter().enumerate().map(move |(i, m)| (m.log_time, c, i)))
        .collect();
    // Stable: within one channel, ties keep the recorded order.
    messages.sort_by_key(|&(t, c, _)| (t, c));
    let mut steps = Vec::with_capacity(messages.len() + ticks.len());
    let mut next = 0;
    for (k, tick) in ticks.iter().enumerate() {
        while let Some(&(t, input, index)) = messages.get(next) {
            if t >= tick.log_time {
                break;
            }
            steps.push(Step::Feed { input, index });
            next += 1;
        }
        steps.push(Step::Tick(k));
    }
    (steps, messages.len() - next)
}

/// When the node published a message: in `init`, in a tick (its number), or in `shutdown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// In `create` or `init`, before the first tick.
    Init,
    /// In the recorded tick of this number.
    Tick(u64),
    /// In `shutdown`, after the last tick.
    Shutdown,
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Phase::Init => write!(f, "in create/init"),
            Phase::Tick(n) => write!(f, "in tick {n}"),
            Phase::Shutdown => write!(f, "in shutdown"),
        }
    }
}

/// A message the node published during the re-run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produced {
    /// When.
    pub at: Phase,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// The index of the first message where `recorded` and `replayed` differ, byte for byte; one
/// list ending before the other is a difference at its end. `None`: identical.
pub fn first_difference(recorded: &[Recorded<'_>], replayed: &[Produced]) -> Option<usize> {
    let n = recorded.len().max(replayed.len());
    (0..n).find(|&i| recorded.get(i).map(|m| &*m.data) != replayed.get(i).map(|p| &p.data[..]))
}

/// The recorded channel of one connected port of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortChannel {
    /// The port's index in the node type.
    pub port: usize,
    /// The port's name.
    pub name: String,
    /// True for an output.
    pub output: bool,
    /// The channel: the ring's name as the recorder names it (`node.port` of a connection's
    /// publisher, a named topic's name).
    pub channel: String,
    /// The port's message type.
    pub type_name: String,
    /// An output whose topic other nodes of the manifest publish on too: the channel is not
    /// this node's alone, so it is not compared.
    pub shared: bool,
}

/// The channel of a topic, as the recorder names it: a private ring by its `node.port` (or
/// `net.in/<topic>`, `net.out/<topic>` for a network topic's ring), a named topic by its name.
fn channel_of(topic: &TopicName) -> String {
    match topic {
        TopicName::Local(n) | TopicName::Named(n) => n.clone(),
    }
}

/// The recorded channel of each connected port of node `node` of `graph`, in port order.
pub fn port_channels(graph: &Graph, node: usize) -> Vec<PortChannel> {
    let n = &graph.nodes[node];
    n.ports
        .iter()
        .enumerate()
        .filter_map(|(pi, plan)| {
            let (topic, spec, output) = match plan {
                PortPlan::Output { topic, spec } => (topic, spec, true),
                PortPlan::Input { topic, spec, .. } => (topic, spec, false),
                PortPlan::Unconnected { .. } => return None,
            };
            let shared = output
                && graph.nodes.iter().enumerate().any(|(j, other)| {
                    j != node
                        && other
                            .ports
                            .iter()
                            .any(|p| matches!(p, PortPlan::Output { topic: t, .. } if t == topic))
                });
            Some(PortChannel {
                port: pi,
                name: n.port_names[pi].clone(),
                output,
                channel: channel_of(topic),
                type_name: spec.type_name.clone(),
                shared,
            })
        })
        .collect()
}

/// What a recording holds for one node: the channels its ports use, their messages, its ticks.
#[derive(Debug, Default)]
pub struct Extract<'a> {
    /// Every channel of the file by name: (message encoding, `horus.type` if any).
    pub channels: BTreeMap<String, (String, Option<String>)>,
    /// The messages of the wanted channels, by name, in file order.
    pub messages: HashMap<String, Vec<Recorded<'a>>>,
    /// The node's ticks, in file order.
    pub ticks: Vec<Tick>,
    /// Every node the ticks channel names.
    pub ticked: BTreeSet<String>,
    /// Why the file ended early (a recorder that was killed), if it did.
    pub truncated: Option<String>,
}

/// Reads the channels `wanted` and node `node`'s ticks out of the MCAP file `data`.
pub fn extract<'a>(data: &'a [u8], node: &str, wanted: &[&str]) -> Result<Extract<'a>, String> {
    enum Use {
        Messages(String),
        Ticks,
        Other,
    }
    let mut out = Extract::default();
    let mut by_id: HashMap<u16, Use> = HashMap::new();
    let records = mcap::read::ChunkFlattener::new(data).map_err(|e| crate::record::read_error(&e))?;
    let mut any = false;
    for record in records {
        let record = match record {
            Ok(r) => r,
            // What a killed recorder leaves: the records before are good.
            Err(e) if any => {
                out.truncated = Some(crate::record::read_error(&e));
                break;
            }
            Err(e) => return Err(crate::record::read_error(&e)),
        };
        any = true;
        match record {
            mcap::records::Record::Channel(c) => {
                let use_ = if c.topic == TICKS_CHANNEL {
                    Use::Ticks
                } else if wanted.contains(&c.topic.as_str()) {
                    out.messages.entry(c.topic.clone()).or_default();
                    Use::Messages(c.topic.clone())
                } else {
                    Use::Other
                };
                out.channels.insert(
                    c.topic.clone(),
                    (c.message_encoding.clone(), c.metadata.get("horus.type").cloned()),
                );
                by_id.insert(c.id, use_);
            }
            mcap::records::Record::Message { header, data } => match by_id.get(&header.channel_id) {
                Some(Use::Messages(name)) => {
                    out.messages.entry(name.clone()).or_default().push(Recorded {
                        log_time: header.log_time,
                        sequence: header.sequence,
                        data,
                    });
                }
                Some(Use::Ticks) => {
                    let t: TickRecord = serde_json::from_slice(&data).map_err(|e| {
                        format!(
                            "channel `{TICKS_CHANNEL}`: message {} is not a tick ({e})",
                            header.sequence
                        )
                    })?;
                    if t.node == node {
                        out.ticks.push(Tick {
                            tick: t.tick,
                            log_time: header.log_time,
                            time_ns: t.time_ns,
                        });
                    }
                    if !out.ticked.contains(&t.node) {
                        out.ticked.insert(t.node);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    Ok(out)
}

/// The message encodings a node can be fed: the bytes its topics carry.
const RAW_ENCODINGS: &[&str] = &["horus-pod", "horus-pyobject", "horus-image", "horus-raw"];

/// How one output compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every message equal.
    Identical,
    /// They differ from message `index` (from 0) on.
    Differs {
        /// The first differing message.
        index: usize,
    },
    /// Not compared, and why.
    Skipped(String),
}

/// One output of the re-run.
#[derive(Debug, Clone)]
pub struct OutputRun<'a> {
    /// The port and its channel.
    pub port: PortChannel,
    /// What the node published on it.
    pub replayed: Vec<Produced>,
    /// What the recording has on its channel (`None`: no such channel).
    pub recorded: Option<Vec<Recorded<'a>>>,
    /// How they compare.
    pub verdict: Verdict,
}

/// What a re-run did.
#[derive(Debug)]
pub struct Rerun<'a> {
    /// The node.
    pub node: String,
    /// The recording.
    pub input: PathBuf,
    /// Ticks replayed.
    pub ticks: usize,
    /// The `log_time` of the first tick (the origin of the times shown).
    pub start: u64,
    /// Input messages fed.
    pub fed: u64,
    /// Input messages logged after the last tick (not fed).
    pub not_fed: usize,
    /// Input messages a full `reliable` queue refused, by port.
    pub refused: BTreeMap<String, u64>,
    /// Ticks that returned an error: (tick, the node's message).
    pub failures: Vec<(u64, String)>,
    /// Each connected output.
    pub outputs: Vec<OutputRun<'a>>,
    /// Notes for the user (skipped ports, lost tick records).
    pub notes: Vec<String>,
}

impl Rerun<'_> {
    /// The earliest difference: by when the replay published the message (a missing message
    /// counts as after the last tick), then in port order.
    pub fn first_difference(&self) -> Option<(&OutputRun<'_>, usize)> {
        self.outputs
            .iter()
            .filter_map(|o| match o.verdict {
                Verdict::Differs { index } => {
                    let at = o.replayed.get(index).map_or(Phase::Shutdown, |p| p.at);
                    Some((at, o, index))
                }
                _ => None,
            })
            .min_by_key(|(at, o, _)| (*at, o.port.port))
            .map(|(_, o, index)| (o, index))
    }

    /// What the command prints, and its exit code: with `check`, the first difference (1) or
    /// `identical: …` (0); without, a summary (0).
    pub fn report(&self, check: bool) -> (String, u8) {
        let mut out = String::new();
        if check {
            if let Some((o, index)) = self.first_difference() {
                out.push_str(&self.describe_difference(o, index));
                return (out, 1);
            }
            let compared: Vec<&OutputRun<'_>> = self
                .outputs
                .iter()
                .filter(|o| o.verdict == Verdict::Identical)
                .collect();
            let messages: usize = compared.iter().map(|o| o.replayed.len()).sum();
            let _ = writeln!(
                out,
                "identical: {messages} messages on {} outputs over {} ticks",
                compared.len(),
                self.ticks
            );
            return (out, 0);
        }
        let _ = writeln!(
            out,
            "replayed node `{}` over {} ticks of {}: {} input messages fed{}",
            self.node,
            self.ticks,
            self.input.display(),
            self.fed,
            match self.not_fed {
                0 => String::new(),
                n => format!(" ({n} logged after the last tick, not fed)"),
            }
        );
        for o in &self.outputs {
            let recorded = match &o.recorded {
                Some(r) => format!("{} recorded", r.len()),
                None => "none recorded".into(),
            };
            let _ = writeln!(
                out,
                "  output `{}` (channel `{}`): {} messages, {recorded}",
                o.port.name,
                o.port.channel,
                o.replayed.len()
            );
        }
        (out, 0)
    }

    /// Seconds since the first tick, of a `log_time`.
    fn since_start(&self, log_time: u64) -> f64 {
        (log_time as i128 - self.start as i128) as f64 * 1e-9
    }

    fn describe_difference(&self, o: &OutputRun<'_>, index: usize) -> String {
        let recorded = o.recorded.as_deref().unwrap_or_default();
        let mut out = format!(
            "difference: node `{}`, output `{}` (channel `{}`), message {index} (counted from 0; {} recorded, {} replayed)\n",
            self.node,
            o.port.name,
            o.port.channel,
            recorded.len(),
            o.replayed.len()
        );
        let type_name = &o.port.type_name;
        match recorded.get(index) {
            Some(m) => {
                let _ = writeln!(
                    out,
                    "  recorded: sequence {}, log_time {} ({:.6} s after the node's first tick): {}",
                    m.sequence,
                    m.log_time,
                    self.since_start(m.log_time),
                    crate::topic_cli::describe(type_name, &m.data)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  recorded: nothing (the recording ends after {} messages)",
                    recorded.len()
                );
            }
        }
        match o.replayed.get(index) {
            Some(p) => {
                let _ = writeln!(
                    out,
                    "  replayed: {}: {}",
                    p.at,
                    crate::topic_cli::describe(type_name, &p.data)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  replayed: nothing (the node published {} messages)",
                    o.replayed.len()
                );
            }
        }
        out
    }
}

/// The room a re-run gives an output's ring: the node's sends of one call must all fit, since
/// they are read only after it returns (at least the planned capacity; up to 1024 slots within
/// 64 MiB).
fn output_capacity(spec: &PlanSpec) -> u32 {
    let stride = u64::from(shm::layout::stride(spec.slot_size));
    let room = ((64 << 20) / stride).clamp(2, 1024) as u32;
    spec.capacity.max(room)
}

/// The node's ports bound to private topics of this process, one per port, named
/// `<node>.<port>`: the same types, sizes and QoS as the manifest plans, none shared with a
/// running host.
fn private_plans(node: &str, names: &[String], plans: &[PortPlan]) -> Vec<PortPlan> {
    plans
        .iter()
        .zip(names)
        .map(|(plan, port)| {
            let topic = TopicName::Local(format!("{node}.{port}"));
            match plan {
                PortPlan::Input { spec, qos, .. } => PortPlan::Input {
                    topic,
                    spec: PlanSpec {
                        single_producer: true,
                        ..spec.clone()
                    },
                    qos: *qos,
                },
                PortPlan::Output { spec, .. } => PortPlan::Output {
                    topic,
                    spec: PlanSpec {
                        capacity: output_capacity(spec),
                        single_producer: true,
                        ..spec.clone()
                    },
                },
                other => other.clone(),
            }
        })
        .collect()
}

/// An input's publisher: the recorded messages go in through it.
struct Feeder {
    /// Index into the re-run's input channels.
    input: usize,
    port: String,
    publisher: Publisher,
    refused: u64,
}

/// An output's subscriber: what the node publishes comes out through it.
struct Collector {
    /// Index into the node's output ports ([`PortChannel`]s).
    output: usize,
    port: String,
    subscriber: Subscriber,
    got: Vec<Produced>,
}

/// The node under re-run, with the other end of each of its ports.
struct Bench {
    node: String,
    instance: NodeInstance,
    feeders: Vec<Feeder>,
    collectors: Vec<Collector>,
}

impl Bench {
    /// Takes what the node published in its last call.
    fn collect(&mut self, at: Phase) -> Result<(), RerunError> {
        for c in &mut self.collectors {
            let mut buf = Vec::new();
            while c.subscriber.try_recv(&mut buf).is_some() {
                c.got.push(Produced {
                    at,
                    data: std::mem::take(&mut buf),
                });
            }
            if c.subscriber.dropped() > 0 {
                return Err(RerunError::Port {
                    node: self.node.clone(),
                    port: c.port.clone(),
                    reason: format!(
                        "it sent more messages {at} than its topic holds ({}), so the replay lost some; \
                         give the connection a larger `max_size` or queue, or send fewer per tick",
                        c.subscriber.segment().capacity()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Publishes `msg` of input channel `input` into every port it feeds.
    fn feed(&mut self, input: usize, msg: &Recorded<'_>) -> Result<(), RerunError> {
        for f in self.feeders.iter_mut().filter(|f| f.input == input) {
            match f.publisher.send(&msg.data) {
                Ok(()) => {}
                // As live: a full `reliable` queue refuses the message.
                Err(SendError::Full | SendError::Pinned) => f.refused += 1,
                Err(e) => {
                    return Err(RerunError::Port {
                        node: self.node.clone(),
                        port: f.port.clone(),
                        reason: format!("recorded message {} (sequence) cannot be fed: {e}", msg.sequence),
                    })
                }
            }
        }
        Ok(())
    }
}

fn file_error(path: &Path, reason: impl Into<String>) -> RerunError {
    RerunError::File {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The index of node `name` in `graph`, or a usage error naming the nodes there are.
fn find_node(graph: &Graph, name: &str, manifest: &Path) -> Result<usize, RerunError> {
    if let Some(i) = graph.nodes.iter().position(|n| n.spec.name == name) {
        return Ok(i);
    }
    let names: Vec<&str> = graph.nodes.iter().map(|n| n.spec.name.as_str()).collect();
    let hint = match crate::diag::suggest(name, names.iter().copied()) {
        Some(s) => format!("did you mean `{s}`? "),
        None => String::new(),
    };
    Err(RerunError::Usage(format!(
        "{}: no node `{name}`; {hint}its nodes: {}",
        manifest.display(),
        names.join(", ")
    )))
}

/// Checks that input channel `pc` can feed its port: present (else a note), recorded as bytes,
/// of the port's type.
fn check_input(
    path: &Path,
    node: &str,
    pc: &PortChannel,
    ex: &Extract<'_>,
    notes: &mut Vec<String>,
) -> Result<(), RerunError> {
    let Some((encoding, type_name)) = ex.channels.get(&pc.channel) else {
        // The recorder adds a channel with its first message.
        notes.push(format!(
            "input `{}`: the recording has no channel `{}` (nothing was recorded on it): the node gets nothing there",
            pc.name, pc.channel
        ));
        return Ok(());
    };
    let channel_error = |reason: String| RerunError::Channel {
        path: path.to_path_buf(),
        channel: pc.channel.clone(),
        reason,
    };
    if encoding == "json" {
        return Err(channel_error(format!(
            "it was recorded as JSON (--json, --record-json), so the bytes node `{node}` reads on input `{}` are not in the file; record without --json to replay the node",
            pc.name
        )));
    }
    if !RAW_ENCODINGS.contains(&encoding.as_str()) {
        return Err(channel_error(format!(
            "its message encoding is `{encoding}`; node `{node}` is fed the bytes its topics carry ({}), as `horus run --record` writes them",
            RAW_ENCODINGS.join(", ")
        )));
    }
    match type_name {
        Some(t) if *t != pc.type_name => Err(channel_error(format!(
            "it carries `{t}`, but input `{}` of node `{node}` takes `{}`: is this the manifest the recording was made with?",
            pc.name, pc.type_name
        ))),
        _ => Ok(()),
    }
}

/// How output `pc` will be compared, before the run: `None` if it will be, else why not.
fn skip_reason(pc: &PortChannel, ex: &Extract<'_>) -> Option<String> {
    if pc.shared {
        return Some(format!(
            "other nodes of the manifest publish on topic `{}` too: not compared",
            pc.channel
        ));
    }
    match ex.channels.get(&pc.channel) {
        None => Some(format!(
            "the recording has no channel `{}` (not recorded, or nothing was sent on it): not compared",
            pc.channel
        )),
        Some((encoding, _)) if encoding == "json" => Some(format!(
            "channel `{}` was recorded as JSON, not as bytes: not compared",
            pc.channel
        )),
        Some(_) => None,
    }
}

/// `horus replay --node`: re-runs the node over the recording and compares (see the module).
/// `data` is the recording's content (kept by the caller: the result borrows its messages).
pub fn rerun<'a>(args: &RerunArgs, data: &'a [u8]) -> Result<Rerun<'a>, RerunError> {
    let manifest = crate::manifest::load(&args.manifest).map_err(HostError::BadInput)?;
    let inspector = args.inspector.as_ref().map(|program| Inspector {
        program: program.clone(),
        all: false,
        resident: Default::default(),
    });
    let graph = Graph::build_with(manifest, inspector.as_ref()).map_err(HostError::BadInput)?;
    let ni = find_node(&graph, &args.node, &args.manifest)?;
    let gnode = &graph.nodes[ni];
    if let NodeCode::Python(_) = gnode.spec.code {
        return Err(RerunError::Usage(format!(
            "{}: node `{}` is a Python node; `horus replay --node` re-runs plugin nodes (a Python node opens its own topics, which the replay cannot feed)",
            args.manifest.display(),
            args.node
        )));
    }
    let ports = port_channels(&graph, ni);
    let wanted: Vec<&str> = ports.iter().map(|p| p.channel.as_str()).collect();
    let ex = extract(data, &args.node, &wanted).map_err(|e| file_error(&args.input, e))?;
    let mut notes = Vec::new();
    if let Some(why) = &ex.truncated {
        notes.push(format!(
            "{} ends early ({why}; a recorder that was killed?): replaying what comes before",
            args.input.display()
        ));
    }
    if !ex.channels.contains_key(TICKS_CHANNEL) {
        return Err(RerunError::Usage(format!(
            "{}: no `{TICKS_CHANNEL}` channel, so the node's ticks are unknown: the file was made by `horus record` from outside the host, which does not see ticks; record with `horus run <manifest> --record FILE.mcap` to replay a node",
            args.input.display()
        )));
    }
    if ex.ticks.is_empty() {
        let ticked: Vec<&str> = ex.ticked.iter().map(String::as_str).collect();
        return Err(RerunError::Usage(format!(
            "{}: node `{}` never ticked in this recording; the nodes it ticked: {}",
            args.input.display(),
            args.node,
            if ticked.is_empty() {
                "none".to_owned()
            } else {
                ticked.join(", ")
            }
        )));
    }
    let mut ticks = ex.ticks.clone();
    ticks.sort_by_key(|t| t.tick);
    let lost: u64 = ticks
        .windows(2)
        .map(|w| w[1].tick.saturating_sub(w[0].tick + 1))
        .sum::<u64>()
        + ticks[0].tick.saturating_sub(1);
    if lost > 0 {
        notes.push(format!(
            "the recording lacks {lost} of node `{}`'s tick records (the recorder fell behind, or the node was added late): the replay may differ from the first gap on",
            args.node
        ));
    }

    // The input channels, each once (two ports may read one channel).
    let mut inputs: Vec<&str> = Vec::new();
    for pc in ports.iter().filter(|p| !p.output) {
        check_input(&args.input, &args.node, pc, &ex, &mut notes)?;
        if !inputs.contains(&pc.channel.as_str()) {
            inputs.push(&pc.channel);
        }
    }
    let empty = Vec::new();
    let input_msgs: Vec<&[Recorded<'a>]> = inputs
        .iter()
        .map(|c| ex.messages.get(*c).unwrap_or(&empty).as_slice())
        .collect();
    let (steps, not_fed) = schedule(&input_msgs, &ticks);

    // The node, bound to private topics, and the other end of each port.
    let scope = TopicScope::new();
    let plans = private_plans(&args.node, &gnode.port_names, &gnode.ports);
    let port_error = |port: &str, reason: String| RerunError::Port {
        node: args.node.clone(),
        port: port.to_owned(),
        reason,
    };
    let result = (|| {
        let bindings = scope
            .bind(&plans)
            .map_err(|(pi, e)| port_error(&gnode.port_names[pi], e.to_string()))?;
        let mut feeders = Vec::new();
        let mut collectors = Vec::new();
        for (oi, pc) in ports.iter().enumerate() {
            let spec = scope
                .port_spec(&plans[pc.port])
                .expect("a connected port has a topic");
            if pc.output {
                let subscriber = shm::subscriber(scope.namespace(), &spec, spec.capacity, false)
                    .map_err(|e| port_error(&pc.name, e.to_string()))?;
                collectors.push(Collector {
                    output: oi,
                    port: pc.name.clone(),
                    subscriber,
                    got: Vec::new(),
                });
            } else {
                let publisher = shm::publisher(scope.namespace(), &spec)
                    .map_err(|e| port_error(&pc.name, e.to_string()))?;
                feeders.push(Feeder {
                    input: inputs
                        .iter()
                        .position(|c| *c == pc.channel)
                        .expect("listed above"),
                    port: pc.name.clone(),
                    publisher,
                    refused: 0,
                });
            }
        }
        let mut io = NodeIo::new(
            args.node.clone(),
            gnode.spec.logging,
            gnode.spec.config.clone(),
            gnode.port_names.clone(),
            bindings,
            Instant::now(),
        );
        // Created and initialised at the scheduler's start, as live.
        io.pin_clock(Some(0));
        let node_error = |phase, error| RerunError::Node {
            node: args.node.clone(),
            phase,
            error,
        };
        let instance = NodeInstance::create(gnode.plugin.clone(), gnode.type_index, io)
            .map_err(|e| node_error("create", e))?;
        let mut bench = Bench {
            node: args.node.clone(),
            instance,
            feeders,
            collectors,
        };
        bench.instance.init().map_err(|e| node_error("init", e))?;
        bench.collect(Phase::Init)?;
        let stop = crate::topic_cli::interrupted()?;
        let mut fed = 0u64;
        let mut failures = Vec::new();
        let mut done = 0;
        for step in steps {
            if stop.load(Ordering::Relaxed) {
                let _ = bench.instance.shutdown();
                return Err(RerunError::Interrupted {
                    done,
                    ticks: ticks.len(),
                });
            }
            match step {
                Step::Feed { input, index } => {
                    bench.feed(input, &input_msgs[input][index])?;
                    fed += 1;
                }
                Step::Tick(k) => {
                    let t = ticks[k];
                    bench.instance.io_mut().pin_clock(Some(t.time_ns));
                    // Said once, at the end (see `replay_node`): not a line per tick.
                    if let Err(e) = bench.instance.tick() {
                        failures.push((t.tick, e.to_string()));
                    }
                    bench.collect(Phase::Tick(t.tick))?;
                    done += 1;
                }
            }
        }
        // Its clock stays at the last tick's start: when it was stopped is not recorded.
        if let Err(e) = bench.instance.shutdown() {
            tracing::warn!(node = %args.node, "shutdown failed: {e}");
        }
        bench.collect(Phase::Shutdown)?;
        let refused = bench
            .feeders
            .iter()
            .filter(|f| f.refused > 0)
            .map(|f| (f.port.clone(), f.refused))
            .collect();
        let outputs: Vec<(usize, Vec<Produced>)> =
            bench.collectors.drain(..).map(|c| (c.output, c.got)).collect();
        Ok((fed, failures, refused, outputs))
    })();
    // Whatever happened, the private topics go (the last endpoint removes each; this is for
    // those a failure left).
    shm::remove_private(scope.namespace(), scope.instance());
    let (fed, failures, refused, produced) = result?;
    for (port, n) in &refused {
        notes.push(format!(
            "input `{port}`: {n} messages were refused by its full `reliable` queue (as they would have been live)"
        ));
    }
    let outputs = produced
        .into_iter()
        .map(|(oi, replayed)| {
            let port = ports[oi].clone();
            let recorded = ex.messages.get(&port.channel).cloned();
            let verdict = match (skip_reason(&port, &ex), &recorded) {
                (Some(why), _) => Verdict::Skipped(why),
                (None, Some(rec)) => match first_difference(rec, &replayed) {
                    None => Verdict::Identical,
                    Some(index) => Verdict::Differs { index },
                },
                (None, None) => Verdict::Skipped(format!("channel `{}` not in the recording", port.channel)),
            };
            OutputRun {
                port,
                replayed,
                recorded,
                verdict,
            }
        })
        .collect::<Vec<_>>();
    if args.check {
        for o in &outputs {
            if let Verdict::Skipped(why) = &o.verdict {
                notes.push(format!("output `{}`: {why}", o.port.name));
            }
        }
        if outputs.iter().all(|o| matches!(o.verdict, Verdict::Skipped(_))) {
            return Err(RerunError::Usage(format!(
                "--check: none of node `{}`'s outputs can be compared with {}{}",
                args.node,
                args.input.display(),
                if notes.is_empty() {
                    " (it has no connected output)".to_owned()
                } else {
                    format!(":\n  {}", notes.join("\n  "))
                }
            )));
        }
    }
    Ok(Rerun {
        node: args.node.clone(),
        input: args.input.clone(),
        ticks: ticks.len(),
        start: ticks[0].log_time,
        fed,
        not_fed,
        refused,
        failures,
        outputs,
        notes,
    })
}

/// `horus replay --node`, whole: reads the file, re-runs the node, says on stderr what was not
/// compared or fed, and returns what to print on stdout and the exit code (see
/// [`Rerun::report`]).
pub fn replay_node(args: &RerunArgs) -> Result<(String, u8), RerunError> {
    let data = std::fs::read(&args.input).map_err(|e| file_error(&args.input, e.to_string()))?;
    let run = rerun(args, &data)?;
    for note in &run.notes {
        eprintln!("horus replay: {note}");
    }
    if !run.failures.is_empty() {
        let (tick, first) = &run.failures[0];
        eprintln!(
            "horus replay: node `{}` failed {} of {} ticks (first: tick {tick}: {first})",
            run.node,
            run.failures.len(),
            run.ticks
        );
    }
    Ok(run.report(args.check))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(log_time: u64, sequence: u32, data: &[u8]) -> Recorded<'static> {
        Recorded {
            log_time,
            sequence,
            data: Cow::Owned(data.to_vec()),
        }
    }

    fn tick(tick: u64, log_time: u64) -> Tick {
        Tick {
            tick,
            log_time,
            time_ns: log_time.saturating_sub(1000),
        }
    }

    #[test]
    fn a_tick_sees_the_messages_logged_before_its_start() {
        let a = [
            msg(10, 0, b"a0"),
            msg(25, 1, b"a1"),
            msg(30, 2, b"a2"),
            msg(50, 3, b"a3"),
        ];
        let b = [msg(10, 0, b"b0"), msg(29, 1, b"b1")];
        let ticks = [tick(1, 20), tick(2, 30), tick(3, 40)];
        let (steps, left) = schedule(&[&a, &b], &ticks);
        use Step::{Feed, Tick as T};
        assert_eq!(
            steps,
            vec![
                // Equal log times: by channel.
                Feed { input: 0, index: 0 },
                Feed { input: 1, index: 0 },
                T(0),
                Feed { input: 0, index: 1 },
                Feed { input: 1, index: 1 },
                // Logged at the tick's start: not before it, so the next tick's.
                T(1),
                Feed { input: 0, index: 2 },
                T(2),
            ]
        );
        assert_eq!(left, 1, "a3 comes after the last tick");
    }

    #[test]
    fn ties_within_a_channel_keep_the_recorded_order_and_ticks_run_without_input() {
        let a = [msg(5, 7, b"x"), msg(5, 8, b"y")];
        let (steps, left) = schedule(&[&a], &[tick(1, 1), tick(2, 6), tick(3, 7)]);
        assert_eq!(
            steps,
            vec![
                Step::Tick(0),
                Step::Feed { input: 0, index: 0 },
                Step::Feed { input: 0, index: 1 },
                Step::Tick(1),
                Step::Tick(2),
            ]
        );
        assert_eq!(left, 0);
        assert_eq!(schedule(&[], &[]), (vec![], 0));
    }

    fn produced(data: &[u8]) -> Produced {
        Produced {
            at: Phase::Tick(1),
            data: data.to_vec(),
        }
    }

    #[test]
    fn the_first_difference_is_byte_equality_in_order_and_a_count_that_differs() {
        let rec = [msg(1, 0, b"a"), msg(2, 1, b"b"), msg(3, 2, b"c")];
        let same = [produced(b"a"), produced(b"b"), produced(b"c")];
        assert_eq!(first_difference(&rec, &same), None);
        let changed = [produced(b"a"), produced(b"B"), produced(b"c")];
        assert_eq!(first_difference(&rec, &changed), Some(1));
        assert_eq!(first_difference(&rec, &same[..2]), Some(2), "fewer");
        let more = [produced(b"a"), produced(b"b"), produced(b"c"), produced(b"d")];
        assert_eq!(first_difference(&rec, &more), Some(3), "more");
        assert_eq!(first_difference(&[], &[]), None);
        assert_eq!(first_difference(&rec, &[]), Some(0));
    }

    #[test]
    fn phases_order_init_ticks_shutdown() {
        assert!(Phase::Init < Phase::Tick(1));
        assert!(Phase::Tick(2) < Phase::Tick(10));
        assert!(Phase::Tick(u64::MAX) < Phase::Shutdown);
    }

    /// An MCAP file as `horus run --record` writes one: an input channel, an output channel, a
    /// JSON channel and the ticks of two nodes.
    fn recording(with_ticks: bool) -> Vec<u8> {
        let mut out = mcap::WriteOptions::new()
            .compression(None)
            .create(std::io::Cursor::new(Vec::new()))
            .unwrap();
        let meta = |t: &str| BTreeMap::from([("horus.type".to_owned(), t.to_owned())]);
        let imu = out.add_channel(0, "imu.imu", "horus-pod", &meta("Imu")).unwrap();
        let att = out
            .add_channel(0, "filter.attitude", "horus-pod", &meta("Attitude"))
            .unwrap();
        let json = out.add_channel(0, "demo/json", "json", &meta("Imu")).unwrap();
        let ticks = match with_ticks {
            true => out
                .add_channel(0, TICKS_CHANNEL, "json", &BTreeMap::new())
                .unwrap(),
            false => 0,
        };
        let write = |out: &mut mcap::Writer<_>, channel_id, sequence, log_time, data: &[u8]| {
            let header = mcap::records::MessageHeader {
                channel_id,
                sequence,
                log_time,
                publish_time: log_time,
            };
            out.write_to_known_channel(&header, data).unwrap();
        };
        for i in 0..3u32 {
            let t = 1_000 + u64::from(i) * 100;
            write(&mut out, imu, i, t, &[i as u8; 4]);
            if with_ticks {
                for node in ["imu", "filter"] {
                    let tick = format!(
                        r#"{{"node":"{node}","tick":{},"time_ns":{},"took_ns":5}}"#,
                        i + 1,
                        t + 10 - 1_000
                    );
                    write(&mut out, ticks, i + 1, t + 10, tick.as_bytes());
                }
            }
            write(&mut out, att, i, t + 20, &[9, i as u8]);
            write(&mut out, json, i, t, b"{}");
        }
        out.finish().unwrap();
        out.into_inner().into_inner()
    }

    #[test]
    fn a_recording_yields_the_wanted_channels_and_the_nodes_ticks() {
        let data = recording(true);
        let ex = extract(&data, "filter", &["imu.imu", "filter.attitude"]).unwrap();
        assert_eq!(
            ex.channels.keys().map(String::as_str).collect::<Vec<_>>(),
            ["demo/json", "filter.attitude", "horus.ticks", "imu.imu"]
        );
        assert_eq!(ex.channels["demo/json"], ("json".into(), Some("Imu".into())));
        let imu = &ex.messages["imu.imu"];
        assert_eq!(imu.len(), 3);
        assert_eq!(
            (imu[2].log_time, imu[2].sequence, &*imu[2].data),
            (1200, 2, &[2u8; 4][..])
        );
        assert_eq!(ex.messages["filter.attitude"].len(), 3);
        assert!(!ex.messages.contains_key("demo/json"), "not wanted");
        assert_eq!(
            ex.ticks,
            vec![
                Tick {
                    tick: 1,
                    log_time: 1010,
                    time_ns: 10
                },
                Tick {
                    tick: 2,
                    log_time: 1110,
                    time_ns: 110
                },
                Tick {
                    tick: 3,
                    log_time: 1210,
                    time_ns: 210
                },
            ]
        );
        assert_eq!(ex.ticked, BTreeSet::from(["filter".to_owned(), "imu".to_owned()]));
        assert_eq!(ex.truncated, None);

        let data = recording(false);
        let ex = extract(&data, "filter", &[]).unwrap();
        assert!(!ex.channels.contains_key(TICKS_CHANNEL));
        assert!(extract(b"not mcap", "filter", &[]).is_err());
        // A file cut short (a killed recorder) gives what comes before the cut.
        let data = recording(true);
        let cut = &data[..data.len() * 2 / 3];
        assert!(extract(cut, "filter", &["imu.imu"]).is_ok_and(|ex| ex.truncated.is_some()));
    }

    #[test]
    fn a_difference_names_the_port_the_message_and_both_sides() {
        let recorded = vec![
            msg(2_000_000_000, 0, &7u64.to_le_bytes()),
            msg(3_000_000_000, 1, &8u64.to_le_bytes()),
        ];
        let port = PortChannel {
            port: 1,
            name: "count".into(),
            output: true,
            channel: "n.count".into(),
            type_name: "u64".into(),
            shared: false,
        };
        let replayed = vec![
            Produced {
                at: Phase::Tick(1),
                data: 7u64.to_le_bytes().to_vec(),
            },
            Produced {
                at: Phase::Tick(2),
                data: 9u64.to_le_bytes().to_vec(),
            },
        ];
        let mut run = Rerun {
            node: "n".into(),
            input: "in.mcap".into(),
            ticks: 2,
            start: 1_000_000_000,
            fed: 0,
            not_fed: 0,
            refused: BTreeMap::new(),
            failures: Vec::new(),
            outputs: vec![OutputRun {
                verdict: Verdict::Differs {
                    index: first_difference(&recorded, &replayed).unwrap(),
                },
                port,
                replayed,
                recorded: Some(recorded),
            }],
            notes: Vec::new(),
        };
        let (text, code) = run.report(true);
        assert_eq!(code, 1);
        assert!(
            text.starts_with("difference: node `n`, output `count` (channel `n.count`), message 1 "),
            "{text}"
        );
        assert!(
            text.contains("recorded: sequence 1, log_time 3000000000 (2.000000 s after"),
            "{text}"
        );
        assert!(
            text.contains("u64 8") && text.contains("replayed: in tick 2: u64 9"),
            "{text}"
        );
        run.outputs[0].replayed.pop();
        run.outputs[0].verdict = Verdict::Differs { index: 1 };
        let (text, _) = run.report(true);
        assert!(
            text.contains("replayed: nothing (the node published 1 messages)"),
            "{text}"
        );
        run.outputs[0].verdict = Verdict::Identical;
        run.outputs[0].replayed.truncate(0);
        assert_eq!(
            run.report(true),
            ("identical: 0 messages on 1 outputs over 2 ticks\n".into(), 0)
        );
    }

    #[test]
    fn the_replay_binds_every_port_to_a_private_topic_of_its_own() {
        let spec = PlanSpec {
            type_name: "Imu".into(),
            type_hash: 1,
            slot_size: 56,
            capacity: 8,
            single_producer: false,
        };
        let plans = [
            PortPlan::Input {
                topic: TopicName::Named("demo/imu".into()),
                spec: spec.clone(),
                qos: crate::manifest::Qos::KeepLast(8),
            },
            PortPlan::Output {
                topic: TopicName::Named("demo/att".into()),
                spec: spec.clone(),
            },
            PortPlan::Unconnected { output: true },
        ];
        let names = ["imu".to_owned(), "att".to_owned(), "idle".to_owned()];
        let private = private_plans("f", &names, &plans);
        let PortPlan::Input { topic, spec: s, qos } = &private[0] else {
            panic!("{private:?}")
        };
        assert_eq!(
            (topic, s.capacity, *qos),
            (
                &TopicName::Local("f.imu".into()),
                8,
                crate::manifest::Qos::KeepLast(8)
            ),
            "the manifest's queue and QoS"
        );
        let PortPlan::Output { topic, spec: s } = &private[1] else {
            panic!("{private:?}")
        };
        assert_eq!(topic, &TopicName::Local("f.att".into()));
        assert!(s.capacity >= 1024, "room for a call's sends: {}", s.capacity);
        assert_eq!(private[2], PortPlan::Unconnected { output: true });
        assert_eq!(channel_of(&TopicName::Local("imu.imu".into())), "imu.imu");
        assert_eq!(channel_of(&TopicName::Named("demo/imu".into())), "demo/imu");
    }
}
