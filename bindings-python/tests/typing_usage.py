"""Checked by mypy --strict (not run): the public API's types as a user's code sees them."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

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
        # A stream on the lease leaves the lease usable once it is over.
        with lease.stream("/p.S/Chat", timeout=1.0, response_type=Reply) as stream:
            assert_type(stream, grpcpool.Stream[Reply])
            stream.write(Request())
            assert_type(stream.read(), Optional[Reply])
            assert_type(stream.finish(), grpcpool.Response)
        assert_type(lease.unary("/p.S/M", b""), bytes)
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


async def aio_usage(target: str) -> None:
    # `import grpcpool` alone gives grpcpool.aio.
    async with grpcpool.aio.Pool(backoff_multiplier=2.0, keepalive_time=0) as pool:
        assert_type(await pool.unary(target, "/p.S/M", b"", wait_for_ready=True), bytes)
        assert_type(pool.leaked_leases(), Tuple[Tuple[str, str, float], ...])
        async with await pool.acquire(target) as lease:
            assert_type(await lease.unary("/p.S/M", b"", wait_for_ready=True), bytes)
            async with lease.stream("/p.S/Chat", response_type=Reply) as stream:
                assert_type(stream, grpcpool.aio.Stream[Reply])
                await stream.write(Request())
                assert_type(await stream.read(), Optional[Reply])
            assert_type(await lease.unary("/p.S/M", b""), bytes)


def settings_usage(pem: bytes) -> None:
    # Every setting of the engine's table is a typed keyword; the file conveniences beside them.
    grpcpool.Pool(
        max_connections_per_target=4,
        keepalive_time=30.0,
        keepalive_while_idle=False,
        backoff_initial=0.5,
        tls_ca_pem=pem,
        tls_server_name="example.com",
    )
    grpcpool.Pool(tls_ca_pem=pem.decode(), tls_client_cert="cert.pem", tls_client_key=pem)
    settings: grpcpool.PoolSettings = {"idle_timeout": 60.0, "worker_threads": 2}
    grpcpool.Pool(**settings)
    # mypy --strict flags an unused ignore, so these prove the mistakes are caught.
    grpcpool.Pool(max_connection=4)  # type: ignore[call-arg]
    grpcpool.Pool(keepalive_time="30s")  # type: ignore[arg-type]


async def channel_usage(pool: grpcpool.Pool, aio_pool: grpcpool.aio.Pool, target: str) -> None:
    # Connectivity is typed on both pools; the channels take what grpcio's do.
    assert_type(pool.connectivity(target, try_to_connect=True), grpcpool.Connectivity)
    assert_type(pool.wait_for_connectivity_change(target, grpcpool.Connectivity.IDLE, 1.0), grpcpool.Connectivity)
    assert_type(await aio_pool.wait_for_connectivity_change(target, grpcpool.Connectivity.READY), grpcpool.Connectivity)
    channel = grpcpool.Channel(pool, target)
    channel.subscribe(lambda state: None, try_to_connect=True)
    channel.close()
    async with grpcpool.aio.Channel(aio_pool, target, interceptors=[]) as aio_channel:
        aio_channel.unary_unary("/p.S/M")
