"""SOCP scaling: gridlang's ``distflow_soc`` against hand-written CVXPY, both solved with Clarabel.

For every feeder size (buses x steps) the synthetic feeder of ``feeder.py``
is written as ``.grid`` text with the network formulation switched from
``lindistflow`` to ``distflow_soc`` (the DistFlow branch-flow model with the
second-order-cone relaxation), and solved two ways:

* **gridlang**: ``gridlang.load(text)`` (parse + resolve), ``.built``
  (compile to linopy plus cone blocks), ``gridlang.solvers.conic.conic_form``
  (the conic assembly, timed on its own), then ``case.solve("clarabel")``,
  which assembles the conic form again, runs Clarabel and unpacks the
  solution into the result dataset.  End to end = load + built + solve call.
  Clarabel's own time is ``result.solve_time`` (solver set-up + solve);
  everything else is gridlang's overhead, reported as the *non-solver share*.
* **cvxpy**: :func:`build_cvxpy`, a vectorised CVXPY model of the identical
  problem (matrix variables ``[element, t]``, sparse bus/line incidence
  matrices for the nodal balances and voltage drops, one stacked
  ``cp.SOC`` constraint for all rotated cones), solved with
  ``problem.solve(solver="CLARABEL")``.  End to end = build + CVXPY
  canonicalisation + solve + unpacking.
* **cvxpy\***: the same CVXPY model with Clarabel's iterative refinement
  off, the setting gridlang's Clarabel backend runs with by default (it
  repeats a solve that does not end ``Solved`` with refinement on), so that
  the two can also be compared with identical solver settings.

The problem, in per unit (``feeder.per_unit``; the kinds ``load``, ``pv``,
``storage``, ``grid`` of the standard library, with the feeder's data)::

    min   sum_t dt (import_price[t] import[t] - export_price[t] export[t])
    grid     import, export >= 0, q_grid free                       at the slack bus
    load     injects -p_nom * residential[t], -q_nom * residential[t]
    pv       0 <= p_pv[t] <= capacity * sun[t]
    storage  0 <= charge, discharge <= power,  soc_min E <= soc <= E
             soc[t] = soc[t-1] + dt (eta charge[t] - discharge[t] / eta)   (t > 0)
             soc[0] = soc_init E + dt (eta charge[0] - discharge[0] / eta)
             soc[T-1] >= soc_final E
    network  P, Q free; isq >= 0; vmin^2 <= w <= vmax^2; w[slack] = v_set^2
             sum_{l into b} (P - r isq) + inj_p[b] = sum_{l out of b} P    (Q with x)
             w[to(l)] = w[from(l)] - 2 (r P + x Q) + (r^2 + x^2) isq
             P^2 + Q^2 <= w[from(l)] isq                                   (rotated cone)

Each measurement runs in a fresh subprocess (``--worker gridlang|cvxpy``)
after a warm-up solve of a 12-bus feeder in the same process, so imports,
grammar loading and CVXPY's first-use costs are left out.  Times are
``time.perf_counter`` wall-clock.  The two objectives are compared
(|a - b| <= 1e-6 max(|a|, |b|)).  Targets are printed next to the ratios,
not asserted: non-solver share <= 20 % at 1,000 buses, and gridlang end to
end >= 5x faster than CVXPY end to end.

``--profile N`` also runs cProfile over a second, untimed gridlang run (load,
built, solve: conic assembly, Clarabel, unpacking) in the worker and prints
the N functions with the largest cumulative time; Clarabel itself is one
call (``DefaultSolver.solve``), so everything else listed is gridlang's
overhead.

Usage::

    python benchmarks/socp_scaling.py                    # 100,500,1000,2000 buses x 24 steps
    python benchmarks/socp_scaling.py --quick            # 100 and 300 buses x 24 steps
    python benchmarks/socp_scaling.py --sizes 1000 --profile 25 --json socp.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import feeder  # noqa: E402  (imported as a module: another engineer may change its API)
from common import grid_table, ints, version
from feeder import make_feeder, per_unit  # noqa: E402

TOOLS = ("gridlang", "cvxpy", "cvxpy_norefine")
RESULT_MARK = "@@RESULT "
WARMUP_BUSES = 12
REL_TOL = 1e-6

# targets printed next to the measurements (not asserted)
TARGET_NON_SOLVER_SHARE = 0.20  # gridlang: (end to end - Clarabel) / end to end ...
TARGET_SHARE_AT_BUSES = 1000  # ... at this size
TARGET_VS_CVXPY = 5.0  # cvxpy end to end >= 5 x gridlang end to end

#: how the CVXPY model is solved: Clarabel with its default settings, canonicalised
#: with the SciPy backend (CVXPY falls back to it anyway for cp.SOC with an axis,
#: with a warning).  The ``cvxpy_norefine`` runs also pass gridlang's Clarabel
#: setting (no iterative refinement), so that the two share the solver's settings.
CVXPY_SOLVE: dict[str, Any] = {"solver": "CLARABEL", "canon_backend": "SCIPY"}
NO_REFINEMENT: dict[str, Any] = {"iterative_refinement_enable": False}


# ============================================================ the case text


def grid_text(f: Any) -> str:
    """The feeder as ``.grid`` text with the SOC-relaxed DistFlow network."""
    text = feeder.render_grid(f)
    if "uses lindistflow" not in text:
        raise RuntimeError("feeder.render_grid no longer writes 'uses lindistflow'; adapt grid_text()")
    return text.replace("uses lindistflow", "uses distflow_soc", 1)


# ============================================================ hand-written CVXPY


def build_cvxpy(f: Any) -> Any:
    """The feeder problem with DistFlow + SOC relaxation as a vectorised ``cvxpy.Problem``.

    Every variable is a matrix ``[element, t]`` (the grid's a ``[1, t]`` row);
    the line-to-bus incidences are sparse constant matrices, so each block of
    constraints is one CVXPY expression and nothing loops over buses, lines
    or steps.  The rotated cones ``P^2 + Q^2 <= w[from] isq`` (with ``w``,
    ``isq >= 0``) are one ``cp.SOC`` over stacked rows, column by column::

        |(2 P, 2 Q, w_from - isq)| <= w_from + isq

    (``cp.quad_over_lin`` would need one scalar denominator per atom, i.e. a
    loop over lines and steps.)
    """
    import cvxpy as cp
    import numpy as np
    import scipy.sparse as sp

    pu = per_unit(f)
    n_bus, T = f.n_buses, f.steps
    n_line = n_bus - 1
    n_pv, n_st = len(f.pv_bus), len(f.storage_bus)
    dt, eta, energy = pu.dt, pu.storage_efficiency, pu.storage_energy

    def incidence(bus_of: Any, count: int) -> sp.csr_matrix:
        """[bus, element] 0/1 matrix: element k sits at bus bus_of[k]."""
        return sp.csr_matrix((np.ones(count), (np.asarray(bus_of), np.arange(count))), shape=(n_bus, count))

    into = incidence(f.line_to, n_line)  # line l ends at bus to(l)
    out_of = incidence(f.line_from, n_line)  # line l starts at bus from(l)
    at_slack = incidence([pu.slack], 1)
    pv_at = incidence(f.pv_bus, n_pv)
    st_at = incidence(f.storage_bus, n_st)
    r = sp.diags(pu.r)
    x = sp.diags(pu.x)
    z2 = sp.diags(pu.r**2 + pu.x**2)

    # fixed loads: their (negative) injection is a constant per bus
    demand_p, demand_q = np.zeros((n_bus, T)), np.zeros((n_bus, T))
    np.add.at(demand_p, f.load_bus, pu.load_p)
    np.add.at(demand_q, f.load_bus, pu.load_q)

    # ---- variables
    imp = cp.Variable((1, T), name="grid_import")
    exp = cp.Variable((1, T), name="grid_export")
    q_grid = cp.Variable((1, T), name="grid_q")
    pv_p = cp.Variable((n_pv, T), name="pv_p")
    charge = cp.Variable((n_st, T), name="charge")
    discharge = cp.Variable((n_st, T), name="discharge")
    soc = cp.Variable((n_st, T), name="soc")
    P = cp.Variable((n_line, T), name="P")
    Q = cp.Variable((n_line, T), name="Q")
    isq = cp.Variable((n_line, T), name="isq")
    w = cp.Variable((n_bus, T), name="w")

    cons = [
        imp >= 0,
        exp >= 0,
        pv_p >= 0,
        pv_p <= pu.pv_pmax,
        charge >= 0,
        charge <= pu.storage_power,
        discharge >= 0,
        discharge <= pu.storage_power,
        soc >= pu.storage_soc_min * energy,
        soc <= energy,
        isq >= 0,
        w >= pu.wmin[:, None],
        w <= pu.wmax[:, None],
    ]

    # ---- storage
    net_in = dt * (eta * charge - discharge / eta)
    cons += [
        soc[:, 1:] == soc[:, :-1] + net_in[:, 1:],
        soc[:, 0] == pu.storage_soc_init * energy + net_in[:, 0],
        soc[:, T - 1] >= pu.storage_soc_final * energy,
    ]

    # ---- distflow with the SOC relaxation
    inj_p = at_slack @ (imp - exp) + pv_at @ pv_p + st_at @ (discharge - charge) - demand_p
    inj_q = at_slack @ q_grid - demand_q
    w_from = out_of.T @ w  # [line, t]
    w_to = into.T @ w
    cons += [
        w[pu.slack, :] == pu.w_slack,
        into @ (P - r @ isq) + inj_p == out_of @ P,
        into @ (Q - x @ isq) + inj_q == out_of @ Q,
        w_to == w_from - 2 * (r @ P + x @ Q) + z2 @ isq,
    ]
    u, v = cp.vec(w_from, order="F"), cp.vec(isq, order="F")
    stacked = cp.vstack([2 * cp.vec(P, order="F"), 2 * cp.vec(Q, order="F"), u - v])  # [3, line * t]
    cons.append(cp.SOC(u + v, stacked, axis=0))

    cost = cp.sum(cp.multiply(pu.import_price * dt, imp) - cp.multiply(pu.export_price * dt, exp))
    return cp.Problem(cp.Minimize(cost), cons)


# ============================================================ workers (one tool per process)


def _error_text(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:200]


class _ClarabelSpy:
    """Stands in for the ``clarabel`` module inside ``gridlang.solvers.clarabel``.

    Everything is passed through; the solution of the last ``DefaultSolver``
    is kept, so that the worker can read Clarabel's iteration count and its
    own solve time (gridlang's Result reports neither).  Costs one Python
    call per solve."""

    def __init__(self, module: Any) -> None:
        self._module = module
        self.last: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def DefaultSolver(self, *args: Any, **kwargs: Any) -> Any:  # noqa: N802 (mirrors clarabel's name)
        solver = self._module.DefaultSolver(*args, **kwargs)
        spy = self

        class Solve:
            def solve(self) -> Any:
                spy.last = solver.solve()
                return spy.last

            def __getattr__(self, name: str) -> Any:
                return getattr(solver, name)

        return Solve()


def worker_gridlang(n_buses: int, steps: int, seed: int, profile: int) -> dict[str, Any]:
    import gridlang
    import gridlang.solvers.clarabel as backend
    from gridlang.solvers.conic import conic_form

    res: dict[str, Any] = {"tool": "gridlang"}
    spy = backend.clarabel = _ClarabelSpy(backend.clarabel)
    small = gridlang.load(grid_text(make_feeder(WARMUP_BUSES, steps, seed)))  # warm-up, full pipeline
    conic_form(small.built)
    small.solve("clarabel")
    del small

    text = grid_text(make_feeder(n_buses, steps, seed))
    res["lines"] = text.count("\n")
    gc.collect()
    t0 = time.perf_counter()
    case = gridlang.load(text)
    t1 = time.perf_counter()
    built = case.built
    t2 = time.perf_counter()
    form = conic_form(built)
    t3 = time.perf_counter()
    result = case.solve("clarabel")
    t4 = time.perf_counter()

    res["load_s"] = t1 - t0  # parse + resolve
    res["build_s"] = t2 - t1  # compile to linopy + cones
    res["conic_s"] = t3 - t2  # conic assembly on its own (the solve call repeats it)
    res["solve_call_s"] = t4 - t3  # case.solve("clarabel"): conic assembly + Clarabel + unpacking
    res["clarabel_s"] = float(result.solve_time)  # set-up + solve, timed by gridlang
    if spy.last is not None:
        res["clarabel_internal_s"] = float(spy.last.solve_time)  # as Clarabel reports it
        res["iterations"] = int(spy.last.iterations)
    res["unpack_s"] = res["solve_call_s"] - res["conic_s"] - res["clarabel_s"]  # estimate
    res["total_s"] = (t2 - t0) + (t4 - t3)  # the standalone conic_form is not counted twice
    res["non_solver_s"] = res["total_s"] - res["clarabel_s"]
    res["non_solver_share"] = res["non_solver_s"] / res["total_s"]
    res["objective"] = float(result.objective)
    res["termination"] = str(result.termination)
    res["residual"] = float(result.residual)
    res["warnings"] = list(result.warnings)
    res["n_vars"] = int(built.model.nvars)
    res["n_cons"] = int(built.model.ncons)
    res["conic_rows"], res["conic_cols"] = (int(v) for v in form.A.shape)
    res["n_cones"] = int(len(form.soc))

    if profile:
        import cProfile
        import pstats

        del case, built, form, result
        gc.collect()
        prof = cProfile.Profile()
        start = time.perf_counter()
        prof.enable()
        gridlang.load(text).solve("clarabel")  # load, built, conic_form, Clarabel, unpacking
        prof.disable()
        res["profile_total_s"] = time.perf_counter() - start
        stats = pstats.Stats(prof)
        rows = []
        for (file, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
            where = f"{_short_path(file)}:{line}({func})" if line else func
            rows.append((cumtime, tottime, ncalls, where))
        rows.sort(reverse=True)
        res["profile"] = [
            {"function": where, "cumulative_s": cum, "own_s": own, "calls": calls}
            for cum, own, calls, where in rows[:profile]
        ]
    return res


def _short_path(file: str) -> str:
    """'.../site-packages/linopy/model.py' -> 'linopy/model.py'; gridlang paths from 'gridlang/'."""
    parts = Path(file).parts
    for anchor in ("site-packages", "src"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) + 1 :])
    return "/".join(parts[-2:])


def worker_cvxpy(n_buses: int, steps: int, seed: int, refine: bool) -> dict[str, Any]:
    res: dict[str, Any] = {"tool": "cvxpy" if refine else "cvxpy_norefine"}
    options = CVXPY_SOLVE if refine else {**CVXPY_SOLVE, **NO_REFINEMENT}
    build_cvxpy(make_feeder(WARMUP_BUSES, steps, seed)).solve(**options)  # warm-up

    f = make_feeder(n_buses, steps, seed)
    gc.collect()
    t0 = time.perf_counter()
    prob = build_cvxpy(f)
    t1 = time.perf_counter()
    prob.solve(**options)
    t2 = time.perf_counter()

    stats = prob.solver_stats
    res["build_s"] = t1 - t0  # per-unit arrays + cvxpy expressions and constraints
    res["solve_call_s"] = t2 - t1  # problem.solve: canonicalise + Clarabel + unpacking
    res["canon_s"] = float(prob.compilation_time or 0.0)
    res["clarabel_s"] = float(stats.solve_time or 0.0)  # as Clarabel reports it (solve, not set-up)
    res["rest_s"] = res["solve_call_s"] - res["canon_s"] - res["clarabel_s"]  # set-up, unpacking
    res["total_s"] = t2 - t0
    res["non_solver_s"] = res["total_s"] - res["clarabel_s"]
    res["objective"] = float(prob.value) if prob.value is not None else None
    res["termination"] = str(prob.status)
    res["iterations"] = stats.num_iters
    res["n_vars"] = int(sum(v.size for v in prob.variables()))
    return res


def run_worker(tool: str, n: int, steps: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run one tool in a fresh interpreter and read its result line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, "--sizes", str(n)]
    cmd += ["--steps", str(steps), "--seed", str(args.seed)]
    if args.profile:
        cmd += ["--profile", str(args.profile)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"tool": tool, "error": f"timed out after {args.timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return {"tool": tool, "error": f"worker exit {proc.returncode}: {tail}"[:200]}


def best_of(tool: str, n: int, steps: int, args: argparse.Namespace) -> dict[str, Any]:
    """``--repeat`` fresh runs; keep the one with the shortest end-to-end time."""
    runs = [run_worker(tool, n, steps, args) for _ in range(max(1, args.repeat))]
    ok = [r for r in runs if "total_s" in r]
    if not ok:
        return runs[0]
    best = dict(min(ok, key=lambda r: r["total_s"]))
    best["runs_total_s"] = [r["total_s"] for r in ok]
    return best


# ============================================================ report


@dataclass
class Row:
    n_buses: int
    steps: int
    results: dict[str, dict[str, Any]] = field(default_factory=dict)


def _s(r: dict[str, Any], key: str, digits: int = 2) -> str:
    return f"{r[key]:.{digits}f}" if key in r and r[key] is not None else "-"


def spread(a: float, b: float) -> float:
    """|a - b| / max(|a|, |b|)."""
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def report(rows: list[Row]) -> str:
    main_rows, gl_rows, cv_rows, check_rows = [], [], [], []
    for row in rows:
        g, c, c_same = (row.results.get(tool, {}) for tool in TOOLS)
        size = [f"{row.n_buses}", f"{row.steps}"]

        share = g.get("non_solver_share")
        if share is None:
            share_cell = "-"
        else:
            verdict = ("ok" if share <= TARGET_NON_SOLVER_SHARE else "MISS") if row.n_buses == TARGET_SHARE_AT_BUSES else "n/a"
            share_cell = f"{100 * share:.1f} % {verdict}"
        if "total_s" in g and "total_s" in c:
            ratio = c["total_s"] / g["total_s"]
            ratio_cell = f"{ratio:.2f}x " + ("ok" if ratio >= TARGET_VS_CVXPY else "MISS")
            overhead = c["non_solver_s"] / g["non_solver_s"] if g.get("non_solver_s", 0) > 0 else None
            overhead_cell = "-" if overhead is None else f"{overhead:.1f}x"
        else:
            ratio_cell = overhead_cell = "-"
        same_cell = f"{c_same['total_s'] / g['total_s']:.2f}x" if "total_s" in g and "total_s" in c_same else "-"
        main_rows.append(
            size
            + [_s(g, "total_s"), _s(g, "clarabel_s"), share_cell, _s(c, "total_s"), _s(c, "clarabel_s"), ratio_cell, overhead_cell]
            + [_s(c_same, "total_s"), same_cell]
        )

        if g:
            gl_rows.append(
                size
                + [f"{g['n_vars']:,}" if "n_vars" in g else "-", f"{g['n_cones']:,}" if "n_cones" in g else "-"]
                + [_s(g, k, 3) for k in ("load_s", "build_s", "conic_s", "clarabel_s", "unpack_s", "total_s")]
                + [str(g.get("iterations", "-"))]
            )
        if c:
            cv_rows.append(
                size + [_s(c, k, 3) for k in ("build_s", "canon_s", "clarabel_s", "rest_s", "total_s")] + [str(c.get("iterations", "-"))]
            )

        go, co = g.get("objective"), c.get("objective")
        if go is not None and co is not None:
            rel = spread(go, co)
            check_rows.append(size + [f"{go:.6f}", f"{co:.6f}", f"{rel:.1e}", "ok" if rel <= REL_TOL else "FAIL"])
        else:
            check_rows.append(size + [f"{go:.6f}" if go is not None else "n/a", f"{co:.6f}" if co is not None else "n/a", "-", "-"])

    out = [
        "End to end, s (gridlang: load + built + solve('clarabel'); cvxpy: build + canonicalise + solve;"
        " fastest of --repeat runs)",
        f"targets: gridlang non-solver share <= {100 * TARGET_NON_SOLVER_SHARE:.0f} % at {TARGET_SHARE_AT_BUSES:,} buses"
        f" ((n/a) at other sizes); cvxpy/gridlang end to end >= {TARGET_VS_CVXPY:g}x",
        grid_table(
            ["buses", "steps", "gridlang", "clarabel", "non-solver share", "cvxpy", "clarabel", "cvxpy/gridlang",
             "overhead ratio", "cvxpy*", "cvxpy*/gridlang"],
            main_rows,
        ),
        "  clarabel: the solver's own time in each run (gridlang: result.solve_time, wall time of Clarabel's set-up + solve;"
        " cvxpy: solver_stats.solve_time, Clarabel's own timer);",
        "  overhead ratio: cvxpy's non-solver time / gridlang's (information, no target);",
        "  cvxpy*: the CVXPY model with gridlang's Clarabel setting (iterative refinement off), the like-for-like comparison",
        "",
        "gridlang detail, s: load = parse + resolve, built = compile to linopy + cones, conic = conic_form alone,"
        " unpack = solve call - conic - clarabel",
        grid_table(
            ["buses", "steps", "variables", "cones", "load", "built", "conic", "clarabel", "unpack", "total", "iterations"],
            gl_rows,
        ),
        "",
        "cvxpy detail, s: build = per-unit data + expressions, canon = problem.compilation_time,"
        " rest = solve call - canon - clarabel",
        grid_table(["buses", "steps", "build", "canon", "clarabel", "rest", "total", "iterations"], cv_rows),
        "",
        f"Objective check (gridlang against CVXPY with Clarabel's defaults): |a - b| <= {REL_TOL:g} max(|a|, |b|)",
        grid_table(["buses", "steps", "gridlang $", "cvxpy $", "rel. spread", "verdict"], check_rows),
    ]
    notes: dict[str, None] = {}
    for row in rows:
        for tool, r in row.results.items():
            if "error" in r:
                notes[f"  {tool} {row.n_buses}x{row.steps}: {r['error']}"] = None
            if r.get("termination") not in (None, "optimal"):
                notes[f"  {tool} {row.n_buses}x{row.steps}: termination {r['termination']}"] = None
            for w in r.get("warnings", []):
                notes[f"  {tool} {row.n_buses}x{row.steps}: {w}"] = None
    if notes:
        out += ["", "Errors and warnings:", *notes]
    for row in rows:
        prof = row.results.get("gridlang", {}).get("profile")
        if prof:
            out += [
                "",
                f"cProfile of gridlang load + built + solve('clarabel') at {row.n_buses} x {row.steps}"
                f" (s; wall time under the profiler {row.results['gridlang']['profile_total_s']:.2f} s)",
                grid_table(
                    ["cumulative", "own", "calls", "function"],
                    [[f"{p['cumulative_s']:.3f}", f"{p['own_s']:.3f}", f"{p['calls']}", p["function"]] for p in prof],
                ),
            ]
    return "\n".join(out)


# ============================================================ command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="SOCP scaling: gridlang (distflow_soc) against hand-written CVXPY, both with Clarabel.",
        epilog=__doc__.split("Usage::")[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sizes", default="100,500,1000,2000", help="comma-separated bus counts (default: 100,500,1000,2000)")
    p.add_argument("--steps", default="24", help="comma-separated steps per day (default: 24)")
    p.add_argument("--quick", action="store_true", help="smoke run: 100 and 300 buses x 24 steps")
    p.add_argument("--seed", type=int, default=0, help="feeder seed (default 0)")
    p.add_argument("--repeat", type=int, default=1, help="fresh runs per measurement, keep the fastest end to end (default 1)")
    p.add_argument("--no-cvxpy", action="store_true", help="gridlang only")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile a second gridlang run (load + built + solve), print the top N functions")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per worker process (default 1800)")
    p.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    p.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.steps = "100,300", "24"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes, steps_list = ints(args.sizes), ints(args.steps)

    if args.worker:  # child process: one measurement, its result on the last stdout line
        warnings.simplefilter("ignore")
        try:
            if args.worker == "gridlang":
                res = worker_gridlang(sizes[0], steps_list[0], args.seed, args.profile)
            else:
                res = worker_cvxpy(sizes[0], steps_list[0], args.seed, refine=args.worker == "cvxpy")
        except Exception as exc:
            res = {"tool": args.worker, "error": _error_text(exc), "traceback": traceback.format_exc(limit=8)}
        print(RESULT_MARK + json.dumps(res), flush=True)
        return 0

    print(
        f"gridlang SOCP scaling: python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"gridlang {version('gridlang')}, linopy {version('linopy')}, cvxpy {version('cvxpy')}, "
        f"clarabel {version('clarabel')}"
    )
    print(
        f"each measurement runs in a fresh subprocess after a {WARMUP_BUSES}-bus warm-up solve;"
        f" fastest end to end of {max(1, args.repeat)} run(s) kept\n",
        flush=True,
    )

    tools = ("gridlang",) if args.no_cvxpy else TOOLS
    rows: list[Row] = []
    started = time.perf_counter()
    for n, s in sorted(((n, s) for n in sizes for s in steps_list), key=lambda c: (c[0] * c[1], c)):
        row = Row(n, s)
        for tool in tools:
            t0 = time.perf_counter()
            res = best_of(tool, n, s, args)
            if "total_s" in res:
                state = f"{res['total_s']:.2f} s end to end, Clarabel {res['clarabel_s']:.2f} s, objective {res['objective']}"
            else:
                state = f"FAILED: {res.get('error', '?')}"
            print(f"  {n:>5} buses x {s:>3} steps  {tool:<9}{state}   [{time.perf_counter() - t0:.0f} s wall]", flush=True)
            row.results[tool] = res
        rows.append(row)

    print(f"\n(total {time.perf_counter() - started:.0f} s)\n")
    print(report(rows))
    if args.json:
        payload = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "targets": {
                "non_solver_share_max": TARGET_NON_SOLVER_SHARE,
                "non_solver_share_at_buses": TARGET_SHARE_AT_BUSES,
                "cvxpy_over_gridlang_min": TARGET_VS_CVXPY,
            },
            "rows": [asdict(r) for r in rows],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
