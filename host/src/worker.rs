//! The worker side of `process` isolation: `horus __worker` runs one node in a child process
//! of its host. It loads the plugin itself, attaches the node's ports to the host's topics (the
//! same shared-memory rings), and executes the commands its host writes to the command block
//! ([`crate::shm::ctl`]) until told to exit, or until the host dies: the kernel kills a worker
//! whose parent exits (`PR_SET_PDEATHSIG`), so a worker never outlives its host.

use crate::ffi::{CallError, CallErrorKind, NodeInstance, PluginLibrary};
use crate::io::NodeIo;
use crate::python::PythonSource;
use crate::shm::ctl::{self, Ctl};
use crate::topic::{PortPlan, TopicScope};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Environment variable that carries the [`WorkerJob`] (JSON) to the worker.
pub const JOB_ENV: &str = "HORUS_WORKER_JOB";

/// Everything a worker needs to run one node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerJob {
    /// The host's pid: the worker exits if its parent is not this process.
    pub host_pid: u32,
    /// The command block's shm name.
    pub ctl: String,
    /// The plugin file (the worker loads its own private copy).
    pub plugin: PathBuf,
    /// Node type name in the plugin.
    pub node_type: String,
    /// A Python node's source, for the loader's create entry.
    pub python: Option<PythonSource>,
    /// Node name.
    pub name: String,
    /// Whether the node's log lines are shown.
    pub logging: bool,
    /// The node's config, as TOML.
    pub config: String,
    /// Its ports' topics.
    pub ports: Vec<PortPlan>,
    /// Its ports' names.
    pub port_names: Vec<String>,
    /// The host's topic namespace.
    pub namespace: String,
    /// The host's instance (private topic names).
    pub instance: String,
    /// The host's clock origin on CLOCK_MONOTONIC (ns), so the node's `now()` matches the
    /// host's nodes.
    pub epoch_monotonic_ns: u64,
    /// The node moves here from another executor (a live apply of its `isolation`), taking
    /// its endpoints' place and its state; `None` for a node started or restarted here.
    #[serde(default)]
    pub moved: Option<MovedIn>,
    /// Per port, for an input the host held while this worker started: the sequence its
    /// holder had reached, where the worker's subscriber starts (so nothing sent while the
    /// worker started is lost); empty on a restart.
    #[serde(default)]
    pub start: Vec<Option<u64>>,
}

/// How a node moving into a worker process takes over from where it ran (see
/// [`WorkerJob::moved`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MovedIn {
    /// Per port: for an input, the next sequence the node reads (where it stopped reading);
    /// `None` for the others.
    pub cursors: Vec<Option<u64>>,
    /// The old object's saved state, read and removed before `restore_state`.
    pub state_file: PathBuf,
}

/// A hot reload's (or a live apply's) new code, the argument of [`ctl::CMD_RELOAD`]: the
/// worker loads its own private copy of the file, as it did at start.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadJob {
    /// The plugin file.
    pub plugin: PathBuf,
    /// Node type name in it.
    pub node_type: String,
    /// A Python node's new source (another file or class): the new object imports it afresh
    /// and restarts use it. `None`: made with the create argument the node runs with.
    pub python: Option<PythonSource>,
    /// The node's new config, as TOML (a live apply): the new object is made with it, and a
    /// rollback puts the old one back. `None`: the config stays.
    pub config: Option<String>,
}

/// ` (SIGSEGV)` and the like for the signals a crashing child dies of; empty for others. For
/// the messages about a worker or inspecting process that was killed.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        4 => " (SIGILL)",
        6 => " (SIGABRT)",
        7 => " (SIGBUS)",
        8 => " (SIGFPE)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        _ => "",
    }
}

/// Now on CLOCK_MONOTONIC (the clock `Instant` uses), in ns: comparable across processes.
pub fn monotonic_ns() -> u64 {
    crate::shm::monotonic_ns()
}

/// Why a worker could not start (or go on).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The job in the environment is not a [`WorkerJob`] (the worker was not started by a host
    /// of the same build).
    #[error("bad worker job: {0}")]
    BadJob(#[source] serde_json::Error),
    /// The kernel refused to tie the worker's life to its host's.
    #[error("PR_SET_PDEATHSIG: {0}")]
    DeathSignal(#[source] rustix::io::Errno),
    /// The host exited before the worker could tie its life to it.
    #[error("the host is gone")]
    HostGone,
    /// The host's command block cannot be opened.
    #[error("command block {name}: {source}")]
    CommandBlock {
        /// Its shm name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
}

fn status_of(r: &Result<(), CallError>) -> (u32, String) {
    match r {
        Ok(()) => (ctl::OK, String::new()),
        Err(e) if e.kind == CallErrorKind::Panic => (ctl::PANIC, e.message.clone()),
        Err(e) => (ctl::ERROR, e.to_string()),
    }
}

/// Runs the worker until its host says exit (or disappears).
pub fn run(job_json: &str) -> Result<(), WorkerError> {
    let job: WorkerJob = serde_json::from_str(job_json).map_err(WorkerError::BadJob)?;
    // Die with the host; then make sure the host did not die before we asked.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(WorkerError::DeathSignal)?;
    let parent_alive =
        || rustix::process::getppid().is_some_and(|p| p.as_raw_nonzero().get() as u32 == job.host_pid);
    if !parent_alive() {
        return Err(WorkerError::HostGone);
    }
    let ctl = Ctl::open(&job.ctl).map_err(|source| WorkerError::CommandBlock {
        name: job.ctl.clone(),
        source,
    })?;
    let mut node = create(&job);
    let mut last = 0u32;
    // The counts of the topics the node's code uses on its own (a Python node's), as of the
    // last snapshot: asking the loader costs a GIL round, too much for every tick.
    let mut own = (0u64, 0u64, 0u64);
    loop {
        let Some((seq, cmd)) = ctl.wait_command(last, Duration::from_millis(200)) else {
            if !parent_alive() {
                return Ok(());
            }
            continue;
        };
        last = seq;
        let started = Instant::now();
        let result = match (&mut node, cmd) {
            (_, ctl::CMD_EXIT) => {
                drop(node);
                ctl.reply(seq, ctl::OK, started.elapsed(), "");
                return Ok(());
            }
            (Err(e), _) => Err(CallError {
                kind: e.kind,
                message: format!("create failed: {}", e.message),
            }),
            (Ok(inst), ctl::CMD_INIT) => inst.init(),
            (Ok(inst), ctl::CMD_TICK) => {
                // The tick's time, which the host put beside the command.
                let at = ctl.arg();
                match at.get(..8).and_then(|b| b.try_into().ok()) {
                    Some(b) => inst.tick_at(u64::from_le_bytes(b)),
                    None => inst.tick(),
                }
            }
            (Ok(inst), ctl::CMD_SHUTDOWN) => inst.shutdown(),
            (Ok(inst), ctl::CMD_RECREATE) => inst.recreate(),
            (Ok(inst), ctl::CMD_RELOAD) => reload(inst, &ctl.arg()),
            (Ok(inst), ctl::CMD_REBIND) => rebind(inst, &job, &ctl.arg()),
            (Ok(inst), ctl::CMD_SAVE) => save(inst, &ctl.arg()),
            (Ok(inst), ctl::CMD_RETAKE) => {
                inst.io_mut().take_over_outputs();
                Ok(())
            }
            (Ok(inst), ctl::CMD_LOGGING) => {
                inst.io().set_logging(ctl.arg().first().is_some_and(|&b| b != 0));
                Ok(())
            }
            (Ok(inst), ctl::CMD_RELOAD_COMMIT) => {
                if let Some(old) = inst.commit_reload() {
                    release(old);
                }
                Ok(())
            }
            (Ok(inst), ctl::CMD_RELOAD_ROLLBACK) => {
                if let Some(new) = inst.rollback_reload() {
                    release(new);
                }
                Ok(())
            }
            (Ok(inst), ctl::CMD_SNAPSHOT) => {
                let (all, topics) = inst.io_counts();
                let ports = inst.io().message_totals();
                own = (
                    all.0.saturating_sub(ports.0),
                    all.1.saturating_sub(ports.1),
                    all.2.saturating_sub(ports.2),
                );
                if let Ok(json) = serde_json::to_string(&topics) {
                    ctl.set_topic_stats_json(&json);
                }
                Ok(())
            }
            (Ok(_), other) => Err(CallError {
                kind: CallErrorKind::Error,
                message: format!("unknown command {other}"),
            }),
        };
        if let Ok(inst) = &node {
            let (sent, received, dropped) = inst.io().message_totals();
            ctl.set_counters(
                sent + own.0,
                received + own.1,
                dropped + own.2,
                inst.io().pending_input() as u64,
            );
        }
        let (status, error) = status_of(&result);
        ctl.reply(seq, status, started.elapsed(), &error);
    }
}

/// Hot reload in the worker: the node keeps its topic endpoints and cursors (they are the
/// worker's), and the new code, loaded from `arg` (a [`ReloadJob`]), is swapped in.
fn reload(inst: &mut NodeInstance, arg: &[u8]) -> Result<(), CallError> {
    let err = |message: String| CallError {
        kind: CallErrorKind::Error,
        message,
    };
    let job: ReloadJob = serde_json::from_slice(arg).map_err(|e| err(format!("bad reload command: {e}")))?;
    let lib = Arc::new(PluginLibrary::open(&job.plugin).map_err(|e| err(e.to_string()))?);
    let (type_index, node_type) = lib.node_type(&job.node_type).ok_or_else(|| {
        err(format!(
            "the new build has no node type `{}` (seen by the worker process)",
            job.node_type
        ))
    })?;
    let ports: Vec<(String, bool)> = node_type
        .ports
        .iter()
        .map(|p| (p.name.clone(), p.output))
        .collect();
    let config = match &job.config {
        Some(text) => Some(
            text.parse::<toml::Table>()
                .map_err(|e| err(format!("the new config: {e}")))?,
        ),
        None => None,
    };
    let arg = job.python.as_ref().map(|source| crate::ffi::ReloadArg {
        create: source.fresh_import().encode(),
        then: source.encode(),
    });
    inst.reload_with_config(lib.clone(), type_index, &ports, arg, config)
        .map(|_carried| ())
        .map_err(|(step, e)| CallError {
            kind: e.kind,
            message: format!("`{}` of the new code failed: {}", step.name(), e.message),
        })
}

/// A live apply's re-binding in the worker: the new endpoints are attached here (they are the
/// worker's, as at start), every one before any port changes, so a failure changes nothing.
/// An input whose topic moved to a new ring (`moved`) reads that ring from its first message
/// (the host held them for it, see [`crate::scheduler::Rebind::binding`]) once it has drained
/// the old one.
fn rebind(inst: &mut NodeInstance, job: &WorkerJob, arg: &[u8]) -> Result<(), CallError> {
    let err = |message: String| CallError {
        kind: CallErrorKind::Error,
        message,
    };
    let ports: Vec<(String, PortPlan, bool)> =
        serde_json::from_slice(arg).map_err(|e| err(format!("bad rebind command: {e}")))?;
    if let Some((port, _, _)) = ports.iter().find(|(p, _, _)| !inst.io().has_port(p)) {
        return Err(err(format!("the node has no port `{port}`")));
    }
    let scope = TopicScope::with(job.namespace.clone(), job.instance.clone());
    let plans: Vec<PortPlan> = ports.iter().map(|(_, plan, _)| plan.clone()).collect();
    let bindings = scope.bind(&plans).map_err(|(i, e)| {
        err(format!(
            "cannot attach port `{}` to its new topic: {e}",
            ports[i].0
        ))
    })?;
    for ((port, _, moved), mut binding) in ports.iter().zip(bindings) {
        if let (true, crate::io::PortBinding::Input(s)) = (*moved, &mut binding) {
            s.start_at(0);
        }
        inst.io_mut().rebind(port, binding, *moved);
    }
    Ok(())
}

/// Saves the node's state into the file the argument names (a live apply moving the node out
/// of this process): created new, owner-only; the host reads and removes it.
fn save(inst: &mut NodeInstance, arg: &[u8]) -> Result<(), CallError> {
    let err = |message: String| CallError {
        kind: CallErrorKind::Error,
        message,
    };
    let path = std::str::from_utf8(arg).map_err(|_| err("bad save command".into()))?;
    let state = inst.save_state()?;
    crate::scheduler::write_state(std::path::Path::new(path), &state)
        .map_err(|e| err(format!("cannot write the state to {path}: {e}")))
}

/// Drops a library hot reload replaced; says so if its copy stays mapped (pinned by a
/// thread-local destructor of this worker's thread: it lives as long as the worker process).
fn release(plugin: Arc<PluginLibrary>) {
    let copy = plugin.loaded_path().to_path_buf();
    let last = Arc::strong_count(&plugin) == 1;
    drop(plugin);
    if last && crate::reload::still_mapped(&copy) {
        tracing::warn!(
            copy = %copy.display(),
            "the replaced library stays mapped in the worker process (a thread-local destructor \
             pins it until the process ends)"
        );
    }
}

/// Loads the plugin, attaches the ports and creates the node; the error is reported to the host
/// as the reply to its first command.
fn create(job: &WorkerJob) -> Result<NodeInstance, CallError> {
    let err = |message: String| CallError {
        kind: CallErrorKind::Error,
        message,
    };
    let lib = Arc::new(PluginLibrary::open(&job.plugin).map_err(|e| err(e.to_string()))?);
    let (type_index, _) = lib
        .node_type(&job.node_type)
        .ok_or_else(|| err(format!("no node type `{}`", job.node_type)))?;
    let scope = TopicScope::with(job.namespace.clone(), job.instance.clone());
    // A node moving in takes its outputs' Links over from the endpoints the host still holds.
    let bound = match &job.moved {
        Some(_) => scope.bind_replacing(&job.ports),
        None => scope.bind(&job.ports),
    };
    let mut bindings = bound.map_err(|(port, e)| err(format!("port `{}`: {e}", job.port_names[port])))?;
    let cursors = job.moved.as_ref().map_or(&job.start, |moved| &moved.cursors);
    for (binding, cursor) in bindings.iter_mut().zip(cursors) {
        if let (crate::io::PortBinding::Input(sub), Some(cursor)) = (binding, cursor) {
            sub.start_at(*cursor);
        }
    }
    let config: toml::Table = job.config.parse().map_err(|e| err(format!("config: {e}")))?;
    let since_epoch = Duration::from_nanos(monotonic_ns().saturating_sub(job.epoch_monotonic_ns));
    let epoch = Instant::now()
        .checked_sub(since_epoch)
        .unwrap_or_else(Instant::now);
    let io = NodeIo::new(
        job.name.clone(),
        job.logging,
        config,
        job.port_names.clone(),
        bindings,
        epoch,
    );
    let mut node =
        NodeInstance::create_with_arg(lib, type_index, io, job.python.as_ref().map(PythonSource::encode))?;
    if let Some(moved) = &job.moved {
        let state = std::fs::read(&moved.state_file);
        let _ = std::fs::remove_file(&moved.state_file);
        let state = state.map_err(|e| {
            err(format!(
                "cannot read the moved node's state from {}: {e}",
                moved.state_file.display()
            ))
        })?;
        node.restore_state(&state).map_err(|e| CallError {
            kind: e.kind,
            message: format!("`restore_state` failed: {}", e.message),
        })?;
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_before() {
        let bad = serde_json::from_str::<WorkerJob>("{").unwrap_err();
        let text = format!("bad worker job: {bad}");
        assert_eq!(WorkerError::BadJob(bad).to_string(), text);
        assert_eq!(
            WorkerError::DeathSignal(rustix::io::Errno::PERM).to_string(),
            format!("PR_SET_PDEATHSIG: {}", rustix::io::Errno::PERM)
        );
        assert_eq!(WorkerError::HostGone.to_string(), "the host is gone");
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = format!("command block /horus.x.ctl: {missing}");
        let e = WorkerError::CommandBlock {
            name: "/horus.x.ctl".into(),
            source: missing,
        };
        assert_eq!(e.to_string(), text);
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn a_bad_job_is_refused() {
        assert!(matches!(run("not json"), Err(WorkerError::BadJob(_))));
    }
}
