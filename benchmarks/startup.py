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
3. **End to end.**  ``decompose.solve(built, "atc", executor, workers=W)``
   on a fresh compile (W: ``--workers``, default the cores, always given, so
   that a small case is not run serially instead), ``--repeat`` rounds, the
   executors one after the other in each round, medians: ``serial``,
   ``processes`` forked, ``processes`` spawned (``GRIDLANG_WORKER_START=spawn``),
   ``ray`` warm (on a local Ray started before the clock: a user running
   several solves) and ``ray`` cold (``--cold`` runs on no Ray: ``ray.init``,
   the actors and ``ray.shutdown`` counted).  On the started Ray, two paths,
   each its first run (one run: the actors are new, and this process loads
   Ray's serializers) and warm (``--repeat``): *forced* (``workers=W``, as
   above: always on Ray) and *default* (no workers: what ``--executor ray``
   gives; a small case runs here, serially, until this process holds idle
   actors on that Ray, see ``executors.start_cost``; the table says where it
   ran).  The default path's first run comes before the forced one, so the
   forced first run is the first use of Ray in this process; serial runs
   again in each round of the warm Ray runs (``serial beside ray``, the Ray
   rows' reference: the load changes between the two parts).  Iterations and
   objectives must agree.  Target: processes and Ray no slower than 1.5x
   serial (2 cores).
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

    def end_to_end(name: str):
        b = gridlang.load(args.case).built
        executors.START = name.split()[-1] if name.startswith("processes") else "auto"
        kind = name.split()[0]
        t0 = time.perf_counter()
        if kind == "serial":
            result, run = decompose.solve(b, "atc", "serial")
        elif name.startswith("ray default"):
            result, run = decompose.solve(b, "atc", "ray")  # no workers: serial unless this process holds idle actors on the Ray
        elif name == "ray cold":
            result, run = decompose.solve(b, "atc", "ray", address="local", workers=workers)
        else:
            result, run = decompose.solve(b, "atc", kind, workers=workers)
        executors.START = "auto"
        return time.perf_counter() - t0, result, run

    names = ["serial", "processes fork", "processes spawn"]
    times: dict[str, list[float]] = {n: [] for n in names}
    ready_s: dict[str, list[float]] = {n: [] for n in names}
    last: dict = {}
    for _ in range(args.repeat):  # rounds: every executor once per round, so that a change of load touches them all
        for name in names:
            ready_s[name].append(ready(name))
            t, result, run = end_to_end(name)
            times[name].append(t)
            last[name] = (result, run)
    if ray is not None:
        cold = []
        for _ in range(args.cold):  # before Ray is started here
            t, result, run = end_to_end("ray cold")
            cold.append(t)
            last["ray cold"] = (result, run)
        ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)  # our own Ray, not a cluster another job started here
        time.sleep(2)  # Ray's prestarted worker processes up, as on a Ray a user started a while ago
        for name in ("ray default, first", "ray forced, first"):  # the default path first: it starts nothing, so the forced run is Ray's first use here
            t, result, run = end_to_end(name)
            times[name], last[name] = [t], (result, run)
        first = times["ray forced, first"][0]
        names += ["serial beside ray", "ray default, first", "ray forced, first", "ray warm", "ray default, warm"] + (["ray cold"] if cold else [])
        times["serial beside ray"], times["ray warm"], times["ray default, warm"], ready_s["ray warm"] = [], [], [], []
        for _ in range(args.repeat):
            ready_s["ray warm"].append(ready("ray"))
            for name in ("serial beside ray", "ray warm", "ray default, warm"):  # serial again beside Ray: the load changes between the two parts
                t, result, run = end_to_end(name)
                times[name].append(t)
                last[name] = (result, run)
        times["ray cold"] = cold
        out["ray_first_warm_run"] = first

    rows = []
    for name in names:
        if name in ready_s:
            per = med(ready_s[name]) / (1 if name == "serial" else n_workers)
            rows.append([name, str(len(subs)), "-" if name == "serial" else str(n_workers), f"{med(ready_s[name]):.3f}", f"{per:.3f}"])
    out["executor_ready"] = {n: med(v) for n, v in ready_s.items()}
    print(f"   executors on {Path(args.case).name} ({len(subs)} agents below '{upper}'), built and ready (median of {args.repeat}):")
    print(grid_table(["executor", "agents", "workers", "ready s", "per worker s"], rows))

    serial = med(times["serial"])
    rows = []
    for name in names:
        result, run = last[name]
        t = med(times[name])
        ratio = t / (med(times["serial beside ray"]) if name.startswith("ray") else serial)  # Ray beside the serial runs of its own part
        target = "" if name.startswith("serial") else f"<= 1.5x  {verdict(ratio, 1.5)}"
        if name.startswith("ray default"):
            target += "  (ran here, serially)" if result.solver.endswith("/serial") else "  (ran on Ray)"
        loop = run.trace[-1].seconds
        spread = f"{min(times[name]):.3f}-{max(times[name]):.3f}"
        rows.append([name, str(len(times[name])), f"{t:.3f}", spread, f"{ratio:.2f}x", target, f"{loop:.3f}", str(run.iterations), run.status, f"{result.objective:.6f}"])
    out["end_to_end"] = {n: times[n] for n in names}
    print(f"3. end to end, decompose.solve(built, 'atc', executor, workers={workers}) on {Path(args.case).name}, {os.cpu_count()} cores (medians; loop: the ATC iterations of the last run):")
    print(grid_table(["executor", "runs", "median s", "range s", "vs serial", "target", "loop s", "iterations", "status", "objective"], rows))
    if "ray_first_warm_run" in out:
        print(f"   ray forced, first: the first run on the started Ray took {out['ray_first_warm_run']:.3f} s (one run: its actors start, import Ray's serializers and gridlang); "
              "ray warm (forced) and ray default, warm take them over")
        out["ray_default"] = {n: last[n][0].solver for n in ("ray default, first", "ray default, warm")}
        print(f"   ray default (no workers, what --executor ray gives): first run {'here, serially' if out['ray_default']['ray default, first'].endswith('/serial') else 'on Ray'} "
              f"(no idle actors of this process on the Ray yet), warm {'here, serially' if out['ray_default']['ray default, warm'].endswith('/serial') else 'on Ray'}")
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
