"""Servers for the lifetime tests (test_pp_lifetime.py); ``--scenario NAME`` picks one.

Each scenario exercises one place where the runtime hands an object or a reference across
threads or past shutdown: timers being cancelled, timers still armed when ``run()`` returns,
the http11 route-name cache, ``submit_work`` from a ``threading`` thread while ``run()``
returns, and transport methods called from a ``threading`` thread. What the tests check but
cannot read from a socket is printed to stdout with a tag.
"""
import argparse
import gc
import os
import queue
import sys
import tempfile
import threading
import time

import parallel


def say(*args) -> None:
    # One write per line: print() writes its arguments one by one, and lines printed by
    # two workers at once would interleave (the tests match whole lines).
    sys.stdout.write(' '.join(map(str, args)) + '\n')
    sys.stdout.flush()


# -- canaries: objects whose release the tests watch ------------------------------------------

_lock = threading.Lock()
_released = 0
_made = 0


class Canary:
    """Counts its own releases (any thread) so a test can see a reference go."""

    def __init__(self):
        global _made
        with _lock:
            _made += 1

    def __del__(self):
        global _released
        with _lock:
            _released += 1


def canaries_alive() -> int:
    with _lock:
        return _made - _released


def released() -> int:
    with _lock:
        return _released


def nothing(*args) -> None:
    pass


# -- timers ----------------------------------------------------------------------------------

ARMED: list = []


class Timers:
    """'arm N': N timers due in 30 s; 'cancel': cancel them, dropping the Timer objects at
    once; 'now N': N times ``parallel.timer(30, 0, f, canary).cancel()``; 'released': how
    many canaries have been released so far."""

    def data_received(self, transport, data):
        cmd, _, arg = data.strip().decode().partition(' ')
        if cmd == 'arm':
            for _ in range(int(arg)):
                ARMED.append(parallel.timer(30, 0, nothing, Canary()))
            return b'armed\n'
        if cmd == 'cancel':
            while ARMED:
                ARMED.pop().cancel()
            return b'cancelled\n'
        if cmd == 'now':
            for _ in range(int(arg)):
                parallel.timer(30, 0, nothing, Canary()).cancel()
            return b'cancelled\n'
        if cmd == 'released':
            return b'released %d\n' % released()
        return b'unknown\n'


def timers_at_shutdown() -> None:
    """Timers armed when run() returns: their references go with the runtime, and a
    Timer object kept past run() can still be cancelled (a no-op)."""
    kept = parallel.timer(60, 0, nothing, Canary())
    parallel.timer(60, 0, nothing, Canary())  # its Timer object is dropped at once
    parallel.timer(60, 60, nothing, Canary())  # periodic
    started = threading.Event()

    def arm_while_running():
        started.wait(30)
        time.sleep(0.2)
        parallel.timer(60, 0, nothing, Canary())

    threading.Thread(target=arm_while_running, daemon=True).start()

    class Echo:
        def connection_made(self, transport):
            started.set()
            return b'hello\n'

    return Echo, kept


# -- the route-name cache ----------------------------------------------------------------------

NAMES: list = []


def _hello(transport, data):
    return b'hello'


class Routes:
    """http11; records the name object the runtime looks a route up with."""

    http11 = True
    _routes = {'hello': _hello}

    def __getattribute__(self, name):
        if not NAMES:
            NAMES.append(name)
        # No type lookup with `name`: the type's attribute cache would keep a reference.
        route = Routes._routes.get(name)
        if route is None:
            raise AttributeError(name)
        return route


def route_name_refs() -> int:
    """References to the route name beyond the test's own, compared with a str made the
    same way and held the same way (the runtime's cache must be gone by now)."""
    control = [''.join(['hel', 'lo'])]
    return sys.getrefcount(NAMES[0]) - sys.getrefcount(control[0])


# -- submit_work racing run()'s return ---------------------------------------------------------

class Quiet:
    def data_received(self, transport, data):
        return data


class Early:
    """The first callbacks hand work to the other threads: 'submitted' (and 'worked' from
    the pool), or the refusal, which a runtime still starting its workers once gave."""

    def connection_made(self, transport):
        try:
            parallel.submit_work(say, 'WORKED')
        except parallel.ParallelError as e:
            return b'refused: %s\n' % str(e).encode()
        return b'submitted\n'


class SubmitCounts:
    def __init__(self):
        self.lock = threading.Lock()
        self.accepted = 0
        self.executed = 0
        self.refusal = ''

    def work(self):
        with self.lock:
            self.executed += 1


def hammer(counts: SubmitCounts, running: threading.Event) -> None:
    """submit_work from a threading thread until the runtime refuses it."""
    while not parallel.is_running():
        time.sleep(0.001)
    running.set()
    while True:
        for _ in range(50):
            try:
                parallel.submit_work(counts.work)
            except parallel.ParallelError as e:
                counts.refusal = f'{type(e).__name__}: {e}'
                return
            with counts.lock:
                counts.accepted += 1
        time.sleep(0.0005)


# -- transport methods from threading threads --------------------------------------------------

JOBS: queue.Queue = queue.Queue()
NAMED: dict = {}
LAST: list = []
PUSH_FILE = ''


class Push:
    """'push N': a threading thread sends N lines 'push I x' (sendfile: 'push I ' and a
    file holding 'x\\n'); 'name K': remember this transport as K; 'close K': a threading
    thread closes the transport named K; 'attrs': a thread reads transport attributes;
    'storm': a thread sends until the connection is gone."""

    def connection_made(self, transport):
        LAST[:] = [transport]
        return b'hello\n'

    def data_received(self, transport, data):
        cmd, _, arg = data.strip().decode().partition(' ')
        if cmd == 'push':
            JOBS.put(('push', transport, int(arg)))
            return None
        if cmd == 'name':
            NAMED[arg] = transport
            return b'named\n'
        if cmd == 'close':
            JOBS.put(('close', NAMED.pop(arg), 0))
            return b'closing\n'
        if cmd == 'attrs':
            JOBS.put(('attrs', transport, 0))
            return None
        if cmd == 'storm':
            JOBS.put(('storm', transport, 0))
            return None
        return b'unknown\n'


def pusher() -> None:
    while True:
        job = JOBS.get()
        if job is None:
            return
        what, transport, n = job
        try:
            if what == 'push':
                for i in range(n):
                    transport.sendfile(b'push %d ' % i, PUSH_FILE, None)
            elif what == 'close':
                transport.close()
                say('CLOSED-FROM-THREAD')
            elif what == 'attrs':
                try:
                    transport.peer
                    peer = 'ok'
                except parallel.ParallelError as e:
                    peer = type(e).__name__
                try:
                    transport.http_path
                    path = 'ok'
                except AttributeError as e:
                    path = type(e).__name__
                say('ATTRS', f'peer={peer}', f'http_path={path}', f'closed={transport.closed}')
                transport.sendfile(b'attrs done ', PUSH_FILE, None)
            elif what == 'storm':
                sent = 0
                try:
                    while sent < 100000:
                        transport.sendfile(b'storm %d ' % sent, PUSH_FILE, None)
                        sent += 1
                        if sent % 64 == 0:
                            time.sleep(0.001)
                    say('STORM-END limit', sent)
                except parallel.TransportClosedError:
                    say('STORM-END TransportClosedError')
        except Exception as e:  # the test reads this
            say('PUSHER-ERROR', what, type(e).__name__, e)


# -- call_from_main_thread from many workers at once ------------------------------------------

_main_calls = 0


def main_call() -> None:
    global _main_calls
    with _lock:
        _main_calls += 1


class MainCalls:
    """'main N': N call_from_main_thread; 'wait N': N call_from_main_thread_and_wait;
    'count': how many have run on the main thread."""

    def data_received(self, transport, data):
        cmd, _, arg = data.strip().decode().partition(' ')
        if cmd == 'main':
            for _ in range(int(arg)):
                parallel.call_from_main_thread(main_call)
            return b'queued\n'
        if cmd == 'wait':
            for _ in range(int(arg)):
                parallel.call_from_main_thread_and_wait(main_call)
            return b'waited\n'
        if cmd == 'count':
            with _lock:
                return b'count %d\n' % _main_calls
        return b'unknown\n'


# -- main ------------------------------------------------------------------------------------

def main() -> int:
    global PUSH_FILE
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=8080)
    ap.add_argument('--scenario', required=True,
                    choices=['timers', 'shutdown-timers', 'routes', 'submit', 'push',
                             'main-calls', 'early'])
    args = ap.parse_args()
    server = parallel.server(args.host, args.port)
    kept = None
    counts = running = hammer_thread = push_thread = None
    if args.scenario == 'timers':
        parallel.register(server, Timers)
    elif args.scenario == 'shutdown-timers':
        proto, kept = timers_at_shutdown()
        parallel.register(server, proto)
    elif args.scenario == 'routes':
        parallel.register(server, Routes)
    elif args.scenario == 'submit':
        parallel.register(server, Quiet)
        counts, running = SubmitCounts(), threading.Event()
        hammer_thread = threading.Thread(target=hammer, args=(counts, running))
        hammer_thread.start()
    elif args.scenario == 'main-calls':
        parallel.register(server, MainCalls)
    elif args.scenario == 'early':
        parallel.register(server, Early)
    elif args.scenario == 'push':
        fd, PUSH_FILE = tempfile.mkstemp(prefix='pp-push-')
        os.write(fd, b'x\n')
        os.close(fd)
        parallel.register(server, Push)
        push_thread = threading.Thread(target=pusher)
        push_thread.start()
    say('READY')
    parallel.run()
    say('RUN RETURNED')
    if args.scenario == 'shutdown-timers':
        gc.collect()
        say('AFTER canaries_alive=%d' % canaries_alive())
        kept.cancel()  # the runtime that armed it is gone: nothing to do, nothing to touch
        say('CANCEL-AFTER ok')
    elif args.scenario == 'routes':
        say('AFTER route_name_refs=%d' % (route_name_refs() if NAMES else -1))
    elif args.scenario == 'submit':
        hammer_thread.join(20)
        with counts.lock:
            say('SUBMIT accepted=%d executed=%d' % (counts.accepted, counts.executed))
        say('REFUSED', counts.refusal)
        try:
            parallel.submit_work(counts.work)
            say('LATE accepted')
        except parallel.ParallelError as e:
            say('LATE', f'{type(e).__name__}: {e}')
    elif args.scenario == 'push':
        JOBS.put(None)
        push_thread.join(20)
        try:
            LAST[0].sendfile(b'late ', PUSH_FILE, None)
            say('AFTER-RUN sent')
        except parallel.TransportClosedError:
            say('AFTER-RUN TransportClosedError')
        os.unlink(PUSH_FILE)
    return 0


if __name__ == '__main__':
    sys.exit(main())
