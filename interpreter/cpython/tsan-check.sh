#!/usr/bin/env bash
# ThreadSanitizer check of the patched interpreter (interpreter/cpython/patches/).
#
#   interpreter/cpython/tsan-check.sh [SECONDS_PER_SCENARIO]      (default 2)
#
# Builds the patch series with --with-thread-sanitizer (build-cpython.sh --opt tsan: cached
# like every variant, about 2x a plain build the first time), runs every race scenario of
# tests/interpreter/races/ (run.py) under it with CPython's own suppressions for
# the races it already knows in the unpatched interpreter, and prints each report whose
# stack reaches code the series adds or changes (specialize.c, the specialized instructions,
# the function setters, the dict helper, the int freelist). Exit 1 if there is any such
# report or a scenario fails; all reports go to the log named at the end.
# CI runs it through `PP_TSAN=1 ./pp test` (tests/run_all.py); run it after changing a patch.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
seconds="${1:-2}"
# PP_TSAN_PYTHON: an already built ThreadSanitizer interpreter (its prefix must hold the
# suppressions, as build-cpython.sh --opt tsan installs them).
py="${PP_TSAN_PYTHON:-$("$root/interpreter/cpython/build-cpython.sh" --opt tsan | tail -n 1)}"
prefix="$(dirname "$(dirname "$py")")"
log="$(mktemp -d)/tsan"
# CPython's own suppressions (known races of the unpatched interpreter) and ours
# (interpreter/cpython/tsan-suppressions.txt, each with its reason), in one file as TSan wants.
supp="$(dirname "$log")/suppressions.txt"
cat "$prefix/share/pyparallel/suppressions_free_threading.txt" \
  "$root/interpreter/cpython/tsan-suppressions.txt" >"$supp"
export TSAN_OPTIONS="halt_on_error=0 exitcode=0 second_deadlock_stack=1 log_path=$log suppressions=$supp"
fail=0
races="$root/tests/interpreter/races/run.py"
for scenario in $("$py" "$races" --list); do
  if ! "$py" "$races" "$scenario" "$seconds"; then
    echo "tsan-check: scenario $scenario failed" >&2
    fail=1
  fi
done
# A report is one block from "WARNING: ThreadSanitizer" to "SUMMARY"; keep those that
# touch what the patches change: specialize.c, the eval loop's instructions (generated
# from bytecodes.c), and the functions the series adds.
patched='specialize\.c|generated_cases\.c\.h|ceval_macros\.h|pycore_code\.h|func_swap_field|_PyFunction_SetVersion|_PyDict_MarkSharedForSpecialization|long_from_freelist|_PyLong_ExactDealloc'
total=0
ours=0
shopt -s nullglob
for f in "$log".*; do
  total=$((total + $(grep -c '^WARNING: ThreadSanitizer' "$f" || true)))
  found="$(awk -v pat="$patched" '
    /^WARNING: ThreadSanitizer/ { block = ""; inblock = 1 }
    inblock { block = block $0 "\n" }
    /^SUMMARY: ThreadSanitizer/ { if (block ~ pat) printf "%s\n", block; inblock = 0 }
  ' "$f")"
  if [[ -n "$found" ]]; then
    printf '%s\n' "$found"
    ours=$((ours + $(printf '%s\n' "$found" | grep -c '^WARNING: ThreadSanitizer')))
  fi
done
echo "tsan-check: $total report(s) in all, $ours in patched code; logs: $log.*"
[[ $ours -eq 0 && $fail -eq 0 ]]
