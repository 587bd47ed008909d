"""An ``http11`` protocol with one route per behaviour the tests check.

``--file PATH`` names the file behind /file and /sendfile; ``--spin-seconds S`` sizes the
CPU-bound /spin handler (calibrated once in the main thread before run()).
"""
import argparse
import array
import os
import sys
import threading
import time

import parallel

MAIN_IDENT = threading.get_ident()
FILE = ''
SPIN_N = 0
BIG = 32 << 20


class Created(parallel.Response):
    """What applications do: a Response subclass with its own defaults."""

    def __new__(cls, body):
        return super().__new__(cls, body, status=201, headers={'X-Kind': 'subclass'})


def spin_loop(n: int) -> int:
    x = 0
    for i in range(n):
        x += i * i % 7
    return x


# /spin's two handlers publish their progress here, each in its own array, and count how
# often they see the other's move: the sign of running at once (see spin()). Arrays, not
# lists: reading a list another thread is storing into may take that list's lock, and two
# threads waiting on each other's locks beside CPU hogs saw each other move ~30 times in
# 1.3 s; array items are read and written without a lock.
PROGRESS = (array.array('q', [0]), array.array('q', [0]))
SPIN_CALLS = [0]
SPIN_LOCK = threading.Lock()


def spin_watching(n: int, me: int) -> tuple[int, int]:
    """spin_loop's work, publishing progress in PROGRESS[me] and counting the iterations
    in which the other handler's progress had changed since the last one."""
    x = seen = 0
    mine, other = PROGRESS[me], PROGRESS[1 - me]
    last = other[0]
    for i in range(n):
        x += i * i % 7
        mine[0] = i
        now = other[0]
        if now != last:
            seen += 1
            last = now
    return x, seen


def calibrate(seconds: float) -> int:
    """Iterations of spin_watching, the loop /spin runs, that take about `seconds` of CPU
    on this interpreter. (Timing spin_loop instead made /spin 2.5x longer than asked: a
    "1 s" handler took 2.5 s of CPU, and a test bounding a stop behind it by 5 s failed
    beside two CPU hogs.)"""
    n = 20000
    while True:
        t = time.thread_time()
        spin_watching(n, 0)
        dt = time.thread_time() - t
        if dt > 0.05:
            PROGRESS[0][0] = 0
            return max(1, int(n * seconds / dt))
        n *= 2


class Routes:
    http11 = True

    def index(self, transport, data):
        return b'index'

    def bytes(self, transport, data):
        return b'bytes body'

    def bytearray(self, transport, data):
        return bytearray(b'bytearray body')

    def memoryview(self, transport, data):
        return memoryview(b'..memoryview body..')[2:-2]

    def str(self, transport, data):
        return 'str body \u00e9\u2713'

    def dict(self, transport, data):
        return {'message': 'Hello, World!', 'n': 1, 'nested': {'list': [1, 2, 3]}}

    def list(self, transport, data):
        return [1, 'two', {'three': 3}, None, True]

    def response(self, transport, data):
        return parallel.Response(b'created', status=201, headers={'X-Test': 'yes'},
                                 content_type='application/x-test')

    def response_json(self, transport, data):
        return parallel.Response({'accepted': True}, status=202)

    def response_str(self, transport, data):
        return parallel.Response('teapot \u2615', status=418)

    def bad_header(self, transport, data):
        # /bad_header?N: a header a client would misread -- its name with a space, a NUL
        # or a colon, or its value with a NUL: each must become a 500, never be sent.
        return parallel.Response(b'must not be sent', headers=[
            {'Bad Name': 'v'}, {'X-Nul\x00Name': 'v'}, {'X-Colon:': 'v'}, {'': 'v'},
            {'X-Nul-Value': 'a\x00b'}, {'X-Ok': 'fine'}][int(transport.http_query)])

    def response_subclass(self, transport, data):
        return Created(b'made by a subclass')

    def none(self, transport, data):
        return None

    def file(self, transport, data):
        return parallel.file(FILE)

    def file_typed(self, transport, data):
        return parallel.file(FILE, 'application/x-custom')

    def missing_file(self, transport, data):
        return parallel.file('/nonexistent/pyparallel-test-file')

    def sendfile(self, transport, data):
        size = os.path.getsize(FILE)
        transport.sendfile(b'HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n'
                           b'Content-Length: %d\r\n\r\n' % size, FILE, None)
        return None

    def ranged(self, transport, data):
        # /ranged?OFFSET,N
        offset, n = (int(x) for x in transport.http_query.split(','))
        transport.ranged_sendfile(b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n' % n,
                                  FILE, None, offset, n)
        return None

    def raise_(self, transport, data):
        raise RuntimeError('boom from an http11 handler')

    def wrong(self, transport, data):
        return 42

    def echo(self, transport, data):
        return bytes(data)

    def info(self, transport, data):
        return {'method': transport.http_method, 'path': transport.http_path,
                'query': transport.http_query, 'version': transport.http_version,
                'headers': dict(transport.http_headers), 'peer': list(transport.peer),
                'parallel': parallel.is_parallel_thread(),
                'main': threading.get_ident() == MAIN_IDENT}

    def count(self, transport, data):
        self.n = getattr(self, 'n', 0) + 1
        return b'%d' % self.n

    def big(self, transport, data):
        return b'x' * BIG

    def where(self, transport, data):
        return {'parallel': parallel.is_parallel_thread(),
                'main': threading.get_ident() == MAIN_IDENT}

    def ident(self, transport, data):
        return {'thread': threading.get_ident(), 'parallel': parallel.is_parallel_thread()}

    def spin(self, transport, data):
        # Two at a time (the tests send a pair): slots 0 and 1 by order of arrival.
        # 'seen' counts the iterations in which the other handler had moved on. Taking
        # turns (a GIL) it moves only between turns, a few hundred times at most; at once,
        # on two cores, nearly every iteration, however busy the machine is otherwise.
        with SPIN_LOCK:
            me = SPIN_CALLS[0] % 2
            SPIN_CALLS[0] += 1
        t0, c0 = time.monotonic(), time.thread_time()
        _, seen = spin_watching(SPIN_N, me)
        return {'start': t0, 'end': time.monotonic(), 'cpu': time.thread_time() - c0,
                'seen': seen, 'thread': threading.get_ident(),
                'parallel': parallel.is_parallel_thread()}

    def stats(self, transport, data):
        return parallel.stats()

    def _private(self, transport, data):
        return b'private: must not be routable'

    not_callable = b'an attribute, not a handler'


# `raise` is a keyword: route /raise to raise_.
setattr(Routes, 'raise', Routes.raise_)


def main() -> int:
    global FILE, SPIN_N
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=8080)
    ap.add_argument('--file', default=__file__)
    ap.add_argument('--spin-seconds', type=float, default=0.0)
    ap.add_argument('--run-workers', type=int, default=None)
    args = ap.parse_args()
    FILE = os.path.realpath(args.file)
    if args.spin_seconds:
        SPIN_N = calibrate(args.spin_seconds)
    server = parallel.server(args.host, args.port)
    parallel.register(transport=server, protocol=Routes)
    print('READY', flush=True)
    if args.run_workers is None:
        parallel.run()
    else:
        parallel.run(workers=args.run_workers)
    return 0


if __name__ == '__main__':
    sys.exit(main())
