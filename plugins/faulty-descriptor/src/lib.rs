//! Fault injection: a library that passes every header check (magic, ABI version, layout hash)
//! but whose descriptor pointer points at unmapped memory, as a C library with a broken entry
//! might; following it is a segmentation fault. With `HORUS_FAULTY_DESCRIPTOR=hang` in the
//! environment the entry never returns instead. The host must inspect such a library in a child
//! process (`horus check`, `process` isolation) and report it, not crash or hang.

use horus_plugin_api::abi::{PluginDescriptor, PluginHeader, ABI_VERSION, LAYOUT_HASH, PLUGIN_MAGIC};
use horus_plugin_api::export::Shared;

/// An address in the first page, which no Linux process maps; aligned like a descriptor.
const BOGUS: usize = 0x800;

static HEADER: Shared<PluginHeader> = Shared(PluginHeader {
    magic: PLUGIN_MAGIC,
    abi_version: ABI_VERSION,
    reserved: 0,
    layout_hash: LAYOUT_HASH,
    descriptor: BOGUS as *const PluginDescriptor,
});

/// The HORUS plugin entry point, broken on purpose (see the crate doc).
///
/// # Safety
/// Nothing for the caller to uphold; the header it returns is static, but its descriptor
/// pointer must not be followed.
#[expect(
    unsafe_code,
    reason = "`no_mangle` is unsafe_code: the entry symbol must keep its name"
)]
#[unsafe(no_mangle)]
pub extern "C" fn horus_plugin_entry() -> *const PluginHeader {
    if std::env::var_os("HORUS_FAULTY_DESCRIPTOR").is_some_and(|v| v == "hang") {
        loop {
            std::thread::park();
        }
    }
    &HEADER.0
}
