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

Each agent is a :class:`Bargainer` holding its ``g_i`` and ``alpha_i``, here
or in its own process (:class:`ProcessBargainers`); the coordinator
(:func:`nash_admm`) sends it a target and receives only its payment, and logs
every message.

**Pairwise payments.**  Only the net payments ``pi_i`` are unique: on a
trade graph with a cycle, any circulation can be added to payments between
pairs.  The pairwise payments reported are the least-squares ones over all
pairs of members,

    min sum_{i<j} f_ij^2   s.t.  sum_{j != i} f_ij = pi_i,  f_ij = -f_ji,

whose unique solution (``sum_i pi_i = 0``) is ``f_ij = (pi_i - pi_j) / n``;
member i pays member j ``max(f_ij, 0)`` (:func:`pairwise`).
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass

import numpy as np

#: CF-ADMM's payments agree with the closed form within this share of max(1, |S|)
AGREE = 1e-6


def agent_update(g: float, alpha: float, v: float, rho: float) -> float:
    """One agent's payment for the target ``v`` (the closed form above)."""
    s = ((g - v) + np.sqrt((g - v) ** 2 + 4 * alpha / rho)) / 2
    return g - s


@dataclass(frozen=True, slots=True)
class Bargainer:
    """One agent of CF-ADMM: its saving ``g`` and power ``alpha`` stay here."""

    g: float
    alpha: float

    def answer(self, target: float, rho: float) -> float:
        return float(agent_update(self.g, self.alpha, target, rho))


class SerialBargainers:
    """Every agent here, answered one after the other."""

    def __init__(self, g: np.ndarray, alpha: np.ndarray) -> None:
        self.agents = [Bargainer(float(gi), float(ai)) for gi, ai in zip(g, alpha)]

    def answer_all(self, targets: np.ndarray, rho: float) -> np.ndarray:
        return np.array([a.answer(float(v), rho) for a, v in zip(self.agents, targets)])

    def close(self) -> None:
        pass


def _serve(conn, g: float, alpha: float) -> None:
    """One agent's process: its saving and power arrive once; then targets in, payments out."""
    agent = Bargainer(g, alpha)
    conn.send(os.getpid())
    while (message := conn.recv()) is not None:
        conn.send(agent.answer(*message))


class ProcessBargainers:
    """Every agent in its own process (``multiprocessing``, spawned): the
    coordinator sends each its target and ``rho`` and receives only its payment."""

    def __init__(self, g: np.ndarray, alpha: np.ndarray) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes, self.procs = [], []
        for gi, ai in zip(g, alpha):
            mine, theirs = context.Pipe()
            proc = context.Process(target=_serve, args=(theirs, float(gi), float(ai)), daemon=True)
            proc.start()
            theirs.close()
            self.pipes.append(mine)
            self.procs.append(proc)
        self.pids = [pipe.recv() for pipe in self.pipes]

    def answer_all(self, targets: np.ndarray, rho: float) -> np.ndarray:
        for pipe, v in zip(self.pipes, targets):  # every agent first, so they answer in parallel
            pipe.send((float(v), rho))
        return np.array([pipe.recv() for pipe in self.pipes])

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(None)
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()


#: where CF-ADMM's agents run: here, or each in its own process
EXECUTORS = {"serial": SerialBargainers, "processes": ProcessBargainers}


def nash_admm(g: np.ndarray, alpha: np.ndarray, rho: float | None = None, tol: float = 1e-10, max_iter: int = 10_000, executor: str = "serial") -> tuple[np.ndarray, int, list[dict]]:
    """Payments by exchange ADMM; returns (payments, iterations, message log).

    ``rho`` defaults to ``1 / S^2`` from the surplus the agents report in
    aggregate, which makes the gains' scale one; ``tol`` is relative to ``S``.
    An agent with no power (``alpha_i = 0``) pays ``g_i``: its update has no
    interior optimum, so it is the limit of the formula.  ``executor``:
    ``serial`` (every agent here) or ``processes`` (each in its own process);
    only targets and payments cross (the log holds them)."""
    agents = EXECUTORS.get(executor, ProcessBargainers)(g, alpha)
    n = len(g)
    scale = max(abs(float(np.sum(g))), 1e-9)
    rho = 1.0 / scale**2 if rho is None else rho
    tol = tol * scale
    pi = np.zeros(n)
    mean, u = 0.0, 0.0
    log: list[dict] = []
    try:
        for k in range(1, max_iter + 1):
            targets = pi - mean - u
            new = agents.answer_all(targets, rho)  # each at its own agent
            log.extend({"agent": i, "iteration": k, "target": float(targets[i]), "payment": float(new[i])} for i in range(n))
            change = float(np.linalg.norm(new - pi))
            pi = new
            mean = float(pi.mean())
            u += mean
            if abs(pi.sum()) <= tol and rho * change <= tol:
                return pi, k, log
        return pi, max_iter, log
    finally:
        agents.close()


def pairwise(payment: np.ndarray) -> np.ndarray:
    """``P[i, j]``: what member i pays member j, ``max((pi_i - pi_j) / n, 0)`` (see the module doc).

    ``sum_j P[i, j] - sum_j P[j, i] = pi_i`` whenever ``sum_i pi_i = 0``."""
    payment = np.asarray(payment, dtype=float)
    flow = (payment[:, None] - payment[None, :]) / len(payment)
    return np.maximum(flow, 0.0)
