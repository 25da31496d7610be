"""The settlement of a case in parts: each side on its own compiled model.

Central stage 2 (:func:`gridlang.settle.settle_all`) settles on the point that
:func:`gridlang.settle.select` chooses among the optimal points of the whole
model: ``argmin sum_k e_k(x)^2`` over the optimal face, with targets ``e_k``
(every member's cost less its cost alone, its fees; in a game every agent's
cost less its cost alone and every prosumer's net export per step valued at
the mean tariff).  Each target is linear in the columns of one agent (a
market's sales belong to the seller), so the selection splits by agent, and
by complementary slackness the optimal points of the whole model are the
points of every agent's own optimal face (at the coupling rows' optimal
prices) that balance the coupling rows.  From the parts (:func:`settle_parts`):

1. *Dispatch* (stage 1): exchange ADMM among the separately compiled sides
   (:mod:`gridlang.decompose.exchange`'s agents: the cloud with the network
   owner's subproblem, each agent with its own), every side answering
   ``min f_a + lambda'y_a + rho/2 ||y_a - t_a||^2``, until the imbalance is
   below ``tol`` (1e-9 p.u.): the prices ``lambda`` are the coupling rows'
   values.
2. *Selection*: each side restricts itself to its own optimal face at those
   prices (:func:`_face`: HiGHS's duals of its LP at the prices; a column
   with a reduced cost above ``face_tol`` = 1e-7 of its largest cost is
   fixed at its bound, a row with such a dual made active -- only where the
   dispatch is on that bound, within :data:`NEAR`, since prices exact to
   the exchange's accuracy give columns tiny spurious reduced costs) and the
   exchange runs again, at a fixed rho, with ``f_a = sum_{k of a} e_k(x_a)^2``:
   the central settlement point, reached by each side on its own model.
3. *Money*: each side sends a few numbers at the point (its cost alone, its
   cost and fees at the point; a prosumer its net import per step and its
   schedule at the tariffs alone, which are powers), and the cloud settles
   with the central closed forms (:func:`gridlang.settle.nash_payments`,
   :func:`gridlang.game.settlement`).  The game's operator's cost alone
   (serving the prosumers' schedules) is computed on the cloud's side.

Measured: ``cases/parts/three_microgrids`` under LinDistFlow, 655 + 500
iterations, every cost, fee, payment and gain within 1e-9 of the surplus of
the central settlement; ``cases/parts/prosumers``, 56 + 169 iterations,
gains within 4e-9 of the surplus, interactive prices within 3e-6 $/MWh.

Only coupling values (powers), prices and these per-side numbers cross; the
log (:attr:`PartsSettlement.log`) holds every message.  Each side's work is a
:class:`SettleSide`, asked by the cloud's :func:`coordinate` through a call:
in this process (:func:`settle_parts`, ``gridlang cloud --serial``) or in the
edge's Ray actor that already holds the agent's compiled part
(:meth:`gridlang.parts.edge.Edge.settle`, ``gridlang cloud --local/--address``).

A conic case (e.g. ``formulation = distflow_soc``, or an agent's own cone) has
no LP faces: its selection is :mod:`gridlang.parts.conic_select`'s.
Integer and quadratic sides are refused; a market whose network owner
collects fees without being a member is not settled from the parts (its
tariff targets span two sides).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from gridlang.compiler.build import Built, build
from gridlang.compiler.expressions import as_linopy
from gridlang.decompose.exchange import Message, Settings, _Agent, _Run
from gridlang.errors import COMMAND_LINE, GridError
from gridlang.parts.compile import alone_cost, cloud_alone_cost, cloud_view, compile_agent_built, compile_cloud, join
from gridlang.parts.conic_select import CONIC_CHECK, CONIC_TOL, RHO2_FACTOR, ROW_SCALE, imbalance, select_conic, with_total

#: the kinds of the per-side numbers sent at stage 2 (besides phase 1's and 2's prices and powers)
REPORTS = ("cost_scale", "target_scale", "conic", "alone", "dispatch_cost", "cost", "fees", "sold", "net_import", "schedule")


@dataclass(frozen=True, slots=True, eq=False)
class _Side:
    """One side's own model for stage 2 (private: stays on its side)."""

    agent: str
    built: Built
    E: sp.csr_matrix  # selection targets over its local columns (constants apart)
    e0: np.ndarray
    what: tuple[tuple[str, str], ...]  # per target row: (report kind, market or game)
    net: dict  # game -> (N, n0): a prosumer's net import per step (p.u.) over its local columns


@dataclass(frozen=True, slots=True, eq=False)
class PartsSettlement:
    """The settlement reached from the parts."""

    settlements: tuple  # gridlang.settle.Settlement per market
    games: tuple  # gridlang.game.GameSettlement per game
    log: tuple[Message, ...]  # every message between the cloud and the other sides
    converged: bool
    dispatch_iterations: int  # phase 1
    selection_iterations: int  # phase 2
    primal: float  # last imbalance, p.u.
    messages: tuple[str, ...] = ()


def _local(built: Built, vlabels: np.ndarray, exprs, agent: str) -> tuple[sp.csr_matrix, np.ndarray]:
    """Linear expressions as rows over one side's own columns (``vlabels``), and their constants;
    an expression reaching another side's column is an internal error (the selection would not split)."""
    from gridlang.settle import _target_rows

    if not exprs:
        return sp.csr_matrix((0, len(vlabels))), np.zeros(0)
    m = built.model
    labels = np.asarray(m.matrices.vlabels)
    E, e0 = _target_rows(exprs, m.variables.label_index.label_to_pos, len(labels))
    column_of = np.full(m._xCounter, -1)
    column_of[labels] = np.arange(len(labels))
    local = column_of[vlabels]
    mine = np.zeros(E.shape[1], dtype=bool)
    mine[local[local >= 0]] = True
    if abs(E[:, ~mine]).sum() > 0:
        raise RuntimeError(f"internal: a settlement target of '{agent}' reaches columns of another side")
    out = sp.csr_matrix((E.shape[0], len(vlabels)))
    if (local >= 0).any():
        out = sp.lil_matrix((E.shape[0], len(vlabels)))
        out[:, np.flatnonzero(local >= 0)] = E[:, local[local >= 0]]
    return out.tocsr(), e0


def _no_fee_collector(mk) -> None:
    if mk.operator:
        raise GridError(mk.span, f"market '{mk.name}' has a fee collector ('{mk.operator}'): its tariffs are shared by two sides, so it is not settled from the parts",
                        "settle it centrally (gridlang solve on the cloud file), or make the network owner a member")


def _side(built: Built, vlabels: np.ndarray, agent: str) -> _Side:
    """The targets of ``agent`` in every market and game of its view (see the module doc), before
    its cost alone is subtracted: what it reports at the point is read from the same rows."""
    from gridlang.settle import _contribution_value, _cost_exprs, _member_costs, _sold, _step_value

    exprs, what, net = [], [], {}
    for block in built.markets:
        mk = block.market
        if agent not in mk.members:
            continue
        _no_fee_collector(mk)
        exprs += [_member_costs(built, block).sel(agent=[agent]), as_linopy(block.fees).sel(seller=[agent])]
        what += [("cost", mk.name), ("fees", mk.name)]
        if mk.power_rule == "contribution":
            exprs.append(_sold(built, block).sel(seller=[agent]) * _contribution_value(built, mk))
            what.append(("sold", mk.name))
    for block in built.games:
        g = block.game
        if agent not in (*g.prosumers, g.operator):
            continue
        exprs.append(_cost_exprs(built, (agent,)))
        what.append(("cost", g.name))
        if agent in g.prosumers:
            exported = as_linopy(block.exported).sel(agent=[agent])
            exprs.append(exported * _step_value(built.case, g))
            what += [("export_value", g.name)] * built.case.system.steps
            net[g.name] = _local(built, vlabels, [-exported], agent)
    E, e0 = _local(built, vlabels, exprs, agent)
    if len(what) != E.shape[0]:
        raise RuntimeError(f"internal: {E.shape[0]} targets of '{agent}' for {len(what)} meanings")
    return _Side(agent, built, E, e0, tuple(what), net)


def _alone_prosumer(built: Built, agent: str, g) -> tuple[float, np.ndarray]:
    """A prosumer at the tariffs alone, on its side: its cost and its schedule (net import per
    step, p.u.), on the settlement point of its own tariff model (as :func:`gridlang.game._alone_game`)."""
    from gridlang.game import with_tariffs
    from gridlang.settle import _step_value, agent_costs, alone, select, solve

    tariff_built = build(with_tariffs(alone(built.case, agent), replace(g, prosumers=(agent,))))  # its own tariff connection only
    variables = tariff_built.model.variables
    name = f"{agent}_tariff"
    flows = (variables["grid-import"] - variables["grid-export"]).sel(grid=[name]).rename(grid="agent").assign_coords(agent=[agent])
    if tariff_built.cones or tariff_built.integer:
        solve(tariff_built)
    if select(tariff_built, [flows * _step_value(built.case, g)]):
        found = solve(tariff_built)
        if found.doubts():
            raise GridError(g.span, f"prosumer '{agent}' of game '{g.name}' at the tariffs has no trusted solution ({'; '.join(found.doubts())})", "check its assets")
    cost = float(agent_costs(tariff_built, (agent,))[0])
    schedule = (variables["grid-import"].solution - variables["grid-export"].solution).sel(grid=name).values
    return cost, np.asarray(schedule, dtype=float)


def _operator_alone(built: Built, g, schedules: np.ndarray) -> float:
    """The game's operator serving the prosumers' schedules alone, on the cloud's side, less what it sells them."""
    from gridlang.game import _buses_of, with_schedules
    from gridlang.settle import alone, solve

    case = built.case
    served = solve(build(with_schedules(alone(case, g.operator), g, _buses_of(case, g.prosumers), schedules)))
    if served.doubts():
        raise GridError(g.span, f"the operator '{g.operator}' of game '{g.name}' cannot serve the prosumers' schedules at the tariffs alone ({'; '.join(served.doubts())})",
                        "check the network's limits against the prosumers' demand")
    revenue = float(((g.retail * np.maximum(schedules, 0) + g.feed_in * np.minimum(schedules, 0)) * case.system.dt).sum())
    return float(served.objective) - revenue


#: the box around the dispatch within which a side finds its face, in p.u. beyond the largest |x|:
#: prices only as exact as the exchange's convergence may leave a free column's cost slightly
#: negative, where the exact prices would make it zero
BOX = 1e3
#: a column (row) is on its bound (active) at the dispatch within this share of (1 + its value):
#: prices only as exact as the exchange may give a nonzero reduced cost to a column whose exact
#: reduced cost is zero (a face too small); the face must hold the dispatch, which is optimal to
#: the exchange's accuracy
NEAR = 1e-5


def _face(sub, c: np.ndarray, share: float, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sense, lb, ub) of a side's own optimal face for the cost ``c`` (its own cost plus the
    prices reached on its coupling rows), as :func:`gridlang.decompose.exchange._face` finds it
    (HiGHS's duals: a column with a reduced cost above ``share`` of the largest cost is fixed at
    its bound, a row with such a dual is active), with every unbounded column boxed within
    :data:`BOX` of the dispatch ``x`` for the LP; a column is fixed only at one of its own bounds."""
    from scipy.optimize import linprog

    sense = np.asarray(sub.sense).copy()
    if not len(c):
        return sense, sub.lb, sub.ub
    A = sub.A.tocsr()
    eq, le, ge = sense == "=", sense == "<", sense == ">"
    upper = sp.vstack([A[le], -A[ge]], format="csr")
    rhs = np.concatenate([sub.b[le], -sub.b[ge]])
    radius = BOX * (1.0 + float(np.abs(x).max(initial=0.0)))
    lo, hi = np.maximum(sub.lb, x - radius), np.minimum(sub.ub, x + radius)
    res = linprog(c, A_ub=upper if upper.shape[0] else None, b_ub=rhs if upper.shape[0] else None, A_eq=A[eq] if eq.any() else None,
                  b_eq=sub.b[eq] if eq.any() else None, bounds=np.column_stack([lo, hi]), method="highs-ds")
    if res.status != 0:
        raise RuntimeError(f"'{sub.agent}': its own problem at the prices reached ended: {res.message}")
    tol = share * max(1.0, float(np.abs(c).max(initial=0.0)))
    lb, ub = sub.lb.copy(), sub.ub.copy()
    near = NEAR * (1.0 + np.abs(x))
    at_lower = (np.abs(res.lower.marginals) > tol) & np.isfinite(sub.lb) & (np.abs(x - sub.lb) <= near)
    at_upper = (np.abs(res.upper.marginals) > tol) & np.isfinite(sub.ub) & (np.abs(x - sub.ub) <= near)
    ub[at_lower], lb[at_upper] = lb[at_lower], ub[at_upper]
    if upper.shape[0]:
        rows = np.flatnonzero(le | ge)
        slack = np.abs(upper @ x - rhs) <= NEAR * (1.0 + np.abs(rhs))
        sense[rows[(np.abs(res.ineqlin.marginals) > tol) & slack]] = "="
    return sense, lb, ub


#: residual balancing of rho in the selection's exchange (phase 2): off.  Measured on
#: cases/three_microgrids.grid (LinDistFlow): with it the exchange stalls at an imbalance of
#: about 3e-8 p.u. and the costs stay 1.3e-6 of the surplus off the central ones after 5,000
#: iterations; at a fixed rho it converges to 1e-9 p.u. in about 600 iterations, within 1e-10
BALANCE = False



#: the settings of the settlement's exchange
SETTINGS = Settings(face_tol=1e-7)

#: why a conic case is not settled from the parts unless asked for, and how to ask
CONIC_SLOW = ("the case is conic, and its settlement from the parts takes minutes (three_microgrids under distflow_soc: about 3)",
              "give --settle to have it, or --formulation lindistflow for a linear case settled in seconds")


def check_linear(built: Built, who: str, span=COMMAND_LINE) -> None:
    """Refuse a side whose model has integers or a quadratic cost: its optimal points are then
    neither an LP's face nor a convex set cut by the total-cost row (cones are settled)."""
    _refuse(who, "integer" if built.integer else "quadratic" if built.quadratic else "", span)


def check_side(sub) -> None:
    """:func:`check_linear` on a side's subproblem (its Hessian), so that a
    settlement asked for is refused before the dispatch, not after it."""
    _refuse(f"{sub.agent}'s", "quadratic" if sub.Q.nnz else "", COMMAND_LINE)


def _refuse(who: str, what: str, span) -> None:
    if what:
        raise GridError(span, f"the settlement from the parts needs linear costs and continuous variables: {who} model is {what}, so its optimal points are not found on its side",
                        "settle it centrally (gridlang solve on the single-file case), or give that side linear costs and continuous variables")


def has_settlement(built: Built) -> bool:
    """Whether the case has a market or a game to settle."""
    return bool(built.markets or built.games)


class SettleSide:
    """One side's part of the settlement, on its own side (the cloud's for the network
    owner, an edge's for an agent): its targets, its numbers alone, its answers in both
    phases, its optimal face and what it reports at the point.  Only the values its methods
    return cross; ``island`` computes its cost alone (its own assets as an island)."""

    def __init__(self, built: Built, sub, island, who: str | None = None) -> None:
        check_linear(built, who or f"{sub.agent}'s")
        self.sub, self.built, self.island = sub, built, island
        self.side = _side(built, sub.vlabels, sub.agent)
        self.alone: dict[str, float] = {}  # market or game -> its cost alone
        self.x = np.zeros(len(sub.c))
        self.rho = 0.0

    @property
    def agent(self) -> str:
        return self.sub.agent

    def opening(self) -> list[tuple[str, str, np.ndarray]]:
        """(kind, market or game, values): its cost scale and target scale (the largest
        cost and target coefficient), whether its model has a cone (1 or 0), its cost alone
        in each market, and in each game where it is a prosumer its cost and schedule at the
        tariffs alone."""
        c, E = self.sub.c, self.side.E
        out = [("cost_scale", "", np.array([float(np.abs(c).max(initial=0.0))])), ("target_scale", "", np.array([float(abs(E).max()) if E.nnz else 0.0])),
               ("conic", "", np.array([1.0 if self.sub.cones else 0.0]))]
        island = None
        for block in self.built.markets:
            if self.agent in block.market.members:
                island = self.island() if island is None else island
                self.alone[block.market.name] = island
                out.append(("alone", block.market.name, np.array([island])))
        for block in self.built.games:
            if self.agent in block.game.prosumers:
                cost, schedule = _alone_prosumer(self.built, self.agent, block.game)
                self.alone[block.game.name] = cost
                out += [("alone", block.game.name, np.array([cost])), ("schedule", block.game.name, schedule)]
        return out

    def dispatch(self, rho: float) -> None:
        """Phase 1: its own model at its own cost."""
        self.agent_model = _Agent(self.sub, self.side.E, self.side.e0, rho, 0.0)

    def answer(self, price: np.ndarray, target: np.ndarray, rho: float) -> np.ndarray:
        """Its power ``y`` of ``min f + price'y + rho/2 ||y - target||^2`` (its point stays here)."""
        y, x = self.agent_model.answer(price, target, rho)
        self.x, self.rho = x[: len(self.sub.c)], rho  # less the total-cost row's slack (phase 2 of a conic case, the cloud's side)
        return y

    def dispatch_cost(self) -> list[tuple[str, str, np.ndarray]]:
        """Its own cost ``c_a'x_a`` at the dispatch (phase 1's last answer): one number."""
        return [("dispatch_cost", "", np.array([float(self.sub.c @ self.x)]))]

    def select(self, price: np.ndarray | None, rho: float, face_tol: float, alone: Mapping[str, float] | None = None,
               total: tuple[int, float, float | None] | None = None) -> None:
        """Phase 2, with the selection's least squares (its targets less its costs alone) as
        its cost: a linear case's side on its own optimal face at the prices reached ``price``
        (on its coupling rows); a conic case's side (``total`` = (row, scale, rhs), no price) on
        its whole own model with its cost as its contribution to the total-cost row
        (:func:`gridlang.parts.conic_select.with_total`; ``rhs`` given to the cloud's side only, which holds the row's slack).
        ``alone``: costs alone computed elsewhere (the game's operator's, on the cloud)."""
        sub, side = self.sub, self.side
        self.alone.update(alone or {})
        E = side.E
        if total is not None:
            face = replace(with_total(sub, *total), c=np.zeros(len(sub.c) + (total[2] is not None)))
            if total[2] is not None:
                E = sp.hstack([E, sp.csr_matrix((E.shape[0], 1))], format="csr")
        else:
            sense, lb, ub = _face(sub, sub.c + sub.C.T @ price, face_tol, self.x)
            face = replace(sub, sense=sense, lb=lb, ub=ub, c=np.zeros_like(sub.c))
        minus = np.array([self.alone[name] if kind == "cost" else 0.0 for kind, name in side.what])
        self.agent_model = _Agent(face, E, side.e0 - minus, rho, 1.0)

    def report(self) -> list[tuple[str, str, np.ndarray]]:
        """(kind, market or game, values) at the point: its cost, fees and sales per market,
        its cost per game, a prosumer's net import per step."""
        values = self.side.E @ self.x + self.side.e0
        out = [(kind, name, np.array([v])) for (kind, name), v in zip(self.side.what, values) if kind in ("cost", "fees", "sold")]
        return out + [("net_import", name, N @ self.x + n0) for name, (N, n0) in self.side.net.items()]


class _Answering:
    """What the exchange (:class:`gridlang.decompose.exchange._Run`) holds of a side: its
    name and coupling rows, and a way to ask it (``call(method, *args)``).  With a
    :class:`_Pass`, the side's answer was asked together with every other side's (in parallel)
    and is taken from there when its price, target and rho are the ones asked."""

    def __init__(self, sub, call, batch: "_Pass | None" = None) -> None:
        self.sub, self.call, self.batch, self.rho = sub, call, batch, 0.0

    def answer(self, price, target, rho):
        self.rho = rho
        if self.batch is not None:
            found = self.batch.take(self.sub.agent, price, target, rho)
            if found is not None:
                return found, None
        return self.call("answer", price, target, rho), None


class _Pass:
    """Every remote side's answer of an exchange pass asked at once (``ask_all({agent: (price,
    target, rho)})``, e.g. one Ray call per edge actor): a pass's prices and targets depend only
    on the previous pass (:class:`gridlang.decompose.exchange._Run`), so at a pass's first answer
    they are computed for every side from the run's state and asked together.  An answer is
    used only if its side is then asked exactly that (else it is asked again, on its own)."""

    def __init__(self, run: _Run, subs, remote: set[str], ask_all) -> None:
        self.run, self.subs, self.remote, self.ask_all = run, subs, remote, ask_all
        self.k, self.asked, self.answers = -1, {}, {}

    def take(self, agent: str, price, target, rho):
        run = self.run
        if self.k != run.k:
            self.k = run.k
            self.asked = {sub.agent: (rho * run.u[sub.rows], run.y[i] - run.ybar[sub.rows], rho) for i, sub in enumerate(self.subs) if sub.agent in self.remote}
            self.answers = self.ask_all(self.asked) if self.asked else {}
        if agent not in self.answers:
            return None
        p, t, r = self.asked[agent]
        y = self.answers.pop(agent)
        return y if (r == rho and np.array_equal(p, price) and np.array_equal(t, target)) else None


def coordinate(built: Built, parts, calls: Mapping[str, object], settings: Settings = SETTINGS, ask_all=None, conic: bool = True) -> PartsSettlement:
    """The cloud's side of the settlement (see the module doc): ``built`` the cloud view,
    ``parts`` the joined split (the owner's subproblem, the others' coupling rows),
    ``calls[agent](method, *args)`` asks a :class:`SettleSide` (here or on its edge);
    ``ask_all({agent: (price, target, rho)})``, if given, asks the other sides' answers of a
    pass at once (:class:`_Pass`); ``conic`` False refuses a conic case (any side's cone,
    heard in the opening) before its dispatch: by default it is not settled (minutes)."""
    from gridlang.decompose import nash
    from gridlang.game import AloneGame, settlement
    from gridlang.settle import SLACK, Settlement, _contribution_value, nash_payments

    case = built.case
    owner = case.network_owner
    log: list[Message] = []
    heard: dict[tuple[str, str, str], np.ndarray] = {}  # (agent, kind, market or game) -> values

    def hear(agent: str, items, k: int) -> None:
        for kind, name, values in items:
            values = np.asarray(values, dtype=float)
            heard[agent, kind, name] = values
            if agent != owner:
                log.append(Message(k, agent, owner, kind, values))

    for a in parts.agents:
        hear(a, calls[a]("opening"), 0)
    alone_of = {(name, a): float(v[0]) for (a, kind, name), v in heard.items() if kind == "alone"}
    schedules = {(name, a): v for (a, kind, name), v in heard.items() if kind == "schedule"}
    operator_alone = {}
    for block in built.games:
        g = block.game
        alone_of[g.name, g.operator] = operator_alone[g.name] = _operator_alone(built, g, np.array([schedules[g.name, a] for a in g.prosumers]))

    # phases 1 and 2 (rho scaled by the sides' largest cost and target coefficients, which they sent)
    scale = max(1.0, max(float(heard[a, "cost_scale", ""][0]) for a in parts.agents))
    weight = max(1.0, max(float(heard[a, "target_scale", ""][0]) for a in parts.agents))
    edge = tuple(a for a in parts.agents if a != owner)
    allowed, conic = conic, bool(built.cones) or any(heard[a, "conic", ""][0] for a in parts.agents)  # any side's cone: no LP faces
    if conic and not allowed:
        raise GridError(COMMAND_LINE, *CONIC_SLOW)
    run = _Run(parts, owner, edge, replace(settings, tol=max(settings.tol, CONIC_TOL)) if conic else settings)
    rho = settings.rho * scale
    for a in parts.agents:
        calls[a]("dispatch", rho)
    batch = _Pass(run, parts.subproblems, set(edge), ask_all) if ask_all is not None else None
    agents = [_Answering(sub, calls[sub.agent], batch) for sub in parts.subproblems]
    first = run.admm(agents, rho, None, balance=True)
    dispatched = len(run.primal)
    if not first:  # faces at prices not reached mean nothing: no settlement, and why
        why = f"the settlement's dispatch from the parts did not converge in {dispatched} iterations (imbalance {run.primal[-1]:.3g} p.u.): no settlement"
        return PartsSettlement((), (), tuple(log + run.log), False, dispatched, 0, float(run.primal[-1]), (why,))
    rho2 = settings.rho * weight**2
    lam = agents[0].rho * run.u  # the prices rho u, at the rho residual balancing ended with
    if conic:  # phase 2 on every side's whole model and one more coupling row, the total cost
        for a in parts.agents:
            hear(a, calls[a]("dispatch_cost"), run.k)
        z = sum(float(heard[a, "dispatch_cost", ""][0]) for a in parts.agents) + float(lam @ imbalance(run))  # the Lagrangian
        row, width, row_scale = parts.n_coupling, SLACK * max(1.0, abs(z)), weight * ROW_SCALE
        parts = replace(parts, subproblems=tuple(replace(sub, rows=np.append(sub.rows, row)) for sub in parts.subproblems), n_coupling=row + 1,
                        contributors=np.append(parts.contributors, len(parts.subproblems)))
        for sub in parts.subproblems:
            mine = sub.agent == owner
            calls[sub.agent]("select", None, rho2 * RHO2_FACTOR, settings.face_tol, operator_alone if mine else None, (row, row_scale, z + width if mine else None))
        phase1, run = run, _Run(parts, owner, edge, replace(settings, tol=0.0, max_iter=CONIC_CHECK))  # _Run's own test never ends a pass
        run.k, run.log, run.primal, run.dual = phase1.k, phase1.log, phase1.primal, phase1.dual
        batch = _Pass(run, parts.subproblems, set(edge), ask_all) if ask_all is not None else None
        agents = [_Answering(sub, calls[sub.agent], batch) for sub in parts.subproblems]
        second = select_conic(run, agents, rho2 * RHO2_FACTOR, row_scale, width, settings.dual_tol)
    else:
        for sub in parts.subproblems:
            if sub.agent != owner:
                log.append(Message(run.k, owner, sub.agent, "price", lam[sub.rows]))
            calls[sub.agent]("select", lam[sub.rows], rho2, settings.face_tol, operator_alone if sub.agent == owner else None)
        run.reset()
        second = run.admm(agents, rho2, None, balance=BALANCE)
    log += run.log
    for a in parts.agents:
        hear(a, calls[a]("report"), run.k + 1)
    at = heard

    settlements = []
    for block in built.markets:
        mk = block.market
        n = len(mk.members)
        cost = np.array([at[a, "cost", mk.name][0] for a in mk.members])
        fees = np.array([at[a, "fees", mk.name][0] for a in mk.members])
        d = np.array([alone_of[mk.name, a] for a in mk.members])
        powers, contribution, messages = mk.powers, None, []
        if mk.power_rule == "contribution":
            unit = 1.0 / case.system.base.factor("MW")[0]
            energy = contribution = np.maximum(np.array([at[a, "sold", mk.name][0] for a in mk.members]) / _contribution_value(built, mk), 0.0) * unit
            powers = energy / energy.sum() if energy.sum() > 0 else np.full(n, 1.0 / n)
        surplus, gain, payment = nash_payments(cost, d, powers)
        if surplus < 0:
            messages.append(f"the surplus of market '{mk.name}' is negative ({surplus:.4g}): trading costs more than it saves, so no agent can be made whole")
        settlements.append(Settlement(mk.name, mk.members, powers, cost, fees, d, surplus, gain, payment, float(fees.sum()), tuple(messages),
                                      pairwise=nash.pairwise(payment) if np.isfinite(payment).all() else None, contribution=contribution))
    games = []
    for block in built.games:
        g = block.game
        a = AloneGame(np.array([alone_of[g.name, p] for p in g.prosumers]), alone_of[g.name, g.operator], np.array([schedules[g.name, p] for p in g.prosumers]))
        cost = np.array([at[p, "cost", g.name][0] for p in g.prosumers])
        m = np.array([at[p, "net_import", g.name] for p in g.prosumers])
        games.append(settlement(case, g, a, cost, float(at[g.operator, "cost", g.name][0]), m))
    messages = () if second else (f"the selection of the settlement point from the parts did not converge in {len(run.primal)} iterations (imbalance {run.primal[-1]:.3g} p.u.): the settlement may differ from the central one",)
    return PartsSettlement(tuple(settlements), tuple(games), tuple(log), bool(second), dispatched, len(run.primal) - dispatched, float(run.primal[-1]), messages)


def local_call(side: SettleSide):
    """Ask a side in this process."""
    return lambda method, *args: getattr(side, method)(*args)


def check_cloud(cloud_path: Path, formulation: str | None = None) -> Built:
    """The cloud view, refused (a GridError) if the parts cannot settle it."""
    _, cloud_built = cloud_view(cloud_path, formulation)
    for block in cloud_built.markets:
        _no_fee_collector(block.market)
    check_linear(cloud_built, "the cloud's")
    return cloud_built


def settle_parts(cloud_path: Path, agent_paths: Sequence[Path], formulation: str | None = None, settings: Settings = SETTINGS,
                 compiled=None, conic: bool = True) -> PartsSettlement:
    """Every market's and game's settlement of a case in parts, each side on its own model
    (see the module doc); in one process, but nothing but the logged messages crosses.
    ``compiled``: the cloud's side and every agent's ``(side, built view)`` as the dispatch
    compiled them (its terminal measurements filled), in ``agent_paths``' order; else
    compiled here."""
    cloud_built = check_cloud(cloud_path, formulation)
    if compiled is None:
        cloud, compiled = compile_cloud(cloud_path, formulation), [compile_agent_built(Path(p), formulation) for p in agent_paths]
    else:
        cloud, compiled = compiled
    for side, built in compiled:
        check_linear(built, f"{side.agent}'s")
    parts = join(cloud, [s for s, _ in compiled])
    views = {cloud.owner: cloud_built, **{s.agent: b for s, b in compiled}}
    paths = {s.agent: Path(p) for (s, _), p in zip(compiled, agent_paths)}

    def island(agent: str):
        if agent == cloud.owner:
            return lambda: cloud_alone_cost(cloud_path, formulation).cost
        return lambda: alone_cost(paths[agent], formulation).cost

    calls = {sub.agent: local_call(SettleSide(views[sub.agent], sub, island(sub.agent))) for sub in parts.subproblems}
    return coordinate(cloud_built, parts, calls, settings, conic=conic)


def summary(ps: PartsSettlement) -> list[str]:
    """The settlement as the lines ``gridlang cloud`` prints: per market and game, every
    agent's cost, cost alone, gain and payment, and the surplus."""
    lines = [f"settlement from the parts: dispatch {ps.dispatch_iterations} + selection {ps.selection_iterations} iterations, imbalance {ps.primal:.2e} p.u., "
             f"{len(ps.log)} messages (prices, powers and per-side numbers only)"]
    for s in ps.settlements:
        lines.append(f"market {s.market}: surplus {s.surplus:,.4f}, payments sum to {s.budget_balance:.2e}")
        for i, a in enumerate(s.agents):
            lines.append(f"  {a}: cost {s.cost[i]:,.4f} (fees {s.fees_paid[i]:,.4f}), alone {s.disagreement[i]:,.4f}, gain {s.gain[i]:,.4f}, pays {s.payment[i]:,.4f}, final cost {s.cost[i] + s.payment[i]:,.4f}")
    for g in ps.games:
        lines.append(f"game {g.game}: surplus {g.surplus:,.4f}; operator {g.operator}: gain {g.operator_gain:,.4f}")
        for i, a in enumerate(g.prosumers):
            lines.append(f"  {a}: cost {g.cost[i]:,.4f}, alone {g.alone[i]:,.4f}, gain {g.gain[i]:,.4f}")
    return lines


def settling(cloud_path: Path, formulation: str | None, wanted: bool | None) -> tuple[bool | None, str]:
    """What ``gridlang cloud`` does about the settlement, and why not when it does not:
    nothing (False: not wanted, or by default no market and no game, or a conic case,
    whose settlement from the parts takes minutes: three_microgrids about 3, or one the
    cloud's own model rules out), settle or refuse (True: asked for; a case the parts
    cannot settle is a GridError, before any dispatch), or settle if it can (None: the
    default for a linear case with a market or game; an agent's side that rules it out
    is found after the dispatch, see :func:`attempt`)."""
    if wanted is False:
        return False, ""
    _, built = cloud_view(cloud_path, formulation)
    if not has_settlement(built):
        if wanted:
            raise GridError(COMMAND_LINE, "--settle: the cloud file declares no market and no game to settle", "leave --settle out, or declare a market or game in the cloud file")
        return False, ""
    if wanted:
        check_cloud(cloud_path, formulation)  # refused before the dispatch, not after
        return True, ""
    _, why = attempt(None, lambda: check_cloud(cloud_path, formulation))
    if not why and built.cones:
        why = "; ".join(CONIC_SLOW)
    return (False, why) if why else (None, "")


def attempt(settle: bool | None, run) -> tuple[PartsSettlement | None, str]:
    """``run()`` the settlement: asked for (``settle`` True), a refusal is raised; by default
    (None) a refusal is the reason there is no settlement, returned instead."""
    try:
        return run(), ""
    except GridError as exc:
        if settle:
            raise
        return None, f"{exc.message} ({exc.hint})" if exc.hint else exc.message


def write_settlement(ps: PartsSettlement, path: Path) -> None:
    """The settlement as JSON (every market's and game's money per agent), written atomically."""
    import json

    from gridlang.io.results import write_atomic

    def row(names, **columns):
        return {a: {k: float(v[i]) for k, v in columns.items()} for i, a in enumerate(names)}

    data = {
        "written by gridlang": "settlement from the parts",
        "converged": ps.converged,
        "iterations": {"dispatch": ps.dispatch_iterations, "selection": ps.selection_iterations},
        "imbalance_pu": ps.primal,
        "markets": {s.market: {"surplus": s.surplus, "budget_balance": s.budget_balance,
                               "agents": row(s.agents, power=s.powers, cost=s.cost, fees_paid=s.fees_paid, alone=s.disagreement, gain=s.gain, payment=s.payment)}
                    for s in ps.settlements},
        "games": {g.game: {"surplus": g.surplus, "operator": g.operator, "operator_cost": g.operator_cost, "operator_alone": g.operator_alone, "operator_gain": g.operator_gain,
                           "prosumers": row(g.prosumers, cost=g.cost, alone=g.alone, gain=g.gain, final=g.final)}
                  for g in ps.games},
        "messages": list(ps.messages),
    }
    text = json.dumps(data, indent=1)
    write_atomic(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))
