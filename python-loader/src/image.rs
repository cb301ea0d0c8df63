//! `horus.Image`, the standard camera frame (`horus_plugin_api::msgs::Image`): a header (size,
//! row stride, pixel encoding, time) and its pixels as a numpy array. On a topic of the Rust
//! type (a Rust node's `Image` port) it travels as the Rust encoding, so Rust and Python nodes
//! exchange frames; on a Python-object topic as tag `I` (7 zero bytes, then the same
//! encoding, so the pixels stay 8-aligned). Received from shared memory, `data` is a read-only
//! view of the slot (see [`crate::codec::decode_held`]); sending copies the pixels once.

use horus_plugin_api::message::pod_bytes;
use horus_plugin_api::msgs::{Image as RustImage, ImageHeader};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyTuple};

/// The tag block of an image on a Python-object topic.
pub const TAG_BLOCK: [u8; 8] = [crate::codec::TAG_IMAGE, 0, 0, 0, 0, 0, 0, 0];

/// A camera image (`horus_plugin_api::msgs::Image`).
#[pyclass(module = "horus", name = "Image", get_all, set_all)]
pub struct Image {
    stamp_ns: u64,
    width: u32,
    height: u32,
    encoding: String,
    step: u32,
    data: Py<PyAny>,
}

/// Channels and numpy dtype of the encodings numpy can shape (`None`: rows of bytes).
fn pixel_format(encoding: &str) -> Option<(u32, &'static str)> {
    Some(match encoding {
        "mono8" | "8UC1" => (1, "u1"),
        "mono16" | "16UC1" => (1, "<u2"),
        "rgb8" | "bgr8" | "8UC3" => (3, "u1"),
        "rgba8" | "bgra8" | "8UC4" => (4, "u1"),
        "rgb16" | "bgr16" | "16UC3" => (3, "<u2"),
        "32FC1" => (1, "<f4"),
        _ => return None,
    })
}

/// The numpy dtype and shape of `height` rows of `step` bytes of `width` pixels in `encoding`:
/// (height, width[, channels]) of the pixel type when the rows are unpadded and the encoding
/// known, else (height, step) bytes.
fn pixel_shape(encoding: &str, width: u32, height: u32, step: u32) -> (&'static str, Vec<u64>) {
    if let Some((channels, dtype)) = pixel_format(encoding) {
        let item = if dtype == "u1" {
            1
        } else if dtype == "<u2" {
            2
        } else {
            4
        };
        if u64::from(step) == u64::from(width) * u64::from(channels) * item {
            let mut shape = vec![u64::from(height), u64::from(width)];
            if channels > 1 {
                shape.push(u64::from(channels));
            }
            return (dtype, shape);
        }
    }
    ("u1", vec![u64::from(height), u64::from(step)])
}

#[pymethods]
impl Image {
    /// An image of `width` × `height` pixels in `encoding`; `data` (any array or bytes of
    /// `height × step` bytes) defaults to zeros, `step` to the unpadded row of a known encoding.
    #[new]
    #[pyo3(signature = (width = 0, height = 0, encoding = "rgb8", data = None, step = None, stamp_ns = 0))]
    fn new(
        py: Python<'_>,
        width: u32,
        height: u32,
        encoding: &str,
        data: Option<Py<PyAny>>,
        step: Option<u32>,
        stamp_ns: u64,
    ) -> PyResult<Image> {
        if encoding.len() > 32 {
            return Err(PyValueError::new_err(format!(
                "encoding `{encoding}` is longer than 32 bytes"
            )));
        }
        let step = match (step, pixel_format(encoding)) {
            (Some(step), _) => step,
            (None, Some((channels, dtype))) => {
                let item = if dtype == "u1" {
                    1
                } else if dtype == "<u2" {
                    2
                } else {
                    4
                };
                width * channels * item
            }
            (None, None) => {
                return Err(PyValueError::new_err(format!(
                "encoding `{encoding}` is not one horus knows the pixel size of: give step= (bytes per row)"
            )))
            }
        };
        let data = match data {
            Some(d) => d,
            None => {
                let (dtype, shape) = pixel_shape(encoding, width, height, step);
                py.import("numpy")?
                    .call_method1("zeros", (PyTuple::new(py, shape)?, dtype))?
                    .unbind()
            }
        };
        Ok(Image {
            stamp_ns,
            width,
            height,
            encoding: encoding.to_owned(),
            step,
            data,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "Image({}x{} {}, step={}, stamp_ns={})",
            self.width, self.height, self.encoding, self.step, self.stamp_ns
        )
    }
}

/// `obj`'s header and pixel buffer if it is a `horus.Image` (`None` if it is not one): what a
/// send copies into the slot, after the tag block on a Python-object topic.
pub fn encode(
    obj: &Bound<'_, PyAny>,
) -> Option<PyResult<([u8; ImageHeader::SIZE], pyo3::buffer::PyBuffer<u8>)>> {
    let image = obj.cast::<Image>().ok()?;
    Some((|| {
        let py = obj.py();
        let image = image.borrow();
        let value = ImageHeader::new(
            image.stamp_ns,
            image.width,
            image.height,
            image.step,
            &image.encoding,
        )
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let data_len = value.data_len as usize;
        let mut header = [0u8; ImageHeader::SIZE];
        header.copy_from_slice(pod_bytes(&value));
        let data = image.data.bind(py);
        let bytes = match data.cast::<pyo3::types::PyBytes>() {
            Ok(b) => PyByteArray::new(py, b.as_bytes()).into_any(),
            Err(_) => py
                .import("numpy")?
                .call_method1("ascontiguousarray", (data,))?
                .call_method1("reshape", (-1,))?
                .call_method1("view", ("u1",))?,
        };
        let buffer = pyo3::buffer::PyBuffer::<u8>::get(&bytes)?;
        if buffer.len_bytes() != data_len {
            return Err(PyValueError::new_err(format!(
                "the image's data has {} bytes, but {} rows of {} bytes need {data_len}",
                buffer.len_bytes(),
                image.height,
                image.step
            )));
        }
        Ok((header, buffer))
    })())
}

/// The header of an encoded image (after any tag block), checked against the bytes that
/// follow it.
fn header_of(bytes: &[u8]) -> PyResult<ImageHeader> {
    RustImage::view(bytes)
        .map(|v| v.header)
        .map_err(|e| PyValueError::new_err(format!("malformed image on a topic: {e}")))
}

fn build<'py>(py: Python<'py>, h: &ImageHeader, data: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    Ok(Bound::new(
        py,
        Image {
            stamp_ns: h.stamp_ns,
            width: h.width,
            height: h.height,
            encoding: h.encoding().to_owned(),
            step: h.step,
            data: data.unbind(),
        },
    )?
    .into_any())
}

/// An image held in place, `offset` bytes into the message (8 after a tag block, else 0):
/// `data` is a read-only view of the slot, which stays pinned while it lives.
pub fn from_held(py: Python<'_>, held: horus_host::shm::Pinned, offset: usize) -> PyResult<Bound<'_, PyAny>> {
    let h = header_of(held.bytes().get(offset..).unwrap_or_default())?;
    let (dtype, shape) = pixel_shape(h.encoding(), h.width, h.height, h.step);
    let memory = Bound::new(
        py,
        crate::embed::SlotMemory::held(held, offset + ImageHeader::SIZE),
    )?;
    let dtype = py.import("numpy")?.call_method1("dtype", (dtype,))?;
    let data = crate::codec::array_over(&memory, &dtype, shape)?;
    build(py, &h, data)
}

/// An image from a copy of its encoding (after any tag block): `data` is a writable array.
pub fn from_bytes<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let h = header_of(bytes)?;
    let (dtype, shape) = pixel_shape(h.encoding(), h.width, h.height, h.step);
    let buf = PyByteArray::new(py, &bytes[ImageHeader::SIZE..]);
    let data = py
        .import("numpy")?
        .call_method1("frombuffer", (buf, dtype))?
        .call_method1("reshape", (PyTuple::new(py, shape)?,))?;
    build(py, &h, data)
}

/// A type error for something other than an image sent on an image topic.
pub fn not_an_image(topic: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "topic `{topic}` carries Image messages: send a horus.Image (got `{}`)",
        obj.get_type()
            .name()
            .map_or_else(|_| "?".into(), |n| n.to_string())
    ))
}
