"""What a user reads after a solve: the quantities table, money with markets, plots.

``quantity_rows`` gives the summary of every reported quantity in the case's
own scale (kW, kvar, kWh when the base power is below 1 MVA, else MW), with
the case's currency symbol, and a total only where one adds over time:
energy (power x step length) and money; internal helpers (``*_m0``, added by
the compiler for cones) and all-NaN outputs are left out.  ``summary_dict``
is the content of ``summary.json`` (also ``gridlang solve --json``).

``settlement_dataset`` turns each market's stage 2 into arrays over ``agent``
(written with the other results); ``settlement_tables`` renders the money
per agent and the trade schedule for the terminal; ``plot_markets`` draws
net sales per step and payments per agent (needs matplotlib: the ``plot``
extra).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from gridlang.settle import Settlement
from gridlang.solvers.result import FEASIBILITY_TOL

if TYPE_CHECKING:  # rich is loaded by the tables only: writing a summary does not need it
    from rich.table import Table


#: names the compiler gives to helper variables of a cone (``{cone}_m{k}``)
HELPER = re.compile(r"_m\d+$")
#: power units and their kilo counterparts (a kW-scale case)
_KILO = {"MW": "kW", "Mvar": "kvar", "MVA": "kVA", "MWh": "kWh", "Mvarh": "kvarh", "MVAh": "kVAh"}
_POWER = ("MW", "kW")  # active power: adds up to energy over time


@dataclass(frozen=True, slots=True)
class Scale:
    """How a case's numbers are shown: kilo units for a kW-scale case, its currency symbol."""

    kilo: bool
    currency: str  # symbol ('$') or code
    dt: float  # hours per step
    weight: np.ndarray | None = None  # steps of the year each step stands for (plans)
    base_mw: float = 1.0  # the system's base power, MVA

    @staticmethod
    def of(built) -> "Scale":
        """The scale of a compiled case: kW when its base power is below 1 MVA."""
        from gridlang.compiler.units import currency_symbol

        if built is None:
            return Scale(False, "currency", 1.0)
        system = built.case.system
        return Scale(system.base.power_va < 1e6, currency_symbol(system.base.currency), system.dt, system.step_weight, system.base.power_va / 1e6)

    def unit(self, unit: str, name: str = "") -> tuple[str, float]:
        """(shown unit, factor from the reported unit): 'MW' -> ('kW', 1000) in a kW-scale case,
        'currency/MWh' -> '$/MWh' ('$/Mvarh' for a reactive price ``<network>-price_q``)."""
        factor = 1.0
        if self.kilo and unit in _KILO:
            unit, factor = _KILO[unit], 1e3
        if name.endswith("-price_q"):
            unit = unit.replace("MWh", "Mvarh")
        return unit.replace("currency", self.currency), factor


def number(x: float, zero: float = 1e-9) -> str:
    """A figure for people: no '-0', thousands separated, about four significant digits;
    below ``zero`` in magnitude (e.g. the solution's own accuracy) it is 0."""
    if not math.isfinite(x):
        return str(x)
    if abs(x) < zero:
        return "0"
    if abs(x) >= 1e4:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def _binary(built, name: str) -> str | None:
    """'binary' or 'integer' for a variable so declared, else None."""
    if built is None or name not in built.model.variables:
        return None
    attrs = built.model.variables[name].attrs
    return "binary" if attrs.get("binary") else "integer" if attrs.get("integer") else None


def quantity_rows(result, built=None) -> list[tuple[str, str, str, str, str, str]]:
    """(quantity, unit, min, mean, max, total) per reported quantity, in the case's scale.

    The total is given only where it adds over time: active power (line flows
    and bus quantities aside) summed as energy ``sum_t p[t] dt`` (weighted by
    the steps each step stands for in a plan), and money.  Helpers of the
    compiler (``*_m<k>``) and quantities that are NaN everywhere are left out."""
    scale = Scale.of(built)
    rows = []
    for name, array in result.dataset.data_vars.items():
        name = str(name)
        if HELPER.search(name) or array.isnull().all() or not np.issubdtype(array.dtype, np.number):
            continue
        declared = _binary(built, name)
        unit, factor = scale.unit(str(array.attrs.get("units", "")), name)
        if declared:
            unit = declared
        values = array * factor
        # a power within the feasibility tolerance of zero is zero to the solution's accuracy
        zero = FEASIBILITY_TOL * scale.base_mw * factor if unit in _KILO or unit in _KILO.values() else 1e-9
        total = ""
        if declared is None and unit in _POWER and "time" in array.dims and not {"bus", "line"} & set(array.dims):
            steps = scale.dt if scale.weight is None or len(scale.weight) != array.sizes["time"] else scale.dt * xr.DataArray(scale.weight, coords={"time": array["time"]}, dims="time")
            hours = float((xr.ones_like(values) * steps).sum())  # of every element, for the tolerance of the total
            total = f"{number(float((values * steps).sum()), zero * hours)} {unit}h"
        elif declared is None and unit == scale.currency:
            total = f"{number(float(values.sum()))} {unit}"
        rows.append((name, unit, *(number(float(f()), zero) for f in (values.min, values.mean, values.max)), total))
    return rows


def _finite(x: float | None) -> float | str | None:
    """JSON has no NaN or infinity: such numbers are written as strings."""
    return x if x is None or math.isfinite(x) else str(x)


def summary_dict(result, doubts: Sequence[str] = ()) -> dict:
    """The content of ``summary.json``: status, objective, residuals, markets, games, plan."""
    from gridlang import planning

    doubts = list(doubts)
    summary = {
        "partial": bool(doubts),
        "doubts": doubts,
        "objective": _finite(result.objective),
        "termination": result.termination,
        "primal_status": result.primal_status,
        "dual_status": result.dual_status,
        "primal_residual": _finite(result.residual),
        "dual_residual": _finite(result.dual_residual),
        "solve_time_s": result.solve_time,
        "solver": result.solver,
        "warnings": list(result.warnings),
        "markets": [_market_summary(s) for s in result.settlements],
        "games": [_game_summary(g) for g in result.games],
    }
    if result.plan is not None:
        summary["plan"] = planning.summary(result.plan)
    return summary


def _game_summary(g) -> dict:
    """One game's entry in ``summary.json``: the surplus, each agent's gain, how the price was found."""
    entry = {
        "game": g.game,
        "surplus": _finite(g.surplus),
        "theta": _finite(g.theta),
        "transfer": _finite(g.transfer),
        "prosumer_gain": _finite(float(g.gain.sum())),
        "operator_gain": _finite(g.operator_gain),
        "gains": {a: _finite(float(x)) for a, x in zip(g.prosumers, g.gain)},
        "price": "exchange" if g.exchange is not None else "central",
        "messages": list(g.messages),
    }
    if g.exchange is not None:
        entry["exchange"] = {"converged": bool(g.exchange.converged), "iterations": int(g.exchange.iterations), "dispatch_iterations": int(g.exchange.dispatch_iterations), "messages": len(g.exchange.log)}
    return entry


def _market_summary(s: Settlement) -> dict:
    """One market's entry in ``summary.json``: its money, how stage 2 was found, and the fee collector's."""
    entry = {
        "market": s.market,
        "surplus": _finite(s.surplus),
        "fees_collected": _finite(s.fees_collected),
        "budget_balance": _finite(s.budget_balance),
        "individually_rational": s.rational,
        "method": s.method,
        "iterations": s.iterations,
        "messages": list(s.messages),
    }
    if s.operator:
        entry["operator"] = {
            "agent": s.operator,
            "cost": _finite(s.operator_cost),
            "cost_alone": _finite(s.operator_alone),
            "gain": _finite(s.operator_gain),
            "tariffs_received": _finite(float(s.tariff_paid.sum())) if s.tariff_paid is not None else None,
            "money_balance": _finite(s.money_balance),
        }
    return entry


def settlement_dataset(settlements: tuple[Settlement, ...]) -> xr.Dataset:
    """Per-agent money of every market, in currency, as ``{market}-{quantity}[agent]``;
    the pairwise payments as ``{market}-pairwise[payer, payee]``; the bargaining
    powers (and, by contribution, the energy sold to other members, MWh); with a
    fee collector, what each member paid it for upstream energy and its cost,
    cost alone, gain and the fees it collected (scalars)."""
    data = {}
    for s in settlements:
        coords = {"agent": list(s.agents)}
        for what, values in (("cost", s.cost), ("fees_paid", s.fees_paid), ("disagreement", s.disagreement), ("gain", s.gain), ("payment", s.payment), ("final_cost", s.cost + s.payment)):
            data[f"{s.market}-{what}"] = xr.DataArray(values, coords=coords, dims="agent", attrs={"units": "currency"})
        data[f"{s.market}-power"] = xr.DataArray(s.powers, coords=coords, dims="agent", attrs={"units": "1", "method": s.method, "iterations": s.iterations})
        data[f"{s.market}-fees_collected"] = xr.DataArray(s.fees_collected, attrs={"units": "currency"})
        if s.pairwise is not None:
            data[f"{s.market}-pairwise"] = xr.DataArray(s.pairwise, coords={"payer": list(s.agents), "payee": list(s.agents)}, dims=("payer", "payee"), attrs={"units": "currency"})
        if s.contribution is not None:
            data[f"{s.market}-contribution"] = xr.DataArray(s.contribution, coords=coords, dims="agent", attrs={"units": "MWh"})
        if s.operator:
            data[f"{s.market}-tariff_paid"] = xr.DataArray(s.tariff_paid, coords=coords, dims="agent", attrs={"units": "currency", "operator": s.operator})
            for what, value in (("operator_cost", s.operator_cost), ("operator_alone", s.operator_alone), ("operator_gain", s.operator_gain)):
                data[f"{s.market}-{what}"] = xr.DataArray(value, attrs={"units": "currency", "operator": s.operator})
    return xr.Dataset(data)


def game_dataset(games) -> xr.Dataset:
    """Each game's interactive price per prosumer and step, net imports, and
    every agent's money (``{game}-tariff_cost``, ``-final_cost``, ``-gain``,
    ``-share``: the Nash share without the tariffs' bounds; ``-theta``), as
    ``{game}-...`` arrays; with the exchange method also its price trace
    (``{game}-exchange_price[exchange_iteration, agent, time]``) and residuals."""
    data = {}
    for g in games:
        agents = [*g.prosumers, g.operator]
        prosumers = {"agent": list(g.prosumers)}
        data[f"{g.game}-price"] = xr.DataArray(g.price, coords=prosumers, dims=("agent", "time"), attrs={"units": "currency/MWh"})
        data[f"{g.game}-net_import"] = xr.DataArray(g.net_import, coords=prosumers, dims=("agent", "time"), attrs={"units": "MW"})
        for what, values in (("tariff_cost", [*g.alone, g.operator_alone]), ("final_cost", [*g.final, g.operator_final])):
            data[f"{g.game}-{what}"] = xr.DataArray(np.asarray(values), coords={"agent": agents}, dims="agent", attrs={"units": "currency"})
        data[f"{g.game}-gain"] = data[f"{g.game}-tariff_cost"] - data[f"{g.game}-final_cost"]
        data[f"{g.game}-gain"].attrs["units"] = "currency"
        if len(g.share):
            data[f"{g.game}-share"] = xr.DataArray(np.asarray(g.share), coords=prosumers, dims="agent", attrs={"units": "currency"})
            data[f"{g.game}-theta"] = xr.DataArray(np.asarray(g.thetas), coords=prosumers, dims="agent", attrs={"units": ""})
        x = g.exchange
        if x is not None:
            it = {"exchange_iteration": np.arange(1, len(x.primal) + 1)}
            data[f"{g.game}-exchange_price"] = xr.DataArray(np.asarray(x.prices), coords={**it, **prosumers}, dims=("exchange_iteration", "agent", "time"), attrs={"units": "currency/MWh"})
            data[f"{g.game}-exchange_primal"] = xr.DataArray(np.asarray(x.primal), coords=it, dims="exchange_iteration", attrs={"units": "MW"})
            data[f"{g.game}-exchange_dual"] = xr.DataArray(np.asarray(x.dual), coords=it, dims="exchange_iteration", attrs={"units": "MW"})
    return xr.Dataset(data)


def game_tables(g) -> list[Table]:
    """The interactive price per step (its range over the prosumers), and each agent's money."""
    from rich.table import Table

    price = Table("step", "interactive price, lowest", "highest", "prosumers' net import, MW", title=f"game {g.game}: interactive price per step (each prosumer's between feed-in and retail)")
    for t, m in enumerate(g.net_import.sum(axis=0)):
        price.add_row(str(t), f"{g.price[:, t].min():,.2f}", f"{g.price[:, t].max():,.2f}", f"{m:+.3f}")
    thetas = g.thetas if len(g.thetas) else np.full(len(g.prosumers), np.nan)
    shares = g.share if len(g.share) else np.full(len(g.prosumers), np.nan)
    money = Table("agent", "theta", "at the tariffs alone", "together", "gain", "Nash share", title=f"game {g.game}: costs and gains")
    for i, agent in enumerate(g.prosumers):
        money.add_row(agent, f"{thetas[i]:.3f}", f"{g.alone[i]:,.2f}", f"{g.final[i]:,.2f}", f"{g.gain[i]:,.2f}", f"{shares[i]:,.2f}")
    money.add_row(f"prosumers ({len(g.prosumers)})", f"{g.theta:.3f}", f"{g.alone.sum():,.2f}", f"{g.final.sum():,.2f}", f"{g.gain.sum():,.2f}", f"{shares.sum():,.2f}")
    money.add_row(f"operator {g.operator}", "", f"{g.operator_alone:,.2f}", f"{g.operator_final:,.2f}", f"{g.operator_gain:,.2f}", f"{g.powers[1] * g.surplus:,.2f}")
    money.caption = f"surplus {g.surplus:,.2f}; powers {g.powers[0]:.2f} (prosumer side, shared equally) / {g.powers[1]:.2f}; transfer from prosumers to the operator {g.transfer:,.2f}"
    tables = [price, money]
    x = g.exchange
    if x is not None:
        trace = Table("iteration", "primal residual, MW", "dual residual, MW", "mean price", title=f"game {g.game}: the price by exchange ({x.dispatch_iterations} + {len(x.primal) - x.dispatch_iterations} iterations: dispatch + settlement point; {len(x.log)} messages)")
        for k in sorted({*range(0, len(x.primal), max(1, len(x.primal) // 10)), len(x.primal) - 1}):
            trace.add_row(str(k + 1), f"{x.primal[k]:.2e}", f"{x.dual[k]:.2e}", f"{np.mean(x.prices[k]):,.2f}")
        tables.append(trace)
    return tables


def net_sales(dataset: xr.Dataset, market: str) -> xr.DataArray:
    """Net sales of each agent per step (MW): what it sells minus what it buys."""
    sale = dataset[f"{market}-sale"].fillna(0)
    return sale.sum("buyer").rename(seller="agent") - sale.sum("seller").rename(buyer="agent")


def settlement_tables(s: Settlement, dataset: xr.Dataset) -> list[Table]:
    from rich.table import Table

    money = Table("agent", "power", "cost (stage 1)", "fees paid", "alone (disagreement)", "gain", "payment", "final cost", title=f"market {s.market}: Nash bargaining")
    for i, agent in enumerate(s.agents):
        money.add_row(agent, f"{s.powers[i]:.3g}", *(f"{v:,.2f}" for v in (s.cost[i], s.fees_paid[i], s.disagreement[i], s.gain[i], s.payment[i], s.cost[i] + s.payment[i])))
    money.add_row("total", "1", *(f"{v:,.2f}" for v in (s.cost.sum(), s.fees_paid.sum(), s.disagreement.sum(), s.gain.sum(), s.payment.sum(), (s.cost + s.payment).sum())))
    money.caption = f"surplus {s.surplus:,.2f}; fees collected by the network owner {s.fees_collected:,.2f}; payments sum to {s.budget_balance:.2e}"
    if s.operator:
        money.add_row(f"{s.operator} (fee collector)", "", f"{s.operator_cost:,.2f}", f"{-s.fees_collected:,.2f}", f"{s.operator_alone:,.2f}", f"{s.operator_gain:,.2f}", "", f"{s.operator_cost:,.2f}")
        money.caption += f"; members paid {s.operator} {np.nansum(s.tariff_paid):,.2f} at its tariff; money balance {s.money_balance:.2e}"
    if s.method == "cf_admm":
        money.caption += f"; payments by closed-form ADMM in {s.iterations} iterations"
    sales = net_sales(dataset, s.market)
    schedule = Table("step", *s.agents, title=f"market {s.market}: net sales per step, MW (negative: buys)")
    for t in sales.coords["time"].values:
        schedule.add_row(str(t), *(f"{float(sales.sel(agent=a, time=t)):+.3f}" for a in s.agents))
    return [money, schedule]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the plot extra is not installed
        return None
    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_games(games, folder: Path) -> list[Path]:
    """``game_<name>.png``: the interactive prices between the tariffs, the
    prosumers' net import, each agent's gain; with the exchange method,
    ``game_<name>_exchange.png``: the price trace and the residuals per iteration."""
    plt = _pyplot()
    if plt is None:
        return []
    paths = []
    for g in games:
        fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(9, 9), gridspec_kw={"height_ratios": [2, 1, 1]})
        steps = np.arange(g.price.shape[-1])
        top.step(steps, g.retail, where="post", color="tab:red", label="retail tariff")
        top.step(steps, g.feed_in, where="post", color="tab:green", label="feed-in tariff")
        top.fill_between(steps, g.price.min(axis=0), g.price.max(axis=0), step="post", color="grey", alpha=0.4, label="interactive prices (range over prosumers)")
        top.step(steps, np.median(g.price, axis=0), where="post", color="black", linewidth=2, label="median interactive price")
        top.set(title=f"game {g.game}: interactive prices (gains {g.gain.sum():,.1f} prosumers / {g.operator_gain:,.1f} operator)", ylabel="currency/MWh", xlabel="step")
        top.legend(fontsize="small")
        middle.bar(steps, g.net_import.sum(axis=0), color="tab:blue")
        middle.axhline(0, color="black", linewidth=0.6)
        middle.set(xlabel="step", ylabel="MW", title="prosumers' net import (negative: export)")
        agents = [*g.prosumers, g.operator]
        gains = np.append(g.gain, g.operator_gain)
        bottom.bar(agents, gains, color=["tab:green" if v >= 0 else "tab:red" for v in gains])
        bottom.axhline(0, color="black", linewidth=0.6)
        bottom.tick_params(axis="x", labelrotation=90, labelsize="small")
        bottom.set(ylabel="currency", title="gain over the tariffs alone, per agent")
        paths.append(_save(plt, fig, folder / f"game_{g.game}.png"))
        x = g.exchange
        if x is not None:
            fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
            prices = np.asarray(x.prices)
            it = np.arange(1, len(prices) + 1)
            for t in range(prices.shape[-1]):
                top.plot(it, prices[:, :, t].mean(axis=1), linewidth=0.8)
            top.set(title=f"game {g.game}: prices posted by {g.operator} per step (mean over prosumers), by iteration", ylabel="currency/MWh")
            bottom.semilogy(it, np.maximum(x.primal, 1e-16), label="primal residual (powers disagree)")
            bottom.semilogy(it, np.maximum(x.dual, 1e-16), label="dual residual (targets move)")
            for ax in (top, bottom):
                ax.axvline(x.dispatch_iterations + 0.5, color="grey", linestyle=":", linewidth=1)
            bottom.text(x.dispatch_iterations + 1, bottom.get_ylim()[1], " phase 2: the settlement point", va="top", fontsize="small", color="grey")
            bottom.set(xlabel="iteration", ylabel="MW")
            bottom.legend(fontsize="small", loc="lower left")
            paths.append(_save(plt, fig, folder / f"game_{g.game}_exchange.png"))
    return paths


def plot_trace(dataset: xr.Dataset, folder: Path) -> list[Path]:
    """``convergence.png``: primal and dual residuals and rho per iteration of a decomposition."""
    plt = _pyplot()
    if plt is None or "admm_primal" not in dataset:
        return []
    fig, ax = plt.subplots(figsize=(8, 4.5))
    it = dataset["iteration"].values
    ax.semilogy(it, dataset["admm_primal"].values, label="primal residual")
    ax.semilogy(it, dataset["admm_dual"].values, label="dual residual")
    ax.semilogy(it, dataset["admm_rho"].values, label="rho", linestyle="--")
    ax.set(xlabel="iteration", title="ADMM convergence")
    ax.legend()
    return [_save(plt, fig, folder / "convergence.png")]


def plot_markets(settlements: tuple[Settlement, ...], dataset: xr.Dataset, folder: Path) -> list[Path]:
    """``market_<name>.png``: net sales per step and payments per agent."""
    plt = _pyplot()
    if plt is None:
        return []
    paths = []
    for s in settlements:
        sales = net_sales(dataset, s.market)
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), gridspec_kw={"height_ratios": [2, 1]})
        steps = sales.coords["time"].values
        width = 0.8 / len(s.agents)
        for k, agent in enumerate(s.agents):
            top.bar(steps + (k - (len(s.agents) - 1) / 2) * width, sales.sel(agent=agent).values, width, label=agent)
        top.axhline(0, color="black", linewidth=0.6)
        top.set(title=f"market {s.market}: net sales per step (negative: buys)", xlabel="step", ylabel="MW")
        top.legend(ncol=len(s.agents), fontsize="small")
        colors = ["tab:red" if p > 0 else "tab:green" for p in np.nan_to_num(s.payment)]
        bottom.bar(list(s.agents), s.payment, color=colors)
        bottom.axhline(0, color="black", linewidth=0.6)
        collector = f"; {s.operator} collects fees {s.fees_collected:,.0f} and gains {s.operator_gain:,.0f}" if s.operator else ""
        bottom.set(title=f"payments (positive: pays); surplus {s.surplus:,.0f} split by bargaining power{collector}", ylabel="currency")
        paths.append(_save(plt, fig, folder / f"market_{s.market}.png"))
    return paths
