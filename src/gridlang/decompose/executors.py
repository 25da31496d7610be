"""Where the agents' subproblems run: here, in worker processes, or on Ray.

An executor is built from the subproblems, keeps each agent's model alive
for the whole run, and answers ``solve_all(targets, rho) -> {agent: y}``.
``serial`` solves them one after the other here; ``processes`` gives every
agent a persistent worker process that receives its subproblem once and
then only targets (and returns only its contribution); ``ray`` does the same
with one actor per agent.  A worker that dies is started again from its
subproblem and its last target (the coordinator holds the state), and the
iteration goes on.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Mapping

import numpy as np

from gridlang.decompose.local import LocalSolver
from gridlang.decompose.split import Subproblem
from gridlang.errors import GridError, Span


class SerialExecutor:
    def __init__(self, subproblems: tuple[Subproblem, ...]) -> None:
        self.local = {s.agent: LocalSolver(s) for s in subproblems}

    def solve_all(self, targets: Mapping[str, np.ndarray], rho: float) -> dict[str, np.ndarray]:
        return {a: self.local[a].solve(v, rho) for a, v in targets.items()}

    def costs(self) -> dict[str, float]:
        return {a: s.cost() for a, s in self.local.items()}

    def kill(self, agent: str) -> None:
        """Lose an agent's model (fault injection): it is built again at its next solve."""
        self.local[agent] = LocalSolver(self.local[agent].sub)

    def points(self) -> dict[str, np.ndarray]:
        return {a: s.x for a, s in self.local.items()}

    def close(self) -> None:
        pass


def _worker(sub: Subproblem, conn) -> None:
    local = LocalSolver(sub)
    while True:
        request = conn.recv()
        if request[0] == "solve":
            try:
                conn.send(("y", local.solve(request[1], request[2])))
            except GridError as exc:
                conn.send(("error", str(exc)))
        elif request[0] == "state":
            conn.send(("state", local.cost(), local.x))
        else:
            conn.close()
            return


class ProcessExecutor:
    """One persistent worker process per agent."""

    def __init__(self, subproblems: tuple[Subproblem, ...]) -> None:
        self.ctx = mp.get_context("spawn")
        self.subs = {s.agent: s for s in subproblems}
        self.workers: dict[str, tuple] = {}
        self.restarts: dict[str, int] = dict.fromkeys(self.subs, 0)
        for agent in self.subs:
            self._start(agent)

    def _start(self, agent: str) -> None:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker, args=(self.subs[agent], child), daemon=True)
        proc.start()
        self.workers[agent] = (proc, parent)

    def kill(self, agent: str) -> None:
        """Stop a worker abruptly (fault injection)."""
        proc, _ = self.workers[agent]
        proc.kill()
        proc.join()

    def _ask(self, agent: str, request: tuple):
        for attempt in range(2):
            proc, conn = self.workers[agent]
            try:
                conn.send(request)
                reply = conn.recv()
                break
            except (EOFError, BrokenPipeError, ConnectionResetError):
                if attempt:
                    raise GridError(Span("<decomposition>", 0, 0), f"the worker of agent '{agent}' failed twice", "see the worker's log") from None
                self.restarts[agent] += 1
                self._start(agent)  # a fresh model; the next solve warm-starts nothing but loses nothing
        if reply[0] == "error":
            raise GridError(Span("<decomposition>", 0, 0), reply[1])
        return reply

    def solve_all(self, targets: Mapping[str, np.ndarray], rho: float) -> dict[str, np.ndarray]:
        for agent, v in targets.items():  # send to every worker first, so they solve in parallel
            proc, conn = self.workers[agent]
            try:
                conn.send(("solve", v, rho))
            except (BrokenPipeError, ConnectionResetError):
                pass
        out = {}
        for agent, v in targets.items():
            proc, conn = self.workers[agent]
            try:
                reply = conn.recv()
            except (EOFError, ConnectionResetError):
                self.restarts[agent] += 1
                self._start(agent)
                reply = self._ask(agent, ("solve", v, rho))
            if reply[0] == "error":
                raise GridError(Span("<decomposition>", 0, 0), reply[1])
            out[agent] = reply[1]
        return out

    def costs(self) -> dict[str, float]:
        return {a: self._ask(a, ("state",))[1] for a in self.subs}

    def points(self) -> dict[str, np.ndarray]:
        return {a: self._ask(a, ("state",))[2] for a in self.subs}

    def close(self) -> None:
        for proc, conn in self.workers.values():
            try:
                conn.send(("stop",))
            except (BrokenPipeError, OSError):
                pass
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()


class _RayAgent:
    """A Ray actor holding one agent's persistent subproblem."""

    def __init__(self, sub: Subproblem) -> None:
        self.local = LocalSolver(sub)

    def solve(self, v: np.ndarray, rho: float) -> np.ndarray:
        return self.local.solve(v, rho)

    def state(self) -> tuple[float, np.ndarray]:
        return self.local.cost(), self.local.x


class RayExecutor:
    """One Ray actor per agent, on the cluster at ``address`` or on a local Ray
    started here (and stopped by :meth:`close`).  An actor that dies is
    restarted by Ray (``max_restarts``) from its subproblem and the pending
    solve retried (``max_task_retries``)."""

    def __init__(self, subproblems: tuple[Subproblem, ...], address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise GridError(Span("<decomposition>", 0, 0), "the ray executor needs Ray", "pip install 'gridlang[ray]'") from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        actor = ray.remote(num_cpus=0, max_restarts=3, max_task_retries=3)(_RayAgent)
        self.actors = {s.agent: actor.remote(s) for s in subproblems}

    def solve_all(self, targets: Mapping[str, np.ndarray], rho: float) -> dict[str, np.ndarray]:
        refs = {a: self.actors[a].solve.remote(v, rho) for a, v in targets.items()}
        return {a: self.ray.get(ref) for a, ref in refs.items()}

    def kill(self, agent: str) -> None:
        """Kill an actor abruptly (fault injection); Ray restarts it."""
        self.ray.kill(self.actors[agent], no_restart=False)

    def _states(self) -> dict[str, tuple[float, np.ndarray]]:
        return {a: self.ray.get(actor.state.remote()) for a, actor in self.actors.items()}

    def costs(self) -> dict[str, float]:
        return {a: s[0] for a, s in self._states().items()}

    def points(self) -> dict[str, np.ndarray]:
        return {a: s[1] for a, s in self._states().items()}

    def close(self) -> None:
        for actor in self.actors.values():
            self.ray.kill(actor, no_restart=True)
        if self.started:
            self.ray.shutdown()


EXECUTORS = {"serial": SerialExecutor, "processes": ProcessExecutor, "ray": RayExecutor}
