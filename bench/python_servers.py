#!/usr/bin/env python3
"""pyparallel's http11 plaintext (examples/tefb.py) vs the Python servers users compare
it with, and nginx; then a CPU-bound handler on pyparallel at 1 vs 2 workers. One run,
same wrk settings for every server.

    ./pp bench python_servers.py [--seconds 10] [--connections 8] [--pp-workers 1]
                                 [--cpu-ms 1.0] [--only NAME,...] [--baseline PYPARALLEL]

Servers (each on a fresh free port, one at a time):
  uvloop+httptools  bench/servers/uvloop_httptools.py on /usr/bin/python3 (the anchor)
  pyparallel        build/interpreter/pyparallel --workers W examples/tefb.py
  aiohttp           bench/servers/aiohttp_server.py on /usr/bin/python3 (asyncio loop)
  nginx             benchlib.Nginx, 1 worker, `return 200 "Hello, World!"`
Scenarios: wrk -t1 -c C without pipelining, and with 16-deep pipelining (wrk Lua).
Printed per server: req/s, p50, p99, the server's CPU time per request (all threads, from
/proc) and each as a ratio to uvloop+httptools. On a 2-core machine wrk shares the cores,
so without pipelining every server meets the same kernel ceiling and CPU per request is
the fair figure. CPU-bound: GET /cpu on bench/servers/pp_cpu.py (about --cpu-ms of pure
Python per request) at 1 and 2 workers, against the same loop (same iteration count) served
by one and by two uvloop+httptools processes on /usr/bin/python3 sharing the port with
SO_REUSEPORT (the anchor: what a user gets from stock Python on two cores).
Targets (issues 4, 8): cpu/req <= uvloop+httptools's without pipelining; pipelined req/s
>= 1.5x; p99 no worse; CPU-bound 2-worker/1-worker >= 1.8x; CPU-bound 2 workers >= 0.9x
two uvloop+httptools processes. --baseline PATH adds plaintext rows for another pyparallel
host (one built from an earlier commit), labelled "baseline": before/after in one run.
"""
from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import time

from benchlib import BUILD, ROOT, Command, Nginx, Result, free_port, median, table, wrk

PYTHON = "/usr/bin/python3"  # Debian's, which has python3-uvloop/-httptools/-aiohttp
SERVERS = ROOT / "bench" / "servers"
PYPARALLEL = BUILD / "interpreter" / "pyparallel"


def pyparallel_ready() -> str:
    """'' when the pyparallel host has a working `parallel` module, else why not."""
    if not PYPARALLEL.is_file():
        return f"{PYPARALLEL} not built"
    out = subprocess.run([str(PYPARALLEL), "-c", "import parallel; parallel.server; "
                          "parallel.register; parallel.run"], capture_output=True, text=True,
                         timeout=60)
    if out.returncode:
        return "the parallel module has no server API yet: " + out.stderr.strip()[-200:]
    return ""


BASELINE: pathlib.Path | None = None  # --baseline: another pyparallel host


def start(name: str, port: int, workers: int):
    """A started server object with .proc and .stop()."""
    if name == "uvloop+httptools":
        return Command([PYTHON, str(SERVERS / "uvloop_httptools.py"), "--port", str(port)], port)
    if name == "aiohttp":
        return Command([PYTHON, str(SERVERS / "aiohttp_server.py"), "--port", str(port)], port)
    if name == "nginx":
        return Nginx(1, port)
    if name.startswith("pyparallel"):
        # ", baseline": the same server on the other host (before/after in one run).
        host = BASELINE if name.endswith(", baseline") else PYPARALLEL
        return Command([str(host), "--workers", str(workers), str(ROOT / "examples" /
                        "tefb.py"), "--host", "127.0.0.1", "--port", str(port)], port)
    raise ValueError(name)


class UvloopProcesses:
    """N uvloop+httptools processes sharing one port (SO_REUSEPORT), serving /cpu."""

    def __init__(self, n: int, port: int, iterations: str):
        cmd = [PYTHON, str(SERVERS / "uvloop_httptools.py"), "--port", str(port),
               "--cpu-iterations", iterations]
        self.procs = [Command(cmd, port)]
        for _ in range(n - 1):
            # The port already answers, so wait for this process's own start instead.
            self.procs.append(Command(cmd, port))
            time.sleep(1.0)
        self.proc = self.procs[0].proc

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


def measure(name: str, workers: int, conns: int, seconds: int, depth: int,
            path: str = "/plaintext") -> Result:
    port = free_port()
    srv = start(name, port, workers)
    try:
        return wrk(name, srv.proc.pid, f"http://127.0.0.1:{port}{path}", conns, seconds,
                   pipeline=depth, path=path)
    finally:
        srv.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--pipeline", type=int, default=16)
    ap.add_argument("--pp-workers", default="1",
                    help="pyparallel worker counts for the plaintext runs (e.g. 1,2)")
    ap.add_argument("--cpu-ms", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds over all servers (interleaved); tables show medians")
    ap.add_argument("--only", default="",
                    help="comma-separated subset of: uvloop,pyparallel,aiohttp,nginx,cpu")
    ap.add_argument("--baseline", type=pathlib.Path,
                    help="another pyparallel host (an earlier build): adds its plaintext rows")
    args = ap.parse_args()
    global BASELINE
    BASELINE = args.baseline.resolve() if args.baseline else None
    only = set(filter(None, args.only.split(",")))

    def wanted(key: str) -> bool:
        return not only or key in only

    why_not = pyparallel_ready()
    if why_not:
        print(f"pyparallel skipped: {why_not}", flush=True)

    names: list[tuple[str, str, int]] = [("uvloop", "uvloop+httptools", 1)]
    if not why_not and wanted("pyparallel"):
        for w in map(int, args.pp_workers.split(",")):
            names.append(("pyparallel", f"pyparallel ({w} worker{'s' if w > 1 else ''})", w))
            if BASELINE:
                names.append(("pyparallel",
                              f"pyparallel ({w} worker{'s' if w > 1 else ''}, baseline)", w))
    names += [("aiohttp", "aiohttp", 1), ("nginx", "nginx", 1)]

    for label, depth in (("no pipelining", 0), (f"pipeline {args.pipeline}", args.pipeline)):
        if only and not only & {"uvloop", "pyparallel", "aiohttp", "nginx"}:
            break
        chosen = [(name, workers) for key, name, workers in names
                  if key == "uvloop" or wanted(key)]
        runs: dict[str, list[Result]] = {name: [] for name, _ in chosen}
        for _ in range(args.repeat):  # rounds, so drift in the machine's load hits all alike
            for name, workers in chosen:
                runs[name].append(measure(name, workers, args.connections, args.seconds, depth))
        rows = [(name, median(runs[name])) for name, _ in chosen]
        anchor = rows[0][1]
        print(f"\n## plaintext, {args.connections} connections, {label} "
              f"(wrk -t1, {args.seconds}s; ratios against uvloop+httptools)")
        print(table(rows, anchor), flush=True)

    if wanted("cpu") and not why_not:
        iterations = subprocess.run(
            [str(PYPARALLEL), "--workers", "1", str(SERVERS / "pp_cpu.py"), "--ms",
             str(args.cpu_ms), "--calibrate-only"], capture_output=True, text=True,
            timeout=120, check=True).stdout.split()[-1]
        labels = {("pp", 1): "pyparallel cpu, 1 worker", ("pp", 2): "pyparallel cpu, 2 workers",
                  ("uv", 1): "uvloop+httptools cpu, 1 process",
                  ("uv", 2): "uvloop+httptools cpu, 2 processes"}
        cpu_runs: dict[tuple[str, int], list[Result]] = {key: [] for key in labels}
        for _ in range(args.repeat):
            for kind, n in labels:
                port = free_port()
                if kind == "uv":
                    srv = UvloopProcesses(n, port, iterations)
                else:
                    # Unpinned: on a machine where wrk shares the cores, a pinned single
                    # worker can be stuck on wrk's CPU while the other idles, which would
                    # flatter the 2-worker ratio. Unpinned, the kernel spreads all three.
                    srv = Command([str(PYPARALLEL), "--workers", str(n), "--numa-policy",
                                   "none", str(SERVERS / "pp_cpu.py"), "--port", str(port),
                                   "--iterations", iterations], port)
                try:
                    cpu_runs[(kind, n)].append(wrk("cpu", srv.proc.pid,
                                                   f"http://127.0.0.1:{port}/cpu",
                                                   args.connections, args.seconds,
                                                   path="/cpu"))
                finally:
                    srv.stop()
        med = {key: median(runs) for key, runs in cpu_runs.items()}
        rows = [(labels[key], med[key]) for key in (("uv", 2), ("pp", 2), ("uv", 1), ("pp", 1))]
        print(f"\n## CPU-bound handler (~{args.cpu_ms} ms pure Python: {iterations} loop "
              f"iterations), {args.connections} connections (wrk -t1, {args.seconds}s; "
              f"ratios against 2 uvloop+httptools processes; cpu us/req is one process's)")
        print(table(rows, rows[0][1]))
        print(f"pyparallel 2 workers / 2 uvloop+httptools processes: "
              f"{med[('pp', 2)].rps / med[('uv', 2)].rps:.2f}x")
        print(f"pyparallel 1 worker / 1 uvloop+httptools process: "
              f"{med[('pp', 1)].rps / med[('uv', 1)].rps:.2f}x")
        print(f"scaling 2 workers / 1 worker: {med[('pp', 2)].rps / med[('pp', 1)].rps:.2f}x",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
