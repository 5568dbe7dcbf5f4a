"""A target's connectivity in gRPC's five states (:class:`Connectivity`), and the watch behind
``Channel.subscribe``: the engine says when the state changes; this only calls callbacks."""

from __future__ import annotations

import enum
import importlib
import logging
import threading
from typing import Any, Callable, List, Optional, Protocol


__all__ = ["Connectivity", "ConnectivityWatch", "as_grpc_connectivity"]


class Connectivity(enum.IntEnum):
    """A target's connectivity, as gRPC names it (the numbers are gRPC's)."""

    #: No connection and none being made (not used yet, or left the pool when idle).
    IDLE = 0
    #: A dial is under way and no connection takes calls yet.
    CONNECTING = 1
    #: At least one connection takes calls.
    READY = 2
    #: No connection takes calls and the last dial failed; calls fail fast until a redial.
    TRANSIENT_FAILURE = 3
    #: The pool is closed.
    SHUTDOWN = 4


def as_grpc_connectivity(state: Connectivity) -> Any:
    """The state as grpcio's ``grpc.ChannelConnectivity`` when grpcio is installed (what code
    written for grpcio compares against), else as :class:`Connectivity`."""
    try:
        grpc = importlib.import_module("grpc")
    except ImportError:
        return state
    return grpc.ChannelConnectivity[state.name]


_LOG = logging.getLogger("grpcpool")


class Watched(Protocol):
    """What a watch asks: a pool's connectivity methods (:class:`grpcpool.Pool`'s)."""

    def connectivity(self, target: str, try_to_connect: bool = False) -> Connectivity: ...

    def wait_for_connectivity_change(
        self, target: str, last: Connectivity, timeout: Optional[float] = None
    ) -> Connectivity: ...

#: How long one wait for a change lasts before the watch checks whether it should stop.
_POLL = 0.5


class ConnectivityWatch:
    """Calls each subscribed callback with the target's state (as ``grpc.ChannelConnectivity``)
    from a daemon thread: at once with the current state, then at every change, as grpcio's
    ``Channel.subscribe`` does. The thread runs while there are callbacks."""

    def __init__(self, pool: Watched, target: str) -> None:
        self._pool = pool
        self._target = target
        self._lock = threading.Lock()
        self._callbacks: List[Callable[[Any], None]] = []
        self._thread: Optional[threading.Thread] = None
        self._stopped = False

    def subscribe(self, callback: Callable[[Any], None], try_to_connect: bool) -> None:
        """Adds ``callback``; ``try_to_connect`` starts an idle target connecting."""
        state = self._pool.connectivity(self._target, try_to_connect)
        with self._lock:
            if self._stopped:
                return
            self._callbacks.append(callback)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"grpcpool-connectivity {self._target}", daemon=True
                )
                self._thread.start()
                return
        # The thread is running and has reported to the others; this one hears the state now.
        callback(as_grpc_connectivity(state))

    def unsubscribe(self, callback: Callable[[Any], None]) -> None:
        """Removes ``callback`` (every time it was added)."""
        with self._lock:
            self._callbacks = [known for known in self._callbacks if known is not callback]

    def stop(self) -> None:
        """No callback from now on; the thread ends within one poll."""
        with self._lock:
            self._stopped = True
            self._callbacks = []

    def _run(self) -> None:
        last: Optional[Connectivity] = None
        while True:
            with self._lock:
                if not self._callbacks:
                    self._thread = None
                    return
            if last is None:
                state = self._pool.connectivity(self._target)
            else:
                state = self._pool.wait_for_connectivity_change(self._target, last, _POLL)
                if state is last:
                    continue
            last = state
            # Read after the wait: a callback unsubscribed meanwhile hears nothing more.
            with self._lock:
                callbacks = list(self._callbacks)
            for callback in callbacks:
                try:
                    callback(as_grpc_connectivity(state))
                except Exception:  # noqa: BLE001 - one callback's failure stops no other
                    _LOG.exception("a connectivity callback raised")
            if state is Connectivity.SHUTDOWN:
                self.stop()
