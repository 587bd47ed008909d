"""Fuzzing the `parallel` Python API: servers/api_fuzz_server.py builds a random
configuration from a seed (servers with random raw and http11 protocol classes, clients of
its own servers, timers) and, while ``run()`` serves, makes random API calls from every
kind of callback and from a ``threading`` thread: submit_work with callbacks and errbacks
that raise, call_from_main_thread[_and_wait], timers and their cancellation, callbacks
returning random types (huge values, odd objects, Responses, files, buffers that raise)
or raising, transports closed from other threads. This test drives its servers from
outside too (random bytes and requests on every port, a ``GET /ping`` every 50 ms).

Why: the C++ side of the module owns references across threads and queues; a wrong
reference count or a race shows as a crash, or as objects that are never freed, only
under such mixes. Each run must

- exit 0 (a crash is a negative exit code: the signal),
- report no leak: the refcounts of the sentinel objects and callables passed through
  every action, and the number of live objects of the script's types, are the same
  after ``run()`` as before it,
- report no API call raising an error its documentation does not give,
- import nothing on a worker (the script imports all it uses; a module the runtime needs
  on a worker is imported before they start, since one import holds every worker),
- answer ``/ping`` in every second of the run, and count requests, actions and answers.

Seeds: PP_FUZZ_SEEDS (comma-separated, default 1-5) x workers 2 and 0, PP_FUZZ_SECONDS
(default 3) each; a failure message names the command that replays it. A last test
checks the checker: a run told to keep references (--inject-leak) must report them.
"""
from __future__ import annotations

import json
import os
import random
import re
import socket
import struct
import subprocess
import threading
import time

import pytest

from pyserver import SERVERS, ServerProcess, gil_pyparallel, parse_responses, pyparallel

pytestmark = pytest.mark.skipif(not pyparallel().is_file(), reason=f"{pyparallel()} not built")

SCRIPT = SERVERS / "api_fuzz_server.py"
SEEDS = [int(s) for s in os.environ.get("PP_FUZZ_SEEDS", "1,2,3,4,5").split(",") if s.strip()]
SECONDS = float(os.environ.get("PP_FUZZ_SECONDS", "3"))
EXIT_TIMEOUT = SECONDS + 12  # run() stops itself after SECONDS; shutdown takes < 5 s

# Every run must have done each of these at least once.
MUST_HAPPEN = ("submit_work", "ran work", "call_main", "ran call_main", "call_main_wait",
               "timer", "timer cancel", "ran timer", "stats", "return", "raise", "requests",
               "connection_made", "connection_lost", "send_complete", "exception_handler",
               "pings",
               # call_from_main_thread[_and_wait] from a threading thread ran on the main
               # thread (the fuzzer reports any call that ran elsewhere as unexpected)
               "ran call_main from chaos", "ran call_main_wait from chaos")


class Driver:
    """Load from outside while the script runs: pings on the --port server, random bytes
    and requests on every server. Every socket call has a timeout."""

    def __init__(self, ports: list[int], seed: int) -> None:
        self.ports = ports
        self.seed = seed
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.pings: list[float] = []  # seconds since start of each answered ping
        self.ping_failures = 0
        self.sent = 0
        self.answered = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.pinger, daemon=True)]
        self.threads += [threading.Thread(target=self.random_load, args=(i,), daemon=True)
                         for i in range(2)]

    def __enter__(self) -> "Driver":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def pinger(self) -> None:
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.ports[0]), timeout=2) as s:
                    s.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    data = b""
                    while not parse_responses(data):
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    got = parse_responses(data)
                    if got and got[0][0] == 200 and got[0][2] == b"pong":
                        with self.lock:
                            self.pings.append(time.monotonic() - self.started)
                    else:
                        self.ping_failures += 1
            except OSError:
                self.ping_failures += 1
            self.stop.wait(0.05)

    REQUESTS = [b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n",
                b"POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
                b"GET /c?x=1 HTTP/1.1\r\nHost: t\r\n\r\n" * 4,
                b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", b"GET /_x HTTP/1.1\r\n\r\n",
                b"GET /connection_made HTTP/1.1\r\nHost: t\r\n\r\n",
                b"line one\nline two\n", b"GARBAGE\r\n\r\n"]

    def random_load(self, index: int) -> None:
        rng = random.Random(f"{self.seed}-driver-{index}")
        while not self.stop.is_set():
            port = rng.choice(self.ports)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.settimeout(0.3)
                    for _ in range(rng.randint(1, 4)):
                        if rng.random() < 0.4:
                            s.sendall(rng.randbytes(rng.randrange(1, 3000)))
                        else:
                            s.sendall(rng.choice(self.REQUESTS))
                        self.sent += 1
                        try:
                            if s.recv(1 << 16):
                                self.answered += 1
                        except socket.timeout:
                            pass
                    if rng.random() < 0.3:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
            except OSError:
                pass  # the protocol closed or reset us: its right

    def windows_without_ping(self, run_seconds: float) -> list[int]:
        """The whole seconds, counted from the first answered ping, in which no ping was
        answered, among those that ended while the server was still meant to serve: the
        server stops after run_seconds from its own start, so a slow first ping (a loaded
        machine) must not push a window past the end of the run."""
        if not self.pings:
            return list(range(int(run_seconds)))
        first = self.pings[0]
        # The server's own clock started before ours (it printed PORTS first), so its end
        # is at most run_seconds after our start; stopping takes a moment more.
        serving_until = run_seconds - 0.25
        return [k for k in range(int(run_seconds)) if first + k + 1 <= serving_until
                and not any(first + k <= t < first + k + 1 for t in self.pings)]


def fuzz_run(seed: int, workers: int, exe=None, extra: tuple = ()) -> tuple[dict, Driver]:
    """One run of the fuzzer: its summary (asserted to exist, with exit code 0) and the
    driver's numbers."""
    srv = ServerProcess(SCRIPT, "--seed", seed, "--seconds", SECONDS, "--run-workers", workers,
                        *extra, workers=None, exe=exe, listen_timeout=20)
    replay = " ".join(srv.cmd)
    try:
        m = srv.wait_for(r"PORTS (\[[\d, ]+\])", 10)
        assert m, f"no PORTS line ({replay}):\n{srv.output()[-3000:]}"
        ports = json.loads(m.group(1))
        with Driver(ports, seed) as driver:
            try:
                srv.proc.wait(EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass  # reported below as a hang
    finally:
        hung = srv.alive()
        code = srv.stop(timeout=5)
    out = srv.output()
    assert not hung, f"still running {EXIT_TIMEOUT} s after start, a hang ({replay}):\n" \
                     f"{out[-4000:]}"
    assert code == 0, f"exit code {code} (negative: killed by that signal); replay: {replay}\n" \
                      f"{out[-6000:]}"
    m = re.search(r"^FUZZ_SUMMARY (.*)$", srv.stdout, re.M)
    assert m, f"no FUZZ_SUMMARY line ({replay}):\n{out[-4000:]}"
    summary = json.loads(m.group(1))
    summary["replay"] = replay
    return summary, driver


def check(summary: dict, driver: Driver) -> None:
    replay = summary["replay"]
    counts = summary["counts"]
    print(f"\nfuzz seed {summary['seed']} workers {summary['workers']}: servers "
          f"{summary['servers']}, {summary['clients']} clients, limits {summary['limits']}; "
          f"pings answered {len(driver.pings)}, test requests {driver.sent} "
          f"(answered {driver.answered}); counts {json.dumps(counts)}")
    assert summary["leaks"] == [], f"leaks ({replay}): {summary['leaks']}"
    assert summary["unexpected"] == [], f"unexpected errors ({replay}): {summary['unexpected']}"
    assert summary["threads_alive"] == [], f"threads left ({replay}): {summary['threads_alive']}"
    assert summary["worker_imports"] == [], \
        f"imported on a worker ({replay}): {summary['worker_imports']}"
    missing = [k for k in MUST_HAPPEN if counts.get(k, 0) == 0]
    assert not missing, f"never happened: {missing} ({replay}); counts {counts}"
    assert driver.answered > 0, f"no answer to {driver.sent} requests ({replay})"
    gaps = driver.windows_without_ping(SECONDS)
    assert not gaps, (f"/ping unanswered during second(s) {gaps} of the run; answered at "
                      f"{[round(t, 2) for t in driver.pings]} ({replay})")


@pytest.mark.parametrize("workers", [2, 0])
@pytest.mark.parametrize("seed", SEEDS)
def test_api_fuzz(seed, workers):
    check(*fuzz_run(seed, workers))


@pytest.mark.skipif(gil_pyparallel() is None,
                    reason="no GIL build (set PP_GIL_BUILD_DIR or build ./build-interp-gil)")
@pytest.mark.parametrize("workers", [2, 0])
def test_api_fuzz_gil_build(workers):
    """The same on the GIL build (CPython 3.11): its own reference-counting paths."""
    check(*fuzz_run(SEEDS[0], workers, exe=gil_pyparallel()))


@pytest.mark.parametrize("build", [
    "free-threaded",
    pytest.param("gil", marks=pytest.mark.skipif(gil_pyparallel() is None,
                                                 reason="no GIL build")),
])
def test_main_queue_no_deadlock(build):
    """The fuzzer's first find, reduced (servers/main_queue_deadlock.py): workers queueing
    call_from_main_thread calls while the main thread waits for work; run() must return
    after stop(). The GIL build deadlocked on every try while wait_main() kept the main
    queue's mutex locked across Py_END_ALLOW_THREADS."""
    exe = pyparallel() if build == "free-threaded" else gil_pyparallel()
    cmd = [str(exe), str(SERVERS / "main_queue_deadlock.py"), "--seconds", "1.5"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:  # run() sends SIGKILL once the time is up
        pytest.fail(f"deadlock: no exit 8.5 s after stop(): {' '.join(cmd)}")
    assert out.returncode == 0 and "returned" in out.stdout, (out.returncode, out.stderr[-2000:])


def test_leak_check_detects_kept_references():
    """The checker itself: a run that keeps a sentinel and a Payload (--inject-leak)
    must report both, so a clean report means something."""
    summary, _ = fuzz_run(SEEDS[0], 2, extra=("--inject-leak",))
    leaked = {leak["what"] for leak in summary["leaks"]}
    assert {"sentinel timer", "live Payload objects"} <= leaked, summary["leaks"]
