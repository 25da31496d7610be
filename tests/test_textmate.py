"""The TextMate grammar of editors/vscode: valid JSON whose regexes compile, covering
every keyword of grid.lark, and tokenising every shipped .grid file (cases and the
standard library) with no text left unmatched."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GRAMMAR = ROOT / "editors" / "vscode" / "syntaxes" / "grid.tmLanguage.json"
LARK = ROOT / "src" / "gridlang" / "grammar" / "grid.lark"
FILES = sorted([*(ROOT / "cases").rglob("*.grid"), *(ROOT / "src" / "gridlang" / "stdlib_models").glob("*.grid")])


def _rules() -> list[tuple[str, re.Pattern, dict]]:
    """The top-level patterns in order, as (name, compiled regex, captures)."""
    g = json.loads(GRAMMAR.read_text())
    rules = []
    for p in g["patterns"]:
        rule = g["repository"][p["include"].removeprefix("#")]
        rules.append((rule.get("name", ""), re.compile(rule["match"], re.M), rule.get("captures", {})))
    return rules


def _tokens(line: str, rules) -> list[tuple[str, str]]:
    """TextMate's choice at each place: the earliest match, the first pattern on a tie; raise on text no pattern matches."""
    out, at = [], 0
    while at < len(line):
        if line[at].isspace():
            at += 1
            continue
        found = [(m.start(), i, m) for i, (_, rx, _) in enumerate(rules) if (m := rx.search(line, at)) and m.end() > m.start()]
        start, i, m = min(found, key=lambda f: (f[0], f[1]), default=(len(line), -1, None))
        gap = line[at:start].strip()
        if gap:
            raise AssertionError(f"no pattern matches {gap!r} in {line!r}")
        if m is None:
            break
        out.append((rules[i][0] or "captures", m.group()))
        at = m.end()
    return out


def test_grammar_is_valid_json_with_compiling_regexes() -> None:
    g = json.loads(GRAMMAR.read_text())
    assert g["scopeName"] == "source.grid" and "grid" in g["fileTypes"]
    for name, rule in g["repository"].items():
        re.compile(rule["match"])
        assert rule.get("name") or rule.get("captures"), name
    pkg = json.loads((GRAMMAR.parents[1] / "package.json").read_text())
    assert pkg["contributes"]["grammars"][0]["scopeName"] == g["scopeName"]
    config = json.loads((GRAMMAR.parents[1] / "language-configuration.json").read_text())
    assert config["comments"]["lineComment"] == "#" and ["{", "}"] in config["brackets"]


def test_every_keyword_of_the_language_is_highlighted() -> None:
    lark = re.sub(r"//[^\n]*", "", LARK.read_text())  # rules, not comments
    words = set(re.findall(r'"([a-z_]+)"', lark)) | {"minimize", "maximize", "radial"}
    keyword = next(rx for name, rx, _ in _rules() if name == "keyword.other.grid")
    missing = {w for w in words if not keyword.fullmatch(w)}
    assert not missing and len(words) > 30


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_shipped_file_is_tokenised_without_unmatched_text(path: Path) -> None:
    rules = _rules()
    tokens = [t for line in path.read_text(encoding="utf-8").splitlines() for t in _tokens(line, rules)]
    names = {n for n, _ in tokens}
    assert tokens and "comment.line.number-sign.grid" in names or path.stat().st_size < 200


def test_a_line_is_split_as_an_editor_would() -> None:
    tokens = _tokens('storage es25 at b25 { energy = 1.5 MWh; efficiency = 95 % }  # a battery', _rules())
    assert tokens[0] == ("captures", "storage es25 at") and ("constant.numeric.grid" not in dict(tokens))
    assert ("captures", "1.5 MWh") not in tokens and ("captures", "1.5") in tokens
    assert tokens[-1] == ("comment.line.number-sign.grid", "# a battery")
    assert _tokens("w[to(l), t] == w[from(l), t] - 2 * x", _rules())[2] == ("support.function.grid", "to")
