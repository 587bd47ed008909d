#!/usr/bin/env bash
# pp -- set up, build, run and test pyparallel on a Debian/Ubuntu machine.
#
#   ./pp run SCRIPT.py [ARGS...]   set everything up, then run a Python script under pyparallel
#   ./pp httpd [ARGS...]           set everything up, then run the C++ server (pyparallel-httpd)
#   ./pp test                      set everything up, build, run every test; ends "N passed, N failed"
#   ./pp build                     set everything up and build (interpreter cached, meson build/)
#   ./pp build-windows             cross-build the Windows .exe files (mingw-w64; build-windows/)
#   ./pp setup                     install the Debian packages the build and tests need
#   ./pp bench NAME [ARGS...]      run bench/NAME (see bench/README.md)
#   ./pp dist                      build, then pack dist/pyparallel-<version>-linux-<arch>.tar.gz:
#                                  runs from any folder on another Linux machine (README.md)
#
# Environment: PP_BUILD_DIR (default ./build), PP_PYTHON (an interpreter to embed instead of
# the cached free-threaded build; see interpreter/README.md), PP_MESON_ARGS (extra options).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"
build="${PP_BUILD_DIR:-$root/build}"

say() { printf 'pp: %s\n' "$*" >&2; }
die() { printf 'pp: error: %s\n' "$*" >&2; exit 1; }

# Debian packages: what the build needs, and what the tests and benchmarks drive.
build_packages=(g++ meson ninja-build pkg-config liburing-dev libaio-dev libfmt-dev libhwloc-dev doctest-dev)
test_packages=(curl nghttp2-client python3-pytest strace clang libclang-rt-14-dev hwloc valgrind
  python3.11-dev python3-flask python3-starlette
  # tests/e2e: the balancer test's HAProxy, wrk through a restart, systemd-socket-activate.
  haproxy wrk systemd)
# The Windows cross build and the Wine that runs its tests (./pp build-windows).
windows_packages=(mingw-w64 g++-mingw-w64-x86-64-posix wine wine64)
bench_packages=(wrk nginx-light python3-uvloop python3-httptools python3-aiohttp apache2-utils
  gnuplot-nox python3-gunicorn python3-uvicorn)
# ./pp dist (and its test): patchelf gives the bundle's binaries relative library paths.
dist_packages=(patchelf)

apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; } ||
    die "apt-get install ${missing[*]} failed"
}

interpreter() {
  # The free-threaded CPython, built once and cached outside the tree (minutes the first
  # time, a second afterwards); PP_PYTHON picks an existing interpreter instead.
  if [ -n "${PP_PYTHON:-}" ]; then
    printf '%s\n' "$PP_PYTHON"
  else
    "$root/interpreter/cpython/build-cpython.sh" | tail -n 1
  fi
}

do_build() {
  apt_install "${build_packages[@]}"
  local python
  python="$(interpreter)"
  [ -x "$python" ] || die "no interpreter at '$python'"
  if [ ! -f "$build/build.ninja" ]; then
    # shellcheck disable=SC2086
    meson setup "$build" -Dpython="$python" ${PP_MESON_ARGS:-} >/dev/null ||
      die "meson setup failed (see $build/meson-logs/meson-log.txt)"
  else
    meson configure "$build" -Dpython="$python" >/dev/null
  fi
  ninja -C "$build" >/dev/null || ninja -C "$build"
}

do_build_windows() {
  # The engine, pyparallel-httpd.exe and the Windows test binaries, cross-built with
  # mingw-w64 (meson/x86_64-w64-mingw32.ini); and pyparallel.exe and parallel.pyd for
  # python.org's free-threaded 3.13 when the CPython source tarball is at hand (the one
  # interpreter/cpython/build-cpython.sh fetched, or PP_CPYTHON_TARBALL): README, "Windows".
  apt_install meson ninja-build libfmt-dev doctest-dev xz-utils "${windows_packages[@]}"
  local wbuild="${PP_WINDOWS_BUILD_DIR:-$root/build-windows}"
  local cache="${PYPARALLEL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pyparallel}"
  local tarball="${PP_CPYTHON_TARBALL:-}"
  if [ -z "$tarball" ]; then
    tarball="$(ls "$cache"/apt-*/python3.13_*.orig.tar.xz 2>/dev/null | head -n 1 || true)"
  fi
  local interp=(-Dinterpreter=disabled -Dpython=)
  if [ -n "$tarball" ] && [ -f "$tarball" ]; then
    /usr/bin/python3 "$root/platform/win32/python/make_python_sdk.py" "$tarball" \
      "$wbuild-python-sdk" >/dev/null || die "make_python_sdk.py $tarball failed"
    interp=(-Dinterpreter=enabled "-Dpython=$wbuild-python-sdk")
  else
    say "no CPython source tarball (run ./pp build first, or set PP_CPYTHON_TARBALL):" \
      "building the engine and pyparallel-httpd.exe without pyparallel.exe/parallel.pyd"
  fi
  if [ ! -f "$wbuild/build.ninja" ]; then
    meson setup "$wbuild" --cross-file "$root/meson/x86_64-w64-mingw32.ini" \
      -Dnuma=disabled "${interp[@]}" >/dev/null ||
      die "meson setup $wbuild failed (see $wbuild/meson-logs/meson-log.txt)"
  else
    meson configure "$wbuild" "${interp[@]}" >/dev/null
  fi
  ninja -C "$wbuild" >/dev/null || ninja -C "$wbuild"
}

cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    apt_install "${build_packages[@]}" "${test_packages[@]}" "${bench_packages[@]}" \
      "${dist_packages[@]}" "${windows_packages[@]}"
    ;;
  build)
    do_build
    ;;
  build-windows)
    do_build_windows
    ;;
  run)
    [ $# -gt 0 ] || die "usage: ./pp run SCRIPT.py [ARGS...]"
    do_build
    exec "$build/interpreter/pyparallel" "$@"
    ;;
  httpd)
    do_build
    exec "$build/httpd/pyparallel-httpd" "$@"
    ;;
  test)
    apt_install "${build_packages[@]}" "${test_packages[@]}" "${dist_packages[@]}"
    do_build
    # The same runtime on a stock GIL interpreter (Debian's python3.11): the tests check
    # it works there too, and that callbacks then take turns.
    gil_python="$("$root/interpreter/cpython/build-cpython.sh" --stock | tail -n 1)"
    gil_build="$root/build-interp-gil"
    if [ ! -f "$gil_build/build.ninja" ]; then
      meson setup "$gil_build" -Dpython="$gil_python" -Dtests=false >/dev/null ||
        die "meson setup $gil_build failed"
    fi
    ninja -C "$gil_build" >/dev/null || ninja -C "$gil_build"
    # The Windows cross build, whose tests run under Wine (tests/win32). A failed cross
    # build does not stop the Linux tests: run_all.py counts it as a failed test.
    ( do_build_windows ) || say "the Windows cross build failed; its tests will count as failed"
    PP_EXPECT_WINDOWS=1 PP_GIL_BUILD_DIR="$gil_build" exec "$root/tests/run-all.sh" "$build"
    ;;
  bench)
    [ $# -gt 0 ] || die "usage: ./pp bench NAME [ARGS...] (see bench/README.md)"
    apt_install "${build_packages[@]}" "${bench_packages[@]}"
    do_build
    name="$1"
    shift
    exec "$root/bench/$name" "$@"
    ;;
  dist)
    apt_install "${build_packages[@]}" "${dist_packages[@]}"
    do_build
    exec "$root/tools/make_dist.sh" "$build" "$root/dist"
    ;;
  help | -h | --help)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    ;;
  *)
    die "unknown command '$cmd' (try ./pp help)"
    ;;
esac
