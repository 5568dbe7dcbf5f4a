"""The synchronous API: Pool, Lease and Response."""

from __future__ import annotations

import json
import os
import sys
import weakref
from types import TracebackType
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple, Type, TypeVar, Union, overload

from . import _native
from ._connectivity import Connectivity
from ._response import Request, Response, encode_request, response_body, status_error
from ._settings import PoolSettings, TargetSettings
from ._stream import Stream, deadline_after, stream_stream_call, stream_unary_call, unary_stream_call
from ._types import Decoder, Metadata, PathLike

if TYPE_CHECKING:
    # typing.Unpack is 3.11+; the package runs on 3.9, where only type checkers read this.
    from typing_extensions import Unpack


__all__ = ["Pool", "PoolOptions", "Lease", "Response"]

T = TypeVar("T")


class PoolOptions(PoolSettings, total=False):
    """What ``Pool`` and ``aio.Pool`` take: every setting of :class:`PoolSettings`, plus TLS
    material read from files, a Python convenience (the engine takes PEM, not paths)."""

    tls_ca_file: Optional[PathLike]
    """A PEM file of certificates to trust, instead of ``tls_ca_pem``."""
    tls_client_cert: Union[bytes, PathLike, None]
    """The client certificate chain (mTLS): PEM bytes, or a PEM file's path."""
    tls_client_key: Union[bytes, PathLike, None]
    """The client certificate's key: PEM bytes, or a PEM file's path."""
    targets: Optional[Dict[str, TargetSettings]]
    """Settings of single targets over the pool's, by target string (per-target settings
    only: TLS material, authority, connection counts, keepalive, service config, ...)."""


#: The file conveniences, each with the setting it fills.
_FROM_FILES = (
    ("tls_ca_file", "tls_ca_pem"),
    ("tls_client_cert", "tls_client_cert_pem"),
    ("tls_client_key", "tls_client_key_pem"),
)


def _settings_from(options: Dict[str, Any]) -> Dict[str, Any]:
    """The engine's settings from a pool's keyword arguments: the file conveniences read into
    the PEM settings they stand for, ``None`` values left out (the engine keeps its default)."""
    settings = {name: value for name, value in options.items() if value is not None}
    for convenience, setting in _FROM_FILES:
        if convenience not in settings:
            continue
        if setting in settings:
            raise ValueError(f"give {setting} or {convenience}, not both")
        settings[setting] = _read_pem(convenience, settings.pop(convenience))
    return settings


def _caller_site() -> str:
    frame = sys._getframe(2)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _read_pem(name: str, value: object) -> bytes:
    """PEM given as bytes, or read from a file path."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, (str, os.PathLike)):
        with open(value, "rb") as file:
            return file.read()
    raise TypeError(f"{name} takes PEM bytes or a file path, not {type(value).__name__}")


class Lease:
    """A slot on one pooled connection. Use it as a context manager, or call :meth:`release`.

    Calls on a lease share its connection. A lease that is garbage-collected unreleased gives
    its slot back then.
    """

    __slots__ = ("_native",)

    def __init__(self, native: _native.NativeLease) -> None:
        self._native = native

    @property
    def target(self) -> str:
        """The target the lease is for."""
        return self._native.target

    @property
    def address(self) -> str:
        """The address of the connection the lease holds ("" once released)."""
        return self._native.address

    @property
    def released(self) -> bool:
        """Whether the lease was released."""
        return self._native.released

    @overload
    def unary(
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
    def unary(
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

    def unary(
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
        """Makes a unary call; returns the response body (decoded with ``response_type``).

        ``method`` is ``/package.Service/Method``; ``timeout`` is in seconds (0: already expired,
        DEADLINE_EXCEEDED without sending). ``wait_for_ready`` matters when the call has to move
        to another connection (its own died before the request left): it then waits for the
        target instead of failing fast. A non-OK status raises :class:`RpcError`.
        """
        raw = self._native.unary(
            method, encode_request(request), timeout, metadata, wait_for_ready, compression
        )
        return response_body(raw, response_type)

    def unary_response(
        self,
        method: str,
        request: Request,
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        wait_for_ready: bool = False,
    ) -> Response:
        """Makes a unary call and returns the whole :class:`Response`, whatever its status."""
        return Response._from_native(self._native.unary(
            method, encode_request(request), timeout, metadata, wait_for_ready, compression
        ))

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
        """Opens a streaming call on this lease's connection; write and read it (see
        :class:`grpcpool.Stream`). The stream uses the lease's slot until it ends and leaves
        the lease yours: make calls on it again once the stream is over, and release it as
        usual (the slot returns to the pool when both the lease is released and the stream is
        over). Raises RuntimeError while calls or another stream are in flight on the lease,
        and :class:`RpcError` (UNAVAILABLE) if the lease lost its connection."""
        deadline = deadline_after(timeout)
        try:
            native = self._native.open_stream(method, timeout, metadata, wait_for_ready, compression)
        except _native.StatusError as error:
            raise status_error(error) from None
        return Stream(native, response_type, deadline)

    def release(self) -> None:
        """Gives the slot back to the pool. Further calls raise :class:`LeaseReleasedError`."""
        self._native.release()

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self._native.release()

    def __repr__(self) -> str:
        state = "released" if self.released else self.address
        return f"<grpcpool.Lease {self.target} {state}>"


class Pool:
    """A pool of long-lived, multiplexed gRPC connections, lent out as leases.

    Every setting of :class:`grpcpool.PoolSettings` (the engine's settings table) is a keyword
    of the same name; ``None`` keeps the engine's default. Durations are in seconds; for the
    settings that can be turned off (such as ``keepalive_time``), 0 or ``float("inf")`` turns
    them off. PEM settings take bytes, or the PEM text as a str; ``tls_ca_file``,
    ``tls_client_cert`` and ``tls_client_key`` read PEM from files instead (see
    :class:`grpcpool.PoolOptions`). An unknown keyword or a value of the wrong type raises
    TypeError, a value out of range ValueError. Targets look like ``http://host:port`` or
    ``https://host:port``.

    After ``fork()`` the child's pool starts afresh with the same settings; leases taken in the
    parent refuse calls in the child (:class:`PoolClosedError`).
    """

    def __init__(self, **options: Unpack[PoolOptions]) -> None:
        settings = _settings_from(dict(options))
        #: What the pool was made with, to make it again in a child process after fork().
        self._settings = settings
        self._native = _native.NativePool(**settings)
        _POOLS.add(self)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._native.closed

    def acquire(
        self, target: str, timeout: Optional[float] = None, *, wait_for_ready: bool = False
    ) -> Lease:
        """Acquires a lease on ``target``, waiting up to ``timeout`` seconds for a slot.

        Raises :class:`RpcError` (UNAVAILABLE) at once when the target cannot be reached, or
        DEADLINE_EXCEEDED when no slot frees in time; ValueError for a malformed target.
        """
        try:
            native = self._native.acquire(target, timeout, wait_for_ready, _caller_site())
        except _native.StatusError as error:
            raise status_error(error) from None
        return Lease(native)

    @overload
    def unary(
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
    def unary(
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

    def unary(
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
        """A one-shot unary call: acquires, calls, releases. Returns the body (decoded with
        ``response_type``); a non-OK status, including an unreachable target, raises
        :class:`RpcError`."""
        raw = self._native.unary(
            target, method, encode_request(request), timeout, metadata, wait_for_ready, compression
        )
        return response_body(raw, response_type)

    def unary_response(
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
        """A one-shot unary call returning the whole :class:`Response`, whatever its status."""
        raw = self._native.unary(
            target, method, encode_request(request), timeout, metadata, wait_for_ready, compression
        )
        return Response._from_native(raw)

    @overload
    def stream(
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
    def stream(
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

    def stream(
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
        """Opens a streaming call on ``target`` (any kind: write requests, read responses;
        see :class:`grpcpool.Stream`). It holds a slot until it ends. An unreachable target
        raises :class:`RpcError`."""
        deadline = deadline_after(timeout)
        try:
            native = self._native.open_stream(
                target, method, timeout, metadata, wait_for_ready, compression
            )
        except _native.StatusError as error:
            raise status_error(error) from None
        return Stream(native, response_type, deadline)

    @overload
    def unary_stream(
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
    def unary_stream(
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

    def unary_stream(
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
        """A server-streaming call: sends ``request``; iterate the returned stream for the
        responses (a non-OK status raises :class:`RpcError` where they end)."""
        payload = encode_request(request)
        stream = self.stream(
            target,
            method,
            timeout=timeout,
            metadata=metadata,
            compression=compression,
            response_type=response_type,
            wait_for_ready=wait_for_ready,
        )
        return unary_stream_call(stream, payload)

    @overload
    def stream_unary(
        self,
        target: str,
        method: str,
        requests: Iterable[Request],
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: None = None,
        wait_for_ready: bool = False,
    ) -> bytes: ...

    @overload
    def stream_unary(
        self,
        target: str,
        method: str,
        requests: Iterable[Request],
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: Decoder[T],
        wait_for_ready: bool = False,
    ) -> T: ...

    def stream_unary(
        self,
        target: str,
        method: str,
        requests: Iterable[Request],
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: Optional[Decoder[Any]] = None,
        wait_for_ready: bool = False,
    ) -> Any:
        """A client-streaming call: sends every request of ``requests``, then returns the one
        response; a non-OK status raises :class:`RpcError`."""
        stream = self.stream(
            target,
            method,
            timeout=timeout,
            metadata=metadata,
            compression=compression,
            response_type=response_type,
            wait_for_ready=wait_for_ready,
        )
        return stream_unary_call(stream, requests)[0]

    @overload
    def stream_stream(
        self,
        target: str,
        method: str,
        requests: Iterable[Request],
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: None = None,
        wait_for_ready: bool = False,
    ) -> Stream[bytes]: ...

    @overload
    def stream_stream(
        self,
        target: str,
        method: str,
        requests: Iterable[Request],
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: Decoder[T],
        wait_for_ready: bool = False,
    ) -> Stream[T]: ...

    def stream_stream(
        self,
        target: str,
        method: str,
        requests: Iterable[Request],
        *,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
        response_type: Optional[Decoder[Any]] = None,
        wait_for_ready: bool = False,
    ) -> Stream[Any]:
        """A bidirectional call: a background thread sends ``requests`` (then half-closes)
        while you iterate the returned stream for the responses."""
        stream = self.stream(
            target,
            method,
            timeout=timeout,
            metadata=metadata,
            compression=compression,
            response_type=response_type,
            wait_for_ready=wait_for_ready,
        )
        return stream_stream_call(stream, requests)

    def connectivity(self, target: str, try_to_connect: bool = False) -> Connectivity:
        """The target's connectivity now, in gRPC's states. A target not in use is ``IDLE``;
        ``try_to_connect`` starts it connecting (asking alone never dials). Raises
        ``ValueError`` for a target that does not parse."""
        return Connectivity(self._native.connectivity(target, try_to_connect))

    def wait_for_connectivity_change(
        self, target: str, last: Connectivity, timeout: Optional[float] = None
    ) -> Connectivity:
        """Blocks until the target's connectivity is other than ``last`` (or ``timeout``
        seconds pass) and returns the state then; a closed pool answers ``SHUTDOWN``."""
        return Connectivity(self._native.wait_connectivity_change(target, int(last), timeout))

    def stats(self) -> Dict[str, Any]:
        """A snapshot of the pool's counters: totals and one entry per target under ``targets``."""
        stats: Dict[str, Any] = json.loads(self._native.stats_json())
        return stats

    def metrics_text(self) -> str:
        """The pool's metrics in the Prometheus text exposition format: gRPC's OpenTelemetry
        client metrics (``grpc_client_call_duration_seconds`` and the rest, by method, target
        and status) and the pool's own ``grpcpool_*``; ``grpcpool.metrics.Collector`` serves
        them to ``prometheus_client``."""
        return self._native.metrics_text()

    def set_endpoints(self, name: str, endpoints: Sequence[Union[str, Tuple[str, int]]]) -> None:
        """Sets the endpoints of ``static:///name`` targets: ``"host:port"`` (an IP literal,
        ``"[v6]:port"`` or a name resolved as DNS targets are) or ``"unix:/path"`` each, or
        ``(endpoint, weight)`` with a weight of 1 or more, which round_robin gives that many
        turns per round. Every target naming it follows at once: connections to new addresses
        open before those to removed ones drain, so calls in flight finish; with none, calls
        that are not wait-for-ready fail fast with UNAVAILABLE. Raises ``ValueError`` naming a
        bad name, endpoint or weight."""
        if isinstance(endpoints, (str, bytes)):
            raise TypeError("endpoints must be a sequence of strings, not one string")
        weighted: List[Tuple[str, int]] = []
        for entry in endpoints:
            if isinstance(entry, tuple):
                endpoint, weight = entry
                if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 0xFFFFFFFF:
                    raise ValueError(f"{endpoint!r}: a weight is an int of 1 or more, not {weight!r}")
                weighted.append((endpoint, weight))
            else:
                weighted.append((entry, 1))
        self._native.set_endpoints(name, weighted)

    def leaked_leases(self) -> Tuple[Tuple[str, str, float], ...]:
        """Leases held past ``lease_leak_threshold``: ``(target, where acquired, seconds held)``."""
        return tuple(self._native.leaked_leases())

    def close(self, grace: float = 5.0) -> int:
        """Stops new work, waits up to ``grace`` seconds for calls in flight, then closes every
        connection. Returns how many slots were still in use. Closing twice does nothing."""
        return self._native.close(grace)

    def _renew_after_fork(self) -> None:
        """In a forked child: leaves the parent's native pool alone and makes a fresh one."""
        old = self._native
        old.abandon()
        if not old.closed:
            self._native = _native.NativePool(**self._settings)

    def __enter__(self) -> Pool:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<grpcpool.Pool{' closed' if self.closed else ''}>"


#: Every live pool, renewed in a child process after fork().
_POOLS: weakref.WeakSet[Pool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pool in list(_POOLS):
        pool._renew_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
