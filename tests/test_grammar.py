"""Grammar snippets: what parses into what, and where syntax errors point."""

import pytest

from gridlang.compiler.units import Base, parse_unit
from gridlang.errors import GridError
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


def test_chained_comparison_and_generator():
    f = only("formulation f for radial network {\n -1 <= P[l, t] <= 1\n sum(P[l, t] for l in into(b) if r[l] > 0) == 0\n}")
    assert f.radial and f.body[0].expr.ops == ("<=", "<=")
    gen = f.body[1].expr.operands[0]
    assert isinstance(gen, ast.Generator) and gen.var.name == "l" and gen.cond is not None


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("system s { base_power = 1 MVA\n", 1, 30, "ends in the middle"),
        ("profile p = [1, 2", 1, 17, "ends in the middle"),
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
