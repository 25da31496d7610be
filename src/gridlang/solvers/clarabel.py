"""Clarabel backend: LP, QP and SOCP in the conic form of :mod:`conic`.

Options are Clarabel settings by name (``tol_gap_abs = 1e-9``,
``max_iter = 500``, ``verbose = true``, ``iterative_refinement_enable = true``)."""

from __future__ import annotations

import time
from collections.abc import Mapping

import clarabel
import numpy as np

from gridlang.compiler.build import Built
from gridlang.clarabel_kit import cones, name, settings
from gridlang.errors import GridError, Span
from gridlang.solvers import common, conic

#: Clarabel status -> (termination, primal status, dual status)
STATUS = {
    "Solved": ("optimal", "feasible", "feasible"),
    "AlmostSolved": ("almost_optimal", "feasible", "feasible"),
    "PrimalInfeasible": ("infeasible", "infeasible", "none"),
    "AlmostPrimalInfeasible": ("infeasible", "infeasible", "none"),
    "DualInfeasible": ("unbounded", "none", "infeasible"),
    "AlmostDualInfeasible": ("unbounded", "none", "infeasible"),
    "MaxIterations": ("iteration_limit", "unknown", "unknown"),  # an iterate, not a solution
    "MaxTime": ("time_limit", "unknown", "unknown"),
    "NumericalError": ("numerical_error", "unknown", "unknown"),
    "InsufficientProgress": ("insufficient_progress", "unknown", "unknown"),
}


def option_types() -> dict[str, type]:
    """Clarabel's settings by name, with the type of each default (lists left out)."""
    defaults = clarabel.DefaultSettings()
    values = {key: getattr(defaults, key) for key in dir(defaults) if not key.startswith("_")}
    return {key: type(v) for key, v in values.items() if type(v) in (bool, int, float, str)}


def solve(built: Built, options: Mapping[str, object], spans: Mapping[str, Span]):
    """Solve the conic form.  Unless the case sets ``iterative_refinement_enable``,
    Clarabel runs first without iterative refinement of its KKT solves (about
    half of the solve time on large feeders; its stopping test is on the true
    residuals, so a ``Solved`` answer is as accurate) and repeats a solve that
    does not end ``Solved`` with refinement on."""
    chosen = settings(**common.check_options("Clarabel", options, spans, option_types(), what="setting"))
    form = conic.conic_form(built)
    start = time.perf_counter()
    refine_chosen = "iterative_refinement_enable" in options
    if not refine_chosen:
        chosen.iterative_refinement_enable = False

    def run():
        try:
            return clarabel.DefaultSolver(form.P_solve, form.q_solve, form.A, form.b, cones(form), chosen).solve()
        except Exception as exc:  # a setting's value Clarabel refuses (a method it does not know, ...)
            span = next(iter(spans.values()), built.case.system.span)
            raise GridError(span, f"Clarabel refused the settings: {exc}", "check the settings' values against the Clarabel documentation") from None

    with common.quiet(chosen.verbose):
        sol = run()
        if not refine_chosen and name(sol) != "Solved":
            chosen.iterative_refinement_enable = True
            sol = run()
    elapsed = time.perf_counter() - start
    status = STATUS.get(name(sol), ("unknown", "unknown", "unknown"))
    conic.check_status(built, status, "Clarabel")
    return conic.finish(built, form, form.full(np.asarray(sol.x)), np.asarray(sol.z), status, elapsed, "clarabel")
