import sys
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


class _Opened:
    """Every file opened while active (a Python audit hook, installed once: hooks
    cannot be removed), for the tests that a side never opens another's files."""

    active = False
    paths: list[str] = []

    @classmethod
    def hook(cls, event: str, args) -> None:
        if cls.active and event == "open" and isinstance(args[0], str | Path):
            cls.paths.append(str(Path(args[0]).resolve()))


sys.addaudithook(_Opened.hook)


def opening(call):
    """``call()``'s result and the resolved paths of every file opened meanwhile."""
    _Opened.paths, _Opened.active = [], True
    try:
        out = call()
    finally:
        _Opened.active = False
    return out, list(_Opened.paths)
