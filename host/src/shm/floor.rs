//! The hardware floor the topic benchmarks compare against: a shared-memory object with two
//! one-message mailboxes (a sequence word and a payload, copied with the same word copy as the
//! ring) and two futex words, with none of the ring's protocol. `./scripts/bench.sh topics`
//! measures this and a real topic in the same run and prints the ratio.
//!
//! Not used by the runtime itself.

use super::segment::namespace;
use memmap2::MmapMut;
use rustix::fs::Mode;
use rustix::shm::OFlags;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bytes per mailbox (sequence line + payload), a multiple of 64.
const MAILBOX: usize = 64 + 8192;
const FUTEX_OFFSET: usize = 2 * MAILBOX;
const SIZE: usize = FUTEX_OFFSET + 128;

/// Two mailboxes and two futex words in one shared-memory object.
pub struct RawChannel {
    map: MmapMut,
    name: String,
    owner: bool,
}

impl std::fmt::Debug for RawChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawChannel").field("name", &self.name).finish()
    }
}

impl RawChannel {
    fn open_impl(tag: &str, create: bool) -> std::io::Result<RawChannel> {
        let name = format!("/horus.{}.floor.{tag}", namespace());
        let flags = if create {
            OFlags::CREATE | OFlags::RDWR | OFlags::TRUNC
        } else {
            OFlags::RDWR
        };
        let fd = rustix::shm::open(&*name, flags, Mode::from_raw_mode(0o600))?;
        if create {
            rustix::fs::ftruncate(&fd, SIZE as u64)?;
        }
        let file = std::fs::File::from(fd);
        if file.metadata()?.len() < SIZE as u64 {
            return Err(std::io::Error::other(format!(
                "{name} is smaller than a floor channel"
            )));
        }
        // SAFETY: a shm object of at least SIZE bytes (checked) that we keep mapped; its
        // contents are only ever accessed through atomics (see the accessors).
        let map = unsafe { MmapMut::map_mut(&file) }?;
        Ok(RawChannel {
            map,
            name,
            owner: create,
        })
    }

    /// Creates the channel `tag` (removed again when this value drops).
    pub fn create(tag: &str) -> std::io::Result<RawChannel> {
        Self::open_impl(tag, true)
    }

    /// Opens the channel `tag` created by another process.
    pub fn open(tag: &str) -> std::io::Result<RawChannel> {
        Self::open_impl(tag, false)
    }

    fn mailbox(&self, which: usize) -> (&AtomicU64, &[AtomicU64]) {
        assert!(which < 2);
        let base = which * MAILBOX;
        // SAFETY: in bounds (SIZE covers both mailboxes), 64-aligned within a page-aligned
        // mapping, and the memory is only accessed atomically.
        unsafe {
            let seq = &*self.map.as_ptr().add(base).cast::<AtomicU64>();
            let words =
                std::slice::from_raw_parts(self.map.as_ptr().add(base + 64).cast::<AtomicU64>(), 8192 / 8);
            (seq, words)
        }
    }

    /// Futex word `which` (0 or 1).
    pub fn futex(&self, which: usize) -> &AtomicU32 {
        assert!(which < 2);
        // SAFETY: in bounds and 64-aligned; accessed only atomically.
        unsafe {
            &*self
                .map
                .as_ptr()
                .add(FUTEX_OFFSET + which * 64)
                .cast::<AtomicU32>()
        }
    }

    /// Writes `bytes` into mailbox `which` and publishes it (sequence + 1).
    pub fn send(&self, which: usize, bytes: &[u8]) {
        let (seq, words) = self.mailbox(which);
        super::ring::copy_in(words, bytes);
        seq.fetch_add(1, Ordering::Release);
    }

    /// Spins until mailbox `which` has a sequence other than `*last`, then copies `len` bytes.
    pub fn recv_spin(&self, which: usize, last: &mut u64, len: usize, buf: &mut Vec<u8>) {
        let (seq, words) = self.mailbox(which);
        loop {
            let s = seq.load(Ordering::Acquire);
            if s != *last {
                *last = s;
                super::ring::copy_out(words, len, buf);
                return;
            }
            std::hint::spin_loop();
        }
    }

    /// Bumps futex `which` and wakes its waiter.
    pub fn futex_wake(&self, which: usize) {
        let f = self.futex(which);
        f.fetch_add(1, Ordering::Release);
        let _ = rustix::thread::futex::wake(f, rustix::thread::futex::Flags::empty(), 1);
    }

    /// Sleeps until futex `which` differs from `*last`.
    pub fn futex_wait(&self, which: usize, last: &mut u32) {
        let f = self.futex(which);
        loop {
            let v = f.load(Ordering::Acquire);
            if v != *last {
                *last = v;
                return;
            }
            let _ = rustix::thread::futex::wait(f, rustix::thread::futex::Flags::empty(), v, None);
        }
    }
}

impl RawChannel {
    /// [`futex_wait`](Self::futex_wait) the way the scheduler sleeps on its inputs: one
    /// `futex_waitv` over futex `which` and a second word, `bell`, that nobody rings (the
    /// scheduler's stop bell). The `latency` benchmark compares the two floors: the cost of
    /// waiting on several words at once instead of on one doorbell word.
    pub fn futex_waitv(&self, which: usize, last: &mut u32, bell: &AtomicU32) {
        use rustix::thread::futex;
        let f = self.futex(which);
        loop {
            let v = f.load(Ordering::Acquire);
            if v != *last {
                *last = v;
                return;
            }
            let waits = [
                super::watch::waitv_entry(f, v),
                super::watch::waitv_entry(bell, bell.load(Ordering::Acquire)),
            ];
            let _ = futex::waitv(
                &waits,
                futex::WaitvFlags::empty(),
                None,
                futex::ClockId::Monotonic,
            );
        }
    }
}

impl Drop for RawChannel {
    fn drop(&mut self) {
        if self.owner {
            let _ = rustix::shm::unlink(&*self.name);
        }
    }
}
