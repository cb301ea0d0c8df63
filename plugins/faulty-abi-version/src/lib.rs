//! Fault injection: a plugin whose header claims an ABI version one above the host's, as a plugin built
//! against a different horus-plugin-api would. The host must refuse it before calling anything
//! else.

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

horus_plugin_api::__export_plugin_with_header!(horus_plugin_api::abi::ABI_VERSION + 1, horus_plugin_api::abi::LAYOUT_HASH; Mismatched);
