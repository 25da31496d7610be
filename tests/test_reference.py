"""Published numbers: IEEE 33-bus under LinDistFlow (no losses)."""

import pytest

import gridlang
from conftest import CASES


@pytest.fixture(scope="module")
def base():
    return gridlang.load(CASES / "ieee33_base.grid").solve()


def test_ieee33_lindistflow_import_equals_total_load(base):
    assert base.optimal and base.primal_status == "feasible" and not base.doubts()
    assert base["grid-import"].sum().item() == pytest.approx(3.715, abs=1e-6)


def test_ieee33_lindistflow_minimum_voltage_at_bus_18(base):
    v = base["ieee33-voltage"].isel(time=0)
    assert v.min().item() == pytest.approx(0.91593, abs=1e-5)
    assert v.idxmin().item() == "b18"


def test_ieee33_prices_equal_substation_price_without_congestion(base):
    assert base["ieee33-price_p"].values == pytest.approx(1.0)


def test_ieee33_dispatch_solves_with_small_residual():
    r = gridlang.load(CASES / "ieee33_dispatch.grid").solve()
    assert r.optimal and r.residual < 1e-7 and not r.doubts()
    # the battery ends where it started and never leaves its limits
    soc = r["storage-soc"].sel(storage="es25")
    assert soc.isel(time=-1).item() >= 0.75 - 1e-6 and float(soc.max()) <= 1.5 + 1e-6
    # PV output never exceeds what the sun allows
    assert (r["pv-p"] <= 0.8 + 1e-9).all()
