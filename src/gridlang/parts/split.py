"""``gridlang split case.grid -o DIR``: a single-file case with agents, written in parts.

The network owner is the cloud; every other agent gets a folder of its own:

    DIR/cloud.grid               system, networks, the owner's assets, markets, games,
                                 objective, study; 'agent mg1 at b18' for each other agent
    DIR/data/...                 CSV files of the cloud's statements and shared profiles
    DIR/mg1/mg1.grid             'agent mg1 in "../cloud.grid" {...}', then mg1's profiles,
                                 assets and table rows
    DIR/mg1/data/...             CSV files of mg1's statements

Statements are copied as written (their text, with the paths of ``csv(...)``
rewritten to the copies); a table whose rows belong to several parts is
written again, row by row, in each part.  A profile goes to the one agent
whose statements use it (directly or through other profiles); a profile used
by several parts, by the cloud, or by none stays in the cloud file.  Included
files are read in as resolve reads them (the includer first) and their
statements placed like any other.  The parts re-assembled
(:func:`gridlang.parts.format.view` with every agent) are the same case.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path

from gridlang.case import parse_case
from gridlang.compiler.resolve import FAILURE, case_path, load_modules, resolve
from gridlang.errors import COMMAND_LINE, SOURCES, GridError
from gridlang.grammar import ast
from gridlang.io.results import check_file, write_atomic

CLOUD = ""  # the cloud's part in the maps below
CLOUD_FILE = "cloud.grid"


def _nodes(node) -> Iterator:
    """Every syntax node under ``node`` (itself included)."""
    yield node
    if dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            yield from _nodes(getattr(node, f.name))
    elif isinstance(node, tuple):
        for x in node:
            yield from _nodes(x)


def _names(node) -> set[str]:
    """The names a statement (or a table row) refers to."""
    return {n.id for n in _nodes(node) if isinstance(n, ast.Name)} | {n.name for n in _nodes(node) if isinstance(n, ast.Ident)}


def _csv_paths(node) -> list[ast.Str]:
    """The file names of the ``csv(...)`` calls under ``node``."""
    return [n.args[0] for n in _nodes(node) if isinstance(n, ast.Call) and n.func.name == "csv" and n.args and isinstance(n.args[0], ast.Str)]


def _offset(text: str, line: int, col: int) -> int:
    at = 0
    for _ in range(line - 1):
        at = text.index("\n", at) + 1
    return at + col - 1


def _end(text: str, start: int) -> int:
    """Where the statement starting at ``start`` ends: a new line or ';' outside brackets,
    braces, strings and comments (a backslash before a new line continues it)."""
    depth, i, n = 0, start, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = text.find('"', i + 1)
            i = n if j < 0 else j + 1
            continue
        if ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if ch == "\\" and text[i + 1 : i + 2] in ("\n", "\r"):
            i += 2
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch in "\n;" and depth <= 0:
            return i
        i += 1
    return n


def _number(x: float) -> str:
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def _cell(c: ast.Cell) -> str:
    if isinstance(c, ast.Ident):
        return c.name
    if isinstance(c, ast.Str):
        return f'"{c.value}"'
    return _number(c)


class _Writer:
    """The text of each part, and the CSV files to copy into each part's folder."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.text: dict[str, list[str]] = {}
        self.copies: dict[Path, Path] = {}  # destination -> source

    def folder(self, part: str) -> Path:
        return self.out if part == CLOUD else self.out / part

    def place(self, part: str, stmt, text: str, start: int, root: Path) -> None:
        """Add a statement's text to a part, its ``csv(...)`` paths pointing at copies."""
        edits = []
        for s in _csv_paths(stmt):
            source = case_path(s, root, True)
            dest = self._copy(part, source)
            at = _offset(SOURCES[s.span.file], s.span.line, s.span.col) - start
            edits.append((at, at + s.span.width, f'"{dest.relative_to(self.folder(part)).as_posix()}"'))
        for a, b, new in sorted(edits, reverse=True):
            text = text[:a] + new + text[b:]
        self.text.setdefault(part, []).append(text)

    def _copy(self, part: str, source: Path) -> Path:
        folder = self.folder(part) / "data"
        dest = folder / source.name
        k = 1
        while dest in self.copies and self.copies[dest] != source:
            dest, k = folder / f"{source.stem}_{k}{source.suffix}", k + 1
        self.copies[dest] = source
        return dest


def split_case(path: Path, out: Path, allow_outside: bool = False) -> tuple[Path, ...]:
    """Write the parts of the case at ``path`` into ``out`` (see the module doc); return the
    files written.  Nothing is written if anything is wrong; a file there already is
    replaced only if gridlang wrote it (a copied CSV file also if it is the same)."""
    module, root = parse_case(Path(path))
    case = resolve(module, root, allow_outside)
    agents = tuple(dict.fromkeys(case.owners.values()))
    cloud_agent = case.network_owner
    if len(agents) < 2 or cloud_agent is None:
        raise GridError(case.system.span, "the case has fewer than two agents, so it has no parts",
                        "declare the agents with 'agent NAME owns ...'; a case without agents is solved as it is")
    modules = load_modules(module, root, allow_outside)
    statements = [s for m in modules for s in m.statements if not isinstance(s, ast.Include)]
    owner = {item: (CLOUD if a == cloud_agent else a) for item, a in case.owners.items()}
    networks = {n.name for n in case.networks}
    for n in networks:
        if owner.get(n, CLOUD) != CLOUD:
            raise GridError(case.system.span, f"network '{n}' is owned by '{case.owners[n]}', not by the network owner '{cloud_agent}'",
                            "in parts the cloud is the network owner and holds every network; give them all to one agent")
    profiles = [s for s in statements if isinstance(s, ast.Profile)]
    profile_names = {p.name.name for p in profiles}
    users: dict[str, set[str]] = {p: set() for p in profile_names}

    # which part each statement (or table row) goes to
    placed: list[tuple[object, str | list[tuple[str, tuple]]]] = []
    for s in statements:
        if isinstance(s, ast.Asset):
            part = owner.get(s.name.name, CLOUD)
        elif isinstance(s, ast.Table) and s.set.name != FAILURE:
            cols = [c.name.name for c in s.columns]
            if s.source is not None:
                part = _whole_csv_table(s, owner, root, allow_outside) if "name" in cols else CLOUD
            else:
                i = cols.index("name")
                rows = [(owner.get(cells[i].name if isinstance(cells[i], ast.Ident) else "", CLOUD), (cells, span)) for cells, span in s.rows]
                parts = {p for p, _ in rows}
                if len(parts) > 1:
                    for p, (cells, _) in rows:
                        users_of = _names(cells) & profile_names
                        for u in users_of:
                            users[u].add(p)
                    placed.append((s, rows))
                    continue
                part = parts.pop() if parts else CLOUD
        else:
            part = CLOUD
        if not isinstance(s, ast.Profile):
            for u in _names(s) & profile_names:
                users[u].add(part)
        placed.append((s, part))
    # a profile is used by whoever uses the profiles that refer to it
    for p in reversed(profiles):
        for u in _names(p.value) & profile_names:
            if u != p.name.name:
                users[u] |= users[p.name.name]
    where = {p: (next(iter(u)) if len(u) == 1 else CLOUD) for p, u in users.items()}

    buses: dict[str, list[str]] = {}
    for g in case.groups:
        for name, bus in zip(g.names, g.buses, strict=True):
            if owner.get(name, CLOUD) != CLOUD:
                buses.setdefault(owner[name], [])
                if bus not in buses[owner[name]]:
                    buses[owner[name]].append(bus)

    w = _Writer(Path(out))
    for s, part in placed:
        text = SOURCES[s.span.file]
        start = _offset(text, s.span.line, s.span.col)
        if isinstance(s, ast.Profile):
            w.place(where[s.name.name], s, text[start : _end(text, start)].rstrip(), start, root)
        elif isinstance(s, ast.Agent) and s.name.name != cloud_agent:
            w.text.setdefault(CLOUD, []).append(f"agent {s.name.name} at {', '.join(buses.get(s.name.name, []))}")
        elif isinstance(part, list):  # a table shared by several parts: its rows, part by part
            head = f"{s.set.name} table (" + ", ".join(c.name.name + (f" [{c.unit}]" if c.unit else "") for c in s.columns) + ") {"
            for p in dict.fromkeys(q for q, _ in part):
                rows = ["  " + " ".join(_cell(c) for c in cells) for q, (cells, _) in part if q == p]
                w.text.setdefault(p, []).append("\n".join([head, *rows, "}"]))
        else:
            w.place(part, s, text[start : _end(text, start)].rstrip(), start, root)
    return _write(w, case, Path(path), cloud_agent, agents)


def _whole_csv_table(t: ast.Table, owner: dict[str, str], root: Path, allow_outside: bool) -> str:
    """The part of a table read from a CSV file: all its rows must belong to one."""
    import pandas as pd

    src = t.source
    if not (isinstance(src, ast.Call) and src.func.name == "csv" and src.args and isinstance(src.args[0], ast.Str)):
        return CLOUD
    frame = pd.read_csv(case_path(src.args[0], root, allow_outside), skipinitialspace=True, dtype=str)
    parts = {owner.get(str(n).strip(), CLOUD) for n in frame.get("name", [])}
    if len(parts) > 1:
        raise GridError(t.span, f"the rows of this {t.set.name} table belong to several agents ({', '.join(sorted(p or 'the cloud' for p in parts))}) and are read from a CSV file",
                        "give each agent its own table (and CSV file), or write the rows inline; then split again")
    return parts.pop() if parts else CLOUD


def _header(agent: str, case, source: Path) -> str:
    attrs = [f"horizon = {_number(case.system.steps * case.system.dt)} h", f"step = {_number(case.system.dt)} h"]
    attrs += [f"market = {mk.name}" for mk in case.markets if agent in mk.members]
    attrs += [f"game = {g.name}" for g in case.games if agent in (*g.prosumers, g.operator)]
    return "\n".join([
        f"# {agent}'s own part of the case {source.name}: written by gridlang split.",
        "# Its assets, profiles and costs; the network, time axis and markets are the cloud's.",
        f'agent {agent} in "../{CLOUD_FILE}" {{ {"; ".join(attrs)} }}',
    ])


def _write(w: _Writer, case, source: Path, cloud_agent: str, agents) -> tuple[Path, ...]:
    files: dict[Path, str] = {}
    cloud_head = [f"# The public part of the case {source.name}: written by gridlang split.",
                  f"# The network owner '{cloud_agent}' is the cloud; every other agent's assets are in its own file."]
    files[w.out / CLOUD_FILE] = "\n".join([*cloud_head, *w.text.get(CLOUD, [])]) + "\n"
    for a in agents:
        if a == cloud_agent:
            continue
        files[w.out / a / f"{a}.grid"] = "\n".join([_header(a, case, source), *w.text.get(a, [])]) + "\n"
    copies = {}
    for dest, src in w.copies.items():
        if dest.exists() and dest.is_file() and dest.read_bytes() == src.read_bytes():
            continue  # the same copy from an earlier split
        copies[dest] = src
    for f in [*files, *copies]:
        check_file(f, "-o", "parts")
    if w.out.exists() and not w.out.is_dir():
        raise GridError(COMMAND_LINE, f"{w.out} is a file; -o names the folder to write the parts into", "give a folder name, e.g. -o parts")
    for f, text in files.items():
        write_atomic(f, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
    for dest, src in copies.items():
        write_atomic(dest, lambda tmp, src=src: shutil.copyfile(src, tmp))
    return (*files, *copies)
