"""Stdlib-only micro benchmarks for choosing how the interpreter is built.

    python3.13t interpreter/cpython/microbench.py [--json]

pyperformance is not available here, so this times a few single-threaded workloads that
stand for what protocol callbacks do: pure-Python loops and calls, dict/str work, JSON,
sorting, a regex. Each figure is the best of several timeit repeats, in milliseconds;
compare builds with the geometric mean of the ratios (build-cpython.sh --opt ...).
"""
import json
import math
import re
import sys
import timeit

SETUP = """
import json, re
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def loop(n):
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total
class Point:
    __slots__ = ("x", "y")
    def __init__(self, x, y):
        self.x, self.y = x, y
    def norm2(self):
        return self.x * self.x + self.y * self.y
doc = {"users": [{"id": i, "name": f"user{i}", "tags": ["a", "b"], "score": i * 1.5}
                 for i in range(200)]}
text = json.dumps(doc)
words = ("lorem ipsum dolor sit amet consectetur adipiscing elit " * 200).split()
pattern = re.compile(r"(\\w+)@(\\w+)\\.com")
mail = " ".join(f"user{i}@host{i}.com" for i in range(200))
data = list(range(5000, 0, -1))
"""

BENCHMARKS = {
    "loop": "loop(200_000)",
    "fib": "fib(20)",
    "objects": "sum(Point(i, i + 1).norm2() for i in range(20_000))",
    "dict_str": "c = {}\nfor w in words: c[w] = c.get(w, 0) + 1\n'-'.join(sorted(c))",
    "json": "json.loads(json.dumps(json.loads(text)))",
    "sort": "sorted(data, key=lambda x: -x)",
    "regex": "pattern.findall(mail)",
}


def run(repeat=7):
    results = {}
    for name, stmt in BENCHMARKS.items():
        timer = timeit.Timer(stmt, setup=SETUP)
        number, _ = timer.autorange()
        best = min(timer.repeat(repeat=repeat, number=number)) / number
        results[name] = best * 1e3
    return results


def main():
    results = run()
    results["geomean"] = math.exp(sum(math.log(v) for v in results.values()) / len(results))
    if "--json" in sys.argv:
        print(json.dumps(results))
    else:
        for name, ms in results.items():
            print(f"{name:10s} {ms:9.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
