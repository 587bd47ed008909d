"""Fixtures for the interpreter tests: the pyparallel builds of each kind.

A build folder holds interpreter/pyparallel and interpreter/interpreter.txt (written by
interpreter/meson.build: the embedded python, its version, whether it is free-threaded).
The tests look at PP_BUILD_DIR (default ./build), the folders in PP_BUILD_DIRS
(os.pathsep-separated) and the conventional ./build-interp and ./build-interp-gil, and run
once per kind found: "free-threaded" and "gil". A kind with no build is skipped, saying how
to make one.
"""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent


def build_dir() -> pathlib.Path:
    """PP_BUILD_DIR as tests/conftest.py reads it (default ./build)."""
    return pathlib.Path(os.environ.get("PP_BUILD_DIR", ROOT / "build")).resolve()


KINDS = ("free-threaded", "gil")
HOW_TO_BUILD = {
    "free-threaded": "meson setup build-interp -Dpython=$(interpreter/cpython/build-cpython.sh) "
                     "&& ninja -C build-interp",
    "gil": "meson setup build-interp-gil -Dpython=$(interpreter/cpython/build-cpython.sh --stock) "
           "&& ninja -C build-interp-gil",
}
# Bound on any one child process; the suite must never hang.
TIMEOUT = 120


class Build:
    """One build folder with a pyparallel host."""

    def __init__(self, folder: pathlib.Path, info: dict):
        self.folder = folder
        self.kind = "free-threaded" if info.get("free_threaded") == "true" else "gil"
        self.python = info["executable"]
        self.version = info.get("version", "")
        self.host = folder / "interpreter" / "pyparallel"
        self.ext_dir = folder / "interpreter"

    def run(self, *args, exe=None, input=None, env=None, timeout=TIMEOUT, cwd=None):
        """Run pyparallel (or `exe`) with args; returns CompletedProcess with text output."""
        full_env = dict(os.environ)
        for name in ("PYPARALLEL_WORKERS", "PYPARALLEL_BACKEND", "PYPARALLEL_NUMA_POLICY",
                     "PYPARALLEL_LOG_LEVEL",
                     "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"):
            full_env.pop(name, None)
        full_env.update(env or {})
        return subprocess.run([str(exe or self.host), *map(str, args)], input=input,
                              capture_output=True, text=True, env=full_env,
                              timeout=timeout, cwd=cwd)


def _candidates():
    seen = []
    extra = [p for p in os.environ.get("PP_BUILD_DIRS", "").split(os.pathsep) if p]
    for folder in [build_dir(), *map(pathlib.Path, extra),
                   ROOT / "build-interp", ROOT / "build-interp-gil"]:
        folder = folder.resolve()
        if folder not in seen:
            seen.append(folder)
    return seen


def _read_info(folder: pathlib.Path):
    path = folder / "interpreter" / "interpreter.txt"
    if not path.is_file() or not (folder / "interpreter" / "pyparallel").is_file():
        return None
    info = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        info[key.strip()] = value.strip()
    return info


def find_build(kind: str):
    """The first build folder of `kind`, or None."""
    for folder in _candidates():
        info = _read_info(folder)
        if info and Build(folder, info).kind == kind:
            return Build(folder, info)
    return None


@pytest.fixture(params=KINDS, scope="session")
def pp(request) -> Build:
    """A pyparallel build, once per interpreter kind."""
    build = find_build(request.param)
    if build is None:
        pytest.skip(f"no {request.param} pyparallel build among "
                    f"{[str(c) for c in _candidates()]}; make one with: "
                    f"{HOW_TO_BUILD[request.param]}")
    return build


@pytest.fixture(scope="session")
def pp_ft() -> Build:
    build = find_build("free-threaded")
    if build is None:
        pytest.skip("no free-threaded pyparallel build; make one with: "
                    + HOW_TO_BUILD["free-threaded"])
    return build


@pytest.fixture(scope="session")
def pp_gil() -> Build:
    build = find_build("gil")
    if build is None:
        pytest.skip("no GIL pyparallel build; make one with: " + HOW_TO_BUILD["gil"])
    return build
