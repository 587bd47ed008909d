#!/usr/bin/env bash
# Build the free-threaded CPython that pyparallel embeds, and cache it outside the build tree.
#
#   interpreter/cpython/build-cpython.sh [options]      -> last stdout line: path of the interpreter
#
# Source: Debian's source package python3.13 (suite forky), fetched with `apt-get source`
# through a private apt configuration (own sources list, state and cache folders) so the
# machine's apt sources are never touched. Only the pristine upstream tarball
# (python3.13_X.orig.tar.xz, identical to python.org's Python-X.tar.xz) is used: Debian's own
# debian/patches adapt CPython to Debian's filesystem layout, which a private prefix does not
# want. The tarball is checked against interpreter/cpython/cpython-source.sha256, then
# interpreter/cpython/patches/series is applied in order, then CPython is configured with
# --disable-gil, built and installed into
#   ${PYPARALLEL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pyparallel}/cpython-<version>-<key>
# where <key> hashes the source checksum, the patch series (names and contents), the
# optimisation variant and the configure flags. A second run finds the stamp there and returns
# at once.
#
# Options (each also has an environment variable):
#   --tarball PATH   PP_CPYTHON_TARBALL   use this CPython source tarball (e.g. python.org's
#                                         Python-3.13.X.tar.xz) instead of Debian's; its
#                                         sha256 goes into the cache key, it is not checked
#   --opt VARIANT    PP_CPYTHON_OPT       pgo (default: --enable-optimizations,
#                                         trained on interpreter/cpython/pgo_task.py), none, lto
#                                         (--with-lto), pgo-lto (both), tsan
#                                         (--with-thread-sanitizer, built with clang; for
#                                         interpreter/cpython/tsan-check.sh, not for serving)
#   --jobs N         PP_JOBS              make -jN (default: 2)
#   --cache-dir DIR  PYPARALLEL_CACHE_DIR cache root
#                    PP_DEBIAN_MIRROR     the Debian archive to fetch the source from (default:
#                                         the first non-security archive in this machine's
#                                         apt sources, so a local mirror or proxy works too)
#                    PP_CPYTHON_PATCHDIR  patch folder with its series (default
#                                         interpreter/cpython/patches; for trying patches and tests)
#   --print-mirror                        print the Debian archive the source would come from
#   --print-path                          print the cached interpreter's path and exit 0 if
#                                         it is built, exit 1 (printing nothing) otherwise
#   --keep-work                           keep the unpacked source/build tree
#   --force                               rebuild even when the cache is complete
#   --stock                               instead: make sure Debian's stock GIL python3.11 and
#                                         its -dev package are installed and print its path
#   -h, --help
set -euo pipefail
# The whole script is one brace group: bash parses it completely before running it, so
# editing the file during a (long) build cannot derail that build.
{
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# What we build. The version comes from the checksum file so the two never disagree.
suite=forky
srcpkg=python3.13
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
sumfile="$here/cpython-source.sha256"
patchdir="${PP_CPYTHON_PATCHDIR:-$here/patches}"
# --disable-gil is the point. No --enable-shared: a static libpython makes python3.13t itself
# a few percent faster (no PIC/PLT indirection on every C-API call) and the pyparallel host
# links libpython3.13t.a with --export-dynamic, so extension modules still find the C API.
configure_flags=(--disable-gil --with-ensurepip=install)

tarball="${PP_CPYTHON_TARBALL:-}"
opt="${PP_CPYTHON_OPT:-pgo}"
jobs="${PP_JOBS:-2}"
cache_root="${PYPARALLEL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pyparallel}"
print_path=0
print_mirror=0
keep_work=0
force=0
stock=0

log() { printf 'build-cpython: %s\n' "$*" >&2; }
die() { printf 'build-cpython: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --tarball) tarball="${2:?--tarball needs a path}"; shift 2 ;;
    --tarball=*) tarball="${1#*=}"; shift ;;
    --opt) opt="${2:?--opt needs a variant}"; shift 2 ;;
    --opt=*) opt="${1#*=}"; shift ;;
    --jobs|-j) jobs="${2:?--jobs needs a number}"; shift 2 ;;
    --jobs=*) jobs="${1#*=}"; shift ;;
    --cache-dir) cache_root="${2:?--cache-dir needs a folder}"; shift 2 ;;
    --cache-dir=*) cache_root="${1#*=}"; shift ;;
    --print-path) print_path=1; shift ;;
    --print-mirror) print_mirror=1; shift ;;
    --keep-work) keep_work=1; shift ;;
    --force) force=1; shift ;;
    --stock) stock=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage; die "unknown option '$1'" ;;
  esac
done

case "$opt" in
  none) ;;
  pgo) configure_flags+=(--enable-optimizations) ;;
  lto) configure_flags+=(--with-lto) ;;
  pgo-lto) configure_flags+=(--enable-optimizations --with-lto) ;;
  tsan) configure_flags+=(--with-thread-sanitizer) ;;
  *) die "--opt must be none, pgo, lto, pgo-lto or tsan (got '$opt')" ;;
esac
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "--jobs must be a positive integer (got '$jobs')"

# Install Debian packages that are missing (installing never changes the apt sources).
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
      || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get"
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    # A stale package index is the usual cause; refresh it once and retry.
    "${sudo[@]}" apt-get update >&2
    "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
      || die "could not install ${missing[*]}"
  fi
}

# The Debian archive this machine's apt already uses: the first URI in its sources (one-line
# or deb822 format) that is not the security archive. The host is never written here.
debian_mirror() {
  if [[ -n "${PP_DEBIAN_MIRROR:-}" ]]; then
    printf '%s\n' "${PP_DEBIAN_MIRROR%/}"
    return 0
  fi
  local files=() f etc="${PP_APT_ETC:-/etc/apt}"
  for f in "$etc/sources.list" "$etc"/sources.list.d/*.list "$etc"/sources.list.d/*.sources; do
    [[ -f "$f" ]] && files+=("$f")
  done
  [[ ${#files[@]} -gt 0 ]] || return 1
  awk '
    /^[[:space:]]*#/ { next }
    $1 == "deb" || $1 == "deb-src" {
      for (i = 2; i <= NF; i++) if ($i ~ /^[a-z0-9+]+:\/\//) { print $i; break }
    }
    tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }
  ' "${files[@]}" | grep -v -- '-security' | grep -v '/security' | head -n 1 | sed 's:/*$::'
}

if [[ $print_mirror -eq 1 ]]; then
  m="$(debian_mirror)" || true
  [[ -n "$m" ]] || die "no Debian archive in this machine's apt sources; set PP_DEBIAN_MIRROR"
  echo "$m"
  exit 0
fi

if [[ $stock -eq 1 ]]; then
  ensure_packages python3.11 python3.11-dev libpython3.11-dev
  echo /usr/bin/python3.11
  exit 0
fi

# --- The cache key -------------------------------------------------------------------------
read_series() {
  # Patch file names from patches/series in order; blank lines and # comments are ignored.
  [[ -f "$patchdir/series" ]] || return 0
  sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^[[:space:]]*$/d' "$patchdir/series"
}

if [[ -n "$tarball" ]]; then
  [[ -f "$tarball" ]] || die "tarball '$tarball' not found"
  tarball="$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")"
  src_sha="$(sha256sum "$tarball" | cut -d' ' -f1)"
  # The version is in the tarball's Include/patchlevel.h.
  version="$(tar -xOf "$tarball" --wildcards '*/Include/patchlevel.h' 2>/dev/null \
    | sed -n 's/^#define PY_VERSION[[:space:]]*"\([^"+]*\).*"/\1/p' | head -n1)"
  [[ -n "$version" ]] || die "'$tarball' does not look like a CPython source tarball"
else
  [[ -f "$sumfile" ]] || die "checksum file $sumfile is missing"
  read -r src_sha orig_name < <(sed -e '/^#/d' -e '/^[[:space:]]*$/d' "$sumfile" | head -n1)
  orig_name="${orig_name#\*}"
  version="${orig_name#"${srcpkg}"_}"
  version="${version%.orig.tar.*}"
fi

key_input="source=$src_sha
opt=$opt
configure=${configure_flags[*]}
"
# A PGO build trains on interpreter/cpython/pgo_task.py (not CPython's default, which runs ~40
# regression-test modules for many minutes); the task is part of what is built.
make_flags=()
if [[ "$opt" == pgo* ]]; then
  make_flags+=("PROFILE_TASK=$here/pgo_task.py")
  key_input+="pgo_task=$(cat "$here/pgo_task.py" "$here/microbench.py" | sha256sum | cut -d' ' -f1)
"
fi
while IFS= read -r p; do
  [[ -f "$patchdir/$p" ]] || die "patches/series names '$p' but $patchdir/$p does not exist"
  key_input+="patch=$p $(sha256sum "$patchdir/$p" | cut -d' ' -f1)
"
done < <(read_series)
key="$(printf '%s' "$key_input" | sha256sum | cut -c1-12)"
prefix="$cache_root/cpython-$version-$key"
pybin="$prefix/bin/python${version%.*}t"
stamp="$prefix/.pyparallel-build-complete"

if [[ $print_path -eq 1 ]]; then
  [[ -f "$stamp" && -x "$pybin" ]] || exit 1
  echo "$pybin"
  exit 0
fi

mkdir -p "$cache_root"
# Two meson setups (or CI jobs) may ask at once: one builds, the other waits and reuses.
exec 9>"$cache_root/.lock-cpython-$version-$key"
if ! flock -n 9; then
  log "another build of $prefix is running; waiting for it"
  flock 9
fi

if [[ -f "$stamp" && -x "$pybin" && $force -eq 0 ]]; then
  log "cached: $prefix"
  echo "$pybin"
  exit 0
fi

start=$(date +%s)
work="$cache_root/work/cpython-$version-$key"
rm -rf "$work" "$prefix"
mkdir -p "$work"
buildlog="$work/build.log"
log "building CPython $version (variant $opt, key $key); log: $buildlog"

# Unpacking and patching first, so a bad patch fails before any package is installed.
ensure_packages xz-utils patch

# --- Source ------------------------------------------------------------------------------------
if [[ -z "$tarball" ]]; then
  command -v apt-get >/dev/null || die "apt-get is needed to fetch Debian's $srcpkg (or pass --tarball)"
  # A private apt: its own sources list, no sources.list.d, no pinning, its own state and cache.
  apt_dir="$cache_root/apt-$suite"
  mkdir -p "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" \
    "$apt_dir/sources.list.d" "$apt_dir/preferences.d"
  mirror="$(debian_mirror)" || true
  [[ -n "$mirror" ]] || die "no Debian archive in this machine's apt sources; set PP_DEBIAN_MIRROR" \
    "to the archive's URL (the folder holding dists/ and pool/)"
  echo "deb-src [signed-by=$keyring] $mirror $suite main" >"$apt_dir/sources.list"
  apt_opts=(
    -o "Dir::Etc::SourceList=$apt_dir/sources.list"
    -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
    -o "Dir::Etc::Preferences=$apt_dir/preferences"
    -o "Dir::Etc::PreferencesParts=$apt_dir/preferences.d"
    -o "Dir::State=$apt_dir/state"
    -o "Dir::Cache=$apt_dir/cache"
    -o "APT::Sandbox::User=$(id -un)"
  )
  orig="$apt_dir/$orig_name"
  if [[ ! -f "$orig" ]] || ! echo "$src_sha  $orig" | sha256sum -c --status; then
    log "fetching $srcpkg from Debian $suite with a private apt configuration"
    apt-get "${apt_opts[@]}" -q update >>"$buildlog" 2>&1 \
      || die "apt-get update (private, $suite) failed; see $buildlog"
    # --download-only: dpkg-source would apply Debian's layout patches, which we do not want.
    (cd "$apt_dir" && apt-get "${apt_opts[@]}" -q source --download-only "$srcpkg") \
      >>"$buildlog" 2>&1 || die "apt-get source $srcpkg failed; see $buildlog"
    [[ -f "$orig" ]] || die "apt-get source did not produce $orig_name (has $suite moved to" \
      "a new upstream version? update $sumfile)"
  fi
  echo "$src_sha  $orig" | sha256sum -c --status \
    || die "$orig does not match the sha256 in $sumfile ($src_sha)"
  tarball="$orig"
  log "source verified: $orig_name sha256 $src_sha"
fi

tar -xf "$tarball" -C "$work"
srcdir="$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'Python-*' | head -n1)"
[[ -n "$srcdir" && -f "$srcdir/configure" ]] || die "no CPython source tree in $tarball"

# --- Patch series ------------------------------------------------------------------------------
while IFS= read -r p; do
  log "applying patches/$p"
  if ! patch -d "$srcdir" -p1 --forward --batch --fuzz=0 --dry-run <"$patchdir/$p" >>"$buildlog" 2>&1; then
    die "patch patches/$p does not apply to CPython $version (see $buildlog)"
  fi
  patch -d "$srcdir" -p1 --forward --batch --fuzz=0 <"$patchdir/$p" >>"$buildlog" 2>&1
done < <(read_series)

# --- Configure, build, install ----------------------------------------------------------------
# The -dev packages behind the stdlib's extension modules (ssl, zlib, ffi/ctypes, bz2, lzma,
# sqlite3, readline, uuid, dbm, curses, expat); configure silently skips a module whose
# library is missing, so they are installed first and the modules checked after install.
ensure_packages build-essential pkg-config \
  libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev libreadline-dev \
  uuid-dev libgdbm-dev libgdbm-compat-dev libncurses-dev libexpat1-dev

builddir="$work/build"
mkdir -p "$builddir"
configure_env=()
if [[ "$opt" == tsan ]]; then
  # CPython's ThreadSanitizer builds are made with clang (its own CI does the same).
  ensure_packages clang libclang-rt-14-dev
  configure_env=(CC=clang CXX=clang++)
fi
log "configure ${configure_flags[*]} --prefix=$prefix"
(cd "$builddir" && env "${configure_env[@]}" "$srcdir/configure" --prefix="$prefix" \
  "${configure_flags[@]}") >>"$buildlog" 2>&1 || die "configure failed; see $buildlog"
log "make -j$jobs"
make -C "$builddir" -j"$jobs" "${make_flags[@]}" >>"$buildlog" 2>&1 || die "make failed; see $buildlog"
log "make install"
make -C "$builddir" install >>"$buildlog" 2>&1 || die "make install failed; see $buildlog"

[[ -x "$pybin" ]] || die "install did not produce $pybin"
"$pybin" -c 'import sys; assert not sys._is_gil_enabled(), "GIL is enabled"' \
  || die "$pybin is not free-threaded"
# Extension modules that failed to build are reported by make but do not fail it; fail here for
# the ones pyparallel users rely on.
"$pybin" -c 'import ssl, sqlite3, zlib, ctypes, bz2, lzma, readline, json, asyncio, _uuid, dbm.gnu, curses, pyexpat, _decimal' \
  || die "$pybin lacks a stdlib extension module (see 'make' output in $buildlog)"

cp "$buildlog" "$prefix/pyparallel-build.log"
# CPython's own ThreadSanitizer suppressions (known, reviewed races of the unpatched
# interpreter), for interpreter/cpython/tsan-check.sh.
if [[ "$opt" == tsan ]]; then
  mkdir -p "$prefix/share/pyparallel"
  cp "$srcdir"/Tools/tsan/suppressions*.txt "$prefix/share/pyparallel/"
fi
end=$(date +%s)
printf 'version=%s\nvariant=%s\nkey=%s\nconfigure=%s\nseconds=%s\n%s' "$version" "$opt" "$key" \
  "${configure_flags[*]}" "$((end - start))" "$key_input" >"$stamp"
[[ $keep_work -eq 1 ]] || rm -rf "$work"
log "built in $((end - start)) s: $prefix"
echo "$pybin"
exit 0
}
