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

/// Every value once, in order, from 0: the count went on across the swap.
fn assert_counts_on(values: &[u64]) {
    assert!(values.len() > 50, "the counter ran: {values:?}");
    assert_eq!(values[0], 0, "{values:?}");
    for w in values.windows(2) {
        assert_eq!(
            w[1],
            w[0] + 1,
            "a gap, a duplicate or a restart from 0: {values:?}"
        );
    }
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
    assert_counts_on(&values);
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
    assert_counts_on(&values);
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
    assert_counts_on(&values);
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
    assert_counts_on(&values);
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
    assert_counts_on(&values);
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
