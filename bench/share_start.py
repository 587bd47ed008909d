#!/usr/bin/env python3
"""How long run() takes to start on a large heap, with main-thread data shared
(--share-main-data on: the walk that makes it immortal, then the collection and freeze) and
without (off: the collection and freeze only), in one run.

    ./pp bench share_start.py [--entries 1000000] [--repeat 5] [--host PATH ...]

The program (below) builds a dict of --entries entries, each a one-item list of an int
(so 1 + 2 x entries objects to walk), then times from just before run() to the first
callback on the main thread inside run(). Printed per host: the median start in ms with
sharing on and off, the walk alone (the ms the runtime logs for it) and the difference.
Several --host values (e.g. an older build's build/interpreter/pyparallel copied aside)
are measured interleaved, round by round, so background load falls on each alike.
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import tempfile

from benchlib import BUILD

PROGRAM = r'''
import sys, time, parallel
TABLE = {i: [i] for i in range(int(sys.argv[1]))}


def started():
    print(f"{(time.perf_counter() - T0) * 1000:.2f}", flush=True)
    parallel.stop()


parallel.timer(0, 0, parallel.call_from_main_thread, started)  # fires once run() started
T0 = time.perf_counter()
parallel.run(workers=1)
'''
WALK = re.compile(r"main-thread data shared with the workers: .*?([\d.]+) ms")


def once(host: str, script: str, entries: int, share: str) -> tuple[float, float]:
    r = subprocess.run([host, "--share-main-data", share, script, str(entries)],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"{host} exited with {r.returncode}: {r.stderr}")
    walk = WALK.search(r.stderr)
    return float(r.stdout.split()[0]), float(walk.group(1)) if walk else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--host", action="append",
                    help="a pyparallel host (repeatable; default: this build's)")
    args = ap.parse_args()
    hosts = args.host or [str(BUILD / "interpreter" / "pyparallel")]
    with tempfile.NamedTemporaryFile("w", suffix=".py") as f:
        f.write(PROGRAM)
        f.flush()
        runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.repeat):
            for host in hosts:
                for share in ("on", "off"):
                    runs.setdefault((host, share), []).append(
                        once(host, f.name, args.entries, share))
    print(f"run() start with a {args.entries:,}-entry dict of lists, median of {args.repeat}")
    print(f"{'host':<60} {'on ms':>8} {'walk ms':>8} {'off ms':>8} {'on-off':>8}")
    for host in hosts:
        on = statistics.median(t for t, _ in runs[(host, "on")])
        walk = statistics.median(w for _, w in runs[(host, "on")])
        off = statistics.median(t for t, _ in runs[(host, "off")])
        print(f"{host:<60} {on:8.1f} {walk:8.1f} {off:8.1f} {on - off:8.1f}")


if __name__ == "__main__":
    main()
