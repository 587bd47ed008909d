"""The control of the parallel-handler tests: two forked processes do the /spin handlers'
work and count how often each saw the other's progress change (through shared memory).

Processes never share a lock, so they run at once whenever the OS gives them two cores at
once. If even they see each other move only a few hundred times, the machine is too busy
to tell running at once from taking turns, and a test that two threads ran at once must
not fail on that. Prints ``{"seen": [a, b]}``.

Usage: spin_control.py ITERATIONS [--pin]

--pin puts child k on the k-th CPU this process may use, as the runtime's default placement
(compact, one worker per PU) puts worker k: beside CPU hogs, two pinned tasks run at once
far less often than two the OS may move (measured: ~100 against ~200,000 times seen).
"""
import json
import mmap
import os
import struct
import sys

SLOT = struct.Struct('q')


def spin_watching(shared: mmap.mmap, n: int, me: int) -> int:
    """proto_http.spin_watching over shared memory: progress in slot `me`, and the
    iterations in which the other slot had changed since the last one."""
    x = seen = 0
    mine, other = me * SLOT.size, (1 - me) * SLOT.size
    last = SLOT.unpack_from(shared, other)[0]
    for i in range(n):
        x += i * i % 7
        SLOT.pack_into(shared, mine, i)
        now = SLOT.unpack_from(shared, other)[0]
        if now != last:
            seen += 1
            last = now
    return seen


def main() -> int:
    n = int(sys.argv[1])
    pin = '--pin' in sys.argv[2:]
    cpus = sorted(os.sched_getaffinity(0))
    shared = mmap.mmap(-1, 2 * SLOT.size)
    children = []
    for me in (0, 1):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            if pin and len(cpus) > 1:
                os.sched_setaffinity(0, {cpus[me]})
            os.write(w, str(spin_watching(shared, n, me)).encode())
            os._exit(0)
        os.close(w)
        children.append((pid, r))
    seen = []
    for pid, r in children:
        with os.fdopen(r) as f:
            seen.append(int(f.read() or 0))
        os.waitpid(pid, 0)
    print(json.dumps({'seen': seen}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
