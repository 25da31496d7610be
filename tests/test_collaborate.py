"""Collaborative planning: the alternation against the central plan and the
closed-form generalized Nash split, privacy of the decomposed upper level,
and every investor better off than planning alone."""

from __future__ import annotations

import numpy as np
import pytest

import gridlang
from conftest import CASES
from gridlang.collaborate import collaborate, decisions
from gridlang.errors import GridError
from gridlang.settle import nash_payments

CASE = CASES / "collaborative_planning.grid"


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
