"""The interactive price by exchange: the cloud (the game's operator) and the
edge (each prosumer) reach the settlement point by posting prices and
answering powers, each side optimising its own model (edge-cloud setting).

Every agent ``a`` keeps its own model (:func:`gridlang.decompose.split.split`:
its columns ``x_a``, its rows, its costs ``c_a``) and its contribution
``y_a = C_a x_a - d_a`` to the coupling rows (the nodal balances at its buses
per step).  Both phases are exchange ADMM (Boyd et al. 2011, 7.3.2), every
agent in parallel.  At iteration k the cloud posts to every prosumer the
prices of its rows ``lambda^k = rho u^k`` and a power target
``t_a^k = y_a^k - ybar^k``; each answers with the power ``y_a^{k+1}`` from

    min  f_a(x_a) + lambda^k' y_a + rho/2 ||y_a - t_a^k||^2

over its own model (built once, a Clarabel solver whose linear cost is
updated in place); the cloud solves its own network the same way, then sets
``ybar^{k+1}`` (each row's imbalance over its contributors) and
``u^{k+1} = u^k + ybar^{k+1}``.  The proximal term makes a linear
prosumer's answer continuous in the price: a plain price iteration answers in
bang-bang fashion and oscillates (measured on cases/prosumers.grid: 305
iterations at rho = 2, none converged in 400 at rho = 0.2, 60 at rho = 20).
A phase stops when the imbalance ``||sum_a y_a||`` and the move of the targets
``||(y^{k+1} - ybar^{k+1}) - (y^k - ybar^k)||`` are below ``tol`` and
``dual_tol`` (p.u.; 1e-9 is 0.01 W at a base of 10 MVA).

1. *Dispatch*: ``f_a = c_a'x_a``.  The prices reached are the value of power
   at each bus and step (an optimal dual of the joint problem).
2. *Settlement point*: optimal dispatches are many (batteries, vehicles and
   flexible loads shift the same energy), so each agent keeps its own
   optimal face at the prices reached (:func:`_face`; by complementary
   slackness the joint optimal points are exactly the points of every face
   that balance the rows) and the exchange runs again with
   ``f_a = sum_k e_k(x_a)^2``, the selection of :func:`gridlang.settle.select`
   restricted to the agent's own targets (its cost less its cost alone; a
   prosumer's net export per step valued at the mean tariff): the selection
   is separable by agent, so this reaches the central settlement point.  Rho
   is balanced against the residuals (Boyd et al., 3.4.1); what the cloud
   posts are the selection's multipliers, and the price trace keeps the
   prices of phase 1.

Only prices and powers cross; every message is logged (:class:`Message`).
The bargain is then struck on the powers reached (:func:`gridlang.game.settlement`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from gridlang.decompose.split import Split, Subproblem, split


@dataclass(frozen=True, slots=True)
class Settings:
    """``price = exchange(rho = 20, tol = 1e-9, dual_tol = 1e-7, max_iter = 1000, face_tol = 1e-4)``; ``max_iter`` per phase."""

    rho: float = 20.0  # proximal weight, per p.u. of the case's cost scale (see :func:`exchange`)
    tol: float = 1e-9  # p.u. power: the imbalance at the coupling rows
    dual_tol: float = 1e-7  # p.u. power: the move of the power targets
    max_iter: int = 1000
    face_tol: float = 1e-4  # a reduced cost at the prices reached is nonzero above this share of the largest cost

    NAMES = ("rho", "tol", "dual_tol", "max_iter", "face_tol")


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
    prices: np.ndarray  # (iterations, edge, T) value of power at each prosumer's bus (as <network>-price_p), currency/MWh (phase 2 keeps phase 1's last)
    primal: np.ndarray  # (iterations,) MW
    dual: np.ndarray  # MW
    log: tuple[Message, ...]
    converged: bool
    x_by_label: np.ndarray  # the point reached, by linopy label
    dispatch_iterations: int = 0  # phase 1 (the rest select the settlement point)

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
        # the proximal weight rho is the solver's updatable Hessian weight (residual balancing changes it)
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
        H0 = sp.block_diag([sub.Q, sp.diags(np.concatenate([np.zeros(r), np.full(k, 2 * eps)]))], format="csr")
        H1 = sp.diags(np.concatenate([np.zeros(n), np.ones(r), np.zeros(k)]), format="csr")
        self.solver = PersistentConic(A, b, sense, lb, ub, H0, H1, rho, self.c, sub.cones, f"agent '{sub.agent}'")

    def answer(self, price: np.ndarray, target: np.ndarray, rho: float) -> tuple[np.ndarray, np.ndarray]:
        """(y_a, x_a) of ``min f_a + price'y + rho/2 ||y - target||^2``: only y's linear cost (and rho) change."""
        q = self.c.copy()
        q[self.n : self.n + self.r] = price - rho * target
        self.solver.update(q, rho)
        x = self.solver.run()
        return x[self.n : self.n + self.r], x[: self.n]


def exchange(built, cloud: str, targets, settings: Settings = Settings()) -> Exchange:
    """The settlement point of ``built`` by exchange between ``cloud`` and the other agents (see the module doc).

    ``targets`` are the settlement's selection targets (linear expressions,
    one agent's columns each, as :func:`gridlang.settle.select` gets them).
    ``rho`` is scaled by the largest cost coefficient (phase 1) and by the
    square of the largest target coefficient (phase 2), so that the settings
    do not depend on the case's units."""
    from gridlang.settle import _target_rows

    parts: Split = split(built)
    m = built.model
    pos = m.variables.label_index.label_to_pos
    n_all = len(np.asarray(m.matrices.vlabels))
    E, e0 = _target_rows(targets, pos, n_all)
    scale = max(1.0, float(np.abs(np.concatenate([s.c for s in parts.subproblems])).max()))
    column_of = np.full(m._xCounter, -1)
    column_of[np.asarray(m.matrices.vlabels)] = np.arange(n_all)
    mine = []
    for sub in parts.subproblems:
        local = column_of[sub.vlabels]
        rows = np.flatnonzero(np.asarray(abs(E[:, local]).sum(axis=1)).ravel() > 0)
        mine.append((E[rows][:, local].tocsr(), e0[rows]))
    edge = tuple(sub.agent for sub in parts.subproblems if sub.agent != cloud)
    run = _Run(parts, cloud, edge, settings)
    price_map, unposted = _price_map(built, parts, parts.subproblems, edge)
    price_unit = built.case.system.base.factor("$/MWh")[0]

    # phase 1: the dispatch, each agent at its own cost
    rho = settings.rho * scale
    agents = [_Agent(sub, Ek, ek, rho, 0.0) for sub, (Ek, ek) in zip(parts.subproblems, mine)]
    # the trace: the value of power at each prosumer's bus (-lambda: the balance rows' sign, as the network's price_p)
    first = run.admm(agents, rho, lambda lam: (np.where(unposted, np.nan, -(price_map @ lam)) / price_unit).reshape(len(edge), -1))
    lam = rho * run.u
    dispatched = len(run.primal)
    if not first:  # faces at prices not reached mean nothing: report the dispatch as it stands
        return _result(built, run, agents, cloud, edge, False, dispatched)
    # phase 2: the settlement point, each agent on its own optimal face at the prices reached
    faces = []
    for sub, a in zip(parts.subproblems, agents):
        c = sub.c + sub.C.T @ lam[sub.rows]
        sense, lb, ub = _face(sub, c, settings.face_tol)
        faces.append(replace(sub, sense=sense, lb=lb, ub=ub, c=np.zeros_like(sub.c)))
    weight = max(1.0, float(abs(E).max()))
    rho2 = settings.rho * weight**2
    agents = [_Agent(sub, Ek, ek, rho2, 1.0) for sub, (Ek, ek) in zip(faces, mine)]
    run.reset()
    second = run.admm(agents, rho2, None, balance=True)
    return _result(built, run, agents, cloud, edge, second, dispatched)


def _result(built, run: "_Run", agents, cloud: str, edge: tuple[str, ...], converged: bool, dispatched: int) -> Exchange:
    m = built.model
    x_by_label = np.full(m._xCounter, np.nan)
    for a, x in zip(agents, run.x):
        x_by_label[a.sub.vlabels] = x
    power_unit = built.case.system.base.factor("MW")[0]
    prices = run.prices + run.prices[-1:] * (len(run.primal) - len(run.prices))
    return Exchange(cloud, edge, np.asarray(prices), np.asarray(run.primal) / power_unit, np.asarray(run.dual) / power_unit, tuple(run.log), converged, x_by_label, dispatched)


class _Run:
    """Exchange ADMM among the agents (see the module doc), logging every message."""

    def __init__(self, parts: Split, cloud: str, edge: tuple[str, ...], settings: Settings):
        self.parts, self.cloud, self.edge, self.settings = parts, cloud, edge, settings
        self.count = np.maximum(parts.contributors, 1).astype(float)
        self.log: list[Message] = []
        self.prices, self.primal, self.dual = [], [], []
        self.k = 0
        self.reset()

    def reset(self) -> None:
        self.u = np.zeros(self.parts.n_coupling)
        self.ybar = np.zeros(self.parts.n_coupling)
        self.y = [np.zeros(len(sub.rows)) for sub in self.parts.subproblems]
        self.x = [np.zeros(len(sub.c)) for sub in self.parts.subproblems]

    def admm(self, agents, rho: float, posted, balance: bool = False) -> bool:
        """Iterate until the imbalance and the move of the targets are below the tolerances;
        with ``balance``, rho doubles while the imbalance is over ten times the move
        and halves in the opposite case (residual balancing, Boyd et al. 2011, 3.4.1)."""
        s = self.settings
        for _ in range(int(s.max_iter)):
            self.k += 1
            lam = rho * self.u
            new_y = []
            for i, a in enumerate(agents):
                rows = a.sub.rows
                price, target = lam[rows], self.y[i] - self.ybar[rows]
                if a.sub.agent != self.cloud:
                    self.log.append(Message(self.k, self.cloud, a.sub.agent, "price", price))
                    self.log.append(Message(self.k, self.cloud, a.sub.agent, "power", target))
                yi, self.x[i] = a.answer(price, target, rho)
                if a.sub.agent != self.cloud:
                    self.log.append(Message(self.k, a.sub.agent, self.cloud, "power", yi))
                new_y.append(yi)
            total = np.zeros(self.parts.n_coupling)
            for a, yi in zip(agents, new_y):
                np.add.at(total, a.sub.rows, yi)
            new_bar = total / self.count
            self.u = self.u + new_bar
            moved = sum(float(np.sum(((yi - new_bar[a.sub.rows]) - (self.y[i] - self.ybar[a.sub.rows])) ** 2)) for i, (a, yi) in enumerate(zip(agents, new_y)))
            self.y, self.ybar = new_y, new_bar
            self.primal.append(float(np.linalg.norm(total)))
            self.dual.append(float(np.sqrt(moved)))
            if posted is not None:
                self.prices.append(posted(rho * self.u))
            if self.primal[-1] <= s.tol and self.dual[-1] <= s.dual_tol:
                return True
            if balance and self.primal[-1] > 10 * self.dual[-1]:
                rho, self.u = 2 * rho, self.u / 2  # the prices rho u stay
            elif balance and self.dual[-1] > 10 * self.primal[-1]:
                rho, self.u = rho / 2, self.u * 2
        return False


def _price_map(built, parts: Split, subs, edge: tuple[str, ...]) -> tuple[sp.csr_matrix, np.ndarray]:
    """(edge x T, coupling rows): the mean over each prosumer's active-power
    balance rows at a step (its buses), so ``map @ lambda`` is the price it is
    posted per step (NaN where it has none: all its injections are fixed)."""
    m = built.model
    steps = built.case.system.steps
    where = [m.constraints.get_label_position(int(label)) for label in parts.labels]
    active = np.array([str(name).endswith("balance_p") for name, _ in where])
    time = np.array([int(coords.get("time", 0)) for _, coords in where])
    by_agent = {sub.agent: sub.rows for sub in subs}
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


def _face(sub: Subproblem, c: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sense, lb, ub) of an agent's own optimal face for the cost ``c`` (its own
    cost plus the prices reached on its coupling rows): by complementary
    slackness with HiGHS's duals, every column with a reduced cost above
    ``share`` of the largest cost is fixed at its bound and every row with
    such a dual holds with equality (as :func:`gridlang.settle.select` finds
    the whole case's face, with a tolerance for prices that are only as exact
    as the exchange's convergence)."""
    from scipy.optimize import linprog

    sense = np.asarray(sub.sense).copy()
    if not len(c):  # an agent without variables (fixed loads only)
        return sense, sub.lb, sub.ub
    A = sub.A.tocsr()
    eq, le, ge = sense == "=", sense == "<", sense == ">"
    upper = sp.vstack([A[le], -A[ge]], format="csr")
    rhs = np.concatenate([sub.b[le], -sub.b[ge]])
    bounds = np.column_stack([sub.lb, sub.ub])
    res = linprog(c, A_ub=upper if upper.shape[0] else None, b_ub=rhs if upper.shape[0] else None, A_eq=A[eq] if eq.any() else None, b_eq=sub.b[eq] if eq.any() else None, bounds=bounds, method="highs-ds")
    if res.status != 0:
        raise RuntimeError(f"agent '{sub.agent}': its own problem at the prices reached ended: {res.message}")
    tol = share * max(1.0, float(np.abs(c).max(initial=0.0)))
    lb, ub = sub.lb.copy(), sub.ub.copy()
    at_lower, at_upper = np.abs(res.lower.marginals) > tol, np.abs(res.upper.marginals) > tol
    ub[at_lower], lb[at_upper] = lb[at_lower], ub[at_upper]
    if upper.shape[0]:
        rows = np.flatnonzero(le | ge)
        sense[rows[np.abs(res.ineqlin.marginals) > tol]] = "="
    return sense, lb, ub
