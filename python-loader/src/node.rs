//! Python nodes behind the node ABI: [`PythonNode`] is the loader's node type (`PythonNode`),
//! and [`NodeIo`] is a Python node's topic endpoints (`Node.send` / `Node.get`).
//!
//! A `PythonNode` wraps one object of a `horus.Node` subclass. It gets it in one of two ways,
//! from its config:
//! - `object = <id>`: an object the `horus` package registered (a Python script's
//!   `Scheduler.add(node)`); a restart re-initialises the same object;
//! - `python = "<file>"`, `class = "<Name>"` (and `program`, the interpreter to start): the
//!   host's manifest; the loader starts the interpreter if needed, imports the file once and
//!   builds the class (again on a restart).

use crate::{embed, topics::Endpoint};
use horus_plugin_api::{Context, Node, NodeError, NodeResult};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule, PyString};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Node objects registered by the package, by id (see [`register`]).
static OBJECTS: Mutex<Option<HashMap<u64, Py<PyAny>>>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Registers `obj` for a `PythonNode` with config `object = <id>`; returns the id.
pub fn register(obj: Py<PyAny>) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    OBJECTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_default()
        .insert(id, obj);
    id
}

/// Forgets a registered object.
pub fn unregister(id: u64) -> Option<Py<PyAny>> {
    OBJECTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_mut()
        .and_then(|m| m.remove(&id))
}

fn registered(py: Python<'_>, id: u64) -> Option<Py<PyAny>> {
    OBJECTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&id).map(|o| o.clone_ref(py)))
}

/// `Type: message` and the traceback of a Python exception, for the log and the stats.
pub fn describe(py: Python<'_>, err: &PyErr) -> String {
    let formatted = (|| -> PyResult<String> {
        let tb = py.import("traceback")?;
        let lines = tb.call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )?;
        let text: String = PyString::new(py, "").call_method1("join", (lines,))?.extract()?;
        Ok(text)
    })();
    let head = err.to_string();
    match formatted {
        // The last line repeats the head; the traceback before it says where.
        Ok(tb) => format!("{head}\n{}", tb.trim_end()),
        Err(_) => head,
    }
}

fn node_error(py: Python<'_>, err: &PyErr) -> NodeError {
    NodeError::new(describe(py, err))
}

/// The loader's node type: one Python node object.
pub struct PythonNode {
    obj: Py<PyAny>,
    /// `tick` is `async def`: its coroutines run on the runtime's asyncio loop.
    is_async: bool,
    /// The running coroutine's future, if any.
    pending: Option<Py<PyAny>>,
}

/// Modules imported from manifests' `python =` files, by path: imported once per process.
static MODULES: Mutex<Option<HashMap<String, Py<PyModule>>>> = Mutex::new(None);

fn import_file(py: Python<'_>, path: &str, node: &str) -> PyResult<Py<PyModule>> {
    if let Some(m) = MODULES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(path))
    {
        return Ok(m.clone_ref(py));
    }
    let util = py.import("importlib.util")?;
    let stem: String = std::path::Path::new(path)
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .chars()
                .map(|c| if c.is_alphanumeric() { c } else { '_' })
                .collect()
        })
        .unwrap_or_default();
    let name = format!(
        "horus_node_{stem}_{}",
        node.replace(|c: char| !c.is_alphanumeric(), "_")
    );
    let spec = util.call_method1("spec_from_file_location", (&name, path))?;
    if spec.is_none() {
        return Err(pyo3::exceptions::PyImportError::new_err(format!(
            "{path} is not a Python source file"
        )));
    }
    let module = util.call_method1("module_from_spec", (&spec,))?;
    py.import("sys")?.getattr("modules")?.set_item(&name, &module)?;
    // The file's directory is importable, as it is for `python file.py`.
    if let Some(dir) = std::path::Path::new(path).parent() {
        let sys_path = py.import("sys")?.getattr("path")?;
        let dir = dir.to_string_lossy().into_owned();
        if !sys_path.contains(&dir)? {
            sys_path.call_method1("insert", (0, dir))?;
        }
    }
    spec.getattr("loader")?.call_method1("exec_module", (&module,))?;
    let module: Py<PyModule> = module.cast_into::<PyModule>()?.unbind();
    MODULES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_default()
        .insert(path.to_owned(), module.clone_ref(py));
    Ok(module)
}

fn build_from_file(py: Python<'_>, ctx: &Context<'_>, path: &str) -> Result<Py<PyAny>, NodeError> {
    let class = ctx
        .config_str("class")
        .map_err(|e| NodeError::new(e.to_string()))?
        .ok_or_else(|| {
            NodeError::new(format!(
                "`python = \"{path}\"` needs `class = \"<the horus.Node subclass>\"`"
            ))
        })?;
    let module = import_file(py, path, ctx.name()).map_err(|e| node_error(py, &e))?;
    let cls = module.bind(py).getattr(class).map_err(|_| {
        NodeError::new(format!(
            "{path} defines no class `{class}` (set `class` to a horus.Node subclass in it)"
        ))
    })?;
    let horus_node = py
        .import("horus")
        .and_then(|h| h.getattr("Node"))
        .map_err(|e| node_error(py, &e))?;
    let obj = cls.call0().map_err(|e| node_error(py, &e))?;
    if !obj.is_instance(&horus_node).unwrap_or(false) {
        return Err(NodeError::new(format!(
            "`{class}` in {path} is not a horus.Node subclass (write `class {class}(horus.Node)`)"
        )));
    }
    obj.call_method1(intern!(py, "_horus_bind"), (ctx.name(),))
        .map_err(|e| node_error(py, &e))?;
    Ok(obj.unbind())
}

impl PythonNode {
    fn call_hook(&self, py: Python<'_>, hook: &Bound<'_, PyString>) -> NodeResult {
        let obj = self.obj.bind(py);
        if !obj.hasattr(hook).unwrap_or(false) {
            return Ok(());
        }
        obj.call_method0(hook).map_err(|e| node_error(py, &e))?;
        Ok(())
    }

    /// `async def tick`: one coroutine at a time on the runtime's loop; a tick while the last
    /// one still runs does nothing; a finished one's exception is this tick's failure.
    fn tick_async(&mut self, py: Python<'_>) -> NodeResult {
        if let Some(fut) = &self.pending {
            let fut = fut.bind(py);
            if !fut
                .call_method0(intern!(py, "done"))
                .and_then(|d| d.is_truthy())
                .unwrap_or(true)
            {
                return Ok(());
            }
            let fut = self.pending.take().expect("checked");
            fut.bind(py)
                .call_method0(intern!(py, "result"))
                .map_err(|e| node_error(py, &e))?;
        }
        let coro = self
            .obj
            .bind(py)
            .call_method0(intern!(py, "tick"))
            .map_err(|e| node_error(py, &e))?;
        if coro.is_none() {
            return Ok(());
        }
        let fut = py
            .import("horus._runtime")
            .and_then(|rt| rt.call_method1("submit", (coro,)))
            .map_err(|e| node_error(py, &e))?;
        self.pending = Some(fut.unbind());
        Ok(())
    }
}

impl Node for PythonNode {
    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        let object = ctx
            .config_i64("object")
            .map_err(|e| NodeError::new(e.to_string()))?;
        let file = ctx
            .config_str("python")
            .map_err(|e| NodeError::new(e.to_string()))?;
        if object.is_none() {
            let program = ctx
                .config_str("program")
                .map_err(|e| NodeError::new(e.to_string()))?;
            embed::ensure_interpreter(program).map_err(|e| NodeError::new(e.to_string()))?;
        }
        embed::pin_thread();
        Python::attach(|py| {
            let obj = match (object, file) {
                (Some(id), _) => registered(py, id as u64)
                    .ok_or_else(|| NodeError::new(format!("no registered Python node object #{id}")))?,
                (None, Some(path)) => build_from_file(py, ctx, path)?,
                (None, None) => {
                    return Err(NodeError::new(
                        "a Python node needs `python = \"<file.py>\"` and `class = \"<Name>\"`",
                    ))
                }
            };
            let is_async = py
                .import("inspect")
                .and_then(|i| i.call_method1("iscoroutinefunction", (obj.bind(py).getattr("tick")?,)))
                .and_then(|r| r.is_truthy())
                .unwrap_or(false);
            Ok(PythonNode {
                obj,
                is_async,
                pending: None,
            })
        })
    }

    fn init(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        embed::pin_thread();
        Python::attach(|py| self.call_hook(py, intern!(py, "init")))
    }

    fn tick(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        embed::pin_thread();
        Python::attach(|py| {
            if self.is_async {
                return self.tick_async(py);
            }
            match self.obj.bind(py).call_method0(intern!(py, "tick")) {
                Ok(_) => Ok(()),
                Err(e) => Err(node_error(py, &e)),
            }
        })
    }

    fn shutdown(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        embed::pin_thread();
        Python::attach(|py| {
            if let Some(fut) = self.pending.take() {
                let _ = fut.bind(py).call_method0("cancel");
            }
            self.call_hook(py, intern!(py, "shutdown"))
        })
    }

    fn save_state(&self) -> Result<Vec<u8>, NodeError> {
        embed::pin_thread();
        Python::attach(|py| {
            let obj = self.obj.bind(py);
            if !obj.hasattr("save_state").unwrap_or(false) {
                return Ok(Vec::new());
            }
            let state = obj.call_method0("save_state").map_err(|e| node_error(py, &e))?;
            let mut out = Vec::new();
            crate::codec::encode(&state, &mut out).map_err(|e| node_error(py, &e))?;
            Ok(out)
        })
    }

    fn restore_state(&mut self, state: &[u8]) -> NodeResult {
        if state.is_empty() {
            return Ok(());
        }
        embed::pin_thread();
        Python::attach(|py| {
            let obj = self.obj.bind(py);
            if !obj.hasattr("restore_state").unwrap_or(false) {
                return Ok(());
            }
            let value = crate::codec::decode(py, state).map_err(|e| node_error(py, &e))?;
            obj.call_method1("restore_state", (value,))
                .map_err(|e| node_error(py, &e))?;
            Ok(())
        })
    }
}

impl Drop for PythonNode {
    fn drop(&mut self) {
        embed::pin_thread();
        Python::attach(|py| {
            // The node's topic endpoints detach with the run (the last one removes a segment);
            // they re-attach on the next send or get.
            if let Ok(io) = self.obj.bind(py).getattr(intern!(py, "_horus_io")) {
                let _ = io.call_method0(intern!(py, "close"));
            }
        });
    }
}

struct IoState {
    ns: String,
    remap: HashMap<String, String>,
    endpoints: HashMap<String, Endpoint>,
    scratch: Vec<u8>,
    buf: Vec<u8>,
}

impl IoState {
    fn endpoint(&mut self, topic: &str) -> &mut Endpoint {
        if !self.endpoints.contains_key(topic) {
            let resolved = self.remap.get(topic).cloned().unwrap_or_else(|| topic.to_owned());
            let ep = Endpoint::new(resolved, self.ns.clone(), false);
            self.endpoints.insert(topic.to_owned(), ep);
        }
        self.endpoints.get_mut(topic).expect("inserted")
    }
}

/// A Python node's topic endpoints, by the names the node uses (`Node.send(topic, data)`,
/// `Node.get(topic)`). `Scheduler.connect` maps a name to a connection's topic; any other name
/// is a named topic, shared with every process on the machine.
#[pyclass(module = "horus._horus", frozen)]
pub struct NodeIo {
    state: Mutex<IoState>,
}

fn check_topic(topic: &str) -> PyResult<()> {
    if topic.is_empty() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "a topic name cannot be empty",
        ));
    }
    Ok(())
}

#[pymethods]
impl NodeIo {
    #[new]
    fn new() -> NodeIo {
        NodeIo {
            state: Mutex::new(IoState {
                ns: horus_host::shm::namespace(),
                remap: HashMap::new(),
                endpoints: HashMap::new(),
                scratch: Vec::new(),
                buf: Vec::new(),
            }),
        }
    }

    /// Publishes `data` on `topic`.
    fn send(&self, topic: &str, data: &Bound<'_, PyAny>) -> PyResult<()> {
        check_topic(topic)?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *st;
        let mut scratch = std::mem::take(&mut st.scratch);
        let result = st.endpoint(topic).send(data, &mut scratch);
        st.scratch = scratch;
        result
    }

    /// The oldest unread message on `topic`, or None.
    fn get<'py>(&self, py: Python<'py>, topic: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        check_topic(topic)?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *st;
        let mut buf = std::mem::take(&mut st.buf);
        let result = st.endpoint(topic).recv(py, &mut buf);
        st.buf = buf;
        result
    }

    /// True if a message is waiting on `topic`.
    fn has_msg(&self, topic: &str) -> PyResult<bool> {
        check_topic(topic)?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Ok(st.endpoint(topic).pending()? > 0)
    }

    /// Maps the node's name `port` to the topic `topic` (a connection).
    fn remap(&self, port: &str, topic: &str) -> PyResult<()> {
        check_topic(port)?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.remap.insert(port.to_owned(), topic.to_owned());
        st.endpoints.remove(port);
        Ok(())
    }

    /// Per-topic counters: {name: {messages_sent, messages_received, bytes_sent,
    /// bytes_received, dropped, errors}}.
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let out = PyDict::new(py);
        for (name, ep) in &st.endpoints {
            out.set_item(name, crate::hub::metrics_dict(py, ep.counters, ep.dropped())?)?;
        }
        Ok(out)
    }

    /// Detaches every endpoint (they re-attach on the next use).
    fn close(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for ep in st.endpoints.values_mut() {
            ep.close();
        }
        st.endpoints.clear();
    }
}
