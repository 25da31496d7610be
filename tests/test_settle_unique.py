"""The settlement point is one defined optimum: the same prices and payments
whichever optimum stage 1 found (HiGHS with other threads or seeds, Clarabel,
SCIP, ATC, ADMM), and the same from another starting vertex of the optimal face."""

from __future__ import annotations

import numpy as np
import pytest

import gridlang
from conftest import CASES
from gridlang import settle

ATOL = 1e-6  # currency/MWh for prices, currency for money


def _game(**solve):
    r = gridlang.load(CASES / "prosumers.grid").solve(**solve)
    assert not r.doubts() and not r.warnings, (r.doubts(), r.warnings)
    (g,) = r.games
    return g


@pytest.fixture(scope="module")
def reference():
    return _game(solver="highs")


@pytest.mark.parametrize(
    "solve",
    [{"solver": "highs", "threads": 1}, {"solver": "highs", "random_seed": 7}, {"solver": "highs", "random_seed": 12345}, {"solver": "clarabel"}, {"solver": "scip"}, {"method": "atc"}, {"method": "admm"}],
    ids=["highs-threads-1", "highs-seed-7", "highs-seed-12345", "clarabel", "scip", "atc", "admm"],
)
def test_prosumers_game_is_settled_the_same_whatever_solved_stage_1(reference, solve) -> None:
    g = _game(**solve)
    np.testing.assert_allclose(g.price, reference.price, atol=ATOL, rtol=0)
    np.testing.assert_allclose(g.net_import, reference.net_import, atol=1e-9, rtol=0)  # MW
    np.testing.assert_allclose(np.append(g.final, g.operator_final), np.append(reference.final, reference.operator_final), atol=ATOL, rtol=0)
    assert g.theta == pytest.approx(reference.theta, abs=1e-9)


def test_the_point_does_not_depend_on_the_starting_vertex(reference, monkeypatch) -> None:
    """HiGHS's interior point (with crossover) starts from another vertex and
    marks other rows active: the least-squares point is the same."""
    monkeypatch.setattr(settle, "FACE_LP_METHOD", "highs-ipm")
    g = _game(solver="highs")
    np.testing.assert_allclose(g.price, reference.price, atol=ATOL, rtol=0)
    np.testing.assert_allclose(np.append(g.final, g.operator_final), np.append(reference.final, reference.operator_final), atol=ATOL, rtol=0)


def test_the_settlement_point_is_an_optimum_and_reported(reference) -> None:
    r = gridlang.load(CASES / "prosumers.grid").solve(solver="highs")
    (g,) = r.games
    # the reported point is the settlement point: every agent's cost in the results is the game's
    np.testing.assert_allclose(r["agent_cost"].sel(agent=[*g.prosumers, g.operator]).values, np.append(g.cost, g.operator_cost), atol=1e-9)
    # ... and it is optimal: the members' costs add up to the optimum
    assert g.cost.sum() + g.operator_cost == pytest.approx(r.objective, rel=1e-9)
    assert r.residual <= 1e-5


def _market(formulation, **solve):
    r = gridlang.load(CASES / "three_microgrids.grid", formulation=formulation).solve(**solve)
    assert not r.doubts() and not r.warnings, (r.doubts(), r.warnings)
    (s,) = r.settlements
    return s


@pytest.mark.parametrize(
    "formulation, solves",
    [("lindistflow", [{"solver": "highs"}, {"solver": "highs", "random_seed": 7}, {"solver": "clarabel"}, {"method": "atc"}]), (None, [{}, {"method": "atc"}])],
    ids=["lp", "soc"],
)
def test_three_microgrids_payments_whatever_solved_stage_1(formulation, solves) -> None:
    first, *others = [_market(formulation, **s) for s in solves]
    for s in others:
        np.testing.assert_allclose(s.payment, first.payment, atol=ATOL, rtol=0)
        np.testing.assert_allclose(s.cost, first.cost, atol=ATOL, rtol=0)
        np.testing.assert_allclose(s.fees_paid, first.fees_paid, atol=ATOL, rtol=0)
    assert abs(first.budget_balance) < 1e-6 and first.rational


STAGE_1 = [{"solver": "highs"}, {"solver": "clarabel"}, {"solver": "scip"}, {"method": "admm"}, {"method": "atc"}]
STAGE_1_IDS = ["highs", "clarabel", "scip", "admm", "atc"]


def _money(s) -> np.ndarray:
    """Everything a market settles: payments, gains, fees, pairwise payments, and
    with a fee collector the tariffs paid to it and its cost and gain."""
    parts = [s.payment, s.gain, s.cost, s.fees_paid, s.pairwise.ravel(), [s.fees_collected]]
    if s.operator:
        parts += [s.tariff_paid, [s.operator_cost, s.operator_gain]]
    return np.concatenate(parts)


@pytest.fixture(scope="module")
def microgrid_market_reference():
    r = gridlang.load(CASES / "microgrid_market.grid").solve(solver="highs")
    (s,) = r.settlements
    return s


@pytest.mark.parametrize("solve", STAGE_1, ids=STAGE_1_IDS)
def test_microgrid_market_settles_the_same_whatever_solved_stage_1(microgrid_market_reference, solve) -> None:
    """Central HiGHS, Clarabel, SCIP and decomposed ADMM, ATC: payments, gains,
    fees and the fee collector's money within 1e-6 of the surplus."""
    ref = microgrid_market_reference
    r = gridlang.load(CASES / "microgrid_market.grid").solve(**solve)
    assert not r.doubts() and not r.warnings, (r.doubts(), r.warnings)
    (s,) = r.settlements
    np.testing.assert_allclose(_money(s), _money(ref), atol=1e-6 * ref.surplus, rtol=0)
    assert abs(s.budget_balance) < 1e-6 and abs(s.money_balance) < 1e-6 and s.rational


@pytest.mark.parametrize("solve", STAGE_1[1:], ids=STAGE_1_IDS[1:])
def test_three_microgrids_operator_as_member_settles_the_same(solve) -> None:
    """The operator-as-member variant (LinDistFlow: an LP, so the optimal face is exact)."""
    ref = _market("lindistflow", solver="highs")
    s = _market("lindistflow", **solve)
    np.testing.assert_allclose(_money(s), _money(ref), atol=1e-6 * ref.surplus, rtol=0)


def test_microgrid_market_with_cones_settles_the_same_central_and_decomposed() -> None:
    """DistFlow with rotated cones (an SOCP): central Clarabel, ADMM and ATC give the
    same settlement -- stage 2's point is found again centrally by the default solver."""
    first, *others = [gridlang.load(CASES / "microgrid_market.grid", formulation="distflow_soc").solve(**s) for s in ({"solver": "clarabel"}, {"method": "admm"}, {"method": "atc"})]
    for r in (first, *others):
        assert not r.doubts() and not r.warnings, (r.doubts(), r.warnings)
    ref = first.settlements[0]
    for r in others:
        np.testing.assert_allclose(_money(r.settlements[0]), _money(ref), atol=1e-6 * ref.surplus, rtol=0)
