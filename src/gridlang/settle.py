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
    out = dict.fromkeys(agents, 0.0)
    for kind, value in built.costs:
        per_instance = as_linopy(value).solution
        for name, v in zip(per_instance.coords[kind].values, np.atleast_1d(per_instance.values)):
            agent = owners.get(str(name))
            if agent in out:
                out[agent] += float(v)
    return np.array([out[a] for a in agents])


def settle(built: Built, solve_alone) -> tuple[Settlement, ...]:
    """Stage 2 of every market; ``solve_alone(case_ir)`` returns the optimal cost or raises."""
    out = []
    for block in built.markets:
        mk = block.market
        fees = np.asarray(as_linopy(block.fees).solution.values, dtype=float)
        cost = agent_costs(built, mk.members) + fees
        messages = []
        disagreement = np.empty(len(mk.members))
        for i, agent in enumerate(mk.members):
            try:
                disagreement[i] = solve_alone(alone(built.case, agent))
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


def alone(case: ir.CaseIR, agent: str) -> ir.CaseIR:
    """The case reduced to one agent's assets, without markets.

    The network owner keeps its networks; any other agent's assets balance
    among themselves on a copper plate (an island)."""
    groups = []
    for g in case.groups:
        keep = np.array([case.owners.get(n) == agent for n in g.names])
        if keep.any():
            pick = np.flatnonzero(keep)
            params = {k: v[pick] for k, v in g.params.items()}
            groups.append(replace(g, names=tuple(np.asarray(g.names)[pick]), buses=tuple(np.asarray(g.buses)[pick]), params=params, spans=tuple(g.spans[i] for i in pick)))
    networks = case.networks
    if agent != case.network_owner:
        buses = tuple(dict.fromkeys(b for g in groups for b in g.buses))
        island = ir.NetworkIR(f"{agent}_island", _copper_plate(), buses, (), np.zeros(0, dtype=int), np.zeros(0, dtype=int), {"slack": np.zeros((len(buses), 1), dtype=bool)}, case.system.span)
        networks = (island,)
    return replace(case, groups=tuple(groups), networks=networks, markets=())


@cache
def _copper_plate() -> ir.ModelDef:
    from gridlang.compiler.models import model_def
    from gridlang.compiler.resolve import stdlib
    from gridlang.errors import Collector

    node = next(s for m in stdlib() for s in m.statements if isinstance(s, ast.FormulationDef) and s.name.name == "copper_plate")
    return model_def(node, Collector())
