"""Type stub for ``horus._horus``, the pyo3 extension module (python-loader/src/*.rs).

Every class but ``Node`` (the base of ``horus.Node``) is final (none other can be subclassed
at runtime). ``horus/__init__.py`` re-exports
``SchedulerConfig``, ``Hub``, ``Link`` and the message classes, and wraps ``Scheduler``.
"""

import os
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Union, final

__all__ = [
    "Scheduler",
    "SchedulerConfig",
    "NodeIo",
    "Node",
    "Hub",
    "Link",
    "Vector3",
    "Attitude",
    "Imu",
    "Twist",
    "Image",
    "ABI_VERSION",
    "_close_global_hubs",
    "_decode_payload",
]

ABI_VERSION: int
"""The plugin ABI version this library speaks."""

# --- scheduler.rs -----------------------------------------------------------------------------

@final
class SchedulerConfig:
    """Scheduler settings. Setters validate (``ValueError`` on a bad value)."""

    def __new__(
        cls,
        tick_rate: float = 100.0,
        circuit_breaker: bool = True,
        max_failures: int = 5,
        auto_restart: bool = True,
        deadline_monitoring: bool = False,
        watchdog_enabled: bool = False,
        watchdog_timeout_ms: int = 1000,
    ) -> SchedulerConfig: ...
    @staticmethod
    def standard() -> SchedulerConfig:
        """100 Hz, balanced."""
    @staticmethod
    def high_performance() -> SchedulerConfig:
        """200 Hz."""
    @staticmethod
    def low_latency() -> SchedulerConfig:
        """500 Hz."""
    @staticmethod
    def power_saving() -> SchedulerConfig:
        """30 Hz."""
    @staticmethod
    def realtime() -> SchedulerConfig:
        """1000 Hz."""
    @property
    def tick_rate(self) -> float:
        """Hz, above 0 and at most 100000."""
    @tick_rate.setter
    def tick_rate(self, tick_rate: float) -> None: ...
    @property
    def circuit_breaker(self) -> bool: ...
    @circuit_breaker.setter
    def circuit_breaker(self, value: bool) -> None: ...
    @property
    def max_failures(self) -> int:
        """At least 1."""
    @max_failures.setter
    def max_failures(self, max_failures: int) -> None: ...
    @property
    def auto_restart(self) -> bool: ...
    @auto_restart.setter
    def auto_restart(self, value: bool) -> None: ...
    @property
    def deadline_monitoring(self) -> bool: ...
    @deadline_monitoring.setter
    def deadline_monitoring(self, value: bool) -> None: ...
    @property
    def watchdog_enabled(self) -> bool: ...
    @watchdog_enabled.setter
    def watchdog_enabled(self, value: bool) -> None: ...
    @property
    def watchdog_timeout_ms(self) -> int:
        """10 to 60000 ms."""
    @watchdog_timeout_ms.setter
    def watchdog_timeout_ms(self, ms: int) -> None: ...
    @property
    def preset(self) -> Optional[str]:
        """The preset it came from (e.g. ``"standard"``), or None. Read-only."""
    def __repr__(self) -> str: ...

@final
class Scheduler:
    """The scheduler of a Python program (wrapped by ``horus.Scheduler``)."""

    def __new__(cls) -> Scheduler:
        """A scheduler with the ``standard`` preset."""
    @staticmethod
    def from_config(config: SchedulerConfig) -> Scheduler:
        """A scheduler with ``config`` (``TypeError`` if not a SchedulerConfig)."""
    @property
    def config(self) -> SchedulerConfig:
        """A copy of the scheduler's config. Read-only."""
    def _add(
        self,
        node: Any,
        name: str,
        priority: int,
        logging: bool,
        rate_hz: Optional[float],
        config: Dict[str, Any],
        trigger: Union[str, Sequence[str], None] = None,
        timeout_ms: Optional[int] = None,
    ) -> None:
        """Adds node object ``node`` as ``name`` with its ``config`` and trigger (``ValueError``
        if the name is taken, or the trigger or timeout is wrong)."""
    def _has(self, name: str) -> bool:
        """True if ``name`` is taken."""
    def _connection_topic(self, src: str, port: str) -> str:
        """A fresh topic name for a connection."""
    def _node(self, node: Any) -> Any:
        """The added node object named by ``node`` (a name or the object); ``KeyError`` if none."""
    def get_node_names(self) -> List[str]: ...
    def get_node_stats(self, name: str) -> Dict[str, Any]:
        """Stats of node ``name`` (``KeyError`` if unknown)."""
    def get_all_nodes(self) -> List[Dict[str, Any]]: ...
    def set_node_deadline(self, name: str, deadline_ms: float) -> None: ...
    def set_node_watchdog(self, name: str, enabled: bool, timeout_ms: int = 1000) -> None: ...
    def set_node_rate(self, name: str, rate_hz: float) -> None: ...
    def is_running(self) -> bool: ...
    def run(self, duration: Optional[float] = None, watch: bool = False) -> None:
        """Runs every node until ``stop()``, Ctrl-C or ``duration`` seconds; with ``watch``, a
        node whose class comes from a file reloads when the file changes."""
    def stop(self) -> None:
        """Makes a running ``run()`` return (any thread, signal handlers included)."""

# --- node.rs ----------------------------------------------------------------------------------

@final
class NodeIo:
    """A Python node's topic endpoints, by the names the node uses."""

    def __new__(cls) -> NodeIo: ...
    def send(self, topic: str, data: Any) -> None: ...
    def get(self, topic: str) -> Any:
        """The oldest unread message on ``topic``, or None."""
    def loan(self, topic: str, shape: Union[int, Tuple[int, ...]], dtype: Any = None) -> Any: ...
    def has_msg(self, topic: str) -> bool: ...
    def remap(self, port: str, topic: str) -> None:
        """Maps the node's name ``port`` to the topic ``topic``."""
    def metrics(self) -> Dict[str, Dict[str, int]]:
        """{topic: {messages_sent, messages_received, bytes_sent, bytes_received, dropped, errors}}."""
    def close(self) -> None: ...

class Node:
    """The base class of ``horus.Node``: its ``send``, ``get`` (``recv``) and ``has_msg``,
    which reach the node's ``_horus_io`` with no Python frame in between."""

    def __new__(cls, *_args: Any, **_kwargs: Any) -> Node: ...
    def send(self, topic: str, data: Any) -> None:
        """Publishes ``data`` on ``topic`` (or on the connection ``topic`` is mapped to)."""
    def get(self, topic: str) -> Any:
        """The oldest unread message on ``topic``, or ``None``."""
    def recv(self, topic: str) -> Any:
        """The oldest unread message on ``topic``, or ``None`` (the same as ``get``)."""
    def loan(self, topic: str, shape: Union[int, Tuple[int, ...]], dtype: Any = None) -> Any:
        """A writable numpy array (dtype default uint8) in ``topic``'s shared memory: fill it,
        then ``send(topic, array)`` publishes it with no copy (see ``Hub.loan``)."""
    def has_msg(self, topic: str) -> bool:
        """True if a message is waiting on ``topic``."""

# --- hub.rs -----------------------------------------------------------------------------------

@final
class Hub:
    """A many-to-many shared-memory topic (``hub/<name>``)."""

    def __new__(cls, name: str, max_size: Optional[int] = None, depth: Optional[int] = None) -> Hub:
        """A local hub. If this creates its topic: messages of up to ``max_size`` bytes (default
        65536), the last ``depth`` of them kept (default: as many as fit in 1 MiB, 4 to 16).
        ValueError when either is out of range."""
    @staticmethod
    def tcp(address: str, name: str, *, max_size: Optional[int] = None) -> Hub:
        """A network hub over Zenoh/TCP at ``host:port``: the first process to open the address
        listens, later ones connect. It takes messages of at most ``max_size`` bytes (default
        1 MiB): ``send`` raises ValueError for a larger one, and larger received ones are
        dropped and counted. ValueError on a bad address, name or max_size, ConnectionError when
        the port is held by something that is not a hub."""
    @staticmethod
    def global_hub(name: str) -> Hub:
        """The process-wide hub named ``name`` (the same object on every call)."""
    @staticmethod
    def from_config(path: Union[str, os.PathLike[str]], name: str) -> Hub:
        """Hub ``name`` as the TOML or YAML file at ``path`` describes it."""
    @property
    def name(self) -> str: ...
    def send(self, data: Any) -> None: ...
    def recv(self) -> Any:
        """The next message, or None. On a topic for large messages, a top-level array of
        64 KiB or more is a read-only view of the topic's shared memory."""
    def loan(self, shape: Union[int, Tuple[int, ...]], dtype: Any = None) -> Any:
        """A writable numpy array (dtype default uint8) in the topic's next slot: fill it, then
        ``send`` it to publish it with no copy. Sending anything else, another loan or
        ``close`` discards it. ValueError if it does not fit the topic, TypeError on an object
        dtype or a typed topic."""
    def create_link(self, topic: str, target: str) -> Link: ...
    def get_metrics(self) -> Dict[str, int]:
        """messages_sent, messages_received, bytes_sent, bytes_received, dropped, errors."""
    def get_connection_state(self) -> Dict[str, Any]:
        """connected (bool), mode (str), peers (int), endpoint (str), last_error (str or None);
        network hubs also: role ("listen"/"connect"), key (str), matched (bool: a remote
        subscriber exists)."""
    def close(self) -> None: ...
    def __repr__(self) -> str: ...

def _close_global_hubs() -> None:
    """Detaches every global hub of this process (registered with ``atexit`` by ``horus``)."""

def _decode_payload(payload: bytes) -> Any:
    """Decodes a Python-object payload as a received message is (for the decoder's tests):
    a value, or ValueError/TypeError for a malformed payload."""

@final
class Link:
    """A point-to-point topic (``link/<target>/<topic>``): one producer, one consumer."""

    def __new__(
        cls, topic: str, target: str = "default", max_size: Optional[int] = None, depth: Optional[int] = None
    ) -> Link:
        """``max_size`` and ``depth`` size the topic if this creates it, as for ``Hub``."""
    @property
    def topic(self) -> str: ...
    @property
    def target(self) -> str: ...
    def send(self, data: Any) -> None: ...
    def recv(self) -> Any:
        """The next message, or None."""
    def loan(self, shape: Union[int, Tuple[int, ...]], dtype: Any = None) -> Any:
        """As ``Hub.loan``."""
    def get_metrics(self) -> Dict[str, int]: ...
    def get_connection_state(self) -> Dict[str, Any]: ...
    def close(self) -> None: ...
    def __repr__(self) -> str: ...

# --- image.rs ---------------------------------------------------------------------------------

@final
class Image:
    """A camera image (``horus_plugin_api::msgs::Image``): ``height`` rows of ``step`` bytes of
    ``width`` pixels in ``encoding``. ``data`` is a numpy array shaped (height, width[,
    channels]) for the encodings horus knows (rgb8, bgr8, rgba8, bgra8, mono8, mono16, ...),
    else (height, step) bytes. Received from shared memory it is a read-only view."""

    stamp_ns: int
    width: int
    height: int
    encoding: str
    step: int
    data: Any

    def __new__(
        cls,
        width: int = 0,
        height: int = 0,
        encoding: str = "rgb8",
        data: Any = None,
        step: Optional[int] = None,
        stamp_ns: int = 0,
    ) -> Image:
        """``data`` defaults to zeros, ``step`` to the unpadded row of a known encoding
        (ValueError for another encoding without ``step``)."""
    def __repr__(self) -> str: ...

# --- msgs.rs ----------------------------------------------------------------------------------
# Plain-data messages: value equality, unhashable. Nested Vector3 attributes read as copies
# (``imu.angular_velocity.x = 1`` does not change ``imu``; assign a whole Vector3 instead).

@final
class Vector3:
    x: float
    y: float
    z: float
    def __new__(cls, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> Vector3: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]
    def __repr__(self) -> str: ...

@final
class Attitude:
    stamp_ns: int
    roll: float
    pitch: float
    yaw: float
    def __new__(cls, stamp_ns: int = 0, roll: float = 0.0, pitch: float = 0.0, yaw: float = 0.0) -> Attitude: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]
    def __repr__(self) -> str: ...

@final
class Imu:
    stamp_ns: int
    angular_velocity: Vector3
    linear_acceleration: Vector3
    def __new__(
        cls,
        stamp_ns: int = 0,
        angular_velocity: Vector3 = ...,
        linear_acceleration: Vector3 = ...,
    ) -> Imu: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]
    def __repr__(self) -> str: ...

@final
class Twist:
    stamp_ns: int
    linear: Vector3
    angular: Vector3
    def __new__(cls, stamp_ns: int = 0, linear: Vector3 = ..., angular: Vector3 = ...) -> Twist: ...
    def __eq__(self, value: object, /) -> bool: ...
    __hash__: ClassVar[None]  # type: ignore[assignment]
    def __repr__(self) -> str: ...
