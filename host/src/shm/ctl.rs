//! The command block between a host and one `process`-isolated node's worker process: one
//! command at a time (init, tick, shutdown, recreate, exit), its reply (status, duration, error
//! text) and the node's message counters, in a small shared-memory object with two futex words.
//!
//! The host creates it (owner-only) and removes it; the worker opens it by name.

use super::segment::namespace;
use memmap2::MmapMut;
use rustix::fs::Mode;
use rustix::shm::OFlags;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Command: run `init`.
pub const CMD_INIT: u32 = 1;
/// Command: run one `tick`.
pub const CMD_TICK: u32 = 2;
/// Command: run `shutdown`.
pub const CMD_SHUTDOWN: u32 = 3;
/// Command: destroy and create the node again.
pub const CMD_RECREATE: u32 = 4;
/// Command: destroy the node and exit.
pub const CMD_EXIT: u32 = 5;
/// Command: publish the node's counters (and do nothing else).
pub const CMD_SNAPSHOT: u32 = 6;
/// Command: hot reload: load the new code the argument names and swap it in (state handed
/// over, the old code kept until `CMD_RELOAD_COMMIT` or `CMD_RELOAD_ROLLBACK`).
pub const CMD_RELOAD: u32 = 7;
/// Command: the new code ticked: shut the old code down, destroy it, unload its library.
pub const CMD_RELOAD_COMMIT: u32 = 8;
/// Command: the new code's first tick failed: destroy it, run the old code again.
pub const CMD_RELOAD_ROLLBACK: u32 = 9;
/// Command: a live apply re-binds ports: the argument lists each port, its new topic and
/// whether that topic moved to a new, larger ring (JSON `[[port, PortPlan, moved], …]`); an
/// input re-bound on the same ring reads on from where it was, one whose topic moved reads the
/// new ring from its first message once it has drained the old one.
pub const CMD_REBIND: u32 = 10;
/// Command: a live apply moves the node out of this process: save its state into the file
/// the argument names.
pub const CMD_SAVE: u32 = 11;
/// Command: the move out failed: take the outputs' Links back (the host's endpoints took
/// them over).
pub const CMD_RETAKE: u32 = 12;
/// Command: show (argument byte 1) or hide (0) the node's non-error log lines (a live apply).
pub const CMD_LOGGING: u32 = 13;

/// Reply status: the call succeeded.
pub const OK: u32 = 0;
/// Reply status: the node returned an error.
pub const ERROR: u32 = 1;
/// Reply status: the node panicked.
pub const PANIC: u32 = 2;

const ERR_WORDS: usize = 128;
const STATS_WORDS: usize = 2048;
const ARG_WORDS: usize = 1024;

#[repr(C, align(64))]
struct Block {
    /// Bumped by the host for each command (futex word the worker waits on).
    cmd_seq: AtomicU32,
    cmd: AtomicU32,
    _pad0: [u32; 14],
    /// Set to `cmd_seq` by the worker when done (futex word the host waits on).
    done_seq: AtomicU32,
    status: AtomicU32,
    err_len: AtomicU32,
    _pad1: u32,
    duration_ns: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    pending: AtomicU64,
    stats_len: AtomicU64,
    _pad2: u64,
    err: [AtomicU64; ERR_WORDS],
    /// The node's per-topic counters as JSON, written on `CMD_SNAPSHOT`.
    stats: [AtomicU64; STATS_WORDS],
    /// A command's argument, written by the host before it sends the command.
    arg_len: AtomicU64,
    arg: [AtomicU64; ARG_WORDS],
}

const SIZE: usize = size_of::<Block>();

/// A reply from the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlReply {
    /// `OK`, `ERROR` or `PANIC`.
    pub status: u32,
    /// How long the call took in the worker.
    pub duration: Duration,
    /// The node's error text.
    pub error: String,
}

/// One command block, mapped.
pub struct Ctl {
    map: MmapMut,
    name: String,
    owner: bool,
}

impl std::fmt::Debug for Ctl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctl").field("name", &self.name).finish()
    }
}

impl Ctl {
    fn open_impl(name: &str, create: bool) -> std::io::Result<Ctl> {
        let flags = if create {
            OFlags::CREATE | OFlags::EXCL | OFlags::RDWR
        } else {
            OFlags::RDWR
        };
        let fd = rustix::shm::open(name, flags, Mode::from_raw_mode(0o600))?;
        if create {
            // Memory committed now, not at the first touch (a full /dev/shm is an error here,
            // not a SIGBUS later).
            if let Err(e) = super::segment::commit(&fd, SIZE as u64) {
                let _ = rustix::shm::unlink(name);
                return Err(match e {
                    super::segment::CommitError::NoSpace { free } => std::io::Error::other(format!(
                        "/dev/shm has {} free, too little for a command block of {}",
                        super::segment::mib(free),
                        super::segment::mib(SIZE as u64)
                    )),
                    super::segment::CommitError::Io(e) => e.into(),
                });
            }
        }
        let file = std::fs::File::from(fd);
        if file.metadata()?.len() < SIZE as u64 {
            return Err(std::io::Error::other(format!(
                "{name} is too small for a command block"
            )));
        }
        // SAFETY: a shm object of at least SIZE bytes (checked) that we keep mapped; its
        // contents are only accessed through the atomics of `Block`.
        let map = unsafe { MmapMut::map_mut(&file) }?;
        Ok(Ctl {
            map,
            name: name.to_owned(),
            owner: create,
        })
    }

    /// Creates a fresh block named after the host, the node (readable part plus a hash, so
    /// `a-b` and `a_b` never share one) and a generation number.
    pub fn create(node: &str, generation: u64) -> std::io::Result<Ctl> {
        let hash = horus_plugin_api::abi::fnv1a(horus_plugin_api::abi::FNV_OFFSET, node.as_bytes()) as u32;
        let readable: String = node
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(60)
            .collect();
        // In the private name space, owned by this process (pid and start time): see
        // `segment::reclaim_orphans`.
        let name = format!(
            "/horus.{}{}c{}-{}.{readable}-{hash:08x}.{generation}",
            namespace(),
            super::segment::PRIVATE_MARK,
            std::process::id(),
            super::segment::my_start_time()
        );
        let _ = rustix::shm::unlink(&*name);
        Self::open_impl(&name, true)
    }

    /// Opens the block `name` created by the host.
    pub fn open(name: &str) -> std::io::Result<Ctl> {
        Self::open_impl(name, false)
    }

    /// The block's shm name (what the worker opens).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn block(&self) -> &Block {
        // SAFETY: the mapping is at least SIZE bytes (checked on open), page-aligned, and
        // `Block` consists of atomics (plus padding never read), valid for any bit pattern.
        unsafe { &*self.map.as_ptr().cast::<Block>() }
    }

    // ---- host side ----

    /// Sends `cmd`; returns its sequence number.
    pub fn send(&self, cmd: u32) -> u32 {
        let b = self.block();
        b.cmd.store(cmd, Ordering::Relaxed);
        let seq = b.cmd_seq.fetch_add(1, Ordering::Release).wrapping_add(1);
        let _ = rustix::thread::futex::wake(&b.cmd_seq, rustix::thread::futex::Flags::empty(), 1);
        seq
    }

    /// Waits up to `timeout` for the reply to command `seq`.
    pub fn wait_reply(&self, seq: u32, timeout: Duration) -> Option<CtlReply> {
        let b = self.block();
        let deadline = Instant::now() + timeout;
        loop {
            let done = b.done_seq.load(Ordering::Acquire);
            if done == seq {
                let len = (b.err_len.load(Ordering::Relaxed) as usize).min(ERR_WORDS * 8);
                let mut bytes = Vec::with_capacity(len);
                for w in &b.err[..len.div_ceil(8)] {
                    bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
                }
                bytes.truncate(len);
                return Some(CtlReply {
                    status: b.status.load(Ordering::Relaxed),
                    duration: Duration::from_nanos(b.duration_ns.load(Ordering::Relaxed)),
                    error: String::from_utf8_lossy(&bytes).into_owned(),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let left = (deadline - now).min(Duration::from_millis(5));
            let ts = rustix::thread::futex::Timespec {
                tv_sec: 0,
                tv_nsec: left.as_nanos() as i64,
            };
            let _ = rustix::thread::futex::wait(
                &b.done_seq,
                rustix::thread::futex::Flags::empty(),
                done,
                Some(&ts),
            );
        }
    }

    /// Sets the argument of the next command; refuses one larger than the area (its size).
    pub fn set_arg(&self, arg: &[u8]) -> Result<(), usize> {
        let b = self.block();
        if arg.len() > ARG_WORDS * 8 {
            return Err(ARG_WORDS * 8);
        }
        super::ring::copy_in(&b.arg, arg);
        b.arg_len.store(arg.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The node's message counters as last published: (sent, received, dropped, pending).
    pub fn counters(&self) -> (u64, u64, u64, u64) {
        let b = self.block();
        (
            b.sent.load(Ordering::Relaxed),
            b.received.load(Ordering::Relaxed),
            b.dropped.load(Ordering::Relaxed),
            b.pending.load(Ordering::Relaxed),
        )
    }

    /// The per-topic counters the worker last published (JSON), if any.
    pub fn topic_stats_json(&self) -> Option<String> {
        let b = self.block();
        let len = (b.stats_len.load(Ordering::Acquire) as usize).min(STATS_WORDS * 8);
        if len == 0 {
            return None;
        }
        let mut bytes = Vec::with_capacity(len);
        for w in &b.stats[..len.div_ceil(8)] {
            bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
        }
        bytes.truncate(len);
        String::from_utf8(bytes).ok()
    }

    // ---- worker side ----

    /// The argument of the current command.
    pub fn arg(&self) -> Vec<u8> {
        let b = self.block();
        let len = (b.arg_len.load(Ordering::Relaxed) as usize).min(ARG_WORDS * 8);
        let mut bytes = Vec::with_capacity(len);
        for w in &b.arg[..len.div_ceil(8)] {
            bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
        }
        bytes.truncate(len);
        bytes
    }

    /// Publishes the node's per-topic counters (JSON; dropped if larger than the area).
    pub fn set_topic_stats_json(&self, json: &str) {
        let b = self.block();
        if json.len() > STATS_WORDS * 8 {
            b.stats_len.store(0, Ordering::Release);
            return;
        }
        super::ring::copy_in(&b.stats, json.as_bytes());
        b.stats_len.store(json.len() as u64, Ordering::Release);
    }

    /// Waits up to `timeout` for a command after `last`: (seq, cmd).
    pub fn wait_command(&self, last: u32, timeout: Duration) -> Option<(u32, u32)> {
        let b = self.block();
        let seq = b.cmd_seq.load(Ordering::Acquire);
        if seq != last {
            return Some((seq, b.cmd.load(Ordering::Relaxed)));
        }
        let ts = rustix::thread::futex::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: timeout.subsec_nanos() as i64,
        };
        let _ =
            rustix::thread::futex::wait(&b.cmd_seq, rustix::thread::futex::Flags::empty(), last, Some(&ts));
        let seq = b.cmd_seq.load(Ordering::Acquire);
        (seq != last).then(|| (seq, b.cmd.load(Ordering::Relaxed)))
    }

    /// Publishes the node's counters.
    pub fn set_counters(&self, sent: u64, received: u64, dropped: u64, pending: u64) {
        let b = self.block();
        b.sent.store(sent, Ordering::Relaxed);
        b.received.store(received, Ordering::Relaxed);
        b.dropped.store(dropped, Ordering::Relaxed);
        b.pending.store(pending, Ordering::Relaxed);
    }

    /// Answers command `seq`.
    pub fn reply(&self, seq: u32, status: u32, duration: Duration, error: &str) {
        let b = self.block();
        let bytes = &error.as_bytes()[..error.len().min(ERR_WORDS * 8)];
        super::ring::copy_in(&b.err, bytes);
        b.err_len.store(bytes.len() as u32, Ordering::Relaxed);
        b.status.store(status, Ordering::Relaxed);
        b.duration_ns.store(duration.as_nanos() as u64, Ordering::Relaxed);
        b.done_seq.store(seq, Ordering::Release);
        let _ = rustix::thread::futex::wake(&b.done_seq, rustix::thread::futex::Flags::empty(), 1);
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        if self.owner {
            let _ = rustix::shm::unlink(&*self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_and_reply_round_trip_across_threads() {
        let host = Ctl::create("unit-test", 1).unwrap();
        let name = host.name().to_owned();
        let worker = std::thread::spawn(move || {
            let ctl = Ctl::open(&name).unwrap();
            let (seq, cmd) = ctl.wait_command(0, Duration::from_secs(20)).expect("a command");
            assert_eq!(cmd, CMD_TICK);
            ctl.set_counters(1, 2, 3, 4);
            ctl.reply(seq, ERROR, Duration::from_micros(7), "it broke");
        });
        let seq = host.send(CMD_TICK);
        let reply = host.wait_reply(seq, Duration::from_secs(20)).expect("a reply");
        worker.join().unwrap();
        assert_eq!(
            reply,
            CtlReply {
                status: ERROR,
                duration: Duration::from_micros(7),
                error: "it broke".into()
            }
        );
        assert_eq!(host.counters(), (1, 2, 3, 4));
        assert_eq!(
            host.wait_reply(seq + 1, Duration::from_millis(10)),
            None,
            "times out without a reply"
        );
    }

    #[test]
    fn a_command_argument_round_trips_and_a_too_large_one_is_refused() {
        let host = Ctl::create("unit-test-arg", 1).unwrap();
        let worker = Ctl::open(host.name()).unwrap();
        host.set_arg(b"{\"plugin\":\"/x/liby.so\"}").unwrap();
        assert_eq!(worker.arg(), b"{\"plugin\":\"/x/liby.so\"}");
        host.set_arg(b"short").unwrap();
        assert_eq!(
            worker.arg(),
            b"short",
            "a shorter argument replaces a longer one whole"
        );
        assert_eq!(host.set_arg(&vec![b'x'; ARG_WORDS * 8 + 1]), Err(ARG_WORDS * 8));
        assert_eq!(worker.arg(), b"short", "a refused argument changes nothing");
    }
}
