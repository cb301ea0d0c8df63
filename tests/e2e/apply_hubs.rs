//! Live apply of network hubs (issue 16): a tcp hub added to a running host's manifest, with a
//! topic its node publishes moving under it, reaches a second host over the hub; removed
//! again, the topic goes back to local and the hub is gone from `horus stats` and the final
//! status; a hub that cannot open fails the apply and changes nothing. The publishing node is
//! never replaced. On 127.0.0.1, each test on free ports of its own; needs the `network`
//! feature.

use horus_e2e::{
    apply_in, count as u, finish, free_port, horus, node, plugin, read_stats, rewrite, shm_leftovers, spawn,
    start_in, start_watching, wait, wait_listening, Scratch,
};
use std::time::{Duration, Instant};

fn namespace(test: &str) -> String {
    format!("e2e-{}-applyhub-{test}", std::process::id())
}

fn hub(port: u16) -> String {
    format!("[hub.nh]\nmode = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n\n")
}

/// `SeqSource` publishing numbered messages on topic `nh/seq` (10 a tick at 100 Hz), under
/// the tcp hub `hubs` declares, or local when it declares none.
fn source(hubs: &str) -> String {
    source_on(hubs, "nh/seq")
}

/// [`source`] on `topic`.
fn source_on(hubs: &str, topic: &str) -> String {
    let lib = plugin("seq-stream");
    format!(
        "[scheduler]\ntick_rate = 100\n\n{hubs}\
         [[node]]\nname = \"source\"\nplugin = \"{}\"\ntype = \"SeqSource\"\n\
         config = {{ count = 1000000000, burst = 10 }}\n\n\
         [[connect]]\nfrom = \"source.out\"\ntopic = \"{topic}\"\nmax_size = 64\n",
        lib.display()
    )
}

/// The remote host's manifest: a `SeqCheck` on `nh/seq` over the hub at `port`. It takes gaps
/// (keep_last) but fails on a message corrupt, repeated or out of order.
fn remote(s: &Scratch, port: u16) -> std::path::PathBuf {
    let lib = plugin("seq-stream");
    s.write(
        "remote.toml",
        &format!(
            "[scheduler]\ntick_rate = 100\n\n{}\
             [[node]]\nname = \"check\"\nplugin = \"{}\"\ntype = \"SeqCheck\"\n\
             config = {{ reliable = false }}\n\n\
             [[connect]]\ntopic = \"nh/seq\"\nto = \"check.in\"\nmax_size = 64\nqos = \"keep_last(1024)\"\n",
            hub(port),
            lib.display()
        ),
    )
}

/// `horus stats` of namespace `ns`, as text.
fn stats(ns: &str) -> String {
    let mut cmd = horus(&["stats"]);
    cmd.env("HORUS_NAMESPACE", ns);
    wait(spawn(cmd), Duration::from_secs(10)).stdout
}

/// Polls `horus stats` of `ns` until `f` holds (at most 15 s): the last output.
fn stats_until(ns: &str, what: &str, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = stats(ns);
        if f(&out) {
            return out;
        }
        assert!(Instant::now() < deadline, "{what}; `horus stats` says:\n{out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The messages hub `nh`'s line of `text` says were received.
fn received(text: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.contains("hub `nh` ("))
        .unwrap_or_else(|| panic!("no hub line in:\n{text}"));
    let after = &line[line.find("received ").expect("received") + "received ".len()..];
    after.split_whitespace().next().unwrap().parse().unwrap()
}

/// Issue #16: a hub added under `--watch` takes the running source's topic onto the network,
/// where a second host's `SeqCheck` gets it intact and in order; the hub removed again, the
/// topic is local, the remote gets nothing more, and the hub is gone from `horus stats` and
/// the final status. The source runs on untouched throughout (generation 1, no restart, no
/// failure, ticking all along).
#[test]
fn a_hub_added_and_removed_live_takes_a_topic_onto_the_network_and_back() {
    let (ns_a, ns_b) = (namespace("move-a"), namespace("move-b"));
    let s = Scratch::new();
    let port = free_port();
    // The remote host listens on the hub's address.
    let remote = remote(&s, port);
    let remote_stats = s.path().join("remote.json");
    let b = start_in(&ns_b, &remote, "14s", &remote_stats);
    wait_listening(port);

    let m = s.write("robot.toml", &source(""));
    let a_stats = s.path().join("robot.json");
    let a = start_watching(&m, &ns_a, "10s", &a_stats);
    std::thread::sleep(Duration::from_millis(1500));
    rewrite(&m, &source(&hub(port)));
    let on = stats_until(&ns_a, "the added hub connected and sending", |out| {
        out.contains(&format!(
            "hub `nh` (tcp/127.0.0.1:{port}, connect): connected, 1 peer(s); sent "
        )) && !out.contains("; sent 0 (")
    });
    assert!(!on.contains("sent 0 ("), "{on}");
    let crossing = stats_until(&ns_b, "messages over the hub", |out| received(out) > 100);
    eprintln!("remote: {crossing}");

    rewrite(&m, &source(""));
    stats_until(&ns_a, "the removed hub gone", |out| !out.contains("hub `nh`"));
    // What the closing bridge still sent has arrived; nothing comes after.
    std::thread::sleep(Duration::from_millis(500));
    let then = received(&stats(&ns_b));
    std::thread::sleep(Duration::from_millis(1500));
    let later = received(&stats(&ns_b));
    assert_eq!(then, later, "the remote got messages after the hub was removed");

    let a_out = finish(a);
    let log = &a_out.stderr;
    assert!(log.contains("apply: +0 nodes, -0, ~0 changed, +1 hub"), "{log}");
    assert!(log.contains("apply: +0 nodes, -0, ~0 changed, -1 hub"), "{log}");
    assert!(
        !log.contains("hub `nh` ("),
        "no final status of a removed hub:\n{log}"
    );
    let src = node(&read_stats(&a_stats), "source").clone();
    assert_eq!(src["generation"], 1, "{src}");
    assert_eq!(u(&src["restarts"]), 0, "{src}");
    assert_eq!(u(&src["total_failures"]), 0, "{src}");
    // About 100 Hz for 10 s (a lower bound only): it ticked on through both applies.
    assert!(u(&src["total_ticks"]) > 700, "{src}");
    // Its count went on: every tick's burst of 10 was sent, to whichever ring it published on.
    assert!(u(&src["messages_sent"]) > 7000, "{src}");

    let b_out = finish(b);
    let chk = node(&read_stats(&remote_stats), "check").clone();
    assert_eq!(
        u(&chk["total_failures"]),
        0,
        "intact and in order: {chk}\n{}",
        b_out.stderr
    );
    assert_eq!(u(&chk["messages_received"]), later, "{chk}");
    for ns in [&ns_a, &ns_b] {
        assert_eq!(shm_leftovers(ns), Vec::<String>::new());
    }
}

/// Issue #16: a hub added on a port held by something that is not a hub cannot open: the apply
/// fails within the hub's connect timeout, names the hub, and nothing changes (the same
/// manifest as before is no change; no hub is listed; the source runs on untouched).
#[test]
fn a_hub_that_cannot_open_fails_the_apply_and_changes_nothing() {
    let ns = namespace("fail");
    let s = Scratch::new();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let m = s.write("robot.toml", &source(""));
    let mm = m.to_str().unwrap();
    let stats_file = s.path().join("robot.json");
    let host = start_in(&ns, &m, "8s", &stats_file);
    std::thread::sleep(Duration::from_millis(1200));

    rewrite(&m, &source(&hub(port)));
    let started = Instant::now();
    let failed = apply_in(&ns, &[mm]);
    assert_eq!(failed.code(), 1, "{failed:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let text = format!("{}{}", failed.stdout, failed.stderr);
    assert!(text.contains("apply failed, nothing changed"), "{text}");
    assert!(text.contains("network hub `nh`"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!stats(&ns).contains("hub `nh`"));

    rewrite(&m, &source(""));
    let same = apply_in(&ns, &[mm]);
    assert_eq!(same.code(), 0, "{same:?}");
    assert!(
        format!("{}{}", same.stdout, same.stderr).contains("apply: no changes"),
        "{same:?}"
    );
    drop(held);

    let out = finish(host);
    assert!(!out.stderr.contains("hub `nh` ("), "{}", out.stderr);
    let src = node(&read_stats(&stats_file), "source").clone();
    assert_eq!(src["generation"], 1, "{src}");
    assert_eq!(u(&src["total_failures"]), 0, "{src}");
    assert!(u(&src["total_ticks"]) > 500, "{src}");
    assert_eq!(shm_leftovers(&ns), Vec::<String>::new());
}

/// Issue #16: a topic moved onto a hub the host runs already, and off it again: the hub keeps
/// its session throughout (one peer connection in the log, still listening at the end), and
/// the remote host gets the topic only while it is under the hub.
#[test]
fn a_topic_moved_onto_a_running_hub_and_off_it_keeps_the_session() {
    let (ns_a, ns_b) = (namespace("keep-a"), namespace("keep-b"));
    let s = Scratch::new();
    let port = free_port();
    let m = s.write("robot.toml", &source_on(&hub(port), "seq"));
    let a_stats = s.path().join("robot.json");
    let a = start_watching(&m, &ns_a, "9s", &a_stats);
    wait_listening(port);
    let remote_stats = s.path().join("remote.json");
    let b = start_in(&ns_b, &remote(&s, port), "11s", &remote_stats);
    stats_until(&ns_a, "the remote connected", |out| {
        out.contains(": connected, 1 peer(s); sent 0 (")
    });

    rewrite(&m, &source_on(&hub(port), "nh/seq"));
    stats_until(&ns_b, "messages over the hub", |out| received(out) > 100);
    rewrite(&m, &source_on(&hub(port), "seq"));
    stats_until(&ns_a, "the topic off the hub", |out| {
        let before = received_by_remote(&ns_b);
        std::thread::sleep(Duration::from_millis(700));
        out.contains("hub `nh` (") && received_by_remote(&ns_b) == before
    });

    let a_out = finish(a);
    let log = &a_out.stderr;
    assert!(log.contains("+1 network topic"), "{log}");
    assert!(log.contains("-1 network topic"), "{log}");
    assert_eq!(
        log.matches("peer connected").count(),
        1,
        "one session all along:\n{log}"
    );
    assert!(
        log.contains(&format!("hub `nh` (tcp/127.0.0.1:{port}, listen): ")),
        "{log}"
    );
    let src = node(&read_stats(&a_stats), "source").clone();
    assert_eq!(src["generation"], 1, "{src}");
    assert_eq!(u(&src["total_failures"]), 0, "{src}");
    let b_out = finish(b);
    let chk = node(&read_stats(&remote_stats), "check").clone();
    assert_eq!(
        u(&chk["total_failures"]),
        0,
        "intact and in order: {chk}\n{}",
        b_out.stderr
    );
    assert!(u(&chk["messages_received"]) > 100, "{chk}");
    for ns in [&ns_a, &ns_b] {
        assert_eq!(shm_leftovers(ns), Vec::<String>::new());
    }
}

/// What the remote host's hub line says it received.
fn received_by_remote(ns: &str) -> u64 {
    received(&stats(ns))
}
