//! Exists for the hot-reload tests (issue 14): the first build of a counter node that a test
//! replaces by `reload-counter-v2` (same node type and ports, step 1000 instead of 1) or by
//! `reload-counter-ports` (a port's message type changed) while `horus` runs.
//!
//! The node itself lives in `counter.rs`, shared with `reload-counter-v2`; this crate only picks
//! the step, and ignores the `fail_file` config that makes `reload-counter-v2`'s `create`,
//! `restore_state`, `init` or `tick` fail on demand, for the rollback tests.

/// What the counter adds per tick in this build.
const STEP: u64 = 1;
/// This build ignores `fail_file` (the running code of the rollback tests must keep working while
/// the file arms a failure of the next build).
const OBEYS_FAIL_FILE: bool = false;

/// No config schema: the `config` of this build is not checked.
const CONFIG: &[horus_plugin_api::ConfigKey] = &[];

mod counter;

pub use counter::ReloadCounter;

horus_plugin_api::export_plugin!(ReloadCounter);
