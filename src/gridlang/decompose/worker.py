"""A decomposition worker: ``python -m gridlang.decompose.worker READ_FD WRITE_FD``.

It holds several agents' persistent subproblems (:class:`~gridlang.decompose.local.LocalSolver`,
each with its :class:`~gridlang.decompose.local.Form` assembled by the parent)
and answers, over two pipes of pickled messages:

    ("agents", {agent: (subproblem, form)})  ->  nothing (the agents it holds from now on)
    ("ping",)                                ->  ("pong",)
    ("solve", {agent: v}, rho)               ->  ("y", {agent: y}) solved one after the other,
                                                 or ("error", message)
    ("costs",)                               ->  ("costs", {agent: cost})
    ("state",)                               ->  ("state", {agent: (cost, x)})
    ("stop",) or the parent's end closed     ->  exits

It is started as a fresh interpreter that imports this module only
(``gridlang``, ``gridlang.decompose`` and :mod:`local` load nothing heavy):
numpy, scipy.sparse and Clarabel, not linopy, xarray or pandas, and not the
parent's ``__main__`` (as a ``multiprocessing`` spawn would).
"""

from __future__ import annotations

import os
import signal
import sys
from multiprocessing.connection import Connection

from gridlang.decompose.local import LocalSolver
from gridlang.errors import GridError


def serve(inbox: Connection, outbox: Connection) -> None:
    local: dict[str, LocalSolver] = {}
    while True:
        try:
            request = inbox.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        kind = request[0]
        if kind == "agents":
            local.update({a: LocalSolver(sub, form) for a, (sub, form) in request[1].items()})
        elif kind == "ping":
            outbox.send(("pong",))
        elif kind == "solve":
            try:
                outbox.send(("y", {a: local[a].solve(v, request[2]) for a, v in request[1].items()}))
            except GridError as exc:
                outbox.send(("error", str(exc)))
        elif kind == "costs":
            outbox.send(("costs", {a: s.cost() for a, s in local.items()}))
        elif kind == "state":
            outbox.send(("state", {a: (s.cost(), s.x) for a, s in local.items()}))
        else:
            return


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops its workers (or its end closes)
    serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # nothing to tear down: skipping the interpreter's shutdown saves a tenth of a second per worker
