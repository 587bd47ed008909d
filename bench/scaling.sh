#!/usr/bin/env bash
# bench/scaling.sh -- pyparallel's req/s at 1, 2, 4, 8, 16 workers against N uvloop+httptools
# processes, from a relocatable bundle (./pp dist), with wrk pinned to its own CPUs.
#
#   bench/scaling.sh [BUNDLE] [--out DIR] [--workers 1,2,4,8,16] [--seconds 5] [--repeat 3]
#                    [--gen-cores N] [--per-worker 8] [--pipeline 16] [--cpu-ms 1.0]
#                    [--only cpu,plaintext] [--split] [--anchor-python /usr/bin/python3]
#   bench/scaling.sh --plot-only [--out DIR]     (redraw DIR/scaling.png from DIR/scaling.dat)
#
# BUNDLE is a pyparallel-*.tar.gz (extracted into a temporary folder) or an extracted bundle;
# without it, the bundle this script is part of (bundle/bench/scaling.sh), or in the
# repository the newest dist/pyparallel-*.tar.gz (./pp bench scaling.sh). Nothing else of
# the repository is used, so on another machine: copy the tarball, `tar xf` it, run
# `pyparallel-*/bench/scaling.sh`. Writes DIR/scaling.md (table), DIR/scaling.dat and, with
# gnuplot, DIR/scaling.png (default DIR: ./scaling-results). bench/scaling.py measures;
# its docstring says how CPUs are split. Needs: wrk on PATH, taskset (util-linux), a python3
# with uvloop and httptools for the anchor (Debian's python3-uvloop, python3-httptools on
# /usr/bin/python3, or --anchor-python), gnuplot for the plot.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { printf 'scaling: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'scaling: %s\n' "$*" >&2; }

bundle=""
out="scaling-results"
plot_only=0
anchor_python=/usr/bin/python3
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    --out) out="$2"; shift 2 ;;
    --anchor-python) anchor_python="$2"; shift 2 ;;
    --plot-only) plot_only=1; shift ;;
    --split) args+=("$1"); shift ;;
    --*) args+=("$1" "$2"); shift 2 ;;
    *) [ -z "$bundle" ] || die "one bundle only (got '$bundle' and '$1')"; bundle="$1"; shift ;;
  esac
done

if [ "$plot_only" = 0 ]; then
  if [ -z "$bundle" ] && [ -x "$here/../bin/pyparallel" ]; then
    bundle="$here/.."
  elif [ -z "$bundle" ]; then
    # In the repository: the newest tarball ./pp dist made.
    bundle="$( (ls -t "$here"/../dist/pyparallel-*-linux-"$(uname -m)".tar.gz 2>/dev/null ||
      true) | head -n 1)"
    [ -n "$bundle" ] || die "no bundle given, none in dist/ (./pp dist makes one)"
  fi
  if [ -f "$bundle" ]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    tar -C "$tmp" -xzf "$bundle" || die "cannot extract $bundle"
    bundle="$(echo "$tmp"/pyparallel-*)"
  fi
  [ -x "$bundle/bin/pyparallel" ] || die "$bundle has no bin/pyparallel"
  bundle="$(cd "$bundle" && pwd)"
  command -v wrk >/dev/null || die "needs wrk (apt-get install wrk)"
  command -v taskset >/dev/null || die "needs taskset (apt-get install util-linux)"
  "$anchor_python" -c 'import uvloop, httptools' 2>/dev/null ||
    die "the anchor needs $anchor_python with uvloop and httptools" \
      "(Debian: apt-get install python3-uvloop python3-httptools; or --anchor-python)"
  say "bundle $bundle ($(head -n 1 "$bundle/BUNDLE.txt" 2>/dev/null || echo '?'))"
  mkdir -p "$out"
  # The measuring half: the bundle's copy, on the bundle's interpreter (it needs only the
  # stdlib), so every machine runs the same code.
  "$bundle/bin/pyparallel" "$bundle/bench/scaling.py" --bundle "$bundle" --out "$out" \
    --anchor-python "$anchor_python" "${args[@]}"
fi
[ -f "$out/scaling.dat" ] || die "no $out/scaling.dat to plot"

if ! command -v gnuplot >/dev/null; then
  say "no gnuplot (apt-get install gnuplot-nox): table only, $out/scaling.md"
  exit 0
fi
# Two panels, req/s against workers on log2 axes: pyparallel, the anchor, and pyparallel's
# 1-worker figure times N (perfect scaling) for reference.
routes="$(grep -c '^# ' "$out/scaling.dat")"
{
  echo "set terminal pngcairo noenhanced size $((480 * routes)),400 font 'sans,9'"
  echo "set output '$out/scaling.png'"
  echo "set multiplot layout 1,$routes title \"$(sed -n 's/^## //p' "$out/scaling.dat")\""
  echo "set logscale xy 2; set grid; set key bottom right; set xtics (1, 2, 4, 8, 16, 32, 64)"
  echo "set xlabel 'workers / processes (log scale)'"
  echo "set ylabel 'requests per second (log scale)'; set format y '%.1s%c'"
  i=0
  while IFS= read -r title; do
    echo "set title '${title#\# }'"
    pick="/^# /{i++} i==$((i + 1)) \&\& !/^#/ \&\& NF {print \$2; exit}"
    echo "base = system(\"awk '$pick' $out/scaling.dat\") + 0"
    echo "plot '$out/scaling.dat' index $i using 1:2 with linespoints lw 2 pt 7 \\"
    echo "       title 'pyparallel', \\"
    echo "     '' index $i using 1:3 with linespoints lw 2 pt 5 title 'uvloop+httptools x N', \\"
    echo "     '' index $i using 1:(base*\$1) with lines dt 2 lc rgb 'gray' title 'linear'"
    i=$((i + 1))
  done < <(grep '^# ' "$out/scaling.dat")
  echo "unset multiplot"
} | gnuplot
say "wrote $out/scaling.md and $out/scaling.png"
