"""Terminal measurements, checked at the edge before the agents schedule.

Two layers: the terminals (meters of loads, PV, ...) send measured series to
their agent's edge node; the edge checks them against the planned values of
the case, fills what is missing or implausible, and reports its schedule to
the cloud together with a flag per value.  A measurement file is a CSV with
one row per step and a column ``<asset>.<parameter> [unit]`` per terminal,
e.g. ``pv18.availability`` or ``ld2.scale`` or ``mg1_ld.p [kW]``; a measured
series replaces that parameter of that asset (the others still apply).

A value is *missing* when its cell is empty or not a number, and
*implausible* when it is negative while the planned values are not, or more
than ``factor`` times the largest planned magnitude.  Either is replaced by
the last good measurement before it, or by the planned value if there is
none.  Flags: 0 measured, 1 missing (filled), 2 implausible (filled).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from gridlang.compiler import ir
from gridlang.compiler.units import UnitError
from gridlang.errors import SOURCES, GridError, Span

MEASURED, MISSING, IMPLAUSIBLE = 0, 1, 2
_HEADER = re.compile(r"^\s*(?P<asset>[A-Za-z_][A-Za-z0-9_]*)\.(?P<param>[A-Za-z_][A-Za-z0-9_]*)\s*(\[(?P<unit>[^\]]+)\])?\s*$")


@dataclass(frozen=True, slots=True, eq=False)
class Checked:
    """The case with the checked measurements in place, and what the edge did."""

    case: ir.CaseIR
    flags: xr.DataArray  # (terminal, time): MEASURED / MISSING / IMPLAUSIBLE
    notes: tuple[str, ...]  # per agent: how many values it filled


def check(case: ir.CaseIR, path: str | Path, factor: float = 3.0) -> Checked:
    """Read, check and fill the measurements of ``path`` (see the module doc)."""
    path = Path(path)
    where = Span(str(path), 1, 1)
    if not path.is_file():
        raise GridError(where, f"no such measurement file: {path}", "give a CSV with one row per step")
    SOURCES[str(path)] = path.read_text(encoding="utf-8", errors="replace")  # so errors can show the line
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    steps = case.system.steps
    if len(frame) != steps:
        raise GridError(Span(str(path), len(frame) + 1, 1), f"{len(frame)} rows of measurements for a horizon of {steps} steps", "give one row per step")
    groups = {name: (k, i) for k, g in enumerate(case.groups) for i, name in enumerate(g.names)}
    new_groups = list(case.groups)
    flags, names, filled = [], [], {}
    for col, header in enumerate(frame.columns, start=1):
        if header.strip().lower() in ("time", "step", "hour", "timestamp"):
            continue
        m = _HEADER.match(header)
        span = Span(str(path), 1, 1 + len(",".join(frame.columns[: col - 1])) + (col > 1))
        if m is None:
            raise GridError(span, f"column '{header}' is not '<asset>.<parameter> [unit]'", "e.g. pv18.availability or ld2.p [kW]")
        asset, param, unit = m["asset"], m["param"], m["unit"]
        if asset not in groups:
            raise GridError(span, f"'{asset}' is not an asset of the case", "name an asset declared in the case")
        k, i = groups[asset]
        group = new_groups[k]
        if param not in group.params:
            raise GridError(span, f"'{param}' is not a parameter of {group.kind.name} '{asset}'", f"{group.kind.name} has: {', '.join(group.params)}")
        factor_unit = 1.0
        if unit is not None:
            try:
                factor_unit = case.system.base.factor(unit.strip())[0]
            except UnitError as exc:
                raise GridError(span, str(exc)) from None
        measured = pd.to_numeric(frame[header].str.strip(), errors="coerce").to_numpy(dtype=float) * factor_unit
        planned = np.broadcast_to(group.params[param][i], (steps,)).astype(float)
        values, flag = _fill(measured, planned, factor)
        params = dict(group.params)
        wide = np.array(np.broadcast_to(params[param], (len(group.names), steps)), dtype=float)
        wide[i] = values
        params[param] = wide
        new_groups[k] = replace(group, params=params)
        flags.append(flag)
        names.append(f"{asset}.{param}")
        agent = case.owners.get(asset, asset)
        done = filled.setdefault(agent, [0, 0])
        done[0] += int((flag == MISSING).sum())
        done[1] += int((flag == IMPLAUSIBLE).sum())
    array = xr.DataArray(np.array(flags, dtype=np.int8).reshape(len(names), steps), coords={"terminal": names, ir.TIME: np.arange(steps)}, dims=("terminal", ir.TIME), attrs={"meaning": "0 measured, 1 missing (filled), 2 implausible (filled)"})
    notes = tuple(f"edge of '{a}': filled {m} missing and {b} implausible measurement(s)" for a, (m, b) in filled.items() if m or b)
    return Checked(replace(case, groups=tuple(new_groups)), array, notes)


def _fill(measured: np.ndarray, planned: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Flags, and the series with bad values replaced by the last good one (or the plan)."""
    flag = np.zeros(len(measured), dtype=np.int8)
    flag[np.isnan(measured)] = MISSING
    limit = factor * max(float(np.abs(planned).max()), 1e-12)
    bad = ~np.isnan(measured) & (((measured < 0) & (planned >= 0).all()) | (np.abs(measured) > limit))
    flag[bad] = IMPLAUSIBLE
    good = flag == MEASURED
    # last good value before each step (forward fill), else the plan
    last = pd.Series(np.where(good, measured, np.nan)).ffill().to_numpy()
    values = np.where(good, measured, np.where(np.isnan(last), planned, last))
    return values, flag
