"""MATPOWER case files (``.m``), read without running them.

:func:`read_matpower` reads ``mpc.baseMVA``, ``mpc.bus``, ``mpc.gen``,
``mpc.branch`` and ``mpc.gencost`` into a :class:`MatpowerCase`.  Matrix
cells may be numbers or arithmetic on numbers (``12/sqrt(3)``); rows end at
``;`` or at the end of a line; ``%`` starts a comment and ``...`` continues a
line, as in MATLAB.

Distribution cases end with MATLAB code that converts their data into
MATPOWER's units, e.g. (case33bw.m)::

    Vbase = mpc.bus(1, BASE_KV) * 1e3;      %% in Volts
    Sbase = mpc.baseMVA * 1e6;              %% in VA
    mpc.branch(:, [BR_R BR_X]) = mpc.branch(:, [BR_R BR_X]) / (Vbase^2 / Sbase);
    mpc.bus(:, [PD, QD]) = mpc.bus(:, [PD, QD]) / 1e3;

The reader understands the statements these files use: ``[...] = idx_bus``
(and ``idx_brch``, ``idx_gen``, ``idx_cost``), assignments of numbers to
variables, and columns set to a column times or over a number.  Each
column statement is kept as a :class:`Conversion` and classified (ohm to
p.u., kW to MW, a power factor applied to apparent power, or another
scaling), so the importer can write the data in the units the file holds
them in.  Any other statement is left alone and reported in
``MatpowerCase.warnings`` with its file and line.  A malformed file raises
:class:`~gridlang.errors.GridError` at the offending position.

:func:`to_grid` writes a case as ``.grid`` text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from gridlang.errors import SOURCES, Collector, GridError, Span
from gridlang.io.gridtext import Branch, Bus, Feeder, Generator, Imported, Load, Supply, dropped, grid_name, num, summary, write_grid

# ------------------------------------------------------------------ columns (0-based)
BUS_I, BUS_TYPE, PD, QD, GS, BS, BUS_AREA, VM, VA, BASE_KV, ZONE, VMAX, VMIN = range(13)
GEN_BUS, PG, QG, QMAX, QMIN, VG, MBASE, GEN_STATUS, PMAX, PMIN = range(10)
F_BUS, T_BUS, BR_R, BR_X, BR_B, RATE_A, RATE_B, RATE_C, TAP, SHIFT, BR_STATUS = range(11)
MODEL, STARTUP, SHUTDOWN, NCOST, COST = range(5)
REF, ISOLATED = 3, 4

#: what MATPOWER's idx_* functions return, in their output order (1-based as in MATLAB)
_IDX: dict[str, tuple[tuple[str, int], ...]] = {
    "idx_bus": tuple(
        zip(
            "PQ PV REF NONE BUS_I BUS_TYPE PD QD GS BS BUS_AREA VM VA BASE_KV ZONE VMAX VMIN LAM_P LAM_Q MU_VMAX MU_VMIN".split(),
            (1, 2, 3, 4, *range(1, 18)),
        )
    ),
    "idx_brch": tuple(
        zip(
            "F_BUS T_BUS BR_R BR_X BR_B RATE_A RATE_B RATE_C TAP SHIFT BR_STATUS PF QF PT QT MU_SF MU_ST ANGMIN ANGMAX MU_ANGMIN MU_ANGMAX".split(),
            (*range(1, 12), 14, 15, 16, 17, 18, 19, 12, 13, 20, 21),
        )
    ),
    "idx_gen": tuple(
        zip(
            "GEN_BUS PG QG QMAX QMIN VG MBASE GEN_STATUS PMAX PMIN MU_PMAX MU_PMIN MU_QMAX MU_QMIN PC1 PC2 QC1MIN QC1MAX QC2MIN QC2MAX RAMP_AGC RAMP_10 RAMP_30 RAMP_Q APF".split(),
            (*range(1, 11), 22, 23, 24, 25, *range(11, 22)),
        )
    ),
    "idx_cost": tuple(zip("PW_LINEAR POLYNOMIAL MODEL STARTUP SHUTDOWN NCOST COST".split(), (1, 2, 1, 2, 3, 4, 5))),
}

_MIN_COLUMNS = {"bus": 13, "gen": 10, "branch": 11, "gencost": 5}
_CONSTANTS = {"pi": math.pi, "Inf": math.inf, "inf": math.inf, "NaN": math.nan, "nan": math.nan, "eps": 2.0**-52, "true": 1.0, "false": 0.0}
_FUNCTIONS = {
    name: getattr(math, name) for name in ("sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "exp", "log", "log10", "floor", "ceil")
} | {"abs": abs, "round": lambda v: float(np.round(v))}
_HINT = "a MATPOWER case holds 'mpc.NAME = [ ... ];' matrices of numbers, one row per line or ending in ';'"


@dataclass(frozen=True, slots=True)
class Conversion:
    """A statement ``mpc.F(:, targets) = mpc.F(:, sources) * factor`` of the file's trailing code.

    ``kind`` is ``ohm_to_pu`` (branch r, x divided by ``vbase_kv^2 / baseMVA``),
    ``kw_to_mw`` (bus Pd, Qd divided by 1000), ``power_factor`` (Qd from Pd
    and Pd scaled, for loads given as apparent power) or ``scale``.
    """

    kind: str
    field: str
    targets: tuple[int, ...]  # 0-based columns written
    sources: tuple[int, ...]  # 0-based columns read
    factor: float
    line: int
    text: str
    vbase_kv: float | None = None

    def apply(self, array: np.ndarray) -> np.ndarray:
        out = array.copy()
        out[:, list(self.targets)] = array[:, list(self.sources)] * self.factor
        return out


@dataclass(frozen=True, slots=True)
class MatpowerCase:
    """The data of a MATPOWER case as the file holds it, and the file's unit conversions.

    ``bus``, ``gen``, ``branch`` and ``gencost`` are the matrices as written
    (before the trailing code); :meth:`converted` applies ``conversions`` and
    gives MATPOWER's own units (MW, Mvar, p.u.).  ``rows`` holds the source
    line of every matrix row; ``warnings`` the statements that were not
    understood, as ``file:line: ...`` texts.
    """

    path: str
    base_mva: float
    bus: np.ndarray
    gen: np.ndarray
    branch: np.ndarray
    gencost: np.ndarray | None = None
    conversions: tuple[Conversion, ...] = ()
    warnings: tuple[str, ...] = ()
    rows: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def impedance_unit(self) -> str:
        """``ohm`` if the file's branch r and x are in ohm (converted by its code), else ``p.u.``."""
        return "ohm" if any(c.kind == "ohm_to_pu" for c in self.conversions) else "p.u."

    @property
    def load_unit(self) -> str:
        """``kW`` if the file's Pd and Qd are in kW and kvar (converted by its code), else ``MW``."""
        return "kW" if any(c.kind == "kw_to_mw" for c in self.conversions) else "MW"

    def converted(self) -> MatpowerCase:
        """The case after its conversion statements: MW, Mvar and p.u., as MATPOWER sees it."""
        arrays = {"bus": self.bus, "gen": self.gen, "branch": self.branch, "gencost": self.gencost}
        for c in self.conversions:
            arrays[c.field] = c.apply(arrays[c.field])
        return replace(self, conversions=(), **arrays)


def read_matpower(path: str | Path) -> MatpowerCase:
    """Read a MATPOWER case file."""
    p = Path(path)
    if not p.is_file():
        raise GridError(Span(str(path), 0, 0), f"no such MATPOWER case file: {path}", "give the path of a .m case file")
    return parse_matpower(p.read_text(encoding="utf-8", errors="replace"), str(path))


def parse_matpower(text: str, path: str = "<string>") -> MatpowerCase:
    """Read a MATPOWER case from its text; ``path`` names it in messages."""
    SOURCES[path] = text
    reader = _Reader(path, text)
    for statement in _statements(_tokens(text, path), path):
        reader.statement(statement)
    return reader.case()


# ------------------------------------------------------------------ tokens and statements


class _Tok(NamedTuple):
    kind: str  # num, name, str, op, punct, newline
    text: str
    line: int
    col: int
    space: bool  # whitespace (or a line start) before it


_TOKEN = re.compile(
    r"(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eEdD][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)"
    r"|(?P<op>==|~=|<=|>=|&&|\|\||\.\*|\./|\.\^|\.\\|[-+*/\\^=<>&|~:@!])"
    r"|(?P<punct>[()\[\]{},;])"
)
_OPERAND_END = ("num", "name", "str")


def _tokens(text: str, path: str) -> list[_Tok]:
    toks: list[_Tok] = []
    depth = 0  # inside [ ] or { }, where a quote after a space starts a string
    block = False
    for ln, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if block or stripped == "%{":
            block = stripped != "%}"
            continue
        pos, space, continued = 0, True, False
        while pos < len(line):
            c = line[pos]
            if c in " \t\r\f\v":
                space, pos = True, pos + 1
                continue
            if c == "%":
                break
            if line.startswith("...", pos):
                continued = True
                break
            prev = toks[-1] if toks and toks[-1].line == ln else None
            if c == '"' or (c == "'" and (prev is None or not (prev.kind in _OPERAND_END or prev.text in ")]}'") or (space and depth > 0))):
                end = pos + 1
                while True:
                    end = line.find(c, end)
                    if end < 0:
                        raise GridError(Span(path, ln, pos + 1), "this string is not closed", f"end it with {c}")
                    if line.startswith(c * 2, end):
                        end += 2
                        continue
                    break
                toks.append(_Tok("str", line[pos + 1 : end].replace(c * 2, c), ln, pos + 1, space))
                space, pos = False, end + 1
                continue
            if c == "'":
                toks.append(_Tok("op", "'", ln, pos + 1, space))
                space, pos = False, pos + 1
                continue
            m = _TOKEN.match(line, pos)
            if m is None:
                raise GridError(Span(path, ln, pos + 1), f"unexpected character '{c}'", _HINT)
            kind = m.lastgroup or "op"
            toks.append(_Tok(kind, m.group(), ln, pos + 1, space))
            if kind == "punct":
                depth += (c in "[{") - (c in "]}")
            space, pos = False, m.end()
        if not continued:
            toks.append(_Tok("newline", "\n", ln, len(line) + 1, True))
    return toks


_PAIRS = {")": "(", "]": "[", "}": "{"}


def _statements(toks: list[_Tok], path: str) -> list[list[_Tok]]:
    """Split at ``;``, ``,`` and line ends outside brackets; check that brackets pair up."""
    out: list[list[_Tok]] = []
    current: list[_Tok] = []
    stack: list[_Tok] = []
    for t in toks:
        if t.kind == "punct" and t.text in "([{":
            stack.append(t)
        elif t.kind == "punct" and t.text in ")]}":
            if not stack or stack[-1].text != _PAIRS[t.text]:
                what = f"does not match the '{stack[-1].text}' opened at {stack[-1].line}:{stack[-1].col}" if stack else "closes nothing"
                raise GridError(Span(path, t.line, t.col), f"'{t.text}' {what}", "check the brackets of this statement")
            stack.pop()
        if not stack and (t.kind == "newline" or (t.kind == "punct" and t.text in ";,")):
            if current:
                out.append(current)
                current = []
            continue
        current.append(t)
    if stack:
        first = stack[0]
        what = "matrix" if first.text == "[" else "bracket"
        close = {"[": "];", "(": ")", "{": "};"}[first.text]
        raise GridError(Span(path, first.line, first.col), f"this {what} is never closed", f"end it with '{close}'")
    if current:
        out.append(current)
    return out


# ------------------------------------------------------------------ values


class _Unsupported(Exception):
    """A statement or cell the reader does not understand, at ``tok``."""

    def __init__(self, tok: _Tok | None, message: str) -> None:
        super().__init__(message)
        self.tok = tok
        self.message = message


@dataclass(frozen=True, slots=True)
class _Cols:
    """``mpc.F(:, cols) * factor``: whole columns of a matrix, scaled."""

    field: str
    cols: tuple[int, ...]
    factor: float = 1.0


@dataclass(frozen=True, slots=True)
class _Vec:
    """``[a b c]`` used as an index list."""

    items: tuple[float, ...]


_COLON = object()


def _numbers(v, tok: _Tok, message: str) -> list[float]:
    """A parsed value as numbers: a vector's items or one number."""
    if isinstance(v, _Vec):
        return list(v.items)
    if isinstance(v, float):
        return [v]
    raise _Unsupported(tok, message)


def _arith(op: str, a, b, tok: _Tok):
    op = op.lstrip(".")
    if isinstance(a, float) and isinstance(b, float):
        try:
            return {"+": a + b, "-": a - b, "*": a * b}[op] if op in "+-*" else a / b if op == "/" else math.pow(a, b)
        except (ZeroDivisionError, OverflowError, ValueError):
            if op == "/":
                return math.copysign(math.inf, a) if a else math.nan
            raise _Unsupported(tok, f"cannot compute {a:g} {op} {b:g}") from None
    if op == "*" and isinstance(a, _Cols) and isinstance(b, float):
        return replace(a, factor=a.factor * b)
    if op == "*" and isinstance(a, float) and isinstance(b, _Cols):
        return replace(b, factor=b.factor * a)
    if op == "/" and isinstance(a, _Cols) and isinstance(b, float) and b != 0:
        return replace(a, factor=a.factor / b)
    raise _Unsupported(tok, "only whole columns times or over a number are understood")


class _Parser:
    """Expressions over a token list, MATLAB precedence; ``matrix`` mode splits elements at spaces."""

    def __init__(self, toks: list[_Tok], reader: _Reader, matrix: bool = False) -> None:
        self.toks = toks
        self.i = 0
        self.reader = reader
        self.modes = [matrix]

    def peek(self, k: int = 0) -> _Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> _Tok:
        t = self.peek()
        if t is None:
            raise _Unsupported(self.toks[-1] if self.toks else None, "the expression ends too early")
        self.i += 1
        return t

    def expect(self, text: str) -> None:
        t = self.peek()
        if t is None or t.text != text:
            raise _Unsupported(t or (self.toks[-1] if self.toks else None), f"expected '{text}'")
        self.i += 1

    def done(self) -> bool:
        return self.i >= len(self.toks)

    def _binary(self, ops: tuple[str, ...]) -> bool:
        t = self.peek()
        if t is None or t.kind != "op" or t.text not in ops:
            return False
        if self.modes[-1] and t.text in "+-" and t.space:
            after = self.peek(1)
            if after is not None and not after.space:
                return False  # `1 -2` in a matrix: a new element
        return True

    def expr(self):
        v = self.term()
        while self._binary(("+", "-")):
            t = self.take()
            v = _arith(t.text, v, self.term(), t)
        return v

    def term(self):
        v = self.unary()
        while self._binary(("*", "/", ".*", "./")):
            t = self.take()
            v = _arith(t.text, v, self.unary(), t)
        return v

    def unary(self):
        t = self.peek()
        if t is not None and t.kind == "op" and t.text in ("+", "-"):
            self.take()
            v = self.unary()
            return _arith("*", -1.0, v, t) if t.text == "-" else v
        return self.power()

    def power(self):
        v = self.primary()
        while self._binary(("^", ".^")):
            t = self.take()
            sign = 1.0
            while (s := self.peek()) is not None and s.kind == "op" and s.text in ("+", "-"):
                sign = -sign if self.take().text == "-" else sign
            v = _arith("^", v, _arith("*", sign, self.primary(), t), t)
        return v

    def primary(self):
        t = self.take()
        if t.kind == "num":
            return float(t.text.replace("d", "e").replace("D", "e"))
        if t.text == "(":
            self.modes.append(False)
            v = self.expr()
            self.expect(")")
            self.modes.pop()
            return v
        if t.text == "[":
            return self.vector()
        if t.kind == "name":
            nxt = self.peek()
            if nxt is not None and nxt.text == "(" and not (self.modes[-1] and nxt.space):
                return self.reader.call(t, self.args())
            return self.reader.value_of(t)
        raise _Unsupported(t, f"unexpected '{t.text.strip() or 'end of line'}'")

    def args(self) -> list:
        self.expect("(")
        self.modes.append(False)
        out: list = []
        while True:
            t = self.peek()
            if t is not None and t.text == ":" and (n := self.peek(1)) is not None and n.text in (",", ")"):
                self.take()
                out.append(_COLON)
            elif not (t is not None and t.text == ")" and not out):
                out.append(self.expr())
            t = self.take()
            if t.text == ")":
                break
            if t.text != ",":
                raise _Unsupported(t, f"expected ',' or ')' but found '{t.text}'")
        self.modes.pop()
        return out

    def vector(self) -> _Vec:
        self.modes.append(True)
        items: list[float] = []
        while (t := self.peek()) is not None and t.text != "]":
            if t.text == ",":
                self.take()
                continue
            items.extend(_numbers(self.expr(), t, "a list of numbers is expected here"))
        self.expect("]")
        self.modes.pop()
        return _Vec(tuple(items))


# ------------------------------------------------------------------ the reader


class _Reader:
    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.env: dict[str, float] = dict(_CONSTANTS)
        self.base_mva: float | None = None
        self.arrays: dict[str, np.ndarray] = {}  # as written
        self.current: dict[str, np.ndarray] = {}  # after the conversions so far
        self.spans: dict[str, Span] = {}
        self.rows: dict[str, tuple[int, ...]] = {}
        self.conversions: list[Conversion] = []
        self.warnings: list[str] = []
        self.errors = Collector()

    # -- statements

    def statement(self, st: list[_Tok]) -> None:
        if st[0].kind == "name" and st[0].text in ("function", "end", "return"):
            return
        eq = self._top_level_assignment(st)
        if eq is None:
            self._warn(st, "not an assignment the importer understands")
            return
        lhs, rhs = st[:eq], st[eq + 1 :]
        if not lhs:
            self._warn(st, "nothing before '='")
            return
        if not rhs:
            raise GridError(Span(self.path, st[eq].line, st[eq].col), "nothing after '='", "give the value, e.g. mpc.baseMVA = 100;")
        try:
            if len(lhs) == 1 and lhs[0].kind == "name":
                target = lhs[0].text
                if target.startswith("mpc.") and target.count(".") == 1:
                    self._field(target[4:], rhs, st)
                elif "." not in target:
                    self.env[target] = self._scalar(rhs)
                else:
                    self._warn(st, f"'{target}' is not imported")
            elif lhs[0].text == "[" and lhs[-1].text == "]" and len(rhs) == 1 and rhs[0].text in _IDX:
                self._indices(lhs[1:-1], rhs[0].text, st)
            elif lhs[0].kind == "name" and lhs[0].text.startswith("mpc.") and len(lhs) > 2 and lhs[1].text == "(" and lhs[-1].text == ")":
                self._columns(lhs, rhs, st)
            else:
                self._warn(st, "not an assignment the importer understands")
        except _Unsupported as exc:
            self._warn(st, exc.message)

    @staticmethod
    def _top_level_assignment(st: list[_Tok]) -> int | None:
        depth = 0
        for i, t in enumerate(st):
            if t.kind == "punct":
                depth += (t.text in "([{") - (t.text in ")]}")
            elif depth == 0 and t.kind == "op" and t.text == "=":
                return i
        return None

    def _field(self, name: str, rhs: list[_Tok], st: list[_Tok]) -> None:
        first = rhs[0]
        if first.text == "[" and rhs[-1].text == "]":
            matrix, rows = self._matrix(rhs, name)
            if name == "baseMVA" and matrix.size == 1:
                self.base_mva = float(matrix.flat[0])
            elif name in _MIN_COLUMNS:
                self._store(name, matrix, rows, first)
            else:
                self._warn(st, f"mpc.{name} is not imported")
        elif first.text == "{":
            self._warn(st, f"mpc.{name} (a cell array) is not imported")
        elif len(rhs) == 1 and first.kind == "str":
            if name != "version":
                self._warn(st, f"mpc.{name} is not imported")
            elif first.text != "2":
                self._warn(st, f"MATPOWER case format version '{first.text}': the columns are read as version 2")
        elif name == "baseMVA":
            try:
                self.base_mva = self._scalar(rhs)
            except _Unsupported as exc:
                raise self._error(exc, "mpc.baseMVA is a number, e.g. mpc.baseMVA = 100;") from None
        else:
            self._warn(st, f"mpc.{name} is not imported")

    def _store(self, name: str, matrix: np.ndarray, rows: tuple[int, ...], at: _Tok) -> None:
        span = Span(self.path, at.line, at.col)
        if matrix.size and matrix.shape[1] < _MIN_COLUMNS[name]:
            self.errors.add(span, f"mpc.{name} has {matrix.shape[1]} columns; MATPOWER's {name} data has at least {_MIN_COLUMNS[name]}", "see MATPOWER's caseformat for the columns")
            return
        if name != "gencost" and matrix.size:
            bad = np.isnan(matrix[:, : _MIN_COLUMNS[name]])
            if bad.any():
                r, c = np.argwhere(bad)[0]
                self.errors.add(Span(self.path, rows[r], 1), f"mpc.{name} row {r + 1} column {c + 1} is NaN", "give every required column a number")
        self.arrays[name] = self.current[name] = matrix
        self.spans[name] = span
        self.rows[name] = rows

    def _matrix(self, rhs: list[_Tok], name: str) -> tuple[np.ndarray, tuple[int, ...]]:
        """The rows of ``[ ... ]`` as a float array and the line of each row."""
        inner = rhs[1:-1]
        rows: list[list[_Tok]] = [[]]
        depth = 0
        for t in inner:
            if t.kind == "punct":
                depth += (t.text in "([{") - (t.text in ")]}")
            if depth == 0 and (t.kind == "newline" or (t.kind == "punct" and t.text == ";")):
                rows.append([])
            else:
                rows[-1].append(t)
        values: list[list[float]] = []
        lines: list[int] = []
        for row in rows:
            if not row:
                continue
            parser = _Parser(row, self, matrix=True)
            cells: list[float] = []
            try:
                while not parser.done():
                    t = parser.peek()
                    if t is not None and t.text == ",":
                        parser.take()
                        continue
                    start = parser.i
                    cells.extend(_numbers(parser.expr(), row[start], "a matrix cell is a number"))
                    after = parser.peek()
                    if after is not None and after.text != "," and not after.space:
                        raise _Unsupported(after, f"unexpected '{after.text}' after a value")
            except _Unsupported as exc:
                raise self._error(exc, f"mpc.{name} holds numbers (or arithmetic such as 12/sqrt(3)); {_HINT}") from None
            if values and len(cells) != len(values[0]):
                raise GridError(
                    Span(self.path, row[0].line, row[0].col, max(1, len(self.lines[row[0].line - 1]) - row[0].col + 1)),
                    f"this row of mpc.{name} has {len(cells)} values but the rows above have {len(values[0])}",
                    "give every row the same number of columns; end each row with ';'",
                )
            values.append(cells)
            lines.append(row[0].line)
        array = np.array(values, dtype=float) if values else np.zeros((0, 0))
        array.flags.writeable = False
        return array, tuple(lines)

    def _scalar(self, toks: list[_Tok]) -> float:
        parser = _Parser(toks, self)
        v = parser.expr()
        if not parser.done():
            raise _Unsupported(parser.peek(), f"unexpected '{parser.peek().text}'")
        if not isinstance(v, float):
            raise _Unsupported(toks[0], "a number is expected here")
        return v

    def _indices(self, names: list[_Tok], func: str, st: list[_Tok]) -> None:
        idents = [t for t in names if t.kind == "name"]
        if any(t.kind not in ("name", "op", "newline") and t.text != "," for t in names) or any(t.kind == "op" and t.text != "~" for t in names):
            self._warn(st, f"an unusual call of {func}")
            return
        for ident, (_, value) in zip(idents, _IDX[func]):
            self.env[ident.text] = float(value)

    def _columns(self, lhs: list[_Tok], rhs: list[_Tok], st: list[_Tok]) -> None:
        target = _Parser(lhs, self)
        t = target.primary()
        if not target.done() or not isinstance(t, _Cols) or t.factor != 1.0:
            raise _Unsupported(lhs[0], "only whole columns, mpc.F(:, cols), can be assigned")
        value = _Parser(rhs, self)
        v = value.expr()
        if not value.done():
            raise _Unsupported(value.peek(), f"unexpected '{value.peek().text}'")
        if isinstance(v, float):
            raise _Unsupported(rhs[0], f"setting columns of mpc.{t.field} to a number is not understood")
        if not isinstance(v, _Cols) or v.field != t.field or len(v.cols) != len(t.cols):
            raise _Unsupported(rhs[0], "only columns of the same matrix times or over a number are understood")
        kind, vbase = self._classify(t.field, t.cols, v.cols, v.factor)
        text = " ".join(self.lines[st[0].line - 1 : st[-1].line]).strip()
        conv = Conversion(kind, t.field, t.cols, v.cols, v.factor, st[0].line, re.sub(r"\s+", " ", text), vbase)
        self.conversions.append(conv)
        self.current[t.field] = conv.apply(self.current[t.field])

    def _classify(self, name: str, targets: tuple[int, ...], sources: tuple[int, ...], factor: float) -> tuple[str, float | None]:
        if name == "branch" and targets == sources and set(targets) == {BR_R, BR_X} and self.base_mva:
            bus = self.current.get("bus")
            if bus is not None and len(bus):
                for kv in dict.fromkeys(bus[:, BASE_KV]):  # the first row's first
                    if kv > 0 and math.isclose(factor, self.base_mva / kv**2, rel_tol=1e-9):
                        return "ohm_to_pu", float(kv)
        if name == "bus" and targets == sources and set(targets) == {PD, QD} and math.isclose(factor, 1e-3, rel_tol=1e-12):
            return "kw_to_mw", None
        if name == "bus" and targets == (QD,) and sources == (PD,) and 0 <= factor <= 1:
            return "power_factor", None
        if name == "bus" and targets == sources == (PD,) and self.conversions:
            last = self.conversions[-1]
            if last.kind == "power_factor" and last.targets == (QD,) and math.isclose(last.factor**2 + factor**2, 1.0, rel_tol=1e-9):
                return "power_factor", None
        return "scale", None

    # -- names and calls inside expressions

    def value_of(self, t: _Tok) -> float:
        if t.text == "mpc.baseMVA" and self.base_mva is not None:
            return self.base_mva
        if t.text in self.env:
            return self.env[t.text]
        raise _Unsupported(t, f"unknown name '{t.text}'")

    def call(self, t: _Tok, args: list):
        name = t.text
        if name in _FUNCTIONS:
            if len(args) != 1 or not isinstance(args[0], float):
                raise _Unsupported(t, f"{name} takes one number")
            try:
                return float(_FUNCTIONS[name](args[0]))
            except (ValueError, OverflowError):
                raise _Unsupported(t, f"cannot compute {name}({args[0]:g})") from None
        if not name.startswith("mpc.") or name[4:] not in _MIN_COLUMNS:
            raise _Unsupported(t, f"unknown function or matrix '{name}'")
        field_name = name[4:]
        array = self.current.get(field_name)
        if array is None:
            raise _Unsupported(t, f"{name} is not defined before this line")
        if len(args) != 2:
            raise _Unsupported(t, f"{name}(row, column) takes two indices")
        rows, cols = args
        col_list = cols.items if isinstance(cols, _Vec) else (cols,) if isinstance(cols, float) else None
        if col_list is None or any(not float(c).is_integer() or not 1 <= c <= array.shape[1] for c in col_list):
            raise _Unsupported(t, f"{name} has columns 1 to {array.shape[1]}")
        index = tuple(int(c) - 1 for c in col_list)
        if rows is _COLON:
            return _Cols(field_name, index)
        if isinstance(rows, float) and rows.is_integer() and 1 <= rows <= array.shape[0] and len(index) == 1:
            return float(array[int(rows) - 1, index[0]])
        raise _Unsupported(t, f"only mpc.{field_name}(:, cols) or one element mpc.{field_name}(row, col) is understood")

    # -- messages

    def _warn(self, st: list[_Tok], why: str) -> None:
        text = " ".join(line.strip() for line in self.lines[st[0].line - 1 : st[-1].line])
        text = re.sub(r"\s+", " ", text.split("%")[0] if "%" in text and "'" not in text else text).strip()
        if len(text) > 90:
            text = text[:87] + "..."
        self.warnings.append(f"{self.path}:{st[0].line}: cannot interpret `{text}` ({why}); the statement is ignored")

    def _error(self, exc: _Unsupported, hint: str) -> GridError:
        t = exc.tok
        span = Span(self.path, t.line, t.col, max(1, len(t.text.strip()))) if t is not None else Span(self.path, 1, 1)
        return GridError(span, exc.message, hint)

    def case(self) -> MatpowerCase:
        top = Span(self.path, 1, 1)
        if self.base_mva is None:
            self.errors.add(top, "the case sets no mpc.baseMVA", "add e.g. 'mpc.baseMVA = 10;'")
        elif not (self.base_mva > 0 and math.isfinite(self.base_mva)):
            self.errors.add(top, f"mpc.baseMVA must be positive, not {self.base_mva:g}", "the system base in MVA, e.g. 'mpc.baseMVA = 10;'")
        for name in ("bus", "gen", "branch"):
            if name not in self.arrays and not any(e.message.startswith(f"mpc.{name} ") for e in self.errors.errors):
                self.errors.add(top, f"the case has no mpc.{name} matrix", _HINT)
        self.errors.raise_if_any()
        bus, gen, branch = self.arrays["bus"], self.arrays["gen"], self.arrays["branch"]
        if not len(bus):
            raise GridError(self.spans["bus"], "mpc.bus has no rows", "a case has at least one bus")
        if not len(gen):
            gen = np.zeros((0, _MIN_COLUMNS["gen"]))
        if not len(branch):
            branch = np.zeros((0, _MIN_COLUMNS["branch"]))
        ids = bus[:, BUS_I]
        seen: dict[float, int] = {}
        for i, b in enumerate(ids):
            if not (b > 0 and float(b).is_integer()):
                self.errors.add(Span(self.path, self.rows["bus"][i], 1), f"bus number {b:g} is not a positive whole number", "the first column of mpc.bus numbers the buses 1, 2, ...")
            elif b in seen:
                self.errors.add(Span(self.path, self.rows["bus"][i], 1), f"bus {b:g} is defined twice (first at line {self.rows['bus'][seen[b]]})", "give every bus its own number")
            else:
                seen[b] = i
            if bus[i, BUS_TYPE] not in (1, 2, 3, 4):
                self.errors.add(Span(self.path, self.rows["bus"][i], 1), f"bus type {bus[i, BUS_TYPE]:g} is not 1 (PQ), 2 (PV), 3 (reference) or 4 (isolated)", "the second column of mpc.bus is the bus type")
        for name, array, columns in (("gen", gen, (GEN_BUS,)), ("branch", branch, (F_BUS, T_BUS))):
            for i, row in enumerate(array):
                for c in columns:
                    if row[c] not in seen:
                        self.errors.add(Span(self.path, self.rows[name][i], 1), f"mpc.{name} row {i + 1} refers to bus {row[c]:g}, which is not in mpc.bus", "check the bus numbers")
        self.errors.raise_if_any()
        return MatpowerCase(
            self.path,
            float(self.base_mva),
            bus,
            gen,
            branch,
            self.arrays.get("gencost"),
            tuple(self.conversions),
            tuple(self.warnings),
            dict(self.rows),
        )


# ------------------------------------------------------------------ to .grid


def to_grid(case: MatpowerCase, name: str, formulation: str = "lindistflow") -> str:
    """The case as ``.grid`` text: a network of ``formulation`` with its loads, grid and generators."""
    return write_grid(feeder(case, name), formulation)


def import_matpower(path: str | Path, name: str | None = None, formulation: str = "lindistflow") -> Imported:
    """Read ``path`` and write it as ``.grid`` text, with the reader's warnings."""
    case = read_matpower(path)
    f = feeder(case, name or Path(path).stem)
    text = write_grid(f, formulation)
    return Imported(text, (*case.warnings, *dropped(f, formulation)), summary(f))


def feeder(case: MatpowerCase, name: str) -> Feeder:
    """The case as a :class:`~gridlang.io.gridtext.Feeder` (impedances in ohm, loads in the file's unit)."""
    mp = case.converted()
    bus, gen, branch = mp.bus, mp.gen, mp.branch
    ids = bus[:, BUS_I].astype(int)
    row_of = {b: i for i, b in enumerate(ids)}
    types = bus[:, BUS_TYPE].astype(int)
    refs = [i for i in range(len(bus)) if types[i] == REF]
    if not refs:
        line = case.rows.get("bus", (1,))[0]
        raise GridError(Span(case.path, line, 1), "the case has no reference bus (bus type 3)", "mark the substation bus with type 3 in the second column of mpc.bus")
    header = [f"Imported from {Path(case.path).name} (MATPOWER case) by `gridlang import`.", ""]
    base_kv = float(bus[refs[0], BASE_KV])
    if not base_kv > 0:
        header.append("The reference bus has no base kV; 1 kV is used as the base voltage.")
        base_kv = 1.0
    base_kv, base_mva = float(num(base_kv)), float(num(case.base_mva))  # as the .grid file will give them
    z_base = base_kv**2 / base_mva  # ohm
    kvs = {float(k) for k in bus[:, BASE_KV] if k > 0}
    file = Path(case.path).name
    for c in case.conversions:
        what = {
            "ohm_to_pu": f"converts branch r, x from ohm to p.u. (on {num(c.vbase_kv or 0)} kV, {num(case.base_mva)} MVA)",
            "kw_to_mw": "converts loads from kW, kvar to MW, Mvar",
            "power_factor": f"sets {'Q' if c.targets == (QD,) else 'P'} = apparent power x {num(c.factor)} (loads at a power factor)",
            "scale": f"scales columns {', '.join(str(t + 1) for t in c.targets)} of mpc.{c.field} by {num(c.factor)}",
        }[c.kind]
        header.append(f"{file}:{c.line} {what}.")
    if case.impedance_unit == "ohm":
        header.append("Branch r, x below are in ohm as the file gives them (gridlang converts units itself).")
    else:
        header.append(f"Branch r, x are p.u. in the file; written in ohm on {num(base_kv)} kV and {num(case.base_mva)} MVA, the system base.")
    if len(kvs) > 1:
        header.append(f"The buses have several base voltages ({', '.join(num(k) for k in sorted(kvs))} kV); all impedances are referred to {num(base_kv)} kV.")
    header.append(f"Loads in {'kW, kvar, the unit of the file' if case.load_unit == 'kW' else 'MW, Mvar'}{', after the conversions above' if len(case.conversions) > (case.load_unit == 'kW') + 2 * (case.impedance_unit == 'ohm') else ''}.")
    left_out: list[str] = []

    in_service_bus = types != ISOLATED
    # the slack's voltage: its first in-service generator's set point, else the bus's
    gen_on = {k for k in range(len(gen)) if gen[k, GEN_STATUS] > 0 and in_service_bus[row_of[int(gen[k, GEN_BUS])]]}
    slack_gen: dict[int, int] = {}
    for k in sorted(gen_on):
        i = row_of[int(gen[k, GEN_BUS])]
        if types[i] == REF:
            slack_gen.setdefault(i, k)
    buses = []
    for i, b in enumerate(ids):
        if not in_service_bus[i]:
            left_out.append(f"bus b{b} is isolated (type 4) and left out")
            continue
        vmin, vmax = float(bus[i, VMIN]), float(bus[i, VMAX])
        slack = types[i] == REF
        v_set = float(gen[slack_gen[i], VG]) if i in slack_gen else float(bus[i, VM]) if slack else None
        if slack and not v_set:
            v_set = 1.0
        buses.append(Bus(f"b{b}", int(b), vmin if vmin > 0 else None, vmax if vmax > 0 else None, slack, v_set, float(bus[i, GS]), float(bus[i, BS])))

    branches = []
    for k, row in enumerate(branch, 1):
        f, t = int(row[F_BUS]), int(row[T_BUS])
        tap, shift = float(row[TAP]), float(row[SHIFT])
        label = f"{'t' if tap else 'l'}{k} b{f} b{t}"
        if row[BR_STATUS] <= 0:
            left_out.append(f"{label} is out of service (status 0) and left out")
            continue
        if not (in_service_bus[row_of[f]] and in_service_bus[row_of[t]]):
            left_out.append(f"{label} ends at an isolated bus and is left out")
            continue
        note = f"phase shift {num(shift)} deg not modelled" if shift else ""
        charging = float(row[BR_B]) * case.base_mva  # Mvar at 1 p.u.
        branches.append(Branch(f"{'t' if tap else 'l'}{k}", f"b{f}", f"b{t}", float(row[BR_R]) * z_base, float(row[BR_X]) * z_base, bool(tap), note, charging, tap or 1.0))
    if any(b.charging for b in branches):
        header.append("Line charging (BR_B) is written in Mvar at 1 p.u. (BR_B x baseMVA), half at each end.")
    if any(b.tap != 1 for b in branches):
        header.append("Tap ratios (TAP) are off-nominal ratios at the from end.")

    scale = 1e3 if case.load_unit == "kW" else 1.0
    units = ("kW", "kvar") if case.load_unit == "kW" else ("MW", "Mvar")
    loads = []
    for i, b in enumerate(ids):
        if not in_service_bus[i]:
            continue
        if bus[i, PD] or bus[i, QD]:
            loads.append(Load(f"ld{b}", f"b{b}", float(bus[i, PD]) * scale, float(bus[i, QD]) * scale))
    if any(b.gs or b.bs for b in buses):
        header.append("Bus shunts (GS, BS) are written as gs (MW drawn) and bs (Mvar given) at 1 p.u.")

    supplies, generators = [], []
    costs = _costs(mp)
    for i in refs:
        k = slack_gen.get(i)
        if k is None:
            supplies.append(Supply(f"grid{ids[i]}", f"b{ids[i]}", 1.0))
            header.append(f"No generator at the reference bus b{ids[i]}; its grid connection is priced at 1 $/MWh.")
            continue
        c1, c2, note = costs[k]
        price = c1 if c1 > 0 else 1.0
        if c1 <= 0:
            header.append(f"Generator {k + 1} at the reference bus has no linear cost in the file; its grid connection is priced at 1 $/MWh.")
        if c2:
            header.append(f"The quadratic cost of generator {k + 1} (the grid connection) is left out.")
        if note:
            header.append(f"Generator {k + 1}: {note}.")
        pmax, pmin = float(gen[k, PMAX]), float(gen[k, PMIN])
        supplies.append(Supply(f"grid{ids[i]}", f"b{ids[i]}", price, pmax if pmax > 0 else None, max(-pmin, 0.0)))
    for k in range(len(gen)):
        b = int(gen[k, GEN_BUS])
        if k not in gen_on:
            left_out.append(f"generator g{k + 1} at b{b} is out of service and left out")
            continue
        if k in slack_gen.values():
            continue
        c1, c2, note = costs[k]
        if note:
            header.append(f"Generator g{k + 1}: {note}.")
        generators.append(Generator(f"g{k + 1}", f"b{b}", float(gen[k, PMAX]), float(gen[k, PMIN]), float(gen[k, QMAX]), float(gen[k, QMIN]), c1, c2))
    approximated = []
    shifted = [b for b in branch if b[BR_STATUS] > 0 and b[SHIFT]]
    if shifted:
        approximated.append(f"{len(shifted)} phase shifts, up to {num(max(abs(float(b[SHIFT])) for b in shifted))} deg, dropped (no effect on a radial feeder's voltage magnitudes)")
    pv_buses = [i for i in range(len(bus)) if types[i] == 2]
    if pv_buses:
        header.append("Voltage set points of PV buses (type 2) are not modelled.")
        approximated.append(f"{len(pv_buses)} PV-bus voltage set points dropped (their generators dispatch P and Q freely within limits)")
    return Feeder(
        name=grid_name(name),
        base_mva=case.base_mva,
        base_kv=base_kv,
        buses=tuple(buses),
        branches=tuple(branches),
        loads=tuple(loads),
        load_units=units,
        supplies=tuple(supplies),
        generators=tuple(generators),
        header=tuple(header),
        left_out=tuple(left_out),
        approximated=tuple(approximated),
    )


def _costs(case: MatpowerCase) -> list[tuple[float, float, str]]:
    """Linear and quadratic cost of each generator (currency per MWh, per MW^2 h) and a note."""
    n = len(case.gen)
    gc = case.gencost
    if gc is None or len(gc) < n:
        return [(0.0, 0.0, "no cost data" if gc is not None else "")] * n
    out = []
    for row in gc[:n]:
        model, ncost = int(row[MODEL]), int(row[NCOST])
        coeffs = row[COST : COST + (2 * ncost if model == 1 else ncost)]
        if model == 2 and len(coeffs) == ncost:
            c = list(coeffs[::-1]) + [0.0, 0.0, 0.0]  # c0, c1, c2, ...
            higher = any(c[3:ncost])
            out.append((float(c[1]), float(c[2]), "cost terms above quadratic left out" if higher else ""))
        elif model == 1 and ncost >= 2 and len(coeffs) == 2 * ncost:
            x, y = coeffs[0::2], coeffs[1::2]
            slope = float((y[-1] - y[0]) / (x[-1] - x[0])) if x[-1] != x[0] else 0.0
            out.append((slope, 0.0, f"piecewise-linear cost replaced by its average slope {num(slope)} $/MWh"))
        else:
            out.append((0.0, 0.0, "unreadable cost row left out"))
    return out
