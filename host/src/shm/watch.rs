//! Waiting for input on several topics at once: what the scheduler sleeps on when some of its
//! nodes tick on input ([`wait_for_input`]).
//!
//! An [`InputWatch`] is a second mapping of one subscriber's segment, held by the scheduler
//! thread while the subscriber itself may live on a worker thread: it reads the ring's write
//! sequence and that subscriber's published cursor (never the slots), and sleeps on the topic's
//! futex word with the same protocol as [`super::Subscriber::recv_timeout`] — register in
//! `sleepers`, read the word, check again, wait — so any publisher of the machine that commits a
//! message wakes it. Several words are waited on with one `futex_waitv` (Linux ≥ 5.16), shared
//! (no `FUTEX2_PRIVATE`) like the publishers' wake.
//!
//! Owns the wait. Does not own which inputs trigger a node or when it ticks (see
//! `crate::scheduler`).

use super::segment::Segment;
use rustix::thread::futex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

/// `futex_waitv` takes at most this many words; the rest are polled (see [`wait_for_input`]).
const MAX_WORDS: usize = 128;
/// How often inputs beyond [`MAX_WORDS`] (or all of them, on a kernel without `futex_waitv`)
/// are polled while the scheduler waits.
const POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// One subscriber's queue seen from another thread.
#[derive(Debug)]
pub struct InputWatch {
    seg: Segment,
    peer: usize,
    depth: u64,
}

/// Where a subscriber's queue is, for a watch from another process or library: its segment's
/// shm object name, its peer entry, and the pid that owns the entry. A `process` worker and the
/// Python loader report their inputs this way (in their ports' [`crate::io::TopicStats`]), and
/// the scheduler watches them with [`InputWatch::of_peer`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputPeer {
    /// The segment's shm object name.
    pub segment: String,
    /// The subscriber's peer entry.
    pub peer: usize,
    /// The process that holds the entry.
    pub pid: u32,
}

impl InputWatch {
    pub(super) fn new(seg: Segment, peer: usize, depth: u64) -> InputWatch {
        InputWatch { seg, peer, depth }
    }

    /// A watch of the subscriber `at` describes, mapped here; `topic` names it in errors.
    /// Fails when the segment is gone or its entry `peer` no longer belongs to `at.pid` (the
    /// subscriber detached, or its process ended).
    pub fn of_peer(at: &InputPeer, topic: &str) -> Result<InputWatch, super::ShmError> {
        let seg = Segment::open_view(&at.segment, topic)?;
        let gone = || super::ShmError::BadHeader {
            topic: topic.to_owned(),
            name: at.segment.clone(),
            reason: format!(
                "its subscriber entry {} is no longer held by process {}",
                at.peer, at.pid
            ),
        };
        if at.peer >= super::layout::MAX_PEERS {
            return Err(gone());
        }
        let entry = seg.peer_at(at.peer);
        if entry.pid.load(Ordering::Acquire) != at.pid
            || entry.role.load(Ordering::Relaxed) != super::layout::ROLE_SUBSCRIBER
        {
            return Err(gone());
        }
        let depth = u64::from(entry.depth.load(Ordering::Relaxed).max(1));
        Ok(InputWatch::new(seg, at.peer, depth))
    }

    /// The subscriber this watches: (segment's shm object name, peer entry).
    pub fn watched(&self) -> (&str, usize) {
        (self.seg.shm_name(), self.peer)
    }

    /// Another watch of the same queue (a mapping of its own).
    pub fn duplicate(&self) -> Result<InputWatch, super::ShmError> {
        Ok(InputWatch::new(self.seg.view()?, self.peer, self.depth))
    }

    /// Messages waiting for the subscriber, as [`super::Subscriber::pending`] counts them from
    /// the cursor it last published; except that a single message its publisher has claimed
    /// but not yet committed does not count (its commit wakes the watch): a node woken for it
    /// would find nothing to read. With more claimed, an upper bound while they are mid-write.
    pub fn pending(&self) -> u64 {
        let written = self.seg.control().write_seq.load(Ordering::Acquire);
        let cursor = self.seg.peer_at(self.peer).cursor.load(Ordering::Acquire);
        let waiting = written.saturating_sub(cursor);
        if waiting == 1
            && self.seg.slot(cursor).0.seq.load(Ordering::Acquire)
                < cursor.saturating_mul(2).saturating_add(2)
        {
            return 0;
        }
        waiting.min(self.depth)
    }

    fn word(&self) -> &AtomicU32 {
        &self.seg.wake().futex
    }

    fn sleepers(&self) -> &AtomicU32 {
        &self.seg.wake().sleepers
    }
}

/// Why [`wait_for_input`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// A watched input has a message (or a publisher woke the word: check again).
    Input,
    /// The bell rang.
    Bell,
    /// The deadline passed.
    Deadline,
}

/// Rings a bell word that a [`wait_for_input`] may sleep on (the scheduler's stop request).
pub fn ring_bell(bell: &AtomicU32) {
    bell.fetch_add(1, Ordering::SeqCst);
    let _ = futex::wake(bell, futex::Flags::empty(), u32::MAX);
}

/// Sleeps until one of `watches` has a message, `bell` moves from `bell_seen` (read by the caller
/// before it last checked its own condition), or `deadline`, whichever comes first; uses no CPU
/// meanwhile. Returns at once if a watched input already has a message.
pub fn wait_for_input(
    watches: &[&InputWatch],
    bell: &AtomicU32,
    bell_seen: u32,
    deadline: Instant,
) -> WaitOutcome {
    let waited = &watches[..watches.len().min(MAX_WORDS - 1)];
    // Register first, then read the words, then check: a publisher that commits after our
    // check sees a sleeper and bumps the word, so the wait below returns at once.
    for w in waited {
        w.sleepers().fetch_add(1, Ordering::SeqCst);
    }
    let words: Vec<u32> = waited.iter().map(|w| w.word().load(Ordering::SeqCst)).collect();
    let outcome = if watches.iter().any(|w| w.pending() > 0) {
        WaitOutcome::Input
    } else if bell.load(Ordering::SeqCst) != bell_seen {
        WaitOutcome::Bell
    } else if Instant::now() >= deadline {
        WaitOutcome::Deadline
    } else {
        // More inputs than one wait takes: the rest are polled.
        let until = if watches.len() > waited.len() {
            deadline.min(Instant::now() + POLL)
        } else {
            deadline
        };
        sleep(waited, &words, bell, bell_seen, until)
    };
    for w in waited {
        w.sleepers().fetch_sub(1, Ordering::SeqCst);
    }
    match outcome {
        WaitOutcome::Deadline if Instant::now() < deadline => WaitOutcome::Input,
        other => other,
    }
}

/// One word of a `futex_waitv`: sleep while `word` holds `val`. Shared words (no
/// `FUTEX2_PRIVATE`), to match the publishers' (shared) wake.
pub(super) fn waitv_entry(word: &AtomicU32, val: u32) -> futex::Wait {
    let mut wait = futex::Wait::new();
    wait.val = u64::from(val);
    wait.uaddr = futex::WaitPtr::new(word.as_ptr().cast());
    wait.flags = futex::WaitFlags::SIZE_U32;
    wait
}

/// One `futex_waitv` over the words and the bell, with an absolute monotonic timeout.
fn sleep(
    waited: &[&InputWatch],
    words: &[u32],
    bell: &AtomicU32,
    bell_seen: u32,
    until: Instant,
) -> WaitOutcome {
    let mut waits: Vec<futex::Wait> = waited
        .iter()
        .zip(words)
        .map(|(w, v)| waitv_entry(w.word(), *v))
        .collect();
    waits.push(waitv_entry(bell, bell_seen));
    let left = until.saturating_duration_since(Instant::now());
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let nanos = now.tv_nsec as u64 + u64::from(left.subsec_nanos());
    let at = futex::Timespec {
        tv_sec: now.tv_sec + left.as_secs() as i64 + (nanos / 1_000_000_000) as i64,
        tv_nsec: (nanos % 1_000_000_000) as _,
    };
    match futex::waitv(
        &waits,
        futex::WaitvFlags::empty(),
        Some(&at),
        futex::ClockId::Monotonic,
    ) {
        Ok(i) if i == waits.len() - 1 => WaitOutcome::Bell,
        Ok(_) => WaitOutcome::Input,
        Err(rustix::io::Errno::AGAIN) => {
            // A word moved between our read and the wait: a message or the bell.
            if bell.load(Ordering::SeqCst) != bell_seen {
                WaitOutcome::Bell
            } else {
                WaitOutcome::Input
            }
        }
        Err(rustix::io::Errno::NOSYS) => {
            // No futex_waitv (Linux < 5.16): poll.
            std::thread::sleep(left.min(POLL));
            WaitOutcome::Deadline
        }
        Err(_) => WaitOutcome::Deadline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::{publisher, subscriber, TopicSpec};
    use std::time::Duration;

    fn spec(topic: &str) -> TopicSpec {
        TopicSpec {
            topic: topic.into(),
            type_name: "Sample".into(),
            type_hash: 42,
            slot_size: 64,
            capacity: 8,
            single_producer: false,
        }
    }

    #[test]
    fn a_publisher_on_another_thread_wakes_the_wait() {
        let ns = format!("unitwatch{}", std::process::id());
        let (a, b) = (spec("watch_a"), spec("watch_b"));
        let sub_a = subscriber(&ns, &a, 8, false).unwrap();
        let sub_b = subscriber(&ns, &b, 8, false).unwrap();
        let mut pub_b = publisher(&ns, &b).unwrap();
        let (wa, wb) = (sub_a.watch().unwrap(), sub_b.watch().unwrap());
        let bell = AtomicU32::new(0);
        // Nothing arrives: the deadline.
        let t = Instant::now();
        let out = wait_for_input(&[&wa, &wb], &bell, 0, t + Duration::from_millis(30));
        assert_eq!(out, WaitOutcome::Deadline);
        assert!(t.elapsed() >= Duration::from_millis(30));
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            pub_b.send(b"x").unwrap();
            pub_b
        });
        let t = Instant::now();
        let out = wait_for_input(&[&wa, &wb], &bell, 0, t + Duration::from_secs(10));
        assert_eq!(out, WaitOutcome::Input);
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!((wa.pending(), wb.pending()), (0, 1));
        drop(sender.join().unwrap());
        // The bell.
        ring_bell(&bell);
        let out = wait_for_input(&[&wa], &bell, 0, Instant::now() + Duration::from_secs(10));
        assert_eq!(out, WaitOutcome::Bell);
        // A message claimed but not yet committed is not waiting (its commit wakes the watch):
        // a node woken for it would find nothing. Two claimed: an upper bound.
        let claimed = |w: &InputWatch| w.seg.control().write_seq.fetch_add(1, Ordering::AcqRel);
        claimed(&wa);
        assert_eq!(wa.pending(), 0);
        claimed(&wa);
        assert_eq!(wa.pending(), 2);
    }
}
