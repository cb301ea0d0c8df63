//! Shared-memory topics between two `horus` processes: delivery on every QoS, a million
//! messages checked for order and content, a publisher killed mid-stream, garbage in a segment,
//! and a type mismatch. Every test uses its own HORUS_NAMESPACE, and checks that no segment is
//! left behind.

use horus_e2e::{
    count as u, finish, horus, node, read_stats, segment_path, spawn, start_in, wait, wait_for, Outcome,
    Scratch,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A namespace of its own for one test.
fn namespace(test: &str) -> String {
    format!("e2e-{}-{test}", std::process::id())
}

#[test]
fn two_manifests_in_two_processes_exchange_every_sample() {
    let ns = namespace("demo");
    let s = Scratch::new();
    let root = horus_e2e::repo_root();
    let (sub_stats, pub_stats) = (s.path().join("sub.json"), s.path().join("pub.json"));
    let sub = start_in(
        &ns,
        &root.join("manifests/attitude-subscriber.toml"),
        "4s",
        &sub_stats,
    );
    wait_for(&segment_path(&ns, "demo/imu"), Duration::from_secs(20));
    let publ = start_in(&ns, &root.join("manifests/imu-publisher.toml"), "1s", &pub_stats);
    finish(publ);
    let out = finish(sub);
    let (sub, publ) = (read_stats(&sub_stats), read_stats(&pub_stats));
    let sent = u(&node(&publ, "imu")["messages_sent"]);
    assert!(sent >= 50, "the publisher ran: {sent}");
    let filter = node(&sub, "filter");
    assert_eq!(
        u(&filter["messages_received"]),
        sent,
        "reliable: every sample arrived"
    );
    assert_eq!(filter["topics"][0]["topic"], "demo/imu");
    assert_eq!(u(&node(&sub, "telemetry")["messages_received"]), sent);
    assert!(out.stderr.contains("received"), "{}", out.stderr);
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

fn streaming<'a>(qos: &'a str, reliable: &'a str, count: u64) -> horus_e2e::Stream<'a> {
    horus_e2e::Stream {
        qos,
        count,
        size: 48,
        max_size: 64,
        source: "burst = 20000",
        check: reliable,
        check_node: "",
    }
}

fn stream_manifests(s: &Scratch, qos: &str, reliable: bool, count: u64) -> (PathBuf, PathBuf) {
    streaming(qos, &format!("reliable = {reliable}"), count).manifests(s)
}

/// Runs the checker, then the source, in namespace `ns`; returns (source, checker) stats.
fn stream(
    ns: &str,
    s: &Scratch,
    qos: &str,
    reliable: bool,
    count: u64,
) -> (serde_json::Value, serde_json::Value, Outcome) {
    streaming(qos, &format!("reliable = {reliable}"), count).run(ns, s)
}

#[test]
fn a_million_messages_on_reliable_arrive_complete_in_order_intact() {
    let ns = namespace("reliable");
    let s = Scratch::new();
    let (src, chk, out) = stream(&ns, &s, "reliable(8192)", true, 1_000_000);
    assert_eq!(u(&src["messages_sent"]), 1_000_000);
    assert_eq!(
        u(&chk["total_failures"]),
        0,
        "no corrupt, lost or reordered message: {chk}"
    );
    assert_eq!(u(&chk["messages_received"]), 1_000_000);
    assert_eq!(u(&chk["dropped"]), 0);
    assert!(
        out.stderr.contains("complete: 1000000 received, 0 dropped"),
        "{}",
        out.stderr
    );
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn a_million_messages_on_keep_last_are_intact_and_drops_are_counted() {
    let ns = namespace("keeplast");
    let s = Scratch::new();
    let (src, chk, out) = stream(&ns, &s, "keep_last(64)", false, 1_000_000);
    assert_eq!(u(&src["messages_sent"]), 1_000_000);
    assert_eq!(
        u(&chk["total_failures"]),
        0,
        "no corrupt or reordered message: {chk}"
    );
    let received = u(&chk["messages_received"]);
    let dropped = u(&chk["topics"][0]["dropped"]);
    assert_eq!(
        received + dropped,
        1_000_000,
        "every message received or counted as dropped: {chk}"
    );
    assert!(received > 0);
    assert!(
        out.stderr.contains(&format!("{dropped} dropped")),
        "the checker saw the same gaps:\n{}",
        out.stderr
    );
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn a_publisher_killed_mid_stream_neither_hangs_nor_crashes_the_subscriber() {
    let ns = namespace("sigkill");
    let s = Scratch::new();
    // A stream that would take far longer than the test: the publisher dies in the middle.
    let (source, check) = stream_manifests(&s, "keep_last(64)", false, 1_000_000_000);
    let (src_stats, chk_stats) = (s.path().join("source.json"), s.path().join("check.json"));
    let checker = start_in(&ns, &check, "4s", &chk_stats);
    wait_for(&segment_path(&ns, "stream"), Duration::from_secs(20));
    let mut src = start_in(&ns, &source, "60s", &src_stats);
    std::thread::sleep(Duration::from_millis(1200));
    src.kill().expect("SIGKILL the publisher");
    let _ = src.wait();
    let started = Instant::now();
    let out = finish(checker);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the subscriber stopped on time"
    );
    let chk = node(&read_stats(&chk_stats), "check").clone();
    assert!(u(&chk["messages_received"]) > 0, "{chk}");
    assert_eq!(
        u(&chk["total_failures"]),
        0,
        "no torn message from the dying publisher: {chk}"
    );
    assert!(out.stderr.contains("checked "), "{}", out.stderr);
    // The subscriber, last alive, removed the segment although the publisher never detached.
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn a_segment_left_by_a_crashed_process_is_reclaimed() {
    let ns = namespace("reclaim");
    let s = Scratch::new();
    let (source, check) = stream_manifests(&s, "keep_last(64)", false, 1_000_000_000);
    let mut src = start_in(&ns, &source, "60s", &s.path().join("a.json"));
    let seg = segment_path(&ns, "stream");
    wait_for(&seg, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    src.kill().expect("SIGKILL");
    let _ = src.wait();
    assert!(seg.exists(), "a crashed process leaves its segment");
    let stats = s.path().join("b.json");
    let out = finish(start_in(&ns, &check, "1s", &stats));
    assert!(
        out.stderr
            .contains("reclaimed shared memory left by crashed processes"),
        "{}",
        out.stderr
    );
    assert_eq!(u(&node(&read_stats(&stats), "check")["total_failures"]), 0);
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn garbage_in_a_segment_is_refused_with_an_error() {
    let ns = namespace("garbage");
    let s = Scratch::new();
    let (_, check) = stream_manifests(&s, "keep_last(64)", false, 10);
    let seg = segment_path(&ns, "stream");
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let junk: Vec<u8> = (0..65536)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u8
        })
        .collect();
    std::fs::write(&seg, junk).unwrap();
    let mut cmd = horus(&["run", check.to_str().unwrap(), "--duration", "1s"]);
    cmd.env("HORUS_NAMESPACE", &ns);
    let out = wait(spawn(cmd), Duration::from_secs(30));
    let _ = std::fs::remove_file(&seg);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(out.stderr.contains("node `check`, port `in`"), "{}", out.stderr);
    assert!(
        out.stderr.contains("is not a valid HORUS topic segment"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("rm /dev/shm"),
        "says how to fix it: {}",
        out.stderr
    );
}

#[test]
fn publisher_and_subscriber_of_different_types_are_refused() {
    let ns = namespace("types");
    let s = Scratch::new();
    let publisher = s.write(
        "pub.toml",
        "[[node]]\nname = \"imu\"\nplugin = \"{plugin:imu-sim}\"\n[[connect]]\nfrom = \"imu.imu\"\ntopic = \"robot/state\"\n",
    );
    let subscriber = s.write(
        "sub.toml",
        "[[node]]\nname = \"sink\"\nplugin = \"{plugin:telemetry-sink}\"\n[[connect]]\ntopic = \"robot/state\"\nto = \"sink.attitude\"\n",
    );
    let publ = start_in(&ns, &publisher, "20s", &s.path().join("pub.json"));
    wait_for(&segment_path(&ns, "robot/state"), Duration::from_secs(20));
    let mut cmd = horus(&["run", subscriber.to_str().unwrap(), "--duration", "1s"]);
    cmd.env("HORUS_NAMESPACE", &ns);
    let out = wait(spawn(cmd), Duration::from_secs(30));
    horus_e2e::interrupt(&publ);
    finish(publ);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("topic `robot/state` carries `Imu`, but this endpoint uses `Attitude`"),
        "{}",
        out.stderr
    );
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue 13: a named topic whose name reads like a private topic of a dead host (`h<pid>_…`)
/// survives another `horus run` in the namespace. The startup sweep of the publisher's run used
/// to unlink it under the live subscriber, which then received 0 of 500.
#[test]
fn a_named_topic_that_looks_private_survives_another_run() {
    let ns = namespace("lookalike");
    let s = Scratch::new();
    let (source, check) = stream_manifests(&s, "reliable(512)", true, 500);
    for path in [&source, &check] {
        let text = std::fs::read_to_string(path).unwrap();
        std::fs::write(
            path,
            text.replace("topic = \"stream\"", "topic = \"h99999999_cam\""),
        )
        .unwrap();
    }
    let (src_stats, chk_stats) = (s.path().join("source.json"), s.path().join("check.json"));
    let checker = start_in(&ns, &check, "6s", &chk_stats);
    wait_for(&segment_path(&ns, "h99999999_cam"), Duration::from_secs(20));
    let src_out = finish(start_in(&ns, &source, "2s", &src_stats));
    assert!(src_out.stderr.contains("sent 500 of 500"), "{}", src_out.stderr);
    finish(checker);
    let chk = node(&read_stats(&chk_stats), "check").clone();
    assert_eq!(u(&chk["messages_received"]), 500, "{chk}");
    assert_eq!(u(&chk["total_failures"]), 0, "{chk}");
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

/// Runs `horus <args>` in a mount namespace of its own whose /dev/shm is a 64 MiB tmpfs
/// (Docker's default), then lists what it left there. `None` when this machine cannot make
/// such a namespace (not root, or no user namespaces).
fn in_small_dev_shm(ns: &str, args: &[&str]) -> Option<(Outcome, String)> {
    let probe = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", "mount -t tmpfs -o size=64m none /dev/shm"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: `unshare -rm` with a tmpfs mount is not available here");
        return None;
    }
    let script = "mount -t tmpfs -o size=64m none /dev/shm || exit 99; \"$@\"; rc=$?; \
                  echo \"left: $(ls -A /dev/shm | tr '\\n' ' ')\" >&2; exit $rc";
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-rm", "sh", "-c", script, "sh"])
        .arg(horus_e2e::horus_bin())
        .args(args)
        .env("HORUS_NAMESPACE", ns)
        .env("RUST_LOG", "info")
        .env_remove("RUST_BACKTRACE");
    let out = wait(spawn(cmd), Duration::from_secs(60));
    let left = out
        .stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("left: "))
        .unwrap_or("?")
        .trim()
        .to_owned();
    Some((out, left))
}

/// Issue 13: a topic that does not fit in /dev/shm used to pass `horus check`, and `horus run`
/// died with SIGBUS (exit 135), leaving a 128 MiB sparse segment. Now `check` warns and `run`
/// refuses the topic at bind time with H0029, exit 2, leaving nothing.
#[test]
fn a_topic_too_big_for_dev_shm_is_h0029_not_sigbus() {
    let ns = namespace("noshm");
    let s = Scratch::new();
    // 1 Mi slots of 128 bytes: 128 MiB of ring in a 64 MiB /dev/shm.
    let (_, check) = stream_manifests(&s, "reliable(1048576)", true, 10);
    let manifest = check.to_str().unwrap();
    let Some((out, left)) = in_small_dev_shm(&ns, &["check", manifest]) else {
        return;
    };
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(out.stderr.contains("warning[H0029]"), "{}", out.stderr);
    assert!(out.stderr.contains("64.0 MiB free"), "{}", out.stderr);
    assert_eq!(left, "", "check creates nothing");
    let (out, left) = in_small_dev_shm(&ns, &["run", manifest, "--duration", "1s"]).unwrap();
    assert_eq!(out.code(), 2, "{}", out.stderr);
    for part in [
        "error[H0029]",
        "node `check`: port `in`: topic `stream`",
        "topic `stream` needs 128.0 MiB",
        "/dev/shm has 64.0 MiB free",
        "smaller `max_size`",
        "see: docs/errors/H0029.md",
    ] {
        assert!(out.stderr.contains(part), "`{part}` in:\n{}", out.stderr);
    }
    assert_eq!(left, "", "nothing left in /dev/shm");
}

/// A `process`-isolated reader's input exists (the host made it) before its worker process
/// has attached: a publisher that starts sending then loses nothing on a reliable topic. The
/// host holds the input until the worker reads on from where its holder stood.
#[test]
fn a_worker_process_reads_what_was_sent_while_it_started() {
    use horus_host::shm::{self, SendError};
    let ns = namespace("worker-start");
    let s = Scratch::new();
    let count = 2000u64;
    let (_, check) = horus_e2e::Stream {
        qos: "reliable(64)",
        count,
        size: 8,
        max_size: 64,
        source: "",
        check: "reliable = true",
        check_node: "isolation = \"process\"",
    }
    .manifests(&s);
    let stats = s.path().join("check.json");
    let checker = start_in(&ns, &check, "6s", &stats);
    // Attach the moment the topic appears, and send at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let spec = loop {
        if let Ok(Some(spec)) = shm::peek(&ns, "stream") {
            break spec;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the checker's host did not make the topic"
        );
        std::hint::spin_loop();
    };
    let mut publ = shm::publisher(&ns, &spec).expect("publisher");
    for n in 0..count {
        loop {
            match publ.send(&n.to_le_bytes()) {
                Ok(()) => break,
                Err(SendError::Full) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the checker stopped reading at {n}"
                    );
                    std::thread::yield_now();
                }
                Err(e) => panic!("message {n}: {e}"),
            }
        }
    }
    let out = finish(checker);
    drop(publ);
    let chk = node(&read_stats(&stats), "check").clone();
    assert_eq!(u(&chk["total_failures"]), 0, "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("complete: {count} received, 0 dropped")),
        "{}",
        out.stderr
    );
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}
