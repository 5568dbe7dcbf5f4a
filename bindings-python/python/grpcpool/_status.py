"""gRPC status codes, named and valued as in ``grpc.StatusCode``."""

from __future__ import annotations

import enum
from typing import Dict, Tuple


@enum.unique
class StatusCode(enum.Enum):
    """A gRPC status code. ``value`` is ``(number, description)``, as in grpcio."""

    OK = (0, "ok")
    CANCELLED = (1, "cancelled")
    UNKNOWN = (2, "unknown")
    INVALID_ARGUMENT = (3, "invalid argument")
    DEADLINE_EXCEEDED = (4, "deadline exceeded")
    NOT_FOUND = (5, "not found")
    ALREADY_EXISTS = (6, "already exists")
    PERMISSION_DENIED = (7, "permission denied")
    RESOURCE_EXHAUSTED = (8, "resource exhausted")
    FAILED_PRECONDITION = (9, "failed precondition")
    ABORTED = (10, "aborted")
    OUT_OF_RANGE = (11, "out of range")
    UNIMPLEMENTED = (12, "unimplemented")
    INTERNAL = (13, "internal")
    UNAVAILABLE = (14, "unavailable")
    DATA_LOSS = (15, "data loss")
    UNAUTHENTICATED = (16, "unauthenticated")

    @property
    def number(self) -> int:
        """The code's number on the wire."""
        number: int = self.value[0]
        return number

    @classmethod
    def from_number(cls, number: int) -> StatusCode:
        """The code for a wire number; numbers outside 0-16 are UNKNOWN, as gRPC specifies."""
        return _BY_NUMBER.get(number, StatusCode.UNKNOWN)


_BY_NUMBER: Dict[int, StatusCode] = {code.value[0]: code for code in StatusCode}

__all__: Tuple[str, ...] = ("StatusCode",)
