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
%(before_run)s
parallel.run(workers=1%(share)s)
''' % {"immortal": IMMORTAL, "share": "%(share)s", "before_run": "%(before_run)s"}


def run_script(pp, tmp_path, share_kw="", args=(), env=None, before_run=""):
    script = tmp_path / "share.py"
    script.write_text(SCRIPT % {"share": share_kw, "before_run": before_run})
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


def test_data_frozen_by_gc_freeze_is_shared_too(pp_ft, tmp_path):
    # gc.freeze() (common before forking) asks the collector to keep those objects for
    # good: the walk shares them like any other rather than skipping them.
    report, rest, stderr, log = run_script(pp_ft, tmp_path, before_run="import gc; gc.freeze()")
    shared = ("table", "list", "atomic", "atomic_value", "nested_str", "float", "obj", "attr")
    assert {k: report[k] for k in shared} == dict.fromkeys(shared, True)
    assert report["with_del"] is False and report["file"] is False
    assert rest == ["finalized"] and log == "written before run()\n"


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


def report_of(pp, tmp_path, program, *args):
    script = tmp_path / "program.py"
    script.write_text(program)
    r = pp.run(script, *args, timeout=60)
    assert r.returncode == 0, r.stderr
    return ast.literal_eval(r.stdout.strip().splitlines()[-1]), r.stderr


GARBAGE = r"""
import gc, sys, weakref, parallel
gc.disable()                # garbage stays until someone collects it
FINALIZED = []


class Node:
    pass


class Final:
    def __del__(self):
        FINALIZED.append(self.name)


def cycle(cls, name):
    a, b = cls(), cls()
    a.other, b.other, a.name, b.name = b, a, name, name
    return weakref.ref(a)


PLAIN = cycle(Node, "plain")            # unreachable cycles: only these weak references
WITH_DEL = cycle(Final, "with_del")     # to them remain
KEPT = Node()


def check():
    gc.collect()                        # whatever is still mortal garbage goes now
    print(repr({"plain_collected": PLAIN() is None,
                "with_del_collected": WITH_DEL() is None,
                "finalized": sorted(set(FINALIZED)),
                "kept_shared": sys.getrefcount(KEPT) > %d}), flush=True)
    parallel.stop()


# A timer fires on a worker once run() has started; it hands check to the main thread.
parallel.timer(0, 0, parallel.call_from_main_thread, check)
parallel.run(workers=1)
""" % IMMORTAL


def test_garbage_at_run_is_collected_not_made_immortal(pp_ft, tmp_path):
    report, _ = report_of(pp_ft, tmp_path, GARBAGE)
    assert report == {"plain_collected": True, "with_del_collected": True,
                      "finalized": ["with_del"], "kept_shared": True}


def test_garbage_at_run_is_collected_with_sharing_off(pp_ft, tmp_path):
    # run() freezes what is alive either way: garbage frozen would never be finalized.
    report, _ = report_of(pp_ft, tmp_path, GARBAGE.replace("workers=1", "workers=1, "
                                                           "share_main_data=False"))
    assert report == {"plain_collected": True, "with_del_collected": True,
                      "finalized": ["with_del"], "kept_shared": False}


TUPLE_ON_ANOTHER_THREAD = r"""
import sys, threading, parallel
parked, go, out = threading.Event(), threading.Event(), []


class Box:
    def __init__(self, i):
        self.i = i


def items():
    yield Box(0)
    parked.set()
    if not go.wait(50):             # parked here, mid-tuple, while run() starts
        raise RuntimeError("run() did not start")
    for i in range(1, 200):         # past tuple()'s first guess: _PyTuple_Resize
        yield Box(i)


def build():
    try:
        t = tuple(items())
        out.append({"ok": [b.i for b in t] == list(range(200)),
                    "mortal": sys.getrefcount(t) < %d})
    except BaseException as e:
        out.append({"error": repr(e)})
    parallel.stop()


builder = threading.Thread(target=build)
builder.start()
parked.wait(20)
parallel.timer(0, 0, go.set)        # once run() has started
parallel.run(workers=1)
builder.join(20)
print(repr(out[0]))
""" % IMMORTAL


def test_tuple_being_built_on_another_thread_stays_mortal(pp_ft, tmp_path):
    report, _ = report_of(pp_ft, tmp_path, TUPLE_ON_ANOTHER_THREAD)
    assert report == {"ok": True, "mortal": True}


REACH = r"""
import socket, sys, threading, time, weakref, parallel
big = lambda o: sys.getrefcount(o) > %d


class Payload:
    pass


def make_protocol(refs):
    class Inline:                   # held only by the runtime once registered
        payload = Payload()

        def connection_made(self, transport):
            transport.close()
            parallel.stop()

    refs.append(weakref.ref(Inline.payload))    # a weak reference reaches nothing
    return Inline


def main():
    config = {"routes": [f"/r{i}" for i in range(50)]}       # a local of run()'s caller
    refs = []
    server = parallel.server("127.0.0.1", 0)
    parallel.register(transport=server, protocol=make_protocol(refs))

    def connect():
        while server.port == 0:     # bound once run() has opened the listeners
            time.sleep(0.01)
        socket.create_connection(("127.0.0.1", server.port)).recv(1)

    threading.Thread(target=connect).start()
    parallel.run(workers=1)
    print(repr({"config": big(config), "routes": big(config["routes"]),
                "payload": big(refs[0]())}))


main()
""" % IMMORTAL


def test_data_reached_from_run_caller_and_registered_protocols_is_shared(pp_ft, tmp_path):
    report, _ = report_of(pp_ft, tmp_path, REACH)
    assert report == {"config": True, "routes": True, "payload": True}


SUBCLASS = r"""
import sys, parallel
big = lambda o: sys.getrefcount(o) > %d


class Handle:
    pass


class SubHandle(Handle):
    pass


class Other:
    pass


ITEMS = {"base": Handle(), "subclass": SubHandle(), "other": Other()}
result = parallel._share_main_thread_data((Handle,))
assert result["refused"] == "" and result["immortalized"] > 0, result
print(repr({k: big(v) for k, v in ITEMS.items()}))
""" % IMMORTAL


def test_subclasses_of_kept_types_stay_mortal(pp_ft, tmp_path):
    report, _ = report_of(pp_ft, tmp_path, SUBCLASS)
    assert report == {"base": False, "subclass": False, "other": True}


def test_share_hook_refused_inside_run(pp_ft, tmp_path):
    program = r"""
import parallel
out = []
def inside():
    try:
        parallel._share_main_thread_data()
    except RuntimeError as e:
        out.append(str(e))
    parallel.stop()
parallel.timer(0, 0, parallel.call_from_main_thread, inside)
parallel.run(workers=1)
print(repr(out))
"""
    report, _ = report_of(pp_ft, tmp_path, program)
    assert report == ["_share_main_thread_data() is for use outside run()"]


def test_this_interpreter_is_accepted(pp_ft, tmp_path):
    # share_guard.h: any free-threaded 3.13.x (its refusals are tests/interpreter/
    # test_share_guard.cpp); the build's own interpreter shares and logs no refusal.
    report, stderr = report_of(pp_ft, tmp_path,
                               "import parallel\nprint(repr(parallel._share_main_thread_data()))")
    assert report["refused"] == "" and report["immortalized"] > 0
    assert "not shared" not in stderr
