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


def plot_markets(settlements: tuple[Settlement, ...], dataset: xr.Dataset, folder: Path) -> list[Path]:
    """``market_<name>.png``: net sales per step and payments per agent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the plot extra is not installed
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
        fig.tight_layout()
        path = folder / f"market_{s.market}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
