"""The asyncio loop the runtime owns, for nodes with ``async def tick``, and the import of a
node's file (``import_file``, ``error_line``) for the loader and its hot reload.

One daemon thread runs one event loop for the whole process. A node's coroutine is submitted
to it with ``submit`` and the scheduler checks the returned future on the next tick: other
nodes never wait for a coroutine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
import traceback
import types
from concurrent.futures import Future
from typing import Any, Coroutine, Optional

_loop: Optional[asyncio.AbstractEventLoop] = None
_lock = threading.Lock()


def loop() -> asyncio.AbstractEventLoop:
    """The runtime's event loop, started on first use."""
    global _loop
    with _lock:
        if _loop is None:
            new = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(new)
                new.call_soon(ready.set)
                new.run_forever()

            threading.Thread(target=run, name="horus-asyncio", daemon=True).start()
            ready.wait()
            _loop = new
        return _loop


def submit(coro: Coroutine[Any, Any, Any]) -> Future[Any]:
    """Schedules ``coro`` on the runtime's loop; returns its concurrent future."""
    if not asyncio.iscoroutine(coro):
        raise TypeError(f"async tick returned {type(coro).__name__!r}, not a coroutine")
    return asyncio.run_coroutine_threadsafe(coro, loop())


def import_file(name: str, path: str) -> types.ModuleType:
    """Runs the file at ``path`` as a new module object named ``name``: the loader's import of a
    node's file, at start and again for each hot reload.

    ``sys.modules[name]`` is the new module from the start of its execution (as for ``import``:
    dataclasses and pickle look it up there); if the file raises, the module it replaced is put
    back. The source is read and compiled here, never a cached bytecode file: an edit that keeps
    the file's size within the same second would otherwise load the stale ``.pyc``.
    """
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise ImportError(f"{path} is not a Python source file")
    module = importlib.util.module_from_spec(spec)
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec", dont_inherit=True)
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    return module


def error_line(exc: BaseException, path: str) -> str:
    """``file:line: Type: message`` of an exception raised while importing ``path``: where a
    syntax error is, else the innermost line of ``path`` in the traceback (else the innermost
    line of any file)."""
    head = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}: {type(exc).__name__}: {exc.msg}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<")]
    inside = [f for f in frames if f.filename == path] or frames
    if not inside:
        return f"{path}: {head}"
    return f"{inside[-1].filename}:{inside[-1].lineno}: {head}"
