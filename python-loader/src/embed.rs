//! All `unsafe` of the Python side: starting an interpreter inside the `horus` host (loader
//! face), keeping a Python thread state on the host's scheduler threads, reading this
//! library's own plugin entry in-process ([`loader_library`], package face), and exporting a
//! topic slot's memory to numpy through the buffer protocol ([`SlotMemory`]: received arrays
//! that view the slot, loaned arrays written in place).
//!
//! # Rationale (measured facts in the design notes)
//! - The host opens libpython with `RTLD_GLOBAL` before it opens this library
//!   (`PluginLibrary::open_resident`), so C extension modules (numpy, `math`) find the
//!   interpreter's symbols.
//! - The interpreter is started "as if launched as" the environment's `python` (PyConfig's
//!   `program_name`), so a virtual environment's `pyvenv.cfg` and site-packages apply and
//!   `sys.executable` is right.
//! - A thread without a Python thread state pays for creating and destroying one on every
//!   `Python::attach` (~8 µs). Scheduler threads get one that lives as long as the thread.
//!
//! # Invariants
//! - INVARIANT: [`pin_thread`] and [`ensure_interpreter`] are only called on threads that do not
//!   hold the GIL (the node entry points call them before `Python::attach`).
//! - INVARIANT: the interpreter is never finalized by this library; the library is never
//!   unloaded (pyo3's caches point into it).

use crate::node::PythonNode;
use horus_host::ffi::{LoadError, PluginLibrary};
use horus_host::python::PythonSource;
use horus_plugin_api::abi::{ByteSink, NodeContext, RawSlice};
use horus_plugin_api::NodeError;
use pyo3::ffi;
use std::cell::RefCell;
use std::ffi::c_void;
use std::ffi::CString;
use std::sync::Mutex;

/// This thread's Python thread state, kept from its first Python call to its exit.
struct Pinned {
    gil: ffi::PyGILState_STATE,
    saved: *mut ffi::PyThreadState,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: runs at this thread's exit, on the thread that pinned (thread-local). The
        // GIL is not held here (pinning released it and every `attach` since has returned);
        // restoring our saved state re-acquires it and the matching release frees the state.
        // Skipped once the interpreter is gone.
        unsafe {
            if ffi::Py_IsInitialized() != 0 {
                ffi::PyEval_RestoreThread(self.saved);
                ffi::PyGILState_Release(self.gil);
            }
        }
    }
}

thread_local! {
    static PINNED: RefCell<Option<Pinned>> = const { RefCell::new(None) };
}

/// Gives the calling thread a Python thread state for the rest of its life, so each later
/// `Python::attach` on it only takes the GIL. Cheap after the first call.
pub fn pin_thread() {
    PINNED.with(|p| {
        if p.borrow().is_some() {
            return;
        }
        // SAFETY: the interpreter is initialized (checked by the caller's create path) and this
        // thread does not hold the GIL (module invariant). Ensure creates this thread's state
        // and takes the GIL; SaveThread releases the GIL but keeps the state current for
        // `PyGILState_*`, which is what later `attach` calls find.
        let pinned = unsafe {
            let gil = ffi::PyGILState_Ensure();
            let saved = ffi::PyEval_SaveThread();
            Pinned { gil, saved }
        };
        *p.borrow_mut() = Some(pinned);
    });
}

unsafe extern "C" {
    /// This library's own plugin entry (defined by `export_plugin!` in `lib.rs`).
    safe fn horus_plugin_entry() -> *const horus_plugin_api::abi::PluginHeader;
}

/// The loader's entry, for running Python nodes in this process (`PluginLibrary::builtin`).
const LOADER_ENTRY: horus_plugin_api::abi::EntryFn = {
    /// # Safety
    /// None needed: it only returns the address of this library's static header. It is an
    /// `unsafe extern "C" fn` because that is the ABI's `EntryFn` type.
    unsafe extern "C" fn entry() -> *const horus_plugin_api::abi::PluginHeader {
        horus_plugin_entry()
    }
    entry
};

/// The loader's node types as a plugin linked into this process, for running Python nodes under
/// a `horus.Scheduler` (the package face). `label` names it in errors and stats.
pub fn loader_library(label: &std::path::Path) -> Result<PluginLibrary, LoadError> {
    // SAFETY: `LOADER_ENTRY` is this library's own `horus_plugin_entry`, emitted by
    // `export_plugin!` in `lib.rs`, so it returns a valid static header. This library is never
    // unloaded (module invariant), so the entry points the descriptor copies stay valid.
    unsafe {
        PluginLibrary::builtin(
            LOADER_ENTRY,
            Some(horus_loader_create_v1),
            Some(horus_loader_io_stats_v1),
            label,
        )
    }
}

/// The loader's create entry that takes an argument (`horus_host::ffi::CreateWithArgFn`): the
/// host hands a `PythonNode` its [`PythonSource`] here — which object, or which file and class —
/// so the node's `config` stays the user's table. The object it makes is a `PythonNode` of the
/// SDK's own layout, which every entry of the `PythonNode` vtable accepts.
///
/// # Safety
/// As a vtable's `create` (valid `ctx` for the call, writable `out`, a valid `err` sink), and
/// `node_type` and `arg` point at `len` readable bytes each for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn horus_loader_create_v1(
    node_type: RawSlice,
    ctx: *const NodeContext,
    arg: RawSlice,
    out: *mut *mut c_void,
    err: ByteSink,
) -> i32 {
    // SAFETY: the caller's contract: both slices are readable for the call (`len` 0 may come
    // with a dangling pointer, which `from_raw_parts` accepts when non-null and aligned).
    let (node_type, arg) = unsafe { (bytes(node_type), bytes(arg)) };
    // SAFETY: forwarded contract of a vtable's `create`.
    unsafe {
        horus_plugin_api::export::create_with::<PythonNode>(ctx, out, err, |cx| {
            if node_type != crate::node::NODE_TYPE.as_bytes() {
                return Err(NodeError::new(format!(
                    "the Python loader makes `{}` nodes, not `{}`",
                    crate::node::NODE_TYPE,
                    String::from_utf8_lossy(node_type)
                )));
            }
            let source = PythonSource::decode(arg).map_err(|e| {
                NodeError::new(format!("the host sent an unreadable Python node source: {e}"))
            })?;
            PythonNode::create_from(cx, &source).map(|node| node.made_with(ctx as usize))
        })
    }
}

/// The loader's report of the topics a Python node uses on its own
/// (`horus_host::ffi::IoStatsFn`): the node's named topics (`self.send("demo/attitude", …)`)
/// never pass through the host's ports, so without it the stats show a Python node sending and
/// receiving nothing. Writes JSON of the node's `horus_host::io::TopicStats` to `out`.
///
/// # Safety
/// `out` is a valid sink for the call. `ctx` is only compared with the contexts the loader's
/// create entry was given, never read.
#[no_mangle]
pub unsafe extern "C" fn horus_loader_io_stats_v1(ctx: *const NodeContext, out: ByteSink) -> i32 {
    // Nothing may unwind into the host: a panic (a poisoned lock, say) is no report.
    let report = std::panic::catch_unwind(|| crate::node::io_stats_json(ctx as usize));
    let Ok(Some(json)) = report else {
        return horus_plugin_api::abi::STATUS_ERROR;
    };
    // SAFETY: the caller's contract: `out` is a valid sink, which copies the bytes during the
    // call.
    unsafe { (out.write)(out.sink, json.as_ptr(), json.len()) };
    horus_plugin_api::abi::STATUS_OK
}

/// The bytes of `s`.
///
/// # Safety
/// `s.ptr` points at `s.len` readable bytes that outlive the returned slice, or `s.len` is 0.
unsafe fn bytes<'a>(s: RawSlice) -> &'a [u8] {
    if s.len == 0 || s.ptr.is_null() {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(s.ptr, s.len) }
}

static INIT: Mutex<()> = Mutex::new(());

/// Why [`ensure_interpreter`] could not start the embedded interpreter.
#[derive(Debug, thiserror::Error)]
pub enum InterpreterError {
    /// The interpreter's path cannot be a C string.
    #[error("the Python path `{program}` contains a NUL byte")]
    NulInProgram {
        /// The path as given (the node's `program`).
        program: String,
    },
    /// CPython refused `program` as the program name.
    #[error("cannot set the interpreter's program name{}", status_suffix(.status))]
    ProgramName {
        /// CPython's `PyStatus` message, if it gave one.
        status: Option<String>,
    },
    /// `Py_InitializeFromConfig` failed.
    #[error("cannot start the Python interpreter{}", status_suffix(.status))]
    Initialize {
        /// CPython's `PyStatus` message, if it gave one.
        status: Option<String>,
    },
}

/// `": <message>"`, or nothing when CPython gave no message.
fn status_suffix(status: &Option<String>) -> String {
    status.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
}

/// Starts the interpreter if this process has none yet (the `horus` host running a Python
/// node), as if `program` (an environment's `python`) had been launched. In a Python process
/// (the package face) the interpreter exists and this does nothing.
pub fn ensure_interpreter(program: Option<&str>) -> Result<(), InterpreterError> {
    let _guard = INIT.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: a read-only query, valid before and after initialization.
    if unsafe { ffi::Py_IsInitialized() } != 0 {
        return Ok(());
    }
    let program = program
        .map(|p| {
            CString::new(p).map_err(|_| InterpreterError::NulInProgram {
                program: p.to_owned(),
            })
        })
        .transpose()?;
    // SAFETY: the documented PyConfig sequence: a zeroed config initialised by
    // `PyConfig_InitPythonConfig`, one string field set through the API, initialisation, and
    // `PyConfig_Clear` in every path. Done once per process (under INIT, after the check above),
    // on a thread without the GIL. `PyEval_SaveThread` then releases the GIL the initialising
    // thread holds, as pyo3's own initialisation does, keeping that thread's state.
    unsafe {
        let mut config: ffi::PyConfig = std::mem::zeroed();
        ffi::PyConfig_InitPythonConfig(&mut config);
        // Signals stay the host's: its SIGINT handler stops the run.
        config.install_signal_handlers = 0;
        if let Some(program) = &program {
            let status =
                ffi::PyConfig_SetBytesString(&mut config, &mut config.program_name, program.as_ptr());
            if ffi::PyStatus_Exception(status) != 0 {
                ffi::PyConfig_Clear(&mut config);
                return Err(InterpreterError::ProgramName {
                    status: status_message(status),
                });
            }
        }
        let status = ffi::Py_InitializeFromConfig(&config);
        ffi::PyConfig_Clear(&mut config);
        if ffi::PyStatus_Exception(status) != 0 {
            return Err(InterpreterError::Initialize {
                status: status_message(status),
            });
        }
        let saved = ffi::PyEval_SaveThread();
        // This thread now has the interpreter's main thread state: keep it pinned (it is
        // released at thread exit like any pinned state).
        let gil = ffi::PyGILState_STATE::PyGILState_UNLOCKED;
        PINNED.with(|p| *p.borrow_mut() = Some(Pinned { gil, saved }));
    }
    Ok(())
}

/// The message of a failed `PyStatus`, if it has one.
fn status_message(status: ffi::PyStatus) -> Option<String> {
    if status.err_msg.is_null() {
        return None;
    }
    // SAFETY: a non-null `err_msg` of a PyStatus is a static NUL-terminated C string.
    let msg = unsafe { std::ffi::CStr::from_ptr(status.err_msg) };
    Some(msg.to_string_lossy().into_owned())
}

/// The bytes of a C-contiguous buffer `buf` exports (a numpy array's data, for a send that
/// copies it straight into a topic's slot).
pub fn buffer_bytes(buf: &pyo3::buffer::PyBuffer<u8>) -> &[u8] {
    assert!(buf.is_c_contiguous(), "a C-contiguous buffer");
    // SAFETY: the buffer stays exported (its memory alive) while `buf` lives, which bounds
    // the slice's lifetime; it is C-contiguous (checked), so its `len_bytes` bytes from `buf_ptr` are one
    // readable block. Another thread may write the array meanwhile (numpy releases the GIL),
    // as with any copy of a live array: the bytes are plain data and a torn copy is that
    // thread's race, not invalid memory.
    unsafe { std::slice::from_raw_parts(buf.buf_ptr().cast::<u8>(), buf.len_bytes()) }
}

/// The writable bytes of a C-contiguous buffer `buf` exports: a numpy array this library has
/// just created, which a received message is copied into.
pub fn buffer_bytes_mut(buf: &mut pyo3::buffer::PyBuffer<u8>) -> &mut [u8] {
    assert!(
        buf.is_c_contiguous() && !buf.readonly(),
        "a writable C-contiguous buffer"
    );
    // SAFETY: as in `buffer_bytes`, and writable (checked). Only called on an array created
    // by the caller and not yet handed to Python code, so no other reference to its memory
    // exists while the slice lives.
    unsafe { std::slice::from_raw_parts_mut(buf.buf_ptr().cast::<u8>(), buf.len_bytes()) }
}

/// A topic slot's memory lent to Python through the buffer protocol, so a numpy array can live
/// in it with no copy (`numpy.frombuffer`): a message held in place (read-only; its pin is
/// released when this object is garbage-collected, i.e. when the last array over it is) or a
/// loaned slot being written (writable until it is sent, [`SlotMemory::seal`]). Either way it
/// keeps the topic's mapping alive, so an array outliving its hub never points at unmapped
/// memory.
#[pyo3::pyclass(module = "horus", name = "SlotMemory", frozen)]
pub struct SlotMemory {
    _owner: SlotOwner,
    ptr: SlotPtr,
    /// The exported length (an `isize` field, so the buffer's `shape` can point at it).
    len: isize,
    writable: std::sync::atomic::AtomicBool,
}

enum SlotOwner {
    Held(#[allow(dead_code, reason = "held for its Drop: the pin")] horus_host::shm::Pinned),
    Loaned(
        #[allow(dead_code, reason = "held for its Drop: the mapping")]
        std::sync::Arc<horus_host::shm::Segment>,
    ),
}

/// The slot memory's address.
struct SlotPtr(*mut u8);

// SAFETY: the pointer is into a shared mapping that the same `SlotMemory` keeps alive (its
// owner); it is only dereferenced by buffer consumers, under the GIL, as any Python buffer is.
unsafe impl Send for SlotPtr {}
// SAFETY: as above; `SlotMemory` is frozen, the pointer never changes.
unsafe impl Sync for SlotPtr {}

/// The buffer's stride: one byte.
static BYTE_STRIDE: isize = 1;

impl SlotMemory {
    /// The bytes `offset..` of a message held in place, read-only.
    pub fn held(pinned: horus_host::shm::Pinned, offset: usize) -> SlotMemory {
        let bytes = pinned.bytes();
        let offset = offset.min(bytes.len());
        let (ptr, len) = (bytes[offset..].as_ptr().cast_mut(), bytes.len() - offset);
        SlotMemory {
            _owner: SlotOwner::Held(pinned),
            ptr: SlotPtr(ptr),
            len: len as isize,
            writable: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The bytes `offset..offset + len` of `publisher`'s open loan, writable; `None` without a
    /// loan or when they do not fit its slot.
    pub fn loaned(
        publisher: &mut horus_host::shm::Publisher,
        offset: usize,
        len: usize,
    ) -> Option<SlotMemory> {
        let mapping = publisher.mapping();
        let bytes = publisher.loan_bytes()?;
        let data = bytes.get_mut(offset..offset.checked_add(len)?)?;
        Some(SlotMemory {
            _owner: SlotOwner::Loaned(mapping),
            ptr: SlotPtr(data.as_mut_ptr()),
            len: len as isize,
            writable: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// Refuses writable exports from now on (the loan was sent: its slot is a published
    /// message).
    pub fn seal(&self) {
        self.writable.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

#[pyo3::pymethods]
impl SlotMemory {
    /// The buffer protocol: one-dimensional bytes (`B`), read-only unless a writable loan.
    ///
    /// # Safety
    /// Called by CPython with a `Py_buffer` to fill (or null).
    unsafe fn __getbuffer__(
        slf: pyo3::Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: std::ffi::c_int,
    ) -> pyo3::PyResult<()> {
        use pyo3::exceptions::PyBufferError;
        if view.is_null() {
            return Err(PyBufferError::new_err("no buffer to fill"));
        }
        let this = slf.get();
        let writable = this.writable.load(std::sync::atomic::Ordering::Relaxed);
        if flags & ffi::PyBUF_WRITABLE != 0 && !writable {
            return Err(PyBufferError::new_err(
                "this message lives in a topic's shared memory and is read-only (copy it to change it)",
            ));
        }
        let (ptr, len) = (this.ptr.0, &this.len as *const isize);
        // SAFETY: `view` is a valid `Py_buffer` to fill (CPython's contract, null checked).
        // `obj` takes a new reference to this object, which keeps the memory (its owner) alive
        // until the consumer releases the buffer. `shape` points at our frozen `len` field and
        // `strides` at a static, both alive as long as the exporter; `format` is a static C
        // string; nothing is allocated, so no `__releasebuffer__` is needed.
        unsafe {
            (*view).obj = slf.into_any().into_ptr();
            (*view).buf = ptr.cast();
            (*view).len = *len;
            (*view).readonly = std::ffi::c_int::from(!writable);
            (*view).itemsize = 1;
            (*view).format = if flags & ffi::PyBUF_FORMAT != 0 {
                c"B".as_ptr().cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).ndim = 1;
            (*view).shape = if flags & ffi::PyBUF_ND != 0 {
                len.cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
                (&BYTE_STRIDE as *const isize).cast_mut()
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
        }
        Ok(())
    }
}
