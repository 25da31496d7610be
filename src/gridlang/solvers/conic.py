"""The compiled case in the standard conic form that Clarabel and SCS solve.

    minimise    1/2 x'Px + q'x
    subject to  A x + s = b,   s in Z^z x R+^l x SOC(k_1) x ... x SOC(k_m)

Rows, in this order: linear equalities and fixed bounds (zero cone), linear
inequalities and finite bounds (non-negative cone), then one second-order
cone per cone row of the case.  ``>=`` rows are negated.  A rotated cone
``u w >= |x|^2, u, w >= 0`` enters as ``|(u - w, 2x)| <= u + w``.

Everything is built from linopy's sparse matrices and the cone label arrays
with numpy: no loop over rows or cones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import xarray as xr

from gridlang.compiler.build import Built
from gridlang.compiler.cones import RSOC, SOC


@dataclass(frozen=True, slots=True, eq=False)
class ConicForm:
    """``P``, ``q`` over every column (for the objective); the solver gets the
    columns in ``keep``: ``P_solve``, ``q_solve``, ``A``, ``b`` with the
    variables fixed by their bounds substituted out."""

    P: sp.csc_matrix  # upper triangle, all columns
    q: np.ndarray
    P_solve: sp.csc_matrix  # upper triangle, kept columns
    q_solve: np.ndarray
    A: sp.csc_matrix
    b: np.ndarray
    zero: int  # rows of the zero cone
    nonneg: int  # rows of the non-negative cone
    soc: np.ndarray  # sizes of the second-order cones, in row order
    con_rows: np.ndarray  # row of each linopy constraint (clabels order)
    con_sign: np.ndarray  # +1 if the row is the constraint as written, -1 if negated
    vlabels: np.ndarray  # linopy variable label of each column
    integer: np.ndarray  # columns that must be integer
    keep: np.ndarray  # columns the solver sees (not fixed by their bounds)
    fixed: np.ndarray  # value of every column fixed by its bounds (nan for kept ones)

    def full(self, x: np.ndarray) -> np.ndarray:
        """A solver's solution over the kept columns, with the fixed ones put back."""
        out = self.fixed.copy()
        out[self.keep] = x
        return out


def conic_form(built: Built) -> ConicForm:
    m = built.model
    mat = m.matrices
    n = len(mat.vlabels)
    pos = m.variables.label_index.label_to_pos
    A = mat.A.tocsr() if mat.A is not None else sp.csr_matrix((0, n))
    cones = [(block.kind, pos[block.rows()]) for block in built.cones]
    return assemble(A, mat.b, mat.sense, mat.lb, mat.ub, mat.Q, mat.c, cones, np.asarray(mat.vlabels), np.asarray(mat.vtypes))


def assemble(A: sp.csr_matrix, b, sense, lb, ub, Q, c, cones: list[tuple[str, np.ndarray]], vlabels: np.ndarray, vtypes: np.ndarray) -> ConicForm:
    """The conic form of ``min c'x + x'Qx/2, A x (sense) b, lb <= x <= ub`` and cones of columns."""
    n = A.shape[1]
    b, sense = np.asarray(b, dtype=float), np.asarray(sense)
    eq, le, ge = sense == "=", sense == "<", sense == ">"
    lb, ub = np.asarray(lb, dtype=float), np.asarray(ub, dtype=float)
    fixed = np.isfinite(lb) & (lb == ub)
    upper, lower = np.isfinite(ub) & ~fixed, np.isfinite(lb) & ~fixed
    eye = sp.identity(n, format="csr")

    blocks = [
        (A[eq], b[eq]),
        (A[le], b[le]),
        (-A[ge], -b[ge]),
        (eye[upper], ub[upper]),
        (-eye[lower], -lb[lower]),
    ]
    cone_rows, sizes = _cone_rows(cones, n)
    rows = sp.vstack([blk for blk, _ in blocks] + [cone_rows], format="csc")
    rhs = np.concatenate([v for _, v in blocks] + [np.zeros(cone_rows.shape[0])])
    # substitute the variables fixed by their bounds: fewer columns and rows for the solver
    value = np.where(fixed, lb, np.nan)
    keep = ~fixed
    rhs = rhs - rows[:, fixed] @ lb[fixed]
    rows = rows[:, keep]

    n_eq, n_le, n_ge = int(eq.sum()), int(le.sum()), int(ge.sum())
    con_rows = np.empty(len(sense), dtype=np.int64)
    con_sign = np.ones(len(sense))
    con_rows[eq] = np.arange(n_eq)
    con_rows[le] = n_eq + np.arange(n_le)
    con_rows[ge] = n_eq + n_le + np.arange(n_ge)
    con_sign[ge] = -1.0

    P = sp.triu(Q, format="csc") if Q is not None else sp.csc_matrix((n, n))
    q = np.asarray(c, dtype=float)
    full = P + sp.triu(P, 1).T
    q_solve = q[keep] + full[keep][:, fixed] @ lb[fixed]
    return ConicForm(
        P=P,
        q=q,
        P_solve=sp.triu(full[keep][:, keep], format="csc"),
        q_solve=np.asarray(q_solve).ravel(),
        A=rows,
        b=rhs,
        zero=n_eq,
        nonneg=n_le + n_ge + int(upper.sum()) + int(lower.sum()),
        soc=sizes,
        con_rows=con_rows,
        con_sign=con_sign,
        vlabels=vlabels,
        integer=np.flatnonzero(np.isin(vtypes, ["B", "I"])),
        keep=keep,
        fixed=value,
    )


def _cone_rows(cones: list[tuple[str, np.ndarray]], n: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Rows ``-s`` of every cone (so that ``0 - A x = s``), and the cone sizes."""
    parts, sizes = [sp.csr_matrix((0, n))], [np.zeros(0, dtype=np.int64)]
    for kind, cols in cones:  # cols: (cones, members); each cone has k rows
        count, k = cols.shape
        first = np.arange(count) * k
        if kind == SOC:  # (t, x_1, ..., x_{k-1})
            row, col, val = (first[:, None] + np.arange(k)).ravel(), cols.ravel(), -np.ones(count * k)
        else:  # (u + w, u - w, 2 x_1, ..., 2 x_{k-2})
            assert kind == RSOC
            u, w, xs = cols[:, 0], cols[:, 1], cols[:, 2:]
            row = np.concatenate([first, first, first + 1, first + 1, (first[:, None] + 2 + np.arange(k - 2)).ravel()])
            col = np.concatenate([u, w, u, w, xs.ravel()])
            val = np.concatenate([-np.ones(3 * count), np.ones(count), -2 * np.ones(xs.size)])
        parts.append(sp.csr_matrix((val, (row, col)), shape=(count * k, n)))
        sizes.append(np.full(count, k))
    return sp.vstack(parts, format="csr"), np.concatenate(sizes)


def cone_violation(built: Built, x_by_label: np.ndarray) -> float:
    """Largest violation of a cone at the point, in the |x| <= t form."""
    worst = 0.0
    for block in built.cones:
        v = x_by_label[block.rows()]
        if block.kind == SOC:
            t, rest = v[:, 0], v[:, 1:]
        else:
            u, w = v[:, 0], v[:, 1]
            t, rest = u + w, np.column_stack([u - w, 2 * v[:, 2:]])
        worst = max(worst, float(np.max(np.sqrt((rest**2).sum(axis=1)) - t, initial=0.0)))
    return worst


def finish(built: Built, form: ConicForm, x: np.ndarray, z: np.ndarray | None, status: tuple[str, str, str], elapsed: float, solver: str):
    """Put a conic solution into the linopy model and report it as a Result.

    ``status`` is (termination, primal status, dual status).  Duals of linear
    rows follow the linopy/HiGHS sign (the change of the objective per unit
    increase of the right-hand side).  Without a feasible point (a limit, a
    numerical failure) every value is NaN and the residual infinite."""
    from gridlang.solvers.result import Result, collect, primal_residual, store_solution, unsolved

    if status[1] != "feasible":  # no point, or an iterate that is not a solution: NaN, not numbers
        return unsolved(built, status, elapsed, solver)
    m = built.model
    x_by_label = np.full(m._xCounter, np.nan)
    x_by_label[form.vlabels] = x
    dual_by_label = None
    if z is not None and len(form.con_rows):
        dual_by_label = np.full(m._cCounter, np.nan)
        dual_by_label[m.matrices.clabels] = -form.con_sign * z[form.con_rows]
    store_solution(m, x_by_label, dual_by_label, {"optimal": "optimal", "almost_optimal": "imprecise"}.get(status[0], "other"))
    objective = float(form.q @ x + 0.5 * x @ (form.P + sp.triu(form.P, 1).T) @ x) + built.offset
    dataset = collect(built)
    gaps, warnings = relaxation_gaps(built, x_by_label)
    return Result(
        objective=objective,
        termination=status[0],
        primal_status=status[1],
        dual_status=status[2],
        residual=max(primal_residual(built), cone_violation(built, x_by_label)),
        solve_time=elapsed,
        solver=solver,
        dataset=dataset.assign(gaps),
        warnings=warnings,
        dual_residual=None if z is None else _dual_residual(form, x, z),
    )


def _dual_residual(form: ConicForm, x: np.ndarray, z: np.ndarray) -> float:
    """Stationarity of the solver's problem: |P x + q + A'z| over the kept columns."""
    k = x[form.keep]
    return float(np.max(np.abs(form.P_solve @ k + sp.triu(form.P_solve, 1).T @ k + form.q_solve + form.A.T @ z), initial=0.0))


#: a rotated cone ``u w >= |x|^2`` is reported as not exact where its gap
#: ``u w - |x|^2`` exceeds ``GAP_RTOL * F + GAP_ATOL``, ``F`` the largest
#: ``|x|^2`` of its block (the heaviest flow the statement relaxes, e.g. the
#: substation's): the gap is judged against the flows of the network, so a
#: solver's last digits on a branch of hundreds of p.u. or a branch of nearly
#: zero resistance (whose current nothing prices) are not reported
#: and only where closing the gap (lowering one of ``u``, ``w`` until
#: ``u w = |x|^2``) would move some linear row by more than ``GAP_EFFECT``
#: (per unit): a gap nothing depends on is no error of the power flow
GAP_RTOL = 1e-5
GAP_ATOL = 1e-7
GAP_EFFECT = 1e-6


def relaxation_gaps(built: Built, x_by_label: np.ndarray, rtol: float = GAP_RTOL, atol: float = GAP_ATOL, effect_tol: float = GAP_EFFECT) -> tuple[dict, tuple[str, ...]]:
    """The gap ``u w - |x|^2`` of every rotated cone, and a warning where it is not ~0.

    A rotated cone relaxes the equality ``u w = |x|^2`` (in ``distflow_soc``:
    ``w[from] isq = P^2 + Q^2``); where ``|gap| > rtol F + atol``, ``F`` the
    largest ``|x|^2`` of the block, and closing the gap by lowering ``u`` (by
    ``gap / w``) or ``w`` (by ``gap / u``) would change a linear row by more
    than ``effect_tol`` (the change times the member's largest coefficient;
    for ``isq`` of a branch with r = x = 0 that is 0), the relaxed solution is
    not a physical power flow."""
    gaps, warnings = {}, []
    weight = None  # per variable label: its largest |coefficient| in a linear row
    for block in built.cones:
        if block.kind != RSOC:
            continue
        if weight is None:
            mat = built.model.matrices
            weight = np.zeros(len(x_by_label))
            if mat.A is not None and mat.A.shape[0]:
                weight[mat.vlabels] = np.asarray(abs(mat.A).max(axis=0).todense()).ravel()
        members = xr.broadcast(*block.members)
        labels = np.stack([m.values for m in members], axis=-1)
        active = (labels >= 0).all(axis=-1)
        v = x_by_label[np.maximum(labels, 0)]
        squares = (v[..., 2:] ** 2).sum(axis=-1)
        gap = np.where(active, v[..., 0] * v[..., 1] - squares, np.nan)
        array = members[0].copy(data=gap)
        gaps[f"{block.name}_gap"] = array.drop_vars([c for c in array.coords if c not in array.dims]).assign_attrs(units="p.u.^2")
        flows = float(np.max(np.where(active, squares, 0.0), initial=0.0))
        tol = rtol * flows + atol
        with np.errstate(divide="ignore", invalid="ignore"):  # a member at 0: closing by the other one
            moves = [np.abs(gap) / np.abs(v[..., 1 - k]) * weight[np.maximum(labels[..., k], 0)] for k in (0, 1)]
        effect = np.nan_to_num(np.fmin(*moves), nan=np.inf)
        flagged = active & (np.abs(gap) > tol) & (effect > effect_tol)
        if flagged.any():
            at = np.unravel_index(int(np.argmax(np.where(flagged, np.abs(gap), -1.0))), gap.shape)
            where = ", ".join(f"{d}={array.coords[d].values[i]}" for d, i in zip(array.dims, at) if d in array.coords)
            count = int(flagged.sum())
            warnings.append(
                f"{block.span}: the relaxation '{block.name}' is not exact in {count} of {int(active.sum())} places; "
                f"largest gap {np.abs(gap[at]):.3g} p.u.^2 at {where}, {np.abs(gap[at]) / max(flows, atol):.3g} of the largest flow squared "
                f"(tolerance {rtol:g} of it + {atol:g}), closing it would move the balances by {effect[at]:.3g} p.u.: the solution there is not a physical power flow"
            )
    return gaps, tuple(warnings)


def check_status(built: Built, status: tuple[str, str, str], solver: str) -> None:
    """Infeasible and unbounded cases are errors; the linear part explains infeasibility."""
    from gridlang.solvers import highs

    if status[0] == "unbounded":
        raise highs.unbounded(built)
    if status[0] == "infeasible":
        raise highs.explain_infeasible(built, solver)
