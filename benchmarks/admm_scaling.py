"""ADMM scaling: the decomposition runner on synthetic prosumer cases.

For every size N (agents) a synthetic case is written as ``.grid`` text
(:func:`make_case`): an operator ``dso`` owning a radial LinDistFlow feeder
(``--network copper_plate`` for one power balance per step instead) and a
``grid`` connection at the slack bus ``b0`` with a time-of-use import price,
and N prosumers ``p1..pN``, each owning a PV plant, a battery and a partly
curtailable load at its own bus ``b<k>`` (laterals of ten buses off ``b0``),
24 steps.  There is no market: the nodal balances couple every prosumer with
the operator (two agents per coupling row under LinDistFlow, N + 1 under a
copper plate).  Prosumer data are drawn from ``--seed``; both networks hold
the same prosumers.

Every size is measured in two fresh processes of this script, one after the
other, each after a warm-up on a two-prosumer case (imports and first-use
costs left out) and each reporting its own peak resident memory
(``ru_maxrss``; this process, which only orchestrates, never imports
gridlang, so a child's high-water mark is its own): the *central* one
compiles the case and solves it with HiGHS (``case.solve()``), the
*decomposed* one compiles it and runs the measurements below, given the
central objective for the gap.  A size is run only when each process's
peak, estimated linearly from the two largest sizes run, fits its limit:
the decomposed run's 8 GiB (the target); the central solve's 16 GiB or the
memory available, else the central solve alone is skipped (the reason
printed).  The central process also runs under that limit of address space
(``RLIMIT_AS``): HiGHS's memory grows faster than linearly on a copper
plate (1,000 agents 1 GiB, 10,000 over 22 GiB: ``std::bad_alloc`` in its presolve),
and it then ends ``resource_interrupt`` instead of exhausting a shared
machine; the case is then solved again with HiGHS's presolve off (its dual
simplex needs about 1 GiB there), and the table says so.  Without a central solve that ended optimal the gap and the
decomposed/central ratio are not measured, and the reason is printed.

Three measurements per size, in the decomposed process:

1. **Runner overhead.**  ``gridlang.decompose.solve(built, "admm",
   "serial")`` on a fresh compile.  Inside that process only, Clarabel's
   solver object in every ``LocalSolver`` model (``local.PersistentConic.solver``) is
   wrapped so that its ``solve()`` and ``update()`` calls are timed with
   ``time.perf_counter``, and ``SerialExecutor.solve_all`` (one call per
   ADMM iteration) is timed too.  An iteration's wall time is the difference
   of consecutive ``Step.seconds`` of the trace; its solver time is the sum
   of the Clarabel ``solve()`` calls made in it.  Runner overhead =
   (wall - solver) / wall over iterations 2..n (iteration 1 also builds
   every agent's model and is reported on its own).  The rest of the wall
   time is split into Clarabel's ``update()`` (in-place data update and
   re-equilibration), the local gridlang work around the solver (target,
   linear cost, reduced Hessian, unpacking) and the coordinator (everything
   outside ``solve_all``).  Target: overhead <= 25 %.
2. **In-place update against rebuild.**  The targets ``(v, rho)`` that the
   coordinator sent in iterations 1..K+1 are recorded and replayed on the
   same subproblems three ways: persistent models (``LocalSolver.solve``,
   models built at iteration 1, iterations 2..K+1 timed), a new Clarabel
   model every iteration (``conic.assemble`` + ``clarabel.DefaultSolver`` +
   ``solve``, by dropping the ``LocalSolver``'s model before each solve; the
   headline) and a new ``LocalSolver`` every iteration (also recomputes
   ``C'C``).  The answers of the three must agree.  Target: rebuild /
   update >= 5x.
3. **Convergence.**  Iterations, status, final relative objective gap
   ``|f_admm - f_central| / |f_central|`` and the whole model's primal
   residual at the decomposed point, against the central solve's wall time
   (``case.solve()`` on a compiled case) and the decomposed wall time
   (``decompose.solve``: split, executor, ADMM, collecting the results; its
   ADMM loop alone in brackets), and the peak memory of each process
   (target: the decomposed one <= 8 GiB).

Targets are printed next to the measurements ("ok" / "MISS"), not asserted.
When a target is missed the script profiles (cProfile, probes removed) a
steady-state serial ADMM run of ``--profile-iter`` iterations at the
largest size that missed it, models already built, and prints the top
``--profile`` functions by own time and by cumulative time.

Usage::

    python benchmarks/admm_scaling.py                      # 10, 100, 1,000, 10,000 agents x 24 steps, copper plate then LinDistFlow
    python benchmarks/admm_scaling.py --quick              # 10 and 50 agents, no replay (a smoke test)
    python benchmarks/admm_scaling.py --sizes 200 --max-iter 300 --json admm.json
    python benchmarks/admm_scaling.py --case 20            # print the 20-agent case and exit
    python benchmarks/admm_scaling.py --sizes 50 --workers 2   # also the processes executor, agents in two workers
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# targets printed next to the measurements (not asserted)
TARGET_OVERHEAD = 0.25  # (iteration wall - Clarabel solve) / iteration wall, serial executor
TARGET_SPEEDUP = 5.0  # rebuilding every agent's Clarabel model each iteration / updating it in place
TARGET_WORKERS = 0.6  # processes executor, two workers: wall per iteration / serial's
TARGET_ITERATIONS = 100  # ADMM iterations at every size and on both networks, growing no faster than log N
MEMORY_BUDGET = 8 * 2**30  # bytes: the decomposed run's peak; a size whose estimate exceeds it is skipped, with the reason printed
CENTRAL_LIMIT = 16 * 2**30  # bytes: the central solve is skipped (alone) when its estimated peak exceeds this or the memory available

WARMUP_AGENTS = 2

#: prosumer buses per lateral hanging off the substation bus
LATERAL = 10


def _profiles(steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hour = (np.arange(steps) + 0.5) * 24.0 / steps
    demand = 0.7 + 0.3 * np.sin(2 * np.pi * (hour - 13.0) / 24.0)
    sun = np.where(np.abs(hour - 12.0) < 6.0, 0.9 * np.cos(np.pi * (hour - 12.0) / 12.0) ** 2, 0.0)
    tou = np.full(steps, 60.0)
    tou[(hour < 7.0) | (hour >= 22.0)] = 40.0
    tou[(hour >= 17.0) & (hour < 21.0)] = 90.0
    return np.round(demand, 3), np.round(sun, 3), tou


def make_case(n_agents: int, steps: int = 24, seed: int = 0, network: str = "lindistflow", base_kva: float = 100) -> str:
    """``.grid`` text: the operator ``dso`` with the network and the grid connection
    at ``b0``, and ``n_agents`` prosumers ``p<k>``, each with PV (3-10 kW), a
    battery (5-15 kWh, half of that in kW, 95 % one way) and a load (2-6 kW,
    a quarter of that in kvar, up to 20 % curtailable at 300 $/MWh) at bus
    ``b<k>``.  Buses hang in laterals of :data:`LATERAL` off ``b0``.  The
    system base is ``base_kva`` (100 kVA: an LV community, so that ADMM's
    absolute tolerance of 1e-4 p.u. per coupling row is 10 W, small against
    a prosumer's kW)."""
    rng = np.random.default_rng(seed)
    demand, sun, tou = _profiles(steps)
    # assets first, so that both networks hold the same prosumers
    pv_kw = np.round(rng.uniform(3, 10, n_agents), 1)
    es_kwh = np.round(rng.uniform(5, 15, n_agents), 1)
    load_kw = np.round(rng.uniform(2, 6, n_agents), 1)
    fmt = lambda a: ", ".join(f"{v:g}" for v in a)
    out = [
        f"# synthetic: {n_agents} prosumers and their operator, {steps} steps, {network} (benchmarks/admm_scaling.py, seed {seed})",
        f"system bench {{ base_power = {base_kva} kVA; base_voltage = 12.66 kV; horizon = {steps} h; step = 1 h }}",
        f"profile demand = [{fmt(demand)}]",
        f"profile sun = [{fmt(sun)}]",
        f"profile tou = [{fmt(tou)}] $/MWh",
        f"network feeder uses {network} {{",
    ]
    limits = " vmin = 0.9; vmax = 1.1 " if network == "lindistflow" else ""
    out.append("  bus b0 { slack; v_set = 1.0 }" if network == "lindistflow" else "  bus b0 { slack }")
    out.append(f"  bus b1..b{n_agents} {{{limits}}}")
    if network == "lindistflow":
        out.append("  line table (name, from, to, r [ohm], x [ohm]) {")
        for k in range(1, n_agents + 1):
            parent = 0 if (k - 1) % LATERAL == 0 else k - 1
            out.append(f"    l{k} b{parent} b{k} {rng.uniform(0.1, 0.4):.3f} {rng.uniform(0.05, 0.2):.3f}")
        out.append("  }")
    out.append("}")
    out.append("grid substation at b0 { import_price = tou; export_price = 20 $/MWh }")
    out.append("pv table (name, at, capacity [kW], availability) {")
    out += [f"  pv{k} b{k} {pv_kw[k - 1]:g} sun" for k in range(1, n_agents + 1)]
    out.append("}")
    out.append("storage table (name, at, energy [kWh], power [kW], efficiency [%]) {")
    out += [f"  es{k} b{k} {es_kwh[k - 1]:g} {es_kwh[k - 1] / 2:g} 95" for k in range(1, n_agents + 1)]
    out.append("}")
    out.append("load table (name, at, p [kW], q [kvar], scale, curtailable [%], voll [$/MWh]) {")
    out += [f"  ld{k} b{k} {load_kw[k - 1]:g} {load_kw[k - 1] / 4:g} demand 20 300" for k in range(1, n_agents + 1)]
    out.append("}")
    out.append("agent dso owns feeder, substation")
    out += [f"agent p{k} owns pv{k}, es{k}, ld{k}" for k in range(1, n_agents + 1)]
    out.append("objective minimize cost")
    return "\n".join(out) + "\n"


# ============================================================ probes (the decomposed process only)


class Probe:
    """Times Clarabel's ``solve``/``update`` inside every ``LocalSolver`` model and
    each ``SerialExecutor.solve_all`` call (one per ADMM iteration), and records
    the first targets the coordinator sends.  :meth:`install` monkeypatches
    ``gridlang.decompose.local.PersistentConic.__init__`` and
    ``SerialExecutor.solve_all``; :meth:`uninstall` puts them back."""

    def __init__(self) -> None:
        self.iterations: list[dict[str, float]] = []
        self.record_first = 0  # record the targets of this many solve_all calls
        self.recorded: list[tuple[dict[str, np.ndarray], float]] = []
        self.subs: dict[str, Any] = {}
        self._open()
        self._saved: list[tuple[Any, str, Any]] = []

    def _open(self) -> None:
        self.cur = {"solve": 0.0, "update": 0.0, "build": 0.0, "assemble": 0.0, "solves": 0}

    def reset(self, record_first: int = 0) -> None:
        self.iterations, self.recorded, self.subs, self.record_first = [], [], {}, record_first
        self._open()

    def install(self) -> None:
        from gridlang.decompose import executors, local
        from gridlang.solvers import conic

        probe = self
        conic_init = local.PersistentConic.__init__
        solve_all = executors.SerialExecutor.solve_all
        assemble = conic.assemble

        def timed_assemble(*a, **kw):
            t0 = time.perf_counter()
            form = assemble(*a, **kw)
            probe.cur["assemble"] += time.perf_counter() - t0
            return form

        def timed_init(model, *a, **kw):
            t0 = time.perf_counter()
            conic_init(model, *a, **kw)
            probe.cur["build"] += time.perf_counter() - t0
            model.solver = TimedClarabel(model.solver, probe)

        def timed_solve_all(executor, targets, rho):
            if not probe.subs:
                probe.subs = {a: s.sub for a, s in executor.local.items()}
            if len(probe.recorded) < probe.record_first:
                probe.recorded.append(({a: np.array(v, copy=True) for a, v in targets.items()}, float(rho)))
            t0 = time.perf_counter()
            out = solve_all(executor, targets, rho)
            probe.cur["executor"] = time.perf_counter() - t0
            probe.iterations.append(probe.cur)
            if len(probe.iterations) == 1:
                probe.rss_after_first = rss_now()  # every agent's model built and solved once
            probe._open()
            return out

        self._saved = [(local.PersistentConic, "__init__", conic_init), (executors.SerialExecutor, "solve_all", solve_all), (conic, "assemble", assemble)]
        local.PersistentConic.__init__ = timed_init
        conic.assemble = timed_assemble  # PersistentConic looks it up on the module at every build
        executors.SerialExecutor.solve_all = timed_solve_all

    def uninstall(self) -> None:
        for owner, name, original in self._saved:
            setattr(owner, name, original)
        self._saved = []


class TimedClarabel:
    """Stands in for a ``clarabel.DefaultSolver``: times ``solve`` and ``update``."""

    def __init__(self, solver: Any, probe: Probe) -> None:
        self._solver, self._probe = solver, probe

    def solve(self):
        t0 = time.perf_counter()
        sol = self._solver.solve()
        cur = self._probe.cur
        cur["solve"] += time.perf_counter() - t0
        cur["solves"] += 1
        return sol

    def update(self, **data):
        t0 = time.perf_counter()
        self._solver.update(**data)
        self._probe.cur["update"] += time.perf_counter() - t0

    def __getattr__(self, name: str):
        return getattr(self._solver, name)


PROBE = Probe()


# ============================================================ measurements


def central(text: str) -> dict[str, Any]:
    import gridlang

    t0 = time.perf_counter()
    case = gridlang.load(text)
    t1 = time.perf_counter()
    built = case.built
    t2 = time.perf_counter()
    result = case.solve()
    t3 = time.perf_counter()
    failed = None
    if result.termination == "resource_interrupt" and result.solver == "highs":
        # HiGHS's presolve ran out of memory (10,000 copper-plate agents: std::bad_alloc past 22 GiB,
        # the 24 balance rows hold 30,000 entries each); its dual simplex alone needs about 1 GiB
        failed = t3 - t2
        result = case.solve("highs", presolve="off")
        t2, t3 = t3, time.perf_counter()
    m = built.model
    return {
        "termination": result.termination,  # the gap and the ratio are measured only against "optimal"
        "presolve_failed_s": failed,  # HiGHS ran out of memory in presolve after this long; solve_s is the run without presolve
        "load_s": t1 - t0,
        "compile_s": t2 - t1,
        "solve_s": t3 - t2,
        "objective": float(result.objective),
        "solver": result.solver,
        "variables": int(m._xCounter),
        "constraints": int(m._cCounter),
    }


def decomposed(text: str, settings: dict[str, Any], record: int) -> tuple[dict[str, Any], Any]:
    import gridlang
    from gridlang import decompose

    built = gridlang.load(text).built
    PROBE.reset(record_first=record + 1)
    rss_before = rss_now()
    t0 = time.perf_counter()
    result, run = decompose.solve(built, "admm", "serial", **settings)
    wall = time.perf_counter() - t0
    peak = peak_rss()  # this process so far: the warm-up, the compile and the decomposed run
    per = PROBE.iterations
    if len(per) != run.iterations:
        raise RuntimeError(f"{len(per)} executor calls for {run.iterations} iterations: the probe lost track")
    seconds = np.array([s.seconds for s in run.trace])
    it_wall = np.diff(seconds, prepend=0.0)
    col = lambda key: np.array([p[key] for p in per], dtype=float)
    solve, update, build, executor = col("solve"), col("update"), col("build"), col("executor")
    local = executor - solve - update - build
    coord = it_wall - executor
    steady = slice(1, None) if run.iterations > 1 else slice(0, None)
    if (col("solves") != len(PROBE.subs)).any():  # e.g. a subproblem on HiGHS: its solver time would be missed
        raise RuntimeError("not every agent's subproblem was solved by a timed Clarabel model in every iteration")
    W = float(it_wall[steady].sum())
    parts = {"clarabel_solve": solve, "clarabel_update": update, "local_gridlang": local, "coordinator": coord}
    agents = len(PROBE.subs)
    out = {
        "variables": int(built.model._xCounter),
        "constraints": int(built.model._cCounter),
        "status": run.status,
        "iterations": run.iterations,
        "peak_rss": peak,
        "state_bytes_per_agent": (PROBE.rss_after_first - rss_before) / max(agents, 1),  # split, penalties, every agent's model
        "objective": float(result.objective),
        "residual": float(result.residual),
        "rho_final": float(run.rho),
        "wall_s": wall,
        "admm_loop_s": float(seconds[-1]) if len(seconds) else 0.0,
        "first_iteration": {"wall_s": float(it_wall[0]), "build_s": float(build[0]), "solve_s": float(solve[0])},
        "steady": {
            "iterations": len(it_wall[steady]),
            "wall_per_iter_s": float(np.median(it_wall[steady])),
            "solver_per_iter_s": float(np.median(solve[steady])),
            "wall_s": W,
            "solver_s": float(solve[steady].sum()),
            "overhead": (W - float(solve[steady].sum())) / W if W > 0 else float("nan"),
            "shares": {k: float(v[steady].sum()) / W for k, v in parts.items()},
            "solves_per_iter": float(np.mean(col("solves")[steady])),
        },
        "per_iteration": {
            "wall_s": it_wall.tolist(),
            "solver_s": solve.tolist(),
            "update_s": update.tolist(),
            "executor_s": executor.tolist(),
            "primal": [s.primal for s in run.trace],
            "dual": [s.dual for s in run.trace],
            "rho": [s.rho for s in run.trace],
        },
    }
    return out, run


def free_cores(seconds: float = 0.3) -> float:
    """Cores free for this job now: two CPU-bound processes side by side against one
    alone (2.0: both cores free; 1.0: only one, e.g. another job holds the other)."""
    import multiprocessing as mp

    def spin(n: int) -> None:
        x = 0
        for i in range(n):
            x += i

    n = 1
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds / 4:  # calibrate: a loop of about ``seconds``
        n *= 2
        t0 = time.perf_counter()
        spin(n)
    n = int(n * seconds / max(time.perf_counter() - t0, 1e-6))
    ctx = mp.get_context("fork")
    t0 = time.perf_counter()
    spin(n)
    alone = time.perf_counter() - t0
    procs = [ctx.Process(target=spin, args=(n,)) for _ in range(2)]
    t0 = time.perf_counter()
    for q in procs:
        q.start()
    for q in procs:
        q.join()
    return min(2.0, 2 * alone / (time.perf_counter() - t0))


def in_workers(text: str, settings: dict[str, Any], workers: int, repeat: int = 3) -> dict[str, Any]:
    """The same ADMM run serially and with the ``processes`` executor (agents batched
    into ``workers`` processes), one after the other ``repeat`` times, the probes of
    measurement 1 removed (a forked worker would inherit them): per-iteration wall
    time over iterations 2..n (the first also builds every model), medians.  From the
    workers' own clocks (``ProcessExecutor.timing``): the exchange per iteration
    (round trip minus the slowest worker's time on the request) and the workers'
    CPU / wall (below 1: a worker waited for a core).  ``free`` is :func:`free_cores`
    measured before each pair.  ``cpu_estimate``: the ratio two free cores would give,
    from CPU clocks (a model, not a measurement): the coordinator's CPU per iteration
    (this process, between progress calls) plus the busiest worker's CPU on its
    request, over the serial run's CPU per iteration.  The executor's start-up
    (built and ready) apart."""
    import gridlang
    from gridlang import decompose
    from gridlang.decompose.executors import ProcessExecutor
    from gridlang.decompose.split import split

    PROBE.uninstall()  # for good: measurement 1 and the replay are done
    built = gridlang.load(text).built
    t0 = time.perf_counter()
    pool = ProcessExecutor(split(built).subproblems, workers)
    pool.ready()
    startup = time.perf_counter() - t0
    count, start = len(pool.workers), pool.start
    pool.close()
    pools: list = []
    original = ProcessExecutor.close

    def close(self) -> None:
        pools.append(self)
        original(self)

    def per_iteration(run) -> tuple[float, float]:
        it_wall = np.diff([s.seconds for s in run.trace], prepend=0.0)
        return float(np.median(it_wall[1:] if run.iterations > 1 else it_wall)), float(it_wall[0])

    def cpu_per_iteration(clock: list[float]) -> float:
        return float(np.median(np.diff(clock)[1:])) if len(clock) > 2 else float("nan")

    reps = []
    for _ in range(repeat):
        free = free_cores()
        load = os.getloadavg()[0]
        s_clock: list[float] = [time.process_time()]
        _, s_run = decompose.solve(gridlang.load(text).built, "admm", "serial", progress=lambda step: s_clock.append(time.process_time()), **settings)
        ProcessExecutor.close = close
        p_clock: list[float] = []
        try:
            t0 = time.perf_counter()
            p_clock.append(time.process_time())
            result, run = decompose.solve(gridlang.load(text).built, "admm", "processes", workers=workers, progress=lambda step: p_clock.append(time.process_time()), **settings)
            wall = time.perf_counter() - t0
        finally:
            ProcessExecutor.close = original
        timing = pools[-1].timing[1:]
        worker_cpu = float(np.median([max(c for _, c in busy) for _, busy in timing]))
        estimate = (cpu_per_iteration(p_clock) + worker_cpu) / cpu_per_iteration(s_clock)
        exchange = [trip - max(w for w, _ in busy) for trip, busy in timing]
        cpu = [c / w for _, busy in timing for w, c in busy if w > 0]
        (serial_it, _), (procs_it, first) = per_iteration(s_run), per_iteration(run)
        reps.append({"free_cores": free, "load": load, "serial_per_iter_s": serial_it, "wall_per_iter_s": procs_it, "ratio": procs_it / serial_it,
                     "first_iteration_s": first, "exchange_s": float(np.median(exchange)), "worker_cpu_share": float(np.median(cpu)), "cpu_estimate": estimate,
                     "wall_s": wall, "iterations": run.iterations, "status": run.status, "objective": float(result.objective)})
    med = lambda key: float(np.median([r[key] for r in reps]))
    return {"workers": count, "start": start, "startup_s": startup, "repeats": reps, **{k: med(k) for k in reps[0] if k not in ("status", "iterations", "objective")},
            "iterations": reps[-1]["iterations"], "status": reps[-1]["status"], "objective": reps[-1]["objective"]}


def replay(k: int) -> dict[str, Any]:
    """Replay the recorded targets: persistent models vs a new model every iteration."""
    from gridlang.decompose.local import LocalSolver

    recorded, subs = PROBE.recorded, PROBE.subs
    k = min(k, len(recorded) - 1)
    if k < 1:
        return {"iterations": 0}
    # persistent: built at the first target, then updated in place
    persistent = {a: LocalSolver(s) for a, s in subs.items()}
    first, rho0 = recorded[0]
    for a, v in first.items():
        persistent[a].solve(v, rho0)
    PROBE.reset()
    answers_update = []
    t0 = time.perf_counter()
    for targets, rho in recorded[1 : k + 1]:
        answers_update.append({a: persistent[a].solve(v, rho) for a, v in targets.items()})
    update_s = time.perf_counter() - t0
    update_solver = PROBE.cur["solve"]
    # a new Clarabel model (conic assembly + DefaultSolver set-up) for every solve
    fresh = {a: LocalSolver(s) for a, s in subs.items()}  # C'C once, as the persistent ones
    PROBE.reset()
    answers_rebuild = []
    t0 = time.perf_counter()
    for targets, rho in recorded[1 : k + 1]:
        step = {}
        for a, v in targets.items():
            fresh[a]._model = None
            step[a] = fresh[a].solve(v, rho)
        answers_rebuild.append(step)
    rebuild_s = time.perf_counter() - t0
    rebuild_solver, rebuild_build, rebuild_assemble = PROBE.cur["solve"], PROBE.cur["build"], PROBE.cur["assemble"]
    # a new LocalSolver for every solve
    PROBE.reset()
    t0 = time.perf_counter()
    answers_local = [{a: LocalSolver(subs[a]).solve(v, rho) for a, v in targets.items()} for targets, rho in recorded[1 : k + 1]]
    local_s = time.perf_counter() - t0
    diff = max(
        max(float(np.max(np.abs(u[a] - r[a]), initial=0.0)), float(np.max(np.abs(u[a] - l[a]), initial=0.0)))
        for u, r, l in zip(answers_update, answers_rebuild, answers_local)
        for a in u
    )
    return {
        "iterations": k,
        "update_s": update_s,
        "update_solver_s": update_solver,
        "rebuild_s": rebuild_s,
        "rebuild_solver_s": rebuild_solver,
        "rebuild_build_s": rebuild_build,  # PersistentConic.__init__: conic.assemble + clarabel.DefaultSolver set-up
        "rebuild_assemble_s": rebuild_assemble,
        "new_localsolver_s": local_s,
        "speedup": rebuild_s / update_s,
        "speedup_new_localsolver": local_s / update_s,
        "speedup_ceiling": rebuild_s / update_solver,  # if updating cost nothing but Clarabel's solve()
        "max_answer_diff": diff,
    }


# ============================================================ the two processes of a size


def measure_central(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """The central process: a warm-up, then ``n`` agents compiled and solved with HiGHS; its peak RSS."""
    central(make_case(WARMUP_AGENTS, args.steps, args.seed, args.network))
    out = central(make_case(n, args.steps, args.seed, args.network))
    out["peak_rss"] = peak_rss()
    return out


def measure_decomposed(n: int, args: argparse.Namespace, central_objective: float | None) -> dict[str, Any]:
    """The decomposed process: a warm-up, measurements 1 and 2 (and 4 with ``--workers``),
    the gap to ``central_objective`` (None: the central solve was skipped, no gap)."""
    PROBE.install()
    decomposed(make_case(WARMUP_AGENTS, args.steps, args.seed, args.network), {"max_iter": 20}, 0)
    text = make_case(n, args.steps, args.seed, args.network)
    settings = {"max_iter": args.max_iter} if args.max_iter else {}
    if args.tol is not None:
        settings["tol"] = args.tol
    d, _ = decomposed(text, settings, args.replay)
    r = replay(args.replay) if n <= args.replay_max else {"iterations": 0}
    d["gap"] = None if central_objective is None else abs(d["objective"] - central_objective) / max(abs(central_objective), 1e-12)
    w = in_workers(text, settings, args.workers, args.worker_repeat) if args.workers else None
    return {"admm": d, "replay": r, "processes": w}


def in_child(kind: str, n: int, args: argparse.Namespace, central_objective: float | None = None, memory_limit: float | None = None) -> Any:
    """Run ``kind`` (central, decomposed or profile) for ``n`` agents in a fresh process of
    this script (:func:`child`) and return what it measured.  ``memory_limit``: bytes of
    address space the process may take (``RLIMIT_AS``), so that a solver whose memory grows
    faster than estimated fails there (HiGHS then ends ``resource_interrupt``) instead of
    exhausting the machine."""
    with tempfile.TemporaryDirectory(prefix="admm_scaling.") as tmp:
        spec = Path(tmp, "spec.json")
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        spec.write_text(json.dumps({"kind": kind, "agents": n, "central_objective": central_objective, "memory_limit": memory_limit, "args": settings}))
        sys.stdout.flush()
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(spec)])
        if done.returncode:
            raise RuntimeError(f"the {kind} process for {n} agents failed (exit status {done.returncode})")
        return json.loads(spec.with_suffix(".out").read_text())


def child(spec_path: Path) -> int:
    """The body of a process started by :func:`in_child`: the result goes next to the spec."""
    spec = json.loads(spec_path.read_text())
    args, n, kind = argparse.Namespace(**spec["args"]), spec["agents"], spec["kind"]
    if spec["memory_limit"]:
        limit = int(spec["memory_limit"])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if kind == "central":
        out = measure_central(n, args)
    elif kind == "decomposed":
        out = measure_decomposed(n, args, spec["central_objective"])
    else:
        out = profile(n, args)
    spec_path.with_suffix(".out").write_text(json.dumps(out))
    return 0


def available_memory() -> float:
    """The memory available to a new process now, in bytes (``MemAvailable``; infinite where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return float("inf")


def rss_now() -> int:
    """This process's resident memory now, in bytes (``/proc/self/statm``; the peak where it is missing)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_rss()


def peak_rss() -> int:
    """This process's peak resident memory so far, in bytes (``ru_maxrss`` is in KiB on Linux).
    Linux carries the high-water mark of the process that started this one over its
    ``exec``; that process (the orchestrator, numpy only) is small, so the peak is this one's."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def log_growth(rows: list[dict[str, Any]]) -> list[bool]:
    """Whether each size's iterations grow no faster than log N from the smallest size's:
    ``it(N) <= it(N0) max(1, ln N / ln N0)`` (plus 5 iterations of slack for noise)."""
    if not rows:
        return []
    n0, it0 = rows[0]["agents"], rows[0]["admm"]["iterations"]
    return [r["admm"]["iterations"] <= it0 * max(1.0, np.log(r["agents"]) / np.log(max(n0, 2))) + 5 for r in rows]


def profile(n: int, args: argparse.Namespace) -> str:
    """cProfile of a steady-state serial ADMM run (models built beforehand), in a process without the probes."""
    import gridlang
    from gridlang.decompose.admm import _price_scale, admm, penalties
    from gridlang.decompose.executors import SerialExecutor
    from gridlang.decompose.run import settings_for
    from gridlang.decompose.split import split

    built = gridlang.load(make_case(n, args.steps, args.seed, args.network)).built
    settings = settings_for(built, "admm", {"max_iter": args.profile_iter, **({"tol": args.tol} if args.tol is not None else {})})
    parts = split(built)
    if settings.row_scaling:  # as decompose.solve does
        parts = penalties(parts)
    pool = SerialExecutor(parts.subproblems)
    rho = settings.rho if settings.rho is not None else _price_scale(parts)  # the coordinator's first rho
    pool.solve_all({s.agent: np.zeros(len(s.rows)) for s in parts.subproblems}, rho)  # build every model
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    run = admm(parts, pool, settings)
    prof.disable()
    wall = time.perf_counter() - t0
    buf = io.StringIO()
    buf.write(f"cProfile: serial ADMM, {n} agents, {run.iterations} iterations, {wall:.2f} s under the profiler\n")
    for key in ("tottime", "cumulative"):
        buf.write(f"--- top {args.profile} by {key}\n")
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(args.profile)
    return buf.getvalue()


# ============================================================ report


def mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[int]:
    """Print the tables; return the sizes that missed a target."""
    missed = []
    print()
    print(f"1. Runner overhead, serial executor (iterations 2..n; target <= {TARGET_OVERHEAD:.0%})")
    head = f"{'agents':>6} {'vars':>7} {'iters':>5} {'wall/it':>9} {'solver/it':>9} {'overhead':>8} {'':4} {'update':>6} {'local':>6} {'coord':>6} {'it 1':>8} {'(build)':>8}"
    print(head)
    for row in rows:
        s, f = row["admm"]["steady"], row["admm"]["first_iteration"]
        sh = s["shares"]
        ok = s["overhead"] <= TARGET_OVERHEAD
        print(
            f"{row['agents']:>6} {row['admm']['variables']:>7} {row['admm']['iterations']:>5} {s['wall_per_iter_s'] * 1e3:>7.1f}ms {s['solver_per_iter_s'] * 1e3:>7.1f}ms "
            f"{s['overhead']:>8.1%} {mark(ok):4} {sh['clarabel_update']:>6.1%} {sh['local_gridlang']:>6.1%} {sh['coordinator']:>6.1%} {f['wall_s'] * 1e3:>6.0f}ms {f['build_s'] * 1e3:>6.0f}ms"
        )
        if not ok:
            missed.append(row["agents"])
    print("   wall/it, solver/it: medians per iteration; solver = Clarabel solve() calls; overhead = (wall - solver) / wall over the steady iterations,")
    print("   split into Clarabel update() (in place), local gridlang work around the solver, and the coordinator; it 1 also builds every model.")
    print()
    print(f"2. In-place update vs rebuilding the Clarabel model, replayed targets (target >= {TARGET_SPEEDUP:g}x)")
    print(f"{'agents':>6} {'K':>3} {'update':>9} {'(solver)':>9} {'rebuild':>9} {'(assemble':>9} {'set-up':>8} {'solver)':>8} {'speed-up':>8} {'':4} {'ceiling':>7} {'new LS':>7} {'max |dy|':>8}")
    for row in rows:
        r = row["replay"]
        if not r.get("iterations"):
            print(f"{row['agents']:>6}   - (too few iterations to replay)")
            continue
        k = r["iterations"]

        def ms(key: str, r: dict[str, Any] = r, k: int = k) -> str:
            return f"{r[key] / k * 1e3:>7.1f}ms"

        ok = r["speedup"] >= TARGET_SPEEDUP
        setup = f"{(r['rebuild_build_s'] - r['rebuild_assemble_s']) / k * 1e3:>6.1f}ms"
        print(
            f"{row['agents']:>6} {k:>3} {ms('update_s')} {ms('update_solver_s')} {ms('rebuild_s')} {ms('rebuild_assemble_s')} {setup} {r['rebuild_solver_s'] / k * 1e3:>6.1f}ms "
            f"{r['speedup']:>7.2f}x {mark(ok):4} {r['speedup_ceiling']:>6.2f}x {r['speedup_new_localsolver']:>6.2f}x {r['max_answer_diff']:>8.1e}"
        )
        if not ok and row["agents"] not in missed:
            missed.append(row["agents"])
    print("   per iteration over all agents. update: persistent models (LocalSolver.solve); rebuild: a new Clarabel model per agent and")
    print("   iteration (conic.assemble + clarabel.DefaultSolver set-up + solve); ceiling: rebuild / update's Clarabel solve() time, the")
    print("   speed-up if updating cost nothing else; new LS: a new LocalSolver per solve; max |dy|: largest difference between the answers.")
    print()
    print(f"3. Convergence against the central solve (iterations: target <= {TARGET_ITERATIONS}, growing no faster than log N)")
    print(f"{'agents':>6} {'status':>15} {'iters':>5} {'':4} {'log N':>5} {'gap':>9} {'residual':>9} {'central':>9} {'decomposed':>11} {'(ADMM loop)':>11} {'ratio':>7} "
          f"{'decomposed peak':>15} {'':4} {'central peak':>12} {'state/agent':>11}")
    for row, slow in zip(rows, log_growth(rows)):
        a, c = row["admm"], row["central"]
        ok = a["iterations"] <= TARGET_ITERATIONS and a["status"] == "converged"
        gap, solve, ratio = (f"{a['gap']:>9.2e}", f"{c['solve_s']:>8.2f}s", f"{a['wall_s'] / c['solve_s']:>6.1f}x") if trusted(c) else ("-", "-", "-")
        c_peak = f"{c['peak_rss'] / 2**20:>9.0f}MiB" if c else "-"
        print(
            f"{row['agents']:>6} {a['status']:>15} {a['iterations']:>5} {mark(ok):4} {mark(slow):>5} {gap:>9} {a['residual']:>9.1e} {solve:>9} {a['wall_s']:>10.2f}s {a['admm_loop_s']:>10.2f}s {ratio:>7} "
            f"{a['peak_rss'] / 2**20:>12.0f}MiB {mark(a['peak_rss'] <= MEMORY_BUDGET):4} {c_peak:>12} {a['state_bytes_per_agent'] / 2**10:>8.0f}KiB"
        )
        if not (ok and slow) and row["agents"] not in missed:
            missed.append(row["agents"])
    for row in rows:
        if row["central_note"]:
            print(f"   {row['agents']} agents: {row['central_note']}.")
    print("   log N: iterations within the smallest size's x ln N / ln N0 (+5); ratio: decomposed / central wall time;")
    print(f"   decomposed peak, central peak: the peak RSS of each size's decomposed process (target <= {MEMORY_BUDGET / 2**30:.0f} GiB: warm-up, compile, decompose.solve)")
    print("   and of its central process (warm-up, compile, HiGHS), two fresh processes one after the other;")
    print("   state/agent: resident memory added from before the split to after the first iteration (every agent's model built), per agent.")
    print("   gap = |f_admm - f_central| / |f_central|; residual: the whole model's primal residual at the decomposed point (p.u.);")
    solver = next((r["central"]["solver"] for r in rows if r["central"]), "")
    print(f"   central = case.solve() on a compiled case ({solver}); decomposed = decompose.solve (split, models, ADMM, results).")
    if args.workers:
        print()
        print(f"4. The processes executor, agents batched into at most {args.workers} workers, against serial, {args.worker_repeat} pairs of runs one after the other "
              f"(iterations 2..n; medians; target <= {TARGET_WORKERS:g}x serial per iteration)")
        print(f"{'agents':>6} {'workers':>7} {'start-up':>9} {'iters':>5} {'serial/it':>9} {'procs/it':>9} {'ratio':>6} {'':4} {'exchange':>8} {'wk cpu':>6} {'cpu est':>7} {'free':>5} {'load':>5} {'it 1':>8} {'|df|/|f|':>9}")
        for row in rows:
            w, a = row["processes"], row["admm"]
            ok = w["ratio"] <= TARGET_WORKERS
            print(f"{row['agents']:>6} {w['workers']:>4} {'fk' if w['start'] == 'fork' else 'sp':>2} {w['startup_s']:>8.2f}s {w['iterations']:>5} {w['serial_per_iter_s'] * 1e3:>7.1f}ms {w['wall_per_iter_s'] * 1e3:>7.1f}ms "
                  f"{w['ratio']:>5.2f}x {mark(ok):4} {w['exchange_s'] * 1e3:>6.2f}ms {w['worker_cpu_share']:>6.0%} {w['cpu_estimate']:>6.2f}x {w['free_cores']:>5.2f} {w['load']:>5.2f} {w['first_iteration_s'] * 1e3:>6.0f}ms "
                  f"{abs(w['objective'] - a['objective']) / max(abs(a['objective']), 1e-12):>9.1e}")
            print("       pairs (serial/it, procs/it, ratio, free cores): " + "; ".join(f"{r['serial_per_iter_s'] * 1e3:.1f}, {r['wall_per_iter_s'] * 1e3:.1f} ms, {r['ratio']:.2f}x, {r['free_cores']:.2f}" for r in w["repeats"]))
            if not ok and row["agents"] not in missed:
                missed.append(row["agents"])
        print("   start-up: workers started (fk: forked, sp: spawned), each holding its batch of agents (built and ready); serial/it, procs/it: wall per iteration,")
        print("   each run without the probes of measurement 1; ratio: median of the pairs' ratios; exchange: round trip minus the slowest worker's own time on it;")
        print("   wk cpu: the workers' CPU time / their wall time on a request (below 100 %: waiting for a core); free: cores free for this job before the pair")
        print("   (two CPU-bound processes side by side against one alone; 2.00: both); load: the 1-minute load average; cpu est: the ratio two free cores would give,")
        print("   from CPU clocks (coordinator's CPU per iteration + the busiest worker's, over serial's; an estimate); it 1: the first iteration of the processes run")
        print("   (every model built in its worker); |df|/|f|: objective against measurement 1's serial run.")
    return missed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("Usage::")[-1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10,100,1000,10000", help="comma-separated agent counts (default: 10,100,1000,10000; a size is run only when its decomposed run's estimated peak memory fits in 8 GiB and its estimated time in --time-budget, else extrapolated; the central solve alone is skipped when its estimated peak exceeds 16 GiB or the memory available)")
    p.add_argument("--time-budget", type=float, default=900.0, metavar="S", help="skip (and extrapolate) a size whose estimated measurement time exceeds S seconds (default 900)")
    p.add_argument("--quick", action="store_true", help="10 and 50 agents, no replay: a smoke test")
    p.add_argument("--steps", type=int, default=24, help="steps of one hour (default 24)")
    p.add_argument("--network", choices=("lindistflow", "copper_plate", "both"), default="both", help="network of the communities (default both, one after the other)")
    p.add_argument("--replay-max", type=int, default=200, metavar="N", help="replay (measurement 2) only up to N agents (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-iter", type=int, default=0, help="ADMM iteration cap (default: gridlang's, 2000)")
    p.add_argument("--tol", type=float, default=None, help="ADMM absolute tolerance per coupling row (default: gridlang's, 1e-7 p.u.)")
    p.add_argument("--replay", type=int, default=20, metavar="K", help="iterations replayed for update vs rebuild (default 20)")
    p.add_argument("--profile", type=int, default=20, metavar="N", help="functions listed when a target is missed (default 20; 0: no profile)")
    p.add_argument("--profile-iter", type=int, default=40, help="iterations of the profiled run (default 40)")
    p.add_argument("--per-iteration", action="store_true", help="print every iteration's wall and solver time")
    p.add_argument("--case", type=int, metavar="N", help="print the N-agent case text and exit")
    p.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    p.add_argument("--workers", type=int, default=0, metavar="K", help="also run the processes executor with the agents in at most K workers (default 0: not run)")
    p.add_argument("--worker-repeat", type=int, default=3, metavar="R", help="pairs of serial and processes runs for measurement 4 (default 3; medians)")
    p.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # a measuring process: the spec file written by in_child
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args.child)
    if args.network == "both":
        code = 0
        for network in ("copper_plate", "lindistflow"):
            code |= main_one(argparse.Namespace(**{**vars(args), "network": network, "json": args.json.with_suffix(f".{network}.json") if args.json else None}))
            print()
        return code
    return main_one(args)


def peak_estimate(n: int, rows: list[dict[str, Any]], process: str) -> tuple[float, float]:
    """The peak RSS of the ``process`` ("admm": decomposed, or "central") at ``n`` agents and
    its growth per agent: linear through the two largest sizes where it ran, through the
    origin from one (an upper bound when the peak has a positive intercept), 0 from none."""
    points = [(r["agents"], r[process]["peak_rss"]) for r in rows if r[process]]
    if not points:
        return 0.0, 0.0
    if len(points) == 1:
        (n1, m1), = points
        return m1 * n / n1, m1 / n1
    (n1, m1), (n2, m2) = points[-2:]
    per = max((m2 - m1) / max(n2 - n1, 1), 0.0)
    return m2 + per * (n - n2), per


def trusted(central: dict[str, Any] | None) -> bool:
    """Whether a central solve ran and ended optimal (the gap and the ratio are measured against it)."""
    return bool(central) and central["termination"] == "optimal"


def too_big(n: int, rows: list[dict[str, Any]], process: str, limit: float) -> str | None:
    """Why ``process`` at ``n`` agents would not fit in ``limit`` bytes (None if it would)."""
    estimate, per = peak_estimate(n, rows, process)
    if estimate > limit:
        return f"estimated peak {estimate / 2**30:.1f} GiB ({per / 2**20:.2f} MiB per agent) over {limit / 2**30:.1f} GiB"
    return None


def extrapolate(n: int, rows: list[dict[str, Any]], why: str) -> str:
    """What ``n`` agents would give, from the sizes run: iterations by a least-squares fit
    ``a + b ln N``, times and memory linear in N from the largest size.  Labelled as an estimate."""
    if not rows:
        return f"{n} agents NOT RUN ({why})"
    last = rows[-1]
    scale = n / last["agents"]
    ns = np.array([r["agents"] for r in rows], dtype=float)
    its = np.array([r["admm"]["iterations"] for r in rows], dtype=float)
    fit = np.polyfit(np.log(ns), its, 1) if len(rows) >= 2 else np.array([0.0, its[-1]])
    a = last["admm"]
    central = f"central {last['central']['solve_s'] * scale:.0f} s, " if trusted(last["central"]) else ""
    return (f"{n} agents NOT RUN ({why}); EXTRAPOLATED from {', '.join(str(r['agents']) for r in rows)} agents: "
            f"about {np.polyval(fit, np.log(n)):.0f} iterations (fit {fit[1]:.1f} + {fit[0]:.1f} ln N), {central}"
            f"decomposed {a['wall_s'] * scale:.0f} s (ADMM loop {a['admm_loop_s'] * scale:.0f} s, if iterations stayed at {a['iterations']}), "
            f"decomposed peak {peak_estimate(n, rows, 'admm')[0] / 2**30:.2f} GiB, central peak {peak_estimate(n, rows, 'central')[0] / 2**30:.2f} GiB, "
            f"state {a['state_bytes_per_agent'] / 2**10:.0f} KiB per agent")


def main_one(args: argparse.Namespace) -> int:
    if args.case:
        sys.stdout.write(make_case(args.case, args.steps, args.seed, args.network))
        return 0
    sizes = [10, 50] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.quick:
        args.replay, args.profile = 0, 0
    from importlib.metadata import version  # gridlang itself is imported only in the measuring processes

    print(f"ADMM scaling: {args.network}, {args.steps} steps, sizes {sizes}, max_iter {args.max_iter or 'default'}; "
          f"Python {platform.python_version()}, gridlang {version('gridlang')}, clarabel {version('clarabel')}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    t_all = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for n in sizes:
        why = too_big(n, rows, "admm", MEMORY_BUDGET)
        why = why and f"the decomposed run's {why}"
        if not why and rows and rows[-1]["seconds"] * n / rows[-1]["agents"] > args.time_budget:
            why = f"estimated {rows[-1]['seconds'] * n / rows[-1]['agents']:.0f} s, over --time-budget {args.time_budget:.0f} s"
        if why:
            print("  " + extrapolate(n, rows, why), flush=True)
            continue
        t0 = time.perf_counter()
        limit = min(CENTRAL_LIMIT, available_memory())
        skipped = too_big(n, rows, "central", limit)
        c = None
        if skipped:
            note = f"central solve not run (estimated peak over the limit: {skipped}): gap and ratio not measured"
        else:
            try:
                c = in_child("central", n, args, memory_limit=limit)
            except RuntimeError as e:  # e.g. a MemoryError at the address-space limit
                note = f"{e} under its limit of {limit / 2**30:.1f} GiB of address space: gap and ratio not measured"
        if c and not trusted(c):
            note = f"the central solve ended '{c['termination']}' after {c['solve_s']:.0f} s (peak {c['peak_rss'] / 2**30:.2f} GiB, limit {limit / 2**30:.1f} GiB of address space): gap and ratio not measured"
        elif c and c["presolve_failed_s"] is not None:
            note = (f"HiGHS's presolve ran out of memory after {c['presolve_failed_s']:.0f} s (limit {limit / 2**30:.1f} GiB of address space; the central peak includes it): "
                    "the central time and objective are HiGHS's without presolve")
        elif c:
            note = None
        row = {"agents": n, "steps": args.steps, "network": args.network, "central": c, "central_note": note,
               **in_child("decomposed", n, args, c["objective"] if trusted(c) else None), "seconds": 0.0}
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        a = row["admm"]
        central_s = f"central {c['solve_s']:.2f} s (peak {c['peak_rss'] / 2**20:.0f} MiB)" if trusted(c) else note
        gap = f", gap {a['gap']:.1e}" if trusted(c) else ""
        print(f"  {n} agents: {a['variables']} variables, {central_s}, ADMM {a['status']} after {a['iterations']} iterations "
              f"in {a['wall_s']:.1f} s (peak {a['peak_rss'] / 2**20:.0f} MiB){gap}; {row['seconds']:.0f} s for both processes, load average {os.getloadavg()[0]:.1f}", flush=True)
        if args.per_iteration:
            pi = a["per_iteration"]
            print(f"    {'it':>5} {'wall':>9} {'solver':>9} {'overhead':>8} {'primal':>9} {'dual':>9} {'rho':>9}")
            for i, (w, s) in enumerate(zip(pi["wall_s"], pi["solver_s"])):
                print(f"    {i + 1:>5} {w * 1e3:>7.2f}ms {s * 1e3:>7.2f}ms {(w - s) / w:>8.1%} {pi['primal'][i]:>9.2e} {pi['dual'][i]:>9.2e} {pi['rho'][i]:>9.3g}")
    missed = report(rows, args)
    profiles = {}
    if missed and args.profile > 0:
        n = max(missed)
        print(f"\nA target was missed at {', '.join(map(str, missed))} agents: profiling {n} agents.", flush=True)
        profiles[n] = in_child("profile", n, args)
        print(profiles[n])
    print(f"total {time.perf_counter() - t_all:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows, "profiles": profiles}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
