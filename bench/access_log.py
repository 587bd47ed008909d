#!/usr/bin/env python3
"""What the access log costs: CPU per request with it on (to a file) and off, in one run.

    ./pp bench access_log.py [--seconds 5] [--repeat 3]

Servers, 1 worker each: pyparallel-httpd (`/plaintext`) and `pyparallel examples/tefb.py`
(http11 `/plaintext`), each with `--no-access-log` and with `--access-log-file` (a file
under /tmp, emptied between runs), interleaved `--repeat` times. wrk -t1 with 8
connections, without and with 16-deep pipelining (the worst case: the line is a larger
share of a request's work). Prints medians, and each "on" row's CPU per request as a ratio
to its "off" row.
"""
import argparse
import os
import sys
import tempfile

from benchlib import BUILD, ROOT, Command, free_port, median, table, wrk

SCENARIOS = [("8 conns", 8, 0), ("8 conns, pipeline 16", 8, 16)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    log = os.path.join(tempfile.mkdtemp(), "access.log")
    servers = {
        "httpd": [str(BUILD / "httpd" / "pyparallel-httpd"), "--workers", "1"],
        "http11": [str(BUILD / "interpreter" / "pyparallel"), "--workers", "1"],
    }
    rows_spec = []  # (label, server, access-log flags)
    for name in servers:
        rows_spec.append((f"{name}, log off", name, ["--no-access-log"]))
        rows_spec.append((f"{name}, log on (file)", name, ["--access-log-file", log]))
    for label, conns, depth in SCENARIOS:
        runs: dict[str, list] = {row: [] for row, _, _ in rows_spec}
        for _ in range(args.repeat):
            for row, name, flags in rows_spec:
                port = free_port()
                cmd = [*servers[name], *flags]
                if name == "http11":
                    cmd += [str(ROOT / "examples" / "tefb.py")]
                cmd += ["--host", "127.0.0.1", "--port", str(port)]
                srv = Command(cmd, port)
                try:
                    runs[row].append(wrk(row, srv.proc.pid, f"http://127.0.0.1:{port}/plaintext",
                                         conns, args.seconds, pipeline=depth))
                finally:
                    srv.stop()
                    if os.path.exists(log):
                        os.unlink(log)
        print(f"\n## {label}, 1 worker (wrk -t1, {args.seconds}s, median of {args.repeat})")
        medians = {row: median(runs[row]) for row, _, _ in rows_spec}
        for name in servers:
            off, on = medians[f"{name}, log off"], medians[f"{name}, log on (file)"]
            print(table([(f"{name}, log off", off), (f"{name}, log on (file)", on)], off))
            print(f"{name}: CPU per request with the access log on / off: "
                  f"{on.cpu_us_per_req / off.cpu_us_per_req:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
