#!/usr/bin/env python3
"""The fastest single-process Python HTTP server on this machine: a raw asyncio Protocol
on uvloop, parsing each request with httptools.HttpRequestParser the way uvicorn's core
(uvicorn/protocols/http/httptools_impl.py) does: on_url/on_header/on_message_complete
callbacks, keep-alive from the parser, a cached Date header. The responses of one
``data_received`` go out in one ``transport.write`` (so pipelined requests are answered
in one send, as pyparallel and nginx do).

    /usr/bin/python3 bench/servers/uvloop_httptools.py [--host 127.0.0.1] [--port 8080]

Routes: /plaintext -> "Hello, World!" (text/plain), /json -> {"message": ...}; with
--cpu-iterations N, /cpu -> the same pure-Python loop as bench/servers/pp_cpu.py (N
iterations); else 404. The listener has SO_REUSEPORT, so several processes can share a port
(python_servers.py runs two as the anchor for pyparallel's two workers).
Debian packages: python3-uvloop, python3-httptools.
"""
import argparse
import asyncio
import json
import signal
from email.utils import formatdate

import httptools
import uvloop
from cpu_work import work  # the same loop as bench/servers/pp_cpu.py

PLAINTEXT = b"Hello, World!"
date_header = b""
CPU_ITERATIONS = 0


def refresh_date(loop: asyncio.AbstractEventLoop) -> None:
    global date_header
    date_header = b"Date: " + formatdate(usegmt=True).encode() + b"\r\n"
    loop.call_later(1, refresh_date, loop)


def response(status: bytes, ctype: bytes, body: bytes, keep_alive: bool) -> bytes:
    return b"".join((b"HTTP/1.1 ", status, b"\r\nServer: uvloop\r\n", date_header,
                     b"Content-Type: ", ctype, b"\r\nContent-Length: ", b"%d" % len(body),
                     b"\r\n" if keep_alive else b"\r\nConnection: close\r\n",
                     b"\r\n", body))


class HttpProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.out: list[bytes] = []
        self.close_after = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.out.append(response(b"400 Bad Request", b"text/plain", b"bad request", False))
            self.close_after = True
        if self.out:
            self.transport.write(b"".join(self.out))
            self.out.clear()
        if self.close_after:
            self.transport.close()

    # httptools callbacks, as uvicorn uses them.
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_message_complete(self) -> None:
        path = httptools.parse_url(self.url).path
        keep_alive = self.parser.should_keep_alive()
        if path == b"/plaintext":
            out = response(b"200 OK", b"text/plain", PLAINTEXT, keep_alive)
        elif path == b"/cpu" and CPU_ITERATIONS:
            out = response(b"200 OK", b"text/plain", b"%d" % work(CPU_ITERATIONS), keep_alive)
        elif path == b"/json":
            out = response(b"200 OK", b"application/json",
                           json.dumps({"message": "Hello, World!"}).encode(), keep_alive)
        else:
            out = response(b"404 Not Found", b"text/plain", b"not found", keep_alive)
        self.out.append(out)
        if not keep_alive:
            self.close_after = True


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    refresh_date(loop)
    server = await loop.create_server(HttpProtocol, host, port, backlog=4096, reuse_port=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--cpu-iterations", type=int, default=0,
                    help="serve /cpu with this many loop iterations per request")
    args = ap.parse_args()
    global CPU_ITERATIONS
    CPU_ITERATIONS = args.cpu_iterations
    uvloop.install()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
