"""Soak: a minute of mixed HTTP load on one pyparallel server (servers/soak_server.py, two
workers, short connection limits), checking that no good request fails and that memory
does not grow.

Why: the per-request paths are tested one at a time elsewhere; leaks and state mix-ups
show only when the paths run together for a long time. Client threads run at once for
the whole soak, each doing one kind of traffic:

- keep-alive: http.client, GET /hello and POST /echo bodies of 0 B..256 KiB, checked;
- new connection per request: ``Connection: close`` and HTTP/1.0, answer then EOF;
- pipelining: 16 requests in one write (hello and numbered echoes), 16 answers in order;
- bad requests: malformed request lines and headers, oversized bodies -> exactly the
  expected 4xx status and a close;
- aborted uploads: ``Content-Length: 1000000`` and part of the body, then FIN or RST;
  some stall instead and must get 408 from the body timeout;
- raising handler: GET /boom -> 500 (and one logged traceback), then the same
  connection still answers GET /hello;
- slow readers: GET /big (1 MiB) read at a trickle must arrive whole; GET /huge (8 MiB)
  never read must be closed by the send timeout; some read a little and reset;
- slow heads: half a request head must get 408 from the header timeout.

Every answer is checked byte for byte; the expected 4xx/5xx answers count as checks too.
Memory: the load pauses after a warm-up and again at the end; each time, once the
server reports no connection but ours, its VmRSS is read. The end must stay within 10%
of the warm-up value. (The server runs with glibc's mmap threshold fixed: see SERVER_ENV
for why the default makes RSS swing by a third with nothing leaked.)

PP_SOAK_SECONDS (default 60) sets the measured part; warm-up is min(10, that / 3);
PP_SOAK_SEED replays a run's random choices. Every socket operation has a 5 s timeout and
every wait a deadline: the test takes about soak + 16 s (76 s by default), and under two
minutes when the server hangs.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import socket
import struct
import threading
import time

import pytest

from pyserver import SERVERS, ServerProcess, pyparallel, wait_closed

pytestmark = pytest.mark.skipif(not pyparallel().is_file(), reason=f"{pyparallel()} not built")

SOAK_SECONDS = float(os.environ.get("PP_SOAK_SECONDS", "60"))
WARMUP_SECONDS = min(10.0, SOAK_SECONDS / 3)
RSS_GROWTH_LIMIT = 1.10

SEND_TIMEOUT = 2.0
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
KEEPALIVE_TIMEOUT = 5.0
SERVER_ENV = {
    "PYPARALLEL_SEND_TIMEOUT": str(SEND_TIMEOUT),
    "PYPARALLEL_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
    "PYPARALLEL_BODY_TIMEOUT": str(BODY_TIMEOUT),
    "PYPARALLEL_KEEPALIVE_TIMEOUT": str(KEEPALIVE_TIMEOUT),
    # A fixed mmap threshold: glibc otherwise raises it to the largest block freed (the
    # 8 MiB /huge responses) and its trim threshold to twice that, so each worker's arena
    # keeps up to 16 MiB of *free* memory resident in its top chunk, which malloc_trim()
    # does not release either. Measured: RSS swinging 70 -> 100 -> 71 MB between quiet
    # moments with nothing leaked. Fixed, freed blocks go back to the system and RSS
    # tracks what is in use, which is what a leak check needs.
    "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=131072",
}
SOCK_TIMEOUT = 5.0  # every connect/send/recv (answers take milliseconds here)
BIG_BYTES = 1 << 20
HUGE_BYTES = 8 << 20
UPLOAD_BYTES = 1_000_000
HELLO = b"Hello, World!"
ERROR_500 = b"500 Internal Server Error\n"


def big_body(n: int) -> bytes:
    """The body of /big and /huge (the same function as in servers/soak_server.py)."""
    filler = bytes(range(256)) * 16
    blocks = (i.to_bytes(4, "little") + filler[4:] for i in range((n + 4095) // 4096))
    return b"".join(blocks)[:n]


BIG = big_body(BIG_BYTES)


# -- bookkeeping -------------------------------------------------------------------------

class Tally:
    """Counts per kind of event, and the checks that failed (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.failures: list[str] = []
        self.failed = 0

    def ok(self, kind: str, n: int = 1) -> None:
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + n

    def fail(self, kind: str, what: str) -> None:
        with self.lock:
            self.failed += 1
            self.counts["FAILED " + kind] = self.counts.get("FAILED " + kind, 0) + 1
            if len(self.failures) < 40:
                self.failures.append(f"{kind}: {what}")

    def check(self, kind: str, good: bool, what) -> bool:
        """Counts a check of kind `kind`; `what` (a callable or a str) describes a failure."""
        if good:
            self.ok(kind)
        else:
            self.fail(kind, what() if callable(what) else what)
        return good


class Gate:
    """Lets the controller pause every load thread between two iterations (when they
    hold no connection) and stop them for good."""

    def __init__(self) -> None:
        self.cv = threading.Condition()
        self.paused = False
        self.stopping = False
        self.parked = 0

    def checkpoint(self) -> bool:
        """Called by a load thread between iterations: False once the soak is over."""
        with self.cv:
            if self.paused and not self.stopping:
                self.parked += 1
                self.cv.notify_all()
                while self.paused and not self.stopping:
                    self.cv.wait(0.5)
                self.parked -= 1
            return not self.stopping

    def hold(self) -> bool:
        """True while the load should wind down (a pause or the end was asked for)."""
        return self.paused or self.stopping

    def pause(self, threads: int, timeout: float) -> bool:
        with self.cv:
            self.paused = True
            deadline = time.monotonic() + timeout
            while self.parked < threads:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(left)
            return True

    def resume(self) -> None:
        with self.cv:
            self.paused = False
            self.cv.notify_all()

    def stop(self) -> None:
        with self.cv:
            self.stopping = True
            self.cv.notify_all()


# -- a strict little HTTP client ---------------------------------------------------------

class Conn:
    """A socket with a read buffer that reads whole HTTP/1.1 responses (Content-Length
    framing, the only one the server uses)."""

    def __init__(self, port: int, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(SOCK_TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 16)
        self.buf += chunk
        return bool(chunk)

    def response(self) -> tuple[int, dict, bytes]:
        """The next response: (status, lower-case headers, body); raises EOFError on an
        early EOF, socket.timeout after SOCK_TIMEOUT without data."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise EOFError(f"EOF before a response head; have {self.buf[:200]!r}")
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        self.buf = rest
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"EOF after {len(self.buf)} of {n} body bytes")
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, body

    def at_eof(self) -> bool:
        """True when the peer closes (EOF or reset) with nothing more to read."""
        closed, extra = wait_closed(self.sock, SOCK_TIMEOUT)
        return closed and not extra and not self.buf

    def close(self) -> None:
        self.sock.close()

    def reset(self) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: soak\r\n{extra}\r\n".encode()


def post(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: soak\r\nContent-Length: {len(body)}\r\n\r\n"
            .encode() + body)


def describe(resp) -> str:
    status, headers, body = resp
    return f"status {status} headers {headers} body {body[:80]!r} ({len(body)} B)"


# -- the load ------------------------------------------------------------------------------

class Load:
    """The client threads; each `kind_*` method is one bounded iteration."""

    def __init__(self, port: int, tally: Tally, gate: Gate, seed: int) -> None:
        self.port = port
        self.tally = tally
        self.gate = gate
        self.seed = seed

    def thread(self, name: str, fn, index: int) -> threading.Thread:
        rng = random.Random(f"{self.seed}-{name}-{index}")

        def loop():
            while self.gate.checkpoint():
                try:
                    fn(rng)
                except Exception as exc:  # every unexpected error is a failed good request
                    self.tally.fail(name, f"{type(exc).__name__}: {exc}")
                    time.sleep(0.05)

        return threading.Thread(target=loop, name=f"{name}-{index}", daemon=True)

    # keep-alive: http.client on one connection for up to 100 requests
    def keepalive(self, rng: random.Random) -> None:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=SOCK_TIMEOUT)
        try:
            for _ in range(rng.randint(20, 100)):
                if self.gate.hold():
                    break
                if rng.random() < 0.6:
                    c.request("GET", "/hello")
                    r = c.getresponse()
                    body = r.read()
                    self.tally.check("keepalive", r.status == 200 and body == HELLO,
                                     lambda: f"GET /hello: {r.status} {body[:80]!r}")
                else:
                    size = rng.choice([0, 1, 100, 4096, 65536, rng.randint(1, 256 << 10)])
                    sent = rng.randbytes(size)
                    c.request("POST", "/echo", body=sent)
                    r = c.getresponse()
                    body = r.read()
                    self.tally.check("upload", r.status == 200 and body == sent,
                                     lambda: f"POST /echo {size} B: {r.status}, "
                                             f"{len(body)} B back")
        finally:
            c.close()

    # a new connection per request: answer, then the server closes
    def newconn(self, rng: random.Random) -> None:
        for _ in range(20):
            if self.gate.hold():
                break
            c = Conn(self.port)
            try:
                if rng.random() < 0.5:
                    c.send(get("/hello", "Connection: close\r\n"))
                else:
                    c.send(b"GET /hello HTTP/1.0\r\n\r\n")
                resp = c.response()
                status, headers, body = resp
                good = (status == 200 and body == HELLO
                        and headers.get("connection", "close").lower() == "close")
                self.tally.check("newconn", good and c.at_eof(),
                                 lambda: "no answer-then-EOF: " + describe(resp))
            finally:
                c.close()

    # pipelining: 16 requests per write, 16 answers in order
    def pipeline(self, rng: random.Random) -> None:
        c = Conn(self.port)
        try:
            for _ in range(rng.randint(5, 30)):
                if self.gate.hold():
                    break
                expect = []
                batch = []
                for i in range(16):
                    if rng.random() < 0.5:
                        batch.append(get("/hello"))
                        expect.append(HELLO)
                    else:
                        tag = b"pipelined %d %d" % (i, rng.getrandbits(32))
                        batch.append(post("/echo", tag))
                        expect.append(tag)
                c.send(b"".join(batch))
                for i, want in enumerate(expect):
                    resp = c.response()
                    self.tally.check("pipelined", resp[0] == 200 and resp[2] == want,
                                     lambda: f"#{i} wanted {want!r}, got " + describe(resp))
        finally:
            c.close()

    BAD = [  # (request bytes, the status it must get)
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET\r\n\r\n", 400),
        (b"\x00\x01\x02\x03\r\n\r\n", 400),
        (b"GET /he llo HTTP/1.1\r\nHost: soak\r\n\r\n", 400),
        (b"GET /hello HTTP/1.1\r\nHost: soak\r\nBad Header\r\n\r\n", 400),
        (b"GET /hello HTTP/1.1\r\nHost: soak\r\nContent-Length: abc\r\n\r\n", 400),
        (b"GET /hello HTTP/9.9\r\nHost: soak\r\n\r\n", 505),
        (b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 2000000\r\n\r\n", 413),
    ]

    # bad requests: exactly the expected status, then a close (after a good one, sometimes)
    def bad(self, rng: random.Random) -> None:
        request, status = rng.choice(self.BAD)
        c = Conn(self.port)
        try:
            first_good = rng.random() < 0.3
            c.send((get("/hello") if first_good else b"") + request)
            if first_good:
                resp = c.response()
                self.tally.check("keepalive", resp[0] == 200 and resp[2] == HELLO,
                                 lambda: "before a bad request: " + describe(resp))
            resp = c.response()
            good = resp[0] == status and resp[1].get("connection", "").lower() == "close"
            self.tally.check("bad-request", good and c.at_eof(),
                             lambda: f"{request[:40]!r}: wanted {status} + close, got "
                                     + describe(resp))
        finally:
            c.close()
        time.sleep(0.005)

    # aborted uploads: part of a 1 MB body, then FIN or RST; or a stall -> 408
    def aborted_upload(self, rng: random.Random) -> None:
        c = Conn(self.port)
        try:
            part = rng.randint(1, UPLOAD_BYTES - 1)
            c.send(f"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: {UPLOAD_BYTES}\r\n\r\n"
                   .encode() + b"u" * part)
            how = rng.random()
            if how < 0.1:
                t0 = time.monotonic()
                resp = c.response()
                waited = time.monotonic() - t0
                self.tally.check("stalled-upload-408",
                                 resp[0] == 408 and waited < BODY_TIMEOUT + 5 and c.at_eof(),
                                 lambda: f"after {waited:.1f} s: " + describe(resp))
            elif how < 0.55:
                c.reset()
                self.tally.ok("aborted-upload")
            else:
                c.close()
                self.tally.ok("aborted-upload")
        finally:
            c.close()
        time.sleep(0.01)

    # a raising handler: 500, logged, and the connection keeps working
    def boom(self, rng: random.Random) -> None:
        c = Conn(self.port)
        try:
            for _ in range(rng.randint(1, 5)):
                c.send(get("/boom"))
                resp = c.response()
                self.tally.check("boom-500", resp[0] == 500 and resp[2] == ERROR_500,
                                 lambda: describe(resp))
                c.send(get("/hello"))
                resp = c.response()
                self.tally.check("keepalive", resp[0] == 200 and resp[2] == HELLO,
                                 lambda: "after a 500: " + describe(resp))
                time.sleep(0.02)
        finally:
            c.close()

    # a reader at a trickle: the whole 1 MiB body, byte-exact
    def trickle(self, rng: random.Random) -> None:
        c = Conn(self.port, rcvbuf=8192)
        try:
            c.send(get("/big"))
            while b"\r\n\r\n" not in c.buf:
                if not c._fill():
                    raise EOFError("EOF before the /big head")
            head, _, c.buf = c.buf.partition(b"\r\n\r\n")
            body = [c.buf]
            got = len(c.buf)
            while got < BIG_BYTES:
                chunk = c.sock.recv(8192)
                if not chunk:
                    break
                body.append(chunk)
                got += len(chunk)
                time.sleep(0.002)
            body = b"".join(body)
            self.tally.check("trickle-reader",
                             head.startswith(b"HTTP/1.1 200 ") and body == BIG,
                             lambda: f"{head[:40]!r}, {len(body)} of {BIG_BYTES} B, "
                                     f"equal prefix: {body == BIG[:len(body)]}")
        finally:
            c.close()

    # a reader that stops: the send timeout closes it; or it reads a little and resets
    def stalled(self, rng: random.Random) -> None:
        c = Conn(self.port, rcvbuf=4096)
        try:
            c.send(get("/huge"))
            if rng.random() < 0.3:
                c.sock.recv(rng.randint(1, 65536))
                c.reset()
                self.tally.ok("reset-reader")
                return
            time.sleep(SEND_TIMEOUT + 1.5)
            t0 = time.monotonic()
            closed, data = wait_closed(c.sock, SOCK_TIMEOUT)
            self.tally.check("stalled-reader-cut", closed and len(data) < HUGE_BYTES,
                             lambda: f"closed={closed} after {len(data)} B of {HUGE_BYTES} "
                                     f"({time.monotonic() - t0:.1f} s of reading)")
        finally:
            c.close()

    # half a request head: 408 from the header timeout, then a close
    def slow_head(self, rng: random.Random) -> None:
        c = Conn(self.port)
        try:
            c.send(b"GET /hello HTTP/1.1\r\nHost: soak\r\n"[:rng.randint(1, 30)])
            t0 = time.monotonic()
            resp = c.response()
            waited = time.monotonic() - t0
            self.tally.check("slow-head-408",
                             resp[0] == 408 and waited < HEADER_TIMEOUT + 5 and c.at_eof(),
                             lambda: f"after {waited:.1f} s: " + describe(resp))
        finally:
            c.close()


MIX = [  # (kind, threads)
    ("keepalive", 2),
    ("newconn", 2),
    ("pipeline", 2),
    ("bad", 1),
    ("aborted_upload", 1),
    ("boom", 1),
    ("trickle", 1),
    ("stalled", 1),
    ("slow_head", 1),
]


# -- the server's side -----------------------------------------------------------------

def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def server_stats(port: int) -> dict:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=SOCK_TIMEOUT)
    try:
        c.request("GET", "/stats")
        r = c.getresponse()
        assert r.status == 200
        return json.loads(r.read())
    finally:
        c.close()


def quiesced_rss(srv: ServerProcess, timeout: float = 5) -> tuple[int, dict]:
    """VmRSS (KiB) once the server has no connection open but the one asking."""
    deadline = time.monotonic() + timeout
    while True:
        stats = server_stats(srv.port)
        if stats["active_connections"] <= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert stats["active_connections"] <= 1, f"connections still open after {timeout} s: {stats}"
    time.sleep(0.2)
    return vm_rss_kib(srv.proc.pid), stats


# -- the test ------------------------------------------------------------------------------

def test_soak(record_property):
    seed = int(os.environ.get("PP_SOAK_SEED", random.randrange(1 << 30)))
    srv = ServerProcess(SERVERS / "soak_server.py", "--big-bytes", BIG_BYTES,
                        "--huge-bytes", HUGE_BYTES, workers=2, env=SERVER_ENV,
                        listen_timeout=10)
    tally = Tally()
    gate = Gate()
    load = Load(srv.port, tally, gate, seed)
    threads = [load.thread(kind, getattr(load, kind), i)
               for kind, n in MIX for i in range(n)]
    rss_samples: list[int] = []
    report: dict = {"seed": seed, "soak_seconds": SOAK_SECONDS,
                    "warmup_seconds": WARMUP_SECONDS}
    try:
        for t in threads:
            t.start()

        def run_for(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                assert srv.alive(), f"server died:\n{srv.output()[-4000:]}"
                rss_samples.append(vm_rss_kib(srv.proc.pid))
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))

        run_for(WARMUP_SECONDS)
        assert gate.pause(len(threads), 10), "load threads did not pause within 10 s"
        warm_rss, warm_stats = quiesced_rss(srv)
        report["warmup_counts"] = dict(tally.counts)
        gate.resume()

        run_for(SOAK_SECONDS)
        gate.stop()
        deadline = time.monotonic() + 10
        for t in threads:
            t.join(max(0.1, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in threads), "load threads did not finish"
        assert srv.alive(), f"server died:\n{srv.output()[-4000:]}"
        end_rss, end_stats = quiesced_rss(srv)

        # Still serving after all that.
        c = Conn(srv.port)
        c.send(get("/hello"))
        assert c.response()[2] == HELLO
        c.close()
    finally:
        gate.stop()
        code = srv.stop()

    counts = dict(sorted(tally.counts.items()))
    logged_500 = srv.output().count("Soak.boom raised (answered 500)")
    report.update(warm_rss_kib=warm_rss, end_rss_kib=end_rss,
                  max_rss_kib=max(rss_samples), ratio=round(end_rss / warm_rss, 4),
                  counts=counts, failed=tally.failed, server_requests=end_stats["requests"],
                  server_connections=end_stats["connections"], logged_500=logged_500)
    print("\nsoak:", json.dumps(report))
    for key in ("warm_rss_kib", "end_rss_kib", "max_rss_kib", "ratio", "failed",
                "server_requests", "server_connections"):
        record_property(key, report[key])
    record_property("counts", json.dumps(counts))

    assert code == 0, f"exit {code}:\n{srv.output()[-4000:]}"
    assert tally.failed == 0, (f"{tally.failed} good requests failed (seed {seed}):\n"
                               + "\n".join(tally.failures))
    # Every kind of traffic really ran, and was answered.
    for kind in ("keepalive", "upload", "newconn", "pipelined", "bad-request",
                 "aborted-upload", "boom-500", "trickle-reader", "stalled-reader-cut",
                 "slow-head-408"):
        assert counts.get(kind, 0) > 0, f"no {kind} traffic: {counts}"
    assert logged_500 == counts["boom-500"], (
        f"{counts['boom-500']} answers 500 but {logged_500} logged tracebacks")
    unexpected = [line for line in srv.stderr.splitlines()
                  if " raised" in line and "Soak.boom raised (answered 500)" not in line]
    assert not unexpected, "\n".join(unexpected[:20])
    assert end_rss <= RSS_GROWTH_LIMIT * warm_rss, (
        f"RSS grew from {warm_rss} KiB after warm-up to {end_rss} KiB at the end "
        f"(limit x{RSS_GROWTH_LIMIT}): {json.dumps(report)}")
