"""The language reference, generated from the models themselves.

Every kind and formulation of the standard library (and of a case) is read
from its ``.grid`` source: its parameters (unit, default, declared range),
variables, constraints as written, costs, injections, outputs and the ``#``
comment block above it.  ``gridlang doc`` prints one entry, the docs site's
``docs/reference/<name>.md`` pages are written from the same :class:`Entry`,
and the language server shows the same facts on hover.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from gridlang.compiler.ir import ModelDef, ParamSpec
from gridlang.compiler.models import model_def
from gridlang.errors import Collector, Span, source_line
from gridlang.grammar import ast
from gridlang.grammar.parser import parse

STDLIB_PREFIX = "<stdlib>/"
#: table columns holding source text, shown as code in markdown
CODE_COLUMNS = {"range", "declared", "as written"}


@dataclass(frozen=True, slots=True)
class Entry:
    """One kind or formulation: its checked definition, the doc comment above it and where it is written."""

    model: ModelDef
    node: ast.KindDef | ast.FormulationDef
    doc: str
    span: Span  # of its name

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def what(self) -> str:
        """'kind' or 'formulation' (radial or not)."""
        if not self.model.formulation:
            return "kind"
        return "formulation for radial networks" if self.model.radial else "formulation"


def stdlib_path(span_file: str) -> Path | None:
    """The file on disk behind a standard-library span (``<stdlib>/storage.grid``), or None."""
    if not span_file.startswith(STDLIB_PREFIX):
        return None
    return Path(str(resources.files("gridlang") / "stdlib_models" / span_file.removeprefix(STDLIB_PREFIX)))


def doc_comment(file: str, line: int) -> str:
    """The block of ``#`` comment lines right above ``line`` (1-based) of a read source, without the ``#``."""
    found: list[str] = []
    n = line - 1
    while n >= 1 and (text := source_line(file, n)) is not None and text.lstrip().startswith("#"):
        body = text.lstrip()[1:]
        found.append(body[1:] if body.startswith(" ") else body)
        n -= 1
    return "\n".join(reversed(found))


def entries(modules: Iterable[ast.Module]) -> dict[str, Entry]:
    """Every kind and formulation defined in ``modules``, by name (the first definition wins)."""
    out: dict[str, Entry] = {}
    for module in modules:
        for s in module.statements:
            if isinstance(s, ast.KindDef | ast.FormulationDef) and s.name.name not in out:
                out[s.name.name] = Entry(model_def(s, Collector(limit=10**6)), s, doc_comment(s.span.file, s.span.line), s.name.span)
    return out


@cache
def stdlib_entries() -> Mapping[str, Entry]:
    """The standard library's kinds and formulations, by name, sorted (kinds first)."""
    folder = resources.files("gridlang") / "stdlib_models"
    modules = [parse(f.read_text(encoding="utf-8"), STDLIB_PREFIX + f.name) for f in sorted(folder.iterdir(), key=lambda f: f.name) if f.name.endswith(".grid")]
    found = entries(modules)
    return dict(sorted(found.items(), key=lambda kv: (kv[1].model.formulation, kv[0])))


# ------------------------------------------------------------------ facts


def statement_text(span: Span) -> str:
    """A declaration as written in its source: from its start to the end of its line (and continuation lines), without a trailing comment."""
    parts, line = [], span.line
    while (text := source_line(span.file, line)) is not None:
        piece = (text[span.col - 1 :] if line == span.line else text).split("#", 1)[0].rstrip()
        if not piece.endswith("\\"):
            parts.append(piece.strip())
            break
        parts.append(piece[:-1].strip())
        line += 1
    return " ".join(p for p in parts if p)


def trailing_comment(span: Span) -> str:
    """The ``# comment`` at the end of a declaration's line, if any."""
    text = source_line(span.file, span.line) or ""
    _, sep, comment = text[span.col - 1 :].partition("#")
    return comment.strip() if sep else ""


def param_facts(spec: ParamSpec) -> dict[str, str]:
    """What a user needs to give a parameter: its set, unit, default and allowed range (blank when none)."""
    return {
        "name": spec.name + (f"[{spec.set}]" if spec.set else ""),
        "unit": "flag" if spec.dim is None else (spec.unit or "-"),
        "default": "false" if spec.dim is None and spec.default is None else ("required" if spec.default is None else ast.expr_text(spec.default)),
        "range": spec.bound.text() if spec.bound is not None else "",
        "note": trailing_comment(spec.span),
    }


def var_facts(v: ast.VarDecl) -> dict[str, str]:
    """A variable's name with its dims, unit and domain as written."""
    return {"name": v.name.name + (f"[{', '.join(d.name for d in v.dims)}]" if v.dims else ""), "unit": v.unit.name if v.unit else "", "declared": statement_text(v.span)}


def _named(label: ast.Ident | None, span: Span) -> tuple[str, str]:
    return (label.name if label else "", statement_text(span))


def sections(entry: Entry) -> list[tuple[str, list[tuple[str, ...]], tuple[str, ...]]]:
    """The entry's tables: (title, rows, header) for parameters, variables, constraints, costs, injections and outputs."""
    m = entry.model
    params = [tuple(param_facts(p).values()) for p in m.params.values()]
    out = [
        ("Parameters", params, ("parameter", "unit", "default", "range", "note")),
        ("Variables", [tuple(var_facts(v).values()) for v in m.vars], ("variable", "unit", "declared")),
        ("Constraints", [_named(c.label, c.span) for c in m.constraints], ("name", "as written")),
        ("Costs", [_named(c.label, c.span) for c in m.costs], ("name", "as written")),
        ("Injections", [(i.channel.name, statement_text(i.span)) for i in m.injects], ("channel", "as written")),
        ("Outputs", [(o.name.name, o.unit.name if o.unit else "", statement_text(o.span)) for o in m.outputs], ("output", "unit", "as written")),
    ]
    return [s for s in out if s[1]]


# ------------------------------------------------------------------ renderings


def text(entry: Entry) -> str:
    """Plain text for a terminal: title, doc comment, then each table with aligned columns."""
    lines = [f"{entry.name} ({entry.what}, {_where(entry.span)})", ""]
    if entry.doc:
        lines += [*("  " + d for d in entry.doc.splitlines()), ""]
    for title, rows, header in sections(entry):
        widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
        lines.append(title + ":")
        for r in (header, *rows):
            lines.append("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def listing(found: Mapping[str, Entry]) -> str:
    """One line per kind and formulation: its name and the first sentence of its doc comment."""
    width = max(len(n) for n in found)
    return "\n".join(f"{name.ljust(width)}  {e.what:<31}  {_summary(e.doc)}".rstrip() for name, e in found.items()) + "\n"


def markdown(entry: Entry) -> str:
    """The reference page of one entry, for the docs site."""
    lines = [f"# {entry.name}", "", f"*{entry.what}*, defined in `{_where(entry.span)}`.", ""]
    if entry.doc:
        lines += ["```text", entry.doc, "```", ""]
    for title, rows, header in sections(entry):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_cell(c, i == 0 or h in CODE_COLUMNS) for i, (c, h) in enumerate(zip(r, header))) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def index_markdown(found: Mapping[str, Entry]) -> str:
    """The reference's front page: every kind and formulation with its summary."""
    lines = ["# Language reference", "", "Generated from the standard library by `gridlang doc --write docs/reference`; do not edit by hand.", ""]
    for what, title in ((False, "Kinds"), (True, "Formulations")):
        lines += [f"## {title}", "", "| name | summary |", "|---|---|"]
        lines += [f"| [{n}]({n}.md) | {_cell(_summary(e.doc))} |" for n, e in found.items() if e.model.formulation == what]
        lines.append("")
    return "\n".join(lines)


def write_reference(folder: Path, found: Mapping[str, Entry] | None = None) -> list[Path]:
    """Write ``index.md`` and one ``<name>.md`` per entry into ``folder``; return the paths written."""
    found = stdlib_entries() if found is None else found
    folder.mkdir(parents=True, exist_ok=True)
    pages = {"index.md": index_markdown(found)} | {f"{n}.md": markdown(e) for n, e in found.items()}
    for name, body in pages.items():
        (folder / name).write_text(body, encoding="utf-8")
    return [folder / n for n in pages]


def _where(span: Span) -> str:
    return f"{span.file.removeprefix(STDLIB_PREFIX)}:{span.line}" if span.file.startswith(STDLIB_PREFIX) else str(span)


def _summary(doc: str) -> str:
    """The first sentence of a doc comment."""
    flat = " ".join(doc.split())
    end = re.search(r"(?<!e\.g)(?<!i\.e)[.:](\s|$)", flat)
    return flat[: end.start() + 1].rstrip(":") + ("." if end and flat[end.start()] == ":" else "") if end else flat


def _cell(value: str, code: bool = False) -> str:
    """A markdown table cell, pipes escaped; ``code`` puts it in backticks."""
    value = str(value).replace("|", "\\|")
    return f"`{value}`" if code and value else value
