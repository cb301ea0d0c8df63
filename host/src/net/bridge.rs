//! The host's side of network hubs: moves messages between the private rings of
//! [`NetTopic`]s and their keys on the network.
//!
//! - Outbound (a node publishes `hub/topic`): a thread per topic reads the ring and publishes
//!   each message. It reads only while some subscriber matches the key: until then messages wait
//!   in the ring, so a `reliable` publishing connection pushes back on its node (nothing is
//!   lost while the peer is away or restarting), and a `keep_last` one keeps the newest.
//! - Inbound (a node subscribes to `hub/topic`): Zenoh's callback refuses a message larger
//!   than the topic's slots (unread) or of another type than the subscribers' port, and writes
//!   the others to the ring. It never waits: Zenoh runs the callbacks of every topic of a
//!   session one after another, so a wait for one topic's full reliable ring would hold up all
//!   the others. When the ring is full (or messages already wait), the message goes to the
//!   topic's hand-off queue (as many messages as the ring holds, at most
//!   [`INBOUND_QUEUE_BYTES`]), which a `horus-net-in-N` thread empties into the ring, giving
//!   each message up to [`INBOUND_FULL_WAIT`] for room. A message that finds the queue full, or
//!   waits in vain, is dropped and counted in the hub's `dropped`: on a reliable topic nothing
//!   is lost silently, but the network does not push back on the remote publisher.
//!
//! Each hub's session takes messages of at most its largest topic's slot size (plus the
//! header and Zenoh's framing), so a peer cannot make it reassemble more.

use super::status::{HubProbe, HubStatus};
use super::{Delivery, NetError, NetHub, NetPublisher, NetSubscriber, Tally, WireType};
use crate::manifest::hubs::{HubMode, HubSpec};
use crate::manifest::{HubDecl, Qos};
use crate::shm::{self, SendError, ShmError, TopicSpec};
use crate::topic::{NetTopic, TopicScope};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an inbound message waits in the hand-off queue for room in a full reliable ring.
pub const INBOUND_FULL_WAIT: Duration = Duration::from_secs(1);
/// The most bytes an inbound topic's hand-off queue holds (or one message, if its slots are
/// larger): a reader that stalls costs at most this much memory per topic.
pub const INBOUND_QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// How often an idle outbound or inbound thread looks at its stop flag and its subscribers.
const OUTBOUND_POLL: Duration = Duration::from_millis(20);
/// How often an inbound thread looks for room in a full reliable ring.
const INBOUND_RETRY: Duration = Duration::from_micros(200);

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
            // The session takes the largest message of the hub's topics, and no more.
            let max_message = topics
                .iter()
                .filter(|t| t.hub == decl.spec.name)
                .map(|t| t.spec.slot_size as usize)
                .max()
                .unwrap_or(0);
            let hub = NetHub::open(&decl.spec.name, address, max_message)?;
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
                let thread = spawn_bridge(name, topic, move || outbound(sub, &publisher, &ty, &stop))?;
                bridges.threads.push(thread);
            } else {
                let publisher = shm::publisher(scope.namespace(), &spec).map_err(ring)?;
                let inbox = Arc::new(Inbox::new(publisher, &topic.key, &spec));
                let (drain, stop, tally) = (inbox.clone(), bridges.stop.clone(), hub.tally());
                let name = format!("horus-net-in-{}", bridges.threads.len());
                let thread = spawn_bridge(name, topic, move || drain.run(&tally, &stop))?;
                bridges.threads.push(thread);
                let deliver = move |m: &super::Incoming<'_>| inbox.offer(m);
                let max = spec.slot_size as usize;
                bridges
                    ._subscribers
                    .push(hub.subscribe(&topic.key, false, max, deliver)?);
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
        // No new inbound messages, then the threads: the inbound ones count what is still
        // queued as dropped.
        self._subscribers.clear();
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Starts a bridge thread named `name` for `topic`.
fn spawn_bridge(
    name: String,
    topic: &NetTopic,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, BridgeError> {
    std::thread::Builder::new().name(name).spawn(f).map_err(|e| {
        BridgeError::Hub(NetError::Zenoh {
            hub: topic.hub.clone(),
            what: format!("starting the bridge of `{}`", topic.key),
            reason: e.to_string(),
        })
    })
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

/// An inbound topic: its ring, and the hand-off queue of the messages that found it full.
struct Inbox {
    state: Mutex<InboxState>,
    queued: Condvar,
    key: String,
    type_name: String,
    type_hash: u64,
    max_count: usize,
    max_bytes: usize,
    rejected: AtomicU64,
}

struct InboxState {
    ring: shm::Publisher,
    queue: VecDeque<Vec<u8>>,
    bytes: usize,
}

impl Inbox {
    fn new(ring: shm::Publisher, key: &str, spec: &TopicSpec) -> Inbox {
        Inbox {
            state: Mutex::new(InboxState {
                ring,
                queue: VecDeque::new(),
                bytes: 0,
            }),
            queued: Condvar::new(),
            key: key.to_owned(),
            type_name: spec.type_name.clone(),
            type_hash: spec.type_hash,
            max_count: (spec.capacity as usize).max(1),
            max_bytes: INBOUND_QUEUE_BYTES.max(spec.slot_size as usize),
            rejected: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn too_large(&self, len: usize, max: u32) -> String {
        format!(
            "topic `{}`: a message of {len} bytes does not fit its {max}-byte slots; raise `max_size` on the subscribing [[connect]]",
            self.key
        )
    }

    /// Zenoh's callback: into the ring if it has room and nothing waits before this message,
    /// else into the queue if that has room, else dropped. Never waits (the lock is held only
    /// for a ring write or a queue push, by this callback or [`Inbox::run`]).
    fn offer(&self, m: &super::Incoming<'_>) -> Delivery {
        if m.type_hash != self.type_hash {
            let why = format!(
                "topic `{}`: got a `{}` message, and its subscribers take `{}`; dropped",
                self.key, m.type_name, self.type_name
            );
            // The first of a kind, then one in a thousand: a misconfigured peer must not
            // flood the log.
            if self.rejected.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
                tracing::warn!("{why}");
            }
            return Delivery::Rejected(why);
        }
        let mut s = self.lock();
        if s.queue.is_empty() {
            match s.ring.send(m.bytes) {
                Ok(()) => return Delivery::Delivered,
                Err(SendError::TooLarge { len, max }) => return Delivery::Rejected(self.too_large(len, max)),
                Err(e @ (SendError::Revoked | SendError::Corrupt)) => {
                    return Delivery::Rejected(format!("topic `{}`: {e}", self.key))
                }
                Err(SendError::Full) => {}
            }
        }
        if s.queue.len() >= self.max_count || s.bytes + m.bytes.len() > self.max_bytes {
            return Delivery::Dropped;
        }
        s.bytes += m.bytes.len();
        s.queue.push_back(m.bytes.to_vec());
        drop(s);
        self.queued.notify_one();
        Delivery::Queued
    }

    /// The `horus-net-in-N` thread: moves queued messages into the ring in order, each waiting
    /// up to [`INBOUND_FULL_WAIT`] for room; once `stop` is set, what still finds no room is
    /// dropped.
    fn run(&self, tally: &Tally, stop: &AtomicBool) {
        let mut waiting_since: Option<Instant> = None;
        loop {
            let mut guard = self.lock();
            let s = &mut *guard;
            let Some(front) = s.queue.front() else {
                waiting_since = None;
                if stop.load(Ordering::Acquire) {
                    return;
                }
                let _ = self.queued.wait_timeout(guard, OUTBOUND_POLL);
                continue;
            };
            let len = front.len();
            let outcome = s.ring.send(front);
            match outcome {
                Ok(()) => tally.delivered(len),
                Err(SendError::TooLarge { len, max }) => tally.rejected(self.too_large(len, max)),
                Err(SendError::Full) => {
                    let since = *waiting_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < INBOUND_FULL_WAIT && !stop.load(Ordering::Acquire) {
                        drop(guard);
                        std::thread::sleep(INBOUND_RETRY);
                        continue;
                    }
                    tally.dropped(1);
                }
                Err(e @ (SendError::Revoked | SendError::Corrupt)) => {
                    tally.rejected(format!("topic `{}`: {e}", self.key))
                }
            }
            s.queue.pop_front();
            s.bytes -= len;
            waiting_since = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Location;
    use crate::topic::{PlanSpec, TopicName};

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + within;
        while !f() {
            assert!(
                Instant::now() < end,
                "timed out after {within:?} waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// An inbound network topic `hub/<name>` of raw bytes, `slot_size` bytes, `capacity` slots.
    fn inbound_topic(hub: &str, name: &str, slot_size: u32, capacity: u32) -> NetTopic {
        NetTopic {
            hub: hub.to_owned(),
            key: format!("{hub}/{name}"),
            local: TopicName::Local(format!("net.in/{name}")),
            spec: PlanSpec {
                type_name: "bytes".into(),
                type_hash: 7,
                slot_size,
                capacity,
                single_producer: true,
            },
            outbound: false,
            qos: Qos::Reliable(capacity as usize),
        }
    }

    fn tcp_hub(name: &str, port: u16) -> HubDecl {
        HubDecl {
            spec: HubSpec {
                name: name.to_owned(),
                mode: HubMode::Tcp,
                address: Some(format!("127.0.0.1:{port}")),
            },
            at: Location { line: 0, col: 0 },
        }
    }

    #[test]
    fn a_full_reliable_ring_does_not_stall_other_topics_of_the_session() {
        // Topic `slow` has a reliable reader that does not read; topic `fast` has one that does.
        // Both arrive through one Zenoh session, whose callbacks run one after another: a
        // callback that waited for room in `slow` held `fast` up for a second per message.
        let port = free_port();
        let scope = TopicScope::with(format!("tbridge{}", std::process::id()), "h1".into());
        let (slow, fast) = (
            inbound_topic("bh", "slow", 64, 4),
            inbound_topic("bh", "fast", 64, 4),
        );
        let bridges = Bridges::start(&[tcp_hub("bh", port)], &[slow.clone(), fast.clone()], &scope).unwrap();
        let ring = |t: &NetTopic| TopicSpec {
            topic: scope.resolve(&t.local),
            type_name: t.spec.type_name.clone(),
            type_hash: t.spec.type_hash,
            slot_size: t.spec.slot_size,
            capacity: t.spec.capacity,
            single_producer: true,
        };
        let mut slow_reader = shm::subscriber(scope.namespace(), &ring(&slow), 4, true).unwrap();
        let mut fast_reader = shm::subscriber(scope.namespace(), &ring(&fast), 4, true).unwrap();

        let remote = NetHub::open("bh", &format!("127.0.0.1:{port}"), 64).unwrap();
        let ty = WireType::new("bytes", 7);
        let to_slow = remote.publisher("bh/slow", false).unwrap();
        let to_fast = remote.publisher("bh/fast", false).unwrap();
        wait_for("the subscribers", Duration::from_secs(10), || {
            to_slow.matched() && to_fast.matched()
        });
        for i in 0u8..10 {
            assert!(to_slow.send(&ty, &[i]));
        }
        let sent = Instant::now();
        assert!(to_fast.send(&ty, b"fast"));
        let mut buf = Vec::new();
        wait_for("the message on `fast`", Duration::from_millis(500), || {
            fast_reader.try_recv(&mut buf).is_some()
        });
        eprintln!("`fast` got its message after {:?}", sent.elapsed());
        assert_eq!(buf, b"fast");

        // Reliable: what `slow` did not take is counted as dropped, nothing is lost silently.
        let mut got = Vec::new();
        let hub = || bridges.status()[0].metrics;
        wait_for(
            "every message of `slow` accounted for",
            Duration::from_secs(15),
            || {
                while slow_reader.try_recv(&mut buf).is_some() {
                    got.push(buf[0]);
                }
                hub().messages_received + hub().dropped == 11
            },
        );
        // (The last ones may have reached the ring after the reads above.)
        while slow_reader.try_recv(&mut buf).is_some() {
            got.push(buf[0]);
        }
        assert!(got.len() >= 4, "the ring's four at least: {got:?}");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "in order: {got:?}");
        assert_eq!(hub().messages_received, got.len() as u64 + 1);
    }
}
