"""Print how to embed and extend the interpreter running this script, for meson.

interpreter/meson.build runs it with the chosen python. Output: one "key<TAB>value" line per
item; list-valued keys repeat. It follows python-config's --embed logic, except that a static
libpython is linked whole: extension modules loaded later (the stdlib's lib-dynload, user
extensions) need C-API symbols the host itself never calls.
"""
import os
import sys
import sysconfig


def emit(key, value):
    print(f"{key}\t{value}")


def main():
    var = sysconfig.get_config_var
    free_threaded = bool(var("Py_GIL_DISABLED"))
    emit("version", f"{sys.version_info[0]}.{sys.version_info[1]}")
    emit("full_version", sys.version.split()[0])
    emit("free_threaded", "true" if free_threaded else "false")
    emit("executable", os.path.realpath(sys.executable))
    emit("ext_suffix", var("EXT_SUFFIX"))
    emit("platlib", sysconfig.get_path("platlib"))
    includes = {sysconfig.get_path("include"), sysconfig.get_path("platinclude")} - {None}
    for inc in sorted(includes):
        emit("include", inc)

    if os.name == "nt":
        # python.org's Windows layout: the import library is libs/python313t.lib (or
        # python313.lib), the DLL sits beside python.exe. (Not exercised by CI yet.)
        name = f"python{sys.version_info[0]}{sys.version_info[1]}{'t' if free_threaded else ''}"
        lib = os.path.join(sys.base_prefix, "libs", name + ".lib")
        if not os.path.exists(lib):
            print(f"no {lib}; install the interpreter with its development files",
                  file=sys.stderr)
            return 1
        emit("libpython", lib)
        emit("link_arg", lib)
        return 0

    ldversion = var("LDVERSION") or f"{sys.version_info[0]}.{sys.version_info[1]}"
    libdir = var("LIBDIR")
    libpl = var("LIBPL")
    shared_name = f"libpython{ldversion}{var('SHLIB_SUFFIX') or '.so'}"
    static_name = f"libpython{ldversion}.a"
    shared = next((os.path.join(d, shared_name) for d in (libdir, libpl)
                   if d and os.path.exists(os.path.join(d, shared_name))), None)
    static = next((os.path.join(d, static_name) for d in (libpl, libdir)
                   if d and os.path.exists(os.path.join(d, static_name))), None)
    if shared:
        # A shared libpython (e.g. Debian's libpython3.11.so): link it, find it at run time.
        emit("libpython", shared)
        emit("link_arg", shared)
        where = os.path.dirname(shared)
        if not where.startswith(("/usr/lib", "/lib")):  # the loader searches those anyway
            emit("link_arg", f"-Wl,-rpath,{where}")
    elif static:
        emit("libpython", static)
        emit("link_arg", "-Wl,--whole-archive")
        emit("link_arg", static)
        emit("link_arg", "-Wl,--no-whole-archive")
        # Export the C API from the executable to the extension modules it loads.
        for flag in (var("LINKFORSHARED") or "").split():
            emit("link_arg", flag)
    else:
        print(f"no libpython{ldversion} (.so or .a) under {libdir} or {libpl}; "
              "install the interpreter's development files", file=sys.stderr)
        return 1
    for flag in f"{var('LIBS') or ''} {var('SYSLIBS') or ''}".split():
        emit("link_arg", flag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
