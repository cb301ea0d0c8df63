//! `./scripts/bench.sh record`: what `horus run --record` (issue 19) costs and sustains, in the
//! release `horus`, the MCAP files written to a tmpfs directory (`HORUS_BENCH_DIR`, which
//! `bench.sh` makes with `mktemp -d` on /dev/shm and removes at the end, with the segments of
//! the namespace it names in `HORUS_NAMESPACE`). Plugins: `seq-stream` (`SeqSource` /
//! `SeqCheck`).
//!
//! 1. **Tick cost**: 10 nodes at 1 kHz (`tick_rate = 1000`), five `SeqSource` → `SeqCheck`
//!    pairs, each source sending one 64-byte message per tick on a `reliable(64)` connection;
//!    5 s without and 5 s with `--record` (every topic and the `horus.ticks` channel). The
//!    figure is the nodes' tick-duration p99 from `--stats-json`: the worst node's and the mean
//!    over the ten, against the run without recording (target ≤ 1.25×). Then the messages sent
//!    (and ticks run) that are not in the file: the recorder's own `dropped` count (its queue
//!    to the writer was full) plus any it missed (overwritten in a ring before it read them);
//!    target 0.
//! 2. **Writer throughput, 64 B**: one `SeqSource`, 1000 messages per tick at 1 kHz (1 M/s) on
//!    a named `keep_last(16384)` topic (16 bursts), recorded for 5 s; messages in the file per
//!    second of the recording (from the recorder's start to the file's end, so a writer that
//!    drains a backlog after the run is not credited with the run's 5 s), against the same
//!    source without recording (messages sent per second). Target ≥ 1 M/s, 0 lost.
//! 3. **Writer throughput, 1 MiB**: the same with 1 MiB messages, one per tick at 500 Hz
//!    (524 MB/s), written in place (`loan = true`) on a `keep_last(32)` topic; MB/s (10^6
//!    bytes of payload) in the file per second of the recording, against `dd` writing the same
//!    number of bytes in 1 MiB blocks into the same tmpfs directory in the same run. Target
//!    ≥ 500 MB/s, 0 lost.
//! 4. **Past the targets**: the same two sources offering more, 2.5 M/s of 64 B (burst 2500)
//!    and 1000/s of 1 MiB (1 GB/s), recorded only: what the recording keeps up with, against
//!    what the source sent in the same run, and what it lost doing so. No target: these say
//!    how much room the figures above have.
//!
//! Messages in the file are counted from the MCAP's summary (per-channel message counts), sent
//! ones from `--stats-json`. No segment of the benchmark's namespace may be left behind.

mod common;

use common::release_dir;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// How long each run lasts.
const RUN_S: u64 = 5;
const PAIRS: usize = 5;
const SMALL: usize = 64;
const SMALL_BURST: u64 = 1000;
const SMALL_RING: u32 = 16_384;
const LARGE: usize = 1 << 20;
const LARGE_HZ: u64 = 500;
const LARGE_RING: u32 = 32;
/// The burst of the 64-byte run past the target (2.5 M/s offered).
const OVER_BURST: u64 = 2500;

/// What one `horus run` left: its log, its stats, and (recorded) what the file holds.
struct Run {
    log: Vec<String>,
    stats: Vec<serde_json::Value>,
    /// Per channel of the file: its name and message count.
    channels: Vec<(String, u64)>,
}

impl Run {
    /// The log line that contains `what`.
    fn line(&self, what: &str) -> &str {
        self.log
            .iter()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no `{what}` in the host's log:\n{}", self.log.join("\n")))
    }

    /// Seconds between the log lines that contain `from` and `to` (their timestamps).
    fn between(&self, from: &str, to: &str) -> f64 {
        let (a, b) = (log_time(self.line(from)), log_time(self.line(to)));
        let d = b - a;
        if d < 0.0 {
            d + 86_400.0 // over midnight
        } else {
            d
        }
    }

    /// The scheduler's own run time (`scheduler stopped … elapsed=5.0001s`).
    fn elapsed_s(&self) -> f64 {
        let line = self.line("scheduler stopped");
        let v = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("elapsed="))
            .expect("elapsed=");
        duration_s(v)
    }

    /// The recorder's `recorded N messages (… MB) of C channels into F, D dropped` line: D.
    fn recorder_dropped(&self) -> u64 {
        let line = self.line(" channels into ");
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "dropped").expect("`dropped`");
        words[at - 1].parse().expect("the dropped count")
    }

    /// Sum of `key` over the nodes whose name starts with `prefix`.
    fn sum(&self, prefix: &str, key: &str) -> u64 {
        self.stats
            .iter()
            .filter(|n| n["name"].as_str().unwrap_or("").starts_with(prefix))
            .map(|n| n[key].as_u64().unwrap_or(0))
            .sum()
    }

    /// Node `name`'s mean tick duration, µs.
    fn tick_avg_us(&self, name: &str) -> f64 {
        self.stats
            .iter()
            .find(|n| n["name"] == name)
            .and_then(|n| n["tick_duration_avg_us"].as_f64())
            .unwrap_or(f64::NAN)
    }

    /// Messages of channel `name` in the file.
    fn in_file(&self, name: &str) -> u64 {
        self.channels
            .iter()
            .filter(|(c, _)| c == name)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Seconds of the day of a log line's leading RFC 3339 timestamp (`2026-12-01T07:46:41.712Z`).
fn log_time(line: &str) -> f64 {
    let stamp = line.split_whitespace().next().unwrap_or("");
    let clock = stamp
        .split('T')
        .nth(1)
        .and_then(|t| t.strip_suffix('Z'))
        .unwrap_or_else(|| panic!("no timestamp in `{line}`"));
    let parts: Vec<f64> = clock.split(':').map(|p| p.parse().expect("hh:mm:ss")).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// A `Duration`'s debug form (`5.00001s`, `999.2ms`) in seconds.
fn duration_s(v: &str) -> f64 {
    for (unit, scale) in [("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)] {
        if let Some(n) = v.strip_suffix(unit) {
            return n.parse::<f64>().expect("a duration") * scale;
        }
    }
    panic!("not a duration: {v}")
}

/// Runs `manifest` for [`RUN_S`] seconds in namespace `ns`, with `--record mcap` if given.
fn run(manifest: &Path, ns: &str, mcap: Option<&Path>) -> Run {
    let stats_path = manifest.with_extension("stats.json");
    let mut cmd = Command::new(release_dir().join("horus"));
    cmd.args([
        "run",
        manifest.to_str().unwrap(),
        "--duration",
        &format!("{RUN_S}s"),
    ])
    .arg("--stats-json")
    .arg(&stats_path);
    if let Some(f) = mcap {
        cmd.arg("--record").arg(f);
    }
    let mut child = cmd
        .env("RUST_LOG", "info")
        .env("HORUS_NAMESPACE", ns)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn horus");
    let log = common::collect_stderr(&mut child);
    let status = child.wait().expect("wait for horus");
    let log = log.join().expect("log reader");
    assert!(status.success(), "horus failed ({status}):\n{}", log.join("\n"));
    let stats = serde_json::from_str(&std::fs::read_to_string(&stats_path).expect("stats json"))
        .expect("stats json parses");
    let _ = std::fs::remove_file(&stats_path);
    let channels = mcap.map(channel_counts).unwrap_or_default();
    if let Some(f) = mcap {
        // Gigabytes of tmpfs: gone as soon as counted.
        let _ = std::fs::remove_file(f);
    }
    Run { log, stats, channels }
}

/// The message count of each channel of an MCAP file, from its summary.
fn channel_counts(path: &Path) -> Vec<(String, u64)> {
    let file = std::fs::File::open(path).expect("open the recording");
    // SAFETY: the file is ours, written and closed by the host that has exited; nothing
    // changes it while it is mapped.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("map the recording");
    let summary = mcap::read::Summary::read(&map)
        .expect("the recording's summary reads")
        .expect("the recording has a summary");
    let stats = summary.stats.expect("the summary has statistics");
    summary
        .channels
        .values()
        .map(|c| {
            let n = stats.channel_message_counts.get(&c.id).copied().unwrap_or(0);
            (c.topic.clone(), n)
        })
        .collect()
}

fn pairs_manifest(plugin: &Path) -> String {
    let mut m = String::from("[scheduler]\ntick_rate = 1000\nmax_failures = 1000\n");
    for i in 0..PAIRS {
        m.push_str(&format!(
            "\n[[node]]\nname = \"src{i}\"\nplugin = \"{p}\"\ntype = \"SeqSource\"\n\
             config = {{ size = {SMALL}, burst = 1, count = 1000000000 }}\n\n\
             [[node]]\nname = \"chk{i}\"\nplugin = \"{p}\"\ntype = \"SeqCheck\"\n\
             config = {{ expect = 1000000000 }}\n\n\
             [[connect]]\nfrom = \"src{i}.out\"\nto = \"chk{i}.in\"\nqos = \"reliable(64)\"\nmax_size = {SMALL}\n",
            p = plugin.display()
        ));
    }
    m
}

/// One `SeqSource` sending `burst` messages of `size` bytes per tick at `hz` on the named topic
/// `topic` that holds `ring` of them.
fn source_manifest(plugin: &Path, hz: u64, size: usize, burst: u64, ring: u32, topic: &str) -> String {
    format!(
        "[scheduler]\ntick_rate = {hz}\nmax_failures = 1000\n\n[[node]]\nname = \"src\"\nplugin = \"{}\"\n\
         type = \"SeqSource\"\nconfig = {{ size = {size}, burst = {burst}, count = 1000000000, loan = {} }}\n\n\
         [[connect]]\nfrom = \"src.out\"\ntopic = \"{topic}\"\nqos = \"keep_last({ring})\"\nmax_size = {size}\n",
        plugin.display(),
        size >= 4096
    )
}

fn p99s(run: &Run) -> Vec<(String, f64)> {
    run.stats
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap_or("?").to_owned(),
                n["tick_duration_p99_us"].as_f64().expect("tick_duration_p99_us"),
            )
        })
        .collect()
}

/// Part 1: tick p99 with and without recording; messages not in the file.
fn tick_cost(dir: &Path, plugin: &Path, ns: &str) {
    let manifest = dir.join("pairs.toml");
    std::fs::write(&manifest, pairs_manifest(plugin)).expect("manifest");
    let mcap = dir.join("pairs.mcap");
    eprintln!(
        "record bench 1/5: {} nodes at 1 kHz, {RUN_S} s without recording…",
        2 * PAIRS
    );
    let base = run(&manifest, ns, None);
    eprintln!("record bench 1/5: the same, {RUN_S} s with --record (every topic)…");
    let rec = run(&manifest, ns, Some(&mcap));
    let (b, r) = (p99s(&base), p99s(&rec));
    assert_eq!(b.len(), 2 * PAIRS);
    let worst = |v: &[(String, f64)]| {
        v.iter()
            .cloned()
            .max_by(|x, y| x.1.total_cmp(&y.1))
            .expect("nodes")
    };
    let mean = |v: &[(String, f64)]| v.iter().map(|x| x.1).sum::<f64>() / v.len() as f64;
    let (bw, rw) = (worst(&b), worst(&r));
    let list = |v: &[(String, f64)]| {
        v.iter()
            .map(|(n, p)| format!("{n}:{p:.2}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let overruns = |run: &Run| common::field(run.line("scheduler stopped"), "overruns").unwrap_or(f64::NAN);
    println!(
        "BENCH record_tick_p99_worst value={:.2} unit=us baseline={:.2} ratio={:.2} baseline_name=same_run_without_record target_ratio=1.25 worst_node={} baseline_worst_node={} nodes={} overruns={} baseline_overruns={}",
        rw.1,
        bw.1,
        rw.1 / bw.1,
        rw.0,
        bw.0,
        2 * PAIRS,
        overruns(&rec),
        overruns(&base)
    );
    println!(
        "BENCH record_tick_p99_mean value={:.2} unit=us baseline={:.2} ratio={:.2} baseline_name=same_run_without_record target_ratio=1.25 recorded={} baseline={}",
        mean(&r),
        mean(&b),
        mean(&r) / mean(&b),
        list(&r),
        list(&b)
    );
    let sent = rec.sum("src", "messages_sent");
    let recorded: u64 = (0..PAIRS).map(|i| rec.in_file(&format!("src{i}.out"))).sum();
    let ticks = rec.sum("", "total_ticks");
    let ticks_in_file = rec.in_file("horus.ticks");
    let dropped = rec.recorder_dropped();
    let lost = (sent - recorded.min(sent)) + (ticks - ticks_in_file.min(ticks));
    println!(
        "BENCH record_1khz_lost value={lost} unit=msgs baseline=0 ratio=0 baseline_name=target recorder_dropped={dropped} overwritten={} sent={sent} recorded={recorded} ticks={ticks} ticks_recorded={ticks_in_file}",
        lost.saturating_sub(dropped)
    );
}

/// A source's run with `--record`, and the same source's run without.
struct Throughput {
    /// Messages of the source's topic in the file.
    recorded: u64,
    /// Per second of the recording: from the recorder's start (before the first tick) to the
    /// file's end (after the writer drained what was queued when the run ended).
    per_s: f64,
    /// Messages per second the source sent without recording.
    base_per_s: f64,
    /// Messages per second the source sent while recorded.
    sent_per_s: f64,
    /// Messages sent and ticks run that are not in the file.
    lost: u64,
    /// The recorder's own count of those (its queue to the writer was full).
    dropped: u64,
    /// What the writer's figure is made of.
    extras: String,
}

/// `topic`: the named topic the source publishes on (its channel in the file).
/// `baseline`: run the source without recording first (else `base_per_s` is NaN).
fn throughput(
    dir: &Path,
    ns: &str,
    name: &str,
    topic: &str,
    manifest: &str,
    part: &str,
    baseline: bool,
) -> Throughput {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, manifest).expect("manifest");
    let mcap = dir.join(format!("{name}.mcap"));
    let (base_per_s, base_tick) = match baseline {
        true => {
            eprintln!("record bench {part}: the source, {RUN_S} s without recording…");
            let base = run(&path, ns, None);
            (
                base.sum("src", "messages_sent") as f64 / base.elapsed_s(),
                base.tick_avg_us("src"),
            )
        }
        false => (f64::NAN, f64::NAN),
    };
    eprintln!("record bench {part}: the source, {RUN_S} s with --record…");
    let rec = run(&path, ns, Some(&mcap));
    let sent = rec.sum("src", "messages_sent");
    let recorded = rec.in_file(topic);
    let ticks = rec.sum("", "total_ticks");
    let ticks_in_file = rec.in_file("horus.ticks");
    let span = rec.between("recording this host's topics", " channels into ");
    let drain = rec.between("scheduler stopped", " channels into ");
    let ran = rec.elapsed_s();
    Throughput {
        recorded,
        per_s: recorded as f64 / span,
        sent_per_s: sent as f64 / ran,
        base_per_s,
        lost: (sent - recorded.min(sent)) + (ticks - ticks_in_file.min(ticks)),
        dropped: rec.recorder_dropped(),
        extras: format!(
            "sent={sent} recorded={recorded} span_s={span:.2} run_s={ran:.2} drain_s={drain:.2} sent_per_s={:.0} src_tick_avg_us={:.1} unrecorded_src_tick_avg_us={base_tick:.1}",
            sent as f64 / ran,
            rec.tick_avg_us("src")
        ),
    }
}

/// The line of the messages a throughput run did not record.
fn lost_line(name: &str, t: &Throughput) {
    println!(
        "BENCH {name} value={} unit=msgs baseline=0 ratio=0 baseline_name=target recorder_dropped={} overwritten={}",
        t.lost,
        t.dropped,
        t.lost.saturating_sub(t.dropped)
    );
}

/// The line of a run offered more than the targets: what was recorded per second, against what
/// the source sent per second in the same run (times `scale`: MB per message, or 1).
fn ceiling_line(name: &str, unit: &str, scale: f64, t: &Throughput) {
    println!(
        "BENCH {name} value={:.0} unit={unit} baseline={:.0} ratio={:.2} baseline_name=sent_by_the_source_in_the_same_run lost={} recorder_dropped={} overwritten={} {}",
        t.per_s * scale,
        t.sent_per_s * scale,
        t.per_s / t.sent_per_s,
        t.lost,
        t.dropped,
        t.lost.saturating_sub(t.dropped),
        t.extras
    );
}

fn main() {
    let dir =
        PathBuf::from(std::env::var_os("HORUS_BENCH_DIR").expect(
            "HORUS_BENCH_DIR: a tmpfs directory for the recordings (scripts/bench.sh record makes one)",
        ));
    let plugin = release_dir().join("libseq_stream.so");
    assert!(
        plugin.is_file(),
        "{} missing: scripts/bench.sh builds it",
        plugin.display()
    );
    // `bench.sh` names the namespace, to remove what an interrupted run leaves in it.
    let ns = std::env::var("HORUS_NAMESPACE").unwrap_or_else(|_| format!("benchrec{}", std::process::id()));

    tick_cost(&dir, &plugin, &ns);

    let small = source_manifest(&plugin, 1000, SMALL, SMALL_BURST, SMALL_RING, "bench/rec64");
    let t = throughput(
        &dir,
        &ns,
        "small",
        "bench/rec64",
        &small,
        "2/5 (64 B, 1 M/s)",
        true,
    );
    println!(
        "BENCH record_writer_64b value={:.0} unit=msgs/s baseline={:.0} ratio={:.2} baseline_name=same_source_unrecorded_sent target=1000000 ring={SMALL_RING} {}",
        t.per_s,
        t.base_per_s,
        t.per_s / t.base_per_s,
        t.extras
    );
    lost_line("record_64b_lost", &t);

    let large = source_manifest(&plugin, LARGE_HZ, LARGE, 1, LARGE_RING, "bench/rec1m");
    let t = throughput(
        &dir,
        &ns,
        "large",
        "bench/rec1m",
        &large,
        "3/5 (1 MiB, 500/s)",
        true,
    );
    let mb = |msgs: f64| msgs * LARGE as f64 / 1e6;
    eprintln!(
        "record bench 3/5: dd of the same bytes ({} MiB) into the same tmpfs directory…",
        t.recorded
    );
    let dd_file = dir.join("dd.bin");
    let started = Instant::now();
    let status = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", dd_file.display()))
        .args(["bs=1M", &format!("count={}", t.recorded)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run dd");
    let dd_s = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&dd_file);
    assert!(status.success(), "dd failed: {status}");
    let dd = mb(t.recorded as f64) / dd_s;
    println!(
        "BENCH record_writer_1mib value={:.0} unit=MB/s baseline={dd:.0} ratio={:.2} baseline_name=dd_same_bytes_same_tmpfs target=500 unrecorded_mb_s={:.0} ring={LARGE_RING} {}",
        mb(t.per_s),
        mb(t.per_s) / dd,
        mb(t.base_per_s),
        t.extras
    );
    lost_line("record_1mib_lost", &t);

    // Past the targets: what the recording keeps up with when offered more than it can take.
    let over = source_manifest(&plugin, 1000, SMALL, OVER_BURST, SMALL_RING, "bench/rec64");
    let t = throughput(
        &dir,
        &ns,
        "small-over",
        "bench/rec64",
        &over,
        "4/5 (64 B, 2.5 M/s offered)",
        false,
    );
    ceiling_line("record_writer_64b_ceiling", "msgs/s", 1.0, &t);
    let over = source_manifest(&plugin, 1000, LARGE, 1, LARGE_RING, "bench/rec1m");
    let t = throughput(
        &dir,
        &ns,
        "large-over",
        "bench/rec1m",
        &over,
        "5/5 (1 MiB, 1000/s offered)",
        false,
    );
    ceiling_line("record_writer_1mib_ceiling", "MB/s", LARGE as f64 / 1e6, &t);

    let left = horus_host::shm::segment_names(&ns);
    assert!(left.is_empty(), "segments left behind: {left:?}");
}
