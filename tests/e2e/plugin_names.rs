//! Plugins found by name or by node type on the search path (issue #15, items 1 and 2): the real
//! `horus` binary, with scratch folders for each part of the path — the manifest's
//! `[plugins] path`, `HORUS_PLUGIN_PATH`, the folder of the running executable (a copy of
//! `horus` in a scratch folder) and `$XDG_DATA_HOME/horus/plugins`.
//!
//! `horus check` prints each node's resolved file, which is what most tests read; the runs
//! read the file from the stats (`plugin`).

use horus_e2e::{horus_bin, node, plugin, read_stats, shm_leftovers, spawn, wait, Outcome, Scratch};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A scratch layout: a manifest folder, a `HORUS_PLUGIN_PATH` folder, a folder holding a copy of
/// `horus`, and a data home.
struct Layout {
    s: Scratch,
}

impl Layout {
    fn new() -> Layout {
        let s = Scratch::new();
        for dir in ["m/build", "env", "bin", "data/horus/plugins", "cwd"] {
            std::fs::create_dir_all(s.path().join(dir)).unwrap();
        }
        // The executable's folder: a hard link (or a copy) of the real binary, so that
        // /proc/self/exe, which the host reads, is in this folder.
        let exe = s.path().join("bin/horus");
        if std::fs::hard_link(horus_bin(), &exe).is_err() {
            std::fs::copy(horus_bin(), &exe).unwrap();
        }
        Layout { s }
    }

    fn dir(&self, rel: &str) -> PathBuf {
        self.s.path().join(rel)
    }

    /// Puts plugin crate `krate` into folder `rel` as `file`.
    fn put(&self, krate: &str, rel: &str, file: &str) -> PathBuf {
        let to = self.dir(rel).join(file);
        std::fs::copy(plugin(krate), &to).unwrap();
        to
    }

    /// Writes manifest `text` as m/robot.toml.
    fn manifest(&self, text: &str) -> PathBuf {
        let path = self.dir("m/robot.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `bin/horus args…` in `cwd/`, with `HORUS_PLUGIN_PATH` = `env` and the scratch data home.
    fn command(&self, env: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.dir("bin/horus"));
        cmd.args(args)
            .current_dir(self.dir("cwd"))
            .env("RUST_LOG", "info")
            .env("HORUS_PLUGIN_PATH", env)
            .env("XDG_DATA_HOME", self.dir("data"))
            // The registry cache of this scratch layout, not the user's.
            .env("XDG_CACHE_HOME", self.dir("cache"))
            .env_remove("RUST_BACKTRACE");
        cmd
    }

    fn check(&self, env: &str, manifest: &Path) -> Outcome {
        wait(
            spawn(self.command(env, &["check", manifest.to_str().unwrap()])),
            Duration::from_secs(60),
        )
    }
}

/// The file `horus check` resolved node `name` to (the last word of its line).
fn resolved(out: &Outcome, name: &str) -> PathBuf {
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no line for `{name}`: {}", out.stdout));
    PathBuf::from(line.rsplit(' ').next().unwrap())
}

const BY_NAME: &str = "[plugins]\npath = [\"build\"]\n\n[[node]]\nname = \"imu\"\nplugin = \"imu-sim\"\n";

/// Issue #15: the search path is `[plugins] path`, `HORUS_PLUGIN_PATH` (empty and relative
/// entries), the executable's folder, the data home — in that order, the first match winning.
#[test]
fn a_name_is_found_in_each_part_of_the_path_in_order() {
    let l = Layout::new();
    let m = l.manifest(BY_NAME);
    // Relative entries start at the current folder (cwd/), empty ones are skipped.
    let env = "::../env:";
    let places = [
        ("m/build", "[plugins] path"),
        ("env", "HORUS_PLUGIN_PATH"),
        ("bin", "the executable's folder"),
        ("data/horus/plugins", "the data home"),
    ];
    let files: Vec<PathBuf> = places
        .iter()
        .map(|(rel, _)| l.put("imu-sim", rel, "libimu_sim.so"))
        .collect();
    for (i, (rel, what)) in places.iter().enumerate() {
        let got = resolved(&l.check(env, &m), "imu");
        assert_eq!(
            std::fs::canonicalize(&got).unwrap(),
            std::fs::canonicalize(&files[i]).unwrap(),
            "with the plugin in {rel} and every later folder, {what} wins"
        );
        std::fs::remove_file(&files[i]).unwrap();
    }
    // Gone from every folder: not found, and not from target/debug (where the real binary is),
    // since the copy of horus runs from bin/.
    let out = l.check(env, &m);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("error[H0032]"), "{}", out.stderr);
    // As searched: the relative HORUS_PLUGIN_PATH entry joined to the current folder.
    for rel in ["m/build", "cwd/../env", "bin", "data/horus/plugins"] {
        let dir = std::fs::canonicalize(l.dir(rel)).unwrap();
        let shown = out.stderr.contains(&dir.display().to_string())
            || out.stderr.contains(&l.dir(rel).display().to_string());
        assert!(shown, "the error lists {rel}: {}", out.stderr);
    }
}

/// Issue #15: `horus run` resolves names too, and runs the plugin found next to the running
/// executable (how target/release/horus runs the release plugins of the same manifest).
#[test]
fn run_takes_the_plugins_next_to_the_running_horus() {
    let l = Layout::new();
    let lib = l.put("imu-sim", "bin", "libimu_sim.so");
    let m = l.manifest("[[node]]\nname = \"imu\"\nplugin = \"imu-sim\"\n");
    let ns = format!("names-run-{}", std::process::id());
    let stats = l.dir("stats.json");
    let mut cmd = l.command(
        "",
        &[
            "run",
            m.to_str().unwrap(),
            "--duration",
            "300ms",
            "--stats-json",
            stats.to_str().unwrap(),
        ],
    );
    cmd.env("HORUS_NAMESPACE", &ns);
    let out = wait(spawn(cmd), Duration::from_secs(60));
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let stats = read_stats(&stats);
    let imu = node(&stats, "imu");
    assert_eq!(
        std::fs::canonicalize(imu["plugin"].as_str().unwrap()).unwrap(),
        std::fs::canonicalize(&lib).unwrap()
    );
    assert!(imu["total_ticks"].as_u64().unwrap() > 0, "{imu}");
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #15: `type` alone finds the plugin that offers it, from the first folder where one
/// does; a broken file on the path (garbage, another ABI, a library that crashes when loaded,
/// the Python loader) is skipped, never fatal.
#[test]
fn a_type_alone_finds_its_plugin_and_broken_files_do_not_break_the_run() {
    let l = Layout::new();
    std::fs::write(l.dir("m/build/libjunk.so"), b"not a library").unwrap();
    l.put("faulty-descriptor", "m/build", "libcrash.so");
    l.put("faulty-abi-version", "m/build", "libold.so");
    let counter = l.put("hello-counter", "m/build", "libhello_counter.so");
    // A later folder also offers ImuSim and Counter: shadowed for Counter, used for ImuSim.
    let imu = l.put("imu-sim", "env", "libimu_sim.so");
    l.put("hello-counter", "env", "libhello_counter.so");
    let m = l.manifest(
        "[plugins]\npath = [\"build\"]\n\n[[node]]\nname = \"counter\"\ntype = \"Counter\"\n\n\
         [[node]]\nname = \"imu\"\ntype = \"ImuSim\"\n",
    );
    let env = l.dir("env");
    let out = l.check(env.to_str().unwrap(), &m);
    assert_eq!(resolved(&out, "counter"), counter);
    assert_eq!(resolved(&out, "imu"), imu);
    // The same through `horus run`, in a namespace of its own.
    let ns = format!("names-type-{}", std::process::id());
    let stats = l.dir("stats.json");
    let mut cmd = l.command(
        env.to_str().unwrap(),
        &[
            "run",
            m.to_str().unwrap(),
            "--duration",
            "300ms",
            "--stats-json",
            stats.to_str().unwrap(),
        ],
    );
    cmd.env("HORUS_NAMESPACE", &ns);
    let out = wait(spawn(cmd), Duration::from_secs(60));
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let stats = read_stats(&stats);
    assert!(node(&stats, "counter")["total_ticks"].as_u64().unwrap() > 0);
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
    // A type no plugin offers: H0033 at the type's value, with the refused files and the
    // closest type.
    let m = l.manifest("[plugins]\npath = [\"build\"]\n\n[[node]]\nname = \"counter\"\ntype = \"Countr\"\n");
    let out = l.check(env.to_str().unwrap(), &m);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    let first = out.stderr.lines().next().unwrap_or_default();
    assert!(first.contains("robot.toml:6:8: error[H0033]"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `Counter`?"), "{}", out.stderr);
    for refused in ["libjunk.so", "libcrash.so", "libold.so"] {
        assert!(
            out.stderr.contains(refused),
            "{refused} is listed as refused: {}",
            out.stderr
        );
    }
}

/// Issue #15: two plugins of one folder offering the type is an error naming both files, and
/// naming the plugin resolves it.
#[test]
fn two_plugins_of_one_folder_offering_the_type_is_an_error_naming_both() {
    let l = Layout::new();
    l.put("imu-sim", "m/build", "libimu_sim.so");
    l.put("imu-sim", "m/build", "libimu_fast.so");
    let m = l.manifest("[plugins]\npath = [\"build\"]\n\n[[node]]\nname = \"imu\"\ntype = \"ImuSim\"\n");
    let out = l.check("", &m);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("robot.toml:6:8: error[H0034]"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("libimu_fast.so") && out.stderr.contains("libimu_sim.so"),
        "both files are named: {}",
        out.stderr
    );
    let m = l.manifest(
        "[plugins]\npath = [\"build\"]\n\n[[node]]\nname = \"imu\"\nplugin = \"imu-fast\"\ntype = \"ImuSim\"\n",
    );
    assert_eq!(resolved(&l.check("", &m), "imu"), l.dir("m/build/libimu_fast.so"));
}

/// Issue #15: a name on no folder of the path is H0032 at the value, listing the folders
/// searched and the closest name.
#[test]
fn a_missing_name_lists_the_folders_and_the_closest_name() {
    let l = Layout::new();
    l.put("imu-sim", "env", "libimu_sim.so");
    let m = l.manifest("[plugins]\npath = [\"build\"]\n\n[[node]]\nname = \"imu\"\nplugin = \"imu-sm\"\n");
    let env = l.dir("env");
    let out = l.check(env.to_str().unwrap(), &m);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("robot.toml:6:10: error[H0032]"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("libimu_sm.so"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `imu-sim`?"), "{}", out.stderr);
    for (dir, origin) in [
        (l.dir("m/build"), "[plugins] path"),
        (env, "HORUS_PLUGIN_PATH"),
        (l.dir("bin"), "next to the horus executable"),
        (l.dir("data/horus/plugins"), "user data folder"),
    ] {
        let entry = format!("{} ({origin}", dir.display());
        let canonical = format!("{} ({origin}", std::fs::canonicalize(&dir).unwrap().display());
        assert!(
            out.stderr.contains(&entry) || out.stderr.contains(&canonical),
            "lists {entry}: {}",
            out.stderr
        );
    }
}

/// Issue #15: `--watch` watches the file a name resolved to: replacing it reloads the node.
#[test]
fn hot_reload_watches_the_file_a_name_resolved_to() {
    let l = Layout::new();
    let lib = l.put("reload-counter", "m/build", "libcounter.so");
    let m = l.manifest(
        "[plugins]\npath = [\"build\"]\n\n[[node]]\nname = \"counter\"\nplugin = \"counter\"\ntype = \"ReloadCounter\"\n",
    );
    let ns = format!("names-reload-{}", std::process::id());
    let stats = l.dir("stats.json");
    let mut cmd = l.command(
        "",
        &[
            "run",
            m.to_str().unwrap(),
            "--watch",
            "--duration",
            "3s",
            "--stats-json",
            stats.to_str().unwrap(),
        ],
    );
    cmd.env("HORUS_NAMESPACE", &ns);
    let child = spawn(cmd);
    std::thread::sleep(Duration::from_millis(1000));
    // As cargo does: written beside it, renamed over it.
    let tmp = lib.with_extension("so.tmp");
    std::fs::copy(plugin("reload-counter-v2"), &tmp).unwrap();
    std::fs::rename(&tmp, &lib).unwrap();
    let out = wait(child, Duration::from_secs(60));
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let stats = read_stats(&stats);
    assert_eq!(
        node(&stats, "counter")["reloads"].as_u64(),
        Some(1),
        "{}",
        out.stderr
    );
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}
