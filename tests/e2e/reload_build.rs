//! The development loop of hot reload (`build =` and `watch =`), issue #14 item 5: the real
//! `horus` binary runs a counter node with `--watch`, and the test edits the node's "source"
//! while it runs. To stay fast and hermetic the build command is a small script in the test's
//! folder standing in for cargo: it fails with compiler-like errors when the source says
//! `syntax error`, and otherwise puts the prebuilt v1 or v2 counter (as the source says) at the
//! plugin path, written beside it and renamed over it as cargo does.
//!
//! `reload-counter` adds 1 per tick, `reload-counter-v2` adds 1000; the test reads the counter's
//! named `reliable` topic itself.

use horus_e2e::counts::{self, drain, read_for, read_until};
use horus_e2e::{finish, node, plugin, read_stats, shm_leftovers, start_watching, Scratch};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TOPIC: &str = "reload/count";

/// The stand-in for `cargo build`: see the module docs. `slow` in the source makes it wait 30 s
/// (writing the pid of its `sleep` first), `pause` 1 s; every run appends a line to `builds.log`.
const BUILD_SH: &str = r#"echo run >> builds.log
echo "   Compiling counter v0.1.0 (fake)"
if grep -q slow src/counter.rs; then
  sleep 30 & echo $! > sleep.pid
  wait
fi
if grep -q pause src/counter.rs; then
  echo paused > paused
  sleep 1
fi
if grep -q "syntax error" src/counter.rs; then
  echo "error[E0308]: mismatched types" >&2
  echo "  --> src/counter.rs:1:1" >&2
  echo "error: could not compile \`counter\` (lib) due to 1 previous error" >&2
  exit 101
fi
if grep -q v2 src/counter.rs; then build=v2.so.src; else build=v1.so.src; fi
cp "$build" libcounter.so.tmp && mv libcounter.so.tmp libcounter.so
echo "    Finished \`dev\` profile"
"#;

fn namespace(test: &str) -> String {
    format!("reload-build-{}-{test}", std::process::id())
}

/// Whether v2 (steps of 1000) has run.
fn v2_ran(values: &[u64]) -> bool {
    values.windows(2).any(|w| w[1].wrapping_sub(w[0]) == 1000)
}

/// The scratch folder of a `build =` node: the script, both prebuilt counters, the source
/// (saying `v1`), v1 at the plugin path, and the manifest.
fn setup(s: &Scratch, scheduler: &str) -> PathBuf {
    s.write("build.sh", BUILD_SH);
    std::fs::copy(plugin("reload-counter"), s.path().join("v1.so.src")).unwrap();
    std::fs::copy(plugin("reload-counter-v2"), s.path().join("v2.so.src")).unwrap();
    std::fs::copy(plugin("reload-counter"), s.path().join("libcounter.so")).unwrap();
    std::fs::create_dir(s.path().join("src")).unwrap();
    s.write("src/counter.rs", "// v1\n");
    s.write(
        "reload.toml",
        &format!(
            "[scheduler]\ntick_rate = 100\n{scheduler}\n[[node]]\nname = \"counter\"\nplugin = \"libcounter.so\"\n\
             type = \"ReloadCounter\"\nbuild = \"sh build.sh\"\nwatch = [\"src/**\"]\n\n\
             [[connect]]\nfrom = \"counter.count\"\ntopic = \"{TOPIC}\"\nqos = \"reliable(1024)\"\n"
        ),
    )
}

/// Saves `text` as the source the way editors do: a temporary file beside it, renamed over it.
fn edit(s: &Scratch, text: &str) {
    let tmp = s.path().join("src/.counter.rs.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, s.path().join("src/counter.rs")).unwrap();
}

fn builds(s: &Scratch) -> usize {
    std::fs::read_to_string(s.path().join("builds.log"))
        .map(|l| l.lines().count())
        .unwrap_or(0)
}

/// Issue #14: with `build =`, a change of the node's source runs the build, and the build's new
/// plugin is reloaded: the count goes on, in v2's steps, once.
#[test]
fn a_source_change_rebuilds_and_reloads_the_node() {
    let s = Scratch::new();
    let ns = namespace("rebuild");
    let m = setup(&s, "");
    let mut sub = counts::reader(&ns, TOPIC);
    let stats_path = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "4s", &stats_path);
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(800));
    assert!(!v2_ran(&values) && values.len() > 20, "v1 runs first: {values:?}");
    edit(&s, "// v2\n");
    let reloaded = read_until(&mut sub, &mut values, Duration::from_secs(3), v2_ran);
    let out = finish(child);
    drain(&mut sub, &mut values);
    assert!(reloaded, "v2 never ran: {}", out.stderr);
    for w in values.windows(2) {
        assert!(
            [1, 1000].contains(&(w[1] - w[0])),
            "a gap or a duplicate at {w:?}"
        );
    }
    for line in [
        "building counter: sh build.sh",
        "counter | ",
        "Compiling counter v0.1.0 (fake)",
        "build of counter finished in",
        "hot reload: running the new code",
    ] {
        assert!(out.stderr.contains(line), "no `{line}` in:\n{}", out.stderr);
    }
    assert_eq!(builds(&s), 1, "one save, one build:\n{}", out.stderr);
    let stats = read_stats(&stats_path);
    let counter = node(&stats, "counter");
    assert_eq!(
        (
            counter["generation"].as_u64(),
            counter["reloads"].as_u64(),
            counter["reload_failures"].as_u64()
        ),
        (Some(2), Some(1), Some(0)),
        "{counter}"
    );
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #14: a build that fails keeps the old code running, shows the compiler's errors in the
/// log and counts a failed reload; fixing the source then reloads.
#[test]
fn a_compile_error_keeps_the_old_code_running() {
    let s = Scratch::new();
    let ns = namespace("broken");
    let m = setup(&s, "");
    let mut sub = counts::reader(&ns, TOPIC);
    let stats_path = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "5s", &stats_path);
    let mut values = Vec::new();
    read_for(&mut sub, &mut values, Duration::from_millis(800));
    edit(&s, "// v2, with a syntax error\n");
    read_for(&mut sub, &mut values, Duration::from_millis(1500));
    let broken = values.len();
    assert!(!v2_ran(&values), "the broken build was not loaded");
    edit(&s, "// v2\n");
    let fixed = read_until(&mut sub, &mut values, Duration::from_secs(3), v2_ran);
    let out = finish(child);
    drain(&mut sub, &mut values);
    assert!(fixed, "the fixed build never ran: {}", out.stderr);
    // The old code kept counting in steps of 1 while the build was broken.
    assert!(
        values[..broken].windows(2).all(|w| w[1] - w[0] == 1),
        "{values:?}"
    );
    assert!(broken > 150, "the counter ran on: {broken} values");
    for line in [
        "error[E0308]: mismatched types",
        "build of counter failed (exit status 101)",
        "the old code keeps running",
    ] {
        assert!(out.stderr.contains(line), "no `{line}` in:\n{}", out.stderr);
    }
    assert!(
        out.stderr.lines().any(|l| l.contains("node=counter")
            && l.contains("rolled back: build failed (exit status 101): error[E0308]: mismatched types")),
        "{}",
        out.stderr
    );
    let stats = read_stats(&stats_path);
    let counter = node(&stats, "counter");
    assert_eq!(
        (
            counter["generation"].as_u64(),
            counter["reload_failures"].as_u64()
        ),
        (Some(2), Some(1)),
        "{counter}"
    );
    assert!(
        counter["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("build failed")),
        "{counter}"
    );
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Saves during a build queue exactly one more build, run after it: the last save wins.
#[test]
fn saves_during_a_build_queue_exactly_one_more() {
    let s = Scratch::new();
    let ns = namespace("queue");
    let m = setup(&s, "");
    let mut sub = counts::reader(&ns, TOPIC);
    let stats_path = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "5s", &stats_path);
    std::thread::sleep(Duration::from_millis(800));
    edit(&s, "// v1, pause\n");
    let paused = s.path().join("paused");
    let end = Instant::now() + Duration::from_secs(3);
    while !paused.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(paused.exists(), "the build did not start");
    // Three saves while it builds (1 s): one more build, after it, with the last one.
    for text in ["// v1, a\n", "// v1, b\n", "// v2\n"] {
        edit(&s, text);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(builds(&s), 1, "no second build while one runs");
    let mut values = Vec::new();
    let reloaded = read_until(&mut sub, &mut values, Duration::from_secs(3), v2_ran);
    let out = finish(child);
    assert!(reloaded, "the queued build never ran: {}", out.stderr);
    assert_eq!(builds(&s), 2, "{}", out.stderr);
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// The end of the run kills a running build (its whole process group) instead of waiting for
/// it.
#[test]
fn stopping_the_host_kills_a_running_build() {
    let s = Scratch::new();
    let ns = namespace("slow");
    let m = setup(&s, "");
    let stats_path = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "30s", &stats_path);
    std::thread::sleep(Duration::from_millis(800));
    edit(&s, "// v2, slow\n");
    let pid_file = s.path().join("sleep.pid");
    let end = Instant::now() + Duration::from_secs(5);
    while !pid_file.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(pid_file.exists(), "the build did not start");
    std::thread::sleep(Duration::from_millis(50));
    let sleep_pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_owned();
    horus_e2e::interrupt(&child);
    let stopped = Instant::now();
    let out = horus_e2e::wait(child, Duration::from_secs(10));
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "the stop waited for the build"
    );
    assert!(out.stderr.contains("build of counter stopped"), "{}", out.stderr);
    // The build's own child is gone too (or only a zombie until init reaps it).
    let state = std::fs::read_to_string(format!("/proc/{sleep_pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z "),
        "the build's `sleep` lives on: {state}"
    );
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// `horus check` accepts `build =` with `watch =`, and refuses a `build =` whose sources it
/// cannot find (H0031).
#[test]
fn check_knows_the_build_keys() {
    let s = Scratch::new();
    let m = setup(&s, "");
    let out = horus_e2e::run(&["check", m.to_str().unwrap()]);
    assert_eq!(out.code(), 0, "{}", out.stderr);

    for (build, why) in [
        ("make counter", "is not a `cargo build` command"),
        ("cargo build -p counter", "`cargo metadata`"),
    ] {
        let text = std::fs::read_to_string(&m)
            .unwrap()
            .replace("build = \"sh build.sh\"", &format!("build = \"{build}\""))
            .replace("watch = [\"src/**\"]\n", "");
        let bad = s.write("bad.toml", &text);
        let out = horus_e2e::run(&["check", bad.to_str().unwrap()]);
        assert_eq!(out.code(), 2, "{}", out.stderr);
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(all.contains("bad.toml:8:9: error[H0031]"), "{all}");
        assert!(all.contains(why) && all.contains("watch = ["), "{all}");
    }
}
