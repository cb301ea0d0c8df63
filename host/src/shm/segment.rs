//! One topic's shared-memory segment: naming, creation (owner-only), validation on attach,
//! registration of endpoints, reclaiming what crashed processes left, and removal by the last
//! endpoint to leave.
//!
//! # Rationale
//! POSIX shared memory (`shm_open`, a file in /dev/shm) mapped with `memmap2`, through rustix's
//! safe wrappers; not the `shared_memory` crate, which is unmaintained and pinned to old
//! dependencies. Every change to who is attached happens under an exclusive `flock` on the
//! segment's file, which also serialises creation against removal: an endpoint that opened the
//! name just before the last one unlinked it sees `nlink == 0` once it holds the lock, and
//! retries with a fresh segment.
//!
//! The header is read **once**: attach copies it out of the shared page (as atomic words, so
//! a peer writing it concurrently cannot cause undefined behaviour), validates the copy, and
//! uses only the copy afterwards. A peer that rewrites the shared header later changes nothing
//! this process relies on.
//!
//! A Link (single-producer segment) has one producer, which holds the producer token in
//! [`Control::producer`]: a second live producer is refused at attach
//! ([`ShmError::ProducerTaken`]); [`revoke_producer`] or an attach that takes over bumps the
//! token's epoch, after which the old producer's sends fail and write nothing.
//!
//! # Invariants
//! - INVARIANT: `map` is at least `header.segment_size` bytes, where `header` is our validated
//!   copy (or the one we wrote on creation); capacity, stride and slot size come only from it.
//! - INVARIANT: every accessor returns a reference into `map`, at an offset that is within the
//!   validated size and aligned for the type (the mapping is page-aligned and all offsets are
//!   multiples of 64, slot payloads of 8); [`Segment::at`] checks the bound in every build.
//! - INVARIANT: `peer` is the index of our own entry in the peer table, owned by this value until
//!   `Drop` releases it.

use super::layout::{self, Control, Header, Peer, SlotHeader, Wake};
use memmap2::MmapMut;
use rustix::fs::{FlockOperation, Mode};
use rustix::shm::OFlags;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long taking over or revoking a Link's producer waits for the old producer to leave a
/// send in progress before it takes the token anyway (the old producer was descheduled inside
/// `send`; its in-flight message still gets a sequence number of its own: the claim is a CAS).
const REVOKE_WAIT: Duration = Duration::from_millis(100);

/// Why a topic segment could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// A system call failed.
    #[error("shared memory for topic `{topic}` ({name}): {op} failed: {source}")]
    Io {
        /// The topic.
        topic: String,
        /// The shm object name.
        name: String,
        /// The operation.
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The segment exists but its header is not a valid HORUS topic header.
    #[error(
        "shared memory for topic `{topic}` (/dev/shm{name}) is not a valid HORUS topic segment: {reason}; \
         if no HORUS process uses it, remove it (rm /dev/shm{name}) or use another HORUS_NAMESPACE"
    )]
    BadHeader {
        /// The topic.
        topic: String,
        /// The shm object name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The topic carries another message type.
    #[error("topic `{topic}` carries `{theirs}`, but this endpoint uses `{ours}`")]
    TypeMismatch {
        /// The topic.
        topic: String,
        /// Our type.
        ours: String,
        /// The type in the segment.
        theirs: String,
    },
    /// The existing segment's slots are smaller than this endpoint's messages.
    #[error(
        "topic `{topic}` was created with {existing}-byte slots, but this endpoint sends messages of up to \
         {wanted} bytes; give every endpoint of the topic the same max size"
    )]
    SlotTooSmall {
        /// The topic.
        topic: String,
        /// The segment's slot size.
        existing: u32,
        /// Our slot size.
        wanted: u32,
    },
    /// A Link (single-producer topic) already has a live producer.
    #[error(
        "topic `{topic}` is a Link and already has a producer (process {pid}); a Link has exactly one \
         producer: send from that process only, or publish on a named (multi-producer) topic instead"
    )]
    ProducerTaken {
        /// The topic.
        topic: String,
        /// The process that holds the producer role.
        pid: u32,
    },
    /// /dev/shm has too little free space for the segment: nothing was left behind.
    #[error(
        "topic `{topic}` needs {} of shared memory ({name}), but /dev/shm has {} free; give the topic \
         a smaller queue (`reliable(N)` / `keep_last(N)`) or a smaller `max_size`, or give /dev/shm more \
         room (e.g. `docker run --shm-size=512m`)",
        mib(*needed), mib(*free)
    )]
    NoSpace {
        /// The topic.
        topic: String,
        /// The shm object name.
        name: String,
        /// Bytes the segment needs.
        needed: u64,
        /// Bytes free in /dev/shm when the segment was created.
        free: u64,
    },
    /// All peer entries are taken.
    #[error(
        "topic `{topic}` already has {} endpoints, the most one topic supports",
        layout::MAX_PEERS
    )]
    TooManyPeers {
        /// The topic.
        topic: String,
    },
}

/// What an endpoint asks of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// The topic's name (any string; mapped to a safe shm name).
    pub topic: String,
    /// Message type name.
    pub type_name: String,
    /// Message type hash.
    pub type_hash: u64,
    /// Largest message this endpoint sends (publishers) or expects.
    pub slot_size: u32,
    /// Slots, if this endpoint creates the segment (rounded up to a power of two).
    pub capacity: u32,
    /// One producer only (a Link).
    pub single_producer: bool,
}

/// The namespace segment names live in: `HORUS_NAMESPACE`, or `u<uid>`.
pub fn namespace() -> String {
    match std::env::var("HORUS_NAMESPACE") {
        Ok(ns) if !ns.is_empty() => sanitize(&ns),
        _ => format!("u{}", rustix::process::getuid().as_raw()),
    }
}

/// First character of a topic private to a host run, and of the shm names of private
/// segments: `/horus.<ns>@…`. [`sanitize`] never produces it, so a named topic's segment
/// (`/horus.<ns>.<topic>.<hash>`) can never be taken for a private one, whatever its name.
pub const PRIVATE_MARK: char = '@';

/// Characters safe in an shm name; anything else becomes `_`, and a hash of the original keeps
/// distinct names distinct.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The shm object name of `topic` in namespace `ns`: `/horus.<ns>.<topic>.<hash>` for a named
/// topic, `/horus.<ns>@<topic>.<hash>` for a private one (a topic that starts with
/// [`PRIVATE_MARK`], as [`private_instance`] makes them).
pub fn shm_name(ns: &str, topic: &str) -> String {
    let hash = horus_plugin_api::abi::fnv1a(horus_plugin_api::abi::FNV_OFFSET, topic.as_bytes());
    let (sep, rest) = match topic.strip_prefix(PRIVATE_MARK) {
        Some(rest) => (PRIVATE_MARK, rest),
        None => ('.', topic),
    };
    let mut readable = sanitize(rest);
    readable.truncate(120);
    format!("/horus.{ns}{sep}{readable}.{:08x}", hash as u32)
}

/// The instance part of this process's private topics, `@h<pid>-<start time>`: the owner
/// that [`reclaim_orphans`] reads back from the shm names.
pub fn private_instance() -> String {
    format!("{PRIVATE_MARK}h{}-{}", std::process::id(), my_start_time())
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`, clock ticks since boot),
/// or `None` if it cannot be read (no such process, no /proc).
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `comm` (field 2) is in parentheses and may hold spaces and parentheses: count from the
    // last `)`. Field 3 is the first after it, so field 22 is the 20th.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// This process's start time (0 if unknown: then peers judge it by pid alone). Cached per
/// pid: a child forked after the first call (Python's `multiprocessing`) reads its own, or its
/// endpoints would carry its parent's and look like a crashed process's to every peer.
pub fn my_start_time() -> u64 {
    use std::sync::atomic::AtomicU32;
    static PID: AtomicU32 = AtomicU32::new(0);
    static START: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    if PID.load(Ordering::Acquire) == pid {
        return START.load(Ordering::Relaxed);
    }
    let start = start_time(pid).unwrap_or(0);
    START.store(start, Ordering::Relaxed);
    PID.store(pid, Ordering::Release);
    start
}

/// True while a process with `pid` exists (a pid alone: it may have been reused).
pub(crate) fn is_alive(pid: u32) -> bool {
    // A pid read from shared memory may be anything: one above i32::MAX is no process (and
    // `Pid::from_raw` asserts on a negative value).
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match rustix::process::Pid::from_raw(raw) {
        None => false,
        Some(p) => !matches!(
            rustix::process::test_kill_process(p),
            Err(rustix::io::Errno::SRCH)
        ),
    }
}

/// Now on CLOCK_MONOTONIC (the clock `Instant` uses), in ns: comparable across processes, the
/// clock of [`layout::SlotHeader::stamp`].
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// True while the process that recorded (`pid`, `start`) runs: `pid` exists and started at
/// `start`. A pid reused by another process (a container restarted, pids wrapped) is dead. A
/// `start` of 0 (its owner could not read it) or a start time we cannot read falls back to the
/// pid alone.
pub fn is_alive_since(pid: u32, start: u64) -> bool {
    if !is_alive(pid) {
        return false;
    }
    match (start, start_time(pid)) {
        (0, _) | (_, None) => true,
        (recorded, Some(now)) => recorded == now,
    }
}

/// The owner (pid, start time) that a private segment's or command block's name records: the
/// part after `horus.<ns>@` is `h<pid>-<start>_…` (a topic) or `c<pid>-<start>.…` (a command
/// block). `None` for anything else, which the sweep then leaves alone.
fn owner_of(private: &str) -> Option<(u32, u64)> {
    let rest = private.strip_prefix('h').or_else(|| private.strip_prefix('c'))?;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    let (pid, start) = rest[..end].split_once('-')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Removes the shared memory that crashed host runs left in namespace `ns`: private topics
/// and command blocks (`/horus.<ns>@…`, a name space no named topic can reach) whose owner, by
/// pid and start time, no longer runs. Named topics are not touched here (their next user
/// reclaims them on attach), nor any name this host does not make. Returns the count.
pub fn reclaim_orphans(ns: &str) -> usize {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return 0;
    };
    let prefix = format!("horus.{ns}{PRIVATE_MARK}");
    let mut removed = 0;
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some((pid, start)) = name.strip_prefix(&prefix).and_then(owner_of) else {
            continue;
        };
        if !is_alive_since(pid, start) && rustix::shm::unlink(&*format!("/{name}")).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::warn!(
            namespace = ns,
            segments = removed,
            "removed shared memory left by crashed horus runs"
        );
    }
    removed
}

/// Free bytes in /dev/shm for an unprivileged writer, or `None` if it cannot be read.
pub fn shm_free() -> Option<u64> {
    let st = rustix::fs::statvfs("/dev/shm").ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// `n` bytes for a message: `1.5 MiB`, `640 KiB`, `512 B`.
pub fn mib(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else if n >= KIB {
        format!("{:.1} KiB", n as f64 / KIB as f64)
    } else {
        format!("{n} B")
    }
}

/// Gives a new, empty shm object `file` its `size` bytes of memory now (`fallocate`), not at
/// the first touch of each page, where a full /dev/shm raises SIGBUS in whichever process
/// touches it. A shortage is `ENOSPC` here; the file is then left at size 0. Checks the free
/// space first, so a segment that cannot fit does not briefly fill /dev/shm for everyone.
pub(crate) fn commit(file: &impl rustix::fd::AsFd, size: u64) -> Result<(), CommitError> {
    if let Some(free) = shm_free() {
        if size > free {
            return Err(CommitError::NoSpace { free });
        }
    }
    loop {
        match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, size) {
            Ok(()) => return Ok(()),
            // tmpfs gives up a large allocation when a signal arrives; nothing is kept.
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::NOSPC) => {
                return Err(CommitError::NoSpace {
                    free: shm_free().unwrap_or(0),
                })
            }
            // Not tmpfs (a /dev/shm on another file system): size it and hope.
            Err(rustix::io::Errno::OPNOTSUPP) => {
                return rustix::fs::ftruncate(file, size).map_err(CommitError::Io)
            }
            Err(e) => return Err(CommitError::Io(e)),
        }
    }
}

/// Why [`commit`] failed.
#[derive(Debug)]
pub(crate) enum CommitError {
    /// Not enough room: `free` bytes were free.
    NoSpace {
        /// Free bytes in /dev/shm.
        free: u64,
    },
    /// Another error of `fallocate`/`ftruncate`.
    Io(rustix::io::Errno),
}

/// Tells publishers of the segment `name` to stop waiting for subscriber entry `peer` (clears its
/// `reliable` flag): used when the endpoint's owner was abandoned (a quarantined worker) and
/// will never read again, so its full queue must not hold the topic's publishers back.
pub fn release_peer(name: &str, peer: usize) -> std::io::Result<()> {
    if peer >= layout::MAX_PEERS {
        return Ok(());
    }
    let fd = rustix::shm::open(name, OFlags::RDWR, Mode::empty())?;
    let file = File::from(fd);
    if file.metadata()?.len() < layout::SLOTS_OFFSET as u64 {
        return Ok(());
    }
    // SAFETY: a shm object at least as large as the peer table (checked), mapped while used;
    // the peer entries are atomics.
    let map = unsafe { MmapMut::map_mut(&file) }?;
    // SAFETY: in bounds (checked above) and 64-aligned in a page-aligned mapping.
    let p = unsafe {
        &*map
            .as_ptr()
            .add(layout::PEERS_OFFSET + peer * size_of::<Peer>())
            .cast::<Peer>()
    };
    p.reliable.store(0, Ordering::Release);
    // The messages it holds in place are let go: it will never read them again.
    if let Some(h) = copy_header(&map) {
        let (stride, capacity) = (h.stride as usize, h.capacity as usize);
        let end = (stride.checked_mul(capacity)).and_then(|n| n.checked_add(layout::SLOTS_OFFSET));
        if stride >= size_of::<SlotHeader>()
            && stride.is_multiple_of(64)
            && end.is_some_and(|e| e <= map.len())
        {
            for i in 0..capacity {
                // SAFETY: slot `i`'s header is within the mapping (checked above) and 64-aligned
                // (the slots start 64-aligned and `stride` is a multiple of 64).
                let slot = unsafe {
                    &*map
                        .as_ptr()
                        .add(layout::SLOTS_OFFSET + i * stride)
                        .cast::<SlotHeader>()
                };
                slot.pins.fetch_and(!(1u64 << peer), Ordering::Release);
            }
        }
    }
    // SAFETY: as above, for the control line.
    let control = unsafe { &*map.as_ptr().add(layout::CONTROL_OFFSET).cast::<Control>() };
    control.peers_epoch.fetch_add(1, Ordering::Release);
    Ok(())
}

/// Frees the entries that dead processes left in the segment `name` (see
/// [`Segment::reclaim_dead_peers`]) and removes the segment if no live endpoint is left: for
/// a host that killed its worker process, which died without detaching. Without it a topic
/// whose other endpoints had already gone would stay in /dev/shm until its next user. A
/// missing segment, or one this layout cannot read, is left alone.
pub fn forget_dead(name: &str) -> Result<(), ShmError> {
    let mut seg = match Segment::open_view(name, name) {
        Ok(seg) => seg,
        Err(ShmError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let file = seg.file.try_clone().map_err(|e| ShmError::Io {
        topic: name.to_owned(),
        name: name.to_owned(),
        op: "dup",
        source: e,
    })?;
    rustix::fs::flock(&file, FlockOperation::LockExclusive).map_err(errno(name, name, "flock"))?;
    let guard = Locked(&file);
    if rustix::fs::fstat(&file).is_ok_and(|stat| stat.st_nlink > 0) {
        seg.reclaim_dead_peers();
    }
    drop(guard);
    // A view that never registered: dropping it removes the name if nobody alive is left.
    drop(seg);
    Ok(())
}

/// Revokes the producer of the Link whose segment is `name` (see [`Segment::revoke_producer`]):
/// used when the producer's owner was abandoned (a quarantined worker), so that it writes
/// nothing more even if it wakes up, and its replacement can take the Link. Returns the pid of
/// the revoked producer, if one held the Link.
pub fn revoke_producer(name: &str) -> std::io::Result<Option<u32>> {
    let fd = rustix::shm::open(name, OFlags::RDWR, Mode::empty())?;
    let file = File::from(fd);
    if file.metadata()?.len() < layout::SLOTS_OFFSET as u64 {
        return Ok(None);
    }
    // SAFETY: a shm object at least as large as the peer table (checked), mapped while used;
    // we touch only the control line and the peer table, which are atomics.
    let map = unsafe { MmapMut::map_mut(&file) }?;
    // SAFETY: in bounds (checked above) and 64-aligned in a page-aligned mapping.
    let control = unsafe { &*map.as_ptr().add(layout::CONTROL_OFFSET).cast::<Control>() };
    let (old, _) = replace_producer(control, None);
    Ok(layout::token_holder(old).map(|i| {
        // SAFETY: `i < MAX_PEERS` (a holder index is always masked to the table); in bounds
        // and aligned as above.
        let p = unsafe {
            &*map
                .as_ptr()
                .add(layout::PEERS_OFFSET + i.min(layout::MAX_PEERS - 1) * size_of::<Peer>())
                .cast::<Peer>()
        };
        p.pid.load(Ordering::Acquire)
    }))
}

/// Moves the producer token to `holder` (`None`: nobody), with a new epoch. Waits up to
/// [`REVOKE_WAIT`] for a send in progress to finish. Returns the old and the new token.
fn replace_producer(control: &Control, holder: Option<usize>) -> (u64, u64) {
    let start = Instant::now();
    loop {
        let old = control.producer.load(Ordering::Acquire);
        if old & layout::PRODUCER_BUSY != 0 && start.elapsed() < REVOKE_WAIT {
            std::thread::yield_now();
            continue;
        }
        let new = layout::producer_token(layout::token_epoch(old).wrapping_add(1), holder);
        if control
            .producer
            .compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return (old, new);
        }
    }
}

/// Removes this run's private topics (those of `instance`, see [`private_instance`]) at its
/// end: endpoints of quarantined workers are never dropped, so their segments would otherwise
/// outlive the run. Touches only the private name space.
pub fn remove_private(ns: &str, instance: &str) {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    let Some(owner) = instance.strip_prefix(PRIVATE_MARK) else {
        return;
    };
    let prefix = format!("horus.{ns}{PRIVATE_MARK}{}_", sanitize(owner));
    for entry in entries.flatten() {
        if let Ok(name) = entry.file_name().into_string() {
            if name.starts_with(&prefix) {
                let _ = rustix::shm::unlink(&*format!("/{name}"));
            }
        }
    }
}

/// An attached endpoint's view of a segment.
pub struct Segment {
    map: MmapMut,
    file: File,
    name: String,
    topic: String,
    peer: usize,
    mask: u64,
    capacity: u64,
    stride: usize,
    slot_size: u32,
    single_producer: bool,
    /// The producer token we hold (a Link's publisher), else 0.
    token: AtomicU64,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("topic", &self.topic)
            .finish()
    }
}

/// Holds the segment's `flock` until dropped.
struct Locked<'a>(&'a File);

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = rustix::fs::flock(self.0, FlockOperation::Unlock);
    }
}

impl Segment {
    /// Opens (or creates) the segment of `spec.topic` in namespace `ns` and registers an
    /// endpoint with `role` (a `layout::ROLE_*`). Subscribers give their queue `depth` and
    /// whether they are `reliable`.
    pub fn attach(
        ns: &str,
        spec: &TopicSpec,
        role: u32,
        depth: u32,
        reliable: bool,
    ) -> Result<Segment, ShmError> {
        Segment::attach_at(ns, spec, role, depth, reliable, false)
    }

    /// The spec of `topic`'s segment in namespace `ns` as its creator wrote it, or `None` if
    /// the topic has no segment (nobody attached). Creates nothing. An endpoint that does not
    /// know the message type (the Python side, reading a topic a Rust node publishes) adopts it.
    pub fn peek(ns: &str, topic: &str) -> Result<Option<TopicSpec>, ShmError> {
        let name = shm_name(ns, topic);
        let io = |op| errno(topic, &name, op);
        let fd = match rustix::shm::open(&*name, OFlags::RDWR, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(io("shm_open")(e)),
        };
        let file = File::from(fd);
        rustix::fs::flock(&file, FlockOperation::LockShared).map_err(io("flock"))?;
        let guard = Locked(&file);
        let stat = rustix::fs::fstat(&file).map_err(io("fstat"))?;
        if stat.st_nlink == 0 || stat.st_size == 0 {
            return Ok(None);
        }
        // SAFETY: as in `attach`: a shm object we hold open, read through the header only
        // after its size and magic are checked; the header is immutable after creation.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| ShmError::Io {
            topic: topic.to_owned(),
            name: name.clone(),
            op: "mmap",
            source: e,
        })?;
        drop(guard);
        let h = match copy_header(&map) {
            Some(h) if h.magic == layout::MAGIC => h,
            _ => {
                return Err(ShmError::BadHeader {
                    topic: topic.to_owned(),
                    name,
                    reason: "it is not a HORUS topic segment".into(),
                })
            }
        };
        let n = (h.type_name_len as usize).min(layout::TYPE_NAME_LEN);
        Ok(Some(TopicSpec {
            topic: topic.to_owned(),
            type_name: String::from_utf8_lossy(&h.type_name[..n]).into_owned(),
            type_hash: h.type_hash,
            slot_size: h.slot_size,
            capacity: h.capacity,
            single_producer: h.flags & layout::FLAG_SINGLE_PRODUCER != 0,
        }))
    }

    /// [`attach`](Self::attach); a subscriber with `backlog` starts at the oldest of the last
    /// `depth` messages still in the ring instead of at the next one (a late joiner gets what
    /// is queued).
    pub fn attach_at(
        ns: &str,
        spec: &TopicSpec,
        role: u32,
        depth: u32,
        reliable: bool,
        backlog: bool,
    ) -> Result<Segment, ShmError> {
        Segment::attach_inner(ns, spec, role, depth, reliable, backlog, false)
    }

    /// Attaches a publisher that takes a Link over from its current producer (revoked: its
    /// sends fail from now on) instead of being refused: for the host handing a node's output
    /// to the node's replacement. On a multi-producer topic, the same as [`attach`](Self::attach).
    pub fn attach_taking_over(ns: &str, spec: &TopicSpec) -> Result<Segment, ShmError> {
        Segment::attach_inner(ns, spec, layout::ROLE_PUBLISHER, 0, false, false, true)
    }

    fn attach_inner(
        ns: &str,
        spec: &TopicSpec,
        role: u32,
        depth: u32,
        reliable: bool,
        backlog: bool,
        take_over: bool,
    ) -> Result<Segment, ShmError> {
        let name = shm_name(ns, &spec.topic);
        let io = |op| errno(&spec.topic, &name, op);
        loop {
            let fd = rustix::shm::open(&*name, OFlags::CREATE | OFlags::RDWR, Mode::from_raw_mode(0o600))
                .map_err(io("shm_open"))?;
            let file = File::from(fd);
            rustix::fs::flock(&file, FlockOperation::LockExclusive).map_err(io("flock"))?;
            let guard = Locked(&file);
            let stat = rustix::fs::fstat(&file).map_err(io("fstat"))?;
            if stat.st_nlink == 0 {
                // The last endpoint removed it between our open and our lock: start over.
                drop(guard);
                continue;
            }
            if stat.st_uid != rustix::process::getuid().as_raw() {
                return Err(ShmError::BadHeader {
                    topic: spec.topic.clone(),
                    name,
                    reason: format!("it belongs to user {}", stat.st_uid),
                });
            }
            let created = stat.st_size == 0;
            if created {
                let capacity = spec.capacity.max(2).next_power_of_two();
                let size = layout::segment_size(spec.slot_size, capacity);
                if let Err(e) = commit(&file, size) {
                    // Nothing half-made is left behind: the name goes (we hold the lock; an
                    // endpoint waiting for it sees `nlink == 0` and starts over).
                    let _ = rustix::shm::unlink(&*name);
                    return Err(match e {
                        CommitError::NoSpace { free } => ShmError::NoSpace {
                            topic: spec.topic.clone(),
                            name,
                            needed: size,
                            free,
                        },
                        CommitError::Io(e) => io("fallocate")(e),
                    });
                }
            }
            let size = rustix::fs::fstat(&file).map_err(io("fstat"))?.st_size as u64;
            // SAFETY: the file is a shm object of `size` bytes that we hold open; other
            // processes may write it concurrently, which is why every shared field is accessed
            // through atomics (see the module's invariants). Nobody truncates a segment after
            // creation (only the creator sizes it, under the lock, while it is still empty).
            let map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| ShmError::Io {
                topic: spec.topic.clone(),
                name: name.clone(),
                op: "mmap",
                source: e,
            })?;
            let header = if created {
                init_header(&map, spec)
            } else {
                validate(&map, size, spec, &name)?
            };
            let mut seg = Segment {
                slot_size: header.slot_size,
                capacity: header.capacity as u64,
                mask: header.capacity as u64 - 1,
                stride: header.stride as usize,
                single_producer: header.flags & layout::FLAG_SINGLE_PRODUCER != 0,
                token: AtomicU64::new(0),
                map,
                name: name.clone(),
                topic: spec.topic.clone(),
                peer: usize::MAX,
                file: file.try_clone().map_err(|e| ShmError::Io {
                    topic: spec.topic.clone(),
                    name: name.clone(),
                    op: "dup",
                    source: e,
                })?,
            };
            seg.reclaim_dead_peers();
            if seg.single_producer && role == layout::ROLE_PUBLISHER && !take_over {
                seg.refuse_live_producer()?;
            }
            seg.register(role, depth, reliable, backlog)?;
            if seg.single_producer && role == layout::ROLE_PUBLISHER {
                *seg.token.get_mut() = replace_producer(seg.control(), Some(seg.peer)).1;
            }
            drop(guard);
            return Ok(seg);
        }
    }

    /// Frees the entries of processes that died without detaching; if none is left alive,
    /// resets the ring so a crashed writer's half-written slot cannot block anyone.
    fn reclaim_dead_peers(&mut self) {
        let mut dead = Vec::new();
        let mut dead_bits = 0u64;
        let mut alive = 0;
        for i in 0..layout::MAX_PEERS {
            let p = self.peer_at(i);
            let pid = p.pid.load(Ordering::Acquire);
            if pid == 0 {
                continue;
            }
            if is_alive_since(pid, p.start_time.load(Ordering::Relaxed)) {
                alive += 1;
            } else {
                dead.push(pid);
                dead_bits |= 1 << i;
                p.role.store(layout::ROLE_FREE, Ordering::Relaxed);
                p.pid.store(0, Ordering::Release);
            }
        }
        if alive == 0 {
            // Nobody is attached: a fresh ring. Sequence numbers restart at 0.
            self.control().write_seq.store(0, Ordering::Relaxed);
            for i in 0..self.capacity {
                let slot = self.slot(i).0;
                slot.seq.store(0, Ordering::Relaxed);
                slot.pins.store(0, Ordering::Relaxed);
            }
        } else if dead_bits != 0 {
            // What the dead held in place is free again.
            for i in 0..self.capacity {
                self.slot(i).0.pins.fetch_and(!dead_bits, Ordering::Release);
            }
        }
        if !dead.is_empty() {
            let token = self.control().producer.load(Ordering::Acquire);
            if layout::token_holder(token).is_some_and(|i| self.peer_at(i).pid.load(Ordering::Acquire) == 0) {
                // The producer died (maybe inside a send): the Link is free for a new one.
                let next = layout::producer_token(layout::token_epoch(token).wrapping_add(1), None);
                self.control().producer.store(next, Ordering::Release);
            }
            self.control().peers_epoch.fetch_add(1, Ordering::Release);
            tracing::warn!(topic = %self.topic, segment = %self.name, pids = ?dead, "reclaimed shared memory left by crashed processes");
        }
    }

    /// A Link's producer role is taken by a live process: refuse a second producer.
    fn refuse_live_producer(&self) -> Result<(), ShmError> {
        let token = self.control().producer.load(Ordering::Acquire);
        let Some(i) = layout::token_holder(token).filter(|i| *i < layout::MAX_PEERS) else {
            return Ok(());
        };
        let p = self.peer_at(i);
        let pid = p.pid.load(Ordering::Acquire);
        if pid != 0
            && p.role.load(Ordering::Relaxed) == layout::ROLE_PUBLISHER
            && is_alive_since(pid, p.start_time.load(Ordering::Relaxed))
        {
            return Err(ShmError::ProducerTaken {
                topic: self.topic.clone(),
                pid,
            });
        }
        Ok(())
    }

    fn register(&mut self, role: u32, depth: u32, reliable: bool, backlog: bool) -> Result<(), ShmError> {
        let me = rustix::process::getpid().as_raw_nonzero().get() as u32;
        for i in 0..layout::MAX_PEERS {
            let p = self.peer_at(i);
            if p.pid.load(Ordering::Acquire) != 0 {
                continue;
            }
            p.role.store(role, Ordering::Relaxed);
            p.depth
                .store(depth.clamp(1, self.capacity as u32), Ordering::Relaxed);
            p.reliable.store(reliable.into(), Ordering::Relaxed);
            let head = self.control().write_seq.load(Ordering::Acquire);
            let back = if backlog {
                u64::from(depth).min(self.capacity)
            } else {
                0
            };
            p.cursor.store(head.saturating_sub(back), Ordering::Relaxed);
            p.messages.store(0, Ordering::Relaxed);
            p.bytes.store(0, Ordering::Relaxed);
            p.dropped.store(0, Ordering::Relaxed);
            p.start_time.store(my_start_time(), Ordering::Relaxed);
            p.flags.store(0, Ordering::Relaxed);
            p.pid.store(me, Ordering::Release);
            self.control().peers_epoch.fetch_add(1, Ordering::Release);
            self.peer = i;
            return Ok(());
        }
        Err(ShmError::TooManyPeers {
            topic: self.topic.clone(),
        })
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The shm object name (under /dev/shm).
    pub fn shm_name(&self) -> &str {
        &self.name
    }

    /// Our entry in the peer table.
    pub fn peer_index(&self) -> usize {
        self.peer
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Largest payload.
    pub fn slot_size(&self) -> u32 {
        self.slot_size
    }

    /// True for a Link (one producer).
    pub fn single_producer(&self) -> bool {
        self.single_producer
    }

    /// The producer token this endpoint holds (a Link's publisher), else 0.
    pub fn token(&self) -> u64 {
        self.token.load(Ordering::Relaxed)
    }

    /// Takes the Link's producer role (revoking the current producer, if any) and returns the
    /// new token. Waits up to [`REVOKE_WAIT`] for a send in progress to finish.
    pub fn take_producer(&self) -> u64 {
        let token = replace_producer(self.control(), Some(self.peer)).1;
        self.token.store(token, Ordering::Relaxed);
        token
    }

    /// Revokes whoever holds the Link's producer role; nobody holds it afterwards (the next
    /// producer to attach takes it). Waits up to [`REVOKE_WAIT`] for a send in progress.
    pub fn revoke_producer(&self) {
        replace_producer(self.control(), None);
    }

    /// A second mapping of this segment for a thread that watches the ring without being an
    /// endpoint ([`super::InputWatch`]): it has no peer entry, so dropping it releases nothing
    /// (beyond the usual last-one-out unlink when no live peer is left).
    pub fn view(&self) -> Result<Segment, ShmError> {
        let io = |op: &'static str| {
            let (topic, name) = (self.topic.clone(), self.name.clone());
            move |source: std::io::Error| ShmError::Io {
                topic,
                name,
                op,
                source,
            }
        };
        let file = self.file.try_clone().map_err(io("dup"))?;
        // SAFETY: the same shm object this segment mapped after validating its header; a
        // segment's size is fixed at creation, so the new mapping has the same layout, and
        // every access goes through `at`, which checks bounds against this mapping's length.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(io("mmap"))?;
        Ok(Segment {
            map,
            file,
            name: self.name.clone(),
            topic: self.topic.clone(),
            peer: usize::MAX,
            mask: self.mask,
            capacity: self.capacity,
            stride: self.stride,
            slot_size: self.slot_size,
            single_producer: self.single_producer,
            token: AtomicU64::new(0),
        })
    }

    /// A mapping of the segment named `name` (a shm object name, as [`Segment::shm_name`]
    /// gives) without a peer entry, for watching another endpoint's queue (one in a worker
    /// process, or the Python loader's) by its name: creates nothing, registers nothing.
    /// `topic` names the topic in errors.
    pub fn open_view(name: &str, topic: &str) -> Result<Segment, ShmError> {
        let io = |op| errno(topic, name, op);
        let file = File::from(rustix::shm::open(name, OFlags::RDWR, Mode::empty()).map_err(io("shm_open"))?);
        rustix::fs::flock(&file, FlockOperation::LockShared).map_err(io("flock"))?;
        let guard = Locked(&file);
        let stat = rustix::fs::fstat(&file).map_err(io("fstat"))?;
        if stat.st_nlink == 0 || stat.st_size == 0 {
            return Err(io("shm_open")(rustix::io::Errno::NOENT));
        }
        if stat.st_uid != rustix::process::getuid().as_raw() {
            return Err(ShmError::BadHeader {
                topic: topic.to_owned(),
                name: name.to_owned(),
                reason: format!("it belongs to user {}", stat.st_uid),
            });
        }
        // SAFETY: as in `attach`: a shm object we hold open whose size is fixed once created;
        // shared fields are read and written through atomics only, and the header through
        // `copy_header`, checked before any offset derived from it is used.
        let map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| ShmError::Io {
            topic: topic.to_owned(),
            name: name.to_owned(),
            op: "mmap",
            source: e,
        })?;
        drop(guard);
        let header = validate_layout(&map, stat.st_size as u64, topic, name)?;
        Ok(Segment {
            slot_size: header.slot_size,
            capacity: header.capacity as u64,
            mask: header.capacity as u64 - 1,
            stride: header.stride as usize,
            single_producer: header.flags & layout::FLAG_SINGLE_PRODUCER != 0,
            token: AtomicU64::new(0),
            map,
            file,
            name: name.to_owned(),
            topic: topic.to_owned(),
            peer: usize::MAX,
        })
    }

    fn at<T>(&self, offset: usize) -> &T {
        // Offsets come from our validated copy of the header and constants: never out of
        // bounds unless this module has a bug, so this is checked in every build.
        assert!(
            offset
                .checked_add(size_of::<T>())
                .is_some_and(|end| end <= self.map.len()),
            "shm offset out of bounds"
        );
        debug_assert!(offset.is_multiple_of(align_of::<T>()));
        // SAFETY: see the module's invariants: in bounds and aligned. `T` is one of the layout
        // types, made only of atomics (or, for the header, plain fields written once before any
        // other process could attach), so shared references are sound while other processes
        // write through their own mappings.
        unsafe { &*self.map.as_ptr().add(offset).cast::<T>() }
    }

    /// The claim counter.
    pub fn control(&self) -> &Control {
        self.at(layout::CONTROL_OFFSET)
    }

    /// The wake-up line.
    pub fn wake(&self) -> &Wake {
        self.at(layout::WAKE_OFFSET)
    }

    /// Peer entry `i`.
    pub fn peer_at(&self, i: usize) -> &Peer {
        assert!(i < layout::MAX_PEERS);
        self.at(layout::PEERS_OFFSET + i * size_of::<Peer>())
    }

    /// Our own peer entry.
    pub fn me(&self) -> &Peer {
        self.peer_at(self.peer)
    }

    /// True when a live process has a publisher attached (a peer entry with the publisher's
    /// role). Polled by an input draining a ring its topic left: one `kill(pid, 0)` per
    /// publisher of another process, none for this one's, as the publishers' reliable limit
    /// does (a dead publisher's pid reused meanwhile only keeps the old ring until the topic's
    /// publisher writes to the new one).
    pub fn has_publisher(&self) -> bool {
        let me = rustix::process::getpid().as_raw_nonzero().get() as u32;
        (0..layout::MAX_PEERS).any(|i| {
            let p = self.peer_at(i);
            let pid = p.pid.load(Ordering::Acquire);
            pid != 0
                && p.role.load(Ordering::Relaxed) == layout::ROLE_PUBLISHER
                && (pid == me || is_alive(pid))
        })
    }

    /// True when `other` is attached to the same shared-memory object (not merely one of the
    /// same name: a name can be removed and made again).
    pub fn same_ring(&self, other: &Segment) -> bool {
        match (rustix::fs::fstat(&self.file), rustix::fs::fstat(&other.file)) {
            (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
            _ => false,
        }
    }

    /// Slot for sequence `seq`: its header and its payload as 8-byte words.
    pub fn slot(&self, seq: u64) -> (&SlotHeader, &[AtomicU64]) {
        let offset = layout::SLOTS_OFFSET + (seq & self.mask) as usize * self.stride;
        let header: &SlotHeader = self.at(offset);
        let words = (self.stride - layout::PAYLOAD_OFFSET) / 8;
        let first: &AtomicU64 = self.at(offset + layout::PAYLOAD_OFFSET);
        // SAFETY: the payload area of a slot is `stride - PAYLOAD_OFFSET` bytes, 8-aligned, within the
        // validated mapping (module invariants); `words` u64s fit in it exactly.
        let payload = unsafe { std::slice::from_raw_parts(first as *const AtomicU64, words) };
        (header, payload)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        let _guard = rustix::fs::flock(&self.file, FlockOperation::LockExclusive)
            .ok()
            .map(|()| Locked(&self.file));
        if self.peer != usize::MAX {
            let token = *self.token.get_mut();
            if token != 0 {
                // Still the holder: free the Link for the next producer (a no-op if revoked).
                let free = layout::producer_token(layout::token_epoch(token).wrapping_add(1), None);
                let _ = self.control().producer.compare_exchange(
                    token,
                    free,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
            let p = self.me();
            p.role.store(layout::ROLE_FREE, Ordering::Relaxed);
            p.pid.store(0, Ordering::Release);
            self.control().peers_epoch.fetch_add(1, Ordering::Release);
        }
        let anyone = (0..layout::MAX_PEERS).any(|i| {
            let p = self.peer_at(i);
            let pid = p.pid.load(Ordering::Acquire);
            pid != 0 && is_alive_since(pid, p.start_time.load(Ordering::Relaxed))
        });
        if !anyone {
            // Last one out removes the name; mappings stay valid until unmapped.
            let _ = rustix::shm::unlink(&*self.name);
        }
    }
}

/// What a tool outside the topic's processes sees of one segment ([`describe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The shared-memory object's name (`/horus.<ns>…`).
    pub name: String,
    /// The topic, as its creator named it (a private topic: `@h<pid>-<start>/node.port`).
    pub topic: String,
    /// The message type's name and hash.
    pub type_name: String,
    /// The message type's hash.
    pub type_hash: u64,
    /// Largest message, bytes.
    pub slot_size: u32,
    /// Slots.
    pub capacity: u64,
    /// A Link (one producer).
    pub single_producer: bool,
    /// Messages published so far (the next sequence number).
    pub written: u64,
    /// The live publishers' pids, one per endpoint.
    pub publishers: Vec<u32>,
    /// The live subscribers' pids, one per endpoint.
    pub subscribers: Vec<u32>,
}

/// The names of this user's segments of namespace `ns` in /dev/shm (named and private topics),
/// sorted.
pub fn segment_names(ns: &str) -> Vec<String> {
    let (named, private) = (
        format!("horus.{}.", sanitize(ns)),
        format!("horus.{}{PRIVATE_MARK}", sanitize(ns)),
    );
    let mut names: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&named) || n.starts_with(&private))
                .map(|n| format!("/{n}"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Reads segment `name` without attaching to it: its header and who is attached.
pub fn describe(name: &str) -> Result<SegmentInfo, ShmError> {
    let seg = Segment::open_view(name, name)?;
    let h = copy_header(&seg.map).ok_or_else(|| ShmError::BadHeader {
        topic: name.to_owned(),
        name: name.to_owned(),
        reason: "too small for a header".into(),
    })?;
    let text = |bytes: &[u8], len: u32| {
        String::from_utf8_lossy(&bytes[..(len as usize).min(bytes.len())]).into_owned()
    };
    let (mut publishers, mut subscribers) = (Vec::new(), Vec::new());
    for i in 0..layout::MAX_PEERS {
        let p = seg.peer_at(i);
        let pid = p.pid.load(Ordering::Acquire);
        if pid == 0 || !is_alive_since(pid, p.start_time.load(Ordering::Relaxed)) {
            continue;
        }
        match p.role.load(Ordering::Relaxed) {
            layout::ROLE_PUBLISHER => publishers.push(pid),
            layout::ROLE_SUBSCRIBER => subscribers.push(pid),
            _ => {}
        }
    }
    Ok(SegmentInfo {
        name: name.to_owned(),
        topic: text(&h.topic, h.topic_len),
        type_name: text(&h.type_name, h.type_name_len),
        type_hash: h.type_hash,
        slot_size: h.slot_size,
        capacity: seg.capacity(),
        single_producer: seg.single_producer(),
        written: seg
            .control()
            .write_seq
            .load(Ordering::Acquire)
            .min(layout::SEQ_LIMIT),
        publishers,
        subscribers,
    })
}

/// A copy of the segment's header, or `None` if the mapping is too small to hold one. The
/// shared page is read once, as atomic words: a peer writing it at the same time yields a
/// garbage copy (which validation rejects), not undefined behaviour.
fn copy_header(map: &MmapMut) -> Option<Header> {
    const WORDS: usize = size_of::<Header>() / 8;
    if map.len() < size_of::<Header>() {
        return None;
    }
    // SAFETY: the mapping is page-aligned and at least `size_of::<Header>()` bytes (checked);
    // we read it only through atomics, so concurrent writers in other processes are no data
    // race on our side.
    let words = unsafe { &*map.as_ptr().cast::<[AtomicU64; WORDS]>() };
    let mut bytes = [0u8; size_of::<Header>()];
    for (chunk, w) in bytes.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.load(Ordering::Acquire).to_ne_bytes());
    }
    // SAFETY: `Header` is `repr(C)` and made only of integers and byte arrays: every bit
    // pattern of its bytes is a valid value. `read_unaligned` copes with the byte array's
    // alignment.
    Some(unsafe { bytes.as_ptr().cast::<Header>().read_unaligned() })
}

fn init_header(map: &MmapMut, spec: &TopicSpec) -> Header {
    let capacity = spec.capacity.max(2).next_power_of_two();
    let mut type_name = [0u8; layout::TYPE_NAME_LEN];
    let n = spec.type_name.len().min(layout::TYPE_NAME_LEN);
    type_name[..n].copy_from_slice(&spec.type_name.as_bytes()[..n]);
    let mut topic = [0u8; layout::TOPIC_NAME_LEN];
    let mut topic_len = spec.topic.len().min(layout::TOPIC_NAME_LEN);
    while !spec.topic.is_char_boundary(topic_len) {
        topic_len -= 1;
    }
    topic[..topic_len].copy_from_slice(&spec.topic.as_bytes()[..topic_len]);
    let header = Header {
        magic: layout::MAGIC,
        version: layout::LAYOUT_VERSION,
        header_size: size_of::<Header>() as u32,
        type_hash: spec.type_hash,
        segment_size: layout::segment_size(spec.slot_size, capacity),
        slot_size: spec.slot_size,
        capacity,
        stride: layout::stride(spec.slot_size),
        flags: if spec.single_producer {
            layout::FLAG_SINGLE_PRODUCER
        } else {
            0
        },
        type_name_len: n as u32,
        reserved: 0,
        type_name,
        topic_len: topic_len as u32,
        reserved2: 0,
        topic,
        reserved3: [0; 2],
    };
    // SAFETY: we created the segment and hold its lock: no other process can have it mapped
    // in a state where it reads the header (they validate only after taking the lock). The
    // mapping is large enough (sized with `segment_size`) and page-aligned.
    unsafe { map.as_ptr().cast_mut().cast::<Header>().write(header) };
    header
}

/// Validates the segment's header, copied once; returns the copy, the only one used afterwards.
fn validate(map: &MmapMut, size: u64, spec: &TopicSpec, name: &str) -> Result<Header, ShmError> {
    let h = validate_layout(map, size, &spec.topic, name)?;
    if h.type_hash != spec.type_hash {
        let n = (h.type_name_len as usize).min(layout::TYPE_NAME_LEN);
        return Err(ShmError::TypeMismatch {
            topic: spec.topic.clone(),
            ours: spec.type_name.clone(),
            theirs: String::from_utf8_lossy(&h.type_name[..n]).into_owned(),
        });
    }
    if spec.slot_size > h.slot_size {
        return Err(ShmError::SlotTooSmall {
            topic: spec.topic.clone(),
            existing: h.slot_size,
            wanted: spec.slot_size,
        });
    }
    Ok(h)
}

/// Turns a failed system call `op` on segment `name` of `topic` into its [`ShmError`].
fn errno(topic: &str, name: &str, op: &'static str) -> impl FnOnce(rustix::io::Errno) -> ShmError {
    let (topic, name) = (topic.to_owned(), name.to_owned());
    move |e| ShmError::Io {
        topic,
        name,
        op,
        source: e.into(),
    }
}

/// The header of a mapped segment, checked for everything but the message type: magic, layout
/// version, consistent sizes that fit the file.
fn validate_layout(map: &MmapMut, size: u64, topic: &str, name: &str) -> Result<Header, ShmError> {
    let bad = |reason: String| ShmError::BadHeader {
        topic: topic.to_owned(),
        name: name.to_owned(),
        reason,
    };
    if size < layout::SLOTS_OFFSET as u64 || map.len() < layout::SLOTS_OFFSET {
        return Err(bad(format!("it is {size} bytes, too small for a header")));
    }
    let Some(h) = copy_header(map) else {
        return Err(bad(format!("it is {size} bytes, too small for a header")));
    };
    if h.magic != layout::MAGIC {
        return Err(bad("the magic number is wrong".into()));
    }
    if h.version != layout::LAYOUT_VERSION || h.header_size as usize != size_of::<Header>() {
        return Err(bad(format!(
            "layout version {} (header {} bytes); this host uses version {}",
            h.version,
            h.header_size,
            layout::LAYOUT_VERSION
        )));
    }
    let capacity_ok = h.capacity >= 2 && h.capacity.is_power_of_two() && h.capacity <= 1 << 24;
    let stride_ok = h.slot_size <= 1 << 30 && h.stride == layout::stride(h.slot_size);
    if !capacity_ok || !stride_ok || h.segment_size != layout::segment_size(h.slot_size, h.capacity) {
        return Err(bad(format!(
            "inconsistent sizes (capacity {}, slot {} bytes, stride {}, segment {} bytes)",
            h.capacity, h.slot_size, h.stride, h.segment_size
        )));
    }
    if h.segment_size > size || h.segment_size > map.len() as u64 {
        return Err(bad(format!(
            "the header says {} bytes but the file has {size}",
            h.segment_size
        )));
    }
    Ok(h)
}
