//! The planning steps on fake plugin descriptions: no `.so`, no shared memory.

use super::*;
use crate::diag::Code;
use crate::ffi::PortInfo;
use crate::manifest::hubs::{HubMode, HubSpec};
use crate::manifest::{HubDecl, Qos};
use crate::topic::{named_capacity, PlanSpec, TopicName};
use std::path::Path;

fn port(name: &str, output: bool, type_name: &str, max_size: u64) -> PortInfo {
    PortInfo {
        name: name.into(),
        type_name: type_name.into(),
        // Any function of the name will do: ports agree when their type names do.
        type_hash: type_name.bytes().fold(17, |h, b| h * 31 + u64::from(b)),
        output,
        encoding: 0,
        max_size,
    }
}

/// Node types by plugin file stem (`libcounter.so` offers `Counter`). `multi` offers two.
fn catalogue() -> Vec<(&'static str, &'static str, Vec<PortInfo>)> {
    vec![
        ("counter", "Counter", vec![port("count", true, "u64", 8)]),
        (
            "summer",
            "Summer",
            vec![
                port("a", false, "u64", 8),
                port("b", false, "u64", 8),
                port("sum", true, "u64", 8),
            ],
        ),
        ("imu", "ImuSim", vec![port("imu", true, "Imu", 56)]),
        (
            "sink",
            "Sink",
            vec![port("imu", false, "Imu", 56), port("text", false, "String", 0)],
        ),
        ("multi", "First", vec![]),
        ("multi", "Second", vec![]),
    ]
}

struct Planned {
    manifest: Manifest,
    wiring: Wiring,
    net: NetPlan,
    ports: Vec<Vec<PortPlan>>,
}

fn manifest(text: &str) -> Manifest {
    crate::manifest::parse(text, Path::new("m.toml"), Path::new("/base")).expect("valid manifest")
}

fn plan_manifest(manifest: Manifest) -> Result<Planned, Diagnostics> {
    let catalogue = catalogue();
    let offered: Vec<Option<Vec<TypeDesc<'_>>>> = manifest
        .nodes
        .iter()
        .map(|n| {
            let NodeCode::Plugin(code) = &n.code else {
                return None;
            };
            let crate::manifest::PluginRef::File(path) = &code.plugin.value else {
                return None;
            };
            let stem = path.file_stem()?.to_str()?.strip_prefix("lib")?;
            Some(
                catalogue
                    .iter()
                    .filter(|(plugin, ..)| *plugin == stem)
                    .map(|(_, name, ports)| TypeDesc {
                        name,
                        ports,
                        config: None,
                    })
                    .collect(),
            )
        })
        .collect();
    let (indices, diags) = resolve_types(&manifest, &offered);
    diags.into_result(())?;
    let types: Vec<Option<TypeDesc<'_>>> = indices
        .iter()
        .zip(&offered)
        .map(|(i, t)| Some(t.as_ref()?[(*i)?]))
        .collect();
    check_triggers(&manifest, &types).into_result(())?;
    let wiring = check_connections(&manifest, &types)?;
    let net = plan_network(&manifest.hubs, &wiring, &types);
    let ports = types
        .iter()
        .enumerate()
        .map(|(ni, t)| plan_ports(ni, t.expect("resolved"), &wiring, &net))
        .collect();
    Ok(Planned {
        manifest,
        wiring,
        net,
        ports,
    })
}

fn plan(text: &str) -> Result<Planned, Diagnostics> {
    plan_manifest(manifest(text))
}

fn node(name: &str, plugin: &str) -> String {
    format!("[[node]]\nname = \"{name}\"\nplugin = \"lib{plugin}.so\"\n")
}

fn connect(keys: &[(&str, &str)]) -> String {
    let mut s = "[[connect]]\n".to_owned();
    for (k, v) in keys {
        s += &format!("{k} = \"{v}\"\n");
    }
    s
}

fn link(type_name: &str, slot_size: u32, capacity: u32) -> PlanSpec {
    PlanSpec {
        type_name: type_name.into(),
        type_hash: port("", false, type_name, 0).type_hash,
        slot_size,
        capacity,
        single_producer: true,
    }
}

fn local(name: &str) -> TopicName {
    TopicName::Local(name.into())
}

#[test]
fn node_to_node_is_a_private_link_sized_for_its_subscriber() {
    let p = plan(&format!(
        "{}{}{}",
        node("c", "counter"),
        node("s", "summer"),
        connect(&[("from", "c.count"), ("to", "s.a"), ("qos", "reliable(100)")])
    ))
    .unwrap();
    let spec = link("u64", 8, 100);
    assert_eq!(
        p.ports[0],
        vec![PortPlan::Output {
            topic: local("c.count"),
            spec: spec.clone()
        }]
    );
    assert_eq!(
        p.ports[1],
        vec![
            PortPlan::Input {
                topic: local("c.count"),
                spec,
                qos: Qos::Reliable(100)
            },
            PortPlan::Unconnected { output: false },
            PortPlan::Unconnected { output: true },
        ]
    );
    assert!(p.net.topics.is_empty());
}

#[test]
fn fan_out_shares_one_topic_as_deep_as_the_deepest_reader() {
    let p = plan(&format!(
        "{}{}{}{}{}",
        node("c", "counter"),
        node("s1", "summer"),
        node("s2", "summer"),
        connect(&[("from", "c.count"), ("to", "s1.a"), ("qos", "keep_last(4)")]),
        connect(&[("from", "c.count"), ("to", "s2.b"), ("qos", "reliable(32)")]),
    ))
    .unwrap();
    assert_eq!(p.wiring.outputs[&(0, 0)].max_depth, 32);
    let PortPlan::Input { topic, spec, qos } = &p.ports[1][0] else {
        panic!("{:?}", p.ports[1]);
    };
    assert_eq!(
        (topic, spec.capacity, *qos),
        (&local("c.count"), 32, Qos::KeepLast(4))
    );
    let PortPlan::Input { topic, qos, .. } = &p.ports[2][1] else {
        panic!("{:?}", p.ports[2]);
    };
    assert_eq!((topic, *qos), (&local("c.count"), Qos::Reliable(32)));
}

#[test]
fn fan_in_to_one_input_is_refused_at_the_second_connection() {
    let text = format!(
        "{}{}{}{}{}",
        node("c1", "counter"),
        node("c2", "counter"),
        node("s", "summer"),
        connect(&[("from", "c1.count"), ("to", "s.a")]),
        connect(&[("from", "c2.count"), ("to", "s.a")]),
    );
    let d = plan(&text).err().expect("fan-in refused");
    assert_eq!(d.codes(), vec![Code::H0023]);
    assert_eq!(d.0[0].location.line, text.lines().count(), "at the second `to`");
    // Two outputs into two inputs of one node is fine.
    plan(&format!(
        "{}{}{}{}{}",
        node("c1", "counter"),
        node("c2", "counter"),
        node("s", "summer"),
        connect(&[("from", "c1.count"), ("to", "s.a")]),
        connect(&[("from", "c2.count"), ("to", "s.b")]),
    ))
    .unwrap();
}

#[test]
fn a_type_mismatch_names_both_types_at_the_input() {
    let d = plan(&format!(
        "{}{}{}",
        node("i", "imu"),
        node("s", "summer"),
        connect(&[("from", "i.imu"), ("to", "s.a")]),
    ))
    .err()
    .expect("mismatch");
    assert_eq!(d.codes(), vec![Code::H0022]);
    assert_eq!(d.0[0].message, "`i.imu` sends `Imu` but `s.a` expects `u64`");
    assert_eq!(d.0[0].key.as_deref(), Some("connect.to"));
}

#[test]
fn unknown_nodes_and_ports_are_reported_with_suggestions_all_at_once() {
    let d = plan(&format!(
        "{}{}{}{}{}",
        node("counter", "counter"),
        node("s", "summer"),
        connect(&[("from", "countr.count"), ("to", "s.a")]),
        connect(&[("from", "counter.cont"), ("to", "s.b")]),
        connect(&[("from", "s.a"), ("to", "s.b")]),
    ))
    .err()
    .expect("errors");
    assert_eq!(d.codes(), vec![Code::H0020, Code::H0021, Code::H0021]);
    assert_eq!(d.0[0].hint.as_deref(), Some("did you mean `counter`?"));
    assert_eq!(d.0[1].hint.as_deref(), Some("did you mean `counter.count`?"));
    assert_eq!(
        d.0[2].hint.as_deref(),
        Some("`a` is an input of `Summer`; `from` must name an output")
    );
}

#[test]
fn node_types_resolve_by_name_or_as_the_only_one() {
    let d = plan(&format!(
        "{}type = \"Secnd\"\n{}{}type = \"Counter\"\n",
        node("m", "multi"),
        node("n", "multi"),
        node("c", "counter")
    ))
    .err()
    .expect("errors");
    assert_eq!(d.codes(), vec![Code::H0015, Code::H0015]);
    assert!(d.0[0]
        .hint
        .as_deref()
        .unwrap()
        .starts_with("did you mean `Second`?"));
    assert_eq!(
        d.0[1].message,
        "plugin /base/libmulti.so offers 2 node types; say which"
    );
    let p = plan(&format!("{}type = \"Second\"\n", node("m", "multi"))).unwrap();
    assert_eq!(p.ports, vec![Vec::<PortPlan>::new()]);
}

#[test]
fn named_topics_are_shared_and_sized_for_other_processes() {
    let p = plan(&format!(
        "{}{}{}{}",
        node("c", "counter"),
        node("s", "summer"),
        connect(&[
            ("from", "c.count"),
            ("topic", "robot/count"),
            ("qos", "keep_last(8)")
        ]),
        connect(&[("topic", "robot/other"), ("to", "s.b"), ("qos", "reliable(500)")]),
    ))
    .unwrap();
    let shared = |capacity| PlanSpec {
        single_producer: false,
        ..link("u64", 8, capacity)
    };
    assert_eq!(
        p.ports[0][0],
        PortPlan::Output {
            topic: TopicName::Named("robot/count".into()),
            spec: shared(named_capacity(8, 8)),
        }
    );
    assert_eq!(
        p.ports[1][1],
        PortPlan::Input {
            topic: TopicName::Named("robot/other".into()),
            spec: shared(500),
            qos: Qos::Reliable(500),
        }
    );
    // A named output read in this manifest too: its readers use the named topic.
    let p = plan(&format!(
        "{}{}{}{}",
        node("c", "counter"),
        node("s", "summer"),
        connect(&[("from", "c.count"), ("topic", "robot/count")]),
        connect(&[("from", "c.count"), ("to", "s.a")]),
    ))
    .unwrap();
    let PortPlan::Input { topic, .. } = &p.ports[1][0] else {
        panic!("{:?}", p.ports[1]);
    };
    assert_eq!(topic, &TopicName::Named("robot/count".into()));
}

#[test]
fn an_output_publishes_on_one_topic() {
    let d = plan(&format!(
        "{}{}{}",
        node("c", "counter"),
        connect(&[("from", "c.count"), ("topic", "a")]),
        connect(&[("from", "c.count"), ("topic", "b")]),
    ))
    .err()
    .expect("two topics");
    assert_eq!(d.codes(), vec![Code::H0024]);
    assert_eq!(d.0[0].key.as_deref(), Some("connect.topic"));
}

#[test]
fn topics_under_a_tcp_hub_go_through_private_rings_for_the_bridge() {
    let mut m = manifest(&format!(
        "{}{}{}{}{}{}",
        node("i", "imu"),
        node("s1", "sink"),
        node("s2", "sink"),
        connect(&[
            ("from", "i.imu"),
            ("topic", "sensor_hub/imu"),
            ("qos", "reliable(64)")
        ]),
        connect(&[
            ("topic", "sensor_hub/remote"),
            ("to", "s1.imu"),
            ("qos", "keep_last(4)")
        ]),
        connect(&[
            ("topic", "sensor_hub/remote"),
            ("to", "s2.imu"),
            ("qos", "keep_last(40)")
        ]),
    ));
    m.hubs.push(HubDecl {
        spec: HubSpec {
            name: "sensor_hub".into(),
            mode: HubMode::Tcp,
            address: Some("127.0.0.1:7450".into()),
        },
        at: Default::default(),
    });
    let p = plan_manifest(m).unwrap();
    let out_ring = local("net.out/sensor_hub/imu");
    let in_ring = local("net.in/sensor_hub/remote");
    assert_eq!(
        p.net.topics,
        vec![
            NetTopic {
                hub: "sensor_hub".into(),
                key: "sensor_hub/imu".into(),
                local: out_ring.clone(),
                spec: link("Imu", 56, 64),
                outbound: true,
                qos: Qos::Reliable(64),
            },
            NetTopic {
                hub: "sensor_hub".into(),
                key: "sensor_hub/remote".into(),
                local: in_ring.clone(),
                spec: link("Imu", 56, 40),
                outbound: false,
                qos: Qos::KeepLast(40),
            },
        ]
    );
    assert_eq!(
        p.ports[0][0],
        PortPlan::Output {
            topic: out_ring,
            spec: link("Imu", 56, 64)
        }
    );
    for (node, qos) in [(1, Qos::KeepLast(4)), (2, Qos::KeepLast(40))] {
        assert_eq!(
            p.ports[node][0],
            PortPlan::Input {
                topic: in_ring.clone(),
                spec: link("Imu", 56, 40),
                qos
            }
        );
    }
    // A local hub, or a topic of another name, stays a shared-memory topic.
    assert!(p.manifest.hubs.iter().all(|h| h.spec.mode == HubMode::Tcp));
}

#[test]
fn a_node_whose_plugin_did_not_load_adds_no_more_errors() {
    let m = manifest(&format!(
        "{}{}{}",
        node("c", "counter"),
        node("gone", "missing"),
        connect(&[("from", "c.count"), ("to", "gone.a")]),
    ));
    let catalogue = catalogue();
    let counter = [TypeDesc {
        name: catalogue[0].1,
        ports: &catalogue[0].2,
        config: None,
    }];
    let types = [Some(counter[0]), None];
    let wiring = check_connections(&m, &types).unwrap();
    assert!(wiring.inputs.is_empty());
    let (indices, d) = resolve_types(&m, &[Some(counter.to_vec()), None]);
    assert!(d.is_empty());
    assert_eq!(indices, vec![Some(0), None]);
}

#[test]
fn the_manifest_is_input_only() {
    let text = format!(
        "{}config = {{ gain = 2.0 }}\n{}{}",
        node("c", "counter"),
        node("s", "summer"),
        connect(&[("from", "c.count"), ("to", "s.a")]),
    );
    let p = plan(&text).unwrap();
    assert_eq!(p.manifest, manifest(&text));
}

#[test]
fn a_second_producer_on_a_link_is_h0028() {
    let e = BindError {
        node: "imu".into(),
        port: "imu".into(),
        source: Box::new(ShmError::ProducerTaken {
            topic: "h42/imu.imu".into(),
            pid: 4242,
        }),
    };
    assert!(e.is_bad_input());
    let d = e.diagnostic(Path::new("robot.toml")).expect("a coded diagnostic");
    assert_eq!(d.code, Code::H0028);
    let text = d.to_string();
    assert!(
        text.contains("error[H0028]") && text.contains("h42/imu.imu") && text.contains("process 4242"),
        "{text}"
    );
}

/// Issue #15, item 8: H0010's hint sends an out-of-tree user to their own crate and to the
/// name form, not to `cargo build --workspace` of this repository.
#[test]
fn h0010_hint_builds_the_plugins_crate_and_offers_its_name() {
    let hint = load::not_found_hint(Path::new("/home/me/pid/target/debug/libpid_ctl.so"));
    assert!(hint.contains("`cargo build` in the crate's folder"), "{hint}");
    assert!(hint.contains("`plugin = \"pid-ctl\"`"), "{hint}");
    assert!(hint.contains("`horus plugins`"), "{hint}");
    assert!(!hint.contains("--workspace"), "{hint}");

    let hint = load::not_found_hint(Path::new("../target/release/libpid_ctl.so"));
    assert!(hint.contains("`cargo build --release`"), "{hint}");

    let hint = load::not_found_hint(Path::new("plugins/controller.bin"));
    assert!(
        hint.contains("name the plugin instead of its file") && !hint.contains("plugin = "),
        "{hint}"
    );
}

#[test]
fn a_trigger_must_name_inputs_of_the_node_type() {
    let summer = |trigger: &str| format!("{}trigger = {trigger}\n", node("s", "summer"));
    assert!(plan(&summer("[\"a\", \"b\"]")).is_ok());
    assert!(plan(&summer("\"input\"")).is_ok());
    let d = plan(&format!(
        "{}{}",
        summer("[\"a\", \"bb\", \"sum\"]"),
        node("c", "counter")
    ))
    .err()
    .expect("errors");
    assert_eq!(d.codes(), vec![Code::H0046, Code::H0046]);
    assert_eq!(
        (d.0[0].location.line, d.0[0].key.as_deref()),
        (4, Some("trigger"))
    );
    assert!(d.0[0].message.contains("`bb`"), "{}", d.0[0]);
    assert_eq!(
        d.0[0].hint.as_deref(),
        Some("did you mean `b`? inputs of `Summer`: a, b")
    );
    assert_eq!(
        d.0[1].hint.as_deref(),
        Some("`sum` is an output; inputs of `Summer`: a, b")
    );
    let d = plan(&format!("{}trigger = \"input\"\n", node("c", "counter")))
        .err()
        .expect("errors");
    assert_eq!(d.codes(), vec![Code::H0046]);
    assert!(
        d.0[0]
            .hint
            .as_deref()
            .is_some_and(|h| h.contains("has no inputs")),
        "{}",
        d.0[0]
    );
}
