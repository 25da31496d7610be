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
log (:attr:`PartsSettlement.log`) holds every message.  Linear cases only
(the faces are those of an LP: e.g. ``formulation = "lindistflow"``); a
market whose network owner collects fees without being a member is not
settled from the parts (its tariff targets span two sides).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from gridlang.compiler.build import Built, build
from gridlang.compiler.expressions import as_linopy
from gridlang.decompose.exchange import Message, Settings, _Agent, _Run
from gridlang.errors import COMMAND_LINE, GridError
from gridlang.parts.compile import alone_cost, cloud_alone_cost, cloud_view, compile_agent_built, compile_cloud, join
from gridlang.parts.format import read_agent

#: the kinds of the per-side numbers sent at stage 2 (besides phase 1's and 2's prices and powers)
REPORTS = ("alone", "cost", "fees", "sold", "net_import", "schedule")


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


def _side(built: Built, vlabels: np.ndarray, agent: str) -> _Side:
    """The targets of ``agent`` in every market and game of its view (see the module doc), before
    its cost alone is subtracted: what it reports at the point is read from the same rows."""
    from gridlang.settle import _contribution_value, _cost_exprs, _member_costs, _sold, _step_value

    exprs, what, net = [], [], {}
    for block in built.markets:
        mk = block.market
        if agent not in mk.members:
            continue
        if mk.operator:
            raise GridError(mk.span, f"market '{mk.name}' has a fee collector ('{mk.operator}'): its tariffs are shared by two sides, so it is not settled from the parts",
                            "settle it centrally (gridlang solve on the cloud file), or make the network owner a member")
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


def settle_parts(cloud_path: Path, agent_paths: Sequence[Path], formulation: str | None = None, settings: Settings = Settings(face_tol=1e-7)) -> PartsSettlement:
    """Every market's and game's settlement of a case in parts, each side on its own model
    (see the module doc); in one process, but nothing but the logged messages crosses."""
    from gridlang.game import AloneGame, settlement
    from gridlang.decompose import nash
    from gridlang.settle import Settlement, _contribution_value, nash_payments

    cloud = compile_cloud(cloud_path, formulation)
    _, cloud_built = cloud_view(cloud_path, formulation)
    if cloud_built.integer or cloud_built.cones or cloud_built.quadratic:
        raise GridError(COMMAND_LINE, "the settlement from the parts needs a linear case: each side's optimal face is that of an LP",
                        "use a linear formulation (e.g. formulation = lindistflow) and linear costs")
    compiled = [compile_agent_built(Path(p), formulation) for p in agent_paths]
    for side, built in compiled:
        if built.integer or built.cones or built.quadratic:
            raise GridError(COMMAND_LINE, f"the settlement from the parts needs a linear case: '{side.agent}''s model is not", "use a linear formulation and linear costs")
    parts = join(cloud, [s for s, _ in compiled])
    views = {cloud.owner: cloud_built, **{s.agent: b for s, b in compiled}}
    sides = [_side(views[sub.agent], sub.vlabels, sub.agent) for sub in parts.subproblems]
    log: list[Message] = []

    # stage 2's disagreement points, each on its side
    alone_of: dict[tuple[str, str], float] = {}  # (market or game, agent) -> its cost alone
    schedules: dict[tuple[str, str], np.ndarray] = {}
    paths = {read_agent(Path(p)).name: Path(p) for p in agent_paths}
    case = cloud_built.case
    members = {a for block in cloud_built.markets for a in block.market.members}
    island: dict[str, float] = {}
    for a in parts.agents:
        if a in members:
            island[a] = (cloud_alone_cost(cloud_path, formulation) if a == cloud.owner else alone_cost(paths[a], formulation)).cost
            if a != cloud.owner:
                log.append(Message(0, a, cloud.owner, "alone", np.array([island[a]])))
    for block in cloud_built.markets:
        alone_of.update({(block.market.name, a): island[a] for a in block.market.members})
    for block in cloud_built.games:
        g = block.game
        for a in g.prosumers:
            alone_of[g.name, a], schedules[g.name, a] = _alone_prosumer(views[a], a, g)
            log += [Message(0, a, cloud.owner, "alone", np.array([alone_of[g.name, a]])), Message(0, a, cloud.owner, "schedule", schedules[g.name, a])]
        alone_of[g.name, g.operator] = _operator_alone(cloud_built, g, np.array([schedules[g.name, a] for a in g.prosumers]))

    # phases 1 and 2: the dispatch, then the selection on each side's own optimal face
    scale = max(1.0, float(np.abs(np.concatenate([s.c for s in parts.subproblems])).max()))
    edge = tuple(a for a in parts.agents if a != cloud.owner)
    run = _Run(parts, cloud.owner, edge, settings)
    rho = settings.rho * scale
    agents = [_Agent(sub, side.E, side.e0, rho, 0.0) for sub, side in zip(parts.subproblems, sides)]
    first = run.admm(agents, rho, None, balance=True)
    dispatched = len(run.primal)
    if not first:
        raise GridError(COMMAND_LINE, f"the dispatch from the parts did not converge in {dispatched} iterations (imbalance {run.primal[-1]:.3g} p.u.)", "raise max_iter or rho")
    lam = agents[0].solver.weight * run.u  # the prices rho u, at the rho residual balancing ended with
    faces, shifted = [], []
    for sub, side, x in zip(parts.subproblems, sides, run.x):
        sense, lb, ub = _face(sub, sub.c + sub.C.T @ lam[sub.rows], settings.face_tol, x)
        faces.append(replace(sub, sense=sense, lb=lb, ub=ub, c=np.zeros_like(sub.c)))
        minus = np.array([alone_of[name, side.agent] if kind == "cost" else 0.0 for kind, name in side.what])
        shifted.append(side.e0 - minus)
    weight = max(1.0, max(float(abs(s.E).max()) if s.E.nnz else 0.0 for s in sides))
    rho2 = settings.rho * weight**2
    agents = [_Agent(sub, side.E, e0, rho2, 1.0) for sub, side, e0 in zip(faces, sides, shifted)]
    run.reset()
    second = run.admm(agents, rho2, None, balance=BALANCE)
    log += run.log

    # each side's numbers at the point
    at: dict[tuple[str, str, str], np.ndarray] = {}  # (agent, kind, market or game) -> what it reports
    k = run.k + 1
    for side, x in zip(sides, run.x):
        values = side.E @ x + side.e0
        mine = {(kind, name): np.array([v]) for (kind, name), v in zip(side.what, values) if kind in ("cost", "fees", "sold")}
        mine.update({("net_import", name): N @ x + n0 for name, (N, n0) in side.net.items()})
        at.update({(side.agent, kind, name): v for (kind, name), v in mine.items()})
        if side.agent != cloud.owner:
            log += [Message(k, side.agent, cloud.owner, kind, v) for (kind, _), v in mine.items()]

    settlements = []
    for block in cloud_built.markets:
        mk = block.market
        n = len(mk.members)
        cost = np.array([at[a, "cost", mk.name][0] for a in mk.members])
        fees = np.array([at[a, "fees", mk.name][0] for a in mk.members])
        d = np.array([alone_of[mk.name, a] for a in mk.members])
        powers, contribution, messages = mk.powers, None, []
        if mk.power_rule == "contribution":
            unit = 1.0 / case.system.base.factor("MW")[0]
            energy = contribution = np.maximum(np.array([at[a, "sold", mk.name][0] for a in mk.members]) / _contribution_value(cloud_built, mk), 0.0) * unit
            powers = energy / energy.sum() if energy.sum() > 0 else np.full(n, 1.0 / n)
        surplus, gain, payment = nash_payments(cost, d, powers)
        if surplus < 0:
            messages.append(f"the surplus of market '{mk.name}' is negative ({surplus:.4g}): trading costs more than it saves, so no agent can be made whole")
        settlements.append(Settlement(mk.name, mk.members, powers, cost, fees, d, surplus, gain, payment, float(fees.sum()), tuple(messages),
                                      pairwise=nash.pairwise(payment) if np.isfinite(payment).all() else None, contribution=contribution))
    games = []
    for block in cloud_built.games:
        g = block.game
        a = AloneGame(np.array([alone_of[g.name, p] for p in g.prosumers]), alone_of[g.name, g.operator], np.array([schedules[g.name, p] for p in g.prosumers]))
        cost = np.array([at[p, "cost", g.name][0] for p in g.prosumers])
        m = np.array([at[p, "net_import", g.name] for p in g.prosumers])
        games.append(settlement(case, g, a, cost, float(at[g.operator, "cost", g.name][0]), m))
    messages = () if second else (f"the selection of the settlement point from the parts did not converge in {len(run.primal)} iterations (imbalance {run.primal[-1]:.3g} p.u.): the settlement may differ from the central one",)
    return PartsSettlement(tuple(settlements), tuple(games), tuple(log), bool(second), dispatched, len(run.primal) - dispatched, float(run.primal[-1]), messages)

