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
from gridlang.parts.compile import RowKey
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
    central = gridlang.load(CASES / f"{name}.grid", measurements=terminals).solve().objective
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
        result, files = opening(lambda: run_cloud(folder / "cloud.grid", "atc"))
        assert str((folder / "cloud.grid").resolve()) in files
        assert not [p for p in files if p.startswith(tuple(str((folder / a).resolve()) for a in agents))]
        if terminals is not None:  # the cloud never sees the measurements, only what the edge filled
            assert str(terminals.resolve()) not in files
            assert result.terminals == ("edge of 'mg1': 1 terminal(s) measured, filled mg1_ld.scale: 1 missing, 0 implausible",)
        assert result.status == "converged"
        assert result.objective == pytest.approx(central, rel=1e-6)
        # the message log: per agent and pass, the coupling rows it answered for and its y, nothing else
        log = result.run.messages
        assert log and all(set(m) == {"agent", "iteration", "rows", "y"} for m in log)
        assert all(len(m["rows"]) == len(m["y"]) for m in log)
        assert all(isinstance(k, RowKey) for k in result.rows)
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
