//! Loans and messages held in place: the pinning rules of the ring (see `ring.rs`).

use super::tests::{ns, spec};
use super::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn num(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().unwrap())
}

fn drain(sub: &mut Subscriber) -> Vec<u64> {
    let mut buf = Vec::new();
    std::iter::from_fn(|| sub.try_recv(&mut buf).map(|_| num(&buf))).collect()
}

#[test]
fn a_loan_is_written_in_place_and_published_on_send() {
    let ns = ns();
    let s = spec("loan", 64, 4);
    let mut sub = subscriber(&ns, &s, 4, false).unwrap();
    let mut publ = publisher(&ns, &s).unwrap();
    publ.loan().unwrap();
    assert_eq!(publ.loan(), Err(SendError::LoanOpen), "one loan at a time");
    assert_eq!(
        publ.send(b"x"),
        Err(SendError::LoanOpen),
        "no send past an open loan"
    );
    let bytes = publ.loan_bytes().unwrap();
    assert_eq!(bytes.len(), 64);
    bytes[..11].copy_from_slice(b"in the slot");
    let mut buf = Vec::new();
    assert_eq!(sub.try_recv(&mut buf), None, "not published before send");
    assert_eq!(publ.send_loan(65), Err(SendError::TooLarge { len: 65, max: 64 }));
    publ.send_loan(11).unwrap();
    assert_eq!(publ.send_loan(1), Err(SendError::NoLoan));
    assert!(sub.try_recv(&mut buf).is_some());
    assert_eq!(buf, b"in the slot");
    assert_eq!((publ.messages_sent(), publ.holes()), (1, 0));
}

#[test]
fn a_dropped_loan_is_a_hole_that_readers_step_over() {
    let ns = ns();
    let s = spec("hole", 8, 4);
    let mut sub = subscriber(&ns, &s, 4, true).unwrap();
    let mut publ = publisher(&ns, &s).unwrap();
    publ.send(&1u64.to_le_bytes()).unwrap();
    publ.loan().unwrap();
    publ.loan_bytes().unwrap().copy_from_slice(&99u64.to_le_bytes());
    publ.discard_loan();
    publ.send(&2u64.to_le_bytes()).unwrap();
    publ.loan().unwrap();
    drop(publ); // dropping the publisher discards its open loan too
    assert_eq!(drain(&mut sub), vec![1, 2]);
    assert_eq!(sub.dropped(), 0, "a hole is no lost message");
    assert_eq!(sub.messages_received(), 2);
}

#[test]
fn keep_last_skips_a_held_slot_and_the_held_message_stays_intact() {
    let ns = ns();
    let s = spec("kl-pin", 8, 4);
    let mut holder = subscriber(&ns, &s, 4, false).unwrap();
    let mut other = subscriber(&ns, &s, 4, false).unwrap();
    let mut publ = publisher(&ns, &s).unwrap();
    publ.send(&0u64.to_le_bytes()).unwrap();
    let (held, r) = holder.try_recv_pinned().unwrap().unwrap();
    assert_eq!((num(held.bytes()), r.missed, held.sequence()), (0, 0, 0));
    let mut got = Vec::new();
    for i in 1..=100u64 {
        publ.send(&i.to_le_bytes()).unwrap();
        got.extend(drain(&mut other));
        assert_eq!(num(held.bytes()), 0, "the held message changed after message {i}");
    }
    // Every message reached the other subscriber: the held slot was skipped, not written.
    assert_eq!(got.first(), Some(&0));
    assert_eq!(&got[1..], (1..=100).collect::<Vec<_>>());
    assert!(publ.holes() >= 30, "one hole a lap: {}", publ.holes());
    drop(held);
    let before = publ.holes();
    let mut after = Vec::new();
    for i in 101..=110u64 {
        publ.send(&i.to_le_bytes()).unwrap();
        after.extend(drain(&mut other));
    }
    assert_eq!(publ.holes(), before, "a released slot is written again");
    assert_eq!(after, (101..=110).collect::<Vec<_>>());
}

#[test]
fn reliable_waits_for_a_held_slot() {
    let ns = ns();
    let s = spec("rel-pin", 8, 4);
    let mut sub = subscriber(&ns, &s, 4, true).unwrap();
    let mut publ = publisher(&ns, &s).unwrap();
    publ.send(&0u64.to_le_bytes()).unwrap();
    let (held, _) = sub.try_recv_pinned().unwrap().unwrap();
    for i in 1..4u64 {
        publ.send(&i.to_le_bytes()).unwrap();
    }
    // The next message would go in the held slot: back-pressure, as for a full queue.
    assert_eq!(publ.send(&4u64.to_le_bytes()), Err(SendError::Full));
    assert_eq!(drain(&mut sub), vec![1, 2, 3]);
    assert_eq!(publ.send(&4u64.to_le_bytes()), Err(SendError::Full));
    assert_eq!(num(held.bytes()), 0);
    drop(held);
    publ.send(&4u64.to_le_bytes()).unwrap();
    assert_eq!(drain(&mut sub), vec![4]);
    assert_eq!((sub.dropped(), publ.holes()), (0, 0));
}

#[test]
fn a_subscriber_holds_at_most_half_the_ring() {
    let ns = ns();
    let s = spec("many", 8, 8);
    let mut sub = subscriber(&ns, &s, 8, false).unwrap();
    let mut publ = publisher(&ns, &s).unwrap();
    for i in 0..8u64 {
        publ.send(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(sub.max_held(), 4);
    let held: Vec<_> = (0..4)
        .map(|_| sub.try_recv_pinned().unwrap().unwrap().0)
        .collect();
    let err = sub.try_recv_pinned().unwrap_err();
    assert_eq!((err.held, err.max), (4, 4));
    assert!(
        err.to_string().contains("`many`") && err.to_string().contains("larger depth"),
        "{err}"
    );
    assert_eq!(sub.cursor(), 4, "a refused read takes nothing");
    drop(held);
    assert_eq!(sub.held(), 0);
    assert_eq!(num(sub.try_recv_pinned().unwrap().unwrap().0.bytes()), 4);
}

#[test]
fn a_held_message_outlives_its_subscriber_and_holds_no_publisher_back() {
    let ns = ns();
    let s = spec("outlive", 8, 4);
    let mut sub = subscriber(&ns, &s, 4, true).unwrap();
    let mut publ = publisher(&ns, &s).unwrap();
    publ.send(&7u64.to_le_bytes()).unwrap();
    let (held, _) = sub.try_recv_pinned().unwrap().unwrap();
    drop(sub);
    for i in 0..20u64 {
        publ.send(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(num(held.bytes()), 7);
    assert!(publ.holes() > 0);
    drop(held);
    drop(publ);
    assert!(!std::path::Path::new(&format!("/dev/shm{}", shm_name(&ns, "outlive"))).exists());
}

#[test]
fn a_released_peer_lets_go_of_what_it_held() {
    let ns = ns();
    let s = spec("released", 8, 4);
    let mut sub = subscriber(&ns, &s, 4, true).unwrap();
    let mut publ = publisher(&ns, &s).unwrap();
    publ.send(&0u64.to_le_bytes()).unwrap();
    let (held, _) = sub.try_recv_pinned().unwrap().unwrap();
    // The host abandons the subscriber's owner (a quarantined worker that will never read).
    release_peer(sub.segment().shm_name(), sub.segment().peer_index()).unwrap();
    for i in 1..=8u64 {
        publ.send(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(publ.holes(), 0, "the released slot is written again");
    drop(held); // clears a bit that is already clear
}

/// Readers that hold messages while a publisher runs flat out never see one change: every
/// message is its sequence number repeated over a whole slot.
#[test]
fn held_messages_never_change_under_a_racing_publisher() {
    let ns = ns();
    let s = spec("race-pin", 512, 8);
    let mut publ = publisher(&ns, &s).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let mut sub = subscriber(&ns, &s, 8, false).unwrap();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut held = std::collections::VecDeque::new();
                let mut checked = 0u64;
                while !done.load(Ordering::Acquire) {
                    match sub.try_recv_pinned() {
                        Ok(Some((p, _))) => held.push_back(p),
                        Ok(None) => std::hint::spin_loop(),
                        Err(_) => {
                            held.pop_front();
                        }
                    }
                    for p in &held {
                        let seq = p.sequence();
                        assert!(
                            p.bytes().chunks(8).all(|w| num(w) == seq),
                            "message {seq} changed while held"
                        );
                        checked += 1;
                    }
                }
                checked
            })
        })
        .collect();
    let mut msg = vec![0u8; 512];
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
    let mut seq = 0u64;
    while std::time::Instant::now() < deadline {
        for w in msg.chunks_mut(8) {
            w.copy_from_slice(&seq.to_le_bytes());
        }
        // Holes take sequence numbers too: a message is stamped with the one it gets.
        match publ.loan() {
            Ok(()) => {
                let s = publ.segment().control().write_seq.load(Ordering::Acquire) - 1;
                let bytes = publ.loan_bytes().unwrap();
                for w in bytes.chunks_mut(8) {
                    w.copy_from_slice(&s.to_le_bytes());
                }
                publ.send_loan(512).unwrap();
            }
            Err(SendError::Pinned) => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
        seq += 1;
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}
