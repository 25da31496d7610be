"""Start-up: ``import gridlang``, a decomposition worker, and the executors end to end.

Three measurements, each printed beside its target (reported, not asserted):

1. **Import.**  The wall time of ``python -c "import gridlang"`` in a fresh
   interpreter (best of ``--repeat``), beside that of ``python -c pass`` (the
   interpreter alone), and the modules it loads that a worker should never
   need (linopy, xarray, pandas, scipy).  Target: <= 0.3 s.
2. **Worker start-up.**  A bare worker (``python -m gridlang.decompose.worker``)
   started and answering a ping: the interpreter, numpy, scipy.sparse and
   Clarabel (target: <= 0.3 s); then, on ``--case`` (default
   ``cases/prosumers.grid``, its agents below the network owner as ATC
   gives them out), each executor built and ready, every worker holding its
   batch of agents (``ProcessExecutor``/``RayExecutor`` + ``ready()``), per
   worker.  Ray is started before the clock (``ray.init`` is not counted).
3. **End to end.**  ``decompose.solve(built, "atc", executor)`` on a fresh
   compile for ``serial``, ``processes`` and ``ray`` (best of ``--repeat``);
   iterations and objectives must agree.  Target: processes and Ray no slower
   than 1.5x serial (2 cores).

Usage::

    python benchmarks/startup.py                   # everything
    python benchmarks/startup.py --no-ray          # without Ray
    python benchmarks/startup.py --workers 4 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", default=str(ROOT / "cases" / "prosumers.grid"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None, help="workers per executor (default: the cores)")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    out: dict = {"cores": os.cpu_count()}

    base = min(fresh("pass")[0] for _ in range(args.repeat))
    runs = [fresh("import gridlang") for _ in range(args.repeat)]
    imp, heavy = min(r[0] for r in runs), runs[0][1]
    worker = min(bare_worker() for _ in range(args.repeat))
    out.update(interpreter=base, import_gridlang=imp, heavy_loaded=heavy, worker_ready=worker)
    print(f"1. import gridlang: {imp:.3f} s (interpreter alone {base:.3f} s; heavy modules loaded: {', '.join(heavy) or 'none'})  target <= 0.3 s  {verdict(imp, 0.3)}")
    print(f"2. a bare worker ready: {worker:.3f} s  target <= 0.3 s  {verdict(worker, 0.3)}")

    import gridlang
    from gridlang import decompose
    from gridlang.decompose.executors import ProcessExecutor, RayExecutor, SerialExecutor, batches
    from gridlang.decompose.split import split

    executors = ["serial", "processes"]
    if not args.no_ray:
        try:
            import ray

            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
            executors.append("ray")
        except ImportError:
            print("   (Ray is not installed: left out)")

    built = gridlang.load(args.case).built
    upper = built.case.network_owner
    subs = tuple(s for s in split(built).subproblems if s.agent != upper)
    n_workers = len(batches(subs, args.workers))
    rows = []
    for name in executors:
        kind = {"serial": SerialExecutor, "processes": ProcessExecutor, "ray": RayExecutor}[name]
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            pool = kind(subs) if name == "serial" else kind(subs, workers=args.workers)
            pool.ready()
            best = min(best, time.perf_counter() - t0)
            pool.close()
        per = best / (1 if name == "serial" else n_workers)
        rows.append([name, str(len(subs)), "-" if name == "serial" else str(n_workers), f"{best:.3f}", f"{per:.3f}"])
        out.setdefault("executor_ready", {})[name] = best
    print(f"   executors on {Path(args.case).name} ({len(subs)} agents below '{upper}'), built and ready:")
    print(grid_table(["executor", "agents", "workers", "ready s", "per worker s"], rows))

    rows, times, loops = [], {}, {}
    for name in executors:
        best, result, run = float("inf"), None, None
        for _ in range(args.repeat):
            b = gridlang.load(args.case).built
            t0 = time.perf_counter()
            result, run = decompose.solve(b, "atc", name, workers=args.workers) if name != "serial" else decompose.solve(b, "atc", name)
            best = min(best, time.perf_counter() - t0)
        times[name] = best
        loops[name] = run.trace[-1].seconds
        ratio = best / times["serial"]
        target = "" if name == "serial" else f"<= 1.5x  {verdict(ratio, 1.5)}"
        rows.append([name, f"{best:.3f}", f"{ratio:.2f}x", target, f"{loops[name]:.3f}", f"{loops[name] / loops['serial']:.2f}x", str(run.iterations), run.status, f"{result.objective:.6f}"])
    out["end_to_end"], out["loop"] = times, loops
    print(f"3. end to end, decompose.solve(built, 'atc', executor) on {Path(args.case).name}, {os.cpu_count()} cores (loop: the ATC iterations alone, workers started):")
    print(grid_table(["executor", "s", "vs serial", "target", "loop s", "loop vs serial", "iterations", "status", "objective"], rows))
    if "ray" in executors:
        import ray

        ray.shutdown()
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
