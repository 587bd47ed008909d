#!/usr/bin/env bash
# Runs every test of a built tree -- the C++ suites, the Python and end-to-end suites, the
# GIL-interpreter variant and a bounded fuzz run -- and ends with "N passed, N failed".
#   tests/run-all.sh [BUILD_DIR]     (./pp test builds first, then calls this)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec /usr/bin/python3 "$root/tests/run_all.py" "${1:-$root/build}"
