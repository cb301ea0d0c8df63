//! Shared-memory topics: one POSIX shm segment per topic, a ring of fixed-size slots in it,
//! any number of publishers and subscribers in any number of processes.
//!
//! Owns the segment lifecycle ([`segment`]), the byte layout ([`layout`]) and the lock-free
//! protocol ([`ring`]); besides topics, the command block of a `process`-isolated node's worker
//! ([`ctl`]) and the benchmark floor ([`floor`]). All `unsafe` of shared memory is here (the
//! mapping and the views of it as atomics); the rest of the host uses [`Publisher`],
//! [`Subscriber`] and [`ctl`]'s types, which are safe.
//! It does not own topic naming policy or QoS choices: see [`crate::topic`].

pub mod ctl;
pub mod floor;
pub mod layout;
mod ring;
mod segment;
mod watch;

pub use ring::{copy_words_out, HoldError, Pinned, Publisher, Received, SendError, Subscriber};
pub use segment::{
    describe, forget_dead, is_alive_since, mib, monotonic_ns, my_start_time, namespace, private_instance,
    reclaim_orphans, release_peer, remove_private, revoke_producer, segment_names, shm_free, shm_name,
    start_time, Segment, SegmentInfo, ShmError, TopicSpec, PRIVATE_MARK,
};
pub use watch::{ring_bell, wait_for_input, InputPeer, InputWatch, WaitOutcome};

/// Attaches a publisher to `spec.topic` in namespace `ns`. A Link (single-producer topic) that
/// already has a live producer refuses it with [`ShmError::ProducerTaken`].
pub fn publisher(ns: &str, spec: &TopicSpec) -> Result<Publisher, ShmError> {
    Segment::attach(ns, spec, layout::ROLE_PUBLISHER, 0, false).map(Publisher::new)
}

/// Attaches a publisher that takes a Link over from its current producer, which is revoked
/// (its sends fail and write nothing from now on): for the host replacing a node's endpoints.
pub fn publisher_taking_over(ns: &str, spec: &TopicSpec) -> Result<Publisher, ShmError> {
    Segment::attach_taking_over(ns, spec).map(Publisher::new)
}

/// Attaches a subscriber with queue `depth` (`reliable`: publishers wait for it).
pub fn subscriber(ns: &str, spec: &TopicSpec, depth: u32, reliable: bool) -> Result<Subscriber, ShmError> {
    Segment::attach(ns, spec, layout::ROLE_SUBSCRIBER, depth, reliable).map(Subscriber::new)
}

/// Attaches a `keep_last` subscriber that first receives the (at most `depth`) messages still
/// queued in the ring, then new ones: for an endpoint that attaches lazily, on its first read.
pub fn late_subscriber(ns: &str, spec: &TopicSpec, depth: u32) -> Result<Subscriber, ShmError> {
    Segment::attach_at(ns, spec, layout::ROLE_SUBSCRIBER, depth, false, true).map(Subscriber::new)
}

/// The spec of an existing topic (see [`Segment::peek`]).
pub fn peek(ns: &str, topic: &str) -> Result<Option<TopicSpec>, ShmError> {
    Segment::peek(ns, topic)
}

#[cfg(test)]
mod pin_tests;
#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    static NEXT: AtomicUsize = AtomicUsize::new(0);

    /// A namespace no other test (or process) uses.
    pub(super) fn ns() -> String {
        format!(
            "unit{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub(super) fn spec(topic: &str, slot: u32, capacity: u32) -> TopicSpec {
        TopicSpec {
            topic: topic.into(),
            type_name: "Sample".into(),
            type_hash: 42,
            slot_size: slot,
            capacity,
            single_producer: false,
        }
    }

    fn exists(ns: &str, topic: &str) -> bool {
        std::path::Path::new(&format!("/dev/shm{}", shm_name(ns, topic))).exists()
    }

    #[test]
    fn one_message_round_trip_and_cleanup() {
        let ns = ns();
        let s = spec("a/b", 64, 8);
        let mut sub = subscriber(&ns, &s, 8, false).unwrap();
        let mut publ = publisher(&ns, &s).unwrap();
        assert!(exists(&ns, "a/b"));
        let mut buf = Vec::new();
        assert_eq!(sub.try_recv(&mut buf), None);
        publ.send(b"hello world").unwrap();
        assert_eq!(sub.try_recv(&mut buf), Some(Received { missed: 0 }));
        assert_eq!(buf, b"hello world");
        assert_eq!(sub.try_recv(&mut buf), None);
        drop(sub);
        assert!(exists(&ns, "a/b"), "the publisher is still attached");
        drop(publ);
        assert!(!exists(&ns, "a/b"), "the last endpoint removes the segment");
    }

    /// A live apply re-binds an input `keep_last(4)` → `reliable(8)`: the new subscriber reads
    /// on from where the old one stopped (nothing lost, nothing twice), holds the publisher
    /// back once the old one is gone, and refuses a subscriber of another ring.
    #[test]
    fn a_resumed_subscriber_reads_on_where_its_predecessor_stopped() {
        let ns = ns();
        let s = spec("requeue", 16, 8);
        let mut old = subscriber(&ns, &s, 4, false).unwrap();
        let mut publ = publisher(&ns, &s).unwrap();
        let mut buf = Vec::new();
        let value = |buf: &[u8]| u64::from_le_bytes(buf[..8].try_into().unwrap());
        for i in 0..3u64 {
            publ.send(&i.to_le_bytes()).unwrap();
        }
        old.try_recv(&mut buf).unwrap();
        assert_eq!(value(&buf), 0);
        let mut new = subscriber(&ns, &s, 8, true).unwrap();
        publ.send(&3u64.to_le_bytes()).unwrap();
        assert!(new.resume_from(&old));
        assert_eq!(new.messages_received(), 1, "counters carried on");
        drop(old);
        let got: Vec<u64> = std::iter::from_fn(|| new.try_recv(&mut buf).map(|_| value(&buf))).collect();
        assert_eq!(got, vec![1, 2, 3]);
        for i in 4..12u64 {
            publ.send(&i.to_le_bytes()).unwrap();
        }
        assert_eq!(
            publ.send(&12u64.to_le_bytes()),
            Err(SendError::Full),
            "reliable now: the ring is full"
        );
        let other = subscriber(&ns, &spec("elsewhere", 16, 8), 4, false).unwrap();
        let mut third = subscriber(&ns, &s, 4, false).unwrap();
        assert!(!third.resume_from(&other), "another ring");
    }

    /// Issue #16: a `process` node's subscriber on a ring a live apply made starts at its
    /// first message: a holder with the same queue kept what the publisher wrote before the
    /// worker attached (back-pressure at the holder's depth), so nothing is lost.
    #[test]
    fn a_subscriber_started_at_zero_reads_what_a_holder_kept() {
        let ns = ns();
        let s = spec("moved~2", 16, 4);
        let holder = subscriber(&ns, &s, 4, true).unwrap();
        let mut publ = publisher(&ns, &s).unwrap();
        for i in 0..4u64 {
            publ.send(&i.to_le_bytes()).unwrap();
        }
        assert_eq!(
            publ.send(&4u64.to_le_bytes()),
            Err(SendError::Full),
            "the holder holds them"
        );
        let mut late = subscriber(&ns, &s, 4, true).unwrap();
        late.start_at(0);
        drop(holder);
        let mut buf = Vec::new();
        let value = |buf: &[u8]| u64::from_le_bytes(buf[..8].try_into().unwrap());
        let got: Vec<u64> = std::iter::from_fn(|| late.try_recv(&mut buf).map(|_| value(&buf))).collect();
        assert_eq!(got, vec![0, 1, 2, 3]);
        publ.send(&4u64.to_le_bytes()).unwrap();
        assert!(late.has_publisher());
        drop(publ);
        assert!(!late.has_publisher(), "its publisher left");
    }

    #[test]
    fn peek_adopts_and_late_subscriber_gets_the_backlog() {
        let ns = ns();
        assert_eq!(peek(&ns, "late").unwrap(), None, "peek creates nothing");
        assert!(!exists(&ns, "late"));
        let s = spec("late", 16, 8);
        let mut publ = publisher(&ns, &s).unwrap();
        for i in 0..12u64 {
            publ.send(&i.to_le_bytes()).unwrap();
        }
        let found = peek(&ns, "late").unwrap().expect("the segment exists");
        assert_eq!((found.type_hash, found.slot_size, found.capacity), (42, 16, 8));
        let mut late = late_subscriber(&ns, &found, 3).unwrap();
        let mut on_time = subscriber(&ns, &found, 3, false).unwrap();
        let mut buf = Vec::new();
        let got: Vec<u64> = std::iter::from_fn(|| {
            late.try_recv(&mut buf)
                .map(|_| u64::from_le_bytes(buf[..8].try_into().unwrap()))
        })
        .collect();
        assert_eq!(got, vec![9, 10, 11], "the last `depth` messages");
        assert_eq!(
            on_time.try_recv(&mut buf),
            None,
            "a plain subscriber starts at the head"
        );
    }

    #[test]
    fn segment_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let ns = ns();
        let s = spec("perm", 8, 2);
        let _p = publisher(&ns, &s).unwrap();
        let meta = std::fs::metadata(format!("/dev/shm{}", shm_name(&ns, "perm"))).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn keep_last_counts_what_it_drops() {
        let ns = ns();
        let s = spec("kl", 8, 4);
        let mut sub = subscriber(&ns, &s, 4, false).unwrap();
        let mut publ = publisher(&ns, &s).unwrap();
        for i in 0..10u64 {
            publ.send(&i.to_le_bytes()).unwrap();
        }
        let mut buf = Vec::new();
        let first = sub.try_recv(&mut buf).unwrap();
        assert_eq!(first.missed, 6);
        assert_eq!(buf, 6u64.to_le_bytes());
        let rest: Vec<u64> = std::iter::from_fn(|| {
            sub.try_recv(&mut buf)
                .map(|_| u64::from_le_bytes(buf[..8].try_into().unwrap()))
        })
        .collect();
        assert_eq!(rest, vec![7, 8, 9]);
        assert_eq!(sub.dropped(), 6);
    }

    #[test]
    fn keep_last_depth_below_ring_size() {
        let ns = ns();
        let s = spec("kl2", 8, 16);
        let mut deep = subscriber(&ns, &s, 16, false).unwrap();
        let mut shallow = subscriber(&ns, &s, 2, false).unwrap();
        let mut publ = publisher(&ns, &s).unwrap();
        for i in 0..5u64 {
            publ.send(&i.to_le_bytes()).unwrap();
        }
        let mut buf = Vec::new();
        assert_eq!(shallow.try_recv(&mut buf).unwrap().missed, 3);
        assert_eq!(buf, 3u64.to_le_bytes());
        assert_eq!(deep.try_recv(&mut buf).unwrap().missed, 0);
        assert_eq!(buf, 0u64.to_le_bytes());
    }

    #[test]
    fn reliable_applies_back_pressure_and_loses_nothing() {
        let ns = ns();
        let s = spec("rel", 8, 4);
        let mut sub = subscriber(&ns, &s, 4, true).unwrap();
        let mut publ = publisher(&ns, &s).unwrap();
        for i in 0..4u64 {
            publ.send(&i.to_le_bytes()).unwrap();
        }
        assert_eq!(publ.send(&4u64.to_le_bytes()), Err(SendError::Full));
        let mut buf = Vec::new();
        sub.try_recv(&mut buf).unwrap();
        publ.send(&4u64.to_le_bytes()).unwrap();
        let mut got = vec![0u64];
        while sub.try_recv(&mut buf).is_some() {
            got.push(u64::from_le_bytes(buf[..8].try_into().unwrap()));
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        assert_eq!((sub.dropped(), publ.refused()), (0, 1));
    }

    #[test]
    fn messages_carry_their_publish_time_once_a_subscriber_asks() {
        let ns = ns();
        let s = spec("stamped", 8, 8);
        let mut publ = publisher(&ns, &s).unwrap();
        let mut sub = subscriber(&ns, &s, 8, false).unwrap();
        let mut buf = Vec::new();
        publ.send(&1u64.to_le_bytes()).unwrap();
        sub.try_recv(&mut buf).unwrap();
        assert_eq!(sub.last_stamp(), None, "nobody asked: no clock read per send");
        sub.want_stamps();
        let before = monotonic_ns();
        publ.send(&2u64.to_le_bytes()).unwrap();
        let after = monotonic_ns();
        sub.try_recv(&mut buf).unwrap();
        let stamp = sub.last_stamp().expect("stamped");
        assert!(
            (before..=after).contains(&stamp),
            "{before} <= {stamp} <= {after}"
        );
        // A later subscriber without the flag reads the same stamps (the publisher stamps for
        // the topic), and they stop once the recorder leaves.
        drop(sub);
        let mut other = subscriber(&ns, &s, 8, false).unwrap();
        publ.send(&3u64.to_le_bytes()).unwrap();
        other.try_recv(&mut buf).unwrap();
        assert_eq!(other.last_stamp(), None);
    }

    #[test]
    fn too_large_is_refused() {
        let ns = ns();
        let mut publ = publisher(&ns, &spec("big", 16, 2)).unwrap();
        assert_eq!(
            publ.send(&[0u8; 17]),
            Err(SendError::TooLarge { len: 17, max: 16 })
        );
        publ.send(&[0u8; 16]).unwrap();
    }

    #[test]
    fn type_mismatch_is_refused() {
        let ns = ns();
        let _p = publisher(&ns, &spec("typed", 8, 2)).unwrap();
        let mut other = spec("typed", 8, 2);
        other.type_hash = 7;
        other.type_name = "Other".into();
        let err = subscriber(&ns, &other, 2, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "topic `typed` carries `Sample`, but this endpoint uses `Other`"
        );
    }

    #[test]
    fn garbage_header_is_an_error_not_a_crash() {
        let ns = ns();
        let s = spec("junk", 8, 2);
        let p = publisher(&ns, &s).unwrap();
        let path = format!("/dev/shm{}", shm_name(&ns, "junk"));
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for round in 0..50 {
            let mut bytes = std::fs::read(&path).unwrap();
            for b in bytes.iter_mut().take(128) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                *b = rng as u8;
            }
            std::fs::write(&path, &bytes).unwrap();
            match subscriber(&ns, &s, 2, false) {
                Err(ShmError::BadHeader { reason, .. }) => assert!(!reason.is_empty()),
                Err(ShmError::TypeMismatch { .. }) => {}
                other => panic!("round {round}: garbage accepted: {other:?}"),
            }
        }
        drop(p);
    }

    /// Issue 13: a named topic whose sanitized name reads like a private topic of a dead host
    /// (`h<pid>_…`) used to be unlinked by the startup sweep under its live endpoints.
    #[test]
    fn the_sweep_leaves_named_topics_that_look_private_alone() {
        let ns = ns();
        let names = [
            "h99999999_cam",
            "h99999999/cam",
            "ctl.99999999.x",
            "h99999999-1_cam",
        ];
        let _pubs: Vec<Publisher> = names
            .iter()
            .map(|t| publisher(&ns, &spec(t, 8, 2)).unwrap())
            .collect();
        assert_eq!(reclaim_orphans(&ns), 0);
        for t in names {
            assert!(exists(&ns, t), "named topic `{t}` survives the sweep");
        }
    }

    /// Private topics live in their own name space, owned by pid and start time: the sweep
    /// removes those whose owner is gone (dead pid, or a live pid with another start time) and
    /// keeps this process's.
    #[test]
    fn the_sweep_removes_private_topics_of_gone_owners_only() {
        let ns = ns();
        let me = std::process::id();
        let mine = format!("{}/a.out", private_instance());
        let reused = format!("{PRIVATE_MARK}h{me}-{}/a.out", my_start_time() + 1);
        let dead = format!("{PRIVATE_MARK}h99999999-5/a.out");
        for t in [&mine, &reused, &dead] {
            // A crashed owner never detached: keep the endpoints alive past the sweep.
            std::mem::forget(publisher(&ns, &spec(t, 8, 2)).unwrap());
        }
        assert!(shm_name(&ns, &mine).starts_with(&format!("/horus.{ns}@h{me}-")));
        assert_eq!(reclaim_orphans(&ns), 2);
        assert!(exists(&ns, &mine));
        assert!(!exists(&ns, &reused), "a reused pid is not the owner");
        assert!(!exists(&ns, &dead));
        remove_private(&ns, &private_instance());
        assert!(!exists(&ns, &mine));
    }

    #[test]
    fn start_time_tells_a_reused_pid() {
        let me = std::process::id();
        let start = start_time(me).expect("/proc/self/stat is readable");
        assert_eq!(start, my_start_time());
        assert!(is_alive_since(me, start));
        assert!(!is_alive_since(me, start + 1), "same pid, another process");
        assert!(
            is_alive_since(me, 0),
            "an unknown start time falls back to the pid"
        );
        assert!(!is_alive_since(99_999_999, start));
    }

    /// A peer entry whose pid is alive but whose start time is another process's is reclaimed
    /// like a dead one (issue 13: pids are reused, e.g. by a restarted container).
    #[test]
    fn a_peer_with_a_reused_pid_is_reclaimed() {
        let ns = ns();
        let s = spec("reuse", 8, 2);
        let publ = publisher(&ns, &s).unwrap();
        let ghost = publ.segment().peer_at(5);
        ghost.role.store(layout::ROLE_SUBSCRIBER, Ordering::Relaxed);
        ghost.start_time.store(my_start_time() + 1, Ordering::Relaxed);
        ghost.pid.store(std::process::id(), Ordering::Release);
        let _sub = subscriber(&ns, &s, 2, false).unwrap();
        assert_eq!(
            publ.segment().peer_at(5).pid.load(Ordering::Acquire),
            0,
            "the entry of the process that had our pid before is freed"
        );
    }

    /// Issue 13: a segment is given its memory when it is created. One larger than /dev/shm is
    /// an error at once (not a SIGBUS at the first touch), and leaves no file behind.
    #[test]
    fn a_segment_larger_than_dev_shm_is_refused_and_leaves_nothing() {
        let ns = ns();
        let total = rustix::fs::statvfs("/dev/shm")
            .map(|s| s.f_blocks * s.f_frsize)
            .unwrap();
        let slot = 1u32 << 30;
        let capacity = u32::try_from((total >> 30) + 2).unwrap().next_power_of_two();
        match publisher(&ns, &spec("huge", slot, capacity)) {
            Err(ShmError::NoSpace { needed, free, .. }) => {
                assert_eq!(needed, layout::segment_size(slot, capacity));
                assert!(free < needed);
            }
            other => panic!("a {capacity} GiB segment was accepted: {other:?}"),
        }
        assert!(!exists(&ns, "huge"), "nothing left behind");
    }

    #[test]
    fn blocking_receive_wakes_on_send() {
        let ns = ns();
        let s = spec("wake", 8, 8);
        let mut sub = subscriber(&ns, &s, 8, false).unwrap();
        let mut publ = publisher(&ns, &s).unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = Vec::new();
            // Bounded: at most 20 s even if the wake-up were lost.
            let got = sub.recv_timeout(&mut buf, Duration::from_secs(20));
            (got, buf)
        });
        std::thread::sleep(Duration::from_millis(50));
        publ.send(b"ping").unwrap();
        let (got, buf) = t.join().unwrap();
        assert!(got.is_some());
        assert_eq!(buf, b"ping");
    }

    #[test]
    fn recv_timeout_times_out() {
        let ns = ns();
        let mut sub = subscriber(&ns, &spec("idle", 8, 2), 2, false).unwrap();
        let mut buf = Vec::new();
        assert_eq!(sub.recv_timeout(&mut buf, Duration::from_millis(20)), None);
    }

    /// Issue 13 item 1: two producers on one Link (single-producer segment) with a `reliable`
    /// subscriber. Before the fix both attached and their load-then-store claims lost and tore
    /// messages silently; now the second live producer is refused at attach, and whatever is
    /// published arrives intact, in order, and is accounted for.
    #[test]
    fn a_link_has_one_producer() {
        const PER_PUBLISHER: u64 = 20_000;
        let ns = ns();
        let mut s = spec("link", 64, 64);
        s.single_producer = true;
        let mut sub = subscriber(&ns, &s, 64, true).unwrap();
        let first = publisher(&ns, &s).unwrap();
        let second = publisher(&ns, &s);
        let refused = second.is_err();
        let pubs: Vec<Publisher> = std::iter::once(first).chain(second.ok()).collect();
        let n_pubs = pubs.len() as u64;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writers: Vec<_> = pubs
            .into_iter()
            .enumerate()
            .map(|(id, mut p)| {
                let done = done.clone();
                std::thread::spawn(move || {
                    let mut msg = [0u8; 64];
                    for n in 0..PER_PUBLISHER {
                        msg[0] = id as u8;
                        msg[1..9].copy_from_slice(&n.to_le_bytes());
                        msg[9..].fill((n as u8) ^ (id as u8));
                        while p.send(&msg).is_err() {
                            std::thread::yield_now();
                        }
                    }
                    done.fetch_add(1, Ordering::Release);
                    p
                })
            })
            .collect();
        let (mut ok, mut torn, mut disorder) = (0u64, 0u64, 0u64);
        let mut last = [None::<u64>; 2];
        let mut buf = Vec::new();
        loop {
            let finished = done.load(Ordering::Acquire) == n_pubs as usize;
            match sub.try_recv(&mut buf) {
                Some(_) => {
                    let id = (buf[0] as usize).min(1);
                    let n = u64::from_le_bytes(buf[1..9].try_into().unwrap());
                    if buf.len() != 64 || !buf[9..].iter().all(|b| *b == (n as u8) ^ (id as u8)) {
                        torn += 1;
                    } else if last[id].is_some_and(|l| n != l + 1) || (last[id].is_none() && n != 0) {
                        disorder += 1;
                    }
                    last[id] = Some(n);
                    ok += 1;
                }
                None if finished => break,
                None => std::thread::yield_now(),
            }
        }
        let pubs: Vec<Publisher> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        let lost = (n_pubs * PER_PUBLISHER).saturating_sub(ok);
        assert_eq!(
            (torn, disorder, lost, sub.dropped()),
            (0, 0, 0, 0),
            "{n_pubs} producer(s): torn, out of order, lost, dropped"
        );
        assert!(refused, "a second live producer on a Link must be refused");
        drop(pubs);
    }

    /// A checksummed 64-byte message `n` of writer `id`.
    fn stamped(id: u8, n: u64) -> [u8; 64] {
        let mut msg = [0u8; 64];
        msg[0] = id;
        msg[1..9].copy_from_slice(&n.to_le_bytes());
        msg[9..].fill((n as u8) ^ id);
        msg
    }

    /// Reads `sub` until `done` reaches `writers` and the ring is empty: per writer, the
    /// sequence numbers received in order, and the count of torn messages.
    fn receive_stamped(sub: &mut Subscriber, done: &AtomicUsize, writers: usize) -> (Vec<Vec<u64>>, u64) {
        let mut got = vec![Vec::new(); writers];
        let mut torn = 0;
        let mut buf = Vec::new();
        loop {
            let finished = done.load(Ordering::Acquire) == writers;
            match sub.try_recv(&mut buf) {
                Some(_) => {
                    let id = buf[0] as usize;
                    let n = u64::from_le_bytes(buf[1..9].try_into().unwrap());
                    if id >= writers
                        || buf.len() != 64
                        || !buf[9..].iter().all(|b| *b == (n as u8) ^ (id as u8))
                    {
                        torn += 1;
                    } else {
                        got[id].push(n);
                    }
                }
                None if finished => return (got, torn),
                None => std::thread::yield_now(),
            }
        }
    }

    fn link_spec(topic: &str) -> TopicSpec {
        let mut s = spec(topic, 64, 64);
        s.single_producer = true;
        s
    }

    #[test]
    fn second_producer_error_names_the_topic_and_the_pid() {
        let ns = ns();
        let s = link_spec("cmd");
        let _first = publisher(&ns, &s).unwrap();
        let err = publisher(&ns, &s).unwrap_err();
        assert!(matches!(err, ShmError::ProducerTaken { pid, .. } if pid == std::process::id()));
        let text = err.to_string();
        assert!(
            text.contains("topic `cmd`") && text.contains(&format!("process {}", std::process::id())),
            "{text}"
        );
        // A named (multi-producer) topic takes any number of publishers.
        let named = spec("cmd-named", 64, 64);
        let _a = publisher(&ns, &named).unwrap();
        let _b = publisher(&ns, &named).unwrap();
    }

    #[test]
    fn a_detached_producer_frees_the_link() {
        let ns = ns();
        let s = link_spec("handover");
        let _sub = subscriber(&ns, &s, 8, false).unwrap();
        drop(publisher(&ns, &s).unwrap());
        publisher(&ns, &s).expect("the first producer left");
    }

    #[test]
    fn a_dead_producer_does_not_block_a_new_one() {
        let ns = ns();
        let s = link_spec("crashed");
        let mut sub = subscriber(&ns, &s, 8, true).unwrap();
        let mut dead = publisher(&ns, &s).unwrap();
        dead.send(b"before").unwrap();
        // Make its entry look like a crashed process's: the pid of a child that has exited.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        dead.segment().me().pid.store(gone, Ordering::Release);
        std::mem::forget(dead);
        let mut next = publisher(&ns, &s).expect("a dead producer's entry is reclaimed");
        next.send(b"after").unwrap();
        let mut buf = Vec::new();
        sub.try_recv(&mut buf).unwrap();
        assert_eq!(buf, b"before");
        sub.try_recv(&mut buf).unwrap();
        assert_eq!(buf, b"after");
    }

    #[test]
    fn a_revoked_producer_writes_nothing() {
        let ns = ns();
        let s = link_spec("fenced");
        let mut sub = subscriber(&ns, &s, 8, true).unwrap();
        let mut old = publisher(&ns, &s).unwrap();
        old.send(b"old 1").unwrap();
        let mut new = publisher_taking_over(&ns, &s).expect("the host hands the Link over");
        assert!(!old.is_producer() && new.is_producer());
        assert_eq!(old.send(b"old 2"), Err(SendError::Revoked));
        assert_eq!(old.revoked(), 1);
        new.send(b"new 1").unwrap();
        // Revoking by segment name (what a quarantine does) fences the new one as well, and
        // leaves the Link free for the next producer.
        assert_eq!(
            revoke_producer(new.segment().shm_name()).unwrap(),
            Some(std::process::id())
        );
        assert_eq!(new.send(b"new 2"), Err(SendError::Revoked));
        let mut third = publisher(&ns, &s).expect("nobody holds the Link after a revoke");
        third.send(b"third").unwrap();
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while sub.try_recv(&mut buf).is_some() {
            got.push(String::from_utf8(buf.clone()).unwrap());
        }
        assert_eq!(got, ["old 1", "new 1", "third"]);
        assert_eq!(sub.dropped(), 0);
    }

    /// Two producers that keep taking the Link from each other: every send that succeeded
    /// arrives once, intact and in order; every revoked send wrote nothing (no duplicate when
    /// it is retried after taking the Link back).
    #[test]
    fn producers_stealing_a_link_never_tear_or_duplicate() {
        const PER: u64 = 5_000;
        let ns = ns();
        let s = link_spec("steal");
        let mut sub = subscriber(&ns, &s, 64, true).unwrap();
        let a = publisher(&ns, &s).unwrap();
        let b = publisher_taking_over(&ns, &s).unwrap();
        let done = std::sync::Arc::new(AtomicUsize::new(0));
        let writers: Vec<_> = [a, b]
            .into_iter()
            .enumerate()
            .map(|(id, mut p)| {
                let done = done.clone();
                std::thread::spawn(move || {
                    let mut steals = 0u64;
                    for n in 0..PER {
                        loop {
                            match p.send(&stamped(id as u8, n)) {
                                Ok(()) => break,
                                Err(SendError::Revoked) => {
                                    p.take_over();
                                    steals += 1;
                                }
                                Err(SendError::Full) => std::thread::yield_now(),
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::Release);
                    steals
                })
            })
            .collect();
        let (got, torn) = receive_stamped(&mut sub, &done, 2);
        let steals: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
        assert_eq!(torn, 0);
        for (id, seqs) in got.iter().enumerate() {
            assert!(
                seqs.iter().copied().eq(0..PER),
                "writer {id}: {} messages, in order, once each",
                seqs.len()
            );
        }
        assert_eq!(sub.dropped(), 0);
        assert!(steals > 0, "the producers did take the Link from each other");
    }

    /// The claim itself is safe even if two producers of a Link race past the token check
    /// (here: both skip it): the CAS on `write_seq` gives each message its own sequence number.
    #[test]
    fn link_claim_is_safe_without_the_token() {
        const PER: u64 = 20_000;
        let ns = ns();
        let s = link_spec("race");
        let mut sub = subscriber(&ns, &s, 64, true).unwrap();
        let a = publisher(&ns, &s).unwrap();
        let b = publisher_taking_over(&ns, &s).unwrap();
        let done = std::sync::Arc::new(AtomicUsize::new(0));
        let writers: Vec<_> = [a, b]
            .into_iter()
            .enumerate()
            .map(|(id, mut p)| {
                let done = done.clone();
                std::thread::spawn(move || {
                    for n in 0..PER {
                        while p.send_unfenced(&stamped(id as u8, n)).is_err() {
                            std::thread::yield_now();
                        }
                    }
                    done.fetch_add(1, Ordering::Release);
                })
            })
            .collect();
        let (got, torn) = receive_stamped(&mut sub, &done, 2);
        writers.into_iter().for_each(|w| w.join().unwrap());
        let lengths: Vec<usize> = got.iter().map(Vec::len).collect();
        assert_eq!((torn, sub.dropped()), (0, 0));
        assert_eq!(lengths, [PER as usize; 2]);
        assert!(got.iter().all(|g| g.iter().copied().eq(0..PER)));
    }

    /// Several publisher threads and subscribers under contention: every message a subscriber
    /// returns is intact (its checksum matches), each publisher's messages arrive in order, and
    /// received + dropped accounts for every message.
    #[test]
    fn contention_never_yields_a_torn_message() {
        let ns = ns();
        let s = spec("storm", 256, 8);
        const PER_PUBLISHER: u64 = 4_000;
        let subs: Vec<Subscriber> = (0..2).map(|_| subscriber(&ns, &s, 8, false).unwrap()).collect();
        let pubs: Vec<Publisher> = (0..3).map(|_| publisher(&ns, &s).unwrap()).collect();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = subs
            .into_iter()
            .map(|mut sub| {
                let done = done.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut last = [None::<u64>; 3];
                    let mut ok = 0u64;
                    loop {
                        match sub.try_recv(&mut buf) {
                            Some(_) => {
                                let id = buf[0] as usize;
                                let n = u64::from_le_bytes(buf[1..9].try_into().unwrap());
                                let len = buf.len();
                                assert!((9..=256).contains(&len));
                                assert!(
                                    buf[9..].iter().all(|b| *b == (n as u8) ^ (id as u8)),
                                    "torn message"
                                );
                                assert!(last[id].is_none_or(|l| n > l), "publisher {id} out of order");
                                last[id] = Some(n);
                                ok += 1;
                            }
                            None if done.load(Ordering::Acquire) => break,
                            None => std::thread::yield_now(),
                        }
                    }
                    while sub.try_recv(&mut buf).is_some() {
                        ok += 1;
                    }
                    (ok, sub.dropped())
                })
            })
            .collect();
        let writers: Vec<_> = pubs
            .into_iter()
            .enumerate()
            .map(|(id, mut p)| {
                std::thread::spawn(move || {
                    let mut msg = vec![0u8; 256];
                    for n in 0..PER_PUBLISHER {
                        let len = 9 + (n as usize * 7) % 248;
                        msg[0] = id as u8;
                        msg[1..9].copy_from_slice(&n.to_le_bytes());
                        msg[9..len].fill((n as u8) ^ (id as u8));
                        p.send(&msg[..len]).unwrap();
                    }
                    p
                })
            })
            .collect();
        let pubs: Vec<Publisher> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        done.store(true, Ordering::Release);
        for r in readers {
            let (ok, dropped) = r.join().unwrap();
            assert!(ok > 0);
            assert_eq!(
                ok + dropped,
                3 * PER_PUBLISHER,
                "every message received or counted as dropped"
            );
        }
        drop(pubs);
    }
}
