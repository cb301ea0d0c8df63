"""The asyncio loop the runtime owns, for nodes with ``async def tick``.

One daemon thread runs one event loop for the whole process. A node's coroutine is submitted
to it with ``submit`` and the scheduler checks the returned future on the next tick: other
nodes never wait for a coroutine.
"""

from __future__ import annotations

import asyncio
import threading
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
