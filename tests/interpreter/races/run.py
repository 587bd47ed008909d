"""Run race scenarios on the interpreter that runs this script.

    pyparallel tests/interpreter/races/run.py --list
    pyparallel tests/interpreter/races/run.py SCENARIO [SECONDS]

Each scenario prints one JSON line (harness.py) and the exit status is 0 only if nothing
was wrong. tests/interpreter/races/test_races.py runs each for a few seconds in `./pp test`;
interpreter/cpython/tsan-check.sh runs them on the ThreadSanitizer build; `./pp bench
interpreter_races.py --minutes M` runs them for as long as asked.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import attributes  # noqa: E402
import classic  # noqa: E402
import containers  # noqa: E402
import forking  # noqa: E402
import harness  # noqa: E402
import namespaces  # noqa: E402
import tracing  # noqa: E402

SCENARIOS = {}
for module in (classic, attributes, namespaces, containers, tracing, forking):
    SCENARIOS.update(module.SCENARIOS)


def main(argv):
    if argv[1:2] == ["--list"]:
        print("\n".join(SCENARIOS))
        return 0
    if len(argv) < 2 or argv[1] not in SCENARIOS:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        print("scenarios: " + ", ".join(SCENARIOS), file=sys.stderr)
        return 2
    seconds = float(argv[2]) if len(argv) > 2 else 1.5
    return harness.run(argv[1], SCENARIOS[argv[1]], seconds)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
