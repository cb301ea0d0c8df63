//! `horus record`: topics of the running system into an [MCAP](https://mcap.dev) file, from
//! outside the hosts (issue 19).
//!
//! One `keep_last` subscriber per topic (no publisher is held back), woken by the topics'
//! futex words (`shm::wait_for_input`); what it reads goes through a bounded queue to a writer
//! thread, so a slow disk never stalls the reading: a full queue counts a drop. One MCAP
//! channel per topic — a named topic by its name, a host's connection as `node.port` — with
//! the message type as its schema; each message with its receive time (the slots carry no
//! publish time) and its sequence number on the ring. Messages are stored as the bytes they
//! travel as (channel encoding `horus-pod`, `horus-pyobject`, `horus-image` or `horus-raw`),
//! with a JSON Schema of the fields of the standard types; `--json` writes the standard
//! messages and Python objects as MCAP `json` instead, which Foxglove shows as fields.
//!
//! Does not own the topics' discovery or decoding (`crate::topic_cli`) or the ring.

use crate::shm::{self, InputWatch, SegmentInfo};
use crate::topic_cli::{self, TopicError};
use std::collections::BTreeMap;
use std::io::{BufWriter, IsTerminal, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Messages the queue between the reader and the writer holds.
pub const QUEUE: usize = 16_384;

/// How often the writer closes its chunk and writes it out.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

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

/// One message on its way to the writer.
struct Entry {
    channel: usize,
    seq: u64,
    log_time: u64,
    bytes: Vec<u8>,
}

/// A recorded topic: its name in the file, and how its messages are written.
#[derive(Debug, Clone)]
struct Channel {
    name: String,
    info: SegmentInfo,
    json: bool,
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

/// The writer thread: channels as they are first used, then messages, until the queue closes.
fn write(
    path: PathBuf,
    file: std::fs::File,
    channels: Arc<std::sync::Mutex<Vec<Channel>>>,
    rx: Receiver<Entry>,
    written: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
) -> Result<usize, RecordError> {
    let fail = |e: mcap::McapError| RecordError::File {
        path: path.clone(),
        reason: e.to_string(),
    };
    let mut out = mcap::WriteOptions::new()
        .compression(None)
        .profile("horus")
        .create(BufWriter::new(file))
        .map_err(fail)?;
    // Per recorded topic: its channel id, and its type when it is written as JSON.
    let mut ids: BTreeMap<usize, (u16, Option<String>)> = BTreeMap::new();
    let mut flushed = Instant::now();
    let mut unflushed = false;
    loop {
        // Once a second the open chunk is closed and written out: a recorder that is killed
        // leaves a file whose complete chunks readers take (up to the last second).
        if unflushed && flushed.elapsed() >= FLUSH_EVERY {
            out.flush().map_err(fail)?;
            flushed = Instant::now();
            unflushed = false;
        }
        let e = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(e) => e,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        unflushed = true;
        let (id, json) = match ids.get(&e.channel) {
            Some(known) => known.clone(),
            None => {
                let c = channels.lock().unwrap_or_else(|p| p.into_inner())[e.channel].clone();
                let schema = match schema_of(&c.info.type_name) {
                    Some(s) => out
                        .add_schema(&c.info.type_name, "jsonschema", s.as_bytes())
                        .map_err(fail)?,
                    None => 0,
                };
                let encoding = if c.json {
                    "json"
                } else {
                    raw_encoding(&c.info.type_name)
                };
                let mut meta = BTreeMap::new();
                meta.insert("horus.type".to_owned(), c.info.type_name.clone());
                meta.insert("horus.topic".to_owned(), c.info.topic.clone());
                // What a replay needs to make the topic again, for the same subscribers.
                meta.insert("horus.type_hash".to_owned(), format!("{:016x}", c.info.type_hash));
                meta.insert("horus.max_size".to_owned(), c.info.slot_size.to_string());
                let id = out.add_channel(schema, &c.name, encoding, &meta).map_err(fail)?;
                let known = (id, c.json.then(|| c.info.type_name.clone()));
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
        let data = match &json {
            None => e.bytes,
            Some(type_name) => {
                let value = topic_cli::standard(type_name, &e.bytes)
                    .unwrap_or_else(|| serde_json::json!({"horus.undecoded_bytes": e.bytes.len()}));
                serde_json::to_vec(&value).unwrap_or_default()
            }
        };
        out.write_to_known_channel(&header, &data).map_err(fail)?;
        written.fetch_add(1, Ordering::Relaxed);
        bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    }
    out.finish().map_err(fail)?;
    Ok(ids.len())
}

/// A topic's name in the recording: a named topic's name, a connection's `node.port`.
fn channel_name(info: &SegmentInfo) -> String {
    topic_cli::display_name(&info.topic).to_owned()
}

/// `horus record`: records until Ctrl-C or `duration`; returns what it wrote.
pub fn record(ns: &str, args: &RecordArgs) -> Result<Summary, RecordError> {
    if args.topics.is_empty() && !args.all {
        return Err(RecordError::NoTopics);
    }
    let file = std::fs::File::create(&args.output).map_err(|e| RecordError::File {
        path: args.output.clone(),
        reason: e.to_string(),
    })?;
    let mut subs: Vec<(shm::Subscriber, InputWatch)> = Vec::new();
    let channels = Arc::new(std::sync::Mutex::new(Vec::<Channel>::new()));
    let attach =
        |info: SegmentInfo, subs: &mut Vec<(shm::Subscriber, InputWatch)>| -> Result<(), RecordError> {
            let sub = topic_cli::subscribe(ns, &info)?;
            let watch = sub.watch().map_err(TopicError::from)?;
            let json = args.json && schema_of(&info.type_name).is_some();
            channels.lock().unwrap_or_else(|p| p.into_inner()).push(Channel {
                name: channel_name(&info),
                info,
                json,
            });
            subs.push((sub, watch));
            Ok(())
        };
    for t in &args.topics {
        attach(topic_cli::find(ns, t, args.pid)?, &mut subs)?;
    }
    let (tx, rx) = sync_channel::<Entry>(QUEUE);
    let (written, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writer = {
        let (path, channels, written, bytes) = (
            args.output.clone(),
            channels.clone(),
            written.clone(),
            bytes.clone(),
        );
        std::thread::Builder::new()
            .name("horus-record".into())
            .spawn(move || write(path, file, channels, rx, written, bytes))
            .map_err(|e| RecordError::File {
                path: args.output.clone(),
                reason: format!("cannot start the writer thread: {e}"),
            })?
    };
    let stop = topic_cli::interrupted()?;
    let start = Instant::now();
    let mut next_look = start;
    let mut dropped = 0u64;
    let bell = AtomicU32::new(0);
    let progress = std::io::stderr().is_terminal();
    let mut buf = Vec::new();
    while !stop.load(Ordering::Relaxed) && args.duration.is_none_or(|d| start.elapsed() < d) {
        if Instant::now() >= next_look {
            next_look += Duration::from_secs(1);
            if args.all {
                // Topics that appeared since: record them too.
                let known: Vec<String> = channels
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .map(|c| c.info.name.clone())
                    .collect();
                for name in shm::segment_names(ns) {
                    if known.contains(&name) {
                        continue;
                    }
                    if let Ok(info) = shm::describe(&name) {
                        attach(info, &mut subs)?;
                    }
                }
            }
            if progress {
                eprint!(
                    "\rrecording {} s: {} topics, {} messages, {:.1} MB, {} dropped   ",
                    start.elapsed().as_secs(),
                    subs.len(),
                    written.load(Ordering::Relaxed),
                    bytes.load(Ordering::Relaxed) as f64 / 1e6,
                    dropped
                );
            }
        }
        let mut got = false;
        for (i, (sub, _)) in subs.iter_mut().enumerate() {
            while sub.try_recv(&mut buf).is_some() {
                got = true;
                let e = Entry {
                    channel: i,
                    seq: sub.last_sequence().unwrap_or(0),
                    log_time: now_ns(),
                    bytes: std::mem::take(&mut buf),
                };
                if let Err(TrySendError::Full(_)) = tx.try_send(e) {
                    dropped += 1;
                }
            }
        }
        if !got {
            let watches: Vec<&InputWatch> = subs.iter().map(|(_, w)| w).collect();
            let until = (Instant::now() + Duration::from_millis(100)).min(next_look);
            shm::wait_for_input(&watches, &bell, bell.load(Ordering::SeqCst), until);
        }
    }
    if progress {
        eprintln!();
    }
    drop(subs);
    drop(tx);
    let channels_written = writer.join().map_err(|_| RecordError::File {
        path: args.output.clone(),
        reason: "the writer thread panicked".into(),
    })??;
    let summary = Summary {
        channels: channels_written,
        messages: written.load(Ordering::Relaxed),
        bytes: bytes.load(Ordering::Relaxed),
        dropped,
    };
    let _ = writeln!(
        std::io::stderr(),
        "recorded {} messages ({:.1} MB) of {} topics into {}, {} dropped",
        summary.messages,
        summary.bytes as f64 / 1e6,
        summary.channels,
        args.output.display(),
        summary.dropped
    );
    Ok(summary)
}
