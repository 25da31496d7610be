"""Decomposition by agent: the split, exchange ADMM against the central
optimum, the message log (privacy), and the process executor with a worker
that dies mid-run."""

from __future__ import annotations

import time

import numpy as np
import pytest

import gridlang
from gridlang import decompose
from gridlang.decompose.split import split
from gridlang.solvers.result import FEASIBILITY_TOL
from conftest import CASES
from test_market import TWO

THREE = TWO.format(
    fee=2, payments="", members="a, b, c",
    extra="generator dear2 at b3 { pmax = 2 MW; marginal_cost = 30 $/MWh }\nload lc at b3 { p = 0.8 MW; curtailable = 50 %; voll = 70 $/MWh }",
    agents="agent c owns dear2, lc",
)


@pytest.fixture(scope="module")
def case():
    return gridlang.load(THREE)


def test_split_finds_the_coupling_rows(case) -> None:
    parts = split(case.built)
    assert parts.agents == ("a", "b", "c", "n")  # the network's implicit owner is an agent too
    # coupling rows: the copper-plate balance and the market balances of a, b and c
    assert parts.n_coupling == 4
    assert sorted(parts.contributors.tolist()) == [3, 3, 3, 3]
    for sub in parts.subproblems:
        assert sub.C.shape == (len(sub.rows), len(sub.vlabels))


def test_admm_reaches_the_central_optimum(case) -> None:
    central = case.solve()
    result, run = decompose.solve(gridlang.load(THREE).built)
    assert run.converged and result.termination == "converged"
    assert result.objective == pytest.approx(central.objective, rel=1e-4)
    assert result.residual <= FEASIBILITY_TOL  # the whole model holds at the decomposed point, as for a central solve
    assert len(result["admm_primal"]) == run.iterations


def test_every_message_holds_only_coupling_quantities(case) -> None:
    parts = split(case.built)
    _, run = decompose.solve(gridlang.load(THREE).built)
    rows = {s.agent: s.rows for s in parts.subproblems}
    assert run.messages
    for msg in run.messages:
        assert set(msg) == {"agent", "iteration", "rows", "y"}
        np.testing.assert_array_equal(msg["rows"], rows[msg["agent"]])
        assert msg["y"].shape == (len(rows[msg["agent"]]),)


def test_process_executor_gives_the_serial_numbers_and_survives_a_killed_worker(case) -> None:
    serial, _ = decompose.solve(gridlang.load(THREE).built)
    from gridlang.decompose.executors import ProcessExecutor

    killed = {"done": False}
    original = ProcessExecutor.solve_all

    def solve_all(self, targets, rho):
        if not killed["done"]:
            killed["done"] = True
            self.kill("b")  # the worker of agent b dies before the first iteration
        return original(self, targets, rho)

    ProcessExecutor.solve_all = solve_all
    try:
        processes, run = decompose.solve(gridlang.load(THREE).built, executor="processes", workers=2, at_once=True)
    finally:
        ProcessExecutor.solve_all = original
    assert run.converged and killed["done"] and processes.solver == "admm/processes"
    assert processes.objective == pytest.approx(serial.objective, rel=1e-9)


def test_spawned_workers_start_only_once_the_run_has_lasted_their_start(monkeypatch) -> None:
    """Workers costly to start (spawned) are started only once the run has lasted as
    long as their start (the ski-rental rule of ``executors.Handover``): a run that
    ends first was solved here and says so; in a longer one (the start's estimate
    set to 0.2 s) the first iterations run here, the workers take over, and the run
    reaches the serial optimum (the iterations here slowed down, so that the workers
    come up mid-run); forked workers are cheap and used at once."""
    from gridlang.decompose import executors, run

    serial, s_run = decompose.solve(gridlang.load(THREE).built)
    monkeypatch.setattr(executors, "START", "spawn")
    result, r_run = decompose.solve(gridlang.load(THREE).built, executor="processes", workers=2)
    assert result.solver == "admm/serial" and r_run.converged and r_run.iterations == s_run.iterations and result.objective == serial.objective
    (why,) = [w for w in result.warnings if w.startswith("executor processes")]
    assert "the run ended here" in why and "spawned" in why and "started once a run has lasted 0.5 s" in why
    monkeypatch.setattr(run, "start_cost", lambda executor, count: (0.2, "a spawned worker takes a while"))
    here = executors.SerialExecutor.solve_all

    def slow_here(self, targets, rho):  # each iteration here made 0.2 s long: the workers come up within the 23 iterations
        time.sleep(0.2)
        return here(self, targets, rho)

    monkeypatch.setattr(executors.SerialExecutor, "solve_all", slow_here)
    handed, h_run = decompose.solve(gridlang.load(THREE).built, executor="processes", workers=2)
    (why,) = [w for w in handed.warnings if w.startswith("executor processes")]
    ran_here = int(why.split("the first ")[1].split()[0])
    assert handed.solver == "admm/processes" and 1 <= ran_here < h_run.iterations and "while its workers started (a spawned worker takes a while)" in why
    assert h_run.converged and not handed.doubts() and handed.objective == pytest.approx(serial.objective, rel=1e-6)
    if executors.start_method("auto")[0] == "fork":
        monkeypatch.undo()
        result, r_run = decompose.solve(gridlang.load(THREE).built, executor="processes")
        assert result.solver == "admm/processes" and r_run.converged
        assert not any(w.startswith("executor processes") for w in result.warnings)


def test_closed_form_admm_payments_equal_the_nash_solution() -> None:
    from gridlang.decompose.nash import nash_admm
    from gridlang.settle import nash_payments

    rng = np.random.default_rng(3)
    for n in (2, 4, 7):
        disagreement = rng.uniform(50, 500, n)
        cost = disagreement - rng.uniform(0, 60, n)  # every agent saves something by trading
        alpha = rng.uniform(0.2, 2.0, n)
        alpha /= alpha.sum()
        _, _, exact = nash_payments(cost, disagreement, alpha)
        payments, iterations, log = nash_admm(disagreement - cost, alpha)
        np.testing.assert_allclose(payments, exact, atol=1e-6)
        assert abs(payments.sum()) < 1e-6 and iterations < 10_000
        assert all(set(m) == {"agent", "iteration", "target", "payment"} for m in log)  # only targets and payments travel


def test_closed_form_admm_on_the_three_microgrids_payments() -> None:
    from gridlang.decompose.nash import nash_admm

    r = gridlang.load(CASES / "three_microgrids.grid").solve()
    (s,) = r.settlements
    payments, iterations, _ = nash_admm(s.disagreement - s.cost, s.powers)
    np.testing.assert_allclose(payments, s.payment, atol=1e-6)
    assert iterations < 1000


def test_three_microgrids_by_admm_reach_the_central_cost() -> None:
    """LP subproblems (LinDistFlow): total cost within 1e-4, and every agent's final cost
    (after payments, which is d_i - alpha_i S whatever the split of an optimum between
    agents) within 1e-3 of the surplus of the central run; the whole model holds to FEASIBILITY_TOL."""
    central = gridlang.load(CASES / "three_microgrids.grid", formulation="lindistflow").solve()
    r = gridlang.load(CASES / "three_microgrids.grid", formulation="lindistflow").solve(method="admm")
    assert r.termination == "converged" and r.residual <= FEASIBILITY_TOL
    assert r.objective == pytest.approx(central.objective, rel=1e-4)
    (a,), (b,) = central.settlements, r.settlements
    assert np.abs((b.cost + b.payment) - (a.cost + a.payment)).max() <= 1e-3 * a.surplus


@pytest.mark.xdist_group("ray")
def test_ray_executor_gives_the_serial_numbers_and_survives_a_killed_actor() -> None:
    pytest.importorskip("ray")
    from gridlang.decompose.executors import RayExecutor

    serial, _ = decompose.solve(gridlang.load(THREE).built)
    killed = {"done": False}
    original = RayExecutor.solve_all

    def solve_all(self, targets, rho):
        out = original(self, targets, rho)
        if not killed["done"]:
            killed["done"] = True
            self.kill("a")  # Ray restarts the actor from its subproblem
        return out

    RayExecutor.solve_all = solve_all
    try:
        on_ray, run = decompose.solve(gridlang.load(THREE).built, executor="ray", workers=2, at_once=True)
    finally:
        RayExecutor.solve_all = original
    assert run.converged
    # the restarted actor builds a fresh model: the same optimum, to the subproblem solver's accuracy
    assert on_ray.objective == pytest.approx(serial.objective, rel=1e-6)


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_lost_messages_are_bridged_with_stale_answers(rate: float) -> None:
    clean, _ = decompose.solve(gridlang.load(THREE).built)
    lossy, run = decompose.solve(gridlang.load(THREE).built, drop_rate=rate, max_staleness=2, seed=1)
    assert run.converged
    assert any(step.stale for step in run.trace)
    for agent in ("a", "b", "c", "n"):  # never more than max_staleness lost in a row
        streak = 0
        for step in run.trace:
            streak = streak + 1 if agent in step.stale else 0
            assert streak <= 2
    assert any("were lost" in w for w in lossy.warnings)
    assert lossy.objective == pytest.approx(clean.objective, rel=1e-4) and lossy.residual <= FEASIBILITY_TOL  # a converged run is right
    assert int(lossy["admm_stale"].sum()) == sum(len(s.stale) for s in run.trace)


def test_three_microgrids_by_admm_with_soc_subproblems() -> None:
    """distflow_soc: the operator's subproblem holds the cones (Clarabel, updated in place)."""
    central = gridlang.load(CASES / "three_microgrids.grid").solve()
    built = gridlang.load(CASES / "three_microgrids.grid").built
    assert built.cones and any(sub.cones for sub in split(built).subproblems)
    r, run = decompose.solve(built)
    assert run.converged and r.residual <= FEASIBILITY_TOL
    assert r.objective == pytest.approx(central.objective, rel=1e-4)


@pytest.mark.parametrize("formulation", ["lindistflow", None], ids=["lp", "soc"])
def test_three_microgrids_by_atc(formulation) -> None:
    """ATC: the operator as the upper level, the microgrids below; LP and SOC subproblems."""
    central = gridlang.load(CASES / "three_microgrids.grid", formulation=formulation).solve()
    r = gridlang.load(CASES / "three_microgrids.grid", formulation=formulation).solve(method="atc")
    assert r.termination == "converged" and r.solver == "atc/serial"
    assert r.objective == pytest.approx(central.objective, rel=1e-4)
    (a,), (b,) = central.settlements, r.settlements
    assert np.abs((b.cost + b.payment) - (a.cost + a.payment)).max() <= 1e-3 * a.surplus


def test_prosumers_by_atc_reproduce_the_game() -> None:
    central = gridlang.load(CASES / "prosumers.grid").solve()
    r = gridlang.load(CASES / "prosumers.grid").solve(method="atc")
    assert r.termination == "converged"
    assert r.objective == pytest.approx(central.objective, rel=1e-6)
    (a,), (b,) = central.games, r.games
    assert b.gain.sum() == pytest.approx(a.gain.sum(), rel=1e-3)
    assert b.operator_gain == pytest.approx(a.operator_gain, rel=1e-3)
    np.testing.assert_allclose(b.price, a.price, atol=1e-2)  # currency/MWh


def test_prosumers_by_admm_reproduce_the_game() -> None:
    central = gridlang.load(CASES / "prosumers.grid").solve()
    r = gridlang.load(CASES / "prosumers.grid").solve(method="admm", tol=1e-6, rel=1e-5)
    assert r.termination == "converged"
    assert r.objective == pytest.approx(central.objective, rel=1e-4)
    (a,), (b,) = central.games, r.games
    # the surplus is 10 of 5,515: its split is checked against the surplus
    assert abs(b.gain.sum() - a.gain.sum()) <= 1e-2 * a.surplus
    assert abs(b.operator_gain - a.operator_gain) <= 1e-2 * a.surplus


def test_method_auto_picks_atc_where_the_others_hang_off_the_network_owner() -> None:
    """prosumers (each prosumer meets only the operator 'dso'): ATC, said in the
    warnings, the very numbers of method="atc"; the same from the study's ``method = auto``."""
    path = CASES / "prosumers.grid"
    auto = gridlang.load(path).solve(method="auto")
    atc = gridlang.load(path).solve(method="atc")
    assert auto.warnings[0] == "method auto picked ATC: 'dso' owns the network and each of the other 22 agents is coupled with it alone"
    assert auto.solver == "atc/serial" and auto.termination == "converged" and not auto.doubts()
    assert auto.objective == atc.objective
    assert auto.dataset.attrs["stopped_by"].startswith("converged at iteration ") and "target gap |t - y|" in auto.dataset.attrs["stopped_by"]
    text = path.read_text().replace('"data/', f'"{CASES}/data/').replace('include "', f'include "{CASES}/').replace("solver = highs }", "solver = highs; method = auto }")
    assert gridlang.load(text, allow_outside=True).solve().warnings[0].startswith("method auto picked ATC")


def test_method_auto_picks_admm_where_agents_meet_in_a_market_and_atc_for_a_community() -> None:
    from gridlang.decompose import choose

    method, why = choose(gridlang.load(CASES / "three_microgrids.grid").built)
    assert method == "admm" and why.startswith("agents mg1, mg2, mg3 meet in 72 coupling rows")  # the market's energy balance
    method, why = choose(gridlang.load(CASES / "community4.grid").built)
    assert (method, why) == ("atc", "'dso' owns the network and each of the other 4 agents is coupled with it alone")
    method, _ = choose(gridlang.load(THREE).built)  # a, b, c and the network meet in one balance
    assert method == "admm"


def test_method_auto_on_a_case_without_agents_solves_centrally() -> None:
    r = gridlang.load(CASES / "ieee33_dispatch.grid").solve(method="auto")
    assert r.warnings[0].startswith("method auto picked central") and r.termination == "optimal"


def test_agents_are_batched_into_at_most_n_workers_by_size() -> None:
    from gridlang.decompose.executors import batches

    subs = split(gridlang.load(CASES / "prosumers.grid").built).subproblems
    for n in (1, 2, 3, 50):
        groups = batches(subs, n)
        assert len(groups) == min(n, len(subs))
        assert sorted(s.agent for g in groups for s in g) == sorted(s.agent for s in subs)  # each agent once
        load = [sum(len(s.vlabels) + s.A.shape[0] for s in g) for g in groups]
        biggest = max(len(s.vlabels) + s.A.shape[0] for s in subs)
        assert max(load) - min(load) <= biggest  # greedy by size: no worker holds more than one agent's work extra
        assert [[s.agent for s in g] for g in batches(subs, n)] == [[s.agent for s in g] for g in groups]  # deterministic


def test_batched_processes_give_the_serial_numbers_and_restart_a_killed_workers_agents() -> None:
    """prosumers by ATC: 22 agents in 3 worker processes give serial's iterates exactly;
    the worker of p5 killed after the first iteration is started again with all its
    agents (fresh models), and the run still reaches serial's optimum."""
    from gridlang.decompose.executors import ProcessExecutor

    path = CASES / "prosumers.grid"
    serial, s_run = decompose.solve(gridlang.load(path).built, "atc")
    batched, b_run = decompose.solve(gridlang.load(path).built, "atc", "processes", workers=3)
    assert b_run.iterations == s_run.iterations and batched.objective == serial.objective
    np.testing.assert_array_equal(batched["admm_primal"].values, serial["admm_primal"].values)

    seen: dict = {}
    original = ProcessExecutor.solve_all

    def solve_all(self, targets, rho):
        out = original(self, targets, rho)
        if not seen:
            seen["pool"] = self
            self.kill("p5")
        return out

    ProcessExecutor.solve_all = solve_all
    try:
        killed, run = decompose.solve(gridlang.load(path).built, "atc", "processes", workers=3)
    finally:
        ProcessExecutor.solve_all = original
    pool = seen["pool"]
    assert len(pool.workers) == 3
    mates = set(pool.groups[pool.home["p5"]])
    assert {a for a, n in pool.restarts.items() if n} == mates and all(n == 1 for a, n in pool.restarts.items() if a in mates)
    assert run.converged and not killed.doubts()
    assert killed.objective == pytest.approx(serial.objective, rel=1e-6)
