"""A plain WSGI application (no framework) for tests/parallel/test_pp_wsgi.py: each
route exercises one part of PEP 3333 or one way an application can fail."""
import json
import os
import sys
import threading
import time

CLOSED = []  # paths whose result's close() ran
FILE = os.environ.get("PP_TEST_FILE", "")
_lock = threading.Lock()


class Closing:
    """An iterable result with close(), as PEP 3333 requires servers to call."""

    def __init__(self, path, blocks):
        self.path = path
        self.blocks = blocks

    def __iter__(self):
        return iter(self.blocks)

    def close(self):
        with _lock:
            CLOSED.append(self.path)


def plain(start_response, body, status="200 OK", extra=()):
    start_response(status, [("Content-Type", "text/plain"), *extra])
    return [body]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/environ"):
        view = {k: v for k, v in environ.items() if isinstance(v, (str, int, bool, tuple))}
        view["wsgi.input.type"] = type(environ["wsgi.input"]).__name__
        view["wsgi.errors.is_stderr"] = environ["wsgi.errors"] is sys.stderr
        view["wsgi.file_wrapper.callable"] = callable(environ["wsgi.file_wrapper"])
        body = json.dumps(view).encode()
        return plain(start_response, body)
    if path == "/input":
        stream = environ["wsgi.input"]
        first = stream.readline()
        rest = stream.read()
        length = environ.get("CONTENT_LENGTH", "")
        body = json.dumps({"length": len(first) + len(rest), "first": first[:40].decode("latin-1"),
                           "content_length": length,
                           "tail": (first + rest)[-8:].decode("latin-1")}).encode()
        return plain(start_response, body)
    if path == "/generator":  # no Content-Length: chunked on HTTP/1.1, close on HTTP/1.0
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (f"block {i}\n".encode() for i in range(4))
    if path == "/slow_generator":  # the first block must not wait for the second
        def slow():
            yield b"first block\n"
            time.sleep(0.5)
            yield b"second block\n"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return slow()
    if path == "/write":  # the legacy write() callable, then an iterable
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and returned"]
    if path == "/closing":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing(path, [b"closing ", b"result"])
    if path == "/closed":
        with _lock:
            return plain(start_response, json.dumps(CLOSED).encode())
    if path == "/file":
        f = open(FILE, "rb")
        f.seek(int(environ.get("QUERY_STRING") or 0))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 65536)
    if path == "/big":  # 32 MiB in one block, with its length
        body = b"x" * (32 << 20)
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/status":
        return plain(start_response, b"teapot", status="418 I'm a teapot",
                     extra=[("X-Custom", "yes"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    if path == "/nocontent":
        start_response("204 No Content", [])
        return []
    if path == "/raise":  # before start_response
        raise ValueError("raised before start_response")
    if path == "/bad_status":  # start_response itself raises (not a status line)
        start_response("OK", [])
        return [b"never"]
    if path == "/bad_header":  # a CR/LF in a value: refused, never sent
        start_response("200 OK", [("X-Evil", "a\r\nInjected: yes")])
        return [b"never"]
    if path == "/exc_info":  # error page chosen before the head went out
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise KeyError("caught")
        except KeyError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                           sys.exc_info())
        return [b"custom error page"]
    if path == "/exc_info_late":  # start_response with exc_info after the head: re-raises
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial")
        try:
            raise KeyError("too late")
        except KeyError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"never"]
    if path == "/raise_after_headers":
        def gen():
            yield b"first block"
            raise RuntimeError("raised after the head was sent")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/no_start":
        return [b"no start_response"]
    if path == "/stats":  # the runtime's counters (only under pyparallel)
        import parallel
        stats = parallel.stats()
        return plain(start_response, json.dumps({"responses": stats.get("responses", {}),
                                                 "requests": stats["requests"]}).encode())
    if path == "/thread":
        return plain(start_response, threading.current_thread().name.encode())
    return plain(start_response, b"not found", status="404 Not Found")
