"""The compiled case as a model file for other solvers: LP, MPS and CBF.

    write_model(built, "case.lp")    # CPLEX LP format
    write_model(built, "case.mps")   # free MPS
    write_model(built, "case.cbf")   # Conic Benchmark Format, version 3

Each file holds the linopy model and the second-order cones kept beside it
(:mod:`gridlang.compiler.cones`), for every problem class (LP, MILP, QP,
MIQP, SOCP, MISOCP):

* **LP** follows linopy's layout and names (``kind_var(coord,...)#label``,
  one term per line); for a model without cones it is the file linopy writes
  with ``explicit_coordinate_names=True``.  Cones are quadratic constraints
  after the linear rows::

      soc:   [ x1 ^2 + x2 ^2 - t ^2 ] <= 0        (t = members[0])
      rsoc:  [ x1 ^2 + x2 ^2 - u * w ] <= 0       (u, w = members[0], members[1])

* **MPS** (free format, the same names) writes each cone as an ``L`` row in
  ``ROWS`` and a ``QCMATRIX`` section with the full symmetric matrix (the
  CPLEX and Gurobi convention, read by SCIP and Xpress too), a quadratic
  objective as ``QUADOBJ`` (upper triangle of ``Q`` in ``1/2 x'Qx``), and
  integer columns between ``MARKER`` lines with explicit bounds.

  In both, the lower bound of ``t``, ``u`` and ``w`` is raised to 0 where it
  is below: the cone implies it, and CPLEX and Gurobi recognise a quadratic
  constraint as a (convex) cone only with these bounds.

* **CBF** states the cones explicitly (``Q`` for ``|x| <= t``, ``QR`` for the
  rotated cone, whose CBF form ``2 x1 x2 >= |x3:n|^2`` gets ``u / 2`` in its
  first row), keeps integers (``INT``), and gives bounds as variable domains
  (``L+`` for a lower bound of 0, ``L-`` for an upper bound of 0) or as rows.
  A quadratic objective cannot be written in CBF (a :class:`GridError`).

The constant part of the cost (``built.offset``) is not written, as in
linopy's files: add it to a solver's objective to get gridlang's.

Everything is built from linopy's sparse matrices and the cone label arrays
with numpy (indices) and polars (text, one expression per block of lines, as
linopy's own writer does); the only Python loops run over variable and
constraint blocks and over the distinct coordinate values of an index.  A
5,000-bus, 24-step DistFlow feeder (0.5 M variables, 0.37 M rows, 0.12 M
cones) is written in a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import polars as pl
import scipy.sparse as sp

from gridlang.compiler.build import Built
from gridlang.compiler.cones import RSOC
from gridlang.errors import GridError

FORMATS = (".lp", ".mps", ".cbf")

_NAME = str.maketrans("-+*^[] ", "_______")  # linopy's clean_name
_COORD = str.maketrans("[]", "()", " ")  # linopy's coordinate sanitiser
_CHUNK = 1_000_000  # lines formatted at once


#: the first line of every model file gridlang writes (a comment in each format), so that
#: it replaces such a file and no other (:func:`gridlang.io.results.check_file`)
WRITTEN_BY = "written by gridlang compile"


def write_model(built: Built, path: str | Path) -> Path:
    """Write the case to ``path`` (``.lp``, ``.mps`` or ``.cbf``), atomically."""
    from gridlang.io.results import write_atomic

    path = Path(path)
    suffix = path.suffix.lower()
    writers = {".lp": write_lp, ".mps": write_mps, ".cbf": write_cbf}
    if suffix not in writers:
        raise GridError(built.case.system.span, f"cannot write '{suffix or path.name}' model files", "use a .lp or .mps file name (any case), or .cbf (conic, no quadratic cost)")
    if suffix == ".cbf":
        _check_cbf(built)

    write_atomic(path, lambda tmp: writers[suffix](built, tmp))
    return path


# ------------------------------------------------------------------ the data


@dataclass(frozen=True, slots=True, eq=False)
class Cones:
    """Every cone of the case, and each as a quadratic form in column positions.

    Cone ``r`` is ``sum_k coef[k] x[i[k]] x[j[k]] <= 0`` over the entries
    ``k`` with ``row[k] == r`` (``i <= j``, duplicates summed); ``kind``,
    ``members`` (positions, padded with -1), ``size`` and ``names`` are per
    cone, in the order of ``built.cones`` and their rows."""

    kind: np.ndarray  # (cones,) SOC or RSOC
    members: np.ndarray  # (cones, width) column positions, -1 past the cone's size
    size: np.ndarray  # (cones,) number of members
    names: pl.Series  # (cones,) row names
    row: np.ndarray  # entries of the quadratic forms, sorted by row, i, j
    i: np.ndarray
    j: np.ndarray
    coef: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)

    def nonnegative(self, n: int) -> np.ndarray:
        """Columns the cones keep non-negative: ``t`` of a cone, ``u`` and ``w`` of a rotated one."""
        out = np.zeros(n, dtype=bool)
        out[self.members[:, 0]] = True
        out[self.members[self.kind == RSOC, 1]] = True
        return out


@dataclass(frozen=True, slots=True, eq=False)
class Problem:
    """The case in column and row positions (linopy's ``matrices`` order): what every writer needs."""

    maximize: bool
    c: np.ndarray
    Q: sp.csr_matrix | None  # symmetric; the objective is c'x + 1/2 x'Qx
    A: sp.csr_matrix
    b: np.ndarray
    sense: np.ndarray  # '=', '<', '>'
    lb: np.ndarray
    ub: np.ndarray
    vtypes: np.ndarray  # 'C', 'B', 'I'
    vnames: pl.Series
    cnames: pl.Series
    cones: Cones

    @property
    def n(self) -> int:
        return len(self.c)


def problem(built: Built, plain_names: bool = False) -> Problem:
    """Collect the matrices, names and cones of a case.

    Names are linopy's explicit names, or with ``plain_names`` ``x<column>``,
    ``c<row>`` and ``k<cone>``, which a solver reads back fastest."""
    m = built.model
    mat = m.matrices
    n = len(mat.vlabels)
    A = sp.csr_matrix(mat.A) if mat.A is not None else sp.csr_matrix((0, n))
    A.sort_indices()
    Q = sp.csr_matrix(mat.Q) if mat.Q is not None and mat.Q.nnz else None
    vlabels, clabels = np.asarray(mat.vlabels), np.asarray(mat.clabels)
    if plain_names:
        vnames, cnames = _plain("x", n), _plain("c", len(clabels))
    else:
        vnames = _names(m.variables.items(), m._xCounter, vlabels)
        cnames = _names(m.constraints.items(), m._cCounter, clabels)
    return Problem(
        maximize=m.objective.sense == "max",
        c=np.asarray(mat.c, dtype=float),
        Q=Q,
        A=A,
        b=np.asarray(mat.b, dtype=float),
        sense=np.asarray(mat.sense, dtype="U1"),
        lb=np.asarray(mat.lb, dtype=float),
        ub=np.asarray(mat.ub, dtype=float),
        vtypes=np.asarray(mat.vtypes, dtype="U1"),
        vnames=vnames,
        cnames=cnames,
        cones=_cones(built, m.variables.label_index.label_to_pos, m._cCounter, plain_names),
    )


def _cones(built: Built, pos: np.ndarray, first_label: int, plain: bool) -> Cones:
    """The cone rows of every block; named like constraints, labels counting on after linopy's."""
    blocks = [(blk, rows) for blk in built.cones if len(rows := blk.rows())]
    width = max((rows.shape[1] for _, rows in blocks), default=0)
    kinds, members, sizes, names = [], [], [], []
    label = first_label
    for blk, rows in blocks:
        count, k = rows.shape
        kinds.append(np.full(count, blk.kind))
        padded = np.full((count, width), -1, dtype=np.int64)
        padded[:, :k] = pos[rows]
        members.append(padded)
        sizes.append(np.full(count, k))
        if not plain:
            coords = blk.coords()
            names.append(_joined(_clean(blk.name), [_coord_texts(coords[c].to_numpy()) for c in coords.columns], label + np.arange(count)))
        label += count
    if not blocks:
        empty = np.zeros(0, dtype=np.int64)
        return Cones(np.zeros(0, dtype="U4"), np.zeros((0, 0), dtype=np.int64), empty, pl.Series([], dtype=pl.String), empty, empty, empty, np.zeros(0))
    kind, member, size = np.concatenate(kinds), np.concatenate(members), np.concatenate(sizes)
    count = len(kind)

    # the quadratic form of each cone: +x^2 for the members under the norm, then -t^2 or -u w
    rotated = kind == RSOC
    first = np.where(rotated, 2, 1)
    cols = np.arange(width)
    r_sq, k_sq = np.nonzero((cols[None, :] >= first[:, None]) & (cols[None, :] < size[:, None]))
    row = np.concatenate([r_sq, np.arange(count)])
    i = np.concatenate([member[r_sq, k_sq], member[:, 0]])
    j = np.concatenate([member[r_sq, k_sq], np.where(rotated, member[:, 1], member[:, 0])])
    coef = np.concatenate([np.ones(len(r_sq)), -np.ones(count)])
    i, j = np.minimum(i, j), np.maximum(i, j)
    order = np.lexsort((j, i, row))
    row, i, j, coef = row[order], i[order], j[order], coef[order]
    new = np.ones(len(row), dtype=bool)
    new[1:] = (row[1:] != row[:-1]) | (i[1:] != i[:-1]) | (j[1:] != j[:-1])
    starts = np.flatnonzero(new)
    coef = np.add.reduceat(coef, starts)
    row, i, j = row[starts], i[starts], j[starts]
    keep = coef != 0
    cone_names = _plain("k", count) if plain else pl.concat(names)
    return Cones(kind, member, size, cone_names, row[keep], i[keep], j[keep], coef[keep])


# ------------------------------------------------------------------ names


def _clean(name: str) -> str:
    return name.translate(_NAME)


def _plain(prefix: str, count: int) -> pl.Series:
    return pl.select(pl.concat_str([pl.lit(prefix), pl.int_range(count, dtype=pl.Int64).cast(pl.String)])).to_series()


def _coord_text(value) -> str:
    if isinstance(value, tuple | list):  # a MultiIndex level tuple
        return f"({','.join(str(v) for v in value)})".translate(_COORD)
    return str(value).translate(_COORD)


def _coord_texts(values: np.ndarray) -> pl.Series:
    """Coordinate values as linopy prints them: ``str``, spaces removed, ``[]`` as ``()``."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), sort=False)
    return pl.Series([_coord_text(v) for v in uniques], dtype=pl.String).gather(codes)


def _joined(base: str, coords: list[pl.Series], labels: np.ndarray) -> pl.Series:
    """``base(c1,c2,...)#label`` for every element (``base#label`` without coordinates)."""
    data = {f"d{k}": text for k, text in enumerate(coords)}
    data["label"] = labels
    parts: list = [pl.lit(base)]
    if coords:
        parts.append(pl.lit("("))
        for k in range(len(coords)):
            parts += [pl.lit(",")] if k else []
            parts.append(pl.col(f"d{k}"))
        parts.append(pl.lit(")"))
    parts += [pl.lit("#"), pl.col("label").cast(pl.String)]
    return pl.DataFrame(data).select(pl.concat_str(parts).alias("name")).to_series()


def _names(items, counter: int, wanted: np.ndarray) -> pl.Series:
    """linopy's explicit names (``name(coord,...)#label``) of the labels ``wanted``."""
    labels, names = [], []
    for name, item in items:
        array = item.labels
        values = np.asarray(array.values)
        flat = values.ravel()
        active = np.flatnonzero(flat >= 0)
        if not len(active):
            continue
        where = np.unravel_index(active, values.shape)
        coords = [_coord_texts(_index_values(array, dim)).gather(where[axis]) for axis, dim in enumerate(array.dims)]
        labels.append(flat[active])
        names.append(_joined(_clean(name), coords, flat[active]))
    if not labels:
        return pl.Series([], dtype=pl.String)
    at = np.full(counter, -1, dtype=np.int64)
    at[np.concatenate(labels)] = np.arange(sum(len(a) for a in labels))
    return pl.concat(names).gather(at[wanted])


def _index_values(labels, dim) -> np.ndarray:
    if dim in labels.indexes:
        index = labels.indexes[dim]
        return np.asarray(index.to_flat_index() if isinstance(index, pd.MultiIndex) else index, dtype=object)
    return np.arange(labels.sizes[dim], dtype=object)


# ------------------------------------------------------------------ text


def _num(col: str, zero: bool = True) -> pl.Expr:
    """Shortest round-trip text of a float column, as linopy writes it (with ``zero``, -0 as ``0.0``)."""
    text = pl.col(col).cast(pl.String)
    return pl.when(pl.col(col) == 0).then(pl.lit("0.0")).otherwise(text) if zero else text


def _signed(col: str) -> pl.Expr:
    return pl.concat_str([pl.when(pl.col(col) >= 0).then(pl.lit("+")).otherwise(pl.lit("")), _num(col)])


def _int(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.String)


def _emit(f: BinaryIO, data: dict, parts: list) -> None:
    """One line per row of ``data``: the concatenation of ``parts`` (a str is a literal; null parts vanish)."""
    frame = pl.DataFrame(data)
    exprs = [pl.lit(p) if isinstance(p, str) else p for p in parts]
    for start in range(0, frame.height, _CHUNK):
        lines = frame.slice(start, _CHUNK).lazy().select(pl.concat_str(exprs, ignore_nulls=True).alias("line")).collect()
        lines.write_csv(f, include_header=False, quote_style="never")


def _nulls(count: int) -> pl.Series:
    return pl.repeat(None, count, dtype=pl.String, eager=True)


def _edges(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last entry of each run of equal rows."""
    first = np.ones(len(row), dtype=bool)
    first[1:] = row[1:] != row[:-1]
    last = np.ones(len(row), dtype=bool)
    last[:-1] = first[1:]
    return first, last


def _rows_of(A: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, value) of every entry; a row without entries gets one zero on column 0."""
    counts = np.diff(A.indptr)
    row = np.repeat(np.arange(A.shape[0]), counts)
    col, val = A.indices.astype(np.int64), A.data.astype(float)
    empty = np.flatnonzero(counts == 0)
    if len(empty) and A.shape[1]:
        row = np.concatenate([row, empty])
        order = np.argsort(row, kind="stable")
        row = row[order]
        col = np.concatenate([col, np.zeros(len(empty), dtype=np.int64)])[order]
        val = np.concatenate([val, np.zeros(len(empty))])[order]
    return row, col, val


def _lower_bounds(p: Problem) -> np.ndarray:
    """Lower bounds with the cones' non-negative members raised to 0."""
    lb = p.lb.copy()
    if len(p.cones):
        heads = p.cones.nonnegative(p.n)
        lb[heads] = np.maximum(lb[heads], 0.0)
    return lb


def _runs(domains: np.ndarray) -> list[tuple[str, int]]:
    """Run-length encoding of a domain per row or column."""
    if not len(domains):
        return []
    change = np.flatnonzero(domains[1:] != domains[:-1]) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [len(domains)]]))
    return list(zip(domains[starts].tolist(), lengths.tolist()))


# ------------------------------------------------------------------ LP


def write_lp(built: Built, path: str | Path, plain_names: bool = False) -> None:
    """CPLEX LP format in linopy's layout; cones as quadratic constraints."""
    p = problem(built, plain_names)
    with open(path, "wb") as f:
        _lp(p, f)


def _lp(p: Problem, f: BinaryIO) -> None:
    vn = p.vnames
    f.write(f"\\ {WRITTEN_BY}\n{'max' if p.maximize else 'min'}\n\nobj:\n\n".encode())
    nz = np.flatnonzero(p.c)
    _emit(f, {"v": p.c[nz], "x": vn.gather(nz)}, [_signed("v"), " ", pl.col("x")])
    if p.Q is not None:  # [ sum_i Q_ii x_i^2 + sum_i<j 2 Q_ij x_i x_j ] / 2
        upper = sp.triu(p.Q, format="coo")
        order = np.lexsort((upper.col, upper.row))
        i, j, q = upper.row[order], upper.col[order], upper.data[order]
        f.write(b"+ [\n")
        _emit(f, {"v": np.where(i == j, q, 2 * q), "a": vn.gather(i), "b": vn.gather(j)}, [_signed("v"), " ", pl.col("a"), " * ", pl.col("b")])
        f.write(b"] / 2\n")

    cones = p.cones
    if p.A.shape[0] or len(cones):
        f.write(b"\n\ns.t.\n\n")
    if p.A.shape[0]:
        row, col, val = _rows_of(p.A)
        first, last = _edges(row)
        symbol = np.select([p.sense == "<", p.sense == ">"], ["<=", ">="], "=")
        data = {"first": first, "last": last, "head": p.cnames.gather(row), "v": val, "x": vn.gather(col), "sym": symbol[row], "rhs": p.b[row]}
        _emit(f, data, [
            pl.when("first").then(pl.concat_str([pl.col("head"), pl.lit(":\n")])),
            _signed("v"), " ", pl.col("x"),
            pl.when("last").then(pl.concat_str([pl.lit("\n"), pl.col("sym"), pl.lit(" "), _num("rhs", zero=False)])),
        ])
    if len(cones):
        first, last = _edges(cones.row)
        data = {"first": first, "last": last, "head": cones.names.gather(cones.row), "v": cones.coef, "a": vn.gather(cones.i), "b": vn.gather(cones.j), "sq": cones.i == cones.j}
        _emit(f, data, [
            pl.when("first").then(pl.concat_str([pl.col("head"), pl.lit(":\n[\n")])),
            _signed("v"), " ", pl.col("a"),
            pl.when("sq").then(pl.lit(" ^2")).otherwise(pl.concat_str([pl.lit(" * "), pl.col("b")])),
            pl.when("last").then(pl.lit("\n]\n<= 0.0")),
        ])

    lb = _lower_bounds(p)
    plain_binary = (p.vtypes == "B") & (lb == 0) & (p.ub == 1)
    rank = np.select([p.vtypes == "C", p.vtypes == "I"], [0, 1], 2)  # linopy's order
    cols = np.flatnonzero(~plain_binary)
    cols = cols[np.argsort(rank[cols], kind="stable")]
    if len(cols):
        f.write(b"\n\nbounds\n\n")
        _emit(f, {"lb": lb[cols], "x": vn.gather(cols), "ub": p.ub[cols]}, [_signed("lb"), " <=  ", pl.col("x"), " <= ", _signed("ub")])
    for label, kind in (("binary", "B"), ("general", "I")):
        cols = np.flatnonzero(p.vtypes == kind)
        if len(cols):
            f.write(f"\n\n{label}\n\n".encode())
            _emit(f, {"x": vn.gather(cols)}, [" ", pl.col("x")])
    f.write(b"end\n")


# ------------------------------------------------------------------ MPS


def write_mps(built: Built, path: str | Path, plain_names: bool = False) -> None:
    """Free MPS; cones as ``QCMATRIX`` rows, a quadratic objective as ``QUADOBJ``."""
    p = problem(built, plain_names)
    with open(path, "wb") as f:
        _mps(p, f, _clean(built.case.system.name) or "gridlang")


def _mps(p: Problem, f: BinaryIO, name: str) -> None:
    vn, cn, cones = p.vnames, p.cnames, p.cones
    n = p.n
    f.write(f"* {WRITTEN_BY}\nNAME {name}\nOBJSENSE\n    {'MAX' if p.maximize else 'MIN'}\nROWS\n N  obj\n".encode())
    kind = np.select([p.sense == "<", p.sense == ">"], ["L", "G"], "E")
    _emit(f, {"k": kind, "r": cn}, [" ", pl.col("k"), "  ", pl.col("r")])
    _emit(f, {"r": cones.names}, [" L  ", pl.col("r")])

    # COLUMNS: objective and matrix entries column by column (every column at
    # least once), integer columns between markers
    f.write(b"COLUMNS\n")
    A = sp.csc_matrix(p.A)
    A.sort_indices()
    counts = np.diff(A.indptr)
    o_col = np.flatnonzero((p.c != 0) | (counts == 0))
    col = np.concatenate([o_col, np.repeat(np.arange(n), counts)])
    order = np.argsort(col, kind="stable")
    rows = pl.concat([pl.repeat("obj", len(o_col), dtype=pl.String, eager=True), cn.gather(A.indices)]).gather(order)
    val = np.concatenate([p.c[o_col], A.data.astype(float)])[order]
    col = col[order]
    data = {"key": col.astype(float), "x": vn.gather(col), "r": rows, "v": val, "marker": _nulls(len(col))}
    frame = pl.DataFrame(data)
    integer = np.isin(p.vtypes, ["B", "I"])
    if integer.any():
        edge = np.diff(np.concatenate([[0], integer.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1) - 1
        ids = np.arange(len(starts)).astype(str)
        markers = pl.DataFrame({
            "key": np.concatenate([starts - 0.5, ends + 0.5]),
            "x": _nulls(2 * len(starts)),
            "r": _nulls(2 * len(starts)),
            "v": np.zeros(2 * len(starts)),
            "marker": np.concatenate([np.char.add(np.char.add("    M", ids), "  'MARKER'  'INTORG'"), np.char.add(np.char.add("    M", ids), "E  'MARKER'  'INTEND'")]),
        })
        frame = pl.concat([frame, markers]).sort("key", maintain_order=True)
    _emit(f, frame.to_dict(), [pl.coalesce(pl.col("marker"), pl.concat_str([pl.lit("    "), pl.col("x"), pl.lit("  "), pl.col("r"), pl.lit("  "), _num("v")]))])

    f.write(b"RHS\n")
    nz = np.flatnonzero(p.b)
    _emit(f, {"r": cn.gather(nz), "v": p.b[nz]}, ["    RHS  ", pl.col("r"), "  ", _num("v")])

    f.write(b"BOUNDS\n")
    cols, codes, values = _mps_bounds(p.lb if not len(cones) else _lower_bounds(p), p.ub, integer)
    _emit(f, {"x": vn.gather(cols), "k": codes, "v": values}, [" ", pl.col("k"), " BND  ", pl.col("x"), pl.when(pl.col("v").is_not_nan()).then(pl.concat_str([pl.lit("  "), _num("v")]))])

    if p.Q is not None:  # upper triangle of Q in 1/2 x'Qx
        f.write(b"QUADOBJ\n")
        upper = sp.triu(p.Q, format="coo")
        order = np.lexsort((upper.row, upper.col))
        i, j = upper.row[order], upper.col[order]
        _emit(f, {"a": vn.gather(i), "b": vn.gather(j), "v": upper.data[order]}, ["    ", pl.col("a"), "  ", pl.col("b"), "  ", _num("v")])
    if len(cones):  # the full symmetric matrix: a product a x_i x_j is a/2 at (i, j) and at (j, i)
        off = cones.i != cones.j
        row = np.concatenate([cones.row, cones.row[off]])
        i = np.concatenate([cones.i, cones.j[off]])
        j = np.concatenate([cones.j, cones.i[off]])
        coef = np.concatenate([np.where(off, cones.coef / 2, cones.coef), cones.coef[off] / 2])
        order = np.lexsort((j, i, row))
        row, i, j, coef = row[order], i[order], j[order], coef[order]
        first, _ = _edges(row)
        data = {"first": first, "head": cones.names.gather(row), "a": vn.gather(i), "b": vn.gather(j), "v": coef}
        _emit(f, data, [
            pl.when("first").then(pl.concat_str([pl.lit("QCMATRIX   "), pl.col("head"), pl.lit("\n")])),
            "    ", pl.col("a"), "  ", pl.col("b"), "  ", _num("v"),
        ])
    f.write(b"ENDATA\n")


def _mps_bounds(lb: np.ndarray, ub: np.ndarray, integer: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(column, bound type, value or NaN) of every bound line, by column.

    A lower bound of 0 and an infinite upper bound are MPS's defaults; an
    integer column gets both of its bounds written, as some readers give
    integers without bounds other defaults, and so does a column whose upper
    bound is negative."""
    fin_lb, fin_ub = np.isfinite(lb), np.isfinite(ub)
    fixed = fin_lb & (lb == ub)
    binary = integer & (lb == 0) & (ub == 1)
    free = ~fin_lb & ~fin_ub
    rest = ~fixed & ~binary & ~free
    nan = np.full(len(lb), np.nan)
    parts = [
        (fixed, "FX", lb),
        (binary & ~fixed, "BV", nan),
        (free, "FR", nan),
        (rest & ~fin_lb, "MI", nan),
        (rest & fin_lb & ((lb != 0) | integer | (ub < 0)), "LO", lb),  # (a reader may take UP < 0 alone as MI)
        (rest & fin_ub, "UP", ub),
        (rest & integer & ~fin_ub, "PL", nan),
    ]
    cols = np.concatenate([np.flatnonzero(mask) for mask, _, _ in parts])
    codes = np.concatenate([np.full(int(mask.sum()), code) for mask, code, _ in parts])
    values = np.concatenate([v[mask] for mask, _, v in parts])
    order = np.argsort(cols, kind="stable")
    return cols[order], codes[order], values[order]


# ------------------------------------------------------------------ CBF


def _check_cbf(built: Built) -> None:
    Q = built.model.matrices.Q
    if Q is not None and Q.nnz:
        raise GridError(
            built.case.system.span,
            "a quadratic objective cannot be written in CBF",
            "CBF objectives are linear: write .lp or .mps, or state the quadratic cost through a cone (p^2 <= c * s with a cost on s)",
        )


def write_cbf(built: Built, path: str | Path) -> None:
    """Conic Benchmark Format 3: domains, integers, linear rows and explicit Q / QR cones."""
    _check_cbf(built)
    p = problem(built, plain_names=True)
    with open(path, "wb") as f:
        _cbf(p, f)


def cbf_domains(p: Problem) -> np.ndarray:
    """The CBF domain of each column: ``L+`` (lower bound 0), ``L-`` (upper bound 0) or ``F``."""
    fixed = p.lb == p.ub
    return np.select([~fixed & (p.lb == 0), ~fixed & (p.ub == 0)], ["L+", "L-"], "F")


def _cbf(p: Problem, f: BinaryIO) -> None:
    n, m, cones = p.n, p.A.shape[0], p.cones
    domain = cbf_domains(p)
    var_runs = _runs(domain)
    head = ["VER", "3", "# written by gridlang: rows are the linear constraints, then bounds, then one cone per cone row", "", "OBJSENSE", "MAX" if p.maximize else "MIN", "", "VAR", f"{n} {len(var_runs)}"]
    head += [f"{d} {k}" for d, k in var_runs]
    f.write(("\n".join(head) + "\n").encode())
    integer = np.flatnonzero(np.isin(p.vtypes, ["B", "I"]))
    if len(integer):
        f.write(f"\nINT\n{len(integer)}\n".encode())
        _emit(f, {"j": integer}, [_int("j")])

    # rows: A x - b in L= / L- / L+; bounds the domains do not give; x - v in L= for fixed columns; cones
    fixed = p.lb == p.ub
    blocks = [(np.arange(m), None, np.select([p.sense == "<", p.sense == ">"], ["L-", "L+"], "L="), -p.b)]
    for cols, dom, const in (
        (np.flatnonzero(np.isfinite(p.lb) & ~fixed & (domain != "L+")), "L+", -p.lb),
        (np.flatnonzero(np.isfinite(p.ub) & ~fixed & (domain != "L-")), "L-", -p.ub),
        (np.flatnonzero(fixed), "L=", -p.lb),
    ):
        blocks.append((cols, cols, np.full(len(cols), dom), const[cols]))
    coo = p.A.tocoo()
    rows, cols, vals, consts, doms = [coo.row.astype(np.int64)], [coo.col.astype(np.int64)], [coo.data.astype(float)], [], []
    start = 0
    for index, bound_cols, dom, const in blocks:
        if bound_cols is not None:
            rows.append(start + np.arange(len(bound_cols)))
            cols.append(bound_cols)
            vals.append(np.ones(len(bound_cols)))
        consts.append(const)
        doms.append(dom)
        start += len(index)
    con_runs = _runs(np.concatenate(doms))
    cone_lines = pl.Series([], dtype=pl.String)
    if len(cones):
        offsets = start + np.concatenate([[0], np.cumsum(cones.size)[:-1]])
        r_idx, k_idx = np.nonzero(np.arange(cones.members.shape[1])[None, :] < cones.size[:, None])
        rows.append(offsets[r_idx] + k_idx)
        cols.append(cones.members[r_idx, k_idx])
        # CBF's rotated cone is 2 x1 x2 >= |x3:n|^2, so its first row is u / 2
        vals.append(np.where((cones.kind[r_idx] == RSOC) & (k_idx == 0), 0.5, 1.0))
        consts.append(np.zeros(int(cones.size.sum())))
        cone_lines = pl.DataFrame({"q": np.where(cones.kind == RSOC, "QR", "Q"), "k": cones.size}).select(pl.concat_str([pl.col("q"), pl.lit(" "), _int("k")])).to_series()
        start += int(cones.size.sum())
    if start:
        f.write(f"\nCON\n{start} {len(con_runs) + len(cone_lines)}\n".encode())
        f.write("".join(f"{d} {k}\n" for d, k in con_runs).encode())
        _emit(f, {"line": cone_lines}, [pl.col("line")])

    nz = np.flatnonzero(p.c)
    if len(nz):
        f.write(f"\nOBJACOORD\n{len(nz)}\n".encode())
        _emit(f, {"j": nz, "v": p.c[nz]}, [_int("j"), " ", _num("v")])
    row, col, val = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    keep = val != 0
    order = np.lexsort((col[keep], row[keep]))
    if len(order):
        f.write(f"\nACOORD\n{len(order)}\n".encode())
        _emit(f, {"i": row[keep][order], "j": col[keep][order], "v": val[keep][order]}, [_int("i"), " ", _int("j"), " ", _num("v")])
    const = np.concatenate(consts)
    nz = np.flatnonzero(const)
    if len(nz):
        f.write(f"\nBCOORD\n{len(nz)}\n".encode())
        _emit(f, {"i": nz, "v": const[nz]}, [_int("i"), " ", _num("v")])


__all__ = ["FORMATS", "Cones", "Problem", "cbf_domains", "problem", "write_cbf", "write_lp", "write_model", "write_mps"]
