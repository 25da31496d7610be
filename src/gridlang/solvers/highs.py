"""HiGHS backend through linopy's direct API: LP, MILP and convex QP.

Never trusts the status alone: it reports HiGHS's primal and dual solution
status and recomputes the primal residual.  An infeasible case is explained
by HiGHS's irreducible infeasible subsystem, mapped back to the statements
and elements that wrote the conflicting rows and bounds.
"""

from __future__ import annotations

import functools
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import highspy

from gridlang.compiler.build import Built
from gridlang.errors import Collector, GridError, GridErrors, Span
from gridlang.solvers import common
from gridlang.solvers.result import Result, collect, primal_residual, unsolved

_SOLUTION_STATUS = {0: "none", 1: "infeasible", 2: "feasible"}
_TYPES = {"bool": bool, "integer": int, "double": float, "string": str}

#: shown before a conflict is cut short; a longer conflict is counted, not listed
CONFLICT_SHOWN = 24


def solve(built: Built, options: Mapping[str, object], spans: Mapping[str, Span]) -> Result:
    m = built.model
    opts = {"output_flag": False, **check_options(options, spans)}
    start = time.perf_counter()
    try:
        with common.quiet(opts["output_flag"]):
            m.solve(solver_name="highs", io_api="direct", **opts)
    except Exception as exc:  # HiGHS refused the model (a coefficient beyond 1e15, for instance)
        raise common.out_of_range(built) or GridError(built.case.system.span, f"HiGHS could not solve the case: {exc}", "run with --debug and report it") from None
    elapsed = time.perf_counter() - start
    h: highspy.Highs = m.solver_model
    info = h.getInfo()
    termination = str(m.termination_condition)
    if termination in ("infeasible", "infeasible_or_unbounded") and _is_infeasible(h):
        raise infeasible(built, h)
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
