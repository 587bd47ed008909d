"""A Starlette application for the ASGI end-to-end tests and the benchmark (Debian's
python3-starlette; the test puts /usr/lib/python3/dist-packages on the path)."""
import asyncio
import os
import threading

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

TABLE = {i: i * 7 for i in range(int(os.environ.get("PP_TABLE_SIZE", "1000000")))}
STARTED = []


async def hello(request):
    return PlainTextResponse("Hello, World!")


async def shared(request):
    start = int(request.query_params.get("start", "0"))
    total = 0
    get = TABLE.get
    for i in range(start, start + 4000):
        total += get(i % len(TABLE), 0)
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
