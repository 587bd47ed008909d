"""The WSGI and ASGI gateways under hostile and careless peers, probed with raw sockets
as a reviewer would (issue 24), each case under both interfaces where it applies:

- HEAD on an endless or slow stream is answered at once and frees the worker;
- a client that reads slowly or not at all holds back the app, not the server's memory,
  and a slow but steady reader gets a long stream whole (the send timeout measures
  progress);
- an app's hop-by-hop headers (Transfer-Encoding, Connection, Upgrade, ...) never frame
  the response: the gateway does, so an attacker's body cannot become a response;
- a half-closed client gets its whole response (and its pipelined ones), then the close;
- app-chosen values that would desynchronise the framing (a Content-Length of 2**63 or
  more, two different ones, a 1xx or 101 final status) are a 500, and the next pipelined
  request is answered in order;
- the smaller deviations: str bodies, header types, CTLs, "200" without a reason, a
  Content-Length on a 204, CONTENT_LENGTH from a list, the server address, a shared
  scope["asgi"], an invalid UTF-8 path.
"""
import json
import os
import signal
import socket
import time

import pytest

from apps.serving import serve
from pyserver import pyparallel, recv_until, reset, wait_closed

pytestmark = pytest.mark.skipif(not pyparallel().is_file(), reason=f"{pyparallel()} not built")

KINDS = ["wsgi", "asgi"]


@pytest.fixture(scope="module", params=KINDS)
def srv(request):
    s = serve(f"hostile_app:{request.param}")
    s.kind = request.param
    yield s
    code = s.stop()
    assert code == 0, f"exit {code}:\n{s.output()[-3000:]}"


# ---- a strict response reader --------------------------------------------------------

def parse(data: bytes, methods=()) -> tuple[list, bytes]:
    """Complete responses at the start of ``data``, framed as a client frames them
    (RFC 9112 6.3): [(status, [(name, value)], body, complete)], and the rest. ``methods``
    lists the requests' methods in order (HEAD: no body). A response without a length
    runs to the end of ``data`` (close-delimited); ``complete`` is False for a chunked or
    sized body cut short."""
    out = []
    methods = list(methods)
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
        names = {k.lower(): v for k, v in headers}
        method = methods.pop(0) if methods else "GET"
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            out.append((status, headers, b"", True))
            data = rest
            continue
        if "transfer-encoding" in names:
            body, complete = b"", False
            while True:
                line, nl, after = rest.partition(b"\r\n")
                if not nl:
                    break
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    _, nl2, rest = after.partition(b"\r\n")
                    complete = bool(nl2)
                    break
                if len(after) < size + 2:
                    break
                body += after[:size]
                rest = after[size + 2:]
            out.append((status, headers, body, complete))
            data = rest if complete else b""
            if not complete:
                break
        elif "content-length" in names:
            n = int(names["content-length"])
            out.append((status, headers, rest[:n], len(rest) >= n))
            data = rest[n:]
        else:
            out.append((status, headers, rest, True))
            data = b""
    return out, data


def header(resp, name):
    values = [v for k, v in resp[1] if k.lower() == name.lower()]
    return values[0] if len(values) == 1 else (values or None)


def request(path: str, method: str = "GET", body: bytes = b"", version: str = "1.1",
            extra: str = "") -> bytes:
    length = f"Content-Length: {len(body)}\r\n" if body or method == "POST" else ""
    return (f"{method} {path} HTTP/{version}\r\nHost: x\r\n{length}{extra}\r\n").encode() + body


def talk(srv, raw: bytes, methods, want: int, timeout: float = 10):
    """Sends ``raw`` and reads until ``want`` complete responses arrived (or the close)."""
    with socket.create_connection((srv.host, srv.port), timeout=timeout) as s:
        s.sendall(raw)
        data = recv_until(s, lambda d: len([r for r in parse(d, methods)[0] if r[3]]) >= want
                          and not parse(d, methods)[1], timeout)
    return parse(data, methods)[0], data


def check_serving(srv, n: int = 10):
    """The server answers n fresh requests (each worker is free)."""
    for _ in range(n):
        responses, data = talk(srv, request("/ping", extra="Connection: close\r\n"), ["GET"], 1,
                               timeout=5)
        assert responses and responses[0][0] == 200 and responses[0][2] == b"pong", data
    assert srv.alive()


def closed_routes(srv) -> list:
    responses, _ = talk(srv, request("/closed", extra="Connection: close\r\n"), ["GET"], 1)
    return json.loads(responses[0][2])


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


# ---- fault 1: HEAD on a stream ---------------------------------------------------------

def test_head_on_an_endless_stream_is_answered_and_frees_the_worker(srv):
    # Four HEADs of an endless stream used to pin both workers (WSGI pulled blocks forever
    # and threw them away; an ASGI app's sends never suspended); nothing else was served.
    before = closed_routes(srv).count("/forever") if srv.kind == "wsgi" else 0
    socks = []
    try:
        for _ in range(4):
            s = socket.create_connection((srv.host, srv.port), timeout=5)
            socks.append(s)
            s.sendall(request("/forever", "HEAD"))
            data = recv_until(s, lambda d: b"\r\n\r\n" in d, timeout=5)
            assert data.startswith(b"HTTP/1.1 200 "), data
            assert data.endswith(b"\r\n\r\n")  # no body after the head
            assert b"transfer-encoding" not in data.lower()
        for s in socks:  # each connection goes on with its next request
            s.sendall(request("/ping"))
            data = recv_until(s, lambda d: d.endswith(b"pong"), timeout=5)
            assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"pong"), data
    finally:
        for s in socks:
            s.close()
    check_serving(srv)
    if srv.kind == "wsgi":  # the result's close() ran: the app stops producing
        assert closed_routes(srv).count("/forever") == before + 4


@pytest.mark.parametrize("query", ["length=24576", "status=204%20No%20Content",
                                   "status=304%20Not%20Modified"])
def test_an_endless_stream_ends_where_its_framing_does(srv, query):
    # The neighbours of HEAD: a Content-Length reached (three 8 KiB blocks), a 204, a 304.
    # The response is complete there; the app is asked for nothing more and the
    # connection goes on.
    raw = request(f"/forever?{query}") + request("/ping")
    responses, data = talk(srv, raw, ["GET", "GET"], 2, timeout=5)
    assert len(responses) == 2 and responses[1][2] == b"pong", data[:300]
    if query.startswith("length"):
        assert len(responses[0][2]) == 24576 and responses[0][3]
    else:
        assert responses[0][0] in (204, 304) and responses[0][2] == b""
    check_serving(srv, 4)


def test_an_endless_stream_past_its_content_length_is_cut_there_and_closed(srv):
    # 20000 is not a multiple of the 8 KiB blocks: the block that crosses it is cut, the
    # response is whole, and the connection closes (the app sent more than it declared).
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(request("/forever?length=20000") + request("/ping"))
        closed, data = wait_closed(s, timeout=5)
    responses, rest = parse(data, ["GET", "GET"])
    assert closed and len(responses) == 1 and not rest, data[:300]
    assert len(responses[0][2]) == 20000 and responses[0][3]
    check_serving(srv, 4)


def test_sigterm_stops_a_server_whose_clients_hold_endless_streams(srv):
    # Two HEADs of an endless stream used to pin both workers, and SIGTERM no longer
    # stopped the server. With HEADs, a client reading nothing and a slow one, it stops
    # after its drain period (5 s).
    s = serve(f"hostile_app:{srv.kind}")
    socks = []
    try:
        for method in ("HEAD", "HEAD", "GET", "GET"):
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            c.settimeout(5)
            c.connect((s.host, s.port))
            c.sendall(request("/forever", method))
            socks.append(c)
        time.sleep(0.5)
        socks[3].recv(65536)
        # The drain period (5 s) plus an exit; stop() kills after 15 s (times
        # PP_TEST_SLOWDOWN) and then returns -9.
        code = s.stop(signal.SIGTERM, timeout=15)
        assert code == 0, s.output()[-3000:]
    finally:
        for c in socks:
            c.close()
        s.kill()


def test_head_of_a_slow_stream_is_not_held_back(srv):
    # A finite generator held the HEAD response back until it was used up (2.5 s here).
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        t = time.monotonic()
        s.sendall(request("/slow?n=6&gap=0.5", "HEAD", extra="Connection: close\r\n"))
        closed, data = wait_closed(s, timeout=10)
        took = time.monotonic() - t
    assert closed and data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\n"), data
    assert took < 1.5, f"the HEAD response took {took:.2f} s"


def test_a_client_leaving_an_endless_stream_frees_the_worker(srv):
    # After the client went, an ASGI app's sends returned at once, forever: the worker
    # spun. Now a body sent to a client that is gone raises ClientDisconnected (an
    # OSError); a WSGI stream stops being iterated.
    for _ in range(2):
        s = socket.create_connection((srv.host, srv.port), timeout=5)
        s.sendall(request("/forever"))
        assert recv_until(s, lambda d: len(d) > 65536, timeout=5).startswith(b"HTTP/1.1 200 ")
        reset(s)
    check_serving(srv)


def test_an_app_streaming_empty_blocks_forever_does_not_hold_the_worker(srv):
    # Neither a WSGI generator of empty blocks nor an ASGI app sending empty bodies in a
    # loop ever waits for anything: both used to run on without returning to the loop.
    socks = []
    try:
        for _ in range(2):  # one per worker, at least
            s = socket.create_connection((srv.host, srv.port), timeout=5)
            s.sendall(request("/empty_forever"))
            socks.append(s)
        time.sleep(0.3)
        check_serving(srv)
    finally:
        for s in socks:
            reset(s)
    if srv.kind == "wsgi":  # the client went: the generator is closed
        deadline = time.monotonic() + 5
        while closed_routes(srv).count("/empty_forever") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert closed_routes(srv).count("/empty_forever") >= 2
    check_serving(srv, 2)


# ---- fault 2: back-pressure ------------------------------------------------------------

def test_clients_reading_nothing_hold_back_the_stream_not_memory(srv):
    # Ten clients ask for a 1 GiB stream (1 MiB blocks, no length) and read nothing. The
    # server used to queue it all: +1 GiB of RSS in 1.5 s per client. Now each stream
    # waits once a little is queued: RSS grows by less than 64 MiB, the apps are held
    # back (each made a few MiB), and they are closed when their clients go.
    n = int(os.environ.get("PP_TEST_STALLED_CLIENTS", "10"))
    tag = f"{srv.kind}{time.monotonic_ns()}"
    base = rss_kib(srv.proc.pid)
    socks = []
    try:
        for i in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.settimeout(5)
            s.connect((srv.host, srv.port))
            s.sendall(request(f"/huge?mib=1024&id={tag}-{i}"))
            socks.append(s)
        peak = base
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            peak = max(peak, rss_kib(srv.proc.pid))
            assert (peak - base) < 64 << 10, f"RSS grew by {(peak - base) >> 10} MiB"
            time.sleep(0.05)
        made = [progress(srv, f"{tag}-{i}")["made"] for i in range(n)]
        assert all(0 < m < 32 for m in made), made  # started, then held back
    finally:
        for s in socks:
            reset(s)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(progress(srv, f"{tag}-{i}")["closed"] for i in range(n)):
            break
        time.sleep(0.1)
    assert all(progress(srv, f"{tag}-{i}")["closed"] for i in range(n))
    check_serving(srv)


def progress(srv, key: str) -> dict:
    responses, data = talk(srv, request(f"/progress?id={key}", extra="Connection: close\r\n"),
                           ["GET"], 1)
    return json.loads(responses[0][2])


@pytest.mark.parametrize("kind", KINDS)
def test_a_slow_steady_reader_gets_a_long_stream_whole(kind):
    # A client reading 2 MiB/s used to be cut by the send timeout: it saw one huge
    # queued send that never finished, not bytes moving. Short form: a 1 s send timeout
    # and a 6 s stream (bench/slow_reader.py: 256 MiB with the default 60 s).
    s = serve(f"hostile_app:{kind}", "--send-timeout", "1")
    try:
        mib = 12
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 131072)
        sock.settimeout(10)
        sock.connect((s.host, s.port))
        sock.sendall(request(f"/huge?mib={mib}&id=steady", extra="Connection: close\r\n"))
        data = bytearray()
        start = time.monotonic()
        rate = 2 << 20  # bytes per second
        while True:
            ahead = len(data) / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            data += chunk
        sock.close()
        responses, _ = parse(bytes(data))
        assert responses, bytes(data[:200])
        status, _, body, complete = responses[0]
        assert status == 200 and complete, f"cut after {len(body) >> 20} MiB"
        assert len(body) == mib << 20
        assert s.alive()
    finally:
        code = s.stop()
        assert code == 0, s.output()[-3000:]


# ---- fault 3: the app's framing headers -------------------------------------------------

EVIL = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!"


@pytest.mark.parametrize("case", ["te_and_length", "te_only", "te_gzip", "connection"])
@pytest.mark.parametrize("stream", ["", "1"])
def test_the_apps_framing_headers_never_frame_the_response(srv, case, stream):
    # An app that copies upstream headers (Transfer-Encoding, Connection, Upgrade) used
    # to frame its body raw: with an attacker's body, two pipelined requests produced
    # three responses, the attacker's first. The gateway frames every body itself.
    raw = (request(f"/echo_headers?case={case}&stream={stream}", "POST", EVIL) +
           request("/ping"))
    responses, data = talk(srv, raw, ["POST", "GET"], 2)
    assert len(responses) == 2, data
    first, second = responses
    assert first[0] == 200 and first[2] == EVIL and first[3], data
    assert second[0] == 200 and second[2] == b"pong", data
    names = [k.lower() for k, _ in first[1]]
    assert not ("transfer-encoding" in names and "content-length" in names), first[1]
    assert names.count("transfer-encoding") + names.count("content-length") == 1, first[1]
    assert header(first, "transfer-encoding") in (None, "chunked"), first[1]
    for hop in ("keep-alive", "upgrade", "proxy-connection", "te"):
        assert hop not in names, first[1]
    assert header(first, "connection") is None, first[1]


def test_the_apps_connection_close_is_honoured(srv):
    raw = request("/echo_headers?case=close", "POST", b"bye") + request("/ping")
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(raw)
        closed, data = wait_closed(s, timeout=10)
    responses, rest = parse(data, ["POST", "GET"])
    assert closed and len(responses) == 1 and not rest, data
    assert responses[0][2] == b"bye" and header(responses[0], "connection") == "close"


# ---- fault 4: half-closed clients -------------------------------------------------------

@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_a_half_closed_client_gets_the_whole_stream(srv, version):
    # The client sends its request, then shuts down its sending side. The response used
    # to stop after its first block -- on HTTP/1.0 (close-delimited) a cut that looks
    # like a whole response.
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(request("/slow?n=4&gap=0.3", version=version))
        s.shutdown(socket.SHUT_WR)
        closed, data = wait_closed(s, timeout=10)
    assert closed, data
    responses, rest = parse(data)
    assert len(responses) == 1 and not rest, data
    assert responses[0][2] == b"block 0\nblock 1\nblock 2\nblock 3\n" and responses[0][3], data


def test_a_half_closed_client_gets_every_pipelined_response(srv):
    raw = (request("/slow?n=3&gap=0.2") + request("/ping") + request("/slow?n=2&gap=0.1") +
           b"GET /ping HTTP/1.1\r\nHost: x\r\n")  # a partial last request: never answered
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        closed, data = wait_closed(s, timeout=10)
    assert closed, data
    responses, rest = parse(data)
    assert [r[2] for r in responses] == [b"block 0\nblock 1\nblock 2\n", b"pong",
                                         b"block 0\nblock 1\n"], data
    assert all(r[3] for r in responses) and not rest


# ---- fault 5: app-chosen values that would desynchronise the framing --------------------

@pytest.mark.parametrize("value", [str(2 ** 63), str(2 ** 64), "9" * 30, "-1", "+5", "5, 5",
                                   "0x5", ""])
def test_an_impossible_content_length_is_a_500(srv, value):
    # 2**63 was stored as a negative int64 ("no length"): keep-alive was kept and the
    # next pipelined response landed inside this body.
    raw = request(f"/length?value={value.replace('+', '%2B').replace(' ', '+')}") + request("/ping")
    responses, data = talk(srv, raw, ["GET", "GET"], 2)
    assert [r[0] for r in responses] == [500, 200], data
    assert responses[1][2] == b"pong"


def test_a_content_length_the_body_falls_short_of_closes_the_connection(srv):
    raw = request(f"/length?value={2 ** 63 - 1}") + request("/ping")
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(raw)
        closed, data = wait_closed(s, timeout=10)
    assert closed, data
    assert data.count(b"HTTP/1.1 ") == 1 and data.endswith(b"hello"), data


@pytest.mark.parametrize("code", [100, 101, 103, 199, 600, 999])
def test_an_informational_or_unknown_final_status_is_a_500(srv, code):
    # A final 1xx was sent and counted as complete: the client paired the next response
    # with this request. A 101 without an upgrade carried on as HTTP.
    status = str(code) if srv.kind == "asgi" else f"{code}%20Whatever"
    raw = request(f"/status?code={status}") + request("/ping")
    responses, data = talk(srv, raw, ["GET", "GET"], 2)
    assert [r[0] for r in responses] == [500, 200], data
    assert responses[1][2] == b"pong"


# ---- the smaller deviations -------------------------------------------------------------

@pytest.mark.parametrize("case", ["str_body", "str_list", "str_block", "wrong_header_type",
                                  "ctl_reason", "ctl_value", "nul_value", "two_lengths"])
def test_an_app_error_is_never_sent_as_it_is(srv, case):
    # A str body (one, two or streamed), a header of the other interface's type (WSGI:
    # str; ASGI: bytes), a control character in a reason or value, two different
    # Content-Lengths: each is the app's error, a 500 or (after the head) a cut, in every
    # path alike; the connection goes on with the next request when it can.
    raw = request(f"/odd?case={case}") + request("/ping")
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(raw)
        data = recv_until(s, lambda d: d.endswith(b"pong"), timeout=5)
    responses, _ = parse(data, ["GET", "GET"])
    first = responses[0]
    assert first[0] == 500 or not first[3], data
    assert first[2] != b"text" and b"xt" not in first[2], data
    assert not any(c in data for c in (b"\x00", b"\x01", b"\x0b")), data
    assert data.endswith(b"pong") or not first[3], data  # the next request, when it can be


def test_a_status_without_a_reason_gets_its_space_and_reason(srv):
    responses, data = talk(srv, request("/odd?case=no_reason", extra="Connection: close\r\n"),
                           ["GET"], 1)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data


def test_no_content_length_on_a_204(srv):
    raw = request("/odd?case=len_on_204") + request("/ping")
    responses, data = talk(srv, raw, ["GET", "GET"], 2)
    assert [r[0] for r in responses] == [204, 200], data
    assert header(responses[0], "content-length") is None, data


def test_two_equal_content_lengths_are_sent_as_one(srv):
    responses, data = talk(srv, request("/odd?case=same_lengths"), ["GET"], 1)
    assert responses[0][0] == 200 and responses[0][2] == b"hello"
    assert data.lower().count(b"content-length") == 1, data


def test_what_the_app_is_told_about_the_server_and_the_body(srv):
    # SERVER_NAME/SERVER_PORT and ASGI's `server` are where the client reached us, not
    # its Host header; CONTENT_LENGTH is the parsed length, not the field ("3, 3"); each
    # request has its own scope["asgi"].
    raw = (b"POST /env HTTP/1.1\r\nHost: evil.example:1\r\nContent-Length: 3, 3\r\n\r\nabc" +
           request("/env"))
    responses, data = talk(srv, raw, ["POST", "GET"], 2)
    assert [r[0] for r in responses] == [200, 200], data
    first, second = (json.loads(r[2]) for r in responses)
    assert first["server"] == ["127.0.0.1", srv.port]
    assert first["body"] == "abc"
    if srv.kind == "wsgi":
        assert first["content_length"] == "3"
    else:
        assert first["asgi_fresh"] and second["asgi_fresh"]


def test_an_invalid_utf8_path_is_decoded_with_replacement(srv):
    if srv.kind == "wsgi":
        pytest.skip("PATH_INFO is bytes as latin-1 (PEP 3333): nothing is decoded")
    responses, data = talk(srv, request("/env/%FF%C3", extra="Connection: close\r\n"),
                           ["GET"], 1)
    assert json.loads(responses[0][2])["path"] == "/env/\ufffd\ufffd", data


# ---- issue 19, item 5: the request is the worker's ----------------------------------------

def test_another_thread_cannot_read_the_request():
    # environ() and scope() skipped the worker check: a thread could read views into the
    # request buffer while the worker parsed the next request into it.
    from pyserver import SERVERS, ServerProcess
    s = ServerProcess(SERVERS / "gateway_thread.py")
    try:
        status, _, body = s.get("/x")
        seen = json.loads(body)
        assert status == 200
        assert seen["worker_environ"] == "read dict" and seen["worker_scope"] == "read dict"
        for key in ("thread_environ", "thread_scope", "thread_sendfile"):
            assert seen[key].startswith("ParallelError: "), seen
            assert "worker" in seen[key], seen
        assert seen["fd_closed"] is True, seen
    finally:
        code = s.stop()
        assert code == 0, s.output()[-3000:]
