"""SCIP backend through PySCIPOpt: LP, MILP, QP, MIQP, SOCP and MISOCP.

The case is written as free MPS by :mod:`gridlang.io.modelfiles` (plain
names ``x<column>``, cones as quadratic constraints) into a temporary folder
and read with ``Model.readProblem``; SCIP's C reader is fast, and the file is
the same model every other solver gets from ``gridlang compile``.  The values
come back by name into linopy's column order and :func:`conic.finish` writes
them into the model.  SCIP gives no duals for these problems (mixed-integer,
or nonlinear through its cone handlers), so prices are NaN.

Options are SCIP parameters by name (``limits/time = 60``, ``limits/gap =
1e-4``, ``numerics/feastol = 1e-7``, ``display/verblevel = 4``), with ``_``
for ``/`` where a name must be an identifier (``limits_gap`` in a ``study``);
the common names ``time_limit``, ``mip_rel_gap`` and ``verbose`` /
``output_flag`` (SCIP's log) work too.
"""

from __future__ import annotations

import functools
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyscipopt

from gridlang.compiler.build import Built
from gridlang.errors import Collector, GridError, Span
from gridlang.solvers import common, conic

#: gridlang's common option names -> SCIP parameters
ALIASES = {"time_limit": "limits/time", "mip_rel_gap": "limits/gap"}
#: names that switch SCIP's log on or off
LOG = ("verbose", "output_flag")

#: defaults for models with cones, which the case or the CLI can override:
#: the heuristics that solve NLPs (through Ipopt) have crashed the process
#: (a glibc heap error) on multi-day feeder plans, and optimisation-based
#: bound tightening spends nearly all the root's time in probing LPs on them
#: (a 33-bus, 48-step plan: no solution after 120 s with both, optimal in 16 s
#: without)
NLP_HEURISTICS = ("subnlp", "nlpdiving", "multistart", "mpec", "undercover")
CONE_DEFAULTS = {"propagating/obbt/freq": -1, **{f"heuristics/{h}/freq": -1 for h in NLP_HEURISTICS}}

#: SCIP status -> (termination, primal status, dual status); a limit keeps the
#: primal status of the best solution found ("feasible" if there is one)
STATUS = {
    "optimal": ("optimal", "feasible", "none"),
    "infeasible": ("infeasible", "infeasible", "none"),
    "unbounded": ("unbounded", "none", "infeasible"),
    "inforunbd": ("infeasible_or_unbounded", "unknown", "unknown"),
    "timelimit": ("time_limit", "unknown", "none"),
    "gaplimit": ("gap_limit", "unknown", "none"),
    "nodelimit": ("node_limit", "unknown", "none"),
    "totalnodelimit": ("node_limit", "unknown", "none"),
    "stallnodelimit": ("stall_node_limit", "unknown", "none"),
    "memlimit": ("memory_limit", "unknown", "none"),
    "sollimit": ("solution_limit", "unknown", "none"),
    "bestsollimit": ("solution_limit", "unknown", "none"),
    "primallimit": ("objective_limit", "unknown", "none"),
    "duallimit": ("objective_limit", "unknown", "none"),
    "restartlimit": ("restart_limit", "unknown", "none"),
    "userinterrupt": ("interrupted", "unknown", "none"),
    "terminate": ("interrupted", "unknown", "none"),
}


def solve(built: Built, options: Mapping[str, object], spans: Mapping[str, Span]):
    from gridlang.io import modelfiles

    span = built.case.system.span
    chosen = common.check_options("SCIP", options, spans, parameter_types(), what="parameter", describe=_describe)
    form = conic.conic_form(built)
    model = pyscipopt.Model()
    model.hideOutput()
    with tempfile.TemporaryDirectory(prefix="gridlang-scip-") as folder:
        path = Path(folder) / "case.mps"
        modelfiles.write_mps(built, path, plain_names=True)
        with common.quiet():
            model.readProblem(str(path))
    defaults = CONE_DEFAULTS if built.cones else {}
    verbose = _set_options(model, {**defaults, **chosen}, spans)
    model.hideOutput(not verbose)

    start = time.perf_counter()
    with common.quiet(verbose):
        model.optimize()
    status = STATUS.get(model.getStatus(), (model.getStatus(), "unknown", "none"))
    if status[0] == "infeasible_or_unbounded":  # presolve could not tell: ask again without it
        model.freeTransform()
        model.setPresolve(pyscipopt.SCIP_PARAMSETTING.OFF)
        with common.quiet(verbose):
            model.optimize()
        status = STATUS.get(model.getStatus(), (model.getStatus(), "unknown", "none"))
    elapsed = time.perf_counter() - start
    if status[0] == "infeasible_or_unbounded":
        raise GridError(span, "the case is infeasible or unbounded (SCIP could not tell which)", "solve it with --solver highs or clarabel for a diagnosis of its linear or continuous part")
    conic.check_status(built, status, "SCIP")

    n = len(form.vlabels)
    x = np.full(n, np.nan)
    if model.getNSols():
        sol = model.getBestSol()
        # the file's columns x<position>; SCIP adds its own for a quadratic objective
        variables = [v for v in model.getVars() if v.name[:1] == "x" and v.name[1:].isdigit()]
        position = np.fromiter((int(v.name[1:]) for v in variables), dtype=np.int64, count=len(variables))
        x[position] = np.fromiter((model.getSolVal(sol, v) for v in variables), dtype=float, count=len(variables))
        if status[1] == "unknown":
            status = (status[0], "feasible", status[2])
    elif status[1] == "unknown":
        status = (status[0], "none", status[2])
    # no duals: every row's dual becomes NaN (and none is left from an earlier solve)
    for _, con in built.model.constraints.items():
        con.dual = con.labels.copy(data=np.full(con.labels.shape, np.nan))
    return conic.finish(built, form, x, None, status, elapsed, "scip")


@functools.cache
def parameter_types() -> dict[str, type]:
    """Every SCIP parameter by its name and its spelling with ``_`` for ``/``,
    gridlang's common names and the log switches, with the type of its value."""
    with common.quiet():
        params = pyscipopt.Model().getParams()
    types = {name: type(value) for name, value in params.items()}
    spelled = {name.replace("/", "_"): kind for name, kind in types.items()}  # unique in SCIP 9-10
    return {**spelled, **types, **{alias: types[name] for alias, name in ALIASES.items()}, **{key: bool for key in LOG}}


def _describe(key: str) -> str:
    name = _parameter(key)
    return f"SCIP's {name}" if name != key else "a SCIP parameter"


def _parameter(key: str) -> str:
    """SCIP's name for an option: itself, an alias, or the name it spells with ``_`` for ``/``."""
    key = ALIASES.get(key, key)
    if "/" in key or key in LOG:
        return key
    return _spellings().get(key, key)


@functools.cache
def _spellings() -> dict[str, str]:
    return {name.replace("/", "_"): name for name in parameter_types() if "/" in name}


def _set_options(model: pyscipopt.Model, options: Mapping[str, object], spans: Mapping[str, Span]) -> bool:
    """Set SCIP parameters (checked by name and type); returns whether SCIP should print its log."""
    verbose, errors = False, Collector()
    for key, value in options.items():
        if key in LOG:
            verbose = bool(value)
            continue
        name = _parameter(key)
        try:
            model.setParam(name, value)
        except (TypeError, ValueError, KeyError, LookupError) as exc:
            errors.add(spans.get(key, common.COMMAND_LINE), f"SCIP parameter '{name}' = {value!r}: {exc}", "check the range of the value")
        if name == "display/verblevel":
            verbose = int(value) > 0
    errors.raise_if_any()
    return verbose
