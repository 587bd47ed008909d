"""The shipped type stub (interpreter/parallel/parallel.pyi) and the module agree."""
import ast
import json
import subprocess

import pytest

from pyserver import has_parallel_module, pyparallel
from pptest import ROOT

pytestmark = pytest.mark.skipif(not has_parallel_module(), reason="pyparallel not built")
STUB = ROOT / "interpreter" / "parallel" / "parallel.pyi"


def stub_names() -> dict[str, list[str]]:
    """Top-level names of the stub; for classes, their public members."""
    names: dict[str, list[str]] = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            names[node.name] = []
        elif isinstance(node, ast.ClassDef):
            members = []
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and not item.name.startswith("_"):
                    members.append(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.append(item.target.id)
                elif isinstance(item, ast.Assign):
                    members += [t.id for t in item.targets if isinstance(t, ast.Name)]
            names[node.name] = members
    return names


def test_every_stubbed_name_exists():
    names = stub_names()
    code = ("import json, parallel, sys\n"
            "names = json.loads(sys.argv[1])\n"
            "missing = [n for n in names if not hasattr(parallel, n)]\n"
            "missing += [n + '.' + m for n, ms in names.items() if hasattr(parallel, n)\n"
            "            for m in ms if not hasattr(getattr(parallel, n), m)]\n"
            "print(json.dumps(missing))\n")
    r = subprocess.run([str(pyparallel()), "-c", code, json.dumps(names)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # Response/FileResponse members that are instance data only are not class attributes.
    assert json.loads(r.stdout) == [], r.stdout
