#!/usr/bin/env python3
"""Memory per idle keep-alive connection: pyparallel-httpd, the Python runtime (http11,
examples/tefb.py) and nginx, measured in the same run.

    ./pp bench idle_connections.py [--connections 100000] [--workers 1] [--backend auto]

Each server is started alone; the client opens N connections (from 127.0.0.1-127.0.0.8, so
that loopback's ephemeral ports suffice), sends one request on each and reads its response,
and leaves them all open. The figure is what one more idle connection costs in user memory:
the growth of the server's RSS (every process of it, from /proc) from N/2 to N connections,
divided by N/2 (the kernel's socket buffers are not in RSS; what a server touches once, on
first use, is in the first half). Printed beside nginx's, the anchor, as a ratio.
Targets (issue 23): <= 1 KB per idle connection for the C++ server, <= 2 KB for the
Python runtime (its protocol instance included). Needs a descriptor limit of about
N + 1000 for the client and each server: it raises its own soft limit, and the hard one
when it may (CAP_SYS_RESOURCE).
"""
from __future__ import annotations

import argparse
import resource
import socket
import sys
import time

from benchlib import BUILD, ROOT, Command, Nginx, free_port, process_tree

REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n"
SOURCES = [f"127.0.0.{k}" for k in range(1, 9)]  # 8 x ~28k ephemeral ports


def rss_bytes(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def open_idle(port: int, count: int, first: int = 0) -> list[socket.socket]:
    """`count` connections, one request answered on each, all left open."""
    conns = []
    for i in range(first, first + count):
        s = socket.socket()
        s.bind((SOURCES[i % len(SOURCES)], 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        s.sendall(REQUEST)
        got = b""
        while b"\r\n\r\n" not in got or not got.endswith(b"!"):
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError(f"connection {i} closed by the server")
            got += chunk
        conns.append(s)
    return conns


def measure(name: str, server, port: int, count: int) -> float:
    """Bytes of RSS one more idle connection costs: the growth from count/2 to count
    connections, divided by count/2. Counting from the first connection would charge the
    connections with what a server sets up once, on first use (io_uring's receive
    buffers are touched as the first reads land in them, up to the ring's size)."""
    try:
        time.sleep(0.5)
        start = rss_bytes(server.proc.pid)
        half = count // 2
        conns = open_idle(port, half)
        time.sleep(0.5)
        middle = rss_bytes(server.proc.pid)
        conns += open_idle(port, count - half, first=half)
        time.sleep(1.0)
        end = rss_bytes(server.proc.pid)
        if server.proc.poll() is not None:
            raise RuntimeError(f"{name} exited")
        # Every connection must still be open (no keep-alive timeout, no limit hit).
        alive = sum(1 for s in conns[:: max(1, count // 200)] if still_open(s))
        for s in conns:
            s.close()
        per = (end - middle) / (count - half)
        print(f"{name:26} {start / 2**20:7.1f} -> {middle / 2**20:7.1f} -> {end / 2**20:7.1f} MiB"
              f"   {per:7.0f} B/conn   (sampled open: {alive})", flush=True)
        return per
    finally:
        server.stop()


def still_open(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    want = args.connections + 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError) as exc:
        print(f"cannot raise the descriptor limit to {want} ({exc}): that takes "
              f"CAP_SYS_RESOURCE (root outside a container), or a hard limit "
              f"(ulimit -Hn) of at least {want}; or pass --connections "
              f"{max(100, hard - 1000)}", file=sys.stderr)
        return 2
    n = args.connections
    limits = ["--keepalive-timeout", "3600", "--max-connections", "0",
              "--workers", str(args.workers), "--backend", args.backend]
    print(f"{n} idle keep-alive connections, {args.workers} worker(s), one run\n")
    results = {}
    port = free_port()
    results["nginx"] = measure("nginx", Nginx(args.workers, port, worker_connections=want,
                                              keepalive_timeout=3600), port, n)
    port = free_port()
    httpd = Command([str(BUILD / "httpd" / "pyparallel-httpd"), "--host", "127.0.0.1",
                     "--port", str(port), *limits], port)
    results["pyparallel-httpd"] = measure("pyparallel-httpd", httpd, port, n)
    port = free_port()
    py = Command([str(BUILD / "interpreter" / "pyparallel"), *limits,
                  str(ROOT / "examples" / "tefb.py"), "--host", "127.0.0.1", "--port",
                  str(port)], port)
    results["pyparallel http11"] = measure("pyparallel http11 (tefb)", py, port, n)
    anchor = results["nginx"]
    print()
    for name, per in results.items():
        print(f"{name:24} {per:8.0f} B/conn   x nginx {per / anchor if anchor > 0 else 0:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
