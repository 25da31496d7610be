"""Writing results and model files without losing anything the user had.

A results folder written by gridlang carries a manifest, the hidden file
``.gridlang-results.json``, listing the files gridlang wrote there.  A folder
may be written into when it is missing, empty, or a previous gridlang result;
then only the files the old manifest lists are replaced or removed, and every
other file is left as it was.  Anything else -- a file where the folder should
be, a non-empty folder gridlang did not write, a place that cannot be created
-- is refused with a :class:`GridError` before anything is written, and
:func:`check_folder` lets the command line refuse it before a long solve.

Files are first written to a staging folder (beside a new folder, inside an
existing one) and then moved in one by one with ``os.replace``, the manifest
last; SIGINT is held back while they move, so an interrupted run leaves either
the previous results or the new ones.  The staging folder is always removed.
A single file (``compile -o``, ``import -o``) is written with
:func:`write_atomic`: a temporary file beside it, then one ``os.replace``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gridlang.errors import COMMAND_LINE, GridError

#: the manifest of a results folder: which files in it gridlang wrote
MANIFEST = ".gridlang-results.json"



class InterruptedAfterWriting(KeyboardInterrupt):
    """SIGINT arrived while results were being moved in; they were all written."""

    def __init__(self, folder: Path) -> None:
        super().__init__(str(folder))
        self.folder = folder


@dataclass(frozen=True, slots=True)
class Folder:
    """A checked results folder: where it is, and the files gridlang may replace in it."""

    path: Path
    exists: bool
    previous: frozenset[str]  # names gridlang wrote there before (its manifest)


def _plain_name(name: object) -> bool:
    """A file name directly inside the folder: no separators, no '.', '..' or the manifest."""
    return isinstance(name, str) and name not in ("", ".", "..", MANIFEST) and "/" not in name and "\\" not in name and "\0" not in name


def read_manifest(folder: Path) -> frozenset[str] | None:
    """The files a previous gridlang result in ``folder`` wrote, or None if it is not one."""
    path = folder / MANIFEST
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list) or not all(_plain_name(f) for f in files):
        return None
    return frozenset(files)


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (as anything, a dangling link included)."""
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
            return p
    return Path(path.anchor or ".")


def _check_creatable(path: Path, what: str, flag: str) -> None:
    """Refuse a ``path`` that does not exist and cannot be created."""
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise GridError(COMMAND_LINE, f"cannot create {what} {path}: {base} is a file, not a folder", f"give {flag} a path whose parents are folders")
    if not os.access(base, os.W_OK | os.X_OK):
        raise GridError(COMMAND_LINE, f"cannot create {what} {path}: folder {base} is not writable", f"give {flag} a folder you can write to")


def check_folder(path: Path, flag: str = "--out") -> Folder:
    """Check that results may be written into folder ``path``; nothing is written.

    Allowed: a missing folder that can be created, an empty folder, or a
    previous gridlang result (it has a valid manifest)."""
    if path.is_symlink() and not path.exists():
        raise GridError(COMMAND_LINE, f"{path} is a broken link, not a results folder", f"give {flag} a new or empty folder")
    if not path.exists():
        _check_creatable(path, "results folder", flag)
        return Folder(path, False, frozenset())
    if not path.is_dir():
        raise GridError(COMMAND_LINE, f"{path} is a file, not a results folder; gridlang never replaces a file by a folder", f"give {flag} a new or empty folder, e.g. {flag} {path.with_name(path.stem + '_results')}")
    if not os.access(path, os.W_OK | os.X_OK):
        raise GridError(COMMAND_LINE, f"results folder {path} is not writable", f"give {flag} a folder you can write to")
    entries = {p.name for p in path.iterdir()}
    manifest = read_manifest(path)
    if manifest is not None or not entries:
        return Folder(path, True, manifest or frozenset())
    shown = ", ".join(sorted(entries)[:3]) + (", ..." if len(entries) > 3 else "")
    raise GridError(
        COMMAND_LINE,
        f"folder {path} is not empty ({shown}) and holds no gridlang results; gridlang will not write into it",
        f"choose an empty or new folder, e.g. {flag} {path / 'results'}",
    )


#: what the first lines of a file gridlang wrote say: model files (a comment) and imported cases
WRITTEN_BY = ("written by gridlang", "by `gridlang import`")


def written_by_gridlang(path: Path) -> bool:
    """Whether the file at ``path`` says in its first lines that gridlang wrote it."""
    try:
        with open(path, "rb") as f:
            head = f.read(512).decode("utf-8", errors="replace")
    except OSError:
        return False
    return any(mark in head for mark in WRITTEN_BY)


def check_file(path: Path, flag: str = "-o", example: str = "out") -> None:
    """Check that one output file may be written at ``path``; nothing is written.

    An existing file is replaced only if gridlang wrote it (:func:`written_by_gridlang`)."""
    if path.is_dir():
        raise GridError(COMMAND_LINE, f"{path} is a folder; {flag} names the file to write", f"give a file name, e.g. {flag} {path / example}")
    if not path.exists():
        _check_creatable(path, "file", flag)
    elif not path.is_file() or path.is_symlink() or not written_by_gridlang(path):
        raise GridError(COMMAND_LINE, f"{path} exists and gridlang did not write it; gridlang will not replace it",
                        f"give {flag} a new file name, e.g. {flag} {path.with_name(path.stem + '_gridlang' + path.suffix)}, or move the file away first")
    elif not os.access(path.parent, os.W_OK | os.X_OK):
        raise GridError(COMMAND_LINE, f"cannot replace {path}: folder {path.parent} is not writable", f"give {flag} a file in a folder you can write to")


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; return the ones created, deepest last."""
    missing = [p for p in (folder, *folder.parents) if not (p.exists() or p.is_symlink())][::-1]
    created = []
    for p in missing:
        p.mkdir()
        created.append(p)
    return created


def _remove_created(created: list[Path]) -> None:
    """Remove folders this run created, if they are (still) empty."""
    for p in reversed(created):
        try:
            p.rmdir()
        except OSError:
            return


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then move it into place.

    ``path`` must not be a folder (:func:`check_file`); on any failure,
    KeyboardInterrupt included, the temporary file and the folders this call
    created are removed and an existing ``path`` is left as it was."""
    path = Path(path)
    check_file(path)
    created = _make_parents(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
        os.close(fd)
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as a plain open() would have made it, not mkstemp's 0600
        if path.is_dir():  # it became one while we wrote
            raise GridError(COMMAND_LINE, f"{path} is a folder; cannot write the file there", "give a file name that is not a folder")
        os.replace(tmp, path)
        created = []
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        _remove_created(created)


@contextmanager
def _sigint_held(folder: Path) -> Iterator[None]:
    """Hold SIGINT back while files move in; afterwards raise :class:`InterruptedAfterWriting`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise InterruptedAfterWriting(folder)


def _write_manifest(path: Path, files: Iterable[str], **extra: object) -> None:
    path.write_text(json.dumps({"written_by": "gridlang", "files": sorted(files), **extra}, indent=2) + "\n", encoding="utf-8")


def write_folder(out: Path, write: Callable[[Path], None], **extra: object) -> list[Path]:
    """Let ``write(staging)`` create files in a staging folder, then move them into ``out``.

    ``out`` is checked again (:func:`check_folder`); a file ``write`` made
    whose name is taken in ``out`` by a file gridlang did not write is an
    error, and nothing is moved.  Files of the previous result that this one
    does not have are removed.  The folder gets a manifest (``extra`` goes
    into it too).  Returns the files written."""
    out = Path(out)
    target = check_folder(out)
    created = [] if target.exists else _make_parents(out.parent)
    staging = Path(tempfile.mkdtemp(prefix=".gridlang-staging-", dir=out if target.exists else out.parent))
    try:
        write(staging)
        names = sorted(p.name for p in staging.iterdir())
        if not all(_plain_name(n) and (staging / n).is_file() for n in names):
            raise RuntimeError(f"results must be plain files, got {names}")
        if not target.exists:
            _write_manifest(staging / MANIFEST, names, **extra)
            with _sigint_held(out):
                os.rename(staging, out)  # one step: the folder appears whole
                created = []
            return [out / n for n in names]
        taken = [n for n in names if n not in target.previous and ((out / n).exists() or (out / n).is_symlink())]
        taken += [n for n in names if n in target.previous and (out / n).is_dir() and not (out / n).is_symlink()]
        if taken:
            raise GridError(
                COMMAND_LINE,
                f"cannot write results into {out}: {', '.join(sorted(set(taken)))} already there and not written by gridlang",
                "move those files away, or choose an empty or new folder",
            )
        with _sigint_held(out):
            # first the union, so that a crash mid-way leaves every file accounted for
            _write_manifest(staging / MANIFEST, set(names) | target.previous, **extra)
            os.replace(staging / MANIFEST, out / MANIFEST)
            for n in names:
                os.replace(staging / n, out / n)
            for n in sorted(target.previous - set(names)):
                old = out / n
                if old.is_file() and not old.is_symlink():
                    old.unlink()
            _write_manifest(staging / MANIFEST, names, **extra)
            os.replace(staging / MANIFEST, out / MANIFEST)
        return [out / n for n in names]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_created(created)


def write_netcdf(dataset, path: Path) -> None:
    """Every array of ``dataset`` with its ``units`` attribute, in NetCDF-4 by h5netcdf.

    Uncompressed and contiguous, for speed: on a 100-asset, 8,760-hour
    dispatch zlib (level 1) makes the file 5x smaller (6.4 MB, not 32 MB) and
    its write 3x slower (0.77 s, not 0.24 s)."""
    dataset.to_netcdf(path, engine="h5netcdf")


#: significant digits in the CSVs: more than any solver's tolerance resolves, few
#: enough that 0.212 is not written 0.21199999999999999 (results.nc is exact)
CSV_DIGITS = 9
_CSV_ROWS = 4096  # rows formatted per write, which bounds the memory a year-long table takes


def _field(text: str) -> str:
    """A CSV field, quoted when it holds a comma, a quote or a line break."""
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text


def write_csv(array, path: Path) -> None:
    """One variable as a wide table: a row per step, a column per element.

    The row label is ``time`` when the array has it, else its first dimension;
    the other dimensions are the columns (an element name, or the names joined
    by ``/``), each headed ``name [unit]``.  An array with one dimension has
    one column headed ``variable [unit]``.  Numbers are written with
    :data:`CSV_DIGITS` significant digits, a blank for NaN (not applicable), and
    never ``-0``.  Formatted from numpy a block of rows at a time: about 10x
    faster than ``DataFrame.to_csv`` on long data."""
    import numpy as np

    unit = str(array.attrs.get("units", ""))
    dims = list(array.dims)
    if not dims:
        header, labels, values = [f"{array.name} [{unit}]"], None, np.asarray(array.values, dtype=float).reshape(1, 1)
    else:
        row = "time" if "time" in dims else dims[0]
        cols = [d for d in dims if d != row]
        values = np.asarray(array.transpose(row, *cols).values, dtype=float).reshape(array.sizes[row], -1)
        labels = [str(v) for v in array[row].values.tolist()]
        if any(c in "".join(labels) for c in ',"\n\r'):  # quoted one by one only if some label needs it
            labels = [_field(lab) for lab in labels]
        if cols:
            import itertools

            names = ["/".join(str(v) for v in combo) for combo in itertools.product(*(array[d].values.tolist() for d in cols))]
        else:
            names = [str(array.name)]
        header = [row] + [f"{n} [{unit}]" for n in names]
    values = values + 0.0  # -0.0 + 0.0 is 0.0
    row = ",".join([f"%.{CSV_DIGITS}g"] * values.shape[1]) + "\n"
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(_field(h) for h in header) + "\n")
        for start in range(0, values.shape[0], _CSV_ROWS):
            block = values[start : start + _CSV_ROWS]
            # one format over the block's flat numbers (no list per row: the garbage
            # collector would walk every live object each time thousands of them pile up)
            text = ((row * len(block)) % tuple(block.ravel().tolist())).replace("nan", "")  # only numbers: no name is touched
            if labels is not None:
                text = "".join(lab + "," + line for lab, line in zip(labels[start : start + _CSV_ROWS], text.splitlines(keepends=True)))
            f.write(text)


def write_pictures(result, staging: Path) -> None:
    """The pictures of a result, written as PNG files into ``staging``.

    The one place where results get their pictures: the voltage profile, the
    dispatch and the feeder diagram (:mod:`gridlang.plots`), each market's and
    game's, and a decomposition's convergence; every file it makes ends up in
    the results folder and its manifest."""
    from gridlang import plots
    from gridlang.report import plot_games, plot_markets, plot_trace

    plots.write_pictures(result, staging)
    plot_markets(result.settlements, result.dataset, staging)
    plot_games(result.games, staging)
    plot_trace(result.dataset, staging)


def write_results(result, out: Path, partial: bool = False, doubts: Sequence[str] | None = None, csv: bool = True, pictures: bool = True, extra: Mapping | None = None) -> list[Path]:
    """``results.nc``, one CSV per variable (unless ``csv`` is false), the
    pictures (unless ``pictures`` is false) and ``summary.json`` in folder ``out``.

    ``results.nc`` holds every variable, price and output at full precision;
    the CSVs (:func:`write_csv`) are for reading, and a variable that is blank
    everywhere (not applicable, e.g. the shed of fixed loads) gets none.  A result with doubts (``doubts``, by default ``result.doubts()``) is written
    only with ``partial``, and then marked: ``summary.json`` has ``"partial":
    true`` and the doubts, and so has the manifest.  ``extra`` adds entries to
    ``summary.json`` (a command's own account, e.g. the rounds of ``collaborate``)."""
    from gridlang import planning
    from gridlang.report import summary_dict

    doubts = list(result.doubts() if doubts is None else doubts)
    if doubts and not partial:
        raise ValueError("a result with doubts is written only with partial=True: " + "; ".join(doubts))

    def write(staging: Path) -> None:
        write_netcdf(result.dataset, staging / "results.nc")
        if csv:
            for name, array in result.dataset.data_vars.items():
                if array.size and not bool(array.isnull().all()):  # an all-blank table says nothing
                    write_csv(array, staging / f"{name}.csv")
        summary = {**summary_dict(result, doubts), **(extra or {})}
        if result.plan is not None:
            (staging / "plan.md").write_text(planning.markdown(result.plan))
            planning.plot(result.plan, staging / "plan.png")
        (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if pictures:
            write_pictures(result, staging)

    return write_folder(out, write, partial=bool(doubts))
