//! `{{name}}`: a HORUS node plugin, made by `horus new node`.
//!
//! `{{type}}` multiplies every number it receives on `input` by its config key `gain` and
//! publishes the result on `output`. `{{type}}Source` is a stand-in source so that manifest.toml
//! runs on its own: replace it with your sensor node, or delete it and connect `input` to another
//! plugin's output. Writing nodes: docs/plugins.md of HORUS.

use horus_plugin_api::{export_plugin, ConfigKey, Context, Node, NodeError, NodeResult, Port};

/// Multiplies every number on `input` by `gain` and publishes it on `output`.
pub struct {{type}} {
    gain: f64,
    /// Values handled so far; handed to the new build on hot reload (`horus run --watch`).
    processed: u64,
}

impl Node for {{type}} {
    const PORTS: &'static [Port] = &[Port::input::<f64>("input"), Port::output::<f64>("output")];
    // The keys the manifest's `config` may have: `horus check` refuses any other (with a
    // did-you-mean), `horus inspect {{type}}` shows them, and `config_f64("gain")` returns the
    // default when the manifest leaves `gain` out.
    const CONFIG: &'static [ConfigKey] = &[ConfigKey::f64("gain")
        .default(1.0)
        .doc("factor applied to every input value (finite)")];

    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        // What the schema cannot say is checked here, with an error that names the key.
        let gain = ctx.config_f64("gain")?.unwrap_or(1.0);
        if !gain.is_finite() {
            return Err(NodeError::new(format!(
                "config `gain` must be a finite number (got {gain})"
            )));
        }
        Ok(Self { gain, processed: 0 })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        // Drain every value that arrived since the last tick; keep `tick` fast and non-blocking.
        while let Some(x) = ctx.recv::<f64>("input")? {
            ctx.send("output", &(x * self.gain))?;
            self.processed += 1;
        }
        Ok(())
    }

    fn shutdown(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        ctx.info(format_args!("processed {} values", self.processed));
        Ok(())
    }

    fn save_state(&self) -> Result<Vec<u8>, NodeError> {
        Ok(self.processed.to_le_bytes().to_vec())
    }

    fn restore_state(&mut self, state: &[u8]) -> NodeResult {
        let bytes: [u8; 8] = state
            .try_into()
            .map_err(|_| NodeError::new("state is not 8 bytes"))?;
        self.processed = u64::from_le_bytes(bytes);
        Ok(())
    }
}

/// Publishes 0, 1, 2, … on `output`, one number per tick: the demo input of manifest.toml.
pub struct {{type}}Source {
    next: f64,
}

impl Node for {{type}}Source {
    const PORTS: &'static [Port] = &[Port::output::<f64>("output")];
    // Takes no config: any key in its `config` is reported.
    const CONFIG_CHECKED: bool = true;

    fn create(_ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        Ok(Self { next: 0.0 })
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        ctx.send("output", &self.next)?;
        self.next += 1.0;
        Ok(())
    }
}

{{export}}

#[cfg(test)]
mod tests {
    use super::*;
    use horus_plugin_api::testing::TestHarness;

    type Harness = TestHarness<{{type}}>;

    #[test]
    fn scales_every_input_by_gain() {
        let mut node = Harness::builder("filter")
            .config("gain", 2.5)
            .start()
            .unwrap();
        for x in [1.0f64, -2.0, 4.0] {
            node.push("input", &x);
        }
        node.tick().unwrap();
        assert_eq!(node.take::<f64>("output"), vec![2.5, -5.0, 10.0]);
    }

    #[test]
    fn gain_defaults_to_one() {
        let mut node = Harness::builder("filter").start().unwrap();
        node.push("input", &3.0f64);
        node.tick().unwrap();
        assert_eq!(node.take::<f64>("output"), vec![3.0]);
    }

    #[test]
    fn a_gain_of_the_wrong_type_is_refused() {
        let err = Harness::builder("filter")
            .config("gain", "high")
            .start()
            .err()
            .unwrap();
        assert!(err.message().contains("config `gain`"), "{err}");
    }

    #[test]
    fn state_survives_a_reload() {
        let mut old = Harness::builder("filter").start().unwrap();
        old.push("input", &1.0f64);
        old.tick().unwrap();
        let state = old.save_state().unwrap();
        let mut new = Harness::builder("filter").start().unwrap();
        new.restore_state(&state).unwrap();
        new.shutdown().unwrap();
        assert_eq!(new.logs().last().unwrap().1, "processed 1 values");
        assert!(new.restore_state(b"bad").is_err());
    }
}
