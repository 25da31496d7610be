"""Resuming a case in parts from the cloud's checkpoint (gridlang.parts.resume): ATC
stopped mid-run continues from the iterate saved, keyed by agent and named row, to the
uninterrupted run's objective in the passes that run still had to go; a checkpoint of
another case, with a target missing, damaged, absent or of the other method is refused at the file;
ADMM resumes the same way."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import CASES
from gridlang.cli import app
from gridlang.errors import GridError
from gridlang.parts.compile import solve_parts
from gridlang.parts.format import read_cloud
from gridlang.parts.split import split_case

runner = CliRunner()
STOP = 10  # the pass in which the cloud's process dies


@pytest.fixture(scope="module")
def community(tmp_path_factory):
    """community4 in parts, its uninterrupted ATC run, and the checkpoint of a run whose cloud died in pass STOP."""
    root = tmp_path_factory.mktemp("resume")
    folder = root / "community4"
    split_case(CASES / "community4.grid", folder)
    agents = [folder / a / f"{a}.grid" for a in read_cloud(folder / "cloud.grid").agents]
    fresh = solve_parts(folder / "cloud.grid", agents, "atc")
    saved = root / "died.json"

    def dies(step) -> None:
        if step.iteration == STOP:
            raise KeyboardInterrupt  # the cloud's process stops here, before pass STOP's update

    with pytest.raises(KeyboardInterrupt):
        solve_parts(folder / "cloud.grid", agents, "atc", checkpoint=saved, progress=dies)
    return folder, agents, fresh, saved


def _copy(saved: Path, to: Path, edit=None) -> Path:
    data = json.loads(saved.read_text())
    if edit is not None:
        edit(data)
    to.write_text(json.dumps(data))
    return to


def test_a_stopped_atc_run_resumes_from_its_checkpoint_to_the_uninterrupted_objective(community, tmp_path):
    folder, agents, fresh, saved = community
    assert fresh.status == "converged" and fresh.iterations > STOP
    data = json.loads(saved.read_text())
    assert data["status"] == "running" and data["method"] == "atc" and data["pass"] == STOP
    state = data["state"]
    assert state["iteration"] == STOP - 1  # the last pass whose update completed
    assert set(state["targets"]) == {"house1", "house2", "house3", "house4"}  # the operator (dso) sets the targets
    h1 = state["targets"]["house1"]
    assert len(h1["rows"]) == len(h1["y"]) == len(h1["v"]) > 0 and all(r.startswith("feeder-balance_p[bus=h1, time=") for r in h1["rows"])
    ck = _copy(saved, tmp_path / "ck.json")
    resumed = solve_parts(folder / "cloud.grid", agents, "atc", checkpoint=ck, resume=True)
    assert resumed.status == "converged" and resumed.resumed == STOP - 1
    assert resumed.run.trace[0].iteration == STOP  # the passes go on from where the checkpoint stood
    assert resumed.objective == pytest.approx(fresh.objective, rel=1e-6)
    assert resumed.iterations < fresh.iterations  # starting over would take all of the fresh run's passes
    assert STOP - 1 + resumed.iterations <= fresh.iterations + 1
    assert json.loads(ck.read_text())["status"] == "converged"  # and the file is the resumed run's checkpoint


def test_the_checkpoint_is_keyed_by_names_so_its_order_does_not_matter_on_the_command_line(community, tmp_path):
    folder, _, fresh, saved = community

    def shuffle(data) -> None:  # every agent and every row in the opposite order: positions mean nothing
        targets = data["state"]["targets"]
        data["state"]["targets"] = {a: {k: v[::-1] for k, v in targets[a].items()} for a in reversed(list(targets))}

    ck = _copy(saved, tmp_path / "ck.json", shuffle)
    r = runner.invoke(app, ["cloud", str(folder / "cloud.grid"), "--serial", "--no-settle", "--checkpoint", str(ck), "--resume"])
    assert r.exit_code == 0, r.output
    assert "ATC converged after" in r.output and f"(resumed at iteration {STOP} from {ck})" in r.output
    found = float(re.search(r"objective (\S+),", r.output).group(1))
    iterations = int(re.search(r"after (\d+) iterations", r.output).group(1))
    assert found == pytest.approx(fresh.objective, rel=1e-6) and iterations < fresh.iterations


def test_a_stopped_admm_run_resumes_from_its_checkpoint_to_the_uninterrupted_objective(community, tmp_path):
    """ADMM's state (rho, the consensus point per agent and named row, the price per named
    row) saved in the pass the cloud died in, and continued from: the uninterrupted run's
    objective, in fewer iterations than starting over."""
    folder, agents, _, _ = community
    fresh = solve_parts(folder / "cloud.grid", agents, "admm")
    assert fresh.status == "converged" and fresh.iterations > STOP
    saved = tmp_path / "admm.json"

    def dies(step) -> None:
        if step.iteration == STOP:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        solve_parts(folder / "cloud.grid", agents, "admm", checkpoint=saved, progress=dies)
    data = json.loads(saved.read_text())
    assert data["method"] == "admm" and data["status"] == "running" and data["state"]["iteration"] == STOP - 1
    state = data["state"]
    assert {"dso", "house1"} <= set(state["contributions"]) and len(state["prices"]["rows"]) == len(state["prices"]["u"]) > 0
    resumed = solve_parts(folder / "cloud.grid", agents, "admm", checkpoint=saved, resume=True)
    assert resumed.status == "converged" and resumed.resumed == STOP - 1 and resumed.run.trace[0].iteration == STOP
    assert resumed.objective == pytest.approx(fresh.objective, rel=1e-4)
    assert resumed.iterations < fresh.iterations
    assert json.loads(saved.read_text())["status"] == "converged"


def _refused(folder: Path, ck: Path, *extra: str) -> str:
    before = ck.read_bytes() if ck.exists() else None
    r = runner.invoke(app, ["cloud", str(folder / "cloud.grid"), "--serial", "--no-settle", "--checkpoint", str(ck), "--resume", *extra])
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and "hint:" in r.output
    assert (ck.read_bytes() if ck.exists() else None) == before  # a refused resume leaves the file as it was
    return r.output


def test_a_checkpoint_missing_a_target_or_holding_an_unknown_row_is_refused(community, tmp_path):
    folder, _, _, saved = community

    def drop(data) -> None:
        h2 = data["state"]["targets"]["house2"]
        for k in ("rows", "y", "v"):
            del h2[k][3]

    out = _refused(folder, _copy(saved, tmp_path / "drop.json", drop))
    assert re.search(r"drop\.json: error: the checkpoint does not fit this case: it has no value for 'house2' at feeder-balance_p\[bus=h2, time=\d+\]", out)
    assert "1 of this case's" in out and "leave out --resume" in out

    def rename(data) -> None:
        data["state"]["targets"]["house5"] = data["state"]["targets"].pop("house4")

    out = _refused(folder, _copy(saved, tmp_path / "rename.json", rename))
    assert "has no value for 'house4'" in out


def test_a_checkpoint_of_another_case_is_refused(community, tmp_path):
    folder, _, _, _ = community
    other = tmp_path / "three_microgrids.json"
    mg = CASES / "parts" / "three_microgrids"
    solve_parts(mg / "cloud.grid", [mg / a / f"{a}.grid" for a in read_cloud(mg / "cloud.grid").agents], "atc", checkpoint=other, max_iter=2)
    assert json.loads(other.read_text())["state"]["iteration"] == 2
    out = _refused(folder, other)
    assert "three_microgrids.json: error: the checkpoint does not fit this case: it has no value for 'house1' at feeder-balance_p[bus=h1," in out


def test_a_damaged_missing_foreign_or_admm_checkpoint_is_refused(community, tmp_path):
    folder, agents, _, saved = community
    cut = tmp_path / "cut.json"
    cut.write_text(saved.read_text()[:500])  # the process died while writing (gridlang writes atomically; another tool may not)
    out = _refused(folder, cut)
    assert re.search(r"cut\.json:\d+:\d+: error: the checkpoint is damaged", out)
    out = _refused(folder, _copy(saved, tmp_path / "nan.json", lambda d: d["state"]["targets"]["house1"]["y"].__setitem__(0, "x")))
    assert "nan.json: error: the checkpoint is damaged: its state is not the iterate gridlang writes" in out
    out = _refused(folder, tmp_path / "nowhere.json")
    assert "nowhere.json: error: no checkpoint to resume from" in out
    foreign = tmp_path / "notes.json"
    foreign.write_text('{"my": "notes"}')
    assert "this file is not a checkpoint gridlang's cloud wrote" in _refused(folder, foreign)
    admm = tmp_path / "admm.json"
    solve_parts(folder / "cloud.grid", agents, "admm", checkpoint=admm, max_iter=2)
    assert "the checkpoint was written by an ADMM run; an ATC run cannot continue from it" in _refused(folder, admm)
    assert "the checkpoint was written by an ATC run; an ADMM run cannot continue from it" in _refused(folder, _copy(saved, tmp_path / "atc.json"), "--method", "admm")

    def no_price(data) -> None:
        prices = data["state"]["prices"]
        del prices["rows"][0], prices["u"][0]

    out = _refused(folder, _copy(admm, tmp_path / "price.json", no_price), "--method", "admm")
    assert re.search(r"price\.json: error: the checkpoint does not fit this case: it has no price at feeder-balance_p\[", out)
    with pytest.raises(GridError, match="the checkpoint is damaged"):
        solve_parts(folder / "cloud.grid", agents, "admm", checkpoint=_copy(admm, tmp_path / "rho.json", lambda d: d["state"].__setitem__("rho", -1.0)), resume=True)
    r = runner.invoke(app, ["cloud", str(folder / "cloud.grid"), "--serial", "--resume"])
    assert r.exit_code == 1 and "--resume needs --checkpoint" in r.output


@pytest.mark.xdist_group("ray")  # one local cluster at a time (pytest -n: the same worker)
def test_a_checkpoint_of_the_serial_run_resumes_on_a_local_cluster_that_numbered_the_rows_anew(community, tmp_path):
    pytest.importorskip("ray")
    folder, _, fresh, saved = community
    ck = _copy(saved, tmp_path / "ck.json")
    r = runner.invoke(app, ["cloud", str(folder / "cloud.grid"), "--local", "--nodes", "2", "--no-settle", "--checkpoint", str(ck), "--resume"])
    assert r.exit_code == 0, r.output
    assert f"(resumed at iteration {STOP} from {ck})" in r.output
    found = float(re.search(r"objective (\S+),", r.output).group(1))
    iterations = int(re.search(r"after (\d+) iterations", r.output).group(1))
    assert found == pytest.approx(fresh.objective, rel=1e-6) and iterations < fresh.iterations
    assert json.loads(ck.read_text())["status"] == "converged"
