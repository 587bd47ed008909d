"""Starting ``pyparallel -m parallel.serve`` for the WSGI and ASGI tests, with Debian's
dist-packages on the application's path (standing in for a pip install of Flask and
Starlette), and small raw-socket helpers."""
from __future__ import annotations

import pathlib
import socket

from pyserver import ServerProcess, recv_until

APPS = pathlib.Path(__file__).resolve().parent
DIST_PACKAGES = pathlib.Path("/usr/lib/python3/dist-packages")


def has_debian_package(module: str) -> bool:
    """True when Debian's python3-<module> is installed (its files in dist-packages)."""
    return (DIST_PACKAGES / module / "__init__.py").is_file()


def serve(app: str, *args: str, workers: int | None = 2, dist_packages: bool = False,
          env: dict | None = None, **kw) -> ServerProcess:
    """``pyparallel -m parallel.serve APP --host 127.0.0.1 --port P --app-dir apps ...``.

    ``--workers`` goes after the module (parallel.serve's own flag); the host adds
    nothing of its own but ``--backend`` when PP_TEST_BACKEND asks for one."""
    full_env = {"PP_TABLE_SIZE": "1000"}
    if dist_packages:
        full_env["PYTHONPATH"] = str(DIST_PACKAGES)
    full_env.update(env or {})
    extra = [app, "--app-dir", str(APPS)]
    if workers is not None:
        extra += ["--workers", str(workers)]
    # "-mparallel.serve" is Python's -m with its argument attached: ServerProcess puts
    # the script first and --host/--port after it, which parallel.serve parses.
    proc = ServerProcess("-mparallel.serve", *extra, *args, workers=None, env=full_env, **kw)
    return proc


def exchange(srv: ServerProcess, raw: bytes, until, timeout: float = 10) -> bytes:
    """Sends raw bytes on a new connection and reads until ``until(data)``."""
    with socket.create_connection((srv.host, srv.port), timeout=timeout) as s:
        s.sendall(raw)
        return recv_until(s, until, timeout)


def read_chunked(data: bytes) -> tuple[bytes, bytes]:
    """Decodes a chunked body at the start of ``data``: (body, the bytes after it)."""
    out = b""
    while True:
        line, _, data = data.partition(b"\r\n")
        size = int(line.split(b";")[0], 16)
        if size == 0:
            _, _, data = data.partition(b"\r\n")
            return out, data
        out += data[:size]
        data = data[size + 2:]

