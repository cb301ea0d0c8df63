//! The plugin side of the ABI: generic `extern "C"` entry points and the
//! [`export_plugin!`](crate::export_plugin) macro that puts them into a plugin's static tables.
//!
//! Owns panic containment (every entry runs inside [`guard`]) and the node object's box. It does
//! not own the Node trait ([`crate::node`]) or anything the host does with the tables.

use crate::abi::{
    self, ByteSink, ConfigValue, NodeContext, NodeVTable, PluginDescriptor, PluginHeader, RawSlice,
};
use crate::config::{ConfigDefault, ConfigKey};
use crate::message::Port;
use crate::node::{port_descs, Context, Node, NodeError};
use std::any::Any;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, Once};

/// Makes a static table of raw pointers shareable. Used only for the plugin's immutable
/// `'static` descriptor tables.
#[repr(transparent)]
pub struct Shared<T>(pub T);

// SAFETY: `Shared` wraps only the plugin's descriptor tables, which are built in `static`
// initialisers, never mutated, and point only at other `'static` data.
unsafe impl<T> Sync for Shared<T> {}

/// A node object as the host holds it: the user's node plus the SDK's per-node scratch buffer.
/// The buffer lives here rather than in a thread-local because thread-locals with destructors
/// pin a plugin library in memory (see the host's unload rules).
struct Instance<N> {
    node: N,
    scratch: Vec<u8>,
}

/// The location of the last panic in this plugin, recorded by our panic hook so the error
/// message sent to the host says where the node panicked.
static LAST_PANIC_LOCATION: Mutex<Option<String>> = Mutex::new(None);
static HOOK: Once = Once::new();

/// Replaces this plugin's default panic output (an unstructured line on stderr) by recording the
/// location; the host logs the panic with the node's name instead.
fn install_panic_hook() {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            if let Some(loc) = info.location() {
                if let Ok(mut slot) = LAST_PANIC_LOCATION.lock() {
                    *slot = Some(format!("{}:{}:{}", loc.file(), loc.line(), loc.column()));
                }
            }
        }));
    });
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    };
    let location = LAST_PANIC_LOCATION.lock().ok().and_then(|mut slot| slot.take());
    match location {
        Some(loc) => format!("panicked at {loc}: {text}"),
        None => format!("panicked: {text}"),
    }
}

/// Writes `text` into the host's sink.
///
/// # Safety
/// `sink` must be a valid sink from the host for the current call.
unsafe fn write_sink(sink: ByteSink, bytes: &[u8]) {
    // SAFETY: guaranteed by the caller; the host copies the bytes during the call.
    unsafe { (sink.write)(sink.sink, bytes.as_ptr(), bytes.len()) }
}

/// Runs `f`, turning its error or panic into a status code and a message in `err`. Nothing
/// unwinds past this function.
///
/// # Safety
/// `err` must be a valid sink from the host for the current call.
#[inline(always)]
unsafe fn guard(err: ByteSink, f: impl FnOnce() -> Result<(), NodeError>) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => abi::STATUS_OK,
        Ok(Err(e)) => {
            // SAFETY: forwarded from the caller.
            unsafe { write_sink(err, e.message().as_bytes()) };
            abi::STATUS_ERROR
        }
        Err(payload) => {
            // Formatting the message can itself panic only on allocation failure, which aborts.
            let msg = panic_message(payload.as_ref());
            // SAFETY: forwarded from the caller.
            unsafe { write_sink(err, msg.as_bytes()) };
            abi::STATUS_PANIC
        }
    }
}

/// # Safety
/// `ctx` must be a valid host context for the duration of the call; `out` must be writable.
unsafe extern "C" fn create<N: Node>(ctx: *const NodeContext, out: *mut *mut c_void, err: ByteSink) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { create_with::<N>(ctx, out, err, N::create) }
}

/// Creates a node object of type `N` with `make` instead of [`Node::create`]; the object is one
/// the entries of [`vtable::<N>`](vtable) accept. For a plugin that exports a create entry of its
/// own, taking more than the context (the Python loader's, which is handed the node's source);
/// ordinary plugins never need it.
///
/// # Safety
/// As a vtable's `create`: `ctx` must be a valid host context for the duration of the call,
/// `out` writable, and `err` a valid sink from the host for the call.
pub unsafe fn create_with<N: Node>(
    ctx: *const NodeContext,
    out: *mut *mut c_void,
    err: ByteSink,
    make: impl FnOnce(&mut Context<'_>) -> Result<N, NodeError>,
) -> i32 {
    install_panic_hook();
    // SAFETY: the caller passes a valid sink.
    unsafe {
        guard(err, || {
            let mut scratch = Vec::new();
            // SAFETY: the caller guarantees `ctx` is valid for this call.
            let mut cx = Context::new(&*ctx, N::PORTS, N::CONFIG, &mut scratch);
            let node = make(&mut cx)?;
            let obj = Box::into_raw(Box::new(Instance { node, scratch }));
            *out = obj.cast::<c_void>();
            Ok(())
        })
    }
}

/// Calls `f` on the node behind `obj` with a fresh context.
///
/// # Safety
/// `obj` must come from `create::<N>` and not be destroyed; `ctx` and `err` must be valid for
/// the call; the host never calls two entries of one object at once.
#[inline(always)]
unsafe fn with_node<N: Node>(
    obj: *mut c_void,
    ctx: *const NodeContext,
    err: ByteSink,
    f: impl FnOnce(&mut N, &mut Context<'_>) -> Result<(), NodeError>,
) -> i32 {
    // SAFETY: see the function's contract.
    unsafe {
        guard(err, || {
            let inst = &mut *obj.cast::<Instance<N>>();
            let mut cx = Context::new(&*ctx, N::PORTS, N::CONFIG, &mut inst.scratch);
            f(&mut inst.node, &mut cx)
        })
    }
}

/// # Safety
/// As [`with_node`].
unsafe extern "C" fn init<N: Node>(obj: *mut c_void, ctx: *const NodeContext, err: ByteSink) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { with_node::<N>(obj, ctx, err, |n, cx| n.init(cx)) }
}

/// # Safety
/// As [`with_node`].
unsafe extern "C" fn tick<N: Node>(obj: *mut c_void, ctx: *const NodeContext, err: ByteSink) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { with_node::<N>(obj, ctx, err, |n, cx| n.tick(cx)) }
}

/// # Safety
/// As [`with_node`].
unsafe extern "C" fn shutdown<N: Node>(obj: *mut c_void, ctx: *const NodeContext, err: ByteSink) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { with_node::<N>(obj, ctx, err, |n, cx| n.shutdown(cx)) }
}

/// # Safety
/// `obj` must come from `create::<N>` and not be used again afterwards.
unsafe extern "C" fn destroy<N: Node>(obj: *mut c_void, err: ByteSink) -> i32 {
    // SAFETY: the object was boxed by `create::<N>`; the host never uses it after this call.
    unsafe {
        guard(err, || {
            drop(Box::from_raw(obj.cast::<Instance<N>>()));
            Ok(())
        })
    }
}

/// # Safety
/// `obj` from `create::<N>`, not destroyed; `state` and `err` valid sinks for the call.
unsafe extern "C" fn save_state<N: Node>(obj: *mut c_void, state: ByteSink, err: ByteSink) -> i32 {
    // SAFETY: see the function's contract.
    unsafe {
        guard(err, || {
            let inst = &*obj.cast::<Instance<N>>();
            let bytes = inst.node.save_state()?;
            write_sink(state, &bytes);
            Ok(())
        })
    }
}

/// # Safety
/// `obj` from `create::<N>`, not destroyed; `state` points at `state.len` readable bytes.
unsafe extern "C" fn restore_state<N: Node>(obj: *mut c_void, state: RawSlice, err: ByteSink) -> i32 {
    // SAFETY: see the function's contract.
    unsafe {
        guard(err, || {
            let inst = &mut *obj.cast::<Instance<N>>();
            let bytes = if state.len == 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts(state.ptr, state.len)
            };
            inst.node.restore_state(bytes)
        })
    }
}

/// The vtable of node type `N`, named `type_name`. Used by [`export_plugin!`](crate::export_plugin).
pub const fn vtable<N: Node>(type_name: &'static str) -> NodeVTable {
    let ports: &'static [Port] = N::PORTS;
    let config: &'static [ConfigKey] = N::CONFIG;
    NodeVTable {
        type_name: RawSlice::from_str(type_name),
        ports: ports.as_ptr().cast(),
        port_count: ports.len(),
        // Null: no schema, the host does not check the node's `config`. `ConfigKey` is
        // `#[repr(transparent)]` over `ConfigKeyDesc`, so the slice is one of descriptors.
        config_keys: if N::CONFIG_CHECKED {
            config.as_ptr().cast()
        } else {
            std::ptr::null()
        },
        config_key_count: if N::CONFIG_CHECKED { config.len() } else { 0 },
        create: create::<N>,
        init: init::<N>,
        tick: tick::<N>,
        shutdown: shutdown::<N>,
        destroy: destroy::<N>,
        save_state: save_state::<N>,
        restore_state: restore_state::<N>,
    }
}

/// A plugin descriptor over a static table of vtables.
pub const fn descriptor(
    name: &'static str,
    version: &'static str,
    types: &'static [NodeVTable],
) -> PluginDescriptor {
    PluginDescriptor {
        plugin_name: RawSlice::from_str(name),
        plugin_version: RawSlice::from_str(version),
        node_types: types.as_ptr(),
        node_type_count: types.len(),
    }
}

/// The header for a descriptor, stamped with this crate's ABI version and layout hash.
pub const fn header(descriptor: &'static PluginDescriptor) -> PluginHeader {
    header_with(descriptor, abi::ABI_VERSION, abi::LAYOUT_HASH)
}

/// A header with explicit version and hash. Only for fault-injection plugins that prove the
/// host refuses a mismatch; a real plugin uses [`header`].
#[doc(hidden)]
pub const fn header_with(
    descriptor: &'static PluginDescriptor,
    abi_version: u32,
    layout_hash: u64,
) -> PluginHeader {
    PluginHeader {
        magic: abi::PLUGIN_MAGIC,
        abi_version,
        reserved: 0,
        layout_hash,
        descriptor,
    }
}

/// Checks at compile time that port names are unique per direction within a node type.
pub const fn ports_are_unique(ports: &[Port]) -> bool {
    let descs = ports;
    let mut i = 0;
    while i < descs.len() {
        let mut j = i + 1;
        while j < descs.len() {
            let a = descs[i].0;
            let b = descs[j].0;
            if a.direction == b.direction && raw_eq(a.name, b.name) {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

/// Whether two slices made from `&'static str`s (port and config key names) hold equal bytes.
pub(crate) const fn raw_eq(a: RawSlice, b: RawSlice) -> bool {
    if a.len != b.len {
        return false;
    }
    let mut i = 0;
    while i < a.len {
        // SAFETY: port and config key names come from `&'static str` (see `Port::new` and
        // `ConfigKey::new`), so both slices point at `len` readable bytes.
        if unsafe { *a.ptr.add(i) != *b.ptr.add(i) } {
            return false;
        }
        i += 1;
    }
    true
}

/// The string behind a slice this crate made from a `&'static str` (a [`ConfigKey`]'s name, doc
/// or string default; their fields are private to the crate, so no other slice gets here).
pub(crate) fn static_str(s: RawSlice) -> &'static str {
    if s.len == 0 {
        return "";
    }
    // SAFETY: `s` was made by `RawSlice::from_str` of a `&'static str` in `ConfigKey`'s const
    // builders (see above), so it points at `len` bytes of valid UTF-8 that live forever.
    unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(s.ptr, s.len)) }
}

/// A config default as the ABI carries it. `const` so that schemas are constants; the union
/// reads the value back as the one type `V::KIND` names.
pub(crate) const fn config_value_of<V: ConfigDefault>(value: V) -> ConfigValue {
    #[repr(C)]
    union Bits<V: Copy> {
        value: V,
        boolean: bool,
        int: i64,
        float: f64,
        text: &'static str,
    }
    let bits = Bits { value };
    let mut out = crate::config::NO_VALUE;
    out.kind = V::KIND;
    // SAFETY: `ConfigDefault` is sealed and implemented for exactly `bool`, `i64`, `f64` and
    // `&'static str`, each with the `KIND` matched here, so each arm reads the union as the type
    // it was written as (every field starts at offset 0 of a `repr(C)` union).
    unsafe {
        match V::KIND {
            abi::CONFIG_BOOL => out.int = bits.boolean as i64,
            abi::CONFIG_INT => {
                out.int = bits.int;
                out.float = bits.int as f64;
            }
            abi::CONFIG_FLOAT => out.float = bits.float,
            _ => out.text = RawSlice::from_str(bits.text),
        }
    }
    out
}

/// The node and scratch buffer behind an object made by `create::<N>` (for the test harness).
///
/// # Safety
/// `obj` must come from `create::<N>`, not be destroyed, and not be borrowed elsewhere for `'a`.
pub(crate) unsafe fn instance_parts<'a, N: Node>(obj: *mut c_void) -> (&'a mut N, &'a mut Vec<u8>) {
    // SAFETY: guaranteed by the caller.
    let inst = unsafe { &mut *obj.cast::<Instance<N>>() };
    (&mut inst.node, &mut inst.scratch)
}

/// Returns the port descriptors of `N` (for the test harness).
pub(crate) fn ports_of<N: Node>() -> &'static [abi::PortDesc] {
    port_descs(N::PORTS)
}

/// Exports node types from a plugin crate (`crate-type = ["cdylib"]`). Call it once per crate:
///
/// ```ignore
/// horus_plugin_api::export_plugin!(ImuSim, ImuDriver);
/// ```
///
/// Each type implements [`Node`](crate::Node); the manifest names it by its Rust type name
/// (`type = "ImuSim"`). The macro emits the plugin's one entry symbol and its static tables; the
/// plugin author writes no `unsafe` and no `extern`.
#[macro_export]
macro_rules! export_plugin {
    ($($node:ident),+ $(,)?) => {
        $crate::__export_plugin_with_header!(
            $crate::abi::ABI_VERSION,
            $crate::abi::LAYOUT_HASH;
            $($node),+
        );
    };
}

/// [`export_plugin!`] with an explicit ABI version and layout hash in the header. Only for the
/// fault-injection plugins that prove the host refuses a mismatch.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_plugin_with_header {
    ($version:expr, $hash:expr; $($node:ident),+) => {
        const _: () = {
            $(
                assert!(
                    $crate::export::ports_are_unique(<$node as $crate::Node>::PORTS),
                    concat!("export_plugin!: node type `", stringify!($node), "` declares two ports with one name and direction")
                );
                assert!(
                    $crate::config::keys_are_unique(<$node as $crate::Node>::CONFIG),
                    concat!("export_plugin!: node type `", stringify!($node), "` declares two config keys with one name")
                );
            )+
            const COUNT: usize = [$(stringify!($node)),+].len();
            static TYPES: $crate::export::Shared<[$crate::abi::NodeVTable; COUNT]> =
                $crate::export::Shared([$($crate::export::vtable::<$node>(stringify!($node))),+]);
            static DESCRIPTOR: $crate::export::Shared<$crate::abi::PluginDescriptor> =
                $crate::export::Shared($crate::export::descriptor(
                    env!("CARGO_PKG_NAME"),
                    env!("CARGO_PKG_VERSION"),
                    &TYPES.0,
                ));
            static HEADER: $crate::export::Shared<$crate::abi::PluginHeader> =
                $crate::export::Shared($crate::export::header_with(&DESCRIPTOR.0, $version, $hash));

            /// The HORUS plugin entry point (see `horus_plugin_api::abi`).
            ///
            /// # Safety
            /// Nothing for the caller to uphold: it takes no arguments and returns the address
            /// of a static, immutable header, valid while the library is loaded.
            #[allow(
                unsafe_code,
                reason = "`no_mangle` is unsafe_code; this expands in the plugin's crate, which may deny it or not"
            )]
            #[unsafe(no_mangle)]
            pub extern "C" fn horus_plugin_entry() -> *const $crate::abi::PluginHeader {
                &HEADER.0
            }
        };
    };
}
