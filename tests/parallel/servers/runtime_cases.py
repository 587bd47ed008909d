"""Small runs of the runtime, one per --case, for test_pp_stop.py. Each prints what it
saw, one ``KEY value`` line at a time, and exits 0.

- ``join-cpu``: --rounds runs; in each, after --idle seconds of serving, a worker's timer
  calls stop() and then keeps its worker busy for --seconds; the main thread's CPU time
  from its first call once serving to run()'s return is printed (``MAIN_CPU``): it waits,
  for work and then for the workers to exit, and must not spin while it does.
- ``large-sends``: a raw server answers ``big`` with --mib MiB that its clients never
  read, and says ``QUEUED n``; stopped (SIGTERM) with drain_timeout 0.5 s, its sends are
  still in flight at the drain deadline. After run() it prints ``LOST n``: how many
  connection_lost calls with an error its connections got.
- ``main-thread``: call_from_main_thread[_and_wait] from a ``threading`` thread, before
  run(), while run() serves (workers=--workers), and after it: where the function ran
  (``QUEUED main``/``WAITED main``) or the error raised (``BEFORE ParallelError``).
- ``register-race``: a thread registers servers while the main thread starts run(), for
  --rounds rounds; a timer on a worker then checks that each registration that
  succeeded is being served (bound): ``ROUND i registered N unbound M``.
- ``timer-durations``: parallel.timer with NaN, infinite, huge and negative durations:
  ``TIMER <repr> <exception name or ok>``.
"""
import argparse
import math
import sys
import threading
import time

import parallel

MAIN = threading.get_ident()


def join_cpu(args) -> None:
    def stop_then_work():
        parallel.stop()
        time.sleep(args.seconds)  # the worker stays busy; the main thread waits for it

    for _ in range(args.rounds):  # a later run() must not inherit the last one's state
        # Counted from the main thread's first call once serving, not from run(): its
        # start-up (sharing the main thread's data, the imports done before the workers
        # start) is work, not waiting, and takes 0.2 s under ThreadSanitizer.
        serving = []
        parallel.timer(0, 0, parallel.call_from_main_thread,
                       lambda: serving.append(time.thread_time()))
        parallel.timer(args.idle, 0, stop_then_work)
        parallel.run(workers=args.workers)
        if not serving:
            raise SystemExit('the main thread never ran the call queued at start')
        print('MAIN_CPU', round(time.thread_time() - serving[0], 3), flush=True)


LOST = []


class Big:
    def data_received(self, transport, data):
        if data.strip() == b'big':
            print('QUEUED', 1, flush=True)
            return b'x' * (args_mib() << 20)
        return None

    def connection_lost(self, transport, exc):
        LOST.append(type(exc).__name__)


_ARGS = None


def args_mib() -> int:
    return _ARGS.mib


def large_sends(args) -> None:
    server = parallel.server(args.host, args.port)
    parallel.register(transport=server, protocol=Big)
    parallel.run(workers=args.workers, drain_timeout=0.5)
    # The ones that ended with an error: the listening check's connection closes cleanly.
    print('LOST', sum(1 for name in LOST if name != 'NoneType'), flush=True)


def main_thread(args) -> None:
    def where():
        return 'main' if threading.get_ident() == MAIN else 'elsewhere'

    seen = {}

    def record(key):
        seen[key] = where()

    def poke(phase):
        try:
            parallel.call_from_main_thread(record, phase + ' queued')
            got = parallel.call_from_main_thread_and_wait(where)
            print(phase, 'WAITED', got, flush=True)
        except parallel.ParallelError as exc:
            print(phase, 'ERROR', type(exc).__name__, flush=True)

    t = threading.Thread(target=poke, args=('BEFORE',))
    t.start()
    t.join()

    def during():
        poke('DURING')
        time.sleep(0.2)  # the queued call runs on the main thread meanwhile
        parallel.stop()

    server = parallel.server(args.host, args.port)
    parallel.register(transport=server, protocol=Big)
    threading.Timer(0.3, during).start()
    parallel.run(workers=args.workers)
    print('DURING QUEUED', seen.get('DURING queued', 'never'), flush=True)
    t = threading.Thread(target=poke, args=('AFTER',))
    t.start()
    t.join()


class Nothing:
    pass


def register_race(args) -> None:
    for round_no in range(args.rounds):
        go = threading.Event()
        ok = []

        def registrar():
            go.wait()
            for _ in range(40):
                s = parallel.server(args.host, 0)
                try:
                    parallel.register(transport=s, protocol=Nothing)
                except parallel.ParallelError:
                    return  # run() has begun: the registry is its
                ok.append(s)
                time.sleep(0.0002)

        def check():
            unbound = sum(1 for s in ok if s.port == 0)
            print('ROUND', round_no, 'registered', len(ok), 'unbound', unbound, flush=True)
            parallel.stop()

        t = threading.Thread(target=registrar)
        t.start()
        parallel.timer(0.3, 0, check)
        go.set()
        parallel.run(workers=args.workers)
        t.join()


def timer_durations(args) -> None:
    for due, period in ((math.nan, 0), (0, math.nan), (math.inf, 0), (1e300, 0), (0, 1e19),
                        (-1, 0), (1e9 + 1, 0), (0.5, 0.25)):
        try:
            t = parallel.timer(due, period, print)
            t.cancel()
            result = 'ok'
        except Exception as exc:  # noqa: BLE001 -- the type is what is printed
            result = type(exc).__name__
        print('TIMER', repr((due, period)), result, flush=True)


def main() -> int:
    global _ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument('--case', required=True)
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--seconds', type=float, default=3.0)
    ap.add_argument('--idle', type=float, default=0.1)
    ap.add_argument('--mib', type=int, default=32)
    ap.add_argument('--rounds', type=int, default=5)
    args = _ARGS = ap.parse_args()
    {'join-cpu': join_cpu, 'large-sends': large_sends, 'main-thread': main_thread,
     'register-race': register_race, 'timer-durations': timer_durations}[args.case](args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
