//! Exists for the config schema tests (issue 15): a node type that declares a key of every kind —
//! one required, the others with defaults or without — and logs, when created, the values the
//! SDK's getters return, so a test can see the declared defaults filled in.

use horus_plugin_api::{export_plugin, ConfigKey, Context, Node, NodeError, NodeResult};

/// Logs its config once and does nothing else.
pub struct ConfigProbe;

impl Node for ConfigProbe {
    const CONFIG: &'static [ConfigKey] = &[
        ConfigKey::str("frame")
            .required()
            .doc("the frame the node reports in"),
        ConfigKey::f64("gain").default(1.5).doc("output gain"),
        ConfigKey::i64("count")
            .default(3)
            .doc("how many samples to average"),
        ConfigKey::bool("verbose").default(false).doc("log every tick"),
        ConfigKey::str("mode").default("fast").doc("`fast` or `precise`"),
        ConfigKey::f64("trim").doc("optional offset, no default"),
        ConfigKey::array("limits").doc("lower and upper bound"),
        ConfigKey::table("pid").doc("gains, read as pid.kp and so on"),
    ];

    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        let line = format!(
            "config: frame={:?} gain={:?} count={:?} verbose={:?} mode={:?} trim={:?} pid.kp={:?}",
            ctx.config_str("frame")?,
            ctx.config_f64("gain")?,
            ctx.config_i64("count")?,
            ctx.config_bool("verbose")?,
            ctx.config_str("mode")?,
            ctx.config_f64("trim")?,
            ctx.config_f64("pid.kp")?,
        );
        ctx.info(line);
        Ok(ConfigProbe)
    }

    fn tick(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        Ok(())
    }
}

export_plugin!(ConfigProbe);
