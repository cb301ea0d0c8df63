//! `horus new node`: the project it writes builds, tests and runs as written (the Rust crate
//! with cargo, the Python node in the host's embedded interpreter), and bad input is refused
//! without writing anything.

use horus_e2e::{
    artifacts_dir, horus, node, repo_root, run_with_stats_in, shm_leftovers, spawn, wait, Scratch,
};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The scaffolded crate's cargo target folder: beside this workspace's profile folders, so a
/// second run reuses the SDK's build and compiles only the node (~1 s).
fn scaffold_target() -> std::path::PathBuf {
    let dir = artifacts_dir()
        .parent()
        .expect("target/<profile>")
        .join("scaffold-target");
    std::fs::create_dir_all(&dir).expect("scaffold-target");
    dir
}

/// `cargo <args>` in `dir` as a user would run it there: no inherited target folder (the outer
/// build's would put the new plugin next to `horus`, on every manifest's search path).
fn cargo(dir: &Path, args: &[&str]) -> horus_e2e::Outcome {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR");
    let out = wait(spawn(cmd), Duration::from_secs(300));
    assert!(
        out.status.success(),
        "cargo {args:?} in {} failed:\n{}",
        dir.display(),
        out.stderr
    );
    out
}

/// `horus <args>` in `dir`, at most 60 s.
fn horus_in(dir: &Path, args: &[&str]) -> horus_e2e::Outcome {
    let mut cmd = horus(args);
    cmd.current_dir(dir);
    wait(spawn(cmd), Duration::from_secs(60))
}

#[test]
fn a_new_rust_node_builds_tests_and_runs_as_written() {
    let s = Scratch::new();
    let out = horus_in(s.path(), &["new", "node", "my-filter", "--path", "proj"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("created node plugin `MyFilter`"),
        "{}",
        out.stdout
    );
    let proj = s.path().join("proj");
    let cargo_toml = std::fs::read_to_string(proj.join("Cargo.toml")).unwrap();
    let sdk = repo_root().join("plugin-api").canonicalize().unwrap();
    assert!(
        cargo_toml.contains(&format!("horus-plugin-api = {{ path = \"{}\" }}", sdk.display())),
        "the crate depends on this checkout's SDK:\n{cargo_toml}"
    );
    // The project's own `target` is the shared folder, so manifest.toml's
    // `[plugins] path = ["target/debug"]` is tested as written.
    std::os::unix::fs::symlink(scaffold_target(), proj.join("target")).unwrap();

    let started = Instant::now();
    cargo(&proj, &["build"]);
    let build = started.elapsed();
    let test = cargo(&proj, &["test"]);
    assert!(
        test.stdout.contains("test result: ok. 4 passed"),
        "the scaffold's unit tests ran:\n{}",
        test.stdout
    );
    // As the user's own CI would check it.
    cargo(&proj, &["fmt", "--check"]);
    cargo(&proj, &["clippy", "--all-targets", "--", "-D", "warnings"]);
    eprintln!(
        "scaffold: cargo build {build:.1?}, build+test+fmt+clippy {:.1?}",
        started.elapsed()
    );

    let check = horus_in(&proj, &["check", "manifest.toml"]);
    assert_eq!(check.code(), 0, "{}", check.stderr);
    assert!(
        check.stdout.contains("MyFilter from my-filter") && check.stdout.contains("MyFilterSource"),
        "{}",
        check.stdout
    );

    let ns = format!("e2enew{}", std::process::id());
    let (out, stats) = run_with_stats_in(Some(&ns), &s, &proj.join("manifest.toml"), "1s");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let filter = node(&stats, "my-filter");
    assert_eq!(filter["total_failures"], 0, "{filter}");
    assert!(filter["total_ticks"].as_u64().unwrap() > 0, "{filter}");
    assert!(filter["messages_received"].as_u64().unwrap() > 0, "{filter}");
    assert!(filter["messages_sent"].as_u64().unwrap() > 0, "{filter}");
    assert!(
        out.stderr.contains("processed "),
        "the shutdown hook ran: {}",
        out.stderr
    );
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn a_new_python_node_checks_and_runs_as_written() {
    let venv = repo_root().join(".venv");
    assert!(
        venv.join("bin/python").exists(),
        "{} is missing: run ./scripts/python-env.sh (scripts/test.sh does)",
        venv.display()
    );
    let s = Scratch::new();
    let out = horus_in(s.path(), &["new", "node", "py-filter", "--python"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let proj = s.path().join("py-filter");
    assert!(proj.join("py_filter.py").is_file(), "{}", out.stdout);
    let manifest = std::fs::read_to_string(proj.join("manifest.toml")).unwrap();
    assert!(
        manifest.contains(&format!("venv = \"{}\"", venv.canonicalize().unwrap().display()))
            || manifest.contains(&format!("venv = \"{}\"", venv.display())),
        "the manifest names this checkout's environment:\n{manifest}"
    );

    // `check` imports the file in a child interpreter and checks both classes and the config.
    let check = horus_in(&proj, &["check", "manifest.toml"]);
    assert_eq!(check.code(), 0, "{}", check.stderr);

    let ns = format!("e2enewpy{}", std::process::id());
    let (out, stats) = run_with_stats_in(Some(&ns), &s, &proj.join("manifest.toml"), "1s");
    assert_eq!(out.code(), 0, "{}", out.stderr);
    for name in ["source", "py-filter"] {
        let n = node(&stats, name);
        assert_eq!(n["total_failures"], 0, "{n}");
        assert!(n["total_ticks"].as_u64().unwrap() > 0, "{n}");
    }
    let processed: u64 = out
        .stdout
        .split("[py-filter] processed ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no shutdown line: {}", out.stdout));
    assert!(
        processed > 0,
        "the source's values reached the filter: {}",
        out.stdout
    );
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn a_bad_name_is_refused_with_a_suggestion_and_writes_nothing() {
    let s = Scratch::new();
    let out = horus_in(s.path(), &["new", "node", "MyFilter"]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("try `my-filter`"), "{}", out.stderr);
    let out = horus_in(s.path(), &["new", "node", "2d-lidar", "--python"]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("must start with a letter"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_dir(s.path()).unwrap().count(),
        0,
        "nothing was written"
    );
}

#[test]
fn a_non_empty_folder_is_not_overwritten() {
    let s = Scratch::new();
    std::fs::create_dir(s.path().join("proj")).unwrap();
    let kept = s.write("proj/notes.txt", "mine");
    let out = horus_in(s.path(), &["new", "node", "my-filter", "--path", "proj"]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("proj already exists and is not empty"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "mine");
    assert_eq!(std::fs::read_dir(s.path().join("proj")).unwrap().count(), 1);

    // An empty folder is fine.
    std::fs::create_dir(s.path().join("empty")).unwrap();
    let out = horus_in(s.path(), &["new", "node", "my-filter", "--path", "empty"]);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(s.path().join("empty/src/lib.rs").is_file());
}

#[test]
fn an_sdk_that_is_not_plugin_api_is_refused() {
    let s = Scratch::new();
    let host = repo_root().join("host");
    let out = horus_in(
        s.path(),
        &["new", "node", "my-filter", "--sdk", host.to_str().unwrap()],
    );
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("not the `horus-plugin-api` crate"),
        "{}",
        out.stderr
    );
    assert!(!s.path().join("my-filter").exists());
}
