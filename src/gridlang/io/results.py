"""Writing results and model files atomically.

Everything is first written next to its destination under a temporary name
and then moved into place with one ``os.replace``, so an interrupted run
leaves either the previous results or the new ones, never half of them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from gridlang import planning
from gridlang.report import plot_games, plot_markets, plot_trace
from gridlang.solvers.result import Result


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would have made it, not mkstemp's 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_results(result: Result, out: Path) -> list[Path]:
    """``results.nc``, one CSV per variable and ``summary.json`` in folder ``out``."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        result.dataset.to_netcdf(staging / "results.nc", engine="h5netcdf")
        for name, array in result.dataset.data_vars.items():
            array.to_dataframe(name=f"{name} [{array.attrs.get('units', '')}]").to_csv(staging / f"{name}.csv")
        summary = {
            "objective": result.objective,
            "termination": result.termination,
            "primal_status": result.primal_status,
            "dual_status": result.dual_status,
            "primal_residual": result.residual,
            "dual_residual": result.dual_residual,
            "solve_time_s": result.solve_time,
            "solver": result.solver,
            "warnings": list(result.warnings),
            "markets": [
                {"market": s.market, "surplus": s.surplus, "fees_collected": s.fees_collected, "budget_balance": s.budget_balance, "individually_rational": s.rational, "messages": list(s.messages)}
                for s in result.settlements
            ],
            "games": [
                {"game": g.game, "surplus": g.surplus, "theta": g.theta, "transfer": g.transfer, "prosumer_gain": float(g.gain.sum()), "operator_gain": g.operator_gain, "messages": list(g.messages)}
                for g in result.games
            ],
        }
        if result.plan is not None:
            summary["plan"] = planning.summary(result.plan)
            (staging / "plan.md").write_text(planning.markdown(result.plan))
            planning.plot(result.plan, staging / "plan.png")
        (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        plot_markets(result.settlements, result.dataset, staging)
        plot_games(result.games, staging)
        plot_trace(result.dataset, staging)
        if out.exists():
            old = out.with_name(f".{out.name}-old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(out.iterdir())
