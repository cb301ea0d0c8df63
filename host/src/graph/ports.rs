//! Step 5 of the graph: what each port of each node is bound to — a topic with its name, type,
//! slot size and capacity, or nothing. Pure.

use super::connect::{depth_of, Output, PortId, Source, Wiring};
use super::network::NetPlan;
use super::resolve::TypeDesc;
use crate::topic::{named_capacity, PlanSpec, PortPlan, TopicName};

/// The plan of every port of node `ni` (of type `node_type`), in port order.
pub fn plan_ports(ni: usize, node_type: TypeDesc<'_>, wiring: &Wiring, net: &NetPlan) -> Vec<PortPlan> {
    (0..node_type.ports.len())
        .map(|pi| plan_port((ni, pi), node_type, wiring, net))
        .collect()
}

fn plan_port(id: PortId, node_type: TypeDesc<'_>, wiring: &Wiring, net: &NetPlan) -> PortPlan {
    if let Some(out) = wiring.outputs.get(&id) {
        let (topic, spec) = output_topic(id, out, net);
        return PortPlan::Output { topic, spec };
    }
    let Some(input) = wiring.inputs.get(&id) else {
        return PortPlan::Unconnected {
            output: node_type.ports[id.1].output,
        };
    };
    let qos = input.qos;
    match &input.source {
        Source::Output(from) => {
            let (topic, spec) = output_topic(*from, &wiring.outputs[from], net);
            PortPlan::Input { topic, spec, qos }
        }
        Source::Named(topic) => match net.inbound.get(topic) {
            Some(&i) => PortPlan::Input {
                topic: net.topics[i].local.clone(),
                spec: net.topics[i].spec.clone(),
                qos,
            },
            None => {
                let port = &node_type.ports[id.1];
                PortPlan::Input {
                    topic: TopicName::Named(topic.clone()),
                    spec: PlanSpec {
                        type_name: port.type_name.clone(),
                        type_hash: port.type_hash,
                        slot_size: input.slot_size,
                        capacity: named_capacity(input.slot_size, depth_of(qos)),
                        single_producer: false,
                    },
                    qos,
                }
            }
        },
    }
}

/// The topic an output creates: a private topic (`node.port`, or the ring of a network topic)
/// is a Link sized for its deepest subscriber; a named topic is shared, sized by
/// [`named_capacity`].
fn output_topic(id: PortId, out: &Output, net: &NetPlan) -> (TopicName, PlanSpec) {
    let name = match (net.outbound.get(&id), &out.topic) {
        (Some(ring), _) => ring.clone(),
        (None, Some(topic)) => TopicName::Named(topic.clone()),
        (None, None) => TopicName::Local(out.endpoint.clone()),
    };
    let named = matches!(name, TopicName::Named(_));
    let spec = PlanSpec {
        type_name: out.type_name.clone(),
        type_hash: out.type_hash,
        slot_size: out.slot_size,
        capacity: if named {
            named_capacity(out.slot_size, out.max_depth)
        } else {
            out.max_depth.max(2)
        },
        single_producer: !named,
    };
    (name, spec)
}
