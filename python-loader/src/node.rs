//! Python nodes behind the node ABI: [`PythonNode`] is the loader's node type (`PythonNode`),
//! and [`NodeIo`] is a Python node's topic endpoints (`Node.send` / `Node.get`).
//!
//! A `PythonNode` wraps one object of a `horus.Node` subclass. The host says which through the
//! loader's create entry ([`PythonNode::create_from`] with a [`PythonSource`]), never through
//! the node's `config`, which stays the user's table:
//! - [`PythonSource::Object`]: an object the `horus` package registered (a Python script's
//!   `Scheduler.add(node)`); a restart re-initialises the same object;
//! - [`PythonSource::File`]: a manifest's `python =` and `class =`; the loader starts the
//!   interpreter (as the environment's `python`) if needed, imports the file once and builds
//!   the class (again on a restart).
//!
//! Before `init` the runtime sets the object's `config` to a dict: the manifest node's `config`
//! table, or what `Scheduler.add(node, config=...)` gave (`{}` without it).

use crate::{embed, topics::Endpoint};
use horus_host::python::PythonSource;
use horus_plugin_api::{Context, Node, NodeError, NodeResult};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule, PyString};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The loader's node type.
pub const NODE_TYPE: &str = horus_host::python::NODE_TYPE;

/// A node object the package registered, and the config it runs with.
struct Registered {
    obj: Py<PyAny>,
    config: Py<PyDict>,
}

/// Node objects registered by the package, by id (see [`register`]).
static OBJECTS: Mutex<Option<HashMap<u64, Registered>>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Registers `obj` (with its `config`) for a `PythonNode` made from [`PythonSource::Object`];
/// returns the id.
pub fn register(obj: Py<PyAny>, config: Py<PyDict>) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    OBJECTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_or_insert_default()
        .insert(id, Registered { obj, config });
    id
}

/// Forgets a registered object.
pub fn unregister(id: u64) -> Option<Py<PyAny>> {
    OBJECTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_mut()
        .and_then(|m| m.remove(&id))
        .map(|r| r.obj)
}

fn registered(py: Python<'_>, id: u64) -> Option<(Py<PyAny>, Py<PyDict>)> {
    OBJECTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(&id).map(|r| (r.obj.clone_ref(py), r.config.clone_ref(py))))
}

/// A TOML value as the Python value `tomllib` would give (dates as their TOML text).
fn toml_to_py<'py>(py: Python<'py>, value: &toml::Value) -> PyResult<Bound<'py, PyAny>> {
    use pyo3::IntoPyObjectExt;
    Ok(match value {
        toml::Value::String(s) => s.into_bound_py_any(py)?,
        toml::Value::Integer(i) => i.into_bound_py_any(py)?,
        toml::Value::Float(f) => f.into_bound_py_any(py)?,
        toml::Value::Boolean(b) => b.into_bound_py_any(py)?,
        toml::Value::Datetime(d) => d.to_string().into_bound_py_any(py)?,
        toml::Value::Array(items) => {
            let list = pyo3::types::PyList::empty(py);
            for item in items {
                list.append(toml_to_py(py, item)?)?;
            }
            list.into_any()
        }
        toml::Value::Table(table) => table_to_dict(py, table)?.into_any(),
    })
}

/// A TOML table as a Python dict.
fn table_to_dict<'py>(py: Python<'py>, table: &toml::Table) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, value) in table {
        dict.set_item(key, toml_to_py(py, value)?)?;
    }
    Ok(dict)
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

fn build_from_file(
    py: Python<'_>,
    ctx: &Context<'_>,
    path: &str,
    class: &str,
) -> Result<Py<PyAny>, NodeError> {
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

impl PythonNode {
    /// Makes the node `source` names (the loader's create entry calls this), and sets its
    /// `config` dict before anything else of it runs.
    pub fn create_from(ctx: &mut Context<'_>, source: &PythonSource) -> Result<PythonNode, NodeError> {
        if let PythonSource::File { program, .. } = source {
            embed::ensure_interpreter(Some(&program.to_string_lossy()))
                .map_err(|e| NodeError::new(e.to_string()))?;
        }
        embed::pin_thread();
        Python::attach(|py| {
            let (obj, config) = match source {
                PythonSource::Object(id) => {
                    let (obj, config) = registered(py, *id)
                        .ok_or_else(|| NodeError::new(format!("no registered Python node object #{id}")))?;
                    // A copy: what a node does to its dict does not survive a restart.
                    (obj, config.bind(py).copy().map_err(|e| node_error(py, &e))?)
                }
                PythonSource::File { file, class, .. } => {
                    let obj = build_from_file(py, ctx, &file.to_string_lossy(), class)?;
                    let table: toml::Table = ctx
                        .config_toml()
                        .parse()
                        .map_err(|e| NodeError::new(format!("the node's config: {e}")))?;
                    let dict = table_to_dict(py, &table).map_err(|e| node_error(py, &e))?;
                    // The declared defaults of the keys the manifest leaves out (the class's
                    // `CONFIG`; `horus check` verified the rest).
                    let filled = py
                        .import("horus._config")
                        .and_then(|c| c.call_method1("with_defaults", (obj.bind(py).get_type(), &dict)))
                        .and_then(|d| Ok(d.cast_into::<PyDict>()?))
                        .map_err(|e| node_error(py, &e))?;
                    (obj, filled)
                }
            };
            obj.bind(py)
                .setattr(intern!(py, "config"), config)
                .map_err(|e| node_error(py, &e))?;
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
}

impl Node for PythonNode {
    fn create(_ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        // The source of a Python node is not in its config: the host hands it over through
        // the loader's own create entry (`horus_loader_create_v1`).
        Err(NodeError::new(
            "a PythonNode is made by the horus host through the loader's create entry \
             (`python =` and `class =` in a manifest, or horus.Scheduler.add)",
        ))
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
