"""The syntax tree of a .grid file: frozen dataclasses that carry their spans.

The parser produces these and nothing else; later stages never see lark
objects.  Expressions are shared by the case layer (data: quantities,
profiles) and the model layer (math over sets, time and variables).
"""

from __future__ import annotations

from dataclasses import dataclass

from gridlang.errors import Span


@dataclass(frozen=True, slots=True)
class Ident:
    """A name as written, with where it was written."""

    name: str
    span: Span


# ------------------------------------------------------------------ expressions


@dataclass(frozen=True, slots=True)
class Number:
    value: float
    unit: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class ListLit:
    """``[0, .5, 1] kW``: a literal series, one value per time step."""

    values: tuple[float, ...]
    unit: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class Str:
    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True, slots=True)
class Indexed:
    """``x[t-1]``, ``v[to(l), t]``: a parameter or variable at given indices."""

    name: Ident
    indices: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    """``csv("f.csv", column = "load")``, ``to(l)``, ``sqrt(v)``."""

    func: Ident
    args: tuple[Expr, ...]
    kwargs: tuple[tuple[Ident, Expr], ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Generator:
    """``sum(P[l, t] for l in into(b) if ...)``: a reduction over a set."""

    func: Ident
    body: Expr
    var: Ident
    domain: Expr
    cond: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str  # + - * /
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Pow:
    base: Expr
    exponent: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Compare:
    """``a <= b <= c``: a chain of comparisons (constraints or masks)."""

    operands: tuple[Expr, ...]
    ops: tuple[str, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # and / or
    operands: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    span: Span


Expr = Number | ListLit | Str | Name | Indexed | Call | Generator | BinOp | Neg | Pow | Compare | BoolOp | Not


def expr_text(e: Expr) -> str:
    """A data expression written back as text, for messages (``1.1 * vmin``, ``-qmax``)."""
    match e:
        case Number(value, unit):
            return f"{value:g}" + (f" {unit}" if unit else "")
        case ListLit(values, unit):
            return "[" + ", ".join(f"{v:g}" for v in values) + "]" + (f" {unit}" if unit else "")
        case Name(id):
            return id
        case Str(value):
            return f'"{value}"'
        case Neg(operand):
            return f"-{expr_text(operand)}"
        case BinOp(op, left, right):
            return f"{expr_text(left)} {op} {expr_text(right)}"
        case Pow(base, exponent):
            return f"{expr_text(base)}^{expr_text(exponent)}"
    return "..."


# ------------------------------------------------------------------ case layer


@dataclass(frozen=True, slots=True)
class Attr:
    """``name = value`` inside braces; a bare ``name`` is a flag set to true."""

    name: Ident
    value: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class System:
    name: Ident
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Profile:
    name: Ident
    value: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Element:
    """``bus b2..b33 { vmin = 0.95 }`` or ``line l1 from b1 to b2 { r = 0.1 ohm }``."""

    set: Ident
    first: Ident
    last: Ident | None  # the end of a range b2..b33
    link: tuple[Ident, Ident] | None
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Column:
    name: Ident
    unit: str | None


Cell = Ident | float | Str


@dataclass(frozen=True, slots=True)
class Table:
    """``line table (name, from, to, r [ohm]) { ... }`` or ``... from csv("f.csv")``."""

    set: Ident
    columns: tuple[Column, ...]
    rows: tuple[tuple[tuple[Cell, ...], Span], ...]
    source: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class Network:
    name: Ident
    formulation: Ident
    items: tuple[Element | Table, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Asset:
    """``storage es1 at b18 { energy = 1 MWh }``: one instance of a kind."""

    kind: Ident
    name: Ident
    bus: Ident
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Agent:
    name: Ident
    owns: tuple[Ident, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class AgentAt:
    """``agent mg1 at b18, b19``: in a cloud file, an agent whose assets live in its
    own file, and the buses where they may connect (:mod:`gridlang.parts`)."""

    name: Ident
    buses: tuple[Ident, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class AgentPart:
    """``agent mg1 in "../cloud.grid" { horizon = 24 h; step = 1 h; market = energy }``:
    the first statement of an agent's own file, naming the cloud file it joins and
    what it expects of it (:mod:`gridlang.parts`)."""

    name: Ident
    cloud: Str
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Market:
    """``market energy among a, b, c { fee = 5 $/MWh; payments = nash }``."""

    name: Ident
    members: tuple[Ident, ...]
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Game:
    """``game local between p1, p2 and dso { retail = r; feed_in = f; payments = nash }``."""

    name: Ident
    prosumers: tuple[Ident, ...]
    operator: Ident
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Objective:
    sense: str
    expr: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Include:
    path: Str
    span: Span


@dataclass(frozen=True, slots=True)
class Study:
    name: Ident
    type: Ident
    attrs: tuple[Attr, ...]
    span: Span


# ------------------------------------------------------------------ model layer


@dataclass(frozen=True, slots=True)
class Bound:
    """The values a parameter may take: ``in (0, 1]`` or ``>= 0``.

    A missing end is unbounded; an open end excludes its value:
    ``lower < x`` (open) or ``lower <= x`` (closed), likewise above.  The ends
    are data expressions of the model layer (numbers with units, ``inf``,
    other parameters of the same instance)."""

    lower: Expr | None
    upper: Expr | None
    lower_open: bool
    upper_open: bool
    span: Span

    def text(self) -> str:
        """The allowed range as written, e.g. '(0, 1]' or '>= 0'."""
        if self.lower is not None and self.upper is not None:
            return f"{'(' if self.lower_open else '['}{expr_text(self.lower)}, {expr_text(self.upper)}{')' if self.upper_open else ']'}"
        if self.lower is not None:
            return f"{'>' if self.lower_open else '>='} {expr_text(self.lower)}"
        return f"{'<' if self.upper_open else '<='} {expr_text(self.upper)}"


@dataclass(frozen=True, slots=True)
class ParamDecl:
    name: Ident
    dims: tuple[Ident, ...]
    unit: Ident | None  # a unit, or 'flag' for booleans
    default: Expr | None
    span: Span
    bound: Bound | None = None  # declared range of values, checked at resolve


@dataclass(frozen=True, slots=True)
class Domain:
    kind: str  # continuous / binary / integer
    lower: Expr | None
    upper: Expr | None


@dataclass(frozen=True, slots=True)
class VarDecl:
    name: Ident
    dims: tuple[Ident, ...]
    unit: Ident | None
    domain: Domain
    where: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class Constraint:
    label: Ident | None
    expr: Expr
    where: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class Inject:
    """``inject p[t] = discharge[t] - charge[t]``: adds to its bus's nodal balance."""

    channel: Ident
    dims: tuple[Ident, ...]
    expr: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Cost:
    """``cost [label:] expr [where cond]``; the label names the cost's category in reports."""

    expr: Expr
    where: Expr | None
    span: Span
    label: Ident | None = None


@dataclass(frozen=True, slots=True)
class Output:
    """``output voltage[bus, t]: p.u. = sqrt(v)``: a quantity derived after solving."""

    name: Ident
    dims: tuple[Ident, ...]
    unit: Ident | None
    expr: Expr
    span: Span


Decl = ParamDecl | VarDecl | Constraint | Inject | Cost | Output


@dataclass(frozen=True, slots=True)
class KindDef:
    name: Ident
    at: Ident
    body: tuple[Decl, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class FormulationDef:
    name: Ident
    radial: bool
    body: tuple[Decl, ...]
    span: Span


Statement = (
    System | Profile | Network | Asset | Table | Agent | Objective | Include | Study | KindDef | FormulationDef
    | AgentAt | AgentPart
)


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed file: its statements in order."""

    path: str
    statements: tuple[Statement, ...]
