//! `./scripts/bench.sh host`: two figures of the `horus` binary as users run it (release build):
//!
//! - **start → first tick** with 10 plugins (10 copies of the `bench-noop` library, so each is
//!   a separate file to copy, `dlopen` and check): from spawning `horus run` to its "scheduler
//!   running" log line, median of 10 starts. Target < 100 ms.
//! - **host memory** running the demo manifest (IMU → filter → sink): resident memory after 2 s
//!   without the shared-memory topic segments (`VmRSS − RssShmem` from /proc). Target ≤ 20 MB.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench exe");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps/<bench>")
        .to_path_buf()
}

fn horus() -> PathBuf {
    let bin = release_dir().join("horus");
    assert!(
        bin.is_file(),
        "{} missing: scripts/bench.sh builds it",
        bin.display()
    );
    bin
}

/// Milliseconds from spawning `horus run manifest` to its "scheduler running" line.
fn start_ms(manifest: &Path) -> f64 {
    let started = Instant::now();
    let mut child = Command::new(horus())
        .args(["run", manifest.to_str().unwrap(), "--duration", "200ms"])
        .env("RUST_LOG", "info")
        .env("HORUS_NAMESPACE", format!("benchhost{}", std::process::id()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn horus");
    let stderr = child.stderr.take().expect("stderr");
    let mut took = None;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if took.is_none() && line.contains("scheduler running") {
            took = Some(started.elapsed());
        }
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "horus failed: {status}");
    took.expect("the scheduler started").as_secs_f64() * 1e3
}

/// kB of a `/proc/<pid>/status` field.
fn status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    text.lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn main() {
    let dir = release_dir();
    let tmp = std::env::temp_dir().join(format!("horus-bench-host-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");

    // 10 plugins.
    let mut manifest = String::new();
    for i in 0..10 {
        let so = tmp.join(format!("libnode{i}.so"));
        std::fs::copy(dir.join("libbench_noop.so"), &so).expect("copy plugin");
        manifest.push_str(&format!(
            "[[node]]\nname = \"n{i}\"\nplugin = \"{}\"\n",
            so.display()
        ));
    }
    let ten = tmp.join("ten.toml");
    std::fs::write(&ten, manifest).expect("manifest");
    start_ms(&ten); // warm the page cache
    let mut starts: Vec<f64> = (0..10).map(|_| start_ms(&ten)).collect();
    starts.sort_by(f64::total_cmp);
    println!(
        "BENCH host_start_to_first_tick value={:.1} unit=ms baseline=100 ratio={:.2} baseline_name=target plugins=10 max={:.1}",
        starts[5],
        starts[5] / 100.0,
        starts[9]
    );

    // The demo, with release plugins.
    let demo = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/demo.toml"))
        .expect("demo manifest")
        .replace("../target/debug/", &format!("{}/", dir.display()));
    let demo_path = tmp.join("demo.toml");
    std::fs::write(&demo_path, demo).expect("manifest");
    let mut child = Command::new(horus())
        .args(["run", demo_path.to_str().unwrap(), "--duration", "4s"])
        .env("RUST_LOG", "warn")
        .env("HORUS_NAMESPACE", format!("benchhost{}", std::process::id()))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn horus");
    std::thread::sleep(Duration::from_secs(2));
    let (rss, shm) = (
        status_kb(child.id(), "VmRSS:"),
        status_kb(child.id(), "RssShmem:"),
    );
    let status = child.wait().expect("wait");
    assert!(status.success(), "demo failed: {status}");
    let mb = (rss - shm) as f64 / 1024.0;
    println!(
        "BENCH host_memory_demo value={mb:.1} unit=MB baseline=20 ratio={:.2} baseline_name=target vmrss_mb={:.1} shm_mb={:.1}",
        mb / 20.0,
        rss as f64 / 1024.0,
        shm as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
