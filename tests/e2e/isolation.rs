//! `isolation = "process"`: each node in a child `horus` worker process. A segfault, an abort or
//! a hang kills only that process; the host restarts it and the healthy nodes keep their rate;
//! topics cross into and out of workers; workers never outlive the host; nothing is left in
//! /dev/shm.

use horus_e2e::{children, horus, node, spawn, Scratch};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn namespace(test: &str) -> String {
    format!("iso-{}-{test}", std::process::id())
}

/// Runs `manifest` for `duration` in namespace `ns`; returns (exit code, stderr, stats).
fn run_in(ns: &str, s: &Scratch, manifest: &Path, duration: &str) -> (i32, String, Vec<Value>) {
    let (out, stats) = horus_e2e::run_with_stats_in(Some(ns), s, manifest, duration);
    (out.code(), out.stderr, stats)
}

const HEALTHY: &str = "[scheduler]\nrestart_backoff_ms = 200\n\
    [[node]]\nname = \"healthy\"\nplugin = \"{plugin:bench-noop}\"\npriority = 0\n";

fn crash_case(test: &str, node_type: &str, signal: &str) {
    let ns = namespace(test);
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        &format!(
            "{HEALTHY}[[node]]\nname = \"crashy\"\nplugin = \"{{plugin:faulty-nodes}}\"\ntype = \"{node_type}\"\n\
             isolation = \"process\"\nconfig = {{ after = 20 }}\n"
        ),
    );
    let (code, stderr, stats) = run_in(&ns, &s, &m, "3s");
    assert_eq!(code, 0, "a crashing worker is not a host failure:\n{stderr}");
    let healthy = u(&node(&stats, "healthy")["total_ticks"]);
    assert!(healthy >= 240, "healthy node kept 80 % of its rate: {healthy}");
    let crashy = node(&stats, "crashy");
    assert_eq!(crashy["isolation"], "process");
    assert!(
        u(&crashy["restarts"]) >= 2,
        "restarted after each crash: {crashy}"
    );
    assert!(
        u(&crashy["total_ticks"]) >= 60,
        "the restarted workers tick: {crashy}"
    );
    // The crash is named in the log; it is also the last error, unless the run stopped while a
    // restarted worker was in a tick (then that is the last error: a race of the stop, not a bug).
    assert!(
        stderr.contains(&format!("({signal})")),
        "the crash is named in the log:\n{stderr}"
    );
    let last = crashy["last_error"].as_str().unwrap_or_default();
    assert!(
        last.contains(signal) || last == "still in a tick at shutdown",
        "the crash is named: {last}"
    );
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn a_segfaulting_worker_is_restarted_and_the_host_stays_up() {
    crash_case("segv", "Segfault", "SIGSEGV");
}

#[test]
fn an_aborting_worker_is_restarted_and_the_host_stays_up() {
    crash_case("abort", "Abort", "SIGABRT");
}

#[test]
fn a_hung_worker_process_is_killed_after_the_watchdog_and_replaced() {
    let ns = namespace("hang");
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        &format!(
            "{HEALTHY}[[node]]\nname = \"stuck\"\nplugin = \"{{plugin:faulty-nodes}}\"\ntype = \"Hang\"\n\
             isolation = \"process\"\nwatchdog_ms = 100\nconfig = {{ after = 20 }}\n"
        ),
    );
    let (code, stderr, stats) = run_in(&ns, &s, &m, "3s");
    assert_eq!(code, 0, "{stderr}");
    assert!(u(&node(&stats, "healthy")["total_ticks"]) >= 240);
    let stuck = node(&stats, "stuck");
    assert_eq!(stuck["watchdog_expired"], true, "{stuck}");
    assert!(u(&stuck["restarts"]) >= 2, "{stuck}");
    assert!(
        stuck["last_error"]
            .as_str()
            .unwrap()
            .contains("worker process killed"),
        "{stuck}"
    );
    assert!(stderr.contains("worker process killed"), "{stderr}");
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn topics_cross_into_and_out_of_worker_processes() {
    let ns = namespace("topics");
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        "[[node]]\nname = \"count\"\nplugin = \"{plugin:hello-counter}\"\ntype = \"Counter\"\nisolation = \"process\"\n\
         [[node]]\nname = \"sum\"\nplugin = \"{plugin:hello-counter}\"\ntype = \"Summer\"\n\
         [[node]]\nname = \"sum2\"\nplugin = \"{plugin:hello-counter}\"\ntype = \"Summer\"\nisolation = \"process\"\n\
         [[connect]]\nfrom = \"count.count\"\nto = \"sum.numbers\"\nqos = \"reliable\"\n\
         [[connect]]\nfrom = \"count.count\"\nto = \"sum2.numbers\"\nqos = \"reliable\"\n",
    );
    let (code, stderr, stats) = run_in(&ns, &s, &m, "2s");
    assert_eq!(code, 0, "{stderr}");
    let sent = u(&node(&stats, "count")["messages_sent"]);
    assert!(sent >= 150, "{sent}");
    assert_eq!(
        u(&node(&stats, "sum")["messages_received"]),
        sent,
        "worker -> inline, nothing lost"
    );
    assert_eq!(
        u(&node(&stats, "sum2")["messages_received"]),
        sent,
        "worker -> worker, nothing lost"
    );
    let topics = &node(&stats, "sum2")["topics"];
    assert_eq!(
        topics[0]["direction"], "input",
        "a worker reports its topics: {topics}"
    );
    assert_eq!(u(&topics[0]["messages"]), sent, "{topics}");
    assert!(
        topics[0]["topic"].as_str().unwrap().ends_with("/count.count"),
        "{topics}"
    );
    // The workers log through the host's stderr.
    assert_eq!(stderr.matches("received ").count(), 2, "{stderr}");
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn workers_never_outlive_their_host() {
    let ns = namespace("orphans");
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        "[[node]]\nname = \"a\"\nplugin = \"{plugin:bench-noop}\"\nisolation = \"process\"\n\
         [[node]]\nname = \"b\"\nplugin = \"{plugin:faulty-nodes}\"\ntype = \"Slow\"\nisolation = \"process\"\nconfig = { sleep_ms = 1 }\n",
    );
    let mut cmd = horus(&["run", m.to_str().unwrap(), "--duration", "60s"]);
    cmd.env("HORUS_NAMESPACE", &ns);
    let mut host = spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(20);
    let workers = loop {
        let kids = children(host.id());
        if kids.len() == 2 {
            break kids;
        }
        assert!(Instant::now() < deadline, "two workers never started: {kids:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    host.kill().expect("SIGKILL the host");
    let _ = host.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while workers.iter().any(|w| running(*w)) {
        assert!(
            Instant::now() < deadline,
            "workers {workers:?} outlived their host"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The next run in the namespace removes what the killed host left in /dev/shm.
    let s2 = Scratch::new();
    let clean = s2.write(
        "clean.toml",
        "[[node]]\nname = \"n\"\nplugin = \"{plugin:bench-noop}\"\n",
    );
    let (code, _, _) = run_in(&ns, &s2, &clean, "100ms");
    assert_eq!(code, 0);
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

/// Regression: a dead worker's reliable input must not refuse its publisher's sends, even
/// when nothing replaces the worker.
#[test]
fn a_killed_workers_reliable_input_does_not_block_its_publisher() {
    let ns = namespace("deadreader");
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        "[scheduler]\nauto_restart = false\n\
         [[node]]\nname = \"count\"\nplugin = \"{plugin:hello-counter}\"\ntype = \"Counter\"\n\
         [[node]]\nname = \"sink\"\nplugin = \"{plugin:faulty-nodes}\"\ntype = \"HangingSink\"\n\
         isolation = \"process\"\nwatchdog_ms = 50\nconfig = { after = 10 }\n\
         [[connect]]\nfrom = \"count.count\"\nto = \"sink.in\"\nqos = \"reliable(8)\"\n",
    );
    let (code, stderr, stats) = run_in(&ns, &s, &m, "1500ms");
    assert_eq!(code, 0, "{stderr}");
    let count = node(&stats, "count");
    assert_eq!(
        u(&count["total_failures"]),
        0,
        "the publisher was never refused: {count}"
    );
    assert_eq!(node(&stats, "sink")["circuit_state"], "open");
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

/// Regression: the shutdown drain sees what is waiting for a worker process now, not as of its
/// last tick, so a reliable topic into a process node loses nothing at the stop.
#[test]
fn the_drain_delivers_everything_to_a_worker_process() {
    let ns = namespace("drain");
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        "[[node]]\nname = \"sum\"\nplugin = \"{plugin:hello-counter}\"\ntype = \"Summer\"\nisolation = \"process\"\npriority = 0\n\
         [[node]]\nname = \"count\"\nplugin = \"{plugin:hello-counter}\"\ntype = \"Counter\"\npriority = 1\n\
         [[connect]]\nfrom = \"count.count\"\nto = \"sum.numbers\"\nqos = \"reliable(64)\"\n",
    );
    let (code, stderr, stats) = run_in(&ns, &s, &m, "1s");
    assert_eq!(code, 0, "{stderr}");
    let sent = u(&node(&stats, "count")["messages_sent"]);
    assert_eq!(u(&node(&stats, "sum")["messages_received"]), sent, "{stderr}");
}

/// Regression: a worker killed at the stop (here one hung in a tick, which never answers its
/// exit) dies without detaching from its topics; the host forgets its entries, so the named
/// topic it read goes with the last live endpoint instead of staying in /dev/shm.
#[test]
fn a_worker_killed_at_the_stop_leaves_no_shared_memory() {
    let ns = namespace("killedatstop");
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        "[scheduler]\nauto_restart = false\n\
         [[node]]\nname = \"count\"\nplugin = \"{plugin:hello-counter}\"\ntype = \"Counter\"\n\
         [[connect]]\nfrom = \"count.count\"\ntopic = \"numbers\"\n\
         [[node]]\nname = \"sink\"\nplugin = \"{plugin:faulty-nodes}\"\ntype = \"HangingSink\"\n\
         isolation = \"process\"\nwatchdog_ms = 60000\nconfig = { after = 10 }\n\
         [[connect]]\ntopic = \"numbers\"\nto = \"sink.in\"\n",
    );
    let (code, stderr, stats) = run_in(&ns, &s, &m, "1500ms");
    assert_eq!(code, 0, "{stderr}");
    assert!(u(&node(&stats, "sink")["messages_received"]) > 0, "{stderr}");
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new(), "{stderr}");
}
