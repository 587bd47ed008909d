"""Where pyparallel-httpd runs in the end-to-end tests, and how to start and stop it there.

Two hosts run the same tests (tests/e2e/test_httpd.py):
  - native: this Linux build (PP_BUILD_DIR), on each engine backend the tests name;
  - wine: the Windows cross build (PP_WINDOWS_BUILD_DIR, `./pp build-windows`), IOCP,
    under Wine in the session's throw-away prefix (the `wine_prefix` fixture, conftest.py).
What differs between them is said here once: the program and its command line, how a path
is spelled (Wine's Z: drive is the Unix root), how long a start may take (Wine starts a
process in seconds), and the stop signal (Wine turns SIGINT into the Ctrl-C console event
the server handles on Windows; it has no SIGTERM counterpart).
"""
from __future__ import annotations

import http.client
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from pptest import ROOT, SLOWDOWN, build_dir, free_port

sys.path.insert(0, str(ROOT / "tests" / "win32"))
import wine  # noqa: E402  (tests/win32/wine.py)


class Host:
    """One place pyparallel-httpd runs. Subclasses say how."""

    name = ""
    backends: list[str] = []
    start_seconds = 10.0
    stop_signal = signal.SIGTERM

    def exe(self) -> pathlib.Path:
        raise NotImplementedError

    def unavailable_reason(self) -> str | None:
        """Why tests cannot run on this host here (None when they can)."""
        raise NotImplementedError

    def command(self, *args: str) -> list[str]:
        """The command line that runs the server with `args`."""
        raise NotImplementedError

    def env(self, extra: dict | None = None) -> dict:
        """The environment the server runs in, plus `extra`."""
        raise NotImplementedError

    def path(self, p: pathlib.Path) -> str:
        """`p` as the server spells it."""
        return str(p)

    def run(self, *args: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
        """Runs the server to completion, for what ends it early (bad options, a backend
        the host does not have), within the host's start-up bound."""
        return subprocess.run(self.command(*args), capture_output=True, text=True,
                              errors="replace", env=self.env(extra_env),
                              timeout=self.start_seconds * SLOWDOWN)


class NativeHost(Host):
    """This Linux build, on the backend each test names."""

    name = "native"
    backends = ["io_uring", "libaio", "epoll"]

    def exe(self) -> pathlib.Path:
        return build_dir() / "httpd" / "pyparallel-httpd"

    def unavailable_reason(self) -> str | None:
        return None if self.exe().exists() else f"{self.exe()} not built"

    def command(self, *args: str) -> list[str]:
        return [str(self.exe()), *args]

    def env(self, extra: dict | None = None) -> dict:
        return dict(os.environ, **(extra or {}))


class WineHost(Host):
    """The Windows cross build's pyparallel-httpd.exe under Wine (IOCP, its only backend)."""

    name = "wine"
    backends = ["iocp"]
    start_seconds = 60.0
    stop_signal = signal.SIGINT

    def __init__(self, prefix: wine.WinePrefix | None = None) -> None:
        self.prefix = prefix

    def exe(self) -> pathlib.Path:
        return wine.windows_build_dir() / "httpd" / "pyparallel-httpd.exe"

    def unavailable_reason(self) -> str | None:
        return wine.unavailable_reason()

    def command(self, *args: str) -> list[str]:
        return self.prefix.command(self.exe(), *args)

    def env(self, extra: dict | None = None) -> dict:
        return dict(self.prefix.env, **(extra or {}))

    def path(self, p: pathlib.Path) -> str:
        return f"Z:{p}"


HOSTS = {"native": NativeHost, "wine": WineHost}


def runs_on(name: str) -> pytest.MarkDecorator:
    """A mark that skips a test cleanly, with the reason, where host `name` cannot run here
    (no Wine, no cross build, no native build)."""
    reason = HOSTS[name]().unavailable_reason()
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def make_host(name: str, request) -> Host:
    """The Host object for `name`; the Wine one gets the session's prefix."""
    if name == "wine":
        return WineHost(request.getfixturevalue("wine_prefix"))
    return NativeHost()


class Server:
    """pyparallel-httpd on a free loopback port, on `host`, serving `root`."""

    def __init__(self, host: Host, root: pathlib.Path, backend: str = "auto", workers: int = 2,
                 env: dict | None = None, extra: list[str] | None = None):
        self.host = host
        self.port = free_port()
        cmd = host.command("--host", "127.0.0.1", "--port", str(self.port),
                           "--workers", str(workers), "--root", host.path(root),
                           "--backend", backend, *(extra or []))
        # Its output goes to a file, not a pipe: the access log writes a line per request,
        # and a pipe nobody reads while the tests run would fill and stall the server.
        self.log = tempfile.TemporaryFile("w+", errors="replace")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                                     env=host.env(env), text=True)
        limit = host.start_seconds * SLOWDOWN
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.output()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError(f"server did not start listening within {limit:.0f} s")

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)

    def raw(self, data: bytes, read_until_close: bool = True, timeout: float = 10) -> bytes:
        """Sends `data` on a new connection; what came back until the server closed it (or a
        reset: a server that closes with unread input resets the connection on Windows)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            chunks = []
            if read_until_close:
                while True:
                    try:
                        b = s.recv(65536)
                    except (socket.timeout, ConnectionResetError):
                        break
                    if not b:
                        break
                    chunks.append(b)
            return b"".join(chunks)

    def signal_stop(self) -> None:
        """Asks the server to drain and exit (the host's stop signal)."""
        if self.proc.poll() is None:
            self.proc.send_signal(self.host.stop_signal)

    def output(self) -> str:
        """What the server wrote so far (stdout and stderr)."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> tuple[int, str]:
        """Stops the server with the host's signal; its exit code and output."""
        self.signal_stop()
        try:
            self.proc.wait(timeout=30 * SLOWDOWN)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9, self.output()
        return self.proc.returncode, self.output()

    def stop_line(self) -> str:
        """What the server logs when the host's stop signal arrives."""
        return f"{signal.Signals(self.host.stop_signal).name} received"
