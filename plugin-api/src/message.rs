//! Typed messages and ports.
//!
//! Owns the [`Message`] trait (a type name, a type hash and an encoding), the [`Pod`] marker for
//! `#[repr(C)]` plain-data messages, the [`pod_message!`](crate::pod_message) and
//! [`serde_message!`](crate::serde_message) macros that implement them safely, and [`Port`], the
//! static declaration of a node's inputs and outputs. It does not own transport: bytes go to the
//! host through [`crate::Context`].

use crate::abi::{self, PortDesc, RawSlice};
use std::fmt;

/// An error while encoding or decoding a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// The message type involved.
    pub type_name: &'static str,
    /// What went wrong.
    pub reason: String,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot encode/decode `{}`: {}", self.type_name, self.reason)
    }
}

impl std::error::Error for CodecError {}

/// A value that can travel on a topic.
///
/// Implement it with [`pod_message!`](crate::pod_message) for `#[repr(C)]` plain data (sent as
/// its bytes, zero-copy capable) or [`serde_message!`](crate::serde_message) for serde types
/// (postcard codec). `Vec<u8>` is the raw-bytes message.
pub trait Message: Sized {
    /// Name shown in error messages (`horus check`).
    const TYPE_NAME: &'static str;
    /// Hash of the type's name and shape; the host connects an output to an input only when
    /// their hashes are equal.
    const TYPE_HASH: u64;
    /// One of the `abi::ENCODING_*` values.
    const ENCODING: u32;
    /// The largest encoded size in bytes; 0 when it has no fixed bound (serde types, bytes).
    const MAX_SIZE: usize = 0;

    /// The bytes to send. Plain data returns its own bytes; other types encode into `scratch`.
    fn encode<'a>(&'a self, scratch: &'a mut Vec<u8>) -> Result<&'a [u8], CodecError>;

    /// Rebuilds a value from received bytes. Never trusts them: a wrong length or malformed
    /// encoding is an error, not undefined behaviour.
    fn decode(bytes: &[u8]) -> Result<Self, CodecError>;
}

/// Plain data: `Copy`, no padding, no pointers, and every bit pattern is a valid value.
///
/// # Safety
/// Implementors must be `#[repr(C)]` (or primitive), contain no padding bytes, no pointers or
/// references, and accept every bit pattern. Use [`pod_message!`](crate::pod_message), which
/// checks all of this at compile time, instead of implementing it by hand.
pub unsafe trait Pod: Copy + 'static {}

macro_rules! impl_pod {
    ($($t:ty),*) => {
        $(
            // SAFETY: primitive numeric types have no padding and every bit pattern is valid.
            unsafe impl Pod for $t {}
        )*
    };
}
impl_pod!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64, usize, isize);

// SAFETY: an array of `Pod` has no padding between elements (size is a multiple of align) and
// every bit pattern of each element is valid.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

/// The bytes of a plain-data value.
pub fn pod_bytes<T: Pod>(value: &T) -> &[u8] {
    // SAFETY: `T: Pod` has no padding, so all `size_of::<T>()` bytes behind the reference are
    // initialised; the slice borrows `value` and so cannot outlive it.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

/// A plain-data value with every byte zero.
pub fn pod_zeroed<T: Pod>() -> T {
    // SAFETY: `T: Pod` accepts every bit pattern, including all zeroes.
    unsafe { std::mem::zeroed() }
}

/// Reads a plain-data value from bytes of exactly its size (any alignment).
pub fn pod_from_bytes<T: Pod>(bytes: &[u8], type_name: &'static str) -> Result<T, CodecError> {
    if bytes.len() != size_of::<T>() {
        return Err(CodecError {
            type_name,
            reason: format!("expected {} bytes, got {}", size_of::<T>(), bytes.len()),
        });
    }
    // SAFETY: the length was checked above, `read_unaligned` has no alignment requirement, and
    // `T: Pod` accepts every bit pattern.
    let value = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) };
    Ok(value)
}

macro_rules! impl_primitive_message {
    ($($t:ty),*) => {
        $(
            /// A bare number is a plain-data message.
            impl Message for $t {
                const TYPE_NAME: &'static str = stringify!($t);
                const TYPE_HASH: u64 = abi::fnv1a(abi::FNV_OFFSET, concat!("pod:", stringify!($t)).as_bytes());
                const ENCODING: u32 = abi::ENCODING_POD;
                const MAX_SIZE: usize = size_of::<$t>();

                fn encode<'a>(&'a self, _scratch: &'a mut Vec<u8>) -> Result<&'a [u8], CodecError> {
                    Ok(pod_bytes(self))
                }

                fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
                    pod_from_bytes(bytes, stringify!($t))
                }
            }
        )*
    };
}
impl_primitive_message!(u8, u16, u32, u64, i8, i16, i32, i64, f32, f64);

/// Raw bytes: no structure known to HORUS.
impl Message for Vec<u8> {
    const TYPE_NAME: &'static str = "bytes";
    const TYPE_HASH: u64 = abi::fnv1a(abi::FNV_OFFSET, b"horus:bytes");
    const ENCODING: u32 = abi::ENCODING_BYTES;

    fn encode<'a>(&'a self, _scratch: &'a mut Vec<u8>) -> Result<&'a [u8], CodecError> {
        Ok(self)
    }

    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        Ok(bytes.to_vec())
    }
}

/// Declares `#[repr(C)]` plain-data message structs and implements [`Pod`] and [`Message`] for
/// them, checking at compile time that every field is plain data and that there is no padding.
///
/// ```
/// horus_plugin_api::pod_message! {
///     /// A wheel speed reading.
///     pub struct WheelSpeed {
///         pub stamp_ns: u64,
///         pub left: f32,
///         pub right: f32,
///     }
/// }
/// ```
#[macro_export]
macro_rules! pod_message {
    ($(
        $(#[$m:meta])*
        $vis:vis struct $name:ident { $($(#[$fm:meta])* $fvis:vis $field:ident : $ty:ty),* $(,)? }
    )*) => {$(
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq)]
        $vis struct $name { $($(#[$fm])* $fvis $field: $ty),* }

        /// All zeroes (valid for plain data, and works for arrays of any length).
        impl ::core::default::Default for $name {
            fn default() -> Self {
                $crate::message::pod_zeroed()
            }
        }

        const _: () = {
            #[allow(
                dead_code,
                reason = "never called: it exists so that the compiler checks each field's `Pod` bound"
            )]
            fn assert_fields_are_pod() { $( $crate::__private::assert_pod::<$ty>(); )* }
            assert!(
                ::core::mem::size_of::<$name>() == 0 $(+ ::core::mem::size_of::<$ty>())*,
                concat!("pod_message: `", stringify!($name),
                        "` has padding; reorder its fields (largest first) or add explicit padding fields")
            );
        };

        #[allow(
            unsafe_code,
            reason = "expands in the caller's crate, which may deny `unsafe_code` or not; the impl is sound (below)"
        )]
        // SAFETY: every field is `Pod` (checked by `assert_fields_are_pod`), the struct is
        // `#[repr(C)]` and has no padding (size equals the sum of the field sizes, asserted above).
        unsafe impl $crate::Pod for $name {}

        impl $crate::Message for $name {
            const TYPE_NAME: &'static str = stringify!($name);
            const TYPE_HASH: u64 = $crate::abi::fnv1a(
                $crate::abi::fnv1a(
                    $crate::abi::FNV_OFFSET,
                    concat!("pod:", stringify!($name), "{", $(stringify!($field), ":", stringify!($ty), ";",)* "}").as_bytes(),
                ),
                &(::core::mem::size_of::<$name>() as u64).to_le_bytes(),
            );
            const ENCODING: u32 = $crate::abi::ENCODING_POD;
            const MAX_SIZE: usize = ::core::mem::size_of::<$name>();

            fn encode<'a>(&'a self, _scratch: &'a mut ::std::vec::Vec<u8>) -> ::core::result::Result<&'a [u8], $crate::CodecError> {
                Ok($crate::message::pod_bytes(self))
            }

            fn decode(bytes: &[u8]) -> ::core::result::Result<Self, $crate::CodecError> {
                $crate::message::pod_from_bytes(bytes, stringify!($name))
            }
        }
    )*};
}

/// Implements [`Message`] for serde types, encoded with postcard (compact, varint-based,
/// documented at <https://postcard.jamesmunns.com/wire-format>). Needs the `serde` feature.
///
/// The type hash covers the type name only: keep a serde message's name when you keep its shape,
/// and rename it when you change its fields incompatibly.
#[cfg(feature = "serde")]
#[macro_export]
macro_rules! serde_message {
    ($($name:ident),+ $(,)?) => {$(
        impl $crate::Message for $name {
            const TYPE_NAME: &'static str = stringify!($name);
            const TYPE_HASH: u64 = $crate::abi::fnv1a(
                $crate::abi::FNV_OFFSET,
                concat!("postcard:", stringify!($name)).as_bytes(),
            );
            const ENCODING: u32 = $crate::abi::ENCODING_POSTCARD;

            fn encode<'a>(&'a self, scratch: &'a mut ::std::vec::Vec<u8>) -> ::core::result::Result<&'a [u8], $crate::CodecError> {
                $crate::__private::postcard_encode(self, scratch, stringify!($name))
            }

            fn decode(bytes: &[u8]) -> ::core::result::Result<Self, $crate::CodecError> {
                $crate::__private::postcard_decode(bytes, stringify!($name))
            }
        }
    )+};
}

/// A port declaration: name, direction and message type. Build the list a node type offers in
/// [`Node::PORTS`](crate::Node::PORTS) with [`Port::output`] and [`Port::input`].
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Port(pub(crate) PortDesc);

// SAFETY: a `Port` only points at `'static` string data (it is built by `const fn`s from
// `&'static str`) and is never mutated, so sharing it between threads is sound.
unsafe impl Sync for Port {}
// SAFETY: as for `Sync`: the pointers are to immutable `'static` data.
unsafe impl Send for Port {}

impl Port {
    /// An output port that publishes `M`.
    pub const fn output<M: Message>(name: &'static str) -> Port {
        Port::new::<M>(name, abi::PORT_OUTPUT)
    }

    /// An input port that receives `M`.
    pub const fn input<M: Message>(name: &'static str) -> Port {
        Port::new::<M>(name, abi::PORT_INPUT)
    }

    const fn new<M: Message>(name: &'static str, direction: u32) -> Port {
        Port(PortDesc {
            name: RawSlice::from_str(name),
            type_name: RawSlice::from_str(M::TYPE_NAME),
            type_hash: M::TYPE_HASH,
            direction,
            encoding: M::ENCODING,
            max_size: M::MAX_SIZE as u64,
        })
    }

    /// The port's name.
    pub fn name(&self) -> &'static str {
        static_str(self.0.name)
    }

    /// The port's message type name.
    pub fn type_name(&self) -> &'static str {
        static_str(self.0.type_name)
    }

    /// The port's message type hash.
    pub fn type_hash(&self) -> u64 {
        self.0.type_hash
    }

    /// The largest message in bytes, 0 when unbounded.
    pub fn max_size(&self) -> u64 {
        self.0.max_size
    }

    /// True for an output port.
    pub fn is_output(&self) -> bool {
        self.0.direction == abi::PORT_OUTPUT
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("name", &self.name())
            .field("type", &self.type_name())
            .field("output", &self.is_output())
            .finish()
    }
}

fn static_str(s: RawSlice) -> &'static str {
    // SAFETY: `Port` can only be constructed by `Port::new` from `&'static str` values, so the
    // slice points at `len` bytes of valid UTF-8 that live for `'static`.
    unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(s.ptr, s.len)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::pod_message! {
        struct Sample { stamp: u64, values: [f32; 4] }
        struct Other { stamp: u64, values: [f32; 4] }
        struct Big { data: [u8; 256] }
    }

    #[test]
    fn long_arrays_and_default() {
        assert_eq!(Big::default().data, [0u8; 256]);
        assert_eq!(Sample::default().stamp, 0);
    }

    #[test]
    fn pod_roundtrip() {
        let s = Sample {
            stamp: 7,
            values: [1.0, 2.0, 3.0, 4.5],
        };
        let mut scratch = Vec::new();
        let bytes = s.encode(&mut scratch).unwrap().to_vec();
        assert_eq!(bytes.len(), 24);
        assert_eq!(Sample::decode(&bytes).unwrap(), s);
        // Unaligned input still decodes.
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(Sample::decode(&shifted[1..]).unwrap(), s);
    }

    #[test]
    fn pod_rejects_wrong_length() {
        let err = Sample::decode(&[0u8; 23]).unwrap_err();
        assert!(err.to_string().contains("expected 24 bytes, got 23"), "{err}");
    }

    #[test]
    fn type_hash_depends_on_name() {
        assert_ne!(Sample::TYPE_HASH, Other::TYPE_HASH);
        assert_ne!(Sample::TYPE_HASH, <Vec<u8> as Message>::TYPE_HASH);
    }

    #[test]
    fn port_accessors() {
        const P: Port = Port::output::<Sample>("samples");
        assert_eq!(P.name(), "samples");
        assert_eq!(P.type_name(), "Sample");
        assert!(P.is_output());
        assert!(!Port::input::<Sample>("x").is_output());
    }
}
