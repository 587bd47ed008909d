"""End-to-end: the runtime around the callbacks: shutdown on SIGINT/SIGTERM, workers=0
(every callback on the main thread), both backends, 1,000 concurrent raw connections, and
that parallelism is real: two CPU-bound handlers on 2 workers overlap in time on the
free-threaded build and take turns on the GIL build.
"""
import json
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from pyserver import (EXAMPLES, SERVERS, ServerProcess, gil_pyparallel, parse_responses,
                      pyparallel, recv_exactly, recv_line, recv_until)
from pptest import SLOWDOWN

pytestmark = pytest.mark.skipif(not pyparallel().is_file(), reason=f"{pyparallel()} not built")
RAW = SERVERS / "proto_raw.py"
HTTP = SERVERS / "proto_http.py"


def get_json(srv: ServerProcess, path: str, timeout: float = 30):
    status, _, body = srv.get(path, timeout=timeout)
    assert status == 200, (path, status, body[:300])
    return json.loads(body)


# -- shutdown ------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_promptly_with_open_connections(sig):
    srv = ServerProcess(EXAMPLES / "hello.py")
    idle = [srv.connect() for _ in range(20)]
    for s in idle:
        assert recv_line(s) == b"Hello, World!\r\n"
    busy = srv.connect()
    recv_line(busy)
    busy.sendall(b"x")
    recv_exactly(busy, len(b"You said: x\r\n"))
    code = srv.stop(sig, timeout=10)
    assert code == 0, f"exit {code}:\n{srv.output()[-3000:]}"
    assert srv.stop_seconds < 3 * SLOWDOWN, f"{srv.stop_seconds:.2f} s to stop"
    assert "Traceback" not in srv.stderr, srv.stderr[-3000:]
    for s in idle + [busy]:  # every connection was closed by the shutdown
        s.settimeout(5)
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        s.close()


def test_sigint_under_load_exits_0():
    srv = ServerProcess(EXAMPLES / "tefb.py")
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                with socket.create_connection((srv.host, srv.port), timeout=2) as s:
                    s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n" * 8)
                    recv_until(s, lambda d: d.count(b"Hello, World!") >= 8, timeout=2)
            except OSError:
                pass

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1)
    code = srv.stop(signal.SIGINT)
    stop.set()
    for t in threads:
        t.join(10)
    assert code == 0, f"exit {code}:\n{srv.output()[-3000:]}"
    assert srv.stop_seconds < 3 * SLOWDOWN


def test_sigint_during_a_long_callback():
    srv = ServerProcess(HTTP, "--spin-seconds", "1.0")
    with srv.connect() as s:
        s.sendall(b"GET /spin HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)  # the handler is running
        code = srv.stop(signal.SIGINT)
    assert code == 0, f"exit {code}:\n{srv.output()[-3000:]}"
    assert srv.stop_seconds < 5 * SLOWDOWN


def test_suite_started_with_sigint_ignored():
    """`./pp test &` in a script: the shell (no job control) starts the suite with SIGINT
    ignored, and the servers inherited that, so each stop by SIGINT hung until its
    timeout. conftest.py restores SIGINT for everything the tests start."""
    node = f"{__file__}::test_zero_workers_raw_protocol_and_main_thread_calls"
    cmd = ["sh", "-c", 'trap "" INT; exec "$0" -m pytest -q -p no:cacheprovider "$1"',
           sys.executable, node]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         cwd=pathlib.Path(__file__).parents[2])
    assert out.returncode == 0 and "1 passed" in out.stdout, out.stdout[-3000:]


# -- workers=0 ---------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["run(workers=0)", "--workers 0"])
def test_zero_workers_runs_callbacks_on_the_main_thread(how):
    if how == "--workers 0":
        srv = ServerProcess(HTTP, workers=0)
    else:
        srv = ServerProcess(HTTP, "--run-workers", "0", workers=None)
    try:
        where = get_json(srv, "/where")
        assert where["parallel"] is False and where["main"] is True
        assert srv.get("/bytes")[2] == b"bytes body"
        c = srv.http()  # keep-alive and per-connection state work the same way
        for i in range(1, 4):
            c.request("GET", "/count")
            assert c.getresponse().read() == b"%d" % i
        c.close()
        assert srv.get("/raise")[0] == 500
        assert srv.get("/bytes")[0] == 200
    finally:
        code = srv.stop()
    assert code == 0, f"exit {code}:\n{srv.output()[-3000:]}"


def test_zero_workers_raw_protocol_and_main_thread_calls():
    srv = ServerProcess(RAW, "--protocol", "ModuleApi", workers=0)
    try:
        with srv.connect() as s:
            s.sendall(b"mainwait\n")  # must not deadlock: we are the main thread
            assert recv_line(s, 5) == b"main\n"
            s.sendall(b"work\n")
            assert recv_line(s) == b"submitted\n"
            assert srv.wait_for(r"WORK 1024", 5)
    finally:
        code = srv.stop()
    assert code == 0, f"exit {code}:\n{srv.output()[-3000:]}"


def test_workers_from_environment():
    srv = ServerProcess(RAW, "--protocol", "ModuleApi", workers=None,
                        env={"PYPARALLEL_WORKERS": "3"})
    try:
        with srv.connect() as s:
            s.sendall(b"stats\n")
            stats = json.loads(recv_line(s))
        assert len(stats["workers"]) == 3
    finally:
        assert srv.stop() == 0


# -- backends, many connections ----------------------------------------------------------

@pytest.mark.parametrize("backend", ["io_uring", "libaio", "epoll"])
def test_backends(backend):
    try:
        srv = ServerProcess(EXAMPLES / "hello.py", backend=backend)
    except RuntimeError as exc:
        if backend in ("io_uring", "libaio") and "unavailable" in str(exc).lower():
            pytest.skip(f"{backend} unavailable here: {exc}")
        raise
    try:
        with srv.connect() as s:
            assert recv_line(s) == b"Hello, World!\r\n"
            s.sendall(b"hey")
            assert recv_exactly(s, 15) == b"You said: hey\r\n"
    finally:
        assert srv.stop() == 0, srv.output()[-3000:]


def test_1000_concurrent_raw_connections():
    srv = ServerProcess(EXAMPLES / "hello.py")
    socks = []
    try:
        for _ in range(1000):
            socks.append(socket.create_connection((srv.host, srv.port), timeout=10))
        for s in socks:  # all 1,000 open at once; each was greeted
            assert recv_line(s) == b"Hello, World!\r\n"
        for i, s in enumerate(socks):
            s.sendall(b"%d" % i)
        for i, s in enumerate(socks):
            expect = b"You said: %d\r\n" % i
            assert recv_exactly(s, len(expect)) == expect
    finally:
        for s in socks:
            s.close()
        code = srv.stop()
    assert code == 0, srv.output()[-3000:]


# -- parallelism ---------------------------------------------------------------------------

def two_connections_on_different_workers(srv: ServerProcess, tries: int = 40):
    """Two keep-alive connections served by different worker threads (a connection stays
    on the worker that accepted it; which one that is, is the kernel's choice)."""
    conns = {}
    for _ in range(tries):
        c = srv.http(60)
        c.request("GET", "/ident")
        ident = json.loads(c.getresponse().read())
        assert ident["parallel"] is True, ident
        if ident["thread"] not in conns:
            conns[ident["thread"]] = c
            if len(conns) == 2:
                return list(conns.values())
        else:
            c.close()
    pytest.fail(f"{tries} connections all landed on one worker")


def spin_pair(srv: ServerProcess):
    a, b = two_connections_on_different_workers(srv)
    results = [None, None]
    barrier = threading.Barrier(2)

    def go(i, c):
        barrier.wait()
        c.request("GET", "/spin")
        results[i] = json.loads(c.getresponse().read())

    threads = [threading.Thread(target=go, args=(i, c)) for i, c in enumerate((a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    a.close()
    b.close()
    assert all(results), results
    return results


def measure(results):
    r1, r2 = results
    span = max(r1["end"], r2["end"]) - min(r1["start"], r2["start"])
    overlap = min(r1["end"], r2["end"]) - max(r1["start"], r2["start"])
    cpu = r1["cpu"] + r2["cpu"]
    return span, overlap, cpu


# Iterations in which a spinning handler saw the other one's progress change: more than
# taking turns can produce (a change per turn, a turn >= 5 ms under the GIL: ~100 in the
# GIL test; a few hundred per second under the OS scheduler on one busy core), far less
# than running at once does (10,000 and more in 0.3 s, with two CPU hogs beside).
PARALLEL_SEEN = 2000


def control_seen(iterations: int) -> int:
    """The same work in two forked processes pinned as the two workers are
    (servers/spin_control.py --pin): how often they saw each other move. Below
    PARALLEL_SEEN the OS did not run the two CPUs' tasks at once."""
    out = subprocess.run([str(pyparallel()), str(SERVERS / "spin_control.py"), str(iterations),
                          "--pin"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return min(json.loads(out.stdout)["seen"])


def test_cpu_bound_handlers_run_in_parallel():
    srv = ServerProcess(HTTP, "--spin-seconds", "0.3", workers=2)
    try:
        attempts = []
        controls = []
        for _ in range(5):  # the machine is shared: one clear attempt in five suffices
            controls.append(control_seen(1_000_000))
            results = spin_pair(srv)
            assert all(r["parallel"] is True for r in results), results
            if results[0]["thread"] == results[1]["thread"]:
                # Which worker accepts a connection is the kernel's choice: on a loaded
                # machine one worker can take both before the other is scheduled.
                attempts.append("both connections on one worker")
                continue
            span, overlap, cpu = measure(results)
            seen = max(r["seen"] for r in results)
            attempts.append((span, overlap, cpu, seen))
            # Parallel, shown either way: the CPU time both spent exceeds the wall time from
            # the first start to the last end (impossible when they take turns; needs two
            # free cores), or each saw the other move on thousands of times while it ran
            # (taking turns, only between turns: a few hundred). The second holds with CPU
            # hogs beside: any stretch the two share the cores counts.
            if overlap > 0.5 * min(r["end"] - r["start"] for r in results) and span < 0.85 * cpu:
                break
            if seen >= PARALLEL_SEEN:
                break
        else:
            if max(controls) < PARALLEL_SEEN:
                pytest.skip(f"machine too busy to tell: two processes saw each other move "
                            f"{controls} times; handlers {attempts}")
            pytest.fail("handlers did not overlap: (span, overlap, cpu, seen) per attempt = "
                        + repr(attempts) + f"; two processes doing the same saw {controls}")
    finally:
        assert srv.stop() == 0, srv.output()[-3000:]


@pytest.mark.skipif(gil_pyparallel() is None,
                    reason="no GIL build (set PP_GIL_BUILD_DIR or build ./build-interp-gil)")
def test_cpu_bound_handlers_serialize_under_the_gil():
    srv = ServerProcess(HTTP, "--spin-seconds", "0.3", workers=2, exe=gil_pyparallel())
    try:
        results = spin_pair(srv)
        assert all(r["parallel"] is True for r in results), results
        span, overlap, cpu = measure(results)
        seen = max(r["seen"] for r in results)
        # Expected under the GIL: the two handlers take turns, so the wall time covers
        # (at least about) the CPU time of both, and each sees the other move on only
        # between its turns (switch interval 5 ms: ~120 in 0.6 s).
        assert span >= 0.9 * cpu, (span, overlap, cpu)
        assert seen < PARALLEL_SEEN, (span, overlap, cpu, seen)
    finally:
        assert srv.stop() == 0, srv.output()[-3000:]
