//! The ring protocol over a [`Segment`]: publishers claim sequence numbers and write slots
//! under a per-slot sequence lock; each subscriber reads at its own cursor and learns how many
//! messages it missed.
//!
//! - **Claim**: `write_seq` is a ticket counter (`fetch_add`; a CAS for a Link, so that even two
//!   producers that both passed the token check get distinct sequence numbers). With
//!   `reliable` subscribers the claim is a CAS that refuses when the slowest reliable subscriber
//!   has `depth` unread messages: back-pressure, nothing overwritten.
//! - **Fencing** (a Link): the producer holds a token (`Control::producer`, an epoch and its
//!   peer entry). A send first swaps its own token for token|BUSY (one CAS): if the token moved
//!   on (revoked, taken over), the send fails with [`SendError::Revoked`] and writes nothing. A
//!   revoker waits for BUSY to clear, so a send in progress completes before the new producer
//!   starts.
//! - **Write** message `s` in slot `s % capacity`: wait until the slot holds lap `s - capacity`
//!   (a slower publisher of the previous lap may still be writing), store `seq = 2s+1`, the
//!   payload, then `seq = 2s+2` (release).
//! - **Read** at cursor `s`: `seq == 2s+2` → copy, re-check `seq` (a changed value means the
//!   slot was overwritten mid-copy: the copy is discarded, never returned torn); `seq > 2s+2` →
//!   we fell a lap behind: skip to the oldest message still held and count the skipped ones as
//!   dropped; `seq < 2s+2` → nothing new.
//! - **Wake**: a subscriber that wants to sleep registers in `sleepers` and waits on the futex
//!   word; a publisher that sees sleepers after its commit bumps the word and wakes them.
//!
//! Payload bytes are copied as relaxed `AtomicU64` words: a reader racing a writer reads
//! garbage words, not undefined behaviour, and the sequence re-check throws them away.
//!
//! Values read from shared memory (sequence numbers, cursors, lengths) are never trusted for
//! arithmetic: sequence numbers at or above [`layout::SEQ_LIMIT`] are corrupt and counted
//! (`corrupt()`), sums saturate, and slot indices are masked with our own copy of the capacity,
//! so a peer that scribbles over the segment cannot make this process panic or index out of
//! bounds.

use super::layout::{self, ROLE_SUBSCRIBER};
use super::segment::Segment;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a send was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// A reliable subscriber's queue is full; retry later.
    Full,
    /// The message is larger than the topic's slots.
    TooLarge {
        /// The message's size.
        len: usize,
        /// The slot size.
        max: u32,
    },
    /// This publisher's producer role on a Link was revoked (the Link was handed to another
    /// producer); nothing was written.
    Revoked,
    /// The topic's shared state is corrupt (a sequence number out of range); nothing was written.
    Corrupt,
    /// Every slot of the ring holds a message that subscribers keep in place (borrowed reads,
    /// numpy views); nothing was written. They must let some go, or the topic needs a deeper
    /// ring.
    Pinned,
    /// A loan is open on this publisher: send or drop it first.
    LoanOpen,
    /// No loan is open to send.
    NoLoan,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Full => f.write_str("a reliable subscriber's queue is full"),
            SendError::TooLarge { len, max } => {
                write!(f, "a message of {len} bytes does not fit (at most {max} bytes per message)")
            }
            SendError::Revoked => f.write_str(
                "this producer was revoked: the Link was handed to another producer, and this one can no longer send",
            ),
            SendError::Corrupt => f.write_str("the topic's shared memory is corrupt (a sequence number out of range)"),
            SendError::Pinned => f.write_str(
                "every slot of the topic is held by subscribers reading in place (borrowed messages, numpy views): they must release some, or the topic needs a larger depth",
            ),
            SendError::LoanOpen => f.write_str("a loaned message of this publisher is still open: send or drop it first"),
            SendError::NoLoan => f.write_str("no loaned message is open to send"),
        }
    }
}

/// How long a subscriber waits for a claimed-but-unwritten slot before it assumes the writer
/// died and skips the message (counted as dropped).
const STUCK_SLOT_TIMEOUT: Duration = Duration::from_millis(200);
/// Empty polls between two looks for a slot whose writer died (a scheduler polling at 100 Hz
/// looks every 0.64 s; a spinning reader every few microseconds).
const STUCK_CHECK_POLLS: u32 = 64;
/// How long a publisher waits for a previous lap's writer to finish the same slot.
const LAPPED_WRITER_TIMEOUT: Duration = Duration::from_millis(200);

/// From this size on, payloads are copied with `rep movsb` (x86_64): as fast as `memcpy`, where
/// the word-by-word atomic copy runs at a third of it (6 MiB: ~180 µs against ~600 µs on the
/// CI machines). Below it, the word loop is as fast and has no start-up cost.
const BULK_COPY: usize = 256;

/// Copies `len` bytes from `src` to `dst`, one of them in a shared slot, as the CPU's string
/// copy: no Rust access to the shared side at all, so another process writing it meanwhile
/// (a publisher lapping a slow reader) is no data race in Rust's sense; what such a copy
/// reads may be torn, which the slot's sequence check after the copy detects, as for the word
/// copy.
///
/// # Safety
/// `src` must be readable and `dst` writable for `len` bytes, and `dst` must not overlap a
/// Rust reference or private allocation the caller does not own.
#[cfg(target_arch = "x86_64")]
unsafe fn bulk_copy(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller's contract; `rep movsb` moves `rcx` bytes from `[rsi]` to `[rdi]`
    // forwards (the direction flag is clear at every Rust boundary), touches no stack and no
    // flags.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

pub(super) fn copy_in(words: &[AtomicU64], bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    if bytes.len() >= BULK_COPY {
        assert!(bytes.len() <= words.len() * 8, "payload larger than its slot");
        // SAFETY: `words` covers at least `bytes.len()` bytes (checked) of the slot this
        // publisher claimed; `bytes` is readable for its length; they do not overlap (one is
        // in the segment's mapping, the other is the caller's buffer).
        unsafe {
            bulk_copy(
                words.as_ptr().cast::<u8>().cast_mut(),
                bytes.as_ptr(),
                bytes.len(),
            )
        };
        return;
    }
    let mut chunks = bytes.chunks_exact(8);
    for (w, c) in words.iter().zip(&mut chunks) {
        w.store(
            u64::from_ne_bytes(c.try_into().expect("8 bytes")),
            Ordering::Relaxed,
        );
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        words[bytes.len() / 8].store(u64::from_ne_bytes(last), Ordering::Relaxed);
    }
}

/// Copies `parts`, one after the other, into `words` (a slot's payload): [`copy_in`] of their
/// concatenation. A part that starts on a word boundary is copied word by word; the bytes of
/// one that does not are gathered into the word they share.
pub(super) fn copy_in_parts(words: &[AtomicU64], parts: &[&[u8]]) {
    let mut word = 0;
    let mut carry = [0u8; 8];
    let mut filled = 0;
    for part in parts {
        let mut rest = *part;
        if filled > 0 {
            let take = (8 - filled).min(rest.len());
            carry[filled..filled + take].copy_from_slice(&rest[..take]);
            filled += take;
            rest = &rest[take..];
            if filled < 8 {
                continue;
            }
            words[word].store(u64::from_ne_bytes(carry), Ordering::Relaxed);
            word += 1;
        }
        let whole = rest.len() / 8 * 8;
        copy_in(&words[word..], &rest[..whole]);
        word += whole / 8;
        let tail = &rest[whole..];
        carry = [0u8; 8];
        carry[..tail.len()].copy_from_slice(tail);
        filled = tail.len();
    }
    if filled > 0 {
        words[word].store(u64::from_ne_bytes(carry), Ordering::Relaxed);
    }
}

pub(super) fn copy_out(words: &[AtomicU64], len: usize, buf: &mut Vec<u8>) {
    // Every byte is overwritten below: only growth is zero-filled (a buffer reused for
    // messages of one size is not written twice).
    buf.resize(len, 0);
    copy_words_out(words, 0, buf);
}

/// Copies the payload bytes `offset..offset + dst.len()` of a slot's `words` into `dst`: what a
/// [`Subscriber::try_recv_with`] reader does with the part of a message it wants in a buffer of
/// its own (a numpy array's). `offset` must be a multiple of 8; bytes past the words are left.
pub fn copy_words_out(words: &[AtomicU64], offset: usize, dst: &mut [u8]) {
    debug_assert!(offset.is_multiple_of(8));
    let words = words.get(offset / 8..).unwrap_or_default();
    #[cfg(target_arch = "x86_64")]
    if dst.len() >= BULK_COPY {
        let len = dst.len().min(words.len() * 8);
        // SAFETY: `words` covers `len` bytes (the minimum above) of the slot's mapping;
        // `dst` is the caller's exclusive buffer, at least `len` bytes, apart from the mapping.
        unsafe { bulk_copy(dst.as_mut_ptr(), words.as_ptr().cast::<u8>(), len) };
        return;
    }
    let n = dst.len() / 8;
    let mut chunks = dst.chunks_exact_mut(8);
    for (c, w) in (&mut chunks).zip(words) {
        c.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
    }
    let rest = chunks.into_remainder();
    if let (false, Some(w)) = (rest.is_empty(), words.get(n)) {
        let len = rest.len();
        rest.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes()[..len]);
    }
}

/// The sending end of a topic.
#[derive(Debug)]
pub struct Publisher {
    /// Shared with what must keep the mapping alive past this publisher ([`mapping`]
    /// (Self::mapping): a numpy array over a loaned slot).
    seg: Arc<Segment>,
    me: u32,
    single: bool,
    /// A Link's producer token (see the module docs); 0 on a multi-producer topic.
    token: u64,
    /// Sequence numbers below this are safe to claim without looking at reliable cursors.
    limit: u64,
    epoch: u64,
    sent: u64,
    bytes: u64,
    refused: u64,
    revoked: u64,
    corrupt: u64,
    /// Sequence numbers left empty because their slot was pinned, or a loan was dropped.
    holes: u64,
    last: Option<u64>,
    /// The sequence number of the open loan, whose slot this publisher is writing in place.
    loan: Option<u64>,
    /// A subscriber wants publish times ([`layout::PEER_WANTS_STAMPS`]), as of the last
    /// change of the peers.
    stamp: bool,
}

impl Publisher {
    /// Wraps an attached publisher segment.
    pub fn new(seg: Segment) -> Publisher {
        let single = seg.single_producer();
        let token = seg.token();
        Publisher {
            seg: Arc::new(seg),
            me: std::process::id(),
            single,
            token,
            limit: 0,
            epoch: u64::MAX,
            sent: 0,
            bytes: 0,
            refused: 0,
            revoked: 0,
            corrupt: 0,
            holes: 0,
            last: None,
            loan: None,
            stamp: false,
        }
    }

    /// Takes the Link's producer role back (revoking whoever holds it now). Waits at most
    /// 100 ms for a send in progress of the current holder. No-op on a multi-producer topic.
    pub fn take_over(&mut self) {
        if self.single {
            self.token = self.seg.take_producer();
        }
    }

    /// Gives up the Link's producer role: this publisher's sends fail with
    /// [`SendError::Revoked`] from now on (until [`take_over`](Self::take_over)), and the next
    /// producer to attach is not refused. No-op on a multi-producer topic.
    pub fn revoke(&self) {
        if self.single {
            self.seg.revoke_producer();
        }
    }

    /// True unless this is a Link's publisher whose producer role was revoked.
    pub fn is_producer(&self) -> bool {
        !self.single
            || self.seg.control().producer.load(Ordering::Acquire) & !layout::PRODUCER_BUSY == self.token
    }

    /// The segment.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    /// A handle that keeps the segment mapped (and this publisher's peer entry registered)
    /// after the publisher is dropped: for memory handed out of a loan whose owner may outlive
    /// the publisher (a numpy array over a loaned slot).
    pub fn mapping(&self) -> Arc<Segment> {
        Arc::clone(&self.seg)
    }

    /// The first sequence number that would overwrite an unread message of a reliable
    /// subscriber (`u64::MAX` when there is none). A subscriber whose process has died (a
    /// crashed worker, a killed peer) holds nobody back: it will never read again. Called only
    /// when the cached limit is reached or the peers changed, so the liveness check (one
    /// system call per reliable subscriber of another process) is off the hot path.
    fn reliable_limit(&self) -> u64 {
        let mut limit = u64::MAX;
        for i in 0..layout::MAX_PEERS {
            let p = self.seg.peer_at(i);
            let pid = p.pid.load(Ordering::Acquire);
            if pid == 0
                || p.role.load(Ordering::Relaxed) != ROLE_SUBSCRIBER
                || p.reliable.load(Ordering::Relaxed) == 0
                || (pid != self.me && !super::segment::is_alive(pid))
            {
                continue;
            }
            let end = p
                .cursor
                .load(Ordering::Acquire)
                .saturating_add(u64::from(p.depth.load(Ordering::Relaxed)));
            limit = limit.min(end);
        }
        limit
    }

    fn claim(&mut self) -> Result<u64, SendError> {
        let control = self.seg.control();
        let epoch = control.peers_epoch.load(Ordering::Acquire);
        if epoch != self.epoch {
            self.epoch = epoch;
            self.limit = self.reliable_limit();
            self.stamp = (0..layout::MAX_PEERS).any(|i| {
                let p = self.seg.peer_at(i);
                p.pid.load(Ordering::Acquire) != 0
                    && p.flags.load(Ordering::Relaxed) & layout::PEER_WANTS_STAMPS != 0
            });
        }
        loop {
            let w = control.write_seq.load(Ordering::Acquire);
            if w >= layout::SEQ_LIMIT {
                return Err(SendError::Corrupt);
            }
            if w >= self.limit {
                // Cursors only grow: look again before refusing.
                self.limit = self.reliable_limit();
                if w >= self.limit {
                    return Err(SendError::Full);
                }
            }
            if self.limit == u64::MAX && !self.single {
                return Ok(control.write_seq.fetch_add(1, Ordering::AcqRel));
            }
            if self.limit != u64::MAX && self.seg.slot(w).0.pins.load(Ordering::Acquire) != 0 {
                // A reliable topic waits for a message held in place: back-pressure, as for a
                // full queue (a pin taken after this look turns the slot into a hole instead).
                return Err(SendError::Full);
            }
            if control
                .write_seq
                .compare_exchange_weak(w, w + 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(w);
            }
        }
    }

    /// Publishes `bytes` to every subscriber.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        self.send_parts(&[bytes])
    }

    /// Publishes the concatenation of `parts` as one message, copying each straight into the
    /// slot: a header and a payload that live apart (a numpy array's metadata and its data)
    /// travel without being joined first. A part that is a multiple of 8 bytes keeps the next
    /// one on a word boundary, the fast case.
    pub fn send_parts(&mut self, parts: &[&[u8]]) -> Result<(), SendError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let max = self.seg.slot_size();
        if len > max as usize {
            return Err(SendError::TooLarge { len, max });
        }
        if self.loan.is_some() {
            return Err(SendError::LoanOpen);
        }
        self.fenced(|this| this.send_claimed(parts, len))
    }

    /// Runs `send` holding a Link's producer token (see the module docs); on a multi-producer
    /// topic, just runs it.
    fn fenced<T>(&mut self, send: impl FnOnce(&mut Self) -> Result<T, SendError>) -> Result<T, SendError> {
        if !self.single {
            return send(self);
        }
        self.acquire_token()?;
        let result = send(self);
        self.release_token();
        result
    }

    fn acquire_token(&mut self) -> Result<(), SendError> {
        let token = self.token;
        if self
            .seg
            .control()
            .producer
            .compare_exchange(
                token,
                token | layout::PRODUCER_BUSY,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            self.revoked += 1;
            return Err(SendError::Revoked);
        }
        Ok(())
    }

    fn release_token(&self) {
        // A CAS, not a store: a revoker that gave up waiting has replaced the token already.
        let _ = self.seg.control().producer.compare_exchange(
            self.token | layout::PRODUCER_BUSY,
            self.token,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }

    /// A send that skips the producer token: for tests that prove the claim alone is safe.
    #[cfg(test)]
    pub(super) fn send_unfenced(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        self.send_claimed(&[bytes], bytes.len())
    }

    fn send_claimed(&mut self, parts: &[&[u8]], len: usize) -> Result<(), SendError> {
        let s = self.open_slot()?;
        let (_, words) = self.seg.slot(s);
        match parts {
            [one] => copy_in(words, one),
            parts => copy_in_parts(words, parts),
        }
        self.commit(s, len);
        Ok(())
    }

    /// Claims the next sequence number and opens its slot for writing (`seq` odd). A slot that
    /// a subscriber holds in place is not written: its sequence number becomes a hole, which
    /// readers step over, and the next one is claimed; after a whole ring of held slots the
    /// send fails with [`SendError::Pinned`].
    ///
    /// The pin check is one side of a handshake with [`Subscriber::try_recv_pinned`]: the
    /// publisher swaps the odd sequence in, then looks for pins; a reader sets its pin, then
    /// looks at the sequence. All four are sequentially consistent, so in their single total
    /// order at least one side sees the other, and a pinned message is never written over. It
    /// costs a small message ~30 ns one way (docs/performance.md).
    fn open_slot(&mut self) -> Result<u64, SendError> {
        for _ in 0..=self.seg.capacity() {
            let s = match self.claim() {
                Ok(s) => s,
                Err(SendError::Corrupt) => {
                    self.corrupt += 1;
                    return Err(SendError::Corrupt);
                }
                Err(e) => {
                    self.refused += 1;
                    self.seg.me().dropped.store(self.refused, Ordering::Relaxed);
                    return Err(e);
                }
            };
            let (slot, _) = self.seg.slot(s);
            // A Link has one writer per slot, unless a revoker gave up waiting for a
            // descheduled one: the check is one load of a line this send writes anyway.
            self.wait_for_lapped_writer(s, slot);
            // A read-modify-write, so the payload's stores stay after it (acquire) and it is
            // in the single order of sequentially consistent operations with the pin check.
            slot.seq.swap(2 * s + 1, Ordering::SeqCst);
            if slot.pins.load(Ordering::SeqCst) == 0 {
                slot.writer.store(self.me, Ordering::Relaxed);
                return Ok(s);
            }
            self.hole(s);
        }
        self.refused += 1;
        Err(SendError::Pinned)
    }

    /// Closes the open slot of `s` with no message in it: a hole. A held message's bytes are
    /// left as they are (only the header changes).
    fn hole(&mut self, s: u64) {
        let (slot, _) = self.seg.slot(s);
        slot.len.store(layout::HOLE, Ordering::Relaxed);
        slot.writer.store(self.me, Ordering::Relaxed);
        slot.seq.store(2 * s + 2, Ordering::Release);
        self.holes += 1;
    }

    /// Commits message `s` of `len` bytes, written into its open slot, and wakes sleepers.
    fn commit(&mut self, s: u64, len: usize) {
        let (slot, _) = self.seg.slot(s);
        slot.len.store(len as u32, Ordering::Relaxed);
        let stamp = if self.stamp { super::monotonic_ns() } else { 0 };
        slot.stamp.store(stamp, Ordering::Relaxed);
        slot.seq.store(2 * s + 2, Ordering::Release);

        self.sent += 1;
        self.bytes += len as u64;
        self.last = Some(s);
        let me = self.seg.me();
        me.messages.store(self.sent, Ordering::Relaxed);
        me.bytes.store(self.bytes, Ordering::Relaxed);

        // Pairs with the subscriber's SeqCst increment of `sleepers` before its last check.
        fence(Ordering::SeqCst);
        let wake = self.seg.wake();
        if wake.sleepers.load(Ordering::Relaxed) != 0 {
            wake.futex.fetch_add(1, Ordering::Release);
            let _ = rustix::thread::futex::wake(&wake.futex, rustix::thread::futex::Flags::empty(), u32::MAX);
        }
    }

    /// Borrows the next slot of the ring to write a message in place: [`loan_bytes`]
    /// (Self::loan_bytes) gives its memory (the topic's slot size), [`send_loan`]
    /// (Self::send_loan) publishes it, [`discard_loan`](Self::discard_loan) (or dropping the
    /// publisher) leaves its sequence number a hole. One loan at a time; a Link's producer
    /// token is held until the loan is closed. Subscribers read in order, so they wait at an
    /// open loan: close it promptly (within the tick that opened it).
    pub fn loan(&mut self) -> Result<(), SendError> {
        if self.loan.is_some() {
            return Err(SendError::LoanOpen);
        }
        if self.single {
            self.acquire_token()?;
        }
        match self.open_slot() {
            Ok(s) => {
                self.loan = Some(s);
                Ok(())
            }
            Err(e) => {
                if self.single {
                    self.release_token();
                }
                Err(e)
            }
        }
    }

    /// The memory of the open loan (`None` without one): the whole slot, whatever an earlier
    /// message left in it.
    pub fn loan_bytes(&mut self) -> Option<&mut [u8]> {
        let s = self.loan?;
        let (_, words) = self.seg.slot(s);
        let len = (self.seg.slot_size() as usize).min(words.len() * 8);
        // SAFETY: the slot of `s` is open for writing by this publisher alone: `s` was claimed
        // by it (claims are unique), the previous lap's writer has finished
        // (`wait_for_lapped_writer`), and no subscriber holds it (the pin handshake in
        // `open_slot`), so no one writes these bytes or holds a reference to them. A lapped
        // reader may still be copying the older message out of them; it discards what it read
        // when it sees the sequence number moved on, as with every write. The borrow of `self`
        // keeps the mapping alive and the loan open.
        Some(unsafe { std::slice::from_raw_parts_mut(words.as_ptr().cast::<u8>().cast_mut(), len) })
    }

    /// Publishes the open loan's first `len` bytes as a message.
    pub fn send_loan(&mut self, len: usize) -> Result<(), SendError> {
        let Some(s) = self.loan else {
            return Err(SendError::NoLoan);
        };
        let max = self.seg.slot_size();
        if len > max as usize {
            return Err(SendError::TooLarge { len, max });
        }
        self.loan = None;
        self.commit(s, len);
        if self.single {
            self.release_token();
        }
        Ok(())
    }

    /// Closes the open loan without publishing it (its sequence number becomes a hole, which
    /// subscribers step over). No-op without one.
    pub fn discard_loan(&mut self) {
        if let Some(s) = self.loan.take() {
            self.hole(s);
            if self.single {
                self.release_token();
            }
        }
    }

    /// True while a loan is open.
    pub fn has_loan(&self) -> bool {
        self.loan.is_some()
    }

    /// With several publishers, the writer of lap `s - capacity` may still be in this slot.
    fn wait_for_lapped_writer(&self, s: u64, slot: &layout::SlotHeader) {
        let cap = self.seg.capacity();
        let expected = if s >= cap { 2 * (s - cap) + 2 } else { 0 };
        let mut since: Option<Instant> = None;
        loop {
            let v = slot.seq.load(Ordering::Acquire);
            if (v >= expected && v.is_multiple_of(2)) || v > 2 * s {
                // Done, or a sequence at or past ours, which no writer of an earlier lap
                // leaves: a corrupt slot, and waiting would not change it.
                return;
            }
            let start = *since.get_or_insert_with(Instant::now);
            if start.elapsed() > LAPPED_WRITER_TIMEOUT {
                // The other writer is gone or stalled for good: its message is lost either way.
                return;
            }
            std::hint::spin_loop();
        }
    }

    /// Messages sent.
    pub fn messages_sent(&self) -> u64 {
        self.sent
    }

    /// Payload bytes sent.
    pub fn bytes_sent(&self) -> u64 {
        self.bytes
    }

    /// Sends refused because a reliable subscriber was full.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Sends refused because this publisher's producer role was revoked.
    pub fn revoked(&self) -> u64 {
        self.revoked
    }

    /// Sends refused because the topic's shared state was corrupt.
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }

    /// Sequence numbers this publisher left empty: slots it skipped because subscribers held
    /// them, and loans dropped unsent.
    pub fn holes(&self) -> u64 {
        self.holes
    }

    /// The sequence number of the last message this publisher sent.
    pub fn last_sequence(&self) -> Option<u64> {
        self.last
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.discard_loan();
    }
}

/// What one receive found besides the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Received {
    /// Messages skipped (overwritten before this subscriber read them) just before this one.
    pub missed: u64,
}

/// The receiving end of a topic.
#[derive(Debug)]
pub struct Subscriber {
    /// Shared with the messages it holds in place ([`Pinned`]), which keep the mapping and
    /// this subscriber's peer entry (their pins' owner) alive.
    seg: Arc<Segment>,
    /// Messages held in place right now (live [`Pinned`]s).
    held: Arc<AtomicU32>,
    cursor: u64,
    depth: u64,
    received: u64,
    bytes: u64,
    dropped: u64,
    corrupt: u64,
    last: Option<u64>,
    /// The last message's publish time ([`layout::SlotHeader::stamp`]; 0: not stamped).
    last_stamp: u64,
    stuck_since: Option<Instant>,
    empty_polls: u32,
}

impl Subscriber {
    /// Wraps an attached subscriber segment.
    pub fn new(seg: Segment) -> Subscriber {
        let cursor = seg.me().cursor.load(Ordering::Relaxed);
        let depth = seg.me().depth.load(Ordering::Relaxed) as u64;
        Subscriber {
            seg: Arc::new(seg),
            held: Arc::new(AtomicU32::new(0)),
            cursor,
            depth,
            received: 0,
            bytes: 0,
            dropped: 0,
            corrupt: 0,
            last: None,
            last_stamp: 0,
            stuck_since: None,
            empty_polls: 0,
        }
    }

    /// The segment.
    pub fn segment(&self) -> &Segment {
        &self.seg
    }

    fn skip_to(&mut self, to: u64) -> u64 {
        let missed = to.saturating_sub(self.cursor);
        self.cursor = to.max(self.cursor);
        self.dropped += missed;
        let me = self.seg.me();
        me.dropped.store(self.dropped, Ordering::Relaxed);
        me.cursor.store(self.cursor, Ordering::Release);
        missed
    }

    /// Copies the oldest unread message into `buf`. `None` when nothing new is there.
    pub fn try_recv(&mut self, buf: &mut Vec<u8>) -> Option<Received> {
        self.try_recv_with(|len, words| copy_out(words, len, buf))
            .map(|((), received)| received)
    }

    /// [`try_recv`](Self::try_recv) for a reader that copies the message itself: `read` gets
    /// its length and the slot's payload words (as many as the length needs) and copies what
    /// it wants out of them ([`copy_words_out`]), straight into a buffer of its own. A message
    /// overwritten while `read` ran is not taken: its result is dropped and `read` runs again
    /// on the next message (so it must not trust what it read before it returns: a torn
    /// header is possible, and is what the retry is for).
    pub fn try_recv_with<T>(
        &mut self,
        mut read: impl FnMut(usize, &[AtomicU64]) -> T,
    ) -> Option<(T, Received)> {
        self.next_with(|slot, words, committed, len| {
            let got = read(len, &words[..len.div_ceil(8).min(words.len())]);
            fence(Ordering::Acquire);
            // Overwritten while copying: not taken (the lap check handles it).
            (slot.seq.load(Ordering::Relaxed) == committed).then_some(got)
        })
    }

    /// Most messages one subscriber may hold in place at once ([`try_recv_pinned`]
    /// (Self::try_recv_pinned)): half the ring, so publishers always find free slots.
    pub fn max_held(&self) -> u32 {
        (self.seg.capacity() / 2).max(1) as u32
    }

    /// Messages this subscriber holds in place now.
    pub fn held(&self) -> u32 {
        self.held.load(Ordering::Relaxed)
    }

    /// Takes the oldest unread message without copying it: the returned [`Pinned`] reads it in
    /// the ring's slot, and until it is dropped no publisher writes that slot (a `reliable`
    /// topic's publishers wait; others skip the slot, leaving a hole). `Ok(None)` when nothing
    /// new is there; [`HoldError`] when this subscriber already holds [`max_held`]
    /// (Self::max_held) messages (nothing is taken then).
    pub fn try_recv_pinned(&mut self) -> Result<Option<(Pinned, Received)>, HoldError> {
        let held = self.held.load(Ordering::Relaxed);
        if held >= self.max_held() {
            return Err(HoldError {
                held,
                max: self.max_held(),
                topic: self.seg.topic().to_owned(),
            });
        }
        let bit = 1u64 << self.seg.peer_index();
        let got = self.next_with(|slot, _, committed, len| {
            // The reader's side of the pin handshake (see `Publisher::open_slot`).
            slot.pins.fetch_or(bit, Ordering::SeqCst);
            if slot.seq.load(Ordering::SeqCst) == committed {
                Some(len)
            } else {
                slot.pins.fetch_and(!bit, Ordering::Release);
                None
            }
        });
        Ok(got.map(|(len, received)| {
            self.held.fetch_add(1, Ordering::Relaxed);
            let seq = self.last.expect("a message was just taken");
            (
                Pinned {
                    seg: Arc::clone(&self.seg),
                    held: Arc::clone(&self.held),
                    seq,
                    len,
                    bit,
                },
                received,
            )
        }))
    }

    /// The receive loop: finds the message at the cursor (stepping over holes, skipping what
    /// was overwritten), and lets `take` take it from its slot: `take` gets the slot, its
    /// payload words, the committed sequence value and the length, and returns `None` when
    /// the slot changed under it (the loop then looks again).
    fn next_with<T>(
        &mut self,
        mut take: impl FnMut(&layout::SlotHeader, &[AtomicU64], u64, usize) -> Option<T>,
    ) -> Option<(T, Received)> {
        let mut missed = 0;
        let cap = self.seg.capacity();
        loop {
            let s = self.cursor;
            if s >= layout::SEQ_LIMIT {
                // Our cursor came from a corrupt `write_seq` (at attach): nothing can be read.
                self.corrupt += 1;
                return None;
            }
            if self.depth < cap {
                // keep_last(N) with N below the ring size: only the newest N are kept.
                let w = self.seg.control().write_seq.load(Ordering::Acquire);
                if w >= layout::SEQ_LIMIT {
                    self.corrupt += 1;
                    return None;
                }
                if w > s + self.depth {
                    missed += self.skip_to(w - self.depth);
                    continue;
                }
            }
            let (slot, words) = self.seg.slot(s);
            let v1 = slot.seq.load(Ordering::Acquire);
            let committed = 2 * s + 2;
            if v1 == committed {
                let len = slot.len.load(Ordering::Relaxed);
                if len == layout::HOLE || len > self.seg.slot_size() {
                    fence(Ordering::Acquire);
                    if slot.seq.load(Ordering::Relaxed) != v1 {
                        continue; // a hole written over a message we were about to read
                    }
                    if len == layout::HOLE {
                        // No message at `s`: step over it, nothing was lost.
                        self.cursor = s + 1;
                        self.seg.me().cursor.store(self.cursor, Ordering::Release);
                    } else {
                        // A corrupt length (a buggy or hostile peer): skip the message.
                        missed += self.skip_to(s + 1);
                    }
                    continue;
                }
                let len = len as usize;
                // Read before `take` re-checks the sequence, so it is this message's.
                let stamp = slot.stamp.load(Ordering::Relaxed);
                let Some(got) = take(slot, words, v1, len) else {
                    continue;
                };
                self.cursor = s + 1;
                self.last = Some(s);
                self.last_stamp = stamp;
                self.received += 1;
                self.bytes += len as u64;
                self.stuck_since = None;
                let me = self.seg.me();
                me.cursor.store(self.cursor, Ordering::Release);
                me.messages.store(self.received, Ordering::Relaxed);
                me.bytes.store(self.bytes, Ordering::Relaxed);
                return Some((got, Received { missed }));
            }
            if v1 > committed {
                // Lapped: the slot holds a later message. Resume at the oldest one still held.
                let w = self.seg.control().write_seq.load(Ordering::Acquire);
                if w >= layout::SEQ_LIMIT || w <= s + cap {
                    // A later lap in the slot, but `write_seq` says none was claimed (it only
                    // grows): a corrupt slot, not a lap. Skipping slot by slot could run for
                    // ever over a scribbled ring.
                    self.corrupt += 1;
                    return None;
                }
                let oldest = w.saturating_sub(cap.min(self.depth)).max(s + 1);
                missed += self.skip_to(oldest);
                continue;
            }
            // Nothing committed at `s` yet. If it was claimed long ago, its writer died. Looking
            // at `write_seq` pulls the publishers' line away from them, so a polling subscriber
            // does it only every STUCK_CHECK_POLLS empty polls.
            self.empty_polls = self.empty_polls.wrapping_add(1);
            if self.empty_polls.is_multiple_of(STUCK_CHECK_POLLS) || self.stuck_since.is_some() {
                if self.seg.control().write_seq.load(Ordering::Acquire) > s {
                    let since = *self.stuck_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > STUCK_SLOT_TIMEOUT {
                        self.stuck_since = None;
                        missed += self.skip_to(s + 1);
                        continue;
                    }
                } else {
                    self.stuck_since = None;
                }
            }
            return None;
        }
    }

    /// Like [`try_recv`](Self::try_recv), but waits up to `timeout`: spinning briefly, then
    /// sleeping on the topic's futex (no CPU while idle) until a publisher wakes it.
    pub fn recv_timeout(&mut self, buf: &mut Vec<u8>, timeout: Duration) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        for _ in 0..256 {
            if let Some(r) = self.try_recv(buf) {
                return Some(r);
            }
            std::hint::spin_loop();
        }
        loop {
            self.seg.wake().sleepers.fetch_add(1, Ordering::SeqCst);
            let word = self.seg.wake().futex.load(Ordering::SeqCst);
            let got = self.try_recv(buf);
            let now = Instant::now();
            if got.is_some() || now >= deadline {
                self.seg.wake().sleepers.fetch_sub(1, Ordering::SeqCst);
                return got;
            }
            let left = deadline - now;
            let ts = rustix::thread::futex::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos() as i64,
            };
            let wake = self.seg.wake();
            let _ = rustix::thread::futex::wait(
                &wake.futex,
                rustix::thread::futex::Flags::empty(),
                word,
                Some(&ts),
            );
            wake.sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A view of this subscriber's queue for another thread: how many messages wait, and a
    /// futex word to sleep on until more arrive ([`super::InputWatch`]).
    pub fn watch(&self) -> Result<super::InputWatch, super::ShmError> {
        Ok(super::InputWatch::new(
            self.seg.view()?,
            self.seg.peer_index(),
            self.depth,
        ))
    }

    /// Where this subscriber's queue is, for a watch from another process
    /// ([`super::InputWatch::of_peer`]).
    pub fn input_peer(&self) -> super::InputPeer {
        super::InputPeer {
            segment: self.seg.shm_name().to_owned(),
            peer: self.seg.peer_index(),
            pid: rustix::process::getpid().as_raw_nonzero().get() as u32,
        }
    }

    /// Messages waiting (an upper bound while publishers are mid-write).
    pub fn pending(&self) -> u64 {
        let w = self.seg.control().write_seq.load(Ordering::Acquire);
        w.saturating_sub(self.cursor).min(self.depth)
    }

    /// Messages received.
    pub fn messages_received(&self) -> u64 {
        self.received
    }

    /// Payload bytes received.
    pub fn bytes_received(&self) -> u64 {
        self.bytes
    }

    /// Messages overwritten before this subscriber read them.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Receives that found the topic's shared state corrupt (a sequence number out of range).
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }

    /// The sequence number of the last message received.
    pub fn last_sequence(&self) -> Option<u64> {
        self.last
    }

    /// When the last message received was published (ns on CLOCK_MONOTONIC, see
    /// [`monotonic_ns`](super::monotonic_ns)); `None` if it was not stamped: sent before
    /// [`want_stamps`](Self::want_stamps), or by a publisher that has not seen the request yet.
    pub fn last_stamp(&self) -> Option<u64> {
        (self.last_stamp != 0).then_some(self.last_stamp)
    }

    /// Asks the topic's publishers to stamp every message with its publish time from now on
    /// (a recorder's subscriber): they see it with the next change of the peers, which this
    /// makes.
    pub fn want_stamps(&self) {
        self.seg
            .me()
            .flags
            .fetch_or(layout::PEER_WANTS_STAMPS, Ordering::Relaxed);
        self.seg.control().peers_epoch.fetch_add(1, Ordering::Release);
    }

    /// The next sequence the subscriber of process `pid` on this ring reads (the lowest, if it
    /// has several), other than this endpoint: where a node's worker process stopped reading.
    pub fn cursor_of(&self, pid: u32) -> Option<u64> {
        (0..layout::MAX_PEERS)
            .filter(|&i| i != self.seg.peer_index())
            .map(|i| self.seg.peer_at(i))
            .filter(|p| {
                p.pid.load(Ordering::Acquire) == pid && p.role.load(Ordering::Relaxed) == ROLE_SUBSCRIBER
            })
            .map(|p| p.cursor.load(Ordering::Acquire))
            .min()
    }

    /// The next sequence this subscriber reads.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Takes over from `previous`, an endpoint of the same port on the same ring (a live
    /// apply re-binding an input with another queue depth or `reliable` flag): reads on from
    /// where `previous` stopped, so nothing it had not read yet is lost or read twice, and
    /// carries its counters on. Returns false (and changes nothing) when the two are on
    /// different rings.
    ///
    /// Moving back to `previous`'s cursor is safe while `previous` is still attached: if it
    /// is reliable, the publishers have not passed it; if it is not, a lapped slot is skipped
    /// as for any `keep_last` reader (see [`start_at`](Self::start_at)).
    pub fn resume_from(&mut self, previous: &Subscriber) -> bool {
        if !self.seg.same_ring(&previous.seg) {
            return false;
        }
        self.received = previous.received;
        self.bytes = previous.bytes;
        self.dropped = previous.dropped;
        self.corrupt = previous.corrupt;
        self.last = previous.last;
        let me = self.seg.me();
        me.messages.store(self.received, Ordering::Relaxed);
        me.bytes.store(self.bytes, Ordering::Relaxed);
        me.dropped.store(self.dropped, Ordering::Relaxed);
        self.start_at(previous.cursor);
        true
    }

    /// Reads on from sequence number `seq` of this ring (a cursor that moves back, to messages
    /// written before this subscriber attached): a live apply's new subscriber of a `process`
    /// node on a ring that replaced a smaller one starts at 0, the ring's first message, so
    /// it misses nothing its publisher wrote before the worker could attach it; a node moved
    /// between processes starts where its old endpoint stopped ([`Subscriber::cursor_of`]).
    ///
    /// The messages from `seq` on must still be in the ring: another endpoint that has not
    /// read them (or a reliable one at or before `seq`, which the publishers cannot pass) keeps
    /// them; if they are overwritten, a `keep_last` reader skips them as usual and counts them
    /// as dropped. The publishers look at the cursors again (the peers' epoch moves), since
    /// this one moved back.
    pub fn start_at(&mut self, seq: u64) {
        self.cursor = seq;
        self.seg.me().cursor.store(seq, Ordering::Release);
        self.seg.control().peers_epoch.fetch_add(1, Ordering::Release);
    }

    /// Adds the counters of `other` (an endpoint of the same port on a ring this one replaced,
    /// whose messages the port has read) to this one's, so the port's counts go on.
    pub fn add_counts(&mut self, other: &Subscriber) {
        self.received = self.received.saturating_add(other.received);
        self.bytes = self.bytes.saturating_add(other.bytes);
        self.dropped = self.dropped.saturating_add(other.dropped);
        self.corrupt = self.corrupt.saturating_add(other.corrupt);
        let me = self.seg.me();
        me.messages.store(self.received, Ordering::Relaxed);
        me.bytes.store(self.bytes, Ordering::Relaxed);
        me.dropped.store(self.dropped, Ordering::Relaxed);
    }

    /// True when a live publisher is attached to this ring: a ring whose publisher left (it
    /// moved to a new ring) gets no more messages.
    pub fn has_publisher(&self) -> bool {
        self.seg.has_publisher()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if self.held.load(Ordering::Acquire) != 0 {
            // Messages held in place outlive the subscriber; their peer entry stays until the
            // last is dropped, but it reads no more, so it must hold no publisher back.
            self.seg.me().reliable.store(0, Ordering::Release);
            self.seg.control().peers_epoch.fetch_add(1, Ordering::Release);
        }
    }
}

/// A subscriber holds more messages in place than it may ([`Subscriber::max_held`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldError {
    /// Messages held now.
    pub held: u32,
    /// The most one subscriber may hold.
    pub max: u32,
    /// The topic.
    pub topic: String,
}

impl std::fmt::Display for HoldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "this subscriber of topic `{}` already holds {} messages in place, the most it may (half the ring, so publishers keep free slots): drop a borrowed message first, or give the topic a larger depth",
            self.topic, self.held
        )
    }
}

impl std::error::Error for HoldError {}

/// A message read in place ([`Subscriber::try_recv_pinned`]): its bytes stay in the ring's
/// slot, which no publisher writes until this is dropped. Keeps the topic's mapping alive, so
/// it may outlive its subscriber (a numpy view kept after its hub is gone).
#[derive(Debug)]
pub struct Pinned {
    seg: Arc<Segment>,
    held: Arc<AtomicU32>,
    seq: u64,
    len: usize,
    bit: u64,
}

impl Pinned {
    /// The message.
    pub fn bytes(&self) -> &[u8] {
        let (_, words) = self.seg.slot(self.seq);
        // SAFETY: the slot's first `len` bytes (at most its payload, checked when it was read)
        // hold message `seq`, and our pin keeps every publisher from writing them until we
        // unpin in `drop` (the handshake in `Publisher::open_slot`): they are immutable while
        // this borrow lives, and the mapping lives as long as `self.seg`.
        unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), self.len.min(words.len() * 8)) }
    }

    /// The message's sequence number on its topic.
    pub fn sequence(&self) -> u64 {
        self.seq
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // Release: our reads of the slot happen before a publisher that sees the pin gone
        // writes it.
        self.seg
            .slot(self.seq)
            .0
            .pins
            .fetch_and(!self.bit, Ordering::Release);
        self.held.fetch_sub(1, Ordering::Relaxed);
    }
}
