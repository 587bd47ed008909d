#!/usr/bin/env python3
"""aiohttp's web server answering the TechEmpower plaintext and json routes.

    /usr/bin/python3 bench/servers/aiohttp_server.py [--host 127.0.0.1] [--port 8080] [--uvloop]

No access log (as in any benchmark of it). The default asyncio loop unless --uvloop.
Debian package: python3-aiohttp (its C HTTP parser included).
"""
import argparse
import asyncio

from aiohttp import web


async def plaintext(request: web.Request) -> web.Response:
    return web.Response(body=b"Hello, World!", content_type="text/plain")


async def json_route(request: web.Request) -> web.Response:
    return web.json_response({"message": "Hello, World!"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--uvloop", action="store_true")
    args = ap.parse_args()
    if args.uvloop:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = web.Application()
    app.router.add_get("/plaintext", plaintext)
    app.router.add_get("/json", json_route)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None,
                backlog=4096, reuse_port=True)


if __name__ == "__main__":
    main()
