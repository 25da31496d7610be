"""An agent's subproblem as a solver model built once and updated in place.

At every iteration the agent solves

    min  c'x + x'Qx/2 + (rho/2) |C x - d - v|_W^2     over its own rows, bounds and cones

for a target ``v`` from the coordinator, i.e. the Hessian ``Q + rho C'WC`` and
the linear cost ``c - rho C'W(d + v)``, ``W`` the diagonal of the rows'
relative penalties (``Subproblem.penalty``, all 1 unless ADMM sets them).
Only the linear cost changes between iterations (and the Hessian's weight
``rho`` now and then): the agent's Clarabel model (:class:`PersistentConic`) gets a new ``q`` (and the new
Hessian's values on a fixed sparsity pattern) through ``update`` and keeps
everything else.  Clarabel's interior point handles these proximal QPs
robustly, where HiGHS's QP solver did not.  The agent answers with its
contribution ``y = C x - d`` and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import clarabel
import numpy as np
import scipy.sparse as sp

from gridlang.clarabel_kit import cones as _cones, name as _status, settings as _settings
from gridlang.errors import GridError, Span

if TYPE_CHECKING:
    from gridlang.decompose.split import Subproblem


@dataclass(frozen=True, slots=True, eq=False)
class Form:
    """The rows Clarabel sees for a subproblem (the conic form of
    :func:`gridlang.solvers.conic.assemble`, the parts a worker needs):
    ``A x + s = b``, ``s`` in zero, non-negative and second-order cones of
    the given sizes, over the columns in ``keep``; the others are ``fixed``.
    It is assembled where the compiler lives and sent to a worker, which then
    needs numpy, scipy.sparse and Clarabel only."""

    A: sp.csc_matrix
    b: np.ndarray
    zero: int
    nonneg: int
    soc: np.ndarray
    keep: np.ndarray
    fixed: np.ndarray

    def full(self, x: np.ndarray) -> np.ndarray:
        """A solution over the kept columns, with the fixed ones put back."""
        out = self.fixed.copy()
        out[self.keep] = x
        return out


def assemble(A, b, sense, lb, ub, cones) -> Form:
    """The :class:`Form` of ``A x (sense) b, lb <= x <= ub`` and cones of columns."""
    from gridlang.solvers import conic  # the compiler's side only: a worker gets the Form

    n = A.shape[1]
    f = conic.assemble(sp.csr_matrix(A), b, sense, lb, ub, None, np.zeros(n), list(cones), np.arange(n), np.full(n, "C"))
    return _without_constant_rows(Form(f.A, f.b, f.zero, f.nonneg, f.soc, f.keep, f.fixed))


def _without_constant_rows(form: Form) -> Form:
    """The form without the equality and inequality rows whose columns are all fixed
    (``0 = b`` or ``0 <= b``) and which hold within :data:`FEASIBILITY_TOL`, the central
    solve's tolerance.  Such a row constrains nothing, but Clarabel, solving to
    :data:`TOL`, calls ``0 = 1.3e-8`` infeasible (a plan fixed at a MILP's
    ``units = 0.99999997``).  A row violated by more is kept: the agent's solve
    then fails and says so."""
    from gridlang.solvers.result import FEASIBILITY_TOL

    A = sp.csr_matrix(form.A)
    m = A.shape[0]
    rows = np.arange(m)
    empty = np.diff(A.indptr) == 0
    zero, nonneg = rows < form.zero, (rows >= form.zero) & (rows < form.zero + form.nonneg)
    drop = empty & ((zero & (np.abs(form.b) <= FEASIBILITY_TOL)) | (nonneg & (form.b >= -FEASIBILITY_TOL)))
    if not drop.any():
        return form
    kept = ~drop
    return Form(sp.csc_matrix(A[kept]), form.b[kept], int((zero & kept).sum()), int((nonneg & kept).sum()), form.soc, form.keep, form.fixed)


def prepare(sub: Subproblem) -> Form:
    """An agent's :class:`Form`, to build its model from without the compiler."""
    return assemble(sub.A, sub.b, sub.sense, sub.lb, sub.ub, sub.cones)


#: Clarabel's gap and feasibility tolerances for the agents' subproblems (see PersistentConic._solver)
TOL = 1e-10


class PersistentConic:
    """``min x'(H0 + w H1)x/2 + q'x`` over rows, bounds and cones, in one Clarabel
    solver whose ``q`` and weight ``w`` are updated in place.

    The solver sees the columns not fixed by their bounds, so a Hessian gives
    it the upper triangle of its kept block ``K = K0 + w K1`` and pulls the
    linear cost by ``H[kept, fixed] x_fixed = s0 + w s1``.  ``K0`` and ``K1``
    are stored as value vectors on the union of their patterns, so a new
    weight is one axpy, never a sparse slice.  Clarabel runs with presolve
    off (the data stay updatable) and without iterative refinement of its
    linear solves (about half of each solve); a solve that does not end
    ``Solved`` is repeated once by a model with refinement on."""

    def __init__(self, A: sp.spmatrix, b, sense, lb, ub, H0: sp.spmatrix, H1: sp.spmatrix, weight: float, q: np.ndarray, cones, who: str, form: Form | None = None) -> None:
        self.who = who
        self.form = form = assemble(A, b, sense, lb, ub, cones) if form is None else form
        keep, fixed = form.keep, ~form.keep
        parts = [sp.csr_matrix(H)[keep] for H in (H0, H1)]
        self._shift = [np.asarray(h[:, fixed] @ form.fixed[fixed], dtype=float).ravel() for h in parts]
        upper = [sp.triu(h[:, keep], format="coo") for h in parts]
        m = int(keep.sum())
        at = np.concatenate([u.col.astype(np.int64) * m + u.row for u in upper])  # column-major position of each entry (int64: m * m passes 2**31 at 46,341 columns)
        where, slot = np.unique(at, return_inverse=True)  # the union pattern, in CSC order
        self._values = [np.bincount(s, u.data, len(where)) for s, u in zip(np.split(slot, [len(upper[0].data)]), upper)]
        self._pattern = (where % m, np.searchsorted(where // m, np.arange(m + 1)), (m, m))  # indices, indptr, shape
        self.weight = weight
        self.q = self._q(q)
        self.solver = self._solver(refine=False)

    def _P(self) -> sp.csc_matrix:
        indices, indptr, shape = self._pattern
        return sp.csc_matrix((self._values[0] + self.weight * self._values[1], indices, indptr), shape=shape)

    def _q(self, q: np.ndarray) -> np.ndarray:
        return q[self.form.keep] + self._shift[0] + self.weight * self._shift[1]

    def _solver(self, refine: bool):
        # no presolve: the data stay updatable.  Gap and feasibility to 1e-10 (Clarabel: 1e-8): a coupling row sums
        # thousands of answers, and at 1e-8 their errors left 10,000 copper-plate agents above the 1e-5 p.u. test for good
        settings = _settings(presolve_enable=False, iterative_refinement_enable=refine, tol_gap_abs=TOL, tol_gap_rel=TOL, tol_feas=TOL)
        f = self.form
        return clarabel.DefaultSolver(self._P(), self.q, f.A, f.b, _cones(f), settings)

    def update(self, q: np.ndarray, weight: float) -> None:
        """A new linear cost, and new Hessian values when the weight changed."""
        if weight != self.weight:
            self.weight = weight
            self.solver.update(P=self._values[0] + weight * self._values[1])
        self.q = self._q(q)
        self.solver.update(q=self.q)

    def run(self) -> np.ndarray:
        sol = self.solver.solve()
        if _status(sol) != "Solved":
            self.solver = self._solver(refine=True)
            sol = self.solver.solve()
        status = _status(sol)
        if status not in ("Solved", "AlmostSolved"):
            raise GridError(Span("<decomposition>", 0, 0), f"{self.who}: its subproblem ended '{status}'", "check that the agent can operate with the coupling quantities it is asked for")
        return self.form.full(np.asarray(sol.x))


class LocalSolver:
    """Builds the agent's model on first use; ``solve(v, rho)`` returns ``y``."""

    def __init__(self, sub: Subproblem, form: Form | None = None) -> None:
        self.sub = sub
        self.form = form  # assembled here at the first solve unless given (a worker is given it)
        self.x = np.zeros(len(sub.vlabels))
        # once: the linear cost needs C'W(d + v) at every iteration, W the rows' relative penalties
        self.Ct = (sub.C.T if sub.penalty is None else sub.C.T @ sp.diags(sub.penalty)).tocsr()
        self.CtC = (self.Ct @ sub.C).tocsc()
        self._model: PersistentConic | None = None

    def solve(self, v: np.ndarray, rho: float) -> np.ndarray:
        sub = self.sub
        q = sub.c - rho * (self.Ct @ (sub.d + v))
        if self._model is None:
            self._model = PersistentConic(sub.A, sub.b, sub.sense, sub.lb, sub.ub, sub.Q, self.CtC, rho, q, sub.cones, f"agent '{sub.agent}'", self.form)
        else:
            self._model.update(q, rho)
        self.x = self._model.run()
        return self.contribution()

    def contribution(self) -> np.ndarray:
        return self.sub.C @ self.x - self.sub.d

    def cost(self) -> float:
        """Its own cost at the current point (without the proximal term)."""
        x = self.x
        return float(self.sub.c @ x + 0.5 * x @ (self.sub.Q @ x))
