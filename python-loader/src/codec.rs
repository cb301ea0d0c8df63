//! How Python objects travel on a topic. Documented for users in docs/python.md.
//!
//! A payload on a Python-object topic starts with one tag byte:
//! - `b'M'`: the rest is one [MessagePack](https://msgpack.org) value. `None`, `bool`, `int`
//!   (64-bit), `float`, `str`, `bytes`/`bytearray`/`memoryview` (bin), `list`/`tuple` (array; a
//!   tuple comes back as a list), `dict` (map; keys of any of these types). Two extension types:
//!   `1` a numpy array (`dtype` string, shape, C-order data; it comes back as a writable array
//!   over the received buffer, no second copy) and `2` a typed message (`horus.Imu`, … : the
//!   Rust type's hash, then its bytes).
//! - `b'B'`: a top-level `bytes` object; the rest is its content, unencoded.
//! - `b'N'`: a top-level numpy array: a small header (ndim, dtype string, shape) padded to 8
//!   bytes, then the array's data as it is in memory, copied once from the array into the slot
//!   and once from the slot into the received array (no MessagePack of the data).
//! - `b'I'`: a `horus.Image`: 7 zero bytes, then the Rust `Image` encoding (a 64-byte header,
//!   then the pixels; see [`crate::image`]).
//!
//! MessagePack because it is compact, schemaless like Python's own objects, specified, and
//! readable from every language a robot's tools are written in; the encoder and decoder here
//! walk Python objects directly (rmp for the wire format), with no intermediate tree.

use crate::msgs;
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyMemoryView, PyString, PyTuple,
};
use rmp::Marker;

/// Tag of a MessagePack payload.
pub const TAG_MSGPACK: u8 = b'M';
/// Tag of a raw `bytes` payload.
pub const TAG_BYTES: u8 = b'B';
/// Tag of a top-level numpy array: a header padded to 8 bytes, then its data as it is in
/// memory (see [`ndarray_header`]).
pub const TAG_NDARRAY: u8 = b'N';
/// Tag of a `horus.Image`: 7 zero bytes, then the Rust `Image` encoding (see
/// [`crate::image`]).
pub const TAG_IMAGE: u8 = b'I';
/// MessagePack extension type of a numpy array.
const EXT_NDARRAY: i8 = 1;
/// MessagePack extension type of a typed message.
const EXT_TYPED: i8 = 2;
/// Deepest nesting accepted either way (a cycle would otherwise recurse forever).
const MAX_DEPTH: usize = 128;

/// Encodes `obj` as a Python-object payload (tag included) into `out` (cleared first).
pub fn encode(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    out.clear();
    if let Ok(b) = obj.cast::<PyBytes>() {
        out.push(TAG_BYTES);
        out.extend_from_slice(b.as_bytes());
        return Ok(());
    }
    if let Some(image) = crate::image::encode(obj) {
        let (header, pixels) = image?;
        out.extend_from_slice(&crate::image::TAG_BLOCK);
        out.extend_from_slice(&header);
        out.extend_from_slice(crate::embed::buffer_bytes(&pixels));
        return Ok(());
    }
    out.push(TAG_MSGPACK);
    write_value(obj, out, 0)
}

fn unsupported(obj: &Bound<'_, PyAny>) -> PyErr {
    let ty = obj
        .get_type()
        .fully_qualified_name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string());
    PyTypeError::new_err(format!(
        "cannot send an object of type `{ty}`: a message is None, bool, int, float, str, bytes, a list, \
         tuple or dict of those, a numpy array or a horus message class (convert it, e.g. to a dict)"
    ))
}

fn write_value(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>, depth: usize) -> PyResult<()> {
    if depth > MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "the message nests deeper than {MAX_DEPTH} levels (is it self-referencing?)"
        )));
    }
    let wr = |e: rmp::encode::ValueWriteError| PyValueError::new_err(e.to_string());
    if obj.is_none() {
        rmp::encode::write_nil(out).map_err(|e| PyValueError::new_err(e.to_string()))?;
    } else if let Ok(b) = obj.cast::<PyBool>() {
        rmp::encode::write_bool(out, b.is_true()).map_err(|e| PyValueError::new_err(e.to_string()))?;
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        rmp::encode::write_f64(out, f.value()).map_err(wr)?;
    } else if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            rmp::encode::write_sint(out, i).map_err(wr)?;
        } else if let Ok(u) = obj.extract::<u64>() {
            rmp::encode::write_uint(out, u).map_err(wr)?;
        } else {
            return Err(PyOverflowError::new_err(
                "an int in the message does not fit in 64 bits (send it as a str)",
            ));
        }
    } else if let Ok(s) = obj.cast::<PyString>() {
        let s = s.to_str()?;
        rmp::encode::write_str(out, s).map_err(wr)?;
    } else if let Ok(d) = obj.cast::<PyDict>() {
        rmp::encode::write_map_len(out, d.len() as u32).map_err(wr)?;
        for (k, v) in d.iter() {
            write_value(&k, out, depth + 1)?;
            write_value(&v, out, depth + 1)?;
        }
    } else if let Ok(l) = obj.cast::<PyList>() {
        rmp::encode::write_array_len(out, l.len() as u32).map_err(wr)?;
        for v in l.iter() {
            write_value(&v, out, depth + 1)?;
        }
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        rmp::encode::write_array_len(out, t.len() as u32).map_err(wr)?;
        for v in t.iter() {
            write_value(&v, out, depth + 1)?;
        }
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        rmp::encode::write_bin(out, b.as_bytes()).map_err(wr)?;
    } else if let Ok(b) = obj.cast::<PyByteArray>() {
        rmp::encode::write_bin(out, &b.to_vec()).map_err(wr)?;
    } else if obj.is_instance_of::<PyMemoryView>() {
        let bytes = obj.call_method0("tobytes")?;
        rmp::encode::write_bin(out, bytes.cast::<PyBytes>()?.as_bytes()).map_err(wr)?;
    } else if write_typed(obj, out)? {
    } else if is_ndarray(obj) {
        write_ndarray(obj, out)?;
    } else {
        return Err(unsupported(obj));
    }
    Ok(())
}

/// Appends `obj` as ext 2 (the Rust type's hash, then its bytes) if it is a typed message.
/// The bytes go straight into `out`, and the ext header (at most 14 bytes) in before them.
fn write_typed(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<bool> {
    let start = out.len();
    let Some(typed) = msgs::encode(obj, out) else {
        return Ok(false);
    };
    let mut meta = [0u8; 6];
    let mut w = &mut meta[..];
    rmp::encode::write_ext_meta(&mut w, (8 + out.len() - start) as u32, EXT_TYPED)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let meta_len = 6 - w.len();
    out.splice(
        start..start,
        meta[..meta_len].iter().copied().chain(typed.hash.to_le_bytes()),
    );
    Ok(true)
}

/// True for a `numpy.ndarray` (exactly: not a subclass). numpy is not imported for this.
pub fn is_ndarray(obj: &Bound<'_, PyAny>) -> bool {
    // What messages mostly are, told apart without asking the type for its module and name
    // (two attribute lookups on every message otherwise).
    if obj.is_none()
        || obj.is_exact_instance_of::<PyDict>()
        || obj.is_exact_instance_of::<PyList>()
        || obj.is_exact_instance_of::<PyTuple>()
        || obj.is_exact_instance_of::<PyString>()
        || obj.is_exact_instance_of::<PyBytes>()
        || obj.is_exact_instance_of::<PyFloat>()
        || obj.is_exact_instance_of::<PyInt>()
        || obj.is_exact_instance_of::<PyBool>()
        || msgs::is_typed(obj)
    {
        return false;
    }
    let ty = obj.get_type();
    ty.module().is_ok_and(|m| m.to_str().is_ok_and(|m| m == "numpy"))
        && ty.name().is_ok_and(|n| n.to_str().is_ok_and(|n| n == "ndarray"))
}

/// ext 1: u8 dtype length, dtype (`arr.dtype.str`, e.g. `<f8`), u8 ndim, ndim × u64 LE dims,
/// then the C-order data copied once through the buffer protocol.
fn write_ndarray(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    let py = obj.py();
    let numpy = py.import("numpy")?;
    let arr = numpy.call_method1("ascontiguousarray", (obj,))?;
    let dtype: String = arr.getattr("dtype")?.getattr("str")?.extract()?;
    if arr.getattr("dtype")?.getattr("hasobject")?.extract::<bool>()? {
        return Err(PyTypeError::new_err(
            "cannot send a numpy array of Python objects (dtype=object): use a numeric dtype or a list",
        ));
    }
    // The original's shape: `ascontiguousarray` makes a 0-d array 1-d.
    let shape: Vec<u64> = obj.getattr("shape")?.extract()?;
    let view = bytes_view(&arr)?;
    let buffer = pyo3::buffer::PyBuffer::<u8>::get(&view)?;
    let mut meta = Vec::with_capacity(2 + dtype.len() + 8 * shape.len());
    meta.push(u8::try_from(dtype.len()).map_err(|_| PyValueError::new_err("dtype too long"))?);
    meta.extend_from_slice(dtype.as_bytes());
    meta.push(u8::try_from(shape.len()).map_err(|_| PyValueError::new_err("too many dimensions"))?);
    for d in &shape {
        meta.extend_from_slice(&d.to_le_bytes());
    }
    let len = meta.len() + buffer.item_count();
    rmp::encode::write_ext_meta(out, len as u32, EXT_NDARRAY)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    out.extend_from_slice(&meta);
    let start = out.len();
    out.resize(start + buffer.item_count(), 0);
    buffer.copy_to_slice(py, &mut out[start..])?;
    Ok(())
}

/// A top-level numpy array about to be sent with its data copied once, straight into the slot
/// (`b'N'`): `header` gets `N`, ndim (u8), the dtype string's length (u8), the dtype string
/// (`arr.dtype.str`), zeros up to a multiple of 8, then ndim × u64 LE dimensions; the data
/// follows it in the slot, C order. Returns the buffer holding the data (the array made
/// contiguous first if it was not). An array of Python objects is refused.
pub fn ndarray_header(obj: &Bound<'_, PyAny>, header: &mut Vec<u8>) -> PyResult<pyo3::buffer::PyBuffer<u8>> {
    let py = obj.py();
    let arr = py.import("numpy")?.call_method1("ascontiguousarray", (obj,))?;
    let dtype = arr.getattr("dtype")?;
    if dtype.getattr("hasobject")?.extract::<bool>()? {
        return Err(PyTypeError::new_err(
            "cannot send a numpy array of Python objects (dtype=object): use a numeric dtype or a list",
        ));
    }
    let name: String = dtype.getattr("str")?.extract()?;
    // The original's shape: `ascontiguousarray` makes a 0-d array 1-d.
    let shape: Vec<u64> = obj.getattr("shape")?.extract()?;
    ndarray_header_for(&name, &shape, header)?;
    let view = bytes_view(&arr)?;
    pyo3::buffer::PyBuffer::<u8>::get(&view)
}

/// The `b'N'` header of an array of dtype `name` (numpy's `dtype.str`) and `shape` (see
/// [`ndarray_header`]), into `header` (cleared first).
pub fn ndarray_header_for(name: &str, shape: &[u64], header: &mut Vec<u8>) -> PyResult<()> {
    header.clear();
    header.push(TAG_NDARRAY);
    header.push(u8::try_from(shape.len()).map_err(|_| PyValueError::new_err("too many dimensions"))?);
    header.push(u8::try_from(name.len()).map_err(|_| PyValueError::new_err("dtype too long"))?);
    header.extend_from_slice(name.as_bytes());
    header.resize(header.len().next_multiple_of(8), 0);
    for d in shape {
        header.extend_from_slice(&d.to_le_bytes());
    }
    Ok(())
}

/// Arrays of at least this many bytes of data are received as a read-only view of the topic's
/// slot ([`decode_held`]); smaller ones are copied into a writable array (as cheap as a view,
/// and what code that changes what it receives expects).
pub const VIEW_MIN: usize = 64 * 1024;

/// Decodes a message held in place. A top-level array of [`VIEW_MIN`] bytes or more becomes a
/// read-only numpy array over the slot, which stays pinned until the array (and every view
/// of it) is garbage-collected; anything else is decoded from the slot's bytes and let go.
pub fn decode_held(py: Python<'_>, held: horus_host::shm::Pinned) -> PyResult<Bound<'_, PyAny>> {
    let bytes = held.bytes();
    if bytes.first() == Some(&TAG_IMAGE) {
        return crate::image::from_held(py, held, crate::image::TAG_BLOCK.len());
    }
    if bytes.len() >= 8 && bytes[0] == TAG_NDARRAY {
        let header_len = ndarray_header_len(bytes);
        if header_len <= bytes.len() && bytes.len() - header_len >= VIEW_MIN {
            let (dtype, shape) = ndarray_meta(py, &bytes[..header_len], bytes.len() - header_len)?;
            let memory = Bound::new(py, crate::embed::SlotMemory::held(held, header_len))?;
            return array_over(&memory, &dtype, shape);
        }
    }
    decode(py, bytes)
}

/// A numpy array of `dtype` and `shape` over `memory`'s buffer (no copy; read-only unless the
/// buffer is writable). The array's base holds `memory`.
pub fn array_over<'py>(
    memory: &Bound<'py, crate::embed::SlotMemory>,
    dtype: &Bound<'py, PyAny>,
    shape: Vec<u64>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = memory.py();
    py.import("numpy")?
        .call_method1("frombuffer", (memory, dtype))?
        .call_method1("reshape", (PyTuple::new(py, shape)?,))
}

/// Reads a `b'N'` message straight out of a slot's `words` (its length `len`) into a new numpy
/// array: one copy. `None` if the message is not one (read it as a whole payload then). May
/// be called on a slot being overwritten (the caller checks afterwards): every size is checked
/// before use, so a torn header is an error, never a bad copy.
pub fn read_ndarray_from_slot<'py>(
    py: Python<'py>,
    len: usize,
    words: &[std::sync::atomic::AtomicU64],
) -> Option<PyResult<Bound<'py, PyAny>>> {
    let mut first = [0u8; 8];
    horus_host::shm::copy_words_out(words, 0, &mut first[..len.min(8)]);
    if len < 8 || first[0] != TAG_NDARRAY {
        return None;
    }
    Some((|| {
        let header_len = ndarray_header_len(&first);
        if header_len > len {
            return Err(malformed("numpy header"));
        }
        let mut header = vec![0u8; header_len];
        horus_host::shm::copy_words_out(words, 0, &mut header);
        let (dtype, shape) = ndarray_meta(py, &header, len - header_len)?;
        let arr = py
            .import("numpy")?
            .call_method1("empty", (PyTuple::new(py, &shape)?, dtype))?;
        let view = bytes_view(&arr)?;
        let mut buffer = pyo3::buffer::PyBuffer::<u8>::get(&view)?;
        horus_host::shm::copy_words_out(words, header_len, crate::embed::buffer_bytes_mut(&mut buffer));
        drop(buffer);
        Ok(arr)
    })())
}

/// A C-contiguous array's data as a 1-d `uint8` array over the same memory (no copy), whose
/// buffer is plain bytes: what a memoryview cast cannot give for an empty array.
fn bytes_view<'py>(arr: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = arr.py();
    arr.call_method1("reshape", (-1,))?
        .call_method1("view", (py.import("numpy")?.getattr("uint8")?,))
}

/// The length of a `b'N'` header whose first 8 bytes are `first`.
fn ndarray_header_len(first: &[u8]) -> usize {
    let (ndim, n) = (first[1] as usize, first[2] as usize);
    (3 + n).next_multiple_of(8) + 8 * ndim
}

/// A `b'N'` header's dtype and shape, checked against the `data_len` bytes that follow it:
/// a dtype numpy knows and that holds no Python objects, and exactly the data its shape needs.
fn ndarray_meta<'py>(
    py: Python<'py>,
    header: &[u8],
    data_len: usize,
) -> PyResult<(Bound<'py, PyAny>, Vec<u64>)> {
    let n = header[2] as usize;
    let dims_at = (3 + n).next_multiple_of(8);
    let name = std::str::from_utf8(&header[3..3 + n]).map_err(|_| malformed("dtype"))?;
    let shape: Vec<u64> = header[dims_at..]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    let dtype = py
        .import("numpy")?
        .call_method1("dtype", (name,))
        .map_err(|_| malformed("dtype"))?;
    if dtype.getattr("hasobject")?.extract::<bool>()? {
        return Err(malformed("an object dtype"));
    }
    let item: u64 = dtype.getattr("itemsize")?.extract()?;
    let count = shape.iter().try_fold(1u64, |a, d| a.checked_mul(*d));
    if count.and_then(|c| c.checked_mul(item)) != Some(data_len as u64) {
        return Err(malformed("the numpy data's size"));
    }
    Ok((dtype, shape))
}

/// A whole `b'N'` payload (one that arrived as bytes: over a network hub) as a writable array.
fn ndarray_from_payload<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    if payload.len() < 8 {
        return Err(malformed("numpy header"));
    }
    let header_len = ndarray_header_len(payload);
    if header_len > payload.len() {
        return Err(malformed("numpy header"));
    }
    let (dtype, shape) = ndarray_meta(py, &payload[..header_len], payload.len() - header_len)?;
    // A bytearray, so the array numpy builds over it (no copy) is writable.
    let buf = PyByteArray::new(py, &payload[header_len..]);
    let arr = py.import("numpy")?.call_method1("frombuffer", (buf, dtype))?;
    arr.call_method1("reshape", (PyTuple::new(py, shape)?,))
}

/// Decodes a Python-object payload.
pub fn decode<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    match payload.split_first() {
        Some((&TAG_BYTES, rest)) => Ok(PyBytes::new(py, rest).into_any()),
        Some((&TAG_NDARRAY, _)) => ndarray_from_payload(py, payload),
        Some((&TAG_IMAGE, _)) => crate::image::from_bytes(
            py,
            payload.get(crate::image::TAG_BLOCK.len()..).unwrap_or_default(),
        ),
        Some((&TAG_MSGPACK, rest)) => {
            let mut rd = Reader { buf: rest, pos: 0 };
            let value = rd.value(py, 0)?;
            if rd.pos != rest.len() {
                return Err(malformed("trailing bytes after the value"));
            }
            Ok(value)
        }
        _ => Err(malformed("unknown payload tag")),
    }
}

/// Decodes a Python-object payload as a received message is (`horus._horus._decode_payload`):
/// the hook of the tests that feed the decoder random bytes, since no public call lets a Python
/// program hand it a payload of its own.
#[pyfunction]
pub fn _decode_payload<'py>(py: Python<'py>, payload: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    decode(py, payload)
}

fn malformed(what: &str) -> PyErr {
    PyValueError::new_err(format!(
        "malformed message on a Python topic ({what}); was it published by an incompatible sender?"
    ))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> PyResult<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| malformed("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> PyResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> PyResult<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn len(&mut self, bytes: usize) -> PyResult<usize> {
        Ok(match bytes {
            1 => self.u8()? as usize,
            2 => u16::from_be_bytes(self.be()?) as usize,
            _ => u32::from_be_bytes(self.be()?) as usize,
        })
    }

    fn value<'py>(&mut self, py: Python<'py>, depth: usize) -> PyResult<Bound<'py, PyAny>> {
        if depth > MAX_DEPTH {
            return Err(malformed("nested too deep"));
        }
        let marker = Marker::from_u8(self.u8()?);
        Ok(match marker {
            Marker::Null => py.None().into_bound(py),
            Marker::True => PyBool::new(py, true).to_owned().into_any(),
            Marker::False => PyBool::new(py, false).to_owned().into_any(),
            Marker::FixPos(n) => n.into_pyobject(py)?.into_any(),
            Marker::FixNeg(n) => n.into_pyobject(py)?.into_any(),
            Marker::U8 => self.u8()?.into_pyobject(py)?.into_any(),
            Marker::U16 => u16::from_be_bytes(self.be()?).into_pyobject(py)?.into_any(),
            Marker::U32 => u32::from_be_bytes(self.be()?).into_pyobject(py)?.into_any(),
            Marker::U64 => u64::from_be_bytes(self.be()?).into_pyobject(py)?.into_any(),
            Marker::I8 => i8::from_be_bytes(self.be()?).into_pyobject(py)?.into_any(),
            Marker::I16 => i16::from_be_bytes(self.be()?).into_pyobject(py)?.into_any(),
            Marker::I32 => i32::from_be_bytes(self.be()?).into_pyobject(py)?.into_any(),
            Marker::I64 => i64::from_be_bytes(self.be()?).into_pyobject(py)?.into_any(),
            Marker::F32 => PyFloat::new(py, f32::from_be_bytes(self.be()?) as f64).into_any(),
            Marker::F64 => PyFloat::new(py, f64::from_be_bytes(self.be()?)).into_any(),
            Marker::FixStr(n) => self.str(py, n as usize)?,
            Marker::Str8 => {
                let n = self.len(1)?;
                self.str(py, n)?
            }
            Marker::Str16 => {
                let n = self.len(2)?;
                self.str(py, n)?
            }
            Marker::Str32 => {
                let n = self.len(4)?;
                self.str(py, n)?
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let n = self.len(match marker {
                    Marker::Bin8 => 1,
                    Marker::Bin16 => 2,
                    _ => 4,
                })?;
                PyBytes::new(py, self.take(n)?).into_any()
            }
            Marker::FixArray(n) => self.array(py, n as usize, depth)?,
            Marker::Array16 => {
                let n = self.len(2)?;
                self.array(py, n, depth)?
            }
            Marker::Array32 => {
                let n = self.len(4)?;
                self.array(py, n, depth)?
            }
            Marker::FixMap(n) => self.map(py, n as usize, depth)?,
            Marker::Map16 => {
                let n = self.len(2)?;
                self.map(py, n, depth)?
            }
            Marker::Map32 => {
                let n = self.len(4)?;
                self.map(py, n, depth)?
            }
            Marker::FixExt1 | Marker::FixExt2 | Marker::FixExt4 | Marker::FixExt8 | Marker::FixExt16 => {
                let n = match marker {
                    Marker::FixExt1 => 1,
                    Marker::FixExt2 => 2,
                    Marker::FixExt4 => 4,
                    Marker::FixExt8 => 8,
                    _ => 16,
                };
                self.ext(py, n)?
            }
            Marker::Ext8 => {
                let n = self.len(1)?;
                self.ext(py, n)?
            }
            Marker::Ext16 => {
                let n = self.len(2)?;
                self.ext(py, n)?
            }
            Marker::Ext32 => {
                let n = self.len(4)?;
                self.ext(py, n)?
            }
            Marker::Reserved => return Err(malformed("reserved marker")),
        })
    }

    fn str<'py>(&mut self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyAny>> {
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| malformed("a string is not UTF-8"))?;
        Ok(PyString::new(py, s).into_any())
    }

    fn array<'py>(&mut self, py: Python<'py>, n: usize, depth: usize) -> PyResult<Bound<'py, PyAny>> {
        if n > self.buf.len() - self.pos {
            return Err(malformed("array longer than the message"));
        }
        let list = PyList::empty(py);
        for _ in 0..n {
            list.append(self.value(py, depth + 1)?)?;
        }
        Ok(list.into_any())
    }

    fn map<'py>(&mut self, py: Python<'py>, n: usize, depth: usize) -> PyResult<Bound<'py, PyAny>> {
        if n > self.buf.len() - self.pos {
            return Err(malformed("map longer than the message"));
        }
        let dict = PyDict::new(py);
        for _ in 0..n {
            let k = self.value(py, depth + 1)?;
            let v = self.value(py, depth + 1)?;
            dict.set_item(k, v)?;
        }
        Ok(dict.into_any())
    }

    fn ext<'py>(&mut self, py: Python<'py>, n: usize) -> PyResult<Bound<'py, PyAny>> {
        let kind = self.u8()? as i8;
        let data = self.take(n)?;
        match kind {
            EXT_TYPED => {
                let (hash, body) = data
                    .split_at_checked(8)
                    .ok_or_else(|| malformed("short typed message"))?;
                let hash = u64::from_le_bytes(hash.try_into().expect("8 bytes"));
                let typed = msgs::by_hash(hash).ok_or_else(|| malformed("unknown typed message"))?;
                (typed.decode)(py, body)
            }
            EXT_NDARRAY => read_ndarray(py, data),
            _ => Err(malformed("unknown extension type")),
        }
    }
}

fn read_ndarray<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let mut rd = Reader { buf: data, pos: 0 };
    let n = rd.u8()? as usize;
    let dtype = std::str::from_utf8(rd.take(n)?).map_err(|_| malformed("dtype"))?;
    let ndim = rd.u8()? as usize;
    let mut shape = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        shape.push(u64::from_le_bytes(rd.take(8)?.try_into().expect("8 bytes")));
    }
    let body = &data[rd.pos..];
    // A bytearray, so the array numpy builds over it (no copy) is writable.
    let buf = PyByteArray::new(py, body);
    let numpy = py.import("numpy")?;
    let arr = numpy.call_method1("frombuffer", (buf, dtype))?;
    arr.call_method1("reshape", (PyTuple::new(py, shape)?,))
}
