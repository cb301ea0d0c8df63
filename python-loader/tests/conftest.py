"""Every test session uses its own shared-memory namespace, and must leave nothing in it."""

import glob
import os

import pytest

NAMESPACE = f"pytest{os.getpid()}"
os.environ["HORUS_NAMESPACE"] = NAMESPACE


def leftovers():
    # Named topics (`horus.<ns>.…`) and private segments (`horus.<ns>@…`).
    return sorted(glob.glob(f"/dev/shm/horus.{NAMESPACE}[.@]*"))


@pytest.fixture
def no_leftovers():
    """Fails the test if it leaves shared memory behind (after garbage collection)."""
    yield
    import gc

    gc.collect()
    assert leftovers() == []
