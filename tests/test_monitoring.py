"""Terminal measurements checked at the edge: gaps and implausible values are
filled and flagged, the schedule is still produced, bad files are clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import gridlang
from conftest import CASES
from gridlang.errors import GridError
from gridlang.monitoring import IMPLAUSIBLE, MISSING, _fill


def test_fill_uses_the_last_good_value_or_the_plan() -> None:
    planned = np.array([1.0, 1.0, 2.0, 2.0, 3.0])
    measured = np.array([np.nan, 1.1, np.nan, -5.0, 99.0])
    values, flags = _fill(measured, planned, factor=3.0)
    assert list(flags) == [MISSING, 0, MISSING, IMPLAUSIBLE, IMPLAUSIBLE]
    np.testing.assert_allclose(values, [1.0, 1.1, 1.1, 1.1, 1.1])  # no good value before step 0: the plan


def test_ten_percent_gaps_are_flagged_and_the_schedule_is_produced(tmp_path) -> None:
    rng = np.random.default_rng(0)
    steps = 24
    pv = np.round(rng.uniform(0, 0.9, steps), 4).astype(object)
    load = np.round(rng.uniform(0.3, 1.0, steps), 4).astype(object)
    holes = rng.choice(steps * 2, size=round(0.1 * steps * 2), replace=False)
    for h in holes:
        (pv if h < steps else load)[h % steps] = ""
    path = tmp_path / "terminals.csv"
    path.write_text("hour,mg1_pv.availability,mg3_ld.scale\n" + "".join(f"{t},{pv[t]},{load[t]}\n" for t in range(steps)))
    case = gridlang.load(CASES / "three_microgrids.grid", measurements=path)
    flags = case.measurement_flags
    assert int((flags == MISSING).sum()) == len(holes)
    assert any("edge of 'mg1'" in n or "edge of 'mg3'" in n for n in case.ir.notes)
    r = case.solve(method="atc")
    assert r.termination == "converged"
    assert int((r["measurement_flag"] == MISSING).sum()) == len(holes)


@pytest.mark.parametrize(
    "header, rows, match, line",
    [
        ("hour,nope.availability", 24, r"'nope' is not an asset", 1),
        ("hour,mg1_pv.colour", 24, r"'colour' is not a parameter of pv 'mg1_pv'", 1),
        ("hour,mg1_pv availability", 24, r"is not '<asset>.<parameter> \[unit\]'", 1),
        ("hour,mg1_pv.availability", 23, r"23 rows of measurements for a horizon of 24 steps", 24),
        ("hour,mg1_ld.p [bananas]", 24, r"unknown unit", 1),
    ],
    ids=["unknown-asset", "unknown-parameter", "bad-header", "wrong-length", "bad-unit"],
)
def test_bad_measurement_files(tmp_path, header: str, rows: int, match: str, line: int) -> None:
    path = tmp_path / "m.csv"
    path.write_text(header + "\n" + "".join(f"{t},0.5\n" for t in range(rows)))
    with pytest.raises(GridError, match=match) as info:
        gridlang.load(CASES / "three_microgrids.grid", measurements=path)
    assert info.value.errors[0].span.line == line if hasattr(info.value, "errors") else info.value.span.line == line
