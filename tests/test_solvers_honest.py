"""Every backend tells the truth: statuses, NaN without a point, checked options,
conflicts bounds first with their count, numbers out of range named, no banners.

Real solvers throughout; every assertion is on what a solver must do whatever
optimum it returns (statuses, NaN, messages, positions)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

import gridlang
from conftest import ROOT
from gridlang.errors import GridError
from gridlang.io.matpower import import_matpower

SYSTEM = "system s {{ base_power = {base} MVA; base_voltage = 10 kV; horizon = 4 h; step = 1 h }}\n"
PLATE = "network n uses copper_plate {\n  bus b1 { slack }\n  bus b2\n}\n"


def lp(price: object) -> str:
    """One grid and one load on a copper plate; the grid's declaration is line 6."""
    return SYSTEM.format(base=1) + PLATE + f"grid g at b1 {{ import_price = {price} $/MWh }}\nload ld at b2 {{ p = 1 MW }}\n"



# a unit commitment: eight units with binary on/off and minimum outputs, so
# that the LP relaxation is not integral and a solver stopped at once has nothing
UNITS = "\n".join(f"unit u{i} at b1 {{ pmin = {0.3 + 0.07 * i:.2f} MW; pmax = {0.7 + 0.11 * i:.2f} MW; price = {20 + 3 * i} $/MWh; fixed = {5 + i} $/h }}" for i in range(8))
MILP = (
    SYSTEM.format(base=1)
    + PLATE
    + """kind unit at bus {
  param pmin: MW
  param pmax: MW
  param price: $/MWh
  param fixed: $/h
  var on[t] binary
  var p[t]: MW in [0, pmax]
  low: p[t] >= pmin * on[t]
  high: p[t] <= pmax * on[t]
  cost price * p[t] * dt + fixed * on[t] * dt
  inject p[t] = p[t]
}
"""
    + UNITS
    + "\nprofile demand = [1.3, 2.9, 4.1, 2.2]\nload ld at b2 { p = 1 MW; scale = demand }\n"
)


def no_point(result: gridlang.Result) -> None:
    """What a result without a solution must look like."""
    assert result.primal_status in ("none", "unknown")
    assert math.isnan(result.objective) and result.residual == math.inf
    for name, values in result.dataset.data_vars.items():
        if np.issubdtype(values.dtype, np.floating) and not name.endswith("demand"):
            assert np.isnan(values.values).all(), name
    assert result.doubts()


# ------------------------------------------------------------------ 1. honest statuses


def test_highs_time_limit_without_a_solution_is_no_solution():
    result = gridlang.load(MILP).solve("highs", time_limit=0)
    assert result.termination == "time_limit" and result.primal_status == "none"
    no_point(result)
    assert any("time_limit" in d for d in result.doubts())


def test_scip_time_limit_without_a_solution_is_no_solution():
    result = gridlang.load(MILP).solve("scip", **{"limits/time": 0})
    assert result.termination == "time_limit" and result.primal_status == "none"
    no_point(result)


@pytest.mark.parametrize("solver, limit", [("clarabel", "max_iter"), ("scs", "max_iters")])
def test_conic_iteration_limit_is_not_a_solution(solver, limit):
    result = gridlang.load(lp(10)).solve(solver, **{limit: 1})
    assert result.termination == "iteration_limit" and result.primal_status == "unknown"
    no_point(result)


def test_the_same_solvers_solve_it_without_the_limit():
    for solver in ("highs", "scip"):
        assert not gridlang.load(MILP).solve(solver).doubts()
    for solver in ("clarabel", "scs"):
        result = gridlang.load(lp(10)).solve(solver)
        assert not result.doubts() and result.objective == pytest.approx(40, rel=1e-5)


def test_numbers_beyond_solver_range_are_refused_at_the_element():
    # 1e12 $/MWh is allowed as a price, but on a 1e4 MVA base it is a cost of 1e16 per unit
    text = SYSTEM.format(base=1e4) + PLATE + "grid g at b1 { import_price = 1e12 $/MWh }\nload ld at b2 { p = 1 MW }\n"
    for solver in ("highs", "clarabel"):
        with pytest.raises(GridError, match=r"out of range: the cost of grid-import at \(grid=g, time=0\) is 1e\+16 per unit") as info:
            gridlang.load(text).solve(solver)
        assert (info.value.span.line, info.value.span.col) == (6, 1)  # the grid's declaration
        assert "check the units and values" in info.value.hint


def test_suspect_numbers_are_named_when_a_solve_fails():
    # a cost of 1e11 per unit: within the solvers' range, suspect when a solve does not end
    result = gridlang.load(lp("1e11")).solve("clarabel", max_iter=1)
    no_point(result)
    assert any("out of range: the cost of grid-import" in w and ":6:1:" in w for w in result.warnings)


def test_unbounded_with_absurd_numbers_blames_the_numbers():
    text = lp(10).replace("import_price = 10 $/MWh", "import_price = 10 $/MWh; export_price = 1e11 $/MWh")
    with pytest.raises(GridError, match="out of range: the cost of grid-export") as info:
        gridlang.load(text).solve("highs")
    assert "negative cost" not in str(info.value)


# ------------------------------------------------------------------ 2. options


@pytest.mark.parametrize(
    "solver, options, message, hint",
    [
        ("highs", {"nosuch": 1}, r"HiGHS has no option 'nosuch'", r"see the HiGHS options"),
        ("highs", {"time_limt": 1}, r"HiGHS has no option 'time_limt'", r"did you mean 'time_limit'"),
        ("highs", {"time_limit": "abc"}, r"HiGHS option 'time_limit' expects a number, not 'abc'", r"Time limit \(seconds\); range \[0, inf\]"),
        ("highs", {"time_limit": -1}, r"HiGHS option 'time_limit' cannot be -1", r"range \[0, inf\]"),
        ("highs", {"presolve": "sometimes"}, r"HiGHS option 'presolve' cannot be 'sometimes'", r'"off", "choose" or "on"'),
        ("highs", {"threads": 1.5}, r"HiGHS option 'threads' expects an integer", r"give threads an integer"),
        ("clarabel", {"max_iters": 5}, r"Clarabel has no setting 'max_iters'", r"did you mean 'max_iter'"),
        ("clarabel", {"max_iter": "many"}, r"Clarabel setting 'max_iter' expects an integer, not 'many'", r"give max_iter an integer"),
        ("scs", {"max_iter": 5}, r"SCS has no setting 'max_iter'", r"did you mean 'max_iters'"),
        ("scs", {"eps_abs": "tight"}, r"SCS setting 'eps_abs' expects a number", r"give eps_abs a number"),
        ("scip", {"limits/tim": 5}, r"SCIP has no parameter 'limits/tim'", r"did you mean 'limits/time'"),
        ("scip", {"time_limit": "soon"}, r"SCIP parameter 'time_limit' expects a number", r"limits/time"),
    ],
)
def test_every_backend_checks_its_options(solver, options, message, hint):
    with pytest.raises(GridError, match=message) as info:
        gridlang.load(lp(10)).solve(solver, **options)
    assert info.value.span == gridlang.Span("<command line>", 0, 0)
    assert info.value.hint and __import__("re").search(hint, info.value.hint), info.value.hint


def test_options_that_exist_are_accepted_in_any_spelling():
    case = gridlang.load(lp(10))
    assert case.solve("highs", presolve="off", time_limit=60, output_flag="false", mip_rel_gap=0).optimal
    assert case.solve("clarabel", tol_gap_abs=1e-9, max_iter="500", verbose=0).optimal
    assert case.solve("scs", eps_abs=1e-8, max_iters=100_000, verbose="false").optimal
    assert case.solve("scip", limits_time=60, mip_rel_gap=0).optimal


def test_study_options_are_checked_at_the_study():
    text = lp(10) + "study st: dispatch {\n  time_limit = 60\n  presolv = off\n  threads = abc\n}\n"
    with pytest.raises(GridError) as info:
        gridlang.load(text).solve()
    errors = {(e.span.line, e.span.col): e for e in info.value.errors}
    assert set(errors) == {(10, 3), (11, 3)}  # the study starts at line 8
    assert "no option 'presolv'" in errors[(10, 3)].message and "'presolve'" in errors[(10, 3)].hint
    assert "'threads' expects an integer" in errors[(11, 3)].message


# ------------------------------------------------------------------ 3. infeasible feeders


@pytest.fixture(scope="module")
def tight_feeder():
    """case33bw with every load bus at vmin 0.97: the feeder's end cannot be held up."""
    text = import_matpower(ROOT / "cases" / "matpower" / "case33bw.m").text
    tight = text.replace("bus b2..b33 { vmin = 0.9; vmax = 1.1 }", "bus b2..b33 { vmin = 0.97; vmax = 1.1 }")
    assert tight != text
    return tight


def test_infeasible_feeder_names_its_voltage_bounds_first(tight_feeder):
    with pytest.raises(GridError) as info:
        gridlang.load(tight_feeder).solve("highs")
    report = info.value
    messages = [e.message for e in report.errors]
    bounds = [m for m in messages if " bound" in m]
    assert bounds and messages[: len(bounds)] == bounds  # every bound before any row
    assert any(m.startswith("infeasible: the lower bound 0.9409 of case33bw-w") for m in bounds)  # vmin^2
    shown = len(report.errors)
    total = int(__import__("re").search(r"the conflict has (\d+) elements", report.render()).group(1))
    assert shown <= 24 and total >= shown
    tail = f"showing the first {shown} (bounds first)" if total > shown else "all shown, bounds first"
    assert report.render().rstrip().endswith(tail)


# ------------------------------------------------------------------ 4. silence


def test_failed_solves_print_nothing(tight_feeder, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(GridError):
        gridlang.load(tight_feeder).solve("highs")
    gridlang.load(MILP).solve("highs", time_limit=0)
    gridlang.load(lp(10)).solve("clarabel", max_iter=1)
    gridlang.load(MILP).solve("scip", **{"limits/time": 0})
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert not [r for r in caplog.records if r.name.startswith("linopy")]


# ------------------------------------------------------------------ 6. no objective


@pytest.mark.parametrize("solver", ["highs", "clarabel", "scs", "scip"])
def test_a_case_without_costs_minimises_zero(solver):
    text = SYSTEM.format(base=1) + PLATE + "pv p at b2 { capacity = 1 MW }\nload ld at b2 { p = 0.5 MW }\n"
    result = gridlang.load(text).solve(solver)
    assert not result.doubts() and result.objective == 0


def test_an_infeasible_case_without_costs_is_explained():
    text = SYSTEM.format(base=1) + PLATE + "pv p at b2 { capacity = 1 MW }\nload ld at b2 { p = 2 MW }\n"
    for solver in ("highs", "clarabel"):
        with pytest.raises(GridError, match="infeasible"):
            gridlang.load(text).solve(solver)


def test_study_options_go_only_to_the_study_solver():
    text = lp(10) + "study st: dispatch { solver = scip; limits_gap = 1e-6 }\n"
    case = gridlang.load(text)
    assert case.solve().solver == "scip"
    result = case.solve("highs")  # HiGHS has no limits_gap: the study's options are not for it
    assert not result.doubts() and any("limits_gap" in w and "highs did not get them" in w for w in result.warnings)
    with pytest.raises(GridError, match="HiGHS has no option 'limits_gap'"):
        case.solve("highs", limits_gap=1e-6)  # given for this solve: checked
