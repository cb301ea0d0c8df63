//! `./scripts/bench.sh isolation`: what isolation costs per tick, measured in one run on the
//! `bench-noop` node through the scheduler's own executors (`scheduler::Exec`): `inline` (a
//! direct call), `thread` (a channel handoff to a worker thread and back) and `process` (a
//! command through the shared-memory command block to a worker process and back). Then how fast
//! a crashing worker process is noticed (a `Segfault` node), and how long its replacement takes
//! to start.
//!
//! Two paces: back to back (the worker is still spinning when the next tick comes) and one tick
//! per millisecond (the worker sleeps between ticks, as under a real scheduler; the figure that
//! matters). The benchmark is its own worker: the process executor re-executes it with
//! `__worker`.

use horus_host::ffi::{CallErrorKind, NodeInstance, PluginLibrary};
use horus_host::io::NodeIo;
use horus_host::scheduler::{Exec, Executor, Health, Rebuild, RestartStatus, TickOutcome};
use horus_host::topic::TopicScope;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICKS: u32 = 20_000;

fn plugin(name: &str) -> Arc<PluginLibrary> {
    let exe = std::env::current_exe().expect("bench exe");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps/<bench>");
    let so: PathBuf = dir.join(format!("lib{name}.so"));
    assert!(
        so.is_file(),
        "{} missing: scripts/bench.sh builds it",
        so.display()
    );
    Arc::new(PluginLibrary::open(&so).expect("load plugin"))
}

fn rebuild(lib: &Arc<PluginLibrary>, type_name: &str, config: toml::Table, epoch: Instant) -> Rebuild {
    let (type_index, _) = lib.node_type(type_name).expect("node type");
    Rebuild {
        plugin: lib.clone(),
        type_index,
        python: None,
        name: format!("bench-{}", type_name.to_lowercase()),
        logging: false,
        config,
        ports: Vec::new(),
        port_names: Vec::new(),
        scope: TopicScope::new(),
        epoch,
    }
}

fn io(r: &Rebuild) -> NodeIo {
    NodeIo::new(
        r.name.clone(),
        false,
        r.config.clone(),
        Vec::new(),
        Vec::new(),
        r.epoch,
    )
}

/// Median ns per tick over 5 rounds of TICKS ticks.
fn per_tick(exec: &mut Exec) -> f64 {
    let mut rounds: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..TICKS {
                match exec.tick(0) {
                    TickOutcome::Finished(Ok(()), _) => {}
                    other => panic!("tick: {other:?}"),
                }
            }
            start.elapsed().as_nanos() as f64 / f64::from(TICKS)
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[2]
}

/// Median ns of one tick handoff when ticks come 1 ms apart (the worker sleeps in between, as
/// it does under a real scheduler), over 2000 ticks.
fn paced(exec: &mut Exec) -> f64 {
    let mut samples: Vec<f64> = (0..2000)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(1));
            let start = Instant::now();
            match exec.tick(0) {
                TickOutcome::Finished(Ok(()), _) => {}
                other => panic!("tick: {other:?}"),
            }
            start.elapsed().as_nanos() as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__worker") {
        let job = std::env::var(horus_host::worker::JOB_ENV).unwrap_or_default();
        if let Err(e) = horus_host::worker::run(&job) {
            eprintln!("worker: {e}");
            std::process::exit(1);
        }
        return;
    }
    if std::env::var_os("HORUS_NAMESPACE").is_none() {
        std::env::set_var("HORUS_NAMESPACE", format!("bench{}", std::process::id()));
    }
    let epoch = Instant::now();
    let noop = plugin("bench_noop");
    let wait = Duration::from_secs(1);

    let r = rebuild(&noop, "Spin", toml::Table::new(), epoch);
    let mut inline = Exec::Inline(NodeInstance::create(noop.clone(), r.type_index, io(&r)).expect("create"));
    inline.init().expect("init");
    let health = Health::new(r.name.clone(), None);
    let mut thread = Exec::Thread(Box::new(
        horus_host::scheduler::ThreadExec::start(r.clone(), io(&r), health.clone(), wait).expect("thread"),
    ));
    thread.init().expect("init");
    let mut process = Exec::Process(Box::new(horus_host::scheduler::ProcessExec::new(
        &r, health, wait,
    )));
    process.init().expect("start the worker process");

    let base = per_tick(&mut inline);
    let on_thread = per_tick(&mut thread);
    let in_process = per_tick(&mut process);
    println!(
        "BENCH isolation_tick_thread value={on_thread:.0} unit=ns baseline={base:.0} ratio={:.1} baseline_name=inline overhead_ns={:.0}",
        on_thread / base,
        on_thread - base
    );
    println!(
        "BENCH isolation_tick_process value={in_process:.0} unit=ns baseline={base:.0} ratio={:.1} baseline_name=inline overhead_ns={:.0}",
        in_process / base,
        in_process - base
    );
    let (base_p, thread_p, process_p) = (paced(&mut inline), paced(&mut thread), paced(&mut process));
    println!(
        "BENCH isolation_tick_thread_paced value={thread_p:.0} unit=ns baseline={base_p:.0} ratio={:.1} baseline_name=inline_paced pace=1ms overhead_ns={:.0}",
        thread_p / base_p,
        thread_p - base_p
    );
    println!(
        "BENCH isolation_tick_process_paced value={process_p:.0} unit=ns baseline={base_p:.0} ratio={:.1} baseline_name=inline_paced pace=1ms overhead_ns={:.0}",
        process_p / base_p,
        process_p - base_p
    );
    drop((inline, thread, process));

    // Crash detection and restart, 10 times.
    let faulty = plugin("faulty_nodes");
    let mut config = toml::Table::new();
    config.insert("after".into(), toml::Value::Integer(1));
    let r = rebuild(&faulty, "Segfault", config, epoch);
    let mut crashy = Exec::Process(Box::new(horus_host::scheduler::ProcessExec::new(
        &r,
        Health::new(r.name.clone(), None),
        Duration::from_secs(5),
    )));
    crashy.init().expect("start");
    let (mut detect, mut restart) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let start = Instant::now();
        match crashy.tick(0) {
            TickOutcome::Finished(Err(e), _) if e.kind == CallErrorKind::Crashed => {}
            other => panic!("expected a crash: {other:?}"),
        }
        detect.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        // Handed off, then polled (as the scheduler does, once per cycle) until it is up.
        let mut status = crashy.begin_restart();
        while matches!(status, RestartStatus::Pending) {
            std::thread::sleep(Duration::from_micros(200));
            status = crashy.poll_restart();
        }
        if let RestartStatus::Failed(e) = status {
            panic!("restart: {e}");
        }
        restart.push(start.elapsed().as_secs_f64() * 1e3);
    }
    detect.sort_by(f64::total_cmp);
    restart.sort_by(f64::total_cmp);
    let (d, rs) = (detect[5], restart[5]);
    println!(
        "BENCH isolation_crash_detect value={d:.2} unit=ms baseline=100 ratio={:.3} baseline_name=target max={:.2}",
        d / 100.0,
        detect[9]
    );
    println!("BENCH isolation_restart value={rs:.2} unit=ms baseline=100 ratio={:.2} baseline_name=target_detect max={:.2}", rs / 100.0, restart[9]);
}
