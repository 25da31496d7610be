"""Edge and cloud on Ray against the in-process serial run of the same case in parts.

For every size N (agents) the synthetic prosumer community of
``admm_scaling.make_case`` (an operator ``dso`` owning a radial LinDistFlow
feeder and the grid connection, N prosumers with PV, a battery and a partly
curtailable load at their own buses, 24 hourly steps) is written as one
``.grid`` file in a temporary folder, solved centrally (``gridlang.load(file)
.solve()``, HiGHS), and split into parts with gridlang's own split
(``gridlang.parts.split.split_case``: ``cloud.grid`` and ``pK/pK.grid``).
Each prosumer is coupled with the operator alone, so the method is ATC
(``gridlang.decompose.run.choose`` on the whole case says so; ADMM otherwise).
The parts are then solved twice:

1. **Serial**: ``gridlang.parts.compile.solve_parts`` -- the path of
   ``gridlang cloud cloud.grid --serial``: every side compiled on its own, in
   this one process, joined by row names, the agents solved one after the
   other by the serial executor.
2. **Ray**: a local cluster (``gridlang.parts.edge.local_cluster``): a head
   and ``--nodes`` edge nodes, each carrying the resources ``agent:<name>`` of
   the agents it hosts (round robin, ``hosting``); one actor per node, placed
   by those resources, compiles its agents' files there and keeps their
   subproblems; the cloud (``run_cloud``) runs ATC from this process.

Measured, per size and run: iterations; wall time per iteration (the ATC loop,
the last ``Step.seconds`` of the trace over the iterations); the objective
against the central one (relative difference); the share of the loop's wall
time outside the agents' solvers; for Ray, the bytes crossing per iteration
and the start-up (cluster; edges: actors placed and their parts compiled on
their nodes) apart from the iterations.  Ratios are against the serial run of
the same size measured in the same run.

*Solver time* is the time inside the agents' own solves: each lower agent's
``LocalSolver.solve`` (its in-place Clarabel update and solve; the first one
also builds its model) and the operator's (ATC's upper level ``_Upper.solve``,
or with ADMM its ``LocalSolver``, in the cloud's process).  Serially they add up; on Ray the nodes
work side by side, so an iteration's solver time is the upper solve plus the
slowest node's sum of its agents' solves (timed inside the actor).  The rest
-- coordination, Ray's calls, (de)serialisation, waiting -- is *outside*.
Target: <= 30 % outside at 100 agents, printed beside (not asserted).

*Bytes* are the pickled size (protocol 5, as Ray serialises arguments and
results) of what the cloud sends each node per pass (its agents' targets and
rho) and of what it receives (each agent's ``y = C x - d`` and its cost),
measured by wrapping ``EdgeExecutor._ask`` in this process only; Ray's RPC
framing is not counted.  The one-off join messages (each node's ``hello``:
row names and constants) are given apart.  Nothing of gridlang is changed:
the probes are wrappers installed in this process and a subclass of the
edge's actor that times its solves.

A size whose estimated time (linear in N from the previous size) exceeds
``--budget`` seconds is skipped, and a size that fails prints why; the others go on.

Usage::

    python benchmarks/edge_cloud.py                 # 10 and 100 agents, 2 edge nodes
    python benchmarks/edge_cloud.py --quick         # 4 agents on 2 nodes (a smoke test)
    python benchmarks/edge_cloud.py --sizes 10,50 --nodes 3 --budget 300 --json ec.json
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from admm_scaling import make_case  # noqa: E402
from common import grid_table, version  # noqa: E402

TARGET_OUTSIDE = 0.30  # share of the loop's wall time outside the agents' solvers, Ray, at TARGET_AT agents
TARGET_AT = 100
AGREE = 1e-4  # |f - f_central| / |f_central| printed "ok" within this (ATC stops on rel = 1e-5 of the targets)


# ============================================================ probes (this process only)


class Clock:
    """Times the agents' solves in this process: ``LocalSolver.solve`` (the serial
    run's lower agents) and ATC's ``_Upper.solve`` (the operator, both runs); and
    what ``EdgeExecutor._ask`` sends and receives (Ray run)."""

    def __init__(self) -> None:
        self.reset()
        self._saved: list[tuple[Any, str, Any]] = []

    def reset(self) -> None:
        self.lower: list[float] = []  # per lower solve call
        self.upper: list[float] = []  # per iteration
        self.sent: list[int] = []  # per pass: bytes the cloud sent (all nodes)
        self.received: list[int] = []
        self.numbers: list[tuple[int, int]] = []  # per pass: floats sent, floats received

    def install(self) -> None:
        from gridlang.decompose import atc, local
        from gridlang.parts import edge

        clock = self
        lower, upper, ask = local.LocalSolver.solve, atc._Upper.solve, edge.EdgeExecutor._ask

        def timed_lower(s, *a, **kw):
            t0 = time.perf_counter()
            out = lower(s, *a, **kw)
            clock.lower.append(time.perf_counter() - t0)
            return out

        def timed_upper(s, *a, **kw):
            t0 = time.perf_counter()
            out = upper(s, *a, **kw)
            clock.upper.append(time.perf_counter() - t0)
            return out

        def measured_ask(ex, targets, rho):
            groups: dict[int, dict[str, np.ndarray]] = {}
            for a, v in targets.items():
                if a in ex.actors and a not in ex.missing:
                    groups.setdefault(id(ex.actors[a]), {})[a] = np.asarray(v)
            out = ask(ex, targets, rho)
            sent = sum(len(pickle.dumps((vs, rho), protocol=5)) for vs in groups.values())
            received = sum(len(pickle.dumps(({a: out[a] for a in vs if a in out}, {a: ex._costs[a] for a in vs if a in out}), protocol=5)) for vs in groups.values())
            clock.sent.append(sent)
            clock.received.append(received)
            clock.numbers.append((sum(len(v) + 1 for vs in groups.values() for v in vs.values()), sum(len(out[a]) + 1 for vs in groups.values() for a in vs if a in out)))
            return out

        self._saved = [(local.LocalSolver, "solve", lower), (atc._Upper, "solve", upper), (edge.EdgeExecutor, "_ask", ask)]
        local.LocalSolver.solve, atc._Upper.solve, edge.EdgeExecutor._ask = timed_lower, timed_upper, measured_ask

    def uninstall(self) -> None:
        for owner, name, original in self._saved:
            setattr(owner, name, original)
        self._saved = []


CLOCK = Clock()


def timed_edge_class():
    """The edge's actor with its agents' solves timed on its node (one sum per pass)."""
    from gridlang.parts.edge import Edge

    class TimedEdge(Edge):
        def __init__(self, *a, **kw) -> None:
            super().__init__(*a, **kw)
            self.solver: list[float] = []

        def solve(self, targets, rho):
            y, spent = {}, 0.0
            for a, v in targets.items():
                t0 = time.perf_counter()
                y[a] = self.local[a].solve(v, rho)
                spent += time.perf_counter() - t0
            self.solver.append(spent)
            return y, {a: self.local[a].cost() for a in targets}

        def timings(self) -> list[float]:
            return self.solver

    return TimedEdge


# ============================================================ the runs


def central(case_file: Path) -> dict[str, Any]:
    import gridlang

    t0 = time.perf_counter()
    case = gridlang.load(case_file)
    result = case.solve()
    wall = time.perf_counter() - t0
    if result.doubts():
        raise RuntimeError(f"the central solve is not trusted: {'; '.join(result.doubts())}")
    from gridlang.decompose.run import choose

    method, why = choose(case.built)
    return {"objective": float(result.objective), "wall_s": wall, "method": method, "why": why}


def _fresh_cloud_cache() -> None:
    from gridlang.parts import compile as parts_compile

    parts_compile._cloud_built.cache_clear()  # each run compiles the cloud's side afresh


def serial(folder: Path, method: str) -> dict[str, Any]:
    """``gridlang cloud cloud.grid --serial``: solve_parts in this process."""
    from gridlang.parts.compile import solve_parts
    from gridlang.parts.format import agent_files, read_cloud

    _fresh_cloud_cache()
    CLOCK.reset()
    t0 = time.perf_counter()
    r = solve_parts(folder / "cloud.grid", list(agent_files(read_cloud(folder / "cloud.grid")).values()), method)
    wall = time.perf_counter() - t0
    loop = float(r.run.trace[-1].seconds) if r.run.trace else 0.0
    solver = float(sum(CLOCK.upper) + sum(CLOCK.lower))
    return {"status": r.status, "iterations": r.iterations, "objective": r.objective, "wall_s": wall, "loop_s": loop,
            "compile_s": wall - loop, "solver_s": solver, "outside": max(0.0, 1.0 - solver / loop) if loop else float("nan")}


def on_ray(folder: Path, method: str, nodes: int) -> dict[str, Any]:
    """A local cluster of ``nodes`` edge nodes sharing the agents; the cloud here."""
    import ray

    from gridlang.parts.edge import NAMESPACE, actor_name, edges, hosting, local_cluster, resource, run_cloud
    from gridlang.parts.format import agent_files, read_cloud

    files = agent_files(read_cloud(folder / "cloud.grid"))
    groups = hosting(list(files), nodes)
    _fresh_cloud_cache()
    CLOCK.reset()
    t0 = time.perf_counter()
    cluster = local_cluster(groups)
    handles = []
    try:
        ray.init(address=cluster.address, namespace=NAMESPACE, include_dashboard=False, log_to_driver=False, configure_logging=False)
        t1 = time.perf_counter()
        Timed = ray.remote(timed_edge_class())
        for group in groups:  # as start_edge does, with the timed actor
            opts = {"name": actor_name(group), "namespace": NAMESPACE, "lifetime": "detached", "resources": {resource(a): 1 for a in group}, "num_cpus": 0, "max_restarts": 0}
            handles.append(Timed.options(**opts).remote({a: str(files[a].resolve()) for a in group}, None, {}))
        hellos = ray.get([h.hello.remote() for h in handles])  # every part compiled on its node
        t2 = time.perf_counter()
        hello_bytes = sum(len(pickle.dumps(h, protocol=5)) for h in hellos)
        r = run_cloud(folder / "cloud.grid", method)
        t3 = time.perf_counter()
        per_node = [np.asarray(t) for t in ray.get([h.timings.remote() for h in handles])]
        hosts = len(set(ray.get([h.node.remote() for h in handles])))
    finally:
        for actor in set(edges().values()) if ray.is_initialized() else ():
            ray.kill(actor, no_restart=True)
        ray.shutdown()
        cluster.shutdown()
    loop = float(r.run.trace[-1].seconds) if r.run.trace else 0.0
    calls = min(len(t) for t in per_node)
    slowest = np.max(np.stack([t[:calls] for t in per_node]), axis=0) if calls else np.zeros(0)
    solver = float(sum(CLOCK.upper) + sum(CLOCK.lower) + slowest.sum())  # the cloud's own solves (ATC's upper level, ADMM's owner), then the nodes'
    passes = max(len(CLOCK.sent), 1)
    return {"status": r.status, "iterations": r.iterations, "objective": r.objective, "loop_s": loop, "join_s": (t3 - t2) - loop,
            "cluster_s": t1 - t0, "edges_s": t2 - t1, "wall_s": t3 - t0, "nodes": len(groups), "nodes_used": hosts,
            "solver_s": solver, "outside": max(0.0, 1.0 - solver / loop) if loop else float("nan"),
            "node_solver_s": [float(t.sum()) for t in per_node],
            "sent_per_pass": sum(CLOCK.sent) / passes, "received_per_pass": sum(CLOCK.received) / passes,
            "floats_per_pass": [sum(n for n, _ in CLOCK.numbers) / passes, sum(n for _, n in CLOCK.numbers) / passes],
            "hello_bytes": hello_bytes, "events": list(r.events)}


def measure(n: int, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from gridlang.parts.split import split_case

    folder = root / f"n{n}"
    folder.mkdir()
    case_file = folder / "community.grid"
    case_file.write_text(make_case(n, args.steps, args.seed))
    c = central(case_file)
    t0 = time.perf_counter()
    split_case(case_file, folder / "parts")
    split_s = time.perf_counter() - t0
    method = args.method if args.method != "auto" else c["method"]
    why = c["why"] if method == c["method"] else f"--method {method}; auto would run {c['method']}: {c['why']}"
    s = serial(folder / "parts", method)
    r = on_ray(folder / "parts", method, args.nodes)
    for run in (s, r):
        run["rel_diff"] = abs(run["objective"] - c["objective"]) / max(abs(c["objective"]), 1e-12)
    return {"agents": n, "method": method, "why": why, "central": c, "split_s": split_s, "serial": s, "ray": r}


# ============================================================ report


def mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def report(rows: list[dict[str, Any]], skipped: list[str]) -> None:
    print()
    print(f"1. Per iteration (ATC/ADMM loop), Ray against serial (same case, same run); outside = share of the loop outside the agents' solvers (target <= {TARGET_OUTSIDE:.0%} at {TARGET_AT} agents, Ray)")
    head = ["agents", "method", "nodes", "iters s/r", "serial/it", "ray/it", "ray/serial", "outside s", "outside r", "target", "sent/it", "recv/it", "floats/it"]
    body = []
    for row in rows:
        s, r = row["serial"], row["ray"]
        ps, pr = s["loop_s"] / max(s["iterations"], 1), r["loop_s"] / max(r["iterations"], 1)
        tgt = mark(r["outside"] <= TARGET_OUTSIDE) if row["agents"] >= TARGET_AT else "-"
        body.append([str(row["agents"]), row["method"], f"{r['nodes']}", f"{s['iterations']}/{r['iterations']}", f"{ps * 1e3:.1f} ms", f"{pr * 1e3:.1f} ms", f"{pr / ps:.2f}x",
                     f"{s['outside']:.1%}", f"{r['outside']:.1%}", tgt, f"{r['sent_per_pass'] / 1024:.1f} KiB", f"{r['received_per_pass'] / 1024:.1f} KiB",
                     f"{r['floats_per_pass'][0]:.0f}/{r['floats_per_pass'][1]:.0f}"])
    print(grid_table(head, body))
    print("   sent/recv: pickled bytes the cloud sends to / receives from all nodes per pass (targets and rho; y = C x - d and costs);")
    print("   floats: the numbers in them (8 bytes each). Ray's RPC framing is not counted.")
    print()
    print(f"2. Objectives against the central solve (|f - f_central| / |f_central|, 'ok' within {AGREE:g}), start-up apart from the iterations")
    head = ["agents", "central", "serial", "rel diff", "", "ray", "rel diff", "", "status s/r", "cluster", "edges", "ray join", "ray loop", "serial compile", "serial loop", "join msgs"]
    body = []
    for row in rows:
        c, s, r = row["central"], row["serial"], row["ray"]
        body.append([str(row["agents"]), f"{c['objective']:.6f}", f"{s['objective']:.6f}", f"{s['rel_diff']:.1e}", mark(s["rel_diff"] <= AGREE),
                     f"{r['objective']:.6f}", f"{r['rel_diff']:.1e}", mark(r["rel_diff"] <= AGREE), f"{s['status']}/{r['status']}",
                     f"{r['cluster_s']:.1f} s", f"{r['edges_s']:.1f} s", f"{r['join_s']:.2f} s", f"{r['loop_s']:.2f} s", f"{s['compile_s']:.1f} s", f"{s['loop_s']:.2f} s",
                     f"{r['hello_bytes'] / 1024:.0f} KiB"])
    print(grid_table(head, body))
    print("   cluster: head and edge nodes started, ray.init; edges: the actors placed by their resources and every part compiled on its node;")
    print("   ray join: the cloud compiling its side, hello and numbering; serial compile: every side compiled in this process and joined.")
    for row in rows:
        if row["ray"]["events"]:
            print(f"   {row['agents']} agents, events: {'; '.join(row['ray']['events'])}")
    for why in skipped:
        print("   " + why)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("Usage::")[-1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10,100", help="comma-separated agent counts (default 10,100)")
    p.add_argument("--nodes", type=int, default=2, help="edge nodes of the local cluster, sharing the agents round robin (default 2; this machine has 2 cores)")
    p.add_argument("--quick", action="store_true", help="4 agents on 2 nodes: a smoke test")
    p.add_argument("--steps", type=int, default=24, help="hourly steps (default 24)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=("auto", "atc", "admm"), default="auto", help="auto: ATC when every agent hangs off the operator alone (as here), else ADMM")
    p.add_argument("--budget", type=float, default=900.0, metavar="S", help="skip a size whose estimated time (linear in N from the previous size) exceeds S seconds (default 900)")
    p.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [4] if args.quick else [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.quick:
        args.nodes = 2
    import gridlang

    print(f"Edge and cloud: sizes {sizes}, {args.nodes} edge nodes, {args.steps} steps, LinDistFlow; Python {platform.python_version()}, "
          f"gridlang {getattr(gridlang, '__version__', '?')}, ray {version('ray')}, clarabel {version('clarabel')}, {os.cpu_count()} CPUs", flush=True)
    CLOCK.install()
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    t_all = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="gridlang-edge-cloud-"))
    try:
        for n in sizes:
            if rows and rows[-1]["seconds"] * n / rows[-1]["agents"] > args.budget:
                skipped.append(f"{n} agents NOT RUN: estimated {rows[-1]['seconds'] * n / rows[-1]['agents']:.0f} s (linear from {rows[-1]['agents']} agents) exceeds --budget {args.budget:.0f} s")
                print("  " + skipped[-1], flush=True)
                continue
            t0 = time.perf_counter()
            try:
                row = measure(n, args, root)
            except Exception as exc:  # honest output: say why and go on
                skipped.append(f"{n} agents FAILED: {type(exc).__name__}: {exc}")
                print("  " + skipped[-1], flush=True)
                traceback.print_exc(limit=3)
                continue
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            s, r = row["serial"], row["ray"]
            print(f"  {n} agents ({row['method']}: {row['why']}): serial {s['status']} in {s['iterations']} iterations, ray {r['status']} in {r['iterations']} "
                  f"on {r['nodes_used']} nodes; {row['seconds']:.0f} s in all", flush=True)
            if row["seconds"] > args.budget:
                print(f"  {n} agents took {row['seconds']:.0f} s, over --budget {args.budget:.0f} s", flush=True)
    finally:
        CLOCK.uninstall()
        shutil.rmtree(root, ignore_errors=True)
    report(rows, skipped)
    print(f"total {time.perf_counter() - t_all:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows, "skipped": skipped}, indent=1))
        print(f"wrote {args.json}")
    return 0 if rows and not skipped else 1


if __name__ == "__main__":
    sys.exit(main())
