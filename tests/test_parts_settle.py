"""The settlement of a case in parts (gridlang.parts.settle): each side selects the
settlement point on its own optimal face and sends a few numbers; the market's and the
game's money equal the central settlement's, and only coupling values, prices and
per-side numbers cross."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import CASES
import gridlang
from gridlang.parts.compile import solve_parts
from gridlang.parts.format import read_cloud
from gridlang.parts.settle import REPORTS, settle_parts

PARTS = CASES / "parts"


def _agents(folder: Path) -> list[Path]:
    return [folder / a / f"{a}.grid" for a in read_cloud(folder / "cloud.grid").agents]


@pytest.fixture(scope="module")
def prosumers():
    """The game settled after the serial dispatch, on the sides it compiled (``gridlang cloud --serial``)."""
    folder = PARTS / "prosumers"
    central = gridlang.load(CASES / "prosumers.grid").solve(compare_plans=False)
    run = solve_parts(folder / "cloud.grid", _agents(folder), "atc", settle=True)
    assert run.status == "converged" and not run.unsettled
    return central, run.settlement


@pytest.fixture(scope="module")
def microgrids():
    # under LinDistFlow (an LP: the exact faces), centrally too; the shipped SOC formulation is the slow test below
    folder = PARTS / "three_microgrids"
    central = gridlang.load(CASES / "three_microgrids.grid", formulation="lindistflow").solve(compare_plans=False)
    return central, settle_parts(folder / "cloud.grid", _agents(folder), "lindistflow")


def test_the_games_settlement_from_the_parts_is_the_central_one(prosumers):
    central, parts = prosumers
    c, p = central.games[0], parts.games[0]
    S = c.surplus
    assert S > 0 and parts.converged and not parts.messages
    assert p.surplus == pytest.approx(S, abs=1e-5 * S)
    assert np.abs(p.alone - c.alone).max() <= 1e-6 * S and abs(p.operator_alone - c.operator_alone) <= 1e-6 * S
    assert np.abs(p.gain - c.gain).max() <= 1e-6 * S  # every prosumer's gain
    assert abs(p.operator_gain - c.operator_gain) <= 1e-6 * S
    assert np.abs(p.price - c.price).max() <= 1e-6 * np.abs(c.price).max()  # the interactive prices, $/MWh
    assert (p.gain >= -1e-9 * S).all() and p.operator_gain >= 0


def test_the_markets_settlement_from_the_parts_is_the_central_one(microgrids):
    central, parts = microgrids
    c, p = central.settlements[0], parts.settlements[0]
    S = c.surplus
    assert S > 0 and p.agents == c.agents and parts.converged and not parts.messages
    assert np.abs(p.disagreement - c.disagreement).max() <= 1e-9 * S
    assert p.surplus == pytest.approx(S, abs=1e-6 * S)
    for what in ("cost", "fees_paid", "payment", "gain"):  # every member's, within 1e-6 of the surplus
        assert np.abs(getattr(p, what) - getattr(c, what)).max() <= 1e-6 * S, what
    assert abs(p.budget_balance) <= 1e-9 * S


@pytest.mark.parametrize("which", ["prosumers", "microgrids"])
def test_only_coupling_values_prices_and_per_side_numbers_cross(which, request):
    _, parts = request.getfixturevalue(which)
    central_agents = {m.sender for m in parts.log} | {m.receiver for m in parts.log}
    cloud = {m.receiver for m in parts.log if m.kind in REPORTS}
    assert len(cloud) == 1
    owner = cloud.pop()
    assert {m.kind for m in parts.log if m.sender == owner} == {"price", "power"}  # the cloud's own numbers stay in the cloud
    rows = {}
    for m in parts.log:
        assert m.kind in ("price", "power", *REPORTS)
        assert isinstance(m.values, np.ndarray) and m.values.dtype == float and np.isfinite(m.values).all()
        if m.kind in ("price", "power"):
            agent = m.receiver if m.sender == owner else m.sender
            assert rows.setdefault(agent, m.values.shape) == m.values.shape  # one value per coupling row of that agent
        elif m.kind in ("schedule", "net_import"):
            assert m.values.shape == (24,)  # a power per step
        else:
            assert m.values.shape == (1,)  # one number
    assert central_agents - {owner} == set(rows)
    assert max(np.prod(s) for s in rows.values()) < 24 * 10  # an agent's coupling rows, never a model


@pytest.mark.slow  # about 175 s serially (phase 1 619 iterations, phase 2 2,450): make test-all
def test_the_shipped_soc_markets_settlement_from_the_parts_is_the_central_one():
    """three_microgrids as shipped (distflow_soc): phase 2 on every side's whole model with the
    total-cost row; every member's money within 1e-6 of the surplus of the central settlement,
    the stopping rule met, and the total-cost row's price and power the only extra messages."""
    folder = PARTS / "three_microgrids"
    central = gridlang.load(CASES / "three_microgrids.grid").solve(compare_plans=False)
    parts = settle_parts(folder / "cloud.grid", _agents(folder))
    c, p = central.settlements[0], parts.settlements[0]
    S = c.surplus
    assert S > 0 and p.agents == c.agents and parts.converged and not parts.messages, parts.messages
    assert parts.primal <= 1e-8
    for what in ("cost", "fees_paid", "disagreement", "payment", "gain"):  # every member's, within 1e-6 of the surplus
        assert np.abs(getattr(p, what) - getattr(c, what)).max() <= 1e-6 * S, what
    assert p.surplus == pytest.approx(S, abs=1e-6 * S) and abs(p.budget_balance) <= 1e-9 * S
    owner = next(m.receiver for m in parts.log if m.kind in REPORTS)
    assert {m.kind for m in parts.log if m.sender == owner} == {"price", "power"}
    assert {m.kind for m in parts.log} <= {"price", "power", *REPORTS}
    for agent in set(c.agents) - {owner}:  # phase 2: its coupling rows and the total cost, one value more
        sizes = {m.values.size for m in parts.log if m.kind in ("price", "power") and agent in (m.sender, m.receiver)}
        assert len(sizes) == 2 and max(sizes) == min(sizes) + 1
        assert [m.values.size for m in parts.log if m.kind == "dispatch_cost" and m.sender == agent] == [1]


def test_a_quadratic_side_and_a_fee_collector_are_refused_with_a_reason(tmp_path):
    import shutil

    from gridlang.errors import GridError
    from gridlang.parts.split import split_case

    folder = tmp_path / "three_microgrids"
    shutil.copytree(PARTS / "three_microgrids", folder)
    mine = folder / "mg1" / "mg1.grid"
    mine.write_text(mine.read_text().replace("marginal_cost = 95 $/MWh", "marginal_cost = 95 $/MWh; quadratic_cost = 40 $/MW^2/h"))
    with pytest.raises(GridError) as info:  # its optimal points are not found on its own side
        settle_parts(folder / "cloud.grid", _agents(folder), "lindistflow")
    assert "mg1's model is quadratic" in info.value.message and "settle it centrally" in info.value.hint
    split_case(CASES / "microgrid_market.grid", tmp_path / "mm")
    with pytest.raises(GridError) as info:
        settle_parts(tmp_path / "mm" / "cloud.grid", _agents(tmp_path / "mm"), "lindistflow")
    assert "fee collector" in info.value.message and info.value.span.line > 0


@pytest.mark.slow  # 20 s (every side compiled and its cost alone solved before the opening ends); make test-all
def test_a_conic_agent_on_a_linear_cloud_is_settled_only_when_asked(tmp_path):
    """prosumers in parts with p10's own model conic (an inverter rating) while the cloud's
    stays linear: the cone is heard in the settlement's opening, and by default (``conic=False``,
    what ``gridlang cloud`` passes without --settle) the settlement stops there and says why."""
    import shutil

    from gridlang.errors import GridError

    folder = tmp_path / "prosumers"
    shutil.copytree(PARTS / "prosumers", folder)
    mine = folder / "p10" / "p10.grid"
    mine.write_text(mine.read_text() + "storage es10_inverter at b10 { energy = 10 kWh; power = 5 kW; rating = 6 kVA }\n")
    with pytest.raises(GridError, match="the case is conic, and its settlement from the parts takes minutes") as caught:
        settle_parts(folder / "cloud.grid", _agents(folder), conic=False)
    assert "--settle" in caught.value.hint
