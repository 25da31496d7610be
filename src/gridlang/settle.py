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
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

import numpy as np
import pandas as pd

from gridlang.compiler import ir
from gridlang.compiler.build import Built
from gridlang.compiler.expressions import as_linopy
from gridlang.errors import GridError
from gridlang.grammar import ast


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

    @property
    def budget_balance(self) -> float:
        """Sum of payments (zero when the payments balance)."""
        return float(self.payment.sum())

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


def settle(built: Built, solve_alone) -> tuple[Settlement, ...]:
    """Stage 2 of every market; ``solve_alone(case_ir)`` builds and solves, giving (Built, Result), or raises."""
    out = []
    for block in built.markets:
        mk = block.market
        fees = np.asarray(as_linopy(block.fees).solution.values, dtype=float)
        cost = agent_costs(built, mk.members) + fees
        messages = []
        disagreement = np.empty(len(mk.members))
        for i, agent in enumerate(mk.members):
            try:
                disagreement[i] = solve_alone(alone(built.case, agent))[1].objective
            except GridError as exc:
                disagreement[i] = np.nan
                messages.append(f"agent '{agent}' cannot operate alone ({exc.errors[0].message if hasattr(exc, 'errors') else exc}); no disagreement point, so no payments")
        if np.isnan(disagreement).any():
            surplus, gain, payment = float("nan"), np.full(len(mk.members), np.nan), np.full(len(mk.members), np.nan)
        else:
            surplus, gain, payment = nash_payments(cost, disagreement, mk.powers)
            if surplus < 0:
                messages.append(f"the surplus of market '{mk.name}' is negative ({surplus:.4g}): trading costs more than it saves, so no agent can be made whole")
        out.append(Settlement(mk.name, mk.members, mk.powers, cost, fees, disagreement, surplus, gain, payment, float(fees.sum()), tuple(messages)))
    return tuple(out)


def alone(case: ir.CaseIR, *agents: str) -> ir.CaseIR:
    """The case reduced to some agents' assets, without markets or games.

    The network owner keeps its networks; any other agent's assets balance
    among themselves on a copper plate of its own (an island).  Several
    agents alone are independent problems solved as one model."""
    groups = []
    for g in case.groups:
        pick = np.flatnonzero([case.owners.get(n) in agents for n in g.names])
        if len(pick):
            params = {k: v[pick] for k, v in g.params.items()}
            groups.append(replace(g, names=tuple(np.asarray(g.names)[pick]), buses=tuple(np.asarray(g.buses)[pick]), params=params, spans=tuple(g.spans[i] for i in pick)))
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


def settle_games(built: Built, solve_alone) -> tuple[GameSettlement, ...]:
    """Stage 2 of every prosumer-operator game (see :class:`GameSettlement`)."""
    case = built.case
    dt = case.system.dt
    price_unit = case.system.base.factor("$/MWh")[0]
    power_unit = case.system.base.factor("MW")[0]
    out = []
    for block in built.games:
        g = block.game
        messages: list[str] = []
        exported = np.asarray(block.exported.solution.transpose("agent", ...).values, dtype=float)
        m = -exported  # net import per prosumer and step, p.u.
        costs = agent_costs(built, (*g.prosumers, g.operator))
        cost, operator_cost = costs[:-1], float(costs[-1])
        tariff_built, tariffs = solve_alone(with_tariffs(alone(case, *g.prosumers), g))  # every prosumer alone, one model
        alone_cost = agent_costs(tariff_built, g.prosumers)
        flows = (tariffs.dataset["grid-import"] - tariffs.dataset["grid-export"]) * power_unit
        schedules = flows.sel(grid=[f"{a}_tariff" for a in g.prosumers]).values
        buses = _buses_of(case, g.prosumers)
        _, served = solve_alone(with_schedules(alone(case, g.operator), g, buses, schedules))
        revenue = float(((g.retail * np.maximum(schedules, 0) + g.feed_in * np.minimum(schedules, 0)) * dt).sum())
        operator_alone = served.objective - revenue
        surplus = float(alone_cost.sum() + operator_alone - cost.sum() - operator_cost)
        wanted = float(alone_cost.sum() - cost.sum() - g.powers[0] * surplus)  # the unconstrained Nash transfer
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
        if surplus < -1e-9 * max(1.0, abs(alone_cost.sum())):
            messages.append(f"the surplus of game '{g.name}' is negative ({surplus:.4g}): cooperation costs more than the tariffs")
        price = low + theta * (high - low)
        paid = (price * m * dt).sum(axis=1)  # each prosumer's energy bill at the interactive price
        transfer = float(paid.sum())
        out.append(GameSettlement(g.name, g.prosumers, g.operator, g.powers, price / price_unit, g.retail / price_unit, g.feed_in / price_unit, theta, m / power_unit, cost, operator_cost, alone_cost, operator_alone, surplus, transfer, cost + paid, operator_cost - transfer, tuple(messages)))
    return tuple(out)


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
