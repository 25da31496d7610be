"""Exchange ADMM over agents, seen from the coordinator.

The coupling rows say ``sum_a y_a = 0`` (see :mod:`split`).  In the form of
Boyd et al. (2011, sec. 7.3) each agent's contribution ``y_a`` is a copy of a
consensus point ``z_a`` with ``sum_a z_a = 0``; with ``N_r`` contributors to
row ``r``, the row's mean ``ybar_r = sum_a yhat_a,r / N_r`` and the scaled
multiplier ``u`` (the row's price is ``rho u``), one iteration is

    y_a  <- the agent's answer to the target  v_a = z_a - u    (its rows)
    yhat_a <- alpha y_a + (1 - alpha) z_a                       (over-relaxation)
    ybar <- sum_a yhat_a,r / N_r,   z_a <- yhat_a - ybar,   u <- u + ybar

**Stopping** (Boyd et al. 2011, sec. 3.3.1; OSQP): the primal residual is the
violation of the coupling rows by the agents' answers and the dual residual
the change of the consensus point,

    r = sum_a y_a            (m rows),
    s = rho (z^{k+1} - z^k)  (n = sum_r N_r stacked contributions),

and the run stops when both are small *relative to the size of the terms*:

    |r| <= eps_pri  = sqrt(m) tol + rel max(|y|, |z|),
    |s| <= eps_dual = sqrt(n) rho tol + rel rho |u|_N,    |u|_N^2 = sum_r N_r u_r^2,

where ``|y|`` and ``|z|`` stack every agent's contribution (the ``A x`` and
``B z`` of Boyd's ``A x + B z = c``; here ``c = 0`` because every constant
sits in some ``y_a``) and ``rho |u|_N = |A' lambda|``, the prices seen by the
contributions.  ``tol`` is in per unit of the case's base, so it is relative
to the base; its default is small enough that the relative part decides on
kW-scale and MW-scale cases alike.  The whole model must hold too: the run
never stops while a coupling row is violated by more than the tolerance of
a central solve (:data:`~gridlang.solvers.result.FEASIBILITY_TOL`, max norm),
so it goes on iterating until all three hold or ``max_iter`` is reached.  Residual balancing multiplies
``rho`` by ``tau`` when ``|r| / eps_pri > mu |s| / eps_dual`` (and divides
when the dual side is ``mu`` times further from its test), rescaling ``u``.
Non-finite or persistently growing residuals stop the run as diverged, the
iteration cap as not converged; both are reported.

The coordinator holds only the ``y_a`` it receives and the multipliers; every
message is logged (agent, iteration, rows, values) so this can be checked.
An exchange that is lost (``drop_rate``, fault injection: the target does
not reach the agent, or its answer is not acknowledged, so the agent stays at
the point of its last acknowledged answer) leaves the coordinator with the
agent's last answer, for at most ``max_staleness`` iterations in a row; the
trace names the stale agents of every iteration.  The coordinator's view and
the agents' points therefore always agree, and so does the final check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields

import numpy as np

from gridlang.decompose.split import Split
from gridlang.solvers.result import FEASIBILITY_TOL


@dataclass(frozen=True, slots=True)
class Settings:
    rho: float | None = None  # None: 5 x the median cost coefficient, so that rho u is on the scale of prices
    tol: float = 1e-7  # absolute part, per unit of the case's base, per row
    rel: float = 1e-5  # relative part (see the module doc)
    max_iter: int = 2000
    mu: float = 10.0
    tau: float = 2.0
    balance_every: int = 5
    alpha: float = 1.6  # over-relaxation (1: none)
    drop_rate: float = 0.0  # fault injection: share of exchanges (target and answer) lost
    max_staleness: int = 3  # iterations the coordinator may go on with an agent's last answer
    seed: int = 0
    kill_agent: str | None = None  # fault injection: kill this agent's worker before iteration 2


#: each setting's condition, as (test, what it must be, a value that works)
CHECKS = {
    "rho": (lambda v: v is None or v > 0, "a positive number", "rho = 100"),
    "tol": (lambda v: v > 0, "a positive number", "tol = 1e-7"),
    "rel": (lambda v: v >= 0, "zero or more", "rel = 1e-5"),
    "max_iter": (lambda v: v >= 1, "a whole number of 1 or more", "max_iter = 2000"),
    "mu": (lambda v: v > 1, "a number above 1", "mu = 10"),
    "tau": (lambda v: v > 1, "a number above 1", "tau = 2"),
    "balance_every": (lambda v: v >= 1, "a whole number of 1 or more", "balance_every = 5"),
    "alpha": (lambda v: 0 < v < 2, "between 0 and 2 (both excluded)", "alpha = 1.6"),
    "drop_rate": (lambda v: 0 <= v < 1, "a share in [0, 1)", "drop_rate = 0.2"),
    "max_staleness": (lambda v: v >= 0, "a whole number of 0 or more", "max_staleness = 3"),
    "seed": (lambda v: True, "a whole number", "seed = 0"),
}


def problems(settings: object, checks: dict) -> list[tuple[str, str, str]]:
    """``(setting, message, hint)`` for every setting of a dataclass that breaks its check;
    a whole number where the default is one, a number where it is a float."""
    out = []
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.name not in checks or value is None:
            continue
        test, must, example = checks[f.name]
        integral = isinstance(f.default, int) and not isinstance(f.default, bool)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not np.isfinite(value) or (integral and float(value) != int(value)) or not test(value):
            out.append((f.name, f"{f.name} = {value!r}: must be {must}", f"e.g. {example}"))
    return out


@dataclass(frozen=True, slots=True)
class Step:
    iteration: int
    primal: float
    dual: float
    rho: float
    seconds: float
    stale: tuple[str, ...] = ()  # agents whose answer was lost; their last one was used
    eps_primal: float = 0.0  # the tests the residuals were held to (see the module doc)
    eps_dual: float = 0.0
    worst: float = 0.0  # the largest violation of a coupling row (max norm, per unit)


@dataclass
class Run:
    """What a run produced: per-agent contributions, the trace and the message log."""

    converged: bool
    status: str  # converged / iteration_limit / diverged (the runner: not_converged)
    iterations: int
    trace: list[Step]
    messages: list[dict] = field(default_factory=list)
    u: np.ndarray | None = None
    rho: float = 1.0
    stopped_by: str = ""  # which criterion ended the run, in words (set by gridlang.decompose.run.stop_reason)


def admm(split: Split, executor, settings: Settings = Settings(), progress=None) -> Run:
    """Iterate until the coupling rows hold (see the module doc)."""
    subs = {s.agent: s for s in split.subproblems}
    m = split.n_coupling
    counts = np.maximum(split.contributors, 1)
    n = int(split.contributors.sum())
    rho = settings.rho if settings.rho is not None else _price_scale(split)
    u = np.zeros(m)
    y = {a: np.zeros(len(s.rows)) for a, s in subs.items()}
    z = dict(y)  # the consensus point: every row's contributions sum to zero
    age = dict.fromkeys(subs, 0)
    rng = np.random.default_rng(settings.seed)
    trace: list[Step] = []
    log: list[dict] = []
    start = time.perf_counter()
    status, growth = "iteration_limit", 0
    for k in range(1, settings.max_iter + 1):
        if k == 2 and settings.kill_agent is not None:
            executor.kill(settings.kill_agent)
        # every agent answers the first target, and a restarted one its next (until then the coordinator has no answer for its point)
        fresh = {settings.kill_agent} if k == 2 else set()
        lost = [a for a in subs if k > 1 and a not in fresh and settings.drop_rate and age[a] < settings.max_staleness and rng.random() < settings.drop_rate]
        answers = executor.solve_all({a: z[a] - u[s.rows] for a, s in subs.items() if a not in lost}, rho)
        for a in subs:
            age[a] = age[a] + 1 if a in lost else 0
        for a, msg in answers.items():
            log.append({"agent": a, "iteration": k, "rows": subs[a].rows, "y": msg})
        y, stale = {a: answers.get(a, y[a]) for a in subs}, tuple(lost)
        total, mixed = np.zeros(m), np.zeros(m)
        xhat = {a: settings.alpha * y[a] + (1 - settings.alpha) * z[a] for a in subs}
        for a, s in subs.items():
            np.add.at(total, s.rows, y[a])
            np.add.at(mixed, s.rows, xhat[a])
        ybar = mixed / counts
        u = u + ybar
        z_new = {a: xhat[a] - ybar[s.rows] for a, s in subs.items()}
        primal = float(np.linalg.norm(total))
        dual = rho * _norm(z_new[a] - z[a] for a in subs)
        z = z_new
        eps_primal = np.sqrt(m) * settings.tol + settings.rel * max(_norm(y.values()), _norm(z.values()))
        eps_dual = rho * (np.sqrt(n) * settings.tol + settings.rel * float(np.sqrt(counts @ u**2)))
        worst = float(np.max(np.abs(total), initial=0.0))
        trace.append(Step(k, primal, dual, rho, time.perf_counter() - start, stale, eps_primal, eps_dual, worst))
        if progress is not None:
            progress(trace[-1])
        if not np.isfinite(primal + dual):
            status = "diverged"
            break
        if primal <= eps_primal and dual <= eps_dual and worst <= FEASIBILITY_TOL:
            status = "converged"
            break
        growth = growth + 1 if len(trace) > 1 and primal > 10 * trace[-2].primal and primal > 1 else 0
        if growth >= 5:
            status = "diverged"
            break
        if k % settings.balance_every == 0:
            far_primal, far_dual = primal / eps_primal, dual / eps_dual
            if far_primal > settings.mu * far_dual:
                rho, u = rho * settings.tau, u / settings.tau
            elif far_dual > settings.mu * far_primal:
                rho, u = rho / settings.tau, u * settings.tau
    return Run(status == "converged", status, len(trace), trace, log, u, rho)


def _norm(parts) -> float:
    """The 2-norm of several vectors stacked."""
    return float(np.sqrt(sum(float(v @ v) for v in parts)))


def _price_scale(split: Split) -> float:
    """5 x the median non-zero cost coefficient over all agents (1 if there is none)."""
    costs = np.abs(np.concatenate([s.c for s in split.subproblems]))
    costs = costs[costs > 0]
    return 5.0 * float(np.median(costs)) if len(costs) else 1.0
