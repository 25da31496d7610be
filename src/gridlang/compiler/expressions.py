"""Model-layer expressions to linopy/xarray objects, one statement at a time.

A statement is evaluated once for all elements of its kind or network: a
parameter is a ``DataArray`` over (instance[, time]) or (bus|line[, time]),
a variable a ``linopy.Variable`` over its declared dims.  Indexing maps onto
array operations, never loops:

* ``x[t]`` binds index ``t`` to the dim at that position (no selection);
* ``x[t-k]`` is ``shift(time=k)``; rows where ``t-k`` falls before the first
  step of the period are masked out of the statement (``x[t+k]`` likewise at
  the end);
* ``x[wrap(t-k)]`` is ``roll(time=k)`` within each period (cyclic);
* ``x[first]``, ``x[last]`` select one step, or with several periods (the
  typical days of a plan) the first or last step of each, over a dim ``period``;
* ``v[to(l), t]`` selects ``v`` at each line's receiving bus, ``isel(bus=to)``;
* ``sum(E for l in into(b))`` groups ``E`` by receiving bus, i.e. the sparse
  incidence product, via ``groupby(...).sum()``; ``sum(E for t in time)``
  sums over the dim.

The same evaluator runs after solving with variables replaced by their
solution values, which is how ``output`` statements are computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import linopy
import numpy as np
import pandas as pd
import xarray as xr

from gridlang.compiler.ir import BUS, LINE, TIME, NetworkIR
from gridlang.compiler.linear import Lin
from gridlang.compiler.units import Base, UnitError
from gridlang.errors import GridError, Span
from gridlang.grammar import ast

LINOPY = (linopy.Variable, linopy.LinearExpression, linopy.QuadraticExpression)
SET_NAMES = {BUS: BUS, LINE: LINE, TIME: TIME, "t": TIME}


def is_expr(x) -> bool:
    """True for anything that depends on variables."""
    return isinstance(x, (Lin, *LINOPY))


def as_linopy(x):
    """A linopy object for an expression (a ``Lin`` is laid out once, here)."""
    return x.to_linopy() if isinstance(x, Lin) else x


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """What the statements of one kind or network can see."""

    values: Mapping[str, object]  # params (DataArray), vars (Variable), injections
    dims: Mapping[str, tuple[str, ...]]  # declared index dims of each name
    base: Base
    dt: float
    hour: xr.DataArray
    network: NetworkIR | None = None
    period: int = 0  # steps per period; 0: one period
    _maps: dict = field(default_factory=dict)

    def ends(self, which: str) -> xr.DataArray:
        """Bus position of each line's sending ('from') or receiving ('to') end."""
        if which not in self._maps:
            net = self.network
            pos = net.line_from if which == "from" else net.line_to
            self._maps[which] = xr.DataArray(pos, coords={LINE: list(net.lines)}, dims=LINE)
        return self._maps[which]


class Evaluator:
    """Evaluates one statement; collects the masks its shifted indices imply."""

    def __init__(self, frame: Frame, span: Span) -> None:
        self.frame = frame
        self.span = span
        self.bind: dict[str, str] = {"t": TIME}
        self.masks: list[xr.DataArray] = []

    def fail(self, message: str, hint: str | None = None, span: Span | None = None):
        raise GridError(span or self.span, message, hint)

    # ---------------------------------------------------------------- entry
    def __call__(self, e: ast.Expr):
        method = getattr(self, f"_{type(e).__name__.lower()}", None)
        if method is None:
            self.fail("this expression is not allowed in a model statement", span=e.span)
        try:
            return method(e)
        except (ArithmeticError, ValueError, TypeError, KeyError, IndexError) as exc:
            self.fail(f"cannot evaluate this expression: {exc}", "check the parameters, indices and operations", e.span)

    def mask(self) -> xr.DataArray | None:
        """Rows where every shifted index stays inside the horizon."""
        if not self.masks:
            return None
        out = self.masks[0]
        for m in self.masks[1:]:
            out = out & m
        return out

    # ---------------------------------------------------------------- atoms
    def _number(self, e: ast.Number):
        if e.unit is None:
            return e.value
        try:
            factor, _ = self.frame.base.factor(e.unit)
        except UnitError as exc:
            self.fail(str(exc), span=e.span)
        return e.value * factor

    def _name(self, e: ast.Name):
        if e.id in self.frame.values:
            return _lin(self.frame.values[e.id])
        match e.id:
            case "dt":
                return self.frame.dt
            case "hour":
                return self.frame.hour
            case "inf":
                return np.inf
            case "true" | "false":
                return e.id == "true"
        if e.id in self.bind:
            self.fail(f"the index '{e.id}' cannot be used as a value", span=e.span)
        self.fail(f"unknown name '{e.id}'", span=e.span)

    def _indexed(self, e: ast.Indexed):
        name = e.name.name
        if name not in self.frame.values:
            self.fail(f"unknown name '{name}'", span=e.name.span)
        value = _lin(self.frame.values[name])
        declared = self.frame.dims.get(name, ())
        if len(e.indices) != len(declared):
            shown = ", ".join(declared) or "no index"
            self.fail(f"'{name}' is indexed by [{shown}] but {len(e.indices)} index(es) were given", span=e.span)
        for dim, index in zip(declared, e.indices):
            value = self._select(value, dim, index)
        return value

    def _bind(self, name: ast.Name, dim: str) -> None:
        bound = self.bind.setdefault(name.id, dim)
        if bound != dim:
            self.fail(f"index '{name.id}' ranges over {bound} here, not {dim}", "use one index name per set", name.span)

    def _select(self, value, dim: str, index: ast.Expr):
        has = dim in getattr(value, "dims", ())
        match index:
            case ast.Name("first" | "last" as which):
                if not has:
                    return value
                size = _size(value, dim)
                period = self.frame.period if dim == TIME and self.frame.period else size
                if period == size:
                    return _isel(value, dim, 0 if which == "first" else -1)
                starts = np.arange(0, size, period) + (0 if which == "first" else period - 1)
                return _isel(value, dim, xr.DataArray(starts, dims="period"))
            case ast.Name():
                self._bind(index, dim)
                return value
            case ast.BinOp(op, ast.Name() as n, ast.Number(k, None)) if op in "+-" and float(k).is_integer():
                self._bind(n, dim)
                shift = int(k) if op == "-" else -int(k)
                if not has or shift == 0:
                    return value
                index = value.index(dim) if isinstance(value, Lin) else value.indexes[dim]
                period = self._period(dim, len(index))
                within = xr.DataArray(np.arange(len(index)) % period, dims=dim, coords={dim: index})
                self.masks.append((within - shift >= 0) & (within - shift < period))
                return _shift(value, dim, shift)
            case ast.Call(ast.Ident("wrap"), (ast.BinOp(op, ast.Name() as n, ast.Number(k, None)),)) if op in "+-" and float(k).is_integer():
                self._bind(n, dim)
                if not has:
                    return value
                shift = int(k) if op == "-" else -int(k)
                size = _size(value, dim)
                period = self._period(dim, size)
                if period == size:
                    return value.roll(dim, shift) if isinstance(value, Lin) else value.roll({dim: shift})
                # within each period: from the same period where t-k stays inside it, else from the other end
                shift %= period
                within = xr.DataArray(np.arange(size) % period >= shift, dims=dim)
                return _where(_shift(value, dim, shift), within) + _where(_shift(value, dim, shift - period), ~within)
            case ast.Call(ast.Ident("from" | "to" as which), (ast.Name() as n,)):
                if self.frame.network is None or dim != BUS:
                    self.fail(f"'{which}(...)' maps a line to a bus and is used on a bus index", span=index.span)
                self._bind(n, LINE)
                return _isel(value, BUS, self.frame.ends(which))
        self.fail("unsupported index", "indices are a name, t-1, t+1, wrap(t-1), first, last, from(l) or to(l)", index.span)

    def _period(self, dim: str, size: int) -> int:
        return self.frame.period if dim == TIME and self.frame.period else size

    # ---------------------------------------------------------------- arithmetic
    def _neg(self, e: ast.Neg):
        return -self(e.operand)

    def _binop(self, e: ast.BinOp):
        a, b = self(e.left), self(e.right)
        if is_expr(a) and is_expr(b) and (e.op == "*" or not (isinstance(a, Lin) and isinstance(b, Lin))):
            a, b = as_linopy(a), as_linopy(b)  # a product of variables, or a mix with linopy objects
        match e.op:
            case "+":
                return b + a if is_expr(b) and not is_expr(a) else a + b
            case "-":
                return (-b) + a if is_expr(b) and not is_expr(a) else a - b
            case "*":
                return b * a if is_expr(b) and not is_expr(a) else a * b
            case _:
                if is_expr(b):
                    self.fail("cannot divide by a variable", "multiply instead, or divide the other side", e.span)
                return a / b

    def _pow(self, e: ast.Pow):
        base, k = self(e.base), self(e.exponent)
        if is_expr(k) or np.ndim(k) or float(k) != int(k):
            self.fail("an exponent must be a whole number", span=e.exponent.span if hasattr(e.exponent, "span") else e.span)
        k = int(k)
        if not is_expr(base):
            return base**k
        if k == 1:
            return base
        if k == 2:
            base = as_linopy(base)
            return base * base
        self.fail(f"a variable raised to the power {k} is not linear or quadratic", "only x^2 is supported", e.span)

    def _call(self, e: ast.Call):
        args = [self(a) for a in e.args]
        if any(is_expr(a) for a in args):
            self.fail(f"'{e.func.name}' of a variable is not linear", span=e.span)
        match e.func.name, len(args):
            case "sqrt", 1:
                return np.sqrt(args[0])
            case "abs", 1:
                return abs(args[0])
            case "min", 2:
                return np.minimum(*args)
            case "max", 2:
                return np.maximum(*args)
            case "norm", n if n > 0:
                return np.sqrt(sum(a * a for a in args))
            case "annuity", 2:  # capital recovery factor r / (1 - (1 + r)^-n); 1/n at r = 0
                rate, years = args
                with np.errstate(divide="ignore", invalid="ignore"):
                    return xr.where(rate == 0, 1.0 / years, rate / (1.0 - (1.0 + rate) ** (-years)))
        self.fail(f"'{e.func.name}' is not a function of values here", span=e.func.span)

    def _generator(self, e: ast.Generator):
        saved_bind, saved_masks = dict(self.bind), self.masks
        self.masks = []
        group = None
        match e.domain:
            case ast.Name(id) if id in SET_NAMES:
                dim = SET_NAMES[id]
            case ast.Call(ast.Ident("into" | "out_of" as which), (ast.Name() as b,)) if self.frame.network is not None:
                self._bind(b, BUS)
                dim = LINE
                net = self.frame.network
                ends = net.line_to if which == "into" else net.line_from
                group = xr.DataArray(np.asarray(net.buses, dtype=object)[ends], coords={LINE: list(net.lines)}, dims=LINE, name=BUS)
            case _:
                self.fail("sum over an unknown set", "sum(... for t in time), for b in bus, for l in line, for l in into(b), for l in out_of(b)", e.domain.span)
        self.bind[e.var.name] = dim
        body = self(e.body)
        if e.cond is not None:
            body = _where(body, self._condition(e.cond))
        inner = [m for m in self.masks if dim not in m.dims]
        self.bind, self.masks = saved_bind, saved_masks + inner
        if dim not in getattr(body, "dims", ()):
            self.fail(f"the summed expression does not depend on '{e.var.name}'", span=e.body.span)
        if group is None:
            return body.sum(dim)
        return group_sum(body, group, pd.Index(self.frame.network.buses, name=BUS))

    # ---------------------------------------------------------------- conditions
    def _condition(self, e: ast.Expr) -> xr.DataArray:
        value = self(e)
        if is_expr(value):
            self.fail("a condition cannot depend on variables", span=e.span)
        return xr.DataArray(value).astype(bool) if not isinstance(value, xr.DataArray) else value.astype(bool)

    def _compare(self, e: ast.Compare):
        values = [self(o) for o in e.operands]
        if any(is_expr(v) for v in values):
            self.fail("a constraint is a statement of its own", "write it on its own line, not inside an expression", e.span)
        out = None
        for (a, b), op in zip(zip(values, values[1:]), e.ops):
            r = {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
            out = r if out is None else out & r
        return out

    def _boolop(self, e: ast.BoolOp):
        values = [self._condition(o) for o in e.operands]
        out = values[0]
        for v in values[1:]:
            out = (out & v) if e.op == "and" else (out | v)
        return out

    def _not(self, e: ast.Not):
        return ~self._condition(e.operand)


def _lin(value):
    """Variables enter expressions as ``Lin``; a masked slot (label -1) counts as 0."""
    return Lin.of(value) if isinstance(value, linopy.Variable) else value


def group_sum(value, group: xr.DataArray, index: pd.Index):
    """Sum ``value`` over the dim of ``group`` within each group label, on ``index``.

    ``out[g] = sum_{i: group[i] == g} value[i]``: the product with a sparse 0/1
    incidence matrix.  Labels of ``index`` without members get 0."""
    dim = group.dims[0]
    if not is_expr(value):
        codes = index.get_indexer(group.values)
        moved = value.transpose(dim, ...)
        out = np.zeros((len(index), *moved.shape[1:]))
        np.add.at(out, codes[codes >= 0], moved.values[codes >= 0])  # members outside index drop out
        coords = {index.name: index, **{d: moved.coords[d] for d in moved.dims[1:] if d in moved.coords}}
        return xr.DataArray(out, coords=coords, dims=(index.name, *moved.dims[1:]))
    if isinstance(value, Lin):
        summed = value.group_sum(dim, index.get_indexer(group.values), index)
        if summed is not None:
            return summed
    summed = as_linopy(value).groupby(group.to_pandas().rename(index.name)).sum()
    return summed.reindex({index.name: index}).fillna(0)


def _size(value, dim: str) -> int:
    return len(value.index(dim)) if isinstance(value, Lin) else value.sizes[dim]


def _shift(value, dim: str, k: int):
    """``value`` at position ``i - k`` along ``dim`` (0 where that falls outside)."""
    return value.shift(dim, k) if isinstance(value, Lin) else value.shift({dim: k}, fill_value=0)


def _isel(value, dim: str, index):
    """Select along ``dim`` and drop the coordinate left behind, so rows align."""
    if isinstance(value, Lin):
        return value.isel(dim, index)
    value = as_linopy(value).isel({dim: index})
    return value.drop_vars(dim) if dim in value.coords else value


def _where(value, cond: xr.DataArray):
    return value.where(cond) if is_expr(value) else xr.where(cond, value, 0)
