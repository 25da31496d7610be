"""An agent's subproblem as a solver model built once and updated in place.

At every iteration the agent solves

    min  c'x + x'Qx/2 + (rho/2) |C x - d - v|^2     over its own rows, bounds and cones

for a target ``v`` from the coordinator, i.e. the Hessian ``Q + rho C'C`` and
the linear cost ``c - rho C'(d + v)``.  Only the linear cost changes between
iterations (and the Hessian when ``rho`` does): the agent's Clarabel model
(:class:`PersistentConic`) gets a new ``q`` (and ``P``) through ``update`` and
keeps everything else.  Clarabel's interior point handles these proximal QPs
robustly, where HiGHS's QP solver did not.  The agent answers with its
contribution ``y = C x - d`` and nothing else.
"""

from __future__ import annotations

import clarabel
import numpy as np
import scipy.sparse as sp

from gridlang.decompose.split import Subproblem
from gridlang.errors import GridError, Span
from gridlang.solvers import clarabel as clarabel_backend
from gridlang.solvers import conic


class PersistentConic:
    """``min x'Hx/2 + q'x`` over rows, bounds and cones, in one Clarabel solver
    whose ``q`` and ``H`` are updated in place (same sparsity, presolve off)."""

    def __init__(self, A: sp.spmatrix, b, sense, lb, ub, H: sp.spmatrix, q: np.ndarray, cones, who: str) -> None:
        n = A.shape[1]
        self.who = who
        self.form = conic.assemble(sp.csr_matrix(A), b, sense, lb, ub, H, q, list(cones), np.arange(n), np.full(n, "C"))
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        settings.presolve_enable = False  # keeps the data updatable
        self.solver = clarabel.DefaultSolver(self.form.P_solve, self.form.q_solve, self.form.A, self.form.b, clarabel_backend.cones(self.form), settings)
        self._hessian(H)

    def _hessian(self, H: sp.spmatrix) -> sp.csc_matrix:
        """Cache what a Hessian gives the solver: its kept block, and the fixed columns' pull on q."""
        keep, fixed = self.form.keep, ~self.form.keep
        full = sp.csr_matrix(H)
        self._shift = np.asarray(full[keep][:, fixed] @ self.form.fixed[fixed], dtype=float).ravel()
        return sp.triu(full[keep][:, keep], format="csc")

    def update(self, q: np.ndarray, H: sp.spmatrix | None = None) -> None:
        """A new linear cost, and a new Hessian only when it changed."""
        P = self._hessian(H) if H is not None else None
        q_solve = q[self.form.keep] + self._shift
        if P is not None:
            self.solver.update(P=P, q=q_solve)
        else:
            self.solver.update(q=q_solve)

    def run(self) -> np.ndarray:
        sol = self.solver.solve()
        status = str(sol.status).split(".")[-1]
        if status not in ("Solved", "AlmostSolved"):
            raise GridError(Span("<decomposition>", 0, 0), f"{self.who}: its subproblem ended '{status}'", "check that the agent can operate with the coupling quantities it is asked for")
        return self.form.full(np.asarray(sol.x))


class LocalSolver:
    """Builds the agent's model on first use; ``solve(v, rho)`` returns ``y``."""

    def __init__(self, sub: Subproblem) -> None:
        self.sub = sub
        self.rho: float | None = None
        self.x = np.zeros(len(sub.vlabels))
        self.Ct = sub.C.T.tocsr()  # once: the linear cost needs C'(d + v) at every iteration
        self.CtC = (self.Ct @ sub.C).tocsc()
        self._model: PersistentConic | None = None

    def solve(self, v: np.ndarray, rho: float) -> np.ndarray:
        sub = self.sub
        q = sub.c - rho * (self.Ct @ (sub.d + v))
        if self._model is None:
            self._model = PersistentConic(sub.A, sub.b, sub.sense, sub.lb, sub.ub, sub.Q + rho * self.CtC, q, sub.cones, f"agent '{sub.agent}'")
        else:
            self._model.update(q, sub.Q + rho * self.CtC if rho != self.rho else None)
        self.rho = rho
        self.x = self._model.run()
        return self.contribution()

    def contribution(self) -> np.ndarray:
        return self.sub.C @ self.x - self.sub.d

    def cost(self) -> float:
        """Its own cost at the current point (without the proximal term)."""
        x = self.x
        return float(self.sub.c @ x + 0.5 * x @ (self.sub.Q @ x))
