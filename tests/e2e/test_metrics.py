"""Prometheus metrics (--metrics-port) on pyparallel-httpd and the runtime, and
parallel.stats(), checked against what real clients did.

Each test sends a known number of requests (and of 404s), holds connections open, then
scrapes /metrics with http.client (under load from keep-alive clients too) and checks that
the numbers add up: counters at least what was sent, 404s exactly the 404s asked for, the
open-connections gauge following held-open sockets, the histogram consistent.
"""
import http.client
import json
import re
import socket
import subprocess
import time

import pytest

from deploy_util import HTTPD, Instance, KeepAliveLoad, built, free_port, read_response
from pyserver import pyparallel

pytestmark = pytest.mark.skipif(not built(), reason="servers not built")
KINDS = ["httpd", "runtime"]
SERIES = re.compile(r'^(\w+)\{([^}]*)\} (\S+)$')


def scrape(port: int) -> tuple[dict, str]:
    """{(name, frozenset(labels)): value} of one /metrics response, and its text."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        text = r.read().decode()
        assert r.status == 200 and r.getheader("Content-Type").startswith("text/plain")
    finally:
        c.close()
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SERIES.match(line)
        assert m, f"not exposition format: {line!r}"
        labels = frozenset(tuple(kv.split("=", 1)) for kv in m.group(2).split(","))
        out[(m.group(1), labels)] = float(m.group(3))
    return out, text


def total(series: dict, name: str, **match) -> float:
    want = {(k, f'"{v}"') for k, v in match.items()}
    return sum(v for (n, labels), v in series.items() if n == name and want <= labels)


def start(kind: str, tmp_path, metrics: int, workers: int = 2) -> Instance:
    return Instance(kind, free_port(), "m", tmp_path, workers=workers,
                    extra=["--metrics-port", str(metrics)])


@pytest.mark.parametrize("kind", KINDS)
def test_counters_add_up(kind, tmp_path):
    mport = free_port()
    srv = start(kind, tmp_path, mport)
    try:
        assert srv.wait_for(rf"metrics on http://127\.0\.0\.1:{mport}/metrics", 10)
        before, _ = scrape(mport)
        n, sent_bytes, body_bytes = 150, 0, 0
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        for i in range(n):
            c.request("GET", "/id")
            r = c.getresponse()
            body_bytes += len(r.read())
            assert r.status == 200
        for i in range(5):
            c.request("GET", f"/nothing-here-{i}")
            r = c.getresponse()
            r.read()
            assert r.status == 404
        c.close()
        held = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(4)]
        for s in held:  # served once each, then kept open
            s.sendall(b"GET /id HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s, b"")[0] == 200
        after, text = scrape(mport)
        assert total(after, "pyparallel_requests_total") - \
            total(before, "pyparallel_requests_total") >= n + 5 + 4
        assert total(after, "pyparallel_responses_total", code="404") == 5, text
        assert total(after, "pyparallel_responses_total", code="200") >= n + 4
        assert total(after, "pyparallel_open_connections") >= 4, text
        assert total(after, "pyparallel_connections_total") >= 5
        assert total(after, "pyparallel_received_bytes_total") >= (n + 4) * len(
            b"GET /id HTTP/1.1\r\n\r\n")
        assert total(after, "pyparallel_sent_bytes_total") >= body_bytes + (n + 9) * 40
        assert total(after, "pyparallel_worker_cpu_seconds_total") > 0
        assert ("pyparallel_worker_queue_depth", frozenset({("server", f'"{kind}"'),
                                                           ("worker", '"0"')})) in after
        # The histogram: cumulative, +Inf equals the count, which covers every request.
        buckets = [v for (name, labels), v in sorted(
            ((k, v) for k, v in after.items() if k[0] == "pyparallel_request_duration_seconds_bucket"),
            key=lambda kv: float(dict(kv[0][1])["le"].strip('"').replace("+Inf", "inf")))]
        assert buckets == sorted(buckets) and len(buckets) == 20
        count = total(after, "pyparallel_request_duration_seconds_count")
        assert buckets[-1] == count >= n + 9
        assert total(after, "pyparallel_request_duration_seconds_sum") > 0
        assert total(after, "pyparallel_workers") == 2
        for s in held:
            s.close()
        deadline = time.monotonic() + 5
        while total(scrape(mport)[0], "pyparallel_open_connections") >= 4:
            assert time.monotonic() < deadline, "open connections never went down"
            time.sleep(0.05)
        # Anything but /metrics is not found.
        c = http.client.HTTPConnection("127.0.0.1", mport, timeout=5)
        c.request("GET", "/")
        assert c.getresponse().status == 404
        c.close()
    finally:
        assert srv.stop() == 0, srv.output()[-2000:]


@pytest.mark.parametrize("kind", KINDS)
def test_scrapes_under_load_keep_up(kind, tmp_path):
    mport = free_port()
    srv = start(kind, tmp_path, mport)
    load = KeepAliveLoad(srv.port, connections=8)
    try:
        time.sleep(0.5)
        seen = []
        for _ in range(5):
            series, _ = scrape(mport)
            seen.append(total(series, "pyparallel_responses_total", code="200"))
            time.sleep(0.2)
        load.stop()
        final, _ = scrape(mport)
        assert not load.failures, load.failures[:3]
        assert seen == sorted(seen) and seen[-1] > seen[0], seen  # growing while served
        assert total(final, "pyparallel_responses_total", code="200") >= load.ok
        assert total(final, "pyparallel_requests_total") >= load.ok
    finally:
        load.stop()
        srv.stop()


def test_stats_returns_what_metrics_shows(tmp_path):
    mport = free_port()
    srv = start("runtime", tmp_path, mport)
    try:
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        for path in ["/id"] * 20 + ["/missing"] * 3:
            c.request("GET", path)
            c.getresponse().read()
        c.request("GET", "/stats")
        r = c.getresponse()
        stats = json.loads(r.read())
        c.close()
        series, _ = scrape(mport)
        assert stats["responses"]["404"] == 3 == total(series, "pyparallel_responses_total",
                                                       code="404")
        assert stats["responses"]["200"] >= 20
        assert len(stats["workers"]) == 2
        assert sum(w["requests"] for w in stats["workers"]) == stats["requests"] >= 24
        lat = stats["latency"]
        assert len(lat["bounds"]) == len(lat["counts"]) == 20
        assert sum(lat["counts"]) >= 23 and lat["sum"] > 0
        assert stats["cpu_seconds"] > 0 and stats["queue_depth"] >= 0
        assert stats["wire_bytes_received"] >= 23 * len(b"GET /id HTTP/1.1\r\n\r\n")
        # /metrics counts at least what stats() saw (it was scraped after).
        assert total(series, "pyparallel_request_duration_seconds_count") >= sum(lat["counts"])
    finally:
        srv.stop()


def test_run_keyword_and_environment(tmp_path):
    mport, port = free_port(), free_port()
    code = (f"import parallel\n"
            f"class A:\n    http11 = True\n    def id(self, t, d): return b'k'\n"
            f"parallel.register(transport=parallel.server('127.0.0.1', {port}), protocol=A)\n"
            f"parallel.run(workers=1, metrics_port={mport})\n")
    srv = Instance("runtime", port, "kw", tmp_path, command=[str(pyparallel()), "-c", code],
                   wait=False)
    try:
        assert srv.wait_for(rf"metrics on http://127\.0\.0\.1:{mport}/metrics", 20), srv.output()
        assert "pyparallel_workers" in scrape(mport)[1]
    finally:
        srv.stop()
    env_port = free_port()
    srv = Instance("httpd", free_port(), "env", tmp_path, env={"PYPARALLEL_METRICS_PORT": str(env_port)})
    try:
        assert 'server="httpd"' in scrape(env_port)[1]
    finally:
        srv.stop()


@pytest.mark.parametrize("bad", ["nope", "70000", "host:", ""])
def test_bad_metrics_port_is_a_clear_error(bad):
    out = subprocess.run([str(HTTPD), "--metrics-port", bad, "--port", "0"], capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 2 and "--metrics-port" in out.stderr, out.stderr
    if bad:
        r = subprocess.run([str(pyparallel()), "--metrics-port", bad, "-c", "pass"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 2 and "--metrics-port expects PORT or HOST:PORT" in r.stderr, r.stderr
