"""The few pieces of Clarabel's Python API that every caller shares.

Kept apart from :mod:`gridlang.solvers` (which loads the model compiler) so
that a decomposition worker can build its subproblem with numpy, scipy and
Clarabel alone.  ``form`` is any object with the row counts ``zero`` and
``nonneg`` and the cone sizes ``soc``, in that order of rows.
"""

from __future__ import annotations

import clarabel


def cones(form) -> list:
    """Clarabel's cone list for the rows of a conic form: equalities, inequalities, second-order cones."""
    out = [clarabel.ZeroConeT(form.zero)] if form.zero else []
    if form.nonneg:
        out.append(clarabel.NonnegativeConeT(form.nonneg))
    return out + [clarabel.SecondOrderConeT(int(k)) for k in form.soc]


def name(sol) -> str:
    """A Clarabel solution's status as a plain name ('Solved', 'MaxIterations', ...)."""
    return str(sol.status).split(".")[-1]


def settings(**values: object) -> clarabel.DefaultSettings:
    """Clarabel's settings, quiet, with ``values`` set by name."""
    out = clarabel.DefaultSettings()
    out.verbose = False
    for key, value in values.items():
        setattr(out, key, value)
    return out
