//! Live apply of a changed manifest (issue 16, first slice): the real `horus` binary runs two
//! counter nodes; the test changes the manifest under `--watch`, or sends it with `horus
//! apply`, and checks that exactly the change took effect: a `config` change swaps the node
//! with its count handed over (read on a `reliable` named topic, so every value must arrive
//! once, in order), settings change in place, nodes are added and removed, the other nodes keep
//! ticking, and an invalid or refused manifest, or an added node that fails to start, changes
//! nothing.

use horus_e2e::counts::{self, read_for};
use horus_e2e::{
    apply_in, finish, node, plugin, read_stats, rewrite, shm_leftovers, start_in, start_watching, Scratch,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

const TOPIC: &str = "apply/count";

fn namespace(test: &str) -> String {
    format!("apply-{}-{test}", std::process::id())
}

/// Two counters at 100 Hz: `counter` (config `tag`, published on the test's reliable topic) and
/// `other`; `extra` goes at the end (more nodes or keys).
fn text(lib: &Path, tag: &str, other: &str, extra: &str) -> String {
    format!(
        "[scheduler]\ntick_rate = 100\nmax_failures = 1000\n\n\
         [[node]]\nname = \"counter\"\nplugin = \"{lib}\"\nconfig = {{ tag = \"{tag}\" }}\n\n\
         [[node]]\nname = \"other\"\nplugin = \"{lib}\"\n{other}\n\n\
         [[connect]]\nfrom = \"counter.count\"\ntopic = \"{TOPIC}\"\nqos = \"reliable(1024)\"\n\n{extra}",
        lib = lib.display()
    )
}

fn setup(s: &Scratch) -> (PathBuf, PathBuf) {
    let lib = s.path().join("libcounter.so");
    std::fs::copy(plugin("reload-counter"), &lib).unwrap();
    let m = s.path().join("robot.toml");
    std::fs::write(&m, text(&lib, "a", "", "")).unwrap();
    (lib, m)
}

/// Issue #16: a `config` change saved under `--watch` replaces the node with its state (the
/// count continues, nothing lost on a reliable topic, generation 2) while the other node keeps
/// ticking untouched.
#[test]
fn a_config_change_under_watch_keeps_the_nodes_state_and_the_other_node_ticking() {
    let s = Scratch::new();
    let ns = namespace("watch-config");
    let (lib, m) = setup(&s);
    let mut sub = counts::reader(&ns, TOPIC);
    let stats = s.path().join("stats.json");
    let mut cmd = horus_e2e::horus(&["run", m.to_str().unwrap(), "--duration", "3s", "--watch"]);
    cmd.args(["--stats-json", stats.to_str().unwrap()])
        .env("HORUS_NAMESPACE", &ns);
    // Debug lines show each plugin inspected in a child process.
    cmd.env("RUST_LOG", "info,horus_host::graph=debug");
    let child = horus_e2e::spawn(cmd);
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(1200));
    let before = values.len();
    rewrite(&m, &text(&lib, "b", "", ""));
    read_for(&mut sub, &mut values, Duration::from_millis(1300));
    let out = finish(child);
    read_for(&mut sub, &mut values, Duration::ZERO);
    assert!(
        values.len() > before + 50,
        "ticks went on after the apply: {values:?}"
    );
    counts::assert_continuous(&values);
    assert!(
        out.stderr
            .contains("apply: +0 nodes, -0, ~1 changed (counter: config)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("the node runs with its new config"),
        "{}",
        out.stderr
    );
    // The plugin file the host runs is unchanged: the apply neither inspects nor reopens it.
    assert!(
        !out.stderr.contains("inspecting the plugin in a child process"),
        "{}",
        out.stderr
    );
    let stats = read_stats(&stats);
    let counter = node(&stats, "counter");
    assert_eq!(counter["generation"], 2, "{counter}");
    assert_eq!(counter["reload_failures"], 0, "{counter}");
    let other = node(&stats, "other");
    assert_eq!(other["generation"], 1, "{other}");
    assert_eq!(other["restarts"], 0, "{other}");
    // The other node never stopped: about 100 Hz for the whole run (a lower bound only).
    assert!(other["total_ticks"].as_u64().unwrap() > 200, "{other}");
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: `horus apply` against a running host (no `--watch`): `--dry-run` prints the plan
/// and changes nothing; a syntax error, an unknown node type and a refused change (`hot_reload`
/// turned on without `--watch`) change nothing and exit 2; then a rate and priority change applies in place.
#[test]
fn horus_apply_plans_refuses_and_applies_settings_in_place() {
    let s = Scratch::new();
    let ns = namespace("cli");
    let (lib, m) = setup(&s);
    let mut sub = counts::reader(&ns, TOPIC);
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "4s", &stats);
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(800));
    let mm = m.to_str().unwrap();

    let slower = text(&lib, "a", "rate_hz = 20\npriority = 5", "");
    rewrite(&m, &slower);
    let dry = apply_in(&ns, &[mm, "--dry-run"]);
    assert_eq!(dry.code(), 0, "{dry:?}");
    assert!(
        dry.stdout
            .contains("apply: +0 nodes, -0, ~1 changed (other: priority 1 → 5, rate_hz none → 20) (dry run"),
        "{dry:?}"
    );

    rewrite(&m, &text(&lib, "a", "rate_hz = [", ""));
    let bad = apply_in(&ns, &[mm]);
    assert_eq!(bad.code(), 2, "{bad:?}");
    assert!(
        bad.stderr.contains("robot.toml:"),
        "file:line:col: {}",
        bad.stderr
    );
    assert!(bad.stderr.contains("nothing changed"), "{}", bad.stderr);

    rewrite(&m, &text(&lib, "a", "type = \"NoSuchType\"", ""));
    let unknown = apply_in(&ns, &[mm]);
    assert_eq!(unknown.code(), 2, "{unknown:?}");
    assert!(unknown.stderr.contains("error[H0015]"), "{}", unknown.stderr);

    // Hot reload's thread starts with the host or not at all.
    rewrite(
        &m,
        &text(&lib, "a", "", "").replace("tick_rate = 100\n", "tick_rate = 100\nhot_reload = true\n"),
    );
    let refused = apply_in(&ns, &[mm]);
    assert_eq!(refused.code(), 2, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("apply refused: turning `hot_reload` on in a host started without it"),
        "{}",
        refused.stderr
    );

    rewrite(&m, &slower);
    let applied = apply_in(&ns, &[mm]);
    assert_eq!(applied.code(), 0, "{applied:?}");
    assert!(
        applied
            .stdout
            .contains("apply: +0 nodes, -0, ~1 changed (other: priority 1 → 5, rate_hz none → 20)"),
        "{applied:?}"
    );
    read_for(&mut sub, &mut values, Duration::from_millis(1500));
    let out = finish(child);
    read_for(&mut sub, &mut values, Duration::ZERO);
    counts::assert_continuous(&values);
    let stats = read_stats(&stats);
    let counter = node(&stats, "counter");
    assert_eq!(counter["generation"], 1, "nothing swapped the counter: {counter}");
    let other = node(&stats, "other");
    assert_eq!(other["generation"], 1, "settings change in place: {other}");
    assert_eq!(other["priority"], 5, "{other}");
    assert_eq!(other["tick_rate"], 20.0, "{other}");
    // 100 Hz until the apply, 20 Hz after: clearly fewer ticks than the counter.
    let (c, o) = (
        counter["total_ticks"].as_u64().unwrap(),
        other["total_ticks"].as_u64().unwrap(),
    );
    assert!(
        o + 50 < c,
        "other ticked slower after the apply: {o} vs {c}\n{}",
        out.stderr
    );
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// `horus apply` when no host runs the manifest: exit 1, saying so.
#[test]
fn horus_apply_without_a_host_exits_1() {
    let s = Scratch::new();
    let (_, m) = setup(&s);
    let out = apply_in(&namespace("none"), &[m.to_str().unwrap()]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("no running horus host"), "{}", out.stderr);
}

/// Issue #16: a `thread` node's config change reaches the new object: `imu-sim` logs the
/// config it runs with when created, and the new amplitude shows up after the apply.
#[test]
fn a_thread_nodes_new_config_reaches_the_new_object() {
    let s = Scratch::new();
    let ns = namespace("thread-config");
    let imu = |amplitude: u32| {
        format!(
            "[[node]]\nname = \"imu\"\nplugin = \"{}\"\nisolation = \"thread\"\nconfig = {{ amplitude_deg = {amplitude}.0 }}\n",
            plugin("imu-sim").display()
        )
    };
    let m = s.write("imu.toml", &imu(10));
    let stats = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "2500ms", &stats);
    std::thread::sleep(Duration::from_millis(1000));
    rewrite(&m, &imu(25));
    let out = finish(child);
    assert!(out.stderr.contains("config: amplitude_deg=10"), "{}", out.stderr);
    assert!(
        out.stderr.contains("config: amplitude_deg=25"),
        "the new object runs with the new config:\n{}",
        out.stderr
    );
    let stats = read_stats(&stats);
    let imu = node(&stats, "imu");
    assert_eq!(imu["generation"], 2, "{imu}");
    assert_eq!(imu["isolation"], "thread", "{imu}");
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// A node of `plugin`'s first node type, with `more` lines.
fn node_decl(name: &str, plugin: &Path, more: &str) -> String {
    format!(
        "[[node]]\nname = \"{name}\"\nplugin = \"{}\"\n{more}\n",
        plugin.display()
    )
}

/// The imu-sim node, on its own worker thread.
fn imu_decl() -> String {
    node_decl("imu", &plugin("imu-sim"), "isolation = \"thread\"")
}

/// Only `other` (a counter with no connection); the rest goes at the end.
fn base(lib: &Path, extra: &str) -> String {
    format!(
        "[scheduler]\ntick_rate = 100\nmax_failures = 1000\n\n{}{extra}",
        node_decl("other", lib, "")
    )
}

/// The counter, publishing on the test's reliable topic.
fn counter_decl(lib: &Path, more: &str) -> String {
    node_decl("counter", lib, more)
        + &format!("[[connect]]\nfrom = \"counter.count\"\ntopic = \"{TOPIC}\"\nqos = \"reliable(1024)\"\n\n")
}

/// Issue #16: nodes added under `--watch` start and run: an inline counter (sharing the running
/// node's library) publishes on a named topic from 0, every value once, and a `thread` imu-sim
/// ticks; the node that was there keeps ticking untouched.
#[test]
fn nodes_added_under_watch_start_and_tick() {
    let s = Scratch::new();
    let ns = namespace("watch-add");
    let lib = s.path().join("libcounter.so");
    std::fs::copy(plugin("reload-counter"), &lib).unwrap();
    let m = s.write("robot.toml", &base(&lib, ""));
    let mut sub = counts::reader(&ns, TOPIC);
    let stats = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "3s", &stats);
    let pid = child.id();
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(1000));
    assert!(values.is_empty(), "nothing publishes yet: {values:?}");
    rewrite(&m, &base(&lib, &(counter_decl(&lib, "") + &imu_decl())));
    read_for(&mut sub, &mut values, Duration::from_millis(1500));
    // The added counter shares the running copy of the unchanged file `other` uses: one copy of
    // it is mapped (each load maps a private copy named after the file).
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let copies: std::collections::BTreeSet<&str> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains("horus-load-") && p.ends_with("-libcounter.so"))
        .collect();
    assert_eq!(copies.len(), 1, "one copy of the counter's library: {copies:?}");
    let out = finish(child);
    read_for(&mut sub, &mut values, Duration::ZERO);
    assert!(
        out.stderr
            .contains("apply: +2 nodes, -0, ~0 changed, +1 connection"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("apply: node added and started"),
        "{}",
        out.stderr
    );
    counts::assert_continuous(&values);
    let stats = read_stats(&stats);
    let counter = node(&stats, "counter");
    assert!(counter["total_ticks"].as_u64().unwrap() > 50, "{counter}");
    assert_eq!(counter["isolation"], "inline", "{counter}");
    let imu = node(&stats, "imu");
    assert!(imu["total_ticks"].as_u64().unwrap() > 50, "{imu}");
    assert_eq!(imu["isolation"], "thread", "{imu}");
    assert!(imu["messages_sent"].as_u64().unwrap() > 50, "{imu}");
    let other = node(&stats, "other");
    assert_eq!(other["generation"], 1, "{other}");
    assert_eq!(other["restarts"], 0, "{other}");
    // It never stopped: about 100 Hz for the whole run (a lower bound only).
    assert!(other["total_ticks"].as_u64().unwrap() > 200, "{other}");
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: `horus apply` removes nodes: a `thread` imu-sim and then an inline counter are
/// shut down (imu-sim's shutdown logs what it published) and destroyed, gone from the stats,
/// while the counter on the test's topic goes on without a gap.
#[test]
fn nodes_removed_are_shut_down_and_the_others_keep_ticking() {
    let s = Scratch::new();
    let ns = namespace("remove");
    let lib = s.path().join("libcounter.so");
    std::fs::copy(plugin("reload-counter"), &lib).unwrap();
    let all = base(&lib, &(counter_decl(&lib, "") + &imu_decl()));
    let m = s.write("robot.toml", &all);
    let mut sub = counts::reader(&ns, TOPIC);
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "3s", &stats);
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(800));
    let mm = m.to_str().unwrap();

    rewrite(&m, &base(&lib, &counter_decl(&lib, "")));
    let removed = apply_in(&ns, &[mm]);
    assert_eq!(removed.code(), 0, "{removed:?}");
    assert!(
        removed.stdout.contains("apply: +0 nodes, -1, ~0 changed"),
        "{removed:?}"
    );
    read_for(&mut sub, &mut values, Duration::from_millis(300));
    // `other` goes too: `counter` moves up to its place (priority 1 → 0).
    let only_counter = format!(
        "[scheduler]\ntick_rate = 100\nmax_failures = 1000\n\n{}",
        counter_decl(&lib, "")
    );
    rewrite(&m, &only_counter);
    let removed = apply_in(&ns, &[mm]);
    assert_eq!(removed.code(), 0, "{removed:?}");
    assert!(
        removed
            .stdout
            .contains("apply: +0 nodes, -1, ~1 changed (counter: priority 1 → 0)"),
        "{removed:?}"
    );
    read_for(&mut sub, &mut values, Duration::from_millis(800));
    let out = finish(child);
    read_for(&mut sub, &mut values, Duration::ZERO);
    assert!(
        out.stderr.contains("published") && out.stderr.contains("IMU samples"),
        "imu-sim's shutdown ran:\n{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.matches("apply: node removed").count(),
        2,
        "{}",
        out.stderr
    );
    counts::assert_continuous(&values);
    let stats = read_stats(&stats);
    assert_eq!(stats.len(), 1, "only the counter is left: {stats:?}");
    let counter = node(&stats, "counter");
    assert_eq!(counter["generation"], 1, "{counter}");
    assert!(counter["total_ticks"].as_u64().unwrap() > 200, "{counter}");
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: an added node that fails to start changes nothing — not even the other node
/// added with it — and says why; `--dry-run` of an add plans it and adds nothing.
#[test]
fn an_added_node_that_fails_to_start_changes_nothing() {
    let s = Scratch::new();
    let ns = namespace("add-fails");
    let (lib, m) = setup(&s);
    let mut sub = counts::reader(&ns, TOPIC);
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "3s", &stats);
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(600));
    let mm = m.to_str().unwrap();
    let faulty = plugin("faulty-nodes");

    let good = node_decl("extra", &lib, "isolation = \"thread\"");
    rewrite(&m, &text(&lib, "a", "", &good));
    let dry = apply_in(&ns, &[mm, "--dry-run"]);
    assert_eq!(dry.code(), 0, "{dry:?}");
    assert!(
        dry.stdout
            .contains("apply: +1 node, -0, ~0 changed (dry run: nothing applied)"),
        "{dry:?}"
    );

    // `SlowInit` refuses a negative `init_ms` in `create`: inline (on the scheduler thread,
    // after `extra` came up on its worker), then on a worker thread of its own.
    for isolation in ["inline", "thread"] {
        let bad = node_decl(
            "bad",
            &faulty,
            &format!("type = \"SlowInit\"\nisolation = \"{isolation}\"\nconfig = {{ init_ms = -1 }}"),
        );
        rewrite(&m, &text(&lib, "a", "", &(good.clone() + &bad)));
        let failed = apply_in(&ns, &[mm]);
        assert_eq!(failed.code(), 1, "{isolation}: {failed:?}");
        assert!(
            failed.stderr.contains("apply failed, nothing changed")
                && failed.stderr.contains("node `bad` failed to start (create)")
                && failed.stderr.contains("init_ms"),
            "{isolation}: {}",
            failed.stderr
        );
    }
    // The host runs what it ran: the same manifest again is no change at all.
    rewrite(&m, &text(&lib, "a", "", ""));
    let same = apply_in(&ns, &[mm]);
    assert_eq!(same.code(), 0, "{same:?}");
    assert!(same.stdout.contains("apply: no changes"), "{same:?}");
    read_for(&mut sub, &mut values, Duration::from_millis(1000));
    let out = finish(child);
    read_for(&mut sub, &mut values, Duration::ZERO);
    counts::assert_continuous(&values);
    let stats = read_stats(&stats);
    let names: Vec<&str> = stats.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["counter", "other"], "{}", out.stderr);
    assert_eq!(node(&stats, "counter")["generation"], 1);
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: a node added live is watched like the nodes of the start: its tick outruns its
/// `watchdog_ms`, and the watchdog says so (in the log and its stats).
#[test]
fn an_added_node_is_watched_by_the_watchdog() {
    let s = Scratch::new();
    let ns = namespace("watch-watchdog");
    let lib = s.path().join("libcounter.so");
    std::fs::copy(plugin("reload-counter"), &lib).unwrap();
    let m = s.write("robot.toml", &base(&lib, ""));
    let stats = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "2500ms", &stats);
    std::thread::sleep(Duration::from_millis(800));
    let slow = node_decl(
        "slow",
        &plugin("faulty-nodes"),
        "type = \"Slow\"\nwatchdog_ms = 50\nrate_hz = 2\nconfig = { sleep_ms = 300 }",
    );
    rewrite(&m, &base(&lib, &slow));
    let out = finish(child);
    assert!(
        out.stderr.contains("apply: node added and started"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("watchdog expired") && l.contains("node=slow")),
        "{}",
        out.stderr
    );
    let stats = read_stats(&stats);
    let slow = node(&stats, "slow");
    assert_eq!(slow["watchdog_expired"], true, "{slow}");
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: a `process` node added with `horus apply` runs in its own worker process, and
/// removed again its worker ends: its shutdown ran, no worker process is left.
#[test]
fn a_process_node_is_added_and_removed_live() {
    let s = Scratch::new();
    let ns = namespace("process");
    let lib = s.path().join("libcounter.so");
    std::fs::copy(plugin("reload-counter"), &lib).unwrap();
    let m = s.write("robot.toml", &base(&lib, ""));
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "3s", &stats);
    let pid = child.id();
    let mm = m.to_str().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let imu = node_decl("imu", &plugin("imu-sim"), "isolation = \"process\"");
    rewrite(&m, &base(&lib, &imu));
    let added = apply_in(&ns, &[mm]);
    assert_eq!(added.code(), 0, "{added:?}");
    std::thread::sleep(Duration::from_millis(600));
    // Child processes of the host, whichever of its threads started them.
    let workers = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|tasks| {
                tasks
                    .filter_map(|t| t.ok())
                    .map(|t| {
                        std::fs::read_to_string(t.path().join("children"))
                            .unwrap_or_default()
                            .split_whitespace()
                            .count()
                    })
                    .sum::<usize>()
            })
            .unwrap_or(0)
    };
    assert_eq!(workers(), 1, "the added node's worker process runs");
    rewrite(&m, &base(&lib, ""));
    let removed = apply_in(&ns, &[mm]);
    assert_eq!(removed.code(), 0, "{removed:?}");
    assert!(removed.stdout.contains("apply: +0 nodes, -1"), "{removed:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(workers(), 0, "the removed node's worker process is gone");
    let out = finish(child);
    assert!(
        out.stderr.contains("published") && out.stderr.contains("IMU samples"),
        "imu-sim's shutdown ran in its worker:\n{}",
        out.stderr
    );
    let stats = read_stats(&stats);
    assert!(
        stats.iter().all(|n| n["name"] != "imu"),
        "the removed node left the stats"
    );
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// `counter` (from `counter_lib`, on the test's reliable topic, with `more`) and `other` (from
/// `other_lib`), at 100 Hz.
fn pair(counter_lib: &Path, more: &str, other_lib: &Path) -> String {
    base(other_lib, &counter_decl(counter_lib, more))
}

/// Issue #16: a node's `plugin` changed to another file with the same node type replaces the
/// node with its state handed over (the count goes on, every value once, in order), runs the
/// new file's code from then on (generation 2, the stats name the new file), and leaves the
/// other node alone. `inline` under `--watch` (hot reload's reaper unloads the old library,
/// and a later build of the old file is swapped into the node that still runs it only),
/// `thread` and `process` through `horus apply` (no reaper: the old library is released once
/// its worker thread has ended; the worker process loads the new file itself).
#[test]
fn a_plugin_change_replaces_the_node_with_its_state() {
    plugin_changed("inline", true);
    plugin_changed("thread", false);
    plugin_changed("process", false);
}

fn plugin_changed(isolation: &str, watch: bool) {
    let s = Scratch::new();
    let ns = namespace(&format!("plugin-{isolation}"));
    let lib = s.path().join("libcounter.so");
    let lib2 = s.path().join("libcounter2.so");
    std::fs::copy(plugin("reload-counter"), &lib).unwrap();
    std::fs::copy(plugin("reload-counter"), &lib2).unwrap();
    let more = format!("isolation = \"{isolation}\"");
    let m = s.write("robot.toml", &pair(&lib, &more, &lib));
    let mut sub = counts::reader(&ns, TOPIC);
    let stats = s.path().join("stats.json");
    let child = if watch {
        start_watching(&m, &ns, "4s", &stats)
    } else {
        start_in(&ns, &m, "3s", &stats)
    };
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(1000));
    let before = values.len();
    rewrite(&m, &pair(&lib2, &more, &lib));
    if !watch {
        let applied = apply_in(&ns, &[m.to_str().unwrap()]);
        assert_eq!(applied.code(), 0, "{applied:?}");
        assert!(
            applied
                .stdout
                .contains("apply: +0 nodes, -0, ~1 changed (counter: plugin)"),
            "{applied:?}"
        );
    }
    read_for(&mut sub, &mut values, Duration::from_millis(1200));
    if watch {
        // A new build of the file the counter left: hot reload swaps it into `other`, which
        // still runs it, and not into the counter (its count keeps its step of 1).
        let tmp = lib.with_extension("so.tmp");
        std::fs::copy(plugin("reload-counter-v2"), &tmp).unwrap();
        std::fs::rename(&tmp, &lib).unwrap();
        read_for(&mut sub, &mut values, Duration::from_millis(1000));
    }
    let out = finish(child);
    read_for(&mut sub, &mut values, Duration::ZERO);
    assert!(
        values.len() > before + 50,
        "ticks went on after the apply: {values:?}"
    );
    counts::assert_continuous(&values);
    assert!(
        out.stderr.contains("apply: the node runs the code of") && out.stderr.contains("libcounter2.so"),
        "{}",
        out.stderr
    );
    let stats = read_stats(&stats);
    let counter = node(&stats, "counter");
    assert_eq!(counter["generation"], 2, "{counter}");
    assert_eq!(counter["reload_failures"], 0, "{counter}");
    assert_eq!(counter["isolation"], isolation, "{counter}");
    assert!(
        counter["plugin"].as_str().unwrap().ends_with("libcounter2.so"),
        "{counter}"
    );
    let other = node(&stats, "other");
    let reloaded = if watch { 2 } else { 1 };
    assert_eq!(other["generation"], reloaded, "{other}\n{}", out.stderr);
    assert_eq!(other["restarts"], 0, "{other}");
    assert!(other["total_ticks"].as_u64().unwrap() > 200, "{other}");
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: the config of `isolation = "process"` nodes changes live: the worker process
/// makes the new object with the new config (imu-sim logs it when created) and hands the
/// state over (the counter's count goes on, every value once, in order).
#[test]
fn a_process_nodes_config_change_reaches_the_new_object_with_its_state() {
    let s = Scratch::new();
    let ns = namespace("process-config");
    let lib = s.path().join("libcounter.so");
    std::fs::copy(plugin("reload-counter"), &lib).unwrap();
    let manifest = |tag: &str, amplitude: u32| {
        format!(
            "[scheduler]\ntick_rate = 100\nmax_failures = 1000\n\n{}{}",
            counter_decl(
                &lib,
                &format!("isolation = \"process\"\nconfig = {{ tag = \"{tag}\" }}")
            ),
            node_decl(
                "imu",
                &plugin("imu-sim"),
                &format!("isolation = \"process\"\nconfig = {{ amplitude_deg = {amplitude}.0 }}")
            )
        )
    };
    let m = s.write("robot.toml", &manifest("a", 10));
    let mut sub = counts::reader(&ns, TOPIC);
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "3500ms", &stats);
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(1200));
    let before = values.len();
    rewrite(&m, &manifest("b", 25));
    let applied = apply_in(&ns, &[m.to_str().unwrap()]);
    assert_eq!(applied.code(), 0, "{applied:?}");
    assert!(
        applied
            .stdout
            .contains("apply: +0 nodes, -0, ~2 changed (counter: config; imu: config)"),
        "{applied:?}"
    );
    read_for(&mut sub, &mut values, Duration::from_millis(1200));
    let out = finish(child);
    read_for(&mut sub, &mut values, Duration::ZERO);
    assert!(
        values.len() > before + 50,
        "ticks went on after the apply: {values:?}"
    );
    counts::assert_continuous(&values);
    assert!(out.stderr.contains("config: amplitude_deg=10"), "{}", out.stderr);
    assert!(
        out.stderr.contains("config: amplitude_deg=25"),
        "the new object runs with the new config:\n{}",
        out.stderr
    );
    let stats = read_stats(&stats);
    for name in ["counter", "imu"] {
        let n = node(&stats, name);
        assert_eq!(n["generation"], 2, "{n}");
        assert_eq!(n["reload_failures"], 0, "{n}");
        assert_eq!(n["restarts"], 0, "{n}");
        assert_eq!(n["isolation"], "process", "{n}");
    }
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// The repository's Python environment (made by `./scripts/python-env.sh`).
fn venv() -> String {
    let v = horus_e2e::repo_root().join(".venv");
    assert!(
        v.join("bin/python").exists(),
        "{} is missing: run ./scripts/python-env.sh (scripts/test.sh does)",
        v.display()
    );
    v.display().to_string()
}

/// A Python counter that adds its config's `step` per tick (read at each tick, so it is the
/// object's own config), publishing each count on the test's topic; `save_state` and
/// `restore_state` hand the count over. `Counter2` is the same with `step * 2`.
const PY_COUNTER: &str = r#"import struct
import horus


class Counter(horus.Node):
    FACTOR = 1

    def __init__(self):
        super().__init__()
        self.count = 0

    def tick(self):
        self.count += self.config["step"] * self.FACTOR
        self.send("apply/count", struct.pack("<Q", self.count))

    def save_state(self):
        return {"count": self.count}

    def restore_state(self, state):
        self.count = state["count"]


class Counter2(Counter):
    FACTOR = 2
"#;

/// The steps between consecutive values, each run of equal steps once.
fn step_runs(values: &[u64]) -> Vec<u64> {
    let mut runs: Vec<u64> = Vec::new();
    for w in values.windows(2) {
        let step = w[1].wrapping_sub(w[0]);
        if runs.last() != Some(&step) {
            runs.push(step);
        }
    }
    runs
}

/// Issue #16 (item 4): a manifest Python node's `config` changes live, with its state: the new
/// object sees the new config (its step) and goes on from the old one's count; then its
/// `class` changes (the file imported afresh), the count still going on. A `venv` change is
/// refused, saying why.
#[test]
fn a_python_nodes_config_and_class_change_live_with_its_state() {
    python_changed("inline");
}

/// As above, for a Python node on a worker thread of its own (each object on a new worker).
#[test]
fn a_thread_python_nodes_config_and_class_change_live_with_its_state() {
    python_changed("thread");
}

fn python_changed(isolation: &str) {
    let s = Scratch::new();
    let ns = namespace(&format!("python-{isolation}"));
    s.write("counter.py", PY_COUNTER);
    let venv = venv();
    let manifest = |class: &str, step: u64, venv: &str| {
        format!(
            "[scheduler]\ntick_rate = 100\nmax_failures = 1000\n\n[[node]]\nname = \"counter\"\n\
             python = \"counter.py\"\nclass = \"{class}\"\nvenv = \"{venv}\"\nconfig = {{ step = {step} }}\n\
             isolation = \"{isolation}\"\n"
        )
    };
    let m = s.write("robot.toml", &manifest("Counter", 1, &venv));
    let mm = m.to_str().unwrap();
    let mut sub = counts::reader(&ns, TOPIC);
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "6s", &stats);
    let mut values = Vec::new();
    let seen = |step: u64, after: usize| {
        move |v: &[u64]| {
            v.len() > after + 10
                && v.windows(2)
                    .rev()
                    .take(5)
                    .all(|w| w[1].wrapping_sub(w[0]) == step)
        }
    };
    assert!(
        counts::read_until(&mut sub, &mut values, Duration::from_secs(4), seen(1, 20)),
        "{values:?}"
    );
    rewrite(&m, &manifest("Counter", 1000, &venv));
    let applied = apply_in(&ns, &[mm]);
    assert_eq!(applied.code(), 0, "{applied:?}");
    assert!(applied.stdout.contains("(counter: config)"), "{applied:?}");
    let n = values.len();
    assert!(
        counts::read_until(&mut sub, &mut values, Duration::from_secs(2), seen(1000, n)),
        "the new object runs with the new step: {:?}",
        step_runs(&values)
    );
    rewrite(&m, &manifest("Counter2", 1000, &venv));
    let applied = apply_in(&ns, &[mm]);
    assert_eq!(applied.code(), 0, "{applied:?}");
    assert!(applied.stdout.contains("(counter: python)"), "{applied:?}");
    let n = values.len();
    assert!(
        counts::read_until(&mut sub, &mut values, Duration::from_secs(2), seen(2000, n)),
        "the new class runs: {:?}",
        step_runs(&values)
    );
    // Another path to an environment (the same one, seen through a link: another `venv`).
    let other = s.path().join("other-venv");
    std::os::unix::fs::symlink(&venv, &other).unwrap();
    rewrite(&m, &manifest("Counter2", 1000, other.to_str().unwrap()));
    let refused = apply_in(&ns, &[mm]);
    assert_eq!(refused.code(), 2, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("apply refused: node `counter`: a Python node's `venv` cannot change live"),
        "{refused:?}"
    );
    let out = finish(child);
    counts::drain(&mut sub, &mut values);
    assert_eq!(values[0], 1, "{values:?}");
    assert_eq!(
        step_runs(&values),
        vec![1, 1000, 2000],
        "each object went on from the count of the one before (nothing lost, nothing twice)\n{}",
        out.stderr
    );
    let stats = read_stats(&stats);
    let counter = node(&stats, "counter");
    assert_eq!(counter["generation"], 3, "{counter}");
    assert_eq!(counter["reload_failures"], 0, "{counter}");
    assert_eq!(counter["isolation"], isolation, "{counter}");
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: a node type whose ports cannot take the running node's place (hello-counter's
/// `Summer` has an input `numbers` where the running `Counter` has an output `count`) is refused
/// before anything changes, naming the node and the port; the node runs on untouched.
#[test]
fn a_node_type_with_other_ports_is_refused_and_changes_nothing() {
    let s = Scratch::new();
    let ns = namespace("type-ports");
    let hello = plugin("hello-counter");
    let counter = node_decl("other", &hello, "type = \"Counter\"");
    let m = s.write(
        "robot.toml",
        &format!("[scheduler]\ntick_rate = 100\nmax_failures = 1000\n\n{counter}"),
    );
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "2s", &stats);
    std::thread::sleep(Duration::from_millis(500));
    let decl = node_decl("other", &hello, "type = \"Summer\"");
    rewrite(
        &m,
        &format!("[scheduler]\ntick_rate = 100\nmax_failures = 1000\n\n{decl}"),
    );
    let refused = apply_in(&ns, &[m.to_str().unwrap()]);
    assert_eq!(refused.code(), 2, "{refused:?}");
    assert!(
        refused.stderr.contains(
            "apply refused: node `other`: node type `Summer` of "
        ) && refused.stderr.contains(
            "cannot replace the running `Counter` on its topics: node type `Summer` removed the output `count`"
        ),
        "{}",
        refused.stderr
    );
    let out = finish(child);
    let stats = read_stats(&stats);
    let other = node(&stats, "other");
    assert_eq!(other["generation"], 1, "{other}");
    assert_eq!(other["node_type"], "Counter", "{other}\n{}", out.stderr);
    assert!(other["total_ticks"].as_u64().unwrap() > 150, "{other}");
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: `logging`, a node's `watchdog_ms` and the scheduler's watchdog settings apply in
/// place, with no swap (generation 1, no restart), on every isolation: hello-counter logs its
/// count every second and `stopped at …` at shutdown, which `logging = false` hides, in the
/// worker thread and the worker process too.
#[test]
fn logging_and_watchdogs_apply_in_place() {
    let s = Scratch::new();
    let ns = namespace("in-place");
    let hello = plugin("hello-counter");
    let manifest = |more: &str, own: &str, scheduler: &str| {
        let mut text = format!("[scheduler]\ntick_rate = 100\nmax_failures = 1000\n{scheduler}\n");
        for isolation in ["inline", "thread", "process"] {
            let extra = if isolation == "inline" { own } else { "" };
            text += &node_decl(
                &format!("c_{isolation}"),
                &hello,
                &format!("type = \"Counter\"\nisolation = \"{isolation}\"\n{more}\n{extra}"),
            );
        }
        text
    };
    let m = s.write("robot.toml", &manifest("", "", ""));
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "3s", &stats);
    std::thread::sleep(Duration::from_millis(800));
    rewrite(
        &m,
        &manifest(
            "logging = false",
            "watchdog_ms = 500",
            "watchdog_enabled = true\nwatchdog_timeout_ms = 300",
        ),
    );
    let applied = apply_in(&ns, &[m.to_str().unwrap()]);
    assert_eq!(applied.code(), 0, "{applied:?}");
    assert!(
        applied.stdout.contains(
            "c_inline: watchdog_ms none → 500, logging true → false; c_thread: logging true → false"
        ) && applied.stdout.contains("scheduler: watchdog"),
        "{applied:?}"
    );
    let out = finish(child);
    for isolation in ["inline", "thread", "process"] {
        let name = format!("c_{isolation}");
        let lines: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.contains(&format!("node=\"{name}\"")))
            .collect();
        assert!(
            lines.iter().any(|l| l.contains("count is 0")),
            "{name} logged before the apply:\n{}",
            out.stderr
        );
        assert!(
            !lines.iter().any(|l| l.contains("stopped at")),
            "{name}'s shutdown line is hidden after the apply:\n{}",
            out.stderr
        );
    }
    let stats = read_stats(&stats);
    for (isolation, timeout) in [("inline", 500), ("thread", 300), ("process", 300)] {
        let n = node(&stats, &format!("c_{isolation}"));
        assert_eq!(n["generation"], 1, "in place, no swap: {n}");
        assert_eq!(n["restarts"], 0, "{n}");
        assert_eq!(n["watchdog_enabled"], true, "{n}");
        assert_eq!(n["watchdog_timeout_ms"], timeout, "{n}");
        assert!(n["total_ticks"].as_u64().unwrap() > 150, "{n}");
    }
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: a node removed by `horus apply` from a host started without `--watch` has its
/// library unloaded (by the run's `horus-unload` thread) once no node uses it: the copy the
/// host mapped is gone from its memory map, while the other node's stays.
#[test]
fn a_removed_nodes_library_is_unloaded_without_watch() {
    let s = Scratch::new();
    let ns = namespace("unload");
    let lib = s.path().join("libcounter.so");
    std::fs::copy(plugin("reload-counter"), &lib).unwrap();
    let other = s.path().join("libother.so");
    std::fs::copy(plugin("reload-counter"), &other).unwrap();
    let both = base(&lib, &counter_decl(&other, ""));
    let m = s.write("robot.toml", &both);
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "3s", &stats);
    let pid = child.id();
    let mapped = |name: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("horus-load-") && l.contains(&format!("-{name}")))
    };
    std::thread::sleep(Duration::from_millis(800));
    assert!(mapped("libother.so") && mapped("libcounter.so"), "both loaded");
    rewrite(&m, &base(&lib, ""));
    let removed = apply_in(&ns, &[m.to_str().unwrap()]);
    assert_eq!(removed.code(), 0, "{removed:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while mapped("libother.so") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!mapped("libother.so"), "the removed node's library is unloaded");
    assert!(mapped("libcounter.so"), "the running node's stays");
    finish(child);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}
