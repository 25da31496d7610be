"""Small cases with optima computed by hand, one or more per standard-library kind."""

import pytest

import gridlang

HEAD = "system s {{ base_power = 1 MVA; base_voltage = 10 kV; horizon = {h} h; step = 1 h }}\n"
PLATE = "network n uses copper_plate { bus b1 { slack }; bus b2 }\n"


def solve(body: str, hours: int, **kw):
    result = gridlang.load(HEAD.format(h=hours) + PLATE + body).solve(**kw)
    assert result.optimal and result.residual < 1e-7
    return result


def test_storage_arbitrage_two_cycles():
    r = solve(
        """profile price = [10, 50, 20, 100] $/MWh
grid g at b1 { import_price = price; export_price = price; import_max = 10 MW; export_max = 10 MW }
storage es at b2 { energy = 2 MWh; power = 1 MW; soc_init = 0 %; soc_final = 0 % }
load ld at b2 { p = 0.5 MW }""",
        4,
    )
    # buy 1.5, sell 0.5, buy 1.5, sell 0.5: 15 - 25 + 30 - 50
    assert r.objective == pytest.approx(-30)
    assert r["storage-soc"].sel(storage="es").values == pytest.approx([1, 0, 1, 0])
    # with no congestion the nodal price is the grid price
    assert r["n-price_p"].values == pytest.approx([10, 50, 20, 100])


def test_storage_losses_both_ways():
    r = solve(
        """profile price = [10, 100] $/MWh
grid g at b1 { import_price = price; export_price = price }
storage es at b2 { energy = 1 MWh; power = 1 MW; efficiency = 90 %; soc_init = 0 %; soc_final = 0 % }""",
        2,
    )
    # 1 MWh bought stores 0.9 and returns 0.81
    assert r.objective == pytest.approx(10 - 81)


def test_storage_cyclic_state():
    r = solve(
        """profile price = [100, 10, 100] $/MWh
grid g at b1 { import_price = price; export_price = price }
storage es at b2 { energy = 1 MWh; power = 1 MW; soc_init = 100 %; cyclic }""",
        3,
    )
    # cyclic: the one cheap step buys back what one dear step sold; soc_init is ignored
    assert r.objective == pytest.approx(-90)
    flow = (r["storage-charge"] - r["storage-discharge"]).sel(storage="es").values
    assert flow.sum() == pytest.approx(0, abs=1e-9)


def test_generator_quadratic_cost_is_a_qp():
    r = solve(
        """grid g at b1 { import_price = 20 $/MWh }
generator gen at b2 { pmax = 10 MW; marginal_cost = 10 $/MWh; quadratic_cost = 1 $/MW^2/h }
load ld at b2 { p = 8 MW }""",
        1,
    )
    # 10 + 2 p = 20 at p = 5, the rest imported: 50 + 25 + 3 * 20
    assert r["generator-p"].item() == pytest.approx(5, abs=1e-5)
    assert r.objective == pytest.approx(135, abs=1e-5)


def test_generator_ramp_limit():
    r = solve(
        """profile demand = [2, 6]
grid g at b1 { import_price = 100 $/MWh }
generator gen at b2 { pmax = 10 MW; marginal_cost = 10 $/MWh; ramp = 1 MW/h }
load ld at b2 { p = 1 MW; scale = demand }""",
        2,
    )
    # running at 5 then 6 (exporting 3 for free at first) beats importing
    assert r["generator-p"].values.ravel() == pytest.approx([5, 6])
    assert r.objective == pytest.approx(110)


def test_load_shed_at_value_of_lost_load():
    r = solve(
        """grid g at b1 { import_price = 50 $/MWh; import_max = 3 MW }
load ld at b2 { p = 5 MW; curtailable = 100 %; voll = 1000 $/MWh }""",
        1,
    )
    assert r["load-shed"].item() == pytest.approx(2)
    assert r.objective == pytest.approx(3 * 50 + 2 * 1000)


@pytest.mark.parametrize("kind", ["pv", "wind"])
def test_renewable_output_within_availability(kind):
    r = solve(
        f"""profile avail = [0.5, 1]
grid g at b1 {{ import_price = 50 $/MWh; export_max = 0 MW }}
{kind} r1 at b2 {{ capacity = 4 MW; availability = avail }}
load ld at b2 {{ p = 3 MW }}""",
        2,
    )
    assert r[f"{kind}-p"].values.ravel() == pytest.approx([2, 3])
    assert r.objective == pytest.approx(50)


@pytest.mark.parametrize(("arrival", "departure", "cost"), [(1, 3, 5 + 2), (3, 1, 10 + 1)])
def test_ev_charges_inside_its_window(arrival, departure, cost):
    r = solve(
        f"""profile price = [1, 5, 2, 10] $/MWh
grid g at b1 {{ import_price = price }}
ev car at b2 {{ power = 1 MW; energy = 2 MWh; arrival = {arrival} h; departure = {departure} h }}""",
        4,
    )
    assert r.objective == pytest.approx(cost)


def test_user_kind_with_binary_commitment_is_a_milp():
    r = solve(
        """kind unit at bus {
  param pmax: MW; param pmin: MW; param fixed: $/h
  var on[t] binary
  var p[t]: MW in [0, pmax]
  upper: p[t] <= pmax * on[t]
  lower: p[t] >= pmin * on[t]
  inject p[t] = p[t]
  cost fixed * on[t] * dt
  cost 10 $/MWh * p[t] * dt
}
profile demand = [1, 5]
grid g at b1 { import_price = 30 $/MWh }
unit u1 at b2 { pmax = 10 MW; pmin = 3 MW; fixed = 50 $/h }
load ld at b2 { p = 1 MW; scale = demand }""",
        2,
    )
    assert r["unit-on"].values.ravel() == pytest.approx([0, 1], abs=1e-6)
    assert r.objective == pytest.approx(30 + 100)


def test_lindistflow_two_bus_voltage_drop():
    text = HEAD.format(h=1) + """network n uses lindistflow {
  bus b1 { slack }
  bus b2 { vmin = 0.9 }
  line l1 from b1 to b2 { r = 1 ohm; x = 2 ohm }
}
grid g at b1 { import_price = 1 $/MWh }
load ld at b2 { p = 1 MW; q = 0.5 Mvar }
"""
    r = gridlang.load(text).solve()
    # Z_base = (10 kV)^2 / 1 MVA = 100 ohm: w2 = 1 - 2 (0.01 * 1 + 0.02 * 0.5)
    assert r["n-w"].sel(bus="b2").item() == pytest.approx(0.96)
    assert r["n-voltage"].sel(bus="b2").item() == pytest.approx(0.96**0.5)
    assert r["n-P"].item() == pytest.approx(1.0)
