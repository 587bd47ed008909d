"""Helpers for the deployment tests: start pyparallel-httpd or the Python runtime as a
named instance, drive keep-alive load through it and count every failure, run wrk.

Every wait is bounded; every failure is counted, never retried away.
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from pptest import ROOT, build_dir, free_port

sys.path.insert(0, str(ROOT / "tests" / "parallel"))
from pyserver import pyparallel  # noqa: E402

HTTPD = build_dir() / "httpd" / "pyparallel-httpd"
APP = ROOT / "tests" / "e2e" / "apps" / "instance_app.py"
WRK = shutil.which("wrk")


def built() -> bool:
    return HTTPD.exists() and pyparallel().is_file()


class Instance:
    """One server process ("httpd" or "runtime") with its output in a log file.

    httpd answers /id from its --root (a file `id` holding the instance's name); the
    runtime runs apps/instance_app.py. Both answer `/id` with a body that starts with the
    instance's name."""

    def __init__(self, kind: str, port: int, name: str, tmp: pathlib.Path, workers: int = 2,
                 extra: list[str] | None = None, env: dict | None = None,
                 prefix: list[str] | None = None, wait: bool = True, host: str = "127.0.0.1",
                 command: list[str] | None = None):
        self.kind, self.port, self.name = kind, port, name
        self.log_path = tmp / f"{kind}-{name}-{port}.log"
        self.log = open(self.log_path, "w")
        # `extra`: server flags (--metrics-port ...); `prefix`: a launcher (systemd-socket-activate).
        if kind == "httpd":
            root = tmp / f"www-{name}"
            root.mkdir(exist_ok=True)
            (root / "id").write_text(name)
            full = [str(HTTPD), "--host", host, "--port", str(port), "--workers",
                    str(workers), "--root", str(root), *(extra or [])]
        else:
            # The runtime's flags come before the script.
            full = [str(pyparallel()), "--workers", str(workers), *(extra or []), str(APP),
                    "--host", host, "--port", str(port), "--id", name]
        full = command or [*(prefix or []), *full]  # `command`: run exactly that
        e = dict(os.environ, PYTHONUNBUFFERED="1")
        for k in ("PYPARALLEL_WORKERS", "PYPARALLEL_BACKEND", "PYTHONPATH", "PYTHONHOME"):
            e.pop(k, None)
        if os.environ.get("PP_TEST_BACKEND"):
            e["PYPARALLEL_BACKEND"] = os.environ["PP_TEST_BACKEND"]
        e.update(env or {})
        self.cmd = full
        self.proc = subprocess.Popen(full, stdout=self.log, stderr=subprocess.STDOUT, env=e,
                                     cwd=str(ROOT))
        if wait:
            self.wait_serving()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 20) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.output()):
                return True
            if self.proc.poll() is not None:
                return bool(re.search(pattern, self.output()))
            time.sleep(0.05)
        return False

    def wait_serving(self, timeout: float = 30) -> None:
        # Both print a line once every worker serves: httpd "serving http://...", the
        # runtime "N workers running".
        if not self.wait_for(r"serving http://|workers? running|callbacks run on the main",
                             timeout):
            self.kill()
            raise RuntimeError(f"{self.cmd} did not start:\n{self.output()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9
        finally:
            self.log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def read_response(sock: socket.socket, buf: bytes) -> tuple[int, dict, bytes, bytes]:
    """One HTTP/1.1 response with a Content-Length: (status, headers, body, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("EOF before a response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("EOF inside a response body")
        rest += chunk
    return status, headers, rest[:n], rest[n:]


class KeepAliveLoad:
    """`connections` client threads, each sending GET `path` on one keep-alive connection
    after another: a response that says `Connection: close` ends the connection (the
    client then opens a new one), and anything else -- a refused connect, a reset, an EOF
    before a whole response, a non-200 -- is a failure, counted with its reason."""

    def __init__(self, port: int, connections: int = 16, path: str = "/id"):
        self.port, self.path = port, path
        self.ok = 0
        self.closes = 0  # responses that said Connection: close
        self.failures: list[str] = []
        self.bodies: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(connections)]
        for t in self._threads:
            t.start()

    def _run(self) -> None:
        request = f"GET {self.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        while not self._stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                    buf = b""
                    while not self._stop.is_set():
                        s.sendall(request)
                        status, headers, body, buf = read_response(s, buf)
                        name = body.split(b" ")[0].decode(errors="replace")
                        with self._lock:
                            if status != 200:
                                self.failures.append(f"status {status}")
                            else:
                                self.ok += 1
                                self.bodies[name] = self.bodies.get(name, 0) + 1
                        if headers.get("connection", "").lower() == "close":
                            with self._lock:
                                self.closes += 1
                            break
            except OSError as exc:
                with self._lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)


def run_wrk(port: int, seconds: float, connections: int = 32, path: str = "/id"):
    """Starts wrk; returns the Popen (read its stdout when it ends)."""
    return subprocess.Popen([WRK, "-t2", f"-c{connections}", f"-d{seconds}s",
                             f"http://127.0.0.1:{port}{path}"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wrk_result(proc, timeout: float = 60) -> tuple[int, str]:
    """(requests, output) of a finished wrk; fails the test on socket errors or non-2xx."""
    out, _ = proc.communicate(timeout=timeout)
    m = re.search(r"(\d+) requests in", out)
    return (int(m.group(1)) if m else 0), out


__all__ = ["Instance", "KeepAliveLoad", "run_wrk", "wrk_result", "free_port", "built", "WRK",
           "read_response"]
