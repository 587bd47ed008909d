"""The specializing interpreter in the free-threaded build (interpreter/cpython/patches/).

Checks that specialization is really on in the free-threaded host and that forms left off stay
generic. The race scenarios (readers of specialized code while other threads mutate what
it reads) are in races/.
"""
import json
import re
import shutil
import subprocess

import pytest


SPECIALIZED = r"""
import dis, json, _opcode, _opcode_metadata

class P:
    def __init__(self, x):
        self.x = x
    def get(self):
        return self.x

SCALE = 3

def work(n):
    total = 0
    for i in range(n):
        p = P(i)
        total += p.get() * SCALE
        total += len((i, i))
    return total

class Hinted:
    pass

hinted_obj = Hinted()
hinted_obj.__dict__ = {"a3": 3}  # a real __dict__: loads would use a dict hint

def hinted(o):
    return o.a3

for _ in range(50):
    work(20)
    hinted(hinted_obj)
forms = sorted({i.opname for f in (work, P.__init__, P.get)
                for i in dis.get_instructions(f, adaptive=True)})
hint_forms = sorted({i.opname for i in dis.get_instructions(hinted, adaptive=True)})
allowed = _opcode.FT_SPECIALIZED_OPCODES
names = {v: k for k, v in _opcode_metadata._specialized_opmap.items()}
print(json.dumps({"ft": _opcode.ENABLE_SPECIALIZATION_FT, "forms": forms,
                  "hint_forms": hint_forms,
                  "allowed": None if allowed is None else sorted(names[o] for o in allowed)}))
"""


def test_free_threaded_host_specializes(pp_ft):
    r = pp_ft.run("-c", SPECIALIZED)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ft"] == 1
    for form in ("BINARY_OP_ADD_INT", "BINARY_OP_MULTIPLY_INT", "FOR_ITER_RANGE",
                 "LOAD_GLOBAL_MODULE", "LOAD_GLOBAL_BUILTIN", "CALL_LEN",
                 "LOAD_ATTR_INSTANCE_VALUE", "STORE_ATTR_INSTANCE_VALUE",
                 "LOAD_ATTR_METHOD_WITH_VALUES", "CALL_PY_EXACT_ARGS"):
        assert form in out["forms"], (form, out["forms"])


def test_forms_left_off_stay_generic(pp_ft):
    r = pp_ft.run("-c", SPECIALIZED)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # A materialized __dict__ indexed by a cached hint without its lock: off, so the
    # site stays generic (the GIL build would make it LOAD_ATTR_WITH_HINT).
    assert "LOAD_ATTR_WITH_HINT" not in out["allowed"]
    assert "LOAD_ATTR_WITH_HINT" not in out["hint_forms"]
    assert "LOAD_ATTR" in out["hint_forms"]
    for off in ("STORE_ATTR_WITH_HINT", "FOR_ITER_GEN", "SEND_GEN", "BINARY_SUBSCR_GETITEM",
                "BINARY_OP_INPLACE_ADD_UNICODE"):
        assert off not in out["allowed"]
    for on in ("LOAD_ATTR_INSTANCE_VALUE", "BINARY_SUBSCR_LIST_INT", "CALL_LIST_APPEND"):
        assert on in out["allowed"]



# One thread, no contention: LOAD_GLOBAL's first specialization on fresh globals dicts,
# and buffered files closed (close() flushes).
ONE_THREAD = r"""
import os, tempfile, types
g = {}
exec("def read():\n    return (VALUE, len(FIXED))\n", g)
code = g["read"].__code__
for i in range(N):
    f = types.FunctionType(code, {"VALUE": i, "FIXED": (1, 2)})
    for _ in range(4):
        f()
with tempfile.TemporaryDirectory() as d:
    for i in range(N):
        with open(os.path.join(d, "f"), "w") as f:
            f.write("x")
print("done")
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_one_thread_never_spins_on_a_lock(pp_ft):
    """A critical section nested in one on the same object (upstream: a buffered file's
    close() calls flush(); patch 0011: LOAD_GLOBAL's specializer marks the dicts it holds
    shared) locked the non-reentrant mutex again: 40 sched_yield calls, then a park that
    the thread's own detach ended. Under load each yield costs a time slice: exits took
    10 s and more. Patch 0017 makes such a section lock nothing. One thread, nothing to
    wait for: (next to) no sched_yield at all."""
    n = 500
    r = subprocess.run(["strace", "-f", "-c", "-e", "trace=sched_yield,close", "-o", "/dev/stdout",
                        str(pp_ft.host), "-c", f"N = {n}\n" + ONE_THREAD],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr[-2000:]
    def calls(name):
        m = re.search(rf"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?{name}$", r.stdout,
                      re.M)
        return int(m.group(1)) if m else 0

    # close() is in every run: its line shows that the summary was read right, so a
    # missing sched_yield line means none.
    assert calls("close") >= n, f"strace's summary not understood:\n{r.stdout}"
    yields = calls("sched_yield")
    assert yields < 20, f"{yields} sched_yield calls:\n{r.stdout}"
