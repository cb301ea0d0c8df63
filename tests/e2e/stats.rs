//! `horus stats`: live node tables from a running host over its owner-only control socket.

use horus_e2e::{horus, interrupt, spawn, wait, Scratch};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// `horus <args>` with its own runtime dir and namespace, so tests never see each other.
fn cmd(runtime: &Path, args: &[&str]) -> Command {
    let mut c = horus(args);
    c.env("XDG_RUNTIME_DIR", runtime)
        .env("HORUS_NAMESPACE", "stats-e2e");
    c
}

fn start_host(runtime: &Path, manifest: &Path, duration: &str) -> Child {
    spawn(cmd(
        runtime,
        &["run", manifest.to_str().unwrap(), "--duration", duration],
    ))
}

/// Waits for the host's control socket.
fn socket_of(runtime: &Path, host: &Child) -> PathBuf {
    let path = runtime
        .join("horus/stats-e2e")
        .join(format!("{}.sock", host.id()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    path
}

fn stats(runtime: &Path, args: &[&str]) -> horus_e2e::Outcome {
    let mut all = vec!["stats"];
    all.extend_from_slice(args);
    wait(spawn(cmd(runtime, &all)), Duration::from_secs(30))
}

#[test]
fn stats_shows_the_running_host_live_and_only_to_its_owner() {
    let s = Scratch::new();
    let faults = horus_e2e::repo_root().join("manifests/faults.toml");
    let host = start_host(s.path(), &faults, "6s");
    let socket = socket_of(s.path(), &host);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "owner-only socket");
    let dir_mode = std::fs::metadata(socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    std::thread::sleep(Duration::from_millis(1500));

    let json = stats(s.path(), &["--json"]);
    assert_eq!(json.code(), 0, "{}", json.stderr);
    let nodes: Vec<serde_json::Value> = serde_json::from_str(json.stdout.trim()).expect("JSON list");
    let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
    let expected = [
        "healthy",
        "always-error",
        "panicky",
        "flaky",
        "slow",
        "slow-init",
        "hang-thread",
        "hang-process",
        "segfault",
        "abort",
    ];
    assert_eq!(names, expected);
    let healthy = &nodes[0];
    assert!(
        healthy["total_ticks"].as_u64().unwrap() >= 50,
        "live counts: {healthy}"
    );
    for key in [
        "circuit_state",
        "restarts",
        "deadline_misses",
        "watchdog_expired",
        "tick_duration_p99_us",
        "topics",
    ] {
        assert!(!healthy[key].is_null(), "{key} in {healthy}");
    }
    assert_eq!(
        nodes[1]["circuit_state"], "open",
        "the fault shows live: {}",
        nodes[1]
    );

    let table = stats(s.path(), &[]);
    assert_eq!(table.code(), 0, "{}", table.stderr);
    assert!(
        table.stdout.contains(&format!("horus pid {}", host.id())),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("always-error") && table.stdout.contains("circuit"),
        "{}",
        table.stdout
    );

    let watcher = spawn(cmd(s.path(), &["stats", "--watch"]));
    std::thread::sleep(Duration::from_millis(2500));
    interrupt(&watcher);
    let watched = wait(watcher, Duration::from_secs(10));
    assert!(
        watched.stdout.matches("horus pid").count() >= 2,
        "refreshes: {}",
        watched.stdout
    );

    let out = wait(host, Duration::from_secs(30));
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(!socket.exists(), "the socket is removed when the host stops");
    assert!(
        !socket.parent().unwrap().exists(),
        "and so is the namespace's folder, which no other host uses"
    );
    let gone = stats(s.path(), &[]);
    assert_eq!(gone.code(), 1);
    assert!(gone.stderr.contains("no running horus host"), "{}", gone.stderr);
}

#[test]
fn several_hosts_need_a_pid() {
    let s = Scratch::new();
    let m = s.write(
        "m.toml",
        "[[node]]\nname = \"n\"\nplugin = \"{plugin:bench-noop}\"\n",
    );
    let a = start_host(s.path(), &m, "20s");
    let b = start_host(s.path(), &m, "20s");
    socket_of(s.path(), &a);
    socket_of(s.path(), &b);
    let ambiguous = stats(s.path(), &[]);
    assert_eq!(ambiguous.code(), 2, "{}", ambiguous.stderr);
    assert!(
        ambiguous.stderr.contains("choose one with --pid"),
        "{}",
        ambiguous.stderr
    );
    let pid = b.id().to_string();
    let one = stats(s.path(), &["--pid", &pid]);
    assert_eq!(one.code(), 0, "{}", one.stderr);
    assert!(one.stdout.contains(&format!("horus pid {pid}")), "{}", one.stdout);
    let missing = stats(s.path(), &["--pid", "1"]);
    assert_eq!(missing.code(), 1);
    for host in [a, b] {
        interrupt(&host);
        assert_eq!(wait(host, Duration::from_secs(30)).code(), 0);
    }
}
