"""End-to-end: the Windows build of pyparallel-httpd (IOCP backend) under Wine, driven from
Linux by curl, h2load, http.client and raw sockets over loopback.

The same checks as tests/e2e/test_httpd.py, on the .exe: sendfile (TransmitFile) and Range,
pipelining, malformed requests, a client vanishing mid-sendfile, many connections over a
listener shared by several workers, and a graceful stop. Wine turns the SIGINT sent to the
process into the Ctrl-C console event the server handles on Windows. Plus what only Windows
has to refuse: paths that Win32 would read as leaving the root (backslashes, drive and
stream colons, trailing dots). Skipped when the cross build or Wine is missing.
"""
import hashlib
import http.client
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from wine import WinePrefix, unavailable_reason, windows_build_dir  # noqa: E402

from pptest import free_port  # noqa: E402

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")
HTTPD = windows_build_dir() / "examples" / "pyparallel-httpd.exe"


@pytest.fixture(scope="module")
def prefix():
    with WinePrefix() as p:
        yield p


class WineServer:
    """pyparallel-httpd.exe on a free loopback port, in the module's Wine prefix."""

    def __init__(self, prefix: WinePrefix, root: pathlib.Path, workers: int = 2,
                 extra: list[str] | None = None):
        self.prefix = prefix
        self.port = free_port()
        # Z: is Wine's drive for the Unix root, so the folder is the same one.
        cmd = prefix.command(HTTPD, "--host", "127.0.0.1", "--port", str(self.port),
                             "--workers", str(workers), "--root", f"Z:{root}",
                             "--backend", "iocp", *(extra or []))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=prefix.env, text=True, errors="replace")
        deadline = time.monotonic() + 60  # Wine starts a process in seconds, not ms
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: "
                                   f"{self.proc.stderr.read()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError("server did not start listening within 60 s")

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)

    def raw(self, data: bytes, timeout: float = 10) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            chunks = []
            while True:
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    break
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks)

    def stop(self) -> tuple[int, str]:
        """Ctrl-C (SIGINT, which Wine delivers as CTRL_C_EVENT); the exit code and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            return -9, err
        return self.proc.returncode, err


@pytest.fixture(scope="module")
def docroot(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("www")
    (root / "hello.txt").write_bytes(b"static hello\n")
    blob = b"".join(hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(98304))
    (root / "big.bin").write_bytes(blob)  # 3 MiB, no repeats: TransmitFile byte-exact
    (root / "sub").mkdir()
    (root / "sub" / "index.html").write_bytes(b"<p>index</p>")
    return root


@pytest.fixture(scope="module")
def server(prefix, docroot):
    srv = WineServer(prefix, docroot, workers=2)
    yield srv
    code, err = srv.stop()
    assert code == 0, f"server exit {code}: {err}"
    assert "SIGINT received" in err


def test_plaintext_json_keepalive(server):
    c = server.conn()
    c.request("GET", "/plaintext")
    r = c.getresponse()
    assert r.status == 200
    assert r.read() == b"Hello, World!"
    assert r.getheader("Content-Type") == "text/plain"
    assert r.getheader("Server") and r.getheader("Date")
    c.request("GET", "/json")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b'{"message":"Hello, World!"}'


def test_sendfile_and_ranges(server, docroot):
    blob = (docroot / "big.bin").read_bytes()
    c = server.conn()
    c.request("GET", "/big.bin")
    r = c.getresponse()
    assert r.status == 200 and r.read() == blob
    for header, expect, content_range in [
        ("bytes=0-99", blob[:100], f"bytes 0-99/{len(blob)}"),
        ("bytes=1000-", blob[1000:], f"bytes 1000-{len(blob) - 1}/{len(blob)}"),
        ("bytes=-500", blob[-500:], f"bytes {len(blob) - 500}-{len(blob) - 1}/{len(blob)}"),
        (f"bytes=5-{len(blob) + 100}", blob[5:], f"bytes 5-{len(blob) - 1}/{len(blob)}"),
    ]:
        c.request("GET", "/big.bin", headers={"Range": header})
        r = c.getresponse()
        assert r.status == 206, header
        assert r.getheader("Content-Range") == content_range
        assert r.read() == expect, header
    c.request("GET", "/big.bin", headers={"Range": f"bytes={len(blob)}-"})
    r = c.getresponse()
    assert r.status == 416
    assert r.getheader("Content-Range") == f"bytes */{len(blob)}"
    r.read()
    c.request("GET", "/sub/")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"<p>index</p>"


def test_curl_and_range(server, docroot):
    curl = shutil.which("curl")
    if not curl:
        pytest.skip("curl not installed")
    base = f"http://127.0.0.1:{server.port}"
    out = subprocess.run([curl, "-sS", f"{base}/plaintext", f"{base}/hello.txt"],
                         capture_output=True, timeout=30, check=True).stdout
    assert out == b"Hello, World!static hello\n"
    out = subprocess.run([curl, "-sS", "-r", "10-19", f"{base}/big.bin"],
                         capture_output=True, timeout=30, check=True).stdout
    assert out == (docroot / "big.bin").read_bytes()[10:20]


def test_h2load_many_requests(server):
    h2load = shutil.which("h2load")
    if not h2load:
        pytest.skip("h2load not installed")
    out = subprocess.run([h2load, "--h1", "-n", "5000", "-c", "20", "-m", "8",
                          f"http://127.0.0.1:{server.port}/plaintext"],
                         capture_output=True, text=True, timeout=120).stdout
    assert "5000 succeeded, 0 failed, 0 errored" in out, out


def test_pipelined_requests(server):
    reqs = b"".join(f"GET /{p} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                    for p in ["plaintext", "json", "plaintext"])
    reqs += b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    resp = server.raw(reqs)
    assert resp.count(b"HTTP/1.1 200 OK\r\n") == 4
    assert resp.index(b"Hello, World!") < resp.index(b'{"message"') < resp.index(b"static hello")


def test_request_split_at_every_byte(server):
    req = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nUser-Agent: split\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(req)):
            s.sendall(req[i:i + 1])
            time.sleep(0.001)
        data = b""
        while b"Hello, World!" not in data:
            chunk = s.recv(4096)
            assert chunk
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize("request_bytes,status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(120)) + b"\r\n", 431),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"POST /plaintext HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
     400),
])
def test_malformed_requests(server, request_bytes, status):
    resp = server.raw(request_bytes)
    assert resp.startswith(f"HTTP/1.1 {status} ".encode()), resp[:200]
    c = server.conn()
    c.request("GET", "/plaintext")
    assert c.getresponse().read() == b"Hello, World!"


@pytest.mark.parametrize("path", [
    "/../hello.txt", "/%2e%2e/hello.txt", "/sub/..%5c..%5chello.txt", "/sub\\..\\..\\x",
    "/Z:/etc/hostname", "/hello.txt::$DATA", "/sub/.../hello.txt", "/sub/.. /hello.txt",
    "/hello.txt.",
])
def test_windows_path_spellings_stay_under_the_root(server, path):
    # Each is a way Win32 path rules could lead outside the root or to another name for a
    # file; the server refuses them all (404) rather than normalising.
    resp = server.raw(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    status = int(resp.split(b" ", 2)[1])
    assert status in (400, 404), (path, resp[:120])


def test_client_vanishes_mid_sendfile(server, docroot):
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(1000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # a reset in the middle of TransmitFile
    c = server.conn()
    c.request("GET", "/big.bin")
    assert c.getresponse().read() == (docroot / "big.bin").read_bytes()


def test_many_connections_over_the_shared_listener(prefix, docroot):
    # Four workers post AcceptEx on one listener (no SO_REUSEPORT on Windows): 300
    # connections open at once are all served.
    srv = WineServer(prefix, docroot, workers=4)
    socks = []
    try:
        for _ in range(300):
            socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=20))
        for s in socks:
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        for s in socks:
            data = b""
            while not data.endswith(b"Hello, World!"):
                chunk = s.recv(4096)
                assert chunk, "connection closed early"
                data += chunk
            assert data.startswith(b"HTTP/1.1 200 OK")
    finally:
        for s in socks:
            s.close()
        code, err = srv.stop()
    assert code == 0, err
    assert "with 4 workers" in err


def test_ctrl_c_with_open_connections(prefix, docroot):
    srv = WineServer(prefix, docroot, workers=2)
    idle = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    busy = srv.conn()
    busy.request("GET", "/plaintext")
    assert busy.getresponse().read() == b"Hello, World!"
    code, err = srv.stop()
    assert code == 0, err
    assert "SIGINT received" in err
    assert idle.recv(100) == b""  # closed by the server, not left hanging
    idle.close()
    # The port is free again: nothing of the server is left listening (SO_REUSEADDR: the
    # closed connections' TIME_WAIT does not count, a listener still would).
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", srv.port))
        s.listen()


def test_unknown_backend_is_a_clear_error(prefix, docroot):
    cmd = prefix.command(HTTPD, "--port", "0", "--root", f"Z:{docroot}", "--backend", "epoll")
    out = subprocess.run(cmd, env=prefix.env, capture_output=True, text=True, timeout=60,
                         errors="replace")
    assert out.returncode != 0
    assert "does not exist on Windows" in out.stderr


def test_topology_from_processor_groups(prefix):
    # numa/ without hwloc on Windows: the processor-group API reads the machine, and the
    # plan pins (can_bind) instead of falling back to unpinned workers.
    exe = windows_build_dir() / "numa" / "pyparallel-topology.exe"
    out = subprocess.run(prefix.command(exe), env=prefix.env, capture_output=True, text=True,
                         timeout=60, errors="replace")
    assert out.returncode == 0, out.stderr
    text = out.stdout.replace("\r", "")
    assert "Machine (this host (Windows processor groups))" in text
    assert "Plan: policy compact" in text
    assert "unpinned" not in text + out.stderr
    rows = text.split("worker    PU", 1)[1].splitlines()[1:]
    workers = [line.split() for line in rows if line.strip()]
    assert workers and all(int(w[1]) >= 0 for w in workers), text  # each worker has a PU


def test_ctrl_c_lets_a_transmitfile_in_flight_finish(prefix, docroot):
    # A 12 MiB TransmitFile (more than the kernel's socket buffers hold) to a client with a
    # small receive window is under way when Ctrl-C comes: the server drains (finishes the
    # response) before it exits 0. A drain timeout far above what the transfer takes, so a
    # slow machine cannot cut it short.
    blob = (docroot / "big.bin").read_bytes() * 4
    (docroot / "huge.bin").write_bytes(blob)
    srv = WineServer(prefix, docroot, workers=1, extra=["--drain-timeout", "60"])
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 200 OK")
    srv.proc.send_signal(signal.SIGINT)
    time.sleep(0.5)  # the stop is under way while most of the file is still to send
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    code, err = srv.stop()
    assert code == 0, err
    head, _, body = data.partition(b"\r\n\r\n")
    assert body == blob
