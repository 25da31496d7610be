"""Edge and cloud on Ray: each agent's part compiled and solved on a node of its own.

On each agent's machine (its node carries a resource naming the agent)::

    ray start --address HEAD:6379 --resources '{"agent:mg1": 1}'
    gridlang edge mg1/mg1.grid --join HEAD:6379

and anywhere on the cluster::

    gridlang cloud cloud.grid --address HEAD:6379 --method atc

``gridlang edge`` checks the agent's file on its own machine (as
:func:`gridlang.parts.compile.compile_agent`), then starts the agent's actor,
named ``gridlang-edge-<agent>``, *placed by the resource* ``agent:<agent>``
and so on that node, where it compiles the file from that node's disk and
keeps the subproblem.  ``gridlang cloud`` compiles the cloud's side, finds
the edges' actors by name, and runs ATC or ADMM with them.  What crosses:

    edge  -> cloud   once:    Join (its rows by name, steps, step, constants), its cost's constant
    cloud -> edge    once:    Numbering (a coupling id per named row, constants it takes on)
    cloud -> edge    per pass: targets v (one number per coupling row it is in), rho
    edge  -> cloud   per pass: y = C x - d (one number per row), its cost (one number)

The cloud holds, of an agent, only its name and coupling rows
(:func:`gridlang.parts.compile.stub`); the subproblem never leaves the edge.
For one machine, :func:`local_cluster` starts a head and one node per agent
(each with its agent's resource), for tests and demonstrations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from gridlang.decompose.split import Split
from gridlang.errors import COMMAND_LINE, GridError
from gridlang.parts.compile import PartsResult, compile_cloud, place, plan, stub

NAMESPACE = "gridlang"


def resource(agent: str) -> str:
    """The custom resource of the node an agent's actor is placed on."""
    return f"agent:{agent}"


def actor_name(agent: str) -> str:
    return f"gridlang-edge-{agent}"


class Edge:
    """An agent's actor: its part compiled on its own node, its subproblem kept there."""

    def __init__(self, path: str, formulation: str | None = None) -> None:
        from gridlang.parts.compile import compile_agent

        self.side = compile_agent(Path(path), formulation)
        self.local = None

    def hello(self):
        """The :class:`~gridlang.parts.compile.Join` message and the constant of its cost."""
        return self.side.join, self.side.offset

    def place(self, numbering) -> int:
        """Apply the cloud's numbering to its subproblem (:func:`place`); build its solver."""
        from gridlang.decompose.local import LocalSolver

        self.local = LocalSolver(place(self.side.subproblem, numbering))
        return len(self.local.sub.rows)

    def solve(self, v: np.ndarray, rho: float) -> tuple[np.ndarray, float]:
        y = self.local.solve(v, rho)
        return y, self.local.cost()

    def cost(self) -> float:
        return self.local.cost()

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


def start_edge(path: Path, agent: str, formulation: str | None = None):
    """Start the agent's actor on the node carrying its resource (Ray must be initialised);
    raise a GridError if no node carries it.  The actor outlives this process."""
    import ray

    if resource(agent) not in ray.cluster_resources():
        raise GridError(COMMAND_LINE, f"no node of the cluster carries the resource '{resource(agent)}'",
                        f"start this machine's node with it first: ray start --address ADDRESS --resources '{{\"{resource(agent)}\": 1}}'")
    try:  # an edge started again replaces the old actor
        ray.kill(ray.get_actor(actor_name(agent), namespace=NAMESPACE), no_restart=True)
    except ValueError:
        pass
    actor = ray.remote(Edge).options(name=actor_name(agent), namespace=NAMESPACE, lifetime="detached", resources={resource(agent): 1}, num_cpus=0, max_restarts=0)
    return actor.remote(str(Path(path).resolve()), formulation)


class EdgeExecutor:
    """The coordinator's executor over the edges' actors (and the cloud's own agent, solved here)."""

    def __init__(self, actors: Mapping[str, object], local: Sequence = ()) -> None:
        import ray

        from gridlang.decompose.local import LocalSolver

        self.ray = ray
        self.actors = dict(actors)
        self.local = {s.agent: LocalSolver(s) for s in local}
        self._costs: dict[str, float] = {}

    def solve_all(self, targets: Mapping[str, np.ndarray], rho: float) -> dict[str, np.ndarray]:
        refs = {a: self.actors[a].solve.remote(np.asarray(v), rho) for a, v in targets.items() if a in self.actors}
        out = {a: self.local[a].solve(v, rho) for a, v in targets.items() if a in self.local}
        self._costs.update({a: self.local[a].cost() for a in out})
        for a, (y, cost) in zip(refs, self.ray.get(list(refs.values())), strict=True):
            out[a], self._costs[a] = y, cost
        return {a: out[a] for a in targets}

    def costs(self) -> dict[str, float]:
        missing = [a for a in self.actors if a not in self._costs]
        if missing:
            self._costs.update(zip(missing, self.ray.get([self.actors[a].cost.remote() for a in missing]), strict=True))
        return {a: self._costs[a] for a in [*self.local, *self.actors]}

    def points(self) -> dict[str, np.ndarray]:
        """The cloud's own points only: an agent's point stays on its edge."""
        return {a: s.x for a, s in self.local.items()}

    def kill(self, agent: str) -> None:
        self.ray.kill(self.actors[agent], no_restart=False)

    def ready(self) -> None:
        pass

    def close(self) -> None:
        pass


def run_cloud(cloud_path: Path, method: str = "atc", address: str | None = None, formulation: str | None = None, **settings) -> PartsResult:
    """The cloud's process: compile its side, meet the edges' actors on the cluster at
    ``address`` (or the Ray this process is connected to), plan, and run ATC or ADMM."""
    import ray

    from gridlang.decompose import atc as atc_mod
    from gridlang.decompose.admm import CHECKS, Settings, admm, problems

    if method not in ("admm", "atc"):
        raise GridError(COMMAND_LINE, f"unknown decomposition method '{method}' for a case in parts", "methods: admm, atc")
    cloud = compile_cloud(cloud_path, formulation)
    if not ray.is_initialized():
        ray.init(address=address, namespace=NAMESPACE, include_dashboard=False, log_to_driver=False, configure_logging=False)
    actors = {}
    for a in cloud.agents:
        if a == cloud.owner:
            continue
        try:
            actors[a] = ray.get_actor(actor_name(a), namespace=NAMESPACE)
        except ValueError:
            raise GridError(cloud.spans[a], f"no edge of agent '{a}' has joined the cluster", f"on its machine: gridlang edge {a}/{a}.grid --join ADDRESS") from None
    hellos = dict(zip(actors, ray.get([x.hello.remote() for x in actors.values()]), strict=True))
    p = plan(cloud, [m for m, _ in hellos.values()], {a: off for a, (_, off) in hellos.items()})
    ray.get([actors[a].place.remote(p.numbering[a]) for a in actors])
    own = place(cloud.subproblem, p.numbering[cloud.owner])
    subs = tuple(own if a == cloud.owner else stub(a, p.numbering[a]) for a in p.agents)
    parts = Split(p.agents, subs, len(p.rows), p.counts, p.offset, np.arange(len(p.rows)), p.rows)
    defaults, checks = (Settings(), CHECKS) if method == "admm" else (atc_mod.Settings(), atc_mod.CHECKS)
    config = replace(defaults, **settings)
    for name, message, hint in problems(config, checks):
        raise GridError(COMMAND_LINE, f"{method}: {name}: {message}", hint)
    pool = EdgeExecutor(actors, (own,) if method == "admm" else ())
    if method == "admm":
        run = admm(parts, pool, config)
        costs = pool.costs()
    else:
        run, x_upper = atc_mod.atc(parts, cloud.owner, pool, config)
        costs = pool.costs()
        costs[cloud.owner] = float(own.c @ x_upper + 0.5 * x_upper @ (own.Q @ x_upper))
    return PartsResult(float(sum(costs.values())) + parts.offset, run.status, run.iterations, costs, run, tuple(p.names(cloud)))


def local_cluster(agents: Sequence[str]):
    """A Ray cluster on this machine: a head and one node per agent carrying its resource
    (``ray.cluster_utils.Cluster``; call ``.shutdown()`` when done)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for a in agents:
        cluster.add_node(num_cpus=0, resources={resource(a): 1})
    cluster.wait_for_nodes()
    return cluster


def join_edge(path: Path, address: str, formulation: str | None = None) -> tuple[str, int]:
    """``gridlang edge``: check the agent's file here (positioned errors on the edge's
    side), then start its actor on this machine's node of the cluster at ``address``;
    return the agent and how many named rows it takes part in."""
    import ray

    from gridlang.parts.compile import compile_agent

    side = compile_agent(Path(path), formulation)
    ray.init(address=address, namespace=NAMESPACE, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        actor = start_edge(Path(path), side.agent, formulation)
        message, _ = ray.get(actor.hello.remote())
    finally:
        ray.shutdown()
    return message.agent, len(message.rows)


def run_local(cloud_path: Path, method: str = "atc", formulation: str | None = None, **settings) -> PartsResult:
    """One machine: a local cluster with one node per agent, each agent's actor placed on
    its node reading ``<cloud folder>/<agent>/<agent>.grid`` (as gridlang split writes
    them), and the cloud run here."""
    import ray

    from gridlang.parts.format import agent_files, read_cloud

    cloud = read_cloud(Path(cloud_path))
    files = agent_files(cloud)
    cluster = local_cluster(list(files))
    try:
        ray.init(address=cluster.address, namespace=NAMESPACE, include_dashboard=False, log_to_driver=False, configure_logging=False)
        handles = [start_edge(f, a, formulation) for a, f in files.items()]
        try:
            return run_cloud(cloud.path, method, None, formulation, **settings)
        finally:
            for h in handles:
                ray.kill(h, no_restart=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
