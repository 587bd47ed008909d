"""Shared pytest fixtures; the helpers themselves live in pptest.py."""
import pathlib
import signal

import pytest

from pptest import build_dir, free_port

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
