//! Live apply of connection changes between running nodes (issue 16): the real `horus` binary,
//! its manifest changed under `--watch`. A connection removed and another added between nodes
//! that keep running (inline, `thread` and `process` nodes: each binds its port anew in place);
//! a `reliable` connection's queue changed while messages wait in it, with nothing lost, read
//! twice or out of order (`SeqCheck` fails on any of these); a change that would need a larger
//! ring is refused and changes nothing.

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
/// always wait in the queues. A check fails its tick on a message lost, repeated or out of
/// order.
fn stream(qos: &str) -> String {
    let lib = plugin("seq-stream");
    let lib = lib.display();
    let check = |name: &str, isolation: &str| {
        format!(
            "[[node]]\nname = \"{name}\"\nplugin = \"{lib}\"\ntype = \"SeqCheck\"\nrate_hz = 10\n\
             isolation = \"{isolation}\"\nconfig = {{ reliable = true }}\n\n\
             [[connect]]\nfrom = \"source.out\"\nto = \"{name}.in\"\nqos = \"{qos}\"\n\n"
        )
    };
    format!(
        "[scheduler]\ntick_rate = 100\n\n\
         [[node]]\nname = \"source\"\nplugin = \"{lib}\"\ntype = \"SeqSource\"\nconfig = {{ burst = 3 }}\n\n{}{}",
        check("check_i", "inline"),
        check("check_p", "process")
    )
}

/// Issue #16: a `reliable` connection's queue depth changed live while messages wait in it:
/// the inputs are bound anew on the same ring, reading on from where they stopped, so the
/// checks see every message once, in order; the nodes are not replaced.
#[test]
fn a_reliable_queue_rebound_live_loses_nothing() {
    let s = Scratch::new();
    let ns = namespace("requeue");
    let m = s.write("stream.toml", &stream("reliable(5)"));
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "3s", &stats);
    std::thread::sleep(Duration::from_millis(1000));
    rewrite(&m, &stream("reliable(8)"));
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

/// Issue #16: a queue deeper than its running ring holds is refused (the ring cannot grow under
/// its endpoints), saying which port and what to do; nothing changes.
#[test]
fn a_queue_that_needs_a_larger_ring_is_refused() {
    let s = Scratch::new();
    let ns = namespace("grow");
    let m = s.write("stream.toml", &stream("reliable(4)"));
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "2s", &stats);
    std::thread::sleep(Duration::from_millis(600));
    rewrite(&m, &stream("reliable(64)"));
    let refused = apply_in(&ns, &[m.to_str().unwrap()]);
    assert_eq!(refused.code(), 2, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("apply refused: the topic of `source.out`")
            || refused
                .stdout
                .contains("apply refused: the topic of `source.out`"),
        "{refused:?}"
    );
    finish(child);
    let stats = read_stats(&stats);
    for name in ["check_i", "check_p"] {
        let n = node(&stats, name);
        assert_eq!(n["total_failures"], 0, "{n}");
        let input = &n["topics"][0];
        assert!(input["messages"].as_u64().unwrap() > 0, "{n}");
    }
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}
