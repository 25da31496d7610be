"""The command line as a user runs it: exit codes, messages, files written."""

import json

import xarray as xr
from typer.testing import CliRunner

from conftest import CASES
from gridlang.cli import app

runner = CliRunner()


def test_check_reports_size_and_class():
    r = runner.invoke(app, ["check", str(CASES / "ieee33_dispatch.grid")])
    assert r.exit_code == 0, r.output
    assert "LP" in r.output and "24 steps" in r.output


def test_solve_writes_results_atomically(tmp_path):
    out = tmp_path / "res"
    r = runner.invoke(app, ["solve", str(CASES / "ieee33_base.grid"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "optimal" in r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["termination"] == "optimal" and abs(summary["objective"] - 3.715) < 1e-6
    assert summary["partial"] is False and summary["doubts"] == []
    manifest = json.loads((out / ".gridlang-results.json").read_text())
    assert sorted(manifest["files"]) == sorted(p.name for p in out.iterdir() if p.name != ".gridlang-results.json")
    ds = xr.open_dataset(out / "results.nc", engine="h5netcdf")
    assert abs(float(ds["ieee33-voltage"].min()) - 0.91593) < 1e-5
    assert (out / "grid-import.csv").exists()
    # no temporary folders are left beside the results
    assert [p.name for p in tmp_path.iterdir()] == ["res"]
    # solving again replaces gridlang's own files, and leaves nothing beside the folder
    r = runner.invoke(app, ["solve", str(CASES / "ieee33_base.grid"), "--out", str(out)])
    assert r.exit_code == 0 and [p.name for p in tmp_path.iterdir()] == ["res"]


def test_compile_lp_and_mps_read_back_by_highs(tmp_path):
    import highspy

    for suffix in ("lp", "mps"):
        path = tmp_path / f"model.{suffix}"
        r = runner.invoke(app, ["compile", str(CASES / "ieee33_base.grid"), "-o", str(path)])
        assert r.exit_code == 0, r.output
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.readModel(str(path))
        h.run()
        assert abs(h.getInfo().objective_function_value - 3.715) < 1e-6


def test_user_mistake_gives_message_not_traceback(write_case):
    path = write_case("system s { base_power = 1 MVA; horizon = 1 h; step = 1 h }\nnetwork n uses copper_plate { bus b1 }\nload ld at b1 { p = 5 kWh }\n")
    r = runner.invoke(app, ["solve", str(path)])
    assert r.exit_code == 1
    assert "Traceback" not in r.output
    assert f"{path}:3:" in r.output and "energy" in r.output and "hint:" in r.output


def test_unknown_solver_and_bad_option(write_case):
    r = runner.invoke(app, ["solve", str(CASES / "ieee33_base.grid"), "--solver", "cplex"])
    assert r.exit_code == 1 and "unknown solver 'cplex'" in r.output
    r = runner.invoke(app, ["solve", str(CASES / "ieee33_base.grid"), "--option", "nonsense"])
    assert r.exit_code == 1 and "NAME=VALUE" in r.output


def test_compile_refuses_unknown_format(tmp_path):
    r = runner.invoke(app, ["compile", str(CASES / "ieee33_base.grid"), "-o", str(tmp_path / "m.xyz")])
    assert r.exit_code == 1 and ".lp or .mps" in r.output


def test_plan_writes_its_report(tmp_path):
    out = tmp_path / "plan"
    r = runner.invoke(app, ["solve", str(CASES / "planning_33bus.grid"), "--formulation", "lindistflow", "--solver", "highs", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "annual cost by category" in r.output and "EENS" in r.output and "worst typical day" in r.output
    # build decisions are binaries (not p.u.), and long names are printed whole when piped
    row = next(line for line in r.output.splitlines() if "generator_candidate-build" in line)
    assert "binary" in row and "p.u." not in row and "…" not in r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["plan"]["eens_MWh_per_yr"] <= 6 + 1e-6 and summary["plan"]["built"]
    report = (out / "plan.md").read_text()
    assert "## Built" in report and "## Reliability" in report and "Build decisions under each formulation" in report


def test_collaborate_prints_the_alternation_and_the_split(tmp_path):
    out = tmp_path / "collab"
    r = runner.invoke(app, ["collaborate", str(CASES / "collaborative_planning.grid"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "alternation: converged" in r.output and "payment" in r.output.lower()
    assert (out / "plan.md").exists() and (out / "summary.json").exists()
