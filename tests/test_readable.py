"""Results a person can read: the summary in the case's scale, pipe-friendly output, pictures."""

import json
from dataclasses import replace

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import gridlang
from conftest import CASES
from gridlang import plots
from gridlang.cli import app
from gridlang.report import number, quantity_rows

runner = CliRunner()


def _solved(name: str):
    c = gridlang.load(CASES / name)
    result = c.solve()
    return result if result.built is not None else replace(result, built=c.built)


@pytest.fixture(scope="module")
def ieee33():
    return _solved("ieee33_dispatch.grid")


def _rows(output: str) -> dict[str, list[str]]:
    """Table rows of the printed summary by quantity name (box characters stripped)."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().split("│")]
        if len(cells) == 8 and cells[0] == cells[-1] == "":  # │ a │ b │ ... │ f │
            rows[cells[1]] = cells[2:-1]
    return rows


def test_pictures_of_the_33_bus_day_are_real_images(ieee33, tmp_path):
    from matplotlib.image import imread

    written = plots.write_pictures(ieee33, tmp_path)
    assert [p.name for p in written] == list(plots.PICTURES)
    for path in written:
        image = imread(path)
        assert image.shape[0] >= 300 and image.shape[1] >= 500, path
        flat = image.reshape(-1, image.shape[-1])
        assert len(np.unique(flat, axis=0)) > 10, f"{path} is blank"


def test_plot_accessor_and_html(ieee33):
    for fig in (ieee33.plot.voltage(), ieee33.plot.dispatch(), ieee33.plot.network()):
        assert fig.axes and any(ax.has_data() for ax in fig.axes)
    page = ieee33._repr_html_()
    assert "optimal" in page and "grid-import" in page and "<table>" in page


def test_dispatch_sums_to_the_load_and_the_tree_follows_the_lines(ieee33):
    """Injections per kind (sources minus sinks) balance up to the feeder's losses (none under lindistflow)."""
    series = plots.injections(ieee33)
    assert set(series) == {"grid", "load", "pv", "storage"}
    total = sum(s for s in series.values())
    assert float(abs(total).max()) < 1e-6
    load = -series["load"]
    expected = (ieee33["load-demand"] - ieee33["load-shed"].fillna(0)).sum("load")
    np.testing.assert_allclose(load.values, expected.values, atol=1e-9)
    net = ieee33.built.case.networks[0]
    t = plots.tree(net)
    assert net.buses[t.order[0]] == "b1" and sorted(t.order) == list(range(len(net.buses)))
    for b in t.order[1:]:  # every parent is visited before its child, one line apart
        assert t.order.index(t.parent[b]) < t.order.index(b) and t.depth[b] == t.depth[t.parent[b]] + 1


def test_kw_scale_case_is_summarised_in_kw_with_its_currency(tmp_path):
    out = tmp_path / "res"
    r = runner.invoke(app, ["solve", str(CASES / "community4.grid"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = _rows(r.output)
    ds = xr.open_dataset(out / "results.nc", engine="h5netcdf")
    assert rows["grid-import"][0] == "kW" and rows["storage-soc"][0] == "kWh" and rows["grid-q"][0] == "kvar"
    energy = float(ds["grid-import"].sum()) * 1e3  # MW over 1 h steps -> kWh
    assert rows["grid-import"][4] == f"{number(energy)} kWh"
    assert rows["feeder-price_p"][0] == "$/MWh" and rows["feeder-price_q"][0] == "$/Mvarh"
    assert rows["agent_cost"][0] == "$" and rows["agent_cost"][4].endswith(" $")
    # no totals of states, voltages, prices or flows
    for name in ("storage-soc", "feeder-voltage", "feeder-w", "feeder-price_p", "feeder-P"):
        assert rows[name][4] == "", name
    assert "currency" not in r.output and "(total cost, $)" in r.output
    # all-NaN outputs (reactive power of assets without a rating) are left out; names are never cut
    assert "pv-q" not in rows and "storage-discharge" in rows and "…" not in r.output


def test_helpers_binaries_and_negative_zero_left_readable():
    c = gridlang.load(CASES / "ieee33_soc_dispatch.grid")
    result = c.solve()
    helpers = [k for k in result.dataset.data_vars if k.endswith("_m0")]
    assert helpers, "the case should carry a cone helper"
    names = [row[0] for row in quantity_rows(result, c.built)]
    assert not any(n in names for n in helpers) and "pv-p" in names
    assert number(-0.0) == "0" and number(-1e-17) == "0" and number(-2.5) == "-2.5" and number(12345.6) == "12,346"


def test_a_power_within_the_feasibility_tolerance_is_shown_as_zero():
    """A decomposed answer's grid export of -4e-9 MW (noise within the tolerance of 1e-5 p.u.)
    is 0 in the summary, minimum, mean, maximum and total alike; results.nc keeps the exact value."""
    c = gridlang.load(CASES / "ieee33_dispatch.grid")
    result = c.solve()
    base = c.built.case.system.base.power_va / 1e6
    export = result.dataset["grid-export"]
    noisy = result.dataset.assign({"grid-export": export * 0 - 4e-9, "grid-import": export * 0 + 3e-5 * base})
    rows = {row[0]: row for row in quantity_rows(replace(result, dataset=noisy), c.built)}
    assert rows["grid-export"][2:] == ("0", "0", "0", "0 MWh")
    assert rows["grid-import"][2] == number(3e-5 * base) != "0"  # 3e-5 p.u., above the tolerance: shown
    assert number(-4e-6, zero=1e-5) == "0" and number(-4e-6) == "-4e-06"


def test_json_prints_the_summary_and_nothing_else(tmp_path):
    out = tmp_path / "res"
    r = runner.invoke(app, ["solve", str(CASES / "ieee33_base.grid"), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    printed = json.loads(r.stdout)
    assert printed == json.loads((out / "summary.json").read_text())
    assert "termination" in r.stderr and "solving centrally with highs" in r.stderr


def test_decomposition_logs_its_progress_when_piped(tmp_path):
    r = runner.invoke(app, ["solve", str(CASES / "prosumers.grid"), "--out", str(tmp_path / "res"), "--method", "admm"])
    assert r.exit_code == 0, r.output
    assert "solving by admm" in r.stderr and "iteration 1: primal" in r.stderr
