"""What a solve returns: status, objective, every variable and price as a Dataset.

Variables are reported in the unit they declare (``var soc[t]: MWh``), else
in per unit; nodal-balance duals become locational prices in currency per
MWh, signed so that a price is what one more MWh withdrawn at that bus and
step would cost; ``output`` statements are evaluated on the solution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import xarray as xr

from gridlang.compiler.build import Built
from gridlang.compiler.expressions import Evaluator


#: terminations of a solve that found its answer: a solver's optimum, a decomposition that met its test
TRUSTED = frozenset({"optimal", "converged"})
#: largest violation (per unit) of any row, bound or cone that a reported solution may have
FEASIBILITY_TOL = 1e-5


@dataclass(frozen=True, slots=True, eq=False)
class Result:
    """A solved case."""

    objective: float
    termination: str
    primal_status: str
    dual_status: str
    residual: float  # largest violation of a constraint, bound or cone by the solution
    solve_time: float
    solver: str
    dataset: xr.Dataset
    warnings: tuple[str, ...] = ()  # e.g. a relaxation that is not exact somewhere
    dual_residual: float | None = None  # stationarity error of the duals, where the solver gives duals
    settlements: tuple = ()  # stage 2 of each market (gridlang.settle.Settlement)
    games: tuple = ()  # each prosumer-operator game (gridlang.game.GameSettlement)
    plan: object = None  # a plan study's report (gridlang.planning.PlanReport)
    built: object = None  # the compiled case (gridlang.compiler.build.Built), for pictures of its network

    @property
    def plot(self):
        """Pictures of this result: ``result.plot.voltage()``, ``.dispatch()``, ``.network()``
        (matplotlib figures; :mod:`gridlang.plots`)."""
        from gridlang.plots import Plots

        return Plots(self)

    def _repr_html_(self) -> str:
        """A small HTML summary for notebooks: status, objective, residuals, main quantities."""
        from gridlang.plots import result_html

        return result_html(self)

    @property
    def optimal(self) -> bool:
        return self.termination == "optimal"

    def doubts(self) -> tuple[str, ...]:
        """Why this answer may not be reported as a solution; empty when it may.

        A solution is trusted only when the solver (or the decomposition) ended
        ``optimal`` with a feasible primal point, the objective is finite, and
        gridlang's own check of the point -- the largest violation of any row,
        bound or cone, in per unit -- is at most :data:`FEASIBILITY_TOL`, and no
        reported settlement number is NaN or infinite.
        """
        out = []
        if self.termination == "resource_interrupt":  # HiGHS out of memory, e.g. its presolve on a very wide LP
            out.append("the solve ended 'resource_interrupt', not 'optimal': the solver ran out of memory or another resource "
                       "(with HiGHS, --option presolve=off needs far less memory on a wide LP)")
        elif self.termination not in TRUSTED:
            out.append(f"the solve ended '{self.termination}', not 'optimal'")
        if self.primal_status != "feasible":
            out.append(f"the primal status is '{self.primal_status}', not 'feasible'")
        if not math.isfinite(self.objective):
            out.append(f"the objective is {self.objective}")
        if not math.isfinite(self.residual) or self.residual > FEASIBILITY_TOL:
            out.append(f"the point violates the model by {self.residual:.3g} p.u. (gridlang accepts at most {FEASIBILITY_TOL:g})")
        for s in self.settlements:
            if not np.all(np.isfinite(np.concatenate([s.payment, s.gain, s.disagreement]))):
                out.append(f"market '{s.market}': a payment, gain or disagreement cost is not a finite number")
        for g in self.games:
            if g.exchange is not None and not g.exchange.converged:
                out.append(f"game '{g.game}': the price exchange did not converge in {g.exchange.iterations} iterations")
            elif not (np.all(np.isfinite(g.price)) and math.isfinite(g.transfer)):
                out.append(f"game '{g.game}': a price or the transfer is not a finite number")
        return tuple(out)

    def __getitem__(self, name: str) -> xr.DataArray:
        return self.dataset[name]


def store_solution(model, x_by_label: np.ndarray, dual_by_label: np.ndarray | None = None, termination: str = "optimal") -> None:
    """Put values found outside linopy (by label) into its variables, and duals into its constraints."""

    def spread(by_label: np.ndarray, labels):
        return labels.copy(data=np.where(labels.values >= 0, by_label[np.maximum(labels.values, 0)], np.nan))

    for _, var in model.variables.items():
        var.solution = spread(x_by_label, var.labels)
    if dual_by_label is not None:
        for _, con in model.constraints.items():
            con.dual = spread(dual_by_label, con.labels)
    model.status, model.termination_condition = "ok", termination


def unsolved(built: Built, status: tuple[str, str, str], elapsed: float, solver: str) -> Result:
    """What a solve that ended without a point reports: every variable, price
    and output NaN (never zeros), the objective NaN and the residual infinite.

    ``status`` is (termination, primal status, dual status).  If the model's
    numbers are out of range, that is said as a warning (the likely cause)."""
    from gridlang.solvers.common import out_of_range

    m = built.model
    store_solution(m, np.full(m._xCounter, np.nan), np.full(m._cCounter, np.nan), status[0])  # NaN is the "solution" linopy holds
    cause = out_of_range(built)
    return Result(
        objective=float("nan"),
        termination=status[0],
        primal_status=status[1],
        dual_status=status[2],
        residual=float("inf"),
        solve_time=elapsed,
        solver=solver,
        dataset=collect(built),
        warnings=(f"{cause.span}: {cause.message}; hint: {cause.hint}",) if cause else (),
    )


def primal_residual(built: Built) -> float:
    """max over rows of the violation of A x (sense) b, and of the variable bounds.

    Read from linopy's own arrays (a frozen constraint's CSR rows over
    variable labels), without assembling the model's matrices."""
    m = built.model
    x = np.zeros(m._xCounter)
    worst = 0.0
    for _, var in m.variables.items():
        labels = var.labels.values.ravel()
        keep = labels >= 0
        sol = np.nan_to_num(var.solution.values.ravel()[keep])
        x[labels[keep]] = sol
        worst = max(worst, float(np.max(var.lower.values.ravel()[keep] - sol, initial=0)), float(np.max(sol - var.upper.values.ravel()[keep], initial=0)))
    for _, con in m.constraints.items():
        csr = getattr(con, "_csr", None)
        if csr is None:  # a constraint linopy keeps as a dataset: the matrices hold it
            return max(worst, _matrix_residual(m, x))
        gap = csr @ x[: csr.shape[1]] - con._rhs
        sign = np.broadcast_to(np.asarray(con._sign), gap.shape)
        gap = np.where(sign == "=", np.abs(gap), np.where(sign == "<=", gap, -gap))
        worst = max(worst, float(np.max(gap, initial=0)))
    return worst


def _matrix_residual(m, x_by_label: np.ndarray) -> float:
    """The rows' violation computed on the matrices linopy hands the solvers."""
    mat = m.matrices
    ax = mat.A @ x_by_label[mat.vlabels]
    b, sense = mat.b, mat.sense
    gap = np.where(sense == "=", np.abs(ax - b), np.where(sense == "<", np.maximum(ax - b, 0), np.maximum(b - ax, 0)))
    return float(np.max(gap, initial=0))


def collect(built: Built) -> xr.Dataset:
    """Every variable (in its declared unit), the prices and the outputs."""
    m, base, dt = built.model, built.case.system.base, built.case.system.dt
    data: dict[str, xr.DataArray] = {}
    for name, var in m.variables.items():
        unit, factor = built.units.get(name, ("p.u.", 1.0))
        data[name] = (var.solution / factor).assign_attrs(units=unit)
    price_factor = base.factor("$/MWh")[0]
    for name, (network, channel) in built.balances.items():
        try:
            dual = m.constraints[name].dual
        except AttributeError:  # a solve without duals (a MIP, a decomposition)
            continue
        # constants move to the right-hand side, which is then the withdrawal at the
        # bus; the dual is d(cost)/d(withdrawal) for one step, per unit of power
        # in a plan a step's costs are weighted by the steps of the year it stands for
        weight = built.case.system.step_weight
        per_step = dt if weight is None else dt * xr.DataArray(weight, coords={"time": dual.coords["time"]}, dims="time")
        data[f"{network}-price_{channel}"] = (dual / per_step / price_factor).assign_attrs(units="currency/MWh")
    for block in built.blocks:
        solved = {k: (v.solution if hasattr(v, "solution") else v) for k, v in block.frame.values.items()}
        frame = replace(block.frame, values=solved, _maps={})
        for out in block.model.outputs:
            value = Evaluator(frame, out.span)(out.expr)
            unit = out.unit.name if out.unit is not None else "p.u."
            factor = base.factor(out.unit.name)[0] if out.unit is not None else 1.0
            data[f"{block.prefix}-{out.name.name}"] = (xr.DataArray(value) / factor).assign_attrs(units=unit)
    return xr.Dataset({k: v.drop_vars([c for c in v.coords if c not in v.dims]) for k, v in data.items()})
