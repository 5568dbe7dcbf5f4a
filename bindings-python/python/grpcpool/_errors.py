"""Exceptions raised by grpcpool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from ._native import BusyError, LeaseReleasedError, PoolClosedError, StreamClosedError
from ._status import StatusCode
from ._types import MetadataTuple

if TYPE_CHECKING:
    from ._response import Response

__all__ = ["RpcError", "PoolClosedError", "LeaseReleasedError", "StreamClosedError", "BusyError"]

# Shown as grpcpool.PoolClosedError in tracebacks, where users import them from.
PoolClosedError.__module__ = "grpcpool"
LeaseReleasedError.__module__ = "grpcpool"
StreamClosedError.__module__ = "grpcpool"
BusyError.__module__ = "grpcpool"


class RpcError(Exception):
    """A call ended with a status other than OK.

    Shaped like the error grpcio raises: ``code()``, ``details()``, ``initial_metadata()`` and
    ``trailing_metadata()`` behave as grpcio's do, so code written for grpcio keeps working.
    """

    def __init__(self, response: Response) -> None:
        super().__init__(response.code, response.details)
        self._response = response

    @property
    def response(self) -> Response:
        """The whole response: status, headers, trailers."""
        return self._response

    def code(self) -> StatusCode:
        """The status code."""
        return self._response.code

    def details(self) -> str:
        """The status message."""
        return self._response.details

    def initial_metadata(self) -> MetadataTuple:
        """The response headers."""
        return self._response.headers

    def trailing_metadata(self) -> MetadataTuple:
        """The response trailers; ``grpc-status-details-bin`` is included when the server sent
        rich status details, so ``grpc_status.rpc_status.from_call`` works on this error."""
        trailers = self._response.trailers
        if self._response.status_details:
            return trailers + (("grpc-status-details-bin", self._response.status_details),)
        return trailers

    def status_details(self) -> Optional[bytes]:
        """The encoded ``google.rpc.Status`` the server sent, if any."""
        return self._response.status_details or None

    def debug_error_string(self) -> str:
        """A one-line description, as grpcio offers."""
        return f"status {self.code().name}: {self.details()}"

    def __str__(self) -> str:
        return f'<RpcError code={self.code().name} details="{self.details()}">'

    __repr__ = __str__
