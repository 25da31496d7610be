"""Planning studies: typical days as the time axis, annualised costs,
reliability (EENS, SAIDI) with island supply, limits that tighten, the
MISOCP against the LinDistFlow MILP, and bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest

import gridlang
from conftest import CASES
from gridlang.compiler.reliability import downstream_sets
from gridlang.errors import GridError

PLAN = (CASES / "planning_33bus.grid").read_text()


def plan_text(k: int = 2, eens: str | None = None, voll: str | None = "5 $/kWh", extra: str = "") -> str:
    """The 33-bus plan with K typical days, another EENS limit (None: none) and VOLL."""
    text = PLAN.replace("k = 4", f"k = {k}")
    text = re.sub(r"  eens_max = .*\n", f"  eens_max = {eens}\n" if eens else "", text)
    text = re.sub(r"  voll = .*\n", f"  voll = {voll}\n" if voll else "", text)
    return text.replace("  compare = lindistflow\n", extra)


def solve_milp(text: str, monkeypatch):
    monkeypatch.chdir(CASES)  # text is loaded relative to the working folder
    case = gridlang.load(text, formulation="lindistflow")
    return case, case.solve("highs", compare_plans=False)


@pytest.fixture(scope="module")
def milp(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        return solve_milp(plan_text(), mp)


def test_typical_days_are_the_time_axis(milp) -> None:
    case, r = milp
    plan, system = case.ir.plan, case.ir.system
    assert system.steps == 48 and system.period == 24 and len(plan.scenarios) == 2
    assert plan.weights.sum() == pytest.approx(1.0)
    # every step stands for its day's share of the 8760 hours of a year
    assert system.step_weight.sum() == pytest.approx(8760.0)
    assert r.optimal


def test_storage_runs_each_typical_day_on_its_own(milp) -> None:
    case, r = milp
    soc = r["storage_candidate-soc"].values.reshape(-1, 2, 24)
    charge = r["storage_candidate-charge"].values.reshape(-1, 2, 24)
    discharge = r["storage_candidate-discharge"].values.reshape(-1, 2, 24)
    size = r["storage_candidate-size"].values
    eta = 0.95
    start = 0.5 * 4 * size[:, None] + eta * charge[:, :, 0] - discharge[:, :, 0] / eta
    np.testing.assert_allclose(soc[:, :, 0], start, atol=1e-6)  # every day starts from soc_init
    step = soc[:, :, 1:] - soc[:, :, :-1] - (eta * charge[:, :, 1:] - discharge[:, :, 1:] / eta)
    np.testing.assert_allclose(step, 0, atol=1e-6)


def test_annual_costs_add_up(milp) -> None:
    case, r = milp
    report = r.plan
    assert sum(report.costs.values()) == pytest.approx(r.objective, rel=1e-9)
    # investment: annuity of capex and site cost plus O&M, recomputed from the solution
    # with the case's data: (capex $/MW, site $, O&M $/MW/yr, lifetime) per kind, rate 5 %
    data = {"pv": (900e3, 20000, 15e3, 25), "wind": (1300e3, 50000, 40e3, 20), "storage": (1000e3, 30000, 10e3, 15), "generator": (700e3, 40000, 15e3, 20)}
    investment = 0.0
    for kind, (capex, site, om, life) in data.items():
        size, build = r[f"{kind}_candidate-size"].values, r[f"{kind}_candidate-build"].values
        investment += (0.05 / (1 - 1.05**-life) * (capex * size + site * build) + om * size).sum()
    assert investment > 0 and report.costs["investment"] == pytest.approx(investment, rel=1e-6)
    # purchase: the tariff times the import, each step weighted by its days per year
    tou = np.tile(np.loadtxt(CASES / "data/day_profiles.csv", delimiter=",", skiprows=1, usecols=3), 2)
    weight = case.ir.system.step_weight
    purchase = (tou * r["grid-import"].values[0] * weight).sum() - (20 * r["grid-export"].values[0] * weight).sum()
    assert report.costs["purchase"] == pytest.approx(purchase, rel=1e-6)


def test_downstream_sections_of_the_33_bus_feeder(milp) -> None:
    case, _ = milp
    net = case.ir.networks[0]
    down = downstream_sets(net, ("l1", "l5", "l17", "l18", "l22", "l25"))
    buses = np.array(net.buses)
    assert list(down.sum(axis=1)) == [32, 21, 1, 4, 3, 8]
    assert set(buses[down[2] > 0]) == {"b18"}
    assert set(buses[down[3] > 0]) == {"b19", "b20", "b21", "b22"}
    assert set(buses[down[5] > 0]) == {f"b{i}" for i in range(26, 34)}


def island_deficit(case, r) -> np.ndarray:
    """(failures, T) MW: max(0, demand - island supply) of each section, from the solution's sizes."""
    net, rel = case.ir.networks[0], case.ir.plan.reliability
    buses = list(net.buses)
    t = case.ir.system.steps
    demand, island = np.zeros((len(buses), t)), np.zeros((len(buses), t))
    for g in case.ir.groups:
        at = [buses.index(b) for b in g.buses]
        if g.kind.name == "load":
            np.add.at(demand, at, g.params["p"] * g.params["scale"] * 10)  # MW, base 10 MVA
        elif g.kind.name in ("pv_candidate", "wind_candidate"):
            np.add.at(island, at, r[f"{g.kind.name}-size"].values[:, None] * g.params["availability"])
        elif g.kind.name in ("storage_candidate", "generator_candidate"):
            np.add.at(island, at, np.repeat(r[f"{g.kind.name}-size"].values[:, None], t, axis=1))
    down = downstream_sets(net, rel.lines)
    return np.maximum(down @ demand - down @ island, 0)


def saidi_recomputed(case, r) -> float:
    """SAIDI from the solution: a section is interrupted unless its island covers its demand at every step."""
    net, rel = case.ir.networks[0], case.ir.plan.reliability
    customers = np.zeros(len(net.buses))
    for g in case.ir.groups:
        if "customers" in g.params:
            np.add.at(customers, [list(net.buses).index(b) for b in g.buses], g.params["customers"][:, 0])
    down = downstream_sets(net, rel.lines)
    interrupted = island_deficit(case, r).max(axis=1) > 1e-4  # MW (1e-5 p.u. on 10 MVA)
    return float((rel.rate * rel.repair * (down @ customers) * interrupted).sum() / customers.sum())


def test_eens_equals_the_islands_shortfall_recomputed(milp) -> None:
    """EENS from the solution's sizes: sum_l rate * repair * mean_t max(0, demand - island)."""
    case, r = milp
    rel = case.ir.plan.reliability
    weight = case.ir.system.step_weight / case.ir.system.step_weight.sum()
    eens = float((rel.rate * rel.repair * (island_deficit(case, r) * weight).sum(axis=1)).sum())
    assert r.plan.eens == pytest.approx(eens, rel=1e-6, abs=1e-6)
    assert r.plan.failures["eens_MWh_per_yr"].sum() == pytest.approx(r.plan.eens)
    assert r.plan.saidi == pytest.approx(saidi_recomputed(case, r), abs=1e-9)


def test_saidi_is_read_from_the_plan_not_from_the_served_binary(monkeypatch) -> None:
    """The plan a tight SAIDI limit chooses, solved again with its investments fixed and a
    limit that does not bind: ``served`` is then free, and forced to 0 everywhere (an
    optimum as good as any).  The report still counts every section whose island
    covers its demand as served: the same SAIDI, equal to the one recomputed from the sizes."""
    from gridlang.collaborate import decisions
    from gridlang.compiler.reliability import SERVED

    _, tight = solve_milp(plan_text(voll=None, extra="  saidi_max = 3.5 h\n"), monkeypatch)
    case = gridlang.load(plan_text(voll=None, extra="  saidi_max = 100 h\n"), formulation="lindistflow")
    model = case.built.model
    for name in decisions(case.built):  # the tight plan's investments, fixed
        var = model.variables[name]
        value = tight.dataset[name].values * case.built.units.get(name, ("", 1.0))[1]
        var.lower, var.upper = var.lower * 0 + value, var.upper * 0 + value
    served = model.variables[SERVED]
    served.lower, served.upper = served.lower * 0, served.upper * 0
    forced = case.solve("highs", compare_plans=False)
    assert forced.optimal and (forced[SERVED].values == 0).all()
    assert forced.plan.failures["islanded"].any()  # not vacuous: some islands cover their demand
    assert forced.plan.saidi == pytest.approx(saidi_recomputed(case, forced), abs=1e-9)
    assert forced.plan.saidi == pytest.approx(tight.plan.saidi, abs=1e-9)
    assert (forced.plan.failures["islanded"] == tight.plan.failures["islanded"]).all()


def test_tighter_eens_limits_cut_eens_and_raise_investment(monkeypatch) -> None:
    eens, invest = [], []
    for limit in (None, "3 MWh", "2 MWh", "1.4 MWh"):
        _, r = solve_milp(plan_text(eens=limit, voll=None), monkeypatch)
        assert r.optimal
        if limit is not None:
            assert r.plan.eens <= float(limit.split()[0]) + 1e-6
        eens.append(r.plan.eens)
        invest.append(r.plan.costs["investment"])
    assert all(a > b + 1e-3 for a, b in zip(eens, eens[1:])), eens
    assert all(b >= a - 1e-6 for a, b in zip(invest, invest[1:])) and invest[-1] > invest[0] * 1.01, invest


def test_saidi_limit_islands_more_sections(monkeypatch) -> None:
    _, loose = solve_milp(plan_text(voll=None), monkeypatch)
    _, tight = solve_milp(plan_text(voll=None, extra="  saidi_max = 3.5 h\n"), monkeypatch)
    assert tight.plan.saidi <= 3.5 + 1e-9 < loose.plan.saidi
    assert tight.plan.failures["islanded"].sum() > loose.plan.failures["islanded"].sum()
    assert tight.plan.costs["investment"] >= loose.plan.costs["investment"]


def test_misocp_by_scip_and_milp_by_highs_compared(monkeypatch) -> None:
    monkeypatch.chdir(CASES)
    r = gridlang.load(plan_text(k=2, extra="  compare = lindistflow\n")).solve()
    assert r.solver == "scip" and r.termination in ("optimal", "gap_limit")  # the case asks for a 1e-4 gap
    report = r.plan
    assert report.formulation == "distflow_soc" and [p.formulation for p in report.compared] == ["lindistflow"]
    milp = report.compared[0]
    assert milp.solver == "highs"
    # the relaxation has losses the linear model lacks: it buys at least as much
    assert report.costs["purchase"] >= milp.costs["purchase"] - 1e-6 * abs(milp.costs["purchase"])
    assert "Build decisions under each formulation" in gridlang.planning.markdown(report)
    assert report.worst["v_min"] >= 0.9 - 1e-6


# ---------------------------------------------------------------- bad input


def _error(text: str, monkeypatch) -> GridError:
    monkeypatch.chdir(CASES)
    with pytest.raises(GridError) as info:
        gridlang.load(text, formulation="lindistflow").solve("highs", compare_plans=False)
    return info.value


def test_failure_data_for_a_line_that_does_not_exist(monkeypatch) -> None:
    e = _error(plan_text().replace("  l32  0.113  4", "  l99  0.113  4"), monkeypatch)
    assert "line 'l99' is not in network 'ieee33'" in e.message and e.span.line > 1 and e.span.col == 3


def test_a_limit_no_plan_can_meet_names_the_limit(monkeypatch) -> None:
    text = plan_text(eens="0.2 MWh")
    e = _error(text, monkeypatch)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "eens_max" in s)
    assert e.span.line == line and "no plan meets eens_max = 0.2 MWh/yr" in e.message and "lowest EENS" in e.message


def test_more_typical_days_than_days(monkeypatch) -> None:
    e = _error(plan_text(k=400), monkeypatch)
    assert "more than the 365 days" in e.message and "k = 400" in PLAN.replace("k = 4", "k = 400").splitlines()[e.span.line - 1]


def test_typical_without_a_plan(monkeypatch) -> None:
    text = plan_text().replace("study expansion: plan", "study expansion: dispatch")
    e = _error(text, monkeypatch)
    messages = [x.message for x in getattr(e, "errors", [e])]
    assert any("typical(...) reads the typical days of a plan study" in m for m in messages)
    assert any("'scenarios' belongs to a plan study" in m for m in messages)


def test_year_with_missing_hours(tmp_path, monkeypatch) -> None:
    rows = (CASES / "data/year_profiles.csv").read_text().splitlines()
    (tmp_path / "year.csv").write_text("\n".join(rows[:100] + rows[101:]) + "\n")
    for f in ("ieee33_network.grid", "ieee33_loads.grid"):
        (tmp_path / f).write_text((CASES / f).read_text())
    (tmp_path / "data").mkdir()
    (tmp_path / "data/day_profiles.csv").write_text((CASES / "data/day_profiles.csv").read_text())
    text = plan_text().replace("data/year_profiles.csv", "year.csv")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GridError) as info:
        gridlang.load(text, formulation="lindistflow")
    assert info.value.span.file.endswith("year.csv") and "missing" in info.value.message.lower()


def test_discrete_units(monkeypatch) -> None:
    text = plan_text(k=1, eens="2 MWh", voll=None).replace("generator_candidate gt29 at b29 { size_max = 1 MW;", "generator_candidate gt29 at b29 { size_max = 1 MW; unit_size = 250 kW;")
    _, r = solve_milp(text, monkeypatch)
    size, units = float(r["generator_candidate-size"].values[0]), float(r["generator_candidate-units"].values[0])
    assert size > 0 and units == round(units) and size == pytest.approx(0.25 * units)
