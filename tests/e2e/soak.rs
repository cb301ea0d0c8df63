//! Soak test (issue #13): `manifests/faults.toml` — every fault at once, restarted over and
//! over — run by the real `horus` binary for about 45 s, sampling the host every 0.7 s. What
//! it holds must stay flat: threads (`/proc/<pid>/task`), open fds (`/proc/<pid>/fd`), RSS,
//! worker processes (its children) and its `/dev/shm` entries. Early samples (after a warm-up,
//! when every fault has fired at least once and a thread node that keeps hanging has hit the
//! quarantine cap) are compared with late ones, with a tolerance for what a restart in
//! progress briefly holds. No timing is asserted.

use horus_e2e::{repo_root, spawn, wait, Scratch};
use std::time::{Duration, Instant};

/// How long the run lasts.
const RUN: Duration = Duration::from_secs(45);
/// How often the host is sampled: not a multiple of the faults' cycles (hang-process: 1 s of
/// ticks, hang and backoff), so the samples do not lock onto one phase of a restart.
const EVERY: Duration = Duration::from_millis(700);
/// The early window (after the warm-up) and the late one, from the start of the run.
const EARLY: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(16));
const LATE: (Duration, Duration) = (Duration::from_secs(36), Duration::from_secs(43));

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    threads: usize,
    fds: usize,
    rss_kib: u64,
    children: usize,
    shm: usize,
}

fn count_dir(path: &str) -> Option<usize> {
    Some(std::fs::read_dir(path).ok()?.count())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The host's child processes (its worker processes), over all its threads.
fn children(pid: u32) -> Option<usize> {
    let mut n = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("children");
        n += std::fs::read_to_string(path)
            .map(|s| s.split_whitespace().count())
            .unwrap_or(0);
    }
    Some(n)
}

/// `/dev/shm` entries of namespace `ns` (topics, command blocks, whatever their prefix).
fn shm_entries(ns: &str) -> usize {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.contains(ns))
                .count()
        })
        .unwrap_or(0)
}

fn sample(pid: u32, ns: &str, at: Duration) -> Option<Sample> {
    Some(Sample {
        at,
        threads: count_dir(&format!("/proc/{pid}/task"))?,
        fds: count_dir(&format!("/proc/{pid}/fd"))?,
        rss_kib: rss_kib(pid)?,
        children: children(pid)?,
        shm: shm_entries(ns),
    })
}

/// The samples taken within `window`.
fn within(samples: &[Sample], window: (Duration, Duration)) -> Vec<Sample> {
    samples
        .iter()
        .filter(|s| s.at >= window.0 && s.at <= window.1)
        .copied()
        .collect()
}

/// Asserts that the late samples of one measure did not grow past the early ones by more than
/// `tolerance`: the smallest late value against the largest early one, so a restart in
/// progress at either end does not count, and a steady leak does.
fn flat(what: &str, early: &[u64], late: &[u64], tolerance: u64, all: &[Sample]) {
    let early_max = *early.iter().max().expect("early samples");
    let late_min = *late.iter().min().expect("late samples");
    eprintln!("{what}: at most {early_max} early, at least {late_min} late");
    assert!(
        late_min <= early_max + tolerance,
        "{what} grew: at most {early_max} early, at least {late_min} late (tolerance {tolerance});\n\
         samples: {all:#?}"
    );
}

#[test]
fn the_faults_manifest_holds_flat_threads_fds_memory_and_shm() {
    let s = Scratch::new();
    let ns = format!("soak{}", std::process::id());
    let faults = repo_root().join("manifests/faults.toml");
    let stats = s.path().join("stats.json");
    let mut cmd = horus_e2e::horus(&[
        "run",
        faults.to_str().expect("utf-8 path"),
        "--duration",
        &format!("{}s", RUN.as_secs()),
        "--stats-json",
        stats.to_str().expect("utf-8 path"),
    ]);
    cmd.env("HORUS_NAMESPACE", &ns).env("RUST_LOG", "error");
    let child = spawn(cmd);
    let pid = child.id();
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < LATE.1 {
        std::thread::sleep(EVERY);
        match sample(pid, &ns, started.elapsed()) {
            Some(s) => samples.push(s),
            None => break, // the host is gone; `wait` reports how.
        }
    }
    let out = wait(child, RUN + Duration::from_secs(60));
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let (early, late) = (within(&samples, EARLY), within(&samples, LATE));
    assert!(
        early.len() >= 3 && late.len() >= 3,
        "too few samples in the windows: {samples:#?}"
    );
    let of = |v: &[Sample], f: fn(&Sample) -> u64| v.iter().map(f).collect::<Vec<u64>>();
    flat(
        "threads",
        &of(&early, |s| s.threads as u64),
        &of(&late, |s| s.threads as u64),
        2,
        &samples,
    );
    flat(
        "open fds",
        &of(&early, |s| s.fds as u64),
        &of(&late, |s| s.fds as u64),
        4,
        &samples,
    );
    flat(
        "worker processes",
        &of(&early, |s| s.children as u64),
        &of(&late, |s| s.children as u64),
        2,
        &samples,
    );
    flat(
        "/dev/shm entries",
        &of(&early, |s| s.shm as u64),
        &of(&late, |s| s.shm as u64),
        2,
        &samples,
    );
    let rss_early = of(&early, |s| s.rss_kib);
    let rss_tolerance = (rss_early.iter().max().copied().unwrap_or(0) / 4).max(16 * 1024);
    flat(
        "RSS (KiB)",
        &rss_early,
        &of(&late, |s| s.rss_kib),
        rss_tolerance,
        &samples,
    );
    // The faults did fire all along: the run is a soak, not an idle host.
    let nodes = horus_e2e::read_stats(&stats);
    for name in ["hang-process", "segfault", "abort"] {
        let n = horus_e2e::node(&nodes, name);
        assert!(horus_e2e::count(&n["restarts"]) >= 5, "{n}");
    }
    let hang_thread = horus_e2e::node(&nodes, "hang-thread");
    assert_eq!(hang_thread["circuit_state"], "failed", "capped: {hang_thread}");
    assert_eq!(
        shm_entries(&ns),
        0,
        "the host removed its /dev/shm entries at exit"
    );
}
