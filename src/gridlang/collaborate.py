"""Collaborative planning of several investors by generalized Nash bargaining.

The investors are the agents that own investment decisions (the variables
of a kind without a time index: ``build``, ``size``, ``units`` of the
candidates).  Planning together, they minimise the total annual cost
``C(x) = sum_i c_i(x)`` and share the benefit against planning alone
(``d_i``, each agent's own best plan, :func:`gridlang.settle.alone`) by the
generalized Nash bargaining solution of the plan's market:

    max prod_i (d_i - c_i(x) - pi_i)^alpha_i   s.t.  sum_i pi_i = 0
    =>  gain_i = d_i - c_i(x) - pi_i = alpha_i / sum(alpha) * S(x),   S(x) = sum_i d_i - C(x)

With transferable utility every investor's bargained gain grows with the
surplus ``S(x)``, so the alternation below is a best-response scheme that
ends at a plan where no investor can raise everyone's gain alone.  It starts
from the joint plan with the integer decisions relaxed (convex):

* **upper level** (convex): the builds ``x`` fixed, the joint operation and
  trades, and the payments by the closed form above; at the end it runs
  through the decomposition runner (``method = admm`` / ``atc`` in the
  study) so that the investors' operating data stay private;
* **lower level** (mixed-integer): each investor in turn re-chooses its own
  builds with the others' fixed, minimising ``C`` (its bargained gain);
  a change is kept if it lowers ``C`` by more than ``tol`` (relative).

It stops when a whole round changes nothing (converged), when a plan seen
before comes back (a cycle: the best plan seen is kept), or after
``max_iter`` rounds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gridlang import solvers
from gridlang.case import Case
from gridlang.compiler.build import Built, build
from gridlang.errors import GridError
from gridlang.solvers.result import Result


@dataclass(frozen=True)
class Round:
    """One investor's lower-level move."""

    iteration: int
    investor: str
    total_cost: float  # C(x) after the move (or of the kept plan)
    kept: bool  # whether the move lowered C and was kept


@dataclass(frozen=True)
class Collaboration:
    """The outcome: how the alternation ended, the plan, and the upper level's result."""

    status: str  # converged, cycle or max_iter
    iterations: int
    rounds: tuple[Round, ...]
    plan: dict[str, np.ndarray]  # decision variable -> values per instance
    result: Result  # the upper level at the final plan, with the settlements (payments)


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


def _owners(built: Built, names: dict[str, str]) -> dict[str, np.ndarray]:
    """Per decision variable, the owner of each instance."""
    case = built.case
    return {name: np.array([case.owners.get(str(i), "") for i in built.model.variables[name].labels.coords[kind].values]) for name, kind in names.items()}


def _fix(built: Built, plan: dict[str, np.ndarray], free: str | None, bounds: dict, owners: dict) -> None:
    """Fix every decision at ``plan`` except those of investor ``free`` (original bounds)."""
    for name, values in plan.items():
        lower, upper = bounds[name]
        own = owners[name] == free
        var = built.model.variables[name]
        var.lower = var.lower.copy(data=np.where(own, lower, values))
        var.upper = var.upper.copy(data=np.where(own, upper, values))


def _values(built: Built, names) -> dict[str, np.ndarray]:
    return {n: np.round(built.model.variables[n].solution.values, 9) for n in names}


def collaborate(case: Case, max_iter: int = 20, tol: float = 1e-7, method: str | None = None, executor: str = "serial", solver: str | None = None) -> Collaboration:
    """Alternate the upper and lower levels (see the module docstring) from the
    plan where nothing is built; ``method`` for the final upper level (default:
    the study's)."""
    if case.ir.plan is None or not case.ir.markets:
        raise GridError(case.ir.system.span, "collaborative planning needs a plan study and a market among the investors", "add 'market NAME among a, b, ... { payments = nash(power = [...]) }' and 'study NAME: plan { ... }'")
    joint = build(case.ir)
    names = decisions(joint)
    owners = _owners(joint, names)
    investors = [str(a) for a in dict.fromkeys(o for v in owners.values() for o in v) if a]
    bounds = {n: (joint.model.variables[n].lower.values.copy(), joint.model.variables[n].upper.values.copy()) for n in names}
    plan = _relaxed(case, names)
    cost = np.inf  # the relaxed plan is not a plan yet: the first round's moves are all kept

    def total(x: dict, free: str | None) -> tuple[float, dict]:
        _fix(joint, x, free, bounds, owners)
        result = solvers.solve(joint, solver)
        if not result.optimal:
            raise GridError(case.ir.system.span, f"investor '{free}''s own planning ended {result.termination}", "check the candidates' limits")
        return result.objective, _values(joint, names)

    seen: list[tuple] = []
    rounds: list[Round] = []
    status, iteration = "max_iter", 0
    for iteration in range(1, max_iter + 1):
        changed = False
        for investor in investors:
            new_cost, proposal = total(plan, investor)
            kept = not np.isfinite(cost) or new_cost < cost - tol * max(1.0, abs(cost))
            if kept:
                plan, cost, changed = proposal, new_cost, True
            rounds.append(Round(iteration, investor, cost, kept))
        if not changed:
            status = "converged"
            break
        if _key(plan) in seen:
            status = "cycle"
            break
        seen.append(_key(plan))
    # the final upper level: builds fixed, convex, through the runner if asked
    upper = _fixed_case(case, plan, bounds, owners)
    chosen = method or case.ir.solver_options.get("method", ("central", {}))[0]
    result = upper.solve(solver if chosen == "central" else None, chosen, executor, compare_plans=False)
    return Collaboration(status, iteration, tuple(rounds), plan, result)


def _relaxed(case: Case, names) -> dict[str, np.ndarray]:
    """The start: the joint plan with the integer decisions relaxed (the upper level
    with the builds free and continuous), its integer decisions rounded up."""
    relaxed = build(case.ir)
    integer = {n for n in names if relaxed.model.variables[n].attrs.get("binary") or relaxed.model.variables[n].attrs.get("integer")}
    solvers.solve(_continuous(relaxed, names), None)
    # integer decisions rounded up (a site used at all is built), sizes kept
    return {n: np.ceil(v - 1e-6) if n in integer else v for n, v in _values(relaxed, names).items()}


def _continuous(built: Built, names) -> Built:
    """``built`` with the decisions ``names`` no longer integer."""
    for name in names:
        built.model.variables[name].attrs["binary"] = built.model.variables[name].attrs["integer"] = False
    return replace(built, integer=False)


def _key(plan: dict[str, np.ndarray]) -> tuple:
    return tuple((n, tuple(np.round(v.ravel(), 6))) for n, v in sorted(plan.items()))


def _fixed_case(case: Case, plan: dict[str, np.ndarray], bounds: dict, owners: dict) -> Case:
    """The case with every decision fixed at ``plan`` and made continuous, so the
    upper level is convex (and can be decomposed); settling it still plans each
    agent alone from the case's own data."""
    fixed = build(case.ir)
    _fix(fixed, plan, None, bounds, owners)
    upper = Case(case.ir, source=case.source, allow_outside=case.allow_outside)
    upper._built = _continuous(fixed, plan)
    return upper


__all__ = ["Collaboration", "Round", "collaborate", "decisions"]
