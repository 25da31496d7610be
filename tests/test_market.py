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


# ---------------------------------------------------------------- the network owner as fee collector

# The operator 'op' owns the copper plate and a grid connection (imports at
# 30 $/MWh, exports at 10) and is not a member.  a: a 10 $/MWh unit (1 MW) and
# 0.5 MW of load; b: a 50 $/MWh unit and 1 MW of load.  Together a runs flat
# out and sells 0.5 MW to b; b's other 0.5 MW comes from the grid at 30 $/MWh
# (< 50) plus the 2 $/MWh fee.  Alone: a 5, b 50, op 0 (nothing of its own).
COLLECTOR = """system s { base_power = 1 MVA; base_voltage = 10 kV; horizon = 1 h; step = 1 h }
network n uses copper_plate { bus b1 { slack }; bus b2; bus b3 }
grid g at b1 { import_price = 30 $/MWh; export_price = 10 $/MWh }
generator cheap at b2 { pmax = 1 MW; marginal_cost = 10 $/MWh }
load la at b2 { p = 0.5 MW }
generator dear at b3 { pmax = 2 MW; marginal_cost = 50 $/MWh }
load lb at b3 { p = 1 MW }
EXTRA
agent op owns n, g
agent a owns cheap, la
agent b owns dear, lb
AGENTS
market m among MEMBERS { fee = 2 $/MWh; payments = PAYMENTS }
objective minimize cost
"""


def collector(payments: str = "nash", extra: str = "", agents: str = "", members: str = "a, b", **solve):
    text = COLLECTOR.replace("EXTRA", extra).replace("AGENTS", agents).replace("MEMBERS", members).replace("PAYMENTS", payments)
    r = gridlang.load(text).solve(**solve)
    assert not r.doubts() and not r.warnings, (r.doubts(), r.warnings)
    (s,) = r.settlements
    return r, s


def test_the_network_owner_collects_fees_and_sells_at_its_tariff() -> None:
    """a's cost 10 + fee 2 * 0.5 = 11; b's: the tariff 30 * 0.5 + the fee 2 * 0.5 = 16;
    surplus 5 + 50 - 27 = 28, 14 each; op receives 15 + 2 and pays 15 upstream: gain 2."""
    r, s = collector()
    assert s.operator == "op" and s.agents == ("a", "b")
    np.testing.assert_allclose(s.cost, [11, 16], atol=1e-6)
    np.testing.assert_allclose(s.fees_paid, [1, 1], atol=1e-6)
    np.testing.assert_allclose(s.tariff_paid, [0, 15], atol=1e-6)
    np.testing.assert_allclose(s.disagreement, [5, 50], atol=1e-6)
    assert s.surplus == pytest.approx(28, abs=1e-6)
    np.testing.assert_allclose(s.gain, [14, 14], atol=1e-6)
    np.testing.assert_allclose(s.payment, [-20, 20], atol=1e-6)
    assert s.fees_collected == pytest.approx(2, abs=1e-6)
    assert s.operator_alone == pytest.approx(0, abs=1e-6) and s.operator_cost == pytest.approx(-2, abs=1e-6) and s.operator_gain == pytest.approx(2, abs=1e-6)
    assert abs(s.budget_balance) < 1e-6 and abs(s.money_balance) < 1e-6
    sale = r["m-sale"].isel(time=0)
    assert float(sale.sel(seller="a", buyer="b")) == pytest.approx(0.5, abs=1e-6)
    assert float(sale.sel(seller="op", buyer="b")) == pytest.approx(0.5, abs=1e-6)
    assert float(r["m-operator_gain"]) == pytest.approx(2, abs=1e-6)
    np.testing.assert_allclose(r["m-tariff_paid"].values, [0, 15], atol=1e-6)
    # pairwise: the least-squares choice (pi_i - pi_j) / n -- b pays a 20
    np.testing.assert_allclose(r["m-pairwise"].sel(payer="b", payee="a"), 20, atol=1e-6)
    np.testing.assert_allclose(r["m-pairwise"].sel(payer="a", payee="b"), 0, atol=1e-12)


def test_a_member_sells_to_the_grid_at_the_export_tariff_less_the_fee() -> None:
    """Without b's load, a's spare 0.5 MW goes upstream: it receives 10 - 2 $/MWh."""
    text = COLLECTOR.replace("EXTRA", "").replace("AGENTS", "").replace("MEMBERS", "a, b").replace("PAYMENTS", "nash").replace("load lb at b3 { p = 1 MW }", "load lb at b3 { p = 0 MW }").replace("marginal_cost = 10 $/MWh", "marginal_cost = 5 $/MWh")
    (s,) = gridlang.load(text).solve().settlements
    np.testing.assert_allclose(s.tariff_paid, [-5, 0], atol=1e-6)  # 0.5 MWh at 10 $/MWh received
    np.testing.assert_allclose(s.fees_paid, [1, 0], atol=1e-6)
    np.testing.assert_allclose(s.cost, [5 + 1 - 5, 0], atol=1e-6)
    assert abs(s.money_balance) < 1e-6


def test_gnbs_powers_by_contribution_in_closed_form() -> None:
    """c (5 $/MWh, 1 MW, 0.2 MW load) sells 0.8 MWh to b, a sells 0.5: powers 5/13, 0, 8/13.
    b buys the last 0.2 MW upstream.  Costs: a 10 + 1 = 11, b 0.2*30 + 0.4 = 6.4, c 5 + 1.6 = 6.6;
    alone a 5, b 1.5*50 = 75, c 1; surplus 81 - 24 = 57."""
    extra = "generator cheapest at b1 { pmax = 1 MW; marginal_cost = 5 $/MWh }\nload lc at b1 { p = 0.2 MW }"
    text_members = "a, b, c"
    # closed form with b's load raised to 1.5 MW
    text = COLLECTOR.replace("EXTRA", extra).replace("AGENTS", "agent c owns cheapest, lc").replace("MEMBERS", text_members).replace("PAYMENTS", "nash(power = contribution)").replace("load lb at b3 { p = 1 MW }", "load lb at b3 { p = 1.5 MW }")
    (s,) = gridlang.load(text).solve().settlements
    np.testing.assert_allclose(s.contribution, [0.5, 0, 0.8], atol=1e-6)
    np.testing.assert_allclose(s.powers, [5 / 13, 0, 8 / 13], atol=1e-9)
    np.testing.assert_allclose(s.cost, [11, 6.4, 6.6], atol=1e-6)
    np.testing.assert_allclose(s.disagreement, [5, 75, 1], atol=1e-6)
    assert s.surplus == pytest.approx(57, abs=1e-6)
    np.testing.assert_allclose(s.gain, [57 * 5 / 13, 0, 57 * 8 / 13], atol=1e-6)


def test_cf_admm_payments_from_the_language_match_the_closed_form() -> None:
    _, closed = collector(payments="nash(power = [3, 1])")
    _, admm = collector(payments="nash(power = [3, 1], method = cf_admm)")
    assert admm.method == "cf_admm" and admm.iterations > 1 and closed.method == "closed_form"
    np.testing.assert_allclose(admm.payment, closed.payment, atol=1e-6 * max(1, closed.surplus), rtol=0)
    np.testing.assert_allclose(admm.pairwise, closed.pairwise, atol=1e-6 * max(1, closed.surplus), rtol=0)
    assert not admm.messages


@pytest.fixture(scope="module")
def microgrid_market():
    r = gridlang.load(CASES / "microgrid_market.grid").solve()
    assert not r.doubts() and not r.warnings, (r.doubts(), r.warnings)
    return r


def test_microgrid_market_case_operator_as_fee_collector(microgrid_market) -> None:
    r = microgrid_market
    (s,) = r.settlements
    assert s.agents == ("mg1", "mg2", "mg3") and s.operator == "dso" and s.method == "cf_admm"
    assert s.surplus > 0 and s.rational
    assert s.fees_collected > 0 and s.fees_collected == pytest.approx(s.fees_paid.sum(), abs=1e-9)
    assert abs(s.budget_balance) < 1e-6 and abs(s.money_balance) < 1e-6
    np.testing.assert_allclose(s.payment, nash_payments(s.cost, s.disagreement, s.powers)[2], atol=1e-6 * s.surplus, rtol=0)
    assert np.isfinite([s.operator_cost, s.operator_alone, s.operator_gain]).all()
    for what in ("operator_cost", "operator_alone", "operator_gain", "tariff_paid", "pairwise", "fees_collected"):
        assert f"energy-{what}" in r.dataset
    # at the settlement point, the microgrids trade with each other and both ways with the grid
    sale = r["energy-sale"].fillna(0)
    mgs = list(s.agents)
    assert float(sale.sel(seller=mgs, buyer=mgs).sum()) > 0.1
    assert float(sale.sel(seller=mgs, buyer="dso").sum()) > 0.1  # sold upstream
    assert float(sale.sel(seller="dso", buyer=mgs).sum()) > 0.1  # bought upstream
    pw = r["energy-pairwise"].values
    np.testing.assert_allclose(pw.sum(axis=1) - pw.sum(axis=0), s.payment, atol=1e-9)


@pytest.mark.parametrize(
    "payments, match",
    [("nash(method = newton)", r"'closed_form' or 'cf_admm'"), ("nash(power = everyone)", r"a list or 'contribution'"), ("nash(powr = [1, 1])", r"unknown setting 'powr'")],
    ids=["method", "power", "setting"],
)
def test_bad_payments(payments: str, match: str) -> None:
    with pytest.raises(GridError, match=match) as info:
        gridlang.load(COLLECTOR.replace("EXTRA", "").replace("AGENTS", "").replace("MEMBERS", "a, b").replace("PAYMENTS", payments))
    assert "^" in str(info.value)


def test_members_sharing_a_bus_are_alone_apart():
    """Two members at the same bus, alone in one model (as a game's prosumers
    are): each island holds its own assets only (its buses are its own), so
    their costs alone are 5 and 50, as when they sit at different buses."""
    from gridlang.compiler.build import build
    from gridlang.settle import agent_costs, alone, solve

    text = TWO.format(extra="", agents="", members="a, b", fee=0, payments="").replace(" at b2 {", " at b1 {")
    case = gridlang.load(text)
    island = build(alone(case.ir, "a", "b"))
    assert not solve(island).doubts()
    assert agent_costs(island, ("a", "b")) == pytest.approx([5.0, 50.0])
