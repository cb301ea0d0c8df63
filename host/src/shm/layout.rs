//! The byte layout of a topic segment. Every process that maps a segment agrees on it through
//! [`Header::magic`] and [`LAYOUT_VERSION`]; any change here bumps the version.
//!
//! ```text
//! offset 0      Header   (immutable after creation: type, topic name, slot size, capacity)
//!        256    Control  (write_seq: next sequence to claim; peers_epoch; a Link's producer token)
//!        320    Wake     (futex word, sleeper count)
//!        384    Peer × MAX_PEERS, one cache line each (pid, role, cursor, counters, start time)
//!        SLOTS  Slot × capacity, each `stride` bytes, 64-aligned:
//!                 seq: u64 (2s+1 while message s is written, 2s+2 once committed)
//!                 len: u32 (HOLE: no message), writer pid: u32,
//!                 pins: u64 (subscribers holding the message in place), stamp: u64,
//!                 payload: slot_size bytes (32-aligned)
//! ```
//! A slot's header and the first 32 payload bytes share one cache line, so a small message
//! crosses between cores as a single line.

use std::sync::atomic::{AtomicU32, AtomicU64};

/// `b"HORUSTOP"` as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"HORUSTOP");
/// Version of this layout.
pub const LAYOUT_VERSION: u32 = 5;
/// Endpoints (publishers + subscribers) one topic can have.
pub const MAX_PEERS: usize = 64;
/// Longest type name stored in the header.
pub const TYPE_NAME_LEN: usize = 64;
/// Bytes of the topic name a header holds (a longer name is cut, at a character boundary).
pub const TOPIC_NAME_LEN: usize = 112;
/// Header flag: one producer only (a Link): the producer holds [`Control::producer`].
pub const FLAG_SINGLE_PRODUCER: u32 = 1;

/// [`Control::producer`] bit: the holder is inside a send (a revoker waits for it to clear).
pub const PRODUCER_BUSY: u64 = 1;
/// Sequence numbers (and so `write_seq` and cursors) stay below this; a larger value read from
/// shared memory is corrupt (`2s+2` must fit a u64 with room to spare).
pub const SEQ_LIMIT: u64 = 1 << 62;

/// The producer token of epoch `epoch` held by peer entry `peer` (`None`: nobody holds it).
pub fn producer_token(epoch: u64, peer: Option<usize>) -> u64 {
    let holder = peer.map_or(0, |p| (p as u64 & 0x3f) + 1);
    (epoch << 8) | (holder << 1)
}

/// The epoch of a producer token.
pub fn token_epoch(token: u64) -> u64 {
    token >> 8
}

/// The peer entry holding a producer token, if any.
pub fn token_holder(token: u64) -> Option<usize> {
    match (token >> 1) & 0x7f {
        0 => None,
        h => Some(h as usize - 1),
    }
}

/// Peer role: the entry is free.
pub const ROLE_FREE: u32 = 0;
/// Peer role: a publisher.
pub const ROLE_PUBLISHER: u32 = 1;
/// Peer role: a subscriber.
pub const ROLE_SUBSCRIBER: u32 = 2;

/// Immutable description of the topic, written once by the creator. Readers copy it once and
/// use the copy (plain data: any bit pattern is a value).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct Header {
    /// [`MAGIC`].
    pub magic: u64,
    /// [`LAYOUT_VERSION`].
    pub version: u32,
    /// `size_of::<Header>()`, a cheap check that both sides agree.
    pub header_size: u32,
    /// The message type hash every endpoint must share.
    pub type_hash: u64,
    /// Total bytes of the segment.
    pub segment_size: u64,
    /// Largest payload per slot.
    pub slot_size: u32,
    /// Number of slots (a power of two).
    pub capacity: u32,
    /// Bytes per slot, header included (multiple of 64).
    pub stride: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Bytes used in `type_name`.
    pub type_name_len: u32,
    /// Zero.
    pub reserved: u32,
    /// The message type name, for error messages.
    pub type_name: [u8; TYPE_NAME_LEN],
    /// Bytes used in `topic`.
    pub topic_len: u32,
    /// Zero.
    pub reserved2: u32,
    /// The topic's name (as `TopicSpec::topic`), so tools that list /dev/shm can name it:
    /// segment names are sanitised and hashed.
    pub topic: [u8; TOPIC_NAME_LEN],
    /// Zero.
    pub reserved3: [u64; 2],
}

/// The publishers' claim counter, on its own cache line.
#[repr(C, align(64))]
pub struct Control {
    /// The next sequence number to claim; messages `0..write_seq` have been claimed.
    pub write_seq: AtomicU64,
    /// Bumped whenever a peer joins or leaves, so publishers recompute their reliable limit.
    pub peers_epoch: AtomicU64,
    /// A Link's producer token ([`producer_token`]): its epoch grows with every new holder, so
    /// a revoked producer's token no longer matches and its sends fail; [`PRODUCER_BUSY`] while
    /// the holder is inside a send. Unused on a multi-producer topic.
    pub producer: AtomicU64,
}

/// Wake-up for sleeping subscribers.
#[repr(C, align(64))]
pub struct Wake {
    /// Bumped by a publisher that finds sleepers; the futex word.
    pub futex: AtomicU32,
    /// Subscribers between "nothing to read" and their futex wait.
    pub sleepers: AtomicU32,
}

/// One endpoint.
#[repr(C, align(64))]
pub struct Peer {
    /// Owning process, 0 when free.
    pub pid: AtomicU32,
    /// `ROLE_*`.
    pub role: AtomicU32,
    /// Subscriber's queue depth (`keep_last(N)` / `reliable(N)`).
    pub depth: AtomicU32,
    /// 1 when the publisher must not overwrite this subscriber's unread messages.
    pub reliable: AtomicU32,
    /// Subscriber: the next sequence it will read.
    pub cursor: AtomicU64,
    /// Messages sent (publisher) or received (subscriber).
    pub messages: AtomicU64,
    /// Payload bytes sent or received.
    pub bytes: AtomicU64,
    /// Subscriber: messages overwritten before it read them. Publisher: sends refused (full).
    pub dropped: AtomicU64,
    /// The owner's start time (`/proc/<pid>/stat` field 22; 0 if unknown), written before
    /// `pid`: with it, a reused pid is not taken for the owner.
    pub start_time: AtomicU64,
    /// `PEER_*` flags.
    pub flags: AtomicU32,
}

/// [`Peer::flags`]: this subscriber (a recorder) wants each message's publish time in
/// [`SlotHeader::stamp`]. Publishers look for it when the peers change, so stamping costs
/// nothing while nobody records.
pub const PEER_WANTS_STAMPS: u32 = 1;

/// The fixed part of a slot; the payload follows it.
#[repr(C)]
pub struct SlotHeader {
    /// `2s+1` while message `s` is being written, `2s+2` once committed, 0 never written.
    pub seq: AtomicU64,
    /// Payload length.
    pub len: AtomicU32,
    /// The writing process (to tell a crashed writer from a slow one).
    pub writer: AtomicU32,
    /// The subscribers that hold this slot's message in place (bit `i`: peer entry `i`), so no
    /// publisher overwrites it (see the ring's pinning rules).
    pub pins: AtomicU64,
    /// When the message was published, ns on CLOCK_MONOTONIC (comparable across processes);
    /// written only while a subscriber asks for it ([`PEER_WANTS_STAMPS`]: a recorder), else 0.
    pub stamp: AtomicU64,
}

/// [`SlotHeader::len`] of a hole: a sequence number a publisher claimed but filled with no
/// message (the slot was pinned, or a loan was dropped unsent). Readers step over it.
pub const HOLE: u32 = u32::MAX;

/// Offset of [`Control`].
pub const CONTROL_OFFSET: usize = 256;
/// Offset of [`Wake`].
pub const WAKE_OFFSET: usize = 320;
/// Offset of the first [`Peer`].
pub const PEERS_OFFSET: usize = 384;
/// Offset of the first slot.
pub const SLOTS_OFFSET: usize = PEERS_OFFSET + MAX_PEERS * size_of::<Peer>();
/// Offset of the payload within a slot.
pub const PAYLOAD_OFFSET: usize = size_of::<SlotHeader>();

const _: () = {
    assert!(size_of::<Header>() == 256);
    assert!(CONTROL_OFFSET == size_of::<Header>());
    assert!(size_of::<Control>() == 64);
    assert!(size_of::<Wake>() == 64);
    assert!(size_of::<Peer>() == 64);
    assert!(size_of::<SlotHeader>() == 32);
    assert!(SLOTS_OFFSET.is_multiple_of(64));
    assert!(MAX_PEERS < 0x7f);
    // One bit per peer in `SlotHeader::pins`.
    assert!(MAX_PEERS <= 64);
};

/// Bytes per slot for a payload of `slot_size` bytes.
pub fn stride(slot_size: u32) -> u32 {
    (PAYLOAD_OFFSET as u32 + slot_size).div_ceil(64) * 64
}

/// Total segment bytes.
pub fn segment_size(slot_size: u32, capacity: u32) -> u64 {
    SLOTS_OFFSET as u64 + stride(slot_size) as u64 * capacity as u64
}
