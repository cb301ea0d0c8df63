//! `horus topic list | echo | hz`: looking inside the running system's topics from outside,
//! through /dev/shm (issue 19).
//!
//! - `list`: every segment of the namespace ([`crate::shm::segment_names`], read with
//!   [`crate::shm::describe`]: the header's topic name and type, who is attached, messages so
//!   far), with a rate sampled over [`RATE_WINDOW`]. Named topics by their name; a host's
//!   node-to-node connections as `node.port`, with the host's pid.
//! - `echo`: a `keep_last` subscriber (it never holds a publisher back) that prints each message
//!   decoded: the standard messages' fields, Python objects as JSON, a numpy array's dtype and
//!   shape, an image's header; type, size and a hex prefix otherwise.
//! - `hz`: a subscriber that timestamps each message as it arrives, and once a second prints
//!   the rate and the intervals' min, max and standard deviation over a sliding window.
//!
//! Does not own the ring ([`crate::shm`]) or the message types (`horus_plugin_api::msgs`).

use crate::shm::{self, SegmentInfo};
use horus_plugin_api::message::pod_from_bytes;
use horus_plugin_api::msgs::{Attitude, Image, Imu, Twist, Vector3};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long `topic list` watches the topics to give their rate.
pub const RATE_WINDOW: Duration = Duration::from_millis(500);

/// Bytes of a message `echo` shows in hex when it cannot decode it.
const HEX_PREFIX: usize = 16;

/// A failed `horus topic` command.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// No topic of that name.
    #[error("no topic `{topic}` in namespace `{ns}`; `horus topic list` shows the topics there are")]
    NotFound {
        /// The name asked for.
        topic: String,
        /// The namespace.
        ns: String,
    },
    /// `node.port` names a connection of several hosts.
    #[error("`{topic}` is a connection of several hosts (pids {pids}): choose one with --pid")]
    Ambiguous {
        /// The name asked for.
        topic: String,
        /// Their pids.
        pids: String,
    },
    /// Attaching failed.
    #[error("{0}")]
    Shm(#[from] shm::ShmError),
    /// Ctrl-C could not be caught.
    #[error("cannot catch Ctrl-C: {0}")]
    Signals(std::io::Error),
    /// The JSON could not be written.
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl TopicError {
    /// The exit code: 2 for a wrong or ambiguous name, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            TopicError::NotFound { .. } | TopicError::Ambiguous { .. } => 2,
            _ => 1,
        }
    }
}

/// One topic as `topic list` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TopicRow {
    /// A named topic's name, or a connection's `node.port`.
    pub topic: String,
    /// `named` or `connection` (private to one host run).
    pub kind: &'static str,
    /// The host whose connection it is (`None` for a named topic).
    pub host_pid: Option<u32>,
    /// The message type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Live publishers and subscribers (endpoints).
    pub publishers: usize,
    /// Live subscribers.
    pub subscribers: usize,
    /// Messages published so far.
    pub messages: u64,
    /// Messages per second over the sampling window.
    pub rate_hz: f64,
    /// Largest message, bytes.
    pub max_size: u32,
    /// Slots of its ring.
    pub depth: u64,
    /// The shared-memory object.
    pub segment: String,
}

/// A topic's name as the tools show it: a connection's `node.port`, a named topic's name.
pub fn display_name(topic: &str) -> &str {
    connection(topic).map_or(topic, |(_, port)| port)
}

/// A private topic's host pid and `node.port` (`@h<pid>-<start>/node.port`), else `None`.
fn connection(topic: &str) -> Option<(u32, &str)> {
    let rest = topic.strip_prefix(shm::PRIVATE_MARK)?.strip_prefix('h')?;
    let (instance, port) = rest.split_once('/')?;
    let pid = instance.split('-').next()?.parse().ok()?;
    Some((pid, port))
}

fn row(info: &SegmentInfo, rate_hz: f64) -> TopicRow {
    let (kind, host_pid, topic) = match connection(&info.topic) {
        Some((pid, port)) => ("connection", Some(pid), port.to_owned()),
        None => ("named", None, info.topic.clone()),
    };
    TopicRow {
        topic,
        kind,
        host_pid,
        type_name: info.type_name.clone(),
        publishers: info.publishers.len(),
        subscribers: info.subscribers.len(),
        messages: info.written,
        rate_hz,
        max_size: info.slot_size,
        depth: info.capacity,
        segment: info.name.clone(),
    }
}

/// Every topic of namespace `ns`, with rates measured over `window`; and the segments that
/// could not be read (another layout version, a corrupt header), each with why.
pub fn rows(ns: &str, window: Duration) -> (Vec<TopicRow>, Vec<String>) {
    let mut unreadable = Vec::new();
    let first: Vec<SegmentInfo> = shm::segment_names(ns)
        .iter()
        .filter_map(|n| {
            shm::describe(n)
                .map_err(|e| unreadable.push(format!("{n}: {e}")))
                .ok()
        })
        .collect();
    let start = Instant::now();
    std::thread::sleep(window);
    let secs = start.elapsed().as_secs_f64();
    let rows = first
        .iter()
        .map(|a| {
            let later = shm::describe(&a.name).map_or(a.written, |b| b.written);
            row(a, later.saturating_sub(a.written) as f64 / secs)
        })
        .collect();
    (rows, unreadable)
}

/// `horus topic list`: a table (and the segments it could not read), or the rows as JSON
/// (one list).
pub fn list(ns: &str, json: bool) -> Result<String, TopicError> {
    let (rows, unreadable) = rows(ns, RATE_WINDOW);
    if json {
        return Ok(serde_json::to_string(&rows)? + "\n");
    }
    let mut out = String::new();
    if rows.is_empty() {
        let _ = writeln!(out, "no topics in namespace `{ns}`");
    } else {
        let width = rows.iter().map(|r| r.topic.len()).max().unwrap_or(5).max(5);
        let _ = writeln!(
            out,
            "{:<width$}  {:<10}  {:>7}  {:<14}  {:>4}  {:>4}  {:>10}  {:>8}",
            "TOPIC", "KIND", "HOST", "TYPE", "PUB", "SUB", "MESSAGES", "RATE Hz"
        );
        for r in &rows {
            let host = r.host_pid.map_or_else(|| "-".to_owned(), |p| p.to_string());
            let _ = writeln!(
                out,
                "{:<width$}  {:<10}  {:>7}  {:<14}  {:>4}  {:>4}  {:>10}  {:>8.1}",
                r.topic, r.kind, host, r.type_name, r.publishers, r.subscribers, r.messages, r.rate_hz
            );
        }
    }
    for u in &unreadable {
        let _ = writeln!(out, "not readable: {u}");
    }
    Ok(out)
}

/// The segment of `topic` (a named topic, or a connection's `node.port`, of the host `pid`
/// when several have one).
pub fn find(ns: &str, topic: &str, pid: Option<u32>) -> Result<SegmentInfo, TopicError> {
    let infos: Vec<SegmentInfo> = shm::segment_names(ns)
        .iter()
        .filter_map(|n| shm::describe(n).ok())
        .collect();
    if let Some(named) = infos.iter().find(|i| i.topic == topic) {
        return Ok(named.clone());
    }
    let matches: Vec<(u32, &SegmentInfo)> = infos
        .iter()
        .filter_map(|i| {
            connection(&i.topic)
                .filter(|(_, port)| *port == topic)
                .map(|(p, _)| (p, i))
        })
        .filter(|(p, _)| pid.is_none_or(|want| want == *p))
        .collect();
    match matches.as_slice() {
        [] => Err(TopicError::NotFound {
            topic: topic.to_owned(),
            ns: ns.to_owned(),
        }),
        [(_, one)] => Ok((*one).clone()),
        many => Err(TopicError::Ambiguous {
            topic: topic.to_owned(),
            pids: many
                .iter()
                .map(|(p, _)| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// A `keep_last` subscriber of `info`'s topic, from its next message on: it holds no
/// publisher back.
pub(crate) fn subscribe(ns: &str, info: &SegmentInfo) -> Result<shm::Subscriber, TopicError> {
    subscribe_from(ns, info, false)
}

/// [`subscribe`]; with `backlog`, starting at the oldest message still in the ring.
pub(crate) fn subscribe_from(
    ns: &str,
    info: &SegmentInfo,
    backlog: bool,
) -> Result<shm::Subscriber, TopicError> {
    let spec = shm::TopicSpec {
        topic: info.topic.clone(),
        type_name: info.type_name.clone(),
        type_hash: info.type_hash,
        slot_size: info.slot_size,
        capacity: info.capacity as u32,
        single_producer: info.single_producer,
    };
    let depth = info.capacity as u32;
    Ok(match backlog {
        true => shm::late_subscriber(ns, &spec, depth)?,
        false => shm::subscriber(ns, &spec, depth, false)?,
    })
}

/// Set by Ctrl-C (or SIGTERM) while `echo` or `hz` runs.
pub(crate) fn interrupted() -> Result<Arc<AtomicBool>, TopicError> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone()).map_err(TopicError::Signals)?;
    }
    Ok(flag)
}

/// The fields of a standard message of type `type_name` in `bytes` (a Python object: its
/// JSON), if it is one.
pub fn standard(type_name: &str, bytes: &[u8]) -> Option<Value> {
    let v3 = |v: &Vector3| json!({"x": v.x, "y": v.y, "z": v.z});
    Some(match type_name {
        "Imu" => {
            let m: Imu = pod_from_bytes(bytes, "Imu").ok()?;
            json!({"stamp_ns": m.stamp_ns, "angular_velocity": v3(&m.angular_velocity),
                   "linear_acceleration": v3(&m.linear_acceleration)})
        }
        "Attitude" => {
            let m: Attitude = pod_from_bytes(bytes, "Attitude").ok()?;
            json!({"stamp_ns": m.stamp_ns, "roll": m.roll, "pitch": m.pitch, "yaw": m.yaw})
        }
        "Twist" => {
            let m: Twist = pod_from_bytes(bytes, "Twist").ok()?;
            json!({"stamp_ns": m.stamp_ns, "linear": v3(&m.linear), "angular": v3(&m.angular)})
        }
        "Vector3" => v3(&pod_from_bytes::<Vector3>(bytes, "Vector3").ok()?),
        "Image" => image(Image::view(bytes).ok()?.header),
        "u8" | "u16" | "u32" | "u64" => {
            let mut word = [0u8; 8];
            word.get_mut(..bytes.len())?.copy_from_slice(bytes);
            json!(u64::from_le_bytes(word))
        }
        "i64" if bytes.len() == 8 => json!(i64::from_le_bytes(bytes.try_into().ok()?)),
        "f64" if bytes.len() == 8 => json!(f64::from_le_bytes(bytes.try_into().ok()?)),
        "f32" if bytes.len() == 4 => json!(f32::from_le_bytes(bytes.try_into().ok()?)),
        "horus.PyObject" => python_object(bytes)?,
        _ => return None,
    })
}

fn image(h: horus_plugin_api::msgs::ImageHeader) -> Value {
    json!({"stamp_ns": h.stamp_ns, "width": h.width, "height": h.height, "step": h.step,
           "encoding": h.encoding(), "data_len": h.data_len})
}

/// A Python-object payload (see the python-loader's codec): MessagePack as JSON, a numpy
/// array's dtype and shape, an image's header, bytes as their length.
fn python_object(bytes: &[u8]) -> Option<Value> {
    let (&tag, rest) = bytes.split_first()?;
    match tag {
        b'M' => rmp_serde::from_slice::<Value>(rest).ok(),
        b'B' => Some(json!({"bytes": rest.len()})),
        b'I' => Some(json!({"image": image(Image::view(rest.get(7..)?).ok()?.header)})),
        b'N' => {
            let (ndim, n) = (*rest.first()? as usize, *rest.get(1)? as usize);
            let dtype = std::str::from_utf8(rest.get(2..2 + n)?).ok()?;
            let dims_at = (3 + n).next_multiple_of(8);
            let shape: Vec<u64> = bytes
                .get(dims_at..dims_at + 8 * ndim)?
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            Some(json!({"ndarray": {"dtype": dtype, "shape": shape}}))
        }
        _ => None,
    }
}

/// One received message as `echo` prints it (a line, or a JSON object).
fn render(info: &SegmentInfo, seq: Option<u64>, bytes: &[u8], as_json: bool) -> String {
    let value = standard(&info.type_name, bytes);
    if as_json {
        let topic = display_name(&info.topic);
        let mut obj = json!({"topic": topic, "type": info.type_name, "size": bytes.len(), "seq": seq});
        match value {
            Some(v) => obj["value"] = v,
            None => obj["hex"] = json!(hex(bytes)),
        }
        return obj.to_string();
    }
    let seq = seq.map_or_else(|| "?".into(), |s| s.to_string());
    format!("[{seq}] {}", line(&info.type_name, value, bytes))
}

/// A message of type `type_name` as one line: its fields for the standard types
/// (`Attitude {"roll":…}`), else its type, size and first bytes in hex.
pub fn describe(type_name: &str, bytes: &[u8]) -> String {
    line(type_name, standard(type_name, bytes), bytes)
}

fn line(type_name: &str, value: Option<Value>, bytes: &[u8]) -> String {
    match value {
        Some(v) => format!("{type_name} {v}"),
        None => format!("{type_name} ({} bytes) {}", bytes.len(), hex(bytes)),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out: String = bytes
        .iter()
        .take(HEX_PREFIX)
        .map(|b| format!("{b:02x}"))
        .collect();
    if bytes.len() > HEX_PREFIX {
        out.push('…');
    }
    out
}

/// `horus topic echo`: prints messages of `topic` as they arrive, `count` of them (or until
/// Ctrl-C), each on its own line (JSON with `as_json`).
pub fn echo(
    ns: &str,
    topic: &str,
    pid: Option<u32>,
    as_json: bool,
    count: Option<u64>,
) -> Result<(), TopicError> {
    let info = find(ns, topic, pid)?;
    let mut sub = subscribe(ns, &info)?;
    let stop = interrupted()?;
    let mut buf = Vec::new();
    let mut shown = 0;
    let mut out = std::io::stdout().lock();
    while !stop.load(Ordering::Relaxed) && count.is_none_or(|n| shown < n) {
        if sub.recv_timeout(&mut buf, Duration::from_millis(100)).is_some() {
            if writeln!(out, "{}", render(&info, sub.last_sequence(), &buf, as_json)).is_err() {
                return Ok(()); // the reader went away (`| head`)
            }
            shown += 1;
        }
    }
    Ok(())
}

/// Arrival times over a sliding window: the rate and the intervals' spread.
#[derive(Debug, Default)]
pub struct Intervals {
    times: std::collections::VecDeque<Instant>,
    window: usize,
}

/// What `hz` prints once a second.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Rate {
    /// Messages per second over the window.
    pub rate_hz: f64,
    /// Shortest interval, ms.
    pub min_ms: f64,
    /// Longest interval, ms.
    pub max_ms: f64,
    /// Standard deviation of the intervals, ms.
    pub std_ms: f64,
    /// Intervals in the window.
    pub window: usize,
}

impl Intervals {
    /// At most `window` intervals (the last `window + 1` arrivals).
    pub fn new(window: usize) -> Intervals {
        Intervals {
            times: std::collections::VecDeque::with_capacity(window + 1),
            window: window.max(1),
        }
    }

    /// A message arrived at `at`.
    pub fn push(&mut self, at: Instant) {
        if self.times.len() > self.window {
            self.times.pop_front();
        }
        self.times.push_back(at);
    }

    /// The window's figures, once it has two arrivals.
    pub fn rate(&self) -> Option<Rate> {
        let gaps: Vec<f64> = self
            .times
            .iter()
            .zip(self.times.iter().skip(1))
            .map(|(a, b)| b.duration_since(*a).as_secs_f64() * 1000.0)
            .collect();
        if gaps.is_empty() {
            return None;
        }
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        Some(Rate {
            rate_hz: if mean > 0.0 { 1000.0 / mean } else { f64::INFINITY },
            min_ms: gaps.iter().copied().fold(f64::INFINITY, f64::min),
            max_ms: gaps.iter().copied().fold(0.0, f64::max),
            std_ms: var.sqrt(),
            window: gaps.len(),
        })
    }
}

impl Rate {
    /// The line `hz` prints.
    pub fn line(&self) -> String {
        format!(
            "rate {:.2} Hz   min {:.3} ms   max {:.3} ms   std dev {:.3} ms   window {}",
            self.rate_hz, self.min_ms, self.max_ms, self.std_ms, self.window
        )
    }
}

/// `horus topic hz`: the rate of `topic`, printed once a second over the last `window`
/// intervals, until Ctrl-C or `duration`.
pub fn hz(
    ns: &str,
    topic: &str,
    pid: Option<u32>,
    window: usize,
    duration: Option<Duration>,
    as_json: bool,
) -> Result<(), TopicError> {
    let info = find(ns, topic, pid)?;
    let mut sub = subscribe(ns, &info)?;
    let stop = interrupted()?;
    let start = Instant::now();
    let mut next_report = start + Duration::from_secs(1);
    let mut intervals = Intervals::new(window);
    let mut buf = Vec::new();
    let mut out = std::io::stdout().lock();
    while !stop.load(Ordering::Relaxed) && duration.is_none_or(|d| start.elapsed() < d) {
        let wait = next_report
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        if sub.recv_timeout(&mut buf, wait).is_some() {
            intervals.push(Instant::now());
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            let line = match intervals.rate() {
                Some(r) if as_json => serde_json::to_string(&r)?,
                Some(r) => r.line(),
                None => "no messages yet".to_owned(),
            };
            if writeln!(out, "{line}").is_err() {
                return Ok(()); // the reader went away
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_topic_is_a_connection_of_its_host() {
        assert_eq!(connection("@h1234-99887/imu.imu"), Some((1234, "imu.imu")));
        assert_eq!(connection("demo/imu"), None);
        assert_eq!(connection("@hx/imu.imu"), None);
    }

    #[test]
    fn intervals_give_rate_and_spread() {
        let t0 = Instant::now();
        let mut w = Intervals::new(3);
        assert_eq!(w.rate(), None);
        for ms in [0, 10, 20, 40, 50] {
            w.push(t0 + Duration::from_millis(ms));
        }
        // The last 3 intervals: 10, 20, 10 ms.
        let r = w.rate().unwrap();
        assert_eq!(r.window, 3);
        assert!((r.rate_hz - 75.0).abs() < 0.01, "{r:?}");
        assert!((r.min_ms - 10.0).abs() < 1e-6 && (r.max_ms - 20.0).abs() < 1e-6);
        assert!((r.std_ms - 4.714).abs() < 0.01, "{r:?}");
    }

    #[test]
    fn messages_are_decoded_or_shown_as_hex() {
        let info = |t: &str| SegmentInfo {
            name: "/x".into(),
            topic: "t".into(),
            type_name: t.into(),
            type_hash: 0,
            slot_size: 64,
            capacity: 4,
            single_producer: true,
            written: 0,
            publishers: vec![],
            subscribers: vec![],
        };
        let att = Attitude {
            stamp_ns: 5,
            roll: 0.5,
            pitch: 0.0,
            yaw: -1.0,
        };
        let bytes = horus_plugin_api::message::pod_bytes(&att).to_vec();
        let line = render(&info("Attitude"), Some(3), &bytes, true);
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["value"]["roll"], 0.5);
        assert_eq!(v["seq"], 3);
        let mut py = vec![b'M'];
        py.extend(rmp_serde::to_vec_named(&json!({"x": 1, "name": "a"})).unwrap());
        assert_eq!(
            render(&info("horus.PyObject"), Some(0), &py, false),
            r#"[0] horus.PyObject {"name":"a","x":1}"#
        );
        let raw = render(&info("Custom"), None, &[0xab; 20], false);
        assert_eq!(raw, "[?] Custom (20 bytes) abababababababababababababababab…");
    }
}
