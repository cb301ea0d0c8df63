//! The host's function table ([`HOST_API`]) handed to every node: thin `extern "C"` shims over
//! [`NodeIo`] methods.
//!
//! Every shim takes the `host` pointer of a [`horus_plugin_api::abi::NodeContext`], which
//! [`super::NodeInstance`] sets to its own boxed [`NodeIo`]. None of them panics across the
//! boundary: the work they do cannot panic short of allocation failure, which aborts.

use crate::io::{ConfigLookup, NodeIo};
use horus_plugin_api::abi::{self, ConfigValue, HostApi, RawSlice};
use std::ffi::c_void;

/// # Safety
/// `host` must be the `NodeIo` pointer of a live `NodeInstance`, which is only ever passed to a
/// plugin during a call made by that instance on the thread that owns it; no other reference to
/// the `NodeIo` is live during that call.
unsafe fn io<'a>(host: *mut c_void) -> &'a mut NodeIo {
    // SAFETY: see the function's contract.
    unsafe { &mut *host.cast::<NodeIo>() }
}

/// # Safety
/// `s` must point at `s.len` readable bytes for the duration of the call (ABI contract).
unsafe fn bytes<'a>(s: RawSlice) -> &'a [u8] {
    if s.len == 0 || s.ptr.is_null() {
        return &[];
    }
    // SAFETY: see the function's contract.
    unsafe { std::slice::from_raw_parts(s.ptr, s.len) }
}

/// # Safety
/// `host` as for [`io`]. The returned slice lives as long as the node.
unsafe extern "C" fn node_name(host: *mut c_void) -> RawSlice {
    // SAFETY: `host` is valid (ABI contract, see `io`); the name lives as long as the node.
    RawSlice::from_str(unsafe { io(host) }.name())
}

/// # Safety
/// `host` as for [`io`].
unsafe extern "C" fn now_ns(host: *mut c_void) -> u64 {
    // SAFETY: `host` is valid (see `io`).
    unsafe { io(host) }.now_ns()
}

/// # Safety
/// `host` as for [`io`]; `msg` as for [`bytes`].
unsafe extern "C" fn log(host: *mut c_void, level: u32, msg: RawSlice) {
    // SAFETY: `host` is valid (see `io`); `msg` is valid for the call (ABI contract).
    let (io, msg) = unsafe { (io(host), bytes(msg)) };
    io.log(level, &String::from_utf8_lossy(msg));
}

/// # Safety
/// `host` as for [`io`]; `key` as for [`bytes`]; `out` is null or points at a writable
/// `ConfigValue`. Strings written to `out` live as long as the node.
unsafe extern "C" fn config_get(host: *mut c_void, key: RawSlice, out: *mut ConfigValue) {
    if out.is_null() {
        return;
    }
    // SAFETY: `host` is valid (see `io`); `key` is valid for the call (ABI contract).
    let (io, key) = unsafe { (io(host), bytes(key)) };
    let key = String::from_utf8_lossy(key);
    let mut value = ConfigValue {
        kind: abi::CONFIG_MISSING,
        reserved: 0,
        int: 0,
        float: 0.0,
        text: RawSlice::EMPTY,
    };
    match io.config_get(&key) {
        ConfigLookup::Missing => {}
        ConfigLookup::Bool(b) => {
            value.kind = abi::CONFIG_BOOL;
            value.int = b.into();
        }
        ConfigLookup::Int(i) => {
            value.kind = abi::CONFIG_INT;
            value.int = i;
            value.float = i as f64;
        }
        ConfigLookup::Float(f) => {
            value.kind = abi::CONFIG_FLOAT;
            value.float = f;
        }
        ConfigLookup::Str(s) => {
            value.kind = abi::CONFIG_STRING;
            value.text = RawSlice::from_str(s);
        }
        ConfigLookup::Other(s) => {
            value.kind = abi::CONFIG_OTHER;
            value.text = RawSlice::from_str(s);
        }
    }
    // SAFETY: `out` is non-null (checked) and points at a `ConfigValue` the plugin owns for the
    // call (ABI contract). Config strings live as long as the node's `NodeIo`.
    unsafe { out.write(value) };
}

/// # Safety
/// `host` as for [`io`]. The returned slice lives as long as the node.
unsafe extern "C" fn config_toml(host: *mut c_void) -> RawSlice {
    // SAFETY: `host` is valid (see `io`); the text lives as long as the node.
    RawSlice::from_str(unsafe { io(host) }.config_toml())
}

/// # Safety
/// `host` as for [`io`]; `ptr` points at `len` readable bytes for the call (or `len` is 0).
unsafe extern "C" fn send(host: *mut c_void, port: u32, ptr: *const u8, len: usize) -> i32 {
    // SAFETY: `host` is valid (see `io`); `ptr` points at `len` bytes for the call.
    let (io, msg) = unsafe { (io(host), bytes(RawSlice { ptr, len })) };
    io.send(port, msg)
}

/// # Safety
/// `host` as for [`io`]; `out` is null or points at a writable `RawSlice`. The bytes written
/// there stay valid until the node's next `recv`.
unsafe extern "C" fn recv(host: *mut c_void, port: u32, out: *mut RawSlice) -> i32 {
    if out.is_null() {
        return abi::RECV_BAD_PORT;
    }
    // SAFETY: `host` is valid (see `io`).
    let io = unsafe { io(host) };
    let (code, slice) = match io.recv(port) {
        Ok(Some(msg)) => (abi::RECV_MESSAGE, RawSlice::from_bytes(msg)),
        Ok(None) => (abi::RECV_EMPTY, RawSlice::EMPTY),
        Err(code) => (code, RawSlice::EMPTY),
    };
    // SAFETY: `out` is non-null (checked) and writable for the call (ABI contract). The bytes
    // stay in `NodeIo`'s receive buffer until its next `recv`.
    unsafe { out.write(slice) };
    code
}

/// # Safety
/// `host` as for [`io`]; `out` is null or points at a writable `RawSlice`. The memory written
/// there stays valid until the node closes the loan (or its call returns).
unsafe extern "C" fn loan(host: *mut c_void, port: u32, len: usize, out: *mut RawSlice) -> i32 {
    if out.is_null() {
        return abi::SEND_BAD_PORT;
    }
    // SAFETY: `host` is valid (see `io`).
    let io = unsafe { io(host) };
    let (code, slice) = match io.loan(port, len) {
        Ok(bytes) => (abi::SEND_OK, RawSlice::from_bytes(bytes)),
        Err(code) => (code, RawSlice::EMPTY),
    };
    // SAFETY: `out` is non-null (checked) and writable for the call (ABI contract). The loaned
    // memory is the port's open slot (or idle buffer), which stays until the loan is closed.
    unsafe { out.write(slice) };
    code
}

/// # Safety
/// `host` as for [`io`].
unsafe extern "C" fn close_loan(host: *mut c_void, port: u32, len: usize) -> i32 {
    // SAFETY: `host` is valid (see `io`).
    unsafe { io(host) }.close_loan(port, len)
}

/// # Safety
/// `host` as for [`io`]; `out` and `pin` are null or point at a writable `RawSlice` and
/// `u64`. The bytes written to `out` stay valid until `release_ref` of the handle.
unsafe extern "C" fn recv_ref(host: *mut c_void, port: u32, out: *mut RawSlice, pin: *mut u64) -> i32 {
    if out.is_null() || pin.is_null() {
        return abi::RECV_BAD_PORT;
    }
    // SAFETY: `host` is valid (see `io`).
    let io = unsafe { io(host) };
    let (code, slice, handle) = match io.recv_ref(port) {
        Ok(Some((msg, handle))) => (abi::RECV_MESSAGE, RawSlice::from_bytes(msg), handle),
        Ok(None) => (abi::RECV_EMPTY, RawSlice::EMPTY, 0),
        Err(code) => (code, RawSlice::EMPTY, 0),
    };
    // SAFETY: both are non-null (checked) and writable for the call (ABI contract). The bytes
    // are a pinned slot (or a held copy) that `NodeIo` keeps until the handle is released.
    unsafe {
        out.write(slice);
        pin.write(handle);
    }
    code
}

/// # Safety
/// `host` as for [`io`].
unsafe extern "C" fn release_ref(host: *mut c_void, pin: u64) {
    // SAFETY: `host` is valid (see `io`).
    unsafe { io(host) }.release_ref(pin)
}

/// The function table every node's context points at.
pub static HOST_API: HostApi = HostApi {
    node_name,
    now_ns,
    log,
    config_get,
    config_toml,
    send,
    recv,
    loan,
    close_loan,
    recv_ref,
    release_ref,
};
