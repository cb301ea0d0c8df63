//! `horus record` and `horus run --record`: topics into an [MCAP](https://mcap.dev) file, from
//! outside the hosts or from inside one (issue 19).
//!
//! One `keep_last` subscriber per topic (no publisher is held back), which asks the publishers
//! for publish stamps; a reader thread polls them every millisecond (never woken: a wake-up is
//! a system call in the publisher, inside a node's tick), and what it reads goes through a
//! bounded queue (in messages and in bytes) to a writer thread that polls it too, so a slow disk
//! never stalls the reading: a full queue, like a ring that lapped the reader, counts a drop.
//! One MCAP channel per topic — a named topic by its name, a host's connection as `node.port` —
//! with the message type as its schema; each message with its publish time and its sequence
//! number on the ring. Messages are stored as the bytes they travel as (channel encoding
//! `horus-pod`, `horus-pyobject`, `horus-image` or `horus-raw`), with a JSON Schema of the
//! fields of the standard types; `--json` writes the standard messages and Python objects as
//! MCAP `json` instead, which Foxglove shows as fields. A recording host adds its nodes' ticks
//! ([`TickLog`], channel [`TICKS_CHANNEL`]).
//!
//! Does not own the topics' discovery or decoding (`crate::topic_cli`) or the ring.

use crate::shm::{self, SegmentInfo};
use crate::topic_cli::{self, TopicError};
use std::collections::BTreeMap;
use std::io::{BufWriter, IsTerminal, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Messages the queue between the reader and the writer holds.
pub const QUEUE: usize = 16_384;

/// Bytes of messages the queue between the reader and the writer holds at most (a slow disk
/// under large messages must not grow the host's memory without bound).
pub const QUEUE_BYTES: u64 = 256 << 20;

/// How often the writer closes its chunk and writes it out.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// How long the reader and the writer sleep when they find nothing to do. Neither is ever
/// woken: a wake-up is a system call in the waker — a publisher inside a node's tick, the
/// scheduler's tick log — which costs the recorded nodes more than anything else recording
/// does (docs/performance.md). A topic's ring holds what comes in meanwhile.
const POLL: Duration = Duration::from_millis(1);

/// Message buffers the writer hands back to the reader for reuse.
const POOL: usize = 64;

/// How a recording's chunks are compressed (`--compression`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed: the cheapest to write, what every reader takes.
    #[default]
    None,
    /// Zstandard: smaller files, more CPU on the writer thread.
    Zstd,
    /// LZ4: faster than zstd, larger files.
    Lz4,
}

/// What a build without the `compression` feature says to a compressed file or option.
pub const NO_COMPRESSION: &str =
    "this horus was built without compression: build it with `cargo build --features horus-host/compression`";

/// Parses `--compression`: `none`, `zstd` or `lz4` (the last two only in a build with the
/// `compression` feature).
pub fn parse_compression(s: &str) -> Result<Compression, String> {
    let c = match s {
        "none" => return Ok(Compression::None),
        "zstd" => Compression::Zstd,
        "lz4" => Compression::Lz4,
        other => return Err(format!("`{other}` is not one of none, zstd, lz4")),
    };
    if cfg!(feature = "compression") {
        Ok(c)
    } else {
        Err(format!("`{s}`: {NO_COMPRESSION}"))
    }
}

impl Compression {
    /// The `mcap` crate's setting.
    fn mcap(self) -> Option<mcap::Compression> {
        match self {
            Compression::None => None,
            #[cfg(feature = "compression")]
            Compression::Zstd => Some(mcap::Compression::Zstd),
            #[cfg(feature = "compression")]
            Compression::Lz4 => Some(mcap::Compression::Lz4),
            // `parse_compression` refuses them in this build.
            #[cfg(not(feature = "compression"))]
            Compression::Zstd | Compression::Lz4 => None,
        }
    }
}

/// A reader's error on a recording, with what to do when it is a compression this build lacks.
pub fn read_error(e: &mcap::McapError) -> String {
    match e {
        mcap::McapError::UnsupportedCompression(c) => {
            format!("its chunks are compressed with {c}; {NO_COMPRESSION}")
        }
        e => e.to_string(),
    }
}

/// What `horus record` was asked.
#[derive(Debug, Clone, Default)]
pub struct RecordArgs {
    /// The MCAP file to write.
    pub output: PathBuf,
    /// Topics (named, or a connection's `node.port`).
    pub topics: Vec<String>,
    /// Every topic of the namespace (and those that appear while recording).
    pub all: bool,
    /// Stop after this long (else Ctrl-C).
    pub duration: Option<Duration>,
    /// The standard messages and Python objects as MCAP `json`.
    pub json: bool,
    /// The host whose connections to record, when several have one of a name.
    pub pid: Option<u32>,
    /// How the chunks are compressed.
    pub compression: Compression,
}

/// A failed recording.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A topic could not be found or attached.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The file could not be written.
    #[error("cannot write {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Nothing to record.
    #[error("name the topics to record, or --all (`horus topic list` shows them)")]
    NoTopics,
}

impl RecordError {
    /// The exit code: 2 for a usage or name error, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RecordError::Topic(e) => e.exit_code(),
            RecordError::NoTopics => 2,
            RecordError::File { .. } => 1,
        }
    }
}

/// What a recording wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Channels (topics).
    pub channels: usize,
    /// Messages written.
    pub messages: u64,
    /// Payload bytes written.
    pub bytes: u64,
    /// Messages lost: the queue to the writer was full.
    pub dropped: u64,
}

/// One record on its way to the writer.
struct Entry {
    channel: usize,
    seq: u64,
    log_time: u64,
    data: Data,
}

/// What an [`Entry`] carries.
enum Data {
    /// A message, as the bytes it travelled as.
    Bytes(Vec<u8>),
    /// A node's tick ([`TickLog`]), written as JSON by the writer (off the scheduler thread).
    Tick {
        node: Arc<str>,
        tick: u64,
        time_ns: u64,
        took_ns: u64,
    },
}

/// [`Entry::channel`] of the entry that ends the file: the queue may outlive the recording
/// (a scheduler's [`TickLog`]s hold it), so its closing cannot be the signal.
const END: usize = usize::MAX;

/// The name of the channel of the recorded nodes' ticks.
pub const TICKS_CHANNEL: &str = "horus.ticks";

/// A recorded channel: its name in the file, and what it records.
#[derive(Debug, Clone)]
struct Channel {
    name: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// A topic, its messages raw or (`json`) as JSON.
    Topic { info: SegmentInfo, json: bool },
    /// [`TICKS_CHANNEL`].
    Ticks,
}

/// MCAP log times are Unix ns; publish stamps and the scheduler's `Instant`s are on
/// CLOCK_MONOTONIC: one reading of both clocks converts them.
#[derive(Debug, Clone, Copy)]
struct Clock {
    instant: Instant,
    monotonic: u64,
    unix: u64,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            instant: Instant::now(),
            monotonic: shm::monotonic_ns(),
            unix: now_ns(),
        }
    }

    fn of_monotonic(&self, ns: u64) -> u64 {
        (self.unix as i128 + ns as i128 - self.monotonic as i128).max(0) as u64
    }

    fn of_instant(&self, t: Instant) -> u64 {
        match t.checked_duration_since(self.instant) {
            Some(after) => self.unix + after.as_nanos() as u64,
            None => self
                .unix
                .saturating_sub(self.instant.duration_since(t).as_nanos() as u64),
        }
    }
}

/// Where a scheduler sends its nodes' ticks while a host records (`horus run --record`): one
/// bounded `try_send` per tick, so a slow writer costs a dropped record, never a stalled tick.
#[derive(Debug, Clone)]
pub struct TickLog {
    tx: SyncSender<Entry>,
    channel: usize,
    node: Arc<str>,
    dropped: Arc<AtomicU64>,
    clock: Clock,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("channel", &self.channel).finish()
    }
}

impl TickLog {
    /// The log of node `name`'s ticks.
    pub fn for_node(&self, name: &str) -> TickLog {
        TickLog {
            node: name.into(),
            ..self.clone()
        }
    }

    /// Node tick number `tick` (1 for the first) began at `started` and took `took`; `epoch`
    /// is the scheduler's start (the node's clock counts from it).
    pub fn tick(&self, tick: u64, started: Instant, took: Duration, epoch: Instant) {
        let e = Entry {
            channel: self.channel,
            seq: tick,
            log_time: self.clock.of_instant(started),
            data: Data::Tick {
                node: self.node.clone(),
                tick,
                time_ns: started.saturating_duration_since(epoch).as_nanos() as u64,
                took_ns: took.as_nanos() as u64,
            },
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(e) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The message encoding of a topic's raw bytes.
fn raw_encoding(type_name: &str) -> &'static str {
    match type_name {
        "horus.PyObject" => "horus-pyobject",
        "Image" => "horus-image",
        "bytes" => "horus-raw",
        t if schema_of(t).is_some() => "horus-pod",
        _ => "horus-raw",
    }
}

/// A JSON Schema of the fields of a standard message type.
fn schema_of(type_name: &str) -> Option<String> {
    let num = r#"{"type":"number"}"#;
    let int = r#"{"type":"integer"}"#;
    let v3 = format!(r#"{{"type":"object","properties":{{"x":{num},"y":{num},"z":{num}}}}}"#);
    let obj = |props: &[(&str, &str)]| {
        let fields: Vec<String> = props.iter().map(|(k, v)| format!(r#""{k}":{v}"#)).collect();
        format!(r#"{{"type":"object","properties":{{{}}}}}"#, fields.join(","))
    };
    Some(match type_name {
        "Vector3" => v3.clone(),
        "Imu" => obj(&[
            ("stamp_ns", int),
            ("angular_velocity", &v3),
            ("linear_acceleration", &v3),
        ]),
        "Attitude" => obj(&[("stamp_ns", int), ("roll", num), ("pitch", num), ("yaw", num)]),
        "Twist" => obj(&[("stamp_ns", int), ("linear", &v3), ("angular", &v3)]),
        "Image" => obj(&[
            ("stamp_ns", int),
            ("width", int),
            ("height", int),
            ("step", int),
            ("encoding", r#"{"type":"string"}"#),
            ("data_len", int),
        ]),
        "u8" | "u16" | "u32" | "u64" | "i64" => int.to_owned(),
        "f32" | "f64" => num.to_owned(),
        // A Python object is any JSON value.
        "horus.PyObject" => "{}".to_owned(),
        _ => return None,
    })
}

/// Nanoseconds since the Unix epoch (MCAP's log time).
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The JSON Schema of a [`TICKS_CHANNEL`] message.
const TICK_SCHEMA: &str = r#"{"type":"object","properties":{"node":{"type":"string"},"tick":{"type":"integer"},"time_ns":{"type":"integer"},"took_ns":{"type":"integer"}}}"#;

/// The writer thread: channels as they are first used, then messages, until the queue closes.
fn write(
    path: PathBuf,
    file: std::fs::File,
    compression: Compression,
    channels: Arc<std::sync::Mutex<Vec<Channel>>>,
    rx: Receiver<Entry>,
    counts: Counts,
    pool: SyncSender<Vec<u8>>,
) -> Result<usize, RecordError> {
    // The I/O error itself (a full disk), not the crate's summary of it.
    let fail = |e: mcap::McapError| RecordError::File {
        path: path.clone(),
        reason: std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string()),
    };
    let mut out = mcap::WriteOptions::new()
        .compression(compression.mcap())
        .profile("horus")
        .create(BufWriter::new(file))
        .map_err(fail)?;
    // Per recorded channel: its channel id, and its type when it is written as JSON.
    let mut ids: BTreeMap<usize, (u16, Option<String>)> = BTreeMap::new();
    let mut flushed = Instant::now();
    let mut unflushed = false;
    let mut json = Vec::new();
    let mut since_look = 0u32;
    loop {
        let e = match rx.try_recv() {
            Ok(e) => e,
            Err(TryRecvError::Empty) => {
                // Once a second the open chunk is closed and written out: a recorder that is
                // killed leaves a file whose complete chunks readers take (up to the last
                // second).
                if unflushed && flushed.elapsed() >= FLUSH_EVERY {
                    out.flush().map_err(fail)?;
                    flushed = Instant::now();
                    unflushed = false;
                }
                std::thread::sleep(POLL);
                continue;
            }
            Err(TryRecvError::Disconnected) => break,
        };
        if e.channel == END {
            break;
        }
        unflushed = true;
        since_look += 1;
        if since_look == 4096 {
            // A queue that never empties still gets its chunks out once a second.
            since_look = 0;
            if flushed.elapsed() >= FLUSH_EVERY {
                out.flush().map_err(fail)?;
                flushed = Instant::now();
            }
        }
        let (id, as_json) = match ids.get(&e.channel) {
            Some(known) => known.clone(),
            None => {
                let c = channels.lock().unwrap_or_else(|p| p.into_inner())[e.channel].clone();
                let known = match &c.kind {
                    Kind::Ticks => {
                        let schema = out
                            .add_schema("horus.Tick", "jsonschema", TICK_SCHEMA.as_bytes())
                            .map_err(fail)?;
                        let id = out
                            .add_channel(schema, &c.name, "json", &BTreeMap::new())
                            .map_err(fail)?;
                        (id, None)
                    }
                    Kind::Topic { info, json } => {
                        let schema = match schema_of(&info.type_name) {
                            Some(s) => out
                                .add_schema(&info.type_name, "jsonschema", s.as_bytes())
                                .map_err(fail)?,
                            None => 0,
                        };
                        let encoding = if *json {
                            "json"
                        } else {
                            raw_encoding(&info.type_name)
                        };
                        let mut meta = BTreeMap::new();
                        meta.insert("horus.type".to_owned(), info.type_name.clone());
                        meta.insert("horus.topic".to_owned(), info.topic.clone());
                        // What a replay needs to make the topic again, for the same subscribers.
                        meta.insert("horus.type_hash".to_owned(), format!("{:016x}", info.type_hash));
                        meta.insert("horus.max_size".to_owned(), info.slot_size.to_string());
                        let id = out.add_channel(schema, &c.name, encoding, &meta).map_err(fail)?;
                        (id, json.then(|| info.type_name.clone()))
                    }
                };
                ids.insert(e.channel, known.clone());
                known
            }
        };
        let header = mcap::records::MessageHeader {
            channel_id: id,
            sequence: e.seq as u32,
            log_time: e.log_time,
            publish_time: e.log_time,
        };
        let data: &[u8] = match (&e.data, &as_json) {
            (Data::Bytes(b), None) => b,
            (Data::Bytes(b), Some(type_name)) => {
                let value = topic_cli::standard(type_name, b)
                    .unwrap_or_else(|| serde_json::json!({"horus.undecoded_bytes": b.len()}));
                json.clear();
                let _ = serde_json::to_writer(&mut json, &value);
                &json
            }
            (
                Data::Tick {
                    node,
                    tick,
                    time_ns,
                    took_ns,
                },
                _,
            ) => {
                json.clear();
                let _ = serde_json::to_writer(
                    &mut json,
                    &serde_json::json!({"node": &**node, "tick": tick, "time_ns": time_ns, "took_ns": took_ns}),
                );
                &json
            }
        };
        out.write_to_known_channel(&header, data).map_err(fail)?;
        counts.written.fetch_add(1, Ordering::Relaxed);
        counts.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        if let Data::Bytes(b) = e.data {
            counts.queued.fetch_sub(b.len() as u64, Ordering::Relaxed);
            let _ = pool.try_send(b);
        }
    }
    out.finish().map_err(fail)?;
    Ok(ids.len())
}

/// A topic's name in the recording: a named topic's name, a connection's `node.port`.
fn channel_name(info: &SegmentInfo) -> String {
    topic_cli::display_name(&info.topic).to_owned()
}

/// The writer's counts, shared with the reader.
#[derive(Debug, Clone, Default)]
struct Counts {
    /// Messages written.
    written: Arc<AtomicU64>,
    /// Bytes written.
    bytes: Arc<AtomicU64>,
    /// Message bytes in the queue.
    queued: Arc<AtomicU64>,
}

/// A recording under way: the topics' subscribers (read by whoever calls
/// [`pump`](Recording::pump)), the queue, and the writer thread.
struct Recording {
    ns: String,
    path: PathBuf,
    json: bool,
    channels: Arc<std::sync::Mutex<Vec<Channel>>>,
    /// Per recorded topic: its channel and subscriber.
    subs: Vec<(usize, shm::Subscriber)>,
    tx: SyncSender<Entry>,
    writer: std::thread::JoinHandle<Result<usize, RecordError>>,
    counts: Counts,
    /// Messages lost on the way to the writer (a full queue), ticks included.
    dropped: Arc<AtomicU64>,
    /// Buffers back from the writer.
    pool: Receiver<Vec<u8>>,
    clock: Clock,
    buf: Vec<u8>,
}

impl Recording {
    /// Creates `path` and starts the writer thread.
    fn start(
        ns: &str,
        path: &std::path::Path,
        json: bool,
        compression: Compression,
    ) -> Result<Recording, RecordError> {
        let file = std::fs::File::create(path).map_err(|e| RecordError::File {
            path: path.to_path_buf(),
            reason: format!("{e}; give a file in a directory that exists and that you can write"),
        })?;
        let channels = Arc::new(std::sync::Mutex::new(Vec::<Channel>::new()));
        let (tx, rx) = sync_channel::<Entry>(QUEUE);
        let (pool_tx, pool) = sync_channel::<Vec<u8>>(POOL);
        let counts = Counts::default();
        let writer = {
            let (to, channels, shared) = (path.to_path_buf(), channels.clone(), counts.clone());
            std::thread::Builder::new()
                .name("horus-record".into())
                .spawn(move || {
                    let done = write(to, file, compression, channels, rx, shared, pool_tx);
                    if let Err(e) = &done {
                        // Said now: the run goes on, and what follows is not recorded.
                        tracing::error!("the recording stopped: {e}");
                    }
                    done
                })
                .map_err(|e| RecordError::File {
                    path: path.to_path_buf(),
                    reason: format!("cannot start the writer thread: {e}"),
                })?
        };
        Ok(Recording {
            ns: ns.to_owned(),
            path: path.to_path_buf(),
            json,
            channels,
            subs: Vec::new(),
            tx,
            writer,
            counts,
            dropped: Arc::new(AtomicU64::new(0)),
            pool,
            clock: Clock::now(),
            buf: Vec::new(),
        })
    }

    /// Starts recording the topic of segment `info` (with `backlog`, from the oldest message
    /// still in its ring); its publishers stamp their messages with their publish time from
    /// their next send.
    fn attach(&mut self, info: SegmentInfo, backlog: bool) -> Result<(), RecordError> {
        let sub = topic_cli::subscribe_from(&self.ns, &info, backlog)?;
        sub.want_stamps();
        let json = self.json && schema_of(&info.type_name).is_some();
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.push(Channel {
            name: channel_name(&info),
            kind: Kind::Topic { info, json },
        });
        self.subs.push((channels.len() - 1, sub));
        Ok(())
    }

    /// The shm names of the segments recorded.
    fn segments(&self) -> Vec<String> {
        self.subs
            .iter()
            .map(|(_, sub)| sub.segment().shm_name().to_owned())
            .collect()
    }

    /// The channel of the nodes' ticks, and the log that feeds it.
    fn tick_log(&self) -> TickLog {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.push(Channel {
            name: TICKS_CHANNEL.to_owned(),
            kind: Kind::Ticks,
        });
        TickLog {
            tx: self.tx.clone(),
            channel: channels.len() - 1,
            node: "".into(),
            dropped: self.dropped.clone(),
            clock: self.clock,
        }
    }

    /// Queues every message waiting; false if there was none.
    fn pump(&mut self) -> bool {
        let mut got = false;
        for (channel, sub) in &mut self.subs {
            loop {
                if self.buf.capacity() == 0 {
                    // A buffer the writer is done with: no fresh (zeroed) memory per message.
                    if let Ok(b) = self.pool.try_recv() {
                        self.buf = b;
                    }
                }
                if sub.try_recv(&mut self.buf).is_none() {
                    break;
                }
                got = true;
                let len = self.buf.len() as u64;
                if self.counts.queued.load(Ordering::Relaxed) + len > QUEUE_BYTES {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let log_time = match sub.last_stamp() {
                    Some(stamp) => self.clock.of_monotonic(stamp),
                    // Sent before the publisher saw the recorder: its receive time.
                    None => now_ns(),
                };
                let e = Entry {
                    channel: *channel,
                    seq: sub.last_sequence().unwrap_or(0),
                    log_time,
                    data: Data::Bytes(std::mem::take(&mut self.buf)),
                };
                self.counts.queued.fetch_add(len, Ordering::Relaxed);
                if let Err(TrySendError::Full(e)) = self.tx.try_send(e) {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    self.counts.queued.fetch_sub(len, Ordering::Relaxed);
                    if let Data::Bytes(b) = e.data {
                        self.buf = b;
                    }
                }
            }
        }
        got
    }

    /// Messages lost: a full queue, or overwritten in their ring before the reader came to
    /// them (a topic whose ring is too small for the reader's pace).
    fn lost(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed) + self.subs.iter().map(|(_, s)| s.dropped()).sum::<u64>()
    }

    /// The progress line: how long, how much.
    fn progress(&self, elapsed: Duration) -> String {
        format!(
            "recording {} s: {} topics, {} messages, {:.1} MB, {} dropped",
            elapsed.as_secs(),
            self.subs.len(),
            self.counts.written.load(Ordering::Relaxed),
            self.counts.bytes.load(Ordering::Relaxed) as f64 / 1e6,
            self.lost()
        )
    }

    /// Reads what is left, closes the queue and waits for the writer to finish the file.
    fn finish(mut self) -> Result<Summary, RecordError> {
        self.pump();
        let lost = self.lost();
        let Recording {
            path,
            subs,
            tx,
            writer,
            counts,
            ..
        } = self;
        drop(subs);
        let end = Entry {
            channel: END,
            seq: 0,
            log_time: 0,
            data: Data::Bytes(Vec::new()),
        };
        // Blocks only while the writer drains a full queue.
        let _ = tx.send(end);
        drop(tx);
        let channels = writer.join().map_err(|_| RecordError::File {
            path: path.clone(),
            reason: "the writer thread panicked".into(),
        })??;
        Ok(Summary {
            channels,
            messages: counts.written.load(Ordering::Relaxed),
            bytes: counts.bytes.load(Ordering::Relaxed),
            dropped: lost,
        })
    }
}

impl Summary {
    /// The closing line: `recorded 1200 messages (0.1 MB) of 4 topics into f.mcap, 0 dropped`.
    pub fn line(&self, path: &std::path::Path) -> String {
        format!(
            "recorded {} messages ({:.1} MB) of {} channels into {}, {} dropped",
            self.messages,
            self.bytes as f64 / 1e6,
            self.channels,
            path.display(),
            self.dropped
        )
    }
}

/// `horus record`: records until Ctrl-C or `duration`; returns what it wrote.
pub fn record(ns: &str, args: &RecordArgs) -> Result<Summary, RecordError> {
    if args.topics.is_empty() && !args.all {
        return Err(RecordError::NoTopics);
    }
    let infos = args
        .topics
        .iter()
        .map(|t| topic_cli::find(ns, t, args.pid))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rec = Recording::start(ns, &args.output, args.json, args.compression)?;
    for info in infos {
        rec.attach(info, false)?;
    }
    let stop = topic_cli::interrupted()?;
    let start = Instant::now();
    let mut next_look = start;
    let progress = std::io::stderr().is_terminal();
    while !stop.load(Ordering::Relaxed) && args.duration.is_none_or(|d| start.elapsed() < d) {
        if Instant::now() >= next_look {
            next_look += Duration::from_secs(1);
            if args.all {
                // Topics that appeared since: record them too.
                let known = rec.segments();
                for name in shm::segment_names(ns) {
                    if known.contains(&name) {
                        continue;
                    }
                    if let Ok(info) = shm::describe(&name) {
                        rec.attach(info, false)?;
                    }
                }
            }
            if progress {
                eprint!("\r{}   ", rec.progress(start.elapsed()));
            }
        }
        if !rec.pump() {
            std::thread::sleep(POLL);
        }
    }
    if progress {
        eprintln!();
    }
    let summary = rec.finish()?;
    let _ = writeln!(std::io::stderr(), "{}", summary.line(&args.output));
    Ok(summary)
}

/// What `horus run --record` was asked.
#[derive(Debug, Clone, Default)]
pub struct HostRecordArgs {
    /// The MCAP file to write.
    pub output: PathBuf,
    /// Only these channels (`--record-topics`: named topics, connections as `node.port`);
    /// empty: every topic of the host.
    pub topics: Vec<String>,
    /// The standard messages and Python objects as MCAP `json`.
    pub json: bool,
    /// How the chunks are compressed.
    pub compression: Compression,
}

/// A host recording its own topics (`horus run --record`): a reader thread that attaches a
/// `keep_last` subscriber to every topic the host's nodes use — its connections (private
/// topics), and the named topics the host or its worker processes have an endpoint on —
/// looking again four times a second for topics a live apply or a Python node opens, and the
/// writer thread. The scheduler only sends its ticks ([`TickLog`]). Hot reloads keep a node's
/// endpoints, so the recording goes on through them.
pub struct HostRecorder {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<(Summary, Vec<String>), RecordError>>,
    args: HostRecordArgs,
}

/// How often a recording host looks for topics that appeared.
const SCAN_EVERY: Duration = Duration::from_millis(250);

/// The parent of process `pid` (field 4 of `/proc/<pid>/stat`).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_ascii_whitespace().nth(1)?.parse().ok()
}

/// Which of the namespace's topics a recording host takes.
struct Scan {
    me: u32,
    /// This host's private topics start with it (`@h<pid>-<start>/`).
    private: String,
    /// `--record-topics`; empty: all.
    wanted: Vec<String>,
    /// The wanted names seen so far.
    seen: Vec<String>,
    /// Segments looked at and left alone for good (another host's connections, or a topic
    /// that could not be attached: said once).
    skipped: std::collections::HashSet<String>,
}

impl Scan {
    fn ours(&self, info: &SegmentInfo) -> bool {
        if info.topic.starts_with(shm::PRIVATE_MARK) {
            return info.topic.starts_with(&self.private);
        }
        info.publishers
            .iter()
            .chain(&info.subscribers)
            .any(|&pid| pid == self.me || parent_of(pid) == Some(self.me))
    }

    /// Attaches the topics of this host that are not recorded yet.
    fn run(&mut self, rec: &mut Recording) {
        let known = rec.segments();
        for name in shm::segment_names(&rec.ns) {
            if known.contains(&name) || self.skipped.contains(&name) {
                continue;
            }
            let Ok(info) = shm::describe(&name) else {
                continue;
            };
            if info.topic.starts_with(shm::PRIVATE_MARK) && !self.ours(&info) {
                self.skipped.insert(name);
                continue;
            }
            if !self.ours(&info) {
                // A named topic nobody of ours uses (yet): looked at again next time.
                continue;
            }
            let channel = channel_name(&info);
            if !self.wanted.is_empty() {
                if !self.wanted.contains(&channel) {
                    self.skipped.insert(name);
                    continue;
                }
                self.seen.push(channel.clone());
            }
            // A topic that appeared while the host runs (a live apply's, a Python node's): what
            // its ring still holds of the messages sent before this look is recorded too.
            if let Err(e) = rec.attach(info, true) {
                tracing::warn!(channel, "not recorded: {e}");
                self.skipped.insert(name);
            }
        }
    }
}

impl HostRecorder {
    /// Creates the file: before the host binds its topics, so a path that cannot be written
    /// stops the run before anything started.
    pub fn create(args: &HostRecordArgs, ns: &str) -> Result<PreparedRecorder, RecordError> {
        Ok(PreparedRecorder {
            rec: Recording::start(ns, &args.output, args.json, args.compression)?,
            args: args.clone(),
        })
    }

    /// Stops the reader after it took what is queued, waits for the file to be finished, and
    /// says what was recorded (and which `--record-topics` never appeared).
    pub fn finish(self) -> Result<Summary, RecordError> {
        self.stop.store(true, Ordering::Relaxed);
        let (summary, seen) = self.thread.join().map_err(|_| RecordError::File {
            path: self.args.output.clone(),
            reason: "the recording thread panicked".into(),
        })??;
        for t in self.args.topics.iter().filter(|t| !seen.contains(t)) {
            tracing::warn!(
                "--record-topics: `{t}` never appeared in this host (`horus topic list` shows the names: named topics, and connections as node.port)"
            );
        }
        Ok(summary)
    }
}

/// A [`HostRecorder`] whose file is open, not yet reading.
pub struct PreparedRecorder {
    rec: Recording,
    args: HostRecordArgs,
}

impl PreparedRecorder {
    /// Attaches every topic of the host bound in `scope` now (before the scheduler's first
    /// tick, so nothing of the run's beginning is missed) and starts the reader thread.
    /// Returns the recorder and the log the scheduler sends its ticks to.
    pub fn start(self, scope: &crate::topic::TopicScope) -> Result<(HostRecorder, TickLog), RecordError> {
        let PreparedRecorder { mut rec, args } = self;
        let ticks = rec.tick_log();
        let mut scan = Scan {
            me: std::process::id(),
            private: format!("{}/", scope.instance()),
            wanted: args.topics.clone(),
            seen: Vec::new(),
            skipped: Default::default(),
        };
        scan.run(&mut rec);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("horus-recorder".into())
                .spawn(move || {
                    let mut next_scan = Instant::now() + SCAN_EVERY;
                    while !stop.load(Ordering::Relaxed) {
                        if Instant::now() >= next_scan {
                            scan.run(&mut rec);
                            next_scan = Instant::now() + SCAN_EVERY;
                        }
                        if !rec.pump() {
                            std::thread::sleep(POLL);
                        }
                    }
                    Ok((rec.finish()?, scan.seen))
                })
                .map_err(|e| RecordError::File {
                    path: args.output.clone(),
                    reason: format!("cannot start the recording thread: {e}"),
                })?
        };
        tracing::info!(file = %args.output.display(), "recording this host's topics and ticks");
        Ok((HostRecorder { stop, thread, args }, ticks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_names_and_what_a_build_without_it_says() {
        assert_eq!(parse_compression("none"), Ok(Compression::None));
        assert!(parse_compression("gzip").unwrap_err().contains("none, zstd, lz4"));
        let built_with = cfg!(feature = "compression");
        for name in ["zstd", "lz4"] {
            match parse_compression(name) {
                Ok(c) => assert!(built_with && c.mcap().is_some(), "{name}"),
                Err(e) => assert!(
                    !built_with && e.contains("--features horus-host/compression"),
                    "{e}"
                ),
            }
        }
        let e = mcap::McapError::UnsupportedCompression("zstd".into());
        assert!(
            read_error(&e).contains("compressed with zstd"),
            "{}",
            read_error(&e)
        );
    }
}
