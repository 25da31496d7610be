"""SCS backend: LP, QP and SOCP in the conic form of :mod:`conic` (first-order,
moderate accuracy; tighten ``eps_abs`` / ``eps_rel`` for more).  Options are
SCS settings by name."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import scs

from gridlang.compiler.build import Built
from gridlang.errors import GridError
from gridlang.solvers import conic

#: SCS status -> (termination, primal status, dual status)
STATUS = {
    "solved": ("optimal", "feasible", "feasible"),
    "solved_inaccurate": ("almost_optimal", "feasible", "feasible"),
    "infeasible": ("infeasible", "infeasible", "none"),
    "infeasible_inaccurate": ("infeasible", "infeasible", "none"),
    "unbounded": ("unbounded", "none", "infeasible"),
    "unbounded_inaccurate": ("unbounded", "none", "infeasible"),
}


def solve(built: Built, options: Mapping[str, object]):
    form = conic.conic_form(built)
    settings = {"verbose": False, "eps_abs": 1e-7, "eps_rel": 1e-7, "max_iters": 200_000, **options}
    data = {"P": form.P_solve, "A": form.A, "b": form.b, "c": form.q_solve}
    cone = {"z": form.zero, "l": form.nonneg, "q": [int(k) for k in form.soc]}
    start = time.perf_counter()
    try:
        solver = scs.SCS(data, cone, **settings)
    except (TypeError, ValueError) as exc:
        raise GridError(built.case.system.span, f"SCS rejected the options: {exc}", "see the SCS settings, e.g. eps_abs, max_iters, verbose") from None
    sol = solver.solve()
    elapsed = time.perf_counter() - start
    status = STATUS.get(sol["info"]["status"], (sol["info"]["status"].replace(" ", "_"), "unknown", "unknown"))
    conic.check_status(built, status, "SCS")
    return conic.finish(built, form, form.full(np.asarray(sol["x"])), np.asarray(sol["y"]), status, elapsed, "scs")
