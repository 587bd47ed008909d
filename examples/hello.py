"""Hello: the seed's first example, as written there but for ``import parallel``.

    ./pp run examples/hello.py [--host 0.0.0.0] [--port 8080]
    printf 'hi\\n' | nc -q1 localhost 8080      # Hello, World! / You said: hi

Shows:
- a protocol is a plain class; the runtime makes one instance per connection;
- ``connection_made`` returns what to send as soon as a client connects (the seed's
  ``(transport, data)`` signature is accepted as it stands);
- ``data_received`` returns the reply: callbacks never call write(), they return bytes;
- every callback runs on the engine's worker threads, in parallel, with no locks here.
"""
import argparse

import parallel


class Hello:
    def connection_made(self, transport, data):
        return b'Hello, World!\r\n'

    def data_received(self, transport, data):
        return b'You said: ' + data + b'\r\n'


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--host', default='0.0.0.0')
    ap.add_argument('--port', type=int, default=8080)
    args = ap.parse_args()

    server = parallel.server(args.host, args.port)
    parallel.register(transport=server, protocol=Hello)
    print(f'Hello server listening on {args.host}:{args.port}', flush=True)
    parallel.run()


if __name__ == '__main__':
    main()
