//! Running manifests with the real binary: the demo ticks at its rates and moves its messages,
//! failures are counted while the host keeps running, signals stop it cleanly.

use horus_e2e::{horus, node, read_stats, run, run_with_stats, spawn, wait, Scratch};
use std::time::Duration;

fn ticks(n: &serde_json::Value) -> f64 {
    n["total_ticks"].as_f64().unwrap()
}

#[test]
fn demo_ticks_near_its_rates_and_delivers_every_estimate() {
    let s = Scratch::new();
    let demo = horus_e2e::repo_root().join("manifests/demo.toml");
    let (out, stats) = run_with_stats(&s, &demo, "3s");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("node ") && out.stdout.contains("telemetry"),
        "stats table:\n{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("roll"),
        "the sink reports what it receives:\n{}",
        out.stderr
    );

    assert_eq!(stats.len(), 3);
    let (imu, filter, telemetry) = (
        node(&stats, "imu"),
        node(&stats, "filter"),
        node(&stats, "telemetry"),
    );
    // 3 s at 100 Hz and 10 Hz. Lower bounds are loose (shared CI cores); a node may never tick
    // faster than its rate (plus the final drain tick).
    assert!(
        ticks(imu) >= 150.0 && ticks(imu) <= 301.0,
        "imu ticked {}",
        ticks(imu)
    );
    assert!(
        ticks(filter) >= 150.0 && ticks(filter) <= 302.0,
        "filter ticked {}",
        ticks(filter)
    );
    assert!(
        ticks(telemetry) >= 15.0 && ticks(telemetry) <= 32.0,
        "telemetry ticked {}",
        ticks(telemetry)
    );
    for n in &stats {
        assert_eq!(n["total_failures"], 0, "{n}");
        for key in [
            "consecutive_failures",
            "priority",
            "tick_rate",
            "logging_enabled",
            "tick_duration_min_us",
            "tick_duration_avg_us",
            "tick_duration_max_us",
        ] {
            assert!(!n[key].is_null(), "stats field {key} missing in {n}");
        }
    }
    assert_eq!(telemetry["tick_rate"], 10.0);
    assert_eq!(
        imu["messages_sent"], filter["messages_received"],
        "keep_last(8) at the same rate drops nothing"
    );
    // reliable + the drain on shutdown: every estimate the filter published reached the sink.
    assert_eq!(filter["messages_sent"], telemetry["messages_received"]);
    assert_eq!(telemetry["dropped"], 0);
}

#[test]
fn panicking_node_is_counted_and_the_host_keeps_running() {
    let s = Scratch::new();
    let manifest = s.write(
        "faulty.toml",
        "[scheduler]\ntick_rate = 200.0\n\
         [[node]]\nname = \"healthy\"\nplugin = \"{plugin:bench-noop}\"\n\
         [[node]]\nname = \"panicky\"\nplugin = \"{plugin:faulty-panic}\"\nconfig = { every = 4 }\n",
    );
    let (out, stats) = run_with_stats(&s, &manifest, "2s");
    assert_eq!(
        out.code(),
        0,
        "a panicking node is not a host failure:\n{}",
        out.stderr
    );
    let (healthy, panicky) = (node(&stats, "healthy"), node(&stats, "panicky"));
    assert!(ticks(healthy) >= 200.0, "healthy node kept ticking: {healthy}");
    assert_eq!(
        ticks(healthy),
        ticks(panicky),
        "the panicking node is ticked every cycle too"
    );
    let failures = panicky["total_failures"].as_u64().unwrap();
    assert_eq!(
        failures,
        panicky["total_ticks"].as_u64().unwrap() / 4,
        "{panicky}"
    );
    assert!(panicky["consecutive_failures"].as_u64().unwrap() <= 1);
    let last = panicky["last_error"].as_str().unwrap();
    assert!(
        last.contains("injected panic at tick") && last.contains("src/lib.rs"),
        "{last}"
    );
    assert!(out.stderr.contains("tick panicked"), "{}", out.stderr);
    // Rate-limited: far fewer log lines than failures.
    let logged = out.stderr.matches("tick panicked").count() as u64;
    assert!(
        logged < failures / 4,
        "{logged} log lines for {failures} failures"
    );
}

#[test]
fn sigint_stops_cleanly_with_stats() {
    let s = Scratch::new();
    let stats = s.path().join("stats.json");
    let manifest = s.write(
        "count.toml",
        "[[node]]\nname = \"counter\"\nplugin = \"{plugin:hello-counter}\"\ntype = \"Counter\"\n\
         [[node]]\nname = \"summer\"\nplugin = \"{plugin:hello-counter}\"\ntype = \"Summer\"\n\
         [[connect]]\nfrom = \"counter.count\"\nto = \"summer.numbers\"\nqos = \"reliable\"\n",
    );
    let child = spawn(horus(&[
        "run",
        manifest.to_str().unwrap(),
        "--stats-json",
        stats.to_str().unwrap(),
    ]));
    std::thread::sleep(Duration::from_millis(800));
    horus_e2e::interrupt(&child);
    let out = wait(child, Duration::from_secs(20));
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(out.stderr.contains("stop requested"), "{}", out.stderr);
    // Every node's shutdown ran once.
    assert_eq!(out.stderr.matches("stopped at").count(), 1, "{}", out.stderr);
    assert_eq!(out.stderr.matches("received ").count(), 1, "{}", out.stderr);
    let stats = read_stats(&stats);
    let (counter, summer) = (node(&stats, "counter"), node(&stats, "summer"));
    assert!(ticks(counter) > 10.0);
    assert_eq!(
        counter["messages_sent"], summer["messages_received"],
        "nothing lost on a reliable topic"
    );
}

#[test]
fn node_that_fails_to_start_is_a_runtime_error() {
    let s = Scratch::new();
    let manifest = s.write(
        "bad-config.toml",
        "[[node]]\nname = \"imu\"\nplugin = \"{plugin:imu-sim}\"\n\
         [[node]]\nname = \"counter\"\nplugin = \"{plugin:hello-counter}\"\ntype = \"Counter\"\nconfig = { step = -1 }\n",
    );
    let out = run(&["run", manifest.to_str().unwrap(), "--duration", "5s"]);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("node `counter` failed to start (create): config `step` must be > 0 (got -1)"),
        "{}",
        out.stderr
    );
    // The node started before it was shut down.
    assert!(out.stderr.contains("published 0 IMU samples"), "{}", out.stderr);
}

#[test]
fn high_rate_preset_keeps_up() {
    let s = Scratch::new();
    let manifest = s.write(
        "fast.toml",
        "[scheduler]\npreset = \"low_latency\"\n[[node]]\nname = \"n\"\nplugin = \"{plugin:bench-noop}\"\n",
    );
    let (out, stats) = run_with_stats(&s, &manifest, "2s");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let n = ticks(node(&stats, "n"));
    assert!((500.0..=1001.0).contains(&n), "500 Hz for 2 s ticked {n}");
}

#[test]
fn logging_false_hides_the_nodes_own_lines() {
    let s = Scratch::new();
    let manifest = s.write(
        "quiet.toml",
        "[[node]]\nname = \"loud\"\nplugin = \"{plugin:hello-counter}\"\ntype = \"Counter\"\n\
         [[node]]\nname = \"quiet\"\nplugin = \"{plugin:hello-counter}\"\ntype = \"Counter\"\nlogging = false\n",
    );
    let (out, stats) = run_with_stats(&s, &manifest, "300ms");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("stopped at").count(),
        1,
        "only `loud` logs:\n{}",
        out.stderr
    );
    assert!(out.stderr.contains("node=\"loud\""), "{}", out.stderr);
    assert_eq!(node(&stats, "quiet")["logging_enabled"], false);
    assert_eq!(node(&stats, "loud")["logging_enabled"], true);
}

/// `horus run --fail-on-node-error`: exit 1 after the stats when a node ended with its circuit
/// open, 0 when every node is healthy, and without the flag a faulty node is not a host failure.
// Issue #15, item 8.
#[test]
fn issue_15_fail_on_node_error_exits_1_when_a_circuit_is_open() {
    let s = Scratch::new();
    let stats = s.path().join("stats.json");
    let faulty = s.write(
        "faulty.toml",
        "[scheduler]\ntick_rate = 100.0\nmax_failures = 2\nauto_restart = false\n\
         [[node]]\nname = \"healthy\"\nplugin = \"{plugin:bench-noop}\"\n\
         [[node]]\nname = \"broken\"\nplugin = \"{plugin:faulty-nodes}\"\ntype = \"AlwaysError\"\n",
    );
    let healthy = s.write(
        "healthy.toml",
        "[[node]]\nname = \"healthy\"\nplugin = \"{plugin:bench-noop}\"\n",
    );
    let run_it = |manifest: &std::path::Path, flag: bool| {
        let _ = std::fs::remove_file(&stats);
        let mut args = vec![
            "run",
            manifest.to_str().unwrap(),
            "--duration",
            "500ms",
            "--stats-json",
            stats.to_str().unwrap(),
        ];
        if flag {
            args.push("--fail-on-node-error");
        }
        wait(spawn(horus(&args)), Duration::from_secs(60))
    };

    let out = run_it(&faulty, true);
    assert_eq!(out.code(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("node `broken` ended with its circuit open")
            && out.stderr.contains("injected error"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("node `healthy` ended"), "{}", out.stderr);
    assert!(
        out.stdout.contains("broken"),
        "the stats table still prints:\n{}",
        out.stdout
    );
    let written = read_stats(&stats);
    assert_eq!(node(&written, "broken")["circuit_state"], "open");

    let out = run_it(&faulty, false);
    assert_eq!(
        out.code(),
        0,
        "without the flag a failing node is supervised, not fatal:\n{}",
        out.stderr
    );

    let out = run_it(&healthy, true);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(!out.stderr.contains("--fail-on-node-error"), "{}", out.stderr);
}

/// How `child` (whose output the test took over) exits, within 30 s.
fn exit_of(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the host did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Regression: a host whose stderr nobody reads any more (a closed pipe) used to abort on its
/// next log line — the log subscriber reported the failed write with `eprintln!`, which
/// panicked, inside a node's log call — leaving its topics in /dev/shm. It runs to the end.
#[test]
fn a_closed_stderr_loses_log_lines_not_the_run() {
    use std::io::Read;
    let ns = format!("e2e-{}-closed-stderr", std::process::id());
    let demo = horus_e2e::repo_root().join("manifests/demo.toml");
    let mut cmd = horus(&["run", demo.to_str().unwrap(), "--duration", "2500ms"]);
    cmd.env("HORUS_NAMESPACE", &ns);
    let mut child = spawn(cmd);
    let mut first = [0u8; 64];
    let mut stderr = child.stderr.take().unwrap();
    stderr.read_exact(&mut first).unwrap();
    drop(stderr);
    let status = exit_of(&mut child);
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert_eq!(status.code(), Some(0), "{status:?} {stdout}");
    assert!(stdout.contains("ran 2.5"), "the stats still print: {stdout}");
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

/// `horus run … | head`: a stdout closed before the final table loses the table, not the exit
/// code (it used to panic, exit 101) nor the stats file.
#[test]
fn a_closed_stdout_loses_the_table_not_the_exit_code() {
    let ns = format!("e2e-{}-closed-stdout", std::process::id());
    let s = Scratch::new();
    let stats = s.path().join("s.json");
    let demo = horus_e2e::repo_root().join("manifests/demo.toml");
    let mut cmd = horus(&["run", demo.to_str().unwrap(), "--duration", "500ms"]);
    cmd.args(["--stats-json", stats.to_str().unwrap()])
        .env("HORUS_NAMESPACE", &ns)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    let status = exit_of(&mut child);
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(read_stats(&stats).len(), 3);
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}
