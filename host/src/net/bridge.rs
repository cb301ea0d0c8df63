//! The host's side of network hubs: moves messages between the private rings of
//! [`NetTopic`]s and their keys on the network.
//!
//! - Outbound (a node publishes `hub/topic`): a thread per topic reads the ring and publishes
//!   each message. It reads only while some subscriber matches the key: until then messages wait
//!   in the ring, so a `reliable` publishing connection pushes back on its node (nothing is
//!   lost while the peer is away or restarting), and a `keep_last` one keeps the newest.
//! - Inbound (a node subscribes to `hub/topic`): Zenoh's callback checks the message's type
//!   against the subscribers' port type and writes it to the ring. A reliable ring that stays
//!   full for [`INBOUND_FULL_WAIT`] drops the message (counted in the hub's `dropped`).

use super::status::{HubProbe, HubStatus};
use super::{Delivery, NetError, NetHub, NetPublisher, NetSubscriber, WireType};
use crate::manifest::hubs::{HubMode, HubSpec};
use crate::manifest::{HubDecl, Qos};
use crate::shm::{self, SendError, ShmError, TopicSpec};
use crate::topic::{NetTopic, TopicScope};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an inbound message waits for room in a full reliable ring.
pub const INBOUND_FULL_WAIT: Duration = Duration::from_secs(1);
/// How often an idle outbound thread looks at its stop flag and its subscribers.
const OUTBOUND_POLL: Duration = Duration::from_millis(20);

/// Why the bridges could not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// A hub could not be opened.
    #[error(transparent)]
    Hub(#[from] NetError),
    /// A private ring could not be attached.
    #[error("network topic `{topic}`: {source}")]
    Ring {
        /// The topic.
        topic: String,
        /// Why.
        source: ShmError,
    },
}

impl BridgeError {
    /// The error as a diagnostic of `manifest`, at the hub's table (H0027).
    pub fn diagnostic(&self, manifest: &crate::manifest::Manifest) -> crate::diag::Diagnostic {
        use crate::diag::{Code, Diagnostic};
        let hub = match self {
            BridgeError::Hub(
                NetError::BadAddress { hub, .. }
                | NetError::Unreachable { hub, .. }
                | NetError::BadTopic { hub, .. }
                | NetError::Zenoh { hub, .. },
            ) => Some(hub.as_str()),
            BridgeError::Ring { .. } => None,
        };
        let decl = manifest.hubs.iter().find(|h| Some(h.spec.name.as_str()) == hub);
        let mut d = Diagnostic::new(Code::H0027, &manifest.path, self.to_string()).hint(
            "the first process of a hub listens on its address: pick a port no other program uses, \
             or the address where the hub's first process listens",
        );
        if let Some(decl) = decl {
            d = d.at(decl.at).key(format!("hub.{}.address", decl.spec.name));
        }
        d
    }
}

/// The open hubs of a run and their bridges; dropping it stops them.
pub struct Bridges {
    hubs: Vec<(HubSpec, Arc<NetHub>)>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    _subscribers: Vec<NetSubscriber>,
}

impl std::fmt::Debug for Bridges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridges").field("hubs", &self.hubs.len()).finish()
    }
}

impl Bridges {
    /// Opens every tcp hub of `hubs` and bridges every topic of `topics`.
    pub fn start(hubs: &[HubDecl], topics: &[NetTopic], scope: &TopicScope) -> Result<Bridges, BridgeError> {
        let mut bridges = Bridges {
            hubs: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            _subscribers: Vec::new(),
        };
        for decl in hubs.iter().filter(|h| h.spec.mode == HubMode::Tcp) {
            let address = decl.spec.address.as_deref().unwrap_or_default();
            let hub = NetHub::open(&decl.spec.name, address)?;
            bridges.hubs.push((decl.spec.clone(), Arc::new(hub)));
        }
        for topic in topics {
            let hub = bridges
                .hubs
                .iter()
                .find(|(spec, _)| spec.name == topic.hub)
                .map(|(_, h)| h.clone())
                .expect("every network topic's hub was declared and opened");
            let spec = TopicSpec {
                topic: scope.resolve(&topic.local),
                type_name: topic.spec.type_name.clone(),
                type_hash: topic.spec.type_hash,
                slot_size: topic.spec.slot_size,
                capacity: topic.spec.capacity,
                single_producer: true,
            };
            let ring = |source| BridgeError::Ring {
                topic: topic.key.clone(),
                source,
            };
            if topic.outbound {
                let reliable = matches!(topic.qos, Qos::Reliable(_));
                let sub = shm::subscriber(scope.namespace(), &spec, spec.capacity, reliable).map_err(ring)?;
                let publisher = hub.publisher(&topic.key, false)?;
                let ty = WireType::new(&spec.type_name, spec.type_hash);
                let stop = bridges.stop.clone();
                let name = format!("horus-net-out-{}", bridges.threads.len());
                let thread = std::thread::Builder::new()
                    .name(name)
                    .spawn(move || outbound(sub, &publisher, &ty, &stop))
                    .map_err(|e| {
                        BridgeError::Hub(NetError::Zenoh {
                            hub: topic.hub.clone(),
                            what: format!("starting the bridge of `{}`", topic.key),
                            reason: e.to_string(),
                        })
                    })?;
                bridges.threads.push(thread);
            } else {
                let publisher = shm::publisher(scope.namespace(), &spec).map_err(ring)?;
                let deliver = inbound(publisher, &topic.key, &spec, bridges.stop.clone());
                bridges
                    ._subscribers
                    .push(hub.subscribe(&topic.key, false, deliver)?);
            }
        }
        Ok(bridges)
    }

    /// Each hub's name, connection state and counters.
    pub fn status(&self) -> Vec<HubStatus> {
        status(&self.hubs)
    }

    /// Reads [`Bridges::status`] on demand (for `horus stats`), without holding the bridges.
    pub fn probe(&self) -> HubProbe {
        let hubs = self.hubs.clone();
        Arc::new(move || status(&hubs))
    }
}

fn status(hubs: &[(HubSpec, Arc<NetHub>)]) -> Vec<HubStatus> {
    hubs.iter()
        .map(|(spec, hub)| {
            let s = hub.state();
            HubStatus {
                name: spec.name.clone(),
                endpoint: s.endpoint,
                role: s.role,
                connected: s.connected,
                peers: s.peers,
                last_error: s.last_error,
                metrics: hub.metrics(),
            }
        })
        .collect()
}

impl Drop for Bridges {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self._subscribers.clear();
    }
}

fn outbound(mut sub: shm::Subscriber, publisher: &NetPublisher, ty: &WireType, stop: &AtomicBool) {
    let mut buf = Vec::new();
    while !stop.load(Ordering::Acquire) {
        if !publisher.matched() {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        if sub.recv_timeout(&mut buf, OUTBOUND_POLL).is_some() {
            publisher.send(ty, &buf);
        }
    }
    // The run stopped: what its nodes sent last still goes out (to a subscriber, if any).
    while publisher.matched() && sub.try_recv(&mut buf).is_some() {
        publisher.send(ty, &buf);
    }
    // A keep_last ring overwrote these while no subscriber was there.
    publisher.count_dropped(sub.dropped());
}

fn inbound(
    publisher: shm::Publisher,
    key: &str,
    spec: &TopicSpec,
    stop: Arc<AtomicBool>,
) -> impl Fn(&super::Incoming<'_>) -> Delivery + Send + Sync + 'static {
    let publisher = Mutex::new(publisher);
    let (key, type_name, type_hash) = (key.to_owned(), spec.type_name.clone(), spec.type_hash);
    let rejected = AtomicU64::new(0);
    move |m| {
        if m.type_hash != type_hash {
            let why = format!(
                "topic `{key}`: got a `{}` message, and its subscribers take `{type_name}`; dropped",
                m.type_name
            );
            // The first of a kind, then one in a thousand: a misconfigured peer must not
            // flood the log.
            if rejected.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
                tracing::warn!("{why}");
            }
            return Delivery::Rejected(why);
        }
        let mut publisher = publisher.lock().unwrap_or_else(|p| p.into_inner());
        let start = Instant::now();
        loop {
            match publisher.send(m.bytes) {
                Ok(()) => return Delivery::Delivered,
                Err(SendError::Full) if start.elapsed() < INBOUND_FULL_WAIT && !stop.load(Ordering::Acquire) => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(SendError::Full) => return Delivery::Dropped,
                Err(SendError::TooLarge { len, max }) => {
                    return Delivery::Rejected(format!(
                        "topic `{key}`: a message of {len} bytes does not fit its {max}-byte slots; raise `max_size` on the subscribing [[connect]]"
                    ))
                }
                Err(e @ (SendError::Revoked | SendError::Corrupt)) => {
                    return Delivery::Rejected(format!("topic `{key}`: {e}"))
                }
            }
        }
    }
}
