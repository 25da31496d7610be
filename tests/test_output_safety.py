"""Results never destroy what the user had; a failed or interrupted run writes nothing.

Each situation is run as a user would (the command line), and each test checks
the message, the exit status and that every file already at the output place
is still there, byte for byte.  A property-based test throws arbitrary trees
at the writers and checks that no file gridlang did not write is lost or
changed.
"""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import gridlang
from conftest import CASES
from gridlang.cli import app
from gridlang.errors import GridError
from gridlang.io.modelfiles import write_model
from gridlang.io.results import MANIFEST, read_manifest, write_atomic, write_folder, write_results

runner = CliRunner()
BASE = CASES / "ieee33_base.grid"
YEAR_CSV = CASES / "data" / "year_profiles.csv"


@pytest.fixture(scope="module")
def case():
    return gridlang.load(BASE)


@pytest.fixture(scope="module")
def solved(case):
    result = case.solve()
    assert not result.doubts(), result.doubts()
    return result


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``root``, by relative path."""
    if not root.exists():
        return {}
    if not root.is_dir():
        return {".": root.read_bytes()}
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def user_tree(root: Path) -> dict[str, bytes | None]:
    """A few files and a nested folder a user might keep where results go."""
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "deep").mkdir()
    (root / "case.grid").write_text("system s { base_power = 1 MVA }\n")
    (root / "notes" / "todo.txt").write_bytes(b"\x00\xffbinary\n")
    (root / "notes" / "deep" / "results.nc").write_text("mine, not a result")
    (root / ".hidden").write_text("dotfile")
    return snapshot(root)


def command_line_error(r, *needles: str) -> None:
    assert r.exit_code == 1, r.output
    text = r.output.replace("\n", "")
    assert "<command line>: error:" in text and "hint:" in text and "Traceback" not in text
    for needle in needles:
        assert needle in text, (needle, r.output)


# ------------------------------------------------------------------ solve --out


def test_out_folder_of_user_files_is_refused_before_the_solve(tmp_path):
    out = tmp_path / "mine"
    before = user_tree(out)
    r = runner.invoke(app, ["solve", str(BASE), "--out", str(out)])
    command_line_error(r, f"folder {out} is not empty", "holds no gridlang results", "choose an empty or new folder")
    assert "termination" not in r.output  # refused before solving
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_out_dot_beside_the_case_keeps_the_case(tmp_path, monkeypatch):
    for name in ("ieee33_base.grid", "ieee33_network.grid", "ieee33_loads.grid"):
        shutil.copy(CASES / name, tmp_path / name)
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["solve", "ieee33_base.grid", "--out", "."])
    command_line_error(r, "folder . is not empty", "ieee33_base.grid", "choose an empty or new folder")
    assert snapshot(tmp_path) == before


def test_out_naming_a_file_is_refused(tmp_path):
    target = tmp_path / "res"
    target.write_text("precious")
    r = runner.invoke(app, ["solve", str(BASE), "--out", str(target)])
    command_line_error(r, f"{target} is a file, not a results folder", "never replaces a file by a folder")
    assert target.read_text() == "precious" and sorted(p.name for p in tmp_path.iterdir()) == ["res"]


def test_out_under_a_file_is_refused_at_once(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    r = runner.invoke(app, ["solve", str(BASE), "--out", str(tmp_path / "f.txt" / "res")])
    command_line_error(r, "cannot create results folder", f"{tmp_path / 'f.txt'} is a file, not a folder")
    assert "termination" not in r.output
    assert snapshot(tmp_path) == {"f.txt": b"x"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_out_in_a_read_only_folder_is_refused_at_once(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        r = runner.invoke(app, ["solve", str(BASE), "--out", str(locked / "res")])
        command_line_error(r, "cannot create results folder", "is not writable")
        assert "termination" not in r.output and list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_empty_folder_and_rerun_keep_user_files(tmp_path):
    out = tmp_path / "res"
    out.mkdir()
    r = runner.invoke(app, ["solve", str(BASE), "--out", str(out)])
    assert r.exit_code == 0, r.output
    listed = read_manifest(out)
    assert listed is not None and {"results.nc", "summary.json", "grid-import.csv"} <= listed
    assert {p.name for p in out.iterdir()} == listed | {MANIFEST}
    # the user adds files into the result folder, then solves again
    (out / "my_notes.md").write_text("keep me")
    (out / "plots").mkdir()
    (out / "plots" / "summary.json").write_text("also mine")
    before = {k: v for k, v in snapshot(out).items() if k in ("my_notes.md", "plots", "plots/summary.json")}
    r = runner.invoke(app, ["solve", str(BASE), "--out", str(out)])
    assert r.exit_code == 0, r.output
    after = snapshot(out)
    assert all(after[k] == v for k, v in before.items())
    assert read_manifest(out) == listed and json.loads((out / "summary.json").read_text())["partial"] is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]  # no staging folder left


def test_only_listed_files_of_a_previous_result_are_removed(tmp_path, solved):
    out = tmp_path / "res"
    write_results(solved, out)
    (out / "old-variable.csv").write_text("written by an earlier gridlang run")
    (out / "user.csv").write_text("the user's")
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"].append("old-variable.csv")
    (out / MANIFEST).write_text(json.dumps(manifest))
    write_results(solved, out)
    assert not (out / "old-variable.csv").exists()  # gridlang's, no longer part of the result
    assert (out / "user.csv").read_text() == "the user's"
    assert "old-variable.csv" not in read_manifest(out)


def test_result_name_taken_by_a_user_file_is_refused(tmp_path, solved):
    out = tmp_path / "res"
    write_results(solved, out)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"].remove("summary.json")  # as if summary.json were the user's own file
    (out / MANIFEST).write_text(json.dumps(manifest))
    (out / "summary.json").write_text("the user's summary")
    before = snapshot(out)
    with pytest.raises(GridError, match="summary.json already there and not written by gridlang"):
        write_results(solved, out)
    assert snapshot(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["res"]
    r = runner.invoke(app, ["solve", str(BASE), "--out", str(out)])
    command_line_error(r, "summary.json already there and not written by gridlang", "choose an empty or new folder")
    assert snapshot(out) == before


def test_a_forged_manifest_cannot_reach_outside_the_folder(tmp_path, solved):
    out = tmp_path / "res"
    out.mkdir()
    (tmp_path / "victim.txt").write_text("outside")
    (out / MANIFEST).write_text(json.dumps({"files": ["../victim.txt"]}))
    with pytest.raises(GridError, match="holds no gridlang results"):
        write_results(solved, out)
    assert (tmp_path / "victim.txt").read_text() == "outside"


# ------------------------------------------------------------------ import -o, compile -o


def test_import_into_an_existing_folder_is_a_clear_error(tmp_path):
    target = tmp_path / "cases"
    before = user_tree(target)
    r = runner.invoke(app, ["import", str(CASES / "matpower" / "case33bw.m"), "-o", str(target)])
    command_line_error(r, f"{target} is a folder; -o names the file to write", f"give a file name, e.g. -o {target / 'case.grid'}")
    assert snapshot(target) == before and sorted(p.name for p in tmp_path.iterdir()) == ["cases"]


def test_compile_into_an_existing_folder_or_under_a_file_is_a_clear_error(tmp_path):
    target = tmp_path / "model.lp"
    before = user_tree(target)
    r = runner.invoke(app, ["compile", str(BASE), "-o", str(target)])
    command_line_error(r, f"{target} is a folder; -o names the file to write")
    assert snapshot(target) == before
    r = runner.invoke(app, ["compile", str(BASE), "-o", str(target / "case.grid" / "m.lp")])
    command_line_error(r, "cannot create file", "is a file, not a folder")
    assert snapshot(target) == before and sorted(p.name for p in tmp_path.iterdir()) == ["model.lp"]


def test_compile_replaces_its_own_file_and_leaves_no_temporary_file(tmp_path):
    (tmp_path / "keep.txt").write_text("keep")
    target = tmp_path / "m.lp"
    target.write_text("an older model, not gridlang's")
    r = runner.invoke(app, ["compile", str(BASE), "-o", str(target)])
    command_line_error(r, "exists and gridlang did not write it")
    assert target.read_text() == "an older model, not gridlang's"
    target.unlink()
    for _ in range(2):  # the second run replaces the file the first one wrote
        r = runner.invoke(app, ["compile", str(BASE), "-o", str(target)])
        assert r.exit_code == 0, r.output
    assert target.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "m.lp"] and (tmp_path / "keep.txt").read_text() == "keep"


def test_import_never_replaces_a_users_case(tmp_path):
    mine = tmp_path / "case.grid"
    mine.write_text("# my own case\n")
    r = runner.invoke(app, ["import", str(CASES / "matpower" / "case33bw.m"), "-o", str(mine)])
    command_line_error(r, "exists and gridlang did not write it")
    assert mine.read_text() == "# my own case\n"
    ours = tmp_path / "imported.grid"
    for _ in range(2):
        assert runner.invoke(app, ["import", str(CASES / "matpower" / "case33bw.m"), "-o", str(ours)]).exit_code == 0


def test_write_atomic_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "new" / "deeper" / "f.grid"

    def boom(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, boom)
    assert list(tmp_path.iterdir()) == []  # neither the file, its temporary, nor the folders made for it


# ------------------------------------------------------------------ scenarios --out, collaborate --out


def test_scenarios_out_checked_before_the_clustering(tmp_path):
    out = tmp_path / "td"
    before = user_tree(out)
    r = runner.invoke(app, ["scenarios", str(YEAR_CSV), "-k", "4", "--out", str(out)])
    command_line_error(r, f"folder {out} is not empty", "choose an empty or new folder")
    assert "density-peak" not in r.output and snapshot(out) == before
    target = tmp_path / "td.csv"
    target.write_text("mine")
    r = runner.invoke(app, ["scenarios", str(YEAR_CSV), "-k", "4", "--out", str(target)])
    command_line_error(r, "is a file, not a results folder")
    assert target.read_text() == "mine"


def test_scenarios_rerun_into_its_own_output(tmp_path):
    out = tmp_path / "td"
    for _ in range(2):
        r = runner.invoke(app, ["scenarios", str(YEAR_CSV), "-k", "3", "--out", str(out)])
        assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "typical_days.csv", "typical_days.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["td"]


def test_collaborate_out_checked_before_the_alternation(tmp_path):
    target = tmp_path / "collab"
    target.write_text("precious")
    r = runner.invoke(app, ["collaborate", str(CASES / "collaborative_planning.grid"), "--out", str(target)])
    command_line_error(r, "is a file, not a results folder")
    assert "alternation" not in r.output and target.read_text() == "precious"


# ------------------------------------------------------------------ options


@pytest.mark.parametrize("rate", ["2", "1", "-0.1", "nan"])
def test_drop_rate_outside_zero_one_is_rejected(tmp_path, rate):
    r = runner.invoke(app, ["solve", str(CASES / "community4.grid"), "--method", "admm", "--drop-rate", rate, "--out", str(tmp_path / "r")])
    command_line_error(r, "--drop-rate", "is not a share in [0, 1)")
    assert not (tmp_path / "r").exists()


def test_solve_help_names_the_methods():
    r = runner.invoke(app, ["solve", "--help"], terminal_width=200)
    assert r.exit_code == 0 and "central, admm, atc or auto" in r.output and "--partial" in r.output


# ------------------------------------------------------------------ no trustworthy answer: exit 3


def _untrusted(tmp_path: Path) -> list[str]:
    """A real solve that ends without a trustworthy answer: a MISOCP with no time to solve."""
    return ["solve", str(CASES / "ieee33_soc_planning.grid"), "--solver", "scip", "--option", "limits_time=0"]


@pytest.mark.parametrize(
    ("args", "ended"),
    [
        (["ieee33_soc_planning.grid", "--solver", "scip", "--option", "limits_time=0"], "time_limit"),
        (["ieee33_dispatch.grid", "--option", "simplex_iteration_limit=1", "--option", "presolve=off"], "iteration_limit"),
        (["ieee33_soc_dispatch.grid", "--solver", "clarabel", "--option", "max_iter=1"], "iteration_limit"),
    ],
)
def test_no_trustworthy_answer_exits_3_and_writes_nothing(tmp_path, args, ended):
    out = tmp_path / "res"
    r = runner.invoke(app, ["solve", str(CASES / args[0]), *args[1:], "--out", str(out)])
    assert r.exit_code == 3, r.output
    assert f"not a trustworthy solution: the solve ended '{ended}', not 'optimal'" in r.output
    assert "no results were written" in r.output and "--partial" in r.output and "wrote" not in r.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_solver_out_of_memory_is_doubted_with_a_way_out():
    """HiGHS's presolve out of memory ends 'resource_interrupt' (measured: 10,000 copper-plate
    prosumers, 22.8 GiB): the doubt says what it means and how to need less memory."""
    from dataclasses import replace

    result = gridlang.load(BASE).solve()
    assert not result.doubts()
    doubts = replace(result, termination="resource_interrupt").doubts()
    assert len(doubts) == 1 and "ran out of memory" in doubts[0] and "--option presolve=off" in doubts[0]


def test_no_trustworthy_answer_keeps_the_previous_result(tmp_path):
    out = tmp_path / "res"
    assert runner.invoke(app, ["solve", str(BASE), "--out", str(out)]).exit_code == 0
    (out / "mine.txt").write_text("mine")
    before = snapshot(out)
    r = runner.invoke(app, [*_untrusted(tmp_path), "--out", str(out)])
    assert r.exit_code == 3 and "no results were written" in r.output
    assert snapshot(out) == before


def test_partial_writes_marked_results_and_still_exits_3(tmp_path):
    out = tmp_path / "res"
    r = runner.invoke(app, [*_untrusted(tmp_path), "--partial", "--out", str(out)])
    assert r.exit_code == 3, r.output
    assert "PARTIAL results" in r.output and "not a trustworthy solution:" in r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partial"] is True and summary["doubts"] and summary["termination"] != "optimal"
    assert json.loads((out / MANIFEST).read_text())["partial"] is True


# ------------------------------------------------------------------ SIGINT


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a running process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the child's CPU time from /proc")
def test_sigint_during_a_solve_writes_nothing_and_exits_130(tmp_path):
    out = tmp_path / "res"
    # ADMM over three microgrids with conic subproblems runs for tens of seconds; loading takes about 3 s
    cmd = [sys.executable, "-m", "gridlang", "solve", str(CASES / "three_microgrids.grid"), "--method", "admm", "--out", str(out)]
    # a shell or CI runner may have SIGINT ignored; give Python its KeyboardInterrupt back
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # wait for 6 s of the child's CPU time: past the imports and the build (about 2 s),
    # well before the end of the iterations (about 20 s), however busy the machine is
    deadline = time.monotonic() + 120
    while cpu_seconds(proc.pid) < 6.0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the solve ended before it could be interrupted: pick a longer case"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert "interrupted: nothing was written" in stderr and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def ctrl_c():
    """Ctrl-C as a user's process gets it: Python's default handler, SIGINT not blocked in
    this thread (seen once under pytest-xdist: a worker process that had run other tests
    did not raise KeyboardInterrupt here; what changed its signal state was not found)."""
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    yield
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    signal.signal(signal.SIGINT, handler)


def test_sigint_while_results_are_staged_leaves_everything_as_it_was(tmp_path, solved, ctrl_c):
    def interrupted(staging: Path) -> None:
        (staging / "results.nc").write_text("half written")
        signal.raise_signal(signal.SIGINT)

    out = tmp_path / "res"
    write_results(solved, out)
    (out / "mine.txt").write_text("mine")
    before = snapshot(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        write_folder(out, interrupted)
    assert snapshot(tmp_path) == before
    with pytest.raises(KeyboardInterrupt):
        write_folder(tmp_path / "new" / "deeper", interrupted)
    assert snapshot(tmp_path) == before  # neither the folder nor its parents were left behind


# ------------------------------------------------------------------ property: nothing gridlang did not write is lost


names = st.sampled_from(["results.nc", "summary.json", "grid-import.csv", MANIFEST, "a", "b.txt", ".x", "res", "m.lp", "Ünï", "sp ace"]) | st.text(alphabet="abcXYZ019_-.", min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
trees = st.recursive(st.binary(max_size=16), lambda children: st.dictionaries(names, children, max_size=4), max_leaves=8)


def plant(path: Path, tree) -> None:
    if isinstance(tree, bytes):
        path.write_bytes(tree)
    else:
        path.mkdir()
        for name, sub in tree.items():
            plant(path / name, sub)


def protected(root: Path, target: Path) -> dict[str, bytes | None]:
    """Everything under ``root`` except what the manifest at ``target`` says gridlang wrote."""
    listed = read_manifest(target) if target.is_dir() else None
    mine = {str((target / n).relative_to(root)) for n in (listed or ())} | ({str((target / MANIFEST).relative_to(root))} if listed is not None else set())
    return {k: v for k, v in snapshot(root).items() if k not in mine}


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    tree=st.none() | trees,
    previous=st.booleans(),
    extra=st.dictionaries(names, trees, max_size=3),
    forget=st.sets(st.sampled_from(["summary.json", "grid-import.csv", "results.nc"])),
    below_file=st.booleans(),
)
def test_results_never_lose_a_file_gridlang_did_not_write(solved, tree, previous, extra, forget, below_file):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        target = root / ("f" if below_file else "") / "out"
        if below_file:
            (root / "f").write_bytes(b"a file where a folder would go")
        elif previous:  # a previous gridlang result, with the user's own files added
            write_results(solved, target)
            for name, sub in extra.items():
                if not (target / name).exists():
                    plant(target / name, sub)
            if forget:  # files with result names that are the user's, not in the manifest
                manifest = json.loads((target / MANIFEST).read_text())
                manifest["files"] = [n for n in manifest["files"] if n not in forget]
                (target / MANIFEST).write_text(json.dumps(manifest))
                for name in forget:
                    (target / name).write_text(f"the user's own {name}")
        elif tree is not None:
            plant(target, tree)
        before = protected(root, target)
        everything = snapshot(root)
        try:
            written = write_results(solved, target)
        except GridError as exc:
            assert exc.span.file == "<command line>" and exc.hint
            assert snapshot(root) == everything  # refused: nothing written at all
        else:
            after = snapshot(root)
            assert all(after.get(k, "gone") == v for k, v in before.items())
            assert read_manifest(target) == {p.name for p in written}
            assert not [p for p in target.iterdir() if p.name.startswith(".gridlang-staging")]


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tree=st.none() | trees, below_file=st.booleans(), model=st.booleans())
def test_single_file_writers_never_lose_a_file(case, tree, below_file, model):
    """``import -o`` writes with write_atomic, ``compile -o`` with write_model."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "neighbour.txt").write_text("beside")
        target = root / ("f" if below_file else "") / "m.lp"
        if below_file:
            (root / "f").write_bytes(b"a file where a folder would go")
        elif tree is not None:
            plant(target, tree)
        everything = snapshot(root)
        try:
            if model:
                write_model(case.built, target)
            else:
                write_atomic(target, lambda tmp: tmp.write_text("system s {}\n", encoding="utf-8"))
        except GridError as exc:
            assert exc.span.file == "<command line>" and exc.hint
            assert snapshot(root) == everything
        else:
            # only the target changed: it was missing, and is a file now
            rel = str(target.relative_to(root))
            assert rel not in everything and target.is_file()
            assert {k: v for k, v in snapshot(root).items() if k != rel} == {k: v for k, v in everything.items() if k != rel}


def test_partial_summary_is_valid_json_with_nan(tmp_path, solved):
    from dataclasses import replace

    nan = replace(solved, objective=math.nan)
    with pytest.raises(ValueError, match="partial=True"):
        write_results(nan, tmp_path / "r")
    assert not (tmp_path / "r").exists()
    write_results(nan, tmp_path / "r", partial=True)
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["partial"] is True and summary["objective"] == "nan" and any("objective" in d for d in summary["doubts"])


# ------------------------------------------------------------------ bad input, earlier results kept

#: a small case and mistakes in it, each with where the error must point and what it must say
SMALL = """system s { base_power = 1 MVA; horizon = 2 h; step = 1 h }
network n uses copper_plate { bus b1 }
grid g at b1 { import_price = 50 $/MWh }
storage es at b1 { energy = 1 MWh; power = 0.5 MW; efficiency = 95 % }
load ld at b1 { p = 0.3 MW }
objective minimize cost
"""
BAD_INPUTS = {
    "efficiency-150": (("efficiency = 95 %", "efficiency = 150 %"), 4, 65, "must be in (0, 1]"),
    "unclosed-bracket": (("p = 0.3 MW }", "p = (0.3 MW }"), 5, 29, "the '(' at line 5, column 21 is not closed"),
    "another-currency": (("50 $/MWh", "50 EUR/MWh; export_price = 1 $/MWh"), 3, 31, "the case's currency is $"),
    "huge-price": (("50 $/MWh", "1e300 $/MWh"), 3, 31, "beyond 1e+12"),
    "unknown-bus": (("load ld at b1", "load ld at b7"), 5, 12, "bus 'b7' is not in any network"),
    "infeasible": (("50 $/MWh", "50 $/MWh; import_max = 0.1 MW"), 0, 0, "error: infeasible"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_a_bad_input_keeps_the_earlier_results(tmp_path, name):
    """Each mistake: exit 1, its message at its line and column with a caret and a hint, and
    the earlier results (with a user's file among them) untouched, byte for byte."""
    (old, new), line, col, message = BAD_INPUTS[name]
    good, bad = tmp_path / "good.grid", tmp_path / "bad.grid"
    good.write_text(SMALL)
    assert SMALL.count(old) == 1
    bad.write_text(SMALL.replace(old, new))
    out = tmp_path / "res"
    assert runner.invoke(app, ["solve", str(good), "--out", str(out)]).exit_code == 0
    (out / "mine.txt").write_text("mine")
    before = snapshot(out)
    r = runner.invoke(app, ["solve", str(bad), "--out", str(out)])
    assert r.exit_code == 1, r.output
    assert message in r.output and "hint:" in r.output and "Traceback" not in r.output
    if line:
        assert f"bad.grid:{line}:{col}: error:" in r.output, r.output
        assert "^" in r.output
    assert snapshot(out) == before
