"""Second-order cones: published feeder numbers, an independent power flow,
hand-computed small cones, the backends against each other, and the
relaxation-gap report."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import gridlang
from conftest import CASES

# IEEE 33-bus (Baran & Wu) at base load: AC power flow losses and lowest voltage
LOSSES_33_KW, VMIN_33 = 202.677, 0.91309


@pytest.fixture(scope="module")
def soc33(tmp_path_factory) -> Path:
    """The IEEE 33-bus base case with the network switched to distflow_soc."""
    folder = tmp_path_factory.mktemp("soc33")
    for f in CASES.glob("ieee33_*.grid"):
        shutil.copy(f, folder)
    network = folder / "ieee33_network.grid"
    network.write_text(network.read_text().replace("uses lindistflow", "uses distflow_soc"))
    return folder / "ieee33_base.grid"


@pytest.fixture(scope="module")
def solved33(soc33):
    return gridlang.load(soc33).solve()


def test_ieee33_soc_matches_published_losses_and_voltage(solved33) -> None:
    r = solved33
    assert r.solver == "clarabel" and r.optimal
    losses_kw = float(r["ieee33-losses"].sum()) * 1000
    assert losses_kw == pytest.approx(LOSSES_33_KW, abs=0.001)
    v = r["ieee33-voltage"].isel(time=0)
    assert float(v.min()) == pytest.approx(VMIN_33, abs=1e-5)
    assert str(v.idxmin().values) == "b18"
    # import = load + losses, with a price of 1 $/MWh the objective is the import
    assert r.objective == pytest.approx(3.715 + LOSSES_33_KW / 1000, rel=1e-6)
    assert r.residual < 1e-7
    assert not r.warnings  # minimising losses makes the relaxation exact
    assert float(abs(r["ieee33-current_gap"]).max()) < 1e-6


def test_ieee33_soc_equals_pandapower_power_flow(solved33) -> None:
    pp = pytest.importorskip("pandapower")
    networks = pytest.importorskip("pandapower.networks")
    net = networks.case33bw()
    pp.runpp(net, numba=False)
    v = solved33["ieee33-voltage"].isel(time=0)
    ours = np.array([float(v.sel(bus=f"b{i + 1}")) for i in range(33)])
    theirs = net.res_bus.sort_index().vm_pu.to_numpy()
    assert np.max(np.abs(ours - theirs)) < 1e-5
    assert float(solved33["ieee33-losses"].sum()) == pytest.approx(float(net.res_line.pl_mw.sum()), rel=1e-5)


@pytest.mark.parametrize("solver", ["scs"])
def test_ieee33_soc_other_backends_agree(soc33, solved33, solver) -> None:
    r = gridlang.load(soc33).solve(solver)
    assert r.solver == solver and r.optimal
    assert r.objective == pytest.approx(solved33.objective, rel=1e-5)
    price = r["ieee33-price_p"].sel(bus="b18").item()
    assert price == pytest.approx(solved33["ieee33-price_p"].sel(bus="b18").item(), rel=1e-3)


def test_clarabel_with_iterative_refinement_gives_the_same_point(soc33, solved33) -> None:
    """gridlang runs Clarabel without iterative refinement unless asked; refining gives the same optimum and duals."""
    r = gridlang.load(soc33).solve("clarabel", iterative_refinement_enable=True)
    assert r.optimal and r.objective == pytest.approx(solved33.objective, rel=1e-8)
    assert np.allclose(r["ieee33-voltage"], solved33["ieee33-voltage"], atol=1e-7)
    assert np.allclose(r["ieee33-price_p"], solved33["ieee33-price_p"], rtol=1e-5)


def test_loss_factor_price_exceeds_the_substation_price(solved33) -> None:
    """With losses, a MWh drawn at the feeder end costs more than at the substation."""
    prices = solved33["ieee33-price_p"].isel(time=0)
    assert float(prices.sel(bus="b1")) == pytest.approx(1.0, rel=1e-5)
    assert float(prices.sel(bus="b18")) > 1.1


def test_relaxation_gap_is_reported_where_the_relaxation_is_not_exact(soc33) -> None:
    text = soc33.read_text().replace("import_price = 1 $/MWh", "import_price = -1 $/MWh; import_max = 5 MW")
    case = soc33.with_name("gap.grid")
    case.write_text(text)
    r = gridlang.load(case).solve()
    assert len(r.warnings) == 1
    assert "relaxation 'ieee33-current' is not exact" in r.warnings[0] and "line=l" in r.warnings[0]
    assert float(r["ieee33-current_gap"].max()) > 1e-3


SMALL = """system s {{ base_power = 1 MVA; base_voltage = 10 kV; horizon = 1 h; step = 1 h }}
network n uses copper_plate {{ bus b1 {{ slack }} }}
kind box at bus {{
  var x[t] in [-10, 10]
  var y[t] in [-10, 10]
  var a[t] in [0, 10]
  var b[t] in [0, 10]
  {body}
  inject p[t] = 0 * x[t]
}}
box k at b1
grid g at b1 {{ import_price = 1 $/MWh }}
objective minimize cost
"""


@pytest.mark.parametrize(
    "body, objective",
    [
        # max x + y on the unit disc: sqrt(2)
        ("disc: x[t]^2 + y[t]^2 <= 1\n  cost -(x[t] + y[t]) * 1 $/MWh * dt", -np.sqrt(2)),
        # the same through norm(...)
        ("disc: norm(x[t], y[t]) <= 1\n  cost -(x[t] + y[t]) * 1 $/MWh * dt", -np.sqrt(2)),
        # written the other way round, with a scaled square: 4 x^2 + y^2 <= 1, max x -> 1/2
        ("ellipse: 1 >= 4 * x[t]^2 + y[t]^2\n  cost -x[t] * 1 $/MWh * dt", -0.5),
        # rotated: x^2 <= a b with a + b = 2: max x = 1 at a = b = 1
        ("hyp: x[t]^2 <= a[t] * b[t]\n  sum2: a[t] + b[t] == 2\n  cost -x[t] * 1 $/MWh * dt", -1.0),
        # x^2 + y^2 <= a with a <= 4: max x + y = 2 sqrt(2)
        ("par: x[t]^2 + y[t]^2 <= a[t]\n  cap: a[t] <= 4\n  cost -(x[t] + y[t]) * 1 $/MWh * dt", -2 * np.sqrt(2)),
        # an affine member: (x - 1)^2 + y^2 <= b^2, b <= 1: max x = 2
        ("shifted: (x[t] - 1)^2 + y[t]^2 <= b[t]^2\n  capb: b[t] <= 1\n  cost -x[t] * 1 $/MWh * dt", -2.0),
    ],
)
@pytest.mark.parametrize("solver", ["clarabel", "scs"])
def test_small_cones_hand_optimum(body: str, objective: float, solver: str) -> None:
    r = gridlang.load(SMALL.format(body=body)).solve(solver)
    assert r.optimal
    assert r.objective == pytest.approx(objective, abs=1e-5)


def test_inverter_rating_limits_reactive_power() -> None:
    """A PV at 0.8 MW of a 1 MVA inverter can give at most 0.6 Mvar."""
    text = """system s { base_power = 1 MVA; base_voltage = 10 kV; horizon = 1 h; step = 1 h }
network n uses lindistflow { bus b1 { slack }; bus b2; line l from b1 to b2 { r = 0.01 ohm; x = 0.01 ohm } }
pv sun at b2 { capacity = 0.8 MW; rating = 1 MVA }
load ld at b2 { p = 0.8 MW; q = 1 Mvar }
kind qsource at bus {
  var q[t]: Mvar in [0, 10]
  inject q[t] = q[t]
  cost 100 $/MWh * q[t] * dt
}
qsource backup at b2
grid g at b1 { import_price = 1000 $/MWh; q_max = 0 }
objective minimize cost
"""
    r = gridlang.load(text).solve()
    assert r.optimal
    assert float(r["pv-q"].sum()) == pytest.approx(0.6, abs=1e-5)
    assert float(r["qsource-q"].sum()) == pytest.approx(0.4, abs=1e-5)


def test_transformer_is_a_branch_in_per_unit() -> None:
    text = """system s { base_power = 1 MVA; base_voltage = 10 kV; horizon = 1 h; step = 1 h }
network n uses distflow_soc {
  bus b0 { slack; v_set = 1.0 }
  bus b1..b2 { vmin = 0.8 }
  transformer t1 from b0 to b1 { r = 0.01 pu; x = 0.05 pu }
  line l1 from b1 to b2 { r = 1 ohm; x = 1 ohm }
}
load ld at b2 { p = 500 kW; q = 100 kvar }
grid g at b0 { import_price = 10 $/MWh }
objective minimize cost
"""
    r = gridlang.load(text).solve()
    losses = r["n-losses"].isel(time=0)
    # 0.01 p.u. on 1 MVA and 10 kV is 1 ohm: both branches carry one current, so equal losses
    assert float(losses.sel(line="t1")) == pytest.approx(float(losses.sel(line="l1")), rel=1e-6)
    assert r.objective == pytest.approx(10 * (0.5 + float(losses.sum())), rel=1e-6)


def test_ieee33_day_ahead_soc_dispatch_clarabel_and_scs_agree() -> None:
    """24 h under distflow_soc with PV inverters and a battery (the study picks the formulation)."""
    case = gridlang.load(CASES / "ieee33_soc_dispatch.grid")
    assert case.ir.networks[0].formulation.name == "distflow_soc"
    a = case.solve()
    b = gridlang.load(CASES / "ieee33_soc_dispatch.grid").solve("scs")
    assert a.solver == "clarabel" and a.optimal and b.solver == "scs" and b.optimal
    assert b.objective == pytest.approx(a.objective, rel=1e-6)  # SCS runs at eps 1e-7
    assert not a.warnings and not b.warnings
    lin = gridlang.load(CASES / "ieee33_dispatch.grid").solve()
    assert a.objective > lin.objective  # losses cost money; LinDistFlow has none
    # inverters stay within their ratings
    p, q = a["pv-p"], a["pv-q"]
    rating = {"pv18": 0.66, "pv33": 0.88}
    for name, s in rating.items():
        assert float(np.sqrt(p.sel(pv=name) ** 2 + q.sel(pv=name) ** 2).max()) <= s + 1e-6


def test_formulation_chosen_at_load_overrides_the_network() -> None:
    case = gridlang.load(CASES / "ieee33_base.grid", formulation="distflow_soc")
    assert case.ir.networks[0].formulation.name == "distflow_soc"
    assert case.solve().objective == pytest.approx(3.715 + LOSSES_33_KW / 1000, rel=1e-6)


def test_cones_routed_to_highs_are_refused(soc33) -> None:
    case = gridlang.load(soc33)
    with pytest.raises(gridlang.GridError, match=r"solver 'highs' cannot solve a SOCP problem") as info:
        case.solve("highs")
    assert "highs solves LP, MILP, QP" in str(info.value)


def test_meshed_pandapower_net_for_a_radial_formulation_is_refused() -> None:
    pytest.importorskip("pandapower")
    from gridlang.io.gridtext import import_source

    imported = import_source("pandapower:case9", formulation="distflow_soc")
    with pytest.raises(gridlang.GridError, match=r"not radial"):
        gridlang.load(imported.text)


def test_planning_variant_with_binary_builds_is_an_misocp_for_scip(tmp_path) -> None:
    """SCIP's build decisions equal the best of all 8 fixed-build SOC solves (Clarabel)."""
    import itertools
    import re

    from gridlang.solvers import ProblemClass, problem_class

    path = CASES / "ieee33_soc_planning.grid"
    case = gridlang.load(path)
    assert problem_class(case.built) == ProblemClass.MISOCP
    r = case.solve(**{"limits/gap": 1e-5})
    assert r.solver == "scip" and r.termination in ("optimal", "gap_limit")
    builds = tuple(int(round(v)) for v in r["pv_candidate-build"].values)
    text = path.read_text().replace("var build binary", "param fixed = 0\n  var build in [fixed, fixed]").replace("solver = scip", "solver = clarabel")
    text = text.replace("daily_cost [$]) {", "daily_cost [$], fixed) {")
    for f in CASES.glob("ieee33_*.grid"):
        shutil.copy(f, tmp_path)
    shutil.copytree(CASES / "data", tmp_path / "data")
    best = {}
    for combo in itertools.product([0, 1], repeat=3):
        t = text
        for site, b in zip(["site18", "site25", "site33"], combo):
            t = re.sub(rf"(  {site} [^\n]*)\n", lambda m: m.group(1) + f"  {b}\n", t, count=1)
        variant = tmp_path / "planning_fixed.grid"
        variant.write_text(t)
        best[combo] = gridlang.load(variant).solve().objective
    optimum = min(best, key=best.get)
    assert builds == optimum == (1, 1, 0)
    assert r.objective == pytest.approx(best[optimum], rel=1e-5)
