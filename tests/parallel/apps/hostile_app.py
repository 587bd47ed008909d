"""WSGI (``hostile_app:wsgi``) and ASGI (``hostile_app:asgi``) versions of the same
routes, for tests/parallel/test_pp_gateway_peers.py: endless and slow streams, apps that
choose their own framing headers, statuses and lengths, and what an app is told about the
request. Each route does the same thing under both interfaces.

Routes (``?name=value`` selects a case):
  /ping                   a short fixed response
  /forever?length=&status=  an endless stream of 8 KiB blocks (server-sent events, a live
                          feed); with a Content-Length of `length`, or another status
  /empty_forever          an endless stream of empty blocks (nothing ever waits)
  /slow?n=5&gap=0.4       n blocks, gap seconds apart
  /huge?mib=1024&id=X     mib blocks of 1 MiB, no Content-Length; progress under /progress
  /progress?id=X          {"made": MiB made so far, "closed": the stream was closed}
  /echo_headers?case=C    the app's own headers from HEADER_CASES, body = the request body
  /status?code=C          that status line (str for WSGI, int for ASGI), body b"x"
  /length?value=V         Content-Length: V with a 5-byte body
  /odd?case=C             one of the smaller deviations (str bodies, header types, CTLs)
  /env                    what the app is told: server, content length, path, asgi dict
  /closed                 the routes whose result's close() ran (WSGI)
"""
import asyncio
import json
import threading
import time
import urllib.parse

MIB = b"m" * (1 << 20)
BLOCK = b"data: tick\n\n" + b"." * (8192 - 12)
_lock = threading.Lock()
CLOSED: list[str] = []
PROGRESS: dict[str, dict] = {}

# Framing headers an app may copy from upstream (the proxy pattern): all hop-by-hop
# ones are the server's to choose.
HEADER_CASES = {
    "te_and_length": [("Transfer-Encoding", "chunked"), ("Content-Length", "{n}")],
    "te_only": [("Transfer-Encoding", "chunked")],
    "te_gzip": [("transfer-encoding", "gzip, chunked")],
    "connection": [("Connection", "keep-alive, Upgrade"), ("Upgrade", "h2c"),
                   ("Keep-Alive", "timeout=99"), ("Proxy-Connection", "keep-alive"),
                   ("TE", "trailers")],
    "close": [("Connection", "Close")],
}

ODD_CASES = ("str_body", "str_list", "str_block", "wrong_header_type", "ctl_reason",
             "ctl_value", "nul_value", "no_reason", "len_on_204", "two_lengths", "same_lengths")


def query(qs: str) -> dict:
    return {k: v[0] for k, v in urllib.parse.parse_qs(qs, keep_blank_values=True).items()}


def note(key: str, **kw) -> None:
    with _lock:
        PROGRESS.setdefault(key, {"made": 0, "closed": False}).update(kw)


# ---- WSGI --------------------------------------------------------------------------

class Closing:
    """A streamed result whose close() is recorded."""

    def __init__(self, name, it):
        self.name = name
        self.it = it

    def __iter__(self):
        return self.it

    def close(self):
        with _lock:
            CLOSED.append(self.name)


def wsgi(environ, start_response):
    path = environ["PATH_INFO"]
    q = query(environ.get("QUERY_STRING", ""))
    body_in = environ["wsgi.input"].read()
    if path == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"pong"]
    if path == "/forever":
        def forever():
            while True:
                yield BLOCK
        length = [("Content-Length", q["length"])] if q.get("length") else []
        start_response(q.get("status", "200 OK"), [("Content-Type", "text/event-stream"),
                                                   *length])
        return Closing("/forever", forever())
    if path == "/empty_forever":
        def empty_forever():
            while True:
                yield b""
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing("/empty_forever", empty_forever())
    if path == "/slow":
        n, gap = int(q.get("n", 5)), float(q.get("gap", 0.4))

        def slow():
            for i in range(n):
                if i:
                    time.sleep(gap)
                yield f"block {i}\n".encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing("/slow", slow())
    if path == "/huge":
        key = q.get("id", "")

        def huge():
            for i in range(int(q.get("mib", 1024))):
                note(key, made=i + 1)
                yield MIB
        note(key, made=0, closed=False)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        result = Closing("/huge", huge())
        result.close = lambda: note(key, closed=True)
        return result
    if path == "/progress":
        with _lock:
            body = json.dumps(PROGRESS.get(q.get("id", ""), {})).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/echo_headers":
        case = q["case"]
        headers = [(k, v.format(n=len(body_in))) for k, v in HEADER_CASES[case]]
        start_response("200 OK", headers)
        if q.get("stream"):
            return iter([body_in[:3], body_in[3:]])
        return [body_in]
    if path == "/status":
        start_response(q["code"], [("Content-Type", "text/plain")])
        return [b"x"]
    if path == "/length":
        start_response("200 OK", [("Content-Length", q["value"])])
        return [b"hello"]
    if path == "/odd":
        case = q["case"]
        if case == "str_body":
            start_response("200 OK", [])
            return ["text"]
        if case == "str_list":
            start_response("200 OK", [])
            return ["te", "xt"]
        if case == "str_block":
            start_response("200 OK", [])
            return iter(["text"])
        if case == "wrong_header_type":
            start_response("200 OK", [(b"X-Bytes", "v")])
            return [b"x"]
        if case == "ctl_reason":
            start_response("200 O\x01K", [])
            return [b"x"]
        if case == "ctl_value":
            start_response("200 OK", [("X-Ctl", "a\x0bb")])
            return [b"x"]
        if case == "nul_value":
            start_response("200 OK", [("X-Nul", "a\x00b")])
            return [b"x"]
        if case == "no_reason":
            start_response("200", [])
            return [b"x"]
        if case == "len_on_204":
            start_response("204 No Content", [("Content-Length", "0")])
            return []
        if case == "two_lengths":
            start_response("200 OK", [("Content-Length", "1"), ("Content-Length", "5")])
            return [b"hello"]
        if case == "same_lengths":
            start_response("200 OK", [("Content-Length", "5"), ("Content-Length", "5")])
            return [b"hello"]
    if path == "/env":
        view = {"server": [environ["SERVER_NAME"], int(environ["SERVER_PORT"])],
                "content_length": environ.get("CONTENT_LENGTH"), "path": path,
                "body": body_in.decode("latin-1")}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(view).encode()]
    if path == "/closed":
        with _lock:
            body = json.dumps(CLOSED).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    start_response("404 Not Found", [])
    return [b"not found"]


# ---- ASGI --------------------------------------------------------------------------

ASGI_SEEN: list = []  # scope["asgi"] dicts, to see that each request has its own


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    q = query(scope["query_string"].decode("latin-1"))
    message = await receive()
    body_in = message.get("body", b"")

    async def start(status, headers=()):
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode() if isinstance(k, str) else k,
                                 v.encode() if isinstance(v, str) else v)
                                for k, v in headers]})

    async def body(data, more=False):
        await send({"type": "http.response.body", "body": data, "more_body": more})

    if path == "/ping":
        await start(200, [("content-type", "text/plain")])
        await body(b"pong")
    elif path == "/forever":
        length = [("content-length", q["length"])] if q.get("length") else []
        await start(int(q.get("status", "200").split()[0]),
                    [("content-type", "text/event-stream"), *length])
        while True:
            await body(BLOCK, more=True)
    elif path == "/empty_forever":
        await start(200, [("content-type", "text/plain")])
        while True:
            await body(b"", more=True)
    elif path == "/slow":
        n, gap = int(q.get("n", 5)), float(q.get("gap", 0.4))
        await start(200, [("content-type", "text/plain")])
        for i in range(n):
            if i:
                await asyncio.sleep(gap)
            await body(f"block {i}\n".encode(), more=True)
        await body(b"")
    elif path == "/huge":
        key = q.get("id", "")
        note(key, made=0, closed=False)
        await start(200, [("content-type", "application/octet-stream")])
        try:
            for i in range(int(q.get("mib", 1024))):
                note(key, made=i + 1)
                await body(MIB, more=True)
            await body(b"")
        finally:
            note(key, closed=True)
    elif path == "/progress":
        with _lock:
            data = json.dumps(PROGRESS.get(q.get("id", ""), {})).encode()
        await start(200, [("content-type", "application/json")])
        await body(data)
    elif path == "/echo_headers":
        case = q["case"]
        await start(200, [(k, v.format(n=len(body_in))) for k, v in HEADER_CASES[case]])
        if q.get("stream"):
            await body(body_in[:3], more=True)
            await body(body_in[3:])
        else:
            await body(body_in)
    elif path == "/status":
        await start(int(q["code"]), [("content-type", "text/plain")])
        await body(b"x")
    elif path == "/length":
        await start(200, [("content-length", q["value"])])
        await body(b"hello")
    elif path == "/odd":
        case = q["case"]
        if case == "str_body":
            await start(200)
            await body("text")
        elif case == "str_list":  # ASGI has no lists: a str in a streamed body
            await start(200)
            await body(b"te", more=True)
            await body("xt")
        elif case == "str_block":
            await start(200)
            await body("text", more=True)
            await body(b"")
        elif case == "wrong_header_type":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [("x-str", "v")]})
            await body(b"x")
        elif case == "ctl_reason":  # ASGI has no reason phrase: a str status instead
            await send({"type": "http.response.start", "status": "200 OK", "headers": []})
            await body(b"x")
        elif case == "ctl_value":
            await start(200, [("x-ctl", "a\x0bb")])
            await body(b"x")
        elif case == "nul_value":
            await start(200, [("x-nul", "a\x00b")])
            await body(b"x")
        elif case == "no_reason":
            await start(200)
            await body(b"x")
        elif case == "len_on_204":
            await start(204, [("content-length", "0")])
            await body(b"")
        elif case == "two_lengths":
            await start(200, [("content-length", "1"), ("content-length", "5")])
            await body(b"hello")
        elif case == "same_lengths":
            await start(200, [("content-length", "5"), ("content-length", "5")])
            await body(b"hello")
    elif path == "/env" or path.startswith("/env/"):
        headers = dict(scope["headers"])
        asgi_dict = scope["asgi"]
        fresh = "mutated" not in asgi_dict
        asgi_dict["mutated"] = True  # an app may change its scope; the next must not see it
        view = {"server": list(scope["server"]), "path": path,
                "content_length": headers.get(b"content-length", b"").decode(),
                "asgi_fresh": fresh, "body": body_in.decode("latin-1")}
        await start(200, [("content-type", "application/json")])
        await body(json.dumps(view).encode())
    else:
        await start(404)
        await body(b"not found")
