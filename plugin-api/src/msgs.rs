//! Standard message types that robotics nodes share, so that plugins from different authors
//! connect without agreeing on a crate of their own. All but [`Image`] are `#[repr(C)]` plain
//! data: they cross topics as their bytes; an `Image` is a plain-data [`ImageHeader`] followed
//! by its pixels, read and written in place with [`Image::view`] and [`Image::write_header`]. Units are SI (m, m/s, rad, rad/s, m/s²); `stamp_ns` is the
//! sender's [`Context::now`](crate::Context::now) in nanoseconds.

crate::pod_message! {
    /// A 3-vector.
    pub struct Vector3 {
        /// x component.
        pub x: f64,
        /// y component.
        pub y: f64,
        /// z component.
        pub z: f64,
    }

    /// An inertial measurement: angular velocity and linear acceleration in the sensor frame.
    pub struct Imu {
        /// Time of measurement.
        pub stamp_ns: u64,
        /// Angular velocity (rad/s).
        pub angular_velocity: Vector3,
        /// Linear acceleration including gravity (m/s²).
        pub linear_acceleration: Vector3,
    }

    /// An orientation as roll, pitch and yaw (rad).
    pub struct Attitude {
        /// Time of the measurement it was estimated from.
        pub stamp_ns: u64,
        /// Rotation about x (rad).
        pub roll: f64,
        /// Rotation about y (rad).
        pub pitch: f64,
        /// Rotation about z (rad).
        pub yaw: f64,
    }

    /// A velocity command: linear (m/s) and angular (rad/s).
    pub struct Twist {
        /// Time the command was issued.
        pub stamp_ns: u64,
        /// Linear velocity.
        pub linear: Vector3,
        /// Angular velocity.
        pub angular: Vector3,
    }
}

crate::pod_message! {
    /// The first [`ImageHeader::SIZE`] bytes of an [`Image`] on a topic; its pixels follow.
    pub struct ImageHeader {
        /// Time of capture.
        pub stamp_ns: u64,
        /// Pixels per row.
        pub width: u32,
        /// Rows.
        pub height: u32,
        /// Bytes per row (at least `width` × bytes per pixel; more with row padding).
        pub step: u32,
        /// Zero.
        pub reserved: u32,
        /// Bytes of pixel data that follow: `height × step`.
        pub data_len: u64,
        /// The pixel encoding, ROS-style (`rgb8`, `bgr8`, `rgba8`, `bgra8`, `mono8`,
        /// `mono16`, …), UTF-8, zero-padded.
        pub encoding: [u8; 32],
    }
}

impl ImageHeader {
    /// Bytes of the header.
    pub const SIZE: usize = size_of::<ImageHeader>();

    /// The header of `height` rows of `step` bytes of `width` pixels in `encoding` (at most 32
    /// bytes).
    pub fn new(
        stamp_ns: u64,
        width: u32,
        height: u32,
        step: u32,
        encoding: &str,
    ) -> Result<ImageHeader, crate::CodecError> {
        if encoding.len() > 32 {
            return Err(image_error(format!(
                "encoding `{encoding}` is longer than 32 bytes"
            )));
        }
        let mut header = ImageHeader {
            stamp_ns,
            width,
            height,
            step,
            reserved: 0,
            data_len: u64::from(height) * u64::from(step),
            encoding: [0; 32],
        };
        header.encoding[..encoding.len()].copy_from_slice(encoding.as_bytes());
        Ok(header)
    }

    /// The encoding as text (up to its first zero byte; empty if it is not UTF-8).
    pub fn encoding(&self) -> &str {
        let end = self.encoding.iter().position(|&b| b == 0).unwrap_or(32);
        std::str::from_utf8(&self.encoding[..end]).unwrap_or("")
    }
}

/// A camera image: `height` rows of `step` bytes, pixels in `encoding`. On a topic it is an
/// [`ImageHeader`] followed by the pixels, so Rust and Python nodes (`horus.Image`) exchange
/// frames. [`Context::send`](crate::Context::send) / [`recv`](crate::Context::recv) copy the
/// pixels; to skip both copies, write a frame in a loan and read it in place:
///
/// ```no_run
/// # use horus_plugin_api::{Context, NodeResult, msgs::Image};
/// # fn tick(ctx: &mut Context<'_>) -> NodeResult {
/// let (width, height) = (640u32, 480u32);
/// let mut loan = ctx.loan_bytes("image", Image::encoded_len(height, width * 3))?;
/// let pixels = Image::write_header(&mut loan, 0, width, height, width * 3, "rgb8")?;
/// pixels.fill(128); // the camera driver writes here
/// loan.send()?;
///
/// if let Some(bytes) = ctx.recv_bytes_ref("image")? {
///     let image = Image::view(&bytes)?; // borrowed: no copy
///     let _first_row = &image.data[..image.header.step as usize];
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Image {
    /// Time of capture.
    pub stamp_ns: u64,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Bytes per row.
    pub step: u32,
    /// The pixel encoding (`rgb8`, `mono8`, …; at most 32 bytes).
    pub encoding: String,
    /// `height × step` bytes of pixels.
    pub data: Vec<u8>,
}

/// An [`Image`] read in place ([`Image::view`]): its header, and its pixels borrowed from the
/// message.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    /// The header.
    pub header: ImageHeader,
    /// `height × step` bytes of pixels.
    pub data: &'a [u8],
}

fn image_error(reason: impl Into<String>) -> crate::CodecError {
    crate::CodecError {
        type_name: "Image",
        reason: reason.into(),
    }
}

impl Image {
    /// Bytes of an encoded image of `height` rows of `step` bytes.
    pub const fn encoded_len(height: u32, step: u32) -> usize {
        ImageHeader::SIZE + height as usize * step as usize
    }

    /// Reads an encoded image in place: its header (checked: the data length matches the
    /// rows, the bytes that follow hold them exactly) and its pixels, borrowed.
    pub fn view(bytes: &[u8]) -> Result<ImageView<'_>, crate::CodecError> {
        let Some((head, data)) = bytes.split_at_checked(ImageHeader::SIZE) else {
            return Err(image_error(format!(
                "{} bytes, shorter than its header",
                bytes.len()
            )));
        };
        let header: ImageHeader = crate::message::pod_from_bytes(head, "Image")?;
        let rows = u64::from(header.height) * u64::from(header.step);
        if header.data_len != rows || data.len() as u64 != rows {
            return Err(image_error(format!(
                "{} rows of {} bytes, but a data length of {} and {} bytes of data",
                header.height,
                header.step,
                header.data_len,
                data.len()
            )));
        }
        Ok(ImageView { header, data })
    }

    /// Writes the header of a `width` × `height` image of `height` rows of `step` bytes in
    /// `encoding` at the start of `buf` (a loan of [`encoded_len`](Image::encoded_len) bytes),
    /// and returns the rest: where the pixels go.
    pub fn write_header<'b>(
        buf: &'b mut [u8],
        stamp_ns: u64,
        width: u32,
        height: u32,
        step: u32,
        encoding: &str,
    ) -> Result<&'b mut [u8], crate::CodecError> {
        let header = ImageHeader::new(stamp_ns, width, height, step, encoding)?;
        let len = Image::encoded_len(height, step);
        if buf.len() != len {
            return Err(image_error(format!(
                "{} bytes for {height} rows of {step} bytes: expected {len}",
                buf.len()
            )));
        }
        let (head, data) = buf.split_at_mut(ImageHeader::SIZE);
        head.copy_from_slice(crate::message::pod_bytes(&header));
        Ok(data)
    }
}

impl crate::Message for Image {
    const TYPE_NAME: &'static str = "Image";
    const TYPE_HASH: u64 = crate::abi::fnv1a(crate::abi::FNV_OFFSET, b"horus:Image/v1");
    const ENCODING: u32 = crate::abi::ENCODING_BYTES;

    fn encode<'a>(&'a self, scratch: &'a mut Vec<u8>) -> Result<&'a [u8], crate::CodecError> {
        if self.data.len() as u64 != u64::from(self.height) * u64::from(self.step) {
            return Err(image_error(format!(
                "{} bytes of data for {} rows of {} bytes",
                self.data.len(),
                self.height,
                self.step
            )));
        }
        scratch.clear();
        scratch.resize(Image::encoded_len(self.height, self.step), 0);
        let pixels = Image::write_header(
            scratch,
            self.stamp_ns,
            self.width,
            self.height,
            self.step,
            &self.encoding,
        )?;
        pixels.copy_from_slice(&self.data);
        Ok(scratch)
    }

    fn decode(bytes: &[u8]) -> Result<Self, crate::CodecError> {
        let view = Image::view(bytes)?;
        Ok(Image {
            stamp_ns: view.header.stamp_ns,
            width: view.header.width,
            height: view.header.height,
            step: view.header.step,
            encoding: view.header.encoding().to_owned(),
            data: view.data.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    #[test]
    fn an_image_round_trips_and_its_view_borrows_the_pixels() {
        let image = Image {
            stamp_ns: 7,
            width: 4,
            height: 2,
            step: 12,
            encoding: "rgb8".into(),
            data: (0..24).collect(),
        };
        let mut scratch = Vec::new();
        let bytes = image.encode(&mut scratch).unwrap().to_vec();
        assert_eq!(bytes.len(), ImageHeader::SIZE + 24);
        assert_eq!(Image::decode(&bytes).unwrap(), image);
        let view = Image::view(&bytes).unwrap();
        assert_eq!((view.header.encoding(), view.data), ("rgb8", &bytes[64..]));
        let short = Image::view(&bytes[..70]).unwrap_err();
        assert!(short.reason.contains("data length of 24"), "{short}");
        assert!(Image::view(&bytes[..10]).is_err());
        let bad = Image {
            data: vec![0; 5],
            ..image
        };
        assert!(bad.encode(&mut scratch).is_err());
        let mut buf = vec![0; Image::encoded_len(2, 12)];
        assert!(Image::write_header(&mut buf, 0, 4, 2, 12, &"x".repeat(33)).is_err());
        assert_eq!(
            Image::write_header(&mut buf, 0, 4, 2, 12, "mono8").unwrap().len(),
            24
        );
    }

    #[test]
    fn sizes_have_no_padding() {
        assert_eq!(size_of::<Imu>(), 8 + 48);
        assert_eq!(size_of::<Attitude>(), 32);
        assert_ne!(Imu::TYPE_HASH, Twist::TYPE_HASH);
    }
}
