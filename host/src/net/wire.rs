//! The wire format of a network hub's messages: a short header, then the message's bytes
//! exactly as on a shared-memory topic.
//!
//! The header is the type hash (8 bytes, little-endian), the length of the type's name (1 byte)
//! and the name (UTF-8), so a receiver checks the type before it uses the bytes. [`parse`] reads
//! untrusted input (anything a Zenoh peer publishes on a hub's keys): a malformed header is an
//! error, never a panic. In the payload rather than in a Zenoh attachment: an attachment is a
//! second buffer per sample, and cost 30% of the throughput (docs/performance.md).
//!
//! Pure: no Zenoh, compiled in every build. Does not own checking the type against a port's
//! (the receiver's callback does) or counting rejected messages (the hub does).

/// Bytes before the name: the type hash and the name's length.
pub const FIXED_HEADER: usize = 9;
/// The longest name a header carries.
pub const MAX_NAME: usize = u8::MAX as usize;
/// The longest header: the fixed part and the longest name.
pub const MAX_HEADER: usize = FIXED_HEADER + MAX_NAME;

/// The largest payload that can carry a message of at most `max_message` bytes: the message
/// and the longest header. A receiver refuses anything longer before it copies a byte.
pub fn max_payload(max_message: usize) -> usize {
    max_message.saturating_add(MAX_HEADER)
}

/// The type a message travels with: the header before its bytes (hash, name length, name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireType {
    hash: u64,
    header: Vec<u8>,
}

impl WireType {
    /// The wire type of messages of type `name` with hash `hash` (a name longer than 255
    /// bytes travels cut, on a character boundary: it only labels errors).
    pub fn new(name: &str, hash: u64) -> WireType {
        let mut end = name.len().min(MAX_NAME);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let mut header = hash.to_le_bytes().to_vec();
        header.push(u8::try_from(end).expect("cut to 255 bytes above"));
        header.extend_from_slice(&name.as_bytes()[..end]);
        WireType { hash, header }
    }

    /// The type hash.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The header: hash, name length, name.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// A message of this type as it travels: the header, then `bytes`.
    pub fn encode(&self, bytes: &[u8]) -> Vec<u8> {
        let mut payload = Vec::with_capacity(self.header.len() + bytes.len());
        payload.extend_from_slice(&self.header);
        payload.extend_from_slice(bytes);
        payload
    }
}

/// A received payload, split into its header's fields and the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The type's name (as cut by the sender, see [`WireType::new`]).
    pub type_name: &'a str,
    /// The type's hash.
    pub type_hash: u64,
    /// The message's bytes.
    pub bytes: &'a [u8],
}

/// Why a payload has no valid header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than the hash and the name's length.
    #[error("{len} bytes, shorter than the {FIXED_HEADER}-byte header")]
    Truncated {
        /// The payload's length.
        len: usize,
    },
    /// The name's length points past the end of the payload.
    #[error("the type name is {name_len} bytes and only {left} follow")]
    NamePastEnd {
        /// The length the header gives.
        name_len: usize,
        /// Bytes after the fixed header.
        left: usize,
    },
    /// The name is not UTF-8.
    #[error("the type name is not UTF-8")]
    NameNotUtf8,
}

/// Splits a received payload into its header's fields and the message.
pub fn parse(payload: &[u8]) -> Result<Frame<'_>, ParseError> {
    let truncated = ParseError::Truncated { len: payload.len() };
    let (hash, rest) = payload.split_first_chunk::<8>().ok_or(truncated.clone())?;
    let (&len, rest) = rest.split_first().ok_or(truncated)?;
    let name_len = usize::from(len);
    let (name, bytes) = rest.split_at_checked(name_len).ok_or(ParseError::NamePastEnd {
        name_len,
        left: rest.len(),
    })?;
    Ok(Frame {
        type_name: std::str::from_utf8(name).map_err(|_| ParseError::NameNotUtf8)?,
        type_hash: u64::from_le_bytes(*hash),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMU: &str = "horus_plugin_api::msgs::Imu";

    #[test]
    fn a_message_round_trips() {
        let ty = WireType::new(IMU, 0xdead_beef);
        let payload = ty.encode(b"payload");
        assert_eq!(&payload[..8], &0xdead_beef_u64.to_le_bytes());
        assert_eq!(usize::from(payload[8]), IMU.len());
        assert_eq!(
            parse(&payload),
            Ok(Frame {
                type_name: IMU,
                type_hash: 0xdead_beef,
                bytes: b"payload"
            })
        );
        assert_eq!(ty.hash(), 0xdead_beef);
        assert_eq!(ty.header(), &payload[..FIXED_HEADER + IMU.len()]);
    }

    #[test]
    fn an_empty_message_and_an_empty_name_are_valid() {
        let ty = WireType::new(IMU, 1);
        let empty = ty.encode(b"");
        let f = parse(&empty).unwrap();
        assert_eq!((f.type_name, f.type_hash, f.bytes), (IMU, 1, &b""[..]));
        let unnamed = WireType::new("", 2).encode(b"x");
        let f = parse(&unnamed).unwrap();
        assert_eq!((f.type_name, f.type_hash, f.bytes), ("", 2, &b"x"[..]));
    }

    #[test]
    fn a_header_cut_at_any_length_is_an_error() {
        let payload = WireType::new(IMU, 7).encode(b"");
        for len in 0..payload.len() {
            let err = parse(&payload[..len]).unwrap_err();
            if len < FIXED_HEADER {
                assert_eq!(err, ParseError::Truncated { len }, "cut at {len}");
            } else {
                assert_eq!(
                    err,
                    ParseError::NamePastEnd {
                        name_len: IMU.len(),
                        left: len - FIXED_HEADER
                    },
                    "cut at {len}"
                );
            }
        }
        assert!(parse(&payload).is_ok());
    }

    #[test]
    fn a_name_length_past_the_end_is_an_error() {
        let mut p = 5u64.to_le_bytes().to_vec();
        p.push(255);
        p.extend_from_slice(b"short");
        assert_eq!(
            parse(&p),
            Err(ParseError::NamePastEnd {
                name_len: 255,
                left: 5
            })
        );
    }

    #[test]
    fn a_name_that_is_not_utf8_is_an_error() {
        let mut p = 5u64.to_le_bytes().to_vec();
        p.extend_from_slice(&[2, 0xff, 0xfe]);
        p.extend_from_slice(b"message");
        assert_eq!(parse(&p), Err(ParseError::NameNotUtf8));
    }

    #[test]
    fn a_wrong_type_hash_reaches_the_receiver_with_the_senders_name() {
        // The header does not know the receiver's type: it parses, and the receiver compares
        // the hash with its port's and names the sender's type in its error.
        let expected = WireType::new(IMU, 1);
        let sent = WireType::new("other::Type", 2).encode(b"x");
        let f = parse(&sent).unwrap();
        assert_ne!(f.type_hash, expected.hash());
        assert_eq!(f.type_name, "other::Type");
    }

    #[test]
    fn a_long_name_is_cut_on_a_character_boundary() {
        let long = "é".repeat(200); // 400 bytes
        let ty = WireType::new(&long, 1);
        assert_eq!(ty.header()[8], 254, "cut on a character boundary");
        let f = parse(ty.header()).unwrap();
        assert_eq!(f.type_name, "é".repeat(127));
        assert!(f.bytes.is_empty());
    }

    #[test]
    fn random_garbage_never_panics() {
        // xorshift64*: deterministic, so a failure reproduces; no dependency for it.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let mut ok = 0;
        for _ in 0..20_000 {
            let len = (next() % 300) as usize;
            let mut p: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Half the inputs get a plausible name length, so the later checks run too.
            if p.len() > 8 && next() % 2 == 0 {
                p[8] = (next() % (p.len() as u64 - 8)) as u8;
            }
            match parse(&p) {
                Ok(f) => {
                    ok += 1;
                    assert_eq!(f.type_name.len(), usize::from(p[8]));
                    assert_eq!(FIXED_HEADER + f.type_name.len() + f.bytes.len(), p.len());
                }
                Err(ParseError::Truncated { len }) => assert!(len < FIXED_HEADER),
                Err(ParseError::NamePastEnd { name_len, left }) => assert!(name_len > left),
                Err(ParseError::NameNotUtf8) => {}
            }
        }
        assert!(ok > 0, "some random inputs should parse");
    }

    mod properties {
        //! The same promises as above, over inputs proptest picks (bounded: 256 cases each, so
        //! the suite stays fast; a failure prints the shrunk input).

        use super::super::*;
        use proptest::prelude::*;

        fn config() -> ProptestConfig {
            ProptestConfig {
                cases: 256,
                ..ProptestConfig::default()
            }
        }

        proptest! {
            #![proptest_config(config())]

            #[test]
            fn any_type_and_message_round_trip(name in ".{0,300}", hash: u64, bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let ty = WireType::new(&name, hash);
                let payload = ty.encode(&bytes);
                prop_assert!(payload.len() <= max_payload(bytes.len()));
                let f = parse(&payload).unwrap();
                prop_assert_eq!(f.type_hash, hash);
                prop_assert_eq!(f.bytes, &bytes[..]);
                // The name arrives whole, or cut to at most 255 bytes on a character boundary.
                prop_assert!(name.starts_with(f.type_name));
                if name.len() <= MAX_NAME {
                    prop_assert_eq!(f.type_name, &name[..]);
                } else {
                    prop_assert!((MAX_NAME - 3..=MAX_NAME).contains(&f.type_name.len()));
                }
            }

            #[test]
            fn random_bytes_are_a_frame_or_an_error(p in proptest::collection::vec(any::<u8>(), 0..600)) {
                match parse(&p) {
                    Ok(f) => {
                        prop_assert_eq!(f.type_name.len(), usize::from(p[8]));
                        prop_assert_eq!(FIXED_HEADER + f.type_name.len() + f.bytes.len(), p.len());
                        prop_assert_eq!(&f.type_hash.to_le_bytes()[..], &p[..8]);
                        // What parses re-encodes to the same bytes.
                        prop_assert_eq!(WireType::new(f.type_name, f.type_hash).encode(f.bytes), p);
                    }
                    Err(ParseError::Truncated { len }) => prop_assert!(len < FIXED_HEADER),
                    Err(ParseError::NamePastEnd { name_len, left }) => {
                        prop_assert!(name_len > left);
                        prop_assert_eq!(left + FIXED_HEADER, p.len());
                    }
                    Err(ParseError::NameNotUtf8) => {
                        prop_assert!(std::str::from_utf8(&p[FIXED_HEADER..FIXED_HEADER + usize::from(p[8])]).is_err());
                    }
                }
            }

            #[test]
            fn a_valid_header_before_random_bytes_parses(name in "[a-z:_]{0,80}", hash: u64, body in proptest::collection::vec(any::<u8>(), 0..600)) {
                // Whatever follows a valid header is the message, untouched.
                let mut p = WireType::new(&name, hash).header().to_vec();
                p.extend_from_slice(&body);
                let f = parse(&p).unwrap();
                prop_assert_eq!((f.type_name, f.type_hash, f.bytes), (&name[..], hash, &body[..]));
            }
        }
    }
}
