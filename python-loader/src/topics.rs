//! One Python-side endpoint of a topic: the shared-memory rings of the host (`horus_host::shm`)
//! with Python objects in and out. Used by node I/O (`Node.send` / `Node.get`), hubs and links.
//!
//! A topic carries one of three kinds of payload, fixed by whoever created its segment:
//! - Python objects (type `horus.PyObject`, see [`crate::codec`]);
//! - a typed message (`horus.Imu`, …): the Rust type's bytes under its name and hash, so Python
//!   and Rust nodes share the topic;
//! - any other Rust type: Python reads and writes its raw bytes.
//!
//! Publishing to a topic nobody created makes it a typed topic if the first message is a typed
//! message, a Python-object topic otherwise. Reading a topic nobody created creates nothing (it
//! would fix the type before the publisher could): the endpoint attaches on the first read that
//! finds the segment, and then first gets what is still queued (up to the topic's depth).

use crate::{codec, msgs};
use horus_host::manifest::limits::{Limit, MAX_SIZE};
use horus_host::shm::{self, Publisher, SendError, ShmError, Subscriber, TopicSpec};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Type name of Python-object topics.
pub const OBJECT_TYPE: &str = "horus.PyObject";
/// Default largest encoded Python object of a topic this process creates.
pub const OBJECT_SLOT: u32 = 64 * 1024;
/// Most slots a Python-object topic gets by default (its keep_last depth).
pub const OBJECT_DEPTH: u32 = 16;
/// What a Python-object topic commits of /dev/shm by default (the memory of every topic is
/// committed when it is created): its depth is as many `max_size` messages as fit,
/// [`LARGE_DEPTH`] to [`OBJECT_DEPTH`]. 64 KiB × 16 by default.
pub const OBJECT_BUDGET: u64 = 1 << 20;
/// The depth of a topic for messages above a quarter of [`OBJECT_BUDGET`] (camera frames): 4,
/// so a reader may hold two frames in place (half the ring) while the publisher runs on, and
/// a 1920×1080×3 topic commits 24 MiB, which fits Docker's default 64 MiB /dev/shm twice.
pub const LARGE_DEPTH: u32 = 4;
/// Slots of a typed topic.
pub const TYPED_CAPACITY: u32 = 64;
/// Range of a topic's `depth`.
pub const DEPTH: Limit<i64> = Limit {
    key: "depth",
    min: 1,
    min_inclusive: true,
    max: Some(1 << 16),
    unit: "messages",
};

/// The size of the topics an endpoint creates (an existing topic keeps its creator's size).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sizing {
    /// Largest encoded message; `None`: [`OBJECT_SLOT`], or the first message's size if a send
    /// creates the topic with a larger one.
    pub max_size: Option<u32>,
    /// Queue depth; `None`: as many messages as fit in [`OBJECT_BUDGET`], [`LARGE_DEPTH`] to
    /// [`OBJECT_DEPTH`].
    pub depth: Option<u32>,
}

impl Sizing {
    /// `max_size=` and `depth=` as Python passed them; ValueError outside their ranges.
    pub fn from_py(max_size: Option<i64>, depth: Option<i64>) -> PyResult<Sizing> {
        let check = |limit: &Limit<i64>, v: Option<i64>| {
            v.map(|v| limit.check(v).map(|v| v as u32))
                .transpose()
                .map_err(|e| PyValueError::new_err(e.to_string()))
        };
        Ok(Sizing {
            max_size: check(&MAX_SIZE, max_size)?,
            depth: check(&DEPTH, depth)?,
        })
    }

    /// Slot size and capacity of a new Python-object topic whose first message (if a send
    /// creates it) is `first` bytes.
    fn object(self, first: usize) -> (u32, u32) {
        let max = MAX_SIZE.max.unwrap_or(i64::MAX) as u64;
        let slot = self.max_size.unwrap_or_else(|| {
            // A topic made by a send of a large message (a camera frame) gets room for it.
            let first = (first as u64).next_multiple_of(4096).min(max) as u32;
            first.max(OBJECT_SLOT)
        });
        let depth = self.depth.unwrap_or_else(|| {
            (OBJECT_BUDGET / u64::from(slot)).clamp(u64::from(LARGE_DEPTH), u64::from(OBJECT_DEPTH)) as u32
        });
        (slot, depth)
    }
}

/// The arguments of a Python `loan(shape, dtype=None)`: the shape as sizes (an int is a 1-d
/// shape), the dtype (default `uint8`).
pub fn loan_args<'py>(
    py: Python<'py>,
    shape: &Bound<'py, PyAny>,
    dtype: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Vec<u64>, Bound<'py, PyAny>)> {
    let shape: Vec<u64> = match shape.extract::<u64>() {
        Ok(n) => vec![n],
        Err(_) => shape
            .extract()
            .map_err(|_| PyTypeError::new_err("shape must be an int or a tuple of ints >= 0"))?,
    };
    let dtype = match dtype {
        Some(d) => d.clone(),
        None => pyo3::types::PyString::new(py, "uint8").into_any(),
    };
    Ok((shape, dtype))
}

/// The type hash of Python-object topics.
pub fn object_hash() -> u64 {
    use horus_plugin_api::abi::{fnv1a, FNV_OFFSET};
    fnv1a(FNV_OFFSET, OBJECT_TYPE.as_bytes())
}

/// What a topic carries.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Python objects.
    Object,
    /// A typed message.
    Typed(&'static msgs::Typed),
    /// Camera frames, the Rust `Image` encoding (`horus.Image`).
    Image,
    /// A Rust type Python has no class for: raw bytes.
    Raw,
}

fn kind_of(spec: &TopicSpec) -> Kind {
    if spec.type_hash == object_hash() {
        Kind::Object
    } else if spec.type_hash == <horus_plugin_api::msgs::Image as horus_plugin_api::Message>::TYPE_HASH {
        Kind::Image
    } else if let Some(t) = msgs::by_hash(spec.type_hash) {
        Kind::Typed(t)
    } else {
        Kind::Raw
    }
}

/// The spec a new segment of `kind` gets, sized by `sizing` (and, for Python objects, by the
/// `first` message's encoded size when a send creates it; 0 otherwise).
pub fn spec_for(topic: &str, kind: Kind, single_producer: bool, sizing: Sizing, first: usize) -> TopicSpec {
    match kind {
        Kind::Typed(t) => TopicSpec {
            topic: topic.to_owned(),
            type_name: t.name.to_owned(),
            type_hash: t.hash,
            slot_size: t.size as u32,
            capacity: sizing.depth.unwrap_or(TYPED_CAPACITY),
            single_producer,
        },
        Kind::Image => {
            let (slot_size, capacity) = sizing.object(first);
            TopicSpec {
                topic: topic.to_owned(),
                type_name: "Image".to_owned(),
                type_hash: <horus_plugin_api::msgs::Image as horus_plugin_api::Message>::TYPE_HASH,
                slot_size,
                capacity,
                single_producer,
            }
        }
        Kind::Object | Kind::Raw => {
            let (slot_size, capacity) = sizing.object(first);
            TopicSpec {
                topic: topic.to_owned(),
                type_name: OBJECT_TYPE.to_owned(),
                type_hash: object_hash(),
                slot_size,
                capacity,
                single_producer,
            }
        }
    }
}

/// A Python exception for a shared-memory error on `topic`.
pub fn shm_err(e: ShmError) -> PyErr {
    match e {
        ShmError::TypeMismatch { .. } | ShmError::SlotTooSmall { .. } => PyTypeError::new_err(e.to_string()),
        // A second producer on a Link: not a bad value, a conflict between processes.
        ShmError::ProducerTaken { .. } => PyRuntimeError::new_err(e.to_string()),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// Counters of one endpoint.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Messages published.
    pub sent: u64,
    /// Messages taken.
    pub received: u64,
    /// Bytes published.
    pub bytes_sent: u64,
    /// Bytes taken.
    pub bytes_received: u64,
    /// Sends or receives that raised.
    pub errors: u64,
}

/// One topic as seen from Python.
pub struct Endpoint {
    topic: String,
    ns: String,
    single_producer: bool,
    sizing: Sizing,
    kind: Option<Kind>,
    publisher: Option<Publisher>,
    subscriber: Option<Subscriber>,
    /// The node has read this topic (`get`, `recv`, `has_msg`): an input trigger waits on it,
    /// and [`Endpoint::topic_stats`] attaches to it once it exists.
    read: bool,
    /// Dropped messages of subscribers this endpoint had before (counters survive a re-attach).
    pub counters: Counters,
    /// The loan handed out by [`Endpoint::loan`] and not sent yet.
    loan: Option<OpenLoan>,
}

/// A numpy array lent in a topic's slot ([`Endpoint::loan`]).
struct OpenLoan {
    /// The array handed out: sending this very object publishes the loan.
    array: Py<PyAny>,
    memory: Py<crate::embed::SlotMemory>,
    /// The message's length (header and data).
    len: usize,
}

impl Endpoint {
    /// An endpoint of `topic` (the name other processes see) in namespace `ns`.
    pub fn new(topic: String, ns: String, single_producer: bool) -> Endpoint {
        Endpoint {
            topic,
            ns,
            single_producer,
            sizing: Sizing::default(),
            kind: None,
            publisher: None,
            subscriber: None,
            read: false,
            counters: Counters::default(),
            loan: None,
        }
    }

    /// The size the topic gets if this endpoint creates it.
    pub fn with_sizing(mut self, sizing: Sizing) -> Endpoint {
        self.sizing = sizing;
        self
    }

    /// Attaches a subscriber now, creating the topic as a Python-object topic if nobody has: for
    /// hubs and links, which must not miss what is sent after they exist.
    pub fn subscribe_now(&mut self) -> PyResult<()> {
        let spec = match shm::peek(&self.ns, &self.topic).map_err(shm_err)? {
            Some(spec) => spec,
            None => spec_for(&self.topic, Kind::Object, self.single_producer, self.sizing, 0),
        };
        let sub = shm::subscriber(&self.ns, &spec, spec.capacity, false).map_err(shm_err)?;
        self.kind = Some(kind_of(&spec));
        self.subscriber = Some(sub);
        Ok(())
    }

    /// Publishes `obj`, encoded for the topic's kind, using `scratch` as the buffer.
    pub fn send(&mut self, obj: &Bound<'_, PyAny>, scratch: &mut Vec<u8>) -> PyResult<()> {
        let result = self.send_inner(obj, scratch);
        if result.is_err() {
            self.counters.errors += 1;
        }
        result
    }

    fn send_inner(&mut self, obj: &Bound<'_, PyAny>, scratch: &mut Vec<u8>) -> PyResult<()> {
        if let Some(open) = &self.loan {
            if obj.is(open.array.bind(obj.py())) {
                return self.send_loan(obj);
            }
            // Anything else first closes the loan unsent.
            self.discard_loan();
        }
        scratch.clear();
        // Not attached yet: the topic's kind comes from its segment, or from this first message.
        let mut existing = None;
        let kind = match (self.publisher.is_some(), self.kind) {
            (true, kind) => kind.unwrap_or(Kind::Object),
            (false, known) => {
                existing = shm::peek(&self.ns, &self.topic).map_err(shm_err)?;
                let kind = match (&existing, known) {
                    (Some(spec), _) => kind_of(spec),
                    (None, Some(kind)) => kind,
                    (None, None) if obj.is_instance_of::<crate::image::Image>() => Kind::Image,
                    (None, None) => match msgs::encode(obj, scratch) {
                        Some(t) => Kind::Typed(t),
                        None => Kind::Object,
                    },
                };
                scratch.clear();
                kind
            }
        };
        // A top-level numpy array or an image: its data goes straight from the array into the
        // slot, after a small header (`codec::ndarray_header`, `image::encode`).
        let array = match kind {
            Kind::Object if codec::is_ndarray(obj) => Some(codec::ndarray_header(obj, scratch)?),
            Kind::Object | Kind::Image => match crate::image::encode(obj) {
                Some(image) => {
                    let (header, pixels) = image?;
                    if matches!(kind, Kind::Object) {
                        scratch.extend_from_slice(&crate::image::TAG_BLOCK);
                    }
                    scratch.extend_from_slice(&header);
                    Some(pixels)
                }
                None if matches!(kind, Kind::Image) => {
                    return Err(crate::image::not_an_image(&self.topic, obj))
                }
                None => None,
            },
            _ => None,
        };
        let data: &[u8] = array.as_ref().map_or(&[], crate::embed::buffer_bytes);
        match kind {
            Kind::Object | Kind::Image if array.is_some() => {}
            Kind::Image => {} // never without an image: refused above
            Kind::Object => codec::encode(obj, scratch)?,
            Kind::Typed(t) => {
                if !(t.encode)(obj, scratch) {
                    return Err(PyTypeError::new_err(format!(
                        "topic `{}` carries {} messages: send a horus.{} (got `{}`)",
                        self.topic,
                        t.name,
                        t.name,
                        obj.get_type()
                            .name()
                            .map_or_else(|_| "?".into(), |n| n.to_string())
                    )));
                }
            }
            Kind::Raw => {
                let b = obj.cast::<PyBytes>().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "topic `{}` carries a Rust type Python has no class for: send its raw bytes",
                        self.topic
                    ))
                })?;
                scratch.extend_from_slice(b.as_bytes());
            }
        }
        if self.publisher.is_none() {
            let spec = existing.unwrap_or_else(|| {
                spec_for(
                    &self.topic,
                    kind,
                    self.single_producer,
                    self.sizing,
                    scratch.len() + data.len(),
                )
            });
            self.publisher = Some(shm::publisher(&self.ns, &spec).map_err(shm_err)?);
            self.kind = Some(kind);
        }
        let publisher = self.publisher.as_mut().expect("attached above");
        // One part when there is no array data: the ring's single-slice copy is the fast one.
        let sent = if data.is_empty() {
            publisher.send(scratch)
        } else {
            publisher.send_parts(&[scratch, data])
        };
        sent.map_err(|e| self.send_error(e))?;
        self.counters.sent += 1;
        self.counters.bytes_sent += (scratch.len() + data.len()) as u64;
        Ok(())
    }

    /// The Python exception of a refused send.
    fn send_error(&self, e: SendError) -> PyErr {
        match e {
            SendError::TooLarge { len, max } => PyValueError::new_err(format!(
                "message of {len} bytes does not fit topic `{}` (at most {max} bytes per message); a topic \
                 keeps the max_size its creator gave it: create it with a larger one (e.g. \
                 horus.Hub(name, max_size={})) or send smaller messages",
                self.topic,
                (len as u64).next_power_of_two()
            )),
            e @ SendError::Revoked => PyRuntimeError::new_err(format!("topic `{}`: {e}", self.topic)),
            e => PyValueError::new_err(format!("topic `{}`: {e}", self.topic)),
        }
    }

    /// [`loan`](Self::loan) with Python's arguments: `shape` an int or a tuple of ints,
    /// `dtype` anything `numpy.dtype` takes (default `uint8`).
    pub fn loan_py<'py>(
        &mut self,
        py: Python<'py>,
        shape: &Bound<'py, PyAny>,
        dtype: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (shape, dtype) = loan_args(py, shape, dtype)?;
        self.loan(py, shape, &dtype)
    }

    /// Lends a writable numpy array of `shape` and `dtype` that lives in the topic's next slot:
    /// fill it, then [`send`](Self::send) it to publish it with no copy (sending anything else,
    /// another loan or closing discards it). The topic must carry Python objects (it is made
    /// one, sized for the array, if nobody created it).
    pub fn loan<'py>(
        &mut self,
        py: Python<'py>,
        shape: Vec<u64>,
        dtype: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.discard_loan();
        let dtype = py.import("numpy")?.call_method1("dtype", (dtype,))?;
        if dtype.getattr("hasobject")?.extract::<bool>()? {
            return Err(PyTypeError::new_err(
                "cannot loan a numpy array of Python objects (dtype=object): use a numeric dtype",
            ));
        }
        let item: u64 = dtype.getattr("itemsize")?.extract()?;
        let nbytes = shape
            .iter()
            .try_fold(item, |a, d| a.checked_mul(*d))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| PyValueError::new_err(format!("an array of shape {shape:?} is too large")))?;
        let mut header = Vec::new();
        codec::ndarray_header_for(&dtype.getattr("str")?.extract::<String>()?, &shape, &mut header)?;
        let len = header.len() + nbytes;
        if self.publisher.is_none() {
            let existing = shm::peek(&self.ns, &self.topic).map_err(shm_err)?;
            let kind = existing.as_ref().map_or(Kind::Object, kind_of);
            if !matches!(kind, Kind::Object) {
                return Err(self.not_objects());
            }
            let spec = existing
                .unwrap_or_else(|| spec_for(&self.topic, kind, self.single_producer, self.sizing, len));
            self.publisher = Some(shm::publisher(&self.ns, &spec).map_err(shm_err)?);
            self.kind = Some(kind);
        } else if !matches!(self.kind, Some(Kind::Object) | None) {
            return Err(self.not_objects());
        }
        let publisher = self.publisher.as_mut().expect("attached above");
        let max = publisher.segment().slot_size();
        if len > max as usize {
            return Err(self.send_error(SendError::TooLarge { len, max }));
        }
        if let Err(e) = publisher.loan() {
            return Err(self.send_error(e));
        }
        let bytes = publisher.loan_bytes().expect("a loan was just opened");
        bytes[..header.len()].copy_from_slice(&header);
        let memory = crate::embed::SlotMemory::loaned(publisher, header.len(), nbytes)
            .expect("the array fits the slot");
        let memory = Bound::new(py, memory)?;
        let array = codec::array_over(&memory, &dtype, shape)?;
        self.loan = Some(OpenLoan {
            array: array.clone().unbind(),
            memory: memory.unbind(),
            len,
        });
        Ok(array)
    }

    fn not_objects(&self) -> PyErr {
        PyTypeError::new_err(format!(
            "topic `{}` carries a typed message, not Python objects: loans are numpy arrays on Python-object topics",
            self.topic
        ))
    }

    /// Publishes the open loan (`array` is its array): no copy. The array (and its memory) is
    /// read-only afterwards: its bytes are a published message now.
    fn send_loan(&mut self, array: &Bound<'_, PyAny>) -> PyResult<()> {
        let open = self.loan.take().expect("a loan is open");
        open.memory.get().seal();
        array.getattr("flags")?.setattr("writeable", false)?;
        let publisher = self.publisher.as_mut().expect("a loan has a publisher");
        publisher.send_loan(open.len).map_err(|e| self.send_error(e))?;
        self.counters.sent += 1;
        self.counters.bytes_sent += open.len as u64;
        Ok(())
    }

    /// Closes the open loan unsent, if any: its slot becomes a hole readers step over, its
    /// array read-only.
    pub fn discard_loan(&mut self) {
        if let Some(open) = self.loan.take() {
            open.memory.get().seal();
            Python::attach(|py| {
                let _ = open
                    .array
                    .bind(py)
                    .getattr("flags")
                    .and_then(|f| f.setattr("writeable", false));
            });
            if let Some(p) = self.publisher.as_mut() {
                p.discard_loan();
            }
        }
    }

    fn attach_subscriber(&mut self) -> PyResult<bool> {
        if self.subscriber.is_some() {
            return Ok(true);
        }
        let Some(spec) = shm::peek(&self.ns, &self.topic).map_err(shm_err)? else {
            return Ok(false);
        };
        let sub = shm::late_subscriber(&self.ns, &spec, spec.capacity).map_err(shm_err)?;
        self.kind = Some(kind_of(&spec));
        self.subscriber = Some(sub);
        Ok(true)
    }

    /// The oldest unread message, or `None`.
    pub fn recv<'py>(&mut self, py: Python<'py>, buf: &mut Vec<u8>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.read = true;
        if !self.attach_subscriber()? {
            return Ok(None);
        }
        let sub = self.subscriber.as_mut().expect("attached");
        let kind = self.kind.unwrap_or(Kind::Object);
        // A topic for large messages is read in place: a large array comes back as a view of
        // its slot, anything else is decoded from it (`codec::decode_held`). A reader that
        // holds as many views as it may gets copies instead.
        let in_place = match kind {
            Kind::Object => sub.segment().slot_size() > OBJECT_SLOT,
            Kind::Image => true,
            _ => false,
        };
        if in_place {
            match sub.try_recv_pinned() {
                Ok(None) => return Ok(None),
                Ok(Some((held, _))) => {
                    self.counters.received += 1;
                    self.counters.bytes_received += held.bytes().len() as u64;
                    let decoded = match kind {
                        Kind::Image => crate::image::from_held(py, held, 0),
                        _ => codec::decode_held(py, held),
                    };
                    if decoded.is_err() {
                        self.counters.errors += 1;
                    }
                    return decoded.map(Some);
                }
                Err(_) => {}
            }
        }
        // A numpy array on a Python-object topic is copied once, from the slot into the array
        // returned; anything else into `buf`, then decoded.
        let got = sub.try_recv_with(|len, words| {
            let array = match kind {
                Kind::Object => codec::read_ndarray_from_slot(py, len, words),
                _ => None,
            };
            if array.is_none() {
                buf.resize(len, 0); // every byte overwritten: only growth is zero-filled
                shm::copy_words_out(words, 0, buf);
            }
            (len, array)
        });
        let Some(((len, array), _)) = got else {
            return Ok(None);
        };
        self.counters.received += 1;
        self.counters.bytes_received += len as u64;
        let decoded = match (kind, array) {
            (_, Some(array)) => array,
            (Kind::Object, None) => codec::decode(py, buf),
            (Kind::Typed(t), None) => (t.decode)(py, buf),
            (Kind::Raw, None) => Ok(PyBytes::new(py, buf).into_any()),
            (Kind::Image, None) => crate::image::from_bytes(py, buf),
        };
        if decoded.is_err() {
            self.counters.errors += 1;
        }
        decoded.map(Some)
    }

    /// Messages waiting for this endpoint (0 before it attached).
    pub fn pending(&mut self) -> PyResult<u64> {
        self.read = true;
        if !self.attach_subscriber()? {
            return Ok(0);
        }
        Ok(self.subscriber.as_ref().map_or(0, |s| s.pending()))
    }

    /// Messages overwritten before this endpoint read them.
    pub fn dropped(&self) -> u64 {
        self.subscriber.as_ref().map_or(0, |s| s.dropped())
    }

    /// Attaches the subscriber of a topic the node has read before it existed (a publisher has
    /// created it since), so an input trigger can wait on it; false if there is nothing to
    /// watch yet.
    pub fn watch_read(&mut self) -> bool {
        self.read && self.attach_subscriber().unwrap_or(false)
    }

    /// This endpoint as the host's stats show a port: an `output` entry once it has published,
    /// an `input` entry once it has read (both for a name used both ways), with its queue
    /// (`watch`) for an input trigger. `port` is the name the node uses, the topic the one
    /// other processes see.
    pub fn topic_stats(&self, port: &str) -> Vec<horus_host::io::TopicStats> {
        use horus_host::io::TopicStats;
        let mut out = Vec::new();
        if self.publisher.is_some() || self.counters.sent > 0 {
            out.push(TopicStats {
                port: port.to_owned(),
                topic: self.topic.clone(),
                direction: "output".into(),
                messages: self.counters.sent,
                bytes: self.counters.bytes_sent,
                dropped: self.publisher.as_ref().map_or(0, |p| p.refused()),
                last_sequence: self.publisher.as_ref().and_then(|p| p.last_sequence()),
                watch: Vec::new(),
            });
        }
        if self.subscriber.is_some() || self.counters.received > 0 {
            out.push(TopicStats {
                port: port.to_owned(),
                topic: self.topic.clone(),
                direction: "input".into(),
                messages: self.counters.received,
                bytes: self.counters.bytes_received,
                dropped: self.dropped(),
                last_sequence: self.subscriber.as_ref().and_then(|s| s.last_sequence()),
                watch: self.subscriber.iter().map(|s| s.input_peer()).collect(),
            });
        }
        out
    }

    /// Other endpoints attached to the topic (publishers and subscribers of any process).
    pub fn peers(&self) -> usize {
        let seg = match (&self.publisher, &self.subscriber) {
            (Some(p), _) => p.segment(),
            (None, Some(s)) => s.segment(),
            (None, None) => return 0,
        };
        let mine = usize::from(self.publisher.is_some()) + usize::from(self.subscriber.is_some());
        (0..horus_host::shm::layout::MAX_PEERS)
            .filter(|&i| seg.peer_at(i).pid.load(std::sync::atomic::Ordering::Relaxed) != 0)
            .count()
            .saturating_sub(mine)
    }

    /// The shared-memory object's name.
    pub fn shm_name(&self) -> String {
        shm::shm_name(&self.ns, &self.topic)
    }

    /// Detaches from the topic (the last endpoint removes its segment; arrays over its slots
    /// keep their memory).
    pub fn close(&mut self) {
        self.discard_loan();
        self.publisher = None;
        self.subscriber = None;
    }
}
