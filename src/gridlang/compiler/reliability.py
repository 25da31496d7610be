"""Reliability of a radial network in a plan: expected energy not served and SAIDI.

A failure of line ``l`` (``rate_l`` per year, repaired in ``r_l`` hours)
is isolated at once; the buses downstream of it, ``D(l)``, are cut off
from the substation for the repair time, and are supplied as an island by
what the assets inside offer (each kind's ``output island[t]``: a PV
plant its size times availability, storage and generators their power).
With ``demand[t]`` (each kind's ``output demand[t]``) summed over ``D(l)``:

    shortfall[l, t] >= demand_D(l)[t] - island_D(l)[t],   0 <= shortfall <= demand_D(l)
    EENS  = sum_l rate_l * r_l * sum_t w_t shortfall[l, t] / sum_t w_t      (energy per year)

where ``w_t`` is the share of the year step ``t`` stands for: the island's
situation at the hour a failure happens holds for its repair time, and
failures happen at any hour alike.  SAIDI counts the customers of ``D(l)``
as interrupted unless the island covers its demand at every step
(binary ``served[l]``, which may be 0 where the limit does not bind: the
report counts a section as served from the solved supply itself,
:meth:`ReliabilityBlock.deficit`):

    island_D(l)[t] >= demand_D(l)[t] * served[l]
    SAIDI = sum_l rate_l * r_l * customers_D(l) * (1 - served[l]) / customers   (hours per year)

Both stay mixed-integer linear.  ``eens_max`` and ``saidi_max`` bound them;
``voll`` prices EENS in the (annual) objective.  The downstream sets come
from one breadth-first search and sparse products, the rows are one block
each over (failure, time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr
from scipy.sparse.csgraph import breadth_first_order

from gridlang.compiler import ir
from gridlang.compiler.expressions import Evaluator, as_linopy, group_sum, is_expr
from gridlang.errors import GridError

FAILURE = "failure"
SHORTFALL = "reliability-shortfall"
SERVED = "reliability-served"


@dataclass(frozen=True, slots=True, eq=False)
class ReliabilityBlock:
    """What the report needs: the downstream sets and the data behind the indices."""

    data: ir.ReliabilityIR
    downstream: np.ndarray  # (failures, buses) 0/1
    customers: np.ndarray  # (failures,) customers downstream
    total_customers: float
    step_share: np.ndarray  # (T,) w_t / sum w
    eens: object  # linopy expression, internal energy per year
    saidi: object | None  # linopy expression in hours per year, if SAIDI is modelled
    uncovered: np.ndarray | None = None  # (failures, T) demand less the island's fixed supply, p.u.
    island: object = None  # linopy expression over (failure, time): the island's variable supply, or None

    def deficit(self) -> np.ndarray:
        """(failures, T) p.u.: what each island lacks at each step of the solution,
        ``max(0, demand - island supply)``, read from the solved sizes and dispatch
        (not from the shortfall or ``served`` variables, which the model leaves free
        where no cost or limit binds them)."""
        supply = 0.0 if self.island is None else as_linopy(self.island).solution.transpose(FAILURE, ir.TIME).values
        return np.maximum(self.uncovered - supply, 0.0)


def downstream_sets(net: ir.NetworkIR, lines: tuple[str, ...]) -> np.ndarray:
    """(len(lines), buses) 0/1: the buses cut off by a failure of each line.

    The tree is rooted at the slack bus; ``anc[b, a] = 1`` when ``a`` is ``b``
    or one of its ancestors (sums of powers of the parent matrix, one sparse
    product per level), and a line's section is the subtree of its lower end."""
    n = len(net.buses)
    slack = net.params.get("slack")
    root = int(np.flatnonzero(slack[:, 0])[0]) if slack is not None and slack[:, 0].any() else 0
    graph = sp.coo_matrix((np.ones(len(net.lines)), (net.line_from, net.line_to)), shape=(n, n))
    _, parent = breadth_first_order(graph, root, directed=False, return_predecessors=True)
    has = parent >= 0
    up = sp.csr_matrix((np.ones(int(has.sum())), (np.flatnonzero(has), parent[has])), shape=(n, n))
    anc = sp.identity(n, format="csr")
    step = up
    while step.nnz:
        anc = anc + step
        step = step @ up
    pos = pd.Index(net.lines).get_indexer(list(lines))
    f, t = net.line_from[pos], net.line_to[pos]
    lower = np.where(parent[t] == f, t, f)
    return (anc[:, lower].T.toarray() > 0).astype(float)


def _outputs(state, name: str) -> list[tuple[xr.DataArray, object]]:
    """Each kind's ``output <name>`` over (instance, time), with the bus of each instance."""
    parts = []
    for block in state.blocks:
        for out in block.model.outputs:
            if out.name.name != name or block.model.formulation:
                continue
            try:
                value = Evaluator(block.frame, out.span)(out.expr)
            except GridError as exc:
                state.errors.extend(exc)
                continue
            group = next(g for g in state.case.groups if g.kind.name == block.prefix)
            index = pd.Index(group.names, name=block.prefix)
            if ir.TIME not in getattr(value, "dims", ()):  # the same in every step
                value = value * xr.DataArray(np.ones(len(state.time)), coords={ir.TIME: state.time})
            if not is_expr(value):
                value = xr.DataArray(np.zeros((len(index), len(state.time))), coords={block.prefix: index, ir.TIME: state.time}) + value
            parts.append((xr.DataArray(np.asarray(group.buses, dtype=object), coords={block.prefix: index}, dims=block.prefix), value))
    return parts


def _by_failure(parts, down: np.ndarray, buses: pd.Index, failure: pd.Index, state):
    """Each output summed over the section each failure cuts off: (expression or None,
    constant part (failures, T)).  The (failure, instance) pairs of a section are
    selected once and grouped by failure, a sparse product."""
    expr, fixed = None, np.zeros((len(failure), len(state.time)))
    for at, value in parts:
        dim = at.dims[0]
        member = down[:, buses.get_indexer(at.values)]  # (failures, instances)
        if not is_expr(value):
            fixed += member @ value.transpose(dim, ir.TIME).values
            continue
        f, i = np.nonzero(member)
        pair = {"pair": np.arange(len(f))}
        chosen = as_linopy(value).isel({dim: xr.DataArray(i, coords=pair, dims="pair")})
        summed = group_sum(chosen, xr.DataArray(failure[f], coords=pair, dims="pair"), failure)
        expr = summed if expr is None else expr + summed
    return expr, fixed


def add_reliability(case: ir.CaseIR, state) -> None:
    """Shortfall rows, EENS and (with a SAIDI limit) SAIDI for the plan's failure data."""
    plan = case.plan
    data = plan.reliability
    net = next(n for n in case.networks if n.name == data.network)
    m = state.model
    buses = pd.Index(net.buses, name=ir.BUS)
    failure = pd.Index(data.lines, name=FAILURE)
    down = downstream_sets(net, data.lines)

    demand_parts = _outputs(state, "demand")
    if not demand_parts:
        state.errors.add(plan.span, "no kind declares an 'output demand[t]', so there is no demand to serve in an island", "use the standard load kind, or add 'output demand[t]: MW = ...' to your load kind")
        return
    demand_expr, demand = _by_failure(demand_parts, down, buses, failure, state)
    if demand_expr is not None:
        state.errors.add(plan.span, "a kind's 'output demand' depends on a variable", "demand for reliability is data: p * scale")
        return
    island, fixed_island = _by_failure(_outputs(state, "island"), down, buses, failure, state)

    coords = {FAILURE: failure, ir.TIME: state.time}
    need = xr.DataArray(demand, coords=coords)
    shortfall = m.add_variables(lower=0, upper=need, coords=[failure, state.time], name=SHORTFALL)
    state.origins[SHORTFALL] = plan.span
    state.units[SHORTFALL] = ("MW", case.system.base.factor("MW")[0])
    fixed = xr.DataArray(fixed_island, coords=coords)
    lhs = shortfall + island if island is not None else shortfall.to_linexpr()
    m.add_constraints(lhs >= need - fixed, name="reliability-island")
    state.origins["reliability-island"] = plan.span

    weight = case.system.step_weight if case.system.step_weight is not None else np.ones(len(state.time))
    share = weight / weight.sum()
    exposure = xr.DataArray(data.rate * data.repair, coords={FAILURE: failure})
    eens = (shortfall * (exposure * xr.DataArray(share, coords={ir.TIME: state.time}))).sum()
    customers_bus = _customers(case, buses)
    customers = down @ customers_bus
    total = float(customers_bus.sum()) or 1.0
    saidi = None
    limits = plan.limits
    if "saidi_max" in limits:
        served = m.add_variables(binary=True, coords=[failure], name=SERVED)
        state.origins[SERVED] = plan.span
        covered = served * need if island is None else served * need - island
        m.add_constraints(covered <= fixed, name="reliability-served")
        state.origins["reliability-served"] = plan.span
        interrupted = xr.DataArray(data.rate * data.repair * customers / total, coords={FAILURE: failure})
        saidi = float(interrupted.sum()) - (served * interrupted).sum()
        m.add_constraints(saidi <= limits["saidi_max"].value, name="reliability-saidi_max")
        state.origins["reliability-saidi_max"] = limits["saidi_max"].span
    if "eens_max" in limits:
        m.add_constraints(eens <= limits["eens_max"].value, name="reliability-eens_max")
        state.origins["reliability-eens_max"] = limits["eens_max"].span
    if plan.voll > 0:
        cost = eens * plan.voll
        state.objective.append(cost)
        state.categories.append(("unserved energy", cost))
    state.reliability = ReliabilityBlock(data, down, customers, total, share, eens, saidi, (need - fixed).transpose(FAILURE, ir.TIME).values, island)


def _customers(case: ir.CaseIR, buses: pd.Index) -> np.ndarray:
    """Customers per bus: the ``customers`` parameter of every asset that has one."""
    out = np.zeros(len(buses))
    for g in case.groups:
        if "customers" in g.params:
            np.add.at(out, buses.get_indexer(list(g.buses)), g.params["customers"][:, 0])
    return out
