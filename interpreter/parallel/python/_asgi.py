"""parallel.asgi(app): an ASGI 3.0 application on the runtime's workers.

Each request's coroutine ``app(scope, receive, send)`` runs as an asyncio task on the
worker that owns its connection, in that worker's event loop (parallel._loop), so
``await`` works and stays on that core. The engine parses the request (chunked bodies
decoded); ``receive()`` returns the whole body as one ``http.request`` message, then
waits for ``http.disconnect`` (the client went away, or the response is complete).
``send()`` takes ``http.response.start`` and ``http.response.body`` messages; a body
with ``more_body`` streams (chunked when the app gave no Content-Length; the app's
hop-by-hop headers are dropped, docs/decisions.md). ``send()`` of a body waits while
more than a low-water mark of output is queued for a client that reads slowly, so a
client that reads nothing holds back the app, not the server's memory. Later pipelined
requests on that connection wait until the response is complete.

Errors: an exception before ``http.response.start`` went out is a 500, after it the
connection is closed; both are logged and the server goes on. A body sent after the
client went away raises ``ClientDisconnected`` (an OSError, as the ASGI spec asks), so
an endless stream stops; the app also learns of it from ``receive()``.

Lifespan: ``startup()`` and ``shutdown()`` on the protocol class (``with
cls.lifespan(): parallel.run()``, which ``-m parallel.serve`` does) run the app's
lifespan coroutine on the calling thread, before the workers start and after they stop.
"""
from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys

from parallel._errors import log_app_error
from parallel._loop import this_thread_loop
from parallel._proxy import request_adjuster

__all__ = ["adapter", "ASGIGateway", "ClientDisconnected", "LifespanError"]

_ASGI = {"version": "3.0", "spec_version": "2.3"}


_SENDS_PER_YIELD = 64  # body sends in a row that do not wait before one yields the loop


class ClientDisconnected(OSError):
    """``send()`` of a response body after the client went away."""


class LifespanError(RuntimeError):
    """The application's lifespan startup or shutdown failed."""


class _Cycle:
    """One request-response cycle: the receive and send callables of one request."""

    __slots__ = ("ex", "loop", "body", "status", "headers", "done", "waiter", "name", "gone",
                 "room", "ended", "unyielding")

    def __init__(self, ex, loop, name: str) -> None:
        self.ex = ex
        self.loop = loop
        self.body = ex.body
        self.status = None
        self.headers = None
        self.done = False
        self.waiter = None
        self.name = name
        self.gone = False  # the client went away before the response was complete
        self.room = None  # the future send() awaits while the client is behind
        self.ended = False  # complete by its framing while the app said more_body
        self.unyielding = 0  # sends in a row that returned without suspending
        ex.on_disconnect = self.disconnected
        loop.requests += 1

    async def receive(self) -> dict:
        body = self.body
        if body is not None:
            self.body = None
            return {"type": "http.request", "body": body, "more_body": False}
        ex = self.ex
        if not (self.done or ex is None or ex.closed):
            waiter = self.waiter = self.loop.create_future()
            await waiter
        return {"type": "http.disconnect"}

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def disconnected(self) -> None:
        """The connection went away before the response was complete (engine callback)."""
        self.gone = True
        self._wake()
        self._writable()

    def _writable(self) -> None:
        """The queued output has gone to the kernel, or the client went (engine callback)."""
        room = self.room
        if room is not None and not room.done():
            room.set_result(None)
        self.loop.drive()

    async def send(self, message) -> None:
        kind = message["type"]
        ex = self.ex
        if kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("ASGI: http.response.start sent twice")
            status = message["status"]
            if not isinstance(status, int) or isinstance(status, bool):  # HTTPStatus is fine
                raise TypeError(f"ASGI: the status must be an int, not {type(status).__name__}")
            self.status = status
            self.headers = message.get("headers", ())
        elif kind == "http.response.body":
            if self.status is None:
                raise RuntimeError("ASGI: http.response.body before http.response.start")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if self.ended:
                if not more:
                    return  # the app's last message, after its framing ended the response
                raise ClientDisconnected("ASGI: the response is complete (HEAD, 204, 304 or "
                                         "its Content-Length reached)")
            if self.done:
                raise RuntimeError("ASGI: http.response.body after the response was complete")
            if self.gone or ex.closed:
                raise ClientDisconnected("ASGI: the client went away")
            if not ex.started:
                if not more:
                    self.done = True
                    ex.respond(self.status, self.headers, body)
                    self._wake()
                    return
                ex.start(self.status, self.headers)
            if body:
                ex.write(body)
            if not more:
                self.done = True
                ex.finish()
                self._wake()
            elif ex.complete:
                # Nothing more can be sent (HEAD, 204, 304, all of the Content-Length): the
                # response ends now, and the app's next body with more_body raises, so an
                # endless stream stops instead of spinning on sends that never wait.
                self.done = self.ended = True
                ex.finish()
                self._wake()
            elif ex.when_writable(self._writable):
                # The client is behind: the next body waits until this one has gone.
                self.unyielding = 0
                room = self.room = self.loop.create_future()
                try:
                    await room
                finally:
                    self.room = None
            else:
                # An app whose sends never wait (empty bodies in a loop) must still let
                # the worker serve its other connections now and then.
                self.unyielding += 1
                if self.unyielding >= _SENDS_PER_YIELD:
                    self.unyielding = 0
                    await asyncio.sleep(0)
        else:
            raise RuntimeError(f"ASGI: unexpected message type {kind!r}")

    async def run(self, app, scope) -> None:
        try:
            await app(scope, self.receive, self.send)
            if not self.done:
                raise RuntimeError("the application returned before its response was complete")
        except Exception as exc:
            # An app failing because its client left, or because its framing ended the
            # response (ClientDisconnected from send), is not news.
            if not (self.gone or (self.ended and isinstance(exc, ClientDisconnected))):
                ex = self.ex
                outcome = ("after its response was complete" if ex.finished else
                           "connection closed" if ex.started else "answered 500")
                log_app_error(f"ASGI app {self.name} raised ({outcome})", exc)
            self.done = True
            self.ex.fail()
        finally:
            self.ex.on_disconnect = None
            self.ex = None
            self.loop.requests -= 1


class ASGIGateway:
    """Base of the protocol classes ``parallel.asgi(app)`` makes (``app`` is the
    application); register it with a server as any protocol class."""

    app = None
    _lifespan = None
    _state: dict = {}  # the lifespan scope's "state", copied into each request's scope

    @classmethod
    def startup(cls, required: bool = False) -> bool:
        """Runs the app's lifespan startup on this thread. False when the app does not
        speak the lifespan protocol (an error when ``required``); raises LifespanError
        when startup fails."""
        cls._lifespan = _Lifespan(cls.app, cls._state)
        ok = cls._lifespan.startup(required)
        if not ok:
            cls._lifespan = None
        return ok

    @classmethod
    def shutdown(cls) -> None:
        """Runs the app's lifespan shutdown (after a successful startup)."""
        life, cls._lifespan = cls._lifespan, None
        if life is not None:
            life.shutdown()

    @classmethod
    @contextlib.contextmanager
    def lifespan(cls, required: bool = False):
        """``with cls.lifespan(): parallel.run()``: startup before, shutdown after."""
        cls.startup(required)
        try:
            yield cls
        finally:
            cls.shutdown()


class _Lifespan:
    """The app's one lifespan coroutine, on a private event loop of the calling thread."""

    def __init__(self, app, state: dict) -> None:
        self.app = app
        self.state = state
        self.loop = asyncio.new_event_loop()
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.task = None
        self.unsupported = False

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": dict(_ASGI), "state": self.state}
        try:
            await self.app(scope, self.inbox.get, self.outbox.put)
        except Exception as exc:
            self.unsupported = True
            await self.outbox.put({"type": "lifespan.unsupported", "exc": exc})

    def _exchange(self, message: dict, expect: str) -> dict:
        async def step():
            await self.inbox.put(message)
            getter = asyncio.ensure_future(self.outbox.get())
            await asyncio.wait({getter, self.task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                return getter.result()
            getter.cancel()  # the app returned without answering: no lifespan support
            return {"type": "lifespan.unsupported", "exc": None}
        return self.loop.run_until_complete(step())

    def startup(self, required: bool) -> bool:
        self.task = self.loop.create_task(self._main())
        reply = self._exchange({"type": "lifespan.startup"}, "startup")
        kind = reply["type"]
        if kind == "lifespan.startup.complete":
            return True
        if kind == "lifespan.unsupported":
            self.loop.close()
            if required:
                raise LifespanError("the application does not support lifespan") from reply["exc"]
            print("pyparallel: ASGI lifespan not supported by the application; going on "
                  "without it", file=sys.stderr, flush=True)
            return False
        self.loop.close()
        raise LifespanError(f"lifespan startup failed: {reply.get('message', '')}")

    def shutdown(self) -> None:
        try:
            reply = self._exchange({"type": "lifespan.shutdown"}, "shutdown")
            if reply["type"] != "lifespan.shutdown.complete":
                print(f"pyparallel: ASGI lifespan shutdown failed: {reply.get('message', '')}",
                      file=sys.stderr, flush=True)
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                self.loop.run_until_complete(asyncio.wait_for(self.task, 5))
        finally:
            self.loop.close()


def is_asgi(app) -> bool:
    """True when ``app`` looks like an ASGI 3 application (a coroutine function, or an
    object whose __call__ is one)."""
    if inspect.iscoroutinefunction(app):
        return True
    call = getattr(app, "__call__", None)
    return call is not None and inspect.iscoroutinefunction(call)


def adapter(app, *, root_path: str = "", proxy_headers: bool = False,
            forwarded_allow_ips: str = "127.0.0.1") -> type:
    """The protocol class serving ``app``: ``register(server, parallel.asgi(app))``.
    ``root_path`` is the scope's root_path; with ``proxy_headers``, a peer in
    ``forwarded_allow_ips`` sets client, scheme and the host header (_proxy.py)."""
    if not callable(app):
        raise TypeError(f"parallel.asgi(app): app must be callable, not {type(app).__name__}")
    adjust = request_adjuster("scope", root_path, proxy_headers, forwarded_allow_ips)
    base = {"type": "http", "scheme": "http", "root_path": ""}
    name = getattr(app, "__qualname__", None) or type(app).__qualname__
    state: dict = {}

    def handle(ex) -> None:
        loop = this_thread_loop()
        scope = ex.scope(base)
        if adjust is not None:
            adjust(scope)
        scope["asgi"] = {"version": "3.0", "spec_version": "2.3"}  # the app's own to change
        if state:  # what lifespan startup stored: a shallow copy per request (ASGI 2.3)
            scope["state"] = state.copy()
        cycle = _Cycle(ex, loop, name)
        loop.create_task(cycle.run(app, scope))
        loop.drive()

    return type(f"ASGI[{name}]", (ASGIGateway,),
                {"app": app, "_parallel_gateway": staticmethod(handle), "_state": state,
                 "__module__": __name__})
