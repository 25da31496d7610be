"""Text to syntax tree: ``parse(text, path) -> Module``.

The grammar lives in ``grid.lark`` (LALR, contextual lexer).  Lark calls
:class:`_ToAst` as it reduces each rule, so the syntax tree is built during
parsing and no lark parse tree exists; every node gets its span from the
first and last tokens its rule matched.  The body of an inline table is one
token, split into rows and cells by :func:`_table_rows` with one regular
expression.  The compiled parser is cached on disk by lark and in memory here.
Syntax errors become :class:`GridError` with the position and a hint.
"""

from __future__ import annotations

import gc
import re
import tempfile
import threading
from functools import cache
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from gridlang.errors import SOURCES, GridError, Span
from gridlang.grammar import ast

GRAMMAR = Path(__file__).with_name("grid.lark")

_OPEN = frozenset(("LPAR", "LSQB"))
_CLOSE = frozenset(("RPAR", "RSQB"))


class _Brackets:
    """Post-lexer: a line break inside ( ) or [ ] continues the statement."""

    always_accept = ("_SEP",)

    def process(self, stream):
        depth = 0
        for tok in stream:
            kind = tok.type
            if kind == "_SEP":
                if depth and ";" not in tok:
                    continue
            elif kind in _OPEN:
                depth += 1
            elif depth and kind in _CLOSE:
                depth -= 1
            yield tok


@cache
def _lark() -> tuple[Lark, _ToAst]:
    """The parser and the callbacks it calls (one pair per process; see ``_LOCK``)."""
    cache_file = Path(tempfile.gettempdir()) / f"gridlang-{GRAMMAR.stat().st_mtime_ns}.lark-cache"
    to_ast = _ToAst()
    parser = Lark(
        GRAMMAR.read_text(),
        parser="lalr",
        lexer="contextual",
        maybe_placeholders=False,
        postlex=_Brackets(),
        transformer=to_ast,
        cache=str(cache_file),
    )
    return parser, to_ast


#: the callbacks hold the path of the text being parsed: one parse at a time
_LOCK = threading.Lock()


def parse(text: str, path: str = "<string>") -> ast.Module:
    """Parse one source text; raise GridError at the first syntax error.

    A leading byte-order mark is dropped (columns are counted without it, as
    editors show them); a NUL character or a text over MAX_SOURCE_BYTES is an
    error.  The cyclic garbage collector is paused while parsing: the tree has
    no cycles, and its millions of objects would otherwise be traversed again
    and again (a third of the time on a large file)."""
    text = text.removeprefix(BOM)
    SOURCES[path] = text
    if len(text) > MAX_SOURCE_BYTES:
        raise _too_large(path, len(text), "characters")
    if "\0" in text:
        raise _binary(path, text)
    parser, to_ast = _lark()
    with _LOCK:
        to_ast.path = path
        collecting = gc.isenabled()
        gc.disable()
        try:
            statements = parser.parse(text if text.endswith("\n") else text + "\n")
        except UnexpectedInput as exc:
            raise _syntax_error(exc, path, text) from None
        finally:
            if collecting:
                gc.enable()
    return ast.Module(path, tuple(statements))


def parse_file(path: Path) -> ast.Module:
    return parse(read_source(path), str(path))


# ---------------------------------------------------------------- reading files

#: the largest source gridlang reads (40 times the 5,000-bus feeder of the
#: benchmarks).  Checking statement-dense text takes about 50 bytes of memory
#: and 2.6 us of CPU per byte (measured: 50 MB, 2.5 GB, 125 s; 16.7 MB, 0.97 GB,
#: 43 s), so this bounds a check near 1 GB; larger cases are split by include
MAX_SOURCE_BYTES = 16 * 2**20
BOM = "\ufeff"


def read_source(path: Path) -> str:
    """The text of a source file: UTF-8, with or without a byte-order mark.

    A file over MAX_SOURCE_BYTES is refused before it is read.  Bytes that
    are not UTF-8 are an error at their line and column (the line is shown
    with U+FFFD in their place)."""
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise _too_large(name, size, "bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise GridError(Span(name, 0, 0), f"cannot read {name}: {exc.strerror or exc}", "give the path of a readable .grid file") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(name, data, exc.start) from None


def _not_utf8(path: str, data: bytes, at: int) -> GridError:
    line_start = data.rfind(b"\n", 0, at) + 1
    line = data.count(b"\n", 0, at) + 1
    col = len(data[line_start:at].decode("utf-8")) + 1  # valid up to the first bad byte
    SOURCES[path] = data.decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        hint = "it looks like UTF-16: save it as UTF-8"
    else:
        hint = "save it as UTF-8 text (most editors offer this under 'Save as... > encoding'), or check that this is the .grid file you meant"
    return GridError(Span(path, line, col), f"the file is not UTF-8 text (byte 0x{data[at]:02x} at line {line}, column {col})", hint)


def _binary(path: str, text: str) -> GridError:
    at = text.index("\0")
    line, col = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
    return GridError(Span(path, line, col), f"the file holds a NUL character (at line {line}, column {col}): it is binary data, not text",
                     "give a .grid text file; if this is one, remove the NUL characters (an editor or a failed copy may have put them there)")


def _too_large(path: str, size: int, what: str) -> GridError:
    return GridError(Span(path, 1, 1), f"the file is too large: {size:,} {what}, gridlang reads at most {MAX_SOURCE_BYTES:,}",
                     "split it into files joined by 'include \"part.grid\"', and move long tables and series into CSV files (table ... from csv(...), csv(...))")


# ---------------------------------------------------------------- syntax errors

_TOKEN_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "UNIT": "a unit",
    "STRING": 'a "string"',
    "_SEP": "a new line or ';'",
    "CMP": "a comparison",
    "ADD": "'+' or '-'",
    "MUL": "'*' or '/'",
    "MINUS": "'-'",
    "SENSE": "minimize or maximize",
    "ROWS": "'{'",
    "$END": "the end of the file",
}


def _describe(terminal: str) -> str:
    if terminal in _TOKEN_WORDS:
        return _TOKEN_WORDS[terminal]
    pattern = _lark()[0].get_terminal(terminal).pattern
    return f"'{pattern.value}'" if pattern.type == "str" else terminal.lower()


_CHARS_HINT = 'a .grid text holds names, numbers with units, "strings", comments after \'#\' and the signs + - * / ^ = < > ( ) [ ] { } , ; : ..; remove or replace this character'


def _syntax_error(exc: UnexpectedInput, path: str, text: str) -> GridError:
    bracket = _bracket_error(exc, path, text)
    if bracket is not None:
        return bracket
    line, col = exc.line if exc.line > 0 else text.count("\n") + 1, max(exc.column, 1)
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        if char and (not char.isprintable() or char.isspace()):
            return GridError(Span(path, line, col), f"unexpected invisible character U+{ord(char):04X}",
                             "delete it; it may have come with text copied from a web page or a word processor")
        hint = "units follow their number without a space, e.g. '5 $/kWh'" if char and char in "$%€" else _CHARS_HINT
        return GridError(Span(path, line, col), f"unexpected character {char!r}", hint)
    if isinstance(exc, UnexpectedEOF):
        return GridError(Span(path, line, col), "the file ends in the middle of a statement", "close every '{', '(' and '['")
    assert isinstance(exc, UnexpectedToken)
    token = exc.token
    if token.type == "$END":
        return GridError(Span(path, line, col), "the file ends in the middle of a statement", "close every '{', '(' and '['")
    history = [t for t in (getattr(exc, "token_history", None) or []) if t is not None]
    if history and history[-1].type == "UNIT" and token.type not in ("_SEP", "RBRACE"):
        unit = history[-1]
        return GridError(
            Span(path, unit.line, unit.column, len(unit)),
            f"'{unit}' is read as the unit of the number before it, and what follows makes no sense",
            "end the statement with a new line or ';' before the next one",
        )
    expected = sorted(_describe(t) for t in exc.expected if not t.startswith("__"))
    shown = "end of file" if token.type == "$END" else repr(str(token)).replace("\\n", "")
    if token.type == "_SEP":
        shown = "end of line"
    message = f"unexpected {shown}"
    hint = f"expected {', '.join(expected[:6])}" + (" or more" if len(expected) > 6 else "") if expected else "compare the statement with the README's examples"
    if token.type == "NAME" and "_SEP" in exc.expected:
        hint = "end the statement with a new line or ';' before the next one"
    width = len(str(token)) if token.type not in ("_SEP", "$END") else 1
    return GridError(Span(path, line, col, width), message, hint)


# ---------------------------------------------------------------- brackets

# A bracket, or what may hide one: a comment or a "string" (as the grammar lexes them)
_BRACKET = re.compile(r'#[^\n]*|"[^"\n]*"|[()\[\]{}]')
_CLOSES = {")": "(", "]": "[", "}": "{"}
_CLOSER = {"(": ")", "[": "]", "{": "}"}
_INTERVAL = re.compile(r"(?<![A-Za-z0-9_])in[ \t]*$")  # 'in (0, 1]': either closer ends it


def _where(text: str, at: int) -> tuple[int, int]:
    """1-based line and column of offset ``at``, counted as lark counts them."""
    return text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)


def _bracket_error(exc: UnexpectedInput, path: str, text: str) -> GridError | None:
    """The error to report instead of lark's when a bracket explains it, else None.

    The brackets of the whole text are matched (skipping comments and
    strings; an interval ``in (a, b]`` may close with either bracket):

    * the first closer that closes nothing, or not the bracket last opened,
      when it is the token lark stopped at: reported where it is;
    * else a bracket never closed that was open where lark stopped, on an
      earlier line or with the text ending: reported where it opened, for a
      '(' or '[' joins the following lines to its statement, so lark stops
      somewhere unrelated (e.g. at the next statement's first word).
    """
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        stop = len(text)
    elif isinstance(exc, UnexpectedCharacters):
        stop = exc.pos_in_stream
    else:
        stop = getattr(exc.token, "start_pos", None)
        if stop is None:
            return None
    stop = min(stop, len(text))
    stack: list[tuple[str, int, bool]] = []  # (bracket, offset, interval)
    open_at_stop: list[tuple[str, int, bool]] | None = None
    for m in _BRACKET.finditer(text):
        c, at = m.group(), m.start()
        if c[0] in '#"':
            continue
        if open_at_stop is None and at >= stop:
            open_at_stop = list(stack)
        if c in "([{":
            stack.append((c, at, c != "{" and _INTERVAL.search(text, max(0, at - 12), at) is not None))
            continue
        top = stack[-1] if stack else None
        if top is not None and (top[0] == _CLOSES[c] or (top[2] and c in ")]")):
            stack.pop()
            continue
        if at != stop:
            return None  # the first unbalanced closer comes after lark's error: lark's error stands
        line, col = _where(text, at)
        if not any(b[0] == _CLOSES[c] or (b[2] and c in ")]") for b in stack):  # nothing it could close
            return GridError(Span(path, line, col), f"unexpected '{c}': no '{_CLOSES[c]}' is open here",
                             f"remove it, or add the '{_CLOSES[c]}' it should close before it")
        oline, ocol = _where(text, top[1])
        return GridError(Span(path, line, col), f"unexpected '{c}': the '{top[0]}' at line {oline}, column {ocol} is not closed",
                         f"expected '{_CLOSER[top[0]]}' to close it first")
    if open_at_stop is None:
        open_at_stop = list(stack)
    never = {at for _, at, _ in stack}
    unclosed = [b for b in open_at_stop if b[1] in never]
    if not unclosed:
        return None
    c, at, _ = unclosed[-1]
    line, col = _where(text, at)
    stop_line = text.count("\n", 0, stop) + 1
    if stop < len(text) and line >= stop_line:
        return None  # lark stopped on the bracket's own line: its error is more precise
    hint = f"add the '{_CLOSER[c]}' that closes it"
    inner = open_at_stop[-1]
    if inner[1] != at:  # a bracket inside it was open where the parser stopped: maybe that one lacks its closer
        iline, icol = _where(text, inner[1])
        if iline < stop_line:
            hint += f"; or, if it is closed further down, the '{inner[0]}' at line {iline}, column {icol} may be the one left open"
    return GridError(Span(path, line, col), f"'{c}' is never closed", hint)


# ---------------------------------------------------------------- table bodies

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"  # the grammar's NUMBER
_GAP = r"(?:[ \t\r\f]|\\\r?\n)*+"  # what may stand between '-' and its number: spaces, continued lines
_GLUE = r"[A-Za-z0-9_.$%€\"-]"  # what may not follow a number directly (5kW, 1.2.3, 5$, 5-3)

#: one cell, row separator or stray character of a table body, after the
#: spaces, line continuations and comments before it; lexes like the grammar
_CELL = re.compile(
    rf"""
    (?:[ \t\r\f]+|\\\r?\n|\#[^\n]*)*+               # ignored, as %ignore in the grammar
    (?:
        (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<num>{_NUMBER})(?!{_GLUE})
      | (?P<sep>[;\n](?:[;\s]|\#[^\n]*)*+)           # the grammar's _SEP
      | (?P<str>"[^"\n]*")
      | (?P<neg>-{_GAP}{_NUMBER})(?!{_GLUE})
      | (?P<glued>-?{_GAP}{_NUMBER}[^\s;\#}}\\]+)    # a number with something stuck to it
      | (?P<minus>-)                                 # '-' without a number
      | (?P<bad>[\s\S])
      | (?P<end>\Z)                                  # only spaces and comments were left
    )
    """,
    re.VERBOSE,
)
_SKIP = re.compile(r"(?:[ \t\r\f]+|\\\r?\n|#[^\n]*)*+")
_WORD = re.compile(rf'[A-Za-z_][A-Za-z0-9_]*|{_NUMBER}|"[^"\n]*"|[\s\S]')  # a token, roughly
_NUMBER_AT_END = re.compile(_NUMBER + r"$")

_ROW_HINT = 'a row holds names, numbers and "strings" separated by spaces; rows end at a new line or \';\''


def _table_rows(tok: Token, path: str) -> tuple[tuple[tuple[ast.Cell, ...], Span], ...]:
    """Split the ROWS token ``{ ... }`` into rows of cells with their spans.

    Gives exactly what the grammar ``"{" _SEP? (row (_SEP row)* _SEP?)? "}"``,
    ``row: cell+``, ``cell: NAME | MINUS? NUMBER | STRING`` gave: a row's span
    runs from its first to its last cell, a name becomes an Ident, a number a
    float, a string a Str.  A number with something stuck to it (``5kW``,
    ``1.2.3``) is an error.  Lines and columns are counted as lark counts them.
    """
    body: str = tok.value
    end = len(body) - 1 if body.endswith("}") else len(body)  # the text ends with '\n', so '}' closes
    line = tok.line
    line_start = 1 - tok.column  # offset in ``body`` of the current line's first character, as if column 1
    rows: list[tuple[tuple[ast.Cell, ...], Span]] = []
    cells: list[ast.Cell] = []
    row_line = row_col = 0
    after_sep = False  # a second _SEP in a row (only possible across a '\' continuation) is an error
    last_at = None  # (line, col) of the last token, where an unclosed body is reported
    cell_end = 0
    cell_end_line = 0
    for m in _CELL.finditer(body, 1, end):
        kind = m.lastgroup
        if kind == "end":
            break
        at = m.start(kind)
        if at != m.start():  # a continued line before the item moves it down
            nl = body.rfind("\n", m.start(), at)
            if nl >= 0:
                line += body.count("\n", m.start(), at)
                line_start = nl + 1
        if kind == "sep":
            if after_sep:
                raise GridError(Span(path, line, at - line_start + 1), "unexpected end of line",
                                "a line ending in '\\' continues on the next one; remove the '\\'")
            if cells:
                width = cell_end - row_col if cell_end_line == row_line else 1
                rows.append((tuple(cells), Span(path, row_line, row_col, width if width > 1 else 1)))
                cells = []
            after_sep = True
            last_at = (line, at - line_start + 1)
            nl = body.rfind("\n", at, m.end())
            if nl >= 0:
                line += body.count("\n", at, m.end())
                line_start = nl + 1
            continue
        if kind in ("name", "num", "str", "neg"):
            text = m.group(kind)
            col = at - line_start + 1
            if not cells:
                row_line, row_col = line, col
            if kind == "name":
                cells.append(ast.Ident(text, Span(path, line, col, len(text))))
            elif kind == "num":
                cells.append(float(text))
            elif kind == "str":
                cells.append(ast.Str(text[1:-1], Span(path, line, col, len(text))))
            else:
                number = _NUMBER_AT_END.search(text).group()
                cells.append(-float(number))
                if "\n" in text:  # '-' and its number on two lines joined by '\'
                    line += text.count("\n")
                    line_start = at + text.rindex("\n") + 1
                last_at = (line, m.end() - len(number) - line_start + 1)
                cell_end, cell_end_line = m.end() - line_start + 1, line
                after_sep = False
                continue
            last_at = (line, col)
            cell_end, cell_end_line = col + len(text), line
            after_sep = False
            continue
        raise _bad_cell(m, kind, body, line, line_start, path)
    if end == len(body):
        where = Span(path, *last_at) if last_at else Span(path, tok.line, tok.column)
        raise GridError(where, "the file ends in the middle of a statement", "close every '{', '(' and '['")
    if cells:
        width = cell_end - row_col if cell_end_line == row_line else 1
        rows.append((tuple(cells), Span(path, row_line, row_col, width if width > 1 else 1)))
    return tuple(rows)


def _bad_cell(m: re.Match, kind: str, body: str, line: int, line_start: int, path: str) -> GridError:
    """The error for a table body's first stray item (``kind`` glued, minus or bad)."""
    at = m.start(kind)
    col = at - line_start + 1
    if kind == "glued":
        text = m.group(kind)
        number = re.match(r"-?" + _GAP + _NUMBER, text).group()
        rest = text[len(number):]
        if "\n" in text:
            return GridError(Span(path, line, col), f"'{text.split(chr(10))[0]}' is not a number", _ROW_HINT)
        if rest[0] in "$%€" or rest[0].isalpha():
            hint = "cells are separated by spaces and hold bare numbers; a unit goes in the column header, e.g. (name, at, p [kW])"
        else:
            hint = "a number is written like 12, -0.5 or 2.5e3; cells are separated by spaces"
        return GridError(Span(path, line, col, len(text)), f"'{text}' is not a number", hint)
    if kind == "minus":  # old grammar: MINUS then whatever came next was unexpected
        nxt = _SKIP.match(body, at + 1).end()
        nl = body.rfind("\n", at, nxt)
        if nl >= 0:
            line, line_start = line + body.count("\n", at, nxt), nl + 1
        where = Span(path, line, nxt - line_start + 1)
        hint = "a '-' in a table row starts a negative number, e.g. -1.5"
        if nxt >= len(body) or body[nxt] in ";\n":
            return GridError(where, "unexpected end of line", hint)
        word = _WORD.match(body, nxt).group()
        return GridError(Span(path, where.line, where.col, len(word)), f"unexpected {word!r}", hint)
    char = m.group(kind)
    if char == '"':
        return GridError(Span(path, line, col), 'this "string" is not closed on its line', 'end it with a " before the end of the line')
    if char in "$%€":
        hint = "a cell holds a bare number; its unit goes in the column header, e.g. (name, at, p [kW])"
    elif char == ",":
        hint = "cells are separated by spaces, not commas"
    else:
        hint = _ROW_HINT
    return GridError(Span(path, line, col), f"unexpected character {char!r} in a table row", hint)


# ---------------------------------------------------------------- syntax tree

# Every callback gets the values of its rule's symbols and returns a triple
# (value, first token, last token): the value is an ast node or a piece of one
# (a tuple of attributes, a list of columns...), the tokens are the first and
# last the rule matched, from which the spans of the enclosing nodes follow.
# Tokens come as they are.  Brackets around an expression make its triple
# reach out to them without changing the expression's own span.


def _first(x) -> Token:
    return x if type(x) is Token else x[1]


def _last(x) -> Token:
    return x if type(x) is Token else x[2]


class _ToAst:
    """Lark callbacks (one method per rule or alias; ROWS for table bodies) building ast nodes."""

    path = "<string>"

    # -- helpers
    def _span(self, a: Token, b: Token) -> Span:
        """From the start of token ``a`` to the end of token ``b``; width 1 across lines."""
        if b.end_line == a.line:
            width = b.end_column - a.column
            return Span(self.path, a.line, a.column, width if width > 1 else 1)
        return Span(self.path, a.line, a.column, 1)

    def _id(self, tok: Token) -> ast.Ident:
        return ast.Ident(tok.value, Span(self.path, tok.line, tok.column, len(tok.value)))

    # -- top level
    def start(self, c):
        return [x[0] for x in c]

    def system(self, c):  # "system" NAME attrs
        a, attrs = c[0], c[2]
        return ast.System(self._id(c[1]), attrs[0], self._span(a, attrs[2])), a, attrs[2]

    def profile(self, c):  # "profile" NAME "=" expr
        a, e = c[0], c[3]
        return ast.Profile(self._id(c[1]), e[0], self._span(a, e[2])), a, e[2]

    def network(self, c):  # "network" NAME "uses" NAME "{" items "}"
        a, b = c[0], c[-1]
        items = tuple(x[0] for x in c[5:-1] if type(x) is tuple)
        return ast.Network(self._id(c[1]), self._id(c[3]), items, self._span(a, b)), a, b

    def element(self, c):  # NAME names link? attrs?
        (first, last), b = c[1][0], c[1][2]
        link, attrs = None, ()
        for x in c[2:]:
            if type(x[0]) is list:
                link = tuple(x[0])
            else:
                attrs = x[0]
            b = x[2]
        a = c[0]
        return ast.Element(self._id(a), first, last, link, attrs, self._span(a, b)), a, b

    def link(self, c):  # "from" NAME "to" NAME
        return [self._id(c[1]), self._id(c[3])], c[0], c[3]

    def names(self, c):  # NAME (".." NAME)?
        return (self._id(c[0]), self._id(c[1]) if len(c) > 1 else None), c[0], c[-1]

    def asset(self, c):  # NAME NAME "at" NAME attrs?
        a = c[0]
        attrs, b = (c[3][0], c[3][2]) if len(c) > 3 else ((), c[2])
        return ast.Asset(self._id(a), self._id(c[1]), self._id(c[2]), attrs, self._span(a, b)), a, b

    def table(self, c):  # NAME "table" "(" columns ")" (ROWS | "from" expr)
        a, body = c[0], c[2]
        rows, source = (body[0], None) if type(body[0]) is tuple else ((), body[0])
        node = ast.Table(self._id(a), tuple(c[1][0]), rows, source, self._span(a, body[2]))
        return node, a, body[2]

    def ROWS(self, tok):  # a terminal callback: called as the token is shifted, so errors come in text order
        return _table_rows(tok, self.path), tok, tok

    def columns(self, c):
        return [x[0] for x in c], c[0][1], c[-1][2]

    def column(self, c):  # NAME ("[" UNIT "]")?
        return ast.Column(self._id(c[0]), c[2].value if len(c) > 1 else None), c[0], c[-1]

    def agent(self, c):  # "agent" NAME ("owns" NAME ("," NAME)*)?
        a, b = c[0], c[-1]
        return ast.Agent(self._id(c[1]), tuple(self._id(t) for t in c[3::2]), self._span(a, b)), a, b

    def agent_at(self, c):  # "agent" NAME "at" NAME ("," NAME)*
        a, b = c[0], c[-1]
        return ast.AgentAt(self._id(c[1]), tuple(self._id(t) for t in c[3::2]), self._span(a, b)), a, b

    def agent_part(self, c):  # "agent" NAME "in" STRING attrs?
        a, s = c[0], c[3]
        attrs, b = (c[4][0], c[4][2]) if len(c) > 4 else ((), s)
        cloud = ast.Str(s.value[1:-1], Span(self.path, s.line, s.column, len(s.value)))
        return ast.AgentPart(self._id(c[1]), cloud, attrs, self._span(a, b)), a, b

    def market(self, c):  # "market" NAME "among" NAME ("," NAME)* attrs?
        a = c[0]
        attrs, b = (c[-1][0], c[-1][2]) if type(c[-1]) is tuple else ((), c[-1])
        members = tuple(self._id(t) for t in c[3:] if isinstance(t, Token) and t.type == "NAME")
        return ast.Market(self._id(c[1]), members, attrs, self._span(a, b)), a, b

    def game(self, c):  # "game" NAME "between" NAME ("," NAME)* "and" NAME attrs?
        a = c[0]
        attrs, b = (c[-1][0], c[-1][2]) if type(c[-1]) is tuple else ((), c[-1])
        names = [self._id(t) for t in c[3:] if isinstance(t, Token) and t.type == "NAME"]
        return ast.Game(self._id(c[1]), tuple(names[:-1]), names[-1], attrs, self._span(a, b)), a, b

    def objective(self, c):  # "objective" SENSE expr
        a, e = c[0], c[2]
        return ast.Objective(c[1].value, e[0], self._span(a, e[2])), a, e[2]

    def include(self, c):  # "include" STRING
        a, s = c
        path = ast.Str(s.value[1:-1], Span(self.path, s.line, s.column, len(s.value)))
        return ast.Include(path, self._span(a, s)), a, s

    def study(self, c):  # "study" NAME ":" NAME attrs?
        a = c[0]
        attrs, b = (c[4][0], c[4][2]) if len(c) > 4 else ((), c[3])
        return ast.Study(self._id(c[1]), self._id(c[3]), attrs, self._span(a, b)), a, b

    def attrs(self, c):  # "{" attr... "}"
        return tuple(x[0] for x in c[1:-1] if type(x) is tuple), c[0], c[-1]

    def assign(self, c):  # NAME "=" expr
        a, e = c
        return ast.Attr(self._id(a), e[0], self._span(a, e[2])), a, e[2]

    def flag(self, c):  # NAME
        a = c[0]
        return ast.Attr(self._id(a), None, self._span(a, a)), a, a

    # -- model layer
    def kind_def(self, c):  # "kind" NAME "at" NAME body
        a, body = c[0], c[4]
        return ast.KindDef(self._id(c[1]), self._id(c[3]), body[0], self._span(a, body[2])), a, body[2]

    def formulation_def(self, c):  # "formulation" NAME "for" RADIAL? "network" body
        a, body = c[0], c[-1]
        radial = c[3].type == "RADIAL"
        return ast.FormulationDef(self._id(c[1]), radial, body[0], self._span(a, body[2])), a, body[2]

    def body(self, c):  # "{" decl... "}"
        return tuple(x[0] for x in c[1:-1] if type(x) is tuple), c[0], c[-1]

    def _declared(self, c):
        """Split ``NAME dims? (":" UNIT)?`` from what follows it (c[1:])."""
        i, n = 2, len(c)
        dims: tuple = ()
        unit = None
        if i < n and type(c[i]) is tuple and type(c[i][0]) is tuple:
            dims = c[i][0]
            i += 1
        if i < n and c[i] == ":":
            unit = self._id(c[i + 1])
            i += 2
        return dims, unit, c[i:]

    def param_decl(self, c):  # "param" NAME dims? (":" UNIT)? ("=" arith)? param_range?
        dims, unit, rest = self._declared(c)
        a, b = c[0], _last(c[-1])
        bound = None
        if rest and type(rest[-1]) is tuple and type(rest[-1][0]) is ast.Bound:
            bound = rest[-1][0]
            rest = rest[:-1]
        default = rest[1][0] if rest else None
        return ast.ParamDecl(self._id(c[1]), dims, unit, default, self._span(a, b), bound), a, b

    def interval(self, c):  # "in" ("(" | "[") arith "," arith (")" | "]")
        a, b = c[0], c[5]
        return ast.Bound(c[2][0], c[4][0], c[1] == "(", b == ")", self._span(a, b)), a, b

    def one_sided(self, c):  # CMP arith
        op, e = c
        span = self._span(op, e[2])
        if op in (">=", ">"):
            return ast.Bound(e[0], None, op == ">", False, span), op, e[2]
        if op in ("<=", "<"):
            return ast.Bound(None, e[0], False, op == "<", span), op, e[2]
        raise GridError(Span(self.path, op.line, op.column, len(op)), f"a parameter's range is not written with '{op}'",
                        "write a comparison with >=, >, <= or <, e.g. 'param r: ohm >= 0', or an interval, e.g. 'in (0, 1]'")

    def var_decl(self, c):  # "var" NAME dims? (":" UNIT)? domain? ("where" expr)?
        dims, unit, rest = self._declared(c)
        domain = ast.Domain("continuous", None, None)
        if rest and type(rest[0]) is tuple:
            domain = rest[0][0]
            rest = rest[1:]
        where = rest[1][0] if rest else None
        a, b = c[0], _last(c[-1])
        return ast.VarDecl(self._id(c[1]), dims, unit, domain, where, self._span(a, b)), a, b

    def dims(self, c):  # "[" NAME ("," NAME)* "]"
        return tuple(self._id(t) for t in c[1:-1:2]), c[0], c[-1]

    def bounds(self, c):  # "in" "[" expr "," expr "]"
        return ast.Domain("continuous", c[2][0], c[4][0]), c[0], c[-1]

    def binary(self, c):  # "binary"
        return ast.Domain("binary", None, None), c[0], c[0]

    def integer(self, c):  # "integer" ("in" "[" expr "," expr "]")?
        if len(c) > 1:
            return ast.Domain("integer", c[3][0], c[5][0]), c[0], c[-1]
        return ast.Domain("integer", None, None), c[0], c[0]

    def constraint(self, c):  # (NAME ":")? expr ("where" expr)?
        label = self._id(c[0]) if type(c[0]) is Token else None
        rest = c[1:] if label is not None else c
        a, b = _first(c[0]), c[-1][2]
        node = ast.Constraint(label, rest[0][0], rest[1][0] if len(rest) > 1 else None, self._span(a, b))
        return node, a, b

    def inject(self, c):  # "inject" NAME dims? "=" expr
        a, e = c[0], c[-1]
        dims = c[2][0] if len(c) == 5 else ()
        return ast.Inject(self._id(c[1]), dims, e[0], self._span(a, e[2])), a, e[2]

    def cost(self, c):  # "cost" (NAME ":")? expr ("where" expr)?
        a, b = c[0], c[-1][2]
        label = self._id(c[1]) if type(c[1]) is Token else None
        rest = c[3:] if label is not None else c[1:]
        return ast.Cost(rest[0][0], rest[2][0] if len(rest) > 1 else None, self._span(a, b), label), a, b

    def output(self, c):  # "output" NAME dims? (":" UNIT)? "=" expr
        dims, unit, rest = self._declared(c)
        a, e = c[0], c[-1]
        return ast.Output(self._id(c[1]), dims, unit, e[0], self._span(a, e[2])), a, e[2]

    # -- expressions
    def or_(self, c):
        if len(c) == 1:
            return c[0]
        a, b = c[0][1], c[-1][2]
        return ast.BoolOp("or", tuple(x[0] for x in c), self._span(a, b)), a, b

    def and_(self, c):
        if len(c) == 1:
            return c[0]
        a, b = c[0][1], c[-1][2]
        return ast.BoolOp("and", tuple(x[0] for x in c), self._span(a, b)), a, b

    def not_(self, c):  # "not" not_expr
        a, e = c
        return ast.Not(e[0], self._span(a, e[2])), a, e[2]

    def compare(self, c):  # arith (CMP arith)*
        if len(c) == 1:
            return c[0]
        a, b = c[0][1], c[-1][2]
        node = ast.Compare(tuple(x[0] for x in c[0::2]), tuple(t.value for t in c[1::2]), self._span(a, b))
        return node, a, b

    def binop(self, c):  # left ADD|MUL right
        left, op, right = c
        a, b = left[1], right[2]
        return ast.BinOp(op.value, left[0], right[0], self._span(a, b)), a, b

    def neg(self, c):  # MINUS factor
        a, e = c
        return ast.Neg(e[0], self._span(a, e[2])), a, e[2]

    def pow(self, c):  # atom "^" factor
        base, exponent = c
        a, b = base[1], exponent[2]
        return ast.Pow(base[0], exponent[0], self._span(a, b)), a, b

    def atom(self, c):  # "(" expr ")": the expression, reaching out to its brackets
        return c[1][0], c[0], c[2]

    def name(self, c):  # NAME
        t = c[0]
        return ast.Name(t.value, Span(self.path, t.line, t.column, len(t.value))), t, t

    def indexed(self, c):  # NAME "[" expr ("," expr)* "]"
        a, b = c[0], c[-1]
        return ast.Indexed(self._id(a), tuple(x[0] for x in c[2:-1:2]), self._span(a, b)), a, b

    def call(self, c):  # NAME "(" [arg ("," arg)*] ")"
        a, b = c[0], c[-1]
        args = [x[0] for x in c[2:-1:2]]
        positional = tuple(v for v in args if type(v) is not tuple)
        kwargs = tuple(v for v in args if type(v) is tuple)
        return ast.Call(self._id(a), positional, kwargs, self._span(a, b)), a, b

    def kwarg(self, c):  # NAME "=" expr
        a, e = c
        return (self._id(a), e[0]), a, e[2]

    def generator(self, c):  # NAME "(" expr "for" NAME "in" expr ("if" expr)? ")"
        a, b = c[0], c[-1]
        cond = c[8][0] if len(c) == 10 else None
        return ast.Generator(self._id(a), c[2][0], self._id(c[4]), c[6][0], cond, self._span(a, b)), a, b

    def string(self, c):  # STRING
        t = c[0]
        return ast.Str(t.value[1:-1], Span(self.path, t.line, t.column, len(t.value))), t, t

    def quantity(self, c):  # NUMBER UNIT?
        a, b = c[0], c[-1]
        return ast.Number(float(a), c[1].value if len(c) > 1 else None, self._span(a, b)), a, b

    def list(self, c):  # "[" [signed_number ("," signed_number)*] "]" UNIT?
        a, b = c[0], c[-1]
        unit = b.value if b.type == "UNIT" else None
        values = tuple(x[0] for x in c[1:] if type(x) is tuple)
        return ast.ListLit(values, unit, self._span(a, b)), a, b

    def signed_number(self, c):  # MINUS? NUMBER
        return (-float(c[1]) if len(c) == 2 else float(c[0])), c[0], c[-1]
