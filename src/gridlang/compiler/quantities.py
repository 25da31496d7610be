"""Data values of the case layer: numbers and series with a dimension.

``90 kW * residential`` evaluates to a :class:`Quantity` whose value is
already in internal per-unit (see :mod:`gridlang.compiler.units`) and whose
``dim`` records the exponents of power, time, current and money (in the
case's currency: see :meth:`gridlang.compiler.units.Base.factor`).  Sums need
equal dimensions; products add them.  Series are 1-D arrays over time steps.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from gridlang.compiler.units import DIMENSIONLESS, Base, Dim, UnitError, describe, example
from gridlang.errors import GridError
from gridlang.grammar import ast


@dataclass(frozen=True, slots=True, eq=False)
class Quantity:
    """A value in internal units, scalar or array, with its dimension."""

    value: float | np.ndarray
    dim: Dim = DIMENSIONLESS
    per_unit: bool = False  # written in p.u. of the system base: fits any dimension

    @property
    def is_series(self) -> bool:
        return np.ndim(self.value) > 0


_ARITH: dict[str, Callable] = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
_CMP: dict[str, Callable] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
CONSTANTS = {"inf": np.inf, "true": True, "false": False}


class DataEvaluator:
    """Evaluates case-layer expressions to Quantities.

    ``names`` maps the names in scope (profiles, or other parameters of the
    same kind when evaluating a default) to values; ``call`` handles
    functions such as ``csv(...)`` that need the case's context.
    """

    def __init__(
        self,
        base: Base,
        names: Mapping[str, Quantity],
        call: Callable[[ast.Call], Quantity] | None = None,
        strict: bool = True,
    ) -> None:
        self.base = base
        self.names = names
        self.call = call
        self.strict = strict  # '$' is USD (case data), not the case's currency (model defaults)

    def __call__(self, e: ast.Expr) -> Quantity:
        try:
            return self._eval(e)
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise GridError(e.span, f"cannot evaluate this value: {exc}", "check the numbers, their units and series lengths") from None

    def _eval(self, e: ast.Expr) -> Quantity:
        match e:
            case ast.Number(value, unit, span):
                return self._with_unit(np.float64(value), unit, span)
            case ast.ListLit(values, unit, span):
                return self._with_unit(np.asarray(values, dtype=float), unit, span)
            case ast.Name(id, span):
                if id in self.names:
                    return self.names[id]
                if id in CONSTANTS:
                    return Quantity(CONSTANTS[id])
                from gridlang.errors import did_you_mean

                raise GridError(span, f"unknown name '{id}'", did_you_mean(id, [*self.names, *CONSTANTS]))
            case ast.Neg(operand):
                q = self(operand)
                return Quantity(-q.value, q.dim)
            case ast.BinOp(op, left, right, span):
                return self._binop(op, self(left), self(right), span)
            case ast.Pow(base, exponent, span):
                b, x = self(base), self(exponent)
                if x.dim != DIMENSIONLESS or x.is_series or float(x.value) != int(x.value):
                    raise GridError(exponent.span if hasattr(exponent, "span") else span, "an exponent must be a whole number")
                k = int(x.value)
                with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                    return Quantity(np.float64(b.value) ** k, tuple(k * d for d in b.dim), b.per_unit)
            case ast.Compare(operands, ops, span):
                values = [self(o) for o in operands]
                result = np.bool_(True)
                for (a, b), op in zip(zip(values, values[1:]), ops):
                    self._same_dim(a, b, span, f"compare with '{op}'")
                    result = result & _CMP[op](a.value, b.value)
                return Quantity(result)
            case ast.BoolOp(op, operands):
                values = [np.asarray(self(o).value, dtype=bool) for o in operands]
                fn = np.logical_and if op == "and" else np.logical_or
                out = values[0]
                for v in values[1:]:
                    out = fn(out, v)
                return Quantity(out)
            case ast.Not(operand):
                return Quantity(np.logical_not(self(operand).value))
            case ast.Call() if self.call is not None:
                return self.call(e)
            case _:
                raise GridError(e.span, "this expression is not allowed here", "data values are numbers with units, lists, profiles and csv(...)")

    def _with_unit(self, value, unit: str | None, span) -> Quantity:
        if unit is None:
            return Quantity(value)
        try:
            factor, dim = self.base.factor(unit, self.strict)
        except UnitError as exc:
            hint = getattr(exc, "hint", None) or "units: W kW MW var kvar Mvar VA kVA MVA V kV ohm p.u. % h min Wh kWh MWh $/MWh $/kW ..."
            raise GridError(span, str(exc), hint) from None
        return Quantity(value * factor, dim, per_unit=unit in ("pu", "p.u."))

    @staticmethod
    def _same_dim(a: Quantity, b: Quantity, span, what: str) -> None:
        if a.dim != b.dim and not _is_zero(a) and not _is_zero(b):
            raise GridError(span, f"cannot {what} {describe(a.dim)} and {describe(b.dim)}", "give both sides the same kind of unit")

    def _binop(self, op: str, a: Quantity, b: Quantity, span) -> Quantity:
        if op in "+-":
            self._same_dim(a, b, span, "add" if op == "+" else "subtract")
            dim = a.dim if not _is_zero(a) else b.dim
        else:
            sign = 1 if op == "*" else -1
            dim = tuple(x + sign * y for x, y in zip(a.dim, b.dim))
        per_unit = (a.per_unit or b.per_unit) and dim == DIMENSIONLESS
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return Quantity(_ARITH[op](a.value, b.value), dim, per_unit)


def _is_zero(q: Quantity) -> bool:
    return q.dim == DIMENSIONLESS and not np.any(q.value)


def expect(q: Quantity, dim: Dim | None, span, what: str) -> Quantity:
    """Check that ``q`` has dimension ``dim`` (None: a flag); zero and inf fit any unit."""
    if dim is None:
        if q.dim != DIMENSIONLESS:
            raise GridError(span, f"{what} is a flag (true or false), not {describe(q.dim)}")
        return Quantity(np.asarray(q.value, dtype=bool))
    if q.dim == dim:
        return q
    if q.dim == DIMENSIONLESS and (q.per_unit or np.all((np.asarray(q.value) == 0) | np.isinf(np.asarray(q.value, dtype=float)))):
        return Quantity(q.value, dim)
    if q.dim == DIMENSIONLESS:
        raise GridError(span, f"{what} needs a unit of {describe(dim)}", f"write it with a unit, e.g. {example(dim)}, or in p.u. of the system base")
    hint = f"{what} is {describe(dim)}, e.g. {example(dim)}"
    raise GridError(span, f"unit mismatch: {what} expects {describe(dim)} but got {describe(q.dim)}", hint)
