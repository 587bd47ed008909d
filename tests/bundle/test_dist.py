"""The relocatable bundle (tools/make_dist.sh, ./pp dist), extracted and run as a user would.

The bundle is built once from the build under test, extracted into a temporary folder and
run with HOME elsewhere, no PYTHONHOME/PYTHONPATH, another current folder, and -- where a
mount namespace can be had (root, as CI runs) -- the interpreter cache, the build folder
and the repository hidden under empty tmpfs mounts, as on a machine that never had them.
Whether or not they are hidden, every path the interpreter uses (prefixes, sys.path, module
files, every mapped shared library) must be inside the bundle or glibc's/the C++ runtime's.
"""
import http.client
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time

import pytest

from pptest import ROOT, build_dir, free_port

BUILD = build_dir()
HOST = BUILD / "interpreter" / "pyparallel"
INFO = BUILD / "interpreter" / "interpreter.txt"
LIMIT = 64 * 1024 * 1024


def interpreter_info() -> dict:
    info = {}
    if INFO.is_file():
        for line in INFO.read_text().splitlines():
            key, _, value = line.partition("=")
            info[key] = value
    return info


INTERP = interpreter_info()
pytestmark = pytest.mark.skipif(
    not HOST.exists() or INTERP.get("free_threaded") != "true",
    reason=f"{HOST} not built on the free-threaded interpreter (the bundle carries that one)")

# What the bundle leaves to the target system: glibc and the C++ runtime (docs/decisions.md).
# (libhwloc also loads whatever optional plugins the system has, with their libraries; the
# tests turn that off with HWLOC_PLUGINS_PATH so that anything else loaded from the system
# is a library the bundle should have carried.)
SYSTEM_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/")
SYSTEM_LIBS = ("libc.so.", "libm.so.", "libmvec.so.", "ld-linux", "libstdc++.so.",
               "libgcc_s.so.", "libpthread.so.", "libdl.so.", "librt.so.", "libresolv.so.",
               "libnss_")
# Libraries the bundle carries that each program needs; they must come from the bundle.
ENGINE_LIBS = ("libfmt.so", "liburing.so", "libaio.so", "libhwloc.so", "libudev.so")
PYTHON_LIBS = ("libssl.so", "libcrypto.so", "libsqlite3.so", "libffi.so", "libz.so")


def cache_prefix() -> pathlib.Path:
    return pathlib.Path(INTERP["executable"]).resolve().parent.parent


def can_hide() -> bool:
    """Whether this process may mount a tmpfs in a private mount namespace (root, or
    CAP_SYS_ADMIN; a container may allow neither)."""
    if shutil.which("unshare") is None:
        return False
    with tempfile.TemporaryDirectory() as d:
        return subprocess.run(["unshare", "-m", "mount", "-t", "tmpfs", "pp-probe", d],
                              capture_output=True).returncode == 0


HIDE = can_hide()


def hidden(cmd: list[str], bundle: pathlib.Path) -> list[str]:
    """cmd run with the cache, the build and the repository under empty tmpfs mounts
    (a private mount namespace), when one can be had; else cmd as it is."""
    if not HIDE:
        return cmd
    dirs = {cache_prefix(), BUILD, ROOT}
    dirs = sorted((d for d in dirs if d.is_dir() and d not in bundle.parents),
                  key=lambda d: len(str(d)), reverse=True)
    mounts = " && ".join(f"mount -t tmpfs pp-hidden '{d}'" for d in dirs)
    return ["unshare", "-m", "sh", "-c", f'{mounts} && exec "$0" "$@"', *cmd]


def clean_env(home: pathlib.Path) -> dict:
    """This environment without anything that points Python or the loader somewhere."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "PP_", "PYPARALLEL_")) and k != "LD_LIBRARY_PATH"}
    env["HOME"] = str(home)
    env["HWLOC_PLUGINS_PATH"] = str(home / "no-hwloc-plugins")  # see SYSTEM_LIBS
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict:
    """Builds the bundle and extracts it: the tarball, the extracted folder, an empty HOME,
    a working folder, the time after extraction and make_dist's log."""
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([str(ROOT / "tools" / "make_dist.sh"), str(BUILD), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    tarball = pathlib.Path(proc.stdout.strip().splitlines()[-1])
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    with tarfile.open(tarball) as tf:
        tf.extractall(elsewhere)
    (bundle,) = elsewhere.iterdir()
    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("work")
    stamp = time.time()
    time.sleep(0.01)
    return {"tarball": tarball, "bundle": bundle, "home": home, "work": work, "stamp": stamp,
            "log": proc.stderr}


def run_in_bundle(dist: dict, args: list[str], **kw) -> subprocess.CompletedProcess:
    cmd = hidden([str(dist["bundle"] / "bin" / "pyparallel"), *args], dist["bundle"])
    return subprocess.run(cmd, cwd=dist["work"], env=clean_env(dist["home"]),
                          capture_output=True, text=True, timeout=60, **kw)


PROBE = """
import json, os, sys, ssl, sqlite3, decimal, ctypes, zlib, zoneinfo, parallel
maps = sorted({l.split()[-1] for l in open('/proc/self/maps') if '.so' in l.split()[-1]})
mods = {m: getattr(sys.modules[m], '__file__', None) for m in
        ('os', 'json', 'ssl', '_ssl', '_sqlite3', '_decimal', '_ctypes', 'zlib')}
print(json.dumps({'prefix': sys.prefix, 'exec_prefix': sys.exec_prefix,
                  'base_prefix': sys.base_prefix, 'executable': sys.executable,
                  'path': sys.path, 'maps': maps, 'mods': mods, 'uid': os.getuid(),
                  'stdlib': os.path.dirname(os.__file__)}))
"""


def probe(dist: dict, argv0: str | None = None, path: str | None = None) -> dict:
    host = dist["bundle"] / "bin" / "pyparallel"
    env = clean_env(dist["home"])
    if path is not None:
        env["PATH"] = path
    cmd = hidden([str(host), "-c", PROBE], dist["bundle"])
    if argv0 is not None:
        # exec -a: the program Python is told about is not the one that runs.
        cmd = hidden(["bash", "-c", f'exec -a {argv0} "$0" -c "$1"', str(host), PROBE],
                     dist["bundle"])
    proc = subprocess.run(cmd, cwd=dist["work"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def assert_inside(dist: dict, info: dict) -> None:
    bundle = str(dist["bundle"])
    for key in ("prefix", "exec_prefix", "base_prefix", "stdlib"):
        assert info[key].startswith(bundle), (key, info[key])
    for p in info["path"]:
        assert p == "" or p.startswith(bundle), p
    for name, f in info["mods"].items():
        assert f and f.startswith(bundle), (name, f)
    assert_maps(dist, info["maps"], ENGINE_LIBS + PYTHON_LIBS)


def assert_maps(dist: dict, maps: list[str], carried: tuple[str, ...]) -> None:
    """Every shared object mapped comes from the bundle or the system's library folders,
    none from the cache or the build, and each of `carried` from the bundle's lib/."""
    lib = str(dist["bundle"] / "lib") + "/"
    for name in carried:
        assert any(m.startswith(lib) and m[len(lib):].startswith(name) for m in maps), \
            (name, maps)
    hidden_dirs = (str(cache_prefix()), str(BUILD), str(ROOT))
    for m in maps:
        assert not m.startswith(hidden_dirs), m
        if not m.startswith(str(dist["bundle"])):
            assert m.startswith(SYSTEM_DIRS), m
            assert pathlib.Path(m).name.startswith(SYSTEM_LIBS), f"{m}: not carried"


@pytest.mark.skipif(not HIDE, reason="no private mount namespace (needs root or "
                    "CAP_SYS_ADMIN): the tests ran with the cache and build visible")
def test_cache_build_and_repository_really_hidden(dist):
    # Each is gone or empty (the build folder is gone when it lies in the hidden repository).
    visible = 'for d; do [ ! -e "$d" ] || [ -z "$(ls -A "$d")" ] || echo "$d"; done'
    dirs = [str(d) for d in (cache_prefix(), BUILD, ROOT)]
    out = subprocess.run(hidden(["sh", "-c", visible, "sh", *dirs], dist["bundle"]),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "", (out.stdout, out.stderr)


def test_bundle_size_and_contents(dist):
    tarball, bundle = dist["tarball"], dist["bundle"]
    assert tarball.name == f"{bundle.name}.tar.gz"
    assert bundle.name.startswith("pyparallel-") and bundle.name.endswith(
        f"-linux-{os.uname().machine}")
    assert 0 < tarball.stat().st_size < LIMIT
    assert "MiB" in dist["log"]  # make_dist prints the size
    stdlib = bundle / "lib" / "python3.13t"
    for f in ("bin/pyparallel", "bin/pyparallel-httpd", "lib/python3.13t/os.py",
              "lib/python3.13t/lib-dynload", "examples/tefb.py", "bench/scaling.sh",
              "BUNDLE.txt", "licenses/cpython.LICENSE.txt"):
        assert (bundle / f).exists(), f
    for gone in ("test", "idlelib", "tkinter", "ensurepip", "turtledemo",
                 "site-packages/pip"):
        assert not (stdlib / gone).exists(), gone
    assert not list(stdlib.glob("config-*"))
    assert not list(stdlib.glob("lib-dynload/_test*"))
    # The stubs, as a PEP 561 stub-only package, identical to the source.
    stubs = stdlib / "site-packages" / "parallel-stubs" / "__init__.pyi"
    assert stubs.read_text() == (ROOT / "interpreter" / "parallel" / "parallel.pyi").read_text()
    # The binaries look for their libraries beside themselves, relative to where they are.
    for exe in ("pyparallel", "pyparallel-httpd"):
        dyn = subprocess.run(["readelf", "-d", str(bundle / "bin" / exe)],
                             capture_output=True, text=True, check=True).stdout
        assert "[$ORIGIN/../lib]" in dyn, dyn
    info = (bundle / "BUNDLE.txt").read_text()
    assert "glibc" in info and "libfmt.so" in info


def test_runs_from_bundle_without_cache_or_build(dist):
    info = probe(dist)
    assert info["executable"] == str(dist["bundle"] / "bin" / "pyparallel")
    assert_inside(dist, info)


def test_the_readme_command_from_the_extraction_folder(dist, tmp_path):
    # `tar xf ... && ./pyparallel-X/bin/pyparallel app.py`, in a folder with a space in it.
    spaced = tmp_path / "a folder"
    shutil.copytree(dist["bundle"], spaced / dist["bundle"].name, symlinks=True)
    (spaced / "app.py").write_text(
        "import sys, ssl, parallel\nprint(sys.prefix)\nprint(parallel.__name__)\n")
    cmd = hidden([f"./{dist['bundle'].name}/bin/pyparallel", "app.py"], spaced)
    out = subprocess.run(cmd, cwd=spaced, env=clean_env(dist["home"]), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [str(spaced / dist["bundle"].name), "parallel"]


def test_argv0_not_leading_to_host_still_finds_bundle(dist):
    # argv[0] "pyparallel" and no bundle on PATH: Python alone would fall back to the
    # prefix it was configured with (the build machine's cache); the host says where it is.
    info = probe(dist, argv0="pyparallel", path="/usr/bin:/bin")
    assert info["executable"] == str(dist["bundle"] / "bin" / "pyparallel")
    assert_inside(dist, info)


def test_on_path_and_through_a_symlink(dist, tmp_path):
    # Through PATH, by a symlink elsewhere: the symlink's name stays sys.executable (as
    # python3's does) and the bundle is still found.
    link_dir = tmp_path / "bin"
    link_dir.mkdir()
    (link_dir / "pyparallel").symlink_to(dist["bundle"] / "bin" / "pyparallel")
    info = probe(dist, argv0="pyparallel", path=f"{link_dir}:/usr/bin:/bin")
    assert info["executable"] == str(link_dir / "pyparallel")
    assert_inside(dist, info)


def test_runs_as_an_unprivileged_user(dist):
    # A copy in a folder everyone may read, run as nobody (65534) when the tests run as root;
    # otherwise every test here already ran without root.
    unprivileged = os.geteuid() == 0
    top = pathlib.Path(tempfile.mkdtemp(prefix="pp-dist-"))
    try:
        top.chmod(0o755)
        bundle = top / dist["bundle"].name
        shutil.copytree(dist["bundle"], bundle, symlinks=True)  # keeps times: valid .pyc
        (top / "home").mkdir()
        drop = (["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
                if unprivileged else [])
        cmd = hidden([*drop, str(bundle / "bin" / "pyparallel"), "-c", PROBE], bundle)
        out = subprocess.run(cmd, cwd=top, env=clean_env(top / "home"), capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)
        assert info["uid"] == (65534 if unprivileged else os.geteuid())
        assert_inside(dict(dist, bundle=bundle), info)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_venv_from_bundle(dist, tmp_path):
    venv = tmp_path / "venv"
    made = run_in_bundle(dist, ["-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    cmd = hidden([str(venv / "bin" / "pyparallel"), "-c",
                  "import sys, json; print(json.dumps([sys.prefix, sys.base_prefix, sys.path]))"],
                 dist["bundle"])
    out = subprocess.run(cmd, cwd=dist["work"], env=clean_env(dist["home"]),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    prefix, base, path = json.loads(out.stdout)
    assert prefix == str(venv)
    assert base == str(dist["bundle"])
    assert str(venv / "lib" / "python3.13t" / "site-packages") in path


class Served:
    """A server started from the bundle (hidden from the cache and build), on a free port."""

    def __init__(self, dist: dict, cmd: list[str], port: int):
        self.proc = subprocess.Popen(hidden(cmd, dist["bundle"]), cwd=dist["work"],
                                     env=clean_env(dist["home"]), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.port = port
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}: "
                                     f"{self.proc.communicate()[1][-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"nothing listens on {port} after 20 s")
                time.sleep(0.05)

    def get(self, path: str) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type", ""), resp.read()
        finally:
            conn.close()

    def maps(self) -> list[str]:
        lines = pathlib.Path(f"/proc/{self.proc.pid}/maps").read_text().splitlines()
        return sorted({ln.split()[-1] for ln in lines if ".so" in ln.split()[-1]})

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode


def test_serves_an_example_from_the_bundle(dist):
    port = free_port()
    srv = Served(dist, [str(dist["bundle"] / "bin" / "pyparallel"), "--workers", "2",
                        str(dist["bundle"] / "examples" / "tefb.py"), "--host", "127.0.0.1",
                        "--port", str(port)], port)
    try:
        assert srv.get("/plaintext") == (200, "text/plain", b"Hello, World!")
        status, ctype, body = srv.get("/json")
        assert (status, ctype) == (200, "application/json")
        assert json.loads(body) == {"message": "Hello, World!"}
        # curl too, keep-alive over two requests.
        out = subprocess.run(["curl", "-sS", "--max-time", "10",
                              f"http://127.0.0.1:{port}/plaintext",
                              f"http://127.0.0.1:{port}/plaintext"],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0 and out.stdout == "Hello, World!" * 2, out.stderr
        assert_maps(dist, srv.maps(), ENGINE_LIBS)
    finally:
        assert srv.stop() == 0  # SIGINT: run() returns and the script exits 0


WSGI_APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi says " + environ["PATH_INFO"].encode()]
"""


@pytest.mark.skipif(not (BUILD / "interpreter" / "parallel" / "python").is_dir(),
                    reason="this build has no Python part of the parallel module")
def test_parallel_serve_from_the_bundle(dist):
    # The module's Python part (parallel.serve, the WSGI gateway) travels in the bundle.
    assert (dist["bundle"] / "lib" / "pyparallel" / "python" / "serve.py").is_file()
    (dist["work"] / "bundle_wsgi_app.py").write_text(WSGI_APP)
    port = free_port()
    srv = Served(dist, [str(dist["bundle"] / "bin" / "pyparallel"), "--workers", "2", "-m",
                        "parallel.serve", "bundle_wsgi_app:app", "--host", "127.0.0.1",
                        "--port", str(port)], port)
    try:
        assert srv.get("/hello") == (200, "text/plain", b"wsgi says /hello")
    finally:
        srv.stop()


def test_httpd_from_the_bundle(dist, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello.txt").write_text("from the bundle\n")
    port = free_port()
    srv = Served(dist, [str(dist["bundle"] / "bin" / "pyparallel-httpd"), "--host",
                        "127.0.0.1", "--port", str(port), "--workers", "1", "--root",
                        str(root)], port)
    try:
        assert srv.get("/plaintext") == (200, "text/plain", b"Hello, World!")
        assert srv.get("/hello.txt")[2] == b"from the bundle\n"
        assert_maps(dist, srv.maps(), ENGINE_LIBS)
    finally:
        srv.stop()


def test_scaling_bench_travels_with_the_bundle(dist):
    # bench/scaling.sh measures with bench/scaling.py on the bundle's own interpreter: both
    # are there and start (the run itself needs wrk and the anchor: a benchmark, not a test).
    bench = dist["bundle"] / "bench"
    for name in ("scaling.sh", "scaling.py", "benchlib.py", "servers/pp_cpu.py",
                 "servers/cpu_work.py", "servers/uvloop_httptools.py"):
        assert (bench / name).is_file(), name
    sh = subprocess.run([str(bench / "scaling.sh"), "--help"], capture_output=True, text=True,
                        timeout=60)
    assert sh.returncode == 0 and "--workers" in sh.stdout, sh.stderr
    py = run_in_bundle(dist, ["-B", str(bench / "scaling.py"), "--help"])
    assert py.returncode == 0 and "--anchor-python" in py.stdout, py.stderr


def test_zz_nothing_written_into_the_bundle(dist):
    # Named to run last in this module: after everything above ran from the bundle, no file
    # in it is new or changed -- the byte code shipped is valid, nothing was recompiled.
    changed = [str(p) for p in dist["bundle"].rglob("*") if p.stat().st_mtime > dist["stamp"]]
    assert changed == []
