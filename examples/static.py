"""Static: serve a folder over HTTP/1.1 with Range support, from the page cache.

    ./pp run examples/static.py [--root .] [--host 0.0.0.0] [--port 8080]
    curl localhost:8080/                          # index.html, or a listing of the folder
    curl localhost:8080/files/README.md           # a file
    curl -r 0-99 localhost:8080/files/big.bin     # 206 Partial Content; past the end: 416

Shows:
- returning ``parallel.file(path)`` from an ``http11`` handler: the runtime answers with
  the file (200), a byte range of it (206) or 416, and sends the bytes from the kernel's
  page cache to the socket without copying them through Python;
- ``parallel.Response(body, status=...)`` for anything other than 200 (here 404);
- routing by the first path segment: ``/`` -> ``index()``, ``/files/...`` -> ``files()``;
  the rest of the path is the handler's to interpret (``transport.http_path``);
- refusing paths that escape the served folder (``..``, symlinks pointing outside).
"""
import argparse
import html
import os
import urllib.parse

import parallel

root = os.path.realpath('.')  # set by main() before run(); read by every worker


def not_found():
    return parallel.Response(b'Not Found\n', status=404)


def resolve(relative: str):
    """The real path of ``relative`` under ``root``, or None if it leaves the root."""
    path = os.path.realpath(os.path.join(root, relative.lstrip('/')))
    if path != root and not path.startswith(root + os.sep):
        return None
    return path


def listing(folder: str, url_prefix: str) -> str:
    rows = []
    for name in sorted(os.listdir(folder)):
        shown = name + ('/' if os.path.isdir(os.path.join(folder, name)) else '')
        href = url_prefix + urllib.parse.quote(shown)
        rows.append(f'<li><a href="{html.escape(href)}">{html.escape(shown)}</a></li>')
    return '<!doctype html>\n<ul>\n' + '\n'.join(rows) + '\n</ul>\n'


def serve(relative: str, url_prefix: str):
    path = resolve(relative)
    if path is None or not os.path.exists(path):
        return not_found()
    if os.path.isdir(path):
        index = os.path.join(path, 'index.html')
        if os.path.isfile(index):
            return parallel.file(index, 'text/html')
        return listing(path, url_prefix)
    return parallel.file(path)


class Static:
    http11 = True

    def index(self, transport, data):
        if transport.http_path.split('?')[0] not in ('', '/'):
            return not_found()
        return serve('', '/files/')

    def files(self, transport, data):
        # http_path is the path as the client sent it: '/files/a%20b.txt'.
        rest = transport.http_path.split('?')[0][len('/files'):]
        rest = urllib.parse.unquote(rest)
        prefix = '/files' + urllib.parse.quote(rest if rest.endswith('/') else rest + '/')
        return serve(rest, prefix)


def main() -> None:
    global root
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--host', default='0.0.0.0')
    ap.add_argument('--port', type=int, default=8080)
    ap.add_argument('--root', default='.', help='folder to serve (default: current)')
    args = ap.parse_args()
    root = os.path.realpath(args.root)
    if not os.path.isdir(root):
        ap.error(f'{args.root} is not a folder')

    server = parallel.server(args.host, args.port)
    parallel.register(transport=server, protocol=Static)
    print(f'Serving {root} at http://{args.host}:{args.port}/', flush=True)
    parallel.run()


if __name__ == '__main__':
    main()
