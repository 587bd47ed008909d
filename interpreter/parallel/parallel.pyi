"""Type stubs for `parallel`: PyParallel's protocol model on pyparallel's engine.

Protocol classes are plain classes; the runtime looks up these optional members:

    connection_made(self, transport) -> Sendable | None
        (the seed's form ``connection_made(self, transport, data)`` works too; data is b"")
    data_received(self, transport, data: bytes) -> Sendable | None
    send_complete(self, transport, send_id: int) -> Sendable | None
    connection_lost(self, transport, exc: BaseException | None) -> None
    exception_handler(self, transport, exc: BaseException) -> Sendable | None
    initial_bytes_to_send: Sendable | Callable[[], Sendable]
    http11: bool = False
        True: the runtime parses HTTP/1.1 and calls the method named by the first path
        segment, ``GET /random`` -> ``random(self, transport, data)`` (``/`` -> ``index``),
        with ``data`` the request body (bytes). Returns: bytes -> text/plain, str ->
        text/html, dict/list -> JSON, ``Response`` -> as given, ``file(...)`` -> a file with
        Range support, None -> 204.

One protocol instance exists per connection; attributes set on ``self`` persist across
that connection's callbacks. Callbacks run on the engine's worker threads, in parallel on a
free-threaded interpreter; they may read module globals loaded before ``run()`` freely.
"""

from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Union

Sendable = Union[bytes, bytearray, memoryview, str]

__version__: str

class ParallelError(Exception):
    """Base of every exception this module raises."""

class TransportClosedError(ParallelError):
    """The connection behind a transport is gone."""

class Server:
    """A listening endpoint made by ``server()``; listens once ``run()`` starts."""

    host: str
    port: int  # the bound port (the real one once running, when 0 was asked for)

class Client:
    """An outgoing connection made by ``client()``; connects once ``run()`` starts."""

    host: str
    port: int

class Transport:
    """One connection, as protocol callbacks see it.

    A connection belongs to one worker, the thread its callbacks run on. Its transport
    may be kept and used from any thread (a ``threading`` thread pushing data, another
    connection's callback, ``submit_work``): ``sendfile``, ``ranged_sendfile`` and
    ``close`` called off that worker check their arguments and raise at once (bad file,
    bad range, TransportClosedError), then return while the worker carries them out, in
    the order they were made. If the connection closes before the worker gets to one,
    it is dropped, as bytes already queued are when a connection fails. ``closed`` may be
    read anywhere; ``peer`` and the ``http_*`` attributes only on the worker (elsewhere
    ``peer`` raises ParallelError: read it in ``connection_made`` and keep it).
    """

    http_headers: dict[str, str]  # http11 only: lower-case names
    http_method: str
    http_path: str
    http_query: str
    http_version: str
    peer: tuple[str, int]  # the remote (host, port); the connection's worker only
    closed: bool  # True once the connection is gone (methods then raise TransportClosedError)
    def sendfile(self, before: Sendable | None, path: str, after: Sendable | None) -> None:
        """Queue ``before``, the whole file at ``path`` (page cache -> socket, never
        through Python) and ``after``. Raises FileNotFoundError / ParallelError;
        TransportClosedError once the connection is gone (or, off the worker, once the
        runtime is stopping)."""
    def ranged_sendfile(
        self, before: Sendable | None, path: str, after: Sendable | None, offset: int, nbytes: int
    ) -> None:
        """Like ``sendfile`` for ``nbytes`` bytes from ``offset``; ValueError when the range
        is past the end of the file."""
    sendfile_ranged = ranged_sendfile
    def close(self) -> None:
        """Close after what is queued has been sent. Any thread; a no-op once closed."""

class Response:
    """An explicit HTTP response for http11 protocols."""

    def __init__(
        self,
        body: Sendable | dict[str, Any] | list[Any] | None = b"",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> None: ...

class FileResponse:
    """A file served with Range support (206/416), made by ``file()``."""

def file(path: str, content_type: str | None = None) -> FileResponse:
    """Return this from an http11 handler to send the file at ``path`` (Range honoured)."""

def server(host: str, port: int, backlog: int = 4096) -> Server: ...
def client(host: str, port: int) -> Client: ...
def register(transport: Server | Client, protocol: type) -> None:
    """Serve (or connect) ``transport`` with one ``protocol`` instance per connection. Any
    thread, before ``run()``: ParallelError once a ``run()`` has begun, until it returns."""
def run(workers: int | str | None = None, backend: str | None = None,
        numa_policy: str | None = None, metrics_port: int | str | None = None,
        share_main_data: bool | None = None, log_level: str | None = None,
        access_log: bool | None = None, access_log_file: str | None = None, *,
        header_timeout: float | str | None = None,
        keepalive_timeout: float | str | None = None, body_timeout: float | str | None = None,
        send_timeout: float | str | None = None, max_body: int | str | None = None,
        max_header_bytes: int | str | None = None,
        max_connections: int | str | None = None,
        drain_timeout: float | str | None = None) -> None:
    """Serve until ``stop()``, SIGINT or SIGTERM. ``workers=0`` runs every callback on the
    calling thread (pdb and plain unit tests work). None: the host's options.

    Every keyword is the option of that name in ``pyparallel --help`` (and
    ``_option_table()``): a number or its text is read by the flag's own parser, with the
    flag's checks and wording (ValueError: ``workers expects a whole number ...``);
    ``share_main_data`` takes True or False. ``log_level`` (trace, debug, info, warning,
    error, critical) holds for this run; the process's level comes back when it returns.
    ``access_log`` (True or False) writes one line per HTTP response, to stderr or to
    ``access_log_file`` (reopened on SIGHUP), in batches per worker.

    The limits override ``--header-timeout`` & co. (and their PYPARALLEL_* variables) for
    this run: timeouts in seconds (0 disables one; defaults 60, 75, 60, 60 as nginx's),
    ``max_body``/``max_header_bytes`` in bytes (``"4m"`` works too), ``max_connections``
    per worker (0: no limit).

    A stop drains: requests under way are answered (with ``Connection: close``), idle
    keep-alive connections close, within ``drain_timeout`` seconds (default 5); those
    still open then are aborted (their ``connection_lost`` gets the error). Listening
    sockets come from systemd (LISTEN_FDS, matched by address) or from an instance already
    serving the address (a zero-downtime restart) before being bound anew.
    ``metrics_port``: serve Prometheus metrics at ``/metrics`` on that port of 127.0.0.1,
    or on ``"HOST:PORT"`` (overrides ``--metrics-port``/PYPARALLEL_METRICS_PORT).

    ``share_main_data`` (default on, ``--share-main-data``): what the workers can reach when
    ``run()`` starts (modules and their globals, the locals of the function calling
    ``run()``, the registered protocols: tables built at import, the app and its config)
    becomes immortal, so workers read it without writing its reference counts; it is never
    freed. Objects with a finalizer (``__del__``, open files, sockets), pending timers'
    arguments and what only another thread holds stay mortal. ``run()`` collects garbage
    before it starts serving, and then ``gc.freeze()``-s what is alive, sharing or not."""
def stop() -> None:
    """Ask ``run()`` to drain and return (as SIGTERM does). Callable from any thread."""
def is_parallel_thread() -> bool: ...
def is_running() -> bool:
    """True inside ``run()``."""
def cpu_count() -> int: ...
def _options() -> dict[str, Any]:
    """The options in effect, keyed by ``run()`` keyword (the connection limits in
    ``"limits"``), where workers, backend and numa_policy came from (``"origin"``), whether
    the pyparallel host set them (``"host"``) and ``"free_threaded"``."""
def _option_table() -> tuple[dict[str, Any], ...]:
    """Every option as data, in ``--help`` order: ``keyword``, ``flag``, ``environment``,
    ``type``, ``group`` ("runtime" or "limit"), ``users`` (of "pyparallel", "httpd",
    "run"), ``metavar``, ``help``, ``choices`` (a list, or None), ``default`` (as
    ``--help`` shows it) and ``value`` (in effect now)."""
def _parse_option(keyword: str, text: str, /) -> Any:
    """The value of ``text`` for the option ``keyword``, read as its flag reads it;
    ValueError saying what is expected otherwise, KeyError for an unknown keyword."""
def stats() -> dict[str, Any]:
    """connections, active_connections, requests, bytes_sent, bytes_received (what the
    protocols were given and queued), wire_bytes_sent, wire_bytes_received (on the
    sockets), responses (HTTP status -> count), latency (``bounds`` in seconds, per-bucket
    ``counts``, ``sum``), cpu_seconds, queue_depth, running, and workers (a list of
    per-worker dicts with the same keys): the data ``/metrics`` exposes."""
def submit_work(
    func: Callable[..., Any],
    *args: Any,
    callback: Callable[[Any], None] | None = None,
    errback: Callable[[BaseException], None] | None = None,
) -> None:
    """Run ``func(*args)`` on a worker and pass its result to ``callback`` (or its
    exception to ``errback``). Callable from any thread while ``run()`` serves; work it
    accepted always runs, before ``run()`` returns. Raises ParallelError ("the runtime is
    not running" / "the runtime is stopping") before ``run()``, once ``stop()`` was asked,
    and after ``run()`` returned."""
def call_from_main_thread(func: Callable[..., Any], *args: Any) -> None:
    """Run ``func(*args)`` on the main thread (the thread inside ``run()``): queued from a
    worker or a ``threading`` thread, at once when called there (or on the interpreter's
    main thread while nothing runs). Its exception is logged. Raises ParallelError from
    other threads when ``run()`` is not running."""
def call_from_main_thread_and_wait(func: Callable[..., Any], *args: Any) -> Any:
    """``call_from_main_thread``, then wait: returns func's result or raises its
    exception."""

class Timer:
    def cancel(self) -> None:
        """Stop the timer: it does not fire again, and lets go of ``func`` and ``args``.
        Any thread; a no-op once the timer is over."""

def timer(duetime: float, period: float, func: Callable[..., Any], *args: Any) -> Timer:
    """Call ``func(*args)`` on a worker after ``duetime`` seconds, then every ``period``
    seconds (0: once). Made before ``run()``, it starts when ``run()`` begins. Timers end
    with the run: ``stop()`` cancels them and ``run()`` returns having released their
    ``func`` and ``args``. Raises ParallelError once ``stop()`` was asked, ValueError for a
    duetime or period that is negative, NaN or over 1e9 seconds."""

# ---- WSGI and ASGI applications (parallel.wsgi / parallel.asgi; -m parallel.serve) ----

WSGIApp = Callable[[dict[str, Any], Callable[..., Callable[[bytes], None]]], Iterable[bytes]]
ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]],
                    Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]

class WSGIGateway:
    """A protocol class made by ``wsgi(app)``; register it with a server."""

    app: WSGIApp

class ASGIGateway:
    """A protocol class made by ``asgi(app)``; register it with a server. The lifespan
    methods run the app's lifespan coroutine on the calling thread (the main thread,
    around ``run()``); ``-m parallel.serve`` calls them itself."""

    app: ASGIApp
    @classmethod
    def startup(cls, required: bool = False) -> bool:
        """Lifespan startup; False when the app has no lifespan support (an error when
        ``required``); raises ``parallel._asgi.LifespanError`` when startup fails."""
    @classmethod
    def shutdown(cls) -> None:
        """Lifespan shutdown, after a successful startup."""
    @classmethod
    def lifespan(cls, required: bool = False) -> AbstractContextManager[type[ASGIGateway]]:
        """``with cls.lifespan(): parallel.run()``."""

def wsgi(app: WSGIApp, *, root_path: str = "", proxy_headers: bool = False,
         forwarded_allow_ips: str = "127.0.0.1") -> type[WSGIGateway]:
    """Serve a WSGI (PEP 3333) app: ``register(server, parallel.wsgi(app))``. Use it for
    Flask, Django and other WSGI apps: the workers call ``app`` in parallel
    (``wsgi.multithread`` is True), ``wsgi.input`` holds the whole decoded body,
    ``wsgi.file_wrapper`` over a file is sent with sendfile, a generator's blocks go out
    as they are made. An exception before the
    head went out is a 500, after it the connection closes; both are logged.

    ``root_path`` ("/api") is SCRIPT_NAME, and PATH_INFO loses it when a proxy passed it
    on. With ``proxy_headers``, a peer whose address is in ``forwarded_allow_ips``
    (addresses and CIDRs, comma-separated, or "*") sets REMOTE_ADDR, wsgi.url_scheme and
    HTTP_HOST through Forwarded or X-Forwarded-For/-Proto/-Host; other peers cannot."""

def asgi(app: ASGIApp, *, root_path: str = "", proxy_headers: bool = False,
         forwarded_allow_ips: str = "127.0.0.1") -> type[ASGIGateway]:
    """Serve an ASGI 3.0 app (Starlette, FastAPI): each request's coroutine runs on the
    worker that owns its connection, in that worker's asyncio loop (``await`` works and
    stays on that core). ``receive()`` gives the whole body, then ``http.disconnect``;
    ``send()`` streams (chunked without a Content-Length). Use ``-m parallel.serve`` or
    ``with cls.lifespan(): run()`` for lifespan events. ``root_path``, ``proxy_headers``
    and ``forwarded_allow_ips`` as for ``wsgi()``: the scope's root_path (its path then
    includes it), and client, scheme and the host header from a trusted proxy."""
