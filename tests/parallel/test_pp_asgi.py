"""End to end: ASGI 3.0 applications on the parallel workers through
``pyparallel -m parallel.serve``: the http scope's keys, receive() with whole, chunked
and large bodies, http.disconnect (client gone, response complete), streaming and
framed responses, HEAD, keep-alive and pipelining behind a response that awaits,
``await`` staying on the worker's thread, lifespan startup and shutdown; failing
applications get a 500 or a closed connection and a log line while the server keeps
serving; a real Starlette app from Debian's python3-starlette.
"""
import json
import signal
import socket
import time

import pytest

from apps.serving import exchange, has_debian_package, read_chunked, serve
from pyserver import parse_responses, pyparallel, recv_until, reset, wait_closed

pytestmark = pytest.mark.skipif(not pyparallel().is_file(), reason=f"{pyparallel()} not built")


@pytest.fixture(scope="module")
def srv():
    s = serve("asgi_conformance:app")
    yield s
    code = s.stop()
    assert code == 0, f"exit {code}:\n{s.output()[-3000:]}"
    assert "asgi app: lifespan shutdown" in s.output()


def check_alive(srv):
    assert srv.alive(), srv.output()[-3000:]
    assert srv.get("/status")[0] == 418


def events(srv):
    return json.loads(srv.get("/events")[2])


def test_scope_has_the_required_keys(srv):
    status, _, body = srv.get("/scope/a%20b?x=1&y=%20", headers={"X-Thing": "One"})
    assert status == 200
    scope = json.loads(body)
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert scope["http_version"] == "1.1" and scope["method"] == "GET"
    assert scope["scheme"] == "http" and scope["root_path"] == ""
    assert scope["path"] == "/scope/a b" and scope["raw_path"] == "/scope/a%20b"
    assert scope["query_string"] == "x=1&y=%20"
    assert ["x-thing", "One"] in scope["headers"]  # names lower-cased, values as sent
    assert ["host", f"127.0.0.1:{srv.port}"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["server"] == ["127.0.0.1", srv.port]


def test_lifespan_startup_ran_before_serving(srv):
    assert "startup" in events(srv)
    # What startup put in the lifespan scope's state reaches every request's scope.
    assert json.loads(srv.get("/scope")[2])["state"] == {"pool": "made at startup"}


def test_request_body_whole_and_chunked(srv):
    status, _, body = srv.get("/echo", method="POST", body=b"hello asgi")
    assert json.loads(body) == {"length": 10, "tail": "llo asgi", "type": "http.request"}
    parts = [b"a" * 3000, b"b" * 10, b"TAIL-END"]
    raw = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw += b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    data = exchange(srv, raw, lambda d: len(parse_responses(d)) == 1)
    assert json.loads(parse_responses(data)[0][2])["length"] == 3018


def test_large_body(srv):
    payload = bytes(range(256)) * (1000 * 1024 // 256)
    status, _, body = srv.get("/echo", method="POST", body=payload, timeout=30)
    assert status == 200 and json.loads(body)["length"] == len(payload)
    assert srv.get("/echo", method="POST", body=b"z" * (2 << 20), timeout=30)[0] == 413
    check_alive(srv)


def test_streaming_response_is_chunked(srv):
    data = exchange(srv, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
                    lambda d: d.endswith(b"0\r\n\r\n"))
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    body, after = read_chunked(rest)
    assert body == b"".join(f"part {i}\n".encode() for i in range(4)) and after == b""


def test_streaming_on_http10_ends_with_the_close(srv):
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(b"GET /stream HTTP/1.0\r\n\r\n")
        closed, data = wait_closed(s)
    assert closed and data.endswith(b"part 3\n")
    assert b"Connection: close" in data and b"chunked" not in data


def test_declared_length_in_two_pieces(srv):
    status, headers, body = srv.get("/length")
    assert status == 200 and body == b"0123456789" and headers["content-length"] == "10"
    assert "transfer-encoding" not in headers


def test_await_stays_on_the_workers_thread(srv):
    for _ in range(4):
        same, name = json.loads(srv.get("/sleep")[2])
        assert same and name != "MainThread"


def test_pipelining_waits_for_an_awaiting_response(srv):
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until(s, lambda d: d.endswith(b"teapot"))
    # In order: the first answer (after its sleep), the stream, then the last.
    first = data.index(b"[true")
    assert first < data.index(b"part 3") < data.index(b"teapot")
    assert data.count(b"HTTP/1.1 ") == 3


def test_head_sends_no_body(srv):
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(b"HEAD /length HTTP/1.1\r\nHost: x\r\n\r\nHEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until(s, lambda d: d.endswith(b"teapot"))
    heads = data.split(b"\r\n\r\n")
    assert heads[0].startswith(b"HTTP/1.1 200") and b"content-length: 10" in heads[0]
    assert heads[1].startswith(b"HTTP/1.1 200") and b"chunked" not in heads[1]
    assert heads[2].startswith(b"HTTP/1.1 418")


def test_disconnect_is_delivered(srv):
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    s.sendall(b"GET /disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    reset(s)
    deadline = time.monotonic() + 10
    while "http.disconnect" not in events(srv) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "http.disconnect" in events(srv)


def test_receive_after_the_response_is_disconnect(srv):
    assert srv.get("/after_response")[2] == b"done"
    deadline = time.monotonic() + 10
    while "after:http.disconnect" not in events(srv) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "after:http.disconnect" in events(srv)


def test_app_raising_before_the_response_is_a_500(srv):
    for path in ("/raise", "/no_response", "/bad_header"):
        status, headers, _ = srv.get(path)
        assert status == 500 and "x-evil" not in headers, path
    assert srv.wait_for(r"pyparallel: ASGI app .* raised \(answered 500\)")
    assert srv.wait_for("raised before the response started")
    assert srv.wait_for("returned before its response was complete")
    assert srv.wait_for("invalid header")
    check_alive(srv)


def test_app_raising_after_the_head_closes_the_connection(srv):
    # The head waits for the first body message (so a one-piece body gets a
    # Content-Length): an app that fails in between still gets its 500.
    assert srv.get("/raise_after_start")[0] == 500
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(b"GET /raise_after_body HTTP/1.1\r\nHost: x\r\n\r\n")
        closed, data = wait_closed(s)
    assert closed and data.startswith(b"HTTP/1.1 200"), data
    assert b"partial" in data and not data.endswith(b"0\r\n\r\n")
    assert srv.wait_for(r"ASGI app .* raised \(connection closed\)")
    assert srv.wait_for("raised in the middle of the body")
    check_alive(srv)


def test_status_and_repeated_headers(srv):
    raw = exchange(srv, b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n",
                   lambda d: d.endswith(b"teapot"))
    head = raw.partition(b"\r\n\r\n")[0].decode()
    assert head.startswith("HTTP/1.1 418 ")
    assert "set-cookie: a=1" in head and "set-cookie: b=2" in head
    assert "content-length: 6" in head.lower()


def test_many_concurrent_awaiting_requests():
    s = serve("asgi_conformance:app", workers=2)
    try:
        socks = [socket.create_connection((s.host, s.port), timeout=10) for _ in range(40)]
        for c in socks:
            c.sendall(b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.monotonic()
        for c in socks:
            data = recv_until(c, lambda d: d.endswith(b"]"))
            assert b"[true" in data
            c.close()
        # 40 sleeps of 50 ms overlap on two workers' loops instead of taking 2 s.
        assert time.monotonic() - start < 1.5
    finally:
        assert s.stop() == 0


@pytest.mark.skipif(not has_debian_package("starlette"),
                    reason="python3-starlette is not installed")
def test_starlette_app_end_to_end():
    s = serve("starlette_app:app", dist_packages=True, listen_timeout=60)
    try:
        status, headers, body = s.get("/")
        assert (status, body) == (200, b"Hello, World!")
        assert headers["content-type"].startswith("text/plain")
        expect = sum((i % 1000) * 7 for i in range(5, 20005))  # PP_TABLE_SIZE=1000
        assert s.get("/shared?start=5")[2] == str(expect).encode()
        assert json.loads(s.get("/echo", method="POST", body=b"y" * 50000)[2])["length"] == 50000
        assert json.loads(s.get("/sleep?s=0.02")[2]) == {"same_thread": True}
        assert s.get("/sync")[2] == b"from a thread"  # anyio's thread pool, back on the loop
        assert s.get("/stream")[2] == b"".join(f"chunk {i}\n".encode() for i in range(5))
        assert json.loads(s.get("/lifespan")[2]) == {"started": ["startup"]}
        assert s.get("/nowhere")[0] == 404
        assert s.get("/boom")[0] == 500
        assert s.wait_for("starlette view failed on purpose")
        assert s.get("/")[0] == 200
    finally:
        code = s.stop()
    assert code == 0, s.output()[-3000:]
    assert "starlette app: shutdown ran" in s.output()


def test_lifespan_off_and_interface_detection():
    s = serve("asgi_conformance:app", "--lifespan", "off", workers=1)
    try:
        assert "startup" not in events(s)
        assert s.wait_for(r"asgi_conformance:app \(asgi\)")
    finally:
        assert s.stop() == 0
    assert "lifespan shutdown" not in s.output()


@pytest.mark.parametrize("path,expect", [("/slow", b"slow done"),
                                         ("/slow_thread", b"thread done")])
def test_graceful_stop_finishes_an_awaiting_response(path, expect):
    s = serve("asgi_conformance:app", workers=2)
    try:
        c = s.connect()
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(0.2)
        s.proc.send_signal(signal.SIGTERM)  # while the app awaits
        closed, data = wait_closed(c, 10)
        c.close()
        assert closed and data.startswith(b"HTTP/1.1 200"), data
        assert data.endswith(expect) and b"Connection: close" in data
        s.proc.wait(10)  # the stop completes by itself once the response is out
    finally:
        code = s.stop()
    assert code == 0, s.output()[-3000:]


def test_workers_0_runs_on_the_main_thread_with_lifespan():
    # Debugging mode: the requests' loop and the lifespan's loop share the main thread.
    s = serve("asgi_conformance:app", workers=0)
    try:
        same, name = json.loads(s.get("/sleep")[2])
        assert same and name == "MainThread"
        assert s.get("/stream")[2] == b"".join(f"part {i}\n".encode() for i in range(4))
        assert "startup" in events(s)
    finally:
        assert s.stop() == 0
    assert "asgi app: lifespan shutdown" in s.output()
