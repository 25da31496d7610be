"""Each side compiles its own part; coupling rows are named, not numbered.

**The cloud** (:func:`compile_cloud`) resolves and builds the cloud view (the
cloud file, a stand-in at each agent's points of connection; see
:mod:`gridlang.parts.format`) and splits it by agent
(:func:`gridlang.decompose.split.split`).  It keeps the network owner's
subproblem and the coupling rows, each named by a :class:`RowKey` (the
constraint and its coordinates), with the agents that may take part in each.

**An agent** (:func:`compile_agent`) resolves its view (the public cloud file
and its own file; the other agents as stand-ins) and keeps its own
subproblem ``min f_a(x_a)`` over its rows, bounds and cones, with its
contribution to the coupling rows it takes part in,

    y_a = C_a x_a - d_a,     d_a = b_view(a) - b_cloud          (per named row),

``d_a`` the part of each row's right-hand side its own data adds (a fixed
load at its bus).  Where its data shifts a row it has no column in (a fixed
reactive load when nothing of it makes reactive power), it sends that shift,
``d_a``, as a constant.  It also checks what it expects of the cloud: the
buses it connects at, the horizon and step, the markets and games it joins.

**Joining**: the cloud (:func:`plan`) checks each agent's message
(:class:`Join`: its name, time axis, the named rows it takes part in and its
constants) against its rows and numbers them: a row with two or more
contributors is a coupling row, ``sum_a y_a = 0``; a row left with one
contributor is that contributor's own row, ``C_a x_a = d_a + constants``.
It answers each agent with a :class:`Numbering`, which the agent applies to
its own subproblem (:func:`place`).  The cloud holds of an agent only its
name and coupling rows (:func:`stub`).  The result is a
:class:`gridlang.decompose.split.Split` on which the existing ADMM and ATC
coordinators run, in one process (:func:`join`, :func:`solve_parts`) or with
the agents on Ray nodes (:mod:`gridlang.parts.edge`); nothing in it is a
position in a global model.

**Stage 2**: each side computes its own disagreement point alone
(:func:`alone_cost`, :func:`cloud_alone_cost`) and sends one number
(:class:`Alone`).  The settlement point (the optimum :func:`gridlang.settle.select`
defines) is found from the parts by :func:`gridlang.parts.settle.settle_parts`
for linear cases: each side on its own optimal face, an exchange on the
selection's least squares, which splits by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from gridlang.compiler.build import Built, build
from gridlang.decompose.split import Split, Subproblem, split
from gridlang.errors import COMMAND_LINE, Collector, GridError, Span, did_you_mean
from gridlang.grammar import ast
from gridlang.parts.format import CloudFile, read_agent, read_cloud, view


@dataclass(frozen=True, slots=True, order=True)
class RowKey:
    """A row of the model by name: its constraint and coordinates, e.g.
    ``RowKey("ieee33-balance_p", (("bus", "b18"), ("time", "7")))``."""

    constraint: str
    coords: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        return f"{self.constraint}[{', '.join(f'{k}={v}' for k, v in self.coords)}]"


def row_keys(built: Built, labels: np.ndarray) -> list[RowKey]:
    """The :class:`RowKey` of each linopy constraint label."""
    if not len(labels):
        return []
    found = built.model.constraints.get_label_position(np.asarray(labels, dtype=np.int64))
    return [RowKey(name, tuple((k, str(v)) for k, v in coords.items())) for name, coords in found]


def _rhs_shift(view: Built, base: Built) -> dict[RowKey, float]:
    """``b_view - b_base`` on every row the two models share (by name) where it is not zero."""
    out: dict[RowKey, float] = {}
    for name in view.model.constraints:
        if name not in base.model.constraints:
            continue
        a, b = view.model.constraints[name], base.model.constraints[name]
        labels, rhs = a.labels, a.rhs
        other = b.rhs.reindex_like(rhs) if set(rhs.dims) == set(b.rhs.dims) else None
        if other is None:
            continue
        diff = (rhs - other.transpose(*rhs.dims)).values
        lab = labels.transpose(*rhs.dims).values
        where = (lab >= 0) & np.isfinite(diff) & (diff != 0)
        if where.any():
            for key, value in zip(row_keys(view, lab[where]), diff[where], strict=True):
                out[key] = float(value)
    return out


@dataclass(frozen=True, slots=True)
class Join:
    """What an agent sends the cloud when it joins: names and coordinates only, no model."""

    agent: str
    steps: int
    dt: float  # hours per step
    rows: tuple[RowKey, ...]  # the coupling rows it takes part in
    constants: tuple[tuple[RowKey, float], ...]  # shifts of rows it has no column in
    terminals: tuple[tuple[str, int, int], ...] = ()  # (terminal, values missing, implausible) its edge filled
    costs: tuple[int, float] = (0, 0.0)  # how many nonzero cost coefficients it has, and their median |c| (its cost scale)
    ranges: tuple[float, ...] = ()  # per row of ``rows``: the range of its contribution, sum_j |C_rj| (ub_j - lb_j) over its bounded columns
    free: tuple[bool, ...] = ()  # per row of ``rows``: whether an unbounded column of its contributes


@dataclass(frozen=True, slots=True, eq=False)
class AgentSide:
    """An agent's compiled part: its subproblem (private: ``rows`` index ``join.rows``)
    and the message it sends at joining."""

    subproblem: Subproblem
    join: Join
    offset: float  # the constant part of its cost

    @property
    def agent(self) -> str:
        return self.join.agent


@dataclass(frozen=True, slots=True, eq=False)
class CloudSide:
    """The cloud's compiled part: the network owner's subproblem (``rows`` index
    ``rows``), every coupling row by name and which agents may take part in it."""

    path: Path
    owner: str
    agents: tuple[str, ...]  # every agent, in the cloud file's order
    subproblem: Subproblem
    rows: tuple[RowKey, ...]
    allowed: dict[str, frozenset[RowKey]]  # agent -> the rows it may take part in
    steps: int
    dt: float
    offset: float
    spans: dict[str, Span]  # where each agent is connected
    system: Span


@lru_cache(maxsize=8)
def _cloud_built(path: Path, mtime: int, formulation: str | None) -> tuple[CloudFile, Built]:
    cloud = read_cloud(path)
    return cloud, build(view(cloud, (), formulation))


def cloud_view(path: Path, formulation: str | None = None) -> tuple[CloudFile, Built]:
    """The cloud file and its built cloud view (cached while the file is unchanged)."""
    path = Path(path).resolve()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise GridError(Span(str(path), 0, 0), f"cannot read {path}: {exc.strerror or exc}", "give the path of the cloud file") from None
    return _cloud_built(path, mtime, formulation)


def _own_terminals(path: Path, own: set[str], who: str) -> None:
    """A side measures its own assets only: every ``<asset>.<parameter>`` column of its
    measurement file names one of ``own`` (else an error at the column)."""
    from gridlang.monitoring import _HEADER, _TIME_COLUMNS

    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").removeprefix("\ufeff").splitlines()
    except OSError as exc:
        raise GridError(Span(str(path), 1, 1), f"cannot read the measurement file {path}: {exc.strerror or exc}", "give the CSV file of this side's terminals") from None
    line = next((k for k, text in enumerate(lines) if text.strip()), None)
    if line is None:
        return  # monitoring.check says what is wrong with an empty file
    col = 1
    for cell in lines[line].split(","):
        m = _HEADER.match(cell)
        if m is not None and cell.strip().lower() not in _TIME_COLUMNS and m["asset"] not in own:
            raise GridError(Span(str(path), line + 1, col + len(cell) - len(cell.lstrip()), max(len(cell.strip()), 1)),
                            f"'{m['asset']}' is not an asset of '{who}': a side measures its own terminals only",
                            did_you_mean(m["asset"], own) or f"assets of '{who}': {', '.join(sorted(own))}")
        col += len(cell) + 1


def _measured(case, path: Path | None, own: set[str], who: str):
    """The case with this side's terminal measurements checked and filled on its side
    (:func:`gridlang.monitoring.check`), and what was filled per terminal."""
    if path is None:
        return case, ()
    from gridlang.monitoring import IMPLAUSIBLE, MISSING, check

    _own_terminals(path, own, who)
    checked = check(case, path)
    flags = checked.flags.values
    summary = tuple((str(t), int((flags[k] == MISSING).sum()), int((flags[k] == IMPLAUSIBLE).sum())) for k, t in enumerate(checked.flags.coords["terminal"].values))
    return checked.case, summary


def compile_cloud(path: Path, formulation: str | None = None, measurements: Path | None = None) -> CloudSide:
    """The cloud's side (see the module doc): no agent's file is read.  ``measurements``:
    the cloud's own terminals (of the network owner's assets), checked here."""
    cloud, built = cloud_view(path, formulation)
    if measurements is not None:
        owner = built.case.network_owner
        own = {item for item, a in built.case.owners.items() if a == owner}
        built = build(_measured(built.case, measurements, own, owner)[0])
    case = built.case
    owner = case.network_owner
    if owner is None or owner in cloud.points:
        raise GridError(case.system.span, "the cloud file has no network owner of its own", "declare it: 'agent dso owns NETWORK, ...'")
    parts = split(built)
    keys = row_keys(built, parts.labels)
    subs = {s.agent: s for s in parts.subproblems}
    allowed = {a: frozenset(keys[i] for i in subs[a].rows) for a in cloud.points if a in subs}
    return CloudSide(cloud.path, owner, parts.agents, subs[owner], tuple(keys), allowed, case.system.steps, case.system.dt, built.offset,
                     dict(cloud.spans), case.system.span)


def compile_agent(path: Path, formulation: str | None = None, measurements: Path | None = None) -> AgentSide:
    """An agent's side (see the module doc): its own file and the public cloud file only.
    ``measurements``: its terminals' CSV file, read, checked and filled here (the first
    layer, terminal to edge); only how many values were filled crosses to the cloud."""
    return compile_agent_built(path, formulation, measurements)[0]


def compile_agent_built(path: Path, formulation: str | None = None, measurements: Path | None = None) -> tuple[AgentSide, Built]:
    """:func:`compile_agent`, and the agent's built view (for expressions on its model)."""
    mine = read_agent(path)
    cloud, base = cloud_view(mine.cloud, formulation)
    _check_header(mine, cloud, base)
    case, terminals = _measured(view(cloud, (mine,), formulation), measurements, {i.name for i in mine.items}, mine.name)
    built = build(case)
    parts = split(built)
    sub = next(s for s in parts.subproblems if s.agent == mine.name)
    keys = row_keys(built, parts.labels[sub.rows])
    shift = _rhs_shift(built, base)
    d = np.array([shift.get(k, 0.0) for k in keys])
    constants = tuple(sorted((k, v) for k, v in shift.items() if k not in set(keys)))
    local = replace(sub, rows=np.arange(len(keys)), d=d)
    costs, ranges, free = scales(local)
    message = Join(mine.name, built.case.system.steps, built.case.system.dt, tuple(keys), constants, terminals, costs, ranges, free)
    return AgentSide(local, message, built.offset - base.offset), built


def _check_header(mine, cloud: CloudFile, base: Built) -> None:
    """What the agent's file expects of the cloud, checked on the agent's side."""
    from gridlang.compiler.units import parse_unit

    errors = Collector()
    name = mine.name
    if name not in cloud.points:
        raise GridError(mine.header.name.span, f"the cloud file {cloud.path.name} connects no agent '{name}'",
                        did_you_mean(name, cloud.points) or f"it connects {', '.join(cloud.points) or 'no agent'}; ask for 'agent {name} at BUS' there")
    system = base.case.system
    markets = {s.name.name: s for s in cloud.module.statements if isinstance(s, ast.Market)}
    games = {s.name.name: s for s in cloud.module.statements if isinstance(s, ast.Game)}
    for a in mine.header.attrs:
        key, value = a.name.name, a.value
        if key in ("horizon", "step"):
            hours = _hours(value, parse_unit)
            if hours is None:
                errors.add(a.span, f"{key} is a duration, e.g. {key} = 1 h", f"write the {key} with a unit of time")
                continue
            theirs = system.steps * system.dt if key == "horizon" else system.dt
            if abs(hours - theirs) > 1e-9 * max(1.0, theirs):
                errors.add(value.span, f"this file's {key} is {hours:g} h but the cloud's is {theirs:g} h ({cloud.path.name}, {system.span})",
                           f"give the agent's data for the cloud's time axis ({system.steps} steps of {system.dt:g} h), or ask the cloud to change it")
        else:
            table = markets if key == "market" else games
            if not isinstance(value, ast.Name):
                errors.add(a.span, f"write '{key} = NAME' with the name of a {key} of the cloud", f"{key}s of the cloud: {', '.join(table) or 'none'}")
            elif value.id not in table:
                errors.add(value.span, f"the cloud file {cloud.path.name} declares no {key} '{value.id}'",
                           did_you_mean(value.id, table) or f"{key}s of the cloud: {', '.join(table) or 'none'}")
            else:
                node = table[value.id]
                members = {m.name for m in node.members} if key == "market" else {*(p.name for p in node.prosumers), node.operator.name}
                if name not in members:
                    errors.add(value.span, f"'{name}' is not a member of {key} '{value.id}' in the cloud file ({node.span})",
                               f"ask the cloud to add '{name}' to it, or leave '{key} = {value.id}' out")
    points = {b.name for b in cloud.points[name]}
    for asset, bus in mine.buses:
        if bus.name not in points:
            errors.add(bus.span, f"'{asset}' is at bus {bus.name}, where the cloud does not connect '{name}' (it connects it at {', '.join(sorted(points))})",
                       f"connect it at {' or '.join(sorted(points))}, or ask the cloud for 'agent {name} at {', '.join([*sorted(points), bus.name])}'")
    errors.raise_if_any()


def _hours(e, parse_unit) -> float | None:
    if not isinstance(e, ast.Number) or e.unit is None:
        return None
    try:
        si, dim = parse_unit(e.unit)
    except Exception:  # an unknown unit: not a duration
        return None
    return e.value * si / 3600.0 if str(dim) == str(parse_unit("h")[1]) else None


def _own_rows(sub: Subproblem, moved: np.ndarray, rhs: np.ndarray) -> Subproblem:
    """``sub`` with the coupling rows ``moved`` (its local positions) as its own rows ``C x = rhs``."""
    if not len(moved):
        return sub
    C = sp.csr_matrix(sub.C)
    return replace(sub, A=sp.vstack([sub.A, C[moved]]).tocsr(), b=np.concatenate([sub.b, rhs]), sense=np.concatenate([sub.sense, np.full(len(moved), "=")]))


def scales(sub: Subproblem) -> tuple[tuple[int, float], tuple[float, ...], tuple[bool, ...]]:
    """A side's aggregate numbers for the coordinator's initial weights (sent in its
    :class:`Join`): the count and median of its nonzero cost coefficients ``|c_j|``, and per
    coupling row the range of its contribution ``sum_j |C_rj| (ub_j - lb_j)`` over its bounded
    columns and whether an unbounded column contributes (as :func:`gridlang.decompose.admm.penalties` reads them)."""
    c = np.abs(np.asarray(sub.c, dtype=float))
    c = c[c > 0]
    costs = (int(len(c)), float(np.median(c)) if len(c) else 0.0)
    C = abs(sp.csr_matrix(sub.C)).tocsc()
    width = np.asarray(sub.ub, dtype=float) - np.asarray(sub.lb, dtype=float)
    bounded = np.isfinite(width)
    finite = np.asarray(C[:, bounded] @ width[bounded], dtype=float).ravel() if bounded.any() else np.zeros(C.shape[0])
    free = np.asarray(C[:, ~bounded] @ np.ones(int((~bounded).sum())) > 0).ravel() if (~bounded).any() else np.zeros(C.shape[0], dtype=bool)
    return costs, tuple(float(v) for v in finite), tuple(bool(v) for v in free)


def price_scale(costs: Sequence[tuple[int, float]]) -> float:
    """The price scale of a case in parts from every side's cost scale alone (:func:`scales`):
    5 x the median of the sides' medians, each counted as often as it has nonzero cost
    coefficients (1 if there is none); the serial and the Ray cloud both start from it."""
    pairs = sorted((m, n) for n, m in costs if n > 0)
    if not pairs:
        return 1.0
    counts = np.cumsum([n for _, n in pairs])
    return 5.0 * float(pairs[int(np.searchsorted(counts, counts[-1] / 2.0))][0])


def initial(method: str, config, costs: Sequence[tuple[int, float]]):
    """``config`` with ATC's initial weight or ADMM's rho from :func:`price_scale` where the
    user gave none (as :func:`gridlang.decompose.atc.atc` and :func:`gridlang.decompose.admm.admm`
    would set them from every side's costs, which the cloud does not have)."""
    scale = price_scale(costs)
    if method == "atc" and config.weight is None:
        return replace(config, weight=float(np.sqrt(scale / 2)))
    if method == "admm" and config.rho is None:
        return replace(config, rho=scale)
    return config


def penalties_from(parts: Split, ranges: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Every side's per-contribution penalties (:func:`gridlang.decompose.admm.penalties`), the
    sides whose subproblems are not here (``ranges[agent]``: the range and the free flag of its
    contribution to each of its coupling rows) each stood in for by one column per row with that
    range (and one unbounded column where it is free): the same ranges, so the same penalties."""
    from gridlang.decompose.admm import penalties

    subs = []
    for s in parts.subproblems:
        if s.agent not in ranges:
            subs.append(s)
            continue
        finite, free = (np.asarray(v) for v in ranges[s.agent])
        r = len(s.rows)
        unbounded = np.flatnonzero(free)
        C = sp.hstack([sp.identity(r, format="csr"), sp.csr_matrix((np.ones(len(unbounded)), (unbounded, np.arange(len(unbounded)))), shape=(r, len(unbounded)))]).tocsr()
        lb = np.concatenate([np.zeros(r), np.full(len(unbounded), -np.inf)])
        ub = np.concatenate([np.asarray(finite, dtype=float), np.full(len(unbounded), np.inf)])
        subs.append(replace(s, C=C, lb=lb, ub=ub))
    out = penalties(replace(parts, subproblems=tuple(subs)))
    return {s.agent: s.penalty for s in out.subproblems if s.penalty is not None}


@dataclass(frozen=True, slots=True, eq=False)
class Numbering:
    """The cloud's answer to an agent's :class:`Join`: for each row the agent named,
    its coupling row (-1: the agent's own row, ``C x = d + shift``) and the constant
    the agent adds to its ``d`` there (other agents' constants it takes on)."""

    ids: np.ndarray
    shift: np.ndarray


def place(sub: Subproblem, numbering: Numbering) -> Subproblem:
    """An agent's subproblem with the cloud's numbering applied (on the agent's side):
    rows it alone is left in become its own rows, the others take their coupling ids."""
    d = np.asarray(sub.d, dtype=float) + numbering.shift
    keep = numbering.ids >= 0
    sub = _own_rows(replace(sub, d=d), np.flatnonzero(~keep), d[~keep])
    penalty = None if sub.penalty is None else np.asarray(sub.penalty)[keep]
    return replace(sub, rows=numbering.ids[keep], C=sp.csr_matrix(sub.C)[np.flatnonzero(keep)], d=d[keep], penalty=penalty)


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    """The cloud's numbering of the coupling rows for the agents that joined."""

    agents: tuple[str, ...]  # the owner and the agents that joined, in the cloud file's order
    numbering: dict[str, Numbering]
    counts: np.ndarray  # contributors per coupling row
    rows: np.ndarray  # each coupling row's position among the cloud's rows
    offset: float  # the constant part of the total cost

    def names(self, cloud: CloudSide) -> list[RowKey]:
        return [cloud.rows[i] for i in self.rows]


def check_joins(cloud: CloudSide, joins: Sequence[Join]) -> None:
    """Every agent's message against the cloud's rows; every connected agent present."""
    errors = Collector()
    by_agent = {m.agent: m for m in joins}
    for m in joins:
        if m.agent not in cloud.spans:
            errors.add(cloud.system, f"agent '{m.agent}' joined, but the cloud connects no agent '{m.agent}'",
                       did_you_mean(m.agent, cloud.spans) or f"connect it in {cloud.path.name}: 'agent {m.agent} at BUS'")
            continue
        if (m.steps, m.dt) != (cloud.steps, cloud.dt):
            errors.add(cloud.spans[m.agent], f"agent '{m.agent}' joined with {m.steps} steps of {m.dt:g} h, the cloud has {cloud.steps} steps of {cloud.dt:g} h",
                       "compile both sides against the same cloud file")
            continue
        allowed = cloud.allowed.get(m.agent, frozenset())
        stray = [k for k in (*m.rows, *(k for k, _ in m.constants)) if k not in allowed]
        if stray:
            errors.add(cloud.spans[m.agent], f"agent '{m.agent}' takes part in {len(stray)} row(s) the cloud does not share with it, e.g. {stray[0]}",
                       "the agent compiled against another cloud file, or connects at a bus the cloud does not give it")
    for a, span in cloud.spans.items():
        if a not in by_agent:
            errors.add(span, f"no part joined for agent '{a}'", f"give the file of '{a}' (e.g. {a}/{a}.grid)")
    errors.raise_if_any()


def plan(cloud: CloudSide, joins: Sequence[Join], offsets: dict[str, float] | None = None) -> Plan:
    """The cloud's side of joining (see the module doc), from the agents' messages alone:
    checked (:func:`check_joins`), then the rows numbered.  ``offsets``: the constant
    part of each agent's cost, if it sent it (it only shifts the reported total)."""
    check_joins(cloud, joins)
    by_agent = {m.agent: m for m in joins}
    index = {k: i for i, k in enumerate(cloud.rows)}
    order = [a for a in cloud.agents if a == cloud.owner or a in by_agent]
    ids = {cloud.owner: np.asarray(cloud.subproblem.rows, dtype=np.int64)}
    for a in order:
        if a != cloud.owner:
            ids[a] = np.array([index[k] for k in by_agent[a].rows], dtype=np.int64)
    counts = np.zeros(len(cloud.rows), dtype=np.int64)
    for a in order:
        np.add.at(counts, ids[a], 1)
    shift = np.zeros(len(cloud.rows))  # the agents' constants, moved to a contributor's d
    for a in order:
        if a != cloud.owner:
            for k, v in by_agent[a].constants:
                shift[index[k]] += v
    taker = np.full(len(cloud.rows), -1)  # who takes each row's constants: the owner if it takes part
    for n, a in reversed(list(enumerate(order))):
        taker[ids[a]] = n
    taker[ids[cloud.owner]] = order.index(cloud.owner)
    lost = np.flatnonzero((taker < 0) & (shift != 0))
    if len(lost):
        raise GridError(cloud.system, f"{cloud.rows[lost[0]]} is shifted by an agent's fixed data but nothing can balance it", "connect something with a variable at that bus")
    coupled = counts >= 2
    new_id = np.where(coupled, np.cumsum(coupled) - 1, -1)
    numbering = {a: Numbering(new_id[ids[a]], np.where(taker[ids[a]] == n, shift[ids[a]], 0.0)) for n, a in enumerate(order)}
    offset = cloud.offset + sum((offsets or {}).get(a, 0.0) for a in order)
    return Plan(tuple(order), numbering, counts[coupled], np.flatnonzero(coupled), offset)


def stub(agent: str, numbering: Numbering) -> Subproblem:
    """What the cloud holds of an agent's subproblem: its name and coupling rows, no model."""
    empty = sp.csr_matrix((0, 0))
    none = np.zeros(0)
    return Subproblem(agent, np.zeros(0, dtype=np.int64), empty, none, np.zeros(0, dtype="<U1"), none, none, none, empty, (), numbering.ids[numbering.ids >= 0], sp.csr_matrix((int((numbering.ids >= 0).sum()), 0)), np.zeros(int((numbering.ids >= 0).sum())))


def join(cloud: CloudSide, sides: Sequence[AgentSide]) -> Split:
    """Joining in one process: :func:`plan` from the agents' messages, then each agent's
    subproblem :func:`place`-d as the agent would do it on its side."""
    p = plan(cloud, [s.join for s in sides], {s.agent: s.offset for s in sides})
    subs = {cloud.owner: cloud.subproblem, **{s.agent: s.subproblem for s in sides}}
    out = tuple(place(subs[a], p.numbering[a]) for a in p.agents)
    return Split(p.agents, out, len(p.rows), p.counts, p.offset, np.arange(len(p.rows)), p.rows)


def coupling_names(cloud: CloudSide, parts: Split) -> list[RowKey]:
    """The name of each coupling row of a joined :class:`Split` (its ``labels`` are positions among the cloud's rows)."""
    return [cloud.rows[i] for i in parts.labels]


@dataclass(frozen=True, slots=True, eq=False)
class PartsResult:
    objective: float
    status: str
    iterations: int
    costs: dict[str, float]
    run: object  # gridlang.decompose.admm.Run: the trace and the message log
    rows: tuple[RowKey, ...]  # the coupling rows by name
    events: tuple[str, ...] = ()  # edges that left and rejoined during the run
    terminals: tuple[str, ...] = ()  # what each edge filled of its terminals' measurements
    settlement: object = None  # gridlang.parts.settle.PartsSettlement, when settled from the parts
    unsettled: str = ""  # why there is no settlement from the parts, when it was tried by default and refused
    resumed: int = 0  # the passes of the checkpoint this run continued from (0: started from zero)


def terminal_report(joins: Sequence[Join]) -> tuple[str, ...]:
    """Per agent, what its edge filled of its terminals' measurements (the first layer)."""
    out = []
    for m in joins:
        filled = [f"{t}: {a} missing, {b} implausible" for t, a, b in m.terminals if a or b]
        if m.terminals:
            out.append(f"edge of '{m.agent}': {len(m.terminals)} terminal(s) measured" + (f", filled {'; '.join(filled)}" if filled else ", nothing filled"))
    return tuple(out)


def configure(method: str, settings: Mapping[str, object]):
    """The settings of ``method`` (admm or atc) for a run on parts, each checked as
    for a single-file case: an unknown name or a value out of range is an error."""
    from gridlang.decompose import atc as atc_mod
    from gridlang.decompose.admm import CHECKS, Settings, problems

    if method not in ("admm", "atc"):
        raise GridError(COMMAND_LINE, f"unknown decomposition method '{method}' for a case in parts", "methods: admm, atc")
    defaults, checks = (Settings(), CHECKS) if method == "admm" else (atc_mod.Settings(), atc_mod.CHECKS)
    unknown = sorted(set(settings) - set(type(defaults).__dataclass_fields__))
    if unknown:
        raise GridError(COMMAND_LINE, f"unknown {method} setting '{unknown[0]}'", did_you_mean(unknown[0], type(defaults).__dataclass_fields__))
    config = replace(defaults, **settings)
    for name, message, hint in problems(config, checks):
        raise GridError(COMMAND_LINE, f"{method}: {name}: {message}", hint)
    return config


def coordinate(parts, pool, method: str, owner: str, config, progress=None, start=None) -> tuple:
    """ADMM or ATC (the network ``owner`` above) on the sides' answers through
    ``pool``; the run and every side's cost at the point reached.  The run continues from
    ``start`` (an :class:`~gridlang.decompose.atc.AtcState` or
    :class:`~gridlang.decompose.admm.AdmmState`) if given, and hands ``pool`` its state
    at every pass if it keeps one (:class:`gridlang.parts.resume.Checkpoint`)."""
    from gridlang.decompose import atc as atc_mod
    from gridlang.decompose.admm import admm

    if method == "admm":
        run = admm(parts, pool, config, progress, start, getattr(pool, "keep", None))
        return run, pool.costs()
    run, x_upper = atc_mod.atc(parts, owner, pool, config, progress, start, getattr(pool, "keep", None))
    costs = pool.costs()
    up = next(s for s in parts.subproblems if s.agent == owner)
    costs[owner] = float(up.c @ x_upper + 0.5 * x_upper @ (up.Q @ x_upper))
    return run, costs


def before_dispatch(cloud_path: Path, formulation: str | None, method: str, settings: Mapping[str, object],
                    settle: bool | None, resume: bool, checkpoint: Path | None):
    """The method's settings (:func:`configure`), after every refusal that must come
    before any side solves: a resume that cannot be (:func:`~gridlang.parts.resume.check_resume`)
    and, with ``settle`` asked for, a cloud the parts cannot settle."""
    from gridlang.parts.resume import check_resume

    config = configure(method, settings)
    check_resume(resume, checkpoint)
    if settle:
        from gridlang.parts.settle import check_cloud

        check_cloud(cloud_path, formulation)
    return config


def solve_parts(cloud_path: Path, agent_paths: Sequence[Path], method: str = "atc", formulation: str | None = None,
                measurements: dict[str, Path] | None = None, checkpoint: Path | None = None, progress=None, settle: bool | None = False,
                resume: bool = False, **settings) -> PartsResult:
    """Compile each side on its own, join, and run ADMM or ATC (serial executor, one
    process): the objective is the sum of the agents' costs at the point they reach.
    ``measurements``: a terminal CSV file per agent (the network owner's for the cloud);
    ``resume``: the run continues from the iterate saved in ``checkpoint`` (:mod:`gridlang.parts.resume`)."""
    from gridlang.decompose.admm import penalties
    from gridlang.decompose.executors import SerialExecutor
    from gridlang.parts.resume import checkpointed

    config = before_dispatch(cloud_path, formulation, method, settings, settle, resume, checkpoint)
    measurements = measurements or {}
    cloud = compile_cloud(cloud_path, formulation)
    if measurements.get(cloud.owner) is not None:
        cloud = compile_cloud(cloud_path, formulation, measurements[cloud.owner])
    built_sides = [compile_agent_built(p, formulation, measurements.get(read_agent(p).name)) for p in agent_paths]
    sides = [side for side, _ in built_sides]
    parts = join(cloud, sides)
    if settle:
        from gridlang.parts.settle import check_side

        for sub in parts.subproblems:  # asked for: refused before the dispatch, not after
            check_side(sub)
    config = initial(method, config, [scales(s)[0] for s in parts.subproblems])  # as the Ray cloud does, from each side's numbers
    if method == "admm" and config.row_scaling:
        parts = penalties(parts)
    subs = parts.subproblems if method == "admm" else tuple(s for s in parts.subproblems if s.agent != cloud.owner)
    names = coupling_names(cloud, parts)
    pool, start = checkpointed(lambda: SerialExecutor(subs), parts, cloud.owner, names, method, checkpoint, resume)
    try:
        run, costs = coordinate(parts, pool, method, cloud.owner, config, progress, start)
    finally:
        pool.close()
    if checkpoint is not None:
        pool.finish(run.status)
    settlement, unsettled = None, ""
    if settle is not False and run.status == "converged":  # None: settle if the parts can (else say why)
        from gridlang.parts.settle import attempt, settle_parts

        settlement, unsettled = attempt(settle, lambda: settle_parts(cloud_path, agent_paths, formulation, compiled=(cloud, built_sides), conic=settle is True))
    return PartsResult(float(sum(costs.values())) + parts.offset, run.status, run.iterations, costs, run, tuple(coupling_names(cloud, parts)),
                       terminals=terminal_report([s.join for s in sides]), settlement=settlement, unsettled=unsettled,
                       resumed=start.iteration if start is not None else 0)


@dataclass(frozen=True, slots=True)
class Alone:
    """Stage 2's message from one side: an agent's cost alone (its disagreement point),
    computed on its own side; the number is all that crosses."""

    agent: str
    cost: float


def _alone(case, agent: str) -> Alone:
    from gridlang import settle

    island = build(settle.alone(case, agent))
    r = settle.solve(island)
    if r.doubts():
        raise GridError(case.system.span, f"'{agent}' cannot operate alone: as an island of its own assets its problem has no trusted solution ({'; '.join(r.doubts())})",
                        f"give '{agent}' a curtailable load (curtailable = ... %), a generator or grid connection of its own")
    return Alone(agent, float(r.objective))


def alone_cost(path: Path, formulation: str | None = None) -> Alone:
    """An agent's disagreement point on its side: its own assets as an island
    (:func:`gridlang.settle.alone`), solved as stage 2 solves it (:func:`gridlang.settle.solve`),
    from its own file and the public cloud file only."""
    mine = read_agent(path)
    cloud, base = cloud_view(mine.cloud, formulation)
    _check_header(mine, cloud, base)
    return _alone(view(cloud, (mine,), formulation), mine.name)


def cloud_alone_cost(path: Path, formulation: str | None = None) -> Alone:
    """The network owner's disagreement point on the cloud's side: its networks and assets alone."""
    _, built = cloud_view(path, formulation)
    return _alone(built.case, built.case.network_owner)
