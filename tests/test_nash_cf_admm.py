"""Closed-form ADMM for Nash-bargaining payments: the same answer as the
closed form, only payments crossing, and the pairwise payments' identity."""

from __future__ import annotations

import os

import numpy as np
import pytest

from gridlang.decompose import nash
from gridlang.settle import nash_payments


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cf_admm_matches_the_closed_form(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 2 + seed * 3
    d, c = rng.uniform(100, 1000, n), rng.uniform(0, 100, n)
    alpha = rng.uniform(0.1, 3, n)
    alpha /= alpha.sum()
    surplus, gain, closed = nash_payments(c, d, alpha)
    found, iterations, log = nash.nash_admm(d - c, alpha)
    assert iterations < 10_000
    np.testing.assert_allclose(found, closed, atol=1e-6 * surplus, rtol=0)
    assert abs(found.sum()) <= 1e-6 * surplus
    # the coordinator's messages hold targets and payments, never an agent's saving or power
    assert {k for m in log for k in m} == {"agent", "iteration", "target", "payment"}


def test_pairwise_payments_are_the_least_squares_ones() -> None:
    pi = np.array([-30.0, 10.0, 20.0])
    P = nash.pairwise(pi)
    np.testing.assert_allclose(P.sum(axis=1) - P.sum(axis=0), pi, atol=1e-12)
    # f_ij = (pi_i - pi_j) / n: the minimum-norm antisymmetric flow with these net payments
    np.testing.assert_allclose(P[2, 0], 50 / 3) and np.testing.assert_allclose(P[1, 0], 40 / 3)
    assert (P >= 0).all() and (np.diag(P) == 0).all()
    # no other antisymmetric flow with the same row sums has a smaller norm: add a circulation
    flow = P - P.T
    cycle = np.array([[0, 1, -1], [-1, 0, 1], [1, -1, 0]], dtype=float)
    for eps in (-1.0, 0.5, 2.0):
        assert np.linalg.norm(flow + eps * cycle) > np.linalg.norm(flow)


def test_cf_admm_with_each_agent_in_its_own_process() -> None:
    g, alpha = np.array([120.0, -20.0, 400.0]), np.array([0.5, 0.25, 0.25])
    serial, k_serial, _ = nash.nash_admm(g, alpha)
    agents = nash.ProcessBargainers(g, alpha)
    try:
        assert len(set(agents.pids)) == 3 and os.getpid() not in agents.pids
    finally:
        agents.close()
    found, k, log = nash.nash_admm(g, alpha, executor="processes")
    np.testing.assert_allclose(found, serial, atol=1e-12, rtol=0)
    assert k == k_serial
    np.testing.assert_allclose(found, g - alpha * g.sum(), atol=1e-6 * g.sum(), rtol=0)
