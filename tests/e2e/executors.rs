//! The executor contract (`horus_host::scheduler::Executor`), one suite run against every
//! executor: `inline` (a `NodeInstance` called directly), `thread` (`ThreadExec`) and `process`
//! (`ProcessExec`, whose workers are the built `horus __worker`). Each contract point is one
//! function taking the executor kind; `contract_suite!` instantiates all of them per kind, so a
//! failure reads `process::restart_gives_a_fresh_instance`.
//!
//! The nodes are real plugins (`hello-counter`, `faulty-nodes`), and their ports real topics in
//! a namespace of the test's own; the test reads and writes those topics itself. Every test
//! runs under a time limit, since a broken executor tends to hang rather than fail.

use horus_e2e::{horus_bin, plugin};
use horus_host::ffi::{CallErrorKind, NodeInstance, PluginLibrary};
use horus_host::io::{NodeIo, PortBinding};
use horus_host::manifest::Qos;
use horus_host::scheduler::{Executor, Health, ProcessExec, Rebuild, RestartStatus, ThreadExec, TickOutcome};
use horus_host::shm::{Publisher, Subscriber};
use horus_host::topic::{PlanSpec, PortPlan, TopicName, TopicScope};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long any one contract test may take.
const LIMIT: Duration = Duration::from_secs(30);
/// The executors' tick wait, for the tests where a tick must finish within it.
const LONG_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Inline,
    Thread,
    Process,
}

/// Runs `f` on a thread of its own and fails if it takes longer than [`LIMIT`] (the stuck
/// thread is left behind; the test binary exits anyway).
fn within(test: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(test.into())
        .spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(result);
        })
        .expect("spawn the test thread");
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("{test} did not finish within {LIMIT:?}: an executor call hangs"),
    }
}

/// A test's own topic namespace; its private topics are removed when it ends, pass or fail.
struct Topics {
    ns: String,
    scope: TopicScope,
}

impl Topics {
    fn new(kind: Kind, test: &str) -> Topics {
        let ns = format!("exec-{}-{kind:?}-{test}", std::process::id()).to_lowercase();
        let scope = TopicScope::with(ns.clone(), horus_host::shm::private_instance());
        Topics { ns, scope }
    }

    /// The plan of a `u64` topic `name` for a port of `lib`'s node type `ty`.
    fn plan(&self, lib: &PluginLibrary, ty: &str, port: &str, name: &str) -> PortPlan {
        let (ti, _) = lib.node_type(ty).expect("node type");
        let info = lib.info().node_types[ti]
            .ports
            .iter()
            .find(|p| p.name == port)
            .expect("port")
            .clone();
        let topic = TopicName::Local(name.into());
        let spec = PlanSpec {
            type_name: info.type_name,
            type_hash: info.type_hash,
            slot_size: 8,
            capacity: 16,
            single_producer: false,
        };
        if info.output {
            PortPlan::Output { topic, spec }
        } else {
            PortPlan::Input {
                topic,
                spec,
                qos: Qos::Reliable(16),
            }
        }
    }

    /// The test's own endpoint on the other end of `plan` (an input for an output port, and
    /// the other way round).
    fn peer(&self, plan: &PortPlan) -> PortBinding {
        let mirrored = match plan.clone() {
            PortPlan::Output { topic, spec } => PortPlan::Input {
                topic,
                spec,
                qos: Qos::Reliable(16),
            },
            PortPlan::Input { topic, spec, .. } => PortPlan::Output { topic, spec },
            PortPlan::Unconnected { .. } => panic!("no topic"),
        };
        self.scope
            .bind(&[mirrored])
            .unwrap_or_else(|(_, e)| panic!("attach the test's endpoint: {e}"))
            .pop()
            .expect("one binding")
    }
}

impl Drop for Topics {
    fn drop(&mut self) {
        horus_host::shm::remove_private(&self.ns, self.scope.instance());
    }
}

fn subscriber(b: PortBinding) -> Subscriber {
    match b {
        PortBinding::Input(s) => s,
        other => panic!("not an input: {other:?}"),
    }
}

fn publisher(b: PortBinding) -> Publisher {
    match b {
        PortBinding::Output(p) => p,
        other => panic!("not an output: {other:?}"),
    }
}

/// Every `u64` waiting on `sub`.
fn numbers(sub: &mut Subscriber) -> Vec<u64> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while sub.try_recv(&mut buf).is_some() {
        out.push(u64::from_le_bytes(buf[..8].try_into().expect("8 bytes")));
    }
    out
}

/// The node under test and how its executor is set up.
struct Setup {
    /// The plugin crate.
    crate_name: &'static str,
    /// The node type.
    ty: &'static str,
    config: toml::Table,
    /// Port names and plans, in the type's port order.
    ports: Vec<(String, PortPlan)>,
    /// The executor's tick wait.
    wait: Duration,
    /// The node's watchdog timeout.
    watchdog: Option<Duration>,
}

impl Setup {
    fn new(crate_name: &'static str, ty: &'static str) -> Setup {
        Setup {
            crate_name,
            ty,
            config: toml::Table::new(),
            ports: Vec::new(),
            wait: LONG_WAIT,
            watchdog: None,
        }
    }
}

/// Builds an executor of `kind` for `setup`; returns it with its watchdog record and clock
/// origin. The inline and thread executors create the node here; the process executor's
/// worker creates it in `init`.
fn executor(kind: Kind, topics: &Topics, setup: Setup) -> (Box<dyn Executor>, Instant) {
    let Setup {
        crate_name,
        ty,
        config,
        ports,
        wait,
        watchdog,
    } = setup;
    let lib = Arc::new(PluginLibrary::open(&plugin(crate_name)).expect("load the plugin"));
    let (type_index, _) = lib.node_type(ty).expect("node type");
    let epoch = Instant::now();
    let (port_names, ports): (Vec<String>, Vec<PortPlan>) = ports.into_iter().unzip();
    let rebuild = Rebuild {
        plugin: lib.clone(),
        type_index,
        python: None,
        name: format!("conf-{}", ty.to_lowercase()),
        logging: false,
        config: config.clone(),
        ports: ports.clone(),
        port_names: port_names.clone(),
        scope: topics.scope.clone(),
        epoch,
    };
    let health = Health::new(rebuild.name.clone(), watchdog);
    let io = || {
        let bindings = topics
            .scope
            .bind(&ports)
            .unwrap_or_else(|(_, e)| panic!("bind the node's ports: {e}"));
        NodeIo::new(
            rebuild.name.clone(),
            false,
            config.clone(),
            port_names.clone(),
            bindings,
            epoch,
        )
    };
    let exec: Box<dyn Executor> = match kind {
        Kind::Inline => Box::new(NodeInstance::create(lib.clone(), type_index, io()).expect("create")),
        Kind::Thread => Box::new(
            ThreadExec::start(rebuild.clone(), io(), health.clone(), wait)
                .expect("create on a worker thread"),
        ),
        Kind::Process => {
            Box::new(ProcessExec::new(&rebuild, health.clone(), wait).with_worker_program(horus_bin()))
        }
    };
    (exec, epoch)
}

fn config(pairs: &[(&str, i64)]) -> toml::Table {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), toml::Value::Integer(*v)))
        .collect()
}

/// A counter whose `count` output the test reads.
fn counter(kind: Kind, topics: &Topics) -> (Box<dyn Executor>, Subscriber) {
    let lib = PluginLibrary::open(&plugin("hello-counter")).expect("load hello-counter");
    let plan = topics.plan(&lib, "Counter", "count", "conf.count");
    let sub = subscriber(topics.peer(&plan));
    let setup = Setup {
        ports: vec![("count".into(), plan)],
        ..Setup::new("hello-counter", "Counter")
    };
    (executor(kind, topics, setup).0, sub)
}

/// Ticks once and expects a tick that finished well.
fn tick_ok(exec: &mut dyn Executor) {
    match exec.tick(0) {
        TickOutcome::Finished(Ok(()), _) => {}
        other => panic!("expected a finished tick: {other:?}"),
    }
}

/// Ticks once and expects a tick that succeeds, now or, for a worker whose wait is short on a
/// busy machine, when collected later.
fn tick_done(exec: &mut dyn Executor) {
    match exec.tick(0) {
        TickOutcome::Finished(Ok(()), _) => {}
        TickOutcome::Started => collect_late(exec).0.expect("the tick succeeds"),
        other => panic!("expected a tick that succeeds: {other:?}"),
    }
}

/// Ticks until a tick handed off earlier is collected (at most [`LIMIT`] / 2); returns its
/// result and duration. Only `Busy` may come before it.
fn collect_late(exec: &mut dyn Executor) -> (Result<(), horus_host::ffi::CallError>, Duration) {
    let deadline = Instant::now() + LIMIT / 2;
    loop {
        match exec.tick(0) {
            TickOutcome::Late(r, took) => return (r, took),
            TickOutcome::Busy => {}
            other => panic!("expected Busy until the tick is collected: {other:?}"),
        }
        assert!(Instant::now() < deadline, "the handed-off tick never came back");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Restarts the node: `begin_restart`, then `poll_restart` until it is no longer pending (at
/// most [`LIMIT`] / 2).
fn restart(exec: &mut dyn Executor) -> Result<(), horus_host::ffi::CallError> {
    let deadline = Instant::now() + LIMIT / 2;
    let mut status = exec.begin_restart();
    loop {
        match status {
            RestartStatus::Ready => return Ok(()),
            RestartStatus::Failed(e) => return Err(e),
            RestartStatus::Pending => {}
        }
        assert!(Instant::now() < deadline, "the restart never came up");
        std::thread::sleep(Duration::from_millis(5));
        status = exec.poll_restart();
    }
}

/// A `SlowRestart` node (every tick fails) whose `init` after `after_ms` of its clock sleeps
/// `init_ms` (forever if < 0).
fn slow_restart(kind: Kind, topics: &Topics, init_ms: i64, after_ms: i64) -> (Box<dyn Executor>, Instant) {
    let setup = Setup {
        config: config(&[("init_ms", init_ms), ("after_ms", after_ms)]),
        ..Setup::new("faulty-nodes", "SlowRestart")
    };
    executor(kind, topics, setup)
}

// ---- the contract, one function per point ----

/// `init` then `tick`: each tick runs the node once (the counter publishes 0, 1, 2) and the
/// io snapshot counts what it sent, per port too.
fn init_and_ticks_are_counted(kind: Kind) {
    let topics = Topics::new(kind, "ticks");
    let (mut exec, mut sub) = counter(kind, &topics);
    exec.init().expect("init");
    for _ in 0..3 {
        tick_ok(&mut *exec);
    }
    assert_eq!(numbers(&mut sub), vec![0, 1, 2]);
    let io = exec.io_snapshot();
    assert_eq!(io.totals, (3, 0, 0), "(sent, received, dropped)");
    assert_eq!(io.pending, 0);
    assert_eq!(io.topics.len(), 1, "{:?}", io.topics);
    let port = &io.topics[0];
    assert_eq!((port.port.as_str(), port.direction.as_str()), ("count", "output"));
    assert_eq!(port.messages, 3);
    assert!(port.topic.ends_with("conf.count"), "{}", port.topic);
}

/// A tick that returns an error is reported as a finished tick with that error (kind `Error`,
/// not a crash), and the node keeps ticking.
fn a_failing_tick_is_an_error(kind: Kind) {
    let topics = Topics::new(kind, "fail");
    let (mut exec, _) = executor(kind, &topics, Setup::new("faulty-nodes", "AlwaysError"));
    exec.init().expect("init");
    for n in 1..=2 {
        match exec.tick(0) {
            TickOutcome::Finished(Err(e), _) => {
                assert_eq!(e.kind, CallErrorKind::Error, "{e}");
                assert!(e.message.contains(&format!("injected error at tick {n}")), "{e}");
            }
            other => panic!("expected a failed tick: {other:?}"),
        }
    }
}

/// `restart` destroys the node and builds a fresh instance, initialised: the counter starts
/// from 0 again, on the same topic.
fn restart_gives_a_fresh_instance(kind: Kind) {
    let topics = Topics::new(kind, "restart");
    let (mut exec, mut sub) = counter(kind, &topics);
    exec.init().expect("init");
    tick_ok(&mut *exec);
    tick_ok(&mut *exec);
    assert_eq!(numbers(&mut sub), vec![0, 1]);
    restart(&mut *exec).expect("restart");
    tick_ok(&mut *exec);
    tick_ok(&mut *exec);
    assert_eq!(numbers(&mut sub), vec![0, 1], "a fresh counter");
}

/// `shutdown` runs the node's shutdown once it is idle; the executor then drops cleanly.
fn shutdown_after_ticks(kind: Kind) {
    let topics = Topics::new(kind, "shutdown");
    let (mut exec, _sub) = counter(kind, &topics);
    exec.init().expect("init");
    tick_ok(&mut *exec);
    exec.shutdown().expect("shutdown");
    drop(exec);
}

/// `pending_input` counts the messages waiting in the node's inputs; a tick takes them, and
/// the io snapshot counts them as received.
fn pending_input_and_received(kind: Kind) {
    let topics = Topics::new(kind, "pending");
    let lib = PluginLibrary::open(&plugin("hello-counter")).expect("load hello-counter");
    let plan = topics.plan(&lib, "Summer", "numbers", "conf.numbers");
    let mut publ = publisher(topics.peer(&plan));
    let setup = Setup {
        ports: vec![("numbers".into(), plan)],
        ..Setup::new("hello-counter", "Summer")
    };
    let (mut exec, _) = executor(kind, &topics, setup);
    // The process executor's worker attaches the node's input during `init`, so the numbers
    // are sent after it.
    exec.init().expect("init");
    assert_eq!(exec.pending_input(), 0);
    for n in [1u64, 2, 3] {
        publ.send(&n.to_le_bytes()).expect("send");
    }
    assert_eq!(exec.pending_input(), 3);
    assert_eq!(exec.io_snapshot().pending, 3);
    tick_ok(&mut *exec);
    assert_eq!(exec.pending_input(), 0);
    let io = exec.io_snapshot();
    assert_eq!(io.totals, (0, 3, 0), "(sent, received, dropped)");
    assert_eq!(io.topics.len(), 1, "{:?}", io.topics);
    assert_eq!(io.topics[0].direction, "input");
    assert_eq!(io.topics[0].messages, 3);
}

/// A tick slower than the executor's wait: a worker hands it off (`Started`), is `Busy` until
/// it ends, refuses `shutdown` meanwhile, and reports it `Late` with its duration; inline, the
/// call simply takes that long. Either way the tick's result arrives exactly once.
fn a_slow_tick_is_collected_once(kind: Kind) {
    let topics = Topics::new(kind, "slow");
    let sleep = Duration::from_millis(150);
    let setup = Setup {
        config: config(&[("sleep_ms", 150)]),
        wait: Duration::from_millis(10),
        ..Setup::new("faulty-nodes", "Slow")
    };
    let (mut exec, _) = executor(kind, &topics, setup);
    exec.init().expect("init");
    let took = match exec.tick(0) {
        TickOutcome::Finished(r, took) => {
            assert_eq!(kind, Kind::Inline, "a worker does not wait out a slow tick");
            r.expect("the slow tick succeeds");
            took
        }
        TickOutcome::Started => {
            assert_ne!(kind, Kind::Inline);
            let refused = exec.shutdown().expect_err("no shutdown while in a tick");
            assert!(refused.message.contains("still in a tick"), "{refused}");
            let (r, took) = collect_late(&mut *exec);
            r.expect("the slow tick succeeds");
            took
        }
        other => panic!("expected Finished or Started: {other:?}"),
    };
    assert!(took >= sleep, "the tick's own duration: {took:?}");
    exec.shutdown().expect("shutdown once idle");
}

/// A tick that never returns: a worker reports itself `hung` past the timeout, `quarantine`
/// abandons it, and `restart` replaces it with a fresh instance that ticks. Inline, nothing can
/// be abandoned (the scheduler thread itself would be in the tick): a healthy node is never
/// `hung` and `quarantine` refuses.
fn a_hung_worker_is_quarantined_and_replaced(kind: Kind) {
    let topics = Topics::new(kind, "hung");
    let timeout = Duration::from_millis(50);
    if kind == Kind::Inline {
        let (mut exec, _sub) = counter(kind, &topics);
        exec.init().expect("init");
        tick_ok(&mut *exec);
        assert!(!exec.hung(Duration::ZERO, Instant::now()));
        assert!(!exec.quarantine(), "an inline node cannot be abandoned");
        tick_ok(&mut *exec);
        return;
    }
    // Tick 1 returns, tick 2 hangs: a fresh instance's first tick returns again.
    let setup = Setup {
        config: config(&[("after", 2)]),
        wait: Duration::from_millis(10),
        watchdog: Some(timeout),
        ..Setup::new("faulty-nodes", "Hang")
    };
    let (mut exec, epoch) = executor(kind, &topics, setup);
    exec.init().expect("init");
    tick_done(&mut *exec);
    assert!(!exec.hung(timeout, epoch), "idle is not hung");
    assert!(matches!(exec.tick(0), TickOutcome::Started));
    let deadline = Instant::now() + LIMIT / 2;
    while !exec.hung(timeout, epoch) {
        assert!(Instant::now() < deadline, "never reported hung");
        assert!(matches!(exec.tick(0), TickOutcome::Busy));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(exec.quarantine(), "a worker can be abandoned");
    assert!(
        !exec.hung(timeout, epoch),
        "nothing is in a tick after the quarantine"
    );
    restart(&mut *exec).expect("restart on a fresh worker");
    tick_done(&mut *exec);
    exec.shutdown().expect("shutdown");
}

/// A worker's restart is handed off: `begin_restart` returns `Pending` while the fresh
/// instance's `init` (2 s here) runs on the worker; meanwhile `tick` is `Busy`, `shutdown`
/// refuses and a snapshot does not wait; polling then says `Ready`, and the fresh instance
/// ticks. Inline, `begin_restart` runs the restart to its end and says `Ready`.
fn a_restart_is_handed_off_and_polled(kind: Kind) {
    let topics = Topics::new(kind, "slowrestart");
    let (mut exec, epoch) = slow_restart(kind, &topics, 2000, 200);
    exec.init().expect("init (quick at start-up)");
    assert!(matches!(exec.tick(0), TickOutcome::Finished(Err(_), _)));
    // Past `after_ms` on the node's clock: the restart's init is the slow one.
    std::thread::sleep(Duration::from_millis(250).saturating_sub(epoch.elapsed()));
    match exec.begin_restart() {
        RestartStatus::Ready => assert_eq!(kind, Kind::Inline, "a worker does not wait out an init"),
        RestartStatus::Pending => {
            assert_ne!(kind, Kind::Inline);
            assert!(matches!(exec.tick(0), TickOutcome::Busy));
            let refused = exec.shutdown().expect_err("no shutdown while restarting");
            assert!(refused.message.contains("still restarting"), "{refused}");
            let _ = exec.io_snapshot();
            assert!(matches!(exec.poll_restart(), RestartStatus::Pending));
            let deadline = Instant::now() + LIMIT / 2;
            loop {
                match exec.poll_restart() {
                    RestartStatus::Pending => {}
                    RestartStatus::Ready => break,
                    RestartStatus::Failed(e) => panic!("the restart failed: {e}"),
                }
                assert!(Instant::now() < deadline, "the restart never came up");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        RestartStatus::Failed(e) => panic!("the restart failed: {e}"),
    }
    assert!(
        matches!(exec.poll_restart(), RestartStatus::Ready),
        "nothing pending"
    );
    match exec.tick(0) {
        TickOutcome::Finished(Err(e), _) => assert!(e.message.contains("at tick 1"), "a fresh instance: {e}"),
        other => panic!("expected the fresh instance's failing tick: {other:?}"),
    }
    exec.shutdown().expect("shutdown once idle");
}

/// A worker's restart whose `init` never returns stays `Pending`; `quarantine` abandons it (a
/// thread is counted in `abandoned_threads` while it stays stuck; a process is killed), and the
/// next restart starts a fresh worker; the executor drops without waiting for the stuck one.
/// Inline, nothing can be abandoned (and such a restart would hang the caller): `quarantine`
/// refuses and no thread is ever abandoned.
fn a_hung_restart_is_abandoned(kind: Kind) {
    let topics = Topics::new(kind, "hungrestart");
    let (mut exec, epoch) = slow_restart(kind, &topics, -1, 200);
    exec.init().expect("init (quick at start-up)");
    if kind == Kind::Inline {
        assert!(!exec.quarantine());
        assert_eq!(exec.abandoned_threads(), 0);
        return;
    }
    std::thread::sleep(Duration::from_millis(250).saturating_sub(epoch.elapsed()));
    assert!(matches!(exec.begin_restart(), RestartStatus::Pending));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        matches!(exec.poll_restart(), RestartStatus::Pending),
        "init never returns"
    );
    assert!(exec.quarantine(), "a worker in a restart can be abandoned");
    let stuck = if kind == Kind::Thread { 1 } else { 0 };
    assert_eq!(exec.abandoned_threads(), stuck);
    assert!(
        matches!(exec.poll_restart(), RestartStatus::Ready),
        "nothing pending after it"
    );
    assert!(
        matches!(exec.begin_restart(), RestartStatus::Pending),
        "a fresh worker, as slow"
    );
    assert!(exec.quarantine());
    assert_eq!(exec.abandoned_threads(), 2 * stuck);
    drop(exec);
}

macro_rules! contract_suite {
    ($($kind:ident: $module:ident),* $(,)?) => {$(
        mod $module {
            use super::*;

            #[test]
            fn init_and_ticks_are_counted() {
                within(stringify!($module), || super::init_and_ticks_are_counted(Kind::$kind));
            }

            #[test]
            fn a_failing_tick_is_an_error() {
                within(stringify!($module), || super::a_failing_tick_is_an_error(Kind::$kind));
            }

            #[test]
            fn restart_gives_a_fresh_instance() {
                within(stringify!($module), || super::restart_gives_a_fresh_instance(Kind::$kind));
            }

            #[test]
            fn shutdown_after_ticks() {
                within(stringify!($module), || super::shutdown_after_ticks(Kind::$kind));
            }

            #[test]
            fn pending_input_and_received() {
                within(stringify!($module), || super::pending_input_and_received(Kind::$kind));
            }

            #[test]
            fn a_slow_tick_is_collected_once() {
                within(stringify!($module), || super::a_slow_tick_is_collected_once(Kind::$kind));
            }

            #[test]
            fn a_restart_is_handed_off_and_polled() {
                within(stringify!($module), || super::a_restart_is_handed_off_and_polled(Kind::$kind));
            }

            #[test]
            fn a_hung_restart_is_abandoned() {
                within(stringify!($module), || super::a_hung_restart_is_abandoned(Kind::$kind));
            }

            #[test]
            fn a_hung_worker_is_quarantined_and_replaced() {
                within(stringify!($module), || {
                    super::a_hung_worker_is_quarantined_and_replaced(Kind::$kind)
                });
            }
        }
    )*};
}

contract_suite!(Inline: inline, Thread: thread, Process: process);

/// Issue #12: a create argument (how the host hands the Python loader a node's source) goes
/// only to a plugin that exports the create entry taking one; an ordinary plugin refuses it
/// with an error naming that entry, and nothing is created.
#[test]
fn an_ordinary_plugin_refuses_a_create_argument() {
    let lib = Arc::new(PluginLibrary::open(&plugin("hello-counter")).expect("load the plugin"));
    let (type_index, _) = lib.node_type("Counter").expect("node type");
    let io = NodeIo::new(
        "arg".into(),
        false,
        toml::Table::new(),
        Vec::new(),
        Vec::new(),
        Instant::now(),
    );
    let err = NodeInstance::create_with_arg(lib.clone(), type_index, io, Some(b"{}".to_vec())).unwrap_err();
    assert_eq!(err.kind, CallErrorKind::Error);
    assert!(err.message.contains("horus_loader_create_v1"), "{err}");
    let io = NodeIo::new(
        "plain".into(),
        false,
        toml::Table::new(),
        Vec::new(),
        Vec::new(),
        Instant::now(),
    );
    NodeInstance::create_with_arg(lib, type_index, io, None)
        .expect("without an argument it is a plain create");
}
