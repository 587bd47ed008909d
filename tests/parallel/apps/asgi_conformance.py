"""A plain ASGI 3 application (no framework) for tests/parallel/test_pp_asgi.py: each
route exercises one part of the ASGI http and lifespan specs, or one way to fail."""
import asyncio
import json
import threading

EVENTS = []  # what the lifespan and disconnect routes saw


async def start(send, status=200, headers=((b"content-type", b"text/plain"),)):
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})


async def body(send, data, more=False):
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            EVENTS.append("startup")
            if "state" in scope:
                scope["state"]["pool"] = "made at startup"
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            print("asgi app: lifespan shutdown", flush=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(scope, receive, send)
    assert scope["type"] == "http"
    path = scope["path"]
    if path.startswith("/scope"):
        view = {k: v for k, v in scope.items() if k not in ("headers", "state")}
        view["state"] = dict(scope.get("state", {}))
        view["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
        for k in ("raw_path", "query_string"):
            view[k] = scope[k].decode("latin-1")
        view["client"] = list(scope["client"])
        view["server"] = list(scope["server"])
        await start(send, headers=[(b"content-type", b"application/json")])
        return await body(send, json.dumps(view).encode())
    if path == "/echo":
        message = await receive()
        data = message["body"]
        while message.get("more_body"):
            message = await receive()
            data += message["body"]
        await start(send)
        return await body(send, json.dumps({"length": len(data), "tail": data[-8:].decode(
            "latin-1"), "type": message["type"]}).encode())
    if path == "/stream":  # no Content-Length: chunked, sent as it is produced
        await start(send)
        for i in range(4):
            await body(send, f"part {i}\n".encode(), more=True)
            await asyncio.sleep(0.01)
        return await body(send, b"")
    if path == "/length":  # Content-Length given, body in two pieces
        await start(send, headers=[(b"content-length", b"10")])
        await body(send, b"01234", more=True)
        return await body(send, b"56789")
    if path == "/sleep":
        before = threading.get_ident()
        await asyncio.sleep(0.05)
        await start(send)
        return await body(send, json.dumps([before == threading.get_ident(),
                                            threading.current_thread().name]).encode())
    if path == "/slow":  # long enough to stop the server in the middle
        await asyncio.sleep(0.6)
        await start(send)
        return await body(send, b"slow done")
    if path == "/slow_thread":  # the result comes back from another thread
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, lambda: (__import__("time").sleep(0.6),
                                                           b"thread done")[1])
        await start(send)
        return await body(send, result)
    if path == "/disconnect":  # waits for the client to go away
        await receive()
        message = await receive()
        EVENTS.append(message["type"])
        return
    if path == "/events":
        await start(send)
        return await body(send, json.dumps(EVENTS).encode())
    if path == "/after_response":  # receive() after the response: http.disconnect
        await start(send)
        await body(send, b"done")
        await receive()
        EVENTS.append("after:" + (await receive())["type"])
        return
    if path == "/raise":
        raise ValueError("raised before the response started")
    if path == "/raise_after_start":
        await start(send)
        raise ValueError("raised after http.response.start")
    if path == "/raise_after_body":
        await start(send)
        await body(send, b"partial", more=True)
        raise ValueError("raised in the middle of the body")
    if path == "/no_response":
        return
    if path == "/bad_header":
        await start(send, headers=[(b"x-evil", b"a\r\ninjected: yes")])
        return await body(send, b"never")
    if path == "/status":
        await start(send, 418, [(b"x-custom", b"yes"), (b"set-cookie", b"a=1"),
                                (b"set-cookie", b"b=2")])
        return await body(send, b"teapot")
    await start(send, 404)
    await body(send, b"not found")
