"""systemd socket activation (LISTEN_FDS/LISTEN_PID), on pyparallel-httpd and the runtime.

systemd-socket-activate listens, then execs the server on the first connection with the
socket as descriptor 3. Its socket is not SO_REUSEPORT, so a server that tried to bind the
port itself would fail with EADDRINUSE: serving at all proves it used the inherited socket.
"""
import http.client
import json
import shutil
import socket
import time

import pytest

from deploy_util import Instance, built, free_port, read_response

ACTIVATE = shutil.which("systemd-socket-activate")
pytestmark = [pytest.mark.skipif(not built(), reason="servers not built"),
              pytest.mark.skipif(not ACTIVATE, reason="systemd-socket-activate not installed")]


def get(port: int, path: str = "/id", timeout: float = 30) -> tuple[int, bytes]:
    """GET on a new connection; the first one also waits for the server to start."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, _, body, _ = read_response(s, b"")
        return status, body


@pytest.mark.parametrize("kind", ["httpd", "runtime"])
def test_serves_on_the_inherited_socket_without_binding(kind, tmp_path):
    port = free_port()
    srv = Instance(kind, port, "activated", tmp_path, prefix=[ACTIVATE, "-l", f"127.0.0.1:{port}"],
                   wait=False)
    try:
        assert srv.wait_for(r"Listening on 127\.0\.0\.1", 10), srv.output()
        # The first connection makes the activator exec the server (same process).
        for _ in range(20):
            status, body = get(port)
            assert (status, body.split()[0]) == (200, b"activated")
        # (Workers serve before the main thread logs that they do: wait for the line.)
        assert srv.wait_for(r"listeners systemd|127\.0\.0\.1:%d \(systemd\)" % port, 10)
        out = srv.output()
        assert "socket activation: 1 inherited: 127.0.0.1:%d (fd 3)" % port in out, out
        assert "cannot listen" not in out and "Address already in use" not in out
        assert srv.stop() == 0, srv.output()[-2000:]
    finally:
        srv.kill()


def test_children_do_not_inherit_the_variables(tmp_path):
    port = free_port()
    srv = Instance("runtime", port, "env", tmp_path, prefix=[ACTIVATE, "-l", f"127.0.0.1:{port}"],
                   wait=False)
    try:
        assert srv.wait_for(r"Listening on", 10)
        status, body = get(port, "/env")
        assert status == 200, body
        assert json.loads(body) == {"os_environ": [], "child": []}
    finally:
        srv.stop()
        srv.kill()


def test_a_wildcard_server_takes_systemds_dual_stack_socket(tmp_path):
    # `-l PORT` (like ListenStream=PORT) is an IPv6 [::] socket that also takes IPv4.
    port = free_port()
    srv = Instance("httpd", port, "wild", tmp_path, prefix=[ACTIVATE, "-l", str(port)],
                   wait=False, host="0.0.0.0")
    try:
        assert srv.wait_for(r"Listening on", 10)
        assert get(port)[0] == 200
        assert srv.wait_for("listeners systemd", 10), srv.output()
        assert f"[::]:{port} (fd 3)" in srv.output(), srv.output()
    finally:
        srv.stop()
        srv.kill()


def test_listen_pid_of_another_process_is_ignored(tmp_path):
    # Variables meant for another process: ignored (and unset), the port bound as usual.
    port = free_port()
    srv = Instance("httpd", port, "other", tmp_path, env={"LISTEN_PID": "1", "LISTEN_FDS": "1"})
    try:
        assert get(port)[0] == 200
        assert srv.wait_for("listeners bound", 10), srv.output()
        assert "LISTEN_PID=1 is not this process" in srv.output()
    finally:
        srv.stop()


def test_an_unmatched_inherited_socket_is_reported_and_the_server_binds(tmp_path):
    port, other = free_port(), free_port()
    srv = Instance("httpd", port, "mismatch", tmp_path,
                   prefix=[ACTIVATE, "-l", f"127.0.0.1:{other}"], wait=False)
    try:
        assert srv.wait_for(r"Listening on", 10)
        socket.create_connection(("127.0.0.1", other), timeout=5).close()  # starts it
        assert srv.wait_for(r"serving http://", 20), srv.output()
        assert get(port)[0] == 200
        assert f"inherited 127.0.0.1:{other} matches no --host/--port" in srv.output()
        assert "listeners bound" in srv.output()
    finally:
        srv.stop()
        srv.kill()


def unit_values(path, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in path.read_text().splitlines()
            if line.startswith(key + "=")]


def test_the_shipped_unit_pair_serves_through_the_socket(tmp_path):
    """examples/systemd's units as shipped, with the install path, the port and the
    metrics port rewritten: the service's ExecStart under an activator that listens where
    the .socket's ListenStream says."""
    from pptest import ROOT
    from pyserver import pyparallel
    units = ROOT / "examples" / "systemd"
    port, metrics = free_port(), free_port()
    (listen,) = unit_values(units / "pyparallel-hello.socket", "ListenStream")
    (exec_start,) = unit_values(units / "pyparallel-hello.service", "ExecStart")
    assert listen == "8080" and "--port 8080" in exec_start
    argv = exec_start.replace("/opt/pyparallel/bin/pyparallel", str(pyparallel())) \
        .replace("/opt/pyparallel/examples", str(ROOT / "examples")) \
        .replace("8080", str(port)).split()
    env = dict(e.split("=", 1) for e in unit_values(units / "pyparallel-hello.service",
                                                     "Environment"))
    assert env["PYPARALLEL_DRAIN_TIMEOUT"] == "10"
    env["PYPARALLEL_METRICS_PORT"] = env["PYPARALLEL_METRICS_PORT"].replace("9180", str(metrics))
    srv = Instance("runtime", port, "unit", tmp_path, wait=False, env=env,
                   command=[ACTIVATE, "-l", listen.replace("8080", str(port)), *argv])
    try:
        assert srv.wait_for(r"Listening on", 10)
        status, body = get(port, "/plaintext")
        assert (status, body) == (200, b"Hello, World!")
        assert srv.wait_for(r"\(systemd\)", 10), srv.output()
    finally:
        srv.stop()
        srv.kill()


@pytest.mark.parametrize("kind", ["httpd", "runtime"])
def test_every_worker_serves_from_the_one_inherited_socket(kind, tmp_path):
    """Workers share systemd's one socket (a dup each). The kernel would hand every
    connection to the first waiting worker; accepted connections are spread round-robin,
    which the per-worker metrics show."""
    from test_metrics import scrape
    from deploy_util import KeepAliveLoad
    port, mport = free_port(), free_port()
    srv = Instance(kind, port, "shared", tmp_path, workers=2, wait=False,
                   extra=["--metrics-port", str(mport)],
                   prefix=[ACTIVATE, "-l", f"127.0.0.1:{port}"])
    try:
        assert srv.wait_for(r"Listening on", 10)
        assert get(port)[0] == 200  # starts it
        assert srv.wait_for(r"metrics on http://", 20), srv.output()
        load = KeepAliveLoad(port, connections=8)
        time.sleep(1)
        load.stop()
        assert not load.failures, load.failures[:3]
        series, text = scrape(mport)
        for worker in ("0", "1"):
            conns = [v for (n, labels), v in series.items()
                     if n == "pyparallel_connections_total" and ("worker", f'"{worker}"') in labels]
            assert conns and conns[0] >= 3, text
    finally:
        srv.stop()
        srv.kill()
