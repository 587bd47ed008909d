"""parallel.wsgi(app): a WSGI (PEP 3333) application on the runtime's workers.

Each request is parsed by the engine (HTTP/1.1, pipelining, chunked bodies decoded) and
handed to ``app(environ, start_response)`` on the worker that owns the connection; the
workers call the app in parallel (``wsgi.multithread`` is True). ``wsgi.input`` is a
file over the whole decoded body, read before the app is called (bounded by
``--max-body``). ``wsgi.file_wrapper`` over a real file is sent with sendfile.

The response is framed here: the app's Content-Length when it gives one, else the exact
length of a list result, else chunked (HTTP/1.1) or close-delimited (HTTP/1.0); the app's
hop-by-hop headers (Transfer-Encoding, Connection, ...) are dropped (docs/decisions.md).
A streamed result (a generator) is sent block by block: each block is handed to the
kernel before the next is asked for (the next one comes in a later engine turn of the
same worker), and once more than a low-water mark waits to be sent, the next block is
asked for only when it has gone -- a client that reads slowly or not at all holds back
the app, not the server's memory. Later pipelined requests on that connection wait until
the response ends. Once the response is complete (HEAD, 204, 304, the app's
Content-Length reached) or the client is gone, the result is not iterated any further:
its close() is called.

An exception from the app, from start_response or from the result is logged; before
the head went out the client gets a 500, after it the connection is closed (it cannot
tell a cut body from a whole one otherwise). The server keeps serving.
"""
from __future__ import annotations

import io
import os
import stat
import sys

import parallel

from parallel._errors import log_app_error
from parallel._proxy import request_adjuster

__all__ = ["adapter", "FileWrapper", "WSGIGateway"]

_END = object()  # next()'s default: the result is used up
_EMPTY_BLOCKS_PER_TURN = 64  # empty blocks taken in one turn before the loop gets its turn


class FileWrapper:
    """``wsgi.file_wrapper``: returned by an app, a regular file is sent with sendfile
    (page cache to socket); anything else is read in blocks."""

    def __init__(self, filelike, block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        read = self.filelike.read
        while True:
            block = read(self.block_size)
            if not block:
                return
            yield block


class WSGIGateway:
    """Base of the protocol classes ``parallel.wsgi(app)`` makes (``app`` is the
    application); register it with a server as any protocol class."""

    app = None


def _file_range(result):
    """(fd, offset, count) of a FileWrapper over a regular file, else None."""
    f = result.filelike
    try:
        fd = f.fileno()
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        pos = f.tell() if hasattr(f, "tell") else 0
    except (AttributeError, OSError, io.UnsupportedOperation, ValueError):
        return None
    return fd, pos, max(0, st.st_size - pos)


def adapter(app, *, root_path: str = "", proxy_headers: bool = False,
            forwarded_allow_ips: str = "127.0.0.1") -> type:
    """The protocol class serving ``app``: ``register(server, parallel.wsgi(app))``.
    ``root_path`` is SCRIPT_NAME; with ``proxy_headers``, a peer in
    ``forwarded_allow_ips`` sets REMOTE_ADDR, wsgi.url_scheme and HTTP_HOST (_proxy.py)."""
    if not callable(app):
        raise TypeError(f"parallel.wsgi(app): app must be callable, not {type(app).__name__}")
    adjust = request_adjuster("environ", root_path, proxy_headers, forwarded_allow_ips)
    base = {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
        "wsgi.input_terminated": True,
        "SCRIPT_NAME": "",
    }
    name = getattr(app, "__qualname__", None) or type(app).__qualname__
    bytes_io = io.BytesIO

    def handle(ex) -> None:
        environ = ex.environ(base)
        if adjust is not None:
            adjust(environ)
        environ["wsgi.input"] = bytes_io(ex.body)
        status = headers = None

        def start_response(new_status, new_headers, exc_info=None):
            nonlocal status, headers
            if exc_info is not None:
                try:
                    if ex.started:  # too late to change the head: let the app's error out
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif status is not None:
                raise AssertionError("start_response called a second time without exc_info")
            if type(new_status) is not str:
                raise TypeError(f"status must be a str, not {type(new_status).__name__}")
            if type(new_headers) is not list:
                raise TypeError(f"headers must be a list, not {type(new_headers).__name__}")
            status, headers = new_status, new_headers
            return write

        def write(data):
            if status is None:
                raise AssertionError("write() before start_response()")
            if not ex.started:
                ex.start(status, headers)
            ex.write(data)

        def close_result(result) -> None:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:
                    log_app_error(f"WSGI app {name}: the result's close() raised", exc)

        def failed(exc: Exception) -> None:
            log_app_error(f"WSGI app {name} raised "
                          f"({'connection closed' if ex.started else 'answered 500'})", exc)
            ex.fail()

        def stream(it, result) -> None:
            # Sends the next non-empty block, then returns to the event loop: the rest
            # comes in a later engine turn (a zero timer on this worker), so the block is
            # on its way before the app computes the next one, as PEP 3333 asks -- or,
            # when the client is behind, once the queued output has gone (when_writable).
            # Never more than a few blocks per turn: an app yielding only empty blocks
            # must not hold the worker either.
            try:
                for _ in range(_EMPTY_BLOCKS_PER_TURN):
                    if ex.closed:
                        break  # the client is gone (or the response ended): ask no more
                    block = next(it, _END)
                    if block is _END:
                        if status is None:
                            raise RuntimeError("the application returned without calling "
                                               "start_response")
                        if ex.started:
                            ex.finish()
                        else:
                            ex.respond(status, headers, b"")
                        break
                    if not ex.started:
                        if status is None:
                            if block:
                                raise RuntimeError("the application yielded before "
                                                   "start_response")
                            continue
                        if not (block or ex.is_head):
                            continue  # the head waits for the first non-empty block
                        ex.start(status, headers)
                    if block and not ex.write(block):
                        break  # the client is gone
                    if ex.complete:
                        ex.finish()  # HEAD, 204, 304, or all of the Content-Length: done
                        break
                    if block:
                        if not ex.when_writable(resume):
                            parallel._gateway_timer(0.0, resume)
                        return
                else:
                    parallel._gateway_timer(0.0, resume)
                    return
            except Exception as exc:
                failed(exc)
            close_result(result)

        result = None
        try:
            result = app(environ, start_response)
            kind = type(result)
            if kind is list or kind is tuple:
                if status is None:
                    raise RuntimeError("the application returned without calling start_response")
                if ex.started:
                    for block in result:
                        ex.write(block)
                    ex.finish()
                else:
                    ex.respond(status, headers, result[0] if len(result) == 1
                               else b"".join(result))
            elif kind is FileWrapper and status is not None and not ex.started and \
                    (found := _file_range(result)) is not None:
                fd, offset, count = found
                ex.start(status, headers, count)
                ex.sendfile(os.dup(fd), offset, count)
                ex.finish()
            else:
                it = iter(result)

                def resume() -> None:
                    stream(it, result)

                stream(it, result)  # closes the result when done
                return
        except Exception as exc:
            failed(exc)
        close_result(result)

    return type(f"WSGI[{name}]", (WSGIGateway,),
                {"app": app, "_parallel_gateway": staticmethod(handle), "__module__": __name__})
