"""End to end: the flags a uvicorn or gunicorn deployment relies on, through
``pyparallel -m parallel.serve`` with a real HTTP client: proxy headers from trusted and
untrusted peers (X-Forwarded-* and RFC 7239 Forwarded), the root path whether the proxy
strips it or not, ``--factory``, ``--env-file``, ``--timeout-graceful-shutdown`` and
``--log-level``; for WSGI and ASGI alike. Plus the pure parts of ``parallel._proxy``
(trusted lists, the hop walk), run on the host's own interpreter.
"""
import json

import pytest

from apps.serving import serve
from pyserver import pyparallel

pytestmark = pytest.mark.skipif(not pyparallel().is_file(), reason=f"{pyparallel()} not built")

APPS = {"wsgi": "deploy_app:wsgi", "asgi": "deploy_app:asgi"}


def seen(srv, path="/x", headers=None) -> dict:
    status, _, body = srv.get(path, headers=headers)
    assert status == 200, body
    return json.loads(body)


@pytest.fixture(params=["wsgi", "asgi"])
def interface(request):
    return request.param


def started(*args, **kw):
    srv = serve(*args, workers=1, **kw)
    return srv


def stop(srv):
    code = srv.stop()
    assert code == 0, f"exit {code}:\n{srv.output()[-3000:]}"


FORWARDED = {"X-Forwarded-For": "203.0.113.7, 10.1.2.3", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "example.com"}


def test_proxy_headers_from_a_trusted_peer(interface):
    # 10.1.2.3 is another trusted proxy in front of ours: the client is the first
    # untrusted address from the nearest hop outwards, as uvicorn finds it.
    srv = started(APPS[interface], "--forwarded-allow-ips", "127.0.0.1,10.0.0.0/8")
    try:
        got = seen(srv, headers=FORWARDED)
        assert got["client"] == "203.0.113.7"
        assert str(got["port"]) == "0"
        assert got["scheme"] == "https"
        assert got["host"] == "example.com"
        # Without the headers, the connection's own address.
        got = seen(srv)
        assert got["client"] == "127.0.0.1" and got["scheme"] == "http"
        assert got["host"] == f"127.0.0.1:{srv.port}"
        # RFC 7239 Forwarded: quoted IPv6 with a port, the chosen hop's proto and host.
        got = seen(srv, headers={"Forwarded": 'for="[2001:db8::1]:4711";proto=https;'
                                              'host=api.example.com, for=10.9.9.9'})
        assert got["client"] == "2001:db8::1"
        assert got["scheme"] == "https" and got["host"] == "api.example.com"
    finally:
        stop(srv)


def test_proxy_headers_from_an_untrusted_peer_change_nothing(interface):
    # 127.0.0.1 (the test client) is not in the list: the client cannot claim to be
    # someone else, nor https.
    srv = started(APPS[interface], "--forwarded-allow-ips", "10.0.0.1")
    try:
        got = seen(srv, headers={**FORWARDED, "Forwarded": "for=198.51.100.1;proto=https"})
        assert got["client"] == "127.0.0.1" and got["scheme"] == "http"
        assert got["host"] == f"127.0.0.1:{srv.port}"
    finally:
        stop(srv)


def test_no_proxy_headers_and_the_variable(interface):
    srv = started(APPS[interface], "--no-proxy-headers")
    try:
        assert seen(srv, headers=FORWARDED)["client"] == "127.0.0.1"
    finally:
        stop(srv)
    # FORWARDED_ALLOW_IPS is uvicorn's variable for the default list. With "*" every hop
    # is trusted: the client is the farthest one, as uvicorn has it.
    srv = started(APPS[interface], env={"FORWARDED_ALLOW_IPS": "*"})
    try:
        assert seen(srv, headers={"X-Forwarded-For": "10.1.2.3, 203.0.113.9"})["client"] \
            == "10.1.2.3"
    finally:
        stop(srv)


def test_root_path_stripped_or_passed_on(interface):
    srv = started(APPS[interface], "--root-path", "/api")
    try:
        for path in ("/api/items", "/items"):  # a proxy that passes /api on, one that strips it
            got = seen(srv, path)
            assert got["root_path"] == "/api"
            if interface == "wsgi":
                assert got["path"] == "/items"  # PATH_INFO after SCRIPT_NAME
            else:
                assert got["path"] == "/api/items"  # ASGI's path includes root_path
                assert got["raw_path"] == "/api/items"
        # /apix is not under /api: only whole segments count.
        got = seen(srv, "/apix")
        assert got["path"] == ("/apix" if interface == "wsgi" else "/api/apix")
        got = seen(srv, "/api")
        assert got["path"] == ("" if interface == "wsgi" else "/api")
    finally:
        stop(srv)


def test_bad_root_path_and_address_list_are_usage_errors():
    srv = serve(APPS["wsgi"], "--root-path", "api/", workers=1, wait=False)
    assert srv.proc.wait(timeout=30) == 1
    assert "root_path must start with '/'" in srv.output()
    srv = serve(APPS["wsgi"], "--forwarded-allow-ips", "10.0.0.300", workers=1, wait=False)
    assert srv.proc.wait(timeout=30) == 1
    assert "'10.0.0.300' is not an address or a network" in srv.output()


def test_factory_env_file_and_graceful_timeout(tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("# settings\nexport PP_DEPLOY_FROM_ENV_FILE=\"from the file\"\n"
                        "PP_DEPLOY_OTHER=plain # a comment\n")
    srv = started("deploy_app:make_wsgi", "--factory", "--env-file", str(env_file),
                  "--timeout-graceful-shutdown", "2")
    try:
        assert seen(srv)["env_file"] == "from the file"
    finally:
        stop(srv)
    # The environment wins over the file, as python-dotenv's default does.
    srv = started(APPS["asgi"], "--env-file", str(env_file),
                  env={"PP_DEPLOY_FROM_ENV_FILE": "from the environment"})
    try:
        assert seen(srv)["env_file"] == "from the environment"
    finally:
        stop(srv)
    # A bad file line and a bad value are named.
    bad = tmp_path / "bad.env"
    bad.write_text("GOOD=1\nthis is not a setting\n")
    srv = serve(APPS["wsgi"], "--env-file", str(bad), workers=1, wait=False)
    assert srv.proc.wait(timeout=30) == 1
    assert "line 2: expected NAME=value" in srv.output()
    srv = serve(APPS["wsgi"], "--timeout-graceful-shutdown", "soon", workers=1, wait=False)
    assert srv.proc.wait(timeout=30) == 2
    assert "argument --timeout-graceful-shutdown: expects" in srv.output()


def test_log_level_silences_serves_own_line():
    srv = started(APPS["wsgi"], "--log-level", "warning")
    try:
        assert seen(srv)["client"] == "127.0.0.1"
    finally:
        stop(srv)
    assert "parallel.serve:" not in srv.output()
    assert "running (numa policy" not in srv.output()  # the runtime's start-up line is info too
    srv = started(APPS["wsgi"])
    try:
        seen(srv)
    finally:
        stop(srv)
    assert "parallel.serve: deploy_app:wsgi (wsgi)" in srv.output()
    assert "running (numa policy" in srv.output()


UNIT = r"""
import json
from parallel._proxy import ProxyHeaders, RootPath, TrustedPeers
t = TrustedPeers("127.0.0.1, 10.0.0.0/8, ::1")
out = {
  "trusted": [h in t for h in ("127.0.0.1", "10.200.1.1", "::1", "11.0.0.1", "unix:/x", None)],
  "everyone": "8.8.8.8" in TrustedPeers("*"),
  # every hop trusted: the farthest is the client
  "all_trusted": ProxyHeaders(t).resolve("127.0.0.1", None, "10.0.0.2, 10.0.0.3", None, None),
  "forwarded_unknown": ProxyHeaders(t).resolve("127.0.0.1", "for=unknown;proto=HTTPS", None,
                                               None, None),
  "forwarded_v4_port": ProxyHeaders(t).resolve("127.0.0.1", "For=192.0.2.60:8080", None,
                                               None, None),
  "last_proto": ProxyHeaders(t).resolve("127.0.0.1", None, None, "https, http", "a, b"),
}
try:
    RootPath("/api/")
except ValueError as e:
    out["root_error"] = str(e)
print(json.dumps(out))
"""


def test_proxy_unit():
    import subprocess
    r = subprocess.run([str(pyparallel()), "-c", UNIT], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["trusted"] == [True, True, True, False, False, False]
    assert out["everyone"] is True
    assert out["all_trusted"] == ["10.0.0.2", None, None]
    assert out["forwarded_unknown"] == [None, "https", None]
    assert out["forwarded_v4_port"] == ["192.0.2.60", None, None]
    assert out["last_proto"] == [None, "http", "b"]
    assert "must start with '/' and not end with one" in out["root_error"]
