"""Prosumer-operator games: per-prosumer Nash bargaining within the tariffs,
checked in closed form and on cases/prosumers.grid."""

from __future__ import annotations

import numpy as np
import pytest

import gridlang
from conftest import CASES
from gridlang.errors import GridError

# Two prosumers and an operator, one hour on a copper plate.  a has a 1 MW
# load; b a 2 MW generator at 20 $/MWh; the operator buys upstream at 50 and
# sells upstream at 10; the tariffs are retail 80, feed-in 30.
# Alone: a buys 1 MWh at 80 (d_a = 80); b sells 2 MWh at 30 from a unit at 20
# (d_b = 40 - 60 = -20); the operator exports the 1 MW balance at 10 and has
# sold 80 and bought 60 (d_0 = -10 - (80 - 60) = -30).
# Together b serves a (1 MWh at 20): c_a = 0, c_b = 20, c_0 = 0, S = 30 - 20 = 10.
# Powers 0.5 / 0.5, the prosumer side's shared equally: w_a = w_b = 0.25,
# w_0 = 0.5, so the gains are 2.5, 2.5 and 5; a pays 80 - 2.5 = 77.5 for
# 1 MWh (price 77.5, theta (77.5 - 30) / 50 = 0.95); b pays -40 - 2.5 =
# -42.5, i.e. is paid 42.5 for 1 MWh (theta (80 - 42.5) / 50 = 0.75).
TWO = """system s {{ base_power = 1 MVA; base_voltage = 10 kV; horizon = 1 h; step = 1 h }}
network n uses copper_plate {{ bus b1 {{ slack }}; bus b2; bus b3; bus b4 }}
grid up at b1 {{ import_price = 50 $/MWh; export_price = 10 $/MWh; import_max = 10 MW }}
load la at b2 {{ p = 1 MW }}
generator gb at b3 {{ pmax = 2 MW; marginal_cost = 20 $/MWh }}
{extra}
agent op owns n, up
agent a owns la
agent b owns gb
{agents}
game g between {prosumers} and op {{ retail = 80 $/MWh; feed_in = 30 $/MWh; {settings} }}
objective minimize cost
"""


def _two(extra: str = "", agents: str = "", prosumers: str = "a, b", settings: str = "payments = nash"):
    r = gridlang.load(TWO.format(extra=extra, agents=agents, prosumers=prosumers, settings=settings)).solve()
    assert not r.doubts() and not r.warnings, (r.doubts(), r.warnings)
    (g,) = r.games
    return r, g


def test_two_prosumers_in_closed_form() -> None:
    r, g = _two()
    np.testing.assert_allclose(g.alone, [80, -20], atol=1e-6)
    assert g.operator_alone == pytest.approx(-30, abs=1e-6)
    np.testing.assert_allclose(g.cost, [0, 20], atol=1e-6)
    assert g.surplus == pytest.approx(10, abs=1e-6)
    np.testing.assert_allclose(g.gain, [2.5, 2.5], atol=1e-6)
    assert g.operator_gain == pytest.approx(5, abs=1e-6)
    np.testing.assert_allclose(g.price[:, 0], [77.5, 42.5], atol=1e-6)
    np.testing.assert_allclose(g.thetas, [0.95, 0.75], atol=1e-9)
    assert g.rational and not g.messages
    np.testing.assert_allclose(r["g-gain"].sel(agent=["a", "b", "op"]).values, [2.5, 2.5, 5], atol=1e-6)
    np.testing.assert_allclose(r["g-share"].sel(agent=["a", "b"]).values, [2.5, 2.5], atol=1e-6)


def test_a_prosumer_that_never_trades_gets_its_bound_and_is_named() -> None:
    """c's unit covers its own load exactly: it never trades, so no price moves
    its bill and its gain is d_c - c_c = 0.  The others bargain over the rest:
    0.5 tau + 2 (0.5 / 3) tau = 10, tau = 12: a and b gain 2, the operator 6."""
    extra = "load lc at b4 { p = 0.5 MW }\ngenerator gc at b4 { pmax = 0.5 MW; marginal_cost = 5 $/MWh }"
    _, g = _two(extra=extra, agents="agent c owns lc, gc", prosumers="a, b, c")
    np.testing.assert_allclose(g.gain, [2, 2, 0], atol=1e-6)
    assert g.operator_gain == pytest.approx(6, abs=1e-6)
    np.testing.assert_allclose(g.share, [10 / 6] * 3, atol=1e-6)
    (message,) = g.messages
    assert "prosumer 'c'" in message and "does not trade" in message and "share 1.667" in message and "gains 0 " in message
    assert g.rational


def test_prosumers_gain_each_and_the_prices_stay_within_the_tariffs() -> None:
    r = gridlang.load(CASES / "prosumers.grid").solve()
    assert not r.doubts() and not r.warnings
    (g,) = r.games
    assert len(g.prosumers) == 22 and g.operator == "dso" and g.surplus > 0
    tol = 1e-9 * g.surplus
    # every agent gains, and the gains add up to the surplus
    assert (g.gain >= -tol).all() and g.operator_gain >= -tol and g.rational
    assert g.gain.sum() + g.operator_gain == pytest.approx(g.surplus, rel=1e-9)
    # nobody is at a bound here: each prosumer gets its equal share of the prosumer side's half
    np.testing.assert_allclose(g.gain, g.surplus / 2 / 22, rtol=1e-6)
    assert g.operator_gain == pytest.approx(g.surplus / 2, rel=1e-6) and not g.messages
    # each prosumer's price stays within [feed-in, retail] at every step
    tou = np.array([45] * 7 + [75] * 10 + [120] * 4 + [75] * 3)
    assert (g.price >= 30 - 1e-9).all() and (g.price <= tou + 60 + 1e-9).all()
    assert ((0 <= g.thetas) & (g.thetas <= 1)).all() and 0 <= g.theta <= 1
    # each prosumer's bill at its prices is what it pays
    bills = (g.price * g.net_import).sum(axis=1)  # 1 h steps, $/MWh x MW
    np.testing.assert_allclose(g.final, g.cost + bills, rtol=1e-9, atol=1e-9)
    # money only moves between the agents: together they pay the stage-1 total
    assert g.final.sum() + g.operator_final == pytest.approx(g.cost.sum() + g.operator_cost, rel=1e-9)
    assert r.objective == pytest.approx(g.cost.sum() + g.operator_cost, rel=1e-9)
    np.testing.assert_allclose(r["local-price"].sel(agent=list(g.prosumers)).values, g.price)
    np.testing.assert_allclose(r["local-gain"].sel(agent=[*g.prosumers, "dso"]).values, np.append(g.gain, g.operator_gain), rtol=1e-12)
    assert r["local-net_import"].dropna("agent", how="all").sizes["agent"] == len(g.prosumers)


# ---------------------------------------------------------------- the price by exchange


def _prosumers(setting: str):
    text = (CASES / "prosumers.grid").read_text().replace("payments = nash\n", f"payments = nash; {setting}\n")
    return gridlang.load(text.replace('include "', f'include "{CASES}/').replace('csv("data', f'csv("{CASES}/data'), allow_outside=True)


@pytest.fixture(scope="module")
def central():
    (g,) = gridlang.load(CASES / "prosumers.grid").solve().games
    return g


def test_the_exchange_reaches_the_central_settlement(central) -> None:
    r = _prosumers("price = exchange").solve()
    assert not r.doubts() and not r.warnings
    (g,) = r.games
    x = g.exchange
    assert x.converged and 1 < x.dispatch_iterations < x.iterations < 2000 and not g.messages
    tol = 1e-4 * central.surplus
    # the same dispatch cost and the same gains, agent by agent
    assert g.cost.sum() + g.operator_cost == pytest.approx(central.cost.sum() + central.operator_cost, abs=tol)
    assert g.surplus == pytest.approx(central.surplus, abs=tol)
    np.testing.assert_allclose(np.append(g.gain, g.operator_gain), np.append(central.gain, central.operator_gain), atol=tol, rtol=0)
    assert (g.gain >= -1e-9).all() and g.rational
    # ... on the central settlement point: the same net imports and interactive prices
    np.testing.assert_allclose(g.net_import, central.net_import, atol=1e-4, rtol=0)  # MW
    np.testing.assert_allclose(g.price, central.price, atol=1e-2, rtol=0)  # $/MWh
    tou = np.array([45] * 7 + [75] * 10 + [120] * 4 + [75] * 3)
    assert (g.price >= 30 - 1e-9).all() and (g.price <= tou + 60 + 1e-9).all()
    # the trace and the residuals are in the results, per iteration
    price = r["local-exchange_price"].sel(agent=list(g.prosumers))
    assert price.sizes == {"exchange_iteration": x.iterations, "agent": 22, "time": 24} and not price.isnull().any()
    assert r["local-exchange_primal"].values[-1] <= 1e-9 * 10  # 1e-9 p.u. at 10 MVA, in MW
    assert x.primal[0] > 100 * x.primal[-1]
    # the prices posted at the end of phase 1 are the value of power at each prosumer's bus (its nodal price)
    nodal = r["ieee33-price_p"].sel(bus=[f"b{p[1:]}" for p in g.prosumers]).values
    np.testing.assert_allclose(x.prices[-1], nodal, atol=1e-3, rtol=0)


def test_only_prices_and_powers_cross() -> None:
    r = _prosumers("price = exchange(max_iter = 5)").solve()
    (g,) = r.games
    x = g.exchange
    assert not x.converged and any("did not reach the dispatch (phase 1) in 5 iterations" in m for m in g.messages)
    assert np.isnan(g.price).all() and any("price" in d for d in r.doubts())  # no price agreed: not a solution (exit 3)
    assert x.iterations == 5 and len(x.log) == 5 * 3 * 22  # phase 1 unfinished: no phase 2; per iteration and prosumer a price and a target down, a power up
    assert {m.kind for m in x.log} == {"price", "power"}
    for m in x.log:
        assert (m.sender == "dso") != (m.receiver == "dso") and {m.sender, m.receiver} <= {"dso", *g.prosumers}
        assert m.kind == "power" or m.sender == "dso"  # the cloud posts prices, the edge answers powers
        assert isinstance(m.values, np.ndarray) and m.values.dtype == float and m.values.shape == (24,)  # one value per step of its bus's balance


def test_two_prosumers_by_exchange_in_closed_form() -> None:
    """The dispatch of the two-prosumer case is unique: the exchange finds the
    prices and gains of the closed form (see TWO)."""
    _, g = _two(settings="payments = nash; price = exchange")
    assert g.exchange.converged
    np.testing.assert_allclose(g.gain, [2.5, 2.5], atol=1e-5)
    assert g.operator_gain == pytest.approx(5, abs=1e-5)
    np.testing.assert_allclose(g.price[:, 0], [77.5, 42.5], atol=1e-5)


@pytest.mark.parametrize(
    "setting, match",
    [
        ("price = exchange(rho = -1)", r"'rho' of exchange is a positive plain number"),
        ("price = exchange(tolerance = 1e-6)", r"unknown exchange setting 'tolerance'"),
        ("price = exchange(max_iter = 2.5)", r"'max_iter' of exchange is a whole number"),
        ("price = bid", r"a game's price is 'nash' or 'exchange'"),
    ],
    ids=["negative-rho", "unknown-setting", "fractional-max-iter", "unknown-price"],
)
def test_bad_exchange_input(setting: str, match: str) -> None:
    text = TWO.format(extra="", agents="", prosumers="a, b", settings=f"payments = nash; {setting}")
    with pytest.raises(GridError, match=match) as info:
        gridlang.load(text)
    line = next(k for k, row in enumerate(text.splitlines(), 1) if row.startswith("game "))
    assert f"<string>:{line}:" in str(info.value) and "^" in str(info.value)


def test_exchange_needs_a_linear_case() -> None:
    """Each agent's optimal face is found for a linear model: a conic network is an error at the setting."""
    text = (CASES / "prosumers.grid").read_text().replace("payments = nash\n", "payments = nash; price = exchange\n")
    text = text.replace('include "', f'include "{CASES}/').replace('csv("data', f'csv("{CASES}/data').replace("{ solver = highs }", "{ solver = clarabel }")
    case = gridlang.load(text, allow_outside=True, formulation="distflow_soc")
    with pytest.raises(GridError, match=r"cannot be found by exchange in a conic case") as info:
        case.solve()
    line = next(k for k, row in enumerate(text.splitlines(), 1) if "price = exchange" in row)
    assert f":{line}:" in str(info.value) and "lindistflow" in str(info.value)
