//! Exists for the hot-reload tests (issue 14): a build of `ReloadCounter` whose output `count`
//! carries `f64` instead of `u64`. Reloading `reload-counter` into this must be refused (a port's
//! message type changed) and rolled back, with the old build still ticking.

use horus_plugin_api::{export_plugin, Context, Node, NodeError, NodeResult, Port};

/// Publishes 0.0, 1.0, 2.0, … on `count` (an `f64` port where the first build has `u64`).
pub struct ReloadCounter {
    count: f64,
}

impl Node for ReloadCounter {
    const PORTS: &'static [Port] = &[Port::output::<f64>("count")];

    fn create(_ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(ReloadCounter { count: 0.0 })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        ctx.send("count", &self.count)?;
        self.count += 1.0;
        Ok(())
    }
}

export_plugin!(ReloadCounter);
