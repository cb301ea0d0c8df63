//! `./scripts/bench.sh plugins`: finding plugins, as users run `horus` (release build).
//!
//! - **`horus plugins` over 50 plugins**: a folder of 50 plugin files (copies of the release
//!   demo and example plugins under distinct names) on `HORUS_PLUGIN_PATH`, with a copy of
//!   `horus` in a folder of its own (so `target/release` is not on the path) and a cache and
//!   data home of the run's own. *Cold*: the registry cache deleted before each run, so every
//!   library is opened by an `__inspect` child; *warm*: the cache of the previous run. Median
//!   of 5 cold and 10 warm runs, process start to exit. Target < 300 ms.
//! - **start → first tick, 10 plugins, names against paths**: the 10-plugin manifest of
//!   `benches/host.rs` (10 copies of `bench-noop`), once with `plugin = "<path>"` and once with
//!   `plugin = "node<i>"` found through `[plugins] path`; spawn to the "scheduler running" log
//!   line, the two interleaved, median of 15 each. Target: names within 10 % of paths.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench exe");
    exe.parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps/<bench>")
        .to_path_buf()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Milliseconds of one `horus plugins` run with the scratch path, cache and data home.
fn plugins_ms(horus: &Path, tmp: &Path) -> (f64, String) {
    let started = Instant::now();
    let out = Command::new(horus)
        .args(["plugins", "--json"])
        .env("HORUS_PLUGIN_PATH", tmp.join("plugins"))
        .env("XDG_CACHE_HOME", tmp.join("cache"))
        .env("XDG_DATA_HOME", tmp.join("data"))
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .output()
        .expect("run horus plugins");
    let ms = started.elapsed().as_secs_f64() * 1e3;
    assert!(out.status.success(), "horus plugins failed");
    (ms, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Milliseconds from spawning `horus run manifest` to its "scheduler running" line.
fn start_ms(horus: &Path, manifest: &Path) -> f64 {
    let started = Instant::now();
    let mut child = Command::new(horus)
        .args(["run", manifest.to_str().unwrap(), "--duration", "200ms"])
        .env("RUST_LOG", "info")
        .env("HORUS_NAMESPACE", format!("benchplug{}", std::process::id()))
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

fn main() {
    let dir = release_dir();
    let tmp = std::env::temp_dir().join(format!("horus-bench-plugins-{}", std::process::id()));
    for sub in ["plugins", "bin", "cache", "data", "ten"] {
        std::fs::create_dir_all(tmp.join(sub)).expect("temp dir");
    }
    let horus = tmp.join("bin/horus");
    std::fs::copy(dir.join("horus"), &horus).expect("copy horus (scripts/bench.sh builds it)");

    // 50 plugins.
    let sources = [
        "libimu_sim.so",
        "libattitude_filter.so",
        "libtelemetry_sink.so",
        "libhello_counter.so",
        "libbench_noop.so",
    ];
    for i in 0..50 {
        let from = dir.join(sources[i % sources.len()]);
        std::fs::copy(&from, tmp.join(format!("plugins/libplugin{i:02}.so")))
            .unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
    let cache = tmp.join("cache/horus/registry-v1.json");
    let _ = plugins_ms(&horus, &tmp); // warm the page cache
    let cold: Vec<f64> = (0..5)
        .map(|_| {
            let _ = std::fs::remove_file(&cache);
            plugins_ms(&horus, &tmp).0
        })
        .collect();
    let (_, listing) = plugins_ms(&horus, &tmp);
    let found = listing.matches("\"abi_version\"").count();
    assert_eq!(found, 50, "all 50 plugins listed: {listing}");
    let warm: Vec<f64> = (0..10).map(|_| plugins_ms(&horus, &tmp).0).collect();
    let (cold, warm) = (median(cold), median(warm));
    println!(
        "BENCH plugins_list_50_cold value={cold:.1} unit=ms baseline=300 ratio={:.2} baseline_name=target plugins=50 cache=none",
        cold / 300.0
    );
    println!(
        "BENCH plugins_list_50_warm value={warm:.1} unit=ms baseline=300 ratio={:.2} baseline_name=target plugins=50 cache=warm cold_ms={cold:.1}",
        warm / 300.0
    );

    // 10 plugins by path and by name.
    let ten = tmp.join("ten");
    let mut by_path = String::new();
    let mut by_name = String::from("[plugins]\npath = [\".\"]\n");
    for i in 0..10 {
        let so = ten.join(format!("libnode{i}.so"));
        std::fs::copy(dir.join("libbench_noop.so"), &so).expect("copy plugin");
        by_path.push_str(&format!(
            "[[node]]\nname = \"n{i}\"\nplugin = \"{}\"\n",
            so.display()
        ));
        by_name.push_str(&format!("[[node]]\nname = \"n{i}\"\nplugin = \"node{i}\"\n"));
    }
    let (paths_toml, names_toml) = (ten.join("paths.toml"), ten.join("names.toml"));
    std::fs::write(&paths_toml, by_path).expect("manifest");
    std::fs::write(&names_toml, by_name).expect("manifest");
    start_ms(&horus, &paths_toml);
    start_ms(&horus, &names_toml);
    let (mut paths, mut names) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        paths.push(start_ms(&horus, &paths_toml));
        names.push(start_ms(&horus, &names_toml));
    }
    let (paths, names) = (median(paths), median(names));
    println!(
        "BENCH start_first_tick_10_by_name value={names:.1} unit=ms baseline={paths:.1} ratio={:.3} baseline_name=by_path plugins=10 target_ratio=1.10",
        names / paths
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
