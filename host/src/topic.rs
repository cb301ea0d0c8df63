//! Topic policy: what each port of each node is bound to, and how big its topic is. Every
//! topic is a shared-memory ring ([`crate::shm`]), whether its endpoints live in this host or in
//! other processes; this module only decides names and sizes.
//!
//! - A connection inside the manifest (`from` + `to`) uses a topic private to this host run:
//!   `@h<pid>-<start time>/<node>.<port>`, so two hosts running one manifest never share it.
//!   Its segment lives in the private name space (`/horus.<ns>@…`), which no named topic can
//!   reach, and the startup sweep removes it once its owner is gone.
//! - A named topic (`topic = "robot/imu"`) is shared with every process on the machine in the
//!   same namespace (`HORUS_NAMESPACE`, default per user).
//! - Slots are sized from the message type (plain data: exact), else from `max_size`, else
//!   [`DEFAULT_MAX_SIZE`]. A private topic holds as many messages as its deepest subscriber asks
//!   for; a named topic at least [`NAMED_MIN_CAPACITY`], within [`NAMED_MEMORY_BUDGET`].

use crate::io::PortBinding;
use crate::manifest::Qos;
pub use crate::manifest::DEFAULT_MAX_SIZE;
use crate::shm::{self, layout, ShmError, TopicSpec};

/// A named topic holds at least this many messages (other processes' subscribers may ask for
/// deep queues; their depth is capped at the topic's capacity).
pub const NAMED_MIN_CAPACITY: u32 = 64;
/// A named topic's capacity grows to at most this many bytes of slots (or to its deepest local
/// subscriber, if that is more).
pub const NAMED_MEMORY_BUDGET: u64 = 4 * 1024 * 1024;

/// Where a topic's name comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TopicName {
    /// Private to this host run; the `node.port` of its publishing output.
    Local(String),
    /// Shared by name with other processes.
    Named(String),
}

/// What one port will be bound to when the graph runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum PortPlan {
    /// An output publishing on a topic.
    Output {
        /// The topic.
        topic: TopicName,
        /// Its slot size, type and capacity.
        spec: PlanSpec,
    },
    /// An input subscribed to a topic.
    Input {
        /// The topic.
        topic: TopicName,
        /// Its slot size, type and capacity.
        spec: PlanSpec,
        /// The connection's QoS.
        qos: Qos,
    },
    /// Declared by the node type but not connected.
    Unconnected {
        /// True for an output.
        output: bool,
    },
}

/// A topic that travels over a network hub (`[hub.<name>] mode = "tcp"`): nodes use a private
/// ring as for any topic, and the host's bridge moves messages between that ring and the
/// network (`crate::net::bridge`).
#[derive(Debug, Clone, PartialEq)]
pub struct NetTopic {
    /// The hub's name.
    pub hub: String,
    /// The topic, which is also its key on the network.
    pub key: String,
    /// The private ring on this side.
    pub local: TopicName,
    /// Its type, slot size and capacity.
    pub spec: PlanSpec,
    /// True: nodes of this host publish it; false: they subscribe to it.
    pub outbound: bool,
    /// Outbound: the publishing connection's QoS (reliable: the bridge reads every message, and
    /// a full ring pushes back on the node); inbound: the deepest subscriber's.
    pub qos: Qos,
}

/// Size and type of a topic, before its name is resolved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanSpec {
    /// Message type name.
    pub type_name: String,
    /// Message type hash.
    pub type_hash: u64,
    /// Largest message in bytes.
    pub slot_size: u32,
    /// Slots, if this endpoint creates the segment.
    pub capacity: u32,
    /// One producer only.
    pub single_producer: bool,
}

/// Capacity of a named topic with slots of `slot_size` whose local subscribers want `depth`.
pub fn named_capacity(slot_size: u32, depth: u32) -> u32 {
    let stride = u64::from(layout::stride(slot_size));
    let budget = (NAMED_MEMORY_BUDGET / stride).clamp(2, 1024) as u32;
    depth.max(NAMED_MIN_CAPACITY.min(budget)).max(2)
}

/// Resolves topic names for one host run.
#[derive(Debug, Clone)]
pub struct TopicScope {
    namespace: String,
    instance: String,
}

impl Default for TopicScope {
    fn default() -> Self {
        TopicScope::new()
    }
}

impl TopicScope {
    /// The scope of this process: namespace from the environment, instance from the pid.
    pub fn new() -> TopicScope {
        TopicScope {
            namespace: shm::namespace(),
            instance: shm::private_instance(),
        }
    }

    /// The scope of another host run (a process-isolated node's worker uses its host's).
    pub fn with(namespace: String, instance: String) -> TopicScope {
        TopicScope { namespace, instance }
    }

    /// The instance part of private topic names (`@h<pid>-<start time>`, see
    /// [`shm::private_instance`]).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The topic name as other processes see it.
    pub fn resolve(&self, name: &TopicName) -> String {
        match name {
            TopicName::Local(n) => format!("{}/{n}", self.instance),
            TopicName::Named(n) => n.clone(),
        }
    }

    fn spec(&self, topic: &TopicName, plan: &PlanSpec) -> TopicSpec {
        TopicSpec {
            topic: self.resolve(topic),
            type_name: plan.type_name.clone(),
            type_hash: plan.type_hash,
            slot_size: plan.slot_size,
            capacity: plan.capacity,
            single_producer: plan.single_producer,
        }
    }

    /// Attaches every port of one node to its topic.
    pub fn bind(&self, plans: &[PortPlan]) -> Result<Vec<PortBinding>, (usize, ShmError)> {
        self.bind_with(plans, false)
    }

    /// Like [`bind`](Self::bind), for a node's replacement: its outputs take their Links over
    /// from the replaced instance's publishers (revoked: they write nothing more) instead of
    /// being refused as second producers.
    pub fn bind_replacing(&self, plans: &[PortPlan]) -> Result<Vec<PortBinding>, (usize, ShmError)> {
        self.bind_with(plans, true)
    }

    /// The spec of a connected port's topic, as its endpoints attach it (`None`: unconnected):
    /// for a process that makes the other end of a node's port (`horus replay --node`).
    pub fn port_spec(&self, plan: &PortPlan) -> Option<TopicSpec> {
        match plan {
            PortPlan::Input { topic, spec, .. } | PortPlan::Output { topic, spec } => {
                Some(self.spec(topic, spec))
            }
            PortPlan::Unconnected { .. } => None,
        }
    }

    /// The shm names of the topics of every connected port (inputs and outputs).
    pub fn port_segments(&self, plans: &[PortPlan]) -> Vec<String> {
        plans
            .iter()
            .filter_map(|plan| match plan {
                PortPlan::Output { topic, .. } | PortPlan::Input { topic, .. } => {
                    Some(shm::shm_name(&self.namespace, &self.resolve(topic)))
                }
                PortPlan::Unconnected { .. } => None,
            })
            .collect()
    }

    /// The shm names of the Links (single-producer topics) the node's outputs publish on.
    pub fn output_links(&self, plans: &[PortPlan]) -> Vec<String> {
        plans
            .iter()
            .filter_map(|plan| match plan {
                PortPlan::Output { topic, spec } if spec.single_producer => {
                    Some(shm::shm_name(&self.namespace, &self.resolve(topic)))
                }
                _ => None,
            })
            .collect()
    }

    fn bind_with(&self, plans: &[PortPlan], replacing: bool) -> Result<Vec<PortBinding>, (usize, ShmError)> {
        plans
            .iter()
            .enumerate()
            .map(|(i, plan)| {
                let bound = match plan {
                    PortPlan::Output { topic, spec } if replacing => {
                        shm::publisher_taking_over(&self.namespace, &self.spec(topic, spec))
                            .map(PortBinding::Output)
                    }
                    PortPlan::Output { topic, spec } => {
                        shm::publisher(&self.namespace, &self.spec(topic, spec)).map(PortBinding::Output)
                    }
                    PortPlan::Input { topic, spec, qos } => {
                        let (depth, reliable) = match *qos {
                            Qos::KeepLast(n) => (n, false),
                            Qos::Reliable(n) => (n, true),
                        };
                        let depth = u32::try_from(depth).unwrap_or(u32::MAX);
                        shm::subscriber(&self.namespace, &self.spec(topic, spec), depth, reliable)
                            .map(PortBinding::Input)
                    }
                    PortPlan::Unconnected { output } => Ok(PortBinding::Unconnected {
                        output: *output,
                        sent: 0,
                    }),
                };
                bound.map_err(|e| (i, e))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_capacity_respects_depth_and_budget() {
        assert_eq!(named_capacity(56, 8), 64);
        assert_eq!(named_capacity(56, 500), 500);
        // 64 KiB slots: the budget allows 63 of them.
        assert_eq!(named_capacity(64 * 1024, 4), 63);
        assert_eq!(named_capacity(64 * 1024 * 1024, 1), 2);
    }

    #[test]
    fn local_names_are_private_to_the_instance() {
        let scope = TopicScope {
            namespace: "ns".into(),
            instance: "@h42-7".into(),
        };
        assert_eq!(
            scope.resolve(&TopicName::Local("imu.imu".into())),
            "@h42-7/imu.imu"
        );
        assert_eq!(scope.resolve(&TopicName::Named("robot/imu".into())), "robot/imu");
    }
}
