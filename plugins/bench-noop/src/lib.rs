//! A node whose tick does one add: the dispatch benchmark measures the cost of reaching it
//! through the ABI against a direct trait call of the same code.

use horus_plugin_api::{export_plugin, Context, Node, NodeError, NodeResult};

/// Adds `step` to a counter each tick.
pub struct Spin {
    value: u64,
    step: u64,
}

impl Node for Spin {
    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(Spin {
            value: 0,
            step: ctx.config_i64("step")?.unwrap_or(1) as u64,
        })
    }

    #[inline(never)]
    fn tick(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        self.value = std::hint::black_box(self.value.wrapping_add(self.step));
        Ok(())
    }

    fn save_state(&self) -> Result<Vec<u8>, NodeError> {
        Ok(self.value.to_le_bytes().to_vec())
    }
}

export_plugin!(Spin);
