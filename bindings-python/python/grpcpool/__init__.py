"""grpcpool: pooled, multiplexed gRPC connections, backed by a Rust engine.

::

    import grpcpool

    with grpcpool.Pool(max_connections_per_target=4) as pool:
        with pool.acquire("http://127.0.0.1:50051", timeout=1.0) as lease:
            body = lease.unary("/pkg.Service/Method", request, timeout=2.0)
        reply = pool.unary(target, method, request, response_type=HelloReply)
"""

from ._channel import Channel
from ._connectivity import Connectivity
from ._errors import BusyError, LeaseReleasedError, PoolClosedError, RpcError, StreamClosedError
from ._pool import Lease, Pool, PoolOptions
from ._response import Request, Response
from ._settings import PoolSettings, TargetSettings
from ._status import StatusCode
from ._stream import Stream
from ._types import Decoder, Message, Metadata, MetadataTuple, MetadataValue

# Last, as everything it uses is loaded by now: `import grpcpool` alone makes grpcpool.aio
# usable, as `import grpc` does grpc.aio.
from . import aio

__all__ = [
    "BusyError",
    "Channel",
    "Connectivity",
    "Decoder",
    "Lease",
    "LeaseReleasedError",
    "Message",
    "Metadata",
    "MetadataTuple",
    "MetadataValue",
    "Pool",
    "PoolClosedError",
    "PoolOptions",
    "PoolSettings",
    "TargetSettings",
    "Request",
    "Response",
    "RpcError",
    "StatusCode",
    "Stream",
    "StreamClosedError",
    "aio",
]
