"""Start-up: ``import gridlang``, a decomposition worker, and the executors end to end.

Three measurements, each printed beside its target (reported, not asserted):

1. **Import.**  The wall time of ``python -c "import gridlang"`` in a fresh
   interpreter (median of ``--repeat``), beside that of ``python -c pass``
   (the interpreter alone), and the modules it loads that a worker should
   never need (linopy, xarray, pandas, scipy).  Target: <= 0.3 s.
2. **Worker start-up.**  A worker started and answering a ping, both ways
   (:func:`gridlang.decompose.executors.start_method`): *spawned*, a fresh
   interpreter (``python -m gridlang.decompose.worker``: the interpreter,
   numpy, scipy.sparse and Clarabel), and *forked* from this process (a
   compiled case loaded, as in a real run).  Target: <= 0.3 s.  Then, on
   ``--case`` (default ``cases/prosumers.grid``, its agents below the network
   owner as ATC gives them out), each executor built and ready, every worker
   holding its batch of agents, per worker; Ray on a Ray already started.
3. **End to end.**  ``decompose.solve(built, "atc", executor, workers=W)`` on a
   fresh compile (W: ``--workers``, default the cores), ``--repeat`` rounds, the
   executors one after the other in each round, medians.  The rows with a target
   are what a user's command gives: ``serial``; ``processes`` (forked on Linux);
   ``processes spawned`` (``GRIDLANG_WORKER_START=spawn``); ``ray cold`` (no Ray in
   this process); on a local Ray started before the clock (a user running several
   solves), ``ray, first run`` (this process holds no idle actors yet) and ``ray
   warm`` (it holds the actors an earlier run left).  Workers slow to start are
   started only once the run has lasted as long as their start
   (``executors.Handover``), so a short run may end here: the ``ran on`` column
   says where its iterations ended.  The rows ``..., at once`` start the workers
   before the split and wait for them (``at_once=True``, the library's switch for
   tests): the workers' own cost, for reference (``ray cold, at once``: ``--cold``
   runs with ``ray.init``, the actors and ``ray.shutdown`` counted).  Serial runs
   again beside the Ray rows (``serial beside ray``, their reference: the load
   changes between the two parts).  Iterations and objectives must agree.
   Target: processes and Ray no slower than 1.5x serial (2 cores).
   The 1-minute load average and the cores free for this job
   (``admm_scaling.free_cores``) are printed before and after.

Usage::

    python benchmarks/startup.py                   # everything
    python benchmarks/startup.py --no-ray          # without Ray
    python benchmarks/startup.py --workers 4 --repeat 5 --cold 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import grid_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("linopy", "xarray", "pandas", "scipy")


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "MISS"


def fresh(code: str) -> tuple[float, list[str]]:
    """Wall time of a fresh interpreter running ``code``, and the heavy modules it loaded."""
    probe = code + f"\nimport sys, json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, json.loads(out.stdout.splitlines()[-1])


def bare_worker() -> float:
    """Seconds from starting a worker process to its first answer."""
    down_r, down_w = os.pipe()
    up_r, up_w = os.pipe()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "gridlang.decompose.worker", str(down_r), str(up_w)], pass_fds=(down_r, up_w))
    os.close(down_r)
    os.close(up_w)
    outbox, inbox = Connection(down_w, readable=False), Connection(up_r, writable=False)
    outbox.send(("ping",))
    inbox.recv()
    elapsed = time.perf_counter() - t0
    outbox.send(("stop",))
    proc.wait()
    return elapsed


def forked_worker() -> float:
    """Seconds from forking a worker (no agents) to its first answer."""
    from gridlang.decompose.executors import _Worker

    t0 = time.perf_counter()
    w = _Worker({}, fork=True)
    w.send(("ping",))
    w.recv()
    elapsed = time.perf_counter() - t0
    w.close()
    return elapsed


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default=str(ROOT / "cases" / "prosumers.grid"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cold", type=int, default=1, help="runs of Ray cold (ray.init counted; default 1)")
    ap.add_argument("--workers", type=int, default=None, help="workers per executor (default: the cores)")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    workers = args.workers or os.cpu_count() or 1
    from admm_scaling import free_cores

    out: dict = {"cores": os.cpu_count(), "load_before": os.getloadavg()[0], "free_cores_before": free_cores()}
    print(f"load average before: {out['load_before']:.2f} (1 min), {os.cpu_count()} cores, {out['free_cores_before']:.2f} free for this job "
          "(two CPU-bound processes side by side against one alone)")

    base = med([fresh("pass")[0] for _ in range(args.repeat)])
    runs = [fresh("import gridlang") for _ in range(args.repeat)]
    imp, heavy = med([r[0] for r in runs]), runs[0][1]
    spawned = med([bare_worker() for _ in range(args.repeat)])
    out.update(interpreter=base, import_gridlang=imp, heavy_loaded=heavy, worker_ready_spawned=spawned)
    print(f"1. import gridlang: {imp:.3f} s (interpreter alone {base:.3f} s; heavy modules loaded: {', '.join(heavy) or 'none'})  target <= 0.3 s  {verdict(imp, 0.3)}")

    import gridlang
    from gridlang import decompose
    from gridlang.decompose import executors
    from gridlang.decompose.executors import ProcessExecutor, RayExecutor, SerialExecutor, batches
    from gridlang.decompose.split import split

    built = gridlang.load(args.case).built  # loaded first: a fork copies a process that has compiled a case
    method, why = executors.start_method()
    forked = med([forked_worker() for _ in range(args.repeat)]) if method == "fork" else float("nan")
    out["worker_ready_forked"] = forked
    print(f"2. a worker ready: spawned {spawned:.3f} s, forked {forked:.4f} s  target <= 0.3 s  {verdict(min(spawned, forked), 0.3)} (start method here: {method}: {why})")

    ray = None
    if not args.no_ray:
        try:
            import ray
        except ImportError:
            print("   (Ray is not installed: left out)")

    upper = built.case.network_owner
    subs = tuple(s for s in split(built).subproblems if s.agent != upper)
    n_workers = len(batches(subs, workers))

    def ready(name: str) -> float:
        t0 = time.perf_counter()
        if name == "serial":
            pool = SerialExecutor(subs)
        elif name == "ray":
            pool = RayExecutor(subs, workers=workers)
        else:
            pool = ProcessExecutor(subs, workers, start=name.split()[-1])
        pool.ready()
        elapsed = time.perf_counter() - t0
        pool.close()
        return elapsed

    # what a user's command gives (judged against the target), and the workers started at once
    # (``at_once=True``, the library's switch for tests: the workers' own cost, for reference)
    paths = {  # name: (executor, start method, at_once)
        "serial": ("serial", "auto", False),
        "processes": ("processes", "auto", False),
        "processes spawned": ("processes", "spawn", False),
        "processes spawned, at once": ("processes", "spawn", True),
        "ray cold": ("ray", "auto", False),
        "ray cold, at once": ("ray", "auto", True),
        "serial beside ray": ("serial", "auto", False),
        "ray, first run": ("ray", "auto", False),
        "ray at once, first run": ("ray", "auto", True),
        "ray warm": ("ray", "auto", False),
    }

    def end_to_end(name: str):
        executor, start, at_once = paths[name]
        b = gridlang.load(args.case).built
        executors.START = start
        t0 = time.perf_counter()
        result, run = decompose.solve(b, "atc", executor, workers=workers, at_once=at_once, **({"address": "local"} if name == "ray cold, at once" else {}))
        elapsed = time.perf_counter() - t0
        executors.START = "auto"
        return elapsed, result, run

    names = ["serial", "processes", "processes spawned", "processes spawned, at once"]
    times: dict[str, list[float]] = {n: [] for n in names}
    ready_s: dict[str, list[float]] = {"serial": [], "processes fork": [], "processes spawn": []}
    last: dict = {}

    def measure(name: str) -> None:
        t, result, run = end_to_end(name)
        times.setdefault(name, []).append(t)
        last[name] = (result, run)

    for _ in range(args.repeat):  # rounds: every executor once per round, so that a change of load touches them all
        for name in ready_s:
            ready_s[name].append(ready(name))
        for name in names:
            measure(name)
    if ray is not None:
        names += ["ray cold"] + (["ray cold, at once"] if args.cold else [])
        for _ in range(args.repeat):  # no Ray in this process yet: a short run never starts one
            measure("ray cold")
        for _ in range(args.cold):  # ray.init, the actors and ray.shutdown counted
            measure("ray cold, at once")
        ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)  # our own Ray, not a cluster another job started here
        time.sleep(2)  # Ray's prestarted worker processes up, as on a Ray a user started a while ago
        measure("serial beside ray")
        measure("ray, first run")  # no idle actors of this process: a short run ends here
        measure("ray at once, first run")  # the actors started and waited for, then left idle
        ready_s["ray warm"] = []
        for _ in range(args.repeat):
            ready_s["ray warm"].append(ready("ray"))
            for name in ("serial beside ray", "ray warm"):  # serial again beside Ray: the load changes between the two parts
                measure(name)
        names += ["serial beside ray", "ray, first run", "ray at once, first run", "ray warm"]

    rows = []
    for name, values in ready_s.items():
        per = med(values) / (1 if name == "serial" else n_workers)
        rows.append([name, str(len(subs)), "-" if name == "serial" else str(n_workers), f"{med(values):.3f}", f"{per:.3f}"])
    out["executor_ready"] = {n: med(v) for n, v in ready_s.items()}
    print(f"   executors on {Path(args.case).name} ({len(subs)} agents below '{upper}'), built and ready (median of {args.repeat}):")
    print(grid_table(["executor", "agents", "workers", "ready s", "per worker s"], rows))

    serial = med(times["serial"])
    rows = []
    for name in names:
        result, run = last[name]
        t = med(times[name])
        ratio = t / (med(times["serial beside ray"]) if "ray" in name else serial)  # Ray beside the serial runs of its own part
        where = result.solver.split("/")[1]
        if name.startswith("serial"):
            target = ""
        elif paths[name][2]:
            target = "(reference: started at once)"
        else:
            target = f"<= 1.5x  {verdict(ratio, 1.5)}"
        rows.append([name, str(len(times[name])), f"{t:.3f}", f"{min(times[name]):.3f}-{max(times[name]):.3f}", f"{ratio:.2f}x", target, where,
                     f"{run.trace[-1].seconds:.3f}", str(run.iterations), run.status, f"{result.objective:.6f}"])
    out["end_to_end"] = {n: times[n] for n in names}
    out["ran_on"] = {n: last[n][0].solver for n in names}
    print(f"3. end to end, decompose.solve(built, 'atc', executor, workers={workers}) on {Path(args.case).name}, {os.cpu_count()} cores "
          "(medians; ran on: where the iterations ended; loop: the ATC iterations of the last run):")
    print(grid_table(["executor", "runs", "median s", "range s", "vs serial", "target", "ran on", "loop s", "iterations", "status", "objective"], rows))
    objectives = {round(last[n][0].objective, 6) for n in names}
    if len(objectives) != 1:
        print(f"   MISMATCH: the executors' objectives differ: {sorted(objectives)}")
    out["load_after"], out["free_cores_after"] = os.getloadavg()[0], free_cores()
    print(f"load average after: {out['load_after']:.2f}, {out['free_cores_after']:.2f} cores free")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
