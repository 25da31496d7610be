"""Terminal measurements, checked at the edge before the agents schedule.

Two layers: the terminals (meters of loads, PV, ...) send measured series to
their agent's edge node; the edge checks them against the planned values of
the case, fills what is missing or implausible, and reports its schedule to
the cloud together with a flag per value.  A measurement file is a CSV with
one row per step and a column ``<asset>.<parameter> [unit]`` per terminal,
e.g. ``pv18.availability`` or ``ld2.scale`` or ``mg1_ld.p [kW]``; a measured
series replaces that parameter of that asset (the others still apply).

A column's numbers are converted by its unit (``[kWh]`` per step for a power
is divided by the step length); a parameter with a dimension needs the unit.
A value is *missing* when its cell is empty (or ``nan``; an empty line is a
step with nothing measured), and
*implausible* when it is outside the parameter's declared range (e.g.
``availability in [0, 1]``), negative while the planned values are not, or more
than ``factor`` times the largest planned magnitude.  Either is replaced by
the last good measurement before it, or by the planned value if there is
none.  Flags: 0 measured, 1 missing (filled), 2 implausible (filled).  Text
that is not a number, an empty file, a file without rows, a column naming an
unknown asset or parameter: a GridError at ``file:line:col``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from gridlang.compiler import ir
from gridlang.compiler.quantities import DataEvaluator, Quantity
from gridlang.compiler.units import DIMENSIONLESS, UnitError, describe, example
from gridlang.errors import SOURCES, GridError, Span, did_you_mean

MEASURED, MISSING, IMPLAUSIBLE = 0, 1, 2
_HEADER = re.compile(r"^\s*(?P<asset>[A-Za-z_][A-Za-z0-9_]*)\.(?P<param>[A-Za-z_][A-Za-z0-9_]*)\s*(\[(?P<unit>[^\]]+)\])?\s*$")
_TIME_COLUMNS = ("time", "step", "hour", "timestamp")
_FORMAT = "a header row of '<asset>.<parameter> [unit]' columns (e.g. hour,pv18.availability,ld2.p [kW]), then one row per step"


@dataclass(frozen=True, slots=True, eq=False)
class Checked:
    """The case with the checked measurements in place, and what the edge did."""

    case: ir.CaseIR
    flags: xr.DataArray  # (terminal, time): MEASURED / MISSING / IMPLAUSIBLE
    notes: tuple[str, ...]  # per agent: how many values it filled; unit conversions


@dataclass(frozen=True, slots=True)
class _Table:
    """The file's cells as text, each row with its line and the column where each cell starts."""

    header: list[str]
    header_line: int
    header_cols: list[int]
    rows: list[list[str]]
    lines: list[int]
    cols: list[list[int]]


def _read(path: Path, text: str) -> _Table:
    """Split the CSV text into cells, keeping positions; a malformed file is a GridError."""
    file = str(path)
    records: list[tuple[int, list[str], list[int]]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():  # a step with nothing measured (a row of empty cells), unless at the end
            records.append((number, [], []))
            continue
        try:
            cells = next(csv.reader([line]))
        except csv.Error as exc:
            raise GridError(Span(file, number, 1), f"cannot read this line as CSV: {exc}", _FORMAT) from None
        starts, at = [], 0
        for cell in cells:  # where each cell starts, for messages (exact without quotes)
            found = line.find(cell, at) if cell else at
            starts.append((found if found >= 0 else at) + 1)
            at = (found if found >= 0 else at) + len(cell) + 1
        records.append((number, cells, starts))
    while records and not records[-1][1]:
        records.pop()
    while records and not records[0][1]:
        records.pop(0)
    if not records:
        raise GridError(Span(file, 1, 1), "the measurement file is empty", f"give {_FORMAT}")
    (header_line, header, header_cols), data = records[0], records[1:]
    data = [(n, c, s) if c else (n, [""] * len(header), [1] * len(header)) for n, c, s in data]
    for number, cells, starts in data:
        if len(cells) != len(header):  # at the first extra cell, or where the missing ones would start
            where = starts[len(header)] if len(cells) > len(header) else starts[-1] + len(cells[-1]) if cells else 1
            raise GridError(Span(file, number, where), f"this row has {len(cells)} cells but the header has {len(header)} columns",
                            "give every row one cell per column (an empty cell is a missing measurement)")
    return _Table(header, header_line, header_cols, [c for _, c, _ in data], [n for n, _, _ in data], [s for _, _, s in data])


def _numbers(table: _Table, k: int, file: str) -> np.ndarray:
    """Column ``k`` as floats: an empty cell (or nan) is missing; any other text is an error."""
    out = np.full(len(table.rows), np.nan)
    for j, row in enumerate(table.rows):
        cell = row[k].strip()
        if not cell:
            continue
        try:
            out[j] = float(cell)
        except ValueError:
            raise GridError(Span(file, table.lines[j], table.cols[j][k], max(len(row[k]), 1)), f"'{cell}' is not a number",
                            f"write a number in the unit of column '{table.header[k].strip()}', or leave the cell empty for a missing measurement") from None
    return out


def check(case: ir.CaseIR, path: str | Path, factor: float = 3.0) -> Checked:
    """Read, check and fill the measurements of ``path`` (see the module doc).

    A column's values are converted by its unit to the parameter's: ``[kW]`` for
    a parameter in MW is scaled, and an energy per step (``[kWh]``) for a power
    parameter is divided by the step length ``dt``.  A column of a parameter
    with a unit must say its unit; a dimensionless one (a share, a scale) may not."""
    path = Path(path)
    file = str(path)
    if not path.is_file():
        raise GridError(Span(file, 1, 1), f"no such measurement file: {path}", f"give a CSV file: {_FORMAT}")
    text = path.read_bytes().decode("utf-8", errors="replace").removeprefix("\ufeff")
    SOURCES[file] = text  # so errors can show the line
    table = _read(path, text)
    steps, dt = case.system.steps, case.system.dt
    if not table.rows:
        raise GridError(Span(file, table.header_line, 1, max(len(",".join(table.header)), 1)), "the measurement file has a header but no rows of measurements",
                        f"give one row per step ({steps} rows) below the header")
    if len(table.rows) != steps:
        line = table.lines[steps] if len(table.rows) > steps else table.lines[-1]  # the first extra row, or the last one
        raise GridError(Span(file, line, 1), f"{len(table.rows)} rows of measurements for a horizon of {steps} steps", "give one row per step")
    groups = {name: (k, i) for k, g in enumerate(case.groups) for i, name in enumerate(g.names)}
    new_groups = list(case.groups)
    flags, names, filled, notes = [], [], {}, []
    for col, header in enumerate(table.header):
        if header.strip().lower() in _TIME_COLUMNS:
            continue
        m = _HEADER.match(header)
        span = Span(file, table.header_line, table.header_cols[col], max(len(header), 1))
        if m is None:
            raise GridError(span, f"column '{header}' is not '<asset>.<parameter> [unit]'", "e.g. pv18.availability or ld2.p [kW]")
        asset, param, unit = m["asset"], m["param"], m["unit"]
        if asset not in groups:
            shown = ", ".join(list(groups)[:8]) + (", ..." if len(groups) > 8 else "")
            raise GridError(span, f"'{asset}' is not an asset of the case", did_you_mean(asset, groups) or f"name an asset of the case: {shown}")
        k, i = groups[asset]
        group = new_groups[k]
        if param not in group.params:
            raise GridError(span, f"'{param}' is not a parameter of {group.kind.name} '{asset}'", did_you_mean(param, group.params) or f"{group.kind.name} has: {', '.join(group.params)}")
        if f"{asset}.{param}" in names:
            raise GridError(span, f"'{asset}.{param}' is measured twice", "give one column per parameter")
        scale, note = _conversion(case, group.kind.params[param], header.strip(), unit, span, dt)
        if note:
            notes.append(note)
        measured = _numbers(table, col, file) * scale
        planned = np.broadcast_to(group.params[param][i], (steps,)).astype(float)
        values, flag = _fill(measured, planned, factor, _outside(case, group, i, group.kind.params[param], measured))
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
    notes += [f"edge of '{a}': filled {m} missing and {b} implausible measurement(s)" for a, (m, b) in filled.items() if m or b]
    return Checked(replace(case, groups=tuple(new_groups)), array, tuple(notes))


def _conversion(case: ir.CaseIR, spec: ir.ParamSpec, header: str, unit: str | None, span: Span, dt: float) -> tuple[float, str | None]:
    """The factor from a column's numbers to the parameter's internal units, and a note if
    the column is an energy per step read as a power."""
    if spec.dim is None:
        raise GridError(span, f"'{spec.name}' is a flag (true or false) and cannot be measured", "measure a parameter with a number")
    if unit is None:
        if spec.dim != DIMENSIONLESS:
            raise GridError(span, f"column '{header}' has no unit, but '{spec.name}' is {describe(spec.dim)}",
                            f"write the unit in the header, e.g. '{header} [{_unit_example(spec.dim)}]'")
        return 1.0, None
    try:
        size, dim = case.system.base.factor(unit.strip(), strict=True)
    except UnitError as exc:
        raise GridError(span, str(exc), getattr(exc, "hint", None) or f"'{spec.name}' is {describe(spec.dim)}, e.g. [{_unit_example(spec.dim)}]") from None
    if dim == spec.dim:
        return size, None
    per_step = (dim[0], dim[1] - 1, dim[2], dim[3])
    if per_step == spec.dim:  # energy in each step for a power: its mean over the step
        return size / dt, f"column '{header}': {describe(dim)} per step of {dt:g} h, divided by the step length to give '{spec.name}' ({describe(spec.dim)})"
    raise GridError(span, f"column '{header}' is in {unit.strip()} ({describe(dim)}), which does not fit '{spec.name}' ({describe(spec.dim)})",
                    f"give '{spec.name}' in a unit of {describe(spec.dim)}, e.g. [{_unit_example(spec.dim)}]")


def _unit_example(dim) -> str:
    """The unit of the example value of a dimension: 'kW' for power."""
    m = re.fullmatch(r"[\d.]+ (\S+)", example(dim))
    return m.group(1) if m else "unit"


def _outside(case: ir.CaseIR, group: ir.Group, i: int, spec: ir.ParamSpec, measured: np.ndarray) -> np.ndarray:
    """Where a measurement lies outside its parameter's declared range (``availability in [0, 1]``)."""
    out = np.zeros(len(measured), dtype=bool)
    bound = spec.bound
    if bound is None:
        return out
    names = {k: Quantity(v[i], group.kind.params[k].dim or DIMENSIONLESS) for k, v in group.params.items()}
    evaluate = DataEvaluator(case.system.base, names, strict=False)  # the range is written in the kind
    with np.errstate(invalid="ignore"):
        for end, is_lower, is_open in ((bound.lower, True, bound.lower_open), (bound.upper, False, bound.upper_open)):
            if end is None:
                continue
            value = np.asarray(evaluate(end).value, dtype=float)
            if is_lower:
                out |= (measured <= value) if is_open else (measured < value)
            else:
                out |= (measured >= value) if is_open else (measured > value)
    return out


def _fill(measured: np.ndarray, planned: np.ndarray, factor: float, outside: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Flags, and the series with bad values replaced by the last good one (or the plan).
    ``outside`` marks values out of the parameter's declared range, implausible too."""
    flag = np.zeros(len(measured), dtype=np.int8)
    flag[np.isnan(measured)] = MISSING
    limit = factor * max(float(np.abs(planned).max()), 1e-12)
    bad = ~np.isnan(measured) & (((measured < 0) & (planned >= 0).all()) | (np.abs(measured) > limit))
    if outside is not None:
        bad |= ~np.isnan(measured) & outside
    flag[bad] = IMPLAUSIBLE
    good = flag == MEASURED
    # last good value before each step (forward fill), else the plan
    last = pd.Series(np.where(good, measured, np.nan)).ffill().to_numpy()
    values = np.where(good, measured, np.where(np.isnan(last), planned, last))
    return values, flag
