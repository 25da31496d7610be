"""Stage 2 of a prosumer-operator game: the prosumers alone at the tariffs,
the operator serving their schedules, and the interactive price that
splits the surplus of cooperation by Nash bargaining (see
:class:`GameSettlement`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gridlang.compiler import ir
from gridlang.compiler.build import Built, build
from gridlang.errors import GridError
from gridlang.settle import _stdlib_model, _step_value, agent_costs, alone, select, solve


@dataclass(frozen=True, slots=True, eq=False)
class GameSettlement:
    """A prosumer-operator game after bargaining; money in currency, prices in currency/MWh.

    Alone, every prosumer trades with the operator at the tariffs (buys at
    ``retail``, sells at ``feed_in``) and the operator serves those schedules.
    Together they dispatch jointly; the surplus ``S`` is split by the powers
    (prosumer side, operator), which fixes the transfer ``T`` from the prosumers
    to the operator.  The interactive price carries that transfer on the
    prosumers' net imports ``m_t``, ``T = sum_t lambda_t m_t dt``, with
    ``lambda_t = low_t + theta (high_t - low_t)`` and one ``theta`` in [0, 1]
    for the day, where ``high_t`` is the tariff that favours the operator at
    that step (retail when the prosumers import on balance, feed-in when they
    export) and ``low_t`` the other.  If the split needs ``theta`` outside
    [0, 1], the price stays at the nearer bound: the Nash product is concave
    in ``theta``, so that bound is the bargaining solution within the tariffs."""

    game: str
    prosumers: tuple[str, ...]
    operator: str
    powers: np.ndarray
    price: np.ndarray  # interactive price per step, currency/MWh
    retail: np.ndarray  # the tariffs, currency/MWh
    feed_in: np.ndarray
    theta: float
    net_import: np.ndarray  # (prosumers, T) MW, stage 1
    cost: np.ndarray  # prosumers' own costs at stage 1 (before paying for energy)
    operator_cost: float
    alone: np.ndarray  # each prosumer at the tariffs alone
    operator_alone: float
    surplus: float
    transfer: float  # from the prosumer side to the operator
    final: np.ndarray  # prosumers: cost + energy bought at the interactive price
    operator_final: float
    messages: tuple[str, ...] = ()

    @property
    def gain(self) -> np.ndarray:
        return self.alone - self.final

    @property
    def operator_gain(self) -> float:
        return self.operator_alone - self.operator_final


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
    case, g = built.case, block.game
    dt = case.system.dt
    price_unit = case.system.base.factor("$/MWh")[0]
    power_unit = case.system.base.factor("MW")[0]
    messages = list(a.messages)
    m = -np.asarray(block.exported.solution.transpose("agent", ...).values, dtype=float)  # net import per prosumer and step, p.u.
    costs = agent_costs(built, (*g.prosumers, g.operator))
    cost, operator_cost = costs[:-1], float(costs[-1])
    surplus = float(a.cost.sum() + a.operator - cost.sum() - operator_cost)
    wanted = float(a.cost.sum() - cost.sum() - g.powers[0] * surplus)  # the unconstrained Nash transfer
    total = m.sum(axis=0)
    importing = total >= 0  # per step: the prosumer side buys (or sells) on balance
    low = np.where(importing, g.feed_in, g.retail)  # the price that favours the prosumers most
    high = np.where(importing, g.retail, g.feed_in)  # ... and the operator most
    base, spread = float((low * total * dt).sum()), float(((high - low) * total * dt).sum())
    theta = 0.5 if abs(spread) < 1e-12 else (wanted - base) / spread
    if not 0 <= theta <= 1:  # the Nash product is concave in theta: its best feasible point is the nearer bound
        messages.append(
            f"the split by bargaining power needs theta = {theta:.3g}, outside [0, 1]: the price sits at the "
            f"bound that favours the {'operator' if theta > 1 else 'prosumers'} and the gains follow from it"
        )
        theta = min(max(theta, 0.0), 1.0)
    if surplus < -1e-9 * max(1.0, abs(a.cost.sum())):
        messages.append(f"the surplus of game '{g.name}' is negative ({surplus:.4g}): cooperation costs more than the tariffs")
    price = low + theta * (high - low)
    paid = (price * m * dt).sum(axis=1)  # each prosumer's energy bill at the interactive price
    transfer = float(paid.sum())
    return GameSettlement(g.name, g.prosumers, g.operator, g.powers, price / price_unit, g.retail / price_unit, g.feed_in / price_unit, theta, m / power_unit, cost, operator_cost, a.cost, a.operator, surplus, transfer, cost + paid, operator_cost - transfer, tuple(messages))


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
