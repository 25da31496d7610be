"""Stage 2 of a prosumer-operator game: the prosumers alone at the tariffs,
the operator serving their schedules, and the interactive prices that split
the surplus of cooperation by generalized Nash bargaining among all agents,
each prosumer against its own disagreement point (see :class:`GameSettlement`
and :func:`bargain`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from gridlang.compiler import ir
from gridlang.compiler.build import Built, build
from gridlang.errors import GridError
from gridlang.settle import _stdlib_model, _step_value, agent_costs, alone, select, solve


@dataclass(frozen=True, slots=True, eq=False)
class GameSettlement:
    """A prosumer-operator game after bargaining; money in currency, prices in currency/MWh.

    Alone, prosumer ``i`` trades with the operator at the tariffs (buys at
    ``retail``, sells at ``feed_in``): its cost ``d_i``; the operator serves
    those schedules: ``d_0``.  Together they dispatch jointly (the settlement
    point of :func:`gridlang.settle.select`): prosumer ``i``'s own cost ``c_i``
    and net import ``m_it``, the operator's cost ``c_0``; the surplus is
    ``S = sum_i d_i + d_0 - sum_i c_i - c_0``.  Prosumer ``i`` pays the
    operator ``B_i = sum_t lambda_it m_it dt`` at its interactive price
    ``lambda_it``; its gain is ``g_i = d_i - c_i - B_i``, the operator's
    ``g_0 = d_0 - c_0 + sum_i B_i``, so the gains add up to ``S``.

    The gains are the generalized Nash bargaining solution among all agents
    with transferable utility, each price within the tariffs (:func:`bargain`)::

        max  w_0 log g_0 + sum_i w_i log g_i
        s.t. g_0 + sum_i g_i = S,   lo_i <= g_i <= hi_i

    where ``w_0`` is the operator's power, the prosumer side's power is shared
    equally (``w_i = w_P / n``), and ``[lo_i, hi_i]`` are prosumer ``i``'s
    gains at the highest and lowest bill that prices within
    ``[feed_in_t, retail_t]`` allow on its trades.  Its solution is
    ``g_i = clip(w_i tau, lo_i, hi_i)``, ``g_0 = w_0 tau``, with the one
    ``tau`` that makes the gains add up to ``S``: without the bounds every
    agent gets ``w S``, so every gain is >= 0 whenever ``S >= 0``; a
    prosumer whose share needs a price outside the tariffs (or that never
    trades) gets the bound, and a message names it and the amount.

    Prosumer ``i``'s price is ``lambda_it = low_it + theta_i (high_it - low_it)``
    with ``low_it`` the tariff that favours it at step t (feed-in when it
    imports, retail when it exports), ``high_it`` the other, and the one
    ``theta_i`` in [0, 1] that carries ``B_i``.  ``theta`` is the prosumer
    side's total bill on the same scale (0: every bill at its lowest, 1: at
    the tariffs)."""

    game: str
    prosumers: tuple[str, ...]
    operator: str
    powers: np.ndarray  # (prosumer side, operator)
    price: np.ndarray  # (prosumers, T) interactive price per prosumer and step, currency/MWh
    retail: np.ndarray  # the tariffs, currency/MWh
    feed_in: np.ndarray
    theta: float  # the prosumer side's total bill between its lowest (0) and the tariffs (1)
    net_import: np.ndarray  # (prosumers, T) MW, stage 1
    cost: np.ndarray  # prosumers' own costs at stage 1 (before paying for energy)
    operator_cost: float
    alone: np.ndarray  # each prosumer at the tariffs alone
    operator_alone: float
    surplus: float
    transfer: float  # from the prosumer side to the operator
    final: np.ndarray  # prosumers: cost + energy bought at the interactive price
    operator_final: float
    thetas: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (prosumers,) each prosumer's theta_i
    share: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (prosumers,) each prosumer's Nash share w_i S without the tariffs' bounds
    exchange: object = None  # gridlang.decompose.exchange.Exchange when the price was found by exchange
    messages: tuple[str, ...] = ()

    @property
    def gain(self) -> np.ndarray:
        return self.alone - self.final

    @property
    def operator_gain(self) -> float:
        return self.operator_alone - self.operator_final

    @property
    def rational(self) -> bool:
        """No agent ends worse off than at the tariffs alone."""
        tol = 1e-9 * max(1.0, abs(self.surplus))
        return bool((self.gain >= -tol).all() and self.operator_gain >= -tol)


@dataclass(frozen=True, slots=True, eq=False)
class Bargain:
    """The bargaining solution of :func:`bargain`, in the units it was given."""

    gain: np.ndarray  # (n,) prosumers' gains
    operator_gain: float
    bill: np.ndarray  # (n,) what each prosumer pays the operator
    price: np.ndarray  # (n, T)
    theta: np.ndarray  # (n,)
    share: np.ndarray  # (n,) w_i S
    lowest: np.ndarray  # (n,) lowest and highest bills within the tariffs
    highest: np.ndarray
    tau: float


def bargain(cost: np.ndarray, alone: np.ndarray, operator_cost: float, operator_alone: float, m: np.ndarray, retail: np.ndarray, feed_in: np.ndarray, dt: float, powers: np.ndarray) -> Bargain:
    """The generalized Nash bargaining solution within the tariffs (see :class:`GameSettlement`).

    ``m`` is (n, T) net import; prices, money and powers in any consistent
    units.  ``tau`` is found exactly: ``F(tau) = w_0 tau + sum_i clip(w_i tau, lo_i, hi_i)``
    is continuous, piecewise linear and strictly increasing, so the root of
    ``F(tau) = S`` is unique; bisection finds the piece, a linear solve the point."""
    n = len(alone)
    w = np.full(n, powers[0] / max(n, 1))
    w0 = float(powers[1])
    importing = m >= 0
    low = np.where(importing, feed_in, retail)  # the price that favours the prosumer at that step
    high = np.where(importing, retail, feed_in)
    lowest, highest = (low * m * dt).sum(axis=1), (high * m * dt).sum(axis=1)
    own = alone - cost  # a prosumer's gain before paying for energy
    lo, hi = own - highest, own - lowest
    surplus = float(alone.sum() + operator_alone - cost.sum() - operator_cost)

    def total(tau: float) -> float:
        return w0 * tau + float(np.clip(w * tau, lo, hi).sum())

    if w0 == 0 and not w.any():
        raise ValueError("bargaining powers are all zero")
    a, b = -1.0, 1.0
    for _ in range(2000):  # with w_0 = 0, F is bounded: the operator then takes what the bounds leave
        if total(a) <= surplus:
            break
        a *= 2
    for _ in range(2000):
        if total(b) >= surplus:
            break
        b *= 2
    for _ in range(200):
        mid = 0.5 * (a + b)
        if total(mid) < surplus:
            a = mid
        else:
            b = mid
        if b - a <= 1e-15 * max(1.0, abs(a)):
            break
    tau = 0.5 * (a + b)
    free = (w * tau > lo) & (w * tau < hi) & (w > 0)
    if w0 + w[free].sum() > 0:  # the exact point on this piece
        bound = np.clip(w * tau, lo, hi)[~free].sum()
        tau = (surplus - bound) / (w0 + w[free].sum())
    gain = np.where(free, w * tau, np.clip(w * tau, lo, hi))
    bill = own - gain
    spread = highest - lowest
    trades = spread > 1e-12 * np.maximum(1.0, np.abs(highest) + np.abs(lowest))
    theta = np.where(trades, (bill - lowest) / np.where(trades, spread, 1.0), 0.5)
    theta = np.clip(theta, 0.0, 1.0)
    price = low + theta[:, None] * (high - low)
    return Bargain(gain, surplus - float(gain.sum()), bill, price, theta, w * surplus, lowest, highest, tau)


@dataclass(frozen=True, slots=True, eq=False)
class AloneGame:
    """A game's sides without cooperation: prosumers at the tariffs, the operator serving them."""

    cost: np.ndarray  # each prosumer's cost at the tariffs
    operator: float  # the operator's cost serving their schedules, less what it sells them
    schedules: np.ndarray  # (prosumers, T) net import at the tariffs, internal power
    messages: tuple[str, ...] = ()


def _alone_game(built: Built, g: ir.GameIR) -> AloneGame:
    """Every prosumer alone at the tariffs (one model, on its settlement point:
    the schedules are selected as in :func:`select`), then the operator alone
    serving those schedules as fixed loads."""
    case, dt = built.case, built.case.system.dt
    tariff_built = build(with_tariffs(alone(case, *g.prosumers), g))
    names = [f"{a}_tariff" for a in g.prosumers]
    variables = tariff_built.model.variables
    flows = (variables["grid-import"] - variables["grid-export"]).sel(grid=names).rename(grid="agent").assign_coords(agent=list(g.prosumers))

    def solved() -> float:
        tariffs = solve(tariff_built)
        if tariffs.doubts():
            raise GridError(g.span, f"the prosumers of game '{g.name}' at the tariffs have no trusted solution ({'; '.join(tariffs.doubts())})", "check the prosumers' assets and the solver options")
        return tariffs.objective

    # a linear model's selection needs no solution to start from (it finds its optimal face itself)
    linear = not (tariff_built.cones or tariff_built.integer)
    if not linear:
        solved()
    messages = select(tariff_built, [flows * _step_value(case, g)])
    if messages and linear:
        solved()
    alone_cost = agent_costs(tariff_built, g.prosumers)
    schedules = (variables["grid-import"].solution - variables["grid-export"].solution).sel(grid=names).transpose("grid", ...).values
    served = solve(build(with_schedules(alone(case, g.operator), g, _buses_of(case, g.prosumers), schedules)))
    if served.doubts():
        raise GridError(g.span, f"the operator '{g.operator}' of game '{g.name}' cannot serve the prosumers' schedules at the tariffs alone ({'; '.join(served.doubts())})", "check the network's limits against the prosumers' demand")
    revenue = float(((g.retail * np.maximum(schedules, 0) + g.feed_in * np.minimum(schedules, 0)) * dt).sum())
    return AloneGame(alone_cost, served.objective - revenue, schedules, messages)


def _settle_game(built: Built, block, a: AloneGame) -> GameSettlement:
    """Stage 2 of one prosumer-operator game at the solution in ``built`` (see :class:`GameSettlement`)."""
    g = block.game
    if g.price == "exchange":
        from gridlang.decompose.exchange import Settings

        if built.integer or built.cones or built.quadratic:
            what = "a mixed-integer" if built.integer else "a conic" if built.cones else "a quadratic-cost"
            raise GridError(
                g.price_span or g.span,
                f"the price of game '{g.name}' cannot be found by exchange in {what} case: each agent's optimal face (phase 2) is found for a linear model",
                "use 'price = nash', or a linear formulation (e.g. 'uses lindistflow' or copper_plate) and linear costs",
            )
        return by_exchange(built, block, a, Settings(**{k: int(v) if k == "max_iter" else v for k, v in g.exchange}))
    return _settle_central(built, block, a)


def _settle_central(built: Built, block, a: AloneGame) -> GameSettlement:
    """The game settled on the central settlement point in ``built``."""
    case, g = built.case, block.game
    m = -np.asarray(block.exported.solution.transpose("agent", ...).values, dtype=float)  # net import per prosumer and step, p.u.
    costs = agent_costs(built, (*g.prosumers, g.operator))
    return settlement(case, g, a, costs[:-1], float(costs[-1]), m)


def settlement(case: ir.CaseIR, g: ir.GameIR, a: AloneGame, cost: np.ndarray, operator_cost: float, m: np.ndarray, exchange=None) -> GameSettlement:
    """The game settled on a dispatch: each prosumer's own cost and net import ``m`` (p.u.), the operator's cost."""
    dt = case.system.dt
    price_unit = case.system.base.factor("$/MWh")[0]
    power_unit = case.system.base.factor("MW")[0]
    messages = list(a.messages)
    b = bargain(cost, a.cost, operator_cost, a.operator, m, g.retail, g.feed_in, dt, g.powers)
    surplus = float(b.gain.sum() + b.operator_gain)
    tol = 1e-9 * max(1.0, abs(surplus), float(np.abs(a.cost).sum()))
    if surplus < -tol:
        messages.append(f"the surplus of game '{g.name}' is negative ({surplus:.4g}): cooperation costs more than the tariffs, so no agent can be made whole")
    n = len(g.prosumers)
    wanted = np.full(n, g.powers[0] / max(n, 1)) * b.tau
    for i in np.flatnonzero(np.abs(b.gain - wanted) > tol):
        agent, got = g.prosumers[i], float(b.gain[i])
        if abs(b.highest[i] - b.lowest[i]) <= tol:
            why = "it does not trade, so no price changes its bill"
        else:
            why = f"prices within the tariffs on its trades carry a bill between {b.lowest[i]:.4g} and {b.highest[i]:.4g}"
        messages.append(f"prosumer '{agent}' of game '{g.name}': its share {b.share[i]:.4g} of the surplus cannot be carried ({why}); it gains {got:.4g} and the other agents share the difference {b.share[i] - got:.4g}")
        if got < -tol:
            messages.append(f"prosumer '{agent}' of game '{g.name}' ends worse off than at the tariffs alone by {-got:.4g}, whatever the price within the tariffs")
    if b.operator_gain < -tol:
        messages.append(f"the operator '{g.operator}' of game '{g.name}' ends worse off than alone by {-b.operator_gain:.4g}")
    spread = float((b.highest - b.lowest).sum())
    theta = 0.5 if abs(spread) <= tol else float((b.bill.sum() - b.lowest.sum()) / spread)
    transfer = float(b.bill.sum())
    return GameSettlement(
        g.name, g.prosumers, g.operator, g.powers, b.price / price_unit, g.retail / price_unit, g.feed_in / price_unit, theta, m / power_unit,
        cost, operator_cost, a.cost, a.operator, surplus, transfer, cost + b.bill, operator_cost - transfer, b.theta, b.share, exchange, tuple(messages),
    )


def _buses_of(case: ir.CaseIR, agents: tuple[str, ...]) -> tuple[str, ...]:
    """The agents' points of connection (the first bus of the network for an agent without assets)."""
    buses = ir.connection_buses(case.groups, case.owners)
    return tuple(buses.get(a, case.networks[0].buses[0]) for a in agents)


def with_tariffs(case: ir.CaseIR, g: ir.GameIR) -> ir.CaseIR:
    """Prosumers alone, each with a tariff connection: buys at ``retail``, sells at ``feed_in``."""
    n = len(g.prosumers)
    names = tuple(f"{a}_tariff" for a in g.prosumers)
    inf = np.full((n, 1), np.inf)
    params = {"import_price": np.tile(g.retail, (n, 1)), "export_price": np.tile(g.feed_in, (n, 1)), "import_max": inf, "export_max": inf, "q_max": inf}
    case = replace(case, owners={**case.owners, **dict(zip(names, g.prosumers))})
    return _add_group(case, _group("grid", names, _buses_of(case, g.prosumers), params, case))


def with_schedules(case: ir.CaseIR, g: ir.GameIR, buses: tuple[str, ...], schedules: np.ndarray) -> ir.CaseIR:
    """The operator alone, serving each prosumer's tariff schedule as a fixed load at its bus."""
    n = len(g.prosumers)
    voll = case.system.base.factor("$/MWh")[0] * 1e4
    params = {"p": schedules, "q": np.zeros((n, 1)), "scale": np.ones((n, 1)), "curtailable": np.zeros((n, 1)), "voll": np.full((n, 1), voll), "customers": np.zeros((n, 1))}
    return _add_group(case, _group("load", tuple(f"{a}_schedule" for a in g.prosumers), buses, params, case))


def _add_group(case: ir.CaseIR, new: ir.Group) -> ir.CaseIR:
    """The case with more instances of a kind (joined to its group if it has one)."""
    groups = list(case.groups)
    for k, old in enumerate(groups):
        if old.kind.name == new.kind.name:
            width = {key: max(old.params[key].shape[1], new.params[key].shape[1]) for key in old.params}
            params = {key: np.vstack([np.broadcast_to(a.params[key], (len(a.names), width[key])) for a in (old, new)]) for key in old.params}
            groups[k] = replace(old, names=old.names + new.names, buses=old.buses + new.buses, params=params, spans=old.spans + new.spans)
            return replace(case, groups=tuple(groups))
    return replace(case, groups=(*groups, new))


def _group(kind: str, names, buses: tuple[str, ...], params: dict, case: ir.CaseIR) -> ir.Group:
    model = _stdlib_model(kind)
    missing = set(model.params) - set(params)
    if missing:  # the standard library changed: keep this in step with it
        raise GridError(case.system.span, f"internal: no value for {sorted(missing)} of '{kind}'")
    names = (names,) if isinstance(names, str) else names
    return ir.Group(model, tuple(names), buses, params, tuple(case.system.span for _ in names))


def by_exchange(built: Built, block, a: AloneGame, settings) -> GameSettlement:
    """The game settled on the point reached by exchange (:mod:`gridlang.decompose.exchange`):
    each agent's cost and each prosumer's net import at the exchange's point,
    bargained as at the central point (:func:`settlement`).  ``built``'s
    solution (the central settlement point) is put back afterwards.  If the
    exchange does not converge (or an agent's model fails), no price was
    agreed: the prices are NaN, so the result is not reported as a solution
    (:meth:`gridlang.solvers.result.Result.doubts`), and a message says why."""
    from gridlang.compiler.expressions import as_linopy
    from gridlang.decompose.exchange import exchange
    from gridlang.settle import _cost_exprs, _over_agents, _put
    from gridlang.solvers.result import store_solution

    case, g, m = built.case, block.game, built.model
    agents = (*g.prosumers, g.operator)
    targets = [_cost_exprs(built, agents) - _over_agents(agents, np.append(a.cost, a.operator)), as_linopy(block.exported) * _step_value(case, g)]
    try:
        x = exchange(built, g.operator, targets, settings)
    except (GridError, RuntimeError) as exc:  # an agent's own model failed: no bargain by exchange
        out = _settle_central(built, block, a)
        return replace(out, price=np.full_like(out.price, np.nan), messages=(*out.messages, f"the exchange of game '{g.name}' stopped: {getattr(exc, 'message', str(exc))}; no price was agreed"))
    saved = {name: var.solution.copy() for name, var in m.variables.items()}
    try:
        store_solution(m, x.x_by_label)
        net = -np.asarray(as_linopy(block.exported).solution.transpose("agent", ...).values, dtype=float)
        cost = agent_costs(built, agents)
    finally:
        _put(m, saved)
    out = settlement(case, g, a, cost[:-1], float(cost[-1]), net, x)
    if x.converged:
        return out
    phase = "the dispatch (phase 1)" if x.iterations == x.dispatch_iterations else "the settlement point (phase 2)"
    why = f"the exchange of game '{g.name}' did not reach {phase} in {x.iterations} iterations (imbalance {x.primal[-1]:.3g} MW, move of the targets {x.dual[-1]:.3g} MW): no price was agreed; raise max_iter or rho"
    return replace(out, price=np.full_like(out.price, np.nan), messages=(*a.messages, why))  # the bargain's own messages mean nothing at a point not reached
