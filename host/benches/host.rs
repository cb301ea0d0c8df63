//! `./scripts/bench.sh host`: two figures of the `horus` binary as users run it (release build):
//!
//! - **start → first tick** with 10 plugins (10 copies of the `bench-noop` library, so each is
//!   a separate file to copy, `dlopen` and check): from spawning `horus run` to its "scheduler
//!   running" log line, median of 10 starts. Target < 100 ms.
//! - **tick jitter at 1 kHz** (realtime preset): p99 of |interval between two ticks of a node −
//!   1 ms| as the `jitter-probe` node sees it, against a bare `clock_nanosleep` loop to absolute
//!   1 ms deadlines measured in the same run. Target ≤ 1.5× the bare loop.
//! - **host memory** running the demo manifest (IMU → filter → sink): resident memory after 2 s
//!   without the shared-memory topic segments (`VmRSS − RssShmem` from /proc). Target ≤ 20 MB.
//! - **`horus check` at scale**: counter → summer pairs (`hello-counter`), 200, 1000 and 4000
//!   nodes, median of 5 checks each; the 4000-node figure against 4 × the 1000-node one
//!   measured in the same run, so a ratio near 1 means validation and planning grow linearly
//!   (a quadratic step gives about 4). Target: 4000 nodes well under a second.

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

/// Runs `horus run manifest --duration d` and returns its stderr.
fn run_capture(manifest: &Path, duration: &str) -> String {
    let out = Command::new(horus())
        .args(["run", manifest.to_str().unwrap(), "--duration", duration])
        .env("RUST_LOG", "info")
        .env("HORUS_NAMESPACE", format!("benchhost{}", std::process::id()))
        .stdout(Stdio::null())
        .output()
        .expect("run horus");
    assert!(
        out.status.success(),
        "horus failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// p99 of |interval − 1 ms| for a loop that sleeps to absolute 1 ms deadlines with
/// `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`, ns.
fn bare_loop_p99_ns(iterations: usize) -> f64 {
    use rustix::thread::{clock_nanosleep_absolute, ClockId};
    let now = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128
    };
    let mut deadline = now() + 1_000_000;
    let mut last: Option<i128> = None;
    let mut dev: Vec<f64> = Vec::with_capacity(iterations);
    for i in 0..iterations + 100 {
        let ts = rustix::time::Timespec {
            tv_sec: (deadline / 1_000_000_000) as i64,
            tv_nsec: (deadline % 1_000_000_000) as i64,
        };
        let _ = clock_nanosleep_absolute(ClockId::Monotonic, &ts);
        let t = now();
        if let Some(l) = last {
            if i >= 100 {
                dev.push(((t - l) - 1_000_000).unsigned_abs() as f64);
            }
        }
        last = Some(t);
        deadline += 1_000_000;
    }
    dev.sort_by(f64::total_cmp);
    dev[dev.len() * 99 / 100]
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

    // Jitter at 1 kHz: the scheduler against a bare absolute-deadline sleep loop.
    let bare = bare_loop_p99_ns(4000);
    let probe = tmp.join("jitter.toml");
    std::fs::write(
        &probe,
        format!(
            "[scheduler]\npreset = \"realtime\"\n[[node]]\nname = \"probe\"\nplugin = \"{}\"\ntype = \"JitterProbe\"\n",
            dir.join("libjitter_probe.so").display()
        ),
    )
    .expect("manifest");
    let line = run_capture(&probe, "5s")
        .lines()
        .find(|l| l.contains("jitter period_ns"))
        .map(str::to_owned);
    let line = line.expect("the probe reported");
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}="))?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    let (p99, p50, max) = (field("p99_ns"), field("p50_ns"), field("max_ns"));
    println!(
        "BENCH scheduler_jitter_1khz_p99 value={:.1} unit=us baseline={:.1} ratio={:.2} baseline_name=bare_clock_nanosleep p50_us={:.1} max_us={:.1} target_ratio=1.5",
        p99 / 1e3,
        bare / 1e3,
        p99 / bare,
        p50 / 1e3,
        max / 1e3
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
    check_scaling(&dir, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A manifest of `nodes` nodes: counter → summer pairs, each pair connected.
fn pairs_manifest(plugin: &Path, nodes: usize) -> String {
    let mut m = String::from("[scheduler]\npreset = \"standard\"\n");
    for i in 0..nodes / 2 {
        m.push_str(&format!(
            "[[node]]\nname = \"c{i}\"\nplugin = \"{p}\"\ntype = \"Counter\"\nconfig = {{ step = 2 }}\n\n\
             [[node]]\nname = \"s{i}\"\nplugin = \"{p}\"\ntype = \"Summer\"\n\n\
             [[connect]]\nfrom = \"c{i}.count\"\nto = \"s{i}.numbers\"\nqos = \"reliable(64)\"\n\n",
            p = plugin.display()
        ));
    }
    m
}

/// Median milliseconds of `horus check manifest` (process start to exit).
fn check_ms(manifest: &Path, runs: usize) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let out = Command::new(horus())
                .args(["check", manifest.to_str().unwrap()])
                .stdout(Stdio::null())
                .output()
                .expect("run horus check");
            assert!(
                out.status.success(),
                "horus check failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn check_scaling(dir: &Path, tmp: &Path) {
    let plugin = dir.join("libhello_counter.so");
    let ms: Vec<f64> = [200, 1000, 4000]
        .iter()
        .map(|&n| {
            let path = tmp.join(format!("pairs{n}.toml"));
            std::fs::write(&path, pairs_manifest(&plugin, n)).expect("manifest");
            check_ms(&path, 5)
        })
        .collect();
    let linear = 4.0 * ms[1];
    println!(
        "BENCH check_4000_nodes value={:.1} unit=ms baseline={linear:.1} ratio={:.2} baseline_name=4x_check_1000_nodes n200_ms={:.1} n1000_ms={:.1} target_ms=1000",
        ms[2],
        ms[2] / linear,
        ms[0],
        ms[1]
    );
}
