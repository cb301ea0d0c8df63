//! `horus topic list | echo | hz` against a running demo (issue 19): the connections and a
//! named topic are listed with their type and rate, messages decoded, the rate within 10 % of
//! the demo's 100 Hz; a wrong name is exit code 2.

use horus_e2e::{finish, horus, read_stats, repo_root, start_in, wait, Scratch};
use serde_json::Value;
use std::time::{Duration, Instant};

fn topic(ns: &str, args: &[&str]) -> horus_e2e::Outcome {
    let mut all = vec!["topic"];
    all.extend_from_slice(args);
    let mut cmd = horus(&all);
    cmd.env("HORUS_NAMESPACE", ns);
    wait(horus_e2e::spawn(cmd), Duration::from_secs(30))
}

fn lines(out: &horus_e2e::Outcome) -> Vec<Value> {
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn list_echo_and_hz_look_inside_the_running_demo() {
    let ns = format!("e2e-{}-topics", std::process::id());
    let s = Scratch::new();
    let root = repo_root();
    let (demo_stats, pub_stats) = (s.path().join("demo.json"), s.path().join("pub.json"));
    let demo = start_in(&ns, &root.join("manifests/demo.toml"), "12s", &demo_stats);
    let publ = start_in(&ns, &root.join("manifests/imu-publisher.toml"), "12s", &pub_stats);
    let deadline = Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let out = topic(&ns, &["list", "--json"]);
        assert_eq!(out.code(), 0, "{out:?}");
        let rows: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
        let ready = |t: &str| {
            rows.iter()
                .any(|r| r["topic"] == t && r["rate_hz"].as_f64() > Some(50.0))
        };
        if ready("imu.imu") && ready("filter.attitude") && ready("demo/imu") {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "the demo's topics did not come up: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let row = |t: &str| rows.iter().find(|r| r["topic"] == t).unwrap().clone();
    let imu = row("imu.imu");
    assert_eq!(
        (imu["kind"].as_str(), imu["type"].as_str()),
        (Some("connection"), Some("Imu")),
        "{imu}"
    );
    assert_eq!(
        (imu["publishers"].as_u64(), imu["subscribers"].as_u64()),
        (Some(1), Some(1)),
        "{imu}"
    );
    assert_eq!(imu["host_pid"].as_u64(), Some(u64::from(demo.id())), "{imu}");
    let named = row("demo/imu");
    assert_eq!(
        (named["kind"].as_str(), named["host_pid"].as_u64()),
        (Some("named"), None),
        "{named}"
    );
    let table = topic(&ns, &["list"]);
    assert!(
        table.stdout.starts_with("TOPIC") && table.stdout.contains("filter.attitude"),
        "{table:?}"
    );

    // echo: three decoded samples, by connection name and by named topic.
    let out = topic(&ns, &["echo", "imu.imu", "-n", "3", "--json"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let msgs = lines(&out);
    assert_eq!(msgs.len(), 3, "{out:?}");
    for m in &msgs {
        assert_eq!(
            (m["topic"].as_str(), m["type"].as_str()),
            (Some("imu.imu"), Some("Imu"))
        );
        let gz = m["value"]["linear_acceleration"]["z"].as_f64().unwrap();
        assert!((8.0..11.0).contains(&gz), "gravity: {m}");
    }
    let seqs: Vec<u64> = msgs.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    let text = topic(&ns, &["echo", "demo/imu", "-n", "1"]);
    assert!(
        text.stdout.starts_with('[') && text.stdout.contains("Imu {\"angular_velocity\""),
        "{text:?}"
    );

    // hz: the demo's 100 Hz, within 10 %.
    let out = topic(&ns, &["hz", "imu.imu", "--duration", "3500ms", "--json"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let reports = lines(&out);
    assert!(reports.len() >= 3, "one report a second: {out:?}");
    let last = reports.last().unwrap();
    let rate = last["rate_hz"].as_f64().unwrap();
    assert!((90.0..=110.0).contains(&rate), "{last}");
    assert!(last["min_ms"].as_f64() <= last["max_ms"].as_f64(), "{last}");

    // A wrong name says where to look.
    let out = topic(&ns, &["echo", "imu.imux", "-n", "1"]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr.contains("no topic `imu.imux`") && out.stderr.contains("horus topic list"),
        "{out:?}"
    );

    // The tools left the publishers alone: every sample reached the demo's filter.
    horus_e2e::interrupt(&demo);
    horus_e2e::interrupt(&publ);
    finish(demo);
    finish(publ);
    let stats = read_stats(&demo_stats);
    let filter = horus_e2e::node(&stats, "filter");
    assert_eq!(filter["total_failures"].as_u64(), Some(0), "{filter}");
    assert_eq!(
        filter["messages_received"].as_u64(),
        horus_e2e::node(&stats, "imu")["messages_sent"].as_u64(),
        "{filter}"
    );
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

/// A manifest with a tcp hub (checking it needs the network feature, as `horus run` does).
#[cfg(feature = "network")]
#[test]
fn graph_draws_a_manifest_with_its_hub() {
    let net = repo_root().join("manifests/net-imu-publisher.toml");
    let out = horus_e2e::run(&["graph", net.to_str().unwrap()]);
    assert_eq!(out.code(), 0, "{out:?}");
    let dot = &out.stdout;
    assert!(
        dot.starts_with("digraph horus {") && dot.trim_end().ends_with('}'),
        "{dot}"
    );
    assert!(
        dot.contains("subgraph cluster_hub0"),
        "the tcp hub is a cluster: {dot}"
    );
    assert!(
        dot.contains("ImuSim (imu-sim)") && dot.contains(" -> t_"),
        "{dot}"
    );
    let out = horus_e2e::run(&["graph", net.to_str().unwrap(), "--format", "mermaid"]);
    assert!(
        out.stdout.contains("flowchart LR") && out.stdout.contains("-->|"),
        "{out:?}"
    );
    let out = horus_e2e::run(&["graph", net.to_str().unwrap(), "--format", "svg"]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.contains("`dot` or `mermaid`"), "{out:?}");
}

#[test]
fn graph_draws_a_running_host_with_its_rates() {
    let root = repo_root();
    let out = horus_e2e::run(&[
        "graph",
        root.join("manifests/attitude-subscriber.toml").to_str().unwrap(),
    ]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        out.stdout
            .contains("t_demo_2f_imu -> n_filter [label=\"imu · Imu · reliable(256)\"];"),
        "{out:?}"
    );
    let ns = format!("e2e-{}-graph", std::process::id());
    let s = Scratch::new();
    let demo = start_in(
        &ns,
        &root.join("manifests/demo.toml"),
        "8s",
        &s.path().join("d.json"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let live = loop {
        let mut cmd = horus(&["graph", "--running", "--format", "mermaid"]);
        cmd.env("HORUS_NAMESPACE", &ns);
        let out = wait(horus_e2e::spawn(cmd), Duration::from_secs(30));
        // The imu node's measured rate, once it has one: ~100 Hz.
        let imu_rate = out
            .stdout
            .lines()
            .find(|l| l.starts_with("  n_imu["))
            .and_then(|l| l.split("running at ").nth(1))
            .and_then(|r| r.split(' ').next())
            .and_then(|r| r.parse::<f64>().ok());
        if out.code() == 0 && imu_rate.is_some_and(|r| r > 50.0) {
            break out;
        }
        assert!(Instant::now() < deadline, "no running graph: {out:?}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        live.stdout
            .contains("n_imu -->|\"imu → imu · Imu · keep_last(8)\"| n_filter"),
        "{live:?}"
    );
    horus_e2e::interrupt(&demo);
    finish(demo);
    let mut cmd = horus(&["graph", "--running"]);
    cmd.env("HORUS_NAMESPACE", &ns);
    let none = wait(horus_e2e::spawn(cmd), Duration::from_secs(30));
    assert_ne!(none.code(), 0, "no host runs now: {none:?}");
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}
