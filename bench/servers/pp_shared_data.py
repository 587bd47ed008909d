"""The server of bench/shared_data.py: a table built by the main thread at import, read by
the workers. GET /<kind> runs one pass of shared_data_work.py's <kind> loop on a worker and
answers with the milliseconds it took (the handler's own time, not the round trip).

    pyparallel [--share-main-data on|off] bench/servers/pp_shared_data.py PORT
"""
import os
import sys
import time

import parallel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shared_data_work  # noqa: E402  (builds the table at import, on the main thread)


def timed(loop):
    def handler(self, transport, data):
        start = time.perf_counter()
        loop()
        return b'%.4f' % ((time.perf_counter() - start) * 1e3)
    return handler


class SharedData:
    http11 = True
    subscript = timed(shared_data_work.subscript)
    get = timed(shared_data_work.get)
    global_name = timed(shared_data_work.global_name)


server = parallel.server('127.0.0.1', int(sys.argv[1]))
parallel.register(transport=server, protocol=SharedData)
parallel.run(workers=2)
