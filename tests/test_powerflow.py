"""MATPOWER distribution cases imported and solved under distflow_soc with
Clarabel, against published figures and pandapower's Newton-Raphson power
flow on the same data (minimising the substation import at fixed loads makes
the relaxation exact, so its voltages are the power flow's)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import gridlang
from conftest import CASES
from gridlang.io.matpower import read_matpower, to_grid

MATPOWER = CASES / "matpower"


def solve_imported(name: str, wide_limits: bool = False):
    case = read_matpower(MATPOWER / f"{name}.m")
    text = to_grid(case, name, formulation="distflow_soc")
    if wide_limits:  # a power flow has no voltage limits; keep them from binding
        text = re.sub(r"vmin = [0-9.]+", "vmin = 0.5", re.sub(r"vmax = [0-9.]+", "vmax = 1.5", text))
    result = gridlang.load(text).solve()
    assert result.solver == "clarabel" and result.optimal
    return case, result


@pytest.mark.parametrize(
    "name, losses_kw, vmin, at",
    [("case33bw", 202.677, 0.91309, "b18"), ("case69", 224.99, 0.90919, "b65")],
)
def test_published_losses_and_lowest_voltage(name: str, losses_kw: float, vmin: float, at: str) -> None:
    _, r = solve_imported(name)
    assert float(r[f"{name}-losses"].sum()) * 1000 == pytest.approx(losses_kw, abs=0.05)
    v = r[f"{name}-voltage"].isel(time=0)
    assert float(v.min()) == pytest.approx(vmin, abs=1e-4)
    assert str(v.idxmin().values) == at
    assert float(abs(r[f"{name}-current_gap"]).max()) < 1e-6
    assert not r.warnings


@pytest.mark.parametrize("name", ["case33bw", "case69", "case85", "case22"])
def test_voltages_equal_pandapower_newton_raphson(name: str) -> None:
    pp = pytest.importorskip("pandapower")
    from pandapower.converter.pypower import from_ppc

    case, r = solve_imported(name, wide_limits=True)
    data = case.converted()
    net = from_ppc({"version": "2", "baseMVA": data.base_mva, "bus": data.bus, "gen": data.gen, "branch": data.branch}, f_hz=50, validate_conversion=False)
    pp.runpp(net, numba=False)
    v = r[f"{name}-voltage"].isel(time=0)
    ours = np.array([float(v.sel(bus=f"b{int(i)}")) for i in data.bus[:, 0]])
    assert np.max(np.abs(ours - net.res_bus.vm_pu.to_numpy())) < 1e-4
    assert float(r[f"{name}-losses"].sum()) == pytest.approx(float(net.res_line.pl_mw.sum()), rel=1e-5)
