"""Typical days: density-peak seeded K-means on the shipped year, its errors, and bad inputs."""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from conftest import CASES
from gridlang.cli import app
from gridlang.errors import GridError
from gridlang.scenarios import DAYS_IN_YEAR, DC_QUANTILES, SEPARATIONS, density_peaks, kmeanspp_baseline, read_year, typical_days

YEAR_CSV = CASES / "data" / "year_profiles.csv"
KS = range(4, 13)


@pytest.fixture(scope="module")
def year():
    return read_year(YEAR_CSV)


@pytest.fixture(scope="module")
def lines():
    return YEAR_CSV.read_text().splitlines()


def test_the_shipped_year(year):
    assert year.days.shape == (365, 24, 3)
    assert year.dates[0] == "2019-01-01" and year.dates[-1] == "2019-12-31"
    assert year.days.min() >= 0 and np.isclose(year.days[:, :, 2].max(), 1.0)  # load per unit of its peak
    assert year.days[:, :3, 0].max() == 0  # no sun before 03:00


@pytest.mark.parametrize("k", KS)
def test_density_peak_error_against_kmeanspp_median(year, k):
    """RMSE of the density-peak result no worse than the median of 20 k-means++ runs with the same K.

    Holds for every K = 4..12 on the shipped year (0.4-1.6 % lower): the best of
    the density-peak candidate settings by final SSE, each refined by
    single-day moves.
    """
    td = typical_days(year, k)
    base = kmeanspp_baseline(year, k)
    assert base.rmse.shape == (20,)
    assert td.method == "density-peak"
    assert td.rmse <= base.median_rmse


def _sse(points, labels):
    centroids = np.array([points[labels == c].mean(axis=0) for c in range(labels.max() + 1)])
    return float(((points - centroids[labels]) ** 2).sum())


@pytest.mark.parametrize("k", [5, 9, 12])
def test_no_single_day_move_lowers_the_error(year, k):
    """The refined clustering is Hartigan-optimal, so also a fixed point of Lloyd's iteration."""
    points = year.days.reshape(365, -1)
    labels = typical_days(year, k).members
    counts = np.bincount(labels, minlength=k)
    centroids = np.array([points[labels == c].mean(axis=0) for c in range(k)])
    sq = ((points[:, None, :] - centroids[None]) ** 2).sum(axis=2)
    own = sq[np.arange(365), labels]
    assert (own <= sq.min(axis=1) + 1e-12).all()  # every day is nearest its own centroid
    n_own = counts[labels].astype(float)
    leave = np.where(n_own > 1, n_own / np.maximum(n_own - 1, 1) * own, -np.inf)
    join = counts / (counts + 1.0) * sq
    join[np.arange(365), labels] = np.inf
    assert (leave[:, None] - join <= 1e-9 * own.sum()).all()
    # the formula is the exact change: check it on one move
    i, b = 0, (labels[0] + 1) % k
    moved = labels.copy()
    moved[i] = b
    assert np.isclose(_sse(points, moved) - _sse(points, labels), join[i, b] - leave[i])


@pytest.mark.parametrize("k", [4, 8, 12])
def test_no_worse_than_any_candidate_setting(year, k):
    """The kept clustering's SSE is at most that of K-means from each candidate setting's centres."""
    points = year.days.reshape(365, -1)
    sse = _sse(points, typical_days(year, k).members)
    for q in DC_QUANTILES:
        for s in SEPARATIONS:
            dp = density_peaks(points, k, quantile=q, separation=s)
            with threadpool_limits(limits=1):
                labels = KMeans(n_clusters=k, init=points[dp.centres], n_init=1).fit(points).labels_
            assert sse <= _sse(points, labels) * (1 + 1e-12)


def test_seed_is_plain_kmeanspp(year):
    """``seed=`` is one unrefined scikit-learn k-means++ run (the baseline)."""
    points = year.days.reshape(365, -1)
    for k, seed in ((4, 0), (9, 7)):
        td = typical_days(year, k, seed=seed)
        with threadpool_limits(limits=1):
            labels = KMeans(n_clusters=k, init="k-means++", n_init=1, random_state=seed).fit(points).labels_
        assert np.array_equal(td.members, labels) and td.method == f"k-means++ (seed {seed})"


def test_deterministic(year):
    for k in (4, 9):
        for extremes in (False, True):
            a = typical_days(year, k, extremes=extremes)
            b = typical_days(year, k, extremes=extremes)
            assert np.array_equal(a.profiles, b.profiles)
            assert np.array_equal(a.weights, b.weights)
            assert np.array_equal(a.members, b.members)
            assert a.rmse == b.rmse


@pytest.mark.parametrize("extremes", [False, True])
@pytest.mark.parametrize("representative", ["centroid", "medoid"])
def test_weights_members_and_errors(year, extremes, representative):
    x = year.days
    for k in KS:
        td = typical_days(year, k, extremes=extremes, representative=representative)
        s_count = len(td.weights)
        assert td.profiles.shape == (s_count, 24, 3) and td.members.shape == (365,)
        assert np.isclose(td.weights.sum(), 1.0, atol=1e-12)
        assert np.array_equal(td.weights, td.counts / 365)
        # the errors are what the docstrings say
        rmse = np.sqrt(np.mean((x - td.profiles[td.members]) ** 2))
        assert np.isclose(td.rmse, rmse, rtol=1e-12)
        energy = (td.counts[:, None, None] * td.profiles).sum(axis=(0, 1))
        assert np.allclose(td.energy_error, energy / x.sum(axis=(0, 1)) - 1, atol=1e-12)
        if representative == "centroid":
            assert np.abs(td.energy_error).max() < 1e-10  # a centroid keeps its members' energy
            for s in range(s_count):
                assert np.allclose(td.profiles[s], x[td.members == s].mean(axis=0))
        else:
            assert np.array_equal(td.profiles, x[td.days])  # real days
            assert np.all(td.members[td.days] == np.arange(s_count))
        if extremes:
            peak = int(np.argmax(x[:, :, 2].max(axis=1)))
            dull = int(np.argmin(x[:, :, :2].sum(axis=(1, 2))))
            assert s_count == k + 2 and td.extremes == (k, k + 1)
            assert td.members[peak] == k and td.members[dull] == k + 1
            assert np.allclose(td.weights[[k, k + 1]], 1 / 365)
            assert np.array_equal(td.profiles[k], x[peak]) and np.array_equal(td.profiles[k + 1], x[dull])
        else:
            assert s_count == k and td.extremes == ()


def test_density_peaks_on_three_blobs():
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    points = np.concatenate([c + 0.3 * rng.standard_normal((40, 2)) for c in centres])
    dp = density_peaks(points, 3)
    assert sorted(int(c) // 40 for c in dp.centres) == [0, 1, 2]  # one centre per blob
    d = np.linalg.norm(points[:, None] - points[None], axis=2)
    assert np.isclose(dp.cutoff, np.quantile(d[np.triu_indices(len(points), 1)], 0.02))
    assert dp.centres[0] == np.argmax(dp.gamma)
    assert dp.delta[np.argmax(dp.rho)] == d[np.argmax(dp.rho)].max()
    chosen = d[np.ix_(dp.centres, dp.centres)]
    assert (chosen[np.triu_indices(3, 1)] >= dp.cutoff).all()
    assert dp.separation == dp.cutoff
    # another cut-off quantile and separation factor
    wide = density_peaks(points, 3, quantile=0.2, separation=2.0)
    assert np.isclose(wide.cutoff, np.quantile(d[np.triu_indices(len(points), 1)], 0.2))
    assert np.isclose(wide.separation, 2 * wide.cutoff) and wide.separation < 5
    assert np.allclose(wide.gamma, wide.rho * wide.delta)
    assert sorted(int(c) // 40 for c in wide.centres) == [0, 1, 2]
    chosen = d[np.ix_(wide.centres, wide.centres)]
    assert (chosen[np.triu_indices(3, 1)] >= wide.separation).all()


def test_extreme_day_alone_in_its_cluster_leaves_no_empty_scenario():
    rng = np.random.default_rng(0)
    days = 0.3 + 0.01 * rng.standard_normal((30, 24, 3))
    days[7, 18, 2] = 5.0  # an outlier peak: K-means gives it a cluster of its own
    td = typical_days(days, 3, extremes=True)
    assert (td.counts > 0).all() and np.isclose(td.weights.sum(), 1.0)
    assert td.members[7] == td.extremes[0] and td.counts[td.extremes[0]] == 1


# ---------------------------------------------------------------- bad inputs


def _write(tmp_path, lines):
    path = tmp_path / "year.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _error(path):
    with pytest.raises(GridError) as info:
        read_year(path)
    return info.value


def test_missing_column(tmp_path, lines):
    rows = [",".join(line.split(",")[:3]) for line in lines]  # timestamp, pv, wind
    err = _error(_write(tmp_path, rows))
    assert err.span.line == 1 and "missing column 'load'" in err.message


def test_non_numeric_nan_and_empty_cells(tmp_path, lines):
    for bad, what in (("abc", "'abc'"), ("nan", "'nan'"), ("", "an empty cell"), ("inf", "'inf'")):
        rows = list(lines)
        stamp, pv, wind, _ = rows[100].split(",")
        rows[100] = ",".join((stamp, pv, wind, bad))  # hour 99, line 101
        err = _error(_write(tmp_path, rows))
        assert err.span.file == str(tmp_path / "year.csv")
        assert (err.span.line, err.span.col) == (101, len(f"{stamp},{pv},{wind},") + 1), bad
        assert "load" in err.message and what in err.message
        assert f"{tmp_path / 'year.csv'}:101:" in err.render() and rows[100] in err.render()


def test_short_row(tmp_path, lines):
    rows = list(lines)
    rows[50] = ",".join(rows[50].split(",")[:3])
    err = _error(_write(tmp_path, rows))
    assert err.span.line == 51 and "3 cells" in err.message


def test_missing_hour_by_timestamp(tmp_path, lines):
    rows = lines[:1000] + lines[1001:]  # drops the row of line 1001
    err = _error(_write(tmp_path, rows))
    assert err.span.line == 1001 and "1 hour(s) missing" in err.message
    assert lines[1001].split(",")[0] in err.message


def test_missing_hour_by_hour_column(tmp_path, lines):
    rows = ["hour,pv,wind,load"] + [f"{h}," + ",".join(line.split(",")[1:]) for h, line in enumerate(lines[1:])]
    rows = rows[:4001] + rows[4003:]  # hours 4000 and 4001 missing
    err = _error(_write(tmp_path, rows))
    assert err.span.line == 4002 and "hour 4002 follows hour 3999: 2 hour(s) missing" in err.message


def test_not_whole_days(tmp_path, lines):
    rows = [",".join(line.split(",")[1:]) for line in lines]  # no time column
    err = _error(_write(tmp_path, rows[:-1]))
    assert err.span.line == 8760 and "8759 hourly rows are not whole days" in err.message


def test_not_365_days(tmp_path, lines):
    rows = [",".join(line.split(",")[1:]) for line in lines]
    err = _error(_write(tmp_path, rows[:-24]))
    assert err.span.line == 8737 and "364 days" in err.message
    err = _error(_write(tmp_path, rows + rows[1:25]))
    assert err.span.line == 8762 and "366 days" in err.message and "29 February" in err.hint


def test_leap_day(tmp_path, lines):
    rows = [lines[0]] + [line.replace("2019-", "2020-", 1) for line in lines[1:]]
    err = _error(_write(tmp_path, rows))
    # 2020-02-28 23:00 is followed by 2020-03-01 00:00 in the file: renaming skips 29 February
    assert err.span.line == 59 * 24 + 2 and "24 hour(s) missing" in err.message
    leap = rows[: 59 * 24 + 1] + [r.replace("2020-02-28", "2020-02-29") for r in rows[58 * 24 + 1 : 59 * 24 + 1]]
    err = _error(_write(tmp_path, leap))
    assert err.span.line == 59 * 24 + 2 and "leap day" in err.message


def test_bad_k(year):
    for k, text in ((0, "at least 1"), (-2, "at least 1"), (366, "more than the 365 days")):
        with pytest.raises(GridError, match=text) as info:
            typical_days(year, k)
        assert info.value.span.file == str(YEAR_CSV)
    assert len(typical_days(year, DAYS_IN_YEAR).weights) == 365  # every day its own


# ---------------------------------------------------------------- command line


def test_cli_writes_csv_and_plot(tmp_path):
    out = tmp_path / "td"
    r = CliRunner().invoke(app, ["scenarios", str(YEAR_CSV), "-k", "6", "--extremes", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "density-peak" in r.output and "k-means++" in r.output and "peak load" in r.output
    table = np.genfromtxt(out / "typical_days.csv", delimiter=",", names=True)
    assert table.dtype.names == ("day", "hour", "pv", "wind", "load", "weight")
    assert len(table) == 8 * 24
    assert np.isclose(table["weight"][::24].sum(), 1.0, atol=1e-6)
    assert (out / "typical_days.png").stat().st_size > 1000
    assert sorted(p.name for p in out.iterdir()) == [".gridlang-results.json", "typical_days.csv", "typical_days.png"]  # no temporary files left


def test_cli_bad_input_exits_1_with_line(tmp_path, lines):
    rows = list(lines)
    rows[10] = rows[10].rsplit(",", 1)[0] + ",x"
    path = _write(tmp_path, rows)
    r = CliRunner().invoke(app, ["scenarios", str(path), "-k", "4", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert f"{path}:11:" in r.output and "not a number" in r.output
    r = CliRunner().invoke(app, ["scenarios", str(YEAR_CSV), "-k", "0", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "at least 1" in r.output
    assert not (tmp_path / "o").exists()
