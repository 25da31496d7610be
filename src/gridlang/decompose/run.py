"""Split, iterate and put the answer back: :func:`solve`, the body of :mod:`gridlang.decompose`
(see its doc)."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import xarray as xr

from gridlang.compiler.build import Built
from gridlang.decompose import atc
from gridlang.decompose.admm import CHECKS, Run, Settings, admm, penalties, problems
from gridlang.decompose.executors import EXECUTORS, Handover, ProcessExecutor, RayExecutor, RayStart, SerialExecutor, check_ray, spawn, start_cost
from gridlang.decompose.split import Split, split
from gridlang.errors import COMMAND_LINE, Collector, GridError, Span, did_you_mean
from gridlang.solvers.conic import cone_violation
from gridlang.solvers.result import FEASIBILITY_TOL, Result, collect, primal_residual, store_solution


def settings_for(built: Built, method: str, settings: dict) -> Settings | atc.Settings:
    """The method's settings with ``settings`` in place of the defaults, every one
    checked; all mistakes are raised together, each at the value in the study's
    ``method = admm(...)`` it came from, else at the command line."""
    defaults, checks = (Settings(), CHECKS) if method == "admm" else (atc.Settings(), atc.CHECKS)
    known = set(type(defaults).__dataclass_fields__)
    errors = Collector()
    study = built.case.solver_options.get("method", ("central", {}))[1]

    def where(name: str) -> Span:
        same = name in study and study[name] == settings.get(name)  # not overridden on the command line
        return built.case.option_spans.get(f"method.{name}", COMMAND_LINE) if same else COMMAND_LINE

    for name in sorted(set(settings) - known):
        errors.add(where(name), f"unknown {method} setting '{name}'", did_you_mean(name, known) or f"settings: {', '.join(sorted(known))}")
    errors.raise_if_any()
    config = replace(defaults, **settings)
    for name, message, hint in problems(config, checks):
        errors.add(where(name), f"{method}: {message}", hint)
    if method == "admm" and config.kill_agent is not None and config.kill_agent not in built.case.owners.values():
        errors.add(COMMAND_LINE, f"--kill-agent: '{config.kill_agent}' is not an agent", "name an agent of the case")
    errors.raise_if_any()
    return config


def solve(built: Built, method: str = "admm", executor: str = "serial", progress=None, address: str | None = None, workers: int | None = None, at_once: bool = False, **settings) -> tuple[Result, Run]:
    """Decompose (see the package doc); ``workers`` bounds the processes or Ray actors
    the agents are batched into (default: the number of cores).  Workers that are
    costly to start (spawned processes, new Ray actors: :func:`executors.start_cost`)
    are started only once the run has lasted as long as their start, the agents solved
    here until then (:class:`executors.Handover`); ``at_once`` starts them before the
    split and waits for them (tests and benchmarks of the workers themselves)."""
    if method not in ("admm", "atc", "auto"):
        raise GridError(COMMAND_LINE, f"unknown decomposition method '{method}'", "methods: central, admm, atc, auto")
    if executor not in EXECUTORS:
        raise GridError(COMMAND_LINE, f"unknown executor '{executor}'", f"executors: {', '.join(EXECUTORS)}")
    owners = set(built.case.owners.values())
    agents = len(owners) - (method != "admm" and built.case.network_owner in owners)  # ATC (and auto, which may pick it) leaves the network owner here
    count = max(1, min(agents, workers or os.cpu_count() or 1))  # the workers or actors a run would start
    if executor == "ray":
        check_ray()
    costly = None if at_once or executor == "serial" else start_cost(executor, count)
    early: list = []
    ray_start: RayStart | None = None
    if executor == "processes" and not costly:  # started first: spawned interpreters load numpy and Clarabel while the case is split here
        early = spawn(count)
    try:
        if executor == "ray" and not costly:  # the same on a running Ray: new actors start and import gridlang while the case is split
            ray_start = RayStart.early(count, address)
        parts = split(built)
        picked = ()
        if method == "auto":
            method, why = choose(built, parts)
            picked = (f"method auto picked {method.upper()}: {why}",)
        config = settings_for(built, method, settings)
        if method == "admm" and config.row_scaling:
            parts = penalties(parts)
        upper = built.case.network_owner
        subs = parts.subproblems if method == "admm" else tuple(s for s in parts.subproblems if s.agent != upper)

        def workers_pool():
            if executor == "ray":
                return RayExecutor(subs, address, workers, started=ray_start)
            return ProcessExecutor(subs, workers, started=early)

        pool = SerialExecutor(subs) if executor == "serial" else Handover(subs, workers_pool, *costly) if costly else workers_pool()
    except BaseException:
        for w in early:
            w.close()
        if ray_start is not None:
            ray_start.close()
        raise
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
    residual, warnings = check(built, parts, run, x_by_label, method)
    run.stopped_by = stop_reason(run, method, residual, config.max_iter)
    where = executor
    if isinstance(pool, Handover):
        warnings, where = (pool.note(executor),) + warnings, executor if pool.handed else "serial"
    warnings = picked + warnings
    stale = sorted({a for step in run.trace for a in step.stale})  # fault injection
    if stale:
        limit = f" (at most {config.max_staleness} in a row)" if method == "admm" else ""
        warnings += (f"exchanges with {', '.join(stale)} were lost in {sum(bool(s.stale) for s in run.trace)} iterations; the coordinator used their last answers{limit}",)
    result = Result(
        objective=float(sum(costs.values())) + parts.offset,
        termination=run.status,
        primal_status="feasible" if run.converged else "unknown",
        dual_status="unknown",
        residual=residual,
        solve_time=run.trace[-1].seconds if run.trace else 0.0,
        solver=f"{method}/{where}",
        dataset=collect(built).merge(trace_dataset(run)).assign_attrs(stopped_by=run.stopped_by),
        warnings=warnings,
    )
    return result, run


def stop_reason(run: Run, method: str, residual: float, max_iter: int) -> str:
    """Which criterion ended the run, with the figures it was judged on (the last
    step of the trace and the whole model's residual at the assembled point)."""
    if not run.trace:
        return "no iteration was run"
    s = run.trace[-1]
    first, second = ("primal residual", "dual residual") if method == "admm" else ("target gap |t - y|", "change of the total cost")
    tests = f"{first} {s.primal:.3g} (test {s.eps_primal:.3g}), {second} {s.dual:.3g} (test {s.eps_dual:.3g}), largest coupling violation {s.worst:.3g} p.u. (test {FEASIBILITY_TOL:g})"
    if run.status == "converged":
        return f"converged at iteration {s.iteration}: {tests}, all met; the whole model holds to {residual:.3g} p.u."
    if run.status == "not_converged":
        return f"the coupling tests were met at iteration {s.iteration} ({tests}), but the whole model is violated by {residual:.3g} p.u. at the assembled point (test {FEASIBILITY_TOL:g})"
    if run.status == "iteration_limit":
        return f"the iteration limit (max_iter = {max_iter}) was reached: {tests}"
    if not np.isfinite(s.primal + s.dual):
        return f"diverged at iteration {s.iteration}: a residual is not a finite number"
    return f"diverged at iteration {s.iteration}: the {first} grew tenfold five iterations in a row, to {s.primal:.3g}"


def choose(built: Built, parts: Split | None = None) -> tuple[str, str]:
    """The decomposition ``method = auto`` runs, and why: ``"atc"`` when one agent
    owns the network and every other agent's assets hang off it -- every coupling
    row holds at most one other agent, and holds the network owner whenever it
    holds one (the operator is the upper level, the others its lower levels) --
    ``"admm"`` otherwise (agents that meet in a row without the owner, or
    several agents in one row, as in a market, trade with each other)."""
    parts = split(built) if parts is None else parts
    owner = built.case.network_owner
    if owner is None or owner not in parts.agents:
        return "admm", "no agent owns a network, so there is no upper level for ATC"
    with_owner = np.zeros(parts.n_coupling, dtype=bool)
    others = np.zeros(parts.n_coupling, dtype=np.int64)  # agents other than the owner in each row
    for sub in parts.subproblems:
        if sub.agent == owner:
            with_owner[sub.rows] = True
        else:
            np.add.at(others, sub.rows, 1)
    shared = np.flatnonzero((others > 1) | ((others == 1) & ~with_owner))
    lower = len(parts.agents) - 1
    if not len(shared):
        return "atc", f"'{owner}' owns the network and each of the other {lower} agents is coupled with it alone"
    row = int(shared[0])
    name, coords = built.model.constraints.get_label_position(int(parts.labels[row]))
    at = ", ".join(f"{k} {v}" for k, v in coords.items())
    meet = sorted(s.agent for s in parts.subproblems if s.agent != owner and row in set(s.rows.tolist()))
    return "admm", f"agents {', '.join(meet)} meet in {len(shared)} coupling rows without going through '{owner}' alone (e.g. {name} at {at})"


def check(built: Built, parts: Split, run: Run, x_by_label: np.ndarray, method: str) -> tuple[float, tuple[str, ...]]:
    """The whole model's residual at the assembled point (rows, bounds and cones, as for a
    central solution) and the warnings to give.  A run that stopped as converged but whose
    point violates the model by more than ``FEASIBILITY_TOL`` becomes ``not_converged``
    (``run`` is updated); a run that did not converge is told how far its point is."""
    residual = max(primal_residual(built), cone_violation(built, x_by_label))
    if run.converged and not residual <= FEASIBILITY_TOL:
        run.converged, run.status = False, "not_converged"
        built.model.termination_condition = "other"
    if run.converged:
        return residual, ()
    return residual, (f"{method.upper()} stopped after {run.iterations} iterations, not converged ({run.status}): {distance(built, parts, x_by_label, residual)}",)


def distance(built: Built, parts: Split, x_by_label: np.ndarray, residual: float, shown: int = 3) -> str:
    """How far the point is from holding the model: its residual and the coupling rows furthest off."""
    m = built.model
    mat = m.matrices
    x = np.nan_to_num(x_by_label[mat.vlabels])
    gap = np.abs(mat.A[parts.positions] @ x - np.asarray(mat.b, dtype=float)[parts.positions])
    kw = built.case.system.base.factor("kW")[0]
    text = f"the point violates the model by {residual:.3g} p.u. (a central solution may violate it by at most {FEASIBILITY_TOL:g})"
    worst = [i for i in np.argsort(-gap, kind="stable")[:shown] if gap[i] > 0]
    if worst:
        rows = []
        for i in worst:
            name, coords = m.constraints.get_label_position(int(parts.labels[i]))
            at = ", ".join(f"{k} {v}" for k, v in coords.items())  # no brackets: a console may read them as markup
            rows.append(f"{name} at {at} off by {gap[i]:.3g} p.u. ({gap[i] / kw:.3g} kW or kvar)")
        text += "; the coupling rows furthest off: " + "; ".join(rows)
    return text


def trace_dataset(run: Run) -> xr.Dataset:
    it = {"iteration": [s.iteration for s in run.trace]}
    return xr.Dataset(
        {
            "admm_primal": xr.DataArray([s.primal for s in run.trace], coords=it, dims="iteration"),
            "admm_dual": xr.DataArray([s.dual for s in run.trace], coords=it, dims="iteration"),
            "admm_eps_primal": xr.DataArray([s.eps_primal for s in run.trace], coords=it, dims="iteration", attrs={"note": "the test the primal residual is held to"}),
            "admm_eps_dual": xr.DataArray([s.eps_dual for s in run.trace], coords=it, dims="iteration", attrs={"note": "the test the dual residual is held to"}),
            "admm_worst": xr.DataArray([s.worst for s in run.trace], coords=it, dims="iteration", attrs={"units": "p.u.", "note": "largest violation of a coupling row"}),
            "admm_rho": xr.DataArray([s.rho for s in run.trace], coords=it, dims="iteration"),
            "admm_stale": xr.DataArray([len(s.stale) for s in run.trace], coords=it, dims="iteration", attrs={"units": "agents"}),
        }
    )
