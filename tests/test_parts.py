"""A case in parts (gridlang.parts): every shipped multi-agent case splits into a cloud
file and one file per agent, the parts re-assembled are the same case, each side
compiles its own part without opening the other side's files, mismatches are
positioned errors on the side that finds them, and ADMM/ATC on the separately
compiled sides reach the central objective."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import CASES, opening
import gridlang
from gridlang.case import Case
from gridlang.cli import app
from gridlang.errors import GridError
from gridlang.grammar import ast
from gridlang.grammar.parser import parse
from gridlang.parts import compile as parts_compile
from gridlang.parts.compile import Join, RowKey, compile_agent, compile_cloud, join, solve_parts
from gridlang.parts.format import read_agent, read_cloud, view, whole
from gridlang.parts.split import split_case

MULTI_AGENT = ["three_microgrids", "prosumers", "microgrid_market", "community4", "collaborative_planning", "collaborative_planning_shared"]
runner = CliRunner()


@pytest.fixture(scope="module")
def parts_dir(tmp_path_factory):
    """Each shipped multi-agent case split once, by name."""
    root = tmp_path_factory.mktemp("parts")
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            split_case(CASES / f"{name}.grid", root / name)
            cache[name] = root / name
        return cache[name]

    return get


def _agents(folder: Path) -> list[Path]:
    cloud = read_cloud(folder / "cloud.grid")
    return [folder / a / f"{a}.grid" for a in cloud.agents]


# ------------------------------------------------------------------ the format


def test_grammar_of_the_two_new_agent_statements():
    at, part = parse('agent mg1 at b18, b19\nagent mg1 in "../cloud.grid" { horizon = 24 h; market = energy }\n', "t.grid").statements
    assert isinstance(at, ast.AgentAt) and [b.name for b in at.buses] == ["b18", "b19"] and (at.buses[1].span.line, at.buses[1].span.col) == (1, 19)
    assert isinstance(part, ast.AgentPart) and part.cloud.value == "../cloud.grid" and (part.cloud.span.line, part.cloud.span.col) == (2, 14)
    assert [a.name.name for a in part.attrs] == ["horizon", "market"]
    with pytest.raises(GridError) as info:
        parse("agent mg1 at\n", "t.grid")
    assert info.value.span.line == 1


@pytest.mark.parametrize("name", MULTI_AGENT)
def test_every_multi_agent_case_splits_and_reassembles_to_the_same_objective(name, parts_dir):
    folder = parts_dir(name)
    original = gridlang.load(CASES / f"{name}.grid")
    cloud = read_cloud(folder / "cloud.grid")
    agents = [read_agent(p) for p in _agents(folder)]
    others = [a for a in dict.fromkeys(original.ir.owners.values()) if a != original.ir.network_owner]
    assert list(cloud.agents) == others and [a.name for a in agents] == others
    for a in agents:  # each agent's file names the cloud and holds what it owns, nothing else
        assert a.cloud == cloud.path
        assert {i.name for i in a.items} == {item for item, owner in original.ir.owners.items() if owner == a.name}
    whole = Case(view(cloud, agents))
    assert whole.ir.owners == original.ir.owners and whole.ir.network_owner == original.ir.network_owner
    expected = original.solve(compare_plans=False).objective
    got = whole.solve(compare_plans=False).objective
    assert got == pytest.approx(expected, rel=1e-9)


def test_private_profiles_and_their_csv_files_go_beside_the_agent(parts_dir):
    folder = parts_dir("three_microgrids")
    mg2 = (folder / "mg2" / "mg2.grid").read_text()
    cloud = (folder / "cloud.grid").read_text()
    # 'breeze' and 'commercial' are used by mg2 alone; 'sun' and 'demand' by several parts
    assert re.search(r'^profile breeze = csv\("data/day_profiles.csv"', mg2, re.M) and "profile breeze" not in cloud
    assert "profile sun" in cloud and "profile sun" not in mg2 and "profile demand" in cloud
    assert (folder / "mg2" / "data" / "day_profiles.csv").read_bytes() == (CASES / "data" / "day_profiles.csv").read_bytes()
    assert not (folder / "mg1" / "data").exists()  # mg1 uses shared profiles only
    assert mg2.splitlines()[2] == 'agent mg2 in "../cloud.grid" { horizon = 24 h; step = 1 h; market = energy }'
    assert "agent mg2 at b25" in cloud and "wind mg2_wt" not in cloud


def test_tables_shared_by_agents_are_written_row_by_row(parts_dir):
    folder = parts_dir("prosumers")
    p7 = (folder / "p7" / "p7.grid").read_text()
    assert "pv table (name, at, capacity [kW], availability) {\n  pv7 b7 20 sun\n}" in p7
    assert "pv8" not in p7 and "home7 b7 20 2 demand 20 300" in p7
    assert "pv table" not in (folder / "cloud.grid").read_text()


def test_split_command_writes_refuses_foreign_files_and_single_agent_cases(tmp_path):
    out = tmp_path / "parts"
    r = runner.invoke(app, ["split", str(CASES / "community4.grid"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "cloud.grid" in r.output and (out / "house3" / "house3.grid").is_file()
    again = runner.invoke(app, ["split", str(CASES / "community4.grid"), "-o", str(out)])
    assert again.exit_code == 0, again.output  # its own files are replaced
    mine = out / "house1" / "house1.grid"
    mine.write_text("my notes\n")
    r = runner.invoke(app, ["split", str(CASES / "community4.grid"), "-o", str(out)])
    assert r.exit_code == 1 and "gridlang did not write it" in r.output
    assert mine.read_text() == "my notes\n"  # left as it was
    r = runner.invoke(app, ["split", str(CASES / "ieee33_dispatch.grid"), "-o", str(tmp_path / "x")])
    assert r.exit_code == 1 and "fewer than two agents" in r.output and not (tmp_path / "x").exists()


# ------------------------------------------------------------------ each side compiles its own part




def test_an_agent_compiles_its_file_alone_and_never_opens_another_agents_files(parts_dir):
    folder = parts_dir("three_microgrids").resolve()
    parts_compile._cloud_built.cache_clear()
    side, opened = opening(lambda: compile_agent(folder / "mg2" / "mg2.grid"))
    assert str(folder / "mg2" / "mg2.grid") in opened and str(folder / "cloud.grid") in opened
    assert str(folder / "mg2" / "data" / "day_profiles.csv") in opened  # its own profile
    assert not [p for p in opened if p.startswith((str(folder / "mg1"), str(folder / "mg3")))]
    assert side.agent == "mg2" and side.subproblem.agent == "mg2"
    # its rows are named: the balances at its bus and the market rows its sales enter
    assert RowKey("ieee33-balance_p", (("bus", "b25"), ("time", "7"))) in side.join.rows
    assert RowKey("energy-balance", (("agent", "mg2"), ("time", "7"))) in side.join.rows
    assert {k.constraint for k in side.join.rows} <= {"ieee33-balance_p", "ieee33-balance_q", "energy-balance"}


def test_the_cloud_compiles_alone_and_never_opens_an_agent_file(parts_dir):
    folder = parts_dir("prosumers").resolve()
    parts_compile._cloud_built.cache_clear()
    cloud, opened = opening(lambda: compile_cloud(folder / "cloud.grid"))
    agent_folders = [str(folder / a) for a in read_cloud(folder / "cloud.grid").agents]
    assert str(folder / "cloud.grid") in opened
    assert not [p for p in opened if p.startswith(tuple(agent_folders))]
    assert cloud.owner == "dso" and len(cloud.agents) == 23
    assert RowKey("ieee33-balance_p", (("bus", "b7"), ("time", "0"))) in cloud.allowed["p7"]


def test_the_message_an_agent_sends_at_joining_holds_names_and_numbers_only(parts_dir):
    side = compile_agent(parts_dir("prosumers") / "p7" / "p7.grid")
    message = side.join
    assert isinstance(message, Join) and set(Join.__dataclass_fields__) == {"agent", "steps", "dt", "rows", "constants", "terminals", "costs", "ranges", "free"}
    assert all(isinstance(k, RowKey) for k in message.rows)
    # its scales for the cloud's initial weights: two numbers for its costs, one range and one flag per row it named
    n, median = message.costs
    assert isinstance(n, int) and n > 0 and isinstance(median, float) and median > 0
    assert len(message.ranges) == len(message.free) == len(message.rows)
    assert all(isinstance(v, float) and v >= 0 for v in message.ranges) and all(isinstance(v, bool) for v in message.free)
    # the home's reactive load shifts the reactive balance at b7, where nothing of p7 makes reactive power
    assert {k.constraint for k, _ in message.constants} == {"ieee33-balance_q"} and all(isinstance(v, float) for _, v in message.constants)


# ------------------------------------------------------------------ mismatches


def _copy(parts_dir, name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(parts_dir(name), folder)
    return folder


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _where(path: Path, needle: str, nth: int = 0) -> tuple[int, int]:
    lines = path.read_text().splitlines()
    hits = [(i + 1, line.index(needle) + 1) for i, line in enumerate(lines) if needle in line]
    return hits[nth]


def test_an_agent_at_a_bus_the_cloud_does_not_connect_it_at_is_an_error_in_its_file(parts_dir, tmp_path):
    folder = _copy(parts_dir, "three_microgrids", tmp_path)
    mg1 = folder / "mg1" / "mg1.grid"
    _edit(mg1, "pv mg1_pv at b18", "pv mg1_pv at b19")
    _edit(mg1, "generator mg1_gen at b18", "generator mg1_gen at b99")
    with pytest.raises(GridError, match="'mg1_pv' is at bus b19, where the cloud does not connect 'mg1'") as info:
        compile_agent(mg1)
    errors = list(getattr(info.value, "errors", [info.value]))
    assert [(e.span.file, e.span.line, e.span.col) for e in errors] == [(str(mg1), *_where(mg1, "b19")), (str(mg1), *_where(mg1, "b99"))]
    assert "agent mg1 at b18, b19" in errors[0].hint


@pytest.mark.parametrize(("old", "new", "message", "needle"), [
    ("horizon = 24 h", "horizon = 48 h", "this file's horizon is 48 h but the cloud's is 24 h", "48 h"),
    ("step = 1 h", "step = 30 min", "this file's step is 0.5 h but the cloud's is 1 h", "30 min"),
    ("market = energy", "market = energie", "the cloud file cloud.grid declares no market 'energie'", "energie"),
    ("step = 1 h", "step = 1 h; colour = blue", "'colour' is not something an agent's file states", "colour"),
])
def test_what_an_agent_expects_of_the_cloud_is_checked_on_its_side(parts_dir, tmp_path, old, new, message, needle):
    folder = _copy(parts_dir, "three_microgrids", tmp_path)
    mg3 = folder / "mg3" / "mg3.grid"
    _edit(mg3, old, new)
    with pytest.raises(GridError, match=re.escape(message)) as info:
        compile_agent(mg3)
    assert (info.value.span.file, info.value.span.line, info.value.span.col) == (str(mg3), *_where(mg3, needle))
    assert info.value.hint


def test_an_agent_the_cloud_does_not_connect_and_a_member_of_no_market(parts_dir, tmp_path):
    folder = _copy(parts_dir, "microgrid_market", tmp_path)
    cloud = folder / "cloud.grid"
    _edit(cloud, "market energy among mg1, mg2, mg3", "market energy among mg1, mg2")
    with pytest.raises(GridError, match="'mg3' is not a member of market 'energy'"):
        compile_agent(folder / "mg3" / "mg3.grid")
    _edit(folder / "mg2" / "mg2.grid", "agent mg2 in", "agent mg7 in")
    with pytest.raises(GridError, match="connects no agent 'mg7'") as info:
        compile_agent(folder / "mg2" / "mg2.grid")
    assert info.value.span.line == 3 and info.value.span.col == 7


def test_a_cloud_connecting_an_agent_at_an_unknown_bus_is_an_error_in_the_cloud_file(parts_dir, tmp_path):
    folder = _copy(parts_dir, "three_microgrids", tmp_path)
    cloud = folder / "cloud.grid"
    _edit(cloud, "agent mg2 at b25", "agent mg2 at b250")
    with pytest.raises(GridError, match="b250") as info:
        compile_cloud(cloud)
    assert (info.value.span.file, info.value.span.line, info.value.span.col) == (str(cloud.resolve()), *_where(cloud, "b250"))


def test_joining_checks_each_agent_against_the_cloud_on_the_clouds_side(parts_dir, tmp_path):
    folder = _copy(parts_dir, "three_microgrids", tmp_path)
    cloud_file = folder / "cloud.grid"
    cloud = compile_cloud(cloud_file)
    sides = [compile_agent(p) for p in _agents(folder)]
    # an agent missing
    with pytest.raises(GridError, match="no part joined for agent 'mg3'") as info:
        join(cloud, sides[:2])
    assert (info.value.span.line, info.value.span.col) == _where(cloud_file, "agent mg3 at")
    # an agent compiled against another cloud, where it connects at b19 and the day has 12 steps
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    _edit(other / "cloud.grid", "agent mg1 at b18", "agent mg1 at b19")
    for stmt in ("pv mg1_pv at b18", "storage mg1_es at b18", "load mg1_ld at b18", "generator mg1_gen at b18"):
        _edit(other / "mg1" / "mg1.grid", stmt, stmt.replace("b18", "b19"))
    moved = compile_agent(other / "mg1" / "mg1.grid")
    with pytest.raises(GridError, match=r"agent 'mg1' takes part in \d+ row\(s\) the cloud does not share with it, e\.g\. ieee33-balance_p\[bus=b19") as info:
        join(cloud, [moved, *sides[1:]])
    assert (info.value.span.line, info.value.span.col) == _where(cloud_file, "agent mg1 at")
    short = Join("mg2", 12, 2.0, sides[1].join.rows, ())
    with pytest.raises(GridError, match="joined with 12 steps of 2 h, the cloud has 24 steps of 1 h"):
        join(cloud, [sides[0], type(sides[1])(sides[1].subproblem, short, 0.0), sides[2]])


# ------------------------------------------------------------------ ADMM and ATC on the parts


@pytest.mark.parametrize(("name", "method", "rel"), [
    ("three_microgrids", "atc", 1e-6),
    ("three_microgrids", "admm", 1e-4),
    ("prosumers", "atc", 1e-6),
    ("prosumers", "admm", 1e-4),
])
def test_decomposition_on_separately_compiled_parts_reaches_the_central_objective(parts_dir, name, method, rel):
    folder = parts_dir(name)
    central = gridlang.load(CASES / f"{name}.grid").solve().objective
    result = solve_parts(folder / "cloud.grid", _agents(folder), method)
    assert result.status == "converged"
    assert result.objective == pytest.approx(central, rel=rel)
    assert all(isinstance(k, RowKey) for k in result.rows) and len(result.rows) > 0


@pytest.mark.parametrize("name", ["three_microgrids", "prosumers"])
def test_the_shipped_parts_are_what_gridlang_split_writes(parts_dir, name):
    shipped, fresh = CASES / "parts" / name, parts_dir(name)
    files = sorted(p.relative_to(shipped) for p in shipped.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    assert all((shipped / f).read_bytes() == (fresh / f).read_bytes() for f in files)


def test_cloud_command_runs_every_side_in_one_process_and_the_whole_case_reassembles(parts_dir):
    from gridlang.parts.format import whole

    folder = parts_dir("community4")
    central = gridlang.load(CASES / "community4.grid").solve().objective
    assert Case(whole(folder / "cloud.grid")).solve().objective == pytest.approx(central, rel=1e-9)
    r = runner.invoke(app, ["cloud", str(folder / "cloud.grid"), "--serial", "--method", "atc"])
    assert r.exit_code == 0, r.output
    found = float(re.search(r"objective (\S+),", r.output).group(1))
    # ATC stops on a change of the total cost below 1e-6 of the agents' costs: on this kW-scale
    # case the single-file ATC run is 1.0e-6 off the central optimum too
    assert found == pytest.approx(central, rel=1e-5) and "ATC converged" in r.output
    missing = folder.parent / "community4_missing"
    shutil.copytree(folder, missing)
    shutil.rmtree(missing / "house2")
    r = runner.invoke(app, ["cloud", str(missing / "cloud.grid"), "--serial"])
    assert r.exit_code == 1 and "no file for agent 'house2'" in r.output


@pytest.mark.parametrize("name", ["three_microgrids", "microgrid_market"])
def test_each_side_computes_its_own_disagreement_point_alone(parts_dir, name):
    from gridlang.parts.compile import Alone, alone_cost, cloud_alone_cost

    folder = parts_dir(name).resolve()
    settlement = gridlang.load(CASES / f"{name}.grid").solve().settlements[0]
    expected = dict(zip(settlement.agents, settlement.disagreement, strict=True))
    if settlement.operator:
        expected[settlement.operator] = settlement.operator_alone
    for agent in read_cloud(folder / "cloud.grid").agents:
        parts_compile._cloud_built.cache_clear()
        found, opened = opening(lambda: alone_cost(folder / agent / f"{agent}.grid"))
        assert isinstance(found, Alone) and set(Alone.__dataclass_fields__) == {"agent", "cost"}
        assert found.agent == agent and found.cost == pytest.approx(expected[agent], rel=1e-9)
        assert not [p for p in opened if p.startswith(str(folder)) and not p.startswith(str(folder / agent)) and Path(p).parent != folder and Path(p).parent != folder / "data"]
    owner = cloud_alone_cost(folder / "cloud.grid")
    assert owner.agent == "dso" and owner.cost == pytest.approx(expected["dso"], rel=1e-9)


def _community_with_csv_tables(tmp_path: Path, rows: str) -> Path:
    """community4 with its PV rows read from a CSV file (``rows``), the data folder beside it."""
    text = (CASES / "community4.grid").read_text()
    inline = re.search(r"pv table \(name, at, capacity \[kW\], availability\) \{[^}]*\}", text).group(0)
    kept = "\n".join(line for line in inline.splitlines() if not any(f"pv{i} " in line for i in range(1, 5)) or line.strip().split()[0] not in rows)
    case = tmp_path / "case" / "community.grid"
    shutil.copytree(CASES / "data", tmp_path / "case" / "data")
    case.write_text(text.replace(inline, kept + '\npv table (name, at, capacity [kW], availability) from csv("data/pv.csv")'))
    (tmp_path / "case" / "data" / "pv.csv").write_text("name,at,capacity,availability\n" + rows)
    return case


def test_a_table_read_from_csv_moves_whole_to_its_agent_or_is_an_error_if_shared(tmp_path):
    case = _community_with_csv_tables(tmp_path, "pv2,h2,3.0,sun\n")
    expected = gridlang.load(case).solve().objective
    assert expected == pytest.approx(gridlang.load(CASES / "community4.grid").solve().objective, rel=1e-9)
    out = tmp_path / "parts"
    split_case(case, out)
    house2 = (out / "house2" / "house2.grid").read_text()
    assert 'from csv("data/pv.csv")' in house2 and (out / "house2" / "data" / "pv.csv").read_text().startswith("name,at")
    assert "pv2" not in (out / "cloud.grid").read_text()
    assert Case(whole(out / "cloud.grid")).solve().objective == pytest.approx(expected, rel=1e-9)
    shared = _community_with_csv_tables(tmp_path / "shared", "pv2,h2,3.0,sun\npv3,h3,6.0,sun\n")
    with pytest.raises(GridError, match=r"the rows of this pv table belong to several agents \(house2, house3\)") as info:
        split_case(shared, tmp_path / "parts2")
    assert info.value.span.file == str(shared) and "own table" in info.value.hint
    assert not (tmp_path / "parts2").exists()


def _terminals(path: Path, column: str, cells: list[str]) -> Path:
    path.write_text("hour," + column + "\n" + "".join(f"{h},{c}\n" for h, c in enumerate(cells)))
    return path


def test_terminal_measurements_are_checked_on_the_edge_and_only_counts_cross(parts_dir, tmp_path):
    folder = parts_dir("three_microgrids").resolve()
    import pandas as pd

    pv = pd.read_csv(CASES / "data" / "day_profiles.csv")["pv"].tolist()
    cells = [f"{0.9 * v:.4f}" for v in pv]
    cells[3], cells[12] = "", "5.0"  # lost on the way, and a value no PV gives
    measured = _terminals(tmp_path / "mg1_terminals.csv", "mg1_pv.availability", cells)
    side, opened = opening(lambda: compile_agent(folder / "mg1" / "mg1.grid", measurements=measured))
    assert str(measured.resolve()) in opened
    assert side.join.terminals == (("mg1_pv.availability", 1, 1),)
    # the same case solved in one file with the same measurements
    central = gridlang.load(CASES / "three_microgrids.grid", measurements=measured).solve().objective
    result = solve_parts(folder / "cloud.grid", _agents(folder), "atc", measurements={"mg1": measured})
    assert result.status == "converged" and result.objective == pytest.approx(central, rel=1e-6)
    assert result.terminals == ("edge of 'mg1': 1 terminal(s) measured, filled mg1_pv.availability: 1 missing, 1 implausible",)
    # an edge measures its own assets only: the operator's load is not mg1's
    other = _terminals(tmp_path / "other.csv", "ld18.scale", ["1.0"] * 24)
    with pytest.raises(GridError, match="'ld18' is not an asset of 'mg1': a side measures its own terminals only") as info:
        compile_agent(folder / "mg1" / "mg1.grid", measurements=other)
    assert (info.value.span.file, info.value.span.line, info.value.span.col) == (str(other), 1, 6)
    # and the cloud never opens an agent's measurements: it receives the counts only
    parts_compile._cloud_built.cache_clear()
    _, opened = opening(lambda: compile_cloud(folder / "cloud.grid"))
    assert str(measured.resolve()) not in opened


def test_an_agent_connected_at_two_buses(tmp_path):
    """mg1's generator moved to b19: the cloud connects mg1 at b18 and b19, a stand-in at
    each; the parts re-assemble to the same case and ADMM on them reaches its optimum."""
    case = tmp_path / "case" / "case.grid"
    shutil.copytree(CASES / "data", tmp_path / "case" / "data")
    for f in ("ieee33_network.grid", "ieee33_loads.grid"):
        shutil.copy(CASES / f, tmp_path / "case" / f)
    case.write_text((CASES / "three_microgrids.grid").read_text().replace("generator mg1_gen at b18", "generator mg1_gen at b19"))
    split_case(case, tmp_path / "parts")
    cloud = tmp_path / "parts" / "cloud.grid"
    assert "agent mg1 at b18, b19" in cloud.read_text()
    lin = "lindistflow"  # the study's SOC would do as well, slower
    central = gridlang.load(case, formulation=lin).solve().objective
    assert Case(whole(cloud, lin)).solve().objective == pytest.approx(central, rel=1e-9)
    side = compile_agent(tmp_path / "parts" / "mg1" / "mg1.grid", lin)
    assert {dict(k.coords).get("bus") for k in side.join.rows if k.constraint.startswith("ieee33-")} == {"b18", "b19"}
    result = solve_parts(cloud, _agents(tmp_path / "parts"), "admm", lin)
    assert result.status == "converged" and result.objective == pytest.approx(central, rel=1e-4)


def test_a_cloud_that_dies_leaves_its_last_consistent_iterate(parts_dir, tmp_path):
    import json

    folder = parts_dir("community4")
    saved = tmp_path / "checkpoint.json"

    def dies(step) -> None:
        if step.iteration == 5:
            raise KeyboardInterrupt  # the cloud's process stops here

    with pytest.raises(KeyboardInterrupt):
        solve_parts(folder / "cloud.grid", _agents(folder), "admm", checkpoint=saved, progress=dies)
    state = json.loads(saved.read_text())
    assert state["status"] == "running" and state["pass"] == 5
    assert set(state["agents"]) == {"dso", "house1", "house2", "house3", "house4"}
    h1 = state["agents"]["house1"]
    assert len(h1["rows"]) == len(h1["target"]) == len(h1["answer"]) > 0 and h1["rows"][0].startswith("feeder-balance_p[bus=h1, time=")
    done = solve_parts(folder / "cloud.grid", _agents(folder), "admm", checkpoint=saved)  # its own file is replaced
    assert json.loads(saved.read_text())["status"] == "converged" == done.status
    saved.write_text("my notes\n")
    with pytest.raises(GridError, match="gridlang did not write it"):
        solve_parts(folder / "cloud.grid", _agents(folder), "admm", checkpoint=saved)


def test_gridlang_solve_on_a_cloud_file_solves_the_whole_case_and_an_agent_file_is_refused():
    """`gridlang.load` of a cloud file re-assembles its parts (the agents' files
    beside it) into the case they were split from; an agent's own file is not a
    case: an error at its first statement naming the cloud file to solve."""
    parts = CASES / "parts" / "three_microgrids"
    whole_case = gridlang.load(parts / "cloud.grid").solve()
    single = gridlang.load(CASES / "three_microgrids.grid").solve()
    assert whole_case.objective == pytest.approx(single.objective, rel=1e-6)
    r = runner.invoke(app, ["check", str(parts / "mg1" / "mg1.grid")])
    assert r.exit_code == 1
    assert "mg1.grid:3:1: error: this is agent 'mg1''s own part of a case" in r.output
    assert "gridlang solve " + str(parts / "cloud.grid") in r.output


def _quadratic_cloud(parts_dir, tmp_path):
    """three_microgrids in parts with the network owner's own model quadratic (a generator of its own with a quadratic cost)."""
    folder = _copy(parts_dir, "three_microgrids", tmp_path)
    _edit(folder / "cloud.grid", "agent dso owns ieee33, substation", "generator dso_gen at b1 { pmax = 500 kW; marginal_cost = 80 $/MWh; quadratic_cost = 40 $/MW^2/h }\nagent dso owns ieee33, substation, dso_gen")
    return folder


def test_cloud_command_refuses_to_settle_a_quadratic_case_and_says_why_it_did_not(parts_dir, tmp_path):
    """three_microgrids (its shipped SOC formulation) with a quadratic cost in the cloud's own
    model: `--settle` is refused before any dispatch (exit 1, the reason and the fix); by
    default the dispatch runs and a note says why there is no settlement from the parts --
    never a number that is not the settlement."""
    folder = _quadratic_cloud(parts_dir, tmp_path)
    r = runner.invoke(app, ["cloud", str(folder / "cloud.grid"), "--serial", "--settle"])
    assert r.exit_code == 1, r.output
    assert "needs linear costs" in r.output and "the cloud's model is quadratic" in r.output and "settle it centrally" in r.output and "ATC" not in r.output
    r = runner.invoke(app, ["cloud", str(folder / "cloud.grid"), "--serial"])
    assert r.exit_code == 0, r.output
    assert "ATC converged" in r.output and "note: no settlement from the parts: the settlement from the parts needs linear costs" in r.output
    assert "surplus" not in r.output
    r = runner.invoke(app, ["cloud", str(parts_dir("community4") / "cloud.grid"), "--serial", "--settle"])
    assert r.exit_code == 1 and "no market and no game" in r.output
    taken = tmp_path / "mine.json"
    taken.write_text("{}")
    r = runner.invoke(app, ["cloud", str(folder / "cloud.grid"), "--serial", "--no-settle", "--settlement", str(taken)])
    assert r.exit_code == 1 and "gridlang did not write it" in r.output and taken.read_text() == "{}"


def _quadratic_prosumer(parts_dir, tmp_path):
    """prosumers in parts with p10's own model quadratic (a generator with a quadratic cost); the cloud's stays linear."""
    folder = _copy(parts_dir, "prosumers", tmp_path)
    mine = folder / "p10" / "p10.grid"
    mine.write_text(mine.read_text() + "generator g10 at b10 { pmax = 5 kW; marginal_cost = 80 $/MWh; quadratic_cost = 40 $/MW^2/h }\n")
    return folder


def test_cloud_command_refuses_to_settle_a_quadratic_edge_before_the_dispatch(parts_dir, tmp_path):
    """--settle with an agent whose own model has a quadratic cost: exit 1 at once, naming the agent and the reason."""
    folder = _quadratic_prosumer(parts_dir, tmp_path)
    r = runner.invoke(app, ["cloud", str(folder / "cloud.grid"), "--serial", "--settle"])
    assert r.exit_code == 1 and "p10's model is quadratic" in r.output and "settle it centrally" in r.output
    assert "ATC" not in r.output  # refused before the dispatch


@pytest.mark.slow  # 30 s (a whole dispatch with a quadratic agent); make test-all
def test_cloud_command_says_why_an_edge_cannot_settle_and_refuses_when_asked(parts_dir, tmp_path):
    """A prosumer whose own model has a quadratic cost while the cloud's is linear: the
    refusal comes from that agent's side; by default the dispatch is reported with a note
    naming the agent and the reason; with --settle it is an error."""
    folder = _quadratic_prosumer(parts_dir, tmp_path)
    r = runner.invoke(app, ["cloud", str(folder / "cloud.grid"), "--serial"])
    assert r.exit_code == 0, r.output
    assert "ATC converged" in r.output and "note: no settlement from the parts: the settlement from the parts needs linear costs and continuous variables: p10's model is quadratic" in r.output
    assert "surplus" not in r.output
    r = runner.invoke(app, ["cloud", str(folder / "cloud.grid"), "--serial", "--settle"])
    assert r.exit_code == 1 and "p10's model is quadratic" in r.output and "settle it centrally" in r.output


def test_a_conic_case_is_settled_from_the_parts_only_when_asked(parts_dir):
    """By default `gridlang cloud` leaves a conic case's settlement out (minutes of
    iterations) and says how to have it; a linear one is settled, and --settle asks."""
    from gridlang.parts.settle import settling

    cloud = parts_dir("three_microgrids") / "cloud.grid"
    settle, why = settling(cloud, None, None)
    assert settle is False and "conic" in why and "--settle" in why and "lindistflow" in why
    assert settling(cloud, "lindistflow", None) == (None, "")
    assert settling(cloud, None, True) == (True, "")
    assert settling(cloud, None, False) == (False, "")
