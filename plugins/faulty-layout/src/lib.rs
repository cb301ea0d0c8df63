//! Fault injection: a plugin whose header claims a layout hash that differs from the host's
//! (same ABI version), as a plugin built against an edited horus-plugin-api would. The host must
//! refuse it before calling anything else.

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

horus_plugin_api::__export_plugin_with_header!(horus_plugin_api::abi::ABI_VERSION, horus_plugin_api::abi::LAYOUT_HASH ^ 0x5a5a; Mismatched);
