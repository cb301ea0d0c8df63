"""HORUS from Python: nodes, a supervised scheduler, and shared-memory topics.

The API is the original HORUS Python package's (see docs/python.md)::

    import horus

    class Sensor(horus.Node):
        def tick(self):
            self.send("reading", {"value": 42})

    scheduler = horus.Scheduler()
    scheduler.add(Sensor(), priority=1)
    scheduler.run(duration=1.0)

The scheduler, supervision (circuit breaker, deadlines, watchdog) and topics are the Rust
runtime's own (the same code the ``horus`` host runs); this module adds the Python-facing
pieces: the ``Node`` base class, node naming and ``connect``.
"""

from __future__ import annotations

import atexit
import functools
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Sequence, Union

from . import _config, _horus
from ._config import ConfigKey
from ._horus import (
    Attitude,
    Hub,
    Image,
    Imu,
    Link,
    SchedulerConfig,
    Twist,
    Vector3,
)

__all__ = [
    "Node",
    "ConfigKey",
    "Scheduler",
    "SchedulerConfig",
    "RobotPreset",
    "Hub",
    "Link",
    "Vector3",
    "Imu",
    "Attitude",
    "Twist",
    "Image",
]

__version__ = "0.1.0"

# Global hubs live in a process-wide registry: detach them at exit so their shared memory goes.
atexit.register(_horus._close_global_hubs)


class Node(_horus.Node):
    """Base class of a Python node. Subclass it and implement ``tick``.

    ``tick(self)`` runs once per scheduled cycle (``async def tick`` runs on the runtime's
    asyncio loop, one call at a time, without blocking other nodes). Optional hooks:
    ``init(self)``, ``shutdown(self)``, ``save_state(self)`` / ``restore_state(self, state)``.

    ``self.send(topic, data)`` publishes; ``self.get(topic)`` (alias ``recv``) returns the oldest
    unread message or ``None``; ``self.has_msg(topic)`` tells whether one is waiting.

    ``self.config`` is the node's configuration, a dict the runtime sets before ``init()``: the
    ``config`` table of its ``[[node]]`` in a manifest, or ``Scheduler.add(node, config=...)``
    (``{}`` when none is given).

    ``CONFIG`` (optional, on the class) declares the keys ``config`` accepts, as a dict of
    ``horus.ConfigKey``: ``horus check``, ``horus run`` and ``Scheduler.add`` refuse a config
    with an unknown key, a value of another type or without a required key, and ``self.config``
    gets the declared defaults of the keys left out. Without it, ``config`` is not checked.
    """

    CONFIG: ClassVar[Optional[Mapping[str, ConfigKey]]] = None
    config: Dict[str, Any]

    # No catch-all ``**kwargs``: a misspelt or unsupported keyword (``Node(nmae="x")``) is
    # Python's own ``TypeError`` naming it, not silently dropped.
    def __init__(self, name: Optional[str] = None) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"a node name must be a non-empty str (got {name!r})")
        self.name: Optional[str] = name
        self.config = {}
        self._horus_io = _horus.NodeIo()

    # Not a __getattr__: a class with one has every attribute and method lookup of its objects
    # take CPython's slow path (no specialisation), `send`/`get` included.
    @functools.cached_property
    def _horus_io(self) -> "_horus.NodeIo":
        # Only when the object has none: a subclass whose __init__ did not call
        # super().__init__() gets its topic handles on first use.
        return _horus.NodeIo()

    def _horus_io_or_new(self) -> "_horus.NodeIo":
        return self._horus_io

    def _horus_bind(self, name: str) -> None:
        """Called by the runtime when the node is added (or loaded by the host)."""
        self._horus_io_or_new()
        self.name = name

    def tick(self) -> Any:
        """One cycle of work. Override it."""
        raise NotImplementedError(f"{type(self).__name__} must implement tick(self)")

    # send, get (recv) and has_msg are _horus.Node's, the Rust half of this class: a node's
    # call goes straight to its `_horus_io`, with no Python frame in between.

    def get_metrics(self) -> Dict[str, Dict[str, int]]:
        """Per-topic counters of this node's sends and gets."""
        return self._horus_io_or_new().metrics()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} node {self.name!r}>"


NodeRef = Union[Node, str]


class Scheduler:
    """Runs nodes in priority order at the configured rate, supervised.

    ``Scheduler()`` uses the ``standard`` preset (100 Hz); ``Scheduler.from_config(config)``
    takes a ``SchedulerConfig``.
    """

    def __init__(self, _config: Optional[SchedulerConfig] = None) -> None:
        self._core = (
            _horus.Scheduler() if _config is None else _horus.Scheduler.from_config(_config)
        )
        self._added = 0

    @classmethod
    def from_config(cls, config: SchedulerConfig) -> "Scheduler":
        if not isinstance(config, SchedulerConfig):
            raise TypeError(
                "Scheduler.from_config takes a horus.SchedulerConfig "
                f"(got {type(config).__name__!r}); e.g. horus.SchedulerConfig.standard()"
            )
        return cls(config)

    @property
    def config(self) -> SchedulerConfig:
        """A copy of the scheduler's config."""
        return self._core.config

    def add(
        self,
        node: Node,
        priority: Optional[int] = None,
        logging: bool = False,
        rate_hz: Optional[float] = None,
        config: Optional[Mapping[str, Any]] = None,
        trigger: Union[str, Sequence[str], None] = None,
        timeout_ms: Optional[int] = None,
    ) -> "Scheduler":
        """Adds ``node``. Lower ``priority`` runs first in a cycle (default: order of addition).

        ``config`` becomes the node's ``self.config`` (a dict, ``{}`` without it), set by the
        runtime before ``init()`` runs.

        ``trigger`` (an extension of the original API): ``"rate"`` (the default) ticks the node
        every cycle, or every ``1/rate_hz``; ``"input"`` ticks it as soon as a message arrives on
        any topic it has read with ``get``/``recv``/``has_msg`` (it ticks once at start, which
        registers them); a list of topic names (as the node names them) waits on those only.
        ``rate_hz`` then caps how often it ticks, and ``timeout_ms`` ticks it anyway after that
        long without input.
        """
        if not isinstance(node, Node):
            raise TypeError(
                f"add() takes a horus.Node (got {type(node).__name__!r}); "
                "subclass horus.Node and call super().__init__()"
            )
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
            raise TypeError(f"priority must be an int (got {type(priority).__name__!r})")
        if not callable(getattr(node, "tick", None)):
            raise TypeError(f"{type(node).__name__} has no tick() method")
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict (got {type(config).__name__!r})")
        wrong = _config.problems(type(node), config or {})
        if wrong:
            raise ValueError(f"{type(node).__name__}: " + "; ".join(wrong))
        name = node.name if isinstance(node.__dict__.get("name"), str) else None
        if name is None:
            base = type(node).__name__
            name, i = base, 1
            while self._core._has(name):
                name = f"{base}_{i}"
                i += 1
        self._core._add(
            node,
            name,
            self._added if priority is None else priority,
            bool(logging),
            rate_hz,
            _config.with_defaults(type(node), config or {}),
            trigger,
            timeout_ms,
        )
        node._horus_bind(name)
        self._added += 1
        return self

    def connect(self, src: NodeRef, out: str, dst: NodeRef, in_: str) -> None:
        """After this, what ``src`` sends on ``out`` arrives at ``dst``'s ``in_``, in order."""
        for port in (out, in_):
            if not isinstance(port, str) or not port:
                raise TypeError(f"port names are non-empty strings (got {port!r})")
        a = self._core._node(src)
        b = self._core._node(dst)
        topic = self._core._connection_topic(a.name, out)
        a._horus_io_or_new().remap(out, topic)
        b._horus_io_or_new().remap(in_, topic)

    def run(self, duration: Optional[float] = None, watch: bool = False) -> None:
        """Runs until ``stop()``, Ctrl-C, or ``duration`` seconds.

        ``watch=True`` turns hot reload on: when the file of a node's class changes, the module
        is imported again (a fresh module object), a new instance of the class replaces the
        node's object at a tick boundary, and the state crosses with ``save_state()`` /
        ``restore_state(state)`` if the class defines them. A syntax or import error keeps the
        old code running (``get_node_stats(name)["last_reload_error"]`` says where). Classes
        defined in the running script itself (``__main__``) cannot be imported again: a
        ``RuntimeWarning`` names their nodes once per run.
        """
        if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float))):
            raise TypeError(f"duration is a number of seconds (got {type(duration).__name__!r})")
        self._core.run(None if duration is None else float(duration), bool(watch))

    def stop(self) -> None:
        """Makes ``run()`` return soon. Safe from any thread and from a signal handler."""
        self._core.stop()

    def is_running(self) -> bool:
        return self._core.is_running()

    def get_node_names(self) -> List[str]:
        return self._core.get_node_names()

    def get_node_stats(self, name: str) -> Dict[str, Any]:
        return self._core.get_node_stats(name)

    def get_all_nodes(self) -> List[Dict[str, Any]]:
        return self._core.get_all_nodes()

    def set_node_deadline(self, name: str, deadline_ms: float) -> None:
        self._core.set_node_deadline(name, float(deadline_ms))

    def set_node_watchdog(self, name: str, enabled: bool, timeout_ms: int = 1000) -> None:
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int):
            raise TypeError(f"timeout_ms is an int of milliseconds (got {timeout_ms!r})")
        self._core.set_node_watchdog(name, bool(enabled), timeout_ms)

    def set_node_rate(self, name: str, rate_hz: float) -> None:
        self._core.set_node_rate(name, float(rate_hz))


class RobotPreset:
    """The scheduler presets by name: ``RobotPreset.standard()`` is
    ``SchedulerConfig.standard()``, and so on; ``RobotPreset.get("realtime")`` by string."""

    NAMES = ("standard", "high_performance", "low_latency", "power_saving", "realtime")

    standard = staticmethod(SchedulerConfig.standard)
    high_performance = staticmethod(SchedulerConfig.high_performance)
    low_latency = staticmethod(SchedulerConfig.low_latency)
    power_saving = staticmethod(SchedulerConfig.power_saving)
    realtime = staticmethod(SchedulerConfig.realtime)

    @classmethod
    def get(cls, name: str) -> SchedulerConfig:
        if name not in cls.NAMES:
            raise AttributeError(f"no preset {name!r}; presets: {', '.join(cls.NAMES)}")
        preset: SchedulerConfig = getattr(SchedulerConfig, name)()
        return preset


