"""Stub of the native module; the public API is in the ``grpcpool`` package."""

from typing import Any, Callable, List, Optional, Tuple

from ._types import Metadata, MetadataTuple

_NativeResponse = Tuple[int, str, bytes, MetadataTuple, MetadataTuple, bytes]
#: An asyncio future, settled by the event loop when it drains a CompletionQueue.
_Token = Any

class CompletionQueue:
    """Outcomes of asyncio calls for one event loop, drained when fileno() is readable."""

    def __init__(self) -> None: ...
    def fileno(self) -> int: ...
    def drain(self) -> List[Tuple[Any, bool, Any]]: ...

class NativeCall:
    def cancel(self) -> None: ...

class NativeStream:
    def send(self, message: bytes) -> bool: ...
    def send_start(self, queue: CompletionQueue, token: _Token, message: bytes) -> NativeCall: ...
    def close_send(self) -> None: ...
    def read(self) -> Optional[bytes]: ...
    def read_start(self, queue: CompletionQueue, token: _Token) -> NativeCall: ...
    def headers(self) -> Optional[MetadataTuple]: ...
    def headers_start(self, queue: CompletionQueue, token: _Token) -> NativeCall: ...
    def finish(self) -> _NativeResponse: ...
    def finish_start(self, queue: CompletionQueue, token: _Token) -> NativeCall: ...
    def cancel(self) -> None: ...
    def status(self) -> Optional[_NativeResponse]: ...
    @property
    def done(self) -> bool: ...

class PoolClosedError(ValueError):
    """The pool is closed: it makes no more leases or calls."""

class LeaseReleasedError(ValueError):
    """The lease was released: make calls on a new one."""

class StatusError(Exception):
    """Internal: an acquire failed with a gRPC status; args are (code, message)."""

class NativePool:
    def __init__(self, **settings: Any) -> None: ...
    def acquire(
        self,
        target: str,
        timeout: Optional[float] = None,
        wait_for_ready: bool = False,
        site: Optional[str] = None,
    ) -> NativeLease: ...
    def unary(
        self,
        target: str,
        method: str,
        request: bytes,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        wait_for_ready: bool = False,
        compression: Optional[str] = None,
    ) -> _NativeResponse: ...
    def acquire_start(
        self,
        queue: CompletionQueue,
        token: _Token,
        target: str,
        timeout: Optional[float] = None,
        wait_for_ready: bool = False,
        site: Optional[str] = None,
    ) -> NativeCall: ...
    def unary_start(
        self,
        queue: CompletionQueue,
        token: _Token,
        target: str,
        method: str,
        request: bytes,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        wait_for_ready: bool = False,
        compression: Optional[str] = None,
    ) -> NativeCall: ...
    def open_stream(
        self,
        target: str,
        method: str,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        wait_for_ready: bool = False,
        compression: Optional[str] = None,
    ) -> NativeStream: ...
    def open_stream_start(
        self,
        queue: CompletionQueue,
        token: _Token,
        target: str,
        method: str,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        wait_for_ready: bool = False,
        compression: Optional[str] = None,
    ) -> NativeCall: ...
    def stats_json(self) -> str: ...
    def leaked_leases(self) -> List[Tuple[str, str, float]]: ...
    def abandon(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def close(self, grace: float = 5.0) -> int: ...

class NativeLease:
    def unary(
        self,
        method: str,
        request: bytes,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
    ) -> _NativeResponse: ...
    def unary_start(
        self,
        queue: CompletionQueue,
        token: _Token,
        method: str,
        request: bytes,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
    ) -> NativeCall: ...
    def open_stream(
        self,
        method: str,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        compression: Optional[str] = None,
    ) -> NativeStream: ...
    def release(self) -> None: ...
    @property
    def released(self) -> bool: ...
    @property
    def target(self) -> str: ...
    @property
    def address(self) -> str: ...
