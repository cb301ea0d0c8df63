"""Tests for horus_async_helpers (pure Python, standard library only)."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

import horus_async_helpers  # noqa: E402
from horus_async_helpers import (  # noqa: E402
    AsyncAggregator,
    AsyncHelper,
    BatchProcessor,
    ConnectionPool,
    RateLimiter,
)

T = TypeVar("T")

WAIT = 2.0  # upper bound for any Event wait; tests normally finish far sooner


def wait_until(pred: Any, timeout: float = WAIT) -> bool:
    """Poll ``pred`` until true or ``timeout``; return its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.001)
    return bool(pred())


def test_all_lists_the_five_classes() -> None:
    assert set(horus_async_helpers.__all__) == {
        "AsyncHelper",
        "ConnectionPool",
        "BatchProcessor",
        "RateLimiter",
        "AsyncAggregator",
    }


# --------------------------------------------------------------------------- AsyncHelper


def test_async_helper_reports_results_and_errors_once() -> None:
    with AsyncHelper(max_workers=2) as helper:
        boom = RuntimeError("boom")

        def fail() -> None:
            raise boom

        helper.submit("add", lambda a, b: a + b, 2, b=3)
        helper.submit("fail", fail)
        collected: list[tuple[Any, Any, Any]] = []

        def collect() -> bool:
            collected.extend(helper.check_completed())
            return len(collected) == 2

        assert wait_until(collect)
    by_id = {op: (res, err) for op, res, err in collected}
    assert by_id["add"] == (5, None)
    assert by_id["fail"] == (None, boom)
    assert helper.check_completed() == []
    assert helper.get_stats() == {"pending": 0, "completed": 1, "failed": 1}


def test_async_helper_pending_tracking_and_duplicate_ids() -> None:
    release = threading.Event()
    helper = AsyncHelper(max_workers=4)
    try:
        helper.submit("sensor_read", release.wait, WAIT)
        helper.submit("sensor_read", release.wait, WAIT)  # duplicate ids are allowed
        helper.submit("other", release.wait, WAIT)
        assert helper.pending_count() == 3
        assert helper.is_pending("sensor_read")
        assert not helper.is_pending("never")
        assert helper.get_stats()["pending"] == 3
        release.set()
        assert wait_until(lambda: helper.pending_count() == 0)
        assert not helper.is_pending("sensor_read")
        done = helper.check_completed()
        assert sorted(str(op) for op, _, _ in done) == ["other", "sensor_read", "sensor_read"]
        assert all(err is None and res is True for _, res, err in done)
    finally:
        release.set()
        helper.shutdown()


def test_async_helper_finished_but_uncollected_counts_in_stats() -> None:
    helper = AsyncHelper(max_workers=1)
    helper.submit("x", lambda: 1)
    helper.shutdown(wait=True)
    # "completed" counts finished operations, collected or not.
    assert helper.get_stats() == {"pending": 0, "completed": 1, "failed": 0}
    assert helper.check_completed() == [("x", 1, None)]


def test_async_helper_seed_usage_pattern() -> None:
    class Node:
        def __init__(self) -> None:
            self.async_helper = AsyncHelper(max_workers=4)
            self.readings: list[Any] = []

        def _read_sensor(self, sensor_id: int) -> dict[str, int]:
            return {"id": sensor_id, "value": 42}

        def tick(self) -> None:
            if self.async_helper.pending_count() < 2:
                self.async_helper.submit("sensor_read", self._read_sensor, sensor_id=1)
            for op_id, result, error in self.async_helper.check_completed():
                assert op_id == "sensor_read" and error is None
                self.readings.append(result)

    node = Node()
    try:
        deadline = time.monotonic() + WAIT
        while len(node.readings) < 5 and time.monotonic() < deadline:
            node.tick()
            time.sleep(0.001)
        stats = node.async_helper.get_stats()
        assert len(node.readings) >= 5
        assert node.readings[0] == {"id": 1, "value": 42}
        assert stats["completed"] >= len(node.readings)
        assert stats["pending"] <= 2
    finally:
        node.async_helper.shutdown()


def test_async_helper_concurrent_submitters_collect_everything_once() -> None:
    helper = AsyncHelper(max_workers=4)
    start = threading.Barrier(8)

    def submitter(t: int) -> None:
        start.wait(timeout=WAIT)
        for i in range(50):
            helper.submit((t, i), lambda v: v * 2, t * 1000 + i)

    threads = [threading.Thread(target=submitter, args=(t,)) for t in range(8)]
    collected: list[tuple[Any, Any, Any]] = []
    for th in threads:
        th.start()
    # Collect concurrently with submission as well as afterwards.
    while any(th.is_alive() for th in threads):
        collected.extend(helper.check_completed())
    for th in threads:
        th.join(WAIT)
    helper.shutdown(wait=True)
    collected.extend(helper.check_completed())

    assert len(collected) == 400
    ids = [op for op, _, _ in collected]
    assert len(set(ids)) == 400
    assert all(err is None and res == (op[0] * 1000 + op[1]) * 2 for op, res, err in collected)
    assert helper.get_stats() == {"pending": 0, "completed": 400, "failed": 0}


def test_async_helper_rejects_after_shutdown() -> None:
    helper = AsyncHelper()
    helper.shutdown()
    helper.shutdown()  # idempotent
    with pytest.raises(RuntimeError):
        helper.submit("x", lambda: None)
    assert helper.pending_count() == 0
    with pytest.raises(ValueError):
        AsyncHelper(max_workers=0)


# --------------------------------------------------------------------------- ConnectionPool


class FakeConn:
    """Connection that tracks how many instances are in use at once."""

    lock = threading.Lock()

    def __init__(self, tracker: dict[str, int]) -> None:
        self.tracker = tracker
        self.closed = False
        self.uses = 0

    def run(self, body: Callable[[], T]) -> T:
        """Call ``body()`` while this connection counts as in use."""
        with self.lock:
            self.tracker["in_use"] += 1
            self.tracker["peak"] = max(self.tracker["peak"], self.tracker["in_use"])
        try:
            self.uses += 1
            return body()
        finally:
            with self.lock:
                self.tracker["in_use"] -= 1

    def use(self, value: Any) -> Any:
        return self.run(lambda: value)

    def close(self) -> None:
        self.closed = True


def make_pool(
    max_connections: int,
) -> tuple[ConnectionPool[FakeConn], list[FakeConn], dict[str, int]]:
    tracker = {"in_use": 0, "peak": 0}
    created: list[FakeConn] = []
    created_lock = threading.Lock()

    def factory() -> FakeConn:
        conn = FakeConn(tracker)
        with created_lock:
            created.append(conn)
        return conn

    return ConnectionPool(factory, max_connections=max_connections), created, tracker


def test_pool_reuses_connections_lazily() -> None:
    pool, created, _ = make_pool(4)
    assert created == []  # lazy
    assert pool.get_stats() == {
        "max_connections": 4,
        "available_connections": 4,
        "total_operations": 0,
        "failed_operations": 0,
    }
    for i in range(5):
        assert pool.execute_async(lambda c, v: c.use(v), i).result(WAIT) == i
    assert len(created) == 1  # sequential use needs one connection
    assert created[0].uses == 5
    stats = pool.get_stats()
    assert stats["total_operations"] == 5
    assert stats["available_connections"] == 4  # 1 idle + 3 not yet created
    pool.shutdown()


def test_pool_never_exceeds_max_connections() -> None:
    pool, created, tracker = make_pool(3)
    all_busy = threading.Event()

    def op(conn: FakeConn, v: int) -> int:
        # Hold each connection until three are in use at once, so the pool is
        # saturated while the remaining operations queue up behind it.
        def body() -> int:
            with FakeConn.lock:
                if tracker["in_use"] >= 3:
                    all_busy.set()
            all_busy.wait(WAIT)
            time.sleep(0.002)
            return v

        return conn.run(body)

    futures = [pool.execute_async(op, i) for i in range(20)]
    assert [f.result(WAIT) for f in futures] == list(range(20))
    assert all_busy.is_set()
    assert tracker["peak"] == 3
    assert len(created) <= 3
    assert pool.get_stats()["total_operations"] == 20
    pool.shutdown()


def test_pool_waits_for_a_busy_connection() -> None:
    pool, created, _ = make_pool(1)
    release = threading.Event()
    first = pool.execute_async(lambda c: release.wait(WAIT))
    assert wait_until(lambda: pool.get_stats()["available_connections"] == 0)
    second = pool.execute_async(lambda c: "second")  # must not block the caller
    assert not second.done()
    release.set()
    assert first.result(WAIT) is True
    assert second.result(WAIT) == "second"
    assert len(created) == 1
    pool.shutdown()


def test_pool_returns_connection_when_fn_raises() -> None:
    pool, created, _ = make_pool(1)

    def bad(conn: FakeConn) -> None:
        raise ValueError("bad op")

    fut = pool.execute_async(bad)
    with pytest.raises(ValueError, match="bad op"):
        fut.result(WAIT)
    assert pool.execute_async(lambda c: c).result(WAIT) is created[0]
    assert len(created) == 1
    assert pool.get_stats() == {
        "max_connections": 1,
        "available_connections": 1,
        "total_operations": 1,
        "failed_operations": 1,
    }
    pool.shutdown()


def test_pool_shutdown_waits_then_closes_all() -> None:
    pool, created, _ = make_pool(3)
    started = threading.Barrier(4)

    def op(conn: FakeConn) -> bool:
        started.wait(WAIT)  # force three distinct connections
        time.sleep(0.02)
        return conn.closed

    futures = [pool.execute_async(op) for _ in range(3)]
    started.wait(WAIT)
    pool.shutdown()
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == [False, False, False]  # closed only afterwards
    assert len(created) == 3
    assert all(c.closed for c in created)
    with pytest.raises(RuntimeError):
        pool.execute_async(lambda c: None)


def test_pool_handles_connections_without_close_and_bad_size() -> None:
    pool: ConnectionPool[object] = ConnectionPool(object, max_connections=2)
    assert pool.execute_async(lambda c: type(c)).result(WAIT) is object
    pool.shutdown()  # object() has no close(): fine
    with pytest.raises(ValueError):
        ConnectionPool(object, max_connections=0)


# --------------------------------------------------------------------------- BatchProcessor


class Recorder:
    """process_batch that records batches and signals after each one."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.lock = threading.Lock()
        self.event = threading.Event()

    def __call__(self, batch: list[Any]) -> int:
        with self.lock:
            self.batches.append(list(batch))
        self.event.set()
        return sum(batch)


def test_batch_size_triggered_flush() -> None:
    rec = Recorder()
    bp = BatchProcessor(batch_size=3, flush_interval=60.0, process_batch=rec)
    bp.add(1)
    bp.add(2)
    bp.tick()
    assert bp.get_stats()["buffer_size"] == 2  # neither size nor time reached
    bp.add(3)
    bp.tick()
    assert rec.event.wait(WAIT)
    assert wait_until(lambda: bp.get_stats()["total_batches"] == 1)
    assert rec.batches == [[1, 2, 3]]
    assert bp.check_completed() == 6
    assert bp.check_completed() is None  # each result once
    assert bp.get_stats() == {
        "buffer_size": 0,
        "total_batches": 1,
        "total_items": 3,
        "failed_batches": 0,
    }
    bp.shutdown()


def test_batch_time_triggered_flush() -> None:
    rec = Recorder()
    bp = BatchProcessor(batch_size=100, flush_interval=0.05, process_batch=rec)
    bp.add(7)
    bp.tick()
    assert not rec.event.wait(0.01)
    time.sleep(0.06)
    bp.tick()
    assert rec.event.wait(WAIT)
    assert rec.batches == [[7]]
    assert wait_until(lambda: bp.get_stats()["total_items"] == 1)
    bp.shutdown()


def test_batch_split_and_order_preserved() -> None:
    rec = Recorder()
    bp = BatchProcessor(batch_size=4, flush_interval=60.0, process_batch=rec)
    for i in range(10):
        bp.add(i)
    bp.tick()  # 10 >= 4: flushes everything, split into batches of at most 4
    for i in range(10, 13):
        bp.add(i)
    bp.force_flush()
    bp.shutdown(wait=True)
    assert rec.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [10, 11, 12]]
    assert all(len(b) <= 4 for b in rec.batches)
    assert bp.check_completed() == 10 + 11 + 12  # only the last finished batch
    assert bp.get_stats() == {
        "buffer_size": 0,
        "total_batches": 4,
        "total_items": 13,
        "failed_batches": 0,
    }


def test_batch_shutdown_flushes_remainder() -> None:
    rec = Recorder()
    bp = BatchProcessor(batch_size=10, flush_interval=60.0, process_batch=rec)
    bp.add("a")
    bp.add("b")
    bp.shutdown(wait=True)
    assert rec.batches == [["a", "b"]]
    with pytest.raises(RuntimeError):
        bp.add("c")
    bp.tick()
    bp.force_flush()
    bp.shutdown()  # idempotent


def test_batch_errors_are_counted_not_raised() -> None:
    def process(batch: list[int]) -> int:
        if 0 in batch:
            raise ValueError("zero")
        return len(batch)

    bp = BatchProcessor(batch_size=2, flush_interval=60.0, process_batch=process)
    bp.add(0)
    bp.add(1)
    bp.tick()
    assert wait_until(lambda: bp.get_stats()["failed_batches"] == 1)
    assert bp.check_completed() is None
    bp.add(5)
    bp.force_flush()
    assert wait_until(lambda: bp.get_stats()["total_batches"] == 1)
    assert bp.check_completed() == 1  # the worker survived the error
    bp.shutdown()
    assert bp.get_stats() == {
        "buffer_size": 0,
        "total_batches": 1,
        "total_items": 1,
        "failed_batches": 1,
    }


def test_batch_validation() -> None:
    with pytest.raises(ValueError):
        BatchProcessor(0, 1.0, lambda b: None)
    with pytest.raises(ValueError):
        BatchProcessor(1, -1.0, lambda b: None)


# --------------------------------------------------------------------------- RateLimiter


def test_rate_limiter_single_token_and_wait_time() -> None:
    rl = RateLimiter(max_rate=10)
    assert rl.wait_time() == 0.0
    assert rl.allow() is True
    assert rl.allow() is False
    wait = rl.wait_time()
    assert 0.08 <= wait <= 0.1
    time.sleep(wait)
    assert rl.allow() is True
    assert rl.get_stats() == {"max_rate": 10, "total_allowed": 2, "total_rejected": 1}


def test_rate_limiter_no_burst_after_idle() -> None:
    rl = RateLimiter(max_rate=50)
    time.sleep(0.1)  # would be 5 tokens without the capacity of 1
    assert rl.allow() is True
    assert rl.allow() is False


def test_rate_limiter_rate_over_half_a_second() -> None:
    rl = RateLimiter(max_rate=20)
    allowed = 0
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        if rl.allow():
            allowed += 1
        time.sleep(0.001)
    assert 10 <= allowed <= 12


def test_rate_limiter_concurrent_never_exceeds_bucket() -> None:
    rate = 10.0
    rl = RateLimiter(max_rate=rate)
    counts = [0] * 4
    start = threading.Barrier(4)
    t0 = time.monotonic()
    duration = 0.25

    def worker(i: int) -> None:
        start.wait(WAIT)
        end = t0 + duration
        while time.monotonic() < end:
            if rl.allow():
                counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(WAIT)
    elapsed = time.monotonic() - t0
    total = sum(counts)
    # One initial token plus at most rate * elapsed refills.
    assert 1 <= total <= 1 + int(rate * elapsed)
    stats = rl.get_stats()
    assert stats["total_allowed"] == total
    assert stats["total_rejected"] > 0


def test_rate_limiter_validation() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(-1.0)


# --------------------------------------------------------------------------- AsyncAggregator


def test_aggregator_success_failure_and_pending() -> None:
    agg = AsyncAggregator()
    ok: Future[Any] = Future()
    bad: Future[Any] = Future()
    slow: Future[Any] = Future()
    agg.add("ok", ok)
    agg.add("bad", bad)
    agg.add("slow", slow)
    assert agg.has_pending() and not agg.all_completed()
    ok.set_result(1)
    bad.set_exception(ValueError("nope"))
    assert agg.get_completed() == {"ok": 1}
    assert agg.get_all_results() == {"ok": 1, "bad": {"error": "nope"}}
    assert agg.wait(timeout=0.02) is False
    slow.set_result("done")
    assert agg.wait(timeout=0.02) is True
    assert not agg.has_pending() and agg.all_completed()
    assert agg.get_all_results() == {"ok": 1, "bad": {"error": "nope"}, "slow": "done"}
    agg.clear()
    assert agg.get_completed() == {} and agg.all_completed() and not agg.has_pending()
    assert agg.wait() is True  # nothing to wait for


def test_aggregator_with_real_workers_and_default_timeout() -> None:
    release = threading.Event()
    with ThreadPoolExecutor(max_workers=2) as ex:
        agg = AsyncAggregator(timeout=0.05)
        agg.add("fast", ex.submit(lambda: 3))
        agg.add("blocked", ex.submit(release.wait, WAIT))
        t0 = time.monotonic()
        assert agg.wait() is False  # constructor timeout applies
        assert time.monotonic() - t0 < 0.5
        assert agg.get_completed() == {"fast": 3}
        release.set()
        assert agg.wait(timeout=WAIT) is True
        assert agg.get_completed() == {"fast": 3, "blocked": True}


def test_aggregator_cancelled_future() -> None:
    agg = AsyncAggregator()
    fut: Future[Any] = Future()
    assert fut.cancel()
    agg.add("c", fut)
    assert agg.all_completed()
    assert agg.get_completed() == {}
    assert agg.get_all_results() == {"c": {"error": "cancelled"}}
