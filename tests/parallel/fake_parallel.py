"""A stand-in for the `parallel` module, for unit tests of protocol classes without
sockets, threads or the pyparallel host: the examples import it as `parallel` and their
callbacks are called directly, single-threaded, like plain functions.

It mirrors interpreter/parallel/parallel.pyi for what the examples touch: Response,
FileResponse/file(), and no-op server/register/run. FakeTransport records sendfile calls.
"""
from __future__ import annotations

import importlib.util
import pathlib
import sys
import types


class ParallelError(Exception):
    pass


class TransportClosedError(ParallelError):
    pass


class Response:
    def __init__(self, body=b"", status=200, headers=None, content_type=None):
        self.body, self.status = body, status
        self.headers, self.content_type = dict(headers or {}), content_type


class FileResponse:
    def __init__(self, path, content_type=None):
        self.path, self.content_type = path, content_type


def file(path, content_type=None):
    return FileResponse(path, content_type)


class FakeTransport:
    """What a callback sees, minus the socket: http_* attributes and recorded sends."""

    def __init__(self, path="/", query="", headers=None, method="GET", peer=("127.0.0.1", 1)):
        self.http_path, self.http_query, self.http_method = path, query, method
        self.http_headers = dict(headers or {})
        self.http_version = "HTTP/1.1"
        self.peer = peer
        self.sent: list[tuple] = []
        self.closed = False

    def sendfile(self, before, path, after):
        self.sent.append((before, path, after, None, None))

    def ranged_sendfile(self, before, path, after, offset, nbytes):
        self.sent.append((before, path, after, offset, nbytes))

    sendfile_ranged = ranged_sendfile

    def close(self):
        self.closed = True

    def bytes_sent(self) -> bytes:
        """The bytes the recorded sends would put on the wire."""
        out = b""
        for before, path, after, offset, nbytes in self.sent:
            data = pathlib.Path(path).read_bytes()
            if offset is not None:
                data = data[offset:offset + nbytes]
            out += _b(before) + data + _b(after)
        return out


def _b(x) -> bytes:
    if x is None:
        return b""
    return x.encode() if isinstance(x, str) else bytes(x)


def make_module() -> types.ModuleType:
    m = types.ModuleType("parallel")
    m.ParallelError, m.TransportClosedError = ParallelError, TransportClosedError
    m.Response, m.FileResponse, m.file = Response, FileResponse, file
    m.server = lambda host, port, backlog=4096: types.SimpleNamespace(host=host, port=port)
    m.client = lambda host, port: types.SimpleNamespace(host=host, port=port)
    m.register = lambda transport, protocol: None
    m.run = lambda workers=None, backend=None, numa_policy=None: None
    m.stop = lambda: None
    m.is_parallel_thread = lambda: False
    m.cpu_count = lambda: 1
    m.timer = lambda *a, **k: None
    return m


def load_example(path: pathlib.Path, name: str) -> types.ModuleType:
    """Imports the example at path with this fake as `parallel` (restored afterwards)."""
    saved = sys.modules.get("parallel")
    sys.modules["parallel"] = make_module()
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        if saved is None:
            sys.modules.pop("parallel", None)
        else:
            sys.modules["parallel"] = saved
