"""The files a result folder holds: results.nc exact with units, one readable CSV per variable.

results.nc must give back every variable, price and output with its unit;
each CSV is a wide table (a row per step, a column per element) whose header
carries the unit, holds the numbers to :data:`CSV_DIGITS` digits and leaves
not-applicable entries blank; a variable blank everywhere gets no CSV.
"""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import gridlang
from conftest import CASES
from gridlang.io.results import CSV_DIGITS, MANIFEST, read_manifest, write_csv, write_results

REL = 10.0 ** (1 - CSV_DIGITS)  # what CSV_DIGITS significant digits keep


@pytest.fixture(scope="module")
def dispatch(tmp_path_factory):
    """The 33-bus dispatch (buses, lines, PV, storage, grid, prices), solved and written."""
    case = gridlang.load(CASES / "ieee33_dispatch.grid")
    result = case.solve("highs")
    assert result.doubts() == ()
    out = tmp_path_factory.mktemp("res") / "ieee33"
    write_results(result, out)
    return case, result, out


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _number(text: str) -> float:
    return math.nan if text == "" else float(text)


def test_netcdf_round_trips_every_variable_with_its_unit(dispatch):
    _, result, out = dispatch
    back = xr.open_dataset(out / "results.nc", engine="h5netcdf")
    try:
        assert set(back.data_vars) == set(result.dataset.data_vars)
        for name, array in result.dataset.data_vars.items():
            assert back[name].dims == array.dims, name
            assert back[name].attrs["units"] == array.attrs["units"], name
            np.testing.assert_array_equal(back[name].values, array.values, err_msg=name)  # NaN == NaN here
            for dim in array.dims:
                assert back[dim].values.tolist() == array[dim].values.tolist(), (name, dim)
    finally:
        back.close()


def test_each_csv_has_its_unit_in_the_header_and_the_right_shape(dispatch):
    _, result, out = dispatch
    written = read_manifest(out)
    for name, array in result.dataset.data_vars.items():
        path = out / f"{name}.csv"
        if bool(array.isnull().all()):
            assert not path.exists() and f"{name}.csv" not in written, f"{name} is blank everywhere: no CSV"
            continue
        assert f"{name}.csv" in written
        header, rows = _read(path)
        unit = array.attrs["units"]
        row = "time" if "time" in array.dims else array.dims[0]
        cols = [d for d in array.dims if d != row]
        assert header[0] == row
        names = ["/".join(map(str, c)) for c in itertools.product(*(array[d].values.tolist() for d in cols))] if cols else [name]
        assert header[1:] == [f"{n} [{unit}]" for n in names], name
        assert [r[0] for r in rows] == [str(v) for v in array[row].values.tolist()], name
        assert all(len(r) == len(header) for r in rows), name
        got = np.array([[_number(v) for v in r[1:]] for r in rows])
        want = array.transpose(row, *cols).values.reshape(array.sizes[row], -1)
        np.testing.assert_allclose(got, want, rtol=REL, atol=1e-12, equal_nan=True, err_msg=name)
        assert not any(v in ("-0", "nan", "-nan") for r in rows for v in r[1:]), name


def test_the_33_bus_results_hold_a_time_table_per_asset_kind(dispatch):
    """Not vacuous: the dispatch has wide tables over time and a price."""
    _, result, out = dispatch
    header, rows = _read(out / "storage-soc.csv")
    assert header == ["time", "es25 [MWh]"] and len(rows) == result.dataset.sizes["time"] == 24
    header, rows = _read(out / "pv-p.csv")
    assert header == ["time", "pv18 [MW]", "pv33 [MW]"]
    price = next(n for n in result.dataset.data_vars if "-price_p" in n)
    header, _ = _read(out / f"{price}.csv")
    assert header[0] == "time" and header[1].endswith(f"[{result.dataset[price].attrs['units']}]")


def test_csv_can_be_left_out(dispatch, tmp_path):
    _, result, _ = dispatch
    out = tmp_path / "nc_only"
    write_results(result, out, csv=False)
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".nc", ".csv")) == ["results.nc"]
    assert (out / MANIFEST).is_file() and (out / "summary.json").is_file()


KW_CASE = """
system shop { base_power = 100 kVA; base_voltage = 400 V; horizon = 3 h; step = 1 h }
network shop uses copper_plate { bus b1 { slack } }
profile shape = [1, 0.5, 0.25]
load fridge at b1 { p = 30 kW; scale = shape }
storage pack at b1 { energy = 20 kWh; power = 10 kW; soc_init = 50 %; soc_final = 50 % }
generator genset at b1 { pmax = 50 kW; marginal_cost = 300 $/MWh }
objective minimize cost
"""


def test_a_kw_scale_case_is_written_in_the_declared_units(tmp_path):
    """Values leave the per-unit base (100 kVA) for each variable's declared unit."""
    case = gridlang.load(KW_CASE)
    result = case.solve("highs")
    assert result.doubts() == ()
    out = tmp_path / "shop"
    write_results(result, out)
    declared = case.built.units
    back = xr.open_dataset(out / "results.nc", engine="h5netcdf")
    try:
        for name in ("generator-p", "storage-soc", "load-demand"):
            header, _ = _read(out / f"{name}.csv")
            if name in declared:
                assert back[name].attrs["units"] == declared[name][0], name
            assert header[1].endswith(f"[{back[name].attrs['units']}]"), name
        # the demand is 30, 15, 7.5 kW whatever unit it is written in
        to_kw = {"kW": 1.0, "MW": 1e3, "W": 1e-3}
        demand = back["load-demand"]
        np.testing.assert_allclose(demand.values.ravel() * to_kw[demand.attrs["units"]], [30.0, 15.0, 7.5], rtol=1e-9)
        _, rows = _read(out / "load-demand.csv")
        np.testing.assert_allclose([float(r[1]) * to_kw[demand.attrs["units"]] for r in rows], [30.0, 15.0, 7.5], rtol=REL)
        # the storage ends where it started: 50 % of 20 kWh
        soc = back["storage-soc"]
        assert soc.attrs["units"] in ("kWh", "MWh")
        assert float(soc.isel(time=-1).squeeze()) * {"kWh": 1.0, "MWh": 1e3}[soc.attrs["units"]] == pytest.approx(10.0, rel=1e-6)
    finally:
        back.close()


def test_write_csv_quotes_names_stacks_dimensions_and_blanks_nan(tmp_path):
    values = np.array([[[1.0, -0.0], [np.nan, 2.5e-7]], [[1234567.891, 0.1], [3.0, np.inf]]])
    array = xr.DataArray(values, dims=("time", "unit", "phase"), coords={"time": [0, 1], "unit": ["a,b", 'say "x"'], "phase": ["nan", "b"]}, name="thing-x", attrs={"units": "$/MWh"})
    write_csv(array, tmp_path / "t.csv")
    header, rows = _read(tmp_path / "t.csv")
    assert header == ["time", "a,b/nan [$/MWh]", "a,b/b [$/MWh]", 'say "x"/nan [$/MWh]', 'say "x"/b [$/MWh]']
    assert rows == [["0", "1", "0", "", "2.5e-07"], ["1", "1234567.89", "0.1", "3", "inf"]]
    write_csv(array.isel(time=0, phase=0), tmp_path / "one.csv")
    assert _read(tmp_path / "one.csv") == (["unit", "thing-x [$/MWh]"], [["a,b", "1"], ['say "x"', ""]])
    write_csv(array.isel(time=1, unit=0, phase=0), tmp_path / "scalar.csv")
    assert _read(tmp_path / "scalar.csv") == (["thing-x [$/MWh]"], [["1234567.89"]])
