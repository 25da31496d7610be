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
``time.perf_counter`` around the build.  Memory is the peak resident memory
the build adds (:class:`PeakMemory`): on Linux the kernel's high-water mark is
reset just before the build and ``VmHWM - VmRSS`` read after it; elsewhere the
growth of ``resource.getrusage(RUSAGE_SELF).ru_maxrss``.  The absolute peak
RSS of the worker during the build is printed alongside.

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

from common import grid_table, ints, version
from feeder import Feeder, make_feeder, per_unit, render_grid  # noqa: E402

BUILDERS = ("gridlang", "linopy", "pyomo")
RESULT_MARK = "@@RESULT "
WARMUP_BUSES = 12
PARSE_REPEAT = 3  # the parse alone is timed this many times, fastest kept
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
    # loads are fixed, so their (negative) injection moves to the right-hand side
    demand_p, demand_q = np.zeros((f.n_buses, f.steps)), np.zeros((f.n_buses, f.steps))
    np.add.at(demand_p, f.load_bus, pu.load_p)
    np.add.at(demand_q, f.load_bus, pu.load_q)

    for flow, inj, demand, label in ((P, inj_p, demand_p, "p"), (Q, inj_q, demand_q, "q")):
        lhs = on_buses(flow.groupby(to_bus).sum(), -flow.groupby(from_bus).sum(), *inj)
        m.add_constraints(lhs == xr.DataArray(demand, coords=[bus, t]), name=f"balance_{label}")

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


def _status_mb(key: str) -> float | None:
    """A ``VmRSS`` / ``VmHWM`` line of /proc/self/status in MB (None off Linux)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return None


def _maxrss_mb() -> float:
    """Peak RSS of this process from getrusage (KiB on Linux, bytes on macOS)."""
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


class PeakMemory:
    """Peak resident memory added by a piece of code, in MB.

    On Linux the kernel's high-water mark is reset first (``5`` into
    /proc/self/clear_refs), so the result is ``VmHWM`` after minus ``VmRSS``
    before: the true peak of the build over what the process held already.
    Elsewhere it falls back to the growth of ``ru_maxrss``, which misses any
    peak below the earlier high-water mark (the warm-up, the imports).
    """

    method = "unknown"

    def start(self) -> None:
        gc.collect()
        self.base = _status_mb("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
            self.resettable = self.base is not None
        except OSError:
            self.resettable = False
        if not self.resettable:
            self.base = _maxrss_mb()
        PeakMemory.method = "VmHWM - VmRSS" if self.resettable else "ru_maxrss growth"

    def growth(self) -> float:
        peak = _status_mb("VmHWM") if self.resettable else _maxrss_mb()
        return max(0.0, (peak or 0.0) - (self.base or 0.0))


def _process_peak_mb() -> float:
    return _status_mb("VmHWM") or _maxrss_mb()


def _error_text(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:160]


def _timed(build: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``build``; return its result, seconds taken and peak memory added in MB."""
    mem = PeakMemory()
    mem.start()
    start = time.perf_counter()
    out = build()
    seconds = time.perf_counter() - start
    return out, seconds, mem.growth()


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
        res["peak_mb"] = _process_peak_mb()
        res["n_vars"] = int(model.nvars)
        res["n_cons"] = int(model.ncons)
        if solve:
            res["objective"] = solve_linopy(model)

    elif builder == "pyomo":
        build_pyomo(small)
        model, res["seconds"], res["mem_mb"] = _timed(lambda: build_pyomo(f))
        res["peak_mb"] = _process_peak_mb()
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
        mem = PeakMemory()  # over load + compile together
        mem.start()
        try:
            start = time.perf_counter()
            loaded = gridlang.load(text)
            middle = time.perf_counter()
            model = loaded.compile()
            end = time.perf_counter()
            res["load_s"], res["compile_s"], res["seconds"] = middle - start, end - middle, end - start
            res["mem_mb"] = mem.growth()
        except Exception as exc:
            res["error"] = _error_text(exc)
            res["traceback"] = traceback.format_exc(limit=6)
        res["peak_mb"] = _process_peak_mb()
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
        res["parse_s"] = min(_timed(lambda: parse(text, "<benchmark>"))[1] for _ in range(PARSE_REPEAT))
        res["lines"] = text.count("\n")
        res["lines_per_s"] = res["lines"] / res["parse_s"]
    else:
        raise ValueError(f"unknown builder {builder!r}")
    res["mem_method"] = PeakMemory.method
    return res


# ============================================================ driver


@dataclass
class Row:
    """Everything measured for one size; ``results[builder]`` is None when skipped."""

    n_buses: int
    steps: int
    n_vars: int
    n_cons: int
    lines: int
    solved: bool = False
    results: dict[str, dict[str, Any] | None] = field(default_factory=dict)


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


def best_of(builder: str, n: int, steps: int, args: argparse.Namespace, solve: bool) -> dict[str, Any]:
    """``--repeat`` fresh runs; keep the fastest (solving, if asked, only in the first)."""
    runs = [run_worker(builder, n, steps, args, solve=solve and i == 0) for i in range(max(1, args.repeat))]
    ok = [r for r in runs if "seconds" in r]
    if not ok:
        return runs[0]
    best = dict(min(ok, key=lambda r: r["seconds"]))
    for key in ("objective", "solve_error"):
        if key in runs[0]:
            best[key] = runs[0][key]
    if builder == "gridlang":  # parse speed: the best run of the parser alone
        best["lines_per_s"] = max(r.get("lines_per_s", 0.0) for r in runs)
    return best


# ------------------------------------------------------------ report


def _cell_s(r: dict[str, Any] | None) -> str:
    if r is None:
        return "skipped"
    return f"{r['seconds']:.2f}" if "seconds" in r else "FAILED"


def _cell_mb(r: dict[str, Any] | None, key: str = "mem_mb") -> str:
    if r is None:
        return "skipped"
    return f"{r[key]:.0f}" if key in r else "FAILED"


def _ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str = "seconds") -> float | None:
    if a is None or b is None or key not in a or key not in b or b[key] <= 0:
        return None
    return a[key] / b[key]


def _objective_spread(values: list[float]) -> float:
    """max |a - b| / max(|a|, |b|) over all pairs."""
    hi, lo = max(values), min(values)
    return (hi - lo) / max(abs(hi), abs(lo), 1e-300)


def _same_size(r: dict[str, Any], row: Row) -> str:
    """'ok' when gridlang's model has the rows and columns of the hand-written ones."""
    if "error" in r:
        return r["error"]
    if (r.get("n_vars"), r.get("n_cons")) != (row.n_vars, row.n_cons):
        return f"size differs: {r.get('n_vars')} vars, {r.get('n_cons')} cons"
    return "ok"


def report(rows: list[Row]) -> str:
    """The printed tables: build time with ratios and targets, memory, gridlang detail, objectives."""
    time_rows, mem_rows, gl_rows, check_rows = [], [], [], []
    for row in rows:
        g, lp, py = (row.results.get(b) for b in BUILDERS)
        size = [f"{row.n_buses}", f"{row.steps}"]

        vs_lin, vs_pyo = _ratio(g, lp), _ratio(py, g)
        if vs_lin is None:
            lin = "-"
        elif row.n_vars < TARGET_VS_LINOPY_MIN_VARS:
            lin = f"{vs_lin:.2f}x (n/a)"
        else:
            lin = f"{vs_lin:.2f}x " + ("ok" if vs_lin <= TARGET_VS_LINOPY else "MISS")
        pyo = "-" if vs_pyo is None else f"{vs_pyo:.1f}x " + ("ok" if vs_pyo >= TARGET_VS_PYOMO else "MISS")
        lps = g.get("lines_per_s") if g else None
        prs = "-" if lps is None else f"{lps:,.0f} " + ("ok" if lps >= TARGET_PARSE_LINES_PER_S else "MISS")
        time_rows.append(size + [f"{row.n_vars:,}", _cell_s(g), _cell_s(lp), _cell_s(py), lin, pyo, prs])

        mem_ratio = _ratio(g, lp, "mem_mb")
        peaks = " / ".join(_cell_mb(r, "peak_mb") for r in (g, lp, py))
        mem_rows.append(
            size + [_cell_mb(g), _cell_mb(lp), _cell_mb(py), "-" if mem_ratio is None else f"{mem_ratio:.2f}x", peaks]
        )

        if g is not None:
            gl_rows.append(
                size
                + [f"{row.lines:,}"]
                + [f"{g[k]:.3f}" if k in g else "-" for k in ("parse_s", "load_s", "compile_s")]
                + [_same_size(g, row)]
            )

        if row.solved:
            objs = {b: r.get("objective") for b, r in row.results.items() if r is not None}
            values = [v for v in objs.values() if v is not None]
            spread = _objective_spread(values) if len(values) > 1 else None
            if spread is None:
                verdict = "-"
            elif spread > REL_TOL:
                verdict = "FAIL"
            else:
                verdict = "ok" if len(values) == len(objs) == len(BUILDERS) else "ok (partial)"
            cells = []
            for b in BUILDERS:
                r = row.results.get(b)
                if r is None:
                    cells.append("skipped")
                elif r.get("objective") is not None:
                    cells.append(f"{r['objective']:.6f}")
                else:
                    cells.append("n/a")
            check_rows.append(size + cells + ["-" if spread is None else f"{spread:.1e}", verdict])

    out = [
        "Build time, s (gridlang = parse + resolve + compile to a linopy.Model; fastest of --repeat runs)",
        f"targets: gridlang/linopy <= {TARGET_VS_LINOPY}x at {TARGET_VS_LINOPY_MIN_VARS:,}+ variables"
        f" ((n/a) below), pyomo/gridlang >= {TARGET_VS_PYOMO:g}x, parse >= {TARGET_PARSE_LINES_PER_S:,.0f} lines/s",
        grid_table(
            ["buses", "steps", "variables", "gridlang", "linopy", "pyomo", "gridlang/linopy", "pyomo/gridlang",
             "parse lines/s"],
            time_rows,
        ),
        "",
        "Memory, MB: peak RSS added by the build (fresh subprocess per build; "
        f"{next((r['mem_method'] for row in rows for r in row.results.values() if r and 'mem_method' in r), '?')})",
        grid_table(["buses", "steps", "gridlang", "linopy", "pyomo", "gridlang/linopy", "peak RSS g / l / p"], mem_rows),
    ]
    if gl_rows:
        out += [
            "",
            "gridlang detail, s: parse alone (fastest of 3), gridlang.load (parse + resolve), case.compile();"
            " status checks the model's variable and constraint counts",
            grid_table(["buses", "steps", "lines", "parse", "load", "compile", "status"], gl_rows),
        ]
    if check_rows:
        out += [
            "",
            f"Objective check with HiGHS: |a - b| <= {REL_TOL:g} max(|a|, |b|)",
            grid_table(["buses", "steps", "gridlang $", "linopy $", "pyomo $", "rel. spread", "verdict"], check_rows),
        ]
    problems: dict[str, None] = {}
    for row in rows:
        for b, r in row.results.items():
            for key in ("error", "solve_error"):
                if r is not None and key in r:
                    problems[f"  {b} {row.n_buses}x{row.steps}: {r[key]}"] = None
    if problems:
        out += ["", "Errors:", *problems]
    return "\n".join(out)


# ------------------------------------------------------------ command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Model-build scaling: gridlang against hand-written linopy and Pyomo.",
        epilog=__doc__.split("Usage::")[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sizes", default="100,1000,5000", help="comma-separated bus counts (default: 100,1000,5000)")
    p.add_argument("--steps", default="24,96", help="comma-separated steps per day (default: 24,96)")
    p.add_argument("--quick", action="store_true", help="smoke run: 100 and 500 buses x 24 steps")
    p.add_argument("--seed", type=int, default=0, help="feeder seed (default 0)")
    p.add_argument("--repeat", type=int, default=1, help="fresh runs per build, keep the fastest (default 1)")
    p.add_argument("--no-pyomo", action="store_true", help="leave Pyomo out entirely")
    p.add_argument(
        "--pyomo-max-vars",
        type=int,
        default=2_000_000,
        help="skip Pyomo above this many variables (default 2,000,000; 5000x96 has 1.5M)",
    )
    p.add_argument("--check-all", action="store_true", help="solve and compare objectives at every size")
    p.add_argument("--no-check", action="store_true", help="no objective check at all")
    p.add_argument("--linopy-dense", action="store_true", help="hand-written linopy as a dense (padded) model")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per worker process (default 1800)")
    p.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    p.add_argument("--worker", choices=BUILDERS, help=argparse.SUPPRESS)
    p.add_argument("--solve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.steps = "100,500", "24"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes, steps_list = ints(args.sizes), ints(args.steps)

    if args.worker:  # child process: one build, its result on the last stdout line
        try:
            res = worker(args.worker, sizes[0], steps_list[0], args.seed, args.solve, args.linopy_dense)
        except Exception as exc:
            res = {"builder": args.worker, "error": _error_text(exc), "traceback": traceback.format_exc(limit=6)}
        print(RESULT_MARK + json.dumps(res), flush=True)
        return 0

    # the driver imports none of the modelling libraries, so that it stays small
    print(
        f"gridlang compile scaling: python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"gridlang {version('gridlang')}, linopy {version('linopy')} "
        f"({'dense' if args.linopy_dense else 'sparse'} model, v1 semantics), "
        f"pyomo {version('pyomo')}, highspy {version('highspy')}"
    )
    print(f"each build runs in a fresh subprocess after a {WARMUP_BUSES}-bus warm-up build\n", flush=True)

    combos = sorted(((n, s) for n in sizes for s in steps_list), key=lambda c: (c[0] * c[1], c))
    rows: list[Row] = []
    started = time.perf_counter()
    for i, (n, s) in enumerate(combos):
        f = make_feeder(n, s, args.seed)
        solve = not args.no_check and (args.check_all or i == 0)
        row = Row(n, s, f.n_variables(), f.n_constraints(), render_grid(f).count("\n"), solved=solve)
        for builder in BUILDERS:
            label = f"  {n:>5} buses x {s:>3} steps  {builder:<9}"
            if builder == "pyomo" and (args.no_pyomo or row.n_vars > args.pyomo_max_vars):
                why = "--no-pyomo" if args.no_pyomo else f"{row.n_vars:,} variables > --pyomo-max-vars"
                print(f"{label}skipped ({why})", flush=True)
                row.results[builder] = None
                continue
            t0 = time.perf_counter()
            res = best_of(builder, n, s, args, solve)
            state = f"{res['seconds']:.2f} s" if "seconds" in res else f"FAILED: {res.get('error', '?')}"
            if solve:
                state += f", objective {res['objective']:.6f}" if "objective" in res else ", no objective"
            print(f"{label}{state}   [{time.perf_counter() - t0:.0f} s wall]", flush=True)
            row.results[builder] = res
        rows.append(row)

    print(f"\n(total {time.perf_counter() - started:.0f} s)\n")
    print(report(rows))
    if args.json:
        payload = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": [asdict(r) for r in rows]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
