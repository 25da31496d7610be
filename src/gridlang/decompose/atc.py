"""Analytical target cascading: the network owner above, the other agents below.

The upper level (the operator) chooses its own variables and a target ``t_i``
for every other agent's contribution to the coupling rows, so that the rows
hold with the targets in place of the contributions:

    upper:  min f_u(x_u) + sum_i v_i't_i + |w (t_i - y_i)|^2   s.t.  C_u x_u - d_u + sum_i t_i = 0
    lower:  min f_i(x_i) - v_i'y_i + |w (t_i - y_i)|^2,        y_i = C_i x_i - d_i

(the lower problem is the agent's proximal subproblem with ``rho = 2 w^2`` and
target ``t_i + v_i / (2 w^2)``, so the same persistent models and executors
serve).  After each pass ``v <- v + 2 w^2 (t - y)``, and the weight grows,
``w <- beta w``, when the inconsistency ``|t - y|`` fell by less than a
factor ``gamma``.

**Stopping**, relative to the size of the terms as in :mod:`admm`: with
``n`` targets, the consistency test is

    |t - y| <= sqrt(n) tol + rel max(|t|, |y|),

the change of the total cost ``f = sum_a f_a`` between passes must be at most
``cost_rel sum_a |f_a|`` (the agents' costs' magnitudes), and the whole model
must hold: at the assembled point the coupling rows are violated by
``E (y - t)`` (the upper level's rows hold with the targets), whose largest
entry must be at most :data:`~gridlang.solvers.result.FEASIBILITY_TOL`.  Until
all three hold the cascade goes on, up to ``max_iter`` passes.

**Resuming**: the cascade is a map from one pass's end state, :class:`AtcState`
(the passes done, the responses ``y``, the multipliers ``v``, the weight, the
last inconsistency and total cost), to the next; ``keep`` is given that state
after every pass that does not stop the run, and ``start`` continues from one
(then ``max_iter`` counts the passes of this run).  Without ``start`` the run
starts from ``y = v = 0`` as always.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from gridlang.decompose.admm import Run, Step, _price_scale
from gridlang.decompose.local import PersistentConic
from gridlang.decompose.split import Split, Subproblem
from gridlang.errors import GridError, Span
from gridlang.solvers.result import FEASIBILITY_TOL


@dataclass(frozen=True, slots=True, eq=False)
class AtcState:
    """Where the cascade stands after ``iteration`` passes: what the next pass starts from.

    ``y`` and ``v`` are per target, in the order of the lower agents in the split
    (each agent's coupling rows in its ``rows`` order)."""

    iteration: int
    y: np.ndarray
    v: np.ndarray
    weight: float
    previous_gap: float  # |t - y| of the last pass (the weight grows when the next one falls by less than gamma)
    previous_cost: float  # the total cost of the last pass (the next pass's cost change is measured from it)


@dataclass(frozen=True, slots=True)
class Settings:
    weight: float | None = None  # initial w; None: from the price scale
    beta: float = 1.1  # growth of the weight; faster growth stops earlier, at a worse point
    gamma: float = 0.9
    tol: float = 1e-7  # absolute part of the consistency test, per unit, per target
    rel: float = 1e-5  # relative part of the consistency test
    cost_rel: float = 1e-6  # change of the total cost between passes, relative to the agents' costs
    max_iter: int = 300


#: each setting's condition, as (test, what it must be, a value that works); see admm.problems
CHECKS = {
    "weight": (lambda v: v > 0, "a positive number", "weight = 10"),
    "beta": (lambda v: v >= 1, "a number of 1 or more (the weight never shrinks)", "beta = 1.1"),
    "gamma": (lambda v: 0 < v <= 1, "a share in (0, 1]", "gamma = 0.9"),
    "tol": (lambda v: v > 0, "a positive number", "tol = 1e-7"),
    "rel": (lambda v: v >= 0, "zero or more", "rel = 1e-5"),
    "cost_rel": (lambda v: v >= 0, "zero or more", "cost_rel = 1e-6"),
    "max_iter": (lambda v: v >= 1, "a whole number of 1 or more", "max_iter = 300"),
}


class _Upper:
    """The operator's problem with the targets as extra columns (one persistent Clarabel model)."""

    def __init__(self, sub: Subproblem, lower: list[Subproblem], m: int) -> None:
        self.sub, self.n = sub, len(sub.vlabels)
        sizes = [len(s.rows) for s in lower]
        self.slices = np.split(np.arange(sum(sizes)), np.cumsum(sizes)[:-1]) if lower else []
        self.nt = nt = sum(sizes)
        self.target_rows = np.concatenate([s.rows for s in lower]) if lower else np.zeros(0, dtype=np.int64)  # the coupling row of every target
        own = sub.C.tocoo()
        C = sp.csr_matrix((own.data, (sub.rows[own.row], own.col)), shape=(m, self.n))
        E = sp.csr_matrix((np.ones(nt), (self.target_rows, np.arange(nt))), shape=(m, nt))
        d = np.zeros(m)
        np.add.at(d, sub.rows, sub.d)
        self.rows = (
            sp.vstack([sp.hstack([sub.A, sp.csr_matrix((sub.A.shape[0], nt))]), sp.hstack([C, E])], format="csr"),
            np.concatenate([sub.b, d]),
            np.concatenate([sub.sense, np.full(m, "=")]),
            np.concatenate([sub.lb, np.full(nt, -np.inf)]),
            np.concatenate([sub.ub, np.full(nt, np.inf)]),
        )
        self.model: PersistentConic | None = None

    def solve(self, weight: float, y: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w2 = 2 * weight**2
        q = np.concatenate([self.sub.c, v - w2 * y])
        if self.model is None:
            own = sp.block_diag([self.sub.Q, sp.csr_matrix((self.nt, self.nt))], format="csr")
            targets = sp.block_diag([sp.csr_matrix((self.n, self.n)), sp.identity(self.nt)], format="csr")
            self.model = PersistentConic(*self.rows, own, targets, w2, q, self.sub.cones, f"the upper level ('{self.sub.agent}')")
        else:
            self.model.update(q, w2)
        x = self.model.run()
        return x[: self.n], x[self.n :]


def atc(split: Split, upper_agent: str, executor, settings: Settings = Settings(), progress=None,
        start: AtcState | None = None, keep=None) -> tuple[Run, np.ndarray]:
    """Cascade until targets and responses agree (see the module doc); returns the run and the operator's point.

    ``start``: continue from this state instead of zero; ``keep(state)``: called with the
    state after every pass that does not end the run."""
    subs = {s.agent: s for s in split.subproblems}
    if upper_agent not in subs:
        raise GridError(Span("<decomposition>", 0, 0), f"ATC needs the network owner '{upper_agent}' as an agent", "give the network an owner")
    lower = [s for s in split.subproblems if s.agent != upper_agent]
    upper = _Upper(subs[upper_agent], lower, split.n_coupling)
    weight = settings.weight if settings.weight is not None else np.sqrt(_price_scale(split) / 2)
    nt = upper.nt
    y, v = np.zeros(nt), np.zeros(nt)
    previous_gap, previous_cost, first = np.inf, np.inf, 1
    if start is not None:
        if start.y.shape != (nt,) or start.v.shape != (nt,):
            raise ValueError(f"ATC start state has {start.y.shape} responses and {start.v.shape} multipliers for {nt} targets")
        y, v, weight = start.y.astype(float), start.v.astype(float), float(start.weight)
        previous_gap, previous_cost, first = float(start.previous_gap), float(start.previous_cost), start.iteration + 1
    trace, log = [], []
    began = time.perf_counter()
    status = "iteration_limit"
    x_upper = np.zeros(upper.n)
    for k in range(first, first + settings.max_iter):
        x_upper, t = upper.solve(weight, y, v)
        rho = 2 * weight**2
        answers = executor.solve_all({s.agent: t[sl] + v[sl] / rho for s, sl in zip(lower, upper.slices)}, rho)
        for s, sl in zip(lower, upper.slices):
            log.append({"agent": s.agent, "iteration": k, "rows": s.rows, "y": answers[s.agent]})
            y[sl] = answers[s.agent]
        gap = float(np.linalg.norm(t - y))
        parts = [float(upper.sub.c @ x_upper + 0.5 * x_upper @ (upper.sub.Q @ x_upper)), *executor.costs().values()]
        cost = sum(parts)
        violation = np.zeros(split.n_coupling)
        np.add.at(violation, upper.target_rows, y - t)
        worst = float(np.max(np.abs(violation), initial=0.0))
        eps = np.sqrt(nt) * settings.tol + settings.rel * max(float(np.linalg.norm(t)), float(np.linalg.norm(y)))
        trace.append(Step(k, gap, abs(cost - previous_cost), weight, time.perf_counter() - began, (), eps, settings.cost_rel * sum(map(abs, parts)), worst))
        if progress is not None:
            progress(trace[-1])
        if not np.isfinite(gap + cost):
            status = "diverged"
            break
        if gap <= eps and trace[-1].dual <= trace[-1].eps_dual and worst <= FEASIBILITY_TOL:
            status = "converged"
            break
        v = v + rho * (t - y)
        if gap > settings.gamma * previous_gap:
            weight *= settings.beta
        previous_gap, previous_cost = gap, cost
        if keep is not None:
            keep(AtcState(k, y.copy(), v.copy(), float(weight), previous_gap, previous_cost))
    return Run(status == "converged", status, len(trace), trace, log, None, 2 * weight**2), x_upper
