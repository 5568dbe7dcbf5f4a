"""The pool's runtime cannot start: this process caps its user's threads (RLIMIT_NPROC) at what
it has plus one, then drops root for an unprivileged user so the cap holds. The first call must
raise instead of hanging. Prints one JSON line; needs root (tests/parity/run.sh runs it so)."""

import json
import os
import resource
import sys
import time

import grpcpool


def threads_now() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise RuntimeError("no Threads: line in /proc/self/status")


def main() -> None:
    target = sys.argv[1]
    room = threads_now() + 1  # one more thread: the runtime's two workers cannot both start
    resource.setrlimit(resource.RLIMIT_NPROC, (room, room))
    os.setgid(65534)
    os.setuid(65534)
    pool = grpcpool.Pool(worker_threads=2)
    started = time.monotonic()
    try:
        pool.unary(target, "/grpcpool.test.Echo/Unary", b"x", timeout=2.0)
        outcome, detail = "ok", ""
    except RuntimeError as error:
        outcome, detail = "runtime_error", str(error)
    except Exception as error:  # noqa: BLE001 - any other outcome is reported, not raised
        outcome, detail = f"other:{type(error).__name__}", str(error)
    elapsed = (time.monotonic() - started) * 1000
    print(json.dumps({"scenario": "runtime_refused", "class": outcome, "via": "error",
                      "detail": f"after {elapsed:.1f} ms: {detail}"}))


main()
