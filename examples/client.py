"""Client: ``parallel.client()`` runs the same protocol callbacks on an outgoing connection.

    ./pp run examples/hello.py --port 8080 &
    ./pp run examples/client.py [--host 127.0.0.1] [--port 8080] [--message hi]

Connects, sends ``--message`` as soon as the connection is made, prints what the server
sends back until the message comes back echoed (hello.py and echo.py both echo it), then
calls ``parallel.stop()``; exits 0, or 1 when no echo came within ``--timeout`` seconds.

Shows:
- ``client(host, port)`` + ``register()``: the protocol is the same kind of class as for a
  server; ``connection_made`` returning bytes sends them first;
- per-connection state on ``self`` (``self.received`` accumulates across callbacks);
- ``parallel.stop()`` from inside a callback ends ``run()``;
- ``parallel.timer()`` as a watchdog, and a ``threading.Event`` made by the main thread as
  the way a callback hands a result back to it.
"""
import argparse
import sys
import threading

import parallel

message = b'hi'  # set by main() before run()
echoed = threading.Event()


class Client:
    def connection_made(self, transport):
        self.received = b''
        return message + b'\r\n'

    def data_received(self, transport, data):
        self.received += data
        sys.stdout.write(data.decode('utf-8', 'replace'))
        sys.stdout.flush()
        if message in self.received:
            echoed.set()
            parallel.stop()

    def connection_lost(self, transport, exc):
        if not echoed.is_set():
            print(f'connection lost before the echo came back: {exc!r}', file=sys.stderr)
            parallel.stop()


def give_up(seconds: float) -> None:
    if not echoed.is_set():
        print(f'no echo within {seconds} s', file=sys.stderr)
        parallel.stop()


def main() -> int:
    global message
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=8080)
    ap.add_argument('--message', default='hi')
    ap.add_argument('--timeout', type=float, default=10.0)
    args = ap.parse_args()
    message = args.message.encode()

    client = parallel.client(args.host, args.port)
    parallel.register(transport=client, protocol=Client)
    parallel.timer(args.timeout, 0, give_up, args.timeout)
    parallel.run()
    return 0 if echoed.is_set() else 1


if __name__ == '__main__':
    sys.exit(main())
