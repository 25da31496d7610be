"""Text to syntax tree: ``parse(text, path) -> Module``.

The grammar lives in ``grid.lark`` (LALR, contextual lexer, positions kept);
the compiled parser is cached on disk by lark and in memory here.  Syntax
errors become :class:`GridError` with the position and a hint.
"""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from gridlang.errors import SOURCES, GridError, Span
from gridlang.grammar import ast

GRAMMAR = Path(__file__).with_name("grid.lark")

_OPEN = {"LPAR", "LSQB"}
_CLOSE = {"RPAR", "RSQB"}


class _Brackets:
    """Post-lexer: a line break inside ( ) or [ ] continues the statement."""

    always_accept = ("_SEP",)

    def process(self, stream):
        depth = 0
        for tok in stream:
            if tok.type in _OPEN:
                depth += 1
            elif tok.type in _CLOSE:
                depth = max(0, depth - 1)
            elif tok.type == "_SEP" and depth and ";" not in tok:
                continue
            yield tok


@cache
def _lark() -> Lark:
    cache_file = Path(tempfile.gettempdir()) / f"gridlang-{GRAMMAR.stat().st_mtime_ns}.lark-cache"
    return Lark(
        GRAMMAR.read_text(),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=False,
        postlex=_Brackets(),
        cache=str(cache_file),
    )


def parse(text: str, path: str = "<string>") -> ast.Module:
    """Parse one source text; raise GridError at the first syntax error."""
    SOURCES[path] = text
    try:
        tree = _lark().parse(text if text.endswith("\n") else text + "\n")
        statements = _ToAst(path).transform(tree)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, path, text) from None
    except VisitError as exc:
        if isinstance(exc.orig_exc, GridError):
            raise exc.orig_exc from None
        raise
    return ast.Module(path, tuple(statements))


def parse_file(path: Path) -> ast.Module:
    return parse(path.read_text(encoding="utf-8"), str(path))


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
    "$END": "the end of the file",
}


def _describe(terminal: str) -> str:
    if terminal in _TOKEN_WORDS:
        return _TOKEN_WORDS[terminal]
    pattern = _lark().get_terminal(terminal).pattern
    return f"'{pattern.value}'" if pattern.type == "str" else terminal.lower()


def _syntax_error(exc: UnexpectedInput, path: str, text: str) -> GridError:
    line, col = exc.line if exc.line > 0 else text.count("\n") + 1, max(exc.column, 1)
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        hint = "units follow their number without a space, e.g. '5 $/kWh'" if char in "$%€" else None
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
    hint = f"expected {', '.join(expected[:6])}" + (" or more" if len(expected) > 6 else "") if expected else None
    if token.type == "NAME" and "_SEP" in exc.expected:
        hint = "end the statement with a new line or ';' before the next one"
    width = len(str(token)) if token.type not in ("_SEP", "$END") else 1
    return GridError(Span(path, line, col, width), message, hint)


# ---------------------------------------------------------------- tree to AST


def _span(path: str, meta) -> Span:
    width = meta.end_column - meta.column if getattr(meta, "end_line", None) == meta.line else 1
    return Span(path, meta.line, meta.column, max(width, 1))


@v_args(meta=True)
class _ToAst(Transformer):
    """Builds ast nodes bottom-up; tokens become Ident, numbers or strings."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    # -- helpers
    def _tok(self, tok: Token) -> Span:
        return Span(self.path, tok.line, tok.column, len(tok))

    def _id(self, tok: Token) -> ast.Ident:
        return ast.Ident(str(tok), self._tok(tok))

    def _s(self, meta) -> Span:
        return _span(self.path, meta)

    # -- top level
    def start(self, meta, children):
        return children

    def system(self, meta, c):
        return ast.System(self._id(c[0]), c[1], self._s(meta))

    def profile(self, meta, c):
        return ast.Profile(self._id(c[0]), c[1], self._s(meta))

    def network(self, meta, c):
        return ast.Network(self._id(c[0]), self._id(c[1]), tuple(c[2:]), self._s(meta))

    def element(self, meta, c):
        (first, last) = c[1]
        link = next((x for x in c[2:] if isinstance(x, list)), None)
        attrs = next((x for x in c[2:] if isinstance(x, tuple)), ())
        return ast.Element(self._id(c[0]), first, last, tuple(link) if link else None, attrs, self._s(meta))

    def link(self, meta, c):
        return [self._id(c[0]), self._id(c[1])]

    def names(self, meta, c):
        return (self._id(c[0]), self._id(c[1]) if len(c) > 1 else None)

    def asset(self, meta, c):
        return ast.Asset(self._id(c[0]), self._id(c[1]), self._id(c[2]), c[3] if len(c) > 3 else (), self._s(meta))

    def table(self, meta, c):
        set_, columns, body = c
        rows, source = (body, None) if isinstance(body, list) else ((), body)
        return ast.Table(self._id(set_), tuple(columns), tuple(rows), source, self._s(meta))

    def columns(self, meta, c):
        return c

    def column(self, meta, c):
        return ast.Column(self._id(c[0]), str(c[1]) if len(c) > 1 else None)

    def rows(self, meta, c):
        return list(c)

    def row(self, meta, c):
        return (tuple(c), self._s(meta))

    def agent(self, meta, c):
        return ast.Agent(self._id(c[0]), tuple(self._id(t) for t in c[1:]), self._s(meta))

    def objective(self, meta, c):
        return ast.Objective(str(c[0]), c[1], self._s(meta))

    def include(self, meta, c):
        return ast.Include(ast.Str(str(c[0])[1:-1], self._tok(c[0])), self._s(meta))

    def study(self, meta, c):
        return ast.Study(self._id(c[0]), self._id(c[1]), c[2] if len(c) > 2 else (), self._s(meta))

    def attrs(self, meta, c):
        return tuple(c)

    def assign(self, meta, c):
        return ast.Attr(self._id(c[0]), c[1], self._s(meta))

    def flag(self, meta, c):
        return ast.Attr(self._id(c[0]), None, self._s(meta))

    # -- model layer
    def kind_def(self, meta, c):
        return ast.KindDef(self._id(c[0]), self._id(c[1]), c[2], self._s(meta))

    def formulation_def(self, meta, c):
        radial = any(isinstance(x, Token) and x.type == "RADIAL" for x in c)
        return ast.FormulationDef(self._id(c[0]), radial, c[-1], self._s(meta))

    def body(self, meta, c):
        return tuple(c)

    def _dims_unit_rest(self, c):
        """Split the optional [dims] and : unit that follow a declared name."""
        dims: tuple = ()
        unit = None
        rest = list(c)
        if rest and isinstance(rest[0], tuple) and all(isinstance(d, ast.Ident) for d in rest[0]):
            dims = rest.pop(0)
        if rest and isinstance(rest[0], Token) and rest[0].type == "UNIT":
            unit = self._id(rest.pop(0))
        return dims, unit, rest

    def param_decl(self, meta, c):
        dims, unit, rest = self._dims_unit_rest(c[1:])
        return ast.ParamDecl(self._id(c[0]), dims, unit, rest[0] if rest else None, self._s(meta))

    def var_decl(self, meta, c):
        dims, unit, rest = self._dims_unit_rest(c[1:])
        domain = ast.Domain("continuous", None, None)
        if rest and isinstance(rest[0], ast.Domain):
            domain = rest.pop(0)
        return ast.VarDecl(self._id(c[0]), dims, unit, domain, rest[0] if rest else None, self._s(meta))

    def dims(self, meta, c):
        return tuple(self._id(t) for t in c)

    def bounds(self, meta, c):
        return ast.Domain("continuous", c[0], c[1])

    def binary(self, meta, c):
        return ast.Domain("binary", None, None)

    def integer(self, meta, c):
        return ast.Domain("integer", c[0] if c else None, c[1] if len(c) > 1 else None)

    def constraint(self, meta, c):
        label = self._id(c[0]) if isinstance(c[0], Token) else None
        rest = c[1:] if label is not None else c
        return ast.Constraint(label, rest[0], rest[1] if len(rest) > 1 else None, self._s(meta))

    def inject(self, meta, c):
        dims = c[1] if len(c) == 3 else ()
        return ast.Inject(self._id(c[0]), dims, c[-1], self._s(meta))

    def cost(self, meta, c):
        return ast.Cost(c[0], c[1] if len(c) > 1 else None, self._s(meta))

    def output(self, meta, c):
        dims, unit, rest = self._dims_unit_rest(c[1:])
        return ast.Output(self._id(c[0]), dims, unit, rest[0], self._s(meta))

    # -- expressions
    def or_(self, meta, c):
        return c[0] if len(c) == 1 else ast.BoolOp("or", tuple(c), self._s(meta))

    def and_(self, meta, c):
        return c[0] if len(c) == 1 else ast.BoolOp("and", tuple(c), self._s(meta))

    def not_(self, meta, c):
        return ast.Not(c[0], self._s(meta))

    def compare(self, meta, c):
        if len(c) == 1:
            return c[0]
        return ast.Compare(tuple(c[0::2]), tuple(str(op) for op in c[1::2]), self._s(meta))

    def binop(self, meta, c):
        return ast.BinOp(str(c[1]), c[0], c[2], self._s(meta))

    def neg(self, meta, c):
        return ast.Neg(c[1], self._s(meta))

    def pow(self, meta, c):
        return ast.Pow(c[0], c[1], self._s(meta))

    def name(self, meta, c):
        return ast.Name(str(c[0]), self._tok(c[0]))

    def cell_name(self, meta, c):
        return self._id(c[0])

    def indexed(self, meta, c):
        return ast.Indexed(self._id(c[0]), tuple(c[1:]), self._s(meta))

    def call(self, meta, c):
        func, args = c[0], c[1:]
        positional = tuple(a for a in args if not isinstance(a, tuple))
        kwargs = tuple(a for a in args if isinstance(a, tuple))
        return ast.Call(self._id(func), positional, kwargs, self._s(meta))

    def kwarg(self, meta, c):
        return (self._id(c[0]), c[1])

    def generator(self, meta, c):
        func, body, var, domain = c[:4]
        cond = c[4] if len(c) > 4 else None
        return ast.Generator(self._id(func), body, self._id(var), domain, cond, self._s(meta))

    def string(self, meta, c):
        return ast.Str(str(c[0])[1:-1], self._tok(c[0]))

    def quantity(self, meta, c):
        return ast.Number(float(c[0]), str(c[1]) if len(c) > 1 else None, self._s(meta))

    def list(self, meta, c):
        unit = str(c[-1]) if c and isinstance(c[-1], Token) else None
        values = tuple(v for v in c if not isinstance(v, Token))
        return ast.ListLit(values, unit, self._s(meta))

    def signed_number(self, meta, c):
        return -float(c[-1]) if len(c) == 2 else float(c[0])
