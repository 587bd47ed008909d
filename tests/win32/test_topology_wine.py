"""The Windows build's machine reading under Wine: numa/ without hwloc reads the processor
groups (platform/win32/numa_topology.cpp), and the worker plan pins each worker (can_bind)
instead of falling back to unpinned workers. Skipped when Wine or the cross build is
missing (the session's `wine_prefix`, conftest.py). The Linux side is tests/numa/.
"""
import subprocess

from wine import windows_build_dir


def test_topology_from_processor_groups(wine_prefix):
    exe = windows_build_dir() / "numa" / "pyparallel-topology.exe"
    out = subprocess.run(wine_prefix.command(exe), env=wine_prefix.env, capture_output=True,
                         text=True, timeout=60, errors="replace")
    assert out.returncode == 0, out.stderr
    text = out.stdout.replace("\r", "")
    assert "Machine (this host (Windows processor groups))" in text
    assert "Plan: policy compact" in text
    assert "unpinned" not in text + out.stderr
    rows = text.split("worker    PU", 1)[1].splitlines()[1:]
    workers = [line.split() for line in rows if line.strip()]
    assert workers and all(int(w[1]) >= 0 for w in workers), text  # each worker has a PU
