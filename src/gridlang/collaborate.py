"""Collaborative planning of several investors: a bi-level alternation and its Nash check.

The investors are the agents that own investment decisions (the variables of
a kind without a time index: ``build``, ``size``, ``units`` of the
candidates); ``x = (x_1, ..., x_n)`` is a plan, ``x_i`` investor i's part.

**Upper level** (convex): the plan fixed, the joint operation and the trades
``s_ij[t]`` of the case's market (with transferable utility the bargaining
product is largest where the surplus is, so the bargained trades are the
joint optimum's; the least-squares one among several, see
:func:`gridlang.settle.select`), then the generalized Nash bargaining over
the payments against every member planning alone (``d_i``,
:func:`gridlang.settle.alone`):

    max prod_i (d_i - c_i(x) - pi_i)^alpha_i  s.t.  sum_i pi_i = 0
    =>  own cost after settlement  k_i(x) = c_i(x) + pi_i = d_i - alpha_i S(x),
        S(x) = sum_i d_i - C(x),  C(x) = sum_i c_i(x)  (the upper level's optimum)

**Lower level** (mixed-integer): investor i's own problem -- its assets alone
(:func:`gridlang.settle.alone`), its candidates' 0-1 builds and sizes and its
operation -- with its exchanges with the others fixed at the upper level's
point: every power balance of its own model holds at the value it has there
(an investor on an island: its net export ``e_i[t] = sum_j s_ij[t] - s_ji[t]``;
the network owner: the others' injections at every bus).  The trades and
the payment ``pi_i`` being fixed, it minimises its own assets' annual cost:

    min_{x_i, y_i}  c_i(x_i, y_i)   s.t.  own constraints,  balance_i(y_i) = balance_i(y_i^k)

A round: the upper level at ``x^k``, then every investor's own problem at that
point (all from the same point); an investor changes its plan only if its own
problem's optimum is below its cost at its current plan by more than ``tol``
(relative to ``max(1, |C|)``).  Each move keeps the exchanges it was given,
so the moves together are feasible for the upper level and ``C`` does not
rise; the upper level at ``x^{k+1}`` must confirm the descent.

**Equilibrium check** (:func:`equilibrium`): for each investor, its best
unilateral change of its own decisions, the others' plans and the market
rules (joint operation, trades, GNBS) fixed -- the joint MILP with only
``x_i`` free: ``k_i^dev = d_i - alpha_i S(x_i', x_-i)``.  The plan is a Nash
equilibrium of the investment game when no investor's improvement
``k_i(x) - min k_i^dev`` exceeds ``tol * max(1, |C|)``.  When the lower
level stops moving but the check finds an improving deviation, the
investor with the largest improvement takes it (a "deviation" round) and
the alternation goes on; it has converged when a round changes no plan and
the check holds.  ``C`` decreases strictly at every round, so no plan
comes back.

**Ties.** Among an investor's plans within ``1e-9 * max(1, |z|)`` of the best
``z``, the chosen one minimises ``sum_k w_k v_k`` over its decision values
``v_k`` (builds, sizes, units; one per candidate and variable) with weights
``w_k = 1 + k / (n + 1)`` in the model's order (fewest and smallest builds,
earlier candidates first); integer decisions are read rounded.  The trades
the lower level is given are the least-squares point of the upper level's
optimal face (:func:`gridlang.settle.select`).  So the plans do not depend
on which optimum a solver returns.  Investors move in the model's order;
the deviation taken is the largest (the first of equal ones).  The start
is the plan where nothing is built; the joint MILP is solved once for
reference and each round reports ``(C - C*) / max(1, |C*|)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from gridlang import solvers
from gridlang.case import Case
from gridlang.compiler.build import Built, build
from gridlang.compiler.expressions import as_linopy
from gridlang.compiler.linear import Lin
from gridlang.errors import GridError
from gridlang.settle import agent_costs, alone, nash_payments, select
from gridlang.solvers.result import Result

#: a move or deviation counts when it lowers a cost by more than TOL * max(1, |C|)
TOL = 1e-6
#: MILP gap of the lower level and the check: well below TOL, so a missed improvement is below TOL
MIP_GAP = 1e-7
#: plans within this share of the best own cost are ties, broken by the stated rule (sizes move by about TIE * C / their marginal value)
TIE = 1e-9


@dataclass(frozen=True)
class Round:
    """The plan after one round: each investor's builds and own cost, the total and the gap."""

    iteration: int  # 0: the start
    investor: str  # the investors whose plan changed, comma-separated ("" if none)
    total_cost: float  # C(x): the upper level's optimum at the plan
    kept: bool  # whether a plan changed in this round
    kind: str  # start, own (the lower level) or deviation (from the equilibrium check)
    plans: Mapping[str, Mapping[str, float]]  # investor -> built candidate -> size [MW]
    own_cost: Mapping[str, float]  # investor -> own annual cost after settlement
    gap: float  # (C - C*) / max(1, |C*|), C* the joint MILP optimum


@dataclass(frozen=True)
class Deviation:
    """An investor's best unilateral change of its own decisions."""

    investor: str
    cost: float  # its own cost after settlement at the plan
    best: float  # its own cost after settlement at its best deviation
    plan: Mapping[str, float]  # its built candidates in that deviation -> size [MW]

    @property
    def improvement(self) -> float:
        return self.cost - self.best


@dataclass(frozen=True)
class Equilibrium:
    """The Nash check of a plan: each investor's best deviation and whether any pays."""

    holds: bool
    tolerance: float  # absolute, in currency per year
    deviations: tuple[Deviation, ...]


@dataclass(frozen=True)
class Collaboration:
    """The outcome: how the alternation ended, its rounds, the plan, the check and the upper level."""

    status: str  # converged, max_iter or no_descent
    iterations: int
    rounds: tuple[Round, ...]
    plan: dict[str, np.ndarray]  # decision variable -> values per instance
    result: Result  # the upper level at the final plan, with the settlements (payments)
    reference: float = float("nan")  # C*: the joint planning MILP's optimum
    gap: float = float("nan")  # (C - C*) / max(1, |C*|) at the final plan
    equilibrium: Equilibrium | None = None


def summary(done: Collaboration) -> dict:
    """The alternation in ``summary.json``: status, the joint optimum and gap, every round, the Nash check."""

    def number(x: float) -> float | None:
        return float(x) if np.isfinite(x) else None

    check = done.equilibrium
    return {
        "status": done.status,
        "rounds": [
            {"round": r.iteration, "kind": r.kind, "moved": r.investor, "total_cost": number(r.total_cost), "gap": number(r.gap), "own_cost": {k: number(v) for k, v in r.own_cost.items()}, "plans": {k: dict(v) for k, v in r.plans.items()}}
            for r in done.rounds
        ],
        "joint_optimum": number(done.reference),
        "gap": number(done.gap),
        "equilibrium": None
        if check is None
        else {
            "holds": check.holds,
            "tolerance": check.tolerance,
            "deviations": [{"investor": d.investor, "cost": number(d.cost), "best": number(d.best), "improvement": number(d.improvement), "plan": dict(d.plan)} for d in check.deviations],
        },
    }


def decisions(built: Built) -> dict[str, str]:
    """Investment decisions: each kind variable without a time index -> its kind."""
    out = {}
    for block in built.blocks:
        if block.model.formulation:
            continue
        for v in block.model.vars:
            name = f"{block.prefix}-{v.name.name}"
            if not v.dims and name in built.model.variables:
                out[name] = block.prefix
    return out


@dataclass(frozen=True, eq=False)
class _Setting:
    """What stays the same through the alternation."""

    case: Case
    joint: Built  # the joint planning MILP (the check)
    upper: Built  # the same model, its decisions made continuous while the upper level solves
    names: dict[str, str]  # decision variable -> kind
    owners: dict[str, np.ndarray]  # decision variable -> owner of each instance
    bounds: dict[str, tuple[np.ndarray, np.ndarray]]
    investors: tuple[str, ...]
    disagreement: np.ndarray  # d_i of the market's members
    solver: str | None
    own: dict[str, Built]  # each investor's own problem (its assets alone), built once
    integral: dict[str, tuple[bool, bool]]  # decision -> (binary, integer) as built
    targets: tuple  # what the upper level's point makes unique: the sales and every member's cost


def _setting(case: Case, solver: str | None) -> _Setting:
    if case.ir.plan is None or not case.ir.markets:
        raise GridError(case.ir.system.span, "collaborative planning needs a plan study and a market among the investors", "add 'market NAME among a, b, ... { payments = nash(power = [...]) }' and 'study NAME: plan { ... }'")
    joint = build(case.ir)
    names = decisions(joint)
    owners = {name: np.array([case.ir.owners.get(str(i), "") for i in joint.model.variables[name].labels.coords[kind].values]) for name, kind in names.items()}
    investors = tuple(str(a) for a in dict.fromkeys(o for v in owners.values() for o in v) if a)
    bounds = {n: (joint.model.variables[n].lower.values.copy(), joint.model.variables[n].upper.values.copy()) for n in names}
    market = case.ir.markets[0]
    own = {a: build(alone(case.ir, a)) for a in dict.fromkeys((*investors, *market.members))}
    # d_i: each member's own problem as built, before its exchanges are fixed
    d = np.array([_solved(own[a], None, f"member '{a}' alone").objective for a in market.members])
    integral = {n: (bool(joint.model.variables[n].attrs.get("binary")), bool(joint.model.variables[n].attrs.get("integer"))) for n in names}
    block = joint.markets[0]
    targets = (as_linopy(Lin.of(joint.model.variables[block.sale])), *(_cost_of(joint, a) for a in block.market.members))
    return _Setting(case, joint, replace(joint, integer=False), names, owners, bounds, investors, d, solver, own, integral, targets)


def _solved(built: Built, solver: str | None, what: str, options: Mapping | None = None) -> Result:
    result = solvers.solve(built, solver, options)
    if result.doubts():
        raise GridError(built.case.system.span, f"{what}: the solve gave no trusted answer ({'; '.join(result.doubts())})", "check the candidates' limits and that every investor can operate with nothing built")
    return result


def _fix(built: Built, s: _Setting, plan: Mapping[str, np.ndarray], free: str | None = None) -> None:
    """Fix every decision at ``plan`` except those of investor ``free`` (original bounds)."""
    for name, values in plan.items():
        lower, upper = s.bounds[name]
        own = s.owners[name] == free
        var = built.model.variables[name]
        _bound(var, np.where(own, lower, values), np.where(own, upper, values))


def _bound(var, lower: np.ndarray, upper: np.ndarray) -> None:
    """Both bounds of ``var`` at once (one at a time could cross the other)."""
    var.update(lower=var.lower.copy(data=lower), upper=var.upper.copy(data=upper))


def _integer(built: Built, s: _Setting, integer: bool) -> None:
    """Make the decisions of ``built``'s model integer again (as built) or continuous."""
    for name, kind in s.integral.items():
        attrs = built.model.variables[name].attrs
        attrs["binary"], attrs["integer"] = kind if integer else (False, False)


def _values(built: Built, s: _Setting, names) -> dict[str, np.ndarray]:
    """The decisions ``names`` at ``built``'s solution: integers rounded to integers, sizes to 1e-9."""
    return {n: np.round(built.model.variables[n].solution.values, 0 if any(s.integral[n]) else 9) for n in names}


def _own_costs(built: Built, s: _Setting) -> dict[str, float]:
    """Each investor's own cost after settlement at ``built``'s solution: a member of the
    market ``c_i + fees_i + pi_i`` (GNBS closed form), any other investor ``c_i``."""
    block = built.markets[0]
    members = block.market.members
    fees = np.asarray(as_linopy(block.fees).solution.values, dtype=float)
    cost = agent_costs(built, members) + fees
    _, _, payment = nash_payments(cost, s.disagreement, block.market.powers)
    settled = dict(zip(members, cost + payment))
    others = tuple(i for i in s.investors if i not in settled)
    settled.update(zip(others, agent_costs(built, others) if others else ()))
    return {i: float(settled[i]) for i in s.investors}


@dataclass(frozen=True, eq=False)
class _Point:
    """The upper level at a plan: its optimum, own costs and the solution of every variable."""

    total: float
    own: dict[str, float]
    solution: dict  # variable name -> DataArray


def _upper(s: _Setting, plan: Mapping[str, np.ndarray]) -> _Point:
    """The upper level: the plan fixed, the joint operation (LP), the trades made
    unique (least squares of the sales and the members' costs), the GNBS settlement."""
    _fix(s.upper, s, plan)
    _integer(s.upper, s, False)
    try:
        result = _solved(s.upper, s.solver, "the upper level (joint operation at a fixed plan)")
    finally:
        _integer(s.upper, s, True)
    select(s.upper, s.targets)
    return _Point(result.objective, _own_costs(s.upper, s), {n: v.solution.copy() for n, v in s.upper.model.variables.items()})


def _cost_of(built: Built, agent: str):
    """Agent ``agent``'s cost terms as one linear expression (its instances summed)."""
    total = 0
    for kind, value in built.costs:
        lin = as_linopy(value)
        if not hasattr(lin, "vars"):
            continue
        names = lin.indexes[kind]
        own = np.flatnonzero([built.case.owners.get(str(n), "") == agent for n in names])
        if len(own):
            total = lin.isel({kind: own}).sum() + total
    return total


def _own_problem(s: _Setting, investor: str, plan: Mapping[str, np.ndarray], point: _Point, tol: float) -> dict[str, np.ndarray] | None:
    """Investor ``investor``'s own problem at the upper level's point (module docstring):
    its new decisions (over its own instances), or None if its plan stays."""
    own = s.own[investor]
    m = own.model
    values = np.zeros(m._xCounter)
    for name, var in m.variables.items():
        at = point.solution[name].sel({d: var.labels.coords[d] for d in var.dims}).transpose(*var.dims).values.ravel()
        labels = var.labels.values.ravel()
        values[labels[labels >= 0]] = at[labels >= 0]
    for name in own.balances:  # the exchanges with the others, fixed where the upper level put them
        con = m.constraints[name].mutable()
        labels = con.vars.values
        rhs = (con.coeffs * np.where(labels >= 0, values[np.maximum(labels, 0)], 0.0)).sum(con.term_dim)
        m.remove_constraints(name)
        m.add_constraints(con.lhs, con.sign, rhs, name=name)
    mine = {n: own.model.variables[n] for n in s.names if n in own.model.variables}
    index = {n: np.isin(s.joint.model.variables[n].labels.coords[s.names[n]].values, v.labels.coords[s.names[n]].values) for n, v in mine.items()}
    current = {n: plan[n][index[n]] for n in mine}
    options = {"mip_rel_gap": MIP_GAP} if own.integer else None
    for n, v in mine.items():
        _bound(v, current[n], current[n])
    now = _solved(own, s.solver, f"investor '{investor}''s own problem at its current plan", options).objective
    for n, v in mine.items():
        lower, upper = s.bounds[n]
        _bound(v, lower[index[n]], upper[index[n]])
    best = _solved(own, s.solver, f"investor '{investor}''s own problem", options).objective
    if best >= now - tol:
        return None
    _tie_break(own, list(mine.values()), best, s.solver, options)
    return _values(own, s, mine)


def _tie_break(built: Built, variables, best: float, solver: str | None, options) -> None:
    """Among the plans within TIE of ``best``, the one minimising the weighted decisions
    (its solution is left in ``built``; its constraint and objective are taken back)."""
    m = built.model
    saved = m.objective
    m.add_constraints(m.objective.expression <= best - built.offset + TIE * max(1.0, abs(best)), name="collaborate-tie")
    sizes = np.cumsum([0] + [v.labels.size for v in variables])
    weight = 1 + np.arange(sizes[-1]) / (sizes[-1] + 1)  # one per instance, in the model's order
    terms = [(v * v.labels.copy(data=weight[a:b].reshape(v.labels.shape))).sum() for v, a, b in zip(variables, sizes, sizes[1:])]
    m.objective = sum(terms[1:], terms[0])
    try:
        _solved(replace(built, offset=0.0), solver, "the tie-break among an investor's equally good plans", options)
    finally:
        m.remove_constraints("collaborate-tie")
        m.objective = saved


def _built_plan(s: _Setting, plan: Mapping[str, np.ndarray], investor: str) -> dict[str, float]:
    """Investor ``investor``'s built candidates -> size [MW]."""
    mw = s.case.ir.system.base.power_va / 1e6
    out = {}
    for name, kind in s.names.items():
        if not name.endswith("-build"):
            continue
        instances = s.joint.model.variables[name].labels.coords[kind].values
        size = plan.get(name.removesuffix("-build") + "-size")
        for k in np.flatnonzero((s.owners[name] == investor) & (plan[name] > 0.5)):
            out[str(instances[k])] = round(float(size[k]) * mw, 6) if size is not None else 1.0
    return out


def _round(s: _Setting, iteration: int, kind: str, moved, plan, point: _Point, reference: float) -> Round:
    return Round(iteration, ", ".join(moved), point.total, bool(moved), kind, {i: _built_plan(s, plan, i) for i in s.investors}, dict(point.own), _gap(point.total, reference))


def _gap(total: float, reference: float) -> float:
    return (total - reference) / max(1.0, abs(reference))


def _check(s: _Setting, plan: Mapping[str, np.ndarray], point: _Point, tol: float) -> tuple[Equilibrium, dict[str, dict[str, np.ndarray]]]:
    """The equilibrium check (module docstring) and each investor's deviating plan."""
    deviations, plans = [], {}
    options = {"mip_rel_gap": MIP_GAP}
    for investor in s.investors:
        _fix(s.joint, s, plan, investor)
        z = _solved(s.joint, s.solver, f"investor '{investor}''s best deviation", options).objective
        best = _own_costs(s.joint, s)[investor]
        if point.own[investor] - best > tol:  # it pays: make the deviating plan unique by the tie rule
            _tie_break(s.joint, [s.joint.model.variables[n] for n in s.names], z, s.solver, options)
        found = _values(s.joint, s, s.names)
        plans[investor] = found
        deviations.append(Deviation(investor, point.own[investor], best, _built_plan(s, found, investor)))
    holds = all(d.improvement <= tol for d in deviations)
    return Equilibrium(holds, tol, tuple(deviations)), plans


def equilibrium(case: Case, plan: Mapping[str, np.ndarray], tol: float = TOL, solver: str | None = None) -> Equilibrium:
    """Whether ``plan`` (decision variable -> values per instance, as in
    :attr:`Collaboration.plan`) is a Nash equilibrium of the investors' builds
    under the case's market (module docstring); each investor's best deviation."""
    s = _setting(case, solver)
    point = _upper(s, plan)
    return _check(s, plan, point, tol * max(1.0, abs(point.total)))[0]


def collaborate(case: Case, max_iter: int = 20, tol: float = TOL, method: str | None = None, executor: str = "serial", solver: str | None = None) -> Collaboration:
    """Alternate the upper and lower levels from the plan where nothing is built
    (see the module docstring); ``method`` for the final upper level (default: the study's)."""
    s = _setting(case, solver)
    reference = _solved(s.joint, solver, "the joint planning MILP", {"mip_rel_gap": MIP_GAP}).objective
    plan = {n: np.clip(0.0, *s.bounds[n]) for n in s.names}  # nothing built
    point = _upper(s, plan)
    rounds = [_round(s, 0, "start", (), plan, point, reference)]
    status, iteration, check = "max_iter", 0, None
    for iteration in range(1, max_iter + 1):
        scale = tol * max(1.0, abs(point.total))
        new, moved, kind = {n: v.copy() for n, v in plan.items()}, [], "own"
        for investor in s.investors:
            proposal = _own_problem(s, investor, plan, point, scale)
            if proposal is not None:
                moved.append(investor)
                for n, values in proposal.items():
                    new[n][s.owners[n] == investor] = values
        if not moved:
            check, deviating = _check(s, plan, point, scale)
            if check.holds:
                status = "converged"
                rounds.append(_round(s, iteration, "own", (), plan, point, reference))
                break
            best = max(check.deviations, key=lambda d: d.improvement)  # max keeps the first of equal ones
            kind, moved = "deviation", [best.investor]
            for n in s.names:
                new[n][s.owners[n] == best.investor] = deviating[best.investor][n][s.owners[n] == best.investor]
        after = _upper(s, new)
        if after.total >= point.total - scale:
            status = "no_descent"  # the moves did not lower C (e.g. reactive power the own problems did not see)
            break
        plan, point, check = new, after, None
        rounds.append(_round(s, iteration, kind, moved, plan, point, reference))
    if check is None:
        check = _check(s, plan, point, tol * max(1.0, abs(point.total)))[0]
    upper = _fixed_case(case, s, plan)  # the last use of s's joint model
    chosen = method or case.ir.solver_options.get("method", ("central", {}))[0]
    result = upper.solve(solver if chosen == "central" else None, chosen, executor, compare_plans=False)
    return Collaboration(status, iteration, tuple(rounds), plan, result, reference, _gap(point.total, reference), check)


def _fixed_case(case: Case, s: _Setting, plan: dict[str, np.ndarray]) -> Case:
    """The case with every decision fixed at ``plan`` and made continuous, so the
    upper level is convex (and can be decomposed); settling it still plans each
    agent alone from the case's own data."""
    _fix(s.upper, s, plan)
    _integer(s.upper, s, False)
    upper = Case(case.ir, source=case.source, allow_outside=case.allow_outside)
    upper._built = s.upper
    return upper


__all__ = ["Collaboration", "Deviation", "Equilibrium", "Round", "collaborate", "decisions", "equilibrium"]
