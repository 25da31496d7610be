"""Edge and cloud on Ray: each agent's part compiled and solved on a node of its own.

On each agent's machine (its node carries a resource naming the agent, or one
per agent it hosts)::

    ray start --address HEAD:6379 --resources '{"agent:mg1": 1}'
    gridlang edge mg1/mg1.grid --join HEAD:6379

and anywhere on the cluster::

    gridlang cloud cloud.grid --address HEAD:6379 --method atc

``gridlang edge`` checks the agents' files on its own machine (as
:func:`gridlang.parts.compile.compile_agent`), then starts one actor for the
agents it hosts, named ``gridlang-edge:<agent>,...``, *placed by the
resources* ``agent:<agent>`` and so on that node, where it compiles the files
from that node's disk and keeps the subproblems.  ``gridlang cloud``
compiles the cloud's side, finds the edges' actors by name, and runs ATC or
ADMM with them.  What crosses:

    edge  -> cloud   once:    Join (its rows by name, steps, step, constants, how many
                              terminal values it filled; its cost scale: the count and
                              median of its nonzero cost coefficients; per row the range of
                              its contribution and whether it is unbounded), its cost's constant
    cloud -> edge    once:    Numbering (a coupling id per named row, constants it takes on;
                              ADMM: its per-contribution penalties)
    cloud -> edge    per pass: targets v (one number per coupling row it is in), rho
    edge  -> cloud   per pass: y = C x - d (one number per row), its cost (one number)

With the cost scale and the ranges the cloud starts ATC's weight, ADMM's rho and
the per-contribution penalties (:func:`gridlang.parts.compile.initial`,
:func:`gridlang.parts.compile.penalties_from`) exactly where the serial run
(:func:`gridlang.parts.compile.solve_parts`) starts them, so both take the same
iterations.  With ``settle`` (``gridlang cloud``'s default for a linear case with a
market or game), once converged, the settlement of
:mod:`gridlang.parts.settle` runs with each agent's side (:class:`gridlang.parts.settle.SettleSide`)
in its edge's actor (:meth:`Edge.settle`), made from the subproblem and built view
already there:

    edge  -> cloud   once:    its cost and target scales; its cost alone per market; per
                              game its cost and schedule (a power per step) at the tariffs alone
    cloud -> edge    per pass: price and power target per coupling row (both phases)
    edge  -> cloud   per pass: its power per coupling row
    cloud -> edge    once:    the prices reached (its optimal face is computed on the edge)
    edge  -> cloud   once:    its cost, fees, sales at the point; per game its net import per step

The cloud holds, of an agent, only its name and coupling rows
(:func:`gridlang.parts.compile.stub`); the subproblem and the terminals' raw
measurements never leave the edge.  An edge whose node dies is bridged with
its last answer (ADMM, at most ``max_staleness`` passes, then the cloud waits;
ATC waits at once) and rejoins when it is started again
(:class:`EdgeExecutor`); ``checkpoint`` keeps the cloud's last consistent
iterate in a file, and ``resume`` continues ATC from it (:mod:`gridlang.parts.resume`),
whatever the order in which the edges joined this time.
For one machine, :func:`local_cluster` starts a head and one node per agent,
or a few nodes each hosting several agents (:func:`hosting`), for tests and
demonstrations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from gridlang.decompose.split import Split
from gridlang.errors import COMMAND_LINE, GridError
from gridlang.parts.compile import PartsResult, before_dispatch, compile_cloud, coordinate, initial, penalties_from, place, plan, scales, stub, terminal_report

NAMESPACE = "gridlang"
PREFIX = "gridlang-edge:"


def resource(agent: str) -> str:
    """The custom resource of the node an agent's actor is placed on."""
    return f"agent:{agent}"


def actor_name(agents: Sequence[str]) -> str:
    """The name of the actor hosting ``agents`` (the cloud reads who it hosts from it)."""
    return PREFIX + ",".join(agents)


class Edge:
    """The actor of one edge node: the parts of the agents it hosts, each compiled on
    that node from its own file, and their subproblems kept there."""

    def __init__(self, paths: dict[str, str], formulation: str | None = None, measurements: dict[str, str] | None = None) -> None:
        from gridlang.parts.compile import compile_agent_built

        terminals = measurements or {}
        compiled = {a: compile_agent_built(Path(p), formulation, terminals.get(a)) for a, p in paths.items()}
        self.sides = {a: side for a, (side, _) in compiled.items()}
        self.views = {a: built for a, (_, built) in compiled.items()}  # for the settlement's targets, on this node
        self.paths, self.formulation = dict(paths), formulation
        self.local: dict = {}
        self.placed: dict = {}
        self.settling: dict = {}

    def hello(self) -> dict:
        """Each hosted agent's :class:`~gridlang.parts.compile.Join` and the constant of its cost."""
        return {a: (s.join, s.offset) for a, s in self.sides.items()}

    def place(self, numbering: dict, penalties: dict | None = None) -> int:
        """Apply the cloud's numbering (and ADMM's per-contribution penalties, if any) to each
        hosted subproblem (:func:`place`); build their solvers."""
        from dataclasses import replace

        from gridlang.decompose.local import LocalSolver

        pen = penalties or {}
        self.placed = {a: replace(place(self.sides[a].subproblem, n), penalty=pen.get(a)) for a, n in numbering.items()}
        self.local = {a: LocalSolver(sub) for a, sub in self.placed.items()}
        self.settling = {}
        return len(self.local)

    def solve(self, targets: dict[str, np.ndarray], rho: float) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        y = {a: self.local[a].solve(v, rho) for a, v in targets.items()}
        return y, {a: self.local[a].cost() for a in targets}

    def costs(self) -> dict[str, float]:
        return {a: s.cost() for a, s in self.local.items()}

    def settle(self, agent: str, method: str, *args):
        """Ask the hosted agent's side of the settlement (:class:`gridlang.parts.settle.SettleSide`,
        made on the first call from its placed subproblem and built view, both on this node):
        its answer, or ``("refused", message, hint)`` when its model cannot be settled from the parts."""
        from gridlang.parts.compile import alone_cost
        from gridlang.parts.settle import SettleSide

        try:
            if agent not in self.settling:
                path = Path(self.paths[agent])
                self.settling[agent] = SettleSide(self.views[agent], self.placed[agent], lambda: alone_cost(path, self.formulation).cost, f"{agent}'s")
            return getattr(self.settling[agent], method)(*args)
        except GridError as exc:
            return ("refused", exc.message, exc.hint)

    def settle_answers(self, asked: dict) -> dict:
        """The hosted agents' answers of one pass of the settlement's exchange, ``{agent: (price, target, rho)}``."""
        return {a: self.settle(a, "answer", *args) for a, args in asked.items()}

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


def start_edge(paths: Mapping[str, Path], formulation: str | None = None, measurements: Mapping[str, Path] | None = None):
    """Start the actor hosting the agents of ``paths`` on the node carrying all their
    resources (Ray must be initialised); raise a GridError if no node carries one of
    them.  The actor outlives this process."""
    import ray

    there = ray.cluster_resources()
    missing = [resource(a) for a in paths if resource(a) not in there]
    if missing:
        wanted = ", ".join(f'"{resource(a)}": 1' for a in paths)
        raise GridError(COMMAND_LINE, f"no node of the cluster carries the resource '{missing[0]}'",
                        f"start this machine's node with the resources of the agents it hosts first: ray start --address ADDRESS --resources '{{{wanted}}}'")
    for name in ray.util.list_named_actors(all_namespaces=True):  # an agent started again replaces its old actor
        if isinstance(name, dict) and name.get("namespace") == NAMESPACE and name["name"].startswith(PREFIX) and set(name["name"][len(PREFIX):].split(",")) & set(paths):
            ray.kill(ray.get_actor(name["name"], namespace=NAMESPACE), no_restart=True)
    actor = ray.remote(Edge).options(name=actor_name(list(paths)), namespace=NAMESPACE, lifetime="detached", resources={resource(a): 1 for a in paths}, num_cpus=0, max_restarts=0)
    terminals = {a: str(Path(p).resolve()) for a, p in (measurements or {}).items()}  # read on the edge's node
    return actor.remote({a: str(Path(p).resolve()) for a, p in paths.items()}, formulation, terminals)


def edges() -> dict[str, object]:
    """The edges' actors on the cluster, by the agents they host."""
    import ray

    out = {}
    for name in ray.util.list_named_actors(all_namespaces=True):
        if isinstance(name, dict) and name.get("namespace") == NAMESPACE and name["name"].startswith(PREFIX):
            actor = ray.get_actor(name["name"], namespace=NAMESPACE)
            out.update(dict.fromkeys(name["name"][len(PREFIX):].split(","), actor))
    return out


class EdgeExecutor:
    """The coordinator's executor over the edges' actors (and the cloud's own agent, solved here).

    An edge that leaves (its actor dies with its node) is bridged: with ADMM
    (``bridge`` > 0) the coordinator goes on with its last answer for at most
    ``bridge`` iterations in a row (``max_staleness``), then waits for it; with
    ATC (``bridge`` = 0) it waits at once.  An edge started again on a node
    carrying the agent's resource (``gridlang edge ... --join``) is found by
    name, checked (the same named rows) and given its numbering again; it
    answers from a fresh model.  What happened is in :attr:`events`."""

    def __init__(self, actors: Mapping[str, object], local: Sequence = (), numbering: Mapping | None = None, rows: Mapping | None = None,
                 bridge: int = 0, wait: float = 120.0, penalties: Mapping | None = None) -> None:
        import ray

        from gridlang.decompose.local import LocalSolver

        self.ray = ray
        self.actors = dict(actors)
        self.local = {s.agent: LocalSolver(s) for s in local}
        self.numbering = dict(numbering or {})
        self.rows = dict(rows or {})  # each agent's named rows when it joined
        self.penalties = dict(penalties or {})  # ADMM's per-contribution penalties, given again to an edge that rejoins
        self.bridge, self.wait = bridge, wait
        self.missing: dict[str, int] = {}  # agent -> iterations it has not answered
        self.events: list[str] = []
        self.calls = 0
        self._costs: dict[str, float] = {}

    def _rejoin(self, wait: bool) -> None:
        """Give the missing agents' new actors their numbering; wait for them if ``wait``."""
        import time

        deadline = time.monotonic() + (self.wait if wait else 0.0)
        while True:
            found = edges()
            back = [a for a in self.missing if a in found]
            for actor in dict.fromkeys(found[a] for a in back):
                mine = [a for a in back if found[a] is actor]
                hello = self.ray.get(actor.hello.remote())
                changed = [a for a in mine if tuple(hello[a][0].rows) != tuple(self.rows.get(a, hello[a][0].rows))]
                if changed:
                    raise GridError(COMMAND_LINE, f"the edge of '{changed[0]}' rejoined with other coupling rows than it left with", "start it again from the same file and cloud file")
                self.ray.get(actor.place.remote({a: self.numbering[a] for a in mine}, {a: self.penalties[a] for a in mine if a in self.penalties}))
                for a in mine:
                    self.actors[a] = actor
                    self.events.append(f"the edge of {a} rejoined at iteration {self.calls} after {self.missing.pop(a)} iterations without an answer")
            if not self.missing or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if wait and self.missing:
            a = next(iter(self.missing))
            raise GridError(COMMAND_LINE, f"the edge of '{a}' left and did not rejoin within {self.wait:g} s",
                            f"restart its node and run 'gridlang edge {a}/{a}.grid --join ADDRESS' there")

    def _ask(self, targets: Mapping[str, np.ndarray], rho: float) -> dict[str, np.ndarray]:
        asked: dict[object, dict[str, np.ndarray]] = {}
        for a, v in targets.items():
            if a in self.actors and a not in self.missing:
                asked.setdefault(self.actors[a], {})[a] = np.asarray(v)
        refs = [(vs, actor.solve.remote(vs, rho)) for actor, vs in asked.items()]
        out = {}
        for vs, ref in refs:
            try:
                y, costs = self.ray.get(ref)
            except self.ray.exceptions.RayActorError:
                for a in vs:
                    self.missing[a] = 0
                    self.events.append(f"the edge of {a} left at iteration {self.calls}")
                continue
            out.update(y)
            self._costs.update(costs)
        return out

    def solve_all(self, targets: Mapping[str, np.ndarray], rho: float) -> dict[str, np.ndarray]:
        self.calls += 1
        if self.missing:
            self._rejoin(wait=any(n >= self.bridge for n in self.missing.values()))
        out = {a: self.local[a].solve(v, rho) for a, v in targets.items() if a in self.local}
        self._costs.update({a: self.local[a].cost() for a in out})
        out.update(self._ask(targets, rho))
        if self.bridge == 0:  # ATC needs every answer: wait for the edges that left, then ask them again
            while self.missing:
                self._rejoin(wait=True)
                out.update(self._ask({a: v for a, v in targets.items() if a not in out}, rho))
        for a in self.missing:
            self.missing[a] += 1
        return {a: out[a] for a in targets if a in out}

    def costs(self) -> dict[str, float]:
        if self.missing:
            self._rejoin(wait=True)
        if any(a not in self._costs for a in self.actors):
            for part in self.ray.get([x.costs.remote() for x in dict.fromkeys(self.actors.values())]):
                self._costs.update(part)
        return {a: self._costs[a] for a in [*self.local, *self.actors]}

    def points(self) -> dict[str, np.ndarray]:
        """The cloud's own points only: an agent's point stays on its edge."""
        return {a: s.x for a, s in self.local.items()}

    def ready(self) -> None:
        pass

    def close(self) -> None:
        pass


def remote_call(actor, agent: str, span):
    """Ask ``agent``'s side of the settlement on its edge (:meth:`Edge.settle`); its refusal is a GridError at its connection."""
    import ray

    def call(method: str, *args):
        answer = ray.get(actor.settle.remote(agent, method, *args))
        if isinstance(answer, tuple) and len(answer) == 3 and answer[0] == "refused":
            raise GridError(span, f"the edge of '{agent}' cannot settle from the parts: {answer[1]}", answer[2])
        return answer

    return call


def remote_answers(actors: Mapping[str, object], spans: Mapping):
    """Ask one pass of the settlement's exchange of every agent at once: one call per edge actor, side by side."""
    import ray

    def ask_all(asked: Mapping[str, tuple]) -> dict:
        by_actor: dict[object, dict] = {}
        for a, args in asked.items():
            by_actor.setdefault(actors[a], {})[a] = args
        out = {}
        for part in ray.get([x.settle_answers.remote(mine) for x, mine in by_actor.items()]):
            for a, answer in part.items():
                if isinstance(answer, tuple) and len(answer) == 3 and answer[0] == "refused":
                    raise GridError(spans[a], f"the edge of '{a}' cannot settle from the parts: {answer[1]}", answer[2])
                out[a] = answer
        return out

    return ask_all


def run_cloud(cloud_path: Path, method: str = "atc", address: str | None = None, formulation: str | None = None, progress=None,
              checkpoint: Path | None = None, settle: bool | None = False, resume: bool = False, **settings) -> PartsResult:
    """The cloud's process: compile its side, meet the edges' actors on the cluster at
    ``address`` (or the Ray this process is connected to), plan, and run ATC or ADMM;
    with ``settle``, once converged, the settlement of the case's markets and games with
    each agent's side on its edge (:func:`gridlang.parts.settle.coordinate`); with ``resume``,
    the run continues from the iterate saved in ``checkpoint`` (:mod:`gridlang.parts.resume`)."""
    import ray

    from gridlang.parts.resume import checkpointed

    config = before_dispatch(cloud_path, formulation, method, settings, settle, resume, checkpoint)
    cloud = compile_cloud(cloud_path, formulation)
    if not ray.is_initialized():
        ray.init(address=address, namespace=NAMESPACE, include_dashboard=False, log_to_driver=False, configure_logging=False)
    found = edges()
    actors = {a: found[a] for a in cloud.agents if a != cloud.owner and a in found}
    for a in cloud.agents:
        if a != cloud.owner and a not in actors:
            raise GridError(cloud.spans[a], f"no edge of agent '{a}' has joined the cluster", f"on its machine: gridlang edge {a}/{a}.grid --join ADDRESS")
    hosts = list(dict.fromkeys(actors.values()))
    hellos = {}
    for part in ray.get([x.hello.remote() for x in hosts]):
        hellos.update({a: h for a, h in part.items() if a in actors})
    p = plan(cloud, [m for m, _ in hellos.values()], {a: off for a, (_, off) in hellos.items()})
    own = place(cloud.subproblem, p.numbering[cloud.owner])
    subs = tuple(own if a == cloud.owner else stub(a, p.numbering[a]) for a in p.agents)
    parts = Split(p.agents, subs, len(p.rows), p.counts, p.offset, np.arange(len(p.rows)), p.rows)
    # the initial weight (ATC) or rho (ADMM) and the penalties from every side's numbers, as the serial run has them
    config = initial(method, config, [scales(own)[0], *(m.costs for m, _ in hellos.values())])
    pen: dict = {}
    if method == "admm" and config.row_scaling:
        kept = {a: p.numbering[a].ids >= 0 for a in hellos}
        pen = penalties_from(parts, {a: (np.asarray(m.ranges)[kept[a]], np.asarray(m.free, dtype=bool)[kept[a]]) for a, (m, _) in hellos.items()})
        parts = replace(parts, subproblems=tuple(replace(s, penalty=pen.get(s.agent)) for s in parts.subproblems))
        own = next(s for s in parts.subproblems if s.agent == cloud.owner)
    ray.get([x.place.remote({a: p.numbering[a] for a in actors if actors[a] is x}, {a: pen[a] for a in actors if actors[a] is x and a in pen}) for x in hosts])
    rows = {a: tuple(m.rows) for a, (m, _) in hellos.items()}
    pool, start = checkpointed(lambda: EdgeExecutor(actors, (own,) if method == "admm" else (), p.numbering, rows, config.max_staleness if method == "admm" else 0, penalties=pen),
                               parts, cloud.owner, p.names(cloud), method, checkpoint, resume)
    run, costs = coordinate(parts, pool, method, cloud.owner, config, progress, start)
    if checkpoint is not None:
        pool.finish(run.status)
    report = terminal_report([m for m, _ in hellos.values()])
    settlement, unsettled = None, ""
    if settle is not False and run.status == "converged":  # None: settle if the parts can (else say why)
        from gridlang.parts.compile import cloud_alone_cost
        from gridlang.parts.settle import SettleSide, attempt, check_cloud, coordinate as settle_coordinate, local_call

        def settling():
            built = check_cloud(cloud_path, formulation)
            mine = SettleSide(built, own, lambda: cloud_alone_cost(cloud_path, formulation).cost, "the cloud's")
            calls = {a: local_call(mine) if a == cloud.owner else remote_call(actors[a], a, cloud.spans[a]) for a in p.agents}
            return settle_coordinate(built, parts, calls, ask_all=remote_answers(actors, cloud.spans), conic=settle is True)

        settlement, unsettled = attempt(settle, settling)
    return PartsResult(float(sum(costs.values())) + parts.offset, run.status, run.iterations, costs, run, tuple(p.names(cloud)), tuple(pool.events), report,
                       settlement, unsettled, start.iteration if start is not None else 0)


def hosting(agents: Sequence[str], nodes: int | None = None) -> list[list[str]]:
    """The agents each node hosts: one per node, or shared round-robin over ``nodes``."""
    n = len(agents) if nodes is None else max(1, min(nodes, len(agents)))
    return [list(agents[i::n]) for i in range(n)]


def local_cluster(groups: Sequence[Sequence[str]]):
    """A Ray cluster on this machine: a head and one node per group of agents, carrying
    their resources (``ray.cluster_utils.Cluster``; call ``.shutdown()`` when done)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for group in groups:
        cluster.add_node(num_cpus=0, resources={resource(a): 1 for a in group})
    cluster.wait_for_nodes()
    return cluster


def join_edge(paths: Sequence[Path], address: str, formulation: str | None = None, measurements: Path | None = None) -> tuple[tuple[str, ...], int]:
    """``gridlang edge``: check the agents' files here (positioned errors on the edge's
    side), then start their actor on this machine's node of the cluster at ``address``;
    return the agents and how many named rows they take part in.  ``measurements``: the
    terminals' CSV file of the one agent given, read on this node."""
    import ray

    from gridlang.parts.compile import compile_agent

    if measurements is not None and len(paths) != 1:
        raise GridError(COMMAND_LINE, "--measurements goes with one agent's file", "start one edge per agent whose terminals you give")
    sides = [compile_agent(Path(p), formulation, measurements) for p in paths]
    ray.init(address=address, namespace=NAMESPACE, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        terminals = {sides[0].agent: Path(measurements)} if measurements is not None else None
        actor = start_edge({s.agent: Path(p) for s, p in zip(sides, paths, strict=True)}, formulation, terminals)
        hello = ray.get(actor.hello.remote())
    finally:
        ray.shutdown()
    return tuple(hello), sum(len(m.rows) for m, _ in hello.values())


def run_local(cloud_path: Path, method: str = "atc", formulation: str | None = None, nodes: int | None = None, checkpoint: Path | None = None,
              settle: bool | None = False, resume: bool = False, **settings) -> PartsResult:
    """One machine: a local cluster with a node per agent (or ``nodes`` nodes sharing
    them), each node's actor reading ``<cloud folder>/<agent>/<agent>.grid`` (as
    gridlang split writes them), and the cloud run here."""
    import ray

    from gridlang.parts.format import agent_files, read_cloud

    cloud = read_cloud(Path(cloud_path))
    files = agent_files(cloud)
    groups = hosting(list(files), nodes)
    cluster = local_cluster(groups)
    try:
        ray.init(address=cluster.address, namespace=NAMESPACE, include_dashboard=False, log_to_driver=False, configure_logging=False)
        handles = [start_edge({a: files[a] for a in group}, formulation) for group in groups]
        try:
            return run_cloud(cloud.path, method, None, formulation, None, checkpoint, settle, resume, **settings)
        finally:
            for h in handles:
                ray.kill(h, no_restart=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
