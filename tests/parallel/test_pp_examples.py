"""End-to-end: every example in examples/ under the pyparallel host, driven by real
clients (curl, h2load, http.client, raw sockets) on loopback. Each server is stopped with
SIGINT at the end of its test and must exit 0.
"""
import hashlib
import json
import re
import shutil
import socket
import subprocess
import sys
import threading

import pytest

from pptest import SLOWDOWN, free_port
from pyserver import (EXAMPLES, ServerProcess, count_responses, parse_responses, pyparallel,
                      recv_exactly, recv_line, recv_until)

pytestmark = pytest.mark.skipif(not pyparallel().is_file(), reason=f"{pyparallel()} not built")


def stopped_cleanly(srv: ServerProcess) -> None:
    code = srv.stop()
    assert code == 0, f"exit {code} after SIGINT:\n{srv.output()[-3000:]}"
    assert srv.stop_seconds < 5 * SLOWDOWN, f"took {srv.stop_seconds:.1f} s to stop"


@pytest.fixture
def serve():
    """serve(script, *args, **kw) -> a running ServerProcess, stopped (and checked) after."""
    servers = []

    def start(script, *args, **kw):
        srv = ServerProcess(script, *args, **kw)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        if srv.exit_code is None:
            stopped_cleanly(srv)


def curl(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "--max-time", str(int(timeout)), *args],
                          capture_output=True, timeout=timeout + 5)


# -- hello.py ------------------------------------------------------------------------------

def test_hello_greets_and_echoes(serve):
    srv = serve(EXAMPLES / "hello.py")
    with srv.connect() as s:
        assert recv_line(s) == b"Hello, World!\r\n"
        for msg in (b"hi", b"second message", b"\x00\xff binary"):
            s.sendall(msg)
            expect = b"You said: " + msg + b"\r\n"
            assert recv_exactly(s, len(expect)) == expect


def test_hello_many_clients_in_parallel(serve):
    srv = serve(EXAMPLES / "hello.py")
    errors = []

    def client(i: int) -> None:
        try:
            with srv.connect() as s:
                assert recv_line(s) == b"Hello, World!\r\n"
                for j in range(20):
                    msg = b"client %d message %d" % (i, j)
                    s.sendall(msg)
                    expect = b"You said: " + msg + b"\r\n"
                    got = recv_exactly(s, len(expect))
                    assert got == expect, (got, expect)
        except Exception as exc:  # collected: assertion in the main thread
            errors.append(repr(exc))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]


# -- echo.py -------------------------------------------------------------------------------

def test_echo_round_trips_a_stream(serve):
    srv = serve(EXAMPLES / "echo.py")
    blob = b"".join(hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(65536))
    with srv.connect() as s:
        s.sendall(b"ping")
        assert recv_exactly(s, 4) == b"ping"
        # 2 MB: the echo must keep up with a client that writes while it reads.
        sender = threading.Thread(target=s.sendall, args=(blob,))
        sender.start()
        got = recv_exactly(s, len(blob), timeout=30)
        sender.join(30)
    assert len(got) == len(blob) and got == blob


# -- tefb.py -------------------------------------------------------------------------------

def test_tefb_plaintext_and_json(serve):
    srv = serve(EXAMPLES / "tefb.py")
    c = srv.http()
    c.request("GET", "/plaintext")
    r = c.getresponse()
    assert (r.status, r.read()) == (200, b"Hello, World!")
    assert r.getheader("Content-Type", "").startswith("text/plain")
    assert r.getheader("Content-Length") == "13"
    assert r.getheader("Date") and r.getheader("Server")
    c.request("GET", "/json")  # same connection: keep-alive
    r = c.getresponse()
    assert r.status == 200
    assert r.getheader("Content-Type", "").startswith("application/json")
    assert json.loads(r.read()) == {"message": "Hello, World!"}
    c.close()
    assert srv.get("/nope")[0] == 404


def test_tefb_pipelined(serve):
    srv = serve(EXAMPLES / "tefb.py")
    req = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
    with srv.connect() as s:
        s.sendall(req * 16 + b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until(s, lambda d: count_responses(d) >= 17)
    responses = parse_responses(data)
    assert len(responses) == 17
    assert all(r[0] == 200 and r[2] == b"Hello, World!" for r in responses[:16])
    assert json.loads(responses[16][2]) == {"message": "Hello, World!"}


def test_tefb_curl(serve):
    srv = serve(EXAMPLES / "tefb.py")
    out = curl(srv.url("/plaintext"), srv.url("/json"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"Hello, World!")
    assert json.loads(out.stdout[13:]) == {"message": "Hello, World!"}


@pytest.mark.skipif(not shutil.which("h2load"), reason="h2load not installed")
def test_tefb_h2load_1000_connections(serve):
    srv = serve(EXAMPLES / "tefb.py")
    out = subprocess.run(["h2load", "--h1", "-c", "1000", "-n", "20000", "-t", "2",
                          srv.url("/plaintext")], capture_output=True, text=True, timeout=120)
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored", out.stdout)
    assert m, out.stdout + out.stderr
    total, _, done, ok, failed, errored = map(int, m.groups())
    assert (done, ok, failed, errored) == (20000, 20000, 0, 0), out.stdout
    assert "status codes: 20000 2xx" in out.stdout, out.stdout
    assert srv.get("/plaintext")[2] == b"Hello, World!"


# -- random_sum.py -------------------------------------------------------------------------

def test_random_sum(serve):
    srv = serve(EXAMPLES / "random_sum.py", "--size", "1000")
    assert srv.wait_for(r"Random server now accessible", 5)
    c = srv.http()
    starts = set()
    for _ in range(50):
        c.request("GET", "/random")
        r = c.getresponse()
        body = r.read().decode()
        assert r.status == 200
        assert r.getheader("Content-Type", "").startswith("text/html")
        m = re.fullmatch(r"The sum of the items in slice \[(\d+):(\d+)\] is (\d+)", body)
        assert m, body
        start, end, total = map(int, m.groups())
        assert 0 <= start and end == start + 10 and end <= 1000 and 0 <= total <= 990
        starts.add(start)
    c.close()
    assert len(starts) > 10  # random, not a constant


# -- static.py -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def docroot(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    (root / "hello.txt").write_bytes(b"static hello\n")
    blob = b"".join(hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(98304))
    (root / "big.bin").write_bytes(blob)  # 3 MB, no repeats
    (root / "a b.txt").write_bytes(b"spaced name\n")
    (root / "sub").mkdir()
    (root / "sub" / "index.html").write_bytes(b"<p>sub index</p>")
    (root.parent / "outside-secret.txt").write_bytes(b"secret\n")
    return root


def test_static_files_and_listing(serve, docroot):
    srv = serve(EXAMPLES / "static.py", "--root", docroot)
    status, headers, body = srv.get("/files/hello.txt")
    assert (status, body) == (200, b"static hello\n")
    assert headers["content-length"] == "13"
    status, _, body = srv.get("/files/big.bin")
    assert status == 200 and body == (docroot / "big.bin").read_bytes()
    assert srv.get("/files/a%20b.txt")[2] == b"spaced name\n"
    assert srv.get("/files/sub/")[2] == b"<p>sub index</p>"
    status, headers, body = srv.get("/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    for name in (b"hello.txt", b"big.bin", b"a%20b.txt", b"sub/"):
        assert b'href="/files/' + name + b'"' in body
    assert srv.get("/files/nope.txt")[0] == 404
    assert srv.get("/nope")[0] == 404


def test_static_refuses_paths_outside_root(serve, docroot):
    srv = serve(EXAMPLES / "static.py", "--root", docroot)
    for path in (b"/files/../outside-secret.txt", b"/files/%2e%2e/outside-secret.txt",
                 b"/files/sub/../../outside-secret.txt"):
        with srv.connect() as s:
            s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = recv_until(s, lambda d: count_responses(d) >= 1)
        (status, _, body), = parse_responses(data) or [(0, {}, b"")]
        assert status in (400, 404) and b"secret" not in body, (path, data[:200])


def test_static_ranges(serve, docroot):
    srv = serve(EXAMPLES / "static.py", "--root", docroot)
    blob = (docroot / "big.bin").read_bytes()
    n = len(blob)
    for header, expect, content_range in [
            ("bytes=0-99", blob[:100], f"bytes 0-99/{n}"),
            ("bytes=1000-", blob[1000:], f"bytes 1000-{n - 1}/{n}"),
            ("bytes=-500", blob[-500:], f"bytes {n - 500}-{n - 1}/{n}"),
            (f"bytes=100-{n + 1000}", blob[100:], f"bytes 100-{n - 1}/{n}")]:
        status, headers, body = srv.get("/files/big.bin", {"Range": header})
        assert status == 206, header
        assert headers["content-range"] == content_range, header
        assert body == expect, header
    status, headers, _ = srv.get("/files/big.bin", {"Range": f"bytes={n}-"})
    assert status == 416
    assert headers.get("content-range") == f"bytes */{n}"
    out = curl("-r", "5-104", srv.url("/files/big.bin"))
    assert out.returncode == 0 and out.stdout == blob[5:105]


# -- wiki/ ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wiki_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("wiki")
    subprocess.run([sys.executable, str(EXAMPLES / "wiki" / "make_data.py"), "--out", str(out),
                    "--articles", "5000", "--mean-bytes", "3000"], check=True, timeout=120)
    return out


def test_wiki_prefix_search(serve, wiki_data):
    srv = serve(EXAMPLES / "wiki" / "wiki.py", "--data", wiki_data)
    xml = (wiki_data / "enwiki.xml").read_bytes()
    status, headers, body = srv.get("/offsets/Python")
    assert status == 200 and headers["content-type"].startswith("application/json")
    found = json.loads(body)
    assert [f[0] for f in found][:3] == ["Python", "Python (programming language)",
                                         "Pythonidae"]
    for title, start, end in found:
        assert xml[start:end].startswith(b"  <page>\n    <title>%s</title>" % title.encode())
        assert xml[start:end].endswith(b"</page>\n")
    assert json.loads(srv.get("/offsets/Python_(")[2])[0][0] == "Python (programming language)"
    assert len(json.loads(srv.get("/offsets/?limit=7")[2])) == 7
    assert json.loads(srv.get("/offsets/Zzzzzzzzzzzz")[2]) == []


def test_wiki_articles_are_byte_exact(serve, wiki_data):
    srv = serve(EXAMPLES / "wiki" / "wiki.py", "--data", wiki_data)
    xml = (wiki_data / "enwiki.xml").read_bytes()
    lines = (wiki_data / "titles.tsv").read_text().splitlines()
    sample = [line.rpartition("\t")[0] for line in lines[::97]] + ["Python"]
    c = srv.http()  # one keep-alive connection for all: the raw head must be complete
    for title in sample:
        c.request("GET", "/wiki/" + title.replace(" ", "_"))
        r = c.getresponse()
        body = r.read()
        assert r.status == 200, title
        start, end = next((s, e) for t, s, e in json.loads(
            srv.get("/offsets/" + title.replace(" ", "_") + "?limit=1")[2]))
        assert body == xml[start:end], title
    c.close()
    assert srv.get("/wiki/No_such_article_here")[0] == 404
    out = curl(srv.url("/wiki/Pythonidae"))
    assert out.returncode == 0 and b"<title>Pythonidae</title>" in out.stdout


# -- client.py -----------------------------------------------------------------------------

def run_client(port: int, message: str = "hello from client", timeout: float = 5):
    return subprocess.run([str(pyparallel()), str(EXAMPLES / "client.py"), "--port", str(port),
                           "--message", message, "--timeout", str(timeout)],
                          capture_output=True, text=True, timeout=timeout + 20)


def test_client_against_a_python_server():
    port = free_port()
    seen = []
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", port))
        ls.listen()
        ls.settimeout(20)

        def serve_one():
            conn, _ = ls.accept()
            with conn:
                conn.settimeout(10)
                data = recv_line(conn)
                seen.append(data)
                conn.sendall(b"echo: " + data)

        t = threading.Thread(target=serve_one, daemon=True)
        t.start()
        out = run_client(port)
        t.join(10)
    assert out.returncode == 0, out.stdout + out.stderr
    assert seen == [b"hello from client\r\n"]
    assert "echo: hello from client" in out.stdout


def test_client_against_hello(serve):
    srv = serve(EXAMPLES / "hello.py")
    out = run_client(srv.port, "ping pong")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Hello, World!" in out.stdout and "You said: ping pong" in out.stdout


def test_client_gives_up_when_nobody_answers():
    port = free_port()
    with socket.socket() as ls:  # accepts (backlog) but never replies
        ls.bind(("127.0.0.1", port))
        ls.listen()
        out = run_client(port, timeout=1)
    assert out.returncode == 1, out.stdout + out.stderr
