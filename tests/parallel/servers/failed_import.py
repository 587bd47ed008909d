"""The `parallel` module's first import fails part-way (``json``, which it imports, is
blocked); a second import must build the module afresh and work: an http11 route that
returns a dict is answered with JSON (json.dumps is among what the import makes).

Prints ``FIRST failed``, then ``RESPONSE <status> <body>`` from a request to itself.
"""
import http.client
import socket
import sys
import threading

sys.modules['json'] = None  # `import json` raises
try:
    import parallel  # noqa: F401 -- the failing import is the point
    print('FIRST imported', flush=True)
except Exception:  # noqa: BLE001 -- SystemError wrapping the ModuleNotFoundError
    print('FIRST failed', flush=True)
del sys.modules['json']
import parallel  # noqa: E402


class Routes:
    http11 = True

    def index(self, transport, data):
        return {'json': True}


def main() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    parallel.register(transport=parallel.server('127.0.0.1', port), protocol=Routes)

    def client():
        try:
            c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
            c.request('GET', '/')
            r = c.getresponse()
            print('RESPONSE', r.status, r.read().decode(), flush=True)
        finally:
            parallel.stop()

    threading.Timer(0.2, client).start()
    parallel.run(workers=0)
    return 0


if __name__ == '__main__':
    sys.exit(main())
