//! Live apply of connection changes between running nodes (issue 16): the real `horus` binary,
//! its manifest changed under `--watch`. A connection removed and another added between nodes
//! that keep running (inline, `thread` and `process` nodes: each binds its port anew in place);
//! a `reliable` connection's queue changed while messages wait in it, with nothing lost, read
//! twice or out of order (`SeqCheck` fails on any of these); a change that needs a larger ring
//! moves a private topic to a new one, losing nothing, and is refused for a named topic.

use horus_e2e::{
    apply_in, finish, node, plugin, read_stats, rewrite, shm_leftovers, start_in, start_watching, Scratch,
};
use std::time::Duration;

fn namespace(test: &str) -> String {
    format!("wiring-{}-{test}", std::process::id())
}

/// `hello-counter`'s Counter (inline) and two Summers: `sum_a` on a worker thread, `sum_b` in
/// a worker process; `wiring` connects them.
fn counters(wiring: &str) -> String {
    let lib = plugin("hello-counter");
    let lib = lib.display();
    format!(
        "[scheduler]\ntick_rate = 100\n\n\
         [[node]]\nname = \"counter\"\nplugin = \"{lib}\"\ntype = \"Counter\"\n\n\
         [[node]]\nname = \"sum_a\"\nplugin = \"{lib}\"\ntype = \"Summer\"\nisolation = \"thread\"\n\n\
         [[node]]\nname = \"sum_b\"\nplugin = \"{lib}\"\ntype = \"Summer\"\nisolation = \"process\"\n\n\
         {wiring}"
    )
}

/// The number a Summer's shutdown says it received.
fn received(stderr: &str, node: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains(&format!("node=\"{node}\"")) && l.contains("received"))
        .or_else(|| {
            stderr
                .lines()
                .find(|l| l.contains(&format!("node={node}")) && l.contains("received"))
        })
        .unwrap_or_else(|| panic!("{node}'s shutdown line:\n{stderr}"));
    let after = &line[line.find("received ").expect("received") + "received ".len()..];
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count in {line}"))
}

/// Issue #16, the "done when": a connection removed and another added between running nodes,
/// under `--watch`. `sum_a` (thread) stops receiving, `sum_b` (process) starts; all three nodes
/// keep running untouched (generation 1, no restart, ticking throughout).
#[test]
fn a_connection_removed_and_one_added_between_running_nodes() {
    let s = Scratch::new();
    let ns = namespace("move");
    let to = |node: &str| format!("[[connect]]\nfrom = \"counter.count\"\nto = \"{node}.numbers\"\n");
    let m = s.write("robot.toml", &counters(&to("sum_a")));
    let stats = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "3s", &stats);
    std::thread::sleep(Duration::from_millis(1200));
    rewrite(&m, &counters(&to("sum_b")));
    let out = finish(child);
    assert!(
        out.stderr
            .contains("apply: +0 nodes, -0, ~0 changed, +1 connection, -1 connection"),
        "{}",
        out.stderr
    );
    let (a, b) = (received(&out.stderr, "sum_a"), received(&out.stderr, "sum_b"));
    let stats = read_stats(&stats);
    let counter = node(&stats, "counter");
    let sent = counter["messages_sent"].as_u64().unwrap();
    assert!(a > 30, "sum_a received before the apply: {a}");
    assert!(b > 30, "sum_b received after the apply: {b}");
    assert!(
        a + b <= sent,
        "each message went to one of them: {a} + {b} vs {sent}"
    );
    for name in ["counter", "sum_a", "sum_b"] {
        let n = node(&stats, name);
        assert_eq!(n["generation"], 1, "{n}");
        assert_eq!(n["restarts"], 0, "{n}");
        assert_eq!(n["total_failures"], 0, "{n}");
        // About 100 Hz for the whole run (a lower bound only).
        assert!(n["total_ticks"].as_u64().unwrap() > 200, "{n}");
    }
    let topics = |n: &serde_json::Value| n["topics"].as_array().map_or(0, Vec::len);
    assert_eq!(topics(node(&stats, "sum_a")), 0, "sum_a's input is unconnected");
    assert_eq!(topics(node(&stats, "sum_b")), 1, "sum_b's input is connected");
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// `SeqSource` (3 messages a tick at 100 Hz) feeding two `SeqCheck`s at 10 Hz, one inline and
/// one in a worker process, over `qos` connections: the source meets back-pressure, so messages
/// always wait in the queues (the source ticks after the checks, so a cycle never ends with
/// an inline check's queue empty). The process check's tick takes `busy_ms` more: with 80,
/// its worker is mostly busy when an apply comes, and re-binds its ports later. A check fails its tick on a message lost, repeated or out of
/// order.
fn stream(qos: &str, busy_ms: u32) -> String {
    let lib = plugin("seq-stream");
    let lib = lib.display();
    let check = |name: &str, isolation: &str, busy_ms: u32| {
        format!(
            "[[node]]\nname = \"{name}\"\nplugin = \"{lib}\"\ntype = \"SeqCheck\"\nrate_hz = 10\n\
             isolation = \"{isolation}\"\nconfig = {{ reliable = true, busy_ms = {busy_ms} }}\n\n\
             [[connect]]\nfrom = \"source.out\"\nto = \"{name}.in\"\nqos = \"{qos}\"\n\n"
        )
    };
    format!(
        "[scheduler]\ntick_rate = 100\n\n\
         [[node]]\nname = \"source\"\nplugin = \"{lib}\"\ntype = \"SeqSource\"\npriority = 10\n\
         config = {{ burst = 3 }}\n\n{}{}",
        check("check_i", "inline", 0),
        check("check_p", "process", busy_ms)
    )
}

/// Issue #16: a `reliable` connection's queue depth changed live while messages wait in it:
/// the inputs are bound anew on the same ring, reading on from where they stopped, so the
/// checks see every message once, in order; the nodes are not replaced.
#[test]
fn a_reliable_queue_rebound_live_loses_nothing() {
    let s = Scratch::new();
    let ns = namespace("requeue");
    let m = s.write("stream.toml", &stream("reliable(5)", 0));
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "3s", &stats);
    std::thread::sleep(Duration::from_millis(1000));
    rewrite(&m, &stream("reliable(8)", 0));
    let applied = apply_in(&ns, &[m.to_str().unwrap()]);
    assert_eq!(applied.code(), 0, "{applied:?}");
    assert!(applied.stdout.contains("~2 connections"), "{applied:?}");
    let out = finish(child);
    let stats = read_stats(&stats);
    for name in ["check_i", "check_p"] {
        let n = node(&stats, name);
        assert_eq!(n["total_failures"], 0, "nothing lost, repeated or reordered: {n}");
        assert_eq!(n["generation"], 1, "{n}");
        assert_eq!(n["restarts"], 0, "{n}");
        let got = n["messages_received"].as_u64().unwrap();
        // 3 s at 10 ticks a second, up to 8 a tick after the apply: well over 5 a tick.
        assert!(got > 100, "{name} kept receiving: {n}");
    }
    assert!(!out.stderr.contains("lost on a reliable topic"), "{}", out.stderr);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: a queue deeper than its running ring holds: the private topic moves to a new,
/// larger ring (`source.out~2`) live, every endpoint with it, the inline check at the tick
/// boundary and the process check in its worker; each input drains the old ring first, so
/// the checks see every message once, in order (`SeqCheck` fails its tick otherwise), and
/// the deeper queue is in effect: more messages arrive than a 4-deep queue at 10 Hz lets
/// through. The process check's worker is mostly busy: it attaches its subscriber after the
/// source has switched, and reads from the new ring's first message, which a holder kept
/// for it. A `thread` check added by the same apply is bound to the new ring. The old ring
/// goes once drained, the new one at the end.
#[test]
fn a_queue_that_needs_a_larger_ring_moves_to_a_new_ring_live() {
    let s = Scratch::new();
    let ns = namespace("grow");
    let m = s.write("stream.toml", &stream("reliable(4)", 80));
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "3s", &stats);
    std::thread::sleep(Duration::from_millis(800));
    // A `thread` check added with it joins the new ring (mid-stream: gaps before its first
    // message are not errors, disorder is).
    let lib = plugin("seq-stream");
    let added = format!(
        "[[node]]\nname = \"check_t\"\nplugin = \"{}\"\ntype = \"SeqCheck\"\nrate_hz = 10\n\
         isolation = \"thread\"\nconfig = {{ reliable = false }}\n\n\
         [[connect]]\nfrom = \"source.out\"\nto = \"check_t.in\"\nqos = \"reliable(64)\"\n",
        lib.display()
    );
    rewrite(&m, &(stream("reliable(64)", 80) + &added));
    let applied = apply_in(&ns, &[m.to_str().unwrap()]);
    assert_eq!(applied.code(), 0, "{applied:?}");
    assert!(
        applied.stdout.contains(
            "apply: +1 node, -0, ~0 changed, +1 connection, ~2 connections, topic `source.out` moved to a larger ring"
        ),
        "{applied:?}"
    );
    let out = finish(child);
    assert!(!out.stderr.contains("lost on a reliable topic"), "{}", out.stderr);
    let stats = read_stats(&stats);
    for name in ["source", "check_i", "check_p"] {
        let n = node(&stats, name);
        assert_eq!(n["total_failures"], 0, "nothing lost, repeated or reordered: {n}");
        assert_eq!(n["generation"], 1, "{n}");
        assert_eq!(n["restarts"], 0, "{n}");
    }
    for name in ["check_i", "check_p", "check_t"] {
        let n = node(&stats, name);
        let input = &n["topics"][0];
        assert!(
            input["topic"].as_str().unwrap().ends_with("/source.out~2"),
            "{name} reads the new ring: {n}"
        );
        // At most 4 a tick, 10 ticks a second, for 3 s: 120 with the old queue.
        let got = n["messages_received"].as_u64().unwrap();
        assert!(got > 150, "{name} kept receiving, up to 64 a tick: {n}");
    }
    let n = node(&stats, "check_t");
    assert_eq!(n["total_failures"], 0, "in order: {n}");
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: a named topic's ring is shared with other processes, which cannot follow it to
/// a new one: a queue deeper than it holds is still refused, saying why and what to do;
/// nothing changes.
#[test]
fn a_named_topic_that_needs_a_larger_ring_is_refused() {
    let lib = plugin("seq-stream");
    let lib = lib.display();
    let named = |qos: &str| {
        format!(
            "[scheduler]\ntick_rate = 100\n\n\
             [[node]]\nname = \"source\"\nplugin = \"{lib}\"\ntype = \"SeqSource\"\nconfig = {{ burst = 3 }}\n\n\
             [[node]]\nname = \"check\"\nplugin = \"{lib}\"\ntype = \"SeqCheck\"\nrate_hz = 10\n\
             config = {{ reliable = true }}\n\n\
             [[connect]]\nfrom = \"source.out\"\ntopic = \"seq\"\nmax_size = 64\nqos = \"{qos}\"\n\n\
             [[connect]]\ntopic = \"seq\"\nto = \"check.in\"\nmax_size = 64\nqos = \"{qos}\"\n"
        )
    };
    let s = Scratch::new();
    let ns = namespace("grow-named");
    let m = s.write("named.toml", &named("reliable(64)"));
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "2s", &stats);
    std::thread::sleep(Duration::from_millis(600));
    rewrite(&m, &named("reliable(200)"));
    let refused = apply_in(&ns, &[m.to_str().unwrap()]);
    assert_eq!(refused.code(), 2, "{refused:?}");
    let text = format!("{}{}", refused.stdout, refused.stderr);
    assert!(
        text.contains("apply refused: the named topic `seq` of `source.out`: its ring of 64 messages would have to hold 200"),
        "{refused:?}"
    );
    assert!(
        text.contains("shared with other processes") && text.contains("restart the host"),
        "{refused:?}"
    );
    finish(child);
    let stats = read_stats(&stats);
    let n = node(&stats, "check");
    assert_eq!(n["total_failures"], 0, "{n}");
    assert!(n["topics"][0]["messages"].as_u64().unwrap() > 0, "{n}");
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// The demo's chain: imu → filter → telemetry, plugins by path; `extra` at the end.
fn demo(alpha: &str, telemetry_connected: bool, extra: &str) -> String {
    let (imu, filter, sink) = (
        plugin("imu-sim"),
        plugin("attitude-filter"),
        plugin("telemetry-sink"),
    );
    let to_telemetry = match telemetry_connected {
        true => {
            "[[connect]]\nfrom = \"filter.attitude\"\nto = \"telemetry.attitude\"\nqos = \"reliable(64)\"\n\n"
        }
        false => "",
    };
    format!(
        "[scheduler]\npreset = \"standard\"\n\n\
         [[node]]\nname = \"imu\"\nplugin = \"{}\"\npriority = 0\n\n\
         [[node]]\nname = \"filter\"\nplugin = \"{}\"\npriority = 1\nconfig = {{ alpha = {alpha} }}\n\n\
         [[node]]\nname = \"telemetry\"\nplugin = \"{}\"\npriority = 2\nrate_hz = 10\n\n\
         [[connect]]\nfrom = \"imu.imu\"\nto = \"filter.imu\"\nqos = \"keep_last(8)\"\n\n{to_telemetry}{extra}",
        imu.display(),
        filter.display(),
        sink.display()
    )
}

/// Issue #16, "done when", in one save under `--watch`: a node added (a second sink on the
/// filter's output), a gain changed (the filter replaced with its state) and a connection removed
/// (the filter → telemetry one) take effect together; the rest is untouched.
#[test]
fn one_save_adds_a_node_changes_a_gain_and_removes_a_connection() {
    let s = Scratch::new();
    let ns = namespace("done-when");
    let m = s.write("robot.toml", &demo("0.98", true, ""));
    let stats = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "3s", &stats);
    std::thread::sleep(Duration::from_millis(1200));
    let logger = format!(
        "[[node]]\nname = \"logger\"\nplugin = \"{}\"\npriority = 3\n\n\
         [[connect]]\nfrom = \"filter.attitude\"\nto = \"logger.attitude\"\nqos = \"keep_last(8)\"\n",
        plugin("telemetry-sink").display()
    );
    rewrite(&m, &demo("0.9", false, &logger));
    let out = finish(child);
    assert!(
        out.stderr
            .contains("apply: +1 node, -0, ~1 changed (filter: config), +1 connection, -1 connection"),
        "{}",
        out.stderr
    );
    let stats = read_stats(&stats);
    let imu = node(&stats, "imu");
    assert_eq!(imu["generation"], 1, "{imu}");
    assert!(
        imu["total_ticks"].as_u64().unwrap() > 200,
        "untouched, ticking: {imu}"
    );
    let filter = node(&stats, "filter");
    assert_eq!(filter["generation"], 2, "the gain change replaced it: {filter}");
    assert!(
        !out.stderr.contains("no state was carried"),
        "its estimate was handed over:\n{}",
        out.stderr
    );
    let telemetry = node(&stats, "telemetry");
    assert_eq!(telemetry["generation"], 1, "{telemetry}");
    assert_eq!(
        telemetry["topics"].as_array().map_or(0, Vec::len),
        0,
        "disconnected: {telemetry}"
    );
    assert!(
        telemetry["messages_received"].as_u64().unwrap() > 50,
        "it received before: {telemetry}"
    );
    let logger = node(&stats, "logger");
    assert!(
        logger["messages_received"].as_u64().unwrap() > 50,
        "the added sink receives: {logger}"
    );
    for n in [imu, filter, telemetry, logger] {
        assert_eq!(n["total_failures"], 0, "{n}");
    }
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}
