"""A seeded fuzzer of the `parallel` API, run by test_pp_api_fuzz.py (and by hand to replay
a failure: the seed is printed first).

    pyparallel --workers 2 api_fuzz_server.py --seed 7 --seconds 3 --port 8080

From the seed it builds a random configuration: several servers (the one on ``--port`` is
http11 and always answers ``GET /ping`` with ``pong``; the others, on ports it prints,
get random raw or http11 protocol classes), clients connecting to its own servers (and
one to a port nobody listens on), timers made before ``run()`` (one-shot, repeating,
cancelled), and random ``run()`` limit keywords. While it serves, every callback --
connection_made, data_received, http11 routes, send_complete, connection_lost,
exception_handler, timers, submit_work functions, callbacks and errbacks,
call_from_main_thread functions -- does random things:

- calls the API: submit_work (with callbacks/errbacks that may raise),
  call_from_main_thread[_and_wait], timer / Timer.cancel, stats, transport.sendfile
  (good, missing, bad range), transport.close, transport.peer / http_* attributes;
- hands its transport to other threads, which close it (and call sendfile on it);
- returns a random value (bytes, str, dict, list, None, int, odd objects, huge values,
  a Response, a file, objects whose buffer protocol raises ...) or raises a random
  exception.

A ``threading`` thread does the same from outside the runtime (and pokes the servers with
sockets), then calls ``parallel.stop()`` after ``--seconds``.

Leak check: every action passes its own module-level sentinel (a ``Payload``) and a fresh
``Payload``; callbacks are instances of small classes. ``sys.getrefcount`` of each
sentinel and callback object, and the number of live objects of this script's types
(``gc.get_objects()``), are compared before ``run()`` and after it returns (its threads
joined, our own lists emptied, ``gc.unfreeze()`` + ``gc.collect()``). Functions and
classes cannot be checked by refcount on the free-threaded 3.13 build (they become
immortal once a second thread starts), hence the instances. Those define ``__del__``: run()
makes what exists when it starts immortal (``share_main_data``), except objects with a
finalizer, so the counted objects stay mortal and their counts stay meaningful.

The last line of stdout is ``FUZZ_SUMMARY {json}``: the seed, actions per kind, leaks and
unexpected errors (API calls that raised something other than the errors they document).
"""
import argparse
import collections
import errno
import gc
import json
import os
import random
import socket
import struct
import sys
import threading
import time

import parallel

SEED = 0
HOST = '127.0.0.1'
FILE = os.path.realpath(__file__)
FILE_SIZE = os.path.getsize(FILE)
MAIN_IDENT = threading.get_ident()

# Imports made off the main thread (the chaos thread's excepted): one on a worker holds
# every worker that needs the module meanwhile, which showed as seconds without answers.
WORKER_IMPORTS = []


def _record_worker_imports(event, args):
    if event == 'import' and threading.current_thread().name != 'chaos' \
            and threading.get_ident() != MAIN_IDENT:
        WORKER_IMPORTS.append(args[0])


sys.addaudithook(_record_worker_imports)
PORTS = []  # every server's port, the --port one first
ROUTES = ('index', 'a', 'b', 'c')
MAX_DEPTH = 3  # nested actions (a submit_work function doing actions, ...)

# What callbacks leave for other threads; emptied before the leak check.
TRANSPORTS = collections.deque(maxlen=64)
TIMERS = collections.deque(maxlen=32)
HELPERS = []  # helper threads (closing transports), joined before the leak check
HELPER_SLOTS = threading.BoundedSemaphore(8)
STOPPING = threading.Event()
LATE_TIMERS = []  # timers the chaos thread made after stop(): see chaos()


# -- bookkeeping ---------------------------------------------------------------------------

class Tally:
    """Counts per action kind, and unexpected errors (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.unexpected = []

    def add(self, kind, n=1):
        with self.lock:
            self.counts[kind] += n

    def bad(self, where, exc):
        try:
            detail = str(exc)
        except Exception:
            detail = '<str() failed>'
        text = f'{where}: {type(exc).__name__}: {detail}'[:500]
        with self.lock:
            self.counts['unexpected'] += 1
            if len(self.unexpected) < 50:
                self.unexpected.append(text)
        print('UNEXPECTED', text, flush=True)


TALLY = Tally()
_local = threading.local()


def rng():
    """A per-thread random.Random derived from the seed."""
    r = getattr(_local, 'rng', None)
    if r is None:
        r = _local.rng = random.Random(f'{SEED}-{threading.current_thread().name}-'
                                       f'{threading.get_ident()}')
    return r


# -- the objects whose references are counted ---------------------------------------------

class Payload:
    """A marker passed around by the actions: module-level sentinels (refcount checked)
    and fresh ones (one per action; all must be gone after run())."""

    def __init__(self, kind):
        self.kind = kind

    def __repr__(self):
        return f'Payload({self.kind!r})'

    def __del__(self):
        pass  # a finalizer keeps the sentinels mortal under run(): see the module docstring


KINDS = ('submit_work', 'callback', 'errback', 'call_main', 'call_main_wait', 'timer',
         'return', 'raise', 'response', 'protocol', 'handoff', 'chaos', 'client')
SENTINELS = {kind: Payload(kind) for kind in KINDS}


def S(kind):
    return SENTINELS[kind]


class FuzzError(Exception):
    """Raised on purpose."""


class BadStrError(Exception):
    """An exception whose str() raises (the traceback printer must cope)."""

    def __str__(self):
        raise RuntimeError('BadStrError.__str__ raises')


class Odd:
    """An object of no type the runtime knows."""

    def __init__(self, payload):
        self.payload = payload


class BytesSub(bytes):
    pass


class StrSub(str):
    pass


class GoodBuffer:
    """A Python-level buffer provider (PEP 688)."""

    def __buffer__(self, flags):
        return memoryview(b'python-level buffer\n')


class RaisingBuffer:
    def __buffer__(self, flags):
        raise FuzzError(S('return'))


class Created(parallel.Response):
    def __new__(cls, body):
        return super().__new__(cls, body, status=201, headers={'X-Fuzz': 'subclass'})


class Action:
    """A callable object (not a function: its refcount stays measurable) that the API
    calls back: a submit_work function, callback or errback, a main-thread function or
    a timer function."""

    def __init__(self, kind):
        self.kind = kind

    def __del__(self):
        pass  # keeps the instances mortal under run(), as Payload's

    def __call__(self, *args):
        TALLY.add('ran ' + self.kind)
        depth = args[-1] if args and isinstance(args[-1], int) else MAX_DEPTH
        r = rng()
        if self.kind in ('call_main', 'call_main_wait'):
            # From a worker, from the threading threads, from the main thread itself:
            # always on the main thread.
            if threading.get_ident() != MAIN_IDENT:
                TALLY.bad(self.kind, RuntimeError(f'ran off the main thread (called from '
                                                  f'{args[-2] if len(args) >= 3 else "?"})'))
            elif len(args) >= 3 and args[-2] == 'chaos':
                TALLY.add(f'ran {self.kind} from chaos')
        if self.kind == 'errback' and not (args and isinstance(args[0], BaseException)):
            TALLY.bad('errback', TypeError(f'errback got {args[:1]!r}'))
        if depth < MAX_DEPTH and r.random() < 0.3:
            side_actions(self.kind, None, depth + 1)
        if r.random() < 0.02:
            time.sleep(r.uniform(0, 0.005))
        if r.random() < 0.25:
            raise random_exception(self.kind)
        return random_value(self.kind)


WORK = Action('work')
CALLBACK = Action('callback')
ERRBACK = Action('errback')
MAIN_FN = Action('call_main')
MAIN_WAIT_FN = Action('call_main_wait')
TIMER_FN = Action('timer')
ACTIONS = {a.kind: a for a in (WORK, CALLBACK, ERRBACK, MAIN_FN, MAIN_WAIT_FN, TIMER_FN)}


# -- random values and exceptions ---------------------------------------------------------

def deep_list(n):
    x = []
    for _ in range(n):
        x = [x]
    return x


def self_referencing(kind):
    d = {'payload': S(kind)}
    d['self'] = d
    return d


def released_view():
    m = memoryview(b'released')
    m.release()
    return m


def random_response(kind):
    r = rng()
    body = r.choice([b'resp\n', 'resp \u00e9', {'k': 1}, [1, 2], None, S(kind), Odd(S(kind)),
                     b'y' * r.choice([0, 1, 65536]), '\ud800'])
    headers = r.choice([None, {}, {'X-A': 'b'}, {'X-N': 5}, {'X-Bad': 'a\r\nInjected: 1'},
                        {'Bad:Name': 'v'}, {5: 'non-str name'}, {'X-P': S(kind)}])
    status = r.choice([200, 201, 204, 304, 404, 500, 599, 100])
    ctype = r.choice([None, 'text/x-fuzz', 'application/json'])
    return parallel.Response(body, status=status, headers=headers, content_type=ctype)


VALUES = [
    lambda k: b'bytes\n',
    lambda k: 'str \u00e9\u2713\n',
    lambda k: bytearray(b'bytearray\n'),
    lambda k: memoryview(b'--memoryview\n--')[2:-2],
    lambda k: None,
    lambda k: 42,
    lambda k: 10 ** 400,
    lambda k: float('nan'),
    lambda k: {'k': [1, 2, {'n': None}], 'f': 1.5},
    lambda k: [1, 'two', None],
    lambda k: (b'a', b'b'),
    lambda k: {'payload': S(k)},
    lambda k: [S(k), Payload('fresh')],
    lambda k: {1: 'int key', (1, 2): 'tuple key'},
    lambda k: Odd(S(k)),
    lambda k: S(k),
    lambda k: object(),
    lambda k: Payload,
    lambda k: print,
    lambda k: (x for x in (S(k),)),
    lambda k: BytesSub(b'bytes subclass\n'),
    lambda k: StrSub('str subclass\n'),
    lambda k: 'lone surrogate \ud800\n',
    lambda k: memoryview(b'abcdef')[::2],
    lambda k: released_view(),
    lambda k: GoodBuffer(),
    lambda k: RaisingBuffer(),
    lambda k: deep_list(20000),
    lambda k: self_referencing(k),
    lambda k: FuzzError('returned, not raised', S(k)),
    lambda k: NotImplemented,
    lambda k: random_response(k),
    lambda k: Created(b'created\n'),
    lambda k: parallel.file(FILE),
    lambda k: parallel.file(FILE, 'text/x-python'),
    lambda k: parallel.file('/nonexistent/pyparallel-fuzz'),
]
HUGE_VALUES = [
    lambda k: b'h' * (4 << 20),
    lambda k: '\u00e9' * (1 << 20),
    lambda k: {'list': list(range(200000))},
]


def random_value(kind):
    r = rng()
    TALLY.add('return')
    if r.random() < 0.01:
        TALLY.add('return huge')
        return r.choice(HUGE_VALUES)(kind)
    return r.choice(VALUES)(kind)


def _recurse(n):
    return _recurse(n + 1)


def random_exception(kind):
    r = rng()
    TALLY.add('raise')
    choice = r.randrange(12)
    if choice == 0:
        return ValueError('fuzz value error')
    if choice == 1:
        return KeyError(S(kind))
    if choice == 2:
        try:
            1 / 0
        except ZeroDivisionError as e:
            return e
    if choice == 3:
        try:
            _recurse(0)
        except RecursionError as e:
            return e
    if choice == 4:
        return BadStrError()
    if choice == 5:
        return ExceptionGroup('fuzz group', [ValueError(1), FuzzError(S(kind))])
    if choice == 6:
        try:
            raise ValueError('cause')
        except ValueError as cause:
            e = FuzzError('chained', S(kind))
            e.__cause__ = cause
            return e
    if choice == 7:
        return OSError(errno.ECONNRESET, 'fuzz reset')
    if choice == 8:
        return parallel.TransportClosedError('not really closed')
    if choice == 9:
        return MemoryError('fuzz: not really out of memory')
    if choice == 10:
        return FuzzError('x' * 100000)
    return FuzzError(S(kind), Payload('fresh'))


# -- actions --------------------------------------------------------------------------------

def guarded(what, fn, expected=()):
    """Runs one API call; documented errors (and ParallelError once stopping) are fine,
    anything else is recorded as unexpected."""
    TALLY.add(what)
    try:
        return fn()
    except expected:
        TALLY.add(what + ' (expected error)')
    except parallel.ParallelError as e:
        if STOPPING.is_set() or 'stopping' in str(e) or 'not running' in str(e):
            TALLY.add(what + ' (stopping)')
        else:
            TALLY.bad(what, e)
    except Exception as e:
        TALLY.bad(what, e)
    return None


def do_submit_work(kind, depth):
    r = rng()
    cb = r.choice([CALLBACK, None])
    eb = r.choice([ERRBACK, None])
    guarded('submit_work', lambda: parallel.submit_work(
        WORK, S('submit_work'), Payload('fresh'), depth, callback=cb, errback=eb))


def caller():
    return 'main' if threading.get_ident() == MAIN_IDENT else threading.current_thread().name


def do_call_main(kind, depth):
    # Queued for the main thread from every other thread; run at once on the main thread
    # itself, where an exception of MAIN_FN propagates.
    on_main = threading.get_ident() == MAIN_IDENT
    guarded('call_main', lambda: parallel.call_from_main_thread(
        MAIN_FN, S('call_main'), Payload('fresh'), caller(), depth),
        expected=(Exception,) if on_main else ())


def do_call_main_wait(kind, depth):
    if depth >= MAX_DEPTH:
        return
    guarded('call_main_wait', lambda: parallel.call_from_main_thread_and_wait(
        MAIN_WAIT_FN, S('call_main_wait'), Payload('fresh'), caller(), depth),
        expected=(Exception,))  # MAIN_WAIT_FN raises on purpose; it comes back here


def do_timer(kind, depth):
    r = rng()
    period = r.choice([0, 0, 0, 0.05, 0.2])
    t = guarded('timer', lambda: parallel.timer(r.uniform(0, 0.3), period, TIMER_FN,
                                                S('timer'), Payload('fresh'), depth))
    if t is None:
        return
    if kind == 'chaos' and STOPPING.is_set():
        LATE_TIMERS.append(t)  # see chaos(): perhaps made after run() returned
    if r.random() < 0.3:
        guarded('timer cancel', t.cancel)
    elif period:
        if len(TIMERS) == TIMERS.maxlen:
            try:
                old = TIMERS.popleft()
            except IndexError:
                old = None
            if old is not None:
                guarded('timer cancel', old.cancel)
        TIMERS.append(t)


def do_cancel_timer(kind, depth):
    try:
        t = TIMERS.popleft()
    except IndexError:
        return
    guarded('timer cancel', t.cancel)


def do_stats(kind, depth):
    s = guarded('stats', parallel.stats)
    if s is not None and not isinstance(s.get('workers'), list):
        TALLY.bad('stats', TypeError(f'stats() = {s!r}'))


def do_close(kind, depth, transport):
    guarded('close', transport.close)


def do_handoff(kind, depth, transport):
    TALLY.add('handoff')
    TRANSPORTS.append(transport)


def close_later(transport, delay, also_send):
    try:
        time.sleep(delay)
        if also_send:
            guarded('thread sendfile', lambda: transport.sendfile(b'<', FILE, b'>'),
                    expected=(parallel.TransportClosedError, OSError))
        guarded('thread close', transport.close)
        closed = transport.closed
        if not isinstance(closed, bool):
            TALLY.bad('thread closed', TypeError(f'closed = {closed!r}'))
    finally:
        HELPER_SLOTS.release()


def do_thread_close(kind, depth, transport):
    if STOPPING.is_set() or not HELPER_SLOTS.acquire(blocking=False):
        return
    r = rng()
    t = threading.Thread(target=close_later, name='closer',
                         args=(transport, r.uniform(0, 0.02), r.random() < 0.3), daemon=True)
    HELPERS.append(t)
    t.start()


def do_sendfile(kind, depth, transport):
    r = rng()
    choice = r.randrange(4)
    if choice == 0:
        guarded('sendfile', lambda: transport.sendfile(b'[', FILE, b']'),
                expected=(parallel.TransportClosedError,))
    elif choice == 1:
        guarded('sendfile', lambda: transport.sendfile(None, '/nonexistent/fuzz', None),
                expected=(FileNotFoundError,))
    elif choice == 2:
        off = r.randrange(FILE_SIZE + 10)
        n = r.randrange(FILE_SIZE + 10)
        guarded('sendfile', lambda: transport.ranged_sendfile(b'', FILE, b'', off, n),
                expected=(ValueError, parallel.TransportClosedError))
    else:
        guarded('sendfile', lambda: transport.sendfile(Odd(S(kind)), FILE, None),
                expected=(TypeError,))


def do_attributes(kind, depth, transport):
    def read():
        for name in ('closed', 'peer', 'http_method', 'http_path', 'http_query',
                     'http_version', 'http_headers'):
            try:
                getattr(transport, name)
            except (AttributeError, parallel.ParallelError, OSError):
                pass
    guarded('attributes', read)


PLAIN_ACTIONS = [do_submit_work, do_call_main, do_call_main_wait, do_timer, do_cancel_timer,
                 do_stats]
TRANSPORT_ACTIONS = [do_close, do_handoff, do_thread_close, do_sendfile, do_attributes]


def side_actions(kind, transport, depth=0):
    """Zero to three random API calls from wherever we are."""
    r = rng()
    for _ in range(r.choice([0, 0, 1, 1, 2, 3])):
        if transport is not None and r.random() < 0.35:
            w = r.random()
            # Closing is common enough to matter, rare enough to leave traffic flowing.
            fn = r.choice(TRANSPORT_ACTIONS[1:] if w < 0.7 else TRANSPORT_ACTIONS)
            fn(kind, depth, transport)
        else:
            r.choice(PLAIN_ACTIONS)(kind, depth)


def outcome(kind, sane):
    """What a callback ends with: a sane value, a random one, or an exception."""
    r = rng()
    x = r.random()
    if x < 0.4:
        return sane
    if x < 0.8:
        return random_value(kind)
    raise random_exception(kind)


# -- protocols ---------------------------------------------------------------------------

def p_connection_made(self, transport):
    TALLY.add('connection_made')
    self.payload = Payload('fresh')
    self.sentinel = S('protocol')
    self.sent = 0
    side_actions('protocol', transport)
    return outcome('protocol', b'hello\n')


def p_connection_made_seed(self, transport, data):
    if data != b'':
        TALLY.bad('connection_made', ValueError(f'data = {data!r}'))
    return p_connection_made(self, transport)


def p_data_received(self, transport, data):
    TALLY.add('requests')
    if not isinstance(data, bytes):
        TALLY.bad('data_received', TypeError(f'data is {type(data).__name__}'))
    side_actions('protocol', transport)
    return outcome('protocol', b'got %d\n' % len(data))


def p_route(self, transport, data):
    TALLY.add('requests')
    side_actions('protocol', transport)
    return outcome('protocol', b'route ' + transport.http_path.encode() + b'\n')


def p_ping(self, transport, data):
    TALLY.add('pings')
    return b'pong'


def p_send_complete(self, transport, send_id):
    TALLY.add('send_complete')
    if not isinstance(send_id, int):
        TALLY.bad('send_complete', TypeError(f'send_id = {send_id!r}'))
    self.sent = getattr(self, 'sent', 0) + 1
    if self.sent > 3:  # a value returned here is sent, and completes again: bounded
        return None
    if rng().random() < 0.3:
        side_actions('protocol', transport)
    return outcome('protocol', None)


def p_connection_lost(self, transport, exc):
    TALLY.add('connection_lost')
    if exc is not None and not isinstance(exc, OSError):
        TALLY.bad('connection_lost', TypeError(f'exc = {exc!r}'))
    if rng().random() < 0.3:
        side_actions('protocol', None)
    if rng().random() < 0.2:
        raise random_exception('protocol')


def p_exception_handler(self, transport, exc):
    TALLY.add('exception_handler')
    if not isinstance(exc, BaseException):
        TALLY.bad('exception_handler', TypeError(f'exc = {exc!r}'))
    return outcome('protocol', b'handled\n')


def initial_callable():
    return b'initial from a callable\n'


def initial_raising():
    raise FuzzError(S('protocol'))


def make_protocol(r, name, http11, main=False, every=False):
    """A protocol class with a random subset of the callbacks (``every``: all of them)."""
    ns = {'__module__': __name__}
    if http11:
        ns['http11'] = True
        for route in ROUTES:
            ns[route] = p_route
        ns['ping'] = p_ping
    if not main:  # the --port server stays answerable: its connections start clean
        if every or r.random() < 0.6:
            ns['connection_made'] = r.choice([p_connection_made, p_connection_made_seed])
        if not every and r.random() < 0.3:  # a bad one skips connection_made
            ns['initial_bytes_to_send'] = r.choice(
                [b'initial\n', 'initial str\n', staticmethod(initial_callable),
                 staticmethod(initial_raising), 42])
    if not http11 or r.random() < 0.3:
        ns['data_received'] = p_data_received
    if not main and (every or r.random() < 0.5):  # its value would follow /ping's answer
        ns['send_complete'] = p_send_complete
    if every or r.random() < 0.7:
        ns['connection_lost'] = p_connection_lost
    if not main and (every or r.random() < 0.5):
        ns['exception_handler'] = p_exception_handler
    return type(name, (), ns)


class ClientProto:
    """Talks to one of our own servers: a line, then a line per answer (paced)."""

    def connection_made(self, transport):
        TALLY.add('client connected')
        self.sentinel = S('client')
        return b'client hello\n'

    def data_received(self, transport, data):
        TALLY.add('client data')
        if rng().random() < 0.2:
            side_actions('client', transport)
        time.sleep(0.01)
        return b'again\n'

    def connection_lost(self, transport, exc):
        TALLY.add('client lost')


# -- the thread outside the runtime -------------------------------------------------------

def poke(r):
    """A plain socket to one of our servers: random bytes or a request, a short read."""
    port = r.choice(PORTS)
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as s:
            if r.random() < 0.5:
                s.sendall(r.randbytes(r.randrange(1, 2048)))
            else:
                path = r.choice(['/', '/a', '/b/x', '/c?q', '/ping', '/nope', '/_p',
                                 '/connection_made'])
                s.sendall(f'GET {path} HTTP/1.1\r\nHost: fuzz\r\n\r\n'.encode())
            try:
                s.recv(4096)
            except OSError:
                pass
            if r.random() < 0.3:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    except OSError:
        pass
    TALLY.add('chaos poke')


def chaos(seconds, ready):
    """Random actions from a thread the runtime does not own; stop() after `seconds`."""
    try:
        _chaos(seconds, ready)
    finally:
        STOPPING.set()
        parallel.stop()
    # Shutdown is a race of its own: keep calling the API (ParallelError is the expected
    # answer now) until run() has returned.
    r = rng()
    deadline = time.monotonic() + 5
    while parallel.is_running() and time.monotonic() < deadline:
        TALLY.add('chaos after stop')
        try:
            transport = TRANSPORTS.popleft()
        except IndexError:
            transport = None
        if transport is not None:
            guarded('chaos close', transport.close)
        r.choice(PLAIN_ACTIONS)('chaos', 0)
        time.sleep(0.001)
    # Its last call may have come after run() returned (is_running() was still true just
    # before): a timer made then is, as documented, waiting for the next run() and holds
    # its arguments until then -- this script makes none, so it lets go of those here.
    # Cancelling cannot release anything else: a timer the run armed is not cancelled
    # after the run (its loop is gone), so one it failed to release still shows as a leak.
    for t in LATE_TIMERS:
        t.cancel()
    LATE_TIMERS.clear()


def _chaos(seconds, ready):
    r = rng()
    ready.wait()
    deadline = time.monotonic() + 10
    while not parallel.is_running() and time.monotonic() < deadline:
        if STOPPING.is_set():
            return  # run() failed (e.g. a port taken): nothing to poke
        time.sleep(0.005)
    end = time.monotonic() + seconds
    # Each kind once up front, so that every run covers them all.
    for fn in PLAIN_ACTIONS:
        fn('chaos', 0)
    while time.monotonic() < end:
        x = r.random()
        if x < 0.3:
            try:
                transport = TRANSPORTS.popleft()
            except IndexError:
                transport = None
            if transport is not None:
                TALLY.add('chaos close')
                guarded('chaos close', transport.close)
        elif x < 0.4:
            poke(r)
        else:
            r.choice(PLAIN_ACTIONS)('chaos', 0)
        time.sleep(r.uniform(0, 0.004))


# -- set-up, run, leak check -------------------------------------------------------------

_KEPT = []


def inject_leak(payload):
    """--inject-leak: what a runtime that kept callback arguments would look like."""
    _KEPT.extend([payload, Payload('fresh')])


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def own_objects():
    """Live objects of this script's types, by type name (gc-tracked ones)."""
    mine = (Payload, Odd, FuzzError, BadStrError, Action, GoodBuffer, RaisingBuffer,
            parallel.Response)
    counts = collections.Counter()
    for o in gc.get_objects():
        t = type(o)
        if isinstance(o, mine) or getattr(t, '__module__', None) == __name__ and (
                t.__name__.startswith('Proto') or t is ClientProto):
            counts[t.__qualname__] += 1
    return counts


def refcounts():
    out = {f'sentinel {k}': sys.getrefcount(v) for k, v in SENTINELS.items()}
    out.update({f'action {k}': sys.getrefcount(v) for k, v in ACTIONS.items()})
    return out


def main():
    global SEED, HOST
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=8080)
    ap.add_argument('--seed', type=int, default=int(os.environ.get('PP_FUZZ_SEED', '0')))
    ap.add_argument('--seconds', type=float, default=3.0)
    ap.add_argument('--run-workers', type=int, default=None)
    ap.add_argument('--inject-leak', action='store_true',
                    help='keep references on purpose (the test checks the check)')
    args = ap.parse_args()
    SEED, HOST = args.seed, args.host
    print('SEED', SEED, flush=True)
    r = random.Random(SEED)

    # Servers: the --port one (http11, /ping) and one to three more.
    main_server = parallel.server(HOST, args.port)
    parallel.register(transport=main_server, protocol=make_protocol(r, 'ProtoMain', True,
                                                                    main=True))
    servers = [main_server]
    kinds = []
    for i in range(r.randint(1, 3)):
        http11 = r.random() < 0.5
        kinds.append('http11' if http11 else 'raw')
        s = parallel.server(HOST, free_port())
        # The first has every callback, so that each run calls them all.
        parallel.register(transport=s, protocol=make_protocol(r, f'Proto{i}', http11,
                                                              every=i == 0))
        servers.append(s)
    PORTS.extend(s.port for s in servers)
    # Clients: to our own servers, and one to a port nobody listens on.
    clients = []
    for _ in range(r.randint(1, 3)):
        c = parallel.client(HOST, r.choice(PORTS[1:]))
        parallel.register(transport=c, protocol=ClientProto)
        clients.append(c)
    c = parallel.client(HOST, free_port())
    parallel.register(transport=c, protocol=ClientProto)
    clients.append(c)
    print('PORTS', json.dumps(PORTS), flush=True)

    limits = {}
    for name, values in (('header_timeout', [0.5, 2, 60]), ('keepalive_timeout', [0.5, 5, 75]),
                         ('send_timeout', [1, 60]), ('max_body', [1024, '1m']),
                         ('max_connections', [0, 256])):
        if r.random() < 0.5:
            limits[name] = r.choice(values)

    ready = threading.Event()
    chaos_thread = threading.Thread(target=chaos, args=(args.seconds, ready), name='chaos')
    chaos_thread.start()  # before the baseline: thread start-up immortalizes some objects

    gc.collect()
    refs_before = refcounts()
    objects_before = own_objects()

    # Timers made before run(): they start with it and must be released by its end.
    for _ in range(r.randint(2, 6)):
        period = r.choice([0, 0.05, 0.5])
        t = parallel.timer(r.uniform(0, 0.5), period, TIMER_FN, S('timer'), Payload('fresh'), 0)
        if r.random() < 0.25:
            t.cancel()
        else:
            TIMERS.append(t)
    del t
    if args.inject_leak:
        parallel.timer(0.05, 0, inject_leak, S('timer'))

    print('CONFIG', json.dumps({'servers': kinds, 'clients': len(clients), 'limits': limits,
                                'workers': args.run_workers}), flush=True)
    ready.set()
    started = time.monotonic()
    try:
        if args.run_workers is None:
            parallel.run(**limits)
        else:
            parallel.run(workers=args.run_workers, **limits)
    finally:
        STOPPING.set()
        ready.set()
    elapsed = time.monotonic() - started
    print('RUN RETURNED', flush=True)

    chaos_thread.join(15)
    for h in list(HELPERS):
        h.join(5)
    alive = [t.name for t in [chaos_thread, *HELPERS] if t.is_alive()]
    HELPERS.clear()
    TRANSPORTS.clear()
    TIMERS.clear()
    gc.unfreeze()  # run() froze what existed before it: count those objects too
    for _ in range(3):
        gc.collect()
    refs_after = refcounts()
    objects_after = own_objects()

    leaks = []
    for k, before in refs_before.items():
        if refs_after[k] != before:
            leaks.append({'what': k, 'before': before, 'after': refs_after[k]})
    for k in sorted(set(objects_before) | set(objects_after)):
        if objects_after[k] > objects_before[k]:
            leaks.append({'what': f'live {k} objects', 'before': objects_before[k],
                          'after': objects_after[k]})
    counts = dict(sorted(TALLY.counts.items()))
    summary = {'seed': SEED, 'workers': args.run_workers, 'seconds': round(elapsed, 2),
               'servers': kinds, 'clients': len(clients), 'limits': limits,
               'counts': counts, 'leaks': leaks, 'unexpected': TALLY.unexpected,
               'threads_alive': alive, 'worker_imports': sorted(set(WORKER_IMPORTS)),
               'objects_before': dict(objects_before),
               'objects_after': dict(objects_after)}
    print('FUZZ_SUMMARY ' + json.dumps(summary, default=str), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
