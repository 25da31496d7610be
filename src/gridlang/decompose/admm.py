"""Exchange ADMM over agents, seen from the coordinator.

The coupling rows say ``sum_a y_a = 0`` (see :mod:`split`).  With ``N_r``
contributors to row ``r``, the row's mean ``ybar_r = sum_a y_a,r / N_r`` and
the scaled multiplier ``u`` (the row's price is ``rho u``), one iteration is

    y_a  <- the agent's answer to the target  v_a = yhat_a - ybar - u    (its rows)
    yhat_a <- alpha y_a + (1 - alpha) (yhat_a - ybar)   (over-relaxation)
    ybar <- sum_a yhat_a,r / N_r,   u <- u + ybar

The primal residual is ``r = sum_a y_a`` (the coupling rows' violation), the
dual residual ``s = rho |y^{k+1} - y^k|``.  It stops when
``|r| <= sqrt(m) tol + rel |y|`` and ``|s| <= sqrt(m) tol + rel rho |u|``;
residual balancing multiplies ``rho`` by ``tau`` when ``|r| > mu |s|``
(and divides when ``|s| > mu |r|``), rescaling ``u``.  Non-finite or
persistently growing residuals stop the run as diverged, an iteration cap as
not converged; both are reported.

The coordinator holds only the ``y_a`` it receives and the multipliers; every
message is logged (agent, iteration, rows, values) so this can be checked.
An answer that is lost (``drop_rate``, fault injection) is replaced by the
agent's last one for at most ``max_staleness`` iterations in a row, and the
trace names the stale agents of every iteration.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from gridlang.decompose.split import Split


@dataclass(frozen=True, slots=True)
class Settings:
    rho: float | None = None  # None: 5 x the median cost coefficient, so that rho u is on the scale of prices
    tol: float = 1e-4  # absolute, per coupling row
    rel: float = 1e-3
    max_iter: int = 2000
    mu: float = 10.0
    tau: float = 2.0
    balance_every: int = 5
    alpha: float = 1.6  # over-relaxation (1: none)
    drop_rate: float = 0.0  # fault injection: share of answers lost on the way to the coordinator
    max_staleness: int = 3  # iterations the coordinator may go on with an agent's last answer
    seed: int = 0
    kill_agent: str | None = None  # fault injection: kill this agent's worker before iteration 2


@dataclass(frozen=True, slots=True)
class Step:
    iteration: int
    primal: float
    dual: float
    rho: float
    seconds: float
    stale: tuple[str, ...] = ()  # agents whose answer was lost; their last one was used


@dataclass
class Run:
    """What a run produced: per-agent contributions, the trace and the message log."""

    converged: bool
    status: str  # converged / iteration_limit / diverged
    iterations: int
    trace: list[Step]
    messages: list[dict] = field(default_factory=list)
    u: np.ndarray | None = None
    rho: float = 1.0


def admm(split: Split, executor, settings: Settings = Settings(), progress=None) -> Run:
    """Iterate until the coupling rows hold (see the module doc)."""
    subs = {s.agent: s for s in split.subproblems}
    m = split.n_coupling
    counts = np.maximum(split.contributors, 1)
    rho = settings.rho if settings.rho is not None else _price_scale(split)
    u = np.zeros(m)
    y = {a: np.zeros(len(s.rows)) for a, s in subs.items()}
    ybar = np.zeros(m)
    xhat = dict(y)
    age = dict.fromkeys(subs, 0)
    rng = np.random.default_rng(settings.seed)
    trace: list[Step] = []
    log: list[dict] = []
    start = time.perf_counter()
    status, growth = "iteration_limit", 0
    for k in range(1, settings.max_iter + 1):
        if k == 2 and settings.kill_agent is not None:
            executor.kill(settings.kill_agent)
        targets = {a: xhat[a] - ybar[s.rows] - u[s.rows] for a, s in subs.items()}
        answers = executor.solve_all(targets, rho)
        old = y
        y, stale = {}, []
        for a, msg in answers.items():
            if settings.drop_rate and age[a] < settings.max_staleness and rng.random() < settings.drop_rate:
                age[a] += 1  # lost: go on with the last answer, within the staleness bound
                stale.append(a)
                y[a] = old[a]
                continue
            age[a] = 0
            log.append({"agent": a, "iteration": k, "rows": subs[a].rows, "y": msg})
            y[a] = msg
        total = np.zeros(m)
        for a, s in subs.items():
            np.add.at(total, s.rows, y[a])
        # over-relaxation: the answer mixed with the last consensus point z = xhat - mean(xhat)
        xhat = {a: settings.alpha * y[a] + (1 - settings.alpha) * (xhat[a] - ybar[s.rows]) for a, s in subs.items()}
        mixed = np.zeros(m)
        for a, s in subs.items():
            np.add.at(mixed, s.rows, xhat[a])
        ybar = mixed / counts
        u = u + ybar
        change = np.sqrt(sum(float(np.sum((y[a] - old[a]) ** 2)) for a in subs))
        primal, dual = float(np.linalg.norm(total)), rho * change
        trace.append(Step(k, primal, dual, rho, time.perf_counter() - start, tuple(stale)))
        if progress is not None:
            progress(trace[-1])
        scale = np.sqrt(sum(float(np.sum(v**2)) for v in y.values()))
        if not np.isfinite(primal + dual):
            status = "diverged"
            break
        if primal <= np.sqrt(m) * settings.tol + settings.rel * scale and dual <= np.sqrt(m) * settings.tol + settings.rel * rho * float(np.linalg.norm(u)):
            status = "converged"
            break
        growth = growth + 1 if len(trace) > 1 and primal > 10 * trace[-2].primal and primal > 1 else 0
        if growth >= 5:
            status = "diverged"
            break
        if k % settings.balance_every == 0:
            if primal > settings.mu * dual:
                rho, u = rho * settings.tau, u / settings.tau
            elif dual > settings.mu * primal:
                rho, u = rho / settings.tau, u * settings.tau
    return Run(status == "converged", status, len(trace), trace, log, u, rho)


def _price_scale(split: Split) -> float:
    """5 x the median non-zero cost coefficient over all agents (1 if there is none)."""
    costs = np.abs(np.concatenate([s.c for s in split.subproblems]))
    costs = costs[costs > 0]
    return 5.0 * float(np.median(costs)) if len(costs) else 1.0
