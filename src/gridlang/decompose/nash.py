"""Nash-bargaining payments by closed-form ADMM: no agent reveals its costs.

Stage 2 of a market maximises ``sum_i alpha_i log(g_i - pi_i)`` subject to
``sum_i pi_i = 0``, where ``g_i = d_i - c_i`` is what agent i saves by
trading (private: its disagreement cost minus its stage-1 cost) and ``pi_i``
its payment.  Exchange ADMM splits it: agent i answers a target ``v_i`` with

    pi_i = argmin -alpha_i log(g_i - pi) + rho/2 (pi - v_i)^2
         = g_i - s_i,   s_i = ((g_i - v_i) + sqrt((g_i - v_i)^2 + 4 alpha_i / rho)) / 2,

a formula, not a solver call (``s_i`` is its gain, the positive root of
``rho s^2 - rho (g_i - v_i) s - alpha_i = 0``); the coordinator sees only the
``pi_i`` and keeps ``u`` and the mean.  It converges to the closed form
``pi_i = g_i - alpha_i S`` with ``S = sum_i g_i`` (needs ``S > 0``).
"""

from __future__ import annotations

import numpy as np


def agent_update(g: float, alpha: float, v: float, rho: float) -> float:
    """One agent's payment for the target ``v`` (the closed form above)."""
    s = ((g - v) + np.sqrt((g - v) ** 2 + 4 * alpha / rho)) / 2
    return g - s


def nash_admm(g: np.ndarray, alpha: np.ndarray, rho: float | None = None, tol: float = 1e-10, max_iter: int = 10_000) -> tuple[np.ndarray, int, list[dict]]:
    """Payments by exchange ADMM; returns (payments, iterations, message log).

    ``rho`` defaults to ``1 / S^2`` from the surplus the agents report in
    aggregate, which makes the gains' scale one; ``tol`` is relative to ``S``."""
    n = len(g)
    scale = max(abs(float(np.sum(g))), 1e-9)
    rho = 1.0 / scale**2 if rho is None else rho
    tol = tol * scale
    pi = np.zeros(n)
    mean, u = 0.0, 0.0
    log: list[dict] = []
    for k in range(1, max_iter + 1):
        targets = pi - mean - u
        new = np.array([agent_update(g[i], alpha[i], targets[i], rho) for i in range(n)])  # each at its own agent
        log.extend({"agent": i, "iteration": k, "payment": float(new[i])} for i in range(n))
        change = float(np.linalg.norm(new - pi))
        pi = new
        mean = float(pi.mean())
        u += mean
        if abs(pi.sum()) <= tol and rho * change <= tol:
            return pi, k, log
    return pi, max_iter, log
