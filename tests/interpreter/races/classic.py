"""The first race scenarios (issue 8's): specialized attribute, global, list and call forms
read while other threads add and delete attributes, replace methods and class attributes,
assign __class__, resize and rebind module globals, grow and shrink lists, swap __code__
and __defaults__, and specialize fresh code while keys are inserted. Their values are
mostly small ints and strings (immortal); the scenarios in the other files of this folder
use mortal Boxes (harness.py).
"""
import threading
import time
import types

from harness import Scenario


# --- instance attributes: add, delete, and a __dict__ materialized underneath -------------
class Plain:
    def __init__(self):
        self.x = 1


class AttrAddDelete(Scenario):
    """LOAD_ATTR_INSTANCE_VALUE / STORE_ATTR_INSTANCE_VALUE against del and extra attributes."""

    def __init__(self):
        self.objs = [Plain() for _ in range(8)]

    def read(self):
        seen = []
        for o in self.objs:
            try:
                seen.append(o.x)
            except AttributeError:
                seen.append(None)
        return seen

    def mutate(self, i):
        o = self.objs[i % len(self.objs)]
        step = i % 4
        if step == 0:
            o.x = 2
        elif step == 1:
            try:
                del o.x
            except AttributeError:
                pass
        elif step == 2:
            o.x = 1
        else:
            # Past the shared keys' capacity a real __dict__ replaces the inline values.
            setattr(o, f"extra{i % 40}", i)
            if i % 400 == 3:
                self.objs[i % len(self.objs)] = Plain()

    def ok(self, value):
        return all(v in (1, 2, None) for v in value)


class SlotAttrs(Scenario):
    """LOAD_ATTR_SLOT / STORE_ATTR_SLOT against set and delete."""

    class S:
        __slots__ = ("a", "b")

    def __init__(self):
        self.objs = [self.S() for _ in range(8)]
        for o in self.objs:
            o.a = "one"

    def read(self):
        out = []
        for o in self.objs:
            try:
                out.append(o.a)
            except AttributeError:
                out.append(None)
            o.b = len(out)
        return out

    def mutate(self, i):
        o = self.objs[i % len(self.objs)]
        if i % 3 == 0:
            try:
                del o.a
            except AttributeError:
                pass
        else:
            o.a = "one" if i % 2 else "two"

    def ok(self, value):
        return all(v in ("one", "two", None) for v in value)


# --- class attributes, methods and __class__ ----------------------------------------------
# Module-level classes: their methods use deferred reference counting, which is what lets
# the free-threaded build cache them (borrowed) in LOAD_ATTR_METHOD_* and LOAD_ATTR_CLASS.
class Replaced:
    tag = 10

    def m(self):
        return 1

    @property
    def prop(self):
        return 5


def replacement_m(self):
    return 2


def replacement_prop(self):
    return 6


ORIGINAL_M = Replaced.m
ORIGINAL_PROP = Replaced.prop


class ClassReplace(Scenario):
    """LOAD_ATTR_METHOD_* / CLASS / PROPERTY / NONDESCRIPTOR while the class changes."""

    def __init__(self):
        self.objs = [Replaced() for _ in range(4)]
        self.objs[0].x = 1  # one instance with inline values in use

    def read(self):
        out = []
        for o in self.objs:
            out.append(o.m())
            out.append(o.tag)
            out.append(Replaced.tag)
            out.append(o.prop)
        return out

    def mutate(self, i):
        Replaced.m = replacement_m if i % 2 else ORIGINAL_M
        Replaced.tag = 10 + (i % 3)
        Replaced.prop = property(replacement_prop) if i % 5 == 0 else ORIGINAL_PROP

    def ok(self, value):
        return all(v in (1, 2) for v in value[0::4]) and \
            all(v in (10, 11, 12) for v in value[1::4] + value[2::4]) and \
            all(v in (5, 6) for v in value[3::4])


class ShapeA:
    def who(self):
        return "A"


class ShapeB:
    def who(self):
        return "B"


class ClassAssign(Scenario):
    """Methods and attributes of objects whose __class__ is reassigned."""

    def __init__(self):
        self.objs = [ShapeA() for _ in range(4)]
        for o in self.objs:
            o.v = 7

    def read(self):
        return [(o.who(), o.v) for o in self.objs]

    def mutate(self, i):
        o = self.objs[i % len(self.objs)]
        o.__class__ = ShapeB if o.__class__ is ShapeA else ShapeA

    def ok(self, value):
        return all(w in ("A", "B") and v == 7 for w, v in value)


# --- module globals, builtins, module attributes ------------------------------------------
CONSTANT = 42
REBOUND = 0


def read_globals():
    # LOAD_GLOBAL_MODULE (CONSTANT, REBOUND), LOAD_GLOBAL_BUILTIN (len, isinstance)
    return (CONSTANT, REBOUND, len((1, 2, 3)), isinstance(REBOUND, int))


class GlobalsResize(Scenario):
    """Module globals read while other keys are added and removed (the dict resizes)."""

    def read(self):
        return read_globals()

    def hot(self):
        return read_globals

    def mutate(self, i):
        g = globals()
        name = f"_filler{i % 300}"
        if name in g:
            del g[name]
        else:
            g[name] = i

    def ok(self, value):
        return value[0] == 42 and value[2] == 3 and value[3] is True


class GlobalsRebound(Scenario):
    """A global rebound by one writer: readers see ints that never go backwards."""

    def __init__(self):
        self.last = threading.local()

    def read(self):
        return read_globals()

    def hot(self):
        return read_globals

    def mutate(self, i):
        global REBOUND
        REBOUND = i

    def ok(self, value):
        last = getattr(self.last, "v", -1)
        self.last.v = value[1]
        return value[0] == 42 and isinstance(value[1], int) and value[1] >= last


class ModuleAttrs(Scenario):
    """LOAD_ATTR_MODULE while the module's dict grows, shrinks and rebinds."""

    def __init__(self):
        self.mod = types.ModuleType("stress_mod")
        self.mod.value = "v0"

    def read(self):
        m = self.mod
        return (m.value, m.__name__)

    def mutate(self, i):
        m = self.mod
        m.value = "v1" if i % 2 else "v0"
        name = f"f{i % 200}"
        if hasattr(m, name):
            delattr(m, name)
        else:
            setattr(m, name, i)

    def ok(self, value):
        return value[0] in ("v0", "v1") and value[1] == "stress_mod"


# --- lists and dicts that change size under iteration -------------------------------------
class ListMutation(Scenario):
    """List indexing, stores, unpacking, iteration, append and len() while another thread
    grows and shrinks the same lists (and a dict)."""

    def __init__(self):
        self.items = list(range(100))
        self.pair = [1, 2]
        self.d = {i: i for i in range(100)}

    def read(self):
        total = 0
        for x in self.items:                # FOR_ITER_LIST
            total += x
        try:
            first = self.items[0]           # BINARY_SUBSCR_LIST_INT
            self.items[1] = 1               # STORE_SUBSCR_LIST_INT
        except IndexError:
            first = None
        try:
            a, b = self.pair                # UNPACK_SEQUENCE_LIST
        except ValueError:
            a, b = 1, 2
        out = []
        out.append(a + b)                   # CALL_LIST_APPEND
        hits = 0
        for k in (1, 50, 99, 500):
            if k in self.d:
                hits += self.d.get(k, 0) >= 0
        return (total, first, len(self.items), hits, out[0], bool(self.items))

    def mutate(self, i):
        if i % 2:
            self.items.append(i % 100)
            self.d[1000 + i % 500] = i
            self.pair.append(3)
        else:
            if self.items:
                self.items.pop()
            self.d.pop(1000 + i % 500, None)
            del self.pair[2:]

    def ok(self, value):
        total, first, n, hits, ab, truth = value
        return isinstance(total, int) and total >= 0 and first in (None, *range(100)) \
            and n >= 0 and 0 <= hits <= 4 and ab == 3 and truth in (True, False)


# --- code objects and defaults replaced ---------------------------------------------------
def swapped(a):
    return 1


def _other_code(a):
    x, y, z = a, a + 1, a + 2  # more locals and a deeper stack than swapped()'s own code
    return 2 + (x - x) + (y - y) + (z - z)


def defaulted(a, b=1):
    return b


def call_swapped():
    return (swapped(0), defaulted(0))


class CodeReplace(Scenario):
    """CALL_PY_EXACT_ARGS / CALL_PY_GENERAL while __code__ and __defaults__ are swapped."""

    codes = (swapped.__code__, _other_code.__code__)

    def read(self):
        return call_swapped()

    def hot(self):
        return call_swapped

    def mutate(self, i):
        swapped.__code__ = self.codes[i % 2]
        defaulted.__defaults__ = (1 + i % 2,)
        time.sleep(0.0005)  # each swap stops the world; let the readers run between

    def ok(self, value):
        return value[0] in (1, 2) and value[1] in (1, 2)


# --- first specialization racing key insertion ---------------------------------------------
FRESH_CLASS = """
class Fresh:
    def made(self, k):
        self.count = 0
        self.a = k
        setattr(self, NAMES[k % 9], k)
        self.b = self.a + self.count
        return self.b + OFFSET
"""


class FirstSpecialization(Scenario):
    """STORE_ATTR / LOAD_ATTR / LOAD_GLOBAL specialized for the first time by several threads
    at once, while other threads add keys to the same class's shared keys and to the globals
    the code reads: the specializer's lookups race the inserts (a worker's first
    connection_made does exactly this). Each mutation compiles the class again, so its
    code and its shared keys are new and the readers specialize them from scratch."""

    def __init__(self):
        self.ns = None
        self.mutate(0)

    def read(self):
        ns = self.ns
        obj = ns["Fresh"]()
        return [obj.made(k) for k in range(12)]

    def hot(self):
        return self.ns["Fresh"].made

    def mutate(self, i):
        ns = {"NAMES": [f"x{j}" for j in range(9)], "OFFSET": 1000, "setattr": setattr}
        exec(compile(FRESH_CLASS, "<fresh>", "exec"), ns)
        self.ns = ns
        for j in range(16):  # grow the globals dict while readers specialize LOAD_GLOBAL
            ns[f"filler{i}_{j}"] = j
            time.sleep(0.00002)

    def ok(self, value):
        return value == [k + 1000 for k in range(12)]


SCENARIOS = {
    "attr_add_delete": AttrAddDelete,
    "slot_attrs": SlotAttrs,
    "class_replace": ClassReplace,
    "class_assign": ClassAssign,
    "globals_resize": GlobalsResize,
    "globals_rebound": GlobalsRebound,
    "module_attrs": ModuleAttrs,
    "list_mutation": ListMutation,
    "code_replace": CodeReplace,
    "first_specialization": FirstSpecialization,
}
