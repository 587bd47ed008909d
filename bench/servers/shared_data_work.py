"""The loops of bench/shared_data.py over a table built at import (by whichever thread
imports this: the main thread). Each reads 20,000 random entries of a 1,000,000-entry dict."""
SIZE = 1_000_000
LOOKUPS = 20_000
TABLE = {i: i * 2 for i in range(SIZE)}


def subscript():
    """table[k] through a local name."""
    table = TABLE
    total = 0
    for i in range(LOOKUPS):
        total += table[i * 7919 % SIZE]
    return total


def get():
    """table.get(k) through a local name."""
    table = TABLE
    total = 0
    for i in range(LOOKUPS):
        total += table.get(i * 7919 % SIZE)
    return total


def global_name():
    """TABLE[k], the module global read on every iteration (a reference to the dict each
    time)."""
    total = 0
    for i in range(LOOKUPS):
        total += TABLE[i * 7919 % SIZE]
    return total


if __name__ == '__main__':
    # The anchor: each loop on the main thread of the interpreter running this file.
    import statistics
    import sys
    import time
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    for loop in (subscript, get, global_name):
        loop()
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            loop()
            times.append((time.perf_counter() - start) * 1e3)
        print(loop.__name__, f'{statistics.median(times):.4f}')
