"""Solver backends behind one function: ``solve(built, solver, options) -> Result``.

Each backend states the problem classes it accepts; the case's class decides
the default.  More backends (conic, mixed-integer conic) register here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from enum import Enum

from gridlang.compiler.build import Built
from gridlang.errors import COMMAND_LINE, GridError, Span, did_you_mean
from gridlang.solvers import clarabel, common, highs, scip, scs
from gridlang.solvers.result import Result


class ProblemClass(str, Enum):
    LP = "LP"
    MILP = "MILP"
    QP = "QP"
    MIQP = "MIQP"
    SOCP = "SOCP"
    MISOCP = "MISOCP"


P = ProblemClass
#: backend name -> (classes it solves, solve function); the capability table.
#: A backend's ``solve(built, options, spans)`` checks every option (``spans``:
#: where each was written) and returns a Result whose statuses say the truth,
#: NaN where it has no point; it raises GridError for infeasible and unbounded cases.
BACKENDS: dict[str, tuple[frozenset[ProblemClass], Callable[[Built, Mapping, Mapping[str, Span]], Result]]] = {
    "highs": (frozenset({P.LP, P.MILP, P.QP}), highs.solve),
    "clarabel": (frozenset({P.LP, P.QP, P.SOCP}), clarabel.solve),
    "scs": (frozenset({P.LP, P.QP, P.SOCP}), scs.solve),
    "scip": (frozenset({P.LP, P.MILP, P.QP, P.MIQP, P.SOCP, P.MISOCP}), scip.solve),
}
#: the default backend per problem class
DEFAULT = {P.LP: "highs", P.MILP: "highs", P.QP: "highs", P.SOCP: "clarabel", P.MISOCP: "scip", P.MIQP: "scip"}


def problem_class(built: Built) -> ProblemClass:
    if built.cones:
        return P.MISOCP if built.integer else P.SOCP
    if built.quadratic:
        return P.MIQP if built.integer else P.QP
    return P.MILP if built.integer else P.LP


def solve(built: Built, solver: str | None = None, options: Mapping[str, object] | None = None) -> Result:
    """Solve with the named backend, or the default for the case's problem class.

    ``options`` (from the command line or the caller) override the study's
    (which go only to the study's own solver, if it names one); a
    case without cost terms minimises 0; a number beyond any solver's range is
    an error before solving."""
    name = (solver or built.case.solver or DEFAULT[problem_class(built)]).lower()
    # where the name was chosen: the command line (or the caller), the study, or by the problem class
    span = COMMAND_LINE if solver else built.case.option_spans.get("solver", built.case.system.span)
    if name not in BACKENDS:
        raise GridError(span, f"unknown solver '{name}'", " ".join(filter(None, (did_you_mean(name, BACKENDS), f"available: {', '.join(BACKENDS)}"))))
    classes, run = BACKENDS[name]
    kind = problem_class(built)
    if kind not in classes:
        raise GridError(span, f"solver '{name}' cannot solve a {kind.value} problem", f"{name} solves {', '.join(sorted(c.value for c in classes))}")
    study = {k: v for k, v in built.case.solver_options.items() if k != "method"}
    # the study's options are for the study's solver; another one chosen here does not get them
    other = built.case.solver is not None and built.case.solver.lower() != name and study
    common.ensure_objective(built)
    common.check_ranges(built)
    result = run(built, {**({} if other else study), **(options or {})}, common.option_spans(built, options or {}))
    if other:
        note = f"the study's options ({', '.join(study)}) are for {built.case.solver}, so {name} did not get them"
        result = replace(result, warnings=(*result.warnings, note))
    return result


__all__ = ["BACKENDS", "ProblemClass", "Result", "problem_class", "solve"]
