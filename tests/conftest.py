import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "cases"

warnings.filterwarnings("ignore", module="linopy")


@pytest.fixture
def write_case(tmp_path):
    """Write case text (and extra files) into a fresh folder; return the case path."""

    def write(text: str, name: str = "case.grid", **files: str) -> Path:
        for fname, content in files.items():
            (tmp_path / fname).write_text(content)
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
