//! Hot reload (`horus run --watch`), issue #14: the real `horus` binary runs a counter node from
//! a plugin file in the test's folder, and the test replaces that file the way cargo does (a new
//! file renamed over the old name) while the host runs. The test reads the counter's named topic
//! itself, `reliable`, so every value must arrive once, in order.
//!
//! `reload-counter` adds 1 per tick, `reload-counter-v2` (the same code) adds 1000 and, unlike
//! v1, obeys a `fail_file` that makes one of its hooks fail; `reload-counter-ports` changes the
//! output's message type.

use horus_e2e::counts::{self, drain, read_for};
use horus_e2e::{finish, node, plugin, read_stats, shm_leftovers, start_watching, Scratch};
use std::path::{Path, PathBuf};
use std::time::Duration;

const TOPIC: &str = "reload/count";

/// A namespace of the test's own.
fn namespace(test: &str) -> String {
    format!("reload-{}-{test}", std::process::id())
}

/// Puts `source` at `target` as cargo does: written beside it, then renamed over it.
fn replace(source: &Path, target: &Path) {
    let tmp = target.with_extension("so.tmp");
    std::fs::copy(source, &tmp).expect("copy the new build");
    std::fs::rename(&tmp, target).expect("rename it into place");
}

/// A manifest running the counter from `lib` at 100 Hz, published on the test's topic; `scheduler`
/// adds lines to its `[scheduler]` table.
fn manifest(s: &Scratch, lib: &Path, config: &str, scheduler: &str) -> PathBuf {
    s.write(
        "reload.toml",
        &format!(
            "[scheduler]\ntick_rate = 100\nmax_failures = 1000\n{scheduler}\n[[node]]\nname = \"counter\"\nplugin = \"{}\"\n\
             type = \"ReloadCounter\"\n{config}\n[[connect]]\nfrom = \"counter.count\"\ntopic = \"{TOPIC}\"\nqos = \"reliable(1024)\"\n",
            lib.display()
        ),
    )
}

/// Every value once, in order: steps of 1 (v1) then, from the swap on, of 1000 (v2), and the
/// first v2 value follows the last v1 value by one (the count was handed over).
fn assert_continues(values: &[u64], steps: &[u64]) {
    assert!(values.len() > 20, "the counter ran: {values:?}");
    for w in values.windows(2) {
        let step = w[1].wrapping_sub(w[0]);
        assert!(
            steps.contains(&step),
            "a gap or a duplicate between {} and {}: {values:?}",
            w[0],
            w[1]
        );
    }
}

/// Issue #14: a rebuilt node picks up in the running host with its state, nothing lost.
#[test]
fn a_rebuilt_counter_continues_its_count_with_new_code_and_nothing_lost() {
    continues_with_new_code("inline");
}

/// As above, for a node on its own worker thread: the new code comes up on a new worker with
/// the old one's endpoints and state.
#[test]
fn a_rebuilt_thread_node_continues_its_count_with_new_code_and_nothing_lost() {
    continues_with_new_code("thread");
}

/// As above, for a node in a worker process, which swaps its own copy of the new build in and
/// keeps its endpoints.
#[test]
fn a_rebuilt_process_node_continues_its_count_with_new_code_and_nothing_lost() {
    continues_with_new_code("process");
}

fn continues_with_new_code(isolation: &str) {
    let s = Scratch::new();
    let ns = namespace(&format!("continue-{isolation}"));
    let lib = s.path().join("libcounter.so");
    std::fs::copy(plugin("reload-counter"), &lib).unwrap();
    let m = manifest(&s, &lib, &format!("isolation = \"{isolation}\""), "");
    let mut sub = counts::reader(&ns, TOPIC);
    let stats_path = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "3s", &stats_path);
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(1200));
    let before = values.len();
    replace(&plugin("reload-counter-v2"), &lib);
    read_for(&mut sub, &mut values, Duration::from_millis(1200));
    let out = finish(child);
    drain(&mut sub, &mut values);
    assert_continues(&values, &[1, 1000]);
    let switch = values
        .windows(2)
        .position(|w| w[1] - w[0] == 1000)
        .expect("v2's values arrived");
    assert!(
        switch + 1 >= before,
        "the swap happened after the reload: {values:?}"
    );
    assert!(
        values[switch + 1..].windows(2).all(|w| w[1] - w[0] == 1000),
        "v2 throughout after the swap"
    );
    assert!(
        out.stderr.contains("hot reload: running the new code"),
        "{}",
        out.stderr
    );
    let stats = read_stats(&stats_path);
    let counter = node(&stats, "counter");
    assert_eq!(
        (counter["generation"].as_u64(), counter["reloads"].as_u64()),
        (Some(2), Some(1)),
        "{counter}"
    );
    assert_eq!(counter["reload_failures"], 0, "{counter}");
    assert_eq!(counter["pinned_libraries"], 0, "{counter}");
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #14: each way a reload can fail leaves the old code running, says why in one line
/// naming the node and the file, and counts it; the count goes on in steps of 1 throughout.
#[test]
fn every_rollback_cause_keeps_the_old_code_running() {
    every_rollback_cause("inline");
}

/// As above, on a worker thread (the new code's worker hands the endpoints back).
#[test]
fn every_rollback_cause_keeps_the_old_code_of_a_thread_node_running() {
    every_rollback_cause("thread");
}

/// As above, in a worker process (its own copy of the new build is refused or swapped back).
#[test]
fn every_rollback_cause_keeps_the_old_code_of_a_process_node_running() {
    every_rollback_cause("process");
}

fn every_rollback_cause(isolation: &str) {
    let s = Scratch::new();
    let ns = namespace(&format!("rollback-{isolation}"));
    let lib = s.path().join("libcounter.so");
    std::fs::copy(plugin("reload-counter"), &lib).unwrap();
    let fail = s.path().join("fail");
    // `hot_reload = true` in the manifest does what `--watch` does.
    let m = manifest(
        &s,
        &lib,
        &format!(
            "isolation = \"{isolation}\"\nconfig = {{ fail_file = \"{}\" }}",
            fail.display()
        ),
        "hot_reload = true\n",
    );
    let garbage = s.write("garbage.so", "not a library\n");
    let causes: Vec<(&str, PathBuf, &str)> = vec![
        ("", garbage, "rolled back"),
        ("", plugin("faulty-abi-version"), "ABI"),
        ("", plugin("hello-counter"), "has no node type `ReloadCounter`"),
        (
            "",
            plugin("reload-counter-ports"),
            "the output `count` now carries `f64`",
        ),
        (
            "create-error",
            plugin("reload-counter-v2"),
            "`create` of the new code failed",
        ),
        (
            "restore-panic",
            plugin("reload-counter-v2"),
            "`restore_state` of the new code failed",
        ),
        (
            "init-error",
            plugin("reload-counter-v2"),
            "`init` of the new code failed",
        ),
        (
            "tick-panic",
            plugin("reload-counter-v2"),
            "the new code's first tick failed",
        ),
    ];
    let mut sub = counts::reader(&ns, TOPIC);
    let stats_path = s.path().join("stats.json");
    let child = horus_e2e::start_in(&ns, &m, "7s", &stats_path);
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(800));
    for (fail_with, build, _) in &causes {
        std::fs::write(&fail, fail_with).unwrap();
        replace(build, &lib);
        read_for(&mut sub, &mut values, Duration::from_millis(600));
    }
    let out = finish(child);
    drain(&mut sub, &mut values);
    assert_continues(&values, &[1]);
    for (_, build, why) in &causes {
        assert!(
            out.stderr
                .lines()
                .any(|l| l.contains("node=counter") && l.contains("rolled back") && l.contains(why)),
            "no rollback line for {} ({why}):\n{}",
            build.display(),
            out.stderr
        );
    }
    let stats = read_stats(&stats_path);
    let counter = node(&stats, "counter");
    assert_eq!(counter["generation"], 1, "{counter}");
    assert_eq!(
        counter["reload_failures"].as_u64(),
        Some(causes.len() as u64),
        "{counter}"
    );
    assert!(
        counter["last_reload_error"]
            .as_str()
            .unwrap()
            .contains("first tick"),
        "{counter}"
    );
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #14: 50 reloads of an `inline` node leave one copy of the library mapped, and the
/// host's threads and fds as they were, RSS within 5 MB.
#[test]
fn fifty_reloads_leak_no_library_copy_thread_or_fd() {
    fifty_reloads_leak_nothing("inline");
}

/// As above, on a worker thread: each generation's worker ends before its library is unloaded.
#[test]
fn fifty_reloads_of_a_thread_node_leak_no_library_copy_thread_or_fd() {
    fifty_reloads_leak_nothing("thread");
}

const RELOADS: usize = 50;

fn fifty_reloads_leak_nothing(isolation: &str) {
    let s = Scratch::new();
    let ns = namespace(&format!("leak-{isolation}"));
    let lib = s.path().join("libcounter.so");
    std::fs::copy(plugin("reload-counter"), &lib).unwrap();
    let m = manifest(&s, &lib, &format!("isolation = \"{isolation}\""), "");
    let mut sub = counts::reader(&ns, TOPIC);
    let stats_path = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "60s", &stats_path);
    let pid = child.id();
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(800));
    let (threads, fds, rss) = (count_dir(pid, "task"), count_dir(pid, "fd"), rss_kib(pid));
    let builds = [plugin("reload-counter-v2"), plugin("reload-counter")];
    for i in 0..RELOADS {
        replace(&builds[i % 2], &lib);
        read_for(&mut sub, &mut values, Duration::from_millis(250));
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let copies: std::collections::BTreeSet<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains("horus-load-"))
        .collect();
    assert_eq!(copies.len(), 1, "only the current copy is mapped: {copies:?}");
    // The private copies are gone from disk (each is removed once mapped).
    let on_disk: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("horus-load-{pid}-")))
        .collect();
    assert_eq!(on_disk, Vec::<String>::new(), "private copies left on disk");
    assert_eq!(count_dir(pid, "task"), threads, "threads");
    assert_eq!(count_dir(pid, "fd"), fds, "fds");
    let grown = rss_kib(pid).saturating_sub(rss);
    assert!(grown < 5 * 1024, "RSS grew by {grown} KiB over {RELOADS} reloads");
    horus_e2e::interrupt(&child);
    let out = finish(child);
    drain(&mut sub, &mut values);
    assert_continues(&values, &[1, 1000]);
    let stats = read_stats(&stats_path);
    let counter = node(&stats, "counter");
    assert_eq!(counter["reloads"], RELOADS, "{counter}\n{}", out.stderr);
    assert_eq!(counter["pinned_libraries"], 0, "{counter}");
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn count_dir(pid: u32, what: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/{what}")).map_or(0, |d| d.count())
}

/// Issue 15: a new build whose config schema refuses the running node's `config` (here v2, which
/// declares only `fail_file`, replacing a v1 that declares no schema and runs with `stepp`) is
/// rolled back like any other failure, with the schema's reason; the old build keeps counting.
#[test]
fn a_new_build_whose_config_schema_refuses_the_running_config_is_rolled_back() {
    let s = Scratch::new();
    let ns = namespace("schema");
    let lib = s.path().join("libcounter.so");
    std::fs::copy(plugin("reload-counter"), &lib).unwrap();
    let m = manifest(&s, &lib, "config = { stepp = 5 }", "hot_reload = true\n");
    let mut sub = counts::reader(&ns, TOPIC);
    let stats_path = s.path().join("stats.json");
    let child = horus_e2e::start_in(&ns, &m, "3s", &stats_path);
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(800));
    replace(&plugin("reload-counter-v2"), &lib);
    read_for(&mut sub, &mut values, Duration::from_millis(800));
    let out = finish(child);
    drain(&mut sub, &mut values);
    assert_continues(&values, &[1]);
    assert!(
        out.stderr.lines().any(|l| l.contains("node=counter")
            && l.contains("rolled back")
            && l.contains("config schema refuses the node's config: unknown config key `stepp`")),
        "no schema rollback line:\n{}",
        out.stderr
    );
    let stats = read_stats(&stats_path);
    let counter = node(&stats, "counter");
    assert_eq!(counter["generation"], 1, "{counter}");
    assert_eq!(counter["reload_failures"].as_u64(), Some(1), "{counter}");
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #14: a `thread` node's swap never holds up the scheduler thread: while the old code's
/// `save_state` takes 3 s, another node keeps ticking at its rate, and the counter then carries
/// on with its count in the new code.
#[test]
fn a_slow_state_hand_over_of_a_thread_node_holds_up_only_that_node() {
    let s = Scratch::new();
    let ns = namespace("slow-save");
    let lib = s.path().join("libcounter.so");
    std::fs::copy(plugin("reload-counter"), &lib).unwrap();
    let m = s.write(
        "slow.toml",
        &format!(
            "[scheduler]\ntick_rate = 100\n\n[[node]]\nname = \"counter\"\nplugin = \"{}\"\ntype = \"ReloadCounter\"\n\
             isolation = \"thread\"\nconfig = {{ save_delay_ms = 3000 }}\n\n[[node]]\nname = \"other\"\nplugin = \"{}\"\n\
             type = \"Counter\"\n\n[[connect]]\nfrom = \"counter.count\"\ntopic = \"{TOPIC}\"\nqos = \"reliable(1024)\"\n",
            lib.display(),
            plugin("hello-counter").display()
        ),
    );
    let mut sub = counts::reader(&ns, TOPIC);
    let stats_path = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "6s", &stats_path);
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(800));
    replace(&plugin("reload-counter-v2"), &lib);
    let out = finish(child);
    drain(&mut sub, &mut values);
    assert_continues(&values, &[1, 1000]);
    assert!(
        values.windows(2).any(|w| w[1] - w[0] == 1000),
        "the new code ran after the slow hand-over: {values:?}\n{}",
        out.stderr
    );
    let stats = read_stats(&stats_path);
    let other = node(&stats, "other");
    // 6 s at 100 Hz is ~600 ticks; a scheduler thread held for the 3 s save would leave ≤ ~300.
    let ticks = other["total_ticks"].as_u64().unwrap();
    assert!(
        ticks >= 450,
        "the other node kept its rate: {ticks} ticks\n{other}"
    );
    assert_eq!(node(&stats, "counter")["generation"], 2, "{}", out.stderr);
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}
