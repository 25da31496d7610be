"""Default ADMM on every shipped multi-agent case: the central optimum (objective within
1e-4, whole model within ``FEASIBILITY_TOL``) in a bounded number of iterations, and the
market's payments (or the game's final bills) within 1e-3 of the surplus of the central
solve's.  The bounds are today's counts plus a small margin, so that a change of the
method that slows a case down shows here (today: ``three_microgrids`` 94 with cones,
96 LinDistFlow; ``microgrid_market`` 96; ``community4`` 25; ``prosumers`` 17);
``three_microgrids`` with cones (the shipped case) is held to issue 15's 100.

The planning cases (``collaborative_planning*.grid``) are mixed-integer: their
alternation's final upper level (the plan fixed) is what is decomposed; those runs are
slow (about 30 s each) and marked so."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CASES

import gridlang
from gridlang import decompose, solvers
from gridlang.solvers.result import FEASIBILITY_TOL

#: (case, formulation or None for the case's own, the most iterations default ADMM may take)
CASES_BOUNDS = [
    ("three_microgrids", None, 100),  # issue 15
    ("three_microgrids", "lindistflow", 100),
    ("microgrid_market", None, 100),
    ("microgrid_market", "distflow_soc", 100),
    ("community4", None, 28),
    ("prosumers", None, 20),
]
IDS = [f"{c}-{f or 'own'}" for c, f, _ in CASES_BOUNDS]


def _load(case: str, formulation: str | None):
    return gridlang.load(CASES / f"{case}.grid", **({"formulation": formulation} if formulation else {}))


@pytest.mark.parametrize("case, formulation, bound", CASES_BOUNDS, ids=IDS)
def test_default_admm_reaches_the_central_optimum_within_its_iterations(case: str, formulation: str | None, bound: int) -> None:
    central = solvers.solve(_load(case, formulation).built, "clarabel" if formulation == "distflow_soc" else None, {})
    assert central.termination == "optimal"
    result, run = decompose.solve(_load(case, formulation).built, "admm")
    assert run.converged and result.termination == "converged" and not result.doubts(), result.doubts()
    assert run.iterations <= bound, f"{case}: {run.iterations} iterations (at most {bound})"
    assert result.residual <= FEASIBILITY_TOL
    assert result.objective == pytest.approx(central.objective, rel=1e-4)


def _settled(case: str, **solve):
    r = gridlang.load(CASES / f"{case}.grid").solve(**solve)
    assert not r.doubts(), r.doubts()
    return r


@pytest.mark.parametrize("case", ["three_microgrids", "microgrid_market"])
def test_market_payments_by_admm_are_the_central_ones_within_1e_3_of_the_surplus(case: str) -> None:
    (ref,) = _settled(case).settlements
    (s,) = _settled(case, method="admm").settlements
    assert ref.surplus > 0
    np.testing.assert_allclose(s.payment, ref.payment, atol=1e-3 * ref.surplus, rtol=0)
    np.testing.assert_allclose(s.gain, ref.gain, atol=1e-3 * ref.surplus, rtol=0)


def test_game_bills_by_admm_are_the_central_ones_within_1e_3_of_the_surplus() -> None:
    (ref,) = _settled("prosumers").games
    (g,) = _settled("prosumers", method="admm").games
    assert ref.surplus > 0
    np.testing.assert_allclose(np.append(g.final, g.operator_final), np.append(ref.final, ref.operator_final), atol=1e-3 * ref.surplus, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("case, bound", [("collaborative_planning", 90), ("collaborative_planning_shared", 400)])
def test_collaborative_planning_upper_level_by_admm_within_its_iterations(case: str, bound: int) -> None:
    """82 and 379 iterations today (the shared case's plan leaves a row of fixed columns
    holding to 1.3e-8: see test_admm_honest)."""
    from gridlang.collaborate import collaborate

    central = collaborate(gridlang.load(CASES / f"{case}.grid")).result
    result = collaborate(gridlang.load(CASES / f"{case}.grid"), method="admm").result
    assert result.termination == "converged" and not result.doubts(), result.doubts()
    iterations = result.dataset.sizes["iteration"]
    assert iterations <= bound, f"{case}: {iterations} iterations (at most {bound})"
    assert result.objective == pytest.approx(central.objective, rel=1e-4)
