//! `./scripts/bench.sh apply`: live apply of a changed manifest (issue 16) in the release
//! `horus --watch`. The manifest runs 50 nodes at 1 kHz (realtime preset): 48 `bench-noop`
//! spinners, the `jitter-probe` node, and a `hello-counter` `Counter` publishing its count on a
//! `reliable` named topic this benchmark reads; the benchmark then saves the manifest 20 times
//! (written beside it and renamed over it, as an editor does), 500 ms apart, switching the
//! counter's `config = { step = … }` between 1 and 2.
//!
//! - **latency**: from the rename to the first value on the topic that grew by the new step (the
//!   node replaced with its new config and its count handed over), median and max; target
//!   ≤ 50 ms.
//! - **messages lost**: gaps or duplicates in the count (steps other than 1 and 2); must be 0.
//! - **jitter**: the probe's tick-interval p99 during the applies, against a run of the same
//!   manifest without `--watch` but with the same 20 saves and the same reading (so the ratio is
//!   what applying adds); target ≤ 1.5×.

mod common;

use common::{horus, median, probe_p99_us, release_dir};
use horus_host::shm::{self, TopicSpec};
use horus_plugin_api::Message;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const APPLIES: usize = 20;
const SPINNERS: usize = 48;
const TOPIC: &str = "bench/apply";
/// How often the benchmark looks at the topic, in both runs alike (the latency's resolution).
const POLL: Duration = Duration::from_micros(500);

/// The manifest with the counter's `step`.
fn manifest(dir: &Path, step: u64) -> String {
    let mut m = String::from("[scheduler]\npreset = \"realtime\"\nmax_failures = 1000\n");
    for i in 0..SPINNERS {
        m.push_str(&format!(
            "\n[[node]]\nname = \"spin{i}\"\nplugin = \"{}\"\n",
            dir.join("libbench_noop.so").display()
        ));
    }
    m.push_str(&format!(
        "\n[[node]]\nname = \"probe\"\nplugin = \"{}\"\ntype = \"JitterProbe\"\n\n[[node]]\nname = \"counter\"\nplugin = \"{}\"\n\
         type = \"Counter\"\nconfig = {{ step = {step} }}\n\n[[connect]]\nfrom = \"counter.count\"\n\
         topic = \"{TOPIC}\"\nqos = \"reliable(65536)\"\n",
        dir.join("libjitter_probe.so").display(),
        dir.join("libhello_counter.so").display()
    ));
    m
}

/// Saves `text` at `path` as an editor does: written beside it, renamed over it.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).expect("write the manifest");
    std::fs::rename(&tmp, path).expect("rename it into place");
}

/// One run: 2 s to settle, then [`APPLIES`] saves 500 ms apart; returns the host's log, every
/// value read, and (with `watch`) each save's latency in ms.
fn run(path: &Path, dir: &Path, spec: &TopicSpec, ns: &str, watch: bool) -> (String, Vec<u64>, Vec<f64>) {
    save(path, &manifest(dir, 1));
    let mut sub = shm::subscriber(ns, spec, 65536, true).expect("the benchmark's reader");
    let mut child = horus(path, "120s", watch, ns);
    let pid = child.id();
    let log = common::collect_stderr(&mut child);
    let mut values: Vec<u64> = Vec::new();
    let mut buf = Vec::new();
    let mut read = |values: &mut Vec<u64>| common::read_counts(&mut sub, &mut buf, values);
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle || values.is_empty() {
        read(&mut values);
        std::thread::sleep(POLL);
    }
    let mut latencies = Vec::new();
    for i in 0..APPLIES {
        let step = if i % 2 == 0 { 2 } else { 1 };
        let seen = values.len();
        let started = Instant::now();
        save(path, &manifest(dir, step));
        let mut switched = !watch;
        while !switched || started.elapsed() < Duration::from_millis(500) {
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
                "apply {i} did not take"
            );
            std::thread::sleep(POLL);
        }
    }
    let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status();
    let _ = child.wait();
    read(&mut values);
    let lines = log.join().expect("log reader").join("\n");
    (lines, values, latencies)
}

fn main() {
    let dir = release_dir();
    let tmp = std::env::temp_dir().join(format!("horus-bench-apply-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let path = tmp.join("robot.toml");
    let spec = TopicSpec {
        topic: TOPIC.into(),
        type_name: <u64 as Message>::TYPE_NAME.into(),
        type_hash: <u64 as Message>::TYPE_HASH,
        slot_size: 8,
        capacity: 65536,
        single_producer: false,
    };
    let ns = format!("benchapply{}", std::process::id());
    eprintln!("apply bench: baseline run (no --watch), {APPLIES} saves of the manifest…");
    let (base_log, _, _) = run(&path, &dir, &spec, &format!("{ns}a"), false);
    let base_p99 = probe_p99_us(&base_log);
    eprintln!("apply bench: --watch run, {APPLIES} applies…");
    let (log, values, mut latencies) = run(&path, &dir, &spec, &ns, true);
    let applied = log
        .matches("apply: +0 nodes, -0, ~1 changed (counter: config)")
        .count();
    let lost = values
        .windows(2)
        .filter(|w| !matches!(w[1].wrapping_sub(w[0]), 1 | 2))
        .count();
    let p99 = probe_p99_us(&log);
    let (latency_median, latency_max) = (
        median(&mut latencies),
        latencies.iter().copied().fold(0.0, f64::max),
    );
    println!(
        "BENCH apply_latency value={latency_median:.1} unit=ms baseline=50 ratio={:.2} baseline_name=target max_ms={latency_max:.1} applies={applied} nodes={}",
        latency_median / 50.0,
        SPINNERS + 2
    );
    println!("BENCH apply_messages_lost value={lost} unit=msgs baseline=0 ratio=0 baseline_name=target received={}", values.len());
    println!(
        "BENCH apply_jitter_1khz_p99 value={p99:.1} unit=us baseline={base_p99:.1} ratio={:.2} baseline_name=same_run_without_watch target_ratio=1.5",
        p99 / base_p99
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
