"""Syntax tree to IR: ``resolve(module, ...) -> CaseIR``.

Binds every name (kinds, formulations, profiles, buses, lines, assets,
agents), converts every quantity to the system's per-unit base, checks
dimensions, expands bus ranges and tables, reads CSV files (which must stay
inside the case folder unless allowed), and checks the network shape a
formulation needs.  All mistakes are collected and raised together.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, shortest_path

from gridlang.compiler import ir, ranges
from gridlang.compiler.models import check_names, model_def
from gridlang.compiler.quantities import DataEvaluator, Quantity, expect
from gridlang.compiler.ranges import FAILED, plausible
from gridlang.compiler.units import (
    CURRENCY_CODES, DIMENSIONLESS, ENERGY, POWER, TIME, VOLTAGE, Base, UnitError, currency_code, currency_symbol, describe, example,
    parse_unit, unit_currencies,
)
from gridlang.errors import COMMAND_LINE, Collector, GridError, Span, did_you_mean
from gridlang.grammar import ast
from gridlang.grammar.parser import parse, parse_file


@cache
def stdlib() -> tuple[ast.Module, ...]:
    """The standard library of kinds and formulations, parsed once."""
    folder = resources.files("gridlang") / "stdlib_models"
    return tuple(parse(f.read_text(encoding="utf-8"), f"<stdlib>/{f.name}") for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.name.endswith(".grid"))


@dataclass
class _Scope:
    """What resolve has learnt so far; private to one resolve call."""

    root: Path
    allow_outside: bool
    errors: Collector = field(default_factory=Collector)
    defined: dict[str, Span] = field(default_factory=dict)  # every global name
    profiles: dict[str, Quantity] = field(default_factory=dict)
    base: Base = Base()
    steps: int = 1
    period: int = 0  # steps per typical day in a plan; 0: one period
    typical: dict[str, np.ndarray] = field(default_factory=dict)  # typical-day series by column
    plan_days: tuple = (("horizon",), np.ones(1), "")  # scenario labels, weights, how they were found
    notes: list[str] = field(default_factory=list)  # what resolve decided and says
    tables: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)  # CSV files read so far, by (naming file, name written)


def load_modules(main: ast.Module, root: Path, allow_outside: bool) -> list[ast.Module]:
    """The main module followed by everything it includes, each once."""
    main_path = None if main.path.startswith("<") else Path(main.path).resolve()
    modules, seen, errors = [], {main_path}, Collector()

    def visit(module: ast.Module) -> None:
        modules.append(module)
        for stmt in module.statements:
            if isinstance(stmt, ast.Include):
                try:
                    path = case_path(stmt.path, root, allow_outside)
                    if path.resolve() == main_path:
                        raise GridError(stmt.path.span, "a case cannot include itself", "include the files it is made of, not the case")
                    if path.resolve() not in seen:
                        seen.add(path.resolve())
                        visit(parse_file(path))
                except GridError as exc:
                    errors.extend(exc)

    visit(main)
    errors.raise_if_any()
    return modules


def case_path(s: ast.Str, root: Path, allow_outside: bool) -> Path:
    """A file named in the case, relative to the file that names it, kept inside the case folder."""
    here = Path(s.span.file).parent if not s.span.file.startswith("<") else root
    path = (here / s.value).resolve()
    if not allow_outside and not path.is_relative_to(root.resolve()):
        raise GridError(s.span, f"'{s.value}' is outside the case folder {root}", "move the file into the case folder, or pass --allow-outside")
    if not path.is_file():
        raise GridError(s.span, f"file '{s.value}' not found (looked for {path})", "check the name; paths are relative to the file that names them")
    return path


def resolve(main: ast.Module, root: Path, allow_outside: bool = False, formulation: str | None = None) -> ir.CaseIR:
    """Resolve a parsed case (and its includes) against the standard library.

    ``formulation`` (or a study's ``formulation = ...``) puts every network under
    that formulation instead of the one it names, e.g. distflow_soc for lindistflow."""
    modules = load_modules(main, root, allow_outside)
    scope = _Scope(root, allow_outside)
    statements = [s for m in modules for s in m.statements]
    by_type: dict[type, list] = {}
    for s in statements:
        by_type.setdefault(type(s), []).append(s)

    models = _models(by_type, scope)
    system = _system(by_type.get(ast.System, []), main, scope, statements)
    scope.errors.raise_if_any()  # units and time below need a sound system

    study = _study(by_type.get(ast.Study, []), scope)
    solver, options, chosen = study.solver, study.options, study.formulation
    if study.plan is not None:
        system = _plan_time(study.plan, system, scope)
        scope.errors.raise_if_any()  # every series depends on the plan's time axis
    for p in by_type.get(ast.Profile, []):
        _profile(p, scope)
    if formulation is not None:
        chosen = ast.Ident(formulation, COMMAND_LINE)
    networks = [_network(n, models, scope, chosen) for n in by_type.get(ast.Network, [])]
    bus_names = {b: n.name for n in networks if n for b in n.buses}
    tables = by_type.get(ast.Table, [])
    # a network that failed (its error is reported) leaves its buses unknown: no error for each asset there
    groups = _groups(by_type.get(ast.Asset, []), [t for t in tables if t.set.name != FAILURE], models, bus_names, scope, all(networks))
    failures = [t for t in tables if t.set.name == FAILURE]
    plan = _plan(study.plan, failures, [n for n in networks if n], scope) if study.plan is not None else None
    if failures and study.plan is None:
        scope.errors.add(failures[0].set.span, "failure data is used by a plan study", "add e.g. 'study p: plan { eens_max = 5 MWh }', or remove the table")
    owners = _owners(by_type.get(ast.Agent, []), scope)
    owners, network_owner, notes = _default_owners(owners, [n for n in networks if n], groups)
    valid_networks = [n for n in networks if n]
    markets = tuple(_market(m, {*owners.values()}, scope, _distances(valid_networks, groups, owners)) for m in by_type.get(ast.Market, []))
    games = tuple(_game(g, {*owners.values()}, scope) for g in by_type.get(ast.Game, []))
    sense = _objective(by_type.get(ast.Objective, []), scope)
    if not networks and not scope.errors.errors:
        scope.errors.add(Span(main.path, 1, 1), "the case has no network", "add e.g. 'network grid uses copper_plate { bus b1 }'")
    scope.errors.raise_if_any()
    return ir.CaseIR(main.path, system, tuple(n for n in networks if n), tuple(groups), owners, sense, solver, options, markets, network_owner, (*scope.notes, *notes), games, plan, study.spans)


# ---------------------------------------------------------------- definitions


def _define(name: ast.Ident, scope: _Scope, what: str) -> bool:
    if name.name in scope.defined:
        first = scope.defined[name.name]
        scope.errors.add(name.span, f"'{name.name}' is already defined (at {first})", f"give this {what} another name")
        return False
    scope.defined[name.name] = name.span
    return True


def _models(by_type, scope: _Scope) -> dict[str, ir.ModelDef]:
    """User kinds and formulations, then the standard library for names not taken."""
    user: dict[str, ast.KindDef | ast.FormulationDef] = {}
    for node in [*by_type.get(ast.KindDef, []), *by_type.get(ast.FormulationDef, [])]:
        if node.name.name in user:
            scope.errors.add(node.name.span, f"'{node.name.name}' is defined twice (first at {user[node.name.name].name.span})", "rename one of them")
        user[node.name.name] = node
    nodes = dict(user)
    for module in stdlib():
        for s in module.statements:
            if isinstance(s, ast.KindDef | ast.FormulationDef):
                nodes.setdefault(s.name.name, s)
    models = {name: model_def(node, scope.errors) for name, node in nodes.items()}
    channels = {i.channel.name for m in models.values() for i in m.injects}
    for m in models.values():
        check_names(m, channels, scope.errors)
    return models


def _system(systems: Sequence[ast.System], main: ast.Module, scope: _Scope, statements: Sequence = ()) -> ir.SystemIR:
    if not systems:
        scope.errors.add(Span(main.path, 1, 1), "the case has no system statement", "add e.g. 'system s { base_power = 10 MVA; base_voltage = 12.66 kV; horizon = 24 h; step = 1 h }'")
        return ir.SystemIR("?", Base(), 1, 1.0, Span(main.path, 1, 1))
    for extra in systems[1:]:
        scope.errors.add(extra.span, "a case has one system statement", f"merge it with the one at {systems[0].span}")
    node = systems[0]
    wanted = {"base_power": POWER, "base_voltage": VOLTAGE, "horizon": TIME, "step": TIME}
    si = {"base_power": 1e6, "base_voltage": 1e3, "horizon": 3600.0, "step": 3600.0}
    currency = _currency(node, statements, scope)
    rates: dict[str, float] = {}
    for attr in node.attrs:
        key = attr.name.name
        if key == "exchange":
            _exchange(attr, currency, rates, scope)
            continue
        if key == "currency":
            continue
        if key not in wanted:
            known = [*wanted, "currency", "exchange"]
            scope.errors.add(attr.name.span, f"unknown system attribute '{key}'", did_you_mean(key, known) or f"known: {', '.join(known)}")
            continue
        value = _si_number(attr, wanted[key], scope)
        if value is not None:
            si[key] = value
    steps_float = si["horizon"] / si["step"]
    if not np.isfinite(steps_float) or steps_float > 1e6:
        scope.errors.add(node.span, f"the horizon has too many steps ({steps_float:g})", "use a longer step or a shorter horizon")
        steps_float = 1.0
    steps = int(round(steps_float))
    if abs(steps_float - steps) > 1e-9 or steps < 1:
        scope.errors.add(node.span, f"the horizon is not a whole number of steps ({steps_float:g})", "choose a step that divides the horizon")
        steps = max(steps, 1)
    scope.base = Base(si["base_power"], si["base_voltage"], currency, tuple(sorted(rates.items())))
    scope.steps = steps
    return ir.SystemIR(node.name.name, scope.base, steps, si["step"] / 3600.0, node.span)


def _currency(node: ast.System, statements: Sequence, scope: _Scope) -> str:
    """The case's one currency: as the system declares it (``currency = EUR``), else the
    currency the case's values are written in ($ if any is in $, else the first found), else $.
    Values in another currency need an exchange rate (:func:`_exchange`)."""
    for attr in node.attrs:
        if attr.name.name == "currency":
            text = attr.value.id if isinstance(attr.value, ast.Name) else attr.value.value if isinstance(attr.value, ast.Str) else None
            code = currency_code(text) if text is not None else None
            if code is None:
                where = attr.value.span if attr.value is not None else attr.span
                scope.errors.add(where, "unknown currency", f"currencies: {', '.join(CURRENCY_CODES)}, e.g. 'currency = EUR'")
                return "USD"
            return code
    found: list[str] = []
    for unit in dict.fromkeys(_case_units(statements)):  # each distinct unit text once
        try:
            codes = ["USD" if c == "$" else c for c, _ in unit_currencies(unit)]
        except UnitError:
            continue  # reported where the unit is read
        if "USD" in codes:
            return "USD"
        found.extend(codes)
    return found[0] if found else "USD"


def _case_units(node) -> Iterator[str]:
    """Every unit written in the case's data, in the order written (kinds and formulations excepted)."""
    match node:
        case ast.KindDef() | ast.FormulationDef() | Span() | ast.Ident() | str() | int() | float() | None:
            return  # definitions, and leaves that hold no unit
        case ast.Number(unit=unit) | ast.ListLit(unit=unit) | ast.Column(unit=unit):
            if unit is not None:
                yield unit
        case list() | tuple():
            for x in node:
                yield from _case_units(x)
        case _ if hasattr(node, "__dataclass_fields__"):
            for name in node.__dataclass_fields__:
                yield from _case_units(getattr(node, name))


def _known_buses(names) -> str:
    """A hint listing a few of the networks' buses."""
    shown = list(itertools.islice(names, 5))
    if not shown:
        return "declare the bus in a network: network n uses lindistflow { bus b1 { slack; v_set = 1.0 } ... }"
    return f"connect it to a bus of a network ({', '.join(shown)}{', ...' if len(names) > len(shown) else ''}) or add the bus to one"


def _exchange(attr: ast.Attr, currency: str, rates: dict[str, float], scope: _Scope) -> None:
    """``exchange = 1.08 $/EUR``: one EUR is worth 1.08 $, one side being the case's currency."""
    e = attr.value
    mine = currency_symbol(currency)
    hint = f"e.g. 'exchange = 1.08 {mine}/EUR': what one unit of the other currency is worth in {mine}, the case's currency"
    try:
        pair = unit_currencies(e.unit) if isinstance(e, ast.Number) and e.unit else ()
        rest = parse_unit(e.unit)[1] if pair else None
    except UnitError:
        pair, rest = (), None
    codes = {("USD" if c == "$" else c): k for c, k in pair}
    if len(codes) != 2 or sorted(codes.values()) != [-1, 1] or rest != DIMENSIONLESS:
        scope.errors.add(e.span if e is not None else attr.span, "an exchange rate is a number in one currency per another", hint)
        return
    if currency not in codes:
        scope.errors.add(e.span, f"an exchange rate is to the case's currency ({mine})", hint)
        return
    if not (np.isfinite(e.value) and e.value > 0):
        scope.errors.add(e.span, "an exchange rate is a positive number", hint)
        return
    other = next(c for c in codes if c != currency)
    if other in rates:
        scope.errors.add(attr.span, f"the exchange rate of {currency_symbol(other)} is given twice", "give one rate per currency")
    rates[other] = float(e.value) if codes[currency] == 1 else 1.0 / float(e.value)


def _si_number(attr: ast.Attr, dim, scope: _Scope) -> float | None:
    """A system attribute as a positive SI number (the base is not known yet)."""
    e = attr.value
    if not isinstance(e, ast.Number) or e.unit is None:
        scope.errors.add(attr.span, f"'{attr.name.name}' needs a number with a unit of {describe(dim)}")
        return None
    try:
        size, got = parse_unit(e.unit)
    except UnitError as exc:
        scope.errors.add(e.span, str(exc))
        return None
    if got != dim:
        scope.errors.add(e.span, f"unit mismatch: '{attr.name.name}' expects {describe(dim)} but got {describe(got)}")
        return None
    if not np.isfinite(e.value * size) or e.value <= 0:
        scope.errors.add(e.span, f"'{attr.name.name}' must be positive")
        return None
    return e.value * size


# ---------------------------------------------------------------- data values


def _evaluator(scope: _Scope, names: Mapping[str, Quantity] | None = None, model: bool = False) -> DataEvaluator:
    """Evaluates values of the case, or, with ``model``, defaults and ranges written in a kind
    or formulation (where '$' is the case's currency, whichever it is)."""
    return DataEvaluator(scope.base, scope.profiles if names is None else names, lambda c: _call(c, scope), strict=not model)


def _call(c: ast.Call, scope: _Scope) -> Quantity:
    """Functions of the case layer: csv(path, column = name) and, in a plan
    with typical days, typical(column): that column's typical days one after another."""
    if c.func.name == "typical":
        return _typical(c, scope)
    if c.func.name != "csv":
        raise GridError(c.func.span, f"unknown function '{c.func.name}' in case data", "data can be read with csv(\"file.csv\", column = \"name\") or, in a plan, typical(\"pv\")")
    kwargs = {k.name: v for k, v in c.kwargs}
    if len(c.args) != 1 or not isinstance(c.args[0], ast.Str) or set(kwargs) - {"column"}:
        raise GridError(c.span, "write csv(\"file.csv\", column = \"name\")")
    frame = _read_csv(c.args[0], scope)
    column = kwargs.get("column")
    if column is None:
        if frame.shape[1] != 1:
            raise GridError(c.span, f"'{c.args[0].value}' has {frame.shape[1]} columns; say which", f"csv(\"{c.args[0].value}\", column = \"{frame.columns[0]}\")")
        return _numeric(frame.iloc[:, 0], c.span)
    name = column.value if isinstance(column, ast.Str) else getattr(column, "id", None)
    if name not in frame.columns:
        raise GridError(column.span, f"column '{name}' not in '{c.args[0].value}'", did_you_mean(str(name), map(str, frame.columns)) or f"columns: {', '.join(map(str, frame.columns))}")
    return _numeric(frame[name], column.span)


def _typical(c: ast.Call, scope: _Scope) -> Quantity:
    if not scope.typical:
        raise GridError(c.span, "typical(...) reads the typical days of a plan study", "add 'study NAME: plan { scenarios = typical_days(k = 4, data = csv(\"year.csv\")) }'")
    if len(c.args) != 1 or c.kwargs or not isinstance(c.args[0], ast.Str | ast.Name):
        raise GridError(c.span, "write typical(\"column\")", f"columns: {', '.join(scope.typical)}")
    column = c.args[0].value if isinstance(c.args[0], ast.Str) else c.args[0].id
    if column not in scope.typical:
        raise GridError(c.args[0].span, f"the typical days have no column '{column}'", did_you_mean(column, scope.typical) or f"columns: {', '.join(scope.typical)}")
    return Quantity(scope.typical[column])


def _read_csv(path: ast.Str, scope: _Scope) -> pd.DataFrame:
    """The table in a CSV file of the case, read (and its path checked) once per resolve
    however many profiles use it."""
    key = (path.span.file, path.value)
    if key not in scope.tables:
        file = case_path(path, scope.root, scope.allow_outside)
        try:
            scope.tables[key] = pd.read_csv(file, skipinitialspace=True)
        except Exception as exc:  # pandas raises many kinds for malformed files
            raise GridError(path.span, f"cannot read '{path.value}' as CSV: {exc}") from None
    return scope.tables[key]


def _numeric(series: pd.Series, span: Span) -> Quantity:
    numbers = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    values = series.to_numpy(dtype=float) if numbers else pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(np.isnan(values))
    if bad.size:
        raise GridError(span, f"row {bad[0] + 2} of the column is not a number ({series.iloc[bad[0]]!r})", "fill every row with a number")
    return Quantity(values)


def _profile(p: ast.Profile, scope: _Scope) -> None:
    try:
        value = _series_ok(_evaluator(scope)(p.value), scope, p.value.span if hasattr(p.value, "span") else p.span, f"profile '{p.name.name}' has")
    except GridError as exc:
        scope.errors.extend(exc)
        return
    if _define(p.name, scope, "profile"):
        scope.profiles[p.name.name] = value


def _series_ok(q: Quantity, scope: _Scope, span: Span, what: str = "a series of") -> Quantity:
    """A series has one value per step; in a plan, one value per step of a day is that day's
    profile on every typical day."""
    if not q.is_series or np.shape(q.value) == (scope.steps,):
        return q
    if scope.period and np.shape(q.value) == (scope.period,):
        return Quantity(np.tile(q.value, scope.steps // scope.period), q.dim, q.per_unit)
    per_day = f" (or {scope.period}, one day)" if scope.period else ""
    raise GridError(span, f"{what} {np.size(q.value)} values but the horizon has {scope.steps} steps{per_day}", "give one value per step")


# ---------------------------------------------------------------- instances


@dataclass
class _Items:
    """Elements of one set (buses, lines, or one kind's assets) being collected."""

    names: list[str] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    values: list[dict[str, tuple[Quantity, Span]]] = field(default_factory=list)
    links: list[tuple[ast.Ident, ast.Ident]] = field(default_factory=list)  # lines: from, to; assets: (bus, bus)

    def add(self, name: ast.Ident, span: Span, values: dict, link=None) -> None:
        self.names.append(name.name)
        self.spans.append(span)
        self.values.append(values)
        if link is not None:
            self.links.append(link)


def _attr_values(attrs: Sequence[ast.Attr], specs: Mapping[str, ir.ParamSpec], owner: str, scope: _Scope) -> dict[str, tuple[Quantity, Span]]:
    out: dict[str, tuple[Quantity, Span]] = {}
    for a in attrs:
        key = a.name.name
        if key not in specs:
            scope.errors.add(a.name.span, f"unknown attribute '{key}' for {owner}", did_you_mean(key, specs) or f"{owner} takes: {', '.join(specs) or 'nothing'}")
            continue
        if key in out:
            scope.errors.add(a.name.span, f"'{key}' is given twice")
            continue
        try:
            value = Quantity(True) if a.value is None else _series_ok(_evaluator(scope)(a.value), scope, a.span)
            if a.value is None and specs[key].dim is not None:
                raise GridError(a.span, f"'{key}' needs a value", f"write '{key} = ...'")
            where = a.value.span if a.value is not None else a.span
            out[key] = (plausible(expect(value, specs[key].dim, where, f"'{key}'"), specs[key], where), where)
        except GridError as exc:
            scope.errors.extend(exc)
            out[key] = (FAILED, a.span)  # given, though wrong: not also reported missing
    return out


def _row_values(columns, cells, specs, owner: str, span: Span, scope: _Scope) -> dict[str, tuple[Quantity, Span]]:
    """One table row's values; ``columns`` are (column, unit factor, unit dim) triples."""
    out = {}
    for (col, factor, dim), cell in zip(columns, cells):
        key = col.name.name
        spec = specs[key]
        try:
            per_unit = col.unit in ("pu", "p.u.")
            if isinstance(cell, float):
                q = Quantity(cell * factor, dim, per_unit) if factor is not None else Quantity(cell)
            elif isinstance(cell, ast.Ident):
                if cell.name in scope.profiles:
                    q = scope.profiles[cell.name]
                elif cell.name in ("true", "false"):
                    q = Quantity(cell.name == "true")
                else:
                    raise GridError(cell.span, f"'{cell.name}' is not a profile or number", did_you_mean(cell.name, scope.profiles))
                if factor is not None:
                    q = Quantity(q.value * factor, dim, per_unit)
            else:
                raise GridError(cell.span, "a table cell here is a number or a profile name")
            out[key] = (plausible(q if q.dim == spec.dim else expect(q, spec.dim, span, f"'{key}' of {owner}"), spec, span), span)
        except GridError as exc:
            scope.errors.extend(exc)
            out[key] = (FAILED, span)
    return out


def _table(t: ast.Table, keys: Sequence[str], specs: Mapping[str, ir.ParamSpec], owner: str, scope: _Scope):
    """Yield (name, link idents, values, span) per row of a table (inline or CSV)."""
    cols = [c.name.name for c in t.columns]
    for i, c in enumerate(t.columns):
        if c.name.name in cols[:i]:
            scope.errors.add(c.name.span, f"column '{c.name.name}' is given twice", "give each column once")
            return
    for key in keys:
        if key not in cols:
            scope.errors.add(t.set.span, f"a {owner} table needs a '{key}' column", f"columns: ({', '.join(keys)}, ...)")
            return
    data_cols = [c for c in t.columns if c.name.name not in keys]
    for c in data_cols:
        if c.name.name not in specs:
            scope.errors.add(c.name.span, f"unknown column '{c.name.name}' for {owner}", did_you_mean(c.name.name, specs) or f"{owner} takes: {', '.join(specs)}")
            return
    columns = []
    for c in data_cols:
        try:
            factor, dim = scope.base.factor(c.unit, strict=True) if c.unit is not None else (None, None)
        except UnitError as exc:
            scope.errors.add(c.name.span, str(exc), getattr(exc, "hint", None))
            return
        columns.append((c, factor, dim))
    rows = t.rows
    if t.source is not None:
        rows = _csv_rows(t, scope)
    for cells, span in rows:
        if len(cells) != len(cols):
            scope.errors.add(span, f"this row has {len(cells)} cells but the table has {len(cols)} columns", f"columns: ({', '.join(cols)})")
            continue
        by_key = dict(zip(cols, cells))
        idents = [by_key[k] for k in keys]
        if not all(isinstance(i, ast.Ident) for i in idents):
            scope.errors.add(span, f"the {', '.join(keys)} cells must be names")
            continue
        values = _row_values(columns, [by_key[c.name.name] for c in data_cols], specs, owner, span, scope)
        yield idents, values, span


def _csv_rows(t: ast.Table, scope: _Scope):
    if not isinstance(t.source, ast.Call) or t.source.func.name != "csv" or len(t.source.args) != 1 or not isinstance(t.source.args[0], ast.Str):
        scope.errors.add(t.span, "a table is read with: from csv(\"file.csv\")")
        return ()
    path = t.source.args[0]
    try:
        frame = _read_csv(path, scope)
    except GridError as exc:
        scope.errors.extend(exc)
        return ()
    missing = [c.name.name for c in t.columns if c.name.name not in frame.columns]
    if missing:
        scope.errors.add(path.span, f"'{path.value}' lacks column(s) {', '.join(missing)}", f"its columns: {', '.join(map(str, frame.columns))}")
        return ()
    rows = []
    for i, record in enumerate(frame[[c.name.name for c in t.columns]].itertuples(index=False)):
        span = Span(path.span.file, path.span.line, path.span.col, path.span.width)
        cells = tuple(ast.Ident(str(v), span) if isinstance(v, str) else float(v) for v in record)
        rows.append((cells, span))
    return rows


def _assemble(specs: Mapping[str, ir.ParamSpec], items: _Items, owner: str, scope: _Scope) -> dict[str, np.ndarray]:
    """Parameter arrays (n, 1) or (n, T): given values, then defaults in declaration order."""
    n, out = len(items.names), {}
    for key, spec in specs.items():
        given = [v.get(key) for v in items.values]
        missing = [i for i, g in enumerate(given) if g is None]
        default = None
        if missing:
            if spec.default is None and spec.dim is not None:
                for i in missing:
                    scope.errors.add(items.spans[i], f"{owner} '{items.names[i]}' needs '{key}'", f"add '{key} = ...' ({describe(spec.dim)})")
                continue
            try:
                names = {**scope.profiles, **{k: Quantity(v, specs[k].dim or DIMENSIONLESS) for k, v in out.items()}}
                q = Quantity(False) if spec.default is None else _evaluator(scope, names, model=True)(spec.default)
                default = expect(q, spec.dim, spec.span, f"the default of '{key}'").value
            except GridError as exc:
                scope.errors.extend(exc)
                continue
        try:
            out[key] = _stack(given, default, n, scope.steps, spec.dim is None)
        except ValueError:
            scope.errors.add(spec.span, f"the default of '{key}' does not fit {n} elements over {scope.steps} steps", "a default is a number, a profile or another parameter")
    return out


def _check_ranges(specs: Mapping[str, ir.ParamSpec], items: _Items, params: Mapping[str, np.ndarray], owner: str, scope: _Scope) -> None:
    """Every element's values within its parameters' declared ranges (:func:`ranges.check`)."""
    if not items.names:
        return
    names = {**scope.profiles, **{k: Quantity(v, specs[k].dim or DIMENSIONLESS) for k, v in params.items() if k in specs}}
    ranges.check(specs, items.names, items.spans, items.values, params, owner, _evaluator(scope, names, model=True), scope.base, scope.errors)


def _stack(given, default, n: int, steps: int, flag: bool) -> np.ndarray:
    """Rows of given values over a default: (n, T) if anything varies in time, else (n, 1)."""
    d = None if default is None else np.asarray(default)
    if d is not None and d.ndim < 2:
        d = d.reshape(1, -1) if d.ndim == 1 else d.reshape(1, 1)  # a profile is (T,)
    rows = [i for i, g in enumerate(given) if g is not None]
    values = [given[i][0].value for i in rows]
    series = any(isinstance(v, np.ndarray) and v.ndim for v in values) or (d is not None and d.shape[1] > 1)
    out = np.zeros((n, steps if series else 1), dtype=bool if flag else float)
    if d is not None:
        out[:] = d
    if not series:
        out[rows, 0] = values
    else:
        for i, v in zip(rows, values):
            out[i] = v
    return out


def _expand(first: ast.Ident, last: ast.Ident | None, scope: _Scope) -> list[ast.Ident]:
    """``b2..b33`` -> b2, b3, ..., b33 (same prefix, increasing numbers)."""
    if last is None:
        return [first]
    a, b = re.fullmatch(r"(.*?)(\d+)", first.name), re.fullmatch(r"(.*?)(\d+)", last.name)
    if not a or not b or a.group(1) != b.group(1) or int(a.group(2)) > int(b.group(2)):
        scope.errors.add(first.span, f"'{first.name}..{last.name}' is not a range", "a range is like b2..b33: one prefix, increasing numbers")
        return [first]
    prefix = a.group(1)
    return [ast.Ident(f"{prefix}{i}", first.span) for i in range(int(a.group(2)), int(b.group(2)) + 1)]


def _network(node: ast.Network, models: Mapping[str, ir.ModelDef], scope: _Scope, chosen: ast.Ident | None = None) -> ir.NetworkIR | None:
    _define(node.name, scope, "network")
    name = chosen or node.formulation
    f = models.get(name.name)
    if f is None or not f.formulation:
        known = [m.name for m in models.values() if m.formulation]
        scope.errors.add(name.span, f"unknown formulation '{name.name}'", did_you_mean(name.name, known) or f"known: {', '.join(known)}")
        return None
    specs = {s: {k: p for k, p in f.params.items() if p.set == s} for s in (ir.BUS, ir.LINE)}
    items = {ir.BUS: _Items(), ir.LINE: _Items()}
    kept, dropped = _electrical_data_dropped(node, f, models)
    if dropped:
        scope.notes.append(f"network '{node.name.name}' under {f.name}: its {', '.join(dropped)} are ignored")
    for item in kept:
        # a transformer is a branch like a line: its impedance on the system base
        kind = ir.LINE if item.set.name == "transformer" else item.set.name
        if kind not in items:
            scope.errors.add(item.set.span, f"a network holds 'bus', 'line' and 'transformer' items, not '{kind}'", did_you_mean(kind, [*items, "transformer"]))
            continue
        owner = f"{kind} of {f.name}"
        if isinstance(item, ast.Table):
            keys = ("name", "from", "to") if kind == ir.LINE else ("name",)
            for idents, values, span in _table(item, keys, specs[kind], owner, scope):
                if _define(idents[0], scope, kind):
                    items[kind].add(idents[0], span, values, (idents[1], idents[2]) if kind == ir.LINE else None)
            continue
        if (kind == ir.LINE) != (item.link is not None):
            scope.errors.add(item.span, "a line goes 'from' one bus 'to' another" if kind == ir.LINE else "only lines have 'from' and 'to'", "line l1 from b1 to b2 { r = 0.1 ohm; x = 0.05 ohm }" if kind == ir.LINE else None)
            continue
        values = _attr_values(item.attrs, specs[kind], owner, scope)
        for name in _expand(item.first, item.last, scope):
            if _define(name, scope, kind):
                items[kind].add(name, item.span, values, item.link)
    buses, lines = items[ir.BUS], items[ir.LINE]
    position = {b: i for i, b in enumerate(buses.names)}
    ends = np.zeros((2, len(lines.names)), dtype=int)
    for j, link in enumerate(lines.links):
        for k, end in enumerate(link):
            if end.name not in position:
                scope.errors.add(end.span, f"bus '{end.name}' is not in network '{node.name.name}'", did_you_mean(end.name, position))
            else:
                ends[k, j] = position[end.name]
    radial = f.radial and not scope.errors.errors
    bus_params = _assemble(specs[ir.BUS], buses, f"bus of {f.name}", scope)
    if radial:
        slack = bus_params[SLACK][:, 0].astype(bool) if SLACK in bus_params and V_SET in f.params else None
        _check_radial(node, f.name, buses, lines, ends, slack, scope)
    line_params = _assemble(specs[ir.LINE], lines, f"line of {f.name}", scope)
    _check_ranges(specs[ir.BUS], buses, bus_params, "bus", scope)
    _check_ranges(specs[ir.LINE], lines, line_params, "line", scope)
    _check_slack(node, f, buses, bus_params, scope)
    params = {**bus_params, **line_params}
    if not buses.names:
        scope.errors.add(node.span, f"network '{node.name.name}' has no buses", "add e.g. 'bus b1 { slack }'")
    return ir.NetworkIR(node.name.name, f, tuple(buses.names), tuple(lines.names), ends[0], ends[1], params, node.span)


SLACK, V_SET = "slack", "v_set"


def _electrical_data_dropped(node: ast.Network, f: ir.ModelDef, models: Mapping[str, ir.ModelDef]) -> tuple[list, list[str]]:
    """The network's items, without the data of other formulations when ``f`` takes no
    electrical data (no line parameter, as copper_plate): impedances, voltage limits and
    the like are then ignored, so any network can be solved as a copper plate; and the
    names of what was ignored.  Under any other formulation the items are kept as written
    (an unknown attribute stays an error)."""
    if any(p.set == ir.LINE for p in f.params.values()):
        return list(node.items), []
    others = {k for m in models.values() if m.formulation for k in m.params} - set(f.params)
    out, dropped = [], {}
    for item in node.items:
        if isinstance(item, ast.Table):
            dropped.update(dict.fromkeys(c.name.name for c in item.columns if c.name.name in others))
            keep = [i for i, c in enumerate(item.columns) if c.name.name not in others]
            if len(keep) < len(item.columns):
                item = replace(item, columns=tuple(item.columns[i] for i in keep),
                               rows=tuple((tuple(cells[i] for i in keep if i < len(cells)), span) if len(cells) == len(item.columns) else (cells, span) for cells, span in item.rows))
        elif getattr(item, "attrs", None):
            dropped.update(dict.fromkeys(a.name.name for a in item.attrs if a.name.name in others))
            item = replace(item, attrs=tuple(a for a in item.attrs if a.name.name not in others))
        out.append(item)
    return out, list(dropped)


def _check_slack(node: ast.Network, f: ir.ModelDef, buses: _Items, params: Mapping[str, np.ndarray], scope: _Scope) -> None:
    """A formulation with voltages (a ``slack`` flag and a ``v_set`` per bus) needs a slack
    bus, whose voltage is set to ``v_set``; elsewhere ``v_set`` would be ignored, so it is an error."""
    if SLACK not in params or V_SET not in f.params or not buses.names:
        return
    slack = params[SLACK][:, 0]
    if not slack.any():
        first = buses.names[0]
        scope.errors.add(node.name.span, f"network '{node.name.name}' has no slack bus: under {f.name} its voltages would float",
                         f"mark the bus fed by the upstream grid as the slack, e.g. 'bus {first} {{ slack; v_set = 1.0 }}'")
    ignored: dict[Span, list[str]] = {}  # a range b2..b9 { v_set = ... } is one mistake
    for i in np.flatnonzero(~slack):
        given = buses.values[i].get(V_SET)
        if given is not None and given[0] is not FAILED:
            ignored.setdefault(given[1], []).append(buses.names[i])
    for span, names in ignored.items():
        name = names[0]
        which = f"bus '{name}'" if len(names) == 1 else f"buses '{name}'..'{names[-1]}'"
        scope.errors.add(span, f"'v_set' of {which} would be ignored: only a slack bus has its voltage set",
                         f"make '{name}' a slack bus ('bus {name} {{ slack; v_set = ... }}'), or remove 'v_set'")


def _check_radial(node: ast.Network, formulation: str, buses: _Items, lines: _Items, ends: np.ndarray, slack: np.ndarray | None, scope: _Scope) -> None:
    """A radial formulation needs a forest: no loop, and every tree fed by a slack bus
    (one substation per tree; without slack flags, one connected tree).

    With ``k`` trees a forest has ``n - k`` lines for ``n`` buses."""
    n, m = len(buses.names), len(lines.names)
    graph = coo_matrix((np.ones(m), (ends[0], ends[1])), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    if m != n - count:
        scope.errors.add(node.name.span, f"network '{node.name.name}' is not radial: {m} lines for {n} buses in {count} part{'s' if count > 1 else ''} (a radial network has {n - count})",
                         f"{formulation} is a radial formulation; open a line of each loop, or use --formulation copper_plate")
        return
    if count == 1:
        return
    fed = np.zeros(count, dtype=bool) if slack is None else np.bincount(labels[slack], minlength=count) > 0
    if slack is None:
        fed[labels[0]] = True  # a formulation without slack buses: the first bus's tree is the network
    if not fed.all():
        island = buses.names[int(np.flatnonzero(~fed[labels])[0])]
        where = "from the first bus" if slack is None else "from any slack bus"
        scope.errors.add(node.name.span, f"network '{node.name.name}' is not connected: bus '{island}' cannot be reached {where}",
                         f"{formulation} needs every bus fed: add the missing line" + ("" if slack is None else ", or mark the bus of another substation as slack ('bus ... { slack; v_set = 1.0 }')"))


def _groups(assets, tables, models, bus_names: Mapping[str, str], scope: _Scope, networks_ok: bool = True) -> list[ir.Group]:
    collected: dict[str, _Items] = {}
    order: list[str] = []

    def kind_of(ident: ast.Ident) -> ir.ModelDef | None:
        m = models.get(ident.name)
        if m is None or m.formulation:
            kinds = [k.name for k in models.values() if not k.formulation]
            scope.errors.add(ident.span, f"unknown kind '{ident.name}'", did_you_mean(ident.name, kinds) or f"known kinds: {', '.join(sorted(kinds))}")
            return None
        if ident.name not in collected:
            collected[ident.name] = _Items()
            order.append(ident.name)
        return m

    def at(bus: ast.Ident) -> bool:
        if bus.name not in bus_names:
            if networks_ok:
                scope.errors.add(bus.span, f"bus '{bus.name}' is not in any network", did_you_mean(bus.name, bus_names) or _known_buses(bus_names))
            return False
        return True

    for a in assets:
        m = kind_of(a.kind)
        if m is not None:
            values = _attr_values(a.attrs, m.params, f"{m.name}", scope)
            if at(a.bus) and _define(a.name, scope, m.name):
                collected[m.name].add(a.name, a.span, values, (a.bus, a.bus))
    for t in tables:
        if t.set.name in (ir.BUS, ir.LINE):
            scope.errors.add(t.set.span, f"{t.set.name} tables belong inside a network block")
            continue
        m = kind_of(t.set)
        if m is None:
            continue
        for idents, values, span in _table(t, ("name", "at"), m.params, m.name, scope):
            if at(idents[1]) and _define(idents[0], scope, m.name):
                collected[m.name].add(idents[0], span, values, (idents[1], idents[1]))
    groups = []
    for name in order:
        items, m = collected[name], models[name]
        params = _assemble(m.params, items, m.name, scope)
        _check_ranges(m.params, items, params, m.name, scope)
        groups.append(ir.Group(m, tuple(items.names), tuple(b.name for b, _ in items.links), params, tuple(items.spans)))
    return groups


def _owners(agents: Sequence[ast.Agent], scope: _Scope) -> dict[str, str]:
    owners: dict[str, str] = {}
    for a in agents:
        _define(a.name, scope, "agent")
        if not a.owns:
            scope.errors.add(a.span, f"agent '{a.name.name}' owns nothing", f"write 'agent {a.name.name} owns ...' with its assets, or leave it out")
        for item in a.owns:
            if item.name not in scope.defined or item.name == a.name.name:
                scope.errors.add(item.span, f"agent '{a.name.name}' owns '{item.name}', which is not defined", did_you_mean(item.name, scope.defined))
            elif item.name in owners:
                scope.errors.add(item.span, f"'{item.name}' is owned twice: by '{owners[item.name]}' and by '{a.name.name}'", "every item has one owner")
            else:
                owners[item.name] = a.name.name
    return owners


def _default_owners(owners: dict[str, str], networks: Sequence[ir.NetworkIR], groups: Sequence[ir.Group]) -> tuple[dict[str, str], str | None, tuple[str, ...]]:
    """Every asset and network gets an agent: unowned ones belong to the network owner.

    The owner of the first network is its agent, or, if no agent owns it, an
    agent named after the network.  Without any agent there is one owner and
    nothing to say."""
    if not owners or not networks:
        return owners, None, ()
    net = networks[0].name
    network_owner = owners.get(net, net)
    items = [net, *(n.name for n in networks[1:]), *(name for g in groups for name in g.names)]
    unowned = [name for name in items if name not in owners]
    notes = []
    if unowned:
        shown = ", ".join(unowned[:5]) + (f" and {len(unowned) - 5} more" if len(unowned) > 5 else "")
        notes.append(f"{len(unowned)} item(s) without an agent belong to the network owner '{network_owner}': {shown}")
    return {**owners, **{name: network_owner for name in unowned}}, network_owner, tuple(notes)


def _distances(networks: Sequence[ir.NetworkIR], groups: Sequence[ir.Group], owners: Mapping[str, str]):
    """``distance(a, b)``: impedance |z| of the path between two agents' points of connection
    (the bus of each one's first asset) in the first network, or None without impedances."""
    if not networks or not {"r", "x"} <= set(networks[0].params):
        return None
    net = networks[0]
    z = np.hypot(net.params["r"][:, 0], net.params["x"][:, 0])
    n = len(net.buses)
    graph = coo_matrix((np.maximum(z, 1e-12), (net.line_from, net.line_to)), shape=(n, n))
    position = {b: i for i, b in enumerate(net.buses)}
    bus_of = {agent: position.get(bus) for agent, bus in ir.connection_buses(groups, owners).items()}
    table = shortest_path(graph, directed=False)

    def distance(a: str, b: str) -> float:
        i, j = bus_of.get(a), bus_of.get(b)
        return float(table[i, j]) if i is not None and j is not None else np.inf

    return distance


def _market(node, agents: set[str], scope: _Scope, distance=None) -> ir.MarketIR | None:
    """``market NAME among A, B, ... { fee = ...; fee_per_ohm = ...; limit = ...; payments = nash(...) }``.

    The fee of a sale from i to j is ``fee + fee_per_ohm * |z(i, j)|``, with
    ``|z|`` the impedance of the network path between their points of connection;
    a member's trade with an agent outside the market (the network owner as fee
    collector) has the fee ``fee + fee_per_ohm * |z(i, owner)|`` (``outside_fee``)."""
    _define(node.name, scope, "market")
    members: list[str] = []
    for a in node.members:
        if a.name not in agents:
            scope.errors.add(a.span, f"'{a.name}' is not an agent", did_you_mean(a.name, agents) or "declare it with 'agent NAME owns ...'")
        elif a.name in members:
            scope.errors.add(a.span, f"'{a.name}' is named twice in market '{node.name.name}'")
        else:
            members.append(a.name)
    if len(node.members) < 2:
        scope.errors.add(node.name.span, f"market '{node.name.name}' has a single agent", "a market is among two or more agents")
    n = len(members)
    fee, per_ohm, limit, powers = 0.0, 0.0, np.inf, np.full(n, 1.0 / max(n, 1))
    rule, method = "fixed", "closed_form"
    for a in node.attrs:
        key = a.name.name
        try:
            match key:
                case "fee":
                    fee = float(expect(_evaluator(scope)(a.value), parse_unit("$/MWh")[1], a.value.span, "'fee'").value)
                    if fee < 0:
                        raise GridError(a.value.span, "a network fee cannot be negative")
                case "fee_per_ohm":
                    value = float(expect(_evaluator(scope)(a.value), parse_unit("$/MWh/ohm")[1], a.value.span, "'fee_per_ohm'").value)
                    if value < 0:
                        raise GridError(a.value.span, "a network fee cannot be negative")
                    if distance is None:
                        raise GridError(a.name.span, "'fee_per_ohm' needs a network with line impedances", "use a formulation with r and x, or a flat 'fee'")
                    per_ohm = value
                case "limit":
                    limit = float(expect(_evaluator(scope)(a.value), POWER, a.value.span, "'limit'").value)
                case "payments":
                    powers, rule, method = _payments(a.value, n, scope)
                case _:
                    scope.errors.add(a.name.span, f"unknown market setting '{key}'", did_you_mean(key, ["fee", "fee_per_ohm", "limit", "payments"]) or "settings: fee, fee_per_ohm, limit, payments")
        except GridError as exc:
            scope.errors.extend(exc)
    fees = np.full((n, n), fee)
    if per_ohm:
        fees = fees + per_ohm * np.array([[distance(a, b) if a != b else 0.0 for b in members] for a in members])
    outside = {o: np.array([fee + (per_ohm * distance(a, o) if per_ohm else 0.0) for a in members]) for o in sorted(agents - set(members))}
    return ir.MarketIR(node.name.name, tuple(members), fees, limit, powers, node.span, outside, rule, method)


def _game(node, agents: set[str], scope: _Scope) -> ir.GameIR:
    """``game NAME between p1, ..., pn and operator { retail = ...; feed_in = ...; payments = ...; price = ... }``;
    ``price`` is ``nash`` (bargained at the central point, the default) or
    ``exchange`` / ``exchange(rho = 20, tol = 1e-9, dual_tol = 1e-7, max_iter = 1000, face_tol = 1e-4)``
    (gridlang.decompose.exchange)."""
    _define(node.name, scope, "game")
    prosumers: list[str] = []
    for a in (*node.prosumers, node.operator):
        if a.name not in agents:
            scope.errors.add(a.span, f"'{a.name}' is not an agent", did_you_mean(a.name, agents) or "declare it with 'agent NAME owns ...'")
        elif a.name in prosumers or (a is not node.operator and a.name == node.operator.name):
            scope.errors.add(a.span, f"'{a.name}' is named twice in game '{node.name.name}'")
        elif a is not node.operator:
            prosumers.append(a.name)
    price = parse_unit("$/MWh")[1]
    tariffs: dict[str, np.ndarray] = {}
    powers = np.array([0.5, 0.5])
    method, settings, method_span = "nash", {}, None
    for a in node.attrs:
        key = a.name.name
        try:
            match key:
                case "retail" | "feed_in":
                    q = _series_ok(expect(_evaluator(scope)(a.value), price, a.value.span, f"'{key}'"), scope, a.value.span)
                    tariffs[key] = np.broadcast_to(np.asarray(q.value, dtype=float), (scope.steps,)).copy()
                case "payments":
                    powers = _bargaining_powers(a.value, 2, scope)
                case "price":
                    method, settings, method_span = (*_game_price(a.value, scope), a.value.span)
                case _:
                    scope.errors.add(a.name.span, f"unknown game setting '{key}'", did_you_mean(key, ["retail", "feed_in", "payments", "price"]) or "settings: retail, feed_in, payments, price")
        except GridError as exc:
            scope.errors.extend(exc)
    for key in ("retail", "feed_in"):
        if key not in tariffs:
            scope.errors.add(node.name.span, f"game '{node.name.name}' needs '{key}'", f"add '{key} = ...' (a price or a price profile)")
            tariffs[key] = np.zeros(scope.steps)
    if (tariffs["feed_in"] > tariffs["retail"]).any():
        scope.errors.add(node.name.span, "the feed-in tariff is above the retail tariff at some step", "the interactive price lies between them; check the tariffs")
    return ir.GameIR(node.name.name, tuple(prosumers), node.operator.name, tariffs["retail"], tariffs["feed_in"], powers, node.span, method, tuple(settings.items()), method_span)


def _game_price(e: ast.Expr, scope: _Scope) -> tuple[str, dict[str, float]]:
    """A game's ``price = nash``, ``exchange`` or ``exchange(rho = 20, tol = 1e-9, dual_tol = 1e-7, max_iter = 1000, face_tol = 1e-4)``."""
    from gridlang.decompose.exchange import Settings

    match e:
        case ast.Name("nash" | "exchange" as name):
            return name, {}
        case ast.Call(ast.Ident("exchange"), (), kwargs):
            settings = {}
            for key, value in kwargs:
                if key.name not in Settings.NAMES:
                    scope.errors.add(key.span, f"unknown exchange setting '{key.name}'", did_you_mean(key.name, Settings.NAMES) or f"settings: {', '.join(Settings.NAMES)}")
                elif not isinstance(value, ast.Number) or value.unit is not None or not value.value > 0:
                    scope.errors.add(value.span, f"'{key.name}' of exchange is a positive plain number", f"e.g. exchange({key.name} = {getattr(Settings(), key.name):g})")
                elif key.name == "max_iter" and value.value != int(value.value):
                    scope.errors.add(value.span, "'max_iter' of exchange is a whole number", "e.g. exchange(max_iter = 1000)")
                else:
                    settings[key.name] = float(value.value)
            return "exchange", settings
    scope.errors.add(e.span, "a game's price is 'nash' or 'exchange'", "e.g. price = exchange, or price = exchange(rho = 20, tol = 1e-9)")
    return "nash", {}


def _bargaining_powers(e: ast.Expr, n: int, scope: _Scope) -> np.ndarray:
    """``nash`` (equal powers) or ``nash(power = [a, b, ...])``, normalised to sum 1."""
    match e:
        case ast.Name("nash"):
            return np.full(n, 1.0 / max(n, 1))
        case ast.Call(ast.Ident("nash"), (), ((ast.Ident("power"), ast.ListLit(values, None, span)),)):
            powers = np.asarray(values, dtype=float)
            if len(powers) != n:
                raise GridError(span, f"{len(powers)} bargaining powers for {n} agents", "give one power per agent, in the order of 'among' (a game: the prosumer side, then the operator)")
            if (powers < 0).any() or powers.sum() <= 0:
                raise GridError(span, "bargaining powers must be non-negative and not all zero", "e.g. power = [0.5, 0.3, 0.2]")
            return powers / powers.sum()
    raise GridError(e.span, "payments are 'nash' or 'nash(power = [...])'", "e.g. payments = nash(power = [2, 1, 1])")


#: how a market's stage 2 may be computed (gridlang.settle, gridlang.decompose.nash)
PAYMENT_METHODS = ("closed_form", "cf_admm")


def _payments(e: ast.Expr, n: int, scope: _Scope) -> tuple[np.ndarray, str, str]:
    """A market's ``payments``: (powers, power rule, method).

    ``nash``, ``nash(power = [a, b, ...])`` (fixed powers, normalised),
    ``nash(power = contribution)`` (powers from the energy each member sells to
    the others, fixed at the settlement point), each with an optional
    ``method = closed_form | cf_admm``."""
    if not (isinstance(e, ast.Call) and e.func.name == "nash" and not e.args):
        return _bargaining_powers(e, n, scope), "fixed", "closed_form"
    powers, rule, method = np.full(n, 1.0 / max(n, 1)), "fixed", "closed_form"
    for key, value in e.kwargs:
        match key.name, value:
            case "power", ast.Name("contribution"):
                rule = "contribution"
            case "power", ast.ListLit():
                powers = _bargaining_powers(ast.Call(e.func, (), ((key, value),), e.span), n, scope)
            case "power", _:
                raise GridError(value.span, "bargaining powers are a list or 'contribution'", "e.g. power = [2, 1, 1], or power = contribution")
            case "method", ast.Name(name) if name in PAYMENT_METHODS:
                method = name
            case "method", _:
                raise GridError(value.span, "the payments' method is 'closed_form' or 'cf_admm'", "e.g. payments = nash(method = cf_admm)")
            case _:
                raise GridError(key.span, f"unknown setting '{key.name}' of nash", did_you_mean(key.name, ["power", "method"]) or "settings: power, method")
    return powers, rule, method


def _objective(objectives: Sequence[ast.Objective], scope: _Scope) -> str:
    for extra in objectives[1:]:
        scope.errors.add(extra.span, "a case has one objective")
    if not objectives:
        return "minimize"
    o = objectives[0]
    if not (isinstance(o.expr, ast.Name) and o.expr.id == "cost"):
        scope.errors.add(o.expr.span, "the objective is the total cost", "write 'objective minimize cost'; costs are declared by the kinds")
    if o.sense != "minimize":
        scope.errors.add(o.span, "the total cost can only be minimized", "write 'objective minimize cost'")
    return o.sense


METHODS = ("central", "admm", "atc", "auto")  # auto: ATC when the others hang off the network owner, else ADMM (gridlang.decompose.choose)


def _method(e: ast.Expr, scope: _Scope, spans: dict[str, Span]) -> tuple[str, dict[str, float]]:
    """``central``, ``admm``, ``atc``, ``auto`` or ``admm(rho = 1, tol = 1e-4, max_iter = 500)``
    (``auto(...)``'s settings go to the method it picks); each setting's value
    span goes into ``spans`` as ``method.<setting>``."""
    match e:
        case ast.Name(name) if name in METHODS:
            return name, {}
        case ast.Call(ast.Ident(name), (), kwargs) if name in METHODS:
            settings = {}
            for key, value in kwargs:
                if not isinstance(value, ast.Number) or value.unit is not None:
                    scope.errors.add(value.span, f"'{key.name}' of {name} is a plain number")
                    continue
                settings[key.name] = int(value.value) if key.name == "max_iter" else value.value
                spans[f"method.{key.name}"] = value.span
            return name, settings
    scope.errors.add(e.span, "unknown method", f"methods: {', '.join(METHODS)}, e.g. admm(rho = 1, tol = 1e-4)")
    return "central", {}


STUDY_TYPES = ("dispatch", "plan")
PLAN_ATTRS = ("scenarios", "eens_max", "saidi_max", "voll", "compare")
FAILURE = "failure"  # 'failure table (line, rate, repair_time [h]) { ... }'


@dataclass(frozen=True)
class _StudyIR:
    solver: str | None = None
    options: Mapping[str, object] = field(default_factory=dict)
    spans: Mapping[str, Span] = field(default_factory=dict)  # see ir.CaseIR.option_spans
    formulation: ast.Ident | None = None
    plan: ast.Study | None = None  # the study, if it is a plan


def _study(studies: Sequence[ast.Study], scope: _Scope) -> _StudyIR:
    """The study's solver, the options passed through to it, a formulation for every
    network, and, for a plan, the study itself (its plan attributes are read by ``_plan``)."""
    if not studies:
        return _StudyIR()
    for extra in studies[1:]:
        scope.errors.add(extra.span, "a case has one study", f"merge it with the one at {studies[0].span}")
    s = studies[0]
    if s.type.name not in STUDY_TYPES:
        scope.errors.add(s.type.span, f"unknown study type '{s.type.name}'", did_you_mean(s.type.name, STUDY_TYPES) or f"known: {', '.join(STUDY_TYPES)}")
    plan = s.type.name == "plan"
    solver, options, spans, formulation = None, {}, {}, None
    for a in s.attrs:
        if a.name.name in PLAN_ATTRS:
            if not plan:
                scope.errors.add(a.name.span, f"'{a.name.name}' belongs to a plan study", f"write 'study {s.name.name}: plan {{ ... }}'")
            continue
        if a.name.name == "formulation" and isinstance(a.value, ast.Name):
            formulation = ast.Ident(a.value.id, a.value.span)
            continue
        if a.name.name == "method":
            options["method"] = _method(a.value, scope, spans)
            continue
        match a.value:
            case ast.Name(id) | ast.Str(id):
                value: object = id
            case ast.Number(value=v, unit=None):
                value = int(v) if float(v).is_integer() else v
            case _:
                scope.errors.add(a.span, f"study option '{a.name.name}' takes a number, a name or a string")
                continue
        if a.name.name == "solver":
            solver = str(value)
            spans["solver"] = a.value.span
        else:
            options[a.name.name] = value
            spans[a.name.name] = a.name.span
    return _StudyIR(solver, options, spans, formulation, s if plan else None)


# ---------------------------------------------------------------- plan


def _plan_attrs(study: ast.Study) -> dict[str, ast.Attr]:
    return {a.name.name: a for a in study.attrs if a.name.name in PLAN_ATTRS}


def _plan_time(study: ast.Study, system: ir.SystemIR, scope: _Scope) -> ir.SystemIR:
    """The plan's time axis: its typical days one after another (or the horizon alone),
    each step weighted by the share of the year its day stands for."""
    from gridlang.scenarios import HOURS, read_year, scenario_labels, typical_days

    hours = system.steps * system.dt
    per_year = 8760.0 / hours
    attr = _plan_attrs(study).get("scenarios")
    if attr is None:
        return replace(system, step_weight=np.full(system.steps, per_year))
    try:
        call = attr.value
        kwargs = {k.name: v for k, v in call.kwargs} if isinstance(call, ast.Call) else {}
        if not isinstance(call, ast.Call) or call.func.name != "typical_days" or call.args or not {"k", "data"} <= set(kwargs) or set(kwargs) - {"k", "data", "extremes"}:
            raise GridError(attr.value.span, "scenarios are typical days of a year", "write scenarios = typical_days(k = 4, data = csv(\"year.csv\"))")
        if system.steps != HOURS or system.dt != 1.0:
            raise GridError(system.span, f"typical days have {HOURS} hourly steps, but the horizon has {system.steps} steps of {system.dt:g} h", "set horizon = 24 h; step = 1 h")
        data, k = kwargs["data"], kwargs["k"]
        if isinstance(data, ast.Call) and data.func.name == "csv" and len(data.args) == 1 and not data.kwargs:
            data = data.args[0]
        if not isinstance(data, ast.Str):
            raise GridError(data.span, "the year's data is a CSV file", "data = csv(\"year.csv\")")
        if not isinstance(k, ast.Number) or k.unit is not None or not float(k.value).is_integer():
            raise GridError(k.span, "k is a whole number of typical days", "e.g. k = 4")
        extremes = kwargs.get("extremes")
        keep = isinstance(extremes, ast.Name) and extremes.id == "true"
        if extremes is not None and not (isinstance(extremes, ast.Name) and extremes.id in ("true", "false")):
            raise GridError(extremes.span, "extremes is true or false")
        year = read_year(case_path(data, scope.root, scope.allow_outside))
        try:
            td = typical_days(year, int(k.value), extremes=keep)
        except GridError as exc:  # K out of range: point at k
            raise GridError(k.span, exc.message, exc.hint) from None
    except GridError as exc:
        scope.errors.extend(exc)
        return system
    s = len(td.weights)
    scope.steps, scope.period = s * HOURS, HOURS
    scope.typical = {name: td.profiles[:, :, i].reshape(-1) for i, name in enumerate(td.series)}
    labels = tuple(scenario_labels(td, year.dates))
    clustering = f"{s} typical days of {len(year.days)} ({td.method} K-means, K = {td.k}{', extremes kept' if keep else ''}); profile RMSE {td.rmse:.4f} p.u."
    scope.plan_days = (labels, np.asarray(td.weights, dtype=float), clustering)
    weight = np.repeat(per_year * np.asarray(td.weights, dtype=float), HOURS)
    return replace(system, steps=s * HOURS, period=HOURS, step_weight=weight)


def _plan(study: ast.Study, failures: Sequence[ast.Table], networks: Sequence[ir.NetworkIR], scope: _Scope) -> ir.PlanIR:
    """Failure data, reliability limits, the value of lost load and formulations to compare."""
    attrs = _plan_attrs(study)
    labels, weights, clustering = scope.plan_days
    limits: dict[str, ir.Limit] = {}
    for key, dim in (("eens_max", ENERGY), ("saidi_max", TIME)):
        if key in attrs:
            a = attrs[key]
            try:
                q = expect(_evaluator(scope)(a.value), dim, a.value.span, f"'{key}'")
                if q.is_series or not float(q.value) >= 0:
                    raise GridError(a.value.span, f"'{key}' is one value, zero or more", f"e.g. {key} = {example(dim)}")
                limits[key] = ir.Limit(key, float(q.value), a.span)
            except GridError as exc:
                scope.errors.extend(exc)
    voll = 0.0
    if "voll" in attrs:
        try:
            voll = float(expect(_evaluator(scope)(attrs["voll"].value), (-1, -1, 0, 1), attrs["voll"].value.span, "'voll'").value)
        except GridError as exc:
            scope.errors.extend(exc)
    compare: list[str] = []
    if "compare" in attrs:
        value = attrs["compare"].value
        names = [value] if isinstance(value, ast.Name) else []
        if not names:
            scope.errors.add(value.span, "compare names a formulation", "e.g. compare = lindistflow")
        compare = [n.id for n in names]
    reliability = _failures(failures, networks, scope)
    wants = [k for k in ("eens_max", "saidi_max", "voll") if k in attrs]
    if wants and not failures:
        scope.errors.add(attrs[wants[0]].span, f"'{wants[0]}' needs failure data for the lines", "add 'failure table (line, rate, repair_time [h]) { l1 0.1 5 ... }'")
    return ir.PlanIR(labels, weights, 8760.0 / (scope.period or scope.steps), reliability, limits, voll, tuple(compare), study.span, clustering)


def _failures(tables: Sequence[ast.Table], networks: Sequence[ir.NetworkIR], scope: _Scope) -> ir.ReliabilityIR | None:
    """``failure table (line, rate, repair_time [h]) {...}``: rate in failures per year."""
    if not tables:
        return None
    if not networks:
        return None
    net = networks[0]
    span0 = tables[0].set.span
    specs = {"rate": ir.ParamSpec("rate", None, DIMENSIONLESS, None, span0), "repair_time": ir.ParamSpec("repair_time", None, TIME, None, span0)}
    known = set(net.lines)
    lines, rates, repairs, spans = [], [], [], []
    for t in tables:
        for idents, values, span in _table(t, ("line",), specs, "failure", scope):
            line = idents[0]
            if line.name not in known:
                scope.errors.add(line.span, f"line '{line.name}' is not in network '{net.name}'", did_you_mean(line.name, known) or "failure data names the network's lines")
                continue
            if line.name in lines:
                scope.errors.add(line.span, f"line '{line.name}' has failure data twice", "give one row per line")
                continue
            missing = [k for k in specs if k not in values]
            if missing:
                scope.errors.add(span, f"failure data of '{line.name}' lacks {', '.join(missing)}", "columns: (line, rate, repair_time [h])")
                continue
            rate, repair = (float(values[k][0].value) for k in ("rate", "repair_time"))
            if not (rate >= 0 and repair >= 0) or values["rate"][0].is_series or values["repair_time"][0].is_series:
                scope.errors.add(span, f"failure data of '{line.name}' must be one number each, zero or more", "rate in failures per year, repair_time in hours")
                continue
            lines.append(line.name)
            rates.append(rate)
            repairs.append(repair)
            spans.append(span)
    return ir.ReliabilityIR(net.name, tuple(lines), np.array(rates), np.array(repairs), tuple(spans))


# ---------------------------------------------------------------- a case in parts


def connections(points: Sequence[ast.AgentAt], agents: Sequence[ast.Agent]) -> dict[str, tuple[ast.Ident, ...]]:
    """The agents a cloud file connects, ``agent NAME at BUS, ...`` (:mod:`gridlang.parts`),
    and the buses each may connect at.  An agent is connected once, is not also one of
    the cloud's own agents (``agent NAME owns ...``) and lists each bus once; whether a
    bus exists is checked when the cloud's network is resolved (each connected agent
    has a stand-in at each of its buses there)."""
    errors = Collector()
    own = {a.name.name: a.span for a in agents}
    out: dict[str, tuple[ast.Ident, ...]] = {}
    first: dict[str, Span] = {}
    for p in points:
        name = p.name.name
        if name in own:
            errors.add(p.name.span, f"agent '{name}' is the cloud's own (at {own[name]}) and connected from its own file too", f"keep one: 'agent {name} owns ...' in the cloud file, or 'agent {name} at BUS' with its assets in its own file")
        elif name in out:
            errors.add(p.name.span, f"agent '{name}' is connected twice (first at {first[name]})", f"list all its buses once: 'agent {name} at {', '.join(b.name for b in (*out[name], *p.buses))}'")
        buses: dict[str, ast.Ident] = {}
        for b in p.buses:
            if b.name in buses:
                errors.add(b.span, f"bus '{b.name}' is listed twice for agent '{name}'", "list each bus once")
            buses.setdefault(b.name, b)
        first.setdefault(name, p.span)
        out.setdefault(name, tuple(buses.values()))
    errors.raise_if_any()
    return out
