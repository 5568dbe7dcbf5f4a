"""Streaming calls, synchronous: :class:`Stream` and the helpers that feed it requests."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any, Callable, Generic, Iterable, Iterator, List, Optional, Tuple, Type, TypeVar

from . import _native
from ._errors import RpcError, StreamClosedError
from ._response import Request, Response, decode_message, encode_request, status_error
from ._status import StatusCode
from ._types import Decoder, MetadataTuple

__all__ = ["Stream", "deadline_after", "unary_stream_call", "stream_unary_call", "stream_stream_call"]

T = TypeVar("T")


def outcome_with(response: Response, request_error: Optional[BaseException]) -> Response:
    """A stream's status as the caller sees it: cancelled because its request iterator raised,
    it reports UNKNOWN with that exception, as grpcio does; cancelled because a request was
    refused with a status (one over ``max_send_message_size``), it reports that status, as
    grpcio does too."""
    if request_error is not None and response.code is StatusCode.CANCELLED:
        if isinstance(request_error, RpcError):
            refused = request_error.response
            return Response(refused.code, refused.details, b"", response.headers, response.trailers, b"")
        return Response(
            StatusCode.UNKNOWN,
            f"Exception iterating requests: {request_error!r}",
            b"",
            response.headers,
            response.trailers,
            b"",
        )
    return response


def rpc_error(
    error_type: Type[RpcError], response: Response, request_error: Optional[BaseException]
) -> RpcError:
    """The exception for a failed stream, chained to a failing request iterator's exception."""
    error = error_type(response)
    if request_error is not None:
        error.__cause__ = request_error
    return error


def single_reply(message: Optional[T], response: Response, fail: Callable[[Response], RpcError]) -> T:
    """A client-streaming call's one reply, or the error for its status (or for no reply)."""
    if response.code is not StatusCode.OK:
        raise fail(response)
    if message is None:
        raise fail(
            Response(
                StatusCode.INTERNAL,
                "the server ended the call without a response message",
                b"",
                response.headers,
                response.trailers,
                b"",
            )
        )
    return message


def deadline_after(timeout: Optional[float]) -> Optional[float]:
    """The ``time.monotonic()`` instant ``timeout`` seconds from now; None without a timeout."""
    return None if timeout is None else time.monotonic() + timeout


class Stream(Generic[T]):
    """One streaming call: server-, client- or bidirectional streaming.

    Write requests with :meth:`write` and finish with :meth:`done_writing`; iterate it (or call
    :meth:`read`) for the responses. A non-OK status raises :class:`grpcpool.RpcError` where
    the responses end. One thread may write while another reads; a second write while one
    waits (or a second read, :meth:`initial_metadata` or :meth:`finish` while one of those
    waits) raises RuntimeError at once, never queued. The call holds its connection slot until
    it ends; leaving a ``with`` block, or dropping the object, before the end cancels it.
    """

    def __init__(
        self,
        native: _native.NativeStream,
        response_type: Optional[Decoder[Any]] = None,
        deadline: Optional[float] = None,
        error_type: Type[RpcError] = RpcError,
    ) -> None:
        self._native = native
        self._error_type = error_type
        self._response_type = response_type
        self._deadline = deadline
        self._callbacks: List[Callable[[], None]] = []
        self._callbacks_lock = threading.Lock()
        #: Set when feeding requests from an iterator failed; reported as the call's status.
        self._request_error: Optional[BaseException] = None

    # -- sending -----------------------------------------------------------------------------

    def write(self, request: Request) -> None:
        """Sends one request, waiting while HTTP/2 flow control holds earlier ones back.

        Raises :class:`grpcpool.RpcError` if the call already ended with an error, or with
        RESOURCE_EXHAUSTED for a request over ``max_send_message_size`` (not sent; the call goes
        on), and :class:`grpcpool.StreamClosedError` once it takes no more messages (after
        :meth:`done_writing`, a cancel, or the server's end): a cancel from another thread
        wakes a write waiting on flow control that way. RuntimeError while another write waits.
        """
        if not self._send(encode_request(request)):
            self._raise_closed()

    def _send(self, payload: bytes) -> bool:
        """Sends one encoded request; False once the call takes no more. A request the engine
        refuses with a status (too large) raises :class:`RpcError` with it."""
        try:
            return self._native.send(payload)
        except _native.StatusError as error:
            raise status_error(error, self._error_type) from None

    def _fail_request(self, error: BaseException) -> None:
        """Ends the call because sending failed; ``error`` decides the status (see
        :func:`outcome_with`)."""
        self._request_error = error
        self._native.cancel()

    def done_writing(self) -> None:
        """Half-closes: tells the server that no more requests come. Reading goes on."""
        self._native.close_send()

    def _raise_closed(self) -> None:
        raw = self._native.status()
        if raw is not None and raw[0] != 0:
            raise self._error(Response._from_native(raw))
        raise StreamClosedError("the call takes no more requests")

    # -- receiving ---------------------------------------------------------------------------

    def read(self) -> Optional[T]:
        """The next response (decoded with ``response_type``), or ``None`` after the last one.
        A non-OK status raises :class:`grpcpool.RpcError` at the end instead."""
        try:
            data = self._native.read()
        except KeyboardInterrupt:
            self.cancel()
            raise
        if data is None:
            self._check_status()
            return None
        decoded: T = decode_message(self._response_type, data)
        return decoded

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        message = self.read()
        if message is None:
            raise StopIteration
        return message

    def initial_metadata(self) -> MetadataTuple:
        """The response headers, waiting for them; empty if the call ended without any."""
        headers = self._native.headers()
        return () if headers is None else headers

    # -- the end -----------------------------------------------------------------------------

    def finish(self) -> Response:
        """Half-closes, waits for the end (dropping responses not read) and returns the final
        status, headers and trailers as a :class:`grpcpool.Response` (with an empty body)."""
        response = self._outcome(Response._from_native(self._native.finish()))
        self._run_callbacks()
        return response

    def code(self) -> StatusCode:
        """The final status code; waits for the end (see :meth:`finish`)."""
        return self.finish().code

    def details(self) -> str:
        """The final status message; waits for the end (see :meth:`finish`)."""
        return self.finish().details

    def trailing_metadata(self) -> MetadataTuple:
        """The trailers; waits for the end (see :meth:`finish`)."""
        return self.finish().trailers

    def cancel(self) -> bool:
        """Cancels the call (the server sees the cancel; the status is CANCELLED). Returns
        whether it was still running. A read waiting in another thread returns at once."""
        active = not self._native.done
        self._native.cancel()
        self._run_callbacks()
        return active

    def is_active(self) -> bool:
        """Whether the call is still running."""
        return not self._native.done

    def time_remaining(self) -> Optional[float]:
        """Seconds left before the deadline; ``None`` without one."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """Calls ``callback`` once the call is seen to end here (read to its end, finished or
        cancelled). Returns False, without registering it, if the call already ended."""
        with self._callbacks_lock:
            if self._native.done:
                return False
            self._callbacks.append(callback)
            return True

    def _run_callbacks(self) -> None:
        with self._callbacks_lock:
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def _outcome(self, response: Response) -> Response:
        """The status as the caller sees it: a failing request iterator reports UNKNOWN."""
        return outcome_with(response, self._request_error)

    def _check_status(self) -> None:
        raw = self._native.status()
        self._run_callbacks()
        if raw is None:
            return
        response = self._outcome(Response._from_native(raw))
        if response.code is not StatusCode.OK:
            raise self._error(response)

    def _error(self, response: Response) -> RpcError:
        """The exception for a failed call (:class:`grpcpool.Channel` raises its own kind)."""
        return rpc_error(self._error_type, response, self._request_error)

    # -- feeding requests from an iterator ---------------------------------------------------

    def _send_all(self, requests: Iterable[Request]) -> None:
        """Writes every request, then half-closes. A failing iterator cancels the call."""
        try:
            for request in requests:
                if not self._send(encode_request(request)):
                    return
            self._native.close_send()
        except BaseException as error:  # noqa: BLE001 - reported as the call's status
            self._fail_request(error)

    def _feed(self, requests: Iterable[Request]) -> None:
        """Writes ``requests`` from a background thread while the caller reads."""
        thread = threading.Thread(
            target=self._send_all, args=(requests,), name="grpcpool-requests", daemon=True
        )
        thread.start()

    # -- context manager ---------------------------------------------------------------------

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        if not self._native.done:
            self.cancel()

    def __repr__(self) -> str:
        return f"<grpcpool.Stream {'active' if self.is_active() else 'ended'}>"


def unary_stream_call(stream: Stream[T], request: Request) -> Stream[T]:
    """Server streaming: sends the one request and half-closes; the caller reads."""
    payload = encode_request(request)
    try:
        # A call that already failed reports its status where the responses end.
        stream._send(payload)
    except RpcError as error:
        # Refused before it left (too large): the call fails with that status, reported
        # where the responses end, as grpcio does.
        stream._fail_request(error)
        return stream
    stream.done_writing()
    return stream


def stream_unary_call(stream: Stream[T], requests: Iterable[Request]) -> Tuple[T, Response]:
    """Client streaming: sends every request, half-closes, and returns the one response with
    the final status. A non-OK status raises."""
    with stream:
        stream._send_all(requests)
        message = stream.read()
        response = stream.finish()
        return single_reply(message, response, stream._error), response


def stream_stream_call(stream: Stream[T], requests: Iterable[Request]) -> Stream[T]:
    """Bidirectional streaming: a background thread sends ``requests`` (then half-closes)
    while the caller reads."""
    stream._feed(requests)
    return stream
