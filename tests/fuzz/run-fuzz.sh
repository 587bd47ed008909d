#!/usr/bin/env bash
# Runs the HTTP parser fuzzer for a bounded time on the seed corpus.
#
#   tests/fuzz/run-fuzz.sh BUILD_DIR SECONDS
#
# BUILD_DIR was configured with: CXX=clang++ meson setup BUILD_DIR -Dfuzz=true -Dtests=false
# New inputs go to a scratch corpus (the seeds in tests/fuzz/corpus/ are read only);
# a crash or a cross-check mismatch leaves its input as BUILD_DIR/fuzz-artifacts/crash-*
# and makes this script exit non-zero.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
fi
build_dir=$1
seconds=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fuzzer=$build_dir/tests/fuzz/fuzz_http_parser

if [[ ! -x $fuzzer ]]; then
  echo "run-fuzz: $fuzzer not built (ninja -C $build_dir tests/fuzz/fuzz_http_parser)" >&2
  exit 2
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
artifacts=$build_dir/fuzz-artifacts
mkdir -p "$artifacts"

echo "run-fuzz: $fuzzer for ${seconds}s, seeds from $here/corpus"
set +e
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
  -print_final_stats=1 -dict="$here/http.dict" -artifact_prefix="$artifacts/" \
  "$scratch" "$here/corpus" \
  >"$build_dir/fuzz.log" 2>&1
rc=$?
set -e
tail -n 25 "$build_dir/fuzz.log"
if [[ $rc -ne 0 ]]; then
  echo "run-fuzz: FAILED (exit $rc); inputs in $artifacts, log in $build_dir/fuzz.log" >&2
  exit 1
fi
echo "run-fuzz: passed (no crash, no mismatch in ${seconds}s)"
