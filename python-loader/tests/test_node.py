"""horus.Node's constructor: what it accepts and what it refuses."""

import sys

import pytest

import horus

# Python < 3.10 leaves the class out of the message ("__init__() got ...").
UNEXPECTED_X = r"__init__\(\) got an unexpected keyword argument 'x'"


class Sub(horus.Node):
    def tick(self):
        pass


class Forwarding(horus.Node):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def tick(self):
        pass


def test_node_accepts_the_seed_arguments():
    assert horus.Node().name is None
    assert horus.Node(name="a").name == "a"
    assert horus.Node("b").name == "b"
    assert Sub(name="c").name == "c"
    assert Forwarding(name="d").name == "d"
    with pytest.raises(ValueError, match="non-empty str"):
        horus.Node(name="")


# Issue 12: Node.__init__ swallowed unknown keyword arguments, so a typo went unnoticed.
def test_issue_12_node_rejects_an_unknown_keyword():
    with pytest.raises(TypeError, match=UNEXPECTED_X):
        horus.Node(x=1)
    with pytest.raises(TypeError, match=UNEXPECTED_X):
        horus.Node(name="n", x=1)
    with pytest.raises(TypeError, match=UNEXPECTED_X):
        Sub(x=1)
    with pytest.raises(TypeError, match=UNEXPECTED_X):
        Forwarding(x=1)
    with pytest.raises(TypeError):
        horus.Node("a", "b")


def test_issue_12_the_error_names_node():
    # The message Python itself gives (3.10+): the class that refused it, then the keyword.
    if sys.version_info < (3, 10):
        pytest.skip("Python < 3.10 does not name the class in this TypeError")
    with pytest.raises(TypeError) as err:
        Sub(x=1)
    assert str(err.value) == "Node.__init__() got an unexpected keyword argument 'x'"
