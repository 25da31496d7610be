"""What every backend shares: option checks, silence, the objective, ranges.

* :func:`check_options` -- each option's name is one the backend knows and
  its value has the type the backend expects; mistakes are reported together
  at the option (the study's statement, or ``<command line>``) with the three
  closest names.
* :func:`quiet` -- nothing from a solver's C code or from linopy reaches the
  user unless they asked for the solver's log.
* :func:`ensure_objective` -- a case without cost terms minimises 0.
* :func:`check_ranges` -- a model with a number of 1e15 or more (per unit) is
  refused before solving; :func:`out_of_range` -- where the numbers are
  suspect (|a| > 1e10 or 0 < |a| < 1e-10), the most extreme one and the element
  that wrote it: the likely cause of an "unbounded" or "unknown" ending.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np

from gridlang.compiler.build import Built
from gridlang.errors import COMMAND_LINE, Collector, GridError, Span


#: a coefficient, bound or cost beyond these (in per unit) is suspect when a solve fails
HUGE, TINY = 1e10, 1e-10
#: and at or beyond this, refused before solving: HiGHS refuses a coefficient of
#: 1e15 and answers a case with a cost of 1e19 "optimally" with a cost of 0
LIMIT = 1e15

_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a name or a string"}


# ---------------------------------------------------------------- options


def option_spans(built: Built, cli: Mapping[str, object]) -> dict[str, Span]:
    """Where each option was written: the study's ``name = value``, or the command line."""
    spans = {key: built.case.option_spans.get(key, built.case.system.span) for key in built.case.solver_options}
    return spans | {key: COMMAND_LINE for key in cli}


def coerce(value: object, kind: type) -> object:
    """``value`` as ``kind`` (bool, int, float or str); ValueError if it is not one."""
    if kind is bool:
        if isinstance(value, bool) or (isinstance(value, (int, float)) and value in (0, 1)):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false", "on", "off", "yes", "no", "1", "0"):
            return value.lower() in ("true", "on", "yes", "1")
    elif kind is int:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str:
        return value if isinstance(value, str) else str(value)
    raise ValueError(f"expects {_TYPE_WORDS[kind]}, not {value!r}")


def check_options(
    solver: str, options: Mapping[str, object], spans: Mapping[str, Span], known: Mapping[str, type], what: str = "option", describe=None
) -> dict[str, object]:
    """Every option by a name in ``known`` and with a value of its type; the values coerced.

    ``describe(name)`` may say more about an option for the hint (its range,
    its choices).  All mistakes are raised together."""
    errors, out = Collector(), {}
    for key, value in options.items():
        span = spans.get(key, COMMAND_LINE)
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"see the {solver} {what}s, e.g. {', '.join(list(known)[:4])}"
            errors.add(span, f"{solver} has no {what} '{key}'", hint)
            continue
        try:
            out[key] = coerce(value, known[key])
        except ValueError as exc:
            more = describe(key) if describe else None
            errors.add(span, f"{solver} {what} '{key}' {exc}", f"give {key} {_TYPE_WORDS[known[key]]}" + (f" ({more})" if more else ""))
    errors.raise_if_any()
    return out


# ---------------------------------------------------------------- silence


@contextmanager
def quiet(solver_output: bool = False) -> Iterator[None]:
    """Silence linopy's log and warnings, and, unless ``solver_output``, what
    solvers print from C to file descriptors 1 and 2 (banners, errors)."""
    log = logging.getLogger("linopy")  # its modules' loggers inherit this level
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if solver_output:
                yield
                return
            sys.stdout.flush()
            sys.stderr.flush()
            saved = [os.dup(1), os.dup(2)]
            try:
                with open(os.devnull, "wb") as null:
                    os.dup2(null.fileno(), 1)
                    os.dup2(null.fileno(), 2)
                    yield
            finally:
                for fd, copy in zip((1, 2), saved):
                    os.dup2(copy, fd)
                    os.close(copy)
    finally:
        log.setLevel(level)


# ---------------------------------------------------------------- objective


def ensure_objective(built: Built) -> None:
    """A case without cost terms (every cost empty) minimises 0 instead of failing."""
    m = built.model
    if m.objective.expression.empty and len(m.variables):
        m.add_objective(0 * next(iter(m.variables.items()))[1], overwrite=True)


# ---------------------------------------------------------------- ranges


def check_ranges(built: Built) -> None:
    """Refuse, before any solver sees it, a model with a number at or beyond
    :data:`LIMIT`: solvers refuse such a coefficient (HiGHS) or take such a
    cost or bound for infinite and answer a different problem, "optimally".

    The matrices are the ones linopy hands the solvers; they are built (and
    the number located) only when a quick look at the model's own arrays
    finds one that large."""
    if _largest(built.model) < LIMIT:
        return
    error = out_of_range(built, LIMIT, tiny=False)
    if error is not None:
        raise error


def out_of_range(built: Built, limit: float = HUGE, tiny: bool = True) -> GridError | None:
    """The model's most extreme number, if any is beyond ``limit`` (or, none
    being that large and ``tiny`` set, a nonzero coefficient or cost below
    :data:`TINY`), as an error at the element that wrote it.

    Looks at the matrix, the costs (linear and quadratic), the finite right-hand
    sides and the finite bounds, all in per unit."""
    m = built.model
    if not len(m.variables):
        return None
    mat = m.matrices
    vlabels, clabels = np.asarray(mat.vlabels), np.asarray(mat.clabels) if len(m.constraints) else np.zeros(0, dtype=int)
    candidates = []  # (|value|, value, (what, "var"/"con", label, more))
    A = mat.A.tocoo() if len(m.constraints) and mat.A is not None else None
    if A is not None and A.nnz:
        candidates += _extremes(A.data, lambda i: ("a coefficient in constraint", "con", clabels[A.row[i]], f" (of {_name(m, 'var', vlabels[A.col[i]])})"))
    candidates += _extremes(np.asarray(mat.c, dtype=float), lambda i: ("the cost of", "var", vlabels[i], ""))
    if mat.Q is not None:
        Q = mat.Q.tocoo()
        candidates += _extremes(Q.data, lambda i: ("a quadratic cost of", "var", vlabels[Q.row[i]], ""))
    if len(m.constraints):
        b = np.asarray(mat.b, dtype=float)
        candidates += _extremes(np.where(np.isfinite(b), b, 0.0), lambda i: ("the right-hand side of", "con", clabels[i], ""), tiny=False)
    for side, bound in (("lower", mat.lb), ("upper", mat.ub)):
        bound = np.asarray(bound, dtype=float)
        candidates += _extremes(np.where(np.isfinite(bound), bound, 0.0), lambda i, side=side: (f"the {side} bound of", "var", vlabels[i], ""), tiny=False)
    large = [c for c in candidates if c[0] >= limit]
    small = [c for c in candidates if c[0] < TINY] if tiny else []
    if not (large or small):
        return None
    size, value, (what, kind, label, extra) = max(large, key=lambda c: c[0]) if large else min(small, key=lambda c: c[0])
    name, coord = (m.variables if kind == "var" else m.constraints).get_label_position(int(label))
    where = ", ".join(f"{k}={v}" for k, v in coord.items())
    statement = built.origins.get(name, built.case.system.span)
    element = declared(built, name, coord)
    bound = f"at or above {limit:g}" if large else f"below {TINY:g}"
    return GridError(
        element[1] if element else statement,
        f"the model's numbers are out of range: {what} {name} at ({where}){extra} is {value:.3g} per unit ({bound})",
        (f"{element[0]} at {element[1]}, " if element else "") + f"written by the statement at {statement}: "
        "check the units and values of its parameters (a price, an impedance or a size in the wrong unit)",
    )


def _largest(m) -> float:
    """The largest finite |number| in the model's bounds, coefficients, right-hand
    sides and costs, read from linopy's arrays without assembling matrices (a
    masked entry may count: the screen can only err towards a closer look)."""
    arrays = [a for _, v in m.variables.items() for a in (v.lower.values, v.upper.values)]
    for _, con in m.constraints.items():
        csr = getattr(con, "_csr", None)  # a frozen (sparse) constraint keeps its rows as CSR
        arrays += [csr.data, con._rhs] if csr is not None else [con.coeffs.values, con.rhs.values]
    if m.objective is not None and m.objective.expression is not None:
        arrays.append(m.objective.expression.coeffs.values)
    top = 0.0
    for a in arrays:
        a = np.abs(np.asarray(a, dtype=float).ravel())
        a = a[np.isfinite(a)]
        top = max(top, float(a.max(initial=0.0)))
    return top


def _extremes(values: np.ndarray, describe, tiny: bool = True) -> list:
    """The largest |value| and, if ``tiny``, the smallest nonzero one, each described."""
    a = np.abs(values)
    out = []
    if a.size and a.max() > 0:
        i = int(np.argmax(a))
        out.append((float(a[i]), float(values[i]), describe(i)))
        nonzero = np.flatnonzero(a)
        if tiny:
            j = int(nonzero[np.argmin(a[nonzero])])
            out.append((float(a[j]), float(values[j]), describe(j)))
    return out


def _name(m, kind: str, label: int) -> str:
    name, coord = (m.variables if kind == "var" else m.constraints).get_label_position(int(label))
    return f"{name} at ({', '.join(f'{k}={v}' for k, v in coord.items())})"


def declared(built: Built, name: str, coord: Mapping) -> tuple[str, Span] | None:
    """The element of ``coord`` (a kind's instance, or the network of a bus or
    line) and where it is declared, looking first in ``name``'s own block."""
    prefix = name.split("-", 1)[0]
    for block in sorted(built.blocks, key=lambda b: b.prefix != prefix):
        for dim, value in coord.items():
            if value in block.spans:
                return f"{block.prefix} '{value}'", block.spans[value]
    network = next((n for n in built.case.networks if n.name == prefix), None)
    if network is not None:
        return f"{next(iter(coord), 'network')} '{next(iter(coord.values()), network.name)}' of network '{network.name}'", network.span
    return None
