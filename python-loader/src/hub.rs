//! `horus.Hub` and `horus.Link`: topics a Python program uses directly, outside a scheduler's
//! connections. Local hubs are named shared-memory topics (`hub/<name>`), visible to every
//! process of the namespace; `Hub.global_hub(name)` is one hub per name per process (and the
//! same topic in every other process); a link is a single-producer topic
//! (`link/<target>/<topic>`) both ends name alike.
//!
//! Network hubs (`Hub.tcp`, a tcp hub of `Hub.from_config`) are Zenoh sessions
//! (`horus_host::net`): the hub's own stream is the key `<name>`, a link created from it the key
//! `<name>/<topic>`, the same keys a manifest's `topic = "<name>/<topic>"` uses, so Python and
//! Rust hosts exchange messages. A network hub does not hear its own messages (other hubs and
//! processes do). Python objects travel as on local topics; `bytes` travel as raw bytes (a Rust
//! `Vec<u8>` port reads them), typed messages as the Rust type's bytes.

use crate::topics::{Counters, Endpoint, Sizing};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::HashMap;
use std::sync::Mutex;

/// The seed's metrics dict.
pub fn metrics_dict(py: Python<'_>, c: Counters, dropped: u64) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("messages_sent", c.sent)?;
    d.set_item("messages_received", c.received)?;
    d.set_item("bytes_sent", c.bytes_sent)?;
    d.set_item("bytes_received", c.bytes_received)?;
    d.set_item("dropped", dropped)?;
    d.set_item("errors", c.errors)?;
    Ok(d)
}

/// How a hub or link carries messages; `get_connection_state()["mode"]` and `repr` show it as
/// [`Mode::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `Hub(name)`: a named shared-memory topic.
    Local,
    /// `Hub.global_hub(name)`: the same, one hub per name per process.
    Global,
    /// `Hub.tcp`: a network hub.
    #[cfg_attr(
        not(feature = "network"),
        expect(
            dead_code,
            reason = "without the network feature Hub.tcp raises before it opens a hub"
        )
    )]
    Tcp,
    /// `Link(topic, target)`: a single-producer topic.
    Link,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Local => "local",
            Mode::Global => "global",
            Mode::Tcp => "tcp",
            Mode::Link => "link",
        }
    }
}

/// A hub's or link's transport: a shared-memory topic, or a key of a network hub.
enum Chan {
    Shm(Channel),
    #[cfg(feature = "network")]
    Net(net::NetChannel),
}

impl Chan {
    fn send(&mut self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        match self {
            Chan::Shm(c) => c.send(data),
            #[cfg(feature = "network")]
            Chan::Net(c) => c.send(data),
        }
    }

    fn recv<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self {
            Chan::Shm(c) => c.recv(py),
            #[cfg(feature = "network")]
            Chan::Net(c) => c.recv(py),
        }
    }

    /// A writable array to fill and send (see `Hub.loan`): in the topic's next slot, or, on a
    /// network hub (no shared memory between machines), a new array that `send` copies.
    fn loan<'py>(
        &mut self,
        py: Python<'py>,
        shape: &Bound<'py, PyAny>,
        dtype: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Chan::Shm(c) => c.ep.loan_py(py, shape, dtype),
            #[cfg(feature = "network")]
            Chan::Net(_) => {
                let (shape, dtype) = crate::topics::loan_args(py, shape, dtype)?;
                py.import("numpy")?
                    .call_method1("empty", (pyo3::types::PyTuple::new(py, shape)?, dtype))
            }
        }
    }

    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        match self {
            Chan::Shm(c) => c.metrics(py),
            #[cfg(feature = "network")]
            Chan::Net(c) => c.metrics(py),
        }
    }

    fn state<'py>(&self, py: Python<'py>, mode: &str) -> PyResult<Bound<'py, PyDict>> {
        match self {
            Chan::Shm(c) => c.state(py, mode),
            #[cfg(feature = "network")]
            Chan::Net(c) => c.state(py, mode),
        }
    }

    fn close(&mut self) {
        match self {
            Chan::Shm(c) => c.ep.close(),
            #[cfg(feature = "network")]
            Chan::Net(c) => c.close(),
        }
    }
}

struct Channel {
    ep: Endpoint,
    scratch: Vec<u8>,
    buf: Vec<u8>,
}

impl Channel {
    fn open(topic: String, single_producer: bool, sizing: Sizing) -> PyResult<Chan> {
        let mut ep = Endpoint::new(topic, horus_host::shm::namespace(), single_producer).with_sizing(sizing);
        ep.subscribe_now()?;
        Ok(Chan::Shm(Channel {
            ep,
            scratch: Vec::new(),
            buf: Vec::new(),
        }))
    }

    fn send(&mut self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.ep.send(data, &mut self.scratch)
    }

    fn recv<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.ep.recv(py, &mut self.buf)
    }

    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        metrics_dict(py, self.ep.counters, self.ep.dropped())
    }

    fn state<'py>(&self, py: Python<'py>, mode: &str) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("connected", true)?;
        d.set_item("mode", mode)?;
        d.set_item("peers", self.ep.peers())?;
        d.set_item("endpoint", format!("shm:{}", self.ep.shm_name()))?;
        d.set_item("last_error", py.None())?;
        Ok(d)
    }
}

fn check_name(what: &str, name: &str) -> PyResult<()> {
    if name.is_empty() || name.contains('\0') {
        return Err(PyValueError::new_err(format!(
            "a {what} name cannot be empty (got {name:?})"
        )));
    }
    Ok(())
}

/// Detaches every global hub of this process (at interpreter exit: the registry is static,
/// so without this their topics would outlive the process in /dev/shm).
#[pyfunction]
pub fn _close_global_hubs(py: Python<'_>) {
    let hubs: Vec<Py<Hub>> = GLOBAL
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .map(|m| m.into_values().collect())
        .unwrap_or_default();
    for h in hubs {
        h.bind(py).get().close();
    }
}

/// A many-to-many topic: every handle on one name sees every message sent on it (its own too).
#[pyclass(module = "horus", name = "Hub", frozen)]
pub struct Hub {
    name: String,
    mode: Mode,
    chan: Mutex<Chan>,
    #[cfg(feature = "network")]
    net: Mutex<Option<std::sync::Arc<horus_host::net::NetHub>>>,
}

static GLOBAL: Mutex<Option<HashMap<String, Py<Hub>>>> = Mutex::new(None);

impl Hub {
    fn open(name: &str, mode: Mode, sizing: Sizing) -> PyResult<Hub> {
        check_name("hub", name)?;
        let topic = format!("hub/{name}");
        Ok(Hub {
            name: name.to_owned(),
            mode,
            chan: Mutex::new(Channel::open(topic, false, sizing)?),
            #[cfg(feature = "network")]
            net: Mutex::new(None),
        })
    }

    #[cfg(feature = "network")]
    fn open_tcp(py: Python<'_>, address: &str, name: &str, max_size: Option<u64>) -> PyResult<Hub> {
        check_name("hub", name)?;
        horus_host::manifest::hubs::check_hub_name(name).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let max_message = net::max_message(name, max_size)?;
        let hub = py
            .detach(|| horus_host::net::NetHub::open(name, address, max_message))
            .map_err(|e| net::error(&e))?;
        let hub = std::sync::Arc::new(hub);
        let chan = net::NetChannel::open(&hub, None)?;
        Ok(Hub {
            name: name.to_owned(),
            mode: Mode::Tcp,
            chan: Mutex::new(Chan::Net(chan)),
            net: Mutex::new(Some(hub)),
        })
    }

    #[cfg(not(feature = "network"))]
    fn open_tcp(_py: Python<'_>, address: &str, name: &str, _max_size: Option<u64>) -> PyResult<Hub> {
        check_name("hub", name)?;
        Err(tcp_unavailable(address, name))
    }

    fn chan(&self) -> std::sync::MutexGuard<'_, Chan> {
        self.chan.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(not(feature = "network"))]
fn tcp_unavailable(address: &str, name: &str) -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err(format!(
        "Hub.tcp({address:?}, {name:?}): this build of horus has no network support; rebuild the package \
         with its `network` feature (the default of `pip install` / `maturin develop` from python-loader/)"
    ))
}

#[pymethods]
impl Hub {
    /// A local hub named `name`; if this creates its topic, it takes messages of up to
    /// `max_size` bytes and holds `depth` of them (defaults: about 1 MiB of /dev/shm).
    #[new]
    #[pyo3(signature = (name, max_size = None, depth = None))]
    fn new(name: &str, max_size: Option<i64>, depth: Option<i64>) -> PyResult<Hub> {
        Hub::open(name, Mode::Local, Sizing::from_py(max_size, depth)?)
    }

    /// A network hub at `address` (`host:port`) for messages of at most `max_size` bytes
    /// (default: as a local topic's, 1 MiB).
    #[staticmethod]
    #[pyo3(signature = (address, name, *, max_size = None))]
    fn tcp(py: Python<'_>, address: &str, name: &str, max_size: Option<u64>) -> PyResult<Hub> {
        horus_host::manifest::hubs::check_address(address)
            .map_err(|e| PyValueError::new_err(format!("Hub.tcp: {e}")))?;
        Hub::open_tcp(py, address, name, max_size)
    }

    /// The hub named `name` of this process: every call with one name returns the same hub,
    /// and other processes on the machine reach the same topic.
    #[staticmethod]
    fn global_hub(py: Python<'_>, name: &str) -> PyResult<Py<Hub>> {
        let mut map = GLOBAL.lock().unwrap_or_else(|p| p.into_inner());
        let map = map.get_or_insert_default();
        if let Some(h) = map.get(name) {
            return Ok(h.clone_ref(py));
        }
        let hub = Py::new(py, Hub::open(name, Mode::Global, Sizing::default())?)?;
        map.insert(name.to_owned(), hub.clone_ref(py));
        Ok(hub)
    }

    /// Hub `name` as the TOML or YAML file at `path` describes it.
    #[staticmethod]
    fn from_config(py: Python<'_>, path: std::path::PathBuf, name: &str) -> PyResult<Py<Hub>> {
        let spec = horus_host::manifest::hubs::load(&path, name)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        match spec.mode {
            horus_host::manifest::hubs::HubMode::Local => {
                Py::new(py, Hub::open(name, Mode::Local, Sizing::default())?)
            }
            horus_host::manifest::hubs::HubMode::Tcp => {
                let address = spec.address.as_deref().unwrap_or_default();
                Py::new(py, Hub::open_tcp(py, address, name, None)?)
            }
        }
    }

    /// The hub's name.
    #[getter]
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Publishes `data`.
    fn send(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.chan().send(data)
    }

    /// The next message, or None.
    fn recv<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.chan().recv(py)
    }

    /// A writable numpy array of `shape` and `dtype` that lives in the topic's shared memory:
    /// fill it, then `send` it to publish it with no copy.
    #[pyo3(signature = (shape, dtype = None))]
    fn loan<'py>(
        &self,
        py: Python<'py>,
        shape: &Bound<'py, PyAny>,
        dtype: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.chan().loan(py, shape, dtype)
    }

    /// A point-to-point link for `topic` towards `target`.
    fn create_link(&self, topic: &str, target: &str) -> PyResult<Link> {
        #[cfg(feature = "network")]
        if self.mode == Mode::Tcp {
            let net = self.net.lock().unwrap_or_else(|p| p.into_inner());
            let Some(hub) = net.as_ref() else {
                return Err(PyValueError::new_err(format!("hub `{}` is closed", self.name)));
            };
            check_name("topic", topic)?;
            check_name("target", target)?;
            return Ok(Link {
                topic: topic.to_owned(),
                target: target.to_owned(),
                mode: Mode::Tcp,
                chan: Mutex::new(Chan::Net(net::NetChannel::open(hub, Some(topic))?)),
            });
        }
        Link::new(topic, target, None, None)
    }

    /// messages_sent, messages_received, bytes_sent, bytes_received, dropped, errors.
    fn get_metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.chan().metrics(py)
    }

    /// connected, mode, peers, endpoint, last_error.
    fn get_connection_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.chan().state(py, self.mode.as_str())
    }

    /// Detaches from the topic (the last endpoint removes it); the hub unusable afterwards.
    fn close(&self) {
        self.chan().close();
        // A network hub's session ends with its last open handle (the hub or one of its links).
        #[cfg(feature = "network")]
        self.net.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn __repr__(&self) -> String {
        format!("Hub({:?}, mode={:?})", self.name, self.mode.as_str())
    }
}

/// A point-to-point topic: one producer, one consumer.
#[pyclass(module = "horus", name = "Link", frozen)]
pub struct Link {
    topic: String,
    target: String,
    mode: Mode,
    chan: Mutex<Chan>,
}

impl Link {
    fn chan(&self) -> std::sync::MutexGuard<'_, Chan> {
        self.chan.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl Link {
    /// The link for `topic` towards `target` (both ends name it alike).
    /// `max_size` and `depth` size its topic if this creates it, as for a hub.
    #[new]
    #[pyo3(signature = (topic, target = "default", max_size = None, depth = None))]
    fn new(topic: &str, target: &str, max_size: Option<i64>, depth: Option<i64>) -> PyResult<Link> {
        check_name("topic", topic)?;
        check_name("target", target)?;
        let sizing = Sizing::from_py(max_size, depth)?;
        Ok(Link {
            topic: topic.to_owned(),
            target: target.to_owned(),
            mode: Mode::Link,
            chan: Mutex::new(Channel::open(format!("link/{target}/{topic}"), true, sizing)?),
        })
    }

    /// The topic.
    #[getter]
    fn topic(&self) -> String {
        self.topic.clone()
    }

    /// The target hub's name.
    #[getter]
    fn target(&self) -> String {
        self.target.clone()
    }

    /// Sends `data`.
    fn send(&self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        self.chan().send(data)
    }

    /// The next message, or None.
    fn recv<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.chan().recv(py)
    }

    /// Same as Hub.loan.
    #[pyo3(signature = (shape, dtype = None))]
    fn loan<'py>(
        &self,
        py: Python<'py>,
        shape: &Bound<'py, PyAny>,
        dtype: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.chan().loan(py, shape, dtype)
    }

    /// Same as Hub.get_metrics.
    fn get_metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.chan().metrics(py)
    }

    /// Same as Hub.get_connection_state.
    fn get_connection_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.chan().state(py, self.mode.as_str())
    }

    /// Detaches from the topic.
    fn close(&self) {
        self.chan().close();
    }

    fn __repr__(&self) -> String {
        format!("Link({:?}, {:?})", self.topic, self.target)
    }
}

#[cfg(feature = "network")]
mod net {
    //! The network side of hubs and links: one key of a `horus_host::net::NetHub`, with a
    //! bounded queue of received messages (the oldest is dropped, and counted, when a reader
    //! falls [`QUEUE_DEPTH`] messages or [`QUEUE_BYTES`] behind).
    //!
    //! A hub takes messages of at most its `max_size` ([`max_message`]): its session refuses
    //! larger ones, and `send` raises for them. The receive queue is filled by Zenoh's callback,
    //! which never waits: it takes the queue's lock only to push or drop.

    use crate::topics::{object_hash, OBJECT_TYPE};
    use crate::{codec, msgs};
    use horus_host::net::{Delivery, NetError, NetHub, NetPublisher, NetSubscriber, Role, WireType};
    use horus_plugin_api::Message;
    use pyo3::exceptions::{PyConnectionError, PyTypeError, PyValueError};
    use pyo3::prelude::*;
    use pyo3::types::{PyBytes, PyDict};
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// Received messages a hub or link keeps for its reader.
    pub const QUEUE_DEPTH: usize = 8192;
    /// Bytes of received messages a hub or link keeps for its reader (or one message, if the
    /// hub's `max_size` is larger).
    pub const QUEUE_BYTES: usize = 64 * 1024 * 1024;

    /// The default largest message of a tcp hub. Larger than a local topic's default slot
    /// ([`crate::topics::OBJECT_SLOT`]), which commits shared memory per slot; a network hub
    /// only bounds what a peer may make it copy.
    pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;

    /// The largest message of a tcp hub: `max_size`, by default [`DEFAULT_MAX_MESSAGE`], at
    /// most the manifest's `max_size` bound.
    pub fn max_message(hub: &str, max_size: Option<u64>) -> PyResult<usize> {
        let max = horus_host::manifest::MAX_MAX_SIZE;
        match max_size {
            None => Ok(DEFAULT_MAX_MESSAGE),
            Some(n) if (1..=u64::from(max)).contains(&n) => Ok(n as usize),
            Some(n) => Err(PyValueError::new_err(format!(
                "Hub.tcp(…, {hub:?}): max_size must be from 1 to {max} bytes (got {n})"
            ))),
        }
    }

    /// A Python exception for a hub that cannot be opened.
    pub fn error(e: &NetError) -> PyErr {
        match e {
            NetError::BadAddress { .. } | NetError::BadTopic { .. } => PyValueError::new_err(e.to_string()),
            _ => PyConnectionError::new_err(e.to_string()),
        }
    }

    /// Received messages (type hash, bytes) and their total size.
    #[derive(Default)]
    struct Inbox {
        items: VecDeque<(u64, Vec<u8>)>,
        bytes: usize,
    }

    type Queue = Mutex<Inbox>;

    pub struct NetChannel {
        hub: Option<Arc<NetHub>>,
        key: String,
        endpoint: String,
        role: Role,
        publisher: Option<NetPublisher>,
        subscriber: Option<NetSubscriber>,
        queue: Arc<Queue>,
        dropped: Arc<AtomicU64>,
        object: WireType,
        bytes: WireType,
        max_message: usize,
        /// Wire types of the typed messages sent so far (a handful at most).
        typed: Vec<WireType>,
        scratch: Vec<u8>,
        sent: u64,
        received: u64,
        bytes_sent: u64,
        bytes_received: u64,
        errors: u64,
    }

    impl NetChannel {
        /// The hub's own stream (`topic` None) or one of its topics.
        pub fn open(hub: &Arc<NetHub>, topic: Option<&str>) -> PyResult<NetChannel> {
            let key = hub.key(topic).map_err(|e| error(&e))?;
            let queue: Arc<Queue> = Arc::default();
            let dropped = Arc::new(AtomicU64::new(0));
            let (q, d) = (queue.clone(), dropped.clone());
            let max_bytes = QUEUE_BYTES.max(hub.max_message());
            let subscriber = hub
                .subscribe(&key, true, hub.max_message(), move |m| {
                    let mut q = q.lock().unwrap_or_else(|p| p.into_inner());
                    // The oldest make room (counted), by count and by bytes.
                    while q.items.len() >= QUEUE_DEPTH
                        || (!q.items.is_empty() && q.bytes + m.bytes.len() > max_bytes)
                    {
                        let (_, old) = q.items.pop_front().expect("not empty");
                        q.bytes -= old.len();
                        d.fetch_add(1, Ordering::Relaxed);
                    }
                    q.bytes += m.bytes.len();
                    q.items.push_back((m.type_hash, m.bytes.to_vec()));
                    Delivery::Delivered
                })
                .map_err(|e| error(&e))?;
            let publisher = hub.publisher(&key, true).map_err(|e| error(&e))?;
            Ok(NetChannel {
                hub: Some(hub.clone()),
                endpoint: hub.state().endpoint,
                role: hub.state().role,
                key,
                publisher: Some(publisher),
                subscriber: Some(subscriber),
                queue,
                dropped,
                object: WireType::new(OBJECT_TYPE, object_hash()),
                bytes: WireType::new(<Vec<u8> as Message>::TYPE_NAME, <Vec<u8> as Message>::TYPE_HASH),
                max_message: hub.max_message(),
                typed: Vec::new(),
                scratch: Vec::new(),
                sent: 0,
                received: 0,
                bytes_sent: 0,
                bytes_received: 0,
                errors: 0,
            })
        }

        fn closed(&self) -> PyErr {
            PyValueError::new_err(format!("network hub key `{}` is closed", self.key))
        }

        /// Refuses a message its peers' sessions would drop: larger than the hub's `max_size`.
        fn check_size(&mut self, len: usize) -> PyResult<()> {
            if len <= self.max_message {
                return Ok(());
            }
            self.errors += 1;
            Err(PyValueError::new_err(format!(
                "a message of {len} bytes on `{}` is larger than the hub's max_size ({} bytes); \
                 open the hub with a larger Hub.tcp(…, max_size=…) on every side",
                self.key, self.max_message
            )))
        }

        pub fn send(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
            if self.publisher.is_none() {
                return Err(self.closed());
            }
            self.scratch.clear();
            // A failed send does not raise (the peer may be away); the hub counts it as an
            // error and keeps it as its last error.
            let (ok, len) = if let Ok(b) = obj.cast::<PyBytes>() {
                self.check_size(b.as_bytes().len())?;
                let publisher = self.publisher.as_ref().expect("checked above");
                (publisher.send(&self.bytes, b.as_bytes()), b.as_bytes().len())
            } else if let Some(t) = msgs::encode(obj, &mut self.scratch) {
                self.check_size(self.scratch.len())?;
                let publisher = self.publisher.as_ref().expect("checked above");
                let ty = match self.typed.iter().position(|w| w.hash() == t.hash) {
                    Some(i) => &self.typed[i],
                    None => {
                        self.typed.push(WireType::new(t.name, t.hash));
                        self.typed.last().expect("just pushed")
                    }
                };
                (publisher.send(ty, &self.scratch), self.scratch.len())
            } else {
                if let Err(e) = codec::encode(obj, &mut self.scratch) {
                    self.errors += 1;
                    return Err(e);
                }
                self.check_size(self.scratch.len())?;
                let publisher = self.publisher.as_ref().expect("checked above");
                (publisher.send(&self.object, &self.scratch), self.scratch.len())
            };
            if ok {
                self.sent += 1;
                self.bytes_sent += len as u64;
            }
            Ok(())
        }

        pub fn recv<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
            if self.subscriber.is_none() {
                return Err(self.closed());
            }
            let next = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                let next = q.items.pop_front();
                q.bytes -= next.as_ref().map_or(0, |(_, b)| b.len());
                next
            };
            let Some((hash, bytes)) = next else {
                return Ok(None);
            };
            self.received += 1;
            self.bytes_received += bytes.len() as u64;
            let decoded = if hash == object_hash() {
                codec::decode(py, &bytes)
            } else if let Some(t) = msgs::by_hash(hash) {
                (t.decode)(py, &bytes)
            } else {
                // Raw bytes, or a Rust type Python has no class for: its bytes.
                Ok(PyBytes::new(py, &bytes).into_any())
            };
            if decoded.is_err() {
                self.errors += 1;
            }
            decoded.map(Some).map_err(|e| {
                PyTypeError::new_err(format!("a message on `{}` could not be decoded: {e}", self.key))
            })
        }

        pub fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
            let d = PyDict::new(py);
            d.set_item("messages_sent", self.sent)?;
            d.set_item("messages_received", self.received)?;
            d.set_item("bytes_sent", self.bytes_sent)?;
            d.set_item("bytes_received", self.bytes_received)?;
            d.set_item("dropped", self.dropped.load(Ordering::Relaxed))?;
            let session_errors = self.hub.as_ref().map_or(0, |h| h.metrics().errors);
            d.set_item("errors", self.errors + session_errors)?;
            Ok(d)
        }

        pub fn state<'py>(&self, py: Python<'py>, mode: &str) -> PyResult<Bound<'py, PyDict>> {
            let s = self.hub.as_ref().map(|h| h.state());
            let d = PyDict::new(py);
            d.set_item("connected", s.as_ref().is_some_and(|s| s.connected))?;
            d.set_item("mode", mode)?;
            d.set_item("peers", s.as_ref().map_or(0, |s| s.peers))?;
            d.set_item("endpoint", &self.endpoint)?;
            d.set_item("role", self.role.as_str())?;
            d.set_item("key", &self.key)?;
            d.set_item(
                "matched",
                self.publisher.as_ref().is_some_and(NetPublisher::matched),
            )?;
            d.set_item("last_error", s.and_then(|s| s.last_error))?;
            Ok(d)
        }

        pub fn close(&mut self) {
            self.publisher = None;
            self.subscriber = None;
            self.hub = None;
        }
    }
}
