"""The cloud's checkpoint: the last consistent iterate, saved after every pass and read back to resume.

**Saving** (:class:`Checkpoint`, an executor around the real one): after every
pass, the targets the coordinator sent and the answers it got, per agent and
named coupling row, and the state the next pass starts from: for ATC
(:class:`gridlang.decompose.atc.AtcState`) the passes done, the weight, the last
inconsistency and total cost, and per target the response ``y`` and multiplier
``v``; for ADMM (:class:`gridlang.decompose.admm.AdmmState`) the iterations done,
``rho``, the consensus point ``z`` per contribution (agent and row) and the scaled
multiplier ``u`` per row.  It goes to a JSON file written atomically (a temporary
file moved into place), ``status`` "running" until the run ends.

**Resuming** (:func:`read_state`): every target is identified by its agent and
the :class:`~gridlang.parts.compile.RowKey` of its row, written out
(``feeder-balance_p[bus=h1, time=3]``), never by a position, so a checkpoint
still fits after the cloud re-joins and numbers the rows again.  It fits a run
when it was written by the same method and holds exactly that run's targets (ADMM:
contributions and rows): one missing, one more, another method or a damaged file
is a :class:`GridError` at the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gridlang.errors import COMMAND_LINE, GridError, Span

KIND = "cloud checkpoint"  # the file's "written by gridlang" value


def targets(parts, owner: str, names: Sequence, method: str = "atc") -> list[tuple[str, str]]:
    """(agent, row name) of every ATC target, or every ADMM contribution (the owner's too),
    in the order :func:`gridlang.decompose.atc.atc` or :func:`gridlang.decompose.admm.admm` holds them."""
    return [(s.agent, str(names[i])) for s in parts.subproblems if method == "admm" or s.agent != owner for i in s.rows]


def check_resume(resume: bool, checkpoint: Path | None) -> None:
    """``--resume`` needs the checkpoint to continue from."""
    if resume and checkpoint is None:
        raise GridError(COMMAND_LINE, "--resume needs --checkpoint: the file to continue from", "e.g. gridlang cloud cloud.grid --serial --checkpoint checkpoint.json --resume")


def _per_agent(pairs: Sequence[tuple[str, str]], **values: np.ndarray) -> dict[str, dict[str, list]]:
    """Values per (agent, row) as ``{agent: {"rows": [...], name: [...]}}``."""
    agents: dict[str, dict[str, list]] = {}
    columns = {k: v.tolist() for k, v in values.items()}
    for i, (agent, row) in enumerate(pairs):
        mine = agents.setdefault(agent, {"rows": [], **{k: [] for k in columns}})
        mine["rows"].append(row)
        for k, v in columns.items():
            mine[k].append(v[i])
    return agents


def _encode(method: str, state, pairs: Sequence[tuple[str, str]], rows: Sequence[str]) -> dict | None:
    if state is None:
        return None
    if method == "admm":
        return {"iteration": state.iteration, "rho": state.rho, "contributions": _per_agent(pairs, z=state.z), "prices": {"rows": list(rows), "u": state.u.tolist()}}
    return {"iteration": state.iteration, "weight": state.weight, "previous_gap": state.previous_gap, "previous_cost": state.previous_cost, "targets": _per_agent(pairs, y=state.y, v=state.v)}


class Checkpoint:
    """An executor that saves, after every pass, the last consistent iterate: the targets
    the coordinator sent and the answers it got back in that pass, per agent and named
    row, and (:meth:`keep`) the state the next pass starts from, to a JSON file
    written atomically (``status`` "running" until the run ends).  If the cloud's
    process dies, the file says how far it came and holds that iterate.  ``pairs``:
    the (agent, row name) of the state's targets or contributions (:func:`targets`);
    ``rows``: every coupling row's name (ADMM's prices)."""

    def __init__(self, inner, path: Path, names: dict[str, list[str]], method: str = "atc",
                 pairs: Sequence[tuple[str, str]] = (), state=None, rows: Sequence = ()) -> None:
        from gridlang.io.results import check_file

        self.inner, self.path, self.names, self.passes = inner, Path(path), names, 0
        self.method, self.pairs, self.state, self.last = method, list(pairs), state, (None, None)
        self.rows = [str(r) for r in rows]
        if state is not None:
            self.passes = state.iteration
        check_file(self.path, "--checkpoint", "checkpoint.json")

    def _write(self, status: str) -> None:
        from gridlang.io.results import write_atomic

        targets, answers = self.last
        agents = {a: {"rows": self.names.get(a, []), "target": np.asarray(targets[a]).tolist(), "answer": np.asarray(answers[a]).tolist()}
                  for a in (answers or {}) if a in (targets or {})}
        text = json.dumps({"written by gridlang": KIND, "method": self.method, "status": status, "pass": self.passes, "agents": agents,
                           "state": _encode(self.method, self.state, self.pairs, self.rows)}, indent=1)
        write_atomic(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def solve_all(self, targets, rho):
        answers = self.inner.solve_all(targets, rho)
        self.passes += 1
        self.last = (targets, answers)
        self._write("running")  # with the state this pass started from: a consistent point to resume at
        return answers

    def keep(self, state) -> None:
        """The state the next pass starts from (an ATC or ADMM state): saved with that pass."""
        self.state = state
        self._write("running")

    def finish(self, status: str) -> None:
        self._write(status)

    def __getattr__(self, name):  # costs, points, kill, ready, close: the inner executor's
        return getattr(self.inner, name)


def checkpointed(make_pool, parts, owner: str, names: Sequence, method: str, checkpoint: Path | None, resume: bool):
    """``(pool, start)``: the state to continue from (``resume``: read from ``checkpoint``,
    refused before ``make_pool()`` starts any side) and the pool ``make_pool()`` makes,
    saving to ``checkpoint`` after every pass if one is given (:class:`Checkpoint`)."""
    pairs = targets(parts, owner, names, method)
    start = read_state(checkpoint, method, pairs, names) if resume else None
    pool = make_pool()
    if checkpoint is not None:
        pool = Checkpoint(pool, checkpoint, {s.agent: [str(names[i]) for i in s.rows] for s in parts.subproblems}, method, pairs, start, names)
    return pool, start


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _by_name(block: dict, keys: Sequence[str]) -> dict[tuple[str, str], tuple[float, ...]]:
    """``{agent: {"rows": [...], key: [...]}}`` as {(agent, row): values}; ValueError when damaged."""
    found: dict[tuple[str, str], tuple[float, ...]] = {}
    for agent, mine in block.items():
        rows, columns = mine["rows"], [mine[k] for k in keys]
        if any(len(c) != len(rows) for c in columns) or not all(_number(x) and math.isfinite(x) for c in columns for x in c):
            raise ValueError(agent)
        found.update({(agent, str(r)): tuple(float(c[i]) for c in columns) for i, r in enumerate(rows)})
    return found


def _fits(found: dict, wanted: Sequence[tuple[str, str]], at: Span, fresh: str, what: str = "target") -> None:
    """Refuse a checkpoint whose (agent, row) keys are not exactly ``wanted``."""
    missing = [p for p in wanted if p not in found]
    extra = sorted(set(found) - set(wanted))
    if missing or extra:
        agent, row = (missing or extra)[0]
        of = f" of '{agent}'" if agent else ""  # ADMM's prices are the rows', no agent's
        said = (f"has no value for '{agent}' at {row}" if agent else f"has no {what} at {row}") if missing else f"holds a {what}{of} at {row}, which this case does not have"
        counts = f"{len(missing)} of this case's {len(wanted)} {what}s missing, {len(extra)} not in this case"
        raise GridError(at, f"the checkpoint does not fit this case: it {said} ({counts})", f"resume with the checkpoint this case's cloud wrote, or {fresh}")


def read_state(path: Path, method: str, pairs: Sequence[tuple[str, str]], rows: Sequence = ()):
    """The state saved in the checkpoint at ``path`` (:class:`~gridlang.decompose.atc.AtcState`
    or :class:`~gridlang.decompose.admm.AdmmState`), its values put in the order of ``pairs``
    ((agent, row name) of this run's targets or contributions, see :func:`targets`) and, for
    ADMM's prices, of ``rows`` (every coupling row's name); a GridError at the file when it
    is missing, damaged, written by another method or holds other targets than this run's."""
    from gridlang.decompose.admm import AdmmState
    from gridlang.decompose.atc import AtcState

    path = Path(path)
    at = Span(str(path), 0, 0)
    fresh = "leave out --resume to start from zero (the file is then replaced)"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GridError(at, f"no checkpoint to resume from: {path} does not exist", f"give --checkpoint the file an earlier run wrote, or {fresh}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GridError(at, f"cannot read the checkpoint {path}: {getattr(exc, 'strerror', None) or exc}", f"give --checkpoint the file an earlier run wrote, or {fresh}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GridError(Span(str(path), exc.lineno, exc.colno), f"the checkpoint is damaged: {exc.msg}", f"give --checkpoint a checkpoint gridlang wrote whole, or {fresh}") from None
    if not isinstance(data, dict) or data.get("written by gridlang") != KIND:
        raise GridError(at, "this file is not a checkpoint gridlang's cloud wrote", f"give --checkpoint the file of 'gridlang cloud ... --checkpoint', or {fresh}")
    written = data.get("method", "admm" if data.get("state") is None else "atc")
    if written != method:
        raise GridError(at, f"the checkpoint was written by an {str(written).upper()} run; an {method.upper()} run cannot continue from it",
                        f"resume with --method {written}, or {fresh}")
    state = data.get("state")
    if state is None:
        raise GridError(at, "the checkpoint holds no iterate to resume from: its run stopped before its first pass ended", fresh)
    wanted = list(pairs)
    try:
        k = state["iteration"]
        if not (isinstance(k, int) and k >= 1):
            raise ValueError("iteration")
        if method == "admm":
            found = _by_name(state["contributions"], ["z"])
            prices = _by_name({"": state["prices"]}, ["u"])
            rho = state["rho"]
            if not (_number(rho) and math.isfinite(rho) and rho > 0):
                raise ValueError("rho")
        else:
            found = _by_name(state["targets"], ["y", "v"])
            weight, gap, cost = state["weight"], state["previous_gap"], state["previous_cost"]
            if not (all(_number(x) for x in (weight, gap, cost)) and weight > 0 and math.isfinite(weight)):
                raise ValueError("state")
    except (KeyError, TypeError, AttributeError, ValueError):
        raise GridError(at, "the checkpoint is damaged: its state is not the iterate gridlang writes", f"give --checkpoint a checkpoint gridlang wrote whole, or {fresh}") from None
    if method == "admm":
        _fits(found, wanted, at, fresh, "contribution")
        named = [("", str(r)) for r in rows]
        _fits(prices, named, at, fresh, "price")
        return AdmmState(k, np.array([found[p][0] for p in wanted]), np.array([prices[p][0] for p in named]), float(rho))
    _fits(found, wanted, at, fresh)
    return AtcState(k, np.array([found[p][0] for p in wanted]), np.array([found[p][1] for p in wanted]), float(weight), float(gap), float(cost))
