//! What the benchmarks that run the release `horus` binary share (`reload`, `apply`, `latency`):
//! where the release artifacts are, starting a host and collecting its log, reading its log's
//! `name=value` fields and the jitter probe's report, reading a counter's values, a process's
//! RSS, a median.

#![allow(dead_code)] // each benchmark uses its own part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Collects `child`'s stderr, line by line, on a thread of its own (so the host never blocks on
/// a full pipe): its lines once the host has ended.
pub fn collect_stderr(child: &mut Child) -> std::thread::JoinHandle<Vec<String>> {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    })
}

/// Appends to `values` the `u64` counts waiting for `sub` (`buf` is its scratch buffer).
pub fn read_counts(sub: &mut horus_host::shm::Subscriber, buf: &mut Vec<u8>, values: &mut Vec<u64>) {
    while sub.try_recv(buf).is_some() {
        values.push(u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")));
    }
}

/// `target/release`: the benchmark runs from `target/release/deps`.
pub fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench exe");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps/<bench>")
        .to_path_buf()
}

/// The release `horus run <manifest> --duration <duration> [--watch]` in namespace `ns`, its
/// log (at info) piped.
pub fn horus(manifest: &Path, duration: &str, watch: bool, ns: &str) -> Child {
    let mut cmd = Command::new(release_dir().join("horus"));
    cmd.args(["run", manifest.to_str().unwrap(), "--duration", duration]);
    if watch {
        cmd.arg("--watch");
    }
    cmd.env("RUST_LOG", "info")
        .env("HORUS_NAMESPACE", ns)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn horus")
}

/// A `name=value` field of a log line.
pub fn field(line: &str, name: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}="))?.parse().ok())
}

/// The `jitter-probe` node's tick-interval p99 (µs), from the host's log.
pub fn probe_p99_us(stderr: &str) -> f64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("jitter period_ns"))
        .expect("the probe reported");
    field(line, "p99_ns").expect("p99_ns") / 1e3
}

/// Resident memory of process `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The median (sorts `v`).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
