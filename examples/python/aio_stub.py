"""A grpcio-generated asyncio stub over grpcpool: the code written for grpc.aio, with
``grpcpool.aio.Channel`` where ``grpc.aio.insecure_channel`` was, and an auth interceptor.

It generates examples/greeter.proto's modules with grpcio-tools, starts a grpc.aio server on loopback
that wants a token, and calls it through a pool:

    pip install grpcio grpcio-tools grpcpool-wheel.whl
    python examples/python/aio_stub.py
"""

import asyncio
import pathlib
import sys
import tempfile

import grpc
from grpc_tools import protoc

import grpcpool.aio

TOKEN = "Bearer example-token"


def generate(out: pathlib.Path) -> None:
    """greeter_pb2 and greeter_pb2_grpc, generated into ``out`` and importable from there."""
    protos = pathlib.Path(__file__).resolve().parent.parent  # examples/greeter.proto, shared with Node's
    status = protoc.main(
        ["protoc", f"-I{protos}", f"--python_out={out}", f"--grpc_python_out={out}", str(protos / "greeter.proto")]
    )
    if status != 0:
        raise SystemExit(f"protoc failed with {status}")
    sys.path.insert(0, str(out))


class Auth(grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.StreamStreamClientInterceptor):
    """Adds the token to every call, as a real auth interceptor would."""

    def _details(self, details):
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata.add("authorization", TOKEN)
        return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, None, details.wait_for_ready)

    async def intercept_unary_unary(self, continuation, details, request):
        return await continuation(self._details(details), request)

    async def intercept_stream_stream(self, continuation, details, requests):
        return await continuation(self._details(details), requests)


async def serve(greeter_pb2, greeter_pb2_grpc):
    class Greeter(greeter_pb2_grpc.GreeterServicer):
        async def SayHello(self, request, context):
            if dict(context.invocation_metadata()).get("authorization") != TOKEN:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no token")
            return greeter_pb2.HelloReply(message=f"hello, {request.name}")

        async def SayHelloToMany(self, requests, context):
            async for request in requests:
                yield greeter_pb2.HelloReply(message=f"hello, {request.name}")

    server = grpc.aio.server()
    greeter_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"http://127.0.0.1:{port}"


async def main() -> None:
    with tempfile.TemporaryDirectory() as out:
        generate(pathlib.Path(out))
        import greeter_pb2
        import greeter_pb2_grpc

        server, target = await serve(greeter_pb2, greeter_pb2_grpc)
        try:
            async with grpcpool.aio.Pool(max_connections_per_target=2) as pool:
                channel = grpcpool.aio.Channel(pool, target, interceptors=[Auth()])
                stub = greeter_pb2_grpc.GreeterStub(channel)
                reply = await stub.SayHello(greeter_pb2.HelloRequest(name="pool"), timeout=5.0)
                print("unary:", reply.message)
                # Many calls at once share the pool's connections.
                replies = await asyncio.gather(
                    *(stub.SayHello(greeter_pb2.HelloRequest(name=str(n)), timeout=5.0) for n in range(20))
                )
                print("concurrent:", len(replies), "replies")
                chat = stub.SayHelloToMany(timeout=5.0)
                for name in ("a", "b"):
                    await chat.write(greeter_pb2.HelloRequest(name=name))
                    print("bidi:", (await chat.read()).message)
                await chat.done_writing()
                print("connectivity:", channel.get_state().name)
                print("pool:", pool.stats()["calls_succeeded"], "calls succeeded")
        finally:
            await server.stop(None)


if __name__ == "__main__":
    asyncio.run(main())
