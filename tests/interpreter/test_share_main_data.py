"""Main-thread data shared with the workers: what exists when run() starts becomes immortal
(interpreter/parallel/share.h), except objects with finalizers; the option that turns it off.

Immortality is observed through sys.getrefcount, which reports an immortal object's count
as 2**32 - 1 or more in the free-threaded build (a mortal one here has a handful)."""
import ast

import pytest

from test_parallel_module import OPTIONS, options_of

IMMORTAL = 2**31

# A script that builds data at import, starts run() with one worker and, from a worker
# callback, reports the reference counts of that data (a callback is where workers read it).
SCRIPT = r'''
import sys, parallel

TABLE = {i: [i] for i in range(1000, 3000)}     # a tracked dict of lists
ATOMIC = {i: i * 1000 for i in range(1000, 3000)}  # untracked: ints only
NESTED = (("a" * 50 + str(len(sys.argv)),), len(sys.argv) + 0.5)  # computed: constants in
# code objects are immortal already
OBJ = type("Thing", (), {})()
OBJ.payload = bytearray(b"x" * 100)


class WithDel:
    def __del__(self):
        print("finalized", flush=True)


FINAL = WithDel()
LOG = open(sys.argv[1], "w")          # never closed: its finalizer must flush it at exit
LOG.write("written before run()\n")


class Report:
    def connection_made(self, transport):
        big = lambda o: sys.getrefcount(o) > %(immortal)d
        return repr({
            "table": big(TABLE), "list": big(TABLE[1500]), "atomic": big(ATOMIC),
            "atomic_value": big(ATOMIC[1500]), "nested_str": big(NESTED[0][0]),
            "float": big(NESTED[1]), "obj": big(OBJ), "attr": big(OBJ.payload),
            "with_del": big(FINAL), "file": big(LOG),
            "after_run": big([1, 2, 3]),
        }).encode() + b"\n"


def ask():
    import socket, time
    try:
        while server.port == 0:       # bound once run() has opened the listeners
            time.sleep(0.01)
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            print(s.makefile().readline().strip(), flush=True)
        global FINAL
        FINAL = None      # its only reference: the finalizer runs now, while serving
    finally:
        parallel.stop()


server = parallel.server("127.0.0.1", 0)
parallel.register(transport=server, protocol=Report)
import threading
parallel.call_from_main_thread(lambda: threading.Thread(target=ask).start())
parallel.run(workers=1%(share)s)
''' % {"immortal": IMMORTAL, "share": "%(share)s"}


def run_script(pp, tmp_path, share_kw="", args=(), env=None):
    script = tmp_path / "share.py"
    script.write_text(SCRIPT % {"share": share_kw})
    log = tmp_path / "log.txt"
    r = pp.run(*args, script, log, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    report = ast.literal_eval(lines[0])
    return report, lines[1:], r.stderr, log.read_text()


def test_data_alive_at_run_is_immortal_on_the_workers(pp_ft, tmp_path):
    report, rest, stderr, log = run_script(pp_ft, tmp_path)
    shared = ("table", "list", "atomic", "atomic_value", "nested_str", "float", "obj", "attr")
    assert {k: report[k] for k in shared} == dict.fromkeys(shared, True)
    assert report["after_run"] is False
    assert "main-thread data shared with the workers" in stderr


def test_objects_with_finalizers_stay_mortal_and_are_finalized(pp_ft, tmp_path):
    report, rest, _, log = run_script(pp_ft, tmp_path)
    assert report["with_del"] is False and report["file"] is False
    assert rest == ["finalized"]                  # __del__ ran when the last reference went
    assert log == "written before run()\n"        # the unclosed file was flushed at exit


@pytest.mark.parametrize("how", ["keyword", "flag", "environment"])
def test_share_main_data_off(pp_ft, tmp_path, how):
    kw, args, env = "", (), None
    if how == "keyword":
        kw = ", share_main_data=False"
    elif how == "flag":
        args = ("--share-main-data", "off")
    else:
        env = {"PYPARALLEL_SHARE_MAIN_DATA": "0"}
    report, rest, stderr, log = run_script(pp_ft, tmp_path, kw, args, env)
    assert not any(report.values()), report
    assert "main-thread data shared" not in stderr
    assert rest == ["finalized"] and log == "written before run()\n"


def test_option_shows_in_options_and_help(pp):
    assert options_of(pp.run("-c", OPTIONS))["share_main_data"] is True
    off = options_of(pp.run("--share-main-data=no", "-c", OPTIONS))
    assert off["share_main_data"] is False
    env = options_of(pp.run("-c", OPTIONS, env={"PYPARALLEL_SHARE_MAIN_DATA": "off"}))
    assert env["share_main_data"] is False
    r = pp.run("--help")
    assert "--share-main-data" in r.stdout and "PYPARALLEL_SHARE_MAIN_DATA" in r.stdout


@pytest.mark.parametrize("args, env, message", [
    (["--share-main-data", "maybe"], None, "--share-main-data expects on or off, got 'maybe'"),
    ([], {"PYPARALLEL_SHARE_MAIN_DATA": "2"}, "PYPARALLEL_SHARE_MAIN_DATA expects on or off"),
])
def test_bad_share_values_exit_2(pp, args, env, message):
    r = pp.run(*args, "-c", "print('ran')", env=env)
    assert r.returncode == 2 and "ran" not in r.stdout
    assert message in r.stderr


def test_run_keyword_must_be_a_bool(pp):
    r = pp.run("-c", "import parallel; parallel.run(workers=1, share_main_data='yes')")
    assert r.returncode == 1
    assert "share_main_data expects True or False" in r.stderr
