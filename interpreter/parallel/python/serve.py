"""Serve a WSGI or ASGI application on every core: ``pyparallel -m parallel.serve``.

    pyparallel -m parallel.serve module:app [--host H] [--port P]
        [--interface auto|wsgi|asgi] [--lifespan auto|on|off] [--app-dir DIR] [--factory]
        [--env-file PATH] [--root-path /api] [--proxy-headers | --no-proxy-headers]
        [--forwarded-allow-ips LIST] [--timeout-graceful-shutdown S] [--log-level L]
        [--workers N] [--backend B] [--numa-policy P] [--header-timeout S] [--max-body N] ...

``module:app`` names the application (``pkg.mod:obj.attr`` works); with ``--factory`` it
names a function that returns it. The interface is detected when omitted: an object whose
``__call__`` is a coroutine function is ASGI, anything else callable is WSGI. The flags a
uvicorn or gunicorn deployment uses keep uvicorn's names and defaults: proxy headers are
believed from 127.0.0.1 unless ``--no-proxy-headers`` (``--forwarded-allow-ips``, or the
FORWARDED_ALLOW_IPS variable, says whom else to believe), ``--root-path`` is where a proxy
mounts the app, ``--env-file`` loads variables before the app is imported, and
``--timeout-graceful-shutdown`` is ``--drain-timeout`` by uvicorn's name. The workers are threads of this one process, so the
application and its data are loaded once and shared by all of them. The runtime's
options (workers, backend, NUMA policy, metrics, connection limits) are the option table's
(``parallel._option_table()``, ``pyparallel --help``): the same flags, checked by the same
parser, passed to ``parallel.run()`` as its keywords.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

import parallel

__all__ = ["main", "load_app", "load_env_file"]


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


def load_env_file(path: str) -> dict[str, str]:
    """Reads a dotenv file (``KEY=value`` lines; ``#`` comments; an optional ``export``;
    single or double quotes around a value, double quotes with \\n and \\" escapes) and
    sets the variables it names that the environment does not already have, as
    python-dotenv does by default. Returns what it set."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise SystemExit(f"parallel.serve: error: --env-file {path}: {exc.strerror}") from None
    loaded = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("export "):
            text = text[len("export "):].lstrip()
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise SystemExit(f"parallel.serve: error: --env-file {path}, line {number}: "
                             f"expected NAME=value, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        else:
            value = value.split(" #", 1)[0].rstrip()  # an unquoted value's trailing comment
        if key not in os.environ:
            os.environ[key] = loaded[key] = value
    return loaded


def _table_rows() -> list[dict]:
    """The option table's rows that run() takes (``parallel._option_table()``): the
    runtime's options and the connection limits, as the host's flags name them."""
    return [row for row in parallel._option_table() if "run" in row["users"]]


def _option_type(keyword: str):
    """The table's parser for one option as an argparse ``type``: a malformed value is
    argparse's usage error, worded as the host's flag would word it."""
    def parse(text: str):
        try:
            return parallel._parse_option(keyword, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = keyword
    return parse


def _option_help(row: dict) -> str:
    """A row's help as ``pyparallel --help`` shows it (argparse %-formats help text)."""
    text = row["help"]
    if row["choices"]:
        text += f" ({', '.join(row['choices'])})"
    text += f"; default {row['default']}; {row['environment']}"
    return text.replace("%", "%%")


def _parser(rows: list[dict]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pyparallel -m parallel.serve",
        description="Serve a WSGI or ASGI application on the parallel runtime's workers.")
    p.add_argument("app", help="the application, as module:attribute")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    p.add_argument("--interface", choices=["auto", "wsgi", "asgi"], default="auto",
                   help="the application's interface (auto: detect)")
    p.add_argument("--lifespan", choices=["auto", "on", "off"], default="auto",
                   help="ASGI lifespan: auto runs it if the app supports it")
    p.add_argument("--app-dir", default=".", help="put this folder first on sys.path (.)")
    p.add_argument("--backlog", type=int, default=4096, help="listen backlog (4096)")
    p.add_argument("--factory", action="store_true",
                   help="module:attribute is a function returning the application")
    p.add_argument("--env-file", metavar="PATH",
                   help="set the variables of this dotenv file (those not already set) "
                        "before the app is imported")
    p.add_argument("--root-path", default="", metavar="PATH",
                   help="where a proxy mounts the app, e.g. /api: WSGI's SCRIPT_NAME, "
                        "ASGI's root_path")
    p.add_argument("--proxy-headers", action=argparse.BooleanOptionalAction, default=True,
                   help="from a peer in --forwarded-allow-ips, let Forwarded / "
                        "X-Forwarded-For, -Proto and -Host set the client address, scheme "
                        "and host (default on)")
    p.add_argument("--forwarded-allow-ips", metavar="LIST",
                   default=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
                   help="addresses and networks whose proxy headers are believed, "
                        "comma-separated, or *; default $FORWARDED_ALLOW_IPS or 127.0.0.1")
    p.add_argument("--timeout-graceful-shutdown", metavar="S",
                   type=_option_type("drain_timeout"), dest="timeout_graceful_shutdown",
                   help="uvicorn's name for --drain-timeout")
    groups = {
        "runtime": p.add_argument_group(
            "runtime options", "pyparallel's own; one given here wins over the host's flag "
            "and its variable"),
        "limit": p.add_argument_group("limits of every connection"),
    }
    for row in rows:
        group = groups[row["group"]]
        if row["type"] == "on_off":
            # uvicorn's style too: a bare --access-log is on, --no-access-log off.
            group.add_argument(
                row["flag"], dest=row["keyword"], metavar=row["metavar"], default=None,
                nargs="?", const=True, type=_option_type(row["keyword"]),
                help=_option_help(row))
            group.add_argument("--no-" + row["flag"][2:], dest=row["keyword"],
                               action="store_const", const=False,
                               help=f"{row['flag']} off")
            continue
        group.add_argument(
            row["flag"], dest=row["keyword"], metavar=row["metavar"], default=None,
            type=_option_type(row["keyword"]), help=_option_help(row))
    return p


def main(argv: list[str] | None = None) -> int:
    rows = _table_rows()
    args = _parser(rows).parse_args(argv)
    if args.env_file:
        load_env_file(args.env_file)
    sys.path.insert(0, os.path.abspath(args.app_dir))
    app = load_app(args.app)
    if args.factory:
        if not callable(app):
            raise SystemExit(f"parallel.serve: error: --factory: {args.app} is not callable")
        app = app()
    if not callable(app):
        raise SystemExit(f"parallel.serve: error: {args.app} is not callable"
                         + ("" if args.factory else " (a factory? add --factory)"))
    interface = args.interface
    if interface == "auto":
        from parallel._asgi import is_asgi
        interface = "asgi" if is_asgi(app) else "wsgi"
    options = {"root_path": args.root_path, "proxy_headers": args.proxy_headers,
               "forwarded_allow_ips": args.forwarded_allow_ips}
    try:
        protocol = (parallel.asgi(app, **options) if interface == "asgi"
                    else parallel.wsgi(app, **options))
    except ValueError as exc:
        raise SystemExit(f"parallel.serve: error: {exc}") from None
    server = parallel.server(args.host, args.port, args.backlog)
    parallel.register(transport=server, protocol=protocol)
    # Values the table's parser made, handed to run() as its keywords.
    chosen = {row["keyword"]: getattr(args, row["keyword"]) for row in rows
              if getattr(args, row["keyword"]) is not None}
    if args.timeout_graceful_shutdown is not None and "drain_timeout" not in chosen:
        chosen["drain_timeout"] = args.timeout_graceful_shutdown
    # An informational line, so --log-level warning and above leave it out as the
    # runtime's own start-up lines are.
    level = chosen.get("log_level") or parallel._options()["log_level"]
    if level in ("trace", "debug", "info"):
        print(f"parallel.serve: {args.app} ({interface}) on http://{args.host}:{args.port}",
              file=sys.stderr, flush=True)
    started = False
    if interface == "asgi" and args.lifespan != "off":
        started = protocol.startup(required=args.lifespan == "on")
    try:
        parallel.run(**chosen)
    finally:
        if started:
            protocol.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
