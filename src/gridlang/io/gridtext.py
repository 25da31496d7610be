"""Writing an imported network as ``.grid`` text.

The importers (:mod:`gridlang.io.matpower`, :mod:`gridlang.io.pandapower_net`)
translate their source into a :class:`Feeder`, a plain description in the
units the ``.grid`` file will use, and :func:`write_grid` turns it into text:
a ``system`` block, a ``network`` block (buses, a line table, transformers),
a load table, the assets and ``objective minimize cost``.

Impedances are always written in ohm referred to the system's base voltage:
a line table's ``[p.u.]`` column is not accepted for an impedance, and
dividing by ``base_voltage^2 / base_power`` gives back the per-unit values of
the source (to 12 significant digits, as numbers are written).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from gridlang.errors import COMMAND_LINE, GridError


@dataclass(frozen=True, slots=True)
class Bus:
    name: str
    number: int | None = None  # the source's bus number, to write runs as b2..b33
    vmin: float | None = None  # p.u.
    vmax: float | None = None
    slack: bool = False
    v_set: float | None = None
    gs: float = 0.0  # shunt: MW drawn at 1 p.u.
    bs: float = 0.0  # shunt: Mvar given at 1 p.u. (a capacitor is positive)


@dataclass(frozen=True, slots=True)
class Branch:
    name: str
    from_bus: str
    to_bus: str
    r: float  # ohm, referred to the system base voltage
    x: float
    transformer: bool = False
    note: str = ""  # a comment written beside the branch
    charging: float = 0.0  # Mvar at 1 p.u., half at each end
    tap: float = 1.0  # off-nominal ratio at the from end
    leakage: float = 0.0  # MW drawn by the branch's shunt conductance at 1 p.u., half at each end


@dataclass(frozen=True, slots=True)
class Load:
    name: str
    bus: str
    p: float  # in Feeder.load_units
    q: float


@dataclass(frozen=True, slots=True)
class Supply:
    """The upstream grid at a slack bus (stdlib kind ``grid``)."""

    name: str
    bus: str
    import_price: float  # currency per MWh
    import_max: float | None = None  # MW
    export_max: float | None = None


@dataclass(frozen=True, slots=True)
class Generator:
    name: str
    bus: str
    pmax: float  # MW
    pmin: float = 0.0
    qmax: float = 0.0  # Mvar
    qmin: float = 0.0
    marginal_cost: float = 0.0  # currency per MWh
    quadratic_cost: float = 0.0  # currency per MW^2 h


@dataclass(frozen=True, slots=True)
class PV:
    name: str
    bus: str
    capacity: float  # MW


@dataclass(frozen=True, slots=True)
class Feeder:
    """A network and its assets, ready to be written as ``.grid`` text."""

    name: str
    base_mva: float
    base_kv: float
    buses: tuple[Bus, ...]
    branches: tuple[Branch, ...] = ()
    loads: tuple[Load, ...] = ()
    load_units: tuple[str, str] = ("MW", "Mvar")
    supplies: tuple[Supply, ...] = ()
    generators: tuple[Generator, ...] = ()
    pvs: tuple[PV, ...] = ()
    header: tuple[str, ...] = ()  # comment lines at the top of the file
    left_out: tuple[str, ...] = ()  # comment lines: items of the source not written
    approximated: tuple[str, ...] = ()  # element classes changed or dropped by the import, with their size
    currency: str = "$"


@dataclass(frozen=True, slots=True)
class Imported:
    """The result of an import: the ``.grid`` text and what the user should know."""

    text: str
    warnings: tuple[str, ...] = ()
    summary: str = ""


def grid_name(name: str) -> str:
    """A valid gridlang name from a file stem or network name."""
    cleaned = re.sub(r"\W", "_", name.strip()) or "imported"
    return cleaned if re.match(r"[A-Za-z_]", cleaned) else f"n{cleaned}"


def num(x: float) -> str:
    """A number as the shortest text that reads back to it (to 12 significant digits)."""
    x = float(x)
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    x = float(f"{x:.12g}")
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def formulation_params(formulation: str) -> set[str] | None:
    """The parameters a standard-library formulation declares; None if it is not one."""
    from gridlang.compiler.resolve import stdlib  # the model layer, parsed once
    from gridlang.grammar import ast

    for module in stdlib():
        for s in module.statements:
            if isinstance(s, ast.FormulationDef) and s.name.name == formulation:
                return {d.name.name for d in s.body if isinstance(d, ast.ParamDecl)}
    return None


def summary(feeder: Feeder) -> str:
    lines = sum(not b.transformer for b in feeder.branches)
    parts = [
        f"{len(feeder.buses)} buses",
        f"{lines} lines",
        f"{len(feeder.branches) - lines} transformers",
        f"{len(feeder.loads)} loads",
        f"{len(feeder.supplies)} grid connections",
        f"{len(feeder.generators)} generators",
        f"{len(feeder.pvs)} pv",
    ]
    return ", ".join(parts)


def write_grid(feeder: Feeder, formulation: str = "lindistflow") -> str:
    """The ``.grid`` text of ``feeder`` for a network of ``formulation``."""
    if not re.fullmatch(r"[A-Za-z_]\w*", formulation):
        raise GridError(COMMAND_LINE, f"'{formulation}' is not a formulation name", "e.g. --formulation lindistflow")
    params = formulation_params(formulation)
    has = (lambda p: True) if params is None else params.__contains__  # a user formulation: write everything
    name = grid_name(feeder.name)
    out: list[str] = [f"# {h}" if h else "#" for h in feeder.header]
    out.append(f"system {name} {{ base_power = {num(feeder.base_mva)} MVA; base_voltage = {num(feeder.base_kv)} kV; horizon = 1 h; step = 1 h }}")
    out.append(f"network {name} uses {formulation} {{")
    out.extend(_buses(feeder.buses, has))
    out.extend(_branches(feeder.branches, has))
    out.extend(f"  # {c}" for c in feeder.left_out)
    out.append("}")
    if feeder.loads:
        pu, qu = feeder.load_units
        rows = [(ld.name, ld.bus, num(ld.p), num(ld.q)) for ld in feeder.loads]
        out.append(f"load table (name, at, p [{pu}], q [{qu}]) {{")
        out.extend(_aligned(rows))
        out.append("}")
    c = feeder.currency
    for s in feeder.supplies:
        attrs = [f"import_price = {num(s.import_price)} {c}/MWh"]
        if s.import_max is not None and math.isfinite(s.import_max):
            attrs.append(f"import_max = {_power(s.import_max)}")
        if s.export_max is not None and math.isfinite(s.export_max):
            attrs.append(f"export_max = {_power(s.export_max)}")
        out.append(f"grid {s.name} at {s.bus} {{ {'; '.join(attrs)} }}")
    for g in feeder.generators:
        attrs = [f"pmax = {_power(g.pmax)}", f"pmin = {_power(g.pmin)}", f"qmax = {_power(g.qmax, 'Mvar')}", f"qmin = {_power(g.qmin, 'Mvar')}"]
        if g.marginal_cost:
            attrs.append(f"marginal_cost = {num(g.marginal_cost)} {c}/MWh")
        if g.quadratic_cost:
            attrs.append(f"quadratic_cost = {num(g.quadratic_cost)} {c}/MW^2/h")
        out.append(f"generator {g.name} at {g.bus} {{ {'; '.join(attrs)} }}")
    for p in feeder.pvs:
        out.append(f"pv {p.name} at {p.bus} {{ capacity = {_power(p.capacity)}; availability = 1 }}")
    out.append("objective minimize cost")
    return "\n".join(out) + "\n"


def _power(x: float, unit: str = "MW") -> str:
    return num(x) if x == 0 or math.isinf(x) else f"{num(x)} {unit}"


def _buses(buses: Sequence[Bus], has) -> list[str]:
    """Bus items; consecutive numbers with the same attributes become one range."""

    def attrs(b: Bus) -> str:
        items = []
        if b.slack and has("slack"):
            items.append("slack")
        if b.v_set is not None and has("v_set"):
            items.append(f"v_set = {num(b.v_set)}")
        if b.vmin is not None and has("vmin"):
            items.append(f"vmin = {num(b.vmin)}")
        if b.vmax is not None and has("vmax"):
            items.append(f"vmax = {num(b.vmax)}")
        if b.gs and has("gs"):
            items.append(f"gs = {num(b.gs)} MW")
        if b.bs and has("bs"):
            items.append(f"bs = {num(b.bs)} Mvar")
        return f" {{ {'; '.join(items)} }}" if items else ""

    out, run = [], []

    def flush() -> None:
        if run:
            names = run[0].name if len(run) == 1 else f"{run[0].name}..{run[-1].name}"
            out.append(f"  bus {names}{attrs(run[0])}")
            run.clear()

    for b in buses:
        prev = run[-1] if run else None
        joins = (
            prev is not None
            and not b.slack
            and not prev.slack
            and b.number is not None
            and prev.number is not None
            and b.number == prev.number + 1
            and re.sub(r"\d+$", "", b.name) == re.sub(r"\d+$", "", prev.name)
            and attrs(b) == attrs(prev)
        )
        if not joins:
            flush()
        run.append(b)
    flush()
    return out


def _branches(branches: Sequence[Branch], has) -> list[str]:
    impedance = has("r") and has("x")
    lines = [b for b in branches if not b.transformer]
    charging = has("charging") and any(b.charging for b in lines)
    tap = has("tap") and any(b.tap != 1 for b in lines)
    leakage = has("leakage") and any(b.leakage for b in lines)
    out = []
    if lines:
        cols = "name, from, to" + (", r [ohm], x [ohm]" if impedance else "") + (", charging [Mvar]" if charging else "") + (", leakage [MW]" if leakage else "") + (", tap" if tap else "")

        def row(b: Branch) -> tuple[str, ...]:
            cells = [b.name, b.from_bus, b.to_bus]
            cells += [num(b.r), num(b.x)] if impedance else []
            cells += [num(b.charging)] if charging else []
            cells += [num(b.leakage)] if leakage else []
            cells += [num(b.tap)] if tap else []
            return tuple(cells)

        out.append(f"  line table ({cols}) {{")
        notes = [b.note for b in lines]
        out.extend(f"  {r}{f'   # {note}' if note else ''}" for r, note in zip(_aligned([row(b) for b in lines]), notes))
        out.append("  }")
    for b in branches:
        if b.transformer:
            attrs = [f"r = {num(b.r)} ohm", f"x = {num(b.x)} ohm"] if impedance else []
            if b.tap != 1 and has("tap"):
                attrs.append(f"tap = {num(b.tap)}")
            if b.charging and has("charging"):
                attrs.append(f"charging = {num(b.charging)} Mvar")
            if b.leakage and has("leakage"):
                attrs.append(f"leakage = {num(b.leakage)} MW")
            body = f" {{ {'; '.join(attrs)} }}" if attrs else ""
            out.append(f"  transformer {b.name} from {b.from_bus} to {b.to_bus}{body}{f'   # {b.note}' if b.note else ''}")
    return out


def dropped(feeder: Feeder, formulation: str) -> list[str]:
    """What the import changed (``feeder.approximated``) and what of ``feeder`` the formulation
    cannot carry: one line per element class, with how many and their size."""
    params = formulation_params(formulation)
    out = list(feeder.approximated)
    if params is None:
        return out
    shunts = [b for b in feeder.buses if b.gs or b.bs]
    if shunts and not {"gs", "bs"} <= params:
        size = [f"{num(round(sum(getattr(b, k) for b in shunts), 3))} {u}" for k, u in (("bs", "Mvar"), ("gs", "MW")) if any(getattr(b, k) for b in shunts)]
        out.append(f"{len(shunts)} shunts, {' and '.join(size)} at 1 p.u., dropped ({formulation} has no bus shunts)")
    charged = [b for b in feeder.branches if b.charging]
    if charged and "charging" not in params:
        out.append(f"{len(charged)} branches with line charging, {num(round(sum(b.charging for b in charged), 3))} Mvar, dropped ({formulation} has no line charging)")
    leaking = [b for b in feeder.branches if b.leakage]
    if leaking and "leakage" not in params:
        out.append(f"{len(leaking)} branches with shunt conductance (magnetising losses), {num(round(sum(b.leakage for b in leaking), 4))} MW, dropped ({formulation} has no branch leakage)")
    tapped = [b for b in feeder.branches if b.tap != 1]
    if tapped and "tap" not in params:
        worst = max(abs(b.tap - 1) for b in tapped)
        out.append(f"{len(tapped)} off-nominal taps, up to {num(round(100 * worst, 2))} %, dropped ({formulation} has no taps)")
    return out


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + " ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def import_source(source: str, name: str | None = None, formulation: str = "lindistflow", sgen: str = "pv", seed: int = 0) -> Imported:
    """Import ``source``: a MATPOWER ``.m`` file, a pandapower ``.json`` file, or
    ``pandapower:NAME(arg=value, ...)`` (``sgen`` and ``seed`` apply to pandapower)."""
    from pathlib import Path

    if source.startswith("pandapower:"):
        from gridlang.io.pandapower_net import import_pandapower

        return import_pandapower(source, name, formulation, sgen, seed)
    path = Path(source)
    if path.suffix.lower() == ".m":
        from gridlang.io.matpower import import_matpower

        return import_matpower(path, name, formulation)
    if path.suffix.lower() == ".json":
        from gridlang.io.pandapower_net import import_json

        return import_json(source, name, formulation, sgen)
    raise GridError(COMMAND_LINE, f"cannot import '{source}'", "give a MATPOWER case file (.m), a pandapower JSON file (.json) or pandapower:NAME, e.g. pandapower:case33bw")


__all__ = ["PV", "Branch", "Bus", "Feeder", "Generator", "Imported", "Load", "Supply", "import_source", "num", "write_grid"]
