"""Zero-downtime restarts and graceful drains, on pyparallel-httpd and the Python runtime.

A new instance started on the address of a running one takes its listening sockets over
(core/handoff.h); SIGTERM then makes the old one drain: the request under way on each
connection is answered with `Connection: close`, idle keep-alive connections are closed,
nothing queued in an accept queue is reset, and the process exits once drained (within
--drain-timeout). The swap runs under load from keep-alive clients (and wrk, when
installed), and must cost zero failed requests, resets or read errors.
"""
import signal
import socket
import time

import pytest

from deploy_util import (WRK, Instance, KeepAliveLoad, built, free_port, read_response,
                         run_wrk, wrk_result)

pytestmark = pytest.mark.skipif(not built(), reason="pyparallel-httpd or pyparallel not built")

KINDS = ["httpd", "runtime"]


@pytest.mark.parametrize("kind", KINDS)
def test_swap_under_load_loses_nothing(kind, tmp_path):
    port = free_port()
    old = Instance(kind, port, "old", tmp_path)
    new = None
    load = KeepAliveLoad(port, connections=12)
    wrk = run_wrk(port, 5, connections=32) if WRK else None
    try:
        time.sleep(1)
        new = Instance(kind, port, "new", tmp_path)
        assert new.wait_for(r"handed over by pid", 10), new.output()[-2000:]
        served_before = load.ok
        old.proc.send_signal(signal.SIGTERM)
        assert old.proc.wait(15) == 0, old.output()[-3000:]
        time.sleep(1)  # the new instance alone now
        ok_after = load.ok
        time.sleep(0.5)
    finally:
        load.stop()
        wrk_out = wrk_result(wrk) if wrk else None
        if new:
            new.stop()
        old.kill()
    assert not load.failures, f"{len(load.failures)} failed: {load.failures[:5]}"
    assert load.ok > served_before > 0
    assert load.ok > ok_after, "nothing was served after the old instance exited"
    assert load.closes > 0, "no keep-alive connection was told Connection: close"
    assert load.bodies.get("old") and load.bodies.get("new"), load.bodies
    assert "draining" in old.output() or "stopping" in old.output()
    if wrk_out:
        requests, text = wrk_out
        assert requests > 0, text
        assert "Socket errors" not in text, text
        assert "Non-2xx" not in text, text


@pytest.mark.parametrize("kind", KINDS)
def test_drain_closes_idle_and_answers_the_next_request_with_close(kind, tmp_path):
    port = free_port()
    srv = Instance(kind, port, "one", tmp_path, workers=1)
    try:
        idle = socket.create_connection(("127.0.0.1", port), timeout=5)
        busy = socket.create_connection(("127.0.0.1", port), timeout=5)
        for s in (idle, busy):  # both keep-alive, both served once
            s.sendall(b"GET /id HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _, _ = read_response(s, b"")
            assert status == 200 and headers.get("connection") != "close"
        # A request under way as the drain starts: its head is half there. A drain never
        # closes such a connection; its response is the last and says so.
        busy.sendall(b"GET /id HTTP/1.1\r\nHo")
        time.sleep(0.1)
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.wait_for(r"SIGTERM received", 5)
        time.sleep(0.3)
        busy.sendall(b"st: x\r\n\r\n")
        status, headers, body, _ = read_response(busy, b"")
        assert status == 200 and body.startswith(b"one")
        assert headers.get("connection") == "close", headers
        assert busy.recv(10) == b""  # then closed, cleanly
        idle.settimeout(5)
        t = time.monotonic()
        assert idle.recv(10) == b"", "the idle connection got bytes"  # FIN, not a reset
        assert time.monotonic() - t < 3
        assert srv.proc.wait(10) == 0, srv.output()[-2000:]
    finally:
        srv.stop()


def test_drain_finishes_a_slow_request_then_exits(tmp_path):
    port = free_port()
    srv = Instance("runtime", port, "slow", tmp_path, workers=1)
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /sleep?1 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.3)  # the handler sleeps
        start = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        status, headers, body, _ = read_response(s, b"")
        assert (status, body) == (200, b"slept")
        # Answered before the worker saw the drain (it was busy in the handler) or after
        # it (then with Connection: close): either way the connection closes, cleanly.
        s.settimeout(5)
        assert s.recv(10) == b""
        assert srv.proc.wait(10) == 0
        assert time.monotonic() - start < 3
    finally:
        srv.stop()


def test_drain_timeout_bounds_the_grace_period(tmp_path):
    port = free_port()
    srv = Instance("httpd", port, "grace", tmp_path, workers=1, extra=["--drain-timeout", "1"])
    try:
        # Half a request head: a request under way that never completes.
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /id HTTP/1.1\r\nHo")
        time.sleep(0.2)
        start = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(10) == 0
        took = time.monotonic() - start
        assert 0.8 < took < 4, f"{took:.2f} s"
    finally:
        srv.stop()


def test_restart_after_the_old_instance_is_gone_binds_anew(tmp_path):
    port = free_port()
    first = Instance("httpd", port, "first", tmp_path, workers=1)
    assert first.stop() == 0
    second = Instance("httpd", port, "second", tmp_path, workers=1)
    try:
        assert "listeners bound" in second.output(), second.output()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /id HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s, b"")[2] == b"second"
    finally:
        second.stop()
