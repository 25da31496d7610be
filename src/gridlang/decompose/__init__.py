"""Solve a case with agents by decomposition: split, iterate, put the answer back.

``solve(built, method="admm", executor="serial", **settings)`` checks the
method's settings, splits the compiled case by agent (:mod:`split`), runs the
coordinator (:mod:`admm` or :mod:`atc`) with the agents' persistent
subproblems in an executor (:mod:`executors`), and returns a
:class:`~gridlang.solvers.result.Result` like a central solve, with the
convergence trace in its dataset (``admm_primal``, ``admm_dual``, the tests
they are held to ``admm_eps_primal``, ``admm_eps_dual``, the largest coupling
violation ``admm_worst``, ``admm_rho``, ``admm_stale`` over ``iteration``).
``method="auto"`` picks ATC or ADMM by the case's ownership (:func:`choose`).

A decomposition says ``converged`` only when the *whole* model holds at the
assembled point as a central solution must: the largest violation of any
row, bound or cone, ``max(primal_residual, cone_violation)``, is at most
:data:`~gridlang.solvers.result.FEASIBILITY_TOL`.  A run whose coupling test
passed but whose point does not hold the model ends ``not_converged``; every
run that did not converge says how far its point is (the residual, and the
coupling rows furthest from holding).

The package itself imports nothing heavy: the functions live in :mod:`run`
and are looked up on first use, so a worker process that unpickles an
agent's subproblem (:mod:`split`, :mod:`local`) loads numpy, scipy.sparse and
Clarabel only, never linopy or xarray.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gridlang.decompose.run import check, choose, distance, settings_for, solve, trace_dataset

__all__ = ["check", "choose", "distance", "settings_for", "solve", "trace_dataset"]


def __getattr__(name: str) -> object:
    """``solve`` and the rest of :mod:`run`'s names (``Settings``, ``Run``, ...), imported on first use."""
    if name.startswith("__"):
        raise AttributeError(name)
    run = import_module("gridlang.decompose.run")
    if name in globals():  # a submodule that importing run has just loaded
        return globals()[name]
    try:
        return getattr(run, name)
    except AttributeError:
        raise AttributeError(f"module 'gridlang.decompose' has no attribute '{name}'") from None
