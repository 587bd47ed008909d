"""Globals and module attributes: globals rebound to fresh objects while the module dict
resizes, the first specialization of `mod.attr` while the module's dict changes, and a
copy of a globals dict (`dict(g)`) used as the globals of the same code."""
import threading
import types

from harness import Box, Scenario, box_ok

GLOBALS_SOURCE = """
def read():
    return (VALUE, OTHER, len(FIXED))
"""


class GlobalsRebound(Scenario):
    """LOAD_GLOBAL_MODULE / LOAD_GLOBAL_BUILTIN while a writer rebinds the globals to fresh
    Boxes (the old ones are freed) and adds and removes other keys (the dict resizes)."""

    def __init__(self):
        self.ns = {"Box": Box, "VALUE": Box(1), "OTHER": Box(2), "FIXED": (1, 2, 3)}
        exec(GLOBALS_SOURCE, self.ns)
        self.func = self.ns["read"]

    def read(self):
        return self.func()

    def hot(self):
        return self.func

    def mutate(self, i):
        ns = self.ns
        ns["VALUE"] = Box(10000 + i)
        name = f"_filler{i % 64}"
        if name in ns:
            del ns[name]
        else:
            ns[name] = Box(i)
        if i % 7 == 0:
            ns["OTHER"] = Box(20000 + i)

    def ok(self, value):
        return box_ok(value[0]) and box_ok(value[1]) and value[2] == 3


MODULE_READER = "def f(m):\n" + "".join("    m.a\n" for _ in range(39)) + "    return m.a\n"


class ModuleFirstSpecialization(Scenario):
    """Two threads compile fresh functions that read `m.a` 40 times and call them (each call
    specializes LOAD_ATTR_MODULE for the first time) while a third adds and deletes 32
    attributes of m. Before the fix the specializer took the index from one keys object
    and the version from another, across a resize: SIGSEGV within seconds."""

    readers = 2

    def __init__(self):
        self.mod = types.ModuleType("races_mod")
        self.mod.a = Box(1)

    def read(self):
        ns = {}
        exec(MODULE_READER, ns)
        f = ns["f"]
        out = None
        for _ in range(4):
            out = f(self.mod)
        return out

    def mutate(self, i):
        m = self.mod
        for j in range(32):
            setattr(m, f"attr{j}", Box(j))
        for j in range(32):
            delattr(m, f"attr{j}")
        m.a = Box(1000 + i)

    def ok(self, value):
        return box_ok(value)


COPY_SOURCE = """
def read():
    return (VALUE, len(FIXED))
"""


class CopiedGlobals(Scenario):
    """`dict(g)` keeps g's layout; code specialized on g then runs with the copy as its
    globals while another thread rebinds and resizes the copy. The copy must not pass the
    guards cached for g (its keys are its own, and nothing marked them shared)."""

    def __init__(self):
        self.g = {"Box": Box, "VALUE": Box(1), "FIXED": (1, 2)}
        exec(COPY_SOURCE, self.g)
        self.code = self.g["read"].__code__
        self.lock = threading.Lock()
        self.copy = None
        self.mutate(0)

    def warm(self):
        f = self.g["read"]
        for _ in range(200):
            f()

    def hot(self):
        return self.g["read"]

    def read(self):
        f = types.FunctionType(self.code, self.copy)
        return [f() for _ in range(8)]

    def mutate(self, i):
        if i % 64 == 0:
            self.copy = dict(self.g)
        c = self.copy
        c["VALUE"] = Box(5000 + i)
        name = f"_f{i % 40}"
        if name in c:
            del c[name]
        else:
            c[name] = Box(i)

    def ok(self, value):
        return all(box_ok(v) and n == 2 for v, n in value)


SCENARIOS = {
    "globals_rebound_boxes": GlobalsRebound,
    "module_first_specialization": ModuleFirstSpecialization,
    "copied_globals": CopiedGlobals,
}
