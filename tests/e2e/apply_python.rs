//! Live apply (issue 16) of Python nodes and of what hot reload watches: the real `horus` binary
//! runs a Rust counter; the test adds Python nodes (`python = "x.py"`, inline and on a worker
//! thread) to a host that had none, removes one (its `shutdown` runs), checks that a broken
//! Python node or one of another environment changes nothing, that a node added live is
//! hot-reloaded like the nodes of the start, and that a `[plugins] path` which resolves the same
//! files changes no node.

use horus_e2e::counts::{self, read_for, read_until};
use horus_e2e::{
    apply_in, finish, node, plugin, read_stats, repo_root, rewrite, shm_leftovers, start_in, start_watching,
    Scratch,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

const TOPIC: &str = "applypy/count";

fn namespace(test: &str) -> String {
    format!("applypy-{}-{test}", std::process::id())
}

fn venv() -> PathBuf {
    let v = repo_root().join(".venv");
    assert!(
        v.join("bin/python").exists(),
        "{} is missing: run ./scripts/python-env.sh (scripts/test.sh does)",
        v.display()
    );
    v
}

/// `other`, a Rust counter at 100 Hz (a copy of reload-counter in the scratch folder); `extra`
/// goes at the end.
fn base(lib: &Path, extra: &str) -> String {
    format!(
        "[scheduler]\ntick_rate = 100\nmax_failures = 1000\n\n[[node]]\nname = \"other\"\nplugin = \"{}\"\n\n{extra}",
        lib.display()
    )
}

/// A Python node of `file` (class `N`) in environment `venv`.
fn py_decl(name: &str, file: &Path, isolation: &str, venv: &Path) -> String {
    format!(
        "[[node]]\nname = \"{name}\"\npython = \"{}\"\nclass = \"N\"\nvenv = \"{}\"\nisolation = \"{isolation}\"\n\n",
        file.display(),
        venv.display()
    )
}

/// A Python counter publishing 1, 2, 3… on the test's topic.
const COUNTER: &str = "import struct\nimport horus\n\n\nclass N(horus.Node):\n    def __init__(self):\n        \
                       super().__init__()\n        self.count = 0\n\n    def tick(self):\n        \
                       self.count += 1\n        self.send(\"applypy/count\", struct.pack(\"<Q\", self.count))\n";

/// A Python node that counts its ticks and writes the count to `marker` in `shutdown`.
fn marking(marker: &Path) -> String {
    format!(
        "import horus\n\n\nclass N(horus.Node):\n    def init(self):\n        self.ticks = 0\n\n    \
         def tick(self):\n        self.ticks += 1\n\n    def shutdown(self):\n        \
         with open(\"{}\", \"w\") as f:\n            f.write(str(self.ticks))\n",
        marker.display()
    )
}

fn setup(s: &Scratch) -> PathBuf {
    let lib = s.path().join("libother.so");
    std::fs::copy(plugin("reload-counter"), &lib).unwrap();
    lib
}

fn assert_other_untouched(stats: &[serde_json::Value]) {
    let other = node(stats, "other");
    assert_eq!(other["generation"], 1, "{other}");
    assert_eq!(other["restarts"], 0, "{other}");
    assert!(other["total_ticks"].as_u64().unwrap() > 200, "{other}");
}

/// Issue #16: Python nodes added under `--watch` to a host that ran none (the loader and the
/// interpreter come with the first) tick — the inline one publishes 1, 2, 3… without a gap —
/// and the `thread` one, removed by the next save, is shut down (its `shutdown` writes its tick
/// count); the Rust node kept ticking untouched.
#[test]
fn python_nodes_are_added_and_removed_under_watch() {
    let s = Scratch::new();
    let ns = namespace("watch");
    let lib = setup(&s);
    let counter = s.write("counter.py", COUNTER);
    let marker = s.path().join("shutdown.txt");
    let worker = s.write("worker.py", &marking(&marker));
    let venv = venv();
    let m = s.write("robot.toml", &base(&lib, ""));
    let mut sub = counts::reader(&ns, TOPIC);
    let stats = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "4s", &stats);
    std::thread::sleep(Duration::from_millis(800));
    let both = py_decl("py", &counter, "inline", &venv) + &py_decl("pyworker", &worker, "thread", &venv);
    rewrite(&m, &base(&lib, &both));
    let mut values = Vec::new();
    assert!(
        read_until(&mut sub, &mut values, Duration::from_secs(2), |v| v.len() > 50),
        "the added Python node publishes: {values:?}"
    );
    rewrite(&m, &base(&lib, &py_decl("py", &counter, "inline", &venv)));
    read_for(&mut sub, &mut values, Duration::from_millis(800));
    let out = finish(child);
    read_for(&mut sub, &mut values, Duration::ZERO);
    assert!(
        out.stderr.contains("apply: +2 nodes, -0, ~0 changed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("apply: +0 nodes, -1, ~0 changed"),
        "{}",
        out.stderr
    );
    assert_eq!(values[0], 1, "{values:?}");
    for w in values.windows(2) {
        assert_eq!(w[1], w[0] + 1, "a gap or a repeat: {values:?}");
    }
    let ticks: u64 = std::fs::read_to_string(&marker)
        .expect("the removed node's shutdown ran")
        .parse()
        .unwrap();
    assert!(ticks > 20, "it ticked before it was removed: {ticks}");
    let stats = read_stats(&stats);
    let names: Vec<&str> = stats.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["other", "py"], "{}", out.stderr);
    let py = node(&stats, "py");
    assert_eq!(py["isolation"], "inline", "{py}");
    assert_eq!(py["total_failures"], 0, "{py}");
    assert_other_untouched(&stats);
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: with `horus apply`, a Python node whose file does not parse, or whose
/// `__init__` raises (inline, or on its worker thread), fails the apply — with the good Python
/// node added alongside — naming the node and its file; nothing changes.
#[test]
fn a_broken_python_node_fails_the_apply_and_changes_nothing() {
    let s = Scratch::new();
    let ns = namespace("broken");
    let lib = setup(&s);
    let venv = venv();
    let counter = s.write("counter.py", COUNTER);
    let m = s.write("robot.toml", &base(&lib, ""));
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "4s", &stats);
    std::thread::sleep(Duration::from_millis(500));
    let mm = m.to_str().unwrap();
    let good = py_decl("py", &counter, "inline", &venv);

    let syntax = s.write("syntax.py", "import horus\n\nclass N(horus.Node)\n    pass\n");
    rewrite(
        &m,
        &base(&lib, &(good.clone() + &py_decl("bad", &syntax, "inline", &venv))),
    );
    let out = apply_in(&ns, &[mm]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr.contains("node `bad`")
            && out.stderr.contains("syntax.py")
            && out.stderr.contains("SyntaxError"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing changed"), "{}", out.stderr);

    let raising = s.write(
        "raising.py",
        "import horus\n\n\nclass N(horus.Node):\n    def __init__(self):\n        super().__init__()\n        \
         raise RuntimeError(\"no sensor attached\")\n",
    );
    for isolation in ["inline", "thread"] {
        rewrite(
            &m,
            &base(
                &lib,
                &(good.clone() + &py_decl("bad", &raising, isolation, &venv)),
            ),
        );
        let out = apply_in(&ns, &[mm]);
        assert_eq!(out.code(), 1, "{isolation}: {out:?}");
        assert!(
            out.stderr.contains("apply failed, nothing changed")
                && out.stderr.contains("node `bad` failed to start (create)")
                && out.stderr.contains("RuntimeError: no sensor attached")
                && out.stderr.contains("raising.py"),
            "{isolation}: {}",
            out.stderr
        );
    }
    rewrite(&m, &base(&lib, ""));
    let same = apply_in(&ns, &[mm]);
    assert!(same.stdout.contains("apply: no changes"), "{same:?}");
    let out = finish(child);
    let stats = read_stats(&stats);
    let names: Vec<&str> = stats.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["other"], "{}", out.stderr);
    assert_other_untouched(&stats);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// A second environment with the same horus package: its own `pyvenv.cfg` and `bin/python`
/// (so its own `sys.executable`), the repository's `.venv` libraries.
fn second_venv(s: &Scratch) -> PathBuf {
    let venv = venv();
    let other = s.path().join("venv2");
    std::fs::create_dir_all(other.join("bin")).unwrap();
    std::fs::copy(venv.join("pyvenv.cfg"), other.join("pyvenv.cfg")).unwrap();
    let python = std::fs::read_link(venv.join("bin/python")).unwrap_or_else(|_| venv.join("bin/python"));
    let python = if python.is_absolute() {
        python
    } else {
        venv.join("bin").join(python)
    };
    std::os::unix::fs::symlink(python, other.join("bin/python")).unwrap();
    std::os::unix::fs::symlink(venv.join("lib"), other.join("lib")).unwrap();
    other
}

/// Issue #16: a host runs one Python interpreter; a Python node added from another
/// environment is refused before anything changes, and the message says why.
#[test]
fn a_python_node_of_another_environment_is_refused() {
    let s = Scratch::new();
    let ns = namespace("venv");
    let lib = setup(&s);
    let venv = venv();
    let counter = s.write("counter.py", COUNTER);
    let running = py_decl("py", &counter, "inline", &venv);
    let m = s.write("robot.toml", &base(&lib, &running));
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "3s", &stats);
    std::thread::sleep(Duration::from_millis(800));
    let mm = m.to_str().unwrap();
    let other = second_venv(&s);
    rewrite(
        &m,
        &base(
            &lib,
            &(running.clone() + &py_decl("py2", &counter, "thread", &other)),
        ),
    );
    let out = apply_in(&ns, &[mm]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr
            .contains("apply refused: node `py2` would run in the Python environment of")
            && out.stderr.contains("venv2")
            && out.stderr.contains("one Python interpreter per process"),
        "{}",
        out.stderr
    );
    let out = finish(child);
    let stats = read_stats(&stats);
    let names: Vec<&str> = stats.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["other", "py"], "{}", out.stderr);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Puts `source` at `target` as cargo does: written beside it, then renamed over it.
fn replace(source: &Path, target: &Path) {
    let tmp = target.with_extension("so.tmp");
    std::fs::copy(source, &tmp).expect("copy the new build");
    std::fs::rename(&tmp, target).expect("rename it into place");
}

/// Issue #16: a node added by an apply under `--watch` has its plugin file watched like the
/// nodes of the start: a new build of it is swapped in with the count handed over
/// (generation 2, steps of 1000 after the swap), the node that was there untouched.
#[test]
fn a_node_added_live_is_hot_reloaded() {
    let s = Scratch::new();
    let ns = namespace("reload");
    let lib = setup(&s);
    let added = s.path().join("libadded.so");
    std::fs::copy(plugin("reload-counter"), &added).unwrap();
    let m = s.write("robot.toml", &base(&lib, ""));
    let mut sub = counts::reader(&ns, TOPIC);
    let stats = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "4s", &stats);
    std::thread::sleep(Duration::from_millis(800));
    let decl = format!(
        "[[node]]\nname = \"added\"\nplugin = \"{}\"\n\n[[connect]]\nfrom = \"added.count\"\ntopic = \"{TOPIC}\"\nqos = \"reliable(1024)\"\n",
        added.display()
    );
    rewrite(&m, &base(&lib, &decl));
    let mut values = Vec::new();
    assert!(
        read_until(&mut sub, &mut values, Duration::from_secs(2), |v| v.len() > 30),
        "the added node publishes: {values:?}"
    );
    replace(&plugin("reload-counter-v2"), &added);
    let swapped = read_until(&mut sub, &mut values, Duration::from_secs(3), |v| {
        v.windows(2).rev().take(5).all(|w| w[1] - w[0] == 1000)
    });
    let out = finish(child);
    read_for(&mut sub, &mut values, Duration::ZERO);
    assert!(swapped, "the new build runs: {values:?}\n{}", out.stderr);
    assert!(
        out.stderr
            .contains("hot reload: watching the files of the nodes the apply left running"),
        "{}",
        out.stderr
    );
    // Steps of 1 then of 1000, the count handed over at the swap.
    let steps: Vec<u64> = values.windows(2).map(|w| w[1] - w[0]).collect();
    let first_big = steps.iter().position(|&d| d != 1).expect("a swap");
    assert!(steps[first_big..].iter().all(|&d| d == 1000), "{values:?}");
    let stats = read_stats(&stats);
    let added = node(&stats, "added");
    assert_eq!(added["generation"], 2, "{added}");
    assert_other_untouched(&stats);
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: a `[plugins] path` changed so that every node's plugin resolves to the same
/// file applies as no node change: nothing is swapped.
#[test]
fn a_plugin_path_that_resolves_the_same_files_applies_as_no_node_change() {
    let s = Scratch::new();
    let ns = namespace("path");
    std::fs::create_dir_all(s.path().join("a")).unwrap();
    std::fs::create_dir_all(s.path().join("b")).unwrap();
    std::fs::copy(plugin("reload-counter"), s.path().join("a/libreload_counter.so")).unwrap();
    let text = |path: &str| {
        format!(
            "[plugins]\npath = [{path}]\n\n[scheduler]\ntick_rate = 100\n\n[[node]]\nname = \"other\"\nplugin = \"reload-counter\"\n"
        )
    };
    let m = s.write("robot.toml", &text("\"a\""));
    let stats = s.path().join("stats.json");
    let child = start_in(&ns, &m, "2500ms", &stats);
    std::thread::sleep(Duration::from_millis(500));
    rewrite(&m, &text("\"b\", \"a\""));
    let out = apply_in(&ns, &[m.to_str().unwrap()]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        out.stdout
            .contains("apply: +0 nodes, -0, ~0 changed, [plugins] path"),
        "{out:?}"
    );
    let out = finish(child);
    let stats = read_stats(&stats);
    let other = node(&stats, "other");
    assert_eq!(other["generation"], 1, "{other}\n{}", out.stderr);
    assert_eq!(other["restarts"], 0, "{other}");
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: a Python node removed, its file edited, and the node added again runs the file as
/// it is now, not the module the host imported the first time (no hot reload runs here: the
/// host was started without `--watch`).
#[test]
fn a_python_node_added_again_runs_its_edited_file() {
    let s = Scratch::new();
    let ns = namespace("readd");
    let lib = setup(&s);
    let file = s.path().join("n.py");
    let marker = s.path().join("marker");
    let version = |v: &str| {
        format!(
            "import horus\n\n\nclass N(horus.Node):\n    def tick(self):\n        \
             with open(\"{}\", \"w\") as f:\n            f.write(\"{v}\")\n",
            marker.display()
        )
    };
    std::fs::write(&file, version("first")).unwrap();
    let with = base(&lib, &py_decl("py", &file, "inline", &venv()));
    let m = s.write("robot.toml", &with);
    let stats = s.path().join("stats.json");
    // Long enough for two applies on a loaded machine (each checks the manifest as `horus
    // check` does); stopped by the test once it has seen what it waits for.
    let started = std::time::Instant::now();
    let child = start_in(&ns, &m, "60s", &stats);
    let mm = m.to_str().unwrap().to_owned();
    // The node rewrites the marker every tick (truncate, then write): the answer is the read
    // that matched, not a read after it, which may fall between the two (seen under CI load:
    // "" after "first" had been read).
    let wait_for = |want: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let got = std::fs::read_to_string(&marker).unwrap_or_default();
            if got == want || std::time::Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    assert_eq!(wait_for("first"), "first");
    rewrite(&m, &base(&lib, ""));
    let removed = apply_in(&ns, &[&mm]);
    assert_eq!(removed.code(), 0, "{removed:?}");
    std::fs::write(&file, version("second")).unwrap();
    rewrite(&m, &with);
    let added = apply_in(&ns, &[&mm]);
    assert_eq!(added.code(), 0, "{added:?}");
    assert_eq!(wait_for("second"), "second", "the edited file runs");
    // The other node's > 200 ticks: at least 3 s of run.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()));
    horus_e2e::interrupt(&child);
    finish(child);
    assert_other_untouched(&read_stats(&stats));
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}
