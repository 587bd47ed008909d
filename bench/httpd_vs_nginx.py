#!/usr/bin/env python3
"""pyparallel-httpd vs nginx, same worker count, same wrk settings, one run.

    ./pp bench httpd_vs_nginx.py [--seconds 10] [--workers 1,2]

Scenarios: (a) 8 connections, no pipelining; (b) 8 and (c) 256 connections with
16-deep pipelining. Prints req/s, p50, p99 and the server's CPU time per request
(all threads, from /proc), and each figure as a ratio to nginx's (the anchor).
On a 2-core machine the load generator shares the cores: without pipelining every
server meets the same kernel ceiling, so CPU per request is the fair figure there.
Targets: cpu/req <= 0.8x nginx without pipelining; pipelined req/s >= 5x nginx;
p99 no worse than nginx's.
"""
import argparse
import sys

from benchlib import BUILD, Command, Nginx, free_port, median, table, wrk

SCENARIOS = [("8 conns", 8, 0), ("8 conns, pipeline 16", 8, 16),
             ("256 conns, pipeline 16", 256, 16)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per server, alternating; the table shows medians")
    args = ap.parse_args()
    httpd = BUILD / "httpd" / "pyparallel-httpd"
    for workers in [int(w) for w in args.workers.split(",")]:
        for label, conns, depth in SCENARIOS:
            runs: dict[str, list] = {"nginx": [], "httpd": []}
            for _ in range(args.repeat):  # alternate, so drift in load hits both alike
                port = free_port()
                ng = Nginx(workers, port)
                try:
                    runs["nginx"].append(wrk("nginx", ng.proc.pid,
                                             f"http://127.0.0.1:{port}/plaintext", conns,
                                             args.seconds, pipeline=depth))
                finally:
                    ng.stop()
                port = free_port()
                srv = Command([str(httpd), "--port", str(port), "--workers", str(workers),
                               "--backend", args.backend, "--host", "127.0.0.1"], port)
                try:
                    runs["httpd"].append(wrk("httpd", srv.proc.pid,
                                             f"http://127.0.0.1:{port}/plaintext", conns,
                                             args.seconds, pipeline=depth))
                finally:
                    srv.stop()
            anchor = median(runs["nginx"])
            rows = [("nginx", anchor), ("pyparallel-httpd", median(runs["httpd"]))]
            print(f"\n## {workers} worker(s), {label} (wrk -t1, {args.seconds}s, "
                  f"median of {args.repeat})")
            print(table(rows, anchor), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
