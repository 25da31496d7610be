"""The values a parameter may take, checked for every element and step.

A kind or formulation declares a parameter's range in the model language --
``param efficiency = 1 in (0, 1]`` (an interval, ``(``/``)`` open and
``[``/``]`` closed) or one comparison, ``param r[line]: ohm >= 0`` -- and
:func:`check` tests every instance's value at every step against it, and
every value against :data:`MAGNITUDE_MAX` in the parameter's declared unit.
:func:`plausible` refuses NaN, a series for a flag, and ``inf`` where the
default is not ``inf``, value by value as they are read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from gridlang.compiler import ir
from gridlang.compiler.quantities import Quantity, expect
from gridlang.compiler.units import DIMENSIONLESS, Base, UnitError
from gridlang.errors import Collector, GridError, Span
from gridlang.grammar import ast

#: the largest magnitude a parameter may have, in its declared unit: beyond it a value is a typo
#: or a unit mistake, and would wreck the solver's numerics (1e300 ohm reads as "unbounded")
MAGNITUDE_MAX = 1e12

#: stands for a value whose error is already reported
FAILED = Quantity(np.nan)


def plausible(q: Quantity, spec: ir.ParamSpec, span: Span) -> Quantity:
    """A flag is one value per element; numbers are not NaN, and infinite only where the default is."""
    if spec.dim is None:
        if q.is_series:
            raise GridError(span, f"'{spec.name}' is a flag, one true or false per element, not a series", f"write '{spec.name}' or '{spec.name} = true'")
        return q
    value = q.value
    if isinstance(value, float):  # the common case, without numpy's overhead
        nan, inf = math.isnan(value), math.isinf(value)
    else:
        values = np.asarray(value, dtype=float)
        nan, inf = bool(np.isnan(values).any()), bool(np.isinf(values).any())
    if nan:
        raise GridError(span, f"'{spec.name}' is not a number (NaN)", "check the arithmetic, e.g. a division 0 / 0, or the data file")
    if inf and not (isinstance(spec.default, ast.Name) and spec.default.id == "inf"):
        raise GridError(span, f"'{spec.name}' must be finite", f"'{spec.name}' has no infinite default; give a number")
    return q


def check(
    specs: Mapping[str, ir.ParamSpec],
    names: Sequence[str],
    spans: Sequence[Span],
    given: Sequence[Mapping[str, tuple[Quantity, Span]]],
    params: Mapping[str, np.ndarray],
    owner: str,
    evaluate: Callable[[ast.Expr], Quantity],
    base: Base,
    errors: Collector,
) -> None:
    """Every value of every element, at every step, within its parameter's declared range
    and below :data:`MAGNITUDE_MAX` in its declared unit.

    ``params`` holds each parameter's (n, 1) or (n, T) array, ``given`` each
    element's values as written (value, span), ``evaluate`` reads a range's ends
    (numbers, ``inf`` or other parameters).  Vectorised per parameter: ``lower
    <= values <= upper`` (``<`` at an open end) over the whole array; the
    elements out of range are then reported one by one, each at its value as
    written (its assignment or table row), or at the element when the value is
    a default.  A default that follows from another parameter
    (``charge_efficiency = efficiency``) is not reported again where a given
    value of the same element already is."""
    found: dict[int, list[tuple[bool, GridError]]] = {}
    for key, spec in specs.items():
        values = params.get(key)
        if values is None or spec.dim is None:
            continue
        unit_factor = _unit_factor(spec, base)
        with np.errstate(invalid="ignore"):
            bad = np.abs(values) > MAGNITUDE_MAX * unit_factor
            bad &= np.isfinite(values)
        ends = _bound_ends(spec, evaluate, errors)
        if ends is not None:
            lower, upper = ends
            with np.errstate(invalid="ignore"):
                if lower is not None:
                    bad = bad | ((values <= lower) if spec.bound.lower_open else (values < lower))
                if upper is not None:
                    bad = bad | ((values >= upper) if spec.bound.upper_open else (values > upper))
        bad = np.broadcast_to(bad, np.broadcast_shapes(bad.shape, values.shape))
        for i in np.flatnonzero(bad.any(axis=1)):  # only the offending elements: the error path
            written = given[i].get(key)
            if written is not None and written[0] is FAILED:
                continue
            steps = np.flatnonzero(bad[i])
            column = steps[0] if values.shape[1] > 1 else 0
            lo = None if ends is None or ends[0] is None else np.broadcast_to(ends[0], bad.shape)[i, steps[0]]
            hi = None if ends is None or ends[1] is None else np.broadcast_to(ends[1], bad.shape)[i, steps[0]]
            error = _range_error(spec, owner, names[i], float(values[i, column]), steps, bad.shape[1], unit_factor, lo, hi,
                                 written[1] if written is not None else spans[i], written is None)
            found.setdefault(i, []).append((written is not None, error))
    for reported in found.values():
        any_given = any(g for g, _ in reported)
        for g, error in reported:
            if g or not any_given:
                errors.extend(error)


def _unit_factor(spec: ir.ParamSpec, base: Base) -> float:
    """Internal units per one of the parameter's declared unit (1 without one)."""
    if spec.unit is None:
        return 1.0
    try:
        return base.factor(spec.unit)[0]
    except UnitError:
        return 1.0  # reported where the kind declares it


def _bound_ends(spec: ir.ParamSpec, evaluate: Callable[[ast.Expr], Quantity], errors: Collector):
    """The declared range's ends in internal units, broadcastable over the values; None without a range."""
    bound = spec.bound
    if bound is None:
        return None
    ends = []
    for e in (bound.lower, bound.upper):
        if e is None:
            ends.append(None)
            continue
        try:
            q = expect(evaluate(e), spec.dim, e.span, f"the range of '{spec.name}'")
        except GridError as exc:
            errors.extend(exc)
            return None
        value = np.asarray(q.value, dtype=float)
        ends.append(value.reshape(1, -1) if value.ndim == 1 else value)
    return ends[0], ends[1]


def _range_error(spec: ir.ParamSpec, owner: str, name: str, value: float, steps: np.ndarray, n_steps: int, unit_factor: float,
                 lower, upper, span: Span, default: bool) -> GridError:
    """'efficiency' of storage 'es' is 1.5, but must be in (0, 1] (at step 3, and 2 more steps)."""
    unit = f" {spec.unit}" if spec.unit else ""

    def shown(x: float) -> str:
        return f"{x / unit_factor:g}{unit}"

    where = ""
    if n_steps > 1:
        more = len(steps) - 1
        where = f" at step {steps[0] + 1} of {n_steps}" + (f" (and {more} more step{'s' if more > 1 else ''})" if more else "")
    what = f"'{spec.name}' of {owner} '{name}'" + (" (its default)" if default else "")
    declared = f"the range is declared at {spec.bound.span}" if spec.bound is not None else ""
    b = spec.bound
    below = lower is not None and (value <= lower if b.lower_open else value < lower)
    above = upper is not None and (value >= upper if b.upper_open else value > upper)
    if b is None or not (below or above):
        return GridError(span, f"{what} is {shown(value)}{where}, beyond {MAGNITUDE_MAX:g}{unit}: no physical value is that large",
                         "check the value and its unit (a typo in the exponent?)")
    allowed = f"in {b.text()}" if b.lower is not None and b.upper is not None else b.text()
    ends = ", ".join(f"{k} {shown(v)}" for k, v in (("lower end", lower), ("upper end", upper)) if v is not None and _is_param_end(spec, k))
    if below and float(lower) == 0.0:
        hint = f"a {'negative' if value < 0 else 'zero'} '{spec.name}' is not physical; check the sign and the unit"
    elif spec.dim == DIMENSIONLESS and upper is not None and float(upper) == 1.0 and 2.0 <= value <= 100.0:
        hint = f"a share is written from 0 to 1, or in %: did you mean {value:g} %?"
    elif spec.dim == DIMENSIONLESS and upper is not None and float(upper) == 1.0 and value > 1.0:
        hint = f"'{spec.name}' is a share, at most 1 (100 %)"
    else:
        hint = "check the value and its unit"
    hint += f" ({declared}{'; here ' + ends if ends else ''})"
    return GridError(span, f"{what} is {shown(value)}{where}, but must be {allowed}", hint)


def _is_param_end(spec: ir.ParamSpec, which: str) -> bool:
    """Whether that end of the range is an expression (worth showing its value), not a plain number."""
    e = spec.bound.lower if which == "lower end" else spec.bound.upper
    return e is not None and not isinstance(e, ast.Number) and not (isinstance(e, ast.Name) and e.id == "inf")
