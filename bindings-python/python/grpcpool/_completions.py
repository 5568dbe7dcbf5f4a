"""Where the engine's finished async operations are settled: on an asyncio loop (grpcpool.aio),
or, for the sync API's futures (``Channel``'s ``.future()``), on one background thread.

Either way the engine pushes outcomes into a native :class:`CompletionQueue` without the GIL
and wakes its socket; whoever watches the socket drains every outcome at once and settles the
future each one names, an ``asyncio.Future`` or a ``concurrent.futures.Future`` (both take
``done``, ``set_result`` and ``set_exception``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import selectors
import threading
from typing import Optional

from . import _native
from ._response import status_error

__all__ = ["drain", "sync_queue"]


def drain(queue: _native.CompletionQueue) -> None:
    """Settles every operation that finished since the last drain."""
    for future, ok, value in queue.drain():
        if future.done():
            continue  # cancelled while the outcome was on its way
        try:
            if ok:
                future.set_result(value)
            elif isinstance(value, _native.StatusError):
                future.set_exception(status_error(value))
            else:
                future.set_exception(value)
        except (asyncio.InvalidStateError, concurrent.futures.InvalidStateError):
            # A sync future cancelled on another thread since done() was read.
            continue


class _SyncQueue:
    """The process's queue for sync futures and the daemon thread that drains it."""

    def __init__(self) -> None:
        self.queue = _native.CompletionQueue()
        self._thread = threading.Thread(target=self._run, name="grpcpool-completions", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.queue.fileno(), selectors.EVENT_READ)
            while True:
                selector.select()
                drain(self.queue)


_SYNC: Optional[_SyncQueue] = None
_SYNC_LOCK = threading.Lock()


def sync_queue() -> _native.CompletionQueue:
    """The queue whose outcomes settle ``concurrent.futures.Future`` tokens, started on first
    use (and again in a child after ``fork()``, where the thread did not follow)."""
    global _SYNC
    with _SYNC_LOCK:
        if _SYNC is None:
            _SYNC = _SyncQueue()
        return _SYNC.queue


def _after_fork_in_child() -> None:
    global _SYNC, _SYNC_LOCK
    _SYNC = None
    _SYNC_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
