"""Decomposition by agent: the split, exchange ADMM against the central
optimum, the message log (privacy), and the process executor with a worker
that dies mid-run."""

from __future__ import annotations

import numpy as np
import pytest

import gridlang
from gridlang import decompose
from gridlang.decompose.split import split
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
    assert result.objective == pytest.approx(central.objective, rel=1e-3)
    assert result.residual < 1e-3  # the whole model holds at the decomposed point
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
        processes, run = decompose.solve(gridlang.load(THREE).built, executor="processes")
    finally:
        ProcessExecutor.solve_all = original
    assert run.converged
    assert processes.objective == pytest.approx(serial.objective, rel=1e-9)
