"""Serve a WSGI or ASGI application on every core: ``pyparallel -m parallel.serve``.

    pyparallel -m parallel.serve module:app [--host H] [--port P] [--workers N]
        [--interface auto|wsgi|asgi] [--lifespan auto|on|off] [--app-dir DIR]
        [--backend B] [--numa-policy P] [--header-timeout S] [--max-body N] ...

``module:app`` names the application (``pkg.mod:obj.attr`` works). The interface is
detected when omitted: an object whose ``__call__`` is a coroutine function is ASGI,
anything else callable is WSGI. The workers are threads of this one process, so the
application and its data are loaded once and shared by all of them. The runtime's
backend, NUMA and connection-limit flags are the host's (``pyparallel --help``).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

import parallel

__all__ = ["main", "load_app"]


def load_app(spec: str):
    """Imports ``module:attr`` (attr may be dotted) and returns the object."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(f"parallel.serve: error: the app must be given as module:attribute, "
                         f"not {spec!r}")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise SystemExit(f"parallel.serve: error: cannot import module {module_name!r}: "
                             f"{exc}") from None
        raise
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SystemExit(f"parallel.serve: error: module {module_name!r} has no "
                             f"attribute {attr!r}") from None
    return obj


def _parser(limits: dict) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pyparallel -m parallel.serve",
        description="Serve a WSGI or ASGI application on the parallel runtime's workers.")
    p.add_argument("app", help="the application, as module:attribute")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker threads (default: the host's --workers, else one per CPU)")
    p.add_argument("--interface", choices=["auto", "wsgi", "asgi"], default="auto",
                   help="the application's interface (auto: detect)")
    p.add_argument("--lifespan", choices=["auto", "on", "off"], default="auto",
                   help="ASGI lifespan: auto runs it if the app supports it")
    p.add_argument("--app-dir", default=".", help="put this folder first on sys.path (.)")
    p.add_argument("--backend", default=None, help="completion backend (io_uring, epoll, ...)")
    p.add_argument("--numa-policy", default=None,
                   help="worker placement: compact, scatter, none, node:K or a CPU list")
    p.add_argument("--backlog", type=int, default=4096, help="listen backlog (4096)")
    for keyword in limits:
        p.add_argument("--" + keyword.replace("_", "-"), dest=keyword, default=None,
                       help=f"as the host's flag of that name (now {limits[keyword]})")
    return p


def main(argv: list[str] | None = None) -> int:
    limits = parallel._options().get("limits", {})
    args = _parser(limits).parse_args(argv)
    sys.path.insert(0, os.path.abspath(args.app_dir))
    app = load_app(args.app)
    if not callable(app):
        raise SystemExit(f"parallel.serve: error: {args.app} is not callable")
    interface = args.interface
    if interface == "auto":
        from parallel._asgi import is_asgi
        interface = "asgi" if is_asgi(app) else "wsgi"
    protocol = parallel.asgi(app) if interface == "asgi" else parallel.wsgi(app)
    server = parallel.server(args.host, args.port, args.backlog)
    parallel.register(transport=server, protocol=protocol)
    chosen = {k: getattr(args, k) for k in limits if getattr(args, k) is not None}
    print(f"parallel.serve: {args.app} ({interface}) on http://{args.host}:{args.port}",
          file=sys.stderr, flush=True)
    started = False
    if interface == "asgi" and args.lifespan != "off":
        started = protocol.startup(required=args.lifespan == "on")
    try:
        parallel.run(workers=args.workers, backend=args.backend, numa_policy=args.numa_policy,
                     **chosen)
    finally:
        if started:
            protocol.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
