"""End-to-end: ``http11 = True`` protocols (servers/proto_http.py): routing, every return
type, Response, file() with Range (206/416), raw sendfile from a handler, 404/500, wrong
return types, keep-alive and pipelining, request attributes, a client that disconnects
mid-response, 1,000 concurrent connections.
"""
import hashlib
import json
import re
import shutil
import subprocess
import threading

import pytest

from pyserver import (SERVERS, ServerProcess, count_responses, parse_responses, pyparallel,
                      recv_until, reset, wait_closed)

pytestmark = pytest.mark.skipif(not pyparallel().is_file(), reason=f"{pyparallel()} not built")
HTTP = SERVERS / "proto_http.py"


@pytest.fixture(scope="module")
def blob_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "blob.bin"
    path.write_bytes(b"".join(hashlib.sha256(i.to_bytes(4, "little")).digest()
                              for i in range(98304)))  # 3 MB, no repeats
    return path


@pytest.fixture(scope="module")
def srv(blob_file):
    """One server for the module (tests here do not change its state); exits 0 on SIGINT."""
    s = ServerProcess(HTTP, "--file", blob_file)
    yield s
    code = s.stop()
    assert code == 0, f"exit {code}:\n{s.output()[-3000:]}"


def check_alive(srv):
    assert srv.alive(), srv.output()[-3000:]
    assert srv.get("/bytes")[2] == b"bytes body"


# -- return types --------------------------------------------------------------------------

@pytest.mark.parametrize("path,ctype,body", [
    ("/", "text/plain", b"index"),
    ("/bytes", "text/plain", b"bytes body"),
    ("/bytearray", "text/plain", b"bytearray body"),
    ("/memoryview", "text/plain", b"memoryview body"),
    ("/str", "text/html", "str body \u00e9\u2713".encode()),
])
def test_sendable_returns(srv, path, ctype, body):
    status, headers, got = srv.get(path)
    assert status == 200
    assert headers["content-type"].startswith(ctype), headers
    assert got == body
    assert headers["content-length"] == str(len(body))
    assert headers.get("date") and headers.get("server")


def test_dict_and_list_are_json(srv):
    status, headers, body = srv.get("/dict")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"message": "Hello, World!", "n": 1,
                                "nested": {"list": [1, 2, 3]}}
    status, headers, body = srv.get("/list")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(body) == [1, "two", {"three": 3}, None, True]


def test_response_objects(srv):
    status, headers, body = srv.get("/response")
    assert (status, body) == (201, b"created")
    assert headers["x-test"] == "yes"
    assert headers["content-type"] == "application/x-test"
    status, headers, body = srv.get("/response_json")
    assert status == 202 and json.loads(body) == {"accepted": True}
    assert headers["content-type"].startswith("application/json")
    status, headers, body = srv.get("/response_str")
    assert status == 418 and body == "teapot \u2615".encode()


def test_bad_response_header_names_and_values_are_500(srv):
    """A header name that is not a token (a space, a NUL, a colon, empty) or a value with
    a NUL is refused with a 500: sent, a client would read another field or none (a NUL
    used to cut the name short unseen)."""
    for n in range(5):
        status, headers, body = srv.get(f"/bad_header?{n}")
        assert status == 500 and b"must not be sent" not in body, (n, status, headers)
    status, headers, body = srv.get("/bad_header?5")
    assert (status, body, headers["x-ok"]) == (200, b"must not be sent", "fine")


def test_response_subclass_is_a_response(srv):
    status, headers, body = srv.get("/response_subclass")
    assert (status, body) == (201, b"made by a subclass")
    assert headers["x-kind"] == "subclass"


def test_none_is_204(srv):
    status, headers, body = srv.get("/none")
    assert status == 204 and body == b""
    assert headers.get("content-length", "0") == "0"


# -- files ---------------------------------------------------------------------------------

def test_file_whole(srv, blob_file):
    status, headers, body = srv.get("/file")
    assert status == 200 and body == blob_file.read_bytes()
    assert headers["content-length"] == str(blob_file.stat().st_size)
    assert headers.get("accept-ranges") == "bytes"
    assert srv.get("/file_typed")[1]["content-type"] == "application/x-custom"


def test_file_ranges(srv, blob_file):
    blob = blob_file.read_bytes()
    n = len(blob)
    for header, expect, content_range in [
            ("bytes=0-0", blob[:1], f"bytes 0-0/{n}"),
            ("bytes=0-99", blob[:100], f"bytes 0-99/{n}"),
            ("bytes=4096-", blob[4096:], f"bytes 4096-{n - 1}/{n}"),
            ("bytes=-500", blob[-500:], f"bytes {n - 500}-{n - 1}/{n}"),
            (f"bytes=100-{n + 1000}", blob[100:], f"bytes 100-{n - 1}/{n}")]:
        status, headers, body = srv.get("/file", {"Range": header})
        assert status == 206, header
        assert headers["content-range"] == content_range, header
        assert headers["content-length"] == str(len(expect)), header
        assert body == expect, header
    for header in (f"bytes={n}-", f"bytes={n + 5}-{n + 10}"):
        status, headers, _ = srv.get("/file", {"Range": header})
        assert status == 416, header
        assert headers.get("content-range") == f"bytes */{n}", header
    # A malformed or unsupported Range is ignored: the whole file, 200 (RFC 9110 14.2).
    status, _, body = srv.get("/file", {"Range": "lines=1-2"})
    assert status == 200 and body == blob


def test_file_ranges_with_curl(srv, blob_file):
    blob = blob_file.read_bytes()
    out = subprocess.run(["curl", "-sS", "--max-time", "20", "-r", "1000-1999", srv.url("/file")],
                         capture_output=True, timeout=30)
    assert out.returncode == 0 and out.stdout == blob[1000:2000]


def test_missing_file_is_404(srv):
    assert srv.get("/missing_file")[0] == 404
    check_alive(srv)


def test_raw_sendfile_from_handler(srv, blob_file):
    blob = blob_file.read_bytes()
    c = srv.http(30)
    for _ in range(2):  # keep-alive: nothing extra (no 204) after the raw response
        c.request("GET", "/sendfile")
        r = c.getresponse()
        assert r.status == 200 and r.read() == blob
        c.request("GET", "/ranged?12345,6789")
        r = c.getresponse()
        assert r.status == 200 and r.read() == blob[12345:12345 + 6789]
    c.request("GET", "/bytes")
    assert c.getresponse().read() == b"bytes body"
    c.close()


# -- errors --------------------------------------------------------------------------------

def test_unknown_route_is_404(srv):
    assert srv.get("/no_such_route")[0] == 404
    assert srv.get("/no_such_route/deeper?x=1")[0] == 404


@pytest.mark.parametrize("path", ["/_private", "/__init__", "/__class__", "/not_callable",
                                  "/http11", "/__dict__"])
def test_private_and_non_callable_attributes_are_not_routes(srv, path):
    status, _, body = srv.get(path)
    assert status == 404, (path, status, body[:200])
    check_alive(srv)


def test_exception_is_500_logged_and_server_keeps_serving(srv):
    c = srv.http()
    c.request("GET", "/raise")
    r = c.getresponse()
    r.read()
    assert r.status == 500
    assert srv.wait_for(r"RuntimeError: boom from an http11 handler", 5), srv.output()[-2000:]
    assert srv.wait_for(r"Traceback", 1)
    check_alive(srv)


def test_wrong_return_type(srv):
    with srv.connect() as s:
        s.sendall(b"GET /wrong HTTP/1.1\r\nHost: x\r\n\r\n")
        closed, data = wait_closed(s, 5)
    # 500 (then close) or a bare close; never a 200.
    responses = parse_responses(data)
    assert closed or (responses and responses[0][0] == 500), data[:300]
    assert all(r[0] == 500 for r in responses), data[:300]
    assert srv.wait_for(r"TypeError", 5), srv.output()[-2000:]
    check_alive(srv)


def test_malformed_request_is_400(srv):
    with srv.connect() as s:
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        closed, data = wait_closed(s, 5)
    assert closed
    assert data == b"" or data.startswith(b"HTTP/1.1 400"), data[:200]
    check_alive(srv)


# -- request attributes, bodies, keep-alive, pipelining -----------------------------------

def test_request_attributes(srv):
    status, _, body = srv.get("/info/sub/path?a=1&b=two", {"X-Custom-Header": "Value 1"})
    assert status == 200
    info = json.loads(body)
    assert info["method"] == "GET"
    assert info["path"] == "/info/sub/path"
    assert info["query"] == "a=1&b=two"
    assert "1.1" in info["version"]
    assert info["headers"]["x-custom-header"] == "Value 1"
    assert all(k == k.lower() for k in info["headers"])
    assert info["peer"][0] == "127.0.0.1"
    assert info["parallel"] is True and info["main"] is False


def test_post_body_is_data(srv):
    payload = bytes(range(256)) * 400
    status, headers, body = srv.get("/echo", method="POST", body=payload,
                                    headers={"Content-Type": "application/octet-stream"})
    assert status == 200 and body == payload
    status, _, body = srv.get("/echo")
    assert status == 200 and body == b""
    status, _, body = srv.get("/info", method="PUT", body=b"x")
    assert json.loads(body)["method"] == "PUT"


def test_chunked_request_body(srv):
    with srv.connect() as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        data = recv_until(s, lambda d: count_responses(d) >= 1)
    (status, _, body), = parse_responses(data)
    assert (status, body) == (200, b"hello world")


def test_keep_alive_keeps_self(srv):
    c = srv.http()
    for i in range(1, 6):
        c.request("GET", "/count")
        assert c.getresponse().read() == b"%d" % i
    c.close()
    assert srv.get("/count")[2] == b"1"  # a new connection, a new protocol instance


def test_pipelining_keeps_order(srv):
    paths = [b"/bytes", b"/count", b"/dict", b"/none", b"/count", b"/str", b"/no_route",
             b"/count"] * 4
    with srv.connect() as s:
        s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p for p in paths))
        data = recv_until(s, lambda d: count_responses(d) >= len(paths))
    responses = parse_responses(data)
    assert len(responses) == len(paths)
    counts = [r[2] for p, r in zip(paths, responses) if p == b"/count"]
    assert counts == [b"%d" % i for i in range(1, 13)]
    for p, (status, _, body) in zip(paths, responses):
        expect = {b"/bytes": 200, b"/count": 200, b"/dict": 200, b"/none": 204,
                  b"/str": 200, b"/no_route": 404}[p]
        assert status == expect, (p, status)


def test_connection_close_header(srv):
    with srv.connect() as s:
        s.sendall(b"GET /bytes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        closed, data = wait_closed(s, 5)
    assert closed and parse_responses(data)[0][2] == b"bytes body"


def test_http10_closes(srv):
    with srv.connect() as s:
        s.sendall(b"GET /bytes HTTP/1.0\r\n\r\n")
        closed, data = wait_closed(s, 5)
    assert closed and data.startswith(b"HTTP/1.") and data.endswith(b"bytes body")


# -- abrupt clients, many clients ----------------------------------------------------------

def test_client_disconnects_mid_response(srv, blob_file):
    for path in (b"/big", b"/file", b"/sendfile"):
        for _ in range(5):
            s = srv.connect()
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
            assert len(recv_until(s, lambda d: len(d) >= 1 << 15)) >= 1 << 15
            reset(s)
        s = srv.connect()  # sends a request and goes away without reading
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path)
        s.close()
    check_alive(srv)
    status, _, body = srv.get("/big", timeout=30)
    assert status == 200 and len(body) == 32 << 20


@pytest.mark.skipif(not shutil.which("h2load"), reason="h2load not installed")
def test_1000_concurrent_connections_h2load(srv):
    out = subprocess.run(["h2load", "--h1", "-c", "1000", "-n", "10000", "-t", "2",
                          srv.url("/dict")], capture_output=True, text=True, timeout=120)
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored", out.stdout)
    assert m, out.stdout + out.stderr
    assert m.group(4) == "10000" and m.group(5) == "0" and m.group(6) == "0", out.stdout
    check_alive(srv)


def test_concurrent_keep_alive_clients(srv):
    errors = []

    def client(i: int) -> None:
        try:
            c = srv.http()
            for j in range(1, 21):
                c.request("GET", "/count")
                got = c.getresponse().read()
                assert got == b"%d" % j, (i, j, got)
            c.close()
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
