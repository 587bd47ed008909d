"""Shared pytest fixtures; the helpers themselves live in pptest.py."""
import pathlib

import pytest

from pptest import build_dir, free_port


@pytest.fixture
def build() -> pathlib.Path:
    return build_dir()


@pytest.fixture
def port() -> int:
    return free_port()
