"""SCS backend: LP, QP and SOCP in the conic form of :mod:`conic` (first-order,
moderate accuracy; tighten ``eps_abs`` / ``eps_rel`` for more).  Options are
SCS settings by name."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import scs

from gridlang.compiler.build import Built
from gridlang.errors import GridError, Span
from gridlang.solvers import common, conic

#: SCS's settings (its C ``ScsSettings`` and the Python ``linear_solver``); SCS
#: has no call that lists them
SETTINGS = {
    "normalize": bool, "scale": float, "adaptive_scale": bool, "rho_x": float, "max_iters": int,
    "eps_abs": float, "eps_rel": float, "eps_infeas": float, "alpha": float, "time_limit_secs": float,
    "verbose": bool, "acceleration_lookback": int, "acceleration_interval": int,
    "write_data_filename": str, "log_csv_filename": str, "linear_solver": str,
}

#: SCS status value -> (termination, primal status, dual status); an inaccurate
#: answer at a limit is an iterate, not a solution
STATUS = {
    1: ("optimal", "feasible", "feasible"),
    2: ("almost_optimal", "feasible", "feasible"),
    -2: ("infeasible", "infeasible", "none"),
    -7: ("infeasible", "infeasible", "none"),
    -1: ("unbounded", "none", "infeasible"),
    -6: ("unbounded", "none", "infeasible"),
    -3: ("indeterminate", "unknown", "unknown"),
    -4: ("numerical_error", "unknown", "unknown"),
    -5: ("interrupted", "unknown", "unknown"),
}
LIMITS = {"max_iters": "iteration_limit", "time_limit_secs": "time_limit"}


def solve(built: Built, options: Mapping[str, object], spans: Mapping[str, Span]):
    chosen = common.check_options("SCS", options, spans, SETTINGS, what="setting")
    form = conic.conic_form(built)
    settings = {"verbose": False, "eps_abs": 1e-7, "eps_rel": 1e-7, "max_iters": 200_000, **chosen}
    data = {"P": form.P_solve, "A": form.A, "b": form.b, "c": form.q_solve}
    cone = {"z": form.zero, "l": form.nonneg, "q": [int(k) for k in form.soc]}
    start = time.perf_counter()
    with common.quiet(settings["verbose"]):
        try:
            solver = scs.SCS(data, cone, **settings)
        except (TypeError, ValueError) as exc:
            span = next(iter(spans.values()), built.case.system.span)
            raise GridError(span, f"SCS rejected the settings: {exc}", f"SCS settings: {', '.join(SETTINGS)}") from None
        sol = solver.solve()
    elapsed = time.perf_counter() - start
    info = sol["info"]
    status = STATUS.get(info["status_val"], ("unknown", "unknown", "unknown"))
    limit = next((LIMITS[k] for k in LIMITS if f"reached {k}" in info["status"]), None)
    if limit and status[0] == "almost_optimal":
        status = (limit, "unknown", "unknown")
    conic.check_status(built, status, "SCS")
    return conic.finish(built, form, form.full(np.asarray(sol["x"])), np.asarray(sol["y"]), status, elapsed, "scs")
