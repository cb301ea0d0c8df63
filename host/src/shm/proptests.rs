//! Property tests of the ring and the segment (issue 13, item 10): random shapes of publishers
//! and subscribers under real concurrency, on a named (multi-producer) topic and on a Link
//! (single producer, fencing); attach against random header bytes; endpoints over a segment
//! whose shared state is scribbled on. Case counts are small so CI time stays small.

use super::*;
use proptest::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn ns() -> String {
    format!(
        "prop{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A subscriber's QoS: `reliable` (publishers wait for it) and its depth.
#[derive(Debug, Clone, Copy)]
struct Qos {
    reliable: bool,
    depth: u32,
}

fn qos() -> impl Strategy<Value = Qos> {
    (any::<bool>(), 1u32..=32).prop_map(|(reliable, depth)| Qos { reliable, depth })
}

/// Message `n` of publisher `id`: `[id, n as 8 bytes, fill...]`, its length varying with `n`.
fn message(id: u8, n: u64, slot: usize, buf: &mut Vec<u8>) {
    let len = 9 + (n as usize * 7 + id as usize) % (slot - 8);
    buf.clear();
    buf.push(id);
    buf.extend_from_slice(&n.to_le_bytes());
    buf.resize(len, (n as u8) ^ id ^ 0x5a);
}

struct Seen {
    per_publisher: Vec<Vec<u64>>,
    torn: u64,
    dropped: u64,
}

/// Runs `publishers` threads sending `per` messages each (retrying on `Full`, and on a Link
/// taking it back when revoked) against subscribers of the given QoS; returns what each
/// subscriber saw.
fn run(spec: TopicSpec, publishers: usize, subscribers: &[Qos], per: u64) -> Vec<Seen> {
    let ns = ns();
    let slot = spec.slot_size as usize;
    let subs: Vec<Subscriber> = subscribers
        .iter()
        .map(|q| subscriber(&ns, &spec, q.depth, q.reliable).unwrap())
        .collect();
    let pubs: Vec<Publisher> = (0..publishers)
        .map(|i| {
            if i == 0 {
                publisher(&ns, &spec).unwrap()
            } else {
                // A second publisher of a Link must take it over; on a named topic this is
                // an ordinary attach.
                publisher_taking_over(&ns, &spec).unwrap()
            }
        })
        .collect();
    let done = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = subs
        .into_iter()
        .map(|mut sub| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut seen = Seen {
                    per_publisher: vec![Vec::new(); publishers],
                    torn: 0,
                    dropped: 0,
                };
                let mut buf = Vec::new();
                loop {
                    let finished = done.load(Ordering::Acquire) == publishers;
                    match sub.try_recv(&mut buf) {
                        Some(_) => {
                            let id = buf[0] as usize;
                            let n = u64::from_le_bytes(buf[1..9].try_into().unwrap());
                            let mut expected = Vec::new();
                            message(buf[0], n, slot, &mut expected);
                            if id >= publishers || buf != expected {
                                seen.torn += 1;
                            } else {
                                seen.per_publisher[id].push(n);
                            }
                        }
                        None if finished => break,
                        None => std::thread::yield_now(),
                    }
                }
                seen.dropped = sub.dropped();
                seen
            })
        })
        .collect();
    let writers: Vec<_> = pubs
        .into_iter()
        .enumerate()
        .map(|(id, mut p)| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                for n in 0..per {
                    message(id as u8, n, slot, &mut buf);
                    loop {
                        match p.send(&buf) {
                            Ok(()) => break,
                            Err(SendError::Full) => std::thread::yield_now(),
                            Err(SendError::Revoked) => p.take_over(),
                            Err(e) => panic!("publisher {id}: {e}"),
                        }
                    }
                }
                done.fetch_add(1, Ordering::Release);
                p
            })
        })
        .collect();
    let pubs: Vec<Publisher> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let seen = readers.into_iter().map(|r| r.join().unwrap()).collect();
    drop(pubs);
    seen
}

/// No torn message; each publisher's messages in order, none twice; `reliable` gets all of
/// them; `keep_last` accounts for every message as received or dropped.
fn check(seen: &[Seen], subscribers: &[Qos], publishers: usize, per: u64) -> Result<(), TestCaseError> {
    for (i, (s, q)) in seen.iter().zip(subscribers).enumerate() {
        prop_assert_eq!(s.torn, 0, "subscriber {} got torn messages", i);
        let mut received = 0u64;
        for (id, ns) in s.per_publisher.iter().enumerate() {
            prop_assert!(
                ns.windows(2).all(|w| w[0] < w[1]),
                "subscriber {}: publisher {} out of order or duplicated",
                i,
                id
            );
            received += ns.len() as u64;
        }
        let total = publishers as u64 * per;
        if q.reliable {
            prop_assert_eq!(
                (received, s.dropped),
                (total, 0),
                "reliable subscriber {} lost messages",
                i
            );
        } else {
            prop_assert_eq!(received + s.dropped, total, "subscriber {}: lost uncounted", i);
        }
    }
    Ok(())
}

fn topic(single_producer: bool, slot_size: u32, capacity: u32) -> TopicSpec {
    TopicSpec {
        topic: if single_producer { "link" } else { "named" }.into(),
        type_name: "Stamped".into(),
        type_hash: 0x5eed,
        slot_size,
        capacity,
        single_producer,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn named_topic_under_concurrent_endpoints(
        publishers in 1usize..=3,
        subscribers in prop::collection::vec(qos(), 1..=3),
        // Up to past the bulk copy's threshold: torn copies of lapped slots, both ways.
        slot in 16u32..=1200,
        capacity in 2u32..=32,
        per in 1u64..=400,
    ) {
        let seen = run(topic(false, slot, capacity), publishers, &subscribers, per);
        check(&seen, &subscribers, publishers, per)?;
    }

    /// A Link with two producers that keep taking it from each other (fencing): the same
    /// guarantees, and no message of a revoked send.
    #[test]
    fn link_under_fencing(
        publishers in 1usize..=2,
        subscribers in prop::collection::vec(qos(), 1..=3),
        slot in 16u32..=200,
        capacity in 2u32..=32,
        per in 1u64..=400,
    ) {
        let seen = run(topic(true, slot, capacity), publishers, &subscribers, per);
        check(&seen, &subscribers, publishers, per)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Attach against a header with random edits (or all random): an error or a segment that
    /// works, never a panic.
    #[test]
    fn attach_against_random_header_bytes(
        edits in prop::collection::vec((0usize..128, any::<u8>()), 0..12),
        all_random in any::<bool>(),
        noise in prop::collection::vec(any::<u8>(), 128),
        truncate in prop::option::of(0u64..8192),
    ) {
        let ns = ns();
        let spec = topic(false, 24, 4);
        let keep = publisher(&ns, &spec).unwrap();
        let path = format!("/dev/shm{}", shm_name(&ns, &spec.topic));
        let mut bytes = std::fs::read(&path).unwrap();
        if all_random {
            bytes[..128].copy_from_slice(&noise);
        }
        for (at, b) in &edits {
            bytes[*at] = *b;
        }
        std::fs::write(&path, &bytes).unwrap();
        if let Some(len) = truncate {
            std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len).unwrap();
        }
        if let Ok(mut sub) = subscriber(&ns, &spec, 4, false) {
            let mut buf = Vec::new();
            for _ in 0..4 {
                let _ = sub.try_recv(&mut buf);
            }
            if let Ok(mut p) = publisher(&ns, &spec) {
                let _ = p.send(b"still works");
            }
        }
        let _ = peek(&ns, &spec.topic);
        if truncate.is_some() {
            // Its mapping may now reach past the end of the file: detaching would touch it.
            std::mem::forget(keep);
        } else {
            // It uses its own copy of the header, so the scribbled one does not matter.
            drop(keep);
        }
        let _ = std::fs::remove_file(&path);
    }

    /// Endpoints over a segment whose shared state (control line, peer table, slot headers) is
    /// scribbled on while they are attached: sends and receives return (an error, a counted
    /// corruption, a message), never panic nor index out of bounds.
    #[test]
    fn endpoints_survive_scribbled_shared_state(
        single_producer in any::<bool>(),
        scribbles in prop::collection::vec((128usize..(layout::SLOTS_OFFSET + 4 * 64), any::<u64>()), 1..16),
    ) {
        let ns = ns();
        let spec = topic(single_producer, 40, 4);
        let mut sub = subscriber(&ns, &spec, 4, false).unwrap();
        let mut reliable = subscriber(&ns, &spec, 2, true).unwrap();
        let mut p = publisher(&ns, &spec).unwrap();
        let _ = p.send(b"before");
        {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(format!("/dev/shm{}", shm_name(&ns, &spec.topic)))
                .unwrap();
            use std::os::unix::fs::FileExt;
            for (at, v) in &scribbles {
                let at = (*at & !7) as u64;
                file.write_all_at(&v.to_ne_bytes(), at).unwrap();
            }
        }
        let mut buf = Vec::new();
        for i in 0..4u8 {
            let _ = p.send(&[i; 12]);
            let _ = sub.try_recv(&mut buf);
            let _ = reliable.try_recv(&mut buf);
        }
        let _ = sub.pending();
        let _ = (sub.corrupt(), p.corrupt());
        drop((sub, reliable, p));
        // A scribbled peer table may name live processes: remove the segment ourselves.
        let _ = std::fs::remove_file(format!("/dev/shm{}", shm_name(&ns, &spec.topic)));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A message sent in parts (any split, any alignment) is the bytes of their concatenation,
    /// and a reader copying a word-aligned range of it out gets exactly those bytes; sizes on
    /// both sides of the bulk copy's threshold.
    #[test]
    fn parts_copy_in_as_one_message(
        data in proptest::collection::vec(any::<u8>(), 0..1500),
        cuts in proptest::collection::vec(0usize..1500, 0..5),
        from in 0usize..200,
        take in 0usize..1500,
    ) {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
        cuts.sort_unstable();
        let mut parts = Vec::new();
        let mut at = 0;
        for c in cuts.into_iter().chain([data.len()]) {
            parts.push(&data[at..c]);
            at = c;
        }
        let words: Vec<std::sync::atomic::AtomicU64> = (0..200).map(|_| Default::default()).collect();
        ring::copy_in_parts(&words, &parts);
        let mut whole = Vec::new();
        ring::copy_out(&words, data.len(), &mut whole);
        prop_assert_eq!(&whole, &data);
        let offset = (from * 8).min(data.len() / 8 * 8);
        let end = (offset + take).min(data.len());
        let mut part = vec![0u8; end - offset];
        copy_words_out(&words, offset, &mut part);
        prop_assert_eq!(&part[..], &data[offset..end]);
    }
}
