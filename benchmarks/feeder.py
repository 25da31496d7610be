"""A synthetic radial distribution feeder for the compile-scaling benchmark.

:func:`make_feeder` draws one deterministic instance from ``(n_buses, steps,
seed)``; :func:`render_grid` writes it as ``.grid`` text for gridlang (lines,
loads, PV and storage as inline tables; :func:`render_grid_statements` writes
every load as its own statement instead, for ``parse_speed.py``) and
:func:`per_unit` converts it to the internal per-unit arrays that the
hand-written linopy and Pyomo models use.  All three therefore describe the
same optimisation problem, defined by gridlang's standard library
(``load``, ``pv``, ``storage``, ``grid`` kinds and the ``lindistflow``
formulation)::

    min   sum_t (tou[t] * import[t] - 0 * export[t]) * dt

    grid     import[t] >= 0, export[t] >= 0, q_grid[t] free
    load     injects  p = -p_nom * residential[t],  q = -q_nom * residential[t]
    pv       0 <= p_pv[t] <= capacity * sun[t], injects p_pv[t]
    storage  0 <= charge[t], discharge[t] <= power,  soc_min * energy <= soc[t] <= energy
             soc[t] = soc[t-1] + (eta * charge[t] - discharge[t] / eta) * dt   (t > 0)
             soc[0] = soc_init * energy + (eta * charge[0] - discharge[0] / eta) * dt
             soc[T-1] >= soc_final * energy,  injects discharge[t] - charge[t]
    network  P[l, t], Q[l, t] free,  vmin^2 <= w[b, t] <= vmax^2,  w[slack, t] = v_set^2
             sum_{l into b} P[l, t] + inj_p[b, t] = sum_{l out of b} P[l, t]   (same for Q)
             w[to(l), t] = w[from(l), t] - 2 (r[l] P[l, t] + x[l] Q[l, t])

Per-unit conventions follow ``gridlang.compiler.units``: power in units of
``S_base`` (10 MVA), energy in ``S_base`` hours, impedance in units of
``V_base^2 / S_base``, prices in currency per ``S_base`` hour, the objective in
currency.

Topology.  Bus ``b1`` is the substation (slack).  Buses are created in order
and grouped into laterals of :data:`LATERAL_SIZE` buses; the first bus of a
lateral hangs off ``b1`` and every later one off a random bus among the last
five created in its lateral.  Laterals are about 12 lines deep.  (One single
lateral of thousands of buses, as "parent among the last five" alone would
give, cannot carry 20-120 kW per bus at 12.66 kV within 0.9 p.u.: the model
would be infeasible from about 60 buses on.)

Every number is rounded to a few significant digits *before* it is stored,
and rendered with ``repr``, so the ``.grid`` text holds exactly the values the
hand-written models use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

#: buses per lateral hanging off the substation; keeps the worst voltage drop
#: at peak load near 0.11 p.u. of the 0.19 p.u. that vmin = 0.9 allows
LATERAL_SIZE = 40
#: a new bus picks its parent among this many previously created buses of its lateral
PARENT_WINDOW = 5
PV_EVERY = 10
STORAGE_EVERY = 25

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Feeder:
    """One synthetic feeder in the units a user writes (kW, kWh, ohm, $/MWh).

    Bus ``k`` (0-based) is named ``b{k+1}``; line ``k - 1`` (for ``k >= 1``)
    is named ``l{k+1}`` and runs from ``parent[k]`` to ``k``.
    """

    n_buses: int
    steps: int
    seed: int
    parent: IntArray  # (n_buses,), parent[0] == -1
    r_ohm: FloatArray  # (n_buses - 1,) per line
    x_ohm: FloatArray  # (n_buses - 1,)
    load_bus: IntArray  # (n_loads,) bus index of each load
    load_p_kw: FloatArray  # (n_loads,) nominal active demand
    load_q_kvar: FloatArray  # (n_loads,) nominal reactive demand = 0.5 p
    pv_bus: IntArray
    pv_capacity_kw: FloatArray
    storage_bus: IntArray
    storage_energy_kwh: float
    storage_power_kw: float
    storage_efficiency_pct: float
    storage_soc_init_pct: float
    residential: FloatArray  # (steps,) load shape in [0.4, 1.0]
    sun: FloatArray  # (steps,) PV availability in [0, 0.9]
    tou: FloatArray  # (steps,) import price in $/MWh
    export_price: float = 0.0  # $/MWh
    base_power_mva: float = 10.0
    base_voltage_kv: float = 12.66
    vmin: float = 0.9
    vmax: float = 1.1
    v_set: float = 1.0

    @property
    def dt_hours(self) -> float:
        """Step length in hours: the 24 h horizon divided into ``steps``."""
        return 24.0 / self.steps

    @property
    def bus_names(self) -> list[str]:
        return [f"b{k + 1}" for k in range(self.n_buses)]

    @property
    def line_names(self) -> list[str]:
        return [f"l{k + 1}" for k in range(1, self.n_buses)]

    @property
    def line_from(self) -> IntArray:
        """Bus index at the sending end of each line."""
        return self.parent[1:]

    @property
    def line_to(self) -> IntArray:
        """Bus index at the receiving end of each line (line ``i`` feeds bus ``i + 1``)."""
        return np.arange(1, self.n_buses, dtype=np.int64)

    def n_variables(self) -> int:
        """Columns of the LP: grid 3T, pv T each, storage 3T each, P and Q per line, w per bus."""
        per_step = 3 + len(self.pv_bus) + 3 * len(self.storage_bus) + 2 * (self.n_buses - 1) + self.n_buses
        return per_step * self.steps

    def n_constraints(self) -> int:
        """Rows: slack T, two balances per bus, one drop per line, storage T + 1 each."""
        per_step = 1 + 2 * self.n_buses + (self.n_buses - 1)
        return per_step * self.steps + len(self.storage_bus) * (self.steps + 1)


@dataclass(frozen=True, eq=False)
class PerUnit:
    """The feeder in gridlang's internal units (see the module docstring).

    2-D arrays are indexed ``[element, t]``.
    """

    dt: float  # h
    r: FloatArray  # (lines,) in V_base^2 / S_base
    x: FloatArray
    load_p: FloatArray  # (n_loads, T) demand in S_base, shape applied
    load_q: FloatArray
    pv_pmax: FloatArray  # (n_pv, T) capacity * availability
    storage_energy: float  # S_base h
    storage_power: float  # S_base
    storage_efficiency: float  # fraction
    storage_soc_init: float  # fraction
    storage_soc_final: float  # fraction
    storage_soc_min: float  # fraction
    import_price: FloatArray  # (T,) currency per S_base h
    export_price: FloatArray  # (T,)
    wmin: FloatArray  # (n_buses,) vmin^2
    wmax: FloatArray  # (n_buses,) vmax^2
    w_slack: float  # v_set^2
    slack: int  # bus index


def _rounded(values: FloatArray, fmt: str) -> FloatArray:
    """Round through text so that ``repr`` of each value is its short decimal form."""
    return np.array([float(format(float(v), fmt)) for v in values], dtype=np.float64)


def profiles(steps: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Daily profiles sampled at the start of each step, hour h = t * 24 / steps.

    residential(h) = 0.7 + 0.3 sin(2 pi (h - 13) / 24)     in [0.4, 1.0], peak at 19 h
    sun(h)         = 0.9 cos^2(pi (h - 12) / 12) for 6 < h < 18, else 0
    tou(h)         = 40 $/MWh for h < 7 or h >= 22, 90 for 17 <= h < 21, else 60
    """
    if steps <= 0 or 1440 % steps:
        raise ValueError(f"steps must divide a day into whole minutes, got {steps}")
    hour = np.arange(steps) * (24.0 / steps)
    residential = _rounded(0.7 + 0.3 * np.sin(2 * np.pi * (hour - 13.0) / 24.0), ".4f")
    bell = np.cos(np.pi * (hour - 12.0) / 12.0) ** 2
    sun = _rounded(np.where(np.abs(hour - 12.0) < 6.0, 0.9 * bell, 0.0), ".4f")
    tou = np.full(steps, 60.0)
    tou[(hour < 7.0) | (hour >= 22.0)] = 40.0
    tou[(hour >= 17.0) & (hour < 21.0)] = 90.0
    return residential, sun, tou


def make_feeder(n_buses: int, steps: int, seed: int = 0) -> Feeder:
    """Draw the feeder with ``numpy.random.RandomState(seed)``, in a fixed order.

    r ~ U[0.05, 0.5] ohm, x ~ U[0.03, 0.3] ohm per line; a load at every bus
    but b1 with p ~ U[20, 120] kW and q = 0.5 p; PV of U[100, 400] kW at every
    10th bus; a 500 kWh / 250 kW storage (95 %, 50 % initial) at every 25th.
    """
    if n_buses < 2:
        raise ValueError("a feeder needs at least two buses")
    rng = np.random.RandomState(seed)
    parent = np.full(n_buses, -1, dtype=np.int64)
    for k in range(1, n_buses):
        first_of_lateral = 1 + ((k - 1) // LATERAL_SIZE) * LATERAL_SIZE
        if k == first_of_lateral:
            parent[k] = 0
        else:
            parent[k] = rng.randint(max(first_of_lateral, k - PARENT_WINDOW), k)
    n_lines = n_buses - 1
    r_ohm = _rounded(rng.uniform(0.05, 0.5, n_lines), ".4f")
    x_ohm = _rounded(rng.uniform(0.03, 0.3, n_lines), ".4f")
    load_bus = np.arange(1, n_buses, dtype=np.int64)
    load_p_kw = _rounded(rng.uniform(20.0, 120.0, n_lines), ".1f")
    load_q_kvar = 0.5 * load_p_kw  # exact: halving only changes the exponent
    bus_number = np.arange(1, n_buses + 1)
    pv_bus = np.flatnonzero(bus_number % PV_EVERY == 0).astype(np.int64)
    pv_capacity_kw = _rounded(rng.uniform(100.0, 400.0, len(pv_bus)), ".1f")
    storage_bus = np.flatnonzero(bus_number % STORAGE_EVERY == 0).astype(np.int64)
    residential, sun, tou = profiles(steps)
    return Feeder(
        n_buses=n_buses,
        steps=steps,
        seed=seed,
        parent=parent,
        r_ohm=r_ohm,
        x_ohm=x_ohm,
        load_bus=load_bus,
        load_p_kw=load_p_kw,
        load_q_kvar=load_q_kvar,
        pv_bus=pv_bus,
        pv_capacity_kw=pv_capacity_kw,
        storage_bus=storage_bus,
        storage_energy_kwh=500.0,
        storage_power_kw=250.0,
        storage_efficiency_pct=95.0,
        storage_soc_init_pct=50.0,
        residential=residential,
        sun=sun,
        tou=tou,
    )


def per_unit(f: Feeder) -> PerUnit:
    """Convert to internal units: x_internal = x * SI size / base size.

    kW, kvar -> 1e3 / S_base;  kWh -> 1e3 * 3600 / (S_base * 3600);
    ohm -> S_base / V_base^2;  $/MWh -> S_base / 1e6;  % -> 1/100.
    """
    s_base = f.base_power_mva * 1e6  # VA
    v_base = f.base_voltage_kv * 1e3  # V
    kw = 1e3 / s_base
    ohm = s_base / v_base**2
    per_mwh = s_base / 1e6
    eta = f.storage_efficiency_pct / 100.0
    soc_init = f.storage_soc_init_pct / 100.0
    return PerUnit(
        dt=f.dt_hours,
        r=f.r_ohm * ohm,
        x=f.x_ohm * ohm,
        load_p=np.outer(f.load_p_kw * kw, f.residential),
        load_q=np.outer(f.load_q_kvar * kw, f.residential),
        pv_pmax=np.outer(f.pv_capacity_kw * kw, f.sun),
        storage_energy=f.storage_energy_kwh * kw,
        storage_power=f.storage_power_kw * kw,
        storage_efficiency=eta,
        storage_soc_init=soc_init,
        storage_soc_final=soc_init,
        storage_soc_min=0.0,
        import_price=f.tou * per_mwh,
        export_price=np.full(f.steps, f.export_price * per_mwh),
        wmin=np.full(f.n_buses, f.vmin**2),
        wmax=np.full(f.n_buses, f.vmax**2),
        w_slack=f.v_set**2,
        slack=0,
    )


def step_text(steps: int) -> str:
    """The ``step = ...`` value: 24 -> '1 h', 48 -> '30 min', 96 -> '15 min'."""
    minutes = 1440 // steps
    if 1440 % steps:
        raise ValueError(f"steps must divide a day into whole minutes, got {steps}")
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def _num(v: float) -> str:
    """Shortest text that reads back as exactly ``v`` (integers without '.0')."""
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def _list(values: FloatArray, per_line: int = 12) -> str:
    """A list literal, ``per_line`` values to a line."""
    chunks = [", ".join(_num(v) for v in values[i : i + per_line]) for i in range(0, len(values), per_line)]
    return "[" + ",\n  ".join(chunks) + "]"


def render_grid(f: Feeder, loads: str = "table") -> str:
    """The feeder as a ``.grid`` case, one statement or table row per line.

    ``loads="table"`` (the default) writes the loads as one ``load table`` whose
    ``scale`` column applies the residential profile to p and q;
    ``loads="statements"`` writes one ``load ... { p = ...; q = ... }``
    statement per load instead (see :func:`render_grid_statements`).  Both
    describe the same problem.
    """
    if loads not in ("table", "statements"):
        raise ValueError(f"loads must be 'table' or 'statements', got {loads!r}")
    names = f.bus_names
    out: list[str] = [
        f"# synthetic radial feeder: {f.n_buses} buses, {f.steps} steps, seed {f.seed}",
        f"system feeder {{ base_power = {_num(f.base_power_mva)} MVA; base_voltage = {_num(f.base_voltage_kv)} kV; "
        f"horizon = 24 h; step = {step_text(f.steps)} }}",
        f"profile residential = {_list(f.residential)}",
        f"profile sun = {_list(f.sun)}",
        f"profile tou = {_list(f.tou)} $/MWh",
        "network feeder uses lindistflow {",
        f"  bus b1 {{ slack; v_set = {_num(f.v_set)} }}",
        f"  bus b2{'..b' + str(f.n_buses) if f.n_buses > 2 else ''} {{ vmin = {_num(f.vmin)}; vmax = {_num(f.vmax)} }}",
        "  line table (name, from, to, r [ohm], x [ohm]) {",
    ]
    for i, (a, b) in enumerate(zip(f.line_from.tolist(), f.line_to.tolist())):
        out.append(f"    l{b + 1} {names[a]} {names[b]} {_num(f.r_ohm[i])} {_num(f.x_ohm[i])}")
    out += ["  }", "}"]
    if loads == "statements":
        for bus, p, q in zip(f.load_bus.tolist(), f.load_p_kw, f.load_q_kvar):
            out.append(f"load ld{bus + 1} at {names[bus]} {{ p = {_num(p)} kW * residential; q = {_num(q)} kvar * residential }}")
    elif len(f.load_bus):
        out.append("load table (name, at, p [kW], q [kvar], scale) {")
        for bus, p, q in zip(f.load_bus.tolist(), f.load_p_kw, f.load_q_kvar):
            out.append(f"  ld{bus + 1} {names[bus]} {_num(p)} {_num(q)} residential")
        out.append("}")
    if len(f.pv_bus):
        out.append("pv table (name, at, capacity [kW], availability) {")
        for bus, cap in zip(f.pv_bus.tolist(), f.pv_capacity_kw):
            out.append(f"  pv{bus + 1} {names[bus]} {_num(cap)} sun")
        out.append("}")
    if len(f.storage_bus):
        out.append("storage table (name, at, energy [kWh], power [kW], efficiency [%], soc_init [%]) {")
        for bus in f.storage_bus.tolist():
            out.append(
                f"  es{bus + 1} {names[bus]} {_num(f.storage_energy_kwh)} {_num(f.storage_power_kw)} "
                f"{_num(f.storage_efficiency_pct)} {_num(f.storage_soc_init_pct)}"
            )
        out.append("}")
    out.append(f"grid grid1 at b1 {{ import_price = tou; export_price = {_num(f.export_price)} $/MWh }}")
    out.append("objective minimize cost")
    return "\n".join(out) + "\n"


def render_grid_statements(f: Feeder) -> str:
    """The same case with every load written as its own statement (statement-heavy text)."""
    return render_grid(f, loads="statements")


if __name__ == "__main__":  # print a small case, e.g. `python benchmarks/feeder.py 30 24`
    import sys

    n, t = (int(a) for a in (sys.argv[1:3] if len(sys.argv) >= 3 else ("30", "24")))
    print(render_grid(make_feeder(n, t)), end="")
