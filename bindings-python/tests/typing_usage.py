"""Checked by mypy --strict (not run): the public API's types as a user's code sees them."""

from __future__ import annotations

from typing import Any, Dict

from typing_extensions import assert_type

import grpcpool


class Reply:
    @classmethod
    def FromString(cls, data: bytes) -> Reply:
        return cls()


class Request:
    def SerializeToString(self) -> bytes:
        return b""


def usage(pool: grpcpool.Pool, target: str) -> None:
    with pool.acquire(target, timeout=1.0) as lease:
        assert_type(lease, grpcpool.Lease)
        assert_type(lease.unary("/p.S/M", b"", timeout=1.0), bytes)
        assert_type(lease.unary("/p.S/M", Request(), response_type=Reply), Reply)
        response = lease.unary_response("/p.S/M", b"", metadata=[("k", "v"), ("k-bin", b"\0")])
        assert_type(response, grpcpool.Response)
        assert_type(response.code, grpcpool.StatusCode)
        assert_type(response.decode(Reply), Reply)
    assert_type(pool.unary(target, "/p.S/M", Request()), bytes)
    assert_type(pool.unary(target, "/p.S/M", b"", response_type=Reply), Reply)
    assert_type(pool.stats(), Dict[str, Any])
    try:
        pool.unary(target, "/p.S/M", b"")
    except grpcpool.RpcError as error:
        assert_type(error.code(), grpcpool.StatusCode)
        assert_type(error.details(), str)
        assert_type(error.trailing_metadata(), grpcpool.MetadataTuple)
    assert_type(pool.close(), int)
