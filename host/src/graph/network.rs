//! Step 4 of the graph: the topics that travel over a network hub. Nodes never see the network:
//! an output published on a topic under a tcp hub writes a ring private to the run
//! (`net.out/<topic>`), and the inputs subscribed to such a topic read one private ring per topic
//! (`net.in/<topic>`); `net::bridge` moves messages between those rings and the hub. Pure.

use super::connect::{depth_of, PortId, Source, Wiring};
use super::resolve::TypeDesc;
use crate::manifest::{network_hub, HubDecl};
use crate::topic::{NetTopic, PlanSpec, TopicName};
use std::collections::HashMap;

/// The network topics of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetPlan {
    /// Every network topic: outbound ones (in output order), then inbound ones.
    pub topics: Vec<NetTopic>,
    /// Outputs that publish on a network topic, with their private ring.
    pub outbound: HashMap<PortId, TopicName>,
    /// Inbound topics by name: the index in `topics`.
    pub inbound: HashMap<String, usize>,
}

/// Plans the network topics of `wiring`'s named topics that fall under one of `hubs`' tcp hubs;
/// `types` (per node) give the inputs' message types.
pub fn plan_network(hubs: &[HubDecl], wiring: &Wiring, types: &[Option<TypeDesc<'_>>]) -> NetPlan {
    let mut plan = NetPlan::default();
    for (id, out) in &wiring.outputs {
        let Some(topic) = &out.topic else { continue };
        let Some(hub) = network_hub(hubs, topic) else {
            continue;
        };
        let local = TopicName::Local(format!("net.out/{topic}"));
        plan.outbound.insert(*id, local.clone());
        plan.topics.push(NetTopic {
            hub: hub.name.clone(),
            key: topic.clone(),
            local,
            spec: PlanSpec {
                type_name: out.type_name.clone(),
                type_hash: out.type_hash,
                slot_size: out.slot_size,
                capacity: out.max_depth.max(2),
                single_producer: true,
            },
            outbound: true,
            qos: out.publish_qos,
        });
    }
    for ((ni, pi), input) in &wiring.inputs {
        let Source::Named(topic) = &input.source else {
            continue;
        };
        let Some(hub) = network_hub(hubs, topic) else {
            continue;
        };
        let depth = depth_of(input.qos).max(2);
        if let Some(&i) = plan.inbound.get(topic) {
            // One ring per topic, sized for its deepest and largest reader.
            let t = &mut plan.topics[i];
            t.spec.capacity = t.spec.capacity.max(depth);
            t.spec.slot_size = t.spec.slot_size.max(input.slot_size);
            if depth_of(input.qos) >= depth_of(t.qos) {
                t.qos = input.qos;
            }
            continue;
        }
        let Some(port) = types[*ni].and_then(|t| t.ports.get(*pi)) else {
            continue;
        };
        plan.inbound.insert(topic.clone(), plan.topics.len());
        plan.topics.push(NetTopic {
            hub: hub.name.clone(),
            key: topic.clone(),
            local: TopicName::Local(format!("net.in/{topic}")),
            spec: PlanSpec {
                type_name: port.type_name.clone(),
                type_hash: port.type_hash,
                slot_size: input.slot_size,
                capacity: depth,
                single_producer: true,
            },
            outbound: false,
            qos: input.qos,
        });
    }
    plan
}
