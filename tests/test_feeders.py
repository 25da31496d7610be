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
