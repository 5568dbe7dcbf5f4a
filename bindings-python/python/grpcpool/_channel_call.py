"""What calls through grpcio-shaped channels hand back: :class:`ChannelRpcError`,
:class:`CallResult` and :class:`ChannelFuture`, shaped like grpcio's ``grpc.RpcError``,
``grpc.Call`` and ``grpc.Future`` (and subclasses of them when grpcio is installed, so
``except grpc.RpcError`` and ``isinstance(call, grpc.Future)`` keep working)."""

from __future__ import annotations

import concurrent.futures
import importlib
import time
import types
from typing import Any, Callable, Optional, Tuple

from ._errors import RpcError
from ._response import Response
from ._status import StatusCode
from ._types import MetadataTuple

__all__ = [
    "CallResult",
    "ChannelFuture",
    "ChannelRpcError",
    "Deserializer",
    "Serializer",
    "as_grpc_code",
    "compression_name",
    "grpc_bases",
    "grpcio",
]

Serializer = Optional[Callable[[Any], bytes]]
Deserializer = Optional[Callable[[bytes], Any]]

#: What grpcio reports for a call the application cancelled.
CANCELLED_DETAILS = "Locally cancelled by application!"


def grpcio() -> Any:
    """The ``grpc`` module when grpcio is installed, else None (grpcpool does not need it)."""
    try:
        return importlib.import_module("grpc")
    except ImportError:
        return None


def grpc_bases(*names: str) -> Tuple[type, ...]:
    """grpcio's classes of these names (``"Call"``, ``"aio.Channel"``) when grpcio is importable, so code written for it
    recognises ours; nothing otherwise."""
    grpc = grpcio()
    if grpc is None:
        return ()
    bases = []
    for name in names:
        value = grpc
        for part in name.split("."):  # "aio.Channel": grpc.aio's
            value = getattr(value, part)
        bases.append(value)
    return tuple(bases)


def as_grpc_code(code: StatusCode) -> Any:
    """The code as grpcio's ``grpc.StatusCode`` when grpcio is installed (what code written for
    grpcio compares against), else as :class:`grpcpool.StatusCode`."""
    grpc = grpcio()
    return code if grpc is None else grpc.StatusCode[code.name]


def compression_name(compression: Any) -> Optional[str]:
    """grpcio's ``grpc.Compression`` (or a name) as grpcpool's compression name."""
    if compression is None:
        return None
    name = getattr(compression, "name", compression)
    names = {"NoCompression": None, "identity": None, "Gzip": "gzip", "gzip": "gzip"}
    if name not in names:
        raise NotImplementedError(f"compression {name}: grpcpool compresses with gzip only")
    return names[name]


def _future_timeout() -> type:
    grpc = grpcio()
    return concurrent.futures.TimeoutError if grpc is None else grpc.FutureTimeoutError


def _future_cancelled() -> type:
    grpc = grpcio()
    return concurrent.futures.CancelledError if grpc is None else grpc.FutureCancelledError


class ChannelRpcError(RpcError, *grpc_bases("RpcError", "Call", "Future")):  # type: ignore[misc]
    """The error a call through a grpcpool channel raises: a :class:`grpcpool.RpcError` that is
    also a ``grpc.RpcError``, ``grpc.Call`` and a finished ``grpc.Future`` when grpcio is
    installed (as grpcio's own error is), whose ``code()`` is then a ``grpc.StatusCode``."""

    def code(self) -> Any:
        return as_grpc_code(self.response.code)

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> Optional[float]:
        return None

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def result(self, timeout: Optional[float] = None) -> Any:
        """Raises this error: the call it ends failed."""
        raise self

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        return self

    def traceback(self, timeout: Optional[float] = None) -> Optional[types.TracebackType]:
        return self.__traceback__

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


class CallResult(*grpc_bases("Call")):  # type: ignore[misc]
    """What ``with_call`` returns beside the response: the finished call's status and metadata,
    shaped like grpcio's ``grpc.Call``."""

    def __init__(self, response: Response) -> None:
        self._response = response

    def code(self) -> Any:
        """The status, as ``grpc.StatusCode`` when grpcio is installed."""
        return as_grpc_code(self._response.code)

    def details(self) -> str:
        return self._response.details

    def initial_metadata(self) -> MetadataTuple:
        return self._response.headers

    def trailing_metadata(self) -> MetadataTuple:
        return self._response.trailers

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> Optional[float]:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


class ChannelFuture(*grpc_bases("Call", "Future")):  # type: ignore[misc]
    """A unary call in flight, as grpcio's ``.future()`` returns it: a ``grpc.Future`` (result,
    exception, callbacks, cancel) and a ``grpc.Call`` (status and metadata once it ends).

    ``outcome`` (a ``concurrent.futures.Future``) is settled with the call's response, as a
    :class:`grpcpool.Response` or the engine's native tuple; ``cancel`` cancels the call on the
    engine (its HTTP/2 stream is reset, the server sees the cancel)."""

    def __init__(
        self,
        outcome: "concurrent.futures.Future[Any]",
        cancel: Callable[[], object],
        decode: Callable[[bytes], Any],
        deadline: Optional[float],
    ) -> None:
        self._outcome = outcome
        self._cancel = cancel
        self._decode = decode
        self._deadline = deadline

    # -- grpc.Future ---------------------------------------------------------------------------

    def cancel(self) -> bool:
        """Cancels the call if it is still running; True if it was (False once it ended,
        cancelled before included, as grpcio answers)."""
        if self._outcome.done() or not self._outcome.cancel():
            return False
        self._cancel()
        return True

    def cancelled(self) -> bool:
        return self._outcome.cancelled()

    def running(self) -> bool:
        return not self._outcome.done()

    def done(self) -> bool:
        return self._outcome.done()

    def result(self, timeout: Optional[float] = None) -> Any:
        """The response message; raises the call's :class:`ChannelRpcError` if it failed,
        ``grpc.FutureTimeoutError`` after ``timeout`` and ``grpc.FutureCancelledError`` if it
        was cancelled."""
        response = self._response(timeout)
        if response.code is not StatusCode.OK:
            raise ChannelRpcError(response)
        return self._decode(response.body)

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """The call's :class:`ChannelRpcError`, or None if it succeeded."""
        response = self._response(timeout)
        return None if response.code is StatusCode.OK else ChannelRpcError(response)

    def traceback(self, timeout: Optional[float] = None) -> Optional[types.TracebackType]:
        error = self.exception(timeout)
        return None if error is None else error.__traceback__

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        """Calls ``fn(self)`` once the call ends (at once if it has), on the thread that
        settles it."""
        self._outcome.add_done_callback(lambda _: fn(self))

    # -- grpc.Call -----------------------------------------------------------------------------

    def code(self) -> Any:
        return as_grpc_code(self._final().code)

    def details(self) -> str:
        return self._final().details

    def initial_metadata(self) -> MetadataTuple:
        return self._final().headers

    def trailing_metadata(self) -> MetadataTuple:
        return self._final().trailers

    def is_active(self) -> bool:
        return not self._outcome.done()

    def time_remaining(self) -> Optional[float]:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Calls ``callback()`` when the call ends; False, not registered, if it has ended."""
        if self._outcome.done():
            return False
        self._outcome.add_done_callback(lambda _: callback())
        return True

    # -- the outcome ---------------------------------------------------------------------------

    def _response(self, timeout: Optional[float]) -> Response:
        try:
            value = self._outcome.result(timeout)
        except concurrent.futures.TimeoutError:
            raise _future_timeout()() from None
        except concurrent.futures.CancelledError:
            raise _future_cancelled()() from None
        except RpcError as error:
            # Refused by the engine before the call had a response (an acquire's failure).
            return error.response
        return value if isinstance(value, Response) else Response._from_native(value)

    def _final(self) -> Response:
        """The call's outcome, waiting for it; a cancelled call is CANCELLED."""
        if self._outcome.cancelled():
            return Response(StatusCode.CANCELLED, CANCELLED_DETAILS, b"", (), (), b"")
        return self._response(None)
