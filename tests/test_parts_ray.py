"""Edge and cloud on a local multi-node Ray cluster (gridlang.parts.edge): each agent's
actor is placed on the node carrying its resource and compiles its own file there; the
cloud's process never opens an agent file, receives only named rows and numbers, and
reaches the central objective by ATC."""

from __future__ import annotations


import pytest
from typer.testing import CliRunner

from conftest import CASES, opening
import gridlang
from gridlang.cli import app
from gridlang.parts import compile as parts_compile
from gridlang.parts.compile import RowKey, solve_parts
from gridlang.parts.split import split_case

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # one local cluster at a time (pytest -n: the same worker)
runner = CliRunner()




@pytest.mark.parametrize(("name", "nodes"), [("three_microgrids", None), ("prosumers", 3)])
def test_a_case_in_parts_on_a_local_cluster_of_edge_nodes(tmp_path, name, nodes):
    from gridlang.parts.edge import NAMESPACE, edges, hosting, local_cluster, resource, run_cloud
    from gridlang.parts.format import read_cloud

    folder = tmp_path / "parts"
    split_case(CASES / f"{name}.grid", folder)
    agents = list(read_cloud(folder / "cloud.grid").agents)
    groups = hosting(agents, nodes)  # three_microgrids: a node per agent; prosumers: 3 nodes of 7 or 8
    terminals = None
    if name == "three_microgrids":  # mg1's terminals, read and filled on its edge's node
        terminals = tmp_path / "mg1_terminals.csv"
        terminals.write_text("hour,mg1_ld.scale\n" + "".join(f"{h},{'' if h == 5 else 0.8}\n" for h in range(24)))
    central_result = gridlang.load(CASES / f"{name}.grid", measurements=terminals).solve(compare_plans=False)
    central = central_result.objective
    cluster = local_cluster(groups)
    try:
        for group in groups:  # each edge as its machine would start it
            extra = ["--measurements", str(terminals)] if terminals is not None and group == ["mg1"] else []
            r = runner.invoke(app, ["edge", *(str(folder / a / f"{a}.grid") for a in group), "--join", cluster.address, *extra])
            assert r.exit_code == 0, r.output
            assert f"{', '.join(group)} joined" in r.output
        ray.init(address=cluster.address, namespace=NAMESPACE, include_dashboard=False, log_to_driver=False, configure_logging=False)
        actors = edges()
        assert set(actors) == set(agents)
        carrying = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
        on = {a: ray.get(actor.node.remote()) for a, actor in actors.items()}
        assert all(carrying[on[a]].get(resource(a)) == 1.0 for a in agents)  # placed by its resources, on its node
        assert len(set(on.values())) == len(groups)

        parts_compile._cloud_built.cache_clear()  # the edges above ran in this process: compile the cloud afresh
        settle = name == "prosumers"  # the game settled on the same nodes (three_microgrids: below, under LinDistFlow)
        result, files = opening(lambda: run_cloud(folder / "cloud.grid", "atc", settle=settle))
        assert str((folder / "cloud.grid").resolve()) in files
        assert not [p for p in files if p.startswith(tuple(str((folder / a).resolve()) for a in agents))]
        if terminals is not None:  # the cloud never sees the measurements, only what the edge filled
            assert str(terminals.resolve()) not in files
            assert result.terminals == ("edge of 'mg1': 1 terminal(s) measured, filled mg1_ld.scale: 1 missing, 0 implausible",)
        assert result.status == "converged"
        assert result.objective == pytest.approx(central, rel=1e-6)
        # every edge sent its cost scale when it joined: ATC starts from the serial run's weight and takes its iterations
        serial = solve_parts(folder / "cloud.grid", [folder / a / f"{a}.grid" for a in agents], "atc", measurements={"mg1": terminals} if terminals else None)
        assert serial.status == "converged" and abs(serial.iterations - result.iterations) <= 1, (serial.iterations, result.iterations)
        assert result.run.trace[0].rho == pytest.approx(serial.run.trace[0].rho, rel=1e-12)
        # the message log: per agent and pass, the coupling rows it answered for and its y, nothing else
        log = result.run.messages
        assert log and all(set(m) == {"agent", "iteration", "rows", "y"} for m in log)
        assert all(len(m["rows"]) == len(m["y"]) for m in log)
        assert all(isinstance(k, RowKey) for k in result.rows)
        if settle:
            _check_game_settlement(result.settlement, central_result.games[0], set(agents))
    finally:
        for actor in set(edges().values()) if ray.is_initialized() else ():
            ray.kill(actor, no_restart=True)
        ray.shutdown()
        cluster.shutdown()


def test_cloud_command_needs_a_cluster_and_an_edge_needs_its_node(tmp_path):
    r = runner.invoke(app, ["cloud", str(tmp_path / "cloud.grid")])
    assert r.exit_code == 1 and "--address" in r.output


def test_an_edge_node_killed_mid_run_is_bridged_and_rejoins(tmp_path):
    """ADMM goes on with mg2's last answer while its node is gone (at most max_staleness
    iterations, then it waits), and mg2's edge, started again on a new node carrying its
    resource, is found by name and given its numbering again: the run converges within
    1 % of the lossless one (here far closer) and says what happened."""
    from ray.cluster_utils import Cluster

    from gridlang.parts.edge import NAMESPACE, edges, resource, run_cloud, start_edge

    folder = CASES / "parts" / "three_microgrids"
    agents = ["mg1", "mg2", "mg3"]
    fast = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 300, "health_check_failure_threshold": 3}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False, "_system_config": fast})
    nodes = {a: cluster.add_node(num_cpus=0, resources={resource(a): 1}) for a in agents}
    cluster.wait_for_nodes()
    try:
        ray.init(address=cluster.address, namespace=NAMESPACE, include_dashboard=False, log_to_driver=False, configure_logging=False)
        for a in agents:
            start_edge({a: folder / a / f"{a}.grid"})
        lossless = run_cloud(folder / "cloud.grid", "admm")
        assert lossless.status == "converged" and not lossless.events
        # rho and the per-contribution penalties from the edges' numbers (cost scale, ranges): the serial run's iterations
        serial = solve_parts(folder / "cloud.grid", [folder / a / f"{a}.grid" for a in agents], "admm")
        assert serial.status == "converged" and abs(serial.iterations - lossless.iterations) <= 1, (serial.iterations, lossless.iterations)

        def progress(step) -> None:
            if step.iteration == 5:  # mg2's machine goes down
                cluster.remove_node(nodes["mg2"], allow_graceful=False)
            if step.iteration == 7:  # and comes back: its node, then its edge
                nodes["mg2"] = cluster.add_node(num_cpus=0, resources={resource("mg2"): 1})
                cluster.wait_for_nodes()
                start_edge({"mg2": folder / "mg2" / "mg2.grid"})

        faulty = run_cloud(folder / "cloud.grid", "admm", progress=progress)
        assert faulty.status == "converged"
        assert faulty.objective == pytest.approx(lossless.objective, rel=1e-2)
        assert faulty.objective == pytest.approx(gridlang.load(CASES / "three_microgrids.grid").solve().objective, rel=1e-4)
        left = [e for e in faulty.events if e.startswith("the edge of mg2 left at iteration")]
        back = [e for e in faulty.events if e.startswith("the edge of mg2 rejoined at iteration")]
        assert len(left) == 1 and len(back) == 1 and faulty.events.index(left[0]) < faulty.events.index(back[0])
    finally:
        for actor in set(edges().values()) if ray.is_initialized() else ():
            ray.kill(actor, no_restart=True)
        ray.shutdown()
        cluster.shutdown()


def _check_game_settlement(ps, c, agents: set[str]) -> None:
    """prosumers after ATC on edge nodes: each prosumer's side of the settlement (its cost
    and schedule alone, its answers, its face, its numbers at the point) ran on its edge's
    actor (the caller checks that the cloud opened no agent file); the cloud heard only
    prices, powers and per-side numbers, and reached the central game's money ``c`` within
    1e-6 of the surplus."""
    import numpy as np

    from gridlang.parts.settle import REPORTS

    assert ps is not None and ps.converged and not ps.messages
    p = ps.games[0]
    S = c.surplus
    assert S > 0 and abs(p.surplus - S) <= 1e-6 * S
    assert np.abs(p.alone - c.alone).max() <= 1e-6 * S and abs(p.operator_alone - c.operator_alone) <= 1e-6 * S
    assert np.abs(p.gain - c.gain).max() <= 1e-6 * S and abs(p.operator_gain - c.operator_gain) <= 1e-6 * S
    # the settlement's messages, by name: prices and powers per coupling row, a few numbers per side
    senders = {m.sender for m in ps.log if m.kind in REPORTS}
    cloud = {m.receiver for m in ps.log if m.kind in REPORTS}
    assert len(cloud) == 1 and senders == agents
    owner = next(iter(cloud))
    assert {m.kind for m in ps.log if m.sender == owner} == {"price", "power"}
    for m in ps.log:
        assert m.kind in ("price", "power", *REPORTS)
        assert isinstance(m.values, np.ndarray) and m.values.dtype == float and np.isfinite(m.values).all()
        if m.kind in ("schedule", "net_import"):
            assert m.values.shape == (24,)
        elif m.kind not in ("price", "power"):
            assert m.values.shape == (1,)
        else:
            assert m.values.size < 24 * 10  # an agent's coupling rows, never a model


def _central(name: str, formulation: str | None):
    return gridlang.load(CASES / f"{name}.grid", formulation=formulation).solve(compare_plans=False)


def _check_market_settlement(written: dict, central) -> None:
    """The market's money as `gridlang cloud --settlement` wrote it, every member's within 1e-6 of the central surplus."""
    import numpy as np

    S = central.surplus
    market = written["markets"][central.market]
    assert market["surplus"] == pytest.approx(S, abs=1e-6 * S) and abs(market["budget_balance"]) <= 1e-9 * S
    for i, a in enumerate(central.agents):
        got = market["agents"][a]
        for key, want in (("cost", central.cost), ("fees_paid", central.fees_paid), ("alone", central.disagreement), ("gain", central.gain), ("payment", central.payment)):
            assert abs(got[key] - want[i]) <= 1e-6 * S, (a, key)
    assert np.isclose(sum(v["gain"] for v in market["agents"].values()), S, atol=1e-6 * S)


def test_gridlang_cloud_local_settles_three_microgrids_as_the_central_solve(tmp_path):
    """three_microgrids under LinDistFlow (an LP: exact faces), one node per microgrid:
    `gridlang cloud --local` prints and writes the market's money, every member's within 1e-6
    of the central settlement's surplus; a quadratic cost in the cloud's model is refused."""
    import json

    folder = tmp_path / "parts"
    split_case(CASES / "three_microgrids.grid", folder)
    central = _central("three_microgrids", "lindistflow").settlements[0]
    out = tmp_path / "settlement.json"
    r = runner.invoke(app, ["cloud", str(folder / "cloud.grid"), "--local", "--formulation", "lindistflow", "--settlement", str(out)])
    assert r.exit_code == 0, r.output
    assert "ATC converged" in r.output and "settlement from the parts: dispatch" in r.output and f"market {central.market}: surplus" in r.output
    written = json.loads(out.read_text())
    assert written["converged"]
    _check_market_settlement(written, central)
    # asked for with a quadratic cost in the cloud's own model: refused before any dispatch, with the reason
    cloud = folder / "cloud.grid"
    cloud.write_text(cloud.read_text().replace("agent dso owns ieee33, substation", "generator dso_gen at b1 { pmax = 500 kW; marginal_cost = 80 $/MWh; quadratic_cost = 40 $/MW^2/h }\nagent dso owns ieee33, substation, dso_gen"))
    r = runner.invoke(app, ["cloud", str(cloud), "--local", "--settle"])
    assert r.exit_code == 1 and "the cloud's model is quadratic" in r.output and "settle it centrally" in r.output and "ATC" not in r.output


@pytest.mark.slow  # about 200 s (phase 2 of a conic case: 2,450 exchange iterations); make test-all
def test_gridlang_cloud_local_settles_the_shipped_soc_three_microgrids_as_the_central_solve(tmp_path):
    """three_microgrids as shipped (distflow_soc), one node per microgrid: the selection on every
    side's whole conic model with the total-cost row, every member's money within 1e-6 of the
    central settlement's surplus, and the run reported converged (exit 0)."""
    import json

    folder = tmp_path / "parts"
    split_case(CASES / "three_microgrids.grid", folder)
    central = _central("three_microgrids", None).settlements[0]
    out = tmp_path / "settlement.json"
    r = runner.invoke(app, ["cloud", str(folder / "cloud.grid"), "--local", "--settle", "--settlement", str(out)])
    assert r.exit_code == 0, r.output
    assert "ATC converged" in r.output and f"market {central.market}: surplus" in r.output
    written = json.loads(out.read_text())
    assert written["converged"] and written["imbalance_pu"] <= 1e-8 and not written["messages"]
    _check_market_settlement(written, central)
