//! Input-triggered nodes (`trigger = "input"` / a list of ports, `timeout_ms`) on the real
//! binary: a chain source (rate) → relay (input) → sink (input) in one host and across two,
//! a node ticked by its timeout, a `thread` node, the idle CPU of a host that waits for input,
//! a burst drained one message per tick under a `rate_hz` cap above the tick rate, and
//! `horus check` on a trigger naming a port the node type lacks. `SeqCheck` fails a tick on
//! a message lost or out of order, so "no failures" means everything arrived, in order. Every
//! test uses its own HORUS_NAMESPACE and checks that no segment is left behind.

use horus_e2e::{
    apply_in, count as u, finish, node, read_stats, rewrite, run, run_with_stats_in, start_in, Scratch,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Messages the chain's source sends, one per tick at 100 Hz.
const MESSAGES: u64 = 100;

fn namespace(test: &str) -> String {
    format!("e2e-{}-trig-{test}", std::process::id())
}

fn seq(name: &str, ty: &str, extra: &str) -> String {
    format!("[[node]]\nname = \"{name}\"\nplugin = \"{{plugin:seq-stream}}\"\ntype = \"{ty}\"\n{extra}\n")
}

fn link(from: &str, to: &str) -> String {
    format!("[[connect]]\nfrom = \"{from}\"\nto = \"{to}\"\nqos = \"reliable\"\n")
}

fn source(count: u64) -> String {
    seq(
        "source",
        "SeqSource",
        &format!("config = {{ count = {count}, burst = 1 }}"),
    )
}

fn sink(expect: u64, extra: &str) -> String {
    seq(
        "sink",
        "SeqCheck",
        &format!("trigger = [\"in\"]\nconfig = {{ expect = {expect} }}\n{extra}"),
    )
}

/// Asserts the chain delivered all [`MESSAGES`] with every relay and sink tick caused by input.
fn assert_chain(stats: &[serde_json::Value]) {
    for n in stats {
        assert_eq!(u(&n["total_failures"]), 0, "{n}");
    }
    let (relay, sink) = (node(stats, "relay"), node(stats, "sink"));
    assert_eq!(u(&sink["messages_received"]), MESSAGES, "{sink}");
    assert_eq!(relay["trigger"], "input");
    assert_eq!(sink["trigger"], serde_json::json!(["in"]));
    assert_eq!(node(stats, "source")["trigger"], "rate");
    for n in [relay, sink] {
        // Same-process delivery needs no wake-up: each message is one pass, one tick.
        assert_eq!(u(&n["wakeups"]), MESSAGES, "{n}");
        assert_eq!(u(&n["total_ticks"]), u(&n["wakeups"]), "{n}");
        assert!(n["input_latency_p99_us"].as_f64().is_some(), "{n}");
    }
}

#[test]
fn a_chain_in_one_host_ticks_on_every_message_in_order() {
    let ns = namespace("chain");
    let s = Scratch::new();
    let m = s.write(
        "chain.toml",
        &format!(
            "[scheduler]\ntick_rate = 100.0\n{}{}{}{}{}",
            source(MESSAGES),
            seq("relay", "SeqRelay", "trigger = \"input\""),
            sink(MESSAGES, ""),
            link("source.out", "relay.in"),
            link("relay.out", "sink.in"),
        ),
    );
    let (out, stats) = run_with_stats_in(Some(&ns), &s, &m, "1600ms");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_chain(&stats);
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn a_thread_node_is_input_triggered_too() {
    let ns = namespace("thread");
    let s = Scratch::new();
    let m = s.write(
        "thread.toml",
        &format!(
            "[scheduler]\ntick_rate = 100.0\n{}{}{}{}{}",
            source(MESSAGES),
            seq("relay", "SeqRelay", "trigger = \"input\"\nisolation = \"thread\""),
            sink(MESSAGES, ""),
            link("source.out", "relay.in"),
            link("relay.out", "sink.in"),
        ),
    );
    let (out, stats) = run_with_stats_in(Some(&ns), &s, &m, "1600ms");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(node(&stats, "relay")["isolation"], "thread");
    assert_chain(&stats);
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn a_process_node_is_input_triggered_too() {
    // The relay's endpoints are its worker process's: the host watches the queues the worker
    // reports, and each message is still one tick of the relay and one of the sink.
    let ns = namespace("process");
    let s = Scratch::new();
    let m = s.write(
        "process.toml",
        &format!(
            "[scheduler]\ntick_rate = 100.0\n{}{}{}{}{}",
            source(MESSAGES),
            seq(
                "relay",
                "SeqRelay",
                "trigger = \"input\"\nisolation = \"process\""
            ),
            sink(MESSAGES, ""),
            link("source.out", "relay.in"),
            link("relay.out", "sink.in"),
        ),
    );
    let (out, stats) = run_with_stats_in(Some(&ns), &s, &m, "1600ms");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(node(&stats, "relay")["isolation"], "process");
    assert_chain(&stats);
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn a_process_node_is_woken_by_input_again_after_its_worker_crashed() {
    // The worker is killed mid-stream: the breaker restarts it (a new process, new endpoints),
    // and the host watches the new worker's queue, not the dead one's.
    let ns = namespace("crash");
    let s = Scratch::new();
    let m = s.write(
        "crash.toml",
        &format!(
            "[scheduler]\ntick_rate = 100.0\n{}{}{}{}{}",
            source(1000),
            seq(
                "relay",
                "SeqRelay",
                "trigger = \"input\"\nisolation = \"process\""
            ),
            seq("sink", "SeqCheck", "config = { expect = 1000, reliable = false }"),
            link("source.out", "relay.in"),
            link("relay.out", "sink.in"),
        ),
    );
    let stats = s.path().join("stats.json");
    let host = start_in(&ns, &m, "4s", &stats);
    let deadline = Instant::now() + Duration::from_secs(20);
    let worker = loop {
        let worker = horus_e2e::children(host.id()).into_iter().find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == b"__worker"))
        });
        if let Some(pid) = worker {
            break pid;
        }
        assert!(Instant::now() < deadline, "no worker process");
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_millis(1000));
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &worker.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    finish(host);
    let stats = read_stats(&stats);
    let (relay, sink) = (node(&stats, "relay"), node(&stats, "sink"));
    assert_eq!(u(&relay["restarts"]), 1, "{relay}");
    assert_eq!(relay["circuit_state"], "closed", "{relay}");
    // About 400 messages in 4 s; the crash and the restart's backoff lose some of them.
    let got = u(&sink["messages_received"]);
    assert!(got >= 200, "{sink}");
    // Every message after the restart woke the new worker's relay, once: no ticks for a dead
    // queue (a stale watch would look full), nor a missed one.
    let wakeups = u(&relay["wakeups"]);
    assert!((got * 8 / 10..=got + 2).contains(&wakeups), "{relay} {sink}");
    assert!(u(&relay["total_ticks"]) <= wakeups + 2, "{relay}");
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn a_queue_moved_to_a_larger_ring_live_still_wakes_its_node_for_what_waits_on_the_old_one() {
    // 30 messages sent at once; two input-triggered checks, inline and in a worker process,
    // read one a tick at most 20 ticks a second. Mid-way a live apply deepens the queue beyond
    // the ring, which moves the topic to a new ring; the source has stopped, so the rest waits
    // on the old ring only. Watching just the new ring, the checks would never tick again.
    let ns = namespace("moved");
    let s = Scratch::new();
    let manifest = |qos: &str| {
        let check = |name: &str, isolation: &str| {
            format!(
                "{}[[connect]]\nfrom = \"source.out\"\nto = \"{name}.in\"\nqos = \"{qos}\"\n",
                seq(
                    name,
                    "SeqCheck",
                    &format!(
                        "trigger = \"input\"\nrate_hz = 20\nisolation = \"{isolation}\"\n\
                         config = {{ expect = 30, per_tick = 1 }}"
                    ),
                )
            )
        };
        format!(
            "[scheduler]\ntick_rate = 100.0\n{}{}{}",
            seq("source", "SeqSource", "config = { count = 30, burst = 30 }"),
            check("check_i", "inline"),
            check("check_p", "process"),
        )
    };
    let m = s.write("moved.toml", &manifest("reliable(32)"));
    let stats = s.path().join("stats.json");
    let host = start_in(&ns, &m, "4s", &stats);
    std::thread::sleep(Duration::from_millis(800));
    let new = s.write("moved.next", &manifest("reliable(64)"));
    rewrite(&m, &std::fs::read_to_string(&new).unwrap());
    let applied = apply_in(&ns, &[m.to_str().unwrap()]);
    assert_eq!(applied.code(), 0, "{applied:?}");
    assert!(applied.stdout.contains("moved to a larger ring"), "{applied:?}");
    finish(host);
    let stats = read_stats(&stats);
    for name in ["check_i", "check_p"] {
        let n = node(&stats, name);
        assert_eq!(u(&n["total_failures"]), 0, "in order, none twice: {n}");
        assert_eq!(u(&n["messages_received"]), 30, "{n}");
        // Each read by a tick its input caused, long before the stop (whose drain would read
        // what is left without any wake-up).
        assert_eq!(u(&n["wakeups"]), 30, "{n}");
    }
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn a_python_relay_ticks_on_the_topics_it_reads() {
    // Rust source → Python relay (named topics; its trigger waits on what it reads) → Rust
    // sink, with the relay inline and then on its own thread.
    let venv = horus_e2e::repo_root().join(".venv");
    assert!(
        venv.join("bin/python").exists(),
        "run ./scripts/python-env.sh first"
    );
    for isolation in ["inline", "thread"] {
        let ns = namespace(&format!("py{isolation}"));
        let s = Scratch::new();
        s.write(
            "relay.py",
            "import horus\n\nclass Relay(horus.Node):\n    def tick(self):\n        \
             while (m := self.get('trig/py/raw')) is not None:\n            \
             self.send('trig/py/relayed', m)\n",
        );
        let m = s.write(
            "py.toml",
            &format!(
                "[scheduler]\ntick_rate = 100.0\n{}[[node]]\nname = \"relay\"\npython = \"relay.py\"\n\
                 class = \"Relay\"\nvenv = \"{}\"\nisolation = \"{isolation}\"\ntrigger = \"input\"\n\
                 timeout_ms = 60000\n{}\
                 [[connect]]\nfrom = \"source.out\"\ntopic = \"trig/py/raw\"\n\
                 [[connect]]\ntopic = \"trig/py/relayed\"\nto = \"sink.in\"\nqos = \"reliable\"\n",
                source(MESSAGES),
                venv.display(),
                sink(MESSAGES, ""),
            ),
        );
        let (out, stats) = run_with_stats_in(Some(&ns), &s, &m, "1800ms");
        assert_eq!(out.code(), 0, "{}", out.stderr);
        let (relay, sink) = (node(&stats, "relay"), node(&stats, "sink"));
        assert_eq!(u(&sink["total_failures"]), 0, "{sink}");
        assert_eq!(u(&sink["messages_received"]), MESSAGES, "{sink}");
        assert_eq!(relay["trigger"], "input");
        assert_eq!(relay["isolation"], isolation);
        assert_eq!(u(&relay["total_failures"]), 0, "{relay}");
        // One tick at start registers the topic it reads; every other tick is an input's.
        let wakeups = u(&relay["wakeups"]);
        assert!((MESSAGES * 8 / 10..=MESSAGES).contains(&wakeups), "{relay}");
        assert_eq!(u(&relay["total_ticks"]), wakeups + 1, "{relay}");
        assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
    }
}

#[test]
fn a_relay_in_another_process_is_woken_by_the_publisher() {
    let ns = namespace("xproc");
    let s = Scratch::new();
    // Process B: only the relay, input-triggered, between two named topics.
    let b = s.write(
        "relay.toml",
        &format!(
            "{}[[connect]]\ntopic = \"trig/raw\"\nto = \"relay.in\"\nqos = \"reliable\"\n\
             [[connect]]\nfrom = \"relay.out\"\ntopic = \"trig/relayed\"\n",
            seq("relay", "SeqRelay", "trigger = \"input\""),
        ),
    );
    // Process A: the source (rate) and the sink (input).
    let a = s.write(
        "ends.toml",
        &format!(
            "[scheduler]\ntick_rate = 100.0\n{}{}[[connect]]\nfrom = \"source.out\"\ntopic = \"trig/raw\"\n\
             [[connect]]\ntopic = \"trig/relayed\"\nto = \"sink.in\"\nqos = \"reliable\"\n",
            source(MESSAGES),
            sink(MESSAGES, ""),
        ),
    );
    let (b_stats, a_stats) = (s.path().join("b.json"), s.path().join("a.json"));
    let relay = start_in(&ns, &b, "4s", &b_stats);
    let raw = PathBuf::from(format!("/dev/shm{}", horus_host::shm::shm_name(&ns, "trig/raw")));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !raw.exists() {
        assert!(Instant::now() < deadline, "the relay's host did not come up");
        std::thread::sleep(Duration::from_millis(10));
    }
    let ends = start_in(&ns, &a, "2s", &a_stats);
    finish(ends);
    finish(relay);
    let (b_stats, a_stats) = (read_stats(&b_stats), read_stats(&a_stats));
    let relay = node(&b_stats, "relay");
    let sink = node(&a_stats, "sink");
    assert_eq!(u(&relay["total_failures"]), 0, "{relay}");
    assert_eq!(u(&sink["total_failures"]), 0, "{sink}");
    assert_eq!(u(&relay["messages_received"]), MESSAGES, "{relay}");
    assert_eq!(u(&sink["messages_received"]), MESSAGES, "{sink}");
    // Woken across processes once per message (10 ms apart); a busy machine may batch a few.
    for n in [relay, sink] {
        let wakeups = u(&n["wakeups"]);
        assert!((MESSAGES * 8 / 10..=MESSAGES).contains(&wakeups), "{n}");
        assert_eq!(u(&n["total_ticks"]), wakeups, "every tick caused by input: {n}");
    }
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn the_timeout_ticks_a_node_whose_source_stopped() {
    let ns = namespace("timeout");
    let s = Scratch::new();
    let m = s.write(
        "timeout.toml",
        &format!(
            "{}{}{}",
            source(5),
            sink(5, "timeout_ms = 100"),
            link("source.out", "sink.in"),
        ),
    );
    let (out, stats) = run_with_stats_in(Some(&ns), &s, &m, "1500ms");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let sink = node(&stats, "sink");
    assert_eq!(u(&sink["messages_received"]), 5, "{sink}");
    assert_eq!(u(&sink["wakeups"]), 5, "{sink}");
    // ~1.45 s of silence at one tick per 100 ms.
    let timeouts = u(&sink["total_ticks"]) - 5;
    assert!((8..=16).contains(&timeouts), "{timeouts} timeout ticks: {sink}");
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn a_burst_is_drained_in_bounded_ticks_at_most_rate_hz() {
    let ns = namespace("burst");
    let s = Scratch::new();
    // At a 10 Hz tick rate: `burst` gets 100 messages at once, `flood` 100 every cycle (1000 a
    // second, more than it may read). Both read one message per tick, capped at 200 Hz: above the
    // tick rate, so a node held to rate cycles would read only ~20 in the run.
    let capped = |expect: u64| {
        format!("trigger = \"input\"\nrate_hz = 200.0\nconfig = {{ expect = {expect}, per_tick = 1 }}")
    };
    let m = s.write(
        "burst.toml",
        &format!(
            "[scheduler]\ntick_rate = 10.0\n{}{}{}{}{}{}",
            seq("source", "SeqSource", "config = { count = 100, burst = 100 }"),
            seq("burst", "SeqCheck", &capped(100)),
            seq("flooder", "SeqSource", "config = { burst = 100 }"),
            seq(
                "flood",
                "SeqCheck",
                &format!("{}\ndeadline_ms = 2.0", capped(1_000_000))
            ),
            link("source.out", "burst.in"),
            link("flooder.out", "flood.in"),
        ),
    );
    let run_s = 2.0;
    let (out, stats) = run_with_stats_in(Some(&ns), &s, &m, "2s");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let (burst, flood) = (node(&stats, "burst"), node(&stats, "flood"));
    for n in [burst, flood] {
        // No message lost or out of order (`SeqCheck` fails the tick otherwise).
        assert_eq!(u(&n["total_failures"]), 0, "{n}");
    }
    // The whole burst read, one message per tick, each tick caused by input (100 ticks at most
    // 200 a second: half a second, where rate cycles would have taken ten).
    assert_eq!(u(&burst["messages_received"]), 100, "{burst}");
    assert_eq!(u(&burst["wakeups"]), 100, "{burst}");
    assert_eq!(u(&burst["total_ticks"]), 100, "{burst}");
    // Input always waiting: the cap, not the input, sets the rate (uncapped, the node would
    // tick once per pass, thousands of times a second), and it is above the tick rate. The
    // shutdown drain may add ticks (not wake-ups) of its own.
    let wakeups = u(&flood["wakeups"]);
    let cap = (200.0 * run_s * 1.1) as u64 + 5;
    assert!(
        (100..=cap).contains(&wakeups),
        "{wakeups} wake-ups, cap {cap}: {flood}"
    );
    assert!(u(&flood["messages_received"]) >= wakeups, "{flood}");
    // Its input waits out the cap (5 ms) after each tick: past the 2 ms deadline counted from
    // the input, though the ticks themselves are short.
    let (input_misses, misses) = (u(&flood["input_deadline_misses"]), u(&flood["deadline_misses"]));
    assert!(input_misses >= wakeups / 2 && misses < input_misses, "{flood}");
    assert_eq!(u(&burst["input_deadline_misses"]), 0, "no deadline: {burst}");
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the host runs");
    // Fields after the command (which may hold spaces) start after its closing parenthesis.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the command.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Voluntary context switches of all of `pid`'s threads: how often they went to sleep.
fn wake_ups(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the host runs")
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .sum()
}

#[test]
fn a_host_waiting_for_input_uses_no_cpu() {
    let ns = namespace("idle");
    let s = Scratch::new();
    let m = s.write(
        "idle.toml",
        &format!(
            "{}{}[[connect]]\ntopic = \"trig/silent\"\nto = \"relay.in\"\n{}",
            seq("relay", "SeqRelay", "trigger = \"input\""),
            sink(1, ""),
            link("relay.out", "sink.in"),
        ),
    );
    let stats = s.path().join("idle.json");
    let host = start_in(&ns, &m, "3500ms", &stats);
    let pid = host.id();
    std::thread::sleep(Duration::from_millis(1000));
    let (before, t0, woke) = (cpu_ticks(pid), Instant::now(), wake_ups(pid));
    std::thread::sleep(Duration::from_secs(2));
    let (after, took, woken) = (cpu_ticks(pid), t0.elapsed(), wake_ups(pid));
    finish(host);
    // The threads hardly wake: the scheduler for its stats snapshot (10 a second), the main
    // thread looking for a stop (4), the watchdog (2); the control and unload threads sleep
    // until needed. (They used to poll: ~100 a second.)
    let rate = (woken - woke) as f64 / took.as_secs_f64();
    assert!(rate < 40.0, "{rate:.0} wake-ups a second");
    let hz = 100.0; // USER_HZ on Linux
    let share = (after - before) as f64 / hz / took.as_secs_f64();
    assert!(
        share < 0.01,
        "the idle host used {:.2} % of a core",
        share * 100.0
    );
    let stats = read_stats(&stats);
    assert_eq!(u(&node(&stats, "relay")["total_ticks"]), 0);
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn check_names_the_inputs_a_trigger_may_list() {
    let s = Scratch::new();
    let m = s.write(
        "bad.toml",
        &format!(
            "{}{}",
            seq("relay", "SeqRelay", "trigger = [\"inn\"]"),
            seq("p", "SeqSource", "isolation = \"process\"\ntrigger = \"input\"")
        ),
    );
    let out = run(&["check", m.to_str().unwrap()]);
    assert_ne!(out.code(), 0);
    // Both are reported at once; a `process` node is checked like any other.
    assert!(
        out.stderr
            .contains("node `p` is input-triggered but its type has no inputs"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("bad.toml:5:11: error[H0046]"),
        "{}",
        out.stderr
    );
    let m = s.write("bad2.toml", &seq("relay", "SeqRelay", "trigger = [\"inn\"]"));
    let out = run(&["check", m.to_str().unwrap()]);
    assert_ne!(out.code(), 0);
    assert!(
        out.stderr.contains("bad2.toml:5:11: error[H0046]"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("did you mean `in`?"), "{}", out.stderr);
}

#[test]
fn a_live_apply_changes_the_trigger_in_place() {
    let ns = namespace("apply");
    let s = Scratch::new();
    let text = |relay: &str, sink_extra: &str| {
        format!(
            "[scheduler]\ntick_rate = 100.0\n{}{}{}{}{}",
            source(300),
            seq("relay", "SeqRelay", relay),
            seq(
                "sink",
                "SeqCheck",
                &format!("config = {{ expect = 300 }}\n{sink_extra}")
            ),
            link("source.out", "relay.in"),
            link("relay.out", "sink.in"),
        )
    };
    let m = s.write("apply.toml", &text("", ""));
    let stats = s.path().join("apply.json");
    let host = start_in(&ns, &m, "4s", &stats);
    std::thread::sleep(Duration::from_millis(1500));
    // Written through `Scratch::write` for the plugin path, then put in place as an editor does.
    let new = s.write(
        "new.toml",
        &text("trigger = \"input\"", "trigger = [\"in\"]\ntimeout_ms = 500"),
    );
    rewrite(&m, &std::fs::read_to_string(&new).unwrap());
    let out = apply_in(&ns, &[m.to_str().unwrap()]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        out.stdout.contains("relay: trigger rate → input")
            && out
                .stdout
                .contains("sink: trigger rate → [\"in\"], timeout_ms none → 500"),
        "{out:?}"
    );
    finish(host);
    let stats = read_stats(&stats);
    for n in &stats {
        assert_eq!(u(&n["total_failures"]), 0, "{n}");
        assert_eq!(u(&n["generation"]), 1, "set in place, not swapped: {n}");
    }
    let (relay, sink) = (node(&stats, "relay"), node(&stats, "sink"));
    assert_eq!(u(&sink["messages_received"]), 300, "{sink}");
    assert_eq!(relay["trigger"], "input");
    assert_eq!(sink["trigger"], serde_json::json!(["in"]));
    // About half the messages came after the apply, each one a wake-up.
    for n in [relay, sink] {
        assert!(u(&n["wakeups"]) >= 50, "{n}");
    }
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}
