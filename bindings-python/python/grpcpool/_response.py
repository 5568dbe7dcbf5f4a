"""Responses and requests: :class:`Response`, and how requests become bytes."""

from __future__ import annotations

from typing import Any, Optional, Tuple, Type, TypeVar, Union

from . import _native
from ._errors import RpcError
from ._status import StatusCode
from ._types import Decoder, Message, MetadataTuple

__all__ = ["Request", "Response", "encode_request", "status_error"]

T = TypeVar("T")

#: What a request may be: encoded bytes, or a message that encodes itself.
Request = Union[bytes, bytearray, memoryview, Message]

_NativeResponse = Tuple[int, str, bytes, MetadataTuple, MetadataTuple, bytes]


class Response:
    """The whole outcome of a unary call: status, headers, trailers and body."""

    __slots__ = ("code", "details", "status_details", "headers", "trailers", "body")

    def __init__(
        self,
        code: StatusCode,
        details: str,
        status_details: bytes,
        headers: MetadataTuple,
        trailers: MetadataTuple,
        body: bytes,
    ) -> None:
        #: The status code.
        self.code = code
        #: The status message (grpcio's ``details()``).
        self.details = details
        #: The encoded ``google.rpc.Status`` from ``grpc-status-details-bin``; empty if none.
        self.status_details = status_details
        #: Response headers (initial metadata).
        self.headers = headers
        #: Response trailers (trailing metadata).
        self.trailers = trailers
        #: The response message; empty unless the status is OK.
        self.body = body

    @classmethod
    def _from_native(cls, raw: _NativeResponse) -> Response:
        code, details, status_details, headers, trailers, body = raw
        return cls(StatusCode.from_number(code), details, status_details, headers, trailers, body)

    @property
    def ok(self) -> bool:
        """Whether the status is OK."""
        return self.code is StatusCode.OK

    def raise_for_status(self) -> None:
        """Raises :class:`RpcError` unless the status is OK."""
        if self.code is not StatusCode.OK:
            raise RpcError(self)

    def decode(self, response_type: Decoder[T]) -> T:
        """Decodes the body with ``response_type.FromString`` (raising on a non-OK status)."""
        self.raise_for_status()
        return response_type.FromString(self.body)

    def __repr__(self) -> str:
        return (
            f"Response(code={self.code.name}, details={self.details!r}, "
            f"body={len(self.body)} bytes, headers={self.headers!r}, trailers={self.trailers!r})"
        )


def encode_request(request: object) -> bytes:
    """A request as bytes: bytes-like as is, a message by its ``SerializeToString()``."""
    if isinstance(request, bytes):
        return request
    if isinstance(request, (bytearray, memoryview)):
        return bytes(request)
    if isinstance(request, str):
        raise TypeError(
            "a request must be bytes or a protobuf message, not str: encode the text first"
        )
    serialize = getattr(request, "SerializeToString", None)
    if serialize is None:
        raise TypeError(
            "a request must be bytes or a message with SerializeToString(), "
            f"not {type(request).__name__}"
        )
    data = serialize()
    if not isinstance(data, bytes):
        raise TypeError(f"{type(request).__name__}.SerializeToString() did not return bytes")
    return data


def response_body(raw: _NativeResponse, response_type: Optional[Decoder[Any]]) -> Any:
    """The body of a native response (decoded), or RpcError for a non-OK status."""
    if raw[0] != 0:
        raise RpcError(Response._from_native(raw))
    if response_type is None:
        return raw[5]
    return response_type.FromString(raw[5])


def status_error(error: _native.StatusError, error_type: Type[RpcError] = RpcError) -> RpcError:
    """The :class:`RpcError` for a failure the engine reports as a gRPC status where the
    operation has no response to carry it (an acquire, a stream's open or send)."""
    code, message = error.args
    return error_type(Response(StatusCode.from_number(code), message, b"", (), (), b""))


def decode_message(response_type: Optional[Decoder[Any]], data: bytes) -> Any:
    """A received message: bytes as they came, or decoded with ``response_type.FromString``."""
    return data if response_type is None else response_type.FromString(data)
