"""``grpcpool.aio``: the same pool with ``async``/``await``, on the running asyncio loop.

::

    import grpcpool.aio

    async with grpcpool.aio.Pool(max_connections_per_target=4) as pool:
        async with await pool.acquire("http://127.0.0.1:50051", timeout=1.0) as lease:
            body = await lease.unary("/pkg.Service/Method", request, timeout=2.0)
        reply = await pool.unary(target, method, request, response_type=HelloReply)

Calls run on the pool's own threads; the event loop only waits. Cancelling the awaiting task
cancels the RPC (its HTTP/2 stream is reset).
"""

from __future__ import annotations

import asyncio
import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence, Tuple, Type, TypeVar, Union, overload

from . import _native
from ._completions import drain
from ._connectivity import Connectivity
from ._pool import Pool as _SyncPool
from ._pool import PoolOptions, _caller_site
from ._response import Request, Response, _NativeResponse, encode_request, response_body, status_error
from ._aio_channel import Channel
from ._aio_stream import Requests, Stream
from ._errors import RpcError
from ._stream import deadline_after, single_reply
from ._types import Decoder, Metadata

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Channel", "Pool", "Lease", "Stream"]

T = TypeVar("T")


#: Starts a native asyncio call: its outcome goes to the queue, for the future given.
Start = Callable[[_native.CompletionQueue, "asyncio.Future[Any]"], _native.NativeCall]

#: Each event loop's completion queue, watched by that loop.
_QUEUES: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _native.CompletionQueue]" = (
    weakref.WeakKeyDictionary()
)


def _queue_for(loop: asyncio.AbstractEventLoop) -> _native.CompletionQueue:
    """The loop's completion queue, made and watched on first use."""
    queue = _QUEUES.get(loop)
    if queue is None:
        queue = _native.CompletionQueue()
        loop.add_reader(queue.fileno(), drain, queue)
        _QUEUES[loop] = queue
    return queue


async def _await(start: Start) -> Any:
    """Starts a native call whose outcome comes back on this loop; cancelling cancels it."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    try:
        call = start(_queue_for(loop), future)
    except _native.StatusError as error:
        # Refused before it started (a request over max_send_message_size, say): the same
        # RpcError as when the outcome comes back through the queue.
        raise status_error(error) from None
    try:
        return await future
    except asyncio.CancelledError:
        call.cancel()
        raise


class Lease:
    """A slot on a pooled connection, for ``await``-ed calls. ``async with`` releases it."""

    def __init__(self, native: _native.NativeLease) -> None:
        self._native = native

    @property
    def target(self) -> str:
        """The target the lease is for."""
        return self._native.target

    @property
    def released(self) -> bool:
        """Whether the lease was released."""
        return self._native.released

    @overload
    async def unary(
        self,
        method: str,
        request: Request,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        wait_for_ready: bool = False,
        response_type: None = None,
    ) -> bytes: ...

    @overload
    async def unary(
        self,
        method: str,
        request: Request,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        wait_for_ready: bool = False,
        response_type: Decoder[T],
    ) -> T: ...

    async def unary(
        self,
        method: str,
        request: Request,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        wait_for_ready: bool = False,
        response_type: Optional[Decoder[Any]] = None,
    ) -> Any:
        """Makes a unary call; returns the body (decoded with ``response_type``). A non-OK
        status raises :class:`grpcpool.RpcError`."""
        raw = await self._start(method, request, timeout, metadata, compression, wait_for_ready)
        return response_body(raw, response_type)

    async def unary_response(
        self,
        method: str,
        request: Request,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        wait_for_ready: bool = False,
    ) -> Response:
        """Makes a unary call and returns the whole :class:`grpcpool.Response`."""
        return Response._from_native(await self._start(method, request, timeout, metadata, compression, wait_for_ready))

    async def _start(
        self,
        method: str,
        request: Request,
        timeout: Optional[float],
        metadata: Optional[Metadata],
        compression: Optional[str],
        wait_for_ready: bool,
    ) -> _NativeResponse:
        payload = encode_request(request)
        raw: _NativeResponse = await _await(
            lambda queue, token: self._native.unary_start(
                queue, token, method, payload, timeout, metadata, wait_for_ready, compression
            )
        )
        return raw

    @overload
    def stream(
        self,
        method: str,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        wait_for_ready: bool = False,
        response_type: None = None,
    ) -> Stream[bytes]: ...

    @overload
    def stream(
        self,
        method: str,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        wait_for_ready: bool = False,
        response_type: Decoder[T],
    ) -> Stream[T]: ...

    def stream(
        self,
        method: str,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        wait_for_ready: bool = False,
        response_type: Optional[Decoder[Any]] = None,
    ) -> Stream[Any]:
        """Opens a streaming call on this lease's connection (see :class:`Stream`). The stream
        uses the lease's slot until it ends and leaves the lease yours: make calls on it again
        once the stream is over, and release it as usual (the slot returns to the pool when
        both the lease is released and the stream is over). Raises RuntimeError while calls or
        another stream are in flight on the lease, and :class:`grpcpool.RpcError`
        (UNAVAILABLE) if the lease lost its connection."""
        deadline = deadline_after(timeout)
        try:
            native = self._native.open_stream(method, timeout, metadata, wait_for_ready, compression)
        except _native.StatusError as error:
            raise status_error(error) from None
        return Stream(native, _await, response_type, deadline)

    def release(self) -> None:
        """Gives the slot back to the pool."""
        self._native.release()

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.release()


class Pool:
    """:class:`grpcpool.Pool` for asyncio: the same settings (as keywords), awaitable calls."""

    def __init__(self, **options: Unpack[PoolOptions]) -> None:
        self._sync = _SyncPool(**options)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._sync.closed

    async def acquire(
        self, target: str, timeout: Optional[float] = None, *, wait_for_ready: bool = False
    ) -> Lease:
        """Acquires a lease on ``target``, waiting up to ``timeout`` seconds for a slot."""
        site = _caller_site()
        native: _native.NativeLease = await _await(
            lambda queue, token: self._sync._native.acquire_start(queue, token, target, timeout, wait_for_ready, site)
        )
        return Lease(native)

    @overload
    async def unary(
        self,
        target: str,
        method: str,
        request: Request,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: None = None,
        wait_for_ready: bool = False,
    ) -> bytes: ...

    @overload
    async def unary(
        self,
        target: str,
        method: str,
        request: Request,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: Decoder[T],
        wait_for_ready: bool = False,
    ) -> T: ...

    async def unary(
        self,
        target: str,
        method: str,
        request: Request,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: Optional[Decoder[Any]] = None,
        wait_for_ready: bool = False,
    ) -> Any:
        """A one-shot unary call: acquires, calls, releases. A non-OK status raises
        :class:`grpcpool.RpcError`."""
        raw = await self._start(target, method, request, timeout, metadata, wait_for_ready, compression)
        return response_body(raw, response_type)

    async def unary_response(
        self,
        target: str,
        method: str,
        request: Request,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        wait_for_ready: bool = False,
    ) -> Response:
        """A one-shot unary call returning the whole :class:`grpcpool.Response`."""
        raw = await self._start(target, method, request, timeout, metadata, wait_for_ready, compression)
        return Response._from_native(raw)

    async def _start(
        self,
        target: str,
        method: str,
        request: Request,
        timeout: Optional[float],
        metadata: Optional[Metadata],
        wait_for_ready: bool,
        compression: Optional[str],
    ) -> _NativeResponse:
        payload = encode_request(request)
        native = self._sync._native
        raw: _NativeResponse = await _await(
            lambda queue, token: native.unary_start(
                queue, token, target, method, payload, timeout, metadata, wait_for_ready, compression
            )
        )
        return raw

    @overload
    async def stream(
        self,
        target: str,
        method: str,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: None = None,
        wait_for_ready: bool = False,
    ) -> Stream[bytes]: ...

    @overload
    async def stream(
        self,
        target: str,
        method: str,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: Decoder[T],
        wait_for_ready: bool = False,
    ) -> Stream[T]: ...

    async def stream(
        self,
        target: str,
        method: str,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: Optional[Decoder[Any]] = None,
        wait_for_ready: bool = False,
    ) -> Stream[Any]:
        """Opens a streaming call on ``target`` (see :class:`Stream`); it holds a slot until it
        ends. An unreachable target raises :class:`grpcpool.RpcError`."""
        deadline = deadline_after(timeout)
        native: _native.NativeStream = await _await(
            lambda queue, token: self._sync._native.open_stream_start(
                queue, token, target, method, timeout, metadata, wait_for_ready, compression
            )
        )
        return Stream(native, _await, response_type, deadline)

    @overload
    async def unary_stream(
        self,
        target: str,
        method: str,
        request: Request,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: None = None,
        wait_for_ready: bool = False,
    ) -> Stream[bytes]: ...

    @overload
    async def unary_stream(
        self,
        target: str,
        method: str,
        request: Request,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: Decoder[T],
        wait_for_ready: bool = False,
    ) -> Stream[T]: ...

    async def unary_stream(
        self,
        target: str,
        method: str,
        request: Request,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: Optional[Decoder[Any]] = None,
        wait_for_ready: bool = False,
    ) -> Stream[Any]:
        """A server-streaming call: sends ``request``; ``async for`` over the returned stream
        gives the responses (a non-OK status raises where they end)."""
        payload = encode_request(request)
        stream = await self.stream(
            target,
            method,
            timeout=timeout,
            metadata=metadata,
            compression=compression,
            response_type=response_type,
            wait_for_ready=wait_for_ready,
        )
        try:
            await stream._send(payload)
        except RpcError as error:
            # Refused before it left (too large): the call fails with that status, reported
            # where the responses end, as in the sync API.
            stream._fail_request(error)
            return stream
        stream._native.close_send()
        return stream

    @overload
    async def stream_unary(
        self,
        target: str,
        method: str,
        requests: Requests,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: None = None,
        wait_for_ready: bool = False,
    ) -> bytes: ...

    @overload
    async def stream_unary(
        self,
        target: str,
        method: str,
        requests: Requests,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: Decoder[T],
        wait_for_ready: bool = False,
    ) -> T: ...

    async def stream_unary(
        self,
        target: str,
        method: str,
        requests: Requests,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: Optional[Decoder[Any]] = None,
        wait_for_ready: bool = False,
    ) -> Any:
        """A client-streaming call: sends every request (from an iterable or async iterable)
        and returns the one response; a non-OK status raises :class:`grpcpool.RpcError`."""
        stream = await self.stream(
            target,
            method,
            timeout=timeout,
            metadata=metadata,
            compression=compression,
            response_type=response_type,
            wait_for_ready=wait_for_ready,
        )
        async with stream:
            await stream._send_all(requests)
            message = await stream.read()
            response = await stream.finish()
            return single_reply(message, response, stream._error)

    @overload
    async def stream_stream(
        self,
        target: str,
        method: str,
        requests: Requests,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: None = None,
        wait_for_ready: bool = False,
    ) -> Stream[bytes]: ...

    @overload
    async def stream_stream(
        self,
        target: str,
        method: str,
        requests: Requests,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: Decoder[T],
        wait_for_ready: bool = False,
    ) -> Stream[T]: ...

    async def stream_stream(
        self,
        target: str,
        method: str,
        requests: Requests,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: Optional[Decoder[Any]] = None,
        wait_for_ready: bool = False,
    ) -> Stream[Any]:
        """A bidirectional call: a task on this loop sends ``requests`` (an iterable or async
        iterable), then half-closes, while you ``async for`` over the responses."""
        stream = await self.stream(
            target,
            method,
            timeout=timeout,
            metadata=metadata,
            compression=compression,
            response_type=response_type,
            wait_for_ready=wait_for_ready,
        )
        stream._feed(requests)
        return stream

    def connectivity(self, target: str, try_to_connect: bool = False) -> Connectivity:
        """The target's connectivity now (see :meth:`grpcpool.Pool.connectivity`)."""
        return self._sync.connectivity(target, try_to_connect)

    async def wait_for_connectivity_change(
        self, target: str, last: Connectivity, timeout: Optional[float] = None
    ) -> Connectivity:
        """Waits until the target's connectivity is other than ``last`` (or ``timeout``
        seconds pass) and returns the state then; a closed pool answers ``SHUTDOWN``."""
        native = self._sync._native
        state: int = await _await(
            lambda queue, token: native.connectivity_change_start(queue, token, target, int(last), timeout)
        )
        return Connectivity(state)

    def stats(self) -> Dict[str, Any]:
        """A snapshot of the pool's counters."""
        return self._sync.stats()

    def metrics_text(self) -> str:
        """The pool's metrics in the Prometheus text exposition format (see
        :meth:`grpcpool.Pool.metrics_text`)."""
        return self._sync.metrics_text()

    def set_endpoints(self, name: str, endpoints: Sequence[Union[str, Tuple[str, int]]]) -> None:
        """Sets the endpoints of ``static:///name`` targets (see
        :meth:`grpcpool.Pool.set_endpoints`); returns at once."""
        self._sync.set_endpoints(name, endpoints)

    def leaked_leases(self) -> Tuple[Tuple[str, str, float], ...]:
        """Leases held past ``lease_leak_threshold``: ``(target, where acquired, seconds held)``,
        where acquired being the ``file:line`` that awaited :meth:`acquire`."""
        return self._sync.leaked_leases()

    async def close(self, grace: float = 5.0) -> int:
        """Stops new work, waits up to ``grace`` seconds for calls in flight, then closes."""
        return await asyncio.get_running_loop().run_in_executor(None, self._sync.close, grace)

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        await self.close()
