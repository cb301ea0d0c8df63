//! Helpers for the end-to-end tests: find the built `horus` binary and plugins, write manifests
//! into a fresh temp dir, and run the binary with a hard time limit.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The directory holding the built `horus` binary and plugin libraries (`target/debug`),
/// found from the test executable's own path (`target/debug/deps/<test>`).
pub fn artifacts_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<exe>")
        .to_path_buf();
    assert!(
        dir.join("horus").is_file(),
        "{} has no `horus` binary: run `cargo build --workspace` before the tests (scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the repo")
        .to_path_buf()
}

/// The path of the built `horus` binary.
pub fn horus_bin() -> PathBuf {
    artifacts_dir().join("horus")
}

/// The path of a built plugin, by crate name (`imu-sim` → `libimu_sim.so`).
pub fn plugin(crate_name: &str) -> PathBuf {
    let path = artifacts_dir().join(format!("lib{}.so", crate_name.replace('-', "_")));
    assert!(
        path.is_file(),
        "plugin {} is not built: run `cargo build --workspace`",
        path.display()
    );
    path
}

/// A temp dir with manifests in it, removed on drop.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A fresh dir.
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("horus-e2e-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    /// The dir.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `name` in the dir; `{plugin:NAME}` is replaced by the absolute path of
    /// plugin crate NAME. Returns the file's path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("{plugin:") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').expect("closing brace") + start;
            out.push_str(&plugin(&rest[start + 8..end]).display().to_string());
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        let path = self.dir.path().join(name);
        std::fs::write(&path, out).expect("write manifest");
        path
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

/// What a finished `horus` process left.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Outcome {
    /// The exit code (panics if killed by a signal).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("horus died by a signal: {self:?}"))
    }
}

/// A `horus` command with logs kept plain (no colour, info level).
pub fn horus(args: &[&str]) -> Command {
    let bin = horus_bin();
    // The plugin registry cache of the runs under test stays in the build folder, never in the
    // user's ~/.cache (a test that looks at the cache sets its own XDG_CACHE_HOME after this).
    let cache = bin.parent().map(|d| d.join("e2e-cache")).unwrap_or_default();
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("RUST_LOG", "info")
        .env("XDG_CACHE_HOME", cache)
        .env_remove("RUST_BACKTRACE");
    cmd
}

/// Starts `cmd` with piped output.
pub fn spawn(mut cmd: Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn horus")
}

/// Sends SIGINT to `child` (a graceful stop request).
pub fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -INT {} failed", child.id());
}

/// Waits for `child` at most `limit`; kills it and panics if it takes longer.
pub fn wait(mut child: Child, limit: Duration) -> Outcome {
    let deadline = Instant::now() + limit;
    // Drain the pipes on threads so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "horus did not finish within {limit:?}; killed it. stderr:\n{}",
                err_t.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Outcome {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    }
}

/// Runs `horus args…` to completion (at most 60 s).
pub fn run(args: &[&str]) -> Outcome {
    wait(spawn(horus(args)), Duration::from_secs(60))
}

/// Runs `horus run <manifest> --duration <duration> --stats-json <scratch>/stats.json` and
/// returns the outcome and, if the run wrote it, the stats (empty otherwise).
pub fn run_with_stats(
    scratch: &Scratch,
    manifest: &Path,
    duration: &str,
) -> (Outcome, Vec<serde_json::Value>) {
    run_with_stats_in(None, scratch, manifest, duration)
}

/// [`run_with_stats`] in shared-memory namespace `ns` (HORUS_NAMESPACE), if given.
pub fn run_with_stats_in(
    ns: Option<&str>,
    scratch: &Scratch,
    manifest: &Path,
    duration: &str,
) -> (Outcome, Vec<serde_json::Value>) {
    let stats = scratch.path().join("stats.json");
    let _ = std::fs::remove_file(&stats);
    let mut cmd = horus(&[
        "run",
        manifest.to_str().unwrap(),
        "--duration",
        duration,
        "--stats-json",
        stats.to_str().unwrap(),
    ]);
    if let Some(ns) = ns {
        cmd.env("HORUS_NAMESPACE", ns);
    }
    let out = wait(spawn(cmd), Duration::from_secs(60));
    let nodes = if out.status.success() {
        read_stats(&stats)
    } else {
        Vec::new()
    };
    (out, nodes)
}

/// Every shared-memory object of namespace `ns` still in /dev/shm: named topics
/// (`horus.<ns>.…`) and private segments (`horus.<ns>@…`).
pub fn shm_leftovers(ns: &str) -> Vec<String> {
    let (named, private) = (format!("horus.{ns}."), format!("horus.{ns}@"));
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&named) || n.starts_with(&private))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a `--stats-json` file as a list of node objects.
pub fn read_stats(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats JSON: {e}\n{text}"))
}

/// A counter of the stats JSON.
pub fn count(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// `horus run <manifest> --duration <d> --stats-json <stats>` in namespace `ns`, started now.
pub fn start_in(ns: &str, manifest: &Path, duration: &str, stats: &Path) -> Child {
    let mut cmd = horus(&[
        "run",
        manifest.to_str().expect("utf-8 path"),
        "--duration",
        duration,
    ]);
    cmd.args(["--stats-json", stats.to_str().expect("utf-8 path")])
        .env("HORUS_NAMESPACE", ns);
    spawn(cmd)
}

/// The /dev/shm file of topic `topic` in namespace `ns`.
pub fn segment_path(ns: &str, topic: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm{}", horus_host::shm::shm_name(ns, topic)))
}

/// Waits until `path` exists (at most `limit`).
pub fn wait_for(path: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear within {limit:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pids of the subscribers attached to topic `topic` in namespace `ns` (none if the topic
/// does not exist).
pub fn subscriber_pids(ns: &str, topic: &str) -> Vec<u32> {
    use horus_host::shm::{layout, Segment};
    use std::sync::atomic::Ordering;
    let Ok(seg) = Segment::open_view(&horus_host::shm::shm_name(ns, topic), topic) else {
        return Vec::new();
    };
    (0..layout::MAX_PEERS)
        .map(|i| seg.peer_at(i))
        .filter(|p| p.role.load(Ordering::Relaxed) == layout::ROLE_SUBSCRIBER)
        .map(|p| p.pid.load(Ordering::Acquire))
        .filter(|&pid| pid != 0)
        .collect()
}

/// A `seq-stream` run between two hosts: a `SeqSource` manifest publishing `count` numbered
/// messages of `size` bytes on topic `stream`, and a `SeqCheck` manifest verifying them.
pub struct Stream<'a> {
    /// The topic's QoS on both sides.
    pub qos: &'a str,
    /// Messages to send (and to expect).
    pub count: u64,
    /// Bytes per message.
    pub size: u64,
    /// The topic's `max_size`.
    pub max_size: u64,
    /// More `SeqSource` config (`key = value, …`).
    pub source: &'a str,
    /// More `SeqCheck` config.
    pub check: &'a str,
    /// More keys of the checker's `[[node]]` (e.g. `isolation = "process"`).
    pub check_node: &'a str,
}

impl Stream<'_> {
    /// Writes the two manifests into `s`: (source, checker).
    pub fn manifests(&self, s: &Scratch) -> (PathBuf, PathBuf) {
        let Stream {
            qos,
            count,
            size,
            max_size,
            source,
            check,
            check_node,
        } = self;
        let source = s.write(
            "source.toml",
            &format!(
                "[scheduler]\npreset = \"realtime\"\n\
                 [[node]]\nname = \"source\"\nplugin = \"{{plugin:seq-stream}}\"\ntype = \"SeqSource\"\n\
                 config = {{ count = {count}, size = {size}, {source} }}\n\
                 [[connect]]\nfrom = \"source.out\"\ntopic = \"stream\"\nmax_size = {max_size}\nqos = \"{qos}\"\n"
            ),
        );
        let check = s.write(
            "check.toml",
            &format!(
                "[scheduler]\npreset = \"realtime\"\n\
                 [[node]]\nname = \"check\"\nplugin = \"{{plugin:seq-stream}}\"\ntype = \"SeqCheck\"\n{check_node}\n\
                 config = {{ expect = {count}, {check} }}\n\
                 [[connect]]\ntopic = \"stream\"\nto = \"check.in\"\nmax_size = {max_size}\nqos = \"{qos}\"\n"
            ),
        );
        (source, check)
    }

    /// Runs the checker, then the source, in namespace `ns`; returns (source, checker) stats
    /// and the checker's output, after asserting that the source sent everything.
    pub fn run(&self, ns: &str, s: &Scratch) -> (serde_json::Value, serde_json::Value, Outcome) {
        let (source, check) = self.manifests(s);
        let count = self.count;
        let (src_stats, chk_stats) = (s.path().join("source.json"), s.path().join("check.json"));
        let checker = start_in(ns, &check, "10s", &chk_stats);
        // The checker's own subscriber: in the host, or in its worker process (which attaches
        // after the host made the topic); a reliable topic holds messages only for subscribers
        // already attached.
        let deadline = Instant::now() + Duration::from_secs(20);
        let in_worker = self.check_node.contains("process");
        let subscribed = |pid: u32| match in_worker {
            true => children(checker.id()).contains(&pid),
            false => pid == checker.id(),
        };
        while !subscriber_pids(ns, "stream").into_iter().any(subscribed) {
            assert!(
                Instant::now() < deadline,
                "the checker did not subscribe within 20 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let src = start_in(ns, &source, "8s", &src_stats);
        let src_out = finish(src);
        let chk_out = finish(checker);
        assert!(
            src_out.stderr.contains(&format!("sent {count} of {count}")),
            "source:\n{}\nchecker:\n{}",
            src_out.stderr,
            chk_out.stderr
        );
        let src = node(&read_stats(&src_stats), "source").clone();
        let chk = node(&read_stats(&chk_stats), "check").clone();
        (src, chk, chk_out)
    }
}

/// Waits for a run started by [`start_in`] (at most 90 s) and asserts it exited with 0.
pub fn finish(child: Child) -> Outcome {
    let out = wait(child, Duration::from_secs(90));
    assert_eq!(out.code(), 0, "{}", out.stderr);
    out
}

/// The stats object of node `name`.
pub fn node<'a>(stats: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    stats
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node `{name}` in {stats:?}"))
}

/// A path to the C library mapped into this process: a real shared library that is not a
/// HORUS plugin.
pub fn libc_path() -> PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
        .map(PathBuf::from)
        .expect("libc is mapped")
}

/// `horus apply <args…>` in namespace `ns`, run to completion (at most 60 s).
pub fn apply_in(ns: &str, args: &[&str]) -> Outcome {
    let mut cmd = horus(&[&["apply"], args].concat());
    cmd.env("HORUS_NAMESPACE", ns);
    wait(spawn(cmd), Duration::from_secs(60))
}

/// Replaces `path`'s content as an editor does: the new text written beside it, then renamed
/// over it (a watcher sees one complete new version).
pub fn rewrite(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).expect("write the new version");
    std::fs::rename(&tmp, path).expect("rename it into place");
}

/// `horus run <m> --duration <d> --watch --stats-json <stats>` in namespace `ns`, started now
/// (the hot reload and live apply tests).
pub fn start_watching(m: &Path, ns: &str, duration: &str, stats: &Path) -> Child {
    let mut cmd = horus(&[
        "run",
        m.to_str().expect("utf-8 path"),
        "--duration",
        duration,
        "--watch",
    ]);
    cmd.args(["--stats-json", stats.to_str().expect("utf-8 path")])
        .env("HORUS_NAMESPACE", ns);
    spawn(cmd)
}

/// A test's view of a count a node publishes on a named topic (`u64` values): the hot reload
/// and live apply tests check that every value arrives once, in order, across a swap.
/// A loopback TCP port free now (for a network hub's address).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

/// Waits until something listens on `port` (the hub's first process is up).
pub fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub mod counts {
    use horus_host::shm::{self, Subscriber, TopicSpec};
    use horus_plugin_api::Message;
    use std::time::{Duration, Instant};

    /// A reader of `topic` in namespace `ns`, `reliable` with room for 4096 counts, attached
    /// before the host starts so that nothing is missed.
    /// Asserts that a counter ran (over 50 values) and that `values` are every count once,
    /// in order, from 0: nothing lost, repeated or restarted across a swap or a move.
    pub fn assert_continuous(values: &[u64]) {
        assert!(values.len() > 50, "the counter ran: {values:?}");
        assert_eq!(values[0], 0, "{values:?}");
        for w in values.windows(2) {
            assert_eq!(
                w[1],
                w[0] + 1,
                "a gap, a duplicate or a restart from 0: {values:?}"
            );
        }
    }

    pub fn reader(ns: &str, topic: &str) -> Subscriber {
        let spec = TopicSpec {
            topic: topic.into(),
            type_name: <u64 as Message>::TYPE_NAME.into(),
            type_hash: <u64 as Message>::TYPE_HASH,
            slot_size: 8,
            capacity: 4096,
            single_producer: false,
        };
        shm::subscriber(ns, &spec, 4096, true).expect("attach the test's reader")
    }

    /// Takes every count that has arrived.
    pub fn drain(sub: &mut Subscriber, into: &mut Vec<u64>) {
        let mut buf = Vec::new();
        while sub.try_recv(&mut buf).is_some() {
            into.push(u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")));
        }
    }

    /// Reads (at least once) until `done` holds for what arrived, at most `limit`; returns
    /// whether it did.
    pub fn read_until(
        sub: &mut Subscriber,
        into: &mut Vec<u64>,
        limit: Duration,
        done: impl Fn(&[u64]) -> bool,
    ) -> bool {
        let end = Instant::now() + limit;
        loop {
            drain(sub, into);
            if done(into) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Reads for `d` (at least once), collecting what arrives.
    pub fn read_for(sub: &mut Subscriber, into: &mut Vec<u64>, d: Duration) {
        read_until(sub, into, d, |_| false);
    }
}

/// Children of `pid`, from /proc.
pub fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // Fields after the command name (which may contain spaces): state, ppid, ...
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let ppid = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            found.push(child);
        }
    }
    found
}
