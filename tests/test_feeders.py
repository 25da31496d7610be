"""Feeders as they are published, with their shunts, line charging and taps,
solved under distflow_soc (Clarabel, minimising the substation import at
fixed loads so the relaxation is exact) against pandapower's Newton-Raphson
power flow on the same, unstripped data."""

from __future__ import annotations

import re

import numpy as np
import pytest

import gridlang
from conftest import CASES
from gridlang.io.matpower import read_matpower, to_grid

MATPOWER = CASES / "matpower"
pp = pytest.importorskip("pandapower")


def wide(text: str) -> str:
    """A power flow has no voltage limits: keep them from binding (the slack's v_set stays)."""
    return re.sub(r"vmin = [0-9.]+", "vmin = 0.5", re.sub(r"vmax = [0-9.]+", "vmax = 1.5", text))


def newton_raphson_matpower(case):
    from pandapower.converter.pypower import from_ppc

    data = case.converted()
    net = from_ppc({"version": "2", "baseMVA": data.base_mva, "bus": data.bus, "gen": data.gen, "branch": data.branch}, f_hz=50, validate_conversion=False)
    pp.runpp(net, numba=False, tolerance_mva=1e-10)
    return data, net, branch_losses(net)


def branch_losses(net) -> float:
    """Active losses of every branch of a solved pandapower net (lines, transformers, impedances)."""
    return sum(float(getattr(net, f"res_{kind}").pl_mw.sum()) for kind in ("line", "trafo", "impedance") if len(getattr(net, kind)))


@pytest.mark.parametrize("name", ["case18", "case33bw", "case22", "case69", "case85"])
def test_matpower_as_published_equals_newton_raphson(name: str) -> None:
    case = read_matpower(MATPOWER / f"{name}.m")
    text = wide(to_grid(case, name, formulation="distflow_soc"))
    r = gridlang.load(text).solve()
    assert r.solver == "clarabel" and r.optimal and not r.warnings
    data, net, losses = newton_raphson_matpower(case)
    v = r[f"{name}-voltage"].isel(time=0)
    ours = np.array([float(v.sel(bus=f"b{int(i)}")) for i in data.bus[:, 0]])
    assert np.max(np.abs(ours - net.res_bus.vm_pu.to_numpy())) < 1e-4
    assert float(r[f"{name}-losses"].sum()) == pytest.approx(losses, rel=1e-3)


@pytest.mark.parametrize("name", sorted(p.stem for p in MATPOWER.glob("*.m")))
def test_no_false_relaxation_warning_on_shipped_matpower_cases(name: str) -> None:
    """Minimising the import at fixed loads makes the relaxation exact: no case may be
    flagged (case141 has a branch with r = 0, whose current only the reactive balance prices)."""
    # wide voltage limits: case85's published 0.9 p.u. cannot be held at its loads
    r = gridlang.load(wide(to_grid(read_matpower(MATPOWER / f"{name}.m"), name, formulation="distflow_soc"))).solve()
    assert not r.warnings
    # case533mt_hi (533 buses) ends 'almost_optimal' under Clarabel's default accuracy, as before shunts and taps
    assert r.optimal or (name == "case533mt_hi" and r.termination == "almost_optimal")


def newton_raphson(net) -> None:
    pp.runpp(net, numba=False, tolerance_mva=1e-10)


def solve_pandapower(net, name: str = "n"):
    from gridlang.io.pandapower_net import convert_pandapower

    imported = convert_pandapower(net, name, "distflow_soc", sgen="load")
    return imported, gridlang.load(wide(imported.text)).solve()


def compare(net, r, name: str = "n") -> tuple[float, float, float]:
    """Largest |dV| over the buses both have, and the losses (ours, Newton-Raphson) as import minus demand."""
    newton_raphson(net)
    v = r[f"{name}-voltage"].isel(time=0)
    nr = net.res_bus.vm_pu
    common = [b for b in nr.index if f"b{b}" in v.bus]
    dv = max(abs(float(v.sel(bus=f"b{b}")) - float(nr[b])) for b in common)
    demand = float(net.res_load.p_mw.sum()) - float(net.res_sgen.p_mw.sum()) + sum(float(getattr(net, f"res_{k}").p_mw.sum()) for k in ("shunt", "storage") if len(getattr(net, k)))
    ours = float((r["grid-import"] - r["grid-export"]).sum()) - demand
    theirs = float(net.res_ext_grid.p_mw.sum()) - demand
    return dv, ours, theirs


@pytest.mark.parametrize("der", [False, "pv_wind", "all"])
def test_cigre_mv_with_line_charging_equals_newton_raphson(der) -> None:
    from pandapower.networks import create_cigre_network_mv

    net = create_cigre_network_mv(with_der=der)
    assert net.line.c_nf_per_km.gt(0).all()  # as published: every line has capacitance
    imported, r = solve_pandapower(net)
    assert "charging [Mvar]" in imported.text
    assert r.optimal and not r.warnings  # the relaxation is exact and not flagged
    dv, ours, theirs = compare(net, r)
    assert dv < 1e-4
    assert ours == pytest.approx(theirs, rel=1e-3)
    assert ours == pytest.approx(branch_losses(net), rel=1e-3)


def test_pandapower_shunts_and_taps_equal_newton_raphson() -> None:
    """A shunt capacitor (with steps) and an off-nominal tap at the substation transformer."""
    from pandapower.networks import create_cigre_network_mv

    net = create_cigre_network_mv()
    pp.create_shunt(net, bus=5, q_mvar=-1.5, p_mw=0.01, step=2)
    net.trafo.loc[0, ["tap_side", "tap_neutral", "tap_pos", "tap_step_percent", "tap_min", "tap_max", "tap_changer_type"]] = ["hv", 0, -2, 1.5, -9, 9, "Ratio"]
    net.trafo.loc[0, ["pfe_kw", "i0_percent"]] = [29.0, 0.07]
    imported, r = solve_pandapower(net)
    assert "tap = " in imported.text and "bs = 3 Mvar" in imported.text and "leakage = " in imported.text
    assert r.optimal and not r.warnings
    dv, ours, theirs = compare(net, r)
    assert dv < 1e-4
    assert ours == pytest.approx(theirs, rel=1e-3)


def test_the_importer_says_what_a_formulation_drops() -> None:
    from gridlang.io.matpower import import_matpower

    kept = import_matpower(MATPOWER / "case18.m", formulation="distflow_soc")
    assert not any("dropped" in w for w in kept.warnings)
    lost = import_matpower(MATPOWER / "case18.m", formulation="copper_plate")
    assert any(re.fullmatch(r"10 shunts, 10\.05 Mvar at 1 p\.u\., dropped \(copper_plate has no bus shunts\)", w) for w in lost.warnings), lost.warnings


def test_mv_oberrhein_two_substations_with_taps_equal_newton_raphson() -> None:
    """Two HV/MV transformers (taps at -2 and -3, magnetising losses) feeding two radial trees, in one case."""
    from pandapower.networks import mv_oberrhein

    net = mv_oberrhein()
    assert len(net.ext_grid) == 2 and set(net.trafo.tap_pos) == {-2.0, -3.0}
    imported, r = solve_pandapower(net)
    assert imported.text.count(" slack;") == 2 and imported.text.count("tap = ") == 2
    assert r.optimal and not r.warnings
    dv, ours, theirs = compare(net, r)
    assert dv < 1e-4
    assert ours == pytest.approx(theirs, rel=1e-3)


FOREST = """system s { base_power = 1 MVA; base_voltage = 10 kV; horizon = 1 h; step = 1 h }
network n uses distflow_soc {
  bus a1 { slack; v_set = 1.0 }
  bus a2
  bus c1 SLACK_C1
  bus c2
  line table (name, from, to, r [ohm], x [ohm]) {
    la a1 a2 0.5 0.3
    lc c1 c2 0.4 0.2
  }
}
grid ga at a1 { import_price = 10 $/MWh }
GRID_C
load table (name, at, p [MW], q [Mvar]) {
  da a2 0.5 0.2
  dc c2 0.3 0.1
}
objective minimize cost
"""


def test_a_forest_with_one_slack_per_tree_solves_as_its_trees() -> None:
    text = FOREST.replace("SLACK_C1", "{ slack; v_set = 1.02 }").replace("GRID_C", "grid gc at c1 { import_price = 10 $/MWh }")
    r = gridlang.load(text).solve()
    assert r.optimal and not r.warnings
    for line, load, grid in (("la", 0.5, "ga"), ("lc", 0.3, "gc")):  # each tree carries its own load from its own substation
        losses = float(r["n-losses"].sel(line=line).isel(time=0))
        assert losses > 0
        assert float(r["n-P"].sel(line=line).isel(time=0)) == pytest.approx(load + losses, abs=1e-6)
        assert float(r["grid-import"].sel(grid=grid).isel(time=0)) == pytest.approx(load + losses, abs=1e-6)
    assert float(r["n-voltage"].sel(bus="c1").isel(time=0)) == pytest.approx(1.02, abs=1e-9)


def test_a_tree_without_a_slack_is_still_an_error() -> None:
    text = FOREST.replace("SLACK_C1", "").replace("GRID_C", "")
    with pytest.raises(gridlang.GridError, match=r"network 'n' is not connected: bus 'c1' cannot be reached from any slack bus") as e:
        gridlang.load(text)
    assert "mark the bus of another substation as slack" in str(e.value.hint)


def _cli(*args: str):
    from typer.testing import CliRunner

    from gridlang.cli import app

    return CliRunner().invoke(app, list(args))


def test_import_prints_what_it_drops(tmp_path) -> None:
    r = _cli("import", str(MATPOWER / "case18.m"), "-o", str(tmp_path / "c.grid"), "-f", "copper_plate")
    assert r.exit_code == 0, r.output
    assert "warning: 10 shunts, 10.05 Mvar at 1 p.u., dropped (copper_plate has no bus shunts)" in r.output
    assert "warning: 15 branches with line charging, 0.01 Mvar, dropped" in r.output
    kept = _cli("import", str(MATPOWER / "case18.m"), "-o", str(tmp_path / "d.grid"), "-f", "distflow_soc")
    assert kept.exit_code == 0 and "dropped" not in kept.output


def test_import_pandapower_json_sgen_and_seed(tmp_path) -> None:
    from pandapower.networks import create_cigre_network_mv

    net = create_cigre_network_mv(with_der="pv_wind")
    path = tmp_path / "cigre.json"
    pp.to_json(net, str(path))
    r = _cli("import", str(path), "-o", str(tmp_path / "a.grid"), "-f", "distflow_soc", "--sgen", "load")
    assert r.exit_code == 0, r.output
    text = (tmp_path / "a.grid").read_text()
    assert text.startswith("# Imported from the pandapower JSON file cigre.json") and "pv pv" not in text and " sg0 " in text
    result = gridlang.load(wide(text)).solve()  # static generators as fixed injections: Newton-Raphson's power flow
    dv, ours, theirs = compare(net, result, "cigre")
    assert dv < 1e-4 and ours == pytest.approx(theirs, rel=1e-3)
    bad = _cli("import", str(path), "-o", str(tmp_path / "b.grid"), "--sgen", "gen")
    assert bad.exit_code == 1 and "--sgen is 'pv' or 'load', not 'gen'" in bad.output
    # a random network: the same file for the same seed, another for another seed
    spec = "pandapower:create_kerber_landnetz_kabel_1()"  # lines branch out at random
    files = []
    for k, seed in enumerate(("1", "1", "2")):
        out = tmp_path / f"k{k}.grid"
        assert _cli("import", spec, "-o", str(out), "--seed", seed).exit_code == 0
        files.append(out.read_text().split("\n", 1)[1])  # past the first line, which names the seed
    assert files[0] == files[1] and files[0] != files[2]


def test_copper_plate_accepts_any_network() -> None:
    """--formulation copper_plate ignores impedances, voltage limits, shunts, taps (and loops)."""
    text = to_grid(read_matpower(MATPOWER / "case18.m"), "case18", formulation="distflow_soc")
    exact = gridlang.load(text).solve()
    case = gridlang.load(text, formulation="copper_plate")
    (note,) = [n for n in case.ir.notes if "ignored" in n]  # one note says what is ignored
    assert note.startswith("network 'case18' under copper_plate: its ") and "r, x" in note and "vmin" in note
    plate = case.solve()
    assert plate.optimal and not plate.warnings
    imported = float(plate["grid-import"].sum())
    assert imported == pytest.approx(float(plate["load-demand"].sum()), rel=1e-9)  # no losses on a copper plate
    assert float(plate["load-demand"].sum()) == pytest.approx(float(exact["load-demand"].sum()), rel=1e-9)
    assert imported < float(exact["grid-import"].sum())
    looped = FOREST.replace("SLACK_C1", "").replace("GRID_C", "").replace("    lc c1 c2 0.4 0.2", "    lc c1 c2 0.4 0.2\n    l3 a2 c1 0.1 0.1\n    l4 a1 c2 0.1 0.1")
    with pytest.raises(gridlang.GridError, match="not radial") as info:
        gridlang.load(looped, formulation="lindistflow")
    assert "lindistflow is a radial formulation" in info.value.hint and "--formulation copper_plate" in info.value.hint
    assert gridlang.load(looped, formulation="copper_plate").solve().optimal


TWO_BUS = """system s { base_power = 1 MVA; base_voltage = 10 kV; horizon = 1 h; step = 1 h }
network n uses lindistflow {
  bus b1 { slack; v_set = 1.0 }
  bus b2 { gs = 0.02 MW; bs = 0.5 Mvar; vmax = 1.2 }
  transformer t from b1 to b2 { r = 0.5 ohm; x = 2 ohm; tap = 0.95; charging = 0.1 Mvar; leakage = 0.01 MW }
}
grid g at b1 { import_price = 10 $/MWh }
objective minimize cost
"""


@pytest.mark.parametrize("formulation", ["lindistflow", "distflow_soc"])
def test_tap_shunt_charging_and_leakage_enter_as_written(formulation: str) -> None:
    """Two buses, no load: the flow into the transformer is the shunts' and the ends' admittance at the solved voltages."""
    r = gridlang.load(TWO_BUS, formulation=formulation).solve()
    assert r.optimal and not r.warnings
    w1, w2 = (float(r["n-w"].sel(bus=b).isel(time=0)) for b in ("b1", "b2"))
    P, Q = float(r["n-P"].sel(line="t").isel(time=0)), float(r["n-Q"].sel(line="t").isel(time=0))
    tap2, z = 0.95**2, 1 / (10**2 / 1)  # p.u. per ohm
    isq = float(r["n-isq"].sel(line="t").isel(time=0)) if formulation == "distflow_soc" else 0.0
    r_, x_ = 0.5 * z, 2 * z
    assert P - tap2 * r_ * isq - 0.01 / 2 * w2 == pytest.approx(0.02 * w2, abs=1e-7)  # into b2: its gs
    assert Q - tap2 * x_ * isq + 0.1 / 2 * w2 == pytest.approx(-0.5 * w2, abs=1e-7)  # into b2: bs gives, charging gives
    drop = w1 - 2 * tap2 * (r_ * P + x_ * Q) + tap2**2 * (r_**2 + x_**2) * isq
    assert tap2 * w2 == pytest.approx(drop, abs=1e-7)
    assert w2 > w1 / tap2  # the capacitor raises the voltage above the tap's ratio
    import_p = float(r["grid-import"].sum())
    assert import_p == pytest.approx(P + 0.01 / 2 * w1 / tap2, abs=1e-7)  # the from end's leakage, seen through the tap


def test_matpower_tap_and_charging_equal_newton_raphson() -> None:
    """case33bw with an off-nominal tap on its first branch and charging on every line."""
    from dataclasses import replace

    from gridlang.io.matpower import BR_B, TAP

    case = read_matpower(MATPOWER / "case33bw.m").converted()
    branch = case.branch.copy()
    branch[0, TAP] = 0.97
    branch[:, BR_B] = 0.002
    case = replace(case, branch=branch)
    text = wide(to_grid(case, "c", formulation="distflow_soc"))
    assert "transformer l1" not in text and "t1 from b1 to b2" in text and "tap = 0.97" in text and "charging [Mvar]" in text
    r = gridlang.load(text).solve()
    assert r.optimal and not r.warnings
    data, net, losses = newton_raphson_matpower(case)
    v = r["c-voltage"].isel(time=0)
    ours = np.array([float(v.sel(bus=f"b{int(i)}")) for i in data.bus[:, 0]])
    assert np.max(np.abs(ours - net.res_bus.vm_pu.to_numpy())) < 1e-4
    assert float(ours[1]) > 1.0  # the tap lifts the feeder above its slack voltage
    assert float(r["c-losses"].sum()) == pytest.approx(losses, rel=1e-3)
