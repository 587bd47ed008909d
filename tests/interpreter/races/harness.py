"""The race harness: threads run specialized code while other threads change what it reads.

A scenario warms its hot code up on one thread (so its instructions are specialized before
any other thread runs), then READERS threads call `read()` while MUTATORS threads call
`mutate(i)`; every value a reader sees goes through `ok()`, the set of values a correct
interpreter can produce. A wrong value, an unexpected exception, a crash or a hang fails
the scenario. At the end `run()` prints one JSON line (reads done, bad values, errors, the
specialized forms the hot code had after warm-up) and returns the exit status.

Values are `Box`es: mortal heap objects that check themselves. Small ints and interned
strings are immortal in the free-threaded build, so a stale read of one is never freed and
looks right; a stale read of a Box that has been freed and reused fails `Box.valid()`.
"""
import dis
import json
import sys
import threading

READERS = 3
MUTATORS = 1


class Box:
    """A mortal value that knows what it holds: `valid()` is False if this memory now holds
    something else (a freed Box reused for another object, or a half-written one)."""

    __slots__ = ("i", "check")

    def __init__(self, i):
        self.i = i
        self.check = ~i

    def valid(self):
        return type(self) is Box and self.check == ~self.i

    def __repr__(self):
        return f"Box({self.i})"


def box_ok(value, allowed=None):
    """Whether `value` is a sound Box (and, given `allowed`, one of those numbers)."""
    if type(value) is not Box:
        return False
    try:
        if not value.valid():
            return False
    except AttributeError:
        return False
    return allowed is None or value.i in allowed


class Scenario:
    """A hot function for readers, a mutation for mutators, and a check of each result."""

    readers = READERS
    mutators = MUTATORS

    def warm(self):
        for _ in range(200):
            self.read()

    def read(self):
        raise NotImplementedError

    def mutate(self, i):
        raise NotImplementedError

    def ok(self, value):
        raise NotImplementedError

    def hot(self):
        """The function whose specialized forms are reported (and checked by the tests)."""
        return self.read

    def finish(self):
        """Called once all threads have stopped; returns a list of problems found."""
        return []


def specialized_forms(func):
    """Names of the specialized instructions func's code holds now (adaptive disassembly)."""
    base = set(dis.opname)
    names = set()
    try:
        for ins in dis.get_instructions(func, adaptive=True):
            if ins.opname not in base or ins.opname != ins.baseopname:
                names.add(ins.opname)
    except (TypeError, AttributeError):
        pass
    return sorted(names)


def run(name, scenario_class, seconds):
    sc = scenario_class()
    sc.warm()
    warm_forms = specialized_forms(sc.hot())
    stop = threading.Event()
    reads = [0] * sc.readers
    bad = []
    errors = []

    def reader(k):
        try:
            while not stop.is_set():
                v = sc.read()
                reads[k] += 1
                if not sc.ok(v):
                    bad.append(repr(v)[:200])
                    stop.set()
        except BaseException as exc:  # a wrong exception is a failure too
            errors.append(f"reader: {type(exc).__name__}: {exc}")
            stop.set()

    def mutator(k):
        i = k
        try:
            while not stop.is_set():
                sc.mutate(i)
                i += sc.mutators
        except BaseException as exc:
            errors.append(f"mutator: {type(exc).__name__}: {exc}")
            stop.set()

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(sc.readers)]
    threads += [threading.Thread(target=mutator, args=(k,)) for k in range(sc.mutators)]
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join()
    errors += sc.finish()
    result = {"scenario": name, "reads": sum(reads), "bad": bad[:5], "errors": errors[:5],
              "specialized_after_warmup": warm_forms,
              "gil": getattr(sys, "_is_gil_enabled", lambda: True)()}
    print(json.dumps(result), flush=True)
    return 0 if not bad and not errors and all(reads) else 1
