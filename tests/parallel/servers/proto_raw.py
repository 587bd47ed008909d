"""Raw (non-HTTP) protocols for the callback tests; ``--protocol NAME`` picks one.

The line-oriented ones take one command per ``data_received`` (the tests send one line and
wait for its answer before sending the next). Anything a test must observe but cannot
read from the socket (connection_lost, exception_handler, timers, submit_work) is printed
to stdout with a tag.
"""
import argparse
import json
import os
import sys
import threading
import time

import parallel

MAIN_IDENT = threading.get_ident()

# Modules imported off the main thread, in order: an import on a worker holds that
# module's import lock while its code runs, and every other worker needing it waits.
WORKER_IMPORTS = []


def _record_worker_imports(event, args):
    if event == 'import' and threading.get_ident() != MAIN_IDENT:
        WORKER_IMPORTS.append(args[0])


sys.addaudithook(_record_worker_imports)


def say(*args) -> None:
    # One write per line: print() writes its arguments one by one, and lines printed by
    # two workers at once would interleave (the tests match whole lines).
    sys.stdout.write(' '.join(map(str, args)) + '\n')
    sys.stdout.flush()


def on_main(tag: str) -> None:
    say(tag, 'main' if threading.get_ident() == MAIN_IDENT else 'not-main')


class Greet1:
    """connection_made(self, transport)."""

    def connection_made(self, transport):
        return b'greet1\n'

    def data_received(self, transport, data):
        return b'got ' + data


class Greet2:
    """The seed's connection_made(self, transport, data)."""

    def connection_made(self, transport, data):
        return b'greet2 data=' + repr(data).encode() + b'\n'

    def data_received(self, transport, data):
        return b'got ' + data


class Initial:
    initial_bytes_to_send = b'initial\n'

    def data_received(self, transport, data):
        return b'got ' + data


def _initial() -> bytes:
    return b'initial-callable %d\n' % threading.get_ident()


class InitialCallable:
    initial_bytes_to_send = staticmethod(_initial)

    def data_received(self, transport, data):
        return b'got ' + data


class Types:
    """One command per line; answers with each Sendable type, or misbehaves on purpose."""

    def connection_made(self, transport):
        self.count = 0
        return None

    def data_received(self, transport, data):
        cmd, _, arg = data.strip().decode().partition(' ')
        if cmd == 'bytes':
            return b'bytes\n'
        if cmd == 'bytearray':
            return bytearray(b'bytearray\n')
        if cmd == 'memoryview':
            return memoryview(b'--memoryview\n--')[2:-2]
        if cmd == 'str':
            return 'str \u00fcn\u00efc\u00f6de \u2713\n'
        if cmd == 'none':
            return None
        if cmd == 'int':
            return 42
        if cmd == 'list':
            return [b'not', b'sendable']
        if cmd == 'raise':
            raise ValueError('boom from data_received')
        if cmd == 'worker-imports':
            return json.dumps(WORKER_IMPORTS) + '\n'
        if cmd == 'count':
            self.count += 1
            return b'count %d\n' % self.count
        if cmd == 'peer':
            return json.dumps(list(transport.peer)) + '\n'
        if cmd == 'thread':
            return b'parallel %d\n' % parallel.is_parallel_thread()
        if cmd == 'big':
            return b'x' * int(arg)
        if cmd == 'close':
            transport.close()
            return None
        return b'unknown ' + cmd.encode() + b'\n'


class TypesWithHandler(Types):
    def exception_handler(self, transport, exc):
        say('EXC', type(exc).__name__, str(exc).replace('\n', ' '))
        if isinstance(exc, TypeError):
            return None
        return b'handled ' + type(exc).__name__.encode() + b'\n'


class RaisingConnectionMade:
    def connection_made(self, transport):
        raise RuntimeError('boom from connection_made')

    def data_received(self, transport, data):
        return b'got ' + data


class SendComplete:
    def data_received(self, transport, data):
        self.pending = True
        return b'reply\n'

    def send_complete(self, transport, send_id):
        if getattr(self, 'pending', False):
            self.pending = False
            return b'complete %s %d\n' % (type(send_id).__name__.encode(), send_id)
        return None


class Lost:
    def connection_made(self, transport):
        self.peer = transport.peer
        return b'hi\n'

    def data_received(self, transport, data):
        return data

    def connection_lost(self, transport, exc):
        say('LOST', self.peer[1], type(exc).__name__ if exc is not None else 'None')


class Files:
    """'sendfile PATH', 'nobefore PATH', 'ranged PATH OFFSET N', 'alias PATH OFFSET N',
    'missing', 'pastend PATH' ."""

    def data_received(self, transport, data):
        cmd, *args = data.strip().decode().split(' ')
        if cmd == 'sendfile':
            transport.sendfile(b'<<', args[0], b'>>')
        elif cmd == 'nobefore':
            transport.sendfile(None, args[0], None)
        elif cmd == 'ranged':
            transport.ranged_sendfile(b'<<', args[0], b'>>', int(args[1]), int(args[2]))
        elif cmd == 'alias':
            transport.sendfile_ranged(b'[', args[0], b']', int(args[1]), int(args[2]))
        elif cmd == 'missing':
            try:
                transport.sendfile(b'<<', '/nonexistent/pyparallel-test', b'>>')
            except FileNotFoundError:
                return b'FileNotFoundError\n'
            return b'no exception\n'
        elif cmd == 'pastend':
            size = os.path.getsize(args[0])
            try:
                transport.ranged_sendfile(None, args[0], None, size + 10, 5)
            except ValueError:
                return b'ValueError\n'
            return b'no exception\n'
        else:
            return b'unknown\n'
        return None


class ModuleApi:
    def data_received(self, transport, data):
        cmd = data.strip().decode()
        if cmd == 'work':
            parallel.submit_work(pow, 2, 10, callback=lambda r: say('WORK', r))
            return b'submitted\n'
        if cmd == 'workerr':
            parallel.submit_work(int, 'not a number',
                                 errback=lambda e: say('ERRBACK', type(e).__name__))
            return b'submitted\n'
        if cmd == 'main':
            parallel.call_from_main_thread(on_main, 'MAINCALL')
            return b'queued\n'
        if cmd == 'mainwait':
            ident = parallel.call_from_main_thread_and_wait(threading.get_ident)
            return b'%s\n' % (b'main' if ident == MAIN_IDENT else b'not-main')
        if cmd == 'mainraise':
            try:
                parallel.call_from_main_thread_and_wait(int, 'x')
            except ValueError:
                return b'ValueError\n'
            return b'no exception\n'
        if cmd == 'timer':
            parallel.timer(0.2, 0, say, 'TIMER', 'fired')
            return b'armed %.3f\n' % time.monotonic()
        if cmd == 'stats':
            return json.dumps(parallel.stats()) + '\n'
        if cmd == 'stop':
            parallel.stop()
            return b'stopping\n'
        return b'unknown\n'


PROTOCOLS = {c.__name__: c for c in (Greet1, Greet2, Initial, InitialCallable, Types,
                                      TypesWithHandler, RaisingConnectionMade, SendComplete,
                                      Lost, Files, ModuleApi)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=8080)
    ap.add_argument('--protocol', required=True, choices=sorted(PROTOCOLS))
    ap.add_argument('--run-workers', type=int, default=None,
                    help='pass workers= to parallel.run() (default: the host option)')
    args = ap.parse_args()
    server = parallel.server(args.host, args.port)
    parallel.register(transport=server, protocol=PROTOCOLS[args.protocol])
    say('READY')
    if args.run_workers is None:
        parallel.run()
    else:
        parallel.run(workers=args.run_workers)
    say('RUN RETURNED')
    return 0


if __name__ == '__main__':
    sys.exit(main())
