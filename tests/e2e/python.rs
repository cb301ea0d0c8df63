//! Python nodes in the Rust host (`python = "nodes/x.py"`): the loader plugin embeds the
//! interpreter of the repository's `.venv` (made by scripts/python-env.sh, which
//! scripts/test.sh runs first), Rust and Python nodes share topics, numpy imports, and a
//! Python exception or syntax error is a node failure or a load error, never a host crash.

use horus_e2e::{horus, node, repo_root, run, run_with_stats_in, shm_leftovers, spawn, wait, Scratch};
use std::time::Duration;

fn venv() -> String {
    let v = repo_root().join(".venv");
    assert!(
        v.join("bin/python").exists(),
        "{} is missing: run ./scripts/python-env.sh (scripts/test.sh does)",
        v.display()
    );
    v.display().to_string()
}

#[test]
fn rust_and_python_nodes_share_topics_in_one_host() {
    let s = Scratch::new();
    let ns = format!("e2epy{}", std::process::id());
    let demo = repo_root().join("manifests/python-demo.toml");
    let (out, stats) = run_with_stats_in(Some(&ns), &s, &demo, "2s");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("numpy"),
        "numpy imported in the node: {}",
        out.stdout
    );
    let smoother = node(&stats, "smoother");
    assert_eq!(smoother["node_type"], "PythonNode");
    assert_eq!(smoother["total_failures"], 0, "{smoother}");
    assert!(smoother["total_ticks"].as_u64().unwrap() >= 100, "{smoother}");
    // Every estimate the Rust filter published went through Python to the Rust sink.
    let filter_sent = node(&stats, "filter")["messages_sent"].as_u64().unwrap();
    let sink_got = node(&stats, "telemetry")["messages_received"].as_u64().unwrap();
    assert!(filter_sent >= 100, "filter sent {filter_sent}");
    assert!(
        sink_got + 2 >= filter_sent,
        "telemetry got {sink_got} of {filter_sent} (a cycle in flight at the stop may be missing)"
    );
    assert!(
        out.stdout.contains("forwarded "),
        "the node's shutdown hook ran: {}",
        out.stdout
    );
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

fn manifest(s: &Scratch, node_file: &str, extra: &str) -> std::path::PathBuf {
    s.write("node.py", node_file);
    s.write(
        "py.toml",
        &format!(
            "[scheduler]\ntick_rate = 100\nmax_failures = 1000\n\n[[node]]\nname = \"py\"\npython = \"node.py\"\n\
             class = \"N\"\nvenv = \"{}\"\n{extra}",
            venv()
        ),
    )
}

#[test]
fn an_exception_in_tick_is_a_failure_with_its_traceback() {
    let s = Scratch::new();
    let m = manifest(
        &s,
        "import horus\n\nclass N(horus.Node):\n    def tick(self):\n        raise KeyError('calibration')\n",
        "",
    );
    let (out, stats) = run_with_stats_in(None, &s, &m, "500ms");
    assert_eq!(out.code(), 0, "the host keeps running: {}", out.stderr);
    let py = node(&stats, "py");
    assert!(py["total_failures"].as_u64().unwrap() >= 10, "{py}");
    assert_eq!(py["total_failures"], py["total_ticks"]);
    assert!(
        out.stderr.contains("Traceback") && out.stderr.contains("node.py\", line 5, in tick"),
        "{}",
        out.stderr
    );
    assert!(
        py["last_error"]
            .as_str()
            .unwrap()
            .contains("KeyError: 'calibration'"),
        "{py}"
    );
}

#[test]
fn a_syntax_error_is_a_load_error_with_file_and_line() {
    let s = Scratch::new();
    let m = manifest(&s, "import horus\n\nclass N(horus.Node:\n    pass\n", "");
    let out = wait(
        spawn(horus(&["run", m.to_str().unwrap(), "--duration", "1s"])),
        Duration::from_secs(60),
    );
    // Issue 15: the file is imported in a child process before anything starts, so the
    // syntax error is bad input (exit 2) at the file's line, as `horus check` reports it.
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("node.py:3:")
            && out.stderr.contains("error[H0043]: node `py`: cannot import")
            && out.stderr.contains("SyntaxError"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("scheduler running"), "{}", out.stderr);
}

#[test]
fn python_node_mistakes_are_manifest_errors() {
    let s = Scratch::new();
    s.write("node.py", "import horus\n");
    let cases = [
        ("python = \"node.py\"\n", "H0005", "missing required key `class`"),
        (
            "python = \"nope.py\"\nclass = \"N\"\n",
            "H0010",
            "Python node file not found",
        ),
        (
            "python = \"node.py\"\nclass = \"N\"\nvenv = \"no-such-venv\"\n",
            "H0025",
            "not a virtual environment",
        ),
        (
            "plugin = \"x.so\"\npython = \"node.py\"\nclass = \"N\"\n",
            "H0006",
            "either `plugin` or `python`",
        ),
        (
            "python = \"node.py\"\nclass = \"N\"\nisolation = \"process\"\n",
            "H0006",
            "cannot run in `process`",
        ),
    ];
    for (body, code, text) in cases {
        let m = s.write("bad.toml", &format!("[[node]]\nname = \"py\"\n{body}"));
        let out = run(&["check", m.to_str().unwrap()]);
        assert_eq!(out.code(), 2, "{body}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("error[{code}]")) && out.stderr.contains(text),
            "{body}: {}",
            out.stderr
        );
    }
    // A class that is not a horus.Node: found by `check` and `run` alike (issue 15).
    let m = manifest(&s, "class N:\n    def tick(self):\n        pass\n", "");
    for cmd in [
        &["check", m.to_str().unwrap()][..],
        &["run", m.to_str().unwrap(), "--duration", "1s"],
    ] {
        let out = wait(spawn(horus(cmd)), Duration::from_secs(60));
        assert_eq!(out.code(), 2, "{cmd:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("error[H0044]") && out.stderr.contains("is not a horus.Node subclass"),
            "{}",
            out.stderr
        );
    }
}

/// Issue #12: the host hands a Python node its file and class through the loader's own entry,
/// not through keys of `config`: the node's config table arrives exactly as written, keys the
/// runtime once reserved included, as `self.config` before `init()`.
#[test]
fn a_python_node_reads_its_config_as_written() {
    let s = Scratch::new();
    let report = s.path().join("config.json");
    let m = manifest(
        &s,
        "import json, horus\n\nclass N(horus.Node):\n    def init(self):\n        self.seen = dict(self.config)\n\
         \n    def tick(self):\n        assert self.config == self.seen\n\n    def shutdown(self):\n\
         \x20       with open(self.config['report'], 'w') as f:\n            json.dump(self.seen, f)\n",
        &format!(
            "[node.config]\nreport = \"{}\"\ngain = 2.5\npython = \"not/this.py\"\nclass = \"NotThis\"\n\
             program = \"nope\"\nobject = 3\nlimits = {{ max = [1, 2] }}\n",
            report.display()
        ),
    );
    let (out, stats) = run_with_stats_in(None, &s, &m, "300ms");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let py = node(&stats, "py");
    assert_eq!(py["total_failures"], 0, "{py}");
    assert!(py["total_ticks"].as_u64().unwrap() > 5, "{py}");
    let seen: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        seen,
        serde_json::json!({
            "report": report.display().to_string(),
            "gain": 2.5,
            "python": "not/this.py",
            "class": "NotThis",
            "program": "nope",
            "object": 3,
            "limits": {"max": [1, 2]},
        })
    );
}

/// Issue #13: a Python node on a worker thread whose restart is slow (its `init` sleeps 2 s
/// on a restart) or never ends does not slow the others: a Rust node and a Python node (inline)
/// keep ≥ 90 % of their 100 Hz; a replacement that never comes up is abandoned.
#[test]
fn a_python_node_whose_restart_hangs_does_not_slow_the_others() {
    for sleep_s in [2, -1] {
        let s = Scratch::new();
        let marker = s.path().join("started-once");
        s.write(
            "stuck.py",
            "import os, time, horus\n\nclass Stuck(horus.Node):\n    def init(self):\n\
             \x20       marker = self.config['marker']\n        if not os.path.exists(marker):\n\
             \x20           open(marker, 'w').close()\n            return\n\
             \x20       while self.config['sleep_s'] < 0:\n            time.sleep(3600)\n\
             \x20       time.sleep(self.config['sleep_s'])\n\n    def tick(self):\n\
             \x20       raise RuntimeError('always failing')\n",
        );
        s.write(
            "fine.py",
            "import horus\n\nclass Fine(horus.Node):\n    def tick(self):\n        pass\n",
        );
        let m = s.write(
            "py.toml",
            &format!(
                "[scheduler]\ntick_rate = 100\nmax_failures = 3\nrestart_backoff_ms = 1000\n\n\
                 [[node]]\nname = \"healthy\"\nplugin = \"{{plugin:bench-noop}}\"\n\n\
                 [[node]]\nname = \"pyhealthy\"\npython = \"fine.py\"\nclass = \"Fine\"\nvenv = \"{venv}\"\n\n\
                 [[node]]\nname = \"stuck\"\npython = \"stuck.py\"\nclass = \"Stuck\"\nvenv = \"{venv}\"\n\
                 isolation = \"thread\"\nwatchdog_ms = 300\n\
                 config = {{ marker = \"{}\", sleep_s = {sleep_s} }}\n",
                marker.display(),
                venv = venv()
            ),
        );
        let (out, stats) = run_with_stats_in(None, &s, &m, "4s");
        assert_eq!(out.code(), 0, "sleep_s = {sleep_s}: {}", out.stderr);
        for name in ["healthy", "pyhealthy"] {
            let ticks = node(&stats, name)["total_ticks"].as_u64().unwrap() as f64;
            eprintln!("sleep_s = {sleep_s}: {name} {:.1} Hz", ticks / 4.0);
            assert!(
                ticks >= 0.9 * 100.0 * 4.0,
                "sleep_s = {sleep_s}: {name} ticked {ticks} times in 4 s ({:.1} Hz of 100)",
                ticks / 4.0
            );
        }
        let stuck = node(&stats, "stuck");
        assert!(stuck["restarts"].as_u64().unwrap() >= 1, "{stuck}");
        if sleep_s < 0 {
            assert!(
                stuck["last_error"]
                    .as_str()
                    .unwrap()
                    .contains("restart did not finish"),
                "{stuck}"
            );
        }
    }
}

/// A Python node that holds a `horus.Hub` of its own: at the host's exit its object is freed
/// under the GIL, so the hub closes and its segment goes. (The object's last reference was
/// dropped without the GIL, a decref pyo3 defers to the next acquisition, which never came:
/// the segment stayed behind.)
#[test]
fn a_python_nodes_own_hub_leaves_nothing_behind() {
    let s = Scratch::new();
    let ns = format!("e2epyhub{}", std::process::id());
    let m = manifest(
        &s,
        "import horus\n\nclass N(horus.Node):\n    def init(self):\n        self.hub = horus.Hub('own/hub')\n\n    def tick(self):\n        self.hub.send(1)\n",
        "",
    );
    let (out, stats) = run_with_stats_in(Some(&ns), &s, &m, "500ms");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert_eq!(node(&stats, "py")["total_failures"], 0);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #15, item 8: a Python node's topics (`self.send(topic, …)`, `self.get(topic)`) are
/// counted in the host's stats like a Rust node's ports — `messages_sent`, `messages_received`,
/// `topics` in `--stats-json` and the table's sent/recv columns — inline and on a worker thread.
#[test]
fn issue_15_python_nodes_sent_and_received_are_in_the_stats() {
    for isolation in ["inline", "thread"] {
        let s = Scratch::new();
        let ns = format!("e2epystats{}{isolation}", std::process::id());
        let m = manifest(
            &s,
            "import horus\n\nclass N(horus.Node):\n    def tick(self):\n\
             \x20       self.send('counted/loop', {'n': 1})\n        self.get('counted/loop')\n",
            &format!("isolation = \"{isolation}\"\n"),
        );
        let (out, stats) = run_with_stats_in(Some(&ns), &s, &m, "500ms");
        assert_eq!(out.code(), 0, "{isolation}: {}", out.stderr);
        let py = node(&stats, "py");
        let ticks = py["total_ticks"].as_u64().unwrap();
        let (sent, received) = (
            py["messages_sent"].as_u64().unwrap(),
            py["messages_received"].as_u64().unwrap(),
        );
        assert!(ticks >= 10, "{isolation}: {py}");
        assert_eq!(sent, ticks, "{isolation}: one send per tick: {py}");
        // The subscriber attaches at the first get, after the first send.
        assert!(received > 0 && received <= sent, "{isolation}: {py}");
        let topics = py["topics"].as_array().unwrap();
        let entry = |direction: &str| {
            topics
                .iter()
                .find(|t| t["direction"] == direction)
                .unwrap_or_else(|| panic!("{isolation}: no {direction} in {py}"))
        };
        let (output, input) = (entry("output"), entry("input"));
        assert_eq!(output["port"], "counted/loop");
        assert_eq!(output["topic"], "counted/loop");
        assert_eq!(output["messages"].as_u64().unwrap(), sent);
        assert!(output["bytes"].as_u64().unwrap() > 0, "{output}");
        assert_eq!(input["messages"].as_u64().unwrap(), received);
        // The table shows the same counts as Rust nodes' (columns `sent` and `recv`).
        let row: Vec<&str> = out
            .stdout
            .lines()
            .find(|l| l.starts_with("py "))
            .unwrap_or_else(|| panic!("no row for py:\n{}", out.stdout))
            .split_whitespace()
            .collect();
        // The last three columns: sent, recv, dropped.
        let header = out.stdout.lines().next().unwrap();
        assert!(header.trim_end().ends_with("sent      recv  dropped"), "{header}");
        assert_eq!(row[row.len() - 3], sent.to_string(), "{}", out.stdout);
        assert_eq!(row[row.len() - 2], received.to_string(), "{}", out.stdout);
        assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
    }
}
