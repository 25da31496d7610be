"""Planning scaling: the MISOCP plan with SCIP against its LinDistFlow MILP with HiGHS.

The study is ``cases/planning_33bus.grid``: a year of hourly data cut into K
typical days, the IEEE 33-bus feeder operated over each day under the DistFlow
SOC relaxation, candidate plants with a yes/no siting decision and a
continuous size, and line failures whose expected energy not served is
limited and priced.  For every K (``--days``) and every number of candidates
N (``--candidates``) the case text is rewritten:

* ``typical_days(k = 4, ...)`` becomes ``k = K``;
* the case's own candidates are replaced by the first N of :data:`CANDIDATES`,
  PV plants, batteries and gas engines at distinct buses of the feeder, in the
  order pv, storage, generator, pv, ... (so every N of 3 and more has each
  kind), written as ``pv_candidate`` / ``storage_candidate`` /
  ``generator_candidate`` tables with the data the case file gives them;
* ``compare = lindistflow`` is dropped from the study and
  ``limits_time = --time-limit`` is added (SCIP's time limit).

Each variant is then solved twice in this process:

1. **MISOCP / SCIP**: ``gridlang.load(text)`` (the case's ``distflow_soc``;
   SCIP with the study's options: ``limits_gap = 1e-4`` and the time limit);
2. **MILP / HiGHS**: ``gridlang.load(text, formulation="lindistflow")``
   solved with ``solver="highs"``.  The study's options are SCIP parameter
   names, so they are replaced (as the study's own ``compare`` does) by their
   HiGHS equivalents: ``mip_rel_gap`` = the study's gap, ``time_limit`` =
   ``--time-limit``.

``case.compile()`` (build of the linopy model) is timed on its own, then
``case.solve(...)`` (``compare_plans=False``) is timed with
``time.perf_counter``; the table reports ``result.solve_time``, the solver's
own time (SCIP: reading the MPS file and solving; HiGHS: its run), and the
call's wall time is kept in the JSON.  The ratio is SCIP time / HiGHS time.
Annual costs are the two objectives (the LinDistFlow one neglects the line
losses, so it is not expected to equal the MISOCP one); the build decisions
agree when every candidate has the same ``built`` flag in both plans
(``PlanReport.builds``), and the candidates that differ are listed otherwise.
A SCIP solve that stops at the time limit reports its best plan (the
termination column says ``time_limit``); one that stops with no plan at all
has no plan report and no build decisions to compare; a solve that fails is
listed under Errors with the call's wall time in parentheses.
Nothing is asserted about times.

Usage::

    python benchmarks/planning_scaling.py                     # K = 1 2 4 x N = 4 8 12
    python benchmarks/planning_scaling.py --quick             # K = 1 2 x N = 4 8
    python benchmarks/planning_scaling.py --days 4 --candidates 12 --time-limit 600 --json plan.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import grid_table, version

REPO = HERE.parent
CASES = REPO / "cases"
CASE_FILE = CASES / "planning_33bus.grid"

# (kind, name, bus); the kinds alternate so that the first N hold a mix, the
# buses are distinct and spread over the main feeder and both laterals
CANDIDATES: tuple[tuple[str, str, str], ...] = (
    ("pv", "pv14", "b14"),
    ("storage", "es17", "b17"),
    ("generator", "gt29", "b29"),
    ("pv", "pv32", "b32"),
    ("storage", "es30", "b30"),
    ("pv", "pv18", "b18"),
    ("generator", "gt22", "b22"),
    ("pv", "pv25", "b25"),
    ("storage", "es10", "b10"),
    ("pv", "pv7", "b7"),
    ("generator", "gt33", "b33"),
    ("pv", "pv24", "b24"),
)

# the data the case file gives each kind (units in the table headers)
TABLE_HEADER = {
    "pv": "pv_candidate table (name, at, size_max [kW], availability, capex [$/kW], site_cost [$], om [$/kW])",
    "storage": "storage_candidate table (name, at, size_max [kW], duration [h], capex [$/kW], site_cost [$], om [$/kW])",
    "generator": "generator_candidate table (name, at, size_max [kW], marginal_cost [$/MWh], capex [$/kW], site_cost [$], om [$/kW])",
}
TABLE_DATA = {
    "pv": "1000  sun  900  20000  15",
    "storage": "800  4  1000  30000  10",
    "generator": "1000  90  700  40000  15",
}

CANDIDATES_START = "pv_candidate table"  # the case's candidate statements run from here ...
CANDIDATES_END = "# failures per year"  # ... up to this comment


# ============================================================ case variants


def candidate_text(n: int) -> str:
    """The first ``n`` of :data:`CANDIDATES` as one table per kind present."""
    if not 1 <= n <= len(CANDIDATES):
        raise ValueError(f"--candidates must be within 1..{len(CANDIDATES)}, got {n}")
    chosen = CANDIDATES[:n]
    blocks = []
    for kind, header in TABLE_HEADER.items():
        rows = [f"  {name:<5} {bus:<4} {TABLE_DATA[kind]}" for k, name, bus in chosen if k == kind]
        if rows:
            blocks.append("\n".join([header + " {", *rows, "}"]))
    return "\n".join(blocks) + "\n\n"


def variant_text(base: str, days: int, n: int, time_limit: float) -> str:
    """The planning case with ``k = days`` typical days, ``n`` candidates, no
    ``compare`` and SCIP's time limit in the study."""
    start, end = base.find(CANDIDATES_START), base.find(CANDIDATES_END)
    if start < 0 or end < start:
        raise RuntimeError(f"{CASE_FILE.name}: candidate statements not found between "
                           f"'{CANDIDATES_START}' and '{CANDIDATES_END}'")
    text = base[:start] + candidate_text(n) + base[end:]
    text, hits = re.subn(r"typical_days\(\s*k\s*=\s*\d+", f"typical_days(k = {days}", text)
    if hits != 1:
        raise RuntimeError(f"{CASE_FILE.name}: expected one typical_days(k = ...), found {hits}")
    text, hits = re.subn(r"^[ \t]*compare\s*=.*\n", "", text, flags=re.MULTILINE)
    if hits != 1:
        raise RuntimeError(f"{CASE_FILE.name}: expected one 'compare = ...' in the study, found {hits}")
    text, hits = re.subn(r"^([ \t]*)(limits_gap\s*=.*\n)", rf"\1\2\g<1>limits_time = {time_limit:g}\n", text,
                         flags=re.MULTILINE)
    if hits != 1:
        raise RuntimeError(f"{CASE_FILE.name}: expected one 'limits_gap = ...' in the study, found {hits}")
    return text


# ============================================================ measurement


@dataclass
class Solve:
    """One formulation of one variant."""

    formulation: str
    solver: str
    n_vars: int | None = None
    n_cons: int | None = None
    n_binaries: int | None = None
    compile_s: float | None = None
    call_s: float | None = None  # wall time of case.solve(...)
    solve_s: float | None = None  # result.solve_time
    termination: str | None = None
    objective: float | None = None
    eens_MWh: float | None = None
    built: dict[str, bool] = field(default_factory=dict)
    size_MW: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def run_one(text: str, formulation: str | None, solver: str | None, options: dict[str, Any]) -> Solve:
    """Load, compile (timed), solve (timed) and read the plan."""
    import gridlang

    out = Solve(formulation or "distflow_soc", solver or "study's (scip)")
    try:
        case = gridlang.load(text, formulation=formulation)
        if solver is not None:  # the study's options are SCIP's; the caller gives this solver's own
            case = replace(case, ir=replace(case.ir, solver=None, solver_options={}))
        t0 = time.perf_counter()
        model = case.compile()
        out.compile_s = time.perf_counter() - t0
        out.n_vars, out.n_cons = int(model.nvars), int(model.ncons)
        out.n_binaries = int(model.binaries.nvars) if len(model.binaries) else 0
        t0 = time.perf_counter()
        try:
            result = case.solve(solver, compare_plans=False, **options)
        finally:  # kept when the call fails too (e.g. after the solver stopped with no solution)
            out.call_s = time.perf_counter() - t0
        out.solve_s = float(result.solve_time)
        out.termination = str(result.termination)
        out.objective = float(result.objective)
        plan = result.plan
        if plan is not None:
            out.eens_MWh = None if plan.eens is None else float(plan.eens)
            builds = plan.builds.set_index("candidate")
            out.built = {str(k): bool(v) for k, v in builds["built"].items()}
            out.size_MW = {str(k): float(v) for k, v in builds["size_MW"].items()}
    except Exception as exc:  # noqa: BLE001 - a failed solve is a row of the report, not the end of the run
        out.error = _error_text(exc)
        traceback.print_exc(limit=4)
    return out


@dataclass
class Row:
    days: int
    candidates: int
    soc: Solve
    lin: Solve


def _gap_from_study(text: str) -> float | None:
    m = re.search(r"^\s*limits_gap\s*=\s*([0-9.eE+-]+)", text, flags=re.MULTILINE)
    return float(m.group(1)) if m else None


def measure(base: str, days: int, n: int, time_limit: float) -> Row:
    text = variant_text(base, days, n, time_limit)
    soc = run_one(text, None, None, {})
    highs_opts: dict[str, Any] = {"time_limit": float(time_limit)}
    gap = _gap_from_study(text)
    if gap is not None:
        highs_opts["mip_rel_gap"] = gap
    lin = run_one(text, "lindistflow", "highs", highs_opts)
    return Row(days, n, soc, lin)


# ============================================================ report


def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def agreement(row: Row) -> str:
    """'yes' when every candidate is built in both plans or in neither, else the ones that differ."""
    a, b = row.soc.built, row.lin.built
    if not a or not b:
        return "-"
    differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if not differ:
        return "yes"
    return "no: " + ",".join(f"{k}({'S' if a.get(k) else '-'}/{'H' if b.get(k) else '-'})" for k in differ)


def built_list(s: Solve) -> str:
    names = [k for k, v in s.built.items() if v]
    return ",".join(names) if names else ("none" if s.built else "-")


def report(rows: list[Row]) -> str:
    main_rows, detail_rows = [], []
    for r in rows:
        s, h = r.soc, r.lin
        ratio = s.solve_s / h.solve_s if s.solve_s is not None and h.solve_s and h.solve_s > 0 else None
        main_rows.append([
            str(r.days), str(r.candidates),
            f"{_f(s.n_vars, ',')} / {_f(h.n_vars, ',')}",
            _f(s.n_binaries, ","),
            _f(s.solve_s, ".2f") if s.solve_s is not None else f"({_f(s.call_s, '.2f')})",
            s.termination or ("FAILED" if s.error else "-"),
            _f(h.solve_s, ".2f") if h.solve_s is not None else f"({_f(h.call_s, '.2f')})",
            h.termination or ("FAILED" if h.error else "-"),
            _f(ratio, ".1f"),
            _f(s.objective, ",.0f"), _f(h.objective, ",.0f"),
            agreement(r),
        ])
        detail_rows.append([
            str(r.days), str(r.candidates),
            _f(s.compile_s, ".2f"), _f(s.call_s, ".2f"), _f(h.compile_s, ".2f"), _f(h.call_s, ".2f"),
            _f(s.eens_MWh, ".2f"), _f(h.eens_MWh, ".2f"),
            built_list(s), built_list(h),
        ])
    out = [
        (
            "Solve time, s = the solver's own time (result.solve_time; in parentheses the wall time of a case.solve"
            " call that failed); variables MISOCP / MILP; ratio = SCIP / HiGHS; annual cost $ = objective;"
            " same builds: 'no:' lists the candidates that differ, S = built in the MISOCP plan, H = in the MILP plan"
        ),
        grid_table(
            ["K", "N", "variables", "binaries", "SCIP s", "SCIP termination", "HiGHS s", "HiGHS termination",
             "ratio", "MISOCP $/yr", "MILP $/yr", "same builds"],
            main_rows,
        ),
        "",
        "Detail: compile = case.compile(); call = wall time of case.solve(...); EENS in MWh/yr; built candidates",
        grid_table(
            ["K", "N", "SOC compile", "SOC call", "LIN compile", "LIN call", "SOC EENS", "LIN EENS",
             "built (MISOCP)", "built (MILP)"],
            detail_rows,
        ),
    ]
    problems = [f"  K={r.days} N={r.candidates} {s.formulation}/{s.solver}: {s.error}"
                for r in rows for s in (r.soc, r.lin) if s.error]
    if problems:
        out += ["", "Errors:", *problems]
    return "\n".join(out)


# ============================================================ command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Planning scaling: MISOCP with SCIP against the LinDistFlow MILP with HiGHS.",
        epilog=__doc__.split("Usage::")[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--days", type=int, nargs="+", default=[1, 2, 4], help="typical days K (default: 1 2 4)")
    p.add_argument("--candidates", type=int, nargs="+", default=[4, 8, 12],
                   help=f"candidate counts N, at most {len(CANDIDATES)} (default: 4 8 12)")
    p.add_argument("--quick", action="store_true", help="smoke run: K = 1 2 x N = 4 8")
    p.add_argument("--time-limit", type=float, default=300.0,
                   help="seconds per SCIP solve (study limits_time); HiGHS gets the same (default 300)")
    p.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.days, args.candidates = [1, 2], [4, 8]
    for n in args.candidates:
        if not 1 <= n <= len(CANDIDATES):
            p.error(f"--candidates: {n} is outside 1..{len(CANDIDATES)}")
    if any(k < 1 for k in args.days):
        p.error("--days must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = CASE_FILE.read_text(encoding="utf-8")
    json_path = args.json.resolve() if args.json else None
    os.chdir(CASES)  # the case text's includes and data files are relative to cases/

    print(
        f"gridlang planning scaling: python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"gridlang {version('gridlang')}, pyscipopt {version('pyscipopt')}, highspy {version('highspy')}, "
        f"linopy {version('linopy')}"
    )
    print(f"case {CASE_FILE.relative_to(REPO)}; SCIP time limit {args.time_limit:g} s\n", flush=True)

    rows: list[Row] = []
    started = time.perf_counter()
    for k in args.days:
        for n in args.candidates:
            t0 = time.perf_counter()
            row = measure(base, k, n, args.time_limit)
            s, h = row.soc, row.lin
            print(
                f"  K={k} N={n:>2}  SCIP {_f(s.solve_s, '.2f')} s {s.termination or s.error}, "
                f"HiGHS {_f(h.solve_s, '.2f')} s {h.termination or h.error}   "
                f"[{time.perf_counter() - t0:.0f} s wall]",
                flush=True,
            )
            rows.append(row)

    print(f"\n(total {time.perf_counter() - started:.0f} s)\n")
    print(report(rows))
    if json_path:
        payload = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": [asdict(r) for r in rows]}
        json_path.write_text(json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
