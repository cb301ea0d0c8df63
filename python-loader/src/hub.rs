//! `horus.Hub` and `horus.Link`: topics a Python program uses directly, outside a scheduler's
//! connections. Local hubs are named shared-memory topics (`hub/<name>`), visible to every
//! process of the namespace; `Hub.global_hub(name)` is one hub per name per process (and the
//! same topic in every other process); a link is a single-producer topic
//! (`link/<target>/<topic>`) both ends name alike.

use crate::topics::{Counters, Endpoint};
use pyo3::exceptions::{PyNotImplementedError, PyValueError};
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

struct Channel {
    ep: Endpoint,
    scratch: Vec<u8>,
    buf: Vec<u8>,
}

impl Channel {
    fn open(topic: String, single_producer: bool) -> PyResult<Channel> {
        let mut ep = Endpoint::new(topic, horus_host::shm::namespace(), single_producer);
        ep.subscribe_now()?;
        Ok(Channel {
            ep,
            scratch: Vec::new(),
            buf: Vec::new(),
        })
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
    mode: &'static str,
    chan: Mutex<Channel>,
}

static GLOBAL: Mutex<Option<HashMap<String, Py<Hub>>>> = Mutex::new(None);

impl Hub {
    fn open(name: &str, mode: &'static str) -> PyResult<Hub> {
        check_name("hub", name)?;
        let topic = format!("hub/{name}");
        Ok(Hub {
            name: name.to_owned(),
            mode,
            chan: Mutex::new(Channel::open(topic, false)?),
        })
    }

    fn chan(&self) -> std::sync::MutexGuard<'_, Channel> {
        self.chan.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn tcp_unavailable(address: &str, name: &str) -> PyErr {
    PyNotImplementedError::new_err(format!(
        "network hubs are not available in this build of horus (Hub.tcp({address:?}, {name:?})): they arrive \
         with Zenoh support; use a local hub (horus.Hub({name:?})) or a global hub on one machine"
    ))
}

#[pymethods]
impl Hub {
    /// A local hub named `name`.
    #[new]
    fn new(name: &str) -> PyResult<Hub> {
        Hub::open(name, "local")
    }

    /// A network hub at `address` (`host:port`).
    #[staticmethod]
    fn tcp(address: &str, name: &str) -> PyResult<Hub> {
        horus_host::manifest::hubs::check_address(address).map_err(PyValueError::new_err)?;
        check_name("hub", name)?;
        Err(tcp_unavailable(address, name))
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
        let hub = Py::new(py, Hub::open(name, "global")?)?;
        map.insert(name.to_owned(), hub.clone_ref(py));
        Ok(hub)
    }

    /// Hub `name` as the TOML or YAML file at `path` describes it.
    #[staticmethod]
    fn from_config(py: Python<'_>, path: std::path::PathBuf, name: &str) -> PyResult<Py<Hub>> {
        let spec = horus_host::manifest::hubs::load(&path, name).map_err(PyValueError::new_err)?;
        match spec.mode {
            horus_host::manifest::hubs::HubMode::Local => Py::new(py, Hub::open(name, "local")?),
            horus_host::manifest::hubs::HubMode::Tcp => {
                Err(tcp_unavailable(spec.address.as_deref().unwrap_or_default(), name))
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

    /// A point-to-point link for `topic` towards `target`.
    fn create_link(&self, topic: &str, target: &str) -> PyResult<Link> {
        Link::new(topic, target)
    }

    /// messages_sent, messages_received, bytes_sent, bytes_received, dropped, errors.
    fn get_metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.chan().metrics(py)
    }

    /// connected, mode, peers, endpoint, last_error.
    fn get_connection_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.chan().state(py, self.mode)
    }

    /// Detaches from the topic (the last endpoint removes it); the hub unusable afterwards.
    fn close(&self) {
        self.chan().ep.close();
    }

    fn __repr__(&self) -> String {
        format!("Hub({:?}, mode={:?})", self.name, self.mode)
    }
}

/// A point-to-point topic: one producer, one consumer.
#[pyclass(module = "horus", name = "Link", frozen)]
pub struct Link {
    topic: String,
    target: String,
    chan: Mutex<Channel>,
}

impl Link {
    fn chan(&self) -> std::sync::MutexGuard<'_, Channel> {
        self.chan.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl Link {
    /// The link for `topic` towards `target` (both ends name it alike).
    #[new]
    #[pyo3(signature = (topic, target = "default"))]
    fn new(topic: &str, target: &str) -> PyResult<Link> {
        check_name("topic", topic)?;
        check_name("target", target)?;
        Ok(Link {
            topic: topic.to_owned(),
            target: target.to_owned(),
            chan: Mutex::new(Channel::open(format!("link/{target}/{topic}"), true)?),
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

    /// Same as Hub.get_metrics.
    fn get_metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.chan().metrics(py)
    }

    /// Same as Hub.get_connection_state.
    fn get_connection_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.chan().state(py, "link")
    }

    /// Detaches from the topic.
    fn close(&self) {
        self.chan().ep.close();
    }

    fn __repr__(&self) -> String {
        format!("Link({:?}, {:?})", self.topic, self.target)
    }
}
