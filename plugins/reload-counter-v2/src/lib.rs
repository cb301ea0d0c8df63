//! Exists for the hot-reload tests (issue 14): the "rebuilt" version of `reload-counter`. Same
//! source file, same node type `ReloadCounter`, same ports; only the step differs (1000 instead
//! of 1), so a test can tell from the published values which build is running and check that
//! the count continued from the old build's state.

/// What the counter adds per tick in this build.
const STEP: u64 = 1000;
/// This build obeys `fail_file`: the rollback tests arm it before they swap this build in.
const OBEYS_FAIL_FILE: bool = true;

/// This build declares its one key, so a running config with any other is refused on reload.
const CONFIG: &[horus_plugin_api::ConfigKey] = &[
    horus_plugin_api::ConfigKey::str("fail_file")
        .doc("a file whose content makes a hook fail on demand (rollback tests)"),
    horus_plugin_api::ConfigKey::i64("save_delay_ms")
        .default(0)
        .doc("how long save_state takes (a slow state hand-over)"),
];

#[path = "../../reload-counter/src/counter.rs"]
mod counter;

pub use counter::ReloadCounter;

horus_plugin_api::export_plugin!(ReloadCounter);
