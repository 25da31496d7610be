"""The agents' persistent subproblems on real subproblems of the three
microgrids (LP and SOC) and the prosumers, with the targets an ADMM run sends
them: the model updated in place answers as a new model would, and its
objective is that of a tight-tolerance solve."""

from __future__ import annotations

import clarabel
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import CASES

import gridlang
from gridlang.decompose.admm import Settings, admm
from gridlang.decompose.local import LocalSolver
from gridlang.decompose.split import split
from gridlang.solvers import clarabel as clarabel_backend
from gridlang.solvers import conic

ITERATIONS = 8  # targets recorded per case


class Recorder:
    """A serial executor that keeps the targets the coordinator sends."""

    def __init__(self, subproblems) -> None:
        self.local = {s.agent: LocalSolver(s) for s in subproblems}
        self.sent: list[tuple[dict, float]] = []

    def solve_all(self, targets, rho):
        self.sent.append(({a: np.array(v) for a, v in targets.items()}, float(rho)))
        return {a: self.local[a].solve(v, rho) for a, v in targets.items()}


CASES_ = {
    "microgrids_lp": (CASES / "three_microgrids.grid", {"formulation": "lindistflow"}),
    "microgrids_soc": (CASES / "three_microgrids.grid", {}),
    "prosumers": (CASES / "prosumers.grid", {}),
}


@pytest.fixture(scope="module", params=list(CASES_))
def recorded(request):
    path, load = CASES_[request.param]
    parts = split(gridlang.load(path, **load).built)
    rec = Recorder(parts.subproblems)
    admm(parts, rec, Settings(max_iter=ITERATIONS))
    return parts, rec.sent


def proximal(q, H, x) -> float:
    return float(q @ x + 0.5 * x @ (H @ x))


def reference(sub, q, H) -> np.ndarray:
    """The subproblem by Clarabel at tight tolerances."""
    n = len(sub.vlabels)
    form = conic.assemble(sp.csr_matrix(sub.A), sub.b, sub.sense, sub.lb, sub.ub, H, q, list(sub.cones), np.arange(n), np.full(n, "C"))
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = 1e-12
    settings.tol_ktratio = 1e-10
    settings.static_regularization_constant = 1e-12
    sol = clarabel.DefaultSolver(form.P_solve, form.q_solve, form.A, form.b, clarabel_backend.cones(form), settings).solve()
    assert str(sol.status).endswith("Solved")
    return form.full(np.asarray(sol.x))


def test_a_model_updated_in_place_answers_as_a_new_one(recorded) -> None:
    """Every agent over the recorded targets: the proximal objective of the
    persistent model's point within 1e-6 (relative, floor 1e-6) of a new
    model's and of a tight-tolerance solve's, and its contribution y within
    1e-4 p.u. of the tight one (ADMM's own tolerance per coupling row: the
    default tolerances leave y accurate to about that on these subproblems)."""
    parts, sent = recorded
    for sub in parts.subproblems:
        kept = LocalSolver(sub)
        for targets, rho in sent:
            v = targets[sub.agent]
            y = kept.solve(v, rho)
            fresh = LocalSolver(sub)
            fresh.solve(v, rho)
            q = sub.c - rho * (kept.Ct @ (sub.d + v))
            H = sub.Q + rho * kept.CtC
            x_ref = reference(sub, q, H)
            assert proximal(q, H, kept.x) == pytest.approx(proximal(q, H, x_ref), rel=1e-6, abs=1e-6)
            assert proximal(q, H, kept.x) == pytest.approx(proximal(q, H, fresh.x), rel=1e-6, abs=1e-6)
            np.testing.assert_allclose(y, sub.C @ x_ref - sub.d, rtol=0, atol=1e-4)
