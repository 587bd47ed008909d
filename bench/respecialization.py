#!/usr/bin/env python3
"""What a site specialized for one type costs when it then runs another (issue 18).

    ./pp bench respecialization.py [--python PATH] [--repeat 5]

In the free-threaded build a specialized instruction is never rewritten while the
interpreter has more than one thread (interpreter/README.md, rule 3): a site warmed on
type A before run() and then run with type B keeps its A form and deopts to the generic
path every time. This measures that: a handler-shaped function (attribute reads, a method
call, a global) warmed on A on the only thread, then timed on B with a second thread alive,
against the same code compiled fresh and warmed on B with the second thread alive (the
best case). Prints both times (best of --repeat) and the ratio stale / fresh.
"""
from __future__ import annotations

import argparse
import subprocess
import sys

from benchlib import BUILD

PROGRAM = r"""
import sys, threading, time

SOURCE = '''
SCALE = 3
def handler(o):
    total = 0
    for i in range(200):
        total += o.x * SCALE + o.y + o.get()
    return total
'''

class A:
    def __init__(self):
        self.x, self.y = 1, 2
    def get(self):
        return self.x

class B:
    __slots__ = ("x", "y")
    def __init__(self):
        self.x, self.y = 1, 2
    def get(self):
        return self.y

def fresh():
    ns = {}
    exec(SOURCE, ns)
    return ns["handler"]

def timed(f, o, n=3000):
    t = time.perf_counter()
    for _ in range(n):
        f(o)
    return time.perf_counter() - t

repeat = int(sys.argv[1])
stale = fresh()
for _ in range(100):
    stale(A())                       # specialized for A while this is the only thread
stop = threading.Event()
other = threading.Thread(target=stop.wait)
other.start()                        # from here on, no in-place re-specialization
best = fresh()
for _ in range(100):
    best(B())                        # specialized for B (first specialization is allowed)
b = B()
t_stale = min(timed(stale, b) for _ in range(repeat))
t_best = min(timed(best, b) for _ in range(repeat))
stop.set()
other.join()
print(f"{t_stale * 1e3:.1f} {t_best * 1e3:.1f}")
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", help="interpreter (default: the build's pyparallel host)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    python = args.python or str(BUILD / "interpreter" / "pyparallel")
    out = subprocess.run([python, "-c", PROGRAM, str(args.repeat)], capture_output=True,
                         text=True, check=True, timeout=600).stdout.split()
    stale, best = float(out[0]), float(out[1])
    print(f"site warmed on A, run on B (stays A, deopts): {stale:8.1f} ms")
    print(f"same code warmed on B:                       {best:8.1f} ms")
    print(f"stale / fresh: {stale / best:.2f}x  ({python})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
