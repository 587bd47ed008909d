"""Wiki: the seed's Wikipedia "instant search" server, on data from make_data.py.

    python3 examples/wiki/make_data.py --articles 500000        # ~1 GB dump, once
    ./pp run examples/wiki/wiki.py [--data examples/wiki/data] [--host 0.0.0.0] [--port 8080]
    curl localhost:8080/offsets/Python          # [["Python", 1234, 5678], ...] (JSON)
    curl localhost:8080/wiki/Python             # that article's <page>...</page> bytes

Shows:
- big read-only data loaded in the main thread before ``run()`` (a sorted list of every
  title, an ``array('q')`` of their offsets and a sorted ``array('q')`` of all offsets),
  then read directly by parallel callbacks: one copy in one process, whatever the number
  of workers (the seed's point: 8 multiprocessing workers would need 8 copies);
- ``gc.freeze()`` after loading, so the collector never walks those millions of objects;
- prefix search with ``bisect`` on the sorted titles, returned as a list (sent as JSON);
- ``transport.ranged_sendfile(before, path, None, offset, nbytes)``: the article's exact
  byte range goes from the page cache to the socket without passing through Python.
  It is a raw send, so the handler writes the HTTP head itself in ``before`` and returns
  None (nothing more to send);
- ``parallel.Response(..., status=404)`` for unknown titles.

Endpoints: ``/offsets/<prefix>[?limit=N]`` -> JSON list of ``[title, start, end]``
(end exclusive: the article is ``xml[start:end]``, an HTTP Range of
``bytes=start-(end-1)``), at most ``limit`` (default 100) titles in sorted order;
``/wiki/<title>`` -> the article (``_`` in a URL stands for a space, as on Wikipedia).
"""
import argparse
import bisect
import gc
import os
import sys
import urllib.parse
from array import array

import parallel

# Loaded by load() before run(); read (never written) by every worker.
titles: list[str] = []          # sorted
title_offsets = array('q')      # title_offsets[i]: where titles[i]'s <page> starts
offsets = array('q')            # every article's start, sorted, then the dump's end
xml_path = ''
DEFAULT_LIMIT = 100
MAX_LIMIT = 10000


def load(data_dir: str) -> None:
    global titles, title_offsets, offsets, xml_path
    xml_path = os.path.realpath(os.path.join(data_dir, 'enwiki.xml'))
    names, starts = [], array('q')
    with open(os.path.join(data_dir, 'titles.tsv'), encoding='utf-8') as f:
        for line in f:
            name, _, off = line.rstrip('\n').rpartition('\t')
            names.append(name)
            starts.append(int(off))
    if names != sorted(names):  # make_data.py writes them sorted; accept any order
        order = sorted(range(len(names)), key=names.__getitem__)
        names = [names[i] for i in order]
        starts = array('q', (starts[i] for i in order))
    ends = sorted(starts)
    # The last article ends where '</mediawiki>' starts.
    with open(xml_path, 'rb') as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 64))
        tail = f.read()
    footer = tail.rfind(b'</mediawiki>')
    ends.append(size - len(tail) + footer if footer >= 0 else size)
    titles, title_offsets, offsets = names, starts, array('q', ends)
    gc.freeze()  # loaded once, never garbage: keep it out of every collection


def lookup(title: str):
    """(start, end) of the article called title, or None."""
    i = bisect.bisect_left(titles, title)
    if i == len(titles) or titles[i] != title:
        return None
    start = title_offsets[i]
    return start, offsets[bisect.bisect_right(offsets, start)]


def search(prefix: str, limit: int) -> list:
    """[title, start, end] for the first ``limit`` titles starting with prefix."""
    out = []
    i = bisect.bisect_left(titles, prefix)
    while i < len(titles) and len(out) < limit and titles[i].startswith(prefix):
        start = title_offsets[i]
        out.append([titles[i], start, offsets[bisect.bisect_right(offsets, start)]])
        i += 1
    return out


def path_arg(transport, route: str) -> str:
    """The URL-decoded rest of the path after /route/, with '_' read as a space."""
    rest = transport.http_path.split('?')[0][len(route) + 2:]
    return urllib.parse.unquote(rest).replace('_', ' ')


class Wiki:
    http11 = True

    def index(self, transport, data):
        return ('<!doctype html>\n<p>%d articles. Try <a href="/offsets/Python">'
                '/offsets/Python</a> and <a href="/wiki/Python">/wiki/Python</a>.</p>\n'
                % len(titles))

    def offsets(self, transport, data):
        limit = DEFAULT_LIMIT
        query = urllib.parse.parse_qs(transport.http_query or '')
        if 'limit' in query:
            try:
                limit = max(0, min(MAX_LIMIT, int(query['limit'][0])))
            except ValueError:
                return parallel.Response(b'limit must be an integer\n', status=400)
        return search(path_arg(transport, 'offsets'), limit)

    def wiki(self, transport, data):
        found = lookup(path_arg(transport, 'wiki'))
        if found is None:
            return parallel.Response(b'Not Found\n', status=404)
        start, end = found
        head = (b'HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\n'
                b'Content-Length: %d\r\n' % (end - start))
        close = transport.http_headers.get('connection', '').lower() == 'close'
        head += b'Connection: close\r\n\r\n' if close else b'\r\n'
        transport.ranged_sendfile(head, xml_path, None, start, end - start)
        if close:
            transport.close()
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--host', default='0.0.0.0')
    ap.add_argument('--port', type=int, default=8080)
    ap.add_argument('--data', default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   'data'),
                    help='folder with enwiki.xml and titles.tsv (from make_data.py)')
    args = ap.parse_args()
    if not os.path.isfile(os.path.join(args.data, 'titles.tsv')):
        print(f'no data in {args.data}: run examples/wiki/make_data.py --out {args.data}',
              file=sys.stderr)
        return 2
    load(args.data)
    server = parallel.server(args.host, args.port)
    parallel.register(transport=server, protocol=Wiki)
    print(f'{len(titles)} titles loaded; instant search at '
          f'http://{args.host}:{args.port}/offsets/<prefix>', flush=True)
    parallel.run()
    return 0


if __name__ == '__main__':
    sys.exit(main())
