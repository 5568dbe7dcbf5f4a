"""Type aliases shared by the package."""

from __future__ import annotations

import os
from typing import Protocol, Sequence, Tuple, TypeVar, Union


__all__ = ["MetadataValue", "Metadata", "MetadataTuple", "Message", "Decoder", "PathLike"]

#: A metadata value: text for ordinary keys, bytes for keys ending in ``-bin``.
MetadataValue = Union[str, bytes]
#: Request metadata: ``(key, value)`` pairs; a key may repeat.
Metadata = Sequence[Tuple[str, MetadataValue]]
#: Received metadata, as a tuple of ``(key, value)`` pairs.
MetadataTuple = Tuple[Tuple[str, MetadataValue], ...]
#: A file path.
PathLike = Union[str, "os.PathLike[str]"]

T_co = TypeVar("T_co", covariant=True)


class Message(Protocol):
    """Anything that encodes itself, such as a protobuf message."""

    def SerializeToString(self) -> bytes: ...


class Decoder(Protocol[T_co]):
    """Anything that decodes a message, such as a protobuf message class."""

    def FromString(self, data: bytes, /) -> T_co: ...
