"""The training run for a PGO build of the interpreter (build-cpython.sh --opt pgo).

CPython's default PROFILE_TASK runs about forty regression-test modules, which takes many
minutes on two cores. This runs what pyparallel's callbacks do instead, in well under a
minute even with instrumentation: the workloads of microbench.py (loops, calls, objects,
dicts and strings, JSON, sorting, a regex), request-handler-shaped string and bytes work,
a small asyncio program, web-framework-shaped code (routing, ASGI and WSGI apps), and
the same functions on two threads at once, so the profile
covers the free-threaded paths (specialization under contention, biased reference counts).
"""
import asyncio
import json
import os
import sys
import threading
import timeit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import microbench  # noqa: E402  (the same workloads the speed comparisons use)

HANDLER_SETUP = """
import json
HEAD = (b"GET /api/items?id=42&sort=name HTTP/1.1\\r\\nHost: localhost:8080\\r\\n"
        b"User-Agent: wrk\\r\\nAccept: */*\\r\\nConnection: keep-alive\\r\\n\\r\\n")
class Request:
    __slots__ = ("method", "path", "query", "headers")
    def __init__(self, method, path, query, headers):
        self.method, self.path, self.query, self.headers = method, path, query, headers
def parse(raw):
    head = raw.decode("latin-1")
    lines = head.split("\\r\\n")
    method, target, _ = lines[0].split(" ")
    path, _, qs = target.partition("?")
    query = dict(p.split("=", 1) for p in qs.split("&") if p)
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return Request(method, path, query, headers)
def handle(raw):
    req = parse(raw)
    body = json.dumps({"id": int(req.query["id"]), "path": req.path,
                       "agent": req.headers.get("user-agent", "")}).encode()
    return b"".join([b"HTTP/1.1 200 OK\\r\\n", f"Content-Length: {len(body)}\\r\\n".encode(),
                     b"Content-Type: application/json\\r\\n\\r\\n", body])
"""


# Web-framework-shaped code (what WSGI/ASGI apps on the workers run): regex routing,
# request objects with lazy properties, header lists, an ASGI app driven by coroutine
# send(), a WSGI app with an environ, and a loop over an int-keyed table with `%`.
FRAMEWORK_SETUP = """
import re
ROUTES = [(re.compile(r"^/items/(?P<id>[0-9]+)$"), "item"),
          (re.compile(r"^/users/(?P<name>[a-z]+)$"), "user"), (re.compile(r"^/$"), "index")]
TABLE = {i: i * 7 for i in range(50000)}
class Request:
    def __init__(self, scope):
        self.scope = scope
        self._query = None
    @property
    def path(self):
        return self.scope["path"]
    @property
    def query(self):
        if self._query is None:
            self._query = dict(p.split("=", 1) for p in self.scope["query_string"].split("&")
                               if "=" in p)
        return self._query
    def header(self, name, default=None):
        for k, v in self.scope["headers"]:
            if k == name:
                return v
        return default
def dispatch(path):
    for pattern, name in ROUTES:
        m = pattern.match(path)
        if m:
            return name, m.groupdict()
    return None, {}
def shared(start):
    table = TABLE
    size = len(table)
    total = 0
    for i in range(start, start + 500):
        total += table[i % size]
        total += table.get(i, 0)
    return total
async def app(scope, receive, send):
    req = Request(scope)
    name, params = dispatch(req.path)
    message = await receive()
    if name == "item":
        body = str(shared(int(params["id"]))).encode()
    elif name == "user":
        body = ("hello " + params["name"] + req.query.get("x", "")).encode()
    else:
        body = b"index" + message["body"]
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200 if name else 404,
                "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
def wsgi_app(environ, start_response):
    name, params = dispatch(environ["PATH_INFO"])
    agent = environ.get("HTTP_USER_AGENT", "")
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Agent", agent)])
    return [(name or "none").encode(), str(params).encode()]
def run_asgi(n):
    out = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        out.append(message)
    for i in range(n):
        path = ("/items/%d" % i, "/users/ann", "/")[i % 3]
        scope = {"type": "http", "path": path, "query_string": "x=1&y=2",
                 "headers": [(b"host", b"localhost"), (b"user-agent", b"wrk")]}
        coro = app(scope, receive, send)
        try:
            coro.send(None)
        except StopIteration:
            pass
    return out
def run_wsgi(n):
    for i in range(n):
        environ = {"PATH_INFO": "/users/bob", "QUERY_STRING": "a=1", "HTTP_USER_AGENT": "wrk",
                   "REQUEST_METHOD": "GET", "wsgi.url_scheme": "http"}
        b"".join(wsgi_app(environ, lambda status, headers: None))
"""


def workloads(rounds):
    for name, stmt in microbench.BENCHMARKS.items():
        timeit.Timer(stmt, setup=microbench.SETUP).timeit(number=rounds.get(name, 20))
    timeit.Timer("handle(HEAD)", setup=HANDLER_SETUP).timeit(number=60_000)
    timeit.Timer("run_asgi(300); run_wsgi(300)", setup=FRAMEWORK_SETUP).timeit(number=40)


async def echo_round_trips(n):
    async def handler(reader, writer):
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in range(n):
        writer.write(json.dumps({"i": i}).encode())
        await reader.read(1024)
    writer.close()
    server.close()
    await server.wait_closed()


def main():
    rounds = {"loop": 15, "fib": 200, "objects": 45, "dict_str": 1200, "json": 200,
              "sort": 450, "regex": 1200}
    workloads(rounds)
    threads = [threading.Thread(target=workloads, args=(rounds,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    asyncio.run(echo_round_trips(500))
    return 0


if __name__ == "__main__":
    sys.exit(main())
