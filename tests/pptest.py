"""Helpers every Python test suite imports: where the build is, free loopback ports.

(A module of its own rather than conftest.py: several test folders have a conftest.py,
and `from conftest import ...` would find whichever pytest loaded last.)
"""
import os
import pathlib
import socket

ROOT = pathlib.Path(__file__).resolve().parent.parent
# A factor for the wall-clock bounds the tests put on shutdown and start-up (how long a
# server may take to stop): interpreter/cpython/tsan-runtime.sh raises it, since everything runs
# 5-15x slower under ThreadSanitizer. Bounds on what a test measures stay unscaled.
SLOWDOWN = float(os.environ.get("PP_TEST_SLOWDOWN", "1"))


def build_dir() -> pathlib.Path:
    """The meson build folder under test (PP_BUILD_DIR, default ./build)."""
    return pathlib.Path(os.environ.get("PP_BUILD_DIR", ROOT / "build")).resolve()


def gil_build_dir() -> pathlib.Path | None:
    """A build embedding a GIL interpreter (PP_GIL_BUILD_DIR), when there is one."""
    d = os.environ.get("PP_GIL_BUILD_DIR")
    return pathlib.Path(d).resolve() if d else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
