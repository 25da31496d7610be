"""Solve a case with agents by decomposition: split, iterate, put the answer back.

``solve(built, method="admm", executor="serial", **settings)`` splits the
compiled case by agent (:mod:`split`), runs the coordinator (:mod:`admm`)
with the agents' persistent subproblems in an executor (:mod:`executors`),
and returns a :class:`~gridlang.solvers.result.Result` like a central solve,
with the convergence trace in its dataset (``admm_primal``, ``admm_dual``,
``admm_rho`` over ``iteration``) and the primal residual of the *whole*
model at the decomposed point, so a run that did not converge shows it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import xarray as xr

from gridlang.compiler.build import Built
from gridlang.decompose import atc
from gridlang.decompose.admm import Run, Settings, admm
from gridlang.decompose.executors import EXECUTORS
from gridlang.decompose.split import split
from gridlang.errors import GridError, Span
from gridlang.solvers.result import Result, collect, primal_residual, store_solution


COMMAND_LINE = Span("<command line>", 0, 0)


def solve(built: Built, method: str = "admm", executor: str = "serial", progress=None, address: str | None = None, **settings) -> tuple[Result, Run]:
    if method not in ("admm", "atc"):
        raise GridError(COMMAND_LINE, f"unknown decomposition method '{method}'", "methods: central, admm, atc")
    if settings.get("kill_agent") is not None and settings["kill_agent"] not in built.case.owners.values():
        raise GridError(COMMAND_LINE, f"--kill-agent: '{settings['kill_agent']}' is not an agent", "name an agent of the case")
    if executor not in EXECUTORS:
        raise GridError(COMMAND_LINE, f"unknown executor '{executor}'", f"executors: {', '.join(EXECUTORS)}")
    parts = split(built)
    defaults = Settings() if method == "admm" else atc.Settings()
    known = set(type(defaults).__dataclass_fields__)
    unknown = set(settings) - known
    if unknown:
        raise GridError(built.case.system.span, f"unknown {method} setting(s): {', '.join(sorted(unknown))}", f"settings: {', '.join(sorted(known))}")
    config = replace(defaults, **settings)
    upper = built.case.network_owner
    subs = parts.subproblems if method == "admm" else tuple(s for s in parts.subproblems if s.agent != upper)
    pool = EXECUTORS[executor](subs, address) if executor == "ray" else EXECUTORS[executor](subs)
    try:
        if method == "admm":
            run = admm(parts, pool, config, progress)
            points, costs = pool.points(), pool.costs()
        else:
            run, x_upper = atc.atc(parts, upper, pool, config, progress)
            points, costs = pool.points(), pool.costs()
            sub = next(s for s in parts.subproblems if s.agent == upper)
            points[upper], costs[upper] = x_upper, float(sub.c @ x_upper + 0.5 * x_upper @ (sub.Q @ x_upper))
    finally:
        pool.close()
    x_by_label = np.full(built.model._xCounter, np.nan)
    for sub in parts.subproblems:
        x_by_label[sub.vlabels] = points[sub.agent]
    store_solution(built.model, x_by_label, termination="optimal" if run.converged else "other")
    warnings = () if run.converged else (f"{method.upper()} stopped after {run.iterations} iterations: {run.status}; the point does not meet the coupling rows (see the residual)",)
    stale = sorted({a for step in run.trace for a in step.stale})
    if stale:
        warnings += (f"answers of {', '.join(stale)} were lost in {sum(bool(s.stale) for s in run.trace)} iterations; the coordinator used their last ones (at most {config.max_staleness} in a row)",)
    result = Result(
        objective=float(sum(costs.values())) + parts.offset,
        termination=run.status,
        primal_status="feasible" if run.converged else "unknown",
        dual_status="unknown",
        residual=primal_residual(built),
        solve_time=run.trace[-1].seconds if run.trace else 0.0,
        solver=f"{method}/{executor}",
        dataset=collect(built).merge(trace_dataset(run)),
        warnings=warnings,
    )
    return result, run


def trace_dataset(run: Run) -> xr.Dataset:
    it = {"iteration": [s.iteration for s in run.trace]}
    return xr.Dataset(
        {
            "admm_primal": xr.DataArray([s.primal for s in run.trace], coords=it, dims="iteration"),
            "admm_dual": xr.DataArray([s.dual for s in run.trace], coords=it, dims="iteration"),
            "admm_rho": xr.DataArray([s.rho for s in run.trace], coords=it, dims="iteration"),
            "admm_stale": xr.DataArray([len(s.stale) for s in run.trace], coords=it, dims="iteration", attrs={"units": "agents"}),
        }
    )
