"""Thread-based helpers for running slow work without blocking a node's tick.

A node's ``tick()`` must return quickly, so anything slow (I/O, a network
request, a heavy computation) is handed to a worker thread and its result is
picked up on a later tick.  Everything here uses the standard library only and
every public method is safe to call from any thread.

Classes:

* :class:`AsyncHelper` - run named operations on a thread pool, poll results.
* :class:`ConnectionPool` - share a bounded set of lazily created connections.
* :class:`BatchProcessor` - buffer items and process them in batches.
* :class:`RateLimiter` - token bucket limiting calls per second.
* :class:`AsyncAggregator` - collect results of several futures by key.

Typical use inside a node::

    self.async_helper = AsyncHelper(max_workers=4)

    def tick(self, node):
        if self.async_helper.pending_count() < 2:
            self.async_helper.submit("sensor_read", self._read_sensor, sensor_id=1)
        for op_id, result, error in self.async_helper.check_completed():
            ...
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from concurrent.futures import wait as _wait_futures
from types import TracebackType
from typing import Any, Callable, Generic, Hashable, TypeVar

__all__ = [
    "AsyncHelper",
    "ConnectionPool",
    "BatchProcessor",
    "RateLimiter",
    "AsyncAggregator",
]

C = TypeVar("C")


class AsyncHelper:
    """Run operations on a thread pool and collect their outcomes by polling.

    Operation ids need not be unique: the same id may be submitted again while
    an earlier operation with that id is still running (each submission is
    tracked and reported separately).  An operation is *pending* from
    :meth:`submit` until its function returns or raises; after that it waits
    in the completed queue until :meth:`check_completed` hands it out.
    """

    def __init__(self, max_workers: int = 4) -> None:
        """Create a helper with a pool of ``max_workers`` threads (>= 1)."""
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="horus-async"
        )
        self._pending: Counter[Hashable] = Counter()
        self._completed: deque[tuple[Hashable, Any, BaseException | None]] = deque()
        self._succeeded = 0
        self._failed = 0
        self._shutdown = False

    def submit(self, op_id: Hashable, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` on a worker, reported later under ``op_id``.

        Raises RuntimeError after :meth:`shutdown`.
        """
        with self._lock:
            if self._shutdown:
                raise RuntimeError("AsyncHelper has been shut down")
            self._pending[op_id] += 1
            try:
                self._executor.submit(self._run, op_id, fn, args, kwargs)
            except BaseException:
                self._release_pending(op_id)
                raise

    def _run(
        self,
        op_id: Hashable,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # reported to the caller, never re-raised here
            error = exc
        with self._lock:
            self._release_pending(op_id)
            if error is None:
                self._succeeded += 1
            else:
                self._failed += 1
            self._completed.append((op_id, result, error))

    def _release_pending(self, op_id: Hashable) -> None:
        # Caller holds self._lock.
        self._pending[op_id] -= 1
        if self._pending[op_id] <= 0:
            del self._pending[op_id]

    def check_completed(self) -> list[tuple[Hashable, Any, BaseException | None]]:
        """Return ``(op_id, result, error)`` for each operation finished since the last call.

        ``error`` is the raised exception (and ``result`` is None) or None on success.
        Each operation is returned exactly once, in order of completion.
        """
        with self._lock:
            done = list(self._completed)
            self._completed.clear()
        return done

    def pending_count(self) -> int:
        """Number of submitted operations that have not finished yet."""
        with self._lock:
            return sum(self._pending.values())

    def is_pending(self, op_id: Hashable) -> bool:
        """True if any operation submitted under ``op_id`` has not finished yet."""
        with self._lock:
            return self._pending.get(op_id, 0) > 0

    def get_stats(self) -> dict[str, int]:
        """Return ``pending``, ``completed`` and ``failed`` counts.

        ``completed`` and ``failed`` count operations that have *finished*
        (succeeded or raised, respectively) since creation, whether or not
        :meth:`check_completed` has collected them yet.
        """
        with self._lock:
            return {
                "pending": sum(self._pending.values()),
                "completed": self._succeeded,
                "failed": self._failed,
            }

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting work; with ``wait``, block until running operations finish.

        Operations already submitted still run; their outcomes stay available
        to :meth:`check_completed`.  Calling it again is harmless.
        """
        with self._lock:
            self._shutdown = True
        self._executor.shutdown(wait=wait)

    def __enter__(self) -> AsyncHelper:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(wait=True)


class ConnectionPool(Generic[C]):
    """A bounded pool of reusable connections used from worker threads.

    Connections are created lazily by ``factory()`` (never more than
    ``max_connections`` in total) and reused.  Each operation runs on a worker
    thread; when every connection is busy the worker waits for one to be
    returned, so :meth:`execute_async` itself never blocks.
    """

    def __init__(self, factory: Callable[[], C], max_connections: int = 4) -> None:
        """Create an empty pool; raises ValueError if ``max_connections < 1``."""
        if max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {max_connections}")
        self._factory = factory
        self._max = max_connections
        self._cond = threading.Condition()
        self._idle: list[C] = []
        self._all: list[C] = []
        self._reserved = 0  # connections created or being created
        self._ok = 0
        self._failed = 0
        self._shutdown = False
        self._executor = ThreadPoolExecutor(
            max_workers=max_connections, thread_name_prefix="horus-pool"
        )

    def execute_async(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(conn, *args, **kwargs)`` with a pooled connection on a worker.

        Returns a Future holding fn's result or exception.  Raises RuntimeError
        after :meth:`shutdown`.
        """
        with self._cond:
            if self._shutdown:
                raise RuntimeError("ConnectionPool has been shut down")
            return self._executor.submit(self._run, fn, args, kwargs)

    def _acquire(self) -> C:
        with self._cond:
            while not self._idle and self._reserved >= self._max:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._reserved += 1
        try:
            conn = self._factory()
        except BaseException:
            with self._cond:
                self._reserved -= 1
                self._cond.notify()
            raise
        with self._cond:
            self._all.append(conn)
        return conn

    def _release(self, conn: C) -> None:
        with self._cond:
            self._idle.append(conn)
            self._cond.notify()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            conn = self._acquire()
        except BaseException:
            with self._cond:
                self._failed += 1
            raise
        try:
            result = fn(conn, *args, **kwargs)
        except BaseException:
            with self._cond:
                self._failed += 1
            raise
        finally:
            self._release(conn)
        with self._cond:
            self._ok += 1
        return result

    def get_stats(self) -> dict[str, int]:
        """Return pool counters.

        Keys: ``max_connections``; ``available_connections`` = idle
        connections plus slots not yet created (how many operations could
        start right now); ``total_operations`` = successful operations;
        ``failed_operations`` = operations where fn (or the factory) raised.
        """
        with self._cond:
            return {
                "max_connections": self._max,
                "available_connections": len(self._idle) + (self._max - self._reserved),
                "total_operations": self._ok,
                "failed_operations": self._failed,
            }

    def shutdown(self) -> None:
        """Wait for submitted operations, then close every connection.

        Calls ``conn.close()`` on each connection that has one.  Every
        connection is closed even if some ``close()`` raises; the first such
        error is re-raised afterwards.  Calling it again is harmless.
        """
        with self._cond:
            self._shutdown = True
        self._executor.shutdown(wait=True)
        with self._cond:
            conns = self._all
            self._all = []
            self._idle = []
        first_error: BaseException | None = None
        for conn in conns:
            close = getattr(conn, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as exc:
                    if first_error is None:
                        first_error = exc
        if first_error is not None:
            raise first_error


class BatchProcessor:
    """Buffer items and hand them to ``process_batch`` in batches on a worker thread.

    Call :meth:`add` as items arrive and :meth:`tick` regularly.  A flush
    (triggered by size, time, :meth:`force_flush` or :meth:`shutdown`) takes
    *everything* buffered and splits it into batches of at most ``batch_size``
    items.  Batches are processed one at a time, in the order items were added.
    """

    def __init__(
        self,
        batch_size: int,
        flush_interval: float,
        process_batch: Callable[[list[Any]], Any],
    ) -> None:
        """Raises ValueError if ``batch_size < 1`` or ``flush_interval < 0``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if flush_interval < 0:
            raise ValueError(f"flush_interval must be >= 0, got {flush_interval}")
        self._batch_size = batch_size
        self._flush_interval = flush_interval
        self._process_batch = process_batch
        self._lock = threading.Lock()
        self._buffer: list[Any] = []
        self._first_added: float | None = None
        self._has_result = False
        self._result: Any = None
        self._total_batches = 0
        self._total_items = 0
        self._failed_batches = 0
        self._shutdown = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="horus-batch")

    def add(self, item: Any) -> None:
        """Buffer ``item``; raises RuntimeError after :meth:`shutdown`."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("BatchProcessor has been shut down")
            if not self._buffer:
                self._first_added = time.monotonic()
            self._buffer.append(item)

    def tick(self) -> None:
        """Flush if ``batch_size`` items are buffered or ``flush_interval`` has elapsed."""
        with self._lock:
            if not self._buffer or self._shutdown:
                return
            full = len(self._buffer) >= self._batch_size
            assert self._first_added is not None
            due = time.monotonic() - self._first_added >= self._flush_interval
            if full or due:
                self._flush_locked()

    def force_flush(self) -> None:
        """Flush whatever is buffered now (processing happens on the worker)."""
        with self._lock:
            if not self._shutdown:
                self._flush_locked()

    def _flush_locked(self) -> None:
        # Caller holds self._lock; submitting under it keeps batches in order.
        items, self._buffer = self._buffer, []
        self._first_added = None
        for start in range(0, len(items), self._batch_size):
            self._executor.submit(self._run, items[start : start + self._batch_size])

    def _run(self, batch: list[Any]) -> None:
        try:
            result = self._process_batch(batch)
        except Exception:
            with self._lock:
                self._failed_batches += 1
                self._has_result = False
                self._result = None
            return
        with self._lock:
            self._total_batches += 1
            self._total_items += len(batch)
            self._has_result = True
            self._result = result

    def check_completed(self) -> Any:
        """Return the most recently finished batch's result once, else None.

        Returns None if no batch finished since the last call, or if the most
        recently finished batch raised (earlier uncollected results are
        superseded by later batches).
        """
        with self._lock:
            result = self._result if self._has_result else None
            self._has_result = False
            self._result = None
            return result

    def get_stats(self) -> dict[str, int]:
        """Return ``buffer_size``, ``total_batches``, ``total_items``, ``failed_batches``.

        ``total_batches`` / ``total_items`` count batches (and their items)
        processed successfully; ``failed_batches`` counts batches that raised.
        """
        with self._lock:
            return {
                "buffer_size": len(self._buffer),
                "total_batches": self._total_batches,
                "total_items": self._total_items,
                "failed_batches": self._failed_batches,
            }

    def shutdown(self, wait: bool = True) -> None:
        """Flush remaining items and stop; with ``wait``, block until all batches are done."""
        with self._lock:
            if not self._shutdown:
                self._flush_locked()
                self._shutdown = True
        self._executor.shutdown(wait=wait)


class RateLimiter:
    """Token bucket allowing at most ``max_rate`` calls per second, no bursts.

    The bucket holds one token and starts full, so the first call is allowed
    and later ones are spaced at least ``1 / max_rate`` seconds apart.
    """

    _EPSILON = 1e-9  # absorbs float rounding when a caller sleeps exactly wait_time()

    def __init__(self, max_rate: float) -> None:
        """Raises ValueError if ``max_rate <= 0``."""
        if max_rate <= 0:
            raise ValueError(f"max_rate must be > 0, got {max_rate}")
        self._rate = float(max_rate)
        self._lock = threading.Lock()
        self._tokens = 1.0
        self._last = time.monotonic()
        self._allowed = 0
        self._rejected = 0

    def _refill_locked(self) -> None:
        now = time.monotonic()
        self._tokens = min(1.0, self._tokens + (now - self._last) * self._rate)
        self._last = now

    def allow(self) -> bool:
        """Take a token if one is available; return whether the call may proceed."""
        with self._lock:
            self._refill_locked()
            if self._tokens >= 1.0 - self._EPSILON:
                self._tokens = max(0.0, self._tokens - 1.0)
                self._allowed += 1
                return True
            self._rejected += 1
            return False

    def wait_time(self) -> float:
        """Seconds until a token is available (0.0 if one is available now)."""
        with self._lock:
            self._refill_locked()
            missing = 1.0 - self._tokens
            if missing <= self._EPSILON:
                return 0.0
            return missing / self._rate

    def get_stats(self) -> dict[str, float | int]:
        """Return ``max_rate``, ``total_allowed`` and ``total_rejected``."""
        with self._lock:
            return {
                "max_rate": self._rate,
                "total_allowed": self._allowed,
                "total_rejected": self._rejected,
            }


class AsyncAggregator:
    """Collect ``concurrent.futures.Future`` objects by key and read their results.

    Adding a key that is already present replaces its future.
    """

    def __init__(self, timeout: float | None = None) -> None:
        """``timeout`` is the default for :meth:`wait` (None waits indefinitely)."""
        self._timeout = timeout
        self._lock = threading.Lock()
        self._futures: dict[Hashable, Future[Any]] = {}

    def add(self, key: Hashable, future: Future[Any]) -> None:
        """Track ``future`` under ``key``."""
        with self._lock:
            self._futures[key] = future

    def _snapshot(self) -> dict[Hashable, Future[Any]]:
        with self._lock:
            return dict(self._futures)

    def has_pending(self) -> bool:
        """True if any tracked future has not finished."""
        return any(not f.done() for f in self._snapshot().values())

    def all_completed(self) -> bool:
        """True if every tracked future has finished (also True when none are tracked)."""
        return all(f.done() for f in self._snapshot().values())

    def get_completed(self) -> dict[Hashable, Any]:
        """Return ``key -> result`` for futures that finished successfully."""
        out: dict[Hashable, Any] = {}
        for key, fut in self._snapshot().items():
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                out[key] = fut.result()
        return out

    def get_all_results(self) -> dict[Hashable, Any]:
        """Return results of all finished futures; failures map to ``{"error": str(exc)}``.

        Unfinished futures are left out; a cancelled one maps to ``{"error": "cancelled"}``.
        """
        out: dict[Hashable, Any] = {}
        for key, fut in self._snapshot().items():
            if not fut.done():
                continue
            try:
                exc = fut.exception()
            except CancelledError:
                out[key] = {"error": "cancelled"}
                continue
            out[key] = {"error": str(exc)} if exc is not None else fut.result()
        return out

    def wait(self, timeout: float | None = None) -> bool:
        """Block until all tracked futures finish; return True if they did in time.

        ``timeout=None`` uses the constructor's timeout (and if that is also
        None, waits indefinitely).
        """
        effective = self._timeout if timeout is None else timeout
        futures = list(self._snapshot().values())
        if not futures:
            return True
        _, not_done = _wait_futures(futures, timeout=effective)
        return not not_done

    def clear(self) -> None:
        """Forget every tracked future (they are not cancelled)."""
        with self._lock:
            self._futures.clear()
