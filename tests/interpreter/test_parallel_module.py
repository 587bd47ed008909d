"""The parallel module (built in and as an extension) and the runtime options."""
import ast
import os

import pytest

OPTIONS = "import parallel; print(parallel._options())"


def options_of(r):
    assert r.returncode == 0, r.stderr
    return ast.literal_eval(r.stdout.strip().splitlines()[-1])


def test_parallel_is_built_in(pp):
    r = pp.run("-c", "import sys, parallel; print(parallel.__spec__.origin, "
                     "'parallel' in sys.builtin_module_names)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["built-in", "True"]


def test_import_keeps_the_gil_off(pp_ft):
    r = pp_ft.run("-c", "import sys; before = sys._is_gil_enabled(); import parallel; "
                        "print(before, sys._is_gil_enabled(), parallel._options()['free_threaded'])")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False", "True"]


def test_extension_module_imports_into_plain_python(pp):
    code = ("import sys, parallel; print(parallel.__file__); "
            "print(getattr(sys, '_is_gil_enabled', lambda: True)()); "
            "print(parallel._options())")
    r = pp.run("-c", code, exe=pp.python, env={"PYTHONPATH": str(pp.ext_dir),
                                               "PYPARALLEL_WORKERS": "3"})
    assert r.returncode == 0, r.stderr
    path, gil, opts = r.stdout.strip().splitlines()
    assert path.startswith(str(pp.ext_dir))
    assert gil == ("False" if pp.kind == "free-threaded" else "True")
    opts = ast.literal_eval(opts)
    assert opts["host"] is False and opts["workers"] == 3


def test_extension_rejects_malformed_environment(pp):
    r = pp.run("-c", "import parallel", exe=pp.python,
               env={"PYTHONPATH": str(pp.ext_dir), "PYPARALLEL_BACKEND": "carrier-pigeon"})
    assert r.returncode == 1
    assert "PYPARALLEL_BACKEND" in r.stderr and "carrier-pigeon" in r.stderr


def test_defaults(pp):
    opts = options_of(pp.run("-c", OPTIONS))
    assert opts["host"] is True
    assert opts["free_threaded"] is (pp.kind == "free-threaded")
    assert opts["origin"] == {"workers": "default", "backend": "default",
                              "numa_policy": "default"}


def test_environment_then_flags(pp):
    env = {"PYPARALLEL_WORKERS": "5", "PYPARALLEL_BACKEND": "epoll",
           "PYPARALLEL_NUMA_POLICY": "scatter"}
    opts = options_of(pp.run("-c", OPTIONS, env=env))
    assert (opts["workers"], opts["backend"], opts["numa_policy"]) == (5, "epoll", "scatter")
    assert set(opts["origin"].values()) == {"environment"}

    opts = options_of(pp.run("--workers", "2", "--backend=io_uring", "--numa-policy", "0-1,3",
                             "-c", OPTIONS, env=env))
    assert (opts["workers"], opts["backend"], opts["numa_policy"]) == (2, "io_uring", "0-1,3")
    assert set(opts["origin"].values()) == {"command line"}


def test_flags_mix_with_python_flags(pp, tmp_path):
    script = tmp_path / "s.py"
    script.write_text(OPTIONS + "\nimport sys; print(sys.stdout.write_through, sys.argv[1:])\n")
    r = pp.run("-u", "--workers=7", "-X", "dev", "--numa-policy=node:0", script, "--workers", "9")
    assert r.returncode == 0, r.stderr
    opts_line, flags_line = r.stdout.strip().splitlines()
    opts = ast.literal_eval(opts_line)
    assert (opts["workers"], opts["numa_policy"]) == (7, "node:0")
    assert flags_line == "True ['--workers', '9']"


@pytest.mark.parametrize("args, message", [
    (["--workers", "many"], "--workers expects a whole number"),
    (["--workers", "-1"], "--workers expects a whole number"),
    (["--workers=100000"], "--workers expects a whole number"),
    (["--backend", "iocp"], "--backend expects one of auto, io_uring, libaio, epoll"),
    (["--numa-policy", "3-1"], "--numa-policy expects compact"),
    (["--numa-policy", "node:x"], "--numa-policy expects compact"),
    (["--wrokers", "2"], "unknown option '--wrokers'"),
])
def test_bad_flags_exit_2_with_a_clear_message(pp, args, message):
    r = pp.run(*args, "-c", "print('ran')")
    assert r.returncode == 2
    assert "ran" not in r.stdout
    assert message in r.stderr
    assert "Traceback" not in r.stderr and "--help" in r.stderr


def test_flag_without_its_value(pp):
    r = pp.run("--workers")
    assert r.returncode == 2
    assert "option --workers needs a value" in r.stderr


@pytest.mark.parametrize("var, value", [
    ("PYPARALLEL_WORKERS", "two"),
    ("PYPARALLEL_BACKEND", "kqueue"),
    ("PYPARALLEL_NUMA_POLICY", "everywhere"),
])
def test_bad_environment_exits_2(pp, var, value):
    r = pp.run("-c", "print('ran')", env={var: value})
    assert r.returncode == 2
    assert var in r.stderr and value in r.stderr


def test_help_lists_runtime_and_python_options(pp):
    r = pp.run("--help")
    assert r.returncode == 0
    for text in ("--workers", "PYPARALLEL_WORKERS", "--backend", "PYPARALLEL_BACKEND",
                 "--numa-policy", "PYPARALLEL_NUMA_POLICY", "--topology", "-c cmd"):
        assert text in r.stdout


def test_help_says_what_workers_0_does(pp):
    """--workers 0 runs the callbacks on the main thread (README, run()); the help said
    "0 = one per CPU", which is only what no --workers at all means."""
    r = pp.run("--help")
    line = " ".join(r.stdout[r.stdout.index("--workers N"):].split("PYPARALLEL_WORKERS")[0]
                    .split())
    assert "0 runs every callback on the main thread" in line, line
    assert "one per CPU" in line and "0 = one per CPU" not in line, line
    bad = pp.run("--workers", "x", "-c", "pass")
    assert "0 (callbacks on the main thread)" in bad.stderr, bad.stderr


def test_topology(pp):
    r = pp.run("--workers", "3", "--topology")
    assert r.returncode == 0, r.stderr
    assert f"cpus allowed: {len(os.sched_getaffinity(0))}" in r.stdout
    assert "workers: 3 (command line)" in r.stdout
    assert r.stdout.count("worker ") >= 3


def test_cpu_count_and_thread_identity(pp):
    code = ("import os, threading, parallel\n"
            "seen = []\n"
            "t = threading.Thread(target=lambda: seen.append(parallel.is_parallel_thread()))\n"
            "t.start(); t.join()\n"
            "print(parallel.cpu_count() == len(os.sched_getaffinity(0)), "
            "parallel.is_parallel_thread(), seen[0])\n")
    r = pp.run("-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "False", "False"]


def test_response_cycles_are_collected(pp):
    # A Response whose headers (or a subclass's attributes) refer back to it is garbage
    # the cycle collector must free; before Response supported GC these lived forever.
    code = """if 1:
        import gc, weakref, parallel
        class R(parallel.Response):
            pass
        refs = []
        for i in range(100):
            headers = {}
            r = R(b'x', 200, headers)
            headers['self'] = r
            r.me = r
            refs.append(weakref.ref(r))
            del r, headers
        gc.collect()
        print(sum(ref() is not None for ref in refs), gc.is_tracked(parallel.Response(b'')))
    """
    r = pp.run("-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "True"]


def test_limits_defaults_environment_then_flags(pp):
    # The connection limits (core/limit_options.h): nginx's timeouts by default, a
    # PYPARALLEL_* variable over the default, a flag over the variable.
    limits = options_of(pp.run("-c", OPTIONS))["limits"]
    timeouts = ("header_timeout", "keepalive_timeout", "body_timeout", "send_timeout")
    assert [limits[k] for k in timeouts] == [60, 75, 60, 60]
    assert (limits["max_body"], limits["max_header_bytes"]) == (1 << 20, 64 << 10)

    env = {"PYPARALLEL_HEADER_TIMEOUT": "7", "PYPARALLEL_MAX_BODY": "2k",
           "PYPARALLEL_MAX_CONNECTIONS": "9"}
    limits = options_of(pp.run("-c", OPTIONS, env=env))["limits"]
    assert (limits["header_timeout"], limits["max_body"], limits["max_connections"]) == \
        (7, 2048, 9)

    limits = options_of(pp.run("--header-timeout", "0.5", "--max-body=1m",
                               "--keepalive-timeout", "0", "-c", OPTIONS, env=env))["limits"]
    assert (limits["header_timeout"], limits["max_body"], limits["max_connections"],
            limits["keepalive_timeout"]) == (0.5, 1 << 20, 9, 0)
