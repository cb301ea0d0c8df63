"""Camera-sized messages in place (issue 18): received arrays that view their slot, loaned
arrays written in place, and the rules that keep both safe."""

import gc
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import horus

MIB = 1 << 20


def pair(name, max_size=2 * MIB, depth=4):
    pub = horus.Hub(name, max_size=max_size, depth=depth)
    return pub, horus.Hub(name)


def test_a_received_frame_is_a_read_only_view_that_never_changes(no_leftovers):
    pub, sub = pair("large/view")
    first = np.full((480, 640, 3), 7, dtype=np.uint8)
    pub.send(first)
    view = sub.recv()
    assert view.shape == first.shape and view.dtype == np.uint8
    assert not view.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        view[0, 0, 0] = 1
    # The publisher runs on for many laps of the 4-slot ring: the held slot is skipped.
    for i in range(100):
        pub.send(np.full((480, 640, 3), i % 251, dtype=np.uint8))
        later = sub.recv()
        assert later is not None and later[0, 0, 0] == i % 251
        del later
    assert np.array_equal(view, first), "a view kept alive still holds its own message"
    del view
    pub.close()
    sub.close()


def test_small_arrays_and_other_messages_are_still_copies(no_leftovers):
    pub, sub = pair("large/small")
    pub.send(np.arange(10.0))
    small = sub.recv()
    assert small.flags.writeable and np.array_equal(small, np.arange(10.0))
    pub.send({"frame": 1, "data": b"x" * 100_000})
    assert sub.recv() == {"frame": 1, "data": b"x" * 100_000}
    pub.close()
    sub.close()


def test_a_reader_holding_half_the_ring_gets_copies(no_leftovers):
    pub, sub = pair("large/hold", depth=4)
    frames = [np.full(MIB // 2, i, dtype=np.uint8) for i in range(4)]
    held = []
    for f in frames:
        pub.send(f)
        held.append(sub.recv())
    # Half of the 4 slots may be held in place; then frames come as writable copies.
    assert [h.flags.writeable for h in held] == [False, False, True, True]
    assert all(np.array_equal(h, f) for h, f in zip(held, frames))
    del held[0]
    gc.collect()
    pub.send(frames[0])
    assert not sub.recv().flags.writeable, "a released slot lets the next frame be a view again"
    del held
    pub.close()
    sub.close()


def test_views_outlive_their_hubs(no_leftovers):
    pub, sub = pair("large/outlive")
    frame = np.arange(MIB, dtype=np.uint8)
    pub.send(frame)
    view = sub.recv()
    sub.close()
    pub.close()
    assert np.array_equal(view, frame), "the view keeps its memory after both hubs closed"
    base = view
    while isinstance(base, np.ndarray):
        base = base.base
    assert type(base).__name__ == "SlotMemory"
    del view, base
    # no_leftovers: the segment goes once the last view is collected.


def test_a_loan_is_written_in_place_and_published_by_send(no_leftovers):
    pub, sub = pair("large/loan")
    arr = pub.loan((480, 640, 3), np.uint8)
    assert arr.shape == (480, 640, 3) and arr.dtype == np.uint8 and arr.flags.writeable
    assert sub.recv() is None, "nothing is published before send"
    arr[:] = 42
    pub.send(arr)
    assert not arr.flags.writeable, "a sent loan is a published message: read-only"
    got = sub.recv()
    assert got.shape == (480, 640, 3) and (got == 42).all()
    f32 = pub.loan(1000, "float32")
    f32[:] = np.linspace(0, 1, 1000, dtype=np.float32)
    pub.send(f32)
    assert np.array_equal(sub.recv(), np.linspace(0, 1, 1000, dtype=np.float32))
    pub.close()
    sub.close()


def test_a_loan_not_sent_is_discarded(no_leftovers):
    pub, sub = pair("large/discard")
    abandoned = pub.loan(MIB, np.uint8)
    abandoned[:] = 1
    pub.send({"other": True})  # anything else closes the loan unsent
    assert not abandoned.flags.writeable
    assert sub.recv() == {"other": True}
    assert sub.recv() is None
    again = pub.loan(MIB, np.uint8)
    pub.loan(MIB, np.uint8)  # a second loan discards the first
    assert not again.flags.writeable
    pub.close()  # and closing discards the open one
    assert sub.recv() is None
    assert sub.get_metrics()["messages_received"] == 1
    sub.close()


def test_loan_errors_say_what_to_do(no_leftovers):
    pub, sub = pair("large/errors", max_size=MIB)
    with pytest.raises(ValueError, match=r"does not fit topic `hub/large/errors`.*max_size="):
        pub.loan(2 * MIB, np.uint8)
    with pytest.raises(TypeError, match="dtype=object"):
        pub.loan(10, object)
    with pytest.raises(TypeError, match="shape must be an int or a tuple"):
        pub.loan("big", np.uint8)
    # A topic a typed message created (as a Rust node's would be) carries that type.
    node = horus.Node()
    node.send("hub/large/typed", horus.Attitude(stamp_ns=1, roll=0.0, pitch=0.0, yaw=0.0))
    typed = horus.Hub("large/typed")
    with pytest.raises(TypeError, match="typed message, not Python objects"):
        typed.loan(10, np.uint8)
    for h in (pub, sub, typed):
        h.close()
    node._horus_io.close()


LOAN_ECHO = textwrap.dedent(
    """
    import sys, time, horus, numpy as np
    shape, n = tuple(int(d) for d in sys.argv[1].split("x")), int(sys.argv[2])
    up, down = horus.Hub("large/echo/in"), horus.Hub("large/echo/out")
    horus.Hub("large/echo/ready").send("up")
    deadline = time.monotonic() + 60
    for _ in range(n):
        while (frame := up.recv()) is None:
            assert time.monotonic() < deadline
        out = down.loan(shape, np.uint8)
        np.copyto(out, frame[::-1])  # flipped, so the check sees this process's work
        del frame
        down.send(out)
    """
)


@pytest.mark.parametrize("shape", [(480, 640, 3), (720, 1280, 3), (1080, 1920, 3)])
def test_loaned_frames_to_another_process_and_back(shape, no_leftovers):
    """Frames written in place on both sides, read as views on both sides, every byte checked."""
    size = int(np.prod(shape)) + 4096
    down, up = horus.Hub("large/echo/in", max_size=size, depth=4), horus.Hub("large/echo/out", max_size=size, depth=4)
    ready = horus.Hub("large/echo/ready")
    rng = np.random.default_rng(sum(shape))
    n = 5
    proc = subprocess.Popen([sys.executable, "-c", LOAN_ECHO, "x".join(map(str, shape)), str(n)])
    try:
        deadline = time.monotonic() + 60
        while ready.recv() is None:
            assert time.monotonic() < deadline, "the child did not come up"
            time.sleep(0.005)
        for _ in range(n):
            frame = down.loan(shape, np.uint8)
            frame[:] = rng.integers(0, 256, size=shape, dtype=np.uint8)
            sent = frame.copy()
            down.send(frame)
            while (back := up.recv()) is None:
                assert time.monotonic() < deadline, "no frame back"
            assert not back.flags.writeable and back.shape == shape
            assert np.array_equal(back, sent[::-1])
            del back
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()
    for h in (down, up, ready):
        h.close()


def test_images_travel_with_their_pixels_as_views(no_leftovers):
    pub, sub = pair("large/image")
    pixels = np.random.default_rng(1).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    pub.send(horus.Image(640, 480, "rgb8", data=pixels, stamp_ns=42))
    got = sub.recv()
    assert isinstance(got, horus.Image)
    assert (got.width, got.height, got.encoding, got.step, got.stamp_ns) == (640, 480, "rgb8", 1920, 42)
    assert got.data.shape == (480, 640, 3) and not got.data.flags.writeable
    assert np.array_equal(got.data, pixels)
    # Other encodings: 16-bit pixels, padded rows (bytes per row), defaults.
    pub.send(horus.Image(300, 200, "mono16", data=np.arange(60_000, dtype=np.uint16).reshape(200, 300)))
    mono = sub.recv()
    assert mono.data.dtype == np.uint16 and mono.data.shape == (200, 300) and mono.data[199, 299] == 59_999
    pub.send(horus.Image(100, 1000, "yuv422", data=bytes(1000 * 256), step=256))
    padded = sub.recv()
    assert padded.data.shape == (1000, 256) and padded.data.dtype == np.uint8
    assert horus.Image(4, 2, "rgba8").data.shape == (2, 4, 4)
    assert repr(got) == "Image(640x480 rgb8, step=1920, stamp_ns=42)"
    del got, mono, padded
    pub.close()
    sub.close()


def test_an_image_topic_of_the_rust_type_takes_only_images(no_leftovers):
    node = horus.Node()
    node.send("cam/typed", horus.Image(64, 48, "mono8", data=np.full((48, 64), 3, np.uint8)))
    got = node.get("cam/typed")
    assert isinstance(got, horus.Image) and (got.data == 3).all()
    with pytest.raises(TypeError, match="carries Image messages: send a horus.Image"):
        node.send("cam/typed", {"not": "an image"})
    node._horus_io.close()


def test_bad_images_are_refused_with_the_reason(no_leftovers):
    with pytest.raises(ValueError, match="give step="):
        horus.Image(10, 10, "yuv422")
    with pytest.raises(ValueError, match="longer than 32 bytes"):
        horus.Image(1, 1, "x" * 33, step=1)
    hub = horus.Hub("large/badimage")
    with pytest.raises(ValueError, match="has 5 bytes, but 2 rows of 12 bytes need 24"):
        hub.send(horus.Image(4, 2, "rgb8", data=bytes(5)))
    # A truncated or lying image from a peer is an error, not a crash.
    good = b"I" + bytes(7)
    with pytest.raises(ValueError, match="malformed image"):
        horus._horus._decode_payload(good + bytes(10))
    hub.close()


class FrameCamera(horus.Node):
    """A camera node that writes each frame in place."""

    def __init__(self):
        super().__init__()
        self.n = 0

    def tick(self):
        frame = self.loan("frames", (480, 640, 3))
        frame[:] = self.n % 251
        self.send("frames", frame)
        self.n += 1


class FrameViewer(horus.Node):
    def __init__(self):
        super().__init__()
        self.seen = []

    def tick(self):
        while (frame := self.get("frames")) is not None:
            assert not frame.flags.writeable
            self.seen.append(int(frame[479, 639, 2]))


def test_a_node_loans_frames_to_a_connected_node(no_leftovers):
    s = horus.Scheduler()
    camera, viewer = FrameCamera(), FrameViewer()
    s.add(camera, priority=1)
    s.add(viewer, priority=2)
    s.connect(camera, "frames", viewer, "frames")
    s.run(duration=0.2)
    assert camera.n >= 3 and viewer.seen == [i % 251 for i in range(len(viewer.seen))]
    assert len(viewer.seen) >= camera.n - 1, (len(viewer.seen), camera.n)
    camera._horus_io.close()
    viewer._horus_io.close()
