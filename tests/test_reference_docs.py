"""The language reference and the docs site: `gridlang doc`, the committed
docs/reference pages equal to freshly generated ones, the tutorial's blocks
assembling into a case that checks like cases/ieee33_dispatch.grid, and
`mkdocs build --strict`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CASES, ROOT

GRIDLANG = Path(sys.executable).with_name("gridlang")
DOCS = ROOT / "docs"


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(GRIDLANG), *args], capture_output=True, text=True, cwd=cwd)


def test_doc_prints_a_kind_with_units_defaults_ranges_and_equations() -> None:
    run = _run("doc", "storage")
    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert text.startswith("storage (kind, storage.grid:") and "Battery or other storage" in text
    assert re.search(r"^\s+energy\s+MWh\s+required\s+>= 0\s*$", text, re.M)
    assert re.search(r"^\s+efficiency\s+-\s+1\s+\(0, 1\]\s+one-way", text, re.M)
    assert "final: soc[last] >= soc_final * energy where not cyclic" in text
    assert "inject p[t] = discharge[t] - charge[t]" in text and "Outputs:" in text


def test_doc_lists_everything_and_reports_an_unknown_name_with_a_hint() -> None:
    listing = _run("doc").stdout
    names = [line.split()[0] for line in listing.splitlines()]
    assert {"storage", "pv", "grid", "lindistflow", "distflow_soc", "copper_plate"} <= set(names)
    run = _run("doc", "storag")
    assert run.returncode == 1 and "no kind or formulation named 'storag'" in run.stderr and "did you mean 'storage'?" in run.stderr


def test_committed_reference_is_the_generated_one(tmp_path) -> None:
    assert _run("doc", "--write", str(tmp_path)).returncode == 0
    generated = {p.name: p.read_text() for p in tmp_path.glob("*.md")}
    committed = {p.name: p.read_text() for p in (DOCS / "reference").glob("*.md")}
    assert generated.keys() == committed.keys(), "run: gridlang doc --write docs/reference"
    stale = [n for n in generated if generated[n] != committed[n]]
    assert not stale, f"docs/reference is out of date ({stale}); run: gridlang doc --write docs/reference"


def test_tutorial_blocks_assemble_into_the_33_bus_dispatch(tmp_path) -> None:
    blocks = re.findall(r"```grid\n(.*?)```", (DOCS / "tutorial.md").read_text(), re.S)
    assert len(blocks) >= 5
    for f in ("ieee33_network.grid", "ieee33_loads.grid"):
        shutil.copy(CASES / f, tmp_path / f)
    shutil.copytree(CASES / "data", tmp_path / "data")
    case = tmp_path / "ieee33_dispatch.grid"
    case.write_text("".join(blocks))
    mine, shipped = _run("check", str(case)), _run("check", str(CASES / "ieee33_dispatch.grid"))
    assert mine.returncode == 0, mine.stderr
    # same problem class and size as the shipped case
    assert mine.stdout.split(": ok")[1] == shipped.stdout.split(": ok")[1]


def test_docs_site_builds_strictly(tmp_path) -> None:
    pytest.importorskip("mkdocs")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    run = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "site" / "reference" / "storage" / "index.html").is_file()
    assert (tmp_path / "site" / "tutorial" / "index.html").is_file()
