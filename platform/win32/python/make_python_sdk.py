#!/usr/bin/env python3
"""Makes what the mingw cross build needs to compile and link against python.org's
free-threaded CPython 3.13 for Windows, from the CPython source tarball alone:

    make_python_sdk.py TARBALL OUTDIR [--dlltool x86_64-w64-mingw32-dlltool]

OUTDIR/include/      the tarball's Include/ plus PC/pyconfig.h with Py_GIL_DISABLED set (the
                     installer's extension builds set it the same way for the 't' build)
OUTDIR/python313t.def  every PyAPI_FUNC / PyAPI_DATA the headers declare: the DLL's
                     exported symbol list, as far as the headers tell
OUTDIR/libpython313t.a the import library dlltool makes from that list
OUTDIR/sdk.txt       version and file names, for meson (interpreter/meson.build)

Why a generated import library: no Windows CPython can be installed on the build machine,
and the DLL itself is not needed to link -- only the names it exports. A name listed here
that the real DLL lacked would fail when Windows loads parallel.pyd or pyparallel.exe, but
only names the code actually calls end up imported, and those are public API that the
compiler checked against the same headers.
"""
import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

# PyAPI_FUNC(type) [attribute macros such as _Py_NO_RETURN] name(...
FUNC = re.compile(
    r"PyAPI_FUNC\s*\((?:[^()]|\([^()]*\))*\)\s*(?:\w+\s+)*\(?\s*\*?\s*(\w+)\s*\(", re.S)
DATA = re.compile(r"PyAPI_DATA\s*\((?:[^()]|\([^()]*\))*\)\s*\(?\s*\*?\s*(\w+)\s*[\[;)]", re.S)


def exported_names(include: pathlib.Path) -> tuple[set[str], set[str]]:
    funcs: set[str] = set()
    data: set[str] = set()
    for header in include.rglob("*.h"):
        text = header.read_text(errors="replace")
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)  # comments
        text = re.sub(r"^\s*#\s*define\s+PyAPI_(?:FUNC|DATA).*$", "", text, flags=re.M)
        funcs.update(FUNC.findall(text))
        data.update(DATA.findall(text))
    # The DLL exports CPython's names only. (Include/cpython/pthread_stubs.h declares
    # pthread_* with PyAPI_FUNC for WASI builds; they are not in the Windows DLL, and
    # listing them would shadow winpthreads.)
    ours = re.compile(r"^_?Py")
    funcs = {n for n in funcs - data if ours.match(n)}
    data = {n for n in data if ours.match(n)}
    return funcs, data


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("tarball")
    ap.add_argument("outdir")
    ap.add_argument("--dlltool", default="x86_64-w64-mingw32-dlltool")
    args = ap.parse_args()
    out = pathlib.Path(args.outdir)
    if out.exists():
        shutil.rmtree(out)
    (out / "include").mkdir(parents=True)
    with tarfile.open(args.tarball) as tar:
        top = tar.getnames()[0].split("/")[0]
        version = None
        for member in tar.getmembers():
            parts = member.name.split("/", 2)
            if len(parts) < 3 or not member.isfile():
                continue
            if parts[1] == "Include":
                dest = out / "include" / parts[2]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(member).read())
            elif parts[1] == "PC" and parts[2] == "pyconfig.h.in":
                text = tar.extractfile(member).read().decode()
                text, n = re.subn(r"^/\* #define Py_GIL_DISABLED 1 \*/$",
                                  "#define Py_GIL_DISABLED 1", text, flags=re.M)
                if n != 1:
                    print(f"{top}: PC/pyconfig.h.in has no Py_GIL_DISABLED line to set",
                          file=sys.stderr)
                    return 1
                (out / "include" / "pyconfig.h").write_text(text)
    patch = (out / "include" / "patchlevel.h")
    if not patch.exists() or not (out / "include" / "pyconfig.h").exists():
        print(f"{args.tarball}: not a CPython source tarball with PC/pyconfig.h.in",
              file=sys.stderr)
        return 1
    m = re.search(r'#define PY_VERSION\s+"(\d+)\.(\d+)\.(\d+)', patch.read_text())
    major, minor = m.group(1), m.group(2)
    dll = f"python{major}{minor}t"
    funcs, data = exported_names(out / "include")
    lines = [f"LIBRARY {dll}.dll", "EXPORTS"]
    lines += sorted(funcs)
    lines += [f"{name} DATA" for name in sorted(data)]
    (out / f"{dll}.def").write_text("\n".join(lines) + "\n")
    subprocess.run([args.dlltool, "-d", str(out / f"{dll}.def"), "-l",
                    str(out / f"lib{dll}.a"), "-D", f"{dll}.dll"], check=True)
    (out / "sdk.txt").write_text(
        f"version={m.group(1)}.{m.group(2)}.{m.group(3)}\ndll={dll}\n"
        f"ext_suffix=.cp{major}{minor}t-win_amd64.pyd\n")
    print(f"make_python_sdk: {len(funcs)} functions, {len(data)} data symbols -> "
          f"{out / f'lib{dll}.a'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
