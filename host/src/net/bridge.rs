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
//! Each hub's session takes messages of at most its largest topic's slot size, or the default
//! `max_size` (64 KiB) when that is larger, so that topics of that size can join it live (plus
//! the header and Zenoh's framing): a peer cannot make it reassemble more.

use super::super::apply::plan::NetChanges;
use super::status::{HubProbe, HubStatus};
use super::{Delivery, NetError, NetHub, NetPublisher, NetSubscriber, Tally, WireType};
use crate::manifest::hubs::{HubMode, HubSpec};
use crate::manifest::{HubDecl, Qos};
use crate::shm::{self, SendError, ShmError, TopicSpec};
use crate::topic::{NetTopic, TopicScope};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
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
    /// A change a live apply cannot make to running bridges: why, and what to do.
    #[error("{0}")]
    Live(String),
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
            BridgeError::Ring { .. } | BridgeError::Live(_) => None,
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

/// A bridge thread's stop flag: running, stopping after sending what its ring still holds (an
/// outbound one; an inbound one drops what still finds no room), or handing its ring
/// subscriber over to the bridge that replaces it (outbound).
const RUN: u8 = 0;
const DRAIN: u8 = 1;
const HAND_OVER: u8 = 2;

/// The open hubs of a run and their bridges, one [`HubGroup`] per tcp hub; dropping it stops
/// them. A live apply changes them per hub and per topic: [`Bridges::stage`] opens what is new
/// (off the scheduler thread, before anything else changes), [`Bridges::commit`] stops what
/// went once the scheduler applied the rest; a [`Staged`] dropped uncommitted is undone.
pub struct Bridges {
    scope: TopicScope,
    groups: Vec<HubGroup>,
    /// The hubs `horus stats` lists ([`Bridges::probe`]), without the bridges' lock.
    listed: Arc<Mutex<Listed>>,
}

/// The open hubs, as `horus stats` lists them.
type Listed = Vec<(HubSpec, Arc<NetHub>)>;

/// One tcp hub: its session and the bridges of its topics.
struct HubGroup {
    spec: HubSpec,
    hub: Arc<NetHub>,
    topics: Vec<TopicBridge>,
}

impl Drop for HubGroup {
    fn drop(&mut self) {
        // Its topics' bridges first (the outbound ones send what is left), then the session.
        self.topics.clear();
    }
}

/// One topic's bridge: an outbound thread, or an inbound subscription, its hand-off queue and
/// the thread that empties it. Dropping it stops it.
struct TopicBridge {
    topic: NetTopic,
    stop: Arc<AtomicU8>,
    thread: Option<JoinHandle<Option<shm::Subscriber>>>,
    subscriber: Option<NetSubscriber>,
    inbox: Option<Arc<Inbox>>,
    /// A staged outbound bridge that replaces a running one: where the running one's ring
    /// subscriber goes at commit (dropped uncommitted: the thread ends).
    handover: Option<std::sync::mpsc::Sender<shm::Subscriber>>,
}

impl TopicBridge {
    /// Stops the bridge (`how`: [`DRAIN`] or [`HAND_OVER`]); an outbound one handing over
    /// returns its ring subscriber.
    fn stop(&mut self, how: u8) -> Option<shm::Subscriber> {
        // No new inbound messages, then the thread: an inbound one counts what is still
        // queued as dropped.
        self.subscriber = None;
        self.handover = None;
        self.stop.store(how, Ordering::Release);
        self.thread.take().and_then(|t| t.join().ok()).flatten()
    }
}

impl Drop for TopicBridge {
    fn drop(&mut self) {
        self.stop(DRAIN);
    }
}

impl std::fmt::Debug for Bridges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridges")
            .field("hubs", &self.groups.len())
            .finish()
    }
}

/// The new part of the bridges an apply makes, opened and running next to the old ones until
/// [`Bridges::commit`]; dropped uncommitted, it is undone (its hubs closed, its bridges
/// stopped).
pub struct Staged {
    /// Hubs opened, with all their topics.
    opened: Vec<HubGroup>,
    /// Hubs closed at commit.
    closed: Vec<String>,
    /// Topics of kept hubs bridged anew (or replacing a changed one: same key and direction).
    added: Vec<TopicBridge>,
    /// Topics of kept hubs no longer bridged (or replaced).
    removed: Vec<NetTopic>,
    /// Changed inbound topics of kept hubs: their running bridge stays (its Zenoh subscription
    /// and its ring: a new subscription would miss what arrives before the network knows it),
    /// and takes the new topic's queue limit at commit.
    adjusted: Vec<(Arc<Inbox>, NetTopic)>,
}

impl std::fmt::Debug for Staged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged")
            .field("opened", &self.opened.len())
            .field("closed", &self.closed)
            .field("added", &self.added.len())
            .field("removed", &self.removed.len())
            .finish()
    }
}

impl Bridges {
    /// Opens every tcp hub of `hubs` and bridges every topic of `topics`.
    pub fn start(hubs: &[HubDecl], topics: &[NetTopic], scope: &TopicScope) -> Result<Bridges, BridgeError> {
        let mut bridges = Bridges {
            scope: scope.clone(),
            groups: Vec::new(),
            listed: Arc::default(),
        };
        let specs: Vec<HubSpec> = (hubs.iter().map(|h| h.spec.clone()))
            .filter(|h| h.mode == HubMode::Tcp)
            .collect();
        let changes = crate::apply::plan::net_changes((&[], &[]), (&specs, topics));
        let staged = bridges.stage(&changes)?;
        bridges.commit(staged);
        Ok(bridges)
    }

    /// Opens what `changes` adds, next to the running bridges, which keep running: the new
    /// hubs' sessions and bridges, and the new bridges of kept hubs' topics (a changed
    /// outbound one waits for the running one's ring subscriber; a changed inbound one keeps
    /// its running bridge, which takes the new queue limit at commit). Nothing changes when it
    /// fails, or when the staged part is dropped uncommitted (its hubs closed, its bridges
    /// stopped).
    pub fn stage(&self, changes: &NetChanges) -> Result<Staged, BridgeError> {
        let mut staged = Staged {
            opened: Vec::new(),
            closed: changes.hubs_closed.clone(),
            added: Vec::new(),
            removed: Vec::new(),
            adjusted: Vec::new(),
        };
        for spec in &changes.hubs_opened {
            let address = spec.address.as_deref().unwrap_or_default();
            // A hub this apply closes still holds its address: the new one would connect to
            // it, and lose it at commit.
            if let Some(old) = self
                .groups
                .iter()
                .find(|g| g.spec.address.as_deref() == Some(address) && staged.closed.contains(&g.spec.name))
            {
                return Err(BridgeError::Live(format!(
                    "network hub `{}`: its address {address} is held by hub `{}`, which this apply \
                     closes, until the apply is done; close `{}` first (apply without it), then \
                     add `{}`",
                    spec.name, old.spec.name, old.spec.name, spec.name
                )));
            }
            let topics: Vec<&NetTopic> = changes.topics.iter().filter(|t| t.hub == spec.name).collect();
            // The session takes the largest message of the hub's topics, and no more — but at
            // least a default `max_size`, so a topic of that size can join it live.
            let max_message = (topics.iter().map(|t| t.spec.slot_size as usize))
                .chain([crate::manifest::DEFAULT_MAX_SIZE as usize])
                .max()
                .unwrap_or(0);
            let hub = Arc::new(NetHub::open(&spec.name, address, max_message)?);
            let mut group = HubGroup {
                spec: spec.clone(),
                hub,
                topics: Vec::new(),
            };
            for topic in topics {
                let bridge = self.bridge(&group.hub, topic, None)?;
                group.topics.push(bridge);
            }
            staged.opened.push(group);
        }
        let old = |t: &NetTopic| {
            let group = self.groups.iter().find(|g| g.spec.name == t.hub)?;
            group
                .topics
                .iter()
                .find(|b| b.topic.key == t.key && b.topic.outbound == t.outbound)
                .map(|b| (group, b))
        };
        for topic in changes.topics_added.iter().chain(&changes.topics_changed) {
            let Some(group) = self.groups.iter().find(|g| g.spec.name == topic.hub) else {
                continue;
            };
            let slot = topic.spec.slot_size as usize;
            if slot > group.hub.max_message() {
                return Err(BridgeError::Live(format!(
                    "network hub `{}`: topic `{}` takes messages of up to {slot} bytes, and the hub's \
                     session, opened for messages of at most {} bytes, \
                     cannot take larger ones while it runs; restart the host to apply this \
                     manifest, or keep the topic's `max_size` at most {}",
                    topic.hub,
                    topic.key,
                    group.hub.max_message(),
                    group.hub.max_message()
                )));
            }
            let running = old(topic).map(|(_, b)| b);
            if let Some(inbox) = running.and_then(|b| b.inbox.clone()) {
                // The same ring (a network topic's ring never grows live): the running bridge
                // carries on, nothing lost or twice.
                staged.adjusted.push((inbox, topic.clone()));
                continue;
            }
            let bridge = self.bridge(&group.hub, topic, running)?;
            staged.added.push(bridge);
            if running.is_some() {
                staged.removed.push(topic.clone());
            }
        }
        staged.removed.extend(changes.topics_removed.iter().cloned());
        Ok(staged)
    }

    /// Applies `staged`: closes the hubs it closes, stops the bridges of topics it removes
    /// (an outbound one sends what its ring still holds; a replaced one hands its ring over to
    /// its successor) and keeps the new ones. Cannot fail.
    pub fn commit(&mut self, mut staged: Staged) {
        self.groups.retain(|g| !staged.closed.contains(&g.spec.name));
        for topic in std::mem::take(&mut staged.removed) {
            let Some(group) = self.groups.iter_mut().find(|g| g.spec.name == topic.hub) else {
                continue;
            };
            let Some(i) = (group.topics.iter())
                .position(|b| b.topic.key == topic.key && b.topic.outbound == topic.outbound)
            else {
                continue;
            };
            let mut old = group.topics.remove(i);
            let successor = staged
                .added
                .iter_mut()
                .find(|b| b.handover.is_some() && same_topic(&b.topic, &old.topic));
            match successor {
                Some(next) => {
                    let tx = next.handover.take().expect("a successor waits for the ring");
                    if let Some(sub) = old.stop(HAND_OVER) {
                        let _ = tx.send(sub);
                    }
                }
                None => drop(old),
            }
        }
        for bridge in std::mem::take(&mut staged.added) {
            if let Some(group) = self.groups.iter_mut().find(|g| g.spec.name == bridge.topic.hub) {
                group.topics.push(bridge);
            }
        }
        for (inbox, topic) in std::mem::take(&mut staged.adjusted) {
            inbox.set_limit(&topic);
            let bridge = (self.groups.iter_mut())
                .filter(|g| g.spec.name == topic.hub)
                .flat_map(|g| g.topics.iter_mut())
                .find(|b| same_topic(&b.topic, &topic));
            if let Some(b) = bridge {
                b.topic = topic;
            }
        }
        self.groups.append(&mut staged.opened);
        *self.listed.lock().unwrap_or_else(|p| p.into_inner()) = (self.groups.iter())
            .map(|g| (g.spec.clone(), g.hub.clone()))
            .collect();
    }

    /// Stops every bridge and closes every hub (the end of a run).
    pub fn close(&mut self) {
        self.listed.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.groups.clear();
    }

    /// The bridge of `topic` on `hub`, running (an outbound one replacing `running` waits for
    /// its ring subscriber first).
    fn bridge(
        &self,
        hub: &Arc<NetHub>,
        topic: &NetTopic,
        running: Option<&TopicBridge>,
    ) -> Result<TopicBridge, BridgeError> {
        let scope = &self.scope;
        let spec = ring_spec(scope, topic);
        let ring = |source| BridgeError::Ring {
            topic: topic.key.clone(),
            source,
        };
        let stop = Arc::new(AtomicU8::new(RUN));
        let mut bridge = TopicBridge {
            topic: topic.clone(),
            stop: stop.clone(),
            thread: None,
            subscriber: None,
            inbox: None,
            handover: None,
        };
        let n = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
        if topic.outbound {
            let reliable = matches!(topic.qos, Qos::Reliable(_));
            let mut sub = shm::subscriber(scope.namespace(), &spec, spec.capacity, reliable).map_err(ring)?;
            let publisher = hub.publisher(&topic.key, false)?;
            let ty = WireType::new(&spec.type_name, spec.type_hash);
            let previous = match running {
                Some(_) => {
                    let (tx, rx) = std::sync::mpsc::channel::<shm::Subscriber>();
                    bridge.handover = Some(tx);
                    Some(rx)
                }
                None => None,
            };
            let name = format!("horus-net-out-{n}");
            bridge.thread = Some(spawn_bridge(name, topic, move || {
                if let Some(previous) = previous {
                    // Reads on where the running bridge stopped: nothing twice, nothing lost.
                    let Ok(old) = previous.recv() else { return None };
                    sub.resume_from(&old);
                }
                outbound(sub, &publisher, &ty, &stop)
            })?);
        } else {
            let publisher = shm::publisher(scope.namespace(), &spec);
            let inbox = Arc::new(Inbox::new(publisher.map_err(ring)?, &topic.key, &spec));
            let (drain, tally) = (inbox.clone(), hub.tally());
            let name = format!("horus-net-in-{n}");
            bridge.thread = Some(spawn_bridge(name, topic, move || {
                drain.run(&tally, &stop);
                None
            })?);
            bridge.inbox = Some(inbox.clone());
            let deliver = move |m: &super::Incoming<'_>| inbox.offer(m);
            let max = spec.slot_size as usize;
            bridge.subscriber = Some(hub.subscribe(&topic.key, false, max, deliver)?);
        }
        Ok(bridge)
    }

    /// Each hub's name, connection state and counters.
    pub fn status(&self) -> Vec<HubStatus> {
        status(&self.listed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reads [`Bridges::status`] on demand (for `horus stats`), without holding the bridges:
    /// the hubs open then (those an apply added, not those it closed).
    pub fn probe(&self) -> HubProbe {
        let hubs = self.listed.clone();
        Arc::new(move || status(&hubs.lock().unwrap_or_else(|p| p.into_inner())))
    }
}

/// The bridge threads' numbers (`horus-net-out-N`, `horus-net-in-N`).
static NEXT_THREAD: AtomicU64 = AtomicU64::new(0);

fn same_topic(a: &NetTopic, b: &NetTopic) -> bool {
    a.hub == b.hub && a.key == b.key && a.outbound == b.outbound
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
        self.close();
    }
}

/// The private ring of network topic `topic` in `scope`: the one its nodes' ports and its
/// bridge attach to.
fn ring_spec(scope: &TopicScope, topic: &NetTopic) -> TopicSpec {
    TopicSpec {
        topic: scope.resolve(&topic.local),
        type_name: topic.spec.type_name.clone(),
        type_hash: topic.spec.type_hash,
        slot_size: topic.spec.slot_size,
        capacity: topic.spec.capacity,
        single_producer: true,
    }
}

/// Starts a bridge thread named `name` for `topic`.
fn spawn_bridge(
    name: String,
    topic: &NetTopic,
    f: impl FnOnce() -> Option<shm::Subscriber> + Send + 'static,
) -> Result<JoinHandle<Option<shm::Subscriber>>, BridgeError> {
    std::thread::Builder::new().name(name).spawn(f).map_err(|e| {
        BridgeError::Hub(NetError::Zenoh {
            hub: topic.hub.clone(),
            what: format!("starting the bridge of `{}`", topic.key),
            reason: e.to_string(),
        })
    })
}

/// An outbound bridge's thread; returns its ring subscriber when stopped to hand it over.
fn outbound(
    mut sub: shm::Subscriber,
    publisher: &NetPublisher,
    ty: &WireType,
    stop: &AtomicU8,
) -> Option<shm::Subscriber> {
    let mut buf = Vec::new();
    while stop.load(Ordering::Acquire) == RUN {
        if !publisher.matched() {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        if sub.recv_timeout(&mut buf, OUTBOUND_POLL).is_some() {
            publisher.send(ty, &buf);
        }
    }
    if stop.load(Ordering::Acquire) == HAND_OVER {
        // Its successor reads on from here (and counts what the ring overwrote).
        return Some(sub);
    }
    // The run stopped (or the topic left the hub): what its nodes sent last still goes out
    // (to a subscriber, if any).
    while publisher.matched() && sub.try_recv(&mut buf).is_some() {
        publisher.send(ty, &buf);
    }
    // A keep_last ring overwrote these while no subscriber was there.
    publisher.count_dropped(sub.dropped());
    None
}

/// An inbound topic: its ring, and the hand-off queue of the messages that found it full.
struct Inbox {
    state: Mutex<InboxState>,
    queued: Condvar,
    key: String,
    type_name: String,
    type_hash: u64,
    max_count: AtomicUsize,
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
            max_count: AtomicUsize::new((spec.capacity as usize).max(1)),
            max_bytes: INBOUND_QUEUE_BYTES.max(spec.slot_size as usize),
            rejected: AtomicU64::new(0),
        }
    }

    /// A live apply changed the topic (its deepest subscriber's queue): the hand-off queue holds
    /// as many messages as its ring now.
    fn set_limit(&self, topic: &NetTopic) {
        self.max_count
            .store((topic.spec.capacity as usize).max(1), Ordering::Relaxed);
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
                Err(
                    e @ (SendError::Revoked | SendError::Corrupt | SendError::LoanOpen | SendError::NoLoan),
                ) => return Delivery::Rejected(format!("topic `{}`: {e}", self.key)),
                Err(SendError::Full | SendError::Pinned) => {}
            }
        }
        if s.queue.len() >= self.max_count.load(Ordering::Relaxed) || s.bytes + m.bytes.len() > self.max_bytes
        {
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
    fn run(&self, tally: &Tally, stop: &AtomicU8) {
        let stopping = || stop.load(Ordering::Acquire) != RUN;
        let mut waiting_since: Option<Instant> = None;
        loop {
            let mut guard = self.lock();
            let s = &mut *guard;
            let Some(front) = s.queue.front() else {
                waiting_since = None;
                if stopping() {
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
                Err(SendError::Full | SendError::Pinned) => {
                    let since = *waiting_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < INBOUND_FULL_WAIT && !stopping() {
                        drop(guard);
                        std::thread::sleep(INBOUND_RETRY);
                        continue;
                    }
                    tally.dropped(1);
                }
                Err(
                    e @ (SendError::Revoked | SendError::Corrupt | SendError::LoanOpen | SendError::NoLoan),
                ) => tally.rejected(format!("topic `{}`: {e}", self.key)),
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
        let ring = |t: &NetTopic| ring_spec(&scope, t);
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

    fn tcp_spec(name: &str, port: u16) -> HubSpec {
        tcp_hub(name, port).spec
    }

    fn names(b: &Bridges) -> Vec<String> {
        b.status().into_iter().map(|h| h.name).collect()
    }

    #[test]
    fn an_apply_opens_and_closes_hubs_and_an_undone_one_changes_nothing() {
        let scope = TopicScope::with(format!("tstage{}", std::process::id()), "h1".into());
        let (pa, pb) = (free_port(), free_port());
        let a = [tcp_spec("sa", pa)];
        let topic = inbound_topic("sa", "t", 64, 4);
        let mut bridges = Bridges::start(&[tcp_hub("sa", pa)], std::slice::from_ref(&topic), &scope).unwrap();
        let probe = bridges.probe();
        assert_eq!(names(&bridges), ["sa"]);
        let both = [tcp_spec("sa", pa), tcp_spec("sb", pb)];
        let opened = crate::apply::plan::net_changes(
            (&a, std::slice::from_ref(&topic)),
            (&both, std::slice::from_ref(&topic)),
        );
        assert_eq!(opened.hubs_kept, ["sa"]);

        // Undone: the new hub closes (its port is free again), the running one stays.
        let staged = bridges.stage(&opened).unwrap();
        drop(staged);
        assert_eq!(names(&bridges), ["sa"]);
        std::net::TcpListener::bind(("127.0.0.1", pb)).expect("the undone hub's port is free");

        // Committed: listed by the probe `horus stats` reads; the kept hub keeps its session.
        let staged = bridges.stage(&opened).unwrap();
        bridges.commit(staged);
        assert_eq!(
            probe().into_iter().map(|h| h.name).collect::<Vec<_>>(),
            ["sa", "sb"]
        );
        let closed =
            crate::apply::plan::net_changes((&both, std::slice::from_ref(&topic)), (&both[1..], &[]));
        assert_eq!(closed.hubs_closed, ["sa"]);
        let staged = bridges.stage(&closed).unwrap();
        bridges.commit(staged);
        assert_eq!(names(&bridges), ["sb"]);
        std::net::TcpListener::bind(("127.0.0.1", pa)).expect("the closed hub's port is free");

        // A hub that cannot open fails the stage; nothing changes.
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let bad = crate::apply::plan::net_changes(
            (&both[1..], &[]),
            (&[tcp_spec("sb", pb), tcp_spec("sc", port)], &[]),
        );
        let err = bridges.stage(&bad).expect_err("a port held by something else");
        assert!(err.to_string().contains("network hub `sc`"), "{err}");
        assert_eq!(names(&bridges), ["sb"]);

        // A running session takes topics of the default max_size, and refuses larger ones.
        let sb = [tcp_spec("sb", pb)];
        let joins = crate::apply::plan::net_changes((&sb, &[]), (&sb, &[inbound_topic("sb", "j", 65536, 4)]));
        bridges.commit(bridges.stage(&joins).unwrap());
        let large = inbound_topic("sb", "k", 65537, 4);
        let bigger = crate::apply::plan::net_changes((&sb, &[]), (&sb, &[large]));
        let err = bridges.stage(&bigger).expect_err("larger than the session takes");
        assert!(matches!(err, BridgeError::Live(_)), "{err}");
        assert!(
            err.to_string()
                .contains("topic `sb/k` takes messages of up to 65537 bytes"),
            "{err}"
        );
        bridges.close();
        assert!(probe().is_empty());
    }

    #[test]
    fn a_changed_topic_of_a_kept_hub_is_handed_over_without_loss_or_repeat() {
        // Both directions change their QoS (the same rings): the new bridges take over from
        // the running ones, every message crosses once, in order, and the hub counts no error.
        let port = free_port();
        let scope = TopicScope::with(format!("thand{}", std::process::id()), "h1".into());
        let outbound_topic = |qos| NetTopic {
            key: "ch/o".into(),
            local: TopicName::Local("net.out/o".into()),
            outbound: true,
            qos,
            ..inbound_topic("ch", "o", 64, 256)
        };
        let (out_a, out_b) = (
            outbound_topic(Qos::KeepLast(256)),
            outbound_topic(Qos::Reliable(256)),
        );
        let in_a = NetTopic {
            qos: Qos::KeepLast(256),
            ..inbound_topic("ch", "i", 64, 256)
        };
        let in_b = inbound_topic("ch", "i", 64, 256);
        let hubs = [tcp_spec("ch", port)];
        let before = [out_a.clone(), in_a.clone()];
        let mut bridges = Bridges::start(&[tcp_hub("ch", port)], &before, &scope).unwrap();
        let ring = |t: &NetTopic| ring_spec(&scope, t);
        let mut node_out = shm::publisher(scope.namespace(), &ring(&out_a)).unwrap();
        let mut node_in = shm::subscriber(scope.namespace(), &ring(&in_a), 256, true).unwrap();
        let remote = NetHub::open("ch", &format!("127.0.0.1:{port}"), 64).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        let _sub = remote
            .subscribe("ch/o", false, 64, move |m| {
                let _ = tx.lock().unwrap().send(m.bytes[0]);
                Delivery::Delivered
            })
            .unwrap();
        let to_node = remote.publisher("ch/i", false).unwrap();
        wait_for("the peers", Duration::from_secs(10), || to_node.matched());
        let ty = WireType::new("bytes", 7);
        let send = |range: std::ops::Range<u8>, node_out: &mut shm::Publisher| {
            for i in range {
                node_out.send(&[i]).unwrap();
                assert!(to_node.send(&ty, &[i]));
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        send(0..50, &mut node_out);
        let after = [out_b, in_b];
        let changes = crate::apply::plan::net_changes((&hubs, &before), (&hubs, &after));
        assert_eq!(changes.topics_changed.len(), 2, "{changes:?}");
        let staged = bridges.stage(&changes).unwrap();
        send(50..70, &mut node_out);
        bridges.commit(staged);
        send(70..100, &mut node_out);

        let (mut sent, mut got) = (Vec::new(), Vec::new());
        let mut buf = Vec::new();
        wait_for("every message both ways", Duration::from_secs(10), || {
            sent.extend(rx.try_iter());
            while node_in.try_recv(&mut buf).is_some() {
                got.push(buf[0]);
            }
            sent.len() >= 100 && got.len() >= 100
        });
        std::thread::sleep(Duration::from_millis(200));
        sent.extend(rx.try_iter());
        while node_in.try_recv(&mut buf).is_some() {
            got.push(buf[0]);
        }
        let all: Vec<u8> = (0..100).collect();
        assert_eq!(sent, all, "outbound: once each, in order");
        assert_eq!(got, all, "inbound: once each, in order");

        // The change back staged and undone: the running bridges take their rings back.
        let back = crate::apply::plan::net_changes((&hubs, &after), (&hubs, &before));
        drop(bridges.stage(&back).unwrap());
        send(100..110, &mut node_out);
        wait_for("the messages after the undo", Duration::from_secs(10), || {
            sent.extend(rx.try_iter());
            while node_in.try_recv(&mut buf).is_some() {
                got.push(buf[0]);
            }
            sent.len() >= 110 && got.len() >= 110
        });
        let all: Vec<u8> = (0..110).collect();
        assert_eq!((sent, got), (all.clone(), all));
        let m = bridges.status()[0].metrics;
        assert_eq!((m.errors, m.dropped), (0, 0), "{m:?}");
    }
}
