//! Fault injection: a plugin whose header claims an ABI version one above the host's, as a plugin built
//! against a different horus-plugin-api would. The host must refuse it before calling anything
//! else. It builds its tables by hand (no `export_plugin!`) to set the header it wants.

use horus_plugin_api::abi::{self, NodeVTable, PluginDescriptor, PluginHeader};
use horus_plugin_api::export::{self, Shared};
use horus_plugin_api::{Context, Node, NodeError, NodeResult};

/// Never runs: the host refuses the plugin first.
pub struct Mismatched;

impl Node for Mismatched {
    fn create(_ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(Mismatched)
    }

    fn tick(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        Ok(())
    }
}

static TYPES: Shared<[NodeVTable; 1]> = Shared([export::vtable::<Mismatched>("Mismatched")]);
static DESCRIPTOR: Shared<PluginDescriptor> = Shared(export::descriptor(
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_VERSION"),
    &TYPES.0,
));
static HEADER: Shared<PluginHeader> = Shared(export::header_with(
    &DESCRIPTOR.0,
    abi::ABI_VERSION + 1,
    abi::LAYOUT_HASH,
));

/// The HORUS entry point, with a deliberately wrong header.
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
pub extern "C" fn horus_plugin_entry() -> *const PluginHeader {
    &HEADER.0
}
