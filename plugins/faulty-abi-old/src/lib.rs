//! Fault injection: a plugin whose header says ABI v1, as every plugin built before node types
//! declared their config schemas does (ABI v2). The host must refuse it before reading its
//! descriptor (whose layout v1 did not share) and say to rebuild it against the current SDK.

use horus_plugin_api::{Context, Node, NodeError, NodeResult};

/// Never runs: the host refuses the plugin first.
pub struct Old;

impl Node for Old {
    fn create(_ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(Old)
    }

    fn tick(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        Ok(())
    }
}

// The v1 layout hash, so the header is byte for byte what a v1 plugin's was.
horus_plugin_api::__export_plugin_with_header!(1, 0x0744_ff77_be82_6ec8; Old);
