"""Streaming calls for asyncio: :class:`Stream`, awaited on the running loop."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generic,
    Iterable,
    Optional,
    Type,
    TypeVar,
    Union,
)

from . import _native
from ._errors import RpcError, StreamClosedError
from ._stream import deadline_after, outcome_with, rpc_error
from ._response import Request, Response, decode_message, encode_request
from ._status import StatusCode
from ._types import Decoder, MetadataTuple

__all__ = ["Stream", "Requests"]

T = TypeVar("T")

#: Requests for a streaming call: an iterable or an async iterable.
Requests = Union[Iterable[Request], AsyncIterable[Request]]

#: Starts a native asyncio operation: its outcome goes to the queue, for the future given.
_Start = Callable[[_native.CompletionQueue, "asyncio.Future[Any]"], _native.NativeCall]
#: Runs a start function and awaits its outcome; see ``aio._await``.
_Await = Callable[[_Start], Any]


class Stream(Generic[T]):
    """One streaming call for asyncio: ``await write()``, ``await done_writing()``, and
    ``async for`` (or ``await read()``) over the responses.

    A non-OK status raises :class:`grpcpool.RpcError` where the responses end. Cancelling a
    task that awaits a read or write cancels the call. One task may write while another reads;
    a second write while one waits (or a second read while one waits) raises RuntimeError at
    once, never queued. ``async with`` cancels a call not finished when the block ends.
    """

    def __init__(
        self,
        native: _native.NativeStream,
        awaiter: _Await,
        response_type: Optional[Decoder[Any]] = None,
        deadline: Optional[float] = None,
    ) -> None:
        self._native = native
        self._await = awaiter
        self._response_type = response_type
        self._deadline = deadline
        self._feeder: Optional[asyncio.Task[None]] = None
        self._request_error: Optional[BaseException] = None

    async def write(self, request: Request) -> None:
        """Sends one request under HTTP/2 flow control. Raises :class:`grpcpool.RpcError` if
        the call ended with an error, or with RESOURCE_EXHAUSTED for a request over
        ``max_send_message_size`` (not sent; the call goes on), and
        :class:`grpcpool.StreamClosedError` once it takes no more requests (a cancel wakes a
        write waiting on flow control that way). RuntimeError while another write waits."""
        payload = encode_request(request)
        if not await self._call(lambda queue, token: self._native.send_start(queue, token, payload)):
            raw = self._native.status()
            if raw is not None and raw[0] != 0:
                raise self._error(Response._from_native(raw))
            raise StreamClosedError("the call takes no more requests")

    async def done_writing(self) -> None:
        """Half-closes: no more requests come."""
        self._native.close_send()

    async def read(self) -> Optional[T]:
        """The next response (decoded with ``response_type``), or ``None`` after the last; a
        non-OK status raises :class:`grpcpool.RpcError` instead."""
        data: Optional[bytes] = await self._call(lambda queue, token: self._native.read_start(queue, token))
        if data is None:
            raw = self._native.status()
            if raw is not None:
                response = self._outcome(Response._from_native(raw))
                if response.code is not StatusCode.OK:
                    raise self._error(response)
            return None
        decoded: T = decode_message(self._response_type, data)
        return decoded

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        message = await self.read()
        if message is None:
            raise StopAsyncIteration
        return message

    async def initial_metadata(self) -> MetadataTuple:
        """The response headers, once they come; empty if the call ended without any."""
        headers: Optional[MetadataTuple] = await self._call(
            lambda queue, token: self._native.headers_start(queue, token)
        )
        return () if headers is None else headers

    async def finish(self) -> Response:
        """Half-closes, waits for the end (dropping responses not read) and returns the status,
        headers and trailers as a :class:`grpcpool.Response`."""
        raw = await self._call(lambda queue, token: self._native.finish_start(queue, token))
        return self._outcome(Response._from_native(raw))

    async def code(self) -> StatusCode:
        """The final status code (waits for the end; see :meth:`finish`)."""
        return (await self.finish()).code

    async def details(self) -> str:
        """The final status message (waits for the end)."""
        return (await self.finish()).details

    async def trailing_metadata(self) -> MetadataTuple:
        """The trailers (waits for the end)."""
        return (await self.finish()).trailers

    def cancel(self) -> bool:
        """Cancels the call; returns whether it was still running."""
        active = not self._native.done
        self._native.cancel()
        if self._feeder is not None:
            self._feeder.cancel()
        return active

    def done(self) -> bool:
        """Whether the call is over."""
        return self._native.done

    def time_remaining(self) -> Optional[float]:
        """Seconds left before the deadline; ``None`` without one."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    async def _call(self, start: _Start) -> Any:
        try:
            return await self._await(start)
        except asyncio.CancelledError:
            # The awaiting task was cancelled: so is the call.
            self.cancel()
            raise

    def _outcome(self, response: Response) -> Response:
        return outcome_with(response, self._request_error)

    def _error(self, response: Response) -> RpcError:
        return rpc_error(RpcError, response, self._request_error)

    async def _send_all(self, requests: Requests) -> None:
        """Writes every request, then half-closes; a failing iterator cancels the call."""
        try:
            if isinstance(requests, AsyncIterable):
                async for request in requests:
                    if not await self._send(request):
                        return
            else:
                for request in requests:
                    if not await self._send(request):
                        return
            self._native.close_send()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - reported as the call's status
            self._fail_request(error)

    def _fail_request(self, error: BaseException) -> None:
        """Ends the call because sending failed; ``error`` decides the status (see
        :func:`grpcpool._stream.outcome_with`)."""
        self._request_error = error
        self._native.cancel()

    async def _send(self, request: Request) -> bool:
        payload = encode_request(request)
        sent: bool = await self._await(lambda queue, token: self._native.send_start(queue, token, payload))
        return sent

    def _feed(self, requests: Requests) -> None:
        """Sends ``requests`` from a task on this loop while the caller reads."""
        self._feeder = asyncio.get_running_loop().create_task(self._send_all(requests))

    async def __aenter__(self) -> Stream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        if not self._native.done:
            self.cancel()

    def __repr__(self) -> str:
        return f"<grpcpool.aio.Stream {'ended' if self.done() else 'active'}>"
