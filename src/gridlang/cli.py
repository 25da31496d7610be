"""Command line: ``gridlang check | solve | compile | import | scenarios | collaborate``.

Exit statuses: 0 a trusted solution (``Result.doubts()`` is empty); 1 a
mistake in the user's input, printed as ``file:line:col: message`` with the
source line, a caret and a hint; 2 gridlang's own bug (a traceback only with
``--debug``); 3 the solve gave no trustworthy answer (nothing written unless
``--partial``); 130 interrupted (nothing written).  Output places are checked
before any work is done, and results never replace files gridlang did not
write (:mod:`gridlang.io.results`).
"""

from __future__ import annotations

import json
import math
import sys
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import Progress, TextColumn
from rich.table import Table

import gridlang
from gridlang.errors import COMMAND_LINE, GridError
from gridlang.io.gridtext import import_source
from gridlang.io.results import InterruptedAfterWriting, check_file, check_folder, write_atomic, write_folder, write_results
from gridlang.report import game_tables, settlement_tables
from gridlang.solvers import problem_class

app = typer.Typer(add_completion=False, no_args_is_help=True, help="gridlang: compile and solve .grid cases.")
out = Console(soft_wrap=True)  # messages and paths stay on one line (copyable, carets aligned)
err = Console(stderr=True, soft_wrap=True)

CaseArg = Annotated[Path, typer.Argument(help="the .grid case file", show_default=False)]
AllowOutside = Annotated[bool, typer.Option("--allow-outside", help="let the case read files outside its folder")]
Debug = Annotated[bool, typer.Option("--debug", help="show tracebacks of internal errors")]
Partial = Annotated[bool, typer.Option("--partial", help="also write the results of a solve that gave no trustworthy answer, marked partial (exit status 3 all the same)")]

#: what ``gridlang scenarios`` writes
SCENARIO_FILES = ("typical_days.csv", "typical_days.png")


@contextmanager
def _reporting(debug: bool):
    """Turn GridError into a clean message and exit 1; other failures into exit 2."""
    warnings.filterwarnings("ignore")
    try:
        yield
    except GridError as exc:
        err.print(exc.render(), markup=False, highlight=False)
        raise typer.Exit(1) from None
    except InterruptedAfterWriting as exc:
        err.print(f"interrupted: the results had just been written to {exc.folder}/", markup=False, highlight=False)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:
        err.print("interrupted: nothing was written", markup=False, highlight=False)
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:  # a bug of gridlang's, not the user's
        if debug:
            traceback.print_exc()
        err.print(f"internal error: {type(exc).__name__}: {exc}\n(run again with --debug and report it)", markup=False)
        raise typer.Exit(2) from None


@app.command()
def check(case: CaseArg, allow_outside: AllowOutside = False, debug: Debug = False) -> None:
    """Parse, resolve and build the case; report every mistake."""
    with _reporting(debug):
        c = gridlang.load(case, allow_outside)
        built = c.built
        m = built.model
        out.print(f"{case}: ok — {problem_class(built).value}, {m.nvars} variables, {m.ncons} constraints, {c.ir.system.steps} steps")


@app.command()
def solve(
    case: CaseArg,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="results folder (default results/<case>)")] = None,
    solver: Annotated[Optional[str], typer.Option("--solver", "-s", help="solver backend, e.g. highs")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", help="solver option NAME=VALUE (repeatable)")] = None,
    method: Annotated[Optional[str], typer.Option("--method", help="central, admm, atc or auto (default: the study's)")] = None,
    executor: Annotated[str, typer.Option("--executor", help="where agents' subproblems run: serial, processes or ray")] = "serial",
    address: Annotated[Optional[str], typer.Option("--address", help="with --executor ray: the cluster to join (default: start a local Ray)")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="with --executor processes or ray: at most this many workers (default: one per core; workers slow to start begin once the run has lasted as long as their start)")] = None,
    drop_rate: Annotated[float, typer.Option("--drop-rate", help="fault injection: share of exchanges with agents lost, in [0, 1) (decomposition)")] = 0.0,
    kill_agent: Annotated[Optional[str], typer.Option("--kill-agent", help="fault injection: kill this agent's worker once (decomposition)")] = None,
    formulation: Annotated[Optional[str], typer.Option("--formulation", help="put every network under this formulation")] = None,
    measurements: Annotated[Optional[Path], typer.Option("--measurements", help="CSV of terminal data (<asset>.<parameter> columns), checked and filled at the edge")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON on stdout (the content of summary.json) and nothing else there; tables and messages go to stderr")] = False,
    partial: Partial = False,
    allow_outside: AllowOutside = False,
    debug: Debug = False,
) -> None:
    """Compile and solve the case, print a summary and write results.

    Exit 0 for a trusted solution, 3 when the solve gave no trustworthy answer
    (then nothing is written unless --partial)."""
    with _reporting(debug):
        if workers is not None and (workers < 1 or executor == "serial"):
            raise GridError(COMMAND_LINE, f"--workers {workers} needs --executor processes or ray and a number >= 1", "e.g. --executor processes --workers 2")
        if not 0 <= drop_rate < 1:
            raise GridError(COMMAND_LINE, f"--drop-rate {drop_rate:g} is not a share in [0, 1)", "give the share of exchanges to lose, e.g. --drop-rate 0.1 (0: none)")
        folder = out_dir or Path("results") / case.stem
        check_folder(folder)  # before the solve, which may be long
        c = gridlang.load(case, allow_outside, formulation, measurements)
        human = err if as_json else out  # with --json, stdout carries the JSON only
        with _progress(human, _what_runs(c, solver, method)) as show:
            faults = {"drop_rate": drop_rate} if drop_rate else {}
            faults |= {"kill_agent": kill_agent} if kill_agent else {}
            result = c.solve(solver, method, executor, show, address, workers=workers, **faults, **_options(option or []))
        _summary(case, c, result, human)
        doubts = result.doubts()
        if as_json:
            from gridlang.report import summary_dict

            typer.echo(json.dumps(summary_dict(result, doubts), indent=2))
        files = _write_trusted(result, folder, partial, doubts)
        pictures = ", ".join(p.name for p in files if p.suffix == ".png")
        human.print(f"wrote {len(files)} files to {folder}/ (results.nc, summary.json, one CSV per variable" + (f"; pictures: {pictures})" if pictures else ")"), markup=False, highlight=False)
        if doubts:
            raise typer.Exit(3)


@app.command(name="compile")
def compile_(
    case: CaseArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="model file: .lp, .mps or .cbf")],
    allow_outside: AllowOutside = False,
    debug: Debug = False,
) -> None:
    """Write the compiled model as an LP, MPS or CBF file for any solver (cones included)."""
    from gridlang.io.modelfiles import FORMATS, write_model

    with _reporting(debug):
        check_file(output, example=f"model{output.suffix or '.lp'}")
        if output.suffix.lower() not in FORMATS:
            raise GridError(gridlang.Span(str(output), 0, 0), f"cannot write '{output.suffix}' files", "use a .lp or .mps file name (any case), or .cbf (conic, no quadratic cost)")
        built = gridlang.load(case, allow_outside).built
        write_model(built, output)
        m = built.model
        cones = sum(len(block.rows()) for block in built.cones)
        out.print(f"wrote {output} ({problem_class(built).value}: {m.nvars} variables, {m.ncons} constraints{f', {cones} cones' if cones else ''})")


@app.command(name="import")
def import_(
    source: Annotated[str, typer.Argument(help="a MATPOWER case file (.m), a pandapower JSON file (.json), or pandapower:NAME or pandapower:NAME(arg=value, ...) with literal values", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="the .grid file to write")],
    formulation: Annotated[str, typer.Option("--formulation", "-f", help="network formulation of the written case")] = "lindistflow",
    name: Annotated[Optional[str], typer.Option("--name", "-n", help="system and network name (default: the file or network name)")] = None,
    sgen: Annotated[str, typer.Option("--sgen", help="pandapower static generators as 'pv' (curtailable plants) or 'load' (fixed negative loads, as in a power flow)")] = "pv",
    seed: Annotated[int, typer.Option("--seed", help="seed of the random generators before a pandapower network function runs (random networks import the same each time)")] = 0,
    debug: Debug = False,
) -> None:
    """Convert a MATPOWER case or a pandapower network into a .grid case."""
    with _reporting(debug):
        check_file(output, example=f"{name or 'case'}.grid")
        imported = import_source(source, name, formulation, sgen, seed)
        for warning in imported.warnings:
            err.print(f"warning: {warning}", markup=False, highlight=False)
        write_atomic(output, lambda tmp: tmp.write_text(imported.text, encoding="utf-8"))
        out.print(f"wrote {output} ({imported.summary})", markup=False, highlight=False)


@app.command()
def scenarios(
    data: Annotated[Path, typer.Argument(help="a year of hourly pv, wind, load (per unit), 8,760 rows", show_default=False)],
    k: Annotated[int, typer.Option("-k", "--typical-days", help="number of typical days K", show_default=False)],
    extremes: Annotated[bool, typer.Option("--extremes", help="keep the peak-load day and the least-renewable day as their own scenarios")] = False,
    medoids: Annotated[bool, typer.Option("--medoids", help="represent each cluster by its medoid (a real day) instead of its centroid")] = False,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="output folder (default results/<data>)")] = None,
    debug: Debug = False,
) -> None:
    """Reduce a year to K weighted typical days (density-peak seeded K-means); write typical_days.csv and a plot."""
    from importlib.util import find_spec

    from gridlang.scenarios import kmeanspp_baseline, plot_typical_days, read_year, scenario_labels, typical_days, write_typical_days_csv

    with _reporting(debug):
        folder = out_dir or Path("results") / data.stem
        check_folder(folder)
        year = read_year(data)
        rep = "medoid" if medoids else "centroid"
        td = typical_days(year, k, extremes=extremes, representative=rep)
        base = kmeanspp_baseline(year, k, extremes=extremes, representative=rep)
        errors = Table("method", "K", "RMSE p.u.", *(f"{s} energy" for s in td.series), title=f"{data.name}: {len(year.days)} days -> {len(td.weights)} scenarios ({rep}s)")
        errors.caption = "energy: relative error of the annual energy (k-means++: median of its absolute value)"
        errors.add_row("density-peak", str(k), f"{td.rmse:.5f}", *(f"{round(100 * e, 3) + 0.0:+.3f} %" for e in td.energy_error))
        errors.add_row(f"k-means++ (median, {len(base.rmse)} seeds)", str(k), f"{base.median_rmse:.5f}", *(f"{round(100 * e, 3) + 0.0:.3f} %" for e in base.median_energy_error))
        out.print(errors)
        weights = Table("day", "weight", "days", "stands for", *(f"{s} mean" for s in td.series), title="typical days")
        for s, label in enumerate(scenario_labels(td, year.dates)):
            weights.add_row(str(s), f"{td.weights[s]:.4f}", str(td.counts[s]), label, *(f"{v:.3f}" for v in td.profiles[s].mean(axis=0)))
        out.print(weights)
        csv_path, png_path = (folder / name for name in SCENARIO_FILES)
        plot = find_spec("matplotlib") is not None

        def write(staging: Path) -> None:
            write_typical_days_csv(td, staging / csv_path.name)
            if plot:
                plot_typical_days(td, staging / png_path.name, f"{data.name}: K = {k}, {len(td.weights)} scenarios ({rep}s), RMSE {td.rmse:.4f} p.u.")

        write_folder(folder, write)
        if plot:
            out.print(f"wrote {csv_path} and {png_path}", markup=False, highlight=False)
        else:
            out.print(f"wrote {csv_path}; note: no plot, matplotlib is missing (pip install 'gridlang[plot]')", markup=False, highlight=False)


#: a plain progress line at most this often (seconds) when not writing to a terminal
LOG_EVERY_S = 5.0
#: ... and at least every this many decomposition iterations
LOG_EVERY_ITER = 50


def _what_runs(c: gridlang.Case, solver: str | None, method: str | None) -> str:
    """'solving centrally with highs (LP, 1,234 variables)' or 'solving by admm'."""
    from gridlang.solvers import DEFAULT

    chosen = method or c.ir.solver_options.get("method", ("central", {}))[0]
    if chosen == "auto":
        return "solving by method auto (central, admm or atc: the warnings say which)"
    if chosen != "central":
        return f"solving by {chosen} (decomposed by agent)"
    built = c.built
    kind = problem_class(built)
    name = (solver or built.case.solver or DEFAULT[kind]).lower()
    return f"solving centrally with {name} ({kind.value}, {built.model.nvars:,} variables, {built.model.ncons:,} constraints)"


@contextmanager
def _progress(console: Console, what: str):
    """Yield ``show(step)`` for a decomposition's iterations.  On a terminal, a live line;
    otherwise plain log lines on stderr: what runs, then an iteration line at the first
    iteration, every :data:`LOG_EVERY_ITER` iterations and at most every :data:`LOG_EVERY_S` s."""
    import time

    def line(step) -> str:
        return f"iteration {step.iteration}: primal {step.primal:.2e}, dual {step.dual:.2e}, rho {step.rho:.3g}"

    if console.is_terminal:
        with Progress(TextColumn("{task.description}"), transient=True, console=console) as bar:
            task = bar.add_task(what)
            yield lambda step: bar.update(task, description=line(step))
        return
    err.print(what, markup=False, highlight=False)
    last = [time.monotonic(), 0]

    def show(step) -> None:
        now = time.monotonic()
        if step.iteration == 1 or step.iteration - last[1] >= LOG_EVERY_ITER or now - last[0] >= LOG_EVERY_S:
            err.print(line(step), markup=False, highlight=False)
            last[:] = [now, step.iteration]

    yield show


def _write_trusted(result: gridlang.Result, folder: Path, partial: bool, doubts: tuple[str, ...], extra: dict | None = None) -> list[Path]:
    """Write the results if they may be reported; with doubts, only when ``partial``, else exit 3."""
    for doubt in doubts:
        err.print(f"not a trustworthy solution: {doubt}", markup=False, highlight=False)
    if doubts and not partial:
        err.print("no results were written (run again with --partial to write them, marked partial)", markup=False, highlight=False)
        raise typer.Exit(3)
    files = write_results(result, folder, partial=bool(doubts), doubts=doubts, extra=extra)
    if doubts:
        err.print(f"PARTIAL results: {folder}/summary.json says \"partial\": true and lists the doubts above", markup=False, highlight=False)
    return files


def _options(pairs: list[str]) -> dict[str, object]:
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise GridError(COMMAND_LINE, f"solver option '{pair}' is not NAME=VALUE", "e.g. --option time_limit=60")
        for cast in (int, float):
            try:
                options[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            options[key] = value
    return options


#: width a table may take when the output is not a terminal: never cut or wrap a name
PIPE_WIDTH = 10_000


def _show(console: Console, renderable) -> None:
    """Print a table; when not writing to a terminal, as wide as it needs (no ellipsis):
    rich caps a print at the console's width (80 when piped), so a wide console prints it."""
    if not console.is_terminal:
        console = Console(file=console.file, width=PIPE_WIDTH, soft_wrap=True)
    console.print(renderable)


def _summary(case: Path, c: gridlang.Case, result: gridlang.Result, console: Console | None = None) -> None:
    """The run's status and every reported quantity in the case's scale (:func:`gridlang.report.quantity_rows`)."""
    from gridlang.report import Scale, quantity_rows

    console = console or out
    built = c.built
    currency = Scale.of(built).currency
    head = Table(title=f"{case.name}: {c.ir.system.steps} steps of {c.ir.system.dt:g} h", show_header=False)
    head.add_row("termination", result.termination)
    head.add_row("primal / dual status", f"{result.primal_status} / {result.dual_status}")
    head.add_row(f"objective (total cost, {currency})", f"{result.objective:,.4f}")
    head.add_row("primal / dual residual", f"{result.residual:.2e} / " + (f"{result.dual_residual:.2e}" if result.dual_residual is not None else "n/a"))
    head.add_row("solver, time", f"{result.solver}, {result.solve_time:.2f} s")
    _show(console, head)
    for note in c.ir.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if "stopped_by" in result.dataset.attrs:  # a decomposition: which test ended it
        console.print(f"note: stopped: {result.dataset.attrs['stopped_by']}", markup=False, highlight=False)
    table = Table("quantity", "unit", "min", "mean", "max", "total")
    table.caption = "total: energy over the horizon (power x step) and money; blank where a sum means nothing"
    for row in quantity_rows(result, built):
        table.add_row(*row)
    _show(console, table)
    for s in result.settlements:
        for t in settlement_tables(s, result.dataset):
            _show(console, t)
        for message in s.messages:
            console.print(f"[yellow]warning:[/yellow] {message}")
    for g in result.games:
        for t in game_tables(g):
            _show(console, t)
        for message in g.messages:
            console.print(f"[yellow]warning:[/yellow] {message}")
    if result.plan is not None:
        _plan_tables(result.plan, console)


def _plan_tables(plan, console: Console | None = None) -> None:
    from gridlang.report import number

    console = console or out
    built = Table("candidate", "kind", "bus", "owner", "built", "size [MW]", title=f"plan ({plan.formulation}, {plan.solver}): annual cost {plan.objective:,.2f}")
    for row in plan.builds.itertuples(index=False):
        built.add_row(row.candidate, row.kind, row.bus, row.owner, "yes" if row.built else "no", number(row.size_MW))
    _show(console, built)
    costs = Table("category", "annual cost", title="annual cost by category")
    for category, value in plan.costs.items():
        costs.add_row(category, f"{value:,.2f}")
    _show(console, costs)
    if plan.eens is not None:
        console.print(f"reliability: EENS {plan.eens:.4f} MWh/yr, SAIDI {plan.saidi:.4f} h/yr")
    if plan.worst:
        console.print(f"worst typical day: {plan.worst['scenario']}, hour {plan.worst['hour']}, V_min {plan.worst['v_min']:.5f} p.u. at {plan.worst['bus']}")
    for other in plan.compared:
        console.print(f"under {other.formulation} ({other.solver}, {other.solve_time:.1f} s): annual cost {other.objective:,.2f}, siting {'the same' if plan.same_siting(other) else 'different'} (plan.md has both)")


@app.command()
def collaborate(
    case: CaseArg,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="results folder (default results/<case>)")] = None,
    method: Annotated[Optional[str], typer.Option("--method", help="the final upper level: central, admm, atc or auto (default: the study's)")] = None,
    executor: Annotated[str, typer.Option("--executor", help="with admm/atc: serial, processes or ray")] = "serial",
    max_iter: Annotated[int, typer.Option("--max-iter", help="rounds of the alternation")] = 20,
    partial: Partial = False,
    allow_outside: AllowOutside = False,
    debug: Debug = False,
) -> None:
    """Plan several investors together: alternate their own build decisions (MILP) with the
    joint operation and Nash-bargained payments (convex), then report the plan and the split."""
    from gridlang.collaborate import collaborate as run, summary

    with _reporting(debug):
        folder = out_dir or Path("results") / case.stem
        check_folder(folder)  # before the alternation, which may be long
        c = gridlang.load(case, allow_outside)
        with _progress(out, "alternating build decisions and joint operation"):
            done = run(c, max_iter, method=method, executor=executor)
        _collaboration_tables(done)
        _summary(case, c, done.result)
        doubts = done.result.doubts()
        if done.status != "converged":  # no round left every plan unchanged, or the Nash check failed
            doubts += (f"the alternation ended '{done.status}' after {done.iterations} round(s): the plan is not shown to be an equilibrium",)
        files = _write_trusted(done.result, folder, partial, doubts, extra={"collaboration": summary(done)})
        out.print(f"wrote {len(files)} files to {folder}/", markup=False, highlight=False)
        if doubts:
            raise typer.Exit(3)


def _collaboration_tables(done) -> None:
    """The rounds (kind, who moved, total, gap to the joint optimum), the final plan per
    investor with its own cost, and the Nash check."""
    gap = f"; joint optimum {done.reference:,.2f}, gap {100 * done.gap:.3g} %" if math.isfinite(done.reference) else ""
    rounds = Table("round", "kind", "moved", "total cost", "gap to joint optimum", title=f"alternation: {done.status} after {done.iterations} round(s){gap}")
    for r in done.rounds:
        rounds.add_row(str(r.iteration), r.kind, r.investor or "-", f"{r.total_cost:,.2f}", f"{100 * r.gap:.3g} %" if math.isfinite(r.gap) else "")
    out.print(rounds)
    last = done.rounds[-1] if done.rounds else None
    if last is not None and last.plans:
        plans = Table("investor", "builds [MW]", "own cost after settlement", title="the plan")
        for investor, built in last.plans.items():
            plans.add_row(investor, ", ".join(f"{k} {v:.4g}" for k, v in built.items()) or "nothing", f"{last.own_cost.get(investor, float('nan')):,.2f}")
        out.print(plans)
    check = done.equilibrium
    if check is not None:
        table = Table("investor", "own cost", "best deviation", "improvement", "deviation builds [MW]", title=f"Nash check: {'holds' if check.holds else 'FAILS'} (an investor may gain at most {check.tolerance:.3g} by changing its own builds)")
        for d in check.deviations:
            table.add_row(d.investor, f"{d.cost:,.2f}", f"{d.best:,.2f}", f"{d.improvement:,.3g}", ", ".join(f"{k} {v:.4g}" for k, v in d.plan.items()) or "nothing")
        out.print(table)


@app.command()
def doc(
    kind: Annotated[Optional[str], typer.Argument(help="a kind or formulation (default: list them all)", show_default=False)] = None,
    write: Annotated[Optional[Path], typer.Option("--write", help="write the reference pages (index.md, <name>.md) into this folder")] = None,
    debug: Debug = False,
) -> None:
    """Print a kind's or formulation's parameters (unit, default, range), variables, equations, outputs and doc comment."""
    from gridlang import reference
    from gridlang.errors import did_you_mean

    with _reporting(debug):
        found = reference.stdlib_entries()
        if write is not None:
            written = reference.write_reference(write, found)
            out.print(f"wrote {len(written)} pages to {write}/", markup=False, highlight=False)
        elif kind is None:
            out.print(reference.listing(found), markup=False, highlight=False, end="")
        elif kind not in found:
            raise GridError(COMMAND_LINE, f"no kind or formulation named '{kind}'", did_you_mean(kind, found) or "run 'gridlang doc' to list them")
        else:
            out.print(reference.text(found[kind]), markup=False, highlight=False, end="")


@app.command()
def lsp() -> None:
    """Run the language server on stdin/stdout (for editors; needs the lsp extra of gridlang)."""
    try:
        from gridlang.lsp import serve
    except ImportError as exc:  # pygls missing
        err.print(f"the language server needs pygls: pip install 'gridlang[lsp]' ({exc})", markup=False, highlight=False)
        raise typer.Exit(1) from None
    serve()


@app.command(name="split")
def split_(
    case: CaseArg,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="the folder to write the parts into: cloud.grid, data/, and AGENT/AGENT.grid per agent")],
    allow_outside: AllowOutside = False,
    debug: Debug = False,
) -> None:
    """Write a case with agents in parts: a public cloud file (network, markets, the agents' points of connection) and one private file per agent (its assets, profiles, costs)."""
    from gridlang.parts.split import split_case

    with _reporting(debug):
        written = split_case(case, out_dir, allow_outside)
        shown = ", ".join(p.relative_to(out_dir).as_posix() for p in written)
        out.print(f"wrote {len(written)} files to {out_dir}/: {shown}", markup=False, highlight=False)


@app.command()
def edge(
    agent_files: Annotated[list[Path], typer.Argument(help="the .grid file of each agent this machine hosts (its first line names the cloud file)", show_default=False)],
    join: Annotated[str, typer.Option("--join", help="the Ray cluster to join, e.g. HEAD:6379; this machine's node carries the resource agent:<agent>")],
    formulation: Annotated[Optional[str], typer.Option("--formulation", help="put every network under this formulation")] = None,
    measurements: Annotated[Optional[Path], typer.Option("--measurements", help="CSV of the agent's terminal data, checked and filled here; only counts reach the cloud")] = None,
    debug: Debug = False,
) -> None:
    """Check the agents' files here and start their actor on this machine's node of the cluster (needs the ray extra)."""
    from gridlang.parts.edge import join_edge

    with _reporting(debug):
        agents, rows = join_edge(agent_files, join, formulation, measurements)
        out.print(f"{', '.join(agents)} joined {join}: their actor keeps their subproblems on the node carrying {', '.join(f'agent:{a}' for a in agents)} and takes part in {rows} named coupling rows", markup=False, highlight=False)


@app.command()
def cloud(
    cloud_file: Annotated[Path, typer.Argument(help="the cloud's .grid file", show_default=False)],
    address: Annotated[Optional[str], typer.Option("--address", help="the Ray cluster the edges joined, e.g. HEAD:6379")] = None,
    local: Annotated[bool, typer.Option("--local", help="start a local cluster with one node per agent, each agent read from <folder>/<agent>/<agent>.grid")] = False,
    serial: Annotated[bool, typer.Option("--serial", help="no Ray: compile every side in this process, each on its own, from <folder>/<agent>/<agent>.grid")] = False,
    nodes: Annotated[Optional[int], typer.Option("--nodes", help="with --local: this many nodes, each hosting several agents (default: one node per agent)")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", help="JSON file holding, after every pass, the targets sent and answers received (the last consistent iterate)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="with --checkpoint: continue from the iterate saved in that file instead of from zero (ATC or ADMM, as the file was written)")] = False,
    method: Annotated[str, typer.Option("--method", help="atc or admm")] = "atc",
    formulation: Annotated[Optional[str], typer.Option("--formulation", help="put every network under this formulation")] = None,
    settle: Annotated[Optional[bool], typer.Option("--settle/--no-settle", help="settle the case's markets and games from the parts, each agent's side on its edge (default: when the case has any and is linear; a conic case's takes minutes)")] = None,
    settlement_file: Annotated[Optional[Path], typer.Option("--settlement", help="also write the settlement to this JSON file")] = None,
    debug: Debug = False,
) -> None:
    """Run the coordinator of a case in parts with the edges' actors (needs the ray extra), or every side in this process (--serial).

    Exit 0 when the decomposition (and the settlement) converged, 3 when not."""
    from gridlang.parts.edge import run_cloud, run_local
    from gridlang.parts.settle import settling, summary, write_settlement

    with _reporting(debug):
        if (address is not None) + local + serial != 1:
            raise GridError(COMMAND_LINE, "give one of --address (the cluster the edges joined), --local (start one here) or --serial (no Ray)", "e.g. gridlang cloud cloud.grid --local")
        from gridlang.parts.resume import check_resume

        check_resume(resume, checkpoint)
        settle, not_settled = settling(cloud_file, formulation, settle)
        if settlement_file is not None:
            check_file(settlement_file, "--settlement", "settlement.json")
        if serial:
            from gridlang.parts.compile import solve_parts
            from gridlang.parts.format import agent_files, read_cloud

            result = solve_parts(cloud_file, list(agent_files(read_cloud(cloud_file)).values()), method, formulation, checkpoint=checkpoint, settle=settle, resume=resume)
        else:
            result = (run_local(cloud_file, method, formulation, nodes, checkpoint, settle, resume) if local
                      else run_cloud(cloud_file, method, address, formulation, checkpoint=checkpoint, settle=settle, resume=resume))
        resumed = f" (resumed at iteration {result.resumed + 1} from {checkpoint})" if result.resumed else ""
        out.print(f"{cloud_file}: {method.upper()} {result.status} after {result.iterations} iterations{resumed}, objective {result.objective:.10g}, {len(result.rows)} coupling rows", markup=False, highlight=False)
        for agent, cost in result.costs.items():
            out.print(f"  {agent}: cost {cost:.6g}", markup=False, highlight=False)
        for note in result.terminals:
            out.print(f"note: {note}", markup=False, highlight=False)
        for event in result.events:
            err.print(f"warning: {event}", markup=False, highlight=False)
        if result.unsettled or not_settled:
            out.print(f"note: no settlement from the parts: {result.unsettled or not_settled}", markup=False, highlight=False)
        if result.settlement is not None:
            for line in summary(result.settlement):
                out.print(line, markup=False, highlight=False)
            for message in result.settlement.messages:
                err.print(f"warning: {message}", markup=False, highlight=False)
            if settlement_file is not None and result.settlement.converged:
                write_settlement(result.settlement, settlement_file)
                out.print(f"wrote {settlement_file}", markup=False, highlight=False)
        if result.status != "converged" or (result.settlement is not None and not result.settlement.converged):
            raise typer.Exit(3)


def main() -> None:  # pragma: no cover - console entry for `python -m gridlang`
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
