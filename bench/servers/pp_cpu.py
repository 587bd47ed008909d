"""A CPU-bound http11 handler for pyparallel: about 1 ms of pure Python per request.

    build/interpreter/pyparallel --workers N bench/servers/pp_cpu.py [--port P] [--ms 1.0]

GET /cpu runs a fixed number of loop iterations, calibrated once in the main thread
before run() to take --ms milliseconds of CPU on this interpreter, and returns the
result as text. With N workers on a free-threaded build, N requests run at once.
Comparisons between runs should pass the same --iterations to each (python_servers.py
calibrates once with --calibrate-only): a calibration on a busy machine differs.
"""
import argparse
import time

import parallel
from cpu_work import work

N = 0


def calibrate(ms: float) -> int:
    n = 10000
    while True:
        t = time.thread_time()
        work(n)
        dt = time.thread_time() - t
        if dt > 0.05:
            return max(1, int(n * ms / 1000 / dt))
        n *= 2


class Cpu:
    http11 = True

    def cpu(self, transport, data):
        return b'%d' % work(N)


def main() -> None:
    global N
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=8080)
    ap.add_argument('--ms', type=float, default=1.0)
    ap.add_argument('--iterations', type=int, default=0,
                    help='loop iterations per request (default: calibrated from --ms)')
    ap.add_argument('--calibrate-only', action='store_true',
                    help='print the iterations for --ms and exit')
    args = ap.parse_args()
    N = args.iterations or max(calibrate(args.ms) for _ in range(3))
    if args.calibrate_only:
        print(N)
        return
    server = parallel.server(args.host, args.port)
    parallel.register(transport=server, protocol=Cpu)
    print(f'{N} iterations per request (~{args.ms} ms)', flush=True)
    parallel.run()


if __name__ == '__main__':
    main()
