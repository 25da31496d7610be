"""HiGHS is handed the model step by step (time-major columns and rows), and
nothing outside the backend sees it: the same objective, primal values and
duals as in linopy's own order and as Clarabel, mapped back to the labels.

Real solvers throughout.  Values are compared where they are unique (a
hand-written LP and QP whose merit order leaves one unit at the margin in every
step); on the shipped cases, whose optima need not be unique, the checks hold for
any optimum: the objective, the point's feasibility in linopy's order, the
objective recomputed from the mapped point, and the optimality conditions
(reduced costs) in linopy's order."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import sparse

import gridlang
from conftest import CASES
from gridlang.compiler.ir import TIME

#: three generators at distinct costs; in every step one of them is at the margin,
#: strictly between its bounds, so the dispatch and the price are unique
SMALL = """system s { base_power = 1 MVA; base_voltage = 10 kV; horizon = 6 h; step = 1 h }
network n uses copper_plate {
  bus b1 { slack }
  bus b2
}
grid g at b1 { import_price = 120 $/MWh; import_max = 10 MW; export_max = 0 }
generator g1 at b1 { pmax = 1 MW; marginal_cost = 30 $/MWh }
generator g2 at b2 { pmax = 1.5 MW; marginal_cost = 50 $/MWh }
generator g3 at b2 { pmax = 2 MW; marginal_cost = 70 $/MWh }
profile d = [0.5, 1.7, 2.2, 3.1, 4.0, 0.8]
load l1 at b1 { p = 0.4 MW; scale = d }
load l2 at b2 { p = 0.6 MW; scale = d }
"""
#: the same with strictly convex costs: a QP with a unique optimum
SMALL_QP = SMALL.replace("marginal_cost = 50 $/MWh", "marginal_cost = 50 $/MWh; quadratic_cost = 3 $/MW^2/h").replace(
    "marginal_cost = 30 $/MWh", "marginal_cost = 30 $/MWh; quadratic_cost = 2 $/MW^2/h"
).replace("marginal_cost = 70 $/MWh", "marginal_cost = 70 $/MWh; quadratic_cost = 1 $/MW^2/h")


def _solution(m) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every variable's values and every constraint's duals, as linopy holds them."""
    primal = {name: np.array(var.solution.values) for name, var in m.variables.items()}
    dual = {name: np.array(con.dual.values) for name, con in m.constraints.items()}
    return primal, dual


def _in_linopy_order(m) -> float:
    """Solve the same model again in linopy's own column and row order."""
    m.solve(solver_name="highs", io_api="direct", output_flag=False)
    return float(m.objective.value)


def _expected_order(items, active: np.ndarray, label_to_pos) -> np.ndarray:
    """Positions (into linopy's active labels) sorted by (time step, label), read
    from the labels' own coordinates (untimed ones first)."""
    steps, labels = [], []
    for _, item in items:
        lab = item.labels
        if TIME in lab.dims:
            step = xr.DataArray(np.arange(lab.sizes[TIME]), dims=TIME)
            step = (xr.zeros_like(lab) + step).transpose(*lab.dims)
        else:
            step = xr.full_like(lab, -1)
        keep = lab.values.ravel() >= 0
        steps.append(step.values.ravel()[keep])
        labels.append(lab.values.ravel()[keep])
    steps, labels = np.concatenate(steps), np.concatenate(labels)
    keep = np.isin(labels, active)
    order = np.lexsort((labels[keep], steps[keep]))
    return np.asarray(label_to_pos(labels[keep][order]))


def _check_handed_over(m) -> tuple[np.ndarray, np.ndarray]:
    """The LP in the Highs object is linopy's, its columns and rows time-major."""
    M = m.matrices
    vlabels, clabels = M.vlabels, M.clabels
    to_col = dict(zip(vlabels.tolist(), range(len(vlabels))))
    to_row = dict(zip(clabels.tolist(), range(len(clabels))))
    cols = _expected_order(m.variables.items(), vlabels, lambda ls: [to_col[int(v)] for v in ls])
    rows = _expected_order(m.constraints.items(), clabels, lambda ls: [to_row[int(v)] for v in ls])
    lp = m.solver_model.getLp()
    np.testing.assert_array_equal(np.asarray(lp.col_cost_), M.c[cols])
    np.testing.assert_array_equal(np.asarray(lp.col_lower_), M.lb[cols])
    np.testing.assert_array_equal(np.asarray(lp.col_upper_), M.ub[cols])
    np.testing.assert_array_equal(np.asarray(lp.row_lower_), np.where(M.sense != "<", M.b, -np.inf)[rows])
    np.testing.assert_array_equal(np.asarray(lp.row_upper_), np.where(M.sense != ">", M.b, np.inf)[rows])
    a = lp.a_matrix_
    handed = sparse.csc_matrix((np.asarray(a.value_), np.asarray(a.index_), np.asarray(a.start_)), shape=(lp.num_row_, lp.num_col_))
    assert abs(handed - M.A.tocsr()[rows][:, cols]).max() == 0
    return cols, rows


def test_columns_and_rows_reach_highs_time_major() -> None:
    case = gridlang.load(SMALL)
    case.solve("highs")
    cols, _ = _check_handed_over(case.built.model)
    assert (np.diff(cols) < 0).any()  # the order really differs from linopy's (asset by asset)


def test_rows_of_a_network_reach_highs_time_major() -> None:
    case = gridlang.load(CASES / "ieee33_dispatch.grid")
    case.solve("highs")
    cols, rows = _check_handed_over(case.built.model)
    assert (np.diff(cols) < 0).any() and (np.diff(rows) < 0).any()  # bus by bus in linopy, step by step in HiGHS


@pytest.mark.parametrize("text", [SMALL, SMALL_QP], ids=["lp", "qp"])
def test_unique_optimum_same_as_linopy_order_and_clarabel(text: str) -> None:
    case = gridlang.load(text)
    r = case.solve("highs")
    assert not r.doubts()
    m = case.built.model
    primal, dual = _solution(m)
    assert _in_linopy_order(m) == pytest.approx(r.objective - case.built.offset, rel=1e-12)
    ref_primal, ref_dual = _solution(m)
    for name in primal:
        np.testing.assert_allclose(primal[name], ref_primal[name], rtol=1e-9, atol=1e-9, err_msg=name)
    for name in dual:
        np.testing.assert_allclose(dual[name], ref_dual[name], rtol=1e-9, atol=1e-9, err_msg=name)
    other = gridlang.load(text).solve("clarabel")
    assert r.objective == pytest.approx(other.objective, rel=1e-7)
    for name in ("generator-p", "grid-import", "n-price_p"):
        np.testing.assert_allclose(r.dataset[name].values, other.dataset[name].values, rtol=1e-6, atol=1e-6, err_msg=name)
    prices = r.dataset["n-price_p"].values.ravel()
    if text is SMALL:  # the marginal unit's cost in every step
        np.testing.assert_allclose(prices, [30, 50, 50, 70, 70, 30], rtol=1e-9)


def _check_optimal_in_linopy_order(m, tol: float) -> None:
    """HiGHS's point and duals, mapped back by the labels the backend keeps, are
    optimal for linopy's LP in linopy's order: reduced costs c - A'y agree with
    HiGHS's, vanish on columns strictly between their bounds and have the sign
    of the bound a column sits at."""
    M, solver, h = m.matrices, m.solver, m.solver_model
    sol = h.getSolution()
    x = np.zeros(m._xCounter)
    d = np.zeros(m._xCounter)
    y = np.zeros(m._cCounter)
    x[solver._vlabels], d[solver._vlabels], y[solver._clabels] = sol.col_value, sol.col_dual, sol.row_dual
    x, d, y = x[M.vlabels], d[M.vlabels], y[M.clabels]
    reduced = M.c - M.A.T @ y
    scale = max(1.0, np.abs(M.c).max())
    np.testing.assert_allclose(reduced, d, atol=tol * scale)
    at_lower, at_upper = np.isclose(x, M.lb, atol=1e-7), np.isclose(x, M.ub, atol=1e-7)
    assert np.all(np.abs(reduced[~at_lower & ~at_upper]) <= tol * scale)
    assert np.all(reduced[at_lower & ~at_upper] >= -tol * scale)
    assert np.all(reduced[at_upper & ~at_lower] <= tol * scale)


def _plan():
    text = (CASES / "planning_33bus.grid").read_text().replace("k = 4", "k = 2").replace("  compare = lindistflow\n", "")
    return gridlang.load(text, formulation="lindistflow"), {"compare_plans": False, "mip_rel_gap": 1e-9}, False


#: name -> () -> (case, solve options, settled: the point reported is the settlement's, not HiGHS's)
CASES_SHIPPED = {
    "ieee33 dispatch (LP)": lambda: (gridlang.load(CASES / "ieee33_dispatch.grid"), {}, False),
    "three microgrids market (LP)": lambda: (gridlang.load(CASES / "three_microgrids.grid", formulation="lindistflow"), {}, True),
    "33-bus plan (MILP)": _plan,
}


@pytest.mark.parametrize("name", list(CASES_SHIPPED))
def test_shipped_cases_same_as_linopy_order(name: str, monkeypatch) -> None:
    monkeypatch.chdir(CASES)  # the plan's text names its data relative to the cases
    case, options, settled = CASES_SHIPPED[name]()
    r = case.solve("highs", **options)
    assert not r.doubts() and r.residual <= 1e-7  # feasible in linopy's order, as gridlang reads it back
    m = case.built.model
    assert type(m.solver).__name__ == "_StepByStep"
    # the objective recomputed from the values mapped back to the variables
    assert float(m.objective.expression.solution.sum()) + case.built.offset == pytest.approx(r.objective, rel=1e-9)
    for var_name, var in m.variables.items() if not settled else ():  # HiGHS's point: no value beyond its bound, not even by an ulp
        sol, keep = var.solution.values, var.labels.values >= 0
        assert (sol[keep] >= var.lower.values[keep]).all() and (sol[keep] <= var.upper.values[keep]).all(), var_name
    if m.type == "LP":
        _check_optimal_in_linopy_order(m, 1e-7)
    step_by_step = r.objective - case.built.offset
    assert _in_linopy_order(m) == pytest.approx(step_by_step, rel=1e-9 if m.type == "LP" else 1e-8)
