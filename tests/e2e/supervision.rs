//! Supervision with the real binary and the fault-injection plugins: the circuit breaker opens,
//! restarts with backoff and closes again; deadlines and the watchdog are counted and flagged;
//! a hung inline node cannot take the host's exit with it; bad settings are clear errors. A
//! healthy node beside each fault keeps at least 80 % of its ticks.

use horus_e2e::{node, run, run_with_stats, Scratch};
use serde_json::Value;

const HEALTHY: &str = "[[node]]\nname = \"healthy\"\nplugin = \"{plugin:bench-noop}\"\npriority = 0\n";

fn fault(name: &str, node_type: &str, extra: &str) -> String {
    format!(
        "[[node]]\nname = \"{name}\"\nplugin = \"{{plugin:faulty-nodes}}\"\ntype = \"{node_type}\"\n{extra}"
    )
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The healthy node kept ≥ 80 % of the ticks its rate asks for (`secs` at 100 Hz).
fn healthy_kept_its_rate(stats: &[Value], secs: f64) {
    let ticks = u(&node(stats, "healthy")["total_ticks"]) as f64;
    assert!(
        ticks >= 0.8 * 100.0 * secs,
        "healthy node ticked {ticks} times in {secs} s"
    );
}

#[test]
fn breaker_opens_after_max_failures_and_stays_open_without_auto_restart() {
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        &format!(
            "[scheduler]\nmax_failures = 3\nauto_restart = false\n{HEALTHY}{}",
            fault("bad", "AlwaysError", "")
        ),
    );
    let (out, stats) = run_with_stats(&s, &m, "1500ms");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let bad = node(&stats, "bad");
    assert_eq!(
        (u(&bad["total_ticks"]), u(&bad["total_failures"])),
        (3, 3),
        "{bad}"
    );
    assert_eq!(bad["circuit_state"], "open");
    assert_eq!(u(&bad["restarts"]), 0);
    assert!(bad["last_error"]
        .as_str()
        .unwrap()
        .contains("injected error at tick 3"));
    assert_eq!(
        out.stderr.matches("circuit open").count(),
        1,
        "each transition logged once:\n{}",
        out.stderr
    );
    healthy_kept_its_rate(&stats, 1.5);
}

#[test]
fn auto_restart_retries_with_growing_backoff_and_keeps_counting_failures() {
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        &format!(
            "[scheduler]\nmax_failures = 2\nrestart_backoff_ms = 100\nrestart_backoff_max_ms = 400\n{HEALTHY}{}",
            fault("bad", "AlwaysError", "")
        ),
    );
    let (out, stats) = run_with_stats(&s, &m, "2s");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let bad = node(&stats, "bad");
    let restarts = u(&bad["restarts"]);
    // Backoffs 100, 200, 400, 400, ... ms: 4 to 6 restarts fit in 2 s.
    assert!((3..=7).contains(&restarts), "{restarts} restarts: {bad}");
    assert_eq!(
        u(&bad["total_failures"]),
        2 + restarts,
        "one failed trial per restart: {bad}"
    );
    assert!(
        out.stderr.contains("restarting in 200 ms") && out.stderr.contains("restarting in 400 ms"),
        "{}",
        out.stderr
    );
    healthy_kept_its_rate(&stats, 2.0);
}

#[test]
fn a_recovering_node_is_restarted_and_ticks_again() {
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        &format!(
            "[scheduler]\nmax_failures = 3\nrestart_backoff_ms = 100\n{HEALTHY}{}",
            fault("flaky", "FlakyStart", "config = { k = 4 }\n")
        ),
    );
    let (out, stats) = run_with_stats(&s, &m, "2s");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let flaky = node(&stats, "flaky");
    // Fails 1-3 (opens), trial 4 fails (reopens, backoff 200 ms), trial 5 succeeds.
    assert_eq!(u(&flaky["total_failures"]), 4, "{flaky}");
    assert_eq!(u(&flaky["restarts"]), 2, "{flaky}");
    assert_eq!(flaky["circuit_state"], "closed");
    assert_eq!(u(&flaky["consecutive_failures"]), 0);
    assert!(
        u(&flaky["total_ticks"]) > 100,
        "it ticks again after recovering: {flaky}"
    );
    assert!(out.stderr.contains("circuit closed"), "{}", out.stderr);
    healthy_kept_its_rate(&stats, 2.0);
}

#[test]
fn ticks_past_their_deadline_are_counted() {
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        &format!(
            "{HEALTHY}{}",
            fault(
                "slow",
                "Slow",
                "rate_hz = 10\ndeadline_ms = 1.0\nconfig = { sleep_ms = 3 }\n"
            )
        ),
    );
    let (out, stats) = run_with_stats(&s, &m, "1s");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let slow = node(&stats, "slow");
    assert!(u(&slow["total_ticks"]) >= 8);
    assert_eq!(
        u(&slow["deadline_misses"]),
        u(&slow["total_ticks"]),
        "every 3 ms tick misses 1 ms: {slow}"
    );
    assert_eq!(slow["deadline_ms"], 1.0);
    assert!(slow["tick_duration_p99_us"].as_f64().unwrap() >= 3000.0, "{slow}");
    assert_eq!(u(&node(&stats, "healthy")["deadline_misses"]), 0);
    assert!(out.stderr.contains("deadline missed"), "{}", out.stderr);
    // Rate-limited: one warning per second at most.
    assert!(
        out.stderr.matches("deadline missed").count() <= 2,
        "{}",
        out.stderr
    );
}

#[test]
fn deadline_monitoring_off_counts_nothing() {
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        &format!(
            "[scheduler]\ndeadline_monitoring = false\n{HEALTHY}{}",
            fault(
                "slow",
                "Slow",
                "rate_hz = 10\ndeadline_ms = 1.0\nconfig = { sleep_ms = 3 }\n"
            )
        ),
    );
    let (out, stats) = run_with_stats(&s, &m, "500ms");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(u(&node(&stats, "slow")["deadline_misses"]), 0);
}

#[test]
fn a_tick_longer_than_the_watchdog_timeout_sets_watchdog_expired() {
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        &format!(
            "{HEALTHY}{}",
            fault(
                "slow",
                "Slow",
                "rate_hz = 5\nwatchdog_ms = 20\nconfig = { sleep_ms = 60 }\n"
            )
        ),
    );
    let (out, stats) = run_with_stats(&s, &m, "1s");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let slow = node(&stats, "slow");
    assert_eq!(slow["watchdog_expired"], true, "{slow}");
    assert_eq!(
        (slow["watchdog_enabled"].clone(), u(&slow["watchdog_timeout_ms"])),
        (Value::Bool(true), 20)
    );
    let healthy = node(&stats, "healthy");
    assert_eq!(
        (
            healthy["watchdog_enabled"].clone(),
            healthy["watchdog_expired"].clone()
        ),
        (Value::Bool(false), Value::Bool(false))
    );
    assert!(out.stderr.contains("watchdog expired"), "{}", out.stderr);
}

#[test]
fn a_hung_inline_node_is_reported_and_the_host_still_exits() {
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        &format!(
            "[scheduler]\nwatchdog_enabled = true\nwatchdog_timeout_ms = 100\n{HEALTHY}{}",
            fault("stuck", "Hang", "config = { after = 10 }\n")
        ),
    );
    let stats_path = s.path().join("stats.json");
    let out = run(&[
        "run",
        m.to_str().unwrap(),
        "--duration",
        "500ms",
        "--stats-json",
        stats_path.to_str().unwrap(),
    ]);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("node `stuck` is hung in a tick"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("watchdog expired"), "{}", out.stderr);
    let stats = horus_e2e::read_stats(&stats_path);
    assert_eq!(node(&stats, "stuck")["watchdog_expired"], true);
    assert_eq!(node(&stats, "healthy")["watchdog_expired"], false);
}

#[test]
fn the_faults_manifest_shows_every_fault_and_keeps_the_healthy_node_at_rate() {
    let s = Scratch::new();
    let faults = horus_e2e::repo_root().join("manifests/faults.toml");
    let (out, stats) = run_with_stats(&s, &faults, "4s");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    healthy_kept_its_rate(&stats, 4.0);
    assert_eq!(u(&node(&stats, "healthy")["total_failures"]), 0);
    let always = node(&stats, "always-error");
    assert_eq!(always["circuit_state"], "open");
    assert!(u(&always["restarts"]) >= 2, "{always}");
    let panicky = node(&stats, "panicky");
    assert_eq!(u(&panicky["total_failures"]), u(&panicky["total_ticks"]) / 4);
    assert_eq!(panicky["circuit_state"], "closed");
    let flaky = node(&stats, "flaky");
    assert_eq!(
        (flaky["circuit_state"].clone(), u(&flaky["restarts"])),
        (Value::from("closed"), 2)
    );
    assert!(u(&node(&stats, "slow")["deadline_misses"]) > 0);
    assert!(u(&node(&stats, "slow-init")["total_ticks"]) > 0);
    for hung in ["hang-thread", "hang-process"] {
        let n = node(&stats, hung);
        assert_eq!(n["watchdog_expired"], true, "{n}");
        assert!(u(&n["restarts"]) >= 1, "{n}");
    }
    for (crashy, signal) in [("segfault", "SIGSEGV"), ("abort", "SIGABRT")] {
        let n = node(&stats, crashy);
        assert!(u(&n["restarts"]) >= 1, "{n}");
        assert!(n["last_error"].as_str().unwrap().contains(signal), "{n}");
    }
}

/// The same faults on worker threads and in worker processes behave as inline: counted,
/// breaker, restart, recovery, deadline misses; the inline healthy node keeps its rate.
#[test]
fn fault_matrix_on_thread_and_process_isolation() {
    for isolation in ["thread", "process"] {
        let s = Scratch::new();
        let iso = format!("isolation = \"{isolation}\"\n");
        let m = s.write(
            "m.toml",
            &format!(
                "[scheduler]\nmax_failures = 3\nrestart_backoff_ms = 100\n{HEALTHY}{}{}{}{}\
                 [[node]]\nname = \"panicky\"\nplugin = \"{{plugin:faulty-panic}}\"\n{iso}config = {{ every = 4 }}\n",
                fault("bad", "AlwaysError", &iso),
                fault("flaky", "FlakyStart", &format!("{iso}config = {{ ready_after_ms = 400 }}\n")),
                fault("slow", "Slow", &format!("{iso}rate_hz = 10\ndeadline_ms = 1.0\nconfig = {{ sleep_ms = 3 }}\n")),
                fault("slowinit", "SlowInit", &format!("{iso}config = {{ init_ms = 200 }}\n")),
            ),
        );
        let (out, stats) = run_with_stats(&s, &m, "2s");
        assert_eq!(out.code(), 0, "{isolation}: {}", out.stderr);
        healthy_kept_its_rate(&stats, 2.0);
        for n in &stats {
            if n["name"] != "healthy" {
                assert_eq!(n["isolation"], isolation, "{n}");
            }
        }
        let bad = node(&stats, "bad");
        assert!(
            u(&bad["restarts"]) >= 2 && u(&bad["total_failures"]) >= 5,
            "{isolation}: {bad}"
        );
        let flaky = node(&stats, "flaky");
        assert_eq!(
            flaky["circuit_state"], "closed",
            "{isolation}: recovered after restarts: {flaky}"
        );
        assert!(
            u(&flaky["restarts"]) >= 1 && u(&flaky["consecutive_failures"]) == 0,
            "{isolation}: {flaky}"
        );
        assert!(
            u(&flaky["total_ticks"]) >= 100,
            "{isolation}: ticks again: {flaky}"
        );
        let panicky = node(&stats, "panicky");
        assert_eq!(
            u(&panicky["total_failures"]),
            u(&panicky["total_ticks"]) / 4,
            "{isolation}: {panicky}"
        );
        let slow = node(&stats, "slow");
        assert!(
            u(&slow["deadline_misses"]) >= 10 && u(&slow["deadline_misses"]) == u(&slow["total_ticks"]),
            "{isolation}: {slow}"
        );
        assert!(u(&node(&stats, "slowinit")["total_ticks"]) >= 100);
    }
}

#[test]
fn bad_supervision_settings_are_clear_errors() {
    let s = Scratch::new();
    for (manifest, expected) in [
        (
            format!("[scheduler]\nwatchdog_timeout_ms = 5\n{HEALTHY}"),
            "`watchdog_timeout_ms` must be 10 to 60000 ms (got 5)",
        ),
        (
            format!("{HEALTHY}watchdog_ms = 70000\n"),
            "`watchdog_ms` must be 10 to 60000 ms (got 70000)",
        ),
        (
            format!("{HEALTHY}deadline_ms = -1.0\n"),
            "`deadline_ms` must be > 0 and ≤ 3600000 ms (got -1)",
        ),
        (
            format!("[scheduler]\nmax_failures = 0\n{HEALTHY}"),
            "`max_failures` must be ≥ 1 (got 0)",
        ),
    ] {
        let path = s.write("bad.toml", &manifest);
        let out = run(&["check", path.to_str().unwrap()]);
        assert_eq!(out.code(), 2, "{manifest}\n{}", out.stderr);
        assert!(
            out.stderr.contains("error[H0006]") && out.stderr.contains(expected),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn a_hung_thread_node_is_quarantined_and_replaced_while_the_others_keep_their_rate() {
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        &format!(
            "[scheduler]\nrestart_backoff_ms = 200\n{HEALTHY}{}",
            fault(
                "stuck",
                "Hang",
                "isolation = \"thread\"\nwatchdog_ms = 100\nconfig = { after = 20 }\n"
            )
        ),
    );
    let started = std::time::Instant::now();
    let (out, stats) = run_with_stats(&s, &m, "3s");
    assert_eq!(
        out.code(),
        0,
        "a hung thread node is not a host failure:\n{}",
        out.stderr
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the host exits on time"
    );
    healthy_kept_its_rate(&stats, 3.0);
    let stuck = node(&stats, "stuck");
    assert_eq!(stuck["isolation"], "thread");
    assert_eq!(stuck["watchdog_expired"], true, "{stuck}");
    assert!(
        u(&stuck["restarts"]) >= 2,
        "replaced by a fresh instance each time: {stuck}"
    );
    assert!(u(&stuck["total_ticks"]) > 40, "the fresh instances tick: {stuck}");
    assert!(
        stuck["last_error"].as_str().unwrap().contains("quarantined"),
        "{stuck}"
    );
    assert!(out.stderr.contains("worker thread quarantined"), "{}", out.stderr);
}

#[test]
fn a_hung_thread_node_without_auto_restart_stays_out() {
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        &format!(
            "[scheduler]\nauto_restart = false\n{HEALTHY}{}",
            fault(
                "stuck",
                "Hang",
                "isolation = \"thread\"\nwatchdog_ms = 50\nconfig = { after = 5 }\n"
            )
        ),
    );
    let (out, stats) = run_with_stats(&s, &m, "1s");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    healthy_kept_its_rate(&stats, 1.0);
    let stuck = node(&stats, "stuck");
    assert_eq!(
        (stuck["circuit_state"].clone(), u(&stuck["restarts"])),
        (Value::from("open"), 0),
        "{stuck}"
    );
    assert_eq!(u(&stuck["total_ticks"]), 5, "{stuck}");
}

#[test]
fn faults_on_worker_threads_are_counted_like_inline_ones() {
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        &format!(
            "[scheduler]\nmax_failures = 3\nauto_restart = false\n{HEALTHY}{}\
             [[node]]\nname = \"panicky\"\nplugin = \"{{plugin:faulty-panic}}\"\nisolation = \"thread\"\nconfig = {{ every = 4 }}\n",
            fault("bad", "AlwaysError", "isolation = \"thread\"\n")
        ),
    );
    let (out, stats) = run_with_stats(&s, &m, "1s");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    healthy_kept_its_rate(&stats, 1.0);
    let bad = node(&stats, "bad");
    assert_eq!(
        (u(&bad["total_failures"]), bad["circuit_state"].clone()),
        (3, Value::from("open")),
        "{bad}"
    );
    let panicky = node(&stats, "panicky");
    assert_eq!(
        u(&panicky["total_failures"]),
        u(&panicky["total_ticks"]) / 4,
        "{panicky}"
    );
    assert!(u(&panicky["total_ticks"]) >= 80, "{panicky}");
}

/// Regression: a quarantined worker keeps its topic endpoints; its full `reliable` input must
/// not refuse its publisher's sends for the rest of the run.
#[test]
fn a_quarantined_reliable_reader_does_not_block_its_publisher() {
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        "[scheduler]\nrestart_backoff_ms = 100\n\
         [[node]]\nname = \"count\"\nplugin = \"{plugin:hello-counter}\"\ntype = \"Counter\"\n\
         [[node]]\nname = \"sink\"\nplugin = \"{plugin:faulty-nodes}\"\ntype = \"HangingSink\"\n\
         isolation = \"thread\"\nwatchdog_ms = 50\nconfig = { after = 20 }\n\
         [[connect]]\nfrom = \"count.count\"\nto = \"sink.in\"\nqos = \"reliable(16)\"\n",
    );
    let (out, stats) = run_with_stats(&s, &m, "2s");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let count = node(&stats, "count");
    assert_eq!(
        u(&count["total_failures"]),
        0,
        "the publisher was never refused: {count}"
    );
    assert!(u(&count["total_ticks"]) >= 160, "{count}");
    assert!(u(&node(&stats, "sink")["restarts"]) >= 2);
}

/// The healthy node kept ≥ 90 % of the ticks its rate asks for (`secs` at 100 Hz).
fn healthy_kept_90_percent(stats: &[Value], secs: f64, what: &str) {
    let ticks = u(&node(stats, "healthy")["total_ticks"]) as f64;
    eprintln!("{what}: the healthy node ran at {:.1} Hz", ticks / secs);
    assert!(
        ticks >= 0.9 * 100.0 * secs,
        "{what}: the healthy node ticked {ticks} times in {secs} s ({:.1} Hz of 100)",
        ticks / secs
    );
}

/// Issue #13: a node whose restart (create + init) is slow, or never ends, must not slow the
/// others. `SlowRestart` fails every tick; its restart's `init` (after 1 s of the run) sleeps
/// 2 s, or forever. The restart runs off the scheduler thread: the healthy node keeps ≥ 90 %
/// of its 100 Hz; a replacement that never comes up is abandoned after the restart timeout
/// (the watchdog's, at least 1 s) and counted as a failure.
fn a_slow_or_hung_restart_does_not_slow_the_others(isolation: &str) {
    for init_ms in [2000, -1] {
        let s = Scratch::new();
        let m = s.write(
            "m.toml",
            &format!(
                "[scheduler]\nmax_failures = 3\nrestart_backoff_ms = 1200\n{HEALTHY}{}",
                fault(
                    "stuck",
                    "SlowRestart",
                    &format!(
                        "isolation = \"{isolation}\"\nwatchdog_ms = 300\n\
                         config = {{ init_ms = {init_ms}, after_ms = 1000 }}\n"
                    )
                )
            ),
        );
        let what = format!("{isolation}, init_ms = {init_ms}");
        let (out, stats) = run_with_stats(&s, &m, "4s");
        assert_eq!(out.code(), 0, "{what}: {}", out.stderr);
        healthy_kept_90_percent(&stats, 4.0, &what);
        let stuck = node(&stats, "stuck");
        assert!(u(&stuck["restarts"]) >= 1, "{what}: {stuck}");
        if init_ms < 0 {
            assert!(
                stuck["last_error"]
                    .as_str()
                    .unwrap()
                    .contains("restart did not finish"),
                "{what}: {stuck}"
            );
            assert!(
                out.stderr.contains("restart did not finish"),
                "{what}: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn a_slow_or_hung_restart_of_a_thread_node_does_not_slow_the_others() {
    a_slow_or_hung_restart_does_not_slow_the_others("thread");
}

#[test]
fn a_slow_or_hung_restart_of_a_process_node_does_not_slow_the_others() {
    a_slow_or_hung_restart_does_not_slow_the_others("process");
}

/// Issue #13: an inline node's restart runs on the scheduler thread and cannot be abandoned;
/// when its `init` never returns, the hung-run report names the node and the restart.
#[test]
fn a_hung_inline_restart_is_reported_by_node_name() {
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        &format!(
            "[scheduler]\nmax_failures = 3\nrestart_backoff_ms = 100\n{HEALTHY}{}",
            fault(
                "stuck",
                "SlowRestart",
                "config = { init_ms = -1, after_ms = 300 }\n"
            )
        ),
    );
    let out = run(&["run", m.to_str().unwrap(), "--duration", "1s"]);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("node `stuck` is hung in a restart (create/init)"),
        "{}",
        out.stderr
    );
}

/// Issue #13: the quarantine cap. A thread node that keeps hanging is failed for good after 3
/// quarantines, so it cannot grow the host's threads: hanging in every first tick (`after =
/// 1`: no successful tick in between), or after 4 good ticks each time (`after = 5`: its 3
/// abandoned threads are all still stuck). The failure is logged once; `quarantined_threads`
/// counts the stuck threads.
#[test]
fn a_thread_node_that_keeps_hanging_is_failed_after_3_quarantines() {
    for after in [1, 5] {
        let s = Scratch::new();
        let m = s.write(
            "m.toml",
            &format!(
                "[scheduler]\nrestart_backoff_ms = 50\n{HEALTHY}{}",
                fault(
                    "stuck",
                    "Hang",
                    &format!("isolation = \"thread\"\nwatchdog_ms = 50\nconfig = {{ after = {after} }}\n")
                )
            ),
        );
        let (out, stats) = run_with_stats(&s, &m, "3s");
        assert_eq!(out.code(), 0, "after = {after}: {}", out.stderr);
        healthy_kept_90_percent(&stats, 3.0, &format!("after = {after}"));
        let stuck = node(&stats, "stuck");
        assert_eq!(
            (
                stuck["circuit_state"].clone(),
                stuck["quarantined_threads"].clone(),
                u(&stuck["restarts"])
            ),
            (Value::from("failed"), Value::from(3), 2),
            "after = {after}: {stuck}"
        );
        assert_eq!(
            out.stderr.matches("circuit failed").count(),
            1,
            "after = {after}: logged once:\n{}",
            out.stderr
        );
        assert!(
            out.stderr.contains(" ERROR ") && out.stderr.contains("no longer restarted"),
            "{}",
            out.stderr
        );
    }
}
