//! Hot reload of a manifest's Python node (`python = "counter.py"`, `horus run --watch`), issue
//! #14 item 6: the real `horus` binary runs a counter written in Python, and the test edits the
//! file the way an editor saves it (a new file renamed over the old name) while the host runs.
//! The node publishes its count as a `u64` on a named topic the test reads itself, `reliable`,
//! so every value must arrive once, in order, across every swap.

use horus_e2e::counts::{self, drain, read_for, read_until};
use horus_e2e::{finish, node, read_stats, repo_root, shm_leftovers, start_watching, Scratch};
use std::path::{Path, PathBuf};
use std::time::Duration;

const TOPIC: &str = "reloadpy/count";

fn venv() -> String {
    let v = repo_root().join(".venv");
    assert!(
        v.join("bin/python").exists(),
        "{} is missing: run ./scripts/python-env.sh (scripts/test.sh does)",
        v.display()
    );
    v.display().to_string()
}

fn namespace(test: &str) -> String {
    format!("reloadpy-{}-{test}", std::process::id())
}

/// Saves `text` as `target` the way an editor does: a new file, renamed over the old name.
fn save(target: &Path, text: &str) {
    let tmp = target.with_extension("py.swp");
    std::fs::write(&tmp, text).expect("write the new version");
    std::fs::rename(&tmp, target).expect("rename it into place");
}

/// A counter adding `step` per tick from `start` (set in `__init__`), publishing each count;
/// `state` adds `save_state`/`restore_state` for the count; `extra` goes at the module's top.
fn counter(step: u64, start: u64, state: bool, extra: &str) -> String {
    let hooks = if state {
        "    def save_state(self):\n        return {\"count\": self.count}\n\n    \
         def restore_state(self, state):\n        self.count = state[\"count\"]\n"
    } else {
        ""
    };
    format!(
        "import struct\nimport horus\n{extra}\nSTEP = {step}\n\n\nclass Counter(horus.Node):\n    \
         def __init__(self):\n        super().__init__()\n        self.count = {start}\n\n    \
         def tick(self):\n        self.count += STEP\n        self.send(\"{TOPIC}\", struct.pack(\"<Q\", self.count))\n\n{hooks}"
    )
}

fn manifest(s: &Scratch, isolation: &str) -> PathBuf {
    s.write(
        "reload.toml",
        &format!(
            "[scheduler]\ntick_rate = 100\nmax_failures = 1000\n\n[[node]]\nname = \"counter\"\n\
             python = \"counter.py\"\nclass = \"Counter\"\nvenv = \"{}\"\nisolation = \"{isolation}\"\n",
            venv()
        ),
    )
}

/// The steps between consecutive values, in order, each run of equal steps once.
fn step_runs(values: &[u64]) -> Vec<u64> {
    let mut runs: Vec<u64> = Vec::new();
    for w in values.windows(2) {
        let step = w[1].wrapping_sub(w[0]);
        if runs.last() != Some(&step) {
            runs.push(step);
        }
    }
    runs
}

/// The stderr line that says why `file` was rolled back, if any.
fn rollback_line<'a>(stderr: &'a str, needle: &str) -> Option<&'a str> {
    stderr
        .lines()
        .find(|l| l.contains("node=counter") && l.contains("rolled back") && l.contains(needle))
}

/// Issue #14 (item 6): a Python node edited twice while the host runs keeps its count
/// (`save_state` → `restore_state`) and runs each new version, nothing lost or read twice; a
/// syntax error is refused with `file:line` and the last good code keeps ticking.
#[test]
fn a_python_node_edited_twice_keeps_its_state_and_a_syntax_error_rolls_back() {
    edited_twice("inline");
}

/// As above, for a Python node on a worker thread of its own (each generation on a new worker).
#[test]
fn a_thread_python_node_edited_twice_keeps_its_state_and_a_syntax_error_rolls_back() {
    edited_twice("thread");
}

fn edited_twice(isolation: &str) {
    let s = Scratch::new();
    let ns = namespace(&format!("edit-{isolation}"));
    let file = s.write("counter.py", &counter(1, 0, true, ""));
    let m = manifest(&s, isolation);
    let mut sub = counts::reader(&ns, TOPIC);
    let stats_path = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "8s", &stats_path);
    let mut values = Vec::new();
    let seen = |step: u64, after: usize| {
        move |v: &[u64]| {
            v.len() > after + 10
                && v.windows(2)
                    .rev()
                    .take(5)
                    .all(|w| w[1].wrapping_sub(w[0]) == step)
        }
    };
    read_until(&mut sub, &mut values, Duration::from_secs(5), seen(1, 20));
    save(&file, &counter(1000, 0, true, ""));
    let n = values.len();
    read_until(&mut sub, &mut values, Duration::from_secs(3), seen(1000, n));
    save(&file, &counter(7, 0, true, "# the second edit"));
    let n = values.len();
    read_until(&mut sub, &mut values, Duration::from_secs(3), seen(7, n));
    // Line 3 (the `extra` line) does not parse.
    save(&file, &counter(3, 0, true, "def broken(:"));
    read_for(&mut sub, &mut values, Duration::from_millis(700));
    horus_e2e::interrupt(&child);
    let out = finish(child);
    drain(&mut sub, &mut values);
    assert_eq!(
        step_runs(&values),
        vec![1, 1000, 7],
        "v1, then v2 from v1's count, then v3, and no gap or duplicate:\n{values:?}\n{}",
        out.stderr
    );
    assert!(
        values.windows(2).rev().take(20).all(|w| w[1] - w[0] == 7),
        "v3 still ticks after the syntax error"
    );
    let file_name = file.canonicalize().unwrap().display().to_string();
    let line = rollback_line(&out.stderr, "SyntaxError")
        .unwrap_or_else(|| panic!("no rollback line:\n{}", out.stderr));
    assert!(line.contains(&format!("{file_name}:3: SyntaxError")), "{line}");
    assert_eq!(
        out.stderr
            .matches("hot reload: running the new code from")
            .count(),
        2,
        "{}",
        out.stderr
    );
    let stats = read_stats(&stats_path);
    let counter = node(&stats, "counter");
    assert_eq!(
        (counter["generation"].as_u64(), counter["reloads"].as_u64()),
        (Some(3), Some(2)),
        "{counter}"
    );
    assert_eq!(counter["reload_failures"], 1, "{counter}");
    assert!(
        counter["last_reload_error"]
            .as_str()
            .unwrap()
            .contains(&format!("{file_name}:3: SyntaxError")),
        "{counter}"
    );
    assert_eq!(counter["total_failures"], 0, "{counter}");
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #14 (item 6): without `save_state`/`restore_state` the new code starts from its own
/// `__init__` (an edited start value takes effect) and the log says no state was carried; an
/// error while importing the new file, and an exception in the new code's first tick, each
/// keep the running code, named with the file (and `file:line` for the import).
#[test]
fn a_python_node_without_state_starts_fresh_and_import_or_first_tick_errors_roll_back() {
    let s = Scratch::new();
    let ns = namespace("fresh");
    let file = s.write("counter.py", &counter(1, 0, false, ""));
    let m = manifest(&s, "inline");
    let mut sub = counts::reader(&ns, TOPIC);
    let stats_path = s.path().join("stats.json");
    let child = start_watching(&m, &ns, "8s", &stats_path);
    let mut values = Vec::new();
    read_until(&mut sub, &mut values, Duration::from_secs(5), |v| v.len() > 20);
    save(&file, &counter(1, 5000, false, ""));
    read_until(&mut sub, &mut values, Duration::from_secs(3), |v| {
        v.last().is_some_and(|&x| x > 5010)
    });
    // An import error: line 3 names what does not exist.
    save(&file, &counter(1, 0, false, "calibrate()"));
    read_for(&mut sub, &mut values, Duration::from_millis(500));
    // The first tick raises.
    let failing = counter(1, 0, false, "").replace(
        "        self.count += STEP\n",
        "        raise RuntimeError('the new tick is broken')\n",
    );
    save(&file, &failing);
    read_for(&mut sub, &mut values, Duration::from_millis(500));
    horus_e2e::interrupt(&child);
    let out = finish(child);
    drain(&mut sub, &mut values);
    let jump = values
        .windows(2)
        .position(|w| w[1] != w[0] + 1)
        .expect("the new code's values arrived");
    assert_eq!(
        values[jump + 1],
        5001,
        "v2 started from its own __init__: {values:?}"
    );
    assert!(
        values[jump + 1..].windows(2).all(|w| w[1] == w[0] + 1),
        "v2 ran throughout after its swap, nothing lost: {values:?}"
    );
    assert!(
        values.len() > jump + 60,
        "v2 ticked on after both rollbacks: {values:?}"
    );
    assert!(out.stderr.contains("no state was carried"), "{}", out.stderr);
    let file_name = file.canonicalize().unwrap().display().to_string();
    let import = rollback_line(&out.stderr, "NameError")
        .unwrap_or_else(|| panic!("no import rollback:\n{}", out.stderr));
    assert!(import.contains(&format!("{file_name}:3: NameError")), "{import}");
    assert!(
        rollback_line(&out.stderr, "first tick failed").is_some(),
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
        (Some(2), Some(2)),
        "{counter}"
    );
    assert!(
        counter["last_reload_error"]
            .as_str()
            .unwrap()
            .contains("the new tick is broken"),
        "{counter}"
    );
    drop(sub);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}
