//! `./scripts/bench.sh reload`: hot reload of an `inline` node in the release `horus`, as a
//! developer's rebuild triggers it. The manifest runs, at 1 kHz (realtime preset), the
//! `reload-counter` node (publishing its count on a `reliable` named topic this benchmark reads)
//! and the `jitter-probe` node; the benchmark then replaces the counter's library 50 times,
//! alternating the +1 and +1000 builds, the way cargo does (a new file renamed over the old one).
//!
//! - **latency**: from the rename to the first value of the new build on the topic (the file is
//!   complete at the rename), median and max; target ≤ 50 ms.
//! - **on the scheduler thread**: the swap (the old code's `save_state`, the new code's `create`,
//!   `restore_state`, `init`) plus retiring the old code after the new one's first tick, from the
//!   host's log; target ≤ 5 ms.
//! - **messages lost**: gaps or duplicates in the count; must be 0.
//! - **jitter**: the probe's tick-interval p99 during the reloads, against a run of the same
//!   manifest measured first without `--watch` but with the same file replacements and the same
//!   reading (so the baseline includes what the "rebuilds" and the reader cost the machine, and
//!   the ratio is what reloading adds); target ≤ 1.5×.
//! - **RSS growth** over the 50 reloads; target < 5 MB.

mod common;

use common::{field, horus, median, probe_p99_us, release_dir, rss_kib};
use horus_host::shm::{self, TopicSpec};
use horus_plugin_api::Message;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RELOADS: usize = 50;
const TOPIC: &str = "bench/reload";

fn manifest(dir: &Path, lib: &Path, tmp: &Path) -> PathBuf {
    let path = tmp.join("reload.toml");
    std::fs::write(
        &path,
        format!(
            "[scheduler]\npreset = \"realtime\"\nmax_failures = 1000\n\n[[node]]\nname = \"counter\"\nplugin = \"{}\"\n\
             type = \"ReloadCounter\"\n\n[[node]]\nname = \"probe\"\nplugin = \"{}\"\ntype = \"JitterProbe\"\n\n[[connect]]\nfrom = \"counter.count\"\n\
             topic = \"{TOPIC}\"\nqos = \"reliable(65536)\"\n",
            lib.display(),
            dir.join("libjitter_probe.so").display()
        ),
    )
    .expect("manifest");
    path
}

fn replace(source: &Path, target: &Path) {
    let tmp = target.with_extension("so.tmp");
    std::fs::copy(source, &tmp).expect("copy the new build");
    std::fs::rename(&tmp, target).expect("rename it into place");
}

/// How often the benchmark looks at the topic, in both runs alike (the latency's resolution).
const POLL: Duration = Duration::from_micros(500);

/// One run of the manifest: 2 s to settle, then [`RELOADS`] replacements of the counter's
/// library 250 ms apart, as a developer's rebuilds come; the host watches the file only if
/// `watch`, so the run without it does the same work around the host and measures the baseline.
struct Run {
    /// The host's log.
    lines: Vec<String>,
    /// Every value read from the topic.
    values: Vec<u64>,
    /// Per reload: rename → first value of the new build (watch only).
    latencies: Vec<f64>,
    /// The host's RSS growth over the reloads, KiB.
    rss_grown: u64,
}

fn run(manifest: &Path, lib: &Path, builds: &[PathBuf; 2], spec: &TopicSpec, ns: &str, watch: bool) -> Run {
    let mut sub = shm::subscriber(ns, spec, 65536, true).expect("the benchmark's reader");
    let mut child = horus(manifest, "60s", watch, ns);
    let pid = child.id();
    let log = common::collect_stderr(&mut child);
    let mut values: Vec<u64> = Vec::new();
    let mut buf = Vec::new();
    let mut read = |values: &mut Vec<u64>| common::read_counts(&mut sub, &mut buf, values);
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        read(&mut values);
        std::thread::sleep(POLL);
    }
    let rss_before = rss_kib(pid);
    let mut latencies = Vec::new();
    for i in 0..RELOADS {
        let step = if i % 2 == 0 { 1000 } else { 1 };
        let seen = values.len().max(1);
        let started = Instant::now();
        replace(&builds[i % 2], lib);
        let mut switched = !watch;
        // Let the next rebuild come later than the debounce, as a developer's would.
        while !switched || started.elapsed() < Duration::from_millis(250) {
            read(&mut values);
            if !switched
                && values.len() > seen
                && values[seen..]
                    .iter()
                    .zip(&values[seen - 1..])
                    .any(|(b, a)| b - a == step)
            {
                latencies.push(started.elapsed().as_secs_f64() * 1e3);
                switched = true;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "reload {i} did not take"
            );
            std::thread::sleep(POLL);
        }
    }
    let rss_grown = rss_kib(pid).saturating_sub(rss_before);
    // Stop the run (its probe reports at shutdown) and collect the rest.
    let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status();
    let _ = child.wait();
    read(&mut values);
    let lines = log.join().expect("log reader");
    Run {
        lines,
        values,
        latencies,
        rss_grown,
    }
}

fn main() {
    let dir = release_dir();
    let tmp = std::env::temp_dir().join(format!("horus-bench-reload-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let builds = [
        dir.join("libreload_counter_v2.so"),
        dir.join("libreload_counter.so"),
    ];
    let lib = tmp.join("libcounter.so");
    std::fs::copy(&builds[1], &lib).expect("copy the first build");
    let manifest = manifest(&dir, &lib, &tmp);

    let spec = TopicSpec {
        topic: TOPIC.into(),
        type_name: <u64 as Message>::TYPE_NAME.into(),
        type_hash: <u64 as Message>::TYPE_HASH,
        slot_size: 8,
        capacity: 65536,
        single_producer: false,
    };
    let ns = format!("benchreload{}", std::process::id());
    // Baseline: the same manifest and the same file replacements, without `--watch`.
    eprintln!("reload bench: baseline run (no --watch), {RELOADS} file replacements…");
    let base = run(&manifest, &lib, &builds, &spec, &format!("{ns}a"), false);
    let base_p99 = probe_p99_us(&base.lines.join("\n"));
    std::fs::copy(&builds[1], &lib).expect("copy the first build");
    eprintln!("reload bench: --watch run, {RELOADS} reloads…");
    let Run {
        lines,
        values,
        mut latencies,
        rss_grown,
    } = run(&manifest, &lib, &builds, &spec, &ns, true);
    let stderr = lines.join("\n");
    let lost = values
        .windows(2)
        .filter(|w| !matches!(w[1].wrapping_sub(w[0]), 1 | 1000))
        .count();
    let mut on_thread: Vec<f64> = lines
        .iter()
        .filter(|l| l.contains("running the new code"))
        .filter_map(|l| Some((field(l, "swap_us")? + field(l, "retire_us")?) / 1e3))
        .collect();
    let reload_p99 = probe_p99_us(&stderr);
    let (latency_median, latency_max) = (
        median(&mut latencies),
        latencies.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "BENCH reload_latency value={latency_median:.1} unit=ms baseline=50 ratio={:.2} baseline_name=target max_ms={latency_max:.1} reloads={RELOADS}",
        latency_median / 50.0
    );
    let (thread_median, thread_max) = (
        median(&mut on_thread),
        on_thread.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "BENCH reload_on_scheduler_thread value={thread_median:.3} unit=ms baseline=5 ratio={:.3} baseline_name=target max_ms={thread_max:.3} swaps={}",
        thread_median / 5.0,
        on_thread.len()
    );
    println!("BENCH reload_messages_lost value={lost} unit=msgs baseline=0 ratio=0 baseline_name=target received={}", values.len());
    println!(
        "BENCH reload_jitter_1khz_p99 value={reload_p99:.1} unit=us baseline={base_p99:.1} ratio={:.2} baseline_name=same_run_without_watch target_ratio=1.5",
        reload_p99 / base_p99
    );
    let grown = rss_grown as f64 / 1024.0;
    println!(
        "BENCH reload_rss_growth value={grown:.2} unit=MB baseline=5 ratio={:.2} baseline_name=target reloads={RELOADS}",
        grown / 5.0
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
