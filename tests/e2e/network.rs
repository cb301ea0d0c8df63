//! Network hubs between processes on 127.0.0.1, each test on a free port of its own: two
//! `horus` hosts, a host and a Python script, a subscriber killed and restarted, and the errors
//! of a bad address and a port held by something else. Needs the `network` feature (the
//! binary and the Python package are built with it by scripts/test.sh).

use horus_e2e::{
    count as u, finish, free_port, horus, node, read_stats, repo_root, spawn, start_in, wait, wait_listening,
    Scratch,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn namespace(test: &str) -> String {
    format!("e2e-{}-net-{test}", std::process::id())
}

fn hub(port: u16) -> String {
    format!("[hub.nh]\nmode = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n")
}

fn source(s: &Scratch, port: u16, topic: &str, count: u64) -> PathBuf {
    s.write(
        "source.toml",
        &format!(
            "[scheduler]\npreset = \"high_performance\"\n{}\
             [[node]]\nname = \"source\"\nplugin = \"{{plugin:seq-stream}}\"\ntype = \"SeqSource\"\n\
             config = {{ count = {count}, burst = 200, size = 24 }}\n\
             [[connect]]\nfrom = \"source.out\"\ntopic = \"{topic}\"\nmax_size = 64\nqos = \"reliable(1024)\"\n",
            hub(port)
        ),
    )
}

fn checker(s: &Scratch, name: &str, port: u16, topic: &str, count: u64, reliable: bool) -> PathBuf {
    s.write(
        name,
        &format!(
            "[scheduler]\npreset = \"high_performance\"\n{}\
             [[node]]\nname = \"check\"\nplugin = \"{{plugin:seq-stream}}\"\ntype = \"SeqCheck\"\n\
             config = {{ expect = {count}, reliable = {reliable} }}\n\
             [[connect]]\ntopic = \"{topic}\"\nto = \"check.in\"\nmax_size = 64\nqos = \"reliable(1024)\"\n",
            hub(port)
        ),
    )
}

#[test]
fn two_hosts_exchange_ten_thousand_messages_over_a_tcp_hub() {
    let (ns_a, ns_b) = (namespace("rr-a"), namespace("rr-b"));
    let s = Scratch::new();
    let port = free_port();
    let (chk_stats, src_stats) = (s.path().join("check.json"), s.path().join("source.json"));
    // Two namespaces: the messages can only have crossed over the network.
    let chk = start_in(
        &ns_a,
        &checker(&s, "check.toml", port, "nh/seq", 10_000, true),
        "12s",
        &chk_stats,
    );
    wait_listening(port);
    let src = start_in(&ns_b, &source(&s, port, "nh/seq", 10_000), "6s", &src_stats);
    let src_out = finish(src);
    let chk_out = finish(chk);
    assert!(
        src_out.stderr.contains("sent 10000 of 10000"),
        "{}",
        src_out.stderr
    );
    assert!(
        chk_out.stderr.contains("complete: 10000 received, 0 dropped"),
        "{}",
        chk_out.stderr
    );
    let chk = node(&read_stats(&chk_stats), "check").clone();
    assert_eq!(u(&chk["total_failures"]), 0, "{chk}");
    assert_eq!(u(&chk["messages_received"]), 10_000);
    // Each host reports its hub: its role, and what crossed.
    let src_hub = format!("hub `nh` (tcp/127.0.0.1:{port}, connect): ");
    let chk_hub = format!("hub `nh` (tcp/127.0.0.1:{port}, listen): ");
    assert!(
        src_out.stderr.contains(&src_hub)
            && src_out
                .stderr
                .contains("; sent 10000 (240000 B), received 0 (0 B), dropped 0, errors 0"),
        "{}",
        src_out.stderr
    );
    assert!(
        chk_out.stderr.contains(&chk_hub)
            && chk_out
                .stderr
                .contains("; sent 0 (0 B), received 10000 (240000 B), dropped 0, errors 0"),
        "{}",
        chk_out.stderr
    );
    for ns in [&ns_a, &ns_b] {
        assert_eq!(horus_e2e::shm_leftovers(ns), Vec::<String>::new());
    }
}

#[test]
fn a_killed_and_restarted_subscriber_is_reported_and_picked_up_again() {
    let (ns_p, ns_s) = (namespace("rs-p"), namespace("rs-s"));
    let s = Scratch::new();
    let port = free_port();
    // An endless stream from the listening host.
    let src_stats = s.path().join("source.json");
    let src = start_in(
        &ns_p,
        &source(&s, port, "nh/seq", 1_000_000_000),
        "14s",
        &src_stats,
    );
    wait_listening(port);
    let check = checker(&s, "check.toml", port, "nh/seq", 1_000_000_000, false);
    let mut first = start_in(&ns_s, &check, "30s", &s.path().join("c1.json"));
    std::thread::sleep(Duration::from_secs(3));
    first.kill().expect("SIGKILL the subscriber");
    let _ = first.wait();
    std::thread::sleep(Duration::from_secs(1));
    let c2 = s.path().join("c2.json");
    let second = start_in(&ns_s, &check, "3s", &c2);
    // The publisher's live state: `horus stats` shows its hub connected again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let live = loop {
        let mut cmd = horus(&["stats"]);
        cmd.env("HORUS_NAMESPACE", &ns_p);
        let out = wait(spawn(cmd), Duration::from_secs(10));
        if out.stdout.contains(": connected, 1 peer(s); sent ") || Instant::now() > deadline {
            break out.stdout;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let listening = format!("hub `nh` (tcp/127.0.0.1:{port}, listen): connected, 1 peer(s); sent ");
    assert!(
        live.contains(&listening) && live.contains("last error: the last peer on"),
        "{live}"
    );
    let second_out = finish(second);
    let src_out = finish(src);
    let log = &src_out.stderr;
    let connected = log.find("peer connected").expect(log);
    let lost = log.find("went away").expect(log);
    let again = log[lost..].find("peer connected").map(|i| i + lost).expect(log);
    assert!(
        connected < lost && lost < again,
        "connected, lost, connected again:\n{log}"
    );
    // Publishing never failed while the subscriber was away.
    let src = node(&read_stats(&src_stats), "source").clone();
    assert_eq!(u(&src["total_failures"]), 0, "{src}");
    let chk = node(&read_stats(&c2), "check").clone();
    assert!(
        u(&chk["messages_received"]) > 1000,
        "the new subscriber got the stream: {chk}"
    );
    assert_eq!(
        u(&chk["total_failures"]),
        0,
        "intact and in order: {chk}\n{}",
        second_out.stderr
    );
    for ns in [&ns_p, &ns_s] {
        assert_eq!(horus_e2e::shm_leftovers(ns), Vec::<String>::new());
    }
}

fn python() -> PathBuf {
    let py = repo_root().join(".venv/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run ./scripts/python-env.sh",
        py.display()
    );
    py
}

fn spawn_python(script: &Path, args: &[&str]) -> Child {
    let mut cmd = Command::new(python());
    cmd.arg(script).args(args);
    spawn(cmd)
}

const PY_RECV: &str = r#"
import sys, time, horus
hub = horus.Hub.tcp(sys.argv[1], "nh")
link = hub.create_link("seq", "rust")
want, got, nxt = int(sys.argv[2]), 0, 0
end = time.monotonic() + 60
while got < want and time.monotonic() < end:
    m = link.recv()
    if m is None:
        time.sleep(0.0002)
        continue
    n = int.from_bytes(m[:8], "little")
    assert n == nxt, f"message {n} after {nxt - 1}"
    assert all(m[i] == (n * 31 + i * 7) & 0xFF for i in range(8, len(m))), f"message {n} corrupt"
    nxt, got = n + 1, got + 1
print("received", got, "dropped", link.get_metrics()["dropped"], flush=True)
"#;

const PY_SEND: &str = r#"
import sys, time, horus
hub = horus.Hub.tcp(sys.argv[1], "nh")
end = time.monotonic() + 20
while not hub.get_connection_state()["matched"]:
    assert time.monotonic() < end, hub.get_connection_state()
    time.sleep(0.01)
for n in range(int(sys.argv[2])):
    hub.send(n.to_bytes(8, "little") + bytes((n * 31 + i * 7) & 0xFF for i in range(8, 24)))
    if n % 500 == 499:
        time.sleep(0.002)
print("sent", hub.get_metrics()["messages_sent"], flush=True)
time.sleep(0.5)
"#;

#[test]
fn rust_and_python_exchange_ten_thousand_messages_both_ways() {
    let s = Scratch::new();
    let (recv, send) = (s.write("recv.py", PY_RECV), s.write("send.py", PY_SEND));

    // Rust → Python: the Python script listens, the host connects and publishes `nh/seq`,
    // which the script reads through `hub.create_link("seq", …)`.
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let py = spawn_python(&recv, &[&address, "10000"]);
    wait_listening(port);
    let ns = namespace("rp");
    let src = start_in(
        &ns,
        &source(&s, port, "nh/seq", 10_000),
        "6s",
        &s.path().join("s.json"),
    );
    let src_out = finish(src);
    let py_out = wait(py, Duration::from_secs(60));
    assert_eq!(py_out.code(), 0, "{}", py_out.stderr);
    assert!(
        py_out.stdout.contains("received 10000 dropped 0"),
        "{}\n{}",
        py_out.stdout,
        src_out.stderr
    );

    // Python → Rust: the host listens; the script sends `bytes` on the hub's own stream (key
    // `nh`), which a Rust `Vec<u8>` input reads.
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let stats = s.path().join("c.json");
    let chk = start_in(
        &ns,
        &checker(&s, "c.toml", port, "nh", 10_000, true),
        "10s",
        &stats,
    );
    wait_listening(port);
    let py = spawn_python(&send, &[&address, "10000"]);
    let py_out = wait(py, Duration::from_secs(60));
    assert_eq!(py_out.code(), 0, "{}", py_out.stderr);
    assert!(py_out.stdout.contains("sent 10000"), "{}", py_out.stdout);
    let chk_out = finish(chk);
    assert!(
        chk_out.stderr.contains("complete: 10000 received, 0 dropped"),
        "{}",
        chk_out.stderr
    );
    assert_eq!(u(&node(&read_stats(&stats), "check")["total_failures"]), 0);
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn bad_addresses_and_taken_ports_are_clear_errors() {
    let s = Scratch::new();
    let m = s.write(
        "bad.toml",
        "[hub.nh]\nmode = \"tcp\"\naddress = \"localhost\"\n\n[hub.other]\nmode = \"udp\"\n",
    );
    let out = horus_e2e::run(&["check", m.to_str().unwrap()]);
    assert_eq!(out.code(), 2, "{}", out.stderr);
    for want in [
        "H0006",
        "hub `nh`: address `localhost` is not `host:port`",
        "hub `other`: unknown mode `udp`",
        "bad.toml:3",
    ] {
        assert!(out.stderr.contains(want), "missing {want:?}:\n{}", out.stderr);
    }
    let m = s.write(
        "typo.toml",
        "[hub.nh]\nmode = \"tcp\"\nadress = \"127.0.0.1:1\"\n",
    );
    let out = horus_e2e::run(&["check", m.to_str().unwrap()]);
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr.contains("H0003") && out.stderr.contains("did you mean `address`"),
        "{}",
        out.stderr
    );

    // A port held by a program that is not a hub: the run does not start.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = squatter.local_addr().unwrap().port();
    let m = checker(&s, "taken.toml", port, "nh/seq", 1, true);
    let ns = namespace("taken");
    let mut cmd = horus(&["run", m.to_str().unwrap(), "--duration", "5s"]);
    cmd.env("HORUS_NAMESPACE", &ns);
    let out = wait(spawn(cmd), Duration::from_secs(60));
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("H0027")
            && out.stderr.contains(&format!("cannot listen on 127.0.0.1:{port}"))
            && out.stderr.contains("Address already in use"),
        "{}",
        out.stderr
    );
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}
