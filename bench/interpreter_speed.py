#!/usr/bin/env python3
"""pyparallel's interpreter against Debian's python3.11, one core, pure Python.

    ./pp bench interpreter_speed.py [--repeat 5] [--also [LABEL=]PYTHON ...]

Runs interpreter/cpython/microbench.py (loops, recursive calls, objects, dict/str work, JSON,
sorting, a regex; each figure the best of 7 timeit repeats) under the pyparallel host of
the build (PP_BUILD_DIR, default build/) and under the anchor /usr/bin/python3.11 (PGO+LTO,
the Python a user already has), alternating, --repeat rounds. Prints the median time of
each benchmark per interpreter and its speed relative to the anchor (anchor time / its
time: above 1 is faster), with the geometric mean. --also adds interpreters to compare,
e.g. an unpatched or PGO build from the cache (interpreter/README.md).
Target (issue 8): geomean at least 0.85x the anchor.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

from statistics import median

from benchlib import BUILD, ROOT

ANCHOR = "/usr/bin/python3.11"
MICROBENCH = ROOT / "interpreter" / "cpython" / "microbench.py"


def run_once(python: str) -> dict[str, float]:
    out = subprocess.run([python, str(MICROBENCH), "--json"], capture_output=True,
                         text=True, timeout=900, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result.pop("geomean", None)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--also", action="append", default=[], metavar="[LABEL=]PYTHON",
                    help="another interpreter (or pyparallel host) to include")
    args = ap.parse_args()
    host = BUILD / "interpreter" / "pyparallel"
    if not host.is_file():
        print(f"{host} not built (./pp build)", file=sys.stderr)
        return 1
    pythons = {"python3.11 (anchor)": ANCHOR, "pyparallel": str(host)}
    for other in args.also:
        label, sep, path = other.partition("=")
        pythons[label if sep else other] = path if sep else other
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in pythons}
    for _ in range(args.repeat):  # alternate, so the machine's drift hits all alike
        for name, python in pythons.items():
            runs[name].append(run_once(python))
    names = list(runs[next(iter(runs))][0])
    med = {name: {b: median([r[b] for r in rs]) for b in names} for name, rs in runs.items()}
    anchor = med["python3.11 (anchor)"]
    print(f"## interpreter/cpython/microbench.py, median of {args.repeat} rounds (ms; x = speed "
          f"vs python3.11, above 1 is faster)")
    header = f"{'benchmark':<10}" + "".join(f"{n[:24]:>26}" for n in pythons)
    print(header)
    for b in names:
        cells = "".join(f"{med[n][b]:>17.3f} {anchor[b] / med[n][b]:>6.2f}x"
                        for n in pythons)
        print(f"{b:<10}{cells}")
    geo = {n: math.exp(sum(math.log(anchor[b] / med[n][b]) for b in names) / len(names))
           for n in pythons}
    print(f"{'geomean':<10}" + "".join(f"{'':>17} {geo[n]:>6.2f}x" for n in pythons))
    return 0


if __name__ == "__main__":
    sys.exit(main())
