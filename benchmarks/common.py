"""Small helpers the benchmark scripts share: text tables, package versions and a
generated copper-plate dispatch case."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def grid_table(header: list[str], rows: list[list[str]]) -> str:
    """Right-aligned text table."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows])


def version(dist: str) -> str:
    """The installed version of a distribution, or 'not installed'."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(dist)
    except PackageNotFoundError:
        return "not installed"


def ints(text: str) -> list[int]:
    """``"100, 1000,5000"`` -> ``[100, 1000, 5000]``: a comma-separated list of sizes."""
    return [int(v) for v in text.replace(" ", "").split(",") if v]


# ============================================================ a copper-plate dispatch


@dataclass(frozen=True, slots=True)
class CopperPlate:
    """A generated copper-plate dispatch: one bus, one grid connection, ``n`` generators
    with linear costs, and ``n`` profile-driven assets (loads and PV, half each).

    The data are kept here too so that another tool (PyPSA) builds the same problem::

        min  sum_t [ import_price * import[t] + sum_g cost_g * p_g[t] ] * 1 h
        s.t. import[t] + sum_g p_g[t] + sum_v pv_v[t] == sum_d p_d * scale_d[t]
             0 <= p_g[t] <= pmax_g,  0 <= pv_v[t] <= capacity_v * avail_v[t],
             0 <= import[t] <= import_max
    """

    folder: Path
    grid_file: Path
    steps: int
    gen_names: list[str]
    gen_pmax: np.ndarray  # MW
    gen_cost: np.ndarray  # $/MWh
    load_names: list[str]
    load_p: np.ndarray  # MW
    pv_names: list[str]
    pv_capacity: np.ndarray  # MW
    import_price: float  # $/MWh
    import_max: float  # MW
    load_csv: Path  # columns: the load names, values per unit of p
    pv_csv: Path  # columns: the PV names, availability per unit of capacity


def copper_plate_case(n: int, steps: int, folder: Path, seed: int = 17) -> CopperPlate:
    """Write ``plate.grid``, ``loads.csv`` and ``pv.csv`` into ``folder``; see :class:`CopperPlate`.

    Loads follow a daily shape with noise (0.3..1 p.u.), PV a clipped sine by
    day (0..1 p.u.); the import limit covers the peak demand, so every case is
    feasible.  Same ``n``, ``steps`` and ``seed``: the same files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_load, n_pv = n - n // 2, n // 2
    gen_names = [f"g{i}" for i in range(1, n + 1)]
    load_names = [f"d{i}" for i in range(1, n_load + 1)]
    pv_names = [f"s{i}" for i in range(1, n_pv + 1)]
    gen_pmax = np.round(rng.uniform(0.2, 1.0, n), 3)
    gen_cost = np.round(rng.uniform(20.0, 90.0, n), 2)
    load_p = np.round(rng.uniform(0.5, 2.0, n_load), 3)
    pv_capacity = np.round(rng.uniform(0.5, 2.5, n_pv), 3)
    hour = np.arange(steps) % 24
    daily = 0.65 + 0.25 * np.sin((hour - 9) * np.pi / 12)
    scale = np.clip(daily[:, None] + rng.normal(0.0, 0.05, (steps, n_load)), 0.3, 1.0).round(4)
    sun = np.clip(np.sin((hour - 6) * np.pi / 12), 0.0, None)[:, None]
    avail = np.clip(sun * rng.uniform(0.6, 1.0, (steps, n_pv)), 0.0, 1.0).round(4)
    load_csv, pv_csv = folder / "loads.csv", folder / "pv.csv"
    _write_columns(load_csv, load_names, scale)
    _write_columns(pv_csv, pv_names, avail)
    import_price = 120.0
    import_max = float(np.ceil((scale * load_p).sum(axis=1).max()))
    lines = [
        f"system plate {{ base_power = 1 MVA; base_voltage = 1 kV; horizon = {steps} h; step = 1 h }}",
        "network plate uses copper_plate { bus b1 { slack } }",
        f"grid up at b1 {{ import_price = {import_price} $/MWh; import_max = {import_max} MW; export_max = 0 }}",
        "generator table (name, at, pmax [MW], marginal_cost [$/MWh]) {",
        *(f"  {g} b1 {p} {c}" for g, p, c in zip(gen_names, gen_pmax, gen_cost)),
        "}",
        *(f'profile {d}_scale = csv("loads.csv", column = "{d}")' for d in load_names),
        *(f'profile {s}_avail = csv("pv.csv", column = "{s}")' for s in pv_names),
        "load table (name, at, p [MW], scale) {",
        *(f"  {d} b1 {p} {d}_scale" for d, p in zip(load_names, load_p)),
        "}",
    ]
    if pv_names:
        lines += ["pv table (name, at, capacity [MW], availability) {", *(f"  {s} b1 {c} {s}_avail" for s, c in zip(pv_names, pv_capacity)), "}"]
    lines += ["objective minimize cost", "study dispatch: dispatch { solver = highs }"]
    grid_file = folder / "plate.grid"
    grid_file.write_text("\n".join(lines) + "\n")
    return CopperPlate(folder, grid_file, steps, gen_names, gen_pmax, gen_cost, load_names, load_p, pv_names, pv_capacity, import_price, import_max, load_csv, pv_csv)


def _write_columns(path: Path, names: list[str], values: np.ndarray) -> None:
    """A CSV with an ``hour`` column and one column per name."""
    with open(path, "w") as f:
        f.write(",".join(["hour", *names]) + "\n")
        np.savetxt(f, np.column_stack([np.arange(len(values)), values]), fmt=["%d"] + ["%.4f"] * values.shape[1], delimiter=",")
