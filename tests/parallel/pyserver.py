"""Helpers for the `parallel` end-to-end tests: start a script under the pyparallel host,
wait until it listens, talk to it, stop it with SIGINT and collect its exit code and output.

Every wait here is bounded: a server that never listens, a reply that never comes and a
process that ignores SIGINT all fail the test instead of hanging the suite.
"""
from __future__ import annotations

import http.client
import os
import pathlib
import re
import signal
import socket
import struct
import subprocess
import threading
import time

from pptest import ROOT, SLOWDOWN, build_dir, free_port

HERE = pathlib.Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
SERVERS = HERE / "servers"


def pyparallel(build: pathlib.Path | None = None) -> pathlib.Path:
    """The pyparallel host of a build folder (default: PP_BUILD_DIR or ./build)."""
    return (build or build_dir()) / "interpreter" / "pyparallel"


def gil_pyparallel() -> pathlib.Path | None:
    """The host of the GIL build (PP_GIL_BUILD_DIR, else ./build-interp-gil), if built."""
    folder = os.environ.get("PP_GIL_BUILD_DIR")
    candidates = [pathlib.Path(folder)] if folder else [ROOT / "build-interp-gil"]
    for c in candidates:
        exe = pyparallel(c.resolve())
        if exe.is_file():
            return exe
    return None


def has_parallel_module(exe: pathlib.Path | None = None) -> bool:
    """True when the host's `parallel` module has the server API (not the skeleton)."""
    exe = exe or pyparallel()
    if not exe.is_file():
        return False
    try:
        out = subprocess.run([str(exe), "-c", "import parallel; print(hasattr(parallel, 'run')"
                              " and hasattr(parallel, 'server'))"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "True"


class ServerProcess:
    """``pyparallel [host options] script --host 127.0.0.1 --port P [args]``, listening.

    stdout and stderr are read continuously by two threads (so a chatty server never
    blocks on a full pipe); ``wait_for`` waits for a pattern in them.
    """

    def __init__(self, script: str | os.PathLike, *args: str, workers: int | None = 2,
                 backend: str | None = None, exe: pathlib.Path | None = None,
                 env: dict | None = None, host: str = "127.0.0.1", port: int | None = None,
                 listen_timeout: float = 30, wait: bool = True):
        self.exe = exe or pyparallel()
        self.host = host
        self.port = port or free_port()
        cmd = [str(self.exe)]
        if workers is not None:
            cmd += ["--workers", str(workers)]
        # PP_TEST_BACKEND runs a whole suite on one backend (tests/run_all.py does so for
        # libaio, which `auto` never picks).
        backend = backend or os.environ.get("PP_TEST_BACKEND") or None
        if backend is not None:
            cmd += ["--backend", backend]
        cmd += [str(script), "--host", host, "--port", str(self.port), *map(str, args)]
        full_env = dict(os.environ)
        for name in ("PYPARALLEL_WORKERS", "PYPARALLEL_BACKEND", "PYPARALLEL_NUMA_POLICY",
                     "PYPARALLEL_LOG_LEVEL", "FORWARDED_ALLOW_IPS",
                     "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
            full_env.pop(name, None)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.cmd = cmd
        self._lock = threading.Condition()
        self._out: list[str] = []
        self._err: list[str] = []
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=full_env, cwd=str(ROOT))
        self._readers = [threading.Thread(target=self._pump, args=(self.proc.stdout, self._out),
                                          daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self._err),
                                          daemon=True)]
        for r in self._readers:
            r.start()
        self.exit_code: int | None = None
        self.stop_seconds: float | None = None
        if wait:
            self.wait_listening(listen_timeout)

    # -- output ------------------------------------------------------------------------
    def _pump(self, pipe, sink: list[str]) -> None:
        for raw in iter(pipe.readline, b""):
            with self._lock:
                sink.append(raw.decode("utf-8", "replace"))
                self._lock.notify_all()
        pipe.close()

    @property
    def stdout(self) -> str:
        with self._lock:
            return "".join(self._out)

    @property
    def stderr(self) -> str:
        with self._lock:
            return "".join(self._err)

    def output(self) -> str:
        return self.stdout + self.stderr

    def wait_for(self, pattern: str, timeout: float = 10) -> re.Match | None:
        """Waits until regex ``pattern`` appears in stdout+stderr; the match or None."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                m = rx.search("".join(self._out) + "".join(self._err))
                left = deadline - time.monotonic()
                if m or left <= 0:
                    return m
                self._lock.wait(min(left, 0.2))

    # -- life cycle ----------------------------------------------------------------------
    def wait_listening(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._join_readers()
                raise RuntimeError(f"{' '.join(self.cmd)} exited {self.proc.returncode} "
                                   f"before listening:\n{self.output()[-4000:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{' '.join(self.cmd)} not listening after {timeout} s:\n"
                           f"{self.output()[-4000:]}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _join_readers(self) -> None:
        for r in self._readers:
            r.join(5)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> int:
        """Sends sig, waits up to timeout s (times PP_TEST_SLOWDOWN); returns the exit code
        (-9: had to be killed). ``stop_seconds`` says how long the exit took."""
        timeout *= SLOWDOWN
        if self.exit_code is not None:
            return self.exit_code
        start = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
            self.exit_code = self.proc.returncode
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.exit_code = -9
        self.stop_seconds = time.monotonic() - start
        self._join_readers()
        return self.exit_code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._join_readers()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- clients -------------------------------------------------------------------------
    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def http(self, timeout: float = 10) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def get(self, path: str, headers: dict | None = None, method: str = "GET",
            body: bytes | None = None, timeout: float = 10):
        """One request on a new connection: (status, headers dict (lower-case), body)."""
        c = self.http(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def connect(self, timeout: float = 10) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=timeout)


def recv_until(sock: socket.socket, predicate, timeout: float = 10, limit: int = 1 << 28) -> bytes:
    """Reads until predicate(data so far) is true, EOF, or timeout; returns the data."""
    data = b""
    deadline = time.monotonic() + timeout
    while not predicate(data) and len(data) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def recv_exactly(sock: socket.socket, n: int, timeout: float = 10) -> bytes:
    """Reads n bytes, never more (fewer on EOF, reset or timeout). recv_until reads 64 KiB
    at a time, so "until at least n" could return up to 64 KiB more than n."""
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(1 << 16, n - len(data)))
        except (socket.timeout, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


def recv_line(sock: socket.socket, timeout: float = 10) -> bytes:
    return recv_until(sock, lambda d: d.endswith(b"\n"), timeout)


def wait_closed(sock: socket.socket, timeout: float = 10) -> tuple[bool, bytes]:
    """(True, data read before EOF/reset) when the peer closes within timeout."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False, data
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            return False, data
        except (ConnectionResetError, BrokenPipeError):
            return True, data
        if not chunk:
            return True, data
        data += chunk


def reset(sock: socket.socket) -> None:
    """Closes with RST (SO_LINGER 0): the abrupt disconnect of a crashed client."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def parse_responses(data: bytes) -> list[tuple[int, dict, bytes]]:
    """Splits a byte stream of HTTP/1.1 responses with Content-Length (or none: 0)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        if len(rest) < n:
            break
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out


def count_responses(data: bytes) -> int:
    return len(parse_responses(data))
