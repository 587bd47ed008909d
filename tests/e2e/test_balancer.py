"""docs/deploy.md's HAProxy configuration in front of two runtime instances, on loopback.

The configuration is read from docs/deploy.md itself (so the document's configuration is
the tested one), its ports and pid file rewritten into a temporary folder, and HAProxy runs
in the foreground as this user. Requests must be spread over both instances (each answers
with its own id), and a killed instance must be routed around without a failed request.
"""
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from deploy_util import Instance, built, free_port, read_response
from pptest import ROOT

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy"
                                      if pathlib.Path("/usr/sbin/haproxy").exists() else None)
pytestmark = [pytest.mark.skipif(not built(), reason="servers not built"),
              pytest.mark.skipif(not HAPROXY, reason="haproxy not installed (./pp setup)")]


def documented_config() -> str:
    text = (ROOT / "docs" / "deploy.md").read_text()
    m = re.search(r"```haproxy\n(.*?)```", text, re.S)
    assert m, "docs/deploy.md has no haproxy block"
    return m.group(1)


def get_id(port: int) -> str:
    """GET /id on a new connection through the balancer; the instance's id."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /id HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, _, body, _ = read_response(s, b"")
        assert status == 200, (status, body)
        return body.split()[0].decode()


@pytest.fixture
def balancer(tmp_path):
    front, a_port, b_port = free_port(), free_port(), free_port()
    a = Instance("runtime", a_port, "a", tmp_path, workers=1)
    b = Instance("runtime", b_port, "b", tmp_path, workers=1)
    cfg = documented_config() \
        .replace("127.0.0.1:8080", f"127.0.0.1:{front}") \
        .replace("127.0.0.1:8081", f"127.0.0.1:{a_port}") \
        .replace("127.0.0.1:8082", f"127.0.0.1:{b_port}") \
        .replace("/run/haproxy-pyparallel.pid", str(tmp_path / "haproxy.pid"))
    (tmp_path / "haproxy.cfg").write_text(cfg)
    log = open(tmp_path / "haproxy.log", "w")
    check = subprocess.run([HAPROXY, "-c", "-f", str(tmp_path / "haproxy.cfg")],
                           capture_output=True, text=True, timeout=20)
    assert check.returncode == 0, check.stdout + check.stderr
    proxy = subprocess.Popen([HAPROXY, "-db", "-f", str(tmp_path / "haproxy.cfg"), "-p",
                              str(tmp_path / "haproxy.pid")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while True:  # up, and both servers passed their first health checks
            try:
                if {get_id(front) for _ in range(6)} == {"a", "b"}:
                    break
            except (OSError, AssertionError):
                pass
            assert time.monotonic() < deadline, (tmp_path / "haproxy.log").read_text()
            time.sleep(0.1)
        yield front, a, b
    finally:
        proxy.send_signal(signal.SIGTERM)
        try:
            proxy.wait(10)
        except subprocess.TimeoutExpired:
            proxy.kill()
        log.close()
        for inst in (a, b):
            inst.stop()


def test_requests_are_balanced(balancer):
    front, _, _ = balancer
    ids = [get_id(front) for _ in range(40)]
    assert 15 <= ids.count("a") <= 25 and ids.count("a") + ids.count("b") == 40, ids


def test_a_killed_instance_is_routed_around(balancer):
    front, a, _ = balancer
    a.proc.kill()
    a.proc.wait(10)
    start = time.monotonic()
    ids = [get_id(front) for _ in range(40)]  # each must succeed: retried on b
    assert set(ids) == {"b"}, ids
    assert time.monotonic() - start < 10


def test_a_drained_instance_loses_no_request(balancer):
    front, a, _ = balancer
    a.proc.send_signal(signal.SIGTERM)
    ids = []
    deadline = time.monotonic() + 10
    while a.proc.poll() is None:  # every request during the drain succeeds
        ids.append(get_id(front))
        assert time.monotonic() < deadline, "the drained instance did not exit"
    assert a.proc.returncode == 0
    after = [get_id(front) for _ in range(10)]
    assert after == ["b"] * 10, (ids, after)
