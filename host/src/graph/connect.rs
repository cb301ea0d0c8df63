//! Step 3 of the graph: every `[[connect]]` checked against the ports of the node types —
//! both ends exist, directions are right, message types agree, one source per input, one
//! topic per output — and collected into a [`Wiring`]. Pure.

use super::resolve::TypeDesc;
use crate::diag::{suggest, Code, Diagnostic, Diagnostics, Location};
use crate::ffi::PortInfo;
use crate::manifest::{Endpoint, Located, Manifest, Qos, Route, DEFAULT_MAX_SIZE};
use std::collections::{BTreeMap, HashMap};

/// A port of a node: (node index in manifest order, port index in the node type).
pub type PortId = (usize, usize);

/// An output that some connection uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// `node.port`: the name of its private topic.
    pub endpoint: String,
    /// The named topic it publishes on, if a connection says so.
    pub topic: Option<String>,
    /// Message type name.
    pub type_name: String,
    /// Message type hash.
    pub type_hash: u64,
    /// Slot size of its topic.
    pub slot_size: u32,
    /// The deepest queue any connection of it asks for.
    pub max_depth: u32,
    /// The QoS of its publishing connection (`from` + `topic`), else the default.
    pub publish_qos: Qos,
}

/// Where an input's messages come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An output of this manifest.
    Output(PortId),
    /// A named topic.
    Named(String),
}

/// An input that a connection feeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// Its source.
    pub source: Source,
    /// The connection's QoS.
    pub qos: Qos,
    /// Slot size for its type.
    pub slot_size: u32,
}

/// The checked connections of a manifest, by port (ordered, so plans are deterministic).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Wiring {
    /// Connected outputs.
    pub outputs: BTreeMap<PortId, Output>,
    /// Connected inputs.
    pub inputs: BTreeMap<PortId, Input>,
}

/// A queue depth as the topics count it.
pub fn depth_of(qos: Qos) -> u32 {
    u32::try_from(qos.depth()).unwrap_or(u32::MAX)
}

/// The slot size of `port`: its type's exact size, else the connection's `max_size`, else the
/// default.
pub fn slot_size(port: &PortInfo, max_size: Option<u32>) -> u32 {
    match port.max_size {
        0 => max_size.unwrap_or(DEFAULT_MAX_SIZE),
        n => u32::try_from(n).unwrap_or(u32::MAX),
    }
}

/// Checks every connection of `manifest` against `types` (per node; `None` for a node whose
/// plugin or type was not found, which was reported: its connections are skipped). Reports
/// every problem.
pub fn check_connections(manifest: &Manifest, types: &[Option<TypeDesc<'_>>]) -> Result<Wiring, Diagnostics> {
    let checker = Checker {
        manifest,
        types,
        index: manifest
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect(),
    };
    let mut diags = Diagnostics::default();
    let mut wiring = Wiring::default();
    for c in &manifest.connections {
        let mut port = |end: Option<&Located<Endpoint>>, output: bool, key: &str| match end {
            None => Some(None),
            Some(e) => checker
                .port(e, output, key)
                .map_err(|d| diags.push(*d))
                .ok()?
                .map(Some),
        };
        let (Some(from), Some(to)) = (port(c.from(), true, "from"), port(c.to(), false, "to")) else {
            continue;
        };
        if let Err(d) = wiring.add(manifest, c, from, to) {
            diags.push(*d);
        }
    }
    diags.into_result(wiring)
}

/// A checked end of a connection: its port, and the port's declaration.
type End<'a> = Option<(PortId, &'a PortInfo)>;

impl Wiring {
    /// Adds one connection whose ends exist with the right directions.
    fn add(
        &mut self,
        manifest: &Manifest,
        c: &crate::manifest::ConnectSpec,
        from: End<'_>,
        to: End<'_>,
    ) -> Result<(), Box<Diagnostic>> {
        let to_at = c.to().map_or(c.at, |t| t.at);
        if let (Route::Nodes { from: f, to: t }, Some((_, fport)), Some((_, tport))) = (&c.route, from, to) {
            if fport.type_hash != tport.type_hash {
                return Err(Box::new(
                    Diagnostic::new(
                        Code::H0022,
                        &manifest.path,
                        format!(
                            "`{}` sends `{}` but `{}` expects `{}`",
                            f.value, fport.type_name, t.value, tport.type_name
                        ),
                    )
                    .at(to_at)
                    .key("connect.to")
                    .hint("connect ports that carry the same message type"),
                ));
            }
        }
        if let (Some((id, _)), Some(t)) = (to, c.to()) {
            if self.inputs.contains_key(&id) {
                return Err(Box::new(
                    Diagnostic::new(
                        Code::H0023,
                        &manifest.path,
                        format!("input `{}` is connected twice", t.value),
                    )
                    .at(to_at)
                    .key("connect.to")
                    .hint("an input has one source; remove one of the [[connect]] entries"),
                ));
            }
        }
        if let (Some((id, fport)), Some(f)) = (from, c.from()) {
            let out = self.outputs.entry(id).or_insert_with(|| Output {
                endpoint: f.value.to_string(),
                topic: None,
                type_name: fport.type_name.clone(),
                type_hash: fport.type_hash,
                slot_size: slot_size(fport, c.max_size),
                max_depth: 0,
                publish_qos: Qos::DEFAULT,
            });
            if let Some(topic) = c.topic() {
                match &out.topic {
                    Some(existing) if *existing != topic.value => {
                        return Err(Box::new(
                            Diagnostic::new(
                                Code::H0024,
                                &manifest.path,
                                format!("output `{}` is already published as topic `{existing}`", f.value),
                            )
                            .at(topic.at)
                            .key("connect.topic")
                            .hint(
                                "an output publishes on one topic; subscribe the other readers to that one",
                            ),
                        ));
                    }
                    _ => out.topic = Some(topic.value.clone()),
                }
                out.publish_qos = c.qos;
            }
            // A subscriber's depth, or on a publishing connection (`from` + `topic`) how many
            // messages the topic holds for readers in other processes.
            out.max_depth = out.max_depth.max(depth_of(c.qos));
        }
        if let Some((id, tport)) = to {
            let source = match (from, &c.route) {
                (Some((fid, _)), _) => Source::Output(fid),
                (None, Route::Subscribe { topic, .. }) => Source::Named(topic.value.clone()),
                (None, _) => return Ok(()),
            };
            self.inputs.insert(
                id,
                Input {
                    source,
                    qos: c.qos,
                    slot_size: slot_size(tport, c.max_size),
                },
            );
        }
        Ok(())
    }
}

struct Checker<'m, 't> {
    manifest: &'m Manifest,
    types: &'t [Option<TypeDesc<'t>>],
    index: HashMap<&'m str, usize>,
}

impl<'t> Checker<'_, 't> {
    /// The port `end` names, which must be an output if `output`. `Ok(None)`: its node's plugin
    /// or type was not found (already reported).
    fn port(&self, end: &Located<Endpoint>, output: bool, key: &str) -> Result<End<'t>, Box<Diagnostic>> {
        let (endpoint, at) = (&end.value, end.at);
        let Some(&ni) = self.index.get(endpoint.node.as_str()) else {
            return Err(Box::new(self.unknown_node(endpoint, at, key)));
        };
        let Some(node_type) = self.types[ni] else {
            return Ok(None);
        };
        let found = node_type
            .ports
            .iter()
            .enumerate()
            .find(|(_, p)| p.output == output && p.name == endpoint.port);
        match found {
            Some((pi, port)) => Ok(Some(((ni, pi), port))),
            None => Err(Box::new(self.unknown_port(endpoint, node_type, output, at, key))),
        }
    }

    fn unknown_node(&self, end: &Endpoint, at: Location, key: &str) -> Diagnostic {
        let names: Vec<&str> = self.manifest.nodes.iter().map(|n| n.name.as_str()).collect();
        let hint = match suggest(&end.node, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if names.is_empty() => "the manifest declares no nodes; add a [[node]] table".to_owned(),
            None => format!("declared nodes: {}", names.join(", ")),
        };
        Diagnostic::new(
            Code::H0020,
            &self.manifest.path,
            format!("`{key}` names unknown node `{}`", end.node),
        )
        .at(at)
        .key(format!("connect.{key}"))
        .hint(hint)
    }

    fn unknown_port(
        &self,
        end: &Endpoint,
        node_type: TypeDesc<'_>,
        output: bool,
        at: Location,
        key: &str,
    ) -> Diagnostic {
        let (want, other) = if output {
            ("output", "input")
        } else {
            ("input", "output")
        };
        let candidates: Vec<&str> = node_type
            .ports
            .iter()
            .filter(|p| p.output == output)
            .map(|p| p.name.as_str())
            .collect();
        let wrong_direction = node_type
            .ports
            .iter()
            .any(|p| p.output != output && p.name == end.port);
        let hint = if wrong_direction {
            format!(
                "`{}` is an {other} of `{}`; `{key}` must name an {want}",
                end.port, node_type.name
            )
        } else {
            match suggest(&end.port, candidates.iter().copied()) {
                Some(s) => format!("did you mean `{}.{s}`?", end.node),
                None if candidates.is_empty() => format!("node type `{}` has no {want}s", node_type.name),
                None => format!("{want}s of `{}`: {}", node_type.name, candidates.join(", ")),
            }
        };
        Diagnostic::new(
            Code::H0021,
            &self.manifest.path,
            format!(
                "node `{}` (type `{}`) has no {want} `{}`",
                end.node, node_type.name, end.port
            ),
        )
        .at(at)
        .key(format!("connect.{key}"))
        .hint(hint)
    }
}
