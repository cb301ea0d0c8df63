//! `./scripts/bench.sh dispatch`: the cost of one node tick through the plugin ABI (the exact
//! call the scheduler makes: vtable entry, panic guard, status mapping) against a direct trait
//! call of the same node code in the same process, measured in the same run.
//!
//! Prints `BENCH <name> value=<v> unit=<u> baseline=<b> ratio=<r>` lines.

use bench_noop::Spin;
use horus_host::ffi::{NodeInstance, PluginLibrary};
use horus_host::io::NodeIo;
use horus_host::scheduler::BenchNode;
use horus_plugin_api::testing::TestHarness;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

const TICKS: u64 = 5_000_000;
const ROUNDS: usize = 7;

/// Median ns per iteration of `f` over ROUNDS rounds of TICKS calls.
fn measure(mut f: impl FnMut()) -> f64 {
    for _ in 0..TICKS / 10 {
        f();
    }
    let mut rounds: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..TICKS {
                f();
            }
            start.elapsed().as_nanos() as f64 / TICKS as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[ROUNDS / 2]
}

fn plugin_path() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps/<bench>");
    let so = dir.join("libbench_noop.so");
    assert!(
        so.is_file(),
        "{} missing: build it with `cargo build --release -p bench-noop` (scripts/bench.sh does)",
        so.display()
    );
    so
}

fn main() {
    // Cargo passes `--bench` to harness-less benches; nothing else is accepted.
    if std::env::args().skip(1).any(|a| a != "--bench") {
        eprintln!("usage: dispatch [--bench]");
        std::process::exit(2);
    }
    let lib = Arc::new(PluginLibrary::open(&plugin_path()).expect("load bench-noop"));
    let mut abi_node = spin_node(&lib);
    let mut direct = TestHarness::<Spin>::builder("spin").start().expect("harness");

    // Interleave the two so that frequency scaling or a noisy neighbour hits both alike.
    let mut abi = Vec::new();
    let mut base = Vec::new();
    for _ in 0..3 {
        abi.push(measure(|| assert!(black_box(abi_node.tick().is_ok()))));
        base.push(measure(|| assert!(black_box(direct.tick_direct().is_ok()))));
    }
    abi.sort_by(f64::total_cmp);
    base.sort_by(f64::total_cmp);
    let (abi, base) = (abi[1], base[1]);
    println!(
        "BENCH tick_dispatch_abi value={abi:.2} unit=ns baseline={base:.2} ratio={:.2} baseline_name=direct_trait_call target_ns=100 target_ratio=3",
        abi / base
    );
    // The scheduler's own cost per node tick: the same node driven by the scheduler's per-cycle
    // code (breaker, one clock read, tick-time histogram, deadline check, watchdog record)
    // against the bare ABI tick measured right before it.
    let mut bare_node = abi_node;
    let mut supervised = BenchNode::new(spin_node(&lib), setup(&lib));
    let mut bare = Vec::new();
    let mut full = Vec::new();
    for _ in 0..3 {
        bare.push(measure(|| assert!(black_box(bare_node.tick().is_ok()))));
        full.push(measure(|| supervised.cycle()));
    }
    assert!(supervised.ticks() > 0);
    bare.sort_by(f64::total_cmp);
    full.sort_by(f64::total_cmp);
    let overhead = full[1] - bare[1];
    println!(
        "BENCH scheduler_overhead_per_tick value={overhead:.1} unit=ns baseline=50 ratio={:.2} baseline_name=target supervised_ns={:.1} abi_tick_ns={:.1}",
        overhead / 50.0,
        full[1],
        bare[1]
    );
}

/// A `Spin` node of the loaded bench-noop plugin, with no ports.
fn spin_node(lib: &Arc<PluginLibrary>) -> NodeInstance {
    let io = NodeIo::new(
        "spin".into(),
        false,
        toml::Table::new(),
        Vec::new(),
        Vec::new(),
        Instant::now(),
    );
    let mut node = NodeInstance::create(lib.clone(), 0, io).expect("create");
    node.init().expect("init");
    node
}

fn setup(lib: &Arc<PluginLibrary>) -> horus_host::scheduler::NodeSetup {
    horus_host::scheduler::NodeSetup {
        name: "spin".into(),
        plugin: lib.clone(),
        type_index: 0,
        python: None,
        config: toml::Table::new(),
        ports: Vec::new(),
        port_names: Vec::new(),
        priority: 0,
        rate_hz: None,
        trigger: horus_host::manifest::Trigger::Rate,
        timeout: None,
        deadline: Some(std::time::Duration::from_secs(1)),
        watchdog: Some(std::time::Duration::from_secs(1)),
        isolation: horus_host::manifest::Isolation::Inline,
        logging: false,
        origin: plugin_path().display().to_string(),
    }
}
