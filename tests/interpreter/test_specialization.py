"""The specializing interpreter in the free-threaded build (interpreter/patches/).

Checks that specialization is really on in the free-threaded host and that forms left off stay
generic. The race scenarios (readers of specialized code while other threads mutate what
it reads) are in races/.
"""
import json


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
