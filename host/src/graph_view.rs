//! `horus graph`: a manifest's nodes, ports, topics, network hubs and QoS as a graph that
//! Graphviz (`dot`) or a Markdown viewer (`mermaid`) draws (issue 19).
//!
//! [`Model`] is the picture as plain data, built from a checked [`Graph`] (node types and port
//! message types from the plugins), optionally with a running host's live rates; [`render`]
//! writes it. The rendering is pure, so it is unit-tested without plugins.
//!
//! Does not own the manifest or its checks (`crate::graph`), nor the control socket.

use crate::graph::Graph;
use crate::manifest::{network_hub, Route};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Graphviz.
    Dot,
    /// A Mermaid flowchart.
    Mermaid,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "dot" => Ok(Format::Dot),
            "mermaid" => Ok(Format::Mermaid),
            other => Err(format!("unknown format `{other}`: use `dot` or `mermaid`")),
        }
    }
}

/// A node of the picture.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeBox {
    /// Instance name.
    pub name: String,
    /// Its node type and where from (`ImuSim (imu-sim)`, `Python: smoother.py:Smoother`).
    pub kind: String,
    /// Isolation, rate or trigger, and (running) the measured rate.
    pub detail: String,
}

/// A named topic of the picture.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicBox {
    /// Its name.
    pub name: String,
    /// The tcp hub it travels over (name and address), if any.
    pub hub: Option<String>,
}

/// An arrow: between two nodes (a connection), node → topic (publish) or topic → node
/// (subscribe).
#[derive(Debug, Clone, PartialEq)]
pub struct Arrow {
    /// A node's name, or a topic's (`topic:` prefixed in `from`/`to` ids, see [`id`]).
    pub from: End,
    /// Where it goes.
    pub to: End,
    /// Ports, message type and QoS.
    pub label: String,
}

/// One end of an [`Arrow`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// A node.
    Node(String),
    /// A named topic.
    Topic(String),
}

/// The picture.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Model {
    /// The manifest, for the title.
    pub title: String,
    /// Nodes in manifest order.
    pub nodes: Vec<NodeBox>,
    /// Named topics, in order of first mention.
    pub topics: Vec<TopicBox>,
    /// Connections in manifest order.
    pub arrows: Vec<Arrow>,
}

/// The message type of `node`'s port `port`, as its node type declares it (`None` for a
/// Python node, whose ports are not declared).
fn port_type(graph: &Graph, node: &str, port: &str) -> Option<String> {
    let n = graph.nodes.iter().find(|n| n.spec.name == node)?;
    if n.python.is_some() {
        return None;
    }
    let ty = n.plugin.info().node_types.get(n.type_index)?;
    ty.ports
        .iter()
        .find(|p| p.name == port)
        .map(|p| p.type_name.clone())
}

impl Model {
    /// The picture of `graph`; `rates` are a running host's measured rates by node name.
    pub fn of(graph: &Graph, rates: &BTreeMap<String, f64>) -> Model {
        let m = &graph.manifest;
        let nodes = graph
            .nodes
            .iter()
            .map(|n| {
                let kind = match &n.python {
                    Some(_) => format!("Python: {}", n.type_name),
                    None => format!("{} ({})", n.type_name, n.plugin.info().name),
                };
                let mut detail = n.spec.isolation.name().to_owned();
                match (&n.spec.trigger, n.spec.rate_hz) {
                    (crate::manifest::Trigger::Rate, Some(hz)) => {
                        let _ = write!(detail, ", {hz} Hz");
                    }
                    (crate::manifest::Trigger::Rate, None) => {
                        let _ = write!(detail, ", {} Hz", m.scheduler.tick_rate);
                    }
                    (t, _) => {
                        let _ = write!(detail, ", trigger {}", t.describe());
                    }
                }
                if let Some(hz) = rates.get(&n.spec.name) {
                    let _ = write!(detail, ", running at {hz:.1} Hz");
                }
                NodeBox {
                    name: n.spec.name.clone(),
                    kind,
                    detail,
                }
            })
            .collect();
        let mut topics: Vec<TopicBox> = Vec::new();
        let mut arrows = Vec::new();
        for c in &m.connections {
            let ty = c
                .from()
                .and_then(|f| port_type(graph, &f.value.node, &f.value.port))
                .or_else(|| {
                    c.to()
                        .and_then(|t| port_type(graph, &t.value.node, &t.value.port))
                })
                .unwrap_or_else(|| "Python objects".into());
            if let Some(topic) = c.topic() {
                if !topics.iter().any(|t| t.name == topic.value) {
                    topics.push(TopicBox {
                        name: topic.value.clone(),
                        hub: network_hub(&m.hubs, &topic.value)
                            .map(|h| format!("{} tcp {}", h.name, h.address.as_deref().unwrap_or("?"))),
                    });
                }
            }
            let (from, to, ports) = match &c.route {
                Route::Nodes { from, to } => (
                    End::Node(from.value.node.clone()),
                    End::Node(to.value.node.clone()),
                    format!("{} → {}", from.value.port, to.value.port),
                ),
                Route::Publish { from, topic } => (
                    End::Node(from.value.node.clone()),
                    End::Topic(topic.value.clone()),
                    from.value.port.clone(),
                ),
                Route::Subscribe { topic, to } => (
                    End::Topic(topic.value.clone()),
                    End::Node(to.value.node.clone()),
                    to.value.port.clone(),
                ),
            };
            arrows.push(Arrow {
                from,
                to,
                label: format!("{ports} · {ty} · {}", c.qos),
            });
        }
        Model {
            title: m.path.display().to_string(),
            nodes,
            topics,
            arrows,
        }
    }
}

/// An identifier for `end` that both formats accept: letters, digits and `_` only.
fn id(end: &End) -> String {
    let (prefix, name) = match end {
        End::Node(n) => ("n_", n),
        End::Topic(t) => ("t_", t),
    };
    let mut out = prefix.to_owned();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            let _ = write!(out, "_{:x}_", c as u32);
        }
    }
    out
}

/// `text` as the inside of a double-quoted label (Graphviz or Mermaid).
fn quoted(text: &str, format: Format) -> String {
    match format {
        Format::Dot => text.replace('\\', "\\\\").replace('"', "\\\""),
        Format::Mermaid => text.replace('"', "#quot;"),
    }
}

/// The topics outside any hub, and those of each tcp hub (by the hub's description).
fn by_hub(topics: &[TopicBox]) -> (Vec<&TopicBox>, BTreeMap<&str, Vec<&TopicBox>>) {
    let mut hubs: BTreeMap<&str, Vec<&TopicBox>> = BTreeMap::new();
    let mut loose = Vec::new();
    for t in topics {
        match &t.hub {
            Some(h) => hubs.entry(h).or_default().push(t),
            None => loose.push(t),
        }
    }
    (loose, hubs)
}

/// The picture as `format` text.
pub fn render(model: &Model, format: Format) -> String {
    match format {
        Format::Dot => dot(model),
        Format::Mermaid => mermaid(model),
    }
}

fn dot(model: &Model) -> String {
    let q = |t: &str| quoted(t, Format::Dot);
    let mut out = format!(
        "digraph horus {{\n  label=\"{}\";\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n",
        q(&model.title)
    );
    for n in &model.nodes {
        let _ = writeln!(
            out,
            "  {} [shape=box, style=rounded, label=\"{}\\n{}\\n{}\"];",
            id(&End::Node(n.name.clone())),
            q(&n.name),
            q(&n.kind),
            q(&n.detail)
        );
    }
    let (loose, hubs) = by_hub(&model.topics);
    for t in loose {
        let _ = writeln!(
            out,
            "  {} [shape=ellipse, label=\"{}\"];",
            id(&End::Topic(t.name.clone())),
            q(&t.name)
        );
    }
    for (i, (hub, topics)) in hubs.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph cluster_hub{i} {{\n    label=\"hub {}\";\n    style=dashed;",
            q(hub)
        );
        for t in topics {
            let _ = writeln!(
                out,
                "    {} [shape=ellipse, label=\"{}\"];",
                id(&End::Topic(t.name.clone())),
                q(&t.name)
            );
        }
        out.push_str("  }\n");
    }
    for a in &model.arrows {
        let _ = writeln!(
            out,
            "  {} -> {} [label=\"{}\"];",
            id(&a.from),
            id(&a.to),
            q(&a.label)
        );
    }
    out.push_str("}\n");
    out
}

fn mermaid(model: &Model) -> String {
    let q = |t: &str| quoted(t, Format::Mermaid);
    let mut out = format!("---\ntitle: \"{}\"\n---\nflowchart LR\n", q(&model.title));
    for n in &model.nodes {
        let _ = writeln!(
            out,
            "  {}[\"<b>{}</b><br/>{}<br/>{}\"]",
            id(&End::Node(n.name.clone())),
            q(&n.name),
            q(&n.kind),
            q(&n.detail)
        );
    }
    let (loose, hubs) = by_hub(&model.topics);
    for t in loose {
        let _ = writeln!(out, "  {}([\"{}\"])", id(&End::Topic(t.name.clone())), q(&t.name));
    }
    for (i, (hub, topics)) in hubs.iter().enumerate() {
        let _ = writeln!(out, "  subgraph hub{i}[\"hub {}\"]", q(hub));
        for t in topics {
            let _ = writeln!(
                out,
                "    {}([\"{}\"])",
                id(&End::Topic(t.name.clone())),
                q(&t.name)
            );
        }
        out.push_str("  end\n");
    }
    for a in &model.arrows {
        let _ = writeln!(out, "  {} -->|\"{}\"| {}", id(&a.from), q(&a.label), id(&a.to));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model {
            title: "robot.toml".into(),
            nodes: vec![
                NodeBox {
                    name: "imu".into(),
                    kind: "ImuSim (imu-sim)".into(),
                    detail: "inline, 100 Hz".into(),
                },
                NodeBox {
                    name: "fil\"ter".into(),
                    kind: "ComplementaryFilter (attitude-filter)".into(),
                    detail: "process, trigger input".into(),
                },
            ],
            topics: vec![
                TopicBox {
                    name: "demo/imu".into(),
                    hub: None,
                },
                TopicBox {
                    name: "robot/att".into(),
                    hub: Some("robot tcp 127.0.0.1:7447".into()),
                },
            ],
            arrows: vec![
                Arrow {
                    from: End::Node("imu".into()),
                    to: End::Node("fil\"ter".into()),
                    label: "imu → imu · Imu · reliable(8)".into(),
                },
                Arrow {
                    from: End::Node("imu".into()),
                    to: End::Topic("demo/imu".into()),
                    label: "imu · Imu · keep_last(16)".into(),
                },
                Arrow {
                    from: End::Node("fil\"ter".into()),
                    to: End::Topic("robot/att".into()),
                    label: "attitude · Attitude · keep_last(16)".into(),
                },
            ],
        }
    }

    #[test]
    fn dot_has_every_node_topic_hub_and_arrow() {
        let text = render(&model(), Format::Dot);
        assert!(
            text.starts_with("digraph horus {") && text.ends_with("}\n"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"n_imu [shape=box, style=rounded, label="imu\nImuSim (imu-sim)\ninline, 100 Hz"];"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"label="fil\"ter\n"#), "quotes escaped: {text}");
        assert!(
            text.contains(r#"t_demo_2f_imu [shape=ellipse, label="demo/imu"];"#),
            "{text}"
        );
        assert!(
            text.contains("subgraph cluster_hub0 {\n    label=\"hub robot tcp 127.0.0.1:7447\";"),
            "{text}"
        );
        assert!(
            text.contains(r#"n_imu -> n_fil_22_ter [label="imu → imu · Imu · reliable(8)"];"#),
            "{text}"
        );
        assert_eq!(text.matches(" -> ").count(), 3);
        assert_eq!(text.matches('{').count(), text.matches('}').count());
    }

    #[test]
    fn mermaid_is_a_flowchart_with_the_same_picture() {
        let text = render(&model(), Format::Mermaid);
        assert!(text.contains("flowchart LR\n"), "{text}");
        assert!(
            text.contains(r#"n_imu["<b>imu</b><br/>ImuSim (imu-sim)<br/>inline, 100 Hz"]"#),
            "{text}"
        );
        assert!(text.contains("fil#quot;ter"), "{text}");
        assert!(
            text.contains(r#"  subgraph hub0["hub robot tcp 127.0.0.1:7447"]"#),
            "{text}"
        );
        assert!(
            text.contains(r#"n_imu -->|"imu · Imu · keep_last(16)"| t_demo_2f_imu"#),
            "{text}"
        );
        assert_eq!(text.matches("-->").count(), 3);
        assert_eq!(
            text.matches("subgraph").count(),
            text.matches("\n  end\n").count()
        );
    }

    #[test]
    fn formats_are_named() {
        assert_eq!("dot".parse(), Ok(Format::Dot));
        assert!("svg"
            .parse::<Format>()
            .unwrap_err()
            .contains("`dot` or `mermaid`"));
    }
}
