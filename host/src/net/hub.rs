//! One network hub: a Zenoh session (cargo feature `network`), its publishers, subscribers and
//! monitor thread.
//!
//! A hub is one Zenoh session in peer mode on one TCP endpoint. Opening it tries to **listen**
//! on the address; if that fails (the port is taken, normally by the hub's first process), it
//! **connects** to it instead, and fails with an error naming the address when neither works (a
//! port held by something that is not a HORUS hub). A connecting session that loses its peer
//! reconnects by itself (Zenoh's connect retry, 100 ms growing to 1 s); a listening one simply
//! accepts the peer again. Multicast scouting is off, so hubs on other ports or in other tests
//! never meet. A connecting session also listens on a free port (of loopback for a loopback
//! hub, of every interface otherwise) and learns the others' from the first (gossip), so every process of a hub ends up connected to every
//! other one, as Zenoh peers are meant to be.
//!
//! Keys: the hub's name is the key-expression prefix. The hub's own stream (Python's
//! `hub.send`) is the key `<hub>`, a topic `t` under it is `<hub>/t`.
//!
//! Each message travels with the header of [`super::wire`]; a mismatch or a malformed header
//! is an error, counted, never a crash.
//!
//! Input is bounded. A session takes messages of at most its largest topic's size plus
//! [`ZENOH_SLACK`] (Zenoh's `transport/link/rx/max_message_size`, 1 GiB by default): Zenoh
//! discards a larger one before it is reassembled, without telling the session (its trace log
//! says "Defragmentation buffer full"), so such a message is not counted. A subscriber's callback
//! then refuses a message larger than its own topic's size before it copies a byte, and counts
//! it as an error with a last error that names the size. Callbacks run on Zenoh's receive
//! threads, one message after another for a whole session: they must not wait, so a subscriber
//! that cannot deliver at once queues (`Delivery::Queued`, reported later through a [`Tally`])
//! or drops and counts. Does not own the wire format ([`super::wire`]) or the
//! status types ([`super::status`]).

use super::status::{ConnectionState, HubMetrics as Metrics, Role};
use super::wire::{self, WireType};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use zenoh::qos::CongestionControl;
use zenoh::sample::Locality;
use zenoh::Wait;

/// How long opening a hub may try to connect to an address whose port is taken.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the hub checks its peers (connection state and the log lines about it).
pub const MONITOR_PERIOD: Duration = Duration::from_millis(50);
/// Room for Zenoh's own framing of a message (key, encoding, extensions) above the HORUS
/// payload, in a session's maximum message size: one batch, more than any key can take.
pub const ZENOH_SLACK: usize = 64 * 1024;

/// The maximum message size of a session whose largest message is `max_message` bytes: what
/// [`config`] sets as Zenoh's `transport/link/rx/max_message_size`.
pub fn session_max_message_size(max_message: usize) -> usize {
    wire::max_payload(max_message).saturating_add(ZENOH_SLACK)
}

/// A hub could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The address is not `host:port`.
    #[error("network hub `{hub}`: {reason}")]
    BadAddress {
        /// The hub.
        hub: String,
        /// What is wrong and what to write.
        reason: String,
    },
    /// Neither listening on nor connecting to the address worked.
    #[error(
        "network hub `{hub}`: cannot listen on {address} ({listen}) and cannot connect to it \
         either ({connect}); if another program holds the port, pick a free one; if the address is \
         another machine's, start the hub's first process there and check that it is reachable"
    )]
    Unreachable {
        /// The hub.
        hub: String,
        /// `host:port`.
        address: String,
        /// Why listening failed.
        listen: String,
        /// Why connecting failed.
        connect: String,
    },
    /// A topic name that cannot be a key under the hub.
    #[error("network hub `{hub}`: topic `{topic}` is not a valid key ({reason}); use letters, digits, `_`, `-`, `.` and `/` between non-empty parts")]
    BadTopic {
        /// The hub.
        hub: String,
        /// The topic.
        topic: String,
        /// Zenoh's reason.
        reason: String,
    },
    /// Zenoh refused a declaration.
    #[error("network hub `{hub}`: {what}: {reason}")]
    Zenoh {
        /// The hub.
        hub: String,
        /// What was being done.
        what: String,
        /// Zenoh's reason.
        reason: String,
    },
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
}

struct Inner {
    name: String,
    endpoint: String,
    role: Role,
    session: zenoh::Session,
    counters: Counters,
    last_error: Mutex<Option<String>>,
    peers: AtomicUsize,
    stop: AtomicBool,
    max_message: usize,
}

impl Inner {
    fn error(&self, msg: String) {
        // The message first: whoever sees the count sees its last error.
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
        self.counters.errors.fetch_add(1, Ordering::Release);
    }

    fn peers_now(&self) -> usize {
        self.session.info().peers_zid().wait().count()
    }
}

/// One network hub: a Zenoh session on one address, shared by its publishers and subscribers.
pub struct NetHub {
    inner: Arc<Inner>,
    monitor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for NetHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetHub")
            .field("name", &self.inner.name)
            .field("endpoint", &self.inner.endpoint)
            .field("role", &self.inner.role)
            .finish()
    }
}

/// Zenoh refused a setting of [`config`].
#[derive(Debug, thiserror::Error)]
#[error("zenoh config `{key}`: {reason}")]
pub struct ConfigError {
    /// The setting.
    pub key: &'static str,
    /// Zenoh's reason.
    pub reason: String,
}

/// The Zenoh configuration of every hub session: peer mode, multicast scouting off, the given
/// listen and connect endpoints (`tcp/host:port`), quick reconnection, and a maximum received
/// message size for messages of at most `max_message` bytes ([`session_max_message_size`]).
/// Public so the network benchmark gives raw Zenoh exactly the same transport.
pub fn config(
    listen: Option<&str>,
    connect: Option<&str>,
    max_message: usize,
) -> Result<zenoh::Config, ConfigError> {
    let mut c = zenoh::Config::default();
    let list = |e: Option<&str>| match e {
        Some(e) => format!("[{}]", serde_json::Value::from(e)),
        None => "[]".to_owned(),
    };
    for (key, value) in [
        ("mode", "\"peer\"".to_owned()),
        ("scouting/multicast/enabled", "false".to_owned()),
        ("listen/endpoints", list(listen)),
        ("connect/endpoints", list(connect)),
        ("connect/exit_on_failure", "true".to_owned()),
        ("connect/timeout_ms", CONNECT_TIMEOUT.as_millis().to_string()),
        (
            "connect/retry",
            "{period_init_ms: 100, period_max_ms: 1000, period_increase_factor: 2}".to_owned(),
        ),
        (
            "transport/link/rx/max_message_size",
            session_max_message_size(max_message).to_string(),
        ),
    ] {
        c.insert_json5(key, &value).map_err(|e| ConfigError {
            key,
            reason: e.to_string(),
        })?;
    }
    Ok(c)
}

/// The first line of a Zenoh error, without the source locations Zenoh appends (` at
/// /path/file.rs:61.`).
fn short(e: &zenoh::Error) -> String {
    let s = e.to_string();
    let mut s = s.lines().next().unwrap_or_default().trim();
    let mut out = String::new();
    while let Some(i) = s.find(" at ") {
        let rest = &s[i + 4..];
        let end = rest.find([']', ')']).unwrap_or(rest.len());
        out.push_str(&s[..i]);
        if !rest[..end].contains(".rs:") {
            out.push_str(" at ");
        }
        s = if rest[..end].contains(".rs:") {
            &rest[end..]
        } else {
            rest
        };
    }
    out.push_str(s);
    out.trim_end_matches('.').to_owned()
}

/// Where a connecting session listens, so the hub's other peers can reach it too (gossip): a
/// free port on loopback for a loopback hub, else a free port on every interface (the address
/// is another machine's).
fn own_listener(address: &str) -> String {
    let (host, _) = address.rsplit_once(':').unwrap_or((address, ""));
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare == "localhost" || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match (loopback, host.starts_with('[')) {
        (true, _) => format!("tcp/{host}:0"),
        (false, true) => "tcp/[::]:0".to_owned(),
        (false, false) => "tcp/0.0.0.0:0".to_owned(),
    }
}

impl NetHub {
    /// Opens hub `name` at `address` (`host:port`): listens there, or connects to the process
    /// that does. `max_message`: the largest message (without its header) any of its
    /// subscribers takes; the session refuses larger ones (see the module's doc).
    pub fn open(name: &str, address: &str, max_message: usize) -> Result<NetHub, NetError> {
        crate::manifest::hubs::check_address(address).map_err(|e| NetError::BadAddress {
            hub: name.to_owned(),
            reason: e.to_string(),
        })?;
        zenoh::key_expr::KeyExpr::try_from(name.to_owned()).map_err(|e| NetError::BadTopic {
            hub: name.to_owned(),
            topic: name.to_owned(),
            reason: e.to_string(),
        })?;
        let endpoint = format!("tcp/{address}");
        let bad = |e: ConfigError| NetError::BadAddress {
            hub: name.to_owned(),
            reason: e.to_string(),
        };
        let listen_cfg = config(Some(&endpoint), None, max_message).map_err(bad)?;
        let (session, role) = match zenoh::open(listen_cfg).wait() {
            Ok(s) => (s, Role::Listening),
            Err(listen_err) => {
                let any_port = own_listener(address);
                let connect_cfg = config(Some(&any_port), Some(&endpoint), max_message).map_err(bad)?;
                match zenoh::open(connect_cfg).wait() {
                    Ok(s) if s.info().peers_zid().wait().count() > 0 => (s, Role::Connected),
                    Ok(s) => {
                        let _ = s.close().wait();
                        return Err(NetError::Unreachable {
                            hub: name.to_owned(),
                            address: address.to_owned(),
                            listen: short(&listen_err),
                            connect: "no HORUS hub answered".to_owned(),
                        });
                    }
                    Err(connect_err) => {
                        return Err(NetError::Unreachable {
                            hub: name.to_owned(),
                            address: address.to_owned(),
                            listen: short(&listen_err),
                            connect: short(&connect_err),
                        })
                    }
                }
            }
        };
        let inner = Arc::new(Inner {
            name: name.to_owned(),
            endpoint,
            role,
            session,
            counters: Counters::default(),
            last_error: Mutex::new(None),
            peers: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            max_message,
        });
        inner.peers.store(inner.peers_now(), Ordering::Relaxed);
        tracing::info!(
            hub = name,
            "network hub on {} ({}, {} peer(s))",
            inner.endpoint,
            if role == Role::Listening {
                "listening"
            } else {
                "connected"
            },
            inner.peers.load(Ordering::Relaxed)
        );
        let watched = inner.clone();
        let monitor = std::thread::Builder::new()
            .name(format!("horus-net-{name}"))
            .spawn(move || monitor(&watched))
            .map_err(|e| NetError::Zenoh {
                hub: name.to_owned(),
                what: "starting its monitor thread".into(),
                reason: e.to_string(),
            })?;
        Ok(NetHub {
            inner,
            monitor: Some(monitor),
        })
    }

    /// The hub's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The largest message its session takes (as opened).
    pub fn max_message(&self) -> usize {
        self.inner.max_message
    }

    /// The counters of messages a subscriber's callback queued ([`Delivery::Queued`]).
    pub fn tally(&self) -> Tally {
        Tally {
            hub: self.inner.clone(),
        }
    }

    /// The key of `topic` under this hub (`None`: the hub's own stream).
    pub fn key(&self, topic: Option<&str>) -> Result<String, NetError> {
        let key = match topic {
            None => self.inner.name.clone(),
            Some(t) => format!("{}/{t}", self.inner.name),
        };
        match zenoh::key_expr::KeyExpr::try_from(key.clone()) {
            Ok(k) if !k.as_str().contains(['*', '$']) => Ok(key),
            Ok(_) => Err(NetError::BadTopic {
                hub: self.inner.name.clone(),
                topic: topic.unwrap_or_default().to_owned(),
                reason: "wildcards are not allowed".into(),
            }),
            Err(e) => Err(NetError::BadTopic {
                hub: self.inner.name.clone(),
                topic: topic.unwrap_or_default().to_owned(),
                reason: e.to_string().lines().next().unwrap_or_default().to_owned(),
            }),
        }
    }

    /// A publisher on `key` (see [`NetHub::key`]). `remote_only`: messages are not delivered to
    /// subscribers of this same hub object (Python hubs do not echo a handle's own messages).
    pub fn publisher(&self, key: &str, remote_only: bool) -> Result<NetPublisher, NetError> {
        let zerr = |what: &str, e: zenoh::Error| NetError::Zenoh {
            hub: self.inner.name.clone(),
            what: format!("{what} `{key}`"),
            reason: short(&e),
        };
        let publisher = self
            .inner
            .session
            .declare_publisher(key.to_owned())
            .congestion_control(CongestionControl::Block)
            .allowed_destination(if remote_only {
                Locality::Remote
            } else {
                Locality::Any
            })
            .wait()
            .map_err(|e| zerr("declaring a publisher on", e))?;
        let matched = Arc::new(AtomicBool::new(false));
        let flag = matched.clone();
        publisher
            .matching_listener()
            .callback(move |status| flag.store(status.matching(), Ordering::Release))
            .background()
            .wait()
            .map_err(|e| zerr("watching the subscribers of", e))?;
        if let Ok(status) = publisher.matching_status().wait() {
            matched.fetch_or(status.matching(), Ordering::AcqRel);
        }
        Ok(NetPublisher {
            publisher,
            matched,
            hub: self.inner.clone(),
        })
    }

    /// Subscribes to `key`; `deliver` gets each message of at most `max_message` bytes and says
    /// what became of it; a larger one is refused before it is copied, and counted as an error.
    /// `deliver` runs on a Zenoh receive thread, which every message of the session waits for:
    /// it must not wait (no sleep, no blocking lock held by a slow thread).
    pub fn subscribe<F>(
        &self,
        key: &str,
        remote_only: bool,
        max_message: usize,
        deliver: F,
    ) -> Result<NetSubscriber, NetError>
    where
        F: Fn(&Incoming<'_>) -> Delivery + Send + Sync + 'static,
    {
        let hub = self.inner.clone();
        let subscriber = self
            .inner
            .session
            .declare_subscriber(key.to_owned())
            .allowed_origin(if remote_only {
                Locality::Remote
            } else {
                Locality::Any
            })
            .callback(move |sample| {
                let len = sample.payload().len();
                if len > wire::max_payload(max_message) {
                    hub.error(too_large(sample.key_expr().as_str(), len, max_message));
                    return;
                }
                let payload = sample.payload().to_bytes();
                let Ok(wire::Frame {
                    type_name,
                    type_hash,
                    bytes: payload,
                }) = wire::parse(&payload)
                else {
                    hub.error(format!(
                        "a message on `{}` has no valid HORUS header (sent by a non-HORUS Zenoh publisher?); dropped",
                        sample.key_expr()
                    ));
                    return;
                };
                if payload.len() > max_message {
                    hub.error(too_large(sample.key_expr().as_str(), payload.len(), max_message));
                    return;
                }
                let msg = Incoming {
                    key: sample.key_expr().as_str(),
                    type_name,
                    type_hash,
                    bytes: payload,
                };
                match deliver(&msg) {
                    Delivery::Delivered => {
                        hub.counters.received.fetch_add(1, Ordering::Relaxed);
                        hub.counters
                            .bytes_received
                            .fetch_add(payload.len() as u64, Ordering::Relaxed);
                    }
                    Delivery::Queued | Delivery::Ignored => {}
                    Delivery::Dropped => {
                        hub.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Delivery::Rejected(why) => hub.error(why),
                }
            })
            .wait()
            .map_err(|e| NetError::Zenoh {
                hub: self.inner.name.clone(),
                what: format!("subscribing to `{key}`"),
                reason: short(&e),
            })?;
        Ok(NetSubscriber {
            _subscriber: subscriber,
        })
    }

    /// The connection state now.
    pub fn state(&self) -> ConnectionState {
        let peers = self.inner.peers_now();
        self.inner.observe(peers);
        ConnectionState {
            connected: peers > 0,
            peers,
            endpoint: self.inner.endpoint.clone(),
            role: self.inner.role,
            last_error: self
                .inner
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// The counters now.
    pub fn metrics(&self) -> Metrics {
        let c = &self.inner.counters;
        Metrics {
            messages_sent: c.sent.load(Ordering::Relaxed),
            messages_received: c.received.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Acquire),
        }
    }
}

impl Drop for NetHub {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        if let Some(m) = self.monitor.take() {
            m.thread().unpark();
            let _ = m.join();
        }
        let _ = self.inner.session.close().wait();
    }
}

/// The error of a message of `len` bytes on `key` whose subscriber takes `max` (header
/// included when the message could not be parsed yet: it is refused before it is copied).
fn too_large(key: &str, len: usize, max: usize) -> String {
    format!(
        "a message of {len} bytes on `{key}` is larger than the {max} bytes its subscriber takes \
         (`max_size`); dropped unread"
    )
}

/// Follows the peer count: logs connections and losses, and records a loss as the last error.
fn monitor(inner: &Inner) {
    while !inner.stop.load(Ordering::Acquire) {
        std::thread::park_timeout(MONITOR_PERIOD);
        if inner.stop.load(Ordering::Acquire) {
            break;
        }
        inner.observe(inner.peers_now());
    }
}

impl Inner {
    /// Records the peer count `now` (from the monitor, or from a state query that looked
    /// between two of its rounds, so a peer that came and went quickly is still reported).
    fn observe(&self, now: usize) {
        let before = self.peers.swap(now, Ordering::AcqRel);
        if now > before {
            tracing::info!(hub = self.name.as_str(), "peer connected ({now} connected)");
        } else if now < before {
            let msg = if now == 0 {
                match self.role {
                    Role::Connected => format!("lost the connection to {}; reconnecting", self.endpoint),
                    Role::Listening => {
                        format!("the last peer on {} went away; waiting for it", self.endpoint)
                    }
                }
            } else {
                format!("a peer went away ({now} still connected)")
            };
            tracing::warn!(hub = self.name.as_str(), "{msg}");
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
        }
    }
}

/// A received message, as a subscriber's callback sees it.
#[derive(Debug)]
pub struct Incoming<'a> {
    /// Its key.
    pub key: &'a str,
    /// Its type's name.
    pub type_name: &'a str,
    /// Its type's hash.
    pub type_hash: u64,
    /// The message.
    pub bytes: &'a [u8],
}

/// What a subscriber's callback did with a message.
#[derive(Debug)]
pub enum Delivery {
    /// Queued for its reader (counted as received).
    Delivered,
    /// Taken, and not yet delivered nor dropped: the subscriber reports which later, through a
    /// [`Tally`].
    Queued,
    /// No room: counted as dropped.
    Dropped,
    /// Refused (wrong type, undecodable): counted as an error, the reason becomes the last error.
    Rejected(String),
    /// Not this subscriber's to deliver (another one of the same key, which replaces it,
    /// delivers it): not counted.
    Ignored,
}

/// Counts what became of messages a subscriber's callback [`Delivery::Queued`], from another
/// thread, in the hub's counters.
#[derive(Clone)]
pub struct Tally {
    hub: Arc<Inner>,
}

impl std::fmt::Debug for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tally").field("hub", &self.hub.name).finish()
    }
}

impl Tally {
    /// A queued message of `len` bytes reached its reader.
    pub fn delivered(&self, len: usize) {
        self.hub.counters.received.fetch_add(1, Ordering::Relaxed);
        self.hub
            .counters
            .bytes_received
            .fetch_add(len as u64, Ordering::Relaxed);
    }

    /// `n` queued messages were lost (no room for them in time).
    pub fn dropped(&self, n: u64) {
        self.hub.counters.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// A queued message was refused: counted as an error, `why` becomes the last error.
    pub fn rejected(&self, why: String) {
        self.hub.error(why);
    }
}

/// A publisher on one key of a hub.
pub struct NetPublisher {
    publisher: zenoh::pubsub::Publisher<'static>,
    matched: Arc<AtomicBool>,
    hub: Arc<Inner>,
}

impl std::fmt::Debug for NetPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetPublisher")
            .field("key", &self.publisher.key_expr().as_str())
            .finish()
    }
}

impl NetPublisher {
    /// Publishes `bytes` as a message of type `ty`. Never fails the caller: a failure is
    /// counted and becomes the hub's last error. Returns whether it was handed to Zenoh.
    pub fn send(&self, ty: &WireType, bytes: &[u8]) -> bool {
        match self.publisher.put(ty.encode(bytes)).wait() {
            Ok(()) => {
                self.hub.counters.sent.fetch_add(1, Ordering::Relaxed);
                self.hub
                    .counters
                    .bytes_sent
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.hub.error(format!(
                    "sending on `{}` failed: {}",
                    self.publisher.key_expr(),
                    short(&e)
                ));
                false
            }
        }
    }

    /// Adds `n` messages lost before they could be sent (a bridge's overwritten backlog).
    pub fn count_dropped(&self, n: u64) {
        self.hub.counters.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// True while at least one subscriber (remote, or local unless remote-only) matches.
    pub fn matched(&self) -> bool {
        self.matched.load(Ordering::Acquire)
    }
}

/// A subscription; dropping it ends it.
pub struct NetSubscriber {
    _subscriber: zenoh::pubsub::Subscriber<()>,
}

impl std::fmt::Debug for NetSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetSubscriber")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn first_listens_second_connects_and_messages_cross_both_ways() {
        let addr = format!("127.0.0.1:{}", free_port());
        let a = NetHub::open("t_hub", &addr, 64).unwrap();
        let b = NetHub::open("t_hub", &addr, 64).unwrap();
        assert_eq!(a.state().role, Role::Listening);
        assert_eq!(b.state().role, Role::Connected);
        wait_for("the peers", || a.state().connected && b.state().connected);

        let ty = WireType::new("bytes", 7);
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let key = b.key(Some("seq")).unwrap();
        assert_eq!(key, "t_hub/seq");
        let _sub = b
            .subscribe(&key, false, 64, move |m| {
                if m.type_hash != 7 {
                    return Delivery::Rejected(format!("type {}", m.type_name));
                }
                tx.lock().unwrap().send(m.bytes.to_vec()).unwrap();
                Delivery::Delivered
            })
            .unwrap();
        let publisher = a.publisher(&a.key(Some("seq")).unwrap(), false).unwrap();
        wait_for("the subscriber to match", || publisher.matched());
        for i in 0u32..1000 {
            assert!(publisher.send(&ty, &i.to_le_bytes()));
        }
        assert!(publisher.send(&WireType::new("other", 8), b"x"));
        for i in 0u32..1000 {
            let got = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(got, i.to_le_bytes());
        }
        wait_for("the rejected message", || b.metrics().errors == 1);
        let m = b.metrics();
        assert_eq!((m.messages_received, m.bytes_received), (1000, 4000));
        assert!(b.state().last_error.unwrap().contains("type other"));
        assert_eq!(a.metrics().messages_sent, 1001);

        // The listener goes away: the connector notices, and reconnects to a new listener.
        drop(a);
        wait_for("the loss", || !b.state().connected);
        wait_for("the monitor", || {
            b.state().last_error.unwrap().contains("reconnecting")
        });
        let a2 = NetHub::open("t_hub", &addr, 64).unwrap();
        assert_eq!(a2.state().role, Role::Listening);
        wait_for("the reconnection", || b.state().connected && a2.state().connected);
    }

    #[test]
    fn a_connecting_session_listens_where_its_peers_can_reach_it() {
        assert_eq!(own_listener("127.0.0.1:7450"), "tcp/127.0.0.1:0");
        assert_eq!(own_listener("localhost:7450"), "tcp/localhost:0");
        assert_eq!(own_listener("[::1]:7450"), "tcp/[::1]:0");
        // Another machine's address: this machine cannot bind it.
        assert_eq!(own_listener("192.0.2.1:7450"), "tcp/0.0.0.0:0");
        assert_eq!(own_listener("robot.local:7450"), "tcp/0.0.0.0:0");
        assert_eq!(own_listener("[2001:db8::1]:7450"), "tcp/[::]:0");
    }

    #[test]
    fn bad_addresses_and_foreign_ports_are_clear_errors() {
        let e = NetHub::open("h", "nohost", 64).unwrap_err().to_string();
        assert!(e.contains("host:port") && e.contains("`h`"), "{e}");
        // A port held by something that is not a hub (a listener that never answers).
        let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = squatter.local_addr().unwrap().to_string();
        let t = Instant::now();
        let e = NetHub::open("h", &addr, 64).unwrap_err().to_string();
        assert!(
            e.contains(&addr) && e.contains("cannot listen") && e.contains("pick a free one"),
            "{e}"
        );
        assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
        eprintln!("{e} ({:?})", t.elapsed());
        let e = NetHub::open("bad*hub", "127.0.0.1:1", 64)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad*hub"), "{e}");
    }

    #[test]
    fn a_session_takes_messages_of_its_largest_topic() {
        let c = config(None, None, 1000).unwrap();
        let max = c.get_json("transport/link/rx/max_message_size").unwrap();
        assert_eq!(max, (1000 + wire::MAX_HEADER + ZENOH_SLACK).to_string());
        assert_eq!(session_max_message_size(usize::MAX), usize::MAX, "saturates");
    }

    #[test]
    fn an_oversize_message_from_a_raw_zenoh_publisher_is_refused_and_counted() {
        let addr = format!("127.0.0.1:{}", free_port());
        let hub = NetHub::open("t_big", &addr, 1024).unwrap();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let _sub = hub
            .subscribe("t_big/in", false, 1024, move |m| {
                tx.lock().unwrap().send(m.bytes.len()).unwrap();
                Delivery::Delivered
            })
            .unwrap();
        // A plain Zenoh client, not a hub: it sends whatever it likes.
        let raw = zenoh::open(config(None, Some(&format!("tcp/{addr}")), 1 << 20).unwrap())
            .wait()
            .unwrap();
        let publisher = raw
            .declare_publisher("t_big/in")
            .congestion_control(CongestionControl::Block)
            .wait()
            .unwrap();
        wait_for("the subscriber", || {
            publisher.matching_status().wait().unwrap().matching()
        });
        let ty = WireType::new("bytes", 7);
        let put = |len: usize| publisher.put(ty.encode(&vec![0xa5; len])).wait().unwrap();

        put(1024); // exactly the limit: delivered
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1024);
        put(1025); // a byte over: refused after its header is read
        put(4096); // over the limit and the longest header: refused unread
        wait_for("two errors", || hub.metrics().errors == 2);
        let last = hub.state().last_error.unwrap();
        assert!(
            last.contains("4110 bytes") && last.contains("1024 bytes"),
            "{last}"
        );
        // Larger than the session takes: Zenoh discards it before reassembling it (uncounted),
        // and the session goes on.
        put(256 * 1024);
        put(8);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 8);
        assert!(rx.try_recv().is_err(), "nothing else delivered");
        // (The callback counts a delivery after it returns.)
        wait_for("the counters", || hub.metrics().messages_received == 2);
        let m = hub.metrics();
        assert_eq!((m.messages_received, m.bytes_received, m.errors), (2, 1032, 2));
    }
}
