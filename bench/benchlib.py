"""Shared pieces of the benchmark scripts: start servers, drive them with wrk, and
measure the server's CPU time per request from /proc (all of its threads and child
processes), so that ratios against an anchor measured in the same run can be printed.
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = pathlib.Path(os.environ.get("PP_BUILD_DIR", ROOT / "build"))
# The anchors log no requests (nginx here with access_log off, uvicorn --no-access-log):
# pyparallel's servers neither, unless a bench asks (access_log.py measures what it costs).
# Command() also never reads a server's stderr: lines there would fill the pipe.
os.environ.setdefault("PYPARALLEL_ACCESS_LOG", "off")

PIPELINE_LUA = """
init = function(args)
  local depth = tonumber(args[1]) or 16
  local path = args[2] or "/plaintext"
  local r = {}
  for i = 1, depth do r[i] = wrk.format(nil, path) end
  req = table.concat(r)
end
request = function() return req end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (nginx's workers, gunicorn's workers)."""
    out = [pid]
    try:
        children = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for c in children:
        out += process_tree(int(c))
    return out


def cpu_ns(pid: int) -> int:
    """Nanoseconds on CPU of every thread of pid and its descendants (schedstat)."""
    total = 0
    for p in process_tree(pid):
        for task in pathlib.Path(f"/proc/{p}/task").glob("*"):
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


@dataclass
class Result:
    name: str
    rps: float
    p50_us: float
    p99_us: float
    cpu_us_per_req: float
    errors: int
    mean_us: float = float("nan")  # wrk's average latency (also valid when pipelining)
    max_us: float = float("nan")


def _to_us(value: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", value)
    if not m:
        return float("nan")
    n, unit = float(m.group(1)), m.group(2)
    return n * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def wrk(name: str, pid: int, url: str, connections: int, seconds: int, threads: int = 1,
        pipeline: int = 0, path: str = "/plaintext") -> Result:
    """Runs wrk against url, measuring pid's CPU time during the run."""
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
           "--latency", url]
    lua = None
    if pipeline:
        lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        lua.write(PIPELINE_LUA)
        lua.close()
        cmd += ["-s", lua.name, "--", str(pipeline), path]
    # Warm-up: connections established, caches and page tables hot.
    subprocess.run(cmd[:1] + ["-t", "1", "-c", str(connections), "-d", "1s"] + cmd[7:],
                   capture_output=True, timeout=60)
    before = cpu_ns(pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    used = cpu_ns(pid) - before
    if lua:
        os.unlink(lua.name)
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    rps = float(m.group(1)) if m else 0.0
    nreq = int(total.group(1)) if total else 0
    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = (sum(int(x) for x in errs.groups()) if errs else 0) + (
        int(non2xx.group(1)) if non2xx else 0)
    p50_us = _to_us(p50.group(1)) if p50 else float("nan")
    p99_us = _to_us(p99.group(1)) if p99 else float("nan")
    if p99_us < p50_us:  # wrk 4.1 sometimes prints "99% 0.00us" with pipelining: unknown
        p99_us = float("nan")
    lat = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", out)
    mean_us = _to_us(lat.group(1)) if lat else float("nan")
    max_us = _to_us(lat.group(3)) if lat else float("nan")
    return Result(name, rps, p50_us, p99_us,
                  used / 1e3 / nreq if nreq else float("nan"), errors, mean_us, max_us)


def median(results: list[Result]) -> Result:
    """Field-by-field median of repeated runs of one server (noisy shared machines)."""
    def med(values: list[float]) -> float:
        vals = sorted(v for v in values if v == v)
        return vals[len(vals) // 2] if vals else float("nan")
    first = results[0]
    return Result(first.name, med([r.rps for r in results]), med([r.p50_us for r in results]),
                  med([r.p99_us for r in results]), med([r.cpu_us_per_req for r in results]),
                  sum(r.errors for r in results), med([r.mean_us for r in results]),
                  med([r.max_us for r in results]))


class Nginx:
    """Debian's nginx-light answering `return 200` with the same body as our servers."""

    def __init__(self, workers: int, port: int, body: str = "Hello, World!",
                 worker_connections: int = 8192, keepalive_timeout: int = 75):
        if not shutil.which("nginx"):
            raise RuntimeError("nginx not installed (apt-get install nginx-light)")
        self.dir = tempfile.mkdtemp(prefix="pp-nginx-")
        conf = pathlib.Path(self.dir) / "nginx.conf"
        conf.write_text(f"""
worker_processes {workers};
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
worker_rlimit_nofile {worker_connections + 100};
events {{ worker_connections {worker_connections}; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout {keepalive_timeout}s;
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location / {{ default_type text/plain; return 200 "{body}"; }}
  }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", self.dir,
                                      "-g", "daemon off;"], stderr=subprocess.DEVNULL)
        wait_listening(port, self.proc)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Command:
    """Any server started from a command line; stopped with SIGINT."""

    def __init__(self, cmd: list[str], port: int, env: dict | None = None):
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=dict(os.environ, **(env or {})))
        wait_listening(port, self.proc)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def table(rows: list[tuple[str, Result]], anchor: Result) -> str:
    def ratio(a: float, b: float) -> float:
        return a / b if b and b == b else float("nan")

    lines = [f"{'server':<34}{'req/s':>11}{'p50 us':>9}{'p99 us':>9}{'mean us':>9}"
             f"{'max us':>9}{'cpu us/req':>11}{'x rps':>7}{'x cpu':>7}{'x p99':>7}{'err':>5}"]
    for label, r in rows:
        lines.append(
            f"{label:<34}{r.rps:>11.0f}{r.p50_us:>9.0f}{r.p99_us:>9.0f}{r.mean_us:>9.0f}"
            f"{r.max_us:>9.0f}{r.cpu_us_per_req:>11.2f}{ratio(r.rps, anchor.rps):>7.2f}"
            f"{ratio(r.cpu_us_per_req, anchor.cpu_us_per_req):>7.2f}"
            f"{ratio(r.p99_us, anchor.p99_us):>7.2f}{r.errors:>5}")
    if any(r.p99_us != r.p99_us for _, r in rows):
        lines.append("(p99 nan: wrk 4.1 cannot compute percentiles of pipelined requests; "
                     "compare mean and max)")
    return "\n".join(lines)
