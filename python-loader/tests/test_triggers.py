"""Input-triggered Python nodes (`Scheduler.add(node, trigger=..., timeout_ms=...)`, an extension
of the seed API): a node ticks when a topic it reads has a message, not every cycle."""

import subprocess
import sys
import textwrap
import time

import pytest

import horus

N = 60


class Source(horus.Node):
    """Sends 0..count-1 on `topic`, one per tick (rate-triggered)."""

    def __init__(self, topic, count, name=None):
        super().__init__(name=name)
        self.topic, self.count, self.next = topic, count, 0

    def tick(self):
        if self.next < self.count:
            self.send(self.topic, self.next)
            self.next += 1


class Relay(horus.Node):
    """Forwards everything waiting on `inp` to `out`."""

    def __init__(self, inp, out, name=None):
        super().__init__(name=name)
        self.inp, self.out = inp, out
        self.ticks = 0

    def tick(self):
        self.ticks += 1
        while (m := self.get(self.inp)) is not None:
            self.send(self.out, m)


class Sink(horus.Node):
    """Keeps what arrives on `inp`, and how many ticks found nothing."""

    def __init__(self, inp, name=None):
        super().__init__(name=name)
        self.inp = inp
        self.got = []
        self.empty = 0

    def tick(self):
        n = len(self.got)
        while (m := self.recv(self.inp)) is not None:
            self.got.append(m)
        if len(self.got) == n:
            self.empty += 1


def test_a_chain_ticks_on_input_only(no_leftovers):
    s = horus.Scheduler()
    s.add(Source("trig/py/raw", N, name="source"), priority=0)
    relay = Relay("trig/py/raw", "trig/py/relayed", name="relay")
    sink = Sink("trig/py/relayed", name="sink")
    s.add(relay, priority=1, trigger="input")
    s.add(sink, priority=2, trigger=["trig/py/relayed"])
    s.run(duration=1.2)
    assert sink.got == list(range(N))
    r, k = s.get_node_stats("relay"), s.get_node_stats("sink")
    assert (r["trigger"], k["trigger"]) == ("input", ["trig/py/relayed"])
    assert s.get_node_stats("source")["trigger"] == "rate"
    for st, node in ((r, relay), (k, sink)):
        assert st["total_failures"] == 0
        # One tick at start registers the topics it reads; every other tick is an input's.
        assert st["total_ticks"] == st["wakeups"] + 1, st
        assert N // 2 <= st["wakeups"] <= N, st
        assert st["input_latency_p99_us"] >= 0.0
    # The sink never ticked for nothing after its first tick (about 120 rate cycles went by).
    assert sink.empty <= 1, sink.empty
    assert relay.ticks == r["total_ticks"]


def test_a_topic_that_appears_later_is_watched_then(no_leftovers):
    # The sink reads a topic nobody has created yet: it is watched once it exists (the host
    # looks again with each stats snapshot), and the sink then ticks on its messages.
    class Late(Source):
        def tick(self):
            if time.monotonic() - self.t0 > 0.3:
                super().tick()

    late = Late("trig/py/late", 20, name="late")
    late.t0 = time.monotonic()
    sink = Sink("trig/py/late", name="sink")
    s = horus.Scheduler()
    s.add(late, priority=0)
    s.add(sink, priority=1, trigger="input")
    s.run(duration=1.0)
    assert sink.got == list(range(20))
    st = s.get_node_stats("sink")
    assert st["wakeups"] >= 1 and st["total_ticks"] <= 21, st


def test_timeout_ticks_a_node_without_input(no_leftovers):
    sink = Sink("trig/py/silent", name="sink")
    s = horus.Scheduler()
    s.add(sink, trigger="input", timeout_ms=50)
    s.run(duration=0.6)
    st = s.get_node_stats("sink")
    assert st["wakeups"] == 0
    # One tick at start, then one per 50 ms without input (fewer on a loaded machine).
    assert 5 <= st["total_ticks"] <= 14, st


def test_rate_hz_caps_an_input_triggered_node(no_leftovers):
    class Burst(horus.Node):
        def __init__(self):
            super().__init__(name="burst")
            self.sent = False

        def tick(self):
            if not self.sent:
                for i in range(10):
                    self.send("trig/py/burst", i)
                self.sent = True

    class OnePerTick(Sink):
        def tick(self):
            m = self.get(self.inp)
            if m is not None:
                self.got.append(m)

    sink = OnePerTick("trig/py/burst", name="sink")
    s = horus.Scheduler()
    s.add(Burst(), priority=0)
    s.add(sink, priority=1, trigger="input", rate_hz=20.0)
    t0 = time.monotonic()
    s.run(duration=0.5)
    assert time.monotonic() - t0 < 5
    # 20 Hz for 0.5 s: about 10 ticks, however many messages wait.
    assert 6 <= s.get_node_stats("sink")["total_ticks"] <= 12
    assert sink.got == list(range(len(sink.got)))


def test_trigger_arguments_are_checked():
    s = horus.Scheduler()
    with pytest.raises(ValueError, match='trigger must be "rate", "input" or a list'):
        s.add(Sink("x"), trigger="inputs")
    with pytest.raises(ValueError, match="at least one topic"):
        s.add(Sink("x"), trigger=[])
    with pytest.raises(TypeError, match="trigger must be"):
        s.add(Sink("x"), trigger=5)
    with pytest.raises(ValueError, match="input-triggered"):
        s.add(Sink("x"), timeout_ms=100)
    with pytest.raises(ValueError, match="timeout_ms must be"):
        s.add(Sink("x"), trigger="input", timeout_ms=0)
    with pytest.raises(TypeError, match="timeout_ms"):
        s.add(Sink("x"), trigger="input", timeout_ms="100")
    # Nothing was added by the refused calls.
    assert s.get_node_names() == []
    s.add(Sink("x"), trigger="rate")
    assert s.get_node_stats("Sink")["trigger"] == "rate"


def test_a_relay_in_another_process_is_woken_by_each_message(no_leftovers):
    child = textwrap.dedent(
        """
        import sys, horus
        class Relay(horus.Node):
            def tick(self):
                while (m := self.get("trig/xp/raw")) is not None:
                    self.send("trig/xp/relayed", m)
        horus.Hub("trig/xp/raw")  # exists before the parent starts sending
        s = horus.Scheduler()
        s.add(Relay(name="relay"), trigger="input")
        horus.Hub("trig/xp/up").send("up")
        s.run(duration=float(sys.argv[1]))
        st = s.get_node_stats("relay")
        print(st["wakeups"], st["total_ticks"], st["messages_received"])
        """
    )
    up = horus.Hub("trig/xp/up")
    relayed = horus.Hub("trig/xp/relayed")
    proc = subprocess.Popen([sys.executable, "-c", child, "3.0"], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while up.recv() is None:
            assert time.monotonic() < deadline, "the relay's process did not come up"
            time.sleep(0.005)
        s = horus.Scheduler()
        s.add(Source("trig/xp/raw", N, name="source"), priority=0)
        sink = Sink("trig/xp/relayed", name="sink")
        s.add(sink, priority=1, trigger="input")
        s.run(duration=1.2)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert sink.got == list(range(N))
    wakeups, ticks, received = (int(x) for x in out.split())
    assert received == N
    # Woken once per message (10 ms apart); a busy machine may batch a few.
    assert N * 7 // 10 <= wakeups <= N and ticks == wakeups + 1, out
    for h in (up, relayed):
        h.close()
