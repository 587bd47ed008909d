"""Instance and class attributes: inline values under __dict__ replacement and
materialization, property/method/class-attribute swaps with objects that are not deferred
(so the specializer may not cache them borrowed), and __init__ swapped under
CALL_ALLOC_AND_ENTER_INIT. Every value read is a Box (harness.py)."""
from harness import Box, Scenario, box_ok

N_OBJS = 16


class Inline:
    def __init__(self, box):
        self.x = box   # in the object's inline values


class DictReplace(Scenario):
    """o.x always exists; a mutator makes fresh objects with x in their inline values,
    publishes them, then detaches the values (`o.__dict__ = {"x": same box}`), materializes
    the dict (`vars(o)`), writes through it, and grows it past the shared keys (a
    split-to-combined resize). LOAD_ATTR_INSTANCE_VALUE must never see the detached slots:
    before the fix of issue 18 a reader got AttributeError or a freed value."""

    def __init__(self):
        self.objs = [Inline(Box(1000 + k)) for k in range(N_OBJS)]

    def read(self):
        return [o.x for o in self.objs]

    def mutate(self, i):
        k = i % N_OBJS
        box = Box(2000 + i)
        o = Inline(box)
        self.objs[k] = o
        step = i % 6
        if step < 3:
            o.__dict__ = {"x": box}                 # detach the inline values
        elif step == 3:
            d = vars(o)                             # materialize, then write through it
            d["x"] = Box(3000 + i)
        elif step == 4:
            d = vars(o)
            for j in range(12):                     # keys the class never saw: a resize
                d[f"extra{j}_{i % 3}"] = j
            o.x = Box(4000 + i)
        else:
            o.x = Box(5000 + i)                     # a plain store into the inline values

    def ok(self, value):
        return len(value) == N_OBJS and all(box_ok(v) for v in value)


def make_class(tag):
    """A class made in a function: its methods and getters are nested functions, which the
    free-threaded build does not defer, so each swap below frees the old one for real."""

    class Swapped:
        attr = Box(tag)

        def method(self):
            return self.box

        @property
        def prop(self):
            return self.box

        def __init__(self):
            self.box = Box(tag)

    return Swapped


class ClassSwaps(Scenario):
    """LOAD_ATTR_METHOD_* / LOAD_ATTR_CLASS / LOAD_ATTR_PROPERTY / NONDESCRIPTOR while the
    class's method, property and class attribute are rebound to fresh, non-deferred
    objects and the old ones are dropped."""

    def __init__(self):
        self.cls = make_class(100)
        self.objs = [self.cls() for _ in range(4)]

    def read(self):
        out = []
        cls = self.cls
        for o in self.objs:
            out.append(o.method())
            out.append(o.prop)
            out.append(o.attr)
            out.append(cls.attr)
        return out

    def mutate(self, i):
        cls = self.cls
        step = i % 3
        if step == 0:
            def method(self, _keep=Box(i)):
                return _keep if _keep.i < 0 else self.box
            cls.method = method
        elif step == 1:
            cls.prop = property(lambda self: self.box)
        else:
            cls.attr = Box(200000 + i)

    def ok(self, value):
        return all(box_ok(v) for v in value)


INIT_SOURCE = """
def __init__(self, k):
    self.k = k
    self.box = Box({tag})
    self.tag = {tag}
"""


class WithInit:
    def __init__(self, k):
        self.k = k
        self.box = Box(7)
        self.tag = 7


class InitSwap(Scenario):
    """CALL_ALLOC_AND_ENTER_INIT (`WithInit(k)`) while __init__ is swapped for fresh
    functions: every instance is initialized by exactly one whole __init__."""

    def read(self):
        out = []
        for k in range(8):
            out.append(WithInit(k))
        return out

    def mutate(self, i):
        ns = {"Box": Box}
        exec(INIT_SOURCE.format(tag=1000 + i), ns)
        WithInit.__init__ = ns["__init__"]

    def ok(self, value):
        return all(o.k == k and box_ok(o.box) and o.box.i == o.tag
                   for k, o in enumerate(value))


SCENARIOS = {
    "inline_dict_replace": DictReplace,
    "class_attr_swaps": ClassSwaps,
    "init_swap": InitSwap,
}
