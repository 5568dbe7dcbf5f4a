"""Stub of the native module; the public API is in the ``grpcpool`` package.

Checked against the built module by ``python -m mypy.stubtest grpcpool._native`` (test.sh).
"""

from typing import Any, List, Literal, Optional, Tuple, Union, final

from ._types import Metadata, MetadataTuple

__all__ = [
    "CompletionQueue",
    "LeaseReleasedError",
    "NativeCall",
    "NativeLease",
    "NativePool",
    "NativeStream",
    "PoolClosedError",
    "StatusError",
    "StreamClosedError",
    "BusyError",
    "call_option_names",
    "settings",
]

_NativeResponse = Tuple[int, str, bytes, MetadataTuple, MetadataTuple, bytes]
#: An asyncio future, settled by the event loop when it drains a CompletionQueue.
_Token = Any
#: How a setting's value is typed in core's table.
_SettingType = Literal["integer", "number", "duration", "bool", "pem", "text"]
#: A setting's default in Python's terms (durations in seconds); None when unset.
_SettingDefault = Union[int, float, bool, bytes, str, None]
#: One row of core's settings table: (name, type, what zero turns off, per_target, default).
_Setting = Tuple[str, _SettingType, Optional[str], bool, _SettingDefault]

def settings() -> Tuple[_Setting, ...]:
    """Core's settings table: every pool setting, which Pool takes as a keyword."""

def call_option_names() -> List[str]:
    """The per-call options every call takes (core's table)."""

@final
class CompletionQueue:
    """Outcomes of asyncio calls for one event loop, drained when fileno() is readable."""

    def __init__(self) -> None: ...
    def fileno(self) -> int: ...
    def drain(self) -> List[Tuple[Any, bool, Any]]: ...

@final
class NativeCall:
    def cancel(self) -> None: ...

@final
class NativeStream:
    """Core's SharedStream: one send and one read (or headers, or finish) at a time, a second
    refused with RuntimeError; cancel wakes every wait."""

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

class StreamClosedError(ValueError):
    """A streaming call takes no more requests."""

class BusyError(RuntimeError):
    """An operation of the same kind already waits on this stream, or calls are in flight on the lease."""

class StatusError(Exception):
    """Internal: an operation failed with a gRPC status; args are (code, message)."""

@final
class NativePool:
    def __new__(cls, **settings: Any) -> NativePool: ...
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
    def connectivity(self, target: str, try_to_connect: bool = False) -> int: ...
    def wait_connectivity_change(self, target: str, last: int, timeout: Optional[float] = None) -> int: ...
    def connectivity_change_start(
        self,
        queue: CompletionQueue,
        token: _Token,
        target: str,
        last: int,
        timeout: Optional[float] = None,
    ) -> NativeCall: ...
    def stats_json(self) -> str: ...
    def metrics_text(self) -> str: ...
    def set_endpoints(self, name: str, endpoints: List[Tuple[str, int]]) -> None: ...
    def leaked_leases(self) -> List[Tuple[str, str, float]]: ...
    def abandon(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def close(self, grace: float = 5.0) -> int: ...

@final
class NativeLease:
    def unary(
        self,
        method: str,
        request: bytes,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        wait_for_ready: bool = False,
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
        wait_for_ready: bool = False,
        compression: Optional[str] = None,
    ) -> NativeCall: ...
    def open_stream(
        self,
        method: str,
        timeout: Optional[float] = None,
        metadata: Optional[Metadata] = None,
        wait_for_ready: bool = False,
        compression: Optional[str] = None,
    ) -> NativeStream:
        """Uses the lease's slot until the call ends; the lease stays usable. RuntimeError
        while calls or another stream are in flight on the lease."""
    def release(self) -> None: ...
    @property
    def released(self) -> bool: ...
    @property
    def target(self) -> str: ...
    @property
    def address(self) -> str: ...
