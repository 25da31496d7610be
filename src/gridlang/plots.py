"""Pictures of a solved case, drawn from the network's own topology.

* :func:`voltage` -- the voltage profile along each feeder: for every bus, the
  band between its lowest and highest voltage over the horizon, buses in
  depth-first order from the slack (each lateral follows the bus it leaves
  from), with the limits ``vmin``/``vmax`` drawn.
* :func:`dispatch` -- the active injection of each kind summed over its
  instances, ``sum_i inject_p[i, t]``, stacked per step: what feeds the network
  above zero (import, PV, wind, discharge), what it feeds below (loads, charge).
* :func:`network` -- the feeder diagram: a tree layout computed from the line
  list (x: depth from the slack, y: leaves in order, a parent centred on its
  children), buses coloured by voltage at the worst step (largest
  ``max_b |v[b, t] - 1|``), lines by loading ``|P| / limit`` when the
  formulation has a line limit, else by ``|P|``, at the same step.

Figures are :class:`matplotlib.figure.Figure` objects made without pyplot (no
global state; a notebook shows them).  :func:`write_pictures` writes the three
as PNG files; it needs the ``plot`` extra (matplotlib) and skips a picture that
does not apply (no voltages under ``copper_plate``, no topology without the
compiled case).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import xarray as xr

#: the pictures :func:`write_pictures` writes
PICTURES = ("voltage.png", "dispatch.png", "network.png")
#: names a formulation may give its line limit (MW or MVA), tried in this order
LINE_LIMITS = ("smax", "s_max", "rating", "pmax", "p_max", "limit", "capacity")
_NEEDS = "pictures need matplotlib: pip install 'gridlang[plot]'"


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # the plot extra is not installed
        raise ImportError(_NEEDS) from exc
    return Figure(figsize=(width, height), layout="constrained")


def _kilo(result) -> bool:
    """A kW-scale case (base power below 1 MVA) is drawn in kW."""
    built = result.built
    return built is not None and built.case.system.base.power_va < 1e6


def _need_built(result, what: str):
    if result.built is None:
        raise ValueError(f"the {what} picture needs the compiled case: use a Result from Case.solve (result.built is None)")
    return result.built


# ---------------------------------------------------------------- topology


@dataclass(frozen=True, slots=True)
class Tree:
    """A spanning forest of a network from its slack bus(es): depth-first order and depth."""

    order: tuple[int, ...]  # bus positions, depth-first from the roots, children in line order
    parent: np.ndarray  # parent bus position, -1 at a root
    depth: np.ndarray  # lines from the root


def tree(net) -> Tree:
    """Depth-first spanning forest of ``net``, each connected part rooted at its first
    slack bus (else its first bus); lines that close a loop are not tree edges.

    scipy's graph routines do the walking: the depth-first order and predecessors per
    part, then each bus's depth as its distance from the roots along the forest."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components, depth_first_order, shortest_path

    n = len(net.buses)
    ends = np.asarray(net.line_from, dtype=int), np.asarray(net.line_to, dtype=int)
    graph = coo_matrix((np.ones(len(ends[0])), ends), shape=(n, n)).tocsr()
    _, part = connected_components(graph, directed=False)
    slack = np.asarray(net.params.get("slack", np.zeros(n)), dtype=float).reshape(n, -1).max(axis=1) > 0
    ranked = np.lexsort((np.arange(n), ~slack, part))  # per part: slack buses first, then by position
    roots = ranked[np.r_[True, np.diff(part[ranked]) != 0]]
    roots = roots[np.argsort(part[roots])]
    order, parent = [], np.full(n, -1)
    for root in roots:  # one walk per connected part
        nodes, before = depth_first_order(graph, int(root), directed=False, return_predecessors=True)
        order.append(nodes)
        parent[nodes[1:]] = before[nodes[1:]]
    child = np.flatnonzero(parent >= 0)
    forest = coo_matrix((np.ones(len(child)), (parent[child], child)), shape=(n, n))
    depth = shortest_path(forest, directed=False, unweighted=True, indices=roots).min(axis=0)
    return Tree(tuple(int(b) for b in np.concatenate(order)), parent, depth.astype(int))


def layout(net) -> np.ndarray:
    """(x, y) per bus: x the depth from the slack, y the leaves in depth-first order,
    each parent at the mean y of its children (set level by level, deepest first)."""
    t = tree(net)
    n = len(net.buses)
    order = np.asarray(t.order)
    child = np.flatnonzero(t.parent >= 0)
    has_children = np.zeros(n, dtype=bool)
    has_children[t.parent[child]] = True
    y = np.zeros(n)
    leaves = order[~has_children[order]]
    y[leaves] = np.arange(len(leaves))
    for level in range(int(t.depth.max(initial=0)), 0, -1):  # a loop over depths, not buses
        kids = child[t.depth[child] == level]
        total = np.bincount(t.parent[kids], weights=y[kids], minlength=n)
        count = np.bincount(t.parent[kids], minlength=n)
        y[count > 0] = total[count > 0] / count[count > 0]
    return np.column_stack([t.depth.astype(float), -y])


# ---------------------------------------------------------------- the data


def _voltages(result, net) -> xr.DataArray | None:
    name = f"{net.name}-voltage"
    if name not in result.dataset or result.dataset[name].isnull().all():
        return None
    return result.dataset[name].sel(bus=list(net.buses)).transpose("bus", ...)


def _limit(net, name: str) -> np.ndarray | None:
    if name not in net.params:
        return None
    return np.asarray(net.params[name], dtype=float).reshape(len(net.buses), -1)[:, 0]


def injections(result, channel: str = "p") -> dict[str, xr.DataArray]:
    """Each kind's injection into ``channel``, summed over its instances, in MW (kW in a kW-scale case).

    The kind's ``inject`` expressions are evaluated on the reported point (the
    dataset, converted back to internal units), not on the solver's copy."""
    from gridlang.compiler.expressions import Evaluator

    built = _need_built(result, "dispatch")
    ds = result.dataset
    to_mw = built.case.system.base.factor("MW")[0] * (1e-3 if _kilo(result) else 1.0)
    out: dict[str, xr.DataArray] = {}
    for block in built.blocks:
        if block.model.formulation:
            continue
        values = {}
        for k, v in block.frame.values.items():
            if hasattr(v, "solution"):  # a linopy variable: its reported value, in internal units
                values[k] = ds[v.name].fillna(0) * built.units.get(v.name, ("p.u.", 1.0))[1]  # masked: absent
            else:
                values[k] = v
        frame = replace(block.frame, values=values, _maps={})
        for inject in block.model.injects:
            if inject.channel.name != channel:
                continue
            value = xr.DataArray(Evaluator(frame, inject.span)(inject.expr))
            extra = [d for d in value.dims if d != "time"]
            series = (value.sum(extra) if extra else value) / to_mw
            if "time" not in series.dims:
                series = series.expand_dims(time=ds["time"].values)
            out[block.prefix] = out.get(block.prefix, 0) + series
    return out


# ---------------------------------------------------------------- pictures


def voltage(result):
    """Voltage band (min..max over time) per bus along each feeder, limits drawn."""
    built = result.built
    nets = [net for net in (built.case.networks if built is not None else ()) if _voltages(result, net) is not None]
    if built is None:  # no topology: the dataset's buses in their order, no limits
        names = [str(k)[: -len("-voltage")] for k in result.dataset.data_vars if str(k).endswith("-voltage")]
        nets = [_Bare(n, tuple(str(b) for b in result.dataset[f"{n}-voltage"]["bus"].values)) for n in names]
    if not nets:
        raise ValueError("no bus voltages in this result (a copper_plate network has none)")
    fig = _figure(max(6.0, min(16.0, 0.22 * max(len(n.buses) for n in nets) + 3)), 3.2 * len(nets))
    for ax, net in zip(np.atleast_1d(fig.subplots(len(nets), 1, squeeze=False)[:, 0]), nets):
        order = list(tree(net).order)
        v = _voltages(result, net).values.reshape(len(net.buses), -1)[order]
        x = np.arange(len(order))
        low, high = np.nanmin(v, axis=1), np.nanmax(v, axis=1)
        ax.fill_between(x, low, high, color="tab:blue", alpha=0.3, linewidth=0, label="min..max over time")
        ax.plot(x, low, color="tab:blue", linewidth=1)
        ax.plot(x, high, color="tab:blue", linewidth=1)
        for name, style in (("vmin", "--"), ("vmax", ":")):
            limit = _limit(net, name)
            if limit is not None:
                ax.step(x, limit[order], where="mid", color="tab:red", linestyle=style, linewidth=1, label=name)
        labels = [net.buses[i] for i in order]
        step = max(1, len(labels) // 40)
        ax.set_xticks(x[::step], labels[::step], rotation=90, fontsize="x-small")
        ax.set(ylabel="voltage, p.u.", title=f"{net.name}: voltage along the feeder (depth-first from the slack)")
        ax.legend(fontsize="small", loc="best")
    return fig


@dataclass(frozen=True, slots=True)
class _Bare:
    """A network known only by its buses (a result without its compiled case)."""

    name: str
    buses: tuple[str, ...]
    line_from: tuple = ()
    line_to: tuple = ()
    params: dict = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", {})


_COLORS = {"grid": "tab:gray", "pv": "gold", "wind": "tab:cyan", "storage": "tab:purple", "load": "tab:brown", "generator": "tab:red", "ev": "tab:green"}


def dispatch(result):
    """Active injection per kind over time, stacked: sources above zero, sinks below."""
    series = injections(result, "p")
    if not series:
        raise ValueError("no kind injects active power in this case")
    unit = "kW" if _kilo(result) else "MW"
    fig = _figure(9, 4.5)
    ax = fig.subplots()
    time = np.asarray(next(iter(series.values()))["time"].values, dtype=float)
    edges = np.append(time, time[-1] + 1 if len(time) else 1)
    up, down = np.zeros(len(time)), np.zeros(len(time))
    for kind, s in series.items():
        values = np.nan_to_num(s.transpose("time").values.astype(float))
        color = _COLORS.get(kind)
        label = "grid import" if kind == "grid" else kind
        for part, base in ((np.maximum(values, 0), up), (np.minimum(values, 0), down)):
            if not np.any(part):
                continue
            top = base + part
            ax.stairs(top, edges, baseline=base.copy(), fill=True, color=color, alpha=0.85, label=label)
            label = None  # one legend entry per kind
            base[:] = top
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set(xlabel="step", ylabel=unit, title=f"dispatch by kind ({unit}; below zero: consumed)")
    ax.legend(fontsize="small", ncol=min(len(series), 4), loc="best")
    return fig


def _worst_step(v: np.ndarray) -> int:
    return int(np.nanargmax(np.nanmax(np.abs(v - 1.0), axis=0))) if v.size else 0


def network(result):
    """Feeder diagram: buses coloured by voltage at the worst step, lines by loading (or flow)."""
    from matplotlib import colors
    from matplotlib.collections import LineCollection

    built = _need_built(result, "network")
    nets = built.case.networks
    if not nets:
        raise ValueError("the case has no network")
    kilo = _kilo(result)
    fig = _figure(11, max(4.0, min(12.0, 2.5 + 0.18 * max(len(n.buses) for n in nets))) * len(nets))
    for ax, net in zip(fig.subplots(len(nets), 1, squeeze=False)[:, 0], nets):
        xy = layout(net)
        v = _voltages(result, net)
        step = _worst_step(v.values.reshape(len(net.buses), -1)) if v is not None else None
        title = f"network {net.name}"
        if len(net.lines):
            flow_name = f"{net.name}-P"
            segments = np.stack([xy[np.asarray(net.line_from, dtype=int)], xy[np.asarray(net.line_to, dtype=int)]], axis=1)
            lines = LineCollection(segments, linewidths=3, zorder=1)
            if flow_name in result.dataset and not result.dataset[flow_name].isnull().all():
                p = result.dataset[flow_name].sel(line=list(net.lines)).transpose("line", ...).values.reshape(len(net.lines), -1)
                t = step if step is not None else int(np.nanargmax(np.nanmax(np.abs(p), axis=0)))
                flow = np.abs(p[:, t])
                limit = next((np.asarray(net.params[k], dtype=float).reshape(len(net.lines), -1)[:, 0] for k in LINE_LIMITS if k in net.params and np.asarray(net.params[k]).size >= len(net.lines)), None)
                if limit is not None and np.all(limit > 0) and np.all(np.isfinite(limit)):
                    # limits are in internal units: the flow's unit back to internal
                    internal = flow * built.units.get(flow_name, ("MW", 1.0))[1]
                    lines.set_array(100 * internal / limit)
                    label = "line loading |P| / limit, %"
                else:
                    lines.set_array(flow * (1e3 if kilo else 1.0))
                    label = f"line flow |P|, {'kW' if kilo else 'MW'}"
                lines.set_cmap("viridis")
                fig.colorbar(lines, ax=ax, label=label, fraction=0.04, pad=0.01)
            else:
                lines.set_color("tab:gray")
            ax.add_collection(lines)
        if v is not None:
            at = v.values.reshape(len(net.buses), -1)[:, step]
            low, high = _limit(net, "vmin"), _limit(net, "vmax")
            lo = min(float(np.nanmin(at)), float(np.min(low)) if low is not None else 1.0)
            hi = max(float(np.nanmax(at)), float(np.max(high)) if high is not None else 1.0)
            norm = colors.TwoSlopeNorm(1.0, min(lo, 1.0 - 1e-6), max(hi, 1.0 + 1e-6))
            dots = ax.scatter(xy[:, 0], xy[:, 1], c=at, cmap="RdYlBu", norm=norm, s=60, edgecolors="black", linewidths=0.5, zorder=2)
            fig.colorbar(dots, ax=ax, label="voltage, p.u.", fraction=0.04, pad=0.01)
            title += f": worst step {v['time'].values[step]} (largest |v - 1| {float(np.nanmax(np.abs(at - 1))):.4f} p.u.)"
        else:
            ax.scatter(xy[:, 0], xy[:, 1], color="tab:gray", s=60, edgecolors="black", linewidths=0.5, zorder=2)
        if len(net.buses) <= 80:
            for (x, y), name in zip(xy, net.buses):
                ax.annotate(name, (x, y), xytext=(0, 5), textcoords="offset points", ha="center", fontsize="xx-small")
        ax.set(title=title, xlabel="lines from the slack")
        ax.set_yticks([])
        ax.margins(0.05, 0.1)
        ax.autoscale_view()
    return fig


def write_pictures(result, folder: Path) -> list[Path]:
    """``voltage.png``, ``dispatch.png`` and ``network.png`` in ``folder``, each where it applies.

    Nothing is written (an empty list) when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    folder = Path(folder)
    drawn = []
    for name, draw in zip(PICTURES, (voltage, dispatch, network)):
        try:
            fig = draw(result)
        except ValueError:  # this picture does not apply to this result
            continue
        fig.savefig(folder / name, dpi=100)
        drawn.append(folder / name)
    return drawn


class Plots:
    """``result.plot``: the pictures of one result, as matplotlib figures."""

    __slots__ = ("_result",)

    def __init__(self, result) -> None:
        self._result = result

    def voltage(self):
        """See :func:`gridlang.plots.voltage`."""
        return voltage(self._result)

    def dispatch(self):
        """See :func:`gridlang.plots.dispatch`."""
        return dispatch(self._result)

    def network(self):
        """See :func:`gridlang.plots.network`."""
        return network(self._result)


def result_html(result, rows: int = 8) -> str:
    """A small HTML summary: status, objective, residuals and the first quantities."""
    from gridlang.report import quantity_rows

    e = html.escape
    doubts = result.doubts()
    head = [
        ("termination", f"{result.termination} ({result.primal_status} / {result.dual_status})"),
        ("objective", f"{result.objective:,.4f}" if math.isfinite(result.objective) else str(result.objective)),
        ("primal residual", f"{result.residual:.2e} p.u."),
        ("solver, time", f"{result.solver}, {result.solve_time:.2f} s"),
        ("trusted", "yes" if not doubts else "no: " + "; ".join(doubts)),
    ]
    table = quantity_rows(result, result.built)
    parts = ["<div><table>", *(f"<tr><th style='text-align:left'>{e(k)}</th><td style='text-align:left'>{e(v)}</td></tr>" for k, v in head), "</table>"]
    if table:
        parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in ("quantity", "unit", "min", "mean", "max", "total")) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table[:rows]]
        more = len(table) - rows
        parts.append("</table>" + (f"<p>... and {more} more (result.dataset)</p>" if more > 0 else ""))
    parts.append("</div>")
    return "\n".join(parts)
