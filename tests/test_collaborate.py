"""Collaborative planning: the alternation against the central plan and the
closed-form generalized Nash split, privacy of the decomposed upper level,
every investor better off than planning alone; on a case where the first
move is not the last, rounds that improve one after the other, the gap to
the joint MILP optimum and the Nash check (which holds at the end and fails
on a plan that is not an equilibrium)."""

from __future__ import annotations

import numpy as np
import pytest

import gridlang
from conftest import CASES
from gridlang import solvers
from gridlang.collaborate import collaborate, decisions, equilibrium
from gridlang.compiler.build import build
from gridlang.errors import GridError
from gridlang.settle import nash_payments

CASE = CASES / "collaborative_planning.grid"
SHARED = CASES / "collaborative_planning_shared.grid"


@pytest.fixture(scope="module")
def central():
    """The central plan (one MILP) and its Nash split, planning alone as disagreement."""
    case = gridlang.load(CASE)
    return case, case.solve()


@pytest.fixture(scope="module")
def alternated(central):
    return collaborate(central[0])


def test_the_alternation_converges_to_the_central_plan(central, alternated) -> None:
    _, r = central
    assert alternated.status == "converged" and alternated.iterations <= 5
    assert alternated.result.objective == pytest.approx(r.objective, rel=1e-4)
    built = r.plan.builds.set_index("candidate")
    again = alternated.result.plan.builds.set_index("candidate")
    assert (built["built"] == again["built"]).all()
    np.testing.assert_allclose(again["size_MW"], built["size_MW"], atol=1e-4)


def test_payments_are_the_closed_form_generalized_nash_split(central, alternated) -> None:
    s = alternated.result.settlements[0]
    # the closed form, by hand: gain_i = alpha_i * S with S = sum d - sum c
    surplus = s.disagreement.sum() - s.cost.sum()
    np.testing.assert_allclose(s.gain, s.powers * surplus, rtol=1e-9)
    _, _, payment = nash_payments(s.cost, s.disagreement, s.powers)
    np.testing.assert_allclose(s.payment, payment, rtol=1e-9)
    # and the same split as the central plan's, within 1e-4
    c = central[1].settlements[0]
    np.testing.assert_allclose(s.payment, c.payment, rtol=1e-4, atol=1e-4 * np.abs(c.payment).max())
    np.testing.assert_allclose(s.gain, c.gain, rtol=1e-4)


def test_every_investor_gains_against_planning_alone(alternated) -> None:
    s = alternated.result.settlements[0]
    assert s.agents == ("dso", "mg1", "mg2", "mg3")
    assert (s.gain > 0).all() and s.surplus > 0
    # a 2:1:1:1 split of the surplus
    np.testing.assert_allclose(s.gain / s.surplus, [0.4, 0.2, 0.2, 0.2], rtol=1e-9)


def test_decisions_are_the_candidates_without_time() -> None:
    built = gridlang.load(CASE).built
    assert set(decisions(built)) >= {"pv_candidate-build", "pv_candidate-size", "storage_candidate-build", "storage_candidate-size"}
    assert not any(name.endswith("-p") or name.endswith("-soc") for name in decisions(built))


def test_decomposed_upper_level_gives_the_same_split(central, alternated) -> None:
    """The final upper level through ADMM: the investors' operation stays private."""
    admm = collaborate(central[0], method="atc")
    assert admm.result.objective == pytest.approx(alternated.result.objective, rel=1e-3)
    np.testing.assert_allclose(admm.result.settlements[0].gain, alternated.result.settlements[0].gain, rtol=1e-3)


def test_needs_a_market_and_a_plan(write_case) -> None:
    text = CASE.read_text().replace("market pool among dso, mg1, mg2, mg3 { fee = 4 $/MWh; payments = nash(power = [2, 1, 1, 1]) }\n", "")
    path = write_case(text)
    for f in ("data/day_profiles.csv", "data/year_profiles.csv"):
        (path.parent / "data").mkdir(exist_ok=True)
        (path.parent / f).write_text((CASES / f).read_text())
    with pytest.raises(GridError, match="needs a plan study and a market"):
        collaborate(gridlang.load(path))


@pytest.fixture(scope="module")
def shared():
    """The case whose alternation needs several rounds, and its alternation."""
    case = gridlang.load(SHARED)
    return case, collaborate(case)


def _joint(case, plan: dict, free: str | None = None) -> float:
    """The joint planning MILP with every decision fixed at ``plan`` except investor
    ``free``'s, solved here independently of gridlang.collaborate."""
    built = build(case.ir)
    for name, values in plan.items():
        var = built.model.variables[name]
        kind = var.dims[0]
        own = np.array([case.ir.owners.get(str(i)) == free for i in var.labels.coords[kind].values])
        var.update(lower=var.lower.copy(data=np.where(own, var.lower.values, values)), upper=var.upper.copy(data=np.where(own, var.upper.values, values)))
    result = solvers.solve(built, None, {"mip_rel_gap": 1e-9})
    assert not result.doubts()
    return result.objective


def test_the_alternation_improves_round_by_round(shared) -> None:
    _, done = shared
    start, *rounds = done.rounds
    assert start.kind == "start" and not start.kept and not any(start.plans.values())
    moves = [r for r in rounds if r.kept]
    totals = [start.total_cost, *(r.total_cost for r in moves)]
    assert all(b < a - 1e-6 * abs(a) for a, b in zip(totals, totals[1:]))  # strictly lower, round by round
    assert len(moves) >= 2
    # the investors' own problems (the lower level) improve in two rounds at least, one after the other
    own = [r.iteration for r in moves if r.kind == "own"]
    assert len(own) >= 2 and own[1] == own[0] + 1
    # the first move is not already the end
    assert moves[0].total_cost > moves[-1].total_cost + 1e-6 * abs(moves[-1].total_cost)
    assert done.status == "converged" and not rounds[-1].kept
    for r in done.rounds:
        assert set(r.plans) == set(r.own_cost) == {"dso", "mg1", "mg2"}
        # own costs after settlement (payments balance) add up to the total
        assert sum(r.own_cost.values()) == pytest.approx(r.total_cost, rel=1e-9)


def test_the_gap_to_the_joint_optimum_is_reported(shared) -> None:
    case, done = shared
    central = case.solve(compare_plans=False)
    assert done.reference == pytest.approx(central.objective, rel=1e-6)
    for r in done.rounds:
        assert r.gap == pytest.approx((r.total_cost - done.reference) / abs(done.reference), rel=1e-9)
        assert r.gap >= -1e-6  # no plan beats the joint optimum (within the MILP's tolerance)
    assert done.gap == pytest.approx(done.rounds[-1].gap, rel=1e-9, abs=1e-12)
    assert done.result.objective == pytest.approx(done.rounds[-1].total_cost, rel=1e-6)


def test_the_end_is_a_nash_equilibrium(shared) -> None:
    """No investor lowers its own cost after settlement by changing its own decisions
    alone; checked again here by the joint MILP with the others' plans fixed and the
    closed form of the split: k_i = d_i - alpha_i (sum d - C)."""
    case, done = shared
    check = done.equilibrium
    assert check.holds and [d.investor for d in check.deviations] == ["dso", "mg1", "mg2"]
    assert all(d.improvement <= check.tolerance for d in check.deviations)
    total = done.rounds[-1].total_cost
    powers = dict(zip(done.result.settlements[0].agents, done.result.settlements[0].powers))
    for d in check.deviations:
        best = _joint(case, done.plan, d.investor)
        assert powers[d.investor] * (total - best) <= check.tolerance
        assert d.cost == pytest.approx(done.rounds[-1].own_cost[d.investor], rel=1e-9)


def test_the_check_finds_a_plan_that_is_not_an_equilibrium(shared) -> None:
    """With nothing built, some investor gains by building alone; its improvement is its
    share of the drop in the joint cost."""
    case, done = shared
    nothing = {n: np.zeros_like(v) for n, v in done.plan.items()}
    check = equilibrium(case, nothing)
    assert not check.holds
    base = _joint(case, nothing)
    powers = dict(zip(done.result.settlements[0].agents, done.result.settlements[0].powers))
    gaining = [d for d in check.deviations if d.improvement > check.tolerance]
    assert gaining
    for d in check.deviations:
        expected = powers[d.investor] * (base - _joint(case, nothing, d.investor))
        assert d.improvement == pytest.approx(expected, rel=1e-5, abs=check.tolerance)
    assert any(d.plan for d in gaining)  # the better plan is reported


def test_the_rounds_do_not_depend_on_the_solver(shared) -> None:
    """SCIP instead of HiGHS for every solve: the same plans round by round (ties are
    broken by the stated rule, the trades by the settlement point), the same costs."""
    case, done = shared
    again = collaborate(case, solver="scip")
    assert [(r.kind, r.investor) for r in again.rounds] == [(r.kind, r.investor) for r in done.rounds]
    for a, b in zip(again.rounds, done.rounds):
        assert a.total_cost == pytest.approx(b.total_cost, rel=1e-6)
        for investor, plan in b.plans.items():
            assert set(a.plans[investor]) == set(plan)
            np.testing.assert_allclose([a.plans[investor][k] for k in plan], list(plan.values()), atol=1e-5)
    assert again.equilibrium.holds


def test_a_run_stopped_early_says_so(shared) -> None:
    """Two rounds are not enough on the shared case: the status says so and the check,
    reported all the same, finds the deviation that was left."""
    case, done = shared
    early = collaborate(case, max_iter=2)
    assert early.status == "max_iter" and len(early.rounds) == 3
    assert [r.total_cost for r in early.rounds] == pytest.approx([r.total_cost for r in done.rounds[:3]], rel=1e-9)
    assert not early.equilibrium.holds
    assert early.gap > done.gap
