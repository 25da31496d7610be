"""What the language server knows about one document, without any protocol.

:func:`check` gives the errors ``gridlang check`` would report for the text
of a document; :func:`index` finds, in its last text that parsed, every
name a user may point at (kinds, parameters, buses, profiles, included
files) with its span; :func:`hover`, :func:`definition` and
:func:`completions` answer from that index.  Positions here are the
parser's: 1-based lines and columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from gridlang.compiler.build import build
from gridlang.compiler.resolve import case_path, resolve
from gridlang.errors import GridError, GridErrors, Span
from gridlang.grammar import ast
from gridlang.grammar.parser import parse, parse_file
from gridlang.reference import Entry, entries, param_facts, statement_text, stdlib_entries

#: words that start a statement of the case layer, offered at the start of a line
KEYWORDS = ("system", "profile", "network", "include", "agent", "market", "game", "objective", "study", "kind", "formulation")


def check(text: str, path: str, root: Path) -> list[GridError]:
    """The errors of ``gridlang check`` on ``text`` read as the file ``path`` (includes relative to ``root``)."""
    try:
        build(resolve(parse(text, path), root))
    except GridErrors as exc:
        return list(exc.errors)
    except GridError as exc:
        return [exc]
    return []


@dataclass(frozen=True, slots=True)
class Ref:
    """A name in the document: where it is, what it names (kind, param, bus, profile, include) and its target."""

    span: Span
    what: str
    name: str
    owner: str = ""  # the kind or formulation of a parameter


@dataclass(slots=True)
class Index:
    """The names of one parsed document and of the files it includes."""

    models: dict[str, Entry]
    buses: dict[str, Span] = field(default_factory=dict)
    bus_network: dict[str, ast.Network] = field(default_factory=dict)
    profiles: dict[str, ast.Profile] = field(default_factory=dict)
    includes: dict[str, Path] = field(default_factory=dict)  # as written -> file
    refs: list[Ref] = field(default_factory=list)  # in the document itself


def index(text: str, path: str, root: Path) -> Index | None:
    """The names in ``text`` and its includes; None when the text does not parse."""
    try:
        main = parse(text, path)
    except GridError:
        return None
    modules, includes = [main], {}
    for stmt in main.statements:
        if isinstance(stmt, ast.Include):
            try:
                file = case_path(stmt.path, root, allow_outside=True)
                includes[stmt.path.value] = file
                modules.append(parse_file(file))
            except GridError:
                continue
    found = Index({**stdlib_entries(), **entries(modules)}, includes=includes)
    for module in modules:
        for stmt in module.statements:
            _define(stmt, found)
    for stmt in main.statements:
        found.refs.extend(_refs(stmt, found))
    return found


def _define(stmt: ast.Statement, found: Index) -> None:
    match stmt:
        case ast.Profile(name):
            found.profiles[name.name] = stmt
        case ast.Network(items=items):
            for item in items:
                for bus in _buses(item):
                    found.buses.setdefault(bus.name, bus.span)
                    found.bus_network.setdefault(bus.name, stmt)


def _buses(item: ast.Element | ast.Table) -> list[ast.Ident]:
    """The buses an element or table of a network defines (``b2..b33`` expanded)."""
    if item.set.name != "bus":
        return []
    if isinstance(item, ast.Table):
        return [cells[0] for cells, _ in item.rows if cells and isinstance(cells[0], ast.Ident)]
    if item.last is None:
        return [item.first]
    a, b = re.fullmatch(r"(.*?)(\d+)", item.first.name), re.fullmatch(r"(.*?)(\d+)", item.last.name)
    if not a or not b or a.group(1) != b.group(1):
        return [item.first]
    return [ast.Ident(f"{a.group(1)}{i}", item.first.span) for i in range(int(a.group(2)), int(b.group(2)) + 1)]


def _refs(stmt: ast.Statement, found: Index) -> list[Ref]:
    """Every name of one statement a user may hover or follow."""
    out: list[Ref] = []
    match stmt:
        case ast.Asset(kind, _, bus, attrs):
            out += [Ref(kind.span, "kind", kind.name), Ref(bus.span, "bus", bus.name)]
            out += _attr_refs(attrs, kind.name, found)
        case ast.Network(_, formulation, items):
            out.append(Ref(formulation.span, "kind", formulation.name))
            for item in items:
                if isinstance(item, ast.Element):
                    ends = (item.first, item.last) if item.last else (item.first,)
                    out += [Ref(i.span, "bus", i.name) for i in ends if item.set.name == "bus"]
                    out += [Ref(i.span, "bus", i.name) for i in item.link or ()]
                    out += _attr_refs(item.attrs, formulation.name, found)
                else:
                    out += [Ref(c.name.span, "param", c.name.name, formulation.name) for c in item.columns]
        case ast.Table(set_, columns) if set_.name in found.models:
            out.append(Ref(set_.span, "kind", set_.name))
            out += [Ref(c.name.span, "param", c.name.name, set_.name) for c in columns]
        case ast.Profile(name, value):
            out.append(Ref(name.span, "profile", name.name))
            out += _expr_refs(value, found)
        case ast.Include(path):
            out.append(Ref(path.span, "include", path.value))
    return out


def _attr_refs(attrs: tuple[ast.Attr, ...], owner: str, found: Index) -> list[Ref]:
    out = [Ref(a.name.span, "param", a.name.name, owner) for a in attrs]
    for a in attrs:
        if a.value is not None:
            out += _expr_refs(a.value, found)
    return out


def _expr_refs(e: ast.Expr, found: Index) -> list[Ref]:
    """Profiles named in a case expression."""
    match e:
        case ast.Name(id, span) if id in found.profiles:
            return [Ref(span, "profile", id)]
        case ast.BinOp(_, left, right):
            return _expr_refs(left, found) + _expr_refs(right, found)
        case ast.Neg(operand):
            return _expr_refs(operand, found)
        case ast.Call(_, args, kwargs):
            return [r for a in (*args, *(v for _, v in kwargs)) for r in _expr_refs(a, found)]
    return []


def at(found: Index, line: int, col: int) -> Ref | None:
    """The name at a 1-based position of the document."""
    for ref in found.refs:
        if ref.span.line == line and ref.span.col <= col < ref.span.col + max(ref.span.width, 1):
            return ref
    return None


# ------------------------------------------------------------------ answers


def hover(found: Index, ref: Ref) -> str | None:
    """Markdown about a name: a kind's parameters and doc comment, a parameter's unit, default and range, a bus, a profile."""
    match ref.what:
        case "kind" if ref.name in found.models:
            e = found.models[ref.name]
            rows = [_param_line(f) for f in map(param_facts, e.model.params.values())]
            return f"**{e.name}** ({e.what})\n\n{e.doc}\n\n" + "\n".join(rows)
        case "param" if ref.owner in found.models and ref.name in found.models[ref.owner].model.params:
            e = found.models[ref.owner]
            return f"{_param_line(param_facts(e.model.params[ref.name]))}\n\nparameter of **{e.name}** ({e.what})\n\n{e.doc}"
        case "bus" if ref.name in found.buses:
            net = found.bus_network[ref.name]
            return f"**bus {ref.name}** of network **{net.name.name}** ({net.formulation.name}), defined at {found.buses[ref.name]}"
        case "profile" if ref.name in found.profiles:
            return f"**profile {ref.name}**\n\n```grid\n{statement_text(found.profiles[ref.name].span)}\n```"
        case "include" if ref.name in found.includes:
            return f"includes `{found.includes[ref.name]}`"
    return None


def _param_line(f: dict[str, str]) -> str:
    """``- `energy`: MWh, required, range >= 0 — note``."""
    parts = [f["unit"], f"default {f['default']}" if f["default"] != "required" else "required"]
    parts += [f"range {f['range']}"] if f["range"] else []
    return f"- `{f['name']}`: " + ", ".join(parts) + (f" — {f['note']}" if f["note"] else "")


def definition(found: Index, ref: Ref) -> Span | None:
    """Where a name is defined: a kind's or formulation's declaration, a parameter's, a bus's element, a profile; an included file's start."""
    match ref.what:
        case "kind" if ref.name in found.models:
            return found.models[ref.name].span
        case "param" if ref.owner in found.models and ref.name in found.models[ref.owner].model.params:
            return found.models[ref.owner].model.params[ref.name].span
        case "bus" if ref.name in found.buses:
            return found.buses[ref.name]
        case "profile" if ref.name in found.profiles:
            return found.profiles[ref.name].name.span
        case "include" if ref.name in found.includes:
            return Span(str(found.includes[ref.name]), 1, 1)
    return None


def completions(found: Index, text: str, line: int, col: int) -> list[tuple[str, str, str]]:
    """(label, what, detail) to offer at a 1-based position: buses after ``at``, a kind's parameters inside an asset's braces, a formulation's inside a network element's, else kinds and keywords."""
    lines = text.split("\n")
    before = "\n".join([*lines[: line - 1], lines[line - 1][: col - 1] if line - 1 < len(lines) else ""])
    if re.search(r"\bat\s+\w*$", before):
        return [(b, "bus", f"bus of {found.bus_network[b].name.name}") for b in found.buses]
    heads = _open_braces(before)
    if heads:
        asset = re.search(r"\b(\w+)\s+\w+\s+at\s+\w+\s*$", heads[-1])
        element = re.search(r"^\s*(bus|line)\b", heads[-1])
        network = re.search(r"\bnetwork\s+\w+\s+uses\s+(\w+)", heads[0])
        owner = asset.group(1) if asset else network.group(1) if network and element else None
        if owner in found.models:
            over = element.group(1) if element and not asset else None
            specs = [p for p in found.models[owner].model.params.values() if p.set == over]
            return [(p.name, "param", _param_line(param_facts(p)).removeprefix("- ")) for p in specs]
        return []
    return [(n, "kind", f"{e.what}: {e.doc.splitlines()[0] if e.doc else ''}") for n, e in found.models.items()] + [(k, "keyword", "") for k in KEYWORDS]


def _open_braces(before: str) -> list[str]:
    """The text before each ``{`` still open at the end of ``before`` (outermost first), comments and strings left out."""
    clean = re.sub(r'#[^\n]*|"[^"\n]*"', "", before)
    heads: list[str] = []
    start = 0
    for m in re.finditer(r"[{}]", clean):
        if m.group() == "{":
            heads.append(clean[start : m.start()].rsplit("\n", 1)[-1].rsplit(";", 1)[-1])
        elif heads:
            heads.pop()
        start = m.end()
    return heads

