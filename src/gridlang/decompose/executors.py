"""Where the agents' subproblems run: here, in worker processes, or on Ray.

An executor is built from the subproblems, keeps each agent's model alive
for the whole run, and answers ``solve_all(targets, rho) -> {agent: y}``.
``serial`` solves them one after the other here.  ``processes`` and ``ray``
batch the agents into at most ``workers`` persistent workers (default: the
number of cores; :func:`batches` balances them by size), each holding its
agents' models and solving them in a loop at every iteration, so a thousand
agents are a few processes, not a thousand.  On Linux a worker is this
process forked (:func:`start_method`): ready in milliseconds, it holds its
agents' subproblems from the start (nothing is pickled or sent) and
assembles their conic rows itself (:func:`local.prepare`), the workers side
by side.  Elsewhere, or when a fork is not safe here, it is a fresh
interpreter importing :mod:`gridlang.decompose.worker` only (about 0.25 s
idle, 0.5 s on a loaded machine), sent its agents once, pickled, with their
rows assembled here.  Then a worker gets only targets and returns only
contributions.  A worker that dies
(``kill(agent)`` kills the one holding that agent) is started again from its
agents' subproblems and the pending solve is asked again (the coordinator
holds the state), and the iteration goes on.  On Ray, a worker is an actor
(:class:`~gridlang.decompose.worker.RayHost`): asked for before the case is split
(:class:`RayStart`), kept idle after the run on a Ray the user started, and taken
over by this process's next run; a new one costs 0.5-1 s (a process that imports
Ray's serializers and gridlang).  Workers this slow to start are started only once
the run has lasted as long as their start (:func:`start_cost`, :class:`Handover`):
the agents are solved here until then, so a small case never waits for them.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from gridlang.decompose.local import Form, LocalSolver, prepare
from gridlang.decompose.split import Subproblem
from gridlang.decompose.worker import serve
from gridlang.errors import GridError, Span

WHERE = Span("<decomposition>", 0, 0)

#: how workers start: ``"auto"`` (fork where :func:`start_method` finds it safe, else spawn),
#: ``"fork"`` or ``"spawn"``; the environment variable ``GRIDLANG_WORKER_START`` sets it
START = os.environ.get("GRIDLANG_WORKER_START", "auto")

#: this process's ends of every live worker's pipes: a forked worker closes them, so that
#: only the parent holds a worker's ends (its death, or the parent's, is an EOF at once)
_ENDS: set[int] = set()


def _harmless(thread: threading.Thread) -> bool:
    """A thread whose locks a forked worker never takes: rich's refresh thread (the CLI's
    progress line) only redraws the console, and a worker writes nothing to it."""
    return type(thread).__module__ == "rich.live" and thread.daemon


def start_method(start: str | None = None) -> tuple[str, str]:
    """``("fork", why)`` or ``("spawn", why)``.  Fork copies this process, with
    gridlang, numpy and Clarabel loaded and the agents' rows in memory, so a
    worker needs no import and no message to begin.  It is safe when the child
    cannot inherit a lock another thread holds: only on Linux (macOS's system
    libraries are not fork-safe), with no Python thread besides this one (one
    could hold the import lock or a logging lock) and without Ray started here
    (its gRPC threads); rich's progress-line thread is allowed (:func:`_harmless`).
    Threads started outside :mod:`threading` (execnet's, native pools) are not
    seen here; a forked worker touches none of their locks.
    The child imports nothing (:mod:`~gridlang.decompose.worker` is loaded here)
    and reports a failure with ``os.write``, not through ``sys.stderr``.  The native threads of numpy's OpenBLAS and of polars
    (loaded by linopy) are idle pools that the child never uses (OpenBLAS also
    stops its threads around a fork), so they do not prevent it."""
    start = start or START
    if start not in ("auto", "fork", "spawn"):
        raise GridError(WHERE, f"unknown worker start method '{start}' (GRIDLANG_WORKER_START)", "use auto, fork or spawn")
    if start == "spawn":
        return "spawn", "asked for (GRIDLANG_WORKER_START=spawn)"
    if not sys.platform.startswith("linux"):
        why = "fork is safe here on Linux only"
    elif others := [t.name for t in threading.enumerate() if t is not threading.current_thread() and not _harmless(t)]:
        why = f"other Python threads are running ({', '.join(others[:3])}), and a forked child could inherit a lock one of them holds"
    elif "ray" in sys.modules and sys.modules["ray"].is_initialized():
        why = "Ray is started in this process (its threads make a fork unsafe)"
    else:
        return "fork", "Linux, no other Python thread, no Ray"
    if start == "fork":
        raise GridError(WHERE, f"workers cannot be forked: {why}", "unset GRIDLANG_WORKER_START or set it to auto or spawn")
    return "spawn", why


def start_cost(executor: str, count: int | None = None) -> tuple[float, str] | None:
    """``(seconds, why)``: about how long starting ``executor``'s ``count`` workers
    (default: the cores) takes when that is long against a small case's whole serial
    run (about 0.3 s for prosumers.grid), or None when it is cheap: forked workers are
    ready in about 0.01 s, and Ray actors left idle by an earlier run of this process
    on the same Ray are taken over (0.05 s).  A spawned worker takes 0.25-0.5 s to
    import; a Ray started here 4-9 s; on a Ray already running, a new actor is a
    process that imports Ray's serializers and gridlang (0.5-1 s; measured:
    ``benchmarks/startup.py``).  :class:`Handover` starts such workers only once a
    run has lasted that long."""
    if executor == "processes":
        method, why = start_method()
        return None if method == "fork" else (0.5, f"workers are spawned here ({why}), and a spawned worker takes 0.25-0.5 s to start")
    if executor == "ray":
        ray = sys.modules.get("ray")
        if ray is None or not ray.is_initialized():
            return 5.0, "Ray is not running, and starting it here takes 4-9 s"
        need, idle = max(1, count or os.cpu_count() or 1), idle_actors()
        if idle < need:
            held = f"only {idle} of the {need} gridlang actors it needs" if idle else f"none of the {need} gridlang actors it needs"
            return 1.0, f"Ray is running but holds {held} from an earlier run of this process, and a new actor takes 0.5-1 s to start and import gridlang"
        return None
    return None


def batches(subproblems: tuple[Subproblem, ...], workers: int | None = None) -> list[tuple[Subproblem, ...]]:
    """The agents in at most ``workers`` groups (default: the cores), largest
    subproblem first to the least loaded group (load: columns plus rows), so
    every worker has about the same work per iteration.  Deterministic."""
    count = max(1, min(len(subproblems), workers or os.cpu_count() or 1))
    groups: list[list[Subproblem]] = [[] for _ in range(count)]
    load = np.zeros(count)
    size = [len(s.vlabels) + s.A.shape[0] for s in subproblems]
    for i in sorted(range(len(subproblems)), key=lambda i: (-size[i], i)):
        g = int(np.argmin(load))
        groups[g].append(subproblems[i])
        load[g] += size[i]
    return [tuple(g) for g in groups if g]


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

    def ready(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Worker:
    """One worker process (:mod:`gridlang.decompose.worker`) and its two pipes."""

    def __init__(self, payload: dict[str, tuple[Subproblem, Form | None]] | None = None, fork: bool = False) -> None:
        """Started now: forked holding ``payload`` when ``fork``, else a fresh interpreter
        that gets its agents by :meth:`send_agents`."""
        self.payload = payload
        self.forked = fork
        down_r, down_w = os.pipe()  # parent -> worker
        up_r, up_w = os.pipe()  # worker -> parent
        if fork:
            self.proc = _Forked(payload or {}, down_r, up_w, (down_w, up_r))
        else:
            root = str(Path(__file__).resolve().parents[2])  # the directory gridlang is imported from
            threads = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}  # the workers are the parallelism: no BLAS threads besides
            env = {**threads, **os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
            self.proc = subprocess.Popen([sys.executable, "-m", "gridlang.decompose.worker", str(down_r), str(up_w)], pass_fds=(down_r, up_w), stdin=subprocess.DEVNULL, env=env)
        os.close(down_r)  # only the worker holds its ends: its death is an EOF here
        os.close(up_w)
        self.ends = (down_w, up_r)
        _ENDS.update(self.ends)
        self.outbox = Connection(down_w, readable=False)
        self.inbox = Connection(up_r, writable=False)
        self.sent = fork  # a forked worker holds its agents already
        self.confirmed = fork  # a spawned one says so by a pong behind its agents (:meth:`started`)
        self._pending: threading.Thread | None = None

    def send_agents(self, payload: dict[str, tuple[Subproblem, Form]] | None = None) -> None:
        """Give the worker its agents, from a thread: a pipe holds 64 KiB, so a larger
        payload would keep the caller waiting until the worker has finished starting."""
        self.payload = payload or self.payload
        if not self.sent:
            self.sent = True
            self._pending = threading.Thread(target=lambda: self.send(("agents", self.payload)) and self.send(("ping",)), daemon=True)
            self._pending.start()

    def started(self) -> bool:
        """The worker holds its agents (its pong behind them has come), without waiting;
        True too when it died starting (its next request finds out and restarts it)."""
        if not self.confirmed:
            try:
                if self.inbox.poll(0):
                    self._confirm()
            except (EOFError, OSError):
                return True
        return self.confirmed

    def send(self, request: tuple) -> bool:
        pending = self._pending
        if pending is not None and pending is not threading.current_thread():
            pending.join()  # the agents first: messages reach the worker in order
            self._pending = None
        try:
            self.outbox.send(request)
            return True
        except (BrokenPipeError, ConnectionResetError, OSError):
            return False

    def recv(self):
        if not self.confirmed:  # the pong behind the agents comes first
            self._confirm()
        return self.inbox.recv()  # EOFError when the worker died

    def _confirm(self) -> None:
        self.inbox.recv()  # the pong behind the agents
        self.confirmed = True

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        if self._pending is not None:
            self._pending.join()  # the send fails at once now that the worker is gone
            self._pending = None

    def close(self) -> None:
        self.send(("stop",))
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        _ENDS.difference_update(self.ends)
        self.outbox.close()
        self.inbox.close()


class _Forked:
    """A worker forked from this process, serving ``payload`` on the pipe ends
    ``read``/``write`` (the :class:`subprocess.Popen` methods :class:`_Worker` uses)."""

    def __init__(self, payload: dict[str, tuple[Subproblem, Form | None]], read: int, write: int, mine: tuple[int, int]) -> None:
        gc.freeze()  # the objects inherited are not the child's to collect: its garbage collector leaves them (and their pages) alone
        try:
            with warnings.catch_warnings():  # Python 3.12 warns of any native thread; those here are judged by start_method
                warnings.simplefilter("ignore", DeprecationWarning)
                self.pid = os.fork()
        except OSError:
            gc.unfreeze()
            raise
        if self.pid == 0:  # the worker: never returns
            code = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops its workers
                for fd in (*_ENDS, *mine):  # the other workers' pipes and the parent's ends of its own
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                serve(Connection(read, writable=False), Connection(write, readable=False), payload)
            except BaseException:  # noqa: BLE001 - the child must not return into the parent's code
                os.write(2, f"gridlang worker {os.getpid()}: {traceback.format_exc()}".encode())  # not sys.stderr: its lock may be held by a parent's thread
                code = 1
            finally:
                os._exit(code)  # no interpreter shutdown: the parent's atexit handlers and buffers are not the child's
        gc.unfreeze()
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is not None:
            deadline = time.monotonic() + timeout
            while self.poll() is None:
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(str(self.pid), timeout)
                time.sleep(0.001)
        elif self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def spawn(count: int) -> list[_Worker]:
    """``count`` worker processes started now, without agents yet (they import while the
    caller splits the case and assembles the agents' rows; :class:`ProcessExecutor` takes them).
    None when workers are forked (:func:`start_method`): a fork is ready at once, and is
    made once the case is split, so that it holds its agents from the start."""
    if start_method()[0] == "fork":
        return []
    return [_Worker() for _ in range(count)]


class ProcessExecutor:
    """Persistent worker processes, each holding a batch of agents (:func:`batches`).
    Per iteration a worker gets one flat array of its agents' targets and answers one
    flat array of their contributions and their costs (kept here, so that ``costs()``
    costs no exchange)."""

    def __init__(self, subproblems: tuple[Subproblem, ...], workers: int | None = None, started: list[_Worker] | None = None, start: str | None = None) -> None:
        """``started``: spawned workers to take (:func:`spawn`); ``start``: ``"auto"``,
        ``"fork"`` or ``"spawn"`` (default :data:`START`, see :func:`start_method`)."""
        self.subs = {s.agent: s for s in subproblems}
        grouped = batches(subproblems, workers)
        started = list(started or ())
        self.start, self.why = ("spawn", "workers were spawned before the split") if started else start_method(start)
        self.groups: list[dict[str, tuple[Subproblem, Form | None]]] = []  # a forked worker's forms: None, assembled there
        if self.start == "fork":  # forked at once: each worker inherits its agents and assembles their rows itself, side by side
            self.groups = [{s.agent: (s, None) for s in group} for group in grouped]
            self.workers = [_Worker(group, fork=True) for group in self.groups]
        else:
            self.workers = (started + [_Worker() for _ in range(len(grouped) - len(started))])[: len(grouped)]  # started first: they import while the rows are assembled here
            for extra in started[len(grouped) :]:
                extra.close()
            for w, group in zip(self.workers, grouped):  # each batch sent as soon as its rows are assembled
                self.groups.append({s.agent: (s, prepare(s)) for s in group})
                w.send_agents(self.groups[-1])
        self.home = {a: g for g, group in enumerate(self.groups) for a in group}
        self.sizes = {a: len(s.rows) for a, s in self.subs.items()}
        self.restarts: dict[str, int] = dict.fromkeys(self.subs, 0)
        self._costs: dict[str, float] = {}
        #: per solve_all: (round trip s, [each asked worker's (wall s, CPU s) on it]), for benchmarks
        self.timing: list[tuple[float, list[tuple[float, float]]]] = []

    def _restart(self, g: int) -> None:
        self.workers[g].kill()
        self.workers[g].close()
        for a in self.groups[g]:
            self.restarts[a] += 1
            self._costs.pop(a, None)  # a fresh model is at zero until it solves again
        fork = self.start == "fork" and start_method("auto")[0] == "fork"  # still safe now?
        if not fork:  # a spawned worker needs the rows assembled here
            self.groups[g] = {a: (sub, form or prepare(sub)) for a, (sub, form) in self.groups[g].items()}
        self.workers[g] = _Worker(self.groups[g], fork=fork)  # fresh models; the next solve warm-starts nothing but loses nothing
        self.workers[g].send_agents()

    def kill(self, agent: str) -> None:
        """Stop the worker holding ``agent`` abruptly (fault injection); its agents are restarted."""
        self.workers[self.home[agent]].kill()

    def _reply(self, g: int, request: tuple, sent: bool):
        """The worker's answer to ``request`` (already sent if ``sent``), starting it again once if it died."""
        for attempt in range(2):
            try:
                if not sent and not self.workers[g].send(request):
                    raise EOFError
                reply = self.workers[g].recv()
                break
            except (EOFError, ConnectionResetError, OSError):
                if attempt:
                    raise GridError(WHERE, f"the worker of agents {', '.join(self.groups[g])} failed twice", "see the worker's log") from None
                self._restart(g)
                sent = False
        if reply[0] == "error":
            raise GridError(WHERE, reply[1])
        return reply

    def solve_all(self, targets: Mapping[str, np.ndarray], rho: float) -> dict[str, np.ndarray]:
        asked: dict[int, list[str]] = {}
        for agent in targets:
            asked.setdefault(self.home[agent], []).append(agent)
        requests = {}
        for g, names in asked.items():
            everyone = len(names) == len(self.groups[g])
            names = list(self.groups[g]) if everyone else names  # the worker's own order
            flat = np.concatenate([np.asarray(targets[a], dtype=float) for a in names]) if names else np.zeros(0)
            requests[g] = (names, ("solve", flat, rho, None if everyone else names))
        t0 = time.perf_counter()
        sent = {g: self.workers[g].send(req) for g, (_, req) in requests.items()}  # every worker first, so they solve in parallel
        out: dict[str, np.ndarray] = {}
        busy = []
        for g, (names, req) in requests.items():
            _, y, costs, seconds = self._reply(g, req, sent[g])
            out.update(zip(names, np.split(y, np.cumsum([self.sizes[a] for a in names])[:-1])))
            self._costs.update(zip(names, costs.tolist()))
            busy.append(seconds)
        self.timing.append((time.perf_counter() - t0, busy))
        return {a: out[a] for a in targets}

    def _states(self) -> dict[str, tuple[float, np.ndarray]]:
        out: dict[str, tuple[float, np.ndarray]] = {}
        for g in range(len(self.workers)):
            out.update(self._reply(g, ("state",), False)[1])
        return out

    def costs(self) -> dict[str, float]:
        """Every agent's own cost at its point (ATC asks at every pass: kept from the last answers)."""
        if len(self._costs) < len(self.subs):
            for g in range(len(self.workers)):
                self._costs.update(self._reply(g, ("costs",), False)[1])
        return {a: self._costs[a] for a in self.subs}

    def points(self) -> dict[str, np.ndarray]:
        states = self._states()
        return {a: states[a][1] for a in self.subs}

    def ready(self) -> None:
        """Wait until every worker has imported what it needs and holds its agents."""
        for g in range(len(self.workers)):
            self._reply(g, ("ping",), False)

    def ready_now(self) -> bool:
        """Whether every worker holds its agents, without waiting."""
        return all([w.started() for w in self.workers])

    def close(self) -> None:
        """Every worker stopped; one still starting (it holds no work) is killed."""
        for w in self.workers:
            if not w.started():
                w.kill()
        for w in self.workers:  # every worker told first, so they stop together
            w.send(("stop",))
        for w in self.workers:
            w.close()


#: idle :class:`~gridlang.decompose.worker.RayHost` actors, by Ray session (the Ray a user started: kept between runs)
_IDLE: dict[str, list] = {}
_RUNS = iter(range(1, 2**62))
_HOST = None  # the actor class, made once


def _session(ray) -> str:
    context = ray.get_runtime_context()
    return f"{context.get_session_name()}/{context.get_job_id()}"


def check_ray() -> None:
    """Ray is installed (asked without importing it, which takes a second), else the error saying how to get it."""
    if importlib.util.find_spec("ray") is None:
        raise GridError(WHERE, "the ray executor needs Ray", "pip install 'gridlang[ray]'")


def idle_actors() -> int:
    """How many idle gridlang actors this process holds on the Ray it is connected to (0 when none is)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return 0
    return len(_IDLE.get(_session(ray), ()))


class RayStart:
    """Ray joined (started here when it is not running, on the cluster at ``address``,
    else ``RAY_ADDRESS``, else a local Ray of our own) and ``count`` actors asked
    for: idle ones of an earlier run taken first, the others created now, so that they
    start (a process each, importing Ray's serializers and :mod:`gridlang.decompose.worker`)
    while the caller splits the case; :class:`RayExecutor` takes them (``started=``)."""

    def __init__(self, count: int, address: str | None = None) -> None:
        check_ray()
        import ray

        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:  # "local": a Ray of our own, not a cluster some other job left in /tmp/ray (ray.init's default would join it)
            ray.init(address=address or os.environ.get("RAY_ADDRESS") or "local", include_dashboard=False, log_to_driver=False, configure_logging=False)
        self.session = _session(ray)
        global _HOST
        if _HOST is None:
            from gridlang.decompose.worker import RayHost

            _HOST = ray.remote(num_cpus=0, max_restarts=3, max_task_retries=3)(RayHost)
        self.host = _HOST
        idle = _IDLE.setdefault(self.session, [])
        self.taken = min(count, len(idle))  # actors of an earlier run: started, gridlang imported
        self.actors = [idle.pop() for _ in range(self.taken)] + [self.host.remote() for _ in range(count - self.taken)]

    @classmethod
    def early(cls, count: int, address: str | None = None) -> RayStart | None:
        """Started now when Ray is running here (cheap), else None: a Ray to start (4-9 s)
        waits until the case and its settings have been checked (:class:`RayExecutor`)."""
        ray = sys.modules.get("ray")
        return cls(count, address) if ray is not None and ray.is_initialized() else None

    def new(self):
        return self.host.remote()

    def give_back(self, actors: list) -> None:
        """Actors holding nothing, kept for the next run (on a Ray this process did not start)."""
        if not self.started:
            _IDLE.setdefault(self.session, []).extend(actors)

    def close(self) -> None:
        """Not used after all (the split failed): the actors kept, or our own Ray stopped."""
        if self.started:
            _IDLE.pop(self.session, None)
            self.ray.shutdown()
        else:
            self.give_back(self.actors)
        self.actors = []


class RayExecutor:
    """Ray actors (:class:`~gridlang.decompose.worker.RayHost`), each holding a batch
    of agents (:func:`batches`, at most ``workers``, default the cores), on the
    cluster at ``address`` (else ``RAY_ADDRESS``) or on a local Ray started here (and
    stopped by :meth:`close`).  ``started``: the actors asked for before the split
    (:class:`RayStart`).  On a Ray the user started, the actors stay after
    :meth:`close` (holding nothing) and the next run takes them: a second solve does
    not start processes or import gridlang again.  An actor gets its batch (the
    subproblems and their rows, assembled here) and, right behind it
    on the same actor, the first solve: no round trip waits for the loading.  An
    actor that dies is restarted by Ray (``max_restarts``), the pending call retried
    (``max_task_retries``); the restarted actor holds no agents, says so, and is
    given its batch again from the object store."""

    def __init__(self, subproblems: tuple[Subproblem, ...], address: str | None = None, workers: int | None = None, started: RayStart | None = None) -> None:
        grouped = batches(subproblems, workers)
        start = started or RayStart(len(grouped), address)
        ray = self.ray = start.ray
        self.started, self.session = start.started, start.session
        self.run = next(_RUNS)
        self.groups = [{s.agent: (s, prepare(s)) for s in group} for group in grouped]  # assembled here (that needs the compiler), while the new actors start
        self.home = {a: g for g, group in enumerate(self.groups) for a in group}
        self.payloads = [ray.put(group) for group in self.groups]  # held here: a restarted actor is given its batch again
        self._host = start.host
        self.actors = (start.actors + [start.new() for _ in range(len(grouped) - len(start.actors))])[: len(grouped)]
        start.give_back(start.actors[len(grouped) :])
        self.taken = min(start.taken, len(grouped))  # actors of an earlier run among them
        self._loads = [actor.load.remote(self.run, ref) for actor, ref in zip(self.actors, self.payloads)]
        self.order = [s.agent for s in subproblems]  # answers in the subproblems' order, as serial gives them (sums stay the same)
        self._costs: dict[str, float] = {}  # every agent's cost at its last answer (ATC asks at every pass)

    def _reload(self, g: int) -> None:
        self.ray.get(self.actors[g].load.remote(self.run, self.payloads[g]))

    def _ask(self, method: str, args: dict[int, tuple]) -> dict[int, object]:
        """``method`` on the actors ``args`` names, side by side; an actor that answers
        None (restarted, empty) is given its batch again and asked again, once.  The
        first call goes right behind the loads (an actor runs its calls in order); an
        actor found dead then (an idle one lost since its last run) is replaced."""
        def call():
            refs = {g: getattr(self.actors[g], method).remote(self.run, *a) for g, a in args.items()}
            return dict(zip(refs, self.ray.get(list(refs.values()))))

        if self._loads:
            try:
                out = call()
            except self.ray.exceptions.RayActorError:
                self.ready()
                out = call()
            self._loads = []
        else:
            out = call()
        for g in [g for g, v in out.items() if v is None]:
            self._reload(g)
            out[g] = self.ray.get(getattr(self.actors[g], method).remote(self.run, *args[g]))
            if out[g] is None:
                raise GridError(WHERE, f"the Ray actor of agents {', '.join(self.groups[g])} lost them twice", "see the Ray logs")
        return out

    def solve_all(self, targets: Mapping[str, np.ndarray], rho: float) -> dict[str, np.ndarray]:
        asked: dict[int, dict[str, np.ndarray]] = {}
        for agent, v in targets.items():
            asked.setdefault(self.home[agent], {})[agent] = v
        out: dict[str, np.ndarray] = {}
        for part, costs in self._ask("solve", {g: (vs, rho) for g, vs in asked.items()}).values():
            out.update(part)
            self._costs.update(costs)
        return {a: out[a] for a in targets}

    def kill(self, agent: str) -> None:
        """Kill the actor holding ``agent`` abruptly (fault injection); Ray restarts it."""
        self.ray.kill(self.actors[self.home[agent]], no_restart=False)
        self._costs.clear()  # the restarted actor's models are fresh

    def _states(self) -> dict[str, tuple[float, np.ndarray]]:
        out: dict[str, tuple[float, np.ndarray]] = {}
        for part in self._ask("state", dict.fromkeys(range(len(self.actors)), ())).values():
            out.update(part)
        return out

    def costs(self) -> dict[str, float]:
        if len(self._costs) < len(self.order):
            self._costs.update({a: c for a, (c, _) in self._states().items()})
        return {a: self._costs[a] for a in self.order}

    def points(self) -> dict[str, np.ndarray]:
        states = self._states()
        return {a: states[a][1] for a in self.order}

    def ready_now(self) -> bool:
        """Whether every actor holds its agents, without waiting."""
        return not self._loads or len(self.ray.wait(self._loads, num_returns=len(self._loads), timeout=0)[0]) == len(self._loads)

    def ready(self) -> None:
        """Wait until every actor holds its agents (an idle one that died since its last run is replaced)."""
        for g, ref in enumerate(self._loads):
            try:
                self.ray.get(ref)
            except self.ray.exceptions.RayActorError:
                self.actors[g] = self._host.remote()
                self._reload(g)
        self._loads = []

    def close(self) -> None:
        if self.started:  # our own Ray: it stops with its actors
            _IDLE.pop(self.session, None)
            self.ray.shutdown()
            return
        drops = [actor.drop.remote() for actor in self.actors]  # the agents' models freed, the processes kept
        if not self.ready_now():  # still starting: the drop is queued behind the load, and the next run takes them as they are
            _IDLE.setdefault(self.session, []).extend(self.actors)
            return
        try:
            self.ray.get(drops)
            _IDLE.setdefault(self.session, []).extend(self.actors)
        except Exception:  # noqa: BLE001 - an actor beyond repair is not kept
            for actor in self.actors:
                self.ray.kill(actor, no_restart=True)


class Handover:
    """The agents solved here until the run has lasted as long as starting its workers
    takes, then on the workers: the ski-rental rule (rent until the rent paid would
    have bought the skis).  Starting spawned workers or new Ray actors costs about
    ``cost`` seconds (:func:`start_cost`), more than a small case's whole run.  So the
    agents are solved here (:class:`SerialExecutor`) until the run has lasted ``cost``
    seconds; then the workers are started (``make()``: spawned workers and new actors
    start beside the solves here; a Ray started here holds this process for its 4-9 s),
    and the first iteration that asks every agent after they all hold their agents goes
    to them, as does every later one.  The coordinator holds the state, so the workers
    need nothing but the next targets.  A run shorter than ``cost`` never starts them
    (it takes what it takes here); a longer one loses at most about ``cost`` (the
    start's own length, spent solving here) against starting them at once."""

    def __init__(self, subproblems: tuple[Subproblem, ...], make, cost: float, why: str) -> None:
        self.here: SerialExecutor | None = SerialExecutor(subproblems)
        self.make, self.cost, self.why = make, cost, why
        self.t0 = time.perf_counter()
        self.there = None  # the workers, once started
        self.handed = False
        self.iterations_here = 0

    @property
    def pool(self):
        return self.there if self.handed else self.here

    def solve_all(self, targets: Mapping[str, np.ndarray], rho: float) -> dict[str, np.ndarray]:
        if not self.handed:
            if self.there is None and time.perf_counter() - self.t0 >= self.cost:
                self.there = self.make()
            if self.there is not None and len(targets) == len(self.here.local) and self.there.ready_now():
                self.handed, self.here = True, None
            else:
                self.iterations_here += 1
        return self.pool.solve_all(targets, rho)

    def costs(self) -> dict[str, float]:
        return self.pool.costs()

    def points(self) -> dict[str, np.ndarray]:
        return self.pool.points()

    def kill(self, agent: str) -> None:
        self.pool.kill(agent)

    def close(self) -> None:
        if self.there is not None:
            self.there.close()

    def note(self, executor: str) -> str:
        """Where the run went, for the result's warnings."""
        if self.handed:
            return f"executor {executor}: the first {self.iterations_here} iterations ran here, one agent after the other, while its workers started ({self.why})"
        if self.there is not None:
            return (f"executor {executor}: the run ended here, one agent after the other, in {time.perf_counter() - self.t0:.2f} s, while its workers were starting "
                    f"(started once the run had lasted {self.cost:g} s: {self.why})")
        return (f"executor {executor}: the run ended here, one agent after the other, in {time.perf_counter() - self.t0:.2f} s, before starting its workers would have paid off: "
                f"{self.why}; they are started once a run has lasted {self.cost:g} s")


EXECUTORS = {"serial": SerialExecutor, "processes": ProcessExecutor, "ray": RayExecutor}
