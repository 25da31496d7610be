"""Second-order cones written naturally in constraints, one block per statement.

linopy has no cones, so they live beside the linear model.  A constraint is
read as a cone when it squares a variable expression, multiplies two of
them, or calls ``norm``.  With ``x_i``, ``A``, ``B`` affine in the variables
the accepted (convex) forms are::

    x_1^2 + ... + x_k^2 <= A * B     rotated cone   A B >= |x|^2,  A, B >= 0
    x_1^2 + ... + x_k^2 <= S^2       cone           |x| <= S       (S >= 0)
    x_1^2 + ... + x_k^2 <= A         rotated cone   A * 1 >= |x|^2
    norm(x_1, ..., x_k) <= A         cone           |x| <= A

either way round (``>=`` flips the sides); ``c * x^2`` with a constant
``c >= 0`` is ``(sqrt(c) x)^2``.  The cone itself keeps ``A``, ``B`` and
``S`` non-negative, as the forms assume.

Every member of a cone is a variable: a member that is already one variable
(coefficient 1, no constant) is used as it is; any other affine member gets
an auxiliary variable ``z`` with the linear row ``z == member`` in linopy, and
a constant member a variable fixed by its bounds.  So a block is a few label
arrays over the statement's dims (one cone per row), and the solver
interfaces and file writers only ever see cones of variables.
"""

from __future__ import annotations

from dataclasses import dataclass

import linopy
import numpy as np
import pandas as pd
import xarray as xr

from gridlang.compiler.expressions import Evaluator, Frame, as_linopy, is_expr
from gridlang.compiler.linear import Lin
from gridlang.errors import GridError, Span
from gridlang.grammar import ast

SOC = "soc"  # members[0] >= |members[1:]|
RSOC = "rsoc"  # members[0] * members[1] >= |members[2:]|^2, members[0], members[1] >= 0

FORMS = "accepted convex forms: x^2 + y^2 <= a * b, x^2 + y^2 <= s^2, x^2 + y^2 <= a, norm(x, y) <= a (a, b, s non-negative)"


@dataclass(frozen=True, slots=True, eq=False)
class ConeBlock:
    """The cones of one statement, one per row of its dims.

    ``members[k]`` holds variable labels over the block's dims, -1 where the
    statement does not apply (a ``where`` or a shifted index)."""

    name: str
    kind: str  # SOC or RSOC
    members: tuple[xr.DataArray, ...]
    span: Span

    def rows(self) -> np.ndarray:
        """Labels of the active cones as an ``(n_cones, n_members)`` array."""
        stacked = np.stack([m.values.ravel() for m in xr.broadcast(*self.members)], axis=1)
        return stacked[(stacked >= 0).all(axis=1)]

    def coords(self) -> pd.DataFrame:
        """The coordinates of the active cones, in the order of :meth:`rows`."""
        first = xr.broadcast(*self.members)[0]
        index = first.to_series().index.to_frame(index=False) if first.dims else pd.DataFrame(index=[0])
        return index[np.stack([m.values.ravel() >= 0 for m in xr.broadcast(*self.members)], axis=1).all(axis=1)].reset_index(drop=True)


def is_conic(e: ast.Expr, frame: Frame) -> bool:
    """Does a constraint square or multiply variable expressions, or call ``norm``?"""
    match e:
        case ast.Pow(base, _):
            return _has_var(base, frame) or is_conic(base, frame)
        case ast.Call(ast.Ident("norm"), _, _):
            return True
        case ast.BinOp("*", left, right) if _has_var(left, frame) and _has_var(right, frame):
            return True
    return any(is_conic(child, frame) for child in _children(e))


def _children(e) -> list:
    out = []
    for slot in getattr(e, "__slots__", ()):
        value = getattr(e, slot)
        for v in value if isinstance(value, tuple) else (value,):
            if hasattr(v, "span") and not isinstance(v, ast.Ident | Span):
                out.append(v)
    return out


def _has_var(e, frame: Frame) -> bool:
    match e:
        case ast.Name(name) if isinstance(frame.values.get(name), linopy.Variable):
            return True
        case ast.Indexed(ast.Ident(name), _) if isinstance(frame.values.get(name), linopy.Variable):
            return True
    return any(_has_var(child, frame) for child in _children(e))


def _terms(e: ast.Expr, sign: float = 1.0) -> list[tuple[float, ast.Expr]]:
    """Split a sum into signed terms."""
    match e:
        case ast.BinOp("+" | "-" as op, left, right):
            return _terms(left, sign) + _terms(right, sign if op == "+" else -sign)
        case ast.Neg(operand):
            return _terms(operand, -sign)
    return [(sign, e)]


def analyse(c: ast.Constraint, ev: Evaluator) -> tuple[str, list]:
    """The cone kind and its members (evaluated) for a constraint in a conic form."""
    frame = ev.frame
    if not isinstance(c.expr, ast.Compare) or len(c.expr.ops) != 1 or c.expr.ops[0] not in ("<=", ">="):
        raise GridError(c.span, "a constraint with squares or products of variables must be a single <= or >=", "an equality with squares is not convex; " + FORMS)
    left, right = c.expr.operands
    small, big = (left, right) if c.expr.ops[0] == "<=" else (right, left)
    small_terms, big_terms = _terms(small), _terms(big)
    if len(big_terms) != 1 or big_terms[0][0] < 0:
        raise _nonconvex(c, big, "the larger side must be one product, one square or one expression")
    (_, big), = big_terms
    if len(small_terms) == 1 and isinstance(small_terms[0][1], ast.Call) and small_terms[0][1].func.name == "norm":
        norm = small_terms[0][1]
        if small_terms[0][0] < 0 or not norm.args:
            raise _nonconvex(c, norm, "norm(...) is the smaller side")
        if is_conic(big, frame):
            raise _nonconvex(c, big, "norm(...) <= a needs an affine a")
        return SOC, [ev(big), *[ev(a) for a in norm.args]]
    squares = [_square(sign, term, ev, c) for sign, term in small_terms]
    match big:
        case ast.BinOp("*", a, b) if _has_var(a, frame) and _has_var(b, frame):
            return RSOC, [ev(a), ev(b), *squares]
        case ast.Pow(s, ast.Number(2.0, None)):
            bound = ev(s)
            if not is_expr(bound) and bool(np.any(np.asarray(bound) < 0)):
                raise GridError(c.span, "the bound of a cone x^2 + y^2 <= s^2 must be non-negative", "check the data of s")
            return SOC, [bound, *squares]
    if is_conic(big, frame):
        raise _nonconvex(c, big, "this side is not a product or square of affine expressions")
    return RSOC, [ev(big), 1.0, *squares]


def _square(sign: float, e: ast.Expr, ev: Evaluator, c: ast.Constraint):
    """``x^2`` or ``k * x^2`` (``k >= 0`` constant) as the member ``sqrt(k) x``."""
    frame = ev.frame
    scale, node = 1.0, e
    match e:
        case ast.BinOp("*", k, ast.Pow() as p) if not _has_var(k, frame):
            scale, node = ev(k), p
        case ast.BinOp("*", ast.Pow() as p, k) if not _has_var(k, frame):
            scale, node = ev(k), p
    squared = isinstance(node, ast.Pow) and isinstance(node.exponent, ast.Number) and node.exponent.value == 2 and node.exponent.unit is None
    if isinstance(node, ast.Pow) and not squared:
        ev(node)  # explains the exponent
    if sign < 0 or not squared or not _has_var(node.base, frame):
        raise _nonconvex(c, e, "the smaller side must be a sum of squares of affine expressions")
    if bool(np.any(np.asarray(scale) < 0)):
        raise _nonconvex(c, e, "a square with a negative factor is concave")
    value = ev(node.base)
    return value if isinstance(scale, float) and scale == 1.0 else value * np.sqrt(scale)


def _nonconvex(c: ast.Constraint, where: ast.Expr, why: str) -> GridError:
    return GridError(getattr(where, "span", c.span), f"this quadratic constraint is not convex: {why}", FORMS)


def add_block(name: str, kind: str, members: list, mask: xr.DataArray | None, model: linopy.Model, span: Span) -> tuple[ConeBlock, list[str]]:
    """Turn evaluated members into variables (adding definitions where needed).

    Returns the block and the names of the auxiliary variables and rows added."""
    coords: dict[str, pd.Index] = {}
    for m in members:
        for d, index in _indexes(m).items():
            coords.setdefault(d, index)
    if mask is not None:
        for d in mask.dims:
            coords.setdefault(d, mask.indexes[d])
    active = xr.DataArray(np.ones([len(i) for i in coords.values()], dtype=bool), coords=coords, dims=list(coords))
    if mask is not None:
        active = active & mask
    labels, added = [], []
    for k, m in enumerate(members):
        direct = _single_variable(m)
        if direct is not None:
            labels.append(direct.where(active, -1).astype(np.int64))
            continue
        aux = f"{name}_m{k}"
        if not is_expr(m):
            value = xr.broadcast(xr.DataArray(m).astype(float), active)[0]
            var = model.add_variables(lower=value, upper=value, name=aux, mask=active)
        else:
            var = model.add_variables(coords=list(coords.values()), name=aux, mask=active)
            lhs = (Lin.of(var) - m).to_linopy() if isinstance(m, Lin) else var - as_linopy(m)
            model.add_constraints(lhs, "=", 0, name=aux, mask=active)
        labels.append(var.labels.where(active, -1).astype(np.int64))
        added.append(aux)
    return ConeBlock(name, kind, tuple(xr.broadcast(*labels)), span), added


def _indexes(m) -> dict[str, pd.Index]:
    if isinstance(m, Lin):
        return {d: m.index(d) for d in m.dims}
    if isinstance(m, xr.DataArray | linopy.LinearExpression | linopy.Variable):
        return {d: m.indexes[d] for d in m.dims if d in m.indexes and not d.startswith("_")}
    return {}


def _single_variable(m) -> xr.DataArray | None:
    """The labels if ``m`` is exactly one variable (coefficient 1, no constant)."""
    if isinstance(m, Lin) and len(m.terms) == 1 and not isinstance(m.const, xr.DataArray) and m.const == 0:
        labels, coeff = m.terms[0]
        if not isinstance(coeff, xr.DataArray) and coeff == 1.0 and not any(d.startswith("_") for d in labels.dims):
            return labels
    return None
