"""horus.ConfigKey: a Python node class declares its config keys (issue 15); Scheduler.add
refuses a config the declaration refuses and fills the declared defaults."""

import pytest

import horus
from horus import _config


class Tuned(horus.Node):
    CONFIG = {
        "gain": horus.ConfigKey(float, default=1, doc="output gain"),
        "frame": horus.ConfigKey(str, required=True),
        "count": horus.ConfigKey(int, default=3),
        "verbose": horus.ConfigKey(bool, default=False),
        "limits": horus.ConfigKey(list),
        "pid": horus.ConfigKey(dict),
    }

    def tick(self):
        pass


def test_keys_describe_themselves():
    k = horus.ConfigKey(float, default=1, doc="output gain")
    assert k.type is float and k.kind == "float"
    assert k.default == 1.0 and isinstance(k.default, float)
    assert k.has_default and not k.required
    assert repr(k) == "ConfigKey(float, default=1.0, doc='output gain')"
    r = horus.ConfigKey(str, required=True)
    assert r.required and not r.has_default and r.default is None
    assert [horus.ConfigKey(t).kind for t in (bool, int, float, str, list, dict)] == [
        "bool", "int", "float", "str", "array", "table",
    ]


def test_declarations_are_checked_when_made():
    with pytest.raises(TypeError, match="bool, int, float, str, list or dict"):
        horus.ConfigKey(bytes)
    with pytest.raises(TypeError, match="is not a int"):
        horus.ConfigKey(int, default=2.5)
    with pytest.raises(TypeError, match="is not a int"):
        horus.ConfigKey(int, default=True)
    with pytest.raises(ValueError, match="required key cannot have a default"):
        horus.ConfigKey(str, default="x", required=True)


def test_types_follow_the_host_rules():
    assert horus.ConfigKey(float).accepts(2)
    assert not horus.ConfigKey(int).accepts(2.0)
    assert not horus.ConfigKey(int).accepts(True)
    assert not horus.ConfigKey(float).accepts(True)
    assert horus.ConfigKey(list).accepts([1, 2])
    assert not horus.ConfigKey(dict).accepts([])


def test_the_schema_is_what_horus_check_reads():
    keys = _config.describe(Tuned)
    assert keys[0] == {"name": "gain", "kind": "float", "required": False, "default": 1.0, "doc": "output gain"}
    assert keys[1]["required"] is True and keys[1]["default"] is None
    assert _config.describe(horus.Node) is None

    class Bad(horus.Node):
        CONFIG = {"gain": float}

        def tick(self):
            pass

    with pytest.raises(TypeError, match=r"CONFIG\['gain'\] must be a horus.ConfigKey"):
        _config.describe(Bad)


def test_problems_and_defaults():
    assert _config.problems(Tuned, {"frame": "odom", "gain": 2}) == []
    assert _config.problems(Tuned, {"gian": 2.0, "count": 1.5}) == [
        "unknown config key 'gian' (the class takes: gain, frame, count, verbose, limits, pid)",
        "config 'count' must be a int, not 1.5",
        "missing required config key 'frame'",
    ]
    assert _config.with_defaults(Tuned, {"frame": "odom", "gain": 2}) == {
        "frame": "odom", "gain": 2, "count": 3, "verbose": False,
    }
    # A class without CONFIG is not checked.
    assert _config.problems(horus.Node, {"anything": 1}) == []


def test_scheduler_add_refuses_a_bad_config_and_fills_defaults(no_leftovers):
    s = horus.Scheduler()
    with pytest.raises(ValueError, match="Tuned: missing required config key 'frame'"):
        s.add(Tuned(), config={})
    seen = {}

    class Probe(Tuned):
        def tick(self):
            seen.update(self.config)

    s.add(Probe(), config={"frame": "odom"})
    s.run(duration=0.05)
    assert seen == {"frame": "odom", "gain": 1.0, "count": 3, "verbose": False}
