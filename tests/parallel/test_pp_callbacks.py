"""End-to-end: every protocol callback and every return type of a raw (non-HTTP) protocol,
sendfile / ranged_sendfile byte-exact, misbehaving callbacks, and the module functions
(submit_work, call_from_main_thread[_and_wait], timer, stats, stop), with the protocols
of servers/proto_raw.py under the pyparallel host.
"""
import hashlib
import json
import re
import time

import pytest

from pyserver import (SERVERS, ServerProcess, pyparallel, recv_exactly, recv_line,
                      recv_until, reset, wait_closed)

pytestmark = pytest.mark.skipif(not pyparallel().is_file(), reason=f"{pyparallel()} not built")
RAW = SERVERS / "proto_raw.py"


@pytest.fixture
def raw():
    """raw(protocol, workers=2) -> a running proto_raw.py server; must exit 0 on SIGINT."""
    servers = []

    def start(protocol: str, **kw):
        srv = ServerProcess(RAW, "--protocol", protocol, **kw)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        code = srv.stop()
        assert code == 0, f"exit {code}:\n{srv.output()[-3000:]}"


def ask(sock, line: bytes, timeout: float = 10) -> bytes:
    sock.sendall(line + b"\n")
    return recv_line(sock, timeout)


def still_serves(srv: ServerProcess) -> None:
    """A fresh connection gets a normal answer: the server survived whatever came before."""
    assert srv.alive(), srv.output()[-3000:]
    with srv.connect() as s:
        assert ask(s, b"bytes") == b"bytes\n"


# -- connection_made, initial_bytes_to_send ----------------------------------------------

def test_connection_made_one_argument(raw):
    srv = raw("Greet1")
    with srv.connect() as s:
        assert recv_line(s) == b"greet1\n"
        s.sendall(b"x\n")
        assert recv_line(s) == b"got x\n"


def test_connection_made_seed_form_gets_empty_data(raw):
    srv = raw("Greet2")
    with srv.connect() as s:
        assert recv_line(s) == b"greet2 data=b''\n"
        s.sendall(b"x\n")
        assert recv_line(s) == b"got x\n"


def test_initial_bytes_to_send_bytes(raw):
    srv = raw("Initial")
    for _ in range(3):  # every connection gets them
        with srv.connect() as s:
            assert recv_line(s) == b"initial\n"
            s.sendall(b"y\n")
            assert recv_line(s) == b"got y\n"


def test_initial_bytes_to_send_callable(raw):
    srv = raw("InitialCallable")
    with srv.connect() as s:
        assert re.fullmatch(rb"initial-callable \d+\n", recv_line(s))
        s.sendall(b"z\n")
        assert recv_line(s) == b"got z\n"


# -- data_received return types ----------------------------------------------------------

@pytest.mark.parametrize("cmd,expect", [
    (b"bytes", b"bytes\n"),
    (b"bytearray", b"bytearray\n"),
    (b"memoryview", b"memoryview\n"),
    (b"str", "str \u00fcn\u00efc\u00f6de \u2713\n".encode("utf-8")),
])
def test_return_types(raw, cmd, expect):
    srv = raw("Types")
    with srv.connect() as s:
        assert ask(s, cmd) == expect


def test_return_none_sends_nothing(raw):
    srv = raw("Types")
    with srv.connect() as s:
        s.sendall(b"none\n")
        s.settimeout(0.5)
        assert recv_until(s, lambda d: len(d) > 0, timeout=0.5) == b""
        assert ask(s, b"bytes") == b"bytes\n"  # connection still usable


def test_large_return_is_sent_whole(raw):
    srv = raw("Types")
    n = 8 << 20
    with srv.connect() as s:
        s.sendall(b"big %d\n" % n)
        data = recv_exactly(s, n, timeout=30)
        assert len(data) == n and data == b"x" * n
        assert ask(s, b"bytes") == b"bytes\n"


def test_state_on_self_is_per_connection(raw):
    srv = raw("Types")
    with srv.connect() as a, srv.connect() as b:
        assert ask(a, b"count") == b"count 1\n"
        assert ask(a, b"count") == b"count 2\n"
        assert ask(b, b"count") == b"count 1\n"
        assert ask(a, b"count") == b"count 3\n"


def test_transport_peer(raw):
    srv = raw("Types")
    with srv.connect() as s:
        host, port = json.loads(ask(s, b"peer"))
        assert (host, port) == s.getsockname()


def test_callbacks_run_on_parallel_threads(raw):
    srv = raw("Types")
    with srv.connect() as s:
        assert ask(s, b"thread") == b"parallel 1\n"


def test_transport_close(raw):
    srv = raw("Types")
    with srv.connect() as s:
        s.sendall(b"close\n")
        closed, _ = wait_closed(s, 5)
        assert closed
    still_serves(srv)


# -- misbehaving callbacks ---------------------------------------------------------------

def test_raising_callback_is_logged_and_server_keeps_serving(raw):
    srv = raw("Types")
    with srv.connect() as s:
        s.sendall(b"raise\n")
        wait_closed(s, 2)  # closed or not: the runtime's choice; it must not hang the test
    assert srv.wait_for(r"ValueError: boom from data_received", 5), srv.output()[-2000:]
    assert srv.wait_for(r"Traceback", 1)
    still_serves(srv)


def test_raising_callback_imports_nothing_on_a_worker(raw):
    """Printing a callback's exception needs `traceback`, which CPython imports on first
    use. Imported on a worker, it held every worker that raised meanwhile on its import
    lock: 2 s on a loaded 2-core machine (the API fuzz test's unanswered pings). run()
    imports it on the main thread before the workers start."""
    srv = raw("Types")
    with srv.connect() as s:
        s.sendall(b"raise\n")
        wait_closed(s, 2)
    assert srv.wait_for(r"ValueError: boom from data_received", 5), srv.output()[-2000:]
    with srv.connect() as s:
        imported = json.loads(ask(s, b"worker-imports"))
    assert imported == [], f"imported on a worker: {imported}"


def test_raising_callback_goes_to_exception_handler(raw):
    srv = raw("TypesWithHandler")
    with srv.connect() as s:
        assert ask(s, b"raise") == b"handled ValueError\n"
    assert srv.wait_for(r"EXC ValueError boom from data_received", 5)
    still_serves(srv)


def test_raising_connection_made(raw):
    srv = raw("RaisingConnectionMade")
    with srv.connect() as s:
        wait_closed(s, 2)
    assert srv.wait_for(r"RuntimeError: boom from connection_made", 5), srv.output()[-2000:]
    assert srv.alive()


@pytest.mark.parametrize("cmd", [b"int", b"list"])
def test_wrong_return_type_is_logged_and_closes(raw, cmd):
    srv = raw("Types")
    with srv.connect() as s:
        s.sendall(cmd + b"\n")
        closed, data = wait_closed(s, 5)
        assert closed and data == b"", data
    assert srv.wait_for(r"TypeError", 5), srv.output()[-2000:]
    still_serves(srv)


def test_wrong_return_type_goes_to_exception_handler(raw):
    srv = raw("TypesWithHandler")
    with srv.connect() as s:
        s.sendall(b"int\n")
        closed, data = wait_closed(s, 5)
        assert closed and data == b"", data
    assert srv.wait_for(r"EXC TypeError", 5), srv.output()[-2000:]
    with srv.connect() as s:
        assert ask(s, b"bytes") == b"bytes\n"


# -- send_complete, connection_lost --------------------------------------------------------

def test_send_complete(raw):
    srv = raw("SendComplete")
    ids = []
    with srv.connect() as s:
        for _ in range(3):
            s.sendall(b"go\n")
            data = recv_until(s, lambda d: d.count(b"\n") >= 2)
            m = re.fullmatch(rb"reply\ncomplete int (\d+)\n", data)
            assert m, data
            ids.append(int(m.group(1)))
    assert len(set(ids)) == 3, ids


def test_connection_lost_on_close_and_on_reset(raw):
    srv = raw("Lost")
    s = srv.connect()
    assert recv_line(s) == b"hi\n"
    port = s.getsockname()[1]
    s.close()
    assert srv.wait_for(rf"LOST {port} ", 5), srv.output()[-2000:]
    s = srv.connect()
    assert recv_line(s) == b"hi\n"
    port = s.getsockname()[1]
    reset(s)
    assert srv.wait_for(rf"LOST {port} ", 5), srv.output()[-2000:]


def test_client_disconnects_mid_response(raw):
    srv = raw("Types")
    for _ in range(10):
        s = srv.connect()
        s.sendall(b"big %d\n" % (64 << 20))
        assert len(recv_exactly(s, 1 << 16)) == 1 << 16
        reset(s)
    for _ in range(5):
        s = srv.connect()
        s.sendall(b"big %d\n" % (64 << 20))
        s.close()  # never reads: the server's send hits a dead peer
    still_serves(srv)


# -- sendfile ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def blob_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "blob.bin"
    path.write_bytes(b"".join(hashlib.sha256(i.to_bytes(4, "little")).digest()
                              for i in range(131072)))  # 4 MB, no repeats
    return path


def test_sendfile_whole_file(raw, blob_file):
    srv = raw("Files")
    blob = blob_file.read_bytes()
    with srv.connect() as s:
        s.sendall(b"sendfile %s\n" % bytes(blob_file))
        data = recv_exactly(s, len(blob) + 4, timeout=30)
        assert data == b"<<" + blob + b">>"
        s.sendall(b"nobefore %s\n" % bytes(blob_file))
        assert recv_exactly(s, len(blob), timeout=30) == blob


@pytest.mark.parametrize("offset,n", [(0, 1), (0, 100), (12345, 1000), (1 << 20, 2 << 20),
                                      (4 * 1024 * 1024 - 10, 10)])
def test_ranged_sendfile(raw, blob_file, offset, n):
    srv = raw("Files")
    blob = blob_file.read_bytes()
    with srv.connect() as s:
        s.sendall(b"ranged %s %d %d\n" % (bytes(blob_file), offset, n))
        assert recv_exactly(s, n + 4, timeout=30) == b"<<" + blob[offset:offset + n] + b">>"
        s.sendall(b"alias %s %d %d\n" % (bytes(blob_file), offset, n))
        assert recv_exactly(s, n + 2, timeout=30) == b"[" + blob[offset:offset + n] + b"]"


def test_sendfile_errors_are_python_exceptions(raw, blob_file):
    srv = raw("Files")
    with srv.connect() as s:
        assert ask(s, b"missing") == b"FileNotFoundError\n"
        assert ask(s, b"pastend %s" % bytes(blob_file)) == b"ValueError\n"


# -- module functions ----------------------------------------------------------------------

def test_submit_work_callback_and_errback(raw):
    srv = raw("ModuleApi")
    with srv.connect() as s:
        assert ask(s, b"work") == b"submitted\n"
        assert srv.wait_for(r"WORK 1024", 5), srv.output()[-2000:]
        assert ask(s, b"workerr") == b"submitted\n"
        assert srv.wait_for(r"ERRBACK ValueError", 5), srv.output()[-2000:]


def test_call_from_main_thread(raw):
    srv = raw("ModuleApi")
    with srv.connect() as s:
        assert ask(s, b"main") == b"queued\n"
        assert srv.wait_for(r"MAINCALL main", 5), srv.output()[-2000:]
        assert ask(s, b"mainwait") == b"main\n"
        assert ask(s, b"mainraise") == b"ValueError\n"


def test_timer(raw):
    srv = raw("ModuleApi")
    with srv.connect() as s:
        armed = time.monotonic()
        assert ask(s, b"timer").startswith(b"armed")
        assert srv.wait_for(r"TIMER fired", 5), srv.output()[-2000:]
        assert time.monotonic() - armed >= 0.15


def test_stats(raw):
    srv = raw("ModuleApi")
    with srv.connect() as s:
        ask(s, b"bytes")
        stats = json.loads(ask(s, b"stats"))
    for key in ("connections", "active_connections", "requests", "bytes_sent",
                "bytes_received", "workers"):
        assert key in stats, stats
    assert stats["connections"] >= 1 and stats["active_connections"] >= 1
    assert stats["bytes_received"] >= len(b"bytes\nstats\n")
    assert isinstance(stats["workers"], list) and len(stats["workers"]) == 2
    assert sum(w["connections"] for w in stats["workers"]) == stats["connections"]


def test_stop_from_a_callback_returns_from_run(raw):
    srv = raw("ModuleApi")
    with srv.connect() as s:
        s.sendall(b"stop\n")
        recv_line(s, 5)
    srv.proc.wait(10)
    assert srv.proc.returncode == 0, srv.output()[-2000:]
    assert srv.wait_for(r"RUN RETURNED", 2)
