//! `horus record` (issue 19): the running demo (and a named topic, and a Python process's
//! dict messages) into MCAP files that the format's own Python library (`mcap`, in `.venv`)
//! reads: every channel with its count, the Imu fields from the raw bytes and from a `--json`
//! recording, and the chunks a killed recorder had written.

use horus_e2e::{finish, horus, repo_root, spawn, start_in, wait, Scratch};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// Reads an MCAP file with the `mcap` Python library: per channel (by topic) its message
/// encoding, schema name and encoding, message count, and its first message decoded (an Imu
/// from its bytes, JSON from a json channel, the tag of a Python object). `streaming` reads
/// record by record without the summary, up to the first unreadable record (a killed writer).
const READ: &str = r#"
import json, struct, sys
from mcap.reader import make_reader
from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
path, streaming = sys.argv[1], sys.argv[2] == "1"
out = {}

def messages(f):
    if not streaming:
        yield from make_reader(f).iter_messages()
        return
    # Record by record, in file order, with no summary: what a killed writer left.
    schemas, channels = {}, {}
    for r in StreamReader(f).records:
        if isinstance(r, Schema):
            schemas[r.id] = r
        elif isinstance(r, Channel):
            channels[r.id] = r
        elif isinstance(r, Message):
            c = channels[r.channel_id]
            yield schemas.get(c.schema_id), c, r

with open(path, "rb") as f:
    try:
        for schema, channel, message in messages(f):
            c = out.setdefault(channel.topic, {
                "encoding": channel.message_encoding,
                "schema": schema.name if schema else None,
                "schema_encoding": schema.encoding if schema else None,
                "type": channel.metadata.get("horus.type"),
                "count": 0, "seqs": [],
            })
            c["count"] += 1
            c["seqs"].append(message.sequence)
            if c["count"] == 1:
                if channel.message_encoding == "json":
                    c["first"] = json.loads(message.data)
                elif schema and schema.name == "Imu":
                    v = struct.unpack("<Q6d", message.data)
                    c["first"] = {"stamp_ns": v[0], "linear_acceleration_z": v[6]}
                else:
                    c["first"] = {"tag": chr(message.data[0]), "size": len(message.data)}
    except Exception as e:  # a truncated tail (killed writer)
        out["__error__"] = type(e).__name__
print(json.dumps(out))
"#;

fn read(mcap: &Path, streaming: bool) -> Value {
    let python = repo_root().join(".venv/bin/python");
    assert!(python.exists(), "run ./scripts/python-env.sh first");
    let out = std::process::Command::new(python)
        .args([
            "-c",
            READ,
            mcap.to_str().unwrap(),
            if streaming { "1" } else { "0" },
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn record(ns: &str, args: &[&str]) -> horus_e2e::Outcome {
    let mut all = vec!["record"];
    all.extend_from_slice(args);
    let mut cmd = horus(&all);
    cmd.env("HORUS_NAMESPACE", ns);
    wait(spawn(cmd), Duration::from_secs(60))
}

/// Waits until `horus topic list` shows `topics` publishing.
fn wait_for_topics(ns: &str, topics: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut cmd = horus(&["topic", "list", "--json"]);
        cmd.env("HORUS_NAMESPACE", ns);
        let out = wait(spawn(cmd), Duration::from_secs(30));
        let rows: Vec<Value> = serde_json::from_str(&out.stdout).unwrap_or_default();
        if topics.iter().all(|t| {
            rows.iter()
                .any(|r| r["topic"] == *t && r["messages"].as_u64() > Some(0))
        }) {
            return;
        }
        assert!(Instant::now() < deadline, "{topics:?} did not come up: {rows:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_running_demo_records_into_an_mcap_file_that_the_mcap_library_reads() {
    let ns = format!("e2e-{}-record", std::process::id());
    let s = Scratch::new();
    let root = repo_root();
    let demo = start_in(
        &ns,
        &root.join("manifests/demo.toml"),
        "12s",
        &s.path().join("d.json"),
    );
    let publ = start_in(
        &ns,
        &root.join("manifests/imu-publisher.toml"),
        "12s",
        &s.path().join("p.json"),
    );
    wait_for_topics(&ns, &["imu.imu", "filter.attitude", "demo/imu"]);

    // Everything, as the bytes it travels as, for 2 s.
    let raw = s.path().join("all.mcap");
    let out = record(&ns, &["-o", raw.to_str().unwrap(), "--all", "--duration", "2s"]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        out.stderr.contains("recorded ") && out.stderr.contains(", 0 dropped"),
        "{out:?}"
    );
    let file = read(&raw, false);
    for (topic, schema) in [
        ("imu.imu", "Imu"),
        ("filter.attitude", "Attitude"),
        ("demo/imu", "Imu"),
    ] {
        let c = &file[topic];
        assert_eq!(c["encoding"], "horus-pod", "{topic}: {c}");
        assert_eq!(
            (c["schema"].as_str(), c["schema_encoding"].as_str()),
            (Some(schema), Some("jsonschema")),
            "{c}"
        );
        let count = c["count"].as_u64().unwrap();
        assert!((160..=240).contains(&count), "{topic}: 2 s at 100 Hz, {count}");
        let seqs: Vec<u64> = c["seqs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "{topic}: every message, in order"
        );
    }
    let z = file["imu.imu"]["first"]["linear_acceleration_z"]
        .as_f64()
        .unwrap();
    assert!(
        (8.0..11.0).contains(&z),
        "the Imu decodes from its bytes: {}",
        file["imu.imu"]
    );

    // Two topics as JSON.
    let json = s.path().join("json.mcap");
    let out = record(
        &ns,
        &[
            "-o",
            json.to_str().unwrap(),
            "imu.imu",
            "filter.attitude",
            "--json",
            "--duration",
            "1s",
        ],
    );
    assert_eq!(out.code(), 0, "{out:?}");
    let file = read(&json, false);
    let imu = &file["imu.imu"];
    assert_eq!(
        (imu["encoding"].as_str(), imu["schema_encoding"].as_str()),
        (Some("json"), Some("jsonschema"))
    );
    let z = imu["first"]["linear_acceleration"]["z"].as_f64().unwrap();
    assert!((8.0..11.0).contains(&z), "{imu}");
    assert!(file["filter.attitude"]["first"]["roll"].is_f64(), "{file}");

    // A recorder killed mid-way leaves the chunks it had written (flushed once a second).
    let killed = s.path().join("killed.mcap");
    let mut cmd = horus(&["record", "-o", killed.to_str().unwrap(), "imu.imu"]);
    cmd.env("HORUS_NAMESPACE", &ns);
    let mut rec = spawn(cmd);
    std::thread::sleep(Duration::from_millis(2600));
    rec.kill().unwrap();
    rec.wait().unwrap();
    let file = read(&killed, true);
    let count = file["imu.imu"]["count"].as_u64().unwrap_or(0);
    assert!(count >= 100, "at least the first second's chunk: {file}");

    // A wrong name is exit 2; nothing to record is exit 2.
    assert_eq!(record(&ns, &["-o", raw.to_str().unwrap(), "imu.imux"]).code(), 2);
    let none = record(&ns, &["-o", raw.to_str().unwrap()]);
    assert!(none.code() == 2 && none.stderr.contains("--all"), "{none:?}");

    horus_e2e::interrupt(&demo);
    horus_e2e::interrupt(&publ);
    finish(demo);
    finish(publ);
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

#[test]
fn python_messages_record_as_their_bytes_or_as_json() {
    let python = repo_root().join(".venv/bin/python");
    assert!(python.exists(), "run ./scripts/python-env.sh first");
    let ns = format!("e2e-{}-record-py", std::process::id());
    let s = Scratch::new();
    let mut sender = std::process::Command::new(&python)
        .args([
            "-c",
            "import horus, time\nh = horus.Hub('poses')\nt = time.time(); i = 0\n\
             while time.time() - t < 5:\n    h.send({'i': i, 'pose': [1.0, 2.0]}); i += 1; time.sleep(0.01)\n\
             h.close()\n",
        ])
        .env("HORUS_NAMESPACE", &ns)
        .spawn()
        .unwrap();
    wait_for_topics(&ns, &["hub/poses"]);
    let (raw, json) = (s.path().join("raw.mcap"), s.path().join("json.mcap"));
    assert_eq!(
        record(
            &ns,
            &["-o", raw.to_str().unwrap(), "hub/poses", "--duration", "1s"]
        )
        .code(),
        0
    );
    assert_eq!(
        record(
            &ns,
            &[
                "-o",
                json.to_str().unwrap(),
                "hub/poses",
                "--json",
                "--duration",
                "1s"
            ]
        )
        .code(),
        0
    );
    let raw = read(&raw, false);
    assert_eq!(raw["hub/poses"]["encoding"], "horus-pyobject", "{raw}");
    assert_eq!(raw["hub/poses"]["first"]["tag"], "M", "MessagePack: {raw}");
    let json = read(&json, false);
    let first = &json["hub/poses"]["first"];
    assert!(
        first["i"].is_u64() && first["pose"] == serde_json::json!([1.0, 2.0]),
        "{json}"
    );
    // It stops by itself (killing it would leave its topic behind).
    assert!(sender.wait().unwrap().success());
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

/// A recording of the demo's IMU replayed into a manifest that has only the filter and the
/// telemetry, subscribed to a named topic of the channel's name: every recorded sample reaches
/// the filter and its output the telemetry, at twice the speed; `--remap` renames the topic.
#[test]
fn a_recording_replays_into_the_filter_alone() {
    let ns = format!("e2e-{}-replay", std::process::id());
    let s = Scratch::new();
    let root = repo_root();
    let demo = start_in(
        &ns,
        &root.join("manifests/demo.toml"),
        "6s",
        &s.path().join("d.json"),
    );
    wait_for_topics(&ns, &["imu.imu"]);
    let rec = s.path().join("imu.mcap");
    let out = record(&ns, &["-o", rec.to_str().unwrap(), "imu.imu", "--duration", "2s"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let recorded = read(&rec, false)["imu.imu"]["count"].as_u64().unwrap();
    horus_e2e::interrupt(&demo);
    finish(demo);

    let subscriber = std::fs::read_to_string(root.join("manifests/attitude-subscriber.toml")).unwrap();
    for (topic, extra) in [
        ("imu.imu", vec![]),
        ("robot/imu", vec!["--remap", "imu.imu=robot/imu"]),
    ] {
        let m = s.write(
            "replayed.toml",
            &subscriber.replace("topic = \"demo/imu\"", &format!("topic = \"{topic}\"")),
        );
        let stats = s.path().join("replayed.json");
        let host = start_in(&ns, &m, "4s", &stats);
        // The filter's host made the topic (its reliable subscriber holds every sample).
        let deadline = Instant::now() + Duration::from_secs(20);
        while horus_e2e::subscriber_pids(&ns, topic).is_empty() {
            assert!(
                Instant::now() < deadline,
                "the filter did not subscribe to {topic}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut args = vec!["replay", rec.to_str().unwrap(), "--speed", "2"];
        args.extend(extra);
        let started = Instant::now();
        let mut cmd = horus(&args);
        cmd.env("HORUS_NAMESPACE", &ns);
        let out = wait(spawn(cmd), Duration::from_secs(30));
        assert_eq!(out.code(), 0, "{out:?}");
        assert!(
            out.stderr
                .contains(&format!("replayed {recorded} messages on 1 topics")),
            "{out:?}"
        );
        let took = started.elapsed().as_secs_f64();
        assert!((0.7..3.0).contains(&took), "2 s at twice the speed: {took:.2} s");
        finish(host);
        let stats = horus_e2e::read_stats(&stats);
        let filter = horus_e2e::node(&stats, "filter");
        assert_eq!(
            filter["messages_received"].as_u64(),
            Some(recorded),
            "{topic}: {filter}"
        );
        let telemetry = horus_e2e::node(&stats, "telemetry");
        assert_eq!(
            telemetry["messages_received"].as_u64(),
            Some(recorded),
            "{telemetry}"
        );
    }
    // A file that is not a recording is exit 2 with the path.
    let junk = s.write("junk.mcap", "not mcap");
    let mut cmd = horus(&["replay", junk.to_str().unwrap()]);
    cmd.env("HORUS_NAMESPACE", &ns);
    let out = wait(spawn(cmd), Duration::from_secs(30));
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.contains("junk.mcap"), "{out:?}");
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

/// Per node of a `horus run --record` file: its ticks, and for the filter whether each tick
/// came after the IMU sample it read (the publish stamps and the tick times on one clock).
const TICKS: &str = r#"
import json, sys
from mcap.reader import make_reader
ticks, imu, filter_ticks = {}, [], []
with open(sys.argv[1], "rb") as f:
    for schema, channel, message in make_reader(f).iter_messages(log_time_order=True):
        if channel.topic == "horus.ticks":
            t = json.loads(message.data)
            ticks[t["node"]] = ticks.get(t["node"], 0) + 1
            if t["node"] == "filter":
                filter_ticks.append(message.log_time)
        elif channel.topic == "imu.imu":
            imu.append(message.log_time)
# The filter's tick k reads the sample the IMU published in the same cycle, just before it (a
# worker still busy with its last tick skips a cycle: its tick k comes later still).
before = sum(1 for s, t in zip(imu, filter_ticks) if s < t)
print(json.dumps({"ticks": ticks, "imu_before_filter": before, "pairs": min(len(imu), len(filter_ticks))}))
"#;

/// `horus run --record`: the host records its own connections (as `node.port`) and every
/// node's ticks from its first tick to its last — exactly what the stats count — with a
/// `process`-isolated IMU and filter too, which then re-run identically from the file;
/// `--record-topics` keeps only the named channels.
#[test]
fn a_host_records_its_connections_and_ticks() {
    let root = repo_root();
    let demo = std::fs::read_to_string(root.join("manifests/demo.toml")).unwrap();
    for isolation in ["", "isolation = \"process\"\n"] {
        let ns = format!("e2e-{}-runrec", std::process::id());
        let s = Scratch::new();
        let m = s.write(
            "demo.toml",
            &demo
                .replace("name = \"filter\"\n", &format!("name = \"filter\"\n{isolation}"))
                .replace("name = \"imu\"\n", &format!("name = \"imu\"\n{isolation}")),
        );
        let mcap = s.path().join("run.mcap");
        let stats = s.path().join("s.json");
        let mut cmd = horus(&[
            "run",
            m.to_str().unwrap(),
            "--duration",
            "2s",
            "--stats-json",
            stats.to_str().unwrap(),
            "--record",
            mcap.to_str().unwrap(),
        ]);
        cmd.env("HORUS_NAMESPACE", &ns);
        let out = wait(spawn(cmd), Duration::from_secs(60));
        assert_eq!(out.code(), 0, "{out:?}");
        assert!(out.stderr.contains(", 0 dropped"), "{}", out.stderr);
        let stats = horus_e2e::read_stats(&stats);
        let count = |node: &str, key: &str| horus_e2e::node(&stats, node)[key].as_u64().unwrap();
        let file = read(&mcap, false);
        for (channel, node) in [("imu.imu", "imu"), ("filter.attitude", "filter")] {
            let c = &file[channel];
            assert_eq!(c["encoding"], "horus-pod", "{c}");
            assert_eq!(
                c["count"].as_u64(),
                Some(count(node, "messages_sent")),
                "{isolation}every message of {channel}"
            );
        }
        let python = root.join(".venv/bin/python");
        let t = std::process::Command::new(python)
            .args(["-c", TICKS, mcap.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
        let t: Value = serde_json::from_slice(&t.stdout).unwrap();
        for node in ["imu", "filter", "telemetry"] {
            assert_eq!(
                t["ticks"][node].as_u64(),
                Some(count(node, "total_ticks")),
                "{isolation}the ticks of {node}: {t}"
            );
        }
        assert_eq!(
            t["imu_before_filter"], t["pairs"],
            "{isolation}each sample is stamped before the filter's tick that read it: {t}"
        );
        assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
        // Both re-run identically from it: the IMU computes from its clock, which a worker
        // process gets from its host with each tick, as the recording keeps it.
        for node in ["imu", "filter"] {
            let args = [
                mcap.to_str().unwrap(),
                "--manifest",
                m.to_str().unwrap(),
                "--node",
                node,
                "--check",
            ];
            let out = replay_node(&ns, &args);
            assert!(
                out.code() == 0 && out.stdout.starts_with("identical: "),
                "{isolation}{node}: {out:?}"
            );
        }

        // Only the channels asked for (and the ticks).
        let only = s.path().join("only.mcap");
        let mut cmd = horus(&[
            "run",
            m.to_str().unwrap(),
            "--duration",
            "1s",
            "--record",
            only.to_str().unwrap(),
            "--record-topics",
            "filter.attitude,nosuch.port",
        ]);
        cmd.env("HORUS_NAMESPACE", &ns);
        let out = wait(spawn(cmd), Duration::from_secs(60));
        assert_eq!(out.code(), 0, "{out:?}");
        assert!(
            out.stderr.contains("`nosuch.port` never appeared"),
            "{}",
            out.stderr
        );
        let file = read(&only, false);
        let mut channels: Vec<&String> = file.as_object().unwrap().keys().collect();
        channels.sort();
        assert_eq!(channels, ["filter.attitude", "horus.ticks"], "{isolation}");

        // A file that cannot be made stops the run before anything starts.
        let bad = s.path().join("no/such/dir.mcap");
        let mut cmd = horus(&["run", m.to_str().unwrap(), "--record", bad.to_str().unwrap()]);
        cmd.env("HORUS_NAMESPACE", &ns);
        let out = wait(spawn(cmd), Duration::from_secs(60));
        assert_eq!(out.code(), 1, "{out:?}");
        assert!(
            out.stderr.contains("--record: cannot write")
                && out.stderr.contains("give a file in a directory that exists"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("scheduler running"), "{}", out.stderr);
        assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
    }
}

/// `horus run --record` goes on through live changes: under `--watch`, the filter's config
/// changes (the node is replaced, its topics kept) and a node is added that publishes on a new
/// named topic; the recording has every message of the filter across the swap, the new topic,
/// and the new node's ticks.
#[test]
fn a_recording_goes_on_through_a_live_apply() {
    let ns = format!("e2e-{}-recapply", std::process::id());
    let s = Scratch::new();
    let root = repo_root();
    let demo = std::fs::read_to_string(root.join("manifests/demo.toml")).unwrap();
    let m = s.write("demo.toml", &demo);
    let mcap = s.path().join("live.mcap");
    let stats = s.path().join("s.json");
    let mut cmd = horus(&[
        "run",
        m.to_str().unwrap(),
        "--duration",
        "4s",
        "--watch",
        "--stats-json",
        stats.to_str().unwrap(),
        "--record",
        mcap.to_str().unwrap(),
    ]);
    cmd.env("HORUS_NAMESPACE", &ns);
    let host = spawn(cmd);
    std::thread::sleep(Duration::from_millis(1500));
    let changed = demo.replace("alpha = 0.98", "alpha = 0.9")
        + "\n[[node]]\nname = \"imu2\"\nplugin = \"imu-sim\"\n\
           [[connect]]\nfrom = \"imu2.imu\"\ntopic = \"robot/imu2\"\n";
    horus_e2e::rewrite(&m, &changed);
    let out = finish(host);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        out.stderr
            .contains("apply: +1 node, -0, ~1 changed (filter: config)"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(", 0 dropped"), "{}", out.stderr);
    let stats = horus_e2e::read_stats(&stats);
    let count = |node: &str, key: &str| horus_e2e::node(&stats, node)[key].as_u64().unwrap();
    let file = read(&mcap, false);
    let attitude = &file["filter.attitude"];
    assert_eq!(
        attitude["count"].as_u64(),
        Some(count("filter", "messages_sent")),
        "every estimate, across the swap: {attitude}"
    );
    let seqs = attitude["seqs"].as_array().unwrap();
    assert!(seqs
        .windows(2)
        .all(|w| w[1].as_u64().unwrap() == w[0].as_u64().unwrap() + 1));
    // The new topic was found within a scan and read from what its ring still held.
    let imu2 = file["robot/imu2"]["count"].as_u64().unwrap_or(0);
    let sent = count("imu2", "messages_sent");
    assert!(sent > 100 && imu2 + 10 >= sent, "robot/imu2: {imu2} of {sent}");
    let python = root.join(".venv/bin/python");
    let t = std::process::Command::new(python)
        .args(["-c", TICKS, mcap.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
    let t: Value = serde_json::from_slice(&t.stdout).unwrap();
    for node in ["imu", "filter", "imu2"] {
        assert_eq!(
            t["ticks"][node].as_u64(),
            Some(count(node, "total_ticks")),
            "the ticks of {node}: {t}"
        );
    }
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

/// `horus replay` of one node, as `args` say, in namespace `ns`.
fn replay_node(ns: &str, args: &[&str]) -> horus_e2e::Outcome {
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    let mut cmd = horus(&all);
    cmd.env("HORUS_NAMESPACE", ns);
    wait(spawn(cmd), Duration::from_secs(60))
}

/// Issue 19, item 3: the demo recorded by its host (`horus run --record`) re-runs the filter
/// alone over the recording: `--check` finds every one of its messages identical for the
/// unchanged filter, and names the first differing message (the second estimate: the first
/// trusts gravity whatever `alpha` is) for a filter with another `alpha`. Wrong names, a file
/// without ticks and an input recorded as JSON are usage errors (exit 2).
#[test]
fn a_recorded_node_reruns_identically_and_a_changed_one_is_caught() {
    let ns = format!("e2e-{}-rerun", std::process::id());
    let s = Scratch::new();
    let demo = repo_root().join("manifests/demo.toml");
    let mcap = s.path().join("out.mcap");
    let stats = s.path().join("s.json");
    let mut cmd = horus(&[
        "run",
        demo.to_str().unwrap(),
        "--duration",
        "2s",
        "--stats-json",
        stats.to_str().unwrap(),
        "--record",
        mcap.to_str().unwrap(),
    ]);
    cmd.env("HORUS_NAMESPACE", &ns);
    let out = wait(spawn(cmd), Duration::from_secs(60));
    assert_eq!(out.code(), 0, "{out:?}");
    let stats = horus_e2e::read_stats(&stats);
    let filter = horus_e2e::node(&stats, "filter");
    let (sent, ticks) = (
        filter["messages_sent"].as_u64().unwrap(),
        filter["total_ticks"].as_u64().unwrap(),
    );
    let file = mcap.to_str().unwrap();

    let out = replay_node(
        &ns,
        &[
            file,
            "--manifest",
            demo.to_str().unwrap(),
            "--node",
            "filter",
            "--check",
        ],
    );
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("identical: {sent} messages on 1 outputs over {ticks} ticks\n"),
        "{out:?}"
    );
    // The IMU computes its motion and stamps from its clock: the tick's time, recorded and
    // given back, so it re-runs identically too.
    let imu = horus_e2e::node(&stats, "imu");
    let out = replay_node(
        &ns,
        &[
            file,
            "--manifest",
            demo.to_str().unwrap(),
            "--node",
            "imu",
            "--check",
        ],
    );
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!(
            "identical: {} messages on 1 outputs over {} ticks\n",
            imu["messages_sent"], imu["total_ticks"]
        ),
        "{out:?}"
    );
    let out = replay_node(
        &ns,
        &[file, "--manifest", demo.to_str().unwrap(), "--node", "filter"],
    );
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "output `attitude` (channel `filter.attitude`): {sent} messages, {sent} recorded"
        )),
        "{out:?}"
    );

    let text = std::fs::read_to_string(&demo).unwrap();
    let changed = s.write("changed.toml", &text.replace("alpha = 0.98", "alpha = 0.5"));
    let out = replay_node(
        &ns,
        &[
            file,
            "--manifest",
            changed.to_str().unwrap(),
            "--node",
            "filter",
            "--check",
        ],
    );
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stdout.starts_with(
            "difference: node `filter`, output `attitude` (channel `filter.attitude`), message 1 "
        ),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("recorded: sequence 1, log_time ")
            && out.stdout.contains("replayed: in tick ")
            && out.stdout.matches("Attitude {\"pitch\":").count() == 2,
        "both messages decoded: {out:?}"
    );

    // Usage errors, each naming what is wrong and what there is.
    let out = replay_node(
        &ns,
        &[file, "--manifest", demo.to_str().unwrap(), "--node", "fliter"],
    );
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.contains("did you mean `filter`?"), "{out:?}");
    let renamed = s.write("renamed.toml", &text.replace("\"filter", "\"estimator"));
    let out = replay_node(
        &ns,
        &[
            file,
            "--manifest",
            renamed.to_str().unwrap(),
            "--node",
            "estimator",
        ],
    );
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr.contains(
            "node `estimator` never ticked in this recording; the nodes it ticked: filter, imu, telemetry"
        ),
        "{out:?}"
    );
    let no_ticks = s.path().join("no-ticks.mcap");
    let python = repo_root().join(".venv/bin/python");
    let made = std::process::Command::new(python)
        .args([
            "-c",
            "import sys\nfrom mcap.writer import Writer\nw = Writer(open(sys.argv[1], 'wb'))\nw.start()\nw.finish()\n",
            no_ticks.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(made.success());
    let out = replay_node(
        &ns,
        &[
            no_ticks.to_str().unwrap(),
            "--manifest",
            demo.to_str().unwrap(),
            "--node",
            "filter",
        ],
    );
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr.contains("no `horus.ticks` channel")
            && out.stderr.contains("horus run <manifest> --record"),
        "{out:?}"
    );
    let json = s.path().join("json.mcap");
    let mut cmd = horus(&[
        "run",
        demo.to_str().unwrap(),
        "--duration",
        "500ms",
        "--record",
        json.to_str().unwrap(),
        "--record-json",
    ]);
    cmd.env("HORUS_NAMESPACE", &ns);
    assert_eq!(wait(spawn(cmd), Duration::from_secs(60)).code(), 0);
    let out = replay_node(
        &ns,
        &[
            json.to_str().unwrap(),
            "--manifest",
            demo.to_str().unwrap(),
            "--node",
            "filter",
        ],
    );
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr.contains("channel `imu.imu`: it was recorded as JSON"),
        "{out:?}"
    );
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}

/// `--compression` (a build with `horus-host/compression`): a host's recording with zstd
/// chunks and an outside recording with lz4 chunks read with the `mcap` library, and the
/// compressed file re-runs the filter identically.
#[cfg(feature = "compression")]
#[test]
fn compressed_recordings_read_and_rerun() {
    let ns = format!("e2e-{}-compress", std::process::id());
    let s = Scratch::new();
    let demo = repo_root().join("manifests/demo.toml");
    let zstd = s.path().join("zstd.mcap");
    let plain = s.path().join("plain.mcap");
    for (file, compression) in [(&zstd, "zstd"), (&plain, "none")] {
        let mut cmd = horus(&[
            "run",
            demo.to_str().unwrap(),
            "--duration",
            "2s",
            "--record",
            file.to_str().unwrap(),
            "--record-compression",
            compression,
        ]);
        cmd.env("HORUS_NAMESPACE", &ns);
        let out = wait(spawn(cmd), Duration::from_secs(60));
        assert_eq!(out.code(), 0, "{out:?}");
    }
    let small = std::fs::metadata(&zstd).unwrap().len();
    let large = std::fs::metadata(&plain).unwrap().len();
    assert!(small * 3 < large * 2, "zstd {small} bytes, none {large}");
    let file = read(&zstd, false);
    assert_eq!(file["imu.imu"]["count"].as_u64(), Some(200), "{file}");
    let out = replay_node(
        &ns,
        &[
            zstd.to_str().unwrap(),
            "--manifest",
            demo.to_str().unwrap(),
            "--node",
            "filter",
            "--check",
        ],
    );
    assert!(
        out.code() == 0 && out.stdout.starts_with("identical: 200 messages"),
        "{out:?}"
    );

    let demo_host = start_in(&ns, &demo, "8s", &s.path().join("d.json"));
    wait_for_topics(&ns, &["imu.imu"]);
    let lz4 = s.path().join("lz4.mcap");
    let out = record(
        &ns,
        &[
            "-o",
            lz4.to_str().unwrap(),
            "imu.imu",
            "--duration",
            "1s",
            "--compression",
            "lz4",
        ],
    );
    assert_eq!(out.code(), 0, "{out:?}");
    let count = read(&lz4, false)["imu.imu"]["count"].as_u64().unwrap_or(0);
    assert!((80..=120).contains(&count), "1 s at 100 Hz: {count}");
    horus_e2e::interrupt(&demo_host);
    finish(demo_host);
    assert_eq!(horus_e2e::shm_leftovers(&ns), Vec::<String>::new());
}
