"""The ``processes`` executor's workers, forked or spawned: the same numbers as
serial (ATC and ADMM, on prosumers and three_microgrids), a killed worker
started again, a forked worker holding its agents without any message and
only its own pipes, and the start method's guard.  Start-up is measured and
recorded (``record_property``), never asserted as a time."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

import gridlang
from gridlang import decompose
from gridlang.decompose import executors
from gridlang.decompose.executors import ProcessExecutor, start_cost, start_method
from gridlang.decompose.split import split
from gridlang.errors import GridError
from conftest import CASES

CASES_AND_METHODS = [("prosumers", "atc"), ("prosumers", "admm"), pytest.param("three_microgrids", "atc", marks=pytest.mark.slow)]  # three_microgrids: 20 s, make test-all
_serial: dict = {}


def serial(case: str, method: str):
    if (case, method) not in _serial:
        _serial[case, method] = decompose.solve(gridlang.load(CASES / f"{case}.grid").built, method)
    return _serial[case, method]


@pytest.fixture(params=["fork", "spawn"])
def start(request, monkeypatch):
    monkeypatch.setattr(executors, "START", request.param)
    return request.param


@pytest.mark.parametrize(("case", "method"), CASES_AND_METHODS)
def test_processes_give_the_serial_iterates(case: str, method: str, start: str) -> None:
    """Two workers, forked or spawned, run the same iterations to the same point as serial
    (three_microgrids, the slow one, forked only: spawning changes the start alone)."""
    if case == "three_microgrids" and start == "spawn":
        pytest.skip("spawned workers are checked on prosumers")
    expected, s_run = serial(case, method)
    got, run = decompose.solve(gridlang.load(CASES / f"{case}.grid").built, method, "processes", workers=2, at_once=True)
    assert got.solver == f"{method}/processes" and run.converged and not got.doubts()
    assert run.iterations == s_run.iterations
    np.testing.assert_array_equal(got["admm_primal"].values, expected["admm_primal"].values)
    assert got.objective == expected.objective


def subs_below_owner(case: str):
    built = gridlang.load(CASES / f"{case}.grid").built
    return tuple(s for s in split(built).subproblems if s.agent != built.case.network_owner)


@pytest.mark.parametrize("kill_at", [0, 1])
def test_a_killed_worker_is_started_again_with_its_agents(start: str, kill_at: int) -> None:
    """prosumers by ATC in 3 workers: the worker of p5, killed before the first or
    after the first iteration, is started again the same way (forked or spawned)
    with all its agents, and the run reaches serial's optimum."""
    expected, _ = serial("prosumers", "atc")
    seen: dict = {"calls": 0}
    original = ProcessExecutor.solve_all

    def solve_all(self, targets, rho):
        if seen["calls"] == kill_at:
            seen["pool"] = self
            self.kill("p5")
        seen["calls"] += 1
        return original(self, targets, rho)

    ProcessExecutor.solve_all = solve_all
    try:
        got, run = decompose.solve(gridlang.load(CASES / "prosumers.grid").built, "atc", "processes", workers=3, at_once=True)
    finally:
        ProcessExecutor.solve_all = original
    pool = seen["pool"]
    assert pool.start == start and all(w.forked == (start == "fork") for w in pool.workers)
    mates = set(pool.groups[pool.home["p5"]])
    assert {a for a, n in pool.restarts.items() if n} == mates and all(pool.restarts[a] == 1 for a in mates)
    assert run.converged and not got.doubts()
    assert got.objective == pytest.approx(expected.objective, rel=1e-6)


def pipes(pid: int) -> dict[str, set[str]]:
    """The pipes a process holds open, ``pipe:[inode]``, and which ends: ``"r"``, ``"w"``."""
    out: dict[str, set[str]] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            flags = int(open(f"/proc/{pid}/fdinfo/{fd}").read().split("flags:")[1].split()[0], 8)
        except (OSError, IndexError):
            continue
        if target.startswith("pipe:"):
            out.setdefault(target, set()).add("w" if flags & os.O_WRONLY else "r")
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc")
def test_a_forked_worker_holds_its_agents_and_only_its_own_pipes(record_property) -> None:
    """Forked workers answer at once, holding their agents with no message sent, and
    none holds another worker's pipe (or the parent's ends of its own), also after a
    restart: a worker's death, or the parent's, is an end of file at once."""
    subs = subs_below_owner("prosumers")
    t0 = time.perf_counter()
    pool = ProcessExecutor(subs, 2, start="fork")
    pool.ready()
    record_property("forked_executor_ready_s", time.perf_counter() - t0)  # measured, not asserted
    try:
        assert pool.start == "fork" and not any(w._pending for w in pool.workers)  # nothing was sent
        assert set(pool.points()) == {s.agent for s in subs}
        pool._restart(0)  # the first worker forked again, after the second: it inherits the second's ends
        pool.ready()
        inode = {w.proc.pid: [os.readlink(f"/proc/self/fd/{fd}") for fd in w.ends] for w in pool.workers}  # (to it, from it)
        everyone = {p for pair in inode.values() for p in pair}
        for w in pool.workers:
            down, up = inode[w.proc.pid]
            held = {p: ends for p, ends in pipes(w.proc.pid).items() if p in everyone}
            assert held == {down: {"r"}, up: {"w"}}, "a worker holds another worker's pipe or the parent's end of its own"
    finally:
        pool.close()
    assert all(w.proc.returncode == 0 for w in pool.workers)


def test_start_method_forks_only_when_safe(monkeypatch) -> None:
    assert start_method("spawn")[0] == "spawn"
    with pytest.raises(GridError, match="unknown worker start method 'thread'"):
        start_method("thread")
    if not os.uname().sysname == "Linux":
        pytest.skip("fork is used on Linux only")
    assert start_method("auto") == ("fork", "Linux, no other Python thread, no Ray")
    assert start_cost("processes") is None and start_cost("serial") is None
    stop = threading.Event()
    busy = threading.Thread(target=stop.wait, name="busy")
    busy.start()
    try:
        method, why = start_method("auto")
        assert method == "spawn" and "busy" in why
        cost, why = start_cost("processes")
        assert cost == 0.5 and "spawned" in why and "busy" in why
        with pytest.raises(GridError, match="workers cannot be forked: other Python threads are running"):
            start_method("fork")
        pool = ProcessExecutor(subs_below_owner("prosumers"), 2)  # falls back to spawn and works
        try:
            assert pool.start == "spawn" and "busy" in pool.why
            pool.ready()
        finally:
            pool.close()
    finally:
        stop.set()
        busy.join()


def test_starting_ray_here_is_costly_and_says_so() -> None:
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        pytest.skip("Ray is running in this process")
    assert start_cost("ray") == (5.0, "Ray is not running, and starting it here takes 4-9 s")


@pytest.fixture(scope="module")
def started_ray():
    """A local Ray started once for this module's Ray tests (as a user would: ``ray.init``), stopped after them."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False)  # our own, not a cluster another job started here
    yield ray
    ray.shutdown()


def forget_idle_actors(ray) -> None:
    """This process's idle gridlang actors on ``ray`` stopped: the next run finds none (as a new process would)."""
    for actor in executors._IDLE.pop(executors._session(ray), []):
        ray.kill(actor, no_restart=True)


@pytest.mark.xdist_group("ray")
def test_ray_actors_stay_for_the_next_run_and_a_killed_one_gets_its_agents_again(started_ray) -> None:
    """On a Ray the user started, a second run takes the first run's actors (no new
    processes) and gives the same answer; an actor killed mid-run is restarted
    empty, given its batch again, and the run still reaches serial's optimum."""
    ray = started_ray
    from gridlang.decompose.executors import _IDLE, RayExecutor

    forget_idle_actors(ray)
    expected, s_run = serial("prosumers", "atc")
    seen: list = []
    original = RayExecutor.solve_all

    def solve_all(self, targets, rho):
        seen.append(self)
        out = original(self, targets, rho)
        if len(seen) == 2 * s_run.iterations + 1:  # the third run, after its first iteration
            self.kill("p5")
        return out

    RayExecutor.solve_all = solve_all
    try:
        runs = [decompose.solve(gridlang.load(CASES / "prosumers.grid").built, "atc", "ray", workers=2, at_once=True) for _ in range(3)]
    finally:
        RayExecutor.solve_all = original
    first, second, third = (seen[i * s_run.iterations] for i in range(3))
    assert {a._actor_id for a in first.actors} == {a._actor_id for a in second.actors} == {a._actor_id for a in third.actors}
    assert len(first.actors) == 2 and (first.taken, second.taken) == (0, 2)
    assert len(_IDLE[first.session]) == 2  # back, holding nothing
    for got, run in runs[:2]:
        assert run.converged and run.iterations == s_run.iterations and got.objective == expected.objective
    got, run = runs[2]
    assert run.converged and not got.doubts()
    assert got.objective == pytest.approx(expected.objective, rel=1e-6)


@pytest.mark.xdist_group("ray")
def test_a_short_run_is_solved_here_and_leaves_ray_actors_starting_for_the_next(started_ray, monkeypatch) -> None:
    """On a started Ray without this process's actors, a short run (with or without
    workers) is solved here, serially, and says why, starting no actor; one whose
    start's estimate has passed (set to 0 s) asks for them and, ending before they
    are up, leaves them to the next run without waiting; that run takes them at once
    and gives the serial numbers on Ray; a run refused after taking them (a mistake
    in its settings) gives them back.  Two cores assumed (``os.cpu_count``)."""
    ray = started_ray
    from gridlang.decompose import run as run_module

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    forget_idle_actors(ray)
    expected, s_run = serial("prosumers", "atc")
    assert start_cost("ray", 2) == (1.0, "Ray is running but holds none of the 2 gridlang actors it needs from an earlier run of this process, "
                                         "and a new actor takes 0.5-1 s to start and import gridlang")

    def run(**kw):
        return decompose.solve(gridlang.load(CASES / "prosumers.grid").built, "atc", "ray", **kw)

    for kw in ({}, {"workers": 2}):
        here, h_run = run(**kw)
        assert here.solver == "atc/serial" and not here.doubts() and here.objective == expected.objective and h_run.iterations == s_run.iterations
        (why,) = [w for w in here.warnings if w.startswith("executor ray")]
        assert "the run ended here" in why and "holds none of the 2 gridlang actors" in why and "started once a run has lasted 1 s" in why
        assert executors.idle_actors() == 0
    with monkeypatch.context() as m:
        m.setattr(run_module, "start_cost", lambda executor, count: (0.0, "asked for at once"))
        t0 = time.perf_counter()
        quick, q_run = run(workers=2)
        took = time.perf_counter() - t0
    assert quick.objective == pytest.approx(expected.objective, rel=1e-9) and q_run.converged
    assert executors.idle_actors() == 2  # asked for, given back whether up or not
    if quick.solver == "atc/serial":  # the usual case: the run ended before the actors were up, and did not wait for them
        assert took < 5.0
    warm, w_run = run()
    assert warm.solver == "atc/ray" and not warm.doubts() and w_run.iterations == s_run.iterations and warm.objective == expected.objective
    assert not any(w.startswith("executor ray") for w in warm.warnings)
    assert executors.idle_actors() == 2  # the same two, back
    with pytest.raises(GridError, match="unknown atc setting 'max_iterr'"):  # a mistake found after the actors were taken: they are given back
        run(workers=2, max_iterr=3)
    assert executors.idle_actors() == 2
