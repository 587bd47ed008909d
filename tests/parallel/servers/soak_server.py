"""The server behind the soak test (test_pp_soak.py): one ``http11`` protocol with a route
for each kind of load the soak mixes.

    GET  /hello   -> b'Hello, World!'            (keep-alive, new connections, pipelining)
    POST /echo    -> the request body, unchanged (uploads, aborted uploads)
    GET  /boom    -> raises: the runtime answers 500 and logs the traceback
    GET  /big     -> ``--big-bytes`` bytes of a fixed pattern (readers at a trickle)
    GET  /huge    -> ``--huge-bytes`` bytes of it: more than the socket buffers hold, so a
                     client that stops reading stalls the send (closed by --send-timeout)
    GET  /stats   -> parallel.stats()

The connection limits (send, header, keep-alive and body timeouts) come from the host's
flags or PYPARALLEL_* variables, so the test decides how fast abandoned clients are reaped.
"""
import argparse
import sys

import parallel

# Set by main() before run(): read-only afterwards, shared by every worker.
BIG = b''
HUGE = b''


def big_body(n: int) -> bytes:
    """``n`` bytes in 4 KiB blocks that each start with their own index, so a truncated,
    reordered or repeated body cannot compare equal (test_pp_soak.py builds the same)."""
    filler = bytes(range(256)) * 16
    blocks = (i.to_bytes(4, 'little') + filler[4:] for i in range((n + 4095) // 4096))
    return b''.join(blocks)[:n]


class Soak:
    http11 = True

    def hello(self, transport, data):
        return b'Hello, World!'

    def echo(self, transport, data):
        return bytes(data)

    def boom(self, transport, data):
        raise RuntimeError('soak: a raising handler')

    def big(self, transport, data):
        return BIG

    def huge(self, transport, data):
        return HUGE

    def stats(self, transport, data):
        return parallel.stats()


def main() -> int:
    global BIG, HUGE
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=8080)
    ap.add_argument('--big-bytes', type=int, default=1 << 20)
    ap.add_argument('--huge-bytes', type=int, default=8 << 20)
    args = ap.parse_args()
    BIG = big_body(args.big_bytes)
    HUGE = big_body(args.huge_bytes)
    server = parallel.server(args.host, args.port)
    parallel.register(transport=server, protocol=Soak)
    print('READY', flush=True)
    parallel.run()
    print('RUN RETURNED', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
