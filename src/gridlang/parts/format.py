"""Reading a case in parts, and the views each side compiles (see :mod:`gridlang.parts`).

A *view* is an ordinary case assembled from syntax trees, resolved by
:func:`gridlang.compiler.resolve.resolve` as any single file:

* the **cloud view**: the cloud file, and at every point of connection of
  every agent a *stand-in*, an instance of the kind :data:`STANDIN` whose free
  injections ``p[t]``, ``q[t]`` join the nodal balance of its bus (and, through
  them, the agent's market row).  With the stand-ins every row an agent can
  share with others exists and couples the same agents as in the whole case;
* the **view of agent a**: the cloud file, a's own file (its statements, all
  owned by a) and stand-ins for every other agent;
* the **whole case**: the cloud file and every agent's file; it is the case
  the parts were split from, statement for statement.

No view reads a file of an agent it does not hold: a stand-in is made of the
cloud file's ``agent NAME at BUS`` alone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gridlang.compiler import ir
from gridlang.compiler.resolve import FAILURE, connections, resolve
from gridlang.errors import Collector, GridError, Span, did_you_mean
from gridlang.grammar import ast
from gridlang.grammar.parser import parse, parse_file

#: the kind of a stand-in: free injections at the agent's bus (variables of
#: channels no network balances are not created, as for any kind)
STANDIN = "_standin"
_STANDIN_TEXT = f"""kind {STANDIN} at bus {{
  var p[t]: MW
  var q[t]: Mvar
  inject p[t] = p[t]
  inject q[t] = q[t]
}}
"""
#: statements an agent's file may hold besides its first line
_AGENT_STATEMENTS = (ast.Profile, ast.Asset, ast.Table, ast.KindDef)
#: what the first line of an agent's file may state about the cloud it joins
HEADER_ATTRS = ("horizon", "step", "market", "game")


@dataclass(frozen=True, slots=True)
class CloudFile:
    """The public file: a case whose other agents are declared by their buses."""

    path: Path
    module: ast.Module
    points: dict[str, tuple[ast.Ident, ...]]  # agent -> buses it may connect at
    spans: dict[str, Span]  # where each agent is connected

    @property
    def agents(self) -> tuple[str, ...]:
        return tuple(self.points)


@dataclass(frozen=True, slots=True)
class AgentFile:
    """An agent's private file: its first line, what it holds, and the names it defines."""

    path: Path
    module: ast.Module
    header: ast.AgentPart
    cloud: Path  # the cloud file its first line names, resolved
    items: tuple[ast.Ident, ...]  # every asset it holds, with where it is named
    buses: tuple[tuple[str, ast.Ident], ...]  # (asset, bus as written) for every asset

    @property
    def name(self) -> str:
        return self.header.name.name


def read_cloud(path: Path) -> CloudFile:
    """Parse a cloud file and its points of connection (:func:`resolve.connections`)."""
    module = parse_file(Path(path))
    for s in module.statements:
        if isinstance(s, ast.AgentPart):
            raise GridError(s.span, f"this is the file of agent '{s.name.name}', not a cloud file",
                            f"compile it as an agent (gridlang.parts.compile_agent), or give the cloud file it names, {s.cloud.value}")
    points = [s for s in module.statements if isinstance(s, ast.AgentAt)]
    owned = [s for s in module.statements if isinstance(s, ast.Agent)]
    return CloudFile(Path(path).resolve(), module, connections(points, owned), {p.name.name: p.span for p in points})


def read_agent(path: Path) -> AgentFile:
    """Parse an agent's file: ``agent NAME in "cloud.grid" {...}`` first, then its
    profiles, assets, asset tables and kinds (all mistakes raised together)."""
    path = Path(path)
    module = parse_file(path)
    errors = Collector()
    statements = module.statements
    if not statements or not isinstance(statements[0], ast.AgentPart):
        at = statements[0].span if statements else Span(str(path), 1, 1)
        raise GridError(at, "an agent's file starts by naming the cloud file it joins",
                        'begin it with e.g. \'agent mg1 in "../cloud.grid" { horizon = 24 h; step = 1 h }\'; a single-file case is solved with gridlang solve')
    header = statements[0]
    cloud = (path.resolve().parent / header.cloud.value).resolve()
    if not cloud.is_file():
        errors.add(header.cloud.span, f"the cloud file '{header.cloud.value}' is not there (looked for {cloud})", "give its path relative to this file")
    for a in header.attrs:
        if a.name.name not in HEADER_ATTRS:
            errors.add(a.name.span, f"'{a.name.name}' is not something an agent's file states about its cloud",
                       did_you_mean(a.name.name, HEADER_ATTRS) or f"write one of: {', '.join(HEADER_ATTRS)}")
    items: list[ast.Ident] = []
    buses: list[tuple[str, ast.Ident]] = []
    for s in statements[1:]:
        if not isinstance(s, _AGENT_STATEMENTS):
            what = type(s).__name__.lower()
            errors.add(s.span, f"an agent's file holds its own profiles, assets and kinds; this {what} statement belongs in the cloud file",
                       f"move it to {header.cloud.value}" if not isinstance(s, ast.AgentPart) else "an agent's file names its cloud once, on its first line")
        elif isinstance(s, ast.Asset):
            items.append(s.name)
            buses.append((s.name.name, s.bus))
        elif isinstance(s, ast.Table):
            if s.set.name == FAILURE:
                errors.add(s.set.span, "failure data describes the network: it belongs in the cloud file", f"move it to {header.cloud.value}")
                continue
            try:
                for name, bus in _table_items(s, path):
                    items.append(name)
                    buses.append((name.name, bus))
            except GridError as exc:
                errors.extend(exc)
    errors.raise_if_any()
    return AgentFile(path.resolve(), module, header, cloud, tuple(items), tuple(buses))


def _table_items(t: ast.Table, path: Path) -> list[tuple[ast.Ident, ast.Ident]]:
    """(name, bus) of every row of an asset table, inline or ``from csv(...)``."""
    cols = [c.name.name for c in t.columns]
    if "name" not in cols or "at" not in cols:
        raise GridError(t.span, f"a {t.set.name} table needs the columns 'name' and 'at'", f"write '{t.set.name} table (name, at, ...)'")
    if t.source is None:
        i, j = cols.index("name"), cols.index("at")
        out = []
        for cells, span in t.rows:
            name, bus = cells[i], cells[j]
            if isinstance(name, ast.Ident) and isinstance(bus, ast.Ident):
                out.append((name, bus))
            else:
                raise GridError(span, "a row's name and bus are names", "write e.g. 'pv1 b3 ...'")
        return out
    src = t.source
    if not (isinstance(src, ast.Call) and src.func.name == "csv" and src.args and isinstance(src.args[0], ast.Str)):
        raise GridError(t.span, "an agent's table is inline or from csv(\"file.csv\")", "write the rows inline or in a CSV file")
    import pandas as pd

    file = path.resolve().parent / src.args[0].value
    try:
        frame = pd.read_csv(file, skipinitialspace=True, dtype=str)
    except Exception as exc:  # pandas raises many kinds for malformed files
        raise GridError(src.args[0].span, f"cannot read '{src.args[0].value}' as CSV: {exc}", "give a CSV file beside this one") from None
    if "name" not in frame or "at" not in frame:
        raise GridError(src.args[0].span, "the CSV file needs the columns 'name' and 'at'", "add them to its header")
    return [(ast.Ident(str(n).strip(), src.args[0].span), ast.Ident(str(b).strip(), src.args[0].span)) for n, b in zip(frame["name"], frame["at"], strict=True)]


def _standins() -> ast.KindDef:
    return parse(_STANDIN_TEXT, "<gridlang.parts>").statements[0]


def standin_name(agent: str, bus: str) -> str:
    return f"_{agent}_{bus}"


def assemble(cloud: CloudFile, held: Sequence[AgentFile]) -> ast.Module:
    """The syntax tree of a view: the cloud's statements, each ``agent NAME at ...``
    replaced by ``agent NAME owns`` what its file holds (``held``) or by its stand-ins;
    the agents' statements follow (see the module doc)."""
    files = {a.name: a for a in held}
    statements: list = []
    standins: list = []
    for s in cloud.module.statements:
        if not isinstance(s, ast.AgentAt):
            statements.append(s)
        elif s.name.name in files:
            statements.append(ast.Agent(s.name, files[s.name.name].items, s.span))
        else:
            names = []
            for bus in cloud.points[s.name.name]:
                name = ast.Ident(standin_name(s.name.name, bus.name), bus.span)
                names.append(name)
                standins.append(ast.Asset(ast.Ident(STANDIN, bus.span), name, bus, (), bus.span))
            statements.append(ast.Agent(s.name, tuple(names), s.span))
    if standins:
        statements.append(_standins())
    for a in held:
        statements.extend(a.module.statements[1:])
    return ast.Module(str(cloud.path), tuple([*statements, *standins]))


def root_of(cloud: CloudFile, held: Sequence[AgentFile]) -> Path:
    """The folder every file of a view lies in (CSV files must stay inside it)."""
    return Path(os.path.commonpath([cloud.path.parent, *(a.path.parent for a in held)]))


def view(cloud: CloudFile, held: Sequence[AgentFile] = (), formulation: str | None = None, allow_outside: bool = False) -> ir.CaseIR:
    """Resolve a view (see the module doc): ``held`` agents with their files, the others as stand-ins."""
    for a in held:
        if a.name not in cloud.points:
            raise GridError(a.header.name.span, f"the cloud file {cloud.path.name} connects no agent '{a.name}'",
                            did_you_mean(a.name, cloud.points) or f"it connects {', '.join(cloud.points) or 'no agent'}; add 'agent {a.name} at BUS' there")
    return resolve(assemble(cloud, held), root_of(cloud, held), allow_outside, formulation)


def agent_files(cloud: CloudFile) -> dict[str, Path]:
    """Where ``gridlang split`` puts each agent's file: ``<cloud folder>/<agent>/<agent>.grid``
    (an error at the agent's connection if one is missing)."""
    files = {a: cloud.path.parent / a / f"{a}.grid" for a in cloud.agents}
    errors = Collector()
    for a, f in files.items():
        if not f.is_file():
            errors.add(cloud.spans[a], f"no file for agent '{a}' at {f}", f"write the parts with gridlang split, or put the file of '{a}' there")
    errors.raise_if_any()
    return files


def whole(path: Path, formulation: str | None = None, allow_outside: bool = False) -> ir.CaseIR:
    """The whole case of a cloud file and its agents' files beside it (:func:`agent_files`):
    the case the parts were split from, to solve centrally."""
    cloud = read_cloud(Path(path))
    return view(cloud, [read_agent(f) for f in agent_files(cloud).values()], formulation, allow_outside)
