//! `horus.Scheduler` and `horus.SchedulerConfig`: a Python script running nodes under the host's
//! own scheduler (`horus_host::scheduler::run`), so Python nodes get exactly what plugin nodes
//! get — priorities, rates, the circuit breaker and restarts, deadlines, the watchdog, stats.
//!
//! Each Python node object is registered and run by the loader's node type (`PythonNode`)
//! through the plugin ABI, the loader being this very library (`PluginLibrary::builtin`).
//! `run()` waits with the GIL released and checks for signals every 20 ms; every class is
//! `frozen` (no borrow flag), so `stop()` works from any thread and from a signal handler.

use crate::node;
use horus_host::ffi::PluginLibrary;
use horus_host::io::NodeIo;
use horus_host::manifest::limits::{
    DEADLINE_MS, MAX_FAILURES, RATE_HZ, TICK_RATE_HZ, TIMEOUT_MS, WATCHDOG_MS,
};
use horus_host::manifest::{Isolation, Preset, SchedulerSpec, SupervisionSpec, Trigger};
use horus_host::python::PythonSource;
use horus_host::reload::prepare::Watched;
use horus_host::reload::python::PythonWatch;
use horus_host::reload::Reloader;
use horus_host::scheduler::{self, BoundNode, NodeSetup, NodeStats, RunError, StatsBoard, StopHandle};
use horus_host::topic::TopicScope;
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Scheduler settings: the seed's attributes, readable and writable.
#[pyclass(module = "horus", name = "SchedulerConfig", get_all, from_py_object)]
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    tick_rate: f64,
    #[pyo3(set)]
    circuit_breaker: bool,
    max_failures: u32,
    #[pyo3(set)]
    auto_restart: bool,
    #[pyo3(set)]
    deadline_monitoring: bool,
    #[pyo3(set)]
    watchdog_enabled: bool,
    watchdog_timeout_ms: u64,
    /// The preset it came from, if any.
    preset: Option<String>,
}

fn check_rate(tick_rate: f64) -> PyResult<f64> {
    TICK_RATE_HZ
        .check(tick_rate)
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

fn check_node_rate(rate_hz: f64) -> PyResult<f64> {
    RATE_HZ
        .check(rate_hz)
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// `trigger=` of `Scheduler.add`: `None` or `"rate"`, `"input"`, or a list of the topic names
/// the node reads (as it names them in `get`/`recv`).
fn trigger_of(trigger: Option<&Bound<'_, PyAny>>) -> PyResult<Trigger> {
    let Some(t) = trigger.filter(|t| !t.is_none()) else {
        return Ok(Trigger::Rate);
    };
    const WHAT: &str = "trigger must be \"rate\", \"input\" or a list of topic names the node reads";
    if let Ok(s) = t.extract::<String>() {
        return match s.as_str() {
            "rate" => Ok(Trigger::Rate),
            "input" => Ok(Trigger::Input),
            other => Err(PyValueError::new_err(format!(
                "{WHAT} (got {other:?}); for one topic write trigger=[{other:?}]"
            ))),
        };
    }
    let topics: Vec<String> = t
        .extract()
        .map_err(|_| PyTypeError::new_err(format!("{WHAT} (got a {})", type_name(t))))?;
    if topics.is_empty() || topics.iter().any(String::is_empty) {
        return Err(PyValueError::new_err(format!(
            "{WHAT}: the list needs at least one topic, and no empty names (got {topics:?})"
        )));
    }
    Ok(Trigger::Ports(topics))
}

/// `timeout_ms=` of `Scheduler.add`: only for an input-triggered node, in the manifest's range.
fn timeout_of(timeout_ms: Option<&Bound<'_, PyAny>>, trigger: &Trigger) -> PyResult<Option<Duration>> {
    let Some(t) = timeout_ms.filter(|t| !t.is_none()) else {
        return Ok(None);
    };
    if !trigger.is_input() {
        return Err(PyValueError::new_err(
            "timeout_ms is how long an input-triggered node waits for input before it ticks anyway: \
             add trigger=\"input\" (or a list of topics), or leave timeout_ms out",
        ));
    }
    if t.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(
            "timeout_ms must be a number of milliseconds (got a bool)",
        ));
    }
    let ms: f64 = t.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "timeout_ms must be a number of milliseconds (got a {})",
            type_name(t)
        ))
    })?;
    if ms.fract() != 0.0 || !TIMEOUT_MS.contains(ms as i64) {
        return Err(PyValueError::new_err(format!(
            "timeout_ms must be {} (got {ms})",
            TIMEOUT_MS.describe()
        )));
    }
    Ok(Some(Duration::from_millis(ms as u64)))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".into(), |n| n.to_string())
}

fn check_watchdog(ms: i64) -> PyResult<u64> {
    if !WATCHDOG_MS.contains(ms) {
        return Err(PyValueError::new_err(format!(
            "watchdog timeout must be {} (got {ms})",
            WATCHDOG_MS.describe()
        )));
    }
    Ok(ms as u64)
}

impl SchedulerConfig {
    fn preset(p: Preset) -> SchedulerConfig {
        let sup = SupervisionSpec::default();
        SchedulerConfig {
            tick_rate: p.tick_rate(),
            circuit_breaker: sup.circuit_breaker,
            max_failures: sup.max_failures,
            auto_restart: sup.auto_restart,
            deadline_monitoring: false,
            watchdog_enabled: false,
            watchdog_timeout_ms: sup.watchdog_timeout.as_millis() as u64,
            preset: Some(p.name().to_owned()),
        }
    }
}

#[pymethods]
impl SchedulerConfig {
    #[new]
    #[pyo3(signature = (tick_rate = 100.0, circuit_breaker = true, max_failures = 5, auto_restart = true,
                        deadline_monitoring = false, watchdog_enabled = false, watchdog_timeout_ms = 1000))]
    fn new(
        tick_rate: f64,
        circuit_breaker: bool,
        max_failures: i64,
        auto_restart: bool,
        deadline_monitoring: bool,
        watchdog_enabled: bool,
        watchdog_timeout_ms: i64,
    ) -> PyResult<SchedulerConfig> {
        let mut c = SchedulerConfig::preset(Preset::Standard);
        c.set_tick_rate(tick_rate)?;
        c.set_max_failures(max_failures)?;
        c.set_watchdog_timeout_ms(watchdog_timeout_ms)?;
        c.circuit_breaker = circuit_breaker;
        c.auto_restart = auto_restart;
        c.deadline_monitoring = deadline_monitoring;
        c.watchdog_enabled = watchdog_enabled;
        c.preset = None;
        Ok(c)
    }

    /// 100 Hz, balanced.
    #[staticmethod]
    fn standard() -> SchedulerConfig {
        SchedulerConfig::preset(Preset::Standard)
    }

    /// 200 Hz.
    #[staticmethod]
    fn high_performance() -> SchedulerConfig {
        SchedulerConfig::preset(Preset::HighPerformance)
    }

    /// 500 Hz.
    #[staticmethod]
    fn low_latency() -> SchedulerConfig {
        SchedulerConfig::preset(Preset::LowLatency)
    }

    /// 30 Hz.
    #[staticmethod]
    fn power_saving() -> SchedulerConfig {
        SchedulerConfig::preset(Preset::PowerSaving)
    }

    /// 1000 Hz.
    #[staticmethod]
    fn realtime() -> SchedulerConfig {
        SchedulerConfig::preset(Preset::Realtime)
    }

    #[setter]
    fn set_tick_rate(&mut self, tick_rate: f64) -> PyResult<()> {
        self.tick_rate = check_rate(tick_rate)?;
        Ok(())
    }

    #[setter]
    fn set_max_failures(&mut self, max_failures: i64) -> PyResult<()> {
        if !MAX_FAILURES.contains(max_failures) {
            return Err(PyValueError::new_err(format!(
                "max_failures must be at least 1 (got {max_failures})"
            )));
        }
        // More than u32::MAX failures in a row means never, as in a manifest.
        self.max_failures = u32::try_from(max_failures).unwrap_or(u32::MAX);
        Ok(())
    }

    #[setter]
    fn set_watchdog_timeout_ms(&mut self, ms: i64) -> PyResult<()> {
        self.watchdog_timeout_ms = check_watchdog(ms)?;
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "SchedulerConfig(tick_rate={}, circuit_breaker={}, max_failures={}, auto_restart={}, \
             deadline_monitoring={}, watchdog_enabled={}, watchdog_timeout_ms={})",
            self.tick_rate,
            py_bool(self.circuit_breaker),
            self.max_failures,
            py_bool(self.auto_restart),
            py_bool(self.deadline_monitoring),
            py_bool(self.watchdog_enabled),
            self.watchdog_timeout_ms
        )
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// A node added to a scheduler.
struct Entry {
    name: String,
    obj: Py<PyAny>,
    priority: i64,
    rate_hz: Option<f64>,
    logging: bool,
    deadline_ms: Option<f64>,
    /// `Some((enabled, timeout))` once `set_node_watchdog` was called.
    watchdog: Option<(bool, u64)>,
    /// The node's `config` dict (`Scheduler.add(node, config=...)`).
    config: Py<PyDict>,
    /// `Scheduler.add(node, trigger=...)`: by rate, or on input of the topics it reads.
    trigger: Trigger,
    /// `Scheduler.add(node, timeout_ms=...)`: an input-triggered node ticks anyway after this.
    timeout: Option<Duration>,
}

struct State {
    config: SchedulerConfig,
    nodes: Vec<Entry>,
    /// The last finished run's stats.
    last: Vec<NodeStats>,
    connections: u64,
}

/// The scheduler of a Python program.
#[pyclass(module = "horus._horus", frozen)]
pub struct Scheduler {
    state: Mutex<State>,
    /// The current run's stop handle (a fresh one per run).
    stop: Mutex<Option<StopHandle>>,
    board: StatsBoard,
    id: u64,
}

static NEXT_SCHEDULER: AtomicU64 = AtomicU64::new(0);

/// The loader's node types, linked into this library: what Python nodes run through.
fn loader() -> PyResult<Arc<PluginLibrary>> {
    static LOADER: OnceLock<Result<Arc<PluginLibrary>, String>> = OnceLock::new();
    LOADER
        .get_or_init(|| {
            crate::embed::loader_library(Path::new("<horus python loader>"))
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(PyRuntimeError::new_err)
}

fn stats_dict<'py>(py: Python<'py>, st: &NodeStats) -> PyResult<Bound<'py, PyDict>> {
    let json = serde_json::to_string(st).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    let value = py.import("json")?.call_method1("loads", (json,))?;
    let d = value.cast_into::<PyDict>()?;
    // Python-side names: a deadline of None reads as 0.0 like the seed's, and tick_rate is the
    // node's effective rate.
    if d.get_item("deadline_ms")?.is_none_or(|v| v.is_none()) {
        d.set_item("deadline_ms", 0.0)?;
    }
    Ok(d)
}

impl Scheduler {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn index_of(st: &State, name: &str) -> PyResult<usize> {
        st.nodes.iter().position(|e| e.name == name).ok_or_else(|| {
            let known: Vec<&str> = st.nodes.iter().map(|e| e.name.as_str()).collect();
            PyKeyError::new_err(format!(
                "no node named `{name}` in this scheduler (nodes: {known:?})"
            ))
        })
    }

    /// The node named by `node` (a name or an added node object).
    fn resolve(st: &State, py: Python<'_>, node: &Bound<'_, PyAny>) -> PyResult<usize> {
        if let Ok(name) = node.extract::<String>() {
            return Scheduler::index_of(st, &name);
        }
        st.nodes
            .iter()
            .position(|e| e.obj.bind(py).is(node))
            .ok_or_else(|| {
                PyKeyError::new_err("that node object was not added to this scheduler (call add() first)")
            })
    }

    /// Stats of every node: live during a run, else the last run's, else zeros.
    fn all_stats(&self) -> Vec<NodeStats> {
        let st = self.lock();
        let live = self.stop.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        let board = self.board.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let source = if live && !board.is_empty() {
            board
        } else {
            st.last.clone()
        };
        st.nodes
            .iter()
            .map(|e| {
                let mut s = source
                    .iter()
                    .find(|s| s.name == e.name)
                    .cloned()
                    .unwrap_or_else(|| blank_stats(e, &st.config));
                s.priority = e.priority;
                s.logging_enabled = e.logging;
                let (enabled, timeout) = watchdog_of(e, &st.config);
                s.watchdog_enabled = enabled;
                s.watchdog_timeout_ms = if enabled { timeout } else { 0 };
                s.deadline_ms = e.deadline_ms.or(s.deadline_ms);
                s
            })
            .collect()
    }
}

fn watchdog_of(e: &Entry, config: &SchedulerConfig) -> (bool, u64) {
    e.watchdog
        .unwrap_or((config.watchdog_enabled, config.watchdog_timeout_ms))
}

fn blank_stats(e: &Entry, config: &SchedulerConfig) -> NodeStats {
    NodeStats {
        priority: e.priority,
        tick_rate: e.rate_hz.unwrap_or(config.tick_rate),
        logging_enabled: e.logging,
        deadline_ms: e.deadline_ms,
        trigger: horus_host::scheduler::TriggerStat::of(&e.trigger),
        ..NodeStats::before_first_tick(
            e.name.clone(),
            node::NODE_TYPE.into(),
            PYTHON_ORIGIN.into(),
            Isolation::Inline,
        )
    }
}

/// The stats' `plugin` field of a Python script's nodes.
const PYTHON_ORIGIN: &str = "<python>";

/// What one run needs, taken from the scheduler's state under its lock.
struct Plan {
    spec: SchedulerSpec,
    nodes: Vec<BoundNode>,
    ids: Vec<u64>,
    /// With `watch`: the nodes whose class comes from a file, and those whose class cannot be
    /// imported again (node name, why).
    watched: Vec<Watched>,
    unwatchable: Vec<(String, String)>,
}

/// Where hot reload finds the class of `obj` again: its module's name and file, or why it
/// cannot.
fn class_origin(
    py: Python<'_>,
    obj: &Bound<'_, PyAny>,
) -> PyResult<Result<(String, String, PathBuf), String>> {
    let cls = obj.get_type();
    let module: String = cls.getattr("__module__")?.extract()?;
    let qualname: String = cls.getattr("__qualname__")?.extract()?;
    if module == "__main__" {
        return Ok(Err(format!(
            "its class `{qualname}` is defined in the running script (__main__), which cannot be \
             imported again"
        )));
    }
    if qualname.contains("<locals>") {
        return Ok(Err(format!(
            "its class `{qualname}` is defined inside a function, which cannot be imported again"
        )));
    }
    let file = py
        .import("sys")?
        .getattr("modules")?
        .call_method1("get", (&module,))?
        .getattr("__file__")
        .ok()
        .and_then(|f| f.extract::<String>().ok())
        .filter(|f| f.ends_with(".py"));
    Ok(match file {
        Some(f) => Ok((
            module,
            qualname,
            std::fs::canonicalize(&f).unwrap_or_else(|_| PathBuf::from(f)),
        )),
        None => Err(format!("its class's module `{module}` has no .py file")),
    })
}

fn plan(st: &State, py: Python<'_>, watch: bool) -> PyResult<Plan> {
    let loader = loader()?;
    let (type_index, _) = loader
        .node_type(node::NODE_TYPE)
        .ok_or_else(|| PyRuntimeError::new_err("the Python loader has no PythonNode type"))?;
    let c = &st.config;
    let explicit_deadlines = st.nodes.iter().any(|e| e.deadline_ms.is_some());
    let spec = SchedulerSpec {
        tick_rate: c.tick_rate,
        preset: c.preset.as_deref().and_then(Preset::from_name),
        supervision: SupervisionSpec {
            circuit_breaker: c.circuit_breaker,
            max_failures: c.max_failures,
            auto_restart: c.auto_restart,
            deadline_monitoring: c.deadline_monitoring || explicit_deadlines,
            // Every node's watchdog is explicit below (a node's own setting wins, even "off").
            watchdog_enabled: false,
            watchdog_timeout: Duration::from_millis(c.watchdog_timeout_ms),
            ..SupervisionSpec::default()
        },
        hot_reload: false,
    };
    let epoch = std::time::Instant::now();
    let mut nodes = Vec::with_capacity(st.nodes.len());
    let mut ids = Vec::with_capacity(st.nodes.len());
    let (mut watched, mut unwatchable) = (Vec::new(), Vec::new());
    let program = PathBuf::from(py.import("sys")?.getattr("executable")?.extract::<String>()?);
    if watch {
        // Imported now, not by the first reload's swap on the scheduler thread (~40 ms).
        py.import("horus._runtime")?;
    }
    for e in &st.nodes {
        let id = node::register(e.obj.clone_ref(py), e.config.clone_ref(py));
        ids.push(id);
        if watch {
            match class_origin(py, e.obj.bind(py))? {
                Ok((module, class, file)) => watched.push(Watched {
                    node: e.name.clone(),
                    file: file.clone(),
                    node_type: node::NODE_TYPE.into(),
                    ports: loader.info().node_types[type_index].ports.clone(),
                    // The loader's node type declares no schema (a class's `CONFIG` is checked
                    // by `Scheduler.add`).
                    config: toml::Table::new(),
                    python: Some(PythonWatch {
                        loader: loader.clone(),
                        source: PythonSource::Class {
                            object: id,
                            module,
                            file,
                            class,
                            fresh: false,
                        },
                        program: program.clone(),
                    }),
                }),
                Err(why) => unwatchable.push((e.name.clone(), why)),
            }
        }
        let (wd_on, wd_ms) = watchdog_of(e, c);
        let io = NodeIo::new(
            e.name.clone(),
            e.logging,
            toml::Table::new(),
            Vec::new(),
            Vec::new(),
            epoch,
        );
        let setup = NodeSetup {
            name: e.name.clone(),
            plugin: loader.clone(),
            type_index,
            python: Some(PythonSource::Object(id)),
            config: toml::Table::new(),
            ports: Vec::new(),
            port_names: Vec::new(),
            priority: e.priority,
            rate_hz: e.rate_hz,
            trigger: e.trigger.clone(),
            timeout: e.timeout,
            deadline: e.deadline_ms.map(|ms| Duration::from_secs_f64(ms / 1e3)),
            watchdog: wd_on.then(|| Duration::from_millis(wd_ms)),
            isolation: Isolation::Inline,
            logging: e.logging,
            origin: PYTHON_ORIGIN.into(),
        };
        nodes.push(BoundNode { setup, io });
    }
    Ok(Plan {
        spec,
        nodes,
        ids,
        watched,
        unwatchable,
    })
}

/// How often `run()` wakes (GIL released in between) to look for signals such as Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(20);

#[pymethods]
impl Scheduler {
    #[new]
    fn new() -> Scheduler {
        Scheduler::with_config(SchedulerConfig::preset(Preset::Standard))
    }

    /// A scheduler with `config` (a `SchedulerConfig`).
    #[staticmethod]
    fn from_config(config: &Bound<'_, PyAny>) -> PyResult<Scheduler> {
        let config = config.extract::<SchedulerConfig>().map_err(|_| {
            PyTypeError::new_err(format!(
                "Scheduler.from_config takes a horus.SchedulerConfig (got `{}`); e.g. horus.SchedulerConfig.standard()",
                config.get_type().name().map_or_else(|_| "?".into(), |n| n.to_string())
            ))
        })?;
        Ok(Scheduler::with_config(config))
    }

    /// The scheduler's config (a copy).
    #[getter]
    fn config(&self) -> SchedulerConfig {
        self.lock().config.clone()
    }

    /// Adds a node named `name` (the caller, `horus.Scheduler.add`, picks and checks it).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (node, name, priority, logging, rate_hz, config, trigger = None, timeout_ms = None))]
    fn _add(
        &self,
        node: Py<PyAny>,
        name: String,
        priority: i64,
        logging: bool,
        rate_hz: Option<f64>,
        config: Py<PyDict>,
        trigger: Option<&Bound<'_, PyAny>>,
        timeout_ms: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        if let Some(r) = rate_hz {
            check_node_rate(r)?;
        }
        let trigger = trigger_of(trigger)?;
        let timeout = timeout_of(timeout_ms, &trigger)?;
        let mut st = self.lock();
        if st.nodes.iter().any(|e| e.name == name) {
            return Err(PyValueError::new_err(format!(
                "a node named `{name}` is already in this scheduler (names must be unique)"
            )));
        }
        st.nodes.push(Entry {
            name,
            obj: node,
            priority,
            rate_hz,
            logging,
            deadline_ms: None,
            watchdog: None,
            config,
            trigger,
            timeout,
        });
        Ok(())
    }

    /// True if `name` is taken.
    fn _has(&self, name: &str) -> bool {
        self.lock().nodes.iter().any(|e| e.name == name)
    }

    /// A fresh topic name for a connection (private to this process).
    fn _connection_topic(&self, src: &str, port: &str) -> String {
        let mut st = self.lock();
        st.connections += 1;
        let scope = TopicScope::new();
        format!(
            "{}/s{}c{}/{src}.{port}",
            scope.instance(),
            self.id,
            st.connections
        )
    }

    /// The node object of a name or object (raises KeyError).
    fn _node<'py>(&self, py: Python<'py>, node: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let st = self.lock();
        let i = Scheduler::resolve(&st, py, node)?;
        Ok(st.nodes[i].obj.bind(py).clone())
    }

    /// Node names in the order they were added.
    fn get_node_names(&self) -> Vec<String> {
        self.lock().nodes.iter().map(|e| e.name.clone()).collect()
    }

    /// Stats of one node (KeyError if unknown).
    fn get_node_stats<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
        Scheduler::index_of(&self.lock(), name)?;
        let all = self.all_stats();
        let st = all.iter().find(|s| s.name == name).expect("index checked");
        stats_dict(py, st)
    }

    /// Stats of every node, in the order they were added.
    fn get_all_nodes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for s in self.all_stats() {
            list.append(stats_dict(py, &s)?)?;
        }
        Ok(list)
    }

    /// A tick of node `name` longer than `deadline_ms` counts one deadline miss.
    fn set_node_deadline(&self, name: &str, deadline_ms: f64) -> PyResult<()> {
        if !DEADLINE_MS.contains(deadline_ms) {
            return Err(PyValueError::new_err(format!(
                "deadline_ms must be a number of milliseconds {} (got {deadline_ms})",
                DEADLINE_MS.describe()
            )));
        }
        let mut st = self.lock();
        let i = Scheduler::index_of(&st, name)?;
        st.nodes[i].deadline_ms = Some(deadline_ms);
        Ok(())
    }

    /// Watch node `name` (or not): a tick not done within `timeout_ms` (10–60000) sets
    /// `watchdog_expired`.
    #[pyo3(signature = (name, enabled, timeout_ms = 1000))]
    fn set_node_watchdog(&self, name: &str, enabled: bool, timeout_ms: i64) -> PyResult<()> {
        let timeout = check_watchdog(timeout_ms)?;
        let mut st = self.lock();
        let i = Scheduler::index_of(&st, name)?;
        st.nodes[i].watchdog = Some((enabled, timeout));
        Ok(())
    }

    /// Sets node `name`'s rate (Hz), slower than the scheduler's.
    fn set_node_rate(&self, name: &str, rate_hz: f64) -> PyResult<()> {
        check_node_rate(rate_hz)?;
        let mut st = self.lock();
        let i = Scheduler::index_of(&st, name)?;
        st.nodes[i].rate_hz = Some(rate_hz);
        Ok(())
    }

    /// True while `run()` runs.
    fn is_running(&self) -> bool {
        self.stop.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Runs every node until `stop()`, Ctrl-C or `duration` seconds; with `watch`, a node whose
    /// class comes from a file reloads when the file changes.
    #[pyo3(signature = (duration = None, watch = false))]
    fn run(&self, py: Python<'_>, duration: Option<f64>, watch: bool) -> PyResult<()> {
        let duration = match duration {
            None => None,
            // Longer than a `Duration` holds (say 1e300 s): no end, as without a duration.
            Some(d) if d >= 0.0 && Duration::try_from_secs_f64(d).is_err() => None,
            Some(d) if d >= 0.0 => Some(Duration::from_secs_f64(d)),
            Some(d) => {
                return Err(PyValueError::new_err(format!(
                    "duration must be a number of seconds ≥ 0 (got {d})"
                )))
            }
        };
        let stop = StopHandle::new();
        {
            let mut current = self.stop.lock().unwrap_or_else(|p| p.into_inner());
            if current.is_some() {
                return Err(PyRuntimeError::new_err("this scheduler is already running"));
            }
            *current = Some(stop.clone());
        }
        let result = self.run_with(py, &stop, duration, watch);
        *self.stop.lock().unwrap_or_else(|p| p.into_inner()) = None;
        result
    }

    /// Asks a running `run()` to return (from any thread or a signal handler). No effect
    /// when not running.
    fn stop(&self) {
        if let Some(stop) = &*self.stop.lock().unwrap_or_else(|p| p.into_inner()) {
            stop.stop();
        }
    }
}

impl Scheduler {
    fn with_config(config: SchedulerConfig) -> Scheduler {
        Scheduler {
            state: Mutex::new(State {
                config,
                nodes: Vec::new(),
                last: Vec::new(),
                connections: 0,
            }),
            stop: Mutex::new(None),
            board: StatsBoard::default(),
            id: NEXT_SCHEDULER.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn run_with(
        &self,
        py: Python<'_>,
        stop: &StopHandle,
        duration: Option<Duration>,
        watch: bool,
    ) -> PyResult<()> {
        let Plan {
            spec,
            nodes,
            ids,
            watched,
            unwatchable,
        } = plan(&self.lock(), py, watch)?;
        if !unwatchable.is_empty() {
            let list: Vec<String> = unwatchable
                .iter()
                .map(|(node, why)| format!("`{node}`: {why}"))
                .collect();
            let message = format!(
                "hot reload (watch=True) cannot reload {} of this scheduler's nodes, which keep their \
                 code: {}; move the class into a module of its own (imported by the script) to reload it",
                list.len(),
                list.join("; ")
            );
            let warnings = py.import("warnings")?;
            warnings.call_method1(
                "warn",
                (message, py.get_type::<pyo3::exceptions::PyRuntimeWarning>(), 2),
            )?;
        }
        let (reloader, link) = if watch && !watched.is_empty() {
            let (reloader, link) = Reloader::start(watched, Vec::new()).map_err(|e| {
                for id in &ids {
                    node::unregister(*id);
                }
                PyRuntimeError::new_err(e.to_string())
            })?;
            (Some(reloader), Some(link))
        } else {
            (None, None)
        };
        *self.board.lock().unwrap_or_else(|p| p.into_inner()) = Vec::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = {
            let (stop, board) = (stop.clone(), self.board.clone());
            std::thread::Builder::new()
                .name("horus-run".into())
                .spawn(move || {
                    let scope = TopicScope::new();
                    let _ = tx.send(scheduler::run(
                        &spec, nodes, &stop, duration, &board, &scope, link,
                    ));
                })
                .map_err(|e| PyRuntimeError::new_err(format!("cannot start the scheduler thread: {e}")))?
        };
        let mut interrupted: Option<PyErr> = None;
        let mut rx = rx;
        let result = loop {
            let (got, back) = py.detach(move || (rx.recv_timeout(SIGNAL_CHECK), rx));
            rx = back;
            match got {
                Ok(result) => break result,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    break Err(RunError::Panicked(
                        "the scheduler thread ended without a report".into(),
                    ))
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if let Err(e) = py.check_signals() {
                // Ctrl-C (or a signal handler that raised): stop cleanly, then report it.
                stop.stop();
                interrupted.get_or_insert(e);
            }
        };
        py.detach(|| {
            let _ = thread.join();
            drop(reloader);
        });
        for id in ids {
            node::unregister(id);
        }
        match result {
            Ok(report) => {
                self.lock().last = report.nodes;
            }
            Err(RunError::Hung {
                node,
                phase,
                secs,
                stats,
            }) => {
                self.lock().last = stats;
                return Err(PyRuntimeError::new_err(format!(
                    "node `{node}` is hung {phase} ({secs:.1} s) and could not be stopped"
                )));
            }
            Err(e) => return Err(PyRuntimeError::new_err(e.to_string())),
        }
        match interrupted {
            Some(e) if e.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) => {
                tracing::info!("stopped by Ctrl-C");
                Ok(())
            }
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
