"""Stage 2 of a market: disagreement points and Nash-bargaining payments.

Stage 1 is the case itself: one model minimising the total cost of all
agents, fees included, which fixes the trades.  Stage 2 settles money:

* ``c_i``  cost of member i at the stage-1 optimum (its assets' costs plus the
  fees it paid as a seller);
* ``d_i``  its disagreement cost: the optimal cost of its assets alone, with
  no trade (an island balancing its own assets; the network owner keeps the
  network and its own assets);
* surplus ``S = sum_i d_i - sum_i c_i``.

With transferable utility the generalized Nash bargaining solution
``max prod_i (d_i - c_i - pi_i)^alpha_i  s.t.  sum_i pi_i = 0`` has the closed
form ``gain_i = d_i - c_i - pi_i = alpha_i S``, so the payment of member i
is ``pi_i = d_i - c_i - alpha_i S`` (positive: i pays).  Payments sum to
zero (budget balance), fees go to the network owner, and every gain is
non-negative (individual rationality) exactly when ``S >= 0``.

**The network owner as fee collector.**  When the network owner ``o`` is
not a member it does not bargain: members buy from and sell to the upstream
grid through it at its tariff (``import_price[t]``, ``export_price[t]`` of
its grid connection) and pay it the fee on every MWh they sell to anyone or
buy from it, so a member's cost is

    c_i = own assets + fees_i + sum_t (import_price[t] b_i[t] - export_price[t] e_i[t]) dt

(``b_i = s[o, i]``, ``e_i = s[i, o]``) and the operator's is its own assets
less the tariffs and fees it receives, ``c_o = own_o - sum_i tariff_i - sum_i
fees_i``; its gain is ``d_o - c_o`` with ``d_o`` its cost serving its own
assets alone.  Money only moves between agents: ``sum_i (c_i + pi_i) + c_o``
is every agent's own assets' cost (:attr:`Settlement.money_balance`).

**Powers by contribution** (``nash(power = contribution)``): ``alpha_i =
E_i / sum_k E_k`` with ``E_i = sum_t sum_{j member} s[i, j, t] dt`` the
energy member i sold to the other members at the settlement point (made
unique there: it is one of :func:`select`'s targets); non-negative by
construction; equal powers if nobody sold.

**Pairwise payments** and **CF-ADMM**: see :mod:`gridlang.decompose.nash`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

import clarabel
import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from gridlang.compiler import ir
from gridlang.compiler.build import Built, build
from gridlang.compiler.expressions import as_linopy, is_expr
from gridlang.compiler.linear import Lin
from gridlang.errors import GridError
from gridlang.grammar import ast
from gridlang.solvers import clarabel as clarabel_backend, conic
from gridlang.solvers.result import FEASIBILITY_TOL, Result, collect, primal_residual, store_solution


@dataclass(frozen=True, slots=True, eq=False)
class Settlement:
    """Money of one market after stage 2, per member (in the order of ``agents``)."""

    market: str
    agents: tuple[str, ...]
    powers: np.ndarray  # bargaining powers, sum 1
    cost: np.ndarray  # stage-1 cost: own assets plus fees paid
    fees_paid: np.ndarray
    disagreement: np.ndarray  # cost alone, without trading
    surplus: float
    gain: np.ndarray  # d_i - (c_i + payment_i)
    payment: np.ndarray  # paid by the member (negative: received)
    fees_collected: float  # by the network owner
    messages: tuple[str, ...] = ()
    operator: str = ""  # the fee collector, when the network owner is not a member
    tariff_paid: np.ndarray | None = None  # paid to the operator for upstream energy (negative: received)
    operator_cost: float = float("nan")  # its own assets' cost less the tariffs and fees it receives
    operator_alone: float = float("nan")  # its cost serving its own assets alone
    physical: float = float("nan")  # stage 1's total cost less the fees: what all the money adds up to
    pairwise: np.ndarray | None = None  # (payer, payee): what i pays j, >= 0 (gridlang.decompose.nash.pairwise)
    method: str = "closed_form"  # how stage 2 was computed
    iterations: int = 0  # CF-ADMM's iterations
    contribution: np.ndarray | None = None  # energy each member sold to the others (power = contribution)

    @property
    def budget_balance(self) -> float:
        """Sum of payments (zero when the payments balance)."""
        return float(self.payment.sum())

    @property
    def operator_gain(self) -> float:
        """What the fee collector gains by the market: its cost alone less its cost with it."""
        return self.operator_alone - self.operator_cost

    @property
    def money_balance(self) -> float:
        """``sum_i (c_i + pi_i) + c_o - (stage-1 total - fees)``: zero when the
        payments, fees and tariffs only move money between the agents (with a fee collector)."""
        return float((self.cost + self.payment).sum() + self.operator_cost - self.physical)

    @property
    def rational(self) -> bool:
        """No member ends worse off than alone."""
        return bool((self.gain >= -1e-9 * max(1.0, abs(self.surplus))).all())


def nash_payments(cost: np.ndarray, disagreement: np.ndarray, powers: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Surplus, gains and payments of the generalized Nash bargaining solution (transferable utility)."""
    surplus = float(disagreement.sum() - cost.sum())
    gain = powers * surplus
    return surplus, gain, disagreement - cost - gain


def agent_costs(built: Built, agents: tuple[str, ...]) -> np.ndarray:
    """Each agent's cost at the solved point: its instances' cost terms."""
    owners = built.case.owners
    parts = []
    for kind, value in built.costs:  # one array per kind, summed by owner
        per_instance = as_linopy(value).solution
        names = per_instance.coords[kind].values
        parts.append(pd.Series(np.atleast_1d(per_instance.values), index=[owners.get(str(n)) for n in names]))
    if not parts:
        return np.zeros(len(agents))
    return pd.concat(parts).groupby(level=0).sum().reindex(list(agents), fill_value=0.0).to_numpy(dtype=float)



def solve(built: Built) -> Result:
    """Stage 2's solves: the default solver of the model's class (HiGHS for a
    linear one, Clarabel with cones), without the study's solver options,
    which belong to stage 1's solver."""
    from gridlang import solvers

    return solvers.solve(replace(built, case=replace(built.case, solver=None, solver_options={})))


def _put(m, solution: dict | None) -> None:
    """Put a saved solution back into a model."""
    for name, value in (solution or {}).items():
        m.variables[name].solution = value


#: with cones, the settlement point's total cost may exceed the optimum by this
#: share of max(1, |optimum|): room for the interior-point optimum's own accuracy
SLACK = 1e-9


def settle_all(built: Built, result: Result, executor: str = "serial") -> Result:
    """Stage 2 of every market and game of a solved case, on its settlement point.

    First what each side costs alone (every market member's disagreement
    point; each game's prosumers at the tariffs and the operator serving
    their schedules), then the settlement point (:func:`select`) put into
    ``built``'s solution and into the result's variables and outputs (the
    prices stay those of stage 1), then the money.  Every solve of stage 2 is
    :func:`solve`: the settlement depends on the case, not on how stage 1 was
    solved (by which solver, with which options, centrally or decomposed).
    ``executor`` is where CF-ADMM's agents run (``payments = nash(method =
    cf_admm)``): ``serial`` here, anything else each agent in its own process."""
    disagreements = [_disagreements(built, block.market) for block in built.markets]
    from gridlang.game import _alone_game, _settle_game

    alone_games = [_alone_game(built, block.game) for block in built.games]
    targets = []
    for block, (d, _, d_operator) in zip(built.markets, disagreements):
        members = block.market.members
        targets.append(_member_costs(built, block) - _over_agents(members, d))
        targets.append(as_linopy(block.fees))
        if block.market.operator:
            targets.append(_operator_cost(built, block) - d_operator)
        if block.market.power_rule == "contribution":
            targets.append(_sold(built, block) * _contribution_value(built, block.market))
    for block, alone_game in zip(built.games, alone_games):
        g = block.game
        agents = (*g.prosumers, g.operator)
        targets.append(_cost_exprs(built, agents) - _over_agents(agents, np.append(alone_game.cost, alone_game.operator)))
        targets.append(as_linopy(block.exported) * _step_value(built.case, g))
    warnings = select(built, targets)
    point = collect(built)
    prices = [f"{network}-price_{channel}" for network, channel in built.balances.values()]
    dataset = result.dataset.assign({k: v for k, v in point.items() if k not in prices})
    settlements = tuple(_settle_market(built, block, d, messages, d_operator, executor) for block, (d, messages, d_operator) in zip(built.markets, disagreements))
    games = tuple(_settle_game(built, block, alone_game) for block, alone_game in zip(built.games, alone_games))
    from gridlang.report import game_dataset, settlement_dataset

    dataset = dataset.merge(settlement_dataset(settlements), join="outer").merge(game_dataset(games), join="outer")
    return replace(result, dataset=dataset, settlements=settlements, games=games, warnings=result.warnings + warnings)


def select(built: Built, targets) -> tuple[str, ...]:
    """Put the settlement point into ``built``'s solution; the warnings, if it cannot.

    Several points are optimal when assets are interchangeable (batteries,
    vehicles and flexible loads can shift the same energy; members can trade
    the same energy in several ways), and settlements read quantities that
    differ between them.  The settlement point is the optimal point that minimises

        sum_k e_k(x)^2      over the optimal points x of the case

    for the ``targets`` ``e_k`` (linear expressions, in currency: every
    member's cost, fees included, less its cost alone; every member's fees;
    each game's net exports per prosumer and step valued at the mean tariff).
    The function is strictly convex in those quantities, so they are unique
    at the point, whichever optimum the solver found and however it was found
    (central or decomposed).  Integer variables stay at their values in the
    solution.  The optimal points are

    * without cones (an LP once the integers are fixed): the optimal face,
      exactly -- HiGHS's dual simplex solves the LP again (``scipy.optimize.linprog``)
      and, by complementary slackness with its duals (any optimal dual gives
      the same face), every column with a nonzero reduced cost is fixed at its
      bound and every row with a nonzero dual holds with equality
      (nonzero: above :data:`DUAL_TOL` times the largest cost); should
      Clarabel fail on that face (an interior point finds it too tight), the
      points within ``SLACK`` of the optimum, as with cones;
    * with cones: ``cost(x) <= z* + SLACK * max(1, |z*|)``, ``z*`` the
      optimum found again centrally by :func:`solve`; the point is then as
      accurate as Clarabel's tolerances allow (about 1e-3 currency on
      ``cases/three_microgrids.grid``), and the same however stage 1 was solved.

    Clarabel (interior point; HiGHS's active-set QP solver stops with primal
    infeasibilities on these faces) solves the least-squares problem, each
    target an auxiliary column ``p_k = e_k(x) - e_k(x0)`` measured from the
    LP's vertex ``x0`` (a diagonal Hessian; without the large constant
    ``sum e_k(x0)^2``, which would set the scale of its relative stopping
    test: the minimiser is found to about 1e-8 currency).  Nothing in the linopy
    model changes but its solution.  If the point cannot be found (a
    quadratic cost, a solve that does not end optimal, a point outside the
    model's tolerance), the solution stays as it was and a warning says so."""
    m = built.model
    if built.quadratic:
        return ("the settlement uses the solver's optimum, which may not be the only one: a unique point is selected only for a linear total cost",)
    mat = m.matrices
    A = mat.A.tocsr() if mat.A is not None else sp.csr_matrix((0, len(mat.vlabels)))
    b, sense = np.asarray(mat.b, dtype=float), np.asarray(mat.sense).copy()
    lb, ub, c = np.asarray(mat.lb, dtype=float).copy(), np.asarray(mat.ub, dtype=float).copy(), np.asarray(mat.c, dtype=float)
    pos = m.variables.label_index.label_to_pos
    integer = np.isin(np.asarray(mat.vtypes), ["B", "I"])
    if integer.any():
        lb[integer] = ub[integer] = np.round(_solution_by_label(m)[np.asarray(mat.vlabels)[integer]])
    cones = [(block.kind, pos[block.rows()]) for block in built.cones]
    E, const = _target_rows(targets, pos, A.shape[1])
    if cones:
        saved = {name: var.solution.copy() for name, var in m.variables.items()} if m.status == "ok" else None
        found = solve(built)
        if found.doubts():
            _put(m, saved)
            return (f"the settlement point was not selected (the central optimum: {'; '.join(found.doubts())}); the settlement uses the answer as found",)
        status, x = _least_squares(*_near_optimal(A, b, sense, c, found.objective - built.offset), lb, ub, np.zeros(len(c)), E, const, cones)
    else:
        face = _optimal_face(A, b, sense, lb, ub, c)
        if isinstance(face, str):
            return (f"the settlement point was not selected ({face}); the settlement uses the solver's optimum, which may not be the only one",)
        face_sense, face_lb, face_ub, start = face
        status, x = _least_squares(A, b, face_sense, face_lb, face_ub, start, E, const, cones)
        if status != "Solved":  # the exact face is numerically too tight for the interior point: within SLACK of the optimum
            status, x = _least_squares(*_near_optimal(A, b, sense, c, float(c @ start)), lb, ub, np.zeros(len(c)), E, const, cones)
    if status != "Solved":
        return (f"the settlement point was not selected (Clarabel ended '{status}'); the settlement uses the solver's optimum, which may not be the only one",)
    saved = {name: var.solution.copy() for name, var in m.variables.items()} if m.status == "ok" else None
    chosen = np.full(m._xCounter, np.nan)
    chosen[np.asarray(mat.vlabels)] = x
    store_solution(m, chosen)
    worst = max(primal_residual(built), conic.cone_violation(built, chosen))
    if worst > FEASIBILITY_TOL:
        _put(m, saved)
        return (f"the settlement point was not selected (it violates the model by {worst:.3g} p.u.); the settlement uses the solver's optimum, which may not be the only one",)
    return ()


def _near_optimal(A: sp.csr_matrix, b, sense, c, z: float) -> tuple:
    """(A, b, sense) with the cost row ``c'x <= z + SLACK * max(1, |z|)`` added (scaled by max(1, |z|))."""
    scale = max(1.0, abs(z))
    return sp.vstack([A, sp.csr_matrix(c / scale)], format="csr"), np.append(b, z / scale + SLACK), np.append(sense, "<")


def _least_squares(A: sp.csr_matrix, b, sense, lb, ub, start, E: sp.csr_matrix, const, cones) -> tuple[str, np.ndarray]:
    """Clarabel's status and ``argmin sum_k (E x + const)_k^2`` over ``A x (sense) b``,
    ``lb <= x <= ub`` and the cones, with every target an auxiliary column
    measured from ``start``: ``e(x) = a + p``, ``p = E (x - start)``, so
    ``sum e^2 = const + 2 a'p + p'p`` -- the same minimiser, without the large
    constant that would set the scale of Clarabel's (relative) stopping test."""
    n, k = A.shape[1], E.shape[0]
    a = E @ start + const
    A_all = sp.vstack([sp.hstack([A, sp.csr_matrix((A.shape[0], k))]), sp.hstack([E, -sp.identity(k)])], format="csr")
    Q = sp.block_diag([sp.csr_matrix((n, n)), 2 * sp.identity(k)], format="csc")
    form = conic.assemble(A_all, np.append(b, E @ start), np.append(sense, np.full(k, "=")), np.append(lb, np.full(k, -np.inf)), np.append(ub, np.full(k, np.inf)), Q, np.append(np.zeros(n), 2 * a), cones, np.arange(n + k), np.zeros(n + k, dtype=str))
    for tight in ([CONIC_SELECTION_TOL] if cones else []) + [{}]:  # tight first with cones; Clarabel's defaults if it cannot
        sol = clarabel.DefaultSolver(form.P_solve, form.q_solve, form.A, form.b, clarabel_backend.cones(form), clarabel_backend.settings(**tight)).solve()
        if clarabel_backend.name(sol) == "Solved":
            break
    return clarabel_backend.name(sol), form.full(np.asarray(sol.x))[:n]


#: Clarabel's tolerances for the selection over a conic model's near-optimal set (its defaults,
#: 1e-8, elsewhere).  The set is thin (``SLACK``) and curved, so the minimiser moves with the
#: cone's and rows' accuracy.  Measured on cases/three_microgrids.grid (SOC): at 1e-8 the point
#: violates rows and cones by 1.5e-10 p.u., at 1e-9 by 3e-11 ('Solved'), and the members' costs
#: move by 2.4e-4 currency (3.5e-7 of the surplus); at 1e-10 Clarabel ends 'AlmostSolved' or
#: with rows violated by 4e-7.  Should it not end 'Solved', the selection is solved again at its defaults
CONIC_SELECTION_TOL = {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9}


#: a reduced cost or row dual is nonzero above this share of the largest cost coefficient
DUAL_TOL = 1e-9
#: scipy's method for the LP whose duals give the optimal face (a vertex and exact duals)
FACE_LP_METHOD = "highs-ds"


def _optimal_face(A: sp.csr_matrix, b, sense, lb, ub, c) -> tuple | str:
    """(sense, lb, ub) of the optimal face of ``min c'x, A x (sense) b, lb <= x <= ub``,
    or why it was not found (see :func:`select`)."""
    from scipy.optimize import linprog

    eq, le, ge = sense == "=", sense == "<", sense == ">"
    upper = sp.vstack([A[le], -A[ge]], format="csr")
    rhs = np.concatenate([b[le], -b[ge]])
    bounds = np.column_stack([np.where(np.isfinite(lb), lb, -np.inf), np.where(np.isfinite(ub), ub, np.inf)])
    res = linprog(c, A_ub=upper if upper.shape[0] else None, b_ub=rhs if upper.shape[0] else None, A_eq=A[eq] if eq.any() else None, b_eq=b[eq] if eq.any() else None, bounds=bounds, method=FACE_LP_METHOD)
    if res.status != 0:
        return f"the LP solved again for its duals ended: {res.message}"
    tol = DUAL_TOL * max(1.0, float(np.abs(c).max(initial=0.0)))
    lb, ub, sense = lb.copy(), ub.copy(), sense.copy()
    at_lower, at_upper = np.abs(res.lower.marginals) > tol, np.abs(res.upper.marginals) > tol
    ub[at_lower], lb[at_upper] = lb[at_lower], ub[at_upper]
    if upper.shape[0]:
        active = np.abs(res.ineqlin.marginals) > tol
        rows = np.flatnonzero(le | ge)
        sense[rows[active]] = "="
    return sense, lb, ub, res.x


def _solution_by_label(m) -> np.ndarray:
    out = np.full(m._xCounter, np.nan)
    for _, var in m.variables.items():
        labels, values = var.labels.values.ravel(), var.solution.values.ravel()
        out[labels[labels >= 0]] = values[labels >= 0]
    return out


def _target_rows(targets, pos: np.ndarray, n: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """The targets' linear expressions as sparse rows over the model's columns, and their constants."""
    blocks, consts = [], []
    for expr in targets:
        e = as_linopy(expr)
        dims = [d for d in e.coord_dims]
        labels = e.vars.transpose(*dims, "_term").values.reshape(-1, e.nterm)
        coeffs = e.coeffs.transpose(*dims, "_term").values.reshape(-1, e.nterm)
        row, term = np.nonzero(labels >= 0)
        blocks.append(sp.csr_matrix((coeffs[row, term], (row, pos[labels[row, term]])), shape=(labels.shape[0], n)))
        consts.append(np.nan_to_num(e.const.transpose(*dims).values.ravel()))
    return sp.vstack(blocks, format="csr"), np.concatenate(consts)


def _over_agents(agents: tuple[str, ...], values) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype=float), coords={"agent": list(agents)}, dims="agent")


def _step_value(case: ir.CaseIR, g: ir.GameIR) -> xr.DataArray:
    """The mean of the two tariffs times the step length: net export in currency."""
    return xr.DataArray((g.retail + g.feed_in) / 2 * case.system.dt, coords={ir.TIME: pd.RangeIndex(len(g.retail), name=ir.TIME)}, dims=ir.TIME)


def _cost_exprs(built: Built, agents: tuple[str, ...]):
    """Each agent's cost terms as one linear expression over ``agent``: every
    kind's per-instance cost times the 0/1 ownership of (instance, agent), summed."""
    total = None
    for kind, value in built.costs:
        if not is_expr(value):
            continue  # a constant cost is the same at every point
        lin = as_linopy(value)
        names = lin.indexes[kind]
        owned = np.equal.outer([built.case.owners.get(str(n), "") for n in names], list(agents)).astype(float)
        if not owned.any():
            continue
        keep = owned.any(axis=1)
        part = (lin.isel({kind: np.flatnonzero(keep)}) * xr.DataArray(owned[keep], coords={kind: names[keep], "agent": list(agents)}, dims=(kind, "agent"))).sum(kind)
        total = part if total is None else total + part
    return total if total is not None else _over_agents(agents, np.zeros(len(agents)))


def _disagreements(built: Built, mk: ir.MarketIR) -> tuple[np.ndarray, list[str], float]:
    """Each member's cost alone (its disagreement point), what to say about
    them, and the fee collector's cost alone (NaN without one).

    A member whose problem alone has no trusted solution cannot operate alone:
    that is an error at the market, naming the conflict HiGHS finds in the
    island's rows (or, if it finds none, how the solve ended)."""
    everyone = (*mk.members, mk.operator) if mk.operator else mk.members
    out = np.empty(len(everyone))
    for i, agent in enumerate(everyone):
        island = build(alone(built.case, agent))
        try:
            r = solve(island)
        except GridError as exc:
            raise _cannot_operate_alone(mk, agent, [e.message for e in getattr(exc, "errors", [exc])]) from None
        if r.doubts():
            conflict = _infeasible(island)
            raise _cannot_operate_alone(mk, agent, [e.message for e in getattr(conflict, "errors", [conflict])] if conflict is not None else list(r.doubts()))
        out[i] = r.objective
    n = len(mk.members)
    return out[:n], [], float(out[n]) if mk.operator else float("nan")


def _infeasible(island: Built) -> GridError | None:
    """HiGHS's conflict in the linear part of a model, if that part is infeasible."""
    from gridlang.solvers.highs import explain_infeasible

    try:
        error = explain_infeasible(island, "HiGHS")
    except Exception:  # HiGHS could not even run the model: no conflict to show
        return None
    return error if str(island.model.termination_condition) in ("infeasible", "infeasible_or_unbounded") else None


def _cannot_operate_alone(mk: ir.MarketIR, agent: str, why: list[str]) -> GridError:
    why = [w.removeprefix("infeasible: ") for w in why]
    shown = "; ".join(why[:3]) + (f"; and {len(why) - 3} more" if len(why) > 3 else "")
    return GridError(
        mk.span,
        f"member '{agent}' of market '{mk.name}' cannot operate alone: as an island of its own assets, without trading, its problem has no solution, so it has no disagreement point ({shown})",
        f"give '{agent}' a curtailable load (curtailable = ... %), a generator or grid connection of its own, or leave it out of the market",
    )


def _member_costs(built: Built, block):
    """Each member's cost over ``agent``: its assets, the fees it pays and, with a
    fee collector, the tariff it pays for upstream energy (see the module doc)."""
    mk = block.market
    fees = as_linopy(block.fees).rename(seller="agent")
    total = _cost_exprs(built, mk.members) + fees
    return total + _tariffs(built, block) if mk.operator else total


def _tariffs(built: Built, block):
    """``sum_t (import_price[t] s[o, i, t] - export_price[t] s[i, o, t]) dt`` over ``agent``."""
    mk = block.market
    labels = built.model.variables[block.sale].labels
    members = pd.Index(mk.members, name="agent")
    dt = built.case.system.dt
    time = labels.indexes[ir.TIME]
    bought = labels.sel(seller=mk.operator, drop=True).sel(buyer=list(mk.members)).rename(buyer="agent").assign_coords(agent=members)
    sold = labels.sel(buyer=mk.operator, drop=True).sel(seller=list(mk.members)).rename(seller="agent").assign_coords(agent=members)
    price_in = xr.DataArray(mk.import_price * dt, coords={ir.TIME: time}, dims=ir.TIME)
    price_out = xr.DataArray(-mk.export_price * dt, coords={ir.TIME: time}, dims=ir.TIME)
    return as_linopy(Lin(built.model, ((bought, price_in), (sold, price_out))).sum(ir.TIME))


def _operator_cost(built: Built, block):
    """The fee collector's cost: its own assets less the tariffs and fees it receives."""
    return _cost_exprs(built, (block.market.operator,)).sum("agent") - _tariffs(built, block).sum("agent") - as_linopy(block.fees).sum()


def _sold(built: Built, block):
    """``E_i = sum_t sum_{j member} s[i, j, t] dt``: energy each member sold to the others, over ``seller``."""
    mk = block.market
    labels = built.model.variables[block.sale].labels.sel(seller=list(mk.members), buyer=list(mk.members))
    return as_linopy(Lin(built.model, ((labels, built.case.system.dt),)).sum("buyer").sum(ir.TIME))


def _contribution_value(built: Built, mk: ir.MarketIR) -> float:
    """The weight of the energy sold among the settlement point's targets: the
    market's mean fee, at least 1 $/MWh (in internal currency per p.u. energy)."""
    return max(float(mk.fee.mean()), built.case.system.base.factor("$/MWh")[0])


def _settle_market(built: Built, block, disagreement: np.ndarray, messages: list[str], operator_alone: float = float("nan"), executor: str = "serial") -> Settlement:
    """Stage 2 of one market at the solution in ``built`` (see the module docstring)."""
    from gridlang.decompose import nash

    mk = block.market
    fees = np.asarray(as_linopy(block.fees).solution.values, dtype=float)
    cost = np.asarray(_member_costs(built, block).solution.values, dtype=float)
    messages = list(messages)
    powers, contribution = mk.powers, None
    if mk.power_rule == "contribution":
        energy = contribution = np.maximum(np.asarray(_sold(built, block).solution.values, dtype=float), 0.0) * _energy_unit(built)  # MWh
        powers = energy / energy.sum() if energy.sum() > 0 else np.full(len(mk.members), 1.0 / len(mk.members))
        if energy.sum() <= 0:
            messages.append(f"nobody sold to another member of market '{mk.name}': bargaining powers by contribution are equal")
    iterations = 0
    if np.isnan(disagreement).any():
        surplus, gain, payment = float("nan"), np.full(len(mk.members), np.nan), np.full(len(mk.members), np.nan)
    else:
        surplus, gain, payment = nash_payments(cost, disagreement, powers)
        if surplus < 0:
            messages.append(f"the surplus of market '{mk.name}' is negative ({surplus:.4g}): trading costs more than it saves, so no agent can be made whole")
        elif mk.method == "cf_admm":
            found, iterations, _ = nash.nash_admm(disagreement - cost, powers, executor=executor)
            if np.abs(found - payment).max() > nash.AGREE * max(1.0, abs(surplus)):
                messages.append(f"CF-ADMM's payments in market '{mk.name}' differ from the closed form by {np.abs(found - payment).max():.3g} after {iterations} iterations")
            payment = found
            gain = disagreement - cost - payment
    operator_cost, physical, tariff = float("nan"), float("nan"), None
    if mk.operator:
        tariff = np.asarray(_tariffs(built, block).solution.values, dtype=float)
        operator_cost = float(_operator_cost(built, block).solution)
        total = float(built.model.objective.expression.solution.sum()) + built.offset  # stage 1's total at the settlement point
        physical = total - float(fees.sum())
    pairwise = nash.pairwise(payment) if np.isfinite(payment).all() else None
    return Settlement(mk.name, mk.members, powers, cost, fees, disagreement, surplus, gain, payment, float(fees.sum()), tuple(messages), mk.operator, tariff, operator_cost, operator_alone, physical, pairwise, mk.method, iterations, contribution)


def _energy_unit(built: Built) -> float:
    """MWh per internal energy unit (p.u. power times hours)."""
    return 1.0 / built.case.system.base.factor("MW")[0]


def alone(case: ir.CaseIR, *agents: str) -> ir.CaseIR:
    """The case reduced to some agents' assets, without markets or games.

    The network owner keeps its networks; any other agent's assets balance
    among themselves on a copper plate of its own (an island), whose buses
    are named ``bus@agent`` so that agents sharing a bus stay apart.  Several
    agents alone are independent problems solved as one model."""

    def island_bus(name: str, bus: str) -> str:
        owner = case.owners.get(name)
        return bus if owner == case.network_owner else f"{bus}@{owner}"

    groups = []
    for g in case.groups:
        pick = np.flatnonzero([case.owners.get(n) in agents for n in g.names])
        if len(pick):
            params = {k: v[pick] for k, v in g.params.items()}
            names = tuple(np.asarray(g.names)[pick])
            buses = tuple(island_bus(n, g.buses[i]) for n, i in zip(names, pick))
            groups.append(replace(g, names=names, buses=buses, params=params, spans=tuple(g.spans[i] for i in pick)))
    networks = case.networks if case.network_owner in agents else ()
    for agent in agents:
        if agent != case.network_owner:
            buses = tuple(dict.fromkeys(b for g in groups for n, b in zip(g.names, g.buses) if case.owners.get(n) == agent))
            no_lines = np.zeros(0, dtype=int)
            networks += (ir.NetworkIR(f"{agent}_island", _stdlib_model("copper_plate"), buses, (), no_lines, no_lines, {"slack": np.zeros((len(buses), 1), dtype=bool)}, case.system.span),)
    plan = case.plan
    if plan is not None and plan.reliability is not None and not networks[:1] == case.networks[:1]:
        plan = replace(plan, reliability=None, limits={}, voll=0.0)  # its failure data belong to the network left out
    return replace(case, groups=tuple(groups), networks=networks, markets=(), games=(), plan=plan)


@cache
def _stdlib_model(name: str) -> ir.ModelDef:
    from gridlang.compiler.models import model_def
    from gridlang.compiler.resolve import stdlib
    from gridlang.errors import Collector

    node = next(s for m in stdlib() for s in m.statements if isinstance(s, ast.KindDef | ast.FormulationDef) and s.name.name == name)
    return model_def(node, Collector())
