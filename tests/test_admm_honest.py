"""A decomposition says ``converged`` only for a right answer.

On a kW-scale community (``cases/community4.grid``: four households with
load, PV and a battery each, and the operator of their feeder) and on the
22 prosumers of ``cases/prosumers.grid``, ADMM and ATC with their DEFAULT
settings either converge to the central optimum (objective within 1e-4,
whole model within ``FEASIBILITY_TOL``) or end not converged -- never a wrong
``converged``.  Each test also says which of the two it expects, so that a
regression of either kind shows.  Settings out of range are input errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CASES
from typer.testing import CliRunner

import gridlang
from gridlang import decompose, solvers
from gridlang.decompose.split import split
from gridlang.errors import GridError
from gridlang.solvers.result import FEASIBILITY_TOL

COMMUNITY = CASES / "community4.grid"
PROSUMERS = CASES / "prosumers.grid"

_central: dict = {}


def central(path) -> float:
    """The central optimum's objective (unique, whatever optimum the solver returns)."""
    if path not in _central:
        result = solvers.solve(gridlang.load(path).built, None, {})
        assert result.termination == "optimal"
        _central[path] = result.objective
    return _central[path]


def outcome(path, method: str, **settings) -> tuple[str, gridlang.Result]:
    """'right' (converged, objective within 1e-4 of the central one, model within
    FEASIBILITY_TOL) or 'not converged'; anything else -- a wrong 'converged' -- fails."""
    result, run = decompose.solve(gridlang.load(path).built, method, **settings)
    if result.termination != "converged":
        assert not run.converged and result.primal_status != "feasible"
        assert any("not converged" in w and "violates the model by" in w for w in result.warnings)
        return "not converged", result
    assert run.converged and result.primal_status == "feasible"
    assert result.residual <= FEASIBILITY_TOL, f"converged, but the model is violated by {result.residual:.3g} p.u."
    assert result.objective == pytest.approx(central(path), rel=1e-4), "converged at a wrong objective"
    return "right", result


@pytest.mark.parametrize("method", ["admm", "atc"])
@pytest.mark.parametrize("path", [COMMUNITY, PROSUMERS], ids=["community4", "prosumers"])
def test_default_settings_never_report_a_wrong_convergence(path, method: str) -> None:
    verdict, result = outcome(path, method)
    assert verdict == "right"  # both methods converge on both cases by default today
    assert not result.doubts()


def test_the_community_is_kw_scale() -> None:
    """The case this is about: every household's quantities are a few kW on a 100 kVA base,
    so a stopping test absolute in per unit (1e-4 p.u. = 10 W per row) would be loose."""
    built = gridlang.load(COMMUNITY).built
    assert built.case.system.base.power_va == 100e3
    parts = split(built)
    assert set(parts.agents) == {"dso", "house1", "house2", "house3", "house4"}
    assert parts.n_coupling > 0


@pytest.mark.parametrize("path", [COMMUNITY, PROSUMERS], ids=["community4", "prosumers"])
def test_lost_exchanges_give_a_right_answer_or_say_not_converged(path) -> None:
    verdict, result = outcome(path, "admm", drop_rate=0.3)
    assert verdict == "right"
    assert any("were lost" in w for w in result.warnings)


def test_the_stopping_test_is_relative_to_the_terms() -> None:
    """Every iteration's tests scale with the contributions and prices (Boyd et al. 3.3.1),
    and a converged run's last iteration meets them and holds the coupling rows to FEASIBILITY_TOL."""
    result, run = decompose.solve(gridlang.load(COMMUNITY).built, "admm")
    last = run.trace[-1]
    assert last.primal <= last.eps_primal and last.dual <= last.eps_dual and last.worst <= FEASIBILITY_TOL
    np.testing.assert_array_equal(result["admm_eps_primal"].values, [s.eps_primal for s in run.trace])  # the results hold the tests too
    assert float(result["admm_worst"][-1]) == last.worst
    # the relative part decides: the absolute part (sqrt(m) tol) is under half the test
    m = split(gridlang.load(COMMUNITY).built).n_coupling
    assert np.sqrt(m) * decompose.Settings().tol < 0.5 * last.eps_primal
    # the summary says which criterion stopped it, with the figures of the last iteration
    assert run.stopped_by.startswith(f"converged at iteration {run.iterations}: primal residual {last.primal:.3g} (test {last.eps_primal:.3g})")
    assert result.dataset.attrs["stopped_by"] == run.stopped_by


def test_a_run_cut_short_says_how_far_it_is() -> None:
    result, run = decompose.solve(gridlang.load(COMMUNITY).built, "admm", max_iter=10)
    assert result.termination == "iteration_limit" and not run.converged
    assert run.stopped_by.startswith("the iteration limit (max_iter = 10) was reached: primal residual ")
    assert result.primal_status == "unknown" and result.residual > FEASIBILITY_TOL
    (warning,) = result.warnings
    assert "ADMM stopped after 10 iterations, not converged (iteration_limit)" in warning
    assert f"violates the model by {result.residual:.3g} p.u." in warning
    assert "the coupling rows furthest off: feeder-balance_p at bus h" in warning  # named, with their bus and step
    assert result.doubts()


def test_a_point_that_breaks_the_model_is_not_converged() -> None:
    """The whole-model check after a run: the same converged run's point with one
    household's battery 1 kWh over its capacity is not a solution."""
    built = gridlang.load(COMMUNITY).built
    result, run = decompose.solve(built, "admm")
    assert run.converged
    parts = split(built)
    x_by_label = np.full(built.model._xCounter, np.nan)
    for _, var in built.model.variables.items():
        labels = var.labels.values.ravel()
        x_by_label[labels[labels >= 0]] = var.solution.values.ravel()[labels >= 0]
    soc = built.model.variables["storage-soc"].labels.sel(storage="es3", time=0).item()
    x_by_label[soc] = built.model.variables["storage-soc"].upper.sel(storage="es3", time=0).item() + 0.01  # 1 kWh on a 100 kVA base
    from gridlang.solvers.result import store_solution

    store_solution(built.model, x_by_label)
    residual, warnings = decompose.check(built, parts, run, x_by_label, "admm")
    assert residual >= 0.01 - 1e-9  # its bound, and the storage balance it takes part in
    assert run.status == "not_converged" and not run.converged
    assert "not converged (not_converged)" in warnings[0] and f"violates the model by {residual:.3g} p.u." in warnings[0]


BAD = [
    ({"drop_rate": 2}, r"drop_rate = 2: must be a share in \[0, 1\)"),
    ({"drop_rate": -0.1}, r"drop_rate = -0.1: must be a share in \[0, 1\)"),
    ({"drop_rate": 1}, r"drop_rate = 1: must be a share in \[0, 1\)"),
    ({"rho": 0}, r"rho = 0: must be a positive number"),
    ({"tol": 0}, r"tol = 0: must be a positive number"),
    ({"rel": -1e-3}, r"rel = -0.001: must be zero or more"),
    ({"max_iter": 0}, r"max_iter = 0: must be a whole number of 1 or more"),
    ({"max_iter": 2.5}, r"max_iter = 2.5: must be a whole number"),
    ({"alpha": 2}, r"alpha = 2: must be between 0 and 2"),
    ({"alpha": 0}, r"alpha = 0: must be between 0 and 2"),
    ({"max_staleness": -1}, r"max_staleness = -1: must be a whole number of 0 or more"),
    ({"mu": 1}, r"mu = 1: must be a number above 1"),
    ({"tau": 0.5}, r"tau = 0.5: must be a number above 1"),
    ({"tol": "abc"}, r"tol = 'abc': must be a positive number"),
    ({"tolerance": 1e-6}, r"unknown admm setting 'tolerance'"),
]


@pytest.mark.parametrize("settings, match", BAD, ids=[next(iter(s)) + "=" + str(next(iter(s.values()))) for s, _ in BAD])
def test_settings_out_of_range_are_input_errors(settings: dict, match: str) -> None:
    with pytest.raises(GridError, match=match) as info:
        decompose.solve(gridlang.load(COMMUNITY).built, "admm", **settings)
    assert info.value.span.file == "<command line>" and info.value.hint


def test_all_bad_settings_are_reported_together() -> None:
    with pytest.raises(GridError) as info:
        decompose.solve(gridlang.load(COMMUNITY).built, "admm", rho=-1, alpha=3, drop_rate=2)
    assert len(info.value.errors) == 3


@pytest.mark.parametrize(
    "settings, match",
    [({"beta": 0.9}, r"beta = 0.9: must be a number of 1 or more"), ({"gamma": 0}, r"gamma = 0: must be a share in \(0, 1\]"), ({"weight": -1}, r"weight = -1: must be a positive number"), ({"tol": -1}, r"tol = -1"), ({"max_iter": 0}, r"max_iter = 0"), ({"drop_rate": 0.2}, r"unknown atc setting 'drop_rate'")],
)
def test_atc_settings_out_of_range_are_input_errors(settings: dict, match: str) -> None:
    with pytest.raises(GridError, match=match):
        decompose.solve(gridlang.load(COMMUNITY).built, "atc", **settings)


def test_a_bad_setting_in_the_study_is_shown_where_it_is_written(write_case) -> None:
    text = COMMUNITY.read_text().replace('"data/', f'"{CASES}/data/').replace("solver = highs }", "solver = highs; method = admm(rho = 50, drop_rate = 2) }")
    with pytest.raises(GridError, match=r"drop_rate = 2(\.0)?: must be a share in \[0, 1\)") as info:
        gridlang.load(write_case(text), allow_outside=True).solve()
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "method = admm" in s)
    assert info.value.span.line == line
    assert text.splitlines()[line - 1][info.value.span.col - 1 :].startswith("2)")


def test_the_cli_trusts_a_converged_run_and_not_one_cut_short(tmp_path) -> None:
    from gridlang.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["solve", str(COMMUNITY), "--method", "admm", "--out", str(tmp_path / "ok")])
    assert r.exit_code == 0, r.output
    assert "converged" in r.output and (tmp_path / "ok" / "summary.json").exists()
    r = runner.invoke(app, ["solve", str(COMMUNITY), "--method", "admm", "--option", "max_iter=10", "--out", str(tmp_path / "short")])
    assert r.exit_code == 3, r.output
    assert "not converged (iteration_limit)" in r.output and "feeder-balance_p at bus h" in r.output
    assert not (tmp_path / "short").exists()


def test_the_cli_refuses_a_drop_rate_of_two() -> None:
    from gridlang.cli import app

    r = CliRunner().invoke(app, ["solve", str(COMMUNITY), "--method", "admm", "--drop-rate", "2"])
    assert r.exit_code == 1, r.output
    assert "2" in r.output and "[0, 1)" in r.output and "hint:" in r.output


def test_three_microgrids_by_default_admm_reach_the_central_optimum() -> None:
    """The third shipped multi-agent case, under LinDistFlow (an LP; the SOC case is the same
    agents with cones): default ADMM converges within 1e-4 of the central objective."""
    path = CASES / "three_microgrids.grid"
    central = solvers.solve(gridlang.load(path, formulation="lindistflow").built, None, {})
    result, run = decompose.solve(gridlang.load(path, formulation="lindistflow").built, "admm")
    assert run.converged and result.termination == "converged" and not result.doubts()
    assert result.residual <= FEASIBILITY_TOL
    assert result.objective == pytest.approx(central.objective, rel=1e-4)


@pytest.mark.parametrize("b, solved", [(1.3e-8, True), (1e-3, False)], ids=["within-tolerance", "violated"])
def test_an_agent_row_of_fixed_columns_holds_within_the_central_tolerance(b: float, solved: bool) -> None:
    """A row whose columns are all fixed is the constant ``0 = b``: within FEASIBILITY_TOL it
    constrains nothing (a plan fixed at a MILP's ``units = 0.99999997`` left 1.3e-8 on
    collaborative_planning_shared's mg2, which Clarabel at 1e-10 called infeasible); beyond
    it the agent's solve fails and says so."""
    import scipy.sparse as sp

    from gridlang.decompose.local import PersistentConic

    A = sp.csr_matrix(np.array([[0.0, 0.0], [1.0, 1.0]]))  # row 0: no column left, 0 = b
    H = sp.identity(2, format="csc")
    model = PersistentConic(A, np.array([b, 1.0]), np.array(["=", ">"]), np.zeros(2), np.full(2, 10.0), H, 0 * H, 1.0, np.zeros(2), [], "agent 'a'")
    if solved:
        np.testing.assert_allclose(model.run(), [0.5, 0.5], atol=1e-7)
    else:
        with pytest.raises(GridError, match="agent 'a': its subproblem ended"):
            model.run()
