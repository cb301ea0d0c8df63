"""The seed's scheduler areas: Node, Scheduler, SchedulerConfig and presets, fault tolerance,
introspection, deadlines, watchdog, stop from threads and signals."""

import os
import signal
import threading
import time

import pytest

import horus


class Counter(horus.Node):
    def __init__(self, name=None):
        super().__init__(name=name)
        self.ticks = 0
        self.inits = 0

    def init(self):
        self.inits += 1

    def tick(self):
        self.ticks += 1


def test_node_names_are_derived_unique_and_ordered(no_leftovers):
    s = horus.Scheduler()
    a, b, c = Counter(), Counter(), Counter(name="explicit")
    s.add(a)
    s.add(b)
    s.add(c)
    assert s.get_node_names() == ["Counter", "Counter_1", "explicit"]
    assert (a.name, b.name) == ("Counter", "Counter_1")
    with pytest.raises(ValueError, match="already"):
        s.add(Counter(name="explicit"))
    with pytest.raises(TypeError, match="horus.Node"):
        s.add(object())
    with pytest.raises(TypeError, match="priority"):
        s.add(Counter(), priority="high")


def test_run_duration_ticks_at_the_standard_rate(no_leftovers):
    s = horus.Scheduler()
    n = Counter()
    s.add(n, priority=1)
    t0 = time.monotonic()
    s.run(duration=0.5)
    took = time.monotonic() - t0
    assert 0.45 < took < 3.0
    stats = s.get_node_stats("Counter")
    assert stats["total_ticks"] == n.ticks, "every tick call is one tick"
    assert 35 <= n.ticks <= 60, n.ticks
    assert n.inits == 1
    assert stats["tick_rate"] == 100.0


@pytest.mark.parametrize(
    "preset,hz", [("power_saving", 30), ("standard", 100), ("high_performance", 200), ("low_latency", 500)]
)
def test_presets_tick_near_their_rate(preset, hz, no_leftovers):
    config = getattr(horus.SchedulerConfig, preset)()
    assert config.tick_rate == hz
    s = horus.Scheduler.from_config(config)
    n = Counter()
    s.add(n)
    s.run(duration=0.6)
    # Shared 2-core CI machines: generous bounds, but a wrong rate is far outside them.
    assert 0.5 * hz * 0.6 <= n.ticks <= 1.2 * hz * 0.6 + 2, (preset, n.ticks)


def test_priority_orders_each_cycle(no_leftovers):
    order = []

    class Rec(horus.Node):
        def __init__(self, tag):
            super().__init__(name=tag)

        def tick(self):
            order.append(self.name)

    s = horus.Scheduler()
    s.add(Rec("late"), priority=5)
    s.add(Rec("early"), priority=1)
    s.add(Rec("middle"), priority=3)
    s.run(duration=0.1)
    assert order[:3] == ["early", "middle", "late"]
    assert order[3:6] == ["early", "middle", "late"]


def test_config_attributes_and_validation():
    c = horus.SchedulerConfig(tick_rate=50.0, circuit_breaker=False, deadline_monitoring=True)
    assert (c.tick_rate, c.circuit_breaker, c.deadline_monitoring) == (50.0, False, True)
    c.max_failures = 7
    c.auto_restart = False
    c.watchdog_enabled = True
    c.watchdog_timeout_ms = 250
    assert (c.max_failures, c.auto_restart, c.watchdog_enabled, c.watchdog_timeout_ms) == (7, False, True, 250)
    with pytest.raises(ValueError, match="tick_rate"):
        horus.SchedulerConfig(tick_rate=0)
    with pytest.raises(ValueError, match="tick_rate"):
        c.tick_rate = -1.0
    with pytest.raises(ValueError, match="10 to 60000"):
        c.watchdog_timeout_ms = 5
    with pytest.raises(AttributeError):
        horus.SchedulerConfig.turbo()
    assert [horus.RobotPreset.get(n).tick_rate for n in horus.RobotPreset.NAMES] == [100, 200, 500, 30, 1000]
    assert horus.RobotPreset.realtime().tick_rate == 1000
    with pytest.raises(TypeError, match="SchedulerConfig"):
        horus.Scheduler.from_config({"tick_rate": 10})


class Failing(horus.Node):
    """Raises on its first `fail_for` ticks, then succeeds."""

    def __init__(self, fail_for):
        super().__init__()
        self.fail_for = fail_for
        self.calls = 0
        self.inits = 0

    def init(self):
        self.inits += 1

    def tick(self):
        self.calls += 1
        if self.calls <= self.fail_for:
            raise RuntimeError(f"sensor glitch {self.calls}")


def test_circuit_opens_after_max_failures_without_restart(capfd, no_leftovers):
    config = horus.SchedulerConfig.standard()
    config.max_failures = 3
    config.auto_restart = False
    s = horus.Scheduler.from_config(config)
    node = Failing(fail_for=10**9)
    healthy = Counter()
    s.add(node)
    s.add(healthy)
    s.run(duration=0.4)
    st = s.get_node_stats("Failing")
    assert node.calls == 3 and st["total_ticks"] == 3 and st["total_failures"] == 3
    assert st["circuit_state"] == "open" and st["consecutive_failures"] == 3
    assert "sensor glitch 3" in st["last_error"]
    assert healthy.ticks >= 25, "the other node keeps its rate"
    err = capfd.readouterr().err
    assert "Traceback" in err and "RuntimeError: sensor glitch 1" in err, err
    assert "test_scheduler.py" in err, "the traceback names the node's file"


def test_auto_restart_reinitialises_the_same_object(no_leftovers):
    config = horus.SchedulerConfig.standard()
    config.max_failures = 2
    config.auto_restart = True
    s = horus.Scheduler.from_config(config)
    node = Failing(fail_for=2)
    s.add(node)
    s.run(duration=1.5)
    st = s.get_node_stats("Failing")
    # Two failures open the circuit; after the backoff init() runs again on the same object
    # and the trial tick succeeds.
    assert st["restarts"] == 1 and node.inits == 2, (st, node.inits)
    assert st["total_failures"] == 2 and st["consecutive_failures"] == 0
    assert st["circuit_state"] == "closed"
    assert node.calls > 20 and st["total_ticks"] == node.calls, "it ticks again after the restart"


def test_introspection_has_every_seed_field(no_leftovers):
    s = horus.Scheduler()
    s.add(Counter(), priority=4, logging=True)
    fields = {
        "name", "total_ticks", "total_failures", "consecutive_failures", "priority", "logging_enabled",
        "tick_rate", "deadline_ms", "deadline_misses", "watchdog_enabled", "watchdog_timeout_ms",
        "watchdog_expired", "circuit_state", "restarts",
    }
    before = s.get_node_stats("Counter")
    assert fields <= before.keys() and before["total_ticks"] == 0 and before["priority"] == 4
    assert before["logging_enabled"] is True
    s.run(duration=0.1)
    nodes = s.get_all_nodes()
    assert [n["name"] for n in nodes] == ["Counter"] and fields <= nodes[0].keys()
    assert nodes[0]["total_ticks"] > 0
    # Issue #13: the quarantine cap's stat; a Scheduler's nodes are inline, never quarantined.
    assert nodes[0]["quarantined_threads"] == 0 and before["quarantined_threads"] == 0
    with pytest.raises(KeyError, match="nosuch"):
        s.get_node_stats("nosuch")


def test_deadline_misses_are_counted(no_leftovers):
    class Slow(horus.Node):
        def tick(self):
            time.sleep(0.012)

    s = horus.Scheduler.from_config(horus.SchedulerConfig.power_saving())
    s.add(Slow())
    s.add(Counter())
    s.set_node_deadline("Slow", 5.0)
    s.set_node_deadline("Counter", 5.0)
    s.run(duration=0.3)
    slow, fast = s.get_node_stats("Slow"), s.get_node_stats("Counter")
    assert slow["deadline_ms"] == 5.0
    assert slow["deadline_misses"] == slow["total_ticks"] > 0
    assert fast["deadline_misses"] == 0
    with pytest.raises(ValueError):
        s.set_node_deadline("Slow", 0)
    with pytest.raises(KeyError):
        s.set_node_deadline("nosuch", 5)


def test_watchdog_expires_on_a_blocked_node_only(no_leftovers):
    class Blocking(horus.Node):
        def __init__(self):
            super().__init__()
            self.n = 0

        def tick(self):
            self.n += 1
            if self.n == 3:
                time.sleep(0.25)

    s = horus.Scheduler()
    s.add(Blocking())
    s.add(Counter())
    s.add(Counter(name="unwatched"))
    s.set_node_watchdog("Blocking", True, 50)
    s.set_node_watchdog("Counter", True, 200)
    s.set_node_watchdog("unwatched", False, 50)
    for bad in (9, 60001, -1):
        with pytest.raises(ValueError, match="10 to 60000"):
            s.set_node_watchdog("Counter", True, bad)
    s.run(duration=0.6)
    b, c, u = (s.get_node_stats(n) for n in ("Blocking", "Counter", "unwatched"))
    assert b["watchdog_enabled"] and b["watchdog_timeout_ms"] == 50 and b["watchdog_expired"] is True
    assert c["watchdog_expired"] is False and u["watchdog_expired"] is False
    assert u["watchdog_enabled"] is False


def test_global_watchdog_from_config(no_leftovers):
    config = horus.SchedulerConfig.standard()
    config.watchdog_enabled = True
    config.watchdog_timeout_ms = 30

    class Stall(horus.Node):
        def tick(self):
            time.sleep(0.08)

    s = horus.Scheduler.from_config(config)
    s.add(Stall())
    s.run(duration=0.2)
    st = s.get_node_stats("Stall")
    assert st["watchdog_enabled"] and st["watchdog_timeout_ms"] == 30 and st["watchdog_expired"]


def test_stop_from_another_thread_returns_promptly(no_leftovers):
    s = horus.Scheduler()
    n = Counter()
    s.add(n)
    spins = [0]
    done = threading.Event()

    def other():
        # The GIL is free while run() waits: this thread makes progress.
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            spins[0] += 1
        s.stop()
        done.set()

    threading.Thread(target=other).start()
    t0 = time.monotonic()
    s.run()
    took = time.monotonic() - t0
    assert done.is_set() and took < 2.0, took
    assert spins[0] > 10_000 and n.ticks > 5
    assert not s.is_running()


def test_stop_from_a_signal_handler(no_leftovers):
    s = horus.Scheduler()
    s.add(Counter())
    old = signal.signal(signal.SIGUSR1, lambda *_: s.stop())
    try:
        threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGUSR1)).start()
        t0 = time.monotonic()
        s.run(duration=10)
        assert time.monotonic() - t0 < 2.0
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_ctrl_c_stops_cleanly(no_leftovers):
    s = horus.Scheduler()
    n = Counter()
    s.add(n)
    threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    t0 = time.monotonic()
    s.run(duration=10)  # returns normally: Ctrl-C is a clean stop
    assert time.monotonic() - t0 < 2.0 and n.ticks > 5
    assert s.get_node_stats("Counter")["total_ticks"] == n.ticks


def test_a_node_error_never_escapes_run(no_leftovers):
    class Broken(horus.Node):
        def tick(self):
            return 1 / 0

    s = horus.Scheduler()
    s.add(Broken())
    s.run(duration=0.1)
    st = s.get_node_stats("Broken")
    assert st["total_failures"] >= 1 and "ZeroDivisionError" in st["last_error"]


def test_init_failure_is_reported_with_the_node(no_leftovers):
    class BadInit(horus.Node):
        def init(self):
            raise ValueError("no device /dev/imu0")

        def tick(self):
            pass

    s = horus.Scheduler()
    s.add(BadInit())
    with pytest.raises(RuntimeError, match="BadInit.*no device /dev/imu0"):
        s.run(duration=0.1)


def test_async_def_tick_runs_without_blocking_others(no_leftovers):
    import asyncio

    class AsyncNode(horus.Node):
        def __init__(self):
            super().__init__()
            self.completed = 0

        async def tick(self):
            await asyncio.sleep(0.05)
            self.completed += 1

    s = horus.Scheduler()
    a, c = AsyncNode(), Counter()
    s.add(a)
    s.add(c)
    s.run(duration=0.6)
    assert 5 <= a.completed <= 13, a.completed
    assert c.ticks >= 40, "the async node's awaits do not slow the others"


def test_async_tick_exception_is_a_failure(no_leftovers):
    class AsyncBad(horus.Node):
        async def tick(self):
            raise OSError("bus timeout")

    s = horus.Scheduler()
    s.add(AsyncBad())
    s.run(duration=0.2)
    st = s.get_node_stats("AsyncBad")
    assert st["total_failures"] >= 1 and "bus timeout" in st["last_error"]


SEED_COMPLETE_SYSTEM = '''
import horus

class SensorNode(horus.Node):
    def __init__(self):
        super().__init__()
        self.n = 0
    def tick(self):
        self.n += 1
        self.send("sensor_out", {"reading": self.n})

class ControlNode(horus.Node):
    def __init__(self):
        super().__init__()
        self.got = 0
    def tick(self):
        while self.get("sensor_in") is not None:
            self.got += 1

# --- the seed's "Complete System Setup", verbatim ---
# 1. Configuration
config = horus.SchedulerConfig.high_performance()
config.deadline_monitoring = True
config.watchdog_enabled = True

# 2. Create scheduler
scheduler = horus.Scheduler.from_config(config)

# 3. Add nodes
sensor_node = SensorNode()  # Your custom node
control_node = ControlNode()

scheduler.add(sensor_node, priority=1)
scheduler.add(control_node, priority=2)

# 4. Configure monitoring
names = scheduler.get_node_names()
scheduler.set_node_deadline(names[0], 20.0)  # 20ms deadline
scheduler.set_node_watchdog(names[1], True, 1000)  # 1s watchdog

# 5. Connect nodes
scheduler.connect(names[0], "sensor_out", names[1], "sensor_in")

# 6. Run
print("running", flush=True)
scheduler.run()

# 7. Analyze results
nodes = scheduler.get_all_nodes()
for node in nodes:
    print(f"{node['name']}: {node['total_ticks']} ticks, "
          f"{node['deadline_misses']} misses")
print("delivered", control_node.got, "of", sensor_node.n)
'''


def test_seed_complete_system_runs_as_written_and_ctrl_c_ends_it(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "system.py"
    script.write_text(SEED_COMPLETE_SYSTEM)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "running"
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "SensorNode:" in out and "ControlNode:" in out and " misses" in out, out
    last = out.strip().splitlines()[-1].split()
    assert last[0] == "delivered" and int(last[1]) == int(last[3]) > 20, out


class ConfigReader(horus.Node):
    """Records what ``self.config`` holds in init() and in each tick."""

    def __init__(self, name=None):
        super().__init__(name=name)
        self.at_init = None
        self.at_tick = []

    def init(self):
        self.at_init = dict(self.config)
        # A node may change its own dict; a restart hands it the config as given again.
        self.config["scratch"] = True

    def tick(self):
        self.at_tick.append(dict(self.config))
        if self.config.get("fail") and len(self.at_tick) <= 2:
            raise RuntimeError("fails twice, then the breaker restarts it")


def test_config_is_set_before_init_and_readable_in_tick(no_leftovers):
    # Keys the runtime once used for its own wiring are ordinary user keys now.
    given = {"gain": 2.5, "python": "mine.py", "class": "Mine", "object": 7, "program": "p"}
    s = horus.Scheduler()
    with_config, without = ConfigReader(name="with"), ConfigReader(name="without")
    assert without.config == {}, "a fresh node has an empty config"
    s.add(with_config, config=given)
    s.add(without)
    given["gain"] = 0.0  # add() keeps its own copy
    s.run(duration=0.2)
    expected = {"gain": 2.5, "python": "mine.py", "class": "Mine", "object": 7, "program": "p"}
    assert with_config.at_init == expected
    assert with_config.at_tick and with_config.at_tick[0] == {**expected, "scratch": True}
    assert without.at_init == {} and without.at_tick
    with pytest.raises(TypeError, match="config must be a dict"):
        s.add(ConfigReader(name="bad"), config=[("gain", 1)])


def test_a_restart_hands_the_config_as_given_again(no_leftovers):
    config = horus.SchedulerConfig.standard()
    config.max_failures = 2
    s = horus.Scheduler.from_config(config)
    node = ConfigReader()
    s.add(node, config={"fail": True, "gain": 1})
    s.run(duration=1.5)
    assert s.get_node_stats("ConfigReader")["restarts"] == 1
    assert node.at_init == {"fail": True, "gain": 1}, "the restart's init saw a fresh copy"
    assert node.at_tick[-1] == {"fail": True, "gain": 1, "scratch": True}


@pytest.mark.parametrize("rate", [1e-300, 1e-19, 0.0, -1.0, 1e6, float("nan"), float("inf")])
def test_rates_outside_a_millihertz_to_100_khz_are_value_errors(rate):
    # Issue #13 (6): such rates used to be accepted and overflow the scheduler's clock
    # arithmetic at run time.
    with pytest.raises(ValueError, match="0.001"):
        horus.SchedulerConfig(tick_rate=rate)
    config = horus.SchedulerConfig.standard()
    with pytest.raises(ValueError, match="0.001"):
        config.tick_rate = rate
    s = horus.Scheduler()
    with pytest.raises(ValueError, match="0.001"):
        s.add(Counter(), rate_hz=rate)
    s.add(Counter(name="ok"))
    with pytest.raises(ValueError, match="0.001"):
        s.set_node_rate("ok", rate)


def test_the_ends_of_the_rate_range_and_huge_durations_run(no_leftovers):
    s = horus.Scheduler.from_config(horus.SchedulerConfig(tick_rate=100_000.0))
    n = Counter()
    s.add(n, rate_hz=0.001)
    s.run(duration=0.1)
    assert n.ticks == 1, "a 0.001 Hz node ticks once at the start"
    slow = horus.Scheduler.from_config(horus.SchedulerConfig(tick_rate=0.001))
    slow.add(Counter())
    # A duration beyond what the clock can add runs until stop(), instead of panicking.
    threading.Timer(0.3, slow.stop).start()
    slow.run(duration=1e300)
