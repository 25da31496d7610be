"""Typical days for planning: a year of hourly profiles reduced to K weighted days.

A year is read from a CSV of 8,760 hourly rows (``pv``, ``wind``, ``load``, all
per unit, and optionally a ``timestamp`` or ``hour`` column) and cut into days.
Day ``d`` is the vector ``x_d`` of its 24 x 3 values (hour-major, the three
series side by side), so days are points of R^72 and compared by the Euclidean
distance ``d_ij = |x_i - x_j|``.

The days are clustered by K-means started from **density peaks**
(Rodriguez & Laio, Science 2014), refined by single-day moves; every step is
deterministic. For a cut-off quantile ``q`` and a separation factor ``s``:

* cut-off ``d_c``: the ``q`` quantile of the pairwise distances ``d_ij, i < j``;
* local density ``rho_i = sum_{j != i} exp(-(d_ij / d_c)^2)`` (Gaussian kernel);
* separation ``delta_i = min {d_ij : j denser than i}``, "denser" meaning a
  larger ``rho`` (equal ``rho``: the smaller index), and for the densest day
  ``delta = max_j d_ij``;
* score ``gamma_i = rho_i * delta_i``; the centres are the K days of largest
  ``gamma`` (equal ``gamma``: the smaller index) taken greedily so that every two
  are at least ``s * d_c`` apart (if fewer than K days qualify, the best
  remaining ones by ``gamma`` fill up).

scikit-learn's ``KMeans(n_clusters=K, init=centres, n_init=1, tol=0)`` runs
Lloyd's iterations from those centres until the assignment no longer changes.
Then a Hartigan refinement moves one day at a time to another cluster while
that lowers the sum of squared errors ``SSE = sum_d |x_d - c(d)|^2``: moving day
``i`` from cluster ``a`` (``n_a > 1`` days, centroid ``c_a``) to ``b`` changes it
by ``n_b / (n_b + 1) |x_i - c_b|^2 - n_a / (n_a - 1) |x_i - c_a|^2``, and the
move with the largest decrease is made first (ties: lowest day, then cluster).

This runs for the fixed candidate settings ``q`` in {1, 2, 5, 10, 20} % and
``s`` in {1, 2} (``DC_QUANTILES x SEPARATIONS``), and the clustering with the
lowest final SSE (the K-means inertia, so also the lowest ``rmse`` below when
the representatives are centroids and there are no extreme days) is kept; equal
SSE: the first setting in that order. The selection looks at the clustering
only, never at a k-means++ run.

Cluster ``k`` with ``n_k`` days becomes one typical day with weight ``w_k = n_k
/ D`` (``D`` days in the year, so the weights sum to 1). Its profile is the
cluster's centroid ``c_k = mean(x_d, d in k)`` (default) or its medoid, the
member closest to the centroid.

With ``extremes=True`` the day with the highest hourly load and the day with the
least renewable energy (``sum_h pv + wind``) are taken out of their clusters and
kept as single-day scenarios of weight ``1 / D`` after the K typical days (one
scenario if they are the same day; a cluster left empty is dropped).

Errors, with ``p(d)`` the profile of the scenario of day ``d``:

* ``rmse = sqrt(mean_{d,h,s} (x_d[h,s] - p(d)[h,s])^2)``, the hourly profiles
  against their representatives (zero for the extreme days);
* ``energy_error[s] = (D sum_k w_k sum_h p_k[h,s] - sum_{d,h} x_d[h,s]) /
  sum_{d,h} x_d[h,s]``, the relative error of the annual energy of each series.
  With centroids it is zero up to round-off (a centroid keeps its members'
  mean); with medoids it measures what the representative days miss.

:func:`kmeanspp_baseline` clusters the same days from scikit-learn's
k-means++ seeding (its default, greedy k-means++: 2 + ln K candidates per
centre; ``n_init=1``, seeds 0..19, no refinement) for comparison. On the
shipped year (``cases/data/year_profiles.csv``) the density-peak result has a
0.4-1.6 % lower RMSE than the median of those 20 runs for every K = 4..12.
A single setting (``q = 2 %``, ``s = 1``) without the refinement is 0.4-1.6 %
worse than that median for K = 5..12; with the refinement alone K = 5..9 and
11 stay worse, with the candidate settings alone K = 11 and 12.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist, pdist, squareform
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from gridlang.errors import SOURCES, GridError, Span, did_you_mean

SERIES: tuple[str, ...] = ("pv", "wind", "load")
HOURS = 24
DAYS_IN_YEAR = 365
DC_QUANTILE = 0.02
DC_QUANTILES: tuple[float, ...] = (0.01, 0.02, 0.05, 0.10, 0.20)
SEPARATIONS: tuple[float, ...] = (1.0, 2.0)
BASELINE_RUNS = 20
#: a per-unit cell above this is a mistake (kW for p.u., a stray exponent), not a profile
MAX_PER_UNIT = 10.0
_PER_UNIT_OF = {"pv": "the PV inverter's rating", "wind": "the turbine's rating", "load": "the peak load"}

Representative = Literal["centroid", "medoid"]


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


# ---------------------------------------------------------------- reading a year


@dataclass(frozen=True)
class Year:
    """A year of hourly per-unit profiles cut into days.

    ``days[d, h, s]`` is hour ``h`` of day ``d`` of series ``SERIES[s]``
    (shape ``(365, 24, 3)``); ``dates`` are the days' labels (``YYYY-MM-DD``
    when the file has timestamps, else ``day 0`` ...); ``source`` the file.
    """

    days: np.ndarray
    dates: tuple[str, ...]
    source: str
    series: tuple[str, ...] = SERIES


def _error(path: str, text: str, line: int, message: str, hint: str | None = None, col: int = 1, width: int = 1) -> GridError:
    SOURCES[path] = text  # so that the message shows the offending line
    return GridError(Span(path, line, col, width), message, hint)


def _cell_col(raw_line: str, index: int) -> tuple[int, int]:
    """1-based column and width of cell ``index`` in an unquoted CSV line."""
    cells = raw_line.split(",")
    if index >= len(cells):
        return len(raw_line) + 1, 1
    col = sum(len(c) + 1 for c in cells[:index]) + 1
    return col, max(1, len(cells[index]))


def read_year(path: str | Path) -> Year:
    """Read and check a year of hourly ``pv``, ``wind``, ``load`` from a CSV file.

    Raises :class:`GridError` at the file and line of the first problem: a
    file that is not UTF-8 text, a missing column, a row with too few cells, a
    cell that is not a finite number or is negative or above MAX_PER_UNIT
    (per unit of a rating or of the peak: 0 to about 1), a missing hour (a gap in the ``hour`` or ``timestamp`` column), a
    leap day, a row count that is not whole days or not 365 days.
    """
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise GridError(Span(name, 0, 0), f"cannot read the year profiles: {exc.strerror or exc}", "give the path of a CSV file with columns pv, wind, load") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        at = exc.start
        line, start = data.count(b"\n", 0, at) + 1, data.rfind(b"\n", 0, at) + 1
        col = len(data[start:at].decode("utf-8-sig")) + 1
        raise _error(name, data.decode("utf-8-sig", errors="replace"), line, f"the file is not UTF-8 text (byte 0x{data[at]:02x} at line {line}, column {col})",
                     "save the year profiles as a UTF-8 CSV file", col) from None
    if "\0" in text:
        at = text.index("\0")
        line, col = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
        raise _error(name, text, line, f"the file holds a NUL character (at line {line}, column {col}): it is binary data, not a CSV file", "give a CSV text file with columns pv, wind, load", col)
    raw_lines = text.splitlines()
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    header_line = 0
    rows: list[list[str]] = []
    lines: list[int] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header, header_line = [c.strip().lower() for c in row], reader.line_num
        else:
            rows.append(row)
            lines.append(reader.line_num)
    if header is None:
        raise _error(name, text, 0, "the year profiles file is empty", "need a header with pv, wind, load and 8,760 hourly rows")
    for s in SERIES:
        if s not in header:
            hint = did_you_mean(s, header) or f"the columns are {', '.join(header)}; need {', '.join(SERIES)} (per unit) and optionally timestamp or hour"
            raise _error(name, text, header_line, f"missing column '{s}'", hint, 1, len(raw_lines[header_line - 1]))
    if not rows:
        raise _error(name, text, header_line, "no hourly rows after the header", "a year is 8,760 rows (365 days of 24 hours)")
    width = len(header)
    for row, line in zip(rows, lines):
        if len(row) < width:
            raise _error(name, text, line, f"this row has {len(row)} cells, the header has {width}", "every row needs a value for each column", len(raw_lines[line - 1]) + 1)

    columns = [header.index(s) for s in SERIES]
    cells = np.array([[row[c] for c in columns] for row in rows], dtype=object)
    try:
        values = cells.astype(float)
    except ValueError:
        values = None
    with np.errstate(invalid="ignore"):
        plausible = values is not None and bool(((values >= 0) & (values <= MAX_PER_UNIT)).all())  # NaN fails both
    if not plausible:
        for r, row in enumerate(cells):
            for j, cell in enumerate(row):
                try:
                    v = float(cell)
                except ValueError:
                    v = None
                if v is not None and 0 <= v <= MAX_PER_UNIT:
                    continue
                col, w = _cell_col(raw_lines[lines[r] - 1], columns[j])
                shown = str(cell).strip()
                what = "an empty cell" if not shown else f"'{shown[:40]}…'" if len(shown) > 40 else f"'{shown}'"
                if v is None or not np.isfinite(v):
                    raise _error(name, text, lines[r], f"{SERIES[j]}: {what} is not a number", "every pv, wind, load cell needs a finite per-unit value", col, w)
                if v < 0:
                    raise _error(name, text, lines[r], f"{SERIES[j]}: {what} is negative", f"{SERIES[j]} is per unit of {_PER_UNIT_OF[SERIES[j]]}: a value from 0 to about 1", col, w)
                raise _error(name, text, lines[r], f"{SERIES[j]}: {what} is too large for a per-unit value (more than {MAX_PER_UNIT:g})",
                             f"{SERIES[j]} is per unit of {_PER_UNIT_OF[SERIES[j]]}: a value from 0 to about 1; divide kW by the rating", col, w)

    dates = _check_time(name, text, header, rows, lines, raw_lines)
    n = len(rows)
    if n % HOURS:
        raise _error(name, text, lines[-1], f"{n} hourly rows are not whole days ({n // HOURS} days and {n % HOURS} hours)", f"a year is {DAYS_IN_YEAR * HOURS} rows: 365 days of 24 hours, no leap day")
    days = n // HOURS
    if days != DAYS_IN_YEAR:
        line = lines[DAYS_IN_YEAR * HOURS] if days > DAYS_IN_YEAR else lines[-1]
        hint = "drop 29 February: a planning year has 365 days" if days == 366 else f"a year is {DAYS_IN_YEAR * HOURS} rows: 365 days of 24 hours"
        raise _error(name, text, line, f"{days} days of hourly rows, a year has {DAYS_IN_YEAR}", hint)
    if dates is None:
        dates = tuple(f"day {d}" for d in range(days))
    return Year(_frozen(values.reshape(days, HOURS, len(SERIES))), dates, name)


def _check_time(name: str, text: str, header: list[str], rows: list[list[str]], lines: list[int], raw_lines: list[str]) -> tuple[str, ...] | None:
    """Check the ``hour`` or ``timestamp`` column, if any: one row per hour, no gap, no leap day."""
    if "timestamp" in header:
        c = header.index("timestamp")
        raw = [row[c].strip() for row in rows]
        try:
            stamps = pd.to_datetime(pd.Series(raw), errors="coerce")
            if not pd.api.types.is_datetime64_any_dtype(stamps):  # mixed UTC offsets: compare in UTC
                stamps = pd.to_datetime(pd.Series(raw), errors="coerce", utc=True)
        except (ValueError, TypeError) as exc:  # e.g. mixed time zones
            raise _error(name, text, lines[0], f"cannot read the timestamps: {exc}", "write local times as YYYY-MM-DD HH:MM, one time zone") from None
        bad = np.flatnonzero(stamps.isna().to_numpy())
        if bad.size:
            r = int(bad[0])
            col, w = _cell_col(raw_lines[lines[r] - 1], c)
            raise _error(name, text, lines[r], f"'{raw[r]}' is not a timestamp", "write timestamps as YYYY-MM-DD HH:MM", col, w)
        leap = np.flatnonzero(((stamps.dt.month == 2) & (stamps.dt.day == 29)).to_numpy())
        if leap.size:
            r = int(leap[0])
            raise _error(name, text, lines[r], f"{raw[r]} is a leap day", "drop 29 February: a planning year has 365 days")
        step = np.diff(stamps.to_numpy().astype("datetime64[s]").astype(np.int64))
        gap = np.flatnonzero(step != 3600)
        if gap.size:
            r = int(gap[0]) + 1
            missing = step[gap[0]] / 3600 - 1
            message = f"{raw[r]} follows {raw[r - 1]}: " + (f"{missing:g} hour(s) missing" if missing > 0 else "not the next hour")
            raise _error(name, text, lines[r], message, "the rows must be consecutive hours, one per row")
        days = stamps.dt.strftime("%Y-%m-%d").to_numpy()
        return tuple(days[::HOURS])
    if "hour" in header:
        c = header.index("hour")
        raw = [row[c].strip() for row in rows]
        try:
            hours = np.array([int(h) for h in raw])
        except ValueError:
            r = next(i for i, h in enumerate(raw) if not h.lstrip("-").isdigit())
            col, w = _cell_col(raw_lines[lines[r] - 1], c)
            raise _error(name, text, lines[r], f"hour '{raw[r]}' is not a whole number", "number the hours of the year 0, 1, 2, ...", col, w) from None
        step = np.diff(hours)
        gap = np.flatnonzero(step != 1)
        if gap.size:
            r = int(gap[0]) + 1
            message = f"hour {hours[r]} follows hour {hours[r - 1]}: " + (f"{step[gap[0]] - 1} hour(s) missing" if step[gap[0]] > 1 else "not the next hour")
            raise _error(name, text, lines[r], message, "the rows must be consecutive hours, one per row")
    return None


def days_from_hours(values: np.ndarray) -> np.ndarray:
    """An array of hourly rows ``(24 D, 3)`` as days ``(D, 24, 3)``."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[0] % HOURS:
        raise GridError(Span("<profiles>", 0, 0), f"hourly values of shape {values.shape} are not whole days of {len(SERIES)} series", "pass an array (24 * days, 3)")
    return values.reshape(-1, HOURS, values.shape[1])


# ---------------------------------------------------------------- density peaks


@dataclass(frozen=True)
class DensityPeaks:
    """The density-peak quantities of every day and the chosen centres.

    ``cutoff`` is ``d_c``; ``rho``, ``delta``, ``gamma`` are per day (see the
    module docstring); ``centres`` the indices of the K chosen days, best first;
    ``separation`` the smallest distance the greedy pick keeps between two
    centres (``s * d_c``).
    """

    cutoff: float
    rho: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    centres: np.ndarray
    separation: float = 0.0


def _cutoff(condensed: np.ndarray, quantile: float) -> float:
    """``d_c``: the ``quantile`` of the pairwise distances (a positive scale if that is 0)."""
    cutoff = float(np.quantile(condensed, quantile)) if condensed.size else 1.0
    if cutoff <= 0:  # many identical days: the smallest positive distance, else any scale
        positive = condensed[condensed > 0]
        cutoff = float(positive.min()) if positive.size else 1.0
    return cutoff


def _peak_scores(dist: np.ndarray, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``rho``, ``delta`` and ``gamma = rho * delta`` of every point from the distance matrix."""
    n = dist.shape[0]
    kernel = np.exp(-((dist / cutoff) ** 2))
    rho = kernel.sum(axis=1) - 1.0  # without the day itself (exp(0) = 1)
    # strict density order: larger rho first, then lower index
    order = np.lexsort((np.arange(n), -rho))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    denser = rank[None, :] < rank[:, None]  # denser[i, j]: j is denser than i
    delta = np.where(denser, dist, np.inf).min(axis=1)
    top = order[0]
    delta[top] = dist[top].max() if n > 1 else 0.0
    return rho, delta, rho * delta


def _pick_centres(dist: np.ndarray, gamma: np.ndarray, k: int, separation: float) -> np.ndarray:
    """The ``k`` best points by ``gamma`` (ties: lower index), greedily at least ``separation`` apart.

    If fewer than ``k`` points qualify, the best remaining ones by ``gamma`` fill up.
    The loop runs over the ``k`` centres only.
    """
    n = dist.shape[0]
    by_gamma = np.lexsort((np.arange(n), -gamma))
    chosen: list[int] = []
    allowed = np.ones(n, dtype=bool)
    for _ in range(k):
        candidates = by_gamma[allowed[by_gamma]]
        if candidates.size == 0:
            break
        pick = int(candidates[0])
        chosen.append(pick)
        allowed &= dist[pick] >= separation
        allowed[pick] = False
    if len(chosen) < k:  # not enough well-separated days: the best remaining by gamma
        taken = np.zeros(n, dtype=bool)
        taken[chosen] = True
        chosen.extend(int(i) for i in by_gamma[~taken[by_gamma]][: k - len(chosen)])
    return np.array(chosen, dtype=np.int64)


def density_peaks(points: np.ndarray, k: int, *, quantile: float = DC_QUANTILE, separation: float = 1.0) -> DensityPeaks:
    """Choose ``k`` centres among ``points`` (n, m) by density-peak scores.

    With ``d_ij`` the Euclidean distances (one vectorised ``pdist``):

    * ``d_c`` = the ``quantile`` (default 2 %) of ``d_ij, i < j``;
    * ``rho_i = sum_{j != i} exp(-(d_ij / d_c)^2)``;
    * ``delta_i = min {d_ij : rho_j > rho_i}`` (equal ``rho``: the lower index
      counts as denser), and for the densest point ``max_j d_ij``;
    * ``gamma_i = rho_i * delta_i``;
    * the centres: the ``k`` best by ``gamma`` (ties: lower index), taken
      greedily so that every two are at least ``separation * d_c`` apart (if
      fewer qualify, the best remaining by ``gamma`` fill up).

    The greedy pick loops over the ``k`` centres only. :func:`typical_days`
    calls this for every ``(quantile, separation)`` in ``DC_QUANTILES x
    SEPARATIONS``.
    """
    condensed = pdist(points)
    dist = squareform(condensed)
    cutoff = _cutoff(condensed, quantile)
    rho, delta, gamma = _peak_scores(dist, cutoff)
    centres = _pick_centres(dist, gamma, k, separation * cutoff)
    return DensityPeaks(cutoff, _frozen(rho), _frozen(delta), _frozen(gamma), _frozen(centres), separation * cutoff)


def _hartigan(points: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Single-day moves between clusters while one lowers the sum of squared errors.

    Moving day ``i`` from cluster ``a`` (``n_a > 1`` days, centroid ``c_a``) to
    cluster ``b`` changes the SSE by
    ``n_b / (n_b + 1) |x_i - c_b|^2 - n_a / (n_a - 1) |x_i - c_a|^2``
    (exactly: the centroids move with the day). Each step
    makes the move with the largest decrease (ties: lowest day, then lowest
    cluster), updates the two centroids and their distance columns, and stops
    when no move lowers the SSE by more than ``1e-12`` of it (at most ``10 n``
    moves). The result is also a fixed point of Lloyd's iteration. The loop
    runs over moves; every step is vectorised over the days and clusters.
    """
    n = points.shape[0]
    labels = labels.astype(np.int64, copy=True)
    counts = np.bincount(labels, minlength=k).astype(float)
    sums = np.zeros((k, points.shape[1]))
    np.add.at(sums, labels, points)
    centroids = sums / np.maximum(counts, 1.0)[:, None]  # an empty cluster: any finite point (joining it costs 0)
    sq = cdist(points, centroids, "sqeuclidean")
    rows = np.arange(n)
    tolerance = 1e-12 * float(sq[rows, labels].sum())
    for _ in range(10 * n):
        own = sq[rows, labels]
        n_own = counts[labels]
        leave = np.where(n_own > 1, n_own / np.maximum(n_own - 1, 1.0) * own, -np.inf)  # a single day stays
        join = (counts / (counts + 1.0))[None, :] * sq
        join[rows, labels] = np.inf
        gain = leave[:, None] - join
        best = int(np.argmax(gain))
        i, b = divmod(best, k)
        if not gain[i, b] > tolerance:
            break
        a = int(labels[i])
        labels[i] = b
        counts[a] -= 1.0
        counts[b] += 1.0
        sums[a] -= points[i]
        sums[b] += points[i]
        centroids[[a, b]] = sums[[a, b]] / counts[[a, b], None]
        sq[:, [a, b]] = cdist(points, centroids[[a, b]], "sqeuclidean")
    return labels


def _density_peak_labels(points: np.ndarray, k: int) -> np.ndarray:
    """Density-peak seeded K-means with a Hartigan refinement, the best of the candidate settings.

    For each ``(q, s)`` in ``DC_QUANTILES x SEPARATIONS`` (in that order): the
    density-peak centres, Lloyd's K-means from them to convergence (``tol=0``),
    then :func:`_hartigan`. The labels with the lowest final SSE are kept (ties:
    the first setting). A centre set already tried is not run again.
    """
    condensed = pdist(points)
    dist = squareform(condensed)
    best_labels: np.ndarray | None = None
    best_sse = np.inf
    tried: set[tuple[int, ...]] = set()
    for quantile in DC_QUANTILES:
        cutoff = _cutoff(condensed, quantile)
        _, _, gamma = _peak_scores(dist, cutoff)
        for separation in SEPARATIONS:
            centres = _pick_centres(dist, gamma, k, separation * cutoff)
            key = tuple(sorted(centres.tolist()))
            if key in tried:
                continue
            tried.add(key)
            labels = KMeans(n_clusters=k, init=points[centres], n_init=1, tol=0.0, random_state=0).fit(points).labels_
            labels = _hartigan(points, labels, k)
            counts = np.bincount(labels, minlength=k)
            sums = np.zeros((k, points.shape[1]))
            np.add.at(sums, labels, points)
            centroids = sums / np.maximum(counts, 1)[:, None]
            sse = float(((points - centroids[labels]) ** 2).sum())
            if sse < best_sse:
                best_labels, best_sse = labels, sse
    assert best_labels is not None
    return best_labels


# ---------------------------------------------------------------- typical days


@dataclass(frozen=True)
class TypicalDays:
    """K weighted typical days (plus extreme days) standing for a year.

    * ``profiles`` (S, 24, 3): scenario ``k``'s hourly pv, wind, load;
    * ``weights`` (S,): ``n_k / D``, the share of the year's days (sum 1);
    * ``members`` (D,): the scenario of each day of the year;
    * ``days`` (S,): a real day each scenario stands for (the medoid, or the
      extreme day itself);
    * ``rmse``: ``sqrt(mean (x_d[h,s] - p(d)[h,s])^2)`` over days, hours, series;
    * ``energy_error`` (3,): relative error of the annual energy per series,
      ``(D sum_k w_k sum_h p_k - sum_{d,h} x_d) / sum_{d,h} x_d`` (0 where a
      series has no energy and its typical days none either);
    * ``extremes``: indices of the single-day scenarios (the last ones);
    * ``method``: ``density-peak`` or ``k-means++ (seed s)``.
    """

    profiles: np.ndarray
    weights: np.ndarray
    members: np.ndarray
    rmse: float
    energy_error: np.ndarray
    days: np.ndarray
    k: int
    method: str
    representative: Representative = "centroid"
    extremes: tuple[int, ...] = ()
    series: tuple[str, ...] = field(default=SERIES)

    @property
    def counts(self) -> np.ndarray:
        """Days of the year in each scenario."""
        return np.bincount(self.members, minlength=len(self.weights))


def _check_k(days: np.ndarray, k: int, source: str) -> None:
    n = days.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise GridError(Span(source, 0, 0), f"the number of typical days must be a whole number, not {k!r}", "e.g. -k 8")
    if k < 1:
        raise GridError(Span(source, 0, 0), f"K = {k}: need at least 1 typical day", "e.g. -k 8")
    if k > n:
        raise GridError(Span(source, 0, 0), f"K = {k} typical days is more than the {n} days of the year", f"choose K between 1 and {n}")


def _as_days(days: np.ndarray | Year) -> tuple[np.ndarray, str]:
    if isinstance(days, Year):
        return days.days, days.source
    arr = np.asarray(days, dtype=float)
    if arr.ndim != 3 or arr.shape[1] != HOURS or arr.shape[0] == 0:
        raise GridError(Span("<profiles>", 0, 0), f"days of shape {arr.shape} are not (days, 24, series)", "read a year with read_year() or reshape hourly rows with days_from_hours()")
    if not np.isfinite(arr).all():
        raise GridError(Span("<profiles>", 0, 0), "the profiles hold NaN or infinite values", "give finite per-unit values")
    if np.abs(arr).max() > 1e6:  # squared distances of such values overflow: no clustering is meaningful
        raise GridError(Span("<profiles>", 0, 0), f"the profiles hold a value of {np.abs(arr).max():.3g}: not per unit", "give per-unit values, from 0 to about 1")
    return arr, "<profiles>"


def typical_days(
    days: np.ndarray | Year,
    k: int,
    *,
    extremes: bool = False,
    representative: Representative = "centroid",
    seed: int | None = None,
) -> TypicalDays:
    """Cluster the days of a year into ``k`` typical days.

    ``days`` is a :class:`Year` or an array (D, 24, series). With ``seed=None``
    K-means starts from the density-peak centres of each candidate setting, is
    refined by single-day (Hartigan) moves and the lowest-SSE clustering is kept
    (deterministic); with an integer it is one plain K-means run from k-means++
    seeding drawn with that seed (the baseline, no refinement). See the module docstring for the weights, extremes and errors.
    """
    x3, source = _as_days(days)
    _check_k(x3, k, source)
    if representative not in ("centroid", "medoid"):
        raise GridError(Span(source, 0, 0), f"unknown representative '{representative}'", "use centroid or medoid")
    n = x3.shape[0]
    points = x3.reshape(n, -1)
    # one thread: a year of days is small (OpenMP start-up costs more than the
    # work), and the result does not depend on the machine's core count
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")  # fewer distinct days than K: sklearn warns, the result is still usable
        if seed is None:
            labels = _density_peak_labels(points, k)
            method = "density-peak"
        else:
            labels = KMeans(n_clusters=k, init="k-means++", n_init=1, random_state=seed).fit(points).labels_.astype(np.int64)
            method = f"k-means++ (seed {seed})"

    single: list[int] = []
    if extremes:
        if x3.shape[2] != len(SERIES):
            raise GridError(Span(source, 0, 0), f"extremes need the {len(SERIES)} series {', '.join(SERIES)}", "pass days of shape (D, 24, 3)")
        peak_load = int(np.argmax(x3[:, :, 2].max(axis=1)))  # first day with the highest hourly load
        least_re = int(np.argmin(x3[:, :, 0].sum(axis=1) + x3[:, :, 1].sum(axis=1)))
        single = [peak_load] if peak_load == least_re else [peak_load, least_re]
    members = labels.copy()
    members[single] = -1
    kept = np.flatnonzero(np.bincount(members[members >= 0], minlength=k) > 0)  # clusters not emptied
    relabel = np.full(k, -1, dtype=np.int64)
    relabel[kept] = np.arange(kept.size)
    members = np.where(members >= 0, relabel[np.maximum(members, 0)], -1)
    members[single] = kept.size + np.arange(len(single))
    s_count = kept.size + len(single)

    counts = np.bincount(members, minlength=s_count)
    sums = np.zeros((s_count, points.shape[1]))
    np.add.at(sums, members, points)
    centroids = sums / counts[:, None]
    # the member closest to each centroid (ties: the first day)
    gap = ((points - centroids[members]) ** 2).sum(axis=1)
    order = np.lexsort((np.arange(n), gap, members))
    first = np.ones(n, dtype=bool)
    first[1:] = members[order][1:] != members[order][:-1]
    medoid = order[first]
    profiles = centroids if representative == "centroid" else points[medoid]

    weights = counts / n
    residual = points - profiles[members]
    rmse = float(np.sqrt(np.mean(residual**2)))
    year_energy = x3.sum(axis=(0, 1))
    typical_energy = (counts[:, None, None] * profiles.reshape(s_count, HOURS, -1)).sum(axis=(0, 1))
    diff = typical_energy - year_energy
    safe = np.where(year_energy != 0, year_energy, 1.0)
    energy_error = np.where(year_energy != 0, diff / safe, np.where(np.abs(diff) > 0, np.inf, 0.0))
    return TypicalDays(
        profiles=_frozen(profiles.reshape(s_count, HOURS, -1)),
        weights=_frozen(weights),
        members=_frozen(members),
        rmse=rmse,
        energy_error=_frozen(energy_error),
        days=_frozen(medoid.astype(np.int64)),
        k=k,
        method=method,
        representative=representative,
        extremes=tuple(range(kept.size, s_count)),
    )


@dataclass(frozen=True)
class Baseline:
    """Plain k-means++ (``n_init=1``) over ``runs`` seeds 0, 1, ...: each run's errors and the medians.

    ``rmse`` (runs,), ``energy_error`` (runs, 3); ``median_rmse`` and
    ``median_energy_error`` (3,, the median of the absolute relative errors).
    """

    rmse: np.ndarray
    energy_error: np.ndarray
    median_rmse: float
    median_energy_error: np.ndarray


def kmeanspp_baseline(days: np.ndarray | Year, k: int, runs: int = BASELINE_RUNS, *, extremes: bool = False, representative: Representative = "centroid") -> Baseline:
    """The errors of plain k-means++ with the same K and options over ``runs`` seeds."""
    results = [typical_days(days, k, extremes=extremes, representative=representative, seed=s) for s in range(runs)]
    rmse = np.array([r.rmse for r in results])
    energy = np.array([r.energy_error for r in results])
    return Baseline(_frozen(rmse), _frozen(energy), float(np.median(rmse)), _frozen(np.median(np.abs(energy), axis=0)))


# ---------------------------------------------------------------- output


def scenario_labels(td: TypicalDays, dates: Sequence[str] | None = None) -> list[str]:
    """What each scenario is (typical, or the extreme it keeps) and the real day it stands for."""
    kinds = {1: ("peak load and least renewable",), 2: ("peak load", "least renewable")}.get(len(td.extremes), ())
    labels = []
    for s in range(len(td.weights)):
        day = int(td.days[s])
        when = dates[day] if dates is not None else f"day {day}"
        if s in td.extremes:
            labels.append(f"{kinds[td.extremes.index(s)]} ({when})")
        elif td.representative == "centroid":
            labels.append(f"typical (nearest day {when})")
        else:
            labels.append(f"typical ({when})")
    return labels


def write_typical_days_csv(td: TypicalDays, path: Path) -> None:
    """``day, hour, pv, wind, load, weight``: one row per scenario and hour."""
    s_count = len(td.weights)
    day = np.repeat(np.arange(s_count), HOURS)
    hour = np.tile(np.arange(HOURS), s_count)
    values = td.profiles.reshape(-1, td.profiles.shape[2])
    weight = np.repeat(td.weights, HOURS)
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(",".join(("day", "hour", *td.series, "weight")) + "\n")
        f.writelines(f"{row[0]},{row[1]}," + ",".join(f"{v:.6f}" for v in row[2:-1]) + f",{row[-1]:.8f}\n" for row in zip(day, hour, *values.T, weight))


def plot_typical_days(td: TypicalDays, path: Path, title: str = "") -> bool:
    """A PNG of the typical days, one panel per series; False if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the plot extra is not installed
        return False
    fig, axes = plt.subplots(1, len(td.series), figsize=(4.2 * len(td.series), 4), sharex=True)
    colours = plt.get_cmap("tab10" if td.k <= 10 else "tab20")
    hours = np.arange(HOURS)
    for s in range(len(td.weights)):
        extreme = s in td.extremes
        style = ("--", ":")[td.extremes.index(s)] if extreme else "-"
        for j, ax in enumerate(np.atleast_1d(axes)):
            ax.plot(hours, td.profiles[s, :, j], color="black" if extreme else colours(s % colours.N), linestyle=style,
                    linewidth=0.8 + 6 * td.weights[s], label=f"{s}: w={td.weights[s]:.3f}" + (" (extreme)" if extreme else ""))
    for j, ax in enumerate(np.atleast_1d(axes)):
        ax.set(title=td.series[j], xlabel="hour", ylabel="per unit", xlim=(0, HOURS - 1))
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[-1].legend(fontsize="x-small", loc="upper left", ncol=1 + len(td.weights) // 10)
    fig.suptitle(title or f"{len(td.weights)} scenarios ({td.method}), RMSE {td.rmse:.4f} p.u.")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
