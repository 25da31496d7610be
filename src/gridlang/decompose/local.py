"""An agent's subproblem as a solver model built once and updated in place.

At every iteration the agent solves

    min  c'x + x'Qx/2 + (rho/2) |C x - d - v|^2     over its own rows, bounds and cones

for a target ``v`` from the coordinator, i.e. the Hessian ``Q + rho C'C`` and
the linear cost ``c - rho C'(d + v)``.  Only the linear cost changes between
iterations (and the Hessian when ``rho`` does): Clarabel (the default; its
interior point handles the proximal QPs robustly) gets new ``q`` (and ``P``)
through ``update``, HiGHS (``engine="highs"``, QPs without cones) new column
costs through ``changeColsCost`` and keeps its basis as a warm start; both keep
their model.  It answers with its contribution ``y = C x - d`` and nothing else.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from gridlang.decompose.split import Subproblem
from gridlang.errors import GridError, Span


class LocalSolver:
    """Builds the agent's model on first use; ``solve(v, rho)`` returns ``y``."""

    def __init__(self, sub: Subproblem, engine: str = "clarabel") -> None:
        self.sub = sub
        self.engine = engine
        self.rho: float | None = None
        self.x = np.zeros(len(sub.vlabels))
        self.Ct = sub.C.T.tocsr()  # once: the linear cost needs C'(d + v) at every iteration
        self.CtC = (self.Ct @ sub.C).tocsc()
        self._model = None

    # ---------------------------------------------------------------- public
    def solve(self, v: np.ndarray, rho: float) -> np.ndarray:
        sub = self.sub
        q = sub.c - rho * (self.Ct @ (sub.d + v))
        if self._model is None:
            self._model = (_Conic if sub.cones or self.engine == "clarabel" else _Highs)(sub, sub.Q + rho * self.CtC, q)
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


def _fail(sub: Subproblem, status: str) -> GridError:
    return GridError(Span("<decomposition>", 0, 0), f"agent '{sub.agent}': its subproblem ended '{status}'", "check that the agent can operate with the coupling quantities it is asked for")


class _Highs:
    """LP/QP subproblem in a persistent HiGHS model."""

    def __init__(self, sub: Subproblem, H: sp.spmatrix, q: np.ndarray) -> None:
        import highspy

        self.hp = highspy
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        lp = highspy.HighsLp()
        n = len(sub.vlabels)
        lp.num_col_, lp.num_row_ = n, sub.A.shape[0]
        lp.col_cost_, lp.col_lower_, lp.col_upper_ = q, sub.lb, sub.ub
        inf = highspy.kHighsInf
        lp.row_lower_ = np.where(sub.sense == "<", -inf, sub.b)
        lp.row_upper_ = np.where(sub.sense == ">", inf, sub.b)
        A = sub.A.tocsc()
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = n, A.shape[0]
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = A.indptr, A.indices, A.data
        h.passModel(lp)
        self.h, self.n, self.sub = h, n, sub
        self._hessian(H)

    def _hessian(self, H: sp.spmatrix) -> None:
        lower = sp.tril(H, format="csc")
        lower.sort_indices()
        self.h.passHessian(self.n, lower.nnz, int(self.hp.HessianFormat.kTriangular), lower.indptr.astype(np.int32), lower.indices.astype(np.int32), lower.data.astype(float))

    def update(self, q: np.ndarray, H: sp.spmatrix | None) -> None:
        self.h.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), q.astype(float))
        if H is not None:
            self._hessian(H)

    def run(self) -> np.ndarray:
        self.h.run()
        status = self.h.getModelStatus()
        if status != self.hp.HighsModelStatus.kOptimal:
            raise _fail(self.sub, self.h.modelStatusToString(status))
        return np.asarray(self.h.getSolution().col_value)


class _Conic:
    """SOCP subproblem in a persistent Clarabel solver (data updated in place)."""

    def __init__(self, sub: Subproblem, H: sp.spmatrix, q: np.ndarray) -> None:
        import clarabel

        from gridlang.solvers import clarabel as clarabel_backend
        from gridlang.solvers import conic

        self.sub = sub
        self.form = conic.assemble(sub.A, sub.b, sub.sense, sub.lb, sub.ub, H, q, list(sub.cones), np.arange(len(sub.vlabels)), np.full(len(sub.vlabels), "C"))
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        settings.presolve_enable = False  # keeps the data updatable
        self.solver = clarabel.DefaultSolver(self.form.P_solve, self.form.q_solve, self.form.A, self.form.b, clarabel_backend.cones(self.form), settings)
        self._hessian(H)

    def _hessian(self, H: sp.spmatrix) -> sp.csc_matrix:
        """Cache what a new Hessian gives the solver: its kept block, and the fixed columns' pull on q."""
        keep, fixed = self.form.keep, ~self.form.keep
        full = sp.csr_matrix(H)
        self._shift = np.asarray(full[keep][:, fixed] @ self.form.fixed[fixed], dtype=float).ravel()
        return sp.triu(full[keep][:, keep], format="csc")

    def update(self, q: np.ndarray, H: sp.spmatrix | None) -> None:
        P = self._hessian(H) if H is not None else None  # only when rho changed
        q_solve = q[self.form.keep] + self._shift
        if P is not None:
            self.solver.update(P=P, q=q_solve)
        else:
            self.solver.update(q=q_solve)

    def run(self) -> np.ndarray:
        sol = self.solver.solve()
        status = str(sol.status).split(".")[-1]
        if status not in ("Solved", "AlmostSolved"):
            raise _fail(self.sub, status)
        return self.form.full(np.asarray(sol.x))
