//! The SDK through its real entry points (via `TestHarness`): typed send/recv for plain data,
//! serde types and raw bytes, port and type checks, panics and errors as statuses.

use horus_plugin_api::testing::TestHarness;
use horus_plugin_api::{
    pod_message, Context, Message, Node, NodeError, NodeResult, Port, RecvError, SendError,
};

pod_message! {
    struct Reading { stamp: u64, value: f32, flags: u32 }
}

#[cfg(feature = "serde")]
mod serde_types {
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    pub struct Plan {
        pub name: String,
        pub waypoints: Vec<(f32, f32)>,
    }
    horus_plugin_api::serde_message!(Plan);
}

/// Echoes what it receives, and misbehaves on request through config.
struct Echo;

impl Node for Echo {
    const PORTS: &'static [Port] = &[
        Port::input::<Reading>("in"),
        Port::output::<Reading>("out"),
        Port::input::<Vec<u8>>("raw_in"),
        Port::output::<Vec<u8>>("raw_out"),
        #[cfg(feature = "serde")]
        Port::input::<serde_types::Plan>("plan_in"),
        #[cfg(feature = "serde")]
        Port::output::<serde_types::Plan>("plan_out"),
    ];

    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        if ctx.config_bool("fail_create")? == Some(true) {
            return Err(NodeError::new("refusing to start"));
        }
        Ok(Echo)
    }

    fn tick(&mut self, ctx: &mut Context<'_>) -> NodeResult {
        match ctx.config_str("mode")? {
            Some("panic") => panic!("boom"),
            Some("error") => return Err(NodeError::new("bad tick")),
            Some("wrong_type") => {
                ctx.send("out", &7u64)?;
            }
            Some("unknown_port") => {
                ctx.recv::<Reading>("nope")?;
            }
            Some("misspelled_output") => {
                ctx.send(
                    "outt",
                    &Reading {
                        stamp: 0,
                        value: 1.0,
                        flags: 0,
                    },
                )?;
            }
            Some("recv_from_output") => {
                ctx.recv::<Reading>("out")?;
            }
            _ => {}
        }
        while let Some(r) = ctx.recv::<Reading>("in")? {
            ctx.send("out", &r)?;
        }
        while let Some(bytes) = ctx.recv_bytes("raw_in")? {
            let copy = bytes.to_vec();
            ctx.send("raw_out", &copy)?;
        }
        #[cfg(feature = "serde")]
        while let Some(plan) = ctx.recv::<serde_types::Plan>("plan_in")? {
            ctx.send("plan_out", &plan)?;
        }
        Ok(())
    }
}

fn echo(mode: &str) -> TestHarness<Echo> {
    TestHarness::<Echo>::builder("echo")
        .config("mode", mode)
        .start()
        .unwrap()
}

#[test]
fn plain_data_round_trips_in_order() {
    let mut h = echo("");
    let sent: Vec<Reading> = (0..5)
        .map(|i| Reading {
            stamp: i,
            value: i as f32 * 0.5,
            flags: 1,
        })
        .collect();
    for r in &sent {
        h.push("in", r);
    }
    h.tick().unwrap();
    assert_eq!(h.take::<Reading>("out"), sent);
}

#[test]
fn raw_bytes_round_trip() {
    let mut h = echo("");
    h.push("raw_in", &b"\x00\x01hello".to_vec());
    h.tick().unwrap();
    assert_eq!(h.take::<Vec<u8>>("raw_out"), vec![b"\x00\x01hello".to_vec()]);
}

#[cfg(feature = "serde")]
#[test]
fn serde_messages_round_trip_compactly() {
    use serde_types::Plan;
    let plan = Plan {
        name: "dock".into(),
        waypoints: vec![(1.0, 2.0), (3.5, -1.0)],
    };
    let mut scratch = Vec::new();
    let bytes = plan.encode(&mut scratch).unwrap().to_vec();
    assert_eq!(
        bytes.len(),
        1 + 4 + 1 + 4 * 4,
        "postcard: varint lengths, raw f32s"
    );
    let mut h = echo("");
    h.push("plan_in", &plan);
    h.tick().unwrap();
    assert_eq!(h.take::<Plan>("plan_out"), vec![plan]);
    assert!(
        Plan::decode(&[0xff, 0xff]).is_err(),
        "garbage is an error, not a crash"
    );
}

#[test]
fn panics_and_errors_become_statuses() {
    let mut h = echo("panic");
    let err = h.tick().unwrap_err();
    assert!(err.message().starts_with("panic: panicked at"), "{err}");
    assert!(err.message().ends_with("boom"), "{err}");
    assert!(err.message().contains("sdk.rs"), "location of the panic: {err}");
    // The node is still usable after a caught panic.
    assert!(h.tick().is_err());
    assert_eq!(echo("error").tick().unwrap_err().message(), "bad tick");
}

#[test]
fn send_checks_the_port_type() {
    let err = echo("wrong_type").tick().unwrap_err();
    let expected = SendError::WrongType {
        port: "out".into(),
        expected: "Reading",
        got: "u64",
    };
    assert_eq!(err.message(), expected.to_string());
}

#[test]
fn unknown_ports_are_errors() {
    let err = echo("unknown_port").tick().unwrap_err();
    let mut declared = vec!["in", "raw_in"];
    if cfg!(feature = "serde") {
        declared.push("plan_in");
    }
    let expected = RecvError::UnknownPort {
        port: "nope".into(),
        declared,
        other_direction: false,
    };
    assert_eq!(err.message(), expected.to_string());
}

/// Issue #15, item 8: an unknown port's error lists the declared ports of that direction, with
/// did-you-mean for a typo, and says so when the name is a port of the other direction.
#[test]
fn unknown_ports_list_the_declared_ports() {
    let err = echo("unknown_port").tick().unwrap_err();
    assert!(
        err.message()
            .starts_with("no input port `nope`; its input ports: `in`, `raw_in`"),
        "{err}"
    );
    assert!(!err.message().contains("did you mean"), "{err}");

    let err = echo("misspelled_output").tick().unwrap_err();
    assert!(
        err.message()
            .starts_with("no output port `outt`; its output ports: `out`, `raw_out`"),
        "{err}"
    );
    assert!(err.message().contains("did you mean `out`?"), "{err}");
    assert!(err.message().contains("Node::PORTS"), "{err}");

    let err = echo("recv_from_output").tick().unwrap_err();
    assert!(
        err.message()
            .starts_with("no input port `out` (`out` is an output port: `send` to it)"),
        "{err}"
    );
}

#[test]
fn create_errors_are_reported() {
    let err = TestHarness::<Echo>::builder("e")
        .config("fail_create", true)
        .start()
        .err()
        .unwrap();
    assert_eq!(err.message(), "refusing to start");
}

#[test]
fn a_config_key_of_the_wrong_type_is_an_error_naming_it() {
    let err = TestHarness::<Echo>::builder("e")
        .config("fail_create", "yes")
        .start()
        .err()
        .unwrap();
    assert_eq!(
        err.message(),
        "config `fail_create` must be true or false (the manifest has a string)"
    );
}

#[test]
fn decode_rejects_a_wrong_size() {
    assert!(Reading::decode(&[0u8; 3]).is_err());
}

/// Declares a config schema and logs what its getters return.
struct Tuned;

impl Node for Tuned {
    const CONFIG: &'static [horus_plugin_api::ConfigKey] = &[
        horus_plugin_api::ConfigKey::f64("gain")
            .default(1.5)
            .doc("output gain"),
        horus_plugin_api::ConfigKey::f64("offset").default(2),
        horus_plugin_api::ConfigKey::i64("count").default(7),
        horus_plugin_api::ConfigKey::bool("verbose").default(true),
        horus_plugin_api::ConfigKey::str("frame").default("base_link"),
        horus_plugin_api::ConfigKey::str("name").required(),
        horus_plugin_api::ConfigKey::f64("trim"),
    ];

    fn create(ctx: &mut Context<'_>) -> Result<Self, NodeError> {
        let seen = format!(
            "gain={:?} offset={:?} count={:?} verbose={:?} frame={:?} name={:?} trim={:?} schema={}",
            ctx.config_f64("gain")?,
            ctx.config_f64("offset")?,
            ctx.config_i64("count")?,
            ctx.config_bool("verbose")?,
            ctx.config_str("frame")?,
            ctx.config_str("name")?,
            ctx.config_f64("trim")?,
            ctx.config_schema().len(),
        );
        ctx.info(seen);
        Ok(Tuned)
    }

    fn tick(&mut self, _ctx: &mut Context<'_>) -> NodeResult {
        Ok(())
    }
}

#[test]
fn getters_return_declared_defaults_for_absent_keys_and_the_manifest_value_otherwise() {
    let h = TestHarness::<Tuned>::builder("t")
        .config("name", "imu")
        .start()
        .unwrap();
    assert_eq!(
        h.logs()[0].1,
        "gain=Some(1.5) offset=Some(2.0) count=Some(7) verbose=Some(true) frame=Some(\"base_link\") \
         name=Some(\"imu\") trim=None schema=7"
    );
    let h = TestHarness::<Tuned>::builder("t")
        .config("gain", 3.0)
        .config("count", 1i64)
        .config("frame", "odom")
        .config("verbose", false)
        .start()
        .unwrap();
    let seen = &h.logs()[0].1;
    assert!(
        seen.starts_with(
            "gain=Some(3.0) offset=Some(2.0) count=Some(1) verbose=Some(false) frame=Some(\"odom\") name=None"
        ),
        "{seen}"
    );
}

#[test]
fn a_declared_default_does_not_hide_a_wrong_type() {
    let Err(e) = TestHarness::<Tuned>::builder("t").config("count", "many").start() else {
        panic!("a string for an integer key was accepted");
    };
    assert!(e.message().contains("config `count` must be an integer"), "{e}");
}
