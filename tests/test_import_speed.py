"""``import gridlang`` and a decomposition worker load nothing heavy.

Checked in fresh interpreters by what ends up in ``sys.modules`` (not by
timing, which depends on the machine): the package's names are looked up on
first use, and a worker needs numpy, scipy.sparse and Clarabel only."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("linopy", "xarray", "pandas", "matplotlib", "sklearn", "ray", "lark", "pint", "highspy", "gridlang.planning", "gridlang.settle", "gridlang.case", "gridlang.compiler.build")


def loaded(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_import_gridlang_loads_nothing_heavy() -> None:
    modules = loaded("import gridlang")
    assert not {m for m in (*HEAVY, "scipy", "numpy") if m in modules}


def test_the_public_names_are_still_there() -> None:
    modules = loaded("import gridlang\nassert gridlang.GridError.__name__ == 'GridError' and gridlang.Span('f', 1, 1).line == 1")
    assert "linopy" not in modules  # the errors need no compiler
    modules = loaded("from gridlang import load, Case, Result\nassert callable(load) and Case.__name__ == 'Case' and Result.__name__ == 'Result'")
    assert "linopy" in modules


def test_a_worker_loads_only_what_a_subproblem_needs() -> None:
    modules = loaded("import gridlang.decompose.worker, gridlang.decompose.executors")
    assert {"numpy", "scipy.sparse", "clarabel"} <= modules
    assert not {m for m in HEAVY if m in modules}
