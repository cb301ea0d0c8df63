//! Config schemas (issue 15, item 5): node types declare the keys of their `config`, and the real
//! `horus check` and `horus run` refuse a manifest whose `config` has an unknown key, a value of
//! the wrong type or lacks a required key — each at the key's own line and column — while the
//! SDK's getters fill declared defaults. Plugins: `config-probe` (a key of every kind, logs its
//! config), `imu-sim` (a demo plugin), `faulty-abi-old` (a plugin built against ABI v1).

use horus_e2e::{run, Scratch};

/// `horus check` and `horus run` of `manifest` both exit 2 with the same first line; returns
/// check's stderr.
fn refuse(s: &Scratch, manifest: &str) -> String {
    let path = s.write("robot.toml", manifest);
    let path = path.to_str().unwrap();
    let out = run(&["check", path]);
    assert_eq!(out.code(), 2, "check should refuse:\n{}", out.stderr);
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", out.stdout);
    let ran = run(&["run", path, "--duration", "5s"]);
    assert_eq!(ran.code(), 2, "run should refuse too:\n{}", ran.stderr);
    let first = out.stderr.lines().next().unwrap();
    assert!(ran.stderr.contains(first), "run and check agree:\n{}", ran.stderr);
    assert!(
        !ran.stderr.contains("scheduler running"),
        "run refused before starting anything:\n{}",
        ran.stderr
    );
    out.stderr
}

fn has(stderr: &str, needles: &[&str]) {
    for n in needles {
        assert!(stderr.contains(n), "expected {n:?} in:\n{stderr}");
    }
}

const PROBE: &str = "[[node]]\nname = \"probe\"\nplugin = \"{plugin:config-probe}\"\n";

#[test]
fn a_misspelt_key_is_an_error_at_the_key_with_did_you_mean() {
    let s = Scratch::new();
    let err = refuse(
        &s,
        "[[node]]\nname = \"imu\"\nplugin = \"{plugin:imu-sim}\"\nconfig = { amplitude_deg = 12.0, perod_s = 3.0 }\n",
    );
    has(
        &err,
        &[
            "robot.toml:4:34: error[H0040]: node `imu`: unknown config key `perod_s` for node type `ImuSim`",
            "hint: did you mean `period_s`? `ImuSim` takes: amplitude_deg, period_s, gyro_noise, accel_noise, seed",
            "see: docs/errors/H0040.md",
        ],
    );
}

#[test]
fn wrong_types_are_errors_at_their_keys_and_an_integer_is_a_fine_float() {
    let s = Scratch::new();
    let err = refuse(
        &s,
        &format!(
            "{PROBE}[node.config]\nframe = \"odom\"\ngain = 2\ncount = 2.5\nverbose = \"yes\"\nlimits = 3\npid = {{ kp = 1.0 }}\n"
        ),
    );
    has(
        &err,
        &[
            "robot.toml:7:1: error[H0041]: node `probe`: config `count` must be an integer (node type `ConfigProbe`), not the float 2.5",
            "hint: write e.g. `count = 3` (a whole number, no decimal point) — how many samples to average",
            "robot.toml:8:1: error[H0041]: node `probe`: config `verbose` must be `true` or `false`",
            "robot.toml:9:1: error[H0041]: node `probe`: config `limits` must be an array",
            "3 errors",
        ],
    );
    assert!(!err.contains("`gain`"), "an integer is a fine float:\n{err}");
    assert!(!err.contains("`pid`"), "a table is a table:\n{err}");
}

#[test]
fn a_missing_required_key_is_an_error_at_the_config_or_the_node() {
    let s = Scratch::new();
    let err = refuse(&s, &format!("{PROBE}config = {{ gain = 1.0 }}\n"));
    has(
        &err,
        &[
            "robot.toml:4:10: error[H0042]: node `probe`: missing required config key `frame` of node type `ConfigProbe`",
            "hint: add `frame = \"...\"` to the node's `config` (the frame the node reports in)",
        ],
    );
    let err = refuse(&s, PROBE);
    has(
        &err,
        &["robot.toml:1:1: error[H0042]: node `probe`: missing required config key `frame`"],
    );
}

#[test]
fn every_problem_of_every_node_is_reported_at_once() {
    let s = Scratch::new();
    let err = refuse(
        &s,
        &format!(
            "{PROBE}config = {{ gian = 2.0 }}\n\n[[node]]\nname = \"imu\"\nplugin = \"{{plugin:imu-sim}}\"\nconfig = {{ seed = \"x\" }}\n"
        ),
    );
    has(
        &err,
        &[
            "robot.toml:4:12: error[H0040]: node `probe`: unknown config key `gian`",
            "did you mean `gain`?",
            "robot.toml:4:10: error[H0042]: node `probe`: missing required config key `frame`",
            "robot.toml:9:12: error[H0041]: node `imu`: config `seed` must be an integer",
            "3 errors",
        ],
    );
}

#[test]
fn the_getters_fill_declared_defaults_and_keep_the_manifest_values() {
    let s = Scratch::new();
    let path = s.write(
        "robot.toml",
        &format!("{PROBE}config = {{ frame = \"odom\", gain = 2, pid = {{ kp = 0.5 }} }}\n"),
    );
    let path = path.to_str().unwrap();
    let check = run(&["check", path]);
    assert_eq!(check.code(), 0, "{}", check.stderr);
    let out = run(&["run", path, "--duration", "300ms"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    has(
        &out.stderr,
        &[
            "config: frame=Some(\"odom\") gain=Some(2.0) count=Some(3) verbose=Some(false) mode=Some(\"fast\") \
             trim=None pid.kp=Some(0.5)",
        ],
    );
    // A demo plugin: the keys the manifest leaves out come from its schema.
    let path = s.write(
        "imu.toml",
        "[[node]]\nname = \"imu\"\nplugin = \"{plugin:imu-sim}\"\nconfig = { seed = 3 }\n",
    );
    let out = run(&["run", path.to_str().unwrap(), "--duration", "300ms"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    has(
        &out.stderr,
        &["config: amplitude_deg=10 period_s=4 gyro_noise=0.01 accel_noise=0.05 seed=3"],
    );
}

#[test]
fn a_type_without_a_schema_is_not_checked() {
    let s = Scratch::new();
    let path = s.write(
        "robot.toml",
        "[[node]]\nname = \"c\"\nplugin = \"{plugin:reload-counter}\"\nconfig = { anything = 1, goes = \"here\" }\n",
    );
    let out = run(&["check", path.to_str().unwrap()]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
}

#[test]
fn a_plugin_built_against_the_old_abi_is_refused_with_a_clear_message() {
    let s = Scratch::new();
    let err = refuse(
        &s,
        "[[node]]\nname = \"old\"\nplugin = \"{plugin:faulty-abi-old}\"\n",
    );
    has(
        &err,
        &[
            "robot.toml:3:10: error[H0013]: node `old`:",
            "libfaulty_abi_old.so was built against HORUS plugin ABI v1, but this host speaks ABI v3",
            "the plugin is older than this host: rebuild it against the current horus-plugin-api",
            "hint: rebuild the plugin against the current horus-plugin-api",
        ],
    );
}

// Python nodes (item 6): `horus check` imports the node's file with the node's interpreter, in a
// child process, and checks the class and its `CONFIG` like a Rust node type's schema.

fn venv() -> String {
    let v = horus_e2e::repo_root().join(".venv");
    assert!(
        v.join("bin/python").exists(),
        "{} is missing: run ./scripts/python-env.sh (scripts/test.sh does)",
        v.display()
    );
    v.display().to_string()
}

const SMOOTHER: &str = r#"import horus


class Smoother(horus.Node):
    CONFIG = {
        "gain": horus.ConfigKey(float, default=1.0, doc="output gain"),
        "frame": horus.ConfigKey(str, required=True, doc="the frame to report in"),
        "window": horus.ConfigKey(int, default=4),
    }

    def init(self):
        print("config:", sorted(self.config.items()), flush=True)

    def tick(self):
        pass
"#;

/// A manifest with one Python node of class `class` from `smoother.py` (written from `source`).
fn python_manifest(s: &Scratch, source: &str, class: &str, config: &str) -> std::path::PathBuf {
    s.write("smoother.py", source);
    s.write(
        "robot.toml",
        &format!(
            "[[node]]\nname = \"smoother\"\npython = \"smoother.py\"\nclass = \"{class}\"\nvenv = \"{}\"\n{config}",
            venv()
        ),
    )
}

#[test]
fn a_python_nodes_config_is_checked_against_its_class_config() {
    let s = Scratch::new();
    let path = python_manifest(
        &s,
        SMOOTHER,
        "Smoother",
        "config = { gian = 2.0, window = 2.5 }\n",
    );
    let out = run(&["check", path.to_str().unwrap()]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    has(
        &out.stderr,
        &[
            "robot.toml:6:10: error[H0042]: node `smoother`: missing required config key `frame` of node type `Smoother`",
            "robot.toml:6:12: error[H0040]: node `smoother`: unknown config key `gian` for node type `Smoother`",
            "did you mean `gain`?",
            "robot.toml:6:24: error[H0041]: node `smoother`: config `window` must be an integer",
            "3 errors",
        ],
    );
    let ran = run(&["run", path.to_str().unwrap(), "--duration", "5s"]);
    assert_eq!(ran.code(), 2, "run refuses the same:\n{}", ran.stderr);
    assert!(ran.stderr.contains("error[H0040]"), "{}", ran.stderr);
}

#[test]
fn a_python_node_gets_its_declared_defaults() {
    let s = Scratch::new();
    let path = python_manifest(
        &s,
        SMOOTHER,
        "Smoother",
        "config = { frame = \"odom\", gain = 2 }\n",
    );
    let out = run(&["check", path.to_str().unwrap()]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let out = run(&["run", path.to_str().unwrap(), "--duration", "300ms"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    has(
        &out.stdout,
        &["config: [('frame', 'odom'), ('gain', 2), ('window', 4)]"],
    );
}

#[test]
fn a_wrong_python_class_is_caught_by_check() {
    let s = Scratch::new();
    let path = python_manifest(&s, SMOOTHER, "Smother", "config = { frame = \"odom\" }\n");
    let out = run(&["check", path.to_str().unwrap()]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    has(
        &out.stderr,
        &[
            "robot.toml:4:9: error[H0044]: node `smoother`:",
            "smoother.py defines no class `Smother`",
            "hint: did you mean `Smoother`? the file defines: Smoother",
        ],
    );
    // A class that is not a horus.Node.
    let path = python_manifest(
        &s,
        &format!("{SMOOTHER}\n\nclass Plain:\n    pass\n"),
        "Plain",
        "",
    );
    let out = run(&["check", path.to_str().unwrap()]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    has(
        &out.stderr,
        &["error[H0044]", "`Plain` in", "is not a horus.Node subclass"],
    );
}

#[test]
fn a_python_file_that_does_not_import_is_reported_at_its_line() {
    let s = Scratch::new();
    let path = python_manifest(
        &s,
        "import horus\n\n\nclass Smoother(horus.Node)\n    def tick(self):\n        pass\n",
        "Smoother",
        "",
    );
    let out = run(&["check", path.to_str().unwrap()]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    has(
        &out.stderr,
        &[
            "smoother.py:4:",
            "error[H0043]: node `smoother`: cannot import",
            "SyntaxError",
        ],
    );
    let path = python_manifest(&s, "import horus\nimport no_such_module_here\n", "Smoother", "");
    let out = run(&["check", path.to_str().unwrap()]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    has(
        &out.stderr,
        &[
            "smoother.py:2:1: error[H0043]",
            "ModuleNotFoundError: No module named 'no_such_module_here'",
        ],
    );
}
