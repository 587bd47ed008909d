#!/usr/bin/env python3
"""Real WSGI and ASGI apps on pyparallel vs gunicorn and uvicorn: req/s, p99, CPU per
request and total RSS, with ratios against the best anchor measured in the same run.

    ./pp bench wsgi_asgi.py [--seconds 10] [--connections 8] [--repeat 1]
                            [--only flask,starlette] [--routes hello,shared] [--mortal]
                            [--baseline PYPARALLEL]

Apps (the same files for every server): tests/parallel/apps/flask_app.py (Debian's
python3-flask) and tests/parallel/apps/starlette_app.py (python3-starlette). Each builds a
1,000,000-entry dict at import. Routes: `/` (hello) and `/shared` (20,000 lookups in that
dict, about 1 ms of Python on Debian's python3.11).

Servers, each with 2 workers on a fresh free port, one at a time:
  Flask      pyparallel -m parallel.serve --workers 2 (WSGI on 2 worker threads)
             gunicorn -w 2 (sync workers; Debian's python3-gunicorn on /usr/bin/python3)
             gunicorn -w 2 -k gthread --threads 4
  Starlette  pyparallel -m parallel.serve --workers 2 (ASGI, one event loop per worker)
             uvicorn --workers 2 --loop uvloop --http httptools (Debian's python3-uvicorn)
wrk -t1 -c C; CPU time of the whole process tree from /proc; RSS is the sum of VmRSS over
the process tree after the run (gunicorn's and uvicorn's workers each hold a copy of the
table; pyparallel's workers share one). --mortal adds each pyparallel server again with
--share-main-data off (main-thread data left mortal: every read from a worker then pays
atomic reference counting). --baseline PATH adds each pyparallel server again on another
pyparallel host (one built from an earlier commit), labelled ", baseline": a change measured
before/after in one run.

Targets (issue 12): hello route CPU per request <= the best anchor's; shared-data route
req/s >= 1.0x the best anchor; shared-data route total RSS <= 0.6x the best anchor's.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

from benchlib import BUILD, ROOT, Command, Result, free_port, median, process_tree, wrk

PYTHON = "/usr/bin/python3"  # Debian's, with python3-gunicorn/-uvicorn/-flask/-starlette
APPS = ROOT / "tests" / "parallel" / "apps"
DIST_PACKAGES = "/usr/lib/python3/dist-packages"
PYPARALLEL = BUILD / "interpreter" / "pyparallel"
ROUTES = {"hello": "/", "shared": "/shared"}


def rss_mb(pid: int) -> float:
    """Resident memory of pid and its descendants, in MB."""
    total_kb = 0
    for p in process_tree(pid):
        try:
            for line in pathlib.Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except OSError:
            pass
    return total_kb / 1024


BASELINE: pathlib.Path | None = None  # --baseline: another pyparallel host


def command(server: str, port: int) -> tuple[list[str], dict]:
    """The command line (and extra environment) of one server."""
    if server.endswith(", baseline"):
        # The same server on the other host: the before of a before/after comparison.
        cmd, env = command(server.removesuffix(", baseline"), port)
        return [str(BASELINE), *cmd[1:]], env
    if server.endswith(", mortal"):
        # The same server with main-thread data left mortal (what run() did before
        # --share-main-data): shows what sharing it buys, in the same run.
        cmd, env = command(server.removesuffix(", mortal"), port)
        return [cmd[0], "--share-main-data", "off", *cmd[1:]], env
    if server == "pyparallel flask":
        return ([str(PYPARALLEL), "-m", "parallel.serve", "flask_app:app", "--app-dir",
                 str(APPS), "--port", str(port), "--workers", "2"],
                {"PYTHONPATH": DIST_PACKAGES})
    if server == "pyparallel starlette":
        return ([str(PYPARALLEL), "-m", "parallel.serve", "starlette_app:app", "--app-dir",
                 str(APPS), "--port", str(port), "--workers", "2"],
                {"PYTHONPATH": DIST_PACKAGES})
    if server == "gunicorn sync":
        return ([PYTHON, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "--chdir",
                 str(APPS), "--log-level", "warning", "flask_app:app"], {})
    if server == "gunicorn gthread":
        return ([PYTHON, "-m", "gunicorn", "-w", "2", "-k", "gthread", "--threads", "4", "-b",
                 f"127.0.0.1:{port}", "--chdir", str(APPS), "--log-level", "warning",
                 "flask_app:app"], {})
    if server == "uvicorn":
        return ([PYTHON, "-m", "uvicorn", "--workers", "2", "--loop", "uvloop", "--http",
                 "httptools", "--port", str(port), "--app-dir", str(APPS), "--log-level",
                 "warning", "--no-access-log", "starlette_app:app"], {})
    raise ValueError(server)


def measure(server: str, path: str, conns: int, seconds: int) -> tuple[Result, float]:
    port = free_port()
    cmd, env = command(server, port)
    srv = Command(cmd, port, env)
    try:
        if "uvicorn" in server or "gunicorn" in server:
            # Both answer on the port before every worker has imported the app.
            time.sleep(4)
        result = wrk(server, srv.proc.pid, f"http://127.0.0.1:{port}{path}", conns, seconds)
        return result, rss_mb(srv.proc.pid)
    finally:
        srv.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds over all servers (interleaved); tables show medians")
    ap.add_argument("--only", default="flask,starlette")
    ap.add_argument("--routes", default="hello,shared")
    ap.add_argument("--mortal", action="store_true",
                    help="add pyparallel rows with --share-main-data off")
    ap.add_argument("--baseline", type=pathlib.Path,
                    help="another pyparallel host (an earlier build) to add rows for")
    args = ap.parse_args()
    if not PYPARALLEL.is_file():
        print(f"{PYPARALLEL} not built (./pp build)")
        return 1
    groups = {"flask": ["gunicorn sync", "gunicorn gthread", "pyparallel flask"],
              "starlette": ["uvicorn", "pyparallel starlette"]}
    if args.mortal:
        for servers in groups.values():
            servers.append(servers[-1] + ", mortal")
    if args.baseline:
        global BASELINE
        BASELINE = args.baseline.resolve()
        for servers in groups.values():
            servers.append(next(s for s in servers if s.startswith("pyparallel")) + ", baseline")
    summary = []
    for app in args.only.split(","):
        servers = groups[app]
        for route in args.routes.split(","):
            path = ROUTES[route]
            runs: dict[str, list[tuple[Result, float]]] = {s: [] for s in servers}
            for _ in range(args.repeat):
                for s in servers:
                    runs[s].append(measure(s, path, args.connections, args.seconds))
            rows = []
            for s in servers:
                r = median([x[0] for x in runs[s]])
                rss = sorted(x[1] for x in runs[s])[len(runs[s]) // 2]
                rows.append((s, r, rss))
            anchors = [row for row in rows if not row[0].startswith("pyparallel")]
            # The best anchor: most req/s (least CPU per request for the hello route).
            if route == "hello":
                best = min(anchors, key=lambda row: row[1].cpu_us_per_req)
            else:
                best = max(anchors, key=lambda row: row[1].rps)
            print(f"\n## {app} {route} ({path}), {args.connections} connections, wrk -t1 "
                  f"{args.seconds}s; ratios against {best[0]}")
            width = max(22, max(len(row[0]) for row in rows) + 2)
            print(f"{'server':<{width}}{'req/s':>9}{'p50 us':>9}{'p99 us':>9}{'cpu us/req':>11}"
                  f"{'RSS MB':>8}{'x rps':>7}{'x cpu':>7}{'x p99':>7}{'x RSS':>7}{'err':>6}")
            for s, r, rss in rows:
                b = best[1]
                print(f"{s:<{width}}{r.rps:>9.0f}{r.p50_us:>9.0f}{r.p99_us:>9.0f}"
                      f"{r.cpu_us_per_req:>11.1f}{rss:>8.0f}{r.rps / b.rps:>7.2f}"
                      f"{r.cpu_us_per_req / b.cpu_us_per_req:>7.2f}{r.p99_us / b.p99_us:>7.2f}"
                      f"{rss / best[2]:>7.2f}{r.errors:>6}", flush=True)
            pp = next(row for row in rows if row[0].startswith("pyparallel"))
            if route == "hello":
                ok = pp[1].cpu_us_per_req <= best[1].cpu_us_per_req
                summary.append(f"{app} hello: cpu/req {pp[1].cpu_us_per_req / best[1].cpu_us_per_req:.2f}x "
                               f"the best anchor's (target <= 1.0): {'met' if ok else 'MISSED'}")
            else:
                ok = pp[1].rps >= best[1].rps
                summary.append(f"{app} shared: req/s {pp[1].rps / best[1].rps:.2f}x the best "
                               f"anchor (target >= 1.0): {'met' if ok else 'MISSED'}")
                ok = pp[2] <= 0.6 * best[2]
                summary.append(f"{app} shared: RSS {pp[2] / best[2]:.2f}x the best anchor's "
                               f"(target <= 0.6): {'met' if ok else 'MISSED'}")
    print("\n## targets")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
