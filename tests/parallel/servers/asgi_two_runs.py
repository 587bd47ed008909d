"""run(workers=0) twice in one process, serving an ASGI app (test_pp_stop.py).

The first run's request leaves a timer pending in its thread's asyncio loop
(``call_later(1, ...)``), and the run ends before it is due: the engine timer armed for it
is released unfired. The second run starts after that timer's due time, and its request
sleeps (``asyncio.sleep(0.05)``) before it answers: only an engine timer can wake it.
Prints ``RUN n <status> <path>`` per run (``RUN n failed <error>`` when the request got
no answer in 5 s).
"""
import asyncio
import http.client
import socket
import sys
import threading
import time

import parallel


async def app(scope, receive, send):
    if scope['type'] != 'http':
        return
    if scope['path'] == '/later':
        asyncio.get_running_loop().call_later(1, lambda: None)
    else:
        await asyncio.sleep(0.05)
    await send({'type': 'http.response.start', 'status': 200, 'headers': []})
    await send({'type': 'http.response.body', 'body': scope['path'].encode()})


def main() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    parallel.register(transport=parallel.server('127.0.0.1', port), protocol=parallel.asgi(app))
    for run_no, path in ((1, '/later'), (2, '/sleep')):
        def client(run_no=run_no, path=path):
            try:
                c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
                c.request('GET', path)
                r = c.getresponse()
                print('RUN', run_no, r.status, r.read().decode(), flush=True)
            except OSError as exc:
                print('RUN', run_no, 'failed', type(exc).__name__, flush=True)
            finally:
                parallel.stop()

        threading.Timer(0.2, client).start()
        parallel.run(workers=0, drain_timeout=1)
        time.sleep(1.2)  # past the first run's pending timer
    return 0


if __name__ == '__main__':
    sys.exit(main())
