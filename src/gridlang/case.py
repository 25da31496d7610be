"""The Python API: ``gridlang.load(path_or_text)`` then ``.compile()`` / ``.solve()``.

    case = gridlang.load("cases/ieee33_dispatch.grid")
    model = case.compile()          # the linopy.Model, to inspect or change
    result = case.solve()           # status, objective, xarray.Dataset
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gridlang.compiler.build import Built, build
from gridlang.compiler.ir import CaseIR
from gridlang.compiler.resolve import resolve
from gridlang.errors import GridError, Span
from gridlang.grammar import ast
from gridlang.grammar.parser import parse, read_source

if TYPE_CHECKING:  # planning, settling, monitoring and the solvers are loaded when a case needs them
    import linopy
    import xarray as xr

    from gridlang.solvers.result import Result


@dataclass(eq=False)
class Case:
    """A parsed and resolved case; compiling and solving are cached."""

    ir: CaseIR
    _built: Built | None = field(default=None, repr=False)
    measurement_flags: xr.DataArray | None = None  # what the edge did with terminal measurements
    source: str | Path | None = None  # what it was loaded from, to load it again under another formulation
    allow_outside: bool = False

    def reload(self, formulation: str) -> Case:
        """The same case with every network under ``formulation``."""
        if self.source is None:
            raise GridError(self.ir.system.span, "this case was not loaded from a file or text, so it cannot be loaded again", "use gridlang.load(...)")
        return load(self.source, self.allow_outside, formulation)

    @property
    def built(self) -> Built:
        if self._built is None:
            self._built = build(self.ir)
        return self._built

    def compile(self) -> linopy.Model:
        """The linopy model of the case (built once)."""
        return self.built.model

    def solve(self, solver: str | None = None, method: str | None = None, executor: str = "serial", progress=None, address: str | None = None, compare_plans: bool = True, workers: int | None = None, **options: object) -> Result:
        """Solve with ``solver`` (default: by problem class) and solver options,
        centrally or decomposed by agent (``method="admm"``, ``"atc"``, or
        ``"auto"``, which picks one by :func:`gridlang.decompose.choose` and says
        which in the warnings; or the study's ``method = admm(...)``; ``executor`` serial, processes or ray, which
        joins the Ray cluster at ``address`` or starts a local one, with at most
        ``workers`` processes or actors).

        ``options`` go to the solver, or, when decomposing, to the method.
        A case with markets or games is settled too (:func:`gridlang.settle.settle_all`):
        every member is solved alone for its disagreement point, the reported
        point becomes the settlement point (one defined optimum among several)
        and payments follow by Nash bargaining.  A plan is reported (:mod:`gridlang.planning`), also under the
        formulations its study compares (unless ``compare_plans`` is false)."""
        import xarray as xr

        from gridlang import planning, solvers
        from gridlang.settle import agent_costs, settle_all

        chosen, settings = self.ir.solver_options.get("method", ("central", {}))
        chosen = method or chosen
        picked = ()
        if chosen == "auto" and len(set(self.ir.owners.values())) < 2:  # nothing to decompose
            chosen, picked = "central", ("method auto picked central: the case has fewer than two agents, so there is nothing to decompose",)
        if chosen == "central":
            try:
                result = solvers.solve(self.built, solver, options)
            except GridError as exc:
                if self.ir.plan is None or not self.ir.plan.limits:
                    raise
                raise planning.infeasible_limit(self, solver, exc) from None
        else:
            from gridlang import decompose

            result, _ = decompose.solve(self.built, chosen, executor, progress, address, workers, **{**settings, **options})
        if picked:
            result = replace(result, warnings=picked + result.warnings)
        if self.measurement_flags is not None:
            result = replace(result, dataset=result.dataset.assign(measurement_flag=self.measurement_flags))
        if self.built.markets or self.built.games:  # stage 2, on the settlement point (gridlang.settle.settle_all)
            result = settle_all(self.built, result, executor)
        agents = tuple(dict.fromkeys(self.ir.owners.values()))
        if agents:  # each agent's own cost terms (fees and payments are in the market's arrays)
            costs = xr.DataArray(agent_costs(self.built, agents), coords={"agent": list(agents)}, dims="agent", attrs={"units": "currency"})
            result = replace(result, dataset=result.dataset.assign(agent_cost=costs))
        if self.ir.plan is not None and result.primal_status == "feasible":  # a plan to report
            compared = planning.compare(self, self.ir.plan.compare) if compare_plans else ()
            result = replace(result, plan=planning.report(self.built, result, compared))
        return replace(result, built=self.built)  # its network, for the pictures


def parse_case(source: str | Path) -> tuple[ast.Module, Path]:
    """Parse a path, or text (anything with a newline or braces is text)."""
    text = str(source)
    if isinstance(source, Path) or ("\n" not in text and "{" not in text):
        path = Path(text)
        if not path.is_file():
            raise GridError(Span(text, 0, 0), f"no such case file: {text}", "give the path of a .grid file")
        return parse(read_source(path), str(path)), path.resolve().parent
    return parse(text, "<string>"), Path.cwd()


def _whole_case(module: ast.Module, source: str | Path, allow_outside: bool, formulation: str | None) -> CaseIR | None:
    """A cloud file's whole case, its agents' files read from beside it
    (:func:`gridlang.parts.format.whole`); None for an ordinary case.  An agent's
    own file is not a case: an error that names the cloud file to solve."""
    first = next((s for s in module.statements if isinstance(s, ast.AgentPart | ast.AgentAt)), None)
    if first is None:
        return None
    if isinstance(first, ast.AgentPart):
        cloud = os.path.normpath(Path(str(source)).parent / first.cloud.value) if isinstance(source, Path) or "\n" not in str(source) else first.cloud.value
        raise GridError(first.span, f"this is agent '{first.name.name}''s own part of a case, not a whole case", f"solve the case from the cloud file it joins: gridlang solve {cloud} (all parts in one process) or gridlang cloud {cloud}")
    if not isinstance(source, Path) and ("\n" in str(source) or "{" in str(source)):
        raise GridError(first.span, "a cloud file given as text: its agents' files cannot be found beside it", "load the cloud file by its path")
    from gridlang.parts.format import whole

    return whole(Path(source), formulation, allow_outside)


def load(source: str | Path, allow_outside: bool = False, formulation: str | None = None, measurements: str | Path | None = None) -> Case:
    """Parse and resolve a case from a path or from text.

    ``formulation`` puts every network under another formulation (e.g.
    "distflow_soc"); ``measurements`` is a CSV of terminal data checked and
    filled at the edge (:mod:`gridlang.monitoring`) before the case is built."""
    module, root = parse_case(source)
    case = _whole_case(module, source, allow_outside, formulation) or resolve(module, root, allow_outside, formulation)
    if measurements is None:
        return Case(case, source=source, allow_outside=allow_outside)
    from gridlang.monitoring import check as check_measurements

    checked = check_measurements(case, measurements)
    return Case(replace(checked.case, notes=checked.case.notes + checked.notes), measurement_flags=checked.flags, source=source, allow_outside=allow_outside)
