"""The cloud's checkpoint: the last consistent iterate, saved after every pass and read back to resume.

**Saving** (:class:`Checkpoint`, an executor around the real one): after every
pass, the targets the coordinator sent and the answers it got, per agent and
named coupling row, and for ATC the state the next pass starts from
(:class:`gridlang.decompose.atc.AtcState`: the passes done, the weight, the last
inconsistency and total cost, and per target the response ``y`` and multiplier
``v``), to a JSON file written atomically (a temporary file moved into place),
``status`` "running" until the run ends.

**Resuming** (:func:`read_state`): every target is identified by its agent and
the :class:`~gridlang.parts.compile.RowKey` of its row, written out
(``feeder-balance_p[bus=h1, time=3]``), never by a position, so a checkpoint
still fits after the cloud re-joins and numbers the rows again.  It fits a run
when it was written by ATC and holds exactly that run's targets: a target
missing, one more, another method or a damaged file is a :class:`GridError`
at the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gridlang.errors import COMMAND_LINE, GridError, Span

KIND = "cloud checkpoint"  # the file's "written by gridlang" value


def targets(parts, owner: str, names: Sequence) -> list[tuple[str, str]]:
    """(agent, row name) of every ATC target, in the order :func:`gridlang.decompose.atc.atc` holds them."""
    return [(s.agent, str(names[i])) for s in parts.subproblems if s.agent != owner for i in s.rows]


def check_resume(method: str, resume: bool, checkpoint: Path | None) -> None:
    """``--resume`` needs the checkpoint to continue from, and continues ATC only (the
    ADMM coordinator takes no start state yet)."""
    if resume and checkpoint is None:
        raise GridError(COMMAND_LINE, "--resume needs --checkpoint: the file to continue from", "e.g. gridlang cloud cloud.grid --serial --checkpoint checkpoint.json --resume")
    if resume and method == "admm":
        raise GridError(COMMAND_LINE, "--resume is not supported with --method admm yet: only ATC continues from a checkpoint",
                        "resume with --method atc (the default), or leave out --resume to start ADMM from zero")


def _encode(state, pairs: Sequence[tuple[str, str]]) -> dict | None:
    if state is None:
        return None
    agents: dict[str, dict[str, list]] = {}
    for (agent, row), y, v in zip(pairs, state.y.tolist(), state.v.tolist(), strict=True):
        mine = agents.setdefault(agent, {"rows": [], "y": [], "v": []})
        mine["rows"].append(row)
        mine["y"].append(y)
        mine["v"].append(v)
    return {"iteration": state.iteration, "weight": state.weight, "previous_gap": state.previous_gap, "previous_cost": state.previous_cost, "targets": agents}


class Checkpoint:
    """An executor that saves, after every pass, the last consistent iterate: the targets
    the coordinator sent and the answers it got back in that pass, per agent and named
    row, and (ATC, :meth:`keep`) the state the next pass starts from, to a JSON file
    written atomically (``status`` "running" until the run ends).  If the cloud's
    process dies, the file says how far it came and holds that iterate."""

    def __init__(self, inner, path: Path, names: dict[str, list[str]], method: str = "atc",
                 pairs: Sequence[tuple[str, str]] = (), state=None) -> None:
        from gridlang.io.results import check_file

        self.inner, self.path, self.names, self.passes = inner, Path(path), names, 0
        self.method, self.pairs, self.state, self.last = method, list(pairs), state, (None, None)
        if state is not None:
            self.passes = state.iteration
        check_file(self.path, "--checkpoint", "checkpoint.json")

    def _write(self, status: str) -> None:
        from gridlang.io.results import write_atomic

        targets, answers = self.last
        agents = {a: {"rows": self.names.get(a, []), "target": np.asarray(targets[a]).tolist(), "answer": np.asarray(answers[a]).tolist()}
                  for a in (answers or {}) if a in (targets or {})}
        text = json.dumps({"written by gridlang": KIND, "method": self.method, "status": status, "pass": self.passes, "agents": agents,
                           "state": _encode(self.state, self.pairs) if self.method == "atc" else None}, indent=1)
        write_atomic(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def solve_all(self, targets, rho):
        answers = self.inner.solve_all(targets, rho)
        self.passes += 1
        self.last = (targets, answers)
        self._write("running")  # with the state this pass started from: a consistent point to resume at
        return answers

    def keep(self, state) -> None:
        """ATC's state after a pass (:class:`gridlang.decompose.atc.AtcState`): saved with that pass."""
        self.state = state
        self._write("running")

    def finish(self, status: str) -> None:
        self._write(status)

    def __getattr__(self, name):  # costs, points, kill, ready, close: the inner executor's
        return getattr(self.inner, name)


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def read_state(path: Path, method: str, pairs: Sequence[tuple[str, str]]):
    """The :class:`~gridlang.decompose.atc.AtcState` saved in the checkpoint at ``path``, its
    targets put in the order of ``pairs`` ((agent, row name) of this run's targets, see
    :func:`targets`); a GridError at the file when it is missing, damaged, written by
    another method or holds other targets than this run's."""
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
    try:
        found: dict[tuple[str, str], tuple[float, float]] = {}
        for agent, mine in state["targets"].items():
            rows, y, v = mine["rows"], mine["y"], mine["v"]
            if not (len(rows) == len(y) == len(v)) or not all(_number(x) and math.isfinite(x) for x in [*y, *v]):
                raise ValueError(agent)
            found.update({(agent, str(r)): (float(a), float(b)) for r, a, b in zip(rows, y, v)})
        k, weight, gap, cost = state["iteration"], state["weight"], state["previous_gap"], state["previous_cost"]
        if not (isinstance(k, int) and k >= 1 and all(_number(x) for x in (weight, gap, cost)) and weight > 0 and math.isfinite(weight)):
            raise ValueError("state")
    except (KeyError, TypeError, AttributeError, ValueError):
        raise GridError(at, "the checkpoint is damaged: its state is not the iterate gridlang writes", f"give --checkpoint a checkpoint gridlang wrote whole, or {fresh}") from None
    wanted = list(pairs)
    missing = [p for p in wanted if p not in found]
    extra = sorted(set(found) - set(wanted))
    if missing or extra:
        agent, row = (missing or extra)[0]
        what = f"has no value for '{agent}' at {row}" if missing else f"holds a target of '{agent}' at {row}, which this case does not have"
        counts = f"{len(missing)} of this case's {len(wanted)} targets missing, {len(extra)} not in this case"
        raise GridError(at, f"the checkpoint does not fit this case: it {what} ({counts})", f"resume with the checkpoint this case's cloud wrote, or {fresh}")
    y = np.array([found[p][0] for p in wanted])
    v = np.array([found[p][1] for p in wanted])
    return AtcState(k, y, v, float(weight), float(gap), float(cost))
