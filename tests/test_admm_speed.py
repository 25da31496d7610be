"""Default ADMM is fast: OSQP's adaptive rho and safeguarded Anderson acceleration
(see :mod:`gridlang.decompose.admm`) bring ``cases/three_microgrids.grid``
(LinDistFlow) to the central optimum in at most 100 iterations, where the plain
over-relaxed method with residual balancing took 344."""

from __future__ import annotations

import pytest
from conftest import CASES

import gridlang
from gridlang import decompose, solvers
from gridlang.decompose.admm import Anderson
from gridlang.solvers.result import FEASIBILITY_TOL

import numpy as np

MICROGRIDS = CASES / "three_microgrids.grid"
COMMUNITY = CASES / "community4.grid"


def test_three_microgrids_converge_in_at_most_100_iterations() -> None:
    central = solvers.solve(gridlang.load(MICROGRIDS, formulation="lindistflow").built, None, {})
    assert central.termination == "optimal"
    result, run = decompose.solve(gridlang.load(MICROGRIDS, formulation="lindistflow").built, "admm")
    assert run.converged and result.termination == "converged" and not result.doubts()
    assert run.iterations <= 100, f"{run.iterations} iterations"
    assert result.residual <= FEASIBILITY_TOL
    assert result.objective == pytest.approx(central.objective, rel=1e-4)


def test_acceleration_is_what_makes_it_fast() -> None:
    """The same run without Anderson acceleration takes several times as many iterations
    (the adaptive rho alone), and both end at the central optimum or say not converged."""
    fast, fast_run = decompose.solve(gridlang.load(COMMUNITY).built, "admm")
    slow, slow_run = decompose.solve(gridlang.load(COMMUNITY).built, "admm", anderson=0, max_iter=300)
    assert fast_run.converged
    assert slow_run.iterations >= 3 * fast_run.iterations
    assert slow_run.converged or slow.doubts()


def test_anderson_solves_an_affine_fixed_point_at_once() -> None:
    """For an affine contraction T(w) = M w + c in dimension 2, type-II Anderson with memory 2
    reaches the fixed point after three evaluations (the differences span the space)."""
    M = np.array([[0.9, 0.05], [0.0, 0.8]])
    c = np.array([1.0, -2.0])
    fixed = np.linalg.solve(np.eye(2) - M, c)
    aa, w = Anderson(2), np.zeros(2)
    for _ in range(4):
        w = aa.step(w, M @ w + c)
    np.testing.assert_allclose(w, fixed, rtol=1e-6)
    plain = np.zeros(2)
    for _ in range(4):
        plain = M @ plain + c
    assert np.linalg.norm(plain - fixed) > 1.0  # the plain map is far off after as many steps


def test_anderson_memory_zero_is_the_plain_map() -> None:
    aa, w = Anderson(0), np.array([1.0, 2.0])
    np.testing.assert_array_equal(aa.step(w, 0.5 * w), 0.5 * w)
    assert not aa.pending


def _benchmark():
    """benchmarks/admm_scaling.py as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "admm_scaling.py"
    spec = importlib.util.spec_from_file_location("admm_scaling", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _community(n: int, network: str) -> str:
    """The benchmark's synthetic prosumer community (benchmarks/admm_scaling.make_case)."""
    return _benchmark().make_case(n, network=network)


def test_the_operator_of_a_copper_plate_takes_a_share_by_its_range() -> None:
    """On a copper plate of 40 prosumers the operator's grid import (unbounded) can balance the
    row alone: its penalty is the prosumers' divided by about their number (a power of ten)."""
    from gridlang.decompose.admm import penalties
    from gridlang.decompose.split import split

    parts = penalties(split(gridlang.load(_community(40, "copper_plate")).built))
    dso = next(s for s in parts.subproblems if s.agent == "dso")
    prosumers = np.concatenate([s.penalty for s in parts.subproblems if s.agent != "dso"])
    assert np.all(prosumers == 1.0)
    assert np.all((dso.penalty >= 1e-2) & (dso.penalty <= 1e-1))


def test_a_copper_plate_community_converges_fast_with_a_penalty_per_row() -> None:
    """60 prosumers on one balance per step: ADMM with the penalties reaches the central optimum in
    at most 100 iterations; one rho for all takes several times as many (or does not converge)."""
    text = _community(60, "copper_plate")
    central = solvers.solve(gridlang.load(text).built, None, {})
    result, run = decompose.solve(gridlang.load(text).built, "admm")
    assert run.converged and not result.doubts() and run.iterations <= 100, run.stopped_by
    assert result.objective == pytest.approx(central.objective, rel=1e-4)
    _, flat = decompose.solve(gridlang.load(text).built, "admm", row_scaling=0, max_iter=3 * run.iterations)
    assert not flat.converged or flat.iterations >= 2 * run.iterations


def test_the_scaling_benchmark_runs_quick() -> None:
    """``benchmarks/admm_scaling.py --quick`` (10 and 50 agents, a few seconds) runs, and ADMM
    converges at both sizes within 100 iterations (its timings are reported, not tested)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "admm_scaling.py"), "--quick", "--network", "copper_plate"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    head, *table = out.stdout.split("3. Convergence")[1].splitlines()[1:4]
    assert "decomposed peak" in head and "central peak" in head, head
    for line, agents in zip(table, ("10", "50")):
        cells = line.split()
        assert cells[0] == agents and cells[1] == "converged" and int(cells[2]) <= 100, line
        # each size's two processes report their own peaks: the decomposed one within 8 GiB
        decomposed, mark, central = cells[-4:-1]
        assert decomposed.endswith("MiB") and mark == "ok" and central.endswith("MiB"), line
        assert 0 < float(decomposed[:-3]) <= 8 * 1024 and float(central[:-3]) > 0, line


def test_the_scaling_benchmark_estimates_each_process_apart() -> None:
    """A size is skipped by the decomposed run's own estimated peak (linear through the two
    largest sizes), the central solve by its own, from the sizes where it ran."""
    bench = _benchmark()
    mib = 2**20
    rows = [
        {"agents": 100, "admm": {"peak_rss": 300 * mib}, "central": {"peak_rss": 250 * mib}},
        {"agents": 1000, "admm": {"peak_rss": 480 * mib}, "central": {"peak_rss": 1000 * mib}},
        {"agents": 2000, "admm": {"peak_rss": 680 * mib}, "central": None},  # central skipped there
    ]
    estimate, per = bench.peak_estimate(10000, rows, "admm")
    assert per == pytest.approx(0.2 * mib) and estimate == pytest.approx(2280 * mib)
    estimate, per = bench.peak_estimate(10000, rows, "central")  # through 100 and 1,000 agents
    assert per == pytest.approx(750 * mib / 900) and estimate == pytest.approx(1000 * mib + 9000 * per)
    assert bench.too_big(10000, rows, "admm", 8 * 2**30) is None
    assert "over 4.0 GiB" in bench.too_big(10000, rows, "central", 4 * 2**30)
    one = rows[:1]  # one size: through the origin, an upper bound
    assert bench.peak_estimate(1000, one, "admm") == (pytest.approx(3000 * mib), pytest.approx(3 * mib))
