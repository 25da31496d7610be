"""Markets: trades, fees, disagreement points and Nash-bargaining payments,
checked against numbers known in closed form, and bad market input."""

from __future__ import annotations

import numpy as np
import pytest

import gridlang
from conftest import CASES
from gridlang.errors import GridError
from gridlang.settle import nash_payments

# A seller with a cheap generator and a buyer with an expensive one, one hour
# on a copper plate.  Alone: the seller pays 10 $/MWh * 0.5 MWh = 5, the buyer
# 50 $/MWh * 1 MWh = 50.  Together the cheap unit runs flat out (1 MW) and the
# buyer's unit covers the rest (0.5 MW): 10 + 25 plus the fee on 0.5 MWh sold.
TWO = """system s {{ base_power = 1 MVA; base_voltage = 10 kV; horizon = 1 h; step = 1 h }}
network n uses copper_plate {{ bus b1 {{ slack }}; bus b2; bus b3 }}
generator cheap at b1 {{ pmax = 1 MW; marginal_cost = 10 $/MWh }}
load la at b1 {{ p = 0.5 MW }}
generator dear at b2 {{ pmax = 2 MW; marginal_cost = 50 $/MWh }}
load lb at b2 {{ p = 1 MW }}
{extra}
agent a owns cheap, la
agent b owns dear, lb
{agents}
market m among {members} {{ fee = {fee} $/MWh{payments} }}
objective minimize cost
"""


def solve(fee: float = 2, payments: str = "", extra: str = "", agents: str = "", members: str = "a, b"):
    text = TWO.format(fee=fee, payments=payments, extra=extra, agents=agents, members=members)
    r = gridlang.load(text).solve()
    assert r.optimal
    (s,) = r.settlements
    return r, s


def test_two_agents_symmetric_nash_in_closed_form() -> None:
    r, s = solve(fee=2)
    assert s.agents == ("a", "b")
    np.testing.assert_allclose(s.disagreement, [5, 50], atol=1e-6)
    np.testing.assert_allclose(s.fees_paid, [1, 0], atol=1e-6)  # the seller pays 2 $/MWh on 0.5 MWh
    np.testing.assert_allclose(s.cost, [11, 25], atol=1e-6)
    assert s.surplus == pytest.approx(55 - 36, abs=1e-6)
    np.testing.assert_allclose(s.gain, [9.5, 9.5], atol=1e-6)  # symmetric: equal gains
    np.testing.assert_allclose(s.payment, [-15.5, 15.5], atol=1e-6)  # the buyer pays the seller
    assert abs(s.budget_balance) < 1e-6 and s.rational
    assert s.fees_collected == pytest.approx(1.0, abs=1e-6)
    sale = r["m-sale"].isel(time=0)
    assert float(sale.sel(seller="a", buyer="b")) == pytest.approx(0.5, abs=1e-6)
    assert float(sale.sel(seller="b", buyer="a")) == pytest.approx(0.0, abs=1e-6)


def test_generalized_nash_gains_proportional_to_powers() -> None:
    _, s = solve(fee=2, payments="; payments = nash(power = [3, 1])")
    np.testing.assert_allclose(s.powers, [0.75, 0.25])
    np.testing.assert_allclose(s.gain, [0.75 * 19, 0.25 * 19], atol=1e-6)  # gain_i = alpha_i * surplus
    np.testing.assert_allclose(s.gain / s.surplus, s.powers, atol=1e-9)
    assert abs(s.budget_balance) < 1e-6 and s.rational


def test_identical_agents_gain_equally() -> None:
    extra = "generator dear2 at b3 { pmax = 2 MW; marginal_cost = 50 $/MWh }\nload lc at b3 { p = 1 MW }"
    _, s = solve(fee=2, extra=extra, agents="agent c owns dear2, lc", members="a, b, c")
    np.testing.assert_allclose(s.disagreement[1], s.disagreement[2], atol=1e-6)
    np.testing.assert_allclose(s.gain, np.full(3, s.surplus / 3), atol=1e-6)
    assert s.gain[1] == pytest.approx(s.gain[2], abs=1e-6) and s.surplus > 0
    assert abs(s.budget_balance) < 1e-6 and s.rational


def test_no_trade_when_the_fee_exceeds_every_price_spread() -> None:
    r, s = solve(fee=41)  # the spread is 50 - 10 = 40 $/MWh
    assert float(r["m-sale"].sum()) == pytest.approx(0, abs=1e-9)
    assert s.surplus == pytest.approx(0, abs=1e-6)
    np.testing.assert_allclose(s.gain, 0, atol=1e-6)
    np.testing.assert_allclose(s.payment, 0, atol=1e-6)


def test_nash_payments_formula() -> None:
    surplus, gain, pay = nash_payments(np.array([11.0, 25.0]), np.array([5.0, 50.0]), np.array([0.5, 0.5]))
    assert surplus == 19 and list(gain) == [9.5, 9.5] and list(pay) == [-15.5, 15.5]


ALONE_CASES = {
    # without its generator (pmax 0) the buyer's island cannot serve its fixed load
    "generator-off": lambda t: t.replace("generator dear at b2 { pmax = 2 MW", "generator dear at b2 { pmax = 0 MW").replace("generator cheap at b1 { pmax = 1 MW", "generator cheap at b1 { pmax = 2 MW"),
    # the buyer owns nothing but its fixed load (its island has no free variable at all)
    "load-only": lambda t: t.replace("agent a owns cheap, la\nagent b owns dear, lb", "agent a owns cheap, la, dear\nagent b owns lb"),
}


@pytest.mark.parametrize("solver", ["highs", "clarabel"])
@pytest.mark.parametrize("variant", sorted(ALONE_CASES))
def test_a_member_that_cannot_operate_alone_is_an_error_at_the_market(solver: str, variant: str) -> None:
    text = ALONE_CASES[variant](TWO.format(fee=2, payments="", extra="", agents="", members="a, b"))
    with pytest.raises(GridError) as info:
        gridlang.load(text).solve(solver)
    e = info.value
    line = next(i for i, s in enumerate(text.splitlines(), 1) if s.startswith("market m"))
    assert (e.span.file, e.span.line, e.span.col) == ("<string>", line, 1)
    assert "member 'b' of market 'm' cannot operate alone" in e.message and "island of its own assets" in e.message
    if variant == "generator-off":  # HiGHS's conflict: the island's balance
        assert "b_island" in e.message
    assert "curtailable load" in e.hint and "leave it out of the market" in e.hint
    assert "^" in str(e)


def test_three_microgrids_case() -> None:
    r = gridlang.load(CASES / "three_microgrids.grid").solve()
    (s,) = r.settlements
    assert s.agents == ("dso", "mg1", "mg2", "mg3")
    assert s.cost.sum() < s.disagreement.sum()  # the social-welfare total beats going alone
    assert s.surplus > 0 and s.rational and abs(s.budget_balance) < 1e-6
    np.testing.assert_allclose(s.gain, s.surplus / 4, rtol=1e-9)
    assert s.fees_collected > 0
    assert r.objective == pytest.approx(s.cost.sum(), rel=1e-7)  # stage 1 is the members' total cost
    sales = r["energy-sale"]
    assert float(sales.sum()) > 0


@pytest.mark.parametrize(
    "text, match",
    [
        (TWO.format(fee=2, payments="; payments = nash(power = [1, 2, 3])", extra="", agents="", members="a, b"), r"3 bargaining powers for 2 agents"),
        (TWO.format(fee=2, payments="; payments = nash(power = [1, -1])", extra="", agents="", members="a, b"), r"non-negative"),
        (TWO.format(fee=2, payments="", extra="", agents="", members="a"), r"single agent"),
        (TWO.format(fee=2, payments="", extra="", agents="agent c", members="a, b"), r"'c' owns nothing"),
        (TWO.format(fee=2, payments="", extra="", agents="agent c owns cheap", members="a, b"), r"owned twice"),
        (TWO.format(fee=2, payments="", extra="", agents="", members="a, z"), r"'z' is not an agent"),
        (TWO.format(fee=-1, payments="", extra="", agents="", members="a, b"), r"cannot be negative"),
        (TWO.format(fee=2, payments="; fee_per_ohm = 1 $/MWh/ohm", extra="", agents="", members="a, b"), r"needs a network with line impedances"),
    ],
    ids=["powers-count", "powers-negative", "single-agent", "agent-with-nothing", "owned-twice", "unknown-member", "negative-fee", "fee-per-ohm-without-impedances"],
)
def test_bad_market_input(text: str, match: str) -> None:
    with pytest.raises(GridError, match=match) as info:
        gridlang.load(text)
    rendered = str(info.value)
    assert "<string>:" in rendered and "^" in rendered


# ---------------------------------------------------------------- prosumer-operator game


@pytest.mark.parametrize(
    "attrs, match",
    [
        ("feed_in = 30 $/MWh; payments = nash", r"needs 'retail'"),
        ("retail = 20 $/MWh; feed_in = 30 $/MWh", r"feed-in tariff is above the retail tariff"),
        ("retail = 90 $/MWh; feed_in = 30 $/MWh; payments = nash(power = [1, 1, 1])", r"3 bargaining powers for 2 agents"),
        ("retail = 90 kW; feed_in = 30 $/MWh", r"unit mismatch"),
    ],
    ids=["no-retail", "feed-in-above-retail", "three-powers", "retail-not-a-price"],
)
def test_bad_game_input(attrs: str, match: str) -> None:
    text = TWO.format(fee=2, payments="", extra="", agents="", members="a, b").replace("market m among a, b { fee = 2 $/MWh }", f"game g between a and b {{ {attrs} }}")
    with pytest.raises(GridError, match=match):
        gridlang.load(text)


def test_every_agent_has_its_cost_and_unowned_items_are_noted() -> None:
    case = gridlang.load(CASES / "three_microgrids.grid")
    assert any("belong to the network owner 'dso'" in n for n in case.ir.notes)
    assert case.ir.owners["ld2"] == "dso" and case.ir.owners["mg1_pv"] == "mg1"
    r = case.solve()
    costs = r["agent_cost"]
    assert list(costs.coords["agent"].values) == ["dso", "mg1", "mg2", "mg3"]
    (s,) = r.settlements
    np.testing.assert_allclose(costs.values + s.fees_paid, s.cost, atol=1e-6)


def test_fee_by_electrical_distance() -> None:
    """fee_ij = fee + fee_per_ohm * |z| of the path between the two points of connection."""
    text = (CASES / "three_microgrids.grid").read_text().replace("{ fee = 4 $/MWh;", "{ fee = 1 $/MWh; fee_per_ohm = 0.5 $/MWh/ohm;")
    case = gridlang.load(text.replace('include "', f'include "{CASES}/').replace('csv("data', f'csv("{CASES}/data'), allow_outside=True)
    (mk,) = case.ir.markets
    per_mwh = case.ir.system.base.factor("$/MWh")[0]
    net = case.ir.networks[0]
    zbase = 12.66e3**2 / 10e6  # ohm per p.u.
    lines = {name: k for k, name in enumerate(net.lines)}
    z18 = sum(np.hypot(net.params["r"][lines[f"l{k}"], 0], net.params["x"][lines[f"l{k}"], 0]) for k in range(1, 18)) * zbase  # b1 .. b18
    i, j = mk.members.index("dso"), mk.members.index("mg1")
    assert mk.fee[i, j] / per_mwh == pytest.approx(1 + 0.5 * z18, rel=1e-9)
    assert mk.fee[i, j] == mk.fee[j, i] and mk.fee[i, i] == 1 * per_mwh
