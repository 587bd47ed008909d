"""TechEmpower Framework Benchmarks' plaintext and JSON tests on ``http11``.

    ./pp run examples/tefb.py [--host 0.0.0.0] [--port 8080]
    curl localhost:8080/plaintext       # Hello, World!
    curl localhost:8080/json            # {"message": "Hello, World!"}

Shows:
- ``http11 = True``: the runtime parses HTTP/1.1 (keep-alive and pipelining included) and
  routes ``GET /plaintext`` to ``plaintext(self, transport, data)``;
- the return type picks the response: ``bytes`` -> text/plain, ``dict`` -> JSON; the
  runtime adds Date, Server and Content-Length;
- a handler that touches no shared state scales with workers for free.
See bench/python_servers.py for this server against uvloop, aiohttp and nginx.
"""
import argparse

import parallel


class TEFB:
    http11 = True

    def plaintext(self, transport, data):
        return b'Hello, World!'

    def json(self, transport, data):
        return {'message': 'Hello, World!'}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--host', default='0.0.0.0')
    ap.add_argument('--port', type=int, default=8080)
    args = ap.parse_args()

    server = parallel.server(args.host, args.port)
    parallel.register(transport=server, protocol=TEFB)
    print(f'TEFB server at http://{args.host}:{args.port}/plaintext and /json', flush=True)
    parallel.run()


if __name__ == '__main__':
    main()
