"""NUMA placement through the Python runtime: `pyparallel --topology`, run(numa_policy=...)
and the environment pin the workers where the plan says; impossible policies are errors."""
import os
import pathlib
import subprocess

import pytest

from pyserver import EXAMPLES, ServerProcess, has_parallel_module, pyparallel

pytestmark = pytest.mark.skipif(not has_parallel_module(), reason="pyparallel not built")


def thread_affinities(pid: int) -> list[str]:
    out = []
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list"):
                out.append(line.split(":", 1)[1].strip())
    return out


def test_topology_prints_machine_and_plan():
    r = subprocess.run([str(pyparallel()), "--workers", "1", "--topology"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "NUMA node" in r.stdout and "Plan: policy compact, 1 worker" in r.stdout
    # One row per worker: worker, PU, core, node, memory.
    rows = [ln.split() for ln in r.stdout.splitlines() if ln.strip().startswith("0 ")]
    assert rows and rows[0][1].isdigit(), r.stdout


@pytest.mark.parametrize("policy,needle", [("node:9", "node 9"), ("0-4095", "4095"),
                                           ("bogus", "bogus")])
def test_impossible_policy_is_an_error(policy, needle):
    r = subprocess.run([str(pyparallel()), "--numa-policy", policy, "--topology"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr


def test_workers_pinned_per_policy():
    cpu = sorted(os.sched_getaffinity(0))[-1]
    srv = ServerProcess(EXAMPLES / "tefb.py", workers=1, env={"PYPARALLEL_NUMA_POLICY": str(cpu)})
    try:
        assert srv.get("/plaintext")[2] == b"Hello, World!"
        assert str(cpu) in thread_affinities(srv.proc.pid)
    finally:
        assert srv.stop() == 0, srv.output()[-2000:]


def test_run_rejects_an_impossible_policy(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import parallel\n"
                      "parallel.register(transport=parallel.server('127.0.0.1', 0),"
                      " protocol=type('P', (), {}))\n"
                      "try:\n"
                      "    parallel.run(workers=1, numa_policy='node:9')\n"
                      "except parallel.ParallelError as e:\n"
                      "    print('refused:', e)\n")
    r = subprocess.run([str(pyparallel()), str(script)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    assert "refused:" in r.stdout and "node 9" in r.stdout
