"""Config schemas of Python nodes: ``horus.ConfigKey`` and the checks behind it.

A node class declares the keys its ``config`` accepts, as Rust node types do with
``Node::CONFIG``::

    class Smoother(horus.Node):
        CONFIG = {
            "gain": horus.ConfigKey(float, default=1.0, doc="output gain"),
            "frame": horus.ConfigKey(str, required=True, doc="the frame to report in"),
        }

``horus check`` (and ``horus run``) refuse a manifest whose node ``config`` has a key the class
does not declare, a value of another type, or lacks a required key; the runtime fills
``self.config`` with the declared defaults of the keys left out. A class without ``CONFIG`` is
not checked. The rules are the host's (docs/manifest.md): an ``int`` is a fine ``float``, a
``bool`` is not an ``int``; ``list`` and ``dict`` keys take any list or table.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

__all__ = ["ConfigKey"]

_KINDS: Dict[type, str] = {
    bool: "bool",
    int: "int",
    float: "float",
    str: "str",
    list: "array",
    dict: "table",
}

_MISSING: Any = object()


def _is(kind: type, value: Any) -> bool:
    """Whether ``value`` is a value of a key declared as ``kind``."""
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


class ConfigKey:
    """One key of a node's ``config``: its type (``bool``, ``int``, ``float``, ``str``, ``list``
    or ``dict``), its default or whether it is required, and one line of documentation.
    """

    __slots__ = ("type", "_default", "required", "doc")

    def __init__(
        self,
        type: type,
        *,
        default: Any = _MISSING,
        required: bool = False,
        doc: str = "",
    ) -> None:
        if type not in _KINDS:
            raise TypeError(
                "ConfigKey takes bool, int, float, str, list or dict "
                f"(got {getattr(type, '__name__', type)!r})"
            )
        if not isinstance(doc, str):
            raise TypeError(f"doc must be a str (got {builtin_type(doc).__name__!r})")
        if required and default is not _MISSING:
            raise ValueError("a required key cannot have a default")
        if default is not _MISSING and not _is(type, default):
            raise TypeError(
                f"the default {default!r} is not a {type.__name__} (the key's type)"
            )
        if type is float and default is not _MISSING:
            default = float(default)
        self.type = type
        self._default = default
        self.required = bool(required)
        self.doc = doc

    @property
    def has_default(self) -> bool:
        """Whether the key has a default."""
        return self._default is not _MISSING

    @property
    def default(self) -> Any:
        """The default (``None`` when the key has none; see ``has_default``)."""
        return None if self._default is _MISSING else self._default

    @property
    def kind(self) -> str:
        """The schema's name of the type: bool, int, float, str, array or table."""
        return _KINDS[self.type]

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` may be the key's value."""
        return _is(self.type, value)

    def __repr__(self) -> str:
        parts = [self.type.__name__]
        if self.has_default:
            parts.append(f"default={self._default!r}")
        if self.required:
            parts.append("required=True")
        if self.doc:
            parts.append(f"doc={self.doc!r}")
        return f"ConfigKey({', '.join(parts)})"


builtin_type = type


def schema_of(cls: type) -> Optional[Dict[str, ConfigKey]]:
    """The ``CONFIG`` of a node class, checked: ``None`` when it declares none."""
    schema = getattr(cls, "CONFIG", None)
    if schema is None:
        return None
    if not isinstance(schema, Mapping):
        raise TypeError(
            f"CONFIG must be a dict of horus.ConfigKey (got {builtin_type(schema).__name__!r})"
        )
    out: Dict[str, ConfigKey] = {}
    for name, key in schema.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"CONFIG keys are non-empty strings (got {name!r})")
        if not isinstance(key, ConfigKey):
            raise TypeError(
                f"CONFIG[{name!r}] must be a horus.ConfigKey (got {builtin_type(key).__name__!r})"
            )
        out[name] = key
    return out


def describe(cls: type) -> Optional[List[Dict[str, Any]]]:
    """The schema of a node class as ``horus check`` reads it (``None``: no schema)."""
    schema = schema_of(cls)
    if schema is None:
        return None
    return [
        {
            "name": name,
            "kind": key.kind,
            "required": key.required,
            "default": key.default if key.has_default else None,
            "doc": key.doc,
        }
        for name, key in schema.items()
    ]


def problems(cls: type, config: Mapping[str, Any]) -> List[str]:
    """What is wrong with ``config`` for a node of class ``cls`` (empty when nothing is)."""
    schema = schema_of(cls)
    if schema is None:
        return []
    found: List[str] = []
    for key, value in config.items():
        decl = schema.get(key)
        if decl is None:
            known = ", ".join(schema) or "no keys"
            found.append(f"unknown config key {key!r} (the class takes: {known})")
        elif not decl.accepts(value):
            found.append(
                f"config {key!r} must be a {decl.type.__name__}, not {value!r}"
            )
    for key, decl in schema.items():
        if decl.required and key not in config:
            found.append(f"missing required config key {key!r}")
    return found


def with_defaults(cls: type, config: Mapping[str, Any]) -> Dict[str, Any]:
    """``config`` with the declared defaults of the keys it leaves out."""
    out = dict(config)
    schema = schema_of(cls)
    for key, decl in (schema or {}).items():
        if key not in out and decl.has_default:
            out[key] = decl.default
    return out
