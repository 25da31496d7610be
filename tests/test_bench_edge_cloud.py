"""Smoke test of benchmarks/edge_cloud.py --quick: four prosumers in parts on a local
Ray cluster of two edge nodes against the in-process serial run; the script prints its
two tables and both runs reach the central objective."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # one local cluster at a time (pytest -n: the same worker)

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "edge_cloud.py"


def test_edge_cloud_quick_runs_and_the_objectives_match(tmp_path):
    out = tmp_path / "ec.json"
    r = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1. Per iteration" in r.stdout and "2. Objectives against the central solve" in r.stdout
    lines = r.stdout.splitlines()
    table = lines.index(next(line for line in lines if line.startswith("agents  method")))
    assert lines[table + 2].split()[:3] == ["4", "atc", "2"]  # the 4-agent row, ATC, two edge nodes
    row = json.loads(out.read_text())["rows"][0]
    central, s, ray = row["central"]["objective"], row["serial"], row["ray"]
    assert s["status"] == ray["status"] == "converged"
    assert ray["nodes_used"] == 2  # the actors were placed on two distinct nodes by their resources
    # ATC stops on rel = 1e-5 of the targets: both within 1e-4 of the central optimum, and of each other
    assert s["objective"] == pytest.approx(central, rel=1e-4)
    assert ray["objective"] == pytest.approx(central, rel=1e-4)
    assert ray["objective"] == pytest.approx(s["objective"], rel=1e-4)
    # what crossed: per pass, every prosumer's 24 targets and rho out, its 24 answers and its cost back
    assert ray["floats_per_pass"] == [4 * 25, 4 * 25]
    assert ray["sent_per_pass"] >= 8 * 100 and ray["received_per_pass"] >= 8 * 100
    assert 0.0 <= s["outside"] < 1.0 and 0.0 <= ray["outside"] < 1.0
    assert ray["cluster_s"] > 0 and ray["edges_s"] > 0 and ray["loop_s"] > 0
