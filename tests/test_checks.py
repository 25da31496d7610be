"""Physical, unit and currency checks: nonsense is refused at the value that causes it.

Each bad input is run through the command line (``gridlang check``, or
``gridlang solve --measurements``) and must exit 1 with
``file:line:col: error: message``, the source line, a caret and a hint.
Ranges are declared in the models (``param efficiency = 1 in (0, 1]``), so
the same checks hold for kinds a user writes.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from typer.testing import CliRunner

import gridlang
from conftest import CASES
from gridlang.cli import app
from gridlang.errors import GridError

runner = CliRunner()

SYSTEM = "system s { base_power = 1 MVA; base_voltage = 10 kV; horizon = 4 h; step = 1 h }\n"
PLATE = "network n uses copper_plate { bus b1 { slack }; bus b2 }\n"
FEEDER = """network n uses lindistflow {
  bus b1 { slack; v_set = 1.0 }
  bus b2
  line l1 from b1 to b2 { r = 0.1 ohm; x = 0.1 ohm }
}
"""
GRID = "grid g at b1 { import_price = 10 $/MWh }\n"
LOAD = "load ld at b2 { p = 1 MW }\n"


def refused(path, line: int, col: int, message: str, hint: str, args: tuple[str, ...] = ()) -> str:
    """Run ``gridlang check`` (or ``args``) and assert exit 1 with the error at line:col."""
    r = runner.invoke(app, list(args) or ["check", str(path)])
    assert r.exit_code == 1, r.output
    head = f"{path if not args else args[-1]}:{line}:{col}: error: "
    text = r.output
    assert head in text, text
    first = text[text.index(head):].split("\n")
    assert re.search(message, first[0]), first[0]
    assert "^" in first[2], text
    if not first[1].lstrip().startswith("…"):  # a long line is cut around the caret
        assert first[2].index("^") == 4 + col - 1, text  # the caret under the column
    hints = [x for x in first[3:] if x.strip().startswith("hint:")]
    assert hints and re.search(hint, hints[0]), text
    return text


def case(tmp_path, text: str):
    path = tmp_path / "case.grid"
    path.write_text(text)
    return path


# ---------------------------------------------------------------- ranges of the standard kinds


def test_efficiency_of_150_percent_is_refused(tmp_path):
    path = case(tmp_path, SYSTEM + PLATE + GRID + LOAD + "storage es at b2 { energy = 1 MWh; power = 1 MW; efficiency = 150 % }\n")
    text = refused(path, 5, 63, r"'efficiency' of storage 'es' is 1\.5, but must be in \(0, 1\]", r"at most 1 \(100 %\).*storage\.grid")
    # the derived defaults (charge_efficiency = efficiency) are not reported again
    assert "charge_efficiency" not in text and "1 error" not in text.split("\n")[-2]


def test_efficiency_written_as_a_percentage_number_suggests_percent(tmp_path):
    path = case(tmp_path, SYSTEM + PLATE + GRID + LOAD + "storage es at b2 { energy = 1 MWh; power = 1 MW; efficiency = 95 }\n")
    refused(path, 5, 63, r"is 95, but must be in \(0, 1\]", r"did you mean 95 %\?")


def test_negative_resistance_is_refused(tmp_path):
    path = case(tmp_path, SYSTEM + FEEDER.replace("r = 0.1 ohm", "r = -0.1 ohm") + GRID + LOAD)
    refused(path, 5, 31, r"'r' of line 'l1' is -0\.1 ohm, but must be >= 0", r"negative 'r' is not physical.*lindistflow\.grid")


def test_resistance_of_1e300_is_out_of_range_not_unbounded(tmp_path):
    path = case(tmp_path, SYSTEM + FEEDER.replace("r = 0.1 ohm", "r = 1e300 ohm") + GRID + LOAD)
    refused(path, 5, 31, r"'r' of line 'l1' is 1e\+300 ohm, beyond 1e\+12 ohm", r"typo in the exponent")


def test_a_table_cell_out_of_range_points_at_its_row(tmp_path):
    feeder = FEEDER.replace("  line l1 from b1 to b2 { r = 0.1 ohm; x = 0.1 ohm }\n", "  line table (name, from, to, r [ohm], x [ohm]) {\n    l1 b1 b2 -2 0.1\n  }\n")
    path = case(tmp_path, SYSTEM + feeder + GRID + LOAD)
    refused(path, 6, 5, r"'r' of line 'l1' is -2 ohm, but must be >= 0", r"negative 'r'")


def test_a_profile_is_checked_at_every_step(tmp_path):
    path = case(tmp_path, SYSTEM + PLATE + GRID + LOAD + "pv p at b2 { capacity = 1 MW; availability = [0.2, 0.9, 1.4, 1.2] }\n")
    refused(path, 5, 46, r"'availability' of pv 'p' is 1\.4 at step 3 of 4 \(and 1 more step\), but must be in \[0, 1\]", r"pv\.grid")


def test_a_range_against_another_parameter(tmp_path):
    path = case(tmp_path, SYSTEM + FEEDER.replace("  bus b2\n", "  bus b2 { vmin = 1.05; vmax = 1.0 }\n") + GRID + LOAD)
    refused(path, 4, 32, r"'vmax' of bus 'b2' is 1, but must be >= vmin", r"here lower end 1\.05")


def test_the_cases_stay_valid():
    for path in sorted(CASES.glob("*.grid")):
        if "system" in path.read_text():  # fragments without a system are included by the cases
            r = runner.invoke(app, ["check", str(path)])
            assert r.exit_code == 0, r.output


# ---------------------------------------------------------------- ranges of a user's kind

HEATER = """kind heater at bus {
  param power: kW >= 0
  param cop = 3 in [1, 6)
  var p[t]: kW in [0, power]
  inject p[t] = -p[t]
}
"""


def test_a_users_kind_gets_its_declared_range_checked(tmp_path):
    path = case(tmp_path, SYSTEM + PLATE + GRID + HEATER + "heater h1 at b2 { power = 5 kW; cop = 6 }\nheater h2 at b2 { power = -5 kW }\n")
    text = refused(path, 10, 39, r"'cop' of heater 'h1' is 6, but must be in \[1, 6\)", r"declared at .*case\.grid:6:17")
    assert "case.grid:11:27: error: 'power' of heater 'h2' is -5 kW, but must be >= 0" in text
    assert "2 errors" in text


def test_a_default_outside_its_own_range_is_reported_at_the_instance(tmp_path):
    path = case(tmp_path, SYSTEM + PLATE + GRID + HEATER.replace("cop = 3", "cop = 7") + "heater h1 at b2 { power = 5 kW }\n")
    refused(path, 10, 1, r"'cop' of heater 'h1' \(its default\) is 7, but must be in \[1, 6\)", r"declared at")


def test_a_range_written_with_equals_is_a_syntax_error(tmp_path):
    path = case(tmp_path, SYSTEM + PLATE + "kind k at bus {\n  param a == 0\n}\n")
    refused(path, 4, 11, r"a parameter's range is not written with '=='", r">=, >, <= or <")


def test_a_range_names_only_parameters(tmp_path):
    path = case(tmp_path, SYSTEM + PLATE + GRID + "kind k at bus {\n  param a: kW >= floor\n  var p[t]: kW in [0, a]\n  inject p[t] = -p[t]\n}\nk k1 at b2 { a = 1 kW }\n")
    refused(path, 5, 18, r"unknown name 'floor' in the range of a parameter of k", r"numbers, inf and the other parameters")


# ---------------------------------------------------------------- slack bus


def test_a_network_with_voltages_needs_a_slack_bus(tmp_path):
    path = case(tmp_path, SYSTEM + FEEDER.replace("{ slack; v_set = 1.0 }", "") + GRID + LOAD)
    refused(path, 2, 9, r"network 'n' has no slack bus: under lindistflow its voltages would float", r"bus b1 \{ slack; v_set = 1\.0 \}")


def test_v_set_on_a_bus_that_is_not_slack_is_refused(tmp_path):
    path = case(tmp_path, SYSTEM + FEEDER.replace("  bus b2\n", "  bus b2 { v_set = 1.02 }\n") + GRID + LOAD)
    refused(path, 4, 20, r"'v_set' of bus 'b2' would be ignored: only a slack bus has its voltage set", r"make 'b2' a slack bus")


def test_a_copper_plate_needs_no_slack():
    gridlang.load(SYSTEM + "network n uses copper_plate { bus b1; bus b2 }\n" + GRID + LOAD)


# ---------------------------------------------------------------- currencies


def test_euros_in_a_dollar_case_are_refused(tmp_path):
    path = case(tmp_path, SYSTEM + PLATE + GRID + "load ld at b2 { p = 1 MW; curtailable = 50 %; voll = 900 EUR/MWh }\n")
    refused(path, 4, 54, r"'EUR/MWh' is in €, but the case's currency is \$", r"exchange = 1\.08 \$/EUR")


def test_an_exchange_rate_converts_to_the_case_currency():
    text = SYSTEM.replace("step = 1 h", "step = 1 h; exchange = 1.25 $/EUR") + PLATE + "grid g at b1 { import_price = 10 €/MWh }\n" + LOAD
    r = gridlang.load(text).solve()
    assert r.optimal and r.objective == pytest.approx(4 * 12.5)  # 4 MWh at 10 € = 12.5 $


def test_a_declared_currency_refuses_dollars(tmp_path):
    system = SYSTEM.replace("step = 1 h", "step = 1 h; currency = EUR")
    path = case(tmp_path, system + PLATE + GRID + LOAD)
    refused(path, 3, 31, r"'\$/MWh' is in \$, but the case's currency is €", r"exchange = 1\.08 €/USD")
    r = gridlang.load(system.replace("currency = EUR", "currency = EUR; exchange = 0.5 €/USD") + PLATE + GRID + LOAD).solve()
    assert r.objective == pytest.approx(4 * 5.0)


def test_a_case_written_in_one_other_currency_is_in_that_currency():
    c = gridlang.load(SYSTEM + PLATE + "grid g at b1 { import_price = 20 €/MWh }\n" + LOAD)
    assert c.ir.system.base.currency == "EUR"
    assert c.solve().objective == pytest.approx(80)


def test_an_exchange_rate_must_involve_the_case_currency(tmp_path):
    path = case(tmp_path, SYSTEM.replace("step = 1 h", "step = 1 h; exchange = 1.2 GBP/EUR") + PLATE + GRID + LOAD)
    refused(path, 1, 92, r"an exchange rate is to the case's currency \(\$\)", r"exchange = 1\.08 \$/EUR")


# ---------------------------------------------------------------- measurements

MEASURED_CASE = """system s { base_power = 1 MVA; base_voltage = 10 kV; horizon = 2 h; step = 30 min }
network n uses copper_plate { bus b1 { slack }; bus b2 }
grid g at b1 { import_price = 10 $/MWh }
load ld at b2 { p = 1 MW }
pv sun at b2 { capacity = 0 MW; availability = 1 }
"""


def test_a_kwh_column_is_energy_per_step_and_is_divided_by_the_step(tmp_path):
    (tmp_path / "case.grid").write_text(MEASURED_CASE)
    m = tmp_path / "m.csv"
    m.write_text("step,ld.p [kWh]\n0,250\n1,500\n2,0\n3,125\n")  # steps of 30 min
    c = gridlang.load(tmp_path / "case.grid", measurements=m)
    load = next(g for g in c.ir.groups if g.kind.name == "load")
    np.testing.assert_allclose(load.params["p"][0], [0.5, 1.0, 0.0, 0.25])  # MW on a 1 MVA base
    assert any("divided by the step length" in n for n in c.ir.notes)
    r = c.solve()
    np.testing.assert_allclose(r["grid-import"].sel(grid="g").values, [0.5, 1.0, 0.0, 0.25], atol=1e-9)


def test_a_kw_column_is_scaled_to_the_parameter(tmp_path):
    (tmp_path / "case.grid").write_text(MEASURED_CASE)
    m = tmp_path / "m.csv"
    m.write_text("ld.p [kW],sun.availability [%]\n800,0\n1200,10\n400,50\n,100\n")
    c = gridlang.load(tmp_path / "case.grid", measurements=m)
    groups = {g.kind.name: g for g in c.ir.groups}
    np.testing.assert_allclose(groups["load"].params["p"][0], [0.8, 1.2, 0.4, 0.4])  # the gap: the last good value
    np.testing.assert_allclose(groups["pv"].params["availability"][0], [0.0, 0.1, 0.5, 1.0])


def test_a_measurement_outside_the_declared_range_is_implausible(tmp_path):
    from gridlang.monitoring import IMPLAUSIBLE, MEASURED, MISSING

    (tmp_path / "case.grid").write_text(MEASURED_CASE)
    m = tmp_path / "m.csv"
    m.write_text("sun.availability\n0.5\n1.3\n\n-0.1\n")  # 1.3 is within 3 times the plan, but above 1
    c = gridlang.load(tmp_path / "case.grid", measurements=m)
    assert c.measurement_flags.sel(terminal="sun.availability").values.tolist() == [MEASURED, IMPLAUSIBLE, MISSING, IMPLAUSIBLE]
    pv = next(g for g in c.ir.groups if g.kind.name == "pv")
    np.testing.assert_allclose(pv.params["availability"][0], [0.5, 0.5, 0.5, 0.5])


@pytest.mark.parametrize(
    "content, line, col, message, hint",
    [
        ("", 1, 1, r"the measurement file is empty", r"header row of '<asset>\.<parameter> \[unit\]'"),
        ("step,ld.p [kW]\n", 1, 1, r"has a header but no rows of measurements", r"one row per step \(4 rows\)"),
        ("step,ld.p [kW]\n0,1\n1,lots\n2,1\n3,1\n", 3, 3, r"'lots' is not a number", r"leave the cell empty"),
        ("step,ld.p\n0,1\n1,1\n2,1\n3,1\n", 1, 6, r"column 'ld\.p' has no unit, but 'p' is power", r"ld\.p \[kW\]"),
        ("step,ld.p [ohm]\n0,1\n1,1\n2,1\n3,1\n", 1, 6, r"is in ohm \(impedance\), which does not fit 'p' \(power\)", r"unit of power"),
        ("step,ldx.p [kW]\n0,1\n1,1\n2,1\n3,1\n", 1, 6, r"'ldx' is not an asset of the case", r"did you mean 'ld'\?"),
        ("step,ld.pp [kW]\n0,1\n1,1\n2,1\n3,1\n", 1, 6, r"'pp' is not a parameter of load 'ld'", r"did you mean 'p'\?"),
        ("step,ld.p [kW]\n0,1\n1,1,7\n2,1\n3,1\n", 3, 5, r"this row has 3 cells but the header has 2 columns", r"one cell per column"),
        ("step,g.import_price [EUR/MWh]\n0,1\n1,1\n2,1\n3,1\n", 1, 6, r"is in €, but the case's currency is \$", r"exchange"),
    ],
    ids=["empty", "no-rows", "not-a-number", "no-unit", "wrong-dimension", "unknown-asset", "unknown-parameter", "ragged-row", "currency"],
)
def test_bad_measurement_files_are_positioned_errors(tmp_path, content, line, col, message, hint):
    path = case(tmp_path, MEASURED_CASE)
    m = tmp_path / "m.csv"
    m.write_text(content)
    refused(path, line, col, message, hint, args=("solve", str(path), "--out", str(tmp_path / "out"), "--measurements", str(m)))
    assert not (tmp_path / "out").exists()
    with pytest.raises(GridError):
        gridlang.load(path, measurements=m)
