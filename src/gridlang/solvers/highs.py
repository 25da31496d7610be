"""HiGHS backend through linopy's direct API: LP, MILP and convex QP.

Never trusts the status alone: it reports HiGHS's primal and dual solution
status and recomputes the primal residual.  An infeasible case is explained
by HiGHS's irreducible infeasible subsystem, mapped back to the statements
and elements that wrote the conflicting rows and bounds.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from collections.abc import Mapping

import highspy

from gridlang.compiler.build import Built
from gridlang.errors import GridError, GridErrors
from gridlang.solvers.result import Result, collect, primal_residual

_SOLUTION_STATUS = {0: "none", 1: "infeasible", 2: "feasible"}


def solve(built: Built, options: Mapping[str, object]) -> Result:
    m = built.model
    opts = {"output_flag": False, **options}
    start = time.perf_counter()
    try:
        with _quiet(not opts.get("output_flag")):
            m.solve(solver_name="highs", io_api="direct", **opts)
    except Exception as exc:  # an option HiGHS rejects, for instance
        raise GridError(built.case.system.span, f"HiGHS could not solve the case: {exc}", "check the solver options") from None
    elapsed = time.perf_counter() - start
    h: highspy.Highs = m.solver_model
    info = h.getInfo()
    termination = str(m.termination_condition)
    if termination in ("infeasible", "infeasible_or_unbounded") and _is_infeasible(h):
        raise infeasible(built, h)
    if termination in ("unbounded", "infeasible_or_unbounded"):
        raise unbounded(built)
    return Result(
        objective=float(m.objective.value) + built.offset if m.objective.value is not None else float("nan"),
        termination=termination,
        primal_status=_SOLUTION_STATUS.get(info.primal_solution_status, "unknown"),
        dual_status=_SOLUTION_STATUS.get(info.dual_solution_status, "unknown"),
        residual=primal_residual(built),
        solve_time=elapsed,
        solver="highs",
        dataset=collect(built),
        dual_residual=float(info.max_dual_infeasibility) if info.dual_solution_status == 2 else None,
    )


@contextmanager
def _quiet(enabled: bool):
    """Silence what HiGHS prints from C (its banner) unless the user asked for its log."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def explain_infeasible(built: Built, solver: str) -> GridError | GridErrors:
    """Why a conic case is infeasible: HiGHS's conflict in its linear part, if there is one."""
    m = built.model
    with _quiet(True):
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
    h.run()
    return h.getModelStatus() == highspy.HighsModelStatus.kInfeasible


def infeasible(built: Built, h: highspy.Highs) -> GridErrors:
    """The conflicting rows and bounds, each at the statement that wrote it."""
    m = built.model
    h.setOptionValue("iis_strategy", int(highspy.IisStrategy.kIisStrategyFromLp) | int(highspy.IisStrategy.kIisStrategyIrreducible))
    status, iis = h.getIis()
    errors: list[GridError] = []
    if status != highspy.HighsStatus.kError and iis.valid_:
        clabels = m.constraints.label_index.clabels
        vlabels = m.variables.label_index.vlabels
        for pos in list(iis.row_index_)[:12]:
            name, coord = m.constraints.get_label_position(int(clabels[pos]))
            errors.append(_conflict(built, name, coord, "constraint"))
        for pos in list(iis.col_index_)[:12]:
            name, coord = m.variables.get_label_position(int(vlabels[pos]))
            errors.append(_conflict(built, name, coord, "bound of"))
    if not errors:
        errors.append(GridError(built.case.system.span, "the case is infeasible", "HiGHS found no conflicting set to show; relax limits or loosen demands"))
    return GridErrors(errors)


def _conflict(built: Built, name: str, coord: Mapping, what: str) -> GridError:
    prefix = name.split("-", 1)[0]
    block = next((b for b in built.blocks if b.prefix == prefix), None)
    where = ", ".join(f"{k}={v}" for k, v in coord.items())
    span = built.origins.get(name, built.case.system.span)
    instance = coord.get(prefix)
    hint = "these rows and bounds cannot hold together; relax one of them"
    if block is not None and instance in block.spans:
        hint = f"{prefix} '{instance}' is declared at {block.spans[instance]}; " + hint
    return GridError(span, f"infeasible: {what} {name} at ({where}) is part of the conflict", hint)


def unbounded(built: Built) -> GridError:
    cost_spans = [c.span for b in built.blocks for c in b.model.costs]
    span = cost_spans[0] if cost_spans else built.case.system.span
    return GridError(
        span,
        "the case is unbounded: the total cost can fall without limit",
        "a variable with a negative cost has no upper bound; add a limit (e.g. export_max) or a cost",
    )
