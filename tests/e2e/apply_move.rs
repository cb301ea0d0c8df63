//! Live apply of a node's `isolation` (issue 16): the real `horus` binary; the test changes the
//! manifest and sends it with `horus apply`. The node moves between `inline`, `thread` and
//! `process` with its state and its place on its topics handed over: a counter's numbers go on
//! without a gap (read on a `reliable` topic, so every value must arrive once, in order), a
//! `SeqCheck` reading a `reliable` connection sees every message once, in order, across each
//! move; a move whose new object fails to start rolls back and the node runs on as it was.

use horus_e2e::counts::{self, read_for};
use horus_e2e::{apply_in, finish, node, plugin, read_stats, rewrite, shm_leftovers, start_in, Scratch};
use std::path::Path;
use std::time::Duration;

const TOPIC: &str = "move/count";

fn namespace(test: &str) -> String {
    format!("move-{}-{test}", std::process::id())
}

/// A counter (`lib`, in `isolation`, config `extra`) publishing on the test's reliable topic,
/// and `other`, a counter that is never changed.
fn counter(lib: &Path, isolation: &str, config: &str) -> String {
    format!(
        "[scheduler]\ntick_rate = 100\nmax_failures = 1000\n\n\
         [[node]]\nname = \"counter\"\nplugin = \"{lib}\"\nisolation = \"{isolation}\"\nconfig = {{ {config} }}\n\n\
         [[node]]\nname = \"other\"\nplugin = \"{lib}\"\n\n\
         [[connect]]\nfrom = \"counter.count\"\ntopic = \"{TOPIC}\"\nqos = \"reliable(1024)\"\n",
        lib = lib.display()
    )
}

fn apply(ns: &str, m: &Path, text: &str, expect: &str) {
    rewrite(m, text);
    let out = apply_in(ns, &[m.to_str().unwrap()]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.contains(expect), "{out:?}");
}

/// Issue #16: a node moved `inline` → `thread` → `process` → `inline` live keeps its count
/// (state handed over at each move, nothing lost or repeated on its reliable topic), gets
/// `generation` + 1 each time, and the other node is untouched.
#[test]
fn a_node_moves_through_every_isolation_with_its_state() {
    let s = Scratch::new();
    let ns = namespace("tour");
    let lib = plugin("reload-counter");
    let m = s.write("robot.toml", &counter(&lib, "inline", ""));
    let mut sub = counts::reader(&ns, TOPIC);
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "4s", &stats);
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(700));
    for (from, to) in [("inline", "thread"), ("thread", "process"), ("process", "inline")] {
        apply(
            &ns,
            &m,
            &counter(&lib, to, ""),
            &format!("~1 changed (counter: isolation {from} → {to})"),
        );
        read_for(&mut sub, &mut values, Duration::from_millis(700));
    }
    let out = finish(child);
    read_for(&mut sub, &mut values, Duration::ZERO);
    counts::assert_continuous(&values);
    for (from, to) in [("inline", "thread"), ("thread", "process"), ("process", "inline")] {
        assert!(
            out.stderr.contains(&format!(
                "the node moved from `{from}` to `{to}` (state handed over)"
            )),
            "{}",
            out.stderr
        );
    }
    let stats = read_stats(&stats);
    let counter = node(&stats, "counter");
    assert_eq!(counter["generation"], 4, "{counter}");
    assert_eq!(counter["isolation"], "inline", "{counter}");
    assert_eq!(counter["reload_failures"], 0, "{counter}");
    assert_eq!(counter["total_failures"], 0, "{counter}");
    // Its counts went on through the moves: it sent every value the test read.
    let sent = counter["messages_sent"].as_u64().unwrap();
    assert!(
        sent >= values.len() as u64,
        "{sent} sent, {} read: {counter}",
        values.len()
    );
    let other = node(&stats, "other");
    assert_eq!(other["generation"], 1, "{other}");
    assert!(other["total_ticks"].as_u64().unwrap() > 300, "{other}");
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// `SeqSource` (3 a tick) → `SeqCheck` (10 Hz, fails its tick on a message lost, repeated or
/// out of order) over `reliable(8)`, the check in `isolation`: messages always wait in its
/// queue.
fn stream(check: &str, source: &str) -> String {
    let lib = plugin("seq-stream");
    let lib = lib.display();
    format!(
        "[scheduler]\ntick_rate = 100\n\n\
         [[node]]\nname = \"source\"\nplugin = \"{lib}\"\ntype = \"SeqSource\"\nisolation = \"{source}\"\nconfig = {{ burst = 3 }}\n\n\
         [[node]]\nname = \"check\"\nplugin = \"{lib}\"\ntype = \"SeqCheck\"\nrate_hz = 10\nisolation = \"{check}\"\nconfig = {{ reliable = true }}\n\n\
         [[connect]]\nfrom = \"source.out\"\nto = \"check.in\"\nqos = \"reliable(8)\"\n"
    )
}

/// Issue #16: a node reading a `reliable` connection, and the node publishing on it, move
/// between isolations while messages wait in the queue: the reader goes on from where it
/// stopped (nothing lost or read twice), the publisher's Link is taken over each time.
#[test]
fn moves_keep_a_reliable_connection_whole() {
    let s = Scratch::new();
    let ns = namespace("stream");
    let m = s.write("stream.toml", &stream("inline", "inline"));
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "5s", &stats);
    std::thread::sleep(Duration::from_millis(600));
    for (check, source) in [
        ("process", "inline"),
        ("process", "thread"),
        ("thread", "process"),
        ("inline", "inline"),
    ] {
        rewrite(&m, &stream(check, source));
        let out = apply_in(&ns, &[m.to_str().unwrap()]);
        assert_eq!(out.code(), 0, "{out:?}");
        std::thread::sleep(Duration::from_millis(700));
    }
    let out = finish(child);
    assert!(!out.stderr.contains("lost on a reliable topic"), "{}", out.stderr);
    let stats = read_stats(&stats);
    let check = node(&stats, "check");
    assert_eq!(
        check["total_failures"], 0,
        "nothing lost, repeated or reordered: {check}"
    );
    assert_eq!(check["generation"], 4, "{check}");
    assert_eq!(check["isolation"], "inline", "{check}");
    assert!(check["messages_received"].as_u64().unwrap() > 100, "{check}");
    let source = node(&stats, "source");
    assert_eq!(source["generation"], 4, "{source}");
    assert_eq!(source["total_failures"], 0, "{source}");
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: a move whose new object fails to start (its `init`, armed through
/// `reload-counter-v2`'s fail file) fails the apply (exit 1): the node runs on where it was,
/// with its count, and says why in its stats; a move after that succeeds, planned from where the
/// node really runs.
#[test]
fn a_move_whose_new_object_fails_rolls_back() {
    let s = Scratch::new();
    let ns = namespace("rollback");
    let lib = plugin("reload-counter-v2");
    let fail = s.path().join("fail");
    let config = format!("fail_file = \"{}\"", fail.display());
    let m = s.write("robot.toml", &counter(&lib, "inline", &config));
    let mut sub = counts::reader(&ns, TOPIC);
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "3s", &stats);
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(600));
    std::fs::write(&fail, "init-error").unwrap();
    // The new worker thread's `init` fails after the tick boundary: the apply waits for it and
    // fails as a whole.
    rewrite(&m, &counter(&lib, "thread", &config));
    let failed = apply_in(&ns, &[m.to_str().unwrap()]);
    assert_eq!(failed.code(), 1, "{failed:?}");
    assert!(
        failed.stderr.contains("isolation inline → thread")
            && failed.stderr.contains("apply failed, nothing changed"),
        "{failed:?}"
    );
    read_for(&mut sub, &mut values, Duration::from_millis(600));
    std::fs::remove_file(&fail).unwrap();
    apply(
        &ns,
        &m,
        &counter(&lib, "process", &config),
        "isolation inline → process",
    );
    read_for(&mut sub, &mut values, Duration::from_millis(900));
    let out = finish(child);
    read_for(&mut sub, &mut values, Duration::ZERO);
    assert!(
        out.stderr
            .contains("apply: the move to `thread` failed, the node runs on as it was"),
        "{}",
        out.stderr
    );
    // v2 counts in steps of 1000.
    let steps: Vec<u64> = values.iter().map(|v| v / 1000).collect();
    counts::assert_continuous(&steps);
    let stats = read_stats(&stats);
    let counter = node(&stats, "counter");
    assert_eq!(counter["isolation"], "process", "{counter}");
    assert_eq!(counter["generation"], 2, "{counter}");
    assert_eq!(counter["reload_failures"], 1, "{counter}");
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16, item 3: an apply whose replacement comes up on a worker — here a `thread` node's
/// new config, whose `create` fails on its new worker thread after the apply's other steps
/// were done at the tick boundary — is undone as a whole: the node it added is shut down and
/// gone, the node it removed runs on, the replaced node keeps its old object; `horus apply`
/// exits 1 with the reason.
#[test]
fn an_apply_whose_replacement_fails_on_its_worker_changes_nothing() {
    let s = Scratch::new();
    let ns = namespace("atomic");
    let v2 = plugin("reload-counter-v2");
    let fail = s.path().join("fail");
    let running = |config: &str, other: bool, extra: bool| {
        let mut text = counter(
            &v2,
            "thread",
            &format!("fail_file = \"{}\"{config}", fail.display()),
        );
        if !other {
            text = text.replace("[[node]]\nname = \"other\"", "[[node]]\nname = \"gone\"");
            text = text.replacen(
                &format!("[[node]]\nname = \"gone\"\nplugin = \"{}\"\n", v2.display()),
                "",
                1,
            );
        }
        if extra {
            text.push_str(&format!(
                "\n[[node]]\nname = \"extra\"\nplugin = \"{}\"\n",
                v2.display()
            ));
        }
        text
    };
    let m = s.write("robot.toml", &running("", true, false));
    let mut sub = counts::reader(&ns, TOPIC);
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "3s", &stats);
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(700));
    std::fs::write(&fail, "create-error").unwrap();
    rewrite(&m, &running(", save_delay_ms = 0", false, true));
    let out = apply_in(&ns, &[m.to_str().unwrap()]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stdout
            .contains("apply: +1 node, -1, ~1 changed (counter: config)")
            || out
                .stderr
                .contains("apply: +1 node, -1, ~1 changed (counter: config)"),
        "{out:?}"
    );
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("nothing changed") && said.contains("create"),
        "{said}"
    );
    read_for(&mut sub, &mut values, Duration::from_millis(700));
    let out = finish(child);
    read_for(&mut sub, &mut values, Duration::ZERO);
    let steps: Vec<u64> = values.iter().map(|v| v / 1000).collect();
    counts::assert_continuous(&steps);
    let stats = read_stats(&stats);
    let names: Vec<&str> = stats.iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(
        names,
        vec!["counter", "other"],
        "nothing added or removed:\n{}",
        out.stderr
    );
    let counter = node(&stats, "counter");
    assert_eq!(counter["generation"], 1, "{counter}");
    let other = node(&stats, "other");
    assert!(
        other["total_ticks"].as_u64().unwrap() > 250,
        "it never stopped: {other}"
    );
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}
