"""Lists, dicts and iterators: one FOR_ITER iterator shared between threads, and list and
dict items replaced, appended and popped under the specialized list and dict forms."""
from harness import Box, Scenario, box_ok

SIZE = 64


class SharedIterator(Scenario):
    """FOR_ITER_LIST / FOR_ITER_TUPLE / FOR_ITER_RANGE with one iterator consumed by every
    reader at once. Sharing an iterator gives no promise about which thread gets which
    item, but every item produced must be one of the container's, whole."""

    def __init__(self):
        self.it_list = iter([])
        self.it_tuple = iter(())
        self.it_range = iter(range(0))
        self.mutate(0)

    def read(self):
        out = []
        for b in self.it_list:
            out.append(b)
            if len(out) > 8:
                break
        for b in self.it_tuple:
            out.append(b)
            if len(out) > 16:
                break
        n = 0
        for k in self.it_range:
            n += k >= 0
            if n > 8:
                break
        return out

    def mutate(self, i):
        self.it_list = iter([Box(k) for k in range(SIZE)])
        self.it_tuple = iter(tuple(Box(k) for k in range(SIZE)))
        self.it_range = iter(range(1000, 1000 + SIZE))

    def ok(self, value):
        return all(box_ok(b, range(SIZE)) for b in value)


class IteratorEnd(Scenario):
    """Short tuples and lists whose one iterator every reader runs to its end at once:
    FOR_ITER_TUPLE / FOR_ITER_LIST at exhaustion. Before issue 18's fix two threads at the
    end of a shared tuple iterator both dropped its tuple (and one could read past it):
    readers got a tuple_iterator or a freed Box where a Box should be."""

    def __init__(self):
        self.it_tuple = iter(())
        self.it_list = iter([])

    def read(self):
        out = []
        for b in self.it_tuple:
            out.append(b)
        for b in self.it_list:
            out.append(b)
        return out

    def mutate(self, i):
        self.it_tuple = iter(tuple(Box(k) for k in range(3)))
        self.it_list = iter([Box(k) for k in range(3)])

    def ok(self, value):
        return all(box_ok(b, range(3)) for b in value)


class IteratorEndGeneric(Scenario):
    """One short tuple iterator that readers run to its end through both paths at once:
    the specialized FOR_ITER_TUPLE and the generic tupleiter_next (next(), list.extend,
    and the deopt FOR_ITER_TUPLE takes when another thread took the last item). The
    scenario holds the tuple as well. Upstream 3.13's tupleiter_next, at
    the end, cleared it_seq and dropped the tuple once per thread that got there (patch
    0018): the tuple was freed twice, or freed while FOR_ITER_TUPLE read its items."""

    def __init__(self):
        self.items = ()
        self.it_tuple = iter(self.items)

    def read(self):
        items, it = self.items, self.it_tuple
        out = list(items)
        first = next(it, None)
        if first is not None:
            out.append(first)
        for b in it:
            out.append(b)
        out.extend(it)
        return out

    def mutate(self, i):
        # The scenario holds the tuple too: a reference dropped twice frees it under
        # self.items, which the readers then read.
        self.items = tuple(Box(k) for k in range(4))
        self.it_tuple = iter(self.items)

    def ok(self, value):
        return all(box_ok(b, range(4)) for b in value)


class ListDictItems(Scenario):
    """BINARY_SUBSCR_LIST_INT, STORE_SUBSCR_LIST_INT, UNPACK_SEQUENCE_LIST, FOR_ITER_LIST,
    CALL_LIST_APPEND, BINARY_SUBSCR_DICT, STORE_SUBSCR_DICT and CONTAINS_OP_DICT while a
    writer replaces items with fresh Boxes (the old ones are freed), and grows and shrinks
    the same list and dict."""

    def __init__(self):
        self.items = [Box(k) for k in range(SIZE)]
        self.pair = [Box(1), Box(2)]
        self.table = {k: Box(k) for k in range(SIZE)}

    def read(self):
        items, table = self.items, self.table
        out = []
        for b in items:
            out.append(b)
            if len(out) == 4:
                break
        for k in (0, 1, SIZE // 2):
            try:
                out.append(items[k])
            except IndexError:
                pass
        items[2] = Box(2)
        try:
            a, b = self.pair
            out.append(a)
            out.append(b)
        except ValueError:
            pass
        for k in (0, 5, SIZE - 1, SIZE + 7):
            if k in table:
                try:
                    out.append(table[k])
                except KeyError:
                    pass
        table[3] = Box(3)
        return out

    def mutate(self, i):
        items, table = self.items, self.table
        k = i % SIZE
        items[k % len(items)] = Box(k)
        table[k] = Box(k)
        if i % 2:
            items.append(Box(i % SIZE))
            table[SIZE + i % 32] = Box(i % SIZE)
            self.pair.append(Box(3))
        else:
            if len(items) > SIZE // 2:
                items.pop()
            table.pop(SIZE + i % 32, None)
            del self.pair[2:]

    def ok(self, value):
        return all(box_ok(b) for b in value)


SCENARIOS = {
    "shared_iterator": SharedIterator,
    "iterator_end": IteratorEnd,
    "iterator_end_generic": IteratorEndGeneric,
    "list_dict_items": ListDictItems,
}
