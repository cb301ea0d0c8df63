"""Messages, connections, hubs and links; the seed's hub areas (global hub, metrics, config)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import horus


class Source(horus.Node):
    def __init__(self, messages, topic="out"):
        super().__init__()
        self.messages = list(messages)
        self.topic = topic

    def tick(self):
        if self.messages:
            self.send(self.topic, self.messages.pop(0))


class Sink(horus.Node):
    def __init__(self, topic="in"):
        super().__init__()
        self.topic = topic
        self.got = []

    def tick(self):
        while (m := self.get(self.topic)) is not None:
            self.got.append(m)


def run_pair(messages, connect=True, duration=None):
    s = horus.Scheduler.from_config(horus.SchedulerConfig.realtime())
    src, dst = Source(messages), Sink()
    s.add(src, priority=1)
    s.add(dst, priority=2)
    if connect:
        s.connect("Source", "out", dst, "in")
    s.run(duration=duration or 0.05 + len(messages) / 1000 * 1.5)
    return dst.got


def test_python_objects_arrive_equal_and_in_order(no_leftovers):
    messages = [
        {"seq": i, "pose": [1.5, -2.0, 3.25], "name": "imu", "ok": True, "none": None, "raw": b"\x00\xff"}
        for i in range(50)
    ] + [[1, 2, 3], "text", 7, -(2**63), 2**64 - 1, 3.5, b"plain bytes", {"nested": {"a": [{"b": 1}]}}]
    got = run_pair(messages)
    assert got == messages


def test_tuples_come_back_as_lists_and_bad_types_raise(no_leftovers):
    node = horus.Node()
    node.send("t", (1, 2))
    assert node.get("t") == [1, 2]
    with pytest.raises(TypeError, match="cannot send an object of type"):
        node.send("t", object())
    with pytest.raises(OverflowError, match="64 bits"):
        node.send("t", 2**70)
    with pytest.raises(ValueError, match="empty"):
        node.send("", 1)
    node._horus_io.close()


def test_numpy_arrays_round_trip_writable(no_leftovers):
    node = horus.Node()
    frame = np.arange(480 * 640 * 3, dtype=np.uint8).reshape(480, 640, 3)
    points = np.linspace(0, 1, 12, dtype=np.float64).reshape(3, 4).T  # not C-contiguous
    node.send("cam", {"frame": frame, "points": points})
    got = node.get("cam")
    assert got["frame"].dtype == np.uint8 and got["frame"].shape == (480, 640, 3)
    assert np.array_equal(got["frame"], frame) and np.array_equal(got["points"], points)
    got["frame"][0, 0, 0] = 7  # writable, no copy needed
    with pytest.raises(TypeError, match="dtype=object"):
        node.send("cam", np.array([object()]))
    with pytest.raises(ValueError, match="does not fit"):
        node.send("cam", np.zeros(2 << 20, dtype=np.uint8))
    node._horus_io.close()


def test_a_top_level_array_travels_as_its_data(no_leftovers):
    # Sent on its own, an array goes straight into the slot (tag N, no MessagePack of the data)
    # and comes back a new writable array with its dtype and shape: every kind of layout.
    node = horus.Node()
    cases = [
        np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        np.linspace(0, 1, 12, dtype=np.float64).reshape(3, 4).T,  # not C-contiguous
        np.array(5, dtype=np.int16),  # 0-d
        np.zeros((0, 3), dtype=np.uint8),  # empty
        np.array([True, False]),
        np.arange(7, dtype=">u4"),  # big-endian: its dtype travels as written
    ]
    for a in cases:
        node.send("arr", a)
        got = node.get("arr")
        assert got.dtype == a.dtype and got.shape == a.shape, (got, a)
        assert np.array_equal(got, a)
        assert got.flags.writeable and got.flags.c_contiguous
    with pytest.raises(TypeError, match="dtype=object"):
        node.send("arr", np.array([object()]))
    node._horus_io.close()


IMAGE_CHILD = textwrap.dedent(
    """
    import sys, horus, numpy as np
    node = horus.Node()
    horus.Hub("img_up").send("up")
    # One more than the frames: the first is the blank frame that created the topic, still
    # queued when this late reader attaches.
    for _ in range(int(sys.argv[1]) + 1):
        while (frame := node.get("img/in")) is None:
            pass
        node.send("img/out", frame[::-1].copy())  # flipped, so the check sees this process's work
    """
)


@pytest.mark.parametrize("shape", [(480, 640, 3), (720, 1280, 3), (1080, 1920, 3)])
def test_camera_frames_between_processes(shape, no_leftovers):
    """Frames of the three camera sizes to another process and back, every byte checked."""
    import time

    rng = np.random.default_rng(sum(shape))
    frames = [rng.integers(0, 256, size=shape, dtype=np.uint8) for _ in range(3)]
    node = horus.Node()
    # Both topics exist, sized for a frame, before the child attaches (its reads then find them).
    blank = np.zeros(shape, dtype=np.uint8)
    for topic in ("img/in", "img/out"):
        node.send(topic, blank)
        assert np.array_equal(node.get(topic), blank)
    up = horus.Hub("img_up")
    proc = subprocess.Popen([sys.executable, "-c", IMAGE_CHILD, str(len(frames))])
    try:
        deadline = time.monotonic() + 30
        while up.recv() is None:
            assert time.monotonic() < deadline, "the child did not come up"
            time.sleep(0.005)
        while (back := node.get("img/out")) is None:  # the blank frame, echoed
            assert time.monotonic() < deadline, "no frame back"
        assert np.array_equal(back, blank)
        for f in frames:
            node.send("img/in", f)
            while (back := node.get("img/out")) is None:
                assert time.monotonic() < deadline, "no frame back"
            assert back.shape == shape and back.dtype == np.uint8
            assert np.array_equal(back, f[::-1])
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
    up.close()
    node._horus_io.close()


def _forked_publisher(ready, done):
    node = horus.Node()
    node.send("forked/out", {"from": "child"})
    ready.set()
    done.wait(10)


def test_a_forked_child_is_not_taken_for_a_crashed_process(no_leftovers):
    """A child forked by multiprocessing (after this process used topics) publishes; a reader
    attaching afterwards gets the message. The child's endpoints once carried the parent's
    start time, so the reader took them for a crashed process's, reset the ring and lost it."""
    import multiprocessing as mp

    node = horus.Node()
    node.send("forked/warm", 1)  # this process has endpoints (and its start time) first
    ready, done = mp.Event(), mp.Event()
    child = mp.get_context("fork").Process(target=_forked_publisher, args=(ready, done))
    child.start()
    try:
        assert ready.wait(20)
        assert node.get("forked/out") == {"from": "child"}
    finally:
        done.set()
        child.join(10)
    assert child.exitcode == 0
    node._horus_io.close()


def test_typed_messages_travel_as_rust_types(no_leftovers):
    a = horus.Attitude(stamp_ns=5, roll=0.1, pitch=-0.2, yaw=3.0)
    imu = horus.Imu(stamp_ns=9, angular_velocity=horus.Vector3(1, 2, 3), linear_acceleration=horus.Vector3(z=9.81))
    pub, sub = horus.Node(), horus.Node()
    pub.send("att", a)
    pub.send("imu", imu)
    assert sub.get("att") == a and sub.get("imu") == imu
    with pytest.raises(TypeError, match="Attitude"):
        pub.send("att", {"roll": 1})
    # Inside Python-object messages too.
    pub.send("mixed", {"att": a, "list": [horus.Twist(linear=horus.Vector3(x=1.0))]})
    got = sub.get("mixed")
    assert got["att"] == a and got["list"][0].linear.x == 1.0
    for n in (pub, sub):
        n._horus_io.close()


def test_unconnected_names_are_shared_topics(no_leftovers):
    s = horus.Scheduler()
    src, dst = Source(range(5), topic="shared/topic"), Sink(topic="shared/topic")
    s.add(src)
    s.add(dst)
    s.run(duration=0.2)
    assert dst.got == [0, 1, 2, 3, 4], "a late reader first gets what is queued"


def test_has_msg_and_recv_alias(no_leftovers):
    a, b = horus.Node(), horus.Node()
    assert not b.has_msg("q") and b.recv("q") is None
    a.send("q", 1)
    assert b.has_msg("q") and b.recv("q") == 1 and not b.has_msg("q")
    for n in (a, b):
        n._horus_io.close()


def test_a_node_that_skips_super_init_still_has_its_topics(no_leftovers):
    class Bare(horus.Node):
        def __init__(self):
            pass

    class Loud(horus.Node):
        def send(self, topic, data):
            super().send(topic, {"wrapped": data})

    bare, loud = Bare(), Loud()
    loud.send("skip/q", 1)
    assert bare.has_msg("skip/q") and bare.get("skip/q") == {"wrapped": 1}
    bare.send("skip/q", 2)
    assert bare.recv("skip/q") == 2  # every handle sees every message, its own too
    assert loud.get("skip/q") == {"wrapped": 1} and loud.get("skip/q") == 2
    with pytest.raises(AttributeError, match="'Bare' object has no attribute 'nope'"):
        bare.nope
    for n in (bare, loud):
        n._horus_io.close()


def test_a_remap_leaves_the_other_names_of_a_node_alone(no_leftovers):
    node, other = horus.Node(), horus.Node()
    for i, name in enumerate(["remap/a", "remap/b", "remap/c"]):
        node.send(name, i)
        assert node.get(name) == i
    node._horus_io.remap("remap/a", "remap/elsewhere")  # the last name's endpoint takes its place
    node.send("remap/c", "c")
    node.send("remap/b", "b")
    node.send("remap/a", "a")

    def drain(topic):
        got = []
        while (m := other.get(topic)) is not None:
            got.append(m)
        return got

    # A late reader first gets what is queued; remap/a went with its only endpoint.
    assert drain("remap/c") == [2, "c"] and drain("remap/b") == [1, "b"]
    assert drain("remap/elsewhere") == ["a"] and drain("remap/a") == []
    metrics = node.get_metrics()
    assert metrics["remap/c"]["messages_sent"] == 2 and metrics["remap/b"]["messages_sent"] == 2
    assert metrics["remap/a"]["messages_sent"] == 1
    for n in (node, other):
        n._horus_io.close()


def test_hub_send_recv_metrics_and_state(no_leftovers):
    hub = horus.Hub("sensors")
    other = horus.Hub("sensors")
    hub.send({"t": 1.0})
    hub.send(b"xyz")
    assert other.recv() == {"t": 1.0} and other.recv() == b"xyz" and other.recv() is None
    m = hub.get_metrics()
    assert set(m) == {"messages_sent", "messages_received", "bytes_sent", "bytes_received", "dropped", "errors"}
    assert m["messages_sent"] == 2 and m["bytes_sent"] > 0 and m["errors"] == 0
    assert other.get_metrics()["messages_received"] == 2
    state = hub.get_connection_state()
    assert state["connected"] is True and state["peers"] >= 1 and state["endpoint"].startswith("shm:")
    with pytest.raises(TypeError):
        hub.send(object())
    assert hub.get_metrics()["errors"] == 1
    hub.close()
    other.close()


def _segment(endpoint):
    import os

    path = "/dev/shm" + endpoint.get_connection_state()["endpoint"].removeprefix("shm:")
    st = os.stat(path)
    return st.st_size, st.st_blocks * 512


def test_a_default_hub_commits_about_one_mib(no_leftovers):
    """Issue 13: a topic's memory is committed when it is created, so a Python topic must be
    small by default (it was 32 slots of 1 MiB: two filled Docker's 64 MiB /dev/shm)."""
    hub = horus.Hub("defaults")
    size, committed = _segment(hub)
    assert size <= 1_100_000, size
    assert committed >= size, "committed at creation, not sparse"
    hub.send(b"x" * 65535)  # a bytes message is its bytes and a tag byte
    with pytest.raises(ValueError, match=r"65537 bytes does not fit topic `hub/defaults` \(at most 65536"):
        hub.send(b"x" * 65536)
    assert hub.recv() == b"x" * 65535
    hub.close()


def test_hub_max_size_and_depth(no_leftovers):
    hub = horus.Hub("sized", max_size=1024, depth=4)
    other = horus.Hub("sized", max_size=10, depth=1000)  # the topic keeps its creator's size
    for i in range(6):
        hub.send(bytes([i]) * 1023)
    with pytest.raises(ValueError, match=r"1025 bytes does not fit topic `hub/sized` \(at most 1024 bytes"):
        other.send(b"x" * 1024)
    got = []
    while (m := other.recv()) is not None:
        got.append(m[0])
    assert got == [2, 3, 4, 5] and other.get_metrics()["dropped"] == 2, "keep_last(4)"
    for bad in ({"max_size": 0}, {"max_size": 2**40}, {"depth": 0}, {"depth": 2**20}):
        with pytest.raises(ValueError, match="must be"):
            horus.Hub("bad", **bad)
    tx = horus.Link("cmd", "motor", max_size=64, depth=2)
    rx = horus.Link("cmd", "motor")
    assert _segment(tx)[0] < 8192
    tx.send(b"ok")
    assert rx.recv() == b"ok"
    for x in (hub, other, tx, rx):
        x.close()


def test_global_hub_is_one_per_name(no_leftovers):
    a = horus.Hub.global_hub("sensor_hub")
    b = horus.Hub.global_hub("sensor_hub")
    c = horus.Hub.global_hub("other_hub")
    assert a is b and a is not c
    a.send("hello")
    assert b.recv() == "hello" and c.recv() is None
    assert b.get_metrics()["messages_sent"] == 1
    for h in (a, c):
        h.close()


def test_links_are_point_to_point(no_leftovers):
    hub = horus.Hub.global_hub("link_hub")
    tx = hub.create_link("sensor_data", "remote_hub")
    rx = horus.Hub("elsewhere").create_link("sensor_data", "remote_hub")
    tx.send([1, 2])
    assert rx.recv() == [1, 2]
    assert (tx.topic, tx.target) == ("sensor_data", "remote_hub")
    for x in (tx, rx, hub):
        x.close()


def test_hub_from_config_toml_and_yaml(tmp_path, no_leftovers):
    toml = tmp_path / "config.toml"
    toml.write_text('[hub.sensor_hub]\nmode = "local"\n')
    yaml = tmp_path / "config.yaml"
    yaml.write_text("hub:\n  sensor_hub:\n    mode: local\n")
    a = horus.Hub.from_config(str(toml), "sensor_hub")
    b = horus.Hub.from_config(yaml, "sensor_hub")
    a.send(42)
    assert b.recv() == 42, "equal configs name the same hub"
    (tmp_path / "bad.toml").write_text('[hub.sensor_hub]\nmode = "local"\nadress = "x"\n')
    with pytest.raises(ValueError, match=r"(?s)bad.toml.*line 3.*adress"):
        horus.Hub.from_config(tmp_path / "bad.toml", "sensor_hub")
    with pytest.raises(ValueError, match="did you mean `sensor_hub`"):
        horus.Hub.from_config(toml, "sensor_hb")
    with pytest.raises(ValueError, match="cannot read"):
        horus.Hub.from_config(tmp_path / "missing.toml", "sensor_hub")
    for h in (a, b):
        h.close()


def test_python_to_python_across_processes(no_leftovers):
    """A publisher process and this one, 2000 messages through a hub, none lost or reordered."""
    import time

    child = textwrap.dedent(
        """
        import time, horus
        hub = horus.Hub("xproc")
        go = horus.Hub("xproc_go")          # exist before we announce ourselves
        ack = horus.Hub("xproc_ack")
        horus.Hub("xproc_up").send("up")
        while go.recv() is None:
            time.sleep(0.001)
        for i in range(2000):
            hub.send({"i": i, "payload": "x" * (i % 50)})
            if i % 16 == 15:
                # A keep_last(16) topic: stay within the reader's queue, however loaded the
                # machine is, by waiting for the reader to take each batch of 16.
                while ack.recv() is None:
                    time.sleep(0.0002)
        hub.send("done")
        """
    )
    hub = horus.Hub("xproc")
    up = horus.Hub("xproc_up")
    proc = subprocess.Popen([sys.executable, "-c", child])
    got = []
    try:
        deadline = time.monotonic() + 30
        while up.recv() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        go = horus.Hub("xproc_go")
        ack = horus.Hub("xproc_ack")
        go.send("go")
        while time.monotonic() < deadline:
            m = hub.recv()
            if m == "done":
                break
            if m is None:
                time.sleep(0.0001)
                continue
            got.append(m["i"])
            if m["i"] % 16 == 15:
                ack.send(m["i"])
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
    assert hub.get_metrics()["dropped"] == 0
    assert got == list(range(2000))
    for h in (hub, up, go, ack):
        h.close()


def test_a_link_has_one_producer_across_processes(no_leftovers):
    """Issue 13: a second process sending on a Link gets RuntimeError naming the topic and the
    producing pid (two producers used to lose and tear messages silently); once the producer
    is gone (here: killed), the Link takes a new one."""
    import signal
    import time

    child = textwrap.dedent(
        """
        import sys, time, horus
        tx = horus.Link("cmd", "motor")
        tx.send("from the child")
        print("sent", flush=True)
        sys.stdin.readline()
        """
    )
    rx = horus.Link("cmd", "motor")
    proc = subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "sent"
        assert rx.recv() == "from the child"
        with pytest.raises(RuntimeError, match=rf"topic `link/motor/cmd`.*producer \(process {proc.pid}\)"):
            rx.send("from the test")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    time.sleep(0.01)
    rx.send("after the producer died")
    assert rx.recv() == "after the producer died"
    assert rx.get_metrics()["errors"] == 1
    rx.close()
