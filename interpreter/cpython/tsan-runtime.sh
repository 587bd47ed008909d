#!/usr/bin/env bash
# ThreadSanitizer run of the runtime: the engine (core/, platform/, numa/) and the parallel
# module (interpreter/parallel/, the pyparallel host) built with -fsanitize=thread against
# the ThreadSanitizer build of the patched interpreter, driven by the tests/parallel suite.
#
#   interpreter/cpython/tsan-runtime.sh [PYTEST_ARGS...]     (e.g. -k callbacks, -x)
#
# Configures build-tsan-runtime once (clang, -Db_sanitize=thread, debugoptimized, no test
# suites), builds only the pyparallel host (the only binary tests/parallel starts: every
# server there is a Python script under it), runs the suite with every report logged, and
# prints each report whose racing accesses are in the project's own code (core/, platform/,
# numa/, interpreter/*.cpp, interpreter/parallel/, or a pp:: frame) in full. That includes
# a race inside the interpreter met while a worker runs a callback (the stack goes through
# pp::): read its top frames; one in CPython code the patches do not touch may go to
# interpreter/cpython/tsan-runtime.supp, with why. Reports with no project frame are only counted.
# Exit 1 if there is such a report or a test fails; the last line sums it up, with the logs.
# PP_TSAN_BUILD_DIR overrides the build folder, PP_TSAN_PYTHON the interpreter.
# Time on 2 shared cores, with the interpreter cached: configure + build ~70 s the first
# time (then seconds), the suite ~3 min (~5 with PP_TSAN_ALL=1, below): 4-5 min in all.
# The interpreter itself (build-cpython.sh --opt tsan) takes ~7 min the first time, as
# for interpreter/cpython/tsan-check.sh.
# CI runs it through `PP_TSAN=1 ./pp test` (tests/run_all.py); run it after changing the
# runtime's threading (workers, sessions, transports, timers, shutdown).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# PP_TSAN_PYTHON: an already built ThreadSanitizer interpreter (its prefix must hold the
# suppressions, as build-cpython.sh --opt tsan installs them).
py="${PP_TSAN_PYTHON:-$("$root/interpreter/cpython/build-cpython.sh" --opt tsan | tail -n 1)}"
prefix="$(dirname "$(dirname "$py")")"
build="${PP_TSAN_BUILD_DIR:-$root/build-tsan-runtime}"
tmp="$(mktemp -d)"
start=$SECONDS

if [[ ! -f "$build/build.ninja" ]]; then
  # b_lundef=false: a sanitized shared module leaves the TSan runtime's symbols to the
  # executable that loads it. tests=false: the doctest suites are not what runs here.
  CC=clang CXX=clang++ meson setup "$build" -Db_sanitize=thread -Db_lundef=false \
    -Dbuildtype=debugoptimized -Dtests=false -Dinterpreter=enabled -Dpython="$py" \
    >"$tmp/setup.log" 2>&1 || {
    tail -n 40 "$tmp/setup.log" >&2
    echo "tsan-runtime: meson setup $build failed (log: $tmp/setup.log)" >&2
    exit 1
  }
else
  # A changed patch series means another cached interpreter (prefix): follow it, as ./pp does.
  meson configure "$build" -Dpython="$py" >/dev/null
fi
ninja -C "$build" interpreter/pyparallel >/dev/null || ninja -C "$build" interpreter/pyparallel
built=$SECONDS

log="$tmp/tsan"
junit="$tmp/pytest.xml"
# CPython's own suppressions (known races of the unpatched interpreter) plus the few this
# suite needs for code that is not ours (each entry says why).
supp="$tmp/suppressions.txt"
cat "$prefix/share/pyparallel/suppressions_free_threading.txt" \
  "$root/interpreter/cpython/tsan-runtime.supp" >"$supp"
# The pyparallel processes the tests start inherit this; pytest itself (the system python,
# not instrumented) ignores it.
export TSAN_OPTIONS="halt_on_error=0 exitcode=0 second_deadlock_stack=1 log_path=$log suppressions=$supp"
# Only this build's host: a PP_GIL_BUILD_DIR that does not exist drops the tests' variants
# that start the GIL build (build-interp-gil, not instrumented; `./pp test` runs them).
export PP_GIL_BUILD_DIR="$build/no-gil-build"
# Shutdown and start-up bounds in the tests stretch by this factor (tests/pptest.py): a TSan
# interpreter finalizes several times slower, more so on a loaded machine.
export PP_TEST_SLOWDOWN=4
# Deselected: what their tests measure says nothing under TSan (5-15x slower, a larger and
# growing heap, on a shared 2-core machine). PP_TSAN_ALL=1 runs them too: their TSan
# reports still count, their failures then are most likely that measurement.
# - test_cpu_bound_handlers_run_in_parallel times the CPU overlap of two handlers;
# - test_client_disconnects_mid_response gives a fresh connection 10 s to be answered
#   behind fifteen 64 MiB responses: ~4 s under TSan on an idle machine, over 10 s on a
#   loaded one (test_pp_http11.py's test of the same name still drives that path here);
# - test_api_fuzz[...] wants /ping answered in every second of a 3 s run (TSan leaves
#   whole seconds unanswered; test_leak_check_detects_kept_references still runs it);
# - test_soak wants RSS within 10% of its warm-up value (TSan's shadow memory and
#   allocator grow it by ~18% in a minute).
deselect=()
if [[ "${PP_TSAN_ALL:-0}" != 1 ]]; then
  deselect=(
    --deselect tests/parallel/test_pp_runtime.py::test_cpu_bound_handlers_run_in_parallel
    --deselect tests/parallel/test_pp_callbacks.py::test_client_disconnects_mid_response
    --deselect "tests/parallel/test_pp_api_fuzz.py::test_api_fuzz["
    --deselect tests/parallel/test_pp_soak.py::test_soak
  )
fi
rc=0
(cd "$root" && PP_BUILD_DIR="$build" /usr/bin/python3 -m pytest -q -p no:cacheprovider \
  --junitxml="$junit" "${deselect[@]}" tests/parallel "$@") || rc=$?
tested=$SECONDS

# passed/failed from the JUnit report; a pytest that broke outside any test counts 1 failure.
read -r passed failed < <(/usr/bin/python3 - "$junit" "$rc" <<'EOF'
import sys, xml.etree.ElementTree as ET
passed = failed = 0
try:
    for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            failed += 1
        elif "skipped" not in kinds:
            passed += 1
except (OSError, ET.ParseError):
    pass
if int(sys.argv[2]) not in (0, 1, 5) and failed == 0:
    failed = 1
print(passed, failed)
EOF
)

# A report is one block from "WARNING: ThreadSanitizer" to "SUMMARY". It is the runtime's
# when, in one of its access stacks (not the "Location is", "created at/by" context stacks;
# for a thread leak, its creation stack), the innermost frame that is either the project's
# or CPython's is the project's. A race between two threads running CPython's own code
# (say, the eval loop rewriting bytecode) whose callers happen to be our callbacks is the
# interpreter's: interpreter/cpython/tsan-check.sh and the patch series own those.
ours_re='/(core|platform|numa|interpreter/parallel)/[^ :]+:[0-9]|/interpreter/[A-Za-z_]+\.(cpp|h):[0-9]| pp::'
cpython_re='/(Python|Objects|Include|Modules|Parser)/[^ :]+:[0-9]'
total=0
ours=0
shopt -s nullglob
for f in "$log".*; do
  total=$((total + $(grep -c '^WARNING: ThreadSanitizer' "$f" || true)))
  found="$(awk -v pat="$ours_re" -v py="$cpython_re" '
    /^WARNING: ThreadSanitizer/ { block = ""; inblock = 1; hit = 0; ctx = 0
                                  leak = ($0 ~ /thread leak/) }
    inblock && /^  [^ ]/ { ctx = ($0 ~ /^  Location is|created (at|by)/) && !leak
                           decided = 0 }
    inblock { block = block $0 "\n"
              if (!ctx && !decided && /^    #[0-9]/) {
                if ($0 ~ pat) { hit = 1; decided = 1 } else if ($0 ~ py) decided = 1
              } }
    /^SUMMARY: ThreadSanitizer/ { if (inblock && hit) printf "%s\n", block; inblock = 0 }
  ' "$f")"
  if [[ -n "$found" ]]; then
    printf '%s\n' "$found"
    ours=$((ours + $(printf '%s\n' "$found" | grep -c '^WARNING: ThreadSanitizer')))
  fi
done
echo "tsan-runtime: configure+build $((built - start)) s, tests $((tested - built)) s"
echo "tsan-runtime: $passed passed, $failed failed tests; $total report(s) in all," \
  "$ours in the runtime; logs: $log.*"
[[ $ours -eq 0 && $failed -eq 0 ]]
