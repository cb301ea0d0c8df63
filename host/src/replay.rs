//! `horus replay`: a recording's messages published again onto named topics, with the recorded
//! timing (issue 19), so a manifest that subscribes to those topics runs against recorded data.
//!
//! Each channel of a `horus record` file becomes a named topic of the channel's name (or the
//! name `--remap from=to` gives it), made with the type, type hash and slot size the recording
//! kept in the channel's metadata, so the same subscribers attach. Messages go out in file
//! order, each when its recorded time (relative to the first, divided by `--speed`) comes; a
//! full `reliable` subscriber makes the replay wait, as it would a live publisher. Channels
//! recorded as JSON (`--json`) are not replayed (their bytes are gone): the replay says so.
//!
//! Does not own the recording's format (`crate::record`) or the ring.

use crate::shm::{self, Publisher, SendError, TopicSpec};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What `horus replay` was asked.
#[derive(Debug, Clone)]
pub struct ReplayArgs {
    /// The MCAP file.
    pub input: PathBuf,
    /// Time factor (2.0: twice as fast).
    pub speed: f64,
    /// Start again at the end, until Ctrl-C.
    pub looping: bool,
    /// Only these channels (empty: all).
    pub topics: Vec<String>,
    /// Skip this much of the recording's beginning.
    pub start: Duration,
    /// Channel name → topic name.
    pub remap: BTreeMap<String, String>,
}

/// A failed replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A channel lacks what a replay needs.
    #[error("{path}: channel `{channel}` {reason}; replay reads recordings made by `horus record`")]
    Channel {
        /// The file.
        path: PathBuf,
        /// The channel.
        channel: String,
        /// What is missing.
        reason: String,
    },
    /// A topic could not be made or attached.
    #[error("{0}")]
    Shm(#[from] shm::ShmError),
    /// A bad argument.
    #[error("{0}")]
    Usage(String),
    /// Ctrl-C could not be caught.
    #[error(transparent)]
    Topic(#[from] crate::topic_cli::TopicError),
}

impl ReplayError {
    /// The exit code: 2 for a usage or file error, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ReplayError::Usage(_) | ReplayError::File { .. } | ReplayError::Channel { .. } => 2,
            _ => 1,
        }
    }
}

/// `from=to` of `--remap`.
pub fn parse_remap(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() => Ok((from.to_owned(), to.to_owned())),
        _ => Err(format!("`{s}`: write the channel and the topic as `from=to`")),
    }
}

/// A replayed channel: its publisher, or why it is skipped.
enum Out {
    Publish(Box<Publisher>),
    Skip,
}

/// The publisher of `channel`, as the recording describes its topic.
fn publisher_for(ns: &str, args: &ReplayArgs, channel: &mcap::Channel<'_>) -> Result<Out, ReplayError> {
    if !args.topics.is_empty() && !args.topics.contains(&channel.topic) {
        return Ok(Out::Skip);
    }
    if channel.message_encoding == "json" {
        eprintln!(
            "horus replay: channel `{}` was recorded as JSON (--json): not replayed; record it without --json to replay it",
            channel.topic
        );
        return Ok(Out::Skip);
    }
    let meta = |key: &str| {
        channel.metadata.get(key).ok_or_else(|| ReplayError::Channel {
            path: args.input.clone(),
            channel: channel.topic.clone(),
            reason: format!("has no `{key}` in its metadata"),
        })
    };
    let bad = |key: &str| ReplayError::Channel {
        path: args.input.clone(),
        channel: channel.topic.clone(),
        reason: format!("has a malformed `{key}`"),
    };
    let type_name = meta("horus.type")?.clone();
    let type_hash = u64::from_str_radix(meta("horus.type_hash")?, 16).map_err(|_| bad("horus.type_hash"))?;
    let slot_size: u32 = meta("horus.max_size")?
        .parse()
        .map_err(|_| bad("horus.max_size"))?;
    let topic = args
        .remap
        .get(&channel.topic)
        .cloned()
        .unwrap_or_else(|| channel.topic.clone());
    let spec = TopicSpec {
        topic,
        type_name,
        type_hash,
        slot_size,
        capacity: crate::topic::named_capacity(slot_size, 16),
        single_producer: false,
    };
    Ok(Out::Publish(Box::new(shm::publisher(ns, &spec)?)))
}

/// Publishes `bytes`, waiting while a `reliable` subscriber is full (until `stop`).
fn publish(p: &mut Publisher, bytes: &[u8], stop: &std::sync::atomic::AtomicBool) -> Result<bool, SendError> {
    loop {
        match p.send(bytes) {
            Ok(()) => return Ok(true),
            Err(SendError::Full | SendError::Pinned) if !stop.load(Ordering::Relaxed) => {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(SendError::Full | SendError::Pinned) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// `horus replay`: returns the messages published.
pub fn replay(ns: &str, args: &ReplayArgs) -> Result<u64, ReplayError> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(ReplayError::Usage(format!(
            "--speed must be > 0 (got {})",
            args.speed
        )));
    }
    let file_err = |reason: String| ReplayError::File {
        path: args.input.clone(),
        reason,
    };
    let data = std::fs::read(&args.input).map_err(|e| file_err(e.to_string()))?;
    let stop = crate::topic_cli::interrupted()?;
    let progress = std::io::stderr().is_terminal();
    let mut outs: BTreeMap<u16, Out> = BTreeMap::new();
    let mut sent = 0u64;
    loop {
        let mut first: Option<u64> = None;
        // The wall-clock time and recording offset of the first message replayed.
        let mut base: Option<(Instant, Duration)> = None;
        let mut last_report = Instant::now();
        for m in mcap::MessageStream::new(&data).map_err(|e| file_err(crate::record::read_error(&e)))? {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let m = m.map_err(|e| file_err(crate::record::read_error(&e)))?;
            let t0 = *first.get_or_insert(m.log_time);
            let offset = Duration::from_nanos(m.log_time.saturating_sub(t0));
            if offset < args.start {
                continue;
            }
            let out = match outs.get_mut(&m.channel.id) {
                Some(out) => out,
                None => {
                    let out = publisher_for(ns, args, &m.channel)?;
                    outs.entry(m.channel.id).or_insert(out)
                }
            };
            let Out::Publish(p) = out else {
                continue;
            };
            let (wall, at) = *base.get_or_insert((Instant::now(), offset));
            let due = wall + offset.saturating_sub(at).div_f64(args.speed);
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                std::thread::sleep((due - now).min(Duration::from_millis(50)));
            }
            match publish(p, &m.data, &stop) {
                Ok(true) => sent += 1,
                Ok(false) => break,
                Err(e) => eprintln!("horus replay: channel `{}`: {e}", m.channel.topic),
            }
            if progress && last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                eprint!(
                    "\rreplaying at {:.1} s of the recording ({}x): {} messages   ",
                    offset.as_secs_f64(),
                    args.speed,
                    sent
                );
            }
        }
        if !args.looping || stop.load(Ordering::Relaxed) || first.is_none() {
            break;
        }
    }
    if progress {
        eprintln!();
    }
    let topics = outs.values().filter(|o| matches!(o, Out::Publish(_))).count();
    eprintln!(
        "replayed {sent} messages on {topics} topics from {}",
        args.input.display()
    );
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaps_are_from_equals_to() {
        assert_eq!(
            parse_remap("imu.imu=robot/imu"),
            Ok(("imu.imu".into(), "robot/imu".into()))
        );
        assert!(parse_remap("imu.imu").unwrap_err().contains("from=to"));
        assert!(parse_remap("=x").is_err());
    }
}
