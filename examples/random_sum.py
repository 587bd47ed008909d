"""Random: the seed's parallel random-access server over one large in-memory array.

    ./pp run examples/random_sum.py [--size 1000000000] [--host 0.0.0.0] [--port 8080]
    curl localhost:8080/random     # The sum of the items in slice [s:e] is N

Shows:
- load big data in the main thread *before* ``run()``; parallel callbacks then read the
  module global ``large_array`` directly (no copy, no pickling, one process), which is
  what multiprocessing cannot do with a multi-GB working set;
- ``http11 = True`` routes ``GET /random`` to ``random(self, transport, data)``;
- a returned ``str`` is sent as text/html, with Date, Server and Content-Length added.

The seed used numpy (``np.random.randint(low=0, high=100, size=one_billion)``): here numpy
is used when the interpreter can import it, otherwise a stdlib ``array('B')`` holds the
values, so the example runs on the free-threaded interpreter as built. The default, one
billion one-byte items, takes 1 GB.
"""
import argparse
import random
from array import array

import parallel

try:
    import numpy as np
except ImportError:  # the free-threaded build usually has no numpy
    np = None

one_billion = 1000000000
fmt = 'The sum of the items in slice [%d:%d] is %d'
# Filled by load() before run(); read by every worker.
large_array = array('B')
size = 0

_MOD100 = bytes(i % 100 for i in range(256))  # a random byte -> a value in [0, 100)
_CHUNK = 1 << 24


def load(n: int) -> None:
    """Fill ``large_array`` with n random integers in [0, 100) (main thread only)."""
    global large_array, size
    if np is not None:
        large_array = np.random.randint(low=0, high=100, size=n, dtype=np.uint8)
    else:
        a = array('B')
        for start in range(0, n, _CHUNK):
            a.frombytes(random.randbytes(min(_CHUNK, n - start)).translate(_MOD100))
        large_array = a
    size = n


def slice_sum(start: int, end: int) -> int:
    """Sum of large_array[start:end] (numpy sums uint8 into a wide integer itself)."""
    if np is not None and not isinstance(large_array, array):
        return int(large_array[start:end].sum())
    return sum(large_array[start:end])


class Random:
    http11 = True
    # ^^^^ This class attribute tells the runtime to parse HTTP/1.1 for this protocol,
    # translating a GET request for '/random' into a direct call to `random()`.
    # (HTTP headers are accessible via `transport.http_headers`, a dict.)

    def random(self, transport, data):
        # This runs on a worker thread, in parallel with the other workers. It reads the
        # main thread's `large_array` as Python's scope rules allow; the objects it makes
        # live only as long as the request.
        start = random.randint(0, size - 11)
        end = start + 10
        return fmt % (start, end, slice_sum(start, end))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--host', default='0.0.0.0')
    ap.add_argument('--port', type=int, default=8080)
    ap.add_argument('--size', type=int, default=one_billion,
                    help='number of items in the array (default: one billion, 1 GB)')
    args = ap.parse_args()
    if args.size < 11:
        ap.error('--size must be at least 11')

    load(args.size)
    server = parallel.server(args.host, args.port)
    parallel.register(transport=server, protocol=Random)
    print(f'Random server now accessible at http://localhost:{args.port}/random', flush=True)
    print('Press Ctrl-C to quit.', flush=True)
    parallel.run()


if __name__ == '__main__':
    main()
