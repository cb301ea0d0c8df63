//! `./scripts/bench.sh topics`: shared-memory topics between two processes pinned to different
//! cores, next to the hardware floor measured by the same harness in the same run.
//!
//! - one-way latency (half a ping-pong round trip), median and p99, 8 B and 4 KiB, for a Link
//!   (single producer) and a Hub (multi-producer claim), against `floor::RawChannel` (a spin
//!   on a shared line that copies the same bytes with the same word copy);
//! - wake-up of a sleeping subscriber (`recv_timeout`, futex) against a raw futex ping-pong;
//! - throughput of 8-byte messages on one reliable Link, against the 20 M msgs/s target.
//!
//! With `--large` (`./scripts/bench.sh large`, issue 18): one-way latency of 4 KiB to 6 MiB
//! messages on a Link, copied (`send`/`try_recv`) and loaned (`loan`/`try_recv_pinned`: written
//! and read in place), against a memcpy of the payload in the same run.
//!
//! The benchmark re-executes itself as the second process (`--child ...`).

use horus_host::shm::{self, floor::RawChannel, Publisher, Subscriber, TopicSpec};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const WARMUP: usize = 2_000;
const ROUNDS: usize = 20_000;
const WAKE_ROUNDS: usize = 3_000;
const THROUGHPUT_MESSAGES: u64 = 10_000_000;

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
        eprintln!("warning: cannot pin to CPU {cpu}: {e}");
    }
}

fn spec(topic: &str, len: usize, link: bool, capacity: u32) -> TopicSpec {
    TopicSpec {
        topic: topic.into(),
        type_name: "bench".into(),
        type_hash: 1,
        slot_size: len.max(8) as u32,
        capacity,
        single_producer: link,
    }
}

fn spawn_child(args: &[&str]) -> Child {
    Command::new(std::env::current_exe().expect("bench exe"))
        .arg("--child")
        .args(args)
        .spawn()
        .expect("spawn child")
}

/// Median and p99 of one-way latencies (half round trips), ns.
fn summarize(mut one_way: Vec<f64>) -> (f64, f64) {
    one_way.sort_by(f64::total_cmp);
    (one_way[one_way.len() / 2], one_way[one_way.len() * 99 / 100])
}

fn recv_spin(sub: &mut Subscriber, buf: &mut Vec<u8>) {
    while sub.try_recv(buf).is_none() {
        std::hint::spin_loop();
    }
}

fn send(publ: &mut Publisher, bytes: &[u8]) {
    while publ.send(bytes).is_err() {
        std::hint::spin_loop();
    }
}

/// Slots of the ping-pong topics (4 for payloads of 1 MiB and more, so a 6 MiB pair fits a
/// default /dev/shm).
fn pingpong_capacity(len: usize) -> u32 {
    if len >= 1 << 20 {
        4
    } else {
        16
    }
}

fn topic_pingpong(tag: &str, len: usize, link: bool) -> (f64, f64) {
    topic_pingpong_rounds(tag, len, link, WARMUP, ROUNDS)
}

fn topic_pingpong_rounds(tag: &str, len: usize, link: bool, warmup: usize, rounds: usize) -> (f64, f64) {
    let ns = shm::namespace();
    let cap = pingpong_capacity(len);
    let (ping, pong) = (format!("bench/{tag}/ping"), format!("bench/{tag}/pong"));
    let mut sub = shm::subscriber(&ns, &spec(&pong, len, link, cap), cap, false).expect("pong");
    let mut publ = shm::publisher(&ns, &spec(&ping, len, link, cap)).expect("ping");
    let (len_s, n_s) = (len.to_string(), (warmup + rounds).to_string());
    let link_s = if link { "link" } else { "hub" };
    let mut child = spawn_child(&["topic", tag, &len_s, link_s, &n_s]);
    let mut buf = Vec::new();
    recv_spin(&mut sub, &mut buf); // the child is ready
    let msg = vec![0x5a; len];
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..warmup + rounds {
        let start = Instant::now();
        send(&mut publ, &msg);
        recv_spin(&mut sub, &mut buf);
        if i >= warmup {
            samples.push(start.elapsed().as_nanos() as f64 / 2.0);
        }
    }
    assert_eq!(buf.len(), len);
    child.wait().expect("child");
    summarize(samples)
}

/// Publishes a loaned message of `len` bytes whose first 8 are `stamp` (the rest is what the
/// slot held: a producer writing in place writes its payload anyway, so it is not timed).
fn loan_send(publ: &mut Publisher, len: usize, stamp: u64) {
    while publ.loan().is_err() {
        std::hint::spin_loop();
    }
    publ.loan_bytes().expect("open")[..8].copy_from_slice(&stamp.to_le_bytes());
    publ.send_loan(len).expect("fits");
}

/// Waits for the next message and reads its stamp in place.
fn pinned_spin(sub: &mut Subscriber) -> (u64, usize) {
    loop {
        if let Ok(Some((msg, _))) = sub.try_recv_pinned() {
            let bytes = msg.bytes();
            return (
                u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
                bytes.len(),
            );
        }
        std::hint::spin_loop();
    }
}

/// One-way latency of loaned messages of `len` bytes: a ping-pong where each side writes its
/// message in a loaned slot and reads the other's in place.
fn loan_pingpong_rounds(tag: &str, len: usize, warmup: usize, rounds: usize) -> (f64, f64) {
    let ns = shm::namespace();
    let cap = pingpong_capacity(len);
    let (ping, pong) = (format!("bench/{tag}/ping"), format!("bench/{tag}/pong"));
    let mut sub = shm::subscriber(&ns, &spec(&pong, len, true, cap), cap, false).expect("pong");
    let mut publ = shm::publisher(&ns, &spec(&ping, len, true, cap)).expect("ping");
    let (len_s, n_s) = (len.to_string(), (warmup + rounds).to_string());
    let mut child = spawn_child(&["loan", tag, &len_s, &n_s]);
    pinned_spin(&mut sub); // the child is ready
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..warmup + rounds {
        let start = Instant::now();
        loan_send(&mut publ, len, i as u64);
        let (stamp, got) = pinned_spin(&mut sub);
        if i >= warmup {
            samples.push(start.elapsed().as_nanos() as f64 / 2.0);
        }
        assert_eq!((stamp, got), (i as u64, len), "the reply answers this round");
    }
    child.wait().expect("child");
    summarize(samples)
}

fn floor_pingpong(tag: &str, len: usize) -> (f64, f64) {
    let chan = RawChannel::create(tag).expect("floor channel");
    let len_s = len.to_string();
    let mut child = spawn_child(&["floor", tag, &len_s]);
    let mut buf = Vec::new();
    let mut last = 0;
    chan.recv_spin(1, &mut last, 0, &mut buf); // ready
    let msg = vec![0x5a; len];
    let mut samples = Vec::with_capacity(ROUNDS);
    for i in 0..WARMUP + ROUNDS {
        let start = Instant::now();
        chan.send(0, &msg);
        chan.recv_spin(1, &mut last, len, &mut buf);
        if i >= WARMUP {
            samples.push(start.elapsed().as_nanos() as f64 / 2.0);
        }
    }
    child.wait().expect("child");
    summarize(samples)
}

fn topic_wake() -> (f64, f64) {
    let ns = shm::namespace();
    let mut sub = shm::subscriber(&ns, &spec("bench/wake/pong", 8, true, 16), 16, false).expect("pong");
    let mut publ = shm::publisher(&ns, &spec("bench/wake/ping", 8, true, 16)).expect("ping");
    let mut child = spawn_child(&["wake"]);
    let mut buf = Vec::new();
    sub.recv_timeout(&mut buf, Duration::from_secs(30))
        .expect("child ready");
    let mut samples = Vec::with_capacity(WAKE_ROUNDS);
    for i in 0..200 + WAKE_ROUNDS {
        // Give the child time to fall asleep in its futex wait.
        std::thread::sleep(Duration::from_micros(200));
        let start = Instant::now();
        send(&mut publ, &[1; 8]);
        sub.recv_timeout(&mut buf, Duration::from_secs(30)).expect("pong");
        if i >= 200 {
            samples.push(start.elapsed().as_nanos() as f64 / 2.0);
        }
    }
    child.wait().expect("child");
    summarize(samples)
}

fn futex_wake() -> (f64, f64) {
    let chan = RawChannel::create("wake").expect("floor channel");
    let mut child = spawn_child(&["futex"]);
    let mut last = 0;
    chan.futex_wait(1, &mut last); // ready
    let mut samples = Vec::with_capacity(WAKE_ROUNDS);
    for i in 0..200 + WAKE_ROUNDS {
        std::thread::sleep(Duration::from_micros(200));
        let start = Instant::now();
        chan.futex_wake(0);
        chan.futex_wait(1, &mut last);
        if i >= 200 {
            samples.push(start.elapsed().as_nanos() as f64 / 2.0);
        }
    }
    child.wait().expect("child");
    summarize(samples)
}

fn throughput() -> f64 {
    let ns = shm::namespace();
    let mut done = shm::subscriber(&ns, &spec("bench/tp/done", 8, true, 4), 4, false).expect("done");
    let mut publ = shm::publisher(&ns, &spec("bench/tp/data", 8, true, 65536)).expect("data");
    let mut child = spawn_child(&["throughput"]);
    let mut buf = Vec::new();
    done.recv_timeout(&mut buf, Duration::from_secs(30))
        .expect("child ready");
    let start = Instant::now();
    for n in 0..THROUGHPUT_MESSAGES {
        send(&mut publ, &n.to_le_bytes());
    }
    done.recv_timeout(&mut buf, Duration::from_secs(120))
        .expect("child done");
    let elapsed = start.elapsed();
    child.wait().expect("child");
    assert_eq!(
        buf,
        (THROUGHPUT_MESSAGES - 1).to_le_bytes(),
        "the child saw every message in order"
    );
    THROUGHPUT_MESSAGES as f64 / elapsed.as_secs_f64()
}

fn child(args: &[String]) {
    pin(1);
    let ns = shm::namespace();
    let mut buf = Vec::new();
    match args[0].as_str() {
        "topic" => {
            let (tag, len, link) = (&args[1], args[2].parse::<usize>().unwrap(), args[3] == "link");
            let n = args[4].parse::<usize>().unwrap();
            let cap = pingpong_capacity(len);
            let mut sub = shm::subscriber(
                &ns,
                &spec(&format!("bench/{tag}/ping"), len, link, cap),
                cap,
                false,
            )
            .unwrap();
            let mut publ = shm::publisher(&ns, &spec(&format!("bench/{tag}/pong"), len, link, cap)).unwrap();
            send(&mut publ, &[0]);
            for _ in 0..n {
                recv_spin(&mut sub, &mut buf);
                send(&mut publ, &buf);
            }
        }
        "loan" => {
            let (tag, len, n) = (
                &args[1],
                args[2].parse::<usize>().unwrap(),
                args[3].parse::<usize>().unwrap(),
            );
            let cap = pingpong_capacity(len);
            let mut sub = shm::subscriber(
                &ns,
                &spec(&format!("bench/{tag}/ping"), len, true, cap),
                cap,
                false,
            )
            .unwrap();
            let mut publ = shm::publisher(&ns, &spec(&format!("bench/{tag}/pong"), len, true, cap)).unwrap();
            loan_send(&mut publ, len, u64::MAX);
            for _ in 0..n {
                let (stamp, _) = pinned_spin(&mut sub);
                loan_send(&mut publ, len, stamp);
            }
        }
        "floor" => {
            let (tag, len) = (&args[1], args[2].parse::<usize>().unwrap());
            let chan = RawChannel::open(tag).unwrap();
            let mut last = 0;
            chan.send(1, &[]);
            for _ in 0..WARMUP + ROUNDS {
                chan.recv_spin(0, &mut last, len, &mut buf);
                chan.send(1, &buf);
            }
        }
        "wake" => {
            let mut sub = shm::subscriber(&ns, &spec("bench/wake/ping", 8, true, 16), 16, false).unwrap();
            let mut publ = shm::publisher(&ns, &spec("bench/wake/pong", 8, true, 16)).unwrap();
            send(&mut publ, &[0; 8]);
            for _ in 0..200 + WAKE_ROUNDS {
                sub.recv_timeout(&mut buf, Duration::from_secs(30)).expect("ping");
                send(&mut publ, &buf);
            }
        }
        "futex" => {
            let chan = RawChannel::open("wake").unwrap();
            let mut last = 0;
            chan.futex_wake(1);
            for _ in 0..200 + WAKE_ROUNDS {
                chan.futex_wait(0, &mut last);
                chan.futex_wake(1);
            }
        }
        "throughput" => {
            let mut sub = shm::subscriber(&ns, &spec("bench/tp/data", 8, true, 65536), 65536, true).unwrap();
            let mut done = shm::publisher(&ns, &spec("bench/tp/done", 8, true, 4)).unwrap();
            send(&mut done, &[0; 8]);
            let mut received = 0u64;
            while received < THROUGHPUT_MESSAGES {
                if sub.try_recv(&mut buf).is_some() {
                    received += 1;
                }
            }
            send(&mut done, &buf);
        }
        other => panic!("unknown child role {other}"),
    }
}

/// `./scripts/bench.sh large` (issue 18): one-way latency of 4 KiB to 6 MiB messages on a Link,
/// copied into the slot and out of it, and loaned (written and read in place), against a
/// memcpy of the payload (between two private buffers, cache-hot) in the same run. Target for
/// loans: ≤ 2 µs one way at every size.
fn large() {
    for (len, label) in [
        (4096usize, "4k"),
        (65536, "64k"),
        (1 << 20, "1m"),
        (6 << 20, "6m"),
    ] {
        let rounds = ((256usize << 20) / len).clamp(300, ROUNDS);
        let (med, p99) = topic_pingpong_rounds(&format!("large-{label}"), len, true, rounds / 10, rounds);
        let (src, mut dst) = (vec![0x5a_u8; len], vec![0_u8; len]);
        let mut copies = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let start = Instant::now();
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut dst);
            copies.push(start.elapsed().as_nanos() as f64);
        }
        let (memcpy, _) = summarize(copies);
        line(
            &format!("large_copy_{label}"),
            med,
            "ns",
            memcpy,
            &format!(" p99={p99:.1} baseline_name=memcpy rounds={rounds}"),
        );
        let (loan_med, loan_p99) = loan_pingpong_rounds(&format!("loan-{label}"), len, WARMUP, ROUNDS);
        line(
            &format!("large_loan_{label}"),
            loan_med,
            "ns",
            memcpy,
            &format!(
                " p99={loan_p99:.1} baseline_name=memcpy rounds={ROUNDS} target_ns=2000 copy_ns={med:.1}"
            ),
        );
    }
}

fn line(name: &str, value: f64, unit: &str, baseline: f64, extra: &str) {
    println!(
        "BENCH {name} value={value:.1} unit={unit} baseline={baseline:.1} ratio={:.2}{extra}",
        value / baseline
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..]);
        return;
    }
    // A namespace of our own, so a concurrent run or test never shares these topics.
    if std::env::var_os("HORUS_NAMESPACE").is_none() {
        std::env::set_var("HORUS_NAMESPACE", format!("bench{}", std::process::id()));
    }
    pin(0);
    if args.first().map(String::as_str) == Some("--large") {
        large();
        return;
    }
    for (len, label) in [(8usize, "8b"), (4096, "4k")] {
        let (floor_med, floor_p99) = floor_pingpong(label, len);
        for (link, kind) in [(true, "link"), (false, "hub")] {
            let (med, p99) = topic_pingpong(&format!("{label}-{kind}"), len, link);
            let target = if len == 8 { 2.0 } else { 1.5 };
            line(
                &format!("topic_latency_{label}_{kind}"),
                med,
                "ns",
                floor_med,
                &format!(" p99={p99:.1} baseline_p99={floor_p99:.1} baseline_name=raw_shm_floor target_ratio={target}"),
            );
        }
    }
    let (futex_med, futex_p99) = futex_wake();
    let (wake_med, wake_p99) = topic_wake();
    line(
        "topic_wake",
        wake_med,
        "ns",
        futex_med,
        &format!(" p99={wake_p99:.1} baseline_p99={futex_p99:.1} baseline_name=raw_futex target_ratio=1.3"),
    );
    let rate = throughput();
    line(
        "topic_throughput_8b",
        rate,
        "msg/s",
        20e6,
        " baseline_name=target higher_is_better=true",
    );
}
