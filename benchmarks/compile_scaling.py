"""Model-build scaling: gridlang against hand-written linopy and Pyomo.

For every feeder size (buses x steps) the same problem, defined in
``feeder.py``, is built three ways:

* **gridlang**: ``gridlang.load(text).compile()``, i.e. parse + resolve +
  build to a ``linopy.Model``; the parse alone is timed again for lines/s;
* **linopy**: :func:`build_linopy`, a vectorised model as an expert writes it
  (one ``add_variables`` / ``add_constraints`` per block, a sparse group-by
  over the line-to-bus incidence for the nodal balances, ``shift`` for the
  storage state of charge);
* **pyomo**: :func:`build_pyomo`, an idiomatic ``ConcreteModel`` with indexed
  sets, params, vars and constraint rules.  The solve is not timed.

Each build runs in a fresh subprocess (``python compile_scaling.py --worker
...``), after a warm-up build of a 12-bus feeder in the same process, so that
imports, grammar loading and other one-off costs are left out.  Build time is
``time.perf_counter`` around the build; memory is the growth of the process
peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) over the build, the
process's total peak being reported alongside.

For the smallest size (or every size with ``--check-all``) all three models
are then solved with HiGHS and their objectives compared (1e-6 relative).

Usage::

    python benchmarks/compile_scaling.py                 # 100,1000,5000 buses x 24,96 steps
    python benchmarks/compile_scaling.py --quick         # 100 and 500 buses x 24 steps
    python benchmarks/compile_scaling.py --sizes 2000 --steps 48 --no-pyomo --check-all
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from feeder import Feeder, make_feeder, per_unit, render_grid  # noqa: E402

BUILDERS = ("gridlang", "linopy", "pyomo")
RESULT_MARK = "@@RESULT "
WARMUP_BUSES = 12
REL_TOL = 1e-6

# targets printed next to the measurements (not asserted)
TARGET_VS_LINOPY = 1.3  # gridlang build time <= 1.3 x hand-written linopy ...
TARGET_VS_LINOPY_MIN_VARS = 100_000  # ... for models of this many variables and more
TARGET_VS_PYOMO = 5.0  # Pyomo build time >= 5 x gridlang
TARGET_PARSE_LINES_PER_S = 20_000.0


# ============================================================ hand-written linopy


def build_linopy(f: Feeder, sparse: bool = True) -> Any:
    """The feeder problem as a vectorised linopy model (see ``feeder.py`` for the math).

    Uses linopy's v1 arithmetic (exact label alignment) and, by default, a
    CSR-backed model, so the group-by sums of the nodal balances are not
    padded to the largest bus degree (the substation feeds n/40 laterals).
    The caller must have set ``linopy.options["semantics"] = "v1"``.

    Blocks, all in per unit:
      grid      import, export >= 0, q_grid free                   [t]
      pv        0 <= p_pv <= capacity * sun                        [pv, t]
      storage   0 <= charge, discharge <= power,
                soc_min E <= soc <= E                              [storage, t]
                soc - soc.shift(t=1) - dt (eta ch - dis/eta) == 0  (t > 0: shift is absent at t = 0)
                soc[0] - dt (eta ch[0] - dis[0]/eta) == soc_init E
                soc[T-1] >= soc_final E
      network   P, Q free [line, t];  wmin <= w <= wmax [bus, t];  w[slack] == v_set^2
                in(P) - out(P) + inj_p == load_p   per bus (group-by of P over to/from bus)
                in(Q) - out(Q) + inj_q == load_q
                w[to] - w[from] + 2 (r P + x Q) == 0 per line
      objective sum_t dt (import_price import - export_price export)
    """
    import linopy
    import numpy as np
    import pandas as pd
    import xarray as xr

    pu = per_unit(f)
    names = np.array(f.bus_names)
    t = pd.RangeIndex(f.steps, name="t")
    bus = pd.Index(f.bus_names, name="bus")
    line = pd.Index(f.line_names, name="line")
    pv = pd.Index([f"pv{b + 1}" for b in f.pv_bus], name="pv")
    st = pd.Index([f"es{b + 1}" for b in f.storage_bus], name="storage")
    slack = names[pu.slack]

    m = linopy.Model(sparse=sparse)

    # ---- grid connection at the slack bus
    imp = m.add_variables(lower=0, coords=[t], name="grid_import")
    exp = m.add_variables(lower=0, coords=[t], name="grid_export")
    q_grid = m.add_variables(coords=[t], name="grid_q")

    # ---- pv: 0 <= p <= capacity * availability
    pv_p = m.add_variables(lower=0, upper=xr.DataArray(pu.pv_pmax, coords=[pv, t]), name="pv_p")

    # ---- storage
    eta, dt = pu.storage_efficiency, pu.dt
    energy = pu.storage_energy
    charge = m.add_variables(lower=0, upper=pu.storage_power, coords=[st, t], name="charge")
    discharge = m.add_variables(lower=0, upper=pu.storage_power, coords=[st, t], name="discharge")
    soc = m.add_variables(lower=pu.storage_soc_min * energy, upper=energy, coords=[st, t], name="soc")
    net_in = (dt * eta) * charge - (dt / eta) * discharge  # energy stored during each step
    m.add_constraints(soc - soc.shift(t=1) - net_in == 0, name="storage_balance")
    m.add_constraints(soc.isel(t=0) - net_in.isel(t=0) == pu.storage_soc_init * energy, name="storage_start")
    m.add_constraints(soc.isel(t=-1) >= pu.storage_soc_final * energy, name="storage_final")

    # ---- lindistflow
    P = m.add_variables(coords=[line, t], name="P")
    Q = m.add_variables(coords=[line, t], name="Q")
    wmin = xr.DataArray(pu.wmin, coords=[bus])
    wmax = xr.DataArray(pu.wmax, coords=[bus])
    w = m.add_variables(lower=wmin, upper=wmax, coords=[bus, t], name="w")
    m.add_constraints(w.sel(bus=[slack]) == pu.w_slack, name="slack_voltage")

    to_bus = pd.Series(names[f.line_to], index=line, name="bus")
    from_bus = pd.Series(names[f.line_from], index=line, name="bus")
    pv_at = pd.Series(names[f.pv_bus], index=pv, name="bus")
    st_at = pd.Series(names[f.storage_bus], index=st, name="bus")

    def on_buses(*parts: Any) -> Any:
        """Sum expressions given on subsets of buses; a bus missing from a part gets no term from it."""
        total = parts[0]
        for part in parts[1:]:
            total = total.add(part, join="outer")
        return total.reindex(bus=bus)  # every bus ends a line or starts one: this only sorts them

    grid_p = (imp - exp).expand_dims(bus=[slack])
    grid_q = q_grid.to_linexpr().expand_dims(bus=[slack])
    inj_p = [grid_p, pv_p.groupby(pv_at).sum(), (discharge - charge).groupby(st_at).sum()]
    inj_q = [grid_q]
    demand_p = xr.DataArray(np.zeros((f.n_buses, f.steps)), coords=[bus, t])
    demand_q = demand_p.copy()
    demand_p[f.load_bus] = pu.load_p  # loads are fixed: their injection goes to the right-hand side
    demand_q[f.load_bus] = pu.load_q

    for flow, inj, demand, label in ((P, inj_p, demand_p, "p"), (Q, inj_q, demand_q, "q")):
        lhs = on_buses(flow.groupby(to_bus).sum(), -flow.groupby(from_bus).sum(), *inj)
        m.add_constraints(lhs == demand, name=f"balance_{label}")

    # w[to] - w[from] + 2 (r P + x Q) == 0; the positional takes leave a 'bus' coordinate to drop
    w_to = w.isel(bus=xr.DataArray(f.line_to, coords=[line])).to_linexpr().drop_vars("bus")
    w_from = w.isel(bus=xr.DataArray(f.line_from, coords=[line])).to_linexpr().drop_vars("bus")
    r = xr.DataArray(pu.r, coords=[line])
    x = xr.DataArray(pu.x, coords=[line])
    m.add_constraints(w_to - w_from + 2 * r * P + 2 * x * Q == 0, name="voltage_drop")

    # ---- cost
    import_price = xr.DataArray(pu.import_price * dt, coords=[t])
    export_price = xr.DataArray(pu.export_price * dt, coords=[t])
    m.add_objective((import_price * imp - export_price * exp).sum())
    return m


def solve_linopy(m: Any) -> float:
    """Solve with HiGHS (quiet); return the objective in currency."""
    status, condition = m.solve(solver_name="highs", output_flag=False)
    if status != "ok":
        raise RuntimeError(f"linopy/HiGHS: {status}, {condition}")
    return float(m.objective.value)


# ============================================================ Pyomo


def build_pyomo(f: Feeder) -> Any:
    """The feeder problem as an idiomatic Pyomo ConcreteModel (math in ``feeder.py``).

    Sets T, BUS, LINE, PV, ST; data as Params; one Var / Constraint component
    per block with index sets and rules:
      balance_p[b, t]:  sum_{l in into(b)} P[l, t] + inj_p(b, t) == sum_{l in out_of(b)} P[l, t]
      voltage_drop[l, t]:  w[to(l), t] == w[from(l), t] - 2 (r[l] P[l, t] + x[l] Q[l, t])
      storage_balance[s, t > 0]:  soc[s, t] == soc[s, t-1] + (eta ch - dis / eta) dt
      storage_start[s]:  soc[s, 0] == soc_init E + (eta ch[s, 0] - dis[s, 0] / eta) dt
      storage_final[s]:  soc[s, T-1] >= soc_final E
      cost:  sum_t (import_price[t] import[t] - export_price[t] export[t]) dt
    """
    import pyomo.environ as pyo

    pu = per_unit(f)
    buses, lines = f.bus_names, f.line_names
    pvs = [f"pv{b + 1}" for b in f.pv_bus]
    sts = [f"es{b + 1}" for b in f.storage_bus]
    steps = list(range(f.steps))
    slack = buses[pu.slack]
    first, last = steps[0], steps[-1]

    line_from = {l: buses[a] for l, a in zip(lines, f.line_from.tolist())}
    line_to = {l: buses[b] for l, b in zip(lines, f.line_to.tolist())}
    into: dict[str, list[str]] = {b: [] for b in buses}
    out_of: dict[str, list[str]] = {b: [] for b in buses}
    for l in lines:
        into[line_to[l]].append(l)
        out_of[line_from[l]].append(l)
    pv_at = {b: [] for b in buses}
    for name, b in zip(pvs, f.pv_bus.tolist()):
        pv_at[buses[b]].append(name)
    st_at = {b: [] for b in buses}
    for name, b in zip(sts, f.storage_bus.tolist()):
        st_at[buses[b]].append(name)
    load_at = {b: [] for b in buses}
    loads = [f"ld{b + 1}" for b in f.load_bus]
    for name, b in zip(loads, f.load_bus.tolist()):
        load_at[buses[b]].append(name)

    m = pyo.ConcreteModel(name=f"feeder_{f.n_buses}x{f.steps}")
    m.T = pyo.Set(initialize=steps, ordered=True)
    m.BUS = pyo.Set(initialize=buses, ordered=True)
    m.LINE = pyo.Set(initialize=lines, ordered=True)
    m.PV = pyo.Set(initialize=pvs, ordered=True)
    m.ST = pyo.Set(initialize=sts, ordered=True)
    m.LOAD = pyo.Set(initialize=loads, ordered=True)

    m.r = pyo.Param(m.LINE, initialize=dict(zip(lines, pu.r.tolist())))
    m.x = pyo.Param(m.LINE, initialize=dict(zip(lines, pu.x.tolist())))
    m.wmin = pyo.Param(m.BUS, initialize=dict(zip(buses, pu.wmin.tolist())))
    m.wmax = pyo.Param(m.BUS, initialize=dict(zip(buses, pu.wmax.tolist())))
    m.load_p = pyo.Param(m.LOAD, m.T, initialize=_param_dict(loads, steps, pu.load_p))
    m.load_q = pyo.Param(m.LOAD, m.T, initialize=_param_dict(loads, steps, pu.load_q))
    m.pv_pmax = pyo.Param(m.PV, m.T, initialize=_param_dict(pvs, steps, pu.pv_pmax))
    m.import_price = pyo.Param(m.T, initialize=dict(zip(steps, pu.import_price.tolist())))
    m.export_price = pyo.Param(m.T, initialize=dict(zip(steps, pu.export_price.tolist())))
    energy, power, eta, dt = pu.storage_energy, pu.storage_power, pu.storage_efficiency, pu.dt

    # grid
    m.grid_import = pyo.Var(m.T, within=pyo.NonNegativeReals)
    m.grid_export = pyo.Var(m.T, within=pyo.NonNegativeReals)
    m.grid_q = pyo.Var(m.T, within=pyo.Reals)
    # pv
    m.pv_p = pyo.Var(m.PV, m.T, bounds=lambda m, i, t: (0.0, m.pv_pmax[i, t]))
    # storage
    m.charge = pyo.Var(m.ST, m.T, bounds=(0.0, power))
    m.discharge = pyo.Var(m.ST, m.T, bounds=(0.0, power))
    m.soc = pyo.Var(m.ST, m.T, bounds=(pu.storage_soc_min * energy, energy))

    def net_in(m: Any, s: str, t: int) -> Any:
        return (eta * m.charge[s, t] - m.discharge[s, t] / eta) * dt

    def storage_balance(m: Any, s: str, t: int) -> Any:
        if t == first:
            return pyo.Constraint.Skip
        return m.soc[s, t] == m.soc[s, t - 1] + net_in(m, s, t)

    m.storage_balance = pyo.Constraint(m.ST, m.T, rule=storage_balance)
    m.storage_start = pyo.Constraint(
        m.ST, rule=lambda m, s: m.soc[s, first] == pu.storage_soc_init * energy + net_in(m, s, first)
    )
    m.storage_final = pyo.Constraint(m.ST, rule=lambda m, s: m.soc[s, last] >= pu.storage_soc_final * energy)

    # lindistflow
    m.P = pyo.Var(m.LINE, m.T, within=pyo.Reals)
    m.Q = pyo.Var(m.LINE, m.T, within=pyo.Reals)
    m.w = pyo.Var(m.BUS, m.T, bounds=lambda m, b, t: (m.wmin[b], m.wmax[b]))
    m.slack_voltage = pyo.Constraint(m.T, rule=lambda m, t: m.w[slack, t] == pu.w_slack)

    def injected_p(m: Any, b: str, t: int) -> Any:
        total = sum(m.pv_p[i, t] for i in pv_at[b]) + sum(m.discharge[s, t] - m.charge[s, t] for s in st_at[b])
        total -= sum(m.load_p[d, t] for d in load_at[b])
        if b == slack:
            total += m.grid_import[t] - m.grid_export[t]
        return total

    def injected_q(m: Any, b: str, t: int) -> Any:
        total = -sum(m.load_q[d, t] for d in load_at[b])
        if b == slack:
            total += m.grid_q[t]
        return total

    m.balance_p = pyo.Constraint(
        m.BUS,
        m.T,
        rule=lambda m, b, t: sum(m.P[l, t] for l in into[b]) + injected_p(m, b, t)
        == sum(m.P[l, t] for l in out_of[b]),
    )
    m.balance_q = pyo.Constraint(
        m.BUS,
        m.T,
        rule=lambda m, b, t: sum(m.Q[l, t] for l in into[b]) + injected_q(m, b, t)
        == sum(m.Q[l, t] for l in out_of[b]),
    )
    m.voltage_drop = pyo.Constraint(
        m.LINE,
        m.T,
        rule=lambda m, l, t: m.w[line_to[l], t]
        == m.w[line_from[l], t] - 2 * (m.r[l] * m.P[l, t] + m.x[l] * m.Q[l, t]),
    )

    m.cost = pyo.Objective(
        expr=sum((m.import_price[t] * m.grid_import[t] - m.export_price[t] * m.grid_export[t]) * dt for t in m.T),
        sense=pyo.minimize,
    )
    return m


def _param_dict(rows: list[str], steps: list[int], values: Any) -> dict[tuple[str, int], float]:
    """A [row, t] array as the {(row, t): value} dict a Pyomo Param initialises from."""
    return {(r, t): v for r, row in zip(rows, values.tolist()) for t, v in zip(steps, row)}


def solve_pyomo(m: Any) -> float:
    """Solve with HiGHS through Pyomo's APPSI interface; return the objective."""
    import pyomo.environ as pyo

    solver = pyo.SolverFactory("appsi_highs")
    result = solver.solve(m)
    condition = str(result.solver.termination_condition)
    if condition != "optimal":
        raise RuntimeError(f"pyomo/HiGHS: {condition}")
    return float(pyo.value(m.cost))


# ============================================================ workers (one build per process)


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    scale = 1.0 if sys.platform == "darwin" else 1024.0  # bytes on macOS
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _error_text(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:160]


def _timed(build: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``build``; return its result, seconds taken and peak-RSS growth in MB."""
    before = _peak_rss_mb()
    start = time.perf_counter()
    out = build()
    seconds = time.perf_counter() - start
    return out, seconds, _peak_rss_mb() - before


def worker(builder: str, n_buses: int, steps: int, seed: int, solve: bool, linopy_dense: bool) -> dict[str, Any]:
    """Build (and optionally solve) one model in this process; return the measurements."""
    warnings.simplefilter("ignore")
    f = make_feeder(n_buses, steps, seed)
    small = make_feeder(WARMUP_BUSES, steps, seed)
    res: dict[str, Any] = {"builder": builder}

    if builder == "linopy":
        import linopy

        linopy.options["semantics"] = "v1"
        build_linopy(small, sparse=not linopy_dense)
        model, res["seconds"], res["mem_mb"] = _timed(lambda: build_linopy(f, sparse=not linopy_dense))
        res["peak_mb"] = _peak_rss_mb()
        res["n_vars"] = int(model.nvars)
        res["n_cons"] = int(model.ncons)
        if solve:
            res["objective"] = solve_linopy(model)

    elif builder == "pyomo":
        build_pyomo(small)
        model, res["seconds"], res["mem_mb"] = _timed(lambda: build_pyomo(f))
        res["peak_mb"] = _peak_rss_mb()
        if solve:
            res["objective"] = solve_pyomo(model)

    elif builder == "gridlang":
        import gridlang
        from gridlang.grammar.parser import parse

        text = render_grid(f)
        try:  # warm-up; a failure here shows up again below
            gridlang.load(render_grid(small)).compile()
        except Exception:
            pass
        loaded = model = None
        before = _peak_rss_mb()  # memory is the peak-RSS growth over load + compile together
        try:
            loaded, res["load_s"], _ = _timed(lambda: gridlang.load(text))
            model, res["compile_s"], _ = _timed(loaded.compile)
            res["seconds"] = res["load_s"] + res["compile_s"]
            res["mem_mb"] = _peak_rss_mb() - before
        except Exception as exc:
            res["error"] = _error_text(exc)
            res["traceback"] = traceback.format_exc(limit=6)
        res["peak_mb"] = _peak_rss_mb()
        if model is not None:
            res["n_vars"] = int(model.nvars)
            res["n_cons"] = int(model.ncons)
            if solve:
                try:
                    res["objective"] = float(loaded.solve(solver="highs").objective)
                except Exception as exc:
                    res["solve_error"] = _error_text(exc)
        # parse speed on its own, with the big model freed so that the garbage
        # collector does not keep walking it while lark allocates
        del loaded, model
        gc.collect()
        parse(render_grid(small), "<warm-up>")
        _, res["parse_s"], _ = _timed(lambda: parse(text, "<benchmark>"))
        res["lines"] = text.count("\n")
        res["lines_per_s"] = res["lines"] / res["parse_s"]
    else:
        raise ValueError(f"unknown builder {builder!r}")
    return res


# ============================================================ driver


@dataclass
class Row:
    """Everything measured for one size."""

    n_buses: int
    steps: int
    n_vars: int
    n_cons: int
    lines: int
    results: dict[str, dict[str, Any]] = field(default_factory=dict)


def run_worker(builder: str, n: int, steps: int, args: argparse.Namespace, solve: bool) -> dict[str, Any]:
    """Run one builder in a fresh interpreter and read its result line."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", builder, "--sizes", str(n)]
    cmd += ["--steps", str(steps), "--seed", str(args.seed)]
    if solve:
        cmd.append("--solve")
    if args.linopy_dense:
        cmd.append("--linopy-dense")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"builder": builder, "error": f"timed out after {args.timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return {"builder": builder, "error": f"worker exit {proc.returncode}: {tail}"[:200]}


def _fmt_s(r: dict[str, Any] | None) -> str:
    if r is None:
        return "skipped"
    if "seconds" not in r:
        return "FAILED"
    return f"{r['seconds']:.2f}"


def _fmt_mb(r: dict[str, Any] | None, key: str = "mem_mb") -> str:
    if r is None:
        return "skipped"
    if key not in r:
        return "FAILED"
    return f"{r[key]:.0f}"


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str = "seconds") -> float | None:
    if a is None or b is None or key not in a or key not in b or b[key] <= 0:
        return None
    return a[key] / b[key]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*r) for r in rows]
    return "\n".join(out)


def report(rows: list[Row], checks: list[Row], args: argparse.Namespace) -> str:
    """The printed tables: build time, memory, gridlang breakdown, objective check."""
    out: list[str] = []
    time_rows, mem_rows, gl_rows = [], [], []
    for row in rows:
        g, lp, py = (row.results.get(b) for b in BUILDERS)
        vs_lin = _ratio(g, lp)
        vs_pyo = _ratio(py, g)
        big = row.n_vars >= TARGET_VS_LINOPY_MIN_VARS
        if vs_lin is None:
            lin_note = "-"
        elif not big:
            lin_note = "(<100k vars)"
        else:
            lin_note = "ok" if vs_lin <= TARGET_VS_LINOPY else "MISS"
        pyo_note = "-" if vs_pyo is None else ("ok" if vs_pyo >= TARGET_VS_PYOMO else "MISS")
        lps = g.get("lines_per_s") if g else None
        parse_note = "-" if lps is None else ("ok" if lps >= TARGET_PARSE_LINES_PER_S else "MISS")
        time_rows.append(
            [
                str(row.n_buses),
                str(row.steps),
                f"{row.n_vars:,}",
                _fmt_s(g),
                _fmt_s(lp),
                _fmt_s(py),
                "-" if vs_lin is None else f"{vs_lin:.2f}x",
                lin_note,
                "-" if vs_pyo is None else f"{vs_pyo:.1f}x",
                pyo_note,
                "-" if lps is None else f"{lps:,.0f}",
                parse_note,
            ]
        )
        mem_ratio = _ratio(g, lp, "mem_mb")
        mem_rows.append(
            [
                str(row.n_buses),
                str(row.steps),
                _fmt_mb(g),
                _fmt_mb(lp),
                _fmt_mb(py),
                "-" if mem_ratio is None else f"{mem_ratio:.2f}x",
                f"{_fmt_mb(g, 'peak_mb')} / {_fmt_mb(lp, 'peak_mb')} / {_fmt_mb(py, 'peak_mb')}",
            ]
        )
        if g is not None:
            gl_rows.append(
                [
                    str(row.n_buses),
                    str(row.steps),
                    f"{row.lines:,}",
                    f"{g['parse_s']:.3f}" if "parse_s" in g else "-",
                    f"{g['load_s']:.3f}" if "load_s" in g else "-",
                    f"{g['compile_s']:.3f}" if "compile_s" in g else "-",
                    g.get("error", "ok"),
                ]
            )

    t_lin = f"target <={TARGET_VS_LINOPY}x at 100k+ vars"
    t_pyo = f"target >={TARGET_VS_PYOMO:.0f}x"
    t_parse = f"target >={TARGET_PARSE_LINES_PER_S:,.0f}"
    out.append("Build time, seconds (gridlang = parse + resolve + compile to a linopy.Model)")
    out.append(
        _table(
            ["buses", "steps", "variables", "gridlang", "linopy", "pyomo", "grid/lin", t_lin, "pyo/grid", t_pyo,
             "parse lines/s", t_parse],
            time_rows,
        )
    )
    out.append("")
    out.append("Memory, MB: growth of the worker's peak RSS during the build (fresh subprocess per build)")
    out.append(_table(["buses", "steps", "gridlang", "linopy", "pyomo", "grid/lin", "process peak g / l / p"], mem_rows))
    if gl_rows:
        out.append("")
        out.append("gridlang detail: parse alone, gridlang.load (parse + resolve), case.compile()")
        out.append(_table(["buses", "steps", "lines", "parse s", "load s", "compile s", "status"], gl_rows))
    if checks:
        out.append("")
        out.append(f"Objective check (HiGHS, |a - b| <= {REL_TOL:g} * max(|a|, |b|))")
        check_rows = []
        for row in checks:
            objs = {b: row.results[b].get("objective") for b in BUILDERS if b in row.results}
            values = [v for v in objs.values() if v is not None]
            spread = (max(values) - min(values)) / max(abs(max(values)), abs(min(values)), 1e-12) if values else None
            missing = [b for b in BUILDERS if b in row.results and objs.get(b) is None]
            verdict = "-" if spread is None else ("ok" if spread <= REL_TOL and len(values) > 1 else "FAIL")
            if missing and verdict == "ok":
                verdict = "ok (partial)"
            cells = []
            for b in BUILDERS:
                r = row.results.get(b)
                if r is None:
                    cells.append("skipped")
                elif objs.get(b) is not None:
                    cells.append(f"{objs[b]:.6f}")
                else:
                    cells.append("n/a: " + (r.get("solve_error") or r.get("error") or "no objective")[:60])
            check_rows.append(
                [str(row.n_buses), str(row.steps), *cells, "-" if spread is None else f"{spread:.1e}", verdict]
            )
        out.append(_table(["buses", "steps", "gridlang $", "linopy $", "pyomo $", "rel. spread", "verdict"], check_rows))
    errors = [
        (row.n_buses, row.steps, b, r["error"])
        for row in rows + checks
        for b, r in row.results.items()
        if r is not None and "error" in r
    ]
    if errors:
        out.append("")
        out.append("Errors:")
        seen: set[str] = set()
        for n, s, b, e in errors:
            key = f"{b}: {e}"
            if key not in seen:
                seen.add(key)
                out.append(f"  {b} ({n}x{s}): {e}")
    return "\n".join(out)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.replace(" ", "").split(",") if x]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100,1000,5000", help="comma-separated bus counts (default: 100,1000,5000)")
    p.add_argument("--steps", default="24,96", help="comma-separated steps per day (default: 24,96)")
    p.add_argument("--quick", action="store_true", help="smoke run: 100 and 500 buses x 24 steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-pyomo", action="store_true", help="leave Pyomo out entirely")
    p.add_argument(
        "--pyomo-max-vars",
        type=int,
        default=2_000_000,
        help="skip Pyomo above this many variables (default 2,000,000; 5000x96 has 1.5M)",
    )
    p.add_argument("--check-all", action="store_true", help="solve and compare objectives at every size")
    p.add_argument("--no-check", action="store_true", help="skip the objective check altogether")
    p.add_argument("--linopy-dense", action="store_true", help="hand-written linopy with a dense (padded) model")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per worker process")
    p.add_argument("--json", type=Path, help="also write all measurements to this file")
    p.add_argument("--worker", choices=BUILDERS, help=argparse.SUPPRESS)
    p.add_argument("--solve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.steps = "100,500", "24"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes, steps_list = _ints(args.sizes), _ints(args.steps)

    if args.worker:  # child process: one build, result on the last stdout line
        try:
            res = worker(args.worker, sizes[0], steps_list[0], args.seed, args.solve, args.linopy_dense)
        except Exception as exc:
            res = {"builder": args.worker, "error": _error_text(exc), "traceback": traceback.format_exc(limit=6)}
        print(RESULT_MARK + json.dumps(res), flush=True)
        return 0

    import highspy
    import linopy

    try:
        import pyomo

        pyomo_version = pyomo.version.version
    except ImportError:
        pyomo_version = "not installed"
    print(
        f"gridlang compile scaling: python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"linopy {linopy.__version__} ({'dense' if args.linopy_dense else 'sparse'} model, v1 semantics), "
        f"pyomo {pyomo_version}, highspy {getattr(highspy, '__version__', '?')}"
    )
    print("each build in a fresh subprocess after a 12-bus warm-up; memory = growth of ru_maxrss\n", flush=True)

    combos = sorted(((n, s) for n in sizes for s in steps_list), key=lambda c: (c[0] * c[1], c))
    rows: list[Row] = []
    checks: list[Row] = []
    started = time.perf_counter()
    for i, (n, s) in enumerate(combos):
        f = make_feeder(n, s, args.seed)
        row = Row(n, s, f.n_variables(), f.n_constraints(), render_grid(f).count("\n"))
        solve = not args.no_check and (args.check_all or i == 0)
        for builder in BUILDERS:
            if builder == "pyomo" and (args.no_pyomo or row.n_vars > args.pyomo_max_vars):
                print(f"  {n:>5} buses x {s:>3} steps  pyomo     skipped ({row.n_vars:,} variables)", flush=True)
                continue
            t0 = time.perf_counter()
            res = run_worker(builder, n, s, args, solve=solve)
            state = f"{res['seconds']:.2f} s" if "seconds" in res else f"FAILED ({res.get('error', '?')})"
            print(f"  {n:>5} buses x {s:>3} steps  {builder:<9} {state}   [{time.perf_counter() - t0:.0f} s wall]", flush=True)
            row.results[builder] = res
        rows.append(row)
        if solve:
            checks.append(row)

    print(f"\n(total {time.perf_counter() - started:.0f} s)\n")
    print(report(rows, checks, args))
    if args.json:
        payload = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": [asdict(r) for r in rows],
                   "checks": [asdict(r) for r in checks]}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
