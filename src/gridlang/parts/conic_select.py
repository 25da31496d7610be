"""The selection of a conic case's settlement point from the parts (phase 2 of
:func:`gridlang.parts.settle.coordinate`).

A conic case (e.g. ``formulation = distflow_soc``, or an agent's own cone) has
no LP face: as the
central selection does, it takes ``argmin sum_k e_k^2`` over the near-optimal
set ``c'x <= z + delta``, ``delta = SLACK max(1, |z|)``
(:data:`gridlang.settle.SLACK`).  Phase 1 stops at ``CONIC_TOL`` (1e-7 p.u.);
each side sends its own cost ``c_a'x_a`` at the dispatch and the cloud takes
``z`` as the Lagrangian ``sum_a c_a'x_a + lambda'r`` (``r`` the imbalance it
holds, ``lambda`` the prices: the optimum to first order in ``r``).  Phase 2
keeps every side's whole own model (rows, bounds, cones; no prices, no faces)
and adds ONE coupling row, the total cost ``(sum_a c_a'x_a + s - z - delta) /
w = 0`` (``w`` = ``ROW_SCALE`` times the largest target coefficient,
``s >= 0`` a column of the cloud's side, :func:`with_total`), so the exchange's ``argmin sum e^2`` over
the balanced rows is the central one.  The row's multiplier is large, so
this exchange runs at ``RHO2_FACTOR`` times rho, the row scaled by
``ROW_SCALE``.  It stops (:func:`select_conic`) when the coupling rows'
imbalance ``r`` is within ``CONIC_SELECT_TOL`` (1e-8 p.u.: its answers'
accuracy leaves about 3e-9, so phase 1's 1e-9 is out of reach), the
targets' move within ``dual_tol`` and the row's own residual within
``delta``.  What that bounds: the point is the selection over a near-optimal
set whose slack is ``delta`` less what the imbalance is worth at the prices,
``lambda'r`` (the optimum at the imbalance ``r`` is ``z - lambda'r``), plus the
row's residual.  The members' costs move with the slack, linearly: about 45
currency per currency of slack on ``cases/three_microgrids.grid`` (SOC,
measured centrally), where ``delta`` = 6e-6 is 2.7e-4 currency, 4e-7 of the
surplus.  An imbalance of 1e-8 p.u. is worth as much as ``delta`` there, and
the exchange spends it: it ends at ``lambda'r`` = -5.9e-6, i.e. at the
selection at slack 0, within 1.5e-8 of the surplus of the central selection
at slack 0 and 4e-7 of the central settlement (whose own slack is that
far from slack 0).  So the settlement from the parts of a conic case is the
central one to within the central slack's own effect, not to the exchange's
accuracy; 619 + 2,450 iterations on three_microgrids, about 175 s serially (the
network owner's own conic solves three quarters of it), 200 s on a local
Ray cluster.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from gridlang.decompose.exchange import _Run


def with_total(sub, row: int, scale: float, rhs: float | None):
    """A conic case's side for phase 2: its subproblem with one more coupling row, the total
    cost ``(sum_a c_a'x_a + slack - rhs) / scale = 0`` (global id ``row``), to which it
    contributes its own cost ``c_a'x_a / scale``; the cloud's side (``rhs`` given) also holds the
    row's slack, one more column ``>= 0``, and the row's right-hand side."""
    C = sp.vstack([sub.C, sp.csr_matrix(sub.c / scale)], format="csr")
    rows = np.append(sub.rows, row)
    if rhs is None:
        return replace(sub, C=C, d=np.append(sub.d, 0.0), rows=rows)
    r = C.shape[0]
    slack = sp.csr_matrix(([1.0 / scale], ([r - 1], [0])), shape=(r, 1))
    return replace(sub, A=sp.hstack([sub.A, sp.csr_matrix((sub.A.shape[0], 1))], format="csr"), lb=np.append(sub.lb, 0.0), ub=np.append(sub.ub, np.inf),
                   c=np.append(sub.c, 0.0), Q=sp.block_diag([sub.Q, sp.csr_matrix((1, 1))], format="csr"), vlabels=np.append(sub.vlabels, -1),
                   C=sp.hstack([C, slack], format="csr"), d=np.append(sub.d, rhs / scale), rows=rows)


#: a conic case's dispatch (phase 1) stops at this imbalance, p.u.: measured on cases/three_microgrids.grid
#: (SOC), residual balancing from rho 20 reaches 1e-7 in about 620 iterations and not 1e-9 in 1,000
CONIC_TOL = 1e-7
#: a conic case's selection runs at RHO2_FACTOR times the linear case's rho, fixed: the
#: total-cost row's multiplier is large (8e4 to 2e6 per currency on three_microgrids SOC), and so
#: are the coupling rows' (that times the prices).  Measured there (2,500 iterations, row scale
#: 1, against the central settlement at Clarabel's default tolerances): 1 -> costs 4.4e-2 S off
#: (1,000 it.), 30 -> 7.8e-7 S, 100 -> 3.0e-6 S, 300 -> 9.3e-6 S (stalls), 1000 -> Clarabel
#: 'InsufficientProgress'; residual balancing (factor 100) stalls at 1.1e-6 p.u., 8.9e-6 S off
RHO2_FACTOR = 30.0
#: a conic case's selection: the coupling rows' imbalance at which it may stop, p.u. (its
#: answers' own accuracy leaves about 3e-9 on three_microgrids SOC: 1e-9 is not reached)
CONIC_SELECT_TOL = 1e-8
#: the total-cost row's scale, a share of the largest target coefficient.  Measured on
#: three_microgrids SOC (3,000 iterations): 1 -> the row's residual 2.9e-6 currency and the
#: targets' move 4.6e-7 p.u. at the end; 0.1 -> the row's residual below 1e-6 from about 1,100
#: iterations, the move below 1e-7 from about 2,450; the costs 4.1e-7 and 4.0e-7 S off;
#: 0.03 -> the row and the coupling rows oscillate (costs still 2e-4 S off at 2,200).  At 0.1
#: a rho factor of 10 takes the same 2,450 iterations (the owner's solves slower)
ROW_SCALE = 0.1
#: a conic case's selection: the stopping rule is tested every CONIC_CHECK iterations, up to CONIC_MAX_ITER
CONIC_CHECK = 25
CONIC_MAX_ITER = 4000


def imbalance(run: _Run) -> np.ndarray:
    """Every coupling row's imbalance ``sum_a y_a`` at the run's last answers, p.u.
    (the run keeps it as its mean over the row's contributors)."""
    return run.ybar * run.count


def select_conic(run: _Run, agents, rho: float, scale: float, width: float, dual_tol: float) -> bool:
    """Phase 2 of a conic case, in passes of :data:`CONIC_CHECK` iterations until the stopping
    rule of the module doc holds (True) or :data:`CONIC_MAX_ITER` passed (False): the coupling
    rows' imbalance within :data:`CONIC_SELECT_TOL`, the move of the targets within
    ``dual_tol``, and the total-cost row's own residual (``scale`` times its imbalance,
    currency) within ``width``, the near-optimal set's own slack."""
    for _ in range(max(1, CONIC_MAX_ITER // CONIC_CHECK)):
        run.admm(agents, rho, None, balance=False)
        total = imbalance(run)
        if np.linalg.norm(total[:-1]) <= CONIC_SELECT_TOL and scale * abs(total[-1]) <= width and run.dual[-1] <= dual_tol:
            return True
    return False
