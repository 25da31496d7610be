"""The interactive price by exchange: the cloud (the game's operator) and the
edge (each prosumer) reach the joint dispatch by posting prices and answering
powers, each side optimising its own model (edge-cloud setting).

Every agent ``a`` keeps its own model (:func:`gridlang.decompose.split.split`:
its columns ``x_a``, its rows, its costs ``c_a``) and its contribution
``y_a = C_a x_a - d_a`` to the coupling rows (the nodal balances, active and
reactive power at its buses per step).  The joint dispatch is

    min  sum_a f_a(x_a)    s.t.  sum_a y_a = 0 at every coupling row,

with ``f_a(x_a) = c_a'x_a + eps sum_k e_k(x_a)^2``: the agent's cost plus
the settlement point's selection (:func:`gridlang.settle.select`) restricted
to its own targets ``e_k`` (its cost less its cost alone; for a prosumer, its
net export per step valued at the mean tariff).  The selection is separable
by agent, and for a linear program a convex regularisation is *exact* for a
small enough ``eps`` (its optima are the optimal points that minimise the
regulariser: Mangasarian; Friedlander and Tseng 2007), so the exchange aims
at the same unique point as the central settlement.

It is solved by exchange ADMM (Boyd et al. 2011, 7.3.2), every agent in
parallel.  At iteration k the cloud posts to every prosumer the prices of
its rows ``lambda^k = rho u^k`` (currency per p.u. energy: the value of power
at its bus and step) and a power target ``t_a^k = y_a^k - ybar^k``; each
answers with the power ``y_a^{k+1}`` from

    min  f_a(x_a) + lambda^k' y_a + rho/2 ||y_a - t_a^k||^2

(its own model, built once in Clarabel: only the linear term of ``y_a`` changes);
the cloud solves its own network the same way, then sets
``ybar^{k+1}`` (each row's imbalance over its contributors) and
``u^{k+1} = u^k + ybar^{k+1}``.  The proximal term is what makes a linear
prosumer's answer continuous in the price: a plain price iteration answers
in bang-bang fashion and oscillates.  It stops when the imbalance
``||sum_a y_a||`` (primal) and the move of the targets
``||(y^{k+1} - ybar^{k+1}) - (y^k - ybar^k)||`` (dual) are below ``tol``
and ``dual_tol`` (p.u.; 1e-7 is 1 W at a base of 10 MVA).  Only prices and powers cross; every message is logged
(:class:`Message`).  The settlement then bargains on the powers reached
(:func:`gridlang.game.settlement`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from gridlang.decompose.split import Split, Subproblem, split


@dataclass(frozen=True, slots=True)
class Settings:
    """``price = exchange(rho = 20, tol = 1e-9, dual_tol = 1e-7, max_iter = 1000, eps = 1e-4)``."""

    rho: float = 20.0  # proximal weight, per p.u. of the case's cost scale (see :func:`exchange`)
    tol: float = 1e-9  # p.u. power: the imbalance at the coupling rows
    dual_tol: float = 1e-7  # p.u. power: the move of the power targets
    max_iter: int = 1000
    eps: float = 1e-4  # selection weight, relative to rho

    NAMES = ("rho", "tol", "dual_tol", "max_iter", "eps")


@dataclass(frozen=True, slots=True)
class Message:
    """One message between the cloud and an agent of the edge."""

    iteration: int
    sender: str
    receiver: str
    kind: str  # 'price' (currency per p.u. energy, per coupling row) or 'power' (p.u., per coupling row)
    values: np.ndarray


@dataclass(frozen=True, slots=True, eq=False)
class Exchange:
    """What the exchange did: the price trace, residuals per iteration and the message log."""

    cloud: str
    edge: tuple[str, ...]
    prices: np.ndarray  # (iterations, edge, T) active-power price at each prosumer's bus, currency/MWh
    primal: np.ndarray  # (iterations,) MW
    dual: np.ndarray  # MW
    log: tuple[Message, ...]
    converged: bool
    x_by_label: np.ndarray  # the point reached, by linopy label

    @property
    def iterations(self) -> int:
        return len(self.primal)


class _Agent:
    """One agent's own model, kept alive across iterations (one Clarabel solver,
    :class:`gridlang.decompose.local.PersistentConic`, whose linear cost is
    updated in place): columns ``[x_a, y_a, s_a]`` (its variables, its coupling
    contributions, its selection targets), rows ``A x (sense) b``,
    ``C x - y = d``, ``E x - s = 0``, its cones."""

    def __init__(self, sub: Subproblem, E: sp.csr_matrix, e0: np.ndarray, rho: float, eps: float):
        from gridlang.decompose.local import PersistentConic

        self.sub = sub
        n, r, k = len(sub.c), len(sub.rows), E.shape[0]
        self.n, self.r, self.k = n, r, k
        A = sp.vstack(
            [
                sp.hstack([sub.A, sp.csr_matrix((sub.A.shape[0], r + k))]),
                sp.hstack([sub.C, -sp.identity(r), sp.csr_matrix((r, k))]),
                sp.hstack([E, sp.csr_matrix((k, r)), -sp.identity(k)]),
            ],
            format="csr",
        )
        b = np.concatenate([sub.b, sub.d, np.zeros(k)])
        sense = np.concatenate([np.asarray(sub.sense), np.full(r + k, "=")])
        lb = np.concatenate([sub.lb, np.full(r + k, -np.inf)])
        ub = np.concatenate([sub.ub, np.full(r + k, np.inf)])
        self.c = np.concatenate([sub.c, np.zeros(r), 2 * eps * e0])
        H = sp.block_diag([sub.Q, sp.diags(np.concatenate([np.full(r, rho), np.full(k, 2 * eps)]))], format="csr")
        self.solver = PersistentConic(A, b, sense, lb, ub, H, sp.csr_matrix(H.shape), 0.0, self.c, sub.cones, f"agent '{sub.agent}'")
        self.rho = rho

    def answer(self, price: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(y_a, x_a) of ``min f_a + price'y + rho/2 ||y - target||^2``: only y's linear cost changes."""
        q = self.c.copy()
        q[self.n : self.n + self.r] = price - self.rho * target
        self.solver.update(q, 0.0)
        x = self.solver.run()
        return x[self.n : self.n + self.r], x[: self.n]


def exchange(built, cloud: str, targets, settings: Settings = Settings()) -> Exchange:
    """The joint dispatch of ``built`` by exchange between ``cloud`` and the other agents (see the module doc).

    ``targets`` are the settlement's selection targets (linear expressions,
    one agent's columns each); ``rho`` and ``eps`` are scaled by the largest
    cost coefficient so that the settings do not depend on the case's units."""
    from gridlang.settle import _target_rows

    parts: Split = split(built)
    m = built.model
    pos = m.variables.label_index.label_to_pos
    n_all = len(np.asarray(m.matrices.vlabels))
    E, e0 = _target_rows(targets, pos, n_all)
    scale = max(1.0, float(np.abs(np.concatenate([s.c for s in parts.subproblems])).max()))
    rho, eps = settings.rho * scale, settings.eps * settings.rho / scale
    column_of = np.full(m._xCounter, -1)
    column_of[np.asarray(m.matrices.vlabels)] = np.arange(n_all)
    agents = []
    for sub in parts.subproblems:
        local = column_of[sub.vlabels]
        rows = np.flatnonzero(np.asarray(abs(E[:, local]).sum(axis=1)).ravel() > 0)
        agents.append(_Agent(sub, E[rows][:, local].tocsr(), e0[rows], rho, eps))
    count = np.maximum(parts.contributors, 1).astype(float)
    edge = tuple(a.sub.agent for a in agents if a.sub.agent != cloud)
    u = np.zeros(parts.n_coupling)
    y = [np.zeros(a.r) for a in agents]
    ybar = np.zeros(parts.n_coupling)
    price_map, unposted = _price_map(built, parts, agents, edge)
    log: list[Message] = []
    prices, primal, dual = [], [], []
    converged = False
    xs = [np.zeros(a.n) for a in agents]
    price_unit = built.case.system.base.factor("$/MWh")[0]
    for k in range(1, int(settings.max_iter) + 1):
        lam = rho * u
        new_y = []
        for i, a in enumerate(agents):
            rows = a.sub.rows
            price, target = lam[rows], y[i] - ybar[rows]
            if a.sub.agent != cloud:
                log.append(Message(k, cloud, a.sub.agent, "price", price))
                log.append(Message(k, cloud, a.sub.agent, "power", target))
            yi, xs[i] = a.answer(price, target)
            if a.sub.agent != cloud:
                log.append(Message(k, a.sub.agent, cloud, "power", yi))
            new_y.append(yi)
        total = np.zeros(parts.n_coupling)
        for a, yi in zip(agents, new_y):
            np.add.at(total, a.sub.rows, yi)
        new_bar = total / count
        u = u + new_bar
        moved = np.sqrt(sum(float(np.sum(((yi - new_bar[a.sub.rows]) - (y[i] - ybar[a.sub.rows])) ** 2)) for i, (a, yi) in enumerate(zip(agents, new_y))))
        y, ybar = new_y, new_bar
        primal.append(float(np.linalg.norm(total)))
        dual.append(float(moved))
        posted = np.where(unposted, np.nan, price_map @ (rho * u)) / price_unit
        prices.append(posted.reshape(len(edge), -1))
        if primal[-1] <= settings.tol and dual[-1] <= settings.dual_tol:
            converged = True
            break
    x_by_label = np.full(m._xCounter, np.nan)
    for a, x in zip(agents, xs):
        x_by_label[a.sub.vlabels] = x
    power_unit = built.case.system.base.factor("MW")[0]
    return Exchange(cloud, edge, np.asarray(prices), np.asarray(primal) / power_unit, np.asarray(dual) / power_unit, tuple(log), converged, x_by_label)


def _price_map(built, parts: Split, agents, edge: tuple[str, ...]) -> tuple[sp.csr_matrix, np.ndarray]:
    """(edge x T, coupling rows): the mean over each prosumer's active-power
    balance rows at a step (its buses), so ``map @ lambda`` is the price it is
    posted per step (NaN where it has none: all its injections are fixed)."""
    m = built.model
    steps = built.case.system.steps
    where = [m.constraints.get_label_position(int(label)) for label in parts.labels]
    active = np.array([str(name).endswith("balance_p") for name, _ in where])
    time = np.array([int(coords.get("time", 0)) for _, coords in where])
    by_agent = {a.sub.agent: a.sub.rows for a in agents}
    rows, cols = [], []
    for i, e in enumerate(edge):
        mine = by_agent[e][active[by_agent[e]]]
        rows.append(i * steps + time[mine])
        cols.append(mine)
    rows, cols = np.concatenate(rows).astype(int), np.concatenate(cols).astype(int)
    count = np.bincount(rows, minlength=len(edge) * steps).astype(float)
    weights = 1.0 / count[rows]
    out = sp.csr_matrix((weights, (rows, cols)), shape=(len(edge) * steps, parts.n_coupling))
    return out, count == 0
