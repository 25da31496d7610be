"""A catalogue of bad inputs: each must fail with a GridError at the right place.

Every entry is a small case written to ``<pytest tmp>/eN/case/case.grid`` (next
to copies of the fixtures in ``tests/data/errors``), the stage expected to fail (``load``:
parse and resolve; ``compile``: build the linopy model; ``solve``), the
position the error must point at, a regex its message must match and, for
most, a regex its hint must match.  The rendered error must show
``file:line:col: error: message``, the source line and a caret under the
column.  A Python exception other than GridError is a bug, never accepted.

Entries marked xfail are bugs found while writing this catalogue: the
test states the behaviour we want (strict, so a fix makes them pass and
the mark must then be removed).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import gridlang
from gridlang.errors import SOURCES, GridError, GridErrors

DATA = Path(__file__).resolve().parent / "data" / "errors"

# Line 1 of most cases; a 4-step horizon of 1 h.
SYSTEM = "system s { base_power = 1 MVA; base_voltage = 10 kV; horizon = 4 h; step = 1 h }\n"
# Lines 2-5: a copper plate with two buses.  Cases built on HEAD start at line 6.
COPPER = "network n uses copper_plate {\n  bus b1 { slack }\n  bus b2\n}\n"
HEAD = SYSTEM + COPPER
# Something to dispatch, so a case that is otherwise fine compiles.
ASSETS = "grid g at b1 { import_price = 10 $/MWh }\nload ld at b2 { p = 1 MW }\n"


def radial(*lines: str) -> str:
    """SYSTEM, then a lindistflow network whose items start at line 3."""
    return SYSTEM + "network n uses lindistflow {\n" + "".join(f"  {x}\n" for x in lines) + "}\n"


def heater(*statements: str) -> str:
    """HEAD and ASSETS (lines 6-7), a user kind 'heater' from line 8 whose extra statements start at line K, one heater."""
    body = "".join(f"  {s}\n" for s in statements)
    return HEAD + ASSETS + (
        "kind heater at bus {\n  param pmax: MW\n  var p[t]: MW in [0, pmax]\n" + body + "  inject p[t] = -p[t]\n}\n"
        "heater h at b2 { pmax = 1 MW }\n"
    )


K = 11  # line of the first extra statement in heater()


@dataclass(frozen=True)
class Bad:
    text: str
    line: int
    col: int
    match: str  # regex the error message must match
    hint: str | None = None  # regex the hint must match; None: not checked
    stage: str = "load"  # load | compile | solve
    file: str | None = None  # where the span points: None = the case file; "<stdlib>/..." or a path relative to the case folder


def bad(id: str, *args, xfail: str | None = None, **kwargs):
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(Bad(*args, **kwargs), id=id, marks=marks)


CATALOGUE = [
    # ------------------------------------------------------------ syntax
    bad("syntax-unexpected-token", HEAD + "load ld at b2 { p = = 1 MW }\n", 6, 21, r"unexpected '='", r"expected .*a name"),
    bad("syntax-unclosed-brace-eof", SYSTEM + "network n uses copper_plate {\n  bus b1 { slack }\n", 2, 29, r"'\{' is never closed", r"add the '\}' that closes it"),
    bad("syntax-unclosed-paren", HEAD + "load ld at b2 { p = (1 MW }\n", 6, 27, r"unexpected '\}'", r"expected '\)'"),
    bad("syntax-unexpected-character", HEAD + "load ld at b2 { p = 1 MW } @\n", 6, 28, r"unexpected character '@'"),
    bad("syntax-unit-then-statement", HEAD + "grid g at b1 { import_price = 5 $/MWh import_max = 1 MW }\n", 6, 33,
        r"'\$/MWh' is read as the unit of the number before it", r"new line or ';'"),
    # ------------------------------------------------------------ names
    bad("unknown-name-in-attribute", HEAD + "profile demand = [1, 2, 3, 4]\nload ld at b2 { p = 1 MW; scale = demnd }\n", 7, 35,
        r"unknown name 'demnd'", r"did you mean 'demand'\?"),
    bad("unknown-name-in-profile", HEAD + "profile demand = [1, 2, 3, 4]\nprofile peak = 1.5 * demand + offset\n", 7, 31, r"unknown name 'offset'"),
    bad("attribute-typo", HEAD + "pv p1 at b2 { capacty = 1 MW }\n", 6, 15, r"unknown attribute 'capacty' for pv", r"did you mean 'capacity'\?"),
    bad("unknown-kind", HEAD + "storag es at b2 { energy = 1 MWh; power = 1 MW }\n", 6, 1, r"unknown kind 'storag'", r"did you mean 'storage'\?"),
    bad("unknown-formulation", SYSTEM + "network n uses lindistflo {\n  bus b1 { slack }\n}\n", 2, 16,
        r"unknown formulation 'lindistflo'", r"did you mean 'lindistflow'\?"),
    bad("duplicate-name", HEAD + "load ld at b2 { p = 1 MW }\nload ld at b1 { p = 2 MW }\n", 7, 6, r"'ld' is already defined \(at .*case\.grid:6:6\)", r"another name"),
    bad("bus-not-in-network", HEAD + "load ld at b22 { p = 1 MW }\n", 6, 12, r"bus 'b22' is not in any network", r"did you mean 'b2'\?"),
    bad("unknown-system-attribute", SYSTEM.replace("step =", "stepp =") + COPPER, 1, 69, r"unknown system attribute 'stepp'", r"did you mean 'step'\?"),
    bad("no-system-statement", COPPER + ASSETS, 1, 1, r"no system statement", r"add e\.g\. 'system"),
    bad("unknown-study-type", HEAD + ASSETS + "study s1: dispath { solver = highs }\n", 8, 11, r"unknown study type 'dispath'", r"did you mean 'dispatch'\?"),
    bad("objective-maximize", HEAD + ASSETS + "objective maximize cost\n", 8, 1, r"can only be minimized", r"objective minimize cost"),
    bad("user-kind-unknown-name", HEAD + "kind heater at bus {\n  param pmax: MW\n  var p[t]: MW in [0, pmaxx]\n  inject p[t] = -p[t]\n}\n", 8, 23,
        r"unknown name 'pmaxx' in heater", r"did you mean 'pmax'\?"),
    # ------------------------------------------------------------ units
    bad("unit-mismatch", HEAD + "storage es at b2 { energy = 250 kW; power = 250 kW }\n", 6, 29,
        r"unit mismatch: 'energy' expects energy but got power", r"e\.g\. 1 MWh"),
    bad("missing-unit", HEAD + "storage es at b2 { energy = 1 MWh; power = 250 }\n", 6, 44, r"'power' needs a unit of power", r"e\.g\. 250 kW"),
    bad("unknown-unit", HEAD + "storage es at b2 { energy = 1 MWh; power = 250 kWatt }\n", 6, 44, r"unknown unit 'kWatt'", r"units: .*kW"),
    # ------------------------------------------------------------ data: profiles, CSV, tables, includes
    bad("profile-wrong-length", HEAD + "profile demand = [1, 2, 3]\n", 6, 18, r"profile 'demand' has 3 values but the horizon has 4 steps", r"one value per step"),
    bad("csv-file-missing", HEAD + 'profile demand = csv("nope.csv", column = "a")\n', 6, 22, r"file 'nope\.csv' not found", r"relative to the file"),
    bad("csv-column-missing", HEAD + 'profile demand = csv("profiles.csv", column = "residental")\n', 6, 47,
        r"column 'residental' not in 'profiles\.csv'", r"did you mean 'residential'\?"),
    bad("csv-table-column-missing", HEAD + 'load table (name, at, p) from csv("loads.csv")\n', 6, 35, r"'loads\.csv' lacks column\(s\) at|lacks column\(s\) p", r"its columns: name, at, q"),
    bad("csv-outside-case-folder", HEAD + 'profile demand = csv("../outside.csv", column = "a")\n', 6, 22, r"'\.\./outside\.csv' is outside the case folder", r"--allow-outside"),
    bad("table-row-wrong-cell-count", HEAD + "load table (name, at, p [kW]) {\n  ld1 b1 100\n  ld2 b2\n}\n", 8, 3,
        r"this row has 2 cells but the table has 3 columns", r"columns: \(name, at, p\)"),
    bad("include-missing", HEAD + ASSETS + 'include "nope.grid"\n', 8, 9, r"file 'nope\.grid' not found", r"relative to the file"),
    bad("error-in-included-file", HEAD + 'include "bad_part.grid"\n', 2, 29, r"unknown attribute 'sacle' for load", r"did you mean 'scale'\?", file="bad_part.grid"),
    # ------------------------------------------------------------ system, network shape, ownership
    bad("horizon-not-whole-steps", SYSTEM.replace("step = 1 h", "step = 90 min") + COPPER, 1, 1, r"horizon is not a whole number of steps", r"divides the horizon"),
    bad("horizon-too-many-steps", SYSTEM.replace("horizon = 4 h", "horizon = 1e300 h") + COPPER + ASSETS, 1, 1, r"too many steps", r"longer step"),
    bad("line-to-unknown-bus", radial("bus b1 { slack }", "bus b2", "line l1 from b1 to b7 { r = 0.1 ohm; x = 0.1 ohm }"), 5, 22, r"bus 'b7' is not in network 'n'"),
    bad("network-not-radial", radial("bus b1 { slack }", "bus b2..b3", "line l1 from b1 to b2 { r = 0.1 ohm; x = 0.1 ohm }",
                                     "line l2 from b2 to b3 { r = 0.1 ohm; x = 0.1 ohm }", "line l3 from b3 to b1 { r = 0.1 ohm; x = 0.1 ohm }"),
        2, 9, r"network 'n' is not radial: 3 lines for 3 buses", r"open a line of each loop"),
    bad("network-disconnected", radial("bus b1 { slack }", "bus b2..b3", "line l1 from b1 to b2 { r = 0.1 ohm; x = 0.1 ohm }"), 2, 9,
        r"network 'n' is not connected: bus 'b3' cannot be reached", r"add the missing line"),
    bad("missing-required-parameter", HEAD + "storage es at b2 { energy = 1 MWh }\n", 6, 1, r"storage 'es' needs 'power'", r"add 'power = \.\.\.' \(power\)"),
    bad("asset-owned-twice", HEAD + ASSETS + "agent a1 owns ld\nagent a2 owns ld\n", 9, 15, r"'ld' is owned twice: by 'a1' and by 'a2'", r"one owner"),
    # ------------------------------------------------------------ compile: bounds and the model layer
    bad("negative-capacity", HEAD + ASSETS + "pv p1 at b2 { capacity = -100 kW }\n", 8, 26, r"'capacity' of pv 'p1' is -0\.1 MW, but must be >= 0",
        r"not physical"),
    bad("constraint-without-comparison", heater("p[t] + pmax"), K, 3, r"a constraint compares two sides", r"e\.g\.", stage="compile"),
    bad("product-on-the-small-side", heater("var q[t]: MW in [0, pmax]", "prod: p[t] * q[t] <= pmax"), K + 1, 9, r"not convex: the smaller side must be a sum of squares",
        r"accepted convex forms: x\^2 \+ y\^2 <= a \* b", stage="compile"),
    bad("square-on-the-large-side", heater("var q[t]: MW", "c: q[t] <= p[t]^2"), K + 1, 6, r"not convex: the smaller side", r"accepted convex forms", stage="compile"),
    bad("square-with-negative-factor", heater("var q[t]: MW", "c: -1 * q[t]^2 + p[t]^2 <= pmax"), K + 1, 6, r"not convex", r"accepted convex forms", stage="compile"),
    bad("equality-with-squares", heater("var q[t]: MW", "c: p[t]^2 + q[t]^2 == pmax"), K + 1, 3, r"must be a single <= or >=", r"not convex", stage="compile"),
    bad("variable-cubed", heater("c: p[t] ^ 3 <= pmax"), K, 6, r"raised to the power 3", r"only x\^2", stage="compile"),
    bad("divide-by-variable", heater("c: 1 / p[t] <= pmax"), K, 6, r"cannot divide by a variable", r"multiply instead", stage="compile"),
    bad("cost-not-convex", heater("cost -p[t]^2"), K, 3, r"quadratic cost is not convex", r"non-negative coefficients", stage="compile"),
    # ------------------------------------------------------------ solve
    bad("infeasible", HEAD + "grid g at b1 { import_price = 10 $/MWh; import_max = 1 MW }\nload ld at b2 { p = 2 MW }\n", 5, 3,
        r"infeasible: constraint n-balance_p at \(time=0\) is part of the conflict", r"relax one of them", stage="solve", file="<stdlib>/copper_plate.grid"),
    bad("unbounded", HEAD + "grid g at b1 { import_price = 10 $/MWh; export_price = 20 $/MWh }\n", 15, 3,
        r"unbounded", r"export_max", stage="solve", file="<stdlib>/grid.grid"),
    # ------------------------------------------------------------ bugs found here (see the reasons)
    bad("flag-given-as-series", HEAD + ASSETS + "storage es at b2 { energy = 1 MWh; power = 1 MW; cyclic = [1, 0, 1, 0] }\n", 8, 59,
        r"cyclic", stage="compile"),
    bad("variable-bound-uses-variable", heater("var z[t]: MW in [0, p[t]]"), K, 3, r"bound", stage="compile"),
    bad("wrap-with-fractional-shift", heater("c: p[wrap(t-0.5)] <= pmax"), K, 8, r"unsupported index", stage="compile"),
    bad("table-duplicate-column", HEAD + "grid g at b1 { import_price = 10 $/MWh }\nload table (name, at, p [kW], p [kW]) {\n  ld1 b2 100 200\n}\n", 7, 31,
        r"twice|duplicate"),
    bad("load-infinite", HEAD + "grid g at b1 { import_price = 10 $/MWh }\nload ld at b2 { p = inf }\n", 7, 21, r"finite|infinite", stage="solve"),
    bad("load-not-a-number", HEAD + "grid g at b1 { import_price = 10 $/MWh }\nload ld at b2 { p = 0 / 0 * 1 MW }\n", 7, 21, r"not a number|NaN", stage="solve"),
    bad("case-includes-itself", HEAD + ASSETS + 'include "case.grid"\n', 8, 9, r"includ", stage="load"),
]


def _run(bad: Bad, path: Path) -> None:
    case = gridlang.load(path)
    if bad.stage == "compile":
        case.compile()
    elif bad.stage == "solve":
        case.solve()


def _same_file(span_file: str, expected: str) -> bool:
    if expected.startswith("<"):
        return span_file == expected
    return os.path.realpath(span_file) == os.path.realpath(expected)


def _matching(err: GridError, pattern: str) -> GridError:
    """The error (of possibly several) whose message matches ``pattern``."""
    errors = err.errors if isinstance(err, GridErrors) else [err]
    found = [e for e in errors if re.search(pattern, e.message)]
    assert found, f"no error matches {pattern!r}: {[e.message for e in errors]}"
    return found[0]


@pytest.fixture
def folder(tmp_path_factory) -> Path:
    """A fresh folder whose path does not repeat the test id (tmp_path does), so a
    message regex cannot match the file name in the rendered error by accident."""
    return tmp_path_factory.mktemp("e")


def write_case(base: Path, text: str) -> Path:
    """``base/case/case.grid`` next to copies of the fixtures; ``base/outside.csv`` lies outside the case folder."""
    folder = base / "case"
    shutil.copytree(DATA, folder)
    (base / "outside.csv").write_text("a\n1\n2\n3\n4\n")
    path = folder / "case.grid"
    path.write_text(text)
    return path


@pytest.mark.parametrize("bad", CATALOGUE)
def test_bad_input(bad: Bad, folder: Path) -> None:
    path = write_case(folder, bad.text)
    with pytest.raises(GridError, match=bad.match) as info:
        _run(bad, path)
    err = _matching(info.value, bad.match)
    expected_file = str(path) if bad.file is None else bad.file if bad.file.startswith("<") else str(path.parent / bad.file)
    assert _same_file(err.span.file, expected_file), f"error in {err.span.file}, expected {expected_file}"
    assert (err.span.line, err.span.col) == (bad.line, bad.col), err.render()

    # file:line:col: error: message / the source line / a caret under the column / hint
    rendered = GridError.render(err).splitlines()
    assert rendered[0] == f"{err.span.file}:{bad.line}:{bad.col}: error: {err.message}"
    source = SOURCES[err.span.file].splitlines()[bad.line - 1]
    assert rendered[1] == "    " + source.expandtabs(1)
    assert re.fullmatch(" " * (4 + bad.col - 1) + r"\^~*", rendered[2]), rendered[2]
    if bad.hint is not None:
        assert len(rendered) == 4 and rendered[3].startswith("  hint: "), rendered
        assert re.search(bad.hint, rendered[3]), rendered[3]
    # the whole report (all errors of the stage) renders too, each with its position
    whole = str(info.value)
    assert f"{err.span.file}:{bad.line}:{bad.col}: error: " in whole


def test_catalogue_is_large_and_distinct() -> None:
    ids = [p.id for p in CATALOGUE]
    texts = [p.values[0].text for p in CATALOGUE]
    assert len(set(ids)) == len(ids) and len(set(texts)) == len(texts)
    assert len([p for p in CATALOGUE if not p.marks]) >= 24


def test_independent_resolve_errors_are_reported_together(folder: Path) -> None:
    text = HEAD + ASSETS + (
        "storag es at b2 { energy = 1 MWh; power = 1 MW }\n"  # 8: unknown kind
        "pv p1 at b9 { capacity = 1 MW }\n"  # 9: bus not in any network
        "agent a owns nobody\n"  # 10: owns something undefined
        "profile demand = [1, 2, 3]\n"  # 11: wrong length
    )
    path = write_case(folder, text)
    with pytest.raises(GridErrors) as info:
        gridlang.load(path)
    errors = info.value.errors
    assert len(errors) >= 2
    assert [e.span.line for e in errors] == [8, 9, 10, 11]
    assert all(e.span.file == str(path) for e in errors)
    rendered = str(info.value)
    for e in errors:
        assert f"{path}:{e.span.line}:{e.span.col}: error: {e.message}" in rendered
    assert rendered.endswith(f"\n\n{len(errors)} errors")
    # it behaves like its first error
    assert (info.value.span, info.value.message) == (errors[0].span, errors[0].message)


def test_a_bad_value_is_not_also_reported_missing(folder: Path) -> None:
    path = write_case(folder, HEAD + "storage es at b2 { energy = 250 kW; power = 250 kW }\n")
    with pytest.raises(GridError) as info:
        gridlang.load(path)
    errors = info.value.errors if isinstance(info.value, GridErrors) else [info.value]
    assert [e.message for e in errors if "needs 'energy'" in e.message] == []
    assert (info.value.span.line, info.value.span.col) == (6, 29)


# ---------------------------------------------------------------- inputs that used to crash or flood
# Each runs the command line as a user would: exit status 1 (a GridError, never
# 2, an internal error), 'file:line:col: error: message', the source line, a
# caret under the column, a hint, and output of bounded size.

from typer.testing import CliRunner  # noqa: E402

from gridlang.cli import app  # noqa: E402
from gridlang.errors import MAX_ERRORS, MAX_SHOWN, Collector, Span  # noqa: E402
from gridlang.grammar import parser  # noqa: E402

YEAR_CSV = Path(__file__).resolve().parents[1] / "cases" / "data" / "year_profiles.csv"


def cli(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, [*args])
    return r.exit_code, r.output


def reported(output: str, path: Path, line: int, col: int, hint: bool = True) -> tuple[str, str, str]:
    """The message, the shown source line and the caret line of the report at ``path:line:col`` (which must come first)."""
    lines = output.splitlines()
    head = f"{path}:{line}:{col}: error: "
    assert lines[0].startswith(head), output[:2000]
    caret = lines[2]
    assert caret.startswith("    ") and caret.strip().startswith("^"), output[:2000]
    if hint:
        assert lines[3].startswith("  hint: ") and len(lines[3]) > 10
    return lines[0][len(head):], lines[1], caret


def caret_char(source_shown: str, caret: str) -> str:
    """The character of the shown source line above the caret."""
    return source_shown[caret.index("^")]


def test_random_bytes_are_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "case.grid"
    path.write_bytes(bytes([0xC3, 0x28]) + os.urandom(3000))  # an invalid UTF-8 sequence first
    status, out = cli("check", str(path))
    assert status == 1 and "Traceback" not in out and "internal error" not in out
    message, _, caret = reported(out, path, 1, 1)
    assert message == "the file is not UTF-8 text (byte 0xc3 at line 1, column 1)"
    assert caret == "    ^" and "save it as UTF-8" in out
    assert len(out) < 2000  # the shown line is cut


def test_a_latin1_byte_is_reported_at_its_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "case.grid"
    path.write_bytes(SYSTEM.encode() + 'profile p = csv("caf\xe9.csv", column = "a")\n'.encode("latin-1"))
    status, out = cli("check", str(path))
    assert status == 1
    message, shown, caret = reported(out, path, 2, 21)
    assert message == "the file is not UTF-8 text (byte 0xe9 at line 2, column 21)"
    assert caret_char(shown, caret) == "\ufffd"


def test_utf16_gets_its_own_hint(tmp_path: Path) -> None:
    path = tmp_path / "case.grid"
    path.write_bytes((SYSTEM + COPPER).encode("utf-16"))
    status, out = cli("check", str(path))
    assert status == 1 and "it looks like UTF-16: save it as UTF-8" in out
    reported(out, path, 1, 1)


def test_a_bom_is_accepted_and_columns_ignore_it(tmp_path: Path, folder: Path) -> None:
    good = write_case(folder, "")
    good.write_bytes(b"\xef\xbb\xbf" + (HEAD + ASSETS).encode())
    assert gridlang.load(good).ir.system.steps == 4
    bad = tmp_path / "bad.grid"
    bad.write_bytes(b"\xef\xbb\xbf" + SYSTEM.replace("step =", "stepp =").encode() + COPPER.encode())
    status, out = cli("check", str(bad))
    assert status == 1
    message, shown, caret = reported(out, bad, 1, 69)  # as without the BOM (the catalogue's unknown-system-attribute)
    assert "unknown system attribute 'stepp'" in message and "\ufeff" not in out
    assert shown[caret.index("^"):].startswith("stepp")


def test_nul_characters_are_binary(tmp_path: Path) -> None:
    path = tmp_path / "case.grid"
    path.write_bytes(SYSTEM.encode() + b"prof\x00ile p = 1\n")
    status, out = cli("check", str(path))
    assert status == 1
    message, shown, caret = reported(out, path, 2, 5)
    assert message == "the file holds a NUL character (at line 2, column 5): it is binary data, not text"
    assert caret_char(shown, caret) == "\u2400"  # shown as the picture of NUL, one column wide


def test_a_file_over_the_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.grid"
    with open(path, "wb") as f:  # sparse: nothing is written, the size is all that is checked
        f.truncate(parser.MAX_SOURCE_BYTES + 1)
    status, out = cli("check", str(path))
    assert status == 1
    assert out.startswith(f"{path}:1:1: error: the file is too large: {parser.MAX_SOURCE_BYTES + 1:,} bytes, gridlang reads at most {parser.MAX_SOURCE_BYTES:,}")
    assert "hint: split it into files joined by 'include" in out


BRACKETS = [
    # the case: the '(' joins the next line to its statement; lark stops at 'network'
    ("paren-never-closed", SYSTEM + "profile p = (1 MW\n" + COPPER, 2, 13, "'(' is never closed", "add the ')' that closes it", "("),
    ("bracket-never-closed-at-eof", SYSTEM + "profile p = [1, 2", 2, 13, "'[' is never closed", "add the ']' that closes it", "["),
    ("brace-never-closed", HEAD + "load ld at b2 { p = 1 MW\nload l2 at b2 { p = 2 MW }\n", 6, 15, "'{' is never closed", "add the '}' that closes it", "{"),
    ("inner-brace-never-closed", SYSTEM + "network n uses copper_plate {\n  bus b1 { slack\n  bus b2\n}\n", 2, 29, "'{' is never closed",
     "the '{' at line 3, column 10 may be the one left open", "{"),
    ("mismatched-closer", HEAD + "load ld at b2 { p = (1 MW }\n", 6, 27, "unexpected '}': the '(' at line 6, column 21 is not closed", "expected ')' to close it first", "}"),
    ("stray-paren", HEAD + "profile p = 1 MW)\n", 6, 17, "unexpected ')': no '(' is open here", "remove it", ")"),
    ("stray-brace", HEAD + "}\n", 6, 1, "unexpected '}': no '{' is open here", "remove it", "}"),
    ("stray-paren-in-a-kind", HEAD + "kind k at bus {\n  param e = 1 in (0, 1]\n  var x[t]: MW in [0, e] )\n}\n", 8, 26, "unexpected ')': no '(' is open here", "remove it", ")"),
]


@pytest.mark.parametrize(("text", "line", "col", "message", "hint", "char"), [pytest.param(*b[1:], id=b[0]) for b in BRACKETS])
def test_brackets_are_named_where_they_are(text, line, col, message, hint, char, folder: Path) -> None:
    path = write_case(folder, text)
    status, out = cli("check", str(path))
    assert status == 1
    got, shown, caret = reported(out, path, line, col)
    assert got == message
    assert hint in out.splitlines()[3]
    assert caret_char(shown, caret) == char


def test_balanced_brackets_over_lines_leave_the_real_error(folder: Path) -> None:
    """A bracket closed further down is no excuse: the error stays where lark found it."""
    path = write_case(folder, HEAD + "profile p = (1 +\n  + * 2)\n")
    with pytest.raises(GridError, match=r"unexpected '\+'") as info:
        gridlang.load(path)
    assert (info.value.span.line, info.value.span.col) == (7, 3)
    path = write_case(folder / "b", SYSTEM + "network n uses copper_plate {\n  bus b1 { slack }\n  bus = b2\n}\n")
    with pytest.raises(GridError, match=r"unexpected '='"):
        gridlang.load(path)


def test_a_long_line_is_cut_around_the_caret(folder: Path) -> None:
    """A 1 MB line with a mistake in its middle: a short report, the caret under the mistake."""
    filler = "; ".join(f"x{i} = 1" for i in range(90_000))  # about 1 MB of attributes
    text = SYSTEM + COPPER + f"load ld at b2 {{ p = 1 MW; {filler}; q = = 2; {filler} }}\n"
    assert len(text) > 1_000_000
    path = write_case(folder, text)
    status, out = cli("check", str(path))
    assert status == 1 and len(out.encode()) < 20_000
    col = text.splitlines()[5].index("= = 2") + 3
    _, shown, caret = reported(out, path, 6, col)
    assert shown.startswith("    …") and shown.endswith("…")
    assert len(shown) <= 4 + MAX_SHOWN + 2
    assert shown[caret.index("^") - 2 : caret.index("^") + 3] == "= = 2"


def test_long_lines_at_either_end() -> None:
    SOURCES["long.grid"] = "abc" + "x" * 5000 + "yz\n"
    lines = GridError(Span("long.grid", 1, 1, 3), "m", "h").render().splitlines()
    assert lines[1] == "    abc" + "x" * (MAX_SHOWN - 3) + "…" and lines[2] == "    ^~~"
    lines = GridError(Span("long.grid", 1, 5004, 9), "m", "h").render().splitlines()  # 'y', underlined to the end of the line
    assert lines[1] == "    …" + "x" * (MAX_SHOWN - 2) + "yz"
    assert caret_char(lines[1], lines[2]) == "y" and lines[2].endswith("^~")


def test_a_long_name_in_a_message_is_shortened(folder: Path) -> None:
    name = "b" * 500_000
    path = write_case(folder, HEAD + f"load ld at {name} {{ p = 1 MW }}\n")
    status, out = cli("check", str(path))
    assert status == 1 and len(out.encode()) < 20_000
    message, _, _ = reported(out, path, 6, 12, hint=False)  # resolve gives no hint when no bus name is close
    assert message.startswith("bus '" + "b" * 40 + "…") and "(500,000 characters)" in message


def test_errors_are_capped(folder: Path) -> None:
    """Thousands of unknown buses: the stage stops at MAX_ERRORS + 1 and says so."""
    n = 5 * MAX_ERRORS
    path = write_case(folder, HEAD + "".join(f"load ld{i} at bx{i} {{ p = 1 MW }}\n" for i in range(n)))
    status, out = cli("check", str(path))
    assert status == 1
    assert out.count(": error: bus 'bx") == MAX_ERRORS
    assert out.rstrip().endswith(f"… and at least 1 more error: checking stopped after {MAX_ERRORS + 1} errors; fix these and check again")
    assert len(out.encode()) < 50 * 400


def test_collector_stops_and_passes_its_stop_through() -> None:
    errors = Collector(limit=3)
    for i in range(3):
        errors.add(Span("f", i + 1, 1), f"e{i}")
    with pytest.raises(GridErrors) as info:
        errors.add(Span("f", 9, 1), "e3")
    assert info.value.stopped and len(info.value.errors) == 4
    other = Collector()
    with pytest.raises(GridErrors) as again:  # a stage that catches GridError to collect it re-raises the stop
        other.extend(info.value)
    assert again.value is info.value and other.errors == []
    full = GridErrors([GridError(Span("f", i, 1), "x") for i in range(1, MAX_ERRORS + 8)])
    assert full.render().endswith(f"… and 7 more errors ({MAX_ERRORS + 7} errors)")


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("1e300", "pv: '1e300' is too large for a per-unit value (more than 10)"),
        ("-0.5", "pv: '-0.5' is negative"),
        ("inf", "pv: 'inf' is not a number"),
    ],
)
def test_scenario_cells_out_of_range(tmp_path: Path, cell: str, message: str) -> None:
    lines = YEAR_CSV.read_text().splitlines()
    stamp, _, wind, load = lines[5].split(",")
    lines[5] = ",".join((stamp, cell, wind, load))
    path = tmp_path / "year.csv"
    path.write_text("\n".join(lines) + "\n")
    status, out = cli("scenarios", str(path), "-k", "4", "--out", str(tmp_path / "o"))
    assert status == 1 and "internal error" not in out
    got, shown, caret = reported(out, path, 6, len(stamp) + 2)
    assert got == message
    assert caret.strip() == "^" + "~" * (len(cell) - 1)
    assert not (tmp_path / "o").exists()


def test_scenario_data_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "year.csv"
    path.write_bytes(b"timestamp,pv,wind,load\n2019-01-01 00:00,0.\xff,0,0\n")
    status, out = cli("scenarios", str(path), "-k", "4", "--out", str(tmp_path / "o"))
    assert status == 1
    message, shown, caret = reported(out, path, 2, 20)
    assert message == "the file is not UTF-8 text (byte 0xff at line 2, column 20)"
    assert caret_char(shown, caret) == "\ufffd"
