"""End-to-end: object lifetimes and threads in the `parallel` runtime, with the servers of
servers/lifetime.py.

- a timer cancelled (and its Timer object dropped) releases its callback and arguments
  promptly, and the cancel never outlives the timer's memory (a use after free that
  ASan reports);
- timers still armed when run() returns release their references, and cancel() after
  run() returned is a no-op;
- the http11 route-name cache is gone when run() returns (workers=0 would otherwise
  release it after the interpreter is finalized);
- submit_work from a threading thread while run() returns: every call that returned
  ran its function; once the runtime has stopped, calls raise ParallelError;
- call_from_main_thread[_and_wait] from many workers at once never deadlocks with the
  main thread (which once re-attached while holding the queue's lock);
- transport methods called from a threading thread reach the connection promptly
  (marshalled to its worker), close() from a thread closes, and a thread racing a
  closing connection gets TransportClosedError.

Every test also fails on a sanitizer report in the server's output, so running this file
with PP_BUILD_DIR set to an ASan/UBSan build checks the memory side.
"""
import re
import signal
import socket
import threading
import time

import pytest

from pyserver import (SERVERS, ServerProcess, gil_pyparallel, pyparallel, recv_line,
                      recv_until, reset, wait_closed)

pytestmark = pytest.mark.skipif(not pyparallel().is_file(), reason=f"{pyparallel()} not built")
LIFETIME = SERVERS / "lifetime.py"
SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error:")

HOSTS = [pytest.param(None, id="free-threaded")]
if gil_pyparallel() is not None:
    HOSTS.append(pytest.param(gil_pyparallel(), id="gil"))
# Both backends on the free-threaded build (a readiness loop and a completion ring fail in
# different ways when touched from the wrong thread), the default one on the GIL build.
HOST_BACKENDS = [pytest.param(None, "epoll", id="free-threaded-epoll"),
                 pytest.param(None, "io_uring", id="free-threaded-io_uring")]
if gil_pyparallel() is not None:
    HOST_BACKENDS.append(pytest.param(gil_pyparallel(), None, id="gil"))


@pytest.fixture
def lifetime():
    """lifetime(scenario, **ServerProcess kw) -> a running servers/lifetime.py server.
    Each is stopped at the end if the test has not; its output must be sanitizer-clean."""
    servers = []

    def start(scenario: str, **kw):
        srv = ServerProcess(LIFETIME, "--scenario", scenario, **kw)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()
        assert not SANITIZER.search(srv.output()), srv.output()[-6000:]


def stop_ok(srv: ServerProcess, sig: int = signal.SIGINT) -> str:
    """Stops the server with `sig`; it must exit 0 without a sanitizer report. Returns
    its output."""
    code = srv.stop(sig, timeout=20)
    out = srv.output()
    assert not SANITIZER.search(out), out[-6000:]
    assert code == 0, f"exit {code}:\n{out[-4000:]}"
    return out


def ask(sock: socket.socket, line: bytes, timeout: float = 10) -> bytes:
    sock.sendall(line + b"\n")
    return recv_line(sock, timeout)


def released(sock: socket.socket) -> int:
    reply = ask(sock, b"released")
    assert reply.startswith(b"released "), reply
    return int(reply.split()[1])


def wait_released(sock: socket.socket, n: int, timeout: float = 5) -> int:
    deadline = time.monotonic() + timeout
    got = released(sock)
    while got < n and time.monotonic() < deadline:
        time.sleep(0.05)
        got = released(sock)
    return got


# -- timers --------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["epoll", "io_uring"])
@pytest.mark.parametrize("workers", [0, 2])
def test_cancel_of_an_armed_timer_releases_it(lifetime, backend, workers):
    # The Timer objects are dropped right after cancel(): the cancel operation then holds
    # the only claim on the timer. The timer's memory must outlive both completions (the
    # victim's and the cancel's, in either order), and its callback and arguments must go.
    srv = lifetime("timers", workers=workers, backend=backend)
    with srv.connect() as s:
        for _ in range(5):
            before = released(s)
            assert ask(s, b"arm 40") == b"armed\n"
            time.sleep(0.2)  # the arms are posted to the workers: let them run
            assert ask(s, b"cancel") == b"cancelled\n"
            assert wait_released(s, before + 40) == before + 40
    assert "RUN RETURNED" in stop_ok(srv)


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("workers", [0, 2])
def test_timer_cancelled_at_once_releases_it_promptly(lifetime, host, workers):
    # parallel.timer(30, 0, f, canary).cancel(): the cancel may come before the worker
    # has armed the timer (and reads the timer's loop while that worker sets it). Either
    # way the timer must never fire and must let go of its references now, not in 30 s.
    srv = lifetime("timers", workers=workers, exe=host)
    with srv.connect() as s:
        before = released(s)
        assert ask(s, b"now 40") == b"cancelled\n"
        assert wait_released(s, before + 40, timeout=3) == before + 40
    stop_ok(srv)


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("workers", [0, 2])
def test_timers_armed_at_shutdown_release_their_references(lifetime, host, workers):
    srv = lifetime("shutdown-timers", workers=workers, exe=host)
    with srv.connect() as s:  # its connection_made arms one more timer from a thread
        assert recv_line(s) == b"hello\n"
        time.sleep(0.5)
    out = stop_ok(srv)
    assert "AFTER canaries_alive=0" in out, out[-4000:]
    assert "CANCEL-AFTER ok" in out, out[-4000:]


# -- the route-name cache ------------------------------------------------------------------

@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("workers", [0, 1])
def test_route_name_cache_is_released_when_run_returns(lifetime, host, workers):
    srv = lifetime("routes", workers=workers, exe=host)
    for _ in range(3):
        status, _, body = srv.get("/hello")
        assert (status, body) == (200, b"hello")
    out = stop_ok(srv)
    # Not 1: the cache would still hold the name after run(), and (workers=0) drop it
    # only in a thread_local destructor, after the interpreter has been finalized.
    assert "AFTER route_name_refs=0" in out, out[-4000:]


# -- submit_work while run() returns ---------------------------------------------------------

@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("workers", [0, 2])
def test_submit_work_racing_shutdown_runs_or_raises(lifetime, host, workers):
    srv = lifetime("submit", workers=workers, exe=host)
    time.sleep(0.5)  # the threading thread submits all along
    # SIGTERM: with workers=0, SIGINT would raise KeyboardInterrupt inside whichever work
    # function runs on the main thread, cutting it short.
    out = stop_ok(srv, signal.SIGTERM)
    m = re.search(r"SUBMIT accepted=(\d+) executed=(\d+)", out)
    assert m, out[-4000:]
    accepted, executed = int(m[1]), int(m[2])
    assert accepted > 0
    # A call that returned is a promise: its function ran (none dropped at shutdown).
    assert executed == accepted, out[-4000:]
    # Refused from stop() on (while run() drains), and after run() has returned.
    assert re.search(r"REFUSED ParallelError: the runtime is (stopping|not running)", out), out
    assert "LATE ParallelError: the runtime is not running" in out, out[-4000:]


# -- the first callbacks, while the runtime starts ------------------------------------------

@pytest.mark.parametrize("backend", ["epoll", "io_uring"])
def test_first_callbacks_can_hand_work_to_other_threads(lifetime, backend):
    # Clients knock from the moment the process starts: the first connections accepted
    # meet a runtime whose later workers may still be starting. None may be refused
    # (once, the first worker served before the others were set up, and a post to them,
    # even a thread's transport.close(), was dropped).
    srv = lifetime("early", workers=8, backend=backend, wait=False)
    answers: list = []
    deadline = time.monotonic() + 30

    def knock():
        while time.monotonic() < deadline and len(answers) < 16:
            try:
                with socket.create_connection((srv.host, srv.port), timeout=5) as s:
                    answers.append(recv_line(s, 5))
            except OSError:
                time.sleep(0.0005)

    threads = [threading.Thread(target=knock) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert len(answers) >= 16, srv.output()[-3000:]
    assert set(answers) == {b"submitted\n"}, answers
    out = stop_ok(srv)
    assert out.count("WORKED") == len(answers), out[-3000:]


# -- call_from_main_thread from every worker at once ------------------------------------------

@pytest.mark.parametrize("host", HOSTS)
def test_many_workers_calling_the_main_thread(lifetime, host):
    # The main thread must not hold the queue's lock while it waits to re-attach: a worker
    # holding the GIL and queueing would wait for that lock forever (a deadlock of both).
    srv = lifetime("main-calls", workers=4, exe=host)
    errors: list = []

    def client():
        try:
            with srv.connect() as s:
                for _ in range(5):
                    assert ask(s, b"main 200", timeout=10) == b"queued\n"
                    assert ask(s, b"wait 20", timeout=10) == b"waited\n"
        except Exception as e:  # reported below, with the server's output
            errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, f"{errors!r}\n{srv.output()[-3000:]}"
    with srv.connect() as s:
        deadline = time.monotonic() + 10
        while ask(s, b"count") != b"count %d\n" % (6 * 5 * 220) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ask(s, b"count") == b"count %d\n" % (6 * 5 * 220)
    stop_ok(srv)


# -- transport methods from threading threads -----------------------------------------------

@pytest.mark.parametrize("host,backend", HOST_BACKENDS)
@pytest.mark.parametrize("workers", [0, 1])
def test_thread_writes_to_a_transport(lifetime, host, backend, workers):
    # The worker sleeps in the kernel with nothing to do: a thread's send must wake it.
    srv = lifetime("push", workers=workers, exe=host, backend=backend)
    with srv.connect() as s:
        assert recv_line(s) == b"hello\n"
        s.sendall(b"push 20\n")
        want = b"".join(b"push %d x\n" % i for i in range(20))
        assert recv_until(s, lambda d: len(d) >= len(want), timeout=3) == want
    out = stop_ok(srv)
    assert "PUSHER-ERROR" not in out, out[-4000:]
    assert "AFTER-RUN TransportClosedError" in out, out[-4000:]


@pytest.mark.parametrize("host,backend", HOST_BACKENDS)
@pytest.mark.parametrize("workers", [0, 2])
def test_thread_closes_another_transport(lifetime, host, backend, workers):
    srv = lifetime("push", workers=workers, exe=host, backend=backend)
    with srv.connect() as a, srv.connect() as b:
        assert recv_line(a) == b"hello\n" and recv_line(b) == b"hello\n"
        assert ask(a, b"name a") == b"named\n"
        assert ask(b, b"close a") == b"closing\n"
        closed, _ = wait_closed(a, timeout=3)
        assert closed, "close() from a thread did not close the connection"
        assert ask(b, b"name b") == b"named\n"  # b is untouched
    out = stop_ok(srv)
    assert "CLOSED-FROM-THREAD" in out and "PUSHER-ERROR" not in out, out[-4000:]


@pytest.mark.parametrize("workers", [0, 1])
def test_thread_reads_transport_attributes(lifetime, workers):
    srv = lifetime("push", workers=workers)
    with srv.connect() as s:
        assert recv_line(s) == b"hello\n"
        s.sendall(b"attrs\n")
        assert recv_line(s, timeout=3) == b"attrs done x\n"
    out = stop_ok(srv)
    # peer and the http_* attributes belong to the connection's worker.
    assert "ATTRS peer=ParallelError http_path=AttributeError closed=False" in out, out[-4000:]


@pytest.mark.parametrize("backend", ["epoll", "io_uring"])
@pytest.mark.parametrize("workers", [0, 2])
def test_thread_sending_while_the_connection_closes(lifetime, backend, workers):
    # A thread sends as fast as it can while the client resets the connection: sends
    # queued for a connection that closes before they run are dropped, and the thread
    # then gets TransportClosedError.
    srv = lifetime("push", workers=workers, backend=backend)
    for i in range(8):
        s = srv.connect()
        assert recv_line(s) == b"hello\n"
        s.sendall(b"storm\n")
        assert recv_until(s, lambda d: d.count(b"\n") >= 50, timeout=5).count(b"\n") >= 50
        reset(s)
        deadline = time.monotonic() + 10
        while srv.output().count("STORM-END") <= i and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.output().count("STORM-END") == i + 1, srv.output()[-3000:]
    out = stop_ok(srv)
    assert out.count("STORM-END TransportClosedError") == 8, out[-4000:]
    assert "PUSHER-ERROR" not in out, out[-4000:]
