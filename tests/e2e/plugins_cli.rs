//! `horus plugins` and `horus inspect` (issue #15, items 3 and 4): the real binary on a scratch
//! search path — two `HORUS_PLUGIN_PATH` folders, the folder of a copy of `horus` (which holds
//! nothing else), a data home and a cache home of its own — with real plugins and a refused
//! file of each kind.
//!
//! The cache is observed without timing: `horus plugins --json` reports how many libraries it
//! opened and how many it took from the cache, and its debug log names each child inspection.
//!
//! Golden outputs are in `tests/golden/`, with the scratch folder written `<DIR>`; run with
//! `HORUS_BLESS=1` to rewrite them after an intended change, and review the diff.

use horus_e2e::{horus_bin, libc_path, plugin, repo_root, spawn, wait, Outcome, Scratch};
use horus_plugin_api::abi::ABI_VERSION;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `a` and `b` on `HORUS_PLUGIN_PATH`, `bin` holding a copy of horus, `data`, `cache`.
struct Path2 {
    s: Scratch,
}

impl Path2 {
    fn new() -> Path2 {
        let s = Scratch::new();
        for dir in ["a", "b", "bin", "data", "cache", "m/build"] {
            std::fs::create_dir_all(s.path().join(dir)).unwrap();
        }
        // The executable's folder: a hard link (or a copy) of the real binary, so the workspace's
        // target/debug (the real executable's folder) is not on the path.
        let exe = s.path().join("bin/horus");
        if std::fs::hard_link(horus_bin(), &exe).is_err() {
            std::fs::copy(horus_bin(), &exe).unwrap();
        }
        Path2 { s }
    }

    fn dir(&self, rel: &str) -> PathBuf {
        self.s.path().join(rel)
    }

    /// Copies plugin crate `krate` into folder `rel` as `file`.
    fn put(&self, krate: &str, rel: &str, file: &str) -> PathBuf {
        let to = self.dir(rel).join(file);
        std::fs::copy(plugin(krate), &to).unwrap();
        to
    }

    /// The demo plugins in `a`, an older copy of imu-sim in `b`, and a refused file of each kind:
    /// garbage, a library without the entry (libc), the old ABI, a crashing descriptor.
    fn populate(&self) {
        self.put("imu-sim", "a", "libimu_sim.so");
        self.put("attitude-filter", "a", "libattitude_filter.so");
        self.put("telemetry-sink", "a", "libtelemetry_sink.so");
        std::fs::write(self.dir("a/libjunk.so"), b"this is not a library\n").unwrap();
        self.put("imu-sim", "b", "libimu_sim.so");
        std::fs::copy(libc_path(), self.dir("b/libnoentry.so")).unwrap();
        self.put("faulty-abi-version", "b", "libfaulty_abi_version.so");
        self.put("faulty-descriptor", "b", "libfaulty_descriptor.so");
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.dir("bin/horus"));
        cmd.args(args)
            .current_dir(self.s.path())
            .env("RUST_LOG", "info")
            .env(
                "HORUS_PLUGIN_PATH",
                format!("{}:{}", self.dir("a").display(), self.dir("b").display()),
            )
            .env("XDG_DATA_HOME", self.dir("data"))
            .env("XDG_CACHE_HOME", self.dir("cache"))
            .env_remove("RUST_BACKTRACE");
        cmd
    }

    fn run(&self, args: &[&str]) -> Outcome {
        wait(spawn(self.command(args)), Duration::from_secs(60))
    }

    /// `run` with debug logs (which name each child inspection).
    fn run_debug(&self, args: &[&str]) -> Outcome {
        let mut cmd = self.command(args);
        cmd.env("RUST_LOG", "debug");
        wait(spawn(cmd), Duration::from_secs(60))
    }

    fn ok(&self, args: &[&str]) -> Outcome {
        let out = self.run(args);
        assert_eq!(out.code(), 0, "horus {args:?}: {}", out.stderr);
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
    }

    fn cache_file(&self) -> PathBuf {
        self.dir("cache/horus/registry-v2.json")
    }

    /// `text` with the scratch folder written `<DIR>`.
    fn masked(&self, text: &str) -> String {
        let dir = std::fs::canonicalize(self.s.path()).unwrap();
        text.replace(&dir.display().to_string(), "<DIR>")
            .replace(&self.s.path().display().to_string(), "<DIR>")
    }
}

fn file_of(v: &Value) -> String {
    Path::new(v["file"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Compares `actual` with `tests/golden/<name>`, or writes it there with `HORUS_BLESS=1`.
fn golden(name: &str, actual: &str) {
    let path = repo_root().join("tests/golden").join(name);
    if std::env::var_os("HORUS_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (HORUS_BLESS=1 writes it)", path.display()));
    assert_eq!(
        actual,
        expected,
        "output differs from {} (HORUS_BLESS=1 rewrites it)",
        path.display()
    );
}

#[test]
fn plugins_lists_the_path_the_plugins_the_shadowed_and_each_kind_of_refused_file() {
    let p = Path2::new();
    p.populate();
    let v = p.json(&["plugins", "--json"]);

    let origins: Vec<(String, String, bool)> = v["search_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                p.masked(f["dir"].as_str().unwrap()),
                f["origin"].as_str().unwrap().to_owned(),
                f["exists"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        origins,
        vec![
            ("<DIR>/a".into(), "env".into(), true),
            ("<DIR>/b".into(), "env".into(), true),
            ("<DIR>/bin".into(), "executable".into(), true),
            ("<DIR>/data/horus/plugins".into(), "data_home".into(), false),
        ]
    );

    let plugins = v["plugins"].as_array().unwrap();
    let listed: Vec<(String, String, Vec<String>, Option<String>)> = plugins
        .iter()
        .map(|l| {
            assert_eq!(l["abi_version"], ABI_VERSION, "{l}");
            assert_eq!(l["version"], "0.1.0", "{l}");
            (
                p.masked(l["file"].as_str().unwrap()),
                l["name"].as_str().unwrap().to_owned(),
                l["node_types"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_owned())
                    .collect(),
                l["shadowed_by"].as_str().map(|s| p.masked(s)),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (
                "<DIR>/a/libattitude_filter.so".into(),
                "attitude-filter".into(),
                vec!["ComplementaryFilter".into()],
                None
            ),
            (
                "<DIR>/a/libimu_sim.so".into(),
                "imu-sim".into(),
                vec!["ImuSim".into()],
                None
            ),
            (
                "<DIR>/a/libtelemetry_sink.so".into(),
                "telemetry-sink".into(),
                vec!["TelemetrySink".into()],
                None
            ),
            (
                "<DIR>/b/libimu_sim.so".into(),
                "imu-sim".into(),
                vec!["ImuSim".into()],
                Some("<DIR>/a/libimu_sim.so".into())
            ),
        ]
    );

    let refused: Vec<(String, String)> = v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(!r["reason"].as_str().unwrap().is_empty(), "{r}");
            (file_of(r), r["kind"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        refused,
        vec![
            ("libjunk.so".into(), "not_a_library".into()),
            ("libfaulty_abi_version.so".into(), "abi_version".into()),
            ("libfaulty_descriptor.so".into(), "crashed".into()),
            ("libnoentry.so".into(), "not_a_plugin".into()),
        ]
    );
    assert_eq!(
        v["cache"]["file"].as_str().map(|s| p.masked(s)).as_deref(),
        Some("<DIR>/cache/horus/registry-v2.json")
    );

    // The same for people: the folders first, one aligned row per plugin, the shadowed mark,
    // each refused file with its reason.
    let text = p.masked(&p.ok(&["plugins"]).stdout);
    let folders = text.find("<DIR>/a ").expect("folders listed");
    let table = text.find("PLUGIN ").expect("plugin table");
    assert!(folders < table, "{text}");
    let header = text.lines().find(|l| l.contains("PLUGIN ")).unwrap();
    let file_col = header.find("FILE").unwrap();
    for row in text.lines().filter(|l| l.contains(".so") && l.contains(" v1 ")) {
        assert_eq!(row.find("<DIR>"), Some(file_col), "misaligned row: {row}\n{text}");
    }
    assert!(text.contains("shadowed by <DIR>/a/libimu_sim.so"), "{text}");
    for (file, why) in [
        ("libjunk.so", "no ELF header"),
        ("libnoentry.so", "horus_plugin_entry"),
        ("libfaulty_abi_version.so", "ABI v3"),
        ("libfaulty_descriptor.so", "SIGSEGV"),
    ] {
        let at = text.find(&format!(
            "<DIR>/{}/{file}",
            if file == "libjunk.so" { "a" } else { "b" }
        ));
        let at = at.unwrap_or_else(|| panic!("{file} not listed: {text}"));
        let reason = text[at..].lines().nth(1).unwrap_or_default();
        assert!(reason.contains(why), "{file}: {reason}\n{text}");
    }
}

/// The number of `__inspect` children a debug run started.
fn spawned(out: &Outcome) -> usize {
    out.stderr
        .lines()
        .filter(|l| l.contains("inspecting the plugin in a child process"))
        .count()
}

#[test]
fn the_cache_saves_the_second_run_its_children_and_a_changed_file_is_inspected_again() {
    let p = Path2::new();
    p.populate();
    let first = p.run_debug(&["plugins"]);
    assert_eq!(first.code(), 0, "{}", first.stderr);
    // Opened: 3 + 1 plugins, the old ABI and the crashing one; the rest is refused from ELF.
    assert_eq!(spawned(&first), 6, "{}", first.stderr);
    assert!(p.cache_file().is_file());

    let second = p.run_debug(&["plugins"]);
    assert_eq!(second.code(), 0, "{}", second.stderr);
    assert_eq!(
        spawned(&second),
        0,
        "no library is opened again:\n{}",
        second.stderr
    );
    assert_eq!(
        p.masked(&first.stdout).replace("6 libraries opened, 0", "X"),
        p.masked(&second.stdout).replace("0 libraries opened, 6", "X")
    );
    let v = p.json(&["plugins", "--json"]);
    assert_eq!(
        (v["cache"]["inspected"].as_u64(), v["cache"]["cached"].as_u64()),
        (Some(0), Some(6))
    );

    // A rebuilt plugin (a new file at the same path) and a touched one are opened again; the
    // crashing one is still not.
    let imu = p.dir("b/libimu_sim.so");
    std::fs::remove_file(&imu).unwrap();
    p.put("hello-counter", "b", "libimu_sim.so");
    let abi = p.dir("b/libfaulty_abi_version.so");
    let f = std::fs::OpenOptions::new().append(true).open(&abi).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(f);
    let third = p.run_debug(&["plugins", "--json"]);
    assert_eq!(third.code(), 0, "{}", third.stderr);
    assert_eq!(spawned(&third), 2, "{}", third.stderr);
    assert!(
        !third.stderr.contains("libfaulty_descriptor.so"),
        "{}",
        third.stderr
    );
    let v: Value = serde_json::from_str(&third.stdout).unwrap();
    let b_imu = v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["file"].as_str().unwrap().ends_with("b/libimu_sim.so"))
        .unwrap();
    assert_eq!(
        b_imu["name"], "hello-counter",
        "the new content is listed: {b_imu}"
    );
}

#[test]
fn a_corrupt_cache_is_ignored_and_rebuilt() {
    let p = Path2::new();
    p.populate();
    let clean = p.json(&["plugins", "--json"]);
    for garbage in [&b"{\"format\": 1, \"entries\": "[..], b"\x00\x01\x02", b"[]"] {
        std::fs::write(p.cache_file(), garbage).unwrap();
        let v = p.json(&["plugins", "--json"]);
        assert_eq!(v["plugins"], clean["plugins"]);
        assert_eq!(v["refused"], clean["refused"]);
        assert_eq!(v["cache"]["cached"], 0, "a corrupt cache is not read");
        let text = std::fs::read_to_string(p.cache_file()).unwrap();
        assert!(
            serde_json::from_str::<Value>(&text).is_ok(),
            "rewritten whole: {text}"
        );
    }
    // Type-only nodes use the cache too, and do not fail on a corrupt one.
    std::fs::write(p.cache_file(), b"garbage").unwrap();
    let m =
        p.s.write("m/types.toml", "[[node]]\nname = \"imu\"\ntype = \"ImuSim\"\n");
    let out = p.run(&["check", m.to_str().unwrap()]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let out = p.run_debug(&["check", m.to_str().unwrap()]);
    assert_eq!(spawned(&out), 0, "the check's scan was cached: {}", out.stderr);
}

#[test]
fn plugins_searches_the_manifests_plugin_path_first() {
    let p = Path2::new();
    p.put("hello-counter", "m/build", "libhello_counter.so");
    let m = p.s.write("m/robot.toml", "[plugins]\npath = [\"build\"]\n");
    let v = p.json(&["plugins", "--json", "--manifest", m.to_str().unwrap()]);
    assert_eq!(v["search_path"][0]["origin"], "manifest");
    assert_eq!(
        p.masked(v["search_path"][0]["dir"].as_str().unwrap()),
        "<DIR>/m/build"
    );
    assert_eq!(v["plugins"][0]["name"], "hello-counter");
    // A bad manifest is its usual error.
    let bad = p.s.write("m/bad.toml", "[plugins]\npaht = []\n");
    let out = p.run(&["plugins", "--manifest", bad.to_str().unwrap()]);
    assert_eq!(out.code(), 2);
    assert!(out.stderr.contains("error[H0003]"), "{}", out.stderr);
}

#[test]
fn inspect_shows_the_demo_types_by_type_plugin_and_file() {
    let p = Path2::new();
    p.populate();
    for ty in ["ImuSim", "ComplementaryFilter", "TelemetrySink"] {
        let out = p.ok(&["inspect", ty]);
        golden(&format!("inspect_{ty}.txt"), &p.masked(&out.stdout));
    }
    // By plugin name: every type of it, the same text for the type after a plugin header.
    let by_name = p.masked(&p.ok(&["inspect", "imu-sim"]).stdout);
    golden("inspect_plugin_imu-sim.txt", &by_name);
    let by_type = p.masked(&p.ok(&["inspect", "ImuSim"]).stdout);
    assert!(by_name.ends_with(&by_type), "{by_name}");
    // By file: a file off the path is named by its path in the snippet.
    std::fs::create_dir_all(p.dir("elsewhere")).unwrap();
    let off_path = p.put("imu-sim", "elsewhere", "libimu_sim.so");
    let by_file = p.masked(&p.ok(&["inspect", off_path.to_str().unwrap()]).stdout);
    assert!(
        by_file.contains("plugin = \"<DIR>/elsewhere/libimu_sim.so\""),
        "{by_file}"
    );
    assert!(
        by_file.contains("file: <DIR>/elsewhere/libimu_sim.so"),
        "{by_file}"
    );

    // JSON: the documented keys.
    let v = p.json(&["inspect", "ComplementaryFilter", "--json"]);
    assert_eq!(v["matched"], "type");
    assert_eq!(
        p.masked(v["file"].as_str().unwrap()),
        "<DIR>/a/libattitude_filter.so"
    );
    assert_eq!(v["plugin"]["name"], "attitude-filter");
    assert_eq!(v["plugin"]["ref"], "attitude-filter");
    assert_eq!(v["plugin"]["abi_version"], ABI_VERSION);
    let t = &v["node_types"][0];
    assert_eq!(t["name"], "ComplementaryFilter");
    let ports: Vec<(&str, &str, &str, &str)> = t["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(
                p["slot_size"].as_u64().unwrap() > 0 && p["type_hash"].as_str().unwrap().starts_with("0x")
            );
            (
                p["name"].as_str().unwrap(),
                p["direction"].as_str().unwrap(),
                p["message_type"].as_str().unwrap(),
                p["encoding"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        vec![
            ("imu", "input", "Imu", "pod"),
            ("attitude", "output", "Attitude", "pod")
        ]
    );
    assert_eq!(p.json(&["inspect", "imu-sim", "--json"])["matched"], "plugin");
    assert_eq!(
        p.json(&["inspect", off_path.to_str().unwrap(), "--json"])["matched"],
        "file"
    );
}

#[test]
fn the_snippets_of_inspect_pass_horus_check_as_pasted() {
    let p = Path2::new();
    p.populate();
    // A type with a required config key: its snippet sets it.
    p.put("config-probe", "a", "libconfig_probe.so");
    let mut manifest = String::new();
    for ty in ["ImuSim", "ComplementaryFilter", "TelemetrySink", "ConfigProbe"] {
        let v = p.json(&["inspect", ty, "--json"]);
        manifest.push_str(v["node_types"][0]["manifest_snippet"].as_str().unwrap());
        manifest.push('\n');
    }
    let m = p.s.write("m/snippets.toml", &manifest);
    let out = p.run(&["check", m.to_str().unwrap()]);
    assert_eq!(out.code(), 0, "{manifest}\n{}", out.stderr);
    assert!(out.stdout.contains("4 nodes, 4 connections"), "{}", out.stdout);
    assert!(
        manifest.contains("config = { frame = \"\" }  # required: set your values"),
        "{manifest}"
    );
}

/// Issue #15: `inspect` shows a type's config keys: kind, default or required, doc.
#[test]
fn inspect_shows_the_config_keys_a_type_declares() {
    let p = Path2::new();
    p.populate();
    p.put("config-probe", "a", "libconfig_probe.so");
    let out = p.run(&["inspect", "ConfigProbe"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    for row in [
        "frame    str    (required)  the frame the node reports in",
        "gain     float  1.5         output gain",
        "trim     float  (none)      optional offset, no default",
    ] {
        assert!(out.stdout.contains(row), "no `{row}` in:\n{}", out.stdout);
    }
    let v = p.json(&["inspect", "ConfigProbe", "--json"]);
    let keys = v["node_types"][0]["config"].as_array().expect("config keys");
    assert_eq!(keys[0]["name"], "frame");
    assert_eq!(keys[0]["required"], true);
    assert_eq!(keys[1]["default"], 1.5);
    assert_eq!(keys[3]["default"], false);
}

#[test]
fn inspect_of_nothing_or_of_a_refused_file_is_a_coded_error() {
    let p = Path2::new();
    p.populate();
    let out = p.run(&["inspect", "ImuSm"]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("horus inspect: error[H0035]: "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("did you mean `ImuSim`?"), "{}", out.stderr);
    assert!(out.stderr.contains("see: docs/errors/H0035.md"), "{}", out.stderr);
    assert!(
        p.masked(&out.stderr).contains("<DIR>/b (HORUS_PLUGIN_PATH)"),
        "folders listed: {}",
        out.stderr
    );
    let out = p.run(&["inspect", "imu-sm"]);
    assert_eq!(out.code(), 2);
    assert!(out.stderr.contains("did you mean `imu-sim`?"), "{}", out.stderr);
    // Refused files by name or path: the refusal's own code.
    for (target, code) in [
        ("faulty-abi-version", "H0013"),
        ("faulty-descriptor", "H0030"),
        ("noentry", "H0012"),
    ] {
        let out = p.run(&["inspect", target]);
        assert_eq!(out.code(), 2, "{target}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("error[{code}]")),
            "{target}: {}",
            out.stderr
        );
    }
    let junk = p.dir("a/libjunk.so");
    let out = p.run(&["inspect", junk.to_str().unwrap()]);
    assert!(out.stderr.contains("error[H0011]"), "{}", out.stderr);
    // Two plugins of one folder offering the type: ambiguous, both named.
    p.put("imu-sim", "a", "libimu_copy.so");
    let out = p.run(&["inspect", "ImuSim"]);
    assert_eq!(out.code(), 2);
    assert!(out.stderr.contains("error[H0034]"), "{}", out.stderr);
    assert!(
        out.stderr.contains("libimu_copy.so, libimu_sim.so"),
        "{}",
        out.stderr
    );
}
