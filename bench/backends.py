#!/usr/bin/env python3
"""The engine's backends against each other: pyparallel-httpd on each, same run.

    ./pp bench backends.py [--seconds 5] [--repeat 3] [--workers 1]
                           [--backends epoll,libaio,io_uring] [--baseline PATH]

Runs httpd/ (`/plaintext`) once per backend, alternating `--repeat` times so
drift in the machine's load hits every row alike, with wrk -t1: (a) 8 connections,
(b) 8 connections with 16-deep pipelining. Prints medians of req/s, latency and the
server's CPU time per request (every thread, from /proc), each as a ratio to the first
backend listed (the anchor; epoll by default).

`--baseline PATH` adds rows for another pyparallel-httpd binary (say, one built from an
earlier commit) on the same backends, labelled "(baseline)": that is how a refactor of
the engine is measured before/after in one run.
"""
import argparse
import sys

from benchlib import BUILD, Command, free_port, median, table, wrk

SCENARIOS = [("8 conns", 8, 0), ("8 conns, pipeline 16", 8, 16)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--backends", default="epoll,libaio,io_uring")
    ap.add_argument("--baseline", help="another pyparallel-httpd binary to compare")
    args = ap.parse_args()
    httpd = str(BUILD / "httpd" / "pyparallel-httpd")
    rows_spec = []  # (label, binary, backend)
    for backend in args.backends.split(","):
        rows_spec.append((backend, httpd, backend))
        if args.baseline:
            rows_spec.append((f"{backend} (baseline)", args.baseline, backend))
    for label, conns, depth in SCENARIOS:
        runs: dict[str, list] = {name: [] for name, _, _ in rows_spec}
        for _ in range(args.repeat):
            for name, binary, backend in rows_spec:
                port = free_port()
                srv = Command([binary, "--port", str(port), "--workers", str(args.workers),
                               "--backend", backend, "--host", "127.0.0.1"], port)
                try:
                    runs[name].append(wrk(name, srv.proc.pid,
                                          f"http://127.0.0.1:{port}/plaintext", conns,
                                          args.seconds, pipeline=depth))
                finally:
                    srv.stop()
        rows = [(name, median(runs[name])) for name, _, _ in rows_spec]
        print(f"\n## {label}, {args.workers} worker(s) (wrk -t1, {args.seconds}s, median of "
              f"{args.repeat}; ratios to {rows[0][0]})")
        print(table(rows, rows[0][1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
