//! The `ReloadCounter` node, shared by `reload-counter` (v1) and `reload-counter-v2`: the crate
//! that includes this file defines `const STEP: u64` at its root before `mod counter;`, so the
//! two builds differ only in the step, as two builds of one edited node would.
//!
//! Config: `save_delay_ms` (default 0): `save_state` takes that long, as a node with much state
//! to hand over would (a test checks that a slow hand-over holds up only its own node).
//! `fail_file` (optional path), obeyed by the builds whose root sets
//! `OBEYS_FAIL_FILE` (v2). When set, `create`, `restore_state`, `init` and `tick`
//! each read that file; if its trimmed content is `<phase>-error` or `<phase>-panic` (phases
//! `create`, `restore`, `init`, `tick`), that hook returns an error or panics. A test writes the
//! file before it swaps in a new build, to drive each rollback cause of a reload. Without the key
//! nothing is ever read.
//!
//! The crate root also picks the config schema (`const CONFIG`): v1 declares none (its `config`
//! is not checked), v2 declares `fail_file`, so a running v1 whose `config` has another key
//! cannot be replaced by v2 (the reload tests' schema rollback).

use horus_plugin_api::{ConfigKey, Context, Node, NodeError, NodeResult, Port};

/// Publishes 0, STEP, 2·STEP, … on `count`, one number per tick, and hands the count over on
/// hot reload.
pub struct ReloadCounter {
    count: u64,
    fail_file: Option<String>,
    save_delay: std::time::Duration,
}

/// Fails `phase` as the fail file asks: `Err` for `<phase>-error`, a panic for `<phase>-panic`.
/// A missing or unreadable file asks for nothing.
fn fail_point(fail_file: Option<&str>, phase: &str) -> NodeResult {
    let Some(path) = fail_file.filter(|_| crate::OBEYS_FAIL_FILE) else {
        return Ok(());
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let wanted = text.trim();
    if wanted == format!("{phase}-error") {
        return Err(NodeError::new(format!(
            "fail_file {path} asks for an error in `{phase}`"
        )));
    }
    if wanted == format!("{phase}-panic") {
        panic!("fail_file {path} asks for a panic in `{phase}`");
    }
    Ok(())
}

impl Node for ReloadCounter {
    const PORTS: &'static [Port] = &[Port::output::<u64>("count")];
    const CONFIG: &'static [ConfigKey] = crate::CONFIG;

    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        let fail_file = ctx.config_str("fail_file")?.map(str::to_owned);
        fail_point(fail_file.as_deref(), "create")?;
        let save_delay_ms = ctx.config_i64("save_delay_ms")?.unwrap_or(0).max(0) as u64;
        Ok(ReloadCounter {
            count: 0,
            fail_file,
            save_delay: std::time::Duration::from_millis(save_delay_ms),
        })
    }

    fn init(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        fail_point(self.fail_file.as_deref(), "init")
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        fail_point(self.fail_file.as_deref(), "tick")?;
        ctx.send("count", &self.count)?;
        self.count += crate::STEP;
        Ok(())
    }

    fn save_state(&self) -> Result<Vec<u8>, NodeError> {
        std::thread::sleep(self.save_delay);
        Ok(self.count.to_le_bytes().to_vec())
    }

    fn restore_state(&mut self, state: &[u8]) -> NodeResult {
        fail_point(self.fail_file.as_deref(), "restore")?;
        if state.is_empty() {
            return Ok(());
        }
        let bytes: [u8; 8] = state
            .try_into()
            .map_err(|_| NodeError::new(format!("state is {} bytes, expected 8 (a u64)", state.len())))?;
        self.count = u64::from_le_bytes(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ReloadCounter;
    use crate::STEP;
    use horus_plugin_api::testing::TestHarness;
    use std::path::Path;

    fn counter(fail_file: &Path) -> Result<TestHarness<ReloadCounter>, horus_plugin_api::NodeError> {
        TestHarness::<ReloadCounter>::builder("counter")
            .config("fail_file", fail_file.to_str().expect("temp path is UTF-8"))
            .start()
    }

    #[test]
    fn state_survives_a_reload() {
        let mut old = TestHarness::<ReloadCounter>::builder("counter").start().unwrap();
        for _ in 0..3 {
            old.tick().unwrap();
        }
        assert_eq!(old.take::<u64>("count"), vec![0, STEP, 2 * STEP]);
        let state = old.save_state().unwrap();
        assert_eq!(state, (3 * STEP).to_le_bytes());

        let mut new = TestHarness::<ReloadCounter>::builder("counter").start().unwrap();
        new.restore_state(&state).unwrap();
        new.tick().unwrap();
        assert_eq!(new.take::<u64>("count"), vec![3 * STEP]);
    }

    #[test]
    fn empty_state_starts_at_zero_and_a_wrong_length_is_refused() {
        let mut node = TestHarness::<ReloadCounter>::builder("counter").start().unwrap();
        node.restore_state(&[]).unwrap();
        let err = node.restore_state(b"bad").unwrap_err();
        assert_eq!(err.message(), "state is 3 bytes, expected 8 (a u64)");
        node.tick().unwrap();
        assert_eq!(node.take::<u64>("count"), vec![0]);
    }

    #[test]
    fn fail_file_fails_each_phase_on_demand_in_the_builds_that_obey_it() {
        let dir = tempfile::tempdir().unwrap();
        if !crate::OBEYS_FAIL_FILE {
            let file = dir.path().join("fail");
            std::fs::write(&file, "tick-panic").unwrap();
            let mut node = counter(&file).unwrap();
            node.tick().unwrap();
            assert_eq!(node.take::<u64>("count"), vec![0], "this build ignores the file");
            return;
        }
        let file = dir.path().join("fail");
        let state = 5u64.to_le_bytes();

        // Absent file: every phase works, and so does a file that names another phase.
        let mut node = counter(&file).unwrap();
        node.restore_state(&state).unwrap();
        node.tick().unwrap();
        std::fs::write(&file, "shutdown-error\n").unwrap();
        node.tick().unwrap();
        assert_eq!(node.take::<u64>("count"), vec![5, 5 + STEP]);

        for phase in ["create", "restore", "init", "tick"] {
            for how in ["error", "panic"] {
                std::fs::write(&file, format!("  {phase}-{how}\n")).unwrap();
                let err = match phase {
                    "create" | "init" => counter(&file).err().expect("start fails"),
                    _ => {
                        // Start with a clean file, then arm it for the phase under test.
                        std::fs::remove_file(&file).unwrap();
                        let mut node = counter(&file).unwrap();
                        std::fs::write(&file, format!("{phase}-{how}")).unwrap();
                        if phase == "restore" {
                            node.restore_state(&state).unwrap_err()
                        } else {
                            node.tick().unwrap_err()
                        }
                    }
                };
                let msg = err.message();
                assert!(msg.contains(&format!("`{phase}`")), "{phase}-{how}: {msg}");
                assert_eq!(msg.starts_with("panic"), how == "panic", "{phase}-{how}: {msg}");
            }
        }
    }
}
