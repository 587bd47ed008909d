#!/usr/bin/env python3
"""CPython's whole regression suite on the patched interpreter against the unpatched build
of the same source: the same passes and skips, or each difference listed.

    python3 interpreter/cpython/regrtest_compare.py [-j N] [--timeout S] [TEST ...]

Builds (or takes from the cache) the patched free-threaded interpreter (build-cpython.sh,
the default PGO variant) and the same source with no patches (--opt none: optimization
does not change which tests pass), runs `python -m test` on each with the same arguments
(the whole suite unless TESTs are named; resources as regrtest's defaults), and compares
the JUnit reports test by test. Prints the counts for each build, the tests that only the
patched build runs (they need specialization, which 3.13 turns off in the unpatched
free-threaded build), every test whose outcome differs otherwise, then "regrtest-compare:
same" or "regrtest-compare: N difference(s)"; the exit status is 0 only when they agree. Reports stay in build-reports/regrtest-*.xml.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BUILD_SCRIPT = HERE / "build-cpython.sh"


def interpreter(*args: str, env: dict | None = None) -> str:
    out = subprocess.run([str(BUILD_SCRIPT), *args], stdout=subprocess.PIPE, text=True,
                         env=env, check=True).stdout
    return out.strip().splitlines()[-1]


def outcomes(report: pathlib.Path) -> dict[str, str]:
    """test id -> passed | failed | skipped, from a regrtest JUnit report."""
    result = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        # Parameterized names can hold an object's repr, whose address differs per run.
        name = re.sub(r" at 0x[0-9a-f]+", " at 0x...",
                      f"{case.get('classname', '')}.{case.get('name', '')}")
        if kinds & {"failure", "error"}:
            result[name] = "failed"
        elif "skipped" in kinds:
            result[name] = "skipped"
        else:
            result[name] = "passed"
    return result


def run_suite(python: str, label: str, args: argparse.Namespace) -> dict[str, str]:
    report = ROOT / "build-reports" / f"regrtest-{label}.xml"
    report.parent.mkdir(exist_ok=True)
    report.unlink(missing_ok=True)
    cmd = [python, "-m", "test", "-j", str(args.jobs), f"--timeout={args.timeout}",
           f"--junit-xml={report}", *args.tests]
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail = [line for line in proc.stdout.splitlines() if line.strip()][-25:]
    print("\n".join(tail), flush=True)
    if not report.exists():
        sys.exit(f"regrtest-compare: {label}: no report (exit {proc.returncode})")
    return outcomes(report)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--timeout", type=int, default=1200, help="per test file, seconds")
    ap.add_argument("tests", nargs="*")
    args = ap.parse_args()
    patched = interpreter()
    with tempfile.TemporaryDirectory() as empty:
        (pathlib.Path(empty) / "series").write_text("")
        unpatched = interpreter("--opt", "none",
                                env=dict(os.environ, PP_CPYTHON_PATCHDIR=empty))
    results = {"patched": run_suite(patched, "patched", args),
               "unpatched": run_suite(unpatched, "unpatched", args)}
    for label, res in results.items():
        counts = {k: sum(1 for v in res.values() if v == k)
                  for k in ("passed", "failed", "skipped")}
        print(f"{label}: {len(res)} tests: {counts['passed']} passed, "
              f"{counts['failed']} failed, {counts['skipped']} skipped")
    a, b = results["patched"], results["unpatched"]
    changed = sorted(name for name in a.keys() | b.keys() if a.get(name) != b.get(name))
    # Tests that need specialization skip on the unpatched free-threaded build (3.13 turns
    # it off there) and run on the patched one: expected, listed, not a difference.
    gained = [n for n in changed if a.get(n) == "passed" and b.get(n) == "skipped"]
    diffs = [n for n in changed if n not in gained]
    print(f"run only by the patched build (specialization on), all passed: {len(gained)}")
    for name in gained:
        print(f"  {name}")
    print(f"different outcomes: {len(diffs)}")
    for name in diffs:
        print(f"  {name}: patched {a.get(name, 'not run')}, "
              f"unpatched {b.get(name, 'not run')}")
    print("regrtest-compare: same" if not diffs
          else f"regrtest-compare: {len(diffs)} difference(s)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
