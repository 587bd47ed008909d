"""End-to-end: pyparallel-httpd (the C++ server on the engine) driven by real clients.

Every test runs on each host the server is built for (httpd_hosts.py): natively on this
Linux machine, on each backend it has, and the Windows cross build (IOCP) under Wine, which
is skipped, with the reason, where Wine or the cross build is missing. Each test starts the
server on a free loopback port and talks to it with curl, h2load, http.client or raw
sockets. The few tests of what only one host has (Linux's backend ladder and CPU pinning)
say so.
"""
import hashlib
import os
import pathlib
import resource
import shutil
import socket
import subprocess
import threading
import time

import pytest

from httpd_hosts import NativeHost, Server, WineHost, make_host, runs_on
from pptest import free_port

NATIVE = NativeHost()
# Each host with each of its backends: what the `server` fixture runs on.
HOST_BACKENDS = [pytest.param((h.name, b), id=f"{h.name}-{b}", marks=runs_on(h.name))
                 for h in (NativeHost, WineHost) for b in h.backends]
HOSTS = [pytest.param(h.name, marks=runs_on(h.name)) for h in (NativeHost, WineHost)]


@pytest.fixture(scope="module")
def docroot(tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("www")
    (root / "hello.txt").write_bytes(b"static hello\n")
    # 3 MB of non-repeating bytes: partial sends and sendfile progress get exercised.
    blob = b"".join(hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(98304))
    (root / "big.bin").write_bytes(blob)
    (root / "sub").mkdir()
    (root / "sub" / "index.html").write_bytes(b"<p>index</p>")
    return root


@pytest.fixture(scope="module")
def wine_server(request, docroot):
    """One server under Wine for the module's tests that share a server: a Wine process
    takes seconds to start. Stopped with Ctrl-C at the end, which it must survive cleanly."""
    srv = Server(make_host("wine", request), docroot, backend="iocp")
    yield srv
    code, err = srv.stop()
    assert code == 0, f"server exit {code}: {err}"
    assert srv.stop_line() in err, err


@pytest.fixture(params=HOST_BACKENDS)
def server(request, docroot):
    """A server on each host and backend: a fresh one per test natively, the module's one
    under Wine."""
    host_name, backend = request.param
    if host_name == "wine":
        yield request.getfixturevalue("wine_server")
        return
    srv = Server(make_host(host_name, request), docroot, backend=backend)
    yield srv
    code, err = srv.stop()
    assert code == 0, f"server exit {code}: {err}"


@pytest.fixture(params=HOSTS)
def host(request):
    """Each host, for tests that start the server their own way."""
    return make_host(request.param, request)


def test_plaintext_and_json(server):
    c = server.conn()
    c.request("GET", "/plaintext")
    r = c.getresponse()
    assert r.status == 200
    assert r.read() == b"Hello, World!"
    assert r.getheader("Content-Type") == "text/plain"
    assert r.getheader("Server") and r.getheader("Date")
    c.request("GET", "/json")  # same connection: keep-alive
    r = c.getresponse()
    assert r.status == 200
    assert r.getheader("Content-Type") == "application/json"
    assert r.read() == b'{"message":"Hello, World!"}'


def test_static_file_and_ranges(server, docroot):
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


def test_static_errors(server):
    c = server.conn()
    for path in ["/missing.txt", "/sub/nothing"]:
        c.request("GET", path)
        r = c.getresponse()
        assert r.status == 404, path
        r.read()
    # Escaping the document root is refused whatever the spelling.
    for path in ["/../etc/passwd", "/sub/../../etc/passwd", "/%2e%2e/etc/passwd"]:
        resp = server.raw(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        status = int(resp.split(b" ", 2)[1])
        assert status in (400, 403, 404), (path, resp[:100])
        assert b"root:" not in resp


@pytest.mark.parametrize("path", [
    "/../hello.txt", "/%2e%2e/hello.txt", "/sub/..%5c..%5chello.txt", "/sub\\..\\..\\x",
    "/Z:/etc/hostname", "/hello.txt::$DATA", "/sub/.../hello.txt", "/sub/.. /hello.txt",
    "/hello.txt.",
])
def test_windows_path_spellings_stay_under_the_root(server, path):
    # Each is a way Win32 path rules could lead outside the root or to another name for a
    # file (backslashes, drive and stream colons, trailing dots and spaces); the server
    # refuses them all rather than normalising, on Windows where they mean something and on
    # Linux where they must stay plain names that do not exist.
    resp = server.raw(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    status = int(resp.split(b" ", 2)[1])
    assert status in (400, 404), (path, resp[:120])


def test_curl_and_range(server, docroot):
    curl = shutil.which("curl")
    if not curl:
        pytest.skip("curl not installed")
    base = f"http://127.0.0.1:{server.port}"
    out = subprocess.run([curl, "-sS", f"{base}/plaintext", f"{base}/hello.txt"],
                         capture_output=True, timeout=20, check=True).stdout
    assert out == b"Hello, World!static hello\n"
    out = subprocess.run([curl, "-sS", "-r", "10-19", f"{base}/big.bin"],
                         capture_output=True, timeout=20, check=True).stdout
    assert out == (docroot / "big.bin").read_bytes()[10:20]


def test_h2load_many_requests(server):
    h2load = shutil.which("h2load")
    if not h2load:
        pytest.skip("h2load not installed")
    # Fewer under Wine, where every overlapped call is a round trip to wineserver.
    n, clients = (20000, 50) if server.host.name == "native" else (5000, 20)
    out = subprocess.run([h2load, "--h1", "-n", str(n), "-c", str(clients), "-m", "8",
                          f"http://127.0.0.1:{server.port}/plaintext"],
                         capture_output=True, text=True, timeout=120).stdout
    assert f"{n} succeeded, 0 failed, 0 errored" in out, out


def test_pipelined_requests(server):
    reqs = b"".join(f"GET /{p} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
                    for p in ["plaintext", "json", "plaintext"])
    reqs += b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    resp = server.raw(reqs)
    assert resp.count(b"HTTP/1.1 200 OK\r\n") == 4
    assert resp.index(b"Hello, World!") < resp.index(b'{"message"') < resp.index(b"static hello")


def test_request_split_at_every_byte(server):
    req = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nUser-Agent: split\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
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
    (b"POST /plaintext HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST /plaintext HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST /plaintext HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
     400),
])
def test_malformed_requests(server, request_bytes, status):
    resp = server.raw(request_bytes)
    assert resp.startswith(f"HTTP/1.1 {status} ".encode()), resp[:200]
    # The server keeps serving everyone else.
    c = server.conn()
    c.request("GET", "/plaintext")
    assert c.getresponse().read() == b"Hello, World!"


def test_post_bodies(server):
    body = b"x" * 100000
    c = server.conn()
    c.request("POST", "/plaintext", body=body)
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"Hello, World!"
    chunked = b"POST /json HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" \
              b"5\r\nhello\r\n0\r\n\r\nGET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    resp = server.raw(chunked)
    assert resp.count(b"200 OK") == 2 and resp.endswith(b"Hello, World!")


def test_client_vanishes_mid_response(server, docroot):
    for _ in range(20 if server.host.name == "native" else 10):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(1000)
        # An abortive close (RST) in the middle of a 3 MB sendfile (TransmitFile on Windows).
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    c = server.conn()
    c.request("GET", "/big.bin")
    assert c.getresponse().read() == (docroot / "big.bin").read_bytes()


def open_and_serve(port: int, count: int) -> None:
    """Opens `count` connections to `port` at once, then checks each gets its response."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    socks = []
    try:
        for _ in range(count):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=20))
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


def test_thousand_concurrent_connections(server):
    open_and_serve(server.port, 1000)


def test_four_workers_share_the_port(host, docroot):
    # Four workers on one port: SO_REUSEPORT listeners on Linux; on Windows, which has no
    # SO_REUSEPORT, four loops posting AcceptEx on one shared listener. 300 connections
    # opened at once are all served.
    srv = Server(host, docroot, workers=4)
    try:
        open_and_serve(srv.port, 300)
    finally:
        code, err = srv.stop()
    assert code == 0, err
    assert "with 4 workers" in err


def test_stop_signal_with_open_connections(host, docroot):
    # SIGTERM natively; Ctrl-C under Wine (SIGINT, which Wine delivers as CTRL_C_EVENT).
    srv = Server(host, docroot)
    idle = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    busy = srv.conn()
    busy.request("GET", "/plaintext")
    assert busy.getresponse().read() == b"Hello, World!"
    code, err = srv.stop()
    assert code == 0, err
    assert srv.stop_line() in err, err
    assert idle.recv(100) == b""  # closed by the server, not left hanging
    idle.close()
    # The port is free again: nothing of the server is left listening (SO_REUSEADDR: the
    # closed connections' TIME_WAIT does not count, a listener still would).
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", srv.port))
        s.listen()


def test_stop_lets_a_sendfile_in_flight_finish(host, docroot):
    # A 12 MiB sendfile (TransmitFile on Windows; more than the kernel's socket buffers
    # hold) to a client with a small receive window is under way when the stop signal
    # comes: the server drains (finishes the response) before it exits 0. A drain timeout
    # far above what the transfer takes, so a slow machine cannot cut it short.
    blob = (docroot / "big.bin").read_bytes() * 4
    huge = docroot / "huge.bin"
    if not huge.exists():
        huge.write_bytes(blob)
    srv = Server(host, docroot, workers=1, extra=["--drain-timeout", "60"])
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    data = s.recv(65536)
    assert data.startswith(b"HTTP/1.1 200 OK")
    srv.signal_stop()
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


@runs_on("native")
def test_backend_fallback_is_logged(docroot):
    # The automatic ladder is io_uring -> epoll (libaio is selectable by name only: it did
    # not beat epoll, see platform/linux/backends.h); the log line names the backend chosen
    # and why io_uring was passed over.
    # Linux's own ladder (Windows has one backend: tests/win32/test_iocp_specific.cpp).
    srv = Server(NATIVE, docroot, backend="auto", env={"PYPARALLEL_DISABLE_IO_URING": "1"})
    c = srv.conn()
    c.request("GET", "/plaintext")
    assert c.getresponse().read() == b"Hello, World!"
    code, err = srv.stop()
    assert code == 0
    line = [ln for ln in err.splitlines() if "backend" in ln]
    assert line, err
    assert "backend epoll:" in line[0], err
    assert "disabled by PYPARALLEL_DISABLE_IO_URING" in line[0], err


# A backend the host cannot give is a clear error that names the way out: natively, one
# disabled by its variable (the error names epoll, which always works); on Windows, every
# backend but iocp, which does not exist there.
@pytest.mark.parametrize("host_name,backend,variable,needles", [
    pytest.param("native", "io_uring", "PYPARALLEL_DISABLE_IO_URING",
                 ["epoll", "disabled by PYPARALLEL_DISABLE_IO_URING"],
                 id="native-io_uring", marks=runs_on("native")),
    pytest.param("native", "libaio", "PYPARALLEL_DISABLE_LIBAIO",
                 ["epoll", "disabled by PYPARALLEL_DISABLE_LIBAIO"],
                 id="native-libaio", marks=runs_on("native")),
    *[pytest.param("wine", backend, None, ["does not exist on Windows"],
                   id=f"wine-{backend}", marks=runs_on("wine"))
      for backend in ("io_uring", "libaio", "epoll", "kqueue")],
])
def test_forced_unavailable_backend_is_a_clear_error(request, docroot, host_name, backend,
                                                     variable, needles):
    host = make_host(host_name, request)
    proc = host.run("--host", "127.0.0.1", "--port", str(free_port()), "--root",
                    host.path(docroot), "--backend", backend,
                    extra_env={variable: "1"} if variable else None)
    assert proc.returncode != 0
    assert backend in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


@pytest.mark.parametrize("args,needle", [
    (["--port", "notaport"], "--port"),
    (["--workers", "-3"], "--workers"),
    (["--backend", "carrier-pigeon"], "--backend"),
    (["--frobnicate"], "--frobnicate"),
])
def test_bad_options(host, args, needle):
    proc = host.run(*args)
    assert proc.returncode == 2
    assert needle in proc.stderr


@pytest.mark.parametrize("args,env,message", [
    # The variable was not checked before start-up: it is now, as the flag is, and the
    # error names the variable and the valid values.
    ([], {"PYPARALLEL_NUMA_POLICY": "everywhere"},
     "PYPARALLEL_NUMA_POLICY expects compact, scatter, none, node:K or a CPU list such as "
     "0-3,8, got 'everywhere'"),
    (["--numa-policy", "3-1"], {},
     "--numa-policy expects compact, scatter, none, node:K or a CPU list such as 0-3,8, "
     "got '3-1'"),
    # The backends are the build's for this OS: iocp is refused before the engine starts.
    ([], {"PYPARALLEL_BACKEND": "iocp"},
     "PYPARALLEL_BACKEND expects one of auto, io_uring, libaio, epoll, got 'iocp'"),
    (["--backend", "kqueue"], {},
     "--backend expects one of auto, io_uring, libaio, epoll, got 'kqueue'"),
])
@runs_on("native")
def test_bad_values_exit_2_naming_the_valid_ones(request, args, env, message):
    # Native only: the Windows build's backends are its own (test_bad_options covers both).
    proc = make_host("native", request).run("--port", str(free_port()), *args, extra_env=env)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert "serving http://" not in proc.stderr


@runs_on("native")
def test_numa_policy_pins_workers(docroot):
    # Linux's own view of a thread's CPUs (/proc); Windows' processor groups are checked by
    # tests/win32/test_topology_wine.py.
    cpus = sorted(os.sched_getaffinity(0))
    cpu = cpus[-1]
    srv = Server(NATIVE, docroot, workers=1, extra=["--numa-policy", str(cpu)])
    try:
        allowed = []
        for task in pathlib.Path(f"/proc/{srv.proc.pid}/task").iterdir():
            status = (task / "status").read_text()
            line = [ln for ln in status.splitlines() if ln.startswith("Cpus_allowed_list")][0]
            allowed.append(line.split(":")[1].strip())
        # The main thread keeps the process's mask; the one worker is pinned to `cpu`.
        assert str(cpu) in allowed, allowed
        c = srv.conn()
        c.request("GET", "/plaintext")
        assert c.getresponse().read() == b"Hello, World!"
    finally:
        assert srv.stop()[0] == 0


def test_impossible_numa_policy_is_an_error(host, docroot):
    proc = host.run("--host", "127.0.0.1", "--port", str(free_port()), "--root",
                    host.path(docroot), "--numa-policy", "node:7")
    assert proc.returncode == 2
    assert "node 7" in proc.stderr, proc.stderr


def test_pipelining_client_that_reads_late_loses_nothing(server):
    # 60,000 pipelined requests (~8 MB of responses) before reading a byte: the server
    # stops reading above its send-queue limit instead of buffering without bound, then
    # resumes as the client drains, and every response arrives.
    n = 60000
    req = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        sender = threading.Thread(target=s.sendall, args=(req * n,))
        sender.start()
        time.sleep(1.0)  # let the server's queue fill up while we do not read
        got = 0
        buf = b""
        deadline = time.monotonic() + 60
        while got < n and time.monotonic() < deadline:
            chunk = s.recv(1 << 20)
            assert chunk, f"closed after {got} responses"
            buf += chunk
            got += buf.count(b"Hello, World!")
            buf = buf[buf.rfind(b"Hello, World!") + 13:] if b"Hello, World!" in buf else buf
        sender.join(30)
    assert got == n


def test_expect_100_continue(server):
    head = (b"POST /plaintext HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(head)
        # The client waits for the interim response before sending its body.
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        data = b""
        while not data.endswith(b"Hello, World!"):
            chunk = s.recv(4096)
            assert chunk
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK")
