"""The access log (core/access_log.h): one line per HTTP response from the C++ server,
an http11 script and a WSGI app, on by default, off with --no-access-log, to a file with
--access-log-file that SIGHUP reopens (logrotate); written in batches, never one write
per request (counted with strace); a malformed request's 400 and a streamed response's
status are logged too.
"""
import http.client
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from pptest import ROOT, build_dir, free_port

PYPARALLEL = build_dir() / "interpreter" / "pyparallel"
HTTPD = build_dir() / "httpd" / "pyparallel-httpd"
TEFB = ROOT / "examples" / "tefb.py"
APPS = ROOT / "tests" / "parallel" / "apps"
LINE = re.compile(r'^(\S+) - "(GET|POST|HEAD|-)(?: (\S+) HTTP/1\.([01]))?" (\d{3}) (\d+) '
                  r'(\d+\.\d)ms$')

pytestmark = pytest.mark.skipif(not PYPARALLEL.is_file(), reason=f"{PYPARALLEL} not built")


class Server:
    """A server process on a free port, its stdout and stderr in a file; stopped with
    SIGTERM (its exit status is returned)."""

    def __init__(self, cmd: list, port: int, tmp: pathlib.Path, env: dict | None = None,
                 prefix: list | None = None):
        self.port = port
        self.out = tmp / f"server-{port}.out"
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("PYPARALLEL_") and k != "PYTHONPATH"}
        full_env.update(env or {})
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen([*(prefix or []), *map(str, cmd)], stdout=f,
                                         stderr=subprocess.STDOUT, env=full_env, cwd=str(ROOT))
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not listen: {self.output()}")
                time.sleep(0.05)

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def get(self, path: str) -> int:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            return r.status
        finally:
            c.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def pyparallel(tmp, *host_args, script=TEFB, env=None, prefix=None):
    port = free_port()
    return Server([PYPARALLEL, *host_args, script, "--host", "127.0.0.1", "--port", port], port,
                  tmp, env, prefix)


def lines_of(text: str) -> list[re.Match]:
    return [m for m in map(LINE.match, text.splitlines()) if m]


def wait_lines(read, n: int, timeout: float = 5) -> list[re.Match]:
    """The access log lines `read()` gives once there are n (lines are written within a
    second of a request, or at once when the worker's last connection closes)."""
    deadline = time.monotonic() + timeout
    while True:
        found = lines_of(read())
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_http11_lines_on_stderr_by_default(tmp_path):
    srv = pyparallel(tmp_path, "--workers", "2")
    try:
        assert srv.get("/plaintext") == 200
        assert srv.get('/json?q="x') == 200
        assert srv.get("/nothing-here") == 404
        found = wait_lines(srv.output, 3)
    finally:
        srv.stop()
    # Two workers: each writes its own lines, so their order across workers is not the
    # requests' order.
    assert sorted((m[1], m[2], m[3], m[4], m[5]) for m in found) == [
        ("127.0.0.1", "GET", "/json?q=\\x22x", "1", "200"),  # a quote cannot end the field
        ("127.0.0.1", "GET", "/nothing-here", "1", "404"),
        ("127.0.0.1", "GET", "/plaintext", "1", "200")]
    assert all(int(m[6]) > 100 for m in found)  # head and body: bytes on the wire


@pytest.mark.parametrize("args, env", [
    (["--no-access-log"], {}), (["--access-log", "off"], {}),
    ([], {"PYPARALLEL_ACCESS_LOG": "off"})])
def test_no_access_log_and_the_variable(tmp_path, args, env):
    srv = pyparallel(tmp_path, "--workers", "1", *args, env=env)
    try:
        assert srv.get("/plaintext") == 200
        time.sleep(0.3)
    finally:
        srv.stop()
    assert lines_of(srv.output()) == [], srv.output()
    assert "running (numa policy" in srv.output()  # the server's own lines still show


def test_file_reopened_on_sighup(tmp_path):
    log = tmp_path / "access.log"
    srv = pyparallel(tmp_path, "--workers", "2", "--access-log-file", log)
    try:
        srv.get("/plaintext")
        assert len(wait_lines(lambda: log.read_text() if log.exists() else "", 1)) == 1
        rotated = tmp_path / "access.log.1"
        log.rename(rotated)  # logrotate's move
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while not log.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.exists(), srv.output()
        srv.get("/json")
        found = wait_lines(lambda: log.read_text(), 1)
    finally:
        code = srv.stop()
    assert code == 0, srv.output()  # SIGHUP is not a stop
    assert [m[3] for m in found] == ["/json"]
    assert [m[3] for m in lines_of(rotated.read_text())] == ["/plaintext"]
    assert lines_of(srv.output()) == []


def test_lines_are_written_in_batches(tmp_path):
    strace = shutil.which("strace")
    if not strace:
        pytest.skip("strace not installed")
    log = tmp_path / "access.log"
    trace = tmp_path / "trace"
    srv = pyparallel(tmp_path, "--workers", "1", "--access-log-file", log,
                     prefix=[strace, "-f", "-qq", "-e", "trace=write", "-s", "64", "-o", trace])
    n = 400
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n" * n)
            got = b""
            while got.count(b"HTTP/1.1 200") < n:
                chunk = s.recv(65536)
                assert chunk
                got += chunk
        found = wait_lines(lambda: log.read_text() if log.exists() else "", n)
    finally:
        # The server is strace's child: it gets the stop signal (strace then exits with it).
        children = pathlib.Path(f"/proc/{srv.proc.pid}/task/{srv.proc.pid}/children")
        for pid in (children.read_text().split() if children.exists() else []):
            os.kill(int(pid), signal.SIGTERM)
        try:
            srv.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            srv.proc.kill()
            srv.proc.wait()
    assert len(found) == n
    # strace shows each write's first bytes: the access log's start with the client.
    writes = [line for line in trace.read_text().splitlines()
              if re.search(r'write\(\d+, "127\.0\.0\.1 - \\"GET /plaintext', line)]
    assert 1 <= len(writes) <= n // 20, f"{len(writes)} writes for {n} lines"


def test_wsgi_statuses_a_bad_request_and_a_stream(tmp_path):
    port = free_port()
    srv = Server([PYPARALLEL, "-m", "parallel.serve", "wsgi_conformance:app", "--app-dir", APPS,
                  "--workers", "1", "--host", "127.0.0.1", "--port", port], port, tmp_path)
    try:
        assert srv.get("/thread") == 200
        assert srv.get("/slow_generator") == 200  # finished after the handler returned
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GARBAGE\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 400")
        found = wait_lines(srv.output, 3)
    finally:
        srv.stop()
    got = [(m[2], m[3], m[5]) for m in found]
    assert ("GET", "/thread", "200") in got
    assert ("GET", "/slow_generator", "200") in got
    assert ("-", None, "400") in got


@pytest.mark.skipif(not HTTPD.is_file(), reason=f"{HTTPD} not built")
def test_httpd_access_log(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "a.txt").write_text("hello\n")
    log = tmp_path / "access.log"
    port = free_port()
    srv = Server([HTTPD, "--root", tmp_path / "site", "--access-log-file", log, "--workers", "1",
                  "--host", "127.0.0.1", "--port", port], port, tmp_path)
    try:
        assert srv.get("/a.txt") == 200
        assert srv.get("/missing") == 404
        found = wait_lines(lambda: log.read_text() if log.exists() else "", 2)
    finally:
        code = srv.stop()
    assert code == 0, srv.output()
    assert [(m[3], m[5]) for m in found] == [("/a.txt", "200"), ("/missing", "404")]
    srv = Server([HTTPD, "--root", tmp_path / "site", "--no-access-log", "--workers", "1",
                  "--host", "127.0.0.1", "--port", port], port, tmp_path)
    try:
        assert srv.get("/a.txt") == 200
        time.sleep(0.3)
    finally:
        srv.stop()
    assert lines_of(srv.output()) == []
