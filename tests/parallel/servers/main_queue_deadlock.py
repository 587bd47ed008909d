"""Minimal reproducer, found by test_pp_api_fuzz.py: worker callbacks calling
``call_from_main_thread`` while the main thread waits for work.

A repeating timer on the workers queues 200 main-thread calls per millisecond; a
``threading.Timer`` calls ``parallel.stop()`` after ``--seconds``. ``run()`` must return
and the script print ``returned N``.

The GIL build deadlocked here on every try while main_thread.cpp ``wait_main()`` kept
``Runtime::mutex`` locked across ``Py_END_ALLOW_THREADS`` (its ``unique_lock`` lived inside
the ALLOW_THREADS block): the main thread waited for the GIL holding the mutex, and a
worker holding the GIL waited for the mutex in ``post_to_main()``.
"""
import argparse
import sys
import threading

import parallel

calls = 0


def on_main():
    global calls
    calls += 1


def tick():
    for _ in range(200):
        parallel.call_from_main_thread(on_main)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--seconds', type=float, default=2.0)
    ap.add_argument('--workers', type=int, default=2)
    args = ap.parse_args()
    parallel.timer(0.0, 0.001, tick)
    threading.Timer(args.seconds, parallel.stop).start()
    parallel.run(workers=args.workers)
    print('returned', calls, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
