"""The Python-object decoder against random bytes: whatever a peer publishes on a Python topic
(a hub's key is open to any Zenoh client), decoding it gives a value or raises ValueError or
TypeError, never a panic (pyo3's PanicException is not an Exception) nor a crash. Seeded, so a
failure reproduces; bounded, so the suite stays fast."""

import random
import struct

import pytest

from horus import _horus

CASES = 4000

# Hand-made valid payloads (tag `M` + MessagePack), for mutation: a map of a list of the
# scalar kinds, a numpy array (ext 1) and a typed message (ext 2) header.
VALID = [
    b"M\x81\xa1a\x95\x01\xcb" + struct.pack(">d", 2.5) + b"\xa1x\xc0\xc3",
    b"M\x93\xc4\x03abc\x92\x01\x02\x80",
    b"B raw bytes",
    b"M\xc7\x10\x01" + b"\xa3<f4\x91\x02" + b"\xc4\x08" + b"\x00" * 8,
    b"M\xc7\x0c\x02" + b"\x00" * 12,
    # A top-level numpy array (tag N): ndim 1, dtype "|u1", padding, shape [4], the data.
    b"N\x01\x03|u1\x00\x00" + struct.pack("<Q", 4) + b"\x01\x02\x03\x04",
]

# Lengths that claim far more than follows: must be refused, not allocated.
HUGE = [
    b"M\xdd\xff\xff\xff\xff",  # array32 of 4 Gi items
    b"M\xdf\xff\xff\xff\xff",  # map32
    b"M\xc6\xff\xff\xff\xff",  # bin32
    b"M\xdb\xff\xff\xff\xff",  # str32
    b"M\xc9\xff\xff\xff\xff\x01",  # ext32 (numpy)
    b"M" + b"\x91" * 100_000 + b"\xc0",  # nesting far past the limit
    # numpy arrays whose shape claims far more data than follows, or an object dtype.
    b"N\x02\x03|u1\x00\x00" + struct.pack("<QQ", 1 << 31, 1 << 31) + b"\x00" * 8,
    b"N\x01\x03|O8\x00\x00" + struct.pack("<Q", 1) + b"\x00" * 8,
    b"N\x09\x03|u1\x00\x00",  # nine dimensions announced, none there
]


def decode(payload):
    try:
        _horus._decode_payload(payload)
    except (ValueError, TypeError, OverflowError):
        pass  # a malformed payload: an error, as the receiving hub reports it


def test_valid_payloads_decode():
    assert _horus._decode_payload(VALID[0]) == {"a": [1, 2.5, "x", None, True]}
    assert _horus._decode_payload(VALID[1]) == [b"abc", [1, 2], {}]
    assert _horus._decode_payload(VALID[2]) == b" raw bytes"
    array = _horus._decode_payload(VALID[5])
    assert array.tolist() == [1, 2, 3, 4] and str(array.dtype) == "uint8"


@pytest.mark.parametrize("payload", HUGE)
def test_lengths_past_the_end_are_errors(payload):
    with pytest.raises((ValueError, TypeError)):
        _horus._decode_payload(payload)


def test_random_bytes_are_a_value_or_an_error():
    rng = random.Random(0x5EED)
    for _ in range(CASES):
        tag = rng.choice([b"M", b"M", b"B", b"N", bytes([rng.randrange(256)])])
        decode(tag + rng.randbytes(rng.randrange(64)))


def test_mutated_valid_payloads_are_a_value_or_an_error():
    rng = random.Random(0xF00D)
    for _ in range(CASES):
        p = bytearray(rng.choice(VALID))
        for _ in range(rng.randrange(1, 4)):
            what = rng.randrange(3)
            if what == 0 and len(p) > 1:  # flip a byte
                p[rng.randrange(1, len(p))] = rng.randrange(256)
            elif what == 1:  # cut
                del p[rng.randrange(1, len(p) + 1) :]
            else:  # insert
                i = rng.randrange(1, len(p) + 1)
                p[i:i] = rng.randbytes(rng.randrange(1, 8))
        decode(bytes(p))
