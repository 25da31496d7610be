"""A decomposition worker: ``python -m gridlang.decompose.worker READ_FD WRITE_FD``.

It holds several agents' persistent subproblems (:class:`~gridlang.decompose.local.LocalSolver`,
each with its :class:`~gridlang.decompose.local.Form` assembled by the parent)
and answers, over two pipes of pickled messages:

    ("agents", {agent: (subproblem, form)})  ->  nothing (the agents it holds from now on)
    ("ping",)                                ->  ("pong",)
    ("solve", v, rho, agents)                ->  ("y", y, costs, seconds) solved one after the other,
                                                 or ("error", message)

In a solve, ``agents`` names the agents asked (None: all it holds, in the order
they were given), ``v`` is their targets and ``y`` their contributions, each
one flat float array (the agents' rows one after the other), and ``costs``
their own costs at the new points: no per-agent objects travel per iteration;
``seconds`` is (wall, CPU) time the worker spent on the request, from its
receipt to its answer (the parent's round trip minus the wall time is the exchange).
    ("costs",)                               ->  ("costs", {agent: cost})
    ("state",)                               ->  ("state", {agent: (cost, x)})
    ("stop",) or the parent's end closed     ->  exits

On Linux it is usually this module's :func:`serve` in a fork of the parent
(:func:`gridlang.decompose.executors.start_method`), given its agents at the
fork.  Otherwise it is started as a fresh interpreter that imports this module only
(``gridlang``, ``gridlang.decompose`` and :mod:`local` load nothing heavy):
numpy, scipy.sparse and Clarabel, not linopy, xarray or pandas, and not the
parent's ``__main__`` (as a ``multiprocessing`` spawn would).

:class:`RayHost` is the same worker as a Ray actor (``executor = ray``): it lives
here so that a Ray worker process becoming one imports this light module only.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from multiprocessing.connection import Connection

import numpy as np

from gridlang.decompose.local import LocalSolver
from gridlang.errors import GridError


def serve(inbox: Connection, outbox: Connection, agents: dict | None = None) -> None:
    """Answer requests until ``("stop",)`` or the parent's end closes; ``agents``
    ({agent: (subproblem, form)}) are held from the start (a forked worker's)."""
    local: dict[str, LocalSolver] = {}
    sizes: dict[str, int] = {}

    def hold(batch: dict) -> None:
        local.update({a: LocalSolver(sub, form) for a, (sub, form) in batch.items()})
        sizes.update({a: len(sub.rows) for a, (sub, _) in batch.items()})

    hold(agents or {})
    while True:
        try:
            request = inbox.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        kind = request[0]
        if kind == "agents":
            hold(request[1])
        elif kind == "ping":
            outbox.send(("pong",))
        elif kind == "solve":
            t0, c0 = time.perf_counter(), time.process_time()
            _, flat, rho, names = request
            names = list(local) if names is None else names
            try:
                parts = np.split(flat, np.cumsum([sizes[a] for a in names])[:-1]) if names else []
                y = [local[a].solve(v, rho) for a, v in zip(names, parts)]
                costs = np.array([local[a].cost() for a in names])
                outbox.send(("y", np.concatenate(y) if y else np.zeros(0), costs, (time.perf_counter() - t0, time.process_time() - c0)))
            except GridError as exc:
                outbox.send(("error", str(exc)))
        elif kind == "costs":
            outbox.send(("costs", {a: s.cost() for a, s in local.items()}))
        elif kind == "state":
            outbox.send(("state", {a: (s.cost(), s.x) for a, s in local.items()}))
        else:
            return


class RayHost:
    """A Ray actor that holds one run's batch of agents' persistent subproblems
    (:meth:`load`); it outlives the run, so that a user's next solve on the same
    Ray finds it started, with gridlang imported.  A batch comes as
    ``{agent: (subproblem, form)}``, the form assembled by the caller (assembling
    it needs the compiler, which an actor does not import)."""

    def __init__(self) -> None:
        self.run: int | None = None
        self.local: dict[str, LocalSolver] = {}

    def load(self, run: int, payload: dict) -> None:
        self.run, self.local = run, {a: LocalSolver(sub, form) for a, (sub, form) in payload.items()}

    def drop(self) -> None:
        self.run, self.local = None, {}

    def solve(self, run: int, targets: dict[str, np.ndarray], rho: float) -> tuple[dict[str, np.ndarray], dict[str, float]] | None:
        """The agents' answers, or None when this actor does not hold run ``run`` (restarted by Ray)."""
        if run != self.run:
            return None
        y = {a: self.local[a].solve(v, rho) for a, v in targets.items()}
        return y, {a: self.local[a].cost() for a in targets}

    def state(self, run: int) -> dict[str, tuple[float, np.ndarray]] | None:
        return {a: (s.cost(), s.x) for a, s in self.local.items()} if run == self.run else None

    def ping(self) -> int:
        return os.getpid()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops its workers (or its end closes)
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # nothing to tear down: skipping the interpreter's shutdown saves a tenth of a second per worker
