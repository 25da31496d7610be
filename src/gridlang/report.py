"""What a user reads after a solve with markets: tables, arrays and a plot.

``settlement_dataset`` turns each market's stage 2 into arrays over ``agent``
(written with the other results); ``settlement_tables`` renders the money
per agent and the trade schedule for the terminal; ``plot_markets`` draws
net sales per step and payments per agent (needs matplotlib: the ``plot``
extra).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from rich.table import Table

from gridlang.settle import Settlement


def settlement_dataset(settlements: tuple[Settlement, ...]) -> xr.Dataset:
    """Per-agent money of every market, in currency, as ``{market}-{quantity}[agent]``."""
    data = {}
    for s in settlements:
        coords = {"agent": list(s.agents)}
        for what, values in (("cost", s.cost), ("fees_paid", s.fees_paid), ("disagreement", s.disagreement), ("gain", s.gain), ("payment", s.payment), ("final_cost", s.cost + s.payment)):
            data[f"{s.market}-{what}"] = xr.DataArray(values, coords=coords, dims="agent", attrs={"units": "currency"})
    return xr.Dataset(data)


def game_dataset(games) -> xr.Dataset:
    """Interactive price per step and each side's money, as ``{game}-...`` arrays."""
    data = {}
    for g in games:
        agents = [*g.prosumers, g.operator]
        data[f"{g.game}-price"] = xr.DataArray(g.price, dims="time", attrs={"units": "currency/MWh"})
        data[f"{g.game}-net_import"] = xr.DataArray(g.net_import, coords={"agent": list(g.prosumers)}, dims=("agent", "time"), attrs={"units": "MW"})
        for what, values in (("tariff_cost", [*g.alone, g.operator_alone]), ("final_cost", [*g.final, g.operator_final])):
            data[f"{g.game}-{what}"] = xr.DataArray(np.asarray(values), coords={"agent": agents}, dims="agent", attrs={"units": "currency"})
        data[f"{g.game}-gain"] = data[f"{g.game}-tariff_cost"] - data[f"{g.game}-final_cost"]
        data[f"{g.game}-gain"].attrs["units"] = "currency"
    return xr.Dataset(data)


def game_tables(g) -> list[Table]:
    price = Table("step", "interactive price", "prosumers' net import, MW", title=f"game {g.game}: interactive price (theta {g.theta:.3f} between feed-in and retail)")
    for t, (p, m) in enumerate(zip(g.price, g.net_import.sum(axis=0))):
        price.add_row(str(t), f"{p:,.2f}", f"{m:+.3f}")
    money = Table("side", "at the tariffs alone", "together", "gain", title=f"game {g.game}: costs and gains")
    money.add_row(f"prosumers ({len(g.prosumers)})", f"{g.alone.sum():,.2f}", f"{g.final.sum():,.2f}", f"{g.gain.sum():,.2f}")
    money.add_row(f"operator {g.operator}", f"{g.operator_alone:,.2f}", f"{g.operator_final:,.2f}", f"{g.operator_gain:,.2f}")
    money.caption = f"surplus {g.surplus:,.2f} split {g.powers[0]:.2f} / {g.powers[1]:.2f}; transfer from prosumers to the operator {g.transfer:,.2f}"
    return [price, money]


def net_sales(dataset: xr.Dataset, market: str) -> xr.DataArray:
    """Net sales of each agent per step (MW): what it sells minus what it buys."""
    sale = dataset[f"{market}-sale"].fillna(0)
    return sale.sum("buyer").rename(seller="agent") - sale.sum("seller").rename(buyer="agent")


def settlement_tables(s: Settlement, dataset: xr.Dataset) -> list[Table]:
    money = Table("agent", "power", "cost (stage 1)", "fees paid", "alone (disagreement)", "gain", "payment", "final cost", title=f"market {s.market}: Nash bargaining")
    for i, agent in enumerate(s.agents):
        money.add_row(agent, f"{s.powers[i]:.3g}", *(f"{v:,.2f}" for v in (s.cost[i], s.fees_paid[i], s.disagreement[i], s.gain[i], s.payment[i], s.cost[i] + s.payment[i])))
    money.add_row("total", "1", *(f"{v:,.2f}" for v in (s.cost.sum(), s.fees_paid.sum(), s.disagreement.sum(), s.gain.sum(), s.payment.sum(), (s.cost + s.payment).sum())))
    money.caption = f"surplus {s.surplus:,.2f}; fees collected by the network owner {s.fees_collected:,.2f}; payments sum to {s.budget_balance:.2e}"
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
    """``game_<name>.png``: the interactive price between the tariffs, and the prosumers' net import."""
    plt = _pyplot()
    if plt is None:
        return []
    paths = []
    for g in games:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
        steps = np.arange(len(g.price))
        top.step(steps, g.retail, where="post", color="tab:red", label="retail tariff")
        top.step(steps, g.feed_in, where="post", color="tab:green", label="feed-in tariff")
        top.step(steps, g.price, where="post", color="black", linewidth=2, label="interactive price")
        top.set(title=f"game {g.game}: interactive price (gains {g.gain.sum():,.1f} prosumers / {g.operator_gain:,.1f} operator)", ylabel="currency/MWh")
        top.legend(fontsize="small")
        bottom.bar(steps, g.net_import.sum(axis=0), color="tab:blue")
        bottom.axhline(0, color="black", linewidth=0.6)
        bottom.set(xlabel="step", ylabel="MW", title="prosumers' net import (negative: export)")
        paths.append(_save(plt, fig, folder / f"game_{g.game}.png"))
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
        bottom.set(title=f"payments (positive: pays); surplus {s.surplus:,.0f} split by bargaining power", ylabel="currency")
        paths.append(_save(plt, fig, folder / f"market_{s.market}.png"))
    return paths
