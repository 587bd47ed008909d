"""Shared pytest fixtures: where the build is, free loopback ports, bounded waits."""
import os
import pathlib
import socket

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def build_dir() -> pathlib.Path:
    """The meson build folder under test (PP_BUILD_DIR, default ./build)."""
    return pathlib.Path(os.environ.get("PP_BUILD_DIR", ROOT / "build")).resolve()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def build() -> pathlib.Path:
    return build_dir()


@pytest.fixture
def port() -> int:
    return free_port()
