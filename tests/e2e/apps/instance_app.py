"""An ``http11`` app that says which instance answered, for the deployment tests
(restart, socket activation, metrics, a balancer in front of two instances).

    GET /id          -> "<id> <pid>" (--id, default "app")
    GET /sleep?S     -> sleeps S seconds in the handler, then "slept"
    GET /env         -> the LISTEN_* variables the process (and a child) still sees
    GET /stats       -> parallel.stats() as JSON
    anything else    -> 404 (the runtime's answer to an unknown route)
"""
import argparse
import os
import subprocess
import time

import parallel

ID = 'app'


class Instance:
    http11 = True

    def id(self, transport, data):
        return f'{ID} {os.getpid()}'.encode()

    def sleep(self, transport, data):
        time.sleep(float(transport.http_query or '1'))
        return b'slept'

    def stats(self, transport, data):
        return parallel.stats()

    def env(self, transport, data):
        child = subprocess.run(['/usr/bin/env'], capture_output=True, text=True).stdout
        seen = sorted(k for k in os.environ if k.startswith('LISTEN_'))
        inherited = sorted(line.split('=')[0] for line in child.splitlines()
                           if line.startswith('LISTEN_'))
        return {'os_environ': seen, 'child': inherited}


def main() -> None:
    global ID
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=8080)
    ap.add_argument('--id', default='app')
    args = ap.parse_args()
    ID = args.id
    parallel.register(transport=parallel.server(args.host, args.port), protocol=Instance)
    parallel.run()


if __name__ == '__main__':
    main()
