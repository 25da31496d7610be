"""Golden LP files: the exact rows every standard-library kind compiles to.

Regenerate after an intended change with GRIDLANG_UPDATE_GOLDEN=1 and review
the diff of tests/golden/ like code.
"""

import os
from pathlib import Path

import pytest

import gridlang

GOLDEN = Path(__file__).parent / "golden"
HEAD = """system s { base_power = 1 MVA; base_voltage = 10 kV; horizon = 2 h; step = 1 h }
profile two = [0.5, 1]
"""
PLATE = "network n uses copper_plate { bus b1 { slack }; bus b2 }\n"
FEEDER = """network n uses lindistflow {
  bus b1 { slack }; bus b2
  line l1 from b1 to b2 { r = 1 ohm; x = 2 ohm }
}
"""
CASES = {
    "load": PLATE + "grid g at b1 { import_price = 10 $/MWh }\nload ld at b2 { p = 2 MW; q = 1 Mvar; scale = two; curtailable = 50 %; voll = 900 $/MWh }",
    "generator": FEEDER + "load ld at b2 { p = 2 MW }\ngenerator gen at b2 { pmax = 5 MW; pmin = 1 MW; qmax = 1 Mvar; marginal_cost = 20 $/MWh; quadratic_cost = 0.5 $/MW^2/h; ramp = 1 MW/h }",
    "grid": PLATE + "load ld at b2 { p = 2 MW }\ngrid g at b1 { import_price = [30, 60] $/MWh; export_price = 10 $/MWh; import_max = 3 MW; export_max = 1 MW }",
    "pv": PLATE + "grid g at b1 { import_price = 10 $/MWh }\nload ld at b2 { p = 2 MW }\npv p1 at b2 { capacity = 1 MW; availability = two; curtailment_cost = 5 $/MWh }",
    "wind": PLATE + "grid g at b1 { import_price = 10 $/MWh }\nload ld at b2 { p = 2 MW }\nwind w1 at b2 { capacity = 1 MW; availability = two }",
    "storage": PLATE + "grid g at b1 { import_price = [10, 50] $/MWh; export_price = [10, 50] $/MWh }\nstorage es at b2 { energy = 2 MWh; power = 1 MW; charge_efficiency = 90 %; discharge_efficiency = 95 %; soc_min = 10 %; soc_init = 50 %; soc_final = 40 % }",
    "ev": PLATE + "grid g at b1 { import_price = [10, 50] $/MWh }\nev car at b2 { power = 500 kW; energy = 600 kWh; arrival = 0 h; departure = 2 h; efficiency = 90 % }",
    "copper_plate": PLATE + "grid g at b1 { import_price = 10 $/MWh }\nload ld at b2 { p = 2 MW }",
    "lindistflow": FEEDER + "grid g at b1 { import_price = 10 $/MWh }\nload ld at b2 { p = 2 MW; q = 1 Mvar }",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_lp(name, tmp_path):
    model = gridlang.load(HEAD + CASES[name] + "\n").compile()
    out = tmp_path / f"{name}.lp"
    model.to_file(out, explicit_coordinate_names=True)
    text = out.read_text()
    golden = GOLDEN / f"{name}.lp"
    if os.environ.get("GRIDLANG_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; run with GRIDLANG_UPDATE_GOLDEN=1"
    assert text == golden.read_text()
