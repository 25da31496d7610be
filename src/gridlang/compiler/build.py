"""IR to a linopy model: ``build(case) -> Built``.

One linopy block per kind (or network) and per statement, over xarray dims:
a kind's ``var soc[t]`` is the variable ``storage-soc`` over
``(storage, time)``; a constraint is one ``add_constraints`` call with a
mask for its ``where`` and for shifted indices.  Injections of every kind
are grouped by bus and summed into ``injected_<channel>[bus, time]``, which
the network formulation balances; those balance rows' duals are the
locational prices.  The objective is the sum of all ``cost`` statements; in
a plan, a cost over time is weighted per step by the share of the year the
step stands for (``SystemIR.step_weight``), so the objective is annual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import linopy
import numpy as np
import pandas as pd
import xarray as xr

from gridlang.compiler import cones, ir
from gridlang.compiler.cones import ConeBlock
from gridlang.compiler.expressions import Evaluator, Frame, as_linopy, group_sum, is_expr
from gridlang.compiler.linear import Lin
from gridlang.errors import Collector, GridError, Span
from gridlang.grammar import ast


@dataclass(frozen=True, slots=True, eq=False)
class Block:
    """One kind's or network's compiled statements, kept for reporting."""

    prefix: str  # kind or network name; linopy names are "{prefix}-{name}"
    model: ir.ModelDef
    frame: Frame
    spans: Mapping[str, Span]  # instance name -> where it was declared (kinds)


@dataclass(frozen=True, slots=True, eq=False)
class Built:
    """A compiled case: the linopy model and what is needed to read its solution."""

    case: ir.CaseIR
    model: linopy.Model
    blocks: tuple[Block, ...]
    origins: Mapping[str, Span]  # linopy constraint or variable name -> statement
    balances: Mapping[str, tuple[str, str]]  # constraint name -> (network, channel)
    units: Mapping[str, tuple[str, float]]  # variable name -> (unit, internal-per-unit factor)
    costs: tuple[tuple[str, object], ...]  # (kind, cost per instance) for reports
    categories: tuple[tuple[str, object], ...] = ()  # (category, total of one cost statement) for reports
    quadratic: bool = False
    integer: bool = False
    offset: float = 0.0  # constant part of the total cost, kept out of the solver's objective
    cones: tuple[ConeBlock, ...] = ()  # second-order cones beside the linear model
    markets: tuple[MarketBlock, ...] = ()
    games: tuple[GameBlock, ...] = ()
    reliability: object = None  # gridlang.compiler.reliability.ReliabilityBlock in a plan with failure data


@dataclass(frozen=True, slots=True, eq=False)
class MarketBlock:
    """A compiled market: its sales variable and the fees each seller pays."""

    market: ir.MarketIR
    sale: str  # linopy variable over (seller, buyer, time)
    fees: object  # Lin over (seller,): fees paid, summed over time


@dataclass(frozen=True, slots=True, eq=False)
class GameBlock:
    """A prosumer-operator game: each prosumer's net export over (agent, time)."""

    game: ir.GameIR
    exported: object  # linopy expression over (agent, time)


@dataclass(frozen=True, slots=True, eq=False)
class _Injection:
    """One kind's injection into a channel, with the bus and the owner of each instance."""

    buses: xr.DataArray
    owners: xr.DataArray
    expr: object


@dataclass
class _State:
    model: linopy.Model
    case: ir.CaseIR
    time: pd.Index
    hour: xr.DataArray
    errors: Collector = field(default_factory=Collector)
    origins: dict = field(default_factory=dict)
    balances: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)
    objective: list = field(default_factory=list)
    offset: float = 0.0
    costs: list = field(default_factory=list)
    categories: list = field(default_factory=list)
    injections: dict = field(default_factory=dict)  # channel -> list of _Injection, one per kind
    blocks: list = field(default_factory=list)
    cones: list = field(default_factory=list)
    markets: list = field(default_factory=list)
    games: list = field(default_factory=list)
    reliability: object = None
    balanced: frozenset = frozenset({"p"})  # the channels some network balances, and p (markets trade it)


def build(case: ir.CaseIR) -> Built:
    """Compile the resolved case into one linopy model."""
    system = case.system
    time = pd.RangeIndex(system.steps, name=ir.TIME)
    hour = xr.DataArray(np.arange(system.steps) % system.period_steps * system.dt, coords={ir.TIME: time}, dims=ir.TIME)
    with linopy.options as options:
        options["semantics"] = "v1"
        state = _State(linopy.Model(sparse=True), case, time, hour)
        state.balanced = frozenset({"p"}.union(*(_channels(n.formulation) for n in case.networks)))
        for group in case.groups:
            _kind(group, state)
        for network in case.networks:
            _network(network, state)
        for market in case.markets:
            _market(market, state)
        for game in case.games:
            state.games.append(GameBlock(game, _exported(pd.Index(game.prosumers, name="agent"), state)))
        if case.plan is not None and case.plan.reliability is not None:
            from gridlang.compiler.reliability import add_reliability

            add_reliability(case, state)
        state.errors.raise_if_any()
        m = state.model
        if state.objective:
            m.add_objective(_total(state.objective))
    quadratic = any(isinstance(t, linopy.QuadraticExpression) for t in state.objective)
    integer = any(v.attrs.get("binary") or v.attrs.get("integer") for _, v in m.variables.items())
    return Built(case, m, tuple(state.blocks), state.origins, state.balances, state.units, tuple(state.costs), tuple(state.categories), quadratic, integer, state.offset, tuple(state.cones), tuple(state.markets), tuple(state.games), state.reliability)


def _total(terms: list):
    """Sum of the cost terms: the linear ones as one ``Lin``, then the quadratic ones."""
    linear = [t for t in terms if isinstance(t, Lin)]
    total = sum(linear[1:], linear[0]).to_linopy() if linear else None
    for t in terms:
        if not isinstance(t, Lin):
            total = t if total is None else total + t
    return total


def _param_array(values: np.ndarray, first: tuple[str, pd.Index], time: pd.Index) -> xr.DataArray:
    dim, index = first
    if values.shape[1] == 1:
        return xr.DataArray(values[:, 0], coords={dim: index}, dims=dim)
    return xr.DataArray(values, coords={dim: index, ir.TIME: time}, dims=(dim, ir.TIME))


def _frame(state: _State, values: dict, dims: dict, network: ir.NetworkIR | None = None) -> Frame:
    case = state.case
    return Frame(values, dims, case.system.base, case.system.dt, state.hour, network, case.system.period)


def _kind(group: ir.Group, state: _State) -> None:
    kind = group.kind
    index = pd.Index(group.names, name=kind.name)
    values: dict[str, object] = {k: _param_array(v, (kind.name, index), state.time) for k, v in group.params.items()}
    dims: dict[str, tuple[str, ...]] = {k: (ir.TIME,) for k in group.params}
    frame = _frame(state, values, dims)
    coords = {kind.name: index}
    spans = dict(zip(group.names, group.spans))
    frame = _statements(kind.name, kind, frame, coords, spans, state, skip=_idle(kind, state.balanced))
    buses = xr.DataArray(np.asarray(group.buses, dtype=object), coords={kind.name: index}, dims=kind.name, name=ir.BUS)
    owners = xr.DataArray(np.asarray([state.case.owners.get(n, "") for n in group.names], dtype=object), coords={kind.name: index}, dims=kind.name)
    template = xr.DataArray(np.zeros((len(index), len(state.time))), coords={kind.name: index, ir.TIME: state.time})
    for inject in (i for i in kind.injects if i.channel.name in state.balanced):
        expr = _eval(inject.expr, frame, inject.span, state)
        if expr is not None and not is_expr(expr):
            if xr.DataArray(expr).dtype == bool:
                state.errors.add(inject.span, "an injection is a power, not a condition")
                continue
            expr = template + expr  # a constant injection, over every instance and step
        if expr is not None:
            state.injections.setdefault(inject.channel.name, []).append(_Injection(buses, owners, expr))
    state.blocks.append(Block(kind.name, kind, frame, spans))


def _network(net: ir.NetworkIR, state: _State) -> None:
    f = net.formulation
    sets = {ir.BUS: pd.Index(net.buses, name=ir.BUS), ir.LINE: pd.Index(net.lines, name=ir.LINE)}
    values: dict[str, object] = {}
    dims: dict[str, tuple[str, ...]] = {}
    for name, spec in f.params.items():
        values[name] = _param_array(net.params[name], (spec.set, sets[spec.set]), state.time)
        dims[name] = (spec.set,)
    for channel, parts in state.injections.items():
        values[f"injected_{channel}"] = _summed(parts, "buses", sets[ir.BUS], state)
        dims[f"injected_{channel}"] = (ir.BUS, ir.TIME)
    for channel in _channels(f) - set(state.injections):
        values[f"injected_{channel}"] = xr.DataArray(np.zeros((len(net.buses), len(state.time))), coords={ir.BUS: sets[ir.BUS], ir.TIME: state.time})
        dims[f"injected_{channel}"] = (ir.BUS, ir.TIME)
    frame = _frame(state, values, dims, net)
    frame = _statements(net.name, f, frame, {}, {}, state, sets)
    state.blocks.append(Block(net.name, f, frame, {}))


def _market(mk: ir.MarketIR, state: _State) -> None:
    """Sales between members, each member's sales balancing its net export, and fees.

    ``sum_j s[i, j, t] - sum_j s[j, i, t] == sum of the p injections of i's assets``
    for every member i except the network owner (whose trades are whatever the
    others need); ``fee[i, j] * s[i, j, t] * dt`` is a cost of seller i.

    When the network owner ``o`` is not a member and owns a grid connection
    (a kind with ``import_price`` and ``export_price``), it is the fee
    collector: one more party of the sales matrix, trading with the members
    only, at its tariff.  ``s[o, i, t]`` is what member i buys from the
    upstream grid through it (i pays ``import_price[t] + fee[i, o]`` per MWh),
    ``s[i, o, t]`` what i sells to it (i receives ``export_price[t] - fee[i, o]``).
    The tariff is a transfer between the member and the operator, whose
    grid connection bears the physical cost: it is not in the total cost
    (gridlang.settle counts it); the fees are, as the price of using the network."""
    m = state.model
    case = state.case
    operator = ""
    if case.network_owner and case.network_owner not in mk.members and case.network_owner in mk.outside_fee:
        tariffs = [
            np.broadcast_to(np.asarray(g.params[key], dtype=float)[k].reshape(-1), (len(state.time),))
            for g in case.groups
            if {"import_price", "export_price"} <= set(g.params)
            for k, name in enumerate(g.names)
            if case.owners.get(name) == case.network_owner
            for key in ("import_price", "export_price")
        ]
        if tariffs:
            imports, exports = np.array(tariffs[0::2]), np.array(tariffs[1::2])
            if (np.ptp(imports, axis=0) > 0).any() or (np.ptp(exports, axis=0) > 0).any():
                state.errors.add(mk.span, f"the network owner '{case.network_owner}' has grid connections at different prices, so market '{mk.name}' has no single tariff for its members", "give its grid connections the same import and export prices, or make it a member of the market")
                return
            operator = case.network_owner
            mk = replace(mk, operator=operator, import_price=imports[0].copy(), export_price=exports[0].copy())
    members = pd.Index(mk.members, name="agent")
    agents = pd.Index([*mk.members, *([operator] if operator else [])], name="agent")
    is_member = np.arange(len(agents)) < len(members)
    seller, buyer = agents.rename("seller"), agents.rename("buyer")
    pair = xr.DataArray(np.not_equal.outer(np.arange(len(agents)), np.arange(len(agents))) & np.logical_or.outer(is_member, is_member), coords={"seller": seller, "buyer": buyer})
    mask = pair & xr.DataArray(np.ones(len(state.time), dtype=bool), coords={ir.TIME: state.time})
    name = f"{mk.name}-sale"
    sale = m.add_variables(lower=0, upper=mk.limit, coords=[seller, buyer, state.time], name=name, mask=mask)
    state.origins[name] = mk.span
    state.units[name] = ("MW", state.case.system.base.factor("MW")[0])
    labels = sale.labels
    sold = Lin(m, ((labels.rename(seller="agent").drop_vars("agent").assign_coords(agent=agents), 1.0),)).sum("buyer")
    bought = Lin(m, ((labels.rename(buyer="agent").drop_vars("agent").assign_coords(agent=agents), -1.0),)).sum("seller")
    exported = _exported(agents, state)
    if exported is None or not is_expr(exported):
        state.errors.add(mk.span, f"the members of market '{mk.name}' own nothing that injects power", "agents trade the net output of the assets they own")
        return
    trades = as_linopy(sold + bought)
    others = xr.DataArray([a != state.case.network_owner for a in agents], coords={"agent": agents})
    balance = f"{mk.name}-balance"
    state.model.add_constraints(as_linopy(exported) - trades, "=", 0, name=balance, mask=others & mask.any(["seller", "buyer"]))
    state.origins[balance] = mk.span
    dt = state.case.system.dt
    fee = np.zeros((len(members), len(agents)))
    fee[:, : len(members)] = mk.fee
    if operator:
        fee[:, -1] = mk.outside_fee[operator]
    as_seller = Lin(m, ((labels.sel(seller=members.rename("seller")), xr.DataArray(fee * dt, coords={"seller": members.rename("seller"), "buyer": buyer})),))
    paid = as_seller.sum("buyer")
    if operator:  # what a member buys from the operator pays the fee too
        from_operator = labels.sel(seller=operator, drop=True).sel(buyer=members.rename("buyer")).rename(buyer="seller")
        paid = paid + Lin(m, ((from_operator, xr.DataArray(mk.outside_fee[operator] * dt, coords={"seller": members.rename("seller")})),))
    paid = paid.sum(ir.TIME)
    state.objective.append(paid.sum())
    state.markets.append(MarketBlock(mk, name, paid))


def _exported(agents: pd.Index, state: _State):
    """Net active-power injection of each agent's assets, over (agent, time)."""
    exported = _summed(state.injections.get("p", []), "owners", agents, state)
    return as_linopy(exported) if exported is not None and is_expr(exported) else exported


def _channels(f: ir.ModelDef) -> set[str]:
    """The channels a network formulation balances (the ``injected_c`` it uses)."""
    return {n.removeprefix("injected_") for c in f.constraints for n in _names(c.expr) if n.startswith("injected_")}


def _names(e) -> set[str]:
    """Every name an expression uses."""
    names: set[str] = set()
    if isinstance(e, ast.Name | ast.Indexed):
        names.add(e.id if isinstance(e, ast.Name) else e.name.name)
    for child in getattr(e, "__slots__", ()):
        value = getattr(e, child)
        for v in value if isinstance(value, tuple) else (value,):
            if hasattr(v, "span") and not isinstance(v, ast.Ident):
                names |= _names(v)
    return names


def _idle(kind: ir.ModelDef, balanced: set[str]) -> set[str]:
    """A kind's variables that would enter nothing but injections into channels
    no network balances (the reactive power of a generator on a copper plate):
    they are not applicable, so they are not created (a free variable the
    solver sets anywhere in its bounds, reported as if it meant something);
    their bounds are still checked.  A variable used nowhere at all is kept."""
    from gridlang.compiler.models import _exprs

    used: set[str] = set()
    for decl in (*kind.vars, *kind.constraints, *kind.costs, *kind.outputs, *(i for i in kind.injects if i.channel.name in balanced)):
        for e in _exprs(decl):
            used |= _names(e)
    unbalanced = set().union(*(_names(i.expr) for i in kind.injects if i.channel.name not in balanced))
    return {v.name.name for v in kind.vars} & unbalanced - used


def _summed(parts: list[_Injection], by: str, index: pd.Index, state: _State):
    """Every kind's injection summed over the instances that share a bus (``by="buses"``)
    or an owner (``by="owners"``) on ``index``: a sparse group-by per kind, then added."""
    total = None
    for part in parts:
        grouped = group_sum(part.expr, getattr(part, by), index)
        if not is_expr(grouped) and ir.TIME not in grouped.dims:
            grouped = grouped.expand_dims({ir.TIME: state.time}, axis=-1)
        if total is None:
            total = grouped
        else:
            if is_expr(grouped) and is_expr(total) and not (isinstance(grouped, Lin) and isinstance(total, Lin)):
                total, grouped = as_linopy(total), as_linopy(grouped)  # a group too uneven for Lin came back from linopy
            total = grouped + total if is_expr(grouped) and not is_expr(total) else total + grouped
    return total


def _eval(expr: ast.Expr, frame: Frame, span: Span, state: _State, cond: ast.Expr | None = None):
    """Evaluate an expression (and its where-mask); None after a reported error."""
    try:
        ev = Evaluator(frame, span)
        value = ev(expr)
        if cond is not None:
            mask = ev._condition(cond)
            value = value.where(mask) if is_expr(value) else xr.where(mask, value, 0)
        return value
    except GridError as exc:
        state.errors.extend(exc)
        return None


def _applies_nowhere(cond: ast.Expr, frame: Frame, span: Span, state: _State) -> bool:
    """Is a statement's where-mask false everywhere (so it adds nothing)?"""
    try:
        return not bool(Evaluator(frame, span)._condition(cond).any())
    except GridError:
        return False  # reported when the statement itself is evaluated


def _statements(prefix: str, defn: ir.ModelDef, frame: Frame, coords: dict, spans: dict, state: _State, sets: dict | None = None, skip: set[str] = frozenset()) -> Frame:
    """Variables, constraints and costs of one kind or network, one block each;
    the variables named in ``skip`` are not created.

    Returns the frame extended by the variables, for injections and outputs."""
    m = state.model
    # one frame whose dicts grow as variables are declared, so later statements see them
    values, dims = dict(frame.values), dict(frame.dims)
    frame = replace(frame, values=values, dims=dims)
    sets = sets or {}
    for v in defn.vars:
        name = f"{prefix}-{v.name.name}"
        declared = tuple(ir.TIME if d.name == "t" else d.name for d in v.dims)
        unknown = [d for d in v.dims if (ir.TIME if d.name == "t" else d.name) not in {ir.TIME, *sets}]
        if unknown:
            state.errors.add(unknown[0].span, f"unknown set '{unknown[0].name}'", f"variables range over: {', '.join(['t', *sets])}")
            continue
        var_coords = dict(coords)
        for d in declared:
            var_coords[d] = state.time if d == ir.TIME else sets[d]
        try:
            ev = Evaluator(frame, v.span)
            lower = ev(v.domain.lower) if v.domain.lower is not None else (0 if v.domain.kind == "binary" else -np.inf)
            upper = ev(v.domain.upper) if v.domain.upper is not None else (1 if v.domain.kind == "binary" else np.inf)
            mask = ev._condition(v.where) if v.where is not None else None
        except GridError as exc:
            state.errors.extend(exc)
            continue
        if is_expr(lower) or is_expr(upper):
            state.errors.add(v.span, f"the bounds of '{v.name.name}' depend on a variable", "bounds are numbers or parameters; write a constraint to relate two variables")
            continue
        _check_bounds(lower, upper, mask, v, prefix, spans, state)
        if v.name.name in skip:
            continue  # checked, but not applicable here: not created
        template = xr.DataArray(np.zeros([len(c) for c in var_coords.values()]), coords=var_coords, dims=list(var_coords))
        lower, upper = template + lower, template + upper
        kwargs = {"binary": True} if v.domain.kind == "binary" else {"lower": lower, "upper": upper, "integer": v.domain.kind == "integer"}
        var = m.add_variables(coords=list(var_coords.values()) if v.domain.kind == "binary" else None, name=name, mask=None if mask is None else (template == 0) & mask, **kwargs)
        values[v.name.name] = var
        dims[v.name.name] = declared
        state.origins[name] = v.span
        if v.unit is not None:
            state.units[name] = (v.unit.name, frame.base.factor(v.unit.name)[0])
    for c in defn.constraints:
        label = c.label.name if c.label else f"line{c.span.line}col{c.span.col}"
        name = f"{prefix}-{label}"
        if name in state.origins:
            state.errors.add(c.label.span if c.label else c.span, f"constraint '{label}' is defined twice in {prefix} (first at {state.origins[name]})", "give each constraint its own label")
            continue
        _constraint(name, c, frame, state)
    for c in defn.costs:
        if c.where is not None and _applies_nowhere(c.where, frame, c.span, state):
            continue
        value = _eval(c.expr, frame, c.span, state, c.where)
        if value is None:
            continue
        if not is_expr(value):
            state.errors.add(c.span, "a cost must depend on a variable")
            continue
        if isinstance(value, linopy.QuadraticExpression) and _nonconvex(value):
            state.errors.add(c.span, "this quadratic cost is not convex (a negative coefficient on a square)", "give squared terms non-negative coefficients")
            continue
        timed = ir.TIME in value.dims
        if timed and state.case.system.step_weight is not None:
            value = value * xr.DataArray(state.case.system.step_weight, coords={ir.TIME: state.time}, dims=ir.TIME)
        total = value.sum()
        constant = float(total.const)
        state.offset += constant
        state.objective.append(total - constant)
        state.categories.append((c.label.name if c.label else ("operation" if timed else "investment"), total))
        if coords:
            for d in [d for d in value.dims if d not in coords and not d.startswith("_")]:
                value = value.sum(d)
            state.costs.append((prefix, value))
    return frame


def _constraint(name: str, c: ast.Constraint, frame: Frame, state: _State) -> None:
    if not isinstance(c.expr, ast.Compare) or any(op not in ("==", "<=", ">=") for op in c.expr.ops):
        state.errors.add(c.span, "a constraint compares two sides with ==, <= or >=", "e.g. soc[t] <= energy")
        return
    conic = cones.is_conic(c.expr, frame)
    try:
        ev = Evaluator(frame, c.span)
        mask = ev._condition(c.where) if c.where is not None else None
        if mask is not None and not bool(mask.any()):
            return  # the statement applies nowhere in this case
        kind, sides = cones.analyse(c, ev) if conic else (None, [ev(o) for o in c.expr.operands])
        shifted = ev.mask()
    except GridError as exc:
        state.errors.extend(exc)
        return
    if shifted is not None:
        mask = shifted if mask is None else mask & shifted
    if mask is not None and not bool(mask.any()):
        return
    if conic:
        block, added = cones.add_block(name, kind, sides, mask, state.model, c.span)
        state.cones.append(block)
        state.origins.update({n: c.span for n in (name, *added)})
        return
    for k, (op, a, b) in enumerate(zip(c.expr.ops, sides, sides[1:])):
        if not (is_expr(a) or is_expr(b)):
            state.errors.add(c.span, "this constraint has no variable on either side", "constraints relate variables; check the names")
            return
        if is_expr(a) and is_expr(b) and not (isinstance(a, Lin) and isinstance(b, Lin)):
            a, b = as_linopy(a), as_linopy(b)
        lhs = as_linopy(a - b if is_expr(a) else -(b - a))
        if isinstance(lhs, linopy.QuadraticExpression):
            state.errors.add(c.span, "this quadratic constraint is not convex", cones.FORMS)
            return
        if isinstance(lhs, linopy.Variable):
            lhs = lhs.to_linexpr()
        if bool(np.isinf(lhs.const).any()) if mask is None else bool((np.isinf(lhs.const) & mask).any()):
            state.errors.add(c.span, "this constraint has an infinite constant", "a value in it is inf; give a finite number, or mask the rows with 'where ... < inf'")
            return
        full = name if k == 0 else f"{name}_{k + 1}"
        kwargs = {} if mask is None else {"mask": mask}
        state.model.add_constraints(lhs, op, 0, name=full, **kwargs)
        state.origins[full] = c.span
        if _uses_injection(c.expr):
            state.balances[full] = (name.split("-", 1)[0], _uses_injection(c.expr))


def _uses_injection(e) -> str | None:
    return next(iter(sorted(n.removeprefix("injected_") for n in _names(e) if n.startswith("injected_"))), None)


def _check_bounds(lower, upper, mask, v: ast.VarDecl, prefix: str, spans: dict, state: _State) -> None:
    """A lower bound above the upper bound is the user's data, not the solver's problem."""
    bad = xr.DataArray(lower) > xr.DataArray(upper)
    if mask is not None:
        bad = bad & mask
    if not bool(bad.any()):
        return
    where = {d: bad.coords[d].values[i] for d, i in zip(bad.dims, np.unravel_index(int(np.argmax(bad.values)), bad.shape))}
    instance = where.get(prefix)
    span = spans.get(instance, v.span)
    what = f"{prefix} '{instance}'" if instance is not None else prefix
    state.errors.add(span, f"{what}: the upper bound of '{v.name.name}' is below its lower bound", "check the data for negative sizes or limits (the bound is declared at " + str(v.span) + ")")


def _nonconvex(q: linopy.QuadraticExpression) -> bool:
    """True if some square x_i * x_i has a negative coefficient (a concave term)."""
    first, second = q.data.vars.isel(_factor=0), q.data.vars.isel(_factor=1)
    squares = (first == second) & (first >= 0)
    return bool((q.data.coeffs.where(squares) < 0).any())
