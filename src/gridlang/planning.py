"""What a plan study reports, read off a solved plan.

* what is built where: every candidate (a kind with ``build`` and ``size``),
  its bus, owner, decision and size;
* the annual cost split by category (the labels of the ``cost`` statements:
  investment, operation, purchase, unserved energy);
* reliability: EENS (MWh/yr), SAIDI (h/yr) and each failing line's share,
  computed from the plan itself: a section is islanded (served) when its
  island's supply covers its demand at every step within
  :data:`~gridlang.solvers.result.FEASIBILITY_TOL` p.u., and its energy not
  served is the uncovered demand -- not what the model's ``served`` binary
  or shortfall variable happen to be where no limit or cost binds them;
* the worst typical day: the one with the lowest voltage, with its voltage
  profile and line loading at its worst hour;
* the same plan under other formulations (``compare = lindistflow``), side
  by side.

A plan whose reliability limit cannot be met is explained by
:func:`infeasible_limit`: the lowest value any plan reaches, at the limit's
line and column.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from gridlang.compiler.build import Built
from gridlang.compiler.ir import TIME
from gridlang.errors import GridError
from gridlang.solvers.result import FEASIBILITY_TOL, Result

UNITS = {"eens_max": "MWh/yr", "saidi_max": "h/yr"}


@dataclass(frozen=True)
class PlanReport:
    """A solved plan in tables (see the module docstring)."""

    formulation: str
    solver: str
    objective: float  # annual cost, currency
    solve_time: float
    builds: pd.DataFrame  # candidate, kind, bus, owner, built, size [MW]
    costs: dict[str, float]  # category -> annual cost
    scenarios: pd.DataFrame  # scenario, weight, days, v_min, bus, hour
    eens: float | None = None  # MWh per year
    saidi: float | None = None  # hours per year
    failures: pd.DataFrame | None = None  # line, rate, repair, customers, eens [MWh/yr], islanded
    worst: dict = field(default_factory=dict)  # scenario, hour, v_min, bus, voltage, loading
    clustering: str = ""
    compared: tuple[PlanReport, ...] = ()

    def same_siting(self, other: PlanReport) -> bool:
        """Whether ``other`` builds exactly the same candidates."""
        return bool((self.builds["built"].to_numpy() == other.builds["built"].to_numpy()).all())


def report(built: Built, result: Result, compared: tuple[PlanReport, ...] = ()) -> PlanReport:
    """The plan report of a solved plan."""
    case, ds = built.case, result.dataset
    base_mw = case.system.base.power_va / 1e6
    frames = [
        pd.DataFrame({"candidate": list(g.names), "kind": g.kind.name.removesuffix("_candidate"), "bus": list(g.buses), "owner": [case.owners.get(n, "") for n in g.names], "built": ds[f"{g.kind.name}-build"].values.round() > 0, "size_MW": ds[f"{g.kind.name}-size"].values.round(6)})
        for g in case.groups
        if f"{g.kind.name}-build" in ds and f"{g.kind.name}-size" in ds
    ]
    builds = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["candidate", "kind", "bus", "owner", "built", "size_MW"])
    costs: dict[str, float] = {}
    for category, expr in built.categories:
        value = float(np.nansum(np.asarray(_value(expr))))
        costs[category] = costs.get(category, 0.0) + value
    if built.offset:
        costs["constant"] = costs.get("constant", 0.0) + built.offset
    scenarios, worst = _voltages(built, ds)
    out = PlanReport(case.networks[0].formulation.name, result.solver, result.objective, result.solve_time, builds, costs, scenarios, worst=worst, clustering=case.plan.clustering, compared=compared)
    rel = built.reliability
    if rel is None:
        return out
    deficit = rel.deficit()  # from the plan itself, whatever the shortfall and served variables say
    per_line = rel.data.rate * rel.data.repair * (deficit * base_mw * rel.step_share).sum(axis=1)
    islanded = deficit.max(axis=1) <= FEASIBILITY_TOL
    saidi = float((rel.data.rate * rel.data.repair * rel.customers * ~islanded).sum() / rel.total_customers)
    failures = pd.DataFrame({"line": rel.data.lines, "rate_per_yr": rel.data.rate, "repair_h": rel.data.repair, "buses_cut_off": rel.downstream.sum(axis=1).astype(int), "customers": rel.customers, "eens_MWh_per_yr": per_line, "islanded": islanded})
    return replace(out, eens=float(per_line.sum()), saidi=saidi, failures=failures)


def _value(expr) -> xr.DataArray:
    from gridlang.compiler.expressions import as_linopy

    return as_linopy(expr).solution


def _voltages(built: Built, ds: xr.Dataset) -> tuple[pd.DataFrame, dict]:
    """Lowest voltage of each typical day, and the worst day's profile and line loading."""
    plan, net = built.case.plan, built.case.networks[0]
    period = built.case.system.period_steps
    s = len(plan.scenarios)
    table = pd.DataFrame({"scenario": list(plan.scenarios), "weight": plan.weights, "days_per_year": plan.weights * plan.periods_per_year})
    key = f"{net.name}-voltage"
    if key not in ds:
        return table, {}
    v = ds[key].transpose("bus", TIME).values.reshape(len(net.buses), s, period)
    low = v.min(axis=(0, 2))
    table["v_min"] = low
    table["bus"] = np.asarray(net.buses)[v.min(axis=2).argmin(axis=0)]
    table["hour"] = v.min(axis=0).argmin(axis=1)
    k = int(np.argmin(low))
    hour = int(table["hour"][k])
    step = k * period + hour
    base_mw = built.case.system.base.power_va / 1e6
    flows = {}
    for name in ("P", "Q"):
        var = f"{net.name}-{name}"
        if var in built.model.variables:
            flows[name] = built.model.variables[var].solution.transpose("line", TIME).values[:, step] * base_mw
    loading = np.hypot(flows.get("P", 0.0), flows.get("Q", 0.0)) if flows else None
    worst = {"scenario": plan.scenarios[k], "hour": hour, "v_min": float(low[k]), "bus": table["bus"][k], "voltage": pd.Series(v[:, k, hour], index=list(net.buses)), "loading_MVA": None if loading is None else pd.Series(loading, index=list(net.lines))}
    return table, worst


def compare(case, formulations: tuple[str, ...]) -> tuple[PlanReport, ...]:
    """The same plan solved under each formulation, by the default solver of its
    problem class (without the study's solver options, which belong to its solver)."""
    from gridlang import solvers

    out = []
    for f in formulations:
        other = case.reload(formulation=f)
        other = replace(other, ir=replace(other.ir, solver=None, solver_options={}))
        start = time.perf_counter()
        result = other.solve(solvers.DEFAULT[solvers.problem_class(other.built)], compare_plans=False)
        out.append(replace(result.plan, solve_time=time.perf_counter() - start))
    return tuple(out)


def infeasible_limit(case, solver: str | None, error: GridError) -> GridError:
    """Why a plan with reliability limits has no solution: for each limit, the
    lowest value of its index any plan reaches (the limit lifted, that index
    minimised); the first limit below it is the binding one."""
    from gridlang import solvers
    from gridlang.compiler.build import build

    plan = case.ir.plan
    for name, limit in plan.limits.items():
        loose = {k: replace(v, value=1e12) for k, v in plan.limits.items()}
        ir = replace(case.ir, plan=replace(plan, limits=loose, voll=0.0))
        built = build(ir)
        index = built.reliability.eens if name == "eens_max" else built.reliability.saidi
        built.model.objective = index
        try:
            lowest = solvers.solve(replace(built, offset=0.0), solver).objective
        except GridError:
            continue  # infeasible for another reason: the original error stands
        if lowest > limit.value * (1 + 1e-6) + 1e-9:
            scale = case.ir.system.base.power_va / 1e6 if name == "eens_max" else 1.0
            return GridError(
                limit.span,
                f"no plan meets {name} = {limit.value * scale:g} {UNITS[name]}: the lowest {name.removesuffix('_max').upper()} any plan reaches with these candidates is {lowest * scale:.4g} {UNITS[name]} (the reliability limit is the binding constraint)",
                "raise the limit, or offer candidates (or larger sizes) behind the lines that fail most",
            )
    return error


def summary(r: PlanReport) -> dict:
    """The plan's figures for ``summary.json``."""
    return {
        "formulation": r.formulation,
        "annual_cost": r.objective,
        "costs": r.costs,
        "built": r.builds[r.builds["built"]].set_index("candidate")["size_MW"].to_dict(),
        "eens_MWh_per_yr": r.eens,
        "saidi_h_per_yr": r.saidi,
        "worst": {k: r.worst[k] for k in ("scenario", "hour", "v_min", "bus")} if r.worst else None,
        "compared": [{"formulation": p.formulation, "annual_cost": p.objective, "built": p.builds[p.builds["built"]].set_index("candidate")["size_MW"].to_dict()} for p in r.compared],
    }


def markdown(r: PlanReport) -> str:
    """The plan report as Markdown (``plan.md``)."""
    lines = [f"# Plan ({r.formulation}, {r.solver})", "", f"Annual cost: {r.objective:,.2f}", ""]
    if r.clustering:
        lines += [f"Scenarios: {r.clustering}", ""]
    lines += ["## Built", "", _table(r.builds), "", "## Annual cost by category", "", _table(pd.DataFrame({"category": list(r.costs), "cost_per_yr": list(r.costs.values())})), ""]
    if r.eens is not None:
        lines += ["## Reliability", "", f"EENS {r.eens:.4f} MWh/yr, SAIDI {r.saidi:.4f} h/yr", "", _table(r.failures), ""]
    lines += ["## Typical days", "", _table(r.scenarios), ""]
    if r.worst:
        lines += [f"Worst: {r.worst['scenario']}, hour {r.worst['hour']}: V_min {r.worst['v_min']:.5f} p.u. at {r.worst['bus']}", ""]
    if r.compared:
        lines += ["## Build decisions under each formulation", ""]
        every = [r, *r.compared]
        table = pd.DataFrame({"candidate": r.builds["candidate"]})
        for p in every:
            by = p.builds.set_index("candidate")
            table[f"{p.formulation} built"] = table["candidate"].map(by["built"])
            table[f"{p.formulation} size_MW"] = table["candidate"].map(by["size_MW"])
        lines += [_table(table), "", _table(pd.DataFrame({"formulation": [p.formulation for p in every], "solver": [p.solver for p in every], "annual_cost": [p.objective for p in every], "eens_MWh": [p.eens for p in every], "solve_s": [p.solve_time for p in every]})), ""]
        same = all(r.same_siting(p) for p in r.compared)
        lines += ["The siting decisions agree." if same else "The siting decisions differ (see the table).", ""]
    return "\n".join(lines)


def _table(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        out.append("| " + " | ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(out)


def plot(r: PlanReport, path: Path) -> bool:
    """``plan.png``: voltages and line loading at the worst hour of the worst typical day."""
    from gridlang.report import _pyplot, _save

    plt = _pyplot()
    if plt is None or not r.worst:
        return False
    fig, (a, b) = plt.subplots(2, 1, figsize=(9, 6))
    v = r.worst["voltage"]
    a.plot(range(len(v)), v.values, marker="o")
    a.set_xticks(range(len(v)), v.index, rotation=90, fontsize=6)
    a.set_ylabel("voltage [p.u.]")
    a.set_title(f"worst: {r.worst['scenario']}, hour {r.worst['hour']}")
    if r.worst["loading_MVA"] is not None:
        s = r.worst["loading_MVA"]
        b.bar(range(len(s)), s.values)
        b.set_xticks(range(len(s)), s.index, rotation=90, fontsize=6)
        b.set_ylabel("line flow [MVA]")
    fig.tight_layout()
    _save(plt, fig, path)
    return True
