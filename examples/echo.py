"""Echo: a raw (non-HTTP) protocol that sends back every byte it receives.

    ./pp run examples/echo.py [--host 0.0.0.0] [--port 8080]

Shows:
- the smallest useful protocol: ``data_received`` returns its argument;
- ``data`` is whatever the kernel delivered (a stream, not messages): echo does not care
  where one write of the client ends and the next begins;
- ``bytes`` in, ``bytes`` out: the returned object is queued for sending as it is, and
  the next ``data_received`` for this connection only runs after this one returned.
"""
import argparse

import parallel


class Echo:
    def data_received(self, transport, data):
        return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--host', default='0.0.0.0')
    ap.add_argument('--port', type=int, default=8080)
    args = ap.parse_args()

    server = parallel.server(args.host, args.port)
    parallel.register(transport=server, protocol=Echo)
    print(f'Echo server listening on {args.host}:{args.port}', flush=True)
    parallel.run()


if __name__ == '__main__':
    main()
