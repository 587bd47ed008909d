"""Shared pytest fixtures; the helpers themselves live in pptest.py."""
import pathlib
import signal
import sys

import pytest

from pptest import ROOT, build_dir, free_port

sys.path.insert(0, str(ROOT / "tests" / "win32"))
import wine  # noqa: E402  (tests/win32/wine.py)

# A shell without job control starts a background command (`./pp test &` in a script)
# with SIGINT ignored, and every process started from here would inherit that: a Python
# server then never sees the SIGINT the tests stop it with, and each one hangs until its
# timeout. Python's own handler here restores it: a handled signal is reset to its
# default in a child at exec, where an ignored one stays ignored.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def build() -> pathlib.Path:
    return build_dir()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def wine_prefix():
    """A booted throw-away Wine prefix for every test that runs the Windows build (booting one
    takes seconds, so the session shares it); its processes are killed and it is removed at
    the end. Skips the test, with the reason, where Wine or the cross build is missing."""
    reason = wine.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with wine.WinePrefix() as prefix:
        yield prefix
