"""A Starlette application for the ASGI end-to-end tests and the benchmark (Debian's
python3-starlette; the test puts /usr/lib/python3/dist-packages on the path)."""
import asyncio
import os
import threading

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

# About 1 ms of Python on Debian's python3.11 (20,000 lookups measured 1.0 ms there).
LOOKUPS = 20000
TABLE = {i: i * 7 for i in range(int(os.environ.get("PP_TABLE_SIZE", "1000000")))}
STARTED = []


async def hello(request):
    return PlainTextResponse("Hello, World!")


async def shared(request):
    start = int(request.query_params.get("start", "0"))
    total = 0
    # A local name for the table, and subscripts rather than TABLE.get: see
    # bench/README.md (shared objects on a free-threaded interpreter).
    table = TABLE
    size = len(table)
    for i in range(start, start + LOOKUPS):
        total += table[i % size]
    return PlainTextResponse(str(total))


async def echo(request):
    data = await request.body()
    return JSONResponse({"length": len(data), "head": data[:16].decode("latin-1")})


async def sleepy(request):
    before = threading.get_ident()
    await asyncio.sleep(float(request.query_params.get("s", "0.05")))
    return JSONResponse({"same_thread": before == threading.get_ident()})


def sync_view(request):
    # Starlette runs a plain function in anyio's thread pool and awaits the result.
    return PlainTextResponse("from a thread")


async def stream(request):
    async def gen():
        for i in range(5):
            yield f"chunk {i}\n"
            await asyncio.sleep(0.005)
    return StreamingResponse(gen(), media_type="text/plain")


async def lifespan_state(request):
    return JSONResponse({"started": STARTED})


async def boom(request):
    raise ValueError("starlette view failed on purpose")


async def on_startup():
    STARTED.append("startup")
    print("starlette app: startup ran", flush=True)


async def on_shutdown():
    print("starlette app: shutdown ran", flush=True)


app = Starlette(routes=[
    Route("/", hello),
    Route("/shared", shared),
    Route("/echo", echo, methods=["POST"]),
    Route("/sleep", sleepy),
    Route("/sync", sync_view),
    Route("/stream", stream),
    Route("/lifespan", lifespan_state),
    Route("/boom", boom),
], on_startup=[on_startup], on_shutdown=[on_shutdown])
