//! Python nodes behind the node ABI: [`PythonNode`] is the loader's node type (`PythonNode`),
//! and [`NodeIo`] is a Python node's topic endpoints (`Node.send` / `Node.get`, which [`NodeBase`],
//! the Rust base of `horus.Node`, calls with no Python frame in between).
//!
//! A `PythonNode` wraps one object of a `horus.Node` subclass. The host says which through the
//! loader's create entry ([`PythonNode::create_from`] with a [`PythonSource`]), never through
//! the node's `config`, which stays the user's table:
//! - [`PythonSource::Object`]: an object the `horus` package registered (a Python script's
//!   `Scheduler.add(node)`); a restart re-initialises the same object;
//! - [`PythonSource::File`]: a manifest's `python =` and `class =`; the loader starts the
//!   interpreter (as the environment's `python`) if needed, imports the file once and builds
//!   the class (again on a restart);
//! - [`PythonSource::Class`]: the class of a registered object, built from its module's file
//!   (a `horus.Scheduler` node after a hot reload).
//!
//! Hot reload (`fresh` sources): the file runs again in a fresh module object that replaces the
//! cached one (so restarts build the new code), and is put back if the new code fails before
//! its first tick succeeds. Every generation of a node shares its topic handles (`_horus_io`)
//! and gets the runtime's `name` and `config`; state crosses by `save_state`/`restore_state`.
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
    /// Its key in [`SHARED_IO`].
    io_key: String,
    /// The address of the host context it was made with, its key in [`BY_CONTEXT`] (set by
    /// the loader's create entry; `None` for a node made otherwise).
    context: Option<usize>,
    /// A hot reload's fresh import, until the first tick succeeds.
    undo: Option<Undo>,
}

/// Modules imported from node files (a manifest's `python =`, a reloaded class's module), by
/// path: imported once per process, replaced by each hot reload's fresh import.
static MODULES: Mutex<Option<HashMap<String, Py<PyModule>>>> = Mutex::new(None);

fn cached_module(py: Python<'_>, path: &str) -> Option<Py<PyModule>> {
    MODULES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(path).map(|m| m.clone_ref(py)))
}

fn set_cached_module(path: &str, module: Option<Py<PyModule>>) -> Option<Py<PyModule>> {
    let mut modules = MODULES.lock().unwrap_or_else(|p| p.into_inner());
    let modules = modules.get_or_insert_default();
    match module {
        Some(m) => modules.insert(path.to_owned(), m),
        None => modules.remove(path),
    }
}

/// What a hot reload's fresh import replaced, put back if the new code does not get through
/// its first tick (then the node runs the old code again, and so must a later restart).
struct Undo {
    path: String,
    name: String,
    module: Py<PyModule>,
    previous: Option<Py<PyModule>>,
    previous_sys: Option<Py<PyAny>>,
}

impl Undo {
    fn revert(self, py: Python<'_>) {
        let current = cached_module(py, &self.path);
        if current.is_some_and(|c| c.is(&self.module)) {
            set_cached_module(&self.path, self.previous);
        }
        if let Ok(modules) = py.import("sys").and_then(|s| s.getattr("modules")) {
            let ours = modules
                .get_item(&self.name)
                .is_ok_and(|m| m.is(self.module.bind(py)));
            if ours {
                let _ = match self.previous_sys {
                    Some(m) => modules.set_item(&self.name, m),
                    None => modules.del_item(&self.name),
                };
            }
        }
    }
}

/// The module of the node file at `path` under the name `name`: the cached one, or (first
/// use, or `fresh`: a hot reload) the file run in a new module object that replaces the cached
/// one. A fresh import's error is one line, `file:line: Type: message`; a first import's has the
/// traceback too.
fn import_file(
    py: Python<'_>,
    path: &str,
    name: &str,
    fresh: bool,
) -> Result<(Py<PyModule>, Option<Undo>), NodeError> {
    if !fresh {
        if let Some(m) = cached_module(py, path) {
            return Ok((m, None));
        }
    }
    let runtime = py.import("horus._runtime").map_err(|e| node_error(py, &e))?;
    // The file's directory is importable, as it is for `python file.py`.
    if let Some(dir) = std::path::Path::new(path).parent() {
        let added = (|| -> PyResult<()> {
            let sys_path = py.import("sys")?.getattr("path")?;
            let dir = dir.to_string_lossy().into_owned();
            if !sys_path.contains(&dir)? {
                sys_path.call_method1("insert", (0, dir))?;
            }
            Ok(())
        })();
        added.map_err(|e| node_error(py, &e))?;
    }
    let previous_sys = py
        .import("sys")
        .and_then(|s| s.getattr("modules"))
        .and_then(|m| m.call_method1("get", (name,)))
        .ok()
        .filter(|m| !m.is_none())
        .map(Bound::unbind);
    let module = runtime
        .call_method1("import_file", (name, path))
        .and_then(|m| Ok(m.cast_into::<PyModule>()?.unbind()))
        .map_err(|e| {
            if !fresh {
                return node_error(py, &e);
            }
            let line = runtime
                .call_method1("error_line", (e.value(py), path))
                .and_then(|l| l.extract::<String>())
                .unwrap_or_else(|_| format!("{path}: {e}"));
            NodeError::new(line)
        })?;
    let previous = set_cached_module(path, Some(module.clone_ref(py)));
    let undo = fresh.then(|| Undo {
        path: path.to_owned(),
        name: name.to_owned(),
        module: module.clone_ref(py),
        previous,
        previous_sys,
    });
    Ok((module, undo))
}

/// The private module name of a manifest node's file.
fn module_name(path: &str, node: &str) -> String {
    let stem: String = std::path::Path::new(path)
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .chars()
                .map(|c| if c.is_alphanumeric() { c } else { '_' })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "horus_node_{stem}_{}",
        node.replace(|c: char| !c.is_alphanumeric(), "_")
    )
}

/// A new instance of `class` (a dotted `__qualname__`) of `module`, from `path`, named `name`.
fn instantiate(
    py: Python<'_>,
    module: &Bound<'_, PyModule>,
    path: &str,
    class: &str,
    name: &str,
) -> Result<Py<PyAny>, NodeError> {
    let missing = || {
        NodeError::new(format!(
            "{path} defines no class `{class}` (set `class` to a horus.Node subclass in it)"
        ))
    };
    let mut cls = module.clone().into_any();
    for part in class.split('.') {
        cls = cls.getattr(part).map_err(|_| missing())?;
    }
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
    obj.call_method1(intern!(py, "_horus_bind"), (name,))
        .map_err(|e| node_error(py, &e))?;
    Ok(obj.unbind())
}

/// The topic handles (`_horus_io`, a [`NodeIo`]) of each node, shared by its generations: a hot
/// reload's new object takes the running one's, so its topics, read positions and `connect`
/// remaps stay the runtime's. Counted: the last generation to go closes them.
static SHARED_IO: Mutex<Option<HashMap<String, SharedIo>>> = Mutex::new(None);

/// A node's topic handles and how many of its generations hold them.
type SharedIo = (Py<PyAny>, usize);

/// Gives `obj` the node's topic handles: the live generation's, else `fallback`'s (a registered
/// object's), else its own.
fn share_io(
    py: Python<'_>,
    key: &str,
    obj: &Bound<'_, PyAny>,
    fallback: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let live = SHARED_IO
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .and_then(|m| m.get(key).map(|(io, _)| io.clone_ref(py)));
    let io = match (live, fallback) {
        (Some(io), _) => io.into_bound(py),
        (None, Some(f)) => f.call_method0(intern!(py, "_horus_io_or_new"))?,
        (None, None) => obj.call_method0(intern!(py, "_horus_io_or_new"))?,
    };
    obj.setattr(intern!(py, "_horus_io"), &io)?;
    let mut map = SHARED_IO.lock().unwrap_or_else(|p| p.into_inner());
    let entry = map
        .get_or_insert_default()
        .entry(key.to_owned())
        .or_insert_with(|| (io.unbind(), 0));
    entry.1 += 1;
    Ok(())
}

/// The topic handles' key ([`SHARED_IO`]) of the node made with each host context, by the
/// context's address, and how many live generations were made with it: how the host's
/// `horus_loader_io_stats_v1` finds a node's counters. The address is only compared, never
/// read; the host keeps a context at one address for the life of its node instance.
static BY_CONTEXT: Mutex<Option<HashMap<usize, (String, usize)>>> = Mutex::new(None);

/// The per-topic counters of the node made with the host context at `context`, as JSON of
/// `horus_host::io::TopicStats` (what the host's stats show for a port), or `None` when no
/// live node was made with it.
pub fn io_stats_json(context: usize) -> Option<String> {
    let key = BY_CONTEXT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()?
        .get(&context)?
        .0
        .clone();
    embed::pin_thread();
    Python::attach(|py| {
        let io = SHARED_IO
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()?
            .get(&key)
            .map(|(io, _)| io.clone_ref(py))?;
        let io = io.bind(py).cast::<NodeIo>().ok()?.get();
        serde_json::to_string(&io.topic_stats()).ok()
    })
}

/// One generation lets go of the node's topic handles; the last one returns them to close.
fn release_io(key: &str) -> Option<Py<PyAny>> {
    let mut map = SHARED_IO.lock().unwrap_or_else(|p| p.into_inner());
    let map = map.as_mut()?;
    let entry = map.get_mut(key)?;
    entry.1 -= 1;
    if entry.1 > 0 {
        return None;
    }
    map.remove(key).map(|(io, _)| io)
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
            let registered_of = |id: u64| {
                registered(py, id)
                    .ok_or_else(|| NodeError::new(format!("no registered Python node object #{id}")))
            };
            let mut undo = None;
            let mut build = || match source {
                PythonSource::Object(id) => {
                    let (obj, config) = registered_of(*id)?;
                    // A copy: what a node does to its dict does not survive a restart.
                    let config = config.bind(py).copy().map_err(|e| node_error(py, &e))?;
                    Ok((obj, config, format!("object {id}"), None))
                }
                PythonSource::File {
                    file, class, fresh, ..
                } => {
                    let path = file.to_string_lossy();
                    let (module, u) = import_file(py, &path, &module_name(&path, ctx.name()), *fresh)?;
                    undo = u;
                    let obj = instantiate(py, module.bind(py), &path, class, ctx.name())?;
                    let table: toml::Table = ctx
                        .config_toml()
                        .parse()
                        .map_err(|e| NodeError::new(format!("the node's config: {e}")))?;
                    let dict = table_to_dict(py, &table).map_err(|e| node_error(py, &e))?;
                    // The declared defaults of the keys the manifest leaves out (the class's
                    // `CONFIG`; `horus check` verified the rest).
                    let config = py
                        .import("horus._config")
                        .and_then(|c| c.call_method1("with_defaults", (obj.bind(py).get_type(), &dict)))
                        .and_then(|d| Ok(d.cast_into::<PyDict>()?))
                        .map_err(|e| node_error(py, &e))?;
                    Ok((obj, config, format!("node {}", ctx.name()), None))
                }
                PythonSource::Class {
                    object,
                    module,
                    file,
                    class,
                    fresh,
                } => {
                    let (original, config) = registered_of(*object)?;
                    let path = file.to_string_lossy();
                    // A restart after a reload builds from the reload's import; before any,
                    // the script's own module is the class's.
                    let imported = py
                        .import("sys")
                        .and_then(|s| s.getattr("modules"))
                        .and_then(|m| m.get_item(module))
                        .and_then(|m| Ok(m.cast_into::<PyModule>()?.unbind()));
                    let (m, u) = match (fresh, cached_module(py, &path), imported) {
                        (false, None, Ok(m)) => (m, None),
                        _ => import_file(py, &path, module, *fresh)?,
                    };
                    undo = u;
                    let obj = instantiate(py, m.bind(py), &path, class, ctx.name())?;
                    let config = config.bind(py).copy().map_err(|e| node_error(py, &e))?;
                    Ok((obj, config, format!("object {object}"), Some(original)))
                }
            };
            let (obj, config, io_key, fallback) = match build() {
                Ok(built) => built,
                Err(e) => {
                    if let Some(undo) = undo.take() {
                        undo.revert(py);
                    }
                    return Err(e);
                }
            };
            // The runtime's attributes (name, set above; config; topic handles) are the
            // runtime's, whichever object runs.
            share_io(py, &io_key, obj.bind(py), fallback.as_ref().map(|f| f.bind(py)))
                .map_err(|e| node_error(py, &e))?;
            let made = PythonNode {
                obj,
                is_async: false,
                pending: None,
                io_key,
                context: None,
                undo,
            };
            let obj = &made.obj;
            obj.bind(py)
                .setattr(intern!(py, "config"), config)
                .map_err(|e| node_error(py, &e))?;
            let is_async = py
                .import("inspect")
                .and_then(|i| i.call_method1("iscoroutinefunction", (obj.bind(py).getattr("tick")?,)))
                .and_then(|r| r.is_truthy())
                .unwrap_or(false);
            let mut made = made;
            made.is_async = is_async;
            Ok(made)
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
            let ticked = if self.is_async {
                self.tick_async(py)
            } else {
                match self.obj.bind(py).call_method0(intern!(py, "tick")) {
                    Ok(_) => Ok(()),
                    Err(e) => Err(node_error(py, &e)),
                }
            };
            if ticked.is_ok() && self.undo.is_some() {
                // The new code of a hot reload got through its first tick: its import stays.
                self.undo = None;
            }
            ticked
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
                tracing::warn!(
                    "{} has no restore_state: the state the old code saved is dropped and the \
                     node starts from its own __init__ and init()",
                    obj.get_type()
                        .name()
                        .map_or_else(|_| "the node's class".into(), |n| n.to_string())
                );
                return Ok(());
            }
            let value = crate::codec::decode(py, state).map_err(|e| node_error(py, &e))?;
            obj.call_method1("restore_state", (value,))
                .map_err(|e| node_error(py, &e))?;
            Ok(())
        })
    }
}

impl PythonNode {
    /// Records that the host made this node with the context at `context` (see
    /// [`io_stats_json`]).
    pub fn made_with(mut self, context: usize) -> PythonNode {
        let mut map = BY_CONTEXT.lock().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .get_or_insert_default()
            .entry(context)
            .or_insert_with(|| (self.io_key.clone(), 0));
        entry.0 = self.io_key.clone();
        entry.1 += 1;
        self.context = Some(context);
        self
    }
}

impl Drop for PythonNode {
    fn drop(&mut self) {
        if let Some(context) = self.context {
            let mut map = BY_CONTEXT.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(m) = map.as_mut() {
                if let Some(entry) = m.get_mut(&context) {
                    entry.1 -= 1;
                    if entry.1 == 0 {
                        m.remove(&context);
                    }
                }
            }
        }
        embed::pin_thread();
        Python::attach(|py| {
            if let Some(undo) = self.undo.take() {
                undo.revert(py);
            }
            // The node's topic endpoints detach with its last generation (the last one removes
            // a segment); they re-attach on the next send or get.
            if let Some(io) = release_io(&self.io_key) {
                let _ = io.bind(py).call_method0(intern!(py, "close"));
            }
            // The object itself goes here, with the GIL: dropped after this function, pyo3
            // would only queue its decref for the next time a thread takes the GIL — at the
            // host's exit never, and whatever the object holds (a hub's segment) would stay.
            drop(self.pending.take());
            drop(std::mem::replace(&mut self.obj, py.None()));
        });
    }
}

struct IoState {
    ns: String,
    remap: HashMap<String, String>,
    /// The endpoints with the names the node uses, in the order of first use.
    endpoints: Vec<(String, Endpoint)>,
    /// Where each name's endpoint is in `endpoints`.
    index: HashMap<String, usize>,
    /// Where the endpoint of the last send, and of the last read, is: a node that sends on one
    /// topic and reads another finds them with one string comparison each, no hashing.
    last: [usize; 2],
    scratch: Vec<u8>,
    buf: Vec<u8>,
}

/// Which of [`IoState::last`] a lookup uses.
#[derive(Clone, Copy)]
enum Use {
    Send = 0,
    Read = 1,
}

impl IoState {
    fn endpoint(&mut self, topic: &str, used: Use) -> &mut Endpoint {
        let last = self.last[used as usize];
        let i = if self.endpoints.get(last).is_some_and(|(name, _)| name == topic) {
            last
        } else if let Some(&i) = self.index.get(topic) {
            i
        } else {
            let resolved = self.remap.get(topic).cloned().unwrap_or_else(|| topic.to_owned());
            let ep = Endpoint::new(resolved, self.ns.clone(), false);
            self.endpoints.push((topic.to_owned(), ep));
            self.index.insert(topic.to_owned(), self.endpoints.len() - 1);
            self.endpoints.len() - 1
        };
        self.last[used as usize] = i;
        &mut self.endpoints[i].1
    }

    /// Drops the endpoint of `name` (it is made anew on its next use).
    fn remove(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        self.endpoints.swap_remove(i);
        if let Some((moved, _)) = self.endpoints.get(i) {
            self.index.insert(moved.clone(), i);
        }
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

impl NodeIo {
    /// Every endpoint's counters as the host's stats show a port's (see
    /// [`Endpoint::topic_stats`]), by name.
    fn topic_stats(&self) -> Vec<horus_host::io::TopicStats> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // A topic the node read before anyone published it exists now: watch it.
        for (_, ep) in &mut st.endpoints {
            ep.watch_read();
        }
        let mut named: Vec<&(String, Endpoint)> = st.endpoints.iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
            .into_iter()
            .flat_map(|(name, ep)| ep.topic_stats(name))
            .collect()
    }
}

#[pymethods]
impl NodeIo {
    #[new]
    fn new() -> NodeIo {
        NodeIo {
            state: Mutex::new(IoState {
                ns: horus_host::shm::namespace(),
                remap: HashMap::new(),
                endpoints: Vec::new(),
                index: HashMap::new(),
                last: [0; 2],
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
        let result = st.endpoint(topic, Use::Send).send(data, &mut scratch);
        st.scratch = scratch;
        result
    }

    /// The oldest unread message on `topic`, or None.
    fn get<'py>(&self, py: Python<'py>, topic: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        check_topic(topic)?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let st = &mut *st;
        let mut buf = std::mem::take(&mut st.buf);
        let result = st.endpoint(topic, Use::Read).recv(py, &mut buf);
        st.buf = buf;
        result
    }

    /// A writable numpy array in `topic`'s next slot (see `Hub.loan`): `send(topic, array)`
    /// publishes it with no copy.
    #[pyo3(signature = (topic, shape, dtype = None))]
    fn loan<'py>(
        &self,
        py: Python<'py>,
        topic: &str,
        shape: &Bound<'py, PyAny>,
        dtype: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        check_topic(topic)?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.endpoint(topic, Use::Send).loan_py(py, shape, dtype)
    }

    /// True if a message is waiting on `topic`.
    fn has_msg(&self, topic: &str) -> PyResult<bool> {
        check_topic(topic)?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Ok(st.endpoint(topic, Use::Read).pending()? > 0)
    }

    /// Maps the node's name `port` to the topic `topic` (a connection).
    fn remap(&self, port: &str, topic: &str) -> PyResult<()> {
        check_topic(port)?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.remap.insert(port.to_owned(), topic.to_owned());
        st.remove(port);
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
        for (_, ep) in &mut st.endpoints {
            ep.close();
        }
        st.endpoints.clear();
        st.index.clear();
    }
}

/// The base class of `horus.Node`: its `send`, `get` (`recv`) and `has_msg`, here so that a
/// node's call reaches its [`NodeIo`] (`self._horus_io`) with no Python frame in between.
#[pyclass(module = "horus._horus", name = "Node", subclass, frozen)]
pub struct NodeBase {}

/// The node's topic handles: `self._horus_io` (made on first use, by the `cached_property` of
/// `horus.Node`, for a subclass whose `__init__` did not call `super().__init__()`).
fn io_of<'py>(slf: &Bound<'py, NodeBase>) -> PyResult<Bound<'py, PyAny>> {
    slf.as_any().getattr(intern!(slf.py(), "_horus_io"))
}

#[pymethods]
impl NodeBase {
    /// Whatever a subclass's `__init__` takes: `__init__` makes the node.
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, pyo3::types::PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> NodeBase {
        NodeBase {}
    }

    /// Publishes ``data`` on ``topic`` (or on the connection ``topic`` is mapped to).
    fn send(slf: &Bound<'_, Self>, topic: &str, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let io = io_of(slf)?;
        match io.cast::<NodeIo>() {
            Ok(io) => io.get().send(topic, data),
            Err(_) => io
                .call_method1(intern!(slf.py(), "send"), (topic, data))
                .map(drop),
        }
    }

    /// The oldest unread message on ``topic``, or ``None``.
    fn get<'py>(slf: &Bound<'py, Self>, topic: &str) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let io = io_of(slf)?;
        match io.cast::<NodeIo>() {
            Ok(io) => Ok(io
                .get()
                .get(py, topic)?
                .unwrap_or_else(|| py.None().into_bound(py))),
            Err(_) => io.call_method1(intern!(py, "get"), (topic,)),
        }
    }

    /// The oldest unread message on ``topic``, or ``None`` (the same as ``get``).
    fn recv<'py>(slf: &Bound<'py, Self>, topic: &str) -> PyResult<Bound<'py, PyAny>> {
        NodeBase::get(slf, topic)
    }

    /// A writable numpy array of ``shape`` and ``dtype`` (default uint8) that lives in
    /// ``topic``'s shared memory: fill it, then ``send(topic, array)`` publishes it with no
    /// copy (see ``Hub.loan``).
    #[pyo3(signature = (topic, shape, dtype = None))]
    fn loan<'py>(
        slf: &Bound<'py, Self>,
        topic: &str,
        shape: &Bound<'py, PyAny>,
        dtype: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let io = io_of(slf)?;
        match io.cast::<NodeIo>() {
            Ok(io) => io.get().loan(py, topic, shape, dtype),
            Err(_) => io.call_method1(intern!(py, "loan"), (topic, shape, dtype)),
        }
    }

    /// True if a message is waiting on ``topic``.
    fn has_msg(slf: &Bound<'_, Self>, topic: &str) -> PyResult<bool> {
        let io = io_of(slf)?;
        match io.cast::<NodeIo>() {
            Ok(io) => io.get().has_msg(topic),
            Err(_) => io.call_method1(intern!(slf.py(), "has_msg"), (topic,))?.extract(),
        }
    }
}
