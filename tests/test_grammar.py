"""Grammar snippets: what parses into what, and where syntax errors point."""

import dataclasses
import re

import pytest

from gridlang.compiler.units import Base, parse_unit
from gridlang.errors import GridError, Span
from gridlang.grammar import ast
from gridlang.grammar.parser import parse


def only(text):
    (stmt,) = parse(text).statements
    return stmt


def test_units_attach_to_numbers_and_lists():
    p = only("profile tou = [40, 90.5, -1] $/MWh")
    assert isinstance(p.value, ast.ListLit) and p.value.values == (40, 90.5, -1) and p.value.unit == "$/MWh"
    a = only("load l at b { p = 90 kW * shape; q = 5 p.u. }")
    assert a.attrs[0].value.left == ast.Number(90, "kW", a.attrs[0].value.left.span)
    assert a.attrs[1].value.unit == "p.u."


def test_newlines_inside_brackets_continue_a_statement():
    p = only("profile x = [1,\n  2,\n  3]")
    assert p.value.values == (1, 2, 3)


def test_bus_range_table_and_link():
    n = only("network n uses lindistflow {\n bus b2..b9 { vmin = 0.95 }\n line l1 from b1 to b2 { r = 1 ohm }\n line table (name, from, to, r [ohm]) {\n  l2 b2 b3 0.5\n }\n}")
    bus, line, table = n.items
    assert (bus.first.name, bus.last.name) == ("b2", "b9")
    assert [e.name for e in line.link] == ["b1", "b2"]
    assert table.columns[3].unit == "ohm" and table.rows[0][0][3] == 0.5


def test_model_layer_statements():
    k = only("kind k at bus {\n param e: MWh = 0\n var x[t]: MW in [0, e] where e > 0\n c: x[t] <= x[t-1] + 1 where e > 0\n inject p[t] = x[t]\n cost 5 $/MWh * x[t] * dt\n}")
    param, var, con, inj, cost = k.body
    assert param.unit.name == "MWh" and var.domain.kind == "continuous" and var.where is not None
    assert con.label.name == "c" and con.expr.ops == ("<=",)
    assert inj.channel.name == "p" and isinstance(cost.expr, ast.BinOp)


def test_parameter_ranges():
    k = only("kind k at bus {\n param e = 1 in (0, 1]\n param r: ohm >= 0\n param v[bus] = 1.1 >= vmin\n param c: MW < 5 MW\n param d = 2 in [1, inf)\n param f: MW = -g\n}")
    e, r, v, c, d, f = k.body
    assert (e.default.value, e.bound.lower.value, e.bound.upper.value, e.bound.lower_open, e.bound.upper_open) == (1, 0, 1, True, False)
    assert e.bound.text() == "(0, 1]" and (e.bound.span.line, e.bound.span.col) == (2, 14)
    assert r.default is None and r.unit.name == "ohm" and r.bound.text() == ">= 0" and r.bound.upper is None
    assert v.dims[0].name == "bus" and v.default.value == 1.1 and v.bound.lower.id == "vmin" and not v.bound.lower_open
    assert c.bound.text() == "< 5 MW" and c.bound.upper_open and c.bound.lower is None
    assert d.bound.text() == "[1, inf)" and d.bound.upper_open
    assert f.bound is None and isinstance(f.default, ast.Neg)


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("kind k at bus {\n param a == 0\n}", 2, 10, r"range is not written with '=='"),
        ("kind k at bus {\n param a = 1 in 0, 1\n}", 2, 17, r"unexpected '0'"),
    ],
)
def test_bad_parameter_ranges(text, line, col, message):
    with pytest.raises(GridError, match=message) as info:
        parse(text, "x.grid")
    assert (info.value.span.line, info.value.span.col) == (line, col)


def test_chained_comparison_and_generator():
    f = only("formulation f for radial network {\n -1 <= P[l, t] <= 1\n sum(P[l, t] for l in into(b) if r[l] > 0) == 0\n}")
    assert f.radial and f.body[0].expr.ops == ("<=", "<=")
    gen = f.body[1].expr.operands[0]
    assert isinstance(gen, ast.Generator) and gen.var.name == "l" and gen.cond is not None


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("system s { base_power = 1 MVA\n", 1, 10, r"'\{' is never closed"),  # named where it opens
        ("profile p = [1, 2", 1, 13, r"'\[' is never closed"),
        ("system s { a = 1 b = 2 }", 1, 18, "read as the unit"),
        ("load l at b { p = 5 @ }", 1, 21, "unexpected character"),
        ("kind k at bus {\n  x[t] <= 2 for\n}", 2, 13, "unexpected 'for'"),
    ],
)
def test_syntax_errors_point_at_the_mistake(text, line, col, message):
    with pytest.raises(GridError, match=message) as info:
        parse(text, "x.grid")
    assert (info.value.span.line, info.value.span.col) == (line, col)
    assert "^" in info.value.render()


def test_unit_dimensions_and_per_unit_factors():
    base = Base(10e6, 12.66e3)
    assert base.factor("kW") == (pytest.approx(1e-4), (1, 0, 0, 0))
    assert base.factor("MWh")[1] == (1, 1, 0, 0)
    assert base.factor("ohm")[0] == pytest.approx(10e6 / 12.66e3**2)
    assert base.factor("$/MWh")[0] == pytest.approx(10.0)
    assert parse_unit("%") == (pytest.approx(0.01), (0, 0, 0, 0))


# ---------------------------------------------------------------- table bodies
# The body of an inline table is lexed as one token and split into rows and cells
# by a regular expression (parser._table_rows); it must give what the grammar's
# row/cell rules gave, with the same positions.

TABLE = "load table (name, at, p [kW], note) {"


def rows_of(text):
    (table,) = parse(text, "t.grid").statements
    return table.rows


def cells(row):
    return [c.name if isinstance(c, ast.Ident) else c.value if isinstance(c, ast.Str) else c for c in row[0]]


def test_table_rows_with_comments():
    rows = rows_of(
        TABLE + "   # header comment with } and \"\n"
        "  ld1 b1 100 \"x\"   # a comment } \" ; not a row\n"
        "\n"
        "  # a whole line of comment\n"
        "  ld2 b2 -5 \"a } # b\"#glued comment\n"
        "}  # after\n"
    )
    assert [cells(r) for r in rows] == [["ld1", "b1", 100.0, "x"], ["ld2", "b2", -5.0, "a } # b"]]
    (c1, s1), (c2, s2) = rows
    assert (s1.line, s1.col, s1.width) == (2, 3, 14)
    assert (s2.line, s2.col, s2.width) == (5, 3, 19)
    assert (c2[3].span.line, c2[3].span.col, c2[3].span.width) == (5, 13, 9)
    assert (c1[1].span.line, c1[1].span.col, c1[1].span.width) == (2, 7, 2)


def test_table_rows_separated_by_semicolons():
    rows = rows_of(TABLE + " ld1 b1 1 \"a\"; ld2 b2 2 \"b\";; ld3 b3 3 \"c\" ;\n ld4 b4 4 \"d\" }\n")
    assert [cells(r)[0] for r in rows] == ["ld1", "ld2", "ld3", "ld4"]
    assert [(s.line, s.col, s.width) for _, s in rows] == [(1, 39, 12), (1, 53, 12), (1, 68, 12), (2, 2, 12)]
    assert rows_of(TABLE + "}") == () and rows_of(TABLE + " ;\n # nothing\n}") == ()


def test_table_cells_numbers_and_continued_rows():
    rows = rows_of("x table (a, b, c, d, e) {\n  - 5 -.5 1e3 2.5E-1 1.\n  n \\\n   7 8 9 10\n}\n")
    assert [cells(r) for r in rows] == [[-5.0, -0.5, 1000.0, 0.25, 1.0], ["n", 7.0, 8.0, 9.0, 10.0]]
    (_, first), (_, second) = rows
    assert (first.line, first.col, first.width) == (2, 3, 21)  # from the '-' of '- 5' to the end of '1.'
    assert (second.line, second.col, second.width) == (3, 3, 1)  # over two lines joined by '\\'
    assert rows[1][0][0].span == Span("t.grid", 3, 3, 1)


@pytest.mark.parametrize(
    ("row", "col", "width", "message", "hint"),
    [
        ("ld1 b1 1.2.3 x", 10, 5, r"'1\.2\.3' is not a number", r"written like 12"),
        ("ld1 b1 5kW x", 10, 3, r"'5kW' is not a number", r"unit goes in the column header"),
        ("ld1 b1 -5$ x", 10, 3, r"'-5\$' is not a number", r"unit goes in the column header"),
        ("ld1 b1 5 $", 12, 1, r"unexpected character '\$' in a table row", r"unit goes in the column header"),
        ('ld1 b1 5 "open', 12, 1, r'"string" is not closed', r'end it with a "'),
        ("ld1, b1, 5 x", 6, 1, r"unexpected character ','", r"separated by spaces, not commas"),
        ("ld1 b1 - x", 12, 1, r"unexpected 'x'", r"negative number"),
        ("ld1 b1 5 (x)", 12, 1, r"unexpected character '\('", r"a row holds names, numbers"),
    ],
)
def test_bad_table_cells_point_at_the_cell(row, col, width, message, hint):
    text = "system s { base_power = 1 MVA }\n" + TABLE + "\n  ld0 b0 1 x\n  " + row + "\n}\n"
    with pytest.raises(GridError, match=message) as info:
        parse(text, "x.grid")
    span = info.value.span
    assert (span.file, span.line, span.col, span.width) == ("x.grid", 4, col, width)
    assert info.value.hint is not None and re.search(hint, info.value.hint)
    assert f"x.grid:4:{col}: error:" in info.value.render() and "^" in info.value.render()


def test_unclosed_table_and_a_brace_elsewhere():
    with pytest.raises(GridError, match="ends in the middle of a statement") as info:
        parse(TABLE + "\n  ld1 b1 1 x\n  ld2 b2 2 y   # no closing brace\n", "x.grid")
    assert (info.value.span.line, info.value.span.col) == (3, 34)  # where lark's last token was
    with pytest.raises(GridError, match="unexpected '\\{'") as info:  # ROWS never stands for a stray '{'
        parse("profile p = {1}", "x.grid")
    assert (info.value.span.col, info.value.span.width) == (13, 1)
    with pytest.raises(GridError, match="unexpected 'x'") as info:
        parse("load table (name) x", "x.grid")
    assert info.value.hint == "expected 'from', '{', a new line or ';'"


# ---------------------------------------------------------------- spans
# Every span of a sample that uses each kind of node, pinned as the parser gave
# them when it built a lark tree with propagate_positions (before the syntax tree
# was built during parsing): <node>@line:col:width in the order of the tree.

SAMPLE = """\
system s { base_power = 1 MVA; base_voltage = 10 kV; horizon = 4 h; step = 1 h }
profile shape = [0.5, -1, .25,
  2e3] kW
profile mix = not (a or b) and c >= 2 * (shape - 1) ^ 2
network n uses lindistflow {
  bus b1 { slack; v_set = 1.0 }
  bus b2..b4 { vmin = 0.9 }
  line l1 from b1 to b2 { r = 0.1 ohm; x = -0.2 ohm }
  line table (name, from, to, r [ohm], x [ohm]) {
    l2 b2 b3 0.5 -0.25   # a comment
    l3 b3 b4 - 1 2; l4 b2 \\
      b4 1e-3 .5
  }
}
load table (name, at, p [kW], note) { ld1 b2 100 "a } b"; ld2 b3 -5 "" }
load ld3 at b4 { p = csv("x.csv", column = "p") * 1 kW; q = 0 }
agent a owns ld1, ld2
objective minimize cost
include "more.grid"
study day: dispatch { solver = highs }
kind heater at bus {
  param pmax[t]: MW = 1 MW
  var p[t]: MW in [0, pmax[t]] where pmax > 0
  var on[t] binary
  var n[t] integer in [0, 3]
  c1: -p[t] <= sum(p[l, t] for l in into(b) if r[l] > 0) where not f(x)
  p[first] == (
    1 + p[t-1])
  inject p[t] = -p[t]
  cost 5 $/MWh * p[t] * dt
  output heat[t]: MWh = p[t] * dt
}
formulation f for radial network { param r[line]: ohm }
"""

PINNED = """
Ident@1:8:1 Ident@1:12:10 Number@1:25:5 Attr@1:12:18 Ident@1:32:12 Number@1:47:5 Attr@1:32:20 Ident@1:54:7
Number@1:64:3 Attr@1:54:13 Ident@1:69:4 Number@1:76:3 Attr@1:69:10 System@1:1:80 Ident@2:9:5 ListLit@2:17:1
Profile@2:1:1 Ident@4:9:3 Name@4:20:1 Name@4:25:1 BoolOp@4:20:6 Not@4:15:12 Name@4:32:1 Number@4:37:1
Name@4:42:5 Number@4:50:1 BinOp@4:42:9 Number@4:55:1 Pow@4:41:15 BinOp@4:37:19 Compare@4:32:24 BoolOp@4:15:41
Profile@4:1:55 Ident@5:9:1 Ident@5:16:11 Ident@6:3:3 Ident@6:7:2 Ident@6:12:5 Attr@6:12:5 Ident@6:19:5
Number@6:27:3 Attr@6:19:11 Element@6:3:29 Ident@7:3:3 Ident@7:7:2 Ident@7:11:2 Ident@7:16:4 Number@7:23:3
Attr@7:16:10 Element@7:3:25 Ident@8:3:4 Ident@8:8:2 Ident@8:16:2 Ident@8:22:2 Ident@8:27:1 Number@8:31:7
Attr@8:27:11 Ident@8:40:1 Number@8:45:7 Neg@8:44:8 Attr@8:40:12 Element@8:3:51 Ident@9:3:4 Ident@9:15:4
Ident@9:21:4 Ident@9:27:2 Ident@9:31:1 Ident@9:40:1 Ident@10:5:2 Ident@10:8:2 Ident@10:11:2 row@10:5:18
Ident@11:5:2 Ident@11:8:2 Ident@11:11:2 row@11:5:14 Ident@11:21:2 Ident@11:24:2 Ident@12:7:2 row@11:21:1
Table@9:3:1 Network@5:1:1 Ident@15:1:4 Ident@15:13:4 Ident@15:19:2 Ident@15:23:1 Ident@15:31:4 Ident@15:39:3
Ident@15:43:2 Str@15:50:7 row@15:39:18 Ident@15:59:3 Ident@15:63:2 Str@15:69:2 row@15:59:12 Table@15:1:72
Ident@16:1:4 Ident@16:6:3 Ident@16:13:2 Ident@16:18:1 Ident@16:22:3 Str@16:26:7 Ident@16:35:6 Str@16:44:3
Call@16:22:26 Number@16:51:4 BinOp@16:22:33 Attr@16:18:37 Ident@16:57:1 Number@16:61:1 Attr@16:57:5
Asset@16:1:63 Ident@17:7:1 Ident@17:14:3 Ident@17:19:3 Agent@17:1:21 Name@18:20:4 Objective@18:1:23 Str@19:9:11
Include@19:1:19 Ident@20:7:3 Ident@20:12:8 Ident@20:23:6 Name@20:32:5 Attr@20:23:14 Study@20:1:38 Ident@21:6:6
Ident@21:16:3 Ident@22:9:4 Ident@22:14:1 Ident@22:18:2 Number@22:23:4 ParamDecl@22:3:24 Ident@23:7:1
Ident@23:9:1 Ident@23:13:2 Number@23:20:1 Ident@23:23:4 Name@23:28:1 Indexed@23:23:7 Name@23:38:4 Number@23:45:1
Compare@23:38:8 VarDecl@23:3:43 Ident@24:7:2 Ident@24:10:1 VarDecl@24:3:16 Ident@25:7:1 Ident@25:9:1
Number@25:24:1 Number@25:27:1 VarDecl@25:3:26 Ident@26:3:2 Ident@26:8:1 Name@26:10:1 Indexed@26:8:4 Neg@26:7:5
Ident@26:16:3 Ident@26:20:1 Name@26:22:1 Name@26:25:1 Indexed@26:20:7 Ident@26:32:1 Ident@26:37:4 Name@26:42:1
Call@26:37:7 Ident@26:48:1 Name@26:50:1 Indexed@26:48:4 Number@26:55:1 Compare@26:48:8 Generator@26:16:41
Compare@26:7:50 Ident@26:68:1 Name@26:70:1 Call@26:68:4 Not@26:64:8 Constraint@26:3:69 Ident@27:3:1 Name@27:5:5
Indexed@27:3:8 Number@28:5:1 Ident@28:9:1 Name@28:11:1 Number@28:13:1 BinOp@28:11:3 Indexed@28:9:6 BinOp@28:5:10
Compare@27:3:1 Constraint@27:3:1 Ident@29:10:1 Ident@29:12:1 Ident@29:18:1 Name@29:20:1 Indexed@29:18:4
Neg@29:17:5 Inject@29:3:19 Number@30:8:7 Ident@30:18:1 Name@30:20:1 Indexed@30:18:4 BinOp@30:8:14 Name@30:25:2
BinOp@30:8:19 Cost@30:3:24 Ident@31:10:4 Ident@31:15:1 Ident@31:19:3 Ident@31:25:1 Name@31:27:1 Indexed@31:25:4
Name@31:32:2 BinOp@31:25:9 Output@31:3:31 KindDef@21:1:1 Ident@33:13:1 Ident@33:42:1 Ident@33:44:4 Ident@33:51:3
ParamDecl@33:36:18 FormulationDef@33:1:55
"""


def _spans(node, out):
    """``Kind@line:col:width`` of every span under ``node``, depth first; table rows are ``row@...``."""
    if isinstance(node, Span):  # the span of a table row, beside its cells
        out.append(f"row@{node.line}:{node.col}:{node.width}")
    elif dataclasses.is_dataclass(node):
        for field in dataclasses.fields(node):
            value = getattr(node, field.name)
            if field.name == "span":
                assert value.file == "s.grid"
                out.append(f"{type(node).__name__}@{value.line}:{value.col}:{value.width}")
            else:
                _spans(value, out)
    elif isinstance(node, tuple | list):
        for x in node:
            _spans(x, out)
    return out


def test_spans_of_a_sample_are_unchanged():
    assert _spans(parse(SAMPLE, "s.grid").statements, []) == PINNED.split()
