"""A gateway protocol (the class attribute parallel.wsgi/asgi set) whose handler hands
its exchange to a plain thread, which tries to read the request (environ(), scope()) and
to send a file while the handler waits for it: views into the worker's input buffer, which only the
worker may read. Answers, as JSON, what the handler and the thread each got."""
import argparse
import json
import os
import sys
import threading

import parallel


def outcome(fn) -> str:
    try:
        value = fn()
    except Exception as exc:  # the thread's result, whatever it is
        return f"{type(exc).__name__}: {exc}"
    return f"read {type(value).__name__}"


def handler(ex) -> None:
    seen = {}

    def other_thread():
        seen["thread_environ"] = outcome(lambda: ex.environ({}))
        seen["thread_scope"] = outcome(lambda: ex.scope({}))
        # sendfile() owns the descriptor it is given, even when it refuses the call.
        fd = os.open(__file__, os.O_RDONLY)
        seen["thread_sendfile"] = outcome(lambda: ex.sendfile(fd, 0, 1))
        seen["fd_closed"] = outcome(lambda: os.fstat(fd)).startswith("OSError")

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    seen["worker_environ"] = outcome(lambda: ex.environ({}))
    seen["worker_scope"] = outcome(lambda: ex.scope({}))
    ex.respond("200 OK", [("Content-Type", "application/json")], json.dumps(seen).encode())


class Gateway:
    _parallel_gateway = staticmethod(handler)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args()
    parallel.register(transport=parallel.server(args.host, args.port), protocol=Gateway)
    parallel.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
