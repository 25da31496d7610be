"""The resolved case: names bound, units converted, data in arrays.

Produced by :func:`gridlang.compiler.resolve.resolve` and consumed by
:func:`gridlang.compiler.build.build`.  Every parameter value is a float
array in internal per-unit, shaped ``(n, 1)`` (one value per element) or
``(n, T)`` (a series per element); flags are boolean arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from gridlang.compiler.units import Base, Dim
from gridlang.errors import Span
from gridlang.grammar import ast

TIME = "time"  # the time dimension; `t` is its index
BUS = "bus"
LINE = "line"
SETS = (BUS, LINE, TIME)


@dataclass(frozen=True, slots=True, eq=False)
class SystemIR:
    """The time axis: ``steps`` steps of ``dt`` hours, cut into periods of
    ``period`` steps (typical days in a plan; one period otherwise).  Shifts
    such as ``x[t-1]`` and the steps ``first`` / ``last`` act within a period.
    ``step_weight`` (T,), in a plan: how many steps of a year each step
    stands for, so that time-indexed costs add up to annual costs."""

    name: str
    base: Base
    steps: int
    dt: float  # hours per step
    span: Span
    period: int = 0  # steps per period; 0: the whole horizon is one period
    step_weight: np.ndarray | None = None

    @property
    def period_steps(self) -> int:
        return self.period or self.steps


@dataclass(frozen=True, slots=True, eq=False)
class ParamSpec:
    """A declared parameter: over which set (if any), of which dimension, within which range."""

    name: str
    set: str | None  # 'bus' / 'line' for a formulation parameter, None in a kind
    dim: Dim | None  # None for a flag
    default: ast.Expr | None
    span: Span
    bound: ast.Bound | None = None  # the declared range, checked for every element and step
    unit: str | None = None  # the declared unit, in which messages show values


@dataclass(frozen=True, slots=True, eq=False)
class ModelDef:
    """A kind or formulation from the model layer, its declarations sorted out."""

    name: str
    formulation: bool
    radial: bool
    params: Mapping[str, ParamSpec]
    vars: tuple[ast.VarDecl, ...]
    constraints: tuple[ast.Constraint, ...]
    injects: tuple[ast.Inject, ...]
    costs: tuple[ast.Cost, ...]
    outputs: tuple[ast.Output, ...]
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class Group:
    """All instances of one kind, compiled together."""

    kind: ModelDef
    names: tuple[str, ...]
    buses: tuple[str, ...]  # the bus of each instance
    params: Mapping[str, np.ndarray]
    spans: tuple[Span, ...]


@dataclass(frozen=True, slots=True, eq=False)
class NetworkIR:
    name: str
    formulation: ModelDef
    buses: tuple[str, ...]
    lines: tuple[str, ...]
    line_from: np.ndarray  # bus position of each line's sending end
    line_to: np.ndarray
    params: Mapping[str, np.ndarray]  # by parameter name, over its set
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class MarketIR:
    """Bilateral trading among agents: sales s[i, j, t] >= 0 from i to j.

    Each member but the network owner sells its net export:
    ``sum_j s[i, j, t] - s[j, i, t] == net export of i's assets``.  A fee per
    unit of energy sold, paid by the seller to the network owner, is a cost
    of trading; payments split the surplus by Nash bargaining.  When the
    network owner is not a member it is the fee collector: the sales matrix
    has it as one more party, selling to and buying from the members at its
    grid connection's tariff (``import_price``, ``export_price``), and every
    member pays the fee on what it buys from it too."""

    name: str
    members: tuple[str, ...]  # agents
    fee: np.ndarray  # (members, members), internal currency per p.u. energy
    limit: float  # largest sale per pair and step, internal power
    powers: np.ndarray  # bargaining powers, normalised to sum 1
    span: Span
    #: fee of a member's trade with each agent that is not a member, (members,):
    #: the network owner, when it is not a member, sells and buys at its tariff
    outside_fee: Mapping[str, np.ndarray] = field(default_factory=dict)
    #: "contribution": powers from each member's energy sold to the others (see gridlang.settle)
    power_rule: str = "fixed"
    #: how stage 2 is computed: "closed_form" or "cf_admm" (gridlang.decompose.nash)
    method: str = "closed_form"
    #: the fee collector (the network owner when it is not a member, with a grid
    #: connection) and its tariff per step, internal currency per p.u. energy; set by build
    operator: str = ""
    import_price: np.ndarray | None = None
    export_price: np.ndarray | None = None


@dataclass(frozen=True, slots=True, eq=False)
class GameIR:
    """Prosumers and an operator trading at an interactive price per prosumer
    and step, between the feed-in tariff and the retail tariff, set by
    generalized Nash bargaining among all of them (gridlang.game), at the
    central point or by exchange between the operator and the prosumers."""

    name: str
    prosumers: tuple[str, ...]
    operator: str
    retail: np.ndarray  # (T,) internal currency per p.u. energy
    feed_in: np.ndarray  # (T,)
    powers: np.ndarray  # (prosumer side, operator), sum 1
    span: Span
    price: str = "nash"  # how the interactive price is found: 'nash' (at the central point) or 'exchange'
    exchange: tuple[tuple[str, float], ...] = ()  # the exchange's settings (gridlang.decompose.exchange.Settings)
    price_span: Span | None = None  # the 'price = ...' setting


@dataclass(frozen=True, slots=True, eq=False)
class ReliabilityIR:
    """Line failures of a radial network and the limits on their consequences.

    A failure of line ``l`` (``rate`` per year, ``repair`` hours) cuts off
    the buses downstream of it; they are supplied, as an island, by what the
    assets there offer (their ``island`` output) for the repair time."""

    network: str
    lines: tuple[str, ...]  # failing lines, as named in the network
    rate: np.ndarray  # failures per year
    repair: np.ndarray  # hours
    spans: tuple[Span, ...]  # row of each line's failure data


@dataclass(frozen=True, slots=True, eq=False)
class Limit:
    """A study limit (``eens_max = 2 MWh``) in internal units, with where it was written."""

    name: str
    value: float
    span: Span


@dataclass(frozen=True, slots=True, eq=False)
class PlanIR:
    """A planning study: typical days with their weights, reliability and comparisons.

    ``weights`` (S,) share of the year per typical day; ``periods_per_year``
    is the number of horizons (days) in a year, so a step of scenario ``s``
    stands for ``periods_per_year * weights[s]`` steps of the year."""

    scenarios: tuple[str, ...]
    weights: np.ndarray
    periods_per_year: float
    reliability: ReliabilityIR | None
    limits: Mapping[str, Limit]  # eens_max (internal energy per year), saidi_max (hours per year)
    voll: float  # cost of unserved energy, internal currency per internal energy; 0: none
    compare: tuple[str, ...]  # formulations to solve the plan under too, for the report
    span: Span
    clustering: str = ""  # how the typical days were found, for the report


@dataclass(frozen=True, slots=True, eq=False)
class CaseIR:
    path: str
    system: SystemIR
    networks: tuple[NetworkIR, ...]
    groups: tuple[Group, ...]
    owners: Mapping[str, str]  # every asset instance and network -> its agent
    sense: str  # minimize / maximize
    solver: str | None
    solver_options: Mapping[str, object]
    markets: tuple[MarketIR, ...] = ()
    network_owner: str | None = None  # the agent of the (first) network
    notes: tuple[str, ...] = ()  # things the compiler decided and says
    games: tuple[GameIR, ...] = ()
    plan: PlanIR | None = None
    #: where the study wrote each option (its name), and each setting of its method
    #: (``"method.rho"``: the value); an option given elsewhere has none
    option_spans: Mapping[str, Span] = field(default_factory=dict)


def connection_buses(groups: Sequence[Group], owners: Mapping[str, str]) -> dict[str, str]:
    """Each agent's point of connection: the bus of its first asset."""
    out: dict[str, str] = {}
    for g in groups:
        for name, bus in zip(g.names, g.buses):
            out.setdefault(owners.get(name), bus)
    return out
