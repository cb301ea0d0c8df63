//! Your first HORUS node: counts its ticks and publishes the count.
//!
//! This file is the example of docs/plugins.md, verbatim (a test keeps them equal).

use horus_plugin_api::{export_plugin, ConfigKey, Context, Node, NodeError, NodeResult, Port};

/// Publishes 0, step, 2·step, … on `count`, one number per tick.
pub struct Counter {
    count: u64,
    step: u64,
}

impl Node for Counter {
    const PORTS: &'static [Port] = &[Port::output::<u64>("count")];
    // The keys `config` may have: `horus check` refuses any other, and the getter below returns
    // the default when the manifest leaves `step` out.
    const CONFIG: &'static [ConfigKey] = &[ConfigKey::i64("step")
        .default(1)
        .doc("how much the count grows per tick (> 0)")];

    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        // `config = { step = 2 }` in the manifest; the declared default 1 when absent.
        let step = match ctx.config_i64("step")? {
            None => 1,
            Some(s) if s > 0 => s as u64,
            Some(s) => return Err(NodeError::new(format!("config `step` must be > 0 (got {s})"))),
        };
        Ok(Counter { count: 0, step })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        ctx.send("count", &self.count)?;
        if self.count.is_multiple_of(100 * self.step) {
            ctx.info(format_args!("count is {}", self.count));
        }
        self.count += self.step;
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        ctx.info(format_args!("stopped at {}", self.count));
        Ok(())
    }

    // Hot reload hands the count to the new build of this node.
    fn save_state(&self) -> Result<Vec<u8>, NodeError> {
        Ok(self.count.to_le_bytes().to_vec())
    }

    fn restore_state(&mut self, state: &[u8]) -> NodeResult {
        let bytes: [u8; 8] = state
            .try_into()
            .map_err(|_| NodeError::new("state is not 8 bytes"))?;
        self.count = u64::from_le_bytes(bytes);
        Ok(())
    }
}

/// Sums every number it receives on `numbers` and logs the total on shutdown.
pub struct Summer {
    total: u64,
    received: u64,
}

impl Node for Summer {
    const PORTS: &'static [Port] = &[Port::input::<u64>("numbers")];
    // No config keys at all, and any key in its `config` is an error.
    const CONFIG_CHECKED: bool = true;

    fn create(_ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(Summer {
            total: 0,
            received: 0,
        })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        while let Some(n) = ctx.recv::<u64>("numbers")? {
            self.total += n;
            self.received += 1;
        }
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        ctx.info(format_args!(
            "received {} numbers, total {}",
            self.received, self.total
        ));
        Ok(())
    }
}

export_plugin!(Counter, Summer);

#[cfg(test)]
mod tests {
    use super::*;
    use horus_plugin_api::testing::TestHarness;

    #[test]
    fn counter_counts_by_step() {
        let mut node = TestHarness::<Counter>::builder("counter")
            .config("step", 2)
            .start()
            .unwrap();
        for _ in 0..3 {
            node.tick().unwrap();
        }
        assert_eq!(node.take::<u64>("count"), vec![0, 2, 4]);
    }

    #[test]
    fn bad_step_is_refused_with_the_key() {
        let err = TestHarness::<Counter>::builder("counter")
            .config("step", -1)
            .start()
            .err()
            .unwrap();
        assert!(err.message().contains("config `step`"), "{err}");
    }

    #[test]
    fn step_of_the_wrong_type_is_refused() {
        let err = TestHarness::<Counter>::builder("counter")
            .config("step", 2.5)
            .start()
            .err()
            .unwrap();
        assert_eq!(
            err.message(),
            "config `step` must be an integer (the manifest has a float)"
        );
    }

    #[test]
    fn state_survives_a_reload() {
        let mut old = TestHarness::<Counter>::builder("counter").start().unwrap();
        old.tick().unwrap();
        old.tick().unwrap();
        let state = old.save_state().unwrap();
        let mut new = TestHarness::<Counter>::builder("counter").start().unwrap();
        new.restore_state(&state).unwrap();
        new.tick().unwrap();
        assert_eq!(new.take::<u64>("count"), vec![2]);
        assert!(new.restore_state(b"bad").is_err());
    }

    #[test]
    fn summer_sums() {
        let mut node = TestHarness::<Summer>::builder("sum").start().unwrap();
        for n in [1u64, 2, 3] {
            node.push("numbers", &n);
        }
        node.tick().unwrap();
        node.shutdown().unwrap();
        assert_eq!(node.logs().last().unwrap().1, "received 3 numbers, total 6");
    }
}
