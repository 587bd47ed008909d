#!/usr/bin/env bash
# tools/make_dist.sh -- pack a built tree into a relocatable tarball (./pp dist calls it).
#
#   tools/make_dist.sh [BUILD_DIR] [OUT_DIR]      (defaults: $PP_BUILD_DIR or ./build, ./dist)
#
# Writes OUT_DIR/pyparallel-<version>-linux-<arch>.tar.gz and prints its path as the last
# line. Extracted anywhere, `pyparallel-<version>-linux-<arch>/bin/pyparallel app.py` runs
# without the build tree, the interpreter cache or root. The layout is CPython's own prefix
# layout, which is what lets the interpreter find its stdlib from where its executable is:
#
#   bin/pyparallel, bin/pyparallel-httpd    debug info stripped, RUNPATH $ORIGIN/../lib
#   lib/lib*.so.*                           every library they (and the stdlib's extension
#                                           modules) load but glibc and the C++ runtime,
#                                           RUNPATH $ORIGIN
#   lib/python3.13t/                        the stdlib without tests, IDLE, tkinter, turtle,
#                                           ensurepip, pip and the static libpython, with its
#                                           byte code; lib-dynload RUNPATH $ORIGIN/../..
#   lib/python3.13t/site-packages/parallel-stubs/__init__.pyi   type stubs (PEP 561)
#   lib/pyparallel/python/                  the parallel module's Python part (parallel.serve)
#   examples/, bench/                       the Python examples (and systemd units); bench/scaling.sh
#                                           and what it runs
#   licenses/                               the Debian copyright file of each carried library
#   BUNDLE.txt                              what went in: versions, libraries, minimum glibc
#
# The target provides glibc and the C++ runtime (minimum versions in BUNDLE.txt), nothing else.
# Needs patchelf, binutils (strip, objdump), tar, gzip; dpkg for the license files.
# $ORIGIN below is for the dynamic loader, not the shell: single quotes on purpose.
# shellcheck disable=SC2016
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$(cd "${1:-${PP_BUILD_DIR:-$root/build}}" && pwd)"
out="${2:-$root/dist}"
limit_mib=64

say() { printf 'make_dist: %s\n' "$*" >&2; }
die() { printf 'make_dist: error: %s\n' "$*" >&2; exit 1; }
trap 'say "error: line $LINENO failed: $BASH_COMMAND"' ERR

for tool in patchelf strip objdump tar gzip ldd; do
  command -v "$tool" >/dev/null || die "needs $tool (Debian: apt-get install patchelf binutils)"
done
host="$build/interpreter/pyparallel"
httpd="$build/httpd/pyparallel-httpd"
info="$build/interpreter/interpreter.txt"
if [ ! -x "$host" ] || [ ! -x "$httpd" ] || [ ! -f "$info" ]; then
  die "no built host and httpd in $build (run ./pp build first)"
fi

# The interpreter the host embeds: its prefix holds the stdlib we carry.
python="$(sed -n 's/^executable=//p' "$info")"
pyver="$(sed -n 's/^version=//p' "$info")"
[ "$(sed -n 's/^free_threaded=//p' "$info")" = true ] ||
  die "$build embeds a GIL interpreter ($python); the bundle carries the free-threaded one"
prefix="$(dirname "$(dirname "$python")")"
stdname="python${pyver%.*}t"            # python3.13t: CPython's name for the stdlib folder
stdlib="$prefix/lib/$stdname"
[ -f "$stdlib/os.py" ] || die "no stdlib at $stdlib"
case "$prefix" in
  /usr | /usr/local) die "$python is a system interpreter; the bundle needs the private build" ;;
esac

version="$(sed -n "s/^ *version: *'\([^']*\)'.*/\1/p" "$root/meson.build" | head -n 1)"
arch="$(uname -m)"
name="pyparallel-$version-linux-$arch"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
stage="$(mktemp -d "$out/.stage.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
dest="$stage/$name"
mkdir -p "$dest/bin" "$dest/lib" "$dest/licenses"

# --- the stdlib: a trimmed copy of the tree, with its byte code ----------------------------
# tar keeps modification times, which the .pyc files are checked against, so the byte code
# stays valid and nothing is recompiled (or written) at run time. Only the plain .pyc: -O
# and -OO fall back to compiling, as they would for any source without them.
excludes=(./test ./idlelib ./tkinter ./turtledemo ./turtle.py ./ensurepip ./lib2to3
  ./site-packages './config-*' ./lib-dynload '*.opt-1.pyc' '*.opt-2.pyc'
  './__pycache__/turtle.*')
tar_args=()
for e in "${excludes[@]}"; do tar_args+=("--exclude=$e"); done
mkdir -p "$dest/lib/$stdname/site-packages"
tar -C "$stdlib" -cf - "${tar_args[@]}" . | tar -C "$dest/lib/$stdname" -xf -
cp -p "$stdlib/site-packages/README.txt" "$dest/lib/$stdname/site-packages/" 2>/dev/null || true

# Extension modules, less CPython's own test modules, tkinter (no Tk on a server) and the two
# that link GPL libraries (readline: the 3.13 REPL edits lines without it; gdbm/ndbm: the
# dbm package falls back to dbm.sqlite3 and dbm.dumb). See docs/decisions.md.
mkdir -p "$dest/lib/$stdname/lib-dynload"
modules=()
for so in "$stdlib"/lib-dynload/*.so; do
  mod="$(basename "$so")"
  mod="${mod%%.*}"
  case "$mod" in
    _test* | _xxtestfuzz | xx* | _ctypes_test | _tkinter | readline | _gdbm | _dbm) continue ;;
  esac
  cp "$so" "$dest/lib/$stdname/lib-dynload/"
  modules+=("$mod")
done

# --- binaries ------------------------------------------------------------------------------
cp "$host" "$httpd" "$dest/bin/"

# --- the libraries they load, except the system's ---------------------------------------------
# ldd on the binaries and the kept modules (not yet patched) gives the whole closure, libhwloc's
# libudev included. Left to the system: glibc, and the C++ runtime (libstdc++, libgcc_s), part
# of every glibc distribution's base (apt links it); Debian 12's libstdc++ would itself need
# glibc 2.36 where the host needs 2.35 (docs/decisions.md). Ownership comes
# from dpkg (one call for all; with merged /usr it may list a file under either spelling);
# without dpkg, from the name.
declare -A carried=()   # soname -> path on this machine
while read -r soname path; do
  carried[$soname]="$path"
done < <(ldd "$host" "$httpd" "$dest/lib/$stdname"/lib-dynload/*.so 2>/dev/null |
  awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | sort -u)

declare -A owner=()     # path (any spelling) -> Debian package
if command -v dpkg-query >/dev/null; then
  spellings=()
  for path in "${carried[@]}"; do
    for p in "$path" "$(readlink -f "$path")"; do
      spellings+=("$p")
      case "$p" in /lib/*) spellings+=("/usr$p") ;; /usr/lib/*) spellings+=("${p#/usr}") ;; esac
    done
  done
  while IFS= read -r line; do
    pkg="${line%%: *}"
    owner[${line#*: }]="${pkg%%:*}"
  done < <(dpkg-query -S "${spellings[@]}" 2>/dev/null || true)
fi
package_of() {
  local p
  for p in "$1" "$(readlink -f "$1")" "/usr$1" "${1#/usr}"; do
    [ -n "${owner[$p]:-}" ] && { echo "${owner[$p]}"; return; }
  done
}
is_system() {
  local pkg
  pkg="$(package_of "$1")"
  case "$pkg" in
    libc6 | libstdc++6 | libgcc-s1) return 0 ;;
    ?*) return 1 ;;
  esac
  case "$(basename "$1")" in
    libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libutil.so.* | \
      libresolv.so.* | libanl.so.* | libmvec.so.* | ld-linux*.so.* | libnss_* | \
      libstdc++.so.* | libgcc_s.so.*) return 0 ;;
  esac
  return 1
}

lib_report=()
for soname in $(printf '%s\n' "${!carried[@]}" | sort); do
  src="${carried[$soname]}"
  is_system "$src" && continue
  cp -L "$src" "$dest/lib/$soname"
  chmod u+w "$dest/lib/$soname"
  patchelf --set-rpath '$ORIGIN' "$dest/lib/$soname"
  pkg="$(package_of "$src")"
  if [ -n "$pkg" ]; then
    [ -f "/usr/share/doc/$pkg/copyright" ] &&
      cp "/usr/share/doc/$pkg/copyright" "$dest/licenses/$pkg.copyright"
    pkgver="$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null | head -n 1)"
    lib_report+=("  $soname  ($pkg $pkgver)")
  else
    lib_report+=("  $soname  (from $src)")
  fi
done
cp "$stdlib/LICENSE.txt" "$dest/licenses/cpython.LICENSE.txt"

# Debug info out (symbols stay, for backtraces and perf), then the relative search paths.
# strip before patchelf: the other order can leave a file the loader rejects.
strip --strip-debug "$dest/bin/pyparallel" "$dest/bin/pyparallel-httpd" \
  "$dest/lib/$stdname"/lib-dynload/*.so
patchelf --set-rpath '$ORIGIN/../lib' "$dest/bin/pyparallel" "$dest/bin/pyparallel-httpd"
for so in "$dest/lib/$stdname"/lib-dynload/*.so; do
  patchelf --set-rpath '$ORIGIN/../..' "$so"
done

# --- the parallel module's Python part, stubs, examples, the scaling benchmark ----------------
# parallel.wsgi/asgi/serve: the module looks in <bin>/../lib/pyparallel/python (gateway.cpp).
# Compiled here, by the staged host, so that nothing is written into the bundle at run time.
if [ -d "$build/interpreter/parallel/python" ]; then
  mkdir -p "$dest/lib/pyparallel/python"
  cp -p "$build"/interpreter/parallel/python/*.py "$dest/lib/pyparallel/python/"
  "$dest/bin/pyparallel" -I -m compileall -q "$dest/lib/pyparallel/python" >/dev/null ||
    die "cannot compile the parallel module's Python part"
fi
mkdir -p "$dest/lib/$stdname/site-packages/parallel-stubs"
cp "$root/interpreter/parallel/parallel.pyi" \
  "$dest/lib/$stdname/site-packages/parallel-stubs/__init__.pyi"
mkdir -p "$dest/examples/wiki" "$dest/bench/servers"
cp "$root"/examples/*.py "$root/examples/README.md" "$dest/examples/"
cp "$root"/examples/wiki/*.py "$dest/examples/wiki/"
if [ -d "$root/examples/systemd" ]; then  # unit files that expect the bundle in /opt/pyparallel
  mkdir -p "$dest/examples/systemd"
  cp "$root"/examples/systemd/* "$dest/examples/systemd/"
fi
cp "$root/bench/scaling.sh" "$root/bench/scaling.py" "$root/bench/benchlib.py" "$dest/bench/"
cp "$root"/bench/servers/*.py "$dest/bench/servers/"

# --- what went in -----------------------------------------------------------------------------
symbols="$(find "$dest/bin" "$dest/lib" -type f \( -path "$dest/bin/*" -o -name '*.so' \
  -o -name '*.so.[0-9]*' \) -exec objdump -T {} + 2>/dev/null)"
glibc="$(grep -o 'GLIBC_[0-9][0-9.]*' <<<"$symbols" | sort -u -V | tail -n 1)"
glibcxx="$(grep -o 'GLIBCXX_[0-9][0-9.]*' <<<"$symbols" | sort -u -V | tail -n 1)"
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
{
  echo "pyparallel $version ($commit), linux-$arch"
  echo "interpreter: free-threaded CPython $pyver ($stdname)"
  echo "needs: Linux on $arch, glibc ${glibc#GLIBC_} or newer, a libstdc++ with $glibcxx"
  echo "  (the distributions with that glibc ship one); nothing else"
  echo "carried libraries (lib/, Debian package and version):"
  printf '%s\n' "${lib_report[@]}"
  echo "extension modules: ${modules[*]}"
  echo "left out of the stdlib: test idlelib tkinter turtle turtledemo ensurepip pip"
  echo "  config-*/libpython (static), readline, _gdbm, _dbm, -O/-OO byte code"
  echo
  echo "run:   bin/pyparallel app.py            (like python3; --help for the runtime's flags)"
  echo "       bin/pyparallel-httpd --help"
  echo "bench: bench/scaling.sh                 (see the repository's bench/README.md)"
} >"$dest/BUNDLE.txt"

# A smoke test before packing: every carried extension module loads from the stage.
"$dest/bin/pyparallel" -I -B -c "
import importlib, sys
mods = sys.argv[1:]
for m in mods:
    importlib.import_module(m)
assert sys.prefix == '$dest', sys.prefix
" "${modules[@]}" || die "the staged interpreter cannot load its modules (see above)"

tarball="$out/$name.tar.gz"
tar -C "$stage" -czf "$tarball.tmp" "$name"
mv "$tarball.tmp" "$tarball"
bytes="$(stat -c %s "$tarball")"
mib="$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')"
unpacked="$(du -sm "$dest" | cut -f1)"
say "$(basename "$tarball"): $mib MiB ($unpacked MiB unpacked), glibc >= ${glibc#GLIBC_}"
if [ "$bytes" -gt $((limit_mib * 1048576)) ]; then
  rm -f "$tarball"
  die "the bundle is $mib MiB, over the $limit_mib MiB limit"
fi
echo "$tarball"
