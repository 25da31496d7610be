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
so it goes on iterating until all three hold or ``max_iter`` is reached.

**Penalty** (OSQP's adaptive rho, Stellato et al. 2020, sec. 5.2): with the
residuals scaled by their terms, ``r' = |r| / max(|y|, |z|)`` and
``s' = |s| / (rho |u|_N)``, the estimate ``rho sqrt(r' / s')`` replaces
``rho`` (``u`` rescaled) when it differs by more than a factor ``mu`` (5),
at most every ``balance_every`` (10) iterations and by at most ``tau`` at once.
A primal residual that *stalls* (above its test and down by less than half,
:data:`STALL`, since the last change) while the estimate points up by more
than ``sqrt(mu)`` multiplies ``rho`` by ``mu``: rows whose contributions sit at
their bounds wait for their price to drift, by ``rho`` x the imbalance per
iteration, to where a contribution moves, and Anderson acceleration cannot
extrapolate a drift (its residual differences vanish along it).  Measured on
``three_microgrids`` (cones): the residual sat at 3e-4 p.u. on one row for 25
iterations while the estimate stayed between 2.2 and 5.

**Penalties per contribution** (:func:`penalties`): contributions differ in scale
(an operator importing for a thousand prosumers against each prosumer), so
each gets its own penalty ``rho w_a,r``, ``w`` inversely proportional to the
contribution's range.  ADMM on the constraints ``y_a = z_a`` scaled by
``sqrt(rho w)`` keeps one price per row, ``rho u_r``, and shares the row's
imbalance out in proportion to ``1 / w``:

    v_a = z_a - u / w_a,    ybar = sum_a yhat_a,r / W_r,   W_r = sum_a 1 / w_a,r,
    z_a <- yhat_a - ybar / w_a,    u <- u + ybar

(``w = 1`` gives the iteration above).  The dual residual is
``rho |w (z^{k+1} - z^k)|``, the tests are unchanged.  Measured: a copper-plate
community of 1,000 prosumers did not converge with one rho (it collapsed); with
the penalties 10 to 10,000 agents take 21-27 iterations, LinDistFlow 20.

**Acceleration** (Zhang, O'Donoghue & Boyd 2020, as in SCS 3): one iteration
is a fixed-point map ``w -> T(w)`` of ``w = (sqrt(w) z, sqrt(W) u)`` (ADMM's own norm); type-II Anderson
acceleration with memory ``anderson`` (25) extrapolates the next ``w`` from the
last iterates (:class:`Anderson`), and a safeguard rejects an accelerated
point whose residual ``|w - T(w)|`` exceeds ``safeguard`` (1) x the last
plain point's: the run goes on from ``T`` of that point, with the memory
cleared (as it is when rho changes, which changes ``T``).  The residuals and
tests above are those of the plain step taken from the current point, and
the multipliers returned are ``T``'s, so stopping means what it meant
without acceleration.  Measured (default settings, iterations):
``three_microgrids`` 344 -> 99 (LinDistFlow), 278 -> 115 (SOC); ``community4``
135 -> 25; ``prosumers`` 63 -> 17; the copper-plate benchmark community of 10
agents 354 -> 29, of 50 1,025 -> 85.  Memory 25 (from 15) and the stall rule
above: ``three_microgrids`` 94 (SOC; 102 with either alone), 96 (LinDistFlow),
``community4`` 25, ``prosumers`` 17, the benchmark's communities 20-23.  Without Anderson (``anderson = 0``)
the adaptive rho alone leaves ``community4`` unconverged at 2,000.
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
from dataclasses import dataclass, field, fields, replace

import numpy as np

from gridlang.decompose.split import Split
from gridlang.solvers.result import FEASIBILITY_TOL


@dataclass(frozen=True, slots=True)
class Settings:
    rho: float | None = None  # None: 5 x the median cost coefficient, so that rho u is on the scale of prices
    tol: float = 1e-7  # absolute part, per unit of the case's base, per row
    rel: float = 1e-5  # relative part (see the module doc)
    max_iter: int = 2000
    mu: float = 5.0  # rho changes only when OSQP's estimate differs from it by more than this factor
    tau: float = 100.0  # the largest factor of one change of rho
    balance_every: int = 10  # iterations at least between two changes of rho
    anderson: int = 25  # memory of the Anderson acceleration (0: none)
    safeguard: float = 1.0  # an accelerated point is rejected when its fixed-point residual exceeds this x the last plain one's
    alpha: float = 1.6  # over-relaxation (1: none)
    drop_rate: float = 0.0  # fault injection: share of exchanges (target and answer) lost
    max_staleness: int = 3  # iterations the coordinator may go on with an agent's last answer
    seed: int = 0
    kill_agent: str | None = None  # fault injection: kill this agent's worker before iteration 2
    row_scaling: int = 1  # 1: a penalty per contribution, inversely to its range (see penalties); 0: one rho for all


#: the primal residual stalls when it fell by less than this share since the last change of rho (see the module doc)
STALL = 0.5


#: each setting's condition, as (test, what it must be, a value that works)
CHECKS = {
    "rho": (lambda v: v is None or v > 0, "a positive number", "rho = 100"),
    "tol": (lambda v: v > 0, "a positive number", "tol = 1e-7"),
    "rel": (lambda v: v >= 0, "zero or more", "rel = 1e-5"),
    "max_iter": (lambda v: v >= 1, "a whole number of 1 or more", "max_iter = 2000"),
    "mu": (lambda v: v > 1, "a number above 1", "mu = 10"),
    "tau": (lambda v: v > 1, "a number above 1", "tau = 100"),
    "balance_every": (lambda v: v >= 1, "a whole number of 1 or more", "balance_every = 10"),
    "anderson": (lambda v: 0 <= v <= 50, "a whole number from 0 to 50", "anderson = 25"),
    "safeguard": (lambda v: v >= 1, "a number of 1 or more", "safeguard = 1"),
    "alpha": (lambda v: 0 < v < 2, "between 0 and 2 (both excluded)", "alpha = 1.6"),
    "drop_rate": (lambda v: 0 <= v < 1, "a share in [0, 1)", "drop_rate = 0.2"),
    "max_staleness": (lambda v: v >= 0, "a whole number of 0 or more", "max_staleness = 3"),
    "seed": (lambda v: True, "a whole number", "seed = 0"),
    "row_scaling": (lambda v: v in (0, 1), "0 or 1", "row_scaling = 1"),
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


@dataclass(frozen=True, slots=True)
class AdmmState:
    """Where the iteration stands after ``iteration`` iterations: what the next one starts
    from (the consensus point ``z`` per stacked contribution, in the order of the split's
    subproblems and their rows; the scaled multiplier ``u`` per coupling row; ``rho``).
    Anderson's memory is not kept: a run continued from it starts with an empty one."""

    iteration: int
    z: np.ndarray
    u: np.ndarray
    rho: float


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


def admm(split: Split, executor, settings: Settings = Settings(), progress=None, start: AdmmState | None = None, keep=None) -> Run:
    """Iterate until the coupling rows hold (see the module doc).  ``start``: continue
    from this state instead of zero; ``keep(state)``: called with the state each
    iteration starts from (:class:`AdmmState`), e.g. to save it."""
    subs = {s.agent: s for s in split.subproblems}
    m = split.n_coupling
    counts = np.maximum(split.contributors, 1)
    n = int(split.contributors.sum())
    # every agent's contributions stacked in one vector of n entries: agent a's at [at[a], at[a] + len(rows))
    rows = np.concatenate([s.rows for s in subs.values()]) if subs else np.zeros(0, dtype=np.int64)
    at, offset = {}, 0
    for a, s in subs.items():
        at[a], offset = slice(offset, offset + len(s.rows)), offset + len(s.rows)
    pen = np.concatenate([s.penalty if s.penalty is not None else np.ones(len(s.rows)) for s in subs.values()]) if subs else np.zeros(0)
    share = np.bincount(rows, 1 / pen, minlength=m) if n else np.zeros(m)  # W_r = sum_a 1 / w_a,r (N_r when every w is 1)
    share[share <= 0] = 1.0
    seen = np.sqrt(counts)  # |u|_N = |seen u|: the prices the contributions see
    weight, root = np.sqrt(share), np.sqrt(pen)  # the fixed-point map's state is (sqrt(w) z, sqrt(W) u), ADMM's own norm
    rho = settings.rho if settings.rho is not None else _price_scale(split)
    u = np.zeros(m)
    y, z = np.zeros(n), np.zeros(n)  # z: the consensus point, every row's contributions sum to zero
    first = 1
    if start is not None:
        if start.z.shape != (n,) or start.u.shape != (m,):
            raise ValueError(f"the state to start from has {start.z.size} contributions and {start.u.size} rows, not {n} and {m}")
        first, z, u, rho = start.iteration + 1, start.z.copy(), start.u.copy(), float(start.rho)
        y = z.copy()
    age = dict.fromkeys(subs, 0)
    rng = np.random.default_rng(settings.seed)
    accel = Anderson(settings.anderson)
    trace: list[Step] = []
    log: list[dict] = []
    began = time.perf_counter()
    status, growth, last_change = "iteration_limit", 0, first - 1
    base: tuple[np.ndarray, np.ndarray, float] | None = None  # T(w) at the last plain point and |w - T(w)| there
    for k in range(first, first + settings.max_iter):  # max_iter counts this run's iterations
        if keep is not None and k > 1:
            keep(AdmmState(k - 1, z.copy(), u.copy(), float(rho)))
        if k == 2 and settings.kill_agent is not None:
            executor.kill(settings.kill_agent)
        # every agent answers the first target, and a restarted one its next (until then the coordinator has no answer for its point)
        fresh = {settings.kill_agent} if k == 2 else set()
        lost = [a for a in subs if k > 1 and a not in fresh and settings.drop_rate and age[a] < settings.max_staleness and rng.random() < settings.drop_rate]
        v = z - u[rows] / pen
        answers = executor.solve_all({a: v[at[a]] for a in subs if a not in lost}, rho)
        for a in subs:
            age[a] = age[a] + 1 if a in lost else 0
        y = y.copy()
        for a, msg in answers.items():
            log.append({"agent": a, "iteration": k, "rows": subs[a].rows, "y": msg})
            y[at[a]] = msg
        stale = tuple(lost)
        # one step of the plain map T(z, u) (over-relaxed exchange ADMM)
        total = np.bincount(rows, y, minlength=m)
        xhat = settings.alpha * y + (1 - settings.alpha) * z
        ybar = np.bincount(rows, xhat, minlength=m) / share  # the imbalance, shared out inversely to the penalties
        u_new = u + ybar
        z_new = xhat - ybar[rows] / pen
        primal = float(np.linalg.norm(total))
        dual = rho * float(np.linalg.norm(pen * (z_new - z)))
        eps_primal = np.sqrt(m) * settings.tol + settings.rel * max(float(np.linalg.norm(y)), float(np.linalg.norm(z_new)))
        eps_dual = rho * (np.sqrt(n) * settings.tol + settings.rel * float(np.linalg.norm(seen * u_new)))
        worst = float(np.max(np.abs(total), initial=0.0))
        trace.append(Step(k, primal, dual, rho, time.perf_counter() - began, stale, eps_primal, eps_dual, worst))
        if progress is not None:
            progress(trace[-1])
        if not np.isfinite(primal + dual):
            status = "diverged"
            break
        if primal <= eps_primal and dual <= eps_dual and worst <= FEASIBILITY_TOL:
            z, u, status = z_new, u_new, "converged"
            break
        growth = growth + 1 if len(trace) > 1 and primal > 10 * trace[-2].primal and primal > 1 else 0
        if growth >= 5:
            status = "diverged"
            break
        # the adaptive rho of OSQP (Stellato et al. 2020, sec. 5.2): balance the scaled residuals
        if k - last_change >= settings.balance_every:
            scaled_primal = primal / max(float(np.linalg.norm(y)), float(np.linalg.norm(z_new)), 1e-12)
            scaled_dual = dual / max(rho * float(np.linalg.norm(seen * u_new)), 1e-12)
            factor = float(np.sqrt(scaled_primal / max(scaled_dual, 1e-300)))
            factor = min(max(factor, 1 / settings.tau), settings.tau)
            # a stalled primal residual (prices drifting towards the point where pinned contributions move) with
            # the estimate pointing up: rho x mu (see the module doc)
            stalled = primal > eps_primal and primal > STALL * trace[last_change - first + 1].primal
            up = factor > settings.mu or (stalled and factor > np.sqrt(settings.mu))
            if up:
                factor = max(factor, min(settings.mu, settings.tau))
            if up or factor < 1 / settings.mu:
                rho, u_new, last_change = rho * factor, u_new / factor, k
                z, u, base = z_new, u_new, None
                accel.reset()
                continue
        # Anderson acceleration of T with a safeguard (Zhang, O'Donoghue & Boyd 2020; SCS 3)
        w, tw = np.concatenate([root * z, weight * u]), np.concatenate([root * z_new, weight * u_new])
        residual = float(np.linalg.norm(w - tw))
        if base is not None and accel.pending and residual > settings.safeguard * base[2]:
            z, u = base[0], base[1]  # the accelerated point is worse: back to the plain step taken from the last good point
            accel.reset()
            base = None
            continue
        base = (z_new, u_new, residual)
        nxt = accel.step(w, tw)
        z, u = nxt[:n] / root, nxt[n:] / weight
    return Run(status == "converged", status, len(trace), trace, log, u, rho)


class Anderson:
    """Type-II Anderson acceleration of a fixed-point map ``w -> T(w)`` with memory
    ``mem`` (Walker & Ni 2011; Zhang, O'Donoghue & Boyd 2020): with the residuals
    ``g = w - T(w)`` and the last ``mem`` differences ``dW``, ``dG`` of points and
    residuals, the next point is

        w+ = T(w) - (dW - dG) gamma,    gamma = argmin |g - dG gamma|^2 + eps |gamma|^2,

    ``eps`` a small multiple of ``|dG|_F^2`` (a Tikhonov term keeps the least squares
    well posed).  An extrapolation longer than ``reach`` (10) x the plain step
    ``|g|`` is not taken (nearly parallel differences make ``gamma`` huge; SCS
    bounds the weights likewise): the plain ``T(w)`` is returned and the memory
    cleared.  ``mem = 0`` gives the plain map.  ``pending`` says that the last
    point returned was an accelerated one (the caller's safeguard judges it)."""

    def __init__(self, mem: int, reach: float = 10.0) -> None:
        self.mem, self.reach = mem, reach
        self.reset()

    def reset(self) -> None:
        self.prev: tuple[np.ndarray, np.ndarray] | None = None
        self.dW: list[np.ndarray] = []
        self.dG: list[np.ndarray] = []
        self.pending = False

    def step(self, w: np.ndarray, tw: np.ndarray) -> np.ndarray:
        g = w - tw
        if self.mem == 0:
            return tw
        if self.prev is not None:
            self.dW.append(w - self.prev[0])
            self.dG.append(g - self.prev[1])
            if len(self.dW) > self.mem:
                self.dW.pop(0)
                self.dG.pop(0)
        self.prev = (w, g)
        if not self.dW:
            self.pending = False
            return tw
        G = np.column_stack(self.dG)
        gram = G.T @ G
        eps = 1e-10 * float(np.trace(gram)) + 1e-300
        try:
            gamma = np.linalg.solve(gram + eps * np.eye(len(gram)), G.T @ g)
        except np.linalg.LinAlgError:
            self.pending = False
            return tw
        out = tw - (np.column_stack(self.dW) - G) @ gamma
        # a step much longer than the plain one comes from nearly parallel differences (gamma huge): not taken
        if not np.all(np.isfinite(out)) or np.linalg.norm(out - tw) > self.reach * np.linalg.norm(g):
            self.reset()
            return tw
        self.pending = True
        return out


def penalties(split: Split) -> Split:
    """The split with a relative penalty ``w_a,r`` on every contribution (``Subproblem.penalty``),
    inversely proportional to its range: ``s_a,r = sum_j |C_rj| (ub_j - lb_j)`` over the
    agent's columns in the row, or, when one of them is unbounded, the sum of the other
    contributors' ranges (it can balance the row alone), and ``w_a,r = s_ref / s_a,r`` with
    ``s_ref`` the median range, rounded to a whole power of ten (ranges within a factor of
    about 3 of each other keep one penalty) and within [1e-6, 1e3].  ADMM with these weights (the constraint
    ``y_a = z_a`` scaled by ``sqrt(rho w_a,r)``) shares each row's imbalance out in
    proportion to the ranges: an operator importing for a thousand prosumers takes a
    thousand prosumers' share, where one rho for all asked it to move as little as each of them."""
    subs = split.subproblems
    if not subs:
        return split
    ranges = []
    for s in subs:
        C = abs(s.C).tocsc()
        width = s.ub - s.lb
        bounded = np.isfinite(width)
        finite = C[:, bounded] @ width[bounded] if bounded.any() else np.zeros(C.shape[0])
        free = (C[:, ~bounded] @ np.ones(int((~bounded).sum())) > 0) if (~bounded).any() else np.zeros(C.shape[0], dtype=bool)
        ranges.append((np.asarray(finite, dtype=float).ravel(), np.asarray(free).ravel()))
    rows = np.concatenate([s.rows for s in subs])
    finite = np.concatenate([f for f, _ in ranges])
    free = np.concatenate([u for _, u in ranges])
    others = np.bincount(rows, np.where(free, 0.0, finite), minlength=split.n_coupling)  # the bounded contributors' ranges per row
    known = finite[~free & (finite > 0)]
    if not len(known):
        return split
    ref = float(np.median(known))
    scale = np.where(free, others[rows], finite)
    scale = np.where(scale > 0, scale, ref)
    w = np.clip(10.0 ** np.round(np.log10(ref / scale)), 1e-6, 1e3)  # whole powers of ten: ranges alike keep one rho
    at = np.cumsum([0] + [len(s.rows) for s in subs])
    out = tuple(replace(s, penalty=w[at[i] : at[i + 1]]) for i, s in enumerate(subs))
    return replace(split, subproblems=out)


def _norm(parts) -> float:
    """The 2-norm of several vectors stacked."""
    return float(np.sqrt(sum(float(v @ v) for v in parts)))


def _price_scale(split: Split) -> float:
    """5 x the median non-zero cost coefficient over all agents (1 if there is none)."""
    costs = np.abs(np.concatenate([s.c for s in split.subproblems]))
    costs = costs[costs > 0]
    return 5.0 * float(np.median(costs)) if len(costs) else 1.0
