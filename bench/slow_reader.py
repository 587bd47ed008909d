#!/usr/bin/env python3
"""The long forms of issue 24's two back-pressure measurements, with default settings,
on the WSGI and ASGI gateways (tests/parallel/test_pp_gateway_peers.py has short forms):

    ./pp bench slow_reader.py [--interfaces wsgi,asgi] [--mib 256] [--rate-mib 2]
                              [--stalled 10] [--stalled-mib 1024] [--hold 10]

1. Steady reader: one client reads a --mib MiB streamed response (1 MiB blocks, no
   Content-Length) at --rate-mib MiB/s, paced by the clock, with the default 60 s send
   timeout. It must get the body whole (before the fix: cut after 61.7 s at 122 MiB).
   256 MiB at 2 MiB/s takes about 128 s per interface.
2. Stalled readers: --stalled clients each ask for a --stalled-mib MiB stream and read
   nothing for --hold seconds; prints the server's RSS growth (peak VmRSS - before) and
   how many MiB each app produced (before the fix: +1,020 MiB of RSS in 1.5 s per client).

The app is tests/parallel/apps/hostile_app.py (the same file the tests use); the server is
`pyparallel -m parallel.serve --workers 2`.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time

from benchlib import BUILD, ROOT, free_port, wait_listening

PYPARALLEL = BUILD / "interpreter" / "pyparallel"
APPS = ROOT / "tests" / "parallel" / "apps"


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def get(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.partition(b"\r\n\r\n")[2]


def dechunk(data: bytes) -> tuple[int, bool]:
    """(decoded body length, ended with the last chunk) of a chunked body."""
    total, pos = 0, 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            return total, False
        size = int(data[pos:end].split(b";")[0], 16)
        if size == 0:
            return total, True
        total += min(size, max(0, len(data) - end - 2))
        pos = end + 2 + size + 2
        if pos > len(data):
            return total, False


def steady(port: int, mib: int, rate: float) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 131072)
    sock.settimeout(90)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /huge?mib={mib}&id=steady HTTP/1.1\r\nHost: x\r\n"
                 f"Connection: close\r\n\r\n".encode())
    data = bytearray()
    start = time.monotonic()
    while True:
        ahead = len(data) / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        data += chunk
    took = time.monotonic() - start
    sock.close()
    body, whole = dechunk(bytes(data.partition(b"\r\n\r\n")[2]))
    print(f"  steady reader: {body / (1 << 20):.1f} of {mib} MiB in {took:.1f} s "
          f"({'whole' if whole and body == mib << 20 else 'CUT'})", flush=True)


def stalled(pid: int, port: int, clients: int, mib: int, hold: float) -> None:
    base = rss_kib(pid)
    socks = []
    for i in range(clients):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET /huge?mib={mib}&id=stall{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        socks.append(s)
    peak = base
    end = time.monotonic() + hold
    while time.monotonic() < end:
        peak = max(peak, rss_kib(pid))
        time.sleep(0.05)
    made = [json.loads(get(port, f"/progress?id=stall{i}"))["made"] for i in range(clients)]
    for s in socks:
        s.close()
    print(f"  {clients} stalled readers of {mib} MiB for {hold:.0f} s: RSS {base >> 10} -> "
          f"peak {peak >> 10} MiB (+{(peak - base) >> 10} MiB); MiB made per stream: {made}",
          flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--interfaces", default="wsgi,asgi")
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--rate-mib", type=float, default=2.0)
    ap.add_argument("--stalled", type=int, default=10)
    ap.add_argument("--stalled-mib", type=int, default=1024)
    ap.add_argument("--hold", type=float, default=10.0)
    args = ap.parse_args()
    for kind in args.interfaces.split(","):
        port = free_port()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen([str(PYPARALLEL), "-mparallel.serve", f"hostile_app:{kind}",
                                 "--app-dir", str(APPS), "--workers", "2", "--port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_listening(port, proc, timeout=120)
            print(f"{kind}:", flush=True)
            stalled(proc.pid, port, args.stalled, args.stalled_mib, args.hold)
            steady(port, args.mib, args.rate_mib * (1 << 20))
        finally:
            proc.terminate()
            proc.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
