//! The raw C ABI between the `horus` host and a node plugin.
//!
//! This module owns every `#[repr(C)]` type that crosses the library boundary, the ABI version and
//! the layout hash. It owns no behaviour: the plugin side lives in [`crate::export`], the host side in
//! the host's `ffi` module. Plugin authors never touch these types; they implement
//! [`crate::Node`] and call [`crate::export_plugin!`].
//!
//! # Protocol
//! 1. The host opens the library and resolves [`ENTRY_SYMBOL`], an [`EntryFn`].
//! 2. It calls it once and reads the [`PluginHeader`]. The header's layout is frozen forever, so any
//!    past or future plugin can be told apart: the host checks [`PluginHeader::magic`],
//!    [`PluginHeader::abi_version`] against [`ABI_VERSION`] and [`PluginHeader::layout_hash`] against
//!    [`LAYOUT_HASH`] *before* it reads anything else, and refuses the plugin on a mismatch.
//! 3. Only then does it follow [`PluginHeader::descriptor`] to the node types and their vtables.
//!
//! # Rules both sides keep
//! - No panic crosses the boundary: every plugin entry catches unwinding and returns
//!   [`STATUS_PANIC`] with the message written to its error [`ByteSink`].
//! - Memory is freed by the side that allocated it. Bytes that the host keeps (errors, saved state)
//!   are copied out through a host-provided [`ByteSink`]; a node object is freed only by `destroy`.
//! - Strings and slices passed as [`RawSlice`] are borrowed for the duration of the call only.
//! - The host copies every string it keeps from the descriptor (names, type names), so nothing of
//!   a plugin image is referenced after it is unloaded.

use std::ffi::c_void;

/// The ABI version. Bump it on any change of meaning; a change of layout also changes
/// [`LAYOUT_HASH`] by itself.
///
/// History: v1 — ports only; v2 — node types also declare their config keys
/// ([`NodeVTable::config_keys`], [`ConfigKeyDesc`]), so `horus check` can verify a node's `config`
/// without creating it.
pub const ABI_VERSION: u32 = 3;

/// `b"HORUSPLG"` read as a little-endian `u64`: tells a HORUS plugin header from random memory.
pub const PLUGIN_MAGIC: u64 = u64::from_le_bytes(*b"HORUSPLG");

/// The one symbol every plugin exports (NUL-terminated, for `dlsym`).
pub const ENTRY_SYMBOL: &[u8] = b"horus_plugin_entry\0";

/// Signature of [`ENTRY_SYMBOL`]. It must return a pointer to a `'static` header.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginHeader;

/// Call succeeded.
pub const STATUS_OK: i32 = 0;
/// The node returned an error; its message was written to the error sink.
pub const STATUS_ERROR: i32 = 1;
/// The node panicked; the panic message was written to the error sink.
pub const STATUS_PANIC: i32 = 2;

/// A human-readable description of a status code, for host error messages.
pub fn status_str(code: i32) -> &'static str {
    match code {
        STATUS_OK => "ok",
        STATUS_ERROR => "node returned an error",
        STATUS_PANIC => "node panicked",
        _ => "unknown status code (plugin built against another ABI?)",
    }
}

/// `send` result: the message was accepted.
pub const SEND_OK: i32 = 0;
/// `send` result: a `reliable` topic is full; the message was not accepted (back-pressure).
pub const SEND_FULL: i32 = 1;
/// `send` result: the port index is not an output of this node.
pub const SEND_BAD_PORT: i32 = -1;
/// `send` result: the message is larger than the topic's slot size.
pub const SEND_TOO_LARGE: i32 = -2;
/// `send`/`loan`/`close_loan` result: the port's loan is in the wrong state (a loan is open
/// where none may be, or none is open to close).
pub const SEND_LOAN_STATE: i32 = -3;
/// `close_loan` length that discards the loan instead of publishing it.
pub const LOAN_DISCARD: usize = usize::MAX;

/// `recv` result: a message was written to the out slice.
pub const RECV_MESSAGE: i32 = 1;
/// `recv` result: no message is waiting.
pub const RECV_EMPTY: i32 = 0;
/// `recv` result: the port index is not an input of this node.
pub const RECV_BAD_PORT: i32 = -1;
/// `recv_ref` result: the node already holds as many messages of this input in place as it
/// may (half the topic's ring); nothing was taken.
pub const RECV_HELD: i32 = -2;

/// Port direction: the node publishes on it.
pub const PORT_OUTPUT: u32 = 0;
/// Port direction: the node reads from it.
pub const PORT_INPUT: u32 = 1;

/// Encoding: the bytes of a `#[repr(C)]` plain-data value.
pub const ENCODING_POD: u32 = 0;
/// Encoding: a serde value in the postcard format.
pub const ENCODING_POSTCARD: u32 = 1;
/// Encoding: raw bytes with no structure known to HORUS.
pub const ENCODING_BYTES: u32 = 2;

/// Log level passed to [`HostApi::log`].
pub const LOG_ERROR: u32 = 1;
/// Log level passed to [`HostApi::log`].
pub const LOG_WARN: u32 = 2;
/// Log level passed to [`HostApi::log`].
pub const LOG_INFO: u32 = 3;
/// Log level passed to [`HostApi::log`].
pub const LOG_DEBUG: u32 = 4;
/// Log level passed to [`HostApi::log`].
pub const LOG_TRACE: u32 = 5;

/// [`ConfigValue::kind`]: the key is absent.
pub const CONFIG_MISSING: u32 = 0;
/// [`ConfigValue::kind`]: a boolean in `int` (0 or 1).
pub const CONFIG_BOOL: u32 = 1;
/// [`ConfigValue::kind`]: an integer in `int`.
pub const CONFIG_INT: u32 = 2;
/// [`ConfigValue::kind`]: a float in `float`.
pub const CONFIG_FLOAT: u32 = 3;
/// [`ConfigValue::kind`]: a UTF-8 string in `text`.
pub const CONFIG_STRING: u32 = 4;
/// [`ConfigValue::kind`]: an array, table or date-time, rendered as TOML in `text`.
pub const CONFIG_OTHER: u32 = 5;
/// [`ConfigKeyDesc::kind`] only: the key holds an array.
pub const CONFIG_ARRAY: u32 = 6;
/// [`ConfigKeyDesc::kind`] only: the key holds a table.
pub const CONFIG_TABLE: u32 = 7;

/// [`ConfigKeyDesc::flags`]: the manifest must set the key.
pub const CONFIG_KEY_REQUIRED: u32 = 1;

/// Declares an ABI struct and records its definition (field names and types, in order) in
/// `LAYOUT_TEXT`, from which [`LAYOUT_HASH`] is computed. Doc comments are not part of it.
macro_rules! abi_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }

        impl $name {
            #[doc(hidden)]
            pub const LAYOUT_TEXT: &'static str =
                concat!(stringify!($name), "{", $(stringify!($f), ":", stringify!($t), ";",)* "}");
        }
    };
}

abi_struct! {
    /// A borrowed byte slice (UTF-8 when it holds a string). Valid for the duration of one call.
    pub struct RawSlice {
        /// First byte; may dangle when `len` is 0.
        pub ptr: *const u8,
        /// Number of bytes.
        pub len: usize,
    }
}

abi_struct! {
    /// A host-owned buffer the plugin writes bytes into (error messages, saved state). The host
    /// copies the bytes, so no allocation crosses the boundary.
    pub struct ByteSink {
        /// Opaque host pointer passed back to `write`.
        pub sink: *mut c_void,
        /// Appends `len` bytes at `ptr` to the sink.
        pub write: unsafe extern "C" fn(sink: *mut c_void, ptr: *const u8, len: usize),
    }
}

abi_struct! {
    /// One port (input or output) of a node type, declared statically by the plugin so that
    /// `horus check` can verify connections without creating a node.
    pub struct PortDesc {
        /// Port name, unique per node type and direction.
        pub name: RawSlice,
        /// Message type name, for error messages.
        pub type_name: RawSlice,
        /// Message type hash; an output and an input connect only when their hashes are equal.
        pub type_hash: u64,
        /// [`PORT_OUTPUT`] or [`PORT_INPUT`].
        pub direction: u32,
        /// [`ENCODING_POD`], [`ENCODING_POSTCARD`] or [`ENCODING_BYTES`].
        pub encoding: u32,
        /// The largest encoded message in bytes, 0 when unbounded (serde types, raw bytes):
        /// shared-memory topics size their slots from it.
        pub max_size: u64,
    }
}

abi_struct! {
    /// A configuration value looked up by key in the node's `config` table.
    pub struct ConfigValue {
        /// One of the `CONFIG_*` kinds.
        pub kind: u32,
        /// Padding, always 0.
        pub reserved: u32,
        /// The value of a bool or integer.
        pub int: i64,
        /// The value of a float (integers are also given here, converted).
        pub float: f64,
        /// The value of a string, or the TOML rendering of an array or table.
        pub text: RawSlice,
    }
}

abi_struct! {
    /// One key of a node type's `config` table, declared statically by the plugin so that
    /// `horus check` can verify a manifest's `config` without creating a node.
    pub struct ConfigKeyDesc {
        /// The key, as written in the manifest's `config` table.
        pub name: RawSlice,
        /// One line for `horus inspect` and error hints; may be empty.
        pub doc: RawSlice,
        /// What the value must be: [`CONFIG_BOOL`], [`CONFIG_INT`], [`CONFIG_FLOAT`] (an integer
        /// is accepted too), [`CONFIG_STRING`], [`CONFIG_ARRAY`] or [`CONFIG_TABLE`].
        pub kind: u32,
        /// [`CONFIG_KEY_REQUIRED`] or 0.
        pub flags: u32,
        /// The value used when the key is absent; `kind` [`CONFIG_MISSING`] for none.
        pub default: ConfigValue,
    }
}

abi_struct! {
    /// What the host offers a node during each call. Every function takes [`NodeContext::host`].
    pub struct HostApi {
        /// The node's instance name from the manifest.
        pub node_name: unsafe extern "C" fn(host: *mut c_void) -> RawSlice,
        /// Nanoseconds on the host's monotonic clock since the scheduler started.
        pub now_ns: unsafe extern "C" fn(host: *mut c_void) -> u64,
        /// Logs `msg` at `level` (`LOG_*`) under the node's name.
        pub log: unsafe extern "C" fn(host: *mut c_void, level: u32, msg: RawSlice),
        /// Looks up `key` (dotted for nested tables) in the node's config; fills `out`.
        pub config_get: unsafe extern "C" fn(host: *mut c_void, key: RawSlice, out: *mut ConfigValue),
        /// The node's whole config table rendered as TOML.
        pub config_toml: unsafe extern "C" fn(host: *mut c_void) -> RawSlice,
        /// Publishes `len` bytes on output port `port` (index into the node type's ports).
        /// Returns one of the `SEND_*` codes.
        pub send: unsafe extern "C" fn(host: *mut c_void, port: u32, ptr: *const u8, len: usize) -> i32,
        /// Takes the oldest unread message of input port `port` into `out`, which stays valid
        /// until the next host call for this node. Returns one of the `RECV_*` codes.
        pub recv: unsafe extern "C" fn(host: *mut c_void, port: u32, out: *mut RawSlice) -> i32,
        /// Lends the node `len` bytes of output port `port`'s next message, in the topic's
        /// shared memory: `out` gets memory the node may write until it calls `close_loan`
        /// for the port (its content is whatever was there). One loan per port at a time.
        /// Returns one of the `SEND_*` codes.
        pub loan: unsafe extern "C" fn(host: *mut c_void, port: u32, len: usize, out: *mut RawSlice) -> i32,
        /// Publishes the first `len` bytes of port `port`'s open loan, or discards the loan
        /// when `len` is `LOAN_DISCARD`. Returns one of the `SEND_*` codes. The host also
        /// discards a loan the node leaves open when its `tick` (or other call) returns.
        pub close_loan: unsafe extern "C" fn(host: *mut c_void, port: u32, len: usize) -> i32,
        /// Takes the oldest unread message of input port `port` without copying it: `out`
        /// gets its bytes in the topic's shared memory, which stay valid and unchanged until
        /// `release_ref(pin)`; `pin` gets the handle. Returns one of the `RECV_*` codes.
        pub recv_ref: unsafe extern "C" fn(host: *mut c_void, port: u32, out: *mut RawSlice, pin: *mut u64) -> i32,
        /// Releases a message taken by `recv_ref`; an unknown handle is ignored.
        pub release_ref: unsafe extern "C" fn(host: *mut c_void, pin: u64),
    }
}

abi_struct! {
    /// The context the host passes to every node entry point. Host-owned; its address is stable
    /// for the lifetime of the node instance.
    pub struct NodeContext {
        /// Opaque per-instance host state.
        pub host: *mut c_void,
        /// The host's function table.
        pub api: *const HostApi,
    }
}

abi_struct! {
    /// The entry points and static description of one node type.
    pub struct NodeVTable {
        /// Type name the manifest refers to (`type = "..."`).
        pub type_name: RawSlice,
        /// Ports, inputs and outputs.
        pub ports: *const PortDesc,
        /// Number of entries at `ports`.
        pub port_count: usize,
        /// The config keys the type accepts, or null when it declares none (its `config` is then
        /// not checked). Non-null with a count of 0: the type takes no config keys at all.
        pub config_keys: *const ConfigKeyDesc,
        /// Number of entries at `config_keys`.
        pub config_key_count: usize,
        /// Builds a node from its context (name, config) and writes the object pointer to `out`.
        pub create: unsafe extern "C" fn(ctx: *const NodeContext, out: *mut *mut c_void, err: ByteSink) -> i32,
        /// Called once after `create`, before the first tick.
        pub init: unsafe extern "C" fn(obj: *mut c_void, ctx: *const NodeContext, err: ByteSink) -> i32,
        /// Called once per scheduled cycle.
        pub tick: unsafe extern "C" fn(obj: *mut c_void, ctx: *const NodeContext, err: ByteSink) -> i32,
        /// Called once when the scheduler stops.
        pub shutdown: unsafe extern "C" fn(obj: *mut c_void, ctx: *const NodeContext, err: ByteSink) -> i32,
        /// Frees the object. The pointer is invalid afterwards, whatever the status.
        pub destroy: unsafe extern "C" fn(obj: *mut c_void, err: ByteSink) -> i32,
        /// Writes the node's state as bytes to `state` (hot reload).
        pub save_state: unsafe extern "C" fn(obj: *mut c_void, state: ByteSink, err: ByteSink) -> i32,
        /// Restores state previously written by `save_state` of this or an older build.
        pub restore_state: unsafe extern "C" fn(obj: *mut c_void, state: RawSlice, err: ByteSink) -> i32,
    }
}

abi_struct! {
    /// What a plugin offers: its name, version and node types.
    pub struct PluginDescriptor {
        /// The plugin crate's name.
        pub plugin_name: RawSlice,
        /// The plugin crate's version.
        pub plugin_version: RawSlice,
        /// Node types offered.
        pub node_types: *const NodeVTable,
        /// Number of entries at `node_types`.
        pub node_type_count: usize,
    }
}

/// The first thing the host reads from a plugin. **Its layout is frozen forever**: fields may
/// never be added, removed or reordered, so every HORUS host can read every plugin's header and
/// refuse a mismatch with a clear message instead of misreading what follows.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PluginHeader {
    /// Always [`PLUGIN_MAGIC`].
    pub magic: u64,
    /// The [`ABI_VERSION`] the plugin was built against.
    pub abi_version: u32,
    /// Always 0.
    pub reserved: u32,
    /// The [`LAYOUT_HASH`] the plugin was built against.
    pub layout_hash: u64,
    /// The plugin's descriptor; read only after the checks above pass.
    pub descriptor: *const PluginDescriptor,
}

/// FNV-1a over `bytes`, continuing from `hash`. `const` so hashes are compile-time constants.
pub const fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// The FNV-1a offset basis, the starting value for [`fnv1a`].
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

const fn layout_hash() -> u64 {
    let texts: [(&str, usize, usize); 9] = [
        (
            RawSlice::LAYOUT_TEXT,
            size_of::<RawSlice>(),
            align_of::<RawSlice>(),
        ),
        (
            ByteSink::LAYOUT_TEXT,
            size_of::<ByteSink>(),
            align_of::<ByteSink>(),
        ),
        (
            PortDesc::LAYOUT_TEXT,
            size_of::<PortDesc>(),
            align_of::<PortDesc>(),
        ),
        (
            ConfigValue::LAYOUT_TEXT,
            size_of::<ConfigValue>(),
            align_of::<ConfigValue>(),
        ),
        (
            ConfigKeyDesc::LAYOUT_TEXT,
            size_of::<ConfigKeyDesc>(),
            align_of::<ConfigKeyDesc>(),
        ),
        (HostApi::LAYOUT_TEXT, size_of::<HostApi>(), align_of::<HostApi>()),
        (
            NodeContext::LAYOUT_TEXT,
            size_of::<NodeContext>(),
            align_of::<NodeContext>(),
        ),
        (
            NodeVTable::LAYOUT_TEXT,
            size_of::<NodeVTable>(),
            align_of::<NodeVTable>(),
        ),
        (
            PluginDescriptor::LAYOUT_TEXT,
            size_of::<PluginDescriptor>(),
            align_of::<PluginDescriptor>(),
        ),
    ];
    let mut hash = FNV_OFFSET;
    let mut i = 0;
    while i < texts.len() {
        hash = fnv1a(hash, texts[i].0.as_bytes());
        hash = fnv1a(hash, &(texts[i].1 as u64).to_le_bytes());
        hash = fnv1a(hash, &(texts[i].2 as u64).to_le_bytes());
        i += 1;
    }
    hash
}

/// A hash of the definitions (field names, field types, order, sizes, alignments) of every ABI
/// struct above. Any edit of an ABI struct changes it, so a plugin built against a different
/// definition is refused even if someone forgot to bump [`ABI_VERSION`].
pub const LAYOUT_HASH: u64 = layout_hash();

impl RawSlice {
    /// An empty slice.
    pub const EMPTY: RawSlice = RawSlice {
        ptr: std::ptr::NonNull::<u8>::dangling().as_ptr(),
        len: 0,
    };

    /// Borrows a byte slice.
    pub const fn from_bytes(bytes: &[u8]) -> RawSlice {
        RawSlice {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// Borrows a string.
    pub const fn from_str(s: &str) -> RawSlice {
        Self::from_bytes(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_text_lists_fields_in_order() {
        assert_eq!(RawSlice::LAYOUT_TEXT, "RawSlice{ptr:*const u8;len:usize;}");
        assert!(NodeVTable::LAYOUT_TEXT.starts_with("NodeVTable{type_name:RawSlice;ports:"));
    }

    #[test]
    fn layout_hash_is_sensitive_to_text() {
        let a = fnv1a(FNV_OFFSET, b"RawSlice{ptr:*const u8;len:usize;}");
        let b = fnv1a(FNV_OFFSET, b"RawSlice{ptr:*const u8;len:u32;}");
        assert_ne!(a, b);
        assert_ne!(LAYOUT_HASH, 0);
    }

    #[test]
    fn header_layout_is_frozen() {
        // These offsets may never change: every host reads every plugin's header.
        assert_eq!(std::mem::offset_of!(PluginHeader, magic), 0);
        assert_eq!(std::mem::offset_of!(PluginHeader, abi_version), 8);
        assert_eq!(std::mem::offset_of!(PluginHeader, layout_hash), 16);
        assert_eq!(std::mem::offset_of!(PluginHeader, descriptor), 24);
    }

    #[test]
    fn status_strings() {
        assert_eq!(status_str(STATUS_PANIC), "node panicked");
        assert!(status_str(77).contains("unknown"));
    }
}
