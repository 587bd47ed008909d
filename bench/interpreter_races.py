#!/usr/bin/env python3
"""The interpreter race scenarios, for as long as asked.

    ./pp bench interpreter_races.py [--minutes M] [--python PATH] [--only NAME ...]

Runs every scenario of tests/interpreter/races/ (readers of specialized code while other
threads change what it reads; each value self-checking) in rounds, each scenario in its own
process for --slice seconds (default 20), until --minutes (default 30) have passed, under
the pyparallel host of the build (PP_BUILD_DIR, default build/) or --python. A wrong value,
an exception, a crash (the signal is named) or a hang (no result within the slice plus 60 s)
is a failure. Prints one line per scenario run and a closing summary: runs, reads,
failures. `./pp test` runs each scenario for 2 seconds; this is the long form (issue 18).
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time

from benchlib import BUILD, ROOT

RUN = ROOT / "tests" / "interpreter" / "races" / "run.py"


def run_one(python: str, name: str, seconds: float) -> tuple[bool, int, str]:
    """(ok, reads, why) of one scenario run."""
    try:
        r = subprocess.run([python, str(RUN), name, str(seconds)], capture_output=True,
                           text=True, timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        return False, 0, f"hung (no result within {seconds + 60:.0f} s)"
    if r.returncode < 0:
        return False, 0, f"killed by {signal.Signals(-r.returncode).name}"
    lines = r.stdout.strip().splitlines()
    if not lines:
        return False, 0, f"exit {r.returncode}, no result: {r.stderr[-300:]}"
    result = json.loads(lines[-1])
    why = "; ".join(result["bad"] + result["errors"])
    return r.returncode == 0 and not why, result["reads"], why or f"exit {r.returncode}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--slice", type=float, default=20.0, help="seconds per scenario run")
    ap.add_argument("--python", help="interpreter to run (default: the build's host)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME")
    args = ap.parse_args()
    python = args.python or str(BUILD / "interpreter" / "pyparallel")
    names = subprocess.run([python, str(RUN), "--list"], capture_output=True, text=True,
                           check=True).stdout.split()
    if args.only:
        names = [n for n in names if n in args.only]
    deadline = time.monotonic() + args.minutes * 60
    runs = reads = 0
    failures: list[str] = []
    while time.monotonic() < deadline:
        for name in names:
            if time.monotonic() >= deadline:
                break
            ok, n, why = run_one(python, name, args.slice)
            runs += 1
            reads += n
            print(f"{name:30} {'ok  ' if ok else 'FAIL'} {n:>10} reads"
                  + ("" if ok else f"  {why}"), flush=True)
            if not ok:
                failures.append(f"{name}: {why}")
    print(f"interpreter_races: {runs} runs of {len(names)} scenarios, {reads} reads, "
          f"{len(failures)} failed, {args.minutes:g} min on {python}")
    for f in failures:
        print("FAILED: " + f)
    return 1 if failures or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
