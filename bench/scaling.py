#!/usr/bin/env python3
"""How pyparallel's req/s grows with workers, against N uvloop+httptools processes.

    BUNDLE/bin/pyparallel bench/scaling.py --bundle BUNDLE [--workers 1,2,4,8,16]
        [--seconds 5] [--repeat 3] [--gen-cores N] [--per-worker 8] [--pipeline 16]
        [--cpu-ms 1.0] [--only cpu,plaintext] [--anchor-python /usr/bin/python3] [--out DIR]

bench/scaling.sh is the way in (it finds or extracts the bundle and draws the plot); this
is its measuring half. Everything it runs comes from the bundle DIR (./pp dist): the host,
examples/tefb.py, bench/servers/. Routes:
  cpu        GET /cpu, about --cpu-ms of pure Python per request (bench/servers/pp_cpu.py;
             the anchor runs the same loop with the same iteration count), no pipelining
  plaintext  GET /plaintext (examples/tefb.py), --pipeline deep (TechEmpower's plaintext)
Anchor: N processes of bench/servers/uvloop_httptools.py on /usr/bin/python3 (Debian's
python3-uvloop and python3-httptools; --anchor-python for another) sharing the port with
SO_REUSEPORT -- what stock Python gives on N cores. This script itself needs only the
stdlib: scaling.sh runs it on the bundle's own interpreter.

CPUs: this process's CPUs are grouped by physical core; wrk gets the last --gen-cores cores
(default: half, with all their SMT threads), the server one CPU of each other core.
pyparallel pins its workers inside that set (its default policy), and anchor process i is
pinned to the set's i-th CPU, so no two workers share a core. Worker counts that do not fit
beside wrk are skipped. With fewer than 4 cores (and no --split) there is little to split:
wrk and the server share every CPU, pyparallel runs unpinned (--numa-policy none), and the output says
the numbers are not a scaling measurement.

Writes OUT/scaling.md (a markdown table) and OUT/scaling.dat (for gnuplot).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import platform
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import Result, free_port, median, wait_listening, wrk



def cpu_list(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus)


def listeners(port: int) -> int:
    """Listening sockets on port (one per SO_REUSEPORT process), from /proc/net/tcp."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = pathlib.Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
                n += 1
    return n


def cores(cpus: list[int]) -> list[list[int]]:
    """cpus grouped by physical core (SMT siblings together), in CPU order."""
    groups: dict[tuple, list[int]] = {}
    for c in cpus:
        topo = pathlib.Path(f"/sys/devices/system/cpu/cpu{c}/topology")
        try:
            key: tuple = (int((topo / "physical_package_id").read_text()),
                          int((topo / "core_id").read_text()))
        except (OSError, ValueError):
            key = ("cpu", c)
        groups.setdefault(key, []).append(c)
    return sorted(groups.values())


class Server:
    """Server processes sharing one port; .proc is the first (benchlib.wrk's CPU figure)."""

    def __init__(self, cmds: list[list[str]], port: int):
        self.log = tempfile.TemporaryFile()
        self.procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
                      for cmd in cmds]
        self.proc = self.procs[0]
        # One listener per process: SO_REUSEPORT spreads connections only over those bound.
        deadline = time.monotonic() + 30
        while listeners(port) < len(cmds):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                self.stop()
                self.log.seek(0)
                raise RuntimeError(f"{listeners(port)} of {len(cmds)} processes listen on "
                                   f"{port}: {self.log.read()[-600:].decode(errors='replace')}")
            time.sleep(0.05)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.bundle = pathlib.Path(args.bundle).resolve()
        self.host = self.bundle / "bin" / "pyparallel"
        self.servers = self.bundle / "bench" / "servers"
        groups = cores(sorted(os.sched_getaffinity(0)))
        self.shared = len(groups) < (2 if args.split else 4)
        if self.shared:
            self.gen = self.server = sorted(c for g in groups for c in g)
        else:
            g = args.gen_cores or len(groups) // 2
            if not 0 < g < len(groups):
                sys.exit(f"scaling: --gen-cores {g}: need 1..{len(groups) - 1}")
            # wrk gets whole cores; the server one PU of each of its cores, so that its
            # workers (and the anchor's processes) never share a core with wrk or each other.
            self.gen = [c for grp in groups[-g:] for c in grp]
            self.server = [grp[0] for grp in groups[:-g]]
        wanted = [int(w) for w in args.workers.split(",")]
        self.counts = [n for n in wanted if n <= len(self.server)]
        self.skipped = [n for n in wanted if n > len(self.server)]
        self.iterations = 0

    def pp_cmd(self, n: int, script: pathlib.Path, port: int, extra: list[str]) -> list[str]:
        policy = ["--numa-policy", "none"] if self.shared else []
        return ["taskset", "-c", cpu_list(self.server), str(self.host), "--workers", str(n),
                *policy, str(script), "--host", "127.0.0.1", "--port", str(port), *extra]

    def anchor_cmds(self, n: int, port: int, extra: list[str]) -> list[list[str]]:
        cmds = []
        for i in range(n):
            cpus = self.server if self.shared else [self.server[i]]
            cmds.append(["taskset", "-c", cpu_list(cpus), self.args.anchor_python,
                         str(self.servers / "uvloop_httptools.py"), "--port", str(port),
                         *extra])
        return cmds

    def calibrate(self) -> None:
        out = subprocess.run(["taskset", "-c", cpu_list(self.server), str(self.host),
                              str(self.servers / "pp_cpu.py"), "--ms", str(self.args.cpu_ms),
                              "--calibrate-only"], capture_output=True, text=True, timeout=120)
        if out.returncode:
            sys.exit(f"scaling: calibration failed: {out.stderr.strip()[-400:]}")
        self.iterations = int(out.stdout.split()[-1])

    def measure(self, route: str, kind: str, n: int) -> Result:
        port = free_port()
        if route == "cpu":
            path, depth = "/cpu", 0
            if kind == "pp":
                cmds = [self.pp_cmd(n, self.servers / "pp_cpu.py", port,
                                    ["--iterations", str(self.iterations)])]
            else:
                cmds = self.anchor_cmds(n, port, ["--cpu-iterations", str(self.iterations)])
        else:
            path, depth = "/plaintext", self.args.pipeline
            if kind == "pp":
                cmds = [self.pp_cmd(n, self.bundle / "examples" / "tefb.py", port, [])]
            else:
                cmds = self.anchor_cmds(n, port, [])
        srv = Server(cmds, port)
        try:
            wait_listening(port, srv.proc)
            conns = max(len(self.gen), self.args.per_worker * n)
            return wrk(f"{kind} {n}", srv.proc.pid, f"http://127.0.0.1:{port}{path}", conns,
                       self.args.seconds, threads=min(len(self.gen), conns), pipeline=depth,
                       path=path)
        finally:
            srv.stop()


def fmt_us(r: Result, pipelined: bool) -> str:
    v = r.mean_us if pipelined else r.p99_us
    return "nan" if v != v else f"{v / 1000:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True, help="an extracted ./pp dist bundle")
    ap.add_argument("--workers", default="1,2,4,8,16")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gen-cores", type=int, default=0,
                    help="cores for wrk (default: half of them)")
    ap.add_argument("--split", action="store_true",
                    help="give wrk its own cores even below 4 cores (2 suffice)")
    ap.add_argument("--per-worker", type=int, default=8, help="wrk connections per worker")
    ap.add_argument("--pipeline", type=int, default=16, help="plaintext pipeline depth")
    ap.add_argument("--cpu-ms", type=float, default=1.0)
    ap.add_argument("--only", default="cpu,plaintext")
    ap.add_argument("--anchor-python", default="/usr/bin/python3",
                    help="the interpreter with uvloop and httptools that runs the anchor")
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    b = Bench(args)
    if not b.shared:
        os.sched_setaffinity(0, b.gen)  # wrk, started by benchlib.wrk, inherits it
    routes = [r for r in ("cpu", "plaintext") if r in args.only.split(",")]
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    where = (f"wrk and the server share all {len(b.server)} CPUs ({cpu_list(b.server)}): "
             "fewer than 4 CPUs, so this is NOT a scaling measurement -- the load generator "
             "competes with the workers" if b.shared else
             f"server CPUs {cpu_list(b.server)} (one per core), wrk CPUs {cpu_list(b.gen)} "
             f"(wrk -t{len(b.gen)})")
    print(f"scaling: {where}", flush=True)
    if b.skipped:
        print(f"scaling: skipped {b.skipped} workers: only {len(b.server)} server core(s)",
              flush=True)
    if "cpu" in routes:
        b.calibrate()
        print(f"scaling: /cpu runs {b.iterations} loop iterations (~{args.cpu_ms} ms)",
              flush=True)

    load_before = os.getloadavg()[0]
    results: dict[tuple[str, str, int], list[Result]] = {}
    for rnd in range(args.repeat):
        for route in routes:
            for n in b.counts:
                for kind in ("pp", "anchor"):  # interleaved: drift hits both alike
                    r = b.measure(route, kind, n)
                    results.setdefault((route, kind, n), []).append(r)
                    print(f"  round {rnd + 1}: {route:<9} {kind:<6} {n:>2} workers "
                          f"{r.rps:>12,.0f} req/s  errors {r.errors}", flush=True)

    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    med = {key: median(runs) for key, runs in results.items()}
    lines = [f"Machine: {os.cpu_count()} CPUs ({model}), Linux {platform.release()}; "
             f"{where}.",
             f"Medians of {args.repeat} interleaved rounds of {args.seconds} s; wrk "
             f"{args.per_worker} connections per worker; anchor: N uvloop+httptools "
             f"processes (SO_REUSEPORT) on {args.anchor_python}; load average "
             f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after.", ""]
    if b.skipped:
        lines += [f"Not run: {', '.join(map(str, b.skipped))} workers (only "
                  f"{len(b.server)} core(s) beside wrk's).", ""]
    lines += ["| route | workers | pyparallel req/s | x 1 worker | uvloop+httptools req/s "
              "| x 1 process | pyparallel / anchor | latency ms (pp / anchor) | errors |",
              "|---|---|---|---|---|---|---|---|---|"]
    # The plot's title (scaling.sh): the machine and how its CPUs were split.
    dat = [f"## {os.cpu_count()} CPUs, " + (
        "wrk shares them with the server: not a scaling measurement" if b.shared else
        f"server on {len(b.server)} cores, wrk on {len(b.gen)} CPUs")]
    for route in routes:
        pipelined = route == "plaintext" and args.pipeline > 0
        label = (f"/plaintext, pipeline {args.pipeline}" if pipelined else
                 "/plaintext" if route == "plaintext" else f"/cpu, ~{args.cpu_ms:g} ms of Python")
        lat = "mean" if pipelined else "p99"
        base_pp = med[(route, "pp", b.counts[0])].rps if b.counts else 0
        base_an = med[(route, "anchor", b.counts[0])].rps if b.counts else 0
        dat.append(f"# {label}")  # then rows: workers, pyparallel, uvloop+httptools
        for n in b.counts:
            pp, an = med[(route, "pp", n)], med[(route, "anchor", n)]
            ratio = pp.rps / an.rps if an.rps else float("nan")
            lines.append(
                f"| {label} | {n} | {pp.rps:,.0f} | {pp.rps / base_pp:.2f}x | {an.rps:,.0f} "
                f"| {an.rps / base_an:.2f}x | **{ratio:.2f}x** | {lat} {fmt_us(pp, pipelined)}"
                f" / {fmt_us(an, pipelined)} | {pp.errors} / {an.errors} |")
            dat.append(f"{n} {pp.rps:.0f} {an.rps:.0f}")
        dat += ["", ""]  # gnuplot: a new index per route
    text = "\n".join(lines) + "\n"
    (out / "scaling.md").write_text(text)
    (out / "scaling.dat").write_text("\n".join(dat) + "\n")
    print("\n" + text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
