"""Affine expressions of variables, kept as label and coefficient arrays.

``Lin`` holds ``sum_k c_k * x[l_k] + d``: a tuple of terms ``(l_k, c_k)`` and a
constant ``d``.  Every ``l_k`` is an integer ``DataArray`` of linopy variable
labels (-1 where the variable is absent, which then contributes nothing);
``c_k`` and ``d`` are numbers or ``DataArray`` s.  All of them broadcast by
dimension name, so ``x[s] * price[t]`` is an expression over ``(s, t)``.

Arithmetic is tuple concatenation and scaling of coefficient arrays; a sum
over a dimension renames that dimension to a private ``_sum<k>`` one whose
entries become extra terms of each row.  Nothing is handed to linopy until
:meth:`Lin.to_linopy`, which lays every term out in one numpy array and
builds a single ``linopy.LinearExpression`` — one Dataset per statement
instead of one per operation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import linopy
import numpy as np
import pandas as pd
import xarray as xr

_SUM = "_sum"
_counter = itertools.count()


def _dims(x) -> tuple[str, ...]:
    return x.dims if isinstance(x, xr.DataArray) else ()


def _is_zero(x) -> bool:
    return not isinstance(x, xr.DataArray) and np.ndim(x) == 0 and x == 0


@dataclass(frozen=True, slots=True, eq=False)
class Lin:
    """``sum_k coeffs_k * x[labels_k] + const`` over named dims (see the module doc)."""

    model: linopy.Model
    terms: tuple[tuple[xr.DataArray, object], ...]
    const: object = 0.0

    @classmethod
    def of(cls, var: linopy.Variable) -> Lin:
        return cls(var.model, ((var.labels, 1.0),))

    # ------------------------------------------------------------ arithmetic
    def __add__(self, other) -> Lin:
        if isinstance(other, Lin):
            return Lin(self.model, self.terms + other.terms, _plus(self.const, other.const))
        return Lin(self.model, self.terms, _plus(self.const, other))

    __radd__ = __add__

    def __neg__(self) -> Lin:
        return self * -1.0

    def __sub__(self, other) -> Lin:
        return self + (-other)

    def __rsub__(self, other) -> Lin:
        return (-self) + other

    def __mul__(self, k) -> Lin:
        """Scale by a constant (a number or a DataArray)."""
        const = self.const if _is_zero(self.const) else self.const * k
        return Lin(self.model, tuple((labels, c * k) for labels, c in self.terms), const)

    __rmul__ = __mul__

    def __truediv__(self, k) -> Lin:
        return self * (1.0 / k)

    # ------------------------------------------------------------ shape
    @property
    def dims(self) -> tuple[str, ...]:
        """The row dims: every dim of a term or the constant, except summed ones."""
        seen: dict[str, None] = {}
        for labels, c in self.terms:
            for d in (*labels.dims, *_dims(c)):
                if not d.startswith(_SUM):
                    seen[d] = None
        for d in _dims(self.const):
            seen[d] = None
        return tuple(seen)

    def index(self, dim: str) -> pd.Index:
        """The coordinate of a row dim."""
        return next(a.indexes[dim] for a in (*itertools.chain.from_iterable(self.terms), self.const) if dim in _dims(a))

    def _map(self, f) -> Lin:
        """Apply ``f(array, fill)`` to every array that has the dim ``f`` acts on."""
        terms = tuple((f(labels, -1), f(c, 0.0)) for labels, c in self.terms)
        return Lin(self.model, terms, f(self.const, 0.0))

    def shift(self, dim: str, k: int) -> Lin:
        return self._map(lambda a, fill: a.shift({dim: k}, fill_value=fill) if dim in _dims(a) else a)

    def roll(self, dim: str, k: int) -> Lin:
        return self._map(lambda a, fill: a.roll({dim: k}) if dim in _dims(a) else a)

    def isel(self, dim: str, index) -> Lin:
        """Select along ``dim`` (an int or an indexer array) and drop its coordinate."""

        def pick(a, fill):
            if dim not in _dims(a):
                return a
            a = a.isel({dim: index})
            return a.drop_vars(dim) if dim in a.coords else a

        return self._map(pick)

    def where(self, cond: xr.DataArray) -> Lin:
        """Keep the rows where ``cond`` holds; elsewhere the expression is 0."""
        terms = tuple((labels.where(cond, -1), c) for labels, c in self.terms)
        const = self.const if _is_zero(self.const) else xr.where(cond, self.const, 0.0)
        return Lin(self.model, terms, const)

    def sum(self, dim: str | None = None) -> Lin:
        """Sum over ``dim`` (all row dims if None): its entries become extra terms."""
        if dim is None:
            out = self
            for d in self.dims:
                out = out.sum(d)
            return out
        size = next(a.sizes[dim] for a in (*itertools.chain.from_iterable(self.terms), self.const) if dim in _dims(a))
        private = f"{_SUM}{next(_counter)}"
        terms = []
        for labels, c in self.terms:
            if dim not in labels.dims and dim not in _dims(c):
                terms.append((labels, c * size))  # constant along dim: counted once per entry
                continue
            if isinstance(c, xr.DataArray):
                labels, c = xr.broadcast(labels, c)
                c = c.rename({dim: private}).drop_vars(private, errors="ignore")
            labels = labels.rename({dim: private}).drop_vars(private, errors="ignore")
            terms.append((labels, c))
        const = self.const.sum(dim) if dim in _dims(self.const) else self.const * size
        return Lin(self.model, tuple(terms), const)

    def group_sum(self, dim: str, codes: np.ndarray, index: pd.Index) -> Lin | None:
        """``out[g] = sum_{i: codes[i] == g} self[i]`` over ``dim``, on ``index``
        (``codes``: each entry's position in ``index``, -1 to drop it).

        A group's entries become extra terms of its row, padded with absent
        terms to the largest group; None when that padding would more than
        double the terms (a few groups much larger than the rest)."""
        keep = codes >= 0
        counts = np.bincount(codes[keep], minlength=len(index))
        width = int(counts.max(initial=0))
        if width * len(index) > 2 * int(keep.sum()) + len(index):
            return None
        order = np.argsort(np.where(keep, codes, len(index)), kind="stable")[: int(keep.sum())]
        slot = np.arange(len(order)) - (np.cumsum(counts) - counts)[codes[order]]  # rank within the group
        private = f"{_SUM}{next(_counter)}"

        def scatter(a: xr.DataArray, fill) -> xr.DataArray:
            a = a.transpose(dim, ...)
            out = np.full((len(index), max(width, 1), *a.shape[1:]), fill, dtype=a.dtype)
            out[codes[order], slot] = a.values[order]
            return xr.DataArray(out, coords={index.name: index, **{d: a.coords[d] for d in a.dims[1:] if d in a.coords}}, dims=(index.name, private, *a.dims[1:]))

        per_group = xr.DataArray(counts.astype(float), coords={index.name: index}, dims=index.name)
        terms = []
        for labels, c in self.terms:
            if dim not in labels.dims and dim not in _dims(c):
                terms.append((labels, c * per_group))  # the same term for every entry: counted once per member
                continue
            if isinstance(c, xr.DataArray):
                labels, c = xr.broadcast(labels, c)
                c = scatter(c, 0.0)
            terms.append((scatter(labels, -1), c))
        const = self.const
        if dim in _dims(const):
            const = scatter(const, 0.0).sum(private)
        elif not _is_zero(const):
            const = const * per_group
        return Lin(self.model, tuple(terms), const)

    # ------------------------------------------------------------ to linopy
    def to_linopy(self) -> linopy.LinearExpression:
        """One ``LinearExpression`` with every term laid out along ``_term``."""
        coords: dict[str, pd.Index] = {}
        for a in (*itertools.chain.from_iterable(self.terms), self.const):
            for d in _dims(a):
                if not d.startswith(_SUM) and d not in coords:
                    coords[d] = a.indexes[d] if d in a.indexes else pd.RangeIndex(a.sizes[d])
        dims = tuple(coords)
        shape = tuple(len(coords[d]) for d in dims)
        labels_parts, coeff_parts = [], []
        for labels, c in self.terms:
            if isinstance(c, xr.DataArray):
                labels, c = xr.broadcast(labels, c)
            extra = tuple(d for d in labels.dims if d.startswith(_SUM))
            labels_parts.append(_layout(labels, dims, shape, extra))
            coeff_parts.append(_layout(c, dims, shape, extra) if isinstance(c, xr.DataArray) else np.full(labels_parts[-1].shape, float(c)))
        vars_ = np.concatenate(labels_parts, axis=-1) if labels_parts else np.full((*shape, 1), -1)
        coeffs = np.concatenate(coeff_parts, axis=-1) if coeff_parts else np.zeros((*shape, 1))
        const = np.broadcast_to(_layout(self.const, dims, shape, ())[..., 0] if isinstance(self.const, xr.DataArray) else float(self.const), shape)
        coeffs = np.where(vars_ >= 0, coeffs, 0.0)
        data = xr.Dataset(
            {"coeffs": ((*dims, "_term"), coeffs), "vars": ((*dims, "_term"), vars_), "const": (dims, np.array(const, dtype=float))},
            coords={d: coords[d] for d in dims},
        )
        return linopy.LinearExpression(data, self.model)


def _plus(a, b):
    if _is_zero(a):
        return b
    if _is_zero(b):
        return a
    return a + b


def _layout(a: xr.DataArray, dims: tuple[str, ...], shape: tuple[int, ...], extra: tuple[str, ...]) -> np.ndarray:
    """``a`` as a numpy array of ``shape + (product of extra sizes,)``, broadcast by dim name."""
    own = [d for d in dims if d in a.dims]
    values = a.transpose(*own, *extra).values
    expanded = values.reshape([a.sizes[d] if d in a.dims else 1 for d in dims] + [a.sizes[d] for d in extra])
    n_extra = int(np.prod([a.sizes[d] for d in extra])) if extra else 1
    return np.broadcast_to(expanded, (*shape, *[a.sizes[d] for d in extra])).reshape(*shape, n_extra)
