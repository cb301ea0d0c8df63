//! The pyo3 side of HORUS, one library with two faces:
//! - the Python extension `horus._horus` (built by maturin into the `horus` package): the
//!   scheduler, hubs, node I/O and message classes that `horus/__init__.py` re-exports;
//! - the **loader plugin** (`horus_plugin_entry`, node type `PythonNode`): the `horus` host
//!   opens this same file to run the Python nodes of a manifest.
//!
//! Module map: [`node`] (Python nodes behind the ABI, node I/O), [`scheduler`], [`hub`],
//! [`topics`] (a Python endpoint of a shared-memory topic), [`codec`] (Python objects on the
//! wire), [`msgs`] (typed messages), [`image`] (`horus.Image`), [`embed`] (all `unsafe`: the embedded interpreter).

#[expect(
    unsafe_code,
    reason = "the embedded interpreter's set-up and per-thread state (CPython C API)"
)]
mod embed;

mod codec;
mod hub;
mod image;
mod msgs;
mod node;
mod scheduler;
mod topics;

use pyo3::prelude::*;

horus_plugin_api::export_plugin!(PythonNode);
use node::PythonNode;

/// Routes the runtime's log (tracing) to stderr once per process, filtered by `HORUS_LOG`
/// (default `warn`: failures, deadline misses, watchdog expiries, circuit transitions, a network
/// hub's lost peer; Zenoh's own lines only as errors, since the hub reports what matters).
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HORUS_LOG").unwrap_or_else(|_| EnvFilter::new("warn,zenoh=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

#[pymodule]
fn _horus(m: &Bound<'_, PyModule>) -> PyResult<()> {
    init_logging();
    m.add_class::<scheduler::Scheduler>()?;
    m.add_class::<scheduler::SchedulerConfig>()?;
    m.add_class::<node::NodeIo>()?;
    m.add_class::<node::NodeBase>()?;
    m.add_class::<hub::Hub>()?;
    m.add_class::<hub::Link>()?;
    m.add_class::<image::Image>()?;
    m.add_function(wrap_pyfunction!(hub::_close_global_hubs, m)?)?;
    m.add_function(wrap_pyfunction!(codec::_decode_payload, m)?)?;
    msgs::register(m)?;
    m.add("ABI_VERSION", horus_plugin_api::abi::ABI_VERSION)?;
    Ok(())
}
