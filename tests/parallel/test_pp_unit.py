"""Unit tests of the examples' protocol classes: single-threaded, no sockets, no host.

The examples import `parallel`; here a stand-in (fake_parallel.py) takes its place and the
callbacks are called directly with a FakeTransport, as the seed suggests for debugging and
unit testing ("we can run it in a single-threaded fashion from the main thread"). These
run on any Python, before the real module exists. The same classes under the real runtime
with workers=0 are covered in test_pp_runtime.py.
"""
import json
import re
import sys

import pytest

from fake_parallel import FakeTransport, FileResponse, Response, load_example
from pyserver import EXAMPLES


@pytest.fixture(scope="module")
def wiki_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("wikidata")
    make_data = load_example(EXAMPLES / "wiki" / "make_data.py", "pp_make_data")
    make_data.generate(str(out), 3000, 300, 7)
    return out


def test_hello_protocol():
    hello = load_example(EXAMPLES / "hello.py", "pp_hello")
    p = hello.Hello()
    t = FakeTransport()
    assert p.connection_made(t, b"") == b"Hello, World!\r\n"
    assert p.data_received(t, b"hi") == b"You said: hi\r\n"


def test_echo_protocol():
    echo = load_example(EXAMPLES / "echo.py", "pp_echo")
    assert echo.Echo().data_received(FakeTransport(), b"abc\x00") == b"abc\x00"


def test_tefb_protocol():
    tefb = load_example(EXAMPLES / "tefb.py", "pp_tefb")
    p = tefb.TEFB()
    assert tefb.TEFB.http11 is True
    assert p.plaintext(FakeTransport("/plaintext"), b"") == b"Hello, World!"
    assert p.json(FakeTransport("/json"), b"") == {"message": "Hello, World!"}


def test_random_sum_protocol():
    rs = load_example(EXAMPLES / "random_sum.py", "pp_random_sum")
    rs.np = None  # exercise the stdlib path whatever this interpreter has
    rs.load(1000)
    assert len(rs.large_array) == 1000 and all(0 <= v < 100 for v in rs.large_array)
    p = rs.Random()
    for _ in range(200):
        reply = p.random(FakeTransport("/random"), b"")
        m = re.fullmatch(r"The sum of the items in slice \[(\d+):(\d+)\] is (\d+)", reply)
        assert m, reply
        start, end, total = map(int, m.groups())
        assert 0 <= start and end == start + 10 and end <= 1000
        assert total == sum(rs.large_array[start:end])


def test_wiki_search_and_lookup(wiki_data):
    wiki = load_example(EXAMPLES / "wiki" / "wiki.py", "pp_wiki")
    wiki.load(str(wiki_data))
    xml = (wiki_data / "enwiki.xml").read_bytes()
    assert len(wiki.titles) == 3000 and wiki.titles == sorted(wiki.titles)
    found = wiki.search("Python", 100)
    names = [f[0] for f in found]
    assert names[:3] == ["Python", "Python (programming language)", "Pythonidae"]
    for title, start, end in found:
        article = xml[start:end]
        assert article.startswith(b"  <page>\n    <title>" + title.encode() + b"</title>")
        assert article.endswith(b"</page>\n")
    # every article: byte ranges tile the dump between header and footer
    spans = sorted(wiki.lookup(t) for t in wiki.titles)
    assert spans[0][0] == len(b'<mediawiki xml:lang="en">\n')
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert xml[spans[-1][1]:] == b"</mediawiki>\n"
    assert wiki.search("Python", 1) == found[:1]
    assert wiki.search("No such prefix at all", 10) == []
    assert wiki.lookup("Nope nope") is None


def test_wiki_protocol_routes(wiki_data):
    wiki = load_example(EXAMPLES / "wiki" / "wiki.py", "pp_wiki2")
    wiki.load(str(wiki_data))
    xml = (wiki_data / "enwiki.xml").read_bytes()
    p = wiki.Wiki()
    got = p.offsets(FakeTransport("/offsets/Python_(", ""), b"")
    assert [g[0] for g in got] == ["Python (programming language)"]
    assert json.loads(json.dumps(got)) == got  # JSON-serialisable as returned
    assert len(p.offsets(FakeTransport("/offsets/", "limit=5"), b"")) == 5
    assert isinstance(p.offsets(FakeTransport("/offsets/P", "limit=x"), b""), Response)
    t = FakeTransport("/wiki/Python_%28programming_language%29")
    assert p.wiki(t, b"") is None
    (before, path, after, offset, nbytes), = t.sent
    start, end = wiki.lookup("Python (programming language)")
    assert (offset, nbytes, after) == (start, end - start, None)
    wire = t.bytes_sent()
    head, _, body = wire.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: %d" % (end - start) in head
    assert body == xml[start:end]
    missing = p.wiki(FakeTransport("/wiki/Nope_nope"), b"")
    assert isinstance(missing, Response) and missing.status == 404
    t = FakeTransport("/wiki/Python", headers={"connection": "close"})
    p.wiki(t, b"")
    assert t.closed and b"Connection: close" in t.sent[0][0]


def test_static_protocol(tmp_path):
    static = load_example(EXAMPLES / "static.py", "pp_static")
    (tmp_path / "a b.txt").write_text("spaced")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "index.html").write_text("<p>sub</p>")
    (tmp_path.parent / "outside.txt").write_text("secret")
    static.root = str(tmp_path.resolve())
    p = static.Static()
    r = p.files(FakeTransport("/files/a%20b.txt"), b"")
    assert isinstance(r, FileResponse) and r.path == str(tmp_path.resolve() / "a b.txt")
    r = p.files(FakeTransport("/files/sub/"), b"")
    assert isinstance(r, FileResponse) and r.path.endswith("sub/index.html")
    listing = p.index(FakeTransport("/"), b"")
    assert isinstance(listing, str) and 'href="/files/a%20b.txt"' in listing
    for bad in ("/files/../outside.txt", "/files/%2e%2e/outside.txt", "/files/nope"):
        r = p.files(FakeTransport(bad), b"")
        assert isinstance(r, Response) and r.status == 404, bad


def test_examples_have_docstrings_and_options():
    for path in [*EXAMPLES.glob("*.py"), EXAMPLES / "wiki" / "wiki.py"]:
        text = path.read_text()
        assert text.startswith('"""'), path
        assert "Shows:" in text or path.name == "make_data.py", path
        assert "--port" in text and "--host" in text, path
