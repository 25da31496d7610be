"""The PyPSA benchmark's ``--orders`` mode: HiGHS on gridlang's LP in linopy's
order, in the backend's step order, and on PyPSA's, all with one objective."""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT

pytest.importorskip("pypsa")
sys.path.insert(0, str(ROOT / "benchmarks"))

import pypsa_dispatch  # noqa: E402


def test_orders_solve_the_same_lp_three_ways() -> None:
    found = pypsa_dispatch.orders(6, 24, 2, {})
    assert list(found) == list(pypsa_dispatch.ORDERS)
    ref = found["pypsa"]["objective"]
    for name, r in found.items():
        assert len(r["runs"]) == 2 and all(s > 0 for s in r["runs"]), name
        assert r["objective"] == pytest.approx(ref, rel=1e-9), name


def test_orders_table(capsys) -> None:
    assert pypsa_dispatch.main(["--orders", "--sizes", "4", "--steps", "24", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "step by step" in out and "linopy's order" in out and "objectives all equal" in out
