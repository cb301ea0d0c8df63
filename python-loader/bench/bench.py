"""`./scripts/bench.sh python`: the Python figures, as BENCH lines.

  BENCH <name> value=<v> unit=<u> baseline=<b> ratio=<r> [key=value ...]

- py_tick_*: empty Python node ticks under the runtime's scheduler, in this process (the
  package) and in the `horus` host (the loader plugin); baseline: the same Python call in a
  bare Python loop (what a tick cannot be cheaper than).
- py_msg_*: one-way latency Python -> Python between two processes (half a ping-pong round
  trip), small dict and typed plain-data message; baseline: the same round trip over a
  multiprocessing Pipe.
- py_image_<w>x<h>: one-way latency of a uint8 camera frame (3 channels) between two processes,
  `send(array)` (copied once into the slot) and `get` (a read-only view of the slot, no copy);
  baseline: a memcpy of the frame (np.copyto) in the same run; target (issue 18): 1.5x.
- py_image_loan_<w>x<h>: the same with the frame written in place: `hub.loan` + `send` (no
  copy) and `recv` (a view); baseline: the same memcpy; target (issue 18): <= 20 us.
- py_image_30hz_cpu: 1920x1080x3 frames at 30 Hz from a loaning camera node to an
  input-triggered viewer node in another process (both under horus.Scheduler): the CPU share
  of each process over 3 s; target (issue 18): < 5 % of a core on each side.
- py_async_io: the seed's async I/O benchmark (a 50 ms blocking read per tick): effective Hz of
  a blocking node vs an AsyncHelper node at 100 Hz.
"""

import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import horus
from horus_async_helpers import AsyncHelper


def bench(name, value, unit, baseline, **extra):
    ratio = value / baseline if baseline else 0.0
    tail = "".join(f" {k}={v}" for k, v in extra.items())
    print(f"BENCH {name} value={value:.3f} unit={unit} baseline={baseline:.3f} ratio={ratio:.2f}{tail}", flush=True)


class Empty(horus.Node):
    def tick(self):
        pass


def bare_call_ns(n=1_000_000):
    e = Empty()
    t = time.perf_counter_ns()
    for _ in range(n):
        e.tick()
    return (time.perf_counter_ns() - t) / n


def package_ticks(nodes=10, seconds=2.0):
    s = horus.Scheduler.from_config(horus.SchedulerConfig(tick_rate=100_000))
    for _ in range(nodes):
        s.add(Empty())
    t = time.perf_counter()
    s.run(duration=seconds)
    took = time.perf_counter() - t
    stats = s.get_all_nodes()
    total = sum(n["total_ticks"] for n in stats)
    avg_us = statistics.mean(n["tick_duration_avg_us"] for n in stats)
    return total / took, avg_us


def host_ticks(nodes=10, seconds="2s"):
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "empty.py"), "w") as f:
            f.write("import horus\nclass Empty(horus.Node):\n    def tick(self):\n        pass\n")
        body = "[scheduler]\ntick_rate = 100000\n"
        for i in range(nodes):
            body += f'[[node]]\nname = "e{i}"\npython = "empty.py"\nclass = "Empty"\nvenv = "{root}/.venv"\n'
        with open(os.path.join(d, "m.toml"), "w") as f:
            f.write(body)
        stats = os.path.join(d, "stats.json")
        subprocess.run(
            [f"{root}/target/release/horus", "run", os.path.join(d, "m.toml"), "--duration", seconds,
             "--stats-json", stats],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        with open(stats) as f:
            data = json.load(f)
    total = sum(n["total_ticks"] for n in data)
    avg_us = statistics.mean(n["tick_duration_avg_us"] for n in data)
    return total / float(seconds.rstrip("s")), avg_us


def echo(kind, n, ready):
    """The far process: sends back everything it gets."""
    node = horus.Node()
    ready.set()
    for _ in range(n):
        while (m := node.get(f"bench/{kind}/ping")) is None:
            pass
        node.send(f"bench/{kind}/pong", m)


def timed_rounds(node, kind, msg, n):
    """`n` ping-pongs of `msg` with the echo (already past its first reply): one-way ns each."""
    time.sleep(0.05)
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        node.send(f"bench/{kind}/ping", msg)
        while node.get(f"bench/{kind}/pong") is None:
            pass
        samples.append((time.perf_counter_ns() - t) / 2)
    return samples


def pingpong(kind, msg, n=20_000):
    ready = mp.Event()
    # One more than the rounds: the echo's first read is the message that created the topic,
    # still queued when it attaches; its reply is read before the clock starts, so that each
    # round times its own message (not the previous one's reply, already on its way).
    p = mp.get_context("fork").Process(target=echo, args=(kind, n + 1, ready))
    node = horus.Node()
    node.send(f"bench/{kind}/ping", msg)  # creates the topic with the message's kind
    node.get(f"bench/{kind}/ping")
    p.start()
    ready.wait()
    while node.get(f"bench/{kind}/pong") is None:
        pass
    samples = timed_rounds(node, kind, msg, n)
    p.join(10)
    node._horus_io.close()
    samples.sort()
    warm = samples[n // 10:]
    return statistics.median(warm) / 1000, warm[int(len(warm) * 0.99)] / 1000


def image_pingpong(shape, n=300):
    """One-way latency (half a round trip, µs) of a uint8 frame of `shape` between two processes
    (`send(array)`: one copy into the slot, one out), and a memcpy of it (np.copyto) in this run."""
    kind = "img%dx%d" % (shape[1], shape[0])
    frame = np.random.default_rng(1).integers(0, 256, size=shape, dtype=np.uint8)
    node = horus.Node()
    for topic in ("ping", "pong"):  # both sized for a frame before the echo attaches
        node.send(f"bench/{kind}/{topic}", frame)
        node.get(f"bench/{kind}/{topic}")
    ready = mp.Event()
    p = mp.get_context("fork").Process(target=echo, args=(kind, n + 1, ready))
    p.start()
    ready.wait()
    # The echo's first read is the frame that created the topic (see `pingpong`).
    while node.get(f"bench/{kind}/pong") is None:
        pass
    samples = timed_rounds(node, kind, frame, n)
    p.join(10)
    node._horus_io.close()
    dst = np.empty_like(frame)
    copies = []
    for _ in range(n):
        t = time.perf_counter_ns()
        np.copyto(dst, frame)
        copies.append(time.perf_counter_ns() - t)
    return statistics.median(samples[n // 10:]) / 1000, statistics.median(copies) / 1000


def loan_echo(kind, shape, n, ready):
    """The far process of a loan ping-pong: each frame it gets (a view) is answered with a
    frame written in place (a loan), as a node that processes frames in place would."""
    ping, pong = horus.Hub(f"bench/{kind}/ping"), horus.Hub(f"bench/{kind}/pong")
    ready.set()
    for _ in range(n):
        while (frame := ping.recv()) is None:
            pass
        out = pong.loan(shape, np.uint8)
        out[0, 0, 0] = frame[0, 0, 0]
        del frame
        pong.send(out)


def image_loan_pingpong(shape, n=2000):
    """One-way latency (µs) of a frame of `shape` written in place (loan) and read in place
    (view) between two processes."""
    kind = "loan%dx%d" % (shape[1], shape[0])
    size = int(np.prod(shape)) + 4096
    ping = horus.Hub(f"bench/{kind}/ping", max_size=size, depth=4)
    pong = horus.Hub(f"bench/{kind}/pong", max_size=size, depth=4)
    ready = mp.Event()
    p = mp.get_context("fork").Process(target=loan_echo, args=(kind, shape, n, ready))
    p.start()
    ready.wait()
    samples = []
    for i in range(n):
        t = time.perf_counter_ns()
        frame = ping.loan(shape, np.uint8)
        frame[0, 0, 0] = i & 0xFF
        ping.send(frame)
        while (back := pong.recv()) is None:
            pass
        samples.append((time.perf_counter_ns() - t) / 2)
        assert back[0, 0, 0] == i & 0xFF
        del back
    p.join(10)
    ping.close()
    pong.close()
    return statistics.median(samples[n // 10:]) / 1000, sorted(samples)[int(n * 0.99)] / 1000


FULL_HD = (1080, 1920, 3)


class Camera(horus.Node):
    """A 30 Hz camera that writes each frame in place (it stamps one byte: filling the pixels is
    the driver's work, not the transport's)."""

    def __init__(self):
        super().__init__()
        self.hub = horus.Hub("bench/cam30", max_size=int(np.prod(FULL_HD)) + 4096, depth=4)
        self.n = 0

    def tick(self):
        frame = self.hub.loan(FULL_HD, np.uint8)
        frame[0, 0, 0] = self.n & 0xFF
        self.hub.send(frame)
        self.n += 1


class Viewer(horus.Node):
    """Reads every frame as a view when its input wakes it."""

    def __init__(self):
        super().__init__()
        self.frames = 0

    def tick(self):
        while (frame := self.get("hub/bench/cam30")) is not None:
            self.frames += int(frame.shape == FULL_HD)


def viewer_process(seconds, ready, result):
    s = horus.Scheduler()
    viewer = Viewer()
    s.add(viewer, trigger="input", timeout_ms=1000)
    ready.set()
    start = time.process_time()
    s.run(duration=seconds)
    result.put((time.process_time() - start, viewer.frames))


def frames_30hz_cpu(seconds=3.0):
    """CPU share (%) of the camera's and the viewer's processes, and the frames seen."""
    ctx = mp.get_context("fork")
    ready, result = ctx.Event(), ctx.Queue()
    camera = Camera()  # the topic exists before the viewer first reads it
    p = ctx.Process(target=viewer_process, args=(seconds + 0.5, ready, result))
    p.start()
    ready.wait()
    s = horus.Scheduler()
    s.add(camera, rate_hz=30.0)
    start = time.process_time()
    s.run(duration=seconds)
    camera_cpu = (time.process_time() - start) / seconds * 100
    viewer_cpu, frames = result.get(timeout=30)
    p.join(10)
    camera.hub.close()
    return camera_cpu, viewer_cpu / (seconds + 0.5) * 100, frames, camera.n


def pipe_echo(conn, n):
    for _ in range(n):
        conn.send(conn.recv())


def pipe_pingpong(msg, n=20_000):
    a, b = mp.Pipe()
    p = mp.get_context("fork").Process(target=pipe_echo, args=(b, n))
    p.start()
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        a.send(msg)
        a.recv()
        samples.append((time.perf_counter_ns() - t) / 2)
    p.join(10)
    samples.sort()
    return statistics.median(samples[n // 10:]) / 1000


class BlockingIo(horus.Node):
    def __init__(self):
        super().__init__()
        self.done = 0

    def tick(self):
        time.sleep(0.05)
        self.done += 1


class AsyncIo(horus.Node):
    def __init__(self):
        super().__init__()
        self.helper = AsyncHelper(max_workers=8)
        self.done = 0

    def tick(self):
        if self.helper.pending_count() < 6:
            self.helper.submit("read", time.sleep, 0.05)
        self.done += len(self.helper.check_completed())


def io_hz(node, seconds=2.0):
    s = horus.Scheduler()
    s.add(node)
    s.run(duration=seconds)
    return node.done / seconds


def main():
    bare = bare_call_ns()
    rate, avg = package_ticks()
    bench("py_tick_package", avg * 1000, "ns", bare, target_ns=2000, ticks_per_s=int(rate), nodes=10)
    bench("py_ticks_per_s_package", rate, "ticks/s", 300_000, target=">=300000")
    rate, avg = host_ticks()
    bench("py_tick_host", avg * 1000, "ns", bare, target_ns=2000, ticks_per_s=int(rate), nodes=10)
    bench("py_ticks_per_s_host", rate, "ticks/s", 300_000, target=">=300000")
    small = {"x": 1.0, "y": 2.0, "theta": 0.5, "seq": 7}
    med, p99 = pingpong("dict", small)
    base = pipe_pingpong(small)
    bench("py_msg_dict_median", med, "us", base, p99_us=f"{p99:.3f}", target_us=2, target_p99_us=5, baseline_is="mp.Pipe")
    typed = horus.Attitude(stamp_ns=1, roll=0.1, pitch=0.2, yaw=0.3)
    med, p99 = pingpong("typed", typed)
    bench("py_msg_typed_median", med, "us", base, p99_us=f"{p99:.3f}", target_us=0.4, baseline_is="mp.Pipe_dict")
    for shape in [(480, 640, 3), (720, 1280, 3), (1080, 1920, 3)]:
        one_way, copy = image_pingpong(shape)
        bench(
            "py_image_%dx%d" % (shape[1], shape[0]),
            one_way,
            "us",
            copy,
            baseline_is="np.copyto",
            target_ratio=1.5,
            bytes=shape[0] * shape[1] * shape[2],
        )
        loan, loan_p99 = image_loan_pingpong(shape)
        bench(
            "py_image_loan_%dx%d" % (shape[1], shape[0]),
            loan,
            "us",
            copy,
            baseline_is="np.copyto",
            p99_us=f"{loan_p99:.1f}",
            target_us=20,
            copy_us=f"{one_way:.1f}",
        )
    camera_cpu, viewer_cpu, frames, sent = frames_30hz_cpu()
    bench(
        "py_image_30hz_cpu",
        max(camera_cpu, viewer_cpu),
        "%core",
        5.0,
        camera_pct=f"{camera_cpu:.2f}",
        viewer_pct=f"{viewer_cpu:.2f}",
        frames_sent=sent,
        frames_seen=frames,
        target_pct=5,
    )
    blocking = io_hz(BlockingIo())
    asynchronous = io_hz(AsyncIo())
    bench("py_async_io", asynchronous, "Hz", blocking, blocking_hz=f"{blocking:.1f}", seed="20Hz_vs_98Hz")


if __name__ == "__main__":
    main()
