"""HiGHS backend through linopy's direct API: LP, MILP and convex QP.

Never trusts the status alone: it reports HiGHS's primal and dual solution
status and recomputes the primal residual.  An infeasible case is explained
by HiGHS's irreducible infeasible subsystem, mapped back to the statements
and elements that wrote the conflicting rows and bounds.

HiGHS is handed the model step by step (:func:`step_order`): gridlang numbers
a variable's labels with time last (asset by asset), and HiGHS's presolve on
a wide LP follows the column order; handed over time-major, a 1,000-asset,
168-step dispatch solves in about two thirds of the time.  The permutation
stays inside this module: the solution and the duals go back to linopy by
label, the LP/MPS files gridlang writes keep linopy's order and names.
"""

from __future__ import annotations

import functools
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import highspy
import linopy
import numpy as np
from scipy import sparse

from gridlang.compiler.build import Built
from gridlang.compiler.ir import TIME
from gridlang.errors import Collector, GridError, GridErrors, Span
from gridlang.solvers import common
from gridlang.solvers.result import Result, collect, primal_residual, unsolved

_SOLUTION_STATUS = {0: "none", 1: "infeasible", 2: "feasible"}
_TYPES = {"bool": bool, "integer": int, "double": float, "string": str}

#: shown before a conflict is cut short; a longer conflict is counted, not listed
CONFLICT_SHOWN = 24
#: a primal value beyond its bound by at most this share of it (1 at least) is put on it
SNAP = 1e-12


def solve(built: Built, options: Mapping[str, object], spans: Mapping[str, Span]) -> Result:
    m = built.model
    opts = {"output_flag": False, **check_options(options, spans)}
    start = time.perf_counter()
    try:
        with common.quiet(opts["output_flag"]):
            _solve_step_by_step(m, opts)
    except Exception as exc:  # HiGHS refused the model (a coefficient beyond 1e15, for instance)
        raise common.out_of_range(built) or GridError(built.case.system.span, f"HiGHS could not solve the case: {exc}", "run with --debug and report it") from None
    elapsed = time.perf_counter() - start
    h: highspy.Highs = m.solver_model
    info = h.getInfo()
    termination = str(m.termination_condition)
    if termination in ("infeasible", "infeasible_or_unbounded") and _is_infeasible(h):
        raise infeasible(built, _in_linopy_order(m, opts))
    if termination in ("unbounded", "infeasible_or_unbounded"):
        raise unbounded(built)
    status = (termination, _SOLUTION_STATUS.get(info.primal_solution_status, "unknown"), _SOLUTION_STATUS.get(info.dual_solution_status, "unknown"))
    if status[1] != "feasible":  # no point, or an infeasible one: nothing to report but NaN
        return unsolved(built, status, elapsed, "highs")
    return Result(
        objective=float(m.objective.value) + built.offset if m.objective.value is not None else float("nan"),
        termination=termination,
        primal_status=status[1],
        dual_status=status[2],
        residual=primal_residual(built),
        solve_time=elapsed,
        solver="highs",
        dataset=collect(built),
        dual_residual=float(info.max_dual_infeasibility) if info.dual_solution_status == 2 else None,
    )


def step_order(m: linopy.Model) -> tuple[np.ndarray, np.ndarray]:
    """The column and row orders HiGHS is handed: positions into linopy's
    ``vlabels`` and ``clabels``, sorted by (time step, label).

    Those without ``time`` (sizes, per-plan totals) go first, in label order
    (measured on the 33-bus plan: HiGHS faster than with them last)."""
    cols = _by_step(m.variables.items(), lambda v: v.dims, m.variables.label_index.vlabels, m._xCounter)
    rows = _by_step(m.constraints.items(), lambda c: c.coord_dims, m.constraints.label_index.clabels, m._cCounter)
    return cols, rows


def _by_step(items, dims_of, active: np.ndarray, size: int) -> np.ndarray:
    """Positions of the ``active`` labels (of ``size`` in all) in (step, label) order.

    A block (a variable or constraint) holds labels ``start + k`` in C order
    over its dims, so over ``time`` at axis ``a`` its labels are
    ``arange(start, end).reshape(pre, T, post)``; moved to ``(T, pre * post)``
    and laid side by side in label order, step ``t``'s labels are row ``t``,
    in label order.  No sort: a transpose and a concatenation (a stable sort
    on the step would take five times longer on a million columns)."""
    blocks = sorted(((item.range, tuple(dims_of(item)), tuple(item.shape)) for _, item in items), key=lambda b: b[0][0])
    kind = np.int32 if size < 2**31 else np.int64  # half the memory to move
    untimed, timed = [], []
    for (start, end), dims, shape in blocks:
        if TIME not in dims:
            untimed.append(np.arange(start, end, dtype=kind))
            continue
        axis = dims.index(TIME)
        steps = shape[axis]
        pre, post = (int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis + 1 :], dtype=np.int64)))
        labels = np.arange(start, end, dtype=kind).reshape(pre, steps, post)
        timed.append(labels.transpose(1, 0, 2).reshape(steps, -1))
    if timed:
        most = max(t.shape[0] for t in timed)  # a block over fewer steps: padded, then dropped
        padded = any(t.shape[0] < most for t in timed)
        timed = [t if t.shape[0] == most else np.vstack([t, np.full((most - t.shape[0], t.shape[1]), -1, dtype=kind)]) for t in timed]
        untimed.append(np.concatenate(timed, axis=1).ravel())
        if padded:
            untimed[-1] = untimed[-1][untimed[-1] >= 0]
    order = np.concatenate(untimed) if untimed else np.empty(0, dtype=kind)
    if len(active) == size and bool((np.diff(active) > 0).all()):
        return order  # every label active, in label order: labels are positions
    position = np.full(size, -1, dtype=kind)
    position[active] = np.arange(len(active), dtype=kind)
    order = position[order]
    return order[order >= 0]


class _StepByStep(linopy.solvers.Highs):
    """linopy's HiGHS backend handing HiGHS the columns and rows in
    :func:`step_order`; its cached labels follow, so linopy maps the primal
    values and duals back to the labels (``values[labels[k]] = solution[k]``)."""

    @property
    def solver_name(self) -> linopy.solvers.SolverName:
        return linopy.solvers.SolverName.Highs  # linopy names a solver by its class

    def _build_direct(self, explicit_coordinate_names: bool = False, *, set_names: bool, log_fn: Path | None = None, **kwargs: object) -> None:
        model = self.model
        cols, rows = step_order(model)
        h, self._bounds = _permuted_highs(model, cols, rows, set_names=set_names, explicit_coordinate_names=explicit_coordinate_names)
        self._set_solver_params(h, log_fn)
        self.solver_model, self.io_api, self.sense = h, "direct", model.sense
        self._cache_model_labels(model)
        self._vlabels, self._clabels = self._vlabels[cols], self._clabels[rows]

    def _run_direct(self, **kwargs: object) -> linopy.constants.Result:
        """HiGHS's run, a value beyond its column's bound by rounding
        (at most :data:`SNAP` of the bound, at least 1) put on the bound: the
        order of the columns changes which such ulps HiGHS leaves (a size
        of 0.1000000000000038 at its limit 0.1), and a value read back and
        fixed as a bound must not cross the other one."""
        result = super()._run_direct(**kwargs)
        primal = result.solution.primal if result.solution is not None else None
        if primal is None or not len(primal):
            return result
        x = primal[self._vlabels]
        lower, upper = self._bounds
        for bound, beyond in ((upper, x > upper), (lower, x < lower)):
            at = np.flatnonzero(beyond)  # few, or none
            near = at[np.abs(x[at] - bound[at]) <= SNAP * np.maximum(1.0, np.abs(bound[at]))]
            primal[self._vlabels[near]] = bound[near]
        return result


def _permuted_highs(model: linopy.Model, cols: np.ndarray, rows: np.ndarray, *, set_names: bool, explicit_coordinate_names: bool) -> tuple[highspy.Highs, tuple[np.ndarray, np.ndarray]]:
    """A Highs instance for ``model`` with column ``j`` linopy's column ``cols[j]``
    and row ``i`` its row ``rows[i]``: the same LP, MILP or QP, reordered; and
    its columns' lower and upper bounds."""
    M = model.matrices
    h = highspy.Highs()
    n = len(cols)
    lower, upper = M.lb[cols], M.ub[cols]
    # the costs with the columns: changeColsCost afterwards takes 5-10 times as long
    h.addCols(n, M.c[cols], lower, upper, 0, np.zeros(n, dtype=np.int32), np.empty(0, dtype=np.int32), np.empty(0))
    if len(model.binaries) + len(model.integers) + len(list(model.variables.semi_continuous)):
        vtypes = M.vtypes[cols]
        kinds = np.select([np.isin(vtypes, ("B", "I")), vtypes == "S"], [1, 2], 0).astype(np.uint8)
        where = np.flatnonzero(kinds)
        h.changeColsIntegrality(len(where), where.astype(np.int32), kinds[where])
    if M.A is not None and len(rows):
        inverse = np.empty(n, dtype=np.int32)
        inverse[cols] = np.arange(n, dtype=np.int32)
        a = M.A.tocsr()
        if not np.array_equal(rows, np.arange(len(rows))):
            a = a[rows]
        a = sparse.csr_matrix((a.data, inverse[a.indices], a.indptr), shape=a.shape)  # columns renamed, not moved
        a.sort_indices()
        b, sense = M.b[rows], M.sense[rows]
        h.addRows(len(rows), np.where(sense != "<", b, -np.inf), np.where(sense != ">", b, np.inf), a.nnz, a.indptr, a.indices, a.data)
    if set_names:
        print_variables, print_constraints = linopy.io.get_printers_scalar(model, explicit_coordinate_names=explicit_coordinate_names)
        lp = h.getModel()
        lp.lp_.col_names_ = print_variables(M.vlabels[cols])
        if len(rows):
            lp.lp_.row_names_ = print_constraints(M.clabels[rows])
        h.passModel(lp)
    if M.Q is not None:
        q = sparse.triu(M.Q.tocsr()[cols][:, cols]).tocsr()
        h.passHessian(n, q.nnz, 1, q.indptr, q.indices, q.data)
    if model.objective.sense == "max":
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    return h, (lower, upper)


def _solve_step_by_step(m: linopy.Model, opts: Mapping[str, object]) -> None:
    """``m.solve(solver_name="highs", io_api="direct", **opts)`` with HiGHS handed
    the model in :func:`step_order`: the solution, duals, status and
    ``m.solver_model`` land on ``m`` as linopy's own solve leaves them."""
    m.reset_solution()
    m.constraints.sanitize_zeros()
    m.constraints.sanitize_infinities()
    m.solver = None  # closes a previous solver
    solver = _StepByStep.from_model(m, io_api="direct", options=dict(opts))
    m.solver = solver
    m.assign_result(solver.solve())


def _in_linopy_order(m: linopy.Model, opts: Mapping[str, object]) -> highspy.Highs:
    """The infeasible case solved again in linopy's own order: the conflict
    HiGHS finds may depend on the order, and a case's conflict stays the one
    it was (a rare error path, so the second solve costs nothing that matters)."""
    with common.quiet(bool(opts["output_flag"])):
        m.solve(solver_name="highs", io_api="direct", **opts)
    h: highspy.Highs = m.solver_model
    _is_infeasible(h)  # as on the first solve: presolve off if it could not tell
    return h


@functools.cache
def option_list() -> dict[str, tuple[type, str]]:
    """HiGHS's own option list: name -> (type, its documentation with the range or choices)."""
    with common.quiet(), tempfile.TemporaryDirectory(prefix="gridlang-highs-") as folder:
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        path = Path(folder) / "options.txt"
        h.writeOptions(str(path))
        text = path.read_text()
    found = re.findall(r"^# (.*)\n# \[type: (\w+), advanced: \w+, (?:range: (.*), )?default: .*\]\n(\w+) =", text, re.M)
    return {name: (_TYPES[kind], doc.strip().rstrip(",") + (f"; range {rng}" if rng else "")) for doc, kind, rng, name in found}


def check_options(options: Mapping[str, object], spans: Mapping[str, Span]) -> dict[str, object]:
    """Each option one of HiGHS's, of its type, and a value HiGHS accepts (its range, its choices)."""
    listed = dict(option_list())
    with common.quiet():
        scratch = highspy.Highs()
        for key in options.keys() - listed.keys():  # an advanced option HiGHS does not list
            status, kind = scratch.getOptionType(key)
            if status == highspy.HighsStatus.kOk:
                listed[key] = ((bool, int, float, str)[int(kind)], "an advanced HiGHS option")
    values = common.check_options("HiGHS", options, spans, {k: kind for k, (kind, _) in listed.items()}, describe=lambda key: listed[key][1])
    errors = Collector()
    with common.quiet():
        for key, value in values.items():
            if scratch.setOptionValue(key, value) == highspy.HighsStatus.kError:
                errors.add(spans.get(key, common.COMMAND_LINE), f"HiGHS option '{key}' cannot be {value!r}", listed[key][1])
    errors.raise_if_any()
    return values


def explain_infeasible(built: Built, solver: str) -> GridError | GridErrors:
    """Why a conic case is infeasible: HiGHS's conflict in its linear part, if there is one."""
    m = built.model
    with common.quiet():
        m.solve(solver_name="highs", io_api="direct", output_flag=False)
    h: highspy.Highs = m.solver_model
    if str(m.termination_condition) in ("infeasible", "infeasible_or_unbounded") and _is_infeasible(h):
        return infeasible(built, h)
    span = built.cones[0].span if built.cones else built.case.system.span
    return GridError(span, f"the case is infeasible ({solver}); its linear part alone is feasible, so the cones cannot hold with it", "check the limits in the cone statements (e.g. apparent-power or current limits) against the demand")


def _is_infeasible(h: highspy.Highs) -> bool:
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        return True
    # presolve may not tell infeasible from unbounded; ask again without it
    h.setOptionValue("presolve", "off")
    with common.quiet():
        h.run()
    return h.getModelStatus() == highspy.HighsModelStatus.kInfeasible


class Conflict(GridErrors):
    """An infeasible case's conflict, in the order given (bounds first), with a
    closing note that says how many elements it has and how many are shown."""

    def __init__(self, errors: list[GridError], note: str) -> None:
        super().__init__(errors)
        self.errors, self.note = list(errors), note  # keep bounds before rows

    def render(self) -> str:
        return "\n\n".join(GridError.render(e) for e in self.errors) + f"\n\n{self.note}"


def infeasible(built: Built, h: highspy.Highs) -> GridErrors:
    """The conflicting bounds, then rows, each at the statement that wrote it.

    HiGHS's irreducible infeasible subsystem: removing any one of its elements
    makes the rest feasible.  The first :data:`CONFLICT_SHOWN` are listed, the
    variable bounds first (a voltage limit, a size: usually what to relax)."""
    m = built.model
    h.setOptionValue("iis_strategy", int(highspy.IisStrategy.kIisStrategyFromLp) | int(highspy.IisStrategy.kIisStrategyIrreducible))
    with common.quiet():
        status, iis = h.getIis()
    if status == highspy.HighsStatus.kError or not iis.valid_ or not (len(iis.col_index_) + len(iis.row_index_)):
        return GridErrors([GridError(built.case.system.span, "the case is infeasible", "HiGHS found no conflicting set to show; relax limits or loosen demands")])
    lp = h.getLp()
    vlabels, clabels = m.variables.label_index.vlabels, m.constraints.label_index.clabels
    # a column whose bounds are free is in the subsystem but none of its bounds is
    binding = {int(highspy.IisBoundStatus.kIisBoundStatusLower), int(highspy.IisBoundStatus.kIisBoundStatusUpper), int(highspy.IisBoundStatus.kIisBoundStatusBoxed)}
    bounds = [(int(pos), int(side)) for pos, side in zip(iis.col_index_, iis.col_bound_) if int(side) in binding]
    rows = list(iis.row_index_)
    errors = []
    for pos, side in bounds[:CONFLICT_SHOWN]:
        name, coord = m.variables.get_label_position(int(vlabels[pos]))
        errors.append(_conflict(built, name, coord, _bound_words(side, lp.col_lower_[pos], lp.col_upper_[pos])))
    for pos in rows[: max(CONFLICT_SHOWN - len(bounds), 0)]:
        name, coord = m.constraints.get_label_position(int(clabels[pos]))
        errors.append(_conflict(built, name, coord, "constraint"))
    total = len(bounds) + len(rows)
    counts = f"{len(bounds)} variable bound{'s' * (len(bounds) != 1)} and {len(rows)} row{'s' * (len(rows) != 1)}"
    shown = "all shown, bounds first" if total <= CONFLICT_SHOWN else f"showing the first {CONFLICT_SHOWN} (bounds first)"
    return Conflict(errors, f"the conflict has {total} elements ({counts}); {shown}")


def _bound_words(side: int, lower: float, upper: float) -> str:
    """'the lower bound 0.94 of', 'the bounds [0.94, 1.1] of', ... for a conflict line."""
    status = highspy.IisBoundStatus
    if side == int(status.kIisBoundStatusLower):
        return f"the lower bound {lower:.6g} of"
    if side == int(status.kIisBoundStatusUpper):
        return f"the upper bound {upper:.6g} of"
    return f"the bounds [{lower:.6g}, {upper:.6g}] of"


def _conflict(built: Built, name: str, coord: Mapping, what: str) -> GridError:
    where = ", ".join(f"{k}={v}" for k, v in coord.items())
    span = built.origins.get(name, built.case.system.span)
    element = common.declared(built, name, coord)
    hint = "these rows and bounds cannot hold together; relax one of them"
    if element is not None:
        hint = f"{element[0]} is declared at {element[1]}; " + hint
    return GridError(span, f"infeasible: {what} {name} at ({where}) is part of the conflict", hint)


def unbounded(built: Built) -> GridError:
    """The case is unbounded: the model's numbers out of range if they are (the
    likely cause), else a cost that can fall without limit."""
    cause = common.out_of_range(built)
    if cause is not None:
        return cause
    cost_spans = [c.span for b in built.blocks for c in b.model.costs]
    span = cost_spans[0] if cost_spans else built.case.system.span
    return GridError(
        span,
        "the case is unbounded: the total cost can fall without limit",
        "a variable with a negative cost has no upper bound; add a limit (e.g. export_max) or a cost",
    )
