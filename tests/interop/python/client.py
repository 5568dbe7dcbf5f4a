"""gRPC interop cases through grpcpool's Python face, against the grpc-go interop server.

Run by tests/interop's runner with the venv that bindings-python/test.sh makes (grpcpool,
grpcio-tools and protobuf installed). Environment: GRPCPOOL_INTEROP_TARGET (http:// or
https://127.0.0.1:PORT); for TLS also GRPCPOOL_INTEROP_CA_FILE and
GRPCPOOL_INTEROP_SERVER_NAME. Prints one line per case, then "N passed, M failed"; exits 1 on
any failure. The grpc.testing messages are generated from ../grpc_testing.proto.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Dict, List, Tuple

import grpcpool
from grpcpool import StatusCode

SERVICE = "/grpc.testing.TestService/"
SIZES: List[Tuple[int, int]] = [(27_182, 31_415), (8, 9), (1_828, 2_653), (45_904, 58_979)]
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
ECHO_INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
ECHO_TRAILING = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")
#: Each case's deadline, seconds.
TIMEOUT = 20.0


class CaseFailed(Exception):
    """What was wrong with a case."""


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise CaseFailed(what)


def generated_messages() -> ModuleType:
    """grpc.testing's messages, generated now by grpcio-tools from grpc_testing.proto."""
    out = Path(tempfile.mkdtemp(prefix="grpcpool-interop-py-"))
    source = Path(__file__).resolve().parent.parent / "grpc_testing.proto"
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{source.parent}", f"--python_out={out}", str(source)],
        check=True,
    )
    sys.path.insert(0, str(out))
    import grpc_testing_pb2  # type: ignore[import-not-found]

    module: ModuleType = grpc_testing_pb2
    return module


class Cases:
    """The cases, each a method taking nothing and raising CaseFailed (or RpcError) on failure."""

    def __init__(self, pool: grpcpool.Pool, target: str, pb: ModuleType) -> None:
        self.pool = pool
        self.target = target
        self.pb = pb

    def large_request(self) -> Any:
        return self.pb.SimpleRequest(response_size=314_159, payload=self.pb.Payload(body=bytes(271_828)))

    def check_large(self, reply: Any) -> None:
        expect(reply.payload.body == bytes(314_159), f"payload of {len(reply.payload.body)} bytes")

    def check_echoed(self, headers: Tuple[Any, ...], trailers: Tuple[Any, ...]) -> None:
        expect(ECHO_INITIAL in headers, f"initial metadata not echoed: {headers!r}")
        expect(ECHO_TRAILING in trailers, f"trailing metadata not echoed: {trailers!r}")

    def empty_unary(self) -> None:
        reply = self.pool.unary(
            self.target, SERVICE + "EmptyCall", self.pb.Empty(), timeout=TIMEOUT, response_type=self.pb.Empty
        )
        expect(reply.ByteSize() == 0, "a non-empty Empty")

    def large_unary(self) -> None:
        reply = self.pool.unary(
            self.target,
            SERVICE + "UnaryCall",
            self.large_request(),
            timeout=TIMEOUT,
            response_type=self.pb.SimpleResponse,
        )
        self.check_large(reply)

    def custom_metadata(self) -> None:
        metadata = [ECHO_INITIAL, ECHO_TRAILING]
        response = self.pool.unary_response(
            self.target, SERVICE + "UnaryCall", self.large_request(), timeout=TIMEOUT, metadata=metadata
        )
        response.raise_for_status()
        self.check_large(response.decode(self.pb.SimpleResponse))
        self.check_echoed(response.headers, response.trailers)

        with self.pool.stream(
            self.target,
            SERVICE + "FullDuplexCall",
            timeout=TIMEOUT,
            metadata=metadata,
            response_type=self.pb.StreamingOutputCallResponse,
        ) as stream:
            stream.write(
                self.pb.StreamingOutputCallRequest(
                    response_parameters=[self.pb.ResponseParameters(size=314_159)],
                    payload=self.pb.Payload(body=bytes(271_828)),
                )
            )
            reply = stream.read()
            expect(reply is not None and len(reply.payload.body) == 314_159, "reply size")
            stream.done_writing()
            headers = stream.initial_metadata()
            end = stream.finish()
            expect(end.code is StatusCode.OK, f"status {end.code.name} {end.details!r}")
            self.check_echoed(headers, end.trailers)

    def check_status(self, code: StatusCode, details: str, message: str) -> None:
        expect(code is StatusCode.UNKNOWN and details == message, f"status {code.name} {details!r}")

    def status_code_and_message(self) -> None:
        message = "test status message"
        status = self.pb.EchoStatus(code=2, message=message)
        response = self.pool.unary_response(
            self.target, SERVICE + "UnaryCall", self.pb.SimpleRequest(response_status=status), timeout=TIMEOUT
        )
        self.check_status(response.code, response.details, message)

        with self.pool.stream(self.target, SERVICE + "FullDuplexCall", timeout=TIMEOUT) as stream:
            stream.write(self.pb.StreamingOutputCallRequest(response_status=status))
            stream.done_writing()
            end = stream.finish()
            self.check_status(end.code, end.details, message)

    def special_status_message(self) -> None:
        status = self.pb.EchoStatus(code=2, message=SPECIAL_MESSAGE)
        response = self.pool.unary_response(
            self.target, SERVICE + "UnaryCall", self.pb.SimpleRequest(response_status=status), timeout=TIMEOUT
        )
        self.check_status(response.code, response.details, SPECIAL_MESSAGE)

    def unimplemented_method(self) -> None:
        response = self.pool.unary_response(
            self.target, SERVICE + "UnimplementedCall", self.pb.Empty(), timeout=TIMEOUT
        )
        expect(response.code is StatusCode.UNIMPLEMENTED, f"status {response.code.name}")

    def server_streaming(self) -> None:
        request = self.pb.StreamingOutputCallRequest(
            response_parameters=[self.pb.ResponseParameters(size=size) for _, size in SIZES]
        )
        stream = self.pool.unary_stream(
            self.target,
            SERVICE + "StreamingOutputCall",
            request,
            timeout=TIMEOUT,
            response_type=self.pb.StreamingOutputCallResponse,
        )
        sizes = [len(reply.payload.body) for reply in stream]
        expect(sizes == [size for _, size in SIZES], f"reply sizes {sizes}")
        expect(stream.code() is StatusCode.OK, "status")

    def ping_pong(self) -> None:
        with self.pool.stream(
            self.target,
            SERVICE + "FullDuplexCall",
            timeout=TIMEOUT,
            response_type=self.pb.StreamingOutputCallResponse,
        ) as stream:
            for request_size, response_size in SIZES:
                stream.write(
                    self.pb.StreamingOutputCallRequest(
                        response_parameters=[self.pb.ResponseParameters(size=response_size)],
                        payload=self.pb.Payload(body=bytes(request_size)),
                    )
                )
                reply = stream.read()
                expect(
                    reply is not None and len(reply.payload.body) == response_size,
                    f"reply to {request_size} bytes",
                )
            stream.done_writing()
            expect(stream.read() is None, "a reply after the last")
            expect(stream.code() is StatusCode.OK, "status")


CASES = [
    "empty_unary",
    "large_unary",
    "custom_metadata",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "server_streaming",
    "ping_pong",
]


def main() -> int:
    target = os.environ["GRPCPOOL_INTEROP_TARGET"]
    settings: Dict[str, Any] = {"acquire_timeout": 10.0, "worker_threads": 2}
    if "GRPCPOOL_INTEROP_CA_FILE" in os.environ:
        settings["tls_ca_file"] = os.environ["GRPCPOOL_INTEROP_CA_FILE"]
        settings["tls_server_name"] = os.environ.get("GRPCPOOL_INTEROP_SERVER_NAME")
    pb = generated_messages()
    passed = failed = 0
    with grpcpool.Pool(**settings) as pool:
        cases = Cases(pool, target, pb)
        for name in CASES:
            run: Callable[[], None] = getattr(cases, name)
            started = time.monotonic()
            try:
                run()
            except (CaseFailed, grpcpool.RpcError, ValueError, TypeError) as error:
                failed += 1
                print(f"  FAIL {name}: {error}", flush=True)
            else:
                passed += 1
                print(f"  ok   {name} ({(time.monotonic() - started) * 1000:.0f} ms)", flush=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
